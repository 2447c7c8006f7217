-- Callbacks, step and the polling protocol, against the emulator: the
-- client inside a host's event loop, never blocking it.
local opentact = require("opentact")
local core = require("opentact.core")
local support = require("emulator")

local LUA = support.LUA
local now = core.now

-- The timeouts `client`'s transport is polled with from now on: step(0)
-- never waits when every one is 0 (the poll is the one place it can).
local function poll_waits(client)
  local engine, waits = client._engine, {}
  local transport = engine.transport
  engine.transport = setmetatable({}, { __index = function(_, name)
    local method = transport[name]
    if name == "poll" then
      return function(_, wait, ...)
        waits[#waits + 1] = wait
        return method(transport, wait, ...)
      end
    end
    return function(_, ...) return method(transport, ...) end
  end })
  return waits
end

local function all_zero(waits)
  assert.is_true(#waits > 0, "the transport was never polled")
  for i, w in ipairs(waits) do assert.equals(0, w, "poll " .. i .. " waited") end
end

-- What a host loop does between two steps: its own work, here a short
-- sleep, so a test that steps with timeout 0 does not spin the CPU.
local function host_work() require("socket").sleep(0.005) end

-- Steps until nothing is pending.
local function drain(client)
  local deadline = now() + 60
  while client:step(0.05) > 0 do
    assert(now() < deadline, "requests still pending after 60 s")
  end
end

describe("callbacks and step #wire #c", function()
  local emu, conn, leases, client

  setup(function()
    local conns
    emu, conns, leases = support.start_with_uuids({ leases = 400 })
    conn = conns[2]
  end)
  teardown(function() support.stop(emu, client) end)
  before_each(function() client = emu:renew(client, { latency = 0 }) end)

  local function held()
    return #emu:state().assigned[conn]
  end

  it("list and assign return true at once and call back from step, never before", function()
    local got = {}
    assert.is_true(client:list(conn, function(l, e) got.list = { l, e } end))
    assert.is_true(client:assign(conn, { add = { leases[11] } }, function(l, e) got.assign = { l, e } end))
    assert.is_nil(got.list)
    assert.is_nil(got.assign)
    drain(client)
    assert.equals(0, #got.list[1])
    assert.is_nil(got.list[2])
    assert.equals(1, #got.assign[1])
    assert.equals(leases[11], got.assign[1][1].uuid)
    assert.equals(1, held())
    assert.equals(0, client:step(0))
  end)

  it("the module-level list and assign take a callback too", function()
    opentact.configure({ token = emu.token, base_url = emu.url })
    local got, first
    assert.is_true(opentact.list(conn, function(_, e) first = e end))
    local default = opentact.configure({ token = emu.token, base_url = emu.url })
    -- configure closed the old default client: its pending callback had its error
    assert.equals("network", first.kind)
    assert.is_true(opentact.assign(conn, { add = { leases[12] } }, function(l) got = l end))
    drain(default)
    assert.equals(leases[12], got[1].uuid)
    default:close()
  end)

  it("hands an error to the callback: 404, and a bad uuid that is never sent", function()
    local errs = {}
    client:list("00000000-0000-4000-8000-000000000000", function(l, e) errs[1] = { l, e } end)
    client:list("not-a-uuid", function(l, e) errs[2] = { l, e } end)
    assert.is_nil(errs[2]) -- even an error found before sending waits for step
    drain(client)
    assert.is_nil(errs[1][1])
    assert.equals("not_found", errs[1][2].kind)
    assert.equals("invalid", errs[2][2].kind)
  end)

  it("retries on a backoff timer without blocking step", function()
    client:close()
    client = emu:client({ backoff = 0.4, backoff_max = 0.4 })
    emu:faults({ { status = 503 } })
    local got
    local waits = poll_waits(client)
    client:list(conn, function(l, e) got = { l, e } end)
    -- full jitter: the wait is anywhere in [0, 0.4)
    local deadline = now() + 60
    while not got and now() < deadline do
      client:step(0)
      host_work()
    end
    assert.is_table(got, "no answer in 60 s")
    assert.is_table(got[1])
    all_zero(waits)
    assert.equals(2, #emu:requests())
  end)

  it("waits out Retry-After on a timer, for list and assign", function()
    client:close()
    client = emu:client({ backoff_max = 2 })
    emu:faults({ { status = 429, retry_after = 1 }, { status = 429, retry_after = 1 } })
    local got = {}
    local waits = poll_waits(client)
    local t0 = now()
    client:list(conn, function(l, e) got.list = { l, e, now() - t0 } end)
    client:assign(conn, { add = { leases[13] } }, function(l, e) got.assign = { l, e, now() - t0 } end)
    local steps = 0
    while not (got.list and got.assign) do
      client:step(0)
      host_work()
      steps = steps + 1
    end
    all_zero(waits)
    assert.is_table(got.list[1])
    assert.is_table(got.assign[1])
    assert.is_true(got.list[3] >= 0.95, tostring(got.list[3]))
    assert.is_true(got.assign[3] >= 0.95, tostring(got.assign[3]))
    assert.is_true(steps > 10)
  end)

  it("a timer deadline shows in timeout(), and step(timeout) waits on it", function()
    client:close()
    client = emu:client({ backoff_max = 2 })
    assert.is_nil(client:timeout()) -- idle
    emu:faults({ { status = 503, retry_after = 1 } })
    local got
    client:list(conn, function(l) got = l end)
    local t0 = now()
    while not got do client:step(5) end
    assert.is_true(now() - t0 >= 0.9)
    assert.is_nil(client:timeout())
  end)

  it("keeps 200 requests pending at once and answers every one", function()
    local answered, ok = 0, 0
    for i = 1, 200 do
      local fn = function(l) answered = answered + 1; if l then ok = ok + 1 end end
      if i % 2 == 0 then client:list(conn, fn) else client:list(emu:state().connections[1], fn) end
    end
    assert.equals(200, client:step(0) + answered)
    drain(client)
    assert.equals(200, answered)
    assert.equals(200, ok)
  end)

  it("step(0) never waits, even with answers a while away", function()
    emu:config({ latency = 0.3 })
    local got = 0
    local waits = poll_waits(client)
    for _ = 1, 20 do client:list(conn, function() got = got + 1 end) end
    local steps = 0
    while got < 20 do
      client:step(0)
      host_work()
      steps = steps + 1
    end
    all_zero(waits)
    -- it was stepped while the answers were away (how often depends on
    -- how fast this machine is)
    assert.is_true(steps > 1)
  end)

  it("a callback that raises: the error leaves step, the rest go on, the client stays usable", function()
    local got = 0
    client:list(conn, function() error("boom") end)
    for _ = 1, 5 do client:list(conn, function() got = got + 1 end) end
    local raised
    local deadline = now() + 60
    while got < 5 and now() < deadline do
      local ok, err = pcall(client.step, client, 0.05)
      if not ok then raised = err end
    end
    assert.is_truthy(tostring(raised):find("boom", 1, true))
    assert.equals(5, got)
    assert.equals(3, #assert(client:list(emu:state().connections[1])))
  end)

  it("a callback may call the client: blocking, or with another callback", function()
    local inner, nested
    client:list(conn, function()
      inner = client:list(emu:state().connections[1])
      client:list(conn, function(l) nested = l end)
    end)
    drain(client)
    assert.equals(3, #inner)
    assert.is_table(nested)
  end)

  it("closing the client with requests pending calls each callback with a clear error", function()
    emu:config({ latency = 0.5 })
    local got = {}
    for i = 1, 10 do client:list(conn, function(l, e) got[i] = { l, e } end) end
    client:step(0)
    client:close()
    for i = 1, 10 do
      assert.is_nil(got[i][1])
      assert.equals("network", got[i][2].kind)
      assert.is_truthy(tostring(got[i][2]):find("closed before the request finished", 1, true))
    end
    assert.has_error(function() client:step(0) end, "attempt to use a closed opentact client (in 'step')")
  end)

  it("a fork with requests pending: the parent gets the answers, the child an error for each", function()
    local fh = require("forkhelper")
    emu:config({ latency = 0.3 })
    local got = {}
    for i = 1, 5 do client:list(conn, function(l, e) got[i] = { l, e } end) end
    client:step(0)
    local pid = fh.fork()
    if pid == 0 then
      local ok = pcall(function()
        local deadline = now() + 5
        while client:step(0.05) > 0 and now() < deadline do end
        for i = 1, 5 do
          assert(got[i] and got[i][1] == nil and got[i][2].kind == "network", "child " .. i)
          assert(tostring(got[i][2]):find("forked", 1, true))
        end
        -- and the child's own requests work
        local l = assert(client:list(conn))
        assert(#l == 0)
      end)
      fh.exit(ok and 0 or 1)
    end
    drain(client)
    assert.equals(0, fh.wait(pid))
    for i = 1, 5 do assert.is_table(got[i][1]) end
  end)

  it("close from a log hook while step judges a batch: every callback once, each with an error", function()
    local faults = {}
    for i = 1, 20 do faults[i] = { status = 503 } end
    emu:faults(faults)
    emu:config({ latency = 0.3 })
    local closed
    local c
    c = emu:client({ log = function()
      if not closed then closed = true; c:close() end
    end })
    local called, errs = {}, 0
    for i = 1, 20 do
      c:list(conn, function(l, e)
        called[i] = (called[i] or 0) + 1
        if not l and e.kind == "network" then errs = errs + 1 end
      end)
    end
    -- the requests go on the wire, then every answer comes in at once;
    -- the first one judged makes the hook close the client (however slow
    -- this machine is: under Valgrind it may happen in the first loop)
    local t0 = now()
    while not closed and now() - t0 < 0.15 do c:step(0) end
    require("socket").sleep(0.4)
    local deadline = now() + 10
    while not closed and now() < deadline do
      local ok, e = pcall(c.step, c, 0.05)
      assert.is_true(ok, tostring(e)) -- the step whose hook closes the client returns as usual
    end
    assert.is_true(closed)
    for i = 1, 20 do assert.equals(1, called[i], "callback " .. i) end
    assert.equals(20, errs)
  end)

  it("a blocking call during which a retry's token function raises: the error leaves the call at once", function()
    local calls = 0
    local c = emu:client({ backoff = 0.3, backoff_max = 0.3, token = function()
      calls = calls + 1
      if calls == 1 then return emu.token end
      error("token service down")
    end })
    emu:faults({ { status = 401 }, { status = 503 } })
    c:list(conn, function() end)
    local t0 = now()
    local ok, err = pcall(c.list, c, conn)
    c:close()
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("token service down", 1, true))
    assert.is_true(now() - t0 < 20, tostring(now() - t0))
  end)

  it("after a fork, the child does not send what the parent had waiting on a retry timer", function()
    local fh = require("forkhelper")
    -- Retry-After, not jittered backoff: the retry waits a known second
    local c = emu:client({ backoff_max = 2 })
    emu:faults({ { status = 503, retry_after = 1 } })
    local got
    c:assign(conn, { add = { leases[20] } }, function(l, e) got = l and "applied" or e end)
    local wait_until = now() + 30
    while #c._engine.timers == 0 and not got and now() < wait_until do c:step(0.01) end
    assert.equals(1, #c._engine.timers, "the 503 did not leave a retry waiting: " .. tostring(got))
    local pid = fh.fork()
    local deadline = now() + 30
    while not got and now() < deadline do c:step(0.05) end
    if pid == 0 then
      fh.exit(type(got) == "table" and got.kind == "network" and got.message:find("forked", 1, true) and 0 or 1)
    end
    assert.equals(0, fh.wait(pid))
    assert.equals("applied", got)
    c:close()
    local posts = 0
    for _, r in ipairs(emu:requests()) do if r.method == "POST" then posts = posts + 1 end end
    assert.equals(2, posts) -- the first attempt and the parent's retry
  end)

  it("keeps at most 128 callback requests on the wire; the rest wait their turn", function()
    emu:config({ latency = 0.2 })
    local answered = 0
    for _ = 1, 300 do client:list(conn, function(l) if l then answered = answered + 1 end end) end
    drain(client)
    assert.equals(300, answered)
    local max = emu:stats().inflight_max
    assert.is_true(max <= 128, tostring(max))
  end)

  it("pollfd becomes readable when an answer is in, and timeout() says when step is due", function()
    local socket = require("socket")
    local fd = client:pollfd()
    assert.is_number(fd)
    assert.equals("r", client:events())
    local got
    client:list(conn, function(l) got = l end)
    -- wait on the descriptor alone (as a host loop would), then step
    local deadline = now() + 60
    while not got and now() < deadline do
      local wait = client:timeout()
      assert.is_true(wait == nil or wait >= 0)
      socket.select(nil, nil, math.min(wait or 0.05, 0.05))
      client:step(0)
    end
    assert.is_table(got)
    assert.equals(fd, client:pollfd())
  end)
end)

describe("one client, several runs #wire #c", function()
  local emu, conns, leases, client
  setup(function() emu, conns, leases = support.start_with_uuids({ leases = 700 }) end)
  teardown(function() support.stop(emu, client) end)
  before_each(function() client = emu:renew(client, { latency = 0.01 }) end)

  local function slice(from, to) return support.slice(leases, from, to) end

  it("two coroutines each running assign_batched and yielding in on_progress see only their own answers", function()
    if LUA == "lua5.1" then
      pending("Lua 5.1 cannot yield across pcall, which on_progress is called through")
      return
    end
    local a, b = slice(11, 310), slice(311, 610)
    local reports = {}
    local function worker(name, conn, adds)
      return coroutine.create(function()
        reports[name] = client:assign_batched(conn, { add = adds }, {
          batch_size = 20, concurrency = 3,
          on_progress = function() coroutine.yield() end,
        })
      end)
    end
    local ca, cb = worker("a", conns[2], a), worker("b", conns[3], b)
    while coroutine.status(ca) ~= "dead" or coroutine.status(cb) ~= "dead" do
      for _, co in ipairs({ ca, cb }) do
        if coroutine.status(co) ~= "dead" then assert(coroutine.resume(co)) end
      end
    end
    for name, want in pairs({ a = a, b = b }) do
      local r = reports[name]
      assert.is_true(r.ok, name)
      assert.same(want, r.applied.add)
      assert.equals(#want, #r.leases)
    end
    local st = emu:state()
    assert.equals(300, #st.assigned[conns[2]])
    assert.equals(300, #st.assigned[conns[3]])
    -- every answer reached its own run: each lease in a report is on its connection
    for _, l in ipairs(reports.a.leases) do assert.equals(conns[2], l.sip_connection.uuid) end
    for _, l in ipairs(reports.b.leases) do assert.equals(conns[3], l.sip_connection.uuid) end
  end)

  it("a bulk call whose coroutine is closed midway stops sending its batches", function()
    if not coroutine.close then
      pending("coroutine.close needs Lua 5.4")
      return
    end
    emu:config({ latency = 0.1 })
    local co = coroutine.create(function()
      client:assign_batched(conns[2], { add = slice(11, 210) }, {
        batch_size = 10, concurrency = 3, on_progress = function() coroutine.yield() end,
      })
    end)
    assert(coroutine.resume(co))
    assert.is_true(coroutine.close(co))
    -- other work on the client drives what was in flight to its end
    assert.equals(3, #assert(client:list(conns[1])))
    require("socket").sleep(0.3)
    assert.equals(3, #assert(client:list(conns[1])))
    local held = #(emu:state().assigned[conns[2]] or {})
    assert.is_true(held <= 60, tostring(held))
    assert.equals(1, #client._engine.runs)
  end)

  it("configure keeps its new default client even when an old callback raises", function()
    opentact.configure({ token = emu.token, base_url = emu.url })
    opentact.list(conns[1], function() error("old callback fails") end)
    local ok = pcall(opentact.configure, { token = emu.token, base_url = emu.url, user_agent = "configured-agent" })
    assert.is_false(ok)
    assert.equals(3, #assert(opentact.list(conns[1])))
    local log = emu:requests()
    assert.equals("configured-agent", log[#log].user_agent)
    opentact.configure({ token = emu.token, base_url = emu.url }):close()
  end)

  it("a bulk call inside another's on_progress or log hook keeps both reports whole", function()
    local inner = {}
    local c
    c = emu:client({ log = function(e)
      if e.method == "POST" and #inner < 2 then
        inner[#inner + 1] = c:list_many({ conns[1], conns[4] }, { concurrency = 2 })
      end
    end })
    local outer = c:assign_batched(conns[2], { add = slice(11, 110) }, {
      batch_size = 10, concurrency = 3,
      on_progress = function()
        if #inner < 4 then
          inner[#inner + 1] = c:assign_batched(conns[3], { add = slice(111 + #inner * 10, 120 + #inner * 10) },
            { batch_size = 5 })
        end
      end,
    })
    c:close()
    assert.is_true(outer.ok)
    assert.same(slice(11, 110), outer.applied.add)
    for _, l in ipairs(outer.leases) do assert.equals(conns[2], l.sip_connection.uuid) end
    assert.equals(4, #inner)
    for _, r in ipairs(inner) do
      if r.applied then
        assert.is_true(r.ok)
        assert.equals(10, #r.applied.add)
        for _, l in ipairs(r.leases) do assert.equals(conns[3], l.sip_connection.uuid) end
      else
        assert.equals(3, #r[1].leases)
        assert.equals(0, #r[2].leases)
      end
    end
  end)

  it("lets Ctrl-C that lands as an answer's decoding ends through, not as an answer that could not be decoded",
    function()
      if rawget(_G, "jit") then
        pending("LuaJIT calls no return hook for a C function: the interrupt cannot be made to land there")
        return
      end
      local held = #assert(client:list(conns[1]))
      local fired = false
      local co = coroutine.create(function()
        -- lua.c's SIGINT hook also fires as a C function returns
        debug.sethook(function()
          if not fired and debug.getinfo(2, "f").func == core.answer_decode then
            fired = true
            error("interrupted!")
          end
        end, "r")
        return client:list(conns[1])
      end)
      local resumed, raised = coroutine.resume(co)
      assert.is_true(fired)
      assert.is_false(resumed)
      assert.matches("interrupted!", tostring(raised), 1, true)
      -- the client goes on
      assert.equals(held, #assert(client:list(conns[1])))
    end)

  it("a run stopped by an interrupt cancels its transfers, reports every uuid, and the next run is whole", function()
    emu:config({ latency = 0.2 })
    local transport = client._engine.transport
    -- interrupt a run the way lua.c does on SIGINT: a hook that raises,
    -- here once the run has transfers in flight
    local fired = false
    local co = coroutine.create(function()
      debug.sethook(function()
        if not fired and transport:pending() > 0 then
          fired = true
          error("interrupted!")
        end
      end, "", 100)
      return client:assign_batched(conns[3], { add = slice(111, 210) }, { batch_size = 10, concurrency = 4 })
    end)
    local resumed, stopped = coroutine.resume(co)
    assert.is_true(resumed, tostring(stopped))
    assert.is_truthy(tostring(stopped.interrupted):find("interrupted!", 1, true))
    assert.is_false(stopped.ok)
    assert.equals(0, transport:pending())
    -- every uuid is in applied or failed; those in flight may have been applied
    local count = #stopped.applied.add
    for _, f in ipairs(stopped.failed) do
      count = count + #f.add
      assert.equals("network", f.err.kind)
      assert.is_truthy(f.err.message:find("interrupted", 1, true))
    end
    assert.equals(100, count)
    emu:config({ latency = 0 })
    local report = client:assign_batched(conns[4], { add = slice(211, 310) }, { batch_size = 10 })
    assert.is_true(report.ok)
    assert.same(slice(211, 310), report.applied.add)
    for _, f in ipairs(report.failed) do assert.is_table(f.err) end
  end)
end)

describe("examples/cqueues.lua and examples/luv.lua #wire", function()
  local emu
  setup(function() emu = support.start({ latency = 0.2 }) end)
  teardown(function() if emu then emu:stop() end end)

  local function run(example, ...)
    local p = io.popen(("OPENTACT_URL=%s OPENTACT_TOKEN=%s %s %s/examples/%s %s 2>&1; echo \"status=$?\"")
      :format(emu.url, emu.token, LUA, support.ROOT, example, table.concat({ ... }, " ")))
    local out = p:read("*a")
    p:close()
    return out
  end

  for _, example in ipairs({ "cqueues.lua", "luv.lua" }) do
    it(example .. " lists several connections at once", function()
      local lib = example:match("^(%w+)")
      if not support.has_module(lib) then
        pending(("%s is not installed for %s (make deps installs it)"):format(lib, LUA))
        return
      end
      local conns = emu:state().connections
      emu:reset()
      local out = run(example, table.concat(conns, " "))
      assert.is_truthy(out:find("status=0", 1, true), out)
      assert.is_truthy(out:find(conns[1] .. ": 3 leases", 1, true), out)
      for i = 2, #conns do assert.is_truthy(out:find(conns[i] .. ": 0 leases", 1, true), out) end
      -- at once, not one after another: 4 answers each 0.2 s away were on
      -- the emulator together
      local stats = emu:stats()
      assert.equals(4, stats.requests)
      assert.is_true(stats.inflight_max > 1, "one at a time")
    end)
  end

  it("game_loop.lua runs 50 requests while stepping a 60 Hz loop", function()
    local out = run("game_loop.lua", emu:state().connections[1])
    assert.is_truthy(out:find("status=0", 1, true), out)
    assert.is_truthy(out:find("50 requests answered (0 failed)", 1, true), out)
    assert.is_truthy(out:match("worst frame time in step%(0%): [%d.]+ ms"), out)
  end)
end)
