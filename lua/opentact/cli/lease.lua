-- opentact lease set NUMBER|UUID --autorenew on|off (and the feature
-- flags): change a lease's settings, and print the lease as the server
-- answers.

local pretty = require("opentact.pretty")
local words = require("opentact.cli.options")
local common = require("opentact.cli.common")
local credentials = require("opentact.cli.credentials")
local input = require("opentact.cli.input")
local output = require("opentact.cli.output")

local ipairs, tostring = ipairs, tostring
local concat = table.concat

local usage_error, fail, no_client = common.usage_error, common.fail, common.no_client

local M = {}

-- The settings, by option: the field of update_lease each sets.
local SETTINGS = {
  { "autorenew", "autorenew" }, { "voice", "voice" }, { "fax", "fax" }, { "sms", "sms" }, { "mms", "mms" },
  { "emergency", "emergency" },
}

M.help = {
  name = "lease", args = { "set", "NUMBER|UUID" },
  summary = "change a lease's settings: lease set NUMBER|UUID --autorenew on|off (--voice, --fax, --sms, --mms, "
    .. "--emergency)",
  text = { "Change the settings of one lease, given by its phone number (in any form, in pieces too) or its "
    .. "uuid: its automatic renewal (--autorenew on|off) and its features (--voice, --fax, --sms, --mms, "
    .. "--emergency, each on|off). Only what is given changes, in one request; the lease is printed as the "
    .. "server answers. Which SIP connection or control app holds a lease is not a setting: assign and sync "
    .. "change that." },
  options = { "--autorenew", "--voice", "--fax", "--sms", "--mms", "--emergency", "--country-code", "--format",
    "--json", "--url", "--profile", "--timeout", "--deadline", "--retries", "--verbose" },
  output = {
    { "table", "the lease: number, uuid, held by, autorenew" },
    { "json", "the lease as the server answered" },
    { "jsonl", "the lease on one line" },
    { "csv", "a header line, then the lease: " .. words.LEASE_COLUMNS_TEXT },
    { "tsv", words.TSV_TEXT },
  },
  exit = {
    { 0, "the lease was changed" },
    { 1, words.API_EXIT .. ", or no lease of the account has the number" },
    { 2, words.USAGE_EXIT .. ", such as a value other than on or off, or no setting given" },
    { 130, words.INTERRUPTED_EXIT },
  },
  examples = { "opentact lease set +1 212 555 0004 --autorenew off",
    "opentact lease set 66eb0a8a-571e-41b1-8f50-4d97275cfab7 --sms on --mms on" },
}

-- on/off as a boolean, or nil.
local ON_OFF = { on = true, off = false }

function M.run(ctx, o)
  if o.positional[2] ~= "set" then
    return usage_error(ctx, "give what to do: lease set NUMBER|UUID --autorenew on|off")
  end
  if #o.positional < 3 then return usage_error(ctx, "lease set takes a phone number or a lease uuid") end
  local fields, any = {}, false
  for _, s in ipairs(SETTINGS) do
    local v = o[s[1]]
    if v ~= nil then
      if ON_OFF[v] == nil then
        return usage_error(ctx, ("--%s takes on or off, not '%s'"):format(s[1], pretty.safe(tostring(v))))
      end
      fields[s[2]], any = ON_OFF[v], true
    end
  end
  if not any then return usage_error(ctx, "nothing to set: give --autorenew on|off, or a feature flag") end
  -- a number may come in pieces: opentact lease set +1 212 555 0004
  local text = concat(o.positional, " ", 3)
  local key, why = input.lease_arg(text, o.country_code)
  if not key then return usage_error(ctx, why) end
  local client, cwhy = credentials.client_for(ctx, o)
  if not client then return no_client(ctx, cwhy) end
  local lease, err = client:update_lease(key, fields)
  client:close()
  if not lease then return fail(ctx, err) end
  output.write_leases(ctx, o, { lease }, output.holder_rows)
  return 0
end

return M
