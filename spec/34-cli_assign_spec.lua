-- Every bad input line named in one run, what --skip-invalid does in
-- sync, and "did you mean" for a mistyped command or option. Against the
-- emulator over real sockets.
local support = require("emulator")

local ROOT = support.ROOT
local tmpfile, slurp = support.tmpfile, support.slurp

-- bin/opentact with `args` (shell words): standard output, standard
-- error and the exit status. No login of the machine's user leaks in.
local function opentact(emu, args)
  local err = os.tmpname()
  local out = support.sh(("env -u OPENTACT_EMAIL -u OPENTACT_PASSWORD XDG_CONFIG_HOME=/nonexistent "
    .. "OPENTACT_TOKEN='%s' OPENTACT_URL='%s' %s %s/bin/opentact %s 2> %s; echo \"status=$?\""):format(
    emu.token, emu.url, support.LUA, ROOT, args, err))
  local status = tonumber(out:match("status=(%d+)\n$"))
  local stderr = slurp(err)
  os.remove(err)
  return (out:gsub("status=%d+\n$", "")), stderr, status
end

describe("opentact assign and input files #wire", function()
  local emu, conns, leases

  setup(function()
    -- connection 1 holds leases 1 to 3; app 1 holds lease 60, app 2 lease 59
    emu = support.start({ leases = 60, apps = 2 })
    local st = emu:state()
    conns, leases = st.connections, st.leases
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  local function run(args) return opentact(emu, args) end

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
