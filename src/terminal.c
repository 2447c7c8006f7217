/*
 * terminal.c: whether one of the process's descriptors is a terminal, for
 * the command line (a progress bar, a prompt, colour). Asked in C: a shell
 * started to run `test -t` costs a process per question.
 */
#include <unistd.h>

#include "opentact.h"

/* core.isatty(fd) -> whether descriptor fd is a terminal */
int terminal_isatty(lua_State *L) {
    lua_Integer fd = luaL_checkinteger(L, 1);
    lua_pushboolean(L, fd >= 0 && fd <= 1024 * 1024 && isatty((int)fd) == 1);
    return 1;
}
