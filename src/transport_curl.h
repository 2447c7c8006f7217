/*
 * transport_curl.h: the curl transport's own declarations, for
 * transport_curl.c only: the one file that sees curl.h and the transport's
 * struct. Everything else knows it as an opentact.CurlTransport (see
 * opentact.h).
 */
#ifndef OPENTACT_TRANSPORT_CURL_H
#define OPENTACT_TRANSPORT_CURL_H

#include <curl/curl.h>

#include "opentact.h"

#define OT_CURL_MT "opentact.CurlTransport"

typedef struct ot_curl ot_curl;
typedef struct ot_headers ot_headers;

/* One easy handle and what its callbacks collect. */
typedef struct ot_transfer {
    CURL *easy;
    ot_curl *owner;
    ot_buffer body;
    ot_buffer out;              /* a POST's body */
    size_t sent;                /* how much of `out` went to libcurl */
    int too_large;              /* set by the write callback */
    int framed;                 /* the answer had a Content-Length or chunks */
    int busy;                   /* added to the multi handle */
    lua_Integer id;             /* the request's id while busy */
    ot_headers *headers;        /* the header set it was started with */
    char retry_after[64];       /* the Retry-After header, if any */
    time_t date;                /* the Date header (seconds since the epoch), or 0 */
    char errbuf[CURL_ERROR_SIZE];
} ot_transfer;

struct ot_curl {
    CURLM *multi;               /* NULL once closed */
    int epfd;                   /* gathers curl's sockets; -1 once closed */
    dev_t ep_dev;               /* its identity, checked after a fork (see check_fork) */
    ino_t ep_ino;
    double timer_due;           /* curl's timer as a monotonic deadline; < 0: none */
    ot_transfer **pool;         /* idle or busy transfers of `multi` */
    size_t pool_len;
    size_t busy;
    lua_Integer *orphans;       /* ids in flight when the process forked */
    size_t orphans_len;
    ot_headers *headers;        /* the header set of the last token */
    unsigned char *fds;         /* per socket: its epoll registration (see on_socket) */
    size_t fds_len;
    struct ot_owned *owned;     /* the sockets on_open_socket made, with their identity */
    size_t owned_len, owned_cap;
    pid_t pid;                  /* process that owns the handles */
    unsigned long generation;   /* fork_generation() when pid was checked */
    int pid_checked;            /* forks are counted: a same generation needs no getpid */
    lua_Integer epoch;          /* forks seen: requests queued before one are the parent's */
    char *base_url;
    char *user_agent;
    char *ca_file;
    char *proxy;
    long timeout_ms;
    long connect_timeout_ms;
    time_t server_date;         /* the Date header of the last answer that had one, or 0 */
    int verify;
    size_t max_body;
};

/* Makes the multi handle and epoll descriptor; 0 on failure. */
OT_HIDDEN int transport_curl_open(ot_curl *t);
/* Frees everything; idempotent. */
OT_HIDDEN void transport_curl_close(ot_curl *t);
/* Puts request `id` on the wire (`post`: 0 a GET, 1 a POST, 2 a PATCH, the
 * last two with `body`), within `limit_ms` milliseconds when that is more
 * than 0 and less than the client's timeout; returns 1, or 0 when out of
 * memory. */
OT_HIDDEN int transport_curl_start(ot_curl *t, lua_Integer id, int post,
                                   const char *path, const char *body, size_t body_len,
                                   const char *token, size_t token_len, int basic, long limit_ms);
/* Waits at most `timeout` seconds until a request finished, acting on at
 * most `max_events` (1..OT_EVENTS_PER_WAIT) socket events per wait, and
 * appends the finished ones to the list on top of the stack, five slots
 * each: id, status, body, retry_after (or false), open_ended; or id,
 * false, err, false, false. */
#define OT_EVENTS_PER_WAIT 64
OT_HIDDEN int transport_curl_poll(lua_State *L, ot_curl *t, double timeout, int max_events);
/* Drops a request in flight; 1 when there was one with this id. */
OT_HIDDEN int transport_curl_cancel(ot_curl *t, lua_Integer id);
OT_HIDDEN double transport_curl_timeout(ot_curl *t);
OT_HIDDEN int transport_curl_pollfd(ot_curl *t);
OT_HIDDEN lua_Integer transport_curl_epoch(ot_curl *t);
OT_HIDDEN size_t transport_curl_pending(ot_curl *t);

#endif
