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
local json = require("opentact.json")
local bulk = require("opentact.bulk")
local search = require("opentact.search")
local options = require("opentact.options")
local apply = require("opentact.apply")
local targets_lib = require("opentact.targets")

local type, ipairs, setmetatable, getmetatable, tostring, next, pcall =
  type, ipairs, setmetatable, getmetatable, tostring, next, pcall
local min, ceil, floor = math.min, math.ceil, math.floor
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
  -- (a number as decoded needs no reading)
  if type(tn) == "number" and tn == floor(tn) then return tn end
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
function M.plan(conn, current, desired, opts, kind)
  conn = lower(conn)
  -- the target's holder field, and the other kind's
  local own = kind == "app" and "sip_control_app" or "sip_connection"
  local other = kind == "app" and "sip_connection" or "sip_control_app"
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
        local theirs, ours = holder(lease, other), holder(lease, own)
        local elsewhere = theirs or (ours ~= conn and ours)
        if held[u] and not theirs then
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
      .. "detach all %d leases of the %s; nothing was changed"):format(#desired,
      pretty.safe(tostring(first)), #plan.remove, plan.target_kind == "app" and "control app" or "connection"))
    return errors.finish(e, nil, nil, 0)
  end
  -- a desired number not in the account that a lease to detach ends with
  -- (2125550002 given, 12125550002 held) is most likely that lease written
  -- without its country code: detaching it is not what was asked
  local found = national(plan)
  if found then
    local e = errors.new("invalid", ("%s is not in the account, and the " .. (plan.target_kind == "app"
      and "control app" or "connection") .. " holds %s, which ends with it: "
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
    -- (what = "any": by both)
    if what ~= "leases" then
      local tn = type(lease.tn) == "table" and lease.tn.tn or nil
      if tn ~= nil then index[tn] = lease end
    end
    if what ~= "numbers" and type(lease.uuid) == "string" then index[lower(lease.uuid)] = lease end
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
-- Whether paging through the account (`page`: its first page) costs
-- less than `n` lookups.
local function paging_cheaper(page, n)
  local per_page = #page.data
  local pages = per_page > 0 and ceil(page.total / per_page) or 0
  return (pages - 1) * PAGE_COST < n
end

local function resolve(eng, items, what, opts, page)
  if not page then return lookups(eng, items, opts.concurrency) end
  -- page through the account when that costs less than the lookups
  if paging_cheaper(page, #items) then return paging(eng, items, what, opts, page) end
  return lookups(eng, items, opts.concurrency)
end

-- The leases of each of `targets` ({kind, uuid}) and, when `filter` is
-- given, the first page of that search, read side by side (at most
-- `opts.concurrency` at once, and two for one target). Returns the lists
-- (in the order of `targets`), page; or nil, err.
local function read_targets(eng, targets, filter, opts)
  local reqs = {}
  for i, t in ipairs(targets) do reqs[i] = engine.request("GET", request_list(t.uuid, t.kind)) end
  local n = #reqs
  if filter then reqs[n + 1] = search.request(filter, opts.page_size, 0) end
  local got, failure = {}, nil
  eng:run(reqs, n == 1 and #reqs or min(opts.concurrency, #reqs), function(req)
    if req.err then failure = failure or req.err end
    got[req] = req.leases
  end)
  if failure then return nil, failure end
  local lists = {}
  for i = 1, n do lists[i] = got[reqs[i]] end
  return lists, filter and got[reqs[n + 1]] or nil
end

-- The target's leases (`target`: {kind, uuid}) and, when `filter` is
-- given, the first page of that search, read side by side. Returns
-- current, page; or nil, err.
local function first_reads(eng, target, filter, opts)
  local lists, page = read_targets(eng, { target }, filter, opts)
  if not lists then return nil, page end
  return lists[1], page
end

---------------------------------------------------------------- plans as values

-- A saved plan's format and the version this library writes and reads.
local FORMAT, VERSION = "opentact-plan", 1
-- The latest `since` a plan can hold: 9999-12-31T23:59:59Z.
local MAX_SINCE = 253402300799
local JOURNAL = "opentact-journal"

--- The metatable of a plan (client:plan, a dry run of sync,
--- opentact.decode_plan): it prints the plan, summary first; plan:encode()
--- is its JSON text.
local Plan = { __name = "opentact.Plan" }
M.Plan = Plan
local plan_methods = { failed_uuids = pretty.SyncReport.__index.failed_uuids }
Plan.__index = plan_methods

function Plan.__tostring(p)
  local lines = pretty.plan_lines(p, 50)
  for i, line in ipairs(lines) do
    if line:find("^Plan: ") then
      table.remove(lines, i)
      table.insert(lines, 1, line)
      break
    end
  end
  return table.concat(lines, "\n")
end

-- Who holds a lease, as a plan records it: {kind = "app" | "connection",
-- uuid = lower case, name = when the server sent one} (its control app
-- first), or false for nobody.
local function holder_now(lease)
  local h = bulk.holder_of(lease)
  return h and { kind = h.kind, uuid = lower(h.uuid), name = h.name } or false
end

local function same_holder(a, b)
  if not a or not b then return not a and not b end
  return a.kind == b.kind and a.uuid == b.uuid
end

-- The plan's lists, in the order a saved plan lists their leases, and
-- each one's `action` there.
local LISTS = { { "add", "add" }, { "remove", "remove" }, { "keep", "keep" }, { "conflicts", "conflict" } }

-- A plan as the document its JSON text is (without its hash): the
-- target, the options, every lease of the plan with its holder when
-- planned, what is missing, the time, the base URL.
local function document(plan)
  local list = {}
  for _, l in ipairs(LISTS) do
    for _, lease in ipairs(plan[l[1]]) do
      local u = lower(lease.uuid)
      list[#list + 1] = { action = l[2], uuid = u, tn = tn_of(lease), holder = plan.holders[u] or false }
    end
  end
  for _, u in ipairs(plan.held) do
    list[#list + 1] = { action = "held", uuid = u, holder = plan.holders[u] or false }
  end
  -- the leases whose autorenew the plan sets, each with what it was
  for _, lease in ipairs(plan.renew) do
    local u = lower(lease.uuid)
    list[#list + 1] = { action = "set", uuid = u, tn = tn_of(lease), holder = plan.holders[u] or false,
      autorenew = lease.autorenew, to = plan.renew_to and plan.renew_to[u] }
  end
  local missing = {}
  for i, x in ipairs(plan.missing) do
    missing[i] = type(x) == "table" and { uuid = tostring(x.uuid) } or x
  end
  return { format = FORMAT, version = VERSION, base_url = plan.base_url, time = plan.time,
    target = { kind = plan.target_kind, uuid = plan.target, name = plan.target_name },
    options = { exact = plan.options.exact, move = plan.options.move, autorenew = plan.options.autorenew },
    ok = plan.ok, leases = list, missing = missing, note = plan.note, since = plan.since }
end

-- A plan's content hashed as a sequence of fields that no other content
-- gives (core.sha256_fields: each field written as its length and its
-- text): every field a saved plan holds, in the order of the document.
-- Its SHA-256 is the plan's hash, made without a JSON document or the
-- content's text: hashing a plan of 10,000 leases costs a few
-- milliseconds, not the encoding of the whole plan.
-- One lease of the plan as one field: its action, uuid, number and
-- holder (false: held by nobody), and the holder's name only when there is
-- one (a plan saved before names hashes as it did).
local function lease_words(h, action, u, tn, hd)
  if hd and hd.name then
    h:words(action, u, tn, hd.kind, hd.uuid, hd.name)
  else
    h:words(action, u, tn, hd and hd.kind or nil, hd and hd.uuid or nil)
  end
end

local function hash_content(plan)
  local h = core.sha256_fields()
  h:field(FORMAT):field(VERSION):field(plan.base_url):field(plan.time):field(plan.target)
  h:field(plan.options.exact):field(plan.options.move):field(plan.ok)
  -- a lease as one field: its action, uuid, number and holder, spaces
  -- between (none of them holds one)
  local holders = plan.holders
  for _, l in ipairs(LISTS) do
    local action = l[2]
    for _, lease in ipairs(plan[l[1]]) do
      local u = lower(lease.uuid)
      lease_words(h, action, u, tn_of(lease), holders[u])
    end
  end
  for _, u in ipairs(plan.held) do lease_words(h, "held", u, nil, holders[u]) end
  for _, x in ipairs(plan.missing) do
    if type(x) == "table" then h:field("uuid"):field(tostring(x.uuid)) else h:field(x) end
  end
  -- (last, and only when there is one: a plan saved before notes hashes
  -- as it did)
  if plan.note ~= nil then h:field("note"):field(plan.note) end
  if plan.since ~= nil then h:field("since"):field(plan.since) end
  -- (only for a control app: a plan for a connection hashes as before)
  if plan.target_kind == "app" then h:field("target"):field("app") end
  if plan.target_name ~= nil then h:field("target_name"):field(plan.target_name) end
  -- (a routes plan's target plan sets each lease's own: `renew_to`)
  local to = plan.renew_to
  if plan.options.autorenew ~= nil or to then
    if plan.options.autorenew ~= nil then h:field("autorenew"):field(plan.options.autorenew) end
    for _, lease in ipairs(plan.renew) do
      local was, u = lease.autorenew, lower(lease.uuid)
      if to then
        h:words("set", u, tn_of(lease), was == nil and "-" or tostring(was), tostring(to[u]))
      else
        h:words("set", u, tn_of(lease), was == nil and "-" or tostring(was))
      end
    end
  end
  return h:hex()
end

-- The hash of what `plan` holds now, or nil when it is no plan's shape.
local function content_hash(plan)
  local done, hash = pcall(hash_content, plan)
  return done and hash or nil
end
M.content_hash = content_hash

--- The kinds of plan apply takes, by metatable and by the `kind` a saved
--- one's document names ("target" when it names none): {hash(plan) = its
--- content's hash, or nil; decode(doc) = the plan, or nil, err; report(plan,
--- reports) = the report of its target plans' reports, for a plan of
--- several}. A routes plan's (opentact.routes) registers itself.
M.KINDS = {}

local function invalid(message)
  return nil, errors.finish(errors.new("invalid", message, false), nil, nil, 0)
end
M.invalid = invalid

local DAMAGED = "the saved plan is damaged or was edited by hand (its content does not match its hash): "
  .. "make the plan again"

-- Why `plan` cannot be applied by a client of `base_url`, or nil.
local function unusable(plan, base_url)
  local kind = M.KINDS[getmetatable(plan)]
  if not kind then
    return "not a plan: give what client:plan, client:plan_routes or opentact.decode_plan returned"
  end
  if plan.version ~= VERSION then
    return ("the plan is of format version %s; this lua-opentact applies version %d"):format(
      pretty.safe(tostring(plan.version)), VERSION)
  end
  if type(plan.hash) ~= "string" or kind.hash(plan) ~= plan.hash then
    return "the plan was changed after it was made (its content does not match its hash): make it again"
  end
  if plan.base_url ~= base_url then
    return ("the plan was made for %s and this client talks to %s: apply it with a client of %s"):format(
      pretty.safe(tostring(plan.base_url)), pretty.safe(base_url), pretty.safe(tostring(plan.base_url)))
  end
  return nil
end

--- The plan's JSON text: {"format": "opentact-plan", "version": 1, ...,
--- "hash": the SHA-256 of the rest}; or nil, err (`invalid`) when the
--- plan was changed after it was made.
function plan_methods.encode(plan)
  if getmetatable(plan) ~= Plan then error("bad self to 'encode' (opentact.Plan expected)", 2) end
  local done, doc = pcall(document, plan)
  if not done then return invalid("not a plan: " .. tostring(doc)) end
  local h = content_hash(plan)
  if plan.hash ~= nil and plan.hash ~= h then
    return invalid("the plan was changed after it was made (its content does not match its hash): make it again")
  end
  doc.hash = h
  return json.encode(doc)
end

local ACTION_LIST = { add = "add", remove = "remove", keep = "keep", conflict = "conflicts", held = true,
  set = "renew" }

-- Why a decoded document is no plan this library can read, or nil.
local function malformed(doc)
  local function is_holder(h)
    return h == false or type(h) == "table" and (h.kind == "connection" or h.kind == "app") and is_uuid(h.uuid)
      and h.uuid == lower(h.uuid) and (h.name == nil or type(h.name) == "string")
  end
  if type(doc.base_url) ~= "string" or type(doc.time) ~= "number" or type(doc.ok) ~= "boolean" then
    return "its base_url, time or ok is missing"
  end
  local t, o = doc.target, doc.options
  if type(t) ~= "table" or (t.kind ~= "connection" and t.kind ~= "app") or not is_uuid(t.uuid)
      or (t.name ~= nil and type(t.name) ~= "string") then
    return "its target is not a SIP connection or control app"
  end
  if type(o) ~= "table" or type(o.exact) ~= "boolean" or type(o.move) ~= "boolean"
      or (o.autorenew ~= nil and type(o.autorenew) ~= "boolean") then
    return "its options are not exact, move and autorenew"
  end
  if type(doc.leases) ~= "table" or type(doc.missing) ~= "table" then return "it lists no leases" end
  if doc.note ~= nil and type(doc.note) ~= "string" then return "its note is not text" end
  if doc.since ~= nil and not (type(doc.since) == "number" and doc.since >= 0 and doc.since <= MAX_SINCE
      and doc.since % 1 == 0) then
    return "its since is not a time"
  end
  for i, e in ipairs(doc.leases) do
    if type(e) ~= "table" or not ACTION_LIST[e.action] or not is_uuid(e.uuid) or not is_holder(e.holder)
        or (e.tn ~= nil and type(e.tn) ~= "number")
        or (e.action == "set" and ((o.autorenew == nil and type(e.to) ~= "boolean")
          or e.to ~= nil and type(e.to) ~= "boolean" or e.autorenew ~= nil and type(e.autorenew) ~= "boolean")) then
      return ("lease %d of the plan is not an action on a lease uuid with its holder"):format(i)
    end
  end
  for i, x in ipairs(doc.missing) do
    if not (type(x) == "string" or type(x) == "number" or type(x) == "table" and type(x.uuid) == "string") then
      return ("missing item %d is not a number or a lease"):format(i)
    end
  end
  return nil
end

--- The plan a saved plan's JSON text holds, or nil, err (`invalid`): not
--- JSON, not a plan, a plan of a newer format version, or one whose
--- content does not match its hash (damaged, or edited by hand).
function M.decode(text)
  local doc, why = core.json_decode(text)
  if type(doc) ~= "table" then
    return invalid("not a saved plan: " .. (why and "not JSON (" .. why .. ")" or "not a JSON object"))
  end
  if doc.format ~= FORMAT then return invalid("not a saved plan: its format is not \"" .. FORMAT .. "\"") end
  -- (a version is a whole number a format could reach: 1e300 is none,
  -- and %d could not write it)
  if type(doc.version) ~= "number" or doc.version < 1 or doc.version > 2 ^ 31 or doc.version % 1 ~= 0 then
    return invalid("not a saved plan: it has no format version")
  end
  if doc.version > VERSION then
    return invalid(("the plan was made by a newer lua-opentact (format version %d; this one reads version %d): "
      .. "apply it with that version, or make the plan again"):format(doc.version, VERSION))
  end
  local h = doc.hash
  doc.hash = nil
  if type(h) ~= "string" then return invalid(DAMAGED) end
  local kind = M.KINDS[doc.kind or "target"]
  if not kind then return invalid("the saved plan cannot be read: it is not a plan of a target or of routes") end
  local plan, err = kind.decode(doc)
  if not plan then return nil, err end
  -- the hash of the plan as read: the content the hash was made of
  plan.hash = kind.hash(plan)
  if plan.hash ~= h then return invalid(DAMAGED) end
  return plan
end

--- The plan of one target a saved plan's document holds (the hash not
--- checked: the caller does), or nil, err (`invalid`).
function M.from_document(doc)
  local bad = malformed(doc)
  if bad then return invalid("the saved plan cannot be read: " .. bad) end
  local uuid, kind = lower(doc.target.uuid), doc.target.kind
  local plan = {
    add = leases(), remove = leases(), keep = leases(), conflicts = leases(), missing = {},
    held = {}, holders = {}, target = uuid, target_kind = kind, target_name = doc.target.name, [kind] = uuid,
    dry_run = true, ok = doc.ok,
    applied = { add = {}, remove = {} }, failed = {}, unexpected = {},
    options = { exact = doc.options.exact, move = doc.options.move, autorenew = doc.options.autorenew },
    base_url = doc.base_url, time = doc.time, version = VERSION, note = doc.note, since = doc.since,
    renew = leases(),
  }
  for _, e in ipairs(doc.leases) do
    local u = lower(e.uuid)
    if e.action == "set" then
      -- a lease the plan sets is one it lists (to keep or add), with the
      -- same holder: its own entry's is the one hashed and shown
      local known = plan.holders[u]
      if known == nil or json.encode({ known }) ~= json.encode({ e.holder }) then
        return invalid("the saved plan cannot be read: it sets the autorenew of a lease it does not list, or with "
          .. "another holder")
      end
    else
      plan.holders[u] = e.holder
    end
    if e.action == "held" then
      plan.held[#plan.held + 1] = u
    else
      local lease = { uuid = u, tn = e.tn ~= nil and { tn = e.tn } or nil }
      if e.action == "set" then
        lease.autorenew = e.autorenew
        if e.to ~= nil then
          plan.renew_to = plan.renew_to or {}
          plan.renew_to[u] = e.to
        end
      end
      if e.holder then
        lease[e.holder.kind == "app" and "sip_control_app" or "sip_connection"] = { uuid = e.holder.uuid,
          name = e.holder.name }
      end
      local list = plan[ACTION_LIST[e.action]]
      list[#list + 1] = setmetatable(lease, pretty.Lease)
    end
  end
  for i, x in ipairs(doc.missing) do
    plan.missing[i] = type(x) == "table" and { uuid = x.uuid } or x
  end
  return setmetatable(plan, Plan)
end

---------------------------------------------------------------- planning

-- Seconds taken off the server's clock for a plan's `since`: answers from
-- servers behind one address may not agree on the time to the second.
local SKEW = 60

-- The server's time, in whole seconds since the epoch, at or before the
-- first of the reads that began at `began` (core.now()) and have just
-- ended: from the Date of the last of their answers, less the time the
-- reads took and SKEW. A lease modified after that shows a modified_on
-- from then on. nil when the answers said no time, or one more than SKEW
-- away from this machine's clock (a server or proxy whose clock is wrong
-- could put it after changes that matter): apply then reads every planned
-- lease again.
local function changes_since(eng, began)
  local date = eng:server_date()
  if type(date) ~= "number" or date ~= date or math.abs(date - os.time()) > SKEW then return nil end
  local since = floor(date) - ceil(core.now() - began) - SKEW
  if since < 0 or since > MAX_SINCE then return nil end
  return since
end

-- A plan of target `tg` ({kind, uuid in lower case, name}) as M.plan
-- made it from `current` (what the target holds) and `desired`, made
-- whole: refused as sync refuses it, or given its options, the leases
-- whose autorenew it sets, the holder of every lease it names and, with
-- exact, what else the target held; `since`: the server's time of its
-- reads (changes_since). Returns the plan (hashed when `hashed`), or nil,
-- err.
local function finish_plan(plan, tg, current, desired, opts, base_url, since, hashed)
  local conn = tg.uuid
  plan.target, plan.target_kind, plan.target_name, plan[tg.kind] = conn, tg.kind, tg.name, conn
  -- a dry run is refused exactly as the real run would be
  local refused = M.refusal(plan, desired)
  if refused then return nil, refused end
  plan.dry_run = true
  plan.applied, plan.failed, plan.unexpected = { add = {}, remove = {} }, {}, {}
  plan.ok = #plan.missing == 0 and #plan.conflicts == 0
  plan.options = { exact = opts.exact and true or false, move = opts.move and true or false }
  -- autorenew asked: every desired lease that renews otherwise is set
  plan.renew = leases()
  if opts.autorenew ~= nil and opts.autorenew ~= options.UNSET then
    plan.options.autorenew = opts.autorenew
    for _, kind in ipairs({ "keep", "add" }) do
      for _, lease in ipairs(plan[kind]) do
        if lease.autorenew ~= opts.autorenew then plan.renew[#plan.renew + 1] = lease end
      end
    end
  end
  plan.base_url, plan.time, plan.version = base_url, os.time(), VERSION
  -- what its maker says it was made from (client:plan's `note`)
  plan.note = opts.note or nil
  plan.since = since
  -- the holder of every lease the plan names, as it was read
  local holders, target = {}, { kind = tg.kind, uuid = conn }
  for _, kind in ipairs({ "add", "conflicts" }) do
    for _, lease in ipairs(plan[kind]) do holders[lower(lease.uuid)] = holder_now(lease) end
  end
  for _, kind in ipairs({ "keep", "remove" }) do
    for _, lease in ipairs(plan[kind]) do holders[lower(lease.uuid)] = target end
  end
  -- with exact, what the target held beyond them: the stale check wants
  -- the target to hold nothing that was not there
  plan.held = {}
  if plan.options.exact then
    for _, lease in ipairs(current) do
      local u = lower(lease.uuid)
      if holders[u] == nil then
        holders[u] = target
        plan.held[#plan.held + 1] = u
      end
    end
  end
  plan.holders = holders
  setmetatable(plan, Plan)
  if hashed then plan.hash = content_hash(plan) end
  return plan
end

--- The work of client:plan (and of sync up to its plan) once its
--- arguments are checked: `what` is "numbers" or "leases", `items` the
--- list given, or `what` "all" to want every lease of the account. Reads,
--- resolves, plans, refuses what sync refuses; changes nothing. Returns
--- the plan (hashed when `hashed`), or nil, err.
function M.make(eng, tg, what, items, opts, base_url, hashed)
  local conn = lower(tg.uuid)
  tg = { kind = tg.kind, uuid = conn, name = tg.name }
  -- the input is checked before anything is sent
  local list, err
  if what ~= "all" then
    list, err = canonical(items, what)
    if not list then return nil, err end
  end
  -- a few items are looked up one by one; for more, the account's first
  -- page tells whether paging through it is cheaper
  -- (for a control app, all leases: the API can skip a connection's only)
  local filter = what == "all" and (tg.kind == "app" and {} or { sip_connections_skip = { conn } })
    or #list > opts.concurrency and {} or nil
  local began = core.now()
  local current, page = first_reads(eng, tg, filter, opts)
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
  local plan = M.plan(conn, current, desired, opts, tg.kind)
  return finish_plan(plan, tg, current, desired, opts, base_url, changes_since(eng, began), hashed)
end

---------------------------------------------------------------- the stale check

-- A plan's target as {kind, uuid}.
local function target_of(plan)
  return { kind = plan.target_kind, uuid = plan.target, name = plan.target_name }
end

local function holder_text(h, gone)
  if gone then return "not in the account" end
  if h == nil then return "not in the plan" end
  if not h then return "on no connection or app" end
  return "on " .. pretty.holder(h.kind, h.uuid, h.name)
end

-- How many moved leases a stale error names in its message.
local NAMED = 3

local function stale_error(moved)
  local parts = {}
  for i = 1, min(NAMED, #moved) do
    local m = moved[i]
    parts[i] = ("%s%s: planned %s, now %s"):format(m.uuid, m.tn and " (" .. format("%.0f", m.tn) .. ")" or "",
      holder_text(m.planned), holder_text(m.now, m.gone))
  end
  for _, m in ipairs(moved) do m.gone = nil end
  local more = #moved > NAMED and ("; and %d more"):format(#moved - NAMED) or ""
  local e = errors.new("stale", ("the plan is stale: %s changed since it was made (%s%s); nothing was changed: "
    .. "make the plan again"):format(pretty.plural(#moved, "lease"), table.concat(parts, "; "), more), false)
  e.moved = moved
  return errors.finish(e, nil, nil, 0)
end

-- The leases modified since `since` (on the server's clock), by
-- lower-case uuid, read beside the lists of connections and apps that
-- `targets` are of (each target must still be in its list): changed; or
-- false when they do not fit in one page (one answer is one moment: pages
-- read one after another could miss a lease that moves between them); or
-- nil, err (a read's failure, or `not_found`: a target is gone).
local function changed_since(eng, targets, since, opts)
  local filter = { modified_on_from = os.date("!%Y-%m-%dT%H:%M:%SZ", since), order = { modified_on = "ASC" } }
  local reqs, kinds = { search.request(filter, opts.page_size, 0) }, {}
  for _, t in ipairs(targets) do
    if not kinds[t.kind] then
      kinds[t.kind] = true
      reqs[#reqs + 1] = targets_lib.list_request(t.kind)
    end
  end
  local got, failure = {}, nil
  eng:run(reqs, #reqs, function(req)
    if req.err then failure = failure or req.err end
    got[req] = req.leases
  end)
  if failure then return nil, failure end
  local present = {}
  for k = 2, #reqs do
    for _, h in ipairs(got[reqs[k]]) do
      if type(h) == "table" and type(h.uuid) == "string" then present[reqs[k].kind .. lower(h.uuid)] = true end
    end
  end
  for _, t in ipairs(targets) do
    if not present[t.kind .. t.uuid] then
      local e = errors.new("not_found", ("%s is not in the account any more (deleted since the plan was made?); "
        .. "nothing was changed"):format(pretty.holder(t.kind, t.uuid, t.name)), false)
      e.status = 404
      return nil, errors.finish(e, "GET", targets_lib.KINDS[t.kind].path, 1)
    end
  end
  local page = got[reqs[1]]
  if #page.data < page.total then return false end
  local changed = {}
  for _, lease in ipairs(page.data) do changed[lower(lease.uuid)] = lease end
  return changed
end

-- Checks that the server still looks as it did when `plans` (one
-- target's plans: one, or a routes plan's) were made: the holder of
-- every planned lease the journal does not confirm (`done`), and with
-- exact, that each target holds nothing beyond its plan. Knowing the
-- server's time the plans were made at (`since`) costs one read of each
-- target and, beside them, one search of the leases modified since then:
-- a planned lease not among them holds what it held. Otherwise (or with
-- `reread`, or more changes than one page holds) the leases on none of
-- the targets are read again by uuid (a lookup each, or one pass over
-- the account when that costs less, as sync resolves). On a resume
-- (`resuming`), a lease already as its plan leaves it was applied
-- before its batch reached the journal: it is added to `done`. Returns
-- true, or nil, err (`stale`, or the read's failure).
local function check_fresh(eng, plans, since, done, opts, resuming)
  local targets, read = {}, {}
  local adds = 0
  for i, plan in ipairs(plans) do
    local t = target_of(plan)
    targets[i] = t
    read[t.kind .. t.uuid] = t
    for _, lease in ipairs(plan.add) do
      if not (resuming and done.add[lower(lease.uuid)]) then adds = adds + 1 end
    end
  end
  local changed, lists, page = false, nil, nil
  if since and not opts.reread then
    local err
    changed, err = changed_since(eng, targets, since, opts)
    if changed == nil then return nil, err end
  end
  if not changed then
    lists, page = read_targets(eng, targets, adds > opts.concurrency and {} or nil, opts)
    if not lists then return nil, page end
  end
  -- where each lease the targets hold is (an app's before a connection's,
  -- as a lease's holder is told): as their reads show, or knowing what
  -- changed, as the changed leases show (the others hold what they held)
  local on, plan_of = {}, {}
  local function put(u, t)
    if not on[u] or t.kind == "app" then on[u] = t end
  end
  if lists then
    for i, list in ipairs(lists) do
      for _, lease in ipairs(list) do put(lower(lease.uuid), targets[i]) end
    end
  else
    for u, lease in pairs(changed) do
      for _, field in ipairs({ "sip_connection", "sip_control_app" }) do
        local h = bulk.holder(lease, field)
        local t = h and read[(field == "sip_control_app" and "app" or "connection") .. h]
        if t then put(u, t) end
      end
    end
  end
  local function on_target(u, i) return on[u] ~= nil and same_holder(on[u], targets[i]) end
  if resuming then
    for i, plan in ipairs(plans) do
      for _, kind in ipairs({ "add", "remove" }) do
        for _, lease in ipairs(plan[kind]) do plan_of[lower(lease.uuid)] = i end
      end
    end
    -- what the journal confirms and the target contradicts (a server that
    -- confirmed a change it did not make, or a change undone since) is
    -- not done: it is checked and sent again like the rest
    for u in pairs(done.add) do
      if not (plan_of[u] and on_target(u, plan_of[u])) then done.add[u] = nil end
    end
    for u in pairs(done.remove) do
      if plan_of[u] and on_target(u, plan_of[u]) then done.remove[u] = nil end
    end
  end
  local expect = {}
  local function want(plan, lease_or_uuid, now, after, kind)
    local u = lower(type(lease_or_uuid) == "table" and lease_or_uuid.uuid or lease_or_uuid)
    -- (knowing what changed, a lease that did not stands as planned: it
    -- needs no entry)
    if changed and not changed[u] then return end
    expect[#expect + 1] = { uuid = u, tn = type(lease_or_uuid) == "table" and tn_of(lease_or_uuid) or nil,
      planned = plan.holders[u] or false, want = now, after = after, kind = kind }
  end
  for i, plan in ipairs(plans) do
    local target = targets[i]
    for _, lease in ipairs(plan.add) do
      local u = lower(lease.uuid)
      if not done.add[u] then
        want(plan, lease, not done.released[u] and plan.holders[u] or false, target, "add")
      end
    end
    for _, lease in ipairs(plan.remove) do
      if not done.remove[lower(lease.uuid)] then want(plan, lease, target, false, "remove") end
    end
    for _, lease in ipairs(plan.keep) do want(plan, lease, target) end
    for _, u in ipairs(plan.held) do want(plan, u, target) end
  end
  local items, expected = {}, {}
  for _, e in ipairs(expect) do
    expected[e.uuid] = true
    if on[e.uuid] then
      e.now = on[e.uuid]
    else
      items[#items + 1] = { key = e.uuid, e = e }
    end
  end
  if changed then
    -- modified since the plan: as it is now (on none of the targets). The
    -- others hold what they held when planned.
    for _, item in ipairs(items) do
      local e, lease = item.e, changed[item.key]
      if lease then e.now = holder_now(lease) else e.now = e.planned end
    end
  elseif #items > 0 then
    local found, err = resolve(eng, items, "leases", opts, page)
    if not found then return nil, err end
    for _, item in ipairs(found) do
      item.e.now = item.lease and holder_now(item.lease) or false
      item.e.gone = not item.lease
    end
  end
  local moved = {}
  for _, e in ipairs(expect) do
    if not same_holder(e.now, e.want) then
      if resuming and e.kind and not e.gone and same_holder(e.now, e.after) then
        done[e.kind][e.uuid] = true
        done.late[#done.late + 1] = { kind = e.kind, uuid = e.uuid }
      elseif resuming and e.kind == "add" and e.now == false and not e.gone and e.want and e.want.kind ~= e.after.kind
          and same_holder(e.want, e.planned) then
        -- released from the other kind of holder before the run stopped,
        -- its release's answer not in the journal: the attach is left
        done.released[e.uuid] = true
        done.late_released[#done.late_released + 1] = { uuid = e.uuid, holder = e.planned }
      else
        moved[#moved + 1] = { uuid = e.uuid, tn = e.tn, planned = e.planned, now = e.now, gone = e.gone or nil }
      end
    end
  end
  -- with exact, a target holds nothing the plan does not name: as its read
  -- shows, or (knowing what changed) as the changed leases show
  local exact = {}
  for i, plan in ipairs(plans) do
    if plan.options.exact then exact[targets[i].kind .. targets[i].uuid] = targets[i] end
  end
  local function unplanned(lease, t)
    local u = lower(lease.uuid)
    if not (expected[u] or done.add[u]) then
      moved[#moved + 1] = { uuid = u, tn = tn_of(lease), planned = nil, now = t }
    end
  end
  if lists then
    for i, list in ipairs(lists) do
      if exact[targets[i].kind .. targets[i].uuid] then
        for _, lease in ipairs(list) do unplanned(lease, targets[i]) end
      end
    end
  elseif next(exact) then
    for u, lease in pairs(changed) do
      local t = on[u]
      if t and exact[t.kind .. t.uuid] then unplanned(lease, t) end
    end
  end
  if #moved > 0 then return nil, stale_error(moved) end
  return true
end

---------------------------------------------------------------- the journal

-- The journal of an apply: its first line names the plan (its hash);
-- each line after it is a batch the server confirmed, {"add": [...],
-- "remove": [...]} or {"app": uuid, "released": [...]}, appended and
-- flushed to disk before the run goes on. An apply holds it open and
-- locked (core.journal_open) from its first read to its end: a second
-- apply given the same file is refused, not run beside the first.

local function journal_error(path, why)
  return invalid(("journal %s: %s"):format(pretty.safe(path), why))
end

-- What the journal `file` (open, at `path`) confirms for `plan`: {add =
-- set, remove = set, released = set, late = {}}, and whether there was
-- one (a resume); or nil, err (`invalid`: the journal of another plan,
-- or damaged).
local function read_journal(file, path, plan)
  local done = { add = {}, remove = {}, released = {}, late = {}, late_released = {} }
  local text, failed = file:read()
  if not text then return journal_error(path, failed) end
  if text == "" then return done, false end
  local pos, n = 1, 0
  while pos <= #text do
    local nl = text:find("\n", pos, true)
    if not nl then
      -- a last line cut short by a crash: nothing was confirmed by it
      if n == 0 then return journal_error(path, "its first line is cut short") end
      break
    end
    local line = text:sub(pos, nl - 1)
    n = n + 1
    local rec, why = core.json_decode(line)
    if type(rec) ~= "table" then
      return journal_error(path, ("line %d is not JSON (%s)"):format(n, tostring(why or "not an object")))
    end
    if n == 1 then
      if rec.format ~= JOURNAL then return journal_error(path, "not a journal of opentact apply") end
      if rec.plan ~= plan.hash then
        return journal_error(path, "it is the journal of another plan: give that plan, or a new journal file")
      end
    else
      local function put(list, set)
        if type(list) ~= "table" then return false end
        for _, u in ipairs(list) do
          if not is_uuid(u) or plan.holders[lower(u)] == nil then return false end
          set[lower(u)] = true
        end
        return true
      end
      local fine
      if rec.released ~= nil then
        fine = put(rec.released, done.released)
      else
        fine = put(rec.add or {}, done.add) and put(rec.remove or {}, done.remove)
      end
      if not fine then return journal_error(path, ("line %d names leases the plan does not"):format(n)) end
    end
    pos = nl + 1
  end
  if pos <= #text then
    -- the cut line goes, so that what is appended next starts a line of
    -- its own
    local ok, why = file:truncate(pos - 1)
    if not ok then return journal_error(path, why) end
  end
  return done, true
end

local function append(file, record)
  local ok, why = file:append(json.encode(record) .. "\n")
  if not ok then
    -- a batch that cannot be recorded stops the run, as an interrupt does
    error(errors.finish(errors.new("invalid", "the journal cannot be written: " .. why, false), nil, nil, 0), 0)
  end
end

---------------------------------------------------------------- applying

-- A plan's target plans: a routes plan's, or the plan itself.
local function parts(plan)
  return plan.targets or { plan }
end

-- Does what `plan` lists (apply.run), and nothing else. `done`: what a
-- journal confirms (left out, counted as applied); `journal`: the open
-- journal each confirmed batch is appended to. Returns the report (a
-- routes plan's: routes_report of the targets' reports), or nil, err
-- when the journal cannot be written before anything is sent.
local function run_plan(eng, plan, opts, done, journal)
  done = done or { add = {}, remove = {}, released = {}, late = {}, late_released = {} }
  local journaled, record = { add = {}, remove = {}, released = {} }, nil
  if journal then
    for _, l in ipairs(done.late) do journaled[l.kind][l.uuid] = true end
    -- nothing is sent yet: a journal that cannot be written is an error
    if #done.late > 0 then
      local rec = { add = {}, remove = {} }
      for _, l in ipairs(done.late) do rec[l.kind][#rec[l.kind] + 1] = l.uuid end
      local ok, err = pcall(append, journal, rec)
      if not ok then return nil, err end
    end
    -- releases done before the run stopped, whose answers it did not record
    local by_holder, order = {}, {}
    for _, l in ipairs(done.late_released) do
      local h = l.holder
      local key = h.kind .. h.uuid
      if not by_holder[key] then
        by_holder[key] = { [h.kind] = h.uuid, released = {} }
        order[#order + 1] = by_holder[key]
      end
      table.insert(by_holder[key].released, l.uuid)
      journaled.released[l.uuid] = true
    end
    for _, rec in ipairs(order) do
      local ok, err = pcall(append, journal, rec)
      if not ok then return nil, err end
    end
    record = function(line)
      for _, kind in ipairs({ "add", "remove", "released" }) do
        for _, u in ipairs(line[kind] or {}) do journaled[kind][lower(u)] = true end
      end
      append(journal, line)
    end
  end
  local reports = apply.run(eng, parts(plan), opts, done, record)
  if journal then
    -- what was applied and is not in the journal yet (an answer that came
    -- in as the run stopped, a failure the read-back shows applied)
    local rec, any = { add = {}, remove = {} }, false
    local lines = {}
    for _, report in ipairs(reports) do
      for _, kind in ipairs({ "add", "remove" }) do
        for _, u in ipairs(report.applied[kind]) do
          if not journaled[kind][lower(u)] and not (done.add[lower(u)] or done.remove[lower(u)]) then
            rec[kind][#rec[kind] + 1] = u
            any = true
          end
        end
      end
      -- releases too: a lease released and not attached is resumed by its
      -- attach alone
      for _, r in ipairs(report.released or {}) do
        local left = {}
        for _, u in ipairs(r.leases) do
          if not (journaled.released[lower(u)] or done.released[lower(u)]) then left[#left + 1] = u end
        end
        if #left > 0 then lines[#lines + 1] = { [r.kind] = r[r.kind], released = left } end
      end
    end
    if any then lines[#lines + 1] = rec end
    local written = true
    for _, line in ipairs(lines) do written = written and pcall(append, journal, line) end
    if not written then
      for _, report in ipairs(reports) do
        report.interrupted = report.interrupted or "the journal cannot be written"
        report.ok = false
      end
    end
  end
  if plan.targets then return M.KINDS[getmetatable(plan)].report(plan, reports) end
  return reports[1]
end

-- apply with the journal `file` open (or none).
local function apply_with(eng, plan, opts, file)
  local done, resuming = { add = {}, remove = {}, released = {}, late = {}, late_released = {} }, false
  if file then
    done, resuming = read_journal(file, opts.journal, plan)
    if not done then return nil, resuming end
    if not resuming then
      local ok, err = file:append(json.encode({ format = JOURNAL, version = VERSION, plan = plan.hash }) .. "\n")
      if not ok then return journal_error(opts.journal, err) end
    end
  end
  local fresh, err = check_fresh(eng, parts(plan), plan.since, done, opts, resuming)
  if not fresh then return nil, err end
  return run_plan(eng, plan, opts, done, file)
end

--- The work of client:apply once its arguments are checked: refuses a
--- plan that is not one, was changed, or is for another base URL
--- (`invalid`); checks the target and what changed since the plan (see
--- check_fresh) and refuses a stale plan (`stale`); then does exactly
--- what it lists. With `opts.journal`, each confirmed batch is appended
--- to that file, held locked for the run, and the leases it confirms
--- from an earlier run are neither read nor written.
function M.apply(eng, plan, opts, base_url)
  local why = unusable(plan, base_url)
  if why then return invalid(why) end
  if not opts.journal then return apply_with(eng, plan, opts, nil) end
  local file, failed, busy = core.journal_open(opts.journal)
  if not file then
    return journal_error(opts.journal, busy and failed .. " (an apply holds it until it ends): wait for that one, "
      .. "or give another journal file" or failed)
  end
  -- (closed however the run ends: an error raised through it too)
  local out = { pcall(apply_with, eng, plan, opts, file) }
  file:close()
  if not out[1] then error(out[2], 0) end
  return out[2], out[3]
end

--- The work of client:sync once its arguments are checked: the plan
--- (M.make), and unless `opts.dry_run`, that plan applied at once (read a
--- moment ago, it needs no stale check). Returns the report (a dry run:
--- the plan), or nil, err when nothing could be planned (nothing was
--- changed then).
function M.run(eng, target, what, items, opts, base_url)
  local plan, err = M.make(eng, target, what, items, opts, base_url, opts.dry_run)
  if not plan then return nil, err end
  if opts.dry_run then return plan end
  return run_plan(eng, plan, opts, nil, nil)
end

-- A plan of one target, the kind client:plan makes.
M.KINDS[Plan] = { hash = content_hash, decode = M.from_document }
M.KINDS.target = M.KINDS[Plan]

-- What a routes plan (opentact.routes) makes its target plans with.
M.read_targets, M.resolve, M.finish_plan, M.changes_since = read_targets, resolve, finish_plan, changes_since
M.paging_cheaper = paging_cheaper
M.document, M.leases, M.tn_of, M.VERSION, M.FORMAT = document, leases, tn_of, VERSION, FORMAT

return M
