-- The credentials of the `opentact` command: OPENTACT_TOKEN, else
-- OPENTACT_EMAIL and OPENTACT_PASSWORD, else the token `opentact login`
-- kept; and the client made from them and the URL, its misuse named in
-- the words of the flags and variables the user gave.

local opentact = require("opentact")
local core = require("opentact.core")
local pretty = require("opentact.pretty")

local type, pcall = type, pcall
local format, floor = string.format, math.floor

local M = {}

-- Where `opentact login` keeps the token it got.
local function token_file(ctx)
  local dir = ctx.getenv("XDG_CONFIG_HOME")
  if not dir or dir == "" then
    local home = ctx.getenv("HOME")
    if not home or home == "" then return nil end
    dir = home .. "/.config"
  end
  return dir .. "/opentact/token"
end

-- The last second shown as a date: 9999-12-31 23:59:59Z.
local DATE_MAX = 253402300799

-- Whether `t` (a JWT's exp, as a server sent it) is a time that can be
-- shown as a date: a number from 1970 to 9999.
local function known_time(t)
  return type(t) == "number" and t >= 0 and t <= DATE_MAX
end

-- A time from a server as "2026-12-07 14:21:01Z", or "an unknown time"
-- for one that is no date (out of range, not finite, not a number). Every
-- time the command line shows goes through here: none is a crash.
local function utc_time(t)
  if not known_time(t) then return "an unknown time" end
  local ok, s = pcall(os.date, "!%Y-%m-%d %H:%M:%SZ", floor(t))
  return ok and type(s) == "string" and s or "an unknown time"
end

-- The token `opentact login` saved: the token, or nil and why not (a
-- message for a usage error, or an auth error for a token that expired).
local function saved_token(ctx, url)
  local path = token_file(ctx)
  local f = path and io.open(path, "rb")
  if not f then return nil end
  local saved_url, token = f:read("*l"), f:read("*l")
  f:close()
  if not token or token == "" then return nil end
  -- a token is for the server it came from, never sent to another
  if saved_url ~= url then
    return nil, ("the token saved by 'opentact login' is for %s, not %s: run 'opentact login' for this one, "
      .. "or set OPENTACT_TOKEN"):format(pretty.safe(saved_url or "?"), pretty.safe(url))
  end
  -- an expiry that is no time is the server's to judge: the token is sent
  local exp = core.jwt_claims(token)
  if known_time(exp) and exp - core.time() < 60 then
    -- not a usage error: the credentials are there, and too old
    return nil, { kind = "auth", message = ("the token saved by 'opentact login' expire%s at %s: run 'opentact "
      .. "login' again, or set OPENTACT_EMAIL and OPENTACT_PASSWORD to log in on every command")
      :format(exp <= core.time() and "d" or "s", utc_time(exp)) }
  end
  return token
end

-- The base URL a client gets from `url` (nil: the default), as it keeps it.
local function effective_url(url)
  return ((url or opentact.DEFAULT_URL):gsub("/+$", ""))
end

local NO_CREDENTIALS = "set OPENTACT_TOKEN to your API token, or OPENTACT_EMAIL and OPENTACT_PASSWORD "
  .. "to log in, or run 'opentact login'"

-- The options that authenticate: OPENTACT_TOKEN, else OPENTACT_EMAIL and
-- OPENTACT_PASSWORD, else what `opentact login` saved. Nil and why when
-- none is there.
local function credentials(ctx, url)
  local token = ctx.getenv("OPENTACT_TOKEN")
  if token and token ~= "" then return { token = token } end
  local email, password = ctx.getenv("OPENTACT_EMAIL"), ctx.getenv("OPENTACT_PASSWORD")
  if email and email ~= "" and password and password ~= "" then return { email = email, password = password } end
  local saved, why = saved_token(ctx, url)
  if saved then return { token = saved } end
  return nil, why or NO_CREDENTIALS
end

-- The flags and variables behind the library's options, for messages.
local OPTION_WORDS = { token = "OPENTACT_TOKEN", email = "--email (or OPENTACT_EMAIL)",
  password = "OPENTACT_PASSWORD" }

-- A client for the command, or nil and a usage message. `creds`: the
-- options that authenticate, when the command has them already.
local function client_for(ctx, o, creds)
  local why
  local url, from = o.url, "--url"
  if url == nil then
    url, from = ctx.getenv("OPENTACT_URL"), "OPENTACT_URL"
    if url == "" then url = nil end
  end
  if not creds then
    creds, why = credentials(ctx, effective_url(url))
    if not creds then return nil, why end
  end
  creds.base_url = url
  local ok, bad = opentact.check_options(creds)
  if not ok then
    -- the library names its options; the user gave flags and variables.
    -- Never the value: a secret, or a malformed URL that holds a password
    if not bad.expected then return nil, bad.message end
    local word = bad.option == "base_url" and from or OPTION_WORDS[bad.option] or bad.option
    return nil, format("%s is not %s", word, bad.expected)
  end
  return opentact.new(creds)
end

M.token_file = token_file
M.utc_time = utc_time
M.client_for = client_for

return M
