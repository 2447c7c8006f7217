-- search_all of every lease of the account against the emulator (whose
-- latency the harness set). Prints wall seconds and the leases found.
-- Usage: search.lua BASE_URL PAGE_SIZE CONCURRENCY
local opentact = require("opentact")
local core = require("opentact.core")
local base, page_size, concurrency = arg[1], tonumber(arg[2]), tonumber(arg[3])
local client = opentact.new({ token = "emulator-token", base_url = base })
local t0 = core.now()
local leases = assert(client:search_all(nil, { page_size = page_size, concurrency = concurrency }))
print(("wall_s=%.4f leases=%d"):format(core.now() - t0, #leases))
