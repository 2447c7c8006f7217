/*
 * search.c: the lease search request (POST /lease/tn/search?take=&skip=).
 * Checks a filter table field by field and builds its JSON body.
 *
 * Misuse raises: an unknown field, or a value of the wrong type. A value
 * of the right type that is not valid (a malformed uuid, a mask with
 * letters) is an `invalid` error, as for every other request. Every value
 * that reaches the body is checked to need no JSON escaping, and fields
 * are written in one fixed order, so equal filters give equal bodies.
 */
#include <stdio.h>
#include <string.h>

#include "opentact.h"

#define MASK_MAX 64
#define DATE_MIN 10 /* YYYY-MM-DD */
#define DATE_MAX 35

enum field_kind { F_TN, F_UUID, F_UUIDS, F_BOOL, F_MODE, F_ORDER, F_DATE };

static const struct field {
    const char *name;
    enum field_kind kind;
} FIELDS[] = {
    {"tn", F_TN},
    {"sip_connection", F_UUID},
    {"sip_control_app", F_UUID},
    {"sip_connections_skip", F_UUIDS},
    {"autorenew", F_BOOL},
    {"mode", F_MODE},
    {"order", F_ORDER},
    {"created_on_from", F_DATE},
    {"created_on_to", F_DATE},
    {"modified_on_from", F_DATE},
    {"modified_on_to", F_DATE},
    {NULL, F_TN},
};

static const char *const ORDER_FIELDS[] = {"tn", "created_on", "modified_on", NULL};

static const struct field *find_field(const char *name) {
    const struct field *f;
    for (f = FIELDS; f->name != NULL; f++)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static int in_list(const char *const *list, const char *s) {
    for (; *list != NULL; list++)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

static void type_error(lua_State *L, const char *field, const char *want, int value) {
    luaL_argerror(L, 1, lua_pushfstring(L, "field '%s' must be %s, got %s", field, want,
                                        luaL_typename(L, value)));
}

/* Checks the type of filter.<f> (at the top of the stack); raises if wrong. */
static void check_type(lua_State *L, const struct field *f) {
    int t = lua_type(L, -1);
    switch (f->kind) {
    case F_TN:
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            type_error(L, f->name, "a phone number or a mask string", -1);
        break;
    case F_BOOL:
        if (t != LUA_TBOOLEAN)
            type_error(L, f->name, "a boolean", -1);
        break;
    case F_UUIDS:
        if (t != LUA_TTABLE)
            type_error(L, f->name, "a list of uuid strings", -1);
        request_check_strings(L, 1, f->name);
        break;
    case F_ORDER: {
        int keys = 0;
        if (t != LUA_TTABLE)
            type_error(L, f->name, "a table such as {tn = \"ASC\"}", -1);
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            if (lua_type(L, -2) != LUA_TSTRING || !in_list(ORDER_FIELDS, lua_tostring(L, -2)))
                luaL_argerror(L, 1, "field 'order' takes one key: 'tn', 'created_on' or 'modified_on'");
            if (lua_type(L, -1) != LUA_TSTRING)
                type_error(L, "order", "{<field> = \"ASC\" or \"DESC\"}", -1);
            keys++;
            lua_pop(L, 1);
        }
        if (keys != 1)
            luaL_argerror(L, 1, "field 'order' takes exactly one key: 'tn', 'created_on' or 'modified_on'");
        break;
    }
    default: /* F_UUID, F_MODE, F_DATE */
        if (t != LUA_TSTRING)
            type_error(L, f->name, "a string", -1);
        break;
    }
}

/* A phone number mask: digits, '*' (any run of digits) and '%' (one
 * digit), an optional leading '+', and the separators opentact.number
 * takes (dropped). Returns 1 and the compact mask in out (NUL-ended). */
static int parse_mask(const char *s, size_t len, char *out, const char **why) {
    size_t i = 0, n = 0;
    int digits = 0;
    while (i < len && s[i] == ' ')
        i++;
    if (i < len && s[i] == '+')
        i++;
    for (; i < len; i++) {
        char c = s[i];
        if ((c >= '0' && c <= '9') || c == '*' || c == '%') {
            if (c >= '0' && c <= '9' && ++digits > 15) {
                *why = "has more than 15 digits";
                return 0;
            }
            if (n + 1 >= MASK_MAX) {
                *why = "is too long for a phone number mask";
                return 0;
            }
            out[n++] = c;
        } else if (c != ' ' && c != '-' && c != '.' && c != '(' && c != ')') {
            *why = "is not a phone number mask (digits, * for any digits, % for one digit)";
            return 0;
        }
    }
    out[n] = '\0';
    return 1;
}

/* The body is written into one block sized before it starts (the Lua
 * stack is used meanwhile, so it cannot be a luaL_Buffer). */
typedef struct out {
    char *p;
} out;

static void put(out *o, const char *s, size_t len) {
    memcpy(o->p, s, len);
    o->p += len;
}

static void put_quoted(out *o, const char *s, size_t len) {
    *o->p++ = '"';
    put(o, s, len);
    *o->p++ = '"';
}

/* Room any one field's value can take, but a list of uuids. */
#define VALUE_MAX (MASK_MAX + 2 + 32)

/* Writes the tn field's value (a checked number or mask) as a JSON string. */
static int add_tn(lua_State *L, out *o, int value) {
    char mask[MASK_MAX];
    const char *why = NULL;
    size_t len;
    if (lua_type(L, value) == LUA_TSTRING) {
        const char *s = lua_tolstring(L, value, &len);
        if (strpbrk(s, "*%") != NULL && strlen(s) == len) {
            if (!parse_mask(s, len, mask, &why))
                return request_push_invalid(L, "in field 'tn': phone number mask", s, len, why);
            put_quoted(o, mask, strlen(mask));
            return 0;
        }
    }
    lua_pushcfunction(L, request_number);
    lua_pushvalue(L, value);
    lua_call(L, 1, 2);
    if (lua_isnil(L, -2)) {
        lua_getfield(L, -1, "message");
        lua_pushfstring(L, "in field 'tn': %s", lua_tostring(L, -1));
        lua_pushnil(L);
        error_push(L, "invalid", -1, lua_tostring(L, -2), 0);
        return 2;
    }
    len = (size_t)snprintf(mask, sizeof mask, "%.0f", (double)lua_tonumber(L, -2));
    lua_pop(L, 2);
    put_quoted(o, mask, len);
    return 0;
}

static int add_uuid(lua_State *L, out *o, int value, const char *field) {
    size_t len;
    char uuid[OT_UUID_LEN];
    const char *s = lua_tolstring(L, value, &len);
    if (!request_normalize_uuid(s, len, uuid)) {
        lua_pushfstring(L, "in field '%s': uuid", field);
        return request_push_invalid(L, lua_tostring(L, -1), s, len, "is not a uuid (8-4-4-4-12 hex digits)");
    }
    put_quoted(o, uuid, OT_UUID_LEN);
    return 0;
}

/* Upper-cases s into word when it is one of `allowed` in any case. */
static int pick_word(const char *s, size_t len, const char *const *allowed, char *word, size_t size) {
    size_t i;
    if (len >= size)
        return 0;
    for (i = 0; i < len; i++)
        word[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 'a' + 'A' : s[i]);
    word[len] = '\0';
    return strlen(word) == len && in_list(allowed, word);
}

static int add_word(lua_State *L, out *o, int value, const char *field,
                    const char *const *allowed, const char *why) {
    char word[8];
    size_t len;
    const char *s = lua_tolstring(L, value, &len);
    if (!pick_word(s, len, allowed, word, sizeof word)) {
        lua_pushfstring(L, "in field '%s': value", field);
        return request_push_invalid(L, lua_tostring(L, -1), s, len, why);
    }
    put_quoted(o, word, len);
    return 0;
}

/* ISO-8601: a date, then optionally a time and zone made of digits and
 * the characters T : . Z + - (checked, so never escaped). */
static int add_date(lua_State *L, out *o, int value, const char *field) {
    size_t len, i;
    const char *s = lua_tolstring(L, value, &len);
    int ok = len >= DATE_MIN && len <= DATE_MAX && s[4] == '-' && s[7] == '-' &&
             (len == DATE_MIN || s[10] == 'T');
    for (i = 0; ok && i < len; i++) {
        char c = s[i];
        if (i < DATE_MIN && i != 4 && i != 7)
            ok = c >= '0' && c <= '9';
        else
            ok = (c >= '0' && c <= '9') || (c != '\0' && strchr("T:.Z+-", c) != NULL);
    }
    if (!ok) {
        lua_pushfstring(L, "in field '%s': date", field);
        return request_push_invalid(L, lua_tostring(L, -1), s, len,
                                    "is not an ISO-8601 date (YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ)");
    }
    put_quoted(o, s, len);
    return 0;
}

static const char *const MODES[] = {"AND", "OR", NULL};
static const char *const DIRECTIONS[] = {"ASC", "DESC", NULL};

/* Writes one field's JSON value; returns 0, or 2 with nil, err pushed. */
static int add_value(lua_State *L, out *o, const struct field *f, int value) {
    switch (f->kind) {
    case F_TN:
        return add_tn(L, o, value);
    case F_UUID:
        return add_uuid(L, o, value, f->name);
    case F_BOOL:
        if (lua_toboolean(L, value))
            put(o, "true", 4);
        else
            put(o, "false", 5);
        return 0;
    case F_MODE:
        return add_word(L, o, value, f->name, MODES, "is not \"AND\" or \"OR\"");
    case F_DATE:
        return add_date(L, o, value, f->name);
    case F_UUIDS: {
        size_t i, n = ot_rawlen(L, value);
        *o->p++ = '[';
        for (i = 1; i <= n; i++) {
            int rc;
            if (i > 1)
                *o->p++ = ',';
            lua_rawgeti(L, value, (int)i);
            rc = add_uuid(L, o, lua_gettop(L), f->name);
            if (rc)
                return rc;
            lua_pop(L, 1);
        }
        *o->p++ = ']';
        return 0;
    }
    case F_ORDER: {
        int rc;
        const char *key;
        lua_pushnil(L);
        lua_next(L, value); /* its one key, checked */
        key = lua_tostring(L, -2);
        *o->p++ = '{';
        put_quoted(o, key, strlen(key));
        *o->p++ = ':';
        rc = add_word(L, o, lua_gettop(L), "order", DIRECTIONS, "is not \"ASC\" or \"DESC\"");
        if (rc)
            return rc;
        lua_pop(L, 2);
        *o->p++ = '}';
        return 0;
    }
    }
    return 0;
}

/* core.request_search(filter, take, skip) -> path, body | nil, err */
int request_search(lua_State *L) {
    char path[96];
    const struct field *f;
    int first = 1, values, rc;
    size_t room = 2;
    out o;
    char *block;
    lua_Integer take = luaL_checkinteger(L, 2), skip = luaL_checkinteger(L, 3);
    luaL_argcheck(L, take >= 1, 2, "take must be at least 1");
    luaL_argcheck(L, skip >= 0, 3, "skip must be at least 0");
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    /* every key first: misuse raises before anything else is looked at */
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING)
            return luaL_argerror(L, 1, lua_pushfstring(L, "unexpected %s key in the filter", luaL_typename(L, -2)));
        f = find_field(lua_tostring(L, -2));
        if (f == NULL)
            return luaL_argerror(L, 1, lua_pushfstring(L, "unknown filter field '%s'", lua_tostring(L, -2)));
        check_type(L, f);
        room += strlen(f->name) + 4 + VALUE_MAX;
        if (f->kind == F_UUIDS)
            room += ot_rawlen(L, -1) * (OT_UUID_LEN + 3);
        lua_pop(L, 1);
    }
    /* the values, in FIELDS order, at 2..; the block above them. Raw, as
     * the keys were walked: a metatable's __index adds nothing unchecked */
    for (f = FIELDS; f->name != NULL; f++) {
        lua_pushstring(L, f->name);
        lua_rawget(L, 1);
    }
    block = (char *)lua_newuserdata(L, room);
    o.p = block;
    *o.p++ = '{';
    for (f = FIELDS, values = 2; f->name != NULL; f++, values++) {
        if (lua_isnil(L, values))
            continue;
        if (!first)
            *o.p++ = ',';
        first = 0;
        put_quoted(&o, f->name, strlen(f->name));
        *o.p++ = ':';
        rc = add_value(L, &o, f, values);
        if (rc)
            return rc;
    }
    *o.p++ = '}';
    snprintf(path, sizeof path, "/lease/tn/search?take=%lld&skip=%lld", (long long)take, (long long)skip);
    lua_pushstring(L, path);
    lua_pushlstring(L, block, (size_t)(o.p - block));
    return 2;
}
