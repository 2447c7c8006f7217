-- opentact list CONN: print the leases a SIP connection holds.

local pretty = require("opentact.pretty")
local words = require("opentact.cli.options")
local common = require("opentact.cli.common")
local credentials = require("opentact.cli.credentials")
local output = require("opentact.cli.output")

local ipairs = ipairs

local ROWS, USAGE_EXIT, INTERRUPTED_EXIT, API_EXIT = words.ROWS, words.USAGE_EXIT, words.INTERRUPTED_EXIT, words.API_EXIT
local LEASE_COLUMNS_TEXT, TSV_TEXT, EXAMPLE_CONN = words.LEASE_COLUMNS_TEXT, words.TSV_TEXT, words.EXAMPLE_CONN
local usage_error, fail, no_client, target = common.usage_error, common.fail, common.no_client, common.target
local client_for, write_leases = credentials.client_for, output.write_leases

local M = {}

M.help = {
  name = "list", args = { "CONN" },
  summary = "print the leases of a connection or control app: uuid, number, expiry, autorenew",
  text = { "Print the leases that CONN holds: a SIP connection (its uuid or name) or a SIP control app "
    .. "(app:NAME or app:UUID)." },
  options = { "--format", "--json", "--all", "--url", "--profile", "--timeout", "--deadline", "--retries", "--verbose" },
  output = {
    { "table", "a line per lease: uuid, number, expires, autorenew; on a terminal the first " .. ROWS
      .. " (--all: every one)" },
    { "json", "the API's leases: an array of objects" },
    { "jsonl", "one lease object per line" },
    { "csv", "a header line, then a line per lease: " .. LEASE_COLUMNS_TEXT },
    { "tsv", TSV_TEXT },
  },
  exit = {
    { 0, "the leases were printed" },
    { 1, API_EXIT },
    { 2, USAGE_EXIT .. ", such as an invalid uuid, or a name no connection or app has, or several have" },
    { 130, INTERRUPTED_EXIT },
  },
  examples = { "opentact list " .. EXAMPLE_CONN, "opentact list " .. EXAMPLE_CONN .. " --format csv > leases.csv" },
}

function M.run(ctx, o)
  if #o.positional ~= 2 then return usage_error(ctx, "list takes one connection or control app") end
  local client, why = client_for(ctx, o)
  if not client then return no_client(ctx, why) end
  local t, status = target(ctx, client, o.positional[2])
  if not t then
    client:close()
    return status
  end
  local leases, err = client:list(t)
  client:close()
  if not leases then
    local exit = fail(ctx, err)
    common.target_hint(ctx, o.positional[2], err)
    return exit
  end
  write_leases(ctx, o, leases, function(list)
    local rows = {}
    for i, l in ipairs(list) do rows[i] = pretty.row(l) end
    return pretty.COLUMNS, rows
  end)
  return 0
end

return M
