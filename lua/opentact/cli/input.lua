-- What the `opentact` command reads: leases (lease uuids or phone numbers)
-- from arguments, and from files of lines or CSV, each bad line named.

local opentact = require("opentact")
local pretty = require("opentact.pretty")
local json = require("opentact.json")
local core = require("opentact.core")
local common = require("opentact.cli.common")
local args = require("opentact.cli.args")
local credentials = require("opentact.cli.credentials")

local type, tostring, ipairs, pcall = type, tostring, ipairs, pcall
local format, byte = string.format, string.byte

local M = {}

local is_uuid, excerpt = opentact.is_uuid, common.excerpt

-- Something a person may have meant as a uuid: 36 characters with the
-- dashes of one, or 32 or more hex digits and dashes.
local UUID_LIKE = "^[%w][%w][%w][%w][%w][%w][%w][%w]%-[%w][%w][%w][%w]%-[%w][%w][%w][%w]%-[%w][%w][%w][%w]%-"

-- Whether byte `b` is white space, as %s takes it (nil: no byte).
local function space(b)
  return b == 32 or b ~= nil and b >= 9 and b <= 13
end

-- The fields of a CSV line: a field in double quotes may hold commas, and
-- "" inside it stands for one quote. Fields are trimmed.
local function fields(line)
  local out, i, n = {}, 1, #line
  if not line:find('"', 1, true) then
    -- (no quotes: each field is what lies between commas, trimmed)
    while true do
      local comma = line:find(",", i, true)
      local field = line:sub(i, (comma or n + 1) - 1)
      if space(byte(field, 1)) or space(byte(field, -1)) then field = field:match("^%s*(.-)%s*$") end
      out[#out + 1] = field
      if not comma then return out end
      i = comma + 1
    end
  end
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
      field = line:sub(i, comma - 1)
      -- (trimmed; most fields have nothing to trim)
      if field:find("^%s") or field:find("%s$") then field = field:match("^%s*(.-)%s*$") end
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

-- A number written without a leading + and with at most ten digits, the
-- way a country writes its own numbers (2125550004, (212) 555-0004).
local function is_local(text)
  local _, digits = text:gsub("%d", "")
  return digits > 0 and digits <= 10 and text:find("^[%d%s%-%.%(%)]+$") ~= nil
end

-- `text` with the country code `cc` (digits; nil: none) put in front when
-- it is a number written the local way; else as it is.
local function with_country(text, cc)
  if cc and is_local(text) then return "+" .. cc .. " " .. text:gsub("^%s+", "") end
  return text
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
-- number, nil, and the field (with the country code `cc` in front when
-- it was put there); or nil and why, false when the line names nothing at
-- all.
local function lease_in(line, column, cc)
  local meant, bad_number = false, nil
  local f = fields(line)
  for _, field in ipairs(f) do
    if is_uuid(field) then return field, nil, field end
    if field:find(UUID_LIKE) or (#field >= 32 and field:find("^[%x%-]+$")) then meant = true end
  end
  if meant then return nil, "not a valid uuid" end
  local candidates = column and { f[column] or "" } or f
  for _, field in ipairs(candidates) do
    -- in a CSV without a number column, only what looks like a phone
    -- number is taken for one: not a date, not a short count
    local _, digits = field:gsub("%d", "")
    local plausible = column or #f == 1 or field:find("^%s*%+") or (digits >= 10 and not field:find("^%d%d%d%d%-%d%d%-%d%d"))
    local written = with_country(field, cc)
    local n, why = number_in(written)
    if n and plausible then return n, nil, written end
    if plausible then bad_number = bad_number or why end
  end
  if bad_number then return nil, bad_number end
  return nil, false
end

-- A one-column header's name, as column_name gives it.
local function header_name(line)
  return column_name(fields(line)[1])
end

--- The lines of the file at `path` (standard input for "-": `stdin`, or
--- io.stdin) that hold something (neither blank nor a # comment), a slice
--- at a time: returns take(max), which calls `each(n, line)` for at most
--- `max` more of them (`n` the line's number, `line` without its CR and,
--- on the first line, a UTF-8 byte order mark) and returns true while
--- there may be more, false at the end (the file closed), or nil and why
--- the file cannot be read (`name` names it then); close(), which closes
--- it before its end; and whether it is a file that can be read ahead
--- (a regular file: a pipe or a terminal may keep its reader waiting).
--- Or nil and why it cannot be opened. A caller reads a file in slices
--- between other work (check reads its routes while the account's pages
--- are on the wire). Ctrl-C while it reads is raised, as it came.
local function line_slices(path, stdin, name, each)
  local f, err
  if path == "-" then
    f = stdin or io.stdin
  else
    f, err = io.open(path, "rb")
    if not f then return nil, "cannot read " .. tostring(err) end
  end
  local lines, n, over = f:lines(), 0, false
  local function close()
    if over then return end
    over = true
    if f ~= (stdin or io.stdin) then f:close() end
  end
  local function slice(max)
    local given = 0
    while given < max do
      local line = lines()
      if not line then return false end
      n = n + 1
      if line:byte(-1) == 13 then line = line:sub(1, -2) end
      if n == 1 then line = line:gsub("^\239\187\191", "") end -- a UTF-8 byte order mark
      -- (neither blank nor a comment)
      local first = line:match("^%s*(%S)")
      if first and first ~= "#" then
        given = given + 1
        each(n, line)
      end
    end
    return true
  end
  local function take(max)
    if over then return false end
    local ok, more = pcall(slice, max)
    if ok and more then return true end
    close()
    if not ok and common.interrupted(more) then error(more, 0) end
    if not ok then return nil, format("cannot read %s: %s", name, tostring(more):gsub("^[^:]*:%d+: ", "")) end
    return false
  end
  return take, close, path ~= "-" and f:seek("cur") ~= nil
end

--- Calls `each(n, line)` for each line of the file at `path` that holds
--- something, as line_slices does; returns true, or nil and why the file
--- cannot be read.
local function each_line(path, stdin, name, each)
  local take, err = line_slices(path, stdin, name, each)
  if not take then return nil, err end
  local more
  more, err = take(1 / 0) -- (to the end: false, or nil and why not)
  if more == nil then return nil, err end
  return true
end

-- Reads leases (uuids or phone numbers) from a file (or standard input
-- for "-"): returns the list, or nil and a message when the file cannot
-- be read. Every line that names no lease is added to `problems` as
-- "file:line: why: the line" (the caller refuses, or skips them with
-- --skip-invalid), its line number in `at` (optional). Each lease comes
-- with where it was read, in `where` (and its line number in at.leases),
-- and the field it was read from, in `texts`. `cc`: the country code put
-- in front of numbers written the local way (see with_country), or nil.
local function read_leases(path, stdin, problems, where, texts, at, cc)
  local name = path == "-" and "stdin" or path
  local out, first, column = {}, true, nil
  local ok, err = each_line(path, stdin, name, function(n, line)
    local lease, why, text = lease_in(line, column, cc)
    if lease then
      out[#out + 1] = lease
      if where then where[#out] = format("%s:%d", name, n) end
      if texts then texts[#out] = text end
      if at then at.leases[#out] = n end
    elseif first and why == false and (line:find(",", 1, true) or NUMBER_COLUMNS[header_name(line)]) then
      -- only a CSV's first line, naming no lease, is a header (or a
      -- first line that is a numbers column's name); it may say which
      -- column holds the numbers
      for i, h in ipairs(fields(line)) do
        if NUMBER_COLUMNS[column_name(h)] then column = i break end
      end
    else
      problems[#problems + 1] = format("%s:%d: %s: %s", pretty.safe(name), n,
        why or "no lease uuid or phone number on this line", excerpt(line))
      if at then at[#problems] = n end
    end
    first = false
  end)
  if not ok then return nil, err end
  return out
end

-- A lease given as an argument: its uuid, or the phone number it holds
-- (`cc`: the country code put in front of one written the local way);
-- or nil and why.
local function lease_arg(v, cc)
  if is_uuid(v) then return v end
  local n, why = number_in(with_country(v, cc))
  if n then return n end
  return nil, format("'%s' is not a lease uuid or a phone number%s", pretty.safe(v), why and ": " .. why or "")
end

-- Whether any of `texts` (numbers as written) is written the local way:
-- without a leading + and with at most ten digits.
local function any_local(texts)
  for _, t in ipairs(texts) do
    if type(t) == "string" and is_local(t) then return true end
  end
  return false
end

-- What a run whose numbers are all missing says when some were written
-- without their country code, and none was given.
local function country_hint(count)
  return (count == 1 and "the number is not in the account, and is written without a country code"
    or format("none of the %d numbers is in the account, and some are written without a country code", count))
    .. ": give it with --country-code (--country-code 1 makes 2125550004 +1 212 555 0004), or set "
    .. "OPENTACT_COUNTRY_CODE"
end

-- The hint for a plan (or the refusal `err` when there is none) whose
-- numbers are all missing while some are written without a country code
-- and none was given: most likely the numbers lack it. Nil otherwise.
local function missing_hint(o, desired, plan, err)
  if not (desired.numbers and not o.country_code and any_local(desired.numbers)) then return nil end
  if not plan then
    -- with --exact, the library refuses such a plan: it would detach all
    if err.kind == "invalid" and tostring(err.message):find("^none of the") then
      return country_hint(#desired.numbers)
    end
  elseif #plan.missing > 0 and #plan.add + #plan.keep + #plan.conflicts == 0 then
    return country_hint(#plan.missing)
  end
end

M.with_country = with_country
M.any_local = any_local
M.country_hint = country_hint

-- What `sync` and `plan` are asked to make CONN hold: {numbers = ...},
-- {leases = ...} or {all_leases = true}, from --numbers-file,
-- --leases-file or --all-leases; or nil and the exit status of the usage
-- error said. Every line that names no lease, or a lease of the other
-- kind, is named in one run: refused, or left out with --skip-invalid.
-- Numbers the account has no lease for stay in the plan (? missing):
-- left out, a lookup that failed for a moment would make --exact detach
-- a lease that was asked for.
local function desired(ctx, o)
  local usage_error, problem_list = common.usage_error, common.problem_list
  local given = (o.numbers_file and 1 or 0) + (o.leases_file and 1 or 0) + (o.all_leases and 1 or 0)
  if given ~= 1 then
    return nil, usage_error(ctx, o.positional[1] .. " takes one of --numbers-file, --leases-file and --all-leases")
  end
  if o.all_leases then return { all_leases = true } end
  local skipped = o.skip_invalid and {} or nil
  local path = o.numbers_file or o.leases_file
  local where, texts, problems, at = {}, {}, {}, { leases = {} }
  local got, err = read_leases(path, ctx.stdin, problems, where, texts, at, o.country_code)
  if not got then return nil, usage_error(ctx, err) end
  local want_numbers = o.numbers_file ~= nil
  local list = {}
  for k, x in ipairs(got) do
    if (type(x) == "number") == want_numbers then
      -- as written in the file: the plan names missing numbers so
      list[#list + 1] = texts[k]
    else
      problems[#problems + 1] = format("%s: %s: %s", pretty.safe(where[k]), want_numbers
        and "a lease uuid in --numbers-file (give uuids with --leases-file)"
        or "a phone number in --leases-file (give numbers with --numbers-file)", excerpt(texts[k]))
      at[#problems] = at.leases[k]
    end
  end
  -- in the file's order
  local order = {}
  for i = 1, #problems do order[i] = i end
  table.sort(order, function(a, b) return at[a] < at[b] end)
  for i, k in ipairs(order) do order[i] = problems[k] end
  if #order > 0 and not skipped then return nil, usage_error(ctx, problem_list(order, "bad lines")) end
  for _, p in ipairs(order) do skipped[#skipped + 1] = p end
  if o.exact and #order > 0 then
    -- a line left out names a lease nobody can tell: with --exact it
    -- would be detached, a change the file never asked for
    return nil, usage_error(ctx, problem_list(order, "bad lines") .. "\n--exact with --skip-invalid detaches the "
      .. "leases those lines meant: fix them, or " .. o.positional[1] .. " without --exact")
  end
  for _, w in ipairs(skipped or {}) do ctx.stderr:write("opentact: skipped ", w, "\n") end
  if #list == 0 and (o.exact or #(skipped or {}) > 0) then
    -- with --exact an empty list detaches everything: never by accident
    return nil, usage_error(ctx, path .. " names no valid lease" .. (o.exact and ": with --exact that would "
      .. "detach every lease of the connection (use assign --remove-file for that)" or ""))
  end
  return want_numbers and { numbers = list } or { leases = list }
end

-- The options a saved plan was made from, for its note: the input (a
-- file by its absolute path, so that the words work from another folder),
-- --skip-invalid and --country-code, as a JSON array of words. A stale
-- saved plan is made again with them (apply checks each word: a plan file
-- may come from anyone). nil when the plan is not saved (no --out), or
-- when the words cannot be told or do not fit a note: apply then says
-- "as before".
local NOTE_MAX = 4096
local function input_words(o)
  if not o.out then return nil end
  local w
  if o.all_leases then
    w = { "--all-leases" }
  else
    local path = o.routes or o.numbers_file or o.leases_file
    if path ~= "-" and path:sub(1, 1) ~= "/" then
      local cwd = core.getcwd()
      if not cwd then return nil end
      path = cwd:gsub("/$", "") .. "/" .. path
    end
    w = { o.routes and "--routes" or o.numbers_file and "--numbers-file" or "--leases-file", path }
  end
  if o.skip_invalid then w[#w + 1] = "--skip-invalid" end
  if o.country_code then
    w[#w + 1] = "--country-code"
    w[#w + 1] = tostring(o.country_code)
  end
  local note = json.encode(w)
  return #note <= NOTE_MAX and not note:find("%z") and note or nil
end

-- What `sync` and `plan` do first: their arguments checked, a client,
-- and the plan of CONN made (refused, the error is said with the missing
-- hint): the client, still open, the plan, the hint, the batch size and
-- the concurrency; or nil and the exit status, the client closed.
local function plan(ctx, o)
  local usage_error = common.usage_error
  if o.autorenew ~= nil and o.autorenew ~= "on" and o.autorenew ~= "off" then
    return nil, usage_error(ctx, "--autorenew takes on or off, not '" .. pretty.safe(tostring(o.autorenew)) .. "'")
  end
  if o.autorenew ~= nil then o.autorenew_set = o.autorenew == "on" end
  if o.routes ~= nil then
    if type(o.routes) ~= "string" then return nil, usage_error(ctx, "--routes needs a FILE") end
    -- (required here: the routes reader reads its file with this module)
    return require("opentact.cli.routes").plan(ctx, o, input_words(o))
  end
  if #o.positional ~= 2 then
    return nil, usage_error(ctx, o.positional[1] .. " takes one connection or control app")
  end
  local want, status = desired(ctx, o)
  if not want then return nil, status end
  local batch_size, concurrency, opt_err = args.sizes(o)
  if not batch_size then return nil, usage_error(ctx, opt_err) end
  local client, why = credentials.client_for(ctx, o)
  if not client then return nil, common.no_client(ctx, why) end
  local t, t_status = common.target(ctx, client, o.positional[2])
  if not t then
    client:close()
    return nil, t_status
  end
  local made, err = client:plan(t, want, { exact = o.exact or false, move = o.move or false,
    concurrency = concurrency, note = input_words(o), autorenew = o.autorenew_set })
  local hint = missing_hint(o, want, made, err)
  if not made then
    client:close()
    local exit = common.fail(ctx, err)
    common.target_hint(ctx, o.positional[2], err)
    if hint then ctx.stderr:write("opentact: ", hint, "\n") end
    return nil, exit
  end
  return client, made, hint, batch_size, concurrency
end

M.read_leases = read_leases
M.line_slices = line_slices
M.fields = fields
M.lease_arg = lease_arg
M.desired = desired
M.plan = plan

return M
