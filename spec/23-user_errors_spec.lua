-- One rule for errors raised by the code a user gives the library (a
-- callback, on_progress, the log hook, a token function): never
-- swallowed, treated like an interruption at that point. A single call,
-- or step, raises it once the library's own state is in order; a bulk
-- run stops starting requests and returns its report with `interrupted`
-- holding it (a bulk call that returns a list raises it, as on Ctrl-C).
-- Every case: the very error reaches the user, once; the client works
-- afterwards; a report accounts for every lease, against the server's
-- state.
local support = require("emulator")
local core = require("opentact.core")

local now = core.now

-- What user code raises: a value of its own, so that the spec sees the
-- very error, not a message that happens to match.
local BOOM = setmetatable({}, { __tostring = function() return "boom from the user's code" end })

describe("an error from the user's code #wire #c", function()
  local emu, conns, leases

  setup(function() emu, conns, leases = support.start_with_uuids({ leases = 200 }) end)
  teardown(function() support.stop(emu) end)
  before_each(function()
    emu:reset()
    emu:config({ latency = 0 })
  end)

  local function slice(from, to) return support.slice(leases, from, to) end

  -- User code of `kind` that raises BOOM once: the log hook at the first
  -- event `when` picks (any, by default); a token function at its second
  -- call, which a 401 on the first request brings ("token"), or at its
  -- first, before anything is sent ("token at once"); on_progress at its
  -- second call; the first callback called. `u.raised` counts the raises.
  local function user_code(kind, when)
    local u = { raised = 0, faults = {} }
    local function raise()
      u.raised = u.raised + 1
      error(BOOM)
    end
    local calls = 0
    if kind == "log" then
      u.opts = { log = function(e) if u.raised == 0 and (not when or when(e)) then raise() end end }
    elseif kind == "token" then
      u.opts = { token = function()
        calls = calls + 1
        if calls == 2 then raise() end
        return emu.token
      end }
      u.faults = { { status = 401 } }
    elseif kind == "token at once" then
      u.opts = { token = function()
        calls = calls + 1
        if calls == 1 then raise() end
        return emu.token
      end }
    elseif kind == "on_progress" then
      u.on_progress = function()
        calls = calls + 1
        if calls == 2 then raise() end
      end
    elseif kind == "callback" then
      u.callback = function() if u.raised == 0 then raise() end end
    end
    return u
  end

  local function posted(e) return e.method == "POST" and e.path:find("/tnlease$") ~= nil end

  -- Every uuid of `adds` exactly once in applied or failed; the server
  -- holds every applied one and none that surely was never sent.
  local function accounts(report, conn, adds)
    local seen, mark, count = support.tally()
    for _, u in ipairs(report.applied.add) do mark(u, "applied") end
    for _, f in ipairs(report.failed) do
      for _, u in ipairs(f.add) do mark(u, f.err.sent == false and "never sent" or "failed") end
    end
    assert.equals(#adds, count())
    local held = {}
    for _, u in ipairs(emu:state().assigned[conn] or {}) do held[u] = true end
    for _, u in ipairs(adds) do
      assert.is_not_nil(seen[u], u .. " lost")
      if seen[u] == "applied" then assert.is_true(held[u], u .. " applied but not held") end
      if seen[u] == "never sent" then assert.is_nil(held[u], u .. " never sent but held") end
    end
  end

  -- A uuid list for the sync cases: leases 101..104, not on conns[2].
  local SYNC = { 101, 104 }

  -- shape: "blocking" (the call raises), "step" (a call with a callback,
  -- or step, raises; every callback is called once), "report" (the report
  -- has interrupted), "raise" (a bulk call that returns a list raises).
  -- run(client, u) makes the call.
  local cases = {
    { "log", "blocking", "list", function(c) return c:list(conns[1]) end },
    { "log", "blocking", "assign", function(c) return c:assign(conns[2], { add = { leases[11] } }) end },
    { "log", "blocking", "search", function(c) return c:search(nil, { take = 5 }) end },
    { "token", "blocking", "list", function(c) return c:list(conns[1]) end },
    { "token", "blocking", "assign", function(c) return c:assign(conns[2], { add = { leases[11] } }) end },
    { "token", "blocking", "search", function(c) return c:search(nil, { take = 5 }) end },
    { "token at once", "blocking", "list", function(c) return c:list(conns[1]) end },
    { "log", "step", "list" },
    { "token at once", "step", "list" },
    { "token", "step", "list" },
    { "callback", "step", "list" },
    { "log", "report", "assign_batched", posted },
    { "token", "report", "assign_batched" },
    { "on_progress", "report", "assign_batched" },
    { "log", "report", "sync", posted },
    { "token", "report", "sync" },
    { "on_progress", "report", "sync" },
    { "log", "raise", "list_many", function(c) return c:list_many({ conns[1], conns[3], conns[4] }) end },
    { "token", "raise", "list_many", function(c) return c:list_many({ conns[1], conns[3], conns[4] }) end },
    { "log", "raise", "search_all", function(c, u)
      return c:search_all(nil, { page_size = 20, concurrency = 2, on_progress = u.on_progress })
    end },
    { "token", "raise", "search_all", function(c, u)
      return c:search_all(nil, { page_size = 20, concurrency = 2, on_progress = u.on_progress })
    end },
    { "on_progress", "raise", "search_all", function(c, u)
      return c:search_all(nil, { page_size = 20, concurrency = 2, on_progress = u.on_progress })
    end },
    { "log", "raise", "lookup", function(c) return c:lookup(slice(1, 6)) end },
    { "token", "raise", "lookup", function(c) return c:lookup(slice(1, 6)) end },
  }

  for _, case in ipairs(cases) do
    local kind, shape, call, run = case[1], case[2], case[3], case[4]
    it(("%s raising in %s (%s): %s"):format(kind, call, shape,
      shape == "report" and "the report has it as interrupted and accounts for every lease"
      or shape == "step" and "it leaves the call or step, every callback is called once"
      or "it leaves the call"), function()
      local u = user_code(kind, shape == "report" and type(run) == "function" and run or nil)
      local c = emu:client(u.opts)
      finally(function() c:close() end)
      local faults = u.faults
      if kind == "token" and call == "sync" then
        -- the 401 goes to the first change, after the connection's read
        -- and one lookup a lease
        faults = {}
        for i = 1, SYNC[2] - SYNC[1] + 2 do faults[i] = {} end
        faults[#faults + 1] = { status = 401 }
      end
      emu:faults(faults)
      if shape == "blocking" or shape == "raise" then
        local ok, err = pcall(run, c, u)
        assert.is_false(ok, "the call did not raise")
        assert.equals(BOOM, err)
      elseif shape == "step" then
        local raised, got, called, n = {}, {}, 0, 3
        local function try(f, ...)
          local ok, err = pcall(f, ...)
          if not ok then raised[#raised + 1] = err end
        end
        for i = 1, n do
          try(c.list, c, conns[1], function(l, e)
            got[i] = (got[i] or 0) + 1
            called = called + 1
            if u.callback then u.callback(l, e) end
          end)
        end
        local deadline = now() + 30
        local pending = n
        repeat
          try(function() pending = c:step(0.05) end)
        until (pending == 0 and called >= n) or now() > deadline
        assert.same({ BOOM }, raised)
        for i = 1, n do assert.equals(1, got[i], "callback " .. i) end
      else
        local report, adds
        if call == "assign_batched" then
          adds = slice(21, 60)
          report = c:assign_batched(conns[2], { add = adds }, { batch_size = 5, concurrency = 2,
            on_progress = u.on_progress })
        else
          adds = slice(SYNC[1], SYNC[2])
          report = c:sync(conns[2], { leases = adds }, { batch_size = 1, concurrency = 4,
            on_progress = u.on_progress })
        end
        assert.equals(BOOM, report.interrupted)
        assert.is_false(report.ok)
        accounts(report, conns[2], adds)
      end
      assert.equals(1, u.raised)
      -- the client works afterwards: blocking, and with a callback
      assert.equals(3, #assert(c:list(conns[1])))
      local again
      c:list(conns[1], function(l) again = l end)
      local deadline = now() + 30
      while c:step(0.05) > 0 and now() < deadline do end
      assert.equals(3, #again)
    end)
  end
end)
