-- lua-opentact's list, N times on one client: CPU (user + sys) and wall
-- time per call. Usage: list.lua BASE_URL CONN N
local opentact = require("opentact")
local core = require("opentact.core")
local base, conn, n = arg[1], arg[2], tonumber(arg[3])
local client = opentact.new({ token = "bench-token", base_url = base, retries = 0 })
assert(client:list(conn)) -- warm: connection open, code loaded
local cpu0, wall0 = os.clock(), core.now()
for _ = 1, n do
  local leases, err = client:list(conn)
  if not leases then error(tostring(err)) end
end
print(("cpu_us=%.2f wall_us=%.2f"):format((os.clock() - cpu0) / n * 1e6, (core.now() - wall0) / n * 1e6))
