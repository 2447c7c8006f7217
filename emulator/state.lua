-- What changes while the emulator runs: the options it was started with,
-- and the shared dict, where everything that changes lives so all
-- workers agree; per worker, snapshots of it.

local ngx = ngx
local cjson = require("cjson.safe")
local seed = require("emulator.seed")
local ipairs, tonumber, tostring, next = ipairs, tonumber, tostring, next
local concat, find, sub, gsub = table.concat, string.find, string.sub, string.gsub

local M = {}

local DICT = "opentact"
local config = {} -- options from the command line, set by init.lua's init
M.config = config

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
  d:set("clock", 0)
  d:set("logins", 0)
  d:set("auth_failures", 0)
end

-- A lease's settings changed through PATCH /lease/tn/{uuid} are one more
-- key, "S:<uuid>" = a JSON object of the fields changed (autorenew,
-- messaging_profile, the feature flags); "S:any" says that some lease
-- has one, so that an emulator whose leases keep their seed settings (a
-- benchmark) reads no more keys than before.
local FLAGS = { "voice", "fax", "sms", "mms", "emergency" }

-- Lease i's JSON head (its seed template) with `settings` applied.
local function patched_template(i, settings)
  local t = seed.templates[i]
  if settings.autorenew ~= nil then
    t = gsub(t, '"autorenew":%a+', '"autorenew":' .. tostring(settings.autorenew), 1)
  end
  local flags = {}
  for _, f in ipairs(FLAGS) do
    if settings[f] ~= nil then flags[#flags + 1] = '"' .. f .. '":' .. tostring(settings[f]) end
  end
  if #flags > 0 then t = gsub(t, '("autorenew":%a+,)', "%1" .. concat(flags, ",") .. ",", 1) end
  local mp = settings.messaging_profile
  if mp ~= nil then
    t = gsub(t, '"messaging_profile":null', '"messaging_profile":'
      .. (mp == cjson.null and "null" or '{"uuid":"' .. mp .. '"}'), 1)
  end
  return t
end

-- Reads lease i's settings into snapshot s: its template and autorenew
-- when it has any.
local function read_settings(d, s, i)
  local raw = d:get("S:" .. seed.leases[i])
  local settings = raw and cjson.decode(raw)
  if type(settings) == "table" then
    s.templates[i] = patched_template(i, settings)
    if settings.autorenew ~= nil then s.autorenew[i] = settings.autorenew end
  else
    s.templates[i], s.autorenew[i] = nil, nil
  end
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
  local settings = d:get("S:any")
  for _, i in ipairs(changed) do
    conn[i], seq[i], modified[i], app[i] = decode_state(d:get("L:" .. seed.leases[i]))
    if settings then read_settings(d, snap, i) end
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
  local s = { version = version, conn = {}, seq = {}, modified = {}, app = {}, templates = {}, autorenew = {} }
  local conn, seq, modified, app = s.conn, s.seq, s.modified, s.app
  for i, lease in ipairs(seed.leases) do
    conn[i], seq[i], modified[i], app[i] = decode_state(d:get("L:" .. lease))
  end
  if d:get("S:any") then
    for i = 1, #seed.leases do read_settings(d, s, i) end
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
  -- (a lease's changed settings are in the latest snapshot: whoever
  -- answers with a lease has taken one since the change)
  buf[n + 1] = snap.templates and snap.templates[i] or seed.templates[i]
  buf[n + 2] = modified ~= "" and modified or seed.created[i]
  buf[n + 3] = '","sip_connection":'
  buf[n + 4] = seed.conn_json[conn] or "null"
  buf[n + 5] = ',"sip_control_app":'
  buf[n + 6] = seed.app_json[app] or "null"
  buf[n + 7] = "}"
end

M.dict, M.encode_state, M.decode_state, M.reset = dict, encode_state, decode_state, reset_state
M.bump, M.snapshot, M.held_by, M.add_lease = bump, snapshot, held_by, add_lease
M.FLAGS = FLAGS

-- Whether an answer built from the leases' own states (an assign's) must
-- take a snapshot first, for leases whose settings changed (or changed
-- back, by a reset).
function M.settings_changed()
  return dict():get("S:any") or (snap.templates ~= nil and next(snap.templates) ~= nil)
end

-- Lease i's autorenew in snapshot s: as changed, else as seeded.
function M.autorenew(s, i)
  local v = s.autorenew and s.autorenew[i]
  if v == nil then return seed.autorenew[i] end
  return v
end

return M
