-- opentact apps: the account's SIP control apps.

local holders = require("opentact.cli.holders")

local M = {}

M.help = holders.help("app")

function M.run(ctx, o)
  return holders.show(ctx, o, "app")
end

return M
