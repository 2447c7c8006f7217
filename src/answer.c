/*
 * answer.c: answer decoding. Turns an HTTP status and body into the
 * payload's leases, or into an error table of the API contract.
 *
 * No I/O. The JSON decoder (json.c) already leaves null out and makes
 * integral numbers integers on Lua 5.3+. Both transports use this.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "opentact.h"

/* ---- status mapping ----------------------------------------------- */

static const char *reason_phrase(long status) {
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return NULL;
    }
}

/* Seconds to wait from a Retry-After value: delta-seconds (digits only,
 * as RFC 9110 says, plus a decimal fraction; no sign, no hex, no
 * exponent) or an HTTP date. A delay
 * too long to matter is capped, never dropped: it must still stop a retry. */
#define RETRY_AFTER_CAP 1e10

/* An HTTP date (RFC 9110, 5.6.7), in any of the three forms a recipient
 * must read: "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37
 * GMT" and "Sun Nov  6 08:49:37 1994"; also with a "+hhmm" or "-hhmm"
 * zone; without a time, midnight. 1 and *out, or 0. It reads what
 * curl_getdate read for this before, without linking libcurl. */
static int http_date(const char *s, time_t *out) {
    static const char *const months[] = {"january", "february", "march", "april", "may", "june", "july",
                                         "august", "september", "october", "november", "december"};
    int day = -1, month = -1, year = -1, hour = -1, minute = 0, second = 0, offset = 0, zone = 0;
    struct tm tm;
    time_t t;
    while (*s != '\0') {
        size_t len, i;
        if (*s == ' ' || *s == '\t' || *s == ',' || (*s == '-' && (hour < 0 || zone))) {
            s++;
        } else if ((*s | 0x20) >= 'a' && (*s | 0x20) <= 'z') {
            /* a month, a zone, or any other word (a day's name): passed
             * over, as curl_getdate, which read these before, does */
            char word[16];
            for (len = 0; (*s | 0x20) >= 'a' && (*s | 0x20) <= 'z'; s++, len++)
                if (len < sizeof word - 1)
                    word[len] = (char)(*s | 0x20);
            word[len < sizeof word - 1 ? len : sizeof word - 1] = '\0';
            for (i = 0; i < 12; i++)
                if ((len == 3 && strncmp(word, months[i], 3) == 0) || strcmp(word, months[i]) == 0) {
                    if (month >= 0)
                        return 0;
                    month = (int)i;
                }
            if (strcmp(word, "gmt") == 0 || strcmp(word, "utc") == 0 || strcmp(word, "ut") == 0 ||
                strcmp(word, "z") == 0)
                zone = 1;
        } else if ((*s == '+' || *s == '-') && hour >= 0 && !zone) {
            int sign = *s++ == '-' ? 1 : -1, hhmm = 0;
            for (len = 0; *s >= '0' && *s <= '9'; s++, len++)
                hhmm = len < 4 ? hhmm * 10 + (*s - '0') : hhmm;
            if (len != 4 || hhmm % 100 > 59 || hhmm / 100 > 23)
                return 0;
            offset = sign * (hhmm / 100 * 3600 + hhmm % 100 * 60);
            zone = 1;
        } else if (*s >= '0' && *s <= '9') {
            int n = 0;
            for (len = 0; *s >= '0' && *s <= '9'; s++, len++)
                n = len < 5 ? n * 10 + (*s - '0') : n;
            if (*s == ':' && hour < 0 && len <= 2) {
                hour = n;
                if (sscanf(s, ":%2d", &minute) != 1 || s[1] < '0' || s[1] > '9')
                    return 0;
                s += s[2] >= '0' && s[2] <= '9' ? 3 : 2;
                if (*s == ':') {
                    if (s[1] < '0' || s[1] > '9' || sscanf(s, ":%2d", &second) != 1)
                        return 0;
                    s += s[2] >= '0' && s[2] <= '9' ? 3 : 2;
                }
            } else if (day < 0 && len <= 2) {
                day = n;
            } else if (year < 0 && (len == 2 || len == 4)) {
                year = len == 2 ? n + (n > 70 ? 1900 : 2000) : n;
            } else {
                return 0;
            }
        } else {
            return 0;
        }
    }
    if (day < 1 || day > 31 || month < 0 || year < 0 || hour > 23 || minute > 59 || second > 60)
        return 0;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = year - 1900;
    tm.tm_mon = month;
    tm.tm_mday = day;
    tm.tm_hour = hour < 0 ? 0 : hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return 0;
    *out = t + offset;
    return 1;
}

static int parse_retry_after(const char *s, double *out) {
    double d = 0;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s >= '0' && *s <= '9') {
        for (; *s >= '0' && *s <= '9'; s++)
            if (d < RETRY_AFTER_CAP)
                d = d * 10 + (*s - '0');
        if (*s == '.' && s[1] >= '0' && s[1] <= '9') { /* a fraction, which some servers send */
            double unit = 0.1;
            for (s++; *s >= '0' && *s <= '9'; s++, unit /= 10)
                d += unit * (*s - '0');
        }
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s != '\0')
            return 0;
    } else {
        time_t t;
        if (!http_date(s, &t))
            return 0;
        d = difftime(t, time(NULL));
    }
    if (d > RETRY_AFTER_CAP)
        d = RETRY_AFTER_CAP;
    *out = d < 0 ? 0 : d;
    return 1;
}

static void set_retry_after(lua_State *L, const char *value) {
    double d;
    if (value == NULL || !parse_retry_after(value, &d))
        return;
#if OT_HAS_INTEGERS
    if (d == (double)(lua_Integer)d)
        lua_pushinteger(L, (lua_Integer)d);
    else
#endif
        lua_pushnumber(L, (lua_Number)d);
    lua_setfield(L, -2, "retry_after");
}

static void push_status_error(lua_State *L, long status, const char *message) {
    const char *kind = "protocol";
    int retryable = 0;
    char fallback[96];
    if (status == 401 || status == 403) {
        kind = "auth";
    } else if (status == 404) {
        kind = "not_found";
    } else if (status == 429) {
        kind = "rate_limited";
        retryable = 1;
    } else if (status >= 400 && status < 500) {
        kind = "rejected";
    } else if (status >= 500 && status < 600) {
        kind = "server";
        retryable = 1;
    }
    if (message == NULL) {
        const char *reason = reason_phrase(status);
        if (status >= 300 && status < 400)
            snprintf(fallback, sizeof fallback,
                     "the server answered with a redirect (HTTP %ld), which is never followed", status);
        else if (reason != NULL)
            snprintf(fallback, sizeof fallback, "the server answered HTTP %ld (%s) without a message",
                     status, reason);
        else
            snprintf(fallback, sizeof fallback, "the server answered HTTP %ld without a message", status);
        message = fallback;
    }
    error_push(L, kind, status, message, retryable);
}

static int fail(lua_State *L, const char *kind, long status, const char *message) {
    lua_pushnil(L);
    error_push(L, kind, status, message, 0);
    return 2;
}

/* Whether the table on top holds only `type` values, at 1..n. */
static int is_list_of(lua_State *L, int type) {
    size_t n = ot_rawlen(L, -1), count = 0;
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        count++;
        if (lua_type(L, -2) != LUA_TNUMBER || lua_type(L, -1) != type) {
            lua_pop(L, 2);
            return 0;
        }
        lua_pop(L, 1);
    }
    return count == n;
}

/* One version of Opentact's docs shows assign answering with lease uuid
 * strings: each becomes a lease table holding only its uuid, so callers
 * see one shape. */
static void strings_to_leases(lua_State *L) {
    size_t i, n = ot_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
        lua_createtable(L, 0, 1);
        lua_rawgeti(L, -2, (int)i);
        lua_setfield(L, -2, "uuid");
        lua_rawseti(L, -2, (int)i);
    }
}

/* Whether the value at idx is a table whose `field` is a string. */
static int has_string(lua_State *L, int idx, const char *field) {
    int ok;
    if (!lua_istable(L, idx))
        return 0; /* a number, a boolean: never indexed */
    lua_getfield(L, idx, field);
    ok = lua_type(L, -1) == LUA_TSTRING;
    lua_pop(L, 1);
    return ok;
}

static int kb_of(size_t len) {
    return len / 1024 > (size_t)INT_MAX ? INT_MAX : (int)(len / 1024);
}

/* What an answer is read as: answer_decode's `shape`, by these names. */
typedef enum answer_shape {
    SHAPE_LEASES, /* a list of leases (the default) */
    SHAPE_LEASE,  /* one lease */
    SHAPE_PAGE,   /* a search page */
    SHAPE_UUIDS,  /* a list of leases read only for their uuids */
    SHAPE_AUTH,   /* a login's answer */
    SHAPE_OBJECTS /* a list of objects with uuids: SIP connections, control apps */
} answer_shape;
static const char *const SHAPE_NAMES[] = {"leases", "lease", "page", "uuids", "auth", "objects", NULL};

/* answer_decode's work on the body's bytes; the stack holds its three
 * first arguments (the body at 2, alive while this runs). */
static int decode(lua_State *L, long status, const char *retry_after, answer_shape shape, const char *body,
                  size_t len) {
    const char *message = NULL;
    int parsed, decoded, holes[2] = {0, 0}, ran_out = 0;
    /* "uuids": a list of leases read only for their uuids, skimmed; what
     * cannot be skimmed is decoded in full, as a list of leases */
    if (shape == SHAPE_UUIDS) {
        if (status >= 200 && status < 300 && answer_skim_uuids(L, body, len))
            return 1;
        shape = SHAPE_LEASES;
    }
    parsed = json_decode(L, body, len, holes, (json_names *)lua_touserdata(L, lua_upvalueindex(1)),
                         lua_upvalueindex(2), &ran_out); /* stack 4: the value, or why not */
    decoded = parsed && lua_istable(L, 4);
    if (decoded) {
        lua_getfield(L, 4, "message"); /* stack 5 */
        if (lua_type(L, 5) == LUA_TSTRING)
            message = lua_tostring(L, 5);
    }
    if (status < 200 || status >= 300) {
        lua_pushnil(L);
        push_status_error(L, status, message);
        set_retry_after(L, retry_after);
        return 2;
    }
    if (!parsed) {
        fail(L, "protocol", status, lua_pushfstring(L, "answer is not JSON (%s)", lua_tostring(L, 4)));
        if (!ran_out)
            return 2;
        lua_pushboolean(L, 1); /* the text ended inside a value: it may have been cut short */
        return 3;
    }
    if (!decoded)
        return fail(L, "protocol", status, "answer is not a JSON object");
    lua_getfield(L, 4, "success"); /* stack 6 */
    if (lua_type(L, 6) != LUA_TBOOLEAN)
        return fail(L, "protocol", status, "answer has no boolean 'success' field");
    if (!lua_toboolean(L, 6))
        return fail(L, "protocol", status, message ? message : "the API answered success: false");
    lua_getfield(L, 4, "payload"); /* stack 7 */
    if (shape == SHAPE_AUTH)
        return has_string(L, 7, "token") ? 1 : fail(L, "protocol", status, "the login answer's 'payload' has no token");
    if (shape == SHAPE_LEASE)
        return has_string(L, 7, "uuid") ? 1 : fail(L, "protocol", status, "answer's 'payload' is not a lease");
    if (shape == SHAPE_OBJECTS) {
        size_t i, n;
        if (!lua_istable(L, 7) || holes[0] > 0 || !is_list_of(L, LUA_TTABLE))
            return fail(L, "protocol", status, "answer's 'payload' is not a list of objects");
        n = ot_rawlen(L, 7);
        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, 7, (int)i);
            if (!has_string(L, -1, "uuid"))
                return fail(L, "protocol", status,
                            lua_pushfstring(L, "object %d of the answer has no string 'uuid'", (int)i));
            lua_pop(L, 1);
        }
        return 1;
    }
    if (shape == SHAPE_PAGE) {
        lua_Number total;
        if (!lua_istable(L, 7))
            return fail(L, "protocol", status, "answer's 'payload' is not a search page");
        lua_getfield(L, 7, "total");
        total = lua_tonumber(L, -1);
        if (lua_type(L, -1) != LUA_TNUMBER || !(total >= 0 && total <= 9007199254740992.0) ||
            total != (lua_Number)(long long)total)
            return fail(L, "protocol", status, "search page's 'total' is not a whole number");
        lua_pop(L, 1);
        lua_getfield(L, 7, "data");
        if (!lua_istable(L, -1) || holes[1] > 0 || !is_list_of(L, LUA_TTABLE))
            return fail(L, "protocol", status, "search page's 'data' is not a list of leases");
        {
            /* a lease is known by its uuid: without one, pages cannot be
             * told apart (search_all would keep it on every page) */
            size_t i, n = ot_rawlen(L, -1);
            for (i = 1; i <= n; i++) {
                lua_rawgeti(L, -1, (int)i);
                if (!has_string(L, -1, "uuid"))
                    return fail(L, "protocol", status,
                                lua_pushfstring(L, "lease %d of the page has no string 'uuid'", (int)i));
                lua_pop(L, 1);
            }
        }
        lua_settop(L, 7);
        return 1;
    }
    if (!lua_istable(L, 7) || holes[0] > 0)
        return fail(L, "protocol", status, "answer's 'payload' is not a list of leases");
    if (!is_list_of(L, LUA_TTABLE)) {
        if (!is_list_of(L, LUA_TSTRING))
            return fail(L, "protocol", status, "answer's 'payload' is not a list of leases");
        strings_to_leases(L);
    }
    return 1;
}

/* core.answer_decode(status, body [, retry_after [, shape]]) -> payload | nil, err [, cut]
 * `cut` is true when a 2xx answer is not JSON because its text ended
 * inside a value, as an answer cut short by a closed connection does (the
 * engine tells a cut answer from a malformed one by it, never by the
 * message, whose words may change).
 * shape "leases" (the default): a list of leases; "lease": one lease;
 * "page": a search page, {total, data = leases, ...} with total a whole
 * number and data a list of leases (both checked); "uuids": a list of
 * leases read only for their uuids: the list of uuid strings when the
 * answer skims cleanly, else the list of leases as "leases" decodes it;
 * "auth": a login's answer, a payload with a string token. The body is a
 * string, or an opentact.Body (a large answer from the curl transport),
 * which is read once and freed.
 * Upvalues: the member-name cache and the table that anchors its names. */
static int answer_decode(lua_State *L) {
    long status = (long)luaL_checkinteger(L, 1);
    const char *retry_after = luaL_optstring(L, 3, NULL);
    answer_shape shape = (answer_shape)luaL_checkoption(L, 4, "leases", SHAPE_NAMES);
    size_t len;
    const char *body;
    int result;
    ot_buffer *large = (ot_buffer *)ot_testudata(L, 2, OT_BODY_MT);
    if (large != NULL) {
        /* a finalizer run by the collector while it is read may reach it
         * too: it would free the bytes under the first reader */
        if (large->reading || (large->data == NULL && large->len > 0))
            return luaL_argerror(L, 2, "this answer is being read, or was read already");
        body = large->data ? large->data : "";
        len = large->len;
    } else {
        luaL_checktype(L, 2, LUA_TSTRING);
        body = lua_tolstring(L, 2, &len);
    }
    lua_settop(L, 3); /* the shape is known: its argument may go */
    if (large == NULL)
        return decode(L, status, retry_after, shape, body, len);
    /* a large answer is read once, and its memory goes back at once, not
     * whenever the collector gets to the small userdata that holds it (the
     * body stays at 2 meanwhile, so the collector cannot take it; if the
     * decode raises, the collector frees it later) */
    large->reading = 1;
    /* the collector paces itself by what Lua allocates, and these bytes
     * were never Lua's: it is told of them before the decode, as a string
     * of them would have told it. Otherwise the last answer's garbage is
     * still there when this one's tables are made, and the heap grows
     * (measured: a 5,000-lease list read in a loop, 20% more CPU a call) */
    if (ot_gc_may_step(L))
        lua_gc(L, LUA_GCSTEP, kb_of(len));
    result = decode(L, status, retry_after, shape, body, len);
    {
        size_t was = large->len;
        buffer_release(large);
        large->len = was; /* # still gives its length */
        large->reading = 0;
    }
    return result;
}

void answer_push_decode(lua_State *L) {
    memset(ot_newuserdata(L, sizeof(json_names)), 0, sizeof(json_names));
    lua_createtable(L, JSON_NAME_SLOTS, 0);
    lua_pushcclosure(L, answer_decode, 2);
}
