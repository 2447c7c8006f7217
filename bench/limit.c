/*
 * limit.c: the fastest a client can be, the yardstick for the benchmarks.
 * One reused libcurl easy handle does N GETs of URL; each answer is decoded
 * by lua-cjson from a Lua 5.4 state, as any Lua client must do at least.
 * Prints the client's CPU time (user + sys) and wall time per call.
 *
 *   limit URL N
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <curl/curl.h>
#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>

typedef struct {
    char *data;
    size_t len, cap;
} buffer;

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    buffer *b = (buffer *)ud;
    size_t len = size * n;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 65536;
        while (cap < b->len + len)
            cap *= 2;
        b->data = realloc(b->data, cap);
        if (b->data == NULL)
            return 0;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, len);
    b->len += len;
    return len;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static double wall_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    buffer body = {0};
    struct curl_slist *headers = NULL;
    int i, n;
    double cpu0, wall0;
    CURL *e;
    lua_State *L;
    if (argc != 3)
        return fprintf(stderr, "usage: limit URL N\n"), 2;
    n = atoi(argv[2]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    e = curl_easy_init();
    headers = curl_slist_append(headers, "X-Auth-Token: bench-token");
    headers = curl_slist_append(headers, "Accept: application/json");
    curl_easy_setopt(e, CURLOPT_URL, argv[1]);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_dostring(L, "package.cpath = '/usr/lib/x86_64-linux-gnu/lua/5.4/?.so;' .. package.cpath "
                         "decode = require('cjson').decode") != LUA_OK)
        return fprintf(stderr, "%s\n", lua_tostring(L, -1)), 1;
    cpu0 = cpu_seconds();
    wall0 = wall_seconds();
    for (i = 0; i < n; i++) {
        long status = 0;
        body.len = 0;
        if (curl_easy_perform(e) != CURLE_OK)
            return fprintf(stderr, "request failed\n"), 1;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200)
            return fprintf(stderr, "status %ld\n", status), 1;
        lua_getglobal(L, "decode");
        lua_pushlstring(L, body.data, body.len);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK)
            return fprintf(stderr, "%s\n", lua_tostring(L, -1)), 1;
        lua_settop(L, 0);
    }
    printf("cpu_us=%.2f wall_us=%.2f\n", (cpu_seconds() - cpu0) / n * 1e6, (wall_seconds() - wall0) / n * 1e6);
    lua_close(L);
    curl_easy_cleanup(e);
    curl_slist_free_all(headers);
    free(body.data);
    return 0;
}
