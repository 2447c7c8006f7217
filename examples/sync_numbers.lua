-- Make a SIP connection hold exactly the phone numbers listed in a file
-- (one per line, in any form people type): prints the plan, and applies
-- it unless --dry-run is given. Leases another connection or a control
-- app holds are taken only with --move. Exit status 0 when the connection
-- holds what the file asks.
--
--   OPENTACT_TOKEN=... lua5.4 examples/sync_numbers.lua CONN FILE [--dry-run] [--move]
local opentact = require("opentact")

local conn, path = arg[1], arg[2]
local flags = {}
for i = 3, #arg do flags[arg[i]] = true end
if not conn or not path then
  io.stderr:write("usage: sync_numbers.lua CONN FILE [--dry-run] [--move]\n")
  os.exit(2)
end

local numbers = {}
for line in assert(io.open(path)):lines() do
  if line:find("%d") and not line:find("^%s*#") then numbers[#numbers + 1] = line end
end

if #numbers == 0 then
  -- exact with nothing desired would detach every number of the connection
  io.stderr:write(path, " lists no numbers: nothing to do\n")
  os.exit(2)
end

local client = opentact.new()
local report, err = client:sync(conn, { numbers = numbers }, {
  exact = true,
  move = flags["--move"] or false,
  dry_run = flags["--dry-run"] or false,
  concurrency = 8,
})
client:close()
if not report then
  -- nothing was changed: a number is not one, or the account could not be read
  io.stderr:write(tostring(err), "\n")
  os.exit(err.kind == "invalid" and 2 or 1)
end
print(report) -- the plan, then what was applied and what failed
os.exit(report.ok and 0 or 1)
