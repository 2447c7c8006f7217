-- opentact find NUMBER|MASK: print the lease of a phone number, or every lease whose
-- number matches a mask, with who holds it.

local pretty = require("opentact.pretty")
local words = require("opentact.cli.options")
local common = require("opentact.cli.common")
local credentials = require("opentact.cli.credentials")
local input = require("opentact.cli.input")
local output = require("opentact.cli.output")

local concat = table.concat

local ROWS, USAGE_EXIT, INTERRUPTED_EXIT = words.ROWS, words.USAGE_EXIT, words.INTERRUPTED_EXIT
local LEASE_COLUMNS_TEXT, TSV_TEXT = words.LEASE_COLUMNS_TEXT, words.TSV_TEXT
local usage_error, fail, no_client = common.usage_error, common.fail, common.no_client
local client_for, with_country = credentials.client_for, input.with_country
local write_leases = output.write_leases

local M = {}

M.help = {
  name = "find", args = { "NUMBER|MASK" },
  summary = "print the lease of a phone number, or every lease whose number matches a mask "
    .. "(* any digits, % one digit: '+1 212 555 *')",
  text = { "Print the lease of a phone number, typed in any form (in pieces too: opentact find +1 212 555 0004), "
    .. "or every lease whose number matches a mask (* any digits, % one digit: '+1 212 555 *'), with who holds it.",
    "--country-code N (or OPENTACT_COUNTRY_CODE) puts N in front of a number of at most ten digits written "
      .. "without a leading + (a mask is taken as written); without it, a number written so that matches no "
      .. "lease gets a hint that it may lack its country code." },
  options = { "--format", "--json", "--all", "--country-code", "--url", "--profile", "--timeout", "--deadline", "--retries",
    "--verbose" },
  output = {
    { "table", "a line per lease: number, uuid, held by (connection UUID, app UUID or -), autorenew; on a "
      .. "terminal the first " .. ROWS .. " (--all: every one)" },
    { "json", "the leases: an array of objects, empty when nothing matches" },
    { "jsonl", "one lease object per line" },
    { "csv", "a header line, then a line per lease: " .. LEASE_COLUMNS_TEXT },
    { "tsv", TSV_TEXT },
  },
  exit = {
    { 0, "at least one lease matches" },
    { 1, "no lease matches, or the API refused or failed" },
    { 2, USAGE_EXIT .. ", such as a bad number or mask" },
    { 130, INTERRUPTED_EXIT },
  },
  examples = { "opentact find +1 212 555 0004", "opentact find '+1 212 555 *' --format jsonl" },
}


function M.run(ctx, o)
  if #o.positional < 2 then return usage_error(ctx, "find takes a phone number or a mask") end
  -- a number may come in pieces: opentact find +1 212 555 0004
  local text = concat(o.positional, " ", 2)
  -- a mask is taken as written; a number may get its country code
  if not text:find("[*%%]") then text = with_country(text, o.country_code) end
  local client, why = client_for(ctx, o)
  if not client then return no_client(ctx, why) end
  local leases, err
  if text:find("[*%%]") then
    leases, err = client:search_all({ tn = text })
  else
    local lease
    lease, err = client:lease(text)
    if lease then
      leases = { lease }
    elseif err.kind == "not_found" then
      leases, err = {}, nil
    end
  end
  client:close()
  if not leases then return fail(ctx, err) end
  -- a number without its country code may be why nothing matches
  local hint = #leases == 0 and not o.country_code and not text:find("[*%%]") and input.any_local({ text })
    and input.country_hint(1)
  if o.format == "table" and #leases == 0 then
    ctx.stdout:write("no lease of the account matches ", pretty.safe(text), "\n")
    if hint then ctx.stdout:write(hint:gsub("^%l", string.upper), ".\n") end
  else
    if hint then ctx.stderr:write("opentact: ", hint, "\n") end
    write_leases(ctx, o, leases, output.holder_rows)
  end
  return #leases > 0 and 0 or 1
end

return M
