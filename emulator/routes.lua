-- The API's routes: every request but the admin ones comes through
-- api(), which applies the latency and the queued fault, checks the
-- token, logs the request and hands it to its route's handler. It must
-- stay faithful to the reference page: token first, then the uuid
-- pattern, then the connection, then the body.
--
-- Routes (also under /rest/), and the module that serves each:
--   GET|POST /sip/connection/{uuid}/tnlease   list, assign / unassign            leases
--   GET|POST /sip/app/{uuid}/tnlease          the same for SIP control apps      leases
--   GET      /sip/connection[/{uuid}]         the SIP connections, or one        holders
--   GET      /sip/app[/{uuid}]                the SIP control apps, or one       holders
--   POST     /lease/tn/search?take=N&skip=N   search the account's leases        search
--   GET      /lease/tn/{tn}/tn                the lease of a phone number        leases
--   GET      /lease/tn/{uuid}                 one lease                          leases
--   PATCH    /lease/tn/{uuid}                 change a lease's settings          leases
--   DELETE   /lease/tn/{uuid}                 405: this emulator releases nothing leases
--   GET      /auth                            log in with HTTP Basic: a JWT      auth
--   POST     /token                           a long-lived bearer token (a JWT)  auth
--
-- Every route but /auth wants an X-Auth-Token (or the same token as a
-- `bearer` query parameter): the static --token, or a JWT this emulator
-- signed that has not expired.

local ngx = ngx
local cjson = require("cjson.safe")
local state = require("emulator.state")
local replies = require("emulator.replies")
local request = require("emulator.request")
local leases = require("emulator.leases")
local search = require("emulator.search")
local holders = require("emulator.holders")
local auth_mod = require("emulator.auth") -- serve() has an auth, what the credentials were
local pairs, tonumber, tostring, pcall = pairs, tonumber, tostring, pcall

local dict = state.dict
local fail, deliver = replies.fail, replies.deliver
local read_body = request.read_body
local HOLDERS, handle_holder = leases.HOLDERS, leases.handle_holder
local handle_lease_by_number, handle_lease = leases.handle_lease_by_number, leases.handle_lease
local handle_search = search.handle_search
local UNAUTHORIZED, request_token, token_state = auth_mod.UNAUTHORIZED, auth_mod.request_token, auth_mod.token_state
local check_basic, handle_auth, handle_token = auth_mod.check_basic, auth_mod.handle_auth, auth_mod.handle_token

local M = {}

local LOG_MAX = 200

-- Logs a request: never a token nor credentials, only what they were
-- (`token` on the API routes, with `token_from` "header" or "query";
-- `auth` on /auth, whose body is left out too). The path is the URI
-- without its query, which may hold the token: `query` lists the names
-- of the query's parameters (sorted), never their values.
local function record(method, uri, body, h, token, auth, from)
  local names = {}
  for name in pairs(ngx.req.get_uri_args()) do names[#names + 1] = tostring(name) end
  table.sort(names)
  local entry = cjson.encode({
    method = method, path = uri, body = not auth and body or nil,
    accept = h["accept"], content_type = h["content-type"], user_agent = h["user-agent"],
    token = token, auth = auth, token_from = from, query = names[1] and names or nil,
    connection = tonumber(ngx.var.connection),
  })
  local d = dict()
  d:rpush("log", entry)
  if d:llen("log") > LOG_MAX then d:lpop("log") end
end

-- The queued fault for this request, taken off the queue: the first one,
-- unless it has `on` (a Lua pattern over "METHOD /path") that this
-- request does not match; then it stays first and this request has none.
local function take_fault(d, method, path)
  local raw = d:lpop("faults")
  if not raw then return nil end
  local fault = cjson.decode(raw)
  if type(fault.on) == "string" and not (method .. " " .. path):find(fault.on) then
    d:lpush("faults", raw)
    return nil
  end
  return fault
end

local function serve(method, uri)
  local d = dict()
  local path = uri:gsub("^/rest/", "/")
  local fault = take_fault(d, method, path)
  local latency = d:get("latency") or 0
  if latency > 0 then ngx.sleep(latency) end
  if fault and fault.delay then ngx.sleep(tonumber(fault.delay) or 0) end

  local body = (method == "POST" or method == "PATCH") and read_body() or nil
  local headers = ngx.req.get_headers()
  local token, claims, auth, user, from
  if path == "/auth" then
    auth, user = check_basic(headers["authorization"])
  else
    local value
    value, from = request_token(headers)
    token, claims = token_state(value)
  end
  record(method, uri, body, headers, token, auth, from)

  if fault and fault.reset and not fault.apply then return ngx.exit(444) end
  if fault and fault.raw then
    return deliver(fault.status or 200, tostring(fault.raw), fault, fault.ctype or "text/html")
  end

  if auth then return handle_auth(method, auth, user, fault) end
  if token ~= "valid" then return fail(401, token == "expired" and "token expired" or UNAUTHORIZED) end
  if path == "/token" then return handle_token(method, body, headers, claims, fault) end
  if path == "/lease/tn/search" then return handle_search(method, body, headers, fault) end
  local tn = path:match("^/lease/tn/([^/]*)/tn$")
  if tn then return handle_lease_by_number(method, tn, fault) end
  local lease = path:match("^/lease/tn/([^/]*)$")
  if lease then return handle_lease(method, lease, fault, body, headers) end
  local what, one = path:match("^/sip/(%a+)/?([^/]*)$")
  if what and holders.KINDS[what] then return holders.handle(method, what, one, fault) end
  local kind, uuid = path:match("^/sip/(%a+)/([^/]*)/tnlease$")
  if not HOLDERS[kind] then return fail(404, "No route for " .. method .. " " .. uri) end
  return handle_holder(method, HOLDERS[kind], uuid, body, headers, fault)
end

function M.api()
  local d = dict()
  d:incr("requests", 1, 0)
  local inflight = d:incr("inflight", 1, 0)
  if inflight > (d:get("inflight_max") or 0) then d:set("inflight_max", inflight) end
  -- ngx.exit ends this handler at once: the log phase counts it out (M.done)
  ngx.ctx.in_flight = true
  local ok, err = pcall(serve, ngx.req.get_method(), ngx.var.uri)
  if not ok then
    ngx.log(ngx.ERR, "emulator: ", err)
    return ngx.exit(500)
  end
end

-- log phase: runs for every request, however it ended
function M.done()
  if ngx.ctx.in_flight then dict():incr("inflight", -1, 0) end
end

return M
