-- opentact assign CONN: attach and detach leases, given as arguments and in
-- files, in batches, several requests at once; a lease held elsewhere is taken
-- with --move only.

local opentact = require("opentact")
local core = require("opentact.core")
local pretty = require("opentact.pretty")
local words = require("opentact.cli.options")
local common = require("opentact.cli.common")
local args = require("opentact.cli.args")
local input = require("opentact.cli.input")
local credentials = require("opentact.cli.credentials")
local output = require("opentact.cli.output")

local type, tostring, ipairs, pairs, next, setmetatable = type, tostring, ipairs, pairs, next, setmetatable
local format, concat, lower = string.format, table.concat, string.lower

local USAGE_EXIT, BULK_INTERRUPTED_EXIT, EXAMPLE_CONN = words.USAGE_EXIT, words.BULK_INTERRUPTED_EXIT, words.EXAMPLE_CONN
local REPORT_COLUMNS_TEXT, TSV_TEXT = words.REPORT_COLUMNS_TEXT, words.TSV_TEXT
local usage_error, fail, no_client = common.usage_error, common.fail, common.no_client
local problem_list, save_failed, LISTED = common.problem_list, common.save_failed, common.LISTED
local sizes, read_leases, lease_arg, client_for = args.sizes, input.read_leases, input.lease_arg, credentials.client_for
local json, error_json, write_rows, progress_bar = output.json, output.error_json, output.write_rows, output.progress_bar
local number_text, REPORT_COLUMNS = output.number_text, output.REPORT_COLUMNS
local any_local, country_hint = input.any_local, input.country_hint
local outcome, outcomes, other_outcomes = output.outcome, output.outcomes, output.other_outcomes
local is_uuid, holder, number_of, is_national = opentact.is_uuid, opentact.holder, opentact.number,
  opentact.is_national
local plural = pretty.plural

local M = {}

M.help = {
  name = "assign", args = { "CONN" },
  summary = "add and remove leases, in batches, several requests at once",
  text = { "Attach the leases of --add and --add-file to the SIP connection CONN and detach those of --remove "
    .. "and --remove-file, in batches, several requests at once. Phone numbers are looked up to find their "
    .. "leases, and so are the lease uuids to add, to know who holds them. Before anything is sent: a lease "
    .. "to add that another SIP connection or a SIP control app holds is refused (exit 2, each named with its "
    .. "holder) unless --move, which takes it and says from where; one CONN holds already (its lookup and "
    .. "CONN's own list say so; the lookup alone: failed) is reported (\"already on CONN\") and not sent; "
    .. "one to remove that CONN does not hold is reported (\"not on CONN\") and not sent, but a number to "
    .. "remove given without its country code that is the end of a number CONN holds is refused (exit 2, "
    .. "nothing sent), as sync refuses it. --country-code N (or OPENTACT_COUNTRY_CODE) puts N in front of "
    .. "every number of at most ten digits written without a leading +; without it, when no lease to add is "
    .. "found and some numbers are written so, the message says they may lack their country code. With the table "
    .. "format, a progress bar (done/total, rate, ETA) goes to standard error when it is a terminal." },
  options = { "--add", "--remove", "--add-file", "--remove-file", "--move", "--batch-size", "--concurrency",
    "--failed-file", "--skip-invalid", "--format", "--json", "--country-code", "--url", "--profile", "--timeout", "--deadline",
    "--retries", "--verbose" },
  output = {
    { "table", "a line per lease already on CONN, not on CONN, or moved (from which SIP connection or "
      .. "control app); the summary: ok or not ok, how many were applied and failed, a line per failed group "
      .. "with why, the time taken, and with --failed-file the command that retries" },
    { "json", "the report: {ok, applied: {add, remove}, failed: [{add, remove, err}], leases, "
      .. "already_on_target, not_on_target, moved: [{uuid, number, from: {kind, uuid, name}}], skipped: [what "
      .. "--skip-invalid left out, as standard error names it]}" },
    { "jsonl", "a line per uuid: an object with the csv columns as keys (null when empty)" },
    { "csv", "a header line, then a line per uuid: " .. REPORT_COLUMNS_TEXT .. "; action is add or remove, "
      .. "result applied, failed, not_applied, unchanged (already on CONN, or not on it: error_message says "
      .. "which) or skipped (left out by --skip-invalid: no uuid or number, error_message says why), and the "
      .. "error_ columns say why it failed (error_message of a lease moved here: where from)" },
    { "tsv", TSV_TEXT },
  },
  exit = {
    { 0, "every lease was attached or detached" },
    { 1, "the API refused or failed some (the report and --failed-file name them), or a number or uuid to add has no "
      .. "lease in the account" },
    { 2, USAGE_EXIT .. ", bad lines in a file (each named), a lease given twice or to both add and remove (by "
      .. "number or uuid), nothing to assign, a lease "
      .. "to add held by another SIP connection or app without --move (nothing sent), a number to remove given "
      .. "without its country code that is the end of a number CONN holds (nothing sent), or a request the API "
      .. "found invalid with nothing applied" },
    { 130, BULK_INTERRUPTED_EXIT },
  },
  examples = { "opentact assign " .. EXAMPLE_CONN .. " \\\n    --add +1 212 555 0004 --remove 12125550001",
    "opentact assign " .. EXAMPLE_CONN .. " --add +1 212 555 0005 --move",
    "opentact assign " .. EXAMPLE_CONN .. " \\\n    --add-file leases.csv --failed-file failed.txt --format csv" },
}

-- Reads the arguments and files of `kinds` ({kind = {files, args}}) into
-- o[kind] lists of uuids and numbers, with where each came from, and
-- o.texts[kind] with each as it was written.
-- Returns the sources ({kind = {where...}}), or nil, message. Every bad
-- argument and line is named in one message (the first LISTED of them),
-- or added to `skipped` (--skip-invalid) as {kind, text}.
local function gather(ctx, o, kinds, skipped)
  local sources, bad_args, bad_lines, arg_kinds, line_kinds = {}, {}, {}, {}, {}
  o.texts = {}
  for _, kind in ipairs({ "add", "remove" }) do
    local spec = kinds[kind]
    if spec then
      local list, from, texts = {}, {}, {}
      for _, v in ipairs(spec[2]) do
        local lease, why = lease_arg(v, o.country_code)
        if lease then
          list[#list + 1] = lease
          from[#list], texts[#list] = "--" .. kind, v
        else
          bad_args[#bad_args + 1] = "--" .. kind .. ": " .. why
          arg_kinds[#bad_args] = kind
        end
      end
      for _, path in ipairs(spec[1]) do
        local where, written = {}, {}
        local got, err = read_leases(path, ctx.stdin, bad_lines, where, written, nil, o.country_code)
        if not got then return nil, err end
        for k = #line_kinds + 1, #bad_lines do line_kinds[k] = kind end
        for k, lease in ipairs(got) do
          list[#list + 1] = lease
          from[#list], texts[#list] = where[k], written[k]
        end
      end
      o[kind], sources[kind], o.texts[kind] = list, from, texts
    end
  end
  local problems = {}
  for _, p in ipairs(bad_args) do problems[#problems + 1] = p end
  for _, p in ipairs(bad_lines) do problems[#problems + 1] = p end
  if #problems > 0 and not skipped then
    return nil, problem_list(problems, #bad_lines == 0 and "bad arguments"
      or #bad_args == 0 and "bad lines" or "bad arguments and lines")
  end
  for i, p in ipairs(bad_args) do skipped[#skipped + 1] = { kind = arg_kinds[i], text = p } end
  for i, p in ipairs(bad_lines) do skipped[#skipped + 1] = { kind = line_kinds[i], text = p } end
  return sources
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
-- lookup says CONN holds a lease), o.not_on
-- ({given, where}: numbers to remove that CONN has no lease for) and
-- o.national (numbers to remove written without their country code that
-- are the end of a number CONN holds, as messages: refused).
-- Returns true, or nil, err for a read that failed.
local function resolve(client, o, sources, missing)
  o.numbers, o.leases, o.not_on, o.national = {}, {}, {}, {}
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
  local t = o.target
  local conn, claimed = t.uuid, false
  for _, lease in pairs(found) do
    local h = holder(lease, t.kind == "app" and "sip_control_app" or "sip_connection")
    if h and lower(h.uuid) == conn then claimed = true end
  end
  local by_number = {}
  if #o.remove > 0 or claimed then
    local held, err = client:list(t)
    if not held then return nil, err end
    o.holding = {}
    for _, l in ipairs(held) do
      if type(l) == "table" and type(l.uuid) == "string" then
        o.holding[lower(l.uuid)] = true
        local tn = type(l.tn) == "table" and (number_of(l.tn.tn)) or nil
        if tn then
          by_number[tn] = l.uuid
          o.numbers[lower(l.uuid)] = tn
        end
      end
    end
  end
  -- number -> the uuid of the lease to add that has it: a number to
  -- remove that CONN does not hold is that lease all the same (given to
  -- both lists, which is refused), not "not on CONN"
  local to_add = {}
  for _, kind in ipairs({ "add", "remove" }) do
    local kept, kept_sources = {}, {}
    for k, x in ipairs(o[kind]) do
      local where, uuid = sources[kind][k], x
      if kind == "add" then
        local lease = found[type(x) == "string" and lower(x) or x]
        if lease then
          uuid = type(x) == "string" and x or lease.uuid
          o.leases[lower(uuid)] = lease
          local tn = type(lease.tn) == "table" and (number_of(lease.tn.tn)) or nil
          if tn then
            o.numbers[lower(uuid)] = tn
            to_add[tn] = to_add[tn] or uuid
          end
        else
          -- a lease not found cannot be shown to be free: never sent
          missing[#missing + 1] = type(x) == "number"
            and format("%s: no lease of the account holds the number %s", where, number_text(x))
            or format("%s: the account has no lease %s", where, pretty.safe(x))
          uuid = nil
        end
      elseif type(x) == "number" then
        uuid = by_number[x] or to_add[x]
        -- a number CONN holds may have been written without its country
        -- code: as sync does, never taken for "not on CONN"
        local held
        if not uuid then
          for tn in pairs(by_number) do
            if is_national(o.texts.remove[k], tn) and (not held or tn < held) then held = tn end
          end
        end
        if held then
          o.national[#o.national + 1] = format("%s: %s is not on %s, which holds %s, the same number with a country code",
            pretty.safe(where), number_text(x), pretty.safe(o.positional[2]), number_text(held))
        elseif not uuid then
          o.not_on[#o.not_on + 1] = { given = number_text(x), where = where }
        end
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

function M.run(ctx, o)
  if #o.positional ~= 2 then return usage_error(ctx, "assign takes one connection or control app") end
  local skipped = o.skip_invalid and {} or nil
  local batch_size, concurrency, opt_err = sizes(o)
  if not batch_size then return usage_error(ctx, opt_err) end
  local sources, gather_err = gather(ctx, o, { add = { o.add_files, o.add }, remove = { o.remove_files, o.remove } },
    skipped)
  if not sources then return usage_error(ctx, gather_err) end
  if #o.add + #o.remove == 0 and #(skipped or {}) == 0 then
    return usage_error(ctx, "nothing to assign: give --add, --remove or a file")
  end
  local client, why = client_for(ctx, o)
  if not client then return no_client(ctx, why) end
  -- before any lookup: nothing is read for a target there cannot be
  local target, t_status = common.target(ctx, client, o.positional[2])
  if not target then
    client:close()
    return t_status
  end
  o.target = target
  -- numbers become the uuids of their leases, and every lease to add is
  -- looked up to know who holds it; a number the account does not have
  -- is named (an error, or left out with --skip-invalid)
  local missing = {}
  local resolved, lookup_err = resolve(client, o, sources, missing)
  if not resolved then
    client:close()
    return fail(ctx, lookup_err, nil, 1)
  end
  if #o.national > 0 then
    client:close()
    local msg = problem_list(o.national, "numbers to remove without their country code")
      .. (#o.national > 1 and "\n" or "; ") .. "give numbers with their country code (e.g. +1 212 555 0100); "
      .. "nothing was sent"
    return fail(ctx, { kind = "invalid", message = msg, retryable = false }, "opentact: " .. msg, 2)
  end
  if #missing > 0 and not skipped then
    client:close()
    local msg = problem_list(missing, "leases not in the account") .. (#missing > 1 and "\n" or "; ")
      .. "--skip-invalid leaves such lines out"
    -- none found, some written without a country code: most likely why
    if #o.add == 0 and not o.country_code and any_local(o.texts.add) then
      msg = msg .. "\n" .. country_hint(#missing)
    end
    return fail(ctx, { kind = "not_found", message = msg, retryable = false }, "opentact: " .. msg, 1)
  end
  for _, m in ipairs(missing) do skipped[#skipped + 1] = { kind = "add", text = m } end
  -- a uuid twice, or in both lists, is named with where each came from:
  -- an error, or left out with --skip-invalid (numbers are their leases'
  -- uuids by now: a lease is the same however it was given). A repeat is
  -- left out; a lease in both lists is left out of both, since either
  -- would undo the other.
  local first_seen, problems, problem_kinds, both = {}, {}, {}, {}
  for _, kind in ipairs({ "add", "remove" }) do
    local list, kept, kept_sources = o[kind], {}, {}
    for k, u in ipairs(list) do
      local key = u:lower()
      local seen = first_seen[key]
      if seen then
        problems[#problems + 1] = format("%s: %s %s again (first at %s, %s)", sources[kind][k], u,
          seen.kind == kind and "listed" or "in both --add and --remove", seen.where, seen.kind)
        problem_kinds[#problems] = kind
        if seen.kind ~= kind then both[key] = true end
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
  for i, p in ipairs(problems) do skipped[#skipped + 1] = { kind = problem_kinds[i], text = p } end
  if next(both) then
    local kept, kept_sources = {}, {}
    for k, u in ipairs(o.add) do
      if not both[u:lower()] then
        kept[#kept + 1] = u
        kept_sources[#kept] = sources.add[k]
      end
    end
    o.add, sources.add = kept, kept_sources
  end
  for _, w in ipairs(skipped or {}) do ctx.stderr:write("opentact: skipped ", w.text, "\n") end
  if #o.add + #o.remove + #o.not_on == 0 then
    client:close()
    return usage_error(ctx, "nothing to assign: give --add, --remove or a file")
  end
  -- what CONN holds already is not sent, nor a remove of what it does not
  -- hold; a lease another connection or an app holds is taken with
  -- --move only, and refused, nothing sent, without it
  local conn = target.uuid
  local kept, not_on, held, by_app, unproven = {}, {}, {}, {}, {}
  local adds, removes = {}, {}
  for k, u in ipairs(o.add) do
    local lease = o.leases[lower(u)]
    local h = lease and holder(lease)
    local x = { uuid = u, number = o.numbers[lower(u)], holder = h, where = sources.add[k] }
    if h and h.kind == target.kind and lower(h.uuid) == conn then
      -- already on CONN when CONN's own list says so; else its holder is
      -- not known, and nothing is sent for it
      if o.holding[lower(u)] then kept[#kept + 1] = x else unproven[#unproven + 1] = u end
    else
      if h then held[#held + 1] = x end
      -- (one on the other kind of holder is released there first)
      if h and h.kind ~= target.kind then by_app[#by_app + 1] = u else adds[#adds + 1] = u end
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
      local e = common.error("network", "interrupted before the request was sent")
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
    local e = common.error("protocol", "its lookup says the connection holds it, but the "
      .. "connection's own list does not hold it; nothing was sent for it")
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
      local e = common.error("not_found", "the lease was no longer in the account")
      local gone = {}
      for i, x in ipairs(pre.missing) do gone[i] = x end
      report.failed[#report.failed + 1] = { add = gone, remove = {}, err = e }
    end
    report.unverified = pre.unverified
    report.interrupted = report.interrupted or pre.interrupted
    report.ok = #report.failed == 0 and not report.unverified and not report.interrupted
  end
  if pre then
    -- a lease on the other kind of holder was taken from the holder sync
    -- found when it ran (the one it released it from), not from the one
    -- the lookup saw; one on a holder of the target's kind stays as seen
    local released, planned = {}, {}
    for _, r in ipairs(pre.released or {}) do
      local kind = r.kind or "app"
      for _, u in ipairs(r.leases) do released[lower(u)] = { kind = kind, uuid = r[kind] } end
    end
    for _, l in ipairs(pre.add) do
      if type(l) == "table" and type(l.uuid) == "string" then planned[lower(l.uuid)] = l end
    end
    for _, x in ipairs(held) do
      if x.holder.kind ~= target.kind then
        local from, l = released[lower(x.uuid)], planned[lower(x.uuid)]
        if from then
          local h = l and holder(l, from.kind == "app" and "sip_control_app" or "sip_connection")
          x.holder = { kind = from.kind, uuid = from.uuid,
            name = h and lower(h.uuid) == lower(from.uuid) and h.name or nil }
        else
          -- no longer on an app when sync ran: its holder then, if any
          x.holder = l and holder(l) or nil
        end
      end
    end
  end
  -- what moved: the leases taken from another holder that CONN holds now
  local moved, now_held = {}, {}
  for _, u in ipairs(report.applied.add) do now_held[lower(u)] = true end
  for _, x in ipairs(held) do
    if now_held[lower(x.uuid)] and x.holder then moved[#moved + 1] = x end
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
    local already, absent, taken, skipped_texts = {}, {}, {}, {}
    for i, w in ipairs(skipped or {}) do skipped_texts[i] = w.text end
    for i, x in ipairs(kept) do already[i] = x.uuid end
    for i, x in ipairs(not_on) do absent[i] = x.given end
    for i, x in ipairs(moved) do
      taken[i] = { uuid = x.uuid, number = x.number, from = { kind = x.holder.kind, uuid = x.holder.uuid,
        name = x.holder.name } }
    end
    ctx.stdout:write(json({ ok = report.ok, applied = report.applied, failed = failed,
      leases = setmetatable(report.leases, nil), already_on_target = already, not_on_target = absent,
      moved = taken, skipped = skipped_texts, unverified = report.unverified and error_json(report.unverified) or nil }),
      "\n")
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
    local target_text = pretty.safe(o.positional[2])
    for _, x in ipairs(kept) do
      rows[#rows + 1] = outcome(x.uuid, x.number, "add", "unchanged", nil, "already on " .. target_text)
    end
    for _, x in ipairs(not_on) do
      local uuid, number = x.given, nil
      if not is_uuid(uuid) then uuid, number = nil, (number_of(x.given)) end
      rows[#rows + 1] = outcome(uuid, number, "remove", "unchanged", nil, "not on " .. target_text)
    end
    for _, w in ipairs(skipped or {}) do rows[#rows + 1] = outcome(nil, nil, w.kind, "skipped", nil, w.text) end
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
        common.shell_words({ o.positional[2] }), #failed_add > 0 and " --add-file " .. o.failed_file or "",
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

return M
