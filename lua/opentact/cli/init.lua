-- The `opentact` command: list a connection's leases, find leases by
-- number, assign many from the command line or from files, sync a
-- connection to a list, with progress and a report, in the --format asked
-- for. bin/opentact only calls main(). Exit status: 0 success, 1 the API
-- refused or failed anything (or the output could not be written), 2 usage
-- errors, 130 interrupted, 141 the reader closed the pipe (M.HELP.exit).
--
-- This module dispatches: it reads the arguments and runs the command's
-- module (opentact.cli.NAME: its help entry and its `run`), then finishes
-- the output. The help is data (opentact.cli.manual, M.HELP here):
-- tools/manpage.lua makes the man page from it. The command line is a
-- client of the public API of `opentact`; nothing below lua/opentact/cli/
-- requires it.

local opentact = require("opentact")
local manual = require("opentact.cli.manual")
local args = require("opentact.cli.args")
local common = require("opentact.cli.common")
local output = require("opentact.cli.output")

local tostring, pairs, pcall, error = tostring, pairs, pcall, error

local M = {}

M.HELP = manual.HELP
M.help = manual.help
M.command_options = manual.command_options
M.usage_pieces = manual.usage_pieces
M.json = output.json
M.NULL = output.NULL

local COMMAND = manual.HELP.command
local usage_error, fail = common.usage_error, common.fail

-- The commands, by name: each module's `run(ctx, o)`.
local COMMANDS = {}
for name, module in pairs(manual.MODULE) do COMMANDS[name] = module.run end

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
  local command, help, fmt = args.glance(argv)
  if COMMAND[command] and command ~= "help" then ctx.command = command end
  ctx.json_errors = fmt == "json" or fmt == "jsonl"
  if help then
    -- --help wins over whatever else is there
    if command ~= nil and not COMMAND[command] then
      return usage_error(ctx, args.unknown_command(command, manual.command_names()))
    end
    ctx.stdout:write(manual.help(command))
    return 0
  end
  local o, err = args.parse(argv, manual.option_names(command))
  if not o then return usage_error(ctx, err) end
  ctx.json_errors = o.format == "json" or o.format == "jsonl"
  if o.version then
    ctx.stdout:write(opentact._VERSION, "\n")
    return 0
  end
  command = o.positional[1]
  if command == nil then return usage_error(ctx, "give a command: " .. manual.command_list()) end
  local run = COMMANDS[command]
  if not run then return usage_error(ctx, args.unknown_command(command, manual.command_names())) end
  local bad = args.check_options(command, COMMAND[command].options, o)
    or args.settings(o, COMMAND[command].options, ctx.getenv)
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
