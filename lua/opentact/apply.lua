-- Doing what plans list, and nothing else: the releases of moves off
-- the other kind of holder, every attach and detach in batches (several
-- targets' together, under one concurrency limit), the read-back of each
-- target, then the autorenew the plans set. A plan here is one target's
-- (client:plan, or one of a routes plan's); what decides whether it may
-- run (the stale check, the journal's lines) is sync.lua's.

local engine = require("opentact.engine")
local errors = require("opentact.errors")
local pretty = require("opentact.pretty")
local json = require("opentact.json")
local bulk = require("opentact.bulk")
local core = require("opentact.core")

local type, ipairs, setmetatable, getmetatable, tostring, next, pcall =
  type, ipairs, setmetatable, getmetatable, tostring, next, pcall
local min, lower = math.min, string.lower
local request_list = core.request_list

local M = {}

local function uuids(list)
  local out = {}
  for i, lease in ipairs(list) do out[i] = lease.uuid end
  return out
end

local function word(kind) return kind == "app" and "control app" or "connection" end

-- Reads each target back side by side, `concurrency` at once: calls
-- got(i, leases or nil, err) for each of `targets` ({kind, uuid}); an
-- interrupt gives the reads not done an error saying so (what(target):
-- what was not read back), and is returned.
local function read_back(eng, targets, shape, concurrency, what, got)
  local reqs = {}
  for i, t in ipairs(targets) do
    reqs[i] = engine.request("GET", request_list(t.uuid, t.kind), nil, shape)
    reqs[i].index = i
  end
  local seen = {}
  local done, stopped = pcall(eng.run, eng, reqs, min(concurrency, #reqs), function(req)
    seen[req.index] = true
    got(req.index, req.leases, req.err)
  end)
  if done then return nil end
  -- an interrupt: what was applied is in the reports already
  -- (`done` says it stopped: the value raised may be nil or false)
  for i, t in ipairs(targets) do
    if not seen[i] then
      got(i, nil, errors.new("network", "interrupted before the " .. what(t) .. " was read back", false))
    end
  end
  return errors.interrupted(stopped)
end

-- What the read-back `now` (the leases' uuids of the target) says of
-- `report`: what it contradicts goes to `failed`; with `exact`, what it
-- holds that was neither desired nor planned to go is `unexpected`
-- (attached by someone else meanwhile).
local function verify(target, report, now, err, exact)
  if not now then
    report.unverified = err
    return
  end
  local list_path = request_list(target.uuid, target.kind)
  local w = word(target.kind)
  local held, order = {}, {}
  for _, x in ipairs(now) do
    local u = type(x) == "table" and x.uuid or x
    if type(u) == "string" and not held[lower(u)] then
      held[lower(u)] = true
      order[#order + 1] = u
    end
  end
  if exact then
    local known = {}
    for _, kind in ipairs({ "keep", "add", "conflicts", "remove", "away" }) do
      for _, lease in ipairs(report[kind] or {}) do known[lower(lease.uuid)] = true end
    end
    for _, u in ipairs(order) do
      if not known[lower(u)] then report.unexpected[#report.unexpected + 1] = u end
    end
  end
  local function check(kind, want_held, why)
    local kept, wrong = {}, {}
    for _, u in ipairs(report.applied[kind]) do
      if (held[lower(u)] == true) == want_held then kept[#kept + 1] = u else wrong[#wrong + 1] = u end
    end
    report.applied[kind] = kept
    if #wrong > 0 then
      local e = errors.new("protocol", why, true)
      e.status = 200
      report.failed[#report.failed + 1] = {
        add = kind == "add" and wrong or {}, remove = kind == "remove" and wrong or {},
        err = errors.finish(e, "GET", list_path, 1),
      }
    end
  end
  check("add", true, "the server confirmed these but the " .. w .. " read back does not hold them")
  check("remove", false, "the server confirmed these but the " .. w .. " read back still holds them")
  -- a failure that did happen after all (an answer lost after the server
  -- applied it): the read-back shows it, and it is applied
  local failed = {}
  for _, f in ipairs(report.failed) do
    local rest = { add = {}, remove = {}, err = f.err }
    for _, kind in ipairs({ "add", "remove" }) do
      for _, u in ipairs(f[kind]) do
        local into = (held[lower(u)] == true) == (kind == "add") and report.applied[kind] or rest[kind]
        into[#into + 1] = u
      end
    end
    if #rest.add + #rest.remove > 0 then failed[#failed + 1] = rest end
  end
  report.failed = failed
  local gone = {}
  for _, lease in ipairs(report.keep) do
    if not held[lower(lease.uuid)] then gone[#gone + 1] = lease.uuid end
  end
  if #gone > 0 then
    local e = errors.new("protocol", "these leases were on the " .. w .. " when planning and are gone now", true)
    e.status = 200
    report.failed[#report.failed + 1] = { add = gone, remove = {},
      err = errors.finish(e, "GET", list_path, 1) }
  end
end

-- The autorenew `plan` sets on `lease`: the lease's own (a routes plan:
-- each route may say), else the plan's.
local function wanted(plan, lease)
  local to = plan.renew_to and plan.renew_to[lower(lease.uuid)]
  if to ~= nil then return to end
  return plan.options.autorenew
end
M.wanted = wanted

-- Sets the autorenew the plans ask for (each plan's `renew`) on their
-- leases that their targets hold now, as the read-back shows (kept, or
-- attached): a lease whose attach failed is left as it is (off its
-- holder, it would lapse unseen). `concurrency` requests at once in all:
-- PATCH /lease/tn/{uuid}, each answered with the lease, then each target
-- read back once: a lease counts as set when the read-back shows it so.
-- Fills each report's `renewed`: {autorenew, applied = uuids, failed =
-- {{uuids, err}}}; an interrupt stops it, the rest failed as not sent.
local function set_autorenew(eng, runs, opts)
  local reqs, bodies = {}, {}
  for _, run in ipairs(runs) do
    local plan, report = run.plan, run.report
    local out = { autorenew = plan.options.autorenew, applied = {}, failed = {} }
    report.renewed, run.out, run.by_error = out, out, {}
    if #plan.renew > 0 then
      local held, kept = {}, {}
      for _, u in ipairs(report.applied.add) do held[lower(u)] = true end
      for _, lease in ipairs(plan.keep) do kept[lower(lease.uuid)] = true end
      -- a kept lease the read-back found gone is in failed; so is an add
      for _, f in ipairs(report.failed) do
        for _, u in ipairs(f.add) do kept[lower(u)] = nil end
      end
      local skipped = {}
      for _, lease in ipairs(plan.renew) do
        local u = lower(lease.uuid)
        if held[u] or kept[u] then
          local want = wanted(plan, lease)
          bodies[want] = bodies[want] or json.encode({ autorenew = want })
          local req = engine.request("PATCH", "/lease/tn/" .. u, bodies[want], "lease")
          req.uuid, req.owner, req.want = lease.uuid, run, want
          reqs[#reqs + 1] = req
        else
          skipped[#skipped + 1] = lease.uuid
        end
      end
      if #skipped > 0 then
        out.failed[1] = { uuids = skipped, err = errors.finish(errors.new("network", "not set: the lease is not on "
          .. "the target (its attach failed)", false), "PATCH", nil, 0) }
      end
    end
  end
  if #reqs == 0 then return end
  local function failed(run, uuid, err)
    local group = run.by_error[err]
    if not group then
      group = { uuids = {}, err = err }
      run.by_error[err] = group
      run.out.failed[#run.out.failed + 1] = group
    end
    group.uuids[#group.uuids + 1] = uuid
  end
  local finished = {}
  local ok, stopped = pcall(eng.run, eng, reqs, min(opts.concurrency, #reqs), function(req)
    finished[req] = true
    local lease, run = req.leases, req.owner
    if lease and lower(tostring(lease.uuid)) ~= lower(req.uuid) then
      local e = errors.new("protocol", "the server answered with another lease (" .. pretty.safe(tostring(lease.uuid))
        .. ")", false)
      e.status = 200
      failed(run, req.uuid, errors.finish(e, "PATCH", req.path, req.attempt))
    elseif lease and lease.autorenew == req.want then
      run.out.applied[#run.out.applied + 1] = req.uuid
    elseif lease then
      local e = errors.new("protocol", "the server answered success but its answer shows the lease's autorenew "
        .. "unchanged", false)
      e.status = 200
      failed(run, req.uuid, errors.finish(e, "PATCH", req.path, req.attempt))
    else
      failed(run, req.uuid, req.err)
    end
  end)
  if not ok then
    local interrupted = errors.interrupted(stopped)
    local e = errors.finish(errors.new("network", "interrupted: the request may not have been sent", false),
      "PATCH", nil, 0)
    for _, req in ipairs(reqs) do
      if not finished[req] then failed(req.owner, req.uuid, e) end
    end
    for _, run in ipairs(runs) do run.report.interrupted = run.report.interrupted or interrupted end
    return
  end
  -- the read-back: each target's leases as the server holds them now
  local check, targets = {}, {}
  for _, run in ipairs(runs) do
    if #run.out.applied > 0 then
      check[#check + 1] = run
      targets[#targets + 1] = { kind = run.plan.target_kind, uuid = run.plan.target }
    end
  end
  local interrupted = read_back(eng, targets, nil, opts.concurrency, function() return "autorenew" end,
    function(i, now, err)
    local run = check[i]
    if not now then
      run.report.unverified = run.report.unverified or err
      return
    end
    local renews = {}
    for _, lease in ipairs(now) do
      if type(lease) == "table" and type(lease.uuid) == "string" then renews[lower(lease.uuid)] = lease.autorenew end
    end
    local path = request_list(targets[i].uuid, targets[i].kind)
    local confirmed, e = {}, nil
    local want = {}
    for _, lease in ipairs(run.plan.renew) do want[lower(lease.uuid)] = wanted(run.plan, lease) end
    for _, u in ipairs(run.out.applied) do
      if renews[lower(u)] == want[lower(u)] then
        confirmed[#confirmed + 1] = u
      else
        if not e then
          e = errors.new("protocol", "the server confirmed it but the read-back shows the lease's autorenew "
            .. "unchanged", true)
          e.status = 200
          e = errors.finish(e, "GET", path, 1)
        end
        failed(run, u, e)
      end
    end
    run.out.applied = confirmed
  end)
  if interrupted then
    for _, run in ipairs(check) do run.report.interrupted = run.report.interrupted or interrupted end
  end
end

-- `err` with `text` added to its message (a copy: an error may be shared
-- by several failed entries).
local function noted(err, text)
  local e = errors.new(err.kind, err.message .. text, err.retryable)
  for _, k in ipairs({ "status", "sent", "retry_after", "method", "path", "attempts" }) do e[k] = err[k] end
  return setmetatable(e, getmetatable(err))
end

-- A lease released from its holder of the other kind and then not
-- attached is held by nothing now: its failed entry says so.
local function note_released(report)
  local from = {}
  for _, r in ipairs(report.released or {}) do
    for _, u in ipairs(r.leases) do from[lower(u)] = r.kind or "app" end
  end
  if not next(from) then return end
  local failed = {}
  for _, f in ipairs(report.failed) do
    local loose, rest, kind = {}, { add = {}, remove = f.remove, err = f.err }, nil
    for _, u in ipairs(f.add) do
      if from[lower(u)] then
        loose[#loose + 1] = u
        kind = kind or from[lower(u)]
      else
        rest.add[#rest.add + 1] = u
      end
    end
    if #rest.add + #rest.remove > 0 then failed[#failed + 1] = rest end
    if #loose > 0 then
      failed[#failed + 1] = { add = loose, remove = {}, err = noted(f.err, " (released from their "
        .. (kind == "connection" and "SIP connection" or "SIP control app")
        .. " first: they are on no connection or app now)") }
    end
  end
  report.failed = failed
end

-- A plan's report as its run starts: what the journal confirms applied.
local function new_report(plan, done)
  local report = setmetatable({
    add = plan.add, remove = plan.remove, keep = plan.keep, missing = plan.missing, conflicts = plan.conflicts,
    renew = plan.renew, renew_to = plan.renew_to, options = plan.options, away = plan.away,
    target = plan.target, target_kind = plan.target_kind, target_name = plan.target_name,
    [plan.target_kind] = plan.target, dry_run = false,
    applied = { add = {}, remove = {} }, failed = {}, unexpected = {}, released = {},
  }, pretty.SyncReport)
  local todo = { add = {}, remove = {} }
  for _, kind in ipairs({ "add", "remove" }) do
    local applied, rest = report.applied[kind], todo[kind]
    for _, lease in ipairs(plan[kind]) do
      if done[kind][lower(lease.uuid)] then
        applied[#applied + 1] = lease.uuid
      else
        rest[#rest + 1] = lease
      end
    end
  end
  return report, todo
end

--- Does what `plans` list (one target's plans, each once), and nothing
--- else: their attaches and detaches in batches, all targets' together
--- under opts.concurrency; a move off the other kind of holder is
--- released there and attached by the next request sent (the API takes
--- a lease on one kind of holder only; one on another holder of the
--- target's kind moves with the attach, in one request, and is never
--- left on nothing); then each target read back, then the autorenew
--- set. `done`: what a journal confirms ({add, remove, released} sets by
--- lower-case uuid: left out, counted as applied); `record(line)`: writes
--- a line of the journal (raises when it cannot: the run stops as an
--- interrupt does), or nil. Returns a report per plan.
function M.run(eng, plans, opts, done, record)
  local runs, streams = {}, {}
  for i, plan in ipairs(plans) do
    local report, todo = new_report(plan, done)
    local main = { conn = plan.target, kind = plan.target_kind, add = {}, remove = uuids(todo.remove) }
    runs[i] = { plan = plan, report = report, main = main }
    main.run = runs[i]
    local by_holder, order = {}, {}
    for _, lease in ipairs(todo.add) do
      local u = lower(lease.uuid)
      local h = plan.holders[u]
      if h and h.kind ~= plan.target_kind and not done.released[u] then
        -- released first, then attached: on the other kind of holder
        local key = h.kind .. h.uuid
        if not by_holder[key] then
          by_holder[key] = { conn = h.uuid, kind = h.kind, holder = h, add = {}, remove = {}, follow = main,
            run = runs[i] }
          order[#order + 1] = by_holder[key]
        end
        local l = by_holder[key].remove
        l[#l + 1] = lease.uuid
      else
        main.add[#main.add + 1] = lease.uuid
      end
    end
    streams[#streams + 1] = main
    for _, st in ipairs(order) do streams[#streams + 1] = st end
  end
  if record then
    for _, st in ipairs(streams) do
      if st.follow then
        local h = st.holder
        st.on_confirm = function(part) record({ [h.kind] = h.uuid, released = part.remove }) end
      else
        st.on_confirm = function(part) record({ add = part.add, remove = part.remove }) end
      end
    end
  end
  -- a target nothing more is written to is read back at once, beside
  -- the other targets' batches (a lease another target of its kind takes,
  -- in `away`, may still leave it afterwards: the read-back of the target
  -- it goes to is what shows it, and verify asks nothing of `away`)
  local index, early = {}, {}
  for i, run in ipairs(runs) do index[run.plan.target_kind .. run.plan.target] = i end
  local function on_settled(key, add)
    local i = index[key]
    if not i then return end
    local p = runs[i].plan
    local req = engine.request("GET", request_list(p.target, p.target_kind), nil, "uuids")
    req.settled = function(r) early[i] = { now = r.leases, err = r.err } end
    add(req)
  end
  local results, stopped = bulk.assign_many(eng, streams, { batch_size = opts.batch_size,
    concurrency = opts.concurrency, on_progress = opts.on_progress, on_settled = on_settled })
  for k, st in ipairs(streams) do
    local r, report = results[k], st.run.report
    if st.follow then
      local h = st.holder
      if #r.applied.remove > 0 then
        report.released[#report.released + 1] = { [h.kind] = h.uuid, kind = h.kind, name = h.name,
          leases = r.applied.remove }
      end
      -- not released: not attached either; a release that may have reached
      -- the server may have left them on nothing, and the report says so
      for _, f in ipairs(r.failed) do
        local err = f.err
        if err.sent ~= false then
          err = noted(err, " (their release from the " .. (h.kind == "connection" and "SIP connection" or
            "SIP control app") .. " may have been applied: they may be on no connection or app now)")
        end
        report.failed[#report.failed + 1] = { add = f.remove, remove = {}, err = err }
      end
    else
      for _, kind in ipairs({ "add", "remove" }) do
        local into = report.applied[kind]
        for _, u in ipairs(r.applied[kind]) do into[#into + 1] = u end
      end
      for _, f in ipairs(r.failed) do report.failed[#report.failed + 1] = f end
    end
  end
  if stopped then
    -- stopped: the reports say what was applied; nothing more is sent
    for _, run in ipairs(runs) do
      local p = run.plan
      run.report.interrupted = stopped
      run.report.unverified = errors.finish(errors.new("network", "interrupted: the " .. word(p.target_kind)
        .. " was not read back", false), "GET", request_list(p.target, p.target_kind), 0)
    end
  else
    local targets, at = {}, {}
    for i, run in ipairs(runs) do
      local t = { kind = run.plan.target_kind, uuid = run.plan.target }
      if early[i] then
        verify(t, run.report, early[i].now, early[i].err, run.plan.options.exact)
      else
        targets[#targets + 1], at[#targets + 1] = t, i
      end
    end
    local interrupted = #targets > 0 and read_back(eng, targets, "uuids", opts.concurrency,
      function(t) return word(t.kind) end, function(k, now, err)
        local run = runs[at[k]]
        verify(targets[k], run.report, now, err, run.plan.options.exact)
      end)
    if interrupted then
      for _, run in ipairs(runs) do run.report.interrupted = run.report.interrupted or interrupted end
    end
  end
  local stop = false
  for _, run in ipairs(runs) do
    note_released(run.report)
    stop = stop or run.report.interrupted
  end
  if stop then
    for _, run in ipairs(runs) do
      local report, plan = run.report, run.plan
      report.interrupted = report.interrupted or stop
      report.renewed = { autorenew = plan.options.autorenew, applied = {}, failed = {} }
      if #plan.renew > 0 then
        local e = errors.finish(errors.new("network", "interrupted before the request was sent", false), "PATCH",
          nil, 0)
        report.renewed.failed[1] = { uuids = uuids(plan.renew), err = e }
      end
    end
  else
    set_autorenew(eng, runs, opts)
  end
  local reports = {}
  for i, run in ipairs(runs) do
    local report = run.report
    -- with exact, ok means the read-back holds the desired leases and
    -- nothing else
    report.ok = #report.failed == 0 and #report.missing == 0 and #report.conflicts == 0
      and #report.unexpected == 0 and not report.unverified and not report.interrupted
      and #report.renewed.failed == 0
    reports[i] = report
  end
  return reports
end

return M
