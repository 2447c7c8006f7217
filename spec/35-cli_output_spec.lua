-- What the opentact command writes, as a spreadsheet, a terminal, a JSON
-- reader and a shell see it: CSV and TSV cells that a spreadsheet would
-- run as formulas begin with ', server text never reaches a terminal as
-- raw control or bidirectional characters, --format json keeps {} and [],
-- and output that could not be written is an error (a reader that closes
-- the pipe early ends the command quietly).
local support = require("emulator")
local opentact = require("opentact")

local ROOT = support.ROOT
local slurp = support.slurp

-- bin/opentact with `args` (shell words), standard output sent where
-- `to` says: captured (nil), "> FILE", or "| COMMAND" (a reader; then
-- `signal` is "default" or "ignore", SIGPIPE's disposition for the
-- command). Returns standard output (when captured), standard error and
-- the exit status.
local function opentact_cmd(emu, args, to, signal)
  local err, st = os.tmpname(), os.tmpname()
  local cmd = ("env -u OPENTACT_EMAIL -u OPENTACT_PASSWORD XDG_CONFIG_HOME=/nonexistent OPENTACT_TOKEN='%s' "
    .. "OPENTACT_URL='%s' %s %s/bin/opentact %s"):format(emu.token, emu.url, support.LUA, ROOT, args)
  local out
  if to == nil then
    out = support.sh(("%s 2> %s; echo $? > %s"):format(cmd, err, st))
  elseif to:sub(1, 1) == ">" then
    out = support.sh(("%s %s 2> %s; echo $? > %s"):format(cmd, to, err, st))
  else
    -- the shell the specs run in may ignore SIGPIPE (LuaSocket does so in
    -- this process): say which disposition the command gets
    out = support.sh(("(env --%s-signal=PIPE %s 2> %s; echo $? > %s) %s"):format(
      signal == "ignore" and "ignore" or "default", cmd, err, st, to))
  end
  local stderr, status = slurp(err), tonumber(slurp(st))
  os.remove(err)
  os.remove(st)
  return out, stderr, status
end

describe("the opentact command's output #wire", function()
  local emu, conns, leases

  setup(function()
    emu = support.start({ leases = 30 })
    local st = emu:state()
    conns, leases = st.connections, st.leases
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  local function run(args, to, signal) return opentact_cmd(emu, args, to, signal) end

  -- The next answer of the emulator: status 200 and `payload` (JSON text).
  local function answer(payload)
    local status = emu:faults({ { status = 200, ctype = "application/json",
      raw = '{"success":true,"payload":' .. payload .. "}" } })
    assert.equals(200, status)
  end

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

    it("the library marks decoded empty objects with opentact.Object; arrays and filled objects carry none", function()
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
end)
