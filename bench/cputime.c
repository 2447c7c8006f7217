/*
 * cputime.c: the bench's own clock, a Lua 5.4 module (bench/run builds it
 * into build/bench/cputime.so): cputime() is the CPU seconds this thread
 * has used, with which bench/step.lua tells a step's own work from time
 * the machine gave to others. Not part of the shipped module.
 */
#include <time.h>

#include <lua.h>
#include <lauxlib.h>

static int cputime(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

int luaopen_cputime(lua_State *L) {
    lua_pushcfunction(L, cputime);
    return 1;
}
