-- Bulk assignment: UUIDS lease uuids to a connection in batches of BATCH
-- at CONCURRENCY against the emulator (whose latency the harness set).
-- Prints wall seconds. Usage: bulk.lua BASE_URL CONN BATCH CONCURRENCY UUID_FILE
local opentact = require("opentact")
local core = require("opentact.core")
local base, conn, batch, concurrency, file = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4]), arg[5]
local uuids = {}
for line in io.lines(file) do uuids[#uuids + 1] = line end
local client = opentact.new({ token = "emulator-token", base_url = base })
local t0 = core.now()
local report = client:assign_batched(conn, { add = uuids }, { batch_size = batch, concurrency = concurrency })
local wall = core.now() - t0
assert(report.ok, tostring(report))
print(("wall_s=%.4f"):format(wall))
