-- opentact sync end to end against the emulator: what the plan keeps
-- when a lookup fails, what --exact calls ok, the dry run refusing what
-- the real run refuses, and the CLI's own words for its flags.
local support = require("emulator")
local cjson = require("cjson")
local cmdline = require("cli")

local tmpfile = support.tmpfile

-- Lua option names the command line has no use for: its flags are --move,
-- --exact, --dry-run, --all-leases, --batch-size.
local LUA_WORDS = { "move = true", "exact = true", "dry_run", "all_leases", "batch_size", "exact would" }

local sorted = support.sorted

local function no_lua_words(out)
  for _, w in ipairs(LUA_WORDS) do
    assert.is_falsy(out:find(w, 1, true), ("'%s' in the CLI's output:\n%s"):format(w, out))
  end
end

describe("opentact sync #wire", function()
  local emu, conns, leases, run

  setup(function()
    emu, conns, leases = support.start_with_uuids({ leases = 400 })
    -- no login credentials or kept token of the machine's user can leak in
    run = function(args)
      local out, _, status = cmdline.opentact(emu, args, { stderr = "merge" })
      return out, status
    end
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  local function attach(conn, list)
    local map = {}
    for _, l in ipairs(list) do map[l] = { sip_connection = conn } end
    local status = emu:holders(map)
    assert.equals(200, status)
  end

  -- the first lookup to come answers 404 once (a stale index); the
  -- connection's own read shows it holds the lease, and it stays
  for _, kind in ipairs({ "leases", "numbers" }) do
    it("keeps a held lease whose lookup answers 404 once, with --exact (--" .. kind .. "-file)", function()
      local conn = conns[2]
      attach(conn, { leases[20], leases[21], leases[22] })
      local lines = {}
      for i = 20, 22 do lines[#lines + 1] = kind == "leases" and leases[i] or ("+1 212 555 00" .. i) end
      local file = tmpfile(table.concat(lines, "\n") .. "\n")
      -- the connection read passes, then the first lookup answers 404
      emu:faults({ {}, { status = 404, message = "TNLease not found" } })
      local out, status = run(("sync %s --%s-file %s --exact"):format(conn, kind, file))
      os.remove(file)
      assert.equals(0, emu:stats().faults_pending)
      assert.equals(0, status, out)
      assert.is_truthy(out:find("Plan: 0 to add, 0 to remove, 3 unchanged, 0 conflicts, 0 missing.", 1, true), out)
      assert.is_falsy(out:find("\n  %- "), out)
      assert.is_falsy(out:find("not in the account", 1, true), out)
      assert.same(sorted({ leases[20], leases[21], leases[22] }), sorted(emu:state().assigned[conn]))
      no_lua_words(out)
    end)
  end

  describe("with --exact and a lease attached by someone else before the read-back", function()
    local conn, file, readback

    before_each(function()
      conn = conns[2]
      -- what the connection answers when it holds leases 20 and 22, and 9
      -- that nobody asked for
      attach(conn, { leases[20], leases[22], leases[9] })
      local status
      status, readback = emu:raw("GET", "/sip/connection/" .. conn .. "/tnlease", { ["x-auth-token"] = emu.token })
      assert.equals(200, status)
      emu:reset()
      attach(conn, { leases[20], leases[21] })
      file = tmpfile(leases[20] .. "\n" .. leases[22] .. "\n")
      -- the assign passes; the read-back after it shows lease 9 as well
      emu:faults({ { on = "^POST /sip/connection/" },
        { on = "^GET /sip/connection/", raw = readback, ctype = "application/json" } })
    end)
    after_each(function() os.remove(file) end)

    it("exits 1 and names the lease nobody asked for", function()
      local out, status = run(("sync %s --leases-file %s --exact --yes"):format(conn, file))
      assert.equals(0, emu:stats().faults_pending)
      assert.equals(1, status, out)
      assert.is_truthy(out:find("Applied: 1 added, 1 removed, 0 failed.", 1, true), out)
      assert.is_truthy(out:find("1 lease on the connection that was not asked for:\n  * "
        .. leases[9], 1, true), out)
      assert.is_truthy(out:find("\nnot ok\n$"), out)
      no_lua_words(out)
    end)

    it("lists it in the JSON report", function()
      local out, status = run(("sync %s --leases-file %s --exact --yes --json"):format(conn, file))
      assert.equals(1, status, out)
      local report = cjson.decode(out)
      assert.is_false(report.ok)
      assert.same({ leases[9] }, report.unexpected)
    end)

    it("gives it a row in csv", function()
      local out, status = run(("sync %s --leases-file %s --exact --yes --format csv"):format(conn, file))
      assert.equals(1, status, out)
      assert.is_truthy(out:find("\n" .. leases[9] .. ',,none,unexpected,,,"on the connection at the read-back, '
        .. 'not asked for"\n', 1, true), out)
    end)
  end)

  it("with --exact --dry-run, refuses national numbers exactly as the real run does", function()
    local conn = conns[1] -- holds leases 1 to 3
    local before = emu:state()
    local file = tmpfile("2125550001\n2125550002\n(212) 555-0003\n")
    local dry, dry_status = run(("sync %s --numbers-file %s --exact --dry-run"):format(conn, file))
    local real, real_status = run(("sync %s --numbers-file %s --exact"):format(conn, file))
    os.remove(file)
    assert.equals(2, dry_status, dry)
    assert.equals(2, real_status, real)
    assert.equals(real, dry)
    assert.is_truthy(dry:find("none of the 3 desired leases is in the account (2125550001 ...)", 1, true), dry)
    assert.is_truthy(dry:find("would detach all 3 leases of the connection; nothing was changed", 1, true), dry)
    assert.same(before, emu:state())
    for _, r in ipairs(emu:requests()) do assert.equals("GET", r.method, r.path) end
    no_lua_words(dry)
  end)

  it("says --move, never a Lua option, for a lease held elsewhere", function()
    -- lease 1 is on connection 1
    local file = tmpfile("+1 212 555 0001\n+1 212 555 0020\n")
    local out, status = run(("sync %s --numbers-file %s --exact --dry-run"):format(conns[2], file))
    os.remove(file)
    assert.equals(1, status, out)
    assert.is_truthy(out:find("\n  ! 12125550001 .*held by SIP connection sip%-trunk%-1 %(" .. conns[1]:gsub("%-", "%%-")
      .. "%); %-%-move takes it%)\n"), out)
    no_lua_words(out)
  end)
end)
