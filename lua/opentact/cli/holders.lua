-- What `opentact connections` and `opentact apps` share: the account's
-- SIP connections or control apps in every format, with --count the
-- leases each holds (one list each, several at once, a progress line on a
-- terminal), and the names kept for completion (opentact.cli.namecache).

local pretty = require("opentact.pretty")
local words = require("opentact.cli.options")
local args = require("opentact.cli.args")
local common = require("opentact.cli.common")
local credentials = require("opentact.cli.credentials")
local output = require("opentact.cli.output")
local namecache = require("opentact.cli.namecache")

local type, ipairs, pairs, tostring = type, ipairs, pairs, tostring
local format = string.format

local M = {}

local WHAT = { connection = "SIP connection", app = "SIP control app" }

-- The columns of csv, tsv and jsonl (with --count, leases after them).
local COLUMNS = { "uuid", "name", "is_active" }
M.COLUMNS = COLUMNS

-- --concurrency for --count: 8 unless given.
local function concurrency(o) return args.concurrency(o, 8) end

-- The leases each of `list` holds, as counts by index (nil: its list
-- failed), and the first failure; several lists at once.
local function count(ctx, client, kind, list, limit)
  local targets = {}
  for i, h in ipairs(list) do targets[i] = { kind = kind, uuid = h.uuid } end
  local bar = ctx.is_terminal and #targets > 0 and output.progress_bar(ctx, WHAT[kind]) or nil
  local results = client:list_many(targets, { concurrency = limit, on_progress = bar })
  local counts, failures = {}, {}
  for i, r in ipairs(results) do
    if r.leases then
      counts[i] = #r.leases
    else
      failures[#failures + 1] = format("%s: %s", pretty.holder(kind, tostring(list[i].uuid), list[i].name),
        tostring(r.err))
    end
  end
  return counts, failures
end

-- What the help of each says that the other does not.
local HELP = {
  connection = {
    name = "connections", what = "connection", plural = "SIP connections",
    text = "List the account's SIP connections: uuid, name and whether active. A connection's name is what "
      .. "CONN may be in the other commands (app:NAME names a control app; see 'opentact apps'). Names are not "
      .. "unique: a name two connections have is refused there, and their uuids tell them apart.",
    example = "opentact connections --count --format csv > trunks.csv",
  },
  app = {
    name = "apps", what = "control app", plural = "SIP control apps",
    text = "List the account's SIP control apps (programmable call flows): uuid, name and whether active. In "
      .. "the other commands, app:NAME or app:UUID makes a control app CONN: a lease attached to it goes to its "
      .. "call flow instead of a SIP connection.",
    example = "opentact apps --count --json",
  },
}

--- The help entry of `opentact connections` (`kind` "connection") or
--- `opentact apps` ("app").
function M.help(kind)
  local h = HELP[kind]
  return {
    name = h.name, args = {},
    summary = "list the account's " .. h.plural .. " (names, uuids), with --count the leases each holds",
    text = { h.text .. " With --count, each one's leases are counted: one list per " .. h.what .. ", "
      .. "--concurrency at once (default 8), with a progress line on a terminal." },
    options = { "--count", "--concurrency", "--format", "--json", "--all", "--url", "--profile", "--timeout", "--deadline",
      "--retries", "--verbose" },
    output = {
      { "table", "a line per " .. h.what .. ": uuid, name, state (active or inactive), with --count leases" },
      { "json", "the API's " .. h.plural .. ", every field, as an array (with --count, each with leases)" },
      { "jsonl", "one " .. h.what .. " object per line" },
      { "csv", "a header line, then a line per " .. h.what .. ": uuid, name, is_active (with --count, leases)" },
      { "tsv", words.TSV_TEXT },
    },
    exit = {
      { 0, "the " .. h.plural .. " were printed (and counted)" },
      { 1, words.API_EXIT .. "; with --count, a " .. h.what .. " whose leases could not be listed (named on "
        .. "standard error, its count empty)" },
      { 2, words.USAGE_EXIT },
      { 130, words.INTERRUPTED_EXIT },
    },
    examples = { "opentact " .. h.name, h.example },
  }
end

--- What the command does: `kind` "connection" or "app".
function M.show(ctx, o, kind)
  if #o.positional ~= 1 then return common.usage_error(ctx, o.positional[1] .. " takes no argument") end
  local limit, why_limit = concurrency(o)
  if not limit then return common.usage_error(ctx, why_limit) end
  local client, why = credentials.client_for(ctx, o)
  if not client then return common.no_client(ctx, why) end
  local list, err
  if kind == "app" then list, err = client:apps() else list, err = client:connections() end
  if not list then
    client:close()
    return common.fail(ctx, err)
  end
  namecache.save(ctx, o, client:base_url(), kind, list)
  local counts, failures = nil, {}
  if o.count then counts, failures = count(ctx, client, kind, list, limit) end
  client:close()
  local fmt = o.format
  if fmt == "json" or fmt == "jsonl" then
    local out = {}
    for i, h in ipairs(list) do
      local obj = {}
      for k, v in pairs(h) do obj[k] = v end
      if counts then obj.leases = counts[i] or output.NULL end
      out[i] = obj
    end
    if fmt == "json" then
      ctx.stdout:write(output.json(out), "\n")
    else
      for _, obj in ipairs(out) do ctx.stdout:write(output.json(obj), "\n") end
    end
  else
    local columns, rows = { "uuid", "name", "state" }, {}
    if fmt ~= "table" then columns = { "uuid", "name", "is_active" } end
    if counts then columns[#columns + 1] = "leases" end
    for i, h in ipairs(list) do
      local active = h.is_active
      if fmt == "table" then active = active == true and "active" or active == false and "inactive" or "-" end
      rows[i] = { h.uuid, type(h.name) == "string" and h.name or nil, active }
      if counts then rows[i][4] = counts[i] end
    end
    if fmt == "table" then
      for _, r in ipairs(rows) do
        for c = 1, #columns do r[c] = r[c] == nil and "-" or pretty.safe(tostring(r[c])) end
      end
      ctx.stdout:write(output.table(ctx, o, pretty.plural(#list, WHAT[kind]), columns, rows), "\n")
    else
      output.write_rows(ctx, fmt, columns, rows)
    end
  end
  for _, f in ipairs(failures) do ctx.stderr:write("opentact: ", f, "\n") end
  return #failures > 0 and 1 or 0
end

return M
