-- Bulk work on top of the engine: assign_batched (batches, concurrency,
-- progress, a loss-free report) and list_many. Transport-neutral: the
-- engine runs the requests.

local core = require("opentact.core")
local errors = require("opentact.errors")
local engine = require("opentact.engine")
local pretty = require("opentact.pretty")

local type, ipairs, pcall = type, ipairs, pcall
local setmetatable = setmetatable
local floor, min = math.floor, math.min
local lower, next = string.lower, next

-- A lease uuid inside a server's message.
local UUID_IN_TEXT = "(%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x)"
-- A lease uuid, and nothing else.
local UUID = "^" .. UUID_IN_TEXT .. "$"
local request_list, request_assign = core.request_list, core.request_assign
-- The holder field of each kind of target.
local FIELD = { app = "sip_control_app", connection = "sip_connection" }

local M = {}

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

-- What an applied batch's answer says of each of its uuids: a lease in
-- the payload with this connection (in `field`: sip_connection, or
-- sip_control_app for an app's leases) is attached, one without it is not; a
-- bare uuid (a payload of uuid strings) is taken as done; a uuid the answer
-- leaves out is not confirmed. Returns the confirmed part and, for the
-- rest, {add, remove, why} groups.
local function confirm(part, leases, conn, field)
  local state = {}
  for i = 1, #leases do
    local l = leases[i]
    if type(l) == "table" and type(l.uuid) == "string" then
      local holder = M.holder(l, field)
      if next(l) == "uuid" and next(l, "uuid") == nil then
        state[lower(l.uuid)] = "listed"
      else
        state[lower(l.uuid)] = holder == conn and "on" or "off"
      end
    end
  end
  local done = { add = {}, remove = {} }
  local left_out, elsewhere = { add = {}, remove = {} }, { add = {}, remove = {} }
  for _, kind in ipairs({ "add", "remove" }) do
    local want = kind == "add" and "on" or "off"
    for _, u in ipairs(part[kind]) do
      local st = state[lower(u)]
      local into = (st == want or st == "listed") and done or st == nil and left_out or elsewhere
      into[kind][#into[kind] + 1] = u
    end
  end
  local unconfirmed = {}
  if #left_out.add + #left_out.remove > 0 then
    left_out.why = "the server answered success but its answer leaves these leases out"
    unconfirmed[#unconfirmed + 1] = left_out
  end
  if #elsewhere.add + #elsewhere.remove > 0 then
    elsewhere.why = "the server answered success but its answer shows these leases unchanged"
    unconfirmed[#unconfirmed + 1] = elsewhere
  end
  return done, unconfirmed
end

--- Whether `s` is a lease uuid: 8-4-4-4-12 hex digits (either case).
function M.is_uuid(s)
  return type(s) == "string" and s:find(UUID) ~= nil
end

--- Who holds a lease through its holder field `field` (an object with a
--- uuid, or a bare uuid string): {kind = "app" | "connection", uuid = as the
--- server wrote it, name = when the server sent one}; nil when nobody does.
--- Without `field`: its SIP control app, else its SIP connection.
function M.holder_of(lease, field)
  if field == nil then return M.holder_of(lease, "sip_control_app") or M.holder_of(lease, "sip_connection") end
  local h, name = lease[field], nil
  if type(h) == "table" then h, name = h.uuid, h.name end
  if type(h) ~= "string" or h == "" then return nil end
  return { kind = field == "sip_control_app" and "app" or "connection", uuid = h,
    name = type(name) == "string" and name ~= "" and name or nil }
end

--- The uuid of a lease's holder field, lower-cased; nil when nobody holds it.
--- (As holder_of's uuid, without making its table: it is asked of every
--- lease of an account.)
function M.holder(lease, field)
  if field == nil then return M.holder(lease, "sip_control_app") or M.holder(lease, "sip_connection") end
  local h = lease[field]
  if type(h) == "table" then h = h.uuid end
  if type(h) ~= "string" or h == "" then return nil end
  return lower(h)
end

-- A 4xx that refuses the batch's content (not the connection, not the
-- token): splitting the batch finds the uuids it is about.
local SPLIT_STATUS = { [400] = true, [409] = true, [422] = true }

-- The two halves of a refused batch: the uuid the message names on its own
-- when it names one of the batch's, else the first and second half.
local function halves(part, message)
  local named = type(message) == "string" and message:lower():match(UUID_IN_TEXT)
  local a, b = { add = {}, remove = {} }, { add = {}, remove = {} }
  local n, i = #part.add + #part.remove, 0
  for _, kind in ipairs({ "add", "remove" }) do
    for _, u in ipairs(part[kind]) do
      i = i + 1
      local first
      if named then first = lower(u) == named else first = i <= floor(n / 2) end
      local into = first and a or b
      into[kind][#into[kind] + 1] = u
    end
  end
  if #a.add + #a.remove == 0 or #b.add + #b.remove == 0 then
    -- the named uuid is not in this batch: halve it
    return halves(part, nil)
  end
  return a, b
end

-- A stream's report as it starts: nothing applied, nothing failed.
local function new_report()
  return setmetatable({
    ok = false,
    applied = { add = {}, remove = {} },
    failed = {},
    leases = setmetatable({}, pretty.Leases),
  }, pretty.Report)
end

--- Several change sets sent together, each in batches, `opts.concurrency`
--- requests at once in all. Each of `streams` is {conn (its holder's
--- uuid), kind ("app" or "connection"), add = uuids, remove = uuids,
--- on_confirm = function(part) or nil, follow = another stream or nil}:
--- `on_confirm` is called with the uuids each answer confirms, {add,
--- remove}, as it comes in (an error it raises stops the run as an
--- interrupt does); a stream with `follow` releases leases (its removes)
--- so that `follow` can attach them: each batch it confirms is attached
--- to `follow` by the very next request sent. opts.on_progress(done,
--- total) counts uuids. Returns a report per stream, in their order
--- (every uuid in applied or failed: a loss-free account), and the
--- interrupt when the run was stopped.
function M.assign_many(eng, streams, opts)
  local jobs, all, reports, total, releases = {}, {}, {}, 0, 0
  -- the jobs left that write to each holder (kind .. uuid): its own, and
  -- a release's for the holder it attaches to; opts.on_settled(key, add)
  -- hears of a holder that has none left, once (nothing more is written
  -- to it: it may be read back while the rest goes on)
  local left, settled = {}, {}
  local function count(key, n) left[key] = (left[key] or 0) + n end
  local function job_for(st, part)
    local p, body = request_assign(st.conn, part, st.kind)
    local job = engine.request("POST", p, body)
    -- (a release keeps its place until its attach is queued: that goes next)
    job.part, job.stream, job.holds = part, st, st.follow and true or nil
    all[#all + 1] = job
    count(st.kind .. st.conn, 1)
    if st.follow then count(st.follow.kind .. st.follow.conn, 1) end
    return job
  end
  local on_settled = opts.on_settled
  local function settle(key, add)
    count(key, -1)
    if left[key] == 0 and not settled[key] then
      settled[key] = true
      if on_settled then on_settled(key, add) end
    end
  end
  -- a job of stream `st` is over: the holders it wrote to have one less
  local function job_over(st, add)
    settle(st.kind .. st.conn, add)
    if st.follow then settle(st.follow.kind .. st.follow.conn, add) end
  end
  for _, st in ipairs(streams) do st.conn, st.kind = lower(st.conn), st.kind or "connection" end
  for i, st in ipairs(streams) do
    reports[i] = new_report()
    reports[st] = reports[i]
    local n = #st.add + #st.remove
    total = total + n * (st.follow and 2 or 1)
    -- (releases first: what they free is attached as soon as they answer)
    if st.follow then
      local at = releases
      for _, part in ipairs(batches(st.add, st.remove, opts.batch_size)) do
        at = at + 1
        table.insert(jobs, at, job_for(st, part))
      end
      releases = at
    else
      for _, part in ipairs(batches(st.add, st.remove, opts.batch_size)) do jobs[#jobs + 1] = job_for(st, part) end
    end
  end
  local outcomes, done = {}, 0 -- outcomes: the jobs, as they finish
  local on_progress = opts.on_progress
  local ran, stopped = pcall(eng.run, eng, jobs, min(opts.concurrency, #jobs), function(job, add)
    -- (a request on_settled added: its own handler)
    if job.settled then return job.settled(job) end
    local part, e, st = job.part, job.err, job.stream
    if e and e.status and SPLIT_STATUS[e.status] and #part.add + #part.remove > 1 then
      -- one bad uuid does not sink its batch
      -- both halves are made before either goes: an interrupt between
      -- them finds each half to account for, and this job split
      local a, b = halves(part, e.message)
      local ja, jb = job_for(st, a), job_for(st, b)
      job.split = true
      add(ja)
      add(jb)
      job_over(st, add)
      return
    end
    outcomes[#outcomes + 1] = job
    done = done + #part.add + #part.remove
    local ok_part = job.leases and confirm(part, job.leases, st.conn, FIELD[st.kind] or FIELD.connection)
    if ok_part and st.follow and #ok_part.remove > 0 then
      -- released: attached next, before anything queued
      add(job_for(st.follow, { add = ok_part.remove, remove = {} }), true)
    end
    if st.follow then done = done + #part.remove - (ok_part and #ok_part.remove or 0) end
    -- what the answer confirms is recorded before the run goes on
    if ok_part and st.on_confirm and #ok_part.add + #ok_part.remove > 0 then st.on_confirm(ok_part) end
    -- an error it raises stops the run, as an interrupt does
    if on_progress then on_progress(done, total) end
    job_over(st, add)
  end)
  local interrupted
  if not ran then
    -- stopped (Ctrl-C in lua, or an error the user's code raised): what
    -- was in flight is cancelled; the report still accounts for every
    -- uuid, those whose answers came in by their answers
    -- `ran` says it stopped: the value raised may be nil or false
    interrupted = errors.interrupted(stopped)
    local finished = {}
    for _, job in ipairs(outcomes) do finished[job] = true end
    for _, job in ipairs(all) do
      if not (finished[job] or job.split) then
        if not job.done then
          local e = errors.new("network", job.attempt > 0
            and "interrupted while the request was in flight: it may have been applied"
            or "interrupted before the request was sent", false)
          e.sent = job.attempt > 0
          job.err = errors.finish(e, "POST", job.path, job.attempt)
        end
        outcomes[#outcomes + 1] = job
      end
    end
  end
  -- in input order: each batch's outcome where its first uuid was
  local order = {}
  for _, st in ipairs(streams) do
    local n = 0
    for _, kind in ipairs({ "add", "remove" }) do
      for _, u in ipairs(st[kind]) do
        n = n + 1
        order[u] = order[u] or n
      end
    end
  end
  local function first(job) local p = job.part return order[p.add[1] or p.remove[1]] or 0 end
  table.sort(outcomes, function(a, b) return first(a) < first(b) end)
  for _, job in ipairs(outcomes) do
    local part, st = job.part, job.stream
    local report = reports[st]
    if job.leases then
      local ok_part, unconfirmed = confirm(part, job.leases, st.conn, FIELD[st.kind] or FIELD.connection)
      append(report.applied.add, ok_part.add)
      append(report.applied.remove, ok_part.remove)
      append(report.leases, job.leases)
      for _, u in ipairs(unconfirmed) do
        local e = errors.new("protocol", u.why, false)
        e.status, e.sent = 200, true
        report.failed[#report.failed + 1] = { add = u.add, remove = u.remove,
          err = errors.finish(e, "POST", job.path, job.attempt) }
      end
    else
      report.failed[#report.failed + 1] = { add = part.add, remove = part.remove, err = job.err }
    end
  end
  -- a run stopped by an error is not ok, even when its last answer was in
  -- (the error would go unseen by code that reads only ok)
  for i, report in ipairs(reports) do
    reports[streams[i]] = nil
    report.interrupted = interrupted
    report.ok = #report.failed == 0 and not interrupted
  end
  return reports, interrupted
end

--- The work of client:assign_batched, once its arguments are checked.
--- `path`/`body` are the whole change set's request, or nil, err if invalid.
--- `holder` "app": `conn` is a SIP control app. `opts.on_confirm(part)`
--- (sync's apply, for its journal): called with the uuids each answer
--- confirms, {add, remove}, as it comes in; an error it raises stops the
--- run as an interrupt does.
function M.assign(eng, conn, changes, opts, path, err, holder)
  local adds, removes = changes.add or {}, changes.remove or {}
  if not path then
    -- nothing is sent: every uuid fails with the reason
    local report = new_report()
    report.failed[1] = { add = copy(adds), remove = copy(removes), err = errors.finish(err, "POST", nil, 0) }
    return report
  end
  local reports = M.assign_many(eng, { { conn = conn, kind = holder, add = adds, remove = removes,
    on_confirm = opts.on_confirm } }, opts)
  return reports[1]
end

--- The work of client:list_many, once its arguments are checked:
--- `items` are {kind, uuid as given}; each result is {uuid, kind, leases}
--- or {uuid, kind, err}, in input order.
function M.list(eng, items, opts)
  local results, jobs = {}, {}
  for i = 1, #items do
    local t = items[i]
    local path, err = request_list(t.uuid, t.kind)
    if path then
      local job = engine.request("GET", path)
      job.index = i
      jobs[#jobs + 1] = job
    else
      results[i] = { uuid = t.uuid, kind = t.kind, err = errors.finish(err, "GET", nil, 0) }
    end
  end
  local done, on_progress = 0, opts.on_progress
  if #jobs > 0 then
    eng:run(jobs, min(opts.concurrency, #jobs), function(job)
      local t = items[job.index]
      results[job.index] = { uuid = t.uuid, kind = t.kind, leases = job.leases, err = job.err }
      done = done + 1
      if on_progress then on_progress(done, #jobs) end
    end)
  end
  return results
end

return M
