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

-- Misuse raises naming the public function, and points at the user's
-- line: every public function calls these checks directly, so level 3 is
-- always its caller (1: the check, 2: the public function).
local is_open = core.is_open

local function check_open(client, fname)
  local open = is_open(client)
  if open == nil then
    error(("bad self to '%s' (opentact.Client expected, got %s)"):format(fname, type(client)), 3)
  elseif not open then
    error(("attempt to use a closed opentact client (in '%s')"):format(fname), 3)
  end
end

local function check_arg(v, want, n, fname)
  if type(v) ~= want then
    error(("bad argument #%d to '%s' (%s expected, got %s)"):format(n, fname, want, type(v)), 3)
  end
end

-- Builds an assign request; misuse found by the core raises in the user's name.
local function build_assign(conn, changes, fname)
  local ok, path, body = pcall(request_assign, conn, changes)
  if not ok then
    -- the core names itself; the user called `fname`
    error((gsub(tostring(path), "^bad argument #(%d+) to '[^']*'", "bad argument #%1 to '" .. fname .. "'")), 3)
  end
  return path, body
end

---------------------------------------------------------------- methods

-- The requests, once the arguments are known to be right.
local function send_list(client, conn)
  local path, err = request_list(conn)
  if not path then return nil, finish(err, "GET", nil, 0) end
  return call(client, "GET", path, nil)
end

local function send_assign(client, path, body)
  if not path then return nil, finish(body, "POST", nil, 0) end
  return call(client, "POST", path, body)
end

--- Lists the TN leases assigned to a SIP connection.
function Client:list(conn)
  check_open(self, "list")
  check_arg(conn, "string", 1, "list")
  return send_list(self, conn)
end

--- Assigns (`add`) and unassigns (`remove`) TN leases on a SIP connection.
function Client:assign(conn, changes)
  check_open(self, "assign")
  check_arg(conn, "string", 1, "assign")
  check_arg(changes, "table", 2, "assign")
  return send_assign(self, build_assign(conn, changes, "assign"))
end

--- Assigns many uuids in batches, several requests at once; returns a
--- report where every input uuid is either applied or failed.
function Client:assign_batched(conn, changes, opts)
  check_open(self, "assign_batched")
  check_arg(conn, "string", 1, "assign_batched")
  check_arg(changes, "table", 2, "assign_batched")
  local o = bulk.options(opts, "assign_batched", 3, { batch_size = 100, concurrency = 4, on_progress = false })
  local path, body = build_assign(conn, changes, "assign_batched")
  return bulk.assign(self, conn, changes, o, path, body)
end

--- Lists many connections, several requests at once; results in input order.
function Client:list_many(conns, opts)
  check_open(self, "list_many")
  check_arg(conns, "table", 1, "list_many")
  local o = bulk.options(opts, "list_many", 2, { concurrency = 8 })
  for i = 1, #conns do
    if type(conns[i]) ~= "string" then
      error(("bad argument #1 to 'list_many' (string expected at index %d, got %s)"):format(i, type(conns[i])), 2)
    end
  end
  return bulk.list(self, conns, o)
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
  check_arg(conn, "string", 1, "list")
  return send_list(default_client(), conn)
end

function M.assign(conn, changes)
  check_arg(conn, "string", 1, "assign")
  check_arg(changes, "table", 2, "assign")
  return send_assign(default_client(), build_assign(conn, changes, "assign"))
end

M.Error = errors.Error
M.Leases = pretty.Leases
M.Report = pretty.Report

return M
