/*
 * fuzz_answer.c: answer decoding. The first two bytes pick the HTTP
 * status, the third the length of a Retry-After value taken from what
 * follows; the rest is the body. Whatever the bytes, answer_decode must
 * return a list of lease tables or nil and an error with a known kind.
 */
#include <stdint.h>
#include <string.h>

#include "compat.h"
#include "harness.h"

static const char *const KINDS[] = {"auth", "not_found", "rejected", "rate_limited",
                                    "server", "protocol", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lua_State *L = harness_state();
    long status;
    size_t ra_len;
    int i, known = 0;
    if (size < 3)
        return 0;
    status = 100 + (((long)data[0] << 8 | data[1]) % 600);
    ra_len = data[2] % 32;
    if (ra_len > size - 3)
        ra_len = size - 3;
    lua_getglobal(L, "core");
    lua_getfield(L, -1, "answer_decode");
    lua_pushinteger(L, status);
    lua_pushlstring(L, (const char *)data + 3 + ra_len, size - 3 - ra_len);
    if (ra_len > 0)
        lua_pushlstring(L, (const char *)data + 3, ra_len);
    else
        lua_pushnil(L);
    if (lua_pcall(L, 3, 2, 0) != 0)
        abort();
    if (lua_istable(L, -2)) {
        size_t n = ot_rawlen(L, -2);
        for (i = 1; (size_t)i <= n; i++) {
            lua_rawgeti(L, -2, i);
            if (lua_type(L, -1) != LUA_TTABLE)
                abort();
            lua_pop(L, 1);
        }
    } else {
        if (!lua_isnil(L, -2) || !lua_istable(L, -1))
            abort();
        lua_getfield(L, -1, "kind");
        for (i = 0; KINDS[i] != NULL; i++)
            known |= lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), KINDS[i]) == 0;
        if (!known)
            abort();
    }
    harness_tidy(L);
    return 0;
}
