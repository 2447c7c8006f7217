/*
 * fork.c: what the module knows of fork(): how many forks this process
 * descends from, counted by a pthread_atfork child handler, so that a
 * client notices a fork without a getpid() per request; and the handles a
 * child inherited and must keep without cleaning them up.
 */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "opentact.h"

static volatile unsigned long generation;
static int counted;

static void on_fork_child(void) {
    generation++;
}

unsigned long fork_generation(void) {
    return generation;
}

int fork_counted(void) {
    return counted;
}

/* A handler cannot be unregistered, so the module first makes itself
 * impossible to unload (RTLD_NODELETE): Lua closing a state never leaves
 * the handler pointing into unmapped code. Without that, forks are not
 * counted and getpid() is asked instead. */
static pthread_once_t count_once = PTHREAD_ONCE_INIT;

static void count_forks(void) {
    Dl_info self;
    if (dladdr((void *)on_fork_child, &self) != 0 && self.dli_fname != NULL &&
        dlopen(self.dli_fname, RTLD_NOW | RTLD_NODELETE) != NULL)
        counted = pthread_atfork(NULL, NULL, on_fork_child) == 0;
}

/* Starts counting forks; only the first call in a process does anything. */
void fork_count(void) {
    pthread_once(&count_once, count_forks);
}

/* core.pid(): this process's id, for state a process keeps apart from
 * the processes it forked from (auth's logins in flight). Asked of the
 * system only after a fork when forks are counted: nothing per request. */
int fork_pid(lua_State *L) {
    static pid_t pid;
    static unsigned long seen;
    unsigned long g = generation;
    pid_t p = __atomic_load_n(&pid, __ATOMIC_RELAXED);
    if (p == 0 || !counted || __atomic_load_n(&seen, __ATOMIC_RELAXED) != g) {
        p = getpid();
        __atomic_store_n(&seen, g, __ATOMIC_RELAXED);
        __atomic_store_n(&pid, p, __ATOMIC_RELAXED);
    }
    lua_pushinteger(L, (lua_Integer)p);
    return 1;
}

/* Curl handles a forked child inherited and must never clean up (see
 * check_fork in transport_curl.c). They stay listed here so they remain
 * reachable memory rather than a leak. The list is pushed onto without a lock: a mutex
 * held by another thread at fork() would stay locked for ever in the
 * child, and pthread_atfork handlers cannot be unregistered when Lua
 * unloads this module. */
typedef struct kept_handle {
    void *handle;
    struct kept_handle *next;
} kept_handle;
static kept_handle *inherited;

void fork_keep(void *handle) {
    kept_handle *k;
    if (handle == NULL || (k = (kept_handle *)malloc(sizeof *k)) == NULL)
        return;
    k->handle = handle;
    k->next = __atomic_load_n(&inherited, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(&inherited, &k->next, k, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
    }
}
