-- opentact help [COMMAND]: the help, or a command's (the help text itself is
-- opentact.cli.manual's).

local common = require("opentact.cli.common")
local args = require("opentact.cli.args")

local usage_error = common.usage_error

local M = {}

M.help = {
  name = "help", args = { "[COMMAND]" },
  summary = "print this help, or a command's (the same as opentact COMMAND --help)",
  text = { "Print the help, or a command's help: its usage, options, output and exit status." },
  options = {},
  exit = {
    { 0, "the help was printed" },
    { 2, "an unknown command" },
  },
}

-- opentact help [COMMAND]
function M.run(ctx, o)
  if #o.positional > 2 then return usage_error(ctx, "help takes one command") end
  -- the manual lists this module's help entry: it is read when the
  -- command runs, not when this module loads
  local manual = require("opentact.cli.manual")
  local command = o.positional[2]
  if command ~= nil and not manual.HELP.command[command] then
    return usage_error(ctx, args.unknown_command(command, manual.command_names()))
  end
  ctx.stdout:write(manual.help(command))
  return 0
end

return M
