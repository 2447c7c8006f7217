-- Inside nginx: the ngx transport over cosockets, against the emulator,
-- with a real nginx and the LuaJIT build of the rock.
local support = require("emulator")
local openresty = require("openresty")
local socket = require("socket")


describe("OpenResty", function()
  local emu, nginx, conns, leases

  setup(function()
    emu, conns, leases = support.start_with_uuids({ leases = 600, apps = 1, users = { "nginx@example.com:worker-secret-pw",
      "renew@example.com:worker-secret-pw", "torn@example.com:worker-secret-pw" } })
    nginx = openresty.start({ url = emu.url, token = emu.token, email = "nginx@example.com",
      password = "worker-secret-pw" })
  end)
  teardown(function()
    if nginx then nginx:stop() end
    if emu then emu:stop() end
  end)
  before_each(function()
    emu:reset()
    emu:config({ latency = 0 })
  end)

  it("uses the ngx transport by default", function()
    local _, r = nginx:call("/transport")
    assert.equals("ngx", r.transport)
  end)

  it("lists, with integers and readable printing", function()
    local status, r = nginx:call("/list?conn=" .. conns[1])
    assert.equals(200, status)
    assert.equals(3, r.n)
    assert.equals(leases[1], r.first)
    assert.equals("12125550001", r.tn)
    assert.is_truthy(r.text:find("^3 leases\n"))
  end)

  it("keeps the connection alive between calls", function()
    local _, r = nginx:call("/list_twice?conn=" .. conns[1])
    assert.equals(3, r.a.n)
    assert.equals(3, r.b.n)
    local log = emu:requests()
    assert.equals(2, #log)
    assert.equals(log[1].connection, log[2].connection)
    assert.equals("valid", log[1].token)
    assert.equals("application/json", log[1].accept)
  end)

  it("assigns, sending the exact body", function()
    local _, r = nginx:call(("/assign?conn=%s&add=%s&remove=%s"):format(conns[1], leases[10], leases[1]))
    assert.equals(2, r.n)
    local req = emu:requests()[1]
    assert.equals('{"add":["' .. leases[10] .. '"],"remove":["' .. leases[1] .. '"]}', req.body)
    assert.equals("application/json", req.content_type)
    assert.same({ leases[2], leases[3], leases[10] }, emu:state().assigned[conns[1]])
  end)

  it("returns the API's errors", function()
    local _, r = nginx:call("/list?conn=66eb0a8a-571e-41b1-8f50-4d97275cfab7")
    assert.equals("not_found", r.err.kind)
    assert.equals(404, r.err.status)
    assert.equals("SIP connection not found", r.err.message)
    local _, bad = nginx:call("/list?conn=nope")
    assert.equals("invalid", bad.err.kind)
  end)

  it("reports a refused connection and a timeout", function()
    local _, r = nginx:call("/list?conn=" .. conns[1] .. "&url=http://127.0.0.1:" .. support.free_port())
    assert.equals("network", r.err.kind)
    assert.equals(3, r.err.attempts)
    emu:faults({ { delay = 1 } })
    local _, t = nginx:call("/list?conn=" .. conns[1] .. "&timeout=0.2")
    assert.equals("timeout", t.err.kind)
  end)

  it("retries as the curl transport does", function()
    emu:faults({ { status = 503 }, { reset = true } })
    local _, r = nginx:call("/list?conn=" .. conns[1])
    assert.equals(3, r.n)
    assert.equals(3, emu:stats().requests)
    emu:faults({ { status = 500 } })
    local _, a = nginx:call(("/assign?conn=%s&add=%s"):format(conns[2], leases[20]))
    assert.equals("server", a.err.kind)
    assert.equals(1, a.err.attempts)
  end)

  it("reads chunked answers and refuses truncated or oversized ones", function()
    emu:faults({ { chunked = true } })
    local _, r = nginx:call("/list?conn=" .. conns[1])
    assert.equals(3, r.n)
    emu:faults({ { truncate = true }, { truncate = true }, { truncate = true } })
    local _, t = nginx:call("/list?conn=" .. conns[1])
    assert.equals("network", t.err.kind)
    local _, big = nginx:call("/list?conn=" .. conns[1] .. "&max_body=500")
    assert.equals("protocol", big.err.kind)
    emu:faults({ { chunked = true } })
    local _, big2 = nginx:call("/list?conn=" .. conns[1] .. "&max_body=501")
    assert.equals("protocol", big2.err.kind)
  end)

  it("says so instead of blocking where nginx cannot do I/O", function()
    nginx:call("/log_phase?conn=" .. conns[1])
    local r
    for _ = 1, 50 do
      local _, got = nginx:call("/log_result")
      if got.result then r = require("cjson").decode(got.result) break end
      socket.sleep(0.02)
    end
    assert.is_table(r)
    assert.equals("invalid", r.err.kind)
    assert.is_truthy(r.err.message:find("log phase", 1, true), r.err.message)
    assert.equals(0, emu:stats().requests)
  end)

  it("refuses callbacks and pollfd with the way to go instead", function()
    local _, r = nginx:call("/callback?conn=" .. conns[1])
    assert.is_false(r.ok)
    assert.is_truthy(r.err:find("callbacks need the curl transport", 1, true), r.err)
    assert.is_truthy(r.err:find("ngx.thread.spawn", 1, true), r.err)
    assert.is_false(r.pollfd_ok)
    assert.is_truthy(r.pollfd_err:find("needs the curl transport", 1, true), r.pollfd_err)
    assert.equals(0, r.pending)
    assert.equals(0, emu:stats().requests)
  end)

  it("hands the caller an error when a request's light thread raises", function()
    local _, r = nginx:call("/crash?conn=" .. conns[1])
    assert.equals("network", r.err.kind, require("cjson").encode(r))
    assert.is_truthy(r.err.message:find("light thread failed", 1, true), r.err.message)
  end)

  it("runs assign_batched on light threads", function()
    emu:config({ latency = 0.2 }) -- long enough that 4 overlap even on a loaded machine
    local add = {}
    for i = 11, 410 do add[#add + 1] = leases[i] end
    local _, r = nginx:call("/batched", { conn = conns[2], add = add, batch_size = 25, concurrency = 4 })
    assert.is_true(r.ok)
    assert.equals(400, r.applied)
    assert.equals(400, r.leases)
    assert.equals(4, emu:stats().inflight_max)
    assert.equals(400, #emu:state().assigned[conns[2]])
  end)

  it("applies a saved plan, asking what changed since on the server's clock (its Date)", function()
    local numbers = "12125550020,12125550021"
    local _, r = nginx:call("/plan?conn=" .. conns[2] .. "&numbers=" .. numbers)
    assert.is_nil(r.err)
    assert.is_true(math.abs(r.since + 60 - os.time()) <= 5, r.since)
    emu:holders({ [leases[21]] = { sip_connection = conns[3] } })
    local from = #emu:requests()
    local _, a = nginx:call("/apply", { text = r.text })
    assert.equals("stale", a.err.kind)
    local asked = 0
    for k = from + 1, #emu:requests() do
      local req = emu:requests()[k]
      if (req.body or ""):find('"modified_on_from"', 1, true) then asked = asked + 1 end
    end
    assert.equals(1, asked)
    -- planned again, it applies
    _, r = nginx:call("/plan?conn=" .. conns[2] .. "&numbers=12125550020")
    _, a = nginx:call("/apply", { text = r.text })
    assert.same({ ok = true, applied = 1 }, a)
  end)

  -- (each would take 5 s without the deadline; the bounds leave room for a
  -- loaded machine)
  it("keeps a call's deadline: an answer that never comes, a Retry-After past it", function()
    emu:faults({ { delay = 5 } })
    local _, r = nginx:call("/deadline?conn=" .. conns[1])
    assert.equals("timeout", r.err.kind, require("cjson").encode(r))
    assert.matches("the deadline of 0.3 s was reached", r.err.message, 1, true)
    assert.is_true(r.took < 2.5, r.took)
    emu:faults({ { status = 503, retry_after = "5" } })
    _, r = nginx:call("/deadline?conn=" .. conns[1])
    assert.equals(503, r.err.status)
    assert.matches("not retried after 5 s: the deadline of 0.3 s was reached", r.err.message, 1, true)
    assert.is_true(r.took < 2.5, r.took)
    emu:faults({ { delay = 5 } })
    _, r = nginx:call("/deadline?per_call=1&conn=" .. conns[1])
    assert.equals("timeout", r.err.kind)
    assert.is_true(r.took < 2.5, r.took)
  end)

  it("plans routes over two targets and an app, and applies them as one", function()
    local st = emu:state()
    local _, r = nginx:call("/routes", { exact = true, routes = {
      { number = "12125550030", target = "connection:" .. conns[2] },
      { number = "12125550031", target = "control-app-1" },
      { lease = leases[32], target = { connection = conns[3] } } } })
    assert.is_nil(r.err, require("cjson").encode(r))
    assert.is_true(r.ok, r.text)
    assert.equals(3, r.targets)
    assert.matches("^Plan: ", r.text)
    local now = emu:state()
    assert.same({ leases[30] }, now.assigned[conns[2]])
    assert.same({ leases[32] }, now.assigned[conns[3]])
    assert.same({ leases[31] }, now.app_assigned[st.apps[1]])
    -- a route naming an unknown target: every problem at once
    _, r = nginx:call("/routes", { routes = { { number = "12125550030", target = "nobody" },
      { number = "x", target = "control-app-1" } } })
    assert.equals("invalid", r.err.kind)
    assert.matches("2 problems in the routes", r.err.message)
  end)

  it("lists connections, resolves a name, lists a control app and changes a lease's settings", function()
    local st = emu:state()
    local _, r = nginx:call("/targets?name=control-app-1&lease=" .. leases[7])
    assert.is_nil(r.err)
    assert.same({ connections = #conns, first_name = "sip-trunk-1", kind = "app", uuid = st.apps[1], held = 1,
      autorenew = false, fax = true }, r)
    local patch = emu:requests()[#emu:requests()]
    assert.equals("PATCH", patch.method)
    assert.equals('{"autorenew":false,"fax":true}', patch.body)
    _, r = nginx:call("/targets?name=nobody&lease=" .. leases[7])
    assert.equals("not_found", r.err.kind)
  end)

  it("runs list_many in input order", function()
    local list = table.concat({ conns[1], "bad", conns[2], conns[1] }, ",")
    local _, r = nginx:call("/list_many?conns=" .. list)
    assert.equals(3, r[1].n)
    assert.equals("invalid", r[2].err.kind)
    assert.equals(0, r[3].n)
    assert.equals(3, r[4].n)
  end)

  it("does not block the worker: 30 lists at 0.3 s latency each", function()
    emu:config({ latency = 0.3 })
    local request = ("GET /list?conn=%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"):format(conns[1])
    local socks = {}
    for i = 1, 30 do
      socks[i] = assert(socket.connect("127.0.0.1", nginx.port))
      assert(socks[i]:send(request))
    end
    local ok = 0
    for i = 1, 30 do
      socks[i]:settimeout(10)
      local answer = socks[i]:receive("*a")
      socks[i]:close()
      if answer and answer:find('"n":3', 1, true) then ok = ok + 1 end
    end
    assert.equals(30, ok)
    -- the one worker had most of them on the emulator at once: a worker
    -- blocked by a request would have had one
    assert.is_true(emu:stats().inflight_max >= 20)
  end)

  it("logs in once for the worker's requests, each with a client of its own", function()
    emu:config({ latency = 0.1 })
    local request = ("GET /login_list?conn=%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"):format(conns[1])
    local socks, answers = {}, {}
    for i = 1, 12 do
      socks[i] = assert(socket.connect("127.0.0.1", nginx.port))
      assert(socks[i]:send(request))
    end
    for i = 1, 12 do
      socks[i]:settimeout(10)
      answers[i] = socks[i]:receive("*a") or ""
      socks[i]:close()
      assert.is_truthy(answers[i]:find('"n":3', 1, true), answers[i])
      assert.is_truthy(answers[i]:find("login as nginx@example.com", 1, true), answers[i])
      assert.is_falsy(answers[i]:find("worker-secret-pw", 1, true), answers[i])
    end
    assert.equals(1, emu:stats().logins)
    -- later requests still use it
    local _, r = nginx:call("/login_list?conn=" .. conns[1])
    assert.equals(3, r.n)
    assert.equals(1, emu:stats().logins)
  end)

  -- A client the worker's requests share: its login runs on the light
  -- thread of the request that needed it first. That request ends before
  -- the answer (ngx.exit aborts its threads): a later request waiting for
  -- the same login is not held until its wait's end (an hour), but takes
  -- the lost login for a timeout once the client's timeout (1 s) and a
  -- second are past, and logs in itself (a login is retried like a read).
  it("does not leave a request waiting for a login whose nginx request ended", function()
    emu:config({ latency = 0.5 })
    local status = nginx:call("/torn_login?email=torn@example.com&conn=" .. conns[1])
    assert.equals(200, status)
    local s = assert(socket.connect("127.0.0.1", nginx.port))
    finally(function() s:close() end)
    assert(s:send(("GET /torn_after?email=torn@example.com&conn=%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"):format(conns[1])))
    s:settimeout(15) -- bounds the failure only: before, the wait was an hour
    local answer = s:receive("*a") or ""
    assert.is_truthy(answer:find('"n":3', 1, true), answer)
    -- the lost login and the waiter's own, no more
    assert.is_true(emu:stats().logins <= 2, emu:stats().logins .. " logins")
  end)

  it("renews a 2-second token under nginx: no 401 reaches the caller, a login per renewal", function()
    emu:config({ token_ttl = 2 })
    local _, r = nginx:call("/login_renew?seconds=4&email=renew@example.com&conn=" .. conns[1])
    -- every call answered: a token that ran out under a call is logged in
    -- again and the call sent again, unseen by the caller
    assert.same({}, r.errors)
    -- the renewal comes before the end, but on the real clock of a busy
    -- machine a call may outlast the half second a 2-second token leaves
    -- it: a 401 now and then, never more than one a login
    local logins = emu:stats().logins
    assert.is_true(r.refused <= logins, ("%d refused, %d logins"):format(r.refused, logins))
    assert.is_true(logins >= 2 and logins <= 10 and logins < r.calls / 4, ("%d logins, %d calls"):format(logins, r.calls))
    assert.is_falsy(require("cjson").encode(r):find("worker-secret-pw", 1, true))
  end)

  it("shares a login between workers through a lua_shared_dict (jwt_cache)", function()
    local _, r = nginx:call("/dict_login")
    assert.is_true(r.same)
    assert.equals("auth", r.wrong)
    assert.equals(1, emu:stats().logins)
  end)

  it("names the directive that keeps OPENTACT_TOKEN when nginx cleared the environment", function()
    local _, r = nginx:call("/no_credentials?conn=" .. conns[1])
    assert.equals("auth", r.err.kind)
    assert.is_truthy(r.err.message:find("env OPENTACT_TOKEN;", 1, true), r.err.message)
    assert.equals(0, emu:stats().requests)
  end)

  it("can still be told to use curl", function()
    local _, r = nginx:call("/curl_list?conn=" .. conns[1])
    assert.equals(3, r.n)
  end)

  it("leaves nothing in nginx's error log but expected notices", function()
    local log = nginx:error_log()
    assert.is_falsy(log:find("%[alert%]"), log)
    assert.is_falsy(log:find("%[crit%]"), log)
    assert.is_falsy(log:find("lua entry thread aborted"), log)
  end)
end)

describe("OpenResty over TLS", function()
  local dir, emu, nginx, conn

  setup(function()
    dir = support.tls_files()
    emu = support.start({ tls = { dir .. "/server.pem", dir .. "/server.key" } })
    conn = emu:state().connections[1]
    nginx = openresty.start({ url = emu.url, token = emu.token, ca = dir .. "/ca.pem" })
  end)
  teardown(function()
    if nginx then nginx:stop() end
    if emu then emu:stop() end
    if dir then os.execute("rm -rf " .. dir) end
  end)

  it("verifies the server with lua_ssl_trusted_certificate", function()
    local _, r = nginx:call("/list?client=verify&conn=" .. conn)
    assert.equals(3, r.n)
  end)

  it("refuses a server whose certificate it cannot verify", function()
    local other = support.start({ tls = { dir .. "/other.pem", dir .. "/other.key" } })
    finally(function() other:stop() end)
    local _, r = nginx:call("/list?client=verify&conn=" .. conn .. "&url=" .. other.url)
    assert.is_table(r.err, nginx:error_log())
    assert.equals("tls", r.err.kind, r.err.message)
    assert.equals(0, other:stats().requests)
    local _, loose = nginx:call("/list?client=noverify&conn=" .. conn .. "&url=" .. other.url)
    assert.equals(3, loose.n)
  end)
end)
