/*
 * sha256.c: SHA-256 (FIPS 180-4, section 6.2), for the content hash of a
 * saved plan and of the journal that names it. No I/O, no libcurl.
 *
 * core.sha256(s) -> the digest of the bytes of s, as 64 lower-case hex
 * digits.
 *
 * core.sha256_fields() -> a hasher of a sequence of fields, each written
 * as its length, ':' and its text (so no two sequences give the same
 * bytes), where a field's text is its type and value: h:field(v) (a
 * number "n%.17g", a boolean "t" or "f", nil "-", a string "s" and the
 * string) and h:words(...) (the string "s" and its arguments joined
 * by spaces: nil as "-", a number as a whole number "%.0f"); h:hex() ends
 * it: the digest, as core.sha256 of the same bytes gives it. A plan of
 * 10,000 leases is hashed field by field without building its text.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "opentact.h"

/* The first 32 bits of the fractional parts of the cube roots of the
 * first 64 primes (FIPS 180-4, 4.2.2). */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

typedef struct sha256 {
    uint32_t h[8];
    unsigned char block[64];
    size_t used;     /* bytes waiting in block */
    uint64_t length; /* bytes hashed so far */
} sha256;

static uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

/* One 512-bit block into the state (FIPS 180-4, 6.2.2). */
static void compress(uint32_t h[8], const unsigned char *p) {
    uint32_t w[64], a, b, c, d, e, f, g, k;
    int t;
    for (t = 0; t < 16; t++)
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 | (uint32_t)p[4 * t + 2] << 8 |
               (uint32_t)p[4 * t + 3];
    for (t = 16; t < 64; t++) {
        uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (t = 0; t < 64; t++) {
        uint32_t t1 = k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

static void start(sha256 *s) {
    /* the first 32 bits of the fractional parts of the square roots of the
     * first 8 primes (FIPS 180-4, 5.3.3) */
    static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, H0, sizeof H0);
    s->used = 0;
    s->length = 0;
}

static void feed(sha256 *s, const unsigned char *p, size_t len) {
    s->length += len;
    if (s->used > 0) {
        size_t take = 64 - s->used < len ? 64 - s->used : len;
        memcpy(s->block + s->used, p, take);
        s->used += take;
        p += take;
        len -= take;
        if (s->used < 64)
            return;
        compress(s->h, s->block);
        s->used = 0;
    }
    for (; len >= 64; p += 64, len -= 64)
        compress(s->h, p);
    memcpy(s->block, p, len);
    s->used = len;
}

/* The padding (FIPS 180-4, 5.1.1): a 1 bit, zeros, the length in bits as
 * 64 bits big-endian, to a whole number of blocks. */
static void finish(sha256 *s, unsigned char out[32]) {
    uint64_t bits = s->length * 8;
    int i;
    s->block[s->used++] = 0x80;
    if (s->used > 56) {
        memset(s->block + s->used, 0, 64 - s->used);
        compress(s->h, s->block);
        s->used = 0;
    }
    memset(s->block + s->used, 0, 56 - s->used);
    for (i = 0; i < 8; i++)
        s->block[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
    compress(s->h, s->block);
    for (i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(s->h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(s->h[i] >> 8);
        out[4 * i + 3] = (unsigned char)s->h[i];
    }
}

/* Pushes the digest of what `s` was fed, as 64 lower-case hex digits. */
static void push_hex(lua_State *L, sha256 *s) {
    static const char HEX[] = "0123456789abcdef";
    unsigned char digest[32];
    char hex[64];
    int i;
    finish(s, digest);
    for (i = 0; i < 32; i++) {
        hex[2 * i] = HEX[digest[i] >> 4];
        hex[2 * i + 1] = HEX[digest[i] & 15];
    }
    lua_pushlstring(L, hex, sizeof hex);
}

/* core.sha256(s) -> 64 lower-case hex digits */
int sha256_hex(lua_State *L) {
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    sha256 s;
    start(&s);
    feed(&s, (const unsigned char *)text, len);
    push_hex(L, &s);
    return 1;
}

/* ---- the field hasher ---------------------------------------------- */

#define FIELDS_MT "opentact.Sha256Fields"

typedef struct fields {
    sha256 s;
    int done; /* hex() was called: the state is spent */
} fields;

static fields *check_fields(lua_State *L) {
    fields *f = (fields *)luaL_checkudata(L, 1, FIELDS_MT);
    if (f->done)
        luaL_error(L, "this hasher has given its digest already");
    return f;
}

/* Writes n in decimal at the end of buf[0..size): returns where it starts. */
static char *decimal(char *buf, size_t size, unsigned long long n) {
    char *p = buf + size;
    do
        *--p = (char)('0' + n % 10);
    while ((n /= 10) > 0);
    return p;
}

/* Feeds the head of a field of `len` bytes after its type: the length
 * of type and text, ':', the type character. */
static void feed_head(sha256 *s, char type, size_t len) {
    char buf[32];
    char *p;
    buf[sizeof buf - 2] = ':';
    buf[sizeof buf - 1] = type;
    p = decimal(buf, sizeof buf - 2, (unsigned long long)len + 1);
    feed(s, (const unsigned char *)p, (size_t)(buf + sizeof buf - p));
}

static void feed_field(sha256 *s, char type, const char *text, size_t len) {
    feed_head(s, type, len);
    feed(s, (const unsigned char *)text, len);
}

/* Room for any double as "%.0f" writes it: up to 309 digits, a sign. */
#define WHOLE_SIZE 320

/* A number as "%.0f" writes it, into buf: whole numbers below 2^63 in
 * decimal directly (a phone number is one), others (-0 too) by snprintf. */
static const char *whole(char buf[WHOLE_SIZE], lua_Number x, size_t *len) {
    int n;
    double d = (double)x;
    if (d == d && d > -9.2e18 && d < 9.2e18 && d == (double)(long long)d && !(d == 0 && signbit(d))) {
        long long v = (long long)d;
        char *p = decimal(buf, WHOLE_SIZE, (unsigned long long)(v < 0 ? -v : v));
        if (v < 0)
            *--p = '-';
        *len = (size_t)(buf + WHOLE_SIZE - p);
        return p;
    }
    n = snprintf(buf, WHOLE_SIZE, "%.0f", d);
    *len = n < 0 ? 0 : (size_t)n < WHOLE_SIZE ? (size_t)n : WHOLE_SIZE - 1;
    return buf;
}

/* h:field(v) -> h */
static int fields_field(lua_State *L) {
    fields *f = check_fields(L);
    char num[64];
    size_t len;
    const char *text;
    luaL_checkany(L, 2);
    switch (lua_type(L, 2)) {
    case LUA_TNUMBER:
        len = (size_t)snprintf(num, sizeof num, "%.17g", (double)lua_tonumber(L, 2));
        feed_field(&f->s, 'n', num, len);
        break;
    case LUA_TBOOLEAN:
        feed_field(&f->s, lua_toboolean(L, 2) ? 't' : 'f', "", 0);
        break;
    case LUA_TNIL:
        feed_field(&f->s, '-', "", 0);
        break;
    case LUA_TSTRING:
        text = lua_tolstring(L, 2, &len);
        feed_field(&f->s, 's', text, len);
        break;
    default:
        return luaL_argerror(L, 2, "a field is a string, a number, a boolean or nil");
    }
    lua_settop(L, 1);
    return 1;
}

#define MAX_WORDS 16

/* h:words(...) -> h: one field of its arguments joined by spaces */
static int fields_words(lua_State *L) {
    fields *f = check_fields(L);
    int i, n = lua_gettop(L) - 1;
    const char *text[MAX_WORDS];
    size_t len[MAX_WORDS], total = 0;
    char nums[MAX_WORDS][WHOLE_SIZE];
    if (n > MAX_WORDS)
        return luaL_error(L, "at most %d words make a field", MAX_WORDS);
    for (i = 0; i < n; i++) {
        int arg = i + 2;
        if (lua_isnil(L, arg))
            text[i] = "-", len[i] = 1;
        else if (lua_type(L, arg) == LUA_TNUMBER)
            text[i] = whole(nums[i], lua_tonumber(L, arg), &len[i]);
        else if (lua_type(L, arg) == LUA_TSTRING)
            text[i] = lua_tolstring(L, arg, &len[i]);
        else
            return luaL_argerror(L, arg, "a word is a string, a number or nil");
        total += len[i] + (i > 0);
    }
    feed_head(&f->s, 's', total);
    for (i = 0; i < n; i++) {
        if (i > 0)
            feed(&f->s, (const unsigned char *)" ", 1);
        feed(&f->s, (const unsigned char *)text[i], len[i]);
    }
    lua_settop(L, 1);
    return 1;
}

/* h:hex() -> the digest; the hasher is spent */
static int fields_hex(lua_State *L) {
    fields *f = check_fields(L);
    f->done = 1;
    push_hex(L, &f->s);
    return 1;
}

static const luaL_Reg fields_methods[] = {
    {"field", fields_field}, {"words", fields_words}, {"hex", fields_hex}, {NULL, NULL},
};

/* core.sha256_fields() -> a new hasher */
int sha256_fields(lua_State *L) {
    fields *f = (fields *)ot_newuserdata(L, sizeof *f);
    start(&f->s);
    f->done = 0;
    if (luaL_newmetatable(L, FIELDS_MT)) {
        lua_newtable(L);
        ot_setfuncs(L, fields_methods);
        lua_setfield(L, -2, "__index");
        lua_pushliteral(L, FIELDS_MT);
        lua_setfield(L, -2, "__name");
    }
    lua_setmetatable(L, -2);
    return 1;
}
