-- The arguments of the `opentact` command: a first glance (the command,
-- --help, the format) before parsing, the parse, the check that each
-- option given is one the command takes, typo suggestions, and the sizes
-- of --batch-size and --concurrency, and the settings every command may
-- take (--timeout, --retries, --profile, --country-code, with their
-- variables). What the commands are and take comes from the caller
-- (opentact.cli.manual has it).

local opentact = require("opentact")
local pretty = require("opentact.pretty")

local tonumber, ipairs = tonumber, ipairs
local floor = math.floor

local M = {}

local is_uuid = opentact.is_uuid

-- Options that take values; --add and --remove take one or more.
local TAKES = { ["--add-file"] = true, ["--remove-file"] = true, ["--batch-size"] = true,
  ["--concurrency"] = true, ["--failed-file"] = true, ["--url"] = true, ["--numbers-file"] = true,
  ["--leases-file"] = true, ["--email"] = true, ["--format"] = true, ["--timeout"] = true, ["--retries"] = true,
  ["--deadline"] = true,
  ["--profile"] = true, ["--country-code"] = true }

-- Options without a value, and the field each sets.
local FLAGS = { ["--json"] = "json", ["--skip-invalid"] = "skip_invalid", ["--exact"] = "exact",
  ["--move"] = "move", ["--dry-run"] = "dry_run", ["--all-leases"] = "all_leases", ["--all"] = "all",
  ["--verbose"] = "verbose" }

-- Short options, and the long ones they stand for.
local SHORT = { ["-v"] = "--verbose" }

-- the options of plans: the saved plan, the journal, the answer, colour
TAKES["--out"], TAKES["--journal"] = true, true
FLAGS["--yes"], FLAGS["--no-color"] = "yes", "no_color"
-- the options of connections and apps, and of lease settings
FLAGS["--count"] = "count"
-- routes: the file of check (and what export writes)
TAKES["--routes"] = true
for _, name in ipairs({ "--autorenew", "--voice", "--fax", "--sms", "--mms", "--emergency" }) do TAKES[name] = true end

local FORMATS = { table = true, json = true, jsonl = true, csv = true, tsv = true }

-- A piece of a phone number typed with spaces: at most four digits, and
-- the separators people type.
local function is_piece(v)
  local _, digits = v:gsub("%d", "")
  return digits > 0 and digits <= 4 and v:find("^[%d%-%.%(%)]+$") ~= nil
end

-- What the arguments ask for before they are parsed, so that a usage
-- error can name the command's help and answer in JSON: the command (the
-- first word that is no option or option value), whether --help or -h is
-- there, and the format asked for.
local function glance(argv)
  local command, help, fmt
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local name, value = a:match("^(%-%-[%w%-]+)=(.*)$")
    if a == "--help" or a == "-h" then
      help = true
    elseif a == "--json" then
      fmt = "json"
    elseif name == "--format" then
      fmt = value
    elseif a == "--format" then
      fmt = argv[i + 1]
    end
    if TAKES[a] then
      i = i + 1
    elseif command == nil and not a:find("^%-") then
      command = a
    end
    i = i + 1
  end
  return command, help, fmt
end

-- The edit distance between two words: an insertion, a deletion, a
-- change, or two neighbours swapped, count one each.
local function distance(a, b)
  local d = {}
  for i = 0, #a do d[i] = { [0] = i } end
  for j = 1, #b do d[0][j] = j end
  for i = 1, #a do
    for j = 1, #b do
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a:byte(i) == b:byte(j) and 0 or 1))
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[#a][#b]
end

-- The one of `names` that `word` looks like a typo of, as git suggests
-- commands: the closest, at most two edits away and fewer edits than
-- half the word; nil when none is that close.
local function closest(word, names)
  if #word > 64 then return nil end
  local best, best_d
  for _, name in ipairs(names) do
    local d = distance(word, name)
    if not best_d or d < best_d then best, best_d = name, d end
  end
  if best_d and best_d <= 2 and best_d * 2 < #word then return best end
  return nil
end

-- "unknown command 'x'", and the command meant when it looks like a typo
-- of one of `names`.
local function unknown_command(word, names)
  local meant = closest(word, names)
  return "unknown command '" .. pretty.safe(word) .. "'" .. (meant and ": did you mean '" .. meant .. "'?" or "")
end

-- "unknown option --x", and the option meant when it looks like a typo of
-- one of `names`.
local function unknown_option(arg, names)
  local meant = closest(arg:match("^[^=]*"), names)
  return "unknown option " .. pretty.safe(arg) .. (meant and ": did you mean " .. meant .. "?" or "")
end

-- The options in `argv`, or nil and a usage message. `names`: the options
-- an unknown one is compared with for a typo.
local function parse(argv, names)
  local o = { add = {}, remove = {}, add_files = {}, remove_files = {}, positional = {}, seen = {} }
  -- --name=value is --name value
  local args = {}
  for _, a in ipairs(argv) do
    a = SHORT[a] or a
    local name, value = a:match("^(%-%-[%w%-]+)=(.*)$")
    if name and (TAKES[name] or name == "--add" or name == "--remove") then
      args[#args + 1] = name
      args[#args + 1] = value
    elseif name and (FLAGS[name] or name == "--help" or name == "--version") then
      return nil, name .. " takes no value"
    else
      args[#args + 1] = a
    end
  end
  local i = 1
  while i <= #args do
    local a = args[i]
    if a:find("^%-") and a ~= "-" then o.seen[#o.seen + 1] = a end
    if a == "--routes" and (args[i + 1] == nil or args[i + 1]:find("^%-%-")) then
      -- --routes alone (export --routes): what to export, no file
      o.routes = true
      i = i + 1
    elseif a == "--add" or a == "--remove" then
      local list = a == "--add" and o.add or o.remove
      local start = #list
      i = i + 1
      while args[i] and not args[i]:find("^%-%-") do
        local v = args[i]
        if #list > start and is_piece(v) and not is_uuid(list[#list]) then
          -- a number typed in pieces: --add +1 212 555 0004
          list[#list] = list[#list] .. " " .. v
        else
          list[#list + 1] = v
        end
        i = i + 1
      end
      if #list == start then return nil, a .. " needs at least one lease uuid or phone number" end
    elseif TAKES[a] then
      local v = args[i + 1]
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
      return nil, unknown_option(a, names)
    else
      o.positional[#o.positional + 1] = a
      i = i + 1
    end
  end
  -- --json is --format json
  if o.json then
    if o.format and o.format ~= "json" then return nil, "--json is --format json: give one of them" end
    o.format = "json"
  end
  o.format = o.format or "table"
  if not FORMATS[o.format] then return nil, "--format must be table, json, jsonl, csv or tsv" end
  o.json = o.format == "json"
  return o
end

-- Each option given is one the command takes (`options`, a list of names,
-- --help and --version aside): nil, or why not.
local function check_options(command, options, o)
  local takes = { ["--help"] = true, ["-h"] = true, ["--version"] = true }
  for _, name in ipairs(options) do takes[name] = true end
  for _, name in ipairs(o.seen) do
    if not takes[name] then return ("%s is not an option of 'opentact %s'"):format(name, command) end
  end
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

-- --concurrency, checked, `default` unless given: n, or nil, why.
function M.concurrency(o, default)
  if not o.concurrency then return default end
  local _, n, err = sizes(o)
  return n, err
end

-- The longest profile name.
local PROFILE_MAX = 64

-- The settings of `o` a command may take, each checked and set in `o`
-- (nil: not given): o.timeout and o.deadline (seconds) and o.retries from
-- --timeout, --deadline and --retries; o.profile from --profile, else OPENTACT_PROFILE (nil for the
-- default profile, which "default" names too); o.country_code (its
-- digits) from --country-code, else OPENTACT_COUNTRY_CODE. A variable is
-- read only for a command that takes its option (`options`, the names it
-- takes). Returns nil, or why a value is refused (a usage error).
local function settings(o, options, getenv)
  local takes = {}
  for _, name in ipairs(options) do takes[name] = true end
  -- seconds: --timeout (one attempt's limit), --deadline (a request's)
  for _, s in ipairs({ { "timeout", "one attempt's limit" }, { "deadline", "a request's limit, every attempt in it" } }) do
    local name, what = s[1], s[2]
    if o[name] ~= nil then
      local n = o[name]:find("^%d*%.?%d+$") and tonumber(o[name])
      if not n or n < 0.001 or n > 2147483 then
        return ("--%s must be a number of seconds from 0.001 to 2147483 (%s)"):format(name, what)
      end
      o[name] = n
    end
  end
  if o.retries ~= nil then
    local n = o.retries:find("^%d+$") and tonumber(o.retries)
    if not n or n > 100 then return "--retries must be a whole number from 0 to 100 (extra attempts)" end
    o.retries = n
  end
  local profile, from = o.profile, "--profile"
  if profile == nil and takes["--profile"] then
    profile, from = getenv("OPENTACT_PROFILE"), "OPENTACT_PROFILE"
    if profile == "" then profile = nil end
  end
  if profile ~= nil and (#profile > PROFILE_MAX or not profile:find("^[%w_%-]+$")) then
    return ("%s must be a profile name: letters, digits, - and _, at most %d"):format(from, PROFILE_MAX)
  end
  o.profile = profile ~= "default" and profile or nil
  local code
  code, from = o.country_code, "--country-code"
  if code == nil and takes["--country-code"] then
    code, from = getenv("OPENTACT_COUNTRY_CODE"), "OPENTACT_COUNTRY_CODE"
    if code == "" then code = nil end
  end
  if code ~= nil then
    local digits = code:match("^%+?([1-9]%d?%d?)$")
    if not digits then
      return from .. " must be a country calling code: 1 to 3 digits, the first not 0 (1, 44, +49)"
    end
    code = digits
  end
  o.country_code = code
end

M.settings = settings
M.glance = glance
M.parse = parse
M.check_options = check_options
M.unknown_command = unknown_command
M.sizes = sizes

return M
