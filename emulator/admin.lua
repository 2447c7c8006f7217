-- The admin routes, under /__emulator/ and without a token: GET state,
-- POST reset, POST holders, POST faults, POST config, GET requests,
-- GET stats.

local ngx = ngx
local cjson = require("cjson.safe")
local seed = require("emulator.seed")
local state = require("emulator.state")
local replies = require("emulator.replies")
local request = require("emulator.request")
local HOLDERS = require("emulator.leases").HOLDERS
local TOKEN_TTL_MAX = require("emulator.auth").TOKEN_TTL_MAX
local type, ipairs, pairs, next, tostring = type, ipairs, pairs, next, tostring
local format, concat, floor = string.format, table.concat, math.floor

local dict, snapshot, held_by, reset_state = state.dict, state.snapshot, state.held_by, state.reset
local decode_state, encode_state, bump = state.decode_state, state.encode_state, state.bump
local send, fail = replies.send, replies.fail
local read_body, decode_object = request.read_body, request.decode_object
local iso = seed.iso

local M = {}

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
-- is checked before anything is written. ?ago=SECONDS: the leases changed
-- show that long ago as their modified_on (a routing set up long before).
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
  local ago = tonumber(ngx.var.arg_ago or "0")
  if not ago or ago < 0 or ago > 10 * 365 * 86400 then return fail(400, "ago must be seconds >= 0") end
  local stamp, changed = iso(ngx.time() - math.floor(ago)), {}
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

-- {latency = seconds >= 0, token_ttl = whole seconds > 0, clock = seconds
-- >= 0}, any of them: token_ttl is the lifetime of the JWTs /auth issues
-- from then on, clock how far ahead of the real clock JWTs are issued and
-- expire (reset sets it back to 0). All is checked before anything is set.
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
  if c.clock ~= nil and (type(c.clock) ~= "number" or not (c.clock >= 0 and c.clock < TOKEN_TTL_MAX)) then
    return fail(400, "clock must be a number of seconds >= 0")
  end
  local d = dict()
  if c.latency ~= nil then d:set("latency", c.latency) end
  if ttl ~= nil then d:set("token_ttl", ttl) end
  if c.clock ~= nil then d:set("clock", c.clock) end
  return send(200, cjson.encode({ latency = d:get("latency"), token_ttl = d:get("token_ttl"), clock = d:get("clock") }))
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

return M
