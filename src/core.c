/*
 * core.c: the Lua binding of opentact.core: the module table, and the
 * opentact.CurlTransport userdata that wraps transport_curl.c.
 *
 * The userdata follows liolib.c: created closed, then the curl handles are
 * acquired; one idempotent close serves close(), __gc and __close. The
 * Client itself is a Lua object (opentact.lua) that owns one transport.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "opentact.h"

/* ---- the curl transport's Lua face ---------------------------------- */

static ot_curl *check_curl(lua_State *L) {
    ot_curl *t = (ot_curl *)luaL_checkudata(L, 1, OT_CURL_MT);
    if (t->multi == NULL)
        luaL_error(L, "attempt to use a closed opentact transport");
    return t;
}

static int curl_close(lua_State *L) {
    transport_curl_close((ot_curl *)luaL_checkudata(L, 1, OT_CURL_MT));
    return 0;
}

static int curl_tostring(lua_State *L) {
    ot_curl *t = (ot_curl *)luaL_checkudata(L, 1, OT_CURL_MT);
    if (t->multi == NULL)
        lua_pushliteral(L, "opentact.CurlTransport (closed)");
    else
        lua_pushfstring(L, "opentact.CurlTransport (%p)", (void *)t);
    return 1;
}

/* A token goes into a header line: control characters would split it. */
static int token_is_safe(const char *s, size_t len) {
    size_t i;
    if (len == 0)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            return 0;
    }
    return 1;
}

/* transport:start(id, method, path, body|nil, token) -> true | nil, err.
 * The caller names the request: it knows the id before anything starts. */
static int curl_start(lua_State *L) {
    ot_curl *t = check_curl(L);
    static const char *const methods[] = {"GET", "POST", NULL};
    lua_Integer id = luaL_checkinteger(L, 2);
    int post = luaL_checkoption(L, 3, NULL, methods);
    const char *path = luaL_checkstring(L, 4);
    size_t body_len = 0, token_len = 0;
    const char *body = luaL_optlstring(L, 5, NULL, &body_len);
    const char *token = luaL_checklstring(L, 6, &token_len);
    int basic = lua_toboolean(L, 7); /* token is "email:password" in base64: a login */
    if (post && body == NULL)
        return luaL_argerror(L, 5, "POST needs a body");
    if (!token_is_safe(token, token_len)) {
        lua_pushnil(L);
        error_push(L, "auth", -1,
                   "the token is empty or holds control characters; nothing was sent", 0);
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "sent");
        return 2;
    }
    if (!transport_curl_start(t, id, post, path, body, body_len, token, token_len, basic)) {
        lua_pushnil(L);
        error_push(L, "network", -1, "out of memory: cannot start the request", 1);
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "sent");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* transport:poll(timeout[, max_events[, into]]) -> the list of finished
 * requests (`into`, appended to, or a new one), possibly empty.
 * `max_events` bounds the work of one call. Appending to the caller's
 * list means no answer exists only in a value an error could drop. */
static int curl_poll(lua_State *L) {
    ot_curl *t = check_curl(L);
    lua_Number timeout = luaL_checknumber(L, 2);
    lua_Integer max_events = luaL_optinteger(L, 3, OT_EVENTS_PER_WAIT);
    if (max_events < 1 || max_events > OT_EVENTS_PER_WAIT)
        max_events = OT_EVENTS_PER_WAIT;
    if (lua_istable(L, 4))
        lua_settop(L, 4);
    else
        lua_createtable(L, 5, 0);
    return transport_curl_poll(L, t, timeout == timeout ? (double)timeout : 0, (int)max_events);
}

/* transport:cancel(id) -> true when a request with that id was in flight */
static int curl_cancel(lua_State *L) {
    ot_curl *t = check_curl(L);
    lua_pushboolean(L, transport_curl_cancel(t, luaL_checkinteger(L, 2)));
    return 1;
}

static int curl_pending(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)transport_curl_pending(check_curl(L)));
    return 1;
}

/* transport:timeout() -> seconds until poll must run, or nil */
static int curl_timeout(lua_State *L) {
    double left = transport_curl_timeout(check_curl(L));
    if (left < 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, (lua_Number)left);
    return 1;
}

/* transport:epoch() -> how many forks this transport has seen */
static int curl_epoch(lua_State *L) {
    lua_pushinteger(L, transport_curl_epoch(check_curl(L)));
    return 1;
}

static int curl_pollfd(lua_State *L) {
    lua_pushinteger(L, transport_curl_pollfd(check_curl(L)));
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
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "opentact: option '%s' must be a string", name); /* the Lua layer checks first */
    s = lua_tostring(L, -1);
    copy = (char *)malloc(strlen(s) + 1);
    if (copy != NULL)
        strcpy(copy, s);
    lua_pop(L, 1);
    return copy;
}

static lua_Number number_field(lua_State *L, int t, const char *name) {
    lua_Number n;
    lua_getfield(L, t, name);
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "opentact: option '%s' must be a number", name); /* the Lua layer checks first */
    n = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return n;
}

/* Seconds to whole milliseconds for curl, at least 1 (0 means "no limit"). */
static long to_ms(lua_Number s) {
    lua_Number ms = s * 1000;
    if (!(ms >= 1))
        return 1;
    if (ms > 2147483647.0)
        return 2147483647L;
    return (long)ms;
}

/* core.curl(options) -> transport. The options were checked by the Lua layer. */
static int core_curl(lua_State *L) {
    ot_curl *t;
    lua_Number max_body;
    luaL_checktype(L, 1, LUA_TTABLE);
    t = (ot_curl *)ot_newuserdata(L, sizeof *t);
    memset(t, 0, sizeof *t);
    t->epfd = -1;
    luaL_getmetatable(L, OT_CURL_MT);
    lua_setmetatable(L, -2);
    t->base_url = dup_field(L, 1, "base_url", 1);
    t->user_agent = dup_field(L, 1, "user_agent", 1);
    t->ca_file = dup_field(L, 1, "ca_file", 0);
    t->proxy = dup_field(L, 1, "proxy", 0);
    t->timeout_ms = to_ms(number_field(L, 1, "timeout"));
    t->connect_timeout_ms = to_ms(number_field(L, 1, "connect_timeout"));
    max_body = number_field(L, 1, "max_body");
    t->max_body = max_body >= 1 && max_body < 9007199254740992.0 ? (size_t)max_body : 1;
    lua_getfield(L, 1, "verify");
    t->verify = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (t->base_url == NULL || t->user_agent == NULL || !transport_curl_open(t)) {
        transport_curl_close(t);
        return luaL_error(L, "opentact: cannot create the curl transport (out of memory or descriptors)");
    }
    return 1;
}

/* ---- module functions ----------------------------------------------- */

static int core_now(lua_State *L) {
    lua_pushnumber(L, (lua_Number)transport_now());
    return 1;
}

/* core.cputime(): CPU seconds this thread has used (for bench/step.lua,
 * which tells a step's own work from time the machine gave to others). */
static int core_cputime(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* core.sleep(seconds): blocks the calling thread. */
static int core_sleep(lua_State *L) {
    lua_Number s = luaL_checknumber(L, 1);
    struct timespec ts;
    if (!(s > 0))
        return 0;
    if (s > 86400)
        s = 86400;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    return 0;
}

/* The generator of core.rng(): a number in [0, max) from its own xorshift. */
static int rng_draw(lua_State *L) {
    unsigned long long *state = (unsigned long long *)lua_touserdata(L, lua_upvalueindex(1));
    lua_Number max = luaL_checknumber(L, 1);
    unsigned long long x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    lua_pushnumber(L, max * ((lua_Number)(x >> 11) / 9007199254740992.0));
    return 1;
}

/* core.rng() -> function(max): a jitter source of its own, so backoff never
 * touches (or depends on) the host's math.random. */
static int core_rng(lua_State *L) {
    unsigned long long *state = (unsigned long long *)ot_newuserdata(L, sizeof *state);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    *state = ((unsigned long long)ts.tv_nsec << 20) ^ (unsigned long long)time(NULL) ^
             ((unsigned long long)getpid() << 40) ^ (unsigned long long)(size_t)state;
    if (*state == 0)
        *state = 0x9e3779b97f4a7c15ULL;
    lua_pushcclosure(L, rng_draw, 1);
    return 1;
}

static const luaL_Reg curl_meta[] = {
    {"__gc", curl_close},
    {"__close", curl_close},
    {"__tostring", curl_tostring},
    {NULL, NULL},
};

static const luaL_Reg curl_methods[] = {
    {"start", curl_start},
    {"poll", curl_poll},
    {"cancel", curl_cancel},
    {"pending", curl_pending},
    {"timeout", curl_timeout},
    {"pollfd", curl_pollfd},
    {"epoch", curl_epoch},
    {"close", curl_close},
    {NULL, NULL},
};

static const luaL_Reg core_functions[] = {
    {"curl", core_curl},
    {"now", core_now},
    {"cputime", core_cputime},
    {"sleep", core_sleep},
    {"rng", core_rng},
    {"request_list", request_list},
    {"number", request_number},
    {"request_lease", request_lease},
    {"request_assign", request_assign},
    {"request_search", request_search},
    {"time", auth_time},
    {"base64", auth_base64},
    {"jwt_claims", auth_jwt_claims},
    {"write_private", auth_write_private},
    {NULL, NULL},
};

/* curl_global_init is not thread-safe before libcurl 7.84, and hosts such
 * as FreeSWITCH load Lua states on many threads: it runs once per process.
 * The same once, forks start being counted (fork.c). */
static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void) {
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    fork_count();
}

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
int luaopen_opentact_core(lua_State *L) {
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return luaL_error(L, "opentact: curl_global_init failed");

    luaL_newmetatable(L, OT_CURL_MT);
    ot_setfuncs(L, curl_meta);
    lua_pushliteral(L, OT_CURL_MT);
    lua_setfield(L, -2, "__name");
    ot_newlib(L, curl_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    buffer_register(L);

    ot_newlib(L, core_functions);

    memset(ot_newuserdata(L, sizeof(json_names)), 0, sizeof(json_names));
    lua_createtable(L, JSON_NAME_SLOTS, 0);
    lua_pushcclosure(L, answer_decode, 2);
    lua_setfield(L, -2, "answer_decode");

    json_object_mt(L);
    lua_setfield(L, -2, "Object");

    lua_pushliteral(L, OPENTACT_VERSION);
    lua_setfield(L, -2, "VERSION");
    return 1;
}
