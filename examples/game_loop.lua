-- A fixed 60 Hz loop, as a game or a tool with a frame loop has: every
-- frame calls client:step(0), which never waits, while 50 requests are in
-- flight. Prints the worst time a frame spent in step.
--
--   OPENTACT_TOKEN=... [OPENTACT_URL=...] lua5.4 examples/game_loop.lua CONN
local opentact = require("opentact")
local socket = require("socket") -- for the clock and the frame sleep

local conn = ...
if not conn then
  io.stderr:write("usage: examples/game_loop.lua CONN\n")
  os.exit(2)
end

local FRAME = 1 / 60
local REQUESTS = 50

local client = opentact.new()
local answered, failed = 0, 0
for _ = 1, REQUESTS do
  client:list(conn, function(leases)
    answered = answered + 1
    if not leases then failed = failed + 1 end
  end)
end

local frames, worst, pending = 0, 0, REQUESTS
local next_frame = socket.gettime()
while pending > 0 do
  local t0 = socket.gettime()
  pending = client:step(0)
  local spent = socket.gettime() - t0
  if spent > worst then worst = spent end
  frames = frames + 1
  -- the rest of the frame: drawing, input... then wait for the next tick
  next_frame = next_frame + FRAME
  local idle = next_frame - socket.gettime()
  if idle > 0 then socket.sleep(idle) else next_frame = socket.gettime() end
end
client:close()

print(("%d requests answered (%d failed) over %d frames at 60 Hz"):format(answered, failed, frames))
print(("worst frame time in step(0): %.2f ms"):format(worst * 1000))
os.exit(failed == 0 and 0 or 1)
