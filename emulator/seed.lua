-- The seed: the connections, apps and leases the emulator starts with,
-- the same on every start, built once in the master (see init.lua) and
-- inherited by every worker. The seed is kept in this module's table, so
-- every module that requires it reads it without a lookup more.

local ngx = ngx
local cjson = require("cjson.safe")
local format, concat, min = string.format, table.concat, math.min
local tonumber, ipairs, pairs = tonumber, ipairs, pairs

local M = {}

local TN_BASE = 12125550000 -- the seed gives lease i the number TN_BASE + i
-- Lease i was created CREATED_BASE + 10 i (2026-01-01T00:00:10Z on): in the
-- past for accounts of up to a million leases, so that a search of the
-- leases modified since a recent moment finds none that were only created.
local CREATED_BASE = 1767225600

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
  local created = CREATED_BASE + i * 10
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

-- A SIP connection as GET /sip/connection answers it: every field
-- Opentact's description lists, made up the same way on every start.
local function connection_json(u, i, name)
  local created = iso(CREATED_BASE - 86400 * (i + 1))
  return format('{"uuid":"%s","name":%s,"is_active":true,"tech_prefix":null,"ip":"192.0.2.%d","port":5060,'
    .. '"hostname":"trunk%d.example.com","product":"sip-trunk","sip_domains":["trunk%d.sip.example.com"],'
    .. '"account":{"uuid":"%s"},"created_on":"%s","modified_on":"%s"}',
    u, cjson.encode(name), i % 250 + 1, i, i, ACCOUNT_UUID, created, created)
end

-- A SIP control app as GET /sip/app answers it.
local function app_json(u, k, name)
  local created = iso(CREATED_BASE - 86400 * (k + 1))
  return format('{"uuid":"%s","name":%s,"is_active":true,"webhook_url":"https://ivr.example.com/app/%d",'
    .. '"webhook_method":"POST","webhook_request_timeout":5,"account":{"uuid":"%s"},"created_on":"%s",'
    .. '"modified_on":"%s"}', u, cjson.encode(name), k, ACCOUNT_UUID, created, created)
end

-- The seed: connections, apps and leases (uuids in seed order), index
-- (lease uuid -> i), per lease i its template, created_on, number (the
-- phone number's digits) and autorenew, the holders at seed time (lease
-- uuid -> connection / app uuid), each holder's name, its JSON inside a
-- lease (uuid and name) and its whole JSON (the /sip routes). `names`:
-- {connection = {[i] = name}, app = {[k] = name}} in place of the
-- default names (sip-trunk-i, control-app-k): they need not be unique.
-- `app_leases`: app k holds lease (leases - k + 1), unless a connection
-- holds it; else the apps hold nothing.
local function build_seed(connections, leases, apps, names, app_leases)
  local s = { connections = {}, apps = {}, leases = {}, index = {}, templates = {}, created = {},
    numbers = {}, autorenew = {}, holder = {}, app_holder = {}, conn_json = {}, app_json = {},
    conn_name = {}, app_name = {}, conn_full = {}, app_full = {} }
  names = names or {}
  ACCOUNT_UUID = seed_uuid("account", 1)
  USER_UUID = seed_uuid("user", 1)
  ORDER_UUID = seed_uuid("tnorder", 1)
  for i = 1, connections do
    local u = seed_uuid("connection", i)
    local name = names.connection and names.connection[i] or "sip-trunk-" .. i
    s.connections[i], s.conn_name[i] = u, name
    s.conn_json[u] = format('{"uuid":"%s","name":%s}', u, cjson.encode(name))
    s.conn_full[u] = connection_json(u, i, name)
  end
  for k = 1, apps do
    local u = seed_uuid("app", k)
    local name = names.app and names.app[k] or "control-app-" .. k
    s.apps[k], s.app_name[k] = u, name
    s.app_json[u] = format('{"uuid":"%s","name":%s}', u, cjson.encode(name))
    s.app_full[u] = app_json(u, k, name)
  end
  for i = 1, leases do
    local u = seed_uuid("lease", i)
    s.leases[i] = u
    s.index[u] = i
    s.templates[i] = lease_template(i, u)
    s.created[i] = iso(CREATED_BASE + i * 10)
    s.numbers[i] = format("%.0f", TN_BASE + i)
    s.autorenew[i] = i % 3 ~= 0 -- as the template says
  end
  -- the first connection holds the first three leases
  if connections > 0 then
    for i = 1, leases < 3 and leases or 3 do s.holder[s.leases[i]] = s.connections[1] end
  end
  -- app k holds lease (leases - k + 1), the last ones, unless a connection
  -- holds it: a lease is never on both at seed time
  for k = 1, app_leases and apps or 0 do
    local lease = s.leases[leases - k + 1]
    if lease and not s.holder[lease] then s.app_holder[lease] = s.apps[k] end
  end
  return s
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
    line("  %s  %s%s", s.connections[i], s.conn_name[i],
      held == 0 and "" or held == 1 and ", holds lease 1" or format(", holds leases 1 to %d", held))
  end
  if conns > 4 then line("  ... and %d more", conns - 4) end
  line("TN leases (%d; lease i holds the number %.0f + i):", leases, TN_BASE)
  local shown = {}
  for i = 1, min(leases, 6) do shown[#shown + 1] = i end
  for k = 1, min(#s.apps, 2) do
    local i = leases - k + 1
    if i > 6 and s.app_holder[s.leases[i]] then shown[#shown + 1] = i end
  end
  table.sort(shown)
  local last = 0
  for _, i in ipairs(shown) do
    if i > last + 1 then line("  ...") end
    last = i
    local lease = s.leases[i]
    local conn, app = s.holder[lease], s.app_holder[lease]
    line("  %3d  %s  %s%s", i, lease, s.numbers[i],
      conn and format("  on %s", s.conn_name[conn_index[conn]])
      or app and format("  on %s", s.app_name[app_index[app]]) or "")
  end
  if last < leases then line("  ... and %d more, lease %d holds %.0f", leases - last, leases, TN_BASE + leases) end
  if apps > 0 then
    line("SIP control apps (%d):", apps)
    for k = 1, min(apps, 2) do
      local i = leases - k + 1
      line("  %s  %s%s", s.apps[k], s.app_name[k],
        s.leases[i] and s.app_holder[s.leases[i]] and format(", holds lease %d", i) or "")
    end
    if apps > 2 then line("  ... and %d more", apps - 2) end
  end
  return concat(out, "\n") .. "\n"
end

-- Builds the seed into this module's table (see build_seed).
function M.build(connections, leases, apps, names, app_leases)
  for k, v in pairs(build_seed(connections, leases, apps, names, app_leases)) do M[k] = v end
  M.USER_UUID = USER_UUID
end

M.TN_BASE, M.uuid, M.iso, M.summary = TN_BASE, seed_uuid, iso, seed_summary

return M
