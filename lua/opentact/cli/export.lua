-- opentact export --routes: the account's routing as a routes file (what
-- `opentact check --routes` reads), so that one can start from what is
-- there: a line per lease a connection or a control app holds.

local core = require("opentact.core")
local pretty = require("opentact.pretty")
local opentact = require("opentact")
local words = require("opentact.cli.options")
local common = require("opentact.cli.common")
local credentials = require("opentact.cli.credentials")
local routes_file = require("opentact.cli.routes")
local args = require("opentact.cli.args")

local ipairs, type, tostring = ipairs, type, tostring
local format, concat, sort = string.format, table.concat, table.sort

local M = {}

M.help = {
  name = "export", args = { "--routes" }, required = { "--routes" },
  summary = "write the account's routing as a routes file (number,target,autorenew), for check --routes",
  text = { "Write where every lease of the account goes, as a routes file: a header line, then number,target,"
    .. "autorenew for each lease a SIP connection or a SIP control app holds, in the order of the numbers. "
    .. "TARGET is a connection's name, or app:NAME for a control app, when no other connection or app has the "
    .. "name (and it reads as a name); else its uuid (app:UUID). AUTORENEW is on or off. It reads the account's "
    .. "leases once (--concurrency pages at once, default 8) and the lists of connections and apps once; it "
    .. "changes nothing." },
  options = { "--routes", "--out", "--concurrency", "--url", "--profile", "--timeout", "--deadline", "--retries", "--verbose" },
  exit = {
    { 0, "the routes were written" },
    { 1, words.API_EXIT .. ", or --out could not be written" },
    { 2, words.USAGE_EXIT },
    { 130, words.INTERRUPTED_EXIT },
  },
  examples = { "opentact export --routes --out routes.csv", "opentact export --routes > routes.csv" },
}

-- A CSV field: in double quotes when it holds a comma, a quote or blanks
-- at its ends (no formula escape: the file is read back as it is).
local function field(s)
  if s:find('[,"]') or s:find("^%s") or s:find("%s$") then return '"' .. s:gsub('"', '""') .. '"' end
  return s
end

function M.run(ctx, o)
  if o.routes ~= true then return common.usage_error(ctx, "export takes --routes (what to export), with no file") end
  if #o.positional ~= 1 then return common.usage_error(ctx, "export takes no argument") end
  -- (the account's pages, --concurrency at once: 8 unless given)
  local concurrency, cerr = args.concurrency(o, 8)
  if not concurrency then return common.usage_error(ctx, cerr) end
  local client, why = credentials.client_for(ctx, o)
  if not client then return common.no_client(ctx, why) end
  local conns, err = client:connections()
  local apps, all
  if conns then apps, err = client:apps() end
  if apps then all, err = client:search_all(nil, { concurrency = concurrency }) end
  client:close()
  if not all then return common.fail(ctx, err) end
  -- a name is written when it names one holder only, and reads as a name
  local count = {}
  for _, list in ipairs({ conns, apps }) do
    for _, h in ipairs(list) do
      if type(h.name) == "string" then count[h.name] = (count[h.name] or 0) + 1 end
    end
  end
  local names = { connection = {}, app = {} }
  local function usable(name, kind)
    if type(name) ~= "string" or name == "" or count[name] ~= 1 or pretty.safe(name) ~= name then return false end
    -- (a connection's name that reads as a prefixed target, or any name
    -- that reads as a uuid, is written as the uuid)
    if opentact.is_uuid(name) or kind == "connection" and routes_file.reads_otherwise(name) then return false end
    return true
  end
  for _, h in ipairs(conns) do
    if type(h.uuid) == "string" then names.connection[h.uuid:lower()] = usable(h.name, "connection") and h.name end
  end
  for _, h in ipairs(apps) do
    if type(h.uuid) == "string" then names.app[h.uuid:lower()] = usable(h.name, "app") and h.name end
  end
  local rows = {}
  for _, lease in ipairs(all) do
    local hs = routes_file.holders(lease)
    local h = hs[1] -- its app first, as opentact.holder says
    if #hs > 1 then
      -- a file routes a lease to one target: its app is written
      ctx.stderr:write(format("opentact: lease %s is held by a SIP connection and a SIP control app; written with "
        .. "its app\n", pretty.safe(tostring(lease.uuid))))
    end
    if h then
      local name = names[h.kind][h.uuid]
      local target = (h.kind == "app" and "app:" or "") .. (name or h.uuid)
      local tn = type(lease.tn) == "table" and lease.tn.tn or nil
      -- (a number with its +: read back under --country-code, it is what it was)
      rows[#rows + 1] = { tn = tn, line = concat({ type(tn) == "number" and format("+%.0f", tn) or tostring(lease.uuid),
        field(target), lease.autorenew == true and "on" or lease.autorenew == false and "off" or "" }, ",") }
    end
  end
  sort(rows, function(a, b)
    if type(a.tn) == "number" and type(b.tn) == "number" then return a.tn < b.tn end
    return type(a.tn) == "number"
  end)
  local lines = { "number,target,autorenew" }
  for i, r in ipairs(rows) do lines[i + 1] = r.line end
  local text = concat(lines, "\n") .. "\n"
  if o.out then
    local ok, werr = core.write_private(o.out, text)
    if not ok then return common.fail(ctx, common.error("invalid", werr), "opentact: " .. werr, 1) end
    ctx.stderr:write(format("opentact: %s written to %s\n", pretty.plural(#rows, "route"), pretty.safe(o.out)))
  else
    ctx.stdout:write(text)
  end
  return 0
end

return M
