-- Routes files, what `opentact check --routes` reads and `opentact export
-- --routes` writes: a CSV line per route, NUMBER_OR_LEASE,TARGET[,AUTORENEW]
-- (a header line allowed, a byte order mark and CRLF line ends taken,
-- fields in double quotes). Every problem of a file is named with its
-- line, in one run: a line without a lease, a target no connection or
-- app has (or several have), a lease routed to two targets.

local opentact = require("opentact")
local pretty = require("opentact.pretty")
local common = require("opentact.cli.common")
local input = require("opentact.cli.input")
local args = require("opentact.cli.args")
local credentials = require("opentact.cli.credentials")

local ipairs, tostring, type = ipairs, tostring, type
local format, concat, lower = string.format, table.concat, string.lower

local M = {}

local ON_OFF = { on = true, off = false, yes = true, no = false, ["true"] = true, ["false"] = false }

-- A route's lease as given: a phone number (with the country code `cc`
-- put in front of a local one) or a lease uuid; or nil and why not.
local function lease_key(text, cc)
  local key = input.lease_arg(text, cc)
  if key == nil then return nil, "no lease uuid or phone number in the first field" end
  return type(key) == "string" and lower(key) or key
end

--- The routes of the file at `path` (- for standard input, `stdin`), read
--- a slice at a time: returns take(max), which reads at most `max` more
--- lines and returns nil while lines remain, then the routes {line,
--- given, key (a number, or a lease uuid in lower case), target (the
--- text), autorenew (true, false or nil)} and the problems found (texts
--- naming their lines), or false and why the file cannot be read; or
--- nil and why it cannot be opened. Also returns the problems table,
--- filled as lines are read, close() and whether the file can be read
--- ahead (see input.line_slices).
function M.reader(path, cc, stdin)
  local routes, problems, first = {}, {}, true
  -- (close is why not, when the file cannot be opened)
  local take, close, ahead = input.line_slices(path, stdin, path == "-" and "standard input" or pretty.safe(path),
    function(n, line)
      problems[#problems + 1] = M.line(n, line, first, routes, cc)
      first = false
    end)
  if not take then return nil, close end
  return function(max)
    local more, why = take(max)
    if more then return nil end
    if more == nil then return false, why end
    if #routes == 0 and #problems == 0 then
      problems[1] = "no routes in it (a line per route: NUMBER_OR_LEASE,TARGET[,AUTORENEW])"
    end
    return routes, problems
  end, problems, close, ahead
end

--- The routes of the file at `path`, all read: the routes and the
--- problems found, or nil and why the file cannot be read (see reader).
function M.read(path, cc, stdin)
  local take, err = M.reader(path, cc, stdin)
  if not take then return nil, err end
  local routes, problems = take(1 / 0)
  if not routes then return nil, problems end
  return routes, problems
end

-- Whether a cell names a lease (a phone number or a lease uuid).
local function is_lease(cell, cc)
  return lease_key(cell or "", cc) ~= nil
end

--- Reads line `n` of a routes file (`first`: the first that holds
--- something) into `routes`; returns the problem it has, or nil.
function M.line(n, line, first, routes, cc)
  local cells = input.fields(line)
  local key, why = lease_key(cells[1] or "", cc)
  -- the first line is a header when it names no lease anywhere and its
  -- first cell is a word
  local header = first and not key and (cells[1] or ""):find("%a") and not is_lease(cells[2], cc)
    and not is_lease(cells[3], cc)
  local quotes = line:find('"', 1, true) and select(2, line:gsub('"', "")) or 0
  if quotes % 2 == 1 then
    return format("line %d: a quoted field is not closed (a field cannot span lines): %s", n, common.excerpt(line))
  elseif #cells > 3 then
    return format("line %d: more than 3 fields (NUMBER_OR_LEASE,TARGET,AUTORENEW): %s", n, common.excerpt(line))
  elseif header then
    return nil
  elseif not key then
    return format("line %d: %s: %s", n, why, common.excerpt(line))
  elseif not cells[2] or cells[2] == "" then
    return format("line %d: no target (NUMBER_OR_LEASE,TARGET): %s", n, common.excerpt(line))
  elseif cells[3] and cells[3] ~= "" and ON_OFF[lower(cells[3])] == nil then
    return format("line %d: the autorenew '%s' is not on or off", n, common.excerpt(cells[3]))
  end
  routes[#routes + 1] = { line = n, given = cells[1], key = key, target = cells[2],
    autorenew = cells[3] and ON_OFF[lower(cells[3])] }
  return nil
end

--- Resolves the targets `routes` name (each text once, through
--- client:target: the account's lists are read once) into route.to =
--- {kind, uuid, name}; a lease routed to two targets is a problem. Adds
--- to `problems`; returns the targets named, {kind, uuid, name}, each
--- once; or nil and the error when the lists could not be read (an API
--- failure is no problem of the file).
function M.resolve(client, routes, problems)
  local by_text, lines_of, order = {}, {}, {}
  for _, r in ipairs(routes) do
    if not lines_of[r.target] then
      lines_of[r.target] = {}
      order[#order + 1] = r.target
    end
    local l = lines_of[r.target]
    l[#l + 1] = r.line
  end
  for _, text in ipairs(order) do
    local t, err = client:target(text)
    if t then
      by_text[text] = t
    elseif err.kind ~= "not_found" and err.kind ~= "invalid" then
      return nil, err
    else
      local lines = lines_of[text]
      problems[#problems + 1] = format("line%s %s: %s", #lines > 1 and "s" or "",
        concat(lines, ", ", 1, #lines < 5 and #lines or 5) .. (#lines > 5 and ", ..." or ""), err.message)
    end
  end
  local first, targets, seen = {}, {}, {}
  for _, r in ipairs(routes) do
    local t = by_text[r.target]
    r.to = t
    if t then
      if not seen[t.kind .. t.uuid] then
        seen[t.kind .. t.uuid] = true
        targets[#targets + 1] = t
      end
      local before = first[r.key]
      if not before then
        first[r.key] = r
      elseif before.to and (before.to.uuid ~= t.uuid or before.to.kind ~= t.kind) then
        problems[#problems + 1] = format("line %d: %s is routed to %s here, and on line %d to %s", r.line,
          pretty.safe(r.given), tostring(t), before.line, tostring(before.to))
      end
    end
  end
  return targets
end

--- The holder of `lease` as a target: {kind, uuid}, or nil; with
--- `field`, the holder through that field only.
function M.holder(lease, field)
  local h = opentact.holder(lease, field)
  return h and { kind = h.kind, uuid = lower(h.uuid), name = h.name } or nil
end

--- Every holder of `lease` (a connection and an app may both hold one),
--- its app first.
function M.holders(lease)
  local out = {}
  for _, field in ipairs({ "sip_control_app", "sip_connection" }) do
    local h = M.holder(lease, field)
    if h then out[#out + 1] = h end
  end
  return out
end

--- A name that reads as a uuid or as a prefixed target, so that a file
--- names it by its uuid.
function M.reads_otherwise(name)
  return opentact.is_uuid(name) or name:find("^app:") ~= nil or name:find("^connection:") ~= nil
end

--- The lease of each route's key (a number, or a lower-case uuid) among
--- `leases`: key -> lease, for the keys `routes` name; and whether some
--- route names its lease by number, and some by uuid.
function M.leases_of(leases, routes)
  local named, by_number, by_uuid = {}, false, false
  for _, r in ipairs(routes) do
    named[r.key] = true
    if type(r.key) == "number" then by_number = true else by_uuid = true end
  end
  local out = {}
  for _, l in ipairs(leases) do
    if by_uuid and type(l.uuid) == "string" then
      local u = lower(l.uuid)
      if named[u] then out[u] = l end
    end
    local tn = by_number and type(l.tn) == "table" and l.tn.tn
    if type(tn) == "number" and named[tn] then out[tn] = l end
  end
  return out, by_number, by_uuid
end

--- plan (and sync) --routes FILE: the routes file read (every problem of
--- it named, exit 2), then one plan over every target it names (`note`:
--- the words it was made from). Returns what input.plan does.
function M.plan(ctx, o, note)
  local usage_error = common.usage_error
  if #o.positional ~= 1 then
    return nil, usage_error(ctx, o.positional[1] .. " --routes takes no connection: the file names the targets")
  end
  if o.numbers_file or o.leases_file or o.all_leases then
    return nil, usage_error(ctx, "give --routes FILE, or a connection and its leases, not both")
  end
  local routes, problems = M.read(o.routes, o.country_code, ctx.stdin)
  if not routes then return nil, usage_error(ctx, problems) end
  local name = o.routes == "-" and "standard input" or pretty.safe(o.routes)
  local function problems_found(list)
    return nil, usage_error(ctx, common.problem_list(list, "problems in " .. name) .. "\nnothing was changed")
  end
  if #problems > 0 then return problems_found(problems) end
  local batch_size, concurrency, opt_err = args.sizes(o)
  if not batch_size then return nil, usage_error(ctx, opt_err) end
  local client, why = credentials.client_for(ctx, o)
  if not client then return nil, common.no_client(ctx, why) end
  local list = {}
  for i, r in ipairs(routes) do
    list[i] = { number = type(r.key) == "number" and r.key or nil, lease = type(r.key) == "string" and r.key or nil,
      target = r.target, autorenew = r.autorenew, line = r.line }
  end
  local made, err = client:plan_routes(list, { exact = o.exact or false, move = o.move or false,
    concurrency = concurrency, note = note, autorenew = o.autorenew_set })
  if not made then
    client:close()
    if err.problems then return problems_found(err.problems) end
    return nil, common.fail(ctx, err)
  end
  return client, made, nil, batch_size, concurrency
end

M.ON_OFF = ON_OFF

return M
