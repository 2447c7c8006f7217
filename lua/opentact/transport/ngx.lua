-- The ngx transport: HTTP/1.1 over OpenResty's cosockets, so a request
-- never blocks the nginx worker. It builds nothing and decodes nothing
-- itself: paths and bodies come from the C request builder and answers go
-- to the same C decoder as the curl transport's.
--
-- Connections are kept with setkeepalive in a pool whose name carries
-- every setting that makes connections differ (scheme, host, port, TLS
-- verification). Each request runs on its own light thread (ngx.thread);
-- poll waits on a semaphore that finished threads post, so the engine
-- above drives this transport exactly as it drives the curl one.

local ngx = ngx
local tcp = ngx.socket.tcp
local spawn, kill = ngx.thread.spawn, ngx.thread.kill
local semaphore = require("ngx.semaphore")
local tonumber, tostring, concat, pcall, setmetatable, pairs = tonumber, tostring, table.concat, pcall, setmetatable, pairs
local lower, find, match = string.lower, string.find, string.match

local M = {}

local Transport = {}
Transport.__index = Transport

local KEEPALIVE_MS = 60000
local POOL_SIZE = 64

-- Phases where cosockets work.
local COSOCKET_PHASES = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, preread = true,
}

local function failure(kind, message, sent, retryable)
  return { kind = kind, message = message, retryable = retryable ~= false, sent = sent }
end

-- Where base_url points, parsed once per transport.
local function target(st)
  local scheme, host, port, prefix = match(st.base_url, "^(%a+)://([^/:]+):?(%d*)(.*)$")
  scheme = lower(scheme or "")
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  return {
    https = scheme == "https", host = host, port = port, prefix = prefix or "",
    host_header = (port == 80 and scheme == "http" or port == 443 and scheme == "https") and host
      or host .. ":" .. port,
    pool = concat({ scheme, host, port, st.verify and "verify" or "noverify", st.user_agent }, ":"),
    connect_ms = st.connect_timeout * 1000,
    io_ms = st.timeout * 1000,
  }
end

-- Reads a chunked body; returns it, or nil, err.
local function read_chunked(sock, max_body)
  local parts, total = {}, 0
  while true do
    local line, err = sock:receive("*l")
    if not line then return nil, err end
    local size = tonumber(match(line, "^%s*(%x+)"), 16)
    if not size then return nil, "bad chunk size" end
    if size == 0 then
      -- trailers, up to the empty line
      repeat
        line, err = sock:receive("*l")
        if not line then return nil, err end
      until line == ""
      return concat(parts)
    end
    total = total + size
    if total > max_body then return nil, "too large" end
    local data
    data, err = sock:receive(size)
    if not data then return nil, err end
    parts[#parts + 1] = data
    line, err = sock:receive("*l")
    if not line then return nil, err end
  end
end

local function read_to_close(sock, max_body)
  local parts, total = {}, 0
  while true do
    local data, err = sock:receiveany(65536)
    if not data then
      if err == "closed" then return concat(parts) end
      return nil, err
    end
    total = total + #data
    if total > max_body then return nil, "too large" end
    parts[#parts + 1] = data
  end
end

local function receive_error(err, what)
  if err == "timeout" then return failure("timeout", "timed out reading the " .. what, true) end
  if err == "too large" then return failure("protocol", "answer is larger than max_body", true, false) end
  return failure("network", "connection " .. tostring(err) .. " while reading the " .. what, true)
end

-- One exchange on one connection. Returns status, body, retry_after; or
-- nil, err, again: `again` when a kept-alive connection turned out to be
-- closed before the server answered anything, so a fresh one may retry.
local function exchange(st, t, method, path, body, token)
  local sock = tcp()
  sock:settimeouts(t.connect_ms, t.io_ms, t.io_ms)
  local ok, err = sock:connect(t.host, t.port, { pool = t.pool, pool_size = POOL_SIZE })
  if not ok then
    if err == "timeout" then return nil, failure("timeout", "timed out connecting to " .. t.host, false) end
    return nil, failure("network", "cannot connect to " .. t.host .. ":" .. t.port .. ": " .. tostring(err), false)
  end
  local reused = sock:getreusedtimes() > 0
  if t.https and not reused then
    -- When verification fails at once, lua-resty-core 0.1.25 either
    -- reports success (if no session is asked for) or fails an assertion
    -- (if one is): ask for one, and take the assertion as the failure.
    local called, session, why = pcall(sock.sslhandshake, sock, nil, t.host, st.verify)
    ok, err = called and session ~= nil, called and why or "certificate verification failed"
    if not ok then
      sock:close()
      return nil, failure("tls", "TLS handshake with " .. t.host .. " failed: " .. tostring(err), false, false)
    end
  end
  local request = {
    method, " ", t.prefix, path, " HTTP/1.1\r\nHost: ", t.host_header,
    "\r\nX-Auth-Token: ", token,
    "\r\nAccept: application/json\r\nUser-Agent: ", st.user_agent, "\r\n",
  }
  if body then
    request[#request + 1] = "Content-Type: application/json\r\nContent-Length: " .. #body .. "\r\n\r\n"
    request[#request + 1] = body
  else
    request[#request + 1] = "\r\n"
  end
  ok, err = sock:send(request)
  if not ok then
    sock:close()
    return nil, failure(err == "timeout" and "timeout" or "network", "cannot send the request: " .. tostring(err), true),
      reused and err == "closed"
  end

  local line
  line, err = sock:receive("*l")
  if not line then
    sock:close()
    return nil, receive_error(err, "answer"), reused and err == "closed"
  end
  local version, status = match(line, "^HTTP/(%d%.%d) (%d%d%d)")
  if not status then
    sock:close()
    return nil, failure("protocol", "answer is not HTTP", true, false)
  end
  status = tonumber(status)
  local length, chunked, close, retry_after = nil, false, version == "1.0", nil
  while true do
    line, err = sock:receive("*l")
    if not line then
      sock:close()
      return nil, receive_error(err, "headers")
    end
    if line == "" then break end
    local name, value = match(line, "^([^:]+):%s*(.-)%s*$")
    if name then
      name = lower(name)
      if name == "content-length" then
        length = tonumber(value)
      elseif name == "transfer-encoding" then
        chunked = find(lower(value), "chunked", 1, true) ~= nil
      elseif name == "connection" then
        local v = lower(value)
        if find(v, "close", 1, true) then close = true elseif find(v, "keep-alive", 1, true) then close = false end
      elseif name == "retry-after" then
        retry_after = value
      end
    end
  end

  local max_body = st.max_body
  local answer
  if chunked then
    answer, err = read_chunked(sock, max_body)
  elseif length then
    if length > max_body then
      err = "too large"
    elseif length > 0 then
      answer, err = sock:receive(length)
    else
      answer = ""
    end
  elseif status == 204 or status == 304 then
    answer = ""
  else
    answer, err = read_to_close(sock, max_body)
    close = true
  end
  if not answer then
    sock:close()
    return nil, receive_error(err, "answer")
  end
  if close then sock:close() else sock:setkeepalive(KEEPALIVE_MS, POOL_SIZE) end
  return status, answer, retry_after
end

-- One attempt: status, body, retry_after, or nil, err.
local function perform(st, t, method, path, body, token)
  local status, data, extra = exchange(st, t, method, path, body, token)
  if status == nil and extra then
    -- the kept-alive connection was already closed: once more on a fresh one
    status, data, extra = exchange(st, t, method, path, body, token)
  end
  if status == nil then return nil, data end
  return status, data, extra
end

-- The light thread of request `id`: whatever happens, even an error in
-- this file, its outcome reaches poll.
local function attempt(self, id, method, path, body, token)
  local ok, status, data, extra = pcall(perform, self.opts, self.target, method, path, body, token)
  if not ok then
    status, data, extra = false, failure("network", "the request's light thread failed: " .. tostring(status), true, false), false
  elseif status == nil then
    status, extra = false, false
  end
  if self.threads[id] then
    self.threads[id] = nil
    self.count = self.count - 1
    -- the engine's format: four slots per answer
    local out = self.finished
    local n = #out
    out[n + 1], out[n + 2], out[n + 3], out[n + 4] = id, status, data, extra or false
    self.sema:post(1)
  end
end

--- A transport for a client whose options are `opts`.
function M.new(opts)
  return setmetatable({
    opts = opts, target = target(opts), count = 0,
    threads = {}, finished = {}, sema = semaphore.new(0),
  }, Transport)
end

function Transport:start(id, method, path, body, token)
  local phase = ngx.get_phase()
  if not COSOCKET_PHASES[phase] then
    return nil, failure("invalid", ("nginx cannot do network I/O in its %s phase: call from rewrite, access, "
      .. "content or a timer, or pass transport = \"curl\" to block the worker knowingly"):format(phase), false, false)
  end
  self.threads[id] = true -- a thread that finishes at once must find its slot
  self.count = self.count + 1
  local co, err = spawn(attempt, self, id, method, path, body, token)
  if not co then
    self.threads[id] = nil
    self.count = self.count - 1
    return nil, failure("network", "cannot start a light thread: " .. tostring(err), false)
  end
  if self.threads[id] then self.threads[id] = co end
  return true
end

--- Finished requests (four slots each, as the engine takes them),
--- waiting at most `timeout` seconds for one.
function Transport:poll(timeout)
  local sema = self.sema
  if #self.finished == 0 then
    if timeout > 0 then sema:wait(timeout) end
  end
  local out = self.finished
  if #out == 0 then return out end
  self.finished = {}
  -- Other coroutines driving this client (other nginx requests sharing
  -- it) may be waiting for what came back here: wake them to look. Only
  -- after taking answers, so wakeups never beget wakeups.
  local waiting = -sema:count()
  if waiting > 0 then sema:post(waiting) end
  return out
end

function Transport:cancel(id)
  local co = self.threads[id]
  if not co then return false end
  self.threads[id] = nil
  self.count = self.count - 1
  if co ~= true then pcall(kill, co) end -- only the spawning coroutine may kill it
  return true
end

function Transport:pending()
  return self.count
end

function Transport.timeout()
  return nil
end

function Transport:close()
  for id in pairs(self.threads) do self:cancel(id) end
end

return M
