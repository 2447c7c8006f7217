-- A luv program listing several SIP connections at once: a poll handle
-- watches the client's descriptor, a timer keeps its deadlines, and both
-- call client:step(0). The loop never blocks on the network.
--
--   OPENTACT_TOKEN=... [OPENTACT_URL=...] lua5.4 examples/luv.lua CONN [CONN...]
local uv = require("luv")
local opentact = require("opentact")

local conns = { ... }
if #conns == 0 then
  io.stderr:write("usage: examples/luv.lua CONN [CONN...]\n")
  os.exit(2)
end

local client = opentact.new()
local poll = uv.new_poll(client:pollfd())
local timer = uv.new_timer()
local failures = 0

-- Runs what is due, then re-arms the timer for the client's next deadline;
-- stops watching once nothing is pending, which lets uv.run return.
local function pump()
  local pending = client:step(0)
  local wait = client:timeout()
  if pending == 0 then
    poll:stop()
    timer:stop()
  elseif wait then
    timer:start(math.ceil(wait * 1000), 0, pump)
  end
end

for _, conn in ipairs(conns) do
  client:list(conn, function(leases, err)
    if leases then
      print(("%s: %d leases"):format(conn, #leases))
    else
      print(("%s: %s"):format(conn, tostring(err)))
      failures = failures + 1
    end
  end)
end

poll:start("r", pump)
pump()
uv.run()
poll:close()
timer:close()
uv.run() -- lets the handles finish closing
client:close()
os.exit(failures == 0 and 0 or 1)
