-- "did you mean" for a mistyped command or option. Against the emulator
-- over real sockets.
local support = require("emulator")

local ROOT = support.ROOT
local slurp = support.slurp

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
  local emu, conns

  setup(function()
    emu = support.start({ leases = 60, apps = 2 })
    conns = emu:state().connections
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  local function run(args) return opentact(emu, args) end

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
