-- What the `opentact` command prints, in every --format: JSON (the library's encoder),
-- csv and tsv fields (formula-safe, control characters escaped), jsonl
-- rows, aligned tables, a report's rows, and the progress bar.

local opentact = require("opentact")
local core = require("opentact.core")
local pretty = require("opentact.pretty")
local json = require("opentact.json")
local ROWS = require("opentact.cli.options").ROWS

local type, tostring, ipairs, tonumber = type, tostring, ipairs, tonumber
local setmetatable = setmetatable
local format, concat, floor, lower, max = string.format, table.concat, math.floor, string.lower, math.max

local M = {}

---------------------------------------------------------------- JSON out

-- The library's JSON encoder (opentact.json): objects the server sent
-- stay objects when empty, integers print as integers, keys are sorted.
M.json = json.encode
-- JSON's null, for keys that must be there when empty (jsonl rows).
local NULL = json.NULL
M.NULL = NULL

---------------------------------------------------------------- progress

-- A progress bar on standard error: done/total, rate, ETA. `unit`: what
-- is counted (default "uuid").
local function progress_bar(ctx, unit)
  unit = unit or "uuid"
  local started = core.now()
  return function(done, total)
    local elapsed = core.now() - started
    local rate = elapsed > 0 and done / elapsed or 0
    local eta = rate > 0 and (total - done) / rate or 0
    local width = 30
    local filled = total > 0 and floor(width * done / total) or width
    ctx.stderr:write(format("\r[%s%s] %d/%d %s  %3d%%  %.0f/s  ETA %.1fs ",
      ("#"):rep(filled), ("-"):rep(width - filled), done, total, total == 1 and unit or unit .. "s",
      total > 0 and floor(100 * done / total) or 100, rate, eta))
    if done >= total then ctx.stderr:write("\n") end
  end
end

---------------------------------------------------------------- output

-- Whether standard output is a terminal: as ctx says, else asked once
-- (only of the process's own standard output).
local function stdout_terminal(ctx)
  if ctx.stdout_terminal == nil then
    local t = false
    if ctx.stdout_file == io.stdout then t = core.isatty(1) end
    ctx.stdout_terminal = t
  end
  return ctx.stdout_terminal
end

-- An error's fields for JSON: never more than these (no headers, no body).
local ERROR_FIELDS = { "kind", "status", "message", "retryable", "attempts", "method", "path", "retry_after" }

local function error_json(e)
  local out = {}
  for _, k in ipairs(ERROR_FIELDS) do out[k] = e[k] end
  return out
end

-- An error that ends a command: its line on standard error (`text`, else
-- the error's own) and, under --format json or jsonl, {"ok": false,
-- "error": {...}} on standard output. Returns the exit status: `status`,
-- A value as a csv or tsv field's text: "" for nothing, true and false,
-- whole numbers without exponent or fraction.
local function field_text(v)
  if v == nil or v == NULL then return "" end
  if type(v) == "number" and floor(v) == v and v > -2 ^ 63 and v < 2 ^ 63 then return format("%.0f", v) end
  return tostring(v)
end

-- A text cell a spreadsheet would take for a formula (OWASP's CSV
-- injection advice: =, +, -, @, tab, carriage return first) begins with a
-- ', so that it stays text. Only strings: a number or a boolean is written
-- here as digits with at most a leading minus, or true or false, which no
-- spreadsheet runs, and a ' would turn -5 into text.
local function formula_safe(v, s)
  if type(v) == "string" and s:find("^[=+%-@\t\r]") then return "'" .. s end
  return s
end

-- Control characters other than tab, newline and carriage return are
-- shown as \ddd, bidirectional and other invisible marks as \u{XXXX}, as
-- in tables (pretty.safe): never sent to a terminal.
local function controls(s)
  return pretty.safe(s, true)
end

-- RFC 4180: a field with a comma, a quote, a line break or edge spaces
-- goes in quotes, its quotes doubled.
local function csv_field(v)
  local s = controls(formula_safe(v, field_text(v)))
  if s:find('[",\r\n]') or s:find("^%s") or s:find("%s$") then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end

local TSV_ESCAPES = { ["\t"] = "\\t", ["\n"] = "\\n", ["\r"] = "\\r", ["\\"] = "\\\\" }

local function tsv_field(v)
  return controls((formula_safe(v, field_text(v)):gsub("[\t\n\r\\]", TSV_ESCAPES)))
end

-- Rows (lists of values in `columns` order) in `fmt`: jsonl (an object a
-- line, null for nothing), csv or tsv (a header line first).
local function write_rows(ctx, fmt, columns, rows)
  local out = {}
  if fmt == "jsonl" then
    for i, r in ipairs(rows) do
      local obj = {}
      for c, name in ipairs(columns) do
        local v = r[c]
        if v == nil then v = NULL end
        obj[name] = v
      end
      out[i] = M.json(obj)
    end
  else
    local field, sep = csv_field, ","
    if fmt == "tsv" then field, sep = tsv_field, "\t" end
    local function line(r)
      local cells = {}
      for c = 1, #columns do cells[c] = field(r[c]) end
      return concat(cells, sep)
    end
    out[1] = line(columns)
    for _, r in ipairs(rows) do out[#out + 1] = line(r) end
  end
  if #out > 0 then ctx.stdout:write(concat(out, "\n"), "\n") end
end

-- A lease in a few fields, for JSON: uuid, number and holders.
local function brief(lease)
  local function uuid_of(h) return type(h) == "table" and h.uuid or nil end
  return { uuid = lease.uuid, number = type(lease.tn) == "table" and lease.tn.tn or nil,
    sip_connection = uuid_of(lease.sip_connection), sip_control_app = uuid_of(lease.sip_control_app) }
end

local function briefs(list)
  local out = {}
  for i, x in ipairs(list) do out[i] = type(x) == "table" and brief(x) or x end
  return out
end

-- A report's (or a plan's) leases to set autorenew on, each with the
-- value it is set to (a routes plan's leases may differ).
local function renew_briefs(report)
  local out = {}
  for i, l in ipairs(report.renew or {}) do
    out[i] = brief(l)
    out[i].autorenew = pretty.autorenew_to(report, l)
  end
  return out
end

local function number_text(n)
  return type(n) == "number" and format("%.0f", n) or n ~= nil and pretty.safe(tostring(n)) or "-"
end

local function yes_no(v)
  if v == nil then return "-" end
  return v and "yes" or "no"
end

-- Rows of text as an aligned table under a header, after `head` (the
-- count of what they are). On a terminal the table stops after ROWS rows,
-- unless --all.
local function text_table(ctx, o, head, header, rows)
  local n, shown = #rows, #rows
  if n > ROWS and not o.all and stdout_terminal(ctx) then shown = ROWS end
  local widths = {}
  for c, v in ipairs(header) do widths[c] = #v end
  for i = 1, shown do
    for c, v in ipairs(rows[i]) do
      if #v > widths[c] then widths[c] = #v end
    end
  end
  local function render(r)
    local cells = {}
    for c, v in ipairs(r) do cells[c] = v .. (" "):rep(widths[c] - #v) end
    return (("  " .. concat(cells, "  ")):gsub("%s+$", ""))
  end
  local out = { head }
  if n > 0 then
    out[2] = render(header)
    for i = 1, shown do out[#out + 1] = render(rows[i]) end
    if shown < n then out[#out + 1] = format("  ... and %d more (--all prints every one)", n - shown) end
  end
  return concat(out, "\n")
end

local function lease_table(ctx, o, header, rows)
  return text_table(ctx, o, #rows == 1 and "1 lease" or #rows .. " leases", header, rows)
end

-- The columns of a lease in csv and tsv.
local LEASE_COLUMNS = { "uuid", "number", "expires", "autorenew", "sip_connection", "sip_control_app" }

-- Leases as `fmt` asks: json (the payload), jsonl (a lease a line), csv
-- or tsv (LEASE_COLUMNS), or a table made by `table_rows` (header, rows).
local function write_leases(ctx, o, leases, table_rows)
  local fmt = o.format
  if fmt == "json" then
    ctx.stdout:write(M.json(setmetatable(leases, nil)), "\n")
  elseif fmt == "jsonl" then
    local out = {}
    for i, l in ipairs(leases) do out[i] = M.json(l) end
    if #out > 0 then ctx.stdout:write(concat(out, "\n"), "\n") end
  elseif fmt == "table" then
    ctx.stdout:write(lease_table(ctx, o, table_rows(leases)), "\n")
  else
    local rows = {}
    for i, l in ipairs(leases) do
      if type(l) == "table" then
        local b = brief(l)
        rows[i] = { b.uuid, b.number, l.expired_on, l.autorenew, b.sip_connection, b.sip_control_app }
      else
        rows[i] = { tostring(l) }
      end
    end
    write_rows(ctx, fmt, LEASE_COLUMNS, rows)
  end
end

-- Leases as a table: number, uuid, who holds them, autorenew.
local function holder_rows(leases)
  local rows = {}
  for i, l in ipairs(leases) do
    local b = brief(l)
    local held = b.sip_control_app and "app " .. b.sip_control_app
      or b.sip_connection and "connection " .. b.sip_connection or "-"
    rows[i] = { number_text(b.number), pretty.safe(tostring(l.uuid)), pretty.safe(held), yes_no(l.autorenew) }
  end
  return { "number", "uuid", "held by", "autorenew" }, rows
end

-- The columns of a report's rows: one per uuid, with its outcome.
local REPORT_COLUMNS = { "uuid", "number", "action", "result", "error_kind", "error_status", "error_message" }

local function outcome(uuid, number, action, result, err, message)
  return { uuid, number, action, result, err and err.kind, err and err.status, message or err and err.message }
end

-- What a report says of each uuid: "add:<uuid>" -> the error it failed
-- with, or true when applied.
local function outcomes(report)
  local out = {}
  for _, kind in ipairs({ "add", "remove" }) do
    for _, u in ipairs(report.applied[kind]) do out[kind .. ":" .. lower(u)] = true end
  end
  for _, f in ipairs(report.failed) do
    for _, kind in ipairs({ "add", "remove" }) do
      for _, u in ipairs(f[kind]) do out[kind .. ":" .. lower(u)] = f.err end
    end
  end
  return out
end

-- The rows of uuids the report names that `rows` does not have yet.
local function other_outcomes(report, done, rows)
  for _, f in ipairs(report.failed) do
    for _, kind in ipairs({ "add", "remove" }) do
      for _, u in ipairs(f[kind]) do
        if not done[kind .. ":" .. lower(u)] then
          done[kind .. ":" .. lower(u)] = true
          rows[#rows + 1] = outcome(u, nil, kind, "failed", f.err)
        end
      end
    end
  end
  return rows
end

---------------------------------------------------------------- plans

-- A plan's or a sync report's lines (pretty.plan_lines, in the command
-- line's words) in three parts: the summary line ("Plan: N to add, ..."),
-- the listing (the connection, then a line per lease), and what follows
-- it (a dry run said, what was applied and failed, ok or not ok).
local function plan_parts(report)
  if report.targets then
    -- a routes plan: its summary first, its targets' lines, then over all
    local lines = pretty.routes_lines(report, nil, { move = "--move" })
    local body, after = {}, {}
    for i = 2, #lines do
      local line = lines[i]
      if #after > 0 or line:find("^Dry run: ") or line:find("^Applied over all: ") or i == #lines then
        after[#after + 1] = line
      else
        body[#body + 1] = line
      end
    end
    return lines[1], body, after
  end
  local lines = pretty.plan_lines(report, nil, { move = "--move" })
  local summary, body, after = nil, {}, {}
  for _, line in ipairs(lines) do
    if summary == nil and line:find("^Plan: ") then
      summary = line
    elseif summary == nil then
      body[#body + 1] = line
    else
      after[#after + 1] = line
    end
  end
  return summary, body, after
end

-- What a plan's lines that change something are: + attach, - detach,
-- ! held elsewhere; a + that moves a lease from another holder says so.
local COLOURS = { ["+"] = "\27[32m", ["-"] = "\27[31m", ["!"] = "\27[33m", ["~"] = "\27[33m" }
local YELLOW, RESET = "\27[33m", "\27[0m"

-- A line of a plan in colour (the text from the server in it is escaped
-- already: pretty.safe): green +, red -, yellow !, and a move's holder
-- in yellow.
local function colour_line(line)
  local mark = line:match("^  ([%+%-!~]) ")
  if not mark then return line end
  local head, move = line:match("^(.-)(  %(moves from .*)$")
  if mark == "+" and head then return COLOURS["+"] .. head .. YELLOW .. move .. RESET end
  return COLOURS[mark] .. line .. RESET
end

-- Whether a plan is printed in colour: on a terminal, unless --no-color or
-- NO_COLOR (any value but the empty one, as no-color.org asks).
local function colour_wanted(ctx, o)
  if o.no_color then return false end
  local no = ctx.getenv("NO_COLOR")
  if no ~= nil and no ~= "" then return false end
  return stdout_terminal(ctx)
end

-- The terminal's height in lines: LINES, else what tput says, else 24.
local function screen_height(ctx)
  local n = tonumber(ctx.getenv("LINES") or "")
  if n and n >= 1 then return floor(n) end
  if ctx.stdout_file == io.stdout then
    local p = io.popen("tput lines 2> /dev/null")
    if p then
      n = tonumber(p:read("*a") or "")
      p:close()
      if n and n >= 1 then return floor(n) end
    end
  end
  return 24
end

-- Lines a cut plan keeps free on the screen: the shell's prompt, and a
-- question or what follows.
local MARGIN = 3

-- Writes a plan (or a sync report) on standard output, its summary line
-- first. On a terminal: in colour (colour_wanted), and the lines of its
-- leases cut after a screenful, then "... and N more; --all shows every
-- line", unless --all; to a file or a pipe every line, as is.
-- opts.after_only: only what follows the listing (the plan was shown);
-- opts.reserve: lines to keep free below it (a question).
local function write_plan(ctx, o, report, opts)
  opts = opts or {}
  local summary, body, after = plan_parts(report)
  local lines = {}
  if not opts.after_only then
    lines[1] = summary
    local shown = #body
    local terminal = stdout_terminal(ctx)
    if terminal and not o.all then
      -- the connection's line stays; the leases fill what is left
      local room = screen_height(ctx) - MARGIN - (opts.reserve or 0) - 2 - #after
      if #body > room + 1 then shown = max(2, room) end
    end
    for i = 1, shown do lines[#lines + 1] = body[i] end
    if shown < #body then
      lines[#lines + 1] = format("  \226\128\166 and %d more; --all shows every line", #body - shown)
    end
  end
  for _, line in ipairs(after) do lines[#lines + 1] = line end
  if colour_wanted(ctx, o) then
    for i, line in ipairs(lines) do lines[i] = colour_line(line) end
  end
  if #lines > 0 then ctx.stdout:write(concat(lines, "\n"), "\n") end
end

-- A sync report's rows (or a plan's, or an apply's): a row per lease of
-- the plan, with its outcome.
local function sync_rows(report)
  local results, rows, done = M.outcomes(report), {}, {}
  for _, kind in ipairs({ "add", "remove", "keep" }) do
    for _, l in ipairs(report[kind]) do
      local b = brief(l)
      local action = kind == "keep" and "add" or kind
      local key = action .. ":" .. lower(tostring(b.uuid))
      done[key] = true
      local r, result = results[key]
      if r ~= nil and r ~= true then
        result = "failed"
      elseif kind == "keep" then
        result = "unchanged"
      elseif report.dry_run then
        result = "planned"
      else
        result = r and "applied" or "not_applied"
      end
      rows[#rows + 1] = M.outcome(b.uuid, b.number, kind, result, r ~= true and r or nil)
    end
  end
  for _, l in ipairs(report.conflicts) do
    local b = brief(l)
    local holder = b.sip_control_app and "SIP control app " .. b.sip_control_app
      or b.sip_connection and "SIP connection " .. b.sip_connection or "another holder"
    rows[#rows + 1] = M.outcome(b.uuid, b.number, "add", "conflict", nil, "held by " .. holder .. "; --move takes it")
  end
  for _, x in ipairs(report.missing) do
    local uuid, number
    if type(x) == "table" then
      uuid = x.uuid
    elseif opentact.is_uuid(x) then
      uuid = x
    else
      number = opentact.number(tostring(x)) or x
    end
    rows[#rows + 1] = M.outcome(uuid, number, "add", "missing", nil, "not in the account")
  end
  for _, u in ipairs(report.unexpected) do
    rows[#rows + 1] = M.outcome(u, nil, "none", "unexpected", nil, "on the connection at the read-back, not asked for")
  end
  -- autorenew set (action "autorenew"): planned, applied or failed
  local renewed, failed_renew = report.renewed, {}
  for _, f in ipairs(renewed and renewed.failed or {}) do
    for _, u in ipairs(f.uuids) do failed_renew[lower(u)] = f.err end
  end
  for _, l in ipairs(report.renew or {}) do
    local b = brief(l)
    local e = failed_renew[lower(tostring(b.uuid))]
    local result = report.dry_run and "planned" or e and "failed" or "applied"
    rows[#rows + 1] = M.outcome(b.uuid, b.number, "autorenew", result, e, e and nil
      or ("autorenew " .. (pretty.autorenew_to(report, l) and "on" or "off")))
  end
  return M.other_outcomes(report, done, rows)
end

-- A report (or a plan) as the JSON --format json writes.
local function report_json(report, hint)
  local failed = {}
  for i, f in ipairs(report.failed) do failed[i] = { add = f.add, remove = f.remove, err = error_json(f.err) } end
  return { ok = report.ok, dry_run = report.dry_run, connection = report.connection,
    app = report.app, target = report.target and { kind = report.target_kind, uuid = report.target,
      name = report.target_name } or nil,
    autorenew = report.options and report.options.autorenew, renew = renew_briefs(report),
    renewed = report.renewed and { applied = report.renewed.applied, failed = (function()
      local out = {}
      for i, f in ipairs(report.renewed.failed) do out[i] = { uuids = f.uuids, err = error_json(f.err) } end
      return out
    end)() } or nil,
    add = briefs(report.add), remove = briefs(report.remove), keep = briefs(report.keep),
    conflicts = briefs(report.conflicts), missing = briefs(report.missing), applied = report.applied,
    failed = failed, unexpected = report.unexpected, released = report.released,
    interrupted = report.interrupted and tostring(report.interrupted),
    unverified = report.unverified and error_json(report.unverified) or nil, hint = hint }
end

-- A routes plan (or its report) as JSON: each target's, and the moves.
local function routes_json(report)
  local targets, moves = {}, {}
  for i, t in ipairs(report.targets) do targets[i] = report_json(t) end
  for i, m in ipairs(report.moves or {}) do
    local b = brief(m.lease)
    moves[i] = { uuid = b.uuid, number = b.number, from = { kind = m.from.target_kind, uuid = m.from.target,
      name = m.from.target_name }, to = { kind = m.to.target_kind, uuid = m.to.target, name = m.to.target_name } }
  end
  return { ok = report.ok, dry_run = report.dry_run, routes = true, targets = targets, moves = moves,
    interrupted = report.interrupted and tostring(report.interrupted) or nil }
end

-- The columns of a routes report's rows: a report's, and the target.
local ROUTES_COLUMNS = { "target_kind", "target", "target_name" }
for _, c in ipairs(REPORT_COLUMNS) do ROUTES_COLUMNS[#ROUTES_COLUMNS + 1] = c end

local function routes_rows(report)
  local rows = {}
  for _, t in ipairs(report.targets) do
    for _, row in ipairs(sync_rows(t)) do
      local r = { t.target_kind, t.target, t.target_name and pretty.safe(t.target_name) or nil }
      for k = 1, #REPORT_COLUMNS do r[3 + k] = row[k] end
      rows[#rows + 1] = r
    end
  end
  return rows
end

-- A sync report (or a plan: a dry run) in the --format asked for: json
-- (the report), jsonl, csv or tsv (a row per lease), or the plan's lines
-- with what was applied (write_plan, `opts` its). A routes plan's: each
-- target's, with its target in every row.
local function write_report(ctx, o, report, opts)
  local hint = opts and opts.hint
  if o.json then
    ctx.stdout:write(M.json(report.targets and routes_json(report) or report_json(report, hint)), "\n")
  elseif o.format ~= "table" then
    if report.targets then
      write_rows(ctx, o.format, ROUTES_COLUMNS, routes_rows(report))
    else
      write_rows(ctx, o.format, M.REPORT_COLUMNS, sync_rows(report))
    end
    if report.unverified then ctx.stderr:write("opentact: not verified: ", tostring(report.unverified), "\n") end
    if hint then ctx.stderr:write("opentact: ", hint, "\n") end
  else
    write_plan(ctx, o, report, opts)
    if hint then ctx.stdout:write((hint:gsub("^%l", string.upper)), ".\n") end
  end
end

M.progress_bar = progress_bar
M.error_json = error_json
M.write_rows = write_rows
M.brief = brief
M.number_text = number_text
M.yes_no = yes_no
M.write_leases = write_leases
M.table = text_table
M.holder_rows = holder_rows
M.REPORT_COLUMNS = REPORT_COLUMNS
M.outcome = outcome
M.outcomes = outcomes
M.other_outcomes = other_outcomes
M.write_plan = write_plan
M.write_report = write_report

return M
