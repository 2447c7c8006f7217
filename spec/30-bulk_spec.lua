-- assign_batched and list_many against the emulator: batches, concurrency,
-- progress, faults in the middle, and a report checked uuid by uuid.
local support = require("emulator")

local N = 1200

describe("bulk #wire #c", function()
  local emu, conns, leases, client

  setup(function() emu, conns, leases = support.start_with_uuids({ leases = N + 100 }) end)
  teardown(function() support.stop(emu, client) end)
  before_each(function() client = emu:renew(client, { latency = 0 }) end)

  local function slice(from, to) return support.slice(leases, from, to) end

  local function held(conn)
    local set = {}
    for _, u in ipairs(emu:state().assigned[conn]) do set[u] = true end
    return set
  end

  -- Every input uuid exactly once in applied or failed; the emulator holds
  -- every applied one and none that surely was not applied (a failure that
  -- may have been applied, like a truncated answer, can go either way).
  local function surely_not_applied(err)
    return err.sent == false or (err.status ~= nil and err.status >= 400 and err.status < 500)
  end
  local function check_report(report, conn, adds, removes)
    local seen, mark, count = support.tally()
    for _, u in ipairs(report.applied.add) do mark(u, "applied add") end
    for _, u in ipairs(report.applied.remove) do mark(u, "applied remove") end
    local maybe = {}
    for _, f in ipairs(report.failed) do
      assert.is_string(f.err.kind)
      if not surely_not_applied(f.err) then
        for _, u in ipairs(f.add) do maybe[u] = true end
        for _, u in ipairs(f.remove) do maybe[u] = true end
      end
      assert.is_true(#f.add + #f.remove <= 100)
      for _, u in ipairs(f.add) do mark(u, "failed add") end
      for _, u in ipairs(f.remove) do mark(u, "failed remove") end
    end
    assert.equals(#adds + #removes, count())
    local now = held(conn)
    for _, u in ipairs(adds) do
      assert.is_not_nil(seen[u], u .. " lost")
      if not maybe[u] then assert.equals(seen[u] == "applied add", now[u] == true, u .. " is " .. seen[u]) end
    end
    for _, u in ipairs(removes) do
      assert.is_not_nil(seen[u], u .. " lost")
      if seen[u] == "applied remove" then assert.is_nil(now[u]) end
    end
    assert.equals(#report.failed == 0, report.ok)
  end

  describe("assign_batched", function()
    it("applies 1,200 uuids in batches of 100 with progress, in input order", function()
      local adds = slice(11, 10 + N)
      local progress = {}
      local report = client:assign_batched(conns[2], { add = adds }, {
        batch_size = 100, concurrency = 4,
        on_progress = function(done, total) progress[#progress + 1] = { done, total } end,
      })
      assert.is_true(report.ok)
      assert.same(adds, report.applied.add)
      assert.same({}, report.failed)
      assert.equals(N, #report.leases)
      assert.equals(adds[1], report.leases[1].uuid)
      assert.equals(adds[N], report.leases[N].uuid)
      assert.equals(12, #progress)
      for i, p in ipairs(progress) do
        assert.equals(N, p[2])
        assert.equals(100 * i, p[1])
      end
      assert.equals(12, emu:stats().requests)
      check_report(report, conns[2], adds, {})
      assert.is_truthy(tostring(report):find("^ok: 1200 applied"))
    end)

    it("loses nothing when requests fail in the middle", function()
      local adds = slice(11, 10 + N)
      emu:faults({ {}, {}, { status = 404 }, {}, { status = 503 }, {}, { truncate = true }, {}, { status = 502 } })
      local report = client:assign_batched(conns[2], { add = adds }, { batch_size = 100, concurrency = 4 })
      assert.is_false(report.ok)
      assert.equals(3, #report.failed)
      local kinds = {}
      for _, f in ipairs(report.failed) do kinds[#kinds + 1] = f.err.kind end
      table.sort(kinds)
      assert.same({ "network", "not_found", "server" }, kinds)
      assert.equals(N - 300, #report.applied.add)
      assert.equals(N - 300, #report.leases)
      check_report(report, conns[2], adds, {})
      assert.equals(13, emu:stats().requests) -- 12 batches, one 503 retried
      assert.is_truthy(tostring(report):find("^not ok: 900 applied"))
    end)

    it("retries what may have been applied with retry_post", function()
      local c = emu:client({ retry_post = true })
      local adds = slice(11, 10 + N)
      emu:faults({ {}, { status = 404 }, { reset = true }, { truncate = true }, { status = 500 } })
      local report = c:assign_batched(conns[2], { add = adds }, { concurrency = 3 })
      c:close()
      assert.equals(1, #report.failed)
      assert.equals("not_found", report.failed[1].err.kind)
      check_report(report, conns[2], adds, {})
    end)

    it("isolates the uuid a 400 names: the rest of its batch is applied", function()
      local bad = "0a1b2c3d-0000-4000-8000-00000000ffff"
      local adds = slice(11, 60)
      table.insert(adds, 30, bad)
      local report = client:assign_batched(conns[2], { add = adds }, { batch_size = 100 })
      assert.is_false(report.ok)
      assert.equals(50, #report.applied.add)
      assert.equals(1, #report.failed)
      assert.same({ bad }, report.failed[1].add)
      assert.equals("rejected", report.failed[1].err.kind)
      assert.is_truthy(report.failed[1].err.message:find(bad, 1, true))
      assert.equals(3, emu:stats().requests) -- the batch, then the named uuid and the rest
      local a, r = report:failed_uuids()
      assert.same({ bad }, a)
      assert.same({}, r)
      check_report(report, conns[2], adds, {})
    end)

    it("halves a refused batch that names no uuid until the bad ones are alone", function()
      local adds = slice(11, 26)
      emu:faults({ { status = 400, message = "refused" }, { status = 400, message = "refused" } })
      local report = client:assign_batched(conns[2], { add = adds }, { batch_size = 16 })
      -- the batch and one of its halves were refused once each: all applied in the end
      assert.is_true(report.ok, tostring(report))
      assert.same(adds, report.applied.add)
      check_report(report, conns[2], adds, {})
    end)

    it("counts a uuid applied only when the answer shows it so", function()
      local adds = slice(11, 15)
      emu:faults({ { raw = '{"success":true,"payload":[]}', status = 200 } })
      local report = client:assign_batched(conns[2], { add = adds })
      assert.is_false(report.ok)
      assert.same({}, report.applied.add)
      assert.same(adds, report.failed[1].add)
      assert.equals("protocol", report.failed[1].err.kind)
      assert.is_truthy(report.failed[1].err.message:find("leaves these leases out", 1, true))
      -- a payload of uuid strings confirms the uuids it lists
      emu:faults({ { raw = ('{"success":true,"payload":["%s","%s"]}'):format(adds[1], adds[2]), status = 200 } })
      report = client:assign_batched(conns[2], { add = { adds[1], adds[2], adds[3] } })
      assert.same({ adds[1], adds[2] }, report.applied.add)
      assert.same({ adds[3] }, report.failed[1].add)
    end)

    it("adds and removes in one run", function()
      local removes = { leases[1], leases[2], leases[3] }
      local adds = slice(11, 260)
      local report = client:assign_batched(conns[1], { add = adds, remove = removes }, { batch_size = 50 })
      assert.is_true(report.ok)
      assert.same(removes, report.applied.remove)
      assert.equals(6, emu:stats().requests)
      check_report(report, conns[1], adds, removes)
      assert.is_nil(held(conns[1])[leases[1]])
    end)

    it("runs at most `concurrency` requests at once", function()
      -- a second each, so 4 are in flight together even from a slow client;
      -- 8 batches, twice the concurrency
      emu:config({ latency = 1 })
      local report = client:assign_batched(conns[2], { add = slice(11, 210) }, { batch_size = 25, concurrency = 4 })
      assert.is_true(report.ok)
      assert.equals(4, emu:stats().inflight_max)
    end)

    it("fails every uuid of an invalid change set without sending", function()
      local adds = slice(11, 20)
      adds[5] = "not-a-uuid"
      local report = client:assign_batched(conns[2], { add = adds, remove = { leases[1] } })
      assert.is_false(report.ok)
      assert.equals(1, #report.failed)
      assert.equals("invalid", report.failed[1].err.kind)
      assert.same(adds, report.failed[1].add)
      assert.same({ leases[1] }, report.failed[1].remove)
      assert.same({}, report.applied.add)
      local dup = client:assign_batched(conns[2], { add = { leases[20], leases[20] } })
      assert.equals("invalid", dup.failed[1].err.kind)
      assert.equals(0, emu:stats().requests)
    end)

    it("stops when the progress callback raises, as on an interrupt: the report has its error and every uuid", function()
      local report = client:assign_batched(conns[2], { add = slice(11, 110) }, {
        batch_size = 10, on_progress = function() error("progress bar broke") end,
      })
      assert.is_truthy(tostring(report.interrupted):find("progress bar broke", 1, true))
      assert.is_false(report.ok)
      assert.is_true(#report.applied.add < 100)
      check_report(report, conns[2], slice(11, 110), {})
    end)

    it("raises for misuse, naming the argument", function()
      local adds = { leases[20] }
      assert.has_error(function() client:assign_batched(1, { add = adds }) end,
        "bad argument #1 to 'assign_batched' (string or target expected, got number)")
      assert.has_error(function() client:assign_batched(conns[1], "x") end,
        "bad argument #2 to 'assign_batched' (table expected, got string)")
      assert.has_error(function() client:assign_batched(conns[1], { add = adds }, { batch_size = 0 }) end,
        "bad option 'batch_size' to 'assign_batched' (an integer > 0 expected, got number)")
      assert.has_error(function() client:assign_batched(conns[1], { add = adds }, { concurrency = 1000 }) end)
      assert.has_error(function() client:assign_batched(conns[1], { add = adds }, { concurency = 2 }) end,
        "bad argument #3 to 'assign_batched' (unknown option 'concurency')")
      assert.has_error(function() client:assign_batched(conns[1], { add = { 1 } }) end)
      assert.equals(0, emu:stats().requests)
    end)
  end)

  describe("list_many", function()
    it("returns results in input order, errors in place", function()
      local unknown = "66eb0a8a-571e-41b1-8f50-4d97275cfab7"
      local results = client:list_many({ conns[1], "bad", unknown, conns[2], conns[1] })
      assert.equals(5, #results)
      assert.equals(conns[1], results[1].uuid)
      assert.equals(3, #results[1].leases)
      assert.equals("invalid", results[2].err.kind)
      assert.equals("bad", results[2].uuid)
      assert.equals("not_found", results[3].err.kind)
      assert.equals(0, #results[4].leases)
      assert.equals(3, #results[5].leases)
      assert.equals(4, emu:stats().requests)
    end)

    it("runs up to `concurrency` lists at once", function()
      -- a second each, so 8 are in flight together even from a slow client
      emu:config({ latency = 1 })
      local many = {}
      for i = 1, 16 do many[i] = conns[1 + i % 4] end
      local results = client:list_many(many, { concurrency = 8 })
      assert.equals(16, #results)
      for i = 1, 16 do assert.is_table(results[i].leases) end
      assert.equals(8, emu:stats().inflight_max)
    end)

    it("retries like list", function()
      emu:faults({ { status = 503 }, { reset = true } })
      local results = client:list_many({ conns[1], conns[1] }, { concurrency = 1 })
      assert.equals(3, #results[1].leases)
      assert.equals(3, #results[2].leases)
    end)

    it("raises for misuse", function()
      assert.has_error(function() client:list_many("x") end,
        "bad argument #1 to 'list_many' (table expected, got string)")
      assert.has_error(function() client:list_many({ conns[1], 5 }) end,
        "bad argument #1 to 'list_many' (string or target expected at index 2, got number)")
      assert.has_error(function() client:list_many({}, { batch_size = 3 }) end)
      assert.same({}, client:list_many({}))
    end)
  end)
end)
