-- Readable printing of what calls return: the metatables of lease lists
-- (`list`, `assign`), of one lease, of search pages, of the reports of
-- assign_batched and sync, and of list_many's results. They add only
-- __tostring (and the reports' methods): every list stays a plain array
-- for #, ipairs and JSON.

local type, tostring, ipairs, setmetatable = type, tostring, ipairs, setmetatable
local floor, format, rep = math.floor, string.format, string.rep
local concat = table.concat

local M = {}

local MAX_ROWS = 100

local Leases = { __name = "opentact.Leases" }
M.Leases = Leases

-- The UTF-8 of invisible characters that change how a terminal or an
-- editor shows the text around them, or hide in it: the C1 controls
-- (U+0080-U+009F), the bidirectional marks (U+061C, U+200E, U+200F),
-- embeddings and overrides (U+202A-U+202E) and isolates (U+2066-U+2069),
-- the line and paragraph separators (U+2028, U+2029), the zero-width
-- characters (U+200B-U+200D, U+2060-U+2064, U+FEFF) and the deprecated
-- format characters (U+206A-U+206F). A right-to-left override makes
-- "exe.txt" of "txt.exe".
local MARKS = { "\194[\128-\159]", "\216\156", "\226\128[\139-\143\168-\174]", "\226\129[\160-\164\166-\175]",
  "\239\187\191" }

-- A character of MARKS (two or three bytes) as its code point.
local function code_point(c)
  local a, b, d = c:byte(1, 3)
  if d then return (a % 16) * 4096 + (b % 64) * 64 + d % 64 end
  return (a % 32) * 64 + b % 64
end

-- `s` with each character of MARKS written as `fmt` of its code point.
local function marks(s, fmt)
  if not s:find("[\194\216\226\239]") then return s end
  for _, m in ipairs(MARKS) do
    s = s:gsub(m, function(c) return format(fmt, code_point(c)) end)
  end
  return s
end
M.marks = marks

-- The length of the UTF-8 character whose first byte is at `i` of `s`
-- (1 to 4), or nil when the bytes there are no whole, shortest UTF-8
-- character (a lone continuation byte, a cut or overlong sequence, a
-- surrogate).
local function utf8_length(s, i)
  local c = s:byte(i)
  if c < 0x80 then return 1 end
  local need = c >= 0xC2 and c <= 0xDF and 1 or c >= 0xE0 and c <= 0xEF and 2 or c >= 0xF0 and c <= 0xF4 and 3
  if not need then return nil end
  for k = 1, need do
    local b = s:byte(i + k)
    if not b or b < 0x80 or b > 0xBF then return nil end
  end
  local b = s:byte(i + 1)
  if (c == 0xE0 and b < 0xA0) or (c == 0xED and b > 0x9F) or (c == 0xF0 and b < 0x90) or (c == 0xF4 and b > 0x8F) then
    return nil
  end
  return need + 1
end

-- `s` with each byte that is not part of a whole UTF-8 character written
-- as \ddd: 0x80-0x9F alone are C1 controls to a terminal that takes 8-bit
-- controls (0x9B is CSI, as ESC [ is).
local function stray_bytes(s)
  if not s:find("[\128-\255]") then return s end
  local out, from, i, n = {}, 1, 1, #s
  while i <= n do
    local len = utf8_length(s, i)
    if not len then
      out[#out + 1] = s:sub(from, i - 1)
      out[#out + 1] = format("\\%03d", s:byte(i))
      len, from = 1, i + 1
    end
    i = i + len
  end
  out[#out + 1] = s:sub(from)
  return concat(out)
end
M.stray_bytes = stray_bytes

-- Server strings go to terminals: control characters (escape sequences
-- among them) are shown, never sent, as \ddd, and the characters of MARKS
-- as \u{XXXX}; so are bytes that are no UTF-8 (stray_bytes). With
-- `keep_breaks`, tab, newline and carriage return are left for the caller
-- (csv and tsv quote or escape them).
local function safe(s, keep_breaks)
  s = s:gsub(keep_breaks and "[%z\1-\8\11\12\14-\31\127]" or "[%z\1-\31\127]",
    function(c) return format("\\%03d", c:byte()) end)
  return marks(stray_bytes(s), "\\u{%04X}")
end
M.safe = safe

-- 12125551234 on every Lua, never 1.2125551234e+10 or 12125551234.0; a
-- number the server sent as text is shown safely
local function number(n)
  if type(n) ~= "number" then return n == nil and "-" or safe(tostring(n)) end
  if n == floor(n) and n > -2^63 and n < 2^63 then return format("%.0f", n) end
  return tostring(n)
end

-- "1 uuid", "2 uuids": a count and its word.
local function plural(n, word)
  return format("%d %s%s", n, word, n == 1 and "" or "s")
end
M.plural = plural

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
M.row, M.COLUMNS = row, COLUMNS -- the CLI's tables, which have no row cap

--- A table as text: `head` on its own line, then the `columns` and the
--- rows (lists of cells, made safe here), aligned, at most MAX_ROWS of
--- them (`total`: how many there are, when more than the rows given).
function M.table(head, columns, rows, total)
  local widths, shown = {}, {}
  for i = 1, #columns do widths[i] = #columns[i] end
  for i = 1, #rows < MAX_ROWS and #rows or MAX_ROWS do
    local r = {}
    for c = 1, #columns do
      r[c] = safe(tostring(rows[i][c] == nil and "-" or rows[i][c]))
      if #r[c] > widths[c] then widths[c] = #r[c] end
    end
    shown[i] = r
  end
  local function render(r)
    local cells = {}
    for c = 1, #r do cells[c] = r[c] .. rep(" ", widths[c] - #r[c]) end
    return "  " .. concat(cells, "  "):gsub("%s+$", "")
  end
  local out = { head }
  total = total or #rows
  if total > 0 then
    out[2] = render(columns)
    for i = 1, #shown do out[#out + 1] = render(shown[i]) end
    if total > #shown then out[#out + 1] = format("  ... and %d more", total - #shown) end
  end
  return concat(out, "\n")
end

function M.format(leases)
  local n = #leases
  local rows = {}
  for i = 1, n < MAX_ROWS and n or MAX_ROWS do rows[i] = row(leases[i]) end
  return M.table(n == 1 and "1 lease" or n .. " leases", COLUMNS, rows, n)
end

Leases.__tostring = M.format

-- One lease (what `lease` returns, and each lease of a list) prints as
-- one line: its uuid, its number, its expiry and renewal, its holder.
local Lease = { __name = "opentact.Lease" }
M.Lease = Lease

--- A lease holder as text: "SIP connection NAME (uuid)", "SIP control app
--- NAME (uuid)", or without a name the kind and the uuid.
function M.holder(kind, uuid, name)
  local what = kind == "app" and "SIP control app " or "SIP connection "
  if type(name) == "string" and name ~= "" then return what .. cell(name) .. " (" .. cell(uuid) .. ")" end
  return what .. cell(uuid)
end

local function holder_text(lease)
  local app, conn = lease.sip_control_app, lease.sip_connection
  if type(app) == "table" and app.uuid then return M.holder("app", app.uuid, app.name) end
  if type(conn) == "table" and conn.uuid then return M.holder("connection", conn.uuid, conn.name) end
  return nil
end

function M.format_lease(lease)
  local tn = type(lease.tn) == "table" and lease.tn.tn or nil
  local holder = holder_text(lease)
  return format("lease %s: %s, expires %s, autorenew %s, %s", cell(lease.uuid), number(tn),
    cell(lease.expired_on), cell(lease.autorenew), holder and "on " .. holder or "on no SIP connection or app")
end

Lease.__tostring = M.format_lease

--- Gives every lease of a list (and the list) the metatables that print them.
function M.leases(list)
  for i = 1, #list do
    local l = list[i]
    if type(l) == "table" then setmetatable(l, Lease) end
  end
  return setmetatable(list, Leases)
end

-- The results of list_many print as one line per connection: how many
-- leases it holds, or its error.
local Results = { __name = "opentact.Results" }
M.Results = Results

function Results.__tostring(r)
  local n = #r
  local out = { n == 1 and "1 connection" or n .. " connections" }
  for i = 1, n do
    local x = r[i]
    local what
    if type(x) ~= "table" then
      what = cell(x)
    elseif x.leases then
      local k = type(x.leases) == "table" and #x.leases or 0
      what = k == 1 and "1 lease" or k .. " leases"
    else
      what = safe(tostring(x.err))
    end
    out[#out + 1] = format("  %s  %s", type(x) == "table" and cell(x.uuid) or "-", what)
  end
  return concat(out, "\n")
end

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
    out[#out + 1] = format("  %s: %s", plural(#f.add + #f.remove, "uuid"), safe(tostring(f.err)))
  end
  return concat(out, "\n")
end

-- A search page prints as its place in the results, then its leases.
local Page = { __name = "opentact.Page" }
M.Page = Page

function Page.__tostring(p)
  local n = type(p.data) == "table" and #p.data or 0
  local head = n == 0 and format("page at %s: no leases of %s", number(p.skip), number(p.total))
    or format("page: leases %s to %s of %s", number((p.skip or 0) + 1), number((p.skip or 0) + n), number(p.total))
  if n == 0 then return head end
  return head .. "\n" .. M.format(p.data)
end

-- The report of sync prints as a plan, one line per change, the way
-- `terraform plan` does: + attach, - detach, ! conflict, ? missing.
local SyncReport = { __name = "opentact.SyncReport" }
M.SyncReport = SyncReport
SyncReport.__index = report_methods

local function lease_line(mark, lease, note)
  local tn = type(lease.tn) == "table" and lease.tn.tn or nil
  local line = format("  %s %-15s %s", mark, number(tn), cell(lease.uuid))
  return note and line .. "  (" .. note .. ")" or line
end

-- How the Lua API spells the options a plan's lines mention.
local LUA_WORDS = { move = "move = true" }

local function on_off(v) return v == nil and "unknown" or v and "on" or "off" end

--- What a plan (or its report) `r` sets lease `l`'s autorenew to: the
--- lease's own (a routes plan's target plan: renew_to), else the plan's.
local function autorenew_to(r, l)
  local to = r.renew_to
  local u = type(l.uuid) == "string" and l.uuid:lower()
  if to and u and to[u] ~= nil then return to[u] end
  return r.options and r.options.autorenew
end

M.autorenew_to = autorenew_to

-- What the plans `rs` set autorenew to, over their renew lists: "on",
-- "off", or "on for N and off for M" when it differs from lease to lease.
local function autorenew_values(rs)
  local on, off, other = 0, 0, 0
  for _, r in ipairs(rs) do
    for _, l in ipairs(r.renew or {}) do
      local v = autorenew_to(r, l)
      if v == true then on = on + 1 elseif v == false then off = off + 1 else other = other + 1 end
    end
  end
  if other > 0 or on + off == 0 then return on_off(nil) end
  if off == 0 then return "on" end
  if on == 0 then return "off" end
  return format("on for %d and off for %d", on, off)
end

--- The plan's lines, at most `limit` per kind (nil: all). `words` spells
--- the options the lines mention the caller's way (default: the Lua API's,
--- `{move = "move = true"}`; a command line gives its flags).
function M.plan_lines(r, limit, words)
  local move = (words or LUA_WORDS).move or LUA_WORDS.move
  local kind = r.target_kind or "connection"
  local word = kind == "app" and "control app" or "connection"
  local target = r.target or r.connection
  local out = { target and M.holder(kind, target, r.target_name) .. ":" or nil }
  local function section(list, line)
    local n = #list
    local shown = limit and limit < n and limit or n
    for i = 1, shown do out[#out + 1] = line(list[i]) end
    if shown < n then out[#out + 1] = format("    ... and %d more", n - shown) end
  end
  local moved = words and words.moved
  section(r.add, function(l)
    local m = moved and type(l.uuid) == "string" and moved[l.uuid:lower()]
    if m then
      -- a move between two targets of one routes plan
      local tn = type(l.tn) == "table" and l.tn.tn or nil
      return format("  ~ %-15s %s \226\134\146 %s  (%s)", number(tn), m.from, m.to, cell(l.uuid))
    end
    local from = holder_text(l)
    -- (a lease the target holds already and is added for another reason
    -- moves from nowhere)
    local app, conn = type(l.sip_control_app) == "table" and l.sip_control_app.uuid,
      type(l.sip_connection) == "table" and l.sip_connection.uuid
    local own, other = kind == "app" and app or conn, kind == "app" and conn or app
    if from and type(own) == "string" and target and own:lower() == target and not other then
      from = nil
    end
    return lease_line("+", l, from and "moves from " .. from)
  end)
  section(r.remove, function(l) return lease_line("-", l) end)
  section(r.conflicts, function(l)
    return lease_line("!", l, "held by " .. (holder_text(l) or "another holder") .. "; " .. move .. " takes it")
  end)
  section(r.missing, function(x)
    return format("  ? %-15s not in the account", cell(type(x) == "table" and x.uuid or x))
  end)
  -- autorenew set: ~ and what it was
  local renew = r.renew or {}
  section(renew, function(l)
    return lease_line("~", l, "autorenew " .. on_off(l.autorenew) .. " -> " .. on_off(autorenew_to(r, l)))
  end)
  local conflicts, missing = #r.conflicts, #r.missing
  out[#out + 1] = format("Plan: %d to add, %d to remove, %d unchanged, %d conflict%s, %d missing%s.",
    #r.add, #r.remove, #r.keep, conflicts, conflicts == 1 and "" or "s", missing,
    #renew > 0 and format(", %d to set autorenew %s", #renew, autorenew_values({ r })) or "")
  if r.dry_run then
    out[#out + 1] = "Dry run: nothing was changed."
  else
    local failed = 0
    for i = 1, #r.failed do failed = failed + #r.failed[i].add + #r.failed[i].remove end
    local renewed = r.renewed
    out[#out + 1] = format("Applied: %d added, %d removed, %d failed%s.", #r.applied.add, #r.applied.remove, failed,
      renewed and #renew > 0 and format("; autorenew set %s on %d, %d failed", autorenew_values({ r }),
        #renewed.applied, #renew - #renewed.applied) or "")
    for i = 1, #r.failed do
      local f = r.failed[i]
      out[#out + 1] = format("  %s: %s", plural(#f.add + #f.remove, "uuid"), safe(tostring(f.err)))
    end
    for _, f in ipairs(renewed and renewed.failed or {}) do
      out[#out + 1] = format("  %s (autorenew): %s", plural(#f.uuids, "uuid"), safe(tostring(f.err)))
    end
    for _, rel in ipairs(r.released or {}) do
      out[#out + 1] = format("  released %d from %s first", #rel.leases,
        M.holder(rel.kind or "app", rel.app or rel.connection, rel.name))
    end
    local unexpected = r.unexpected or {}
    if #unexpected > 0 then
      out[#out + 1] = format("%s on the %s that was not asked for:", plural(#unexpected, "lease"), word)
      section(unexpected, function(u) return "  * " .. cell(u) end)
    end
    if r.unverified then out[#out + 1] = "Not verified: " .. safe(tostring(r.unverified)) end
  end
  out[#out + 1] = r.ok and "ok" or "not ok"
  return out
end

function SyncReport.__tostring(r)
  return concat(M.plan_lines(r, 50), "\n")
end

-- A target as a routes plan's move names it: its name, else its kind and
-- uuid.
local function short(t)
  local name = t.target_name
  if type(name) == "string" and name ~= "" then return cell(name) end
  return M.holder(t.target_kind or "connection", t.target)
end

--- A routes plan's lines (or its report's), summary first: the counts
--- over every target, then each target's lines as plan_lines gives them
--- (its summary left out), a move between two of its targets as "~
--- NUMBER FROM → TO", then what was applied over all and ok or not ok.
--- `limit`, `words`: as plan_lines'.
function M.routes_lines(r, limit, words)
  local moved, w = {}, {}
  for k, v in pairs(words or LUA_WORDS) do w[k] = v end
  for _, m in ipairs(r.moves or {}) do
    moved[m.lease.uuid:lower()] = { from = short(m.from), to = short(m.to) }
  end
  w.moved = moved
  local conflicts, renew = #r.conflicts, #(r.renew or {})
  local out = { format("Plan: %d to add, %d to move, %d to remove, %d unchanged, %d conflict%s, %d missing%s, "
    .. "over %s.", #r.add - #(r.moves or {}), #(r.moves or {}), #r.remove, #r.keep, conflicts, conflicts == 1 and "" or "s",
    #r.missing, renew > 0 and format(", %d to set autorenew %s", renew, autorenew_values(r.targets)) or "",
    plural(#r.targets, "target")) }
  for _, t in ipairs(r.targets) do
    local lines = M.plan_lines(t, limit, w)
    local last = #lines - 1 -- without ok or not ok
    for i = 1, last do
      local line = lines[i]
      if not (line:find("^Plan: ") or line:find("^Dry run: ")) then out[#out + 1] = line end
    end
  end
  if r.dry_run then
    out[#out + 1] = "Dry run: nothing was changed."
  else
    local failed = 0
    for i = 1, #r.failed do failed = failed + #r.failed[i].add + #r.failed[i].remove end
    out[#out + 1] = format("Applied over all: %d added, %d removed, %d failed%s.", #r.applied.add,
      #r.applied.remove, failed, renew > 0 and format("; autorenew set %s on %d, %d failed",
        autorenew_values(r.targets), #r.renewed.applied, renew - #r.renewed.applied) or "")
  end
  out[#out + 1] = r.ok and "ok" or "not ok"
  return out
end

-- A routes plan's report prints as the plan does, with what was applied.
local RoutesReport = { __name = "opentact.RoutesReport" }
M.RoutesReport = RoutesReport
RoutesReport.__index = report_methods

function RoutesReport.__tostring(r)
  return concat(M.routes_lines(r, 50), "\n")
end

return M
