-- Targets: SIP connections and control apps by uuid, by name and as
-- tables; control apps as targets of every call that takes a connection;
-- the account's lists; lease settings (PATCH). Over the wire, against the
-- emulator, with names that are not unique (connection 3 is named as
-- connection 1 is).
local support = require("emulator")
local opentact = require("opentact")

local sorted, writes = support.sorted, support.writes

describe("targets #wire #c", function()
  local emu, client, st, conns, apps
  local function lease(i) return st.leases[i] end
  local function number(i) return 12125550000 + i end

  setup(function()
    emu = support.start({ leases = 60, apps = 2, names = { connection = { [3] = "sip-trunk-1" },
      app = { [2] = "IVR \"main\" ü" } } })
    client = emu:client()
    st = emu:state()
    conns, apps = st.connections, st.apps
  end)
  teardown(function() support.stop(emu, client) end)
  before_each(function() emu:reset() end)

  -- The API requests since the log held `from` entries.
  local function since(from)
    local all, out = emu:requests(), {}
    for k = from + 1, #all do out[#out + 1] = all[k] end
    return out
  end

  describe("client:connections() and client:apps()", function()
    it("list every one with every field, integers as integers, printing as a table", function()
      local list = assert(client:connections())
      assert.equals(4, #list)
      assert.equals(opentact.Holders, getmetatable(list))
      assert.equals(conns[1], list[1].uuid)
      assert.equals("sip-trunk-1", list[1].name)
      assert.equals("sip-trunk-1", list[3].name)
      assert.equals(5060, list[1].port)
      if math.type then assert.equals("integer", math.type(list[1].port)) end
      assert.same({ "trunk1.sip.example.com" }, list[1].sip_domains)
      assert.is_true(list[1].is_active)
      local text = tostring(list)
      assert.matches("^4 SIP connections\n  uuid +name +state\n", text)
      assert.matches("  " .. conns[3]:gsub("%-", "%%-") .. "  sip%-trunk%-1 +active", text)
      local a = assert(client:apps())
      assert.equals(2, #a)
      assert.equals('IVR "main" ü', a[2].name)
      assert.equals("https://ivr.example.com/app/1", a[1].webhook_url)
      assert.matches("^2 SIP control apps\n", tostring(a))
    end)

    it("return the server's error", function()
      emu:faults({ { status = 503 } })
      local list, err = emu:client({ retries = 0 }):connections()
      assert.is_nil(list)
      assert.equals(503, err.status)
    end)
  end)

  describe("client:target(x)", function()
    it("resolves a uuid, a name, and app:/connection: with a name or a uuid", function()
      local t = assert(client:target(conns[2]))
      assert.same({ kind = "connection", uuid = conns[2], name = "sip-trunk-2" }, setmetatable(t, nil))
      t = assert(client:target(apps[1]:upper()))
      assert.same({ kind = "app", uuid = apps[1], name = "control-app-1" }, setmetatable(t, nil))
      assert.equals(conns[2], assert(client:target("sip-trunk-2")).uuid)
      assert.equals(apps[1], assert(client:target("control-app-1")).uuid)
      assert.equals(apps[2], assert(client:target('app:IVR "main" ü')).uuid)
      assert.equals(conns[4], assert(client:target("connection:" .. conns[4])).uuid)
      assert.equals(conns[4], assert(client:target({ connection = conns[4] })).uuid)
      t = assert(client:target({ app = apps[2] }))
      assert.equals('IVR "main" ü', t.name)
      assert.equals('SIP control app IVR "main" ü (' .. apps[2] .. ")", tostring(t))
    end)

    it("says an ambiguous name is invalid, listing every candidate; an unknown one is not_found", function()
      local t, err = client:target("sip-trunk-1")
      assert.is_nil(t)
      assert.equals("invalid", err.kind)
      assert.matches('the name "sip-trunk-1" is ambiguous: 2 have it', err.message, 1, true)
      assert.matches("SIP connection sip-trunk-1 (" .. conns[1] .. ")", err.message, 1, true)
      assert.matches("SIP connection sip-trunk-1 (" .. conns[3] .. ")", err.message, 1, true)
      assert.equals(2, #err.candidates)
      assert.equals(conns[3], err.candidates[2].uuid)
      t, err = client:target("no-such-trunk")
      assert.is_nil(t)
      assert.equals("not_found", err.kind)
      assert.matches('no SIP connection or control app is named "no-such-trunk"', err.message, 1, true)
      -- a connection's name given as an app's
      t, err = client:target("app:sip-trunk-2")
      assert.is_nil(t)
      assert.equals("not_found", err.kind)
      assert.matches("no SIP control app is named", err.message, 1, true)
      -- an app's uuid given as a connection's
      t, err = client:target("connection:" .. apps[1])
      assert.is_nil(t)
      assert.equals("not_found", err.kind)
      t, err = client:target("app:")
      assert.is_nil(t)
      assert.equals("invalid", err.kind)
    end)

    it("resolves a thousand names with one read of each list", function()
      local c = emu:client()
      -- the lists' clock stands still: a slow machine (Valgrind) does not
      -- make them 2 s old in the middle
      local targets = require("opentact.targets")
      local clock, now = targets.clock, targets.clock()
      targets.clock = function() return now end
      finally(function()
        targets.clock = clock
        c:close()
      end)
      local from = #emu:requests()
      for i = 1, 1000 do
        local name = ({ "sip-trunk-2", "control-app-1", "sip-trunk-4", "nobody-" .. i })[i % 4 + 1]
        local t, err = c:target(name)
        assert(t or err.kind == "not_found", err and tostring(err))
      end
      assert.equals(2, #since(from))
    end)

    it("reads the lists again after names_ttl, and on a miss once they are a moment old", function()
      local c = emu:client({ names_ttl = 0 })
      finally(function() c:close() end)
      local from = #emu:requests()
      assert(c:target("sip-trunk-2"))
      assert(c:target("sip-trunk-2"))
      assert.equals(4, #since(from))
      -- a name nobody has: the lists just read are not read again
      from = #emu:requests()
      local _, err = c:target("nobody")
      assert.equals("not_found", err.kind)
      assert.equals(2, #since(from))
    end)
  end)

  describe("a control app as a target", function()
    it("lists, assigns and assign_batches a control app's leases, blocking and with callbacks", function()
      local held = assert(client:list({ app = apps[1] }))
      assert.same({ lease(60) }, { held[1].uuid })
      assert(client:assign({ app = apps[1] }, { add = { lease(20) } }))
      local report = client:assign_batched(assert(client:target("control-app-1")), { add = { lease(21), lease(22) } },
        { batch_size = 1 })
      assert.is_true(report.ok, tostring(report))
      assert.same(sorted({ lease(20), lease(21), lease(22), lease(60) }), sorted(emu:state().app_assigned[apps[1]]))
      local got
      assert(client:list({ app = apps[1] }, function(leases) got = leases end))
      while client:step(1) > 0 do end
      assert.equals(4, #got)
      -- a connection as a table too
      assert.equals(3, #assert(client:list({ connection = conns[1] })))
    end)

    it("runs list_many over connections and apps in input order", function()
      local r = client:list_many({ conns[1], { app = apps[1] }, { app = "not-a-uuid" }, { connection = conns[2] } })
      assert.equals(3, #r[1].leases)
      assert.equals("app", r[2].kind)
      assert.equals(1, #r[2].leases)
      assert.equals("invalid", r[3].err.kind)
      assert.matches("control app uuid 'not-a-uuid' is not a uuid", r[3].err.message, 1, true)
      assert.same({}, setmetatable(r[4].leases, nil))
    end)

    it("says a bad uuid is invalid with nothing sent, naming the kind", function()
      local posts, from = writes(emu), #emu:requests()
      local leases, err = client:list({ app = "ivr" })
      assert.is_nil(leases)
      assert.equals("invalid", err.kind)
      assert.matches("control app uuid 'ivr' is not a uuid", err.message, 1, true)
      leases, err = client:assign({ connection = "x" }, { add = { lease(5) } })
      assert.is_nil(leases)
      assert.matches("connection uuid 'x' is not a uuid", err.message, 1, true)
      -- a name is never guessed: a bare string is a connection's uuid
      leases, err = client:list("sip-trunk-2")
      assert.is_nil(leases)
      assert.equals("invalid", err.kind)
      assert.equals(posts, writes(emu))
      assert.same({}, since(from))
    end)

    it("syncs a control app: a lease on a connection is released from it first, then attached", function()
      -- lease 1 is on sip-trunk-1; lease 60 on control-app-1 already
      local app = assert(client:target("control-app-1"))
      local plan = assert(client:plan(app, { numbers = { number(1), number(30), number(60) } }, { move = true }))
      local text = tostring(plan)
      assert.matches("SIP control app control-app-1 (" .. apps[1] .. "):", text, 1, true)
      assert.matches("+ 12125550001 .*moves from SIP connection sip%-trunk%-1", text)
      assert.same({ kind = "connection", uuid = conns[1], name = "sip-trunk-1" }, plan.holders[lease(1)])
      local report = assert(client:apply(plan))
      assert.is_true(report.ok, tostring(report))
      assert.same({ { connection = conns[1], kind = "connection", name = "sip-trunk-1", leases = { lease(1) } } },
        report.released)
      assert.matches("released 1 from SIP connection sip%-trunk%-1", tostring(report))
      local s = emu:state()
      assert.same(sorted({ lease(1), lease(30), lease(60) }), sorted(s.app_assigned[apps[1]]))
      assert.is_falsy(support.set(s.assigned[conns[1]])[lease(1)])
      -- and back to the trunk, with sync
      report = assert(client:sync(conns[1], { numbers = { number(1) } }, { move = true }))
      assert.is_true(report.ok, tostring(report))
      s = emu:state()
      assert.is_true(support.set(s.assigned[conns[1]])[lease(1)])
      assert.is_falsy(support.set(s.app_assigned[apps[1]])[lease(1)])
    end)

    it("without move, leaves a lease held by a connection alone as a conflict", function()
      local report = assert(client:sync({ app = apps[2] }, { numbers = { number(2), number(31) } }))
      assert.is_false(report.ok)
      assert.equals(lease(2), report.conflicts[1].uuid)
      assert.same({ lease(31) }, report.applied.add)
    end)

    it("saves, reads back and applies a plan for a control app; with exact it detaches what else it holds", function()
      local plan = assert(client:plan({ app = apps[1] }, { numbers = { number(40) } }, { exact = true }))
      assert.same({ lease(60) }, { plan.remove[1].uuid })
      local back = assert(opentact.decode_plan(assert(plan:encode())))
      assert.equals("app", back.target_kind)
      assert.equals(apps[1], back.app)
      assert.equals(tostring(plan), tostring(back))
      -- the kind is part of the hash
      local edited = assert(plan:encode()):gsub('"kind":"app"', '"kind":"connection"', 1)
      assert.is_nil((opentact.decode_plan(edited)))
      local report = assert(client:apply(back))
      assert.is_true(report.ok, tostring(report))
      assert.same({ lease(40) }, emu:state().app_assigned[apps[1]])
    end)

    it("refuses a stale plan for a control app", function()
      local plan = assert(client:plan({ app = apps[1] }, { numbers = { number(41) } }))
      emu:holders({ [lease(41)] = { sip_connection = conns[2] } })
      local posts = writes(emu)
      local report, err = client:apply(plan)
      assert.is_nil(report)
      assert.equals("stale", err.kind)
      assert.equals(posts, writes(emu))
    end)
  end)

  describe("client:update_lease", function()
    it("changes autorenew and the feature flags of a lease by uuid, by number or as a lease", function()
      local l = assert(client:update_lease(lease(4), { autorenew = false, voice = true }))
      assert.equals(lease(4), l.uuid)
      assert.is_false(l.autorenew)
      assert.is_true(l.voice)
      assert.equals(opentact.Lease, getmetatable(l))
      local req = emu:requests()[#emu:requests()]
      assert.equals("PATCH", req.method)
      assert.equals("/lease/tn/" .. lease(4), req.path)
      assert.equals('{"autorenew":false,"voice":true}', req.body)
      assert.is_false(assert(client:lease(number(4))).autorenew)
      -- by number: looked up first
      l = assert(client:update_lease("+1 212 555 0005", { autorenew = true, sms = false }))
      assert.equals(lease(5), l.uuid)
      assert.is_true(l.autorenew)
      l = assert(client:update_lease(l, { messaging_profile = "0A1B2C3D-0000-4000-8000-000000000001" }))
      assert.same({ uuid = "0a1b2c3d-0000-4000-8000-000000000001" }, l.messaging_profile)
      l = assert(client:update_lease(lease(5), { messaging_profile = false }))
      assert.is_nil(l.messaging_profile)
      -- a search by autorenew sees it
      local page = assert(client:search({ autorenew = false, tn = "1212555000%" }))
      local found = {}
      for _, x in ipairs(page.data) do found[x.uuid] = true end
      assert.is_true(found[lease(4)])
      assert.is_falsy(found[lease(5)])
    end)

    it("returns an error when the server's answer does not show what was set, or is another lease's", function()
      local cjson = require("cjson")
      emu:faults({ { on = "^PATCH ", raw = cjson.encode({ success = true, payload = { uuid = lease(6), autorenew = true } }),
        ctype = "application/json" } })
      local l, err = client:update_lease(lease(6), { autorenew = false })
      assert.is_nil(l)
      assert.equals("protocol", err.kind)
      assert.matches("its answer shows autorenew unchanged", err.message, 1, true)
      emu:faults({ { on = "^PATCH ", raw = cjson.encode({ success = true, payload = { uuid = lease(9), autorenew = false } }),
        ctype = "application/json" } })
      l, err = client:update_lease(lease(6), { autorenew = false })
      assert.is_nil(l)
      assert.matches("another lease", err.message, 1, true)
    end)

    it("returns not_found for a number the account has no lease for, and the server's refusal", function()
      local l, err = client:update_lease("+1 999 555 0000", { autorenew = true })
      assert.is_nil(l)
      assert.equals("not_found", err.kind)
      emu:faults({ { on = "^PATCH ", status = 400, message = "autorenew is locked" } })
      l, err = client:update_lease(lease(6), { autorenew = true })
      assert.is_nil(l)
      assert.equals(400, err.status)
      assert.matches("autorenew is locked", err.message, 1, true)
    end)

    it("raises for a field that is not a setting, or a callback, sending nothing", function()
      local from = #emu:requests()
      assert.has_error(function() client:update_lease(lease(4), { sip_connection = conns[1] }) end)
      assert.has_error(function() client:update_lease(lease(4), { autorenew = "no" }) end)
      assert.has_error(function() client:update_lease(lease(4), { autorenew = true }, function() end) end,
        "bad argument #3 to 'update_lease' (no more arguments expected: it takes no callback)")
      -- a lease whose uuid is not one: invalid, never looked up as a number
      local l, err = client:update_lease({ uuid = "12125550004" }, { autorenew = true })
      assert.is_nil(l)
      assert.equals("invalid", err.kind)
      assert.same({}, since(from))
    end)
  end)

  describe("the emulator", function()
    local function call(method, path, body)
      local h = { ["x-auth-token"] = emu.token }
      if body then h["content-type"] = "application/json" end
      return emu:raw(method, path, h, body)
    end

    it("answers one connection or app by uuid, 404 for an unknown one", function()
      local status, text = call("GET", "/sip/connection/" .. conns[2])
      assert.equals(200, status)
      assert.matches('"name":"sip-trunk-2"', text, 1, true)
      status = call("GET", "/sip/app/" .. conns[2])
      assert.equals(404, status)
      status = call("GET", "/sip/app/nope")
      assert.equals(400, status)
      status = call("POST", "/sip/connection", "{}")
      assert.equals(405, status)
    end)

    it("refuses DELETE of a lease loudly: it would release the number", function()
      local status, text = call("DELETE", "/lease/tn/" .. lease(4))
      assert.equals(405, status)
      assert.matches("does not release numbers", text, 1, true)
      assert.equals(60, #emu:state().leases)
    end)

    it("refuses a PATCH field the API does not take, and changes holders as the tnlease routes do", function()
      local status, text = call("PATCH", "/lease/tn/" .. lease(4), '{"colour":"red"}')
      assert.equals(400, status)
      assert.matches("unknown field 'colour'", text, 1, true)
      status = call("PATCH", "/lease/tn/" .. lease(4), '{"sip_connection":"' .. conns[2] .. '"}')
      assert.equals(200, status)
      assert.same({ lease(4) }, emu:state().assigned[conns[2]])
      -- on a connection: an app cannot take it
      status, text = call("PATCH", "/lease/tn/" .. lease(4), '{"sip_control_app":"' .. apps[1] .. '"}')
      assert.equals(409, status)
      assert.matches("is assigned to SIP connection", text, 1, true)
      status = call("PATCH", "/lease/tn/" .. lease(4), '{"sip_connection":null}')
      assert.equals(200, status)
      assert.same({}, emu:state().assigned[conns[2]])
    end)
  end)
end)

describe("autorenew in plans #wire #c", function()
  local emu, client, st, conn
  local function lease(i) return st.leases[i] end
  local function number(i) return 12125550000 + i end

  setup(function()
    emu = support.start({ leases = 30 })
    client = emu:client()
    st = emu:state()
    conn = st.connections[2]
  end)
  teardown(function() support.stop(emu, client) end)
  before_each(function() emu:reset() end)

  -- The PATCHes the emulator received since it held `from` requests.
  local function patches(from)
    local out = {}
    local all = emu:requests()
    for k = from + 1, #all do
      if all[k].method == "PATCH" then out[#out + 1] = all[k].path .. " " .. all[k].body end
    end
    table.sort(out)
    return out
  end

  it("plans the leases whose autorenew differs, shows them with ~, and applies exactly those", function()
    -- lease i renews unless i is a multiple of 3
    client:assign(conn, { add = { lease(4) } })
    local plan = assert(client:plan(conn, { numbers = { number(9), number(4), number(7) } }, { autorenew = false }))
    assert.is_false(plan.options.autorenew)
    assert.same(sorted({ lease(4), lease(7) }), sorted((function()
      local out = {}
      for i, l in ipairs(plan.renew) do out[i] = l.uuid end
      return out
    end)()))
    local text = tostring(plan)
    assert.matches("Plan: 2 to add, 0 to remove, 1 unchanged, 0 conflicts, 0 missing, 2 to set autorenew off.", text,
      1, true)
    assert.matches("~ 12125550004 .*%(autorenew on %-> off%)", text)
    -- saved with the plan, and part of its hash
    local saved = assert(plan:encode())
    local back = assert(opentact.decode_plan(saved))
    assert.equals(tostring(plan), tostring(back))
    assert.is_nil((opentact.decode_plan((saved:gsub('"autorenew":false,"exact"', '"autorenew":true,"exact"', 1)))))
    local from = #emu:requests()
    local report = assert(client:apply(back))
    assert.is_true(report.ok, tostring(report))
    assert.same(sorted({ lease(4), lease(7) }), sorted(report.renewed.applied))
    assert.same(sorted({ "/lease/tn/" .. lease(4) .. ' {"autorenew":false}', "/lease/tn/" .. lease(7)
      .. ' {"autorenew":false}' }), patches(from))
    assert.matches("autorenew set off on 2, 0 failed", tostring(report), 1, true)
    assert.is_false(assert(client:lease(number(7))).autorenew)
    assert.is_false(assert(client:lease(number(4))).autorenew)
    -- nothing left to set: sync plans none
    report = assert(client:sync(conn, { numbers = { number(9), number(4), number(7) } }, { autorenew = false }))
    assert.same({}, report.renew)
    assert.is_true(report.ok, tostring(report))
  end)

  it("sets no autorenew on a lease whose attach failed", function()
    emu:faults({ { on = "^POST /sip/connection/", status = 400, message = "no" } })
    local from = #emu:requests()
    local report = assert(client:sync(conn, { numbers = { number(7) } }, { autorenew = false }))
    assert.is_false(report.ok)
    assert.same({}, patches(from))
    assert.same({ lease(7) }, report.renewed.failed[1].uuids)
    assert.matches("not on the target", report.renewed.failed[1].err.message, 1, true)
    assert.is_true(assert(client:lease(number(7))).autorenew)
  end)

  it("refuses a saved plan that sets the autorenew of a lease with another holder than it lists", function()
    local plan = assert(client:plan(conn, { numbers = { number(1) } }, { autorenew = false, move = true }))
    local text = assert(plan:encode())
    -- the add's holder (connection 1) made nobody, the set entry's kept
    local first = text:find('"holder":{', 1, true)
    local close = text:find("}", first, true)
    local edited = text:sub(1, first - 1) .. '"holder":false' .. text:sub(close + 1)
    assert.not_equals(text, edited)
    local back, err = opentact.decode_plan(edited)
    assert.is_nil(back)
    assert.equals("invalid", err.kind)
  end)

  it("counts autorenew as set only when the target's read-back shows it", function()
    -- the PATCH is answered as done and is not
    local shown = assert(client:lease(number(7)))
    local body = require("cjson").encode({ success = true, payload = { uuid = lease(7), autorenew = false,
      tn = { tn = number(7) } } })
    emu:faults({ { on = "^PATCH ", raw = body, status = 200, ctype = "application/json" } })
    local report = assert(client:sync(conn, { numbers = { number(7) } }, { autorenew = false }))
    assert.is_true(shown.autorenew)
    assert.is_false(report.ok)
    assert.same({}, report.renewed.applied)
    assert.same({ lease(7) }, report.renewed.failed[1].uuids)
    assert.matches("read-back shows the lease's autorenew unchanged", report.renewed.failed[1].err.message, 1, true)
  end)

  it("takes a PATCH answered with another lease as not done", function()
    local body = require("cjson").encode({ success = true, payload = { uuid = lease(9), autorenew = false,
      tn = { tn = number(9) } } })
    emu:faults({ { on = "^PATCH ", raw = body, status = 200, ctype = "application/json" } })
    local report = assert(client:sync(conn, { numbers = { number(7) } }, { autorenew = false }))
    assert.is_false(report.ok)
    assert.matches("another lease", report.renewed.failed[1].err.message, 1, true)
  end)

  it("says which leases' autorenew could not be set, and is not ok", function()
    emu:faults({ { on = "^PATCH ", status = 400, message = "locked" } })
    local report = assert(client:sync(conn, { numbers = { number(5), number(6) } }, { autorenew = true }))
    assert.is_false(report.ok)
    -- lease 5 renews already; lease 6 does not
    assert.same({ lease(5), lease(6) }, report.applied.add)
    assert.same({}, report.renewed.applied)
    assert.same({ lease(6) }, report.renewed.failed[1].uuids)
    assert.equals(400, report.renewed.failed[1].err.status)
    assert.matches("1 uuid (autorenew): opentact: rejected (400): locked", tostring(report), 1, true)
  end)

  it("raises for an autorenew that is not a boolean", function()
    assert.has_error(function() client:plan(conn, { numbers = { number(5) } }, { autorenew = "off" }) end)
  end)
end)
