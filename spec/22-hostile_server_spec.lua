-- Hostile servers (spec/support/hostile.lua) against both transports:
-- what the caller is told must be what went over the wire, and no server
-- can hold a request past its timeout or make a call raise.
local support = require("emulator")
local opentact = require("opentact")
local core = require("opentact.core")

local CONN = "27f03b34-9917-45ec-8389-09092bb12756"
local LEASE = "3a3750a9-0cba-4e29-ab7f-8a2d90e16ca9"

-- with_server(mode, f, host): f(server) with a hostile server in `mode`,
-- stopped whatever happens; count(lines, prefix).
local with_server, count = support.with_hostile, support.count_prefixed

describe("answers nested past a Lua's C stack #wire #c", function()
  it("never raise on any Lua: leases, or a protocol error", function()
    local emu = support.start()
    local ok, err = pcall(function()
      -- 100 levels of 254 numbers, then 150 more levels: past the 8,000 slots
      -- Lua 5.1 and LuaJIT give a C function
      local parts = { '{"success":true,"payload":[' }
      for _ = 1, 100 do parts[#parts + 1] = "[" .. ("1,"):rep(254) end
      parts[#parts + 1] = ("["):rep(150) .. ("]"):rep(150) .. ("]"):rep(100) .. "]}"
      emu:faults({ { raw = table.concat(parts), status = 200 } })
      local c = emu:client({ retries = 0 })
      local called, leases, e = pcall(c.list, c, emu:state().connections[1])
      c:close()
      assert.is_true(called, tostring(leases))
      -- Luas with a large stack decode it; the others say it is too deep
      if leases == nil then
        assert.equals("protocol", e.kind)
        assert.is_truthy(e.message:find("nested too deeply", 1, true), e.message)
      else
        assert.equals(1, #leases)
      end
    end)
    emu:stop()
    if not ok then error(err, 0) end
  end)
end)

describe("the curl transport against hostile servers #wire #c", function()
  it("never resends an assign by itself when a reused connection dies after sending", function()
    with_server("drop-second", function(server)
      local attempts = {}
      local c = opentact.new({ token = "t", base_url = server.url, connect_timeout = 30, retries = 0,
        log = function(e) attempts[#attempts + 1] = e.attempt end })
      assert.is_table(c:assign(CONN, { add = { LEASE } }))
      local leases, err = c:assign(CONN, { add = { LEASE } })
      c:close()
      assert.is_nil(leases)
      assert.equals("network", err.kind)
      assert.is_true(err.sent)
      assert.equals(1, err.attempts)
      assert.is_truthy(err.message:find("may have been applied", 1, true), err.message)
      assert.equals(2, count(server:requests(), "POST "))
      assert.same({ 1, 1 }, attempts)
    end)
  end)

  it("with retry_post, counts the second sending as an attempt", function()
    with_server("drop-second", function(server)
      local c = opentact.new({ token = "t", base_url = server.url, connect_timeout = 30, retry_post = true, backoff = 0.01 })
      assert.is_table(c:assign(CONN, { add = { LEASE } }))
      local seen = {}
      c:close()
      c = opentact.new({ token = "t", base_url = server.url, connect_timeout = 30, retry_post = true, backoff = 0.01,
        log = function(e) seen[#seen + 1] = e.attempt .. ":" .. tostring(e.kind) end })
      assert.is_table(c:list(CONN)) -- a connection to reuse
      assert.is_table(c:assign(CONN, { add = { LEASE } }))
      c:close()
      assert.same({ "1:nil", "1:network", "2:nil" }, seen)
      assert.equals(3, count(server:requests(), "POST "))
    end)
  end)

  it("sends a list again on a fresh connection, which is safe for a read", function()
    with_server("drop-second", function(server)
      local c = opentact.new({ token = "t", base_url = server.url, connect_timeout = 30, retries = 0 })
      assert.is_table(c:list(CONN))
      assert.is_table(c:list(CONN))
      c:close()
      assert.equals(3, count(server:requests(), "GET "))
    end)
  end)

  it("ends a request whose answer comes one byte at a time at its timeout", function()
    with_server("slow", function(server)
      local c = opentact.new({ token = "t", base_url = server.url, retries = 0, timeout = 1 })
      local t0 = core.now()
      local leases, err = c:list(CONN)
      c:close()
      assert.is_nil(leases)
      assert.equals("timeout", err.kind)
      assert.is_true(core.now() - t0 < 10)
    end)
  end)

  it("takes an answer cut short by a close as a network failure, and retries a list", function()
    with_server("cut-close", function(server)
      local c = opentact.new({ token = "t", base_url = server.url, connect_timeout = 30, retries = 1, backoff = 0.01 })
      local leases, err = c:list(CONN)
      c:close()
      assert.is_nil(leases)
      assert.equals("network", err.kind)
      assert.is_truthy(err.message:find("cut short", 1, true), err.message)
      assert.equals(2, err.attempts)
    end)
    with_server("whole-close", function(server)
      local c = opentact.new({ token = "t", base_url = server.url, connect_timeout = 30, retries = 0 })
      local leases = c:list(CONN)
      c:close()
      assert.equals(1, #leases)
    end)
  end)

  it("tells a cut answer by what the decoder reports, not by the wording of its message", function()
    -- a fresh copy of the library over an answer_decode whose messages say
    -- something else: the engine must still see the answer was cut short
    local saved, decode = {}, core.answer_decode
    for name, m in pairs(package.loaded) do
      if name:match("^opentact") and name ~= "opentact.core" then saved[name], package.loaded[name] = m, nil end
    end
    core.answer_decode = function(...)
      local leases, err, cut = decode(...)
      if err then err.message = "the decoder words this differently" end
      return leases, err, cut
    end
    local ok, err = pcall(function()
      local fresh = require("opentact")
      with_server("cut-close", function(server)
        local c = fresh.new({ token = "t", base_url = server.url, retries = 1, backoff = 0.01 })
        local leases, e = c:list(CONN)
        c:close()
        assert.is_nil(leases)
        assert.equals("network", e.kind, e.message)
        assert.equals(2, e.attempts)
      end)
    end)
    core.answer_decode = decode
    for name in pairs(package.loaded) do
      if name:match("^opentact") and name ~= "opentact.core" then package.loaded[name] = nil end
    end
    for name, m in pairs(saved) do package.loaded[name] = m end
    if not ok then error(err, 0) end
  end)

  it("does not reserve the memory a Content-Length announces before it comes", function()
    if not io.open("/proc/self/status") then
      pending("no /proc/self/status here to read the process's peak size from")
      return
    end
    with_server("big-length", function(server)
      -- a fresh process, so that its peak size is this call's
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write(([[
        local function peak()
          local f = io.open("/proc/self/status")
          local kb = tonumber(f:read("*a"):match("VmPeak:%%s*(%%d+)"))
          f:close()
          return kb
        end
        local opentact = require("opentact")
        local c = opentact.new({ token = "t", base_url = %q, connect_timeout = 30, retries = 0, timeout = 5 })
        local before = peak()
        local leases, err = c:list(%q)
        print(("kind=%%s grew=%%d"):format(err and err.kind or "none", peak() - before))
      ]]):format(server.url, CONN))
      f:close()
      local out = support.sh(("%s %s 2>&1"):format(support.LUA, script))
      os.remove(script)
      local kind, grew = out:match("kind=(%S+) grew=(%d+)")
      assert.equals("network", kind, out)
      -- the 60 MB it announced was never reserved (at most 4 MB ahead of the bytes)
      assert.is_true(tonumber(grew) < 30 * 1024, out)
    end)
  end)

  for _, mode in ipairs({ "bad-length", "hex-length", "many-headers", "long-header" }) do
    it("answers a server sending " .. mode .. " with an error, never a raise", function()
      with_server(mode, function(server)
        local c = opentact.new({ token = "t", base_url = server.url, connect_timeout = 30, retries = 0, timeout = 5 })
        local ok, leases, err = pcall(c.list, c, CONN)
        c:close()
        assert.is_true(ok, tostring(leases))
        assert.is_nil(leases)
        assert.is_string(err.kind)
      end)
    end)
  end
end)

describe("the ngx transport against hostile servers #wire", function()
  local openresty = require("openresty")
  local nginx
  setup(function() nginx = openresty.start({ url = "http://127.0.0.1:1", token = "t" }) end)
  teardown(function() if nginx then nginx:stop() end end)

  local function list(server, timeout)
    local _, r = nginx:call(("/list?conn=%s&url=%s%s"):format(CONN, server.url,
      timeout and "&timeout=" .. timeout or ""))
    return r
  end

  it("never resends an assign by itself when a reused connection dies after sending", function()
    with_server("drop-second", function(server)
      local _, a = nginx:call(("/assign?conn=%s&add=%s&url=%s"):format(CONN, LEASE, server.url))
      local _, b = nginx:call(("/assign?conn=%s&add=%s&url=%s"):format(CONN, LEASE, server.url))
      assert.equals(0, a.n)
      assert.equals("network", b.err.kind)
      assert.equals(1, b.err.attempts)
      assert.equals(2, count(server:requests(), "POST "))
    end)
  end)

  it("takes an answer cut short by a close as a network failure", function()
    with_server("cut-close", function(server)
      local r = list(server)
      assert.equals("network", r.err.kind, require("cjson").encode(r))
    end)
    with_server("whole-close", function(server)
      assert.equals(1, list(server).n)
    end)
  end)

  it("skips 100, 102 and 103 interim answers", function()
    with_server("interim", function(server)
      local r = list(server)
      assert.equals(0, r.n, require("cjson").encode(r))
    end)
  end)

  it("holds a request no longer than its timeout, however slowly bytes come", function()
    with_server("slow", function(server)
      local t0 = core.now()
      local r = list(server, 1)
      assert.equals("timeout", r.err.kind)
      assert.is_true(core.now() - t0 < 10, tostring(core.now() - t0))
    end)
  end)

  for _, mode in ipairs({ "bad-length", "hex-length", "many-headers", "long-header" }) do
    it("refuses " .. mode .. " as a protocol error", function()
      with_server(mode, function(server)
        local r = list(server, 5)
        assert.equals("protocol", r.err.kind, require("cjson").encode(r))
      end)
    end)
  end

  it("reaches an IPv6 literal base URL", function()
    local ok, server = pcall(support.hostile, "interim", "::1")
    if not ok then
      pending("no IPv6 loopback here: " .. tostring(server))
      return
    end
    local r = list(server)
    server:stop()
    assert.equals(0, r.n, require("cjson").encode(r))
  end)
end)
