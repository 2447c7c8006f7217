-- The `opentact` command: list a connection's leases, or assign many from
-- the command line or from files, with progress and a report. bin/opentact
-- only calls main(). Exit status: 0 all applied, 1 the API refused or
-- failed anything, 2 usage errors.

local opentact = require("opentact")
local core = require("opentact.core")

local type, tostring, tonumber, ipairs, pairs, pcall = type, tostring, tonumber, ipairs, pairs, pcall
local format, concat, floor = string.format, table.concat, math.floor

local M = {}

local HELP = [[
Usage:
  opentact list CONN [--json] [--url URL]
  opentact assign CONN [--add UUID...] [--remove UUID...]
                       [--add-file FILE] [--remove-file FILE]
                       [--batch-size N] [--concurrency N]
                       [--failed-file FILE] [--skip-invalid] [--json] [--url URL]
  opentact --help | --version

Attach TN leases to an Opentact SIP connection, detach them, and list what
a connection holds.

Commands:
  list      print the connection's leases: uuid, number, expiry, autorenew
  assign    add and remove leases, in batches, several requests at once

Options:
  --add UUID...         leases to attach (repeatable)
  --remove UUID...      leases to detach (repeatable)
  --add-file FILE       leases to attach, one per line, or a CSV whose first
                        uuid-shaped column is used; - reads standard input
  --remove-file FILE    leases to detach, the same way
  --batch-size N        uuids per request (default 100)
  --concurrency N       requests at once (default 4)
  --failed-file FILE    write the uuids that were not applied to FILE (adds)
                        and FILE.remove (removes), ready for a re-run, each
                        group under a "# why" comment line
  --skip-invalid        leave out lines without a valid uuid and uuids given
                        twice (or to both add and remove), each named on
                        standard error, instead of refusing the whole input
  --json                print the payload (list) or the report (assign) as JSON
  --url URL             API base URL (default: OPENTACT_URL, else Opentact's)
  -h, --help            this help
  --version             the version

Environment:
  OPENTACT_TOKEN        the API token (required; never give it as an argument)
  OPENTACT_URL          the API base URL

Exit status: 0 everything applied, 1 the API refused or failed something,
2 a usage error, 130 interrupted (Ctrl-C: requests in flight are cancelled,
and the report and --failed-file still say what was applied).
]]

---------------------------------------------------------------- JSON out

-- A JSON encoder for output: arrays stay arrays even when empty, integers
-- print as integers on every Lua, keys are sorted so output is stable.
local function is_array(t)
  local n = #t
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k > n or floor(k) ~= k then return false end
  end
  return true
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
  ["\r"] = "\\r", ["\t"] = "\\t" }

local function encode(v, out)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = '"' .. v:gsub('[%c"\\]', function(c)
      return ESCAPES[c] or format("\\u%04x", c:byte())
    end) .. '"'
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      out[#out + 1] = "null"
    elseif floor(v) == v and v > -2 ^ 63 and v < 2 ^ 63 then
      out[#out + 1] = format("%.0f", v)
    else
      out[#out + 1] = format("%.17g", v)
    end
  elseif t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif t == "table" then
    if is_array(v) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode(v[i], out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = tostring(k) end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        encode(k, out)
        out[#out + 1] = ":"
        local value = v[k]
        if value == nil then value = v[tonumber(k)] end
        encode(value, out)
      end
      out[#out + 1] = "}"
    end
  else
    out[#out + 1] = "null"
  end
end

function M.json(v)
  local out = {}
  encode(v, out)
  return concat(out)
end

---------------------------------------------------------------- input

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

-- Something a person may have meant as a uuid: 36 characters with the
-- dashes of one, or 32 or more hex digits and dashes.
local UUID_LIKE = "^[%w][%w][%w][%w][%w][%w][%w][%w]%-[%w][%w][%w][%w]%-[%w][%w][%w][%w]%-[%w][%w][%w][%w]%-"

local function fields(line)
  local out = {}
  for field in (line .. ","):gmatch("([^,]*),") do
    out[#out + 1] = (field:gsub("^%s*\"?", ""):gsub("\"?%s*$", ""))
  end
  return out
end

-- The first uuid-shaped field of a line (plain or CSV, quotes allowed);
-- or nil and whether some field looks meant as one.
local function uuid_in(line)
  local meant = false
  for _, f in ipairs(fields(line)) do
    if f:find(UUID) then return f end
    if f:find(UUID_LIKE) or (#f >= 32 and f:find("^[%x%-]+$")) then meant = true end
  end
  return nil, meant
end

-- Reads uuids from a file (or standard input for "-"): returns the list,
-- or nil and a message naming the file and line.
-- `skipped` (optional) collects "file:line: why" for lines left out
-- instead of failing on them (--skip-invalid). Each uuid comes with where
-- it was read, in `where`.
local function read_uuids(path, stdin, skipped, where)
  local f, err
  if path == "-" then
    f = stdin or io.stdin
  else
    f, err = io.open(path, "rb")
    if not f then return nil, "cannot read " .. tostring(err) end
  end
  local name = path == "-" and "stdin" or path
  local out, n, first = {}, 0, true
  local ok, failure = pcall(function()
    for line in f:lines() do
      n = n + 1
      line = line:gsub("\r$", "")
      if n == 1 then line = line:gsub("^\239\187\191", "") end -- a UTF-8 byte order mark
      if line:find("%S") and not line:find("^%s*#") then
        local u, meant = uuid_in(line)
        if u then
          out[#out + 1] = u
          if where then where[#out] = format("%s:%d", name, n) end
        elseif not (first and not meant and line:find(",", 1, true)) then
          -- only a CSV's first line, with no uuid-like field, is a header
          local problem = format("%s:%d: %s", name, n, meant and "not a valid uuid" or "no uuid on this line")
          if not skipped then return problem end
          skipped[#skipped + 1] = problem
        end
        first = false
      end
    end
  end)
  if f ~= (stdin or io.stdin) then f:close() end
  if not ok then return nil, format("cannot read %s: %s", name, tostring(failure):gsub("^[^:]*:%d+: ", "")) end
  if failure then return nil, failure end
  return out
end

---------------------------------------------------------------- arguments

local function usage_error(ctx, msg)
  ctx.stderr:write("opentact: ", msg, "\nTry 'opentact --help'.\n")
  return 2
end

-- Options that take values; --add and --remove take one or more.
local TAKES = { ["--add-file"] = true, ["--remove-file"] = true, ["--batch-size"] = true,
  ["--concurrency"] = true, ["--failed-file"] = true, ["--url"] = true }

local function parse(argv)
  local o = { add = {}, remove = {}, add_files = {}, remove_files = {}, positional = {} }
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--add" or a == "--remove" then
      local list = a == "--add" and o.add or o.remove
      local start = #list
      i = i + 1
      while argv[i] and not argv[i]:find("^%-%-") do
        list[#list + 1] = argv[i]
        i = i + 1
      end
      if #list == start then return nil, a .. " needs at least one uuid" end
    elseif TAKES[a] then
      local v = argv[i + 1]
      if v == nil then return nil, a .. " needs a value" end
      if a == "--add-file" then o.add_files[#o.add_files + 1] = v
      elseif a == "--remove-file" then o.remove_files[#o.remove_files + 1] = v
      else o[a:sub(3):gsub("%-", "_")] = v end
      i = i + 2
    elseif a == "--json" then
      o.json = true
      i = i + 1
    elseif a == "--skip-invalid" then
      o.skip_invalid = true
      i = i + 1
    elseif a == "-h" or a == "--help" then
      o.help = true
      i = i + 1
    elseif a == "--version" then
      o.version = true
      i = i + 1
    elseif a == "--token" then
      return nil, "the token is read from OPENTACT_TOKEN only: an argument would show in ps"
    elseif a:find("^%-") and a ~= "-" then
      return nil, "unknown option " .. a
    else
      o.positional[#o.positional + 1] = a
      i = i + 1
    end
  end
  return o
end

local function whole(v, name)
  local n = tonumber(v)
  if not n or n < 1 or floor(n) ~= n then return nil, name .. " must be a whole number > 0" end
  return n
end

---------------------------------------------------------------- progress

local function progress_bar(ctx)
  local started = core.now()
  return function(done, total)
    local elapsed = core.now() - started
    local rate = elapsed > 0 and done / elapsed or 0
    local eta = rate > 0 and (total - done) / rate or 0
    local width = 30
    local filled = total > 0 and floor(width * done / total) or width
    ctx.stderr:write(format("\r[%s%s] %d/%d uuids  %3d%%  %.0f/s  ETA %.1fs ",
      ("#"):rep(filled), ("-"):rep(width - filled), done, total,
      total > 0 and floor(100 * done / total) or 100, rate, eta))
    if done >= total then ctx.stderr:write("\n") end
  end
end

---------------------------------------------------------------- commands

local function client_for(ctx, o)
  local token = ctx.getenv("OPENTACT_TOKEN")
  if not token or token == "" then return nil, "set OPENTACT_TOKEN to your API token" end
  local ok, client = pcall(opentact.new, { token = token, base_url = o.url or ctx.getenv("OPENTACT_URL") })
  if not ok then return nil, (tostring(client):gsub("^[^:]*:%d+: ", "")) end
  return client
end

local function cmd_list(ctx, o)
  if #o.positional ~= 2 then return usage_error(ctx, "list takes one connection uuid") end
  local client, why = client_for(ctx, o)
  if not client then return usage_error(ctx, why) end
  local leases, err = client:list(o.positional[2])
  client:close()
  if not leases then
    ctx.stderr:write(tostring(err), "\n")
    return err.kind == "invalid" and 2 or 1
  end
  if o.json then
    ctx.stdout:write(M.json(setmetatable(leases, nil)), "\n")
  else
    ctx.stdout:write(tostring(leases), "\n")
  end
  return 0
end

-- Writes the failed uuids of `kind`, each group under a comment saying why
-- (comments are skipped when the file is read back).
local function write_failed(path, failed, kind)
  local f, err = io.open(path, "wb")
  if not f then return nil, err end
  for _, group in ipairs(failed) do
    if #group[kind] > 0 then
      f:write("# ", (tostring(group.err):gsub("[%c]", " ")), "\n")
      for _, u in ipairs(group[kind]) do f:write(u, "\n") end
    end
  end
  f:close()
  return true
end

local function cmd_assign(ctx, o)
  if #o.positional ~= 2 then return usage_error(ctx, "assign takes one connection uuid") end
  local skipped = o.skip_invalid and {} or nil
  local sources = { add = {}, remove = {} }
  for kind, spec in pairs({ add = { o.add_files, o.add }, remove = { o.remove_files, o.remove } }) do
    for k = 1, #spec[2] do sources[kind][k] = "--" .. kind end
    for _, path in ipairs(spec[1]) do
      local where = {}
      local list, err = read_uuids(path, ctx.stdin, skipped, where)
      if not list then return usage_error(ctx, err) end
      for k, u in ipairs(list) do
        spec[2][#spec[2] + 1] = u
        sources[kind][#spec[2]] = where[k]
      end
    end
  end
  -- a uuid twice, or in both lists, is named with where each came from:
  -- an error, or left out with --skip-invalid
  local first_seen, problems = {}, {}
  for _, kind in ipairs({ "add", "remove" }) do
    local list, kept, kept_sources = o[kind], {}, {}
    for k, u in ipairs(list) do
      local key = u:lower()
      local seen = first_seen[key]
      if seen then
        problems[#problems + 1] = format("%s: %s %s again (first at %s, %s)", sources[kind][k], u,
          seen.kind == kind and "listed" or "in both --add and --remove", seen.where, seen.kind)
      else
        first_seen[key] = { kind = kind, where = sources[kind][k] }
        kept[#kept + 1] = u
        kept_sources[#kept] = sources[kind][k]
      end
    end
    o[kind], sources[kind] = kept, kept_sources
  end
  if #problems > 0 and not skipped then
    return usage_error(ctx, problems[1] .. (#problems > 1 and format(" (and %d more)", #problems - 1) or "")
      .. "; --skip-invalid leaves such lines out")
  end
  for _, p in ipairs(problems) do skipped[#skipped + 1] = p end
  for _, why in ipairs(skipped or {}) do ctx.stderr:write("opentact: skipped ", why, "\n") end
  if #o.add + #o.remove == 0 then return usage_error(ctx, "nothing to assign: give --add, --remove or a file") end
  local batch_size, concurrency = 100, 4
  if o.batch_size then
    local n, err = whole(o.batch_size, "--batch-size")
    if not n then return usage_error(ctx, err) end
    batch_size = n
  end
  if o.concurrency then
    local n, err = whole(o.concurrency, "--concurrency")
    if not n or n > 256 then return usage_error(ctx, err or "--concurrency must be at most 256") end
    concurrency = n
  end
  local client, why = client_for(ctx, o)
  if not client then return usage_error(ctx, why) end
  local started = core.now()
  local report = client:assign_batched(o.positional[2], { add = o.add, remove = o.remove }, {
    batch_size = batch_size, concurrency = concurrency,
    on_progress = ctx.is_terminal and not o.json and progress_bar(ctx) or nil,
  })
  client:close()
  local elapsed = core.now() - started

  local failed_add, failed_remove = report:failed_uuids()
  if o.failed_file then
    local ok, err = write_failed(o.failed_file, report.failed, "add")
    if ok and #failed_remove > 0 then
      ok, err = write_failed(o.failed_file .. ".remove", report.failed, "remove")
    elseif ok then
      -- a previous run's removes are done now: a stale file would make a
      -- "re-run until the files are empty" loop go on for ever
      os.remove(o.failed_file .. ".remove")
    end
    if not ok then ctx.stderr:write("opentact: cannot write the failed uuids: ", tostring(err), "\n") end
  end

  if o.json then
    local failed = {}
    for i, f in ipairs(report.failed) do
      local e = {}
      for k, v in pairs(f.err) do e[k] = v end
      failed[i] = { add = f.add, remove = f.remove, err = e }
    end
    ctx.stdout:write(M.json({ ok = report.ok, applied = report.applied, failed = failed,
      leases = setmetatable(report.leases, nil) }), "\n")
  else
    ctx.stdout:write(tostring(report), "\n")
    ctx.stdout:write(format("%d uuids in %.2f s\n", #o.add + #o.remove, elapsed))
    if not report.ok and o.failed_file then
      ctx.stdout:write(format("failed uuids written to %s%s; to retry:\n  opentact assign %s%s%s\n",
        o.failed_file, #failed_remove > 0 and " and " .. o.failed_file .. ".remove" or "",
        o.positional[2], #failed_add > 0 and " --add-file " .. o.failed_file or "",
        #failed_remove > 0 and " --remove-file " .. o.failed_file .. ".remove" or ""))
    end
  end
  if report.interrupted then
    ctx.stderr:write("opentact: interrupted: requests in flight were cancelled; the report above says what was applied\n")
    return 130
  end
  if report.failed[1] and report.failed[1].err.kind == "invalid" and #report.applied.add + #report.applied.remove == 0 then
    return 2
  end
  return report.ok and 0 or 1
end

-- ctx: stdout, stderr, stdin, getenv, is_terminal (stderr is a terminal)
function M.main(argv, ctx)
  ctx = ctx or {}
  ctx.stdout = ctx.stdout or io.stdout
  ctx.stderr = ctx.stderr or io.stderr
  ctx.stdin = ctx.stdin or io.stdin
  ctx.getenv = ctx.getenv or os.getenv
  local o, err = parse(argv)
  if not o then return usage_error(ctx, err) end
  if o.help then
    ctx.stdout:write(HELP)
    return 0
  end
  if o.version then
    ctx.stdout:write(opentact._VERSION, "\n")
    return 0
  end
  local command = o.positional[1]
  if command == "list" then return cmd_list(ctx, o) end
  if command == "assign" then return cmd_assign(ctx, o) end
  if command == nil then return usage_error(ctx, "give a command: list or assign") end
  return usage_error(ctx, "unknown command '" .. tostring(command) .. "'")
end

return M
