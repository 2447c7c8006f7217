-- opentact sync CONN: make the connection hold the leases of a file (or every
-- lease of the account): plan, apply, read back.

local opentact = require("opentact")
local pretty = require("opentact.pretty")
local words = require("opentact.cli.options")
local common = require("opentact.cli.common")
local args = require("opentact.cli.args")
local input = require("opentact.cli.input")
local credentials = require("opentact.cli.credentials")
local output = require("opentact.cli.output")

local type, tostring, ipairs = type, tostring, ipairs
local format, concat, lower = string.format, table.concat, string.lower

local USAGE_EXIT, BULK_INTERRUPTED_EXIT, EXAMPLE_CONN = words.USAGE_EXIT, words.BULK_INTERRUPTED_EXIT, words.EXAMPLE_CONN
local REPORT_COLUMNS_TEXT, TSV_TEXT = words.REPORT_COLUMNS_TEXT, words.TSV_TEXT
local usage_error, fail, no_client = common.usage_error, common.fail, common.no_client
local excerpt, problem_list, save_failed = common.excerpt, common.problem_list, common.save_failed
local sizes, read_leases, client_for = args.sizes, input.read_leases, credentials.client_for
local any_local, country_hint = input.any_local, input.country_hint
local json, error_json, write_rows, progress_bar = output.json, output.error_json, output.write_rows, output.progress_bar
local brief, briefs, REPORT_COLUMNS = output.brief, output.briefs, output.REPORT_COLUMNS
local outcome, outcomes, other_outcomes = output.outcome, output.outcomes, output.other_outcomes

local M = {}

M.help = {
  name = "sync", args = { "CONN", "--numbers-file FILE | --leases-file FILE | --all-leases" },
  required = { "--numbers-file", "--leases-file", "--all-leases" },
  summary = "make the connection hold the leases of the numbers in FILE: prints the plan (+ attach, - detach, "
    .. "! held elsewhere, ? not in the account), applies it, and reads the connection back to check it",
  text = { "Make the SIP connection CONN hold the leases of the phone numbers in FILE (--numbers-file), of the "
    .. "lease uuids in FILE (--leases-file) or every lease of the account (--all-leases): print the plan "
    .. "(+ attach, - detach, ! held elsewhere, ? not in the account), apply it unless --dry-run, and read the "
    .. "connection back to check it. Running the same sync again plans from what the connection holds then, "
    .. "and finishes the job.",
    "When every number of FILE is missing from the account and some are written without a leading + "
      .. "(2125550004), the output says they may lack their country code: --country-code 1 (or "
      .. "OPENTACT_COUNTRY_CODE=1) puts it in front of every number of at most ten digits written so." },
  options = { "--numbers-file", "--leases-file", "--all-leases", "--exact", "--move", "--dry-run", "--batch-size",
    "--concurrency", "--failed-file", "--skip-invalid", "--format", "--json", "--country-code", "--url", "--profile",
    "--timeout", "--retries", "--verbose" },
  output = {
    { "table", "the plan, a line per change, its counts, what was applied and what failed, and ok or not ok" },
    { "json", "the report: {ok, dry_run, connection, add, remove, keep, conflicts, missing, applied, failed, "
      .. "unexpected, released, interrupted, unverified, hint}, each lease as {uuid, number, sip_connection, "
      .. "sip_control_app}; unexpected: with --exact, the uuids the read-back shows on the connection that "
      .. "were not asked for; hint, when every number is missing and some are written without a country code "
      .. "(and no --country-code was given): what may be wrong" },
    { "jsonl", "a line per lease of the plan: an object with the csv columns as keys (null when empty)" },
    { "csv", "a header line, then a line per lease of the plan: " .. REPORT_COLUMNS_TEXT .. "; action is add, "
      .. "remove, keep or none; result is applied, failed, planned (a dry run), unchanged (keep), conflict (held "
      .. "elsewhere: --move takes it), missing (not in the account), not_applied (stopped first) or unexpected "
      .. "(action none: with --exact, on the connection at the read-back and not asked for)" },
    { "tsv", TSV_TEXT },
  },
  exit = {
    { 0, "the connection holds what was asked, with --exact nothing else (a dry run: nothing blocks the plan)" },
    { 1, "conflicts, missing numbers, something the API refused or failed, a connection that could not be "
      .. "read back, or with --exact leases on it that were not asked for (attached meanwhile: listed)" },
    { 2, USAGE_EXIT .. ", a bad line in FILE, an empty FILE with --exact, or --exact when none of FILE's "
      .. "leases is in the account and the connection holds some, or when a number in FILE that is not in the "
      .. "account is the end of a number it would detach (given without its country code: refused, --dry-run "
      .. "too: nothing is changed)" },
    { 130, BULK_INTERRUPTED_EXIT },
  },
  examples = { "opentact sync " .. EXAMPLE_CONN .. " \\\n    --numbers-file numbers.txt --exact --dry-run",
    "opentact sync " .. EXAMPLE_CONN .. " --all-leases --move" },
}

-- A sync report's rows: a row per lease of the plan, with its outcome.
local function sync_rows(report)
  local results, rows, done = outcomes(report), {}, {}
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
      rows[#rows + 1] = outcome(b.uuid, b.number, kind, result, r ~= true and r or nil)
    end
  end
  for _, l in ipairs(report.conflicts) do
    local b = brief(l)
    local holder = b.sip_control_app and "SIP control app " .. b.sip_control_app
      or b.sip_connection and "SIP connection " .. b.sip_connection or "another holder"
    rows[#rows + 1] = outcome(b.uuid, b.number, "add", "conflict", nil, "held by " .. holder .. "; --move takes it")
  end
  for _, x in ipairs(report.missing) do
    local uuid, number
    if opentact.is_uuid(x) then
      uuid = x
    else
      number = opentact.number(tostring(x)) or x
    end
    rows[#rows + 1] = outcome(uuid, number, "add", "missing", nil, "not in the account")
  end
  for _, u in ipairs(report.unexpected) do
    rows[#rows + 1] = outcome(u, nil, "none", "unexpected", nil, "on the connection at the read-back, not asked for")
  end
  return other_outcomes(report, done, rows)
end

function M.run(ctx, o)
  if #o.positional ~= 2 then return usage_error(ctx, "sync takes one connection uuid") end
  local given = (o.numbers_file and 1 or 0) + (o.leases_file and 1 or 0) + (o.all_leases and 1 or 0)
  if given ~= 1 then return usage_error(ctx, "sync takes one of --numbers-file, --leases-file and --all-leases") end
  local batch_size, concurrency, opt_err = sizes(o)
  if not batch_size then return usage_error(ctx, opt_err) end
  local desired
  if o.all_leases then
    desired = { all_leases = true }
  else
    -- every line that names no lease, or a lease of the other kind, is
    -- named in one run: refused, or left out with --skip-invalid. Numbers
    -- the account has no lease for stay in the plan (? missing): left
    -- out, a lookup that failed for a moment would make --exact detach
    -- a lease that was asked for
    local skipped = o.skip_invalid and {} or nil
    local path = o.numbers_file or o.leases_file
    local where, texts, problems, at = {}, {}, {}, { leases = {} }
    local got, err = read_leases(path, ctx.stdin, problems, where, texts, at, o.country_code)
    if not got then return usage_error(ctx, err) end
    local want_numbers = o.numbers_file ~= nil
    local list = {}
    for k, x in ipairs(got) do
      if (type(x) == "number") == want_numbers then
        -- as written in the file: the plan names missing numbers so
        list[#list + 1] = texts[k]
      else
        problems[#problems + 1] = format("%s: %s: %s", pretty.safe(where[k]), want_numbers
          and "a lease uuid in --numbers-file (give uuids with --leases-file)"
          or "a phone number in --leases-file (give numbers with --numbers-file)", excerpt(texts[k]))
        at[#problems] = at.leases[k]
      end
    end
    -- in the file's order
    local order = {}
    for i = 1, #problems do order[i] = i end
    table.sort(order, function(a, b) return at[a] < at[b] end)
    for i, k in ipairs(order) do order[i] = problems[k] end
    if #order > 0 and not skipped then return usage_error(ctx, problem_list(order, "bad lines")) end
    for _, p in ipairs(order) do skipped[#skipped + 1] = p end
    if o.exact and #order > 0 then
      -- a line left out names a lease nobody can tell: with --exact it
      -- would be detached, a change the file never asked for
      return usage_error(ctx, problem_list(order, "bad lines") .. "\n--exact with --skip-invalid detaches the "
        .. "leases those lines meant: fix them, or sync without --exact")
    end
    for _, w in ipairs(skipped or {}) do ctx.stderr:write("opentact: skipped ", w, "\n") end
    if #list == 0 and (o.exact or #(skipped or {}) > 0) then
      -- with --exact an empty list detaches everything: never by accident
      return usage_error(ctx, path .. " names no valid lease" .. (o.exact and ": with --exact that would "
        .. "detach every lease of the connection (use assign --remove-file for that)" or ""))
    end
    desired = want_numbers and { numbers = list } or { leases = list }
  end
  local client, why = client_for(ctx, o)
  if not client then return no_client(ctx, why) end
  local report, err = client:sync(o.positional[2], desired, {
    exact = o.exact or false, move = o.move or false, dry_run = o.dry_run or false,
    batch_size = batch_size, concurrency = concurrency,
    on_progress = ctx.is_terminal and o.format == "table" and progress_bar(ctx) or nil,
  })
  client:close()
  -- every number missing, some written without a country code, none
  -- given: most likely the numbers lack it (said, with the flag that adds it)
  local hint
  if desired.numbers and not o.country_code and any_local(desired.numbers) then
    if not report then
      -- with --exact, the library refuses such a plan: it would detach all
      if err.kind == "invalid" and tostring(err.message):find("^none of the") then
        hint = country_hint(#desired.numbers)
      end
    elseif #report.missing > 0 and #report.add + #report.keep + #report.conflicts == 0 then
      hint = country_hint(#report.missing)
    end
  end
  if not report then
    local status = fail(ctx, err)
    if hint then ctx.stderr:write("opentact: ", hint, "\n") end
    return status
  end
  local saved = o.failed_file and not o.dry_run and save_failed(ctx, o.failed_file, report)
  if o.json then
    local failed = {}
    for i, f in ipairs(report.failed) do failed[i] = { add = f.add, remove = f.remove, err = error_json(f.err) } end
    ctx.stdout:write(json({ ok = report.ok, dry_run = report.dry_run, connection = report.connection,
      add = briefs(report.add), remove = briefs(report.remove), keep = briefs(report.keep),
      conflicts = briefs(report.conflicts), missing = briefs(report.missing), applied = report.applied,
      failed = failed, unexpected = report.unexpected, released = report.released,
      interrupted = report.interrupted and tostring(report.interrupted),
      unverified = report.unverified and error_json(report.unverified) or nil, hint = hint }), "\n")
  elseif o.format ~= "table" then
    write_rows(ctx, o.format, REPORT_COLUMNS, sync_rows(report))
    if report.unverified then ctx.stderr:write("opentact: not verified: ", tostring(report.unverified), "\n") end
    if hint then ctx.stderr:write("opentact: ", hint, "\n") end
  else
    ctx.stdout:write(concat(pretty.plan_lines(report, nil, { move = "--move" }), "\n"), "\n")
    if hint then ctx.stdout:write(hint:gsub("^%l", string.upper), ".\n") end
    if #report.failed > 0 then
      ctx.stdout:write("Running the same sync again plans from what the connection holds now and finishes the job",
        saved and ("; the uuids that failed are in " .. o.failed_file) or "", ".\n")
    end
  end
  if report.interrupted then
    ctx.stderr:write("opentact: interrupted: requests in flight were cancelled; the report above says what was applied\n")
    return 130
  end
  return report.ok and 0 or 1
end

return M
