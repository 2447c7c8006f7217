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

local type, error, pcall, tostring, pairs = type, error, pcall, tostring, pairs
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

-- Misuse raises naming the public function, and points at the user's
-- line: every public function calls these checks directly, so level 3 is
-- always its caller (1: the check, 2: the public function).
local function check_open(client, fname)
  if getmetatable(client) ~= Client then
    error(("bad self to '%s' (opentact.Client expected, got %s)"):format(fname, type(client)), 3)
  elseif not client._engine then
    error(("attempt to use a closed opentact client (in '%s')"):format(fname), 3)
  end
end

local function check_arg(v, want, n, fname, level)
  if type(v) ~= want then
    error(("bad argument #%d to '%s' (%s expected, got %s)"):format(n, fname, want, type(v)), level or 3)
  end
end

-- A trailing callback: nil, or a function the client's transport can call.
local function check_callback(client, cb, n, fname, level)
  if cb == nil then return end
  if type(cb) ~= "function" then
    error(("bad argument #%d to '%s' (function expected, got %s)"):format(n, fname, type(cb)), level or 3)
  end
  if client._opts.transport == "ngx" then
    error(("bad argument #%d to '%s' (callbacks need the curl transport: inside OpenResty, "
      .. "run requests side by side with ngx.thread.spawn)"):format(n, fname), level or 3)
  end
end

-- Builds an assign request; misuse found by the core raises in the user's name.
local function build_assign(conn, changes, fname)
  local ok, path, body = pcall(request_assign, conn, changes)
  if not ok then
    -- the core names itself; the user called `fname`
    error(errors.in_name_of(path, fname), 3)
  end
  return path, body
end

---------------------------------------------------------------- methods

-- A request once its arguments are known to be right: blocking, or in
-- the background when a callback is given. `path` nil: `body` is the
-- error of a request that cannot be sent.
local function send(client, method, path, body, callback, shape)
  local e = client._engine
  if not path then
    local err = finish(body, method, nil, 0)
    if not callback then return nil, err end
    e:fail_callback(err, callback)
    return true
  end
  local req = request(method, path, method == "POST" and body or nil, shape)
  if not callback then return one(e:call(req)) end
  e:submit_callback(req, callback)
  return true
end

--- Lists the TN leases assigned to a SIP connection.
function Client:list(conn, callback)
  check_open(self, "list")
  check_arg(conn, "string", 1, "list")
  check_callback(self, callback, 2, "list")
  local path, err = request_list(conn)
  return send(self, "GET", path, err, callback)
end

--- Assigns (`add`) and unassigns (`remove`) TN leases on a SIP connection.
function Client:assign(conn, changes, callback)
  check_open(self, "assign")
  check_arg(conn, "string", 1, "assign")
  check_arg(changes, "table", 2, "assign")
  check_callback(self, callback, 3, "assign")
  local path, body = build_assign(conn, changes, "assign")
  return send(self, "POST", path, body, callback)
end
--- The lease that holds a phone number (any form opentact.number takes).
function Client:lease(number, callback)
  check_open(self, "lease")
  check_callback(self, callback, 2, "lease")
  local path, err = core.request_lease(number)
  return send(self, "GET", path, err, callback, "lease")
end

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

--- The lease of each item of `items` (phone numbers in any form
--- opentact.number takes, or lease uuids), one lookup each, `concurrency`
--- at once: a table from each item's key (the number as a Lua number, the
--- uuid in lower case) to its lease, without the items the account has no
--- lease for; or nil, err when a lookup failed otherwise (an answer about
--- another lease than the one asked for among them).
function Client:lookup(items, opts)
  check_open(self, "lookup")
  check_arg(items, "table", 1, "lookup")
  local o = bulk.options(opts, "lookup", 2, { concurrency = 16 })
  local keys, seen = {}, {}
  for i = 1, #items do
    local x = items[i]
    local key
    if type(x) == "string" and x:find(UUID) then key = x:lower() else key = core.number(x) end
    if key == nil then
      error(("bad argument #1 to 'lookup' (a phone number or lease uuid expected at index %d)"):format(i), 2)
    end
    if not seen[key] then
      seen[key] = true
      keys[#keys + 1] = key
    end
  end
  return one(sync.lookup(self._engine, keys, o.concurrency))
end

--- The base URL requests go to.
function Client:base_url()
  if getmetatable(self) ~= Client then
    error(("bad self to 'base_url' (opentact.Client expected, got %s)"):format(type(self)), 2)
  end
  return self._opts.base_url
end

--- Assigns many uuids in batches, several requests at once; returns a
--- report where every input uuid is either applied or failed.
function Client:assign_batched(conn, changes, opts)
  check_open(self, "assign_batched")
  check_arg(conn, "string", 1, "assign_batched")
  check_arg(changes, "table", 2, "assign_batched")
  local o = bulk.options(opts, "assign_batched", 3, { batch_size = 100, concurrency = 4, on_progress = false })
  local path, body = build_assign(conn, changes, "assign_batched")
  return (bulk.assign(self._engine, conn, changes, o, path, body))
end

local function do_list_many(client, fname, conns, opts)
  check_arg(conns, "table", 1, fname, 4)
  local o = bulk.options(opts, fname, 2, { concurrency = 8 }, 4)
  for i = 1, #conns do
    if type(conns[i]) ~= "string" then
      error(("bad argument #1 to '%s' (string expected at index %d, got %s)"):format(fname, i, type(conns[i])), 3)
    end
  end
  return setmetatable(bulk.list(client._engine, conns, o), pretty.Results)
end

--- Lists many connections, several requests at once; results in input order.
function Client:list_many(conns, opts)
  check_open(self, "list_many")
  local results = do_list_many(self, "list_many", conns, opts)
  return results
end

---------------------------------------------------------------- search, sync
-- Shared by the methods and the module-level functions, which both call
-- them directly (never as a tail call): misuse raises at the user's line
-- (error level 3 from these, 4 from the checks they call).

local function do_search(client, fname, filter, opts, callback)
  if type(opts) == "function" and callback == nil then opts, callback = nil, opts end
  if filter ~= nil then check_arg(filter, "table", 1, fname, 4) end
  check_callback(client, callback, 3, fname, 4)
  local o = bulk.options(opts, fname, 2, { take = 100, skip = 0 }, 4)
  local req, err = search.request(filter, o.take, o.skip, fname, 4)
  if not req then return send(client, "POST", nil, err, callback) end
  local e = client._engine
  if not callback then return one(e:call(req)) end
  e:submit_callback(req, callback)
  return true
end

local function do_search_all(client, fname, filter, opts)
  if filter ~= nil then check_arg(filter, "table", 1, fname, 4) end
  local o = bulk.options(opts, fname, 2, { page_size = 100, concurrency = 4, on_progress = false }, 4)
  local req, err = search.request(filter, o.page_size, 0, fname, 4)
  if not req then return nil, finish(err, "POST", nil, 0) end
  return one(search.all(client._engine, filter, o))
end

local DESIRED = { numbers = true, leases = true, all_leases = true }

local function do_sync(client, fname, conn, desired, opts)
  check_arg(conn, "string", 1, fname, 4)
  check_arg(desired, "table", 2, fname, 4)
  local what
  for k, v in pairs(desired) do
    if not DESIRED[k] then
      error(("bad argument #2 to '%s' (unknown key '%s': give numbers, leases or all_leases)")
        :format(fname, tostring(k)), 3)
    end
    if what then
      error(("bad argument #2 to '%s' (give one of numbers, leases and all_leases)"):format(fname), 3)
    end
    what = k
    if k == "all_leases" and v ~= true then
      error(("bad argument #2 to '%s' (all_leases must be true)"):format(fname), 3)
    elseif k ~= "all_leases" and type(v) ~= "table" then
      error(("bad argument #2 to '%s' (%s must be a list, got %s)"):format(fname, k, type(v)), 3)
    elseif k ~= "all_leases" then
      -- an item past a hole would be neither planned nor reported (with
      -- exact, detached): a hole is misuse, as in assign's lists
      local n, count = #v, 0
      for key in pairs(v) do
        count = count + 1
        if type(key) ~= "number" or key < 1 or key > n or key % 1 ~= 0 then count = n + 1 end
      end
      if count ~= n then
        error(("bad argument #2 to '%s' (%s must be a list without holes)"):format(fname, k), 3)
      end
    end
  end
  if not what then
    error(("bad argument #2 to '%s' (give one of numbers, leases and all_leases)"):format(fname), 3)
  end
  local o = bulk.options(opts, fname, 3, { exact = false, move = false, dry_run = false, batch_size = 100,
    concurrency = 4, page_size = 100, on_progress = false }, 4)
  local path, err = request_list(conn)
  if not path then return nil, finish(err, "GET", nil, 0) end
  return one(sync.run(client._engine, conn, what == "all_leases" and "all" or what, desired[what], o))
end

--- One page of the account's leases that match `filter` (see the README
--- for its fields): {total, take, skip, data = leases}, or nil, err.
function Client:search(filter, opts, callback)
  check_open(self, "search")
  local a, b = do_search(self, "search", filter, opts, callback)
  return one(a, b)
end

--- Every lease that matches `filter`, each once, several pages at once.
function Client:search_all(filter, opts)
  check_open(self, "search_all")
  local a, b = do_search_all(self, "search_all", filter, opts)
  return one(a, b)
end

--- Brings a SIP connection to a desired state: plans, applies, verifies.
--- `desired` is {numbers = {...}}, {leases = {...}} or {all_leases = true}.
function Client:sync(conn, desired, opts)
  check_open(self, "sync")
  local a, b = do_sync(self, "sync", conn, desired, opts)
  return one(a, b)
end

--- The token requests are sent with: with email and password, a JWT,
--- logging in first if there is none or it is near its end; or nil, err.
function Client:token()
  check_open(self, "token")
  local req = request("GET", "/auth", nil)
  req.probe = true
  return one(self._engine:call(req))
end

--- Runs transfers and retry timers for at most `timeout` seconds (0: do
--- not wait), calls the callbacks of finished requests, and returns how
--- many callback requests are still pending.
function Client:step(timeout)
  check_open(self, "step")
  if timeout == nil then timeout = 0 end
  if type(timeout) ~= "number" or timeout ~= timeout or timeout < 0 then
    error(("bad argument #1 to 'step' (number >= 0 expected, got %s)"):format(
      type(timeout) == "number" and tostring(timeout) or type(timeout)), 2)
  end
  return self._engine:step(timeout)
end

--- The descriptor that becomes readable when step has work (the cqueues
--- polling protocol, with events and timeout).
function Client:pollfd()
  check_open(self, "pollfd")
  if self._opts.transport == "ngx" then
    error("'pollfd' needs the curl transport: inside OpenResty, nginx runs the requests", 2)
  end
  return self._engine.transport:pollfd()
end

--- What to wait for on pollfd(): readable.
function Client:events()
  check_open(self, "events")
  return "r"
end

--- Seconds until step must run (0: now), or nil when nothing is pending.
function Client:timeout()
  check_open(self, "timeout")
  return self._engine:timeout()
end

--- Frees the connections. Requests still pending end with an error, and
--- their callbacks are called before close returns. Idempotent.
function Client:close()
  if getmetatable(self) ~= Client then
    error(("bad self to 'close' (opentact.Client expected, got %s)"):format(type(self)), 2)
  end
  local e = self._engine
  if e then
    self._engine = nil
    e:close()
  end
  return true
end

Client.__close = Client.close

--- The base URL, the transport and how the client authenticates; never
--- a secret.
function Client:__tostring()
  if not self._engine then return "opentact.Client (closed)" end
  local o = self._opts
  return ("opentact.Client (%s, %s, %s)"):format(o.base_url, o.transport, self._auth)
end

---------------------------------------------------------------- module

local function new_client(opts, fname)
  local o = options.resolve(opts, fname, core.VERSION, 4)
  -- the secrets go to the authentication's upvalues, not in any table
  local token, password = o.token, o.password
  o.token, o.password = nil, nil
  local a = auth.new(o, token, password)
  local e = engine_new(o, open_transport(o), a)
  return setmetatable({
    _opts = o,
    _engine = e,
    _auth = a.describe(),
  }, Client)
end

--- Creates a client. See the README for its options.
function M.new(opts)
  local client = new_client(opts, "new")
  return client
end

local default

local function default_client()
  if not (default and default._engine) then default = new_client(nil, "opentact") end
  return default
end

--- Replaces the default client's options; returns the default client.
function M.configure(opts)
  local fresh = new_client(opts, "configure")
  local old = default
  default = fresh
  -- the old client's pending callbacks run now; one that raises still
  -- leaves the new default in place
  if old then old:close() end
  return fresh
end

function M.list(conn, callback)
  check_arg(conn, "string", 1, "list")
  local client = default_client()
  check_callback(client, callback, 2, "list")
  local path, err = request_list(conn)
  return send(client, "GET", path, err, callback)
end

function M.assign(conn, changes, callback)
  check_arg(conn, "string", 1, "assign")
  check_arg(changes, "table", 2, "assign")
  local client = default_client()
  check_callback(client, callback, 3, "assign")
  local path, body = build_assign(conn, changes, "assign")
  return send(client, "POST", path, body, callback)
end

function M.lease(number, callback)
  local client = default_client()
  check_callback(client, callback, 2, "lease")
  local path, err = core.request_lease(number)
  return send(client, "GET", path, err, callback, "lease")
end

function M.token()
  local token, err = default_client():token()
  return one(token, err)
end

function M.search(filter, opts, callback)
  local a, b = do_search(default_client(), "search", filter, opts, callback)
  return one(a, b)
end

function M.search_all(filter, opts)
  local a, b = do_search_all(default_client(), "search_all", filter, opts)
  return one(a, b)
end

function M.sync(conn, desired, opts)
  local a, b = do_sync(default_client(), "sync", conn, desired, opts)
  return one(a, b)
end

function M.assign_batched(conn, changes, opts)
  check_arg(conn, "string", 1, "assign_batched")
  check_arg(changes, "table", 2, "assign_batched")
  local client = default_client()
  local o = bulk.options(opts, "assign_batched", 3, { batch_size = 100, concurrency = 4, on_progress = false })
  local path, body = build_assign(conn, changes, "assign_batched")
  return (bulk.assign(client._engine, conn, changes, o, path, body))
end

function M.list_many(conns, opts)
  local results = do_list_many(default_client(), "list_many", conns, opts)
  return results
end

--- A phone number in any form people type ("+1 (212) 555-1234", an
--- integer) as a Lua number (an integer on 5.3+), or nil, err (`invalid`).
function M.number(x)
  local n, err = core.number(x)
  if n == nil then return nil, finish(err, nil, nil, 0) end
  return n
end

M.Client = Client
M.Error = errors.Error
M.Leases = pretty.Leases
M.Report = pretty.Report
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
