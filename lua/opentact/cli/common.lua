-- What several commands of `opentact` share: ending with a usage error or
-- an error (on standard error, and as JSON under --format json or jsonl),
-- naming bad input in messages, and writing --failed-file.

local opentact = require("opentact")
local pretty = require("opentact.pretty")
local output = require("opentact.cli.output")

local type, tostring, ipairs, setmetatable = type, tostring, ipairs, setmetatable
local format, concat = string.format, table.concat

local M = {}

local json, error_json = output.json, output.error_json

-- An error the command line found itself, for a report's `failed`: one
-- like the library's (opentact.Error), for something that was not sent.
function M.error(kind, message)
  return setmetatable({ kind = kind, message = message, retryable = false, attempts = 0, sent = false }, opentact.Error)
end

-- A usage error: the message and where to look on standard error, and
-- under --format json or jsonl the error as JSON on standard output.
function M.usage_error(ctx, msg)
  ctx.stderr:write("opentact: ", msg, "\nTry 'opentact ", ctx.command and ctx.command .. " " or "", "--help'.\n")
  if ctx.json_errors then ctx.stdout:write(json({ ok = false, error = { kind = "usage", message = msg } }), "\n") end
  return 2
end

-- An error that ends a command: its line on standard error (`text`, else
-- the error's own) and, under --format json or jsonl, {"ok": false,
-- "error": {...}} on standard output. Returns the exit status: `status`,
-- else 2 for what the library found invalid (nothing was sent), else 1.
function M.fail(ctx, err, text, status)
  ctx.stderr:write(text or tostring(err), "\n")
  if ctx.json_errors then ctx.stdout:write(json({ ok = false, error = error_json(err) }), "\n") end
  return status or (err.kind == "invalid" and 2 or 1)
end

-- Ends a command that could not make its client: an auth error (a kept
-- token that expired) exits 1, anything else is a usage error.
function M.no_client(ctx, why)
  if type(why) == "table" then return M.fail(ctx, why, "opentact: " .. why.kind .. ": " .. why.message, 1) end
  return M.usage_error(ctx, why)
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

-- A word as a shell reads it: as it is when it holds nothing a shell
-- would take apart, else in single quotes.
local function shell_word(w)
  w = tostring(w)
  if w ~= "" and not w:find("[^%w%%+,%-%./:=@_]") then return w end
  return "'" .. w:gsub("'", "'\\''") .. "'"
end

-- Words as one command line a user can paste.
function M.shell_words(list)
  local out = {}
  for i, w in ipairs(list) do out[i] = shell_word(w) end
  return concat(out, " ")
end

-- What a plan changes that needs a yes: how many leases it detaches, how
-- many it takes from another connection or control app (a move), and how
-- many it stops renewing (a lease that does not renew can be lost).
function M.changes_asked(plan)
  if plan.targets then
    -- a routes plan: its targets' together
    local detach, move, stop = 0, 0, 0
    for _, t in ipairs(plan.targets) do
      local d, m, s = M.changes_asked(t)
      detach, move, stop = detach + d, move + m, stop + s
    end
    return detach, move, stop
  end
  local move = 0
  for _, lease in ipairs(plan.add) do
    local h = plan.holders and plan.holders[tostring(lease.uuid):lower()]
    if h and not (h.kind == plan.target_kind and h.uuid == plan.target) then move = move + 1 end
  end
  local stop = 0
  for _, lease in ipairs(plan.renew or {}) do
    local to = plan.renew_to and plan.renew_to[tostring(lease.uuid):lower()]
    if to == false or to == nil and plan.options and plan.options.autorenew == false then stop = stop + 1 end
  end
  return #plan.remove, move, stop
end

-- "detaches 2 leases and moves 1 from another holder", for a question.
function M.changes_text(detach, move, stop)
  local parts = {}
  if detach > 0 then parts[#parts + 1] = "detaches " .. pretty.plural(detach, "lease") end
  if move > 0 then
    parts[#parts + 1] = "moves " .. pretty.plural(move, "lease") .. " from another connection or control app"
  end
  if (stop or 0) > 0 then parts[#parts + 1] = "turns autorenew off for " .. pretty.plural(stop, "lease") end
  return concat(parts, " and ")
end

-- Whether an error raised is Ctrl-C (the Lua interpreter's "interrupted!").
function M.interrupted(e)
  return tostring(e):find("interrupted!", 1, true) ~= nil
end

M.excerpt = excerpt
M.LISTED = LISTED
M.problem_list = problem_list
M.save_failed = save_failed

-- The target a CONN argument names (API.md, "The command line"): a uuid
-- is a SIP connection, and "app:UUID" / "connection:UUID" say the kind,
-- with nothing read; a name, or "app:NAME" / "connection:NAME", is
-- resolved by client:target. Returns the target ({kind, uuid, name}); or
-- nil and the exit status, the error written (an ambiguous name lists its
-- candidates; an unknown one is named): 2, nothing else was sent.
function M.target(ctx, client, text)
  local prefix, rest = text:match("^(%a+):(.*)$")
  local kind = (prefix == "app" or prefix == "connection") and prefix or nil
  local bare = kind and rest or text
  if opentact.is_uuid(bare) then return { kind = kind or "connection", uuid = bare:lower() } end
  local t, err = client:target(text)
  if t then return t end
  return nil, M.fail(ctx, err, nil, (err.kind == "invalid" or err.kind == "not_found") and 2 or 1)
end

-- After a 404 for CONN given as a bare uuid: it may be a control app's.
function M.target_hint(ctx, text, err)
  if type(err) == "table" and err.status == 404 and opentact.is_uuid(text) then
    ctx.stderr:write("opentact: if ", text, " is a SIP control app, give it as app:", text, "\n")
  end
end

-- How a target is named in messages: its name and uuid, else as given.
function M.target_text(t)
  return pretty.holder(t.kind, t.uuid, t.name)
end

return M
