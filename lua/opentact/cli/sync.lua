-- opentact sync CONN: make the connection hold the leases of a file (or every
-- lease of the account): plan, show the plan, ask before a detach or a move
-- (or want --yes), apply exactly that plan, read back.

local words = require("opentact.cli.options")
local common = require("opentact.cli.common")
local input = require("opentact.cli.input")
local output = require("opentact.cli.output")

local tostring, ipairs, pcall, error = tostring, ipairs, pcall, error

local USAGE_EXIT, INTERRUPTED_EXIT, EXAMPLE_CONN = words.USAGE_EXIT, words.INTERRUPTED_EXIT, words.EXAMPLE_CONN
local REPORT_COLUMNS_TEXT, TSV_TEXT = words.REPORT_COLUMNS_TEXT, words.TSV_TEXT
local fail, save_failed = common.fail, common.save_failed
local shell_words, changes_asked, interrupted = common.shell_words, common.changes_asked, common.interrupted
local progress_bar, write_plan, write_report = output.progress_bar, output.write_plan, output.write_report

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
    "What is applied is exactly the plan shown: a plan that detaches a lease or takes one from another "
    .. "connection or control app (--move) is applied only after a yes. On a terminal (standard input and "
    .. "output, --format table) sync shows the plan, summary first, and asks \"Apply? [y/N]\": y or yes goes on; "
    .. "anything else, the end of input or Ctrl-C changes nothing. Elsewhere such a plan needs --yes, or sync "
    .. "prints it and changes nothing (exit 2). A plan that only attaches free leases is applied without a "
    .. "question. If a planned lease moved before the plan is applied, nothing is changed (exit 2): run the same "
    .. "sync again. 'opentact plan' and 'opentact apply' split the two steps, for a review in between.",
    "With --routes FILE instead of CONN and its leases: the plan of 'opentact plan --routes FILE', over every "
    .. "target FILE names, applied as one (a move between two of them, '~', asks as a move does).",
    "On a terminal the plan is in colour (+ green, - red, ! yellow, the holder a lease moves from in yellow), "
    .. "unless --no-color or NO_COLOR is set, and a long plan stops after a screenful (LINES, else tput lines, "
    .. "else 24) with the count of the rest, unless --all; sent to a file or a pipe it has every line.",
    "When every number of FILE is missing from the account and some are written without a leading + "
      .. "(2125550004), the output says they may lack their country code: --country-code 1 (or "
      .. "OPENTACT_COUNTRY_CODE=1) puts it in front of every number of at most ten digits written so." },
  options = { "--numbers-file", "--leases-file", "--all-leases", "--routes", "--exact", "--move", "--autorenew", "--dry-run", "--yes",
    "--batch-size", "--concurrency", "--failed-file", "--skip-invalid", "--format", "--json", "--all", "--no-color",
    "--country-code", "--url", "--profile", "--timeout", "--deadline", "--retries", "--verbose" },
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
      .. "too: nothing is changed); nothing changed either when the plan detaches or moves leases and the "
      .. "answer was not y (or, not on a terminal, --yes was not given), or when a planned lease moved before "
      .. "the plan was applied (stale: run the same sync again)" },
    { 130, INTERRUPTED_EXIT .. ": requests in flight are cancelled, and the report and --failed-file still say "
      .. "what was applied; Ctrl-C at the question changes nothing" },
  },
  examples = { "opentact sync " .. EXAMPLE_CONN .. " \\\n    --numbers-file numbers.txt --exact --dry-run",
    "opentact sync " .. EXAMPLE_CONN .. " --all-leases --move",
    "opentact sync " .. EXAMPLE_CONN .. " --numbers-file numbers.txt --exact --yes   # in a script",
    "opentact sync --routes routes.csv --exact" },
}

-- The command that runs this sync again, as typed words.
local function again(o)
  local w = { "opentact", "sync", o.positional[2] }
  if o.routes then w[#w + 1] = "--routes"; w[#w + 1] = o.routes end
  if o.numbers_file then w[#w + 1] = "--numbers-file"; w[#w + 1] = o.numbers_file end
  if o.leases_file then w[#w + 1] = "--leases-file"; w[#w + 1] = o.leases_file end
  if o.all_leases then w[#w + 1] = "--all-leases" end
  for _, flag in ipairs({ "exact", "move", "skip_invalid", "yes", "all", "no_color" }) do
    if o[flag] then w[#w + 1] = "--" .. flag:gsub("_", "-") end
  end
  for _, name in ipairs({ "batch_size", "concurrency", "failed_file", "url", "autorenew" }) do
    if o[name] then
      w[#w + 1] = "--" .. name:gsub("_", "-")
      w[#w + 1] = o[name]
    end
  end
  if o.format ~= "table" then w[#w + 1] = "--format=" .. o.format end
  return shell_words(w)
end

-- The answer to "Apply? [y/N]" on the terminal: the line typed, or nil at
-- the end of input. A shell reads it, so that Ctrl-C ends the wait at once
-- (Lua's own read is restarted after the signal on most Lua versions, and
-- would wait for Enter); the interrupt then reaches this process too.
local function ask(ctx, question)
  ctx.stdout:write(question)
  if ctx.stdout.file and ctx.stdout.file.flush then ctx.stdout.file:flush() end
  if ctx.ask then return ctx.ask() end
  if ctx.stdin ~= io.stdin then return ctx.stdin:read("*l") end
  local p = io.popen("IFS= read -r answer && printf '%s\\n' \"$answer\"")
  local line = p and p:read("*l")
  if p then p:close() end
  return line
end

function M.run(ctx, o)
  -- the plan, shown; then exactly that plan applied: what was shown is
  -- what is done, and the stale check refuses it when the server moved
  -- on since (someone changed it while the question was on the screen)
  local client, plan, hint, batch_size, concurrency = input.plan(ctx, o)
  if not client then return plan end
  if o.dry_run then
    client:close()
    write_report(ctx, o, plan, { hint = hint })
    return plan.ok and 0 or 1
  end
  local detach, move, stop = changes_asked(plan)
  local asked = detach + move + stop > 0 and not o.yes
  local shown = false
  if asked then
    local terminal = ctx.stdin_terminal and ctx.stdout_terminal and o.format == "table"
    if o.format == "table" then
      write_plan(ctx, o, plan, { reserve = 1 })
      shown = true
    end
    local what = common.changes_text(detach, move, stop)
    if not terminal then
      client:close()
      return fail(ctx, { kind = "usage", message = "the plan " .. what .. ": confirmation needed" },
        "opentact: the plan " .. what .. "; nothing was changed. Standard input or output is not a terminal, so "
        .. "nothing was asked: give --yes to apply it as shown (" .. again(o) .. " --yes)", 2)
    end
    local done, answer = pcall(ask, ctx, "The plan " .. what .. ". Apply? [y/N] ")
    if not done then
      client:close()
      if interrupted(answer) then
        ctx.stdout:write("\n")
        return fail(ctx, { kind = "interrupted", message = "interrupted at the question" },
          "opentact: interrupted: nothing was changed", 130)
      end
      error(answer, 0)
    end
    answer = answer and answer:lower():match("^%s*(.-)%s*$")
    if answer ~= "y" and answer ~= "yes" then
      client:close()
      if answer == nil then ctx.stdout:write("\n") end
      return fail(ctx, { kind = "usage", message = "not confirmed" }, "opentact: not applied (the answer was "
        .. (answer == nil and "the end of input" or "not y") .. "); nothing was changed", 2)
    end
  end
  local report, err
  -- (apply checks what changed since the plan, however long the answer took)
  report, err = client:apply(plan, { batch_size = batch_size, concurrency = concurrency,
    on_progress = ctx.is_terminal and o.format == "table" and progress_bar(ctx) or nil })
  client:close()
  if not report then
    if err.kind == "stale" then
      return fail(ctx, err, tostring(err) .. "\nRun the same command again: it plans from what the connection "
        .. "holds now (" .. again(o) .. ")", 2)
    end
    return fail(ctx, err)
  end
  local saved = o.failed_file and save_failed(ctx, o.failed_file, report)
  write_report(ctx, o, report, { after_only = shown, hint = hint })
  if o.format == "table" and #report.failed > 0 then
    ctx.stdout:write("Running the same sync again plans from what the connection holds now and finishes the job",
      saved and ("; the uuids that failed are in " .. o.failed_file) or "", ".\n")
  end
  if report.interrupted then
    ctx.stderr:write("opentact: interrupted: requests in flight were cancelled; the report above says what was "
      .. "applied. Running the same command again finishes the job: ", again(o), "\n")
    return 130
  end
  return report.ok and 0 or 1
end
return M
