-- TLS, secrets, fork safety and the garbage collector, over real sockets.
local opentact = require("opentact")
local support = require("emulator")
local cjson = require("cjson")

local LUA = support.LUA

local sh = support.sh

describe("TLS #wire #c", function()
  local dir, emu, conn

  setup(function()
    dir = support.tls_files()
    emu = support.start({ tls = { dir .. "/server.pem", dir .. "/server.key" } })
    conn = emu:state().connections[1]
  end)
  teardown(function()
    if emu then emu:stop() end
    if dir then os.execute("rm -rf " .. dir) end
  end)

  local function client(opts) return emu:client(opts) end

  it("the emulator says https", function()
    assert.equals("listening on https://127.0.0.1:" .. emu.port, emu.line)
  end)

  it("refuses an unknown CA by default, without retrying", function()
    local c = client()
    local got, err = c:list(conn)
    c:close()
    assert.is_nil(got)
    assert.equals("tls", err.kind)
    assert.is_false(err.retryable)
    assert.is_false(err.sent)
    assert.equals(1, err.attempts)
  end)

  it("does not retry an assign that cannot get past TLS either", function()
    local c = client()
    local got, err = c:assign(conn, { add = { "0a1b2c3d-0000-4000-8000-000000000001" } })
    c:close()
    assert.is_nil(got)
    assert.equals("tls", err.kind)
    assert.equals(1, err.attempts)
  end)

  it("accepts the server with ca_file", function()
    local c = client({ ca_file = dir .. "/ca.pem" })
    assert.equals(3, #c:list(conn))
    local host = client({ ca_file = dir .. "/ca.pem", base_url = emu.url:gsub("127.0.0.1", "localhost") })
    assert.equals(3, #host:list(conn))
    c:close()
    host:close()
  end)

  it("reports an unreadable ca_file as tls", function()
    local c = client({ ca_file = dir .. "/missing.pem" })
    local _, err = c:list(conn)
    c:close()
    assert.equals("tls", err.kind)
  end)

  it("works with verify = false", function()
    local c = client({ verify = false })
    assert.equals(3, #c:list(conn))
    c:close()
  end)
end)

describe("secrets #wire #c", function()
  local emu, conn
  local TOKEN = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2VuLXZhbHVl.SIGNATURE123"

  setup(function()
    emu = support.start({ token = TOKEN })
    conn = emu:state().connections[1]
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  it("never shows in errors, messages, log events or printed values", function()
    local seen = {}
    local function keep(v) seen[#seen + 1] = v end
    local function log(e) keep(cjson.encode(e)) end
    -- the default timeout for the faults that are not a delay: a short one
    -- could time out a request that is only slow on a busy machine
    local c = opentact.new({ token = TOKEN, base_url = emu.url, retries = 1, backoff = 0.01, connect_timeout = 30,
      log = log })
    -- a short one, for the delayed requests only (the 5th call's)
    local slow = opentact.new({ token = TOKEN, base_url = emu.url, retries = 1, backoff = 0.01, timeout = 0.3,
      connect_timeout = 30, log = log })
    emu:faults({
      { status = 400, message = "token " .. TOKEN .. " is not allowed here" },
      { status = 503 }, { status = 503 }, { reset = true }, { reset = true }, { truncate = true }, { truncate = true },
      { delay = 1 }, { delay = 1 }, { raw = TOKEN, status = 200 },
    })
    for i = 1, 6 do
      local leases, err = (i == 5 and slow or c):list(conn)
      keep(tostring(leases))
      if err then
        keep(tostring(err))
        keep(err.message)
        keep(cjson.encode(setmetatable(err, nil)))
      end
    end
    keep(tostring(c))
    keep(tostring(slow))
    slow:close()
    local leases = c:list(conn)
    keep(tostring(leases))
    keep(cjson.encode(leases))
    c:close()
    local all = table.concat(seen, "\n")
    assert.is_truthy(all:find("[redacted]", 1, true))
    assert.is_falsy(all:find(TOKEN, 1, true))
  end)

  it("never reaches standard output or error, even on failures", function()
    local script = ([[
      local o = require("opentact")
      local c = o.new({ token = %q, base_url = %q, retries = 0 })
      for _ = 1, 3 do
        local l, e = c:list(%q)
        print(l, e)
      end
      print(c:assign(%q, { add = { "0a1b2c3d-0000-4000-8000-00000000ffff" } }))
      local bad = o.new({ token = %q, base_url = "http://127.0.0.1:1" })
      print(bad:list(%q))
      error(select(2, bad:list(%q)))
    ]]):format(TOKEN, emu.url, conn, conn, TOKEN, conn, conn)
    emu:faults({ { status = 500 }, { reset = true } })
    local out = sh(("%s -e %q 2>&1"):format(LUA, script))
    assert.is_truthy(out:find("opentact: network", 1, true), out)
    assert.is_falsy(out:find(TOKEN, 1, true), out)
  end)

  it("a token with CR, LF or NUL is refused before anything is sent", function()
    for _, bad in ipairs({ TOKEN .. "\r\nX-Evil: 1", TOKEN .. "\0", "\n" .. TOKEN }) do
      local ok, msg = pcall(opentact.new, { token = bad, base_url = emu.url })
      assert.is_false(ok)
      assert.is_falsy(msg:find(TOKEN, 1, true))
    end
    assert.equals(0, emu:stats().requests)
  end)
end)

describe("fork safety #wire #c", function()
  local emu, conn
  setup(function()
    emu = support.start()
    conn = emu:state().connections[1]
  end)
  teardown(function() if emu then emu:stop() end end)

  -- A child of this process closes `fd`, which `c` opened before the fork,
  -- opens a log file (which takes the number, as a daemon's log does),
  -- writes to it, lists with `c` and writes again: the child exits 0 and
  -- the log holds both lines only when the client neither wrote to nor
  -- closed the file that now has its old number.
  local function child_reuses(fh, c, fd)
    local path = os.tmpname()
    local pid = fh.fork()
    if pid == 0 then
      -- a daemon's habit: close what it inherited, open its own log
      fh.close(fd)
      local log = fh.open(path)
      local ok = log == fd and fh.write(log, "before\n") == 7
      local listed = ok and pcall(c.list, c, conn)
      ok = listed and fh.write(log, "after\n") == 6
      fh.exit(ok and 0 or 1)
    end
    assert.equals(0, fh.wait(pid))
    local f = assert(io.open(path))
    assert.equals("before\nafter\n", f:read("*a"))
    f:close()
    os.remove(path)
  end

  it("a client used in a child opens its own connection; the parent keeps its own", function()
    local fh = require("forkhelper")
    local c = opentact.new({ token = emu.token, base_url = emu.url, retries = 0, connect_timeout = 30 })
    assert.equals(3, #c:list(conn))
    local pid = fh.fork()
    if pid == 0 then
      local ok, leases = pcall(c.list, c, conn)
      fh.exit(ok and leases and #leases == 3 and 0 or 1)
    end
    assert.equals(0, fh.wait(pid))
    assert.equals(3, #c:list(conn))
    c:close()
    local log = emu:requests()
    assert.equals(3, #log)
    assert.equals(log[1].connection, log[3].connection)
    assert.are_not.equal(log[1].connection, log[2].connection)
  end)

  it("a child that closed the inherited socket and reused its number keeps its file", function()
    local fh = require("forkhelper")
    local c = opentact.new({ token = emu.token, base_url = emu.url, retries = 0, connect_timeout = 30 })
    local before = {}
    for _, fd in ipairs(fh.fds()) do before[fd] = true end
    assert.equals(3, #c:list(conn))
    local socket_fd
    for _, fd in ipairs(fh.fds()) do if not before[fd] then socket_fd = fd end end
    assert.is_number(socket_fd)
    child_reuses(fh, c, socket_fd)
    c:close()
  end)

  it("a child that closed the inherited poll descriptor and reused its number keeps its file", function()
    local fh = require("forkhelper")
    local c = opentact.new({ token = emu.token, base_url = emu.url, retries = 0, connect_timeout = 30 })
    assert.equals(3, #c:list(conn))
    child_reuses(fh, c, c:pollfd())
    c:close()
  end)
end)

describe("the garbage collector #wire #c", function()
  local emu, conns, leases
  setup(function() emu, conns, leases = support.start_with_uuids() end)
  teardown(function()
    if _VERSION == "Lua 5.4" then collectgarbage("incremental") end
    if emu then emu:stop() end
  end)

  it("never collects what a request in flight uses", function()
    if _VERSION == "Lua 5.4" then collectgarbage("generational") end
    local n = 0
    for i = 1, 150 do
      local c = opentact.new({
        base_url = emu.url, connect_timeout = 30,
        token = function() collectgarbage("step") return emu.token end,
        log = function() collectgarbage("step") collectgarbage("step") end,
      })
      local got = c:list(conns[1 + i % 2])
      local changed = c:assign(conns[3], { add = { leases[10 + i % 50] } })
      if got and changed then n = n + 1 end
      if i % 3 == 0 then c:close() end -- the rest are left to the collector
      if i % 10 == 0 then collectgarbage() end
    end
    if _VERSION == "Lua 5.4" then collectgarbage("incremental") end
    collectgarbage()
    assert.equals(150, n)
  end)
end)
