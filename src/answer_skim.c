/*
 * answer_skim.c: the uuids of an Opentact answer {"success": true,
 * "payload": [lease, ...]}, skimmed. No I/O.
 *
 * Reading a connection back only needs its leases' uuids; decoding 10,000
 * full leases into tables costs far more than the request. The skim checks
 * the whole text as strictly as json_decode, builds nothing but the list
 * of payload[i].uuid, and gives up (returns 0, pushing nothing) at
 * anything unusual: the caller then decodes the answer in full, which
 * gives the same errors as ever.
 */
#include <string.h>

#include "opentact.h"
#include "json.h"

/* Reads one lease object of the payload, pushing its uuid onto the list
 * at the top of the stack as element n. */
static int skim_lease(json_reader *r, int n) {
    int first = 1, found = 0, item;
    if (r->p >= r->end || *r->p != '{')
        return json_fail(r, "not a lease");
    r->p++;
    r->depth++; /* as deep as json_decode counts it */
    while ((item = json_next_item(r, '}', &first)) > 0) {
        int is_uuid;
        if (!json_member_name(r, "uuid", 4, &is_uuid, 1, NULL))
            return 0;
        if (is_uuid) {
            const char *from = r->p + 1;
            if (found || r->p >= r->end || *r->p != '"' || !json_skip_string(r))
                return json_fail(r, "an unusual uuid");
            if (memchr(from, '\\', (size_t)(r->p - 1 - from)) != NULL)
                return json_fail(r, "an escaped uuid");
            lua_pushlstring(r->L, from, (size_t)(r->p - 1 - from));
            lua_rawseti(r->L, -2, n);
            found = 1;
        } else if (!json_skip_value(r)) {
            return 0;
        }
    }
    if (item < 0)
        return 0;
    r->depth--;
    return found ? 1 : json_fail(r, "a lease without a uuid");
}

/* Pushes {uuid, ...} of the leases in an answer {"success":true,
 * "payload":[lease, ...]} and returns 1; or pushes nothing and returns 0
 * when the text is anything else (or anything unusual). */
int answer_skim_uuids(lua_State *L, const char *s, size_t len) {
    json_reader r;
    int top = lua_gettop(L), first = 1, success = 0, payload = 0, item;
    memset(&r, 0, sizeof r);
    r.L = L;
    r.start = r.p = s;
    r.end = s + len;
    r.depth = 1;
    json_skip_space(&r);
    if (r.p >= r.end || *r.p != '{')
        return 0;
    r.p++;
    lua_newtable(L);
    while ((item = json_next_item(&r, '}', &first)) > 0) {
        int is_payload, is_success;
        const char *name = r.p;
        size_t quoted;
        if (!json_member_name(&r, "payload", 7, &is_payload, 1, &quoted))
            goto give_up;
        is_success = quoted == 9 && memcmp(name, "\"success\"", 9) == 0;
        if (is_success) {
            if (success || r.end - r.p < 4 || memcmp(r.p, "true", 4) != 0)
                goto give_up;
            r.p += 4;
            success = 1;
        } else if (is_payload) {
            int n = 0, first_lease = 1, lease;
            if (payload || r.p >= r.end || *r.p != '[')
                goto give_up;
            payload = 1;
            r.p++;
            r.depth++;
            while ((lease = json_next_item(&r, ']', &first_lease)) > 0)
                if (!skim_lease(&r, ++n))
                    goto give_up;
            if (lease < 0)
                goto give_up;
            r.depth--;
        } else if (!json_skip_value(&r)) {
            goto give_up;
        }
    }
    if (item < 0)
        goto give_up;
    json_skip_space(&r);
    if (success && payload && r.p == r.end)
        return 1;
give_up:
    lua_settop(L, top);
    return 0;
}
