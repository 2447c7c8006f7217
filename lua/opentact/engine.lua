-- The request engine: one logical request attempted as often as the retry
-- policy allows, either alone (call) or many at once with a concurrency
-- limit (run). Both judge each attempt the same way (settle): decode,
-- log, refresh the token after a 401, retry or give up.
--
-- Transport-neutral: a transport gives perform (one blocking attempt) and
-- start/poll (concurrent attempts); nothing here raises for what the
-- network or the server does.

local core = require("opentact.core")
local errors = require("opentact.errors")
local pretty = require("opentact.pretty")
local retry = require("opentact.retry")

local type, pcall, setmetatable, tostring = type, pcall, setmetatable, tostring
local answer_decode, now, sleep = core.answer_decode, core.now, core.sleep
local finish, Leases, retry_delay = errors.finish, pretty.Leases, retry.delay

local M = {}

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

-- A job is one logical request and what its attempts so far have left.
function M.job(method, path, body)
  return { method = method, path = path, body = body, attempt = 0, retried = 0, refreshed = false, fresh = false }
end

-- Readies the job's next attempt: returns its token, or nil, err when it
-- cannot be sent at all.
local function begin(st, job)
  local token, err = current_token(st, job.fresh)
  if not token then return nil, finish(err, job.method, job.path, job.attempt) end
  job.fresh = false
  job.attempt = job.attempt + 1
  job.token = token
  if st.log then job.started = now() end -- only the log hook's `elapsed` needs it
  return token
end

local function emit(st, job, status, err)
  -- a failing hook never breaks the request
  pcall(st.log, {
    method = job.method, path = job.path, status = status or (err and err.status),
    attempt = job.attempt, elapsed = now() - job.started, kind = err and err.kind or nil,
  })
end

-- Judges an attempt (status, body, retry_after from the server, or nil,
-- err from the transport). Returns leases; or nil, err when the job is
-- over; or false, seconds to wait before attempting again.
local function settle(client, st, job, status, data, retry_after)
  local leases, err
  if status then
    leases, err = answer_decode(status, data, retry_after)
  else
    err = data
  end
  if st.log then emit(st, job, status, err) end
  if leases then return setmetatable(leases, Leases) end
  if err.status == 401 and type(st.token) == "function" and not job.refreshed then
    job.refreshed, job.fresh = true, true
    return false, 0
  end
  local wait = retry_delay(st, err, job.method, job.retried, function(cap) return client:_jitter(cap) end)
  if not wait then return nil, finish(err, job.method, job.path, job.attempt, job.token) end
  job.retried = job.retried + 1
  return false, wait
end

-- The Lua transport for this client, or nil for the C curl transport.
local ngx_transport
local function lua_transport(st)
  if st.transport == "ngx" then
    ngx_transport = ngx_transport or require("opentact.transport.ngx")
    return ngx_transport
  end
end

-- Attempts one job until it succeeds or the policy gives up.
local function attempts(client, st, job)
  local t = lua_transport(st)
  while true do
    local token, failure = begin(st, job)
    if not token then return nil, failure end
    local status, data, retry_after
    if t then
      status, data, retry_after = t.perform(st, job.method, job.path, job.body, token)
    else
      status, data, retry_after = client:_perform(job.method, job.path, job.body, token)
    end
    local leases, wait = settle(client, st, job, status, data, retry_after)
    if leases then return leases end
    if leases == nil then return nil, wait end
    if t then t.sleep(wait) else sleep(wait) end
  end
end

--- One request, blocking (or, on the ngx transport, yielding) until it
--- succeeds or the policy gives up.
function M.call(client, method, path, body)
  local leases, err = attempts(client, client:_state(), M.job(method, path, body))
  return leases, err
end

--- Many jobs, at most `concurrency` in flight. Calls on_done(index, leases,
--- err) once per job, as each finishes for good.
function M.run(client, jobs, concurrency, on_done)
  local st = client:_state()
  local t = lua_transport(st)
  if t then
    return t.run(jobs, concurrency, function(job) return attempts(client, st, job) end, on_done)
  end
  local ready, head = {}, 1   -- job indices to start, in order
  local later = {}            -- retries waiting for their time: {due, index}
  local in_flight, left = 0, #jobs
  for i = 1, #jobs do ready[i] = i end

  local function finished(i, leases, err)
    left = left - 1
    on_done(i, leases, err)
  end

  -- Starts jobs while there is room: retries that are due first (their
  -- jobs started earliest), then the rest in order.
  local function fill()
    local clock = now()
    for k = #later, 1, -1 do
      if later[k][1] <= clock then
        head = head - 1
        ready[head] = later[k][2]
        table.remove(later, k)
      end
    end
    while in_flight < concurrency and ready[head] do
      local i = ready[head]
      ready[head] = nil
      head = head + 1
      local job = jobs[i]
      local token, failure = begin(st, job)
      if token then
        client:_start(i, job.method, job.path, job.body, token, concurrency)
        in_flight = in_flight + 1
      else
        finished(i, nil, failure)
      end
    end
  end

  while left > 0 do
    fill()
    if left == 0 then break end
    local due, clock = 1, now()
    for k = 1, #later do
      local d = later[k][1] - clock
      if d < due then due = d end
    end
    if due < 0 then due = 0 end
    if in_flight == 0 then
      sleep(due)
    else
      local results = client:_poll(due)
      -- the freed slots get their next requests on the wire before the
      -- answers are decoded
      in_flight = in_flight - #results
      fill()
      for k = 1, #results do
        local r = results[k]
        local job = jobs[r.id]
        local leases, wait
        if r.err then
          leases, wait = settle(client, st, job, nil, r.err)
        else
          leases, wait = settle(client, st, job, r.status, r.body, r.retry_after)
        end
        if leases then
          finished(r.id, leases)
        elseif leases == nil then
          finished(r.id, nil, wait)
        else
          later[#later + 1] = { now() + wait, r.id }
        end
      end
    end
  end
end

return M
