/*
 * fuzz_request.c: request building. The input is split on newlines: the
 * first line is the connection uuid, lines starting with '+' go to `add`,
 * '-' to `remove`. Whatever the bytes, request_list and request_assign
 * must return a path (and body) of the exact shape, or nil and an error.
 * Lines "name=value" make a search filter (value as a string; "#" before
 * it: as a number, "?": as a boolean, "[": a list of one string, "{": an
 * order {value = "ASC"}): request_search must return a path and a body
 * that is a JSON object, nil and an `invalid` error, or raise a
 * "bad argument" error.
 */
#include <stdint.h>
#include <string.h>

#include "compat.h"
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

static const luaL_Reg tested[] = {
    {"request_list", request_list},
    {"request_assign", request_assign},
    {"request_search", request_search},
    {NULL, NULL},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lua_State *L = harness_state(tested);
    const char *s = (const char *)data, *end = s + size, *nl;
    int n[2] = {0, 0};
    nl = memchr(s, '\n', size);
    lua_getglobal(L, "core");                       /* 1 */
    lua_pushlstring(L, s, nl ? (size_t)(nl - s) : size); /* 2: conn */
    lua_createtable(L, 0, 2);                       /* 3: changes */
    lua_newtable(L);                                /* 4: add */
    lua_newtable(L);                                /* 5: remove */
    lua_newtable(L);                                /* 6: search filter */
    while (nl != NULL) {
        const char *line = nl + 1, *next = memchr(line, '\n', (size_t)(end - line));
        size_t len = (size_t)((next ? next : end) - line);
        const char *eq = memchr(line, '=', len);
        if (len > 0 && (line[0] == '+' || line[0] == '-')) {
            int which = line[0] == '-';
            lua_pushlstring(L, line + 1, len - 1);
            lua_rawseti(L, 4 + which, ++n[which]);
        } else if (eq != NULL) {
            const char *v = eq + 1;
            size_t vlen = (size_t)(line + len - v);
            lua_pushlstring(L, line, (size_t)(eq - line));
            if (vlen > 0 && v[0] == '#') {
                lua_pushlstring(L, v + 1, vlen - 1);
                lua_pushnumber(L, lua_tonumber(L, -1));
                lua_remove(L, -2);
            } else if (vlen > 0 && v[0] == '?') {
                lua_pushboolean(L, vlen > 1 && v[1] == 't');
            } else if (vlen > 0 && (v[0] == '[' || v[0] == '{')) {
                lua_newtable(L);
                lua_pushlstring(L, v + 1, vlen - 1);
                if (v[0] == '[') {
                    lua_rawseti(L, -2, 1);
                } else {
                    lua_pushliteral(L, "ASC");
                    lua_rawset(L, -3);
                }
            } else {
                lua_pushlstring(L, v, vlen);
            }
            lua_rawset(L, 6);
        }
        nl = next;
    }
    lua_pushvalue(L, 5);
    lua_setfield(L, 3, "remove");
    lua_pushvalue(L, 4);
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
    lua_settop(L, 6);

    lua_getfield(L, 1, "request_search");
    lua_pushvalue(L, 6);
    lua_pushinteger(L, 100);
    lua_pushinteger(L, 0);
    if (lua_pcall(L, 3, 2, 0) != 0) {
        if (lua_type(L, -1) != LUA_TSTRING || strstr(lua_tostring(L, -1), "bad argument #1") == NULL)
            abort();
    } else if (lua_isnil(L, -2)) {
        check_error(L, -1);
    } else {
        /* the body is one JSON object: as the payload's one element, it decodes to a table */
        lua_getfield(L, 1, "answer_decode");
        lua_pushinteger(L, 200);
        lua_pushliteral(L, "{\"success\":true,\"payload\":[");
        lua_pushvalue(L, -4);
        lua_pushliteral(L, "]}");
        lua_concat(L, 3);
        if (lua_pcall(L, 2, 2, 0) != 0 || !lua_istable(L, -2) || ot_rawlen(L, -2) != 1)
            abort();
    }
    harness_tidy(L);
    return 0;
}
