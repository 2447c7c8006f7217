-- opentact plan CONN: what sync would do, changing nothing: the plan,
-- summary first, and with --out kept as a file for review and for
-- `opentact apply`.

local core = require("opentact.core")
local words = require("opentact.cli.options")
local common = require("opentact.cli.common")
local input = require("opentact.cli.input")
local output = require("opentact.cli.output")

local USAGE_EXIT, INTERRUPTED_EXIT, EXAMPLE_CONN = words.USAGE_EXIT, words.INTERRUPTED_EXIT, words.EXAMPLE_CONN
local fail, shell_words, write_plan = common.fail, common.shell_words, output.write_plan

local M = {}

M.help = {
  name = "plan", args = { "CONN", "--numbers-file FILE | --leases-file FILE | --all-leases" },
  required = { "--numbers-file", "--leases-file", "--all-leases" },
  summary = "print what sync would do, changing nothing; --out FILE keeps the plan for review and for "
    .. "'opentact apply FILE'",
  text = { "Plan what 'opentact sync' would do with the same arguments, and change nothing: read the "
    .. "connection and the leases FILE names, and print the plan, summary first (+ attach, - detach, ! held "
    .. "elsewhere, ? not in the account), refused as sync refuses it. The plan records who held each lease it "
    .. "names.",
    "With --out FILE the plan is also written to FILE (JSON with a content hash; no token), whole or not at "
    .. "all. Review it, have it approved, and apply exactly that plan later with 'opentact apply FILE': "
    .. "if a planned lease has moved since, apply changes nothing. A plan is for the URL it was made with.",
    "With --routes FILE instead of CONN and its leases, one plan over every target FILE names (a CSV line "
    .. "per route, NUMBER_OR_LEASE,TARGET[,AUTORENEW]): each target's lines, a lease routed from one of them "
    .. "to another as '~ NUMBER FROM -> TO' (a move: no --move needed), one held by a connection or app FILE "
    .. "does not name a conflict unless --move; --exact detaches from the targets FILE names what it does not "
    .. "route there. Every problem of FILE is named with its line first (exit 2, nothing planned): a line without "
    .. "a lease, a target no connection or app has (or several have), a lease routed to two targets.",
    "On a terminal the plan is in colour unless --no-color or NO_COLOR is set, and a long plan stops after a "
    .. "screenful with the count of the rest, unless --all; sent to a file or a pipe, and in --out, it has every "
    .. "line." },
  options = { "--numbers-file", "--leases-file", "--all-leases", "--routes", "--exact", "--move", "--autorenew",
    "--out",
    "--concurrency",
    "--skip-invalid", "--all", "--no-color", "--country-code", "--url", "--profile", "--timeout", "--deadline", "--retries",
    "--verbose" },
  exit = {
    { 0, "nothing blocks the plan (with --out, it was written)" },
    { 1, "the plan has conflicts (held elsewhere: --move takes them) or missing numbers (it is still printed, "
      .. "and written with --out), the API refused or failed a read, or --out could not be written" },
    { 2, USAGE_EXIT .. ", a bad line in FILE, or a plan sync refuses (an empty FILE with --exact, --exact when "
      .. "none of FILE's leases is in the account, or a number without its country code that --exact would "
      .. "detach): nothing is written" },
    { 130, INTERRUPTED_EXIT .. ": nothing was changed or written" },
  },
  examples = { "opentact plan " .. EXAMPLE_CONN .. " \\\n    --numbers-file numbers.txt --exact --out plan.json",
    "opentact apply plan.json --journal plan.journal",
    "opentact plan --routes routes.csv --exact --out routes-plan.json" },
}

function M.run(ctx, o)
  local client, plan, hint = input.plan(ctx, o)
  if not client then return plan end
  client:close()
  if o.out then
    -- a file made beside it, flushed to disk and renamed over it: a reader
    -- (or apply) sees the old file or the whole plan, never a part
    local text, err = plan:encode()
    if not text then return fail(ctx, err) end
    local ok, werr = core.write_private(o.out, text .. "\n")
    if not ok then
      return fail(ctx, { kind = "invalid", message = "--out: " .. werr }, "opentact: --out: " .. werr
        .. "; the plan was not written", 1)
    end
  end
  write_plan(ctx, o, plan)
  if hint then ctx.stdout:write((hint:gsub("^%l", string.upper)), ".\n") end
  if o.out then
    ctx.stdout:write("The plan is in ", o.out, ". Review it; apply exactly this plan with: ",
      shell_words({ "opentact", "apply", o.out, "--journal", o.out .. ".journal" }), "\n")
  end
  return plan.ok and 0 or 1
end

return M
