-- A host's event loop sleeps while the client is idle, also once the server
-- has closed the kept-alive connection (nginx does after keepalive_timeout):
-- pollfd() is readable only when step has work, and a step takes away what
-- made it readable, whether or not anything is pending. Counted on real
-- loops (luv, cqueues, LuaSocket's select) over the client's idleness after
-- the server closed; each runs on every Lua the suite covers (LuaJIT with
-- the 5.1 modules).
local support = require("emulator")
local opentact = require("opentact")
local core = require("opentact.core")
local socket = require("socket")

local CONN = "27f03b34-9917-45ec-8389-09092bb12756"
local now = core.now

-- Wake-ups allowed while idle: one per connection the server closed, and
-- room to spare. A loop the descriptor keeps awake makes thousands.
local MAX_WAKEUPS = 10
-- Past this many the loop spins: counting stops there, not at its end.
local SPINNING = 2000
-- How long the loop runs on once the server closed the connection.
local AFTER_CLOSE = 0.5
-- How often the loop looks at the server's log (a wake-up of its own, not
-- the client's, and not counted), and the most the whole loop may take.
local TICK = 0.05
local GIVE_UP = 30

-- Runs f(server) with an idle-closing server, stopping it whatever happens;
-- `idle` is how long it keeps an idle connection (0.3 s unless given).
local function with_server(f, idle)
  return support.with_hostile(idle and "idle-close:" .. idle or "idle-close", f)
end

local count = support.count_prefixed

local function new_client(server)
  return opentact.new({ token = "t", base_url = server.url, retries = 0, connect_timeout = 30 })
end

-- The bookkeeping of one idle run: wake-ups the client caused after its
-- answer came, and when the server was seen to close the connection.
local function watch(server, closes_before)
  local w = { wakeups = 0, started = now() }
  -- whether the loop has seen enough: the server closed a while ago, the
  -- loop spins, or too long went by
  function w.done()
    if not w.closed_at and count(server:requests(), "-- idle close") > closes_before then
      w.closed_at = now()
    end
    return (w.closed_at and now() - w.closed_at >= AFTER_CLOSE) or w.wakeups > SPINNING
      or now() - w.started > GIVE_UP
  end
  return w
end

-- A loop around wait(fd, seconds) -> true when fd became readable: it waits
-- on the client's descriptor and deadline and steps when either is due, as
-- a host does. With `request`, a callback request goes first and wake-ups
-- count from its answer on.
local function plain_loop(client, server, wait, request)
  local w, got = watch(server, 0), not request
  if request then client:list(CONN, function(l, e) got = { l, e } end) end
  repeat
    local due = client:timeout()
    local woke = wait(client:pollfd(), math.min(due or TICK, TICK))
    if woke or (due and due <= TICK) then
      if got and woke then w.wakeups = w.wakeups + 1 end
      client:step(0)
    end
  until w.done()
  return got, w
end

local function select_wait(fd, seconds)
  return socket.select({ { getfd = function() return fd end } }, nil, seconds)[1] ~= nil
end

-- A luv loop as examples/luv.lua builds it, kept running: a poll handle on
-- pollfd() and a timer on timeout(), both stepping the client.
local function luv_loop(client, server)
  local uv = require("luv")
  local w, got = watch(server, 0), nil
  local poll, deadline, ticker = uv.new_poll(client:pollfd()), uv.new_timer(), uv.new_timer()
  local function pump()
    if got then w.wakeups = w.wakeups + 1 end
    client:step(0)
    local wait = client:timeout()
    if wait then deadline:start(math.ceil(wait * 1000), 0, pump) else deadline:stop() end
    if w.wakeups > SPINNING then uv.stop() end
  end
  poll:start("r", pump)
  ticker:start(math.floor(TICK * 1000), math.floor(TICK * 1000), function() if w.done() then uv.stop() end end)
  client:list(CONN, function(l, e) got = { l, e } end)
  pump()
  uv.run()
  for _, h in ipairs({ poll, deadline, ticker }) do h:close() end
  uv.run() -- lets the handles finish closing
  return got, w
end

-- A cqueues controller whose coroutine waits with cqueues.poll(client).
local function cqueues_loop(client, server)
  local cqueues = require("cqueues")
  local loop, got, w = cqueues.new(), nil, nil
  loop:wrap(function()
    got, w = plain_loop(client, server, function(_, seconds)
      return cqueues.poll(client, seconds) == client
    end, true)
  end)
  assert(loop:loop())
  return got, w
end

local loops = {
  { "luv", "luv", luv_loop },
  { "cqueues", "cqueues", cqueues_loop },
  { "LuaSocket's select", "socket", function(client, server)
    return plain_loop(client, server, select_wait, true)
  end },
}

describe("an idle client in a host's event loop #wire #c", function()
  for _, l in ipairs(loops) do
    local name, module, run = l[1], l[2], l[3]
    it(("a %s loop sleeps once the server closed the idle connection, and the next request works"):format(name),
      function()
        if not support.has_module(module) then
          pending(("%s is not installed for %s (make deps installs it)"):format(module, support.LUA))
          return
        end
        with_server(function(server)
          local client = new_client(server)
          finally(function() client:close() end)
          local got, w = run(client, server)
          assert.is_table(got, "the request was not answered")
          assert.is_table(got[1], tostring(got[2]))
          assert.is_true(w.wakeups < MAX_WAKEUPS, ("%d wake-ups while idle"):format(w.wakeups))
          assert.is_number(w.closed_at, "the server never closed the idle connection")
          -- the connection the server closed is not used again: a new one
          assert.is_table(client:list(CONN))
          client:close()
          local lines = server:requests()
          assert.equals(2, count(lines, "-- open"))
          assert.equals(2, count(lines, "GET "))
        end)
      end)
  end

  it("stepping while idle keeps the kept-alive connection for the next request", function()
    with_server(function(server)
      local client = new_client(server)
      finally(function() client:close() end)
      assert.is_table(client:list(CONN))
      for _ = 1, 5 do assert.equals(0, client:step(0)) end
      assert.is_table(client:list(CONN))
      -- both requests on the one connection, which the server had not closed
      local seen, lines = {}, server:requests()
      for i = 1, 3 do seen[i] = lines[i] and lines[i]:match("^%S+ ?%S*") end
      assert.same({ "-- open", "GET /sip/connection/" .. CONN .. "/tnlease", "GET /sip/connection/" .. CONN .. "/tnlease" },
        seen)
    end, 5) -- idle long enough that a slow machine's next request still finds it open
  end)

  it("after a burst, one step takes away every connection the server closed at once", function()
    with_server(function(server)
      local client = new_client(server)
      finally(function() client:close() end)
      local function readable() return select_wait(client:pollfd(), 0) end
      local answered, failed, deadline = 0, nil, now() + GIVE_UP
      for _ = 1, 12 do
        client:list(CONN, function(l, e)
          if l then answered = answered + 1 else failed = failed or e end
        end)
      end
      while client:step(0.05) > 0 and now() < deadline do end
      assert.equals(12, answered, tostring(failed))
      -- the server closes the connections libcurl kept 0.3 s after their
      -- answers, within moments of each other
      local opened = count(server:requests(), "-- open")
      local closed, kept
      repeat
        select_wait(client:pollfd(), TICK)
        local lines = server:requests()
        closed, kept = count(lines, "-- idle close"), opened - count(lines, "-- closed by the client")
      until closed == kept or now() > deadline
      assert.equals(kept, closed)
      -- more than a step acts on events of (a slow client may have kept
      -- only a few connections of the burst)
      assert.is_true(closed >= 2, ("%d connections kept"):format(closed))
      assert.is_true(readable()) -- what wakes a host
      assert.equals(0, client:step(0))
      assert.is_false(readable())
    end)
  end)

  it("after a fork, neither the parent nor the child wakes up for the connection the server closed", function()
    local fh = require("forkhelper")
    with_server(function(server)
      local client = new_client(server)
      -- a connection to keep alive, in the descriptor the child inherits
      assert.is_table(client:list(CONN))
      local pid = fh.fork()
      if pid == 0 then
        local ok, _, w = pcall(plain_loop, client, server, select_wait)
        fh.exit(ok and w.closed_at and w.wakeups < MAX_WAKEUPS and 0 or 1)
      end
      local ok, got, w = pcall(plain_loop, client, server, select_wait)
      local status = fh.wait(pid)
      client:close()
      assert.is_true(ok, tostring(got))
      assert.is_true(w.wakeups < MAX_WAKEUPS, ("%d wake-ups while idle"):format(w.wakeups))
      assert.is_number(w.closed_at, "the server never closed the idle connection")
      assert.equals(0, status)
    end)
  end)
end)
