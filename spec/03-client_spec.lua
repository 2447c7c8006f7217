-- The Lua layer without the network: options, version, printing, errors,
-- the client's life cycle.
local opentact = require("opentact")
local core = require("opentact.core")
local support = require("emulator")

local CONN = "66eb0a8a-571e-41b1-8f50-4d97275cfab7"

local read = support.read

describe("version #c", function()
  it("agrees across _VERSION, the rockspec and the User-Agent", function()
    local v = opentact._VERSION:match("^opentact (%d+%.%d+%.%d+)$")
    assert.is_string(v)
    local rockspec = read(support.ROOT .. "/opentact-" .. v .. "-1.rockspec")
    assert.equals(v .. "-1", rockspec:match('version = "([^"]+)"'))
    assert.is_truthy(rockspec:find('tag = "v' .. v .. '"', 1, true))
    local c = opentact.new({ token = "t" })
    assert.equals("lua-opentact/" .. v, c._opts.user_agent)
    c:close()
  end)
end)

describe("options #c", function()
  it("has the documented defaults", function()
    local c = opentact.new({ token = "t", base_url = "http://127.0.0.1:1" })
    local st = c._opts
    assert.same({ 30, 5, 2, 0.5, 8, true, 67108864, false, "curl" },
      { st.timeout, st.connect_timeout, st.retries, st.backoff, st.backoff_max, st.verify,
        st.max_body, st.retry_post, st.transport })
    c:close()
  end)

  it("strips a trailing slash from base_url", function()
    local c = opentact.new({ token = "t", base_url = "http://127.0.0.1:1/rest//" })
    assert.equals("http://127.0.0.1:1/rest", c._opts.base_url)
    c:close()
  end)

  it("takes the URL shapes people use, IPv6 literals included", function()
    for _, u in ipairs({ "http://[::1]:8080/rest", "https://api.opentact.org/rest", "http://localhost",
      "HTTP://127.0.0.1:1", "http://a-b.example:65535/x/y" }) do
      local c = opentact.new({ token = "t", base_url = u })
      assert.equals(u, c._opts.base_url)
      c:close()
    end
  end)

  local bad = {
    { { timeout = "30" }, "bad option 'timeout' to '%s' (a number of seconds from 0.001 to 2147483 expected, got string)" },
    { { timeout = 0.0005 }, "bad option 'timeout'" },
    { { connect_timeout = 0.0001 }, "bad option 'connect_timeout'" },
    { { timeout = 3e6 }, "bad option 'timeout'" },
    { { max_body = 1e300 }, "bad option 'max_body' to '%s' (an integer from 1 to 2^53 expected" },
    { { max_body = 2 ^ 64 }, "bad option 'max_body'" },
    { { max_body = 2 ^ 63 }, "bad option 'max_body'" },
    { { backoff = 1e10 }, "bad option 'backoff'" },
    { { base_url = "http://127.0.0.1:8080/rest?x=1" }, "bad option 'base_url'" },
    { { base_url = "http://127.0.0.1:8080/rest#frag" }, "bad option 'base_url'" },
    { { base_url = "http://127.0.0.1:0/rest" }, "bad option 'base_url'" },
    { { base_url = "http://127.0.0.1:70000" }, "bad option 'base_url'" },
    { { base_url = "http://host name/" }, "bad option 'base_url'" },
    { { token = ("x"):rep(1024 * 1024) }, "bad option 'token'" },
    { { timeout = 0 }, "bad option 'timeout'" },
    { { timeout = 0 / 0 }, "bad option 'timeout'" },
    { { timeout = math.huge }, "bad option 'timeout'" },
    { { connect_timeout = -1 }, "bad option 'connect_timeout'" },
    { { retries = 1.5 }, "bad option 'retries'" },
    { { retries = -1 }, "bad option 'retries'" },
    { { backoff = "x" }, "bad option 'backoff'" },
    { { backoff_max = -1 }, "bad option 'backoff_max'" },
    { { verify = "no" }, "bad option 'verify'" },
    { { ca_file = 1 }, "bad option 'ca_file'" },
    { { max_body = 0 }, "bad option 'max_body'" },
    { { user_agent = "a\r\nX-Evil: 1" }, "bad option 'user_agent'" },
    { { proxy = true }, "bad option 'proxy'" },
    { { retry_post = 1 }, "bad option 'retry_post'" },
    { { log = "print" }, "bad option 'log'" },
    { { transport = "socket" }, "bad option 'transport'" },
    { { base_url = "ftp://x" }, "bad option 'base_url'" },
    { { base_url = "api.opentact.org" }, "bad option 'base_url'" },
    { { token = 42 }, "bad option 'token'" },
    { { token = "" }, "bad option 'token'" },
    { { tokn = "x" }, "unknown option 'tokn'" },
    { { [1] = "x" }, "unknown option '1'" },
  }
  for _, c in ipairs(bad) do
    local name = next(c[1])
    it("raises for a bad " .. tostring(name), function()
      for fname, f in pairs({ new = opentact.new, configure = opentact.configure }) do
        local ok, msg = pcall(f, c[1])
        assert.is_false(ok)
        assert.is_truthy(msg:find(c[2]:gsub("%%s", fname), 1, true), msg)
      end
    end)
  end

  it("raises for non-table options", function()
    assert.has_error(function() opentact.new("token") end, "bad argument #1 to 'new' (table expected, got string)")
  end)

  it("never puts the token in an option error", function()
    for _, t in ipairs({ "secret\r\nX: y", "secret\0value", "secret\nvalue" }) do
      local ok, msg = pcall(opentact.new, { token = t })
      assert.is_false(ok)
      assert.is_falsy(msg:find("secret", 1, true), msg)
    end
  end)

  it("points the error at the caller's line", function()
    local ok, msg = pcall(function() opentact.new({ timeout = "x" }) end)
    assert.is_false(ok)
    assert.is_truthy(msg:find("03%-client_spec.lua:%d+:"), msg)
  end)

  describe("check_options", function()
    -- each bad option, as check_options says it: the option's name, and
    -- what its value should be when the value is the problem
    for _, c in ipairs(bad) do
      local name = next(c[1])
      it("names a bad " .. tostring(name) .. " and what it expects, without raising", function()
        local ok, err = opentact.check_options(c[1])
        assert.is_nil(ok)
        assert.equals(opentact.Error, getmetatable(err))
        assert.equals("invalid", err.kind)
        assert.equals(tostring(name), err.option)
        assert.is_truthy(err.message:find(c[2]:gsub("%%s", "check_options"), 1, true), err.message)
        if c[2]:find("^bad option") then
          assert.is_string(err.expected)
          assert.is_truthy(err.message:find("(" .. err.expected .. " expected, got ", 1, true), err.message)
        else
          assert.is_nil(err.expected) -- an unknown option: no value would do
        end
        -- one source: new raises what check_options returns
        local raised, msg = pcall(opentact.new, c[1])
        assert.is_false(raised)
        assert.equals(err.message:gsub("'check_options'", "'new'"), (msg:gsub("^[^:]*:%d+: ", "")))
      end)
    end

    it("takes what new takes", function()
      assert.is_true(opentact.check_options({ token = "t", base_url = "http://127.0.0.1:1" }))
      assert.is_true(opentact.check_options({ email = "a@example.com", password = "p", timeout = 1 }))
    end)

    it("says why options that are no table, or clash, are refused, naming no option's value", function()
      local ok, err = opentact.check_options("token")
      assert.is_nil(ok)
      assert.equals("bad argument #1 to 'check_options' (table expected, got string)", err.message)
      assert.is_nil(err.option)
      ok, err = opentact.check_options({ token = "t", email = "a@example.com", password = "p" })
      assert.is_nil(ok)
      assert.equals("token", err.option)
      assert.is_truthy(err.message:find("give either 'token' or 'email' and 'password', not both", 1, true))
    end)

    it("never puts a secret in its error", function()
      for _, opts in ipairs({ { token = "secret\r\nX: y" }, { email = "a@example.com", password = "secret\0value" },
        { token = "t", base_url = "http://user:secretpw@host name/" } }) do
        local ok, err = opentact.check_options(opts)
        assert.is_nil(ok)
        assert.is_falsy(tostring(err):find("secret", 1, true), tostring(err))
      end
    end)
  end)
end)

describe("argument errors #c", function()
  local c
  setup(function() c = opentact.new({ token = "t", base_url = "http://127.0.0.1:1", retries = 0 }) end)
  teardown(function() c:close() end)

  it("name the argument like the standard library", function()
    assert.has_error(function() c:list(12) end, "bad argument #1 to 'list' (string or target expected, got number)")
    assert.has_error(function() c:list() end, "bad argument #1 to 'list' (string or target expected, got nil)")
    assert.has_error(function() c:assign(CONN, "x") end, "bad argument #2 to 'assign' (table expected, got string)")
    assert.has_error(function() c:assign(CONN) end, "bad argument #2 to 'assign' (table expected, got nil)")
    assert.has_error(function() c:assign(CONN, { add = { 1 } }) end)
    local ok, msg = pcall(c.assign, c, CONN, { add = "x" })
    assert.is_false(ok)
    assert.is_truthy(msg:find("bad argument #2 to 'assign' (field 'add'", 1, true), msg)
  end)

  it("return invalid without sending for a bad uuid", function()
    local leases, err = c:list("nope")
    assert.is_nil(leases)
    assert.equals("invalid", err.kind)
    assert.equals(0, err.attempts)
    assert.equals("opentact: invalid: connection uuid 'nope' is not a uuid (8-4-4-4-12 hex digits) [nothing sent]",
      tostring(err))
  end)
end)

describe("uuids and holders #c", function()
  it("is_uuid takes 8-4-4-4-12 hex digits in either case, and nothing else", function()
    assert.is_true(opentact.is_uuid(CONN))
    assert.is_true(opentact.is_uuid(CONN:upper()))
    for _, x in ipairs({ CONN .. "\n", " " .. CONN, CONN:sub(2), CONN:gsub("%-", ""), CONN:gsub("a", "g"), "", 42,
      {}, true }) do
      assert.is_false(opentact.is_uuid(x), tostring(x))
    end
    assert.is_false(opentact.is_uuid(nil))
  end)

  it("is_national takes a number written without its country code for the end of a held one", function()
    assert.is_true(opentact.is_national("2125550001", 12125550001))
    assert.is_true(opentact.is_national(2125550001, "12125550001"))
    assert.is_true(opentact.is_national("(212) 555-0001", "+1 212 555 0001"))
    assert.is_true(opentact.is_national("5550001", 12125550001)) -- a local number: 7 digits
    -- with a + it has its country code; the whole number, or too short, or another end, is not one
    for _, c in ipairs({ { "+2125550001", 12125550001 }, { "12125550001", 12125550001 }, { "550001", 12125550001 },
      { "2125550002", 12125550001 }, { "not a number", 12125550001 }, { "2125550001", "x" } }) do
      assert.is_false(opentact.is_national(c[1], c[2]), c[1] .. " " .. tostring(c[2]))
    end
  end)

  it("holder says who holds a lease: its app first, else its connection, with its uuid as sent", function()
    local app = { uuid = "A2B3C4D5-0000-4000-8000-000000000001", name = "control-app-1" }
    local conn = { uuid = CONN:upper(), name = "sip-trunk-1" }
    assert.same({ kind = "connection", uuid = conn.uuid, name = "sip-trunk-1" },
      opentact.holder({ sip_connection = conn }))
    assert.same({ kind = "app", uuid = app.uuid, name = "control-app-1" },
      opentact.holder({ sip_connection = conn, sip_control_app = app }))
    assert.same({ kind = "connection", uuid = conn.uuid, name = "sip-trunk-1" },
      opentact.holder({ sip_connection = conn, sip_control_app = app }, "sip_connection"))
    -- a bare uuid, a name that is no name
    assert.same({ kind = "connection", uuid = CONN }, opentact.holder({ sip_connection = CONN }))
    assert.same({ kind = "app", uuid = CONN }, opentact.holder({ sip_control_app = { uuid = CONN, name = "" } }))
    -- nobody
    for _, lease in ipairs({ {}, { sip_connection = "" }, { sip_connection = { name = "x" } },
      { sip_control_app = opentact.Object and setmetatable({}, opentact.Object) } }) do
      assert.is_nil(opentact.holder(lease))
    end
  end)
end)

describe("errors #c", function()
  it("print as one line with status, method, short path and attempts", function()
    local _, err = core.answer_decode(404, '{"success":false,"message":"SIP connection\\nnot found","status":404}')
    setmetatable(err, opentact.Error)
    err.method, err.path, err.attempts = "GET", "/sip/connection/" .. CONN .. "/tnlease", 1
    assert.equals("opentact: not_found (404): SIP connection not found [GET /sip/connection/66eb…/tnlease, 1 attempt]",
      tostring(err))
    err.attempts = 3
    assert.is_truthy(tostring(err):find("3 attempts]", 1, true))
    assert.equals("x: " .. tostring(err), "x: " .. err)
  end)

  it("travel through error() unchanged", function()
    local _, err = core.answer_decode(500, "")
    setmetatable(err, opentact.Error)
    local ok, caught = pcall(error, err)
    assert.is_false(ok)
    assert.equals(err, caught)
    assert.is_truthy(tostring(caught):find("^opentact: server %(500%)"))
  end)
end)

describe("lease lists #c", function()
  local body = '{"success":true,"payload":[' ..
    '{"uuid":"0a1b2c3d-0000-4000-8000-000000000001","tn":{"tn":12125551234},"expired_on":"2027-01-01T00:00:00Z","autorenew":true},' ..
    '{"uuid":"0a1b2c3d-0000-4000-8000-000000000002","tn":null,"autorenew":false}]}'

  it("print one readable row per lease", function()
    local leases = setmetatable(core.answer_decode(200, body), opentact.Leases)
    local text = tostring(leases)
    assert.is_truthy(text:find("^2 leases\n"))
    assert.is_truthy(text:find("0a1b2c3d%-0000%-4000%-8000%-000000000001%s+12125551234%s+2027%-01%-01T00:00:00Z%s+yes"))
    assert.is_truthy(text:find("0a1b2c3d%-0000%-4000%-8000%-000000000002%s+%-%s+%-%s+no"))
    assert.is_falsy(text:find("table: 0x", 1, true))
    assert.is_falsy(text:find("e+10", 1, true))
  end)

  it("stay plain arrays", function()
    local leases = setmetatable(core.answer_decode(200, body), opentact.Leases)
    assert.equals(2, #leases)
    local n = 0
    for _ in ipairs(leases) do n = n + 1 end
    assert.equals(2, n)
    local cjson = require("cjson")
    assert.equals(2, #cjson.decode(cjson.encode(leases)))
  end)

  it("print an empty list", function()
    assert.equals("0 leases", tostring(setmetatable({}, opentact.Leases)))
  end)

  it("never send a server's control characters (escape sequences) to the terminal", function()
    local evil = setmetatable(core.answer_decode(200, '{"success":true,"payload":[' ..
      '{"uuid":"\\u001b[2J\\u001b]0;pwned\\u0007","expired_on":"x\\ry","autorenew":true}]}'), opentact.Leases)
    local text = tostring(evil)
    assert.is_falsy(text:find("[%z\1-\8\11-\31\127]"), text)
    assert.is_truthy(text:find("\\027[2J", 1, true), text)
    local report = setmetatable({ ok = false, applied = { add = {}, remove = {} }, leases = {},
      failed = { { add = { "u" }, remove = {}, err = setmetatable({ kind = "rejected", message = "bad\27[31m" },
        opentact.Error) } } }, opentact.Report)
    assert.is_falsy(tostring(report):find("\27", 1, true), tostring(report))
  end)
end)

describe("the curl transport's constructor #c", function()
  it("names the option it cannot use, never an argument number", function()
    local ok, msg = pcall(core.curl, { base_url = "http://x", user_agent = "u", timeout = "30" })
    assert.is_false(ok)
    assert.is_truthy(msg:find("option 'timeout' must be a number", 1, true), msg)
    ok, msg = pcall(core.curl, {})
    assert.is_false(ok)
    assert.is_truthy(msg:find("option 'base_url' must be a string", 1, true), msg)
    assert.is_falsy(msg:find("#-1", 1, true), msg)
  end)
end)

describe("client life cycle #c", function()
  it("is an object with a dotted metatable name that keeps no copy of the caller's table", function()
    local opts = { token = "t" }
    local c = opentact.new(opts)
    assert.equals(opentact.Client, getmetatable(c))
    assert.equals("opentact.Client", getmetatable(c).__name)
    assert.same({ token = "t" }, opts)
    assert.is_not.equal(opts, c._opts)
    assert.equals("opentact.Client (https://api.opentact.org/rest, curl, token)", tostring(c))
    c:close()
  end)

  it("closes idempotently and refuses use after close", function()
    local c = opentact.new({ token = "t" })
    assert.is_true(c:close())
    assert.is_true(c:close())
    assert.equals("opentact.Client (closed)", tostring(c))
    assert.has_error(function() c:list(CONN) end, "attempt to use a closed opentact client (in 'list')")
    assert.has_error(function() c:assign(CONN, { add = { CONN } }) end)
  end)

  it("is collected without being closed", function()
    for _ = 1, 50 do opentact.new({ token = "t" }) end
    collectgarbage()
    collectgarbage()
  end)

  if _VERSION == "Lua 5.4" then
    it("closes on <close>", function()
      local f = assert(load([[
        local opentact = ...
        local kept
        do
          local c <close> = opentact.new({ token = "t" })
          kept = c
        end
        return kept
      ]]))
      assert.equals("opentact.Client (closed)", tostring(f(opentact)))
    end)
  end
end)

describe("the default client #c", function()
  it("reports a missing token as an auth error, without raising", function()
    opentact.configure({ base_url = "http://127.0.0.1:1" })
    if not (os.getenv("OPENTACT_TOKEN") or os.getenv("OPENTACT_EMAIL")) then
      local leases, err = opentact.list(CONN)
      assert.is_nil(leases)
      assert.equals("auth", err.kind)
      assert.is_truthy(err.message:find("OPENTACT_TOKEN", 1, true))
    else
      pending("OPENTACT_TOKEN is set in this environment")
    end
  end)

  it("configure returns the new default client and closes the old one", function()
    local a = opentact.configure({ token = "a" })
    local b = opentact.configure({ token = "b" })
    assert.are_not.equal(a, b)
    assert.equals("opentact.Client (closed)", tostring(a))
    assert.equals("b", b:token())
  end)
end)
