-- The opentact command for scripts: --format on every command that prints
-- data, every row unless a table is on a terminal (--all), errors as JSON,
-- per-command --help with exit codes, "1 uuid", the URL in the command's
-- words, and the completion scripts and man page made from the help.
local support = require("emulator")
local cjson = require("cjson")
local cli = require("opentact.cli")
local cmdline = require("cli")

local ROOT = support.ROOT
local unpack = table.unpack or unpack -- luacheck: ignore 143

-- Whether a program is on PATH.
local function has(tool)
  local status = os.execute("command -v " .. tool .. " > /dev/null 2>&1")
  return status == true or status == 0
end

local tmpfile, slurp = support.tmpfile, support.slurp

local lines_of, csv, tsv, sink = cmdline.lines_of, cmdline.csv, cmdline.tsv, cmdline.sink

-- bin/opentact with `args` (shell words), `env` its token, url and extra
-- words; returns standard output, standard error and the exit status.
local function opentact(args, env) return cmdline.opentact(nil, args, env) end

describe("the opentact command for scripts #wire", function()
  local emu, conns, leases, run

  setup(function()
    emu, conns, leases = support.start_with_uuids({ leases = 300 })
    run = function(args, env)
      env = env or {}
      env.token = env.token or emu.token
      env.url = env.url or emu.url
      return opentact(args, env)
    end
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  -- cli.main in this process: standard output (maybe a terminal) and error.
  local function main(args, ctx) return cmdline.main(emu, args, ctx) end

  describe("--format #c", function()
    it("prints list as table, json, jsonl, csv and tsv, the same leases in each", function()
      local out, _, status = run("list " .. conns[1])
      assert.equals(0, status)
      assert.matches("^3 leases\n  uuid%s+number%s+expires%s+autorenew\n", out)
      local json
      json, _, status = run("list " .. conns[1] .. " --format json")
      assert.equals(0, status)
      local payload = cjson.decode(json)
      assert.equals(3, #payload)
      assert.equals(json, (run("list " .. conns[1] .. " --json")))

      out, _, status = run("list " .. conns[1] .. " --format jsonl")
      assert.equals(0, status)
      local rows = lines_of(out)
      assert.equals(3, #rows)
      for i, line in ipairs(rows) do assert.same(payload[i], cjson.decode(line)) end

      for _, f in ipairs({ { "csv", csv }, { "tsv", tsv } }) do
        out, _, status = run("list " .. conns[1] .. " --format=" .. f[1])
        assert.equals(0, status, out)
        rows = lines_of(out)
        assert.equals(4, #rows, out)
        assert.same({ "uuid", "number", "expires", "autorenew", "sip_connection", "sip_control_app" }, f[2](rows[1]))
        for i = 1, 3 do
          assert.same({ leases[i], ("%.0f"):format(12125550000 + i), payload[i].expired_on,
            tostring(payload[i].autorenew), conns[1], "" }, f[2](rows[i + 1]))
        end
      end
    end)

    it("prints every row off a terminal; on one, 100 rows unless --all; other formats always every row", function()
      local holders = {}
      for i = 11, 260 do holders[leases[i]] = { sip_connection = conns[4] } end
      assert.equals(200, (emu:holders(holders)))

      local out, _, status = run("list " .. conns[4])
      assert.equals(0, status)
      local rows = lines_of(out)
      assert.equals(252, #rows)
      assert.equals("250 leases", rows[1])
      assert.is_falsy(out:find("more", 1, true))

      out, _, status = main({ "list", conns[4] }, { stdout_terminal = true })
      assert.equals(0, status)
      rows = lines_of(out)
      assert.equals(103, #rows)
      assert.equals("  ... and 150 more (--all prints every one)", rows[103])
      out = main({ "list", conns[4], "--all" }, { stdout_terminal = true })
      assert.equals(252, #lines_of(out))
      out = main({ "list", conns[4], "--format", "csv" }, { stdout_terminal = true })
      assert.equals(251, #lines_of(out))

      -- find: the same rule
      out, _, status = main({ "find", "+1 212 555 *" }, { stdout_terminal = true })
      assert.equals(0, status)
      rows = lines_of(out)
      assert.equals("300 leases", rows[1])
      assert.equals("  ... and 200 more (--all prints every one)", rows[103])
      out = main({ "find", "+1 212 555 *", "--all" }, { stdout_terminal = true })
      assert.equals(302, #lines_of(out))
    end)

    it("prints find's leases in every format; nothing found is an empty list and exit 1", function()
      local out, _, status = run("find '+1 212 555 003*' --format csv")
      assert.equals(0, status, out)
      local rows = lines_of(out)
      assert.equals(11, #rows)
      local r = csv(rows[2])
      assert.equals(6, #r)
      assert.matches("^1212555003%d$", r[2])
      out, _, status = run("find 12125550001 --format tsv")
      assert.equals(0, status, out)
      assert.same({ leases[1], "12125550001" }, { tsv(lines_of(out)[2])[1], tsv(lines_of(out)[2])[2] })
      assert.equals(conns[1], tsv(lines_of(out)[2])[5])
      out, _, status = run("find 12125550002 --format jsonl")
      assert.equals(0, status, out)
      assert.equals(leases[2], cjson.decode(out).uuid)

      out, _, status = run("find 19995550000 --format csv")
      assert.equals(1, status)
      assert.equals("uuid,number,expires,autorenew,sip_connection,sip_control_app\n", out)
      out, _, status = run("find 19995550000 --format jsonl")
      assert.equals(1, status)
      assert.equals("", out)
      out, _, status = run("find 19995550000 --json")
      assert.equals(1, status)
      assert.equals("[]\n", out)
    end)

    it("prints assign's report as a row per uuid with its outcome", function()
      local refused = leases[11]
      local args = ("assign %s --add +1 212 555 0010 %s --remove %s --batch-size 1 --concurrency 1")
        :format(conns[1], refused, leases[1])
      -- the two lookups and the connection's list, the first batch, then
      -- the second refused
      local faults = { {}, {}, {}, {}, { status = 400, message = "TNLease " .. refused .. " not found" } }
      emu:faults(faults)
      local out, _, status = run(args .. " --format csv")
      assert.equals(1, status, out)
      local rows = lines_of(out)
      assert.same({ "uuid", "number", "action", "result", "error_kind", "error_status", "error_message" }, csv(rows[1]))
      assert.equals(4, #rows, out)
      assert.same({ leases[10], "12125550010", "add", "applied", "", "", "" }, csv(rows[2]))
      local failed = csv(rows[3])
      assert.same({ refused, "12125550011", "add", "failed", "rejected", "400" }, { unpack(failed, 1, 6) })
      assert.matches("not found", failed[7])
      assert.same({ leases[1], "remove", "applied" }, { csv(rows[4])[1], csv(rows[4])[3], csv(rows[4])[4] })

      emu:reset()
      emu:faults(faults)
      out, _, status = run(args .. " --format jsonl")
      assert.equals(1, status, out)
      rows = lines_of(out)
      assert.equals(3, #rows)
      local first, second = cjson.decode(rows[1]), cjson.decode(rows[2])
      assert.same({ uuid = leases[10], number = 12125550010, action = "add", result = "applied", error_kind = cjson.null,
        error_status = cjson.null, error_message = cjson.null }, first)
      assert.equals("rejected", second.error_kind)
      assert.equals(400, second.error_status)

      emu:reset()
      out, _, status = run(("assign %s --add %s --format tsv"):format(conns[2], leases[20]))
      assert.equals(0, status, out)
      assert.equals("uuid\tnumber\taction\tresult\terror_kind\terror_status\terror_message\n"
        .. leases[20] .. "\t12125550020\tadd\tapplied\t\t\t\n", out)
    end)

    it("prints sync's report as a row per lease of the plan", function()
      local file = tmpfile("+1 212 555 0020\n12125550001\n+1 999 555 0000\n")
      local out, _, status = run(("sync %s --numbers-file %s --dry-run --exact --format csv"):format(conns[2], file))
      assert.equals(1, status, out)
      local rows = lines_of(out)
      assert.equals(4, #rows, out)
      assert.same({ leases[20], "12125550020", "add", "planned", "", "", "" }, csv(rows[2]))
      local conflict = csv(rows[3])
      assert.same({ leases[1], "12125550001", "add", "conflict" }, { unpack(conflict, 1, 4) })
      assert.matches("held by SIP connection " .. conns[1]:gsub("%-", "%%-"), conflict[7])
      assert.same({ "", "19995550000", "add", "missing", "", "", "not in the account" }, csv(rows[4]))

      os.remove(file)
      file = tmpfile("+1 212 555 0020\n+1 212 555 0021\n")
      out, _, status = run(("sync %s --numbers-file %s --format jsonl"):format(conns[2], file))
      assert.equals(0, status, out)
      rows = lines_of(out)
      assert.equals(2, #rows)
      assert.same({ "applied", "applied" }, { cjson.decode(rows[1]).result, cjson.decode(rows[2]).result })
      out, _, status = run(("sync %s --numbers-file %s --exact --format tsv"):format(conns[2], file))
      os.remove(file)
      assert.equals(0, status, out)
      rows = lines_of(out)
      assert.equals(3, #rows)
      assert.same({ leases[20], "12125550020", "keep", "unchanged" }, { unpack(tsv(rows[2]), 1, 4) })
    end)
  end)

  describe("errors", function()
    it("are JSON on standard output under --format json or jsonl, text on standard error, same exit status", function()
      local missing = "66eb0a8a-571e-41b1-8f50-4d97275cfab7"
      local out, err, status = run("list " .. missing .. " --format json")
      assert.equals(1, status)
      assert.matches("^opentact: not_found %(404%)", err)
      local e = cjson.decode(out)
      assert.is_false(e.ok)
      assert.same({ kind = "not_found", status = 404, message = "SIP connection not found", retryable = false,
        attempts = 1, method = "GET", path = "/sip/connection/" .. missing .. "/tnlease" }, e.error)
      -- the same without JSON: nothing on standard output
      out, err, status = run("list " .. missing)
      assert.equals(1, status)
      assert.equals("", out)
      assert.matches("^opentact: not_found", err)

      out, err, status = run("list nope --format jsonl")
      assert.equals(2, status)
      assert.equals("not_found", cjson.decode(out).error.kind)
      assert.matches("opentact: not_found", err)

      out, err, status = run("list " .. conns[1] .. " --json", { token = "secret-token-value-xyz" })
      assert.equals(1, status)
      e = cjson.decode(out).error
      assert.equals("auth", e.kind)
      assert.equals(401, e.status)
      assert.is_falsy((out .. err):find("secret-token-value-xyz", 1, true))
    end)

    it("are JSON for usage errors and numbers without a lease too", function()
      for _, c in ipairs({
        { "list --json", "list takes one connection or control app" },
        { "assign CONN --json --bogus", "unknown option --bogus" },
        { "list CONN --exact --format jsonl", "--exact is not an option of 'opentact list'" },
        { "list CONN --json --url ftp://x", "--url is not an http:// or https:// URL" },
      }) do
        local out, err, status = run((c[1]:gsub("CONN", conns[1])))
        assert.equals(2, status, c[1])
        local e = cjson.decode(out)
        assert.is_false(e.ok)
        assert.equals("usage", e.error.kind)
        assert.equals(1, e.error.message:find(c[2], 1, true), e.error.message)
        assert.is_truthy(err:find(c[2], 1, true), err)
      end
      assert.equals(0, emu:stats().requests)
      local out, _, status = run(("assign %s --add +1 999 555 0000 --json"):format(conns[1]))
      assert.equals(1, status)
      local e = cjson.decode(out).error
      assert.equals("not_found", e.kind)
      assert.matches("no lease of the account holds the number 19995550000", e.message)
    end)

    it("name what a command does not take, and a format there is not", function()
      for _, c in ipairs({
        { "list CONN --exact", "--exact is not an option of 'opentact list'", "list" },
        { "token --all", "--all is not an option of 'opentact token'", "token" },
        { "list CONN --format xml", "--format must be table, json, jsonl, csv or tsv", "list" },
        { "list CONN --json --format csv", "--json is --format json: give one of them", "list" },
        { "list CONN --json=yes", "--json takes no value", "list" },
        { "sync CONN --add x", "--add is not an option of 'opentact sync'", "sync" },
      }) do
        local out, err, status = run((c[1]:gsub("CONN", conns[1])))
        assert.equals(2, status, c[1])
        assert.equals("", out)
        assert.equals("opentact: " .. c[2] .. "\nTry 'opentact " .. c[3] .. " --help'.\n", err)
      end
      assert.equals(0, emu:stats().requests)
    end)

    it("answer a bad URL, token or email in the command's words", function()
      local function check(args, env, expected)
        local out, err, status = run(args, env)
        assert.equals(2, status, err)
        assert.equals("", out)
        assert.equals(1, err:find("opentact: " .. expected, 1, true), err)
        for _, library in ipairs({ "bad option", "'new'", "base_url", "expected, got" }) do
          assert.is_falsy(err:find(library, 1, true), err)
        end
        return err
      end
      local conn = conns[1]
      check("list " .. conn .. " --url ftp://x", nil,
        "--url is not an http:// or https:// URL without spaces, query or fragment")
      check("list " .. conn, { url = "ftp://x" }, "OPENTACT_URL is not an http:// or https:// URL")
      check("list " .. conn .. " --url=http://x:99999", nil, "--url is not a URL with a port from 1")
      -- never the value: a malformed URL may hold a password
      local bad = check("list " .. conn, { url = "https://ops:hunter2pw@api.example.com/rest" },
        "OPENTACT_URL is not an http:// or https:// URL")
      assert.is_falsy(bad:find("hunter2pw", 1, true), bad)
      local err = check("list " .. conn, { token = "secret-token\1value" }, "OPENTACT_TOKEN is not a non-empty string")
      assert.is_falsy(err:find("secret", 1, true))
      check("token", { token = "", extra = "OPENTACT_EMAIL=a:b OPENTACT_PASSWORD=pw-123456" },
        "--email (or OPENTACT_EMAIL) is not an email without ':' or spaces")
      assert.equals(0, emu:stats().requests)
    end)
  end)

  describe("plurals #c", function()
    it("say 1 uuid: in the summary, the progress bar and a failed group", function()
      local out, _, status = run(("assign %s --add %s"):format(conns[2], leases[30]))
      assert.equals(0, status, out)
      assert.matches("\n1 uuid in %d+%.%d+ s\n$", out)

      -- the two lookups, the first batch, then the second refused
      emu:faults({ {}, {}, {}, { status = 400, message = "rejected batch" } })
      out, _, status = run(("assign %s --add %s %s --batch-size 1 --concurrency 1")
        :format(conns[2], leases[31], leases[34]))
      assert.equals(1, status, out)
      assert.matches("\n  1 uuid: opentact: rejected %(400%)", out)
      assert.matches("\n2 uuids in ", out)

      local _, bar = main({ "assign", conns[3], "--add", leases[32] }, { is_terminal = true })
      assert.matches("%] 1/1 uuid  100%%", bar)
      assert.is_falsy(bar:find("uuids", 1, true), bar)

      local file = tmpfile("12125550033\n")
      -- the assign fails
      emu:faults({ { on = "^POST /sip/connection/", status = 500, message = "down" } })
      out, _, status = run(("sync %s --numbers-file %s"):format(conns[2], file))
      os.remove(file)
      assert.equals(1, status, out)
      assert.matches("\n  1 uuid: opentact: server %(500%): down", out)
      assert.is_falsy(out:find("1 uuids", 1, true), out)
    end)
  end)
end)

describe("the opentact command's help", function()
  local function main(args)
    local out, err = sink(), sink()
    local status = cli.main(args, { stdout = out, stderr = err, getenv = function() return nil end })
    return out.text(), err.text(), status
  end

  -- The options a help text lists (as --name), in a set.
  local function options_in(text)
    local set = {}
    for name in text:gmatch("%-%-[%w][%w%-]*") do set[name] = true end
    return set
  end

  it("answers --help per command with its usage, options, output and exit status", function()
    for _, c in ipairs(cli.HELP.commands) do
      local out, _, status = main({ c.name, "--help" })
      assert.equals(0, status, c.name)
      assert.equals(cli.help(c.name), out)
      assert.equals(1, out:find("Usage:\n  opentact " .. c.name, 1, true), out)
      assert.is_truthy(out:find("\nExit status:\n  0 ", 1, true), out)
      if c.name ~= "help" then assert.is_truthy(out:find("\n  2     a usage error", 1, true), out) end
      for _, opt in ipairs(cli.command_options(c.name)) do
        assert.is_truthy(out:find("\n  " .. (opt.short and opt.short .. ", " or "") .. opt.name, 1, true), opt.name)
      end
      -- the same as `help COMMAND` and -h; --help wins over anything else
      assert.equals(out, (main({ "help", c.name })))
      assert.equals(out, (main({ c.name, "-h" })))
      assert.equals(out, (main({ c.name, "--bogus", "--add", "--help" })))
      if c.output then
        for _, f in ipairs({ "table", "json", "jsonl", "csv", "tsv" }) do
          assert.is_truthy(out:find("\n  " .. f .. " ", 1, true), c.name .. " " .. f)
        end
      end
    end
  end)

  it("lists every command and every option in the tool's help, and runs as bin/opentact", function()
    local out, _, status = main({ "--help" })
    assert.equals(0, status)
    assert.equals(cli.help(), out)
    assert.equals(out, (main({ "help" })))
    for _, c in ipairs(cli.HELP.commands) do
      assert.is_truthy(out:find("\n  " .. c.name .. " ", 1, true), c.name)
      assert.is_truthy(out:find("\n  opentact " .. c.name, 1, true), c.name)
      for name in pairs(options_in(cli.help(c.name))) do assert.is_truthy(out:find(name, 1, true), name) end
    end
    for _, code in ipairs({ "0", "1", "2", "130" }) do assert.is_truthy(out:find("\n  " .. code .. " ", 1, true)) end
    local text, err, code = opentact("sync --help")
    assert.equals(0, code, err)
    assert.equals(cli.help("sync"), text)
  end)

  it("exits 2 for help on a command there is not", function()
    for _, args in ipairs({ { "frobnicate", "--help" }, { "help", "frobnicate" } }) do
      local out, err, status = main(args)
      assert.equals(2, status)
      assert.equals("", out)
      assert.matches("unknown command 'frobnicate'", err)
    end
  end)
end)

describe("the completion scripts and the man page", function()
  -- The options each command takes, as its --help lists them (-h aside).
  local function command_options()
    local out = {}
    for _, c in ipairs(cli.HELP.commands) do
      local set = {}
      for _, opt in ipairs(cli.command_options(c.name)) do set[opt.name] = true end
      out[c.name] = set
    end
    return out
  end

  local set_of = support.set

  -- Runs bash with the completion script and `script`; its output as lines.
  local function bash(script)
    local file = tmpfile(". " .. ROOT .. "/completion/opentact.bash\n" .. script)
    local out = support.sh("bash " .. file .. " 2>&1")
    os.remove(file)
    return lines_of(out)
  end

  it("bash completes commands, each command's options, --format's values and files", function()
    local script = { "complete_words() { COMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _opentact;"
      .. " printf '%s\\n' \"${COMPREPLY[@]}\"; echo ==; }" }
    local want = command_options()
    for _, c in ipairs(cli.HELP.commands) do
      script[#script + 1] = ("complete_words opentact %s CONN --"):format(c.name)
    end
    script[#script + 1] = "complete_words opentact ''"
    script[#script + 1] = "complete_words opentact list CONN --format ''"
    script[#script + 1] = "complete_words opentact list CONN --format = c"
    local dir = support.sh("mktemp -d"):gsub("%s+$", "")
    assert(io.open(dir .. "/a file.csv", "w")):close()
    assert(io.open(dir .. "/b.txt", "w")):close()
    script[#script + 1] = ("complete_words opentact assign CONN --add-file '%s/'"):format(dir)
    script[#script + 1] = ("complete_words opentact --url http://x sync CONN --numbers-file '%s/a'"):format(dir)
    local replies, current = {}, {}
    for _, line in ipairs(bash(table.concat(script, "\n") .. "\n")) do
      if line == "==" then
        replies[#replies + 1] = current
        current = {}
      else
        current[#current + 1] = line
      end
    end
    os.execute("rm -rf '" .. dir .. "'")
    for i, c in ipairs(cli.HELP.commands) do assert.same(want[c.name], set_of(replies[i]), c.name) end
    local n = #cli.HELP.commands
    local names = {}
    for _, c in ipairs(cli.HELP.commands) do names[#names + 1] = c.name end
    assert.same(set_of(names), set_of(replies[n + 1]))
    assert.same({ "table", "json", "jsonl", "csv", "tsv" }, replies[n + 2])
    assert.same({ "csv" }, replies[n + 3])
    assert.same(set_of({ dir .. "/a file.csv", dir .. "/b.txt" }), set_of(replies[n + 4]))
    assert.same({ dir .. "/a file.csv" }, replies[n + 5])
  end)

  it("zsh's completion names the same options per command, and completes them", function()
    local text = assert(slurp(ROOT .. "/completion/_opentact"))
    assert.equals(1, text:find("#compdef opentact\n", 1, true))
    -- each command's arm, with the shared option groups it names
    local groups = {
      ["$help"] = { "--help" }, ["$url"] = { "--url" }, ["$output"] = { "--format", "--json" },
      ["$batch"] = { "--batch-size", "--concurrency", "--failed-file", "--skip-invalid" },
      ["$profile"] = { "--profile" }, ["$attempts"] = { "--timeout", "--retries", "--deadline" },
      ["$verbose"] = { "--verbose" },
      ["$country"] = { "--country-code" },
    }
    local want = command_options()
    for _, c in ipairs(cli.HELP.commands) do
      local arm = text:match("\n        " .. c.name .. "%)\n(.-);;")
      assert.is_truthy(arm, c.name)
      local got = {}
      for group, names in pairs(groups) do
        if arm:find(group, 1, true) then
          for _, name in ipairs(names) do got[name] = true end
        end
      end
      for name in arm:gmatch("'[^']-(%-%-[%w][%w%-]*)[=%[]") do got[name] = true end
      assert.same(want[c.name], got, c.name)
    end
    if not has("zsh") then
      return pending("zsh is not installed: the zsh completion script was checked, not run")
    end
    local out = support.sh("zsh -n " .. ROOT .. "/completion/_opentact 2>&1; echo status=$?")
    assert.equals("status=0\n", out)
    -- completes in an interactive zsh, in a pseudo-terminal
    local harness = tmpfile(([=[
zmodload zsh/zpty
zpty z 'zsh -f -i'
zpty -w z "PS1='>'; fpath=(%s/completion \$fpath); autoload -U compinit; compinit -u -D; LISTMAX=1000; print RE\ADY"
zpty -r -m z junk '*READY*'
zpty -w -n z $'opentact sync CONN --\t'
all=''
for i in {1..50}; do
  while zpty -r -t z chunk; do all+=$chunk; done
  [[ $all == *--numbers-file*--url* ]] && break
  sleep 0.1
done
print -r -- "$all"
zpty -d z
]=]):format(ROOT))
    out = support.sh("timeout 20 zsh -f " .. harness .. " 2>&1")
    os.remove(harness)
    for name in pairs(want.sync) do assert.is_truthy(out:find(name, 1, true), name .. " in " .. out) end
  end)

  it("has every command and option of the help in the man page, which renders", function()
    local page = os.tmpname()
    local out = support.sh(("cd / && %s %s/tools/manpage.lua %s 2>&1; echo status=$?"):format(support.LUA, ROOT, page))
    assert.equals("status=0\n", out)
    local roff = assert(slurp(page))
    assert.is_falsy(roff:find("[\128-\255]"), "the man page is ASCII")
    local text = roff:gsub("\\f[BIR]", ""):gsub("\\%-", "-"):gsub("\\e", "\\"):gsub("\\&", "")
    assert.matches('\n%.TH OPENTACT 1 "" "opentact %d+%.%d+%.%d+"', text)
    for _, c in ipairs(cli.HELP.commands) do
      assert.is_truthy(text:find('\n.SY "opentact ' .. c.name .. '"', 1, true), c.name)
      -- the command's section: every option of its --help, its output and exit codes
      local section = text:match('\n%.SS "opentact ' .. c.name .. '"\n(.-)\n%.S[SH] ')
      assert.is_truthy(section, c.name)
      for name in cli.help(c.name):gmatch("%-%-[%w][%w%-]*") do
        assert.is_truthy(section:find(name, 1, true), c.name .. ": " .. name)
      end
      for _, e in ipairs(c.exit) do assert.is_truthy(section:find("\n.TP\n" .. e[1] .. "\n", 1, true), e[1]) end
      for _, o in ipairs(c.output or {}) do assert.is_truthy(section:find("\n.TP\n" .. o[1] .. "\n", 1, true)) end
    end
    for name in cli.help():gmatch("%-%-[%w][%w%-]*") do assert.is_truthy(text:find(name, 1, true), name) end
    for _, v in ipairs({ "OPENTACT_TOKEN", "OPENTACT_URL", "OPENTACT_PASSWORD", ".SH EXIT STATUS" }) do
      assert.is_truthy(text:find(v, 1, true), v)
    end
    -- the copy in the tree, if there is one, is what the help makes now
    local kept = slurp(ROOT .. "/man/man1/opentact.1")
    if kept then assert.equals(roff, kept, "man/man1/opentact.1 is stale: make man") end

    if not has("groff") then
      os.remove(page)
      return pending("groff is not installed: the man page was checked, not rendered")
    end
    out = support.sh(("groff -man -Tutf8 -ww -z %s 2>&1; echo status=$?"):format(page))
    assert.equals("status=0\n", out)
    if has("man") then
      out = support.sh(("MANWIDTH=80 man -P cat -l %s 2>&1"):format(page))
      assert.is_truthy(out:find("OPENTACT(1)", 1, true), out)
      assert.is_truthy(out:find("opentact sync CONN --numbers-file FILE", 1, true), out)
    end
    os.remove(page)
  end)

  it("are installed by the rock, when the rockspec says so", function()
    local rockspec = assert(slurp(support.sh("ls " .. ROOT .. "/opentact-*.rockspec | head -n 1"):gsub("%s+$", "")))
    if not rockspec:find('"completion"', 1, true) then
      return pending("the rockspec does not copy completion/ and man/ yet")
    end
    local lua = os.getenv("OPENTACT_SPEC_LUA") or "lua5.4"
    local dir = support.sh(("luarocks --lua-version %s --tree %s/.rocks/%s show --rock-dir opentact 2>&1")
      :format(lua == "luajit" and "5.1" or lua:sub(4), ROOT, lua)):gsub("%s+$", "")
    for _, f in ipairs({ "completion/opentact.bash", "completion/_opentact", "man/man1/opentact.1" }) do
      assert.is_truthy(slurp(dir .. "/" .. f), dir .. "/" .. f)
    end
  end)
end)
