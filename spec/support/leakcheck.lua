-- Exercises the module against the emulator and returns normally, so the
-- interpreter closes its state and Valgrind can tell a leak from memory
-- still in use. Run by `make memcheck`.
local opentact = require("opentact")
local support = require("emulator")

local emu = support.start()
local ok, err = pcall(function()
  local st = emu:state()
  local conn, leases = st.connections, st.leases
  emu:faults({ { status = 503 }, { reset = true }, { truncate = true }, { raw = "x", status = 200 },
    { status = 429, retry_after = "60" }, { chunked = true } })
  for i = 1, 40 do
    local c = opentact.new({ token = i % 7 == 0 and function() return emu.token end or emu.token,
      base_url = emu.url, backoff = 0.001, max_body = i % 11 == 0 and 100 or nil,
      log = i % 5 == 0 and function() end or nil })
    c:list(conn[1])
    c:assign(conn[2], { add = { leases[i] }, remove = { leases[i + 1] } })
    c:list("bad")
    c:assign(conn[1], { add = { leases[1], leases[1] } })
    pcall(c.assign, c, conn[1], { add = { 1 } })
    if i % 2 == 0 then c:close() end
  end
  -- callbacks: answered, failing, and still pending when the client closes
  local cb = opentact.new({ token = emu.token, base_url = emu.url, backoff = 0.001 })
  local calls = 0
  for i = 1, 30 do cb:list(conn[i % 4 + 1], function() calls = calls + 1 end) end
  cb:list("bad", function() calls = calls + 1 end)
  while cb:step(0.05) > 0 do end
  cb:list(conn[1], function() error("raised by a callback") end)
  -- stepped until the error comes out, however slowly the answer comes
  -- under Valgrind on a busy machine
  local gettime = require("socket").gettime
  local deadline = gettime() + 30
  local raised
  repeat raised = not pcall(cb.step, cb, 1) until raised or gettime() > deadline
  assert(raised, "the callback's error never came out of step")
  emu:config({ latency = 0.5 })
  for i = 1, 10 do cb:list(conn[i % 4 + 1], function() calls = calls + 1 end) end
  cb:step(0)
  cb:close()
  emu:config({ latency = 0 })
  assert(calls == 41, calls)
  local refused = opentact.new({ token = "t", base_url = "http://127.0.0.1:1", retries = 1, backoff = 0.001 })
  refused:list(conn[1])
  opentact.configure({ token = emu.token, base_url = emu.url })
  assert(opentact.list(conn[1]))
end)
emu:stop()
if not ok then error(err, 0) end
print("leakcheck: done")
