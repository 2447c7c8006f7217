/*
 * harness.h: a Lua state (5.4, 5.1 or LuaJIT, whichever the harness is
 * built against) with opentact.core loaded, shared by the libFuzzer
 * harnesses. The core's sources are compiled into each harness.
 */
#ifndef OPENTACT_FUZZ_HARNESS_H
#define OPENTACT_FUZZ_HARNESS_H

#include <stdio.h>
#include <stdlib.h>

#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>

int luaopen_opentact_core(lua_State *L);

/* Returns a state whose global `core` is opentact.core; aborts if it cannot. */
static lua_State *harness_state(void) {
    static lua_State *L;
    if (L != NULL)
        return L;
    L = luaL_newstate();
    luaL_openlibs(L);
    lua_pushcfunction(L, luaopen_opentact_core);
    lua_call(L, 0, 1);
    lua_setglobal(L, "core");
    return L;
}

/* Every so often, a full collection keeps the state small. */
static void harness_tidy(lua_State *L) {
    static unsigned runs;
    lua_settop(L, 0);
    if (++runs % 4096 == 0)
        lua_gc(L, LUA_GCCOLLECT, 0);
}

#endif
