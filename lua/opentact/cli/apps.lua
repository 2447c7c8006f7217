-- opentact apps: the account's SIP control apps.

local words = require("opentact.cli.options")
local holders = require("opentact.cli.holders")

local M = {}

M.help = {
  name = "apps", args = {},
  summary = "list the account's SIP control apps (names, uuids), with --count the leases each holds",
  text = { "List the account's SIP control apps (programmable call flows): uuid, name and whether active. "
    .. "In the other commands, app:NAME or app:UUID makes a control app CONN: a lease attached to it goes to "
    .. "its call flow instead of a SIP connection. With --count, each app's leases are counted: one list per "
    .. "app, --concurrency at once (default 8)." },
  options = { "--count", "--concurrency", "--format", "--json", "--all", "--url", "--profile", "--timeout",
    "--retries", "--verbose" },
  output = {
    { "table", "a line per control app: uuid, name, state (active or inactive), with --count leases" },
    { "json", "the API's control apps, every field, as an array (with --count, each with leases)" },
    { "jsonl", "one control app object per line" },
    { "csv", "a header line, then a line per control app: uuid, name, is_active (with --count, leases)" },
    { "tsv", words.TSV_TEXT },
  },
  exit = {
    { 0, "the control apps were printed (and counted)" },
    { 1, words.API_EXIT .. "; with --count, an app whose leases could not be listed (named on standard "
      .. "error, its count empty)" },
    { 2, words.USAGE_EXIT },
    { 130, words.INTERRUPTED_EXIT },
  },
  examples = { "opentact apps", "opentact apps --count --json" },
}

function M.run(ctx, o)
  return holders.show(ctx, o, "app")
end

return M
