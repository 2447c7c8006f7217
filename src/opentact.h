/*
 * opentact.h: private prototypes shared by the files of opentact.core.
 *
 * Nothing here is exported: the module's one public symbol is
 * luaopen_opentact_core (core.c). Nothing here needs libcurl: only
 * transport_curl.c sees curl.h and the transport's struct, through its
 * private transport_curl.h.
 */
#ifndef OPENTACT_H
#define OPENTACT_H

#include <stddef.h>
#include <sys/types.h>

#include "compat.h"

/* The one version string; the rockspec and a spec check they agree. */
#define OPENTACT_VERSION "0.1.0"

#define OT_UUID_LEN 36
/* A large answer's bytes in their own mapping (an ot_buffer), handed from
 * the transport to answer_decode without a copy into a Lua string */
#define OT_BODY_MT "opentact.Body"

#if defined(__GNUC__)
#define OT_HIDDEN __attribute__((visibility("hidden")))
#else
#define OT_HIDDEN
#endif

/* ---- errors (error.c) --------------------------------------------- */

/* Pushes a plain error table {kind, status, message, retryable}; the Lua
 * layer adds method, path, attempts and the metatable. status < 0: none. */
OT_HIDDEN void error_push(lua_State *L, const char *kind, long status,
                          const char *message, int retryable);

/* ---- request building (request.c) --------------------------------- */

/* Lower-cases `s` into `out` (36 bytes, no NUL) when it has the uuid
 * shape; returns 1 when it does, else 0. */
OT_HIDDEN int request_normalize_uuid(const char *s, size_t len, char *out);

OT_HIDDEN int request_list(lua_State *L);   /* core.request_list */
OT_HIDDEN int request_number(lua_State *L); /* core.number */
OT_HIDDEN int request_lease(lua_State *L);  /* core.request_lease */
/* A phone number as people type it; 1 and *out, or 0 and *why. */
OT_HIDDEN int request_parse_number(const char *s, size_t len, double *out, const char **why);
OT_HIDDEN int request_assign(lua_State *L); /* core.request_assign */
/* Pushes nil and an `invalid` error: "<what> '<s>' <why>", s quoted safely. */
OT_HIDDEN int request_push_invalid(lua_State *L, const char *what, const char *s,
                                   size_t len, const char *why);
OT_HIDDEN int request_search(lua_State *L); /* core.request_search (search.c) */
/* Checks the table on top is a list of strings without holes (misuse
 * raises as argument `arg`, naming `field`); returns its length. */
OT_HIDDEN size_t request_check_strings(lua_State *L, int arg, const char *field);

/* ---- logging in (auth.c) ------------------------------------------- */

OT_HIDDEN int auth_time(lua_State *L);       /* core.time */
OT_HIDDEN int auth_base64(lua_State *L);     /* core.base64 */
OT_HIDDEN int auth_jwt_claims(lua_State *L); /* core.jwt_claims */
OT_HIDDEN int auth_write_private(lua_State *L); /* core.write_private */
/* Writes all of `len` bytes of `s` to `fd`; 0, or -1 with errno set. */
OT_HIDDEN int auth_write_all(int fd, const char *s, size_t len);

/* ---- the command line's process (process.c) ------------------------ */

OT_HIDDEN int process_isatty(lua_State *L); /* core.isatty */
OT_HIDDEN int process_getcwd(lua_State *L); /* core.getcwd */

/* ---- hashing (sha256.c) -------------------------------------------- */

OT_HIDDEN int sha256_hex(lua_State *L);    /* core.sha256 */
OT_HIDDEN int sha256_fields(lua_State *L); /* core.sha256_fields */

/* ---- answer decoding (answer.c) ----------------------------------- */

/* Pushes core.answer_decode: answer_decode with its upvalues, the
 * member-name cache and the table that anchors its names. */
OT_HIDDEN void answer_push_decode(lua_State *L);
/* Pushes the list of the lease uuids of {"success":true,"payload":[lease,
 * ...]} and returns 1; pushes nothing and returns 0 for any other text,
 * valid or not (json_decode then says what it is). (answer_skim.c) */
OT_HIDDEN int answer_skim_uuids(lua_State *L, const char *s, size_t len);

/* ---- JSON (json.c) ------------------------------------------------ */

/* Member names kept from one decode to the next: slot i holds a name whose
 * Lua string sits at [i + 1] of an anchoring table, which keeps it alive. */
#define JSON_NAME_SLOTS 512
#define JSON_NAME_MAX 40
typedef struct json_names {
    struct {
        const char *bytes;
        size_t len;
    } slot[JSON_NAME_SLOTS];
} json_names;

/* Decodes s[0..len) and pushes the value (nil for null), returning 1; or
 * pushes a message saying what is wrong and where, returning 0. `holes`
 * (may be NULL; two ints) counts nulls left out of the top-level object's
 * "payload" array, and of the arrays one level inside "payload" (a search
 * page's "data"); for a top-level array, of it and of its arrays.
 * `names` (may be NULL) is a name cache anchored by the table at `anchor`,
 * an absolute stack index or an upvalue's pseudo-index. On failure,
 * *ran_out (ran_out may be NULL) says whether the text ended inside the
 * value: the fact an answer cut short shows, given as data so that no
 * caller reads it from the message. */
OT_HIDDEN int json_decode(lua_State *L, const char *s, size_t len, int *holes, json_names *names,
                          int anchor, int *ran_out);
/* Decoded empty objects ({}, or members that were all null) get this
 * metatable, so that they can be told from empty arrays, which get none;
 * core.Object (opentact.Object). json_object_mt pushes it (made on first
 * use, kept in the registry under this name). */
#define JSON_OBJECT_MT "opentact.Object"
OT_HIDDEN void json_object_mt(lua_State *L);
/* core.json_decode(text) -> value, or nil and what is wrong and where:
 * any JSON document, as strictly as answers are read (a saved plan, a
 * journal line). JSON null is nil; empty objects get core.Object. */
OT_HIDDEN int json_decode_document(lua_State *L);

/* ---- answer buffers and opentact.Body (buffer.c) ------------------- */

typedef struct ot_buffer {
    char *data;
    size_t len;
    size_t cap;
    int mapped; /* data is an mmap of cap bytes (a large answer), not malloc's */
    int reading; /* an opentact.Body answer_decode is reading: no one else may */
} ot_buffer;

/* Answers of this size and more get a mapping of their own (see buffer.c). */
#define BUFFER_HUGE (2u * 1024 * 1024)
/* Grows `b` to hold at least `want` bytes; 0 when memory ran out (b is
 * unchanged then). */
OT_HIDDEN int buffer_reserve(ot_buffer *b, size_t want);
/* Frees an answer buffer, malloc'd or mapped; it is then empty. */
OT_HIDDEN void buffer_release(ot_buffer *b);
/* Moves b's bytes into a new opentact.Body on top of the stack; b is then empty. */
OT_HIDDEN void buffer_push_body(lua_State *L, ot_buffer *b);
/* Makes the opentact.Body metatable. */
OT_HIDDEN void buffer_register(lua_State *L);

/* ---- fork (fork.c) ------------------------------------------------- */

/* Forks this process descends from, counted by a pthread_atfork child
 * handler; fork_counted() says whether the handler is in place, else every
 * check asks getpid(). fork_count() puts it in place, once per process. */
OT_HIDDEN unsigned long fork_generation(void);
OT_HIDDEN int fork_counted(void);
OT_HIDDEN void fork_count(void);
/* core.pid(): this process's id, without a system call per call. */
OT_HIDDEN int fork_pid(lua_State *L);
/* Keeps a handle a forked child inherited reachable, never cleaned up. */
OT_HIDDEN void fork_keep(void *handle);

/* ---- the curl transport (transport_curl.c) ------------------------ */

/* core.curl(options) -> an opentact.CurlTransport */
OT_HIDDEN int transport_curl_new(lua_State *L);
/* Readies libcurl (once per process; raises if it cannot) and makes the
 * opentact.CurlTransport metatable. */
OT_HIDDEN void transport_curl_register(lua_State *L);

/* ---- an apply's journal (journal.c) -------------------------------- */

/* Makes the opentact.Journal metatable and sets core.journal_open in the
 * module table on top of the stack. */
OT_HIDDEN void journal_register(lua_State *L);

/* ---- time (clock.c) ------------------------------------------------- */

/* Seconds on the monotonic clock. */
OT_HIDDEN double clock_monotonic(void);
OT_HIDDEN int clock_now(lua_State *L);     /* core.now */
OT_HIDDEN int clock_sleep(lua_State *L);   /* core.sleep */
OT_HIDDEN int clock_rng(lua_State *L);     /* core.rng */

#endif
