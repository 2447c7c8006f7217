-- Routes as code from Lua: where each number goes, as a table, planned in
-- one go over every target it names, shown, and applied exactly as shown
-- (with a journal, so that a run stopped half-way can be finished).
--
--   OPENTACT_TOKEN=... lua5.4 examples/routes.lua ROUTES.csv [--apply]
--   (against the emulator: examples/routes.lua examples/routes.csv --apply)
--
-- The file is the command line's routes file (`opentact plan --routes`):
-- NUMBER_OR_LEASE,TARGET[,AUTORENEW] per line, a header and # comments
-- allowed. This example reads plain lines (no quoted fields); the
-- command line reads every form.
local opentact = require("opentact")

local path, apply = arg[1], arg[2] == "--apply"
if not path or (arg[2] and not apply) then
  io.stderr:write("usage: routes.lua ROUTES.csv [--apply]\n")
  os.exit(2)
end

-- the routes as the library takes them: {number or lease, target,
-- autorenew, line (so that problems name the file's lines)}
local routes, n = {}, 0
for text in io.lines(path) do
  n = n + 1
  text = text:gsub("\r$", "")
  local lease, target, renew = text:match("^%s*([^,#]+),([^,]+),?([^,]*)$")
  if lease and not (n == 1 and lease == "number") then
    local route = { target = target, line = n, autorenew = ({ on = true, off = false })[renew] }
    if lease:find("^%x+%-") then route.lease = lease else route.number = lease end
    routes[#routes + 1] = route
  end
end

local client = opentact.new()
local plan, err = client:plan_routes(routes, { exact = false })
if not plan then
  -- every problem of the routes at once, each with its line
  io.stderr:write(tostring(err), "\n")
  os.exit(2)
end
print(plan)
if not apply then
  print("(dry run: give --apply to apply this plan)")
  os.exit(plan.ok and 0 or 1)
end

local report
report, err = client:apply(plan, { journal = path .. ".journal" })
if not report then
  -- stale: something moved since the plan was read; nothing was changed
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
print(report)
os.remove(path .. ".journal")
os.exit(report.ok and 0 or 1)
