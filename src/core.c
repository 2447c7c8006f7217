/*
 * core.c: the Lua binding of opentact.core. Owns the opentact.Client
 * userdata (its life cycle and its methods) and the module table.
 *
 * The client follows liolib.c: created closed, then the curl handle is
 * acquired; one idempotent close serves close(), __gc and __close. The
 * Lua layer (opentact.lua) completes the method table with list, assign
 * and the rest; the client's options live in its uservalue.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "opentact.h"

static ot_client *check_client(lua_State *L, int idx) {
    ot_client *c = (ot_client *)luaL_checkudata(L, idx, OT_CLIENT_MT);
    if (c->single.easy == NULL)
        luaL_error(L, "attempt to use a closed opentact client");
    return c;
}

static void free_settings(ot_client *c) {
    free(c->base_url);
    free(c->user_agent);
    free(c->ca_file);
    free(c->proxy);
    c->base_url = c->user_agent = c->ca_file = c->proxy = NULL;
}

static int client_close(lua_State *L) {
    ot_client *c = (ot_client *)luaL_checkudata(L, 1, OT_CLIENT_MT);
    transport_curl_close(c);
    free_settings(c);
    lua_pushboolean(L, 1);
    return 1;
}

static int client_tostring(lua_State *L) {
    ot_client *c = (ot_client *)luaL_checkudata(L, 1, OT_CLIENT_MT);
    if (c->single.easy == NULL)
        lua_pushliteral(L, "opentact.Client (closed)");
    else
        lua_pushfstring(L, "opentact.Client (%p)", (void *)c);
    return 1;
}

/* client:_state() -> the options table the Lua layer keeps. */
static int client_state(lua_State *L) {
    luaL_checkudata(L, 1, OT_CLIENT_MT);
    ot_getuservalue(L, 1);
    return 1;
}

/* core.is_open(v) -> true for an open client, false for a closed one,
 * nil for anything else; never raises. */
static int core_is_open(lua_State *L) {
    ot_client *c = (ot_client *)ot_testudata(L, 1, OT_CLIENT_MT);
    if (c == NULL)
        lua_pushnil(L);
    else
        lua_pushboolean(L, c->single.easy != NULL);
    return 1;
}

/* A token goes into a header line: control characters would split it. */
static int token_is_safe(const char *t, size_t len) {
    size_t i;
    if (len == 0)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)t[i];
        if (ch < 0x20 || ch == 0x7f)
            return 0;
    }
    return 1;
}

/* client:_perform(method, path, body|nil, token)
 *   -> status, body, retry_after|nil  |  nil, err */
static int client_perform(lua_State *L) {
    ot_client *c = check_client(L, 1);
    static const char *const methods[] = {"GET", "POST", NULL};
    int m = luaL_checkoption(L, 2, NULL, methods);
    const char *path = luaL_checkstring(L, 3);
    size_t body_len = 0, token_len = 0;
    const char *body = luaL_optlstring(L, 4, NULL, &body_len);
    const char *token = luaL_checklstring(L, 5, &token_len);
    if (m == 1 && body == NULL)
        return luaL_argerror(L, 4, "POST needs a body");
    if (!token_is_safe(token, token_len)) {
        lua_pushnil(L);
        answer_push_error(L, "auth", -1,
                          "the token is empty or holds control characters; nothing was sent", 0);
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "sent");
        return 2;
    }
    return transport_curl_perform(L, c, methods[m], path, body, body_len, token, token_len);
}

/* client:_start(id, method, path, body|nil, token, max_connections)
 *   -> true; the answer comes from client:_poll. */
static int client_start(lua_State *L) {
    ot_client *c = check_client(L, 1);
    static const char *const methods[] = {"GET", "POST", NULL};
    lua_Integer id = luaL_checkinteger(L, 2);
    int m = luaL_checkoption(L, 3, NULL, methods);
    const char *path = luaL_checkstring(L, 4);
    size_t body_len = 0, token_len = 0;
    const char *body = luaL_optlstring(L, 5, NULL, &body_len);
    const char *token = luaL_checklstring(L, 6, &token_len);
    lua_Integer max_connections = luaL_checkinteger(L, 7);
    if (m == 1 && body == NULL)
        return luaL_argerror(L, 5, "POST needs a body");
    if (!token_is_safe(token, token_len))
        return luaL_argerror(L, 6, "the token is empty or holds control characters");
    if (max_connections < 1 || max_connections > 1024)
        return luaL_argerror(L, 7, "1..1024 expected");
    return transport_curl_start(L, c, id, methods[m], path, body, body_len, token, token_len,
                                (long)max_connections);
}

/* client:_poll(timeout) -> list of finished requests, possibly empty. */
static int client_poll(lua_State *L) {
    ot_client *c = check_client(L, 1);
    return transport_curl_poll(L, c, (double)luaL_checknumber(L, 2));
}

/* client:_jitter(max) -> a number in [0, max), from a per-client xorshift. */
static int client_jitter(lua_State *L) {
    ot_client *c = (ot_client *)luaL_checkudata(L, 1, OT_CLIENT_MT);
    lua_Number max = luaL_checknumber(L, 2);
    unsigned long long x = c->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c->rng = x;
    lua_pushnumber(L, max * ((lua_Number)(x >> 11) / 9007199254740992.0));
    return 1;
}

static char *dup_field(lua_State *L, int t, const char *name, int required) {
    const char *s;
    char *copy;
    lua_getfield(L, t, name);
    if (lua_isnil(L, -1) && !required) {
        lua_pop(L, 1);
        return NULL;
    }
    s = luaL_checkstring(L, -1);
    copy = (char *)malloc(strlen(s) + 1);
    if (copy == NULL)
        luaL_error(L, "opentact: out of memory");
    strcpy(copy, s);
    lua_pop(L, 1);
    return copy;
}

static lua_Number number_field(lua_State *L, int t, const char *name) {
    lua_Number n;
    lua_getfield(L, t, name);
    n = luaL_checknumber(L, -1);
    lua_pop(L, 1);
    return n;
}

/* core.new(options) -> client. The options were checked by the Lua layer. */
static int core_new(lua_State *L) {
    ot_client *c;
    lua_Number max_body;
    luaL_checktype(L, 1, LUA_TTABLE);
    c = (ot_client *)ot_newuserdata(L, sizeof *c);
    memset(c, 0, sizeof *c);
    luaL_getmetatable(L, OT_CLIENT_MT);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, 1);
    ot_setuservalue(L, -2);
    c->base_url = dup_field(L, 1, "base_url", 1);
    c->user_agent = dup_field(L, 1, "user_agent", 1);
    c->ca_file = dup_field(L, 1, "ca_file", 0);
    c->proxy = dup_field(L, 1, "proxy", 0);
    c->timeout_ms = (long)(number_field(L, 1, "timeout") * 1000);
    c->connect_timeout_ms = (long)(number_field(L, 1, "connect_timeout") * 1000);
    max_body = number_field(L, 1, "max_body");
    c->max_body = max_body > 0 ? (size_t)max_body : 0;
    lua_getfield(L, 1, "verify");
    c->verify = lua_toboolean(L, -1);
    lua_pop(L, 1);
    c->rng = ((unsigned long long)time(NULL) << 20) ^ (unsigned long long)getpid() ^
             (unsigned long long)(size_t)c;
    if (c->rng == 0)
        c->rng = 0x9e3779b97f4a7c15ULL;
    if (!transport_curl_init(c)) {
        transport_curl_close(c);
        return luaL_error(L, "opentact: cannot create a curl handle");
    }
    return 1;
}

static int core_now(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* core.sleep(seconds): blocks the calling thread; used by the curl path only. */
static int core_sleep(lua_State *L) {
    lua_Number s = luaL_checknumber(L, 1);
    struct timespec ts;
    if (s <= 0 || s != s)
        return 0;
    if (s > 86400)
        s = 86400;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    return 0;
}

static const luaL_Reg client_meta[] = {
    {"__gc", client_close},
    {"__close", client_close},
    {"__tostring", client_tostring},
    {NULL, NULL},
};

static const luaL_Reg client_methods[] = {
    {"close", client_close},
    {"_state", client_state},
    {"_perform", client_perform},
    {"_start", client_start},
    {"_poll", client_poll},
    {"_jitter", client_jitter},
    {NULL, NULL},
};

static const luaL_Reg core_functions[] = {
    {"new", core_new},
    {"now", core_now},
    {"sleep", core_sleep},
    {"is_open", core_is_open},
    {"request_list", request_list},
    {"request_assign", request_assign},
    {NULL, NULL},
};

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
int luaopen_opentact_core(lua_State *L) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return luaL_error(L, "opentact: curl_global_init failed");

    luaL_newmetatable(L, OT_CLIENT_MT);
    ot_setfuncs(L, client_meta);
    lua_pushliteral(L, OT_CLIENT_MT);
    lua_setfield(L, -2, "__name");
    ot_newlib(L, client_methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__index"); /* stack: meta, methods */

    ot_newlib(L, core_functions);
    lua_insert(L, -2);
    lua_setfield(L, -2, "Client"); /* the Lua layer adds its methods here */
    lua_remove(L, -2);

    memset(ot_newuserdata(L, sizeof(json_names)), 0, sizeof(json_names));
    lua_createtable(L, JSON_NAME_SLOTS, 0);
    lua_pushcclosure(L, answer_decode, 2);
    lua_setfield(L, -2, "answer_decode");

    lua_pushliteral(L, OPENTACT_VERSION);
    lua_setfield(L, -2, "VERSION");
    return 1;
}
