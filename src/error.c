/*
 * error.c: the one constructor of the error tables of the API contract,
 * for every file that reports one (request building, answer decoding, the
 * transports). No I/O.
 */
#include "opentact.h"

void error_push(lua_State *L, const char *kind, long status, const char *message, int retryable) {
    lua_createtable(L, 0, 6);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    if (status >= 0) {
        lua_pushinteger(L, (lua_Integer)status);
        lua_setfield(L, -2, "status");
    }
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    lua_pushboolean(L, retryable);
    lua_setfield(L, -2, "retryable");
}
