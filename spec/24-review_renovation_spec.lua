-- An outside review of the renovation (issue 21): the rule for errors
-- from the user's code, misuse, login. Each spec names the defect it
-- found.
local support = require("emulator")
local core = require("opentact.core")

local now = core.now

describe("review: an error from the user's code that is nil or false #wire #c", function()
  local emu, conns, leases

  setup(function()
    emu = support.start({ leases = 80 })
    local st = emu:state()
    conns, leases = st.connections, st.leases
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function()
    emu:reset()
    emu:config({ latency = 0 })
  end)

  local function slice(from, to)
    local out = {}
    for i = from, to do out[#out + 1] = leases[i] end
    return out
  end

  -- error(nil) and error(false) are errors like any other: pcall returns
  -- false for them. A report whose `interrupted` is that very value
  -- cannot tell them from a run that was not stopped.
  for _, value in ipairs({ "nil", "false" }) do
    local raised_value -- nil, or false
    if value == "false" then raised_value = false end

    it(("assign_batched: on_progress raising %s on its last call is not swallowed"):format(value), function()
      local c = emu:client()
      finally(function() c:close() end)
      local adds = slice(21, 30)
      local calls = 0
      local report = c:assign_batched(conns[2], { add = adds }, { batch_size = 5, concurrency = 1,
        on_progress = function(done, total)
          calls = calls + 1
          if done == total then error(raised_value) end
        end })
      assert.equals(2, calls)
      -- the run was stopped by the user's error: the report must say so
      assert.is_not_true(report.ok, "the report says ok although on_progress raised")
      assert.is_not_nil(report.interrupted, "the report does not say it was interrupted")
    end)

    it(("assign_batched: a log hook raising %s is not swallowed"):format(value), function()
      local raised = 0
      local c = emu:client({ log = function(e)
        if raised == 0 and e.method == "POST" then
          raised = raised + 1
          error(raised_value)
        end
      end })
      finally(function() c:close() end)
      local report = c:assign_batched(conns[2], { add = slice(31, 40) }, { batch_size = 5, concurrency = 1 })
      assert.equals(1, raised)
      assert.is_not_nil(report.interrupted, "the report does not say it was interrupted")
      assert.is_not_true(report.ok)
    end)

    it(("sync: on_progress raising %s on its last call stops the run (no read-back, not ok)"):format(value),
      function()
      local c = emu:client()
      finally(function() c:close() end)
      local report = c:sync(conns[2], { leases = slice(41, 44) }, { batch_size = 2, concurrency = 1,
        on_progress = function(done, total) if done == total then error(raised_value) end end })
      assert.is_not_true(report.ok, "the sync report says ok although on_progress raised")
      assert.is_not_nil(report.interrupted, "the sync report does not say it was interrupted")
    end)

    -- the read-back is a call of its own, stopped the same way
    it(("sync: a log hook raising %s on the read-back is reported as interrupted"):format(value), function()
      local posted, raised = false, 0
      local c = emu:client({ log = function(e)
        if e.method == "POST" then posted = true
        elseif posted and raised == 0 and e.method == "GET" then
          raised = raised + 1
          error(raised_value)
        end
      end })
      finally(function() c:close() end)
      local report = c:sync(conns[2], { leases = slice(45, 46) }, { batch_size = 2, concurrency = 1 })
      assert.equals(1, raised)
      assert.is_not_true(report.ok)
      -- truthy: `if report.interrupted then` must see it
      assert.is_truthy(report.interrupted, "the sync report does not say it was interrupted")
      assert.is_not_nil(report.unverified)
    end)

    -- calls that return no report raise it as it was
    it(("list, list_many and search_all: a log hook raising %s raises it as it was"):format(value), function()
      local raised = 0
      local c = emu:client({ log = function()
        raised = raised + 1
        error(raised_value)
      end })
      finally(function() c:close() end)
      for _, call in ipairs({
        function() return c:list(conns[1]) end,
        function() return c:list_many({ conns[1], conns[3] }) end,
        function() return c:search_all(nil, { page_size = 20 }) end,
      }) do
        local n = raised
        local got = (function(...) return { n = select("#", ...), ... } end)(pcall(call))
        assert.equals(n + 1, raised)
        assert.same({ n = 2, false, raised_value }, got)
      end
    end)

    -- what a report holds then: an opentact.Error of kind "interrupted"
    -- whose `value` is what was raised (README, "Errors from your code")
    it(("assign_batched: the report's interrupted keeps the %s that was raised"):format(value), function()
      local opentact = require("opentact")
      local c = emu:client()
      finally(function() c:close() end)
      local report = c:assign_batched(conns[2], { add = slice(47, 50) }, { batch_size = 2, concurrency = 1,
        on_progress = function() error(raised_value) end })
      local i = report.interrupted
      assert.equals(opentact.Error, getmetatable(i))
      assert.equals("interrupted", i.kind)
      assert.equals(raised_value, i.value)
      assert.matches("^opentact: interrupted: ", tostring(i))
      assert.equals(4, #report.applied.add + #report.failed[1].add)
    end)

    it(("close(): a pending callback raising %s is raised by close, not swallowed"):format(value), function()
      local c = emu:client()
      local called = 0
      c:list(conns[1], function()
        called = called + 1
        error(raised_value)
      end)
      local ok = pcall(c.close, c)
      assert.equals(1, called)
      assert.is_false(ok, "close swallowed the callback's error")
    end)
  end

  it("close(): the first callback's error is raised even when it is nil and a later one raises", function()
    local c = emu:client()
    local order = {}
    c:list(conns[1], function() order[#order + 1] = 1 error(nil) end)
    c:list(conns[3], function() order[#order + 1] = 2 error("second") end)
    local ok, err = pcall(c.close, c)
    assert.same({ 1, 2 }, order)
    assert.is_false(ok)
    -- the README: "the first error is raised after the last callback"
    assert.is_nil(err, "close raised the second callback's error, not the first's")
  end)
  local _ = now
end)

describe("review: logging in across a fork #wire #c", function()
  local opentact = require("opentact")
  local emu, conn
  local PASSWORD = "fork-pw"
  setup(function()
    emu = support.start({ users = { "forker@example.com:" .. PASSWORD, "forker2@example.com:" .. PASSWORD } })
    conn = emu:state().connections[1]
  end)
  teardown(function() if emu then emu:stop() end end)

  local function client(email)
    return opentact.new({ base_url = emu.url, email = email, password = PASSWORD, backoff = 0.01,
      backoff_max = 0.05, connect_timeout = 30 })
  end

  -- Runs `child` in a process forked (by forkhelper `fh`) from this one,
  -- where the process ends; returns what the child said ("ok", or its
  -- error) and its exit status.
  local function in_child(fh, child)
    local path = os.tmpname()
    local pid = fh.fork()
    if pid == 0 then
      local ok, why = pcall(child)
      local f = io.open(path, "w")
      f:write(ok and "ok" or tostring(why))
      f:close()
      fh.exit(ok and 0 or 1)
    end
    local status = fh.wait(pid)
    local f = assert(io.open(path))
    local said = f:read("*a")
    f:close()
    os.remove(path)
    return said, status
  end

  -- The parent's end: the emulator answers at once again, `c`'s request in
  -- flight at the fork finishes (its callback runs) and `c` is closed.
  local function drain_and_close(c)
    emu:config({ latency = 0 })
    local deadline = now() + 10
    while c:step(0.05) > 0 and now() < deadline do end
    c:close()
  end

  -- The parent's login, in flight at the fork, ends in the child with the
  -- fork's error; auth takes that for a failed login of its own and
  -- fails every request of the child for a moment (LOGIN_FAILED_FOR),
  -- though the child never tried to log in.
  it("a child whose parent was logging in at the fork logs in itself: its own requests work", function()
    local fh = require("forkhelper")
    emu:config({ latency = 0.3 })
    local c = client("forker@example.com")
    local got
    c:list(conn, function(l, e) got = { l, e } end)
    c:step(0) -- the login is on the wire, the callback request waits for it
    local said, status = in_child(fh, function()
      -- the parent's request ends here with an error (it is the parent's)
      local deadline = now() + 10
      while c:step(0.05) > 0 and now() < deadline do end
      assert(got and got[1] == nil, "the parent's request did not end in the child")
      emu:config({ latency = 0 })
      -- the child's own request: it must log in and work
      local leases, err = c:list(conn)
      assert(leases, "the child's own request failed: " .. tostring(err))
    end)
    drain_and_close(c)
    assert.equals("ok", said)
    assert.equals(0, status)
    assert.is_table(got and got[1], "the parent's callback did not get its leases")
  end)
  -- What auth keys a login in flight by: the process, told apart from
  -- the one it forked from (asked of the system only after a fork).
  it("core.pid() is the child's own after a fork, and stays the parent's in the parent", function()
    local fh = require("forkhelper")
    local before = core.pid()
    local path = os.tmpname()
    local pid = fh.fork()
    if pid == 0 then
      local f = io.open(path, "w")
      f:write(tostring(core.pid()))
      f:close()
      fh.exit(0)
    end
    assert.equals(0, fh.wait(pid))
    local f = assert(io.open(path))
    local child = f:read("*a")
    f:close()
    os.remove(path)
    assert.equals(tostring(pid), child)
    assert.equals(before, core.pid())
    assert.are_not.equals(before, pid)
  end)

  -- The parent's login in flight at the fork is inherited as "another
  -- client of this Lua state is logging in": a new client of the child
  -- with the same email waits for a login nobody in the child runs, until
  -- LOGIN_STALE (5 s) passes. The child's clock is held still here, so
  -- the wait never ends; the deadline only bounds the failure.
  it("a new client in a child does not wait for the login its parent had in flight at the fork", function()
    local fh = require("forkhelper")
    local auth = require("opentact.auth")
    emu:config({ latency = 0.3 })
    local c = client("forker2@example.com")
    local got
    c:list(conn, function(l, e) got = { l, e } end)
    c:step(0) -- the login is on the wire
    local said, status = in_child(fh, function()
      local still = auth.clock()
      auth.clock = function() return still end
      emu:config({ latency = 0 })
      local b = client("forker2@example.com")
      local leases, err
      b:list(conn, function(l, e) leases, err = l, e end)
      local deadline = now() + 3
      while b:step(0.05) > 0 and now() < deadline do end
      assert(leases, "the child's new client did not get its leases: " .. tostring(err or "still waiting"))
    end)
    drain_and_close(c)
    assert.equals("ok", said)
    assert.equals(0, status)
    assert.is_table(got and got[1], "the parent's callback did not get its leases")
  end)
end)

describe("review: opentact assign with one number in --add and --remove #wire", function()
  local cjson = require("cjson")
  local opentact = require("cli").opentact
  local emu, conns, leases
  setup(function()
    emu, conns, leases = support.start_with_uuids({ leases = 30 })
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  local function posts()
    local n = 0
    for _, r in ipairs(emu:requests()) do if r.method == "POST" then n = n + 1 end end
    return n
  end

  -- The help: a usage error (exit 2, nothing sent) for "a lease given
  -- twice" (--skip-invalid: "leases given twice (or to both add and
  -- remove)"). Given by uuid it is refused; given by its number, the add
  -- is sent and the remove reported "not on CONN": contradictory input
  -- applied half-way.
  it("refuses a lease given by its number to both --add and --remove, as it refuses its uuid", function()
    local out, err, status = opentact(emu, ("assign %s --add 12125550020 --remove 12125550020 --format json")
      :format(conns[2]))
    assert.equals(2, status, out .. err)
    assert.equals(0, posts(), "sent: " .. out .. err)
    assert.same({}, emu:state().assigned[conns[2]] or {})
    -- the uuid form, for comparison: refused
    local out2, err2, status2 = opentact(emu, ("assign %s --add %s --remove %s --format json")
      :format(conns[2], leases[20], leases[20]))
    assert.equals(2, status2, out2 .. err2)
  end)

  it("with --skip-invalid, leaves out a lease given by its number to both --add and --remove", function()
    local out, err, status = opentact(emu, ("assign %s --add 12125550021 --remove 12125550021 --skip-invalid "
      .. "--format json"):format(conns[2]))
    assert.equals(0, posts(), "sent: " .. out .. err)
    assert.same({}, emu:state().assigned[conns[2]] or {})
    local ok, report = pcall(cjson.decode, out)
    assert(ok and type(report) == "table", out .. err)
    local _ = status
  end)

  -- every mix of number and uuid, for a lease CONN holds and one it does
  -- not: the same refusal, the same left-out line, nothing sent
  it("treats a lease as itself in --add and --remove however each names it", function()
    local free, held = 22, 1 -- lease 22 is on no connection, lease 1 on conns[1]
    for _, i in ipairs({ free, held }) do
      local number, uuid = ("1212555%04d"):format(i), leases[i]
      for _, pair in ipairs({ { number, uuid }, { uuid, number }, { number, number }, { uuid, uuid } }) do
        for _, skip in ipairs({ "", " --skip-invalid" }) do
          emu:reset()
          local line = ("assign %s --add %s --remove %s%s --format json"):format(conns[1], pair[1], pair[2], skip)
          local out, err, status = opentact(emu, line)
          assert.equals(0, posts(), line .. ": sent: " .. out .. err)
          assert.equals(2, status, line .. ": " .. out .. err)
          assert.is_truthy(err:find("in both --add and --remove", 1, true), line .. ": " .. err)
        end
      end
    end
  end)
end)

describe("review: misuse of the client's metamethods", function()
  local opentact = require("opentact")
  -- Every method checks its self and raises at the caller's line
  -- (options.raise); __close is the public close. __tostring is not made
  -- by the method list: called on something else it fails inside the
  -- library with an index error instead of naming the misuse.
  it("Client.__tostring on a value that is not a client raises a misuse error at the caller's line", function()
    for _, bad in ipairs({ 5, "x", true }) do
      local ok, err = pcall(function()
        local s = opentact.Client.__tostring(bad) -- the caller's line
        return s
      end)
      assert.is_false(ok)
      assert.matches("review_renovation_spec%.lua:%d+: bad self", tostring(err))
    end
  end)

  it("every metamethod of Client checks its self the same way", function()
    local checked = {}
    for name, f in pairs(opentact.Client) do
      if type(name) == "string" and name:find("^__") and type(f) == "function" then
        checked[#checked + 1] = name
        local ok, err = pcall(function()
          local r = f(5) -- the caller's line (not a tail call: it has a line)
          return r
        end)
        assert.is_false(ok, name)
        assert.matches("review_renovation_spec%.lua:%d+: bad self", tostring(err), nil, nil, name)
      end
    end
    table.sort(checked)
    assert.same({ "__close", "__tostring" }, checked)
  end)
end)
