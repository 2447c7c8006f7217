-- Resident memory of a process that keeps one client: after 1,000 calls
-- and after N more. Usage: rss.lua BASE_URL CONN N
local opentact = require("opentact")
local base, conn, n = arg[1], arg[2], tonumber(arg[3])
local function rss_kb()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s+(%d+)")
    if kb then return tonumber(kb) end
  end
end
local client = opentact.new({ token = "bench-token", base_url = base, retries = 0 })
for _ = 1, 1000 do assert(client:list(conn)) end
collectgarbage()
local after_1k = rss_kb()
for _ = 1, n do assert(client:list(conn)) end
collectgarbage()
print(("rss_1k_kb=%d rss_n_kb=%d"):format(after_1k, rss_kb()))
