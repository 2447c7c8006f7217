/*
 * json.c: a strict JSON decoder (RFC 8259) that builds Lua values in one
 * pass: objects and arrays become tables, null members and elements are
 * left out (the key is absent), integral numbers become Lua integers on
 * 5.3+ when they fit, strings keep their bytes.
 *
 * It reads only inside [p, end), never raises except for Lua's own memory
 * errors, and stops at a fixed depth; anything else that is not JSON is an
 * error with the byte offset where it went wrong.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opentact.h"
#include "json.h"

#define MAX_DEPTH JSON_MAX_DEPTH

typedef json_reader reader;

static int fail(reader *r, const char *what) {
    if (r->error == NULL)
        r->error = what;
    return 0;
}

static void skip_space(reader *r) {
    if (r->p < r->end && (unsigned char)*r->p > ' ')
        return; /* the usual case: compact JSON */
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

/* The text ends inside a value: said at its end, as any answer cut short
 * is (the engine tells a cut answer from a malformed one by that). */
static int cut_short(reader *r) {
    r->p = r->end;
    return fail(r, "unexpected end");
}

static int literal(reader *r, const char *word, size_t len) {
    size_t left = (size_t)(r->end - r->p);
    if (left < len && memcmp(r->p, word, left) == 0)
        return cut_short(r);
    if (left < len || memcmp(r->p, word, len) != 0)
        return fail(r, "unexpected character");
    r->p += len;
    return 1;
}

/* ---- numbers ------------------------------------------------------ */

/* A number that is no number: cut short at the end of the text ("-" or
 * "1."), else bad where it began. */
static int bad_number(reader *r, const char *q) {
    return q >= r->end ? cut_short(r) : fail(r, "bad number");
}

static int number(reader *r) {
    const char *s = r->p, *q = s;
    int negative = 0, integral = 1;
    if (q < r->end && *q == '-')
        negative = 1, q++;
    if (q >= r->end || *q < '0' || *q > '9')
        return bad_number(r, q);
    if (*q == '0') {
        q++;
        if (q < r->end && *q >= '0' && *q <= '9')
            return fail(r, "bad number (leading zero)");
    } else {
        while (q < r->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < r->end && *q == '.') {
        integral = 0;
        q++;
        if (q >= r->end || *q < '0' || *q > '9')
            return bad_number(r, q);
        while (q < r->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < r->end && (*q == 'e' || *q == 'E')) {
        integral = 0;
        q++;
        if (q < r->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= r->end || *q < '0' || *q > '9')
            return bad_number(r, q);
        while (q < r->end && *q >= '0' && *q <= '9')
            q++;
    }
    r->p = q;
#if OT_HAS_INTEGERS
    if (integral) {
        /* exact, without strtod, while it fits in a lua_Integer */
        unsigned long long v = 0, limit = negative ? 9223372036854775808ULL : 9223372036854775807ULL;
        const char *d;
        for (d = s + negative; d < q; d++) {
            unsigned digit = (unsigned)(*d - '0');
            if (v > (limit - digit) / 10)
                break;
            v = v * 10 + digit;
        }
        if (d == q) {
            lua_pushinteger(r->L, negative ? (lua_Integer)(0 - v) : (lua_Integer)v);
            return 1;
        }
    }
#endif
    {
        char buf[64], *copy = buf, *stop;
        size_t len = (size_t)(q - s);
        double v;
        lua_Integer i;
        (void)i;
        (void)integral;
        (void)negative;
        if (len >= sizeof buf && (copy = (char *)malloc(len + 1)) == NULL)
            return fail(r, "out of memory");
        memcpy(copy, s, len);
        copy[len] = '\0';
        errno = 0;
        v = strtod(copy, &stop);
        if (copy != buf)
            free(copy);
        if (v == HUGE_VAL || v == -HUGE_VAL)
            return fail(r, "number out of range");
#if OT_HAS_INTEGERS
        /* an integer literal that did not fit stays a float: converting it
         * back would silently turn it into the nearest lua_Integer */
        if (!integral && lua_numbertointeger((lua_Number)v, &i) && (lua_Number)i == (lua_Number)v) {
            lua_pushinteger(r->L, i);
            return 1;
        }
#endif
        lua_pushnumber(r->L, (lua_Number)v);
    }
    return 1;
}

/* ---- strings ------------------------------------------------------ */

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return 0;
    }
    *out = v;
    return 1;
}

static void add_utf8(luaL_Buffer *b, unsigned cp) {
    if (cp < 0x80) {
        luaL_addchar(b, (char)cp);
    } else if (cp < 0x800) {
        luaL_addchar(b, (char)(0xC0 | (cp >> 6)));
        luaL_addchar(b, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        luaL_addchar(b, (char)(0xE0 | (cp >> 12)));
        luaL_addchar(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        luaL_addchar(b, (char)(0x80 | (cp & 0x3F)));
    } else {
        luaL_addchar(b, (char)(0xF0 | (cp >> 18)));
        luaL_addchar(b, (char)(0x80 | ((cp >> 12) & 0x3F)));
        luaL_addchar(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        luaL_addchar(b, (char)(0x80 | (cp & 0x3F)));
    }
}

/* A string with escapes, from the first backslash at r->p on. */
/* Whether [p, end), shorter than six bytes, is how "\\uXXXX" begins. */
static int is_u_escape_start(const char *p, const char *end) {
    const char *q;
    if (p < end && *p != '\\')
        return 0;
    if (p + 1 < end && p[1] != 'u')
        return 0;
    for (q = p + 2; q < end; q++)
        if (!isxdigit((unsigned char)*q))
            return 0;
    return 1;
}

static int escaped_string(reader *r, const char *from) {
    const char *cut_at = NULL; /* where the escape the text ends in began */
    luaL_Buffer b;
    luaL_buffinit(r->L, &b);
    luaL_addlstring(&b, from, (size_t)(r->p - from));
    while (r->p < r->end) {
        unsigned char c = (unsigned char)*r->p;
        if (c == '"') {
            r->p++;
            luaL_pushresult(&b);
            return 1;
        }
        if (c < 0x20)
            break;
        if (c != '\\') {
            luaL_addchar(&b, (char)c);
            r->p++;
            continue;
        }
        if (r->end - r->p < 2)
            goto cut;
        switch (r->p[1]) {
        case '"': luaL_addchar(&b, '"'); break;
        case '\\': luaL_addchar(&b, '\\'); break;
        case '/': luaL_addchar(&b, '/'); break;
        case 'b': luaL_addchar(&b, '\b'); break;
        case 'f': luaL_addchar(&b, '\f'); break;
        case 'n': luaL_addchar(&b, '\n'); break;
        case 'r': luaL_addchar(&b, '\r'); break;
        case 't': luaL_addchar(&b, '\t'); break;
        case 'u': {
            unsigned cp, low;
            if (r->end - r->p < 6) {
                cut_at = r->p;
                goto cut_or_bad;
            }
            if (!hex4(r->p + 2, &cp))
                goto bad;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                /* a high surrogate needs its low half */
                if (r->end - r->p < 12) {
                    cut_at = r->p + 6;
                    goto cut_or_bad;
                }
                if (r->p[6] != '\\' || r->p[7] != 'u' || !hex4(r->p + 8, &low) || low < 0xDC00 || low > 0xDFFF)
                    goto bad;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                r->p += 6;
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                goto bad;
            }
            add_utf8(&b, cp);
            r->p += 6;
            continue;
        }
        default:
            goto bad;
        }
        r->p += 2;
    }
    luaL_pushresult(&b);
    lua_pop(r->L, 1);
    return fail(r, r->p < r->end ? "control character in a string" : "unterminated string");
cut_or_bad:
    /* the text ends inside a \\uXXXX escape: cut short if what came of it
     * is one, else bad */
    if (!is_u_escape_start(cut_at, r->end))
        goto bad;
cut:
    luaL_pushresult(&b);
    lua_pop(r->L, 1);
    return cut_short(r);
bad:
    luaL_pushresult(&b);
    lua_pop(r->L, 1);
    return fail(r, "bad escape in a string");
}

/* 1 for bytes that stand for themselves in a string: not '"', '\\' or a
 * control character. One table lookup per byte keeps the scan tight. */
static const unsigned char PLAIN[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0),
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20..0x2f: '"' is 0x22 */
    R16(1), R16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50..0x5f: '\\' is 0x5c */
    R16(1), R16(1), R16(1), R16(1), R16(1), R16(1), R16(1), R16(1), R16(1), R16(1),
#undef R16
};

/* A cheap hash for the name cache: length, first and last 8 bytes. Two
 * names that collide only cost a miss; equality is always checked. */
static unsigned name_hash(const char *s, size_t len) {
    uint64_t a = 0, b = 0;
    if (len >= 8) {
        memcpy(&a, s, 8);
        memcpy(&b, s + len - 8, 8);
    } else {
        size_t i;
        for (i = 0; i < len; i++)
            a = (a << 8) | (unsigned char)s[i];
    }
    a = (a ^ (b * 0x9E3779B97F4A7C15ULL) ^ len) * 0x9E3779B97F4A7C15ULL;
    return (unsigned)(a >> 40) & (JSON_NAME_SLOTS - 1);
}

/* Pushes a member name. Answers repeat the same few dozen names for every
 * lease; taking them from the cache skips Lua's hashing and interning. */
static void push_name(reader *r, const char *s, size_t len) {
    unsigned h;
    if (r->names == NULL || len > JSON_NAME_MAX) {
        lua_pushlstring(r->L, s, len);
        return;
    }
    h = name_hash(s, len);
    if (r->names->slot[h].len == len && r->names->slot[h].bytes != NULL &&
        memcmp(r->names->slot[h].bytes, s, len) == 0) {
        lua_rawgeti(r->L, r->anchor, (int)h + 1);
        return;
    }
    lua_pushlstring(r->L, s, len);
    lua_pushvalue(r->L, -1);
    lua_rawseti(r->L, r->anchor, (int)h + 1);
    r->names->slot[h].bytes = lua_tostring(r->L, -1); /* Lua strings never move */
    r->names->slot[h].len = len;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Where the run of plain string bytes from p ends: at '"', '\\', a
 * control character or `end`. */
static const char *plain_run(const char *p, const char *stop) {
    const unsigned char *q = (const unsigned char *)p, *end = (const unsigned char *)stop;
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* eight bytes at a time: each mask flags bytes that are '"', '\\' or
     * below 0x20, and its lowest flag is always the first such byte */
    while (end - q >= 8) {
        uint64_t v, quote, slash, hit;
        memcpy(&v, q, 8);
        quote = v ^ (ONES * '"');
        slash = v ^ (ONES * '\\');
        hit = (((quote - ONES) & ~quote) | ((slash - ONES) & ~slash) | ((v - ONES * 0x20) & ~v)) & HIGHS;
        if (hit)
            return (const char *)q + (__builtin_ctzll(hit) >> 3);
        q += 8;
    }
#endif
    while (q < end && PLAIN[*q])
        q++;
    return (const char *)q;
}

static int string(reader *r, int name) {
    const char *from = ++r->p; /* past the opening quote */
    r->p = plain_run(r->p, r->end);
    while (r->p < r->end) {
        unsigned char c = (unsigned char)*r->p;
        if (c == '"') {
            if (name)
                push_name(r, from, (size_t)(r->p - from));
            else
                lua_pushlstring(r->L, from, (size_t)(r->p - from));
            r->p++;
            return 1;
        }
        if (c == '\\')
            return escaped_string(r, from);
        if (c < 0x20)
            return fail(r, "control character in a string");
        r->p++;
    }
    return fail(r, "unterminated string");
}

/* ---- values ------------------------------------------------------- */

/* Pushes the next value; pushes nothing (and returns 2) for null. */
static int value(reader *r);

static int enter(reader *r) {
    if (++r->depth > MAX_DEPTH)
        return fail(r, "nested too deeply");
    /* Lua 5.1 and LuaJIT cap the C stack at about 8,000 slots, which staged
     * elements of outer levels may already hold: say so, never raise */
    if (!lua_checkstack(r->L, 4))
        return fail(r, "nested too deeply for this Lua's stack");
    r->p++; /* past [ or { */
    skip_space(r);
    return 1;
}

/*
 * Arrays and objects are built from the stack: elements (or name, value
 * pairs) are pushed above `base` while the stack allows, up to STAGED
 * slots, and the table is then created at its final size, so no table is
 * ever rehashed while it fills. Past that, the table is created and later
 * elements are stored as they come.
 */
#define STAGED 256

/* Creates the table for the `staged` slots above base, stores them and
 * leaves the table at base + 1. Arrays stage one slot per element (nil for
 * null), objects two per member. */
static void build(reader *r, int base, int staged, int is_array, int more) {
    lua_State *L = r->L;
    int i;
    if (is_array) {
        lua_createtable(L, staged + more, 0);
        lua_insert(L, base + 1);
        for (i = staged; i >= 1; i--) {
            if (lua_isnil(L, -1))
                lua_pop(L, 1);
            else
                lua_rawseti(L, base + 1, i);
        }
    } else {
        lua_createtable(L, 0, staged / 2 + more);
        if (staged == 0)
            return; /* every member was null: the table is already at base + 1 */
        for (i = base + 1; i <= base + staged; i += 2) {
            lua_pushvalue(L, i);
            lua_pushvalue(L, i + 1);
            lua_rawset(L, -3); /* in order: a repeated name keeps its last value */
        }
        lua_replace(L, base + 1);
        lua_settop(L, base + 1);
    }
}

/* Whether the next element may be staged: under STAGED and with room on
 * the stack, asked for 64 slots at a time (the slots stay ours for the
 * rest of the call). Otherwise the table is built now. */
static int stage(reader *r, int base, int *staged, int *room, int slots, int is_array) {
    if (*staged >= 0) {
        if (*staged + slots <= STAGED && (*room >= slots || lua_checkstack(r->L, (*room = 64) + 4))) {
            *room -= slots;
            return 1;
        }
        build(r, base, *staged, is_array, *staged / (is_array ? 1 : 2));
        *staged = -1;
    }
    return 0;
}

static int array(reader *r) {
    lua_State *L = r->L;
    int base = lua_gettop(L), staged = 0, room = 0;
    lua_Integer n = 0;
    if (!enter(r))
        return 0;
    if (r->p < r->end && *r->p == ']') {
        lua_createtable(L, 0, 0);
        r->p++;
        r->depth--;
        return 1;
    }
    for (;;) {
        int direct = !stage(r, base, &staged, &room, 1, 1);
        int got = value(r);
        if (!got)
            return 0;
        if (++n >= INT_MAX)
            return fail(r, "array too long");
        if (got == 2 && (r->depth == 2 || r->depth == 3) && r->in_payload)
            r->holes[r->depth - 2]++;
        if (direct) {
            if (got == 1)
                lua_rawseti(L, base + 1, (int)n);
        } else {
            if (got == 2)
                lua_pushnil(L);
            staged++;
        }
        skip_space(r);
        if (r->p >= r->end)
            return fail(r, "unterminated array");
        if (*r->p == ']') {
            if (staged >= 0)
                build(r, base, staged, 1, 0);
            r->p++;
            r->depth--;
            return 1;
        }
        if (*r->p != ',')
            return fail(r, "expected ',' or ']'");
        r->p++;
    }
}

void json_object_mt(lua_State *L) {
    if (luaL_newmetatable(L, JSON_OBJECT_MT)) {
        lua_pushliteral(L, JSON_OBJECT_MT);
        lua_setfield(L, -2, "__name");
    }
}

/* Marks the table at the top, an object, when it is empty: an empty Lua
 * table alone cannot say whether it was {} or []. */
static void mark_if_empty(lua_State *L) {
    lua_pushnil(L);
    if (lua_next(L, -2)) {
        lua_pop(L, 2);
        return;
    }
    json_object_mt(L);
    lua_setmetatable(L, -2);
}

static int object(reader *r) {
    lua_State *L = r->L;
    int base = lua_gettop(L), staged = 0, room = 0;
    if (!enter(r))
        return 0;
    if (r->p < r->end && *r->p == '}') {
        lua_createtable(L, 0, 0);
        json_object_mt(L);
        lua_setmetatable(L, -2);
        r->p++;
        r->depth--;
        return 1;
    }
    for (;;) {
        int got, direct;
        skip_space(r);
        if (r->p >= r->end || *r->p != '"')
            return fail(r, "expected a member name");
        direct = !stage(r, base, &staged, &room, 2, 0);
        if (!string(r, 1))
            return 0;
        if (r->depth == 1) {
            /* only the payload's nulls matter to the caller (see holes) */
            size_t len;
            const char *name = lua_tolstring(L, -1, &len);
            r->in_payload = len == 7 && memcmp(name, "payload", 7) == 0;
        }
        skip_space(r);
        if (r->p >= r->end || *r->p != ':')
            return fail(r, "expected ':'");
        r->p++;
        got = value(r);
        if (!got)
            return 0;
        if (got == 2)
            lua_pop(L, 1); /* null: drop the name */
        else if (direct)
            lua_rawset(L, base + 1);
        else
            staged += 2;
        skip_space(r);
        if (r->p >= r->end)
            return fail(r, "unterminated object");
        if (*r->p == '}') {
            if (staged >= 0)
                build(r, base, staged, 0, 0);
            if (staged <= 0)
                mark_if_empty(L); /* no member staged: maybe every one was null */
            r->p++;
            r->depth--;
            return 1;
        }
        if (*r->p != ',')
            return fail(r, "expected ',' or '}'");
        r->p++;
    }
}

static int value(reader *r) {
    skip_space(r);
    if (r->p >= r->end)
        return fail(r, "unexpected end");
    switch (*r->p) {
    case '{': return object(r);
    case '[': return array(r);
    case '"': return string(r, 0);
    case 't':
        if (!literal(r, "true", 4))
            return 0;
        lua_pushboolean(r->L, 1);
        return 1;
    case 'f':
        if (!literal(r, "false", 5))
            return 0;
        lua_pushboolean(r->L, 0);
        return 1;
    case 'n': return literal(r, "null", 4) ? 2 : 0;
    default: return number(r);
    }
}

/* Decodes s[0..len); pushes the value (nil for null) and returns 1, or
 * pushes an error message and returns 0. `holes` (two counts) gets the
 * nulls left out of the top-level object's "payload" when it is an array
 * (a list of leases), and of the arrays among its members (a search page's
 * "data"); for a top-level array, its own and its arrays'. Nulls elsewhere
 * do not make a good answer bad. `ran_out` (may be NULL), on failure: 1
 * when the text ended inside the value, as a text cut short does. */
int json_decode(lua_State *L, const char *s, size_t len, int *holes, json_names *names, int anchor,
                int *ran_out) {
    reader r;
    int top = lua_gettop(L), got;
    r.L = L;
    r.start = r.p = s;
    r.end = s + len;
    r.error = NULL;
    r.depth = 0;
    r.holes[0] = r.holes[1] = 0;
    r.in_payload = 1; /* a top-level array counts its own nulls */
    r.names = names;
    r.anchor = anchor;
    got = value(&r);
    if (got) {
        skip_space(&r);
        if (r.p < r.end)
            got = fail(&r, "unexpected data after the value");
    }
    if (!got) {
        char where[32];
        lua_settop(L, top);
        snprintf(where, sizeof where, "%lu", (unsigned long)(r.p - r.start) + 1);
        lua_pushfstring(L, "%s at byte %s", r.error ? r.error : "invalid JSON", where);
        if (ran_out != NULL)
            *ran_out = r.p >= r.end;
        return 0;
    }
    if (got == 2)
        lua_pushnil(L);
    if (holes != NULL) {
        holes[0] = r.holes[0];
        holes[1] = r.holes[1];
    }
    return 1;
}

/* core.json_decode(text) -> value, or nil and a message */
int json_decode_document(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    lua_settop(L, 1);
    if (json_decode(L, s, len, NULL, NULL, 0, NULL))
        return 1;
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

/* ---- skimming ----------------------------------------------------------- */

/*
 * Reading a text for a few values without building the rest: these check
 * what they pass over as strictly as json_decode reads it, and build
 * nothing. A skim that knows what it looks for (answer_skim.c) walks the
 * text with them.
 */

/* Skips a string at r->p (on its opening quote), checking its escapes. */
int json_skip_string(reader *r) {
    r->p++;
    for (;;) {
        unsigned cp;
        r->p = plain_run(r->p, r->end);
        if (r->p >= r->end)
            return fail(r, "unterminated string");
        if (*r->p == '"') {
            r->p++;
            return 1;
        }
        if (*r->p != '\\' || r->end - r->p < 2)
            return fail(r, "bad string");
        if (r->p[1] != 'u') {
            if (strchr("\"\\/bfnrt", r->p[1]) == NULL || r->p[1] == '\0')
                return fail(r, "bad escape in a string");
            r->p += 2;
            continue;
        }
        if (r->end - r->p < 6 || !hex4(r->p + 2, &cp))
            return fail(r, "bad escape in a string");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned low;
            if (r->end - r->p < 12 || r->p[6] != '\\' || r->p[7] != 'u' || !hex4(r->p + 8, &low) ||
                low < 0xDC00 || low > 0xDFFF)
                return fail(r, "bad escape in a string");
            r->p += 6;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return fail(r, "bad escape in a string");
        }
        r->p += 6;
    }
}

/* Whether the member name at r->p (on its quote) is `name`; moves past
 * it either way (0 with the error set if it is not a string). A name with
 * escapes may spell any name: with `plain`, it is refused. */
static int skip_name(reader *r, const char *name, size_t len, int *match, int plain) {
    const char *from = r->p + 1;
    if (r->p >= r->end || *r->p != '"')
        return fail(r, "expected a member name");
    if (!json_skip_string(r))
        return 0;
    if (plain && memchr(from, '\\', (size_t)(r->p - 1 - from)) != NULL)
        return fail(r, "an escaped member name");
    *match = (size_t)(r->p - 1 - from) == len && memcmp(from, name, len) == 0;
    return 1;
}

/* At a container's next member or element: 1 when one follows (past its
 * ',' unless it is the first), 0 when the container ends here (r->p past
 * `close`), -1 on anything else (the error set). */
int json_next_item(reader *r, char close, int *first) {
    skip_space(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
        return 0;
    }
    if (!*first) {
        if (r->p >= r->end || *r->p != ',') {
            fail(r, "expected ','");
            return -1;
        }
        r->p++;
        skip_space(r);
    }
    *first = 0;
    return 1;
}

/* A member's name and its ':' (see skip_name), r->p then on its value;
 * *quoted (when given): the name's bytes with their quotes. */
int json_member_name(reader *r, const char *name, size_t len, int *match, int plain, size_t *quoted) {
    const char *from = r->p;
    if (!skip_name(r, name, len, match, plain))
        return 0;
    if (quoted != NULL)
        *quoted = (size_t)(r->p - from);
    skip_space(r);
    if (r->p >= r->end || *r->p != ':')
        return fail(r, "expected ':'");
    r->p++;
    skip_space(r);
    return 1;
}

/* Skips the rest of an array or object (r->p on its [ or {). */
static int skip_container(reader *r) {
    char close = *r->p == '[' ? ']' : '}';
    int first = 1, item;
    if (++r->depth > MAX_DEPTH)
        return fail(r, "nested too deeply");
    r->p++;
    while ((item = json_next_item(r, close, &first)) > 0) {
        int ignored;
        if (close == '}' && !json_member_name(r, "", 0, &ignored, 0, NULL))
            return 0;
        if (!json_skip_value(r))
            return 0;
    }
    if (item < 0)
        return 0;
    r->depth--;
    return 1;
}

int json_skip_value(reader *r) {
    skip_space(r);
    if (r->p >= r->end)
        return fail(r, "unexpected end");
    switch (*r->p) {
    case '{':
    case '[': return skip_container(r);
    case '"': return json_skip_string(r);
    case 't': return literal(r, "true", 4);
    case 'f': return literal(r, "false", 5);
    case 'n': return literal(r, "null", 4);
    default:
        /* read as json_decode reads it: a number out of range fails alike */
        if (!number(r))
            return 0;
        lua_pop(r->L, 1);
        return 1;
    }
}

/* What the skims of other files need of the reader, which is this file's. */
void json_skip_space(reader *r) {
    skip_space(r);
}

int json_fail(reader *r, const char *what) {
    return fail(r, what);
}
