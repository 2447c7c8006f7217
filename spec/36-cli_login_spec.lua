-- The command line's login, against the emulator with real processes: the
-- token file through concurrent logins under an open umask, tokens whose
-- expiry cannot be shown, and a kept token with under a minute left.
local support = require("emulator")
local core = require("opentact.core")
local lfs = require("lfs")

local EMAIL, PASSWORD = "ops@example.com", "s3cret: pass word"

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function escape(s) return (s:gsub("%p", "%%%0")) end

-- A JWT whose claims are `claims_json` as written (numbers no JSON
-- encoder would write), unsigned: for the client, which only reads it.
local function jwt(claims_json)
  local function b64url(s) return (core.base64(s):gsub("=+$", ""):gsub("[+/]", { ["+"] = "-", ["/"] = "_" })) end
  return b64url('{"alg":"HS256","typ":"JWT"}') .. "." .. b64url(claims_json) .. "." .. b64url("not a signature")
end

-- What a crash looks like on standard error.
local function crashed(out)
  return out:find("traceback", 1, true) or out:find("%.lua:%d+:") or out:find("attempt to", 1, true)
end

describe("the command line's token file #wire", function()
  local emu, st, home
  setup(function()
    emu = support.start({ users = { EMAIL .. ":" .. PASSWORD } })
    st = emu:state()
    home = support.sh("mktemp -d"):gsub("%s+$", "")
  end)
  teardown(function()
    if emu then emu:stop() end
    if home then os.execute("rm -rf " .. quote(home)) end
  end)
  before_each(function()
    emu:reset()
    emu:config({ token_ttl = 3600 })
    os.execute("rm -rf " .. quote(home .. "/opentact"))
  end)

  local path = function() return home .. "/opentact/token" end

  -- The command line of `opentact ARGS` with a clean environment plus `env`.
  local function command(args, env)
    return ("unset OPENTACT_TOKEN OPENTACT_EMAIL OPENTACT_PASSWORD; XDG_CONFIG_HOME=%s OPENTACT_URL=%s %s "
      .. "%s %s/bin/opentact %s < /dev/null"):format(quote(home), emu.url, env or "", support.LUA, support.ROOT, args)
  end

  local function run(args, env) return support.run(command(args, env)) end

  local function login_env() return "OPENTACT_PASSWORD=" .. quote(PASSWORD) end

  -- The token file's mode ("600"), or nil when there is none; read in this
  -- process (lstat, as `stat -c %a`): the watch below looks many times.
  local function mode()
    local p = lfs.symlinkattributes(path(), "permissions")
    if not p then return nil end
    local n = 0
    for i = 1, 9 do n = n * 2 + (p:sub(i, i) == "-" and 0 or 1) end
    return ("%o"):format(n)
  end

  local function write_token(url, token)
    os.execute("mkdir -p " .. quote(home .. "/opentact"))
    local f = assert(io.open(path(), "wb"))
    f:write(url, "\n", token, "\n")
    f:close()
  end

  describe("through concurrent logins under umask 022", function()
    -- Rounds of four logins at once, the file watched all along: its mode
    -- and its text, as another user or a reader of the token would see it.
    local ROUNDS, LOGINS = 8, 4

    it("is never readable by others, always holds a whole token, and leaves no other file", function()
      local login = command("login --email " .. EMAIL, login_env())
      local whole = "^" .. escape(emu.url) .. "\n[%w_-]+%.[%w_-]+%.[%w_-]+\n$"
      local done = home .. "/round-done"
      local seen, samples = false, 0
      for round = 1, ROUNDS do
        os.remove(done)
        local jobs = {}
        for i = 1, LOGINS do jobs[i] = "(" .. login .. " > /dev/null 2>&1) &" end
        os.execute(("(umask 022; %s wait; : > %s) > /dev/null 2>&1 &"):format(table.concat(jobs, " "), quote(done)))
        repeat
          local finished = support.slurp(done) ~= nil
          local m, text = mode(), support.slurp(path())
          -- from the first time it is seen whole (it may come between the
          -- two reads), the file is there for good
          if seen or (m and text) then
            seen = true
            samples = samples + 1
            assert.equals("600", m, ("round %d: the token file's mode"):format(round))
            assert.is_truthy(text and text:find(whole), ("round %d: the token file holds %q"):format(round,
              tostring(text and text:gsub("[%w_-]+%.[%w_-]+%.[%w_-]+", "<jwt>"))))
          end
        until finished
        assert.equals("600", mode(), "after round " .. round)
      end
      assert.is_true(samples > ROUNDS, "the file was watched " .. samples .. " times")
      assert.equals(ROUNDS * LOGINS, emu:stats().logins)
      -- no temporary file left behind
      assert.equals("token\n", support.sh("ls -A " .. quote(home .. "/opentact")))
      assert.equals("700", support.sh("stat -c %a " .. quote(home .. "/opentact")):match("%d+"))
    end)
  end)

  it("replaces a token file another program left readable by others, and a symbolic link", function()
    write_token(emu.url, "old")
    os.execute("chmod 644 " .. quote(path()))
    local out, status = run("login --email " .. EMAIL, login_env())
    assert.equals(0, status, out)
    assert.equals("600", mode())
    -- a link in its place is replaced, never written through
    local elsewhere = home .. "/elsewhere"
    os.remove(path())
    os.execute(("printf 'keep\\n' > %s && ln -s %s %s"):format(quote(elsewhere), quote(elsewhere), quote(path())))
    out, status = run("login --email " .. EMAIL, login_env())
    assert.equals(0, status, out)
    assert.equals("keep\n", support.slurp(elsewhere))
    assert.equals("600", mode())
    assert.equals("", support.sh("find " .. quote(path()) .. " -type l"))
  end)

  it("says so, exit 1, when the token cannot be kept, and makes nothing", function()
    -- where the folder should be, a file: even root cannot write there
    local blocker = home .. "/blocker"
    local f = assert(io.open(blocker, "wb"))
    f:write("a file\n")
    f:close()
    finally(function() os.remove(blocker) end)
    local out, status = support.run(command("login --email " .. EMAIL, login_env())
      :gsub("XDG_CONFIG_HOME=%S+", "XDG_CONFIG_HOME=" .. quote(blocker)))
    assert.equals(1, status, out)
    assert.matches("^opentact: logged in, but cannot keep the token: cannot create a file next to "
      .. escape(blocker .. "/opentact/token") .. ": ", out)
    assert.is_falsy(crashed(out), out)
    assert.equals("a file\n", support.slurp(blocker))
  end)

  describe("core.write_private #c", function()
    local dir
    before_each(function() dir = support.sh("mktemp -d"):gsub("%s+$", "") end)
    after_each(function() os.execute("rm -rf " .. quote(dir)) end)

    it("writes the whole text, mode 0600 whatever the umask, and leaves no other file", function()
      local target = dir .. "/token"
      assert.is_true(core.write_private(target, "one\ntwo\n"))
      assert.equals("one\ntwo\n", support.slurp(target))
      assert.equals("600\n", support.sh("stat -c %a " .. quote(target)))
      -- over a file others could read, and over a link: replaced
      os.execute("chmod 666 " .. quote(target))
      assert.is_true(core.write_private(target, "three\n"))
      assert.equals("600\n", support.sh("stat -c %a " .. quote(target)))
      os.execute(("printf 'keep' > %s/other && rm %s && ln -s other %s"):format(quote(dir), quote(target),
        quote(target)))
      assert.is_true(core.write_private(target, "four\n"))
      assert.equals("keep", support.slurp(dir .. "/other"))
      assert.equals("four\n", support.slurp(target))
      assert.equals("other\ntoken\n", support.sh("ls -A " .. quote(dir)))
    end)

    it("answers nil and a message naming the file, never the text, and leaves nothing", function()
      local ok, err = core.write_private(dir .. "/missing/token", "secret-text")
      assert.is_nil(ok)
      assert.matches("^cannot create a file next to " .. escape(dir .. "/missing/token") .. ": ", err)
      assert.is_falsy(err:find("secret-text", 1, true))
      assert.equals("", support.sh("ls -A " .. quote(dir)))
      -- a path too long for the file system, from XDG_CONFIG_HOME: an answer, not an error
      ok, err = core.write_private(dir .. "/" .. ("x"):rep(5000), "secret-text")
      assert.is_nil(ok)
      assert.matches(": File name too long$", err)
      ok, err = core.write_private("", "secret-text")
      assert.is_nil(ok)
      assert.matches("^cannot create a file next to : ", err)
      assert.has_error(function() core.write_private("a\0b", "x") end)
      assert.has_error(function() core.write_private(nil, "x") end)
    end)
  end)

  describe("with a token whose expiry cannot be shown", function()
    -- exp claims a server may send: out of time's range, not finite, not
    -- a number; each with iat as a server would set it.
    local EXPS = { "1e300", "1e17", "-1e300", "1e999", "-1e999", "253402300800", "\"soon\"", "{}", "null" }

    it("logs in and says its expiry is unknown, never a traceback", function()
      for _, exp in ipairs(EXPS) do
        local token = jwt(('{"sub":"u","iat":%d,"exp":%s}'):format(os.time(), exp))
        emu:faults({ { ctype = "application/json",
          raw = ('{"success":true,"payload":{"email":"%s","token":"%s"}}'):format(EMAIL, token) } })
        local out, status = run("login --email " .. EMAIL, login_env())
        assert.is_falsy(crashed(out), exp .. ": " .. out)
        assert.equals(0, status, exp .. ": " .. out)
        assert.matches("^Logged in as " .. escape(EMAIL) .. "%. The token is kept in " .. escape(path())
          .. ", valid until an unknown time%.\n$", out)
        assert.equals(emu.url .. "\n" .. token .. "\n", support.slurp(path()))
      end
    end)

    it("lets every later command read the kept token, never a traceback", function()
      for _, exp in ipairs(EXPS) do
        local token = jwt(('{"sub":"u","iat":%d,"exp":%s}'):format(os.time(), exp))
        write_token(emu.url, token)
        -- the token as it is: the server judges it
        local out, status = run("token")
        assert.is_falsy(crashed(out), exp .. ": " .. out)
        assert.equals(0, status, exp .. ": " .. out)
        assert.equals(token .. "\n", out)
        out, status = run("list " .. st.connections[1])
        assert.is_falsy(crashed(out), exp .. ": " .. out)
        assert.equals(1, status, exp .. ": " .. out)
        assert.matches("opentact: auth %(401%)", out)
        assert.is_falsy(out:find(token, 1, true))
      end
    end)

    it("is read by core.jwt_claims as a finite number, or not at all", function()
      local exp, iat = core.jwt_claims(jwt('{"exp":1e300,"iat":-1e300}'))
      assert.equals(1e300, exp)
      assert.equals(-1e300, iat)
      exp, iat = core.jwt_claims(jwt('{"exp":1e999,"iat":-1e999}'))
      assert.is_nil(exp)
      assert.is_nil(iat)
    end)

    it("shows a usable expiry as a date", function()
      local out, status = run("login --email " .. EMAIL, login_env())
      assert.equals(0, status, out)
      local date = out:match(", valid until (%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%dZ)%.\n$")
      assert.is_truthy(date, out)
      assert.equals(os.date("!%Y-%m-%d %H", os.time() + 3600), date:sub(1, 13))
    end)
  end)

  describe("kept with under a minute left", function()
    before_each(function()
      emu:config({ token_ttl = 30 })
      local out, status = run("login --email " .. EMAIL, login_env())
      assert.equals(0, status, out)
      assert.equals(1, emu:stats().logins)
    end)

    it("is an auth error, exit 1, that says how to log in again", function()
      local out, status = run("list " .. st.connections[1])
      assert.equals(1, status, out)
      assert.matches("^opentact: auth: the token saved by 'opentact login' expires at "
        .. "%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%dZ", out)
      assert.matches("run 'opentact login' again", out)
      assert.matches("OPENTACT_EMAIL and OPENTACT_PASSWORD", out)
      assert.is_falsy(out:find("--help", 1, true), out)
      -- the same under --format json: an auth error, not a usage one
      out, status = run("list " .. st.connections[1] .. " --format json")
      assert.equals(1, status, out)
      assert.matches('"kind":"auth"', out)
      out, status = run("token")
      assert.equals(1, status, out)
      assert.matches("^opentact: auth: the token saved by 'opentact login' expires", out)
      -- nothing was sent with it
      assert.equals(1, #emu:requests())
    end)

    it("says when it expired, once it has", function()
      local token = jwt(('{"sub":"u","iat":%d,"exp":%d}'):format(os.time() - 120, os.time() - 60))
      write_token(emu.url, token)
      local out, status = run("list " .. st.connections[1])
      assert.equals(1, status, out)
      assert.matches("^opentact: auth: the token saved by 'opentact login' expired at ", out)
    end)

    it("is not used when OPENTACT_EMAIL and OPENTACT_PASSWORD are set: the CLI logs in, the file stays", function()
      local kept = support.slurp(path())
      local out, status = run("list " .. st.connections[1], ("OPENTACT_EMAIL=%s %s"):format(EMAIL, login_env()))
      assert.equals(0, status, out)
      assert.matches("^3 leases", out)
      assert.equals(2, emu:stats().logins)
      -- the new token was the command's own: the kept one is left as it was
      assert.equals(kept, support.slurp(path()))
    end)
  end)
end)
