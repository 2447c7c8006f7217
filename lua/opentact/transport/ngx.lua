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
local lower, find, match, sub, byte = string.lower, string.find, string.match, string.sub, string.byte
local now = ngx.now

local M = {}

local Transport = {}
Transport.__index = Transport

local KEEPALIVE_MS = 60000
local POOL_SIZE = 64
-- A light thread belongs to the nginx request that spawned it: when that
-- request ends (its client went away, ngx.exit), nginx aborts the thread
-- and its outcome never comes, while another request's coroutine may wait
-- for it (the login of a client the worker's requests share). A thread
-- not finished this many seconds after its attempt's deadline (its own
-- timeouts end a live one before) is taken for gone: poll finishes it
-- with a `timeout` error, and the engine goes on as for any timeout.
local GONE_AFTER = 1

-- Phases where cosockets work.
local COSOCKET_PHASES = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, preread = true,
}

local function failure(kind, message, sent, retryable)
  return { kind = kind, message = message, retryable = retryable ~= false, sent = sent }
end

-- Where base_url points, parsed once per transport. An IPv6 literal keeps
-- its brackets, as connect and the Host header both want it.
local function target(st)
  local scheme, rest = match(st.base_url, "^(%a+)://(.*)$")
  scheme = lower(scheme or "")
  local host, port, prefix = match(rest or "", "^(%[[%x:.]+%]):?(%d*)(.*)$")
  if not host then host, port, prefix = match(rest or "", "^([^/:]+):?(%d*)(.*)$") end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  return {
    https = scheme == "https", host = host, port = port, prefix = prefix or "",
    host_header = (port == 80 and scheme == "http" or port == 443 and scheme == "https") and host
      or host .. ":" .. port,
    pool = concat({ scheme, host, port, st.verify and "verify" or "noverify", st.user_agent }, ":"),
    connect_ms = st.connect_timeout * 1000,
    timeout = st.timeout,
  }
end

-- Limits on what a server may send before the body.
local MAX_LINE = 8192      -- bytes in the status line or one header line
local MAX_HEADERS = 100    -- header lines in one answer
local MAX_INTERIM = 8      -- 1xx answers before the final one

-- A reader over one connection that never waits past the attempt's
-- deadline, however slowly the server sends: every read asks for what is
-- there (receiveany) with the time left as its timeout.
local Reader = {}
Reader.__index = Reader

local function new_reader(sock, deadline)
  return setmetatable({ sock = sock, deadline = deadline, buf = "", pos = 1 }, Reader)
end

-- The next bytes the server sends; nil, err on timeout or close.
function Reader:read()
  local left = self.deadline - now()
  if left <= 0 then return nil, "timeout" end
  self.sock:settimeout(left * 1000 + 1)
  return self.sock:receiveany(65536)
end

-- One line without its CRLF (or LF), at most MAX_LINE bytes.
function Reader:line()
  while true do
    local i = find(self.buf, "\n", self.pos, true)
    if i then
      local line = sub(self.buf, self.pos, i - 1)
      self.pos = i + 1
      if byte(line, -1) == 13 then line = sub(line, 1, -2) end
      return line
    end
    if #self.buf - self.pos + 1 > MAX_LINE then return nil, "line too long" end
    local data, err = self:read()
    if not data then return nil, err end
    self.buf, self.pos = sub(self.buf, self.pos) .. data, 1
  end
end

-- Exactly n bytes; or, with n == nil, everything until the server closes.
-- Bytes past n stay buffered. Never more than `max` bytes.
function Reader:bytes(n, max)
  local have = #self.buf - self.pos + 1
  if n and have >= n then
    local out = sub(self.buf, self.pos, self.pos + n - 1)
    self.pos = self.pos + n
    return out
  end
  local parts, got = { sub(self.buf, self.pos) }, have
  self.buf, self.pos = "", 1
  while not n or got < n do
    if got > max then return nil, "too large" end
    local data, err = self:read()
    if not data then
      if not n and err == "closed" then return concat(parts) end
      return nil, err
    end
    parts[#parts + 1] = data
    got = got + #data
  end
  local all = concat(parts)
  self.buf = sub(all, n + 1)
  return sub(all, 1, n)
end

-- Whether bytes beyond the answer are buffered (the connection is then
-- not clean enough to reuse).
function Reader:leftover()
  return #self.buf >= self.pos
end

-- Reads a chunked body; returns it, or nil, err.
local function read_chunked(r, max_body)
  local parts, total = {}, 0
  while true do
    local line, err = r:line()
    if not line then return nil, err end
    local hex = match(line, "^(%x+)%s*[;]?.*$")
    local size = hex and #hex <= 12 and tonumber(hex, 16)
    if not size then return nil, "bad chunk size" end
    if size == 0 then
      -- trailers, up to the empty line
      for _ = 1, MAX_HEADERS do
        line, err = r:line()
        if not line then return nil, err end
        if line == "" then return concat(parts) end
      end
      return nil, "too many trailer lines"
    end
    total = total + size
    if total > max_body then return nil, "too large" end
    local data
    data, err = r:bytes(size, max_body)
    if not data then return nil, err end
    parts[#parts + 1] = data
    line, err = r:line()
    if not line then return nil, err end
    if line ~= "" then return nil, "bad chunk end" end
  end
end

local function receive_error(err, what)
  if err == "timeout" then return failure("timeout", "timed out reading the " .. what, true) end
  if err == "too large" then return failure("protocol", "answer is larger than max_body", true, false) end
  if err == "closed" or err == "connection reset by peer" then
    return failure("network", "connection " .. tostring(err) .. " while reading the " .. what, true)
  end
  return failure("protocol", "the server's " .. what .. " is malformed: " .. tostring(err), true, false)
end

-- Reads one answer's status line and headers, skipping 1xx interim
-- answers. Returns status, headers {content_length, chunked, close,
-- retry_after, date}, or nil, err, nothing_read.
local function read_head(r)
  for _ = 1, MAX_INTERIM + 1 do
    local line, err = r:line()
    if not line then return nil, err, true end
    local version, status = match(line, "^HTTP/(%d%.%d) (%d%d%d)")
    if not status then return nil, "answer is not HTTP" end
    status = tonumber(status)
    local h = { close = version == "1.0" }
    for n = 1, MAX_HEADERS + 1 do
      line, err = r:line()
      if not line then return nil, err end
      if line == "" then break end
      if n > MAX_HEADERS then return nil, "more than " .. MAX_HEADERS .. " header lines" end
      local name, value = match(line, "^([^:%s]+):%s*(.-)%s*$")
      if name then
        name = lower(name)
        if name == "content-length" then
          local n_ = match(value, "^%d+$") and #value <= 15 and tonumber(value)
          if not n_ or (h.content_length and h.content_length ~= n_) then
            return nil, "bad Content-Length '" .. value .. "'"
          end
          h.content_length = n_
        elseif name == "transfer-encoding" then
          h.chunked = find(lower(value), "chunked", 1, true) ~= nil
        elseif name == "connection" then
          local v = lower(value)
          if find(v, "close", 1, true) then h.close = true elseif find(v, "keep-alive", 1, true) then h.close = false end
        elseif name == "retry-after" then
          h.retry_after = value
        elseif name == "date" then
          h.date = ngx.parse_http_time(value)
        end
      end
    end
    if status >= 200 then return status, h end
    if status == 101 then return nil, "the server switched protocols" end
    -- 100 Continue, 102 Processing, 103 Early Hints: the answer follows
  end
  return nil, "more than " .. MAX_INTERIM .. " interim (1xx) answers"
end

-- One exchange on one connection, within the attempt's deadline. Returns
-- status, body, retry_after; or nil, err, again: `again` when a kept-alive
-- connection turned out to be closed before the server answered anything,
-- so that a fresh one may carry the request again (only for a GET: a POST
-- may have been applied, and the retry policy decides).
local function exchange(st, t, method, path, body, credential, deadline)
  local sock = tcp()
  local left = deadline - now()
  sock:settimeouts(math.min(t.connect_ms, left * 1000 + 1), left * 1000 + 1, left * 1000 + 1)
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
    "\r\n", credential,
    "\r\nAccept: application/json\r\nUser-Agent: ", st.user_agent, "\r\n",
  }
  if body then
    request[#request + 1] = "Content-Type: application/json\r\nContent-Length: " .. #body .. "\r\n\r\n"
    request[#request + 1] = body
  else
    request[#request + 1] = "\r\n"
  end
  left = deadline - now()
  if left <= 0 then
    sock:close()
    return nil, failure("timeout", "timed out before sending the request", false)
  end
  sock:settimeout(left * 1000 + 1)
  ok, err = sock:send(request)
  if not ok then
    sock:close()
    return nil, failure(err == "timeout" and "timeout" or "network", "cannot send the request: " .. tostring(err), true),
      reused and err == "closed"
  end

  local r = new_reader(sock, deadline)
  local status, h, nothing = read_head(r)
  if not status then
    sock:close()
    return nil, receive_error(h, "answer"), reused and nothing and h == "closed"
  end

  local max_body = st.max_body
  local answer
  if h.chunked then
    answer, err = read_chunked(r, max_body)
  elseif h.content_length then
    if h.content_length > max_body then
      err = "too large"
    else
      answer, err = r:bytes(h.content_length, max_body)
    end
  elseif status == 204 or status == 304 then
    answer = ""
  else
    answer, err = r:bytes(nil, max_body)
    h.close, h.open_ended = true, true
  end
  if not answer then
    sock:close()
    return nil, receive_error(err, "answer")
  end
  if h.close or r:leftover() then sock:close() else sock:setkeepalive(KEEPALIVE_MS, POOL_SIZE) end
  if h.date then t.server_date = h.date end
  return status, answer, h.retry_after, h.open_ended
end

-- One attempt: status, body, retry_after, or nil, err.
local function perform(st, t, method, path, body, credential, limit)
  local deadline = now() + (limit and limit < t.timeout and limit or t.timeout)
  local status, data, extra, open_ended = exchange(st, t, method, path, body, credential, deadline)
  if status == nil and extra and method == "GET" then
    -- the kept-alive connection was already closed: once more on a fresh one
    status, data, extra, open_ended = exchange(st, t, method, path, body, credential, deadline)
  end
  if status == nil then return nil, data end
  return status, data, extra, open_ended
end

-- The light thread of request `id`: whatever happens, even an error in
-- this file, its outcome reaches poll.
local function attempt(self, id, method, path, body, credential, limit)
  local ok, status, data, extra, open_ended = pcall(perform, self.opts, self.target, method, path, body, credential,
    limit)
  if not ok then
    status, data, extra = false, failure("network", "the request's light thread failed: " .. tostring(status), true, false), false
  elseif status == nil then
    status, extra = false, false
  end
  if self.threads[id] then
    self.threads[id] = nil
    self.due[id] = nil
    self.count = self.count - 1
    -- the engine's format: five slots per answer
    local out = self.finished
    local n = #out
    out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = id, status, data, extra or false, open_ended == true
    self.sema:post(1)
  end
end

--- A transport for a client whose options are `opts`.
function M.new(opts)
  return setmetatable({
    opts = opts, target = target(opts), count = 0,
    threads = {}, finished = {}, sema = semaphore.new(0),
    due = {},          -- id -> when its thread is taken for gone
    next_due = false,  -- the soonest of them (or earlier), false when none
  }, Transport)
end

--- Starts request `id`; `token` goes in X-Auth-Token, or with `basic`
--- (a login) it is the base64 credentials of an Authorization header.
--- `limit`: seconds the attempt may take at most, when less than the
--- timeout (what is left of a deadline).
function Transport:start(id, method, path, body, token, basic, limit)
  local phase = ngx.get_phase()
  if not COSOCKET_PHASES[phase] then
    return nil, failure("invalid", ("nginx cannot do network I/O in its %s phase: call from rewrite, access, "
      .. "content or a timer, or pass transport = \"curl\" to block the worker knowingly"):format(phase), false, false)
  end
  self.threads[id] = true -- a thread that finishes at once must find its slot
  self.count = self.count + 1
  local due = now() + (limit and limit < self.target.timeout and limit or self.target.timeout) + GONE_AFTER
  self.due[id] = due
  if not self.next_due or due < self.next_due then self.next_due = due end
  local credential = (basic and "Authorization: Basic " or "X-Auth-Token: ") .. token
  local co, err = spawn(attempt, self, id, method, path, body, credential, limit)
  if not co then
    self.threads[id] = nil
    self.due[id] = nil
    self.count = self.count - 1
    return nil, failure("network", "cannot start a light thread: " .. tostring(err), false)
  end
  if self.threads[id] then self.threads[id] = co end
  return true
end

-- Finishes with a `timeout` error the threads taken for gone (GONE_AFTER).
local function expire(self)
  local clock, out, soonest = now(), self.finished, false
  for id, due in pairs(self.due) do
    if due <= clock then
      self:cancel(id)
      local n = #out
      out[n + 1], out[n + 2], out[n + 5] = id, false, false
      out[n + 3], out[n + 4] = failure("timeout", "no answer in time: the request's light thread was aborted "
        .. "(the nginx request that started it ended?)", true), false
    elseif not soonest or due < soonest then
      soonest = due
    end
  end
  self.next_due = soonest
end

--- Finished requests (five slots each, as the engine takes them),
--- waiting at most `timeout` seconds for one (and no longer than until a
--- thread is taken for gone).
function Transport:poll(timeout, _, into)
  local sema = self.sema
  if #self.finished == 0 and timeout > 0 then
    local due = self.next_due
    -- at least a millisecond: a wait of 0 would not let ngx.now() move
    if due and due - now() < timeout then timeout = math.max(due - now(), 0.001) end
    sema:wait(timeout)
  end
  if self.next_due and now() >= self.next_due then expire(self) end
  local out = self.finished
  if #out == 0 then return into or out end
  self.finished = {}
  if into then
    local n = #into
    for k = 1, #out do into[n + k] = out[k] end
    out = into
  end
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
  self.due[id] = nil
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

-- nginx workers are forked before any request: there is no fork to see.
function Transport.epoch()
  return 0
end

--- The Date header of the last answer that had one (seconds since the
--- epoch), or nil.
function Transport:server_date()
  return self.target.server_date
end

function Transport:close()
  for id in pairs(self.threads) do self:cancel(id) end
end

return M
