-- opentact login: log in with email and password, and keep the token for the
-- commands that follow.

local core = require("opentact.core")
local pretty = require("opentact.pretty")
local words = require("opentact.cli.options")
local common = require("opentact.cli.common")
local credentials = require("opentact.cli.credentials")

local pcall, error = pcall, error

local USAGE_EXIT, INTERRUPTED_EXIT = words.USAGE_EXIT, words.INTERRUPTED_EXIT
local usage_error, fail = common.usage_error, common.fail
local client_for, token_file, utc_time = credentials.client_for, credentials.token_file, credentials.utc_time

local M = {}

M.help = {
  name = "login", args = {},
  summary = "log in with email and password (asked for on a terminal, or OPENTACT_PASSWORD) and keep the token "
    .. "for the commands that follow, in ~/.config/opentact/token (readable by you only)",
  text = { "Log in with email and password and keep the token for the commands that follow, in "
    .. "$XDG_CONFIG_HOME/opentact/token (~/.config/opentact/token), readable by you only. The password is "
    .. "asked for without echo on a terminal, else read from OPENTACT_PASSWORD; it is never an argument.",
    "The file is made readable by you only from its first byte on, whatever the umask, and replaced whole: "
      .. "a new file renamed into place, so logins at once each leave a whole token. The token's expiry is "
      .. "shown when it is a date (an unknown time otherwise); once less than a minute of it is left, commands "
      .. "refuse it (exit 1) until you log in again, or log in themselves with OPENTACT_EMAIL and "
      .. "OPENTACT_PASSWORD.",
    "With --profile NAME (or OPENTACT_PROFILE), the token and the URL it is for are kept in "
      .. "$XDG_CONFIG_HOME/opentact/profiles/NAME/token instead, one file per profile: commands given the same "
      .. "profile use that token, and its URL unless --url or OPENTACT_URL says otherwise (a login to the "
      .. "profile again too). 'opentact logout' removes the file; 'opentact whoami' says which one is used." },
  options = { "--email", "--url", "--profile", "--timeout", "--deadline", "--retries", "--verbose" },
  exit = {
    { 0, "logged in; the token is kept" },
    { 1, "the API refused the login or failed, or the token could not be kept" },
    { 2, USAGE_EXIT .. ", no email, or no password off a terminal" },
    { 130, INTERRUPTED_EXIT },
  },
  examples = { "opentact login --email me@example.com",
    "opentact login --profile staging --email me@example.com --url https://staging.example.com/rest" },
}

-- Reads a line from the terminal without echoing it (a password).
local function read_secret(ctx, prompt)
  ctx.stderr:write(prompt)
  ctx.stderr:flush()
  os.execute("stty -echo < /dev/tty 2> /dev/null")
  local ok, line = pcall(ctx.stdin.read, ctx.stdin, "*l")
  os.execute("stty echo < /dev/tty 2> /dev/null")
  ctx.stderr:write("\n")
  if not ok then error(line, 0) end
  return line
end

-- opentact login: logs in with email and password and keeps the JWT for
-- the commands that follow.
function M.run(ctx, o)
  if #o.positional ~= 1 then return usage_error(ctx, "login takes no arguments (give --email)") end
  local email = o.email or ctx.getenv("OPENTACT_EMAIL")
  if (not email or email == "") and ctx.stdin_terminal then
    ctx.stderr:write("Email: ")
    ctx.stderr:flush()
    email = ctx.stdin:read("*l")
  end
  if not email or email == "" then return usage_error(ctx, "give --email (or set OPENTACT_EMAIL)") end
  local password = ctx.getenv("OPENTACT_PASSWORD")
  if not password or password == "" then
    if not ctx.stdin_terminal then
      return usage_error(ctx, "set OPENTACT_PASSWORD, or run 'opentact login' on a terminal to be asked for it")
    end
    password = read_secret(ctx, "Password for " .. email .. ": ")
    if not password or password == "" then return usage_error(ctx, "no password given") end
  end
  local client, why = client_for(ctx, o, { email = email, password = password })
  if not client then return usage_error(ctx, why) end
  local token, err = client:token()
  local client_url = client:base_url()
  client:close()
  if not token then return fail(ctx, err, nil, 1) end
  local path = token_file(ctx, o.profile)
  if not path then return usage_error(ctx, "set HOME (or XDG_CONFIG_HOME): the token is kept under it") end
  local dir = path:gsub("/token$", "")
  local function quoted(x) return "'" .. x:gsub("'", "'\\''") .. "'" end
  os.execute(("umask 077 && mkdir -p %s 2> /dev/null"):format(quoted(dir)))
  -- the server it is for, then the token; readable by this user only from
  -- the first byte on, whatever the umask, and always whole: a new file
  -- renamed into place (logins at once each put a whole one)
  local ok, werr = core.write_private(path, client_url .. "\n" .. token .. "\n")
  if not ok then
    ctx.stderr:write("opentact: logged in, but cannot keep the token: ", werr, "\n")
    return 1
  end
  ctx.stdout:write(("Logged in as %s. The token is kept in %s, valid until %s.\n"):format(pretty.safe(email), path,
    utc_time((core.jwt_claims(token)))))
  return 0
end

return M
