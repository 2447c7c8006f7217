-- POST /lease/tn/search?take=N&skip=N: the account's leases that match a
-- filter, a page at a time.

local ngx = ngx
local seed = require("emulator.seed")
local state = require("emulator.state")
local replies = require("emulator.replies")
local request = require("emulator.request")
local type, ipairs, pairs, next, tonumber, tostring = type, ipairs, pairs, next, tonumber, tostring
local format, concat, floor, min = string.format, table.concat, math.floor, math.min

local config, snapshot, add_lease, autorenew = state.config, state.snapshot, state.add_lease, state.autorenew
local fail, status_fault, finish = replies.fail, replies.status_fault, replies.finish
local is_json, decode_object, is_uuid = request.is_json, request.decode_object, request.is_uuid

local M = {}

local SEARCHES_MAX = 64     -- distinct filters a worker keeps per state version

-- Each filter field's check: returns the value to filter with and its
-- canonical text (for the cache key), or nil and a message naming the
-- field. JSON null is a wrong type for every field: an absent field is
-- how a filter says "any".

local function want(name, what)
  return nil, "field '" .. name .. "' must be " .. what
end

-- tn: digits, '*' for any run of digits, '%' for one digit. A run of
-- '*' is one '*', so the backtracking of the Lua pattern stays bounded.
local function check_tn(v, name)
  if type(v) ~= "string" or not v:find("^[%d*%%]+$") or #v > 64 then
    return want(name, "a string of digits, '*' (any digits) and '%' (one digit)")
  end
  v = v:gsub("%*+", "*")
  local fixed = #(v:gsub("%*", "")) -- how many digits the mask needs at least
  local pattern = "^" .. v:gsub("[*%%]", { ["*"] = "%d*", ["%"] = "%d" }) .. "$"
  return { pattern = pattern, fixed = fixed }, v
end

local function check_uuid(v, name)
  if not is_uuid(v) then return want(name, "a lower-case uuid string") end
  return v, v
end

local function check_uuids(v, name)
  local what = "an array of lower-case uuid strings"
  if type(v) ~= "table" then return want(name, what) end
  local n, set, list = 0, {}, {}
  for _ in pairs(v) do n = n + 1 end
  if n ~= #v then return want(name, what) end
  for i = 1, n do
    if not is_uuid(v[i]) then return want(name, what) end
    if not set[v[i]] then set[v[i]] = true list[#list + 1] = v[i] end
  end
  table.sort(list)
  return set, concat(list, ",")
end

local function check_bool(v, name)
  if type(v) ~= "boolean" then return want(name, "a boolean") end
  return v, tostring(v)
end

local function check_mode(v, name)
  if v ~= "AND" and v ~= "OR" then return want(name, '"AND" or "OR"') end
  return v, v
end

local ORDER_FIELDS = { tn = true, created_on = true, modified_on = true }

local function check_order(v, name)
  local what = 'an object of one key, "tn", "created_on" or "modified_on", to "ASC" or "DESC"'
  if type(v) ~= "table" then return want(name, what) end
  local key, dir = next(v)
  if key == nil or next(v, key) ~= nil or not ORDER_FIELDS[key] or (dir ~= "ASC" and dir ~= "DESC") then
    return want(name, what)
  end
  return { field = key, dir = dir }, key .. ":" .. dir
end

-- ISO-8601: a date, then optionally a time and a zone. Bounds compare as
-- strings against the lease's, which are all "YYYY-MM-DDThh:mm:ssZ".
local function check_date(v, name)
  if type(v) ~= "string" or not (v:find("^%d%d%d%d%-%d%d%-%d%d$") or v:find("^%d%d%d%d%-%d%d%-%d%dT[%d:.Z+%-]+$")) then
    return want(name, "an ISO-8601 date string (YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ)")
  end
  return v, v
end

-- The filter fields in the order of the cache key.
local FILTER = {
  { "tn", check_tn },
  { "sip_connection", check_uuid },
  { "sip_control_app", check_uuid },
  { "sip_connections_skip", check_uuids },
  { "autorenew", check_bool },
  { "mode", check_mode },
  { "order", check_order },
  { "created_on_from", check_date },
  { "created_on_to", check_date },
  { "modified_on_from", check_date },
  { "modified_on_to", check_date },
}
local FILTER_KNOWN = {}
for _, f in ipairs(FILTER) do FILTER_KNOWN[f[1]] = true end

-- Checks a search body; returns the filter (checked values by field, and
-- `key`, one string for all equal filters) or nil, message.
local function parse_filter(raw)
  local body = {}
  if raw and raw ~= "" then
    body = decode_object(raw)
    if not body then return nil, "request body is not a JSON object" end
  end
  for k in pairs(body) do
    if not FILTER_KNOWN[k] then return nil, "unknown field '" .. tostring(k) .. "'" end
  end
  local filter, key = {}, {}
  for _, f in ipairs(FILTER) do
    local name, check = f[1], f[2]
    if body[name] ~= nil then
      local v, text = check(body[name], name)
      if v == nil then return nil, text end
      filter[name] = v
      key[#key + 1] = name .. "=" .. text
    end
  end
  if not filter.mode then filter.mode = "AND" key[#key + 1] = "mode=AND" end
  if not filter.order then
    filter.order = { field = "created_on", dir = "DESC" }
    key[#key + 1] = "order=created_on:DESC"
  end
  filter.key = concat(key, "\n")
  return filter
end

local function modified_on(s, i)
  local m = s.modified[i]
  return m ~= "" and m or seed.created[i]
end

-- The filter's criteria as tests of lease i in snapshot s. A date range
-- (its _from and _to) is one criterion, so mode OR means "in the range
-- or matching another criterion", not "after from or before to".
local function criteria(f)
  local tests = {}
  if f.tn then
    local pattern, fixed, numbers = f.tn.pattern, f.tn.fixed, seed.numbers
    tests[#tests + 1] = function(i)
      local n = numbers[i]
      return #n >= fixed and n:find(pattern) ~= nil
    end
  end
  if f.sip_connection then
    local u = f.sip_connection
    tests[#tests + 1] = function(i, s) return s.conn[i] == u end
  end
  if f.sip_control_app then
    local u = f.sip_control_app
    tests[#tests + 1] = function(i, s) return s.app[i] == u end
  end
  if f.sip_connections_skip then
    local set = f.sip_connections_skip
    tests[#tests + 1] = function(i, s) return not set[s.conn[i]] end
  end
  if f.autorenew ~= nil then
    local want_renew = f.autorenew
    tests[#tests + 1] = function(i, s) return autorenew(s, i) == want_renew end
  end
  local function range(from, to, value)
    if not (from or to) then return end
    tests[#tests + 1] = function(i, s)
      local v = value(s, i)
      return (not from or v >= from) and (not to or v <= to)
    end
  end
  range(f.created_on_from, f.created_on_to, function(_, i) return seed.created[i] end)
  range(f.modified_on_from, f.modified_on_to, modified_on)
  return tests
end

local function reverse(list)
  local n = #list
  for k = 1, floor(n / 2) do list[k], list[n + 1 - k] = list[n + 1 - k], list[k] end
  return list
end

-- Seed indexes `out` (ascending) in modified_on order, ties by index
-- ascending. A lease never modified shows its created_on, which grows
-- with the index: those are in order already, so only the modified ones
-- are sorted, then the two runs merged. After an assign of a page that
-- sorts a hundred leases, not the whole account.
local function by_modified(out, s, asc)
  local modified = s.modified
  local function before(a, b)
    local ka, kb = modified_on(s, a), modified_on(s, b)
    if ka ~= kb then return (ka < kb) == asc end
    return a < b
  end
  local plain, changed = {}, {}
  for _, i in ipairs(out) do
    if modified[i] == "" then plain[#plain + 1] = i else changed[#changed + 1] = i end
  end
  if not asc then reverse(plain) end -- their created_on are all different: no ties
  table.sort(changed, before)
  local merged, a, b = {}, 1, 1
  while a <= #plain or b <= #changed do
    if b > #changed or (a <= #plain and before(plain[a], changed[b])) then
      merged[#merged + 1] = plain[a]
      a = a + 1
    else
      merged[#merged + 1] = changed[b]
      b = b + 1
    end
  end
  return merged
end

-- The seed indexes of the leases matching filter f in snapshot s, in
-- the order asked; ties by seed index ascending.
local function matching(f, s)
  local tests = criteria(f)
  local any = f.mode == "OR" and #tests > 0
  local out = {}
  for i = 1, #seed.leases do
    -- AND: every test passes; OR: one does; no criteria: every lease
    local ok = not any
    for t = 1, #tests do
      if tests[t](i, s) == any then ok = any break end
    end
    if ok then out[#out + 1] = i end
  end
  local asc = f.order.dir == "ASC"
  if f.order.field == "modified_on" then return by_modified(out, s, asc) end
  -- tn and created_on both grow with the seed index, so out is in
  -- order already; neither has ties
  return asc and out or reverse(out)
end

-- Per worker: the matches of every filter asked since the state last
-- changed, so paging through a search slices a list instead of scanning
-- the leases for every page.
local searches = {}

local function search(f, s)
  if searches.version ~= s.version then searches = { version = s.version, lists = {}, count = 0 } end
  local list = searches.lists[f.key]
  if list then return list end
  list = matching(f, s)
  -- a client sending ever new filters must not grow the worker without end
  if searches.count >= SEARCHES_MAX then searches.lists, searches.count = {}, 0 end
  searches.lists[f.key] = list
  searches.count = searches.count + 1
  return list
end

-- take and skip: the digits of a whole number >= least, without leading
-- zeros (kept as text: echoed as asked, however large), or nil.
local function count_arg(v, default, least)
  if v == nil then return default end
  if type(v) ~= "string" or not v:find("^%d+$") then return nil end
  v = v:gsub("^0+(%d)", "%1")
  if tonumber(v) < least then return nil end
  return v
end

-- POST /lease/tn/search?take=N&skip=N: a page of the leases matching the
-- filter in the body. At most max_page leases a page, whatever `take`
-- asked, which the answer still echoes: a client must page by `total`
-- and what it got.
local function handle_search(method, body, headers, fault)
  if method ~= "POST" then return fail(405, "Method not allowed") end
  local args = ngx.req.get_uri_args()
  local take = count_arg(args.take, "100", 1)
  if not take then return fail(400, "take must be an integer >= 1") end
  local skip = count_arg(args.skip, "0", 0)
  if not skip then return fail(400, "skip must be an integer >= 0") end

  if fault and fault.status and not fault.apply then return status_fault(fault) end

  if body and body ~= "" and not is_json(headers) then
    return fail(400, "Content-Type must be application/json")
  end
  local f, why = parse_filter(body)
  if not f then return fail(400, why) end
  local s = snapshot()
  local list = search(f, s)
  local buf = { format('{"success":true,"payload":{"take":%s,"skip":%s,"mode":"%s","order":{"%s":"%s"},"total":%d,"data":[',
    take, skip, f.mode, f.order.field, f.order.dir, #list) }
  local first = tonumber(skip) + 1
  -- a page_cap fault: this one page is capped lower (a server behind a
  -- balancer whose nodes cap pages differently)
  local cap = fault and tonumber(fault.page_cap) or config.max_page or 100
  local last = min(#list, first - 1 + min(tonumber(take), cap))
  for k = first, last do
    local i = list[k]
    add_lease(buf, i, s.conn[i], s.modified[i], s.app[i])
  end
  buf[#buf + 1] = "]}}"
  return finish(concat(buf), fault)
end

M.handle_search = handle_search

return M
