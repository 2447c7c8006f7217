/*
 * harness.h: a Lua state (5.4, 5.1 or LuaJIT, whichever the harness is
 * built against) with the part of opentact.core a harness tests, shared
 * by the libFuzzer harnesses. The sources of that part are compiled into
 * each harness (see the Makefile's fuzz rules).
 */
#ifndef OPENTACT_FUZZ_HARNESS_H
#define OPENTACT_FUZZ_HARNESS_H

#include <stdio.h>
#include <stdlib.h>

#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>

#include "opentact.h"

/* Returns a state whose global `core` holds answer_decode and the
 * `functions` of opentact.core the harness tests (the harness links only
 * the files that define them: no transport, no libcurl); aborts if it
 * cannot. */
static lua_State *harness_state(const luaL_Reg *functions) {
    static lua_State *L;
    if (L != NULL)
        return L;
    L = luaL_newstate();
    if (L == NULL)
        abort();
    luaL_openlibs(L);
    buffer_register(L);
    lua_newtable(L);
    ot_setfuncs(L, functions);
    answer_push_decode(L);
    lua_setfield(L, -2, "answer_decode");
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
