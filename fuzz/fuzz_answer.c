/*
 * fuzz_answer.c: answer decoding. The first two bytes pick the HTTP
 * status, the third the length of a Retry-After value taken from what
 * follows; the rest is the body. Whatever the bytes, answer_decode must
 * return a list of lease tables or nil and an error with a known kind;
 * read for uuids only (shape "uuids", which skims), the same answer must
 * fail with the same message, or give the same leases' uuids; read as a
 * search page, a page or a known error.
 */
#include <stdint.h>
#include <string.h>

#include "compat.h"
#include "harness.h"

static const luaL_Reg no_functions[] = {{NULL, NULL}};

static const char *const KINDS[] = {"auth", "not_found", "rejected", "rate_limited",
                                    "server", "protocol", NULL};

static void check_error(lua_State *L, int idx) {
    int i, known = 0;
    if (!lua_istable(L, idx))
        abort();
    lua_getfield(L, idx, "kind");
    for (i = 0; KINDS[i] != NULL; i++)
        known |= lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), KINDS[i]) == 0;
    if (!known)
        abort();
    lua_pop(L, 1);
}

/* Calls answer_decode(status, body, retry_after, shape) with the three
 * values at base..base+2; leaves its two results on top. */
static void decode(lua_State *L, int base, const char *shape) {
    lua_getglobal(L, "core");
    lua_getfield(L, -1, "answer_decode");
    lua_remove(L, -2);
    lua_pushvalue(L, base);
    lua_pushvalue(L, base + 1);
    lua_pushvalue(L, base + 2);
    lua_pushstring(L, shape);
    if (lua_pcall(L, 4, 2, 0) != 0)
        abort();
}

/* The uuids reading of the answer whose full reading is at full, full+1. */
static void check_uuids(lua_State *L, int base, int full) {
    int got = lua_gettop(L) + 1;
    decode(L, base, "uuids");
    if (lua_isnil(L, full)) {
        lua_getfield(L, full + 1, "message");
        /* Lua 5.1's C stack limit is json_decode's alone: skimming builds no nesting */
        if (strstr(lua_tostring(L, -1), "for this Lua's stack") != NULL) {
            lua_settop(L, got - 1);
            return;
        }
        lua_pop(L, 1);
        if (!lua_isnil(L, got))
            abort();
        lua_getfield(L, full + 1, "message");
        lua_getfield(L, got + 1, "message");
        if (!lua_rawequal(L, -1, -2))
            abort();
    } else {
        size_t i, n = ot_rawlen(L, full);
        if (!lua_istable(L, got) || ot_rawlen(L, got) != n)
            abort();
        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, got, (int)i);
            if (lua_type(L, -1) == LUA_TSTRING) {
                lua_rawgeti(L, full, (int)i);
                lua_getfield(L, -1, "uuid");
                if (!lua_rawequal(L, -1, -3))
                    abort();
                lua_pop(L, 2);
            } else if (lua_type(L, -1) != LUA_TTABLE) {
                abort();
            }
            lua_pop(L, 1);
        }
    }
    lua_settop(L, got - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lua_State *L = harness_state(no_functions);
    long status;
    size_t ra_len;
    int i, base, full;
    if (size < 3)
        return 0;
    status = 100 + (((long)data[0] << 8 | data[1]) % 600);
    ra_len = data[2] % 32;
    if (ra_len > size - 3)
        ra_len = size - 3;
    lua_getglobal(L, "core");
    lua_getfield(L, -1, "answer_decode");
    base = lua_gettop(L) + 1;
    lua_pushinteger(L, status);
    lua_pushlstring(L, (const char *)data + 3 + ra_len, size - 3 - ra_len);
    if (ra_len > 0)
        lua_pushlstring(L, (const char *)data + 3, ra_len);
    else
        lua_pushnil(L);
    /* the arguments stay for the other readings */
    lua_pushvalue(L, base - 1);
    lua_pushvalue(L, base);
    lua_pushvalue(L, base + 1);
    lua_pushvalue(L, base + 2);
    if (lua_pcall(L, 3, 2, 0) != 0)
        abort();
    full = lua_gettop(L) - 1;
    if (lua_istable(L, -2)) {
        size_t n = ot_rawlen(L, -2);
        for (i = 1; (size_t)i <= n; i++) {
            lua_rawgeti(L, -2, i);
            if (lua_type(L, -1) != LUA_TTABLE)
                abort();
            lua_pop(L, 1);
        }
    } else {
        if (!lua_isnil(L, -2))
            abort();
        check_error(L, -1);
    }
    check_uuids(L, base, full);
    decode(L, base, "page");
    if (lua_isnil(L, -2))
        check_error(L, -1);
    else if (!lua_istable(L, -2))
        abort();
    harness_tidy(L);
    return 0;
}
