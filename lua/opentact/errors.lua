-- The error tables returned as `nil, err`: their metatable, their one-line
-- tostring, and the finishing touches (method, path, attempts, redaction).
-- Errors are created as plain tables by the C core; nothing here raises.

local tostring, type, setmetatable = tostring, type, setmetatable
local find, sub, gsub, concat = string.find, string.sub, string.gsub, table.concat
local pretty = require("opentact.pretty")
local marks, stray_bytes = pretty.marks, pretty.stray_bytes

local M = {}

local Error = { __name = "opentact.Error" }
Error.__index = Error
M.Error = Error

-- A message on one line: control characters become spaces; bidirectional
-- and other invisible marks are shown as \u{XXXX} (pretty.marks), bytes
-- that are no UTF-8 as \ddd (pretty.stray_bytes).
local function one_line(s)
  return (marks(stray_bytes((gsub(tostring(s), "[%c]+", " "))), "\\u{%04X}"))
end

-- "/sip/connection/66eb0a8a-.../tnlease" -> "/sip/connection/66eb…/tnlease"
local function short_path(path)
  return (gsub(path, "(%x%x%x%x)%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x", "%1…"))
end

function Error.__tostring(e)
  local out = "opentact: " .. tostring(e.kind)
  if e.status then out = out .. " (" .. tostring(e.status) .. ")" end
  out = out .. ": " .. one_line(e.message)
  if e.path then
    local n = e.attempts or 0
    out = out .. " [" .. tostring(e.method) .. " " .. short_path(e.path) .. ", " .. n ..
      (n == 1 and " attempt]" or " attempts]")
  elseif e.kind == "invalid" then
    out = out .. " [nothing sent]"
  end
  return out
end

function Error.__concat(a, b)
  return tostring(a) .. tostring(b)
end

-- Replaces every occurrence of `secret` in `s` (plain, not a pattern).
-- Shorter strings are too common in ordinary text to be told from a secret.
local MIN_SECRET = 6
local function redact(s, secret, min_length)
  if type(s) ~= "string" or type(secret) ~= "string" or #secret < (min_length or MIN_SECRET) then return s end
  local out, init = {}, 1
  while true do
    local i, j = find(s, secret, init, true)
    if not i then break end
    out[#out + 1] = sub(s, init, i - 1)
    out[#out + 1] = "[redacted]"
    init = j + 1
  end
  if init == 1 then return s end
  out[#out + 1] = sub(s, init)
  return concat(out)
end

M.redact = redact

-- A misuse error the core raised in its own name ("bad argument #2 to
-- 'opentact.core.request_search'"), in the name of the public function
-- the user called.
function M.in_name_of(message, fname)
  return (gsub(tostring(message), "^bad argument #(%d+) to '[^']*'", "bad argument #%1 to '" .. fname .. "'"))
end

-- Completes an error from the core and gives it the metatable. `secret`:
-- a token to take out of the message, or a function that takes every
-- secret out.
function M.finish(err, method, path, attempts, secret)
  err.method = method
  err.path = path
  err.attempts = attempts
  if type(secret) == "function" then
    err.message = secret(err.message)
  else
    err.message = redact(err.message, secret)
  end
  return setmetatable(err, Error)
end

-- A new error of this layer (nothing was sent, or the token could not be had).
function M.new(kind, message, retryable)
  return { kind = kind, message = message, retryable = retryable or false }
end

-- What a report's `interrupted` holds for a run stopped by `value` (an
-- interrupt, or an error the user's code raised): the value itself, or,
-- when it is nil or false (which would read as "not stopped"), an error
-- of kind "interrupted" whose `value` field is the value raised.
function M.interrupted(value)
  if value then return value end
  local e = M.new("interrupted", "stopped by an error your code raised as " .. tostring(value))
  e.value = value
  return setmetatable(e, Error)
end

return M
