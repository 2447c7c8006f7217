/*
 * clock.c: the time the retry policy works in: the monotonic clock
 * (core.now), a blocking sleep (core.sleep) and the jitter source of its
 * backoff (core.rng).
 */
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "opentact.h"

double clock_monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* core.now(): seconds on the monotonic clock. */
int clock_now(lua_State *L) {
    lua_pushnumber(L, (lua_Number)clock_monotonic());
    return 1;
}

/* core.sleep(seconds): blocks the calling thread. */
int clock_sleep(lua_State *L) {
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
int clock_rng(lua_State *L) {
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
