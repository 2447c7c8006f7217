-- opentact: the public API. Argument checking, client methods and the
-- lazily made default client.
--
-- Request building, answer decoding and the curl transport are C
-- (opentact.core); opentact.engine attempts requests and retries them,
-- opentact.bulk batches them. Nothing here raises for what the network or
-- the server does: only misuse raises.

local core = require("opentact.core")
local options = require("opentact.options")
local errors = require("opentact.errors")
local pretty = require("opentact.pretty")
local engine = require("opentact.engine")
local bulk = require("opentact.bulk")

local type, error, pcall, tostring = type, error, pcall, tostring
local gsub = string.gsub
local request_list, request_assign = core.request_list, core.request_assign
local finish, call = errors.finish, engine.call

local M = {
  _VERSION = "opentact " .. core.VERSION,
}

local Client = core.Client

-- Argument errors name the public function and point at the user's call:
-- every public entry point calls the helpers below at the same depth.
local function argerror(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level or 4)
end

local is_open = core.is_open

local function check_open(client, fname, level)
  local open = is_open(client)
  if open == nil then
    error(("bad self to '%s' (opentact.Client expected, got %s)"):format(fname, type(client)), level or 4)
  elseif not open then
    error(("attempt to use a closed opentact client (in '%s')"):format(fname), level or 4)
  end
end

local function check_uuid_type(v, n, fname)
  if type(v) ~= "string" then argerror(n, fname, "string expected, got " .. type(v), 5) end
end

-- Builds an assign request; misuse raises in the user's name.
local function build_assign(conn, changes, fname, level)
  local ok, path, body = pcall(request_assign, conn, changes)
  if not ok then
    -- the core names itself; the user called `fname`
    error((gsub(tostring(path), "^bad argument #(%d+) to '[^']*'", "bad argument #%1 to '" .. fname .. "'")), level)
  end
  return path, body
end

---------------------------------------------------------------- methods

local function do_list(client, conn, fname)
  check_open(client, fname)
  check_uuid_type(conn, 1, fname)
  local path, err = request_list(conn)
  if not path then return nil, finish(err, "GET", nil, 0) end
  local leases, failure = call(client, "GET", path, nil)
  return leases, failure
end

local function do_assign(client, conn, changes, fname)
  check_open(client, fname)
  check_uuid_type(conn, 1, fname)
  if type(changes) ~= "table" then argerror(2, fname, "table expected, got " .. type(changes)) end
  local path, body = build_assign(conn, changes, fname, 4)
  if not path then return nil, finish(body, "POST", nil, 0) end
  local leases, failure = call(client, "POST", path, body)
  return leases, failure
end

--- Lists the TN leases assigned to a SIP connection.
function Client:list(conn)
  local leases, err = do_list(self, conn, "list")
  return leases, err
end

--- Assigns (`add`) and unassigns (`remove`) TN leases on a SIP connection.
function Client:assign(conn, changes)
  local leases, err = do_assign(self, conn, changes, "assign")
  return leases, err
end

---------------------------------------------------------------- module

local function new_client(opts, fname)
  return core.new(options.resolve(opts, fname, core.VERSION, 4))
end

--- Creates a client. See the README for its options.
function M.new(opts)
  local client = new_client(opts, "new")
  return client
end

local default

local function default_client()
  if not is_open(default) then default = new_client(nil, "opentact") end
  return default
end

--- Replaces the default client's options; returns the default client.
function M.configure(opts)
  local fresh = new_client(opts, "configure")
  if default then default:close() end
  default = fresh
  return default
end

function M.list(conn)
  local leases, err = do_list(default_client(), conn, "list")
  return leases, err
end

function M.assign(conn, changes)
  local leases, err = do_assign(default_client(), conn, changes, "assign")
  return leases, err
end

--- Assigns many uuids in batches, several requests at once; returns a
--- report where every input uuid is either applied or failed.
function Client:assign_batched(conn, changes, opts)
  check_open(self, "assign_batched", 3)
  if type(conn) ~= "string" then argerror(1, "assign_batched", "string expected, got " .. type(conn), 3) end
  if type(changes) ~= "table" then argerror(2, "assign_batched", "table expected, got " .. type(changes), 3) end
  local o = bulk.options(opts, "assign_batched", 3, { batch_size = 100, concurrency = 4, on_progress = false })
  local path, body = build_assign(conn, changes, "assign_batched", 3)
  local report = bulk.assign(self, conn, changes, o, path, body)
  return report
end

--- Lists many connections, several requests at once; results in input order.
function Client:list_many(conns, opts)
  check_open(self, "list_many", 3)
  if type(conns) ~= "table" then argerror(1, "list_many", "table expected, got " .. type(conns), 3) end
  local o = bulk.options(opts, "list_many", 2, { concurrency = 8 })
  for i = 1, #conns do
    if type(conns[i]) ~= "string" then
      argerror(1, "list_many", ("string expected at index %d, got %s"):format(i, type(conns[i])), 3)
    end
  end
  local results = bulk.list(self, conns, o)
  return results
end

M.Error = errors.Error
M.Leases = pretty.Leases
M.Report = pretty.Report

return M
