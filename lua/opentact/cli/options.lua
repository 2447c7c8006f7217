-- The options of the `opentact` command, as data, and the words the
-- commands' help entries share. The help (opentact.cli.manual), the parser
-- (opentact.cli.args), the man page and the completion checks are all made
-- from these tables, so none of them is written twice. A text is one
-- paragraph, wrapped when printed.

local ipairs = ipairs

local M = {}

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
  { name = "--out", arg = "FILE", file = true, text = "also write the plan to FILE, whole or not at all (a file "
    .. "written beside it, then renamed): JSON with a content hash, for review and for 'opentact apply FILE'; it "
    .. "holds no token" },
  { name = "--journal", arg = "FILE", file = true, text = "append each batch the server confirms to FILE, flushed to "
    .. "disk, before going on; the same plan and journal after a crash, a kill or Ctrl-C apply only what FILE does "
    .. "not confirm (FILE names its plan: a journal of another plan is refused)" },
  { name = "--yes", text = "apply a plan that detaches or moves leases, or turns their autorenew off, without "
    .. "asking (needed when standard input or output is not a terminal; adds alone never ask)" },
  { name = "--no-color", text = "no colour in the plan on a terminal (so too when NO_COLOR is set and not empty)" },
  { name = "--routes", arg = "FILE", file = true, text = "the routes file: a CSV line per route, "
    .. "NUMBER_OR_LEASE,TARGET[,AUTORENEW] (a header line allowed; TARGET a connection's name or uuid, app:NAME "
    .. "or app:UUID; AUTORENEW on or off): what check compares, what plan and sync plan over every target it names; "
    .. "with export, alone: write the account's routes" },
  { name = "--count", text = "also count the leases each one holds: one list per connection or app, several at "
    .. "once (--concurrency, default 8), with a progress line on a terminal" },
  { name = "--autorenew", arg = "on|off", values = { "on", "off" }, text = "with lease set, turn the lease's "
    .. "automatic renewal on or off; with sync and plan, make every desired lease's autorenew this, as part of the "
    .. "plan (shown as ~, and checked again by apply)" },
  { name = "--voice", arg = "on|off", values = { "on", "off" }, text = "turn the lease's voice feature on or off" },
  { name = "--fax", arg = "on|off", values = { "on", "off" }, text = "turn the lease's fax feature on or off" },
  { name = "--sms", arg = "on|off", values = { "on", "off" }, text = "turn the lease's SMS feature on or off" },
  { name = "--mms", arg = "on|off", values = { "on", "off" }, text = "turn the lease's MMS feature on or off" },
  { name = "--emergency", arg = "on|off", values = { "on", "off" }, text = "turn the lease's emergency calling "
    .. "feature on or off" },
  { name = "--batch-size", arg = "N", text = "uuids per request (default 100)" },
  { name = "--concurrency", arg = "N", text = "requests at once (default 4, at most 256)" },
  { name = "--failed-file", arg = "FILE", file = true, text = "write the uuids that were not applied to FILE "
    .. "(adds) and FILE.remove (removes), ready for a re-run, each group under a \"# why\" comment line" },
  { name = "--skip-invalid", text = "leave out, each named on standard error (with assign, in its report too), "
    .. "what would refuse the whole input: "
    .. "lines and arguments without a valid uuid or number; with assign, numbers and uuids to add that the "
    .. "account has no lease for, a lease given twice (the repeat), and a lease given to both add and remove, "
    .. "by its number or its uuid (left out of both: nothing is sent for it); with sync, lease uuids "
    .. "in --numbers-file and numbers in --leases-file (sync keeps numbers the account has no lease for in its "
    .. "plan, as ? missing, and exits 1 for them; with --exact it leaves nothing out: a line left out would have "
    .. "its lease detached). Without it, every bad line is named (the first 20) and "
    .. "nothing is sent" },
  { name = "--format", arg = "FMT", values = { "table", "json", "jsonl", "csv", "tsv" }, text = "how to print: "
    .. "table (the default, for people), json, jsonl, csv or tsv (Output in the command's --help says what "
    .. "each prints; --format=FMT works too)" },
  { name = "--json", text = "the same as --format json" },
  { name = "--all", text = "print every row of a table: on a terminal a table stops after " .. ROWS
    .. " rows, and a plan after a screenful (the other formats, and a table or plan sent to a file or a pipe, "
    .. "always have every row)" },
  { name = "--country-code", arg = "N", text = "the country calling code (1 to 3 digits: 1, 44) put in front "
    .. "of every phone number of at most ten digits written without a leading +, in arguments and files "
    .. "(default: OPENTACT_COUNTRY_CODE; masks are taken as written)" },
  { name = "--url", arg = "URL", text = "the API base URL (default: OPENTACT_URL, else the URL the profile's "
    .. "saved token is for when a profile is named, else Opentact's)" },
  { name = "--profile", arg = "NAME", text = "use the token 'opentact login --profile NAME' saved, and its "
    .. "URL, in a file of its own (letters, digits, - and _; default: OPENTACT_PROFILE, else the default "
    .. "profile, whose file is ~/.config/opentact/token)" },
  { name = "--deadline", arg = "S", text = "seconds a request may take in all, every attempt and wait between "
    .. "them included, 0.001 to 2147483 (none unless given: each attempt has --timeout)" },
  { name = "--timeout", arg = "S", text = "seconds one attempt of a request may take, 0.001 to 2147483 "
    .. "(default 30)" },
  { name = "--retries", arg = "N", text = "extra attempts for a request that failed in a way worth retrying, "
    .. "0 to 100 (default 2)" },
  { name = "--verbose", short = "-v", text = "a line on standard error per HTTP attempt: method, path (the "
    .. "values of a query shown as ...), status (or why it failed), attempt number and milliseconds; never the "
    .. "token or the password" },
  { name = "--email", arg = "EMAIL", text = "the account's email (default: OPENTACT_EMAIL)" },
  { name = "--help", short = "-h", text = "print the help; after a command, that command's help" },
  { name = "--version", text = "print the version" },
}
local OPTION = {}
for _, opt in ipairs(OPTIONS) do OPTION[opt.name] = opt end

local USAGE_EXIT = "a usage error: a bad option or argument"
local INTERRUPTED_EXIT = "interrupted (Ctrl-C)"
-- exit 130 of the commands that change leases in bulk (assign, sync)
local BULK_INTERRUPTED_EXIT = INTERRUPTED_EXIT .. ": requests in flight are cancelled, and the report and "
  .. "--failed-file still say what was applied"
local API_EXIT = "the API refused or failed: an unknown connection, a bad token, a server or network error"
local LEASE_COLUMNS_TEXT = "uuid, number, expires, autorenew, sip_connection, sip_control_app"
local REPORT_COLUMNS_TEXT = "uuid, number, action, result, error_kind, error_status, error_message"
local TSV_TEXT = "as csv, with fields separated by tabs (a tab, newline, carriage return or backslash in a field "
  .. "is written \\t, \\n, \\r or \\\\)"
local EXAMPLE_CONN = "66eb0a8a-571e-41b1-8f50-4d97275cfab7"

M.ROWS = ROWS
M.OPTIONS = OPTIONS
M.OPTION = OPTION
M.USAGE_EXIT = USAGE_EXIT
M.INTERRUPTED_EXIT = INTERRUPTED_EXIT
M.BULK_INTERRUPTED_EXIT = BULK_INTERRUPTED_EXIT
M.API_EXIT = API_EXIT
M.LEASE_COLUMNS_TEXT = LEASE_COLUMNS_TEXT
M.REPORT_COLUMNS_TEXT = REPORT_COLUMNS_TEXT
M.TSV_TEXT = TSV_TEXT
M.EXAMPLE_CONN = EXAMPLE_CONN

return M
