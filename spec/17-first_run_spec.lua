-- A first run, the way a user makes one: the rock installed with LuaRocks
-- from a copy of the checkout into a fresh tree (on 5.4; see FRESH), then
-- its commands run from another folder with no LUA_PATH or LUA_CPATH, a
-- wrong `lua` first on PATH, and through symbolic links; the emulator of that tree printing its
-- seed; `require` from the wrong Lua; and the REPL.
local support = require("emulator")

local sh, run = support.sh, support.run
local SPEC_LUA = os.getenv("OPENTACT_SPEC_LUA") or "lua5.4"
local ABI = SPEC_LUA == "luajit" and "5.1" or SPEC_LUA:sub(4)
-- the interpreter the REPL runs on (under `make sanitize`, with its runtime)
local LUA = support.LUA

-- Another Lua than the spec's, and what the spec's build says it was built for.
local OTHER = ({ ["5.4"] = "lua5.3" })[ABI] or "lua5.4"
local OTHER_NAME = OTHER == "lua5.4" and "Lua 5.4" or "Lua 5.3"
local BUILT_FOR = ({ ["5.4"] = "Lua 5.4", ["5.3"] = "Lua 5.3", ["5.2"] = "Lua 5.2" })[ABI] or "Lua 5.1 (or LuaJIT)"

-- Whether the rock is installed anew from the copy, as the README says, or
-- the copy sees the tree `make install` made. LuaRocks builds the same way
-- for every Lua and `make test` has just installed each one from its
-- checkout: the fresh install runs on 5.4 only (a build of the C core
-- costs more than the rest of this file).
local FRESH = SPEC_LUA == "lua5.4"

-- The environment of a user who set nothing up: no module paths, no
-- credentials or kept token of the machine's user.
local CLEAN = "env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_2 -u LUA_CPATH_5_2 -u LUA_PATH_5_3 -u LUA_CPATH_5_3 "
  .. "-u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u LUA_INIT -u OPENTACT_EMAIL -u OPENTACT_PASSWORD "
  .. "-u OPENTACT_URL -u OPENTACT_TOKEN XDG_CONFIG_HOME=/nonexistent"

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function read(path) return support.slurp(path) or "" end

local function write(path, text, mode)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  if mode then os.execute("chmod " .. mode .. " " .. quote(path)) end
end

local function escape(s) return (s:gsub("%p", "%%%0")) end

describe("a first run #wire", function()
  local dir, checkout, tree, emu_url, emu_pid, emu_log, seed, fake

  -- `cmd` in the shell from folder `cwd` (default /), with a clean environment
  -- plus `env` (a string of NAME=value words) and a wrong `lua` first on PATH.
  local function user(cmd, env, cwd)
    return run(("cd %s && %s PATH=%s:$PATH %s sh -c %s"):format(quote(cwd or "/"), CLEAN, quote(fake), env or "",
      quote(cmd)))
  end

  local function with_emulator() return ("OPENTACT_URL=%s OPENTACT_TOKEN=emulator-token"):format(emu_url) end

  setup(function()
    dir = sh("mktemp -d"):gsub("%s+$", "")
    checkout, tree = dir .. "/checkout", dir .. "/checkout/.rocks/" .. SPEC_LUA
    -- a copy of the checkout, without its builds
    local out, status = run(("mkdir -p %s && tar -C %s --exclude=./.git --exclude=./.rocks --exclude=./build "
      .. "--exclude='*.o' --exclude=./opentact -cf - . | tar -C %s -xf -")
      :format(quote(checkout), quote(support.ROOT), quote(checkout)))
    assert(status == 0, out)
    if FRESH then
      local rockspec = sh(("cd %s && ls opentact-*.rockspec"):format(quote(checkout))):gsub("%s+$", "")
      -- installed the way the README says, into the tree `make install` would make
      out, status = run(("cd %s && %s luarocks --lua-version %s --tree %s make --deps-mode=none %s %s")
        :format(quote(checkout), CLEAN, ABI, quote(tree), rockspec,
          SPEC_LUA == "luajit" and "LUA_INCDIR=/usr/include/luajit-2.1" or ""))
    else
      -- the tree `make install` made in the checkout, seen from the copy
      out, status = run(("mkdir -p %s/.rocks && ln -s %s %s"):format(quote(checkout),
        quote(support.ROOT .. "/.rocks/" .. SPEC_LUA), quote(tree)))
    end
    assert(status == 0, out)
    -- a `lua` that is not the one the rock was built for
    fake = dir .. "/fake"
    os.execute("mkdir -p " .. quote(fake))
    write(fake .. "/lua", "#!/bin/sh\necho 'the lua on PATH ran' >&2\nexit 99\n", "755")
    -- the tree's emulator, started from another folder, through PATH
    local port = support.free_port()
    emu_url = "http://127.0.0.1:" .. port
    emu_log = dir .. "/emulator.log"
    emu_pid = tonumber(sh(("cd / && %s PATH=%s:$PATH opentact-emulator --port %d > %s 2>&1 & echo $!")
      :format(CLEAN, quote(tree .. "/bin"), port, quote(emu_log))):match("%d+"))
    for _ = 1, 200 do
      if read(emu_log):find("Every uuid", 1, true) then break end
      if support.gone(emu_pid) then break end
      os.execute("sleep 0.05")
    end
    seed = read(emu_log)
    assert(seed:find("listening on " .. emu_url, 1, true), seed)
  end)

  teardown(function()
    if emu_pid then
      os.execute("kill -TERM " .. emu_pid .. " 2>/dev/null")
      support.wait_gone(emu_pid, 5)
    end
    if dir then os.execute("rm -rf " .. quote(dir)) end
  end)

  before_each(function() support.http_json("POST", emu_url .. "/__emulator/reset") end)

  describe("the installed commands", function()
    it("run from any folder, with the Lua they were built for and no LUA_PATH", function()
      local out, status = user(quote(tree .. "/bin/opentact") .. " --version")
      assert.equals(0, status, out)
      assert.is_truthy(out:find("^opentact %d+%.%d+%.%d+\n"), out)
      -- module paths that lead nowhere change nothing: the tree's own come first
      out, status = user(quote(tree .. "/bin/opentact") .. " list 27f03b34-9917-45ec-8389-09092bb12756",
        with_emulator() .. " LUA_PATH='/nonexistent/?.lua' LUA_CPATH='/nonexistent/?.so'", dir)
      assert.equals(0, status, out)
      assert.is_truthy(out:find("^3 leases\n"), out)
      assert.is_falsy(out:find("the lua on PATH ran", 1, true), out)
    end)

    it("run through PATH and through symbolic links", function()
      local out, status = user("opentact list 27f03b34-9917-45ec-8389-09092bb12756",
        with_emulator() .. " PATH=" .. quote(tree .. "/bin") .. ":$PATH")
      assert.equals(0, status, out)
      assert.is_truthy(out:find("^3 leases\n"), out)
      local links = dir .. "/links"
      os.execute(("mkdir -p %s && ln -sf %s %s/ && ln -sf %s %s/"):format(quote(links),
        quote(tree .. "/bin/opentact"), quote(links), quote(tree .. "/bin/opentact-emulator"), quote(links)))
      out, status = user(quote(links .. "/opentact") .. " --version")
      assert.equals(0, status, out)
      out, status = user(quote(links .. "/opentact-emulator") .. " --port 1 --leases x")
      assert.equals(2, status, out) -- found its code, then refused the arguments
      assert.is_truthy(out:find("--leases must be a whole number", 1, true), out)
    end)

    it("are what `make install` tells how to put on PATH", function()
      local out = sh(("make --no-print-directory -n -C %s install-%s 2>&1"):format(quote(support.ROOT), SPEC_LUA))
      local t = support.ROOT .. "/.rocks/" .. SPEC_LUA
      assert.is_truthy(out:find('export PATH=\\"' .. t .. '/bin:\\$PATH\\"', 1, true), out)
      assert.is_truthy(out:find("--tree " .. t .. " path", 1, true), out)
    end)
  end)

  describe("bin/opentact in a checkout", function()
    it("runs with the Lua of a build in .rocks/, whatever `lua` is", function()
      local out, status = user(quote(checkout .. "/bin/opentact") .. " list 27f03b34-9917-45ec-8389-09092bb12756",
        with_emulator())
      assert.equals(0, status, out)
      assert.is_truthy(out:find("^3 leases\n"), out)
      out, status = user("bin/opentact --version", nil, checkout)
      assert.equals(0, status, out)
    end)

    it("says which `make install` to run when there is no build for its Lua", function()
      local out, status = user(OTHER .. " " .. quote(checkout .. "/bin/opentact") .. " --version")
      assert.equals(1, status, out)
      assert.is_truthy(out:find(("not built for %s in %s/.rocks: run `make install LUA=%s` there")
        :format(OTHER_NAME, checkout, OTHER), 1, true), out)
      local bare = dir .. "/bare"
      os.execute(("mkdir -p %s && cp -a %s %s %s/"):format(quote(bare), quote(checkout .. "/bin"),
        quote(checkout .. "/lua"), quote(bare)))
      out, status = user(quote(bare .. "/bin/opentact") .. " --version")
      assert.equals(1, status, out)
      assert.is_truthy(out:find("lua-opentact is not built in " .. bare .. "/.rocks: run `make install` there", 1, true),
        out)
    end)
  end)

  describe("the installed emulator", function()
    it("prints the variables to export and its seed: connections, leases and their numbers", function()
      local st = select(2, support.http_json("GET", emu_url .. "/__emulator/state"))
      assert.is_truthy(seed:find("\nexport OPENTACT_URL=" .. escape(emu_url) .. " OPENTACT_TOKEN=emulator%-token\n"),
        seed)
      assert.is_truthy(seed:find("SIP connections (4):", 1, true), seed)
      for i = 1, 4 do
        assert.is_truthy(seed:find("\n  " .. escape(st.connections[i]) .. "  sip%-trunk%-" .. i), seed)
      end
      assert.is_truthy(seed:find(st.connections[1] .. "  sip-trunk-1, holds leases 1 to 3", 1, true), seed)
      for i = 1, 6 do
        assert.is_truthy(seed:find(("\n +%d  %s  %.0f"):format(i, escape(st.leases[i]), 12125550000 + i)), seed)
      end
      assert.is_truthy(seed:find(st.leases[1] .. "  12125550001  on sip-trunk-1", 1, true), seed)
      assert.is_truthy(seed:find("... and 94 more, lease 100 holds 12125550100", 1, true), seed)
    end)

    it("prints uuids that work as they are", function()
      local conn = seed:match("\n  (%x+%-[%x%-]+)  sip%-trunk%-1")
      local lease4 = seed:match("\n +4  (%x+%-[%x%-]+)  12125550004")
      local export = seed:match("\nexport ([^\n]+)")
      local out, status = user(("%s/opentact assign %s --add %s && %s/opentact list %s")
        :format(quote(tree .. "/bin"), conn, lease4, quote(tree .. "/bin"), conn), export)
      assert.equals(0, status, out)
      assert.is_truthy(out:find("4 leases\n", 1, true), out)
      assert.is_truthy(out:find(escape(lease4) .. "%s+12125550004"), out)
    end)
  end)

  describe("require from the wrong Lua", function()
    it("says which Lua the build is for and how to build it for the one running", function()
      local out, status = user(("%s -e 'require(\"opentact\")'"):format(OTHER), ("LUA_PATH=%s LUA_CPATH=%s")
        :format(quote(tree .. "/share/lua/" .. ABI .. "/?.lua;;"), quote(tree .. "/lib/lua/" .. ABI .. "/?.so;;")))
      assert.is_not.equals(0, status, out)
      local want = ("opentact: %s/lib/lua/%s/opentact/core.so was built for %s, and this is %s. "
        .. "Build lua-opentact for %s (`luarocks --lua-version %s make` in its checkout, or `make install LUA=%s` "
        .. "there) and put that build on package.cpath."):format(tree, ABI, BUILT_FOR, OTHER_NAME, OTHER_NAME,
        OTHER:sub(4), OTHER)
      assert.is_truthy(out:find(want, 1, true), out)
      assert.is_falsy(out:find("undefined symbol", 1, true), out)
    end)
  end)

  describe("the REPL", function()
    -- The tree on the module paths the way the README says (`luarocks path`),
    -- then `LUA -i` reading `lines` (`=expr` prints on every Lua), with no
    -- prompt. Returns what each line printed: the output between the marker
    -- printed before it and the next, without the input lines some REPLs echo.
    local function repl(lines)
      local input, echoed = {}, {}
      for i, line in ipairs(lines) do
        input[#input + 1] = ("=%q"):format("@@" .. i)
        input[#input + 1] = line
      end
      for _, line in ipairs(input) do echoed[line] = true end
      local file = dir .. "/repl.txt"
      write(file, table.concat(input, "\n") .. "\n")
      local out, status = run(("cd %s && %s %s sh -c %s < %s"):format(quote(dir), CLEAN, with_emulator(),
        quote(("eval \"$(luarocks --lua-version %s --tree %s path --no-bin)\" && %s -e \"_PROMPT=''\" -i")
          :format(ABI, quote(tree), LUA)), quote(file)))
      assert.equals(0, status, out)
      local shown, current = {}, nil
      for line in out:gmatch("([^\n]*)\n") do
        local k = tonumber(line:match("^@@(%d+)$"))
        if k then
          current, shown[k] = k, {}
        elseif current and not echoed[line] then
          shown[current][#shown[current] + 1] = line
        end
      end
      for i = 1, #lines do shown[i] = table.concat(assert(shown[i], out), "\n"):gsub("\n+$", "") end
      return shown, out
    end

    it("prints leases, a lease, clients, reports, pages and errors readably, and one value on success", function()
      local conn, other = "27f03b34-9917-45ec-8389-09092bb12756", "d2861fa0-9fb6-4ff1-b146-a22fbe3a0367"
      local lease4 = "97905dc4-0c6f-4ac8-bd7b-ffa4ef5b4327"
      local shown, out = repl({
        "opentact = require('opentact')",
        "=opentact",
        "=opentact.list('" .. conn .. "')",
        "=opentact.list('" .. conn .. "')[1]",
        "=opentact.lease('+1 212 555 0001')",
        "=opentact.lease('+1 212 555 0999')",
        "=opentact.search({ tn = '+1 212 555 000%' }, { take = 3 })",
        "=opentact.assign('" .. other .. "', { add = { '" .. lease4 .. "' } })",
        "=opentact.assign_batched('" .. other .. "', { remove = { '" .. lease4 .. "' } })",
        "=opentact.sync('" .. other .. "', { numbers = { 12125550005 } }, { dry_run = true })",
        "=opentact.new():list_many({ '" .. conn .. "', '66eb0a8a-571e-41b1-8f50-4d97275cfab7' })",
        "=opentact",
        "=opentact.list('not-a-uuid')",
        "=opentact.token()",
        "=opentact.search_all({ tn = '+1 212 555 000%' })",
      })
      assert.is_falsy(out:find("table: 0x", 1, true), out)
      assert.is_truthy(shown[2]:find("^opentact %d+%.%d+%.%d+; default client: not made yet %(on first use: "), shown[2])
      assert.is_truthy(shown[3]:find("^3 leases\n  uuid +number +expires +autorenew\n"), shown[3])
      assert.is_truthy(shown[4]:find("^lease af6d1915%-1d62%-4994%-8b60%-962cb69f6c7b: 12125550001, expires %S+, "
        .. "autorenew yes, on SIP connection sip%-trunk%-1 %(" .. escape(conn) .. "%)$"), shown[4])
      assert.equals(shown[4], shown[5])
      assert.is_truthy(shown[6]:find("^nil\topentact: not_found %(404%): TNLease not found for tn 12125550999"), shown[6])
      assert.is_truthy(shown[7]:find("^page: leases 1 to 3 of 9\n3 leases\n"), shown[7])
      assert.is_truthy(shown[8]:find("^1 lease\n"), shown[8])
      assert.equals("ok: 1 applied (0 added, 1 removed), 0 failed", shown[9])
      -- a dry run is a plan: its summary line first
      assert.is_truthy(shown[10]:find("^Plan: 1 to add, 0 to remove, 0 unchanged, 0 conflicts, 0 missing%.\nSIP connection "
        .. escape(other) .. ":\n  %+ 12125550005 "), shown[10])
      assert.is_truthy(shown[10]:find("\nDry run: nothing was changed.\nok$"), shown[10])
      assert.is_truthy(shown[11]:find("^2 connections\n  " .. escape(conn) .. "  3 leases\n  66eb0a8a%-571e%-41b1%-8f50"
        .. "%-4d97275cfab7  opentact: not_found %(404%)"), shown[11])
      assert.is_truthy(shown[12]:find("; default client: opentact.Client (" .. emu_url .. ", curl, token)", 1, true),
        shown[12])
      assert.is_truthy(shown[13]:find("^nil\topentact: invalid: "), shown[13])
      assert.equals("emulator-token", shown[14])
      assert.is_truthy(shown[15]:find("^9 leases\n"), shown[15])
      -- success is one value: no stray nil after any result
      for i = 2, #shown do
        if not shown[i]:find("^nil\t") then assert.is_falsy(shown[i]:find("\tnil"), shown[i]) end
      end
    end)

    it("gets one value from every call that succeeds, module-level and methods", function()
      local script = dir .. "/counts.lua"
      write(script, [[
local opentact = require("opentact")
local client = opentact.new()
local conn, lease = "27f03b34-9917-45ec-8389-09092bb12756", "97905dc4-0c6f-4ac8-bd7b-ffa4ef5b4327"
local function n(...) return select("#", ...) end
local calls = {
  list = function(o) return n(o.list(conn)) end,
  assign = function(o) return n(o.assign(conn, { add = { lease } })) end,
  lease = function(o) return n(o.lease(12125550001)) end,
  search = function(o) return n(o.search({ autorenew = true }, { take = 2 })) end,
  search_all = function(o) return n(o.search_all({ tn = "+1 212 555 000%" })) end,
  sync = function(o) return n(o.sync(conn, { numbers = { 12125550001 } }, { dry_run = true })) end,
  token = function(o) return n(o.token()) end,
  assign_batched = function(o) return n(o.assign_batched(conn, { remove = { lease } })) end,
  list_many = function(o) return n(o.list_many({ conn })) end,
}
local names = {}
for name in pairs(calls) do names[#names + 1] = name end
table.sort(names)
for _, name in ipairs(names) do
  local module = calls[name](opentact)
  local method = calls[name](setmetatable({}, { __index = function(_, k)
    return function(...) return client[k](client, ...) end
  end }))
  print(name, module, method)
end
print(n(opentact.number("+1 212 555 1234")), n(opentact.list("66eb0a8a-571e-41b1-8f50-4d97275cfab7")))
]])
      local out, status = run(("cd %s && %s %s sh -c %s"):format(quote(dir), CLEAN, with_emulator(),
        quote(("eval \"$(luarocks --lua-version %s --tree %s path --no-bin)\" && %s %s")
          :format(ABI, quote(tree), LUA, quote(script)))))
      assert.equals(0, status, out)
      assert.equals("assign\t1\t1\nassign_batched\t1\t1\nlease\t1\t1\nlist\t1\t1\nlist_many\t1\t1\nsearch\t1\t1\n"
        .. "search_all\t1\t1\nsync\t1\t1\ntoken\t1\t1\n1\t2\n", out)
    end)
  end)
end)
