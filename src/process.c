/*
 * process.c: what the command line asks of its own process, in C: whether
 * a descriptor is a terminal (a progress bar, a prompt, colour; a shell
 * started to run `test -t` costs a process per question), and the working
 * folder (to name an input file by its absolute path: $PWD may be stale).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "opentact.h"

/* core.isatty(fd) -> whether descriptor fd is a terminal */
int process_isatty(lua_State *L) {
    lua_Integer fd = luaL_checkinteger(L, 1);
    lua_pushboolean(L, fd >= 0 && fd <= 1024 * 1024 && isatty((int)fd) == 1);
    return 1;
}

/* core.getcwd() -> the working folder's absolute path, or nil when it
 * cannot be told (removed, or longer than PATH_MAX) */
int process_getcwd(lua_State *L) {
    char buf[PATH_MAX];
    if (getcwd(buf, sizeof buf) == NULL || buf[0] != '/')
        return 0;
    lua_pushstring(L, buf);
    return 1;
}
