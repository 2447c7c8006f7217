/*
 * compat.h: the only place that knows which Lua it is built against.
 *
 * Shims carry an "ot_" prefix so they never collide with the 5.2-style
 * functions that LuaJIT 2.1 already exports under their real names.
 */
#ifndef OPENTACT_COMPAT_H
#define OPENTACT_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM >= 503
#define OT_HAS_INTEGERS 1
#else
#define OT_HAS_INTEGERS 0
#endif

#if LUA_VERSION_NUM >= 502
#define ot_setfuncs(L, l) luaL_setfuncs((L), (l), 0)
#define ot_newlib(L, l) luaL_newlib((L), (l))
#define ot_rawlen(L, i) lua_rawlen((L), (i))
#define ot_setuservalue(L, i) lua_setuservalue((L), (i))
#define ot_getuservalue(L, i) ((void)lua_getuservalue((L), (i)))
#else
/* Lua 5.1 and LuaJIT: the environment table plays the uservalue. */
static inline void ot_setfuncs(lua_State *L, const luaL_Reg *l) {
    for (; l->name != NULL; l++) {
        lua_pushcfunction(L, l->func);
        lua_setfield(L, -2, l->name);
    }
}
#define ot_newlib(L, l) (lua_newtable(L), ot_setfuncs((L), (l)))
#define ot_rawlen(L, i) lua_objlen((L), (i))
#define ot_setuservalue(L, i) ((void)lua_setfenv((L), (i)))
#define ot_getuservalue(L, i) lua_getfenv((L), (i))
#endif

/* Lua 5.4 has only the uservalue slots we ask for. */
#if LUA_VERSION_NUM >= 504
#define ot_newuserdata(L, s) lua_newuserdatauv((L), (s), 1)
#else
#define ot_newuserdata(L, s) lua_newuserdata((L), (s))
#endif

/* Whether the collector may be made to step: it runs (the host did not
 * stop it). Lua 5.1 and LuaJIT cannot tell, and a step there would undo a
 * stop: never. */
#if LUA_VERSION_NUM >= 502
#define ot_gc_may_step(L) lua_gc((L), LUA_GCISRUNNING, 0)
#else
#define ot_gc_may_step(L) 0
#endif

/* Metatable lookup by name that leaves nothing behind on failure. */
static inline void *ot_testudata(lua_State *L, int idx, const char *tname) {
    void *p = lua_touserdata(L, idx);
    if (p == NULL || !lua_getmetatable(L, idx))
        return NULL;
    luaL_getmetatable(L, tname);
    if (!lua_rawequal(L, -1, -2))
        p = NULL;
    lua_pop(L, 2);
    return p;
}

#endif
