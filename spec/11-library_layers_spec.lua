-- The library's modules (lua/): one concern per file, in layers that
-- point one way (docs/DESIGN.md, "Dependency rule"). Read as text, so that
-- a require inside a function counts as much as one at the top.
local support = require("emulator")
local layers = require("layers")

-- Top to bottom: a module may require only modules of the layers below
-- its own. The command line is the top layer: lua/opentact/cli/.
local LAYERS = {
  { "opentact.cli" },
  { "opentact" },
  { "opentact.routes" },
  { "opentact.sync" },
  { "opentact.apply" },
  { "opentact.bulk", "opentact.search", "opentact.targets" },
  { "opentact.engine" },
  { "opentact.auth", "opentact.transport.ngx" },
  { "opentact.errors", "opentact.options", "opentact.retry", "opentact.settings" },
  { "opentact.json" },
  { "opentact.pretty" },
  { "opentact.core" },
}

-- What lua/ holds, as module names: lua/opentact/x/init.lua is opentact.x.
local function modules()
  local out = {}
  for file in support.sh("cd " .. support.ROOT .. "/lua && find . -name '*.lua' | sort"):gmatch("[^\n]+") do
    local name = file:gsub("^%./", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
    out[#out + 1] = { name = name, file = support.ROOT .. "/lua/" .. file:gsub("^%./", "") }
  end
  return out
end

local depth = layers.depths(LAYERS)

-- A module's layer: its own, or for opentact.cli.* the command line's.
local function layer(name)
  return depth[name] or (name:find("^opentact%.cli%.") and depth["opentact.cli"]) or nil
end

-- Within the command line: a command module (one that defines M.run) is
-- required by the dispatcher only; the shared modules (arguments, input,
-- output, credentials...) never require a command module or the
-- dispatcher.
local function is_command(path)
  return support.read(path):find("\nfunction M%.run%(") ~= nil or support.read(path):find("\nM%.run = ") ~= nil
end

describe("the library's modules", function()
  local all = modules()
  local by_name = {}
  for _, m in ipairs(all) do by_name[m.name] = m end

  it("are each in a layer", function()
    local unplaced = {}
    for _, m in ipairs(all) do
      if not layer(m.name) then unplaced[#unplaced + 1] = m.name end
    end
    assert.same({}, unplaced)
    assert.is_truthy(by_name["opentact"] and by_name["opentact.engine"], "lua/ was not read: the listing is out of date")
  end)

  it("require only modules of the layers below their own (the command line: also its own folder)", function()
    local seen = 0
    local upward = layers.refused(all, function(m, other)
      if other:find("^opentact") then
        seen = seen + 1
        local mine, theirs = layer(m.name), layer(other)
        local cli_inside = mine == depth["opentact.cli"] and theirs == mine
        if not theirs or not (theirs > mine or cli_inside) then
          return m.name .. " requires " .. other
        end
      end
    end)
    assert.same({}, upward)
    assert.is_true(seen > 10, "few requires found: the pattern is out of date")
  end)

  -- The command line is a client of the public module; below it, it uses
  -- only what prints text safely (pretty), the JSON encoder the library
  -- writes saved plans with (json) and the core's clock, a JWT's expiry
  -- and the private file a token is kept in (core).
  local CLI_MAY_USE = { ["opentact"] = true, ["opentact.pretty"] = true, ["opentact.json"] = true,
    ["opentact.core"] = true }

  it("in the command line, require only the public module, pretty, json, core and the command line's own", function()
    local wrong = layers.refused(all, function(m, other)
      if layer(m.name) == depth["opentact.cli"] and other:find("^opentact")
        and not (CLI_MAY_USE[other] or layer(other) == depth["opentact.cli"]) then
        return m.name .. " requires " .. other
      end
    end)
    assert.same({}, wrong)
  end)

  it("in the command line, only the dispatcher requires a command, and nothing requires the dispatcher", function()
    local wrong = layers.refused(all, function(m, other)
      if layer(m.name) ~= depth["opentact.cli"] or m.name == "opentact.cli" then return nil end
      local target = by_name[other]
      if other == "opentact.cli" then
        return m.name .. " requires the dispatcher"
      elseif target and layer(other) == layer(m.name) and is_command(target.file) then
        return m.name .. " requires the command " .. other
      end
    end)
    assert.same({}, wrong)
  end)
end)
