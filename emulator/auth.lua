-- Logins and tokens: GET /auth (HTTP Basic, answers a JWT), POST /token (a
-- long-lived bearer token, a JWT too), and what the token a request
-- carries is, from the X-Auth-Token header or ?bearer=.

local ngx = ngx
local cjson = require("cjson.safe")
local seed = require("emulator.seed")
local state = require("emulator.state")
local replies = require("emulator.replies")
local request = require("emulator.request")
local hmac_sha256 = require("emulator.sha256").hmac_sha256
local type, ipairs, pairs, tostring = type, ipairs, pairs, tostring
local format, floor = string.format, math.floor

local config, dict = state.config, state.dict
local fail, status_fault, finish = replies.fail, replies.status_fault, replies.finish
local is_json, decode_object = request.is_json, request.decode_object
local seed_uuid = seed.uuid

local M = {}

local users = {}   -- email -> { uuid, email, password }, from --user
local secret       -- the JWT signing key, random per start: see M.init
local static_user  -- { uuid, email } the static token stands for: see M.init

local UNAUTHORIZED = "Unauthorized: missing or invalid X-Auth-Token"
local TOKEN_TTL_MAX = 10 * 365 * 86400 -- the longest a bearer token may live
local VERIFIED_MAX = 1024              -- JWTs a worker remembers as checked

local function b64url(s)
  return (ngx.encode_base64(s, true):gsub("[+/]", { ["+"] = "-", ["/"] = "_" }))
end

local function b64url_decode(s)
  return ngx.decode_base64((s:gsub("[-_]", { ["-"] = "+", ["_"] = "/" })))
end

local JWT_HEADER -- b64url('{"alg":"HS256","typ":"JWT"}'), set by M.init

-- A JWT for `who` ({uuid, email}) living `ttl` seconds from now; a bearer
-- token also carries its name. The claims are written by hand to keep
-- their documented order.
-- The clock JWTs are issued and expire on, in whole seconds: the real one,
-- or ahead of it by the admin config's `clock` (specs let time pass).
local function token_time()
  return floor(ngx.now() + (dict():get("clock") or 0))
end

local function issue(who, ttl, name)
  local now = token_time()
  local claims = format('{"sub":%s,"email":%s,%s"iat":%d,"exp":%d}', cjson.encode(who.uuid),
    cjson.encode(who.email), name and '"name":' .. cjson.encode(name) .. "," or "", now, now + ttl)
  local input = JWT_HEADER .. "." .. b64url(claims)
  return input .. "." .. b64url(hmac_sha256(secret, input))
end

-- Per worker: JWTs whose signature was checked, with their claims, so a
-- client sending the same token on every call costs one table lookup,
-- not two SHA-256 runs. The secret never changes while nginx runs.
local verified, verified_count = {}, 0

-- The claims of a JWT this emulator signed, or nil: whatever else (a
-- wrong signature, another shape, claims that are not ours) is refused.
local function jwt_claims(token)
  local claims = verified[token]
  if claims then return claims end
  local head, body, sig = token:match("^([%w_-]+)%.([%w_-]+)%.([%w_-]+)$")
  if not head or b64url(hmac_sha256(secret, head .. "." .. body)) ~= sig then return nil end
  claims = decode_object(b64url_decode(body) or "")
  if not (claims and type(claims.exp) == "number" and type(claims.sub) == "string") then return nil end
  -- clients sending ever new tokens must not grow the worker without end
  if verified_count >= VERIFIED_MAX then verified, verified_count = {}, 0 end
  verified[token], verified_count = claims, verified_count + 1
  return claims
end

-- What an X-Auth-Token is: "valid", "expired", "wrong" or "missing"; and
-- the claims of a valid JWT (nil for the static token).
local function token_state(token)
  if token == nil then return "missing" end
  if token == config.token then return "valid" end
  if type(token) ~= "string" then return "wrong" end -- the header sent twice
  local claims = jwt_claims(token)
  if not claims then return "wrong" end
  -- exp is the first second the token is no longer good
  if token_time() >= claims.exp then return "expired" end
  return "valid", claims
end

-- HTTP Basic credentials: "valid" and the user, or "wrong", or "missing".
-- The scheme name is case-blind (RFC 7617); the email is the text before
-- the first ':', the password all after it.
local function check_basic(value)
  if value == nil then return "missing" end
  if type(value) ~= "string" then return "wrong" end
  local encoded = value:match("^[Bb][Aa][Ss][Ii][Cc] +([%w+/]+=?=?) *$")
  local pair = encoded and ngx.decode_base64(encoded)
  local email, password = (pair or ""):match("^([^:]*):(.*)$")
  local user = email and users[email]
  if not (user and user.password == password) then return "wrong" end
  return "valid", user
end

local function token_ttl()
  return dict():get("token_ttl") or config.token_ttl
end

-- GET /auth: the user and a fresh JWT. A refused login consumes a queued
-- fault as a refused token does on the other routes.
local function handle_auth(method, auth, user, fault)
  if method ~= "GET" then return fail(405, "Method not allowed") end
  if auth ~= "valid" then
    dict():incr("auth_failures", 1, 0)
    return fail(401, "wrong credentials")
  end
  if fault and fault.status and not fault.apply then return status_fault(fault) end
  local body = format('{"success":true,"payload":{"uuid":%s,"email":%s,"first_name":"Ada","last_name":"Lovelace",' ..
    '"token":"%s"}}', cjson.encode(user.uuid), cjson.encode(user.email), issue(user, token_ttl()))
  -- counted as a login when the answer says 200, however it is delivered
  if not (fault and (fault.reset or fault.status)) then dict():incr("logins", 1, 0) end
  return finish(body, fault)
end

-- Checks a bearer token request; returns {name, ttl} or nil, message.
local function parse_token_request(raw)
  local req = decode_object(raw or "")
  if not req then return nil, "request body is not a JSON object" end
  for k in pairs(req) do
    if k ~= "name" and k ~= "ttl" then return nil, "unknown field '" .. tostring(k) .. "'" end
  end
  if type(req.name) ~= "string" or req.name == "" or #req.name > 255 then
    return nil, "field 'name' must be a string of 1 to 255 bytes"
  end
  local ttl = req.ttl
  if type(ttl) ~= "number" or ttl ~= floor(ttl) or ttl < 1 or ttl > TOKEN_TTL_MAX then
    return nil, "field 'ttl' must be a whole number of seconds from 1 to " .. TOKEN_TTL_MAX
  end
  return req
end

-- POST /token {"name", "ttl"}: a bearer token for whoever asks, the user
-- of the caller's JWT or, for the static token, static_user.
local function handle_token(method, body, headers, claims, fault)
  if method ~= "POST" then return fail(405, "Method not allowed") end
  if not is_json(headers) then return fail(400, "Content-Type must be application/json") end
  local req, why = parse_token_request(body)
  if not req then return fail(400, why) end
  if fault and fault.status and not fault.apply then return status_fault(fault) end
  local who = claims and { uuid = claims.sub, email = claims.email } or static_user
  return finish(format('{"success":true,"payload":{"name":%s,"token":"%s","ttl":%d}}',
    cjson.encode(req.name), issue(who, req.ttl, req.name), req.ttl), fault)
end

-- The token a request carries, and where: the X-Auth-Token header, else
-- the `bearer` query parameter, as Opentact takes it (its own helper
-- script sends it so). When both are sent, the header is the one checked.
local function request_token(headers)
  local value = headers["x-auth-token"]
  if value ~= nil then return value, "header" end
  value = ngx.req.get_uri_args().bearer
  if value == nil then return nil end
  -- ?bearer (no value) is a wrong token, as is one sent twice (a table)
  if value == true then value = "" end
  return value, "query"
end

-- A random signing key, read once in the master: every worker inherits
-- it, and a restart makes every JWT issued before worthless.
local function random_secret()
  local f = assert(io.open("/dev/urandom", "rb"))
  local key = f:read(32)
  f:close()
  assert(key and #key == 32, "cannot read /dev/urandom")
  return key
end

-- opts.users: "email:password" pairs, each base64-encoded so that the
-- generated nginx config needs no quoting whatever the password holds.
-- User k gets seed_uuid("user", k); user 1 is also who the static token
-- stands for (the seed's account user, as in every lease's created_by).
local function load_users(list)
  users = {}
  for k, encoded in ipairs(list or {}) do
    local email, password = (ngx.decode_base64(encoded) or ""):match("^([^:]+):(.+)$")
    assert(email, "bad user " .. k)
    users[email] = { uuid = seed_uuid("user", k), email = email, password = password }
    if k == 1 then static_user = users[email] end
  end
  static_user = static_user or { uuid = seed.USER_UUID, email = "ops@example.com" }
end

-- Once, in the master, after the seed is built: the users of opts.users,
-- the signing key, the JWTs' header.
function M.init(list)
  load_users(list)
  secret = random_secret()
  JWT_HEADER = b64url('{"alg":"HS256","typ":"JWT"}')
end

M.UNAUTHORIZED, M.TOKEN_TTL_MAX = UNAUTHORIZED, TOKEN_TTL_MAX
M.request_token, M.token_state, M.check_basic = request_token, token_state, check_basic
M.handle_auth, M.handle_token = handle_auth, handle_token

return M
