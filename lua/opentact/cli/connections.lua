-- opentact connections: the account's SIP connections.

local holders = require("opentact.cli.holders")

local M = {}

M.help = holders.help("connection")

function M.run(ctx, o)
  return holders.show(ctx, o, "connection")
end

return M
