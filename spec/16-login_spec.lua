-- Logging in with email and password, over the wire: the first login,
-- renewal before the JWT expires, one login for many requests, a 401 on a
-- fresh token, wrong credentials, a server that is down, and the secrets
-- kept out of everything a user can see.
local support = require("emulator")
local opentact = require("opentact")
local core = require("opentact.core")

local EMAIL, PASSWORD = "ops@example.com", "s3cret: pass word"

-- Every string reachable from `root` through tables (keys and values),
-- metatables included; functions are not opened.
local function strings_in(root)
  local out, seen = {}, {}
  local function walk(v)
    if type(v) == "string" then
      out[#out + 1] = v
    elseif type(v) == "table" and not seen[v] then
      seen[v] = true
      for k, x in pairs(v) do
        walk(k)
        walk(x)
      end
      walk(getmetatable(v))
    end
  end
  walk(root)
  return out
end

local function contains_any(texts, secrets)
  for _, t in ipairs(texts) do
    for _, s in ipairs(secrets) do
      if t:find(s, 1, true) then return s end
    end
  end
  return nil
end

describe("logging in #wire #c", function()
  local emu, st, email
  -- A JWT is shared by the clients of a Lua state with the same email and
  -- password: each test logs in as a user of its own.
  local users, USERS = {}, 24
  for i = 1, USERS do users[i] = ("user%d@example.com:%s"):format(i, PASSWORD) end
  users[#users + 1] = "other@example.com:x-other-pw"
  -- exp claims a server may send that are no date, each logged in with
  -- an email of its own
  local ODD_EXPS = { "1e300", "1e17", "-1e300", "1e999", "-1e999", "\"soon\"", "{}" }
  for i = 1, #ODD_EXPS do users[#users + 1] = ("exp%d@example.com:%s"):format(i, PASSWORD) end
  local next_user = 0

  setup(function()
    emu = support.start({ users = users, leases = 20 })
    st = emu:state()
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function()
    emu:reset()
    next_user = next_user + 1
    assert(next_user <= USERS, "more tests than users")
    email = ("user%d@example.com"):format(next_user)
  end)

  -- time that passes when the test says so, for the client and the server
  local function clock()
    local advance, restore = emu:clock()
    finally(restore)
    return advance
  end

  local function client(opts)
    local o = { base_url = emu.url, email = email, password = PASSWORD, backoff = 0.01, backoff_max = 0.05,
      connect_timeout = 30 }
    for k, v in pairs(opts or {}) do o[k] = v end
    return opentact.new(o)
  end

  it("logs in on first use, once", function()
    local c = client()
    assert.equals(0, emu:stats().logins)
    assert.equals(3, #c:list(st.connections[1]))
    assert.equals(3, #c:list(st.connections[1]))
    assert.equals(1, emu:stats().logins)
    local token = c:token()
    assert.matches("^[%w_-]+%.[%w_-]+%.[%w_-]+$", token)
    assert.equals(1, emu:stats().logins)
    assert.equals("opentact.Client (" .. emu.url .. ", curl, login as " .. email .. ")", tostring(c))
    c:close()
  end)

  it("renews a 200-second token before it expires: no 401 on the wire, a login per renewal", function()
    local advance = clock()
    emu:config({ token_ttl = 200 })
    local refused, why = 0, {}
    local auth = require("opentact.auth")
    local c = client({ log = function(e)
      if e.status == 401 then
        refused = refused + 1
        why[#why + 1] = ("%s %s attempt %d at %.3f"):format(e.method, e.path, e.attempt, auth.clock())
      end
    end })
    local calls = 0
    -- 1000 seconds of the client's and the server's clocks, a call every
    -- 10 seconds; the real time a call takes (seconds under a sanitizer on
    -- a busy machine) stays well inside the 50 s the renewal leaves
    for _ = 1, 100 do
      assert(c:list(st.connections[1]))
      calls = calls + 1
      advance(10)
    end
    c:close()
    if refused > 0 then
      -- what the server held against the token, for the failure's message
      for _, r in ipairs(emu:requests()) do
        if r.token and r.token ~= "valid" then why[#why + 1] = ("the emulator: %s %s: token %s"):format(r.method, r.path, r.token) end
      end
    end
    assert.equals(0, refused, table.concat(why, "; "))
    local logins = emu:stats().logins
    -- a token lives 199 to 200 s (its times are whole seconds) and is
    -- renewed a quarter of its lifetime (50 s) before its end: about one
    -- login in 150 s, 5 to 10 in 1000 s, not one a call
    assert.is_true(logins >= 5 and logins <= 10, ("%d logins for %d calls"):format(logins, calls))
    assert.is_true(calls > 2 * logins)
  end)

  it("makes one login for 16 requests that find the token expired", function()
    -- a 60-second token has more than 59 s left when it comes (its times
    -- are whole seconds) and is renewed only in its last 15 s: each
    -- advance jumps past its end, so nothing renews it before it expires
    local advance = clock()
    emu:config({ token_ttl = 60 })
    local c = client()
    assert(c:token())
    assert.equals(1, emu:stats().logins)
    advance(60.05) -- the token's exp is behind us
    local conns = {}
    for i = 1, 16 do conns[i] = st.connections[(i - 1) % #st.connections + 1] end
    local results = c:list_many(conns, { concurrency = 16 })
    for i = 1, 16 do assert.is_nil(results[i].err) end
    assert.equals(2, emu:stats().logins)
    -- with callbacks too
    advance(60.05)
    local done = 0
    for i = 1, 16 do
      c:list(conns[i], function(leases, err)
        assert.is_nil(err)
        assert.is_table(leases)
        done = done + 1
      end)
    end
    while c:step(0.05) > 0 do end
    assert.equals(16, done)
    assert.equals(3, emu:stats().logins)
    c:close()
  end)

  it("logs in again after a 401 and sends the request once more; a second 401 is an auth error", function()
    local c = client()
    assert(c:token())
    emu:faults({ { status = 401, message = "token revoked" } })
    assert.equals(3, #c:list(st.connections[1]))
    assert.equals(2, emu:stats().logins)
    emu:faults({ { status = 401, message = "token revoked" }, {}, { status = 401, message = "token revoked" } })
    local leases, err = c:list(st.connections[1])
    assert.is_nil(leases)
    assert.equals("auth", err.kind)
    assert.equals("token revoked", err.message)
    assert.equals(3, emu:stats().logins)
    c:close()
  end)

  it("answers wrong credentials with an auth error and the server's message, sending nothing else", function()
    local c = client({ password = "wrong password" })
    local leases, err = c:list(st.connections[1])
    assert.is_nil(leases)
    assert.equals("auth", err.kind)
    assert.equals(401, err.status)
    assert.equals("wrong credentials", err.message)
    local token, terr = c:token()
    assert.is_nil(token)
    assert.equals("auth", terr.kind)
    for _, r in ipairs(emu:requests()) do assert.equals("/auth", r.path) end
    c:close()
  end)

  it("takes a 403 at login for a refusal of the moment, not of the credentials", function()
    -- a lockout or a firewall passes: after a moment the client logs in
    -- again (a 401 says the credentials are wrong, and is kept for good)
    emu:faults({ { status = 403, message = "locked for a while" } })
    local c = client({ retries = 0 })
    local leases, err = c:list(st.connections[1])
    assert.is_nil(leases)
    assert.equals(403, err.status)
    -- for that moment, what needs a login fails at once, sending nothing
    local sent = #emu:requests()
    leases, err = c:list(st.connections[1])
    assert.is_nil(leases)
    assert.equals(403, err.status)
    assert.equals(sent, #emu:requests())
    -- the moment is over (auth keeps its end on its clock)
    clock()(1)
    assert.equals(3, #assert(c:list(st.connections[1])))
    assert.equals(1, emu:stats().logins)
    c:close()
  end)

  it("retries a login like a read, and reports a server that stays down", function()
    emu:faults({ { status = 503 }, { reset = true } })
    local c = client()
    assert.equals(3, #c:list(st.connections[1]))
    assert.equals(1, emu:stats().logins)
    c:close()
    local down = opentact.new({ base_url = "http://127.0.0.1:" .. support.free_port(), email = email,
      password = PASSWORD, backoff = 0.01, retries = 2 })
    local leases, err = down:list(st.connections[1])
    assert.is_nil(leases)
    assert.equals("network", err.kind)
    assert.matches("^logging in failed: ", err.message)
    assert.is_truthy(tostring(err):find("GET /sip/connection/", 1, true))
    down:close()
  end)

  it("shares one login between clients with the same credentials", function()
    local a, b = client(), client()
    assert(a:list(st.connections[1]))
    assert(b:list(st.connections[1]))
    assert.equals(1, emu:stats().logins)
    local other = client({ email = "other@example.com", password = "x-other-pw" })
    assert(other:list(st.connections[1]))
    local wrong = client({ password = "not the password" })
    assert.is_nil((wrong:list(st.connections[1])))
    assert.equals(2, emu:stats().logins)
    a:close() b:close() other:close() wrong:close()
  end)

  it("ends every waiting request when a login fails, with one login, bulk and callbacks alike", function()
    local c = client({ password = "not the password" })
    local conns = {}
    for i = 1, 5 do conns[i] = st.connections[(i - 1) % #st.connections + 1] end
    local results = c:list_many(conns, { concurrency = 2 })
    for i = 1, 5 do assert.equals("auth", results[i].err.kind) end
    local called = 0
    for i = 1, 130 do
      c:list(conns[i % 5 + 1], function(_, err)
        assert.equals("auth", err.kind)
        called = called + 1
      end)
    end
    while c:step(0.05) > 0 do end
    assert.equals(130, called)
    -- refused credentials are not tried again
    assert.equals(1, emu:stats().auth_failures)
    c:close()
  end)

  it("renews 20-second tokens without a login storm", function()
    local advance = clock()
    emu:config({ token_ttl = 20 })
    local c = client()
    local calls = 0
    -- 40 seconds of both clocks, a call every 0.26 (out of step with the
    -- seconds); the real time a call takes stays inside the 5 s renewal
    -- window
    for _ = 1, 154 do
      -- a token's times are whole seconds: one issued late in a second is
      -- nearly dead on arrival, and a call may meet its end; not a storm
      c:list(st.connections[1])
      calls = calls + 1
      advance(0.26)
    end
    c:close()
    local logins = emu:stats().logins
    assert.is_true(calls > 50, calls .. " calls")
    -- about one a quarter of a lifetime at worst, never one a call
    assert.is_true(logins <= 40 and logins < calls / 2, ("%d logins for %d calls"):format(logins, calls))
  end)

  it("does not try a failed renewal again on every request", function()
    local advance = clock()
    emu:config({ token_ttl = 20 })
    local c = client({ retries = 0 })
    assert(c:token())
    -- into the renewal window, where the renewal login meets a server
    -- error: the token has 19 to 20 s left when it comes (its times are
    -- whole seconds) and is renewed in its last 5 s, from 14 to 15 s on;
    -- 15.5 s on, it has 3.5 s or more before it expires
    advance(15.5)
    -- the renewal and the call that starts it race: both meet an error
    emu:faults({ { status = 500, message = "down" }, { status = 500, message = "down" } })
    local auths_before = 0
    for _, r in ipairs(emu:requests()) do if r.path == "/auth" then auths_before = auths_before + 1 end end
    for _ = 1, 30 do c:list(st.connections[1]) end
    local auths = -auths_before
    for _, r in ipairs(emu:requests()) do if r.path == "/auth" then auths = auths + 1 end end
    assert.is_true(auths <= 2, auths .. " logins tried")
    c:close()
  end)

  it("is not held up by a log hook that yields in a login and is never resumed", function()
    if _VERSION == "Lua 5.1" and not rawget(_G, "jit") then
      pending("Lua 5.1 cannot yield across pcall, which the log hook is called through")
      return
    end
    local c = client({ log = function(e) if e.path == "/auth" then coroutine.yield() end end })
    local co = coroutine.create(function() return c:list(st.connections[1]) end)
    assert(coroutine.resume(co)) -- it yields in the hook, and is dropped
    assert.equals("suspended", coroutine.status(co))
    co = nil -- luacheck: ignore
    local leases, err = c:list(st.connections[1])
    assert.is_nil(err)
    assert.equals(3, #leases)
    c:close()
  end)

  it("logs in itself when another client's login is left hanging", function()
    local advance = clock()
    local idle = client()
    -- a login on the wire that nobody drives (no step)
    idle:list(st.connections[1], function() end)
    local c = client()
    local got
    c:list(st.connections[1], function(l, e) got = { l, e } end)
    -- a login that may still come: this client waits for it
    for _ = 1, 5 do c:step(0.02) end
    assert.is_nil(got)
    -- one in flight for 5 s is taken for lost
    advance(5)
    local deadline = core.now() + 30
    while not got and core.now() < deadline do c:step(0.02) end
    assert.is_table(got, "still waiting for the lost login")
    assert.is_nil(got[2])
    assert.equals(3, #got[1])
    c:close()
    idle:close()
  end)

  it("keeps the password and the token out of errors, log events, tostring and the client's tables", function()
    local captured, events = {}, {}
    local c = client({ log = function(e) events[#events + 1] = e end })
    local token = assert(c:token())
    local basic = core.base64(email .. ":" .. PASSWORD)
    -- errors that quote what the server said, even when it echoes a secret
    emu:faults({ { status = 400, message = "bad token " .. token .. " for " .. PASSWORD } })
    local _, err = c:assign(st.connections[1], { add = { st.leases[5] } })
    captured[#captured + 1] = tostring(err)
    captured[#captured + 1] = err.message
    local wrong = client({ password = PASSWORD .. "-wrong" })
    local _, werr = wrong:list(st.connections[1])
    captured[#captured + 1] = tostring(werr)
    captured[#captured + 1] = tostring(c)
    captured[#captured + 1] = tostring(wrong)
    for _, s in ipairs(strings_in(c)) do captured[#captured + 1] = s end
    for _, s in ipairs(strings_in(wrong)) do captured[#captured + 1] = s end
    for _, s in ipairs(strings_in(events)) do captured[#captured + 1] = s end
    for _, s in ipairs(strings_in(err)) do captured[#captured + 1] = s end
    assert.is_nil(contains_any(captured, { PASSWORD, token, basic }))
    assert.matches("[redacted]", err.message, 1, true)
    c:close()
    wrong:close()
  end)

  it("takes a token whose exp is no date: used until the server refuses it, never an error of its own", function()
    local function b64url(x) return (core.base64(x):gsub("=+$", ""):gsub("[+/]", { ["+"] = "-", ["/"] = "_" })) end
    for i, exp in ipairs(ODD_EXPS) do
      local token = b64url('{"alg":"HS256"}') .. "." .. b64url(('{"iat":%d,"exp":%s}'):format(os.time(), exp))
        .. "." .. b64url("unsigned")
      emu:faults({ { ctype = "application/json", raw = '{"success":true,"payload":{"token":"' .. token .. '"}}' } })
      local c = client({ email = ("exp%d@example.com"):format(i) })
      assert.equals(token, c:token(), exp)
      -- the emulator refuses it: one login, and the request goes through
      local leases, err = c:list(st.connections[1])
      assert.is_nil(err, exp)
      assert.equals(3, #leases)
      assert.equals(i, emu:stats().logins)
      c:close()
    end
  end)

  it("refuses a token and an email together, and an email without a password", function()
    assert.has_error(function() opentact.new({ token = "t", email = EMAIL, password = "p" }) end,
      "bad argument #1 to 'new' (give either 'token' or 'email' and 'password', not both)")
    local ok, why = pcall(opentact.new, { email = EMAIL })
    assert.is_false(ok)
    if not os.getenv("OPENTACT_PASSWORD") then assert.matches("'email' without 'password'", why) end
    ok, why = pcall(opentact.new, { email = "a:b@example.com", password = "p" })
    assert.is_false(ok)
    assert.matches("bad option 'email'", why)
  end)

  it("gives the token of a client made with one, and says when there is none", function()
    assert.equals("static-token", opentact.new({ token = "static-token" }):token())
    local calls = 0
    local f = opentact.new({ token = function() calls = calls + 1 return "from-function" end })
    assert.equals("from-function", f:token())
    assert.equals("from-function", f:token())
    assert.equals(1, calls)
  end)
end)

describe("the command line's login and token #wire", function()
  local emu, st, home
  setup(function()
    emu = support.start({ users = { EMAIL .. ":" .. PASSWORD } })
    st = emu:state()
    home = os.tmpname()
    os.remove(home)
  end)
  teardown(function()
    if emu then emu:stop() end
    os.execute("rm -rf '" .. home .. "'")
  end)

  local function run(args, env)
    return support.run(("unset OPENTACT_TOKEN OPENTACT_EMAIL OPENTACT_PASSWORD; XDG_CONFIG_HOME=%s "
      .. "OPENTACT_URL=%s %s %s %s/bin/opentact %s < /dev/null"):format(home, emu.url, env or "", support.LUA,
      support.ROOT, args))
  end

  it("prints a fresh token, and nothing else, with email and password from the environment", function()
    local out, status = run("token", ("OPENTACT_EMAIL=%s OPENTACT_PASSWORD='%s'"):format(EMAIL, PASSWORD))
    assert.equals(0, status, out)
    assert.matches("^[%w_-]+%.[%w_-]+%.[%w_-]+\n$", out)
    assert.equals(1, emu:stats().logins)
    -- every command works with them
    out, status = run("list " .. st.connections[1], ("OPENTACT_EMAIL=%s OPENTACT_PASSWORD='%s'"):format(EMAIL, PASSWORD))
    assert.equals(0, status, out)
    assert.matches("^3 leases", out)
  end)

  it("logs in, keeps the token for the next commands, and never prints the password", function()
    local out, status = run("login --email " .. EMAIL, ("OPENTACT_PASSWORD='%s'"):format(PASSWORD))
    assert.equals(0, status, out)
    assert.matches("^Logged in as " .. EMAIL:gsub("%p", "%%%0") .. "%. The token is kept in ", out)
    assert.is_falsy(out:find(PASSWORD, 1, true))
    local p = io.popen("stat -c %a '" .. home .. "/opentact/token'")
    assert.equals("600", p:read("*l"))
    p:close()
    out, status = run("list " .. st.connections[1])
    assert.equals(0, status, out)
    assert.matches("^3 leases", out)
  end)

  it("never sends the kept token to another server, and keeps it readable by its owner only", function()
    local other = support.start({})
    finally(function() other:stop() end)
    local path = home .. "/opentact/token"
    os.execute("chmod 644 '" .. path .. "'")
    local out, status = run("login --email " .. EMAIL, ("OPENTACT_PASSWORD='%s'"):format(PASSWORD))
    assert.equals(0, status, out)
    local p = io.popen("stat -c %a '" .. path .. "'")
    assert.equals("600", p:read("*l"))
    p:close()
    out, status = run("list --url " .. other.url .. " " .. st.connections[1])
    assert.equals(2, status, out)
    assert.matches("is for " .. emu.url:gsub("%p", "%%%0"), out)
    assert.equals(0, #other:requests())
  end)

  it("exits 1 with the server's message for a wrong password, 2 without one", function()
    local out, status = run("login --email " .. EMAIL, "OPENTACT_PASSWORD=wrong-password")
    assert.equals(1, status, out)
    assert.matches("opentact: auth %(401%): wrong credentials", out)
    assert.is_falsy(out:find("wrong-password", 1, true))
    out, status = run("login --email " .. EMAIL)
    assert.equals(2, status, out)
    assert.matches("set OPENTACT_PASSWORD", out)
  end)
end)
