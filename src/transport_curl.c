/*
 * transport_curl.c: the curl transport, the opentact.CurlTransport
 * userdata. It only moves bytes: start(method, path, body, token) puts a
 * request on the wire and returns its id; poll(timeout) waits at most
 * that long and returns the requests that finished (status, body,
 * Retry-After, or a transport error table); cancel(id) drops one. A body
 * of BUFFER_HUGE bytes or more comes as an opentact.Body, not a string (see
 * put_answer and buffer.c).
 *
 * One multi handle holds every transfer and the connections they reuse.
 * Its sockets are gathered in one epoll descriptor (CURLMOPT_SOCKETFUNCTION)
 * and its timer is kept as a deadline (CURLMOPT_TIMERFUNCTION), so a host's
 * event loop can wait on pollfd() and timeout() instead of calling poll.
 * Retry policy, timers and concurrency limits are the engine's (Lua), not
 * this file's.
 *
 * Callbacks never raise a Lua error; they record what went wrong in the
 * transfer and return curl's abort code.
 */
#define _GNU_SOURCE /* dup3 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "opentact.h"
#include "transport_curl.h"

/* Bodies up to this size keep their buffer for the next request. */
#define KEEP_BUFFER 262144
/* The most memory a Content-Length alone makes us reserve. */
#define PREALLOC_MAX (4 * 1024 * 1024)

/* ---- header sets ---------------------------------------------------- */

/* The header lists for one token, shared by the transfers that use them
 * and freed when the last one lets go. */
struct ot_headers {
    int refs;
    char *auth; /* "X-Auth-Token: <token>", or a login's "Authorization: Basic <credentials>" */
    struct curl_slist *get;
    struct curl_slist *post;
};

static void wipe(char *line) {
    if (line != NULL) {
        memset(line, 0, strlen(line));
        free(line);
    }
}

static void headers_release(ot_headers *h) {
    if (h == NULL || --h->refs > 0)
        return;
    wipe(h->auth);
    curl_slist_free_all(h->get);
    curl_slist_free_all(h->post);
    free(h);
}

static struct curl_slist *build_list(const char *auth, const char *extra) {
    const char *lines[4];
    struct curl_slist *list = NULL, *next;
    size_t i, n = 0;
    lines[n++] = auth;
    lines[n++] = "Accept: application/json";
    lines[n++] = "Expect:";
    if (extra != NULL)
        lines[n++] = extra;
    for (i = 0; i < n; i++) {
        next = curl_slist_append(list, lines[i]);
        if (next == NULL) {
            curl_slist_free_all(list);
            return NULL;
        }
        list = next;
    }
    return list;
}

/* The transport's header set for `prefix` + `token` (the X-Auth-Token
 * header, or a login's Authorization), made anew when it changed. */
static ot_headers *headers_for(ot_curl *t, const char *prefix, const char *token, size_t token_len) {
    size_t prefix_len = strlen(prefix);
    ot_headers *h = t->headers;
    if (h != NULL && strlen(h->auth) == prefix_len + token_len && memcmp(h->auth, prefix, prefix_len) == 0 &&
        memcmp(h->auth + prefix_len, token, token_len) == 0)
        return h;
    h = (ot_headers *)calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->refs = 1;
    h->auth = (char *)malloc(prefix_len + token_len + 1);
    if (h->auth != NULL) {
        memcpy(h->auth, prefix, prefix_len);
        memcpy(h->auth + prefix_len, token, token_len);
        h->auth[prefix_len + token_len] = '\0';
        h->get = build_list(h->auth, NULL);
        h->post = build_list(h->auth, "Content-Type: application/json");
    }
    if (h->auth == NULL || h->get == NULL || h->post == NULL) {
        headers_release(h);
        return NULL;
    }
    headers_release(t->headers);
    t->headers = h;
    return h;
}

/* ---- curl callbacks ------------------------------------------------- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
    ot_transfer *x = (ot_transfer *)userdata;
    size_t n = size * nmemb, max_body = x->owner->max_body;
    if (n > max_body - x->body.len) {
        x->too_large = 1;
        return 0;
    }
    if (x->body.len + n > x->body.cap) {
        size_t want = x->body.cap ? x->body.cap * 2 : 16384;
        curl_off_t announced = -1;
        curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced);
        /* an announced length sizes the buffer at once, but only up to
         * PREALLOC_MAX: past that, memory follows the bytes that came */
        if (announced > 0 && (curl_off_t)want < announced && (size_t)announced <= max_body &&
            announced <= PREALLOC_MAX)
            want = (size_t)announced;
        if (want < x->body.len + n)
            want = x->body.len + n;
        /* and never a byte past what it holds, whatever it got */
        if (!buffer_reserve(&x->body, want) || x->body.len + n > x->body.cap)
            return 0;
    }
    memcpy(x->body.data + x->body.len, ptr, n);
    x->body.len += n;
    return n;
}

/* A POST's body goes out through this callback, and there is no seek
 * callback: when a reused connection dies after the request went out,
 * libcurl cannot rewind and resend it on its own (it would reach the
 * server twice while the caller is told one attempt). It fails instead,
 * and the engine's retry policy decides, counting the attempt. */
static size_t on_read(char *buffer, size_t size, size_t nitems, void *userdata) {
    ot_transfer *x = (ot_transfer *)userdata;
    size_t room = size * nitems, left = x->out.len - x->sent;
    if (room > left)
        room = left;
    memcpy(buffer, x->out.data + x->sent, room);
    x->sent += room;
    return room;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *userdata) {
    ot_transfer *x = (ot_transfer *)userdata;
    size_t n = size * nitems;
    static const char name[] = "retry-after:";
    if (n > 5 && strncmp(line, "HTTP/", 5) == 0) {
        x->retry_after[0] = '\0'; /* a new response (after 100 Continue) */
        x->framed = 0;
        x->date = 0;
    } else if (n > 5 && n < 64 && strncasecmp(line, "date:", 5) == 0) {
        /* the server's clock, which a plan's stale check asks about
         * (curl_getdate stops at the line's end; a bad date gives -1) */
        char value[64];
        time_t when;
        memcpy(value, line + 5, n - 5);
        value[n - 5] = '\0';
        when = curl_getdate(value, NULL);
        x->date = when > 0 ? when : 0;
    } else if ((n > 15 && strncasecmp(line, "content-length:", 15) == 0) ||
               (n > 18 && strncasecmp(line, "transfer-encoding:", 18) == 0)) {
        x->framed = 1;
    } else if (n > sizeof name - 1 && strncasecmp(line, name, sizeof name - 1) == 0) {
        const char *v = line + sizeof name - 1;
        size_t len = n - (sizeof name - 1);
        while (len > 0 && (*v == ' ' || *v == '\t'))
            v++, len--;
        while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
            len--;
        if (len >= sizeof x->retry_after)
            len = sizeof x->retry_after - 1;
        memcpy(x->retry_after, v, len);
        x->retry_after[len] = '\0';
    }
    return n;
}

/* Each socket's registration in the epoll descriptor: the events asked
 * for (FD_IN, FD_OUT), whether it is registered, and whether curl wants
 * them now. When curl stops watching a kept-alive connection, it stays
 * registered, dormant: the next request on it usually wants the same
 * events, and then costs no epoll_ctl at all. A dormant socket that
 * becomes readable (the server closed it) is taken out then. Sockets leave
 * the set when curl closes them (on_close_socket). */
#define FD_IN 1
#define FD_OUT 2
#define FD_REGISTERED 4
#define FD_WANTED 8
#define FD_OWNED 16 /* opened through on_open_socket: its close comes to on_close_socket */

static unsigned char *fd_state(ot_curl *t, curl_socket_t s) {
    if (s < 0)
        return NULL;
    if ((size_t)s >= t->fds_len) {
        size_t len = (size_t)s + 64;
        unsigned char *grown = (unsigned char *)realloc(t->fds, len);
        if (grown == NULL)
            return NULL;
        memset(grown + t->fds_len, 0, len - t->fds_len);
        t->fds = grown;
        t->fds_len = len;
    }
    return &t->fds[s];
}

static void unregister(ot_curl *t, curl_socket_t s) {
    if (s < 0 || (size_t)s >= t->fds_len)
        return;
    if (t->fds[s] & FD_REGISTERED)
        epoll_ctl(t->epfd, EPOLL_CTL_DEL, s, NULL);
    t->fds[s] = 0;
}

/* curl says which sockets to watch: they go into the epoll descriptor. */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
    ot_curl *t = (ot_curl *)userp;
    unsigned char *st = fd_state(t, s);
    int want = ((what & CURL_POLL_IN) ? FD_IN : 0) | ((what & CURL_POLL_OUT) ? FD_OUT : 0);
    struct epoll_event ev;
    int op;
    (void)easy;
    (void)socketp;
    if (what == CURL_POLL_REMOVE) {
        /* only a connection we will hear the close of may stay dormant: a
         * socket curl made itself (its resolver's socketpair) it closes
         * without the callback, and a stale entry would outlive the fd */
        if (st != NULL && (*st & FD_OWNED))
            *st &= (unsigned char)~FD_WANTED;
        else
            unregister(t, s);
        return 0;
    }
    if (st != NULL && (*st & FD_REGISTERED) && (*st & (FD_IN | FD_OUT)) == want) {
        *st |= FD_WANTED;
        return 0;
    }
    memset(&ev, 0, sizeof ev);
    ev.events = ((want & FD_IN) ? EPOLLIN : 0) | ((want & FD_OUT) ? EPOLLOUT : 0);
    ev.data.fd = s;
    op = st != NULL && (*st & FD_REGISTERED) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(t->epfd, op, s, &ev) != 0) {
        if (op == EPOLL_CTL_ADD && errno == EEXIST)
            epoll_ctl(t->epfd, EPOLL_CTL_MOD, s, &ev);
        else if (op == EPOLL_CTL_MOD && errno == ENOENT)
            epoll_ctl(t->epfd, EPOLL_CTL_ADD, s, &ev);
    }
    if (st != NULL)
        *st = (unsigned char)((*st & FD_OWNED) | FD_REGISTERED | FD_WANTED | want);
    return 0;
}

/* A socket this transport made, and which file it is: after fork, the
 * child closes its copy only if the descriptor still holds that file (the
 * child may have closed it and opened something else with its number). */
struct ot_owned {
    int fd;
    dev_t dev;
    ino_t ino;
};

/* Whether descriptor fd still holds the file (dev, ino): a forked child
 * may have closed what it inherited and opened its own at that number. */
static int same_file(int fd, dev_t dev, ino_t ino) {
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

/* Makes epfd a new epoll descriptor, remembered by identity. */
static int epoll_open(ot_curl *t) {
    struct stat st;
    t->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (t->epfd < 0 || fstat(t->epfd, &st) != 0)
        return 0;
    t->ep_dev = st.st_dev;
    t->ep_ino = st.st_ino;
    return 1;
}

static void owned_add(ot_curl *t, int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0)
        return;
    if (t->owned_len == t->owned_cap) {
        size_t cap = t->owned_cap ? 2 * t->owned_cap : 8;
        struct ot_owned *grown = (struct ot_owned *)realloc(t->owned, cap * sizeof *grown);
        if (grown == NULL)
            return; /* not closed after a fork, then: its copy stays open in the child */
        t->owned = grown;
        t->owned_cap = cap;
    }
    t->owned[t->owned_len].fd = fd;
    t->owned[t->owned_len].dev = st.st_dev;
    t->owned[t->owned_len].ino = st.st_ino;
    t->owned_len++;
}

static void owned_remove(ot_curl *t, int fd) {
    size_t i;
    for (i = 0; i < t->owned_len; i++)
        if (t->owned[i].fd == fd) {
            t->owned[i] = t->owned[--t->owned_len];
            return;
        }
}

/* curl opens a connection's socket: marked as ours, so its close is known. */
static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address) {
    ot_curl *t = (ot_curl *)clientp;
    curl_socket_t s = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    unsigned char *st;
    (void)purpose;
    if (s != CURL_SOCKET_BAD && (st = fd_state(t, s)) != NULL) {
        *st = FD_OWNED;
        owned_add(t, s);
    }
    return s;
}

/* curl closes a socket: out of the epoll set first, by hand (after fork a
 * child's copy would keep a closed socket's registration alive). */
static int on_close_socket(void *clientp, curl_socket_t s) {
    unregister((ot_curl *)clientp, s);
    owned_remove((ot_curl *)clientp, s);
    return close(s);
}

static int on_timer(CURLM *multi, long ms, void *userp) {
    ot_curl *t = (ot_curl *)userp;
    (void)multi;
    t->timer_due = ms < 0 ? -1.0 : clock_monotonic() + (double)ms / 1000.0;
    return 0;
}

/* ---- transfers ------------------------------------------------------ */

static int transfer_init(ot_transfer *x, ot_curl *t) {
    CURL *e;
    int ok = 1;
    x->owner = t;
    x->easy = e = curl_easy_init();
    if (e == NULL)
        return 0;
#define SET(opt, val) ok &= curl_easy_setopt(e, opt, val) == CURLE_OK
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TIMEOUT_MS, t->timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, t->connect_timeout_ms);
    SET(CURLOPT_SSL_VERIFYPEER, t->verify ? 1L : 0L);
    SET(CURLOPT_SSL_VERIFYHOST, t->verify ? 2L : 0L);
    if (t->ca_file != NULL)
        SET(CURLOPT_CAINFO, t->ca_file);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SET(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)t->max_body);
    if (t->proxy != NULL)
        SET(CURLOPT_PROXY, t->proxy);
    else if (strncasecmp(t->base_url, "http://", 7) == 0)
        /* the environment's proxies are for https only: over plain http the
         * token would reach a proxy nobody named here in clear text */
        SET(CURLOPT_PROXY, "");
    SET(CURLOPT_USERAGENT, t->user_agent);
    SET(CURLOPT_ACCEPT_ENCODING, "");
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, (void *)x);
    SET(CURLOPT_READFUNCTION, on_read);
    SET(CURLOPT_READDATA, (void *)x);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, (void *)x);
    SET(CURLOPT_ERRORBUFFER, x->errbuf);
    SET(CURLOPT_PRIVATE, (void *)x);
    SET(CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    SET(CURLOPT_OPENSOCKETDATA, (void *)t);
    SET(CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    SET(CURLOPT_CLOSESOCKETDATA, (void *)t);
#undef SET
    return ok;
}

/* Gives back a large answer buffer, keeps a small one for the next request. */
static void transfer_settle(ot_transfer *x) {
    if (x->body.cap > KEEP_BUFFER)
        buffer_release(&x->body);
    x->body.len = 0;
    headers_release(x->headers);
    x->headers = NULL;
    x->busy = 0;
}

/* `own`: this process made the easy handle (see check_fork). */
static void transfer_free(ot_transfer *x, int own) {
    if (own)
        curl_easy_cleanup(x->easy);
    else
        fork_keep(x->easy);
    x->easy = NULL;
    headers_release(x->headers);
    x->headers = NULL;
    buffer_release(&x->body);
    free(x->out.data);
    free(x);
}

/* Pushes the error table of a failed transfer. */
static void push_failure(lua_State *L, ot_transfer *x, CURLcode rc) {
    const char *kind = "network";
    const char *message = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
    int retryable = 1, sent = 1;
    long request_size = 0;
    char buf[160];
    curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &request_size);
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        kind = "timeout";
        sent = request_size > 0;
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        sent = 0;
        break;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
        kind = "tls";
        retryable = 0;
        sent = 0;
        break;
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_WRITE_ERROR:
        if (rc == CURLE_FILESIZE_EXCEEDED || x->too_large) {
            snprintf(buf, sizeof buf, "answer is larger than max_body (%lu bytes)",
                     (unsigned long)x->owner->max_body);
            kind = "protocol";
            message = buf;
        } else {
            message = "out of memory while receiving the answer";
        }
        retryable = 0;
        break;
    case CURLE_SEND_FAIL_REWIND:
        message = "the connection closed after the request was sent and before an answer came "
                  "(it may have been applied)";
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        kind = "invalid";
        retryable = 0;
        sent = 0;
        break;
    default:
        sent = request_size > 0;
        break;
    }
    error_push(L, kind, -1, message, retryable);
    lua_pushboolean(L, sent);
    lua_setfield(L, -2, "sent");
}

/* Results go into one flat list, five slots per finished request: id,
 * status, body, retry_after (or false), open_ended (the body ended when
 * the server closed: a cut answer cannot be told from a whole one); or
 * id, false, err, false, false. */
#define SLOTS 5

static void put_failure(lua_State *L, int base, lua_Integer id) {
    /* the error table is on top */
    lua_rawseti(L, -2, base + 3);
    lua_pushinteger(L, id);
    lua_rawseti(L, -2, base + 1);
    lua_pushboolean(L, 0);
    lua_rawseti(L, -2, base + 2);
    lua_pushboolean(L, 0);
    lua_rawseti(L, -2, base + 4);
    lua_pushboolean(L, 0);
    lua_rawseti(L, -2, base + 5);
}

static void put_answer(lua_State *L, int base, ot_transfer *x) {
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    if (x->date > 0)
        x->owner->server_date = x->date;
    lua_pushinteger(L, x->id);
    lua_rawseti(L, -2, base + 1);
    lua_pushinteger(L, (lua_Integer)status);
    lua_rawseti(L, -2, base + 2);
    if (x->body.mapped) {
        /* a large answer: its buffer moves into an opentact.Body, which
         * answer_decode reads in place and frees */
        buffer_push_body(L, &x->body);
    } else {
        lua_pushlstring(L, x->body.data ? x->body.data : "", x->body.len);
    }
    lua_rawseti(L, -2, base + 3);
    if (x->retry_after[0])
        lua_pushstring(L, x->retry_after);
    else
        lua_pushboolean(L, 0);
    lua_rawseti(L, -2, base + 4);
    lua_pushboolean(L, !x->framed);
    lua_rawseti(L, -2, base + 5);
}

/* ---- the transport's life ------------------------------------------ */

static int open_multi(ot_curl *t) {
    t->multi = curl_multi_init();
    if (t->multi == NULL)
        return 0;
    curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(t->multi, CURLMOPT_SOCKETDATA, (void *)t);
    curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(t->multi, CURLMOPT_TIMERDATA, (void *)t);
    curl_multi_setopt(t->multi, CURLMOPT_PIPELINING, CURLPIPE_NOTHING);
    t->timer_due = -1.0;
    return 1;
}

/* Frees every transfer and the multi handle; `own` says whether this
 * process made them. Busy transfers' ids go to the orphans when `orphan`. */
static void drop_transfers(ot_curl *t, int own, int orphan) {
    size_t i;
    for (i = 0; i < t->pool_len; i++) {
        ot_transfer *x = t->pool[i];
        if (x->busy) {
            if (own)
                curl_multi_remove_handle(t->multi, x->easy);
            if (orphan) {
                lua_Integer *grown = (lua_Integer *)realloc(
                    t->orphans, (t->orphans_len + 1) * sizeof *grown);
                if (grown != NULL) {
                    t->orphans = grown;
                    t->orphans[t->orphans_len++] = x->id;
                }
            }
        }
        transfer_free(x, own);
    }
    free(t->pool);
    t->pool = NULL;
    t->pool_len = 0;
    t->busy = 0;
    if (own)
        curl_multi_cleanup(t->multi);
    else
        fork_keep(t->multi);
    t->multi = NULL;
}

void transport_curl_close(ot_curl *t) {
    int own = t->pid == getpid();
    if (t->multi != NULL)
        drop_transfers(t, own, 0);
    if (t->epfd >= 0)
        close(t->epfd);
    t->epfd = -1;
    headers_release(t->headers);
    t->headers = NULL;
    free(t->orphans);
    t->orphans = NULL;
    free(t->fds);
    free(t->owned);
    t->owned = NULL;
    t->owned_len = t->owned_cap = 0;
    t->fds = NULL;
    t->fds_len = 0;
    t->orphans_len = 0;
    free(t->base_url);
    free(t->user_agent);
    free(t->ca_file);
    free(t->proxy);
    t->base_url = t->user_agent = t->ca_file = t->proxy = NULL;
}

int transport_curl_open(ot_curl *t) {
    t->pid = getpid();
    t->generation = fork_generation();
    t->pid_checked = fork_counted();
    return epoll_open(t) && open_multi(t);
}

/* After fork(): a fresh multi handle and epoll descriptor, no connections.
 * A process only ever cleans up the curl handles it made: cleaning up an
 * inherited one would write TLS close_notify on a socket the parent still
 * uses, or touch the parent's epoll set (the descriptor is shared). The
 * requests in flight at the fork are the parent's: here they finish with
 * an error (see poll). The new epoll descriptor takes the old one's number,
 * so a host loop that watched pollfd() keeps watching the right thing. */
static int check_fork(ot_curl *t) {
    int old_epfd, ours;
    /* no system call on the way of every request: the fork handler counts
     * forks in this process's memory (see fork_generation) */
    if (t->generation == fork_generation() && t->pid_checked)
        return 1;
    t->generation = fork_generation();
    t->pid_checked = fork_counted();
    if (t->pid == getpid())
        return 1;
    drop_transfers(t, 0, 1);
    headers_release(t->headers);
    t->headers = NULL;
    {
        /* the parent's sockets: this process will never use them, and its
         * copies would keep the connections open on the server as long as
         * it lives. Closing a copy sends nothing; the parent keeps its own. */
        size_t i;
        for (i = 0; i < t->owned_len; i++)
            if (same_file(t->owned[i].fd, t->owned[i].dev, t->owned[i].ino))
                close(t->owned[i].fd);
        t->owned_len = 0;
        if (t->fds != NULL)
            memset(t->fds, 0, t->fds_len);
    }
    /* the new one takes the old one's number, unless the child put a file
     * of its own there: that file is left alone */
    old_epfd = t->epfd;
    ours = same_file(old_epfd, t->ep_dev, t->ep_ino);
    if (!epoll_open(t))
        return 0;
    if (ours) {
        if (dup3(t->epfd, old_epfd, O_CLOEXEC) >= 0) {
            close(t->epfd);
            t->epfd = old_epfd;
        } else {
            close(old_epfd);
        }
    }
    t->pid = getpid();
    t->epoch++;
    return open_multi(t);
}

/* ---- requests ------------------------------------------------------- */

static ot_transfer *idle_transfer(ot_curl *t) {
    size_t i;
    ot_transfer *x, **grown;
    for (i = 0; i < t->pool_len; i++)
        if (!t->pool[i]->busy)
            return t->pool[i];
    grown = (ot_transfer **)realloc(t->pool, (t->pool_len + 1) * sizeof *grown);
    if (grown == NULL)
        return NULL;
    t->pool = grown;
    x = (ot_transfer *)calloc(1, sizeof *x);
    if (x == NULL)
        return NULL;
    if (!transfer_init(x, t)) {
        transfer_free(x, 1);
        return NULL;
    }
    t->pool[t->pool_len++] = x;
    return x;
}

/* Lets curl act on what is due: a socket's events, or its timer. */
static void act(ot_curl *t, curl_socket_t s, int mask) {
    int running;
    curl_multi_socket_action(t->multi, s, mask, &running);
}

static void act_on_timer(ot_curl *t) {
    if (t->timer_due >= 0 && clock_monotonic() >= t->timer_due) {
        t->timer_due = -1.0;
        act(t, CURL_SOCKET_TIMEOUT, 0);
    }
}

int transport_curl_start(ot_curl *t, lua_Integer id, int post, const char *path,
                         const char *body, size_t body_len, const char *token, size_t token_len,
                         int basic, long limit_ms) {
    ot_transfer *x;
    ot_headers *h;
    if (!check_fork(t))
        return 0;
    x = idle_transfer(t);
    h = x ? headers_for(t, basic ? "Authorization: Basic " : "X-Auth-Token: ", token, token_len) : NULL;
    if (h == NULL)
        return 0;
    /* CURLOPT_URL copies the string, so it may go once set */
    {
        size_t base_len = strlen(t->base_url), path_len = strlen(path);
        char small[512], *url = small;
        if (base_len + path_len >= sizeof small && (url = (char *)malloc(base_len + path_len + 1)) == NULL)
            return 0;
        memcpy(url, t->base_url, base_len);
        memcpy(url + base_len, path, path_len + 1);
        curl_easy_setopt(x->easy, CURLOPT_URL, url);
        if (url != small)
            free(url);
    }
    if (post) {
        if (body_len > x->out.cap || x->out.data == NULL) {
            char *grown = (char *)realloc(x->out.data, body_len ? body_len : 1);
            if (grown == NULL)
                return 0;
            x->out.data = grown;
            x->out.cap = body_len;
        }
        memcpy(x->out.data, body, body_len);
        x->out.len = body_len;
        x->sent = 0;
        curl_easy_setopt(x->easy, CURLOPT_POST, 1L);
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, (char *)NULL);
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        /* a PATCH is a POST by another name: same body, same headers */
        curl_easy_setopt(x->easy, CURLOPT_CUSTOMREQUEST, post == 2 ? "PATCH" : (char *)NULL);
    } else {
        curl_easy_setopt(x->easy, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(x->easy, CURLOPT_CUSTOMREQUEST, (char *)NULL);
    }
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, post ? h->post : h->get);
    /* the client's timeout, or less: what is left of the request's deadline
     * (set on every start: the handle serves the next request too) */
    curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS,
                     limit_ms > 0 && (t->timeout_ms <= 0 || limit_ms < t->timeout_ms) ? limit_ms : t->timeout_ms);
    h->refs++;
    x->headers = h;
    x->body.len = 0;
    x->too_large = 0;
    x->retry_after[0] = '\0';
    x->date = 0;
    x->framed = 0;
    x->errbuf[0] = '\0';
    if (curl_multi_add_handle(t->multi, x->easy) != CURLM_OK) {
        transfer_settle(x);
        return 0;
    }
    x->busy = 1;
    x->id = id;
    t->busy++;
    /* on the wire now, not at the next poll: the caller may be busy a while */
    t->timer_due = -1.0;
    act(t, CURL_SOCKET_TIMEOUT, 0);
    return 1;
}

/* Moves every finished transfer into the result list on top of the
 * stack, after the `n` already there; returns the new count. */
static int collect(lua_State *L, ot_curl *t, int n) {
    CURLMsg *msg;
    int left;
    while (t->orphans_len > 0) {
        error_push(L, "network", -1,
                   "the process forked while this request was in flight; "
                   "its answer went to the parent process",
                   0);
        put_failure(L, SLOTS * n++, t->orphans[--t->orphans_len]);
    }
    while ((msg = curl_multi_info_read(t->multi, &left)) != NULL) {
        ot_transfer *x = NULL;
        CURLcode rc;
        if (msg->msg != CURLMSG_DONE)
            continue;
        rc = msg->data.result; /* msg dies with remove_handle */
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(t->multi, x->easy);
        t->busy--;
        if (rc != CURLE_OK) {
            push_failure(L, x, rc);
            put_failure(L, SLOTS * n++, x->id);
        } else {
            put_answer(L, SLOTS * n++, x);
        }
        transfer_settle(x);
    }
    return n;
}

int transport_curl_poll(lua_State *L, ot_curl *t, double timeout, int max_events) {
    struct epoll_event events[OT_EVENTS_PER_WAIT];
    double deadline = clock_monotonic() + (timeout > 0 ? timeout : 0);
    int n = (int)(ot_rawlen(L, -1) / SLOTS), first = n; /* the list is on top */
    if (!check_fork(t))
        return 1;
    act_on_timer(t);
    n = collect(L, t, n);
    while (n == first) {
        double now = clock_monotonic(), wait = deadline - now;
        int k, i, ms, acted;
        if (t->timer_due >= 0 && t->timer_due - now < wait)
            wait = t->timer_due - now;
        /* round up: waking a little early only to wait again costs a wakeup */
        ms = wait <= 0 ? 0 : wait >= 86400.0 ? 86400000 : (int)(wait * 1000.0 + 0.999);
        k = epoll_wait(t->epfd, events, max_events, ms);
        if (k < 0 && errno == EINTR)
            break; /* a signal: back to Lua, where lua.c's Ctrl-C hook runs */
        acted = 0;
        for (i = 0; i < k; i++) {
            unsigned ev = events[i].events;
            int mask = ((ev & EPOLLIN) ? CURL_CSELECT_IN : 0) |
                       ((ev & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                       ((ev & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
            int fd = events[i].data.fd;
            if (fd >= 0 && (size_t)fd < t->fds_len && !(t->fds[fd] & FD_WANTED)) {
                /* a dormant connection stirred (its server closed it): curl
                 * finds that out when it next wants it; stop hearing of it */
                epoll_ctl(t->epfd, EPOLL_CTL_DEL, fd, NULL);
                t->fds[fd] &= (unsigned char)~FD_REGISTERED;
                continue;
            }
            act(t, fd, mask);
            acted++;
        }
        act_on_timer(t);
        n = collect(L, t, n);
        /* dropping dormant sockets is no work done: a full batch of them
         * takes another look, so that no wait ends with pollfd() readable
         * for connections curl does not use (after a burst, many close) */
        if (clock_monotonic() >= deadline && (k < max_events || acted > 0))
            break;
    }
    return 1;
}

int transport_curl_cancel(ot_curl *t, lua_Integer id) {
    size_t i;
    if (!check_fork(t))
        return 0;
    for (i = 0; i < t->orphans_len; i++) {
        if (t->orphans[i] == id) {
            t->orphans[i] = t->orphans[--t->orphans_len];
            return 1;
        }
    }
    for (i = 0; i < t->pool_len; i++) {
        ot_transfer *x = t->pool[i];
        if (x->busy && x->id == id) {
            curl_multi_remove_handle(t->multi, x->easy);
            t->busy--;
            transfer_settle(x);
            return 1;
        }
    }
    return 0;
}

/* Seconds until poll must run (0: now), or < 0 when nothing is due. */
double transport_curl_timeout(ot_curl *t) {
    double left;
    if (!check_fork(t) || t->orphans_len > 0)
        return 0;
    if (t->timer_due < 0)
        return -1;
    left = t->timer_due - clock_monotonic();
    return left > 0 ? left : 0;
}

lua_Integer transport_curl_epoch(ot_curl *t) {
    check_fork(t);
    return t->epoch;
}

int transport_curl_pollfd(ot_curl *t) {
    check_fork(t);
    return t->epfd;
}

size_t transport_curl_pending(ot_curl *t) {
    return t->busy + t->orphans_len;
}

/* ---- the Lua face: opentact.CurlTransport --------------------------- */

/* The userdata follows liolib.c: created closed, then the curl handles are
 * acquired; one idempotent close serves close(), __gc and __close. The
 * Client itself is a Lua object (opentact.lua) that owns one transport. */

static ot_curl *ot_transport_check(lua_State *L) {
    ot_curl *t = (ot_curl *)luaL_checkudata(L, 1, OT_CURL_MT);
    if (t->multi == NULL)
        luaL_error(L, "attempt to use a closed opentact transport");
    return t;
}

static int ot_transport_close(lua_State *L) {
    transport_curl_close((ot_curl *)luaL_checkudata(L, 1, OT_CURL_MT));
    return 0;
}

static int ot_transport_tostring(lua_State *L) {
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

/* transport:start(id, method, path, body|nil, token[, basic[, limit]]) ->
 * true | nil, err. The caller names the request: it knows the id before
 * anything starts. `limit`: seconds the attempt may take at most, when
 * less than the client's timeout (what is left of a deadline). */
static int ot_transport_start(lua_State *L) {
    ot_curl *t = ot_transport_check(L);
    static const char *const methods[] = {"GET", "POST", "PATCH", NULL};
    lua_Integer id = luaL_checkinteger(L, 2);
    int post = luaL_checkoption(L, 3, NULL, methods);
    const char *path = luaL_checkstring(L, 4);
    size_t body_len = 0, token_len = 0;
    const char *body = luaL_optlstring(L, 5, NULL, &body_len);
    const char *token = luaL_checklstring(L, 6, &token_len);
    int basic = lua_toboolean(L, 7); /* token is "email:password" in base64: a login */
    lua_Number limit = luaL_optnumber(L, 8, 0);
    long limit_ms = 0;
    if (post && body == NULL)
        return luaL_argerror(L, 5, "POST and PATCH need a body");
    if (!token_is_safe(token, token_len)) {
        lua_pushnil(L);
        error_push(L, "auth", -1,
                   "the token is empty or holds control characters; nothing was sent", 0);
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "sent");
        return 2;
    }
    if (limit > 0)
        /* whole milliseconds, at least one (0 would be no limit) */
        limit_ms = limit >= 2147483.0 ? 2147483000L : (long)(limit * 1000.0) + 1;
    if (!transport_curl_start(t, id, post, path, body, body_len, token, token_len, basic, limit_ms)) {
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
static int ot_transport_poll(lua_State *L) {
    ot_curl *t = ot_transport_check(L);
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
static int ot_transport_cancel(lua_State *L) {
    ot_curl *t = ot_transport_check(L);
    lua_pushboolean(L, transport_curl_cancel(t, luaL_checkinteger(L, 2)));
    return 1;
}

static int ot_transport_pending(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)transport_curl_pending(ot_transport_check(L)));
    return 1;
}

/* transport:timeout() -> seconds until poll must run, or nil */
static int ot_transport_timeout(lua_State *L) {
    double left = transport_curl_timeout(ot_transport_check(L));
    if (left < 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, (lua_Number)left);
    return 1;
}

/* transport:epoch() -> how many forks this transport has seen */
static int ot_transport_epoch(lua_State *L) {
    lua_pushinteger(L, transport_curl_epoch(ot_transport_check(L)));
    return 1;
}

/* t:server_date() -> the Date header of the last answer that had one
 * (seconds since the epoch), or nil when none had. */
static int ot_transport_server_date(lua_State *L) {
    ot_curl *t = ot_transport_check(L);
    if (t->server_date <= 0)
        return 0;
    lua_pushnumber(L, (lua_Number)t->server_date);
    return 1;
}

static int ot_transport_pollfd(lua_State *L) {
    lua_pushinteger(L, transport_curl_pollfd(ot_transport_check(L)));
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
int transport_curl_new(lua_State *L) {
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

static const luaL_Reg ot_transport_meta[] = {
    {"__gc", ot_transport_close},
    {"__close", ot_transport_close},
    {"__tostring", ot_transport_tostring},
    {NULL, NULL},
};

static const luaL_Reg ot_transport_methods[] = {
    {"start", ot_transport_start},
    {"poll", ot_transport_poll},
    {"cancel", ot_transport_cancel},
    {"pending", ot_transport_pending},
    {"timeout", ot_transport_timeout},
    {"pollfd", ot_transport_pollfd},
    {"epoch", ot_transport_epoch},
    {"server_date", ot_transport_server_date},
    {"close", ot_transport_close},
    {NULL, NULL},
};

/* curl_global_init is not thread-safe before libcurl 7.84, and hosts such
 * as FreeSWITCH load Lua states on many threads: it runs once per process. */
static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void) {
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void transport_curl_register(lua_State *L) {
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        luaL_error(L, "opentact: curl_global_init failed");
    luaL_newmetatable(L, OT_CURL_MT);
    ot_setfuncs(L, ot_transport_meta);
    lua_pushliteral(L, OT_CURL_MT);
    lua_setfield(L, -2, "__name");
    ot_newlib(L, ot_transport_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}
