-- Plans on the command line, end to end against the emulator: opentact
-- plan (--out written whole, no token in it, the exit statuses), opentact
-- apply (exactly the saved plan, or nothing when it is stale, damaged, for
-- another URL or given another plan's journal; Ctrl-C names the command
-- that goes on, and the journal resumes it), and opentact sync's question
-- before a detach or a move: on a real terminal (a pseudo-terminal made
-- by script(1)), and --yes elsewhere; colour and the screenful cut.
local support = require("emulator")
local socket = require("socket")
local opentact = require("opentact")
local cmdline = require("cli")

local tmpfile, slurp, sorted, writes = support.tmpfile, support.slurp, support.sorted, support.writes

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local temp_path = support.temp_path

-- Waits up to `seconds` for `ready()` to be true, looking every 20 ms:
-- it ends as soon as the event happens.
local function wait_for(ready, seconds)
  local deadline = socket.gettime() + (seconds or 20)
  repeat
    if ready() then return true end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  return ready()
end

local function lines_in(path)
  local n = 0
  for _ in (slurp(path) or ""):gmatch("[^\n]*\n") do n = n + 1 end
  return n
end

local function esc(s) return (s:gsub("%p", "%%%0")) end

describe("opentact plan, apply and sync's question #wire", function()
  local emu, conns, leases, run

  setup(function()
    emu, conns, leases = support.start_with_uuids({ leases = 60, apps = 2 })
    run = function(args, opts) return cmdline.opentact(emu, args, opts) end
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  local function numbers_file(from, to)
    local lines = {}
    for i = from, to do lines[#lines + 1] = ("+1 212 555 %04d"):format(i) end
    return tmpfile(table.concat(lines, "\n") .. "\n")
  end

  -- Only reads since the emulator's reset.
  local function only_reads()
    for _, r in ipairs(emu:requests()) do
      if r.method ~= "GET" then assert.truthy(r.path:find("^/lease/tn/search"), r.method .. " " .. r.path) end
    end
  end

  describe("opentact plan", function()
    it("prints the plan summary first, writes it whole to --out with no token, and changes nothing", function()
      local file, out_file = numbers_file(20, 21), temp_path()
      finally(function() os.remove(file) os.remove(out_file) end)
      local before = emu:state()
      local out, err, status = run(("plan %s --numbers-file %s --out %s"):format(conns[2], file, out_file))
      assert.equals(0, status, err)
      assert.matches("^Plan: 2 to add, 0 to remove, 0 unchanged, 0 conflicts, 0 missing%.\n", out)
      assert.matches("\n  %+ 12125550020 +" .. esc(leases[20]), out)
      assert.matches("The plan is in " .. esc(out_file), out)
      assert.matches("opentact apply " .. esc(out_file) .. " %-%-journal ", out)
      assert.same(before, emu:state())
      only_reads()
      local text = assert(slurp(out_file))
      assert.is_falsy(text:find(emu.token, 1, true), "the plan holds the token")
      local plan = assert(opentact.decode_plan(text))
      assert.equals(conns[2], plan.connection)
      assert.same(sorted({ leases[20], leases[21] }), sorted({ plan.add[1].uuid, plan.add[2].uuid }))
      assert.equals(emu.url, plan.base_url)
      -- written again: replaced whole, nothing left beside it
      local dir = out_file:match("^(.*)/")
      local beside = support.sh("ls -a " .. quote(dir) .. " | grep -c " .. quote(out_file:match("[^/]*$")))
      out, err, status = run(("plan %s --numbers-file %s --exact --out %s"):format(conns[1], file, out_file))
      assert.equals(0, status, err)
      assert.equals(beside, support.sh("ls -a " .. quote(dir) .. " | grep -c " .. quote(out_file:match("[^/]*$"))))
      assert.equals(conns[1], assert(opentact.decode_plan(assert(slurp(out_file)))).connection)
      assert.matches("^Plan: 2 to add, 3 to remove,", out)
    end)

    it("exits 1 for conflicts and missing numbers (and still writes the plan), 2 when refused", function()
      local file, out_file = tmpfile("+1 212 555 0001\n+1 999 555 0000\n"), temp_path()
      support.finally(finally, function() os.remove(file) os.remove(out_file) end)
      local out, err, status = run(("plan %s --numbers-file %s --out %s"):format(conns[2], file, out_file))
      assert.equals(1, status, err)
      assert.matches("^Plan: 0 to add, 0 to remove, 0 unchanged, 1 conflict, 1 missing%.", out)
      assert.is_truthy(opentact.decode_plan(assert(slurp(out_file))))
      os.remove(out_file)
      -- --exact with numbers without their country code: refused, nothing written
      local national = tmpfile("2125550001\n")
      support.finally(finally, function() os.remove(national) end)
      out, err, status = run(("plan %s --numbers-file %s --exact --out %s"):format(conns[1], national, out_file))
      assert.equals(2, status, out .. err)
      assert.is_nil(slurp(out_file))
      -- an --out that cannot be written
      out, err, status = run(("plan %s --numbers-file %s --out /nonexistent-folder/plan.json"):format(conns[2], file))
      assert.equals(1, status, out)
      assert.matches("%-%-out: .*/nonexistent%-folder/plan%.json", err)
      only_reads()
    end)
  end)

  describe("opentact apply", function()
    local file, plan_file, journal

    before_each(function()
      file, plan_file, journal = numbers_file(20, 29), temp_path(), temp_path()
    end)
    after_each(function()
      os.remove(file)
      os.remove(plan_file)
      os.remove(journal)
    end)

    local function make_plan(extra)
      local _, err, status = run(("plan %s --numbers-file %s --out %s %s"):format(conns[2], file, plan_file,
        extra or ""))
      assert.equals(0, status, err)
      emu:reset()
    end

    it("applies the saved plan without a question, keeps a journal, and reads back", function()
      make_plan()
      local out, err, status = run(("apply %s --journal %s"):format(plan_file, journal))
      assert.equals(0, status, out .. err)
      assert.matches("^Plan: 10 to add,", out)
      assert.matches("\nApplied: 10 added, 0 removed, 0 failed%.\nok\n$", out)
      assert.equals(10, #emu:state().assigned[conns[2]])
      assert.is_true(lines_in(journal) >= 2)
    end)

    it("refuses a stale plan: exit 2, nothing changed, the moved lease named, and the command to re-plan", function()
      make_plan("--exact")
      emu:holders({ [leases[25]] = { sip_connection = conns[3] } })
      local before = emu:state()
      local out, err, status = run(("apply %s --journal %s"):format(plan_file, journal))
      assert.equals(2, status, out .. err)
      assert.same(before, emu:state())
      assert.equals(0, writes(emu))
      assert.matches("stale", err)
      assert.matches(esc(leases[25]) .. " %(12125550025%): planned on no connection or app, now on SIP connection "
        .. "sip%-trunk%-3 %(" .. esc(conns[3]) .. "%)", err)
      assert.matches("nothing was changed", err)
      -- the plan's note holds the input it was made from
      assert.matches("\nMake the plan again, review it, and apply that: opentact plan " .. esc(conns[2])
        .. " %-%-numbers%-file " .. esc(file) .. " %-%-exact %-%-out " .. esc(plan_file), err)
    end)

    it("keeps no note when the plan is not saved, or when the input's words do not fit one", function()
      -- input words of more than 4096 bytes (a path just under the
      -- system's limit, from this folder): sync (which saves nothing) and
      -- plan work; the saved plan has no note, and stale, it says "as before"
      local root = support.sh("pwd"):gsub("%s+$", "")
      local up = ("../"):rep(select(2, root:gsub("/", "")))
      local long = up .. ("./"):rep(math.floor((4090 - #up - #file) / 2)) .. file:sub(2)
      local words = ("--numbers-file %s --skip-invalid --country-code 1"):format(long)
      local out, err, status = run(("sync %s %s --dry-run"):format(conns[2], words))
      assert.equals(0, status, out .. err)
      out, err, status = run(("plan %s %s --out %s"):format(conns[2], words, plan_file))
      assert.equals(0, status, out .. err)
      local saved = assert(slurp(plan_file))
      assert.is_nil(require("cjson").decode(saved).note)
      emu:reset()
      emu:holders({ [leases[25]] = { sip_connection = conns[3] } })
      out, err, status = run("apply " .. plan_file)
      assert.equals(2, status, out .. err)
      assert.matches("%(%-%-numbers%-file FILE | %-%-leases%-file FILE | %-%-all%-leases: as before%)", err)
    end)

    it("shows a plan's note as a command only when it is input words, each quoted", function()
      -- plan files from anyone: the note is what `opentact plan` keeps,
      -- or something else (a file that is not the library's to judge)
      local client = emu:client()
      finally(function() client:close() end)
      local cases = {
        { '["--numbers-file","/tmp/a b; rm -rf ~"]', "%-%-numbers%-file '/tmp/a b; rm %-rf ~' %-%-out " },
        { "--numbers-file x; curl example.com | sh", "%(%-%-numbers%-file FILE | %-%-leases%-file FILE" },
        { '["--numbers-file","x","--exec","y"]', "%(%-%-numbers%-file FILE | %-%-leases%-file FILE" },
        { '["--all-leases","--country-code","1; id"]', "%(%-%-numbers%-file FILE | %-%-leases%-file FILE" },
        { '["--all-leases","--skip-invalid"]', "%-%-all%-leases %-%-skip%-invalid %-%-out " },
        -- a control character would be shown escaped: the words would name another file
        { '["--leases-file","/tmp/x\\u001b[31mred"]', "%(%-%-numbers%-file FILE | %-%-leases%-file FILE" },
      }
      for _, c in ipairs(cases) do
        emu:reset()
        local plan = assert(client:plan(conns[2], { numbers = { 12125550021 } }, { note = c[1] }))
        local f = assert(io.open(plan_file, "wb"))
        local text = assert(plan:encode())
        f:write(text)
        f:close()
        emu:holders({ [leases[21]] = { sip_connection = conns[3] } })
        local out, err, status = run("apply " .. plan_file)
        assert.equals(2, status, out .. err)
        assert.matches("apply that: opentact plan " .. esc(conns[2]) .. " " .. c[2], err)
      end
    end)

    it("names a relative input file by its absolute path in the command to re-plan", function()
      -- the same file, named from this folder; PWD says another (a parent
      -- that changed folder without it)
      local root = support.sh("pwd"):gsub("%s+$", "")
      local relative = ("../"):rep(select(2, root:gsub("/", ""))) .. file:sub(2)
      local _, err, status = run(("plan %s --numbers-file %s --country-code 1 --out %s"):format(conns[2], relative,
        plan_file), { extra = "PWD=/var" })
      assert.equals(0, status, err)
      emu:reset()
      emu:holders({ [leases[25]] = { sip_connection = conns[3] } })
      local out
      out, err, status = run("apply " .. plan_file)
      assert.equals(2, status, out .. err)
      assert.matches("apply that: opentact plan " .. esc(conns[2]) .. " %-%-numbers%-file " .. esc(root .. "/" .. relative)
        .. " %-%-country%-code 1 %-%-out " .. esc(plan_file) .. "\n", err)
    end)

    it("refuses a damaged plan, one of a newer version and one for another URL: exit 2, nothing sent", function()
      make_plan()
      local text = assert(slurp(plan_file))
      local cases = {
        { (text:gsub(esc(leases[20]), leases[40])), "damaged or was edited by hand" },
        { (text:gsub('"version":1', '"version":9')), "made by a newer lua-opentact" },
        { text:sub(1, 100), "not a saved plan" },
      }
      for _, c in ipairs(cases) do
        local f = assert(io.open(plan_file, "wb"))
        f:write(c[1])
        f:close()
        local out, err, status = run("apply " .. plan_file)
        assert.equals(2, status, out .. err)
        assert.matches(c[2], err, 1, true)
        assert.matches("nothing was changed", err, 1, true)
        assert.equals(0, #emu:requests())
      end
      local f = assert(io.open(plan_file, "wb"))
      f:write(text)
      f:close()
      local out, err, status = run("apply " .. plan_file, { url = emu.url .. "/v2" })
      assert.equals(2, status, out .. err)
      assert.matches("was made for " .. emu.url, err, 1, true)
      assert.equals(0, #emu:requests())
      -- and a journal of another plan
      local other = temp_path()
      support.finally(finally, function() os.remove(other) end)
      local small = numbers_file(30, 30)
      support.finally(finally, function() os.remove(small) end)
      out, err, status = run(("plan %s --numbers-file %s --out %s"):format(conns[2], small, other))
      assert.equals(0, status, out .. err)
      out, err, status = run(("apply %s --journal %s"):format(other, journal))
      assert.equals(0, status, out .. err)
      emu:reset()
      out, err, status = run(("apply %s --journal %s"):format(plan_file, journal))
      assert.equals(2, status, out .. err)
      assert.matches("journal of another plan", err, 1, true)
      assert.equals(0, writes(emu))
    end)

    -- bin/opentact in the background, its pid, and a file its exit status
    -- goes to
    local function start(args)
      local log, st = os.tmpname(), os.tmpname()
      os.remove(st)
      local pid = tonumber(support.sh(("(OPENTACT_TOKEN=%s OPENTACT_URL=%s XDG_CONFIG_HOME=/nonexistent %s "
        .. "%s/bin/opentact %s > %s 2>&1 & pid=$!; echo $pid; exec > /dev/null; wait $pid; echo $? > %s) &")
        :format(emu.token, emu.url, support.LUA, support.ROOT, args, log, st)):match("%d+"))
      return pid, log, st
    end

    local function finish(pid, log, st)
      assert.is_true(support.wait_gone(pid, 20))
      assert.is_true(wait_for(function() return (slurp(st) or ""):find("%d") ~= nil end))
      local out, status = slurp(log), tonumber(slurp(st))
      os.remove(log)
      os.remove(st)
      -- a request the client cancelled may still be under way in the
      -- emulator (its latency): its end, before the spec looks
      assert.is_true(wait_for(function() return emu:stats().inflight == 0 end))
      return out, status
    end

    it("after Ctrl-C exits 130 naming the command that resumes, which sends nothing for what was confirmed", function()
      make_plan()
      -- every request slow: the apply is on its way when its journal has
      -- its first confirmed batch
      emu:config({ latency = 0.1 })
      local pid, log, st = start(("apply %s --journal %s --batch-size 1 --concurrency 1"):format(plan_file, journal))
      assert.is_true(wait_for(function() return lines_in(journal) >= 2 end))
      os.execute("kill -INT " .. pid)
      local out, status = finish(pid, log, st)
      emu:config({ latency = 0 })
      assert.equals(130, status, out)
      assert.is_falsy(out:find("traceback", 1, true), out)
      local resume = ("opentact apply %s --journal %s"):format(plan_file, journal)
      assert.matches("to finish, run the same command .*: " .. esc(resume) .. "\n", out)
      local confirmed = {}
      for line in (slurp(journal) or ""):gmatch("[^\n]+") do
        for u in line:gmatch('"(%x+%-%x+%-%x+%-%x+%-%x+)"') do confirmed[u] = true end
      end
      assert.is_true(next(confirmed) ~= nil)
      local from = #emu:requests()
      local again, err, again_status = run((resume:gsub("^opentact ", "")))
      assert.equals(0, again_status, again .. err)
      local all = emu:requests()
      for i = from + 1, #all do
        local r = all[i]
        for u in ((r.body or "") .. r.path):gmatch("%x+%-%x+%-%x+%-%x+%-%x+") do
          assert.is_nil(confirmed[u], "a confirmed lease was read or written again: " .. r.method .. " " .. r.path)
        end
      end
      assert.equals(10, #emu:state().assigned[conns[2]])
    end)

    it("after Ctrl-C without a journal says the resume makes the plan again", function()
      make_plan()
      emu:config({ latency = 0.1 })
      local pid, log, st = start(("apply %s --batch-size 1 --concurrency 1"):format(plan_file))
      assert.is_true(wait_for(function() return #(emu:state().assigned[conns[2]] or {}) >= 1 end))
      os.execute("kill -INT " .. pid)
      local out, status = finish(pid, log, st)
      emu:config({ latency = 0 })
      assert.equals(130, status, out)
      assert.matches("without a journal the plan cannot be resumed", out, 1, true)
      assert.matches("opentact plan " .. esc(conns[2]), out)
    end)
  end)

  describe("opentact sync, not on a terminal", function()
    it("refuses a plan that detaches without --yes: exit 2, nothing changed, the plan shown", function()
      local file = numbers_file(1, 1) -- conn 1 holds leases 1 to 3
      finally(function() os.remove(file) end)
      local before = emu:state()
      local out, err, status = run(("sync %s --numbers-file %s --exact --batch-size 10"):format(conns[1], file))
      assert.equals(2, status, out .. err)
      assert.matches("^Plan: 0 to add, 2 to remove, 1 unchanged", out)
      assert.matches("the plan detaches 2 leases; nothing was changed", err, 1, true)
      assert.matches("give %-%-yes", err)
      assert.same(before, emu:state())
      assert.equals(0, writes(emu))
      -- the command the message names goes on
      local command = err:match("%((opentact sync [^)]*)%)")
      assert.equals(("opentact sync %s --numbers-file %s --exact --batch-size 10 --yes"):format(conns[1], file),
        command)
      out, err, status = run((command:gsub("^opentact ", "")))
      assert.equals(0, status, out .. err)
      assert.same({ leases[1] }, emu:state().assigned[conns[1]])
    end)

    it("refuses a plan that moves a lease from another holder without --yes; applies adds alone", function()
      local file = tmpfile("+1 212 555 0001\n+1 212 555 0020\n")
      support.finally(finally, function() os.remove(file) end)
      local out, err, status = run(("sync %s --numbers-file %s --move --json"):format(conns[2], file))
      assert.equals(2, status, out .. err)
      assert.matches("moves 1 lease from another connection or control app", err, 1, true)
      assert.equals(0, writes(emu))
      local adds = numbers_file(20, 21)
      support.finally(finally, function() os.remove(adds) end)
      out, err, status = run(("sync %s --numbers-file %s"):format(conns[2], adds))
      assert.equals(0, status, out .. err)
      assert.matches("^Plan: 2 to add,", out)
      assert.equals(2, #emu:state().assigned[conns[2]])
    end)

    it("with --dry-run prints the plan, summary first, every line, without colour, and changes nothing", function()
      local file = numbers_file(10, 59)
      finally(function() os.remove(file) end)
      local out, err, status = run(("sync %s --numbers-file %s --dry-run --move"):format(conns[2], file),
        { extra = "LINES=10" })
      assert.equals(0, status, out .. err)
      assert.matches("^Plan: 50 to add,", out)
      assert.equals(50, select(2, out:gsub("\n  %+ ", "")))
      assert.is_falsy(out:find("\27", 1, true))
      assert.is_falsy(out:find("more; --all", 1, true))
      assert.equals(0, writes(emu))
    end)
  end)

  describe("opentact sync on a terminal", function()
    local has_script = support.sh("command -v script > /dev/null && command -v mkfifo > /dev/null && echo yes") == "yes\n"
    -- a spec that needs a pseudo-terminal
    local function tty_it(name, f)
      it(name, function()
        if not has_script then
          return pending("script(1) (bsdutils: make deps) or mkfifo is missing: no pseudo-terminal to test in")
        end
        f()
      end)
    end

    -- bin/opentact in a pseudo-terminal (script(1)), its input a FIFO the
    -- spec writes to as a user types: :wait_for(text) waits for text on
    -- the screen, :type(s) types, :finish() ends the input and returns
    -- the screen and the exit status.
    local function terminal(args, env)
      local dir = support.sh("mktemp -d"):gsub("%s+$", "")
      assert(os.execute("mkfifo " .. dir .. "/in"))
      local cmd = ("env -u OPENTACT_EMAIL -u OPENTACT_PASSWORD -u NO_COLOR XDG_CONFIG_HOME=/nonexistent "
        .. "OPENTACT_TOKEN=%s OPENTACT_URL=%s %s %s %s/bin/opentact %s"):format(emu.token, emu.url, env or "",
        support.LUA, support.ROOT, args)
      os.execute(("(SHELL=/bin/sh script -qfec %s /dev/null < %s/in > %s/out 2>&1; echo $? > %s/status) &")
        :format(quote(cmd), dir, dir, dir))
      local input = assert(io.open(dir .. "/in", "w"))
      input:setvbuf("no")
      local t = {}
      function t.screen() return slurp(dir .. "/out") or "" end
      function t.wait_for(text)
        assert.is_true(wait_for(function() return t.screen():find(text, 1, true) ~= nil end), t.screen())
      end
      function t.type(s) input:write(s) end
      function t.finish()
        input:close()
        assert.is_true(wait_for(function() return (slurp(dir .. "/status") or ""):find("%d") ~= nil end))
        local screen, status = t.screen(), tonumber(slurp(dir .. "/status"))
        os.execute("rm -rf " .. dir)
        return screen, status
      end
      return t
    end

    local file
    before_each(function() file = numbers_file(1, 1) end) -- with --exact, detaches leases 2 and 3 of conn 1
    after_each(function() os.remove(file) end)

    tty_it("shows the plan in colour, summary first, asks, and applies it on y", function()
      local t = terminal(("sync %s --numbers-file %s --exact"):format(conns[1], file))
      t.wait_for("Apply? [y/N]")
      t.type("y\n")
      local screen, status = t.finish()
      assert.equals(0, status, screen)
      assert.matches("^Plan: 0 to add, 2 to remove, 1 unchanged", screen)
      assert.matches("\27%[31m  %- 1212555000[23] ", screen)
      assert.matches("The plan detaches 2 leases%. Apply%? %[y/N%] y", screen)
      assert.matches("Applied: 0 added, 2 removed, 0 failed%.\r?\nok", screen)
      assert.same({ leases[1] }, emu:state().assigned[conns[1]])
    end)

    for _, answer in ipairs({ { "n\n", "not y" }, { "", "the end of input" }, { "yep\n", "not y" } }) do
      tty_it(("changes nothing when the answer is %s (%q)"):format(answer[2], answer[1]), function()
        local before = emu:state()
        local t = terminal(("sync %s --numbers-file %s --exact"):format(conns[1], file))
        t.wait_for("Apply? [y/N]")
        t.type(answer[1])
        local screen, status = t.finish()
        assert.equals(2, status, screen)
        assert.matches("not applied (the answer was " .. answer[2] .. "); nothing was changed", screen, 1, true)
        assert.same(before, emu:state())
        assert.equals(0, writes(emu))
      end)
    end

    tty_it("exits 130 on Ctrl-C at the question, nothing changed", function()
      local before = emu:state()
      local t = terminal(("sync %s --numbers-file %s --exact"):format(conns[1], file))
      t.wait_for("Apply? [y/N]")
      t.type("\3")
      local screen, status = t.finish()
      assert.equals(130, status, screen)
      assert.matches("opentact: interrupted: nothing was changed", screen, 1, true)
      assert.is_falsy(screen:find("traceback", 1, true), screen)
      assert.same(before, emu:state())
      assert.equals(0, writes(emu))
    end)

    tty_it("changes nothing when a planned lease moved while the question was on the screen (stale)", function()
      local move_file = tmpfile("+1 212 555 0001\n+1 212 555 0020\n")
      finally(function() os.remove(move_file) end)
      local t = terminal(("sync %s --numbers-file %s --move"):format(conns[2], move_file))
      t.wait_for("Apply? [y/N]")
      emu:holders({ [leases[20]] = { sip_connection = conns[3] } })
      local before = emu:state()
      t.type("y\n")
      local screen, status = t.finish()
      assert.equals(2, status, screen)
      assert.matches("moves 1 lease from another connection or control app", screen, 1, true)
      assert.matches("\27[32m  + 12125550001 ", screen, 1, true)
      assert.matches("\27[33m  (moves from SIP connection sip-trunk-1 (" .. conns[1] .. "))\27[0m", screen, 1, true)
      assert.matches("the plan is stale", screen, 1, true)
      assert.matches("Run the same command again", screen, 1, true)
      assert.same(before, emu:state())
    end)

    tty_it("has no colour with NO_COLOR or --no-color, and cuts a long plan after a screenful unless --all", function()
      local many = numbers_file(10, 59)
      finally(function() os.remove(many) end)
      local cases = {
        { "", "LINES=20", true, true },
        { "", "NO_COLOR=1 LINES=20", false, true },
        { " --no-color", "LINES=20", false, true },
        { " --all", "LINES=20", true, false },
        { "", "NO_COLOR= LINES=20", true, true },
        { "", "LINES=", true, true }, -- tput lines, else 24
      }
      for _, c in ipairs(cases) do
        local t = terminal(("sync %s --numbers-file %s --move --dry-run%s"):format(conns[2], many, c[1]), c[2])
        local screen, status = t.finish()
        assert.equals(0, status, screen)
        assert.matches("^Plan: 50 to add,", screen)
        assert.equals(c[3], screen:find("\27[32m  + ", 1, true) ~= nil, c[1] .. " " .. c[2] .. ": " .. screen)
        local shown = select(2, screen:gsub("\n[^\n]-  %+ 1212555", ""))
        if c[4] then
          assert.is_true(shown < (tonumber(c[2]:match("LINES=(%d+)")) or 24), screen)
          assert.matches("\226\128\166 and " .. (50 - shown) .. " more; --all shows every line", screen, 1, true)
        else
          assert.equals(50, shown, screen)
        end
      end
      assert.equals(0, writes(emu))
    end)
  end)
end)
