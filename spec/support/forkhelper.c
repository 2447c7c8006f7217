/*
 * forkhelper.c: fork(), waitpid() and _exit() for the fork-safety spec,
 * and the descriptor calls a child that reuses descriptor numbers makes;
 * unsetenv(), so that the specs' own process stops passing a variable on.
 * A test helper only; never installed. Built by spec/run for each Lua.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
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

/* fds() -> the open descriptors' numbers */
static int h_fds(lua_State *L) {
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0, self = d ? dirfd(d) : -1;
    lua_newtable(L);
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && atoi(e->d_name) != self) {
            lua_pushinteger(L, atoi(e->d_name));
            lua_rawseti(L, -2, ++n);
        }
    }
    if (d)
        closedir(d);
    return 1;
}

static int h_close(lua_State *L) {
    lua_pushboolean(L, close((int)luaL_checkinteger(L, 1)) == 0);
    return 1;
}

/* open(path) -> the descriptor of path, made anew for writing */
static int h_open(lua_State *L) {
    lua_pushinteger(L, open(luaL_checkstring(L, 1), O_WRONLY | O_CREAT | O_TRUNC, 0600));
    return 1;
}

static int h_write(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    lua_pushinteger(L, (lua_Integer)write((int)luaL_checkinteger(L, 1), s, len));
    return 1;
}

static int h_unsetenv(lua_State *L) {
    lua_pushboolean(L, unsetenv(luaL_checkstring(L, 1)) == 0);
    return 1;
}

static const luaL_Reg functions[] = {
    {"fork", h_fork}, {"wait", h_wait}, {"exit", h_exit}, {"fds", h_fds},
    {"close", h_close}, {"open", h_open}, {"write", h_write},
    {"unsetenv", h_unsetenv}, {NULL, NULL},
};

int luaopen_forkhelper(lua_State *L) {
    const luaL_Reg *f;
    lua_newtable(L);
    for (f = functions; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
    return 1;
}
