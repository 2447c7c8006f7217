-- Every ```lua and ```sh block of README.md runs as written against the
-- emulator, unless the line just above its fence is a marker that says why
-- not:
--
--   <!-- not run: REASON -->
--
-- (for a block that installs, starts servers, needs a real Opentact account,
-- or shows the shape of a value rather than code). How a block runs, the
-- way the Quickstart sets a user up:
--
--   - the emulator is this spec's own, on a free port, reset before each
--     block; OPENTACT_URL and OPENTACT_TOKEN name it (the Quickstart's
--     export line), and nothing else of the user's set-up is inherited;
--   - sh blocks run with `bash -e` (every command must succeed), with the
--     rock's bin/ first on PATH (the Quickstart's export line), in a scratch
--     folder that looks like the checkout (a symbolic link to each of its
--     entries) and holds the files the README's commands name: leases.csv
--     (lease uuids) and numbers.txt (phone numbers);
--   - lua blocks run with the spec's Lua, the rock on the module paths that
--     `luarocks path` gives, as "Installing" says.
--
-- The rock is the one `make install` put in .rocks/ for the spec's Lua
-- (blocks that name .rocks/lua5.4 use that one).
local support = require("emulator")

local sh, run = support.sh, support.run
local ROOT = support.ROOT
local SPEC_LUA = os.getenv("OPENTACT_SPEC_LUA") or "lua5.4"
local ABI = SPEC_LUA == "luajit" and "5.1" or SPEC_LUA:sub(4)
local TREE = ROOT .. "/.rocks/" .. SPEC_LUA

local CLEAN = "env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_2 -u LUA_CPATH_5_2 -u LUA_PATH_5_3 -u LUA_CPATH_5_3 "
  .. "-u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u LUA_INIT -u OPENTACT_EMAIL -u OPENTACT_PASSWORD "
  .. "-u OPENTACT_URL -u OPENTACT_TOKEN XDG_CONFIG_HOME=/nonexistent"

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- The README's fenced blocks: { line = N, lang = "lua", code = "...",
-- skip = REASON or nil }, and the markers that precede no block.
local function blocks(text)
  local lines = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local out, stray, i = {}, {}, 1
  while i <= #lines do
    local indent, lang = lines[i]:match("^(%s*)```(%S*)%s*$")
    if indent then
      local reason = i > 1 and lines[i - 1]:match("^%s*<!%-%- not run:%s*(.-)%s*%-%->%s*$")
      local code, j = {}, i + 1
      while j <= #lines and not lines[j]:match("^%s*```%s*$") do
        code[#code + 1] = lines[j]:sub(1, #indent) == indent and lines[j]:sub(#indent + 1) or lines[j]
        j = j + 1
      end
      out[#out + 1] = { line = i, lang = lang, code = table.concat(code, "\n") .. "\n", skip = reason }
      i = j + 1
    else
      if lines[i]:find("<!-- not run", 1, true) and not (lines[i + 1] or ""):match("^%s*```") then
        stray[#stray + 1] = i
      end
      i = i + 1
    end
  end
  return out, stray
end

local f = assert(io.open(ROOT .. "/README.md"))
local README = f:read("*a")
f:close()
local BLOCKS, STRAY = blocks(README)

describe("README.md", function()
  it("marks each block it does not run with a reason, right above the fence", function()
    assert.same({}, STRAY)
    local runnable, skipped = 0, 0
    for _, b in ipairs(BLOCKS) do
      if b.lang == "lua" or b.lang == "sh" then
        if b.skip then
          skipped = skipped + 1
          assert.is_truthy(#b.skip >= 10, "README line " .. b.line .. ": say why it is not run")
        else
          runnable = runnable + 1
        end
      end
    end
    assert.is_true(runnable >= 12, "runnable blocks: " .. runnable)
    assert.is_true(skipped <= 8, "blocks not run: " .. skipped)
  end)
end)

describe("README.md's blocks #wire", function()
  local emu, scratch, lua_env

  setup(function()
    emu = support.start()
    scratch = sh("mktemp -d"):gsub("%s+$", "")
    -- LUA_PATH and LUA_CPATH as `luarocks path` gives them for the rock
    lua_env = sh(("%s luarocks --lua-version %s --tree %s path --no-bin"):format(CLEAN, ABI, quote(TREE)))
    assert(lua_env:find("LUA_CPATH", 1, true), lua_env)
  end)
  teardown(function()
    if emu then emu:stop() end
    if scratch then os.execute("rm -rf " .. quote(scratch)) end
  end)

  -- A fresh folder that looks like the checkout, with the files the
  -- commands name.
  local function folder(n)
    local dir = scratch .. "/" .. n
    local out, status = run(("mkdir -p %s && cd %s && ln -s %s/* %s/.rocks .")
      :format(quote(dir), quote(dir), quote(ROOT), quote(ROOT)))
    assert(status == 0, out)
    local st = emu:state()
    write(dir .. "/leases.csv", st.leases[5] .. "\n" .. st.leases[6] .. "\n")
    write(dir .. "/numbers.txt", "+1 212 555 0004\n+1 212 555 0005\n")
    return dir
  end

  local function env()
    return ("%s OPENTACT_URL=%s OPENTACT_TOKEN=%s PATH=%s:$PATH"):format(CLEAN, emu.url, emu.token,
      quote(TREE .. "/bin"))
  end

  it("shows the emulator's output as the emulator prints it", function()
    local shown
    for _, b in ipairs(BLOCKS) do
      if b.lang == "text" and b.code:find("^listening on ") then shown = b.code end
    end
    assert.is_truthy(shown, "the Quickstart shows what the emulator prints")
    local printed = select(1, support.sh("cat " .. emu.log))
    local port = emu.url:match(":(%d+)$")
    for line in shown:gmatch("([^\n]+)") do
      local want = line:gsub("127%.0%.0%.1:18080", "127.0.0.1:" .. port)
      assert.is_truthy(printed:find(want, 1, true), want .. "\nnot in:\n" .. printed)
    end
  end)

  for n, b in ipairs(BLOCKS) do
    if (b.lang == "lua" or b.lang == "sh") and not b.skip then
      local title = ("runs the %s block at line %d: %s"):format(b.lang, b.line, b.code:match("^%s*([^\n]*)"))
      it(title, function()
        if b.code:find("lua5.4", 1, true) and not io.open(ROOT .. "/.rocks/lua5.4/bin/opentact") then
          pending("needs the rock for Lua 5.4 in .rocks/lua5.4 (make install)")
          return
        end
        emu:reset()
        local dir = folder(n)
        local file = dir .. "/block." .. b.lang
        write(file, b.code)
        local cmd
        if b.lang == "sh" then
          cmd = ("cd %s && %s timeout 60 bash -e %s"):format(quote(dir), env(), quote(file))
        else
          cmd = ("cd %s && %s sh -c %s"):format(quote(dir), env(),
            quote(lua_env .. "\ntimeout 60 " .. support.LUA .. " " .. quote(file)))
        end
        local out, status = run(cmd)
        assert.equals(0, status, ("README line %d:\n%s\n-- output:\n%s"):format(b.line, b.code, out))
        assert.is_falsy(out:find("table: 0x", 1, true), out)
        assert.is_falsy(out:find("undefined symbol", 1, true), out)
      end)
    end
  end
end)
