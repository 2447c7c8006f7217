-- The examples run as documented, against the emulator.
local support = require("emulator")

local LUA = support.LUA

describe("examples/quickstart.lua #wire", function()
  local emu
  setup(function() emu = support.start() end)
  teardown(function() if emu then emu:stop() end end)

  it("runs against the emulator's seed and shows every step", function()
    local p = io.popen(("OPENTACT_URL=%s OPENTACT_TOKEN=%s %s %s/examples/quickstart.lua 2>&1; echo \"status=$?\"")
      :format(emu.url, emu.token, LUA, support.ROOT))
    local out = p:read("*a")
    p:close()
    assert.is_truthy(out:find("status=0", 1, true), out)
    assert.is_truthy(out:find("3 leases", 1, true), out)
    assert.is_truthy(out:find("5 leases", 1, true), out)
    assert.is_truthy(out:find("4 leases left", 1, true), out)
    assert.is_truthy(out:find("opentact: invalid: connection uuid 'not-a-uuid'", 1, true), out)
    assert.is_truthy(out:find("opentact: not_found (404): SIP connection not found", 1, true), out)
    assert.is_falsy(out:find("table: 0x", 1, true), out)
  end)
end)

describe("examples/bulk_assign.lua #wire", function()
  local emu
  setup(function() emu = support.start({ leases = 300 }) end)
  teardown(function() if emu then emu:stop() end end)

  it("attaches a file of uuids and reports what failed", function()
    local st = emu:state()
    local list, failed = os.tmpname(), os.tmpname()
    local f = assert(io.open(list, "w"))
    for i = 11, 260 do f:write(st.leases[i], "\n") end
    f:close()
    emu:faults({ { status = 400, message = "no" } })
    local p = io.popen(("OPENTACT_URL=%s OPENTACT_TOKEN=%s %s %s/examples/bulk_assign.lua %s %s %s 2>&1; echo \"status=$?\"")
      :format(emu.url, emu.token, LUA, support.ROOT, st.connections[2], list, failed))
    local out = p:read("*a")
    p:close()
    assert.is_truthy(out:find("status=1", 1, true), out)
    assert.is_truthy(out:find("250/250 uuids", 1, true), out)
    -- which batch meets the fault depends on which request arrives first
    local n = 0
    for _ in io.lines(failed) do n = n + 1 end
    assert.is_true(n == 100 or n == 50, tostring(n))
    assert.is_truthy(out:find("not ok: " .. (250 - n) .. " applied", 1, true), out)
    assert.equals(250 - n, #emu:state().assigned[st.connections[2]])
    os.remove(list)
    os.remove(failed)
  end)
end)
