-- Plans over the wire, against the emulator: client:plan changes nothing
-- and records every planned lease's holder; client:apply refuses what is
-- not a plan, was changed, or is for another URL (invalid), refuses a
-- plan the server no longer matches (stale, nothing changed), and
-- otherwise sends exactly the planned requests and reads back; sync is
-- plan + apply; plan:encode / opentact.decode_plan; the journal.
local support = require("emulator")
local opentact = require("opentact")

local sorted, writes = support.sorted, support.writes

local function uuids(list)
  local out = {}
  for i, l in ipairs(list) do out[i] = type(l) == "table" and l.uuid or l end
  return sorted(out)
end

local function raw_state(emu)
  local status, text = emu:raw("GET", "/__emulator/state")
  assert.equals(200, status)
  return text
end

-- The requests the emulator received after the first `from` of them.
local function since(emu, from)
  local all, out = emu:requests(), {}
  for i = from + 1, #all do out[#out + 1] = all[i] end
  return out
end

local temp_path = support.temp_path

local read = support.slurp

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

describe("plans #wire #c", function()
  local emu, client, st, conn, conn1, app1
  local function number(i) return 12125550000 + i end
  local function lease(i) return st.leases[i] end

  setup(function()
    emu, client, st, conn, conn1, app1 = support.start_for_sync()
  end)
  teardown(function() support.stop(emu, client) end)
  before_each(function() emu:reset() end)

  -- client:apply(plan, opts) refused: no report, an error of `kind` whose
  -- message holds `text`, and no write sent.
  local function refused(plan, opts, kind, text)
    local posts = writes(emu)
    local report, err = client:apply(plan, opts)
    assert.is_nil(report)
    assert.equals(kind, err.kind)
    assert.matches(text, err.message, 1, true)
    assert.equals(posts, writes(emu))
  end

  describe("client:plan", function()
    it("changes nothing and records every planned lease's holder, the options, the URL and the time", function()
      client:assign(conn, { add = { lease(10), lease(11) } })
      local before, posts = raw_state(emu), writes(emu)
      local t0 = os.time()
      local plan = assert(client:plan(conn, { numbers = { number(10), number(12), number(1), number(60),
        "+1 999 555 0000" } }, { exact = true, move = true }))
      assert.equals(before, raw_state(emu))
      assert.equals(posts, writes(emu))
      assert.equals(opentact.Plan, getmetatable(plan))
      assert.is_true(plan.dry_run)
      assert.is_false(plan.ok) -- a number is missing
      assert.equals(conn, plan.target)
      assert.equals(conn, plan.connection)
      assert.same({ exact = true, move = true }, plan.options)
      assert.equals(client:base_url(), plan.base_url)
      assert.is_true(plan.time >= t0 and plan.time <= os.time())
      assert.equals(1, plan.version)
      assert.matches("^%x+$", plan.hash)
      assert.same(sorted({ lease(12), lease(1), lease(60) }), uuids(plan.add))
      assert.same({ lease(11) }, uuids(plan.remove))
      assert.same({ lease(10) }, uuids(plan.keep))
      assert.same({ "+1 999 555 0000" }, plan.missing)
      assert.same(false, plan.holders[lease(12)])
      assert.same({ kind = "connection", uuid = conn1, name = "sip-trunk-1" }, plan.holders[lease(1)])
      assert.same({ kind = "app", uuid = app1, name = "control-app-1" }, plan.holders[lease(60)])
      assert.same({ kind = "connection", uuid = conn }, plan.holders[lease(11)])
      assert.same({ kind = "connection", uuid = conn }, plan.holders[lease(10)])
    end)

    it("prints the terraform-style listing with its summary line first", function()
      local plan = assert(client:plan(conn, { numbers = { number(12), number(60) } }, { move = true }))
      local lines = {}
      for line in tostring(plan):gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.equals("Plan: 2 to add, 0 to remove, 0 unchanged, 0 conflicts, 0 missing.", lines[1])
      assert.equals("SIP connection " .. conn .. ":", lines[2])
      assert.matches("^  %+ 12125550012 ", lines[3])
      assert.matches("^  %+ 12125550060 .*moves from SIP control app control%-app%-1 %(" .. app1:gsub("%-", "%%-")
        .. "%)%)$", lines[4])
      assert.equals("ok", lines[#lines])
    end)

    it("is what a dry run of sync returns, refused exactly as sync refuses", function()
      local dry = assert(client:sync(conn, { numbers = { number(12), number(1) } }, { dry_run = true }))
      local plan = assert(client:plan(conn, { numbers = { number(12), number(1) } }))
      assert.equals(opentact.Plan, getmetatable(dry))
      assert.same(uuids(plan.add), uuids(dry.add))
      assert.same(uuids(plan.conflicts), uuids(dry.conflicts))
      assert.same(plan.holders, dry.holders)
      assert.is_string(dry.hash)
      client:assign(conn, { add = { lease(20) } })
      local p, perr = client:plan(conn, { numbers = { "212 555 0020" } }, { exact = true })
      local s, serr = client:sync(conn, { numbers = { "212 555 0020" } }, { exact = true, dry_run = true })
      assert.is_nil(p)
      assert.is_nil(s)
      assert.equals("invalid", perr.kind)
      assert.equals(serr.message, perr.message)
    end)

    it("raises for misuse, as sync does", function()
      assert.has_error(function() client:plan(conn, { numbers = 5 }) end)
      assert.has_error(function() client:plan(conn, { numbers = {} }, { dry_run = true }) end)
      assert.has_error(function() client:apply("plan") end)
      assert.has_error(function() client:apply({}, { journal = 5 }) end)
    end)
  end)

  describe("client:apply", function()
    it("does exactly the planned requests, then reads back: no lookup of a number, no other lease", function()
      client:assign(conn, { add = { lease(10), lease(11) } })
      local plan = assert(client:plan(conn, { numbers = { number(10), number(12), number(13) } }, { exact = true }))
      local from = #emu:requests()
      local report = assert(client:apply(plan, { batch_size = 2 }))
      assert.is_true(report.ok, tostring(report))
      assert.is_false(report.dry_run)
      assert.same(sorted({ lease(12), lease(13) }), sorted(report.applied.add))
      assert.same({ lease(11) }, report.applied.remove)
      assert.same(sorted({ lease(10), lease(12), lease(13) }), sorted(emu:state().assigned[conn]))
      local listed = { [lease(11)] = true, [lease(12)] = true, [lease(13)] = true }
      local posts, reads, searches = 0, 0, 0
      for _, r in ipairs(since(emu, from)) do
        assert.is_nil(r.path:find("/tn$"), "a number was looked up: " .. r.path)
        assert.is_nil(r.path:find("^/lease/tn/%x"), "a lease was looked up: " .. r.path)
        if r.path:find("search", 1, true) then
          -- the stale check's one question: what changed since the plan
          assert.matches('"modified_on_from":"', r.body, 1, true)
          searches = searches + 1
        elseif r.method == "POST" then
          posts = posts + 1
          for u in (r.body or ""):gmatch("%x+%-%x+%-%x+%-%x+%-%x+") do
            assert.is_true(listed[u], "a lease the plan does not list was written: " .. u)
          end
        elseif r.path:find("/sip/connection/", 1, true) then
          reads = reads + 1
        end
      end
      assert.equals(2, posts) -- three changes in batches of two
      -- the read-back (the stale check asks what changed since the plan,
      -- and that the connection is still in the account's list)
      assert.equals(1, reads)
      assert.equals(1, searches)
    end)

    it("releases a planned move off a control app first, and attaches it", function()
      local plan = assert(client:plan(conn, { numbers = { number(60) } }, { move = true }))
      local report = assert(client:apply(plan))
      assert.is_true(report.ok, tostring(report))
      assert.equals(app1, report.released[1].app)
      assert.same({ lease(60) }, emu:state().assigned[conn])
    end)

    for _, reread in ipairs({ false, true }) do
    it("refuses a plan whose planned lease moved since: stale, naming it, nothing changed (reread = "
        .. tostring(reread) .. ")", function()
      local plan = assert(client:plan(conn, { numbers = { number(12), number(13), number(14), number(15),
        number(16) } }))
      emu:holders({ [lease(12)] = { sip_connection = conn1 }, [lease(13)] = { sip_control_app = app1 },
        [lease(14)] = { sip_connection = conn1 }, [lease(15)] = { sip_connection = conn1 } })
      local before, posts = raw_state(emu), writes(emu)
      local report, err = client:apply(plan, { reread = reread })
      assert.is_nil(report)
      assert.equals("stale", err.kind)
      assert.equals(before, raw_state(emu))
      assert.equals(posts, writes(emu))
      assert.equals(4, #err.moved)
      local by = {}
      for _, m in ipairs(err.moved) do by[m.uuid] = m end
      assert.same({ uuid = lease(13), tn = number(13), planned = false,
        now = { kind = "app", uuid = app1, name = "control-app-1" } }, by[lease(13)])
      assert.same({ kind = "connection", uuid = conn1, name = "sip-trunk-1" }, by[lease(12)].now)
      assert.matches("the plan is stale: 4 leases changed since it was made", err.message, 1, true)
      assert.matches("and 1 more", err.message, 1, true)
      assert.matches(lease(12), err.message, 1, true)
      assert.matches("opentact: stale: ", tostring(err), 1, true)
    end)
    end

    it("refuses an exact plan when the target holds a lease the plan does not, or lost one it keeps", function()
      client:assign(conn, { add = { lease(10) } })
      local plan = assert(client:plan(conn, { numbers = { number(10), number(12) } }, { exact = true }))
      client:assign(conn, { add = { lease(30) } })
      local report, err = client:apply(plan, { reread = true })
      assert.is_nil(report)
      assert.equals("stale", err.kind)
      assert.same({ { uuid = lease(30), tn = number(30), now = { kind = "connection", uuid = conn } } }, err.moved)
      assert.same(sorted({ lease(10), lease(30) }), sorted(emu:state().assigned[conn]))
      -- a kept lease taken away
      client:assign(conn, { remove = { lease(30) } })
      plan = assert(client:plan(conn, { numbers = { number(10), number(12) } }))
      client:assign(conn, { remove = { lease(10) } })
      report, err = client:apply(plan)
      assert.is_nil(report)
      assert.equals("stale", err.kind)
      assert.same({ { uuid = lease(10), tn = number(10), planned = { kind = "connection", uuid = conn }, now = false } },
        err.moved)
    end)

    it("reads a large plan's leases with one pass over the account when that costs less than lookups", function()
      local want = {}
      for i = 2, 59 do want[#want + 1] = number(i) end
      local plan = assert(client:plan(conn, { numbers = want }, { move = true, page_size = 20 }))
      local from = #emu:requests()
      local report = assert(client:apply(plan, { page_size = 20, concurrency = 2, reread = true }))
      assert.is_true(report.ok, tostring(report))
      local lookups, pages = 0, 0
      for _, r in ipairs(since(emu, from)) do
        if r.path:find("^/lease/tn/%x") then lookups = lookups + 1 end
        if r.path:find("^/lease/tn/search") then pages = pages + 1 end
      end
      assert.equals(0, lookups)
      assert.is_true(pages >= 3, pages)
    end)

    it("checks by one search of what changed since planning, on the server's clock, and the target's presence",
        function()
      -- a lease the plan found free, taken by another connection a moment
      -- after planning: apply finds it and changes nothing
      local plan = assert(client:plan(conn, { numbers = { number(12), number(13) } }))
      assert.is_number(plan.since)
      -- (the emulator's Date and modified_on come from one clock)
      assert.is_true(math.abs(plan.since + 60 - os.time()) <= 5, plan.since)
      emu:holders({ [lease(13)] = { sip_connection = conn1 } })
      local posts, from = writes(emu), #emu:requests()
      local report, err = client:apply(plan)
      assert.is_nil(report)
      assert.equals("stale", err.kind)
      assert.equals(lease(13), err.moved[1].uuid)
      assert.equals(posts, writes(emu))
      assert.is_true(support.set(emu:state().assigned[conn1])[lease(13)])
      local reads = {}
      for _, r in ipairs(since(emu, from)) do reads[#reads + 1] = r.method .. " " .. r.path end
      table.sort(reads)
      assert.same({ "GET /sip/connection", "POST /lease/tn/search" }, reads)
      -- with reread, every planned lease is read again: looked up by uuid
      from = #emu:requests()
      report, err = client:apply(plan, { reread = true })
      assert.is_nil(report)
      assert.equals(lease(13), err.moved[1].uuid)
      local lookups = 0
      for _, r in ipairs(since(emu, from)) do
        if r.path:find("^/lease/tn/%x") then lookups = lookups + 1 end
      end
      assert.equals(2, lookups)
    end)

    it("does without the server's time when its Date is more than a minute off this machine's clock", function()
      -- a proxy or a server whose clock is wrong would put `since` after
      -- changes that matter: the plan keeps none, and apply reads every
      -- planned lease again
      emu:faults({ { date = 600 }, { date = 600 }, { date = 600 } })
      local plan = assert(client:plan(conn, { numbers = { number(12), number(13) } }))
      assert.equals(0, emu:stats().faults_pending)
      assert.is_nil(plan.since)
      emu:holders({ [lease(13)] = { sip_connection = conn1 } })
      local from = #emu:requests()
      local _, err = client:apply(plan)
      assert.equals("stale", err.kind)
      local lookups = 0
      for _, r in ipairs(since(emu, from)) do
        if r.path:find("^/lease/tn/%x") then lookups = lookups + 1 end
      end
      assert.equals(2, lookups)
      -- 30 s off is within what answers from several servers may differ by
      emu:faults({ { date = -30 }, { date = -30 }, { date = -30 } })
      plan = assert(client:plan(conn, { numbers = { number(12), number(14) } }))
      assert.is_true(math.abs(plan.since + 90 - os.time()) <= 5, plan.since)
    end)

    it("finds a lease expected on the target that left it since, from the search alone", function()
      client:assign(conn, { add = { lease(10) } })
      local plan = assert(client:plan(conn, { numbers = { number(10), number(12) } }, { exact = true }))
      emu:holders({ [lease(10)] = { sip_connection = conn1 } })
      local posts = writes(emu)
      local report, err = client:apply(plan)
      assert.is_nil(report)
      assert.equals("stale", err.kind)
      assert.equals(lease(10), err.moved[1].uuid)
      assert.matches("planned on SIP connection .*, now on SIP connection", err.message)
      assert.equals(posts, writes(emu))
    end)

    it("changes nothing when the target is gone from the account's list", function()
      local plan = assert(client:plan(conn, { numbers = { number(12) } }))
      emu:faults({ { on = "^GET /sip/connection$", status = 200, ctype = "application/json",
        body = '{"success":true,"payload":[{"uuid":"' .. conn1 .. '","name":"other"}]}' } })
      local posts = writes(emu)
      local report, err = client:apply(plan)
      assert.is_nil(report)
      assert.equals("not_found", err.kind)
      assert.matches("is not in the account any more", err.message)
      assert.equals(posts, writes(emu))
    end)

    it("reads the planned leases again when more changed since planning than one page holds", function()
      -- one page is one moment; pages read one after another could miss a
      -- lease that moves between them
      local plan = assert(client:plan(conn, { numbers = { number(12), number(13) } }))
      local moved = {}
      for i = 20, 25 do moved[lease(i)] = { sip_connection = conn1 } end
      emu:holders(moved)
      local from = #emu:requests()
      assert.is_true(assert(client:apply(plan, { page_size = 5 })).ok)
      local lookups = 0
      for _, r in ipairs(since(emu, from)) do
        if r.path:find("^/lease/tn/%x") then lookups = lookups + 1 end
      end
      assert.equals(2, lookups)
      -- and it still finds a planned lease among many changes
      emu:reset()
      plan = assert(client:plan(conn, { numbers = { number(12), number(13) } }))
      moved[lease(13)] = { sip_control_app = app1 }
      emu:holders(moved)
      local _, err = client:apply(plan, { page_size = 5 })
      assert.equals("stale", err.kind)
      assert.same({ kind = "app", uuid = app1, name = "control-app-1" }, err.moved[1].now)
    end)

    it("keeps the server's time in a saved plan; one saved without it is checked by reading its leases again",
        function()
      local plan = assert(client:plan(conn, { numbers = { number(12) } }))
      local text = assert(plan:encode())
      local back = assert(opentact.decode_plan(text))
      assert.equals(plan.since, back.since)
      -- a changed time is a damaged plan
      assert.is_nil((opentact.decode_plan((text:gsub('"since":%d+', '"since":' .. (plan.since - 3600))))))
      assert.is_nil((opentact.decode_plan((text:gsub('"since":%d+', '"since":-5')))))
      -- no time: as a plan saved before plans had one
      local old = setmetatable({}, getmetatable(plan))
      for k, v in pairs(plan) do old[k] = v end
      old.since, old.hash = nil, nil
      old = assert(opentact.decode_plan(assert(old:encode())))
      assert.is_nil(old.since)
      emu:holders({ [lease(12)] = { sip_connection = conn1 } })
      local from = #emu:requests()
      local _, err = client:apply(old)
      assert.equals("stale", err.kind)
      local lookups = 0
      for _, r in ipairs(since(emu, from)) do
        assert.is_nil(r.body and r.body:find("modified_on_from", 1, true), "asked what changed without a time")
        if r.path:find("^/lease/tn/%x") then lookups = lookups + 1 end
      end
      assert.equals(1, lookups)
    end)

    it("refuses what is not a plan, a plan changed after it was made, and one for another URL: invalid", function()
      local plan = assert(client:plan(conn, { numbers = { number(12) } }))
      local from = #emu:requests()
      local report, err = client:apply({ add = {}, remove = {} })
      assert.is_nil(report)
      assert.equals("invalid", err.kind)
      assert.matches("not a plan", err.message, 1, true)
      -- a lease slipped into it
      table.insert(plan.add, { uuid = lease(13) })
      report, err = client:apply(plan)
      assert.is_nil(report)
      assert.equals("invalid", err.kind)
      assert.matches("changed after it was made", err.message, 1, true)
      assert.is_nil((plan:encode()))
      table.remove(plan.add)
      local other = opentact.new({ token = "t0ken-for-another", base_url = "http://127.0.0.1:9/rest" })
      report, err = other:apply(plan)
      other:close()
      assert.is_nil(report)
      assert.equals("invalid", err.kind)
      assert.matches("made for " .. client:base_url(), err.message, 1, true)
      assert.same({}, since(emu, from))
      assert.is_true(assert(client:apply(plan)).ok)
    end)
  end)

  describe("sync", function()
    it("is plan then apply: the same requests as a plan applied at once, without the stale check's reads", function()
      local report = assert(client:sync(conn, { numbers = { number(12), number(60) } }, { move = true }))
      assert.is_true(report.ok, tostring(report))
      assert.equals(opentact.SyncReport, getmetatable(report))
      assert.same(sorted({ lease(12), lease(60) }), sorted(emu:state().assigned[conn]))
    end)
  end)

  describe("plan:encode and opentact.decode_plan", function()
    it("give back the same plan, which applies", function()
      client:assign(conn, { add = { lease(10), lease(11) } })
      local plan = assert(client:plan(conn, { numbers = { number(10), number(12), number(60), "+1 999 555 0000" } },
        { exact = true, move = true }))
      local text = assert(plan:encode())
      local doc = require("cjson").decode(text)
      assert.equals("opentact-plan", doc.format)
      assert.equals(1, doc.version)
      assert.equals(client:base_url(), doc.base_url)
      assert.same({ kind = "connection", uuid = conn }, doc.target)
      assert.same({ exact = true, move = true }, doc.options)
      assert.equals(plan.hash, doc.hash)
      assert.equals(4, #doc.leases) -- two to add, one to remove, one kept
      local back = assert(opentact.decode_plan(text))
      assert.equals(opentact.Plan, getmetatable(back))
      assert.equals(tostring(plan), tostring(back))
      assert.same(plan.holders, back.holders)
      assert.equals(text, back:encode())
      -- pretty-printed by someone reviewing it: still the same plan
      assert.is_truthy(opentact.decode_plan((text:gsub(',"', ',\n  "'))))
      local report = assert(client:apply(back))
      assert.is_false(report.ok) -- a number is missing
      assert.same({}, report.failed)
      assert.same(sorted({ lease(10), lease(12), lease(60) }), sorted(emu:state().assigned[conn]))
    end)

    it("keep a note, saved and hashed with the plan, which apply never reads", function()
      local plan = assert(client:plan(conn, { numbers = { number(12) } }, { note = "--numbers-file /srv/want.txt" }))
      assert.equals("--numbers-file /srv/want.txt", plan.note)
      local text = assert(plan:encode())
      local back = assert(opentact.decode_plan(text))
      assert.equals(plan.note, back.note)
      assert.equals(plan.hash, back.hash)
      -- a note edited by hand is a damaged plan; a plan without one hashes
      -- as plans did before notes
      assert.is_nil((opentact.decode_plan((text:gsub("want%.txt", "other.txt")))))
      local plain = assert(client:plan(conn, { numbers = { number(12) } }))
      assert.is_nil(plain.note)
      local plain_text = assert(plain:encode())
      assert.is_nil(require("cjson").decode(plain_text).note)
      assert.is_nil((opentact.decode_plan((text:gsub('"note":"[^"]*"', '"note":5')))))
      for _, bad in ipairs({ 5, ("x"):rep(4097), "a\0b" }) do
        assert.has_error(function() client:plan(conn, { numbers = { number(12) } }, { note = bad }) end)
      end
      assert(client:apply(back))
      assert.same({ lease(12) }, emu:state().assigned[conn])
    end)

    it("read a plan saved by an earlier build of format version 1: its hash is made the same way", function()
      -- saved before plans were hashed field by field; its hash was made
      -- of the whole content's text (adds, removes, a conflict, a holder
      -- of nobody, a missing uuid)
      local saved = table.concat({
        [[{"base_url":"http://127.0.0.1:35965","format":"opentact-plan","hash":"97b3fdae410a3d6f3c472949a73b1b]],
        [[0e108c81c0d480dd4bd81f77d4e8688dc8","leases":[{"action":"add","holder":false,"tn":12125550006,"uuid"]],
        [[:"57914554-5b06-467e-baee-1b32374a01ac"},{"action":"remove","holder":{"kind":"connection","uuid":"27]],
        [[f03b34-9917-45ec-8389-09092bb12756"},"tn":12125550001,"uuid":"af6d1915-1d62-4994-8b60-962cb69f6c7b"}]],
        [[,{"action":"remove","holder":{"kind":"connection","uuid":"27f03b34-9917-45ec-8389-09092bb12756"},"tn]],
        [[":12125550002,"uuid":"de324459-dffc-4398-9274-e2c35619d13c"},{"action":"remove","holder":{"kind":"co]],
        [[nnection","uuid":"27f03b34-9917-45ec-8389-09092bb12756"},"tn":12125550003,"uuid":"042fcca2-5027-4b12]],
        [[-ad7d-e0151c1329d2"},{"action":"conflict","holder":{"kind":"connection","uuid":"d2861fa0-9fb6-4ff1-b]],
        [[146-a22fbe3a0367"},"tn":12125550010,"uuid":"3a3750a9-0cba-4e29-ab7f-8a2d90e16ca9"}],"missing":["0000]],
        [[0000-0000-4000-8000-000000000000"],"ok":false,"options":{"exact":true,"move":false},"target":{"kind"]],
        [[:"connection","uuid":"27f03b34-9917-45ec-8389-09092bb12756"},"time":1796673833,"version":1}]],
      })
      local back = assert(opentact.decode_plan(saved))
      assert.equals("97b3fdae410a3d6f3c472949a73b1b0e108c81c0d480dd4bd81f77d4e8688dc8", back.hash)
      assert.equals(saved, back:encode())
      local edited = saved:gsub('"tn":12125550006', '"tn":12125550007')
      assert.is_nil((opentact.decode_plan(edited)))
    end)

    it("refuse text that is not JSON, not a plan, from a newer version, damaged or edited by hand", function()
      local plan = assert(client:plan(conn, { numbers = { number(12) } }))
      local text = assert(plan:encode())
      local cases = {
        { "not json", "not JSON" },
        { "[]", "not a saved plan" },
        { text:gsub('"opentact%-plan"', '"terraform-plan"'), "format is not" },
        { text:gsub('"version":1', '"version":2'), "made by a newer lua-opentact" },
        { text:gsub('"version":1', '"version":1e300'), "it has no format version" },
        { text:gsub('"version":1', '"version":9007199254740993'), "it has no format version" },
        { text:gsub((lease(12):gsub("%-", "%%-")), lease(13)), "damaged or was edited by hand" },
        { text:gsub('"exact":false', '"exact":true'), "damaged or was edited by hand" },
        { text:sub(1, -10), "not JSON" },
      }
      for _, c in ipairs(cases) do
        local p, err = opentact.decode_plan(c[1])
        assert.is_nil(p, c[2])
        assert.equals("invalid", err.kind)
        assert.matches(c[2], err.message, 1, true)
      end
      assert.has_error(function() opentact.decode_plan(5) end)
    end)
  end)

  describe("the journal", function()
    local function want_many()
      local want = {}
      for i = 10, 29 do want[#want + 1] = number(i) end
      return want
    end

    it("sends again on resume what the journal confirms and the connection does not hold", function()
      local journal = temp_path()
      finally(function() os.remove(journal) end)
      local plan = assert(client:plan(conn, { numbers = want_many() }))
      -- the second batch is answered as applied and is not: journaled,
      -- then failed at the read-back
      local report = assert(client:apply(plan, { journal = journal, batch_size = 5, concurrency = 1,
        on_progress = function(done) if done == 5 then emu:faults({ { fake = true } }) end end }))
      assert.is_false(report.ok)
      assert.equals(15, #emu:state().assigned[conn])
      report = assert(client:apply(plan, { journal = journal, batch_size = 5 }))
      assert.is_true(report.ok, tostring(report))
      assert.equals(20, #emu:state().assigned[conn])
    end)

    it("returns an error, sending nothing, when a resume cannot write the journal", function()
      local journal = temp_path()
      finally(function() os.execute("chattr -i " .. journal .. " 2>/dev/null") os.remove(journal) end)
      local plan = assert(client:plan(conn, { numbers = want_many() }))
      -- a journal begun for the plan, and a batch applied that never
      -- reached it (as when the process died with the answer on its way)
      local f = assert(io.open(journal, "w"))
      f:write(('{"format":"opentact-journal","plan":"%s","version":1}\n'):format(plan.hash))
      f:close()
      assert(client:assign(conn, { add = { plan.add[1].uuid, plan.add[2].uuid } }))
      if not os.execute("chattr +i " .. journal .. " 2>/dev/null") then
        pending("chattr +i is not available here (it needs root and a file system that takes it)")
        return
      end
      refused(plan, { journal = journal }, "invalid", "cannot open it")
    end)

    it("refuses a journal another apply holds, and one that is not a regular file, sending nothing", function()
      local journal = temp_path()
      finally(function() os.remove(journal) end)
      local plan = assert(client:plan(conn, { numbers = want_many() }))
      -- a second apply of the same plan and journal, started from the
      -- first one's progress callback (as from another process)
      local second
      local report = assert(client:apply(plan, { journal = journal, batch_size = 5, concurrency = 1,
        on_progress = function(done)
          if done == 5 then
            local posts = writes(emu)
            second = { client:apply(plan, { journal = journal }) }
            second.posts = writes(emu) - posts
          end
        end }))
      assert.is_true(report.ok, tostring(report))
      assert.is_nil(second[1])
      assert.equals("invalid", second[2].kind)
      assert.matches("another apply is using it", second[2].message, 1, true)
      assert.equals(0, second.posts)
      assert.equals(20, #emu:state().assigned[conn])
      -- the lock went with the first apply: a third finds all done
      local from = #emu:requests()
      assert.is_true(assert(client:apply(plan, { journal = journal })).ok)
      for _, r in ipairs(since(emu, from)) do assert.falsy(r.path:find("/tnlease$") and r.method == "POST") end
      refused(plan, { journal = "/dev/null" }, "invalid", "not a regular file")
      refused(plan, { journal = temp_path() .. "/no-such-folder/journal" }, "invalid", "cannot open it")
    end)

    it("records each confirmed batch; the same plan and journal finish the rest, re-reading only that", function()
      local journal = temp_path()
      finally(function() os.remove(journal) end)
      local plan = assert(client:plan(conn, { numbers = want_many() }))
      local report = assert(client:apply(plan, { journal = journal, batch_size = 5, concurrency = 1,
        on_progress = function(done) if done >= 10 then error("interrupted!") end end }))
      assert.is_false(report.ok)
      assert.matches("interrupted!", tostring(report.interrupted))
      assert.equals(10, #report.applied.add)
      local lines = {}
      for line in read(journal):gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.equals(3, #lines) -- the plan's line, two batches
      assert.matches(plan.hash, lines[1], 1, true)
      -- the rest: no read and no write of the confirmed ten
      local confirmed = {}
      for _, u in ipairs(report.applied.add) do confirmed[u] = true end
      local from = #emu:requests()
      report = assert(client:apply(plan, { journal = journal, batch_size = 5 }))
      assert.is_true(report.ok, tostring(report))
      assert.equals(20, #report.applied.add)
      local posts = 0
      for _, r in ipairs(since(emu, from)) do
        for u in ((r.body or "") .. r.path):gmatch("%x+%-%x+%-%x+%-%x+%-%x+") do
          assert.is_nil(confirmed[u], "a confirmed lease was read or written again: " .. r.method .. " " .. r.path)
        end
        if r.method == "POST" then posts = posts + 1 end
      end
      assert.equals(2, posts)
      assert.equals(20, #emu:state().assigned[conn])
      -- done: run again, it sends nothing
      from = #emu:requests()
      assert.is_true(assert(client:apply(plan, { journal = journal })).ok)
      for _, r in ipairs(since(emu, from)) do assert.falsy(r.path:find("/tnlease$") and r.method == "POST") end
    end)

    it("takes a batch applied before it reached the journal, and a line cut short, as a crash leaves them", function()
      local journal = temp_path()
      finally(function() os.remove(journal) end)
      local plan = assert(client:plan(conn, { numbers = want_many() }))
      assert(client:apply(plan, { journal = journal, batch_size = 5, concurrency = 1,
        on_progress = function(done) if done >= 10 then error("interrupted!") end end }))
      -- the last batch's line lost, and half of it written
      local text = read(journal)
      local last = text:match("([^\n]+)\n$")
      write(journal, text:sub(1, #text - #last - 1) .. last:sub(1, 20))
      local report = assert(client:apply(plan, { journal = journal, batch_size = 5 }))
      assert.is_true(report.ok, tostring(report))
      assert.equals(20, #emu:state().assigned[conn])
      assert.equals("\n", read(journal):sub(-1))
    end)

    it("finishes a move off a control app released before the run stopped, without releasing it again", function()
      local journal = temp_path()
      finally(function() os.remove(journal) end)
      local plan = assert(client:plan(conn, { numbers = { number(12), number(60) } }, { move = true }))
      local report = assert(client:apply(plan, { journal = journal, batch_size = 1, concurrency = 1,
        on_progress = function() error("interrupted!") end }))
      assert.same({ { app = app1, kind = "app", name = "control-app-1", leases = { lease(60) } } }, report.released)
      -- (released first, and its attach is the next request: the run
      -- stopped between the two)
      assert.same({}, report.applied.add)
      assert.matches('"released":["' .. lease(60) .. '"]', read(journal), 1, true)
      local from = #emu:requests()
      report = assert(client:apply(plan, { journal = journal }))
      assert.is_true(report.ok, tostring(report))
      for _, r in ipairs(since(emu, from)) do
        assert.is_nil(r.path:find("/sip/app/", 1, true), "released again: " .. r.path)
      end
      assert.same(sorted({ lease(12), lease(60) }), sorted(emu:state().assigned[conn]))
    end)

    it("that cannot be written stops apply before anything is sent", function()
      local plan = assert(client:plan(conn, { numbers = { number(12) } }))
      refused(plan, { journal = "/nonexistent-folder/journal" }, "invalid", "/nonexistent-folder/journal")
    end)

    it("is never applied to another plan", function()
      local journal = temp_path()
      finally(function() os.remove(journal) end)
      local plan = assert(client:plan(conn, { numbers = { number(12) } }))
      assert.is_true(assert(client:apply(plan, { journal = journal })).ok)
      local other = assert(client:plan(conn, { numbers = { number(13) } }))
      refused(other, { journal = journal }, "invalid", "journal of another plan")
      write(journal, "something else\n")
      local report, err = client:apply(other, { journal = journal })
      assert.is_nil(report)
      assert.equals("invalid", err.kind)
    end)

    it("stays stale for a lease that moved elsewhere meanwhile", function()
      local journal = temp_path()
      finally(function() os.remove(journal) end)
      local plan = assert(client:plan(conn, { numbers = want_many() }))
      assert(client:apply(plan, { journal = journal, batch_size = 5, concurrency = 1,
        on_progress = function(done) if done >= 5 then error("interrupted!") end end }))
      emu:holders({ [lease(29)] = { sip_connection = conn1 } })
      local report, err = client:apply(plan, { journal = journal })
      assert.is_nil(report)
      assert.equals("stale", err.kind)
      assert.equals(lease(29), err.moved[1].uuid)
    end)
  end)
end)
