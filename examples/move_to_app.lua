-- Move a phone number from a SIP connection (a trunk) to a SIP control app
-- (a programmable call flow), then back: each step planned, shown, applied
-- exactly, and read back. Targets are given by name (a connection's name,
-- app:NAME for a control app) and resolved once.
--
--   OPENTACT_TOKEN=... lua5.4 examples/move_to_app.lua NUMBER TRUNK APP
--   (against the emulator: examples/move_to_app.lua +12125550004 sip-trunk-2 app:control-app-1)
local opentact = require("opentact")

local number, trunk_name, app_name = arg[1], arg[2], arg[3]
if not (number and trunk_name and app_name) then
  io.stderr:write("usage: move_to_app.lua NUMBER TRUNK APP\n")
  os.exit(2)
end

local client = opentact.new()

-- names are resolved on request: an unknown or ambiguous one says so
local function target(name)
  local t, err = client:target(name)
  if not t then
    io.stderr:write(tostring(err), "\n")
    os.exit(2)
  end
  return t
end

local trunk, app = target(trunk_name), target(app_name)

-- plans the number onto `to`, shows the plan, applies exactly that plan
-- and says what the server holds now
local function move(to)
  local plan, err = client:plan(to, { numbers = { number } }, { move = true })
  if not plan then
    io.stderr:write(tostring(err), "\n")
    os.exit(1)
  end
  print(plan)
  local report, why = client:apply(plan)
  if not report then
    io.stderr:write(tostring(why), "\n")
    os.exit(1)
  end
  if not report.ok then
    print(report)
    os.exit(1)
  end
  local lease = assert(client:lease(number))
  print(("%s is on %s now\n"):format(number, tostring(opentact.holder(lease) and
    (opentact.holder(lease).kind == "app" and "the control app" or "the connection") or "nothing")))
end

move(trunk)   -- the number starts on the trunk
move(app)     -- to the control app: released from the trunk first, then attached
move(trunk)   -- and back
client:close()
