-- client:sync over the wire, against the emulator: dry run, add-only,
-- exact, conflicts with and without move, missing numbers, a failing
-- batch and the re-run that finishes it, and the read-back check.
local support = require("emulator")
local opentact = require("opentact")

local sorted = support.sorted

local function uuids(list)
  local out = {}
  for i, l in ipairs(list) do out[i] = type(l) == "table" and l.uuid or l end
  return sorted(out)
end

-- Everything the account holds, as the emulator's admin route says it.
local function raw_state(emu)
  local status, text = emu:raw("GET", "/__emulator/state")
  assert.equals(200, status)
  return text
end

local writes = support.writes

describe("client:sync #wire #c", function()
  local emu, client, st, conn, conn1, app1
  local function number(i) return 12125550000 + i end
  local function lease(i) return st.leases[i] end

  setup(function()
    emu, client, st, conn, conn1, app1 = support.start_for_sync()
  end)
  teardown(function() support.stop(emu, client) end)
  before_each(function() emu:reset() end)

  it("changes nothing in a dry run, and reports the whole plan", function()
    client:assign(conn, { add = { lease(10), lease(11) } })
    local before = raw_state(emu)
    local posts = writes(emu)
    local report = client:sync(conn, { numbers = { "+1 212 555 0010", number(12), number(1), number(60), "+1 999 555 0000" } },
      { dry_run = true, exact = true })
    assert.equals(before, raw_state(emu))
    assert.equals(posts, writes(emu))
    assert.is_true(report.dry_run)
    assert.is_false(report.ok) -- a conflict and a missing number block it
    assert.same({ lease(12) }, uuids(report.add))
    assert.same({ lease(11) }, uuids(report.remove))
    assert.same({ lease(10) }, uuids(report.keep))
    assert.same(sorted({ lease(1), lease(60) }), uuids(report.conflicts)) -- connection 1, control app 1
    assert.same({ "+1 999 555 0000" }, report.missing)
    assert.same({ add = {}, remove = {} }, report.applied)
    local text = tostring(report)
    assert.matches("Plan: 1 to add, 1 to remove, 1 unchanged, 2 conflicts, 1 missing.", text, 1, true)
    assert.matches("Dry run: nothing was changed.", text, 1, true)
  end)

  it("adds what is missing and keeps the rest (add-only)", function()
    client:assign(conn, { add = { lease(20) } })
    local report = client:sync(conn, { numbers = { number(4), "(1) 212-555-0005", number(20) } })
    assert.is_true(report.ok, tostring(report))
    assert.same(sorted({ lease(4), lease(5) }), sorted(report.applied.add))
    assert.same({ lease(20) }, uuids(report.keep))
    assert.same(sorted({ lease(20), lease(4), lease(5) }), sorted(emu:state().assigned[conn]))
    -- already in the desired state: nothing to do, nothing sent
    local posts = writes(emu)
    report = client:sync(conn, { numbers = { number(4), number(5), number(20) } })
    assert.is_true(report.ok)
    assert.equals(0, #report.add)
    assert.equals(posts, writes(emu))
  end)

  it("detaches the rest with exact", function()
    client:assign(conn, { add = { lease(20), lease(21), lease(22) } })
    local report = client:sync(conn, { leases = { lease(21):upper(), lease(23) } }, { exact = true })
    assert.is_true(report.ok, tostring(report))
    assert.same(sorted({ lease(20), lease(22) }), sorted(report.applied.remove))
    assert.same(sorted({ lease(21), lease(23) }), sorted(emu:state().assigned[conn]))
  end)

  it("leaves leases held elsewhere alone without move, and takes them with move", function()
    local report = client:sync(conn, { numbers = { number(2), number(60), number(7) } })
    assert.is_false(report.ok)
    assert.same(sorted({ lease(2), lease(60) }), uuids(report.conflicts))
    assert.same({ lease(7) }, report.applied.add)
    local s = emu:state()
    assert.same({ lease(7) }, s.assigned[conn])
    assert.is_truthy(table.concat(s.assigned[conn1], ","):find(lease(2), 1, true))
    assert.same({ lease(60) }, s.app_assigned[app1])

    report = client:sync(conn, { numbers = { number(2), number(60), number(7) } }, { move = true })
    assert.is_true(report.ok, tostring(report))
    assert.same(sorted({ lease(2), lease(60) }), sorted(report.applied.add))
    assert.matches("moves from SIP control app control%-app%-1 %(" .. app1:gsub("%-", "%%-") .. "%)", tostring(report))
    s = emu:state()
    assert.same(sorted({ lease(7), lease(2), lease(60) }), sorted(s.assigned[conn]))
    assert.same({}, s.app_assigned[app1])
    assert.is_falsy(table.concat(s.assigned[conn1], ","):find(lease(2), 1, true))
  end)

  it("moves a lease from another connection with the attach alone, never detaching it first", function()
    local report = client:sync(conn, { numbers = { number(3) } }, { move = true })
    assert.is_true(report.ok, tostring(report))
    for _, r in ipairs(emu:requests()) do
      assert.is_falsy(r.path:find(conn1, 1, true) and r.method == "POST", "a POST to the other connection")
    end
    assert.same({}, report.released)
  end)

  it("says a lease released from its control app and then not attached is on nothing now", function()
    -- the connection read, the lookup, the release from the app pass;
    -- the attach fails for good
    emu:faults({ {}, {}, {}, { status = 500, message = "attach lost" } })
    local report = client:sync(conn, { numbers = { number(60) } }, { move = true })
    assert.is_false(report.ok)
    assert.same({ { app = app1, kind = "app", name = "control-app-1", leases = { lease(60) } } }, report.released)
    assert.same({ lease(60) }, report.failed[1].add)
    assert.matches("attach lost %(released from their SIP control app first: they are on no connection or app now%)",
      report.failed[1].err.message)
    assert.matches("released 1 from SIP control app", tostring(report))
  end)

  it("counts an add whose answer was lost as applied when the read-back shows it", function()
    -- the connection read, the lookup; the assign is applied, then its
    -- connection reset before the answer
    emu:faults({ {}, {}, { reset = true, apply = true } })
    local report = client:sync(conn, { numbers = { number(31) } })
    assert.is_true(report.ok, tostring(report))
    assert.same({ lease(31) }, report.applied.add)
    assert.same({}, report.failed)
  end)

  it("stops at an interrupt: nothing more sent, no read-back, every planned uuid accounted for", function()
    local want = {}
    for i = 10, 29 do want[#want + 1] = number(i) end
    local report = client:sync(conn, { numbers = want }, { batch_size = 5, concurrency = 1,
      on_progress = function(done) if done >= 5 then error("interrupted!") end end })
    assert.is_false(report.ok)
    assert.matches("interrupted!", tostring(report.interrupted))
    assert.is_table(report.unverified)
    local failed_add = report:failed_uuids()
    assert.equals(20, #report.applied.add + #failed_add)
    assert.equals(5, #report.applied.add)
    local reads = 0
    for _, r in ipairs(emu:requests()) do
      if r.method == "GET" and r.path:find("/sip/connection/", 1, true) then reads = reads + 1 end
    end
    assert.equals(1, reads) -- the first read only
  end)

  it("refuses exact when none of the desired leases is in the account, in a dry run the same way", function()
    client:assign(conn, { add = { lease(20), lease(21) } })
    local posts = writes(emu)
    local dry, dry_err = client:sync(conn, { numbers = { "212 555 0020", "212 555 0021" } },
      { exact = true, dry_run = true })
    local report, err = client:sync(conn, { numbers = { "212 555 0020", "212 555 0021" } }, { exact = true })
    assert.is_nil(report)
    assert.equals("invalid", err.kind)
    assert.matches("would detach all 2 leases of the connection; nothing was changed", err.message)
    assert.is_nil(dry)
    assert.equals(tostring(err), tostring(dry_err))
    assert.equals(posts, writes(emu))
    assert.same({ lease(20), lease(21) }, emu:state().assigned[conn])
    -- an empty list is taken at its word
    report = client:sync(conn, { numbers = {} }, { exact = true })
    assert.is_true(report.ok)
    assert.same({}, emu:state().assigned[conn])
  end)

  -- a lookup answering 404 once (a stale index, a transient fault): the
  -- connection's own read shows it holds the lease, which stays
  for _, kind in ipairs({ "leases", "numbers" }) do
    it("keeps a held lease whose lookup answers 404, never detaching it (" .. kind .. ", exact)", function()
      client:assign(conn, { add = { lease(20), lease(21), lease(22) } })
      local want = {}
      for i = 20, 22 do want[#want + 1] = kind == "leases" and lease(i) or number(i) end
      -- the connection read passes, the first lookup to come answers 404
      emu:faults({ {}, { status = 404, message = "TNLease not found" } })
      local report = client:sync(conn, { [kind] = want }, { exact = true })
      assert.equals(0, emu:stats().faults_pending)
      assert.is_true(report.ok, tostring(report))
      assert.same(sorted({ lease(20), lease(21), lease(22) }), uuids(report.keep))
      assert.same({}, report.remove)
      assert.same({}, report.missing)
      assert.same({ add = {}, remove = {} }, report.applied)
      assert.same({ lease(20), lease(21), lease(22) }, emu:state().assigned[conn])
      assert.is_falsy(tostring(report):find("not in the account", 1, true), tostring(report))
    end)
  end

  it("with exact, is not ok when the read-back holds a lease outside the desired set, and names it", function()
    client:assign(conn, { add = { lease(20), lease(21) } })
    -- someone else attaches lease 9 between the change and the read-back
    local report = client:sync(conn, { leases = { lease(20), lease(22) } }, { exact = true,
      on_progress = function() emu:holders({ [lease(9)] = { sip_connection = conn } }) end })
    assert.same({ lease(22) }, report.applied.add)
    assert.same({ lease(21) }, report.applied.remove)
    assert.same({}, report.failed)
    assert.is_false(report.ok)
    assert.same({ lease(9) }, report.unexpected)
    local text = tostring(report)
    assert.matches("1 lease on the connection that was not asked for:\n  %* " .. lease(9):gsub("%-", "%%-"), text)
    assert.matches("not ok$", text)
  end)

  it("without exact, a lease attached meanwhile leaves it ok", function()
    local report = client:sync(conn, { leases = { lease(22) } }, {
      on_progress = function() emu:holders({ [lease(9)] = { sip_connection = conn } }) end })
    assert.is_true(report.ok, tostring(report))
    assert.same({}, report.unexpected)
    assert.same(sorted({ lease(9), lease(22) }), sorted(emu:state().assigned[conn]))
  end)

  it("lists numbers the account does not hold, as given, and applies the rest", function()
    local report = client:sync(conn, { numbers = { "+44 20 7946 0958", number(8) } })
    assert.is_false(report.ok)
    assert.same({ "+44 20 7946 0958" }, report.missing)
    assert.same({ lease(8) }, report.applied.add)
  end)

  it("accounts for a failing batch without loss, and a re-run finishes the job", function()
    local want = {}
    for i = 10, 39 do want[#want + 1] = number(i) end
    -- the connection read, the account's one page, the first batch pass;
    -- the second of three batches fails for good
    emu:faults({ {}, {}, {}, { status = 500, message = "batch lost" } })
    local report = client:sync(conn, { numbers = want }, { batch_size = 10, concurrency = 1 })
    assert.is_false(report.ok)
    local failed_add = report:failed_uuids()
    assert.equals(10, #failed_add)
    assert.equals(20, #report.applied.add)
    -- every planned uuid is applied or failed, once
    assert.same(uuids(report.add), sorted((function()
      local all = {}
      for _, u in ipairs(report.applied.add) do all[#all + 1] = u end
      for _, u in ipairs(failed_add) do all[#all + 1] = u end
      return all
    end)()))
    assert.equals("batch lost", report.failed[1].err.message)
    report = client:sync(conn, { numbers = want }, { batch_size = 10 })
    assert.is_true(report.ok, tostring(report))
    assert.equals(10, #report.applied.add)
    assert.equals(30, #emu:state().assigned[conn])
  end)

  it("catches a server that says it applied a change it did not (read-back)", function()
    -- the connection read and the lookup answer, then the assign answers
    -- success without applying
    emu:faults({ {}, {}, { fake = true } })
    local report = client:sync(conn, { numbers = { number(30) } })
    assert.is_false(report.ok)
    assert.same({}, report.applied.add)
    assert.same({ lease(30) }, report.failed[1].add)
    assert.matches("read back does not hold them", report.failed[1].err.message)
    assert.same({}, emu:state().assigned[conn])
  end)

  it("looks numbers up one by one when few, and pages the account when many", function()
    local function count(pattern)
      local n = 0
      for _, r in ipairs(emu:requests()) do
        if r.path:find(pattern) then n = n + 1 end
      end
      return n
    end
    client:sync(conn, { numbers = { number(1), number(2) } }, { dry_run = true })
    assert.equals(2, count("^/lease/tn/%d+/tn$"))
    assert.equals(0, count("^/lease/tn/search"))
    emu:reset()
    local many = {}
    for i = 1, 50 do many[i] = number(i) end
    local report = client:sync(conn, { numbers = many }, { dry_run = true, page_size = 20 })
    assert.equals(0, count("^/lease/tn/%d+/tn$"))
    assert.equals(3, count("^/lease/tn/search")) -- 3 pages of 20, the first of them telling the size
    assert.equals(50, #report.add + #report.conflicts)
  end)

  it("attaches every lease of the account with all_leases", function()
    local report = client:sync(conn, { all_leases = true }, { move = true })
    assert.is_true(report.ok, tostring(report))
    assert.equals(60, #emu:state().assigned[conn])
  end)

  it("returns invalid input as an error and sends nothing", function()
    local report, err = client:sync(conn, { numbers = { number(1), "212-CALL-NOW" } })
    assert.is_nil(report)
    assert.equals("invalid", err.kind)
    assert.matches("numbers%[2%]", err.message)
    report, err = client:sync(conn, { leases = { lease(1), "nope" } })
    assert.is_nil(report)
    assert.equals("invalid", err.kind)
    for _, bad in ipairs({ { uuid = "garbage" }, { uuid = "12125550005" }, { uuid = 5 } }) do
      report, err = client:sync(conn, { leases = { bad } })
      assert.is_nil(report)
      assert.equals("invalid", err.kind)
    end
    report, err = client:sync("not-a-uuid", { numbers = { number(1) } })
    assert.is_nil(report)
    assert.equals("invalid", err.kind)
    assert.equals(0, #emu:requests())
    -- a lease given as a table is taken by its uuid
    report = client:sync(conn, { leases = { { uuid = lease(3):upper() } } }, { dry_run = true })
    assert.same({ lease(3) }, uuids(report.conflicts))
  end)

  it("raises for misuse, naming the argument", function()
    local cases = {
      { { numbers = {}, leases = {} }, "give one of numbers, leases and all_leases" },
      { {}, "give one of numbers" }, { { numbers = "12125550001" }, "numbers must be a list" },
      { { colour = {} }, "unknown key 'colour'" }, { { all_leases = 1 }, "all_leases must be true" },
      { { numbers = { number(1), nil, number(3) } }, "numbers must be a list without holes" },
      { { leases = { [2] = lease(2) } }, "leases must be a list without holes" },
    }
    for _, c in ipairs(cases) do
      local ok, why = pcall(function() client:sync(conn, c[1]) end)
      assert.is_false(ok)
      assert.is_truthy(why:find(c[2], 1, true), why)
      assert.matches("15%-sync_spec", why)
    end
    local ok, why = pcall(client.sync, client, conn, { numbers = {} }, { exact = "yes" })
    assert.is_false(ok)
    assert.matches("bad option 'exact' to 'sync'", why)
  end)

  it("is a module-level function too", function()
    opentact.configure({ base_url = emu.url, token = emu.token })
    local report = opentact.sync(conn, { numbers = { number(9) } })
    assert.is_true(report.ok)
    assert.same({ lease(9) }, emu:state().assigned[conn])
  end)
end)
