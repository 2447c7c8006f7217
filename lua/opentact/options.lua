-- Client options, and the per-call options of the methods that take them:
-- their names, types, defaults and checking. Misuse raises here (client
-- options at new/configure), naming the option, at the line that called
-- the library (M.raise); nothing is checked again on the request path.

local type, pairs, tostring, error, getenv, rawget = type, pairs, tostring, error, os.getenv, rawget
local setmetatable = setmetatable
local floor, huge = math.floor, math.huge
local getinfo = debug and debug.getinfo

local M = {}

M.DEFAULT_URL = "https://api.opentact.org/rest"

local function is_number(v) return type(v) == "number" and v == v and v > -huge and v < huge end

local function has_control(s) return s:find("[%z\1-\31\127]") ~= nil end

-- Each checker returns nil when the value is fine, else what was expected.

-- Seconds for a timeout: libcurl counts whole milliseconds in a long, and
-- 0 would mean "no limit".
local function seconds(v)
  if not is_number(v) or v < 0.001 or v > 2147483 then return "a number of seconds from 0.001 to 2147483" end
end

local function delay(v)
  if not is_number(v) or v < 0 or v > 86400 then return "a number of seconds from 0 to 86400" end
end

local function count(v)
  if not is_number(v) or v < 0 or floor(v) ~= v then return "an integer >= 0" end
end

local function size(v)
  if not is_number(v) or v < 1 or v > 2 ^ 53 or floor(v) ~= v then return "an integer from 1 to 2^53" end
end

-- Longest token or header value accepted; a JWT is well under 2 KB.
M.MAX_TOKEN = 16384

local function boolean(v)
  if type(v) ~= "boolean" then return "a boolean" end
end

local function line(v)
  if type(v) ~= "string" then return "a string" end
  if has_control(v) then return "a string without control characters" end
end

local function func(v)
  if type(v) ~= "function" then return "a function" end
end

-- The one check of a secret's text (a token, a password): non-empty, at
-- most MAX_TOKEN bytes, no control character (`controls` names them in
-- the message).
local function secret_text(v, controls)
  if v == "" or has_control(v) or #v > M.MAX_TOKEN then
    return "a non-empty string of at most " .. M.MAX_TOKEN .. " bytes without " .. controls
  end
end

local function token(v)
  if type(v) == "function" then return nil end
  if type(v) ~= "string" then return "a string or a function" end
  return secret_text(v, "CR, LF, NUL or other control characters")
end

-- http(s)://host[:port][/path], and nothing after the path: a query or a
-- fragment would end up in the middle of every request's URL.
local function url(v)
  local bad = line(v)
  if bad then return bad end
  local rest = v:match("^[Hh][Tt][Tt][Pp][Ss]?://(.*)$")
  local host, port
  if rest then
    host, port = rest:match("^(%[[%x:.]+%]):?(%d*)")
    if not host then host, port = rest:match("^([%w%-%.%_~]+):?(%d*)") end
  end
  if not host or v:find("[%s?#]") then
    return "an http:// or https:// URL without spaces, query or fragment"
  end
  if port ~= "" and (tonumber(port) < 1 or tonumber(port) > 65535) then return "a URL with a port from 1 to 65535" end
  local after = rest:sub(#host + (port ~= "" and #port + 1 or 0) + 1)
  if after ~= "" and after:sub(1, 1) ~= "/" then return "an http:// or https:// URL" end
end

local function transport(v)
  if v ~= "curl" and v ~= "ngx" then return '"curl" or "ngx"' end
end

-- Inside OpenResty (the ngx API with cosockets), the ngx transport.
function M.in_openresty()
  local ngx = rawget(_G, "ngx")
  return type(ngx) == "table" and type(ngx.get_phase) == "function" and type(ngx.socket) == "table"
end

local function secret(v)
  if type(v) ~= "string" then return "a string" end
  return secret_text(v, "control characters")
end

-- An email to log in with: ':' would end the user part of HTTP Basic.
local function email(v)
  local bad = secret(v)
  if bad then return bad end
  if v:find("[:%s]") then return "an email without ':' or spaces" end
end

-- A cache of JWTs shared by nginx's workers: an ngx.shared dict.
local function jwt_cache(v)
  local t = type(v)
  if (t ~= "table" and t ~= "userdata") or type(v.get) ~= "function" or type(v.set) ~= "function" then
    return "an ngx.shared dict (lua_shared_dict in nginx.conf)"
  end
end

M.CHECKS = {
  jwt_cache = jwt_cache,
  token = token,
  email = email,
  password = secret,
  base_url = url,
  timeout = seconds,
  connect_timeout = seconds,
  retries = count,
  backoff = delay,
  backoff_max = delay,
  verify = boolean,
  ca_file = line,
  max_body = size,
  user_agent = line,
  proxy = line,
  retry_post = boolean,
  log = func,
  transport = transport,
  names_ttl = delay,
  deadline = seconds,
}

local function defaults(version)
  return {
    timeout = 30,
    connect_timeout = 5,
    retries = 2,
    backoff = 0.5,
    backoff_max = 8,
    verify = true,
    max_body = 64 * 1024 * 1024,
    user_agent = "lua-opentact/" .. version,
    retry_post = false,
    transport = M.in_openresty() and "ngx" or "curl",
    names_ttl = 30,
  }
end

-- Misuse raises at the line that called the library. The public
-- functions (the Client's methods, the module's functions) are registered
-- here once; M.raise finds the innermost of them on the stack and raises
-- at its caller's line, however deep in the library the check is. No
-- check counts frames.
local public = setmetatable({}, { __mode = "k" })

--- Registers `f` as a public function (misuse in it is its caller's); returns f.
function M.public(f)
  public[f] = true
  return f
end

--- Raises `message` at the line that called the public function running
--- (outside one: at the caller of the function that called this).
function M.raise(message)
  local level = 2
  if getinfo then
    -- 1 is this function; the first public frame's caller is the user's
    for l = 2, 1e6 do
      local info = getinfo(l, "f")
      if not info then break end
      if public[info.func] then
        level = l + 1
        break
      end
    end
  end
  error(message, level)
end
local raise = M.raise

-- The first misuse in `opts`, argument #argn of `fname`, each option
-- checked by its checker in `checks`: nil when there is none, else
-- {message = what to raise, option = its name, expected = what it takes,
-- when the value is the problem}. A message names the option and the type
-- it got, never the value.
local function misuse(opts, checks, fname, argn)
  if type(opts) ~= "table" then
    return { message = ("bad argument #%d to '%s' (table expected, got %s)"):format(argn, fname, type(opts)) }
  end
  for name, value in pairs(opts) do
    local check = type(name) == "string" and checks[name]
    if not check then
      return { message = ("bad argument #%d to '%s' (unknown option '%s')"):format(argn, fname, tostring(name)),
        option = tostring(name) }
    end
    local expected = check(value)
    if expected then
      return { message = ("bad option '%s' to '%s' (%s expected, got %s)"):format(name, fname, expected, type(value)),
        option = name, expected = expected }
    end
  end
end

-- Copies the options in `opts` into `into`, each checked by its checker in
-- `checks`, and returns `into`. `opts` is argument #argn of `fname`; misuse
-- raises at the line that called the public function.
function M.apply(opts, into, checks, fname, argn)
  if opts == nil then return into end
  local bad = misuse(opts, checks, fname, argn)
  if bad then raise(bad.message) end
  for name, value in pairs(opts) do into[name] = value end
  return into
end

---------------------------------------------------------------- per call
-- The options of the calls that take them (the last table argument of
-- assign_batched, list_many, lookup, search, search_all, sync, plan and
-- apply): one
-- schema per call, its option names and defaults, every option checked by
-- the one checker of its name.

local MAX_CONCURRENCY = 256

local function positive(v)
  if type(v) ~= "number" or v < 1 or floor(v) ~= v then return "an integer > 0" end
end

-- Leases per page: the server's `take`, a 32-bit integer.
local function per_page(v)
  if type(v) ~= "number" or v < 1 or v > 2 ^ 31 or floor(v) ~= v then return "an integer > 0" end
end

M.CALL_CHECKS = {
  batch_size = positive,
  concurrency = function(v)
    if type(v) ~= "number" or v < 1 or v > MAX_CONCURRENCY or floor(v) ~= v then
      return "an integer from 1 to " .. MAX_CONCURRENCY
    end
  end,
  on_progress = func,
  page_size = per_page,
  skip = function(v)
    if type(v) ~= "number" or v < 0 or v > 2 ^ 53 or floor(v) ~= v then return "an integer >= 0" end
  end,
  exact = boolean,
  move = boolean,
  dry_run = boolean,
  journal = function(v)
    if type(v) ~= "string" or v == "" or v:find("%z") then return "a file path (a non-empty string)" end
  end,
  reread = boolean,
  autorenew = boolean,
  deadline = function(v)
    if not is_number(v) or v < 0.001 or v > 2147483 then return "a number of seconds from 0.001 to 2147483" end
  end,
  note = function(v)
    if type(v) ~= "string" or #v > 4096 or v:find("%z") then return "a string of at most 4096 bytes, without NUL" end
  end,
}

-- The default of an option whose false is a value (autorenew = false
-- turns renewal off): the option was not given.
M.UNSET = "unset"

-- Each call's options and their defaults (false: none).
M.CALLS = {
  assign_batched = { batch_size = 100, concurrency = 4, on_progress = false, deadline = false },
  list_many = { concurrency = 8, on_progress = false, deadline = false },
  lookup = { concurrency = 16, deadline = false },
  search = { page_size = 100, skip = 0, deadline = false },
  search_all = { page_size = 100, concurrency = 4, on_progress = false, deadline = false },
  sync = { exact = false, move = false, dry_run = false, batch_size = 100, concurrency = 4, page_size = 100,
    on_progress = false, autorenew = M.UNSET, deadline = false },
  plan = { exact = false, move = false, concurrency = 4, page_size = 100, note = false, autorenew = M.UNSET,
    deadline = false },
  plan_routes = { exact = false, move = false, concurrency = 4, page_size = 100, note = false, autorenew = M.UNSET,
    deadline = false },
  apply = { batch_size = 100, concurrency = 4, page_size = 100, on_progress = false, journal = false, reread = false,
    deadline = false },
  -- (list, assign and lease take an options table too: the deadline only)
  list = { deadline = false },
  assign = { deadline = false },
  lease = { deadline = false },
}

-- Other names a call takes for one of its options: search's `take`, the
-- server's name, which it took first.
M.CALL_ALIASES = {
  search = { take = "page_size" },
}

--- The options of call `fname` (its argument #argn), checked, defaults
--- applied: a fresh table. Misuse raises at the caller's line.
function M.call(opts, fname, argn)
  local schema, aliases = M.CALLS[fname], M.CALL_ALIASES[fname]
  local out, checks = {}, {}
  for k, v in pairs(schema) do out[k], checks[k] = v, M.CALL_CHECKS[k] end
  for alias, name in pairs(aliases or {}) do checks[alias] = M.CALL_CHECKS[name] end
  M.apply(opts, out, checks, fname, argn)
  for alias, name in pairs(aliases or {}) do
    local v = out[alias]
    if v ~= nil then
      if opts[name] ~= nil and opts[name] ~= v then
        raise(("bad argument #%d to '%s' (%s and %s name the same option: give one)"):format(argn, fname, alias, name))
      end
      out[name], out[alias] = v, nil
    end
  end
  return out
end

-- Every option, defaults and environment applied, as a fresh table; or
-- nil and the first misuse, as `misuse` gives it (a bad value in the
-- environment: `option` is the option it stands for). `fname` names the
-- public function for messages. Nothing raises.
function M.check(opts, fname, version)
  local out = defaults(version)
  if opts ~= nil then
    local bad = misuse(opts, M.CHECKS, fname, 1)
    if bad then return nil, bad end
    for name, value in pairs(opts) do out[name] = value end
  end
  if out.token ~= nil and (out.email ~= nil or out.password ~= nil) then
    return nil, { message = ("bad argument #1 to '%s' (give either 'token' or 'email' and 'password', not both)")
      :format(fname), option = "token" }
  end
  if out.token == nil and out.email == nil and out.password == nil then
    local env = getenv("OPENTACT_TOKEN")
    if env and env ~= "" then
      local expected = token(env)
      if expected then
        return nil, { message = ("'%s': OPENTACT_TOKEN holds control characters"):format(fname), option = "token",
          expected = expected }
      end
      out.token = env
    end
  end
  if out.jwt_cache ~= nil and not M.in_openresty() then
    return nil, { message = ("bad option 'jwt_cache' to '%s' (it shares tokens between nginx workers: it needs "
      .. "OpenResty)"):format(fname), option = "jwt_cache" }
  end
  if out.token == nil then
    -- a login: what the options leave out comes from the environment
    for name, var in pairs({ email = "OPENTACT_EMAIL", password = "OPENTACT_PASSWORD" }) do
      local env = getenv(var)
      if out[name] == nil and env and env ~= "" then
        local expected = M.CHECKS[name](env)
        if expected then
          return nil, { message = ("'%s': %s is not %s"):format(fname, var, expected), option = name,
            expected = expected }
        end
        out[name] = env
      end
    end
    if (out.email == nil) ~= (out.password == nil) then
      return nil, { message = ("bad argument #1 to '%s' (%s without %s: give both, as options or as OPENTACT_EMAIL "
        .. "and OPENTACT_PASSWORD%s)"):format(fname, out.email and "'email'" or "'password'",
        out.email and "'password'" or "'email'",
        M.in_openresty() and "; nginx clears the environment of its workers: keep both with `env OPENTACT_EMAIL; "
          .. "env OPENTACT_PASSWORD;` in nginx.conf's main block" or ""),
        option = out.email and "password" or "email" }
    end
  end
  if out.base_url == nil then
    local env = getenv("OPENTACT_URL")
    if env and env ~= "" then
      local expected = url(env)
      if expected then
        return nil, { message = ("'%s': OPENTACT_URL is not %s"):format(fname, expected), option = "base_url",
          expected = expected }
      end
      out.base_url = env
    else
      out.base_url = M.DEFAULT_URL
    end
  end
  out.base_url = out.base_url:gsub("/+$", "")
  if out.transport == "ngx" then
    local why = not M.in_openresty() and "needs OpenResty (nginx with its Lua module)"
      or out.proxy and "cannot use 'proxy'"
      or out.ca_file and "cannot use 'ca_file': set lua_ssl_trusted_certificate in nginx.conf instead"
    if why then
      return nil, { message = ("bad option 'transport' to '%s' (the ngx transport %s)"):format(fname, why),
        option = "transport" }
    end
  end
  return out
end

-- Returns a fresh table of every option, defaults and environment applied.
-- `fname` names the public function for messages. Misuse raises, with the
-- message M.check gives, at the line that called the public function.
function M.resolve(opts, fname, version)
  local out, bad = M.check(opts, fname, version)
  if not out then raise(bad.message) end
  return out
end

return M
