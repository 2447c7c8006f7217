-- The list/assign/error contract of API.md, over real sockets against the
-- local emulator. Tagged #wire: `make test` runs these on every Lua.
local opentact = require("opentact")
local support = require("emulator")

local HAS_INTEGERS = math.type ~= nil
local LUA = support.LUA

describe("over the wire #wire #c", function()
  local emu, client, conns, leases
  local function fresh(opts) return emu:client(opts) end

  setup(function() emu, conns, leases = support.start_with_uuids() end)
  teardown(function() support.stop(emu, client) end)
  before_each(function() client = emu:renew(client) end)

  describe("list", function()
    it("returns the leases a connection holds, fully decoded", function()
      local got, err = client:list(conns[1])
      assert.is_nil(err)
      assert.equals(3, #got)
      for i = 1, 3 do assert.equals(leases[i], got[i].uuid) end
      local l = got[1]
      assert.equals(12125550001, l.tn.tn)
      if HAS_INTEGERS then
        assert.equals("integer", math.type(l.tn.tn))
        assert.equals("integer", math.type(l.class4_product_item_id))
      end
      assert.equals("12125550001", tostring(l.tn.tn))
      assert.equals(conns[1], l.sip_connection.uuid)
      assert.is_nil(l.sip_control_app)
      assert.is_nil(l.messaging_profile)
      assert.equals("Société Télécom Ünïon", l.account.name)
      assert.equals(1250.75, l.account.balance)
      assert.is_boolean(l.autorenew)
      assert.is_string(l.expired_on)
    end)

    it("accepts an upper-case uuid by lower-casing it", function()
      local got = client:list(conns[1]:upper())
      assert.equals(3, #got)
    end)

    it("returns an empty list for a connection without leases", function()
      local got = client:list(conns[2])
      assert.same({}, setmetatable(got, nil))
    end)

    it("prints readably", function()
      local text = tostring(client:list(conns[1]))
      assert.is_truthy(text:find("^3 leases\n"))
      assert.is_truthy(text:find(leases[1]:gsub("%-", "%%-") .. "%s+12125550001%s+%d%d%d%d%-%d%d%-%d%dT"), text)
    end)

    it("sends the documented headers and reuses the connection", function()
      client:list(conns[1])
      client:list(conns[2])
      local log = emu:requests()
      assert.equals(2, #log)
      for _, r in ipairs(log) do
        assert.equals("GET", r.method)
        assert.equals("application/json", r.accept)
        assert.equals("valid", r.token)
        assert.equals("lua-opentact/" .. opentact._VERSION:match("%d+%.%d+%.%d+"), r.user_agent)
        assert.is_nil(r.content_type)
      end
      assert.equals("/sip/connection/" .. conns[1] .. "/tnlease", log[1].path)
      assert.equals(log[1].connection, log[2].connection)
    end)

    it("works under a base URL with a path", function()
      local c = fresh({ base_url = emu.url .. "/rest/" })
      assert.equals(3, #c:list(conns[1]))
      c:close()
    end)
  end)

  describe("assign", function()
    it("adds leases and returns them in their new state", function()
      local got, err = client:assign(conns[1], { add = { leases[10], leases[11] } })
      assert.is_nil(err)
      assert.equals(2, #got)
      assert.equals(leases[10], got[1].uuid)
      assert.equals(conns[1], got[1].sip_connection.uuid)
      assert.equals(5, #client:list(conns[1]))
    end)

    it("sends the exact body with Content-Type", function()
      client:assign(conns[2], { add = { leases[10]:upper() }, remove = { leases[11] } })
      local r = emu:requests()[1]
      assert.equals("POST", r.method)
      assert.equals("application/json", r.content_type)
      assert.equals('{"add":["' .. leases[10] .. '"],"remove":["' .. leases[11] .. '"]}', r.body)
    end)

    it("removes a lease from the connection", function()
      local got = client:assign(conns[1], { remove = { leases[1] } })
      assert.equals(1, #got)
      assert.is_nil(got[1].sip_connection)
      local now = client:list(conns[1])
      assert.equals(2, #now)
      for _, l in ipairs(now) do assert.are_not.equal(leases[1], l.uuid) end
    end)

    it("moves a lease held by another connection", function()
      client:assign(conns[2], { add = { leases[2] } })
      assert.equals(2, #client:list(conns[1]))
      assert.equals(leases[2], client:list(conns[2])[1].uuid)
    end)

    it("refuses an unknown lease with the server's message, changing nothing", function()
      local unknown = "0a1b2c3d-0000-4000-8000-00000000ffff"
      local got, err = client:assign(conns[1], { add = { leases[20], unknown } })
      assert.is_nil(got)
      assert.equals("rejected", err.kind)
      assert.equals(400, err.status)
      assert.is_false(err.retryable)
      assert.equals(1, err.attempts)
      assert.is_truthy(err.message:find(unknown, 1, true))
      assert.equals(3, #client:list(conns[1]))
    end)

    it("sends nothing for invalid input", function()
      local cases = {
        { conns[1], {} },
        { conns[1], { add = { leases[1], leases[1] } } },
        { conns[1], { add = { leases[1] }, remove = { leases[1] } } },
        { conns[1], { add = { "not-a-uuid" } } },
        { "not-a-uuid", { add = { leases[1] } } },
      }
      for _, c in ipairs(cases) do
        local got, err = client:assign(c[1], c[2])
        assert.is_nil(got)
        assert.equals("invalid", err.kind)
        assert.equals(0, err.attempts)
      end
      local _, err = client:list("66EB0A8A-571E-41B1-8F50-4D97275CFAB")
      assert.equals("invalid", err.kind)
      assert.equals(0, emu:stats().requests)
    end)
  end)

  describe("errors", function()
    it("auth for a wrong token, which never shows", function()
      local c = fresh({ token = "wrong-token-value-123" })
      local got, err = c:list(conns[1])
      assert.is_nil(got)
      assert.equals("auth", err.kind)
      assert.equals(401, err.status)
      assert.is_false(err.retryable)
      assert.equals(1, err.attempts)
      assert.is_falsy(tostring(err):find("wrong-token-value-123", 1, true))
      c:close()
    end)

    it("not_found for an unknown connection, with the server's message", function()
      local got, err = client:list("66eb0a8a-571e-41b1-8f50-4d97275cfab7")
      assert.is_nil(got)
      assert.equals("not_found", err.kind)
      assert.equals(404, err.status)
      assert.equals("opentact: not_found (404): SIP connection not found [GET /sip/connection/66eb…/tnlease, 1 attempt]",
        tostring(err))
    end)

    it("network when nothing listens, marked as never sent", function()
      local c = fresh({ base_url = "http://127.0.0.1:" .. support.free_port(), retries = 0 })
      local got, err = c:list(conns[1])
      assert.is_nil(got)
      assert.equals("network", err.kind)
      assert.is_nil(err.status)
      assert.is_true(err.retryable)
      assert.is_false(err.sent)
      c:close()
    end)

    it("timeout when the answer is late", function()
      emu:faults({ { delay = 1 } })
      local c = fresh({ timeout = 0.2, retries = 0 })
      local got, err = c:list(conns[1])
      assert.is_nil(got)
      assert.equals("timeout", err.kind)
      assert.is_true(err.retryable)
      c:close()
    end)

    it("protocol for an answer that is not JSON", function()
      emu:faults({ { raw = "<html>maintenance</html>", status = 200 } })
      local got, err = client:list(conns[1])
      assert.is_nil(got)
      assert.equals("protocol", err.kind)
      assert.equals(200, err.status)
    end)

    it("protocol for a redirect, which is not followed", function()
      emu:faults({ { status = 302 } })
      local got, err = client:list(conns[1])
      assert.is_nil(got)
      assert.equals("protocol", err.kind)
      assert.equals(302, err.status)
      assert.equals(1, emu:stats().requests)
    end)

    it("protocol for an answer over max_body", function()
      local c = fresh({ max_body = 1000 })
      local got, err = c:list(conns[1])
      assert.is_nil(got)
      assert.equals("protocol", err.kind)
      assert.is_truthy(err.message:find("max_body", 1, true))
      c:close()
    end)

    it("server for a 5xx, with a sentence when the body has none", function()
      emu:faults({ { status = 502, body = "<html>bad gateway</html>" } })
      local got, err = fresh({ retries = 0 }):list(conns[1])
      assert.is_nil(got)
      assert.equals("server", err.kind)
      assert.equals(502, err.status)
      assert.is_true(err.retryable)
      assert.equals("the server answered HTTP 502 (Bad Gateway) without a message", err.message)
    end)

    it("rate_limited for a 429 with a long Retry-After", function()
      emu:faults({ { status = 429, retry_after = "120" } })
      local got, err = client:list(conns[1])
      assert.is_nil(got)
      assert.equals("rate_limited", err.kind)
      assert.equals(120, err.retry_after)
      assert.equals(1, err.attempts)
    end)
  end)

  describe("the module-level API", function()
    it("uses the configured default client", function()
      opentact.configure({ token = emu.token, base_url = emu.url })
      local got = opentact.list(conns[1])
      assert.equals(3, #got)
      local added = opentact.assign(conns[1], { add = { leases[50] } })
      assert.equals(leases[50], added[1].uuid)
      opentact.configure({ token = "x", base_url = emu.url }):close()
    end)

    it("prints, never showing an OPENTACT_URL it would refuse (it may hold a password)", function()
      local cmd = ("OPENTACT_URL='https://ops:hunter2pw@api.example.com/rest' %s -e %q 2>&1")
        :format(LUA, 'io.write(tostring(require("opentact")))')
      local p = io.popen(cmd)
      local out = p:read("*a")
      p:close()
      assert.matches("not made yet", out)
      assert.matches("OPENTACT_URL is not a valid URL", out)
      assert.is_falsy(out:find("hunter2pw", 1, true), out)
    end)

    it("reads OPENTACT_TOKEN and OPENTACT_URL", function()
      local script = ([[
        local o = require("opentact")
        local l, e = o.list(%q)
        io.write(l and #l or tostring(e))
      ]]):format(conns[1])
      local cmd = ("OPENTACT_TOKEN=%s OPENTACT_URL=%s %s -e %q 2>&1"):format(emu.token, emu.url, LUA, script)
      local p = io.popen(cmd)
      local out = p:read("*a")
      p:close()
      assert.equals("3", out)
    end)
  end)
end)

-- Answers of 2 MB and more are received into their own mapping (2 MB pages
-- where the kernel gives them); they must come out the same as any other.
describe("large answers #wire #c", function()
  -- two connections: 2,000 leases (about 2.3 MB) and 4,000 (about 4.6 MB)
  local emu, client, small, big, held
  setup(function()
    emu = support.start({ leases = 6000 })
    local state = emu:state()
    small, big = state.connections[2], state.connections[3]
    local map = {}
    held = { [small] = {}, [big] = {} }
    for i, u in ipairs(state.leases) do
      local conn = i <= 2000 and small or big
      map[u] = { sip_connection = conn }
      held[conn][u] = true
    end
    emu:holders(map)
  end)
  teardown(function() support.stop(emu, client) end)
  before_each(function()
    if client then client:close() end
    client = emu:client()
  end)

  -- plain comparisons, one assertion: thousands of them cost minutes
  -- under Valgrind
  local function check(conn, got, err)
    assert.is_nil(err)
    local n = 0
    for _ in pairs(held[conn]) do n = n + 1 end
    assert.equals(n, #got)
    local seen, wrong = {}, nil
    for _, lease in ipairs(got) do
      local u = lease.uuid
      if not held[conn][u] or seen[u] or lease.sip_connection.uuid ~= conn then
        wrong = wrong or tostring(u)
      end
      seen[u] = true
    end
    assert.is_nil(wrong, "a lease not held, twice, or on another connection")
  end

  it("decodes a list of 2,000 leases (about 2.3 MB) with a Content-Length, twice on one client", function()
    local size = #select(2, emu:raw("GET", "/sip/connection/" .. small .. "/tnlease", { ["x-auth-token"] = emu.token }))
    assert.is_true(size > 2 * 1024 * 1024, size .. " bytes")
    check(small, client:list(small))
    check(small, client:list(small))
  end)

  it("decodes a larger answer after a smaller one, and a smaller after a larger", function()
    -- the buffer kept from the last large answer is too small for the next
    check(small, client:list(small))
    check(big, client:list(big))
    check(small, client:list(small))
    check(big, client:list(big))
  end)

  it("decodes them chunked, the buffer growing past 2 MB as the bytes come", function()
    emu:faults({ { chunked = true }, { chunked = true } })
    check(small, client:list(small))
    check(big, client:list(big))
  end)

  it("grows a chunked answer past 4 MB in a fresh process", function()
    -- no buffer kept from an earlier answer: it is mapped at 2 MB, again
    -- at 4 MB (the 2 MB one kept), and again at 8 MB, where the one kept
    -- is too small to take
    emu:faults({ { chunked = true } })
    local script = ([[
      local c = require("opentact").new({ token = %q, base_url = %q })
      local got, err = c:list(%q)
      io.write(got and #got or tostring(err))
    ]]):format(emu.token, emu.url, big)
    local p = io.popen(("%s -e %q 2>&1"):format(LUA, script))
    local out = p:read("*a")
    p:close()
    assert.equals("4000", out)
  end)

  it("reads one back for its uuids only", function()
    local engine = require("opentact.engine")
    local core = require("opentact.core")
    local uuids = client._engine:call(engine.request("GET", core.request_list(small), nil, "uuids"))
    assert.equals(2000, #uuids)
    local wrong
    for _, u in ipairs(uuids) do
      if not held[small][u] then wrong = wrong or tostring(u) end
    end
    assert.is_nil(wrong)
  end)

  local function child(script)
    local p = io.popen(("%s -e %q 2>&1"):format(LUA, script))
    local out = p:read("*a")
    p:close()
    return out
  end

  it("tells the collector of a large answer's bytes, but leaves a stopped one stopped", function()
    -- in a process of its own, whose heap is small enough for one step to
    -- finish a cycle: a weak key dies if the collector ran
    local out = child(([[
      local c = require("opentact").new({ token = %q, base_url = %q })
      assert(c:list(%q))
      local function alive_after(stop)
        collectgarbage("collect")
        if stop then collectgarbage("stop") end
        local weak = setmetatable({}, { __mode = "k" })
        weak[{}] = true
        assert(#assert(c:list(%q)) == 2000)
        collectgarbage("restart")
        return next(weak) ~= nil
      end
      io.write(tostring(alive_after(false)), " ", tostring(alive_after(true)))
    ]]):format(emu.token, emu.url, small, small))
    local running, stopped = out:match("^(%a+) (%a+)$")
    -- stopped, it stays stopped, on every Lua
    assert.equals("true", stopped, out)
    -- running, it was made to work as a 2.3 MB string would have made it;
    -- Lua 5.1 and LuaJIT cannot tell a stopped collector, and are left be
    if _VERSION ~= "Lua 5.1" then assert.equals("false", running, out) end
  end)

  it("keeps a large answer from being read by a finalizer while it is read", function()
    -- the collector, stepped before the decode, runs a finalizer that
    -- reaches for the same answer: it is refused, and the first read ends
    -- well (it used to read freed memory)
    local out = child(([[
      local core = require("opentact.core")
      local t = core.curl({ base_url = %q, user_agent = "spec", timeout = 30, connect_timeout = 5, max_body = 1e9 })
      assert(t:start(1, "GET", "/sip/connection/" .. %q .. "/tnlease", nil, %q))
      local r = {}
      while not r[1] do t:poll(1, nil, r) end
      local body = r[3]
      assert(type(body) == "userdata", type(body))
      local inner = "did not run"
      local function finalizer()
        local ok, err = pcall(core.answer_decode, 200, body)
        inner = ok and "decoded it" or tostring(err)
      end
      collectgarbage("collect")
      if newproxy then getmetatable(newproxy(true)).__gc = finalizer
      else setmetatable({}, { __gc = finalizer }) end
      local got = core.answer_decode(200, body)
      io.write(#got, " | ", inner)
    ]]):format(emu.url, small, emu.token))
    local n, inner = out:match("^(%d+) | (.*)$")
    assert.equals("2000", n, out)
    if _VERSION ~= "Lua 5.1" or inner ~= "did not run" then
      assert.matches("being read", inner)
    end
  end)

  it("still refuses one over max_body, past 2 MB", function()
    local c = emu:client({ max_body = 2048 * 1024 })
    local got, err = c:list(small)
    c:close()
    assert.is_nil(got)
    assert.equals("protocol", err.kind)
    assert.is_truthy(err.message:find("max_body", 1, true))
  end)
end)
