-- opentact assign against leases held elsewhere (refused unless --move,
-- released from a control app first with it), --remove of what the
-- target does not hold, every bad input line named in one run, what
-- --skip-invalid does in sync, and "did you mean" for a mistyped command
-- or option. Against the emulator over real sockets.
local support = require("emulator")
local cjson = require("cjson")

local tmpfile = support.tmpfile

-- bin/opentact with `args` (shell words) against an emulator: standard
-- output, standard error and the exit status.
local opentact = require("cli").opentact

describe("opentact assign and input files #wire", function()
  local emu, conns, leases, apps

  setup(function()
    -- connection 1 holds leases 1 to 3; app 1 holds lease 60, app 2 lease 59
    emu, conns, leases, apps = support.start_with_uuids({ leases = 60, apps = 2 })
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  local function run(args) return opentact(emu, args) end

  -- The POSTs the emulator received since the last reset: {path, body}.
  local function posts()
    local out = {}
    for _, r in ipairs(emu:requests()) do
      if r.method == "POST" then out[#out + 1] = { path = r.path, body = cjson.decode(r.body) } end
    end
    return out
  end

  describe("assign --add of a lease held elsewhere", function()
    it("is refused before anything is sent, exit 2, naming each lease and its holder", function()
      -- lease 1 by number (held by connection 1), lease 60 by uuid (held by app 1)
      local file = tmpfile("number\n+1 212 555 0059\n")
      local out, err, status = run(("assign %s --add 12125550001 %s --add %s --add-file %s")
        :format(conns[2], leases[60], leases[20], file))
      os.remove(file)
      assert.equals(2, status, out .. err)
      assert.equals(0, #posts(), out .. err)
      for _, want in ipairs({ "SIP connection sip-trunk-1 (" .. conns[1] .. ")",
        "SIP control app control-app-1 (" .. apps[1] .. ")", "SIP control app control-app-2 (" .. apps[2] .. ")",
        "12125550001", leases[1], leases[60], leases[59], "--move" }) do
        assert.is_truthy(err:find(want, 1, true), want .. " in:\n" .. err)
      end
      -- where each came from
      assert.is_truthy(err:find("--add: 12125550001", 1, true), err)
      assert.is_truthy(err:find(":2: 12125550059", 1, true), err)
      -- the free one is not named, and nothing changed
      assert.is_falsy(err:find(leases[20], 1, true), err)
      local st = emu:state()
      assert.same({ leases[1], leases[2], leases[3] }, st.assigned[conns[1]])
      assert.same({}, st.assigned[conns[2]])
      assert.same({ leases[60] }, st.app_assigned[apps[1]])
    end)

    it("is never sent when its lookup finds nothing: a stale index must not let the attach move it", function()
      -- lease 1 is on connection 1; its lookup answers 404 once
      emu:faults({ { status = 404, message = "TNLease not found" } })
      local out, err, status = run(("assign %s --add %s"):format(conns[2], leases[1]))
      assert.equals(1, status, out .. err)
      assert.is_truthy(err:find("--add: the account has no lease " .. leases[1], 1, true), err)
      assert.equals(0, #posts())
      assert.same({ leases[1], leases[2], leases[3] }, emu:state().assigned[conns[1]])
      -- --skip-invalid leaves it out, named (and then there is nothing to assign)
      emu:faults({ { status = 404, message = "TNLease not found" } })
      out, err, status = run(("assign %s --add %s --skip-invalid"):format(conns[2], leases[1]))
      assert.equals(2, status, out .. err)
      assert.is_truthy(err:find("skipped --add: the account has no lease " .. leases[1], 1, true), err)
      assert.equals(0, #posts())
    end)

    it("is refused as JSON under --json, kind conflict", function()
      local out, _, status = run(("assign %s --add %s --json"):format(conns[2], leases[2]))
      assert.equals(2, status, out)
      local answer = cjson.decode(out)
      assert.is_false(answer.ok)
      assert.equals("conflict", answer.error.kind)
      assert.is_truthy(answer.error.message:find(conns[1], 1, true), out)
      assert.equals(0, #posts())
    end)

    it("is taken with --move: released from its app first, moved off its connection, and said so", function()
      local out, err, status = run(("assign %s --add %s %s %s --move"):format(conns[2], leases[1], leases[60], leases[20]))
      assert.equals(0, status, out .. err)
      local st = emu:state()
      local held = support.set(st.assigned[conns[2]])
      assert.is_true(held[leases[1]] and held[leases[60]] and held[leases[20]], out)
      assert.same({ leases[2], leases[3] }, st.assigned[conns[1]])
      assert.same({}, st.app_assigned[apps[1]])
      -- the app was asked to let go before the connection took it
      local app_post, conn_post
      for i, p in ipairs(posts()) do
        if p.path:find(apps[1], 1, true) then app_post = app_post or i end
        if p.path:find(conns[2], 1, true) and p.body.add and support.set(p.body.add)[leases[60]] then
          conn_post = conn_post or i
        end
      end
      assert.is_truthy(app_post and conn_post and app_post < conn_post, out)
      assert.is_truthy(out:find("moved 12125550001 " .. leases[1] .. " from SIP connection sip-trunk-1 (" .. conns[1] .. ")",
        1, true), out)
      assert.is_truthy(out:find("moved 12125550060 " .. leases[60] .. " from SIP control app control-app-1 (" .. apps[1] .. ")",
        1, true), out)
      assert.is_truthy(out:find("ok: 3 applied (3 added, 0 removed), 0 failed", 1, true), out)
    end)

    it("reports a lease already on the target, sends nothing for it, and exits 0", function()
      local out, err, status = run(("assign %s --add %s 12125550003"):format(conns[1], leases[2]))
      assert.equals(0, status, out .. err)
      assert.is_truthy(out:find("already on " .. conns[1] .. ": 12125550002 " .. leases[2], 1, true), out)
      assert.is_truthy(out:find("already on " .. conns[1] .. ": 12125550003 " .. leases[3], 1, true), out)
      assert.equals(0, #posts())
      assert.same({ leases[1], leases[2], leases[3] }, emu:state().assigned[conns[1]])
    end)
  end)

  describe("assign --remove of a lease the target does not hold", function()
    it("is reported as not on the target as written, nothing sent for it, exit 0", function()
      local target = conns[1]:upper()
      local out, err, status = run(("assign %s --remove %s 12125550011 %s"):format(target, leases[10], leases[1]))
      assert.equals(0, status, out .. err)
      assert.is_truthy(out:find("not on " .. target .. ": " .. leases[10], 1, true), out)
      assert.is_truthy(out:find("not on " .. target .. ": 12125550011", 1, true), out)
      assert.is_truthy(out:find("ok: 1 applied (0 added, 1 removed)", 1, true), out)
      local sent = posts()
      assert.equals(1, #sent)
      assert.same({ leases[1] }, sent[1].body.remove)
      assert.same({ leases[2], leases[3] }, emu:state().assigned[conns[1]])
    end)

    it("sends nothing at all when nothing given is on the target, and says so in every format", function()
      local out, err, status = run(("assign %s --remove %s"):format(conns[2], leases[1]))
      assert.equals(0, status, out .. err)
      assert.is_truthy(out:find("not on " .. conns[2] .. ": " .. leases[1], 1, true), out)
      assert.equals(0, #posts())
      out, err, status = run(("assign %s --remove %s --format csv"):format(conns[2], leases[1]))
      assert.equals(0, status, out .. err)
      assert.equals("uuid,number,action,result,error_kind,error_status,error_message\n"
        .. leases[1] .. ",,remove,unchanged,,,not on " .. conns[2] .. "\n", out)
      out, err, status = run(("assign %s --remove %s --json"):format(conns[2], leases[1]))
      assert.equals(0, status, out .. err)
      local report = cjson.decode(out)
      assert.is_true(report.ok)
      assert.same({ leases[1] }, report.not_on_target)
      assert.equals(0, #posts())
    end)
  end)

  describe("assign --remove of a number without its country code", function()
    it("is refused, nothing sent, when the target holds a number that ends with it", function()
      local file = tmpfile("# to remove\n2125550002\n")
      local out, err, status = run(("assign %s --remove 2125550001 12125550003 --remove-file %s")
        :format(conns[1], file))
      os.remove(file)
      assert.equals(2, status, out .. err)
      assert.equals(0, #posts(), out .. err)
      for _, want in ipairs({ "--remove: 2125550001 is not on " .. conns[1] .. ", which holds 12125550001, the "
        .. "same number with a country code", ":2: 2125550002 is not on " .. conns[1] .. ", which holds 12125550002",
        "give numbers with their country code (e.g. +1 212 555 0100); nothing was sent" }) do
        assert.is_truthy(err:find(want, 1, true), want .. " in:\n" .. err)
      end
      assert.same({ leases[1], leases[2], leases[3] }, emu:state().assigned[conns[1]])
      -- under --json: the error, kind invalid
      out, err, status = run(("assign %s --remove 2125550001 --json"):format(conns[1]))
      assert.equals(2, status, out .. err)
      local answer = cjson.decode(out)
      assert.is_false(answer.ok)
      assert.equals("invalid", answer.error.kind)
      assert.equals(0, #posts())
    end)

    it("is not on the target as before when written with a + (its country code) or too short to be one", function()
      local out, err, status = run(("assign %s --remove +2125550001"):format(conns[1]))
      assert.equals(0, status, out .. err)
      assert.is_truthy(out:find("not on " .. conns[1] .. ": 2125550001", 1, true), out)
      assert.equals(0, #posts())
    end)
  end)

  describe("assign --skip-invalid", function()
    it("names what it left out in every format, not only on standard error", function()
      local file = tmpfile("not a lease\n" .. leases[20] .. "\n")
      finally(function() os.remove(file) end)
      local args = ("assign %s --add-file %s --add 12125559999 --remove %s %s --skip-invalid")
        :format(conns[2], file, leases[21], leases[20])
      local out, err, status = run(args .. " --format csv")
      assert.equals(0, status, out .. err)
      local bad_line = file .. ":1: no lease uuid or phone number on this line: not a lease"
      local missing = "--add: no lease of the account holds the number 12125559999"
      local twice = "--remove: " .. leases[20] .. " in both --add and --remove again (first at " .. file .. ":2, add)"
      -- a cell that starts with - is written with a ' (never a formula)
      for _, row in ipairs({ ",,add,skipped,,," .. bad_line, ",,add,skipped,,,'" .. missing,
        ",,remove,skipped,,,\"'" .. twice .. "\"" }) do
        assert.is_truthy(out:find("\n" .. row .. "\n", 1, true), row .. " in:\n" .. out)
      end
      -- a lease in both lists is left out of both: its add is not sent either
      assert.is_falsy(out:find(leases[20] .. ",12125550020,add,", 1, true), out)
      assert.equals(0, #posts())
      assert.is_truthy(err:find("skipped " .. bad_line, 1, true), err)
      emu:reset()
      out, err, status = run(args .. " --json")
      assert.equals(0, status, out .. err)
      local report = cjson.decode(out)
      assert.same({ bad_line, missing, twice }, report.skipped)
      emu:reset()
      out, err, status = run(args .. " --format jsonl")
      assert.equals(0, status, out .. err)
      local skipped = {}
      for line in out:gmatch("[^\n]+") do
        local row = cjson.decode(line)
        if row.result == "skipped" then skipped[#skipped + 1] = row.error_message end
      end
      assert.same({ bad_line, missing, twice }, skipped)
      -- without --skip-invalid a report names nothing skipped
      emu:reset()
      out = run(("assign %s --add %s --json"):format(conns[2], leases[22]))
      assert.same({}, cjson.decode(out).skipped)
    end)
  end)

  describe("assign --move", function()
    it("names the holder the lease was released from, not the one its first lookup saw", function()
      -- lease 60 is on app 1; its first lookup says app 2 holds it
      emu:faults({ { status = 200, ctype = "application/json", body = ('{"success":true,"payload":{"uuid":"%s",'
        .. '"tn":{"tn":"12125550060"},"sip_connection":null,"sip_control_app":{"uuid":"%s","name":"control-app-2"}}}')
        :format(leases[60], apps[2]) } })
      local out, err, status = run(("assign %s --add %s --move"):format(conns[2], leases[60]))
      assert.equals(0, status, out .. err)
      assert.same({}, emu:state().app_assigned[apps[1]])
      assert.is_truthy(out:find("moved 12125550060 " .. leases[60] .. " from SIP control app control-app-1 ("
        .. apps[1] .. ")", 1, true), out)
      assert.is_falsy(out:find(apps[2], 1, true), out)
    end)
  end)

  describe("input files", function()
    it("name every bad line, with its number and its content escaped, in one run", function()
      local file = tmpfile(leases[5] .. "\nnot a lease\n" .. leases[6] .. "\n\27[31mred\n212-CALL-NOW\n")
      local out, err, status = run(("assign %s --add-file %s --add nope"):format(conns[2], file))
      assert.equals(2, status, out .. err)
      assert.is_truthy(err:find(":2: no lease uuid or phone number on this line: not a lease", 1, true), err)
      assert.is_truthy(err:find(":4: no lease uuid or phone number on this line: \\027[31mred", 1, true), err)
      assert.is_truthy(err:find(":5: [^\n]*: 212%-CALL%-NOW"), err)
      assert.is_truthy(err:find("--add: 'nope' is not a lease uuid or a phone number", 1, true), err)
      assert.is_falsy(err:find("\27", 1, true), err)
      assert.equals(0, emu:stats().requests)
      os.remove(file)
    end)

    it("name the first 20 bad lines and count the rest", function()
      local lines = {}
      for i = 1, 25 do lines[i] = "bad line " .. i end
      local file = tmpfile(table.concat(lines, "\n") .. "\n")
      local out, err, status = run(("sync %s --numbers-file %s"):format(conns[2], file))
      os.remove(file)
      assert.equals(2, status, out .. err)
      assert.is_truthy(err:find(":20: [^\n]*bad line 20\n"), err)
      assert.is_falsy(err:find("bad line 21", 1, true), err)
      assert.is_truthy(err:find("and 5 more", 1, true), err)
      assert.is_truthy(err:find("25 bad lines", 1, true), err)
      assert.equals(0, emu:stats().requests)
    end)

    it("in sync name every bad line and every line of the wrong kind", function()
      local file = tmpfile("+1 212 555 0010\nabc\n" .. leases[7] .. "\n12125550011\nxyz\n")
      local out, err, status = run(("sync %s --numbers-file %s --dry-run"):format(conns[2], file))
      assert.equals(2, status, out .. err)
      assert.is_truthy(err:find(":2: [^\n]*: abc\n"), err)
      assert.is_truthy(err:find(":5: [^\n]*: xyz\n"), err)
      assert.equals(0, emu:stats().requests)
      -- only kinds left: every one named
      local uuids = tmpfile(leases[7] .. "\n12125550011\n12125550012\n")
      out, err, status = run(("sync %s --leases-file %s --dry-run"):format(conns[2], uuids))
      assert.equals(2, status, out .. err)
      assert.is_truthy(err:find(":2: a phone number in --leases-file", 1, true), err)
      assert.is_truthy(err:find(":3: a phone number in --leases-file", 1, true), err)
      os.remove(file)
      os.remove(uuids)
    end)

    it("with sync --skip-invalid: leaves out the bad lines, keeps missing numbers in the plan, as its help says", function()
      local file = tmpfile("+1 212 555 0010\nabc\n" .. leases[7] .. "\n+1 999 555 0000\n")
      local out, err, status = run(("sync %s --numbers-file %s --dry-run --skip-invalid"):format(conns[2], file))
      os.remove(file)
      assert.equals(1, status, out .. err)
      assert.is_truthy(err:find("skipped [^\n]*:2: [^\n]*abc"), err)
      assert.is_truthy(err:find("skipped [^\n]*:3: a lease uuid in %-%-numbers%-file"), err)
      assert.is_truthy(out:find("+ 12125550010", 1, true), out .. err)
      assert.is_truthy(out:find("? +1 999 555 0000", 1, true), out)
      local help = run("sync --help")
      local text = help:match("\n  %-%-skip%-invalid(.-)\n  %-%-"):gsub("%s+", " ")
      assert.is_truthy(text:find("sync keeps numbers the account has no lease for in its plan", 1, true), text)
    end)

    it("with sync --exact --skip-invalid: refuses, naming the lines, since their leases would be detached", function()
      -- the connection holds the first three leases: a bad line meant for
      -- one of them must not let --exact detach it
      local file = tmpfile("+1 212 555 0000\n12125550001 ext 5\n+1 212 555 0002\n")
      for _, dry in ipairs({ " --dry-run", "" }) do
        local out, err, status = run(("sync %s --numbers-file %s --exact --skip-invalid%s"):format(conns[1], file, dry))
        assert.equals(2, status, out .. err)
        assert.is_truthy(err:find(":2: [^\n]*12125550001 ext 5"), err)
        assert.is_truthy(err:find("--exact with --skip-invalid detaches the leases those lines meant", 1, true), err)
      end
      os.remove(file)
      assert.equals(0, emu:stats().requests)
      assert.same({ leases[1], leases[2], leases[3] }, emu:state().assigned[conns[1]])
    end)
  end)

  describe("did you mean", function()
    it("suggests the command a mistyped one was close to", function()
      for _, args in ipairs({ "lsit " .. conns[1], "lsit --help", "help lsit", "snyc" }) do
        local _, err, status = run(args)
        assert.equals(2, status, args)
        assert.is_truthy(err:find("unknown command '" .. (args:find("^help") and "lsit" or args:match("^%S+")) .. "'",
          1, true), err)
        assert.is_truthy(err:find("did you mean '" .. (args:find("snyc") and "sync" or "list") .. "'?", 1, true), err)
      end
      local _, err = run("frobnicate")
      assert.is_falsy(err:find("did you mean", 1, true), err)
    end)

    it("suggests the option a mistyped one was close to", function()
      local _, err, status = run(("sync %s --exat --all-leases"):format(conns[1]))
      assert.equals(2, status, err)
      assert.is_truthy(err:find("unknown option --exat: did you mean --exact?", 1, true), err)
      _, err, status = run(("list %s --formt json"):format(conns[1]))
      assert.equals(2, status, err)
      assert.is_truthy(err:find("did you mean --format?", 1, true), err)
      _, err = run(("list %s --zzzzzzzz"):format(conns[1]))
      assert.is_falsy(err:find("did you mean", 1, true), err)
      assert.equals(0, emu:stats().requests)
    end)
  end)
end)
