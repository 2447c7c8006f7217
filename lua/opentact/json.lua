-- JSON text out, made once for the library (a saved plan, its journal)
-- and the command line (every --format json): what the server sent as an
-- object stays an object even when empty (the decoder gives decoded empty
-- objects the metatable opentact.Object; a lease is an object), every
-- other empty table is an array, integers print as integers on every Lua,
-- keys are sorted, so that the same value is always the same text (a
-- saved plan's hash is taken over it).

local core = require("opentact.core")
local pretty = require("opentact.pretty")

local type, tostring, tonumber, ipairs, pairs = type, tostring, tonumber, ipairs, pairs
local setmetatable, getmetatable = setmetatable, getmetatable
local format, concat, floor, sort = string.format, table.concat, math.floor, table.sort

local M = {}

local function is_array(t)
  local mt = getmetatable(t)
  if mt ~= nil and (mt == core.Object or mt == pretty.Lease) then return false end
  local n = #t
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k > n or floor(k) ~= k then return false end
  end
  return true
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
  ["\r"] = "\\r", ["\t"] = "\\t" }

--- JSON's null, for keys that must be there when empty (jsonl rows).
local NULL = setmetatable({}, { __name = "opentact.json.null" })
M.NULL = NULL

local function encode(v, out)
  local t = type(v)
  if v == NULL then
    out[#out + 1] = "null"
  elseif t == "string" and not v:find('[%c"\\\128-\255]') then
    -- nothing to escape (uuids, numbers' text, most names)
    out[#out + 1] = '"' .. v .. '"'
  elseif t == "string" then
    -- bidirectional and other invisible marks as \u escapes too: the
    -- same string to a JSON reader, never raw on a terminal
    out[#out + 1] = '"' .. pretty.marks((v:gsub('[%c"\\]', function(c)
      return ESCAPES[c] or format("\\u%04x", c:byte())
    end)), "\\u%04x") .. '"'
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      out[#out + 1] = "null"
    elseif floor(v) == v and v > -2 ^ 63 and v < 2 ^ 63 then
      out[#out + 1] = format("%.0f", v)
    else
      out[#out + 1] = format("%.17g", v)
    end
  elseif t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif t == "table" then
    if is_array(v) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode(v[i], out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = tostring(k) end
      sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        encode(k, out)
        out[#out + 1] = ":"
        local value = v[k]
        if value == nil then value = v[tonumber(k)] end
        encode(value, out)
      end
      out[#out + 1] = "}"
    end
  else
    out[#out + 1] = "null"
  end
end

--- `v` as JSON text: one line, keys sorted.
function M.encode(v)
  local out = {}
  encode(v, out)
  return concat(out)
end

return M
