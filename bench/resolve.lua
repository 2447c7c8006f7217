-- The two ways sync can find the leases of N numbers, timed against the
-- emulator (whose latency the harness set): one lookup per number, or
-- paging through the whole account once. Prints "n lookup_s paging_s" per
-- N. Usage: resolve.lua BASE_URL CONCURRENCY N...
local opentact = require("opentact")
local core = require("opentact.core")
local sync = require("opentact.sync")
local search = require("opentact.search")
local base, concurrency = arg[1], tonumber(arg[2])
local client = opentact.new({ token = "emulator-token", base_url = base })
local eng = client._engine
local function median(t) table.sort(t) return t[(#t + 1) // 2] end
local t = {}
for _ = 1, 3 do
  local t0 = core.now()
  assert(search.all(eng, nil, { page_size = 100, concurrency = concurrency }))
  t[#t + 1] = core.now() - t0
end
local paging = median(t)
for k = 3, #arg do
  local n = tonumber(arg[k])
  local numbers = {}
  for i = 1, n do numbers[i] = 12125550010 + i end
  t = {}
  for _ = 1, 3 do
    local t0 = core.now()
    assert(sync.lookup(eng, numbers, concurrency))
    t[#t + 1] = core.now() - t0
  end
  print(("%d %.4f %.4f"):format(n, median(t), paging))
end
