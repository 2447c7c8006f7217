-- opentact: the public API. Clients, the lazily made default client, the
-- request loop with its retry policy and token refresh.
--
-- Request building, answer decoding and the curl transport are C
-- (opentact.core); this layer decides what to send again and when, and
-- never raises for anything the network or the server can cause.

local core = require("opentact.core")
local options = require("opentact.options")
local errors = require("opentact.errors")
local pretty = require("opentact.pretty")
local retry = require("opentact.retry")

local type, error, pcall, setmetatable, tostring = type, error, pcall, setmetatable, tostring
local gsub = string.gsub
local request_list, request_assign, answer_decode = core.request_list, core.request_assign, core.answer_decode
local now, sleep = core.now, core.sleep
local Leases = pretty.Leases
local finish = errors.finish
local retry_delay = retry.delay

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

local function check_open(client, fname)
  local open = is_open(client)
  if open == nil then
    error(("bad self to '%s' (opentact.Client expected, got %s)"):format(fname, type(client)), 4)
  elseif not open then
    error(("attempt to use a closed opentact client (in '%s')"):format(fname), 4)
  end
end

local function check_uuid_type(v, n, fname)
  if type(v) ~= "string" then argerror(n, fname, "string expected, got " .. type(v), 5) end
end

---------------------------------------------------------------- tokens

local NO_TOKEN = "no token: set OPENTACT_TOKEN, or pass `token` to opentact.new or opentact.configure"

-- The token to send: the option itself, or what the token function gave
-- (kept until a 401 asks for a fresh one).
local function current_token(st, fresh)
  local t = st.token
  if type(t) ~= "function" then
    if t == nil then return nil, errors.new("auth", NO_TOKEN) end
    return t
  end
  if st.token_value and not fresh then return st.token_value end
  st.token_value = nil
  local ok, value = pcall(t)
  if not ok then
    return nil, errors.new("auth", "the token function failed: " .. tostring(value))
  end
  if type(value) ~= "string" or value == "" or value:find("[%z\1-\31\127]") then
    return nil, errors.new("auth", "the token function returned " ..
      (type(value) == "string" and "an empty string or control characters" or "a " .. type(value)))
  end
  st.token_value = value
  return value
end

---------------------------------------------------------------- requests

local function emit(st, method, path, status, attempt, elapsed, err)
  -- a failing hook never breaks the request
  pcall(st.log, {
    method = method, path = path, status = status or (err and err.status),
    attempt = attempt, elapsed = elapsed, kind = err and err.kind or nil,
  })
end

-- Sends one logical request, attempting it as often as the policy allows.
local function call(client, method, path, body)
  local st = client:_state()
  local attempt, retried, refreshed, fresh = 0, 0, false, false
  while true do
    local token, err = current_token(st, fresh)
    if not token then return nil, finish(err, method, path, attempt) end
    attempt = attempt + 1
    local started = now()
    local status, data, retry_after = client:_perform(method, path, body, token)
    local leases
    if status then
      leases, err = answer_decode(status, data, retry_after)
    else
      err = data
    end
    if st.log then emit(st, method, path, status, attempt, now() - started, err) end
    if leases then return setmetatable(leases, Leases) end
    fresh = false
    if err.status == 401 and type(st.token) == "function" and not refreshed then
      refreshed, fresh = true, true
    else
      local wait = retry_delay(st, err, method, retried, function(cap) return client:_jitter(cap) end)
      if not wait then return nil, finish(err, method, path, attempt, token) end
      retried = retried + 1
      sleep(wait)
    end
  end
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
  local ok, path, body = pcall(request_assign, conn, changes)
  if not ok then
    -- the core names itself; the user called `fname`
    error((gsub(tostring(path), "^bad argument #(%d+) to '[^']*'", "bad argument #%1 to '" .. fname .. "'")), 3)
  end
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
  local st = options.resolve(opts, fname, core.VERSION, 4)
  if st.transport == "ngx" then
    error(("bad option 'transport' to '%s' (the ngx transport is not available in this version)"):format(fname), 3)
  end
  return core.new(st)
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

M.Error = errors.Error
M.Leases = Leases

return M
