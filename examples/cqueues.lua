-- Several lists at once inside a cqueues program: one coroutine per SIP
-- connection, each waiting for its own answer while the others run.
--
--   OPENTACT_TOKEN=... [OPENTACT_URL=...] lua5.4 examples/cqueues.lua CONN [CONN...]
--
-- The client speaks the cqueues polling protocol (pollfd, events, timeout),
-- so cqueues.poll(client) sleeps until the client has work for step.
local cqueues = require("cqueues")
local condition = require("cqueues.condition")
local opentact = require("opentact")

local conns = { ... }
if #conns == 0 then
  io.stderr:write("usage: examples/cqueues.lua CONN [CONN...]\n")
  os.exit(2)
end

local client = opentact.new()

-- Starts a request with a callback, then yields to the other coroutines
-- until that callback has run: in this coroutine's own step, or in
-- another's (which then signals `ready`).
local function await(start)
  local ready, finished, result, err = condition.new(), false, nil, nil
  start(function(r, e)
    result, err, finished = r, e, true
    ready:signal()
  end)
  while not finished do
    cqueues.poll(client, ready)
    if not finished then client:step(0) end
  end
  return result, err
end

local loop = cqueues.new()
local failures = 0
for _, conn in ipairs(conns) do
  loop:wrap(function()
    local leases, err = await(function(cb) client:list(conn, cb) end)
    if leases then
      print(("%s: %d leases"):format(conn, #leases))
    else
      print(("%s: %s"):format(conn, tostring(err)))
      failures = failures + 1
    end
  end)
end
assert(loop:loop())
client:close()
os.exit(failures == 0 and 0 or 1)
