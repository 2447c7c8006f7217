---@meta opentact
---lua-opentact: Opentact's SIP TN lease API from Lua. Attach TN leases
---(phone numbers) to a SIP connection, detach them, list what a
---connection holds, find leases by number or search, and bring a
---connection to a desired set of numbers.
---
---Every `Client` method that asks the server (`list`, `assign`, `lease`,
---`search`, `search_all`, `sync`, `plan`, `plan_routes`, `apply`, `assign_batched`, `list_many`, `token`)
---also exists at module level, on the default client, made on first use
---from the environment (`OPENTACT_TOKEN`, or `OPENTACT_EMAIL` and
---`OPENTACT_PASSWORD`; `OPENTACT_URL`). Misuse (a wrong argument type, an
---unknown option) raises at the caller's line, naming the argument; a value
---of the right type that is wrong (a string that is no uuid or phone
---number, an empty change set) and everything the network or the server
---can cause come back as `nil, err` (see `Error`).
---Every metatable a value from the library carries is exported under its
---`__name`: `opentact.Client`, `opentact.Error`, `opentact.Leases`,
---`opentact.Lease`, `opentact.Page`, `opentact.Report`,
---`opentact.SyncReport`, `opentact.Plan`, `opentact.Results`, `opentact.Target` and
---`opentact.Holders`; `getmetatable(x) ==
---opentact.Error` tells an error, and `setmetatable(t, opentact.Leases)`
---prints a list made by hand as `list` does. `opentact.Object` marks the
---empty JSON objects of answers.

-- LuaLS (lua-language-server) definitions of lua-opentact's public API,
-- for completion, hovers and type checks in editors; nothing here runs.
-- The rock installs this folder in its own directory: add
-- `$(luarocks show --rock-dir opentact)/types` to `Lua.workspace.library`
-- (or this checkout's types/). `make docs` builds the API reference from
-- this file, and spec/50-types_spec.lua fails when it and the code
-- disagree on a function, a method, an option or a field.

-- the module --

---The module: the client methods that ask the server also exist here, on the default client,
---made on first use from the environment (`OPENTACT_TOKEN`, or
---`OPENTACT_EMAIL` and `OPENTACT_PASSWORD`; `OPENTACT_URL`).
---@class opentact
---@field Error table the metatable of error tables: `getmetatable(err) == opentact.Error`
---@field Leases table the metatable of lease lists (it prints them as a table)
---@field Lease table the metatable of one lease (`lease`, and each lease of a list): it prints it as one line
---@field Page table the metatable of `search`'s pages (it prints their place in the results, then their leases)
---@field Report table the metatable of `assign_batched`'s reports (it prints a summary; `failed_uuids`)
---@field SyncReport table the metatable of `sync`'s reports (it prints the plan; `failed_uuids`)
---@field Plan table the metatable of plans (`plan`, a dry run of `sync`, `decode_plan`): it prints the plan, summary first; `encode`
---@field RoutesPlan table the metatable of routes plans (`plan_routes`, `decode_plan`): it prints the plan, summary first; `encode`
---@field RoutesReport table the metatable of the reports `apply` gives for a routes plan (it prints the plan with what was applied; `failed_uuids`)
---@field Results table the metatable of `list_many`'s results (a line per connection)
---@field Target table the metatable of targets `target` returns (it prints "SIP connection NAME (uuid)")
---@field Holders table the metatable of `connections` and `apps` lists (it prints them as a table)
---@field Object table the metatable of every empty object `{}` of a decoded answer (and of one whose members were all null): `getmetatable(t) == opentact.Object` tells it from an empty array `[]`, which has none. It holds only `__name`; such tables stay plain for `next`, `pairs` and `#`.
local opentact = {}

---The library's version, `"opentact 0.1.0"`.
---@type string
opentact._VERSION = ...

---The API root a client uses when neither `base_url` nor `OPENTACT_URL` gives
---one: `"https://api.opentact.org/rest"`.
---@type string
opentact.DEFAULT_URL = ...

---The metatable of clients (it holds their methods):
---`getmetatable(x) == opentact.Client`.
---@type opentact.Client
opentact.Client = ...

---Creates a client. Misuse (an unknown option, a wrong type) raises.
---@param opts? opentact.Options
---@return opentact.Client client
function opentact.new(opts) end

---Replaces the default client (closing the old one, whose pending
---callbacks run now) with one made from `opts`; returns it.
---@param opts? opentact.Options
---@return opentact.Client client
function opentact.configure(opts) end

---`Client:list` on the default client.
---@param target opentact.TargetArg a SIP connection (its uuid), or a SIP control app (`{app = uuid}`, or what `target` returns)
---@param opts? opentact.CallOptions the call's deadline (a function here is the callback)
---@param callback? fun(leases: opentact.Leases?, err: opentact.Error?) run the request in the background
---@return opentact.Leases? leases (`true` at once with a callback)
---@return opentact.Error? err
function opentact.list(target, opts, callback) end

---`Client:assign` on the default client.
---@param target opentact.TargetArg a SIP connection (its uuid), or a SIP control app (`{app = uuid}`, or what `target` returns)
---@param changes opentact.Changes the uuids to attach and detach
---@param opts? opentact.CallOptions the call's deadline (a function here is the callback)
---@param callback? fun(leases: opentact.Leases?, err: opentact.Error?) run the request in the background
---@return opentact.Leases? leases (`true` at once with a callback)
---@return opentact.Error? err
function opentact.assign(target, changes, opts, callback) end

---`Client:lease` on the default client.
---@param number string|integer a phone number, or a lease uuid
---@param opts? opentact.CallOptions the call's deadline (a function here is the callback)
---@param callback? fun(lease: opentact.Lease?, err: opentact.Error?) run the request in the background
---@return opentact.Lease? lease (`true` at once with a callback)
---@return opentact.Error? err
function opentact.lease(number, opts, callback) end

---`Client:token` on the default client.
---@return string? token
---@return opentact.Error? err
function opentact.token() end

---`Client:search` on the default client.
---@param filter? opentact.Filter nil for every lease
---@param opts? opentact.SearchOptions|fun(page: opentact.Page?, err: opentact.Error?)
---@param callback? fun(page: opentact.Page?, err: opentact.Error?) run the request in the background
---@return opentact.Page? page (`true` at once with a callback)
---@return opentact.Error? err
function opentact.search(filter, opts, callback) end

---`Client:search_all` on the default client.
---@param filter? opentact.Filter nil for every lease
---@param opts? opentact.SearchAllOptions
---@return opentact.Leases? leases
---@return opentact.Error? err
function opentact.search_all(filter, opts) end

---`Client:sync` on the default client.
---@param target opentact.TargetArg a SIP connection (its uuid), or a SIP control app (`{app = uuid}`, or what `target` returns)
---@param desired opentact.Desired `{numbers = {...}}`, `{leases = {...}}` or `{all_leases = true}`
---@param opts? opentact.SyncOptions
---@return opentact.SyncReport? report
---@return opentact.Error? err
function opentact.sync(target, desired, opts) end

---`Client:plan` on the default client.
---@param target opentact.TargetArg a SIP connection (its uuid), or a SIP control app (`{app = uuid}`, or what `target` returns)
---@param desired opentact.Desired `{numbers = {...}}`, `{leases = {...}}` or `{all_leases = true}`
---@param opts? opentact.PlanOptions
---@return opentact.Plan? plan
---@return opentact.Error? err
function opentact.plan(target, desired, opts) end

---`Client:plan_routes` on the default client.
---@param routes opentact.Route[]
---@param opts? opentact.RoutesOptions
---@return opentact.RoutesPlan? plan
---@return opentact.Error? err
function opentact.plan_routes(routes, opts) end

---`Client:apply` on the default client.
---@param plan opentact.Plan|opentact.RoutesPlan what `plan`, `plan_routes` or `decode_plan` returned
---@param opts? opentact.ApplyOptions
---@return (opentact.SyncReport|opentact.RoutesReport)? report
---@return opentact.Error? err
function opentact.apply(plan, opts) end

---The plan a saved plan's text (`plan:encode()`) holds. `invalid` when the
---text is not JSON, not a plan, from a newer lua-opentact, or damaged or
---edited by hand (its content does not match its hash).
---@param text string
---@return (opentact.Plan|opentact.RoutesPlan)? plan
---@return opentact.Error? err
function opentact.decode_plan(text) end

---`Client:assign_batched` on the default client.
---@param target opentact.TargetArg a SIP connection (its uuid), or a SIP control app (`{app = uuid}`, or what `target` returns)
---@param changes opentact.Changes the uuids to attach and detach
---@param opts? opentact.BatchOptions
---@return opentact.Report report
function opentact.assign_batched(target, changes, opts) end

---`Client:list_many` on the default client.
---@param list opentact.TargetArg[] the connections' uuids, or any targets
---@param opts? opentact.ListManyOptions
---@return opentact.ListResult[] results in input order
function opentact.list_many(list, opts) end

---`Client:connections` on the default client.
---@return opentact.Holders? connections
---@return opentact.Error? err
function opentact.connections() end

---`Client:apps` on the default client.
---@return opentact.Holders? apps
---@return opentact.Error? err
function opentact.apps() end

---`Client:target` on the default client.
---@param x string|opentact.TargetArg a uuid, a name, `"app:NAME-or-UUID"`, `"connection:NAME-or-UUID"`, or a target table
---@return opentact.Target? target
---@return opentact.Error? err
function opentact.target(x) end

---`Client:update_lease` on the default client.
---@param lease string|integer|opentact.Lease a lease uuid, a phone number (looked up first), or a lease
---@param fields opentact.LeaseSettings what to change
---@return opentact.Lease? lease
---@return opentact.Error? err
function opentact.update_lease(lease, fields) end

---A phone number in any form people type (`"+1 (212) 555-1234"`, an
---integer) as a Lua number: an integer on Lua 5.3+. At most 15 digits
---(E.164), never a leading 0; anything else is `invalid`, saying why.
---@param x string|integer
---@return integer? number
---@return opentact.Error? err
function opentact.number(x) end

---Whether `s` is a lease uuid: 8-4-4-4-12 hex digits, in either case, and
---nothing else.
---@param s any
---@return boolean
function opentact.is_uuid(s) end

---Whether the phone number `given`, as written, may be `tn` without its
---country code: written without a leading `+`, of 7 digits or more, and
---the end of `tn`'s digits (never `tn` itself). `sync` refuses to detach
---such a `tn` when `given` is missing from the account.
---@param given string|integer
---@param tn string|integer
---@return boolean
function opentact.is_national(given, tn) end

---Who holds `lease`: through `field`, or without it its SIP control app,
---else its SIP connection; nil when nobody does.
---@param lease opentact.Lease
---@param field? "sip_connection"|"sip_control_app"
---@return opentact.LeaseHolder? holder
function opentact.holder(lease, field) end

---Whether `opentact.new(opts)` (and `opentact.configure(opts)`) would take
---`opts`, with the environment as it is now (OPENTACT_TOKEN, ...): `true`,
---or `nil, err` (`invalid`, naming the option in `err.option` and, when its
---value is the problem, what it takes in `err.expected`; never a value).
---Never raises: `new` raises with the same message.
---@param opts? opentact.Options
---@return true? ok
---@return opentact.Error? err
function opentact.check_options(opts) end

-- values --

---The strings `err.kind` can be.
---@alias opentact.ErrorKind
---| "invalid"      # bad input (a bad uuid, an empty change set, an invalid number); nothing was sent
---| "auth"         # 401 or 403, wrong credentials, or no token at all
---| "not_found"    # 404
---| "rejected"     # another 4xx
---| "rate_limited" # 429
---| "server"       # 5xx
---| "timeout"      # connect or whole-attempt timeout
---| "network"      # refused, reset, truncated answer, interrupted, closed
---| "tls"          # TLS handshake or verification failed
---| "protocol"     # an answer that is not JSON or not the documented shape, success false on a 2xx, a redirect, an answer over max_body
---| "interrupted"  # only as a report's `interrupted`: your code stopped the run by raising nil or false (kept in `value`)
---| "stale"        # `apply`: the server no longer looks as it did when the plan was made (`err.moved`); nothing was changed

---An error, returned as `nil, err` for everything the network or the
---server can cause (misuse raises instead). `tostring(err)` is one line:
---`opentact: not_found (404): SIP connection not found [GET /sip/connection/66eb…/tnlease, 1 attempt]`.
---Its metatable is `opentact.Error`. No secret is ever in it.
---@class opentact.Error
---@field kind opentact.ErrorKind what went wrong
---@field status? integer the HTTP status, when the server answered
---@field message string the server's `message` when it gave one, else a clear sentence
---@field retryable boolean whether retrying could help
---@field attempts integer attempts made (0: nothing was sent)
---@field retry_after? number seconds the server asked to wait, when it said so
---@field method? string the request's HTTP method
---@field path? string the request's path
---@field sent? boolean `false` when the request certainly never reached the server; `true` when it may have been applied
---@field index? integer `sync`: the position of the invalid item in `numbers` or `leases`
---@field problems? string[] `plan_routes`: every problem of the routes, each naming its route ("line 12: ..." or "routes[3]: ...")
---@field candidates? opentact.Target[] `target`: an ambiguous name's candidates
---@field option? string `check_options`: the option that is refused
---@field expected? string `check_options`: what the option takes, when its value is the problem
---@field value? nil|false kind `interrupted`: the value your code raised
---@field moved? opentact.Moved[] `stale`: each lease that is not where the plan found it
local Error = {}

---A lease a stale plan names: where it was when planned, where it is now.
---@class opentact.Moved
---@field uuid string the lease's uuid, lower-cased
---@field tn? integer its phone number, when the plan knows it
---@field planned? opentact.PlanHolder|false its holder when planned (false: none); nil for a lease the plan does not list (with `exact`: one the target holds now)
---@field now opentact.PlanHolder|false its holder now (false: none, or the account no longer has it: the message says which)
local Moved = {}

---A holder as a plan records it.
---@class opentact.PlanHolder
---@field kind "connection"|"app" a SIP connection or a SIP control app
---@field uuid string its uuid, lower-cased
---@field name? string its name, when the server sent one (saved and hashed with the plan)
local PlanHolder = {}

---What a call that takes a connection takes: a SIP connection's uuid (a
---string: never a name), `{app = uuid}`, `{connection = uuid}`, or a
---resolved target (what `Client:target` returns).
---@alias opentact.TargetArg string|{app: string}|{connection: string}|opentact.Target

---A target resolved by `Client:target`: a SIP connection or a SIP control
---app. It prints as "SIP connection NAME (uuid)"; its metatable is
---`opentact.Target`.
---@class opentact.Target
---@field kind "connection"|"app"
---@field uuid string its uuid, lower-cased
---@field name? string its name
local Target = {}

---The account's SIP connections (`Client:connections`) or control apps
---(`Client:apps`) as the server sent them, every field kept: a plain array
---whose metatable `opentact.Holders` prints it as a table (uuid, name,
---state). A connection has `uuid`, `name`, `is_active`, `tech_prefix`, `ip`,
---`port`, `hostname`, `product`, `sip_domains`, `account`, ...; a control
---app `uuid`, `name`, `is_active`, `webhook_url`, `webhook_method`,
---`webhook_request_timeout`, ...
---@alias opentact.Holders table[]

---What `Client:update_lease` may change; any other field (the holders
---among them: they change through `assign` and `sync`), or a value of the
---wrong type, raises.
---@class opentact.LeaseSettings
---@field autorenew? boolean whether the lease renews itself
---@field messaging_profile? string|false a messaging profile's uuid, or false for none
---@field voice? boolean
---@field fax? boolean
---@field sms? boolean
---@field mms? boolean
---@field emergency? boolean
local LeaseSettings = {}

---Who holds a lease, as `opentact.holder` says it.
---@class opentact.LeaseHolder
---@field kind "connection"|"app" a SIP connection or a SIP control app
---@field uuid string its uuid, as the server wrote it
---@field name? string its name, when the server sent one

---A SIP connection or control app as a lease names it.
---@class opentact.Holder
---@field uuid string its uuid
---@field [string] any every other field the server sent
local Holder = {}

---A lease's phone number, as the server sent it.
---@class opentact.Tn
---@field tn integer the phone number, `12125551234` (an integer on Lua 5.3+)
---@field [string] any every other field the server sent
local Tn = {}

---A TN lease, decoded from the server's answer with every field it sent;
---JSON `null` becomes `nil` (the key is absent).
---@class opentact.Lease
---@field uuid string the lease's uuid
---@field tn opentact.Tn the phone number it holds
---@field autorenew boolean whether it renews itself
---@field created_on string ISO-8601 date
---@field modified_on string ISO-8601 date
---@field expired_on string ISO-8601 date
---@field sip_connection? opentact.Holder the SIP connection that holds it
---@field sip_control_app? opentact.Holder the SIP control app that holds it
---@field [string] any every other field the server sent
local Lease = {}

---A list of leases (`Lease`): a plain array (`#`, `ipairs`, JSON
---encoding), whose metatable `opentact.Leases` prints it as a table
---(uuid, number, expiry, autorenew).
---@alias opentact.Leases opentact.Lease[]

---One page of a search (`Client:search`); it prints as its place in the
---results and its leases.
---@class opentact.Page
---@field total integer how many leases match the whole search
---@field take integer the page size asked for
---@field skip integer the offset of this page
---@field data opentact.Leases the page's leases (the server may cap a page below `take`)
---@field [string] any every other field the server sent
local Page = {}

---Lease uuids to attach (`add`) and detach (`remove`). Uuids are
---8-4-4-4-12 hex digits; at least one list must be non-empty, and a uuid
---listed twice, or in both lists, is `invalid`.
---@class opentact.Changes
---@field add? string[] lease uuids to attach
---@field remove? string[] lease uuids to detach
local Changes = {}

---The uuids the API confirmed, in input order.
---@class opentact.Applied
---@field add string[] uuids attached
---@field remove string[] uuids detached
local Applied = {}

---Uuids that failed for the same reason.
---@class opentact.Failure
---@field add string[] the adds
---@field remove string[] the removes
---@field err opentact.Error why
local Failure = {}

---The report of `assign_batched`: every input uuid is in `applied` or in
---exactly one `failed` entry. `print(report)` gives a summary line and one
---line per failed entry; its metatable is `opentact.Report`.
---@class opentact.Report
---@field ok boolean every uuid applied, and the run not interrupted?
---@field applied opentact.Applied the uuids the API confirmed, in input order
---@field failed opentact.Failure[] the uuids not applied, grouped by reason
---@field leases opentact.Leases the payloads of the successful requests
---@field interrupted? any set when the run was stopped (Ctrl-C, or an error your code raised): the error value that stopped it, `"interrupted!"` for Ctrl-C; for a value raised as nil or false, an `opentact.Error` of kind `interrupted` holding it in `value`
---@field failed_uuids fun(self: opentact.Report): string[], string[] the adds and the removes to run again, in the order they failed
local Report = {}

---The report of `sync`: a plan, applied and checked. Every desired item is
---in exactly one of `keep`, `add`, `missing` and `conflicts`; after
---applying, every planned uuid is in `applied` or in `failed`.
---`print(report)` shows the plan the way `terraform plan` does.
---@class opentact.SyncReport
---@field ok boolean the read-back holds every desired lease and, with `exact`, nothing else (a dry run: nothing blocks the plan)
---@field dry_run boolean whether nothing was to be changed
---@field add opentact.Leases leases to attach, as found before the change
---@field remove opentact.Leases leases to detach (only with `exact = true`)
---@field keep opentact.Leases desired leases already on the connection
---@field missing any[] desired numbers or uuids the account does not hold, as given
---@field conflicts opentact.Leases desired leases held by another SIP connection or a control app, left alone (`move = false`)
---@field applied opentact.Applied the uuids attached and detached, confirmed
---@field failed opentact.Failure[] the planned uuids not applied, grouped by reason
---@field target string the target's uuid, lower-cased (a SIP connection: `connection`; a control app: `app`)
---@field target_kind "connection"|"app" what the target is
---@field target_name? string the target's name, when it was given as a resolved target
---@field connection? string the SIP connection's uuid, for a connection
---@field app? string the SIP control app's uuid, for a control app
---@field renew opentact.Leases the desired leases whose autorenew the plan sets (`autorenew` asked), as found
---@field options opentact.PlanOptionsUsed the options the plan was made with
---@field renewed opentact.Renewed what was done of `renew`
---@field released? opentact.Released[] the leases released from the other kind of holder first (moves off apps onto a connection, off connections onto an app; `move = true`)
---@field unexpected string[] `exact = true`: the uuids the read-back shows on the connection that were neither desired nor planned to be detached (attached by someone else meanwhile); they make `ok` false. Empty otherwise.
---@field unverified? opentact.Error the connection could not be read back after applying
---@field interrupted? any set when the run was stopped (Ctrl-C, or an error your code raised): the error value that stopped it; for a value raised as nil or false, an `opentact.Error` of kind `interrupted` holding it in `value`
---@field away? opentact.Leases a routes plan's target report: the leases the routes send from this target to another of its targets
---@field failed_uuids fun(self: opentact.SyncReport): string[], string[] the adds and the removes to run again, in the order they failed
local SyncReport = {}

---What `sync` would do, changing nothing (`plan`, a dry run of `sync`,
---`decode_plan`): the fields of a dry run's report, and for every lease it
---names its holder when planned. `print(plan)` is the listing, summary
---line first; `plan:encode()` its JSON text. `apply` does exactly it.
---@class opentact.Plan
---@field ok boolean nothing blocks the plan: nothing is missing and nothing conflicts
---@field dry_run true a plan changes nothing
---@field connection? string the SIP connection's uuid, lower-cased, for a connection
---@field app? string the SIP control app's uuid, lower-cased, for a control app
---@field target string the target's uuid, lower-cased
---@field target_kind "connection"|"app" what the target is (saved with the plan)
---@field target_name? string the target's name, when it was given as a resolved target (saved with the plan)
---@field add opentact.Leases leases to attach, as found when planning
---@field remove opentact.Leases leases to detach (only with `exact = true`)
---@field keep opentact.Leases desired leases already on the connection
---@field missing any[] desired numbers or uuids the account does not hold, as given
---@field conflicts opentact.Leases desired leases held elsewhere, left alone (`move = false`)
---@field applied opentact.Applied empty: nothing is applied by planning
---@field failed opentact.Failure[] empty
---@field unexpected string[] empty
---@field holders table<string, opentact.PlanHolder|false> the holder of every lease the plan names (by lower-case uuid) when planned; false: none
---@field held string[] `exact = true`: the other leases the connection held when planned (`apply` refuses a target that holds more)
---@field renew opentact.Leases with `autorenew`: the desired leases whose autorenew differs, each as found (its `autorenew` what it was); `apply` sets them after the attaches
---@field options opentact.PlanOptionsUsed the options it was made with
---@field base_url string the API root it was made against; `apply` refuses another
---@field time integer when it was made (`os.time()`)
---@field since? integer the server's time (seconds since the epoch, from its Date header) at or before its first read, less 60 s: `apply` asks the server which leases were modified since then. Saved with the plan; nil when the server's answers gave no date (then `apply` reads every planned lease again)
---@field version integer its format version (1)
---@field hash string the SHA-256 of its content (hex): a plan changed after it was made is refused
---@field note? string the `note` it was made with
---@field away? opentact.Leases a routes plan's target plan: the leases it holds that the routes send to another of its targets (their moves are there)
---@field renew_to? table<string, boolean> a routes plan's target plan: the autorenew each lease of `renew` is set to (by lower-case uuid), as its route says
---@field failed_uuids fun(self: opentact.Plan): string[], string[] empty lists: nothing failed
---@field encode fun(self: opentact.Plan): string?, opentact.Error? its JSON text, `{"format": "opentact-plan", "version": 1, ..., "hash": ...}`; `invalid` when it was changed after it was made
local Plan = {}

---One route of `plan_routes`: a lease (by its number or its uuid) and the
---target it goes to.
---@class opentact.Route
---@field number? string|number the lease's phone number (give this or `lease`)
---@field lease? string|table the lease's uuid, or a lease (give this or `number`)
---@field target string|opentact.TargetArg a connection's name or uuid, `"app:NAME-or-UUID"`, `"connection:NAME-or-UUID"`, `{app = uuid}`, `{connection = uuid}` or what `target` returns: resolved as `target` does
---@field autorenew? boolean the lease's autorenew (else the call's `autorenew`, else left as it is)
---@field line? integer the route's line in a file: problems name it ("line 12") instead of its place in the list
local Route = {}

---The options of `plan_routes`.
---@class opentact.RoutesOptions
---@field exact? boolean also detach, from the targets the routes name, every lease the routes do not route there. Default false.
---@field move? boolean take routed leases held by a connection or app the routes do not name (a lease on a named target moves without it). Default false.
---@field autorenew? boolean the autorenew of every routed lease whose route does not say
---@field concurrency? integer requests at once, 1 to 256. Default 4.
---@field page_size? integer the search page size, when paging through the account is cheaper than lookups. Default 100.
---@field note? string as `plan`'s
---@field deadline? number seconds each request may take in all, every attempt, backoff and Retry-After wait included (0.001 to 2147483): a wait that would cross it is not started, an attempt gets what is left of it, and the error says the deadline was reached. Bulk calls apply it to each request. Default: the client's `deadline`.
local RoutesOptions = {}

---A move of a routes plan: a lease routed from one of its targets to another.
---@class opentact.Move
---@field lease opentact.Lease the lease, as found when planning
---@field from opentact.Plan the target plan of the target it leaves
---@field to opentact.Plan the target plan of the target it goes to
local Move = {}

---One plan over every target some routes name (`plan_routes`, `decode_plan`):
---a target plan per target (`targets`, each an `opentact.Plan` of its own
---fields), and their lists in one. `print(plan)` is the listing, summary
---line first, a move as "~ NUMBER FROM → TO"; `plan:encode()` its JSON text.
---`apply` does exactly it: one stale check, every target's batches together.
---@class opentact.RoutesPlan
---@field ok boolean nothing blocks any target's plan
---@field dry_run true
---@field targets opentact.Plan[] a plan per target, in the order of their first route
---@field moves opentact.Move[] the leases routed from one named target to another (each in the `add` of the target it goes to)
---@field add opentact.Leases every target's adds (moves too)
---@field remove opentact.Leases every target's detaches (`exact = true`)
---@field keep opentact.Leases every routed lease already where it is routed
---@field missing any[] routed numbers or uuids the account does not hold
---@field conflicts opentact.Leases routed leases held by a connection or app the routes do not name (`move = false`)
---@field renew opentact.Leases the leases whose autorenew the plan sets
---@field holders table<string, opentact.PlanHolder|false> the holder of every lease the plan names, when planned
---@field options opentact.PlanOptionsUsed the options it was made with
---@field base_url string
---@field time integer
---@field since? integer as a plan's
---@field version integer
---@field hash string the SHA-256 of its content, its target plans' included
---@field note? string
---@field applied opentact.Applied empty: nothing is applied by planning
---@field failed opentact.Failure[] empty
---@field unexpected string[] empty
---@field failed_uuids fun(self: opentact.RoutesPlan): string[], string[] empty lists: nothing failed
---@field encode fun(self: opentact.RoutesPlan): string?, opentact.Error? its JSON text, `{"format": "opentact-plan", "kind": "routes", "targets": [...], "hash": ...}`
local RoutesPlan = {}

---The report `apply` gives for a routes plan: each target's report, and
---their lists in one. `ok` when every target's is.
---@class opentact.RoutesReport
---@field ok boolean
---@field dry_run false
---@field targets opentact.SyncReport[] a report per target, in the plan's order
---@field moves opentact.Move[]
---@field add opentact.Leases
---@field remove opentact.Leases
---@field keep opentact.Leases
---@field missing any[]
---@field conflicts opentact.Leases
---@field renew opentact.Leases
---@field applied opentact.Applied every target's
---@field failed opentact.Failure[] every target's
---@field unexpected string[] every target's
---@field released opentact.Released[] every target's
---@field renewed opentact.Renewed every target's
---@field options opentact.PlanOptionsUsed
---@field unverified? opentact.Error the first target's that could not be read back
---@field interrupted? any as a report's
---@field failed_uuids fun(self: opentact.RoutesReport): string[], string[]
local RoutesReport = {}

---The options a plan was made with.
---@class opentact.PlanOptionsUsed
---@field exact boolean
---@field move boolean
---@field autorenew? boolean the autorenew asked for, when one was
local PlanOptionsUsed = {}

---What `apply` did of a plan's `renew`.
---@class opentact.Renewed
---@field autorenew? boolean the value set
---@field applied string[] the uuids whose autorenew was set, as the target's read-back shows
---@field failed opentact.RenewFailure[] the uuids not set, grouped by reason
local Renewed = {}

---Leases whose autorenew could not be set, and why.
---@class opentact.RenewFailure
---@field uuids string[]
---@field err opentact.Error
local RenewFailure = {}

---Leases released from their holder before they were attached (`sync`
---with `move = true`): from a control app for a connection, from a
---connection for a control app.
---@class opentact.Released
---@field kind "connection"|"app" what they were released from
---@field app? string the control app's uuid
---@field connection? string the connection's uuid
---@field name? string its name, when the server sent one
---@field leases string[] the uuids released
local Released = {}

---What `sync` brings a connection to: exactly one of the three.
---@class opentact.Desired
---@field numbers? (string|integer)[] phone numbers, in any form `opentact.number` reads
---@field leases? (string|{uuid: string})[] lease uuids (or leases)
---@field all_leases? true every lease of the account
local Desired = {}

---The fields of Opentact's lease search; `nil` (or `{}`) for every lease.
---An unknown field or a value of the wrong type raises; a value of the
---right type that is not valid is an `invalid` error and nothing is sent.
---@class opentact.Filter
---@field tn? string|integer a phone number in any form, or a mask: `*` any run of digits, `%` one digit (`"+1 212 555 *"`)
---@field sip_connection? string the leases this SIP connection holds
---@field sip_control_app? string the leases this control app holds
---@field sip_connections_skip? string[] the leases none of these SIP connections holds
---@field autorenew? boolean
---@field mode? "AND"|"OR" how the fields given combine (default `"AND"`)
---@field order? table<"tn"|"created_on"|"modified_on", "ASC"|"DESC"> one field to one direction, `{tn = "ASC"}`
---@field created_on_from? string ISO-8601 date, `"2026-01-31"` or `"2026-01-31T12:00:00Z"`
---@field created_on_to? string ISO-8601 date
---@field modified_on_from? string ISO-8601 date
---@field modified_on_to? string ISO-8601 date
local Filter = {}

---One entry of `list_many`'s results, in input order.
---@class opentact.ListResult
---@field uuid string the target's uuid, as given
---@field kind "connection"|"app" what the target is
---@field leases? opentact.Leases its leases
---@field err? opentact.Error or why not
local ListResult = {}

---What the `log` option's function gets, once per attempt. Never the token.
---@class opentact.LogEvent
---@field method string
---@field path string
---@field status? integer the HTTP status, when the server answered
---@field attempt integer 1 for the first attempt
---@field elapsed number seconds the attempt took
---@field kind? opentact.ErrorKind the error's kind, when it failed
local LogEvent = {}

-- options --

---The options of `list`, `assign` and `lease` (a table before the callback).
---@class opentact.CallOptions
---@field deadline? number seconds each request may take in all, every attempt, backoff and Retry-After wait included (0.001 to 2147483): a wait that would cross it is not started, an attempt gets what is left of it, and the error says the deadline was reached. Bulk calls apply it to each request. Default: the client's `deadline`.
local CallOptions = {}

---The options of `opentact.new` and `opentact.configure`. An unknown
---option, or one of the wrong type, raises naming it. A token function
---is called on first use and once more after a 401. An error a token
---function or the log hook raises leaves the call it came in, as an
---interrupt would (README, "Errors from your code").
---@class opentact.Options
---@field token? string|fun(): string the `X-Auth-Token` (at most 16 KB), or a function that returns it. Default `OPENTACT_TOKEN`.
---@field email? string log in with this email and `password` instead of a token. Default `OPENTACT_EMAIL` when no token is set.
---@field password? string the password to log in with. Default `OPENTACT_PASSWORD` when no token is set.
---@field jwt_cache? table|userdata OpenResty only: an `ngx.shared` dict that keeps logins for every nginx worker
---@field base_url? string the API root, `http(s)://host[:port][/path]`. Default `OPENTACT_URL` or `https://api.opentact.org/rest`.
---@field timeout? number seconds for one whole attempt, 0.001 to 2147483. Default 30.
---@field connect_timeout? number seconds to connect, 0.001 to 2147483. Default 5.
---@field retries? integer extra attempts for retryable failures; 0 disables. Default 2.
---@field backoff? number base delay in seconds of exponential backoff with full jitter, 0 to 86400. Default 0.5.
---@field backoff_max? number cap on one delay and on an honoured `Retry-After`, 0 to 86400. Default 8.
---@field verify? boolean verify the TLS peer and host name; `false` is for local tests only. Default true.
---@field ca_file? string a CA bundle for TLS verification. Default: the system's.
---@field max_body? integer the largest answer accepted, in bytes (1 to 2^53). Default 67108864.
---@field user_agent? string the User-Agent header. Default `lua-opentact/<version>`.
---@field proxy? string a proxy URL. Unset: `https_proxy`/`no_proxy` are honoured for an `https://` base URL only.
---@field retry_post? boolean also retry an `assign` that may have reached the server. Default false.
---@field log? fun(event: opentact.LogEvent) called once per attempt; never sees the token
---@field transport? "curl"|"ngx" libcurl, or OpenResty's cosockets. Default `"ngx"` inside OpenResty, else `"curl"`.
---@field names_ttl? number seconds `target` keeps the account's lists of connections and apps (0 to 86400; a name not in them reads them again once they are 2 s old). Default 30.
---@field deadline? number seconds each request may take in all, every attempt, backoff, Retry-After wait and wait for a login included (0.001 to 2147483; default none: each attempt has `timeout`, retries have `retries`): a wait that would cross it is not started, an attempt gets what is left of it, and the error says the deadline was reached. A call's own replaces it (a call cannot lift it). For a SIP server, well under the SIP retransmit timer.
local Options = {}

---The options of `search`.
---@class opentact.SearchOptions
---@field page_size? integer leases per page asked for (the server may cap it), as for `search_all` and `sync`. Default 100.
---@field take? integer the old name of `page_size` (the server's), still taken; giving both with different values raises
---@field skip? integer the offset of the page. Default 0.
---@field deadline? number seconds each request may take in all, every attempt, backoff and Retry-After wait included (0.001 to 2147483): a wait that would cross it is not started, an attempt gets what is left of it, and the error says the deadline was reached. Bulk calls apply it to each request. Default: the client's `deadline`.
local SearchOptions = {}

---The options of `search_all`.
---@class opentact.SearchAllOptions
---@field page_size? integer the page size asked for. Default 100.
---@field concurrency? integer pages at once, 1 to 256. Default 4.
---@field on_progress? fun(done: integer, total: integer) called as pages come in, with the leases read so far and the total; an error it raises stops the search and leaves `search_all`
---@field deadline? number seconds each request may take in all, every attempt, backoff and Retry-After wait included (0.001 to 2147483): a wait that would cross it is not started, an attempt gets what is left of it, and the error says the deadline was reached. Bulk calls apply it to each request. Default: the client's `deadline`.
local SearchAllOptions = {}

---The options of `assign_batched`.
---@class opentact.BatchOptions
---@field batch_size? integer uuids per request at most. Default 100.
---@field concurrency? integer requests at once, 1 to 256. Default 4.
---@field on_progress? fun(done: integer, total: integer) called as requests finish, with the uuids done so far and their total; an error it raises stops the run, as an interrupt (the report's `interrupted`)
---@field deadline? number seconds each request may take in all, every attempt, backoff and Retry-After wait included (0.001 to 2147483): a wait that would cross it is not started, an attempt gets what is left of it, and the error says the deadline was reached. Bulk calls apply it to each request. Default: the client's `deadline`.
local BatchOptions = {}

---The options of `list_many`.
---@class opentact.ListManyOptions
---@field concurrency? integer requests at once, 1 to 256. Default 8.
---@field on_progress? fun(done: integer, total: integer) called as lists come in; an error it raises leaves `list_many`
---@field deadline? number seconds each request may take in all, every attempt, backoff and Retry-After wait included (0.001 to 2147483): a wait that would cross it is not started, an attempt gets what is left of it, and the error says the deadline was reached. Bulk calls apply it to each request. Default: the client's `deadline`.
local ListManyOptions = {}

---The options of `sync`.
---@class opentact.SyncOptions
---@field exact? boolean also detach every lease the connection holds that is not desired. Default false.
---@field move? boolean take desired leases held by another SIP connection or a control app. Default false.
---@field dry_run? boolean plan and report, change nothing. Default false.
---@field batch_size? integer uuids per request at most. Default 100.
---@field concurrency? integer requests at once, 1 to 256. Default 4.
---@field page_size? integer the search page size, when paging through the account is cheaper than lookups. Default 100.
---@field on_progress? fun(done: integer, total: integer) called as the changes' requests finish; an error it raises stops the run, as an interrupt (the report's `interrupted`)
---@field autorenew? boolean make every desired lease's autorenew this, as part of the plan (`renew`): one `PATCH /lease/tn/{uuid}` per lease that differs, after the attaches. Unset: autorenew is left as it is.
---@field deadline? number seconds each request may take in all, every attempt, backoff and Retry-After wait included (0.001 to 2147483): a wait that would cross it is not started, an attempt gets what is left of it, and the error says the deadline was reached. Bulk calls apply it to each request. Default: the client's `deadline`.
local SyncOptions = {}

---The options of `plan`.
---@class opentact.PlanOptions
---@field exact? boolean also detach every lease the connection holds that is not desired. Default false.
---@field move? boolean take desired leases held by another SIP connection or a control app. Default false.
---@field concurrency? integer requests at once, 1 to 256. Default 4.
---@field page_size? integer the search page size, when paging through the account is cheaper than lookups. Default 100.
---@field note? string what the plan was made from, in its maker's words (at most 4096 bytes): saved and hashed with it, never read by `apply` (the command line keeps the input of `opentact plan` there, to say how to make a stale plan again)
---@field autorenew? boolean make every desired lease's autorenew this, as part of the plan (`renew`, saved and hashed with it)
---@field deadline? number seconds each request may take in all, every attempt, backoff and Retry-After wait included (0.001 to 2147483): a wait that would cross it is not started, an attempt gets what is left of it, and the error says the deadline was reached. Bulk calls apply it to each request. Default: the client's `deadline`.
local PlanOptions = {}

---The options of `apply`.
---@class opentact.ApplyOptions
---@field batch_size? integer uuids per request at most. Default 100.
---@field concurrency? integer requests at once, 1 to 256. Default 4.
---@field page_size? integer the search page size of the stale check, when paging through the account is cheaper than lookups. Default 100.
---@field on_progress? fun(done: integer, total: integer) called as the changes' requests finish; an error it raises stops the run, as an interrupt
---@field journal? string a file each confirmed batch is appended to (and fsynced); run again with the same plan and journal, `apply` skips what it confirms and finishes the rest. A journal of another plan, one another apply holds (locked), or one that is not a regular file is `invalid`.
---@field reread? boolean read every planned lease again in the stale check instead of asking the server which leases were modified since the plan (default false; for a server whose modified_on cannot be trusted)
---@field deadline? number seconds each request may take in all, every attempt, backoff and Retry-After wait included (0.001 to 2147483): a wait that would cross it is not started, an attempt gets what is left of it, and the error says the deadline was reached. Bulk calls apply it to each request. Default: the client's `deadline`.
local ApplyOptions = {}

-- the client --

---A client: its options, resolved once, and one engine (retries, backoff,
---concurrency) over one transport. `tostring(client)` shows the base URL,
---the transport and how it authenticates, never a secret. Closed by
---`close`, on garbage collection, and on `<close>` (Lua 5.4).
---Calls with a `callback` return `true` at once; the callback is called
---from `Client:step`, never before the call returns.
---@class opentact.Client
local Client = {}

---Lists the TN leases assigned to a target: a SIP connection or a SIP
---control app. A read: retried after a network failure, a timeout, a 429
---or a 5xx.
---@param target opentact.TargetArg a SIP connection (its uuid), or a SIP control app (`{app = uuid}`, or what `target` returns)
---@param opts? opentact.CallOptions the call's deadline (a function here is the callback)
---@param callback? fun(leases: opentact.Leases?, err: opentact.Error?) run the request in the background
---@return opentact.Leases? leases the connection's leases (`true` at once with a callback)
---@return opentact.Error? err
function Client:list(target, opts, callback) end

---Assigns (`add`) and unassigns (`remove`) TN leases on a target, in one
---request; retried only when it cannot have been applied (never
---connected, 429, 503), unless `retry_post` is set.
---@param target opentact.TargetArg a SIP connection (its uuid), or a SIP control app (`{app = uuid}`, or what `target` returns)
---@param changes opentact.Changes the uuids to attach and detach
---@param opts? opentact.CallOptions the call's deadline (a function here is the callback)
---@param callback? fun(leases: opentact.Leases?, err: opentact.Error?) run the request in the background
---@return opentact.Leases? leases the leases named, in their new state (`true` at once with a callback)
---@return opentact.Error? err
function Client:assign(target, changes, opts, callback) end

---The lease that holds a phone number (any form `opentact.number` reads),
---or, given a lease uuid, that lease. `not_found` when the account has none.
---@param number string|integer a phone number, or a lease uuid
---@param opts? opentact.CallOptions the call's deadline (a function here is the callback)
---@param callback? fun(lease: opentact.Lease?, err: opentact.Error?) run the request in the background
---@return opentact.Lease? lease the lease (`true` at once with a callback)
---@return opentact.Error? err
function Client:lease(number, opts, callback) end

---The lease of each item (phone numbers in any form opentact.number takes,
---or lease uuids), one lookup each, `concurrency` (16) at once: a table
---from each item's key (the number, the uuid in lower case) to its lease,
---without the items the account has no lease for. An item of the wrong
---type raises; one that is neither a phone number nor a lease uuid is
---`nil, err` (`invalid`, `err.index` the item's), and nothing is sent.
---@param items (integer|string)[]
---@param opts? {concurrency?: integer, deadline?: number}
---@return table<integer|string, opentact.Lease>? leases
---@return opentact.Error? err
function Client:lookup(items, opts) end

---The base URL requests go to.
---@return string
function Client:base_url() end

---Assigns many uuids in batches of at most `batch_size`, `concurrency`
---requests at once; a batch refused with 400, 409 or 422 is split until
---the refused uuids stand alone. Never fails as a whole: the report says
---what was applied and what failed, and why.
---@param target opentact.TargetArg a SIP connection (its uuid), or a SIP control app (`{app = uuid}`, or what `target` returns)
---@param changes opentact.Changes the uuids to attach and detach
---@param opts? opentact.BatchOptions
---@return opentact.Report report
function Client:assign_batched(target, changes, opts) end

---Lists many targets (SIP connections, control apps), `concurrency`
---requests at once.
---@param list opentact.TargetArg[] the connections' uuids, or any targets
---@param opts? opentact.ListManyOptions
---@return opentact.ListResult[] results in input order
function Client:list_many(list, opts) end

---Every SIP connection of the account (`GET /sip/connection`), every field
---the server sent kept; it prints as a table.
---@return opentact.Holders? connections
---@return opentact.Error? err
function Client:connections() end

---Every SIP control app of the account (`GET /sip/app`), the same way.
---@return opentact.Holders? apps
---@return opentact.Error? err
function Client:apps() end

---The target `x` names: a uuid or a name, looked up among connections and
---apps both; `"app:NAME-or-UUID"` or `"connection:NAME-or-UUID"` among one
---kind; or a target table. The lists are kept `names_ttl` seconds and read
---again on a miss, so resolving a thousand names costs two requests.
---`not_found` when none has it; `invalid` when several have the name (the
---message lists every candidate, and `err.candidates` holds them).
---@param x string|opentact.TargetArg
---@return opentact.Target? target
---@return opentact.Error? err
function Client:target(x) end

---Changes a lease's settings (`PATCH /lease/tn/{uuid}`): the lease by
---uuid, as a lease table, or by phone number (looked up first). Returns
---the lease as the server answers. A field that is not a setting raises. Retried
---as `assign` is (only when it cannot have been applied, unless `retry_post`).
---@param lease string|integer|opentact.Lease
---@param fields opentact.LeaseSettings
---@return opentact.Lease? lease
---@return opentact.Error? err
function Client:update_lease(lease, fields) end

---One page of the account's leases that match `filter`
---(`POST /lease/tn/search`); retried like a read. `opts` may be left out
---for the callback.
---@param filter? opentact.Filter nil for every lease
---@param opts? opentact.SearchOptions|fun(page: opentact.Page?, err: opentact.Error?)
---@param callback? fun(page: opentact.Page?, err: opentact.Error?) run the request in the background
---@return opentact.Page? page the page (`true` at once with a callback)
---@return opentact.Error? err
function Client:search(filter, opts, callback) end

---Every lease that matches `filter`, each once, several pages at once. A
---search whose results change while it is paged through runs again, up to
---three times, then fails with a `protocol` error.
---@param filter? opentact.Filter nil for every lease
---@param opts? opentact.SearchAllOptions
---@return opentact.Leases? leases
---@return opentact.Error? err
function Client:search_all(filter, opts) end

---Brings a target (a SIP connection or a SIP control app) to a desired
---state: reads it and the desired leases, plans, applies the plan with
---`assign_batched`'s batching and accounting, then reads the target back
---and checks it.
---@param target opentact.TargetArg a SIP connection (its uuid), or a SIP control app (`{app = uuid}`, or what `target` returns)
---@param desired opentact.Desired `{numbers = {...}}`, `{leases = {...}}` or `{all_leases = true}`
---@param opts? opentact.SyncOptions
---@return opentact.SyncReport? report nil when nothing could be planned (nothing was changed)
---@return opentact.Error? err
function Client:sync(target, desired, opts) end

---What `sync` would do, changing nothing: reads the connection and the
---desired leases, plans, and refuses what `sync` refuses. The plan records
---the holder of every lease it names.
---@param target opentact.TargetArg a SIP connection (its uuid), or a SIP control app (`{app = uuid}`, or what `target` returns)
---@param desired opentact.Desired `{numbers = {...}}`, `{leases = {...}}` or `{all_leases = true}`
---@param opts? opentact.PlanOptions
---@return opentact.Plan? plan
---@return opentact.Error? err
function Client:plan(target, desired, opts) end

---Does exactly what a plan lists. First reads the connection and the
---planned leases and compares them with the plan: anything moved since is
---`stale` (`err.moved`), nothing changed. A table that is not a plan, a
---plan changed after it was made, one for another base URL, or a journal
---of another plan is `invalid`. Then releases moves off control apps,
---attaches and detaches in batches (as `assign_batched`), and reads back.
---@param plan opentact.Plan|opentact.RoutesPlan
---@param opts? opentact.ApplyOptions
---@return (opentact.SyncReport|opentact.RoutesReport)? report
---@return opentact.Error? err
function Client:apply(plan, opts) end

---One plan over every target `routes` name (`{number = ... or lease = ...,
---target = ...[, autorenew = ...]}` each): reads every target and the
---account once, plans each target with the others' leases movable (a
---lease routed from one named target to another moves without `move`),
---and refuses what `sync` refuses. `invalid` names every problem of the
---routes at once (`err.problems`): a lease that is no number or uuid, an
---unknown or ambiguous target, a lease routed to two targets; nothing is
---planned then.
---@param routes opentact.Route[]
---@param opts? opentact.RoutesOptions
---@return opentact.RoutesPlan? plan
---@return opentact.Error? err
function Client:plan_routes(routes, opts) end

---The token requests are sent with: with `email` and `password`, a JWT,
---logging in first if there is none or it is near its end.
---@return string? token
---@return opentact.Error? err
function Client:token() end

---Runs transfers and retry timers for at most the seconds given, calls the
---callbacks of finished requests, and returns how many callback requests
---are still pending. An error raised by a callback leaves `step`; the
---client stays usable. With nothing pending it still takes away what made
---`pollfd()` readable (a kept-alive connection its server closed).
---@param timeout? number seconds to wait at most (0, the default: do not wait)
---@return integer pending
function Client:step(timeout) end

---The descriptor that becomes readable when `step` has work (the cqueues
---polling protocol, with `events` and `timeout`); a host may watch it while
---the client is idle. Not with the ngx transport.
---@return integer fd
function Client:pollfd() end

---What to wait for on `pollfd()`: readable.
---@return "r" events
function Client:events() end

---Seconds until `step` must run (0: now), or nil when nothing is pending.
---@return number? seconds
function Client:timeout() end

---Frees the connections. Requests still pending end with a `network`
---error, and their callbacks are called before `close` returns. Idempotent.
---@return true
function Client:close() end

return opentact
