-- bench/step.lua URL CONN N [OUT]: N list requests started with callbacks, then
-- step(0) in a tight loop until all are answered, as a host loop would.
-- Prints the worst and 99th-percentile step(0) time, wall and CPU (the
-- step's own work: on a shared machine, wall also holds the time the
-- scheduler gave to other processes, the emulator among them), and the
-- total time. Times go into fixed histograms, so that the bench makes no
-- garbage of its own for the collector to charge to a step.
local opentact = require("opentact")
local core = require("opentact.core")
local url, conn, n = arg[1], arg[2], tonumber(arg[3])
-- the CPU clock bench/run built into OUT (bench/cputime.c)
package.cpath = (arg[4] or "build/bench") .. "/?.so;" .. package.cpath
local cputime = require("cputime")
local client = opentact.new({ base_url = url, token = "emulator-token", retries = 0 })
assert(client:list(conn)) -- one connection made, as a long-lived client has
local failed = 0
local BUCKET, BUCKETS = 1e-5, 2000 -- 10 µs buckets up to 20 ms
local wall_hist, cpu_hist = {}, {}
for i = 0, BUCKETS do wall_hist[i], cpu_hist[i] = 0, 0 end
local worst_wall, worst_cpu, steps = 0, 0, 0
local now, floor, min = core.now, math.floor, math.min
collectgarbage()
local t0 = now()
for _ = 1, n do
  client:list(conn, function(leases) if not leases then failed = failed + 1 end end)
end
local pending = n
while pending > 0 do
  local a, c = now(), cputime()
  pending = client:step(0)
  local dc, dw = cputime() - c, now() - a
  steps = steps + 1
  if dw > worst_wall then worst_wall = dw end
  if dc > worst_cpu then worst_cpu = dc end
  local bw, bc = min(BUCKETS, floor(dw / BUCKET)), min(BUCKETS, floor(dc / BUCKET))
  wall_hist[bw] = wall_hist[bw] + 1
  cpu_hist[bc] = cpu_hist[bc] + 1
end
local total = now() - t0
assert(failed == 0, failed .. " requests failed")
local function p99(hist)
  local want, seen = steps * 0.99, 0
  for i = 0, BUCKETS do
    seen = seen + hist[i]
    if seen >= want then return (i + 1) * BUCKET end
  end
end
print(("worst_ms=%.3f p99_ms=%.3f worst_cpu_ms=%.3f p99_cpu_ms=%.3f total_s=%.4f steps=%d"):format(
  worst_wall * 1000, p99(wall_hist) * 1000, worst_cpu * 1000, p99(cpu_hist) * 1000, total, steps))
client:close()
