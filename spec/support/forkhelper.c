/*
 * forkhelper.c: fork(), waitpid() and _exit() for the fork-safety spec.
 * A test helper only; never installed. Built by spec/run for each Lua.
 */
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

static int h_fork(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)fork());
    return 1;
}

static int h_wait(lua_State *L) {
    int status = 0;
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    if (waitpid(pid, &status, 0) != pid)
        return 0;
    lua_pushinteger(L, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return 1;
}

static int h_exit(lua_State *L) {
    _exit((int)luaL_optinteger(L, 1, 0));
    return 0;
}

int luaopen_forkhelper(lua_State *L) {
    lua_newtable(L);
    lua_pushcfunction(L, h_fork);
    lua_setfield(L, -2, "fork");
    lua_pushcfunction(L, h_wait);
    lua_setfield(L, -2, "wait");
    lua_pushcfunction(L, h_exit);
    lua_setfield(L, -2, "exit");
    return 1;
}
