-- The names of the account's SIP connections and control apps, kept a
-- short while in a file for completion (`opentact names`): written by the
-- commands that read the lists (connections, apps, names), per profile,
-- for one URL. Never a token.

local core = require("opentact.core")
local pretty = require("opentact.pretty")
local credentials = require("opentact.cli.credentials")

local ipairs, tonumber, type = ipairs, tonumber, type
local format = string.format

local M = {}

-- Seconds the names are taken as they are.
M.TTL = 600

-- The cache file for the profile of `o`, or nil without a home.
local function path(ctx, o)
  local dir = credentials.user_dir(ctx, "XDG_CACHE_HOME", ".cache")
  if not dir then return nil end
  local profile = o.profile or ctx.getenv("OPENTACT_PROFILE")
  if profile == "" then profile = nil end
  return dir .. "/opentact", "names" .. (profile and "-" .. profile or "")
end

--- What the cache holds for `url`: {connection = {names}, app = {names},
--- at = {connection = when read, app = when read}}, or nil when it holds
--- nothing for it.
function M.read(ctx, o, url)
  local dir, name = path(ctx, o)
  local f = dir and io.open(dir .. "/" .. name, "rb")
  if not f then return nil end
  local cached_url, times = f:read("*l"), f:read("*l") or ""
  -- (times of at most 12 digits: a damaged file is read as none)
  local c_at, a_at = times:match("^(%d%d?%d?%d?%d?%d?%d?%d?%d?%d?%d?%d?) (%d%d?%d?%d?%d?%d?%d?%d?%d?%d?%d?%d?)$")
  if cached_url ~= url or not c_at then
    f:close()
    return nil
  end
  local out = { connection = {}, app = {}, at = { connection = tonumber(c_at), app = tonumber(a_at) } }
  for line in f:lines() do
    local kind, n = line:match("^(%a+)\t(.*)$")
    if kind and out[kind] then out[kind][#out[kind] + 1] = n end
  end
  f:close()
  return out
end

--- Whether the names `kept` (M.read) of both kinds are recent enough.
function M.fresh(kept)
  if not kept then return false end
  local now = os.time()
  for _, kind in ipairs({ "connection", "app" }) do
    local at = kept.at[kind]
    if at == 0 or now - at >= M.TTL or now < at then return false end
  end
  return true
end

--- Whether `name` can be offered to a shell: text that needs no escape
--- on a terminal (no control character, invisible mark or stray byte).
function M.completable(name)
  return type(name) == "string" and name ~= "" and pretty.safe(name) == name
end

--- Keeps the names of `list` (the account's connections, `kind`
--- "connection", or apps) for `url`, beside the other kind's when they are
--- for the same URL. A cache that cannot be written is left as it is.
function M.save(ctx, o, url, kind, list)
  local dir, name = path(ctx, o)
  if not dir then return end
  local now = M.read(ctx, o, url) or { connection = {}, app = {}, at = { connection = 0, app = 0 } }
  now[kind], now.at[kind] = {}, os.time()
  for _, h in ipairs(list) do
    if M.completable(h.name) then now[kind][#now[kind] + 1] = h.name end
  end
  local lines = { url, format("%d %d", now.at.connection, now.at.app) }
  for _, k in ipairs({ "connection", "app" }) do
    for _, n in ipairs(now[k]) do lines[#lines + 1] = k .. "\t" .. n end
  end
  if url:find("[\r\n]") then return end
  -- the folder is made only in a home that is there (HOME=/nonexistent,
  -- as services and tools set it, makes nothing)
  local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
  local home = dir:match("^(.*)/[^/]+/opentact$") or dir
  os.execute(format("umask 077 && [ -d %s ] && mkdir -p %s 2> /dev/null", q(home), q(dir)))
  core.write_private(dir .. "/" .. name, table.concat(lines, "\n") .. "\n")
end

return M
