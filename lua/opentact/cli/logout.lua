-- opentact logout: remove the token `opentact login` kept (for the profile).

local pretty = require("opentact.pretty")
local words = require("opentact.cli.options")
local common = require("opentact.cli.common")
local credentials = require("opentact.cli.credentials")

local tostring = tostring

local USAGE_EXIT = words.USAGE_EXIT
local usage_error = common.usage_error
local token_file = credentials.token_file

local M = {}

M.help = {
  name = "logout", args = {},
  summary = "remove the token 'opentact login' kept (the profile's, with --profile); no request is sent",
  text = { "Remove the token 'opentact login' kept, in $XDG_CONFIG_HOME/opentact/token "
    .. "(~/.config/opentact/token), or with --profile NAME (or OPENTACT_PROFILE) the profile's, in "
    .. "$XDG_CONFIG_HOME/opentact/profiles/NAME/token, and say which file it removed, or that there was "
    .. "none. No request is sent: the token stays valid on the server until it expires. OPENTACT_TOKEN, "
    .. "OPENTACT_EMAIL and OPENTACT_PASSWORD are not yours to unset from here: when one is set, logout says "
    .. "that commands still use it." },
  options = { "--profile", "--verbose" },
  exit = {
    { 0, "the token was removed, or there was none (the output says which)" },
    { 1, "the file is there and could not be removed" },
    { 2, USAGE_EXIT .. ", or no HOME (nor XDG_CONFIG_HOME) to find the file under" },
  },
  examples = { "opentact logout", "opentact logout --profile staging" },
}

-- What the environment still gives commands after a logout, or nil.
local function still_used(ctx)
  local token = ctx.getenv("OPENTACT_TOKEN")
  if token and token ~= "" then return "OPENTACT_TOKEN" end
  local email, password = ctx.getenv("OPENTACT_EMAIL"), ctx.getenv("OPENTACT_PASSWORD")
  if email and email ~= "" and password and password ~= "" then return "OPENTACT_EMAIL and OPENTACT_PASSWORD" end
end

function M.run(ctx, o)
  if #o.positional ~= 1 then return usage_error(ctx, "logout takes no arguments") end
  local path = token_file(ctx, o.profile)
  if not path then return usage_error(ctx, "set HOME (or XDG_CONFIG_HOME): the token is kept under it") end
  local name = o.profile and "profile " .. o.profile or "the default profile"
  local f = io.open(path, "rb")
  if not f then
    ctx.stdout:write(("No token is saved for %s (%s): nothing to remove.\n"):format(name, pretty.safe(path)))
  else
    local url = f:read("*l")
    f:close()
    local ok, err = os.remove(path)
    if not ok then
      ctx.stderr:write("opentact: cannot remove ", pretty.safe(path), ": ", pretty.safe(tostring(err)), "\n")
      return 1
    end
    -- a profile's folder goes with its token when nothing else is in it
    if o.profile then os.remove((path:gsub("/token$", ""))) end
    ctx.stdout:write(("Removed the token saved for %s%s (%s).\n"):format(name,
      url and url ~= "" and ", for " .. pretty.safe(url) or "", pretty.safe(path)))
  end
  local env = still_used(ctx)
  if env then ctx.stdout:write(env, " is set: commands still use it.\n") end
  return 0
end

return M
