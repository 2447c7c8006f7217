-- opentact apply FILE: a plan `opentact plan --out FILE` saved, applied
-- exactly, without a question, once the server is seen to be as it was
-- when planned; resumable with --journal.

local opentact = require("opentact")
local pretty = require("opentact.pretty")
local core = require("opentact.core")
local words = require("opentact.cli.options")
local common = require("opentact.cli.common")
local args = require("opentact.cli.args")
local credentials = require("opentact.cli.credentials")
local output = require("opentact.cli.output")

local tostring, pcall, error = tostring, pcall, error

local USAGE_EXIT, INTERRUPTED_EXIT = words.USAGE_EXIT, words.INTERRUPTED_EXIT
local REPORT_COLUMNS_TEXT, TSV_TEXT = words.REPORT_COLUMNS_TEXT, words.TSV_TEXT
local usage_error, fail, no_client, save_failed = common.usage_error, common.fail, common.no_client, common.save_failed
local shell_words, interrupted = common.shell_words, common.interrupted
local sizes, client_for = args.sizes, credentials.client_for
local progress_bar, write_report = output.progress_bar, output.write_report

local M = {}

M.help = {
  name = "apply", args = { "FILE" },
  summary = "apply a plan 'opentact plan --out FILE' saved, exactly and without a question; nothing if the "
    .. "server moved on since",
  text = { "Apply the plan in FILE, made by 'opentact plan --out FILE', without a question: first read the "
    .. "connection and the planned leases; if a planned lease's holder changed since the plan was made (or, "
    .. "with --exact, the connection holds a lease the plan did not see), change nothing, name what moved and "
    .. "exit 2 (make the plan again). Otherwise send exactly the requests the plan lists, no other lease, no "
    .. "lookup of a number, then read the connection back.",
    "A damaged or hand-edited FILE, a plan made by a newer lua-opentact, or one made for another URL is "
    .. "refused (exit 2), and nothing is sent.",
    "--journal FILE records each batch the server confirms. After Ctrl-C, a kill or a crash, the same command "
    .. "(the same plan and journal) applies only what the journal does not confirm; a journal of another plan, "
    .. "or one another apply is using, is refused (exit 2). Without a journal a plan partly applied is stale: make it again." },
  options = { "--journal", "--batch-size", "--concurrency", "--failed-file", "--format", "--json", "--all",
    "--no-color", "--url", "--profile", "--timeout", "--deadline", "--retries", "--verbose" },
  output = {
    { "table", "the plan, summary first, what was applied and what failed, and ok or not ok" },
    { "json", "the report, as sync's: {ok, dry_run, connection, add, remove, keep, conflicts, missing, applied, "
      .. "failed, unexpected, released, interrupted, unverified}" },
    { "jsonl", "a line per lease of the plan: an object with the csv columns as keys (null when empty)" },
    { "csv", "a header line, then a line per lease of the plan: " .. REPORT_COLUMNS_TEXT .. ", as sync's" },
    { "tsv", TSV_TEXT },
  },
  exit = {
    { 0, "the plan was applied and the read-back shows it (with --exact, nothing else on the connection)" },
    { 1, "some of it failed or was refused by the API (--failed-file, and the journal, say what), or the plan "
      .. "has conflicts or missing numbers, or the read-back shows something else" },
    { 2, USAGE_EXIT .. ", or nothing was changed: FILE is not a plan, is damaged or edited, was made by a newer "
      .. "lua-opentact or for another URL, --journal is the journal of another plan, in use by another apply or cannot be written, or "
      .. "the plan is stale (a planned lease moved since: make the plan again)" },
    { 130, INTERRUPTED_EXIT .. ": requests in flight are cancelled; the message names the command that "
      .. "finishes the job (with --journal, the same command)" },
  },
  examples = { "opentact apply plan.json --journal plan.journal" },
}

-- The input options `opentact plan` kept in a plan's note (a JSON array
-- of words), as shell words; nil for a note that is anything else. Each
-- word is checked, and quoted when written: a plan file may come from
-- anyone, and the words are shown as a command to run.
local function input_from_note(note)
  local w = type(note) == "string" and core.json_decode(note)
  if type(w) ~= "table" then return nil end
  for i = 1, #w do if type(w[i]) ~= "string" then return nil end end
  local i
  if w[1] == "--all-leases" then
    i = 2
  elseif (w[1] == "--numbers-file" or w[1] == "--leases-file" or w[1] == "--routes") and w[2] and w[2] ~= "" then
    i = 3
  else
    return nil
  end
  if w[i] == "--skip-invalid" then i = i + 1 end
  if w[i] == "--country-code" and type(w[i + 1]) == "string" and w[i + 1]:find("^[1-9]%d?%d?$") then i = i + 2 end
  if w[i] ~= nil or #w ~= i - 1 then return nil end
  -- words a terminal would show otherwise name other files: none
  local text = shell_words(w)
  return pretty.safe(text) == text and text or nil
end

-- The command that makes `plan` again, for a plan saved at `path`: what
-- the plan records (the connection, --exact, --move, and in its note the
-- input it was made from; a plan without one says "as before").
local function plan_again(plan, path, o)
  local w = { "opentact", "plan" }
  -- (a routes plan: its file names the targets)
  if not plan.targets then w[3] = plan.target_kind == "app" and "app:" .. plan.target or plan.target end
  local tail = {}
  if plan.options.exact then tail[#tail + 1] = "--exact" end
  if plan.options.move then tail[#tail + 1] = "--move" end
  if plan.options.autorenew ~= nil then
    tail[#tail + 1] = "--autorenew"
    tail[#tail + 1] = plan.options.autorenew and "on" or "off"
  end
  tail[#tail + 1] = "--out"
  tail[#tail + 1] = path
  if o.url then
    tail[#tail + 1] = "--url"
    tail[#tail + 1] = o.url
  end
  local input = input_from_note(plan.note) or (plan.targets and "--routes FILE (as before)"
    or "(--numbers-file FILE | --leases-file FILE | --all-leases: as before)")
  return shell_words(w) .. " " .. input .. " " .. shell_words(tail)
end

-- The command that applies `path` with the journal `journal`.
local function apply_again(path, journal, o)
  local w = { "opentact", "apply", path, "--journal", journal }
  if o.url then
    w[#w + 1] = "--url"
    w[#w + 1] = o.url
  end
  return shell_words(w)
end

-- What goes on after Ctrl-C: the same command with its journal; without
-- one the plan is partly applied and stale, so it is made again.
local function resume_text(plan, path, o)
  if o.journal then
    return "to finish, run the same command (what the journal confirms is neither read nor sent again): "
      .. apply_again(path, o.journal, o)
  end
  return "without a journal the plan cannot be resumed (applied in part, it is stale now): make it again, "
    .. "then apply it, with --journal so that it can be: " .. plan_again(plan, path, o)
end

function M.run(ctx, o)
  if #o.positional ~= 2 then
    return usage_error(ctx, "apply takes one plan file (made by 'opentact plan --out FILE')")
  end
  local path = o.positional[2]
  local batch_size, concurrency, opt_err = sizes(o)
  if not batch_size then return usage_error(ctx, opt_err) end
  local f, ferr = io.open(path, "rb")
  local text = f and f:read("*a")
  if f then f:close() end
  if not text then return usage_error(ctx, "cannot read the plan: " .. pretty.safe(tostring(ferr or path))) end
  local plan, err = opentact.decode_plan(text)
  if not plan then
    return fail(ctx, err, "opentact: " .. pretty.safe(path) .. ": " .. err.message .. "; nothing was changed", 2)
  end
  local client, why = client_for(ctx, o)
  if not client then return no_client(ctx, why) end
  local done, report
  done, report, err = pcall(client.apply, client, plan, { journal = o.journal, batch_size = batch_size,
    concurrency = concurrency, on_progress = ctx.is_terminal and o.format == "table" and progress_bar(ctx) or nil })
  client:close()
  if not done then
    -- Ctrl-C before the batches: the stale check's reads
    if not interrupted(report) then error(report, 0) end
    return fail(ctx, { kind = "interrupted", message = "interrupted" }, "opentact: interrupted before anything "
      .. "was sent; nothing was changed. Run the same command again: "
      .. (o.journal and apply_again(path, o.journal, o) or shell_words({ "opentact", "apply", path })), 130)
  end
  if not report then
    if err.kind == "stale" then
      return fail(ctx, err, tostring(err) .. "\nMake the plan again, review it, and apply that: "
        .. plan_again(plan, path, o), 2)
    end
    if err.kind == "invalid" and err.message:find("was made for ", 1, true) then
      return fail(ctx, err, tostring(err) .. " (--url or OPENTACT_URL); nothing was changed", 2)
    end
    return fail(ctx, err)
  end
  local saved = o.failed_file and save_failed(ctx, o.failed_file, report)
  write_report(ctx, o, report)
  if report.interrupted then
    ctx.stderr:write("opentact: interrupted: requests in flight were cancelled; the report above says what was "
      .. "applied", saved and "; the uuids not applied are in " .. o.failed_file or "", ". ",
      resume_text(plan, path, o), "\n")
    return 130
  end
  if #report.failed > 0 and o.format == "table" then
    ctx.stdout:write(o.journal and "Running the same command again applies what failed: "
      .. apply_again(path, o.journal, o) or "Applied in part, the plan is stale now: make it again to finish",
      saved and ("; the uuids that failed are in " .. o.failed_file) or "", ".\n")
  end
  return report.ok and 0 or 1
end

return M
