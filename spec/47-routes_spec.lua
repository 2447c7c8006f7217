-- Routes over the wire, against the emulator: client:plan_routes makes
-- one plan over every target the routes name (moves between them without
-- `move`, conflicts with the others unless `move`, `exact` per named
-- target), names every problem of the routes at once, and apply runs it
-- as one: one stale check, every target's batches together, a move off
-- the other kind of holder released and attached by adjacent requests,
-- the journal, each target read back.
local support = require("emulator")
local opentact = require("opentact")
local cjson = require("cjson")

local sorted, writes, temp_path = support.sorted, support.writes, support.temp_path

local function uuids(list)
  local out = {}
  for i, l in ipairs(list) do out[i] = type(l) == "table" and l.uuid or l end
  return sorted(out)
end

describe("routes #wire #c", function()
  local emu, client, st, conns, apps
  local function lease(i) return st.leases[i] end
  local function number(i) return 12125550000 + i end

  setup(function()
    emu = support.start({ leases = 40, apps = 2, empty_apps = true, names = {
      connection = { [1] = "trunk-a", [2] = "trunk-b", [3] = "trunk-c", [4] = "trunk-c" }, app = { [1] = "ivr" } } })
    client = emu:client()
    st = emu:state()
    conns, apps = st.connections, st.apps
  end)
  teardown(function() support.stop(emu, client) end)

  -- leases 1-5 on trunk-a, 6-8 on trunk-b, 9 on the other trunk-c (no
  -- route names it), 10 on ivr, the rest free
  before_each(function()
    emu:reset()
    local map = {}
    for i = 1, 40 do map[lease(i)] = { sip_connection = cjson.null, sip_control_app = cjson.null } end
    for i = 1, 5 do map[lease(i)].sip_connection = conns[1] end
    for i = 6, 8 do map[lease(i)].sip_connection = conns[2] end
    map[lease(9)].sip_connection = conns[3]
    map[lease(10)].sip_control_app = apps[1]
    emu:holders(map)
    emu:requests() -- (read: the log counts from here)
  end)

  local function since(from)
    local all, out = emu:requests(), {}
    for k = from + 1, #all do out[#out + 1] = all[k] end
    return out
  end

  local function assigned(i) return sorted(emu:state().assigned[conns[i]]) end

  describe("client:plan_routes", function()
    it("plans a lease routed from one named target to another as a move, and applies it in one request", function()
      local from = #emu:requests()
      local plan = assert(client:plan_routes({
        { number = number(1), target = "trunk-b" },
        { number = "+1 212 555 0006", target = "trunk-b" },
        { lease = lease(2), target = "trunk-a" },
        { number = number(11), target = { connection = conns[1] } },
      }))
      assert.equals(opentact.RoutesPlan, getmetatable(plan))
      assert.is_true(plan.ok)
      assert.equals(0, writes(emu))
      assert.equals(2, #plan.targets)
      assert.equals("trunk-b", plan.targets[1].target_name)
      assert.equals(1, #plan.moves)
      assert.equals(lease(1), plan.moves[1].lease.uuid)
      assert.equals(plan.targets[2], plan.moves[1].from)
      assert.same(uuids({ lease(1), lease(11) }), uuids(plan.add))
      assert.same(uuids({ lease(6), lease(2) }), uuids(plan.keep))
      local text = tostring(plan)
      assert.matches("^Plan: 1 to add, 1 to move, 0 to remove, 2 unchanged, 0 conflicts, 0 missing, over 2 targets%.\n",
        text)
      assert.matches("\n  ~ 12125550001 +trunk%-a \226\134\146 trunk%-b", text)
      assert.matches("\n  %+ 12125550011 ", text)
      -- reads: the lists of targets, the two targets, one lookup per lease
      for _, r in ipairs(since(from)) do assert.equals("GET", r.method, r.path) end
      from = #emu:requests()
      local report = assert(client:apply(plan))
      assert.equals(opentact.RoutesReport, getmetatable(report))
      assert.is_true(report.ok, tostring(report))
      assert.same(uuids({ lease(1), lease(6), lease(7), lease(8) }), assigned(2))
      assert.same(uuids({ lease(2), lease(3), lease(4), lease(5), lease(11) }), assigned(1))
      -- the move is one attach to trunk-b; nothing is detached from trunk-a
      local posts = {}
      for _, r in ipairs(since(from)) do
        if r.method == "POST" and r.path:find("/tnlease$") then posts[#posts + 1] = r end
      end
      assert.equals(2, #posts)
      for _, r in ipairs(posts) do assert.is_nil(r.body:find('"remove":%["')) end
      assert.matches("Applied over all: 2 added, 0 removed, 0 failed%.\nok$", tostring(report))
    end)

    it("takes a lease held by a target the routes do not name only with move", function()
      local plan = assert(client:plan_routes({ { number = number(9), target = "trunk-a" } }))
      assert.is_false(plan.ok)
      assert.same({ lease(9) }, uuids(plan.conflicts))
      assert.same({}, plan.add)
      assert.matches("! 12125550009 .*move = true takes it", tostring(plan))
      plan = assert(client:plan_routes({ { number = number(9), target = "trunk-a" } }, { move = true }))
      assert.same({ lease(9) }, uuids(plan.add))
      assert.same({}, plan.moves)
      assert.is_true(assert(client:apply(plan)).ok)
      assert.is_truthy(assigned(1)[6] or #assigned(1) == 6)
      assert.same({}, emu:state().assigned[conns[3]])
    end)

    it("with exact, detaches from the named targets only, and never what it moves to another", function()
      local plan = assert(client:plan_routes({
        { number = number(1), target = "trunk-a" },
        { number = number(2), target = "trunk-b" },
        { number = number(6), target = "trunk-b" },
      }, { exact = true }))
      -- trunk-a: 3, 4, 5 go; 2 moves to trunk-b; trunk-b: 7, 8 go; trunk-c untouched
      assert.same(uuids({ lease(3), lease(4), lease(5), lease(7), lease(8) }), uuids(plan.remove))
      assert.equals(1, #plan.moves)
      local report = assert(client:apply(plan))
      assert.is_true(report.ok, tostring(report))
      assert.same({ lease(1) }, assigned(1))
      assert.same(uuids({ lease(2), lease(6) }), assigned(2))
      assert.same({ lease(9) }, emu:state().assigned[conns[3]])
      assert.same({ lease(10) }, emu:state().app_assigned[apps[1]])
    end)

    it("moves a lease from a connection to a control app: released, then attached by the very next request", function()
      local plan = assert(client:plan_routes({
        { number = number(3), target = "app:ivr" },
        { number = number(10), target = "trunk-b" },
        { number = number(1), target = "trunk-a" },
      }))
      assert.equals(2, #plan.moves)
      local from = #emu:requests()
      local report = assert(client:apply(plan, { concurrency = 1 }))
      assert.is_true(report.ok, tostring(report))
      assert.same({ lease(3) }, emu:state().app_assigned[apps[1]])
      assert.same(uuids({ lease(6), lease(7), lease(8), lease(10) }), assigned(2))
      local posts = {}
      for _, r in ipairs(since(from)) do
        if r.method == "POST" and r.path:find("/tnlease$") then posts[#posts + 1] = r.path .. " " .. r.body end
      end
      -- each release is followed at once by its attach
      assert.equals(4, #posts)
      for k = 1, 3, 2 do
        assert.matches('"remove":%[', posts[k])
        local released = posts[k]:match('"remove":%["([^"]+)"')
        assert.matches('"add":%["' .. released:gsub("%-", "%%-") .. '"', posts[k + 1])
      end
    end)

    it("says a lease may be on nothing when its release's answer was lost after the server applied it", function()
      local plan = assert(client:plan_routes({ { number = number(10), target = "trunk-a" },
        { number = number(20), target = "app:ivr" } }))
      emu:faults({ { on = "^POST /sip/app/", reset = true, apply = true } })
      local report = assert(client:apply(plan, { concurrency = 1 }))
      assert.is_false(report.ok)
      local text = tostring(report)
      assert.matches("may have been applied: they may be on no connection or app now", text, 1, true)
      -- (as the server holds it: released, attached nowhere)
      assert.same({ lease(20) }, emu:state().app_assigned[apps[1]])
    end)

    it("names every problem of the routes at once, reading only the lists of targets and one page", function()
      local from = #emu:requests()
      local plan, err = client:plan_routes({
        { number = number(1), target = "trunk-a", line = 2 },
        { number = "not a number", target = "trunk-a", line = 3 },
        { number = number(1), target = "trunk-b", line = 4 },
        { number = number(4), target = "nobody", line = 5 },
        { number = number(5), target = "trunk-c", line = 6 },
        { lease = "nope", target = "trunk-a", line = 7 },
      })
      assert.is_nil(plan)
      assert.equals("invalid", err.kind)
      assert.equals(5, #err.problems, table.concat(err.problems, "\n"))
      local all = table.concat(err.problems, "\n")
      assert.matches("line 3: ", all)
      assert.matches("line 4: 12125550001 is routed to SIP connection trunk%-b %(.-%) here, and on line 2 to "
        .. "SIP connection trunk%-a", all)
      assert.matches("line 5: no SIP connection or control app is named \"nobody\"", all)
      assert.matches("line 6: the name \"trunk%-c\" is ambiguous", all)
      assert.matches("line 7: its lease nope is not a lease uuid", all)
      assert.matches("^5 problems in the routes: .*; nothing was planned$", err.message)
      for _, r in ipairs(since(from)) do
        -- (the account's first page, for more routes than one round of
        -- lookups, is read beside the lists)
        assert.truthy(r.path == "/sip/connection" or r.path == "/sip/app" or r.path:find("^/lease/tn/search"), r.path)
      end
      -- without lines: their places in the list
      plan, err = client:plan_routes({ { number = number(1), target = "trunk-a" }, { number = number(1), target = "ivr" } })
      assert.is_nil(plan)
      assert.matches("routes%[2%]: 12125550001 is routed to .* here, and on routes%[1%] to", err.message)
    end)

    it("refuses a lease routed by its number to one target and by its uuid to another, changing nothing", function()
      local plan, err = client:plan_routes({ { number = number(1), target = "trunk-a", line = 1 },
        { lease = lease(1):upper(), target = "trunk-b", line = 9 } })
      assert.is_nil(plan)
      assert.equals(1, #err.problems)
      assert.matches("line 9: .* %(lease " .. lease(1):gsub("%-", "%%-") .. "%) is routed to .*trunk%-b.* and on "
        .. "line 1 to .*trunk%-a", err.problems[1])
      assert.equals(0, writes(emu))
    end)

    it("plans what the account does not have as missing, and sets each route's autorenew", function()
      local plan = assert(client:plan_routes({
        { number = number(1), target = "trunk-a", autorenew = false },
        { number = number(12), target = "trunk-a" },
        { number = 12125559999, target = "trunk-a" },
      }, { autorenew = true }))
      assert.same({ 12125559999 }, plan.missing)
      assert.is_false(plan.ok)
      local t = plan.targets[1]
      assert.is_false(t.renew_to[lease(1)])
      local text = tostring(plan)
      assert.matches("\n  %? 12125559999 +not in the account", text)
      local report = assert(client:apply(plan))
      assert.is_false(report.ok) -- (something is missing)
      assert.equals(0, #report.failed)
      local by = {}
      for _, l in ipairs(assert(client:list(conns[1]))) do by[l.uuid] = l.autorenew end
      assert.is_false(by[lease(1)])
      if #plan.renew == 2 then assert.is_true(by[lease(12)]) end
      assert.equals(#plan.renew, #report.renewed.applied)
    end)

    it("turns autorenew off for every route when the call says autorenew = false, and shows each lease's", function()
      local on, off
      for _, l in ipairs(assert(client:search_all())) do
        if l.autorenew == true then on = on or l else off = off or l end
      end
      assert(on and off, "the emulator has leases with autorenew on and off")
      -- the route of `off` says on: it wins over the call's
      local plan = assert(client:plan_routes({ { lease = on.uuid, target = "trunk-a" },
        { lease = off.uuid, target = "trunk-a", autorenew = true } }, { autorenew = false }))
      assert.is_false(plan.options.autorenew)
      assert.equals(2, #plan.renew)
      assert.is_false(plan.targets[1].renew_to[on.uuid:lower()])
      local text = tostring(plan)
      assert.matches(on.uuid .. "  (autorenew on -> off)", text, 1, true)
      assert.matches(off.uuid .. "  (autorenew off -> on)", text, 1, true)
      assert.matches("2 to set autorenew on for 1 and off for 1", text, 1, true)
      local report = assert(client:apply(plan))
      assert.is_true(report.ok, tostring(report))
      text = tostring(report)
      assert.matches(on.uuid .. "  (autorenew on -> off)", text, 1, true)
      assert.matches(off.uuid .. "  (autorenew off -> on)", text, 1, true)
      assert.matches("autorenew set on for 1 and off for 1 on 2, 0 failed", text, 1, true)
      assert.is_false(assert(client:lease(on.uuid)).autorenew)
      assert.is_true(assert(client:lease(off.uuid)).autorenew)
    end)

    it("raises for routes that are not routes", function()
      assert.has_error(function() client:plan_routes("x") end)
      assert.has_error(function() client:plan_routes({ { number = 1 } }) end,
        "bad argument #1 to 'plan_routes' (routes[1]: target: a target: a connection uuid, {app = uuid}, "
        .. "{connection = uuid} or what client:target returns (or a name) expected, got nil)")
      assert.has_error(function() client:plan_routes({ { number = 1, lease = lease(1), target = "a" } }) end,
        "bad argument #1 to 'plan_routes' (routes[1]: give one of number and lease)")
      assert.has_error(function() client:plan_routes({ [2] = { number = 1, target = "a" } }) end,
        "bad argument #1 to 'plan_routes' (a list of routes without holes expected)")
      assert.has_error(function() client:plan_routes({ { number = 1, target = "a", via = 1 } }) end)
      local plan, err = client:plan_routes({})
      assert.is_nil(plan)
      assert.equals("invalid", err.kind)
    end)
  end)

  describe("apply of a routes plan", function()
    local function move_plan()
      return assert(client:plan_routes({ { number = number(1), target = "trunk-b" },
        { number = number(6), target = "trunk-a" }, { number = number(13), target = "app:ivr" } }, { exact = true }))
    end

    it("is refused as stale when a planned lease moved, nothing sent", function()
      local plan = move_plan()
      emu:holders({ [lease(13)] = { sip_connection = conns[4] } })
      local before = writes(emu)
      local report, err = client:apply(plan)
      assert.is_nil(report)
      assert.equals("stale", err.kind)
      assert.matches(lease(13):gsub("%-", "%%-") .. " %(12125550013%): planned on no connection or app, now on SIP "
        .. "connection trunk%-c", err.message)
      assert.equals(before, writes(emu))
      -- with exact, a lease attached to a named target since is stale too
      plan = move_plan()
      emu:holders({ [lease(20)] = { sip_connection = conns[2] } })
      report, err = client:apply(plan, { reread = true })
      assert.is_nil(report)
      assert.equals("stale", err.kind)
    end)

    it("changes nothing when a target it names is gone from the server", function()
      local plan = move_plan()
      -- (the account's list of connections without trunk-b)
      emu:faults({ { on = "^GET /sip/connection$", status = 200, ctype = "application/json",
        body = '{"success":true,"payload":[{"uuid":"' .. conns[1] .. '","name":"trunk-a"}]}' } })
      local before = writes(emu)
      local report, err = client:apply(plan)
      assert.is_nil(report)
      assert.equals("not_found", err.kind)
      assert.matches("SIP connection trunk%-b %(.-%) is not in the account any more", err.message)
      assert.equals(before, writes(emu))
    end)

    it("saves and reads back: the same plan, its hash checked; a changed one is refused", function()
      local plan = move_plan()
      local text = assert(plan:encode())
      assert.matches('"kind":"routes"', text)
      local back = assert(opentact.decode_plan(text))
      assert.equals(opentact.RoutesPlan, getmetatable(back))
      assert.equals(plan.hash, back.hash)
      assert.equals(tostring(plan), tostring(back))
      local edited, n = text:gsub(lease(6):gsub("%-", "%%-"), lease(7), 1)
      assert.equals(1, n)
      local bad, err = opentact.decode_plan(edited)
      assert.is_nil(bad)
      assert.equals("invalid", err.kind)
      back.targets[1].options.exact = false
      local report
      report, err = client:apply(back)
      assert.is_nil(report)
      assert.matches("changed after it was made", err.message)
      assert.is_true(assert(client:apply(assert(opentact.decode_plan(text)))).ok)
    end)

    it("resumes from its journal after a stop, sending nothing twice", function()
      local journal = temp_path()
      finally(function() os.remove(journal) end)
      local plan = move_plan()
      local report = assert(client:apply(plan, { journal = journal, batch_size = 1, concurrency = 1,
        on_progress = function(done) if done >= 2 then error("interrupted!") end end }))
      assert.truthy(report.interrupted)
      local sent = {}
      for _, r in ipairs(emu:requests()) do
        if r.method == "POST" and r.path:find("/tnlease$") then sent[#sent + 1] = r.body end
      end
      local from = #emu:requests()
      report = assert(client:apply(plan, { journal = journal }))
      assert.is_true(report.ok, tostring(report))
      for _, r in ipairs(since(from)) do
        if r.method == "POST" and r.path:find("/tnlease$") then
          for _, body in ipairs(sent) do assert.are_not.equal(body, r.body) end
        end
      end
      assert.same({ lease(6) }, assigned(1))
      assert.same({ lease(1) }, assigned(2))
      assert.same({ lease(13) }, emu:state().app_assigned[apps[1]])
    end)
  end)
end)
