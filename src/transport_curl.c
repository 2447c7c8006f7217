/*
 * transport_curl.c: the curl transport. Moves requests' bytes over
 * libcurl: one easy handle per client for list and assign, so the
 * connection stays alive between calls, and a multi handle with a pool of
 * easy handles for concurrent requests, whose connections are reused
 * across batches.
 *
 * It only moves bytes: status, body and Retry-After out, or a transport
 * error table. Callbacks never raise a Lua error; they record what went
 * wrong in the transfer and return curl's abort code.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "opentact.h"

static void keep_inherited(void *handle);

/* Bodies up to this size keep their buffer for the next request. */
#define KEEP_BUFFER 262144

/* ---- callbacks ---------------------------------------------------- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
    ot_transfer *t = (ot_transfer *)userdata;
    size_t n = size * nmemb, max_body = t->client->max_body;
    if (n > max_body - t->body.len) {
        t->too_large = 1;
        return 0;
    }
    if (t->body.len + n > t->body.cap) {
        size_t want = t->body.cap ? t->body.cap * 2 : 16384;
        curl_off_t announced = -1;
        char *grown;
        curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced);
        if (announced > 0 && (curl_off_t)want < announced && (size_t)announced <= max_body)
            want = (size_t)announced;
        if (want < t->body.len + n)
            want = t->body.len + n;
        grown = (char *)realloc(t->body.data, want);
        if (grown == NULL)
            return 0;
        t->body.data = grown;
        t->body.cap = want;
    }
    memcpy(t->body.data + t->body.len, ptr, n);
    t->body.len += n;
    return n;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *userdata) {
    ot_transfer *t = (ot_transfer *)userdata;
    size_t n = size * nitems;
    static const char name[] = "retry-after:";
    if (n > 5 && strncmp(line, "HTTP/", 5) == 0) {
        t->retry_after[0] = '\0'; /* a new response (after 100 Continue) */
    } else if (n > sizeof name - 1 && strncasecmp(line, name, sizeof name - 1) == 0) {
        const char *v = line + sizeof name - 1;
        size_t len = n - (sizeof name - 1);
        while (len > 0 && (*v == ' ' || *v == '\t'))
            v++, len--;
        while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
            len--;
        if (len >= sizeof t->retry_after)
            len = sizeof t->retry_after - 1;
        memcpy(t->retry_after, v, len);
        t->retry_after[len] = '\0';
    }
    return n;
}

/* ---- transfers ---------------------------------------------------- */

static int transfer_init(ot_transfer *t, ot_client *c) {
    CURL *e;
    int ok = 1;
    t->client = c;
    t->easy = e = curl_easy_init();
    if (e == NULL)
        return 0;
#define SET(opt, val) ok &= curl_easy_setopt(e, opt, val) == CURLE_OK
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TIMEOUT_MS, c->timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    SET(CURLOPT_SSL_VERIFYPEER, c->verify ? 1L : 0L);
    SET(CURLOPT_SSL_VERIFYHOST, c->verify ? 2L : 0L);
    if (c->ca_file != NULL)
        SET(CURLOPT_CAINFO, c->ca_file);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SET(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_body);
    if (c->proxy != NULL)
        SET(CURLOPT_PROXY, c->proxy);
    SET(CURLOPT_USERAGENT, c->user_agent);
    SET(CURLOPT_ACCEPT_ENCODING, "");
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, (void *)t);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, (void *)t);
    SET(CURLOPT_ERRORBUFFER, t->errbuf);
    SET(CURLOPT_PRIVATE, (void *)t);
#undef SET
    return ok;
}

/* Readies a transfer for `path`: URL, method, body, headers. */
static void transfer_prepare(lua_State *L, ot_transfer *t, const char *path, int post,
                             const char *body, size_t body_len, int copy_body,
                             struct curl_slist *headers) {
    /* CURLOPT_URL copies the string, so it may go once set */
    lua_pushfstring(L, "%s%s", t->client->base_url, path);
    curl_easy_setopt(t->easy, CURLOPT_URL, lua_tostring(L, -1));
    lua_pop(L, 1);
    if (post) {
        curl_easy_setopt(t->easy, CURLOPT_POST, 1L);
        curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(t->easy, copy_body ? CURLOPT_COPYPOSTFIELDS : CURLOPT_POSTFIELDS, body);
    } else {
        curl_easy_setopt(t->easy, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, headers);
    t->body.len = 0;
    t->too_large = 0;
    t->retry_after[0] = '\0';
    t->errbuf[0] = '\0';
}

/* Gives back a large answer buffer, keeps a small one for the next request. */
static void transfer_settle(ot_transfer *t) {
    if (t->body.cap > KEEP_BUFFER) {
        free(t->body.data);
        t->body.data = NULL;
        t->body.cap = 0;
    }
    t->body.len = 0;
    curl_slist_free_all(t->headers);
    t->headers = NULL;
}

static void transfer_free(ot_transfer *t, int own) {
    if (own)
        curl_easy_cleanup(t->easy);
    else
        keep_inherited(t->easy);
    t->easy = NULL;
    curl_slist_free_all(t->headers);
    t->headers = NULL;
    free(t->body.data);
    t->body.data = NULL;
    t->body.len = t->body.cap = 0;
}

/* Pushes nil, err for a failed transfer. */
static void push_failure(lua_State *L, ot_transfer *t, CURLcode rc) {
    const char *kind = "network";
    const char *message = t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc);
    int retryable = 1, sent = 1;
    long request_size = 0;
    char buf[160];
    curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &request_size);
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
        if (rc == CURLE_FILESIZE_EXCEEDED || t->too_large) {
            snprintf(buf, sizeof buf, "answer is larger than max_body (%lu bytes)",
                     (unsigned long)t->client->max_body);
            kind = "protocol";
            message = buf;
        } else {
            message = "out of memory while receiving the answer";
        }
        retryable = 0;
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
    lua_pushnil(L);
    answer_push_error(L, kind, -1, message, retryable);
    lua_pushboolean(L, sent);
    lua_setfield(L, -2, "sent");
}

/* Pushes status, body, retry_after|nil for a finished transfer. */
static void push_answer(lua_State *L, ot_transfer *t) {
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    lua_pushinteger(L, (lua_Integer)status);
    lua_pushlstring(L, t->body.data ? t->body.data : "", t->body.len);
    if (t->retry_after[0])
        lua_pushstring(L, t->retry_after);
    else
        lua_pushnil(L);
}

/* ---- the client's connections ------------------------------------- */

/* Curl handles a forked child inherited and must never clean up (see
 * check_fork). They stay listed here so they remain reachable memory
 * rather than a leak; the only process-wide state this module keeps. */
static pthread_mutex_t inherited_lock = PTHREAD_MUTEX_INITIALIZER;
static void **inherited;
static size_t inherited_len;

static void keep_inherited(void *handle) {
    void **grown;
    if (handle == NULL)
        return;
    pthread_mutex_lock(&inherited_lock);
    grown = (void **)realloc(inherited, (inherited_len + 1) * sizeof *grown);
    if (grown != NULL) {
        grown[inherited_len++] = handle;
        inherited = grown;
    }
    pthread_mutex_unlock(&inherited_lock);
}

int transport_curl_init(ot_client *c) {
    c->pid = getpid();
    return transfer_init(&c->single, c);
}

static void drop_token(ot_client *c) {
    if (c->token != NULL) {
        memset(c->token, 0, strlen(c->token));
        free(c->token);
        c->token = NULL;
    }
    curl_slist_free_all(c->headers);
    curl_slist_free_all(c->post_headers);
    c->headers = c->post_headers = NULL;
}

/* Frees the multi handle and its pool; `own` says whether this process
 * made them (see check_fork). */
static void drop_multi(ot_client *c, int own) {
    size_t i;
    for (i = 0; i < c->pool_len; i++) {
        ot_transfer *t = c->pool[i];
        if (own && t->busy && c->multi != NULL)
            curl_multi_remove_handle(c->multi, t->easy);
        transfer_free(t, own);
        free(t);
    }
    free(c->pool);
    c->pool = NULL;
    c->pool_len = 0;
    if (own)
        curl_multi_cleanup(c->multi);
    else
        keep_inherited(c->multi);
    c->multi = NULL;
}

void transport_curl_close(ot_client *c) {
    int own = c->pid == getpid();
    drop_multi(c, own);
    transfer_free(&c->single, own);
    drop_token(c);
}

/* After fork(): fresh handles with the same options and no connections.
 * A process only ever cleans up the curl handles it made: cleaning up an
 * inherited one would write TLS close_notify on a socket the parent still
 * uses, or wait for a resolver thread that does not exist in the child.
 * The inherited handles are left as they are, a few kilobytes per fork. */
static int check_fork(ot_client *c) {
    CURL *fresh;
    if (c->pid == getpid())
        return 1;
    fresh = curl_easy_duphandle(c->single.easy);
    if (fresh == NULL)
        return 0;
    keep_inherited(c->single.easy);
    c->single.easy = fresh;
    drop_multi(c, 0);
    c->pid = getpid();
    return 1;
}

/* Appends the lines shared by every request, then `extra` if any. */
static struct curl_slist *build_headers(const char *auth, const char *extra) {
    static const char *const common[] = {"Accept: application/json", "Expect:"};
    struct curl_slist *list = curl_slist_append(NULL, auth), *next;
    size_t i;
    for (i = 0; list != NULL && i <= sizeof common / sizeof common[0]; i++) {
        const char *line = i < sizeof common / sizeof common[0] ? common[i] : extra;
        if (line == NULL)
            break;
        next = curl_slist_append(list, line);
        if (next == NULL) {
            curl_slist_free_all(list);
            return NULL;
        }
        list = next;
    }
    return list;
}

static char *auth_line(const char *token, size_t token_len) {
    static const char prefix[] = "X-Auth-Token: ";
    char *line = (char *)malloc(token_len + sizeof prefix);
    if (line == NULL)
        return NULL;
    memcpy(line, prefix, sizeof prefix - 1);
    memcpy(line + sizeof prefix - 1, token, token_len);
    line[sizeof prefix - 1 + token_len] = '\0';
    return line;
}

static void wipe(char *line) {
    if (line != NULL) {
        memset(line, 0, strlen(line));
        free(line);
    }
}

/* Builds the single handle's header lists for `token`, reused while the
 * token stays the same. */
static int prepare_headers(ot_client *c, const char *token, size_t token_len) {
    static const size_t prefix_len = sizeof "X-Auth-Token: " - 1;
    if (c->token != NULL && strlen(c->token) == prefix_len + token_len &&
        memcmp(c->token + prefix_len, token, token_len) == 0)
        return 1;
    drop_token(c);
    c->token = auth_line(token, token_len);
    if (c->token == NULL)
        return 0;
    c->headers = build_headers(c->token, NULL);
    c->post_headers = build_headers(c->token, "Content-Type: application/json");
    if (c->headers == NULL || c->post_headers == NULL) {
        drop_token(c);
        return 0;
    }
    return 1;
}

int transport_curl_perform(lua_State *L, ot_client *c, const char *method,
                           const char *path, const char *body, size_t body_len,
                           const char *token, size_t token_len) {
    CURLcode rc;
    ot_transfer *t = &c->single;
    int post = strcmp(method, "POST") == 0;
    if (!check_fork(c))
        return luaL_error(L, "opentact: cannot open a connection handle after fork");
    if (!prepare_headers(c, token, token_len))
        return luaL_error(L, "opentact: out of memory");
    transfer_prepare(L, t, path, post, body, body_len, 0, post ? c->post_headers : c->headers);
    rc = curl_easy_perform(t->easy);
    if (rc != CURLE_OK)
        push_failure(L, t, rc);
    else
        push_answer(L, t);
    transfer_settle(t);
    return rc != CURLE_OK ? 2 : 3;
}

/* ---- concurrent requests ------------------------------------------ */

static ot_transfer *idle_transfer(ot_client *c) {
    size_t i;
    ot_transfer *t, **grown;
    for (i = 0; i < c->pool_len; i++)
        if (!c->pool[i]->busy)
            return c->pool[i];
    grown = (ot_transfer **)realloc(c->pool, (c->pool_len + 1) * sizeof *grown);
    if (grown == NULL)
        return NULL;
    c->pool = grown;
    t = (ot_transfer *)calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    if (!transfer_init(t, c)) {
        transfer_free(t, 1);
        free(t);
        return NULL;
    }
    c->pool[c->pool_len++] = t;
    return t;
}

int transport_curl_start(lua_State *L, ot_client *c, lua_Integer id, const char *method,
                         const char *path, const char *body, size_t body_len,
                         const char *token, size_t token_len, long max_connections) {
    ot_transfer *t;
    char *auth;
    int post = strcmp(method, "POST") == 0;
    if (!check_fork(c))
        return luaL_error(L, "opentact: cannot open a connection handle after fork");
    if (c->multi == NULL && (c->multi = curl_multi_init()) == NULL)
        return luaL_error(L, "opentact: cannot create a curl multi handle");
    /* one connection per request in flight, kept for the next batch */
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_connections);
    curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, CURLPIPE_NOTHING);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, max_connections);
    t = idle_transfer(c);
    auth = t ? auth_line(token, token_len) : NULL;
    if (auth == NULL)
        return luaL_error(L, "opentact: out of memory");
    t->headers = build_headers(auth, post ? "Content-Type: application/json" : NULL);
    wipe(auth);
    if (t->headers == NULL)
        return luaL_error(L, "opentact: out of memory");
    transfer_prepare(L, t, path, post, body, body_len, 1, t->headers);
    if (curl_multi_add_handle(c->multi, t->easy) != CURLM_OK) {
        transfer_settle(t);
        return luaL_error(L, "opentact: cannot start a concurrent request");
    }
    t->busy = 1;
    t->id = id;
    {
        /* send it now, not at the next poll: the caller may be busy a while */
        int running;
        curl_multi_perform(c->multi, &running);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Moves every finished transfer into the result list on top of the stack. */
static int collect(lua_State *L, ot_client *c, int n) {
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        ot_transfer *t = NULL;
        CURLcode rc;
        if (msg->msg != CURLMSG_DONE)
            continue;
        rc = msg->data.result; /* msg dies with remove_handle */
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        curl_multi_remove_handle(c->multi, t->easy);
        t->busy = 0;
        lua_createtable(L, 0, 4);
        lua_pushinteger(L, t->id);
        lua_setfield(L, -2, "id");
        if (rc != CURLE_OK) {
            push_failure(L, t, rc);
            lua_setfield(L, -3, "err");
            lua_pop(L, 1);
        } else {
            push_answer(L, t);
            lua_setfield(L, -4, "retry_after");
            lua_setfield(L, -3, "body");
            lua_setfield(L, -2, "status");
        }
        transfer_settle(t);
        lua_rawseti(L, -2, ++n);
    }
    return n;
}

int transport_curl_poll(lua_State *L, ot_client *c, double timeout) {
    double deadline = monotonic() + (timeout > 0 ? timeout : 0);
    int n = 0, running = 0;
    lua_newtable(L);
    if (c->multi == NULL)
        return 1;
    for (;;) {
        double left;
        curl_multi_perform(c->multi, &running);
        n = collect(L, c, n);
        if (n > 0 || running == 0)
            break;
        left = deadline - monotonic();
        if (left <= 0)
            break;
        curl_multi_poll(c->multi, NULL, 0, (int)(left * 1000) + 1, NULL);
    }
    return 1;
}
