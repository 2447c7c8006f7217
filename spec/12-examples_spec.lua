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
