-- The `opentact` command: list a connection's leases, find leases by
-- number, assign many from the command line or from files, sync a
-- connection to a list, with progress and a report, in the --format asked
-- for. bin/opentact only calls main(). Exit status: 0 success, 1 the API
-- refused or failed anything (or the output could not be written), 2 usage
-- errors, 130 interrupted, 141 the reader closed the pipe (M.HELP.exit).
-- The help is data (M.HELP): tools/manpage.lua makes the man page from it.

local opentact = require("opentact")
local core = require("opentact.core")
local pretty = require("opentact.pretty")

local type, tostring, tonumber, ipairs, pairs, pcall = type, tostring, tonumber, ipairs, pairs, pcall
local setmetatable, getmetatable = setmetatable, getmetatable
local format, concat, floor, lower = string.format, table.concat, math.floor, string.lower

local M = {}

---------------------------------------------------------------- help

-- The help, as data: `opentact --help`, each command's --help, the man
-- page (tools/manpage.lua) and the checks on the completion scripts are all
-- made from these tables, so none of them is written twice. A text is one
-- paragraph, wrapped when printed ({ pre = "..." }: printed as written);
-- an example is printed as written.

local ROWS = 100 -- a table on a terminal stops after this many rows (--all: no limit)

-- Every option: name, short form, the value it takes (nil: a flag), what
-- it does, and for completion the values it takes or that it names a file.
local OPTIONS = {
  { name = "--add", arg = "LEASE...", text = "leases to attach (repeatable; a number may be typed in pieces: "
    .. "--add +1 212 555 0004)" },
  { name = "--remove", arg = "LEASE...", text = "leases to detach (repeatable)" },
  { name = "--add-file", arg = "FILE", file = true, text = "leases to attach, one per line, or a CSV: its first "
    .. "uuid-shaped column, else its number column (headed tn, number, phone, phone number, telephone, did or "
    .. "e164; else the first field that starts with + or has 10 digits or more and is not a date); - reads "
    .. "standard input (repeatable)" },
  { name = "--remove-file", arg = "FILE", file = true, text = "leases to detach, read the same way (repeatable)" },
  { name = "--numbers-file", arg = "FILE", file = true, text = "the phone numbers the connection must hold, "
    .. "read the way --add-file is" },
  { name = "--leases-file", arg = "FILE", file = true, text = "the lease uuids the connection must hold" },
  { name = "--all-leases", text = "attach every lease of the account not on the connection yet (leases held "
    .. "elsewhere need --move)" },
  { name = "--exact", text = "also detach every lease of the connection that FILE does not name" },
  { name = "--move", text = "take leases that another SIP connection or a SIP control app holds: one on an app "
    .. "is released there first, one on a connection moves with the attach; without --move, assign refuses "
    .. "them and sends nothing, and sync leaves them as conflicts (!)" },
  { name = "--dry-run", text = "print the plan, change nothing" },
  { name = "--batch-size", arg = "N", text = "uuids per request (default 100)" },
  { name = "--concurrency", arg = "N", text = "requests at once (default 4, at most 256)" },
  { name = "--failed-file", arg = "FILE", file = true, text = "write the uuids that were not applied to FILE "
    .. "(adds) and FILE.remove (removes), ready for a re-run, each group under a \"# why\" comment line" },
  { name = "--skip-invalid", text = "leave out, each named on standard error, what would refuse the whole input: "
    .. "lines and arguments without a valid uuid or number; with assign, numbers and uuids to add that the "
    .. "account has no lease for, and leases given twice (or to both add and remove); with sync, lease uuids "
    .. "in --numbers-file and numbers in --leases-file (sync keeps numbers the account has no lease for in its "
    .. "plan, as ? missing, and exits 1 for them; with --exact it leaves nothing out: a line left out would have "
    .. "its lease detached). Without it, every bad line is named (the first 20) and "
    .. "nothing is sent" },
  { name = "--format", arg = "FMT", values = { "table", "json", "jsonl", "csv", "tsv" }, text = "how to print: "
    .. "table (the default, for people), json, jsonl, csv or tsv (Output in the command's --help says what "
    .. "each prints; --format=FMT works too)" },
  { name = "--json", text = "the same as --format json" },
  { name = "--all", text = "print every row of a table: on a terminal a table stops after " .. ROWS
    .. " rows (the other formats, and a table sent to a file or a pipe, always have every row)" },
  { name = "--url", arg = "URL", text = "the API base URL (default: OPENTACT_URL, else Opentact's)" },
  { name = "--email", arg = "EMAIL", text = "the account's email (default: OPENTACT_EMAIL)" },
  { name = "--help", short = "-h", text = "print the help; after a command, that command's help" },
  { name = "--version", text = "print the version" },
}
local OPTION = {}
for _, opt in ipairs(OPTIONS) do OPTION[opt.name] = opt end

local USAGE_EXIT = "a usage error: a bad option or argument"
local INTERRUPTED_EXIT = "interrupted (Ctrl-C)"
local API_EXIT = "the API refused or failed: an unknown connection, a bad token, a server or network error"
local LEASE_COLUMNS_TEXT = "uuid, number, expires, autorenew, sip_connection, sip_control_app"
local REPORT_COLUMNS_TEXT = "uuid, number, action, result, error_kind, error_status, error_message"
local TSV_TEXT = "as csv, with fields separated by tabs (a tab, newline, carriage return or backslash in a field "
  .. "is written \\t, \\n, \\r or \\\\)"
local EXAMPLE_CONN = "66eb0a8a-571e-41b1-8f50-4d97275cfab7"

-- The commands, in the order help lists them. `args`: what the usage shows
-- before the options in brackets; `required`: options shown in `args`;
-- `options`: every option the command takes (--help aside), in order.
local COMMAND_LIST = {
  {
    name = "list", args = { "CONN" },
    summary = "print the connection's leases: uuid, number, expiry, autorenew",
    text = { "Print the leases that the SIP connection CONN holds." },
    options = { "--format", "--json", "--all", "--url" },
    output = {
      { "table", "a line per lease: uuid, number, expires, autorenew; on a terminal the first " .. ROWS
        .. " (--all: every one)" },
      { "json", "the API's leases: an array of objects" },
      { "jsonl", "one lease object per line" },
      { "csv", "a header line, then a line per lease: " .. LEASE_COLUMNS_TEXT },
      { "tsv", TSV_TEXT },
    },
    exit = {
      { 0, "the leases were printed" },
      { 1, API_EXIT },
      { 2, USAGE_EXIT .. ", such as an invalid connection uuid" },
      { 130, INTERRUPTED_EXIT },
    },
    examples = { "opentact list " .. EXAMPLE_CONN, "opentact list " .. EXAMPLE_CONN .. " --format csv > leases.csv" },
  },
  {
    name = "find", args = { "NUMBER|MASK" },
    summary = "print the lease of a phone number, or every lease whose number matches a mask "
      .. "(* any digits, % one digit: '+1 212 555 *')",
    text = { "Print the lease of a phone number, typed in any form (in pieces too: opentact find +1 212 555 0004), "
      .. "or every lease whose number matches a mask (* any digits, % one digit: '+1 212 555 *'), with who holds it." },
    options = { "--format", "--json", "--all", "--url" },
    output = {
      { "table", "a line per lease: number, uuid, held by (connection UUID, app UUID or -), autorenew; on a "
        .. "terminal the first " .. ROWS .. " (--all: every one)" },
      { "json", "the leases: an array of objects, empty when nothing matches" },
      { "jsonl", "one lease object per line" },
      { "csv", "a header line, then a line per lease: " .. LEASE_COLUMNS_TEXT },
      { "tsv", TSV_TEXT },
    },
    exit = {
      { 0, "at least one lease matches" },
      { 1, "no lease matches, or the API refused or failed" },
      { 2, USAGE_EXIT .. ", such as a bad number or mask" },
      { 130, INTERRUPTED_EXIT },
    },
    examples = { "opentact find +1 212 555 0004", "opentact find '+1 212 555 *' --format jsonl" },
  },
  {
    name = "assign", args = { "CONN" },
    summary = "add and remove leases, in batches, several requests at once",
    text = { "Attach the leases of --add and --add-file to the SIP connection CONN and detach those of --remove "
      .. "and --remove-file, in batches, several requests at once. Phone numbers are looked up to find their "
      .. "leases, and so are the lease uuids to add, to know who holds them. Before anything is sent: a lease "
      .. "to add that another SIP connection or a SIP control app holds is refused (exit 2, each named with its "
      .. "holder) unless --move, which takes it and says from where; one CONN holds already (its lookup and "
      .. "CONN's own list say so; the lookup alone: failed) is reported (\"already on CONN\") and not sent; "
      .. "one to remove that CONN does not hold is reported (\"not on CONN\") and not sent. With the table "
      .. "format, a progress bar (done/total, rate, ETA) goes to standard error when it is a terminal." },
    options = { "--add", "--remove", "--add-file", "--remove-file", "--move", "--batch-size", "--concurrency",
      "--failed-file", "--skip-invalid", "--format", "--json", "--url" },
    output = {
      { "table", "a line per lease already on CONN, not on CONN, or moved (from which SIP connection or "
        .. "control app); the summary: ok or not ok, how many were applied and failed, a line per failed group "
        .. "with why, the time taken, and with --failed-file the command that retries" },
      { "json", "the report: {ok, applied: {add, remove}, failed: [{add, remove, err}], leases, "
        .. "already_on_target, not_on_target, moved: [{uuid, number, from: {kind, uuid, name}}]}" },
      { "jsonl", "a line per uuid: an object with the csv columns as keys (null when empty)" },
      { "csv", "a header line, then a line per uuid: " .. REPORT_COLUMNS_TEXT .. "; action is add or remove, "
        .. "result applied, failed, not_applied or unchanged (already on CONN, or not on it: error_message says "
        .. "which), and the error_ columns say why it failed (error_message of a lease moved here: where from)" },
      { "tsv", TSV_TEXT },
    },
    exit = {
      { 0, "every lease was attached or detached" },
      { 1, "the API refused or failed some (the report and --failed-file name them), or a number or uuid to add has no "
        .. "lease in the account" },
      { 2, USAGE_EXIT .. ", bad lines in a file (each named), a lease given twice, nothing to assign, a lease "
        .. "to add held by another SIP connection or app without --move (nothing sent), or a request the API "
        .. "found invalid with nothing applied" },
      { 130, INTERRUPTED_EXIT .. ": requests in flight are cancelled, and the report and --failed-file still say "
        .. "what was applied" },
    },
    examples = { "opentact assign " .. EXAMPLE_CONN .. " \\\n    --add +1 212 555 0004 --remove 12125550001",
      "opentact assign " .. EXAMPLE_CONN .. " --add +1 212 555 0005 --move",
      "opentact assign " .. EXAMPLE_CONN .. " \\\n    --add-file leases.csv --failed-file failed.txt --format csv" },
  },
  {
    name = "sync", args = { "CONN", "--numbers-file FILE | --leases-file FILE | --all-leases" },
    required = { "--numbers-file", "--leases-file", "--all-leases" },
    summary = "make the connection hold the leases of the numbers in FILE: prints the plan (+ attach, - detach, "
      .. "! held elsewhere, ? not in the account), applies it, and reads the connection back to check it",
    text = { "Make the SIP connection CONN hold the leases of the phone numbers in FILE (--numbers-file), of the "
      .. "lease uuids in FILE (--leases-file) or every lease of the account (--all-leases): print the plan "
      .. "(+ attach, - detach, ! held elsewhere, ? not in the account), apply it unless --dry-run, and read the "
      .. "connection back to check it. Running the same sync again plans from what the connection holds then, "
      .. "and finishes the job." },
    options = { "--numbers-file", "--leases-file", "--all-leases", "--exact", "--move", "--dry-run", "--batch-size",
      "--concurrency", "--failed-file", "--skip-invalid", "--format", "--json", "--url" },
    output = {
      { "table", "the plan, a line per change, its counts, what was applied and what failed, and ok or not ok" },
      { "json", "the report: {ok, dry_run, connection, add, remove, keep, conflicts, missing, applied, failed, "
        .. "unexpected, released, interrupted, unverified}, each lease as {uuid, number, sip_connection, "
        .. "sip_control_app}; unexpected: with --exact, the uuids the read-back shows on the connection that "
        .. "were not asked for" },
      { "jsonl", "a line per lease of the plan: an object with the csv columns as keys (null when empty)" },
      { "csv", "a header line, then a line per lease of the plan: " .. REPORT_COLUMNS_TEXT .. "; action is add, "
        .. "remove, keep or none; result is applied, failed, planned (a dry run), unchanged (keep), conflict (held "
        .. "elsewhere: --move takes it), missing (not in the account), not_applied (stopped first) or unexpected "
        .. "(action none: with --exact, on the connection at the read-back and not asked for)" },
      { "tsv", TSV_TEXT },
    },
    exit = {
      { 0, "the connection holds what was asked, with --exact nothing else (a dry run: nothing blocks the plan)" },
      { 1, "conflicts, missing numbers, something the API refused or failed, a connection that could not be "
        .. "read back, or with --exact leases on it that were not asked for (attached meanwhile: listed)" },
      { 2, USAGE_EXIT .. ", a bad line in FILE, an empty FILE with --exact, or --exact when none of FILE's "
        .. "leases is in the account and the connection holds some, or when a number in FILE that is not in the "
        .. "account is the end of a number it would detach (given without its country code: refused, --dry-run "
        .. "too: nothing is changed)" },
      { 130, INTERRUPTED_EXIT .. ": requests in flight are cancelled, and the report and --failed-file still say "
        .. "what was applied" },
    },
    examples = { "opentact sync " .. EXAMPLE_CONN .. " \\\n    --numbers-file numbers.txt --exact --dry-run",
      "opentact sync " .. EXAMPLE_CONN .. " --all-leases --move" },
  },
  {
    name = "login", args = {},
    summary = "log in with email and password (asked for on a terminal, or OPENTACT_PASSWORD) and keep the token "
      .. "for the commands that follow, in ~/.config/opentact/token (readable by you only)",
    text = { "Log in with email and password and keep the token for the commands that follow, in "
      .. "$XDG_CONFIG_HOME/opentact/token (~/.config/opentact/token), readable by you only. The password is "
      .. "asked for without echo on a terminal, else read from OPENTACT_PASSWORD; it is never an argument.",
      "The file is made readable by you only from its first byte on, whatever the umask, and replaced whole: "
        .. "a new file renamed into place, so logins at once each leave a whole token. The token's expiry is "
        .. "shown when it is a date (an unknown time otherwise); once less than a minute of it is left, commands "
        .. "refuse it (exit 1) until you log in again, or log in themselves with OPENTACT_EMAIL and "
        .. "OPENTACT_PASSWORD." },
    options = { "--email", "--url" },
    exit = {
      { 0, "logged in; the token is kept" },
      { 1, "the API refused the login or failed, or the token could not be kept" },
      { 2, USAGE_EXIT .. ", no email, or no password off a terminal" },
      { 130, INTERRUPTED_EXIT },
    },
    examples = { "opentact login --email me@example.com" },
  },
  {
    name = "token", args = {},
    summary = "print a valid token on standard output, for curl and other tools",
    text = { "Print a valid token on standard output, and nothing else: OPENTACT_TOKEN, a fresh login with "
      .. "OPENTACT_EMAIL and OPENTACT_PASSWORD, or the token 'opentact login' kept." },
    options = { "--url" },
    exit = {
      { 0, "the token was printed" },
      { 1, "no token could be had: the API refused the login or failed, or the kept token has less than a "
        .. "minute left" },
      { 2, USAGE_EXIT .. ", or no credentials" },
      { 130, INTERRUPTED_EXIT },
    },
    examples = { "curl -H \"X-Auth-Token: $(opentact token)\" \\\n"
      .. "    https://api.opentact.org/rest/sip/connection/" .. EXAMPLE_CONN .. "/tnlease" },
  },
  {
    name = "help", args = { "[COMMAND]" },
    summary = "print this help, or a command's (the same as opentact COMMAND --help)",
    text = { "Print the help, or a command's help: its usage, options, output and exit status." },
    options = {},
    exit = {
      { 0, "the help was printed" },
      { 2, "an unknown command" },
    },
  },
}
local COMMAND = {}
for _, c in ipairs(COMMAND_LIST) do COMMAND[c.name] = c end

M.HELP = {
  name = "opentact",
  summary = "attach Opentact TN leases to SIP connections, from the command line",
  text = {
    "Attach TN leases to an Opentact SIP connection, detach them, list what a connection holds, find the lease "
      .. "of a phone number, and bring a connection to a desired set of numbers.",
  },
  leases = {
    "Leases (LEASE, and the lines of FILE) are lease uuids or phone numbers in any form: 12125550004, "
      .. "+1 (212) 555-0004, or in pieces after --add: --add +1 212 555 0004. A number is looked up to find its "
      .. "lease.",
  },
  output = {
    "The commands that print data (list, find, assign, sync) take --format table, json, jsonl, csv or tsv; --json "
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
  },
  environment_text = {
    "Without OPENTACT_TOKEN or OPENTACT_EMAIL and OPENTACT_PASSWORD, commands use the token 'opentact login' "
      .. "kept; one with less than a minute left is an auth error (exit 1): log in again, or set OPENTACT_EMAIL "
      .. "and OPENTACT_PASSWORD, and each command logs in itself (the kept token is left as it is).",
  },
  files = {
    { "$XDG_CONFIG_HOME/opentact/token", "the token 'opentact login' keeps (~/.config/opentact/token when "
      .. "XDG_CONFIG_HOME is not set), readable by you only from its first byte on and replaced whole at each "
      .. "login" },
  },
  exit = {
    { 0, "success: printed, or everything applied (sync: the connection holds what FILE asks; a dry run: "
      .. "nothing blocks the plan)" },
    { 1, "the API refused or failed something (find: no lease matches; sync: conflicts or missing numbers), or "
      .. "standard output could not be written" },
    { 2, "a usage error" },
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
    definitions(list, 12, out)
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

---------------------------------------------------------------- JSON out

-- A JSON encoder for output: what the server sent as an object stays an
-- object even when empty (the library gives decoded empty objects the
-- metatable opentact.Object; a lease is an object), every other empty
-- table is an array, integers print as integers on every Lua, keys are
-- sorted so output is stable.
local function is_array(t)
  local mt = getmetatable(t)
  if mt ~= nil and (mt == opentact.Object or mt == pretty.Lease) then return false end
  local n = #t
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k > n or floor(k) ~= k then return false end
  end
  return true
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
  ["\r"] = "\\r", ["\t"] = "\\t" }

-- JSON's null, for keys that must be there when empty (jsonl rows).
local NULL = setmetatable({}, { __name = "opentact.cli.null" })
M.NULL = NULL

local function encode(v, out)
  local t = type(v)
  if v == NULL then
    out[#out + 1] = "null"
  elseif t == "string" then
    -- bidirectional and other invisible marks as \u escapes too: the
    -- same string to a JSON reader, never raw on a terminal
    out[#out + 1] = '"' .. pretty.marks((v:gsub('[%c"\\]', function(c)
      return ESCAPES[c] or format("\\u%04x", c:byte())
    end)), "\\u%04x") .. '"'
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

-- A line or argument as it is shown in a message: escaped (never a
-- control character on a terminal), and cut when long.
local SHOWN = 60
local function excerpt(text)
  if #text > SHOWN then text = text:sub(1, SHOWN) .. "..." end
  return pretty.safe(text)
end

-- How many problems a message names; the rest are counted.
local LISTED = 20

-- Problems as one message: the one alone, else "N <what>:" and the first
-- LISTED, one a line, then how many more there are.
local function problem_list(problems, what)
  if #problems == 1 then return problems[1] end
  local out = { format("%d %s:", #problems, what) }
  for i = 1, math.min(#problems, LISTED) do out[#out + 1] = "  " .. problems[i] end
  if #problems > LISTED then out[#out + 1] = format("  ... and %d more", #problems - LISTED) end
  return concat(out, "\n")
end

-- Reads leases (uuids or phone numbers) from a file (or standard input
-- for "-"): returns the list, or nil and a message when the file cannot
-- be read. Every line that names no lease is added to `problems` as
-- "file:line: why: the line" (the caller refuses, or skips them with
-- --skip-invalid), its line number in `at` (optional). Each lease comes
-- with where it was read, in `where` (and its line number in at.leases),
-- and the field it was read from, in `texts`.
local function read_leases(path, stdin, problems, where, texts, at)
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
      end
    end
  end)
  if f ~= (stdin or io.stdin) then f:close() end
  if not ok then return nil, format("cannot read %s: %s", name, tostring(failure):gsub("^[^:]*:%d+: ", "")) end
  return out
end

---------------------------------------------------------------- arguments

-- A usage error: the message and where to look on standard error, and
-- under --format json or jsonl the error as JSON on standard output.
local function usage_error(ctx, msg)
  ctx.stderr:write("opentact: ", msg, "\nTry 'opentact ", ctx.command and ctx.command .. " " or "", "--help'.\n")
  if ctx.json_errors then ctx.stdout:write(M.json({ ok = false, error = { kind = "usage", message = msg } }), "\n") end
  return 2
end

-- Options that take values; --add and --remove take one or more.
local TAKES = { ["--add-file"] = true, ["--remove-file"] = true, ["--batch-size"] = true,
  ["--concurrency"] = true, ["--failed-file"] = true, ["--url"] = true, ["--numbers-file"] = true,
  ["--leases-file"] = true, ["--email"] = true, ["--format"] = true }

-- Options without a value, and the field each sets.
local FLAGS = { ["--json"] = "json", ["--skip-invalid"] = "skip_invalid", ["--exact"] = "exact",
  ["--move"] = "move", ["--dry-run"] = "dry_run", ["--all-leases"] = "all_leases", ["--all"] = "all" }

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

-- "unknown command 'x'", and the command meant when it looks like a typo.
local function unknown_command(word)
  local names = {}
  for i, c in ipairs(COMMAND_LIST) do names[i] = c.name end
  local meant = closest(word, names)
  return "unknown command '" .. pretty.safe(word) .. "'" .. (meant and ": did you mean '" .. meant .. "'?" or "")
end

-- "unknown option --x", and the option meant when it looks like a typo:
-- among the options of `command` when it is one, else among all.
local function unknown_option(arg, command)
  local names = { "--help", "--version" }
  if COMMAND[command] then
    for _, name in ipairs(COMMAND[command].options) do names[#names + 1] = name end
  else
    for _, opt in ipairs(OPTIONS) do names[#names + 1] = opt.name end
  end
  local meant = closest(arg:match("^[^=]*"), names)
  return "unknown option " .. pretty.safe(arg) .. (meant and ": did you mean " .. meant .. "?" or "")
end

local function parse(argv, command)
  local o = { add = {}, remove = {}, add_files = {}, remove_files = {}, positional = {}, seen = {} }
  -- --name=value is --name value
  local args = {}
  for _, a in ipairs(argv) do
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
    if a == "--add" or a == "--remove" then
      local list = a == "--add" and o.add or o.remove
      local start = #list
      i = i + 1
      while args[i] and not args[i]:find("^%-%-") do
        local v = args[i]
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
      return nil, unknown_option(a, command)
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

-- Each option given is one the command takes: nil, or why not.
local function check_options(command, o)
  local takes = { ["--help"] = true, ["-h"] = true, ["--version"] = true }
  for _, name in ipairs(COMMAND[command].options) do takes[name] = true end
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

---------------------------------------------------------------- progress

local plural = pretty.plural

local function progress_bar(ctx)
  local started = core.now()
  return function(done, total)
    local elapsed = core.now() - started
    local rate = elapsed > 0 and done / elapsed or 0
    local eta = rate > 0 and (total - done) / rate or 0
    local width = 30
    local filled = total > 0 and floor(width * done / total) or width
    ctx.stderr:write(format("\r[%s%s] %d/%d %s  %3d%%  %.0f/s  ETA %.1fs ",
      ("#"):rep(filled), ("-"):rep(width - filled), done, total, total == 1 and "uuid" or "uuids",
      total > 0 and floor(100 * done / total) or 100, rate, eta))
    if done >= total then ctx.stderr:write("\n") end
  end
end

---------------------------------------------------------------- output

-- Whether standard output is a terminal: as ctx says, else asked once
-- (only of the process's own standard output).
local function stdout_terminal(ctx)
  if ctx.stdout_terminal == nil then
    local t = false
    if ctx.stdout_file == io.stdout then
      local status = os.execute("test -t 1")
      t = status == true or status == 0
    end
    ctx.stdout_terminal = t
  end
  return ctx.stdout_terminal
end

-- An error's fields for JSON: never more than these (no headers, no body).
local ERROR_FIELDS = { "kind", "status", "message", "retryable", "attempts", "method", "path", "retry_after" }

local function error_json(e)
  local out = {}
  for _, k in ipairs(ERROR_FIELDS) do out[k] = e[k] end
  return out
end

-- An error that ends a command: its line on standard error (`text`, else
-- the error's own) and, under --format json or jsonl, {"ok": false,
-- "error": {...}} on standard output. Returns the exit status: `status`,
-- else 2 for what the library found invalid (nothing was sent), else 1.
local function fail(ctx, err, text, status)
  ctx.stderr:write(text or tostring(err), "\n")
  if ctx.json_errors then ctx.stdout:write(M.json({ ok = false, error = error_json(err) }), "\n") end
  return status or (err.kind == "invalid" and 2 or 1)
end

-- Ends a command that could not make its client: an auth error (a kept
-- token that expired) exits 1, anything else is a usage error.
local function no_client(ctx, why)
  if type(why) == "table" then return fail(ctx, why, "opentact: " .. why.kind .. ": " .. why.message, 1) end
  return usage_error(ctx, why)
end

-- A value as a csv or tsv field's text: "" for nothing, true and false,
-- whole numbers without exponent or fraction.
local function field_text(v)
  if v == nil or v == NULL then return "" end
  if type(v) == "number" and floor(v) == v and v > -2 ^ 63 and v < 2 ^ 63 then return format("%.0f", v) end
  return tostring(v)
end

-- A text cell a spreadsheet would take for a formula (OWASP's CSV
-- injection advice: =, +, -, @, tab, carriage return first) begins with a
-- ', so that it stays text. Only strings: a number or a boolean is written
-- here as digits with at most a leading minus, or true or false, which no
-- spreadsheet runs, and a ' would turn -5 into text.
local function formula_safe(v, s)
  if type(v) == "string" and s:find("^[=+%-@\t\r]") then return "'" .. s end
  return s
end

-- Control characters other than tab, newline and carriage return are
-- shown as \ddd, bidirectional and other invisible marks as \u{XXXX}, as
-- in tables (pretty.safe): never sent to a terminal.
local function controls(s)
  return pretty.safe(s, true)
end

-- RFC 4180: a field with a comma, a quote, a line break or edge spaces
-- goes in quotes, its quotes doubled.
local function csv_field(v)
  local s = controls(formula_safe(v, field_text(v)))
  if s:find('[",\r\n]') or s:find("^%s") or s:find("%s$") then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end

local TSV_ESCAPES = { ["\t"] = "\\t", ["\n"] = "\\n", ["\r"] = "\\r", ["\\"] = "\\\\" }

local function tsv_field(v)
  return controls((formula_safe(v, field_text(v)):gsub("[\t\n\r\\]", TSV_ESCAPES)))
end

-- Rows (lists of values in `columns` order) in `fmt`: jsonl (an object a
-- line, null for nothing), csv or tsv (a header line first).
local function write_rows(ctx, fmt, columns, rows)
  local out = {}
  if fmt == "jsonl" then
    for i, r in ipairs(rows) do
      local obj = {}
      for c, name in ipairs(columns) do
        local v = r[c]
        if v == nil then v = NULL end
        obj[name] = v
      end
      out[i] = M.json(obj)
    end
  else
    local field, sep = csv_field, ","
    if fmt == "tsv" then field, sep = tsv_field, "\t" end
    local function line(r)
      local cells = {}
      for c = 1, #columns do cells[c] = field(r[c]) end
      return concat(cells, sep)
    end
    out[1] = line(columns)
    for _, r in ipairs(rows) do out[#out + 1] = line(r) end
  end
  if #out > 0 then ctx.stdout:write(concat(out, "\n"), "\n") end
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

local function number_text(n)
  return type(n) == "number" and format("%.0f", n) or n ~= nil and pretty.safe(tostring(n)) or "-"
end

local function yes_no(v)
  if v == nil then return "-" end
  return v and "yes" or "no"
end

-- Rows of text as an aligned table under a header, after the count of
-- leases. On a terminal the table stops after ROWS rows, unless --all.
local function lease_table(ctx, o, header, rows)
  local n, shown = #rows, #rows
  if n > ROWS and not o.all and stdout_terminal(ctx) then shown = ROWS end
  local widths = {}
  for c, v in ipairs(header) do widths[c] = #v end
  for i = 1, shown do
    for c, v in ipairs(rows[i]) do
      if #v > widths[c] then widths[c] = #v end
    end
  end
  local function render(r)
    local cells = {}
    for c, v in ipairs(r) do cells[c] = v .. (" "):rep(widths[c] - #v) end
    return (("  " .. concat(cells, "  ")):gsub("%s+$", ""))
  end
  local out = { n == 1 and "1 lease" or n .. " leases" }
  if n > 0 then
    out[2] = render(header)
    for i = 1, shown do out[#out + 1] = render(rows[i]) end
    if shown < n then out[#out + 1] = format("  ... and %d more (--all prints every one)", n - shown) end
  end
  return concat(out, "\n")
end

-- The columns of a lease in csv and tsv.
local LEASE_COLUMNS = { "uuid", "number", "expires", "autorenew", "sip_connection", "sip_control_app" }

-- Leases as `fmt` asks: json (the payload), jsonl (a lease a line), csv
-- or tsv (LEASE_COLUMNS), or a table made by `table_rows` (header, rows).
local function write_leases(ctx, o, leases, table_rows)
  local fmt = o.format
  if fmt == "json" then
    ctx.stdout:write(M.json(setmetatable(leases, nil)), "\n")
  elseif fmt == "jsonl" then
    local out = {}
    for i, l in ipairs(leases) do out[i] = M.json(l) end
    if #out > 0 then ctx.stdout:write(concat(out, "\n"), "\n") end
  elseif fmt == "table" then
    ctx.stdout:write(lease_table(ctx, o, table_rows(leases)), "\n")
  else
    local rows = {}
    for i, l in ipairs(leases) do
      if type(l) == "table" then
        local b = brief(l)
        rows[i] = { b.uuid, b.number, l.expired_on, l.autorenew, b.sip_connection, b.sip_control_app }
      else
        rows[i] = { tostring(l) }
      end
    end
    write_rows(ctx, fmt, LEASE_COLUMNS, rows)
  end
end

-- The columns of a report's rows: one per uuid, with its outcome.
local REPORT_COLUMNS = { "uuid", "number", "action", "result", "error_kind", "error_status", "error_message" }

local function outcome(uuid, number, action, result, err, message)
  return { uuid, number, action, result, err and err.kind, err and err.status, message or err and err.message }
end

-- What a report says of each uuid: "add:<uuid>" -> the error it failed
-- with, or true when applied.
local function outcomes(report)
  local out = {}
  for _, kind in ipairs({ "add", "remove" }) do
    for _, u in ipairs(report.applied[kind]) do out[kind .. ":" .. lower(u)] = true end
  end
  for _, f in ipairs(report.failed) do
    for _, kind in ipairs({ "add", "remove" }) do
      for _, u in ipairs(f[kind]) do out[kind .. ":" .. lower(u)] = f.err end
    end
  end
  return out
end

-- The rows of uuids the report names that `rows` does not have yet.
local function other_outcomes(report, done, rows)
  for _, f in ipairs(report.failed) do
    for _, kind in ipairs({ "add", "remove" }) do
      for _, u in ipairs(f[kind]) do
        if not done[kind .. ":" .. lower(u)] then
          done[kind .. ":" .. lower(u)] = true
          rows[#rows + 1] = outcome(u, nil, kind, "failed", f.err)
        end
      end
    end
  end
  return rows
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

-- The last second shown as a date: 9999-12-31 23:59:59Z.
local DATE_MAX = 253402300799

-- Whether `t` (a JWT's exp, as a server sent it) is a time that can be
-- shown as a date: a number from 1970 to 9999.
local function known_time(t)
  return type(t) == "number" and t >= 0 and t <= DATE_MAX
end

-- A time from a server as "2026-12-07 14:21:01Z", or "an unknown time"
-- for one that is no date (out of range, not finite, not a number). Every
-- time the command line shows goes through here: none is a crash.
local function utc_time(t)
  if not known_time(t) then return "an unknown time" end
  local ok, s = pcall(os.date, "!%Y-%m-%d %H:%M:%SZ", floor(t))
  return ok and type(s) == "string" and s or "an unknown time"
end

-- The token `opentact login` saved: the token, or nil and why not (a
-- message for a usage error, or an auth error for a token that expired).
local function saved_token(ctx, url)
  local path = token_file(ctx)
  local f = path and io.open(path, "rb")
  if not f then return nil end
  local saved_url, token = f:read("*l"), f:read("*l")
  f:close()
  if not token or token == "" then return nil end
  -- a token is for the server it came from, never sent to another
  if saved_url ~= url then
    return nil, ("the token saved by 'opentact login' is for %s, not %s: run 'opentact login' for this one, "
      .. "or set OPENTACT_TOKEN"):format(pretty.safe(saved_url or "?"), pretty.safe(url))
  end
  -- an expiry that is no time is the server's to judge: the token is sent
  local exp = core.jwt_claims(token)
  if known_time(exp) and exp - core.time() < 60 then
    -- not a usage error: the credentials are there, and too old
    return nil, { kind = "auth", message = ("the token saved by 'opentact login' expire%s at %s: run 'opentact "
      .. "login' again, or set OPENTACT_EMAIL and OPENTACT_PASSWORD to log in on every command")
      :format(exp <= core.time() and "d" or "s", utc_time(exp)) }
  end
  return token
end

-- The base URL a client gets from `url` (nil: the default), as it keeps it.
local function effective_url(url)
  return ((url or require("opentact.options").DEFAULT_URL):gsub("/+$", ""))
end

local NO_CREDENTIALS = "set OPENTACT_TOKEN to your API token, or OPENTACT_EMAIL and OPENTACT_PASSWORD "
  .. "to log in, or run 'opentact login'"

-- The options that authenticate: OPENTACT_TOKEN, else OPENTACT_EMAIL and
-- OPENTACT_PASSWORD, else what `opentact login` saved. Nil and why when
-- none is there.
local function credentials(ctx, url)
  local token = ctx.getenv("OPENTACT_TOKEN")
  if token and token ~= "" then return { token = token } end
  local email, password = ctx.getenv("OPENTACT_EMAIL"), ctx.getenv("OPENTACT_PASSWORD")
  if email and email ~= "" and password and password ~= "" then return { email = email, password = password } end
  local saved, why = saved_token(ctx, url)
  if saved then return { token = saved } end
  return nil, why or NO_CREDENTIALS
end

-- The flags and variables behind the library's options, for messages.
local OPTION_WORDS = { token = "OPENTACT_TOKEN", email = "--email (or OPENTACT_EMAIL)",
  password = "OPENTACT_PASSWORD" }

-- A client for the command, or nil and a usage message. `creds`: the
-- options that authenticate, when the command has them already.
local function client_for(ctx, o, creds)
  local why
  local url, from = o.url, "--url"
  if url == nil then
    url, from = ctx.getenv("OPENTACT_URL"), "OPENTACT_URL"
    if url == "" then url = nil end
  end
  if not creds then
    creds, why = credentials(ctx, effective_url(url))
    if not creds then return nil, why end
  end
  creds.base_url = url
  local ok, client = pcall(opentact.new, creds)
  if not ok then
    -- library wording is about options of opentact.new; the user gave
    -- flags and variables. A secret's value is never shown.
    local msg = tostring(client):gsub("^[^:]*:%d+: ", "")
    local name, expected = msg:match("^bad option '([%w_]+)' to '[^']*' %((.*) expected, got %w+%)$")
    if name == "base_url" then
      -- never the value: a malformed URL may hold a password
      msg = format("%s is not %s", from, expected)
    elseif name then
      msg = format("%s is not %s", OPTION_WORDS[name] or name, expected)
    else
      msg = msg:gsub("^bad argument #%d+ to '[^']*' %((.*)%)$", "%1"):gsub("^'[^']*': ", "")
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
  local client_url = client:base_url()
  client:close()
  if not token then return fail(ctx, err, nil, 1) end
  local path = token_file(ctx)
  if not path then return usage_error(ctx, "set HOME (or XDG_CONFIG_HOME): the token is kept under it") end
  local dir = path:gsub("/token$", "")
  local function quoted(x) return "'" .. x:gsub("'", "'\\''") .. "'" end
  os.execute(("umask 077 && mkdir -p %s 2> /dev/null"):format(quoted(dir)))
  -- the server it is for, then the token; readable by this user only from
  -- the first byte on, whatever the umask, and always whole: a new file
  -- renamed into place (logins at once each put a whole one)
  local ok, werr = core.write_private(path, client_url .. "\n" .. token .. "\n")
  if not ok then
    ctx.stderr:write("opentact: logged in, but cannot keep the token: ", werr, "\n")
    return 1
  end
  ctx.stdout:write(("Logged in as %s. The token is kept in %s, valid until %s.\n"):format(pretty.safe(email), path,
    utc_time((core.jwt_claims(token)))))
  return 0
end

-- opentact token: a valid token on standard output, and nothing else.
local function cmd_token(ctx, o)
  if #o.positional ~= 1 then return usage_error(ctx, "token takes no arguments") end
  local client, why = client_for(ctx, o)
  if not client then return no_client(ctx, why) end
  local token, err = client:token()
  client:close()
  if not token then return fail(ctx, err, nil, 1) end
  ctx.stdout:write(token, "\n")
  return 0
end

local function cmd_list(ctx, o)
  if #o.positional ~= 2 then return usage_error(ctx, "list takes one connection uuid") end
  local client, why = client_for(ctx, o)
  if not client then return no_client(ctx, why) end
  local leases, err = client:list(o.positional[2])
  client:close()
  if not leases then return fail(ctx, err) end
  write_leases(ctx, o, leases, function(list)
    local rows = {}
    for i, l in ipairs(list) do rows[i] = pretty.row(l) end
    return pretty.COLUMNS, rows
  end)
  return 0
end

-- Writes the failed uuids of `kind`, each group under a comment saying why
-- (comments are skipped when the file is read back).
-- A write or the close that failed (a full disk) is an error: the caller
-- must not say the uuids are there.
local function write_failed(path, failed, kind)
  local f, err = io.open(path, "wb")
  if not f then return nil, err end
  local ok, werr = true, nil
  local function put(...)
    local done, why = f:write(...)
    if ok and not done then ok, werr = false, why end
  end
  for _, group in ipairs(failed) do
    if #group[kind] > 0 then
      put("# ", (tostring(group.err):gsub("[%c]", " ")), "\n")
      for _, u in ipairs(group[kind]) do put(u, "\n") end
    end
  end
  local closed, cerr = f:close()
  if ok and not closed then ok, werr = false, cerr end
  if not ok then return nil, path .. ": " .. tostring(werr) end
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
-- Returns the sources ({kind = {where...}}), or nil, message. Every bad
-- argument and line is named in one message (the first LISTED of them),
-- or added to `skipped` (--skip-invalid).
local function gather(ctx, o, kinds, skipped)
  local sources, bad_args, bad_lines = {}, {}, {}
  for _, kind in ipairs({ "add", "remove" }) do
    local spec = kinds[kind]
    if spec then
      local list, from = {}, {}
      for _, v in ipairs(spec[2]) do
        local lease, why = lease_arg(v)
        if lease then
          list[#list + 1] = lease
          from[#list] = "--" .. kind
        else
          bad_args[#bad_args + 1] = "--" .. kind .. ": " .. why
        end
      end
      for _, path in ipairs(spec[1]) do
        local where = {}
        local got, err = read_leases(path, ctx.stdin, bad_lines, where)
        if not got then return nil, err end
        for k, lease in ipairs(got) do
          list[#list + 1] = lease
          from[#list] = where[k]
        end
      end
      o[kind], sources[kind] = list, from
    end
  end
  local problems = bad_args
  for _, p in ipairs(bad_lines) do problems[#problems + 1] = p end
  if #problems > 0 and not skipped then
    return nil, problem_list(problems, #bad_lines == 0 and "bad arguments"
      or #bad_args == 0 and "bad lines" or "bad arguments and lines")
  end
  for _, p in ipairs(problems) do skipped[#skipped + 1] = p end
  return sources
end

-- Who holds a lease through `field`: {kind = "connection" | "app", uuid,
-- name (when the server sent one)}, or nil.
local function holder_in(lease, field)
  local h, name = lease[field], nil
  if type(h) == "table" then h, name = h.uuid, h.name end
  if type(h) ~= "string" or h == "" then return nil end
  return { kind = field == "sip_control_app" and "app" or "connection", uuid = h,
    name = type(name) == "string" and name ~= "" and name or nil }
end

-- A holder as messages name it: SIP connection NAME (UUID).
local function holder_text(h)
  return format("%s %s(%s)", h.kind == "app" and "SIP control app" or "SIP connection",
    h.name and pretty.safe(h.name) .. " " or "", pretty.safe(h.uuid))
end

-- A lease as messages name it: its number (when known), then its uuid.
local function lease_text(uuid, number)
  if uuid == nil then return number_text(number) end
  return (number ~= nil and number_text(number) .. " " or "") .. pretty.safe(uuid)
end

-- Finds, before anything is sent, the lease of every number and of every
-- uuid to add (one lookup each, which says who holds it) and, when there
-- are removes, what CONN holds. Numbers to add become the uuids of their
-- leases; a number or uuid to add that the account has no lease for goes
-- to `missing` (a lookup that missed a lease held elsewhere must not let
-- the attach move it); numbers to remove become the uuids of CONN's
-- leases that hold them. Sets o.numbers (lower-case uuid -> number),
-- o.leases (lower-case uuid -> the lease looked up), o.holding (lower-case
-- uuid -> true for what CONN holds, nil when there are no removes and no
-- lookup says CONN holds a lease) and o.not_on
-- ({given, where}: numbers to remove that CONN has no lease for).
-- Returns true, or nil, err for a read that failed.
local function resolve(client, o, sources, missing)
  o.numbers, o.leases, o.not_on = {}, {}, {}
  local keys, seen = {}, {}
  for _, x in ipairs(o.add) do
    local key = type(x) == "string" and lower(x) or x
    if not seen[key] then
      seen[key] = true
      keys[#keys + 1] = key
    end
  end
  local found = {}
  if #keys > 0 then
    local looked_up, err = client:lookup(keys, { concurrency = 16 })
    if not looked_up then return nil, err end
    found = looked_up
  end
  -- what CONN holds is read for removes, and to prove what a lookup says
  -- is on CONN already (an index may be stale)
  local conn, claimed = lower(o.positional[2]), false
  for _, lease in pairs(found) do
    local h = holder_in(lease, "sip_connection")
    if h and lower(h.uuid) == conn then claimed = true end
  end
  local by_number = {}
  if #o.remove > 0 or claimed then
    local held, err = client:list(o.positional[2])
    if not held then return nil, err end
    o.holding = {}
    for _, l in ipairs(held) do
      if type(l) == "table" and type(l.uuid) == "string" then
        o.holding[lower(l.uuid)] = true
        local tn = type(l.tn) == "table" and tonumber(l.tn.tn) or nil
        if tn then
          by_number[tn] = l.uuid
          o.numbers[lower(l.uuid)] = tn
        end
      end
    end
  end
  for _, kind in ipairs({ "add", "remove" }) do
    local kept, kept_sources = {}, {}
    for k, x in ipairs(o[kind]) do
      local where, uuid = sources[kind][k], x
      if kind == "add" then
        local lease = found[type(x) == "string" and lower(x) or x]
        if lease then
          uuid = type(x) == "string" and x or lease.uuid
          o.leases[lower(uuid)] = lease
          if type(lease.tn) == "table" and tonumber(lease.tn.tn) then o.numbers[lower(uuid)] = tonumber(lease.tn.tn) end
        else
          -- a lease not found cannot be shown to be free: never sent
          missing[#missing + 1] = type(x) == "number"
            and format("%s: no lease of the account holds the number %s", where, number_text(x))
            or format("%s: the account has no lease %s", where, pretty.safe(x))
          uuid = nil
        end
      elseif type(x) == "number" then
        uuid = by_number[x]
        if not uuid then o.not_on[#o.not_on + 1] = { given = number_text(x), where = where } end
      end
      if uuid then
        kept[#kept + 1] = uuid
        kept_sources[#kept] = where
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
  return ok
end

-- What assign found it need not send, and what it moved: for every
-- format. `kept` {uuid, number} already on CONN, `not_on` {given} not on it,
-- `moved` {uuid, number, holder} taken from another holder.
local function assign_notes(ctx, o, kept, not_on, moved)
  local target = pretty.safe(o.positional[2])
  local out = {}
  for _, x in ipairs(kept) do out[#out + 1] = format("already on %s: %s", target, lease_text(x.uuid, x.number)) end
  for _, x in ipairs(not_on) do out[#out + 1] = format("not on %s: %s", target, x.given) end
  for _, x in ipairs(moved) do
    out[#out + 1] = format("moved %s from %s", lease_text(x.uuid, x.number), holder_text(x.holder))
  end
  if #out > 0 then ctx.stdout:write(concat(out, "\n"), "\n") end
end

local function cmd_assign(ctx, o)
  if #o.positional ~= 2 then return usage_error(ctx, "assign takes one connection uuid") end
  local target = o.positional[2]
  local skipped = o.skip_invalid and {} or nil
  local batch_size, concurrency, opt_err = sizes(o)
  if not batch_size then return usage_error(ctx, opt_err) end
  local sources, gather_err = gather(ctx, o, { add = { o.add_files, o.add }, remove = { o.remove_files, o.remove } },
    skipped)
  if not sources then return usage_error(ctx, gather_err) end
  if #o.add + #o.remove == 0 and #(skipped or {}) == 0 then
    return usage_error(ctx, "nothing to assign: give --add, --remove or a file")
  end
  if not target:find(UUID) then
    -- before any lookup: nothing is read for a connection there cannot be
    return usage_error(ctx, format("'%s' is not a SIP connection uuid (8-4-4-4-12 hex digits)", excerpt(target)))
  end
  local client, why = client_for(ctx, o)
  if not client then return no_client(ctx, why) end
  -- numbers become the uuids of their leases, and every lease to add is
  -- looked up to know who holds it; a number the account does not have
  -- is named (an error, or left out with --skip-invalid)
  local missing = {}
  local resolved, lookup_err = resolve(client, o, sources, missing)
  if not resolved then
    client:close()
    return fail(ctx, lookup_err, nil, 1)
  end
  if #missing > 0 and not skipped then
    client:close()
    local msg = problem_list(missing, "leases not in the account") .. (#missing > 1 and "\n" or "; ")
      .. "--skip-invalid leaves such lines out"
    return fail(ctx, { kind = "not_found", message = msg, retryable = false }, "opentact: " .. msg, 1)
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
    return usage_error(ctx, problem_list(problems, "leases given twice") .. (#problems > 1 and "\n" or "; ")
      .. "--skip-invalid leaves such lines out")
  end
  for _, p in ipairs(problems) do skipped[#skipped + 1] = p end
  for _, w in ipairs(skipped or {}) do ctx.stderr:write("opentact: skipped ", w, "\n") end
  if #o.add + #o.remove + #o.not_on == 0 then
    client:close()
    return usage_error(ctx, "nothing to assign: give --add, --remove or a file")
  end
  -- what CONN holds already is not sent, nor a remove of what it does not
  -- hold; a lease another connection or an app holds is taken with
  -- --move only, and refused, nothing sent, without it
  local conn = lower(target)
  local kept, not_on, held, by_app, unproven = {}, {}, {}, {}, {}
  local adds, removes = {}, {}
  for k, u in ipairs(o.add) do
    local lease = o.leases[lower(u)]
    local h = lease and (holder_in(lease, "sip_control_app") or holder_in(lease, "sip_connection"))
    local x = { uuid = u, number = o.numbers[lower(u)], holder = h, where = sources.add[k] }
    if h and h.kind == "connection" and lower(h.uuid) == conn then
      -- already on CONN when CONN's own list says so; else its holder is
      -- not known, and nothing is sent for it
      if o.holding[lower(u)] then kept[#kept + 1] = x else unproven[#unproven + 1] = u end
    else
      if h then held[#held + 1] = x end
      if h and h.kind == "app" then by_app[#by_app + 1] = u else adds[#adds + 1] = u end
    end
  end
  for _, u in ipairs(o.remove) do
    if o.holding[lower(u)] then removes[#removes + 1] = u else not_on[#not_on + 1] = { given = pretty.safe(u) } end
  end
  for _, x in ipairs(o.not_on) do not_on[#not_on + 1] = x end
  if #held > 0 and not o.move then
    client:close()
    local lines = {}
    for i, x in ipairs(held) do
      lines[i] = format("%s: %s is held by %s", pretty.safe(x.where), lease_text(x.uuid, x.number),
        holder_text(x.holder))
    end
    local msg = format("%s to add %s held by another SIP connection or a SIP control app; nothing was sent. "
      .. "--move takes %s from %s:\n  ", plural(#held, "lease"), #held == 1 and "is" or "are",
      #held == 1 and "it" or "them", #held == 1 and "there" or "where they are")
      .. concat(lines, "\n  ", 1, math.min(#lines, LISTED))
      .. (#lines > LISTED and format("\n  ... and %d more", #lines - LISTED) or "")
    return fail(ctx, { kind = "conflict", message = msg, retryable = false }, "opentact: " .. msg, 2)
  end
  local started = core.now()
  -- a lease on a control app is released there first, then attached, as
  -- sync --move does it; the others move with their attach
  local pre, pre_err
  if #by_app > 0 then
    pre, pre_err = client:sync(target, { leases = by_app }, { move = true, batch_size = batch_size,
      concurrency = concurrency })
    if not pre then
      client:close()
      return fail(ctx, pre_err)
    end
  end
  local report
  if pre and pre.interrupted then
    -- stopped: nothing more is sent; the rest is accounted for as not sent
    report = setmetatable({ ok = false, applied = { add = {}, remove = {} }, failed = {},
      leases = setmetatable({}, pretty.Leases), interrupted = pre.interrupted }, pretty.Report)
    if #adds + #removes > 0 then
      local e = require("opentact.errors").new("network", "interrupted before the request was sent", false)
      e.sent = false
      report.failed[1] = { add = adds, remove = removes, err = e }
    end
  elseif #adds + #removes > 0 then
    report = client:assign_batched(target, { add = adds, remove = removes }, {
      batch_size = batch_size, concurrency = concurrency,
      on_progress = ctx.is_terminal and o.format == "table" and progress_bar(ctx) or nil,
    })
  else
    report = setmetatable({ ok = true, applied = { add = {}, remove = {} }, failed = {},
      leases = setmetatable({}, pretty.Leases) }, pretty.Report)
  end
  client:close()
  local elapsed = core.now() - started
  if #unproven > 0 then
    local e = require("opentact.errors").new("protocol", "its lookup says the connection holds it, but the "
      .. "connection's own list does not hold it; nothing was sent for it", false)
    e = require("opentact.errors").finish(e, nil, nil, 0)
    e.sent = false
    report.failed[#report.failed + 1] = { add = unproven, remove = {}, err = e }
    report.ok = false
  end
  if pre then
    -- the leases released from their apps: attached, or failed
    local applied = {}
    for _, u in ipairs(pre.applied.add) do applied[#applied + 1] = u end
    for _, l in ipairs(pre.keep) do applied[#applied + 1] = l.uuid end
    for _, u in ipairs(report.applied.add) do applied[#applied + 1] = u end
    report.applied.add = applied
    for _, f in ipairs(pre.failed) do report.failed[#report.failed + 1] = f end
    if #pre.missing > 0 then
      local e = require("opentact.errors").new("not_found", "the lease was no longer in the account", false)
      local gone = {}
      for i, x in ipairs(pre.missing) do gone[i] = x end
      report.failed[#report.failed + 1] = { add = gone, remove = {}, err = e }
    end
    report.unverified = pre.unverified
    report.interrupted = report.interrupted or pre.interrupted
    report.ok = #report.failed == 0 and not report.unverified and not report.interrupted
  end
  -- what moved: the leases taken from another holder that CONN holds now
  local moved, now_held = {}, {}
  for _, u in ipairs(report.applied.add) do now_held[lower(u)] = true end
  for _, x in ipairs(held) do
    if now_held[lower(x.uuid)] then moved[#moved + 1] = x end
  end
  local moved_from = {}
  for _, x in ipairs(moved) do moved_from[lower(x.uuid)] = "moved from " .. holder_text(x.holder) end
  local sent = { add = {}, remove = removes }
  for _, u in ipairs(by_app) do sent.add[#sent.add + 1] = u end
  for _, u in ipairs(adds) do sent.add[#sent.add + 1] = u end

  local failed_add, failed_remove = report:failed_uuids()
  local saved = o.failed_file and save_failed(ctx, o.failed_file, report)

  if o.json then
    local failed = {}
    for i, f in ipairs(report.failed) do failed[i] = { add = f.add, remove = f.remove, err = error_json(f.err) } end
    local already, absent, taken = {}, {}, {}
    for i, x in ipairs(kept) do already[i] = x.uuid end
    for i, x in ipairs(not_on) do absent[i] = x.given end
    for i, x in ipairs(moved) do
      taken[i] = { uuid = x.uuid, number = x.number, from = { kind = x.holder.kind, uuid = x.holder.uuid,
        name = x.holder.name } }
    end
    ctx.stdout:write(M.json({ ok = report.ok, applied = report.applied, failed = failed,
      leases = setmetatable(report.leases, nil), already_on_target = already, not_on_target = absent,
      moved = taken, unverified = report.unverified and error_json(report.unverified) or nil }), "\n")
  elseif o.format ~= "table" then
    -- a row per uuid given, in the order given, with its outcome
    local results, numbers, rows, done = outcomes(report), o.numbers or {}, {}, {}
    for _, l in ipairs(report.leases) do
      if type(l) == "table" and type(l.uuid) == "string" and type(l.tn) == "table" then
        numbers[lower(l.uuid)] = numbers[lower(l.uuid)] or l.tn.tn
      end
    end
    for _, kind in ipairs({ "add", "remove" }) do
      for _, u in ipairs(sent[kind]) do
        local key = kind .. ":" .. lower(u)
        if not done[key] then
          done[key] = true
          local r = results[key]
          rows[#rows + 1] = outcome(u, numbers[lower(u)], kind, r == true and "applied" or r and "failed"
            or "not_applied", r ~= true and r or nil, r == true and moved_from[lower(u)] or nil)
        end
      end
    end
    other_outcomes(report, done, rows)
    local target_text = pretty.safe(target)
    for _, x in ipairs(kept) do
      rows[#rows + 1] = outcome(x.uuid, x.number, "add", "unchanged", nil, "already on " .. target_text)
    end
    for _, x in ipairs(not_on) do
      local uuid, number = x.given, nil
      if not uuid:find(UUID) then uuid, number = nil, tonumber(x.given) end
      rows[#rows + 1] = outcome(uuid, number, "remove", "unchanged", nil, "not on " .. target_text)
    end
    write_rows(ctx, o.format, REPORT_COLUMNS, rows)
    if report.unverified then ctx.stderr:write("opentact: not verified: ", tostring(report.unverified), "\n") end
  else
    assign_notes(ctx, o, kept, not_on, moved)
    ctx.stdout:write(tostring(report), "\n")
    if report.unverified then ctx.stdout:write("Not verified: ", pretty.safe(tostring(report.unverified)), "\n") end
    ctx.stdout:write(format("%s in %.2f s\n", plural(#sent.add + #sent.remove, "uuid"), elapsed))
    if not report.ok and saved then
      ctx.stdout:write(format("failed uuids written to %s%s; to retry:\n  opentact assign %s%s%s%s\n",
        o.failed_file, #failed_remove > 0 and " and " .. o.failed_file .. ".remove" or "",
        target, #failed_add > 0 and " --add-file " .. o.failed_file or "",
        #failed_remove > 0 and " --remove-file " .. o.failed_file .. ".remove" or "", o.move and " --move" or ""))
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

-- Leases as a table: number, uuid, who holds them, autorenew.
local function holders_rows(leases)
  local rows = {}
  for i, l in ipairs(leases) do
    local b = brief(l)
    local held = b.sip_control_app and "app " .. b.sip_control_app
      or b.sip_connection and "connection " .. b.sip_connection or "-"
    rows[i] = { number_text(b.number), pretty.safe(tostring(l.uuid)), pretty.safe(held), yes_no(l.autorenew) }
  end
  return { "number", "uuid", "held by", "autorenew" }, rows
end

local function cmd_find(ctx, o)
  if #o.positional < 2 then return usage_error(ctx, "find takes a phone number or a mask") end
  -- a number may come in pieces: opentact find +1 212 555 0004
  local text = concat(o.positional, " ", 2)
  local client, why = client_for(ctx, o)
  if not client then return no_client(ctx, why) end
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
  if not leases then return fail(ctx, err) end
  if o.format == "table" and #leases == 0 then
    ctx.stdout:write("no lease of the account matches ", pretty.safe(text), "\n")
  else
    write_leases(ctx, o, leases, holders_rows)
  end
  return #leases > 0 and 0 or 1
end

-- A sync report's rows: a row per lease of the plan, with its outcome.
local function sync_rows(report)
  local results, rows, done = outcomes(report), {}, {}
  for _, kind in ipairs({ "add", "remove", "keep" }) do
    for _, l in ipairs(report[kind]) do
      local b = brief(l)
      local action = kind == "keep" and "add" or kind
      local key = action .. ":" .. lower(tostring(b.uuid))
      done[key] = true
      local r, result = results[key]
      if r ~= nil and r ~= true then
        result = "failed"
      elseif kind == "keep" then
        result = "unchanged"
      elseif report.dry_run then
        result = "planned"
      else
        result = r and "applied" or "not_applied"
      end
      rows[#rows + 1] = outcome(b.uuid, b.number, kind, result, r ~= true and r or nil)
    end
  end
  for _, l in ipairs(report.conflicts) do
    local b = brief(l)
    local holder = b.sip_control_app and "SIP control app " .. b.sip_control_app
      or b.sip_connection and "SIP connection " .. b.sip_connection or "another holder"
    rows[#rows + 1] = outcome(b.uuid, b.number, "add", "conflict", nil, "held by " .. holder .. "; --move takes it")
  end
  for _, x in ipairs(report.missing) do
    local uuid, number
    if type(x) == "string" and x:find(UUID) then
      uuid = x
    else
      number = opentact.number(tostring(x)) or x
    end
    rows[#rows + 1] = outcome(uuid, number, "add", "missing", nil, "not in the account")
  end
  for _, u in ipairs(report.unexpected) do
    rows[#rows + 1] = outcome(u, nil, "none", "unexpected", nil, "on the connection at the read-back, not asked for")
  end
  return other_outcomes(report, done, rows)
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
    -- every line that names no lease, or a lease of the other kind, is
    -- named in one run: refused, or left out with --skip-invalid. Numbers
    -- the account has no lease for stay in the plan (? missing): left
    -- out, a lookup that failed for a moment would make --exact detach
    -- a lease that was asked for
    local skipped = o.skip_invalid and {} or nil
    local path = o.numbers_file or o.leases_file
    local where, texts, problems, at = {}, {}, {}, { leases = {} }
    local got, err = read_leases(path, ctx.stdin, problems, where, texts, at)
    if not got then return usage_error(ctx, err) end
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
    if #order > 0 and not skipped then return usage_error(ctx, problem_list(order, "bad lines")) end
    for _, p in ipairs(order) do skipped[#skipped + 1] = p end
    if o.exact and #order > 0 then
      -- a line left out names a lease nobody can tell: with --exact it
      -- would be detached, a change the file never asked for
      return usage_error(ctx, problem_list(order, "bad lines") .. "\n--exact with --skip-invalid detaches the "
        .. "leases those lines meant: fix them, or sync without --exact")
    end
    for _, w in ipairs(skipped or {}) do ctx.stderr:write("opentact: skipped ", w, "\n") end
    if #list == 0 and (o.exact or #(skipped or {}) > 0) then
      -- with --exact an empty list detaches everything: never by accident
      return usage_error(ctx, path .. " names no valid lease" .. (o.exact and ": with --exact that would "
        .. "detach every lease of the connection (use assign --remove-file for that)" or ""))
    end
    desired = want_numbers and { numbers = list } or { leases = list }
  end
  local client, why = client_for(ctx, o)
  if not client then return no_client(ctx, why) end
  local report, err = client:sync(o.positional[2], desired, {
    exact = o.exact or false, move = o.move or false, dry_run = o.dry_run or false,
    batch_size = batch_size, concurrency = concurrency,
    on_progress = ctx.is_terminal and o.format == "table" and progress_bar(ctx) or nil,
  })
  client:close()
  if not report then return fail(ctx, err) end
  local saved = o.failed_file and not o.dry_run and save_failed(ctx, o.failed_file, report)
  if o.json then
    local failed = {}
    for i, f in ipairs(report.failed) do failed[i] = { add = f.add, remove = f.remove, err = error_json(f.err) } end
    ctx.stdout:write(M.json({ ok = report.ok, dry_run = report.dry_run, connection = report.connection,
      add = briefs(report.add), remove = briefs(report.remove), keep = briefs(report.keep),
      conflicts = briefs(report.conflicts), missing = briefs(report.missing), applied = report.applied,
      failed = failed, unexpected = report.unexpected, released = report.released,
      interrupted = report.interrupted and tostring(report.interrupted),
      unverified = report.unverified and error_json(report.unverified) or nil }), "\n")
  elseif o.format ~= "table" then
    write_rows(ctx, o.format, REPORT_COLUMNS, sync_rows(report))
    if report.unverified then ctx.stderr:write("opentact: not verified: ", tostring(report.unverified), "\n") end
  else
    ctx.stdout:write(concat(pretty.plan_lines(report, nil, { move = "--move" }), "\n"), "\n")
    if #report.failed > 0 then
      ctx.stdout:write("Running the same sync again plans from what the connection holds now and finishes the job",
        saved and ("; the uuids that failed are in " .. o.failed_file) or "", ".\n")
    end
  end
  if report.interrupted then
    ctx.stderr:write("opentact: interrupted: requests in flight were cancelled; the report above says what was applied\n")
    return 130
  end
  return report.ok and 0 or 1
end

-- opentact help [COMMAND]
local function cmd_help(ctx, o)
  if #o.positional > 2 then return usage_error(ctx, "help takes one command") end
  local command = o.positional[2]
  if command ~= nil and not COMMAND[command] then return usage_error(ctx, unknown_command(command)) end
  ctx.stdout:write(M.help(command))
  return 0
end

local COMMANDS = { list = cmd_list, assign = cmd_assign, find = cmd_find, sync = cmd_sync, login = cmd_login,
  token = cmd_token, help = cmd_help }

-- Standard output (a file, or anything with write and maybe flush, which
-- fail as a file's do: nil, message, errno) that keeps the first write
-- that failed, with its message and errno: stdio keeps no
-- error for the end (after a write that failed, a flush says all is well),
-- and no command checks each write.
local function watched(file)
  local w = { file = file }
  function w.write(self, ...)
    local ok, err, errno = file:write(...)
    if not ok and err ~= nil and not w.failed then w.failed, w.errno = tostring(err), errno end
    return self
  end
  return w
end

local EPIPE = 32 -- Linux, the BSDs and macOS alike

-- The end of a command's output: flushed, and a write or flush that
-- failed said (exit 1, or the command's own status when it failed too).
-- A reader that closed the pipe (`| head`) wanted no more: no message, and
-- 141 (128 + SIGPIPE), the status a shell shows when a write there kills
-- the process, as it does unless SIGPIPE is ignored.
-- Standard output cannot be closed from Lua; the flush is where a full
-- disk, a closed pipe or a failed device shows.
local function finish_output(ctx, out, status)
  if out.file.flush then
    local ok, err, errno = out.file:flush()
    if not ok and err ~= nil and not out.failed then out.failed, out.errno = tostring(err), errno end
  end
  if not out.failed then return status end
  if out.errno == EPIPE or (out.errno == nil and out.failed:find("Broken pipe", 1, true)) then return 141 end
  ctx.stderr:write("opentact: could not write the output: ", out.failed, "\n")
  return status ~= 0 and status or 1
end

local main

-- ctx: stdout, stderr, stdin, getenv, is_terminal (stderr is a terminal),
-- stdin_terminal (standard input is one)
-- stdout_terminal (standard output is one; asked when not said)
function M.main(argv, given)
  local ctx = {}
  for k, v in pairs(given or {}) do ctx[k] = v end
  ctx.stdout_file = ctx.stdout or io.stdout
  local out = watched(ctx.stdout_file)
  ctx.stdout = out
  ctx.stderr = ctx.stderr or io.stderr
  return finish_output(ctx, out, main(argv, ctx))
end

function main(argv, ctx)
  ctx.stdin = ctx.stdin or io.stdin
  ctx.getenv = ctx.getenv or os.getenv
  -- before the parse, so that its errors name the command's help and come
  -- as JSON when asked for
  local command, help, fmt = glance(argv)
  if COMMAND[command] and command ~= "help" then ctx.command = command end
  ctx.json_errors = fmt == "json" or fmt == "jsonl"
  if help then
    -- --help wins over whatever else is there
    if command ~= nil and not COMMAND[command] then return usage_error(ctx, unknown_command(command)) end
    ctx.stdout:write(M.help(command))
    return 0
  end
  local o, err = parse(argv, command)
  if not o then return usage_error(ctx, err) end
  ctx.json_errors = o.format == "json" or o.format == "jsonl"
  if o.version then
    ctx.stdout:write(opentact._VERSION, "\n")
    return 0
  end
  command = o.positional[1]
  if command == nil then return usage_error(ctx, "give a command: list, find, assign, sync, login or token") end
  local run = COMMANDS[command]
  if not run then return usage_error(ctx, unknown_command(command)) end
  local bad = check_options(command, o)
  if bad then return usage_error(ctx, bad) end
  -- Ctrl-C outside a bulk run (a lookup, a read): nothing was changed
  -- that a report would not show; exit as interrupted, without a traceback
  local ok, status = pcall(run, ctx, o)
  if ok then return status end
  if tostring(status):find("interrupted!", 1, true) then
    return fail(ctx, { kind = "interrupted", message = "interrupted", retryable = false }, "opentact: interrupted", 130)
  end
  error(status, 0)
end

return M
