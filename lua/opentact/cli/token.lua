-- opentact token: a valid token on standard output, for curl and other tools.

local words = require("opentact.cli.options")
local common = require("opentact.cli.common")
local credentials = require("opentact.cli.credentials")

local USAGE_EXIT, INTERRUPTED_EXIT, EXAMPLE_CONN = words.USAGE_EXIT, words.INTERRUPTED_EXIT, words.EXAMPLE_CONN
local usage_error, fail, no_client = common.usage_error, common.fail, common.no_client
local client_for = credentials.client_for

local M = {}

M.help = {
  name = "token", args = {},
  summary = "print a valid token on standard output, for curl and other tools",
  text = { "Print a valid token on standard output, and nothing else: OPENTACT_TOKEN, a fresh login with "
    .. "OPENTACT_EMAIL and OPENTACT_PASSWORD, or the token 'opentact login' kept." },
  options = { "--url", "--profile", "--timeout", "--deadline", "--retries", "--verbose" },
  exit = {
    { 0, "the token was printed" },
    { 1, "no token could be had: the API refused the login or failed, or the kept token has less than a "
      .. "minute left" },
    { 2, USAGE_EXIT .. ", or no credentials" },
    { 130, INTERRUPTED_EXIT },
  },
  examples = { "curl -H \"X-Auth-Token: $(opentact token)\" \\\n"
    .. "    https://api.opentact.org/rest/sip/connection/" .. EXAMPLE_CONN .. "/tnlease" },
}

-- opentact token: a valid token on standard output, and nothing else.
function M.run(ctx, o)
  if #o.positional ~= 1 then return usage_error(ctx, "token takes no arguments") end
  local client, why = client_for(ctx, o)
  if not client then return no_client(ctx, why) end
  local token, err = client:token()
  client:close()
  if not token then return fail(ctx, err, nil, 1) end
  ctx.stdout:write(token, "\n")
  return 0
end

return M
