-- Routes files on the command line: `opentact export --routes` writes the
-- account's routing, `opentact check --routes FILE` compares the account
-- with a file (exit 0, or 1 with each difference), and every problem of a
-- file is named with its line (exit 2, nothing compared). Against the
-- emulator over real sockets; both only read.
local support = require("emulator")
local cjson = require("cjson")

local tmpfile, writes = support.tmpfile, support.writes
local opentact = require("cli").opentact

describe("opentact check and export with routes #wire", function()
  local emu, conns, leases, apps

  setup(function()
    -- connection 1 holds leases 1-3, app k lease (41 - k); connection 3 is
    -- named as connection 1 is
    emu, conns, leases, apps = support.start_with_uuids({ leases = 40, apps = 2,
      names = { connection = { [3] = "sip-trunk-1" } } })
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  local function run(args) return opentact(emu, args) end

  it("exports the account's routing, which check then finds matching, reading only", function()
    emu:holders({ [leases[7]] = { sip_connection = conns[3] } })
    local out, err, status = run("export --routes")
    assert.equals(0, status, err)
    -- connection 1's name is not unique: its uuid is written
    assert.equals("number,target,autorenew\n+12125550001," .. conns[1] .. ",on\n+12125550002," .. conns[1] .. ",on\n"
      .. "+12125550003," .. conns[1] .. ",off\n+12125550007," .. conns[3] .. ",on\n+12125550039,app:control-app-2,off\n"
      .. "+12125550040,app:control-app-1,on\n", out)
    local file = tmpfile(out)
    support.finally(finally, function() os.remove(file) end)
    local posts = writes(emu)
    local text
    text, err, status = run("check --routes " .. file .. " --exact")
    assert.equals(0, status, err)
    assert.equals("the account matches " .. file .. " (6 routes)\n", text)
    assert.equals(posts, writes(emu))
    -- --out writes the file whole
    local saved = os.tmpname()
    support.finally(finally, function() os.remove(saved) end)
    text, err, status = run("export --routes --out " .. saved)
    assert.equals(0, status, err)
    assert.equals("", text)
    assert.matches("6 routes written to", err, 1, true)
    assert.equals(out, support.slurp(saved))
  end)

  it("says each difference and exits 1, in every format", function()
    local file = tmpfile("\239\187\191number,target,autorenew\r\n+1 212 555 0001,sip-trunk-2\r\n"
      .. '"12125550040","app:control-app-1",off\r\n12125550005,' .. conns[4] .. "\r\n")
    support.finally(finally, function() os.remove(file) end)
    local out, err, status = run("check --routes " .. file)
    assert.equals(1, status, err)
    assert.matches("^3 differences from ", out)
    assert.matches("12125550001     on SIP connection sip-trunk-1 (" .. conns[1] .. "), routed to SIP connection "
      .. "sip-trunk-2 (" .. conns[2] .. ") (line 2)", out, 1, true)
    assert.matches("(autorenew on, routed off) (line 3)", out, 1, true)
    assert.matches("12125550005     on no connection or app, routed to SIP connection sip-trunk-4", out, 1, true)
    out, err, status = run("check --routes " .. file .. " --json")
    assert.equals(1, status, err)
    local report = cjson.decode(out)
    assert.is_false(report.ok)
    assert.equals(3, report.routes)
    assert.equals(leases[1], report.differences[1].uuid)
    out, err, status = run("check --routes " .. file .. " --format csv")
    assert.equals(1, status, err)
    assert.matches("^line,number,uuid,now,routed_to,difference\n2,12125550001,", out)
    -- --exact: what the named targets hold beyond the file
    local exact = tmpfile("12125550001," .. conns[1] .. "\n")
    support.finally(finally, function() os.remove(exact) end)
    out, err, status = run("check --routes " .. exact .. " --exact --format csv")
    assert.equals(1, status, err)
    assert.matches(",12125550002," .. leases[2] .. ",", out, 1, true)
    assert.matches("not routed there (--exact)", out, 1, true)
    -- a number not in the account
    local absent = tmpfile("12125559999,sip-trunk-2\n")
    support.finally(finally, function() os.remove(absent) end)
    out, err, status = run("check --routes " .. absent)
    assert.equals(1, status, err)
    assert.matches("not in the account", out, 1, true)
  end)

  it("names every problem of a file with its line, in one run, and compares nothing", function()
    local file = tmpfile(table.concat({
      "number,target",
      "+1 212 555 0001,sip-trunk-2",
      "not a number,sip-trunk-2",
      "12125550002",
      "12125550003,nobody",
      "12125550004,sip-trunk-1",
      "12125550005,sip-trunk-2,maybe",
      "12125550001,app:control-app-1",
      "12125550006,nobody",
    }, "\n") .. "\n")
    finally(function() os.remove(file) end)
    local from = #emu:requests()
    local out, err, status = run("check --routes " .. file)
    assert.equals(2, status)
    assert.equals("", out)
    assert.matches("6 problems in ", err, 1, true)
    assert.matches("line 3: no lease uuid or phone number in the first field: not a number,sip-trunk-2", err, 1, true)
    assert.matches("line 4: no target", err, 1, true)
    assert.matches('lines 5, 9: no SIP connection or control app is named "nobody"', err, 1, true)
    assert.matches('line 6: the name "sip-trunk-1" is ambiguous', err, 1, true)
    assert.matches("line 7: the autorenew 'maybe' is not on or off", err, 1, true)
    assert.matches("line 8: 12125550001 is routed to SIP control app control-app-1 (" .. apps[1] .. ") here, and on "
      .. "line 2 to SIP connection sip-trunk-2", err, 1, true)
    assert.matches("nothing was compared", err, 1, true)
    -- only the lists of connections and apps were read
    local paths = {}
    for k = from + 1, #emu:requests() do paths[#paths + 1] = emu:requests()[k].path end
    table.sort(paths)
    assert.same({ "/sip/app", "/sip/connection" }, paths)
  end)

  it("checks a file of 50,000 routes in one pass over the account", function()
    local lines = { "number,target" }
    for i = 1, 50000 do lines[#lines + 1] = ("%d,sip-trunk-2"):format(12125560000 + i) end
    local file = tmpfile(table.concat(lines, "\n") .. "\n")
    finally(function() os.remove(file) end)
    local out, err, status = run("check --routes " .. file .. " --format json")
    assert.equals(1, status, err)
    local report = cjson.decode(out)
    assert.equals(50000, report.routes)
    assert.equals(50000, #report.differences)
    assert.equals("not in the account", report.differences[50000].difference)
  end)

  it("reads a long file while the account's pages come in; a problem late in it stops the account's read", function()
    -- 300 leases in pages of 10: 30 pages
    local paged = support.start({ leases = 300, max_page = 10 })
    support.finally(finally, function() paged:stop() end)
    local st, map = paged:state(), {}
    for i, l in ipairs(st.leases) do map[l] = { sip_connection = st.connections[(i - 1) % #st.connections + 1] } end
    paged:holders(map)
    local routing, err, status = opentact(paged, "export --routes")
    assert.equals(0, status, err)
    -- every route three times (agreeing): 900 routes, more than the lines
    -- read each time a page comes in
    local body = routing:gsub("^[^\n]*\n", "")
    local file = tmpfile(routing .. body .. body)
    support.finally(finally, function() os.remove(file) end)
    local out
    out, err, status = opentact(paged, "check --routes " .. file .. " --exact")
    assert.equals(0, status, out .. err)
    assert.matches("the account matches " .. file .. " (900 routes)", out, 1, true)
    -- a line past the first slice that is no route, and a target nobody has
    local lines = { "number,target" }
    for i = 1, 3000 do lines[#lines + 1] = ("+%d,%s"):format(12125560000 + i, "sip-trunk-2") end
    lines[2500] = "not a number,sip-trunk-2"
    lines[2900] = "+12125550001,nobody"
    local bad = tmpfile(table.concat(lines, "\n") .. "\n")
    support.finally(finally, function() os.remove(bad) end)
    local from = #paged:requests()
    out, err, status = opentact(paged, "check --routes " .. bad)
    assert.equals(2, status, err)
    assert.equals("", out)
    assert.matches("2 problems in ", err, 1, true)
    assert.matches("line 2500: no lease uuid or phone number in the first field", err, 1, true)
    assert.matches('line 2900: no SIP connection or control app is named "nobody"', err, 1, true)
    assert.matches("nothing was compared", err, 1, true)
    -- the account's read stopped when the problem was found: fewer pages
    -- than its 30 were asked for
    local pages = 0
    for k = from + 1, #paged:requests() do
      if paged:requests()[k].path == "/lease/tn/search" then pages = pages + 1 end
    end
    assert.is_true(pages > 0 and pages < 30, pages .. " pages")
  end)

  it("names a problem late in a long file before a failure of the account's read", function()
    local paged = support.start({ leases = 300, max_page = 10 })
    support.finally(finally, function() paged:stop() end)
    local lines = { "number,target" }
    for i = 1, 3000 do lines[#lines + 1] = ("+%d,%s"):format(12125560000 + i, "sip-trunk-2") end
    lines[2900] = "not a number,sip-trunk-2"
    local bad = tmpfile(table.concat(lines, "\n") .. "\n")
    support.finally(finally, function() os.remove(bad) end)
    -- the third page of the account is refused, before line 2900 is read
    paged:faults({ { on = "^POST /lease/tn/search" }, { on = "^POST /lease/tn/search" },
      { on = "^POST /lease/tn/search", status = 400 } })
    local out, err, status = opentact(paged, "check --routes " .. bad .. " --concurrency 1 --retries 0")
    assert.equals(2, status, err)
    assert.equals("", out)
    assert.matches("line 2900: no lease uuid or phone number in the first field", err, 1, true)
    assert.not_matches("400", err, 1, true)
  end)

  it("skips lines of white space only, and reads a file that cannot be read ahead whole first", function()
    emu:holders({ [leases[1]] = { sip_connection = conns[2] }, [leases[2]] = { sip_connection = conns[2] } })
    local text = "number,target\n+12125550001,sip-trunk-2\n   \n\t\n \11\12 \n  \r\n+12125550002,sip-trunk-2\n"
    local file = tmpfile(text)
    support.finally(finally, function() os.remove(file) end)
    local out, err, status = run("check --routes " .. file)
    assert.equals(0, status, err)
    assert.matches("(2 routes)", out, 1, true)
    -- a file of comments and blank lines past the first slice, and no route:
    -- said before anything is sent
    local notes = tmpfile(("# a note\n\n"):rep(600))
    support.finally(finally, function() os.remove(notes) end)
    local from = #emu:requests()
    out, err, status = run("check --routes " .. notes)
    assert.equals(2, status)
    assert.equals("", out)
    assert.matches("no routes in it", err, 1, true)
    assert.equals(from, #emu:requests())
    -- a named pipe whose writer waits 1 s in the middle: read whole before
    -- the account's pages go out, none of which times out waiting for it
    local lines = { "number,target" }
    for i = 1, 1500 do lines[#lines + 1] = ("+%d,sip-trunk-2"):format(12125560000 + i) end
    local body = tmpfile(table.concat(lines, "\n") .. "\n")
    support.finally(finally, function() os.remove(body) end)
    local fifo = os.tmpname()
    os.remove(fifo)
    local made = os.execute("mkfifo " .. fifo)
    assert(made == true or made == 0, "mkfifo")
    support.finally(finally, function() os.remove(fifo) end)
    emu:config({ latency = 0.2 })
    support.finally(finally, function() emu:config({ latency = 0 }) end)
    os.execute(("(head -n 1100 %s; sleep 1; tail -n +1101 %s) > %s &"):format(body, body, fifo))
    out, err, status = run("check --routes " .. fifo .. " --timeout 0.6 --retries 0 --format json")
    assert.equals(1, status, err)
    assert.equals(1500, cjson.decode(out).routes)
    assert.not_matches("timeout", err, 1, true)
  end)

  it("lets Ctrl-C through the reading of a file, as it came", function()
    local input = require("opentact.cli.input")
    local file = tmpfile("one\ntwo\n")
    finally(function() os.remove(file) end)
    local take = input.line_slices(file, nil, "f", function() error("interrupted!", 0) end)
    assert.has_error(function() take(10) end, "interrupted!")
    assert.is_false(take(10)) -- closed
    take = input.line_slices(file, nil, "f", function() error("boom", 0) end)
    local more, why = take(10)
    assert.is_nil(more)
    assert.equals("cannot read f: boom", why)
  end)

  it("round-trips odd names, reads standard input, and says a lease held twice", function()
    local odd = support.start({ leases = 10, apps = 2, names = { connection = { [2] = "app:x", [3] = 'a, "b"' },
      app = { [2] = "0a1b2c3d-0000-4000-8000-000000000001" } } })
    support.finally(finally, function() odd:stop() end)
    local st = odd:state()
    odd:holders({ [st.leases[4]] = { sip_connection = st.connections[2] }, [st.leases[5]] = { sip_connection =
      st.connections[3] }, [st.leases[9]] = { sip_control_app = st.apps[2] } })
    local out, err, status = opentact(odd, "export --routes")
    assert.equals(0, status, err)
    assert.matches("\n+12125550004," .. st.connections[2] .. ",on\n", out, 1, true)
    assert.matches('\n+12125550005,"a, ""b""",on\n', out, 1, true)
    assert.matches("\n+12125550009,app:" .. st.apps[2] .. ",off\n", out, 1, true)
    local file = tmpfile(out)
    support.finally(finally, function() os.remove(file) end)
    local text
    text, err, status = opentact(odd, "check --routes - --exact < " .. file)
    assert.equals(0, status, text .. err)
    assert.matches("the account matches standard input (7 routes)", text, 1, true)
    -- a lease a connection and an app both hold
    odd:holders({ [st.leases[9]] = { sip_connection = st.connections[4] } })
    text, err, status = opentact(odd, "check --routes " .. file)
    assert.equals(1, status, err)
    assert.matches("held by a connection and an app", text, 1, true)
    out, err, status = opentact(odd, "export --routes")
    assert.equals(0, status)
    assert.matches("+12125550009,app:", out, 1, true)
    assert.matches("is held by a SIP connection and a SIP control app; written with its app", err, 1, true)
  end)

  it("says an API failure as one (exit 1), not as a problem of the file", function()
    local file = tmpfile("12125550001,sip-trunk-2\n")
    finally(function() os.remove(file) end)
    local out, err, status = opentact(emu, "check --routes " .. file, { token = "wrong-token" })
    assert.equals(1, status)
    assert.equals("", out)
    assert.matches("opentact: auth", err, 1, true)
    emu:faults({ { on = "^GET /sip/app", status = 403 } })
    out, err, status = run("export --routes --retries 0")
    assert.equals(1, status)
    assert.equals("", out)
    assert.matches("403", err, 1, true)
  end)

  it("names what cannot be a routes file, exit 2", function()
    local cases = {
      { "", "no routes in it" },
      { "number,target\n", "no routes in it" },
      { 'number2,target\n12125550001,"sip-trunk-2\n', "line 2: a quoted field is not closed" },
      { "12125550001,sip-trunk-2,on,extra\n", "line 1: more than 3 fields" },
      { "sip-trunk-2,12125550001\n", "line 1: no lease uuid or phone number in the first field" },
      { "12125550001,sip-trunk-2\n" .. leases[1] .. ",sip-trunk-4\n", "line 2: " .. leases[1] .. " is lease " },
      { "12125550001,sip-trunk-2,on\n+1 212 555 0001,sip-trunk-2,off\n", "line 2: +1 212 555 0001 is lease "
        .. leases[1] .. ", whose autorenew line 1 says otherwise" },
    }
    for _, c in ipairs(cases) do
      local file = tmpfile(c[1])
      local out, err, status = run("check --routes " .. file)
      os.remove(file)
      assert.equals(2, status, c[1])
      assert.equals("", out)
      assert.matches(c[2], err, 1, true)
    end
    local _, err, status = run("check --routes /tmp")
    assert.equals(2, status)
    assert.matches("cannot read /tmp", err, 1, true)
  end)

  it("refuses check without a file, and export with one", function()
    local _, err, status = run("check")
    assert.equals(2, status)
    assert.matches("check needs --routes FILE", err, 1, true)
    local out
    out, err, status = run("export --routes routes.csv")
    assert.equals(2, status)
    assert.equals("", out)
    assert.matches("export takes --routes (what to export), with no file", err, 1, true)
  end)
end)

describe("opentact plan, sync and apply with routes #wire", function()
  local emu, conns, leases, apps

  setup(function()
    -- connection 1 (sip-trunk-1) holds leases 1-3, app k lease (41 - k)
    emu, conns, leases, apps = support.start_with_uuids({ leases = 40, apps = 2 })
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  local function run(args, opts) return opentact(emu, args, opts) end
  local function state() return emu:state() end

  -- 1 moves from sip-trunk-1 to sip-trunk-2, 5 is attached to sip-trunk-2,
  -- 40 moves from control-app-1 to sip-trunk-1, 38 is attached to
  -- control-app-1; with --exact, 2 and 3 go
  local ROUTES = "number,target,autorenew\n+1 212 555 0001,sip-trunk-2\n12125550005,sip-trunk-2,on\n"
    .. "+12125550040,sip-trunk-1\n12125550038,app:control-app-1\n"

  it("plans, saves, and applies the saved plan; then check finds the account matching", function()
    local file, out = tmpfile(ROUTES), os.tmpname()
    finally(function() os.remove(file); os.remove(out); os.remove(out .. ".journal") end)
    local text, err, status = run("plan --routes " .. file .. " --exact --out " .. out)
    assert.equals(0, status, err)
    assert.matches("^Plan: 2 to add, 2 to move, 2 to remove, 0 unchanged, 0 conflicts, 0 missing, over 3 targets%.\n",
      text)
    assert.matches("\n  ~ 12125550001     sip-trunk-1 \226\134\146 sip-trunk-2  (" .. leases[1] .. ")\n", text, 1, true)
    assert.matches("\n  ~ 12125550040     control-app-1 \226\134\146 sip-trunk-1  (", text, 1, true)
    assert.matches("\n  %- 12125550002 ", text)
    assert.matches("opentact apply " .. out .. " --journal ", text, 1, true)
    assert.equals(0, writes(emu))
    text, err, status = run("apply " .. out .. " --journal " .. out .. ".journal")
    assert.equals(0, status, err)
    assert.matches("Applied over all: 4 added, 2 removed, 0 failed%.\nok\n$", text)
    local st = state()
    assert.same(support.sorted({ leases[1], leases[5] }), support.sorted(st.assigned[conns[2]]))
    assert.same({ leases[40] }, st.assigned[conns[1]])
    assert.same({ leases[38] }, st.app_assigned[apps[1]])
    text, err, status = run("check --routes " .. file .. " --exact")
    assert.equals(0, status, err .. text)
    -- applied again: the journal says it is done; nothing is sent
    local posts = writes(emu)
    text, err, status = run("apply " .. out .. " --journal " .. out .. ".journal")
    assert.matches("^Plan: ", text)
    assert.equals(0, status, err)
    assert.equals(posts, writes(emu))
  end)

  it("sync asks before a move or a detach: not on a terminal it needs --yes, and changes nothing without", function()
    local file = tmpfile(ROUTES)
    finally(function() os.remove(file) end)
    local text, err, status = run("sync --routes " .. file)
    assert.equals(2, status, err)
    assert.matches("moves 2 leases from another connection or control app", err)
    assert.matches("opentact sync --routes " .. file .. " --yes", err, 1, true)
    assert.matches("^Plan: ", text)
    assert.equals(0, writes(emu))
    text, err, status = run("sync --routes " .. file .. " --yes --format json")
    assert.equals(0, status, err)
    local report = cjson.decode(text)
    assert.is_true(report.ok)
    assert.is_true(report.routes)
    assert.equals(3, #report.targets)
    assert.equals(2, #report.moves)
    assert.equals("sip-trunk-1", report.moves[1].from.name)
    assert.same(support.sorted({ leases[1], leases[5] }), support.sorted(state().assigned[conns[2]]))
  end)

  it("writes each lease's row with its target in csv", function()
    local file = tmpfile(ROUTES)
    finally(function() os.remove(file) end)
    local text, err, status = run("sync --routes " .. file .. " --dry-run --format csv")
    assert.equals(0, status, err)
    local lines = {}
    for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.equals("target_kind,target,target_name,uuid,number,action,result,error_kind,error_status,error_message",
      lines[1])
    assert.equals(5, #lines)
    assert.equals("connection," .. conns[2] .. ",sip-trunk-2," .. leases[1] .. ",12125550001,add,planned,,,", lines[2])
  end)

  it("names every problem of the file with its line, exit 2, nothing planned", function()
    local file = tmpfile("12125550001,sip-trunk-2\n12125550001,sip-trunk-3\nx,sip-trunk-1\n12125550004,nobody\n"
      .. "12125550004,nobody\n")
    support.finally(finally, function() os.remove(file) end)
    local text, err, status = run("plan --routes " .. file)
    assert.equals(2, status, err)
    assert.equals("", text)
    assert.matches("line 3: ", err)
    -- (a problem of the file itself is found before any request)
    local before = #emu:requests()
    local second = tmpfile("12125550001,sip-trunk-2\n12125550001,sip-trunk-3\n12125550004,nobody\n12125550004,nobody\n")
    support.finally(finally, function() os.remove(second) end)
    text, err, status = run("plan --routes " .. second)
    assert.equals("", text)
    assert.equals(2, status, err)
    assert.matches("line 2: 12125550001 is routed to SIP connection sip%-trunk%-3 %(.-%) here, and on line 1 to SIP "
      .. "connection sip%-trunk%-2", err)
    assert.matches("lines 3, 4: no SIP connection or control app is named \"nobody\"", err)
    assert.matches("nothing was changed", err)
    for k = before + 1, #emu:requests() do
      local r = emu:requests()[k]
      assert.truthy(r.path == "/sip/connection" or r.path == "/sip/app", r.path)
    end
    os.remove(file)
    text, err, status = run("plan sip-trunk-1 --routes " .. file)
    assert.equals("", text)
    assert.equals(2, status)
    assert.matches("takes no connection", err)
  end)

  it("plans a file of 200,000 lines", function()
    -- (the reading is the command line's own Lua code, the same on every
    -- Lua: once is enough, and it takes seconds)
    if not support.LUA:find("lua5%.4$") then
      return pending("a file of 200,000 lines is read in the lua5.4 run only")
    end
    local lines = { "number,target" }
    for i = 1, 200000 do lines[#lines + 1] = ("+1 646 %07d,sip-trunk-2"):format(i) end
    lines[#lines + 1] = "+12125550001,sip-trunk-2"
    local file = tmpfile(table.concat(lines, "\n") .. "\n")
    finally(function() os.remove(file) end)
    local text, err, status = run("plan --routes " .. file)
    -- every number but the last is missing: exit 1, the plan printed
    assert.equals(1, status, err)
    assert.matches("^Plan: 0 to add, 0 to move, 0 to remove, 0 unchanged, 1 conflict, 200000 missing, over 1 target%.",
      text)
    assert.equals(0, writes(emu))
  end)
end)
