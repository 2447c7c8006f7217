-- The local Opentact emulator: the two SIP TN lease endpoints, stateful,
-- inside nginx with the Lua module. bin/opentact-emulator writes the
-- nginx config that loads this file in init_by_lua and routes to api()
-- and admin().
--
-- Seed data is built once in the master and inherited by every worker;
-- everything that changes lives in the shared dict, so all workers agree.
-- It must stay faithful to the reference page: token first, then the
-- uuid pattern, then the connection, then the body.

local ngx = ngx
local cjson = require("cjson.safe")
local type, ipairs, pairs, tonumber, tostring = type, ipairs, pairs, tonumber, tostring
local format, concat, floor = string.format, table.concat, math.floor

local M = {}

local UUID = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
local DICT = "opentact"
local LOG_MAX = 200

local config       -- options from the command line
local seed         -- { connections = {uuid...}, leases = {uuid...}, index = {uuid -> i}, holder = {lease uuid -> conn uuid} }
local worker_cache = {} -- conn uuid -> { version, body }

---------------------------------------------------------------- seed data

-- Deterministic uuid number `i` of a kind, shaped as a version-4 uuid.
local function seed_uuid(kind, i)
  local h = ngx.md5(kind .. ":" .. i)
  return format("%s-%s-4%s-%s%s-%s", h:sub(1, 8), h:sub(9, 12), h:sub(14, 16),
    ("89ab"):sub(tonumber(h:sub(17, 17), 16) % 4 + 1, tonumber(h:sub(17, 17), 16) % 4 + 1),
    h:sub(18, 20), h:sub(21, 32))
end

local ACCOUNT_UUID, USER_UUID, ORDER_UUID

local function iso(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", t)
end

-- The static part of lease i as JSON: every field of the full TNLease
-- object, with sip_connection and modified_on filled in per answer.
local function lease_template(i, uuid)
  local tn = 12125550000 + i
  local created = 1780000000 + i * 3600
  local account = format(
    '{"uuid":"%s","name":"Société Télécom Ünïon","email":"noc@example.com","level":"ServiceAccount",' ..
    '"balance":1250.75,"class4_id":4021,"deleted_on":null,"time_zone":"America/New_York","users":[],' ..
    '"admin":null,"messaging_profile_default":null,"messaging_profiles":[],"addresses":[]}', ACCOUNT_UUID)
  local user = format('{"uuid":"%s","email":"ops@example.com","first_name":"Ada","last_name":"Lovelace"}', USER_UUID)
  local tnorder = i % 2 == 0 and "null" or format(
    '{"uuid":"%s","state":"created","tns":[%d],"account":null,"profile":null,"sip_connection":null,' ..
    '"sip_control_app":null,"request":null,"price":0.5,"autorenew":true,"tnleases":[]}', ORDER_UUID, tn)
  local head = format(
    '{"uuid":"%s","created_on":"%s","expired_on":"%s","autorenew":%s,"class4_product_item_id":%d,' ..
    '"tn":{"tn":%d,"class4_did_id":%d,"registered":%s,"tnlease":null,"profile":null,"deleted_on":null},' ..
    '"account":%s,"tnorder":%s,"messaging_profile":null,"sip_control_app":null,' ..
    '"created_by":%s,"modified_by":%s,"modified_on":"',
    uuid, iso(created), iso(created + 365 * 86400), i % 3 == 0 and "false" or "true", 7000 + i,
    tn, 90000 + i, i % 5 == 0 and "false" or "true", account, tnorder, user, user)
  return head
end

local function build_seed(connections, leases)
  local s = { connections = {}, leases = {}, index = {}, templates = {}, created = {}, holder = {}, conn_json = {} }
  ACCOUNT_UUID = seed_uuid("account", 1)
  USER_UUID = seed_uuid("user", 1)
  ORDER_UUID = seed_uuid("tnorder", 1)
  for i = 1, connections do
    local u = seed_uuid("connection", i)
    s.connections[i] = u
    s.conn_json[u] = format('{"uuid":"%s","name":"sip-trunk-%d"}', u, i)
  end
  for i = 1, leases do
    local u = seed_uuid("lease", i)
    s.leases[i] = u
    s.index[u] = i
    s.templates[i] = lease_template(i, u)
    s.created[i] = iso(1780000000 + i * 3600)
  end
  -- the first connection holds the first three leases
  if connections > 0 then
    for i = 1, leases < 3 and leases or 3 do s.holder[s.leases[i]] = s.connections[1] end
  end
  return s
end

---------------------------------------------------------------- state

local function dict() return ngx.shared[DICT] end

-- A lease's state is one key, "L:<uuid>" = "<holder>|<seq>|<modified_on>":
-- the holder is a connection uuid or empty, seq orders a connection's
-- leases, modified_on is empty until a change. An assign then costs one
-- read and one write per lease it names, however many leases there are.
local function encode_state(holder, seq, modified)
  return holder .. "|" .. seq .. "|" .. modified
end

local function decode_state(v)
  local holder, seq, modified = v:match("^([^|]*)|(%d+)|(.*)$")
  return holder, tonumber(seq), modified
end

local function reset_state()
  local d = dict()
  -- answers are cached per version in every worker: it must never repeat
  local version = (d:get("version") or 0) + 1
  d:flush_all()
  d:flush_expired()
  for _, conn in ipairs(seed.connections) do d:set("conn:" .. conn, true) end
  for i, lease in ipairs(seed.leases) do
    d:set("L:" .. lease, encode_state(seed.holder[lease] or "", i, ""))
  end
  d:set("seq", #seed.leases)
  d:set("version", version)
  d:set("latency", config.latency or 0)
  d:set("requests", 0)
  d:set("inflight", 0)
  d:set("inflight_max", 0)
end

-- The leases a connection holds, in the order they were attached, as
-- { uuid, holder, modified } records.
local function held_by(conn)
  local d, out, seq = dict(), {}, {}
  for _, lease in ipairs(seed.leases) do
    local holder, n, modified = decode_state(d:get("L:" .. lease))
    if holder == conn then
      local r = { lease, holder, modified }
      out[#out + 1] = r
      seq[r] = n
    end
  end
  table.sort(out, function(a, b) return seq[a] < seq[b] end)
  return out
end

-- Appends lease's JSON to the answer being built in `buf` as pieces, so
-- a long answer is joined once instead of lease by lease.
local function add_lease(buf, lease, holder, modified)
  local i = seed.index[lease]
  local n = #buf
  if n > 1 then buf[n + 1] = "," n = n + 1 end
  buf[n + 1] = seed.templates[i]
  buf[n + 2] = modified ~= "" and modified or seed.created[i]
  buf[n + 3] = '","sip_connection":'
  buf[n + 4] = seed.conn_json[holder] or "null"
  buf[n + 5] = "}"
end

---------------------------------------------------------------- answers

local function send(status, body, headers, ctype)
  ngx.status = status
  ngx.header["Content-Type"] = ctype or "application/json"
  if headers then
    for k, v in pairs(headers) do ngx.header[k] = v end
  end
  ngx.header["Content-Length"] = #body
  ngx.print(body)
  return ngx.exit(status)
end

local function fail(status, message, headers)
  return send(status, cjson.encode({ success = false, message = message, status = status }), headers)
end

local function answer_buffer()
  return { '{"success":true,"payload":[' }
end

local function success(buf)
  buf[#buf + 1] = "]}"
  return concat(buf)
end

-- Sends `body` as the fault asks: whole, chunked, or truncated then closed.
local function deliver(status, body, fault, ctype, headers)
  if fault and fault.truncate then
    ngx.status = status
    ngx.header["Content-Type"] = ctype or "application/json"
    ngx.header["Content-Length"] = #body
    ngx.print(body:sub(1, floor(#body / 2)))
    ngx.flush(true)
    return ngx.exit(444)
  end
  if fault and fault.chunked then
    ngx.status = status
    ngx.header["Content-Type"] = ctype or "application/json"
    local step = math.max(1, floor(#body / 4))
    for i = 1, #body, step do
      ngx.print(body:sub(i, i + step - 1))
      ngx.flush(true)
    end
    return ngx.exit(status)
  end
  return send(status, body, headers, ctype)
end

---------------------------------------------------------------- the API

local function handle_list(conn, fault)
  local d = dict()
  local version = d:get("version")
  local cached = worker_cache[conn]
  if cached and cached.version == version then return deliver(200, cached.body, fault) end
  local buf = answer_buffer()
  for _, r in ipairs(held_by(conn)) do add_lease(buf, r[1], r[2], r[3]) end
  local body = success(buf)
  worker_cache[conn] = { version = version, body = body }
  return deliver(200, body, fault)
end

-- Answers as a fault with a status asks (before the request is applied).
local function status_fault(fault)
  local extra = fault.retry_after and { ["Retry-After"] = tostring(fault.retry_after) } or nil
  if fault.body then
    return deliver(fault.status, tostring(fault.body), fault, fault.ctype or "text/html", extra)
  end
  return fail(fault.status, fault.message or "emulated fault", extra)
end

-- GET /lease/tn/{tn}/tn: the lease of a phone number, given as digits.
local function handle_lease_by_number(method, tn, fault)
  if method ~= "GET" then return fail(405, "Method not allowed") end
  if not tn:find("^%d+$") then return fail(400, "tn must be the phone number's digits") end
  if fault and fault.status and not fault.apply then return status_fault(fault) end
  -- the seed gives lease i the number 12125550000 + i
  local i = #tn <= 15 and tonumber(tn) - 12125550000
  local lease = i and i >= 1 and seed.leases[i]
  if not lease then return fail(404, "TNLease not found for tn " .. tn) end
  local holder, _, modified = decode_state(dict():get("L:" .. lease))
  local buf = { '{"success":true,"payload":' }
  add_lease(buf, lease, holder, modified)
  buf[#buf + 1] = "}"
  return deliver(200, concat(buf), fault)
end

local function read_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body then
    local file = ngx.req.get_body_file()
    if file then
      local f = io.open(file, "rb")
      if f then body = f:read("*a") f:close() end
    end
  end
  return body
end

-- Checks an assign body; returns {add = {...}, remove = {...}} or nil, message.
local function parse_changes(raw)
  if not raw or raw == "" then return nil, "request body is empty" end
  local changes = cjson.decode(raw)
  if type(changes) ~= "table" or changes[1] ~= nil then return nil, "request body is not a JSON object" end
  local out = { add = {}, remove = {} }
  for key, list in pairs(changes) do
    if key ~= "add" and key ~= "remove" then return nil, "unknown field '" .. tostring(key) .. "'" end
    if type(list) ~= "table" then return nil, "'" .. key .. "' must be an array of strings" end
    for i = 1, #list do
      local u = list[i]
      if type(u) ~= "string" then return nil, "'" .. key .. "' must be an array of strings" end
      if not ngx.re.find(u, UUID, "jo") then return nil, "invalid TNLease uuid '" .. u .. "'" end
      if not seed.index[u] then return nil, "TNLease " .. u .. " not found" end
      out[key][#out[key] + 1] = u
    end
  end
  if #out.add == 0 and #out.remove == 0 then return nil, "nothing to add or remove" end
  return out
end

local function apply(conn, changes)
  local d = dict()
  local stamp = iso(ngx.time())
  local out = answer_buffer()
  for _, lease in ipairs(changes.add) do
    local key = "L:" .. lease
    local holder, _, modified = decode_state(d:get(key))
    if holder ~= conn then
      holder, modified = conn, stamp
      d:set(key, encode_state(holder, d:incr("seq", 1, 0), modified))
    end
    add_lease(out, lease, holder, modified)
  end
  for _, lease in ipairs(changes.remove) do
    local key = "L:" .. lease
    local holder, seq, modified = decode_state(d:get(key))
    if holder == conn then
      holder, modified = "", stamp
      d:set(key, encode_state(holder, seq, modified))
    end
    add_lease(out, lease, holder, modified)
  end
  d:incr("version", 1, 0)
  return success(out)
end

local function record(method, uri, body, h)
  local token = h["x-auth-token"]
  local entry = cjson.encode({
    method = method, path = uri, body = body,
    accept = h["accept"], content_type = h["content-type"], user_agent = h["user-agent"],
    token = token == nil and "missing" or (token == config.token and "valid" or "wrong"),
    connection = tonumber(ngx.var.connection),
  })
  local d = dict()
  d:rpush("log", entry)
  if d:llen("log") > LOG_MAX then d:lpop("log") end
end

local function serve(method, uri)
  local d = dict()
  local raw_fault = d:lpop("faults")
  local fault = raw_fault and cjson.decode(raw_fault) or nil
  local latency = d:get("latency") or 0
  if latency > 0 then ngx.sleep(latency) end
  if fault and fault.delay then ngx.sleep(tonumber(fault.delay) or 0) end

  local body = method == "POST" and read_body() or nil
  local headers = ngx.req.get_headers()
  record(method, uri, body, headers)

  if fault and fault.reset and not fault.apply then return ngx.exit(444) end
  if fault and fault.raw then
    return deliver(fault.status or 200, tostring(fault.raw), fault, fault.ctype or "text/html")
  end

  if headers["x-auth-token"] ~= config.token then
    return fail(401, "Unauthorized: missing or invalid X-Auth-Token")
  end
  local path = uri:gsub("^/rest/", "/")
  local tn = path:match("^/lease/tn/([^/]*)/tn$")
  if tn then return handle_lease_by_number(method, tn, fault) end
  local conn = path:match("^/sip/connection/([^/]*)/tnlease$")
  if not conn then return fail(404, "No route for " .. method .. " " .. uri) end
  if not ngx.re.find(conn, UUID, "jo") then
    return fail(400, "uuid must match " .. UUID)
  end
  if method ~= "GET" and method ~= "POST" then return fail(405, "Method not allowed") end
  if not d:get("conn:" .. conn) then return fail(404, "SIP connection not found") end

  if fault and fault.status and not fault.apply then return status_fault(fault) end

  if method == "GET" then return handle_list(conn, fault) end

  local ctype = headers["content-type"] or ""
  if not ctype:find("^application/json") then
    return fail(400, "Content-Type must be application/json")
  end
  local changes, why = parse_changes(body)
  if not changes then return fail(400, why) end
  local answer = apply(conn, changes)
  if fault and fault.reset then return ngx.exit(444) end
  if fault and fault.status then return fail(fault.status, fault.message or "emulated fault") end
  return deliver(200, answer, fault)
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

---------------------------------------------------------------- admin

local function assigned()
  local out = {}
  -- encoded by hand: an empty list must stay [] in JSON
  for _, conn in ipairs(seed.connections) do
    local held = {}
    for i, r in ipairs(held_by(conn)) do held[i] = r[1] end
    out[#out + 1] = cjson.encode(conn) .. ":[" .. (#held > 0 and '"' .. concat(held, '","') .. '"' or "") .. "]"
  end
  return "{" .. concat(out, ",") .. "}"
end

local ADMIN = {}

function ADMIN.GET_state()
  local body = cjson.encode({ connections = seed.connections, leases = seed.leases })
  return send(200, body:sub(1, -2) .. ',"assigned":' .. assigned() .. "}")
end

function ADMIN.POST_reset()
  reset_state()
  return send(200, '{"success":true}')
end

function ADMIN.POST_faults()
  ngx.req.read_body()
  local list = cjson.decode(ngx.req.get_body_data() or "")
  if type(list) ~= "table" or (next(list) ~= nil and list[1] == nil) then
    return fail(400, "faults must be a JSON list of objects")
  end
  local d = dict()
  for _, f in ipairs(list) do
    if type(f) ~= "table" then return fail(400, "each fault must be an object") end
  end
  for _, f in ipairs(list) do d:rpush("faults", cjson.encode(f)) end
  return send(200, cjson.encode({ queued = d:llen("faults") or 0 }))
end

function ADMIN.POST_config()
  ngx.req.read_body()
  local c = cjson.decode(ngx.req.get_body_data() or "")
  if type(c) ~= "table" then return fail(400, "config must be a JSON object") end
  if c.latency ~= nil then
    if type(c.latency) ~= "number" or c.latency < 0 then return fail(400, "latency must be a number >= 0") end
    dict():set("latency", c.latency)
  end
  return send(200, cjson.encode({ latency = dict():get("latency") }))
end

function ADMIN.GET_requests()
  local d = dict()
  local out = {}
  -- read the log without consuming it: pop all, push back
  local n = d:llen("log") or 0
  for _ = 1, n do
    local e = d:lpop("log")
    if e then
      out[#out + 1] = e
      d:rpush("log", e)
    end
  end
  return send(200, "[" .. concat(out, ",") .. "]")
end

function ADMIN.GET_stats()
  local d = dict()
  return send(200, cjson.encode({
    requests = d:get("requests") or 0,
    inflight = d:get("inflight") or 0,
    inflight_max = d:get("inflight_max") or 0,
    faults_pending = d:llen("faults") or 0,
  }))
end

function M.admin()
  local name = ngx.var.uri:match("^/__emulator/([%w_]+)$")
  local handler = name and ADMIN[ngx.req.get_method() .. "_" .. name]
  if not handler then return fail(404, "unknown emulator route") end
  return handler()
end

---------------------------------------------------------------- start

function M.init(opts)
  config = opts
  seed = build_seed(opts.connections or 4, opts.leases or 100)
  reset_state()
end

return M
