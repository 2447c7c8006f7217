-- Targets: what a lease is attached to, a SIP connection or a SIP control
-- app. A call takes one as a uuid string (a connection, as it always
-- has), {app = uuid}, {connection = uuid}, or what client:target returns
-- ({kind, uuid, name}). Names are resolved only on request
-- (client:target), from the account's lists of connections and apps,
-- kept a short while per client.

local core = require("opentact.core")
local errors = require("opentact.errors")
local engine = require("opentact.engine")
local pretty = require("opentact.pretty")

local type, ipairs, setmetatable, tostring = type, ipairs, setmetatable, tostring
local lower, format, concat = string.lower, string.format, table.concat

local M = {}

-- The two kinds, their API paths and how messages name them.
local KINDS = {
  connection = { path = "/sip/connection", what = "SIP connection" },
  app = { path = "/sip/app", what = "SIP control app" },
}
M.KINDS = KINDS

-- A target prints as "SIP connection NAME (uuid)", or without a name
-- "SIP connection uuid".
local Target = { __name = "opentact.Target" }
M.Target = Target

function Target.__tostring(t)
  return pretty.holder(t.kind, t.uuid, t.name)
end

local SHAPE = "a target: a connection uuid, {app = uuid}, {connection = uuid} or what client:target returns"

--- The kind and the uuid (as given) of target `x`, and its name when it
--- has one; or nil, nil, nil, what was expected, for a value that is no
--- target's shape (misuse: the caller raises). The uuid is not checked:
--- the request builders check it, with their messages.
function M.shape(x)
  local t = type(x)
  if t == "string" then return "connection", x end
  if t ~= "table" then return nil, nil, nil, SHAPE end
  local kind, uuid, name
  if x.kind ~= nil then
    kind, uuid, name = x.kind, x.uuid, x.name
    if not KINDS[kind] then return nil, nil, nil, 'a target whose kind is "connection" or "app"' end
    if name ~= nil and type(name) ~= "string" then return nil, nil, nil, "a target whose name is a string" end
  elseif x.app ~= nil and x.connection == nil then
    kind, uuid = "app", x.app
  elseif x.connection ~= nil and x.app == nil then
    kind, uuid = "connection", x.connection
  else
    return nil, nil, nil, SHAPE
  end
  if type(uuid) ~= "string" then return nil, nil, nil, "a target whose uuid is a string" end
  return kind, uuid, name
end

--- The target `x` as {kind, uuid (lower case), name} (an opentact.Target);
--- or nil, err (`invalid`: its uuid is not a uuid; nothing is sent); or
--- nil, nil, what was expected (misuse).
function M.of(x)
  local kind, uuid, name, expected = M.shape(x)
  if not kind then return nil, nil, expected end
  local path, err = core.request_list(uuid, kind)
  if not path then return nil, errors.finish(err, "GET", nil, 0) end
  return setmetatable({ kind = kind, uuid = lower(uuid), name = name }, Target)
end

---------------------------------------------------------------- the lists

-- The clock the lists' age is told by (seconds, monotonic): a spec may
-- stop it, to count what resolving costs however slow the machine.
M.clock = core.now

-- The account's connections or apps print as a table: uuid, name, and
-- whether active.
local Holders = { __name = "opentact.Holders" }
M.Holders = Holders

function Holders.__tostring(list)
  local rows = {}
  for i, h in ipairs(list) do
    rows[i] = { tostring(h.uuid), type(h.name) == "string" and h.name or "-",
      h.is_active == false and "inactive" or h.is_active == true and "active" or "-" }
  end
  local kind = list.kind or "connection"
  return pretty.table(pretty.plural(#list, KINDS[kind].what), { "uuid", "name", "state" }, rows)
end

-- A request for the list of one kind.
local function list_request(kind)
  local req = engine.request("GET", KINDS[kind].path, nil, "objects")
  req.kind = kind
  return req
end

M.list_request = list_request

-- Gives each holder of a fetched list its kind's printing.
local function as_list(kind, list)
  list.kind = kind
  return setmetatable(list, Holders)
end

--- Every connection (`kind` "connection") or app of the account: the
--- list, or nil, err. Keeps it in `cache`.
function M.list(eng, cache, kind)
  local list, err = eng:call(list_request(kind))
  if not list then return nil, err end
  cache[kind] = { at = M.clock(), list = list }
  return as_list(kind, list)
end

-- Fetches the lists of `kinds` that `cache` has not, or has older than
-- `older` seconds, side by side. Returns true and whether it read any, or
-- nil, err.
-- `beside`: other requests read at the same time (their answers are
-- theirs; a failure of one is returned as a list's would be).
local function refresh(eng, cache, kinds, older, beside)
  local reqs, now = {}, M.clock()
  for _, req in ipairs(beside or {}) do reqs[#reqs + 1] = req end
  local any = false
  for _, kind in ipairs(kinds) do
    local c = cache[kind]
    if not c or now - c.at >= older then
      reqs[#reqs + 1] = list_request(kind)
      any = true
    end
  end
  if #reqs == 0 then return true, false end
  local failure
  eng:run(reqs, #reqs, function(req)
    if req.err then
      failure = failure or req.err
    elseif req.kind then
      cache[req.kind] = { at = M.clock(), list = req.leases }
    end
  end)
  if failure then return nil, failure end
  return true, any
end

--- Reads the lists of connections and apps that `cache` has not, or has
--- older than `ttl` seconds, and the requests `beside`, side by side:
--- true, or nil, err (resolving names after it reads nothing more).
function M.prefetch(eng, cache, ttl, beside)
  return (refresh(eng, cache, { "connection", "app" }, ttl, beside))
end

-- Seconds the lists must be old before a name not in them has them read
-- again: resolving many names costs one read of each list, however many
-- are unknown.
local MISS_AFTER = 2

local function matches(cache, kinds, key, by_uuid)
  local found = {}
  for _, kind in ipairs(kinds) do
    for _, h in ipairs(cache[kind] and cache[kind].list or {}) do
      local hit
      if by_uuid then hit = type(h.uuid) == "string" and lower(h.uuid) == key else hit = h.name == key end
      if hit then
        found[#found + 1] = setmetatable({ kind = kind, uuid = lower(h.uuid),
          name = type(h.name) == "string" and h.name or nil }, Target)
      end
    end
  end
  return found
end

-- An answer about a name: what was read to find it says where it came from.
local function fail(kind, message, kinds)
  return nil, errors.finish(errors.new(kind, message, false), "GET", KINDS[kinds[1]].path, 1)
end

--- client:target(x): a uuid, a name, "app:NAME-or-UUID" or
--- "connection:NAME-or-UUID" (or a target table) as {kind, uuid, name},
--- from the account's lists (kept `ttl` seconds in `cache`, and read again
--- on a miss); or nil, err: `not_found`, or `invalid` for a name that
--- several have (the message and err.candidates list them).
function M.resolve(eng, cache, x, ttl)
  local kinds, key = { "connection", "app" }, x
  if type(x) == "table" then
    local t, err = M.of(x)
    if not t then return nil, err end
    kinds, key = { t.kind }, t.uuid
  else
    local prefix, rest = x:match("^(%a+):(.*)$")
    if prefix and KINDS[prefix] then kinds, key = { prefix }, rest end
  end
  if key == "" then
    return nil, errors.finish(errors.new("invalid", "a target needs a name or a uuid after '" .. pretty.safe(x) .. "'",
      false), nil, nil, 0)
  end
  local by_uuid = core.request_list(key) ~= nil
  if by_uuid then key = lower(key) end
  local ok, read = refresh(eng, cache, kinds, ttl)
  if not ok then return nil, read end
  local found = matches(cache, kinds, key, by_uuid)
  if #found == 0 and not read then
    -- (lists read by this call are as fresh as they get)
    ok, read = refresh(eng, cache, kinds, MISS_AFTER < ttl and MISS_AFTER or ttl)
    if not ok then return nil, read end
    found = matches(cache, kinds, key, by_uuid)
  end
  local what = #kinds == 2 and "SIP connection or control app" or KINDS[kinds[1]].what
  if #found == 0 then
    return fail("not_found", format("no %s %s %s", what, by_uuid and "has the uuid" or "is named",
      pretty.safe(format("%q", key))), kinds)
  end
  if #found > 1 then
    local names = {}
    for i, t in ipairs(found) do names[i] = tostring(t) end
    local _, e = fail("invalid", format("the name %s is ambiguous: %d have it (%s); give the uuid of the one you "
      .. "mean", pretty.safe(format("%q", key)), #found, concat(names, "; ")), kinds)
    e.candidates = found
    return nil, e
  end
  return found[1]
end

return M
