/*
 * transport_curl.c: the curl transport. Moves one request's bytes over a
 * libcurl easy handle owned by the client, so connections stay alive
 * between calls.
 *
 * It only moves bytes: status, body and Retry-After out, or a transport
 * error table. Callbacks never raise a Lua error; they record what went
 * wrong in the client and return curl's abort code.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "opentact.h"

/* Bodies up to this size keep their buffer for the next call. */
#define KEEP_BUFFER 262144

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
    ot_client *c = (ot_client *)userdata;
    size_t n = size * nmemb;
    if (n > c->max_body - c->body.len) {
        c->too_large = 1;
        return 0;
    }
    if (c->body.len + n > c->body.cap) {
        size_t want = c->body.cap ? c->body.cap * 2 : 16384;
        curl_off_t announced = -1;
        char *grown;
        curl_easy_getinfo(c->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced);
        if (announced > 0 && (curl_off_t)want < announced && (size_t)announced <= c->max_body)
            want = (size_t)announced;
        if (want < c->body.len + n)
            want = c->body.len + n;
        grown = (char *)realloc(c->body.data, want);
        if (grown == NULL)
            return 0;
        c->body.data = grown;
        c->body.cap = want;
    }
    memcpy(c->body.data + c->body.len, ptr, n);
    c->body.len += n;
    return n;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *userdata) {
    ot_client *c = (ot_client *)userdata;
    size_t n = size * nitems;
    static const char name[] = "retry-after:";
    if (n > 5 && strncmp(line, "HTTP/", 5) == 0) {
        c->retry_after[0] = '\0'; /* a new response (after 100 Continue) */
    } else if (n > sizeof name - 1 && strncasecmp(line, name, sizeof name - 1) == 0) {
        const char *v = line + sizeof name - 1;
        size_t len = n - (sizeof name - 1);
        while (len > 0 && (*v == ' ' || *v == '\t'))
            v++, len--;
        while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
            len--;
        if (len >= sizeof c->retry_after)
            len = sizeof c->retry_after - 1;
        memcpy(c->retry_after, v, len);
        c->retry_after[len] = '\0';
    }
    return n;
}

static int apply_options(ot_client *c) {
    CURL *e = c->easy;
    int ok = 1;
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
    SET(CURLOPT_WRITEDATA, (void *)c);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, (void *)c);
    SET(CURLOPT_ERRORBUFFER, c->errbuf);
#undef SET
    return ok;
}

int transport_curl_init(ot_client *c) {
    c->easy = curl_easy_init();
    if (c->easy == NULL)
        return 0;
    c->pid = getpid();
    return apply_options(c);
}

/* A TLS connection's cleanup writes close_notify on the socket, which
 * the parent still uses; plain sockets are only closed. */
static int may_close_inherited(const ot_client *c) {
    return strncmp(c->base_url, "http://", 7) == 0 && c->proxy == NULL;
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

void transport_curl_close(ot_client *c) {
    if (c->easy != NULL) {
        if (c->pid == getpid() || may_close_inherited(c))
            curl_easy_cleanup(c->easy);
        c->easy = NULL;
    }
    drop_token(c);
    free(c->body.data);
    c->body.data = NULL;
    c->body.len = c->body.cap = 0;
}

/* After fork(): a fresh handle with the same options and no connections. */
static int reopen_after_fork(ot_client *c) {
    CURL *fresh = curl_easy_duphandle(c->easy);
    if (fresh == NULL)
        return 0;
    if (may_close_inherited(c))
        curl_easy_cleanup(c->easy);
    c->easy = fresh;
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

/* Builds the header lists for `token`, reused while the token stays the same. */
static int prepare_headers(ot_client *c, const char *token, size_t token_len) {
    static const char prefix[] = "X-Auth-Token: ";
    char *line;
    if (c->token != NULL && strlen(c->token) == sizeof prefix - 1 + token_len &&
        memcmp(c->token + sizeof prefix - 1, token, token_len) == 0)
        return 1;
    drop_token(c);
    line = (char *)malloc(token_len + sizeof prefix);
    if (line == NULL)
        return 0;
    memcpy(line, prefix, sizeof prefix - 1);
    memcpy(line + sizeof prefix - 1, token, token_len);
    line[sizeof prefix - 1 + token_len] = '\0';
    c->headers = build_headers(line, NULL);
    c->post_headers = build_headers(line, "Content-Type: application/json");
    c->token = line; /* the token is `line` past its prefix */
    if (c->headers == NULL || c->post_headers == NULL) {
        drop_token(c);
        return 0;
    }
    return 1;
}

static int push_failure(lua_State *L, ot_client *c, CURLcode rc) {
    const char *kind = "network";
    const char *message = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
    int retryable = 1, sent = 1;
    long request_size = 0;
    char buf[160];
    curl_easy_getinfo(c->easy, CURLINFO_REQUEST_SIZE, &request_size);
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
        if (rc == CURLE_FILESIZE_EXCEEDED || c->too_large) {
            snprintf(buf, sizeof buf, "answer is larger than max_body (%lu bytes)",
                     (unsigned long)c->max_body);
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
    return 2;
}

int transport_curl_perform(lua_State *L, ot_client *c, const char *method,
                           const char *path, const char *body, size_t body_len,
                           const char *token, size_t token_len) {
    CURLcode rc;
    long status = 0;
    int post = strcmp(method, "POST") == 0;
    if (c->pid != getpid() && !reopen_after_fork(c))
        return luaL_error(L, "opentact: cannot open a connection handle after fork");
    if (!prepare_headers(c, token, token_len))
        return luaL_error(L, "opentact: out of memory");
    lua_pushfstring(L, "%s%s", c->base_url, path); /* kept on the stack while curl runs */
    curl_easy_setopt(c->easy, CURLOPT_URL, lua_tostring(L, -1));
    if (post) {
        curl_easy_setopt(c->easy, CURLOPT_POST, 1L);
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, body);
    } else {
        curl_easy_setopt(c->easy, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, post ? c->post_headers : c->headers);
    c->body.len = 0;
    c->too_large = 0;
    c->retry_after[0] = '\0';
    c->errbuf[0] = '\0';
    rc = curl_easy_perform(c->easy);
    lua_pop(L, 1);
    if (rc != CURLE_OK) {
        push_failure(L, c, rc);
    } else {
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
        lua_pushinteger(L, (lua_Integer)status);
        lua_pushlstring(L, c->body.data ? c->body.data : "", c->body.len);
        if (c->retry_after[0])
            lua_pushstring(L, c->retry_after);
        else
            lua_pushnil(L);
    }
    if (c->body.cap > KEEP_BUFFER) {
        free(c->body.data);
        c->body.data = NULL;
        c->body.cap = 0;
    }
    c->body.len = 0;
    return rc != CURLE_OK ? 2 : 3;
}
