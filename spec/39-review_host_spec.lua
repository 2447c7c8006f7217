-- A review of the second hardening pass, from the host's side: what the
-- command line promises about files it writes besides standard output.
-- Against the emulator over real sockets.
local support = require("emulator")

local ROOT = support.ROOT
local tmpfile, slurp = support.tmpfile, support.slurp

-- bin/opentact with `args` (shell words): standard output, standard
-- error and the exit status. No login of the machine's user leaks in.
local function opentact(emu, args)
  local err = os.tmpname()
  local out = support.sh(("env -u OPENTACT_EMAIL -u OPENTACT_PASSWORD XDG_CONFIG_HOME=/nonexistent "
    .. "OPENTACT_TOKEN='%s' OPENTACT_URL='%s' %s %s/bin/opentact %s 2> %s; echo \"status=$?\""):format(
    emu.token, emu.url, support.LUA, ROOT, args, err))
  local status = tonumber(out:match("status=(%d+)\n$"))
  local stderr = slurp(err)
  os.remove(err)
  return (out:gsub("status=%d+\n$", "")), stderr, status
end

-- /dev/full takes the open and fails every write: a full disk.
local function have_dev_full()
  local f = io.open("/dev/full", "wb")
  if not f then return false end
  f:write("x")
  local ok = f:close()
  return not ok
end

describe("opentact --failed-file that cannot be written #wire", function()
  local emu, conns, leases

  setup(function()
    emu = support.start({ leases = 40 })
    local st = emu:state()
    conns, leases = st.connections, st.leases
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  it("assign says the failed uuids could not be written, never that they were", function()
    if not have_dev_full() then pending("no /dev/full on this system") return end
    -- the lease lookup passes; the assign fails for good
    emu:faults({ {}, { status = 500, message = "down" } })
    local out, err, status = opentact(emu, ("assign %s --add %s --failed-file /dev/full"):format(conns[2], leases[20]))
    assert.equals(1, status, out .. err)
    assert.is_truthy(out:find("1 failed", 1, true), out .. err)
    assert.is_falsy(out:find("failed uuids written to", 1, true), out .. err)
    assert.is_falsy(out:find("--add-file /dev/full", 1, true), out .. err)
    assert.is_truthy(err:find("cannot write the failed uuids: /dev/full: No space left on device", 1, true), err)
  end)

  it("sync says the failed uuids could not be written, never where they are", function()
    if not have_dev_full() then pending("no /dev/full on this system") return end
    local file = tmpfile("12125550030\n")
    -- the connection read and the lookup pass; the assign fails for good
    emu:faults({ {}, {}, { status = 500, message = "down" } })
    local out, err, status = opentact(emu, ("sync %s --numbers-file %s --failed-file /dev/full"):format(conns[2], file))
    os.remove(file)
    assert.equals(1, status, out .. err)
    assert.is_truthy(out:find("Running the same sync again", 1, true), out .. err)
    assert.is_falsy(out:find("the uuids that failed are in", 1, true), out .. err)
    assert.is_truthy(err:find("cannot write the failed uuids: /dev/full: No space left on device", 1, true), err)
  end)

  it("a failed file that can be written is still named, with the command that retries", function()
    local failed = os.tmpname()
    emu:faults({ {}, { status = 500, message = "down" } })
    local out, err, status = opentact(emu, ("assign %s --add %s --failed-file %s"):format(conns[2], leases[20], failed))
    assert.equals(1, status, out .. err)
    assert.is_truthy(out:find("failed uuids written to " .. failed, 1, true), out .. err)
    assert.is_truthy(slurp(failed):find(leases[20], 1, true))
    os.remove(failed)
  end)
end)
