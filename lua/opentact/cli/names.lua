-- opentact names: the names CONN may be, one a line, for completion: from
-- the names the command line keeps a short while (opentact.cli.namecache),
-- else read with a bounded wait, else nothing.

local opentact = require("opentact")
local words = require("opentact.cli.options")
local common = require("opentact.cli.common")
local credentials = require("opentact.cli.credentials")
local namecache = require("opentact.cli.namecache")

local ipairs = ipairs

local M = {}

-- Seconds a read may take when nothing is kept: completion must not hang
-- a shell.
local WAIT = 2

M.help = {
  name = "names", args = {},
  summary = "print the names of the account's connections and control apps (app:NAME), one a line, for "
    .. "completion",
  text = { "Print what CONN may be by name: each SIP connection's name, then each control app's as app:NAME, "
    .. "one a line (connection:NAME for a connection whose name looks like a uuid or starts with app: or "
    .. "connection:; "
    .. "a name with a control character is left out). The names are kept for " .. ("%d"):format(namecache.TTL / 60)
    .. " minutes after 'opentact connections', 'opentact apps' or this command read them; when none are kept, "
    .. "they are read with one attempt of at most " .. WAIT .. " seconds (--timeout), and on failure nothing "
    .. "is printed. The completion scripts call it, so that a name completes without a wait that could hang "
    .. "the shell." },
  options = { "--url", "--profile", "--timeout", "--deadline", "--verbose" },
  exit = {
    { 0, "the names were printed" },
    { 1, "they could not be read (nothing is printed)" },
    { 2, words.USAGE_EXIT },
  },
  examples = { "opentact names" },
}

function M.run(ctx, o)
  if #o.positional ~= 1 then return common.usage_error(ctx, "names takes no argument") end
  -- one attempt, bounded, unless --timeout says otherwise
  o.timeout = o.timeout or WAIT
  o.retries = 0
  local client = credentials.client_for(ctx, o)
  if not client then return 1 end
  local url = client:base_url()
  local kept = namecache.read(ctx, o, url)
  if not namecache.fresh(kept) then
    local conns = client:connections()
    local apps = conns and client:apps()
    client:close()
    if not (conns and apps) then return 1 end
    namecache.save(ctx, o, url, "connection", conns)
    namecache.save(ctx, o, url, "app", apps)
    kept = namecache.read(ctx, o, url)
    if not kept then
      kept = { connection = {}, app = {} }
      for _, h in ipairs(conns) do
        if namecache.completable(h.name) then kept.connection[#kept.connection + 1] = h.name end
      end
      for _, h in ipairs(apps) do
        if namecache.completable(h.name) then kept.app[#kept.app + 1] = h.name end
      end
    end
  else
    client:close()
  end
  -- each once: names need not be unique
  local out, seen = {}, {}
  local function put(n)
    if not seen[n] then
      seen[n] = true
      out[#out + 1] = n
    end
  end
  -- a connection's name that would be read as something else (app:X,
  -- connection:X, a uuid) is offered with its kind
  for _, n in ipairs(kept.connection) do
    if n:find("^app:") or n:find("^connection:") or opentact.is_uuid(n) then put("connection:" .. n) else put(n) end
  end
  for _, n in ipairs(kept.app) do put("app:" .. n) end
  if #out > 0 then ctx.stdout:write(table.concat(out, "\n"), "\n") end
  return 0
end

return M
