/*
 * auth.c: what logging in needs from C: the wall clock with sub-second
 * precision (a JWT's exp is wall time, and a token can live 2 seconds),
 * base64 for HTTP Basic, reading a JWT's exp and iat claims, and keeping
 * a token in a file only its owner can read (for `opentact login`).
 *
 * A JWT is only read, never verified: the server that issued it checks
 * it. Reading its claims tells the client when to log in again.
 */
#define _POSIX_C_SOURCE 200809L /* mkstemp, fchmod, fsync */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "opentact.h"

/* core.time(): seconds since the epoch, as a float */
int auth_time(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* core.base64(s): s in standard base64, padded */
int auth_base64(lua_State *L) {
    size_t len, i;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (i = 0; i + 2 < len; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
        luaL_addchar(&b, B64[v >> 18]);
        luaL_addchar(&b, B64[(v >> 12) & 63]);
        luaL_addchar(&b, B64[(v >> 6) & 63]);
        luaL_addchar(&b, B64[v & 63]);
    }
    if (i < len) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < len ? (unsigned)s[i + 1] << 8 : 0);
        luaL_addchar(&b, B64[v >> 18]);
        luaL_addchar(&b, B64[(v >> 12) & 63]);
        luaL_addchar(&b, i + 1 < len ? B64[(v >> 6) & 63] : '=');
        luaL_addchar(&b, '=');
    }
    luaL_pushresult(&b);
    return 1;
}

/* The value of one base64url digit, or -1. */
static int b64url_digit(unsigned char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* A JWT's claims (its middle part) at most this long: a JWT is a few
 * hundred bytes; anything longer is not worth reading. */
#define CLAIMS_MAX 8192

/* Pushes claim `name` of the table on top when it is a finite number (a
 * NumericDate, RFC 7519), else nil: 1e999 decodes to an infinity. */
static void push_claim(lua_State *L, int claims, const char *name) {
    lua_getfield(L, claims, name);
    if (lua_type(L, -1) != LUA_TNUMBER || !isfinite((double)lua_tonumber(L, -1))) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
}

/* The longest account name a JWT's claims give (an email is at most 254). */
#define ACCOUNT_MAX 320

/* Pushes the account the claims at stack index `claims` (> 0) name: the
 * first of `email`, `user` and `sub` that is a non-empty string of at most
 * ACCOUNT_MAX bytes, else nil. Only read, to be shown (made safe by the
 * caller). */
static void push_account(lua_State *L, int claims) {
    static const char *const names[] = {"email", "user", "sub"};
    size_t i, len;
    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        lua_getfield(L, claims, names[i]);
        if (lua_type(L, -1) == LUA_TSTRING) {
            lua_tolstring(L, -1, &len);
            if (len > 0 && len <= ACCOUNT_MAX)
                return;
        }
        lua_pop(L, 1);
    }
    lua_pushnil(L);
}

/* core.jwt_claims(token) -> exp, iat, account (exp and iat finite numbers,
 * or nil when the token is not a JWT or lacks the claim; a number may be
 * far out of any date's range; account: see push_account) */
int auth_jwt_claims(lua_State *L) {
    size_t len, i, n = 0;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *first = memchr(s, '.', len), *second;
    unsigned char out[CLAIMS_MAX];
    unsigned v = 0;
    int bits = 0;
    if (first == NULL || (second = memchr(first + 1, '.', len - (size_t)(first + 1 - s))) == NULL ||
        (size_t)(second - first - 1) > CLAIMS_MAX * 4 / 3)
        goto none;
    for (i = (size_t)(first + 1 - s); s + i < second; i++) {
        int d = b64url_digit((unsigned char)s[i]);
        if (d < 0)
            goto none;
        v = v << 6 | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(v >> bits);
            v &= (1u << bits) - 1;
        }
    }
    if (!json_decode(L, (const char *)out, n, NULL, NULL, 0, NULL))
        goto none;
    if (!lua_istable(L, -1))
        goto none;
    push_claim(L, -1, "exp");
    push_claim(L, -2, "iat");
    push_account(L, lua_gettop(L) - 2);
    return 3;
none:
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushnil(L);
    return 3;
}

/* Writes all of `len` bytes of `s` to `fd`; 0, or -1 with errno set. */
int auth_write_all(int fd, const char *s, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, s, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The longest path write_private takes (a token file's path is short). */
#define PRIVATE_PATH_MAX 4096

/* core.write_private(path, data) -> true, or nil and a message: `data` in
 * the file `path`, readable and writable by its owner only from its first
 * byte on, whatever the umask. A new file is made next to it with mode
 * 0600 (mkstemp: O_CREAT|O_EXCL, then fchmod for an umask that took bits
 * away), written, flushed to disk and renamed over `path`: a reader sees
 * the old file or the whole new one, never a part, and a file or a
 * symbolic link at `path` is replaced, never written through. Nothing is
 * left behind on failure. The message names the file, never the data; a
 * path too long (from the environment) is such a failure, only a path
 * with a NUL byte raises. */
int auth_write_private(lua_State *L) {
    size_t plen, dlen;
    const char *path = luaL_checklstring(L, 1, &plen);
    const char *data = luaL_checklstring(L, 2, &dlen);
    char tmp[PRIVATE_PATH_MAX + 8];
    const char *failed;
    int fd, err;
    if (strlen(path) != plen)
        return luaL_argerror(L, 1, "a path without NUL bytes");
    if (plen == 0 || plen > PRIVATE_PATH_MAX) {
        err = plen == 0 ? ENOENT : ENAMETOOLONG;
        failed = "cannot create a file next to";
        goto fail;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".XXXXXX", 8);
    fd = mkstemp(tmp);
    if (fd < 0) {
        err = errno;
        failed = "cannot create a file next to";
        goto fail;
    }
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (fchmod(fd, S_IRUSR | S_IWUSR) != 0 || auth_write_all(fd, data, dlen) != 0 || fsync(fd) != 0) {
        err = errno;
        close(fd);
        unlink(tmp);
        failed = "cannot write";
        goto fail;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        err = errno;
        unlink(tmp);
        failed = "cannot write";
        goto fail;
    }
    lua_pushboolean(L, 1);
    return 1;
fail:
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s: %s", failed, path, strerror(err));
    return 2;
}
