/*
 * fuzz_request.c: request building. The input is split on newlines: the
 * first line is the connection uuid, lines starting with '+' go to `add`,
 * '-' to `remove`. Whatever the bytes, request_list and request_assign
 * must return a path (and body) of the exact shape, or nil and an error.
 */
#include <stdint.h>
#include <string.h>

#include "harness.h"

#define PATH_LEN (sizeof "/sip/connection/" - 1 + 36 + sizeof "/tnlease" - 1)

static void check_path(lua_State *L, int idx) {
    size_t len;
    const char *p = lua_tolstring(L, idx, &len);
    if (p == NULL || len != PATH_LEN || memcmp(p, "/sip/connection/", 16) != 0)
        abort();
}

static void check_error(lua_State *L, int idx) {
    if (!lua_istable(L, idx))
        abort();
    lua_getfield(L, idx, "kind");
    if (lua_type(L, -1) != LUA_TSTRING || strcmp(lua_tostring(L, -1), "invalid") != 0)
        abort();
    lua_pop(L, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lua_State *L = harness_state();
    const char *s = (const char *)data, *end = s + size, *nl;
    int n[2] = {0, 0};
    nl = memchr(s, '\n', size);
    lua_getglobal(L, "core");                       /* 1 */
    lua_pushlstring(L, s, nl ? (size_t)(nl - s) : size); /* 2: conn */
    lua_createtable(L, 0, 2);                       /* 3: changes */
    lua_newtable(L);                                /* 4: add */
    lua_newtable(L);                                /* 5: remove */
    while (nl != NULL) {
        const char *line = nl + 1, *next = memchr(line, '\n', (size_t)(end - line));
        size_t len = (size_t)((next ? next : end) - line);
        if (len > 0 && (line[0] == '+' || line[0] == '-')) {
            int which = line[0] == '-';
            lua_pushlstring(L, line + 1, len - 1);
            lua_rawseti(L, 4 + which, ++n[which]);
        }
        nl = next;
    }
    lua_setfield(L, 3, "remove");
    lua_setfield(L, 3, "add");

    lua_getfield(L, 1, "request_list");
    lua_pushvalue(L, 2);
    if (lua_pcall(L, 1, 2, 0) != 0)
        abort();
    if (lua_isnil(L, -2))
        check_error(L, -1);
    else
        check_path(L, -2);
    lua_pop(L, 2);

    lua_getfield(L, 1, "request_assign");
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    if (lua_pcall(L, 2, 2, 0) != 0)
        abort();
    if (lua_isnil(L, -2)) {
        check_error(L, -1);
    } else {
        size_t blen;
        const char *body = lua_tolstring(L, -1, &blen);
        check_path(L, -2);
        if (body == NULL || blen < 2 || body[0] != '{' || body[blen - 1] != '}')
            abort();
    }
    harness_tidy(L);
    return 0;
}
