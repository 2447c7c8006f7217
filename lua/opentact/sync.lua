-- Desired state: client:sync. Reads the connection and the desired
-- leases, plans (a pure function of what was read), applies the plan with
-- assign_batched's batching and accounting, then reads the connection
-- again and checks it against the plan.
--
-- Numbers (or lease uuids) are resolved to leases one of two ways,
-- whichever costs less: a lookup per item, or paging through the whole
-- account once. The account's size is known from the first search page,
-- so that page is asked for (beside the connection's own read) only when
-- the lookups would not all fit in one round of `concurrency` requests.

local core = require("opentact.core")
local engine = require("opentact.engine")
local errors = require("opentact.errors")
local pretty = require("opentact.pretty")
local bulk = require("opentact.bulk")
local search = require("opentact.search")

local type, ipairs, setmetatable, getmetatable, tostring, next, pcall =
  type, ipairs, setmetatable, getmetatable, tostring, next, pcall
local min, ceil = math.min, math.ceil
local lower, format = string.lower, string.format
local request_lease, request_list, number = core.request_lease, core.request_list, core.number

local M = {}

---------------------------------------------------------------- plans

local holder, is_uuid = bulk.holder, bulk.is_uuid

local function leases() return setmetatable({}, pretty.Leases) end

-- The key a desired item names: its `key` (a phone number, or a lease
-- uuid lower-cased) when resolving gave one, else read from what was
-- given; nil when it names neither.
local function key_of(d)
  if d.key ~= nil then return d.key end
  local x = d.given
  if type(x) == "table" then x = x.uuid end
  if is_uuid(x) then return lower(x) end
  return (number(x))
end

-- The number of a lease, or nil.
local function tn_of(lease)
  local tn = type(lease.tn) == "table" and lease.tn.tn or nil
  return tn ~= nil and (number(tn)) or nil
end

--- The plan that brings `conn` from `current` (the leases it holds) to
--- `desired` (a list of {given = x, key = k, lease = lease or nil}: k is
--- the phone number or lower-case lease uuid x names, read from x when
--- absent), with opts.exact and opts.move. Pure: reads its arguments,
--- changes nothing. Every desired item ends up in exactly one of keep, add,
--- missing and conflicts; an item whose lease an earlier item named
--- already counts once.
--- A desired item is never removed: what `conn`'s own read shows it holds
--- decides over what resolving said (a lookup may answer 404 from a stale
--- index, or name another lease): a held lease with the uuid, or the
--- number, an item names is that item's lease, and with `exact` no held
--- lease an item names is ever in `remove`.
function M.plan(conn, current, desired, opts)
  conn = lower(conn)
  local plan = {
    add = leases(), remove = leases(), keep = leases(), missing = {}, conflicts = leases(),
  }
  -- the held leases by uuid and by number
  local held, mine = {}, {}
  for _, lease in ipairs(current) do
    local u = lower(lease.uuid)
    held[u] = true
    mine[u] = mine[u] or lease
    local tn = tn_of(lease)
    if tn ~= nil then mine[tn] = mine[tn] or lease end
  end
  local wanted, named = {}, {}
  for _, d in ipairs(desired) do
    local lease, key = d.lease, key_of(d)
    if key ~= nil then
      named[key] = true
      if mine[key] and not (lease and held[lower(lease.uuid)]) then lease = mine[key] end
    end
    if not lease then
      plan.missing[#plan.missing + 1] = d.given
    else
      local u = lower(lease.uuid)
      if not wanted[u] then
        wanted[u] = true
        local elsewhere = holder(lease, "sip_control_app")
          or (holder(lease, "sip_connection") ~= conn and holder(lease, "sip_connection"))
        if held[u] and not holder(lease, "sip_control_app") then
          plan.keep[#plan.keep + 1] = lease
        elseif elsewhere and not opts.move then
          plan.conflicts[#plan.conflicts + 1] = lease
        else
          plan.add[#plan.add + 1] = lease
        end
      end
    end
  end
  if opts.exact then
    for _, lease in ipairs(current) do
      local u, tn = lower(lease.uuid), tn_of(lease)
      if not (wanted[u] or named[u] or tn ~= nil and named[tn]) then plan.remove[#plan.remove + 1] = lease end
    end
  end
  return plan
end

-- The fewest digits a desired number must have to be taken for a held
-- lease's number without its country code (a local number: 7).
local NATIONAL_DIGITS = 7

-- The digits of a number written without its country code, as they are
-- matched against the end of a held number's: nil for a number written
-- with a leading + (it has its country code), or with fewer than
-- NATIONAL_DIGITS digits, or no number at all.
local function national_digits(x)
  local n = (type(x) == "number" or type(x) == "string" and not x:find("^%s*%+")) and number(x) or nil
  if not n then return nil end
  local digits = format("%.0f", n)
  return #digits >= NATIONAL_DIGITS and digits or nil
end

--- Whether `given` (a phone number as written) may be the number `tn`
--- without its country code: written without a leading +, of 7 digits or
--- more, and the end of tn's digits (never tn itself).
function M.national(given, tn)
  local digits, n = national_digits(given), number(tn)
  if not (digits and n) then return false end
  local held = format("%.0f", n)
  return #held > #digits and held:sub(-#digits) == digits
end

-- The first lease `plan` detaches whose number ends with the digits of a
-- desired number it has as missing, as {given, tn, count (how many such
-- leases)}; nil when there is none. A number written with a leading +
-- has its country code: it is taken as written.
local function national(plan)
  if #plan.remove == 0 or #plan.missing == 0 then return nil end
  local missing = {}
  for _, x in ipairs(plan.missing) do
    local digits = national_digits(x)
    if digits and missing[digits] == nil then missing[digits] = x end
  end
  if not next(missing) then return nil end
  local first, count = nil, 0
  for _, lease in ipairs(plan.remove) do
    local tn = tn_of(lease)
    if tn then
      local digits = format("%.0f", tn)
      for len = #digits - 1, NATIONAL_DIGITS, -1 do
        local given = missing[digits:sub(-len)]
        if given ~= nil then
          count = count + 1
          first = first or { given = given, tn = tn }
          break
        end
      end
    end
  end
  if first then first.count = count end
  return first
end

--- Why `plan` (for `desired`, as M.plan took them) must not be applied,
--- or nil: the one check a dry run and a real run both go through.
--- Every desired item missing while the plan detaches leases is a mistake
--- (numbers without their country code, the wrong account), not a wish to
--- detach everything; so is a missing number that a lease the plan
--- detaches ends with (a number without its country code). The message
--- names no option: the Lua API and the command line call it by
--- different names.
function M.refusal(plan, desired)
  if #desired > 0 and #plan.keep + #plan.add + #plan.conflicts == 0 and #plan.remove > 0 then
    local first = plan.missing[1]
    if type(first) == "table" then first = first.uuid end
    local e = errors.new("invalid", ("none of the %d desired leases is in the account (%s ...): the sync would "
      .. "detach all %d leases of the connection; nothing was changed"):format(#desired,
      pretty.safe(tostring(first)), #plan.remove))
    return errors.finish(e, nil, nil, 0)
  end
  -- a desired number not in the account that a lease to detach ends with
  -- (2125550002 given, 12125550002 held) is most likely that lease written
  -- without its country code: detaching it is not what was asked
  local found = national(plan)
  if found then
    local e = errors.new("invalid", ("%s is not in the account, and the connection holds %s, which ends with it: "
      .. "the sync would detach it%s; give numbers with their country code (e.g. +1 212 555 0100); nothing "
      .. "was changed"):format(pretty.safe(tostring(found.given)), format("%.0f", found.tn),
      found.count > 1 and (" (and %d more like it)"):format(found.count - 1) or ""))
    return errors.finish(e, nil, nil, 0)
  end
  return nil
end

---------------------------------------------------------------- resolving

-- The desired items in canonical form, each once: numbers as numbers,
-- uuids lower-cased. Returns the list of {given, key} or nil, err.
local function canonical(items, what)
  local out, seen = {}, {}
  for i, x in ipairs(items) do
    local key, err
    if what == "numbers" then
      key, err = number(x)
    elseif type(x) == "table" and is_uuid(x.uuid) then
      key = lower(x.uuid)
    elseif is_uuid(x) then
      key = lower(x)
    else
      local shown = type(x) == "table" and "{uuid = " .. tostring(x.uuid) .. "}" or tostring(x)
      err = errors.new("invalid", ("lease %s is not a lease uuid (8-4-4-4-12 hex digits)")
        :format(pretty.safe(shown)))
    end
    if not key then
      err.message = ("%s[%d]: %s"):format(what, i, err.message)
      err.index = i
      return nil, errors.finish(err, nil, nil, 0)
    end
    if not seen[key] then
      seen[key] = true
      out[#out + 1] = { given = x, key = key }
    end
  end
  return out
end

-- Whether `lease` is the one `key` (a phone number, or a lower-case lease
-- uuid) names.
local function names(lease, key)
  if type(key) == "string" then return type(lease.uuid) == "string" and lower(lease.uuid) == key end
  return tn_of(lease) == key
end

--- The lease of each key (a phone number, or a lease uuid), one lookup
--- each (GET /lease/tn/{tn}/tn or /lease/tn/{uuid}), `concurrency` at
--- once: a table key -> lease, without the keys the account has no lease
--- for; or nil, err when a lookup failed otherwise. An answer about
--- another lease than the one asked for is such a failure: what it says of
--- its holder is not what the asked lease's is.
function M.lookup(eng, keys, concurrency)
  local reqs = {}
  for i, key in ipairs(keys) do
    local req = engine.request("GET", request_lease(key), nil, "lease")
    req.key = key
    reqs[i] = req
  end
  local found, failure = {}, nil
  if #reqs > 0 then
    eng:run(reqs, min(concurrency, #reqs), function(req)
      if req.leases and names(req.leases, type(req.key) == "string" and lower(req.key) or req.key) then
        found[req.key] = req.leases
      elseif req.leases then
        if not failure then
          local l = req.leases
          local e = errors.new("protocol", ("the lookup of %s answered with another lease (%s)"):format(
            pretty.safe(type(req.key) == "string" and req.key or format("%.0f", req.key)),
            pretty.safe(tostring(type(l.uuid) == "string" and l.uuid or tn_of(l) or "no uuid"))), false)
          e.status = 200
          failure = errors.finish(e, "GET", request_lease(req.key), 1)
        end
      elseif req.err.kind ~= "not_found" and not failure then
        failure = req.err
      end
    end)
  end
  if failure then return nil, failure end
  return found
end

local function lookups(eng, items, concurrency)
  local keys = {}
  for i, item in ipairs(items) do keys[i] = item.key end
  local found, err = M.lookup(eng, keys, concurrency)
  if not found then return nil, err end
  for _, item in ipairs(items) do item.lease = found[item.key] end
  return items
end

-- Resolves by paging through the account once; `first` is its first page.
local function paging(eng, items, what, opts, first)
  local all, err = search.all(eng, nil, { page_size = opts.page_size, concurrency = opts.concurrency }, first)
  if not all then return nil, err end
  local index = {}
  for _, lease in ipairs(all) do
    local key
    if what == "numbers" then
      key = type(lease.tn) == "table" and lease.tn.tn or nil
    else
      key = type(lease.uuid) == "string" and lower(lease.uuid) or nil
    end
    if key ~= nil then index[key] = lease end
  end
  for _, item in ipairs(items) do item.lease = index[item.key] end
  return items
end

-- What one search page of 100 leases costs against one lookup, measured
-- by bench/resolve.lua at 20 ms latency (README, "Desired state"): 3.3 ms
-- against 2.6 ms a request, both at concurrency 8.
local PAGE_COST = 1.25

-- The desired items with their leases (nil: the account has none).
-- `page`: the account's first search page, when it was read (it tells the
-- account's size).
local function resolve(eng, items, what, opts, page)
  if not page then return lookups(eng, items, opts.concurrency) end
  -- page through the account when that costs less than the lookups
  local per_page = #page.data
  local pages = per_page > 0 and ceil(page.total / per_page) or 0
  if (pages - 1) * PAGE_COST < #items then return paging(eng, items, what, opts, page) end
  return lookups(eng, items, opts.concurrency)
end

-- The connection's leases and, when `filter` is given, the first page of
-- that search, read side by side. Returns current, page; or nil, err.
local function first_reads(eng, conn, filter, opts)
  local reqs = { engine.request("GET", request_list(conn)) }
  if filter then reqs[2] = search.request(filter, opts.page_size, 0) end
  local got, failure = {}, nil
  eng:run(reqs, 2, function(req)
    if req.err then failure = failure or req.err end
    got[req] = req.leases
  end)
  if failure then return nil, failure end
  return got[reqs[1]], filter and got[reqs[2]] or nil
end

---------------------------------------------------------------- applying

local function uuids(list)
  local out = {}
  for i, lease in ipairs(list) do out[i] = lease.uuid end
  return out
end

-- Detaches the leases to move from the SIP control apps that hold them
-- (a lease on an app cannot be attached to a connection; one on another
-- connection moves with the attach, in one request, and is never left on
-- nothing). Returns the uuids released, by app, and the failed groups (the
-- leases in them must not be attached); an interrupt stops it.
local function release(eng, adds, opts)
  local by_app, order = {}, {}
  for _, lease in ipairs(adds) do
    local app = holder(lease, "sip_control_app")
    if app then
      if not by_app[app] then
        by_app[app] = {}
        order[#order + 1] = app
      end
      local l = by_app[app]
      l[#l + 1] = lease.uuid
    end
  end
  local released, failed = {}, {}
  for _, app in ipairs(order) do
    local list = by_app[app]
    local path, body = core.request_assign(app, { remove = list }, "app")
    local r = bulk.assign(eng, app, { remove = list }, opts, path, body, "app")
    if #r.applied.remove > 0 then released[#released + 1] = { app = app, leases = r.applied.remove } end
    for _, f in ipairs(r.failed) do
      failed[#failed + 1] = { add = f.remove, remove = {}, err = f.err }
    end
    if r.interrupted then return released, failed, r.interrupted end
  end
  return released, failed
end

-- Reads the connection back (its leases' uuids only: the answer is
-- skimmed, not decoded) and moves to `failed` what it contradicts; with
-- `exact`, lists in `unexpected` what it holds that was neither desired
-- nor planned to go (attached by someone else meanwhile).
local function verify(eng, conn, report, exact)
  local done, now, err = pcall(eng.call, eng, engine.request("GET", request_list(conn), nil, "uuids"))
  if not done then
    -- an interrupt: what was applied is in the report already
    -- (`done` says it stopped: the value raised may be nil or false)
    report.interrupted = report.interrupted or errors.interrupted(now)
    now, err = nil, errors.new("network", "interrupted before the connection was read back", false)
  end
  if not now then
    report.unverified = err
    return
  end
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
    for _, kind in ipairs({ "keep", "add", "conflicts", "remove" }) do
      for _, lease in ipairs(report[kind]) do known[lower(lease.uuid)] = true end
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
        err = errors.finish(e, "GET", request_list(conn), 1),
      }
    end
  end
  check("add", true, "the server confirmed these but the connection read back does not hold them")
  check("remove", false, "the server confirmed these but the connection read back still holds them")
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
    local e = errors.new("protocol", "these leases were on the connection when planning and are gone now", true)
    e.status = 200
    report.failed[#report.failed + 1] = { add = gone, remove = {},
      err = errors.finish(e, "GET", request_list(conn), 1) }
  end
end

-- A lease released from its control app and then not attached is held by
-- nothing now: its failed entry says so.
local function note_released(report)
  local from = {}
  for _, r in ipairs(report.released or {}) do
    for _, u in ipairs(r.leases) do from[lower(u)] = r.app end
  end
  if not next(from) then return end
  local failed = {}
  for _, f in ipairs(report.failed) do
    local loose, rest = {}, { add = {}, remove = f.remove, err = f.err }
    for _, u in ipairs(f.add) do
      if from[lower(u)] then loose[#loose + 1] = u else rest.add[#rest.add + 1] = u end
    end
    if #rest.add + #rest.remove > 0 then failed[#failed + 1] = rest end
    if #loose > 0 then
      local e = errors.new(f.err.kind, f.err.message .. " (released from their SIP control app first: "
        .. "they are on no connection or app now)", f.err.retryable)
      for _, k in ipairs({ "status", "sent", "retry_after", "method", "path", "attempts" }) do e[k] = f.err[k] end
      failed[#failed + 1] = { add = loose, remove = {}, err = setmetatable(e, getmetatable(f.err)) }
    end
  end
  report.failed = failed
end

--- The work of client:sync once its arguments are checked: `what` is
--- "numbers" or "leases", `items` the list given, or `all` true to want
--- every lease of the account. Returns the report, or nil, err when
--- nothing could be planned (nothing was changed then).
function M.run(eng, conn, what, items, opts)
  conn = lower(conn)
  -- the input is checked before anything is sent
  local list, err
  if what ~= "all" then
    list, err = canonical(items, what)
    if not list then return nil, err end
  end
  -- a few items are looked up one by one; for more, the account's first
  -- page tells whether paging through it is cheaper
  local filter = what == "all" and { sip_connections_skip = { conn } }
    or #list > opts.concurrency and {} or nil
  local current, page = first_reads(eng, conn, filter, opts)
  if not current then return nil, page end
  local desired
  if what == "all" then
    -- every lease the connection does not hold yet, and those it holds
    local others
    others, err = search.all(eng, filter, { page_size = opts.page_size, concurrency = opts.concurrency }, page)
    if not others then return nil, err end
    desired = {}
    for i, lease in ipairs(current) do desired[i] = { given = lease.uuid, lease = lease } end
    for _, lease in ipairs(others) do desired[#desired + 1] = { given = lease.uuid, lease = lease } end
  else
    desired, err = resolve(eng, list, what, opts, page)
    if not desired then return nil, err end
  end
  local report = M.plan(conn, current, desired, opts)
  -- a dry run is refused exactly as the real run would be
  local refused = M.refusal(report, desired)
  if refused then return nil, refused end
  report.connection = conn
  report.dry_run = opts.dry_run and true or false
  report.applied = { add = {}, remove = {} }
  report.failed = {}
  report.unexpected = {}
  setmetatable(report, pretty.SyncReport)
  if opts.dry_run then
    report.ok = #report.missing == 0 and #report.conflicts == 0
    return report
  end
  local adds = report.add
  if opts.move then
    local released, failed, stopped = release(eng, adds, { batch_size = opts.batch_size,
      concurrency = opts.concurrency })
    report.released = released
    local blocked = {}
    for _, f in ipairs(failed) do
      report.failed[#report.failed + 1] = f
      for _, u in ipairs(f.add) do blocked[lower(u)] = true end
    end
    if stopped then
      -- interrupted: nothing more is sent; what was planned is accounted for
      report.interrupted = stopped
      local e = errors.finish(errors.new("network", "interrupted before the request was sent", false), "POST", nil, 0)
      e.sent = false
      local rest = { add = {}, remove = uuids(report.remove), err = e }
      for _, lease in ipairs(adds) do
        if not blocked[lower(lease.uuid)] then rest.add[#rest.add + 1] = lease.uuid end
      end
      if #rest.add + #rest.remove > 0 then report.failed[#report.failed + 1] = rest end
    elseif next(blocked) then
      local left = {}
      for _, lease in ipairs(adds) do
        if not blocked[lower(lease.uuid)] then left[#left + 1] = lease end
      end
      adds = left
    end
  end
  local changes = { add = uuids(adds), remove = uuids(report.remove) }
  if #changes.add + #changes.remove > 0 and not report.interrupted then
    local path, body = core.request_assign(conn, changes)
    local r = bulk.assign(eng, conn, changes, opts, path, body)
    report.applied = r.applied
    for _, f in ipairs(r.failed) do report.failed[#report.failed + 1] = f end
    report.interrupted = report.interrupted or r.interrupted
  end
  if report.interrupted then
    -- stopped: the report says what was applied; nothing more is sent
    report.unverified = errors.finish(errors.new("network", "interrupted: the connection was not read back", false),
      "GET", request_list(conn), 0)
  else
    verify(eng, conn, report, opts.exact)
  end
  note_released(report)
  -- with exact, ok means the read-back holds the desired leases and
  -- nothing else
  report.ok = #report.failed == 0 and #report.missing == 0 and #report.conflicts == 0
    and #report.unexpected == 0 and not report.unverified and not report.interrupted
  return report
end

return M
