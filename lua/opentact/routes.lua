-- Routes: where every number of the account goes, as one plan. A route
-- names a lease (its number or its uuid) and a target (a connection or a
-- control app, by name, uuid, app:NAME...); client:plan_routes reads
-- every target the routes name and the account once, and plans each
-- target with the others' leases movable: a lease routed from one named
-- target to another moves (no `move` needed), one on a target the routes
-- do not name needs `move`, as in sync. The plan (opentact.RoutesPlan)
-- holds a target plan per target; apply runs them as one (sync.lua,
-- apply.lua).

local core = require("opentact.core")
local errors = require("opentact.errors")
local pretty = require("opentact.pretty")
local json = require("opentact.json")
local targets = require("opentact.targets")
local sync = require("opentact.sync")
local options = require("opentact.options")

local type, ipairs, setmetatable, getmetatable, tostring, pcall = type, ipairs, setmetatable, getmetatable,
  tostring, pcall
local lower, format, concat = string.lower, string.format, table.concat
local bulk = require("opentact.bulk")
local search = require("opentact.search")
local is_uuid = bulk.is_uuid

local M = {}

-- How many problems an error's message names (err.problems has them all).
local NAMED = 10

-- How a route is named in messages: its line in a file, or its place in
-- the list.
local function label(r, i)
  if type(r) == "table" and type(r.line) == "number" then return format("line %d", r.line) end
  return format("routes[%d]", i)
end

-- Several routes named at once: "lines 3, 4, 9" (at most 5, then "...")
-- or "routes[2], routes[5]".
local function labels(rs)
  local lines, all = {}, {}
  for k, x in ipairs(rs) do
    all[k] = label(x.r, x.i)
    if type(x.r.line) == "number" then lines[#lines + 1] = x.r.line end
  end
  local list = #lines == #all and lines or all
  local text = concat(list, ", ", 1, #list < 5 and #list or 5) .. (#list > 5 and ", ..." or "")
  if list == lines then return (#lines > 1 and "lines " or "line ") .. text end
  return text
end

-- Adds a problem of the route at place `at` (its line, or its index).
local function problem(problems, at, text)
  problems[#problems + 1] = { at = at, n = #problems + 1, text = text }
end

-- The problems' texts, in the order of their routes.
local function problems_error(list, what)
  table.sort(list, function(a, b) if a.at ~= b.at then return a.at < b.at end return a.n < b.n end)
  local problems = {}
  for k, p in ipairs(list) do problems[k] = p.text end
  local shown = {}
  for i = 1, #problems < NAMED and #problems or NAMED do shown[i] = problems[i] end
  local more = #problems > NAMED and format("; and %d more", #problems - NAMED) or ""
  local e = errors.new("invalid", format("%s in the routes: %s%s; nothing was %s", pretty.plural(#problems,
    "problem"), concat(shown, "; "), more, what), false)
  e.problems = problems
  return nil, errors.finish(e, nil, nil, 0)
end

-- The lease a route names: its number, or its lease uuid lower-cased;
-- or nil and why not.
local function key_of(r)
  if r.lease ~= nil then
    local u = type(r.lease) == "table" and r.lease.uuid or r.lease
    if is_uuid(u) then return lower(u), u end
    return nil, nil, "its lease " .. pretty.safe(tostring(u)) .. " is not a lease uuid (8-4-4-4-12 hex digits)"
  end
  local n, err = core.number(r.number)
  if n == nil then return nil, nil, err.message end
  return n, r.number
end

-- The targets of the routes, each text or table resolved once (the
-- account's lists read once): route.to = {kind, uuid, name}. Unknown and
-- ambiguous targets are problems, one for each, naming its routes.
-- Returns the targets named, in the order of their first route; or nil,
-- err when the lists could not be read.
local function resolve_targets(eng, cache, ttl, routes, problems)
  local by, order, named_by = {}, {}, {}
  for _, r in ipairs(routes) do
    local t = r.target
    local key = type(t) == "table" and (t.kind or (t.app and "app" or "connection")) .. ":" .. tostring(t.uuid or t.app
      or t.connection) or t
    if not named_by[key] then
      named_by[key] = true
      order[#order + 1] = { key = key, target = t }
    end
    r.target_key = key
  end
  for _, o in ipairs(order) do
    local t, err = targets.resolve(eng, cache, o.target, ttl)
    if t then
      by[o.key] = t
    elseif err.kind ~= "not_found" and err.kind ~= "invalid" then
      return nil, err
    else
      -- (the routes that name it, found again: a failure is rare)
      local l = {}
      for i, r in ipairs(routes) do
        if r.target_key == o.key then l[#l + 1] = { r = r, i = i } end
      end
      problem(problems, l[1].r.line or l[1].i, format("%s: %s", labels(l), err.message))
    end
  end
  local named, seen = {}, {}
  for _, r in ipairs(routes) do
    local t = by[r.target_key]
    r.target_key = nil
    r.to = t
    if t and not seen[t.kind .. t.uuid] then
      seen[t.kind .. t.uuid] = #named + 1
      named[#named + 1] = t
    end
    if t then r.at = seen[t.kind .. t.uuid] end
  end
  return named
end

-- Two routes of one lease must agree on its target and its autorenew.
local function agree(routes, k, r, i, what, problems)
  local first = routes[k]
  if first.at ~= r.at then
    problem(problems, r.line or i, format("%s: %s is routed to %s here, and on %s to %s", label(r, i), what,
      tostring(r.to), label(first, k), tostring(first.to)))
  elseif first.autorenew ~= nil and r.autorenew ~= nil and first.autorenew ~= r.autorenew then
    problem(problems, r.line or i, format("%s: %s has autorenew %s here, and %s on %s", label(r, i), what,
      r.autorenew and "on" or "off", first.autorenew and "on" or "off", label(first, k)))
  end
end

---------------------------------------------------------------- the plan

local RoutesPlan = { __name = "opentact.RoutesPlan" }
M.RoutesPlan = RoutesPlan
local methods = {}
RoutesPlan.__index = methods

function RoutesPlan.__tostring(p)
  return concat(pretty.routes_lines(p, 50), "\n")
end

-- A routes plan's hash: its own fields, then each target plan's hash.
local function hash_content(plan)
  local h = core.sha256_fields()
  h:field(sync.FORMAT):field(sync.VERSION):field("routes"):field(plan.base_url):field(plan.time)
  h:field(plan.options.exact):field(plan.options.move):field(plan.ok)
  if plan.options.autorenew ~= nil then h:field("autorenew"):field(plan.options.autorenew) end
  if plan.since ~= nil then h:field("since"):field(plan.since) end
  if plan.note ~= nil then h:field("note"):field(plan.note) end
  for _, t in ipairs(plan.targets) do
    local sub = sync.content_hash(t)
    if not sub then error("a target plan is damaged") end
    h:field(sub)
  end
  return h:hex()
end

local function content_hash(plan)
  local done, hash = pcall(hash_content, plan)
  return done and hash or nil
end

-- Every lease list of the target plans in one, and the routes plan's
-- holders: what apply's journal and totals read.
local function totals(plan)
  for _, kind in ipairs({ "add", "remove", "keep", "conflicts", "renew" }) do plan[kind] = sync.leases() end
  plan.missing, plan.holders, plan.moves = {}, {}, {}
  for _, t in ipairs(plan.targets) do
    for _, kind in ipairs({ "add", "remove", "keep", "conflicts", "renew" }) do
      local into = plan[kind]
      for _, lease in ipairs(t[kind]) do into[#into + 1] = lease end
    end
    for _, x in ipairs(t.missing) do plan.missing[#plan.missing + 1] = x end
    for u, h in pairs(t.holders) do
      if plan.holders[u] == nil or h and h.kind == t.target_kind and h.uuid == t.target then plan.holders[u] = h end
    end
  end
  -- the moves between named targets: a lease added to one whose holder
  -- when planned is another
  local named = { connection = {}, app = {} }
  for _, t in ipairs(plan.targets) do
    named[t.target_kind][t.target] = t
    t.away = sync.leases()
  end
  for _, t in ipairs(plan.targets) do
    for _, lease in ipairs(t.add) do
      local h = t.holders[lower(lease.uuid)]
      local from = h and named[h.kind] and named[h.kind][h.uuid]
      if from and from ~= t then
        plan.moves[#plan.moves + 1] = { lease = lease, from = from, to = t }
        from.away[#from.away + 1] = lease
      end
    end
  end
  return plan
end

local function new_plan(fields)
  local plan = setmetatable(fields, RoutesPlan)
  plan.dry_run = true
  plan.applied, plan.failed, plan.unexpected = { add = {}, remove = {} }, {}, {}
  return totals(plan)
end

--- The plan's JSON text, as a target plan's (plan:encode()): {"format":
--- "opentact-plan", "kind": "routes", ..., "targets": [each target's
--- plan], "hash"}; or nil, err (`invalid`) when it was changed after it
--- was made.
function methods.encode(plan)
  if getmetatable(plan) ~= RoutesPlan then error("bad self to 'encode' (opentact.RoutesPlan expected)", 2) end
  local h = content_hash(plan)
  if not h or plan.hash ~= nil and plan.hash ~= h then
    return sync.invalid("the plan was changed after it was made (its content does not match its hash): make it again")
  end
  local subs = {}
  for i, t in ipairs(plan.targets) do subs[i] = sync.document(t) end
  return json.encode({ format = sync.FORMAT, version = sync.VERSION, kind = "routes", base_url = plan.base_url,
    time = plan.time, options = { exact = plan.options.exact, move = plan.options.move,
      autorenew = plan.options.autorenew }, ok = plan.ok, since = plan.since, note = plan.note, targets = subs,
    hash = h })
end

methods.failed_uuids = pretty.SyncReport.__index.failed_uuids

-- A saved routes plan's document as the plan, or nil, err.
local function decode(doc)
  local o = doc.options
  if type(doc.targets) ~= "table" or #doc.targets == 0 or type(o) ~= "table" or type(o.exact) ~= "boolean"
      or type(o.move) ~= "boolean" or (o.autorenew ~= nil and type(o.autorenew) ~= "boolean")
      or type(doc.base_url) ~= "string" or type(doc.time) ~= "number" or type(doc.ok) ~= "boolean"
      or (doc.note ~= nil and type(doc.note) ~= "string") then
    return sync.invalid("the saved plan cannot be read: its targets, options, base_url, time or ok is missing")
  end
  local subs, seen = {}, {}
  for i, d in ipairs(doc.targets) do
    if type(d) ~= "table" or d.base_url ~= doc.base_url or d.time ~= doc.time or d.since ~= doc.since then
      return sync.invalid(("the saved plan cannot be read: its target plan %d is not of the same plan"):format(i))
    end
    local t, err = sync.from_document(d)
    if not t then return nil, err end
    if seen[t.target_kind .. t.target] then
      return sync.invalid("the saved plan cannot be read: it plans a target twice")
    end
    seen[t.target_kind .. t.target] = true
    subs[i] = t
  end
  return new_plan({ targets = subs, options = { exact = o.exact, move = o.move, autorenew = o.autorenew },
    base_url = doc.base_url, time = doc.time, version = sync.VERSION, since = doc.since, note = doc.note,
    ok = doc.ok })
end

-- A routes plan's report: each target's report, and every list of them
-- in one (opentact.RoutesReport).
local function report(plan, reports)
  local r = setmetatable({ targets = reports, dry_run = false, options = plan.options, moves = plan.moves,
    applied = { add = {}, remove = {} }, failed = {}, unexpected = {}, released = {},
    renewed = { autorenew = plan.options.autorenew, applied = {}, failed = {} } }, pretty.RoutesReport)
  for _, kind in ipairs({ "add", "remove", "keep", "conflicts", "renew", "missing" }) do r[kind] = plan[kind] end
  local ok = true
  for _, t in ipairs(reports) do
    for _, kind in ipairs({ "add", "remove" }) do
      for _, u in ipairs(t.applied[kind]) do r.applied[kind][#r.applied[kind] + 1] = u end
    end
    for _, kind in ipairs({ "failed", "unexpected", "released" }) do
      for _, x in ipairs(t[kind]) do r[kind][#r[kind] + 1] = x end
    end
    for _, u in ipairs(t.renewed.applied) do r.renewed.applied[#r.renewed.applied + 1] = u end
    for _, f in ipairs(t.renewed.failed) do r.renewed.failed[#r.renewed.failed + 1] = f end
    r.unverified = r.unverified or t.unverified
    r.interrupted = r.interrupted or t.interrupted
    ok = ok and t.ok
  end
  r.ok = ok
  return r
end

sync.KINDS[RoutesPlan] = { hash = content_hash, decode = decode, report = report }
sync.KINDS.routes = sync.KINDS[RoutesPlan]

---------------------------------------------------------------- planning

-- A lease's holder fields, and the kind of target each names.
local FIELDS, KIND_OF = { "sip_connection", "sip_control_app" }, { "connection", "app" }

-- What the plan is made from: the leases each of `named` holds, and the
-- lease of each item (item.lease; nil when the account has none). For
-- more items than one round of lookups, the account's first page (`page`)
-- tells whether paging through it costs less; if so the one pass over the
-- account is every read (each lease says who holds it: the targets'
-- lists are what it shows them holding), else the targets are read and
-- each item looked up. Returns lists, items; or nil, err.
local function read(eng, named, items, opts, page)
  if #items <= opts.concurrency then page = nil end
  if not (page and sync.paging_cheaper(page, #items)) then
    local lists, err = sync.read_targets(eng, named, nil, opts)
    if not lists then return nil, err end
    local found
    found, err = sync.resolve(eng, items, "any", opts, nil)
    if not found then return nil, err end
    return lists, found
  end
  local all, err = search.all(eng, nil, { page_size = opts.page_size, concurrency = opts.concurrency }, page)
  if not all then return nil, err end
  local at, lists, index = { connection = {}, app = {} }, {}, {}
  for i, t in ipairs(named) do
    at[t.kind][t.uuid] = i
    lists[i] = {}
  end
  -- (indexed by what the routes name leases by)
  local by_uuid, by_number = false, false
  for _, item in ipairs(items) do
    if type(item.key) == "string" then by_uuid = true else by_number = true end
  end
  for _, lease in ipairs(all) do
    if by_uuid and type(lease.uuid) == "string" then index[lower(lease.uuid)] = lease end
    local tn = by_number and sync.tn_of(lease)
    if tn then index[tn] = lease end
    for k = 1, 2 do
      local h = bulk.holder(lease, FIELDS[k])
      local i = h and at[KIND_OF[k]][h]
      if i then lists[i][#lists[i] + 1] = lease end
    end
  end
  for _, item in ipairs(items) do item.lease = index[item.key] end
  return lists, items
end

-- A target plan's autorenew changes (made.renew, made.renew_to): each
-- lease it keeps or adds whose autorenew is not what its route (else the
-- call's `autorenew`) says.
local function plan_autorenew(made, desired, first, routes, autorenew)
  local want = {}
  for _, d in ipairs(desired) do
    local r = first[d.key] and routes[first[d.key]]
    if d.lease and r then
      -- (a lease routed twice, by its number and its uuid: the route
      -- that says, else the call's)
      local u = lower(d.lease.uuid)
      if r.autorenew ~= nil then
        want[u] = r.autorenew
      elseif want[u] == nil then
        want[u] = autorenew
      end
    end
  end
  for _, kind in ipairs({ "keep", "add" }) do
    for _, lease in ipairs(made[kind]) do
      local u = lower(lease.uuid)
      local a = want[u]
      if a ~= nil and lease.autorenew ~= a and made.renew_to[u] == nil then
        made.renew[#made.renew + 1] = lease
        made.renew_to[u] = a
      end
    end
  end
end

--- The work of client:plan_routes once its arguments are checked: every
--- route's lease and target, read and planned at once. `cache`, `ttl`:
--- the client's names (targets.resolve). Returns the plan, or nil, err:
--- `invalid` naming every problem of the routes (err.problems), nothing
--- planned; a target's plan refused as sync refuses it; or a read's
--- failure.
function M.make(eng, cache, ttl, routes, opts, base_url)
  local problems = {}
  local items, first = {}, {}
  for i, r in ipairs(routes) do
    local key, given, why = key_of(r)
    if key == nil then
      problem(problems, r.line or i, format("%s: %s", label(r, i), why))
    else
      r.key, r.given = key, given
    end
  end
  -- the lists names are resolved from and, for more routes than one round
  -- of lookups, the account's first page (it tells whether paging through
  -- the account costs less), read side by side
  local first_page = #routes > opts.concurrency and search.request({}, opts.page_size, 0) or nil
  local fetched, err = targets.prefetch(eng, cache, ttl, { first_page })
  if not fetched then return nil, err end
  local named
  named, err = resolve_targets(eng, cache, ttl, routes, problems)
  if not named then return nil, err end
  for i, r in ipairs(routes) do
    if r.key ~= nil and r.to then
      local before = first[r.key]
      if before then
        agree(routes, before, r, i, pretty.safe(tostring(r.given)), problems)
      else
        first[r.key] = i
        items[#items + 1] = { key = r.key, given = r.given, route = r, i = i }
      end
    end
  end
  if #problems > 0 then return problems_error(problems, "planned") end
  local began = core.now()
  local lists, found = read(eng, named, items, opts, first_page and first_page.leases)
  if not lists then return nil, found end
  local since = sync.changes_since(eng, began)
  -- a lease routed by its number and by its uuid: one target, one autorenew
  local by_lease, where = {}, {}
  for _, item in ipairs(found) do
    if item.lease then
      local u = lower(item.lease.uuid)
      if by_lease[u] then
        agree(routes, by_lease[u], item.route, item.i, pretty.safe(tostring(item.given)) .. " (lease " .. u .. ")",
          problems)
      else
        by_lease[u] = item.i
        where[u] = item.route.at
      end
    end
  end
  if #problems > 0 then return problems_error(problems, "planned") end
  -- the leases each target holds, by uuid and by number, for the routes
  -- that name a lease a lookup did not find
  for _, item in ipairs(found) do
    if not item.lease then where[item.key] = item.route.at end
  end
  local desired = {}
  for i = 1, #named do desired[i] = {} end
  for _, item in ipairs(found) do
    -- (an item is a desired item: given, key, lease)
    local d = desired[item.route.at]
    d[#d + 1] = item
  end
  local is_named = { connection = {}, app = {} }
  for i, t in ipairs(named) do is_named[t.kind][t.uuid] = i end
  -- (false too: autorenew off for every route that gives none)
  local autorenew = nil
  if opts.autorenew ~= options.UNSET then autorenew = opts.autorenew end
  -- (whether any lease is routed with an autorenew: if none is, none is
  -- looked at)
  local any_autorenew = autorenew ~= nil
  for _, r in ipairs(routes) do any_autorenew = any_autorenew or r.autorenew ~= nil end
  local subs, ok = {}, true
  for i, t in ipairs(named) do
    local current = lists[i]
    -- planned as with move (a lease of a named target moves), then a
    -- lease held by a target the routes do not name is a conflict
    -- unless `move`
    local plan = sync.plan(t.uuid, current, desired[i], { exact = opts.exact, move = true }, t.kind)
    local add, conflicts = sync.leases(), sync.leases()
    for _, lease in ipairs(plan.add) do
      local foreign = false
      for k = 1, 2 do
        local h, kind = bulk.holder(lease, FIELDS[k]), KIND_OF[k]
        if h and not (kind == t.kind and h == t.uuid) and not is_named[kind][h] then foreign = true end
      end
      local into = foreign and not opts.move and conflicts or add
      into[#into + 1] = lease
    end
    plan.add, plan.conflicts = add, conflicts
    -- with exact: what another named target is routed takes no detach
    -- here: it moves there (or, not found, stays)
    local remove = sync.leases()
    for _, lease in ipairs(plan.remove) do
      local u, tn = lower(lease.uuid), sync.tn_of(lease)
      local to = where[u] or (tn ~= nil and where[tn])
      if not to or to == i then remove[#remove + 1] = lease end
    end
    plan.remove = remove
    local made
    made, err = sync.finish_plan(plan, t, current, desired[i], { exact = opts.exact, move = opts.move,
      autorenew = options.UNSET }, base_url, since, false)
    if not made then
      err.message = tostring(t) .. ": " .. err.message
      return nil, err
    end
    -- with exact, a lease another named target is routed is not held
    -- here as the plan leaves it: it is that target's add
    local held = {}
    for _, u in ipairs(made.held) do
      if where[u] and where[u] ~= i then made.holders[u] = nil else held[#held + 1] = u end
    end
    made.held = held
    -- the autorenew each lease is routed with, else the call's
    made.options.autorenew = autorenew
    made.renew, made.renew_to = sync.leases(), {}
    if any_autorenew then plan_autorenew(made, desired[i], first, routes, autorenew) end
    ok = ok and made.ok
    subs[i] = made
  end
  -- a number not in the account that a lease some target detaches ends
  -- with is that lease written without its country code, wherever it is
  -- routed: refused as sync refuses it
  local all = { remove = {}, missing = {}, keep = {}, add = {}, conflicts = {} }
  local all_desired = {}
  for i, t in ipairs(subs) do
    for _, kind in ipairs({ "remove", "keep", "add", "conflicts", "missing" }) do
      for _, x in ipairs(t[kind]) do all[kind][#all[kind] + 1] = x end
    end
    for _, d in ipairs(desired[i]) do all_desired[#all_desired + 1] = d end
  end
  local refused = sync.refusal(all, all_desired)
  if refused then return nil, refused end
  -- (one time for all: a second may have passed between two)
  for _, t in ipairs(subs) do t.time = subs[1].time end
  local plan = new_plan({ targets = subs, options = { exact = opts.exact and true or false,
    move = opts.move and true or false, autorenew = autorenew }, base_url = base_url, time = subs[1].time,
    version = sync.VERSION, since = since, note = opts.note or nil, ok = ok })
  plan.hash = content_hash(plan)
  return plan
end

return M
