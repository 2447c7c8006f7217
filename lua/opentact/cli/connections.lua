-- opentact connections: the account's SIP connections.

local words = require("opentact.cli.options")
local holders = require("opentact.cli.holders")

local M = {}

M.help = {
  name = "connections", args = {},
  summary = "list the account's SIP connections (names, uuids), with --count the leases each holds",
  text = { "List the account's SIP connections: uuid, name and whether active. A connection's name is what "
    .. "CONN may be in the other commands (app:NAME names a control app; see 'opentact apps'). Names are not "
    .. "unique: a name two connections have is refused there, and their uuids tell them apart. With --count, "
    .. "each connection's leases are counted: one list per connection, --concurrency at once (default 8)." },
  options = { "--count", "--concurrency", "--format", "--json", "--all", "--url", "--profile", "--timeout",
    "--retries", "--verbose" },
  output = {
    { "table", "a line per connection: uuid, name, state (active or inactive), with --count leases" },
    { "json", "the API's connections, every field, as an array (with --count, each with leases)" },
    { "jsonl", "one connection object per line" },
    { "csv", "a header line, then a line per connection: uuid, name, is_active (with --count, leases)" },
    { "tsv", words.TSV_TEXT },
  },
  exit = {
    { 0, "the connections were printed (and counted)" },
    { 1, words.API_EXIT .. "; with --count, a connection whose leases could not be listed (named on "
      .. "standard error, its count empty)" },
    { 2, words.USAGE_EXIT },
    { 130, words.INTERRUPTED_EXIT },
  },
  examples = { "opentact connections", "opentact connections --count --format csv > trunks.csv" },
}

function M.run(ctx, o)
  return holders.show(ctx, o, "connection")
end

return M
