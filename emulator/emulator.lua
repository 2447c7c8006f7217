-- The local Opentact emulator: the SIP TN lease endpoints, stateful,
-- inside nginx with the Lua module. bin/opentact-emulator writes the
-- nginx config that loads this file in init_by_lua and routes to api()
-- and admin().
--
-- Seed data is built once in the master and inherited by every worker;
-- everything that changes lives in the shared dict, so all workers agree.
-- It must stay faithful to the reference page: token first, then the
-- uuid pattern, then the connection, then the body.
--
-- Routes (also under /rest/):
--   GET|POST /sip/connection/{uuid}/tnlease   list, assign / unassign
--   GET|POST /sip/app/{uuid}/tnlease          the same for SIP control apps
--   POST     /lease/tn/search?take=N&skip=N   search the account's leases
--   GET      /lease/tn/{tn}/tn                the lease of a phone number
--   GET      /lease/tn/{uuid}                 one lease
--   GET      /auth                            log in with HTTP Basic: a JWT
--   POST     /token                           a long-lived bearer token (a JWT)
--
-- Every route but /auth wants an X-Auth-Token (or the same token as a
-- `bearer` query parameter): the static --token, or a JWT this emulator
-- signed that has not expired.

local ngx = ngx
local cjson = require("cjson.safe")
local bit = require("bit")
local type, ipairs, pairs, next, tonumber, tostring = type, ipairs, pairs, next, tonumber, tostring
local format, concat, floor, min = string.format, table.concat, math.floor, math.min
local byte, char, find, sub = string.byte, string.char, string.find, string.sub

local M = {}

local UUID = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
local DICT = "opentact"
local LOG_MAX = 200
local TN_BASE = 12125550000 -- the seed gives lease i the number TN_BASE + i
local SEARCHES_MAX = 64     -- distinct filters a worker keeps per state version

local config       -- options from the command line
local seed         -- the seed: see build_seed
local users = {}   -- email -> { uuid, email, password }, from --user
local secret       -- the JWT signing key, random per start: see M.init
local static_user  -- { uuid, email } the static token stands for: see M.init
local worker_cache = {} -- "conn:"/"app:" .. uuid -> { version, body }

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
-- object but the ones that change, which add_lease appends per answer
-- (modified_on, sip_connection, sip_control_app, in that order).
local function lease_template(i, uuid)
  local tn = TN_BASE + i
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
    '"account":%s,"tnorder":%s,"messaging_profile":null,' ..
    '"created_by":%s,"modified_by":%s,"modified_on":"',
    uuid, iso(created), iso(created + 365 * 86400), i % 3 == 0 and "false" or "true", 7000 + i,
    tn, 90000 + i, i % 5 == 0 and "false" or "true", account, tnorder, user, user)
  return head
end

-- The seed: connections, apps and leases (uuids in seed order), index
-- (lease uuid -> i), per lease i its template, created_on, number (the
-- phone number's digits) and autorenew, the holders at seed time (lease
-- uuid -> connection / app uuid) and each holder's JSON.
local function build_seed(connections, leases, apps)
  local s = { connections = {}, apps = {}, leases = {}, index = {}, templates = {}, created = {},
    numbers = {}, autorenew = {}, holder = {}, app_holder = {}, conn_json = {}, app_json = {} }
  ACCOUNT_UUID = seed_uuid("account", 1)
  USER_UUID = seed_uuid("user", 1)
  ORDER_UUID = seed_uuid("tnorder", 1)
  for i = 1, connections do
    local u = seed_uuid("connection", i)
    s.connections[i] = u
    s.conn_json[u] = format('{"uuid":"%s","name":"sip-trunk-%d"}', u, i)
  end
  for k = 1, apps do
    local u = seed_uuid("app", k)
    s.apps[k] = u
    s.app_json[u] = format('{"uuid":"%s","name":"control-app-%d"}', u, k)
  end
  for i = 1, leases do
    local u = seed_uuid("lease", i)
    s.leases[i] = u
    s.index[u] = i
    s.templates[i] = lease_template(i, u)
    s.created[i] = iso(1780000000 + i * 3600)
    s.numbers[i] = format("%.0f", TN_BASE + i)
    s.autorenew[i] = i % 3 ~= 0 -- as the template says
  end
  -- the first connection holds the first three leases
  if connections > 0 then
    for i = 1, leases < 3 and leases or 3 do s.holder[s.leases[i]] = s.connections[1] end
  end
  -- app k holds lease (leases - k + 1), the last ones, unless a connection
  -- holds it: a lease is never on both at seed time
  for k = 1, apps do
    local lease = s.leases[leases - k + 1]
    if lease and not s.holder[lease] then s.app_holder[lease] = s.apps[k] end
  end
  return s
end

---------------------------------------------------------------- state

local function dict() return ngx.shared[DICT] end

-- A lease's state is one key, "L:<uuid>" = "<conn>|<seq>|<modified_on>|<app>":
-- conn and app are the holding connection and control app uuids or empty,
-- seq orders a holder's leases (it grows each time a lease gains a
-- holder), modified_on is empty until a change. An assign then costs one
-- read and one write per lease it names, however many leases there are.
local function encode_state(conn, seq, modified, app)
  return conn .. "|" .. seq .. "|" .. modified .. "|" .. app
end

-- With plain finds, which LuaJIT compiles (a pattern match it does not):
-- a snapshot decodes every lease after a reset.
local function decode_state(v)
  local a = find(v, "|", 1, true)
  local b = find(v, "|", a + 1, true)
  local c = find(v, "|", b + 1, true)
  return sub(v, 1, a - 1), tonumber(sub(v, a + 1, b - 1)), sub(v, b + 1, c - 1), sub(v, c + 1)
end

local function reset_state()
  local d = dict()
  -- answers are cached per version in every worker: it must never repeat
  local version = (d:get("version") or 0) + 1
  d:flush_all()
  d:flush_expired()
  for _, conn in ipairs(seed.connections) do d:set("conn:" .. conn, true) end
  for _, app in ipairs(seed.apps) do d:set("app:" .. app, true) end
  for i, lease in ipairs(seed.leases) do
    d:set("L:" .. lease, encode_state(seed.holder[lease] or "", i, "", seed.app_holder[lease] or ""))
  end
  d:set("seq", #seed.leases)
  d:set("version", version)
  d:set("latency", config.latency or 0)
  d:set("requests", 0)
  d:set("inflight", 0)
  d:set("inflight_max", 0)
  d:set("token_ttl", config.token_ttl)
  d:set("logins", 0)
  d:set("auth_failures", 0)
end

-- Every change to the state but a reset ends with bump(): it raises the
-- version after its writes and notes which leases it changed under the
-- new version ("C:<version>" = their seed indexes), for snapshot().
local JOURNAL = 256         -- versions whose changes are kept
local JOURNAL_LEASES = 1000 -- a change of more leases is not noted: rereading all costs no more

local function bump(d, changed)
  local version = d:incr("version", 1, 0)
  if #changed <= JOURNAL_LEASES then d:set("C:" .. version, "," .. concat(changed, ",")) end
  d:delete("C:" .. (version - JOURNAL))
end

-- Every lease's state as of one state version, decoded into arrays by
-- seed index, kept per worker. The version is read before the leases, and
-- every change raises it after its writes, so a snapshot is never older
-- than the version it is filed under. A snapshot a few versions behind
-- rereads only the leases the journal names (an assign of 100 leases
-- costs 100 reads, not one per lease of the account); without a journal
-- entry for every version in between (a reset, or too far behind) it
-- rereads them all.
local snap = {}

local function reread(d, version)
  local changed = {}
  for v = snap.version + 1, version do
    local list = d:get("C:" .. v)
    if not list then return false end
    -- ",i,j,...": seed indexes after commas
    local at = find(list, ",", 1, true)
    while at do
      local after = find(list, ",", at + 1, true)
      changed[#changed + 1] = tonumber(sub(list, at + 1, after and after - 1 or -1))
      at = after
    end
  end
  -- in place: a request uses its snapshot without yielding in between,
  -- so no request still holds the older one
  local conn, seq, modified, app = snap.conn, snap.seq, snap.modified, snap.app
  for _, i in ipairs(changed) do
    conn[i], seq[i], modified[i], app[i] = decode_state(d:get("L:" .. seed.leases[i]))
  end
  snap.version = version
  return true
end

local function snapshot()
  local d = dict()
  local version = d:get("version") or 0
  if snap.version == version then return snap end
  if snap.version and version > snap.version and version - snap.version < JOURNAL and reread(d, version) then
    return snap
  end
  local s = { version = version, conn = {}, seq = {}, modified = {}, app = {} }
  local conn, seq, modified, app = s.conn, s.seq, s.modified, s.app
  for i, lease in ipairs(seed.leases) do
    conn[i], seq[i], modified[i], app[i] = decode_state(d:get("L:" .. lease))
  end
  snap = s
  return s
end

-- The seed indexes of the leases a holder has (`field` "conn" or "app" of
-- a snapshot), in the order they were attached.
local function held_by(s, field, uuid)
  local holders, seq, out = s[field], s.seq, {}
  -- sorted as numbers seq * (n + 1) + i, without a Lua comparison
  -- function, which LuaJIT would call from C for each comparison
  local n = #seed.leases
  for i = 1, n do
    if holders[i] == uuid then out[#out + 1] = seq[i] * (n + 1) + i end
  end
  table.sort(out)
  for k = 1, #out do out[k] = out[k] % (n + 1) end
  return out
end

-- Appends lease i's JSON to the answer being built in `buf` as pieces, so
-- a long answer is joined once instead of lease by lease. buf[1] is the
-- answer's head.
local function add_lease(buf, i, conn, modified, app)
  local n = #buf
  if n > 1 then buf[n + 1] = "," n = n + 1 end
  buf[n + 1] = seed.templates[i]
  buf[n + 2] = modified ~= "" and modified or seed.created[i]
  buf[n + 3] = '","sip_connection":'
  buf[n + 4] = seed.conn_json[conn] or "null"
  buf[n + 5] = ',"sip_control_app":'
  buf[n + 6] = seed.app_json[app] or "null"
  buf[n + 7] = "}"
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

-- Answers as a fault with a status asks.
local function status_fault(fault)
  local extra = fault.retry_after and { ["Retry-After"] = tostring(fault.retry_after) } or nil
  if fault.body then
    return deliver(fault.status, tostring(fault.body), fault, fault.ctype or "text/html", extra)
  end
  return fail(fault.status, fault.message or "emulated fault", extra)
end

-- Sends a successful answer, unless a fault that waited for the request
-- to be applied (`apply`) closes the connection or answers its status.
local function finish(body, fault)
  if fault and fault.reset then return ngx.exit(444) end
  if fault and fault.status then return status_fault(fault) end
  return deliver(200, body, fault)
end

---------------------------------------------------------------- requests

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

local function is_json(headers)
  local ctype = headers["content-type"]
  return type(ctype) == "string" and ctype:find("^application/json") ~= nil
end

-- A JSON object, checked on the text too: lua-cjson decodes {} and [] alike.
local function decode_object(raw)
  local v = cjson.decode(raw)
  if type(v) ~= "table" or not raw:find("^%s*{") then return nil end
  return v
end

local function is_uuid(v)
  return type(v) == "string" and ngx.re.find(v, UUID, "jo") ~= nil
end

---------------------------------------------------------------- list and assign

-- The two kinds of lease holder: `key` prefixes a holder's dict key,
-- `field` names the lease state's part (and the snapshot's array), and
-- `other` / `other_field` the kind a lease must not be on when this one
-- takes it.
local HOLDERS = {
  connection = { key = "conn:", field = "conn", missing = "SIP connection not found",
    other = "SIP control app", other_field = "app" },
  app = { key = "app:", field = "app", missing = "SIP control app not found",
    other = "SIP connection", other_field = "conn" },
}

local function handle_list(kind, uuid, fault)
  local s = snapshot()
  local key = kind.key .. uuid
  local cached = worker_cache[key]
  if cached and cached.version == s.version then return finish(cached.body, fault) end
  local buf = answer_buffer()
  for _, i in ipairs(held_by(s, kind.field, uuid)) do add_lease(buf, i, s.conn[i], s.modified[i], s.app[i]) end
  local body = success(buf)
  worker_cache[key] = { version = s.version, body = body }
  return finish(body, fault)
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

-- Works an assign out without writing it: returns { answer = JSON text,
-- writes = leases to write in order, states = lease -> new state }, or
-- nil and a message when the request is refused. So a refused request
-- changes nothing, and a faked one can answer all the same.
local function plan(kind, target, changes)
  local d = dict()
  local field = kind.field
  local states = {} -- lease -> { conn = , seq = , modified = , app = }, as this request leaves it
  local function state(lease)
    local st = states[lease]
    if not st then
      st = {}
      st.conn, st.seq, st.modified, st.app = decode_state(d:get("L:" .. lease))
      states[lease] = st
    end
    return st
  end
  -- a lease on the other kind of holder refuses the whole request
  for _, lease in ipairs(changes.add) do
    local other = state(lease)[kind.other_field]
    if other ~= "" then
      return nil, "TNLease " .. lease .. " is assigned to " .. kind.other .. " " .. other
    end
  end
  local stamp = iso(ngx.time())
  local out, writes = answer_buffer(), {}
  local function step(lease, holder)
    local st = state(lease)
    if st[field] ~= holder then
      st[field], st.modified = holder, stamp
      -- a lease gaining a holder goes to the end of that holder's list
      if holder ~= "" then st.new_seq = true end
      writes[#writes + 1] = lease
    end
    add_lease(out, seed.index[lease], st.conn, st.modified, st.app)
  end
  for _, lease in ipairs(changes.add) do step(lease, target) end
  for _, lease in ipairs(changes.remove) do
    -- removing a lease the target does not hold changes nothing
    local holder = state(lease)[field]
    step(lease, holder == target and "" or holder)
  end
  return { answer = success(out), writes = writes, states = states }
end

-- Writes what plan() worked out, in request order, then bumps the version.
local function commit(p)
  local d = dict()
  local changed = {}
  for k, lease in ipairs(p.writes) do
    local st = p.states[lease]
    if st.new_seq then st.seq, st.new_seq = d:incr("seq", 1, 0), nil end
    d:set("L:" .. lease, encode_state(st.conn, st.seq, st.modified, st.app))
    changed[k] = seed.index[lease]
  end
  bump(d, changed)
end

local function handle_holder(method, kind, uuid, body, headers, fault)
  if not ngx.re.find(uuid, UUID, "jo") then
    return fail(400, "uuid must match " .. UUID)
  end
  if method ~= "GET" and method ~= "POST" then return fail(405, "Method not allowed") end
  if not dict():get(kind.key .. uuid) then return fail(404, kind.missing) end

  if fault and fault.status and not fault.apply then return status_fault(fault) end

  if method == "GET" then return handle_list(kind, uuid, fault) end

  if not is_json(headers) then return fail(400, "Content-Type must be application/json") end
  local changes, why = parse_changes(body)
  if not changes then return fail(400, why) end
  local p, refused = plan(kind, uuid, changes)
  if not p then return fail(409, refused) end
  -- a fake fault: the server says it applied the change and did not
  if not (fault and fault.fake) then commit(p) end
  return finish(p.answer, fault)
end

---------------------------------------------------------------- single leases

local function one_lease(i, fault)
  local s = snapshot()
  local buf = { '{"success":true,"payload":' }
  add_lease(buf, i, s.conn[i], s.modified[i], s.app[i])
  buf[#buf + 1] = "}"
  return finish(concat(buf), fault)
end

-- GET /lease/tn/{tn}/tn: the lease of a phone number, given as digits.
local function handle_lease_by_number(method, tn, fault)
  if method ~= "GET" then return fail(405, "Method not allowed") end
  if not tn:find("^%d+$") then return fail(400, "tn must be the phone number's digits") end
  if fault and fault.status and not fault.apply then return status_fault(fault) end
  local i = #tn <= 15 and tonumber(tn) - TN_BASE
  if not (i and i >= 1 and seed.leases[i]) then return fail(404, "TNLease not found for tn " .. tn) end
  return one_lease(i, fault)
end

-- GET /lease/tn/{uuid}: one lease.
local function handle_lease(method, uuid, fault)
  if method ~= "GET" then return fail(405, "Method not allowed") end
  if not ngx.re.find(uuid, UUID, "jo") then return fail(400, "uuid must match " .. UUID) end
  if fault and fault.status and not fault.apply then return status_fault(fault) end
  local i = seed.index[uuid]
  if not i then return fail(404, "TNLease not found") end
  return one_lease(i, fault)
end

---------------------------------------------------------------- search

-- Each filter field's check: returns the value to filter with and its
-- canonical text (for the cache key), or nil and a message naming the
-- field. JSON null is a wrong type for every field: an absent field is
-- how a filter says "any".

local function want(name, what)
  return nil, "field '" .. name .. "' must be " .. what
end

-- tn: digits, '*' for any run of digits, '%' for one digit. A run of
-- '*' is one '*', so the backtracking of the Lua pattern stays bounded.
local function check_tn(v, name)
  if type(v) ~= "string" or not v:find("^[%d*%%]+$") or #v > 64 then
    return want(name, "a string of digits, '*' (any digits) and '%' (one digit)")
  end
  v = v:gsub("%*+", "*")
  local fixed = #(v:gsub("%*", "")) -- how many digits the mask needs at least
  local pattern = "^" .. v:gsub("[*%%]", { ["*"] = "%d*", ["%"] = "%d" }) .. "$"
  return { pattern = pattern, fixed = fixed }, v
end

local function check_uuid(v, name)
  if not is_uuid(v) then return want(name, "a lower-case uuid string") end
  return v, v
end

local function check_uuids(v, name)
  local what = "an array of lower-case uuid strings"
  if type(v) ~= "table" then return want(name, what) end
  local n, set, list = 0, {}, {}
  for _ in pairs(v) do n = n + 1 end
  if n ~= #v then return want(name, what) end
  for i = 1, n do
    if not is_uuid(v[i]) then return want(name, what) end
    if not set[v[i]] then set[v[i]] = true list[#list + 1] = v[i] end
  end
  table.sort(list)
  return set, concat(list, ",")
end

local function check_bool(v, name)
  if type(v) ~= "boolean" then return want(name, "a boolean") end
  return v, tostring(v)
end

local function check_mode(v, name)
  if v ~= "AND" and v ~= "OR" then return want(name, '"AND" or "OR"') end
  return v, v
end

local ORDER_FIELDS = { tn = true, created_on = true, modified_on = true }

local function check_order(v, name)
  local what = 'an object of one key, "tn", "created_on" or "modified_on", to "ASC" or "DESC"'
  if type(v) ~= "table" then return want(name, what) end
  local key, dir = next(v)
  if key == nil or next(v, key) ~= nil or not ORDER_FIELDS[key] or (dir ~= "ASC" and dir ~= "DESC") then
    return want(name, what)
  end
  return { field = key, dir = dir }, key .. ":" .. dir
end

-- ISO-8601: a date, then optionally a time and a zone. Bounds compare as
-- strings against the lease's, which are all "YYYY-MM-DDThh:mm:ssZ".
local function check_date(v, name)
  if type(v) ~= "string" or not (v:find("^%d%d%d%d%-%d%d%-%d%d$") or v:find("^%d%d%d%d%-%d%d%-%d%dT[%d:.Z+%-]+$")) then
    return want(name, "an ISO-8601 date string (YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ)")
  end
  return v, v
end

-- The filter fields in the order of the cache key.
local FILTER = {
  { "tn", check_tn },
  { "sip_connection", check_uuid },
  { "sip_control_app", check_uuid },
  { "sip_connections_skip", check_uuids },
  { "autorenew", check_bool },
  { "mode", check_mode },
  { "order", check_order },
  { "created_on_from", check_date },
  { "created_on_to", check_date },
  { "modified_on_from", check_date },
  { "modified_on_to", check_date },
}
local FILTER_KNOWN = {}
for _, f in ipairs(FILTER) do FILTER_KNOWN[f[1]] = true end

-- Checks a search body; returns the filter (checked values by field, and
-- `key`, one string for all equal filters) or nil, message.
local function parse_filter(raw)
  local body = {}
  if raw and raw ~= "" then
    body = decode_object(raw)
    if not body then return nil, "request body is not a JSON object" end
  end
  for k in pairs(body) do
    if not FILTER_KNOWN[k] then return nil, "unknown field '" .. tostring(k) .. "'" end
  end
  local filter, key = {}, {}
  for _, f in ipairs(FILTER) do
    local name, check = f[1], f[2]
    if body[name] ~= nil then
      local v, text = check(body[name], name)
      if v == nil then return nil, text end
      filter[name] = v
      key[#key + 1] = name .. "=" .. text
    end
  end
  if not filter.mode then filter.mode = "AND" key[#key + 1] = "mode=AND" end
  if not filter.order then
    filter.order = { field = "created_on", dir = "DESC" }
    key[#key + 1] = "order=created_on:DESC"
  end
  filter.key = concat(key, "\n")
  return filter
end

local function modified_on(s, i)
  local m = s.modified[i]
  return m ~= "" and m or seed.created[i]
end

-- The filter's criteria as tests of lease i in snapshot s. A date range
-- (its _from and _to) is one criterion, so mode OR means "in the range
-- or matching another criterion", not "after from or before to".
local function criteria(f)
  local tests = {}
  if f.tn then
    local pattern, fixed, numbers = f.tn.pattern, f.tn.fixed, seed.numbers
    tests[#tests + 1] = function(i)
      local n = numbers[i]
      return #n >= fixed and n:find(pattern) ~= nil
    end
  end
  if f.sip_connection then
    local u = f.sip_connection
    tests[#tests + 1] = function(i, s) return s.conn[i] == u end
  end
  if f.sip_control_app then
    local u = f.sip_control_app
    tests[#tests + 1] = function(i, s) return s.app[i] == u end
  end
  if f.sip_connections_skip then
    local set = f.sip_connections_skip
    tests[#tests + 1] = function(i, s) return not set[s.conn[i]] end
  end
  if f.autorenew ~= nil then
    local want_renew = f.autorenew
    tests[#tests + 1] = function(i) return seed.autorenew[i] == want_renew end
  end
  local function range(from, to, value)
    if not (from or to) then return end
    tests[#tests + 1] = function(i, s)
      local v = value(s, i)
      return (not from or v >= from) and (not to or v <= to)
    end
  end
  range(f.created_on_from, f.created_on_to, function(_, i) return seed.created[i] end)
  range(f.modified_on_from, f.modified_on_to, modified_on)
  return tests
end

local function reverse(list)
  local n = #list
  for k = 1, floor(n / 2) do list[k], list[n + 1 - k] = list[n + 1 - k], list[k] end
  return list
end

-- Seed indexes `out` (ascending) in modified_on order, ties by index
-- ascending. A lease never modified shows its created_on, which grows
-- with the index: those are in order already, so only the modified ones
-- are sorted, then the two runs merged. After an assign of a page that
-- sorts a hundred leases, not the whole account.
local function by_modified(out, s, asc)
  local modified = s.modified
  local function before(a, b)
    local ka, kb = modified_on(s, a), modified_on(s, b)
    if ka ~= kb then return (ka < kb) == asc end
    return a < b
  end
  local plain, changed = {}, {}
  for _, i in ipairs(out) do
    if modified[i] == "" then plain[#plain + 1] = i else changed[#changed + 1] = i end
  end
  if not asc then reverse(plain) end -- their created_on are all different: no ties
  table.sort(changed, before)
  local merged, a, b = {}, 1, 1
  while a <= #plain or b <= #changed do
    if b > #changed or (a <= #plain and before(plain[a], changed[b])) then
      merged[#merged + 1] = plain[a]
      a = a + 1
    else
      merged[#merged + 1] = changed[b]
      b = b + 1
    end
  end
  return merged
end

-- The seed indexes of the leases matching filter f in snapshot s, in
-- the order asked; ties by seed index ascending.
local function matching(f, s)
  local tests = criteria(f)
  local any = f.mode == "OR" and #tests > 0
  local out = {}
  for i = 1, #seed.leases do
    -- AND: every test passes; OR: one does; no criteria: every lease
    local ok = not any
    for t = 1, #tests do
      if tests[t](i, s) == any then ok = any break end
    end
    if ok then out[#out + 1] = i end
  end
  local asc = f.order.dir == "ASC"
  if f.order.field == "modified_on" then return by_modified(out, s, asc) end
  -- tn and created_on both grow with the seed index, so out is in
  -- order already; neither has ties
  return asc and out or reverse(out)
end

-- Per worker: the matches of every filter asked since the state last
-- changed, so paging through a search slices a list instead of scanning
-- the leases for every page.
local searches = {}

local function search(f, s)
  if searches.version ~= s.version then searches = { version = s.version, lists = {}, count = 0 } end
  local list = searches.lists[f.key]
  if list then return list end
  list = matching(f, s)
  -- a client sending ever new filters must not grow the worker without end
  if searches.count >= SEARCHES_MAX then searches.lists, searches.count = {}, 0 end
  searches.lists[f.key] = list
  searches.count = searches.count + 1
  return list
end

-- take and skip: the digits of a whole number >= least, without leading
-- zeros (kept as text: echoed as asked, however large), or nil.
local function count_arg(v, default, least)
  if v == nil then return default end
  if type(v) ~= "string" or not v:find("^%d+$") then return nil end
  v = v:gsub("^0+(%d)", "%1")
  if tonumber(v) < least then return nil end
  return v
end

-- POST /lease/tn/search?take=N&skip=N: a page of the leases matching the
-- filter in the body. At most max_page leases a page, whatever `take`
-- asked, which the answer still echoes: a client must page by `total`
-- and what it got.
local function handle_search(method, body, headers, fault)
  if method ~= "POST" then return fail(405, "Method not allowed") end
  local args = ngx.req.get_uri_args()
  local take = count_arg(args.take, "100", 1)
  if not take then return fail(400, "take must be an integer >= 1") end
  local skip = count_arg(args.skip, "0", 0)
  if not skip then return fail(400, "skip must be an integer >= 0") end

  if fault and fault.status and not fault.apply then return status_fault(fault) end

  if body and body ~= "" and not is_json(headers) then
    return fail(400, "Content-Type must be application/json")
  end
  local f, why = parse_filter(body)
  if not f then return fail(400, why) end
  local s = snapshot()
  local list = search(f, s)
  local buf = { format('{"success":true,"payload":{"take":%s,"skip":%s,"mode":"%s","order":{"%s":"%s"},"total":%d,"data":[',
    take, skip, f.mode, f.order.field, f.order.dir, #list) }
  local first = tonumber(skip) + 1
  -- a page_cap fault: this one page is capped lower (a server behind a
  -- balancer whose nodes cap pages differently)
  local cap = fault and tonumber(fault.page_cap) or config.max_page or 100
  local last = min(#list, first - 1 + min(tonumber(take), cap))
  for k = first, last do
    local i = list[k]
    add_lease(buf, i, s.conn[i], s.modified[i], s.app[i])
  end
  buf[#buf + 1] = "]}}"
  return finish(concat(buf), fault)
end

---------------------------------------------------------------- sha-256

-- SHA-256 (FIPS 180-2) and HMAC-SHA256 (RFC 2104) on LuaJIT's bit
-- library: the nginx Lua module of Debian has no resty.sha256, and the
-- JWTs must be signed without another dependency. bit works on signed
-- 32-bit numbers; sums are brought back to 32 bits with tobit.
local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local lshift, rshift, ror, tobit = bit.lshift, bit.rshift, bit.ror, bit.tobit

local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

-- Mixes the 64-byte block of `s` at `pos` into the hash state H.
local function compress(H, s, pos, W)
  for j = 1, 16 do
    local b1, b2, b3, b4 = byte(s, pos, pos + 3)
    W[j] = bor(lshift(b1, 24), lshift(b2, 16), lshift(b3, 8), b4)
    pos = pos + 4
  end
  for j = 17, 64 do
    local w15, w2 = W[j - 15], W[j - 2]
    local s0 = bxor(ror(w15, 7), ror(w15, 18), rshift(w15, 3))
    local s1 = bxor(ror(w2, 17), ror(w2, 19), rshift(w2, 10))
    W[j] = tobit(W[j - 16] + s0 + W[j - 7] + s1)
  end
  local a, b, c, d, e, f, g, h = H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8]
  for j = 1, 64 do
    local t1 = h + bxor(ror(e, 6), ror(e, 11), ror(e, 25)) + bxor(band(e, f), band(bnot(e), g)) + K[j] + W[j]
    local t2 = bxor(ror(a, 2), ror(a, 13), ror(a, 22)) + bxor(band(a, b), band(a, c), band(b, c))
    h, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + t2)
  end
  H[1], H[2], H[3], H[4] = tobit(H[1] + a), tobit(H[2] + b), tobit(H[3] + c), tobit(H[4] + d)
  H[5], H[6], H[7], H[8] = tobit(H[5] + e), tobit(H[6] + f), tobit(H[7] + g), tobit(H[8] + h)
end

local function be32(v)
  return char(band(rshift(v, 24), 255), band(rshift(v, 16), 255), band(rshift(v, 8), 255), band(v, 255))
end

-- The 32-byte SHA-256 digest of `msg`.
local function sha256(msg)
  local bits = #msg * 8
  -- 0x80, zeros up to 56 bytes mod 64, then the length in bits on 64 bits
  msg = msg .. "\128" .. ("\0"):rep((55 - #msg) % 64) .. be32(floor(bits / 0x100000000)) .. be32(bits % 0x100000000)
  local H = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 }
  local W = {}
  for pos = 1, #msg, 64 do compress(H, msg, pos, W) end
  local out = {}
  for i = 1, 8 do out[i] = be32(H[i]) end
  return concat(out)
end

local function xor_bytes(s, pad)
  return (s:gsub(".", function(c) return char(bxor(byte(c), pad)) end))
end

-- The 32-byte HMAC-SHA256 of `msg` under `key`.
local function hmac_sha256(key, msg)
  if #key > 64 then key = sha256(key) end
  key = key .. ("\0"):rep(64 - #key)
  return sha256(xor_bytes(key, 0x5c) .. sha256(xor_bytes(key, 0x36) .. msg))
end

-- For the spec, which loads this file in a plain LuaJIT to check the
-- published test vectors.
M._sha256, M._hmac_sha256 = sha256, hmac_sha256

---------------------------------------------------------------- logins and tokens

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
local function issue(who, ttl, name)
  local now = ngx.time()
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
  if ngx.time() >= claims.exp then return "expired" end
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

---------------------------------------------------------------- serve

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

local function serve(method, uri)
  local d = dict()
  local raw_fault = d:lpop("faults")
  local fault = raw_fault and cjson.decode(raw_fault) or nil
  local latency = d:get("latency") or 0
  if latency > 0 then ngx.sleep(latency) end
  if fault and fault.delay then ngx.sleep(tonumber(fault.delay) or 0) end

  local body = method == "POST" and read_body() or nil
  local headers = ngx.req.get_headers()
  local path = uri:gsub("^/rest/", "/")
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
  if lease then return handle_lease(method, lease, fault) end
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

---------------------------------------------------------------- admin

-- A JSON array of strings, encoded by hand: an empty one must stay [].
local function string_list(list)
  return "[" .. (#list > 0 and '"' .. concat(list, '","') .. '"' or "") .. "]"
end

-- {holder uuid: [lease uuids in attach order]} for one kind of holder.
local function assigned(s, holders, field)
  local out = {}
  for _, uuid in ipairs(holders) do
    local held = {}
    for k, i in ipairs(held_by(s, field, uuid)) do held[k] = seed.leases[i] end
    out[#out + 1] = cjson.encode(uuid) .. ":" .. string_list(held)
  end
  return "{" .. concat(out, ",") .. "}"
end

local ADMIN = {}

function ADMIN.GET_state()
  local s = snapshot()
  local body = cjson.encode({ connections = seed.connections, leases = seed.leases })
  return send(200, body:sub(1, -2) ..
    ',"assigned":' .. assigned(s, seed.connections, "conn") ..
    ',"apps":' .. string_list(seed.apps) ..
    ',"app_assigned":' .. assigned(s, seed.apps, "app") ..
    ',"numbers":[' .. concat(seed.numbers, ",") .. "]" ..
    ',"version":' .. format("%d", s.version) .. "}")
end

function ADMIN.POST_reset()
  reset_state()
  return send(200, '{"success":true}')
end

-- The holders a lease may be given, each checked against its route's
-- dict key: a holder must exist, or be JSON null (no holder).
local HOLDER_FIELDS = { sip_connection = HOLDERS.connection, sip_control_app = HOLDERS.app }

-- {lease uuid: {sip_connection = uuid|null, sip_control_app = uuid|null}}:
-- sets holders as they are, for tests: a lease may end up on both a
-- connection and an app, which the assign routes refuse to do. Everything
-- is checked before anything is written.
function ADMIN.POST_holders()
  local map = decode_object(read_body() or "")
  if not map then return fail(400, "holders must be a JSON object of lease uuid -> holders") end
  local d = dict()
  for lease, h in pairs(map) do
    if not seed.index[lease] then return fail(400, "unknown TNLease " .. tostring(lease)) end
    if type(h) ~= "table" or h[1] ~= nil then
      return fail(400, "holders of " .. lease .. " must be an object")
    end
    for k, v in pairs(h) do
      local kind = HOLDER_FIELDS[k]
      if not kind then return fail(400, "unknown field '" .. tostring(k) .. "' for " .. lease) end
      if v ~= cjson.null and not (type(v) == "string" and d:get(kind.key .. v)) then
        return fail(400, "unknown " .. (kind == HOLDERS.app and "SIP control app " or "SIP connection ") ..
          tostring(v) .. " for " .. lease)
      end
    end
  end
  local stamp, changed = iso(ngx.time()), {}
  for lease, h in pairs(map) do
    local key = "L:" .. lease
    local st = {}
    st.conn, st.seq, st.modified, st.app = decode_state(d:get(key))
    local was = { conn = st.conn, app = st.app }
    local differs = false
    for k, v in pairs(h) do
      local field = HOLDER_FIELDS[k].field
      local holder = v == cjson.null and "" or v
      if st[field] ~= holder then st[field], differs = holder, true end
    end
    -- a lease gaining a holder goes to the end of its list, as on the
    -- assign routes; but one seq orders both kinds of list, so a lease
    -- that stays on the other kind of holder keeps its place there
    local function gained(field, other)
      return st[field] ~= "" and st[field] ~= was[field] and not (st[other] ~= "" and st[other] == was[other])
    end
    if differs then
      if gained("conn", "app") or gained("app", "conn") then st.seq = d:incr("seq", 1, 0) end
      d:set(key, encode_state(st.conn, st.seq, stamp, st.app))
      changed[#changed + 1] = seed.index[lease]
    end
  end
  bump(d, changed)
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

-- {latency = seconds >= 0, token_ttl = whole seconds > 0}, either or both:
-- token_ttl is the lifetime of the JWTs /auth issues from then on. All is
-- checked before anything is set.
function ADMIN.POST_config()
  ngx.req.read_body()
  local c = cjson.decode(ngx.req.get_body_data() or "")
  if type(c) ~= "table" then return fail(400, "config must be a JSON object") end
  if c.latency ~= nil and (type(c.latency) ~= "number" or c.latency < 0) then
    return fail(400, "latency must be a number >= 0")
  end
  local ttl = c.token_ttl
  if ttl ~= nil and (type(ttl) ~= "number" or ttl ~= floor(ttl) or ttl < 1 or ttl > TOKEN_TTL_MAX) then
    return fail(400, "token_ttl must be a whole number of seconds from 1 to " .. TOKEN_TTL_MAX)
  end
  local d = dict()
  if c.latency ~= nil then d:set("latency", c.latency) end
  if ttl ~= nil then d:set("token_ttl", ttl) end
  return send(200, cjson.encode({ latency = d:get("latency"), token_ttl = d:get("token_ttl") }))
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
    logins = d:get("logins") or 0,
    auth_failures = d:get("auth_failures") or 0,
  }))
end

function M.admin()
  local name = ngx.var.uri:match("^/__emulator/([%w_]+)$")
  local handler = name and ADMIN[ngx.req.get_method() .. "_" .. name]
  if not handler then return fail(404, "unknown emulator route") end
  return handler()
end

---------------------------------------------------------------- start

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
  static_user = static_user or { uuid = USER_UUID, email = "ops@example.com" }
end

-- What a newcomer needs to try the emulator: the connections, a few
-- leases (the ones on the first connection, then free ones) with their
-- numbers and holders, and the apps; bin/opentact-emulator prints it.
local function seed_summary(s)
  local out = {}
  local function line(...) out[#out + 1] = format(...) end
  local conns, leases, apps = #s.connections, #s.leases, #s.apps
  local conn_index, app_index = {}, {}
  for i, u in ipairs(s.connections) do conn_index[u] = i end
  for k, u in ipairs(s.apps) do app_index[u] = k end
  line("SIP connections (%d):", conns)
  for i = 1, min(conns, 4) do
    local held = 0
    for _, lease in ipairs(s.leases) do if s.holder[lease] == s.connections[i] then held = held + 1 end end
    line("  %s  sip-trunk-%d%s", s.connections[i], i,
      held == 0 and "" or held == 1 and ", holds lease 1" or format(", holds leases 1 to %d", held))
  end
  if conns > 4 then line("  ... and %d more", conns - 4) end
  line("TN leases (%d; lease i holds the number %.0f + i):", leases, TN_BASE)
  local shown = {}
  for i = 1, min(leases, 6) do shown[#shown + 1] = i end
  for k = 1, min(#s.apps, 2) do
    local i = leases - k + 1
    if i > 6 then shown[#shown + 1] = i end
  end
  table.sort(shown)
  local last = 0
  for _, i in ipairs(shown) do
    if i > last + 1 then line("  ...") end
    last = i
    local lease = s.leases[i]
    local conn, app = s.holder[lease], s.app_holder[lease]
    line("  %3d  %s  %s%s", i, lease, s.numbers[i],
      conn and format("  on sip-trunk-%d", conn_index[conn])
      or app and format("  on control-app-%d", app_index[app]) or "")
  end
  if last < leases then line("  ... and %d more, lease %d holds %.0f", leases - last, leases, TN_BASE + leases) end
  if apps > 0 then
    line("SIP control apps (%d):", apps)
    for k = 1, min(apps, 2) do
      local i = leases - k + 1
      line("  %s  control-app-%d%s", s.apps[k], k,
        s.leases[i] and s.app_holder[s.leases[i]] and format(", holds lease %d", i) or "")
    end
    if apps > 2 then line("  ... and %d more", apps - 2) end
  end
  return concat(out, "\n") .. "\n"
end

-- opts: token, connections, leases, apps, latency, max_page, users,
-- token_ttl; summary: a file to write the seed's summary to
function M.init(opts)
  config = opts
  config.max_page = opts.max_page or 100
  config.token_ttl = opts.token_ttl or 86400
  seed = build_seed(opts.connections or 4, opts.leases or 100, opts.apps or 0)
  load_users(opts.users)
  secret = random_secret()
  JWT_HEADER = b64url('{"alg":"HS256","typ":"JWT"}')
  reset_state()
  if opts.summary then
    local f = assert(io.open(opts.summary, "w"))
    f:write(seed_summary(seed))
    f:close()
  end
end

return M
