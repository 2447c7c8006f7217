-- How a client authenticates: a fixed token, a token function, or a login
-- (email and password) whose JWT is kept and renewed before it expires.
--
-- Secrets live in upvalues of the functions made here, never in a table
-- that a user can print or walk: the client, its options and its engine
-- hold only these functions, the mode and the email.
--
-- A login's JWT is shared by every client of the same Lua state with the
-- same base URL, email and password (an nginx worker's requests, each
-- with its own client, log in once between them).

local core = require("opentact.core")
local errors = require("opentact.errors")
local options = require("opentact.options")

local type, pcall, tostring, min, rawget = type, pcall, tostring, math.min, rawget
local wall, jwt_claims, base64, redact = core.time, core.jwt_claims, core.base64, errors.redact

local M = {}

local MAX_TOKEN = options.MAX_TOKEN
-- Renew a JWT when less than this is left, or a quarter of its lifetime
-- if that is less (a 2-second token is renewed half a second before).
local RENEW_BEFORE = 60

local function unusable(value)
  if type(value) ~= "string" then return "a " .. type(value) end
  if #value > MAX_TOKEN then return "a string over " .. MAX_TOKEN .. " bytes" end
  if value == "" or value:find("[%z\1-\31\127]") then return "an empty string or control characters" end
  return nil
end

-- Logins of this Lua state: "<base_url> <email>" -> { token, expires,
-- renew_at, same = function(password) }, the newest one.
local shared = {}
-- Logins in flight: "<base_url> <email>" -> { by = the auth object that
-- logs in, since = when }. Another client with the same email waits for
-- it instead of logging in too.
local in_flight = {}
-- A login in flight for longer than this is taken for lost (its client
-- was dropped mid-way): someone else may log in.
local LOGIN_STALE = 120

local function no_token_message()
  local msg = "no token: set OPENTACT_TOKEN (or OPENTACT_EMAIL and OPENTACT_PASSWORD), or pass `token` "
    .. "(or `email` and `password`) to opentact.new or opentact.configure"
  if options.in_openresty() then
    msg = msg .. "; nginx clears the environment of its workers: keep the variables with `env OPENTACT_TOKEN;` "
      .. "(or `env OPENTACT_EMAIL; env OPENTACT_PASSWORD;`) in nginx.conf's main block"
  end
  return msg
end

-- When a JWT expires and when to renew it (wall-clock seconds): nil for a
-- token without exp, or with one our clock already calls past (such a
-- token is used until a 401).
local function timing(t)
  local exp, iat = jwt_claims(t)
  local clock = wall()
  local lifetime = exp and (iat and exp - iat or exp - clock)
  if exp and exp > clock and lifetime > 0 then
    return exp, exp - min(RENEW_BEFORE, lifetime / 4)
  end
  return nil, nil
end

--- The authentication of a client whose resolved options are `opts`; the
--- secrets (`token`, `password`) are given apart and never stored in opts.
function M.new(opts, token, password)
  local a = {}
  local value, gen = nil, 0  -- the token in use and its generation
  local expires, renew_at    -- wall-clock seconds, for a JWT whose exp was read
  local old = {}             -- tokens used before, for redaction
  local email = opts.email

  local function adopt(t, exp, renew)
    if value then old[#old + 1] = value end
    value, expires, renew_at = t, exp, renew
    gen = gen + 1
  end

  if type(token) == "string" then
    a.mode = "token"
    adopt(token)
  elseif type(token) == "function" then
    a.mode = "function"
  elseif email then
    a.mode = "login"
  else
    a.mode = "none"
  end
  -- a 401 is worth a new token only when a new one can be had
  a.renews = a.mode == "function" or a.mode == "login"

  local key = a.mode == "login" and opts.base_url .. " " .. email
  local function same(p) return p == password end

  -- Where logins are shared: this Lua state's table, or with `jwt_cache`
  -- (an ngx.shared dict) every worker of an nginx. The dict's key is a
  -- hash of the URL, email and password: a client with another password
  -- never finds the token.
  local store
  if a.mode == "login" and opts.jwt_cache then
    local dict, ngx = opts.jwt_cache, rawget(_G, "ngx") -- jwt_cache is checked to come with OpenResty
    local dkey = "opentact-jwt:" .. ngx.encode_base64(ngx.sha1_bin(opts.base_url .. "\n" .. email .. "\n" .. password))
    store = {
      get = function()
        local t = dict:get(dkey)
        if type(t) ~= "string" then return nil end
        local exp, renew = timing(t)
        return { token = t, expires = exp, renew_at = renew }
      end,
      put = function(entry)
        -- kept until it expires; one without exp until the next login
        local ttl = entry.expires and entry.expires - wall() or 0
        if ttl >= 0 then dict:set(dkey, entry.token, ttl) end
      end,
      clear = function(t) if dict:get(dkey) == t then dict:delete(dkey) end end,
    }
  elseif a.mode == "login" then
    store = {
      get = function()
        local s = shared[key]
        return s and s.same(password) and s or nil
      end,
      put = function(entry)
        entry.same = same
        shared[key] = entry
      end,
      clear = function(t) if shared[key] and shared[key].token == t then shared[key] = nil end end,
    }
  end

  --- The token to send, its generation, and whether to log in again in
  --- the background (it is near its end); or nil, nil when a login must
  --- come first; or nil, err.
  function a.current()
    if a.mode == "function" and not value then
      local ok, v = pcall(token)
      if not ok then return nil, errors.new("auth", "the token function failed: " .. tostring(v)) end
      local bad = unusable(v)
      if bad then return nil, errors.new("auth", "the token function returned " .. bad) end
      adopt(v)
    elseif a.mode == "login" then
      local s = store.get()
      if s and s.token ~= value and (not value or (s.expires or 1 / 0) > (expires or 0)) then
        adopt(s.token, s.expires, s.renew_at)
      end
      if not value then return nil, nil end
      if expires then
        local t = wall()
        if t >= expires then return nil, nil end
        return value, gen, t >= renew_at
      end
    elseif a.mode == "none" then
      return nil, errors.new("auth", no_token_message())
    end
    return value, gen, false
  end

  --- Forgets the token of generation `g` (the server refused it).
  function a.drop(g)
    if g ~= gen or a.mode == "token" then return end
    if store and value then store.clear(value) end
    if value then old[#old + 1] = value end
    value, expires, renew_at = nil, nil, nil
  end

  --- Whether this client is the one to log in now: true unless another
  --- client of this Lua state is logging in with the same email.
  function a.claim_login()
    local f = in_flight[key]
    if f and f.by ~= a and wall() - f.since < LOGIN_STALE then return false end
    if not f or f.by ~= a then in_flight[key] = { by = a, since = wall() } end
    return true
  end

  --- This client's login is over (done or failed).
  function a.login_done()
    local f = in_flight[key]
    if f and f.by == a then in_flight[key] = nil end
  end

  --- The credentials of a login, for an Authorization: Basic header.
  function a.basic()
    return base64(email .. ":" .. password)
  end

  --- Takes the token of a login's answer (its payload); true, or nil, err.
  function a.accept(payload)
    local t = payload.token
    local bad = unusable(t)
    if bad then return nil, errors.new("protocol", "the login answer's token is " .. bad) end
    adopt(t, timing(t))
    store.put({ token = t, expires = expires, renew_at = renew_at })
    return true
  end

  --- `s` with every secret this client knows replaced.
  function a.redact(s)
    s = redact(redact(redact(s, value), password), token)
    if a.mode == "login" then s = redact(s, a.basic()) end
    for i = 1, #old do s = redact(s, old[i]) end
    return s
  end

  --- How the client authenticates, for tostring(client): never a secret.
  function a.describe()
    if a.mode == "login" then return "login as " .. email end
    if a.mode == "function" then return "token function" end
    if a.mode == "token" then return "token" end
    return "no token"
  end

  --- Seconds the current token has left, when known (for the CLI).
  function a.expires_in()
    return expires and expires - wall() or nil
  end

  return a
end

return M
