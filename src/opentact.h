/*
 * opentact.h: private prototypes shared by the files of opentact.core.
 *
 * Nothing here is exported: the module's one public symbol is
 * luaopen_opentact_core (core.c).
 */
#ifndef OPENTACT_H
#define OPENTACT_H

#include <stddef.h>
#include <sys/types.h>

#include <curl/curl.h>

#include "compat.h"

/* The one version string; the rockspec and a spec check they agree. */
#define OPENTACT_VERSION "0.1.0"

#define OT_UUID_LEN 36
#define OT_CLIENT_MT "opentact.Client"

#if defined(__GNUC__)
#define OT_HIDDEN __attribute__((visibility("hidden")))
#else
#define OT_HIDDEN
#endif

/* ---- errors (answer.c) -------------------------------------------- */

/* Pushes a plain error table {kind, status, message, retryable}; the Lua
 * layer adds method, path, attempts and the metatable. status < 0: none. */
OT_HIDDEN void answer_push_error(lua_State *L, const char *kind, long status,
                                 const char *message, int retryable);

/* ---- request building (request.c) --------------------------------- */

/* Lower-cases `s` into `out` (36 bytes, no NUL) when it has the uuid
 * shape; returns 1 when it does, else 0. */
OT_HIDDEN int request_normalize_uuid(const char *s, size_t len, char *out);

OT_HIDDEN int request_list(lua_State *L);   /* core.request_list */
OT_HIDDEN int request_assign(lua_State *L); /* core.request_assign */

/* ---- answer decoding (answer.c) ----------------------------------- */

OT_HIDDEN int answer_decode(lua_State *L);  /* core.answer_decode */

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
 * (may be NULL) counts nulls left out of the top-level value's arrays.
 * `names` (may be NULL) is a name cache anchored by the table at `anchor`,
 * an absolute stack index or an upvalue's pseudo-index. */
OT_HIDDEN int json_decode(lua_State *L, const char *s, size_t len, int *holes, json_names *names,
                          int anchor);

/* ---- the curl transport (transport_curl.c) ------------------------ */

typedef struct ot_buffer {
    char *data;
    size_t len;
    size_t cap;
} ot_buffer;

struct ot_client;

/* One easy handle and what its callbacks collect. */
typedef struct ot_transfer {
    CURL *easy;
    struct ot_client *client;
    ot_buffer body;
    int too_large;              /* set by the write callback */
    int busy;                   /* added to the multi handle */
    lua_Integer id;             /* the caller's id while busy */
    struct curl_slist *headers; /* concurrent transfers own theirs */
    char retry_after[64];       /* the Retry-After header, if any */
    char errbuf[CURL_ERROR_SIZE];
} ot_transfer;

typedef struct ot_client {
    ot_transfer single;         /* list/assign; single.easy is NULL once closed */
    CURLM *multi;               /* concurrent requests, made on first use */
    ot_transfer **pool;         /* idle or busy transfers of `multi` */
    size_t pool_len;
    pid_t pid;                  /* process that owns the connections */
    struct curl_slist *headers;      /* GET headers, cached for `token` */
    struct curl_slist *post_headers; /* the same plus Content-Type */
    char *token;                /* "X-Auth-Token: <token>" the lists were built for */
    char *base_url;
    char *user_agent;
    char *ca_file;
    char *proxy;
    long timeout_ms;
    long connect_timeout_ms;
    int verify;
    size_t max_body;
    unsigned long long rng;     /* per-client jitter source */
} ot_client;

OT_HIDDEN int transport_curl_init(ot_client *c);
OT_HIDDEN void transport_curl_close(ot_client *c);
/* Performs one request; pushes status, body, retry_after (or nil) on
 * success, or nil, err for a transport failure. Returns the count. */
OT_HIDDEN int transport_curl_perform(lua_State *L, ot_client *c,
                                     const char *method, const char *path,
                                     const char *body, size_t body_len,
                                     const char *token, size_t token_len);
/* Starts one concurrent request under `id`; pushes true, or nil, err. */
OT_HIDDEN int transport_curl_start(lua_State *L, ot_client *c, lua_Integer id,
                                   const char *method, const char *path,
                                   const char *body, size_t body_len,
                                   const char *token, size_t token_len,
                                   long max_connections);
/* Waits up to `timeout` seconds for concurrent requests to finish; pushes
 * a list of {id, status, body, retry_after} or {id, err}. */
OT_HIDDEN int transport_curl_poll(lua_State *L, ot_client *c, double timeout);

#endif
