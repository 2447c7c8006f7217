-- A review of the second hardening pass, from the host's side: what the
-- command line promises about files it writes besides standard output.
-- Against the emulator over real sockets.
local support = require("emulator")

local tmpfile, slurp = support.tmpfile, support.slurp

-- bin/opentact with `args` (shell words) against an emulator: standard
-- output, standard error and the exit status.
local opentact = require("cli").opentact

-- /dev/full takes the open and fails every write: a full disk.
local function have_dev_full()
  local f = io.open("/dev/full", "wb")
  if not f then return false end
  f:write("x")
  local ok = f:close()
  return not ok
end

describe("opentact --failed-file that cannot be written #wire", function()
  local emu, conns, leases

  setup(function()
    emu, conns, leases = support.start_with_uuids({ leases = 40 })
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  it("assign says the failed uuids could not be written, never that they were", function()
    if not have_dev_full() then pending("no /dev/full on this system") return end
    -- the lease lookup passes; the assign fails for good
    emu:faults({ {}, { status = 500, message = "down" } })
    local out, err, status = opentact(emu, ("assign %s --add %s --failed-file /dev/full"):format(conns[2], leases[20]))
    assert.equals(1, status, out .. err)
    assert.is_truthy(out:find("1 failed", 1, true), out .. err)
    assert.is_falsy(out:find("failed uuids written to", 1, true), out .. err)
    assert.is_falsy(out:find("--add-file /dev/full", 1, true), out .. err)
    assert.is_truthy(err:find("cannot write the failed uuids: /dev/full: No space left on device", 1, true), err)
  end)

  it("sync says the failed uuids could not be written, never where they are", function()
    if not have_dev_full() then pending("no /dev/full on this system") return end
    local file = tmpfile("12125550030\n")
    -- the assign fails for good
    emu:faults({ { on = "^POST /sip/connection/", status = 500, message = "down" } })
    local out, err, status = opentact(emu, ("sync %s --numbers-file %s --failed-file /dev/full"):format(conns[2], file))
    os.remove(file)
    assert.equals(1, status, out .. err)
    assert.is_truthy(out:find("Running the same sync again", 1, true), out .. err)
    assert.is_falsy(out:find("the uuids that failed are in", 1, true), out .. err)
    assert.is_truthy(err:find("cannot write the failed uuids: /dev/full: No space left on device", 1, true), err)
  end)

  it("a server message with a lone 8-bit CSI byte reaches standard error escaped", function()
    emu:faults({ { raw = '{"success":false,"message":"a\155' .. '31mRED"}', status = 400, ctype = "application/json" } })
    local out, err, status = opentact(emu, "list " .. conns[1])
    assert.equals(1, status, out .. err)
    assert.is_truthy(err:find("a\\15531mRED", 1, true), err)
    assert.is_falsy(err:find("\155", 1, true), err)
  end)

  it("a failed file that can be written is still named, with the command that retries", function()
    local failed = os.tmpname()
    emu:faults({ {}, { status = 500, message = "down" } })
    local out, err, status = opentact(emu, ("assign %s --add %s --failed-file %s"):format(conns[2], leases[20], failed))
    assert.equals(1, status, out .. err)
    assert.is_truthy(out:find("failed uuids written to " .. failed, 1, true), out .. err)
    assert.is_truthy(slurp(failed):find(leases[20], 1, true))
    os.remove(failed)
  end)
end)

describe("opentact-emulator's logs and ?bearer= #wire", function()
  local TOKEN = "review-bearer-secret-42"
  local emu

  setup(function() emu = support.start({ token = TOKEN, secrets = "file" }) end)
  teardown(function() if emu then emu:stop() end end)

  -- The emulator's folder: the -p of the nginx it started.
  local function prefix()
    local nginx = support.sh("pgrep -P " .. emu.pid .. " nginx"):match("%d+")
    -- nginx's master writes its title over its arguments: spaces between
    local cmdline = slurp("/proc/" .. nginx .. "/cmdline")
    return cmdline:match("%-p[%z ]([^%z ]+)")
  end

  it("a request line with ?bearer= that nginx logs is readable by its owner only", function()
    -- nginx logs a warning with the request line (and so its query) for
    -- an ngx.sleep(0); any error logged while a request runs does the same
    emu:faults({ { delay = 0 } })
    local code = support.sh(("curl -s -o /dev/null -w '%%{http_code}' '%s/sip/connection/%s/tnlease?bearer=%s'")
      :format(emu.url, emu:state().connections[1], TOKEN))
    assert.equals("200", code)
    local dir = assert(prefix())
    local holding = {}
    for path in support.sh("grep -rl " .. TOKEN .. " " .. dir .. " 2>/dev/null"):gmatch("[^\n]+") do
      holding[#holding + 1] = path
    end
    assert.is_true(#holding > 0, "the check sees nothing: no file holds the token")
    for _, path in ipairs(holding) do
      -- readable by others when the file and every folder up to the
      -- emulator's own let them in
      local modes, p = {}, path
      while #p >= #dir do
        modes[#modes + 1] = tonumber(support.sh("stat -c %a " .. p), 8)
        p = p:match("^(.*)/[^/]*$")
      end
      local others_in = true
      for i, m in ipairs(modes) do
        local bit = i == 1 and 4 or 1 -- read the file, search the folders
        if m % 8 < bit or (m % 8) % (bit * 2) < bit then others_in = false end
      end
      assert.is_false(others_in, path .. " is readable by every local user and holds the token")
    end
  end)
end)

-- A byte from 0x80 to 0x9F outside a UTF-8 character is a C1 control to a
-- terminal that takes 8-bit controls (0x9B is CSI, as ESC [ is): server
-- text shows it escaped, as it does U+009B; whole UTF-8 characters stay.
describe("server text with bytes that are no UTF-8", function()
  local pretty = require("opentact.pretty")
  local errors = require("opentact.errors")

  local function stray(s)
    -- a byte >= 0x80 that does not belong to a whole UTF-8 character
    local i = 1
    while i <= #s do
      local c = s:byte(i)
      local need = c < 0x80 and 0 or c >= 0xC2 and c <= 0xDF and 1 or c >= 0xE0 and c <= 0xEF and 2
        or c >= 0xF0 and c <= 0xF4 and 3 or nil
      if not need then return i end
      for k = 1, need do
        local b = s:byte(i + k)
        if not b or b < 0x80 or b > 0xBF then return i end
      end
      i = i + need + 1
    end
    return nil
  end

  local BAD = { "a\15531mRED", "\155", "x\128y", "\194", "\226\128", "\237\160\128", "\192\155", "\255\254", "ok\226" }
  local GOOD = "\196\128 \226\134\146 \240\159\152\128 \195\169 \226\128\174"

  it("pretty.safe (tables, csv, tsv) escapes them as \\ddd", function()
    for _, s in ipairs(BAD) do
      local out = pretty.safe(s)
      assert.is_nil(stray(out), ("%q gave %q"):format(s, out))
      assert.is_nil(stray(pretty.safe(s, true)), ("%q"):format(s))
    end
    assert.is_truthy(pretty.safe("a\15531m"):find("\\155", 1, true))
  end)

  it("keeps whole UTF-8 characters (but still shows U+202E escaped)", function()
    assert.equals("\196\128 \226\134\146 \240\159\152\128 \195\169 \\u{202E}", pretty.safe(GOOD))
  end)

  it("shows the zero-width and format characters escaped, and the visible ones next to them as they are", function()
    -- U+200B U+200C U+200D U+2060 U+2064 U+FEFF U+206A U+206F, each
    -- between two letters; U+2010 (a hyphen) and U+2065 (unassigned, no
    -- format character) are left alone
    local shown = pretty.safe("a\226\128\139b\226\128\140c\226\128\141d\226\129\160e\226\129\164f"
      .. "\239\187\191g\226\129\170h\226\129\175i\226\128\144j\226\129\165k")
    assert.equals("a\\u{200B}b\\u{200C}c\\u{200D}d\\u{2060}e\\u{2064}f\\u{FEFF}g\\u{206A}h\\u{206F}i"
      .. "\226\128\144j\226\129\165k", shown)
  end)

  it("an error's message escapes them too", function()
    for _, s in ipairs(BAD) do
      local text = tostring(setmetatable(errors.new("rejected", s), errors.Error))
      assert.is_truthy(text:find("^opentact: rejected: "), text)
      assert.is_nil(stray(text), ("%q gave %q"):format(s, text))
    end
  end)
end)
