-- The help of the `opentact` command, as data, and its printer:
-- `opentact --help`, each command's --help, the man page (tools/manpage.lua)
-- and the checks on the completion scripts are all made from these tables,
-- so none of them is written twice. The options are opentact.cli.options';
-- each command's entry is its module's `help`. A text is one paragraph,
-- wrapped when printed ({ pre = "..." }: printed as written); an example is
-- printed as written.

local words = require("opentact.cli.options")

local type, tostring, ipairs, require = type, tostring, ipairs, require
local concat = table.concat

local M = {}

local ROWS, OPTIONS, OPTION = words.ROWS, words.OPTIONS, words.OPTION

-- The commands, in the order help lists them: each is the module
-- opentact.cli.NAME, with its help entry (`help`) and its `run(ctx, o)`.
-- In an entry, `args`: what the usage shows before the options in
-- brackets; `required`: options shown in `args`; `options`: every option
-- the command takes (--help aside), in order.
local NAMES = { "list", "find", "assign", "sync", "plan", "apply", "check", "export", "connections", "apps", "lease",
  "names", "login", "logout", "whoami", "token", "help" }

local COMMAND_LIST, COMMAND, MODULE = {}, {}, {}
for i, name in ipairs(NAMES) do
  MODULE[name] = require("opentact.cli." .. name)
  COMMAND_LIST[i] = MODULE[name].help
  COMMAND[name] = COMMAND_LIST[i]
end

M.HELP = {
  name = "opentact",
  summary = "attach Opentact TN leases to SIP connections, from the command line",
  text = {
    "Attach TN leases to an Opentact SIP connection, detach them, list what a connection holds, find the lease "
      .. "of a phone number, and bring a connection to a desired set of numbers.",
    "Every command that sends requests takes --timeout S and --retries N (each attempt's time limit, and the "
      .. "extra attempts for a request that failed in a way worth retrying), --deadline S (what a request may take "
      .. "in all: every attempt, backoff and Retry-After wait inside it; a wait that would cross it is not "
      .. "started, and the error says the deadline was reached), and -v (--verbose) prints a line "
      .. "per HTTP attempt on standard error: 'opentact: GET /sip/connection/UUID/tnlease: 200, attempt 1, 42 "
      .. "ms'. It never shows the token or the password, and shows the values of a query as ...",
    "CONN, in the commands that take one, is a SIP connection or a SIP control app: a connection's uuid, or "
      .. "its name; app:NAME or app:UUID for a control app (connection:NAME to say a connection). A name that "
      .. "several connections or apps have, or none has, is refused with exit status 2, the candidates listed; "
      .. "'opentact connections' and 'opentact apps' list them.",
    "Live routing changes only as shown: 'opentact plan' prints what sync would do and, with --out, keeps it; "
      .. "'opentact apply' does exactly that plan, or nothing if a planned lease moved since; sync asks before "
      .. "it detaches or moves a lease (--yes where nobody can answer).",
  },
  leases = {
    "Leases (LEASE, and the lines of FILE) are lease uuids or phone numbers in any form: 12125550004, "
      .. "+1 (212) 555-0004, or in pieces after --add: --add +1 212 555 0004. A number is looked up to find its "
      .. "lease. Numbers are taken with their country code; with --country-code N (or OPENTACT_COUNTRY_CODE), "
      .. "N is put in front of every number of at most ten digits written without a leading +: --country-code "
      .. "1 makes (212) 555-0004 +1 212 555 0004. Without it, a sync or find whose numbers all miss, some "
      .. "written without +, says they may lack their country code.",
  },
  output = {
    "The commands that print data (list, find, assign, sync, whoami) take --format table, json, jsonl, csv or tsv; --json "
      .. "is --format json. A table on a terminal stops after " .. ROWS .. " rows unless --all; every other "
      .. "format, and a table sent to a file or a pipe, has every row. csv and tsv start with a header line.",
    "A csv or tsv cell of text that begins with =, +, -, @, a tab or a carriage return is written with a leading ' "
      .. "(a spreadsheet shows it as text and never runs it as a formula); numbers are written as they are. In "
      .. "tables, csv and tsv, control characters from the server (and bytes that are no UTF-8) show as \\ddd and "
      .. "bidirectional and other invisible marks (U+202E, U+2066, U+200F, zero-width ones, C1 controls) as \\u{202E}; json and "
      .. "jsonl keep every string "
      .. "(those marks as \\u202e) and the server's empty objects {} and arrays [] as they were.",
    "Output that cannot be written (a full disk) is an error on standard error, exit status 1 (or the "
      .. "command's own when it failed too); a reader that closes the pipe early (| head) ends the command "
      .. "quietly, with exit status 141.",
    "Errors go to standard error. Under --format json or jsonl an error is also printed on standard output, as "
      .. "one JSON object: {\"ok\": false, \"error\": {\"kind\", \"status\", \"message\", \"retryable\", "
      .. "\"attempts\", \"method\", \"path\"}}, kind \"usage\" for a usage error; the exit status is the same. "
      .. "No output ever holds the token.",
  },
  environment = {
    { "OPENTACT_TOKEN", "the API token (never give it as an argument: it would show in ps)" },
    { "OPENTACT_EMAIL, OPENTACT_PASSWORD", "without OPENTACT_TOKEN: log in with these, and log in again before "
      .. "the token expires" },
    { "OPENTACT_URL", "the API base URL" },
    { "OPENTACT_PROFILE", "the profile whose saved token (and its URL) commands use, as --profile NAME does" },
    { "OPENTACT_COUNTRY_CODE", "the country calling code put in front of numbers written without one, as "
      .. "--country-code N does (find, assign, sync)" },
  },
  environment_text = {
    "Without OPENTACT_TOKEN or OPENTACT_EMAIL and OPENTACT_PASSWORD, commands use the token 'opentact login' "
      .. "kept; one with less than a minute left is an auth error (exit 1): log in again, or set OPENTACT_EMAIL "
      .. "and OPENTACT_PASSWORD, and each command logs in itself (the kept token is left as it is).",
    "Each profile (--profile NAME, or OPENTACT_PROFILE) has a token file of its own; the default profile's is "
      .. "the one above. A named profile's commands send its token to the URL it was saved for unless --url or "
      .. "OPENTACT_URL names another (then it is refused, as a token is never sent to another server); "
      .. "OPENTACT_TOKEN and OPENTACT_EMAIL still come first, and go to the URL given or Opentact's. 'opentact "
      .. "whoami' says which URL, account and token a command would use.",
  },
  files = {
    { "$XDG_CONFIG_HOME/opentact/token", "the token 'opentact login' keeps (~/.config/opentact/token when "
      .. "XDG_CONFIG_HOME is not set), readable by you only from its first byte on and replaced whole at each "
      .. "login" },
    { "$XDG_CONFIG_HOME/opentact/profiles/NAME/token", "the token and URL 'opentact login --profile NAME' keeps "
      .. "for the profile NAME, the same way; 'opentact logout --profile NAME' removes it" },
  },
  exit = {
    { 0, "success: printed, or everything applied (sync: the connection holds what FILE asks; a dry run: "
      .. "nothing blocks the plan; logout: the token was removed, or there was none)" },
    { 1, "the API refused or failed something (find: no lease matches; sync: conflicts or missing numbers), or "
      .. "standard output could not be written" },
    { 2, "a usage error, or nothing was changed on purpose: a plan that is stale, damaged, newer or for another "
      .. "URL, another plan's journal, a question not answered y, a detach or a move without --yes" },
    { 130, "interrupted (Ctrl-C): requests in flight are cancelled, and the report and --failed-file still say "
      .. "what was applied" },
    { 141, "the reader of standard output closed it early (| head): the command stopped without a word" },
  },
  options = OPTIONS,
  option = OPTION,
  commands = COMMAND_LIST,
  command = COMMAND,
}

-- The options a command takes, --help included, each as its OPTIONS entry.
function M.command_options(name)
  local c = COMMAND[name]
  local out = {}
  for _, o in ipairs(c and c.options or {}) do out[#out + 1] = OPTION[o] end
  out[#out + 1] = OPTION["--help"]
  return out
end

-- A command's usage, as pieces that are never split: "opentact NAME", its
-- arguments, then each option it takes as "[--opt ARG]".
function M.usage_pieces(name)
  local c = COMMAND[name]
  local required = {}
  for _, r in ipairs(c.required or {}) do required[r] = true end
  local pieces = {}
  for _, a in ipairs(c.args) do pieces[#pieces + 1] = a end
  for _, o in ipairs(c.options) do
    if not required[o] then
      local opt = OPTION[o]
      pieces[#pieces + 1] = "[" .. o .. (opt.arg and " " .. opt.arg or "") .. "]"
    end
  end
  return pieces
end

local WIDTH = 79

-- `text` wrapped to WIDTH, every line after `indent` spaces (the first
-- after `first`, default the same), as a list of lines.
local function wrap(text, indent, first, out)
  out = out or {}
  local line = (" "):rep(first or indent)
  local start = #line
  for word in text:gmatch("%S+") do
    if #line > start and #line + 1 + #word > WIDTH then
      out[#out + 1] = line
      line = (" "):rep(indent) .. word
      start = indent
    else
      line = line .. (#line > start and " " or "") .. word
    end
  end
  if #line > start then out[#out + 1] = line end
  return out
end

-- Paragraphs (strings, wrapped) and { pre = ... } blocks, indented.
local function paragraphs(list, indent, out)
  for i, p in ipairs(list) do
    if i > 1 then out[#out + 1] = "" end
    if type(p) == "table" then
      for l in (p.pre .. "\n"):gmatch("([^\n]*)\n") do out[#out + 1] = (" "):rep(indent) .. l end
    else
      wrap(p, indent, indent, out)
    end
  end
  return out
end

-- Terms and their texts: the term at 2, the text at column `col` (on the
-- next line when the term is too long).
local function definitions(list, col, out)
  for _, d in ipairs(list) do
    local term = "  " .. d[1]
    if #term + 2 > col then
      out[#out + 1] = term
      wrap(d[2], col, col, out)
    else
      local lines = wrap(d[2], col, col)
      lines[1] = term .. lines[1]:sub(#term + 1)
      for _, l in ipairs(lines) do out[#out + 1] = l end
    end
  end
  return out
end

local function option_term(opt)
  return (opt.short and opt.short .. ", " or "") .. opt.name .. (opt.arg and " " .. opt.arg or "")
end

local function usage_lines(name, out)
  local head = "  opentact " .. name
  local line = head
  for _, p in ipairs(M.usage_pieces(name)) do
    if #line > #head and #line + 1 + #p > WIDTH then
      out[#out + 1] = line
      line = (" "):rep(#head)
    end
    line = line .. " " .. p
  end
  out[#out + 1] = line
  return out
end

local function exit_list(list)
  local out = {}
  for i, e in ipairs(list) do out[i] = { tostring(e[1]), e[2] } end
  return out
end

--- The help text: the whole tool's (`command` nil), or one command's.
function M.help(command)
  local H, out = M.HELP, {}
  if command == nil then
    out[#out + 1] = "Usage:"
    for _, c in ipairs(COMMAND_LIST) do usage_lines(c.name, out) end
    out[#out + 1] = "  opentact --help | --version"
    out[#out + 1] = ""
    paragraphs(H.text, 0, out)
    out[#out + 1] = ""
    out[#out + 1] = "Commands:"
    local list = {}
    for i, c in ipairs(COMMAND_LIST) do list[i] = { c.name, c.summary } end
    definitions(list, 15, out)
    out[#out + 1] = ""
    paragraphs(H.leases, 0, out)
    out[#out + 1] = ""
    out[#out + 1] = "Options:"
    list = {}
    for i, opt in ipairs(OPTIONS) do list[i] = { option_term(opt), opt.text } end
    definitions(list, 24, out)
    out[#out + 1] = ""
    out[#out + 1] = "Output:"
    paragraphs(H.output, 2, out)
    out[#out + 1] = ""
    out[#out + 1] = "Environment:"
    definitions(H.environment, 24, out)
    paragraphs(H.environment_text, 2, out)
    out[#out + 1] = ""
    out[#out + 1] = "Exit status:"
    definitions(exit_list(H.exit), 8, out)
    out[#out + 1] = ""
    wrap("'opentact COMMAND --help' (or 'opentact help COMMAND') prints a command's options, output and exit "
      .. "status.", 0, 0, out)
    return concat(out, "\n") .. "\n"
  end
  local c = COMMAND[command]
  out[#out + 1] = "Usage:"
  usage_lines(c.name, out)
  out[#out + 1] = ""
  paragraphs(c.text, 0, out)
  local opts = {}
  for i, opt in ipairs(M.command_options(command)) do
    opts[i] = { option_term(opt), opt.name == "--help" and "print this help" or opt.text }
  end
  out[#out + 1] = ""
  out[#out + 1] = "Options:"
  definitions(opts, 24, out)
  if c.output then
    out[#out + 1] = ""
    out[#out + 1] = "Output (--format):"
    definitions(c.output, 10, out)
  end
  out[#out + 1] = ""
  out[#out + 1] = "Exit status:"
  definitions(exit_list(c.exit), 8, out)
  if c.examples then
    out[#out + 1] = ""
    out[#out + 1] = "Examples:"
    for _, e in ipairs(c.examples) do paragraphs({ { pre = e } }, 2, out) end
  end
  if c.name ~= "help" then
    out[#out + 1] = ""
    out[#out + 1] = "Credentials and the URL come from the environment: see 'opentact --help'."
  end
  return concat(out, "\n") .. "\n"
end

-- The module of each command, by name: its `run(ctx, o)`.
M.MODULE = MODULE

-- The names of the commands, in help's order.
function M.command_names()
  local names = {}
  for i, c in ipairs(COMMAND_LIST) do names[i] = c.name end
  return names
end

-- The commands as a sentence: "list, find, ... or help" (help aside).
function M.command_list()
  local names = M.command_names()
  if names[#names] == "help" then names[#names] = nil end
  return concat(names, ", ", 1, #names - 1) .. " or " .. names[#names]
end

-- The options a typo of an option is compared with: those of `command`
-- when it is one, else every option; --help and --version always.
function M.option_names(command)
  local names = { "--help", "--version" }
  if COMMAND[command] then
    for _, name in ipairs(COMMAND[command].options) do names[#names + 1] = name end
  else
    for _, opt in ipairs(OPTIONS) do names[#names + 1] = opt.name end
  end
  return names
end

return M
