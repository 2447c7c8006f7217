/*
 * embed.c: a C program that embeds Lua 5.4 and uses lua-opentact, the way
 * a telecom host (FreeSWITCH, Kamailio, Asterisk) or a game server does.
 *
 *   cc -o embed examples/embed/embed.c -I/usr/include/lua5.4 -llua5.4
 *   LUA_CPATH='.rocks/lua5.4/lib/lua/5.4/?.so;;' LUA_PATH='.rocks/lua5.4/share/lua/5.4/?.lua;;' \
 *   OPENTACT_TOKEN=... OPENTACT_URL=... ./embed CONN LEASE
 *
 * It lists the connection, assigns LEASE to it, lists again and prints
 * each result. The module is found through package.path and package.cpath
 * (here from LUA_PATH and LUA_CPATH). Errors come back as values; the
 * program decides what to do with them.
 */
#include <stdio.h>
#include <stdlib.h>

#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>

/* Calls opentact.<fn>(conn[, {add = {lease}}]) and prints what came back.
 * Returns 0 on success, 1 on an API error. */
static int call(lua_State *L, const char *fn, const char *conn, const char *lease) {
    int nargs = 1, status;
    lua_getglobal(L, "opentact");
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
    lua_pushstring(L, conn);
    if (lease != NULL) {
        lua_createtable(L, 0, 1);
        lua_createtable(L, 1, 0);
        lua_pushstring(L, lease);
        lua_rawseti(L, -2, 1);
        lua_setfield(L, -2, "add");
        nargs = 2;
    }
    if (lua_pcall(L, nargs, 2, 0) != LUA_OK) {
        /* a raised error means misuse, not a network problem */
        fprintf(stderr, "%s raised: %s\n", fn, lua_tostring(L, -1));
        lua_pop(L, 1);
        return 1;
    }
    if (lua_isnil(L, -2)) {
        /* nil, err: tostring(err) is one line */
        printf("%s failed: %s\n", fn, luaL_tolstring(L, -1, NULL));
        status = 1;
    } else {
        /* leases print as a readable table */
        printf("%s: %s\n", fn, luaL_tolstring(L, -2, NULL));
        status = 0;
    }
    lua_settop(L, 0);
    return status;
}

int main(int argc, char **argv) {
    lua_State *L;
    int failures = 0;
    if (argc != 3) {
        fprintf(stderr, "usage: %s CONN LEASE\n", argv[0]);
        return 2;
    }
    L = luaL_newstate();
    if (L == NULL)
        return 1;
    luaL_openlibs(L);
    /* load the module once; its default client is made on first use and
     * kept for the life of this process */
    if (luaL_dostring(L, "opentact = require('opentact')") != LUA_OK) {
        fprintf(stderr, "cannot load opentact: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return 1;
    }
    failures += call(L, "list", argv[1], NULL);
    failures += call(L, "assign", argv[1], argv[2]);
    failures += call(L, "list", argv[1], NULL);
    failures += call(L, "list", "not-a-uuid", NULL) == 1 ? 0 : 1; /* shows an error */
    lua_close(L);
    return failures == 0 ? 0 : 1;
}
