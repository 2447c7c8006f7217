-- Attach every TN lease listed in a file (one uuid per line) to a SIP
-- connection, in batches of 100, 8 requests at once, with progress; then
-- print the report and write what failed for a re-run.
--
--   OPENTACT_TOKEN=... lua5.4 examples/bulk_assign.lua CONN FILE [FAILED_FILE]
local opentact = require("opentact")

local conn, path, failed_path = arg[1], arg[2], arg[3] or "failed.txt"
if not conn or not path then
  io.stderr:write("usage: bulk_assign.lua CONN FILE [FAILED_FILE]\n")
  os.exit(2)
end

local uuids = {}
for line in assert(io.open(path)):lines() do
  local uuid = line:match("^%s*(%S+)")
  if uuid then uuids[#uuids + 1] = uuid end
end

local client = opentact.new()
local report = client:assign_batched(conn, { add = uuids }, {
  batch_size = 100,
  concurrency = 8,
  on_progress = function(done, total)
    io.stderr:write(("\r%d/%d uuids"):format(done, total))
    if done == total then io.stderr:write("\n") end
  end,
})
client:close()

print(report) -- "ok: N applied ..." and one line per failed request
if not report.ok then
  local out = assert(io.open(failed_path, "w"))
  for _, failure in ipairs(report.failed) do
    for _, uuid in ipairs(failure.add) do out:write(uuid, "\n") end
  end
  out:close()
  print("not applied: written to " .. failed_path)
  os.exit(1)
end
