-- The emulator's folder: one module per concern, in layers that point one
-- way (see emulator/init.lua), each installed by the rock. Read as text:
-- the modules run only inside nginx.
local support = require("emulator")
local layers = require("layers")

-- Top to bottom: a module may require only modules of the layers below.
local LAYERS = {
  { "init" },
  { "routes", "admin" },
  { "leases", "search", "auth", "holders" },
  { "replies", "request", "state" },
  { "seed", "sha256" },
}

local read = support.read

local function files()
  local out = {}
  for name in support.sh("ls " .. support.ROOT .. "/emulator"):gmatch("[^\n]+") do out[#out + 1] = name end
  return out
end

describe("the emulator's modules", function()
  local layer = layers.depths(LAYERS)

  it("are each in a layer", function()
    local unplaced = {}
    for _, file in ipairs(files()) do
      local name = file:match("^(.*)%.lua$")
      if not (name and layer[name]) then unplaced[#unplaced + 1] = file end
    end
    assert.same({}, unplaced)
  end)

  it("require only modules of the layers below their own", function()
    local modules, seen = {}, 0
    for _, file in ipairs(files()) do
      modules[#modules + 1] = { name = file:match("^(.*)%.lua$"), file = support.ROOT .. "/emulator/" .. file }
    end
    local upward = layers.refused(modules, function(m, required)
      local other = required:match("^emulator%.([%w_]+)$")
      if other then
        seen = seen + 1
        if not (layer[other] and layer[m.name] and layer[other] > layer[m.name]) then
          return m.name .. " requires " .. other
        end
      end
    end)
    assert.same({}, upward)
    assert.is_true(seen > 0, "no require of another emulator module found: the pattern is out of date")
  end)

  it("are all installed by the rock, as opentact.emulator and opentact.emulator.<name>", function()
    local rockspec = support.sh("ls " .. support.ROOT .. "/opentact-*.rockspec"):match("[^\n]+")
    local text = read(rockspec)
    local missing = {}
    for _, file in ipairs(files()) do
      local name = file:match("^(.*)%.lua$")
      local module = name == "init" and "opentact.emulator" or "opentact.emulator." .. name
      if not text:find('["' .. module .. '"] = "emulator/' .. file .. '"', 1, true) then
        missing[#missing + 1] = module
      end
    end
    assert.same({}, missing)
  end)
end)
