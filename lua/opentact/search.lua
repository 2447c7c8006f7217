-- Lease search: one page (client:search), and every matching lease
-- (client:search_all), several pages at once.
--
-- search_all never trusts the page size it asked for: the first page says
-- how many leases match (`total`) and how many a page really holds; the
-- other pages then go out together, and a page that comes back shorter
-- than expected is followed by one for the rest of its range. A lease
-- seen twice (the data shifted between pages) is kept once. A pass whose
-- pages disagree on `total`, or that ends with another number of distinct
-- leases than `total`, saw the account change while paging: the search
-- runs again, up to PASSES times, and then fails rather than return a
-- list that may lack leases, saying what it saw. A page that brings only
-- leases seen on earlier pages is noted: when every pass had one, the
-- server is not paging (it ignores skip), and the error says so.
--
-- Leases are told apart by their uuid: a page whose lease has none is a
-- protocol error (the "page" decoding refuses it), named by its skip.

local core = require("opentact.core")
local engine = require("opentact.engine")
local errors = require("opentact.errors")
local pretty = require("opentact.pretty")
local raise = require("opentact.options").raise

local pcall, setmetatable = pcall, setmetatable
local min = math.min
local lower, format, concat, sort = string.lower, string.format, table.concat, table.sort
local request_search = core.request_search

local M = {}

-- Passes over the whole search before giving up on a changing account.
local PASSES = 3

--- A page request, or nil, err (a value of the filter is invalid). Misuse
--- (an unknown field, a wrong type) raises in `fname`'s name, at the line
--- that called the public function.
function M.request(filter, take, skip, fname)
  local ok, path, body = pcall(request_search, filter, take, skip)
  if not ok then
    raise(errors.in_name_of(path, fname or "search"))
  end
  if not path then return nil, body end
  return engine.request("POST", path, body, "page")
end

-- A page's failure, its message naming the page when the answer was
-- wrong (a transport error's path already does).
local function page_failed(err, skip)
  if err and err.kind == "protocol" and err.message then
    err.message = format("the page at skip=%d: %s", skip, err.message)
  end
  return err
end

-- What a page of leases all seen before says: "the page at skip=S repeated
-- leases already seen at skip=A" (the skips of the pages that brought them).
local function repeat_note(skip, data, seen)
  local at, list = {}, {}
  for i = 1, #data do
    local first = seen[lower(data[i].uuid)]
    if not at[first] then at[first] = true list[#list + 1] = first end
  end
  sort(list)
  for k = 1, #list do list[k] = "skip=" .. list[k] end
  if #list > 3 then list = { list[1], list[2], list[3], "..." } end
  return format("the page at skip=%d repeated leases already seen at %s", skip, concat(list, ", "))
end

-- One pass over the search: every page, several at once. Returns the
-- leases (each once), whether the pass was consistent, the total the
-- first page gave, and the note of the first page (by skip) that brought
-- no new lease, if any; or nil, err. `page`: the first page, when it is had.
local function pass(eng, filter, opts, page)
  local take = opts.page_size
  if not page then
    local err
    page, err = eng:call(M.request(filter, take, 0))
    if not page then return nil, page_failed(err, 0) end
  end
  local total, per_page = page.total, #page.data
  local out, seen = setmetatable({}, pretty.Leases), {}
  local consistent = true
  -- seen: lease uuid -> the skip of the page that brought it first
  local function keep(data, skip)
    for i = 1, #data do
      local lease = data[i]
      local key = lower(lease.uuid)
      if not seen[key] then
        seen[key] = skip
        out[#out + 1] = lease
      end
    end
  end
  local repeated, repeated_skip
  keep(page.data, 0)
  local on_progress = opts.on_progress
  -- an error it raises stops the search, as an interrupt does
  local function progress()
    if on_progress then on_progress(#out, total) end
  end
  progress()
  if per_page == 0 or per_page >= total then
    -- all of it, or nothing more to be had: an empty first page of a
    -- non-empty search is a changed account (or a server that pages wrong)
    return out, total == #out, total
  end
  local function page_for(skip, want)
    local req = M.request(filter, take, skip)
    req.skip, req.want = skip, want
    return req
  end
  -- pages are made as slots free, never all at once: a `total` that lies
  -- costs requests, not memory; past an empty page nothing more is asked
  local next_skip, stop = per_page, total
  local function next_page()
    if next_skip >= stop then return nil end
    local req = page_for(next_skip, min(per_page, total - next_skip))
    next_skip = next_skip + per_page
    return req
  end
  -- pages in a row that brought no lease not seen before: past a few
  -- rounds of them the server is not paging (it ignores skip, or its
  -- total is far off), and the pass stops rather than run on
  local barren, BARREN_MAX = 0, 2 * opts.concurrency + 2
  -- twice the concurrency is queued: a slot that frees gets its next page
  -- on the wire before the page that freed it is decoded; what is queued
  -- past a lowered `stop` is taken back unsent
  local reqs = {}
  for k = 1, 2 * opts.concurrency do reqs[k] = next_page() end
  local failure
  local function past_stop(queued) return queued.skip >= stop end
  eng:run(reqs, opts.concurrency, function(req, add)
    if failure then return end
    local got = req.leases
    if not got then
      failure = page_failed(req.err, req.skip)
      stop = 0
      engine.unqueue(req.run, past_stop)
      return
    end
    local stop_was = stop
    if got.total ~= total then consistent = false end
    local data = got.data
    local before = #out
    local n = #data
    if n > 0 and not (repeated_skip and repeated_skip < req.skip) then
      -- noted before keep() marks this page's own leases as seen
      local new = false
      for i = 1, n do
        if not seen[lower(data[i].uuid)] then new = true break end
      end
      if not new then repeated, repeated_skip = repeat_note(req.skip, data, seen), req.skip end
    end
    keep(data, req.skip)
    barren = #out > before and 0 or barren + 1
    if barren >= BARREN_MAX then
      consistent = false
      stop = 0 -- nothing more is asked
    end
    if n == 0 then
      consistent = false -- the range emptied under us
      if req.skip < stop then stop = req.skip end
    elseif n < req.want then
      -- a shorter page than the first (the server caps some pages lower):
      -- the rest of the range comes next
      add(page_for(req.skip + n, req.want - n))
    end
    if stop < stop_was then engine.unqueue(req.run, past_stop) end
    progress()
    local more = next_page()
    if more then add(more) end
  end)
  if failure then return nil, failure end
  return out, consistent and #out == total, total, repeated
end

--- Every lease the filter matches, each once, or nil, err. `first`: the
--- search's first page (skip 0, take opts.page_size), when the caller has it.
function M.all(eng, filter, opts, first)
  local totals, repeats = {}, 0
  local repeated
  for _ = 1, PASSES do
    local leases, consistent, total, note = pass(eng, filter, opts, first)
    first = nil
    if not leases then return nil, consistent end
    if consistent then return leases end
    totals[#totals + 1] = format("%d matches, %d distinct leases read", total, #leases)
    if note then repeats, repeated = repeats + 1, repeated or note end
  end
  local err
  if repeats == PASSES then
    -- every pass had a page of nothing new: not an account that changes
    err = errors.new("protocol", repeated .. ": the server seems to ignore skip (" .. PASSES .. " passes: "
      .. concat(totals, "; ") .. ")", true)
  else
    err = errors.new("protocol", "the search results changed while they were paged through, "
      .. PASSES .. " times (" .. concat(totals, "; ") .. "): leases were added or removed meanwhile; "
      .. "search again when the account is quiet", true)
  end
  return nil, errors.finish(err, "POST", "/lease/tn/search", PASSES)
end

return M
