-- How a client authenticates: a fixed token, a token function, or a login
-- (email and password) whose JWT is kept and renewed before it expires.
--
-- Secrets live in upvalues of the functions made here, never in a table
-- that a user can print or walk: the client, its options and its engine
-- hold only these functions, the mode and the email.
--
-- Logging in is all here: whether a request can go (a token), must wait
-- (a login is in flight or must start: the request is parked here, and
-- woken through the engine's hooks when the login ends) or fails (the
-- last login failed); one login at a time for all that wait; one renewal
-- per refused token. The engine only runs the login requests asked for.
--
-- A login's JWT is shared by every client of the same Lua state with the
-- same base URL, email and password (an nginx worker's requests, each
-- with its own client, log in once between them): see `shared` below.

local core = require("opentact.core")
local errors = require("opentact.errors")
local options = require("opentact.options")

local type, tonumber, min, rawget, setmetatable, remove =
  type, tonumber, math.min, rawget, setmetatable, table.remove
local jwt_claims, base64, redact, pid = core.jwt_claims, core.base64, errors.redact, core.pid

local M = {}

-- The wall clock (seconds) token expiry and the hand-over of a stale login
-- are read on: specs about time replace it, so that time passes without
-- waiting for it.
M.clock = core.time
local function wall() return M.clock() end

local MAX_TOKEN = options.MAX_TOKEN
-- A password is taken out of messages from this length on (a token from
-- errors' own length): shorter, it would be as common as ordinary text.
local PASSWORD_MIN = 3
-- Renew a JWT when less than this is left, or a quarter of its lifetime
-- if that is less (a 2-second token is renewed half a second before).
local RENEW_BEFORE = 60

local function unusable(value)
  if type(value) ~= "string" then return "a " .. type(value) end
  if #value > MAX_TOKEN then return "a string over " .. MAX_TOKEN .. " bytes" end
  if value == "" or value:find("[%z\1-\31\127]") then return "an empty string or control characters" end
  return nil
end

-- The one deliberate exception to "no module-level mutable state" (with
-- the default client): the JWTs of logins, shared by every client of this
-- Lua state with the same base URL, email and password, so that the
-- requests of an nginx worker, each with a client of its own, log in once
-- between them. Nothing else is shared: a client's waiting requests and
-- the failure of its last login are its own (in the functions below).
-- "<base_url> <email>" -> { token, expires, renew_at, same =
-- function(password) }, the newest login; found only with the same
-- password.
local shared = {}
-- Logins in flight, part of the same exception: "<base_url> <email>" ->
-- { by = the auth object that logs in, since = when, pid = the process
-- it logs in for }. Another client of the same process with the same
-- email waits for it instead of logging in too. After fork() the child
-- has a copy of the table: an entry of another process (the parent's
-- login, whose answer goes to the parent) is nobody's in the child, and
-- is never waited for. The JWTs in `shared` are kept across a fork: a
-- token is a string any process may send until it expires.
local in_flight = {}
local WEAK = { __mode = "v" }
-- A login in flight for longer than this is taken for lost (its client
-- stopped being driven mid-way: an nginx request that ended, a callback
-- client nobody steps): another client logs in instead. A real login
-- that takes longer only costs a second one.
local LOGIN_STALE = 5
-- How often a client waiting for another client's login looks for its token.
local SHARED_LOGIN_WAIT = 0.02
-- After a login failed for another reason than its credentials (the
-- server down), requests that need one fail at once for this long.
local LOGIN_FAILED_FOR = 1

local function no_token_message()
  local msg = "no token: set OPENTACT_TOKEN (or OPENTACT_EMAIL and OPENTACT_PASSWORD), or pass `token` "
    .. "(or `email` and `password`) to opentact.new or opentact.configure"
  if options.in_openresty() then
    msg = msg .. "; nginx clears the environment of its workers: keep the variables with `env OPENTACT_TOKEN;` "
      .. "(or `env OPENTACT_EMAIL; env OPENTACT_PASSWORD;`) in nginx.conf's main block"
  end
  return msg
end

-- When a JWT expires and when to renew it, by our wall clock; nil for a
-- token without exp (used until a 401). It came at `received`, for a login
-- put on the wire at `sent` (nil when not known: then `received`). The
-- server cannot have issued it before it was asked for, and its iat is
-- rounded down to the second: it is good for at least its lifetime (exp -
-- iat) less a second from the sending, and that is when it is taken to
-- expire; or at its exp, when our clock agrees with the server's (iat
-- falls between the sending and the answer, give or take 2 s) and exp
-- comes first, or when that lifetime was over by the answer (a 1-second
-- token: then up to the 2 s the clocks may differ past the server's exp).
-- So a token of a few seconds or more is not used past the server's exp,
-- however late its answer was read (a busy process, a step taken late)
-- and whichever way the clocks are off; one whose end was behind us when
-- it came has no known end, and is used until a 401 (a login per refused
-- token, not one per request). A token is never renewed before half of what it had left
-- has passed: a fresh one is never due at once.
local function timing(t, sent, received)
  local exp, iat = jwt_claims(t)
  if not exp then return nil, nil end
  local lifetime = iat and exp - iat or nil
  local expires = exp
  if not lifetime or lifetime <= 0 then
    lifetime = exp - received
  else
    local from = sent and sent <= received and sent or received
    local agree = iat >= from - 2 and iat <= received + 2
    expires = from + lifetime - 1
    if agree and (exp < expires or expires <= received) then expires = exp end
  end
  local left = expires - received
  if left <= 0 then return nil, nil end
  local renew = expires - min(RENEW_BEFORE, lifetime / 4)
  if renew < received + left / 2 then renew = received + left / 2 end
  return expires, renew
end

--- The authentication of a client whose resolved options are `opts`; the
--- secrets (`token`, `password`) are given apart and never stored in opts.
function M.new(opts, token, password)
  local a = {}
  local value, gen = nil, 0  -- the token in use and its generation
  local expires, renew_at    -- wall-clock seconds, for a JWT whose exp was read
  local login_sent           -- when the last login attempt went on the wire
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
      -- "<expires> <renew_at> <token>" (expires 0: none), the times as
      -- the worker that logged in worked them out
      get = function()
        local v = dict:get(dkey)
        if type(v) ~= "string" then return nil end
        local exp, renew, t = v:match("^(%S+) (%S+) (.+)$")
        if not t then return nil end
        exp, renew = tonumber(exp), tonumber(renew)
        if exp == 0 then exp, renew = nil, nil end
        return { token = t, expires = exp, renew_at = renew }
      end,
      put = function(entry)
        -- kept until it expires; one without exp until the next login
        local ttl = entry.expires and entry.expires - wall() or 0
        if ttl >= 0 then
          dict:set(dkey, ("%.3f %.3f %s"):format(entry.expires or 0, entry.renew_at or 0, entry.token), ttl)
        end
      end,
      clear = function(t)
        local v = dict:get(dkey)
        if type(v) == "string" and v:sub(-#t) == t then dict:delete(dkey) end
      end,
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

  -- The login state: the engine runs the login requests; everything else
  -- about logging in is here. `login`: the engine's login request in
  -- flight (opaque), or false; `parked`: the waiters (the engine's
  -- requests, opaque) of that login, in order; `failed`: the error of the
  -- last login when it failed, and until when (on the wall clock) it
  -- answers for the next one.
  local hooks
  local login, parked = false, {}
  local failed, failed_at, failed_until = false, 0, 0

  -- Whether this client is the one to log in now: true unless another
  -- client of this Lua state is logging in with the same email.
  local function claim()
    local f, me = in_flight[key], pid()
    -- `by` is weak: a client collected mid-login holds nobody up
    if f and f.by and f.by ~= a and f.pid == me and wall() - f.since < LOGIN_STALE then return false end
    if not f or f.by ~= a or f.pid ~= me then
      in_flight[key] = setmetatable({ by = a, since = wall(), pid = me }, WEAK)
    end
    return true
  end

  -- This client's login is over (done, failed or replaced).
  local function release()
    local f = in_flight[key]
    if f and f.by == a then in_flight[key] = nil end
  end

  local function failing(t)
    if not failed then return false end
    if failed_until == 1 / 0 then return true end
    -- a clock set back ends the moment: it cannot be measured
    return t >= failed_at and t < failed_until
  end

  -- A request's error from the login that failed, and the login's attempts.
  local function failure()
    local err = failed
    -- refused credentials speak for themselves; anything else happened to
    -- the login, not to the request, which was never sent
    local e = errors.new(err.kind, err.kind == "auth" and err.message or "logging in failed: " .. err.message,
      err.retryable)
    e.status, e.retry_after, e.sent = err.status, err.retry_after, false
    return e, err.attempts or 0
  end

  -- A login is in flight: the engine's, unless it has gone (the engine
  -- made a new one after a fork), then the new one.
  local function ensure_login()
    local h = hooks.login(login or nil)
    if h ~= login then
      if login then release() end
      login = h
      hooks.send(h)
    end
  end

  -- The token of a login that another client of this Lua state got:
  -- taken when it is newer than ours.
  local function adopt_shared()
    local s = store.get()
    if s and s.token ~= value and (not value or (s.expires or 1 / 0) > (expires or 0)) then
      adopt(s.token, s.expires, s.renew_at)
    end
  end

  -- The login `h` is over: the waiters go on (`err` nil) or end with its
  -- error, one by one from the list itself, so that an error on the way
  -- (an interrupt) leaves the rest parked for the next login.
  local function over(h, err)
    if h ~= login then return end -- one the engine replaced: its end is nobody's business
    login = false
    release()
    if err then
      -- kept, so that what comes next fails at once instead of logging in
      -- again and again: for good when the credentials were refused (a
      -- 401: they cannot change), else for a moment (a 403 may be a
      -- lockout or a firewall that passes)
      local t = wall()
      failed, failed_at, failed_until = err, t, err.status == 401 and 1 / 0 or t + LOGIN_FAILED_FOR
    end
    while parked[1] do
      local w = remove(parked, 1)
      if err then hooks.wake(w, failure()) else hooks.wake(w) end
    end
  end

  --- The engine this authentication serves, as three functions:
  --- login(prev) -> the login request in flight: `prev` while it still
  --- is, else a new one, not sent yet; send(h) puts login h on the wire;
  --- wake(waiter, err, attempts) lets a parked request go on, or ends it
  --- with `err` (an error to finish for the request; attempts: the
  --- login's) when the login failed.
  function a.serve(engine_hooks)
    hooks = engine_hooks
  end

  --- The token for a request, one of three answers:
  --- token, generation: send it (a 401 for it goes to a.refused(generation));
  --- nil: wait for a login, with a.park(request);
  --- nil, err, attempts: fail the request with `err` (attempts made: the
  --- login's, or nil for none).
  --- An error a token function raises goes through, as it is.
  function a.token()
    if a.mode == "function" and not value then
      local v = token() -- the user's code: what it raises is the caller's to raise
      local bad = unusable(v)
      if bad then return nil, errors.new("auth", "the token function returned " .. bad) end
      adopt(v)
    elseif a.mode == "login" then
      adopt_shared()
      local t = wall()
      if value and not (expires and t >= expires) then
        -- near its end: a login in the background, the token serves meanwhile
        if expires and t >= renew_at and not failing(t) then ensure_login() end
        return value, gen
      end
      -- a login first, unless the last one failed a moment ago
      if failing(t) then return nil, failure() end
      return nil
    elseif a.mode == "none" then
      return nil, errors.new("auth", no_token_message())
    end
    return value, gen
  end

  --- Parks `waiter` (told to wait by a.token) until a login ends; logs in
  --- unless a login is in flight already: one login for every request that
  --- needs it.
  function a.park(waiter)
    parked[#parked + 1] = waiter
    ensure_login()
  end

  --- The server refused the token of generation `g` (a 401): the next
  --- a.token() gets a new one. Once per token, however many requests it
  --- refused: the first 401 drops it, the rest find the new one (or the
  --- login that fetches it).
  function a.refused(g)
    if g ~= gen or a.mode == "token" then return end
    if store and value then store.clear(value) end
    if value then old[#old + 1] = value end
    value, expires, renew_at = nil, nil, nil
  end

  --- Login `h` is about to go on the wire: its credentials (for an
  --- Authorization: Basic header); or nil, seconds: another client of this
  --- Lua state is logging in with the same email, ask again then; or nil:
  --- a token came meanwhile, `h` is not needed (its waiters are woken).
  function a.login_start(h)
    adopt_shared()
    if value and not (expires and wall() >= renew_at) then
      over(h)
      return nil
    end
    if not claim() then return nil, SHARED_LOGIN_WAIT end
    login_sent = wall()
    return a.basic()
  end

  --- Login `h` ended: with its answer's `payload`, or its error `err`
  --- (finished: the engine's retries are behind it), or neither when it
  --- was stopped (the waiters wait for the next login: a.resume).
  --- `attempts`: the login's.
  function a.login_over(h, payload, err, attempts)
    if payload then
      local ok, why = a.accept(payload)
      if not ok then
        err = errors.finish(why, "GET", "/auth", attempts or 1, a.redact)
      else
        failed = false
      end
    elseif not err then
      if h == login then
        login = false
        release()
      end
      return
    end
    over(h, err)
  end

  --- Login `h` was the parent process's: a fork ended it before its
  --- answer came to this process. That is no failure of this client's
  --- (nothing is kept against the next login): its waiters go on and are
  --- each judged again by the engine (a request of the parent's ends as
  --- the parent's, one of this process's is parked for a login of its own).
  function a.login_lost(h)
    over(h)
  end

  --- Takes out of the waiters those for which pred(waiter) is true (their
  --- requests were stopped); returns them, in order.
  function a.forget(pred)
    local out, kept = {}, {}
    for i = 1, #parked do
      local w = parked[i]
      if pred(w) then out[#out + 1] = w else kept[#kept + 1] = w end
    end
    parked = kept
    return out
  end

  --- Logs in for waiters whose login stopped without them.
  function a.resume()
    if parked[1] and not login then ensure_login() end
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
    adopt(t, timing(t, login_sent, wall()))
    store.put({ token = t, expires = expires, renew_at = renew_at })
    return true
  end

  --- `s` with every secret this client knows replaced.
  function a.redact(s)
    s = redact(redact(redact(s, value), password, PASSWORD_MIN), token)
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
