-- A hostile HTTP server for the specs, in plain Lua over LuaSocket: it
-- misbehaves in one way, named by MODE, and writes each request line it
-- reads to LOG. Started by spec/support/emulator.lua's hostile(); loopback
-- only; one connection at a time, which is all the specs need.
--
--   lua hostile.lua MODE PORT LOG [HOST]
--
-- Modes:
--   drop-second   answers the first request of each connection (kept
--                 alive), then reads the next one and closes without a word
--   interim       sends 100, 102 and 103 answers before the real one
--   slow          sends the answer one byte every 0.3 s
--   bad-length    a Content-Length of "-5"
--   hex-length    a Content-Length of "0x10"
--   cut-close     an answer with no length, cut in half by closing
--   whole-close   an answer with no length, whole, ended by closing
--   big-length    a Content-Length of 60 MB, then 100 bytes and a close
--   many-headers  20,000 header lines
--   long-header   one header line of 1 MB
--   search-no-uuid  a lease search over 5 leases that pages by take and
--                 skip, where lease 4 has no uuid
--   search-ignore-skip  a lease search over 250 leases that answers the
--                 first page (at most 100) whatever skip asks
--   idle-close    answers every request of kept-alive connections, several
--                 at once, and closes each once idle for 0.3 s (as nginx's
--                 keepalive_timeout does), logging "-- open", "-- idle close"
--                 and "-- closed by the client"; "idle-close:SECONDS"
--                 closes them once idle for SECONDS instead
local socket = require("socket")

local mode, port, log_path, host = arg[1], tonumber(arg[2]), arg[3], arg[4] or "127.0.0.1"
local idle_seconds
mode, idle_seconds = mode:match("^([^:]*):?(.*)$")
local server = assert(socket.bind(host, port))
-- A server nobody has connected to for this long stops by itself: a
-- suite that crashed cannot stop the servers it started.
local UNUSED_FOR = 600
local log = assert(io.open(log_path, "w"))

local BODY = '{"success":true,"payload":[]}'
local function answer(extra)
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" .. (extra or "")
    .. "Content-Length: " .. #BODY .. "\r\n\r\n" .. BODY
end

-- Reads one request; returns its request line, or nil when the client
-- went away.
local function read_request(c)
  local line = c:receive("*l")
  if not line then return nil end
  local length = 0
  repeat
    local h = c:receive("*l")
    local v = h and h:lower():match("^content%-length:%s*(%d+)")
    if v then length = tonumber(v) end
  until not h or h == ""
  if length > 0 then c:receive(length) end
  log:write(line, "\n")
  log:flush()
  return line
end

local handlers = {}

handlers["drop-second"] = function(c)
  if not read_request(c) then return end
  c:send(answer())
  read_request(c) -- and close without answering
end

handlers.interim = function(c)
  while read_request(c) do
    c:send("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
      .. "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" .. answer())
  end
end

handlers.slow = function(c)
  if not read_request(c) then return end
  for ch in answer():gmatch(".") do
    if not c:send(ch) then return end
    socket.sleep(0.3)
  end
end

local function with_length(value)
  return function(c)
    if not read_request(c) then return end
    c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. value .. "\r\n\r\n" .. BODY)
    socket.sleep(0.5)
  end
end
handlers["bad-length"] = with_length("-5")
handlers["hex-length"] = with_length("0x10")

local function close_delimited(cut)
  return function(c)
    if not read_request(c) then return end
    local body = '{"success":true,"payload":[{"uuid":"0a1b2c3d-0000-4000-8000-000000000001","tn":{"tn":1}}]}'
    c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
      .. (cut and body:sub(1, 40) or body))
  end
end
handlers["cut-close"] = close_delimited(true)
handlers["whole-close"] = close_delimited(false)

handlers["big-length"] = function(c)
  if not read_request(c) then return end
  c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 60000000\r\n\r\n" .. ("x"):rep(100))
end

handlers["many-headers"] = function(c)
  if not read_request(c) then return end
  c:send("HTTP/1.1 200 OK\r\n" .. ("X-Filler: x\r\n"):rep(20000) .. "Content-Length: 2\r\n\r\n{}")
end

handlers["long-header"] = function(c)
  if not read_request(c) then return end
  c:send("HTTP/1.1 200 OK\r\nX-Filler: " .. ("x"):rep(1024 * 1024) .. "\r\nContent-Length: 2\r\n\r\n{}")
end

-- A search page of `count` leases: lease i is {uuid = lease_uuid(i), tn},
-- or no uuid where `has_uuid(i)` is false; paged by the request's take
-- (at most `cap`) and skip unless `ignore_skip`. One answer a connection.
local function search_pages(count, cap, has_uuid, ignore_skip)
  return function(c)
    local line = read_request(c)
    if not line then return end
    local take = math.min(tonumber(line:match("[?&]take=(%d+)")) or 100, cap)
    local skip = ignore_skip and 0 or tonumber(line:match("[?&]skip=(%d+)")) or 0
    local data = {}
    for i = skip + 1, math.min(count, skip + take) do
      local tn = ('"tn":{"tn":%d}'):format(12125550000 + i)
      data[#data + 1] = has_uuid(i) and ('{"uuid":"0a1b2c3d-0000-4000-8000-%012d",%s}'):format(i, tn)
        or "{" .. tn .. "}"
    end
    local body = ('{"success":true,"payload":{"take":%d,"skip":%d,"total":%d,"data":[%s]}}'):format(take, skip,
      count, table.concat(data, ","))
    c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " .. #body
      .. "\r\n\r\n" .. body)
  end
end
handlers["search-no-uuid"] = search_pages(5, 100, function(i) return i ~= 4 end)
handlers["search-ignore-skip"] = search_pages(250, 100, function() return true end, true)
-- Every connection at once (a burst of requests opens several), each
-- closed once idle for IDLE_CLOSE seconds after an answer (until its first
-- request, a connection waits: a client slow to send is not idle).
local IDLE_CLOSE = tonumber(idle_seconds) or 0.3
handlers["idle-close"] = function(first)
  local conns, last = {}, {}
  local function open(c)
    conns[#conns + 1], last[c] = c, 1 / 0
    log:write("-- open\n")
    log:flush()
  end
  local function drop(k, idle)
    local c = table.remove(conns, k)
    last[c] = nil
    c:close()
    log:write(idle and "-- idle close\n" or "-- closed by the client\n")
    log:flush()
  end
  open(first)
  server:settimeout(0)
  local used = socket.gettime()
  while true do
    if #conns > 0 then used = socket.gettime() elseif socket.gettime() - used > UNUSED_FOR then os.exit(0) end
    local watched = { server }
    for k = 1, #conns do watched[k + 1] = conns[k] end
    local readable = socket.select(watched, nil, 0.02)
    for _, c in ipairs(readable) do
      if c == server then
        local new = server:accept()
        if new then
          new:settimeout(10)
          open(new)
        end
      elseif last[c] then
        repeat
          local ok = read_request(c) and c:send(answer())
          last[c] = ok and socket.gettime() or nil
        until not ok or not c:dirty()
      end
    end
    for k = #conns, 1, -1 do
      local c = conns[k]
      if not last[c] then
        drop(k, false) -- the client closed it
      elseif socket.gettime() - last[c] >= IDLE_CLOSE then
        drop(k, true)
      end
    end
  end
end

local handle = assert(handlers[mode], "unknown mode " .. tostring(mode))
io.stdout:write("listening\n")
io.stdout:flush()
server:settimeout(UNUSED_FOR)
while true do
  local c, err = server:accept()
  if err == "timeout" then os.exit(0) end
  if c then
    c:settimeout(10)
    pcall(handle, c)
    c:close()
  end
end
