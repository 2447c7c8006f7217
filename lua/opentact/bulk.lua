-- Bulk work on top of the engine: assign_batched (batches, concurrency,
-- progress, a loss-free report) and list_many. Transport-neutral: the
-- engine runs the requests.

local core = require("opentact.core")
local errors = require("opentact.errors")
local engine = require("opentact.engine")
local options = require("opentact.options")
local pretty = require("opentact.pretty")

local type, pairs, ipairs, pcall = type, pairs, ipairs, pcall
local setmetatable, getmetatable = setmetatable, getmetatable
local floor, min = math.floor, math.min
local request_list, request_assign = core.request_list, core.request_assign

local M = {}

local MAX_CONCURRENCY = 256

local CHECKS = {
  batch_size = function(v)
    if type(v) ~= "number" or v < 1 or floor(v) ~= v then return "an integer > 0" end
  end,
  concurrency = function(v)
    if type(v) ~= "number" or v < 1 or v > MAX_CONCURRENCY or floor(v) ~= v then
      return "an integer from 1 to " .. MAX_CONCURRENCY
    end
  end,
  on_progress = function(v)
    if type(v) ~= "function" then return "a function" end
  end,
}

-- Checks a method's options table; `defaults` names every option it takes.
function M.options(opts, fname, argn, defaults)
  local out, checks = {}, {}
  for k, v in pairs(defaults) do out[k], checks[k] = v, CHECKS[k] end
  out = options.apply(opts, out, checks, fname, argn, 3) -- not a tail call: the level counts this frame
  return out
end

local function copy(list)
  local out = {}
  for i = 1, #list do out[i] = list[i] end
  return out
end

local function append(into, list)
  local n = #into
  for i = 1, #list do into[n + i] = list[i] end
end

-- Splits both lists into batches of at most `size` uuids, adds first.
local function batches(adds, removes, size)
  local out, current, room = {}, nil, 0
  local function put(kind, uuid)
    if room == 0 then
      current = { add = {}, remove = {} }
      out[#out + 1] = current
      room = size
    end
    current[kind][#current[kind] + 1] = uuid
    room = room - 1
  end
  for i = 1, #adds do put("add", adds[i]) end
  for i = 1, #removes do put("remove", removes[i]) end
  return out
end

--- The work of client:assign_batched, once its arguments are checked.
--- `path`/`body` are the whole change set's request, or nil, err if invalid.
function M.assign(eng, conn, changes, opts, path, err)
  local adds, removes = changes.add or {}, changes.remove or {}
  local report = setmetatable({
    ok = false,
    applied = { add = {}, remove = {} },
    failed = {},
    leases = setmetatable({}, pretty.Leases),
  }, pretty.Report)
  if not path then
    -- nothing is sent: every uuid fails with the reason
    report.failed[1] = { add = copy(adds), remove = copy(removes), err = errors.finish(err, "POST", nil, 0) }
    return report
  end
  local parts = batches(adds, removes, opts.batch_size)
  local jobs = {}
  for i, part in ipairs(parts) do
    local p, body = request_assign(conn, part)
    jobs[i] = engine.request("POST", p, body)
    jobs[i].index = i
  end
  local outcomes, done, total = {}, 0, #adds + #removes
  local on_progress = opts.on_progress
  local ran, stopped = pcall(eng.run, eng, jobs, min(opts.concurrency, #jobs), function(job)
    local i = job.index
    outcomes[i] = job.leases or job.err
    done = done + #parts[i].add + #parts[i].remove
    -- a failing progress callback never stops the work; an interrupt does
    if on_progress then
      local ok, why = pcall(on_progress, done, total)
      if not ok and tostring(why):find("interrupted!", 1, true) then error(why, 0) end
    end
  end)
  if not ran then
    -- stopped (Ctrl-C in lua, or an error): what was in flight is
    -- cancelled; the report still accounts for every uuid
    report.interrupted = stopped
    for i, job in ipairs(jobs) do
      if outcomes[i] == nil then
        local e = errors.new("network", job.attempt > 0
          and "interrupted while the request was in flight: it may have been applied"
          or "interrupted before the request was sent", false)
        e.sent = job.attempt > 0
        outcomes[i] = errors.finish(e, "POST", job.path, job.attempt)
      end
    end
  end
  for i, part in ipairs(parts) do
    local outcome = outcomes[i]
    if getmetatable(outcome) == pretty.Leases then
      append(report.applied.add, part.add)
      append(report.applied.remove, part.remove)
      append(report.leases, outcome)
    else
      report.failed[#report.failed + 1] = { add = part.add, remove = part.remove, err = outcome }
    end
  end
  report.ok = #report.failed == 0
  return report
end

--- The work of client:list_many, once its arguments are checked.
function M.list(eng, conns, opts)
  local results, jobs = {}, {}
  for i = 1, #conns do
    local path, err = request_list(conns[i])
    if path then
      local job = engine.request("GET", path)
      job.index = i
      jobs[#jobs + 1] = job
    else
      results[i] = { uuid = conns[i], err = errors.finish(err, "GET", nil, 0) }
    end
  end
  if #jobs > 0 then
    eng:run(jobs, min(opts.concurrency, #jobs), function(job)
      results[job.index] = { uuid = conns[job.index], leases = job.leases, err = job.err }
    end)
  end
  return results
end

return M
