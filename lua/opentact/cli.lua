-- The `opentact` command: list a connection's leases, or assign many from
-- the command line or from files, with progress and a report. bin/opentact
-- only calls main(). Exit status: 0 all applied, 1 the API refused or
-- failed anything, 2 usage errors.

local opentact = require("opentact")
local core = require("opentact.core")
local pretty = require("opentact.pretty")
local sync = require("opentact.sync")

local type, tostring, tonumber, ipairs, pairs, pcall = type, tostring, tonumber, ipairs, pairs, pcall
local format, concat, floor = string.format, table.concat, math.floor

local M = {}

local HELP = [[
Usage:
  opentact list CONN [--json] [--url URL]
  opentact find NUMBER|MASK [--json] [--url URL]
  opentact assign CONN [--add LEASE...] [--remove LEASE...]
                       [--add-file FILE] [--remove-file FILE]
                       [--batch-size N] [--concurrency N]
                       [--failed-file FILE] [--skip-invalid] [--json] [--url URL]
  opentact sync CONN --numbers-file FILE | --leases-file FILE | --all-leases
                     [--exact] [--move] [--dry-run]
                     [--batch-size N] [--concurrency N]
                     [--failed-file FILE] [--skip-invalid] [--json] [--url URL]
  opentact login [--email EMAIL] [--url URL]
  opentact token [--url URL]
  opentact --help | --version

Attach TN leases to an Opentact SIP connection, detach them, list what a
connection holds, find the lease of a phone number, and bring a connection
to a desired set of numbers.

Commands:
  list      print the connection's leases: uuid, number, expiry, autorenew
  find      print the lease of a phone number, or every lease whose number
            matches a mask (* any digits, % one digit: '+1 212 555 *')
  assign    add and remove leases, in batches, several requests at once
  sync      make the connection hold the leases of the numbers in FILE:
            prints the plan (+ attach, - detach, ! held elsewhere,
            ? not in the account), applies it, and reads the connection
            back to check it
  login     log in with email and password (asked for on a terminal, or
            OPENTACT_PASSWORD) and keep the token for the commands that
            follow, in ~/.config/opentact/token (readable by you only)
  token     print a valid token on standard output, for curl:
            curl -H "X-Auth-Token: $(opentact token)" ...

Leases (LEASE, and the lines of FILE) are lease uuids or phone numbers in
any form: 12125550004, +1 (212) 555-0004, or in pieces after --add:
--add +1 212 555 0004. A number is looked up to find its lease.

Options:
  --add LEASE...        leases to attach (repeatable)
  --remove LEASE...     leases to detach (repeatable)
  --add-file FILE       leases to attach, one per line, or a CSV: its first
                        uuid-shaped column, else its number column (headed
                        tn, number, phone, phone number, telephone, did or
                        e164; else the first field that starts with + or has
                        10 digits or more and is not a date); - reads
                        standard input
  --remove-file FILE    leases to detach, the same way
  --numbers-file FILE   sync: the phone numbers the connection must hold,
                        read the same way
  --leases-file FILE    sync: the lease uuids the connection must hold
  --all-leases          sync: attach every lease of the account not on the
                        connection yet (leases held elsewhere need --move)
  --exact               sync: also detach every lease not in FILE
  --move                sync: take leases that another SIP connection or a
                        SIP control app holds (they are detached there first)
  --dry-run             sync: print the plan, change nothing
  --batch-size N        uuids per request (default 100)
  --concurrency N       requests at once (default 4)
  --failed-file FILE    write the uuids that were not applied to FILE (adds)
                        and FILE.remove (removes), ready for a re-run, each
                        group under a "# why" comment line
  --skip-invalid        leave out lines without a valid uuid or number, numbers
                        the account has no lease for, and (assign) leases
                        given twice (or to both add and remove), each named on
                        standard error, instead of refusing the whole input
  --json                print the payload (list, find) or the report (assign,
                        sync) as JSON
  --url URL             API base URL (default: OPENTACT_URL, else Opentact's)
  --email EMAIL         login: the account's email (default: OPENTACT_EMAIL)
  -h, --help            this help
  --version             the version

Environment:
  OPENTACT_TOKEN        the API token (never give it as an argument)
  OPENTACT_EMAIL, OPENTACT_PASSWORD
                        without OPENTACT_TOKEN: log in with these, and log in
                        again before the token expires
  OPENTACT_URL          the API base URL
Without either, commands use the token 'opentact login' kept.

Exit status: 0 everything applied (sync: the connection holds what FILE
asks; a dry run: nothing blocks the plan), 1 the API refused or failed
something (find: no lease matches; sync: conflicts or missing numbers), 2 a
usage error, 130 interrupted (Ctrl-C: requests in flight are cancelled, and
the report and --failed-file still say what was applied).
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

-- The fields of a CSV line: a field in double quotes may hold commas, and
-- "" inside it stands for one quote. Fields are trimmed.
local function fields(line)
  local out, i, n = {}, 1, #line
  while true do
    local field
    local at = line:find("%S", i) or n + 1
    if line:sub(at, at) == '"' then
      local parts, j = {}, at + 1
      while true do
        local q = line:find('"', j, true)
        if not q then parts[#parts + 1] = line:sub(j) j = n + 1 break end
        parts[#parts + 1] = line:sub(j, q - 1)
        if line:sub(q + 1, q + 1) == '"' then
          parts[#parts + 1] = '"'
          j = q + 2
        else
          j = q + 1
          break
        end
      end
      field = table.concat(parts)
      i = line:find(",", j, true) or n + 1
    else
      local comma = line:find(",", i, true) or n + 1
      field = line:sub(i, comma - 1):gsub("^%s+", ""):gsub("%s+$", "")
      i = comma
    end
    out[#out + 1] = field
    if i > n then break end
    i = i + 1
  end
  return out
end

-- Column names that say a CSV column holds phone numbers (compared in
-- lower case, spaces and dashes as underscores: "Phone Number" counts).
local NUMBER_COLUMNS = { tn = true, number = true, phone = true, phone_number = true, did = true, e164 = true,
  telephone = true, telephone_number = true }

local function column_name(field)
  return (field:lower():gsub("[%s%-]+", "_"))
end

-- A phone number in a field: the number, or nil and (when the field looks
-- meant as one: digits and separators only) why it is not valid.
local function number_in(field)
  if not field:find("%d") then return nil end
  local n, err = opentact.number(field)
  if n then return n end
  if field:find("^%+?[%d%s%-%.%(%)]+$") then return nil, err.message end
  return nil
end

-- The lease a line names (plain or CSV, quotes allowed): its first
-- uuid-shaped field, else the number in `column` (or, without one, its
-- first field that is a phone number). Returns the uuid (a string) or the
-- number, nil, and the field; or nil and why, false when the line names
-- nothing at all.
local function lease_in(line, column)
  local meant, bad_number = false, nil
  local f = fields(line)
  for _, field in ipairs(f) do
    if field:find(UUID) then return field, nil, field end
    if field:find(UUID_LIKE) or (#field >= 32 and field:find("^[%x%-]+$")) then meant = true end
  end
  if meant then return nil, "not a valid uuid" end
  local candidates = column and { f[column] or "" } or f
  for _, field in ipairs(candidates) do
    -- in a CSV without a number column, only what looks like a phone
    -- number is taken for one: not a date, not a short count
    local _, digits = field:gsub("%d", "")
    local plausible = column or #f == 1 or field:find("^%s*%+") or (digits >= 10 and not field:find("^%d%d%d%d%-%d%d%-%d%d"))
    local n, why = number_in(field)
    if n and plausible then return n, nil, field end
    if plausible then bad_number = bad_number or why end
  end
  if bad_number then return nil, bad_number end
  return nil, false
end

-- A one-column header's name, as column_name gives it.
local function header_name(line)
  return column_name(fields(line)[1])
end

-- Reads leases (uuids or phone numbers) from a file (or standard input
-- for "-"): returns the list, or nil and a message naming the file and
-- line. `skipped` (optional) collects "file:line: why" for lines left out
-- instead of failing on them (--skip-invalid). Each lease comes with where
-- it was read, in `where`, and the field it was read from, in `texts`.
local function read_leases(path, stdin, skipped, where, texts)
  local f, err
  if path == "-" then
    f = stdin or io.stdin
  else
    f, err = io.open(path, "rb")
    if not f then return nil, "cannot read " .. tostring(err) end
  end
  local name = path == "-" and "stdin" or path
  local out, n, first, column = {}, 0, true, nil
  local ok, failure = pcall(function()
    for line in f:lines() do
      n = n + 1
      line = line:gsub("\r$", "")
      if n == 1 then line = line:gsub("^\239\187\191", "") end -- a UTF-8 byte order mark
      if line:find("%S") and not line:find("^%s*#") then
        local lease, why, text = lease_in(line, column)
        if lease then
          out[#out + 1] = lease
          if where then where[#out] = format("%s:%d", name, n) end
          if texts then texts[#out] = text end
        elseif first and why == false and (line:find(",", 1, true) or NUMBER_COLUMNS[header_name(line)]) then
          -- only a CSV's first line, naming no lease, is a header (or a
          -- first line that is a numbers column's name); it may say which
          -- column holds the numbers
          for i, h in ipairs(fields(line)) do
            if NUMBER_COLUMNS[column_name(h)] then column = i break end
          end
        else
          local problem = format("%s:%d: %s", name, n, why or "no lease uuid or phone number on this line")
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
  ["--concurrency"] = true, ["--failed-file"] = true, ["--url"] = true, ["--numbers-file"] = true,
  ["--leases-file"] = true, ["--email"] = true }

-- Options without a value, and the field each sets.
local FLAGS = { ["--json"] = "json", ["--skip-invalid"] = "skip_invalid", ["--exact"] = "exact",
  ["--move"] = "move", ["--dry-run"] = "dry_run", ["--all-leases"] = "all_leases" }

-- A piece of a phone number typed with spaces: at most four digits, and
-- the separators people type.
local function is_piece(v)
  local _, digits = v:gsub("%d", "")
  return digits > 0 and digits <= 4 and v:find("^[%d%-%.%(%)]+$") ~= nil
end

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
        local v = argv[i]
        if #list > start and is_piece(v) and not list[#list]:find(UUID) then
          -- a number typed in pieces: --add +1 212 555 0004
          list[#list] = list[#list] .. " " .. v
        else
          list[#list + 1] = v
        end
        i = i + 1
      end
      if #list == start then return nil, a .. " needs at least one lease uuid or phone number" end
    elseif TAKES[a] then
      local v = argv[i + 1]
      if v == nil then return nil, a .. " needs a value" end
      if a == "--add-file" then o.add_files[#o.add_files + 1] = v
      elseif a == "--remove-file" then o.remove_files[#o.remove_files + 1] = v
      else o[a:sub(3):gsub("%-", "_")] = v end
      i = i + 2
    elseif FLAGS[a] then
      o[FLAGS[a]] = true
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

-- --batch-size and --concurrency, checked: batch_size, concurrency; or nil, why.
local function sizes(o)
  local batch_size, concurrency = 100, 4
  if o.batch_size then
    local n, err = whole(o.batch_size, "--batch-size")
    if not n then return nil, nil, err end
    batch_size = n
  end
  if o.concurrency then
    local n, err = whole(o.concurrency, "--concurrency")
    if not n or n > 256 then return nil, nil, err or "--concurrency must be at most 256" end
    concurrency = n
  end
  return batch_size, concurrency
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

-- Where `opentact login` keeps the token it got.
local function token_file(ctx)
  local dir = ctx.getenv("XDG_CONFIG_HOME")
  if not dir or dir == "" then
    local home = ctx.getenv("HOME")
    if not home or home == "" then return nil end
    dir = home .. "/.config"
  end
  return dir .. "/opentact/token"
end

-- The token `opentact login` saved: the token, or nil and why not.
local function saved_token(ctx)
  local path = token_file(ctx)
  local f = path and io.open(path, "rb")
  if not f then return nil end
  local token = f:read("*l")
  f:close()
  if not token or token == "" then return nil end
  local exp = core.jwt_claims(token)
  if exp and exp <= core.time() then
    return nil, ("the token saved by 'opentact login' expired at %s: run 'opentact login' again")
      :format(os.date("!%Y-%m-%d %H:%M:%SZ", math.floor(exp)))
  end
  return token
end

local NO_CREDENTIALS = "set OPENTACT_TOKEN to your API token, or OPENTACT_EMAIL and OPENTACT_PASSWORD "
  .. "to log in, or run 'opentact login'"

-- The options that authenticate: OPENTACT_TOKEN, else OPENTACT_EMAIL and
-- OPENTACT_PASSWORD, else what `opentact login` saved. Nil and why when
-- none is there.
local function credentials(ctx)
  local token = ctx.getenv("OPENTACT_TOKEN")
  if token and token ~= "" then return { token = token } end
  local email, password = ctx.getenv("OPENTACT_EMAIL"), ctx.getenv("OPENTACT_PASSWORD")
  if email and email ~= "" and password and password ~= "" then return { email = email, password = password } end
  local saved, why = saved_token(ctx)
  if saved then return { token = saved } end
  return nil, why or NO_CREDENTIALS
end

-- A client for the command, or nil and a usage message. `creds`: the
-- options that authenticate, when the command has them already.
local function client_for(ctx, o, creds)
  local why
  if not creds then
    creds, why = credentials(ctx)
    if not creds then return nil, why end
  end
  creds.base_url = o.url or ctx.getenv("OPENTACT_URL")
  local ok, client = pcall(opentact.new, creds)
  if not ok then
    -- library wording is about options; the user gave flags and variables
    local msg = tostring(client):gsub("^[^:]*:%d+: ", "")
    if msg:find("'base_url'", 1, true) then
      msg = "--url (or OPENTACT_URL) must be an http:// or https:// URL without spaces, query or fragment"
    end
    return nil, msg
  end
  return client
end

-- Reads a line from the terminal without echoing it (a password).
local function read_secret(ctx, prompt)
  ctx.stderr:write(prompt)
  ctx.stderr:flush()
  os.execute("stty -echo < /dev/tty 2> /dev/null")
  local ok, line = pcall(ctx.stdin.read, ctx.stdin, "*l")
  os.execute("stty echo < /dev/tty 2> /dev/null")
  ctx.stderr:write("\n")
  if not ok then error(line, 0) end
  return line
end

-- opentact login: logs in with email and password and keeps the JWT for
-- the commands that follow.
local function cmd_login(ctx, o)
  if #o.positional ~= 1 then return usage_error(ctx, "login takes no arguments (give --email)") end
  local email = o.email or ctx.getenv("OPENTACT_EMAIL")
  if (not email or email == "") and ctx.stdin_terminal then
    ctx.stderr:write("Email: ")
    ctx.stderr:flush()
    email = ctx.stdin:read("*l")
  end
  if not email or email == "" then return usage_error(ctx, "give --email (or set OPENTACT_EMAIL)") end
  local password = ctx.getenv("OPENTACT_PASSWORD")
  if not password or password == "" then
    if not ctx.stdin_terminal then
      return usage_error(ctx, "set OPENTACT_PASSWORD, or run 'opentact login' on a terminal to be asked for it")
    end
    password = read_secret(ctx, "Password for " .. email .. ": ")
    if not password or password == "" then return usage_error(ctx, "no password given") end
  end
  local client, why = client_for(ctx, o, { email = email, password = password })
  if not client then return usage_error(ctx, why) end
  local token, err = client:token()
  client:close()
  if not token then
    ctx.stderr:write(tostring(err), "\n")
    return 1
  end
  local path = token_file(ctx)
  if not path then return usage_error(ctx, "set HOME (or XDG_CONFIG_HOME): the token is kept under it") end
  local dir = path:gsub("/token$", "")
  -- readable by this user only, from the first byte on
  os.execute(("umask 077 && mkdir -p '%s' && : > '%s'"):format(dir:gsub("'", "'\\''"), path:gsub("'", "'\\''")))
  local f, werr = io.open(path, "wb")
  if not f then
    ctx.stderr:write("opentact: logged in, but cannot keep the token: ", tostring(werr), "\n")
    return 1
  end
  f:write(token, "\n")
  f:close()
  local exp = core.jwt_claims(token)
  ctx.stdout:write(("Logged in as %s. The token is kept in %s%s.\n"):format(pretty.safe(email), path,
    exp and os.date("!, valid until %Y-%m-%d %H:%M:%SZ", math.floor(exp)) or ""))
  return 0
end

-- opentact token: a valid token on standard output, and nothing else.
local function cmd_token(ctx, o)
  if #o.positional ~= 1 then return usage_error(ctx, "token takes no arguments") end
  local client, why = client_for(ctx, o)
  if not client then return usage_error(ctx, why) end
  local token, err = client:token()
  client:close()
  if not token then
    ctx.stderr:write(tostring(err), "\n")
    return 1
  end
  ctx.stdout:write(token, "\n")
  return 0
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

-- A lease given as an argument: its uuid, or the phone number it holds;
-- or nil and why.
local function lease_arg(v)
  if v:find(UUID) then return v end
  local n, why = number_in(v)
  if n then return n end
  return nil, format("'%s' is not a lease uuid or a phone number%s", pretty.safe(v), why and ": " .. why or "")
end

-- Reads the arguments and files of `kinds` ({kind = {files, args}}) into
-- o[kind] lists of uuids and numbers, with where each came from.
-- Returns the sources ({kind = {where...}}), or nil, message.
local function gather(ctx, o, kinds, skipped)
  local sources = {}
  for kind, spec in pairs(kinds) do
    local list, from = {}, {}
    for _, v in ipairs(spec[2]) do
      local lease, why = lease_arg(v)
      if lease then
        list[#list + 1] = lease
        from[#list] = "--" .. kind
      elseif skipped then
        skipped[#skipped + 1] = "--" .. kind .. ": " .. why
      else
        return nil, "--" .. kind .. ": " .. why
      end
    end
    for _, path in ipairs(spec[1]) do
      local where = {}
      local got, err = read_leases(path, ctx.stdin, skipped, where)
      if not got then return nil, err end
      for k, lease in ipairs(got) do
        list[#list + 1] = lease
        from[#list] = where[k]
      end
    end
    o[kind], sources[kind] = list, from
  end
  return sources
end

-- Looks up the lease of every number in o.add and o.remove and puts its
-- uuid in its place. Numbers the account has no lease for are problems
-- (left out with --skip-invalid). Returns true, or nil, err for a lookup
-- that failed.
local function resolve_numbers(client, o, sources, problems)
  local numbers, seen = {}, {}
  for _, kind in ipairs({ "add", "remove" }) do
    for _, lease in ipairs(o[kind]) do
      if type(lease) == "number" and not seen[lease] then
        seen[lease] = true
        numbers[#numbers + 1] = lease
      end
    end
  end
  if #numbers == 0 then return true end
  local found, err = sync.lookup(client._engine, numbers, 16)
  if not found then return nil, err end
  for _, kind in ipairs({ "add", "remove" }) do
    local kept, kept_sources = {}, {}
    for k, lease in ipairs(o[kind]) do
      if type(lease) == "number" then
        local l = found[lease]
        if l then
          lease = l.uuid
        else
          problems[#problems + 1] = format("%s: no lease of the account holds the number %s", sources[kind][k],
            format("%.0f", lease))
          lease = nil
        end
      end
      if lease then
        kept[#kept + 1] = lease
        kept_sources[#kept] = sources[kind][k]
      end
    end
    o[kind], sources[kind] = kept, kept_sources
  end
  return true
end

-- Writes the uuids a report failed to FILE (adds) and FILE.remove.
local function save_failed(ctx, path, report)
  local _, failed_remove = report:failed_uuids()
  local ok, err = write_failed(path, report.failed, "add")
  if ok and #failed_remove > 0 then
    ok, err = write_failed(path .. ".remove", report.failed, "remove")
  elseif ok then
    -- a previous run's removes are done now: a stale file would make a
    -- "re-run until the files are empty" loop go on for ever
    os.remove(path .. ".remove")
  end
  if not ok then ctx.stderr:write("opentact: cannot write the failed uuids: ", tostring(err), "\n") end
end

local function error_json(e)
  local out = {}
  for k, v in pairs(e) do out[k] = v end
  return out
end

local function cmd_assign(ctx, o)
  if #o.positional ~= 2 then return usage_error(ctx, "assign takes one connection uuid") end
  local skipped = o.skip_invalid and {} or nil
  local batch_size, concurrency, opt_err = sizes(o)
  if not batch_size then return usage_error(ctx, opt_err) end
  local sources, gather_err = gather(ctx, o, { add = { o.add_files, o.add }, remove = { o.remove_files, o.remove } },
    skipped)
  if not sources then return usage_error(ctx, gather_err) end
  if #o.add + #o.remove == 0 and #(skipped or {}) == 0 then
    return usage_error(ctx, "nothing to assign: give --add, --remove or a file")
  end
  local client, why = client_for(ctx, o)
  if not client then return usage_error(ctx, why) end
  -- numbers become the uuids of their leases; a number the account does
  -- not have is named (an error, or left out with --skip-invalid)
  local missing = {}
  local resolved, lookup_err = resolve_numbers(client, o, sources, missing)
  if not resolved then
    client:close()
    ctx.stderr:write(tostring(lookup_err), "\n")
    return 1
  end
  if #missing > 0 and not skipped then
    client:close()
    ctx.stderr:write("opentact: ", missing[1], #missing > 1 and format(" (and %d more)", #missing - 1) or "",
      "; --skip-invalid leaves such lines out\n")
    return 1
  end
  for _, m in ipairs(missing) do skipped[#skipped + 1] = m end
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
    client:close()
    return usage_error(ctx, problems[1] .. (#problems > 1 and format(" (and %d more)", #problems - 1) or "")
      .. "; --skip-invalid leaves such lines out")
  end
  for _, p in ipairs(problems) do skipped[#skipped + 1] = p end
  for _, w in ipairs(skipped or {}) do ctx.stderr:write("opentact: skipped ", w, "\n") end
  if #o.add + #o.remove == 0 then
    client:close()
    return usage_error(ctx, "nothing to assign: give --add, --remove or a file")
  end
  local started = core.now()
  local report = client:assign_batched(o.positional[2], { add = o.add, remove = o.remove }, {
    batch_size = batch_size, concurrency = concurrency,
    on_progress = ctx.is_terminal and not o.json and progress_bar(ctx) or nil,
  })
  client:close()
  local elapsed = core.now() - started

  local failed_add, failed_remove = report:failed_uuids()
  if o.failed_file then save_failed(ctx, o.failed_file, report) end

  if o.json then
    local failed = {}
    for i, f in ipairs(report.failed) do failed[i] = { add = f.add, remove = f.remove, err = error_json(f.err) } end
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

-- A lease in a few fields, for JSON: uuid, number and holders.
local function brief(lease)
  local function uuid_of(h) return type(h) == "table" and h.uuid or nil end
  return { uuid = lease.uuid, number = type(lease.tn) == "table" and lease.tn.tn or nil,
    sip_connection = uuid_of(lease.sip_connection), sip_control_app = uuid_of(lease.sip_control_app) }
end

local function briefs(list)
  local out = {}
  for i, x in ipairs(list) do out[i] = type(x) == "table" and brief(x) or x end
  return out
end

-- Leases as a table: number, uuid, who holds them, autorenew.
local function holders_table(leases)
  local rows = { { "number", "uuid", "held by", "autorenew" } }
  for _, l in ipairs(leases) do
    local b = brief(l)
    local held = b.sip_control_app and "app " .. b.sip_control_app
      or b.sip_connection and "connection " .. b.sip_connection or "-"
    rows[#rows + 1] = { b.number and format("%.0f", b.number) or "-", pretty.safe(tostring(l.uuid)),
      pretty.safe(held), l.autorenew == nil and "-" or (l.autorenew and "yes" or "no") }
  end
  local widths = {}
  for _, r in ipairs(rows) do
    for c, v in ipairs(r) do widths[c] = math.max(widths[c] or 0, #v) end
  end
  local out = { #leases == 1 and "1 lease" or #leases .. " leases" }
  for _, r in ipairs(rows) do
    local cells = {}
    for c, v in ipairs(r) do cells[c] = v .. (" "):rep(widths[c] - #v) end
    out[#out + 1] = ("  " .. concat(cells, "  ")):gsub("%s+$", "")
  end
  return concat(out, "\n")
end

local function cmd_find(ctx, o)
  if #o.positional < 2 then return usage_error(ctx, "find takes a phone number or a mask") end
  -- a number may come in pieces: opentact find +1 212 555 0004
  local text = concat(o.positional, " ", 2)
  local client, why = client_for(ctx, o)
  if not client then return usage_error(ctx, why) end
  local leases, err
  if text:find("[*%%]") then
    leases, err = client:search_all({ tn = text })
  else
    local lease
    lease, err = client:lease(text)
    if lease then
      leases = { lease }
    elseif err.kind == "not_found" then
      leases, err = {}, nil
    end
  end
  client:close()
  if not leases then
    ctx.stderr:write(tostring(err), "\n")
    return err.kind == "invalid" and 2 or 1
  end
  if o.json then
    ctx.stdout:write(M.json(setmetatable(leases, nil)), "\n")
  elseif #leases == 0 then
    ctx.stdout:write("no lease of the account matches ", pretty.safe(text), "\n")
  else
    ctx.stdout:write(holders_table(leases), "\n")
  end
  return #leases > 0 and 0 or 1
end

local function cmd_sync(ctx, o)
  if #o.positional ~= 2 then return usage_error(ctx, "sync takes one connection uuid") end
  local given = (o.numbers_file and 1 or 0) + (o.leases_file and 1 or 0) + (o.all_leases and 1 or 0)
  if given ~= 1 then return usage_error(ctx, "sync takes one of --numbers-file, --leases-file and --all-leases") end
  local batch_size, concurrency, opt_err = sizes(o)
  if not batch_size then return usage_error(ctx, opt_err) end
  local desired
  if o.all_leases then
    desired = { all_leases = true }
  else
    local skipped = o.skip_invalid and {} or nil
    local path = o.numbers_file or o.leases_file
    local where, texts = {}, {}
    local got, err = read_leases(path, ctx.stdin, skipped, where, texts)
    if not got then return usage_error(ctx, err) end
    local want_numbers = o.numbers_file ~= nil
    local list, problems = {}, {}
    for k, x in ipairs(got) do
      if (type(x) == "number") == want_numbers then
        -- as written in the file: the plan names missing numbers so
        list[#list + 1] = texts[k]
      else
        problems[#problems + 1] = format("%s: %s", where[k], want_numbers
          and "a lease uuid in --numbers-file (give uuids with --leases-file)"
          or "a phone number in --leases-file (give numbers with --numbers-file)")
      end
    end
    if #problems > 0 and not skipped then
      return usage_error(ctx, problems[1] .. (#problems > 1 and format(" (and %d more)", #problems - 1) or ""))
    end
    for _, p in ipairs(problems) do skipped[#skipped + 1] = p end
    for _, w in ipairs(skipped or {}) do ctx.stderr:write("opentact: skipped ", w, "\n") end
    if #list == 0 and (o.exact or #(skipped or {}) > 0) then
      -- with --exact an empty list detaches everything: never by accident
      return usage_error(ctx, path .. " names no valid lease" .. (o.exact and ": with --exact that would "
        .. "detach every lease of the connection (use assign --remove-file for that)" or ""))
    end
    desired = want_numbers and { numbers = list } or { leases = list }
  end
  local client, why = client_for(ctx, o)
  if not client then return usage_error(ctx, why) end
  local report, err = client:sync(o.positional[2], desired, {
    exact = o.exact or false, move = o.move or false, dry_run = o.dry_run or false,
    batch_size = batch_size, concurrency = concurrency,
    on_progress = ctx.is_terminal and not o.json and progress_bar(ctx) or nil,
  })
  client:close()
  if not report then
    ctx.stderr:write(tostring(err), "\n")
    return err.kind == "invalid" and 2 or 1
  end
  if o.failed_file and not o.dry_run then save_failed(ctx, o.failed_file, report) end
  if o.json then
    local failed = {}
    for i, f in ipairs(report.failed) do failed[i] = { add = f.add, remove = f.remove, err = error_json(f.err) } end
    ctx.stdout:write(M.json({ ok = report.ok, dry_run = report.dry_run, connection = report.connection,
      add = briefs(report.add), remove = briefs(report.remove), keep = briefs(report.keep),
      conflicts = briefs(report.conflicts), missing = briefs(report.missing), applied = report.applied,
      failed = failed, released = report.released, interrupted = report.interrupted and tostring(report.interrupted),
      unverified = report.unverified and error_json(report.unverified) or nil }), "\n")
  else
    ctx.stdout:write(concat(pretty.plan_lines(report), "\n"), "\n")
    if #report.failed > 0 then
      ctx.stdout:write("Running the same sync again plans from what the connection holds now and finishes the job",
        o.failed_file and ("; the uuids that failed are in " .. o.failed_file) or "", ".\n")
    end
  end
  if report.interrupted then
    ctx.stderr:write("opentact: interrupted: requests in flight were cancelled; the report above says what was applied\n")
    return 130
  end
  return report.ok and 0 or 1
end

local COMMANDS = { list = cmd_list, assign = cmd_assign, find = cmd_find, sync = cmd_sync, login = cmd_login,
  token = cmd_token }

-- ctx: stdout, stderr, stdin, getenv, is_terminal (stderr is a terminal),
-- stdin_terminal (standard input is one)
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
  if command == nil then return usage_error(ctx, "give a command: list, find, assign, sync, login or token") end
  local run = COMMANDS[command]
  if not run then return usage_error(ctx, "unknown command '" .. tostring(command) .. "'") end
  -- Ctrl-C outside a bulk run (a lookup, a read): nothing was changed
  -- that a report would not show; exit as interrupted, without a traceback
  local ok, status = pcall(run, ctx, o)
  if ok then return status end
  if tostring(status):find("interrupted!", 1, true) then
    ctx.stderr:write("opentact: interrupted\n")
    return 130
  end
  error(status, 0)
end

return M
