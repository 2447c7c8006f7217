-- opentact: the public API. The Client object, argument checking, and
-- the lazily made default client.
--
-- Request building, answer decoding and the curl transport are C
-- (opentact.core); opentact.engine attempts requests and retries them,
-- blocking or in the background (callbacks and step); opentact.bulk
-- batches them. Nothing here raises for what the network or the server
-- does: only misuse raises.

-- The C part is built for one Lua: loaded by another (a 5.4 build on a
-- 5.3 host's path) it fails with the dynamic loader's "undefined symbol",
-- which this turns into a sentence that says what to do.

-- The Lua a core.so was built for, from the Lua API functions it imports
-- (each Lua version has some the others lack), else from its folder.
local function built_for(file)
  local f = file and io.open(file, "rb")
  local bin = f and f:read("*a") or ""
  if f then f:close() end
  local function uses(name) return bin:find("\0" .. name .. "\0", 1, true) ~= nil end
  if uses("lua_newuserdatauv") or uses("lua_getiuservalue") then return "Lua 5.4" end
  if uses("lua_rotate") then return "Lua 5.3" end
  if uses("lua_objlen") or uses("lua_setfenv") then return "Lua 5.1 (or LuaJIT)" end
  if uses("lua_rawlen") or uses("luaL_setfuncs") then return "Lua 5.2" end
  local v = file and file:match("/lua/(5%.%d)/")
  return v and "Lua " .. v or nil
end

local function core_error(msg)
  local version = _VERSION:match("%d+%.%d+")
  local this, how = _VERSION, ("`luarocks --lua-version %s make` in its checkout, or `make install LUA=lua%s` there")
    :format(version, version)
  if rawget(_G, "jit") then
    this, how = "LuaJIT", "`luarocks --lua-version 5.1 make LUA_INCDIR=/usr/include/luajit-2.1` in its checkout, "
      .. "or `make install LUA=luajit` there"
  end
  local file = msg:match("from file '([^']+)'")
  if file and (msg:find("undefined symbol", 1, true) or msg:find("version mismatch", 1, true)
      or msg:find("multiple Lua VMs", 1, true) or msg:find("incompatible", 1, true)) then
    return ("opentact: %s was built for %s, and this is %s. Build lua-opentact for %s (%s) "
      .. "and put that build on package.cpath."):format(file, built_for(file) or "another Lua", this, this, how)
  elseif msg:find("module 'opentact.core' not found", 1, true) then
    return ("opentact: the C part of lua-opentact (opentact.core) is not on package.cpath. Build lua-opentact "
      .. "for %s (%s) and put that build on package.cpath.\n%s"):format(this, how, msg)
  end
  return msg
end

local core do
  local ok, loaded = pcall(require, "opentact.core")
  if not ok then error(core_error(tostring(loaded)), 0) end
  core = loaded
end

local options = require("opentact.options")
local errors = require("opentact.errors")
local pretty = require("opentact.pretty")
local engine = require("opentact.engine")
local bulk = require("opentact.bulk")
local search = require("opentact.search")
local auth = require("opentact.auth")
local sync = require("opentact.sync")
local routing = require("opentact.routes")
local targets = require("opentact.targets")
local settings = require("opentact.settings")

local type, pcall, tostring, pairs, ipairs = type, pcall, tostring, pairs, ipairs
local setmetatable, getmetatable = setmetatable, getmetatable
local request_list, request_assign = core.request_list, core.request_assign
local finish = errors.finish
local request, engine_new = engine.request, engine.new

local M = {
  _VERSION = "opentact " .. core.VERSION,
}

-- A call's results: one value on success (the REPL shows no stray nil),
-- nil, err on failure.
local function one(result, err)
  if result == nil then return nil, err end
  return result
end

-- The Client: a Lua object owning its options (resolved once, never the
-- user's table) and one engine over one transport.
local Client = { __name = "opentact.Client" }
Client.__index = Client

local ngx_transport

-- The transport the options name.
local function open_transport(opts)
  if opts.transport == "ngx" then
    ngx_transport = ngx_transport or require("opentact.transport.ngx")
    return ngx_transport.new(opts)
  end
  return core.curl(opts)
end

-- Misuse raises naming the public function, at the line that called it:
-- options.raise finds that line (the public functions are registered with
-- options.public), so no check counts stack frames.
local raise, public = options.raise, options.public

local function check_arg(v, want, n, fname)
  if type(v) ~= want then
    raise(("bad argument #%d to '%s' (%s expected, got %s)"):format(n, fname, want, type(v)))
  end
end

-- A trailing callback: nil, or a function the client's transport can call.
local function check_callback(client, cb, n, fname)
  if cb == nil then return end
  if type(cb) ~= "function" then
    raise(("bad argument #%d to '%s' (function expected, got %s)"):format(n, fname, type(cb)))
  end
  if client._opts.transport == "ngx" then
    raise(("bad argument #%d to '%s' (callbacks need the curl transport: inside OpenResty, "
      .. "run requests side by side with ngx.thread.spawn)"):format(n, fname))
  end
end

-- A phone number or a uuid string: a string or a number.
local function check_key(v, n, fname, at)
  local t = type(v)
  if t ~= "string" and t ~= "number" then
    raise(("bad argument #%d to '%s' (string or number expected%s, got %s)"):format(n, fname,
      at and " at index " .. at or "", t))
  end
end

-- A target argument (a connection uuid, {app = uuid}, {connection = uuid}
-- or a resolved target): its kind and its uuid as given, which the
-- request builders check; anything else raises.
local function target_arg(x, n, fname, at)
  local kind, uuid = targets.shape(x)
  if not kind then
    raise(("bad argument #%d to '%s' (string or target expected%s, got %s)"):format(n, fname,
      at and " at index " .. at or "", type(x)))
  end
  return kind, uuid
end

-- Builds an assign request; misuse found by the core raises in the user's name.
local function build_assign(conn, changes, fname, kind)
  local ok, path, body = pcall(request_assign, conn, changes, kind)
  if not ok then
    -- the core names itself; the user called `fname`
    raise(errors.in_name_of(path, fname))
  end
  return path, body
end

---------------------------------------------------------------- methods
-- The work of each public method, given an open client. The Client's
-- methods and the module-level functions are made from these below.

local work = {}

-- A request once its arguments are known to be right: blocking, or in
-- the background when a callback is given. `path` nil: `body` is the
-- error of a request that cannot be sent.
local function send(client, method, path, body, callback, shape, deadline)
  local e = client._engine
  if not path then
    local err = finish(body, method, nil, 0)
    if not callback then return nil, err end
    e:fail_callback(err, callback)
    return true
  end
  local req = request(method, path, method ~= "GET" and body or nil, shape)
  -- the call's deadline, else the client's (not that of a call whose hook
  -- this call may run in)
  req.deadline, req.own_deadline = deadline or client._opts.deadline or false, true
  if not callback then return one(e:call(req)) end
  e:submit_callback(req, callback)
  return true
end

-- A plain call's options table, when one is given before its callback
-- (argument #n; nil there, with a callback after it, is no options):
-- its deadline, the callback, and the callback's argument number.
local function call_opts(a, b, n, fname)
  if type(a) == "table" then return options.call(a, fname, n).deadline, b, n + 1 end
  if a == nil and b ~= nil then return false, b, n + 1 end
  if b ~= nil then
    raise(("bad argument #%d to '%s' (nothing expected after the callback, got %s)"):format(n + 1, fname, type(b)))
  end
  return false, a, n
end

--- Lists the TN leases assigned to a target: a SIP connection, or a SIP
--- control app. `opts` ({deadline = s}) may come before the callback.
function work.list(client, target, opts, callback, ...)
  if select("#", ...) > 0 then raise("bad argument #4 to 'list' (nothing expected after the callback)") end
  local kind, uuid = target_arg(target, 1, "list")
  local deadline, n
  deadline, callback, n = call_opts(opts, callback, 2, "list")
  check_callback(client, callback, n, "list")
  local path, err = request_list(uuid, kind)
  return send(client, "GET", path, err, callback, nil, deadline)
end

--- Assigns (`add`) and unassigns (`remove`) TN leases on a target.
function work.assign(client, target, changes, opts, callback, ...)
  if select("#", ...) > 0 then raise("bad argument #5 to 'assign' (nothing expected after the callback)") end
  local kind, uuid = target_arg(target, 1, "assign")
  check_arg(changes, "table", 2, "assign")
  local deadline, n
  deadline, callback, n = call_opts(opts, callback, 3, "assign")
  check_callback(client, callback, n, "assign")
  local path, body = build_assign(uuid, changes, "assign", kind)
  return send(client, "POST", path, body, callback, nil, deadline)
end

--- The lease that holds a phone number (any form opentact.number takes),
--- or the lease of a lease uuid.
function work.lease(client, number, opts, callback, ...)
  if select("#", ...) > 0 then raise("bad argument #4 to 'lease' (nothing expected after the callback)") end
  check_key(number, 1, "lease")
  local deadline, n
  deadline, callback, n = call_opts(opts, callback, 2, "lease")
  check_callback(client, callback, n, "lease")
  local path, err = core.request_lease(number)
  return send(client, "GET", path, err, callback, "lease", deadline)
end

--- The lease of each item of `items` (phone numbers in any form
--- opentact.number takes, or lease uuids), one lookup each, `concurrency`
--- at once: a table from each item's key (the number as a Lua number, the
--- uuid in lower case) to its lease, without the items the account has no
--- lease for; or nil, err when an item is not a phone number or a uuid
--- (`invalid`, nothing sent) or a lookup failed otherwise (an answer about
--- another lease than the one asked for among them).
function work.lookup(client, items, opts)
  check_arg(items, "table", 1, "lookup")
  local o = options.call(opts, "lookup", 2)
  for i = 1, #items do check_key(items[i], 1, "lookup", i) end
  local keys, seen = {}, {}
  for i = 1, #items do
    local x = items[i]
    local key, err
    if bulk.is_uuid(x) then key = x:lower() else key, err = core.number(x) end
    if key == nil then
      err.message = ("items[%d]: %s"):format(i, err.message)
      err.index = i
      return nil, finish(err, nil, nil, 0)
    end
    if not seen[key] then
      seen[key] = true
      keys[#keys + 1] = key
    end
  end
  return one(client._engine:within(o.deadline, sync.lookup, client._engine, keys, o.concurrency))
end

--- The base URL requests go to.
function work.base_url(client)
  return client._opts.base_url
end

--- Assigns many uuids in batches, several requests at once; returns a
--- report where every input uuid is either applied or failed.
function work.assign_batched(client, target, changes, opts)
  local kind, uuid = target_arg(target, 1, "assign_batched")
  check_arg(changes, "table", 2, "assign_batched")
  local o = options.call(opts, "assign_batched", 3)
  local path, body = build_assign(uuid, changes, "assign_batched", kind)
  return (client._engine:within(o.deadline, bulk.assign, client._engine, uuid, changes, o, path, body, kind))
end

--- Lists many targets, several requests at once; results in input order.
function work.list_many(client, list, opts)
  check_arg(list, "table", 1, "list_many")
  local o = options.call(opts, "list_many", 2)
  local items = {}
  for i = 1, #list do
    local kind, uuid = target_arg(list[i], 1, "list_many", i)
    items[i] = { kind = kind, uuid = uuid }
  end
  return setmetatable(client._engine:within(o.deadline, bulk.list, client._engine, items, o), pretty.Results)
end

--- Every SIP connection of the account: a list (opentact.Holders) of
--- tables with every field the server sent, or nil, err.
function work.connections(client)
  -- (the client's deadline: also when called from another call's hook)
  return one(client._engine:within(false, targets.list, client._engine, client._names, "connection"))
end

--- Every SIP control app of the account, the same way.
function work.apps(client)
  return one(client._engine:within(false, targets.list, client._engine, client._names, "app"))
end

--- The target `x` names (a uuid, a name, "app:NAME-or-UUID",
--- "connection:NAME-or-UUID", or a target table) as {kind, uuid, name};
--- or nil, err (`not_found`; `invalid` for a name several have, listed).
function work.target(client, x)
  if type(x) ~= "string" then target_arg(x, 1, "target") end
  return one(client._engine:within(false, targets.resolve, client._engine, client._names, x, client._opts.names_ttl))
end

--- Changes a lease's settings (PATCH /lease/tn/{uuid}): `lease` a lease
--- uuid, a lease table, or a phone number (looked up first). Returns the
--- lease as the server answers it, or nil, err.
function work.update_lease(client, lease, fields, ...)
  local t = type(lease)
  if not (t == "string" or t == "number" or t == "table" and type(lease.uuid) == "string") then
    raise(("bad argument #1 to 'update_lease' (string, number or lease expected, got %s)"):format(t))
  end
  check_arg(fields, "table", 2, "update_lease")
  if select("#", ...) > 0 then
    raise("bad argument #3 to 'update_lease' (no more arguments expected: it takes no callback)")
  end
  local body, why = settings.body(fields)
  if not body then raise(("bad argument #2 to 'update_lease' (%s)"):format(why)) end
  local uuid = t == "table" and lease.uuid or lease
  -- (a lease table's uuid is never taken for a number)
  if t ~= "table" and not bulk.is_uuid(uuid) then
    -- a phone number: its lease first
    local found, err = work.lease(client, lease)
    if not found then return nil, err end
    uuid = found.uuid
  end
  if not bulk.is_uuid(uuid) then
    return nil, finish(errors.new("invalid", "lease uuid " .. pretty.safe(("%q"):format(uuid))
      .. " is not a uuid (8-4-4-4-12 hex digits)", false), "PATCH", nil, 0)
  end
  local path = "/lease/tn/" .. uuid:lower()
  local changed, err = send(client, "PATCH", path, body, nil, "lease")
  if not changed then return nil, err end
  -- what the server answers must show what was asked, of that lease
  local unconfirmed = settings.unconfirmed(changed, uuid, fields)
  if unconfirmed then
    local e = errors.new("protocol", "the server answered success but " .. unconfirmed, false)
    e.status, e.sent = 200, true
    return nil, finish(e, "PATCH", path, 1)
  end
  return changed
end

--- One page of the account's leases that match `filter` (see the README
--- for its fields): {total, take, skip, data = leases}, or nil, err.
function work.search(client, filter, opts, callback)
  if type(opts) == "function" and callback == nil then opts, callback = nil, opts end
  if filter ~= nil then check_arg(filter, "table", 1, "search") end
  check_callback(client, callback, 3, "search")
  local o = options.call(opts, "search", 2)
  local req, err = search.request(filter, o.page_size, o.skip, "search")
  if not req then return send(client, "POST", nil, err, callback) end
  req.deadline, req.own_deadline = o.deadline or client._opts.deadline or false, true
  local e = client._engine
  if not callback then return one(e:call(req)) end
  e:submit_callback(req, callback)
  return true
end

--- Every lease that matches `filter`, each once, several pages at once.
function work.search_all(client, filter, opts)
  if filter ~= nil then check_arg(filter, "table", 1, "search_all") end
  local o = options.call(opts, "search_all", 2)
  local req, err = search.request(filter, o.page_size, 0, "search_all")
  if not req then return nil, finish(err, "POST", nil, 0) end
  return one(client._engine:within(o.deadline, search.all, client._engine, filter, o))
end

local DESIRED = { numbers = true, leases = true, all_leases = true }
-- The Lua types an item of each desired list takes.
local ITEM = { numbers = { "string or number", string = true, number = true },
  leases = { "string or table", string = true, table = true } }

-- The kind of a desired state ("numbers", "leases" or "all") and its
-- list; misuse raises in the name of `fname`.
local function check_desired(desired, fname)
  local what
  for k, v in pairs(desired) do
    if not DESIRED[k] then
      raise(("bad argument #2 to '%s' (unknown key '%s': give numbers, leases or all_leases)"):format(fname,
        tostring(k)))
    end
    if what then
      raise(("bad argument #2 to '%s' (give one of numbers, leases and all_leases)"):format(fname))
    end
    what = k
    if k == "all_leases" and v ~= true then
      raise(("bad argument #2 to '%s' (all_leases must be true)"):format(fname))
    elseif k ~= "all_leases" and type(v) ~= "table" then
      raise(("bad argument #2 to '%s' (%s must be a list, got %s)"):format(fname, k, type(v)))
    elseif k ~= "all_leases" then
      -- an item past a hole would be neither planned nor reported (with
      -- exact, detached): a hole is misuse, as in assign's lists
      local n, count = #v, 0
      for key in pairs(v) do
        count = count + 1
        if type(key) ~= "number" or key < 1 or key > n or key % 1 ~= 0 then count = n + 1 end
      end
      if count ~= n then
        raise(("bad argument #2 to '%s' (%s must be a list without holes)"):format(fname, k))
      end
      local takes = ITEM[k]
      for i = 1, n do
        if not takes[type(v[i])] then
          raise(("bad argument #2 to '%s' (%s[%d]: %s expected, got %s)"):format(fname, k, i, takes[1], type(v[i])))
        end
      end
    end
  end
  if not what then
    raise(("bad argument #2 to '%s' (give one of numbers, leases and all_leases)"):format(fname))
  end
  return what == "all_leases" and "all" or what, desired[what]
end

-- The arguments of sync and plan (`fname`), checked as one: the target,
-- what, the list and the call's options; or nil, err when the target
-- makes no request.
local function check_sync_args(target, desired, opts, fname)
  target_arg(target, 1, fname)
  check_arg(desired, "table", 2, fname)
  local what, list = check_desired(desired, fname)
  local o = options.call(opts, fname, 3)
  local t, err = targets.of(target)
  if not t then return nil, err end
  return t, what, list, o
end

--- Brings a target (a SIP connection or control app) to a desired state:
--- plans, applies, verifies. `desired` is {numbers = {...}}, {leases =
--- {...}} or {all_leases = true}.
function work.sync(client, target, desired, opts)
  local t, what, list, o = check_sync_args(target, desired, opts, "sync")
  if not t then return nil, what end
  return one(client._engine:within(o.deadline, sync.run, client._engine, t, what, list, o, client._opts.base_url))
end

--- What sync would do, changing nothing: a plan (opentact.Plan) that
--- records the holder of every lease it touches, or nil, err.
function work.plan(client, target, desired, opts)
  local t, what, list, o = check_sync_args(target, desired, opts, "plan")
  if not t then return nil, what end
  return one(client._engine:within(o.deadline, sync.make, client._engine, t, what, list, o, client._opts.base_url,
    true))
end

-- The routes of plan_routes, checked (misuse raises) and copied: the
-- plan reads them into its own tables.
local ROUTE_KEYS = { number = true, lease = true, target = true, autorenew = true, line = true }
local function check_routes(list)
  check_arg(list, "table", 1, "plan_routes")
  local n, count = #list, 0
  for k in pairs(list) do
    count = count + 1
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then count = n + 1 end
  end
  local function bad(i, what)
    raise(("bad argument #1 to 'plan_routes' (routes[%d]: %s)"):format(i, what))
  end
  if count ~= n then raise("bad argument #1 to 'plan_routes' (a list of routes without holes expected)") end
  local out = {}
  for i = 1, n do
    local r = list[i]
    if type(r) ~= "table" then bad(i, "a table {number = ... or lease = ..., target = ...} expected, got " .. type(r)) end
    for k in pairs(r) do
      if not ROUTE_KEYS[k] then bad(i, "unknown key '" .. tostring(k) .. "': give number or lease, target, autorenew") end
    end
    if (r.number == nil) == (r.lease == nil) then bad(i, "give one of number and lease") end
    if r.number ~= nil and type(r.number) ~= "string" and type(r.number) ~= "number" then
      bad(i, "number: string or number expected, got " .. type(r.number))
    end
    if r.lease ~= nil and type(r.lease) ~= "string" and not (type(r.lease) == "table" and type(r.lease.uuid) == "string") then
      bad(i, "lease: a lease uuid or a lease expected, got " .. type(r.lease))
    end
    if type(r.target) ~= "string" then
      local kind, _, _, expected = targets.shape(r.target)
      if not kind then bad(i, "target: " .. expected .. " (or a name) expected, got " .. type(r.target)) end
    end
    if r.autorenew ~= nil and type(r.autorenew) ~= "boolean" then
      bad(i, "autorenew: boolean expected, got " .. type(r.autorenew))
    end
    if r.line ~= nil and (type(r.line) ~= "number" or r.line < 1 or r.line > 2 ^ 31 or r.line % 1 ~= 0) then
      bad(i, "line: a line number expected")
    end
    out[i] = { number = r.number, lease = r.lease, target = r.target, autorenew = r.autorenew, line = r.line }
  end
  return out
end

--- One plan over every target the routes name ({number or lease, target
--- [, autorenew]} each): an opentact.RoutesPlan that apply takes, or nil,
--- err (`invalid`, every problem of the routes named in err.problems).
function work.plan_routes(client, routes, opts)
  local rs = check_routes(routes)
  local o = options.call(opts, "plan_routes", 2)
  if #rs == 0 then
    return nil, finish(errors.new("invalid", "no routes: give at least one {number = ..., target = ...}", false),
      nil, nil, 0)
  end
  return one(client._engine:within(o.deadline, routing.make, client._engine, client._names, client._opts.names_ttl, rs,
    o, client._opts.base_url))
end

--- Does exactly what a plan lists, once the server is seen to be as it
--- was when planned: a report like sync's, or nil, err (`invalid`: not a
--- plan, changed, another base URL, another plan's journal; `stale`:
--- something moved since; nothing was changed then).
function work.apply(client, plan, opts)
  check_arg(plan, "table", 1, "apply")
  local o = options.call(opts, "apply", 2)
  return one(client._engine:within(o.deadline, sync.apply, client._engine, plan, o, client._opts.base_url))
end

--- The token requests are sent with: with email and password, a JWT,
--- logging in first if there is none or it is near its end; or nil, err.
function work.token(client)
  local req = request("GET", "/auth", nil)
  req.probe = true
  req.deadline, req.own_deadline = client._opts.deadline or false, true
  return one(client._engine:call(req))
end

--- Runs transfers and retry timers for at most `timeout` seconds (0: do
--- not wait), calls the callbacks of finished requests, and returns how
--- many callback requests are still pending.
function work.step(client, timeout)
  if timeout == nil then timeout = 0 end
  if type(timeout) ~= "number" or timeout ~= timeout or timeout < 0 then
    raise(("bad argument #1 to 'step' (number >= 0 expected, got %s)"):format(
      type(timeout) == "number" and tostring(timeout) or type(timeout)))
  end
  return client._engine:step(timeout)
end

--- The descriptor that becomes readable when step has work (the cqueues
--- polling protocol, with events and timeout).
function work.pollfd(client)
  if client._opts.transport == "ngx" then
    raise("'pollfd' needs the curl transport: inside OpenResty, nginx runs the requests")
  end
  return client._engine.transport:pollfd()
end

--- What to wait for on pollfd(): readable.
function work.events()
  return "r"
end

--- Seconds until step must run (0: now), or nil when nothing is pending.
function work.timeout(client)
  return client._engine:timeout()
end

--- Frees the connections. Requests still pending end with an error, and
--- their callbacks are called before close returns. Idempotent.
function work.close(client)
  local e = client._engine
  if e then
    client._engine = nil
    e:close()
  end
  return true
end

--- The base URL, the transport and how the client authenticates; never
--- a secret (the client's __tostring).
function work.__tostring(client)
  if not client._engine then return "opentact.Client (closed)" end
  local o = client._opts
  return ("opentact.Client (%s, %s, %s)"):format(o.base_url, o.transport, client._auth)
end

-- Every public method (and metamethod), made once from its work: `module`, also a function
-- of the module on the default client; `closed`, a closed client answers it.
local METHODS = {
  { "list", module = true },
  { "assign", module = true },
  { "lease", module = true },
  { "lookup" },
  { "base_url", closed = true },
  { "assign_batched", module = true },
  { "list_many", module = true },
  { "connections", module = true },
  { "apps", module = true },
  { "target", module = true },
  { "update_lease", module = true },
  { "search", module = true },
  { "search_all", module = true },
  { "sync", module = true },
  { "plan", module = true },
  { "plan_routes", module = true },
  { "apply", module = true },
  { "token", module = true },
  { "step" },
  { "pollfd" },
  { "events" },
  { "timeout" },
  { "close", closed = true },
  { "__tostring", closed = true },
}

-- What a call returns, passed on. The public functions call the work
-- through it, never as a tail call: their frame stays on the stack while
-- the work runs, for options.raise to find.
local function results(...) return ... end

for _, m in ipairs(METHODS) do
  local name, body, closed = m[1], work[m[1]], m.closed
  Client[name] = public(function(self, ...)
    if getmetatable(self) ~= Client then
      raise(("bad self to '%s' (opentact.Client expected, got %s)"):format(name, type(self)))
    elseif not (closed or self._engine) then
      raise(("attempt to use a closed opentact client (in '%s')"):format(name))
    end
    return results(body(self, ...))
  end)
end

Client.__close = Client.close

---------------------------------------------------------------- module

local function new_client(opts, fname)
  local o = options.resolve(opts, fname, core.VERSION)
  -- the secrets go to the authentication's upvalues, not in any table
  local token, password = o.token, o.password
  o.token, o.password = nil, nil
  local a = auth.new(o, token, password)
  local e = engine_new(o, open_transport(o), a)
  return setmetatable({
    _opts = o,
    _engine = e,
    _auth = a.describe(),
    _names = {}, -- the lists client:target resolves names from (targets.resolve)
  }, Client)
end

--- Creates a client. See the README for its options.
M.new = public(function(opts)
  return results(new_client(opts, "new"))
end)

local default

local function default_client()
  if not (default and default._engine) then default = new_client(nil, "opentact") end
  return default
end

--- Replaces the default client's options; returns the default client.
M.configure = public(function(opts)
  local fresh = new_client(opts, "configure")
  local old = default
  default = fresh
  -- the old client's pending callbacks run now; one that raises still
  -- leaves the new default in place
  if old then old:close() end
  return fresh
end)

-- The module-level functions: the methods of the default client, made on
-- first use (a misuse of its environment raises at the caller's line too).
for _, m in ipairs(METHODS) do
  if m.module then
    local body = work[m[1]]
    M[m[1]] = public(function(...)
      return results(body(default_client(), ...))
    end)
  end
end

--- A phone number in any form people type ("+1 (212) 555-1234", an
--- integer) as a Lua number (an integer on 5.3+), or nil, err (`invalid`).
function M.number(x)
  local n, err = core.number(x)
  if n == nil then return nil, finish(err, nil, nil, 0) end
  return n
end

--- The plan a saved plan's text (plan:encode()) holds, or nil, err
--- (`invalid`: not JSON, not a plan, from a newer lua-opentact, or damaged
--- or edited by hand: its content does not match its hash).
M.decode_plan = public(function(text)
  check_arg(text, "string", 1, "decode_plan")
  return results(one(sync.decode(text)))
end)

--- The API root a client uses when neither `base_url` nor OPENTACT_URL says.
M.DEFAULT_URL = options.DEFAULT_URL

--- Whether `s` is a lease uuid (8-4-4-4-12 hex digits).
M.is_uuid = bulk.is_uuid

local HOLDER_FIELDS = { sip_connection = true, sip_control_app = true }

--- Who holds `lease`: {kind = "app" | "connection", uuid, name}, or nil.
--- `field` ("sip_connection" or "sip_control_app") asks about one holder.
M.holder = public(function(lease, field)
  check_arg(lease, "table", 1, "holder")
  if field ~= nil and not HOLDER_FIELDS[field] then
    raise(("bad argument #2 to 'holder' (\"sip_connection\" or \"sip_control_app\" expected, got %s)")
      :format(type(field)))
  end
  return results(bulk.holder_of(lease, field))
end)

--- Whether `given` (a phone number as written) may be `tn` without its
--- country code, as sync refuses it: no leading +, 7 digits or more, the
--- end of tn's digits.
M.is_national = sync.national

--- Whether opentact.new(opts) would take `opts`, with the environment as it
--- is: true, or nil, err (`invalid`, naming the option and what it expects).
function M.check_options(opts)
  local ok, bad = options.check(opts, "check_options", core.VERSION)
  if ok then return true end
  local err = errors.new("invalid", bad.message, false)
  err.option, err.expected = bad.option, bad.expected
  return nil, finish(err, nil, nil, 0)
end

-- Every metatable a result can carry, under its __name: a program tells
-- what it got (getmetatable(x) == opentact.Page) and gives a table it made
-- the same printing (setmetatable(t, opentact.Leases)).
M.Client = Client
M.Error = errors.Error
M.Leases = pretty.Leases
M.Lease = pretty.Lease
M.Page = pretty.Page
M.Report = pretty.Report
M.SyncReport = pretty.SyncReport
M.Plan = sync.Plan
M.RoutesPlan = routing.RoutesPlan
M.RoutesReport = pretty.RoutesReport
M.Results = pretty.Results
M.Target = targets.Target
M.Holders = targets.Holders
M.Object = core.Object

-- The module prints (in the REPL, say) as its version and the client the
-- module-level calls use, never a secret; printing makes no client.
setmetatable(M, { __tostring = function()
  if default and default._engine then return M._VERSION .. "; default client: " .. tostring(default) end
  local url = os.getenv("OPENTACT_URL")
  if not url or url == "" then
    url = options.DEFAULT_URL
  elseif options.CHECKS.base_url(url) then
    -- it is never shown: a malformed one may hold a password
    url = "an error: OPENTACT_URL is not a valid URL"
  else
    url = pretty.safe(url)
  end
  return M._VERSION .. "; default client: not made yet (on first use: " .. url .. ", from the environment)"
end })

return M
