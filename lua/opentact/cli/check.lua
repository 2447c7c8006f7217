-- opentact check --routes FILE: whether the account's routing is what the
-- routes file says, for a cron job or CI: exit 0 when it is, 1 with every
-- difference otherwise. Reads only: the account's leases once (search_all,
-- every holder in one pass) and the lists of connections and apps once.

local pretty = require("opentact.pretty")
local words = require("opentact.cli.options")
local common = require("opentact.cli.common")
local credentials = require("opentact.cli.credentials")
local output = require("opentact.cli.output")
local routes_file = require("opentact.cli.routes")
local args = require("opentact.cli.args")

local ipairs, tostring, type = ipairs, tostring, type
local format = string.format

local M = {}

local COLUMNS = { "line", "number", "uuid", "now", "routed_to", "difference" }
-- Lines of the routes file read each time a page of the account comes in.
local SLICE = 500
-- What stops the account's read when the file has a problem.
local STOP = {}

M.help = {
  name = "check", args = { "--routes", "FILE" }, required = { "--routes" },
  summary = "exit 0 when the account's routing is what a routes file says, 1 with each difference (reads only)",
  text = { "Compare the account with a routes file (--routes FILE: a CSV line per route, NUMBER_OR_LEASE,TARGET"
    .. "[,AUTORENEW]): each lease must be held by its TARGET (a connection's name or uuid, app:NAME or app:UUID), "
    .. "with the autorenew the line gives, if any; with --exact, the targets the file names must hold nothing "
    .. "else. Every problem of the file is named with its line first (a line without a lease, a target no "
    .. "connection or app has, or several have, a lease routed to two targets): exit 2, nothing compared. "
    .. "It changes nothing: it reads the account's leases once (--concurrency pages at once, default 8), and "
    .. "the lists of connections and apps once; a file on disk is read while the account's pages come in, "
    .. "and a problem found in it stops that read." },
  options = { "--routes", "--exact", "--concurrency", "--country-code", "--format", "--json", "--url", "--profile",
    "--timeout", "--deadline",
    "--retries", "--verbose" },
  output = {
    { "table", "'the account matches FILE' or a line per difference: the number, where it is, where the file "
      .. "routes it, the line" },
    { "json", "{ok, routes, differences: [{line, number, uuid, now, routed_to, difference}]}" },
    { "jsonl", "one difference per line" },
    { "csv", "a header line, then a line per difference: " .. table.concat(COLUMNS, ", ") },
    { "tsv", words.TSV_TEXT },
  },
  exit = {
    { 0, "the account matches the file" },
    { 1, "it does not (each difference printed), or the API refused or failed" },
    { 2, words.USAGE_EXIT .. ", or a problem in the file (each named with its line)" },
    { 130, words.INTERRUPTED_EXIT },
  },
  examples = { "opentact check --routes routes.csv", "opentact check --routes routes.csv --exact --format csv" },
}

-- The uuid of a lease's holder through `field`, as the server wrote it,
-- or nil.
local function holder_uuid(lease, field)
  local h = lease[field]
  if type(h) == "table" then h = h.uuid end
  if type(h) == "string" and h ~= "" then return h end
  return nil
end

-- Whether uuid `h` (as the server wrote it, or nil) is `u` (lower case).
local function same_uuid(h, u)
  return h == u or h ~= nil and h:lower() == u
end

local function where(h)
  if not h then return "on no connection or app" end
  return "on " .. pretty.holder(h.kind, h.uuid, h.name)
end

function M.run(ctx, o)
  if type(o.routes) ~= "string" then return common.usage_error(ctx, "check needs --routes FILE") end
  if #o.positional ~= 1 then return common.usage_error(ctx, "check takes no argument but --routes FILE") end
  -- (the account's pages, --concurrency at once: 8 unless given)
  local concurrency, cerr = args.concurrency(o, 8)
  if not concurrency then return common.usage_error(ctx, cerr) end
  -- The file is read while the account's pages are on the wire (reading
  -- the account waits on the network most of its time): a slice of lines
  -- each time a page comes in, then the targets it names are resolved (a
  -- file read by the first page has its targets resolved then, before the
  -- other pages go out). A problem found stops the account's read; the
  -- rest of the file is read all the same, and every problem of it is
  -- named (exit 2, before any failure of the account's read, as if the
  -- file had been read first). A file with a problem in its first lines, or one that cannot
  -- be read ahead (standard input, a pipe: its writer may keep it
  -- waiting while pages are on the wire), is read whole first.
  local take, problems, close, ahead = routes_file.reader(o.routes, o.country_code, ctx.stdin)
  if not take then return common.usage_error(ctx, problems) end
  local routes, unreadable
  -- reads a slice of the file: true while lines remain
  local function read(max)
    local r, why = take(max)
    if r == false then unreadable = why elseif r then routes = r end
    return r == nil
  end
  local name = o.routes == "-" and "standard input" or pretty.safe(o.routes)
  local function problems_found()
    return common.usage_error(ctx, common.problem_list(problems, "problems in " .. name) .. "\nnothing was compared")
  end
  if read(SLICE) and (#problems > 0 or not ahead) then
    while read(1 / 0) do end
  end
  if unreadable then return common.usage_error(ctx, unreadable) end
  if routes and #problems > 0 and #routes == 0 then return problems_found() end
  local client, why = credentials.client_for(ctx, o)
  if not client then
    close()
    return common.no_client(ctx, why)
  end
  local targets, failure
  -- the next piece of the work the account's read leaves time for: a
  -- slice of the file, then its targets; true once nothing is left
  local function work()
    if not (routes or unreadable) then
      read(SLICE)
      return false
    end
    if not (unreadable or targets or failure) then targets, failure = routes_file.resolve(client, routes, problems) end
    return true
  end
  local done, ok, all, err = false, true, nil, nil
  local function run()
    if routes and #problems > 0 then
      -- (a file read whole for its problems: its targets too, and the
      -- account is not read)
      done = work()
      return
    end
    ok, all, err = pcall(client.search_all, client, nil, { concurrency = concurrency, on_progress = function()
      done = done or work()
      if unreadable or failure or #problems > 0 then error(STOP, 0) end
    end })
    if not ok and all ~= STOP then error(all, 0) end
    if ok and not all then
      -- the account's read failed: the rest of the file is read, and
      -- every problem of it named, but nothing more is asked
      if not (routes or unreadable) then
        while read(1 / 0) do end
      end
      return
    end
    -- (the rest of the file, and its targets, once the account is read or
    -- a problem stopped its read: every problem is named)
    while not done do done = work() end
  end
  -- (Ctrl-C, or an error raised, goes through as it came, the file and
  -- the client closed)
  local fine, raised = pcall(run)
  close()
  client:close()
  if not fine then error(raised, 0) end
  if unreadable then return common.usage_error(ctx, unreadable) end
  if failure then return common.fail(ctx, failure) end
  if #problems > 0 then return problems_found() end
  if not all then return common.fail(ctx, err) end
  local lease_of, by_number, by_uuid = routes_file.leases_of(all, routes)
  -- (lines that name one lease disagree on its target only when one
  -- names its number and the other its uuid: the same number or uuid
  -- twice agrees already; on its autorenew, only when a line gives one)
  local mixed, exact = by_number and by_uuid, o.exact
  if not mixed then
    for _, r in ipairs(routes) do
      if r.autorenew ~= nil then
        mixed = true
        break
      end
    end
  end
  local diffs, routed, by_lease = {}, {}, {}
  local function differ(r, lease, now, text)
    diffs[#diffs + 1] = { line = r and r.line, number = lease and type(lease.tn) == "table" and lease.tn.tn
      or (r and type(r.key) == "number" and r.key or nil), uuid = lease and lease.uuid or (r and type(r.key) == "string"
      and r.key or nil), now = now and where(now) or (lease and where(nil) or "not in the account"),
      routed_to = r and tostring(r.to) or nil, difference = text }
  end
  for _, r in ipairs(routes) do
    local lease = lease_of[r.key]
    local before = mixed and lease and by_lease[lease]
    -- two lines that name one lease (its number on one, its uuid on the
    -- other) must agree on its target and its autorenew
    if before and (before.to.uuid ~= r.to.uuid or before.to.kind ~= r.to.kind) then
      problems[#problems + 1] = format("line %d: %s is lease %s, which line %d routes to %s, and this line to %s",
        r.line, pretty.safe(r.given), lease.uuid, before.line, tostring(before.to), tostring(r.to))
    elseif before and before.autorenew ~= nil and r.autorenew ~= nil and before.autorenew ~= r.autorenew then
      problems[#problems + 1] = format("line %d: %s is lease %s, whose autorenew line %d says otherwise", r.line,
        pretty.safe(r.given), lease.uuid, before.line)
    elseif not lease then
      differ(r, nil, nil, "not in the account")
    else
      if mixed then by_lease[lease] = before or r end
      if exact then routed[lease] = r.to end
      -- held by its target, and by nothing else (a connection and an app
      -- may both hold a lease)
      local to = r.to
      local mine, other = "sip_control_app", "sip_connection"
      if to.kind == "connection" then mine, other = other, mine end
      if not same_uuid(holder_uuid(lease, mine), to.uuid) or holder_uuid(lease, other) then
        local hs = routes_file.holders(lease)
        differ(r, lease, hs[1], #hs > 1 and "held by a connection and an app" or "held elsewhere")
      elseif r.autorenew ~= nil and lease.autorenew ~= r.autorenew then
        differ(r, lease, to, "autorenew " .. (lease.autorenew and "on" or "off") .. ", routed "
          .. (r.autorenew and "on" or "off"))
      end
    end
  end
  if #problems > 0 then return problems_found() end
  if exact then
    local named = {}
    for _, t in ipairs(targets) do named[t.kind .. t.uuid] = t end
    for _, lease in ipairs(all) do
      for _, h in ipairs(routes_file.holders(lease)) do
        local to = routed[lease]
        if named[h.kind .. h.uuid] and not (to and to.kind == h.kind and to.uuid == h.uuid) then
          differ(nil, lease, h, "not routed there (--exact)")
        end
      end
    end
  end
  local fmt = o.format
  if fmt == "json" then
    ctx.stdout:write(output.json({ ok = #diffs == 0, routes = #routes, differences = diffs }), "\n")
  elseif fmt == "table" then
    if #diffs == 0 then
      ctx.stdout:write(format("the account matches %s (%s)\n", name, pretty.plural(#routes, "route")))
    else
      ctx.stdout:write(format("%s from %s:\n", pretty.plural(#diffs, "difference"), name))
      for _, d in ipairs(diffs) do
        local quiet = d.difference == "held elsewhere" or d.difference == d.now
        ctx.stdout:write(format("  %-15s %s%s%s%s\n", d.number and output.number_text(d.number)
          or pretty.safe(tostring(d.uuid)), d.now, d.routed_to and ", routed to " .. d.routed_to or "",
          quiet and "" or " (" .. d.difference .. ")", d.line and format(" (line %d)", d.line) or ""))
      end
    end
  else
    local rows = {}
    for i, d in ipairs(diffs) do rows[i] = { d.line, d.number, d.uuid, d.now, d.routed_to, d.difference } end
    output.write_rows(ctx, fmt, COLUMNS, rows)
  end
  return #diffs == 0 and 0 or 1
end

return M
