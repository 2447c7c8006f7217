-- Kamailio as a host: Debian's Kamailio (app_lua links PUC Lua 5.1) runs
-- examples/kamailio/ (its config and KEMI script) against the emulator,
-- on UDP on a free loopback port with four children. Each OPTIONS is
-- answered with the lease of the number called: 200 with the lease in a
-- header for a number on the connection, 404 for one elsewhere, 503 within
-- the deadline while the API is away, answers again once it is back; a few
-- thousand requests over the children, no wrong answer.
-- Kamailio loads the Lua 5.1 build: the lua5.1 run of the suite runs this
-- spec, the others say so and skip it.
local support = require("emulator")
local socket = require("socket")

local ROOT = support.ROOT

-- A SIP OPTIONS request for `number`, with its own Call-ID and branch.
local function options_request(number, port, local_port, id)
  return table.concat({
    ("OPTIONS sip:%s@127.0.0.1:%d SIP/2.0"):format(number, port),
    ("Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-spec-%s;rport"):format(local_port, id),
    "Max-Forwards: 70",
    ("From: <sip:spec@127.0.0.1:%d>;tag=spec%s"):format(local_port, id),
    ("To: <sip:%s@127.0.0.1:%d>"):format(number, port),
    ("Call-ID: spec-%s@127.0.0.1"):format(id),
    "CSeq: 1 OPTIONS",
    "Content-Length: 0",
    "", "",
  }, "\r\n")
end

-- The status and the lease header of a SIP answer, and its Call-ID.
local function parse(answer)
  local status = tonumber(answer:match("^SIP/2%.0 (%d%d%d)"))
  local lease = answer:match("\r\n[Xx]%-[Oo]pentact%-[Ll]ease: *([^\r\n]+)")
  local call = answer:match("\r\nCall%-ID: *spec%-([^@\r\n]+)@")
  return status, lease, call
end

describe("Kamailio with examples/kamailio #wire", function()
  if support.LUA:match("lua5%.1$") == nil then
    it("runs in the lua5.1 run of the suite", function()
      pending("Debian's Kamailio links PUC Lua 5.1 and loads the lua5.1 build: the lua5.1 run covers it")
    end)
    return
  end

  local emu, port, pidfile, rundir, conn, st, udp

  -- Starts Kamailio against the emulator; waits until it answers.
  local function start_kamailio()
    rundir = os.tmpname()
    os.remove(rundir)
    assert(os.execute("mkdir -m 700 " .. rundir))
    pidfile = rundir .. "/kamailio.pid"
    local tree = ROOT .. "/.rocks/lua5.1"
    port = support.free_port()
    local cmd = ("cd %s && env OPENTACT_URL=%s OPENTACT_TOKEN=%s OPENTACT_CONNECTION=%s "
      .. "LUA_PATH='%s/share/lua/5.1/?.lua;%s/share/lua/5.1/?/init.lua;;' LUA_CPATH='%s/lib/lua/5.1/?.so;;' "
      -- (its pid known at once: the shell's, which becomes Kamailio's main)
      .. "sh -c 'echo $$ > %s; exec \"$0\" \"$@\"' kamailio -f examples/kamailio/kamailio.cfg -DD -E "
      .. "-l udp:127.0.0.1:%d -Y %s -A 'OPENTACT_SCRIPT=\"%s/examples/kamailio/opentact.lua\"' "
      .. "> %s/log 2>&1 &"):format(ROOT, emu.url, emu.token, conn, tree, tree, tree, pidfile, port, rundir, ROOT,
      rundir)
    assert(os.execute(cmd))
    udp = assert(socket.udp())
    assert(udp:setsockname("127.0.0.1", 0))
    assert(udp:setpeername("127.0.0.1", port))
    udp:settimeout(0.2)
    local _, local_port = udp:getsockname()
    for k = 1, 50 do
      udp:send(options_request("12125550001", port, local_port, "up" .. k))
      local answer = udp:receive()
      if answer then return end
      -- (refused at once while nothing listens yet)
      socket.sleep(0.2)
    end
    error("Kamailio did not answer in 10 s:\n" .. (support.slurp(rundir .. "/log") or ""))
  end

  local function stop_kamailio()
    if udp then udp:close() end
    local pid = pidfile and support.slurp(pidfile)
    if pid and pid:match("%d+") then
      os.execute("kill -TERM " .. pid:match("%d+") .. " 2>/dev/null")
      support.wait_gone(pid:match("%d+"), 5)
    end
    if rundir then os.execute("rm -rf " .. rundir) end
  end

  setup(function()
    emu = support.start()
    st = emu:state()
    conn = st.connections[1] -- holds leases 1 to 3
    -- (stopped here when it does not come up: teardown is not run then)
    local ok, err = pcall(start_kamailio)
    if not ok then
      stop_kamailio()
      emu:stop()
      error(err, 0)
    end
  end)
  teardown(function()
    stop_kamailio()
    if emu then emu:stop() end
  end)

  -- One OPTIONS for `number`, answered: status, lease header, seconds.
  local ask_id = 0
  local function ask(number)
    ask_id = ask_id + 1
    local _, local_port = udp:getsockname()
    local t0 = socket.gettime()
    udp:settimeout(3)
    assert(udp:send(options_request(number, port, local_port, "ask" .. ask_id)))
    while true do
      local answer = assert(udp:receive())
      local status, lease, call = parse(answer)
      if call == "ask" .. ask_id then return status, lease, socket.gettime() - t0 end
    end
  end

  it("answers a number on the connection with 200 and its lease (sipsak)", function()
    local p = io.popen(("sipsak -v -s sip:12125550002@127.0.0.1:%d 2>&1"):format(port))
    local out = p:read("*a")
    p:close()
    assert.matches("SIP/2.0 200 OK", out, 1, true)
    assert.matches("X-Opentact-Lease: " .. st.leases[2], out, 1, true)
  end)

  it("answers a number elsewhere, and one not in the account, with 404", function()
    assert.equals(404, (ask("12125550010")))
    assert.equals(404, (ask("19995550000")))
    local status, lease = ask("+12125550003")
    assert.equals(200, status)
    assert.equals(st.leases[3], lease)
  end)

  it("answers 503 within the deadline while the API hangs", function()
    -- every lookup's answer would take 3 s: the deadline (0.4 s) ends it
    emu:faults({ { delay = 3 } })
    -- (a fault left over would be another test's)
    finally(function() emu:reset() end)
    local status, _, took = ask("12125550002")
    assert.equals(503, status)
    assert.is_true(took < 0.5, took)
    assert.matches("the deadline of 0.4 s was reached", support.slurp(rundir .. "/log"), 1, true)
  end)

  it("answers 503 within the deadline while the API is away, and answers again once it is back", function()
    local emu_port, token = emu.port, emu.token
    emu:stop()
    finally(function()
      if not emu.pid then emu = support.start({ port = emu_port, token = token }) end
    end)
    local status, _, took = ask("12125550001")
    assert.equals(503, status)
    -- the script's deadline is 0.4 s: well under SIP's 500 ms resend
    assert.is_true(took < 0.5, took)
    assert.matches("opentact: ", support.slurp(rundir .. "/log"), 1, true)
    -- the log names what failed, never the token
    assert.is_nil(support.slurp(rundir .. "/log"):find(token, 1, true))
    emu = support.start({ port = emu_port, token = token })
    local lease
    status, lease = ask("12125550001")
    assert.equals(200, status)
    assert.equals(st.leases[1], lease)
  end)

  it("answers a few thousand requests over its children, none wrong", function()
    local want = {}
    for i = 1, 6 do want[i] = i <= 3 and st.leases[i] or false end
    local _, local_port = udp:getsockname()
    udp:settimeout(3)
    local total, window, sent, got, wrong = 2000, 32, 0, 0, {}
    local expect = {}
    local function send_one()
      sent = sent + 1
      local i = (sent - 1) % 6 + 1
      local id = "bulk" .. sent
      expect[id] = want[i]
      assert(udp:send(options_request(("1212555%04d"):format(i), port, local_port, id)))
    end
    for _ = 1, window do send_one() end
    while got < total do
      local answer = udp:receive()
      assert(answer, ("no answer after %d of %d"):format(got, total))
      local status, lease, id = parse(answer)
      local w = expect[id]
      if w ~= nil then
        expect[id] = nil
        got = got + 1
        if (w and (status ~= 200 or lease ~= w)) or (not w and status ~= 404) then
          wrong[#wrong + 1] = ("%s: %s %s"):format(id, tostring(status), tostring(lease))
        end
        if sent < total then send_one() end
      end
    end
    assert.same({}, wrong)
    -- the children each made their own client: as many as handled a lookup
    local conns = {}
    for _, r in ipairs(emu:requests()) do conns[r.connection or ""] = true end
    local n = 0
    for _ in pairs(conns) do n = n + 1 end
    assert.is_true(n >= 2, "one connection for all the lookups: one child answered them all")
  end)
end)
