-- The command line's targets: CONN by name, app:NAME for a control app,
-- an ambiguous or unknown name refused with exit 2 and nothing sent;
-- `opentact connections` and `opentact apps` (every format, --count),
-- `opentact lease set`, `opentact names` and its cache, and the
-- completion of CONN. Against the emulator over real sockets.
local support = require("emulator")
local cjson = require("cjson")

local tmpfile, writes = support.tmpfile, support.writes
local opentact = require("cli").opentact

describe("opentact with targets #wire", function()
  local emu, conns, leases, apps, home

  setup(function()
    -- connection 3 is named as connection 1 is; the apps hold nothing
    emu, conns, leases, apps = support.start_with_uuids({ leases = 40,
      names = { connection = { [3] = "sip-trunk-1" } } })
    home = support.sh("mktemp -d"):gsub("%s+$", "")
  end)
  teardown(function()
    if emu then emu:stop() end
    if home then os.execute("rm -rf '" .. home .. "'") end
  end)
  before_each(function() emu:reset() end)

  -- bin/opentact with a home of its own (the names cache lives there)
  local function run(args, opts)
    opts = opts or {}
    opts.extra = "HOME=" .. home .. " XDG_CACHE_HOME=" .. home .. "/cache " .. (opts.extra or "")
    return opentact(emu, args, opts)
  end

  it("takes a connection's name and app:NAME wherever CONN is", function()
    local out, err, status = run("list sip-trunk-2")
    assert.equals(0, status, err)
    assert.matches("^0 leases", out)
    out, err, status = run("assign app:control-app-1 --add +1 212 555 0010")
    assert.equals(0, status, err)
    assert.matches("applied", out, 1, true)
    assert.same({ leases[10] }, emu:state().app_assigned[apps[1]])
    out, err, status = run("list app:control-app-1 --json")
    assert.equals(0, status, err)
    assert.equals(leases[10], cjson.decode(out)[1].uuid)
    out, err, status = run("list app:" .. apps[1])
    assert.equals(0, status, err)
    assert.matches("^1 lease\n", out)
    -- sync onto the app takes a lease off a connection (released first)
    local file = tmpfile("+1 212 555 0001\n+1 212 555 0010\n")
    support.finally(finally, function() os.remove(file) end)
    out, err, status = run(("sync app:control-app-1 --numbers-file %s --move --yes"):format(file))
    assert.equals(0, status, out .. err)
    assert.matches("SIP control app control-app-1 (" .. apps[1] .. "):", out, 1, true)
    assert.matches("released 1 from SIP connection sip-trunk-1 (" .. conns[1] .. ") first", out, 1, true)
    assert.same(support.sorted({ leases[1], leases[10] }), support.sorted(emu:state().app_assigned[apps[1]]))
    -- and a plan for it, saved and applied
    local plan = os.tmpname()
    support.finally(finally, function() os.remove(plan) end)
    out, err, status = run(("plan sip-trunk-2 --numbers-file %s --move --out %s"):format(file, plan))
    assert.equals(0, status, out .. err)
    assert.matches("SIP connection sip-trunk-2 (" .. conns[2] .. "):", out, 1, true)
    out, err, status = run("apply " .. plan)
    assert.equals(0, status, out .. err)
    assert.same(support.sorted({ leases[1], leases[10] }), support.sorted(emu:state().assigned[conns[2]]))
  end)

  it("says a bare uuid that is no connection may be a control app's", function()
    local _, err, status = run("list " .. apps[1])
    assert.equals(1, status)
    assert.matches("not_found (404): SIP connection not found", err, 1, true)
    assert.matches("if " .. apps[1] .. " is a SIP control app, give it as app:" .. apps[1], err, 1, true)
    local file = tmpfile("+1 212 555 0004\n")
    finally(function() os.remove(file) end)
    _, err, status = run(("sync %s --numbers-file %s --dry-run"):format(apps[1], file))
    assert.equals(1, status)
    assert.matches("give it as app:" .. apps[1], err, 1, true)
    -- a connection's 404 for another reason says nothing of apps
    _, err = run("list sip-trunk-2", { token = "x" })
    assert.is_falsy(err:find("control app", 1, true), err)
  end)

  it("reports each move of assign onto an app, from a connection and from another app", function()
    local two = support.start({ leases = 10, apps = 2 })
    finally(function() two:stop() end)
    local st = two:state()
    local out, err, status = opentact(two, "assign app:control-app-2 --add +12125550001 --add +12125550010 --move --json")
    assert.equals(0, status, err)
    local moved = {}
    for _, m in ipairs(cjson.decode(out).moved or {}) do moved[m.uuid] = m end
    assert.truthy(moved[st.leases[1]], out)
    assert.truthy(moved[st.leases[10]], out)
  end)

  it("refuses an ambiguous or unknown name with exit 2, the candidates listed, nothing sent", function()
    local posts = writes(emu)
    local _, err, status = run("assign sip-trunk-1 --add +1 212 555 0010")
    assert.equals(2, status)
    assert.matches('the name "sip-trunk-1" is ambiguous: 2 have it', err, 1, true)
    assert.matches(conns[1], err, 1, true)
    assert.matches(conns[3], err, 1, true)
    local out
    out, err, status = run("list nobody --format json")
    assert.equals(2, status)
    assert.equals("not_found", cjson.decode(out).error.kind)
    assert.matches("opentact: not_found", err, 1, true)
    out, err, status = run("sync connection:control-app-1 --all-leases --yes")
    assert.equals(2, status)
    assert.equals("", out)
    assert.matches("no SIP connection is named", err, 1, true)
    assert.equals(posts, writes(emu))
  end)

  it("lists connections and apps in every format, and counts their leases", function()
    local out, err, status = run("connections")
    assert.equals(0, status, err)
    assert.matches("^4 SIP connections\n  uuid +name +state\n", out)
    assert.matches(conns[3] .. "  sip-trunk-1  active", out, 1, true)
    out, err, status = run("connections --count --format csv")
    assert.equals(0, status, err)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.same({ "uuid,name,is_active,leases", conns[1] .. ",sip-trunk-1,true,3", conns[2] .. ",sip-trunk-2,true,0",
      conns[3] .. ",sip-trunk-1,true,0", conns[4] .. ",sip-trunk-4,true,0" }, lines)
    out, err, status = run("apps --count --json")
    assert.equals(0, status, err)
    local list = cjson.decode(out)
    assert.equals(2, #list)
    assert.equals("control-app-1", list[1].name)
    assert.equals(0, list[1].leases)
    assert.equals("https://ivr.example.com/app/1", list[1].webhook_url)
    out, err, status = run("apps --format jsonl")
    assert.equals(0, status, err)
    assert.equals(apps[2], cjson.decode(out:match("\n(.-)\n$")).uuid)
    out, err, status = run("apps --format tsv")
    assert.equals(0, status, err)
    assert.matches("^uuid\tname\tis_active\n", out)
    -- a list that fails: its count empty, named, exit 1
    emu:faults({ { on = "^GET /sip/connection/.*tnlease", status = 500, message = "down" } })
    out, err, status = run("connections --count --retries 0 --format csv")
    assert.equals(1, status)
    assert.matches(conns[1] .. ",sip-trunk-1,true,\n", out, 1, true)
    assert.matches("SIP connection sip-trunk-1 (" .. conns[1] .. "): opentact: server (500): down", err, 1, true)
  end)

  it("shows one progress line on a terminal while it counts", function()
    local out, err, status = require("cli").main(emu, { "apps", "--count" }, { is_terminal = true })
    assert.equals(0, status, err)
    assert.matches("%] 2/2 SIP control apps +100%%", err)
    assert.equals(1, select(2, err:gsub("\n", "")))
    assert.matches("^2 SIP control apps\n", out)
  end)

  it("counts many connections a few at once", function()
    local many = support.start({ connections = 60, leases = 10 })
    finally(function() many:stop() end)
    many:config({ latency = 0.05 })
    local out, err, status = opentact(many, "connections --count --concurrency 6 --format csv",
      { extra = "HOME=" .. home })
    assert.equals(0, status, err)
    local n = 0
    for _ in out:gmatch("\n") do n = n + 1 end
    assert.equals(61, n)
    assert.equals(6, many:stats().inflight_max)
  end)

  it("sets a lease's autorenew and features, and refuses a value that is not on or off", function()
    local out, err, status = run("lease set +1 212 555 0004 --autorenew off --sms on --json")
    assert.equals(0, status, err)
    local lease = cjson.decode(out)[1]
    assert.equals(leases[4], lease.uuid)
    assert.is_false(lease.autorenew)
    assert.is_true(lease.sms)
    local req = emu:requests()[#emu:requests()]
    assert.equals("PATCH", req.method)
    assert.equals('{"autorenew":false,"sms":true}', req.body)
    out, err, status = run("lease set " .. leases[5] .. " --autorenew on")
    assert.equals(0, status, err)
    assert.matches("12125550005", out, 1, true)
    local from = #emu:requests()
    out, err, status = run("lease set +1 212 555 0004 --autorenew maybe")
    assert.equals(2, status)
    assert.matches("--autorenew takes on or off, not 'maybe'", err, 1, true)
    assert.equals("", out)
    out, err, status = run("lease set +1 212 555 0004")
    assert.equals(2, status)
    assert.matches("nothing to set", err, 1, true)
    assert.equals("", out)
    out, err, status = run("lease get +1 212 555 0004 --autorenew on")
    assert.equals(2, status)
    assert.matches("give what to do: lease set", err, 1, true)
    assert.equals("", out)
    assert.equals(from, #emu:requests())
    out, err, status = run("lease set +1 999 555 0000 --autorenew on")
    assert.equals(1, status)
    assert.matches("not_found", err, 1, true)
    assert.equals("", out)
  end)

  it("makes the desired leases' autorenew what --autorenew says, in sync and plan", function()
    local file = tmpfile("+1 212 555 0004\n+1 212 555 0006\n")
    finally(function() os.remove(file) end)
    local out, err, status = run(("sync sip-trunk-2 --numbers-file %s --autorenew off --dry-run"):format(file))
    assert.equals(0, status, err)
    assert.matches("2 to add, 0 to remove, 0 unchanged, 0 conflicts, 0 missing, 1 to set autorenew off.", out, 1, true)
    assert.matches("~ 12125550004 ", out, 1, true)
    -- turning renewal off is asked, as a detach is: without a terminal, --yes
    out, err, status = run(("sync sip-trunk-2 --numbers-file %s --autorenew off"):format(file))
    assert.equals(2, status)
    assert.matches("turns autorenew off for 1 lease; nothing was changed", err, 1, true)
    assert.matches("~ 12125550004 ", out, 1, true)
    out, err, status = run(("sync sip-trunk-2 --numbers-file %s --autorenew off --yes --format csv"):format(file))
    assert.equals(0, status, err)
    assert.matches("\n" .. leases[4] .. ",12125550004,autorenew,applied,,,autorenew off\n", out, 1, true)
    local patched = {}
    for _, r in ipairs(emu:requests()) do
      if r.method == "PATCH" then patched[#patched + 1] = r.path .. " " .. r.body end
    end
    assert.same({ "/lease/tn/" .. leases[4] .. ' {"autorenew":false}' }, patched)
    out, err, status = run(("plan sip-trunk-2 --numbers-file %s --autorenew yes"):format(file))
    assert.equals(2, status)
    assert.matches("--autorenew takes on or off, not 'yes'", err, 1, true)
    assert.equals("", out)
  end)

  it("prints the names for completion, kept a while, and nothing when the server does not answer", function()
    local out, err, status = run("names")
    assert.equals(0, status, err)
    assert.equals("sip-trunk-1\nsip-trunk-2\nsip-trunk-4\napp:control-app-1\napp:control-app-2\n", out)
    -- kept: a second run reads nothing
    local from = #emu:requests()
    out, err, status = run("names")
    assert.equals(0, status, err)
    assert.matches("^sip%-trunk%-1\n", out)
    assert.equals(from, #emu:requests())
    -- another URL: nothing kept for it, one bounded attempt, then nothing
    local port = support.free_port()
    local t0 = os.time()
    out, err, status = run("names", { url = "http://127.0.0.1:" .. port })
    assert.equals(1, status)
    assert.equals("", out)
    assert.equals("", err)
    assert.is_true(os.time() - t0 <= 4)
  end)

  it("offers a connection whose name would read as something else with its kind", function()
    local odd = support.start({ names = { connection = { [2] = "app:x", [3] = "66eb0a8a-571e-41b1-8f50-4d97275cfab7" } } })
    finally(function() odd:stop() end)
    local out, err, status = opentact(odd, "names", { extra = "HOME=" .. home .. " XDG_CACHE_HOME=" .. home .. "/c2" })
    assert.equals(0, status, err)
    assert.equals("sip-trunk-1\nconnection:app:x\nconnection:66eb0a8a-571e-41b1-8f50-4d97275cfab7\nsip-trunk-4\n"
      .. "app:control-app-1\napp:control-app-2\n", out)
    -- and each resolves to that connection
    local st = odd:state()
    out, err, status = opentact(odd, "list connection:app:x --json")
    assert.equals(0, status, err)
    assert.same({}, cjson.decode(out))
    assert.equals(st.connections[2], assert(odd:client():target("connection:app:x")).uuid)
  end)

  it("keeps names only in a home that is there", function()
    local missing = home .. "/no-such-home"
    local _, err, status = opentact(emu, "connections", { extra = "HOME=" .. missing })
    assert.equals(0, status, err)
    assert.is_nil(io.open(missing .. "/.cache/opentact/names"))
    assert.is_nil(io.open(missing))
  end)

  it("completes CONN with the names, in bash", function()
    assert(run("names"))
    local script = tmpfile(table.concat({
      ". " .. support.ROOT .. "/completion/opentact.bash",
      "export PATH=" .. support.ROOT .. "/.rocks/" .. (os.getenv("OPENTACT_SPEC_LUA") or "lua5.4") .. "/bin:$PATH",
      "export HOME=" .. home .. " XDG_CACHE_HOME=" .. home .. "/cache OPENTACT_URL=" .. emu.url
        .. " OPENTACT_TOKEN=" .. emu.token,
      "COMP_WORDS=(opentact list sip); COMP_CWORD=2; _opentact; printf '%s\\n' \"${COMPREPLY[@]}\"; echo ==",
      "COMP_WORDS=(opentact sync app:); COMP_CWORD=2; _opentact; printf '%s\\n' \"${COMPREPLY[@]}\"; echo ==",
      "COMP_WORDS=(opentact lease set 1 --autorenew o); COMP_CWORD=5; _opentact; printf '%s\\n' \"${COMPREPLY[@]}\"; echo ==",
      -- as bash calls it: the line, and the words split at ':' too; the
      -- reply replaces what follows the last ':'
      "COMP_WORDBREAKS=$' \\t\\n\"\\'><=;|&(:'",
      "COMP_LINE='opentact --url " .. emu.url .. " list app:con'; COMP_POINT=${#COMP_LINE}",
      "COMP_WORDS=(opentact --url http : //127.0.0.1 : 1 list app : con); COMP_CWORD=9; COMPREPLY=(); _opentact;"
        .. " printf '%s\\n' \"${COMPREPLY[@]}\"; echo ==",
      "COMP_LINE='opentact list --format=c'; COMP_POINT=${#COMP_LINE}",
      "COMP_WORDS=(opentact list --format = c); COMP_CWORD=4; COMPREPLY=(); _opentact; printf '%s\\n' \"${COMPREPLY[@]}\"",
    }, "\n") .. "\n")
    finally(function() os.remove(script) end)
    local out = support.sh("bash " .. script .. " 2>&1")
    assert.equals("sip-trunk-1\nsip-trunk-2\nsip-trunk-4\n==\napp:control-app-1\napp:control-app-2\n==\non\noff\n==\n"
      .. "control-app-1\ncontrol-app-2\n==\ncsv\n", out)
  end)
end)
