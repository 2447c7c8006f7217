-- Puts the leases of the numbers in NUMBERS_FILE on CONN, against the
-- emulator (whose latency the harness set), one of these ways:
--   sync: client:sync, which reads, resolves, plans, applies and reads back;
--   plan: client:plan, then client:apply of that plan (its stale check
--         first: the target, and the leases modified since the plan), as
--         `opentact plan` + `apply` do;
--   reread: the same, applied with reread = true (every planned lease
--         read again);
--   resume: plan, then an apply with a journal stopped half-way (its
--         on_progress raises once half the leases are confirmed), then the
--         same apply and journal again: prints the POSTs the second apply
--         sent and how many leases they carried, beside its wall time;
--   hand: what a user would write by hand with the same library:
--         search_all, pick the leases of the numbers, assign_batched.
-- Prints wall seconds. Usage: sync.lua sync|plan|reread|resume|hand BASE_URL CONN CONCURRENCY NUMBERS_FILE
local opentact = require("opentact")
local core = require("opentact.core")
local how, base, conn, concurrency, file = arg[1], arg[2], arg[3], tonumber(arg[4]), arg[5]
local numbers = {}
for line in io.lines(file) do numbers[#numbers + 1] = tonumber(line) end
-- POST requests as the log hook hears them, when counting
local posts, counting = 0, false
local client = opentact.new({ token = "emulator-token", base_url = base, log = function(e)
  if counting and e.method == "POST" and e.path:find("/tnlease$") then posts = posts + 1 end
end })
local t0 = core.now()
if how == "sync" then
  local report = assert(client:sync(conn, { numbers = numbers }, { concurrency = concurrency }))
  assert(report.ok and #report.applied.add == #numbers, tostring(report))
elseif how == "plan" or how == "reread" then
  local plan = assert(client:plan(conn, { numbers = numbers }, { concurrency = concurrency }))
  local report = assert(client:apply(plan, { concurrency = concurrency, reread = how == "reread" }))
  assert(report.ok and #report.applied.add == #numbers, tostring(report))
elseif how == "resume" then
  local plan = assert(client:plan(conn, { numbers = numbers }, { concurrency = concurrency }))
  local journal = os.tmpname()
  os.remove(journal)
  local half = #numbers // 2
  local stop = {}
  local first = client:apply(plan, { concurrency = concurrency, journal = journal, on_progress = function(done)
    if done >= half then error(stop, 0) end
  end })
  assert(first.interrupted == stop, "the first apply was not stopped half-way")
  local confirmed = #first.applied.add
  t0, counting = core.now(), true
  local report = assert(client:apply(plan, { concurrency = concurrency, journal = journal }))
  counting = false
  os.remove(journal)
  assert(report.ok, tostring(report))
  print(("wall_s=%.4f confirmed=%d posts=%d"):format(core.now() - t0, confirmed, posts))
  return
else
  local all = assert(client:search_all(nil, { concurrency = concurrency }))
  local want, uuids = {}, {}
  for _, n in ipairs(numbers) do want[n] = true end
  for _, lease in ipairs(all) do
    if want[lease.tn.tn] then uuids[#uuids + 1] = lease.uuid end
  end
  local report = client:assign_batched(conn, { add = uuids }, { concurrency = concurrency })
  assert(report.ok and #report.applied.add == #numbers, tostring(report))
end
print(("wall_s=%.4f"):format(core.now() - t0))
