-- opentact whoami: which URL and account commands would use, where their
-- token comes from, and until when it is valid; never the token. Nothing
-- is sent: what a token says of itself is read from it (its JWT claims).

local core = require("opentact.core")
local pretty = require("opentact.pretty")
local words = require("opentact.cli.options")
local common = require("opentact.cli.common")
local credentials = require("opentact.cli.credentials")
local output = require("opentact.cli.output")

local type, tostring, ipairs = type, tostring, ipairs
local format = string.format

local USAGE_EXIT, TSV_TEXT = words.USAGE_EXIT, words.TSV_TEXT
local usage_error = common.usage_error
local source, effective_url, utc_time, known_time = credentials.source, credentials.effective_url,
  credentials.utc_time, credentials.known_time
local json, write_rows, error_json, NULL = output.json, output.write_rows, output.error_json, output.NULL

local M = {}

-- The fields whoami prints, in the order of its csv columns.
local COLUMNS = { "url", "url_from", "profile", "account", "token_from", "token_file", "expires", "expires_at" }

M.help = {
  name = "whoami", args = {},
  summary = "say which URL and account commands would use, where the token comes from, and until when it is "
    .. "valid (never the token; no request is sent)",
  text = { "Say what the other commands would use, without sending a request: the API base URL and where it "
    .. "comes from (--url, OPENTACT_URL, the profile's saved token, or Opentact's), the profile, the account "
    .. "(the email or user a JWT names, the email of OPENTACT_EMAIL; unknown for an opaque API token), where "
    .. "the token comes from (OPENTACT_TOKEN, a login with OPENTACT_EMAIL and OPENTACT_PASSWORD at each "
    .. "command, or the file 'opentact login' saved, named) and until when it is valid (the JWT's exp; "
    .. "unknown for a token that does not say). The token itself is never printed." },
  options = { "--url", "--profile", "--format", "--json", "--verbose" },
  output = {
    { "table", "a line each: URL, profile, account, token, valid until" },
    { "json", "{ok, url, url_from, profile, account, token_from, token_file, expires, expires_at, error}: "
      .. "url_from is --url, OPENTACT_URL, profile or default; token_from OPENTACT_TOKEN, login, file or null; "
      .. "expires the JWT's exp (seconds since 1970) or null; error, when not ok, why commands would refuse" },
    { "jsonl", "one line: an object with the csv columns as keys (null when empty)" },
    { "csv", "a header line, then one line: " .. table.concat(COLUMNS, ", ") },
    { "tsv", TSV_TEXT },
  },
  exit = {
    { 0, "commands have credentials to use (said as they are)" },
    { 1, "the token saved by 'opentact login' has less than a minute left: commands refuse it" },
    { 2, USAGE_EXIT .. ", no credentials at all, or a saved token for another URL" },
  },
  examples = { "opentact whoami", "opentact whoami --profile staging --json" },
}

-- What whoami says, as the fields of its json (nil for null).
local function describe(s)
  local d = { url = effective_url(s.url), url_from = s.url_from, profile = s.profile or "default",
    token_from = s.from }
  if s.from == "file" then d.token_file = s.file end
  if s.from == "login" then
    d.account = s.email
  elseif s.token then
    local exp, _, account = core.jwt_claims(s.token)
    d.account = account
    if known_time(exp) then d.expires, d.expires_at = exp, utc_time(exp) end
  end
  return d
end

-- The lines of the table format.
local function lines(s, d)
  local url_from = ({ ["--url"] = "--url", OPENTACT_URL = "OPENTACT_URL", default = "Opentact's, the default",
    profile = "the URL the profile's token is for" })[d.url_from]
  local out = {
    format("URL:          %s (%s)", pretty.safe(d.url), url_from),
    format("Profile:      %s", pretty.safe(d.profile)),
  }
  local account, token, valid
  if s.from == "OPENTACT_TOKEN" then
    token = "OPENTACT_TOKEN"
  elseif s.from == "login" then
    token = "a login with OPENTACT_EMAIL and OPENTACT_PASSWORD, at each command"
    valid = "renewed as needed (a login at each command)"
  elseif s.from == "file" then
    token = "the file " .. pretty.safe(d.token_file) .. ", saved by '" .. credentials.login_command(s.profile) .. "'"
  else
    token = "none"
  end
  if d.account then
    account = pretty.safe(d.account)
  elseif s.from then
    account = "unknown (the token does not name it)"
  else
    account = "none"
  end
  if not valid then
    if d.expires then
      valid = d.expires_at .. (d.expires <= core.time() and " (expired)" or "")
    else
      valid = s.from and "unknown (the token does not say)" or "-"
    end
  end
  out[#out + 1] = format("Account:      %s", account)
  out[#out + 1] = format("Token from:   %s", token)
  out[#out + 1] = format("Valid until:  %s", valid)
  return out
end

function M.run(ctx, o)
  if #o.positional ~= 1 then return usage_error(ctx, "whoami takes no arguments") end
  local s = source(ctx, o)
  local d = describe(s)
  local problem = s.problem
  local err = type(problem) == "table" and problem or problem and { kind = "usage", message = problem } or nil
  if o.format == "json" then
    local obj = { ok = not err, error = err and error_json(err) or nil }
    for _, name in ipairs(COLUMNS) do
      obj[name] = d[name]
      if obj[name] == nil then obj[name] = NULL end
    end
    ctx.stdout:write(json(obj), "\n")
  elseif o.format ~= "table" then
    local row = {}
    for i, name in ipairs(COLUMNS) do row[i] = d[name] end
    write_rows(ctx, o.format, COLUMNS, { row })
  else
    for _, l in ipairs(lines(s, d)) do ctx.stdout:write(l, "\n") end
  end
  if not err then return 0 end
  ctx.stderr:write("opentact: ", err.kind == "auth" and "auth: " or "", tostring(err.message), "\n")
  return err.kind == "auth" and 1 or 2
end

return M
