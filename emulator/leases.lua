-- The routes of a holder's leases and of single leases:
--   GET|POST /sip/connection/{uuid}/tnlease   list, assign / unassign
--   GET|POST /sip/app/{uuid}/tnlease          the same for SIP control apps
--   GET      /lease/tn/{tn}/tn                the lease of a phone number
--   GET      /lease/tn/{uuid}                 one lease
--   PATCH    /lease/tn/{uuid}                 change its settings (or holders)
--   DELETE   /lease/tn/{uuid}                 405: this emulator releases nothing

local ngx = ngx
local cjson = require("cjson.safe")
local seed = require("emulator.seed")
local state_mod = require("emulator.state") -- plan() has a function state
local replies = require("emulator.replies")
local request = require("emulator.request")
local type, ipairs, pairs, tonumber, tostring = type, ipairs, pairs, tonumber, tostring
local concat = table.concat

local dict, decode_state, encode_state, bump = state_mod.dict, state_mod.decode_state, state_mod.encode_state, state_mod.bump
local snapshot, held_by, add_lease = state_mod.snapshot, state_mod.held_by, state_mod.add_lease
local fail, answer_buffer, success = replies.fail, replies.answer_buffer, replies.success
local status_fault, finish = replies.status_fault, replies.finish
local UUID, is_json, decode_object = request.UUID, request.is_json, request.decode_object
local iso, TN_BASE = seed.iso, seed.TN_BASE

local M = {}

local worker_cache = {} -- "conn:"/"app:" .. uuid -> { version, body }

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
  -- the answer's leases with their changed settings
  if state_mod.settings_changed() then snapshot() end
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

-- The fields PATCH /lease/tn/{uuid} takes besides the holders, and
-- their JSON types ("uuid": a uuid string or null).
local SETTINGS = { autorenew = "boolean", messaging_profile = "uuid" }
for _, f in ipairs(state_mod.FLAGS) do SETTINGS[f] = "boolean" end
local HOLDER_FIELDS = { sip_connection = HOLDERS.connection, sip_control_app = HOLDERS.app }

-- Checks a PATCH body: the object, or nil and a message.
local function parse_patch(raw)
  local patch = raw and raw ~= "" and decode_object(raw)
  if not patch then return nil, "request body is not a JSON object" end
  for k, v in pairs(patch) do
    local want, kind = SETTINGS[k], HOLDER_FIELDS[k]
    if want == "boolean" then
      if type(v) ~= "boolean" then return nil, "'" .. k .. "' must be true or false" end
    elseif want == "uuid" or kind then
      if v ~= cjson.null and not (type(v) == "string" and ngx.re.find(v, UUID, "jo")) then
        return nil, "'" .. k .. "' must be a uuid or null"
      end
      if kind and v ~= cjson.null and not dict():get(kind.key .. v) then return nil, kind.missing, 404 end
    else
      return nil, "unknown field '" .. tostring(k) .. "'"
    end
  end
  return patch
end

-- PATCH /lease/tn/{uuid}: settings are kept in "S:<uuid>" (see
-- state.lua); holders change as the tnlease routes change them, with
-- their refusals (a lease on the other kind of holder). The lease's
-- modified_on moves.
local function patch_lease(i, uuid, body, headers, fault)
  if not is_json(headers) then return fail(400, "Content-Type must be application/json") end
  local patch, why, status = parse_patch(body)
  if not patch then return fail(status or 400, why) end
  if fault and fault.status and not fault.apply then return status_fault(fault) end
  local d = dict()
  -- the holders first: refused, nothing changes
  local steps, st = {}, {}
  st.conn, st.seq, st.modified, st.app = decode_state(d:get("L:" .. uuid))
  for field, kind in pairs(HOLDER_FIELDS) do
    local v = patch[field]
    if v ~= nil then
      local now = st[kind.field]
      if v == cjson.null then
        if now ~= "" then steps[#steps + 1] = { kind, now, { add = {}, remove = { uuid } } } end
      elseif v ~= now then
        steps[#steps + 1] = { kind, v, { add = { uuid }, remove = {} } }
      end
    end
  end
  for _, step in ipairs(steps) do
    local p, refused = plan(step[1], step[2], step[3])
    if not p then return fail(409, refused) end
    if not (fault and fault.fake) then commit(p) end
  end
  local changed = false
  local settings = cjson.decode(d:get("S:" .. uuid) or "{}") or {}
  for k in pairs(SETTINGS) do
    if patch[k] ~= nil then settings[k], changed = patch[k], true end
  end
  if changed and not (fault and fault.fake) then
    d:set("S:" .. uuid, cjson.encode(settings))
    d:set("S:any", true)
    local conn, seq, _, app = decode_state(d:get("L:" .. uuid))
    d:set("L:" .. uuid, encode_state(conn, seq, iso(ngx.time()), app))
    bump(d, { i })
  end
  return one_lease(i, fault)
end

-- GET /lease/tn/{uuid}: one lease; PATCH changes it; DELETE, which
-- releases the number from the account on Opentact, is refused loudly.
local function handle_lease(method, uuid, fault, body, headers)
  if method == "DELETE" then
    return fail(405, "DELETE /lease/tn/{uuid} releases the phone number from the account: "
      .. "this emulator does not release numbers (to detach a lease, POST its tnlease route with \"remove\")")
  end
  if method ~= "GET" and method ~= "PATCH" then return fail(405, "Method not allowed") end
  if not ngx.re.find(uuid, UUID, "jo") then return fail(400, "uuid must match " .. UUID) end
  local i = seed.index[uuid]
  if method == "PATCH" then
    if not i then return fail(404, "TNLease not found") end
    return patch_lease(i, uuid, body, headers, fault)
  end
  if fault and fault.status and not fault.apply then return status_fault(fault) end
  if not i then return fail(404, "TNLease not found") end
  return one_lease(i, fault)
end

M.HOLDERS = HOLDERS
M.handle_holder, M.handle_lease_by_number, M.handle_lease = handle_holder, handle_lease_by_number, handle_lease

return M
