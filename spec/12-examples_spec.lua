-- The examples run as documented, against the emulator.
local support = require("emulator")

local LUA = support.LUA

describe("examples/quickstart.lua #wire", function()
  local emu
  setup(function() emu = support.start() end)
  teardown(function() if emu then emu:stop() end end)

  it("runs against the emulator's seed and shows every step", function()
    local p = io.popen(("OPENTACT_URL=%s OPENTACT_TOKEN=%s %s %s/examples/quickstart.lua 2>&1; echo \"status=$?\"")
      :format(emu.url, emu.token, LUA, support.ROOT))
    local out = p:read("*a")
    p:close()
    assert.is_truthy(out:find("status=0", 1, true), out)
    assert.is_truthy(out:find("3 leases", 1, true), out)
    assert.is_truthy(out:find("5 leases", 1, true), out)
    assert.is_truthy(out:find("4 leases left", 1, true), out)
    assert.is_truthy(out:find("opentact: invalid: connection uuid 'not-a-uuid'", 1, true), out)
    assert.is_truthy(out:find("opentact: not_found (404): SIP connection not found", 1, true), out)
    assert.is_falsy(out:find("table: 0x", 1, true), out)
  end)
end)

describe("examples/bulk_assign.lua #wire", function()
  local emu
  setup(function() emu = support.start({ leases = 300 }) end)
  teardown(function() if emu then emu:stop() end end)

  it("attaches a file of uuids and reports what failed", function()
    local st = emu:state()
    local list, failed = os.tmpname(), os.tmpname()
    local f = assert(io.open(list, "w"))
    for i = 11, 260 do f:write(st.leases[i], "\n") end
    f:close()
    emu:faults({ { status = 500, message = "no" } })
    local p = io.popen(("OPENTACT_URL=%s OPENTACT_TOKEN=%s %s %s/examples/bulk_assign.lua %s %s %s 2>&1; echo \"status=$?\"")
      :format(emu.url, emu.token, LUA, support.ROOT, st.connections[2], list, failed))
    local out = p:read("*a")
    p:close()
    assert.is_truthy(out:find("status=1", 1, true), out)
    assert.is_truthy(out:find("250/250 uuids", 1, true), out)
    -- which batch meets the fault depends on which request arrives first
    local n = 0
    for _ in io.lines(failed) do n = n + 1 end
    assert.is_true(n == 100 or n == 50, tostring(n))
    assert.is_truthy(out:find("not ok: " .. (250 - n) .. " applied", 1, true), out)
    assert.equals(250 - n, #emu:state().assigned[st.connections[2]])
    os.remove(list)
    os.remove(failed)
  end)
end)

describe("examples/sync_numbers.lua #wire", function()
  local emu
  setup(function() emu = support.start({ leases = 30, apps = 1 }) end)
  teardown(function() if emu then emu:stop() end end)

  local function run(conn, file, flags)
    local p = io.popen(("OPENTACT_URL=%s OPENTACT_TOKEN=%s %s %s/examples/sync_numbers.lua %s %s %s 2>&1; echo \"status=$?\"")
      :format(emu.url, emu.token, LUA, support.ROOT, conn, file, flags or ""))
    local out = p:read("*a")
    p:close()
    return out
  end

  it("plans with --dry-run, then makes the connection hold exactly the file's numbers", function()
    local st = emu:state()
    local conn = st.connections[1] -- holds leases 1 to 3
    local file = os.tmpname()
    local f = assert(io.open(file, "w"))
    f:write("# the numbers this trunk serves\n+1 (212) 555-0002\n1-212-555-0010\n+1 212 555 0030\n")
    f:close()
    local out = run(conn, file, "--dry-run")
    assert.is_truthy(out:find("status=1", 1, true), out) -- lease 30 is on a control app
    assert.is_truthy(out:find("  ! 12125550030", 1, true), out)
    assert.is_truthy(out:find("Plan: 1 to add, 2 to remove, 1 unchanged, 1 conflict, 0 missing.", 1, true), out)
    assert.same({ st.leases[1], st.leases[2], st.leases[3] }, emu:state().assigned[conn])
    out = run(conn, file, "--move")
    os.remove(file)
    assert.is_truthy(out:find("status=0", 1, true), out)
    assert.is_truthy(out:find("Applied: 2 added, 2 removed, 0 failed.", 1, true), out)
    -- (30 is released from its app and attached by a request of its own,
    -- beside the batch that attaches 10: in either order)
    assert.same(support.sorted({ st.leases[2], st.leases[10], st.leases[30] }),
      support.sorted(emu:state().assigned[conn]))
  end)
end)

describe("examples/embed", function()
  local emu
  setup(function() emu = support.start() end)
  teardown(function() if emu then emu:stop() end end)

  it("builds a C program embedding Lua 5.4 that lists and assigns", function()
    local exe = os.tmpname()
    local p = io.popen(("cc -Wall -o %s %s/examples/embed/embed.c -I/usr/include/lua5.4 -llua5.4 2>&1; echo \"status=$?\"")
      :format(exe, support.ROOT))
    local out = p:read("*a")
    p:close()
    assert.is_truthy(out:find("status=0", 1, true), out)
    local st = emu:state()
    local tree = support.ROOT .. "/.rocks/lua5.4"
    p = io.popen(("LUA_PATH='%s/share/lua/5.4/?.lua;;' LUA_CPATH='%s/lib/lua/5.4/?.so;;' " ..
      "OPENTACT_URL=%s OPENTACT_TOKEN=%s %s %s %s 2>&1; echo \"status=$?\"")
      :format(tree, tree, emu.url, emu.token, exe, st.connections[1], st.leases[10]))
    out = p:read("*a")
    p:close()
    os.remove(exe)
    assert.is_truthy(out:find("status=0", 1, true), out)
    assert.is_truthy(out:find("list: 3 leases", 1, true), out)
    assert.is_truthy(out:find("assign: 1 lease", 1, true), out)
    assert.is_truthy(out:find("list: 4 leases", 1, true), out)
    assert.is_truthy(out:find("list failed: opentact: invalid", 1, true), out)
  end)
end)

describe("examples/openresty", function()
  local emu, prefix
  setup(function() emu = support.start() end)
  teardown(function()
    if prefix then
      local pid = tonumber(support.slurp(prefix .. "/logs/nginx.pid") or "")
      if pid then
        os.execute("kill -QUIT " .. pid .. " 2>/dev/null")
        support.wait_gone(pid, 5)
      end
      os.execute("rm -rf " .. prefix)
    end
    if emu then emu:stop() end
  end)

  it("serves a connection's leases as JSON", function()
    local p = io.popen("mktemp -d")
    prefix = p:read("*l")
    p:close()
    local port = support.free_port()
    local f = assert(io.open(support.ROOT .. "/examples/openresty/nginx.conf"))
    local conf = f:read("*a"):gsub("%$prefix/%.%./%.%.", support.ROOT):gsub("127%.0%.0%.1:8080", "127.0.0.1:" .. port)
    f:close()
    if io.popen("id -u"):read("*l") == "0" then conf = "user nobody nogroup;\n" .. conf end
    os.execute(("mkdir -p %s/logs && chmod 755 %s && cp %s/examples/openresty/leases_handler.lua %s/")
      :format(prefix, prefix, support.ROOT, prefix))
    f = assert(io.open(prefix .. "/nginx.conf", "w"))
    f:write(conf)
    f:close()
    local start = io.popen(("OPENTACT_TOKEN=%s OPENTACT_URL=%s nginx -p %s -c nginx.conf -e logs/error.log 2>&1; echo \"status=$?\"")
      :format(emu.token, emu.url, prefix))
    local out = start:read("*a")
    start:close()
    assert.is_truthy(out:find("status=0", 1, true), out)
    local http = require("socket.http")
    local conn = emu:state().connections[1]
    local body, code
    for _ = 1, 50 do
      body, code = http.request(("http://127.0.0.1:%d/leases/%s"):format(port, conn))
      if code == 200 then break end
      require("socket").sleep(0.05)
    end
    assert.equals(200, code)
    local r = require("cjson").decode(body)
    assert.equals(3, r.count)
    assert.equals(12125550001, r.leases[1].number)
    assert.is_truthy(body:find('"number":12125550001', 1, true))
    local bad_body, bad = http.request(("http://127.0.0.1:%d/leases/nope"):format(port))
    assert.equals(400, bad)
    assert.is_truthy(bad_body:find('"error":"invalid"', 1, true))
  end)
end)

describe("examples/move_to_app.lua #wire", function()
  local emu
  setup(function() emu = support.start() end)
  teardown(function() if emu then emu:stop() end end)

  it("moves a number from a trunk to a control app and back, by name", function()
    local p = io.popen(("OPENTACT_URL=%s OPENTACT_TOKEN=%s %s %s/examples/move_to_app.lua +12125550004 sip-trunk-2 "
      .. "app:control-app-1 2>&1; echo \"status=$?\""):format(emu.url, emu.token, LUA, support.ROOT))
    local out = p:read("*a")
    p:close()
    assert.is_truthy(out:find("status=0", 1, true), out)
    local st = emu:state()
    assert.matches("SIP control app control%-app%-1 %(" .. st.apps[1]:gsub("%-", "%%-") .. "%):", out)
    assert.matches("moves from SIP connection sip%-trunk%-2", out)
    assert.matches("moves from SIP control app control%-app%-1", out)
    assert.matches("+12125550004 is on the control app now", out, 1, true)
    assert.same({ st.leases[4] }, st.assigned[st.connections[2]])
    assert.same({}, st.app_assigned[st.apps[1]])
  end)

  it("names an unknown target and exits 2", function()
    local p = io.popen(("OPENTACT_URL=%s OPENTACT_TOKEN=%s %s %s/examples/move_to_app.lua +12125550004 sip-trunk-2 "
      .. "app:nobody 2>&1; echo \"status=$?\""):format(emu.url, emu.token, LUA, support.ROOT))
    local out = p:read("*a")
    p:close()
    assert.is_truthy(out:find("status=2", 1, true), out)
    assert.is_truthy(out:find("no SIP control app is named", 1, true), out)
  end)
end)

describe("examples/routes.lua and examples/routes.csv #wire", function()
  local emu
  setup(function() emu = support.start() end)
  teardown(function() if emu then emu:stop() end end)

  local function routes(file, flag)
    local p = io.popen(("OPENTACT_URL=%s OPENTACT_TOKEN=%s %s %s/examples/routes.lua %s %s 2>&1; echo \"status=$?\"")
      :format(emu.url, emu.token, LUA, support.ROOT, file, flag or ""))
    local out = p:read("*a")
    p:close()
    return out
  end

  it("plans the example routes, then applies them; the command line then finds the account matching", function()
    -- (a copy: its journal is written beside it)
    local file = support.tmpfile(support.slurp(support.ROOT .. "/examples/routes.csv"))
    finally(function() os.remove(file) end)
    local out = routes(file)
    assert.is_truthy(out:find("status=0", 1, true), out)
    assert.matches("^Plan: 2 to add, 1 to move, 0 to remove, 2 unchanged", out)
    assert.matches("~ 12125550003     sip-trunk-1 \226\134\146 sip-trunk-2", out, 1, true)
    assert.equals(0, support.writes(emu))
    out = routes(file, "--apply")
    assert.is_truthy(out:find("status=0", 1, true), out)
    local st = emu:state()
    assert.same({ st.leases[10], st.leases[11] }, st.app_assigned[st.apps[1]])
    assert.same({ st.leases[3] }, st.assigned[st.connections[2]])
    local check = require("cli").opentact(emu, "check --routes " .. file)
    assert.matches("the account matches", check)
  end)

  it("names the problems of a file with their lines and exits 2", function()
    local file = support.tmpfile("number,target\n+1 212 555 0001,nobody\n+1 212 555 0002,sip-trunk-1\n"
      .. "+1 212 555 0002,sip-trunk-2\n")
    finally(function() os.remove(file) end)
    local out = routes(file)
    assert.is_truthy(out:find("status=2", 1, true), out)
    assert.matches("line 2: no SIP connection or control app is named \"nobody\"", out, 1, true)
    assert.matches("line 4: +1 212 555 0002 is routed to SIP connection sip-trunk-2", out, 1, true)
  end)
end)
