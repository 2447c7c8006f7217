-- Answers, and the faults they can be given: a status, a body cut short,
-- chunked or not JSON, a connection closed.

local ngx = ngx
local cjson = require("cjson.safe")
local pairs, tostring, tonumber = pairs, tostring, tonumber
local concat, floor = table.concat, math.floor

local M = {}

local function send(status, body, headers, ctype)
  ngx.status = status
  ngx.header["Content-Type"] = ctype or "application/json"
  if headers then
    for k, v in pairs(headers) do ngx.header[k] = v end
  end
  ngx.header["Content-Length"] = #body
  ngx.print(body)
  return ngx.exit(status)
end

local function fail(status, message, headers)
  return send(status, cjson.encode({ success = false, message = message, status = status }), headers)
end

local function answer_buffer()
  return { '{"success":true,"payload":[' }
end

local function success(buf)
  buf[#buf + 1] = "]}"
  return concat(buf)
end

-- Sends `body` as the fault asks: whole, chunked, or truncated then closed.
local function deliver(status, body, fault, ctype, headers)
  if fault and fault.truncate then
    ngx.status = status
    ngx.header["Content-Type"] = ctype or "application/json"
    ngx.header["Content-Length"] = #body
    ngx.print(body:sub(1, floor(#body / 2)))
    ngx.flush(true)
    return ngx.exit(444)
  end
  if fault and fault.chunked then
    ngx.status = status
    ngx.header["Content-Type"] = ctype or "application/json"
    local step = math.max(1, floor(#body / 4))
    for i = 1, #body, step do
      ngx.print(body:sub(i, i + step - 1))
      ngx.flush(true)
    end
    return ngx.exit(status)
  end
  return send(status, body, headers, ctype)
end

-- Answers as a fault with a status asks.
local function status_fault(fault)
  local extra = fault.retry_after and { ["Retry-After"] = tostring(fault.retry_after) } or nil
  if fault.body then
    return deliver(fault.status, tostring(fault.body), fault, fault.ctype or "text/html", extra)
  end
  return fail(fault.status, fault.message or "emulated fault", extra)
end

-- Sends a successful answer, unless a fault that waited for the request
-- to be applied (`apply`) closes the connection or answers its status.
local function finish(body, fault)
  if fault and fault.reset then return ngx.exit(444) end
  if fault and fault.status then return status_fault(fault) end
  -- `date`: the answer's Date header that many seconds off the clock
  local date = fault and tonumber(fault.date)
  return deliver(200, body, fault, nil, date and { Date = ngx.http_time(ngx.time() + date) } or nil)
end

M.send, M.fail, M.answer_buffer, M.success = send, fail, answer_buffer, success
M.deliver, M.status_fault, M.finish = deliver, status_fault, finish

return M
