-- bench/step.lua URL CONN N: N list requests started with callbacks, then
-- step(0) in a tight loop until all are answered, as a host loop would.
-- Prints the worst and 99th-percentile step(0) time and the total time.
local opentact = require("opentact")
local core = require("opentact.core")
local url, conn, n = arg[1], arg[2], tonumber(arg[3])
local client = opentact.new({ base_url = url, token = "emulator-token", retries = 0 })
assert(client:list(conn)) -- one connection made, as a long-lived client has
local failed = 0
local t0 = core.now()
for _ = 1, n do
  client:list(conn, function(leases) if not leases then failed = failed + 1 end end)
end
local times, pending = {}, n
while pending > 0 do
  local a = core.now()
  pending = client:step(0)
  times[#times + 1] = core.now() - a
end
local total = core.now() - t0
assert(failed == 0, failed .. " requests failed")
table.sort(times)
print(("worst_ms=%.3f p99_ms=%.3f total_s=%.4f steps=%d"):format(times[#times] * 1000,
  times[math.max(1, math.floor(#times * 0.99))] * 1000, total, #times))
client:close()
