-- Spec helper for the layer specs (spec/11-library_layers_spec.lua,
-- spec/11-emulator_layers_spec.lua): layers as depths, and what a module
-- requires, read as text, so that a require inside a function counts as
-- much as one at the top.
local support = require("emulator")

local M = {}

-- {name = depth} of a list of layers (top first), each a list of names.
function M.depths(layers)
  local depth = {}
  for d, names in ipairs(layers) do
    for _, name in ipairs(names) do depth[name] = d end
  end
  return depth
end

-- The modules a file requires, each once, in order.
function M.requires(path)
  local out, seen = {}, {}
  for name in support.read(path):gmatch("require%s*%(?%s*[\"']([%w_%.]+)[\"']") do
    if not seen[name] then
      seen[name] = true
      out[#out + 1] = name
    end
  end
  return out
end

-- Calls f(m, other) for every module `other` that each of `modules`
-- ({name, file}) requires; the list of what f returned (a message for
-- each require it refuses, nil for one it allows).
function M.refused(modules, f)
  local out = {}
  for _, m in ipairs(modules) do
    for _, other in ipairs(M.requires(m.file)) do
      local why = f(m, other)
      if why then out[#out + 1] = why end
    end
  end
  return out
end

return M
