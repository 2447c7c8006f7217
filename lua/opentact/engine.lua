-- The request engine: one per client, above one transport. It owns the
-- retry policy, the backoff timers, the concurrency limits and the
-- accounting of every request until it is finished for good.
--
-- Requests belong to runs. A blocking call or a bulk call is a run that its
-- caller drives to the end (`run`); callback requests belong to the
-- background run that `step` drives. Whoever drives the engine settles
-- whatever answers came back, but a finished request is only handed over
-- by its own run: so two coroutines sharing a client each see only their
-- own answers, and a callback is only ever called from `step`.
--
-- A transport gives start(id, method, path, body, token) -> true | nil, err;
-- poll(timeout, max_events, into) -> the finished requests appended to
-- `into`, five slots each: id, status, body, retry_after (or false),
-- open_ended; or id, false, err, false, false;
-- cancel(id); pending(); timeout() (seconds until poll must run, or nil);
-- epoch() (forks seen: what was queued before one is the parent's);
-- close(); and, for host loops, pollfd(). Nothing here raises for what the
-- network or the server does.

local core = require("opentact.core")
local errors = require("opentact.errors")
local pretty = require("opentact.pretty")
local retry = require("opentact.retry")

local type, pairs, ipairs, pcall, setmetatable, tostring, error = type, pairs, ipairs, pcall, setmetatable, tostring, error
local remove = table.remove
local unpack = table.unpack or unpack
-- (the main coroutine, in Lua 5.1, where coroutine.running() gives nil)
local MAIN = {}
local function pack(...) return { n = select("#", ...), ... } end
local running, co_status = coroutine.running, coroutine.status
local answer_decode, now = core.answer_decode, core.now
local finish_error, as_leases, Lease, Page, retry_delay = errors.finish, pretty.leases, pretty.Lease, pretty.Page,
  retry.delay

local M = {}

local Engine = {}
Engine.__index = Engine

-- The longest a blocking run waits in one poll; curl's own timeouts and
-- the retry timers end most waits much sooner.
local LONG_WAIT = 3600
-- Callback requests on the wire at once; more wait their turn (a burst
-- must not run the process out of descriptors).
local BACKGROUND_LIMIT = 128
-- Socket events one turn of step acts on: bounds the time a step(0) takes
-- when many answers arrive at once (the rest wait for the next step).
local STEP_EVENTS = 4

local function new_run(limit)
  return {
    limit = limit,    -- requests of this run on the wire at once
    inflight = 0,
    held = 0,         -- places kept by finished requests that hold theirs
    ready = {}, head = 1, tail = 0,     -- requests to start, retries first
    done = {}, dhead = 1, dtail = 0,    -- finished, not yet handed over
    left = 0,                           -- submitted, not yet handed over
  }
end

--- A new engine over `transport`, for a client whose options are `opts`
--- and whose authentication is `auth` (opentact.auth). Logging in is
--- auth's: the engine runs the login requests auth asks for, parks the
--- requests auth says must wait, and wakes them when auth says.
function M.new(opts, transport, auth)
  local background = new_run(BACKGROUND_LIMIT)
  local self = setmetatable({
    opts = opts,
    log = opts.log or false,  -- read on every attempt: kept at hand
    auth = auth,
    redact = auth.redact,
    spare = {},               -- finished runs of plain calls, for the next call
    transport = transport,
    jitter = core.rng(),
    inflight = {},            -- request id -> request on the wire
    next_id = 0,
    timers = {},              -- requests waiting to be retried, each with `due`
    runs = { background },    -- runs with requests not yet handed over
    -- an error raised by the user's code (the log hook, a token function)
    -- that is raised at the next point where the engine's state is in
    -- order: the end of a turn, of a submit, of a launch
    raising = false,
    raised = nil,
    token_function = auth.mode == "function",
    judging = {},             -- answers being judged, per turn (turns nest through hooks)
    -- the deadline of the call each coroutine is in (Engine:within)
    deadlines = setmetatable({}, { __mode = "k" }),
    parked_due = {},          -- requests waiting for a login that have a deadline
    background = background,
  }, Engine)
  auth.serve({
    login = function(prev) return self:login_request(prev) end,
    send = function(req) self:launch(req) end,
    wake = function(req, err, attempts) self:wake(req, err, attempts) end,
  })
  return self
end

--- A request: one logical call, attempted as often as the policy allows.
function M.request(method, path, body, shape)
  -- every field the engine sets later is made here, so the table is built
  -- once at its final size
  return {
    method = method, path = path, body = body, attempt = 0, retried = 0, refreshed = false,
    token = false, run = false, id = false, done = false, leases = false, err = false,
    -- the answer's payload: false a list of leases, "lease" one, "page" a
    -- search page, "uuids" a list of leases read for their uuids only
    shape = shape or false,
    -- a read (a GET, or a search's POST) is retried whenever retrying may help
    read = method == "GET" or shape == "page",
    epoch = false,          -- the transport's fork count when it was queued
    -- seconds the request may take in all, attempts and waits (false: no
    -- limit), and when they are up, from its first launch
    deadline = false, deadline_at = false,
  }
end

---------------------------------------------------------------- requests

local CLOSED = "the client was closed before the request finished"

local function closed_error(req)
  local err = errors.new("network", CLOSED)
  err.sent = req.attempt > 0
  return finish_error(err, req.method, req.path, req.attempt)
end

-- Code the user gave (the log hook, a token function) raised `err`: kept
-- to be raised once the engine's state is in order, like an interrupt
-- that came at that point. Until it is raised, the log hook hears of
-- nothing (it cannot raise a second one); a token function that raises
-- again stops its request with its own error.
local function user_error(self, err)
  if not self.raising then self.raising, self.raised = true, err end
end

-- Raises the error user_error kept, once.
local function raise_user_error(self)
  if self.raising then
    local err = self.raised
    self.raising, self.raised = false, nil
    error(err, 0)
  end
end

-- The log hook hears of an attempt; an error it raises is the user's.
local function hear(self, event)
  if self.raising then return end
  local ok, err = pcall(self.log, event)
  if not ok then user_error(self, err) end
end

-- Whether `e`, raised by the answer decoder, is its own failure (memory,
-- a body read twice) rather than something raised through it.
local function decoder_failure(e)
  return type(e) == "string" and (e:find("not enough memory", 1, true) ~= nil
    or e:find("this answer is being read", 1, true) ~= nil)
end

-- The request is over: it waits in its run's done queue to be handed over.
local function finish(req, leases, err)
  -- once: a hook that closed the client may have finished it already
  if req.done then return end
  req.done, req.leases, req.err = true, leases, err
  local run = req.run
  run.dtail = run.dtail + 1
  run.done[run.dtail] = req
end

-- The log hook's event for an attempt, as it ended.
local function event_for(req, status, err)
  return {
    method = req.method, path = req.path, status = status or (err and err.status),
    attempt = req.attempt, elapsed = now() - req.started, kind = err and err.kind or nil,
  }
end

-- Judges an attempt (status, body, retry_after from the server, or nil,
-- err from the transport): finished, or waiting on a retry timer. The log
-- hook hears of it after it is acted on, so a hook that yields (and is
-- never resumed) strands nothing; `events`, when given, collects the
-- events for the caller to hand the hook once every answer of its turn
-- is acted on.
function Engine:settle(req, status, data, retry_after, open_ended, events)
  local leases, err
  if status then
    local ok, cut
    ok, leases, err, cut = pcall(answer_decode, status, data, retry_after, req.shape or nil)
    if not ok and not decoder_failure(leases) then
      -- raised while it decoded, but not by the decoder: Ctrl-C (lua.c's
      -- hook fires as a C function returns), a host's hook: it goes
      -- through as it came, as it would have an instruction later
      error(leases, 0)
    elseif not ok then
      leases, err = nil, errors.new("protocol", "the answer could not be decoded: " .. tostring(leases))
      err.status = status
    elseif open_ended and cut then
      -- an answer that ended when the server closed, and whose JSON ran out
      -- before its end, was cut short: a network failure, not a bad answer
      err = errors.new("network", "the answer was cut short: the server closed the connection mid-answer", true)
      err.status, err.sent = status, true
    end
  else
    err = data
  end
  local log = self.log
  local event = log and event_for(req, status, err)
  self:act(req, leases, err)
  if event then
    if events then
      events[#events + 1] = event
    else
      hear(self, event)
    end
  end
end

-- The error `err` of a request whose deadline ends it: it says so.
local function past_deadline(req, err, why)
  err.message = ("%s (%s: the deadline of %g s was reached)"):format(err.message, why, req.deadline)
  return err
end

-- What an attempt's outcome (leases, or err) leads to.
function Engine:act(req, leases, err)
  if leases and req.login then return self:login_over(req, leases) end
  if leases then
    -- results print readably (opentact.pretty): lists, their leases, pages
    local shape = req.shape
    if not shape then
      as_leases(leases)
    elseif shape == "page" then
      as_leases(leases.data)
      setmetatable(leases, Page)
    elseif shape == "lease" then
      setmetatable(leases, Lease)
    end
    return finish(req, leases)
  end
  local opts = self.opts
  if err.status == 401 and self.auth.renews and not req.refreshed and not req.login then
    -- one new token per refused token (auth sees to it); then the request
    -- goes again, once
    req.refreshed = true
    self.auth.refused(req.token)
    return self:later(req, 0)
  end
  local wait = retry_delay(opts, err, req.read and "GET" or req.method, req.retried, self.jitter)
  local due = req.deadline_at
  if due then
    -- a wait that would cross the deadline is not started; an attempt the
    -- deadline cut short says so
    local t = now()
    if err.kind == "timeout" and t >= due - 0.002 then
      err, wait = past_deadline(req, err, "cut short"), nil
    elseif wait and t + wait >= due then
      err, wait = past_deadline(req, err, ("not retried after %s s"):format(wait >= 1 and ("%g"):format(wait)
        or ("%.3f"):format(wait))), nil
    end
  end
  if not wait then
    err = finish_error(err, req.method, req.path, req.attempt, self.redact)
    if req.login then return self:login_over(req, nil, err) end
    return finish(req, nil, err)
  end
  req.retried = req.retried + 1
  self:later(req, wait)
end

-- Ends a request that cannot go on; a login's end releases its waiters.
function Engine:give_up(req, err)
  if req.login then return self:login_over(req, nil, err) end
  finish(req, nil, err)
end

function Engine:later(req, wait)
  if req.done then return end
  if self.closed then return self:give_up(req, closed_error(req)) end
  req.due = now() + wait
  -- (at its deadline at the latest: then it ends, saying so)
  if req.deadline_at and req.due > req.deadline_at then req.due = req.deadline_at end
  self.timers[#self.timers + 1] = req
end

-- Puts one attempt of `req` on the wire.
function Engine:launch(req)
  if self.closed then return self:give_up(req, closed_error(req)) end
  -- after fork(), what the parent queued is the parent's to send
  if req.epoch and req.epoch ~= self:epoch() then
    local err = errors.new("network", "the process forked before this request was sent; the parent sends it")
    err.sent = false
    return self:give_up(req, finish_error(err, req.method, req.path, req.attempt))
  end
  -- a deadline counts from the request's first launch (a wait for a login
  -- included)
  if req.deadline and not req.deadline_at then req.deadline_at = now() + req.deadline end
  local token, gen
  if req.login then
    local wait
    token, wait = self.auth.login_start(req)
    if not token then
      -- another client is logging in with the same email: look again soon
      if wait then return self:later(req, wait) end
      -- a token came meanwhile: this login is not needed
      return self:login_over(req)
    end
  else
    local attempts
    if self.token_function then
      -- the user's code: what it raises stops this request, and is raised
      local ok
      ok, token, gen, attempts = pcall(self.auth.token)
      if not ok then return self:stopped(req, token) end
    else
      token, gen, attempts = self.auth.token()
    end
    -- a token function may have closed the client
    if self.closed then return self:give_up(req, closed_error(req)) end
    if not token then
      if gen == nil then return self:park(req) end -- a login first
      return finish(req, nil, finish_error(gen, req.method, req.path, attempts or req.attempt, self.redact))
    end
    if req.probe then return finish(req, token) end -- client:token()
  end
  -- the deadline: an attempt gets what is left of it
  local limit = nil
  if req.deadline then
    limit = req.deadline_at - now()
    if limit <= 0 then
      local e = errors.new("timeout", ("the deadline of %g s was reached before the request was sent again"):format(
        req.deadline), true)
      if req.attempt == 0 then e.message = e.message:gsub(" again$", "") end
      -- (an attempt before this one may have reached the server)
      e.sent = req.attempt > 0
      return self:give_up(req, finish_error(e, req.method, req.path, req.attempt, self.redact))
    end
  end
  req.attempt = req.attempt + 1
  req.token = gen -- its generation: a 401 drops only the token it was sent with
  if self.log then req.started = now() end -- only the log hook's `elapsed` needs it
  -- registered before it starts, so that an error raised at any point
  -- from here on (an interrupt) still finds it to cancel
  local id = self.next_id + 1
  self.next_id = id
  req.id = id
  self.inflight[id] = req
  req.run.inflight = req.run.inflight + 1
  local started, failure = self.transport:start(id, req.method, req.path, req.body, token, req.login, limit)
  if not started then
    self.inflight[id] = nil
    req.id = nil
    req.run.inflight = req.run.inflight - 1
    return self:settle(req, nil, failure)
  end
end

-- The user's code raised `err` as `req` was about to go on the wire: the
-- request ends (its callback hears of it, a bulk report counts it) and the
-- error is raised once the engine's state is in order.
function Engine:stopped(req, err)
  user_error(self, err)
  local e = errors.new("network", "stopped before it was sent: " .. tostring(err))
  e.sent = req.attempt > 0
  finish(req, nil, finish_error(e, req.method, req.path, req.attempt, self.redact))
end

-- Starts the run's ready requests while it has room.
function Engine:fill(run)
  local co = run.co
  if co and co_status(co) == "dead" then
    -- its coroutine was closed or died outside our pcall: nobody waits
    return self:close_run(run)
  end
  while run.inflight + run.held < run.limit and run.head <= run.tail do
    local req = run.ready[run.head]
    run.ready[run.head] = nil
    run.head = run.head + 1
    self:launch(req)
  end
end

-- Starts the retries that are due, first in their runs' queues.
function Engine:fire_timers()
  if #self.parked_due > 0 then self:end_parked(now()) end
  local timers = self.timers
  if #timers == 0 then return end
  local clock, k, fired = now(), 1, nil
  while k <= #timers do
    local req = timers[k]
    if req.due <= clock then
      remove(timers, k)
      req.due = false
      local run = req.run
      run.head = run.head - 1
      run.ready[run.head] = req
      fired = fired or {}
      fired[#fired + 1] = run
    else
      k = k + 1
    end
  end
  if fired then
    for i = 1, #fired do self:fill(fired[i]) end
  end
end

-- Seconds until the first retry timer, or nil when there is none.
function Engine:next_due()
  local timers, first = self.timers, nil
  for k = 1, #timers do
    local due = timers[k].due
    if not first or due < first then first = due end
  end
  -- (and the deadlines of requests waiting for a login)
  for _, req in ipairs(self.parked_due) do
    if req.parked and (not first or req.deadline_at < first) then first = req.deadline_at end
  end
  return first and first - now() or nil
end

-- Gives back the place a `holds` request kept (counted once), and lets
-- the run go on.
local function unhold(self, run, req)
  if not req.held_place then return end
  run.held = run.held - 1
  req.held_place = false
  self:fill(run)
end

-- Polls the transport into `results` and judges what came back. Five
-- slots per answer: id, status, body (a string, or for a large answer an
-- opentact.Body that answer_decode reads once), retry_after, open_ended;
-- or id, false, err, false, false. The freed slots get their next requests on the wire before the
-- answers are decoded; the id's slot then holds the request until it is
-- judged.
local function judge(self, results, wait, max_events)
  self.transport:poll(wait, max_events, results)
  local events = self.log and {}
  local last = #results
  local inflight = self.inflight
  for k = 1, last, 5 do
    local id = results[k]
    local req = inflight[id]
    if req then
      inflight[id] = nil
      req.id = false
      local run = req.run
      run.inflight = run.inflight - 1
      results[k] = req
      -- (a request that `holds` its place keeps it until it is handed
      -- over: what its on_done adds first goes out next)
      if req.holds then
        run.held = run.held + 1
        req.held_place = true
      elseif run.head <= run.tail then
        self:fill(run)
      end
    else
      results[k] = false
    end
  end
  for k = 1, last, 5 do
    local req = results[k]
    -- a hook may have closed the client meanwhile: close finished it then
    if req and not (req.done or req.due) then
      local status = results[k + 1]
      if status then
        self:settle(req, status, results[k + 2], results[k + 3] or nil, results[k + 4], events)
      else
        self:settle(req, nil, results[k + 2], nil, nil, events)
      end
      -- not over (a retry waits): the place it kept is free
      if not req.done then unhold(self, req.run, req) end
    end
    results[k] = false
  end
  -- every answer of the turn is acted on: now the log hook may hear of
  -- them (and yield, even in another coroutine's turn)
  for i = 1, events and #events or 0 do hear(self, events[i]) end
end

-- Ends with `why` every request of `results` that was taken from the
-- transport but not judged yet (an error stopped the judging, or the
-- client closed).
local function abandon(self, results, why)
  local inflight = self.inflight
  for k = 1, #results, 5 do
    local x = results[k]
    if type(x) ~= "table" then
      x = x and inflight[x]
      if x then
        inflight[results[k]] = nil
        x.id = false
        x.run.inflight = x.run.inflight - 1
      end
    end
    if x and x.login and not (x.done or x.due) then
      -- a login stopped: its waiters wait for the next one
      self:login_over(x)
    elseif x and not (x.done or x.due) then
      local err = errors.new("network", why)
      err.sent = true
      finish(x, nil, finish_error(err, x.method, x.path, x.attempt))
    end
    results[k] = false
  end
end

--- One turn: due retries started, transfers run for at most `wait`
--- seconds (acting on at most `events` socket events), freed slots
--- refilled, answers judged. Runs are filled when they submit and when
--- a slot of theirs frees, so a turn only fills the runs it touched.
--- `run` is the caller's: when it has finished requests, nothing waits.
function Engine:turn(wait, events, run)
  if self.closed then return end
  -- requests left waiting for a login that ended without them (an
  -- interrupt while they were being relaunched): auth logs in for them
  self.auth.resume()
  if self.timers[1] or self.parked_due[1] then
    self:fire_timers()
    local due = self:next_due()
    if due and due < wait then wait = due end
  end
  -- a retry that failed at once (its token could not be had) is done now
  if run and run.dhead <= run.dtail then wait = 0 end
  if wait < 0 then wait = 0 end
  -- the answers go into a list the engine holds before poll returns, so
  -- an error (an interrupt) at any point still finds them to end
  local results, judging = { nil, nil, nil, nil, nil }, self.judging -- room for one answer
  judging[#judging + 1] = results
  local ok, err = pcall(judge, self, results, wait, events)
  -- by identity: turns of coroutines that yield in a hook may interleave
  for k = #judging, 1, -1 do
    if judging[k] == results then remove(judging, k) break end
  end
  if not ok then
    -- an interrupt or a raising hook: what it stopped ends with it
    abandon(self, results, "stopped before its answer was judged: " .. tostring(err))
    error(err, 0)
  end
  -- (a 401 with a token function retries at once; a deadline may end a wait)
  if self.timers[1] or self.parked_due[1] then self:fire_timers() end
  raise_user_error(self)
end

---------------------------------------------------------------- runs

local function submit(run, req)
  req.run = run
  run.left = run.left + 1
  run.tail = run.tail + 1
  run.ready[run.tail] = req
end

-- Hands over the run's next finished request, or nil.
local function take(run)
  if run.dhead > run.dtail then return nil end
  local req = run.done[run.dhead]
  run.done[run.dhead] = nil
  run.dhead = run.dhead + 1
  run.left = run.left - 1
  return req
end


local function remove_run(runs, run)
  for k = #runs, 1, -1 do
    if runs[k] == run then
      remove(runs, k)
      return
    end
  end
end

-- Ends the run: what of it is still in flight, waiting or queued is
-- cancelled, and finished with a `why` error when one is given.
function Engine:close_run(run, why)
  local cancelled, inflight, timers = {}, self.inflight, self.timers
  for id, req in pairs(inflight) do
    if req.run == run then
      inflight[id] = nil
      self.transport:cancel(id)
      req.id = nil
      cancelled[#cancelled + 1] = req
    end
  end
  for t = #timers, 1, -1 do
    local req = timers[t]
    if req.run == run then
      remove(timers, t)
      req.due = nil
      cancelled[#cancelled + 1] = req
    end
  end
  for i = run.head, run.tail do cancelled[#cancelled + 1] = run.ready[i] end
  for _, req in ipairs(self.auth.forget(function(w) return w.run == run end)) do
    req.parked = false
    cancelled[#cancelled + 1] = req
  end
  run.inflight, run.ready, run.head, run.tail, run.held = 0, {}, 1, 0, 0
  for k = 1, #cancelled do
    local req = cancelled[k]
    if req.login then
      -- a login stopped: its waiters wait for the next one
      req.done = true
      self.auth.login_over(req)
    elseif why then
      local err = errors.new("network", why)
      err.sent = req.attempt > 0
      finish(req, nil, finish_error(err, req.method, req.path, req.attempt))
    end
  end
  remove_run(self.runs, run)
end

--- Takes back the run's queued requests (not yet started) for which
--- drop(req) is true: they never go out and are never handed over. For
--- an on_done that queued ahead and learns it need not have.
function M.unqueue(run, drop)
  local ready, kept = run.ready, run.head - 1
  for i = run.head, run.tail do
    local req = ready[i]
    ready[i] = nil
    if drop(req) then
      run.left = run.left - 1
    else
      kept = kept + 1
      ready[kept] = req
    end
  end
  run.tail = kept
end

local function drive(self, run, on_done)
  -- on_done may add requests to the run (a batch split in two)
  -- (an error the user's code raised meanwhile waits for the next turn:
  -- on_done is not stopped half-way)
  local function add(req, first)
    req.epoch = self:epoch()
    req.deadline = req.deadline or run.deadline or false
    if first then
      -- ahead of what is queued: the next request to go out
      req.run = run
      run.left = run.left + 1
      run.head = run.head - 1
      run.ready[run.head] = req
    else
      submit(run, req)
    end
    self:fill(run)
  end
  self:fill(run)
  raise_user_error(self)
  while run.left > 0 do
    if run.dhead > run.dtail then self:turn(LONG_WAIT, nil, run) end
    local req = take(run)
    while req do
      if on_done then on_done(req, add) end
      unhold(self, run, req)
      req = take(run)
    end
  end
  raise_user_error(self)
end

--- Runs `reqs` to the end in this coroutine, at most `limit` on the wire
--- at once; calls on_done(req, add) as each finishes (req.leases or
--- req.err), where add(request) puts one more request in this run.
--- If anything raises on the way (an interrupt, a callback), the run's
--- transfers are cancelled before the error goes on.
function Engine:run(reqs, limit, on_done)
  local deadline = self:deadline()
  if deadline then
    for k = 1, #reqs do reqs[k].deadline = reqs[k].deadline or deadline end
  end
  local run = new_run(limit)
  -- (for what on_done adds too)
  run.deadline = deadline
  local co, main = running()
  run.co = not main and co or nil -- a coroutine that dies mid-run abandons it
  self.runs[#self.runs + 1] = run
  local epoch = self:epoch()
  for k = 1, #reqs do
    reqs[k].epoch = epoch
    submit(run, reqs[k])
  end
  local ok, err = pcall(drive, self, run, on_done)
  if not ok then
    self:close_run(run)
    error(err, 0)
  end
  -- a run that ended normally has nothing left in flight, waiting or queued
  remove_run(self.runs, run)
end

--- The deadline of the requests this coroutine makes now: the one of the
--- call running (within), else the client's `deadline`, else false.
function Engine:deadline()
  local own = self.deadlines[running() or MAIN]
  if own then return own end
  return self.opts.deadline or false
end

--- Runs fn(...) with `deadline` (seconds, or false: the client's) for
--- every request this coroutine makes meanwhile; returns what fn returns.
function Engine:within(deadline, fn, ...)
  local co = running() or MAIN
  local before = self.deadlines[co]
  -- (false: the client's, also inside a call made from another's hook)
  self.deadlines[co] = deadline or false
  local out = pack(pcall(fn, ...))
  self.deadlines[co] = before
  if not out[1] then error(out[2], 0) end
  return unpack(out, 2, out.n)
end

local function call_loop(self, req)
  self:launch(req)
  raise_user_error(self)
  while not req.done do self:turn(LONG_WAIT, nil, req.run) end
end

--- One request, blocking until it is over: leases, or nil, err. A run of
--- one, driven without its queues: the path every plain call takes.
function Engine:call(req)
  -- (a plain call gives its own: the call's, or the client's)
  if not req.own_deadline then req.deadline = req.deadline or self:deadline() end
  local spare = self.spare
  local run = spare[#spare]
  if run then spare[#spare] = nil else run = new_run(1) end
  local runs = self.runs
  runs[#runs + 1] = run
  req.run = run
  run.left = 1
  local ok, err = pcall(call_loop, self, req)
  if not ok then
    self:close_run(run)
    error(err, 0)
  end
  remove_run(runs, run)
  -- its only request is done and in its done queue: empty, it serves again
  run.done[run.dhead] = nil
  run.dhead, run.dtail, run.left = 1, 0, 0
  spare[#spare + 1] = run
  return req.leases, req.err
end

-- The transport's fork count; 0 once closed (a request made then, from a
-- hook or callback that closed the client, ends as closed when launched).
function Engine:epoch()
  if self.closed then return 0 end
  return self.transport:epoch()
end

-- The server's clock: the Date header of the last answer that had one
-- (seconds since the epoch), or nil (none had, or a transport that does
-- not say).
function Engine:server_date()
  local t = self.transport
  if self.closed or not t.server_date then return nil end
  return t:server_date()
end

---------------------------------------------------------------- logins

-- A request auth said must wait for a login; it holds its slot in its run.
function Engine:park(req)
  req.parked = true
  req.run.inflight = req.run.inflight + 1
  -- a deadline ends the wait too (fire_timers)
  if req.deadline_at then self.parked_due[#self.parked_due + 1] = req end
  self.auth.park(req)
end

-- Ends the parked requests whose deadline has come: out of auth's waiters,
-- finished with an error that says what they waited for.
function Engine:end_parked(clock)
  local list, kept, late = self.parked_due, {}, {}
  for _, req in ipairs(list) do
    if req.parked and not req.done then
      if req.deadline_at <= clock then late[req] = true else kept[#kept + 1] = req end
    end
  end
  self.parked_due = kept
  if not next(late) then return end
  -- every one finished before any run goes on (what goes on may raise)
  local runs = {}
  for _, req in ipairs(self.auth.forget(function(w) return late[w] end)) do
    req.parked = false
    local run = req.run
    run.inflight = run.inflight - 1
    local e = errors.new("timeout", ("the deadline of %g s was reached while waiting for a login (the login goes on "
      .. "for the requests that wait for it)"):format(req.deadline), true)
    e.sent = req.attempt > 0
    finish(req, nil, finish_error(e, req.method, req.path, req.attempt, self.redact))
    runs[#runs + 1] = run
  end
  for _, run in ipairs(runs) do
    if run.head <= run.tail then self:fill(run) end
  end
end

-- Auth wakes a parked request: it goes on, or ends with the error of the
-- login it waited for (attempts: the login's).
function Engine:wake(req, err, attempts)
  if not req.parked then return end
  req.parked = false
  local run = req.run
  run.inflight = run.inflight - 1
  if err then
    finish(req, nil, finish_error(err, req.method, req.path, attempts, self.redact))
  else
    self:launch(req)
  end
  -- the slot it held is free: its run goes on
  if run.head <= run.tail then self:fill(run) end
end

-- The login request auth asks for: `prev`, the one in flight, while it is
-- this process's; else a new one, not sent yet. A login is a read:
-- retried like one.
function Engine:login_request(prev)
  -- the parent's login, before a fork: the child logs in itself
  local epoch = self:epoch()
  if prev and prev.epoch == epoch then return prev end
  local req = M.request("GET", "/auth", nil, "auth")
  req.login = true
  req.epoch = epoch
  local run = new_run(1)
  run.left = 1
  req.run = run
  self.runs[#self.runs + 1] = run
  return req
end

-- The login request is over: its answer's payload, or its error, goes to
-- auth, which wakes its waiters. A login queued before a fork ends in the
-- child with the fork's error: that one is the parent's, lost to this
-- process, not a failed login of its own.
function Engine:login_over(req, payload, err)
  remove_run(self.runs, req.run)
  req.done = true
  if err and not self.closed and req.epoch ~= self:epoch() then return self.auth.login_lost(req) end
  self.auth.login_over(req, payload, err, req.attempt)
end

---------------------------------------------------------------- callbacks

--- Starts `req` in the background; callback(leases, err) is called from step.
function Engine:submit_callback(req, callback)
  if not req.own_deadline then req.deadline = req.deadline or self:deadline() end
  req.callback = callback
  req.epoch = self:epoch()
  local bg = self.background
  submit(bg, req)
  self:fill(bg)
  -- the request is the background's now: its callback hears how it ends
  raise_user_error(self)
end

--- A callback request that fails before anything is sent: its callback
--- still comes from step.
function Engine:fail_callback(err, callback)
  local bg = self.background
  bg.left = bg.left + 1
  finish({ callback = callback, run = bg }, nil, err)
end

--- Runs transfers and timers for at most `timeout` seconds, returning early
--- once callbacks are due; calls them; returns how many are still pending.
function Engine:step(timeout)
  local bg = self.background
  local deadline = now() + timeout
  local looked = false
  while bg.dhead > bg.dtail and bg.left > 0 do
    local left = deadline - now()
    self:turn(left > 0 and left or 0, STEP_EVENTS, bg)
    looked = true
    if left <= 0 then break end
  end
  -- nothing to wait for, or callbacks due already: the transport is looked
  -- at all the same, without waiting. Whatever made pollfd() readable goes
  -- that way (a kept-alive connection its server closed, another run's
  -- answer); else a host woken by it would be woken again at once, for ever.
  if not looked then self:turn(0, STEP_EVENTS) end
  local req = take(bg)
  while req do
    -- an error in a callback leaves step; the rest wait for the next step
    req.callback(req.leases, req.err)
    req = take(bg)
  end
  return bg.left
end

--- Seconds until step must run: 0 when callbacks are due, nil when idle.
function Engine:timeout()
  local bg = self.background
  if bg.dhead <= bg.dtail then return 0 end
  if bg.left == 0 then return nil end
  local wait = self.transport:timeout()
  local due = self:next_due()
  if due and (not wait or due < wait) then wait = due end
  if wait and wait < 0 then wait = 0 end
  return wait
end

--- Ends every pending request with an error, closes the transport, then
--- calls the pending callbacks (all of them, even if one raises: the first
--- error is raised after the last callback).
function Engine:close()
  self.closed = true
  -- answers taken from the transport and not judged yet (close called
  -- from a log hook or a token function while a turn judges them)
  local judging = self.judging
  for k = #judging, 1, -1 do abandon(self, judging[k], CLOSED) end
  local runs = self.runs
  for k = #runs, 1, -1 do self:close_run(runs[k], CLOSED) end
  self.transport:close()
  -- `failed` says a callback raised: the first error may be nil or false
  local bg, failed, first = self.background, false, nil
  local req = take(bg)
  while req do
    local ok, err = pcall(req.callback, req.leases, req.err)
    if not ok and not failed then failed, first = true, err end
    req = take(bg)
  end
  if failed then error(first, 0) end
end

return M
