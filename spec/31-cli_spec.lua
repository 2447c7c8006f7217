-- The opentact command end to end against the emulator: output, exit
-- status, files and standard input, --failed-file, --json, usage errors.
local support = require("emulator")
local cjson = require("cjson")
local socket = require("socket")
local cli = require("opentact.cli")
local cmdline = require("cli")

local sh = support.run

local tmpfile = support.tmpfile

describe("the opentact command #wire", function()
  local emu, conns, leases, run

  setup(function()
    emu, conns, leases = support.start_with_uuids({ leases = 400 })
    -- no login credentials or kept token of the machine's user can leak in
    run = function(args, env)
      local out, _, status = cmdline.opentact(emu, args,
        { token = env and env.token, extra = env and env.extra, stderr = "merge" })
      return out, status
    end
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  describe("list", function()
    it("prints a readable table", function()
      local out, status = run("list " .. conns[1])
      assert.equals(0, status)
      assert.is_truthy(out:find("^3 leases\n  uuid%s+number%s+expires%s+autorenew\n"), out)
      assert.is_truthy(out:find(leases[1]:gsub("%-", "%%-") .. "%s+12125550001%s"), out)
    end)

    it("prints the payload as JSON with --json", function()
      local out, status = run("list --json " .. conns[1])
      assert.equals(0, status)
      local payload = cjson.decode(out)
      assert.equals(3, #payload)
      assert.is_truthy(out:find('"tn":12125550001', 1, true))
      assert.is_truthy(out:find('"users":[]', 1, true))
    end)

    it("exits 1 with the error when the API refuses", function()
      local out, status = run("list 66eb0a8a-571e-41b1-8f50-4d97275cfab7")
      assert.equals(1, status)
      assert.is_truthy(out:find("opentact: not_found (404)", 1, true), out)
    end)

    it("exits 2 for a name no connection or app has, and never shows the token", function()
      local out, status = run("list nope")
      assert.equals(2, status)
      assert.is_truthy(out:find('opentact: not_found: no SIP connection or control app is named "nope"', 1, true), out)
      out, status = run("list app:1234")
      assert.equals(2, status)
      assert.is_truthy(out:find("opentact: not_found", 1, true), out)
      local out2, status2 = run("list " .. conns[1], { token = "secret-token-value-xyz" })
      assert.equals(1, status2)
      assert.is_truthy(out2:find("opentact: auth (401)", 1, true))
      assert.is_falsy(out2:find("secret-token-value-xyz", 1, true))
    end)
  end)

  describe("assign", function()
    it("adds and removes from arguments", function()
      local out, status = run(("assign %s --add %s %s --remove %s"):format(conns[1], leases[10], leases[11], leases[1]))
      assert.equals(0, status, out)
      assert.is_truthy(out:find("^ok: 3 applied %(2 added, 1 removed%), 0 failed"), out)
      assert.same({ leases[2], leases[3], leases[10], leases[11] }, emu:state().assigned[conns[1]])
    end)

    it("reads a CSV file and standard input", function()
      local csv = tmpfile(('lease,label\r\n"%s",one\r\n# a comment\n\n%s,two\n'):format(leases[20]:upper(), leases[21]))
      local list = tmpfile(leases[22] .. "\n")
      local out, status = run(("assign %s --add-file %s --add-file - < %s"):format(conns[2], csv, list))
      os.remove(csv)
      os.remove(list)
      assert.equals(0, status, out)
      assert.same({ leases[20], leases[21], leases[22] }, emu:state().assigned[conns[2]])
    end)

    it("exits 1 and writes the failed uuids for a re-run", function()
      local lines = {}
      for i = 101, 400 do lines[#lines + 1] = leases[i] end
      local file = tmpfile(table.concat(lines, "\n") .. "\n")
      local failed = os.tmpname()
      -- the 300 lookups (who holds each lease), then the batches
      local faults = {}
      for i = 1, 301 do faults[i] = {} end
      faults[302] = { status = 500, message = "rejected batch" }
      emu:faults(faults)
      local out, status = run(("assign %s --add-file %s --batch-size 100 --concurrency 1 --failed-file %s")
        :format(conns[3], file, failed))
      assert.equals(1, status, out)
      assert.is_truthy(out:find("not ok: 200 applied", 1, true), out)
      assert.is_truthy(out:find("--add-file " .. failed, 1, true), out)
      local f = assert(io.open(failed))
      local text = f:read("*a")
      f:close()
      local expected = {}
      for i = 201, 300 do expected[#expected + 1] = leases[i] end
      local why, rest = text:match("^(# [^\n]*)\n(.*)$")
      assert.is_truthy(why:find("opentact: server (500): rejected batch", 1, true), why)
      assert.equals(table.concat(expected, "\n") .. "\n", rest)
      local again, status2 = run(("assign %s --add-file %s"):format(conns[3], failed))
      assert.equals(0, status2, again)
      assert.equals(300, #emu:state().assigned[conns[3]])
      os.remove(file)
      os.remove(failed)
    end)

    it("on Ctrl-C stops, cancels what is in flight, and still writes the report and the failed file", function()
      -- the 200 lookups answer at once, the 20 batches slowly
      local faults = {}
      for i = 1, 200 do faults[i] = {} end
      for i = 201, 220 do faults[i] = { delay = 0.5 } end
      emu:faults(faults)
      local lines = {}
      for i = 101, 300 do lines[#lines + 1] = leases[i] end
      local file = tmpfile(table.concat(lines, "\n") .. "\n")
      local failed, log = os.tmpname(), os.tmpname()
      local pid = tonumber(support.sh(("(OPENTACT_TOKEN=%s OPENTACT_URL=%s %s %s/bin/opentact assign %s --add-file %s "
        .. "--batch-size 10 --concurrency 2 --failed-file %s > %s 2>&1 & pid=$!; echo $pid; exec > /dev/null; wait $pid; "
        .. "echo \"status=$?\" >> %s) &"):format(emu.token, emu.url, support.LUA, support.ROOT, conns[3], file, failed,
        log, log)):match("%d+"))
      -- Ctrl-C once the lookups are done and the first batches on the wire
      local deadline = socket.gettime() + 20
      while emu:stats().requests <= 200 and socket.gettime() < deadline do socket.sleep(0.02) end
      os.execute("kill -INT " .. pid)
      assert.is_true(support.wait_gone(pid, 20))
      local out
      for _ = 1, 100 do
        out = support.slurp(log) or ""
        if out:find("status=%d+") then break end
        socket.sleep(0.02)
      end
      os.remove(log)
      assert.is_truthy(out:find("status=130", 1, true), out)
      assert.is_truthy(out:find("not ok: %d+ applied"), out)
      assert.is_truthy(out:find("opentact: interrupted", 1, true), out)
      assert.is_falsy(out:find("traceback", 1, true), out)
      local left = 0
      for line in io.lines(failed) do
        if not line:find("^#") then left = left + 1 end
      end
      local applied = tonumber(out:match("not ok: (%d+) applied"))
      assert.equals(200, applied + left)
      assert.is_true(left > 0)
      -- what the report calls applied is on the connection; what may have been
      -- applied (in flight at the interrupt) is in the failed file
      local held = {}
      for _, u in ipairs(emu:state().assigned[conns[3]] or {}) do held[u] = true end
      local in_failed = {}
      for u in io.lines(failed) do in_failed[u] = true end
      for _, u in ipairs(lines) do assert.is_true(held[u] or in_failed[u], u) end
      os.remove(file)
      os.remove(failed)
    end)

    it("prints the report as JSON with --json", function()
      -- the two lookups, the first batch, then the second refused
      emu:faults({ {}, {}, {}, { status = 400, message = "rejected batch" } })
      local out, status = run(("assign %s --json --add %s %s --batch-size 1 --concurrency 1")
        :format(conns[2], leases[30], leases[31]))
      assert.equals(1, status)
      local report = cjson.decode(out)
      assert.is_false(report.ok)
      assert.same({ leases[30] }, report.applied.add)
      assert.same({}, report.applied.remove)
      assert.equals("rejected", report.failed[1].err.kind)
      assert.equals(400, report.failed[1].err.status)
      assert.equals(1, #report.leases)
    end)

    it("shows a progress bar on a terminal only #c", function()
      local out, err = {}, {}
      local function sink(t) return { write = function(_, ...) for _, s in ipairs({ ... }) do t[#t + 1] = s end end } end
      local env = { OPENTACT_TOKEN = emu.token, OPENTACT_URL = emu.url }
      local args = { "assign", conns[2], "--add" }
      for i = 31, 80 do args[#args + 1] = leases[i] end
      args[#args + 1] = "--batch-size"
      args[#args + 1] = "10"
      local status = cli.main(args, { stdout = sink(out), stderr = sink(err), is_terminal = true,
        getenv = function(k) return env[k] end })
      assert.equals(0, status)
      local bar = table.concat(err)
      assert.is_truthy(bar:find("\r%[######%-+%] 10/50 uuids"), bar)
      assert.is_truthy(bar:find("50/50 uuids  100%%"), bar)
      assert.is_truthy(bar:find("ETA"), bar)
      err = {}
      cli.main(args, { stdout = sink(out), stderr = sink(err), is_terminal = false,
        getenv = function(k) return env[k] end })
      assert.equals("", table.concat(err))
    end)
  end)

  describe("numbers", function()
    it("finds the lease of a number, typed in pieces", function()
      local out, status = run("find +1 212 555 0007")
      assert.equals(0, status, out)
      assert.is_truthy(out:find("^1 lease\n  number%s+uuid%s+held by%s+autorenew\n  12125550007%s+"
        .. leases[7]:gsub("%-", "%%-") .. "%s+%-%s+yes\n$"), out)
      out, status = run("find 12125550001")
      assert.equals(0, status, out)
      assert.is_truthy(out:find("connection " .. conns[1]:gsub("%-", "%%-"), 1), out)
    end)

    it("finds every lease a mask matches, as a table or JSON", function()
      local out, status = run("find '+1 212 555 003*'")
      assert.equals(0, status, out)
      assert.is_truthy(out:find("^10 leases\n"), out)
      out, status = run("find --json '1212555%%%9'")
      assert.equals(0, status, out)
      local got = cjson.decode(out)
      assert.equals(40, #got)
      assert.equals(12125550009 % 10, got[1].tn.tn % 10)
    end)

    it("exits 1 when nothing matches, 2 for a bad mask", function()
      local out, status = run("find +1 999 555 0000")
      assert.equals(1, status, out)
      assert.is_truthy(out:find("no lease of the account matches +1 999 555 0000", 1, true), out)
      out, status = run("find '+1 212-CALL-*'")
      assert.equals(2, status, out)
      assert.is_truthy(out:find("opentact: invalid", 1, true), out)
    end)

    it("assigns by number wherever a uuid goes: arguments and a CSV's number column", function()
      local csv = tmpfile("name,phone,note\nmain,+1 (212) 555-0011,x\nsales,1-212-555-0012,y\n")
      local out, status = run(("assign %s --add +1 212 555 0010 --add-file %s --remove 12125550001"):format(conns[1], csv))
      os.remove(csv)
      assert.equals(0, status, out)
      assert.is_truthy(out:find("^ok: 4 applied %(3 added, 1 removed%)"), out)
      assert.same({ leases[2], leases[3], leases[10], leases[11], leases[12] }, emu:state().assigned[conns[1]])
    end)

    it("reads quoted CSV fields, named number columns, and takes no date for a number", function()
      local csv = tmpfile('Name,Phone Number\n"Smith, John",+1 212 555 0013\n')
      local dated = tmpfile("2024-01-02,+1 212 555 0014\n2024-01-03,1 212 555 0015\n")
      local out, status = run(("assign %s --add-file %s --add-file %s"):format(conns[2], csv, dated))
      os.remove(csv)
      os.remove(dated)
      assert.equals(0, status, out)
      assert.same({ leases[13], leases[14], leases[15] }, emu:state().assigned[conns[2]])
    end)

    it("names a number the account has no lease for, and --skip-invalid leaves it out", function()
      local out, status = run(("assign %s --add 12125550010 +44 20 7946 0958"):format(conns[2]))
      assert.equals(1, status, out)
      assert.is_truthy(out:find("--add: no lease of the account holds the number 442079460958", 1, true), out)
      assert.same({}, emu:state().assigned[conns[2]])
      out, status = run(("assign %s --skip-invalid --add 12125550010 +44 20 7946 0958"):format(conns[2]))
      assert.equals(0, status, out)
      assert.same({ leases[10] }, emu:state().assigned[conns[2]])
    end)
  end)

  describe("sync", function()
    it("prints the plan and changes nothing with --dry-run", function()
      local file = tmpfile("+1 212 555 0020\n12125550001\n+1 999 555 0000\n")
      local before = emu:state()
      local out, status = run(("sync %s --numbers-file %s --dry-run --exact"):format(conns[2], file))
      os.remove(file)
      assert.equals(1, status, out) -- a conflict and a missing number block the plan
      assert.is_truthy(out:find("\n  %+ 12125550020%s+" .. leases[20]:gsub("%-", "%%-")), out)
      assert.is_truthy(out:find("\n  ! 12125550001 .*held by SIP connection"), out)
      assert.is_truthy(out:find("\n  %? %+1 999 555 0000%s+not in the account"), out)
      assert.is_truthy(out:find("Plan: 1 to add, 0 to remove, 0 unchanged, 1 conflict, 1 missing.", 1, true), out)
      assert.same(before, emu:state())
    end)

    it("applies the plan, exits 0 when the connection holds what the file asks", function()
      local file = tmpfile("number\n+1 212 555 0020\n+1 212 555 0021\n")
      local out, status = run(("sync %s --numbers-file %s"):format(conns[2], file))
      assert.equals(0, status, out)
      assert.is_truthy(out:find("Applied: 2 added, 0 removed, 0 failed.\nok\n$"), out)
      -- --exact with JSON: nothing more to do
      out, status = run(("sync %s --numbers-file %s --exact --json"):format(conns[2], file))
      os.remove(file)
      assert.equals(0, status, out)
      local report = cjson.decode(out)
      assert.is_true(report.ok)
      assert.equals(2, #report.keep)
      assert.equals(12125550020, report.keep[1].number)
    end)

    it("writes what failed to --failed-file and exits 1", function()
      local file, failed = tmpfile("12125550030\n12125550031\n"), os.tmpname()
      -- the assign fails for good
      emu:faults({ { on = "^POST /sip/connection/", status = 500, message = "down" } })
      local out, status = run(("sync %s --numbers-file %s --failed-file %s"):format(conns[2], file, failed))
      assert.equals(1, status, out)
      local f = assert(io.open(failed))
      local text = f:read("*a")
      f:close()
      assert.is_truthy(text:find("^# opentact: server %(500%): down"), text)
      assert.is_truthy(text:find(leases[30], 1, true), text)
      assert.is_truthy(text:find(leases[31], 1, true), text)
      os.remove(failed)
      os.remove(file)
    end)

    it("refuses an empty list with --exact rather than detach everything", function()
      local file = tmpfile("# nothing\n")
      local out, status = run(("sync %s --numbers-file %s --exact"):format(conns[1], file))
      os.remove(file)
      assert.equals(2, status, out)
      assert.is_truthy(out:find("would detach every lease", 1, true), out)
      assert.equals(0, emu:stats().requests)
    end)

    it("attaches every lease of the account with --all-leases --move --yes", function()
      local out, status = run(("sync %s --all-leases --move --yes"):format(conns[3]))
      assert.equals(0, status, out)
      assert.equals(400, #emu:state().assigned[conns[3]])
    end)
  end)

  describe("usage", function()
    local cases = {
      { "", "give a command" },
      { "frobnicate", "unknown command" },
      { "list", "list takes one connection or control app" },
      { "assign CONN --bogus", "unknown option --bogus" },
      { "assign CONN", "nothing to assign" },
      { "assign CONN --add", "--add needs at least one lease uuid or phone number" },
      { "assign CONN --add x --batch-size 0", "--batch-size must be a whole number" },
      { "assign CONN --add x --concurrency many", "--concurrency must be a whole number" },
      { "assign CONN --token abc --add x", "OPENTACT_TOKEN only" },
      { "assign CONN --add-file /nonexistent/file", "cannot read" },
    }
    for _, c in ipairs(cases) do
      it(("exits 2 for '%s'"):format(c[1]), function()
        local out, status = run((c[1]:gsub("CONN", conns[1])))
        assert.equals(2, status, out)
        assert.is_truthy(out:find(c[2], 1, true), out)
        -- the help of the command, when there is one
        assert.is_truthy(out:find("Try 'opentact [%a ]*%-%-help'%."), out)
      end)
    end

    it("exits 2 for a file line without a uuid", function()
      local file = tmpfile(leases[1] .. "\nnot a uuid\n")
      local out, status = run(("assign %s --add-file %s"):format(conns[1], file))
      os.remove(file)
      assert.equals(2, status)
      assert.is_truthy(out:find(":2: no lease uuid or phone number on this line", 1, true), out)
      assert.equals(0, emu:stats().requests)
    end)

    it("reads a file that starts with a UTF-8 byte order mark, first uuid included", function()
      local file = tmpfile("\239\187\191" .. leases[40] .. "\n" .. leases[41] .. "\n")
      local out, status = run(("assign %s --add-file %s"):format(conns[1], file))
      os.remove(file)
      assert.equals(0, status, out)
      assert.is_truthy(out:find("^ok: 2 applied"), out)
    end)

    it("takes a first line as a header only in a CSV with no uuid-like field", function()
      local typo = leases[42]:sub(1, 35) .. "z"
      for _, text in ipairs({ typo .. "\n" .. leases[43] .. "\n", typo .. ",label\n" .. leases[43] .. ",x\n",
        "lease uuid\n" .. leases[43] .. "\n" }) do
        local file = tmpfile(text)
        local out, status = run(("assign %s --add-file %s"):format(conns[1], file))
        os.remove(file)
        assert.equals(2, status, out)
        assert.is_truthy(out:find(":1: ", 1, true), out)
      end
      assert.equals(0, emu:stats().requests)
    end)

    it("names duplicates and bad lines; --skip-invalid leaves them out and sends the rest", function()
      local file = tmpfile(("%s\n%s\nnot-a-uuid\n%s\n"):format(leases[44], leases[45], leases[44]:upper()))
      local out, status = run(("assign %s --add-file %s --remove %s"):format(conns[1], file, leases[45]))
      assert.equals(2, status, out)
      assert.is_truthy(out:find(":3: no lease uuid or phone number on this line", 1, true), out)
      assert.equals(0, emu:stats().requests)
      out, status = run(("assign %s --add-file %s --skip-invalid --remove %s"):format(conns[1], file, leases[45]))
      os.remove(file)
      assert.equals(0, status, out)
      assert.is_truthy(out:find("skipped .-:3: no lease uuid or phone number on this line"), out)
      assert.is_truthy(out:find("skipped .-:4: " .. leases[44]:upper():gsub("%-", "%%-") .. " listed again %(first at .-:1"), out)
      assert.is_truthy(out:find("skipped %-%-remove: " .. leases[45]:gsub("%-", "%%-") .. " in both"), out)
      -- a lease in both lists is left out of both: only 44 is sent
      assert.is_truthy(out:find("ok: 1 applied", 1, true), out)
    end)

    it("exits 2 for an --add-file that is a directory", function()
      local out, status = run(("assign %s --add-file /tmp"):format(conns[1]))
      assert.equals(2, status, out)
      assert.is_truthy(out:find("cannot read /tmp", 1, true), out)
      assert.is_falsy(out:find("traceback", 1, true), out)
    end)

    it("exits 2 when --add-file - meets a closed standard input", function()
      local out, status = run(("assign %s --add-file - <&-"):format(conns[1]))
      assert.equals(2, status, out)
      assert.is_falsy(out:find("traceback", 1, true), out)
      assert.equals(0, emu:stats().requests)
    end)

    it("removes a stale FILE.remove once its removes are done", function()
      local failed = os.tmpname()
      local stale = tmpfile(leases[1] .. "\n")
      os.rename(stale, failed .. ".remove")
      local out, status = run(("assign %s --remove-file %s.remove --failed-file %s"):format(conns[1], failed, failed))
      assert.equals(0, status, out)
      assert.is_nil(io.open(failed .. ".remove"))
      local f = assert(io.open(failed))
      assert.equals("", f:read("*a"))
      f:close()
      os.remove(failed)
    end)

    local sync_cases = {
      { "sync CONN", "sync takes one of --numbers-file, --leases-file and --all-leases" },
      { "sync CONN --all-leases --numbers-file x", "sync takes one of" },
      { "sync --all-leases", "sync takes one connection or control app" },
      { "find", "find takes a phone number or a mask" },
      { "assign CONN --add 212-CALL", "'212-CALL' is not a lease uuid or a phone number" },
    }
    for _, c in ipairs(sync_cases) do
      it(("exits 2 for '%s'"):format(c[1]), function()
        local out, status = run((c[1]:gsub("CONN", conns[1])))
        assert.equals(2, status, out)
        assert.is_truthy(out:find(c[2], 1, true), out)
        assert.equals(0, emu:stats().requests)
      end)
    end

    it("exits 2 without OPENTACT_TOKEN", function()
      local out, status = run("list " .. conns[1], { token = "" })
      assert.equals(2, status)
      assert.is_truthy(out:find("set OPENTACT_TOKEN", 1, true))
    end)

    it("answers --help and --version", function()
      local out, status = run("--help")
      assert.equals(0, status)
      assert.is_truthy(out:find("^Usage:\n  opentact list CONN"))
      assert.is_truthy(out:find("\nExit status:\n  0 ", 1, true))
      out, status = run("--version")
      assert.equals(0, status)
      assert.is_truthy(out:find("^opentact %d+%.%d+%.%d+\n"))
    end)

    it("is installed by the rock", function()
      local lua = os.getenv("OPENTACT_SPEC_LUA") or "lua5.4"
      local abi = lua == "luajit" and "5.1" or lua:sub(4)
      local tree = support.ROOT .. "/.rocks/" .. lua
      local out, status = sh(("LUA_PATH='%s/share/lua/%s/?.lua;;' LUA_CPATH='%s/lib/lua/%s/?.so;;' %s/bin/opentact --version")
        :format(tree, abi, tree, abi, tree))
      assert.equals(0, status, out)
      assert.is_truthy(out:find("^opentact %d"))
    end)
  end)
end)
