/*
 * buffer.c: answer buffers, and the opentact.Body userdata that carries a
 * large one from the transport to answer_decode without a copy into a Lua
 * string. No I/O: memory only (malloc, or a mapping of its own for a
 * large answer).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "opentact.h"

/* Answers of BUFFER_HUGE bytes and more (a connection's list of thousands of
 * leases) are kept in their own mapping, in 2 MB pages where the kernel
 * gives them: filling it then costs a page fault per 2 MB instead of one
 * per 4 KB, which on a virtual machine is most of the time such an answer
 * takes to arrive. */
#if defined(MADV_HUGEPAGE)
#define HUGE_MAPS 1
#else
#define HUGE_MAPS 0
#endif

#if HUGE_MAPS
/* A mapping of `size` bytes (a multiple of BUFFER_HUGE) that starts on a
 * BUFFER_HUGE boundary, so that all of it can be in 2 MB pages (the kernel
 * puts a 2 MB page only where a whole aligned 2 MB fits); NULL if none. */
static char *huge_map(size_t size) {
    size_t span = size + BUFFER_HUGE, head;
    char *raw = (char *)mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == (char *)MAP_FAILED)
        return NULL;
    head = (BUFFER_HUGE - (size_t)((uintptr_t)raw % BUFFER_HUGE)) % BUFFER_HUGE;
    if (head > 0)
        munmap(raw, head);
    if (span - head - size > 0)
        munmap(raw + head + size, span - head - size);
    (void)madvise(raw + head, size, MADV_HUGEPAGE); /* a hint: without it, 4 KB pages */
    return raw + head;
}
#endif

/* The last large answer's mapping, kept for the next one (a process that
 * reads a large list reads it again): its pages are in memory already, so
 * the next answer costs no page faults at all. One per process, swapped in
 * and out atomically (clients in several threads, each with its own Lua
 * state), without a lock that a fork could leave held. While spare, a
 * mapping's first bytes hold its size. A child after fork has its own copy
 * of the parent's spare, at the same address. */
#define SPARE_MAX (32u * 1024 * 1024)
static char *spare;

static void spare_put(char *p, size_t cap) {
    char *old;
    if (cap > SPARE_MAX) {
        munmap(p, cap);
        return;
    }
    memcpy(p, &cap, sizeof cap);
    old = __atomic_exchange_n(&spare, p, __ATOMIC_ACQ_REL);
    if (old != NULL) {
        size_t old_cap;
        memcpy(&old_cap, old, sizeof old_cap);
        munmap(old, old_cap);
    }
}

/* The spare mapping if it holds `size` bytes, else NULL (one too small is
 * let go: the larger one made now becomes the spare). */
static char *spare_take(size_t size, size_t *cap) {
    char *p = __atomic_exchange_n(&spare, NULL, __ATOMIC_ACQ_REL);
    if (p == NULL)
        return NULL;
    memcpy(cap, p, sizeof *cap);
    if (*cap >= size)
        return p;
    munmap(p, *cap);
    return NULL;
}

/* Grows `b` to hold at least `want` bytes; 0 when memory ran out (b is
 * unchanged then). */
int buffer_reserve(ot_buffer *b, size_t want) {
    char *grown;
#if HUGE_MAPS
    if (want >= BUFFER_HUGE) {
        /* another mapping and a copy, not mremap, which may move it off a
         * 2 MB boundary; the copy is of pages already touched */
        size_t size = (want + BUFFER_HUGE - 1) / BUFFER_HUGE * BUFFER_HUGE, spare_cap;
        char *p = spare_take(size, &spare_cap);
        if (p != NULL)
            size = spare_cap;
        else if ((p = huge_map(size)) == NULL)
            return 0;
        if (b->len > 0)
            memcpy(p, b->data, b->len);
        buffer_release(b);
        b->data = p;
        b->cap = size;
        b->mapped = 1;
        return 1;
    }
#endif
    grown = (char *)realloc(b->data, want);
    if (grown == NULL)
        return 0;
    b->data = grown;
    b->cap = want;
    return 1;
}

void buffer_release(ot_buffer *b) {
#if HUGE_MAPS
    if (b->mapped)
        spare_put(b->data, b->cap);
    else
#endif
        free(b->data);
    b->data = NULL;
    b->cap = 0;
    b->mapped = 0;
}

/* ---- large answers (opentact.Body) ---------------------------------- */

static int body_gc(lua_State *L) {
    buffer_release((ot_buffer *)luaL_checkudata(L, 1, OT_BODY_MT));
    return 0;
}

/* Its length in bytes, as # gives a string's; read or not. */
static int body_len(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)((ot_buffer *)luaL_checkudata(L, 1, OT_BODY_MT))->len);
    return 1;
}

static int body_tostring(lua_State *L) {
    ot_buffer *b = (ot_buffer *)luaL_checkudata(L, 1, OT_BODY_MT);
    lua_pushfstring(L, "opentact.Body (%d bytes%s)", (int)(b->len > 0x7fffffff ? 0x7fffffff : b->len),
                    b->data ? "" : ", read");
    return 1;
}

static const luaL_Reg body_meta[] = {
    {"__gc", body_gc},
    {"__len", body_len},
    {"__tostring", body_tostring},
    {NULL, NULL},
};

/* Moves `b`'s bytes into a new opentact.Body on top of the stack; `b` is
 * then empty. */
void buffer_push_body(lua_State *L, ot_buffer *b) {
    ot_buffer *body = (ot_buffer *)ot_newuserdata(L, sizeof *body);
    *body = *b;
    memset(b, 0, sizeof *b);
    luaL_getmetatable(L, OT_BODY_MT);
    lua_setmetatable(L, -2);
}

void buffer_register(lua_State *L) {
    luaL_newmetatable(L, OT_BODY_MT);
    ot_setfuncs(L, body_meta);
    lua_pushliteral(L, OT_BODY_MT);
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
}
