-- `opentact connections --count`'s work, timed: the account's connections
-- read (one request), then each one's leases listed, CONCURRENCY at once
-- (client:list_many), as the command does; and the command itself as a
-- process. Prints wall seconds of each.
-- Usage: holders.lua BASE_URL CONCURRENCY OPENTACT_COMMAND
local opentact = require("opentact")
local core = require("opentact.core")
local base, concurrency, command = arg[1], tonumber(arg[2]), arg[3]

local client = opentact.new({ token = "emulator-token", base_url = base })
local t0 = core.now()
local list = assert(client:connections())
local t1 = core.now()
local targets = {}
for i, h in ipairs(list) do targets[i] = { connection = h.uuid } end
local results = client:list_many(targets, { concurrency = concurrency })
local t2 = core.now()
for _, r in ipairs(results) do assert(r.leases, tostring(r.err)) end
client:close()
-- the command, as a user runs it
local t3 = core.now()
local ok = os.execute(("OPENTACT_URL=%s OPENTACT_TOKEN=emulator-token HOME=/nonexistent %s connections --count "
  .. "--concurrency %d --format csv > /dev/null"):format(base, command, concurrency))
assert(ok == true or ok == 0, "the command failed")
print(("connections=%d list_s=%.4f count_s=%.4f command_s=%.4f"):format(#list, t1 - t0, t2 - t1, core.now() - t3))
