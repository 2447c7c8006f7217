-- Routes as code, timed against the emulator (the harness started it with
-- 20 connections and 20,000 leases). Each run first puts the account in
-- its starting routing, untimed: lease i on connection ((i - 1) % 20) + 1,
-- at 20 ms latency. The routes send leases 21-40, 61-80, ... to the next
-- connection, the others where they are: half of the account must move.
--   plan:   client:plan_routes, then client:apply of that plan (one stale
--           check, every target's batches together, each target read back)
--   hand:   the same requests made by hand with the library: search_all
--           once, then assign_batched per target, one target after another
--   search: one search_all (what check is compared with)
--   check:  `opentact check --routes FILE` (a process, start-up included)
--           of the account routed as the file says (exit 0); DIFFER=1: of
--           the starting routing (exit 1, every difference written)
-- Prints wall seconds. Usage: routes.lua plan|hand|search|check BASE_URL CONCURRENCY OPENTACT_COMMAND
local opentact = require("opentact")
local core = require("opentact.core")
local json = require("opentact.json")
local how, base, concurrency, command = arg[1], arg[2], tonumber(arg[3]), arg[4]

local function admin(path, body)
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write(body)
  f:close()
  local ok = os.execute(("curl -sf -X POST --data-binary @%s %s/__emulator/%s > /dev/null"):format(file, base, path))
  os.remove(file)
  assert(ok == true or ok == 0, "the emulator refused " .. path)
end

-- the starting routing, at no latency; then 20 ms
local client = opentact.new({ token = "emulator-token", base_url = base })
admin("reset", "")
admin("config", '{"latency":0}')
local conns = {}
for i, c in ipairs(assert(client:connections())) do conns[i] = c.uuid end
assert(#conns == 20, "the emulator has " .. #conns .. " connections, not 20")
local leases = assert(client:search_all(nil, { concurrency = 8 }))
table.sort(leases, function(a, b) return a.tn.tn < b.tn.tn end)
assert(#leases == 20000, "the emulator has " .. #leases .. " leases, not 20000")
local map = {}
for i, l in ipairs(leases) do map[l.uuid] = { sip_connection = conns[(i - 1) % 20 + 1] } end
-- (set an hour ago, as a routing is that plans start from: FRESH=1 sets it
-- now, so that apply's stale check finds every lease modified since its
-- plan, more than one page, and reads every target instead)
admin("holders" .. (os.getenv("FRESH") and "" or "?ago=3600"), json.encode(map))
-- (one search: the emulator's cache rebuilt after the change is in no figure)
assert(client:search(nil, { take = 1 }))
admin("config", '{"latency":0.02}')

-- the routes: even leases to the next connection
local routes, lines = {}, { "number,target" }
for i, l in ipairs(leases) do
  -- (lease i is on connection ((i - 1) % 20) + 1: every other round of 20
  -- goes to the next one, so that every connection is named)
  local to = conns[((i - 1) + ((i - 1) // 20) % 2) % 20 + 1]
  routes[i] = { number = l.tn.tn, target = { connection = to } }
  lines[i + 1] = ("+%.0f,%s"):format(l.tn.tn, to)
end

local t0 = core.now()
if how == "plan" then
  local plan = assert(client:plan_routes(routes, { concurrency = concurrency }))
  if os.getenv("PHASES") then io.stderr:write(("plan_s=%.4f\n"):format(core.now() - t0)) end
  assert(#plan.moves == 10000, tostring(plan):sub(1, 600))
  local report = assert(client:apply(plan, { concurrency = concurrency }))
  assert(report.ok and #report.applied.add == 10000, tostring(report))
elseif how == "hand" then
  local all = assert(client:search_all(nil, { concurrency = concurrency }))
  local where, adds = {}, {}
  for _, l in ipairs(all) do where[l.tn.tn] = l end
  for _, r in ipairs(routes) do
    local l = where[r.number]
    local to = r.target.connection
    if opentact.holder(l).uuid ~= to then
      adds[to] = adds[to] or {}
      table.insert(adds[to], l.uuid)
    end
  end
  local n = 0
  for _, c in ipairs(conns) do
    if adds[c] then
      local report = client:assign_batched(c, { add = adds[c] }, { concurrency = concurrency })
      assert(report.ok, tostring(report))
      n = n + #report.applied.add
    end
  end
  assert(n == 10000, n)
elseif how == "search" then
  assert(#assert(client:search_all(nil, { concurrency = concurrency })) == 20000)
else
  -- the account as the routes say (untimed): what a cron job checks
  if not os.getenv("DIFFER") then
    admin("config", '{"latency":0}')
    local moved = {}
    for i, l in ipairs(leases) do
      local to = routes[i].target.connection
      if to ~= conns[(i - 1) % 20 + 1] then moved[l.uuid] = { sip_connection = to } end
    end
    admin("holders?ago=3600", json.encode(moved))
    assert(client:search(nil, { take = 1 }))
    admin("config", '{"latency":0.02}')
  end
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  t0 = core.now()
  local ok, _, code = os.execute(("OPENTACT_URL=%s OPENTACT_TOKEN=emulator-token HOME=/nonexistent %s check --routes "
    .. "%s --concurrency %d --format csv > /dev/null"):format(base, command, file, concurrency))
  if os.getenv("KEEP") then io.stderr:write(file, "\n") else os.remove(file) end
  -- (exit 0: the account matches; DIFFER=1, exit 1: half of it differs)
  if os.getenv("DIFFER") then
    assert(ok == nil or ok == false or code == 1 or ok == 256, "check did not exit 1")
  else
    assert(ok == true or ok == 0, "check did not exit 0")
  end
end
print(("wall_s=%.4f"):format(core.now() - t0))
client:close()
