-- The credentials of the `opentact` command: OPENTACT_TOKEN, else
-- OPENTACT_EMAIL and OPENTACT_PASSWORD, else the token `opentact login`
-- kept for the profile; and the client made from them and the URL, its
-- misuse named in the words of the flags and variables the user gave, with
-- the --timeout, --retries and --verbose asked for.

local opentact = require("opentact")
local core = require("opentact.core")
local pretty = require("opentact.pretty")

local type, pcall, tostring = type, pcall, tostring
local format, floor = string.format, math.floor

local M = {}

-- The user's folder that the XDG variable `var` names, else `fallback`
-- under their home (".config", ".cache"); nil without a home.
local function user_dir(ctx, var, fallback)
  local dir = ctx.getenv(var)
  if dir and dir ~= "" then return dir end
  local home = ctx.getenv("HOME")
  if not home or home == "" then return nil end
  return home .. "/" .. fallback
end
M.user_dir = user_dir

-- Where `opentact login` keeps the token it got for `profile` (nil: the
-- default profile, in the path it always had), or nil without a home.
local function token_file(ctx, profile)
  local dir = user_dir(ctx, "XDG_CONFIG_HOME", ".config")
  if not dir then return nil end
  return dir .. "/opentact/" .. (profile and "profiles/" .. profile .. "/" or "") .. "token"
end

-- The command that logs in to `profile` again, for messages.
local function login_command(profile)
  return "opentact login" .. (profile and " --profile " .. profile or "")
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

-- What `opentact login` saved for `profile`: the URL it is for and the
-- token (nil, nil when there is none), and the file's path.
local function read_saved(ctx, profile)
  local path = token_file(ctx, profile)
  local f = path and io.open(path, "rb")
  if not f then return nil, nil, path end
  local saved_url, token = f:read("*l"), f:read("*l")
  f:close()
  if not token or token == "" then return nil, nil, path end
  return saved_url, token, path
end

-- Why the saved `token` cannot be used now, or nil: an auth error for a
-- token with less than a minute left (the credentials are there, and too
-- old: not a usage error). An expiry that is no time is the server's to
-- judge: the token is sent.
local function too_old(token, profile)
  local exp = core.jwt_claims(token)
  if known_time(exp) and exp - core.time() < 60 then
    return { kind = "auth", message = ("the token saved by '%s' expire%s at %s: run '%s' again, or set "
      .. "OPENTACT_EMAIL and OPENTACT_PASSWORD to log in on every command"):format(login_command(profile),
      exp <= core.time() and "d" or "s", utc_time(exp), login_command(profile)) }
  end
end

-- The base URL a client gets from `url` (nil: the default), as it keeps it.
local function effective_url(url)
  return ((url or opentact.DEFAULT_URL):gsub("/+$", ""))
end

local function no_credentials(profile)
  return "set OPENTACT_TOKEN to your API token, or OPENTACT_EMAIL and OPENTACT_PASSWORD to log in, or run '"
    .. login_command(profile) .. "'"
end

-- What a command would use, and why: a table with
--   url: the base URL as given (nil: the default), url_from: "--url",
--     "OPENTACT_URL", "profile" (the URL a named profile's saved token is
--     for, when neither of those says) or "default";
--   profile: o.profile (nil: the default profile); file: its token file;
--   from: where the credentials come from, "OPENTACT_TOKEN", "login"
--     (OPENTACT_EMAIL and OPENTACT_PASSWORD) or "file" (what `opentact
--     login` saved), nil when none is there; token, email: what they are;
--   creds: the client options that authenticate, or nil and
--   problem: why not (a message for a usage error, an auth error table
--     for a saved token that expired).
-- `given`: the options that authenticate, when the command has them
-- (login): the environment and the file's token are not read then.
local function source(ctx, o, given)
  local s = { profile = o.profile, url = o.url, url_from = "--url" }
  if s.url == nil then
    s.url, s.url_from = ctx.getenv("OPENTACT_URL"), "OPENTACT_URL"
    if s.url == "" then s.url = nil end
  end
  local saved_url, saved
  saved_url, saved, s.file = read_saved(ctx, o.profile)
  local token = ctx.getenv("OPENTACT_TOKEN")
  local email, password = ctx.getenv("OPENTACT_EMAIL"), ctx.getenv("OPENTACT_PASSWORD")
  if given then
    s.creds = given
  elseif token and token ~= "" then
    s.from, s.token, s.creds = "OPENTACT_TOKEN", token, { token = token }
  elseif email and email ~= "" and password and password ~= "" then
    s.from, s.email, s.creds = "login", email, { email = email, password = password }
  elseif saved then
    s.from, s.token = "file", saved
  end
  -- a named profile keeps its URL, the one its token is for: for its own
  -- token, and for a login to it; never for credentials of the environment
  if s.url == nil and o.profile and saved_url and saved_url ~= "" and (given or s.from == "file") then
    s.url, s.url_from = saved_url, "profile"
  end
  if s.url == nil then s.url_from = "default" end
  if s.from == "file" then
    local url = effective_url(s.url)
    -- a token is for the server it came from, never sent to another
    if saved_url ~= url then
      s.problem = ("the token saved by '%s' is for %s, not %s: run '%s' for this one, or set OPENTACT_TOKEN")
        :format(login_command(o.profile), pretty.safe(saved_url or "?"), pretty.safe(url), login_command(o.profile))
    else
      s.problem = too_old(saved, o.profile)
      if not s.problem then s.creds = { token = saved } end
    end
  elseif not s.creds then
    s.problem = no_credentials(o.profile)
  end
  return s
end

-- The flags and variables behind the library's options, for messages.
local OPTION_WORDS = { token = "OPENTACT_TOKEN", email = "--email (or OPENTACT_EMAIL)",
  password = "OPENTACT_PASSWORD", timeout = "--timeout", retries = "--retries", deadline = "--deadline" }

-- The values of a query in a path, shown as "...": only a path is shown.
local function path_shown(path)
  return (pretty.safe(tostring(path)):gsub("([?&][^=&]*)=[^&]*", "%1=..."))
end

-- The log hook of --verbose: a line per HTTP attempt on standard error,
-- method, path, status (or the kind of failure), attempt and milliseconds.
-- An event holds no secret; the query's values are left out all the same.
local function verbose_log(ctx)
  return function(e)
    local status = e.status or e.kind or "?"
    if e.status and e.kind then status = e.status .. " " .. e.kind end
    ctx.stderr:write(format("opentact: %s %s: %s, attempt %d, %d ms\n", pretty.safe(tostring(e.method)),
      path_shown(e.path), pretty.safe(tostring(status)), e.attempt or 0, floor((e.elapsed or 0) * 1000 + 0.5)))
  end
end

-- A client for the command, or nil and a usage message (or an auth error
-- for a saved token that expired). `creds`: the options that
-- authenticate, when the command has them already (login). With o.timeout,
-- o.retries and o.verbose, its options say so.
local function client_for(ctx, o, creds)
  local s = source(ctx, o, creds)
  if not s.creds then return nil, s.problem end
  creds = s.creds
  creds.base_url = s.url
  creds.timeout, creds.retries, creds.deadline = o.timeout, o.retries, o.deadline
  creds.log = o.verbose and verbose_log(ctx) or nil
  local ok, bad = opentact.check_options(creds)
  if not ok then
    -- the library names its options; the user gave flags and variables.
    -- Never the value: a secret, or a malformed URL that holds a password
    if not bad.expected then return nil, bad.message end
    local word = bad.option == "base_url" and (s.url_from == "profile" and "the URL saved for profile "
      .. pretty.safe(o.profile) or s.url_from) or OPTION_WORDS[bad.option] or bad.option
    return nil, format("%s is not %s", word, bad.expected)
  end
  return opentact.new(creds)
end

M.source = source
M.effective_url = effective_url
M.known_time = known_time
M.login_command = login_command
M.token_file = token_file
M.utc_time = utc_time
M.client_for = client_for

return M
