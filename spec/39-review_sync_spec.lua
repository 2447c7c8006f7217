-- A review of sync and assign against the emulator over real sockets:
-- what the first hardening pass left open.
local support = require("emulator")

local tmpfile = support.tmpfile

local sorted = support.sorted

-- bin/opentact with `args` (shell words) against an emulator: standard
-- output, standard error and the exit status.
local opentact = require("cli").opentact

describe("sync and assign, reviewed #wire", function()
  local emu, client, conns, leases

  setup(function()
    -- connection 1 holds leases 1 to 3 (numbers 12125550001 to 3)
    emu, conns, leases = support.start_with_uuids({ leases = 60, apps = 2 })
    client = emu:client()
  end)
  teardown(function() support.stop(emu, client) end)
  before_each(function() emu:reset() end)

  local function posts() return support.writes(emu) end

  -- A file of full numbers with one written without its country code:
  -- the lookup of 2125550002 finds nothing, and connection 1 holds
  -- 12125550002. Detaching it would take a number off live routing that
  -- the file asked to keep; a sync refuses, the dry run the same way.
  describe("with --exact, a desired number without its country code that a held lease ends with", function()
    local desired = { "12125550001", "2125550002", "+1 212 555 0003" }

    it("is refused by client:sync, the dry run the same way, nothing changed", function()
      local before = emu:state()
      local dry, dry_err = client:sync(conns[1], { numbers = desired }, { exact = true, dry_run = true })
      local report, err = client:sync(conns[1], { numbers = desired }, { exact = true })
      assert.is_nil(dry, dry and tostring(dry))
      assert.is_nil(report, report and tostring(report))
      assert.equals("invalid", err.kind)
      assert.equals(tostring(err), tostring(dry_err))
      assert.is_truthy(err.message:find("2125550002", 1, true), err.message)
      assert.is_truthy(err.message:find("12125550002", 1, true), err.message)
      assert.is_truthy(err.message:find("nothing was changed", 1, true), err.message)
      assert.equals(0, posts())
      assert.same(before, emu:state())
    end)

    it("is refused by opentact sync, exit 2 for --dry-run and the real run alike", function()
      local file = tmpfile(table.concat(desired, "\n") .. "\n")
      local dry_out, dry_err, dry_status = opentact(emu, ("sync %s --numbers-file %s --exact --dry-run")
        :format(conns[1], file))
      local out, err, status = opentact(emu, ("sync %s --numbers-file %s --exact"):format(conns[1], file))
      os.remove(file)
      assert.equals(2, dry_status, dry_out .. dry_err)
      assert.equals(2, status, out .. err)
      assert.equals(err, dry_err)
      assert.is_truthy(err:find("12125550002", 1, true), err)
      assert.equals(0, posts())
      assert.same(sorted({ leases[1], leases[2], leases[3] }), sorted(emu:state().assigned[conns[1]]))
    end)

    it("is no reason to refuse without --exact, or when the held lease stays", function()
      local report = assert(client:sync(conns[1], { numbers = desired }, { dry_run = true }))
      assert.equals(0, #report.remove)
      assert.same({ "2125550002" }, report.missing)
      -- a missing number no held lease ends with: the others go as asked
      report = assert(client:sync(conns[1], { numbers = { "12125550001", "2125550099" } },
        { exact = true, dry_run = true }))
      assert.equals(2, #report.remove)
      -- written with a +, a number has its country code: taken as written
      report = assert(client:sync(conns[1], { numbers = { "12125550001", "+212 555 0002" } },
        { exact = true, dry_run = true }))
      assert.equals(2, #report.remove)
    end)
  end)

  -- A lookup answering 200 with a lease that is not the one asked for (a
  -- proxy's cache, a server bug): what it says of its holder is not what
  -- the asked lease's holder is. Lease 1 is on connection 1.
  describe("a lookup answering about another lease than the one asked", function()
    local function other_lease(i)
      return { raw = '{"success":true,"payload":{"uuid":"' .. leases[i] .. '","tn":{"tn":' .. (12125550000 + i)
        .. '}}}', ctype = "application/json" }
    end

    for _, how in ipairs({ "uuid", "number" }) do
      it("is no reason for assign to send: nothing moves off connection 1 (--add by " .. how .. ")", function()
        emu:faults({ other_lease(5) })
        local out, err, status = opentact(emu, ("assign %s --add %s"):format(conns[2],
          how == "uuid" and leases[1] or "12125550001"))
        assert.equals(1, status, out .. err)
        assert.is_truthy(err:find("protocol", 1, true), err)
        assert.equals(0, posts(), out .. err)
        assert.same(sorted({ leases[1], leases[2], leases[3] }), sorted(emu:state().assigned[conns[1]]))
      end)
    end

    it("is no reason for client:sync to attach that other lease", function()
      -- the connection's read passes; the lookup of lease 20 answers lease 21
      emu:faults({ {}, other_lease(21) })
      local report, err = client:sync(conns[2], { leases = { leases[20] } })
      assert.is_nil(report, report and tostring(report))
      assert.equals("protocol", err.kind)
      assert.equals(0, posts())
      assert.same({}, emu:state().assigned[conns[2]])
    end)
  end)

  -- A lookup saying the target holds a lease (a stale index) while the
  -- target's own list does not: "already on" it would be an ok the target
  -- does not prove. Lease 20 is free; its lookup claims connection 2.
  describe("assign --add of a lease whose lookup alone says the target holds it", function()
    local function claims_target()
      return { raw = '{"success":true,"payload":{"uuid":"' .. leases[20] .. '","tn":{"tn":12125550020},'
        .. '"sip_connection":{"uuid":"' .. conns[2] .. '"}}}', ctype = "application/json" }
    end

    for _, fmt in ipairs({ "table", "csv", "json" }) do
      it("is not reported ok, nothing sent for it (--format " .. fmt .. ")", function()
        emu:faults({ claims_target() })
        local out, err, status = opentact(emu, ("assign %s --add %s --format %s"):format(conns[2], leases[20], fmt))
        assert.equals(1, status, out .. err)
        assert.equals(0, posts(), out .. err)
        assert.is_falsy(out:find("already on", 1, true), out)
        assert.is_truthy(out:find("does not hold it", 1, true), out)
        assert.same({}, emu:state().assigned[conns[2]])
      end)
    end

    it("is reported already on it when the target's list holds it", function()
      emu:holders({ [leases[20]] = { sip_connection = conns[2] } })
      local out, err, status = opentact(emu, ("assign %s --add %s"):format(conns[2], leases[20]))
      assert.equals(0, status, out .. err)
      assert.equals(0, posts(), out .. err)
      assert.is_truthy(out:find("already on " .. conns[2], 1, true), out)
    end)
  end)
end)
