-- The command line's settings for every command, against the emulator with
-- real processes: -v/--verbose (a line per HTTP attempt, never a secret),
-- --timeout and --retries, logout, whoami, --profile / OPENTACT_PROFILE,
-- and --country-code / OPENTACT_COUNTRY_CODE with the hint a sync whose
-- numbers all miss gives without it.
local support = require("emulator")
local core = require("opentact.core")
local cjson = require("cjson")
local cli = require("opentact.cli")

local EMAIL, PASSWORD = "ops@example.com", "s3cret: pass word"

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function escape(s) return (s:gsub("%p", "%%%0")) end

-- What a crash looks like on standard error.
local function crashed(out)
  return out:find("traceback", 1, true) or out:find("%.lua:%d+:") or out:find("attempt to", 1, true)
end

describe("the command line's settings for every command #wire", function()
  local emu, conns, leases, home
  setup(function()
    emu = support.start({ users = { EMAIL .. ":" .. PASSWORD }, leases = 40 })
    local st = emu:state()
    conns, leases = st.connections, st.leases
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

  -- `opentact ARGS` with no credentials of the machine's user, the config
  -- folder `home`, OPENTACT_URL the emulator's (unless `env` says
  -- OPENTACT_URL= first), and `env` (NAME=value words). Standard output
  -- and standard error apart: output, errors, exit status.
  local function opentact(args, env)
    local err = os.tmpname()
    local out, status = support.run(("{ unset OPENTACT_TOKEN OPENTACT_EMAIL OPENTACT_PASSWORD "
      .. "OPENTACT_PROFILE OPENTACT_COUNTRY_CODE; XDG_CONFIG_HOME=%s OPENTACT_URL=%s %s %s %s/bin/opentact %s "
      .. "2> %s < /dev/null; }"):format(quote(home), emu.url, env or "", support.LUA, support.ROOT, args, err))
    local errors = support.slurp(err) or ""
    os.remove(err)
    return out, errors, status
  end

  local function token_env() return "OPENTACT_TOKEN=" .. emu.token end
  local function login_env() return "OPENTACT_PASSWORD=" .. quote(PASSWORD) end

  local function token_path(profile)
    return home .. "/opentact/" .. (profile and "profiles/" .. profile .. "/" or "") .. "token"
  end

  -- What the token file of `profile` holds: the URL and the token.
  local function saved(profile)
    local text = support.slurp(token_path(profile))
    if not text then return nil end
    return text:match("^([^\n]*)\n([^\n]*)\n$")
  end

  describe("-v/--verbose", function()
    it("is an option of every command but help, in its help, the man page and the completions", function()
      for _, c in ipairs(cli.HELP.commands) do
        if c.name ~= "help" then
          local names = {}
          for _, opt in ipairs(cli.command_options(c.name)) do names[opt.name] = true end
          assert.is_true(names["--verbose"], c.name)
          assert.is_truthy(cli.help(c.name):find("-v, --verbose", 1, true), c.name)
        end
      end
    end)

    it("prints a line per HTTP attempt on standard error: method, path, status, attempt, ms", function()
      -- the first attempt fails (a 503 is retried), the second answers
      emu:faults({ { status = 503, message = "busy" } })
      local out, err, status = opentact("list -v " .. conns[1], token_env())
      assert.equals(0, status, out .. err)
      local path = "/sip/connection/" .. conns[1] .. "/tnlease"
      local lines = {}
      for l in err:gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.equals(2, #lines, err)
      assert.matches("^opentact: GET " .. escape(path) .. ": 503 %a+, attempt 1, %d+ ms$", lines[1])
      assert.matches("^opentact: GET " .. escape(path) .. ": 200, attempt 2, %d+ ms$", lines[2])
      -- standard output is the command's alone
      assert.is_truthy(out:find("^3 leases\n"), out)
      -- without it, nothing on standard error
      out, err, status = opentact("list " .. conns[1], token_env())
      assert.equals(0, status, out)
      assert.equals("", err)
    end)

    it("never shows the token, the password, or the values of a query", function()
      local token = "secret-token-value-xyz"
      local _, err, status = opentact("list --verbose " .. conns[1], "OPENTACT_TOKEN=" .. token)
      assert.equals(1, status, err)
      assert.matches("opentact: GET [^\n]*: 401", err)
      assert.is_falsy(err:find(token, 1, true), err)
      -- a login: its request is shown, never the password or the JWT
      local out
      out, err, status = opentact("login -v --email " .. EMAIL, login_env())
      assert.equals(0, status, out .. err)
      local _, jwt = saved()
      assert.matches("^opentact: GET /auth: 200, attempt 1, %d+ ms\n$", err)
      assert.is_falsy((out .. err):find(PASSWORD, 1, true))
      assert.is_falsy((out .. err):find(jwt, 1, true))
      -- a search: its path has a query, whose values are not shown
      out, err, status = opentact("find -v '+1 212 555 000*'", token_env())
      assert.equals(0, status, out .. err)
      assert.matches("opentact: POST /lease/tn/search%?take=%.%.%.&skip=%.%.%.: 200, attempt 1, %d+ ms", err)
      assert.is_falsy(err:find("take=%d"), err)
    end)

    it("is heard on every attempt of a bulk command, its report untouched", function()
      local out, err, status = opentact(("assign %s --add %s %s -v --json"):format(conns[2], leases[10], leases[11]),
        token_env())
      assert.equals(0, status, out .. err)
      assert.is_true(cjson.decode(out).ok)
      -- two lookups, then the attach
      local _, n = err:gsub("opentact: [A-Z]+ [^\n]*: 200, attempt 1, %d+ ms\n", "")
      assert.equals(#emu:requests(), n, err)
      assert.is_truthy(err:find("opentact: POST /sip/connection/" .. escape(conns[2]) .. "/tnlease: 200"), err)
    end)
  end)

  describe("--timeout and --retries", function()
    it("--retries N makes N extra attempts, no more", function()
      local faults = {}
      for i = 1, 8 do faults[i] = { status = 503, message = "busy" } end
      emu:faults(faults)
      local _, err, status = opentact("list " .. conns[1] .. " --retries 0", token_env())
      assert.equals(1, status, err)
      assert.equals(1, emu:stats().requests)
      assert.is_truthy(err:find("1 attempt]", 1, true), err)
      emu:reset()
      emu:faults(faults)
      _, err, status = opentact("list " .. conns[1] .. " --retries=3 --timeout 5", token_env())
      assert.equals(1, status, err)
      assert.equals(4, emu:stats().requests)
      assert.is_truthy(err:find("4 attempts]", 1, true), err)
    end)

    it("--timeout S ends an attempt that takes longer", function()
      -- a slow answer: 5 s; the attempt gives up after 0.2 s
      emu:faults({ { delay = 5 } })
      local out, err, status = opentact("list --json " .. conns[1] .. " --timeout 0.2 --retries 0", token_env())
      assert.equals(1, status, out .. err)
      assert.equals("timeout", cjson.decode(out).error.kind)
      assert.equals(1, emu:stats().requests)
    end)

    it("--deadline S ends a request, its retries and waits included, and says so", function()
      -- every attempt answers 503 asking for 5 s: not waited for
      emu:faults({ { status = 503, retry_after = "5" }, { status = 503, retry_after = "5" } })
      local t0 = require("socket").gettime()
      local out, err, status = opentact("list --json " .. conns[1] .. " --deadline 0.5 --retries 2", token_env())
      assert.equals(1, status, out .. err)
      local e = cjson.decode(out).error
      assert.equals(503, e.status)
      assert.matches("the deadline of 0.5 s was reached", e.message, 1, true)
      assert.equals(1, emu:stats().requests)
      assert.is_true(require("socket").gettime() - t0 < 3)
    end)

    local bad = {
      { "--deadline 0", "--deadline must be a number of seconds from 0.001 to 2147483" },
      { "--deadline soon", "--deadline must be" },
      { "--timeout 0", "--timeout must be a number of seconds from 0.001 to 2147483" },
      { "--timeout -1", "--timeout must be" },
      { "--timeout soon", "--timeout must be" },
      { "--timeout 1e400", "--timeout must be" },
      { "--timeout 2147484", "--timeout must be" },
      { "--timeout", "--timeout needs a value" },
      { "--retries -1", "--retries must be a whole number from 0 to 100" },
      { "--retries 1.5", "--retries must be" },
      { "--retries 101", "--retries must be" },
      { "--retries many", "--retries must be" },
      { "--verbose=yes", "--verbose takes no value" },
    }
    for _, c in ipairs(bad) do
      it(("exits 2 for '%s', with nothing sent"):format(c[1]), function()
        for _, command in ipairs({ "list " .. conns[1], "token", "find 12125550001" }) do
          local out, err, status = opentact(command .. " " .. c[1], token_env())
          assert.equals(2, status, out .. err)
          assert.is_truthy(err:find("opentact: " .. c[2], 1, true), err)
        end
        assert.equals(0, emu:stats().requests)
      end)
    end
  end)

  describe("logout", function()
    it("removes the saved token and says so; says when there was none; exits 0 both times", function()
      local out, err, status = opentact("login --email " .. EMAIL, login_env())
      assert.equals(0, status, out .. err)
      assert.is_truthy(saved())
      local before = emu:stats().requests
      out, err, status = opentact("logout")
      assert.equals(0, status, out .. err)
      assert.equals(("Removed the token saved for the default profile, for %s (%s).\n"):format(emu.url,
        token_path()), out)
      assert.is_nil(support.slurp(token_path()))
      -- commands have no token now
      out, err, status = opentact("list " .. conns[1])
      assert.equals(2, status, out .. err)
      assert.is_truthy(err:find("run 'opentact login'", 1, true), err)
      out, err, status = opentact("logout")
      assert.equals(0, status, out .. err)
      assert.equals(("No token is saved for the default profile (%s): nothing to remove.\n"):format(token_path()), out)
      -- no request: logging out is local
      assert.equals(before, emu:stats().requests)
    end)

    it("says that OPENTACT_TOKEN still applies, and never shows it", function()
      local out, err, status = opentact("logout", token_env())
      assert.equals(0, status, out .. err)
      assert.is_truthy(out:find("OPENTACT_TOKEN is set: commands still use it.", 1, true), out)
      assert.is_falsy((out .. err):find(emu.token, 1, true))
    end)

    it("exits 1, saying why, when the file cannot be removed", function()
      -- in the token's place, a folder that is not empty: not even root removes it
      os.execute("mkdir -p " .. quote(token_path() .. "/inside"))
      local out, err, status = opentact("logout")
      assert.equals(1, status, out .. err)
      assert.matches("^opentact: cannot remove " .. escape(token_path()) .. ": ", err)
      assert.is_falsy(crashed(err), err)
      assert.equals("", out)
      assert.equals("inside\n", support.sh("ls -A " .. quote(token_path())))
    end)
  end)

  describe("whoami", function()
    it("says where an OPENTACT_TOKEN comes from, and that an opaque token names no account or expiry", function()
      local out, err, status = opentact("whoami", token_env())
      assert.equals(0, status, out .. err)
      assert.equals(table.concat({
        ("URL:          %s (OPENTACT_URL)"):format(emu.url),
        "Profile:      default",
        "Account:      unknown (the token does not name it)",
        "Token from:   OPENTACT_TOKEN",
        "Valid until:  unknown (the token does not say)", "" }, "\n"), out)
      assert.is_falsy((out .. err):find(emu.token, 1, true))
      -- as JSON, what is not known is null
      out, err, status = opentact("whoami --json", token_env())
      assert.equals(0, status, out .. err)
      assert.same({ ok = true, url = emu.url, url_from = "OPENTACT_URL", profile = "default", account = cjson.null,
        token_from = "OPENTACT_TOKEN", token_file = cjson.null, expires = cjson.null, expires_at = cjson.null },
        cjson.decode(out))
      assert.is_falsy(out:find(emu.token, 1, true))
      assert.equals(0, emu:stats().requests)
    end)

    it("names the account and expiry of the saved JWT, and its file, as text and JSON; never the token", function()
      local out, err, status = opentact("login --email " .. EMAIL, login_env())
      assert.equals(0, status, out .. err)
      local _, jwt = saved()
      local exp = core.jwt_claims(jwt)
      local until_text = os.date("!%Y-%m-%d %H:%M:%SZ", math.floor(exp))
      out, err, status = opentact("whoami")
      assert.equals(0, status, out .. err)
      assert.is_truthy(out:find("\nAccount:      " .. EMAIL .. "\n", 1, true), out)
      assert.is_truthy(out:find(("\nToken from:   the file %s, saved by 'opentact login'\n"):format(token_path()), 1,
        true), out)
      assert.is_truthy(out:find("\nValid until:  " .. until_text .. "\n", 1, true), out)
      assert.is_falsy((out .. err):find(jwt, 1, true))
      out, err, status = opentact("whoami --json")
      assert.equals(0, status, out .. err)
      local got = cjson.decode(out)
      assert.same({ ok = true, url = emu.url, url_from = "OPENTACT_URL", profile = "default", account = EMAIL,
        token_from = "file", token_file = token_path(), expires = exp, expires_at = until_text }, got)
      assert.is_falsy(out:find(jwt, 1, true))
      -- csv: the same fields as columns
      out, err, status = opentact("whoami --format csv")
      assert.equals(0, status, out .. err)
      assert.equals("url,url_from,profile,account,token_from,token_file,expires,expires_at\n", out:match("^[^\n]*\n"))
      -- no request was needed for any of it (the login's aside)
      assert.equals(1, emu:stats().requests)
    end)

    it("names the email of OPENTACT_EMAIL, without logging in", function()
      local out, err, status = opentact("whoami --json", "OPENTACT_EMAIL=" .. EMAIL .. " " .. login_env())
      assert.equals(0, status, out .. err)
      local got = cjson.decode(out)
      assert.equals(EMAIL, got.account)
      assert.equals("login", got.token_from)
      assert.is_falsy(out:find(PASSWORD, 1, true))
      assert.equals(0, emu:stats().requests)
    end)

    it("exits 1 for a saved token that expired, 2 without credentials, and says why", function()
      local out, err, status = opentact("login --email " .. EMAIL, login_env())
      assert.equals(0, status, out .. err)
      -- in its place, a token that expired an hour ago
      local url = saved()
      local b64 = (core.base64(('{"email":"%s","exp":%d}'):format(EMAIL, math.floor(core.time()) - 3600))
        :gsub("=+$", ""):gsub("[+/]", { ["+"] = "-", ["/"] = "_" }))
      local f = assert(io.open(token_path(), "wb"))
      f:write(url, "\n", "eyJhbGciOiJIUzI1NiJ9." .. b64 .. ".sig", "\n")
      f:close()
      out, err, status = opentact("whoami")
      assert.equals(1, status, out .. err)
      assert.matches("\nValid until:  [%d%- :]+Z %(expired%)\n", out)
      assert.matches("^opentact: auth: the token saved by 'opentact login' expired at ", err)
      os.remove(token_path())
      out, err, status = opentact("whoami --json")
      assert.equals(2, status, out .. err)
      local got = cjson.decode(out)
      assert.is_false(got.ok)
      assert.equals("usage", got.error.kind)
      assert.matches("set OPENTACT_TOKEN", err)
    end)
  end)

  describe("--profile and OPENTACT_PROFILE", function()
    it("keep one token and URL per profile; the default profile keeps its file", function()
      -- the default profile: another account's token, for a URL of its own
      os.execute("mkdir -p " .. quote(home .. "/opentact"))
      local f = assert(io.open(token_path(), "wb"))
      f:write("http://127.0.0.1:9\nother-token\n")
      f:close()
      local out, err, status = opentact("login --profile staging --email " .. EMAIL, login_env())
      assert.equals(0, status, out .. err)
      local url, jwt = saved("staging")
      assert.equals(emu.url, url)
      assert.is_truthy(out:find(token_path("staging"), 1, true), out)
      assert.equals("http://127.0.0.1:9\nother-token\n", support.slurp(token_path()))
      -- a command of the profile uses its token and, with no URL given, its URL
      out, err, status = opentact("list --profile staging " .. conns[1], "OPENTACT_URL=")
      assert.equals(0, status, out .. err)
      assert.is_truthy(out:find("^3 leases\n"), out)
      out, err, status = opentact("whoami --json", "OPENTACT_URL= OPENTACT_PROFILE=staging")
      assert.equals(0, status, out .. err)
      local got = cjson.decode(out)
      assert.equals("staging", got.profile)
      assert.equals(emu.url, got.url)
      assert.equals("profile", got.url_from)
      assert.equals(token_path("staging"), got.token_file)
      assert.is_falsy(out:find(jwt, 1, true))
      -- every request of the profile carried its token
      for _, r in ipairs(emu:requests()) do
        if r.path ~= "/auth" then assert.equals("valid", r.token) end
      end
      -- the default profile is untouched by the profile's logout
      out, err, status = opentact("logout", "OPENTACT_PROFILE=staging")
      assert.equals(0, status, out .. err)
      assert.is_truthy(out:find("Removed the token saved for profile staging", 1, true), out)
      assert.is_nil(support.slurp(token_path("staging")))
      assert.equals("http://127.0.0.1:9\nother-token\n", support.slurp(token_path()))
      -- "default" names the default profile
      out, err, status = opentact("whoami --profile default --json", "OPENTACT_URL=http://127.0.0.1:9")
      assert.equals(0, status, out .. err)
      assert.equals(token_path(), cjson.decode(out).token_file)
    end)

    it("send the environment's token to the URL given, never to the profile's", function()
      local out, err, status = opentact("login --profile staging --email " .. EMAIL, login_env())
      assert.equals(0, status, out .. err)
      -- OPENTACT_TOKEN wins over the profile's file, and goes to the default URL
      out, err, status = opentact("whoami --profile staging --json", "OPENTACT_URL= " .. token_env())
      assert.equals(0, status, out .. err)
      local got = cjson.decode(out)
      assert.equals("OPENTACT_TOKEN", got.token_from)
      assert.equals("default", got.url_from)
      assert.equals("https://api.opentact.org/rest", got.url)
    end)

    local bad = { "a/b", "..", "x y", "", ("p"):rep(65), "caf\195\169" }
    for _, name in ipairs(bad) do
      it(("refuse the profile name %q (exit 2), making and reading no file"):format(name), function()
        for _, how in ipairs({ { "--profile " .. quote(name), "", "--profile" },
          { "", "OPENTACT_PROFILE=" .. quote(name), "OPENTACT_PROFILE" } }) do
          if not (how[3] == "OPENTACT_PROFILE" and name == "") then -- an empty variable is no profile
            local out, err, status = opentact("login --email " .. EMAIL .. " " .. how[1], login_env() .. " " .. how[2])
            assert.equals(2, status, out .. err)
            assert.is_truthy(err:find("opentact: " .. how[3] .. " must be a profile name: letters, digits, - and _, "
              .. "at most 64", 1, true), err)
            assert.is_falsy(crashed(err), err)
          end
        end
        assert.equals(0, emu:stats().requests)
        assert.equals("", support.sh("ls -A " .. quote(home)))
      end)
    end
  end)

  describe("--country-code and OPENTACT_COUNTRY_CODE", function()
    it("put the code in front of numbers of at most ten digits without +, in find's argument", function()
      local out, err, status = opentact("find 212 555 0007 --country-code 1", token_env())
      assert.equals(0, status, out .. err)
      assert.is_truthy(out:find("12125550007", 1, true), out)
      out, err, status = opentact("find '(212) 555-0007' --json", token_env() .. " OPENTACT_COUNTRY_CODE=+1")
      assert.equals(0, status, out .. err)
      assert.equals(leases[7], cjson.decode(out)[1].uuid)
      -- without it, the miss says what may be wrong
      out, err, status = opentact("find 2125550007", token_env())
      assert.equals(1, status, out .. err)
      assert.is_truthy(out:find("written without a country code: give it with --country-code", 1, true), out)
      -- a number with + or of eleven digits is taken as written
      out, err, status = opentact("find 12125550007 --country-code 44", token_env())
      assert.equals(0, status, out .. err)
      out, err, status = opentact("find +1 212 555 0007 --country-code 44", token_env())
      assert.equals(0, status, out .. err)
    end)

    it("apply to assign's arguments and files", function()
      local file = support.tmpfile("number\n(212) 555-0011\n+1 212 555 0012\n12125550013\n")
      finally(function() os.remove(file) end)
      local out, err, status = opentact(("assign %s --add 212 555 0010 --add-file %s --country-code 1"):format(conns[2],
        file), token_env())
      assert.equals(0, status, out .. err)
      assert.same({ leases[10], leases[11], leases[12], leases[13] }, emu:state().assigned[conns[2]])
      -- without it, numbers that all miss get the hint, and nothing is sent
      local before = emu:stats().requests
      out, err, status = opentact(("assign %s --add 2125550014 212-555-0015"):format(conns[3]), token_env())
      assert.equals(1, status, out .. err)
      assert.is_truthy(err:find("\nnone of the 2 numbers is in the account, and some are written without a country "
        .. "code: give it with --country-code", 1, true), err)
      assert.equals(before + 2, emu:stats().requests) -- the two lookups
      assert.same({}, emu:state().assigned[conns[3]] or {})
    end)

    it("apply to sync's file; without them, a sync whose numbers all miss says they may lack it", function()
      local file = support.tmpfile("2125550020\n212-555-0021\n")
      finally(function() os.remove(file) end)
      local out, err, status = opentact(("sync %s --numbers-file %s"):format(conns[2], file), token_env())
      assert.equals(1, status, out .. err)
      assert.is_truthy(out:find("\nNone of the 2 numbers is in the account, and some are written without a country "
        .. "code: give it with --country-code", 1, true), out)
      assert.same({}, emu:state().assigned[conns[2]] or {})
      -- as JSON, the hint is a field
      out, err, status = opentact(("sync %s --numbers-file %s --json --dry-run"):format(conns[2], file), token_env())
      assert.equals(1, status, out .. err)
      assert.matches("^none of the 2 numbers", cjson.decode(out).hint)
      -- with --exact, the refusal says it too
      out, err, status = opentact(("sync %s --numbers-file %s --exact"):format(conns[1], file), token_env())
      assert.equals(2, status, out .. err)
      assert.is_truthy(err:find("opentact: none of the 2 numbers is in the account", 1, true), err)
      assert.equals(3, #emu:state().assigned[conns[1]])
      out, err, status = opentact(("sync %s --numbers-file %s"):format(conns[2], file),
        token_env() .. " OPENTACT_COUNTRY_CODE=1")
      assert.equals(0, status, out .. err)
      assert.same({ leases[20], leases[21] }, emu:state().assigned[conns[2]])
      assert.is_falsy(out:find("country code", 1, true), out)
    end)

    it("give no hint when some numbers are found, or all were written with +", function()
      local file = support.tmpfile("+1 999 555 0020\n+1 999 555 0021\n")
      local mixed = support.tmpfile("2125550022\n12125550023\n")
      finally(function() os.remove(file) os.remove(mixed) end)
      for _, f in ipairs({ file, mixed }) do
        local out, err, status = opentact(("sync %s --numbers-file %s --dry-run"):format(conns[2], f), token_env())
        assert.equals(1, status, out .. err)
        assert.is_falsy((out .. err):find("--country-code", 1, true), out .. err)
      end
    end)

    for _, v in ipairs({ "0", "1234", "+", "one", "1 2", "01" }) do
      it(("refuse the country code %q (exit 2), with nothing sent"):format(v), function()
        local out, err, status = opentact("find 2125550007 --country-code " .. quote(v), token_env())
        assert.equals(2, status, out .. err)
        assert.is_truthy(err:find("opentact: --country-code must be a country calling code", 1, true), err)
        out, err, status = opentact("find 2125550007", token_env() .. " OPENTACT_COUNTRY_CODE=" .. quote(v))
        assert.equals(2, status, out .. err)
        assert.is_truthy(err:find("opentact: OPENTACT_COUNTRY_CODE must be a country calling code", 1, true), err)
        assert.equals(0, emu:stats().requests)
      end)
    end
  end)
end)

describe("core.jwt_claims's account #c", function()
  -- A JWT whose claims are `claims_json` as written, unsigned.
  local function jwt(claims_json)
    local function b64url(s) return (core.base64(s):gsub("=+$", ""):gsub("[+/]", { ["+"] = "-", ["/"] = "_" })) end
    return b64url('{"alg":"HS256","typ":"JWT"}') .. "." .. b64url(claims_json) .. "." .. b64url("not a signature")
  end

  it("is the first of email, user and sub that is a string of 1 to 320 bytes, else nil", function()
    local cases = {
      { '{"email":"a@example.com","user":"u","sub":"s","exp":5}', "a@example.com" },
      { '{"user":"ops","sub":"s"}', "ops" },
      { '{"sub":"4b0c"}', "4b0c" },
      { '{"email":"","user":7,"sub":"s"}', "s" },
      { '{"email":"' .. ("x"):rep(321) .. '","sub":"s"}', "s" },
      { '{"email":"' .. ("x"):rep(320) .. '"}', ("x"):rep(320) },
      { '{"email":null,"user":{},"sub":[]}', nil },
      { '{"exp":5}', nil },
    }
    for _, c in ipairs(cases) do
      local _, _, account = core.jwt_claims(jwt(c[1]))
      assert.equals(c[2], account, c[1])
    end
    assert.is_nil(select(3, core.jwt_claims("an opaque token")))
    assert.equals(3, select("#", core.jwt_claims("an opaque token")))
  end)
end)
