-- Readable printing of lease lists: the metatable that `list` and `assign`
-- results carry. The list stays a plain array for #, ipairs and JSON.

local type, tostring, floor, format, rep = type, tostring, math.floor, string.format, string.rep
local concat = table.concat

local M = {}

local MAX_ROWS = 100

local Leases = { __name = "opentact.Leases" }
M.Leases = Leases

-- 12125551234 on every Lua, never 1.2125551234e+10 or 12125551234.0
local function number(n)
  if type(n) ~= "number" then return n == nil and "-" or tostring(n) end
  if n == floor(n) and n > -2^63 and n < 2^63 then return format("%.0f", n) end
  return tostring(n)
end

-- Server strings go to terminals: control characters (escape sequences
-- among them) are shown, never sent, as \ddd.
local function safe(s)
  return (s:gsub("[%z\1-\31\127]", function(c) return format("\\%03d", c:byte()) end))
end
M.safe = safe

local function cell(v)
  if v == nil then return "-" end
  if type(v) == "boolean" then return v and "yes" or "no" end
  return safe(tostring(v))
end

local COLUMNS = { "uuid", "number", "expires", "autorenew" }

local function row(lease)
  if type(lease) ~= "table" then return { cell(lease), "-", "-", "-" } end
  local tn = type(lease.tn) == "table" and lease.tn.tn or nil
  return { cell(lease.uuid), number(tn), cell(lease.expired_on), cell(lease.autorenew) }
end

function M.format(leases)
  local n = #leases
  local rows, widths = {}, {}
  for i = 1, #COLUMNS do widths[i] = #COLUMNS[i] end
  for i = 1, n < MAX_ROWS and n or MAX_ROWS do
    local r = row(leases[i])
    for c = 1, #r do
      if #r[c] > widths[c] then widths[c] = #r[c] end
    end
    rows[i] = r
  end
  local function render(r)
    local cells = {}
    for c = 1, #r do cells[c] = r[c] .. rep(" ", widths[c] - #r[c]) end
    return "  " .. concat(cells, "  "):gsub("%s+$", "")
  end
  local out = { n == 1 and "1 lease" or n .. " leases" }
  if n > 0 then
    out[2] = render(COLUMNS)
    for i = 1, #rows do out[#out + 1] = render(rows[i]) end
    if n > MAX_ROWS then out[#out + 1] = format("  ... and %d more", n - MAX_ROWS) end
  end
  return concat(out, "\n")
end

Leases.__tostring = M.format

-- The report of assign_batched prints as a summary.
local Report = { __name = "opentact.Report" }
M.Report = Report

local report_methods = {}
Report.__index = report_methods

--- The uuids to run again: the adds and the removes that failed, each
--- list flat and in the order they failed.
function report_methods.failed_uuids(r)
  local adds, removes = {}, {}
  for i = 1, #r.failed do
    local f = r.failed[i]
    for k = 1, #f.add do adds[#adds + 1] = f.add[k] end
    for k = 1, #f.remove do removes[#removes + 1] = f.remove[k] end
  end
  return adds, removes
end

function Report.__tostring(r)
  local applied = #r.applied.add + #r.applied.remove
  local failed = 0
  for i = 1, #r.failed do failed = failed + #r.failed[i].add + #r.failed[i].remove end
  local out = { format("%s: %d applied (%d added, %d removed), %d failed",
    r.ok and "ok" or "not ok", applied, #r.applied.add, #r.applied.remove, failed) }
  for i = 1, #r.failed do
    local f = r.failed[i]
    out[#out + 1] = format("  %d uuids: %s", #f.add + #f.remove, safe(tostring(f.err)))
  end
  return concat(out, "\n")
end

return M
