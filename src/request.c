/*
 * request.c: request building. Checks uuids against the reference page's
 * pattern and builds the exact path and JSON body of list and assign.
 *
 * No I/O, and no JSON library: a checked uuid is lower-case hex and
 * dashes only, so the body never needs escaping.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opentact.h"

#define PATH_PREFIX "/sip/connection/"
#define APP_PATH_PREFIX "/sip/app/"
#define PATH_SUFFIX "/tnlease"
#define QUOTE_MAX 40

int request_normalize_uuid(const char *s, size_t len, char *out) {
    size_t i;
    if (len != OT_UUID_LEN)
        return 0;
    for (i = 0; i < OT_UUID_LEN; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-')
                return 0;
            out[i] = '-';
        } else if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')) {
            out[i] = (char)ch;
        } else if (ch >= 'A' && ch <= 'F') {
            out[i] = (char)(ch - 'A' + 'a');
        } else {
            return 0;
        }
    }
    return 1;
}

/* Quotes untrusted input for a message: bounded, one line, printable. */
static void add_quoted(luaL_Buffer *b, const char *s, size_t len) {
    size_t i, n = len > QUOTE_MAX ? QUOTE_MAX : len;
    luaL_addchar(b, '\'');
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\'' && ch != '\\') {
            luaL_addchar(b, (char)ch);
        } else {
            static const char hex[] = "0123456789abcdef";
            luaL_addchar(b, '\\');
            luaL_addchar(b, 'x');
            luaL_addchar(b, hex[ch >> 4]);
            luaL_addchar(b, hex[ch & 15]);
        }
    }
    luaL_addchar(b, '\'');
    if (n < len) {
        char more[48];
        snprintf(more, sizeof more, "... (%lu bytes)", (unsigned long)len);
        luaL_addstring(b, more);
    }
}

int request_push_invalid(lua_State *L, const char *what, const char *s,
                         size_t len, const char *why) {
    luaL_Buffer b;
    lua_pushnil(L);
    luaL_buffinit(L, &b);
    luaL_addstring(&b, what);
    luaL_addchar(&b, ' ');
    add_quoted(&b, s, len);
    luaL_addchar(&b, ' ');
    luaL_addstring(&b, why);
    luaL_pushresult(&b);
    error_push(L, "invalid", -1, lua_tostring(L, -1), 0);
    lua_remove(L, -2);
    return 2;
}

static const char *check_uuid_arg(lua_State *L, int arg, size_t *len) {
    if (lua_type(L, arg) != LUA_TSTRING)
        luaL_argerror(L, arg, lua_pushfstring(L, "string expected, got %s",
                                              luaL_typename(L, arg)));
    return lua_tolstring(L, arg, len);
}

/* The tnlease path of a SIP connection, or of a SIP control app (`app`). */
static void push_path(lua_State *L, const char *uuid, int app) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, app ? APP_PATH_PREFIX : PATH_PREFIX);
    luaL_addlstring(&b, uuid, OT_UUID_LEN);
    luaL_addstring(&b, PATH_SUFFIX);
    luaL_pushresult(&b);
}

static const char *const HOLDERS[] = {"connection", "app", NULL};
static const char *const HOLDER_WHAT[] = {"connection uuid", "control app uuid"};

/* core.request_list(conn [, holder]) -> path | nil, err: the leases of a
 * SIP connection, or with holder "app" of a SIP control app */
int request_list(lua_State *L) {
    size_t len;
    char uuid[OT_UUID_LEN];
    const char *s = check_uuid_arg(L, 1, &len);
    int app = luaL_checkoption(L, 2, "connection", HOLDERS);
    if (!request_normalize_uuid(s, len, uuid))
        return request_push_invalid(L, HOLDER_WHAT[app], s, len,
                            "is not a uuid (8-4-4-4-12 hex digits)");
    push_path(L, uuid, app);
    return 1;
}

/* ---- phone numbers ------------------------------------------------ */

/* E.164: at most 15 digits, the first never 0 (no country code starts so). */
#define NUMBER_MAX_DIGITS 15
#define NUMBER_LIMIT 1000000000000000.0 /* 10^15 */

/* Reads a phone number as people type it: digits, an optional leading
 * '+', and spaces, '-', '.', '(' and ')' between them. Returns 1 and the
 * number in *out, or 0 and why in *why. */
int request_parse_number(const char *s, size_t len, double *out, const char **why) {
    size_t i = 0;
    int digits = 0;
    double v = 0;
    while (i < len && s[i] == ' ')
        i++;
    if (i < len && s[i] == '+')
        i++;
    for (; i < len; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            if (digits == 0 && c == '0') {
                *why = "starts with 0 (give the country code, e.g. +1 212 555 0100)";
                return 0;
            }
            if (++digits > NUMBER_MAX_DIGITS) {
                *why = "has more than 15 digits";
                return 0;
            }
            v = v * 10 + (c - '0'); /* exact: below 2^53 */
        } else if (c != ' ' && c != '-' && c != '.' && c != '(' && c != ')') {
            *why = "is not a phone number (digits, an optional leading +, spaces, - . ( ) only)";
            return 0;
        }
    }
    if (digits == 0) {
        *why = "has no digits";
        return 0;
    }
    *out = v;
    return 1;
}

static void push_number(lua_State *L, double v) {
#if OT_HAS_INTEGERS
    lua_pushinteger(L, (lua_Integer)v);
#else
    lua_pushnumber(L, (lua_Number)v);
#endif
}

/* core.number(x) -> the phone number (an integer on 5.3+) | nil, err */
int request_number(lua_State *L) {
    const char *why = "is not a phone number (a string or an integer)";
    double v;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        lua_Number n = lua_tonumber(L, 1);
        if (n >= 1 && n < NUMBER_LIMIT && n == (lua_Number)(long long)n) {
            push_number(L, (double)n);
            return 1;
        }
        why = n == n && n >= NUMBER_LIMIT ? "has more than 15 digits" : "is not a whole number above 0";
    } else if (lua_type(L, 1) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, 1, &len);
        if (request_parse_number(s, len, &v, &why)) {
            push_number(L, v);
            return 1;
        }
        return request_push_invalid(L, "phone number", s, len, why);
    }
    lua_pushnil(L);
    if (lua_type(L, 1) == LUA_TNUMBER)
        lua_pushfstring(L, "phone number %f %s", lua_tonumber(L, 1), why);
    else
        lua_pushfstring(L, "phone number (a %s) %s", luaL_typename(L, 1), why);
    error_push(L, "invalid", -1, lua_tostring(L, -1), 0);
    lua_remove(L, -2);
    return 2;
}

/* core.request_lease(number | lease uuid) -> path | nil, err: the lookup
 * of one lease by its phone number, or by its uuid */
int request_lease(lua_State *L) {
    char path[64];
    size_t len;
    lua_settop(L, 1);
    if (lua_type(L, 1) == LUA_TSTRING) {
        const char *s = lua_tolstring(L, 1, &len);
        char uuid[OT_UUID_LEN];
        if (request_normalize_uuid(s, len, uuid)) {
            snprintf(path, sizeof path, "/lease/tn/%.*s", OT_UUID_LEN, uuid);
            lua_pushstring(L, path);
            return 1;
        }
    }
    if (request_number(L) == 2)
        return 2;
    snprintf(path, sizeof path, "/lease/tn/%.0f/tn", (double)lua_tonumber(L, -1));
    lua_pushstring(L, path);
    return 1;
}

/* ---- assign ------------------------------------------------------- */

typedef struct lease_ref {
    char uuid[OT_UUID_LEN];
    int list; /* 0 add, 1 remove */
} lease_ref;

static int compare_refs(const void *a, const void *b) {
    return memcmp(((const lease_ref *)a)->uuid, ((const lease_ref *)b)->uuid,
                  OT_UUID_LEN);
}

static const char *const LIST_NAMES[2] = {"add", "remove"};

/* Checks that the table at the top of the stack is a list of strings
 * without holes; misuse raises as argument `arg`, naming `field`.
 * Returns its length. */
size_t request_check_strings(lua_State *L, int arg, const char *field) {
    size_t n = ot_rawlen(L, -1), count = 0;
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        lua_Number k = lua_tonumber(L, -2);
        count++;
        if (lua_type(L, -2) != LUA_TNUMBER || lua_type(L, -1) != LUA_TSTRING)
            luaL_argerror(L, arg, lua_pushfstring(L, "field '%s' must be a list of uuid strings (found a %s at key of type %s)",
                                                  field, luaL_typename(L, -1), luaL_typename(L, -2)));
        if (k < 1 || k > (lua_Number)n || k != (lua_Number)(size_t)k)
            count = n + 1; /* a key outside 1..n (0.5, 0, n + 2): a hole somewhere */
        lua_pop(L, 1);
    }
    if (count != n)
        luaL_argerror(L, arg, lua_pushfstring(L, "field '%s' must be a list without holes", field));
    return n;
}

/* Checks changes[name]: absent, or a sequence of strings. Returns its
 * length and leaves the list (or nil) on the stack. */
static size_t check_list(lua_State *L, int changes, int which) {
    lua_pushstring(L, LIST_NAMES[which]);
    lua_rawget(L, changes); /* metatables are never consulted */
    if (lua_isnil(L, -1))
        return 0;
    if (!lua_istable(L, -1))
        luaL_argerror(L, 2, lua_pushfstring(L, "field '%s' must be a list of uuid strings, got %s",
                                            LIST_NAMES[which], luaL_typename(L, -1)));
    return request_check_strings(L, 2, LIST_NAMES[which]);
}

static void check_change_keys(lua_State *L, int changes) {
    lua_pushnil(L);
    while (lua_next(L, changes) != 0) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (k == NULL || (strcmp(k, "add") != 0 && strcmp(k, "remove") != 0)) {
            lua_pop(L, 1);
            if (k == NULL)
                luaL_argerror(L, 2, lua_pushfstring(L, "unexpected %s key (only 'add' and 'remove')",
                                                    luaL_typename(L, -1)));
            luaL_argerror(L, 2, lua_pushfstring(L, "unexpected key '%s' (only 'add' and 'remove')", k));
        }
        lua_pop(L, 1);
    }
}

static void add_list_json(luaL_Buffer *b, const lease_ref *refs, size_t n,
                          int which, int *first_key) {
    size_t i;
    int first = 1;
    if (n == 0)
        return;
    luaL_addstring(b, *first_key ? "{\"" : ",\"");
    *first_key = 0;
    luaL_addstring(b, LIST_NAMES[which]);
    luaL_addstring(b, "\":[");
    for (i = 0; i < n; i++) {
        if (!first)
            luaL_addchar(b, ',');
        first = 0;
        luaL_addchar(b, '"');
        luaL_addlstring(b, refs[i].uuid, OT_UUID_LEN);
        luaL_addchar(b, '"');
    }
    luaL_addchar(b, ']');
}

/* core.request_assign(conn, changes [, holder]) -> path, body | nil, err
 * holder "connection" (the default) or "app": a SIP control app's leases. */
int request_assign(lua_State *L) {
    size_t len, n[2], i, total;
    int which, first_key = 1, app;
    char conn[OT_UUID_LEN];
    lease_ref *refs, *sorted;
    luaL_Buffer b;
    const char *s = check_uuid_arg(L, 1, &len);
    luaL_checktype(L, 2, LUA_TTABLE);
    app = luaL_checkoption(L, 3, "connection", HOLDERS);
    lua_settop(L, 2);
    check_change_keys(L, 2);
    n[0] = check_list(L, 2, 0); /* stack 3: add */
    n[1] = check_list(L, 2, 1); /* stack 4: remove */
    if (!request_normalize_uuid(s, len, conn))
        return request_push_invalid(L, HOLDER_WHAT[app], s, len,
                            "is not a uuid (8-4-4-4-12 hex digits)");
    total = n[0] + n[1];
    if (total == 0) {
        lua_pushnil(L);
        error_push(L, "invalid", -1,
                   "empty change set: give at least one uuid in 'add' or 'remove'", 0);
        return 2;
    }
    if (total > ((size_t)-1) / (2 * sizeof(lease_ref)))
        return luaL_error(L, "change set too large");
    /* Both copies live in one userdata so the GC frees them on any error. */
    refs = (lease_ref *)lua_newuserdata(L, 2 * total * sizeof(lease_ref));
    sorted = refs + total;
    total = 0;
    for (which = 0; which < 2; which++) {
        for (i = 1; i <= n[which]; i++) {
            size_t ulen;
            const char *u;
            lua_rawgeti(L, 3 + which, (int)i);
            u = lua_tolstring(L, -1, &ulen);
            if (!request_normalize_uuid(u, ulen, refs[total].uuid)) {
                lua_pushfstring(L, "in '%s' at index %d:", LIST_NAMES[which], (int)i);
                return request_push_invalid(L, lua_tostring(L, -1), u, ulen,
                                    "is not a lease uuid (8-4-4-4-12 hex digits)");
            }
            lua_pop(L, 1);
            refs[total].list = which;
            total++;
        }
    }
    memcpy(sorted, refs, total * sizeof(lease_ref));
    qsort(sorted, total, sizeof(lease_ref), compare_refs);
    for (i = 1; i < total; i++) {
        if (memcmp(sorted[i].uuid, sorted[i - 1].uuid, OT_UUID_LEN) == 0) {
            const char *why = sorted[i].list != sorted[i - 1].list
                                  ? "is in both 'add' and 'remove'"
                                  : "is listed twice";
            return request_push_invalid(L, "lease uuid", sorted[i].uuid, OT_UUID_LEN, why);
        }
    }
    push_path(L, conn, app);
    luaL_buffinit(L, &b);
    add_list_json(&b, refs, n[0], 0, &first_key);
    add_list_json(&b, refs + n[0], n[1], 1, &first_key);
    luaL_addchar(&b, '}');
    luaL_pushresult(&b);
    return 2;
}
