-- Puts the leases of the numbers in NUMBERS_FILE on CONN, against the
-- emulator (whose latency the harness set), one of two ways:
--   sync: client:sync, which reads, resolves, plans, applies and reads back;
--   hand: what a user would write by hand with the same library:
--         search_all, pick the leases of the numbers, assign_batched.
-- Prints wall seconds. Usage: sync.lua sync|hand BASE_URL CONN CONCURRENCY NUMBERS_FILE
local opentact = require("opentact")
local core = require("opentact.core")
local how, base, conn, concurrency, file = arg[1], arg[2], arg[3], tonumber(arg[4]), arg[5]
local numbers = {}
for line in io.lines(file) do numbers[#numbers + 1] = tonumber(line) end
local client = opentact.new({ token = "emulator-token", base_url = base })
local t0 = core.now()
if how == "sync" then
  local report = assert(client:sync(conn, { numbers = numbers }, { concurrency = concurrency }))
  assert(report.ok and #report.applied.add == #numbers, tostring(report))
else
  local all = assert(client:search_all(nil, { concurrency = concurrency }))
  local want, uuids = {}, {}
  for _, n in ipairs(numbers) do want[n] = true end
  for _, lease in ipairs(all) do
    if want[lease.tn.tn] then uuids[#uuids + 1] = lease.uuid end
  end
  local report = client:assign_batched(conn, { add = uuids }, { concurrency = concurrency })
  assert(report.ok and #report.applied.add == #numbers, tostring(report))
end
print(("wall_s=%.4f"):format(core.now() - t0))
