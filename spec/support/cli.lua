-- Spec helper for the opentact command: runs bin/opentact as a shell
-- would, with no login of the machine's user, or cli.main in this
-- process, and reads what it prints (lines, CSV and TSV rows).
local support = require("emulator")

local M = {}

-- bin/opentact with `args` (shell words) against `emu` (its token and
-- URL; without one, the emulator's default token and a closed port).
-- No login of the machine's user leaks in: OPENTACT_EMAIL and
-- OPENTACT_PASSWORD unset, no config folder. opts (all optional):
--   token, url: OPENTACT_TOKEN and OPENTACT_URL instead of emu's
--   extra: more words for env (NAME=value ...)
--   stderr = "merge": standard error goes with standard output (the
--     second result is then "")
--   to: standard output captured (nil), "> FILE", or "| COMMAND" (a
--     reader; then `signal` is "default" or "ignore", SIGPIPE's
--     disposition for the command)
-- Returns standard output (when captured), standard error and the exit
-- status.
function M.opentact(emu, args, opts)
  opts = opts or {}
  local token = opts.token or emu and emu.token or "emulator-token"
  local url = opts.url or emu and emu.url or "http://127.0.0.1:9"
  local err, st = os.tmpname(), os.tmpname()
  -- (the shell's own unset and assignments: no `env` process per command)
  local vars = ("XDG_CONFIG_HOME=/nonexistent OPENTACT_TOKEN='%s' OPENTACT_URL='%s' %s"):format(token, url,
    opts.extra or "")
  local prog = ("%s %s/bin/opentact %s"):format(support.LUA, support.ROOT, args)
  local cmd = "unset OPENTACT_EMAIL OPENTACT_PASSWORD; " .. vars .. " " .. prog
  local to_err = opts.stderr == "merge" and "2>&1" or "2> " .. err
  local out
  if opts.to == nil then
    out = support.sh(("%s %s; echo $? > %s"):format(cmd, to_err, st))
  elseif opts.to:sub(1, 1) == ">" then
    out = support.sh(("%s %s %s; echo $? > %s"):format(cmd, opts.to, to_err, st))
  else
    -- the shell the specs run in may ignore SIGPIPE (LuaSocket does so in
    -- this process): say which disposition the command gets
    out = support.sh(("(unset OPENTACT_EMAIL OPENTACT_PASSWORD; env --%s-signal=PIPE %s %s %s; echo $? > %s) %s")
      :format(opts.signal == "ignore" and "ignore" or "default", vars, prog, to_err, st, opts.to))
  end
  local stderr, status = support.slurp(err), tonumber(support.slurp(st))
  os.remove(err)
  os.remove(st)
  return out, stderr, status
end

-- A writable that collects what is written.
function M.sink()
  local t = {}
  return { write = function(self, ...)
    for _, s in ipairs({ ... }) do t[#t + 1] = s end
    return self
  end, flush = function() return true end, text = function() return table.concat(t) end }
end

-- cli.main in this process against `emu`, with `ctx` (stdout defaults to
-- a sink): standard output, standard error and the exit status.
function M.main(emu, args, ctx)
  local out, err = M.sink(), M.sink()
  local env = { OPENTACT_TOKEN = emu.token, OPENTACT_URL = emu.url }
  ctx = ctx or {}
  ctx.stdout, ctx.stderr = ctx.stdout or out, err
  ctx.getenv = function(k) return env[k] end
  local status = require("opentact.cli").main(args, ctx)
  return out.text(), err.text(), status
end

-- A text's lines (each ended by a newline).
function M.lines_of(text)
  local out = {}
  for l in text:gmatch("([^\n]*)\n") do out[#out + 1] = l end
  return out
end

-- A CSV line's fields (quotes, doubled quotes; no line breaks in fields here).
function M.csv(line)
  local out, i = {}, 1
  while i <= #line + 1 do
    if line:sub(i, i) == '"' then
      local j, parts = i + 1, {}
      while true do
        local q = line:find('"', j, true)
        parts[#parts + 1] = line:sub(j, q - 1)
        if line:sub(q + 1, q + 1) == '"' then j = q + 2 parts[#parts + 1] = '"' else i = q + 2 break end
      end
      out[#out + 1] = table.concat(parts)
    else
      local comma = line:find(",", i, true) or #line + 1
      out[#out + 1] = line:sub(i, comma - 1)
      i = comma + 1
    end
  end
  return out
end

-- A TSV line's fields.
function M.tsv(line)
  local out = {}
  for f in (line .. "\t"):gmatch("([^\t]*)\t") do out[#out + 1] = f end
  return out
end

return M
