/*
 * journal.c: the file an apply records its confirmed batches in
 * (core.journal_open). One open file per apply, held with an exclusive
 * lock (flock) from the first read to the end of the run: a second apply
 * given the same journal, in this process or another, is refused instead
 * of sending every batch again beside the first. Each append is written
 * whole and flushed to disk (fsync) before the run goes on, so a
 * confirmed batch survives a crash or a kill that follows.
 */
#define _DEFAULT_SOURCE /* flock */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "opentact.h"

#define OT_JOURNAL_MT "opentact.Journal"

typedef struct {
    int fd; /* -1 once closed */
} ot_journal;

static int fail(lua_State *L, const char *what, int err) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", what, strerror(err));
    return 2;
}

static ot_journal *check_open(lua_State *L) {
    ot_journal *j = (ot_journal *)luaL_checkudata(L, 1, OT_JOURNAL_MT);
    if (j->fd < 0)
        luaL_error(L, "the journal is closed");
    return j;
}

/* core.journal_open(path) -> journal, or nil, message, busy: the file
 * opened (made, readable and writable by its owner only, when it is not
 * there) and locked. `busy` is true when another open journal holds the
 * lock. Only a path with a NUL byte raises. */
static int journal_open(lua_State *L) {
    size_t plen;
    const char *path = luaL_checklstring(L, 1, &plen);
    ot_journal *j;
    struct stat st;
    int fd;
    if (strlen(path) != plen)
        return luaL_argerror(L, 1, "a path without NUL bytes");
    fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, S_IRUSR | S_IWUSR);
    if (fd < 0)
        return fail(L, "cannot open it", errno);
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        /* a device or a pipe: nothing a run could be resumed from */
        close(fd);
        lua_pushnil(L);
        lua_pushliteral(L, "not a regular file");
        return 2;
    }
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        if (err == EINTR)
            continue;
        close(fd);
        if (err == EWOULDBLOCK) {
            lua_pushnil(L);
            lua_pushliteral(L, "another apply is using it");
            lua_pushboolean(L, 1);
            return 3;
        }
        return fail(L, "cannot lock it", err);
    }
    j = (ot_journal *)ot_newuserdata(L, sizeof *j);
    j->fd = fd;
    luaL_getmetatable(L, OT_JOURNAL_MT);
    lua_setmetatable(L, -2);
    return 1;
}

/* journal:read() -> its whole text, or nil, message */
static int journal_read(lua_State *L) {
    ot_journal *j = check_open(L);
    luaL_Buffer b;
    off_t at = 0;
    luaL_buffinit(L, &b);
    for (;;) {
        char *p = luaL_prepbuffer(&b);
        ssize_t n = pread(j->fd, p, LUAL_BUFFERSIZE, at);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fail(L, "cannot read it", errno);
        }
        if (n == 0)
            break;
        luaL_addsize(&b, (size_t)n);
        at += n;
    }
    luaL_pushresult(&b);
    return 1;
}

/* journal:truncate(length) -> true, or nil, message: what follows
 * `length` goes (a last line cut short by a crash), flushed to disk */
static int journal_truncate(lua_State *L) {
    ot_journal *j = check_open(L);
    lua_Number len = luaL_checknumber(L, 2);
    if (!(len >= 0 && len < 9007199254740992.0))
        return luaL_argerror(L, 2, "a length >= 0");
    if (ftruncate(j->fd, (off_t)len) != 0 || fsync(j->fd) != 0)
        return fail(L, "cannot write it", errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* journal:append(data) -> true, or nil, message: `data` at the end,
 * flushed to disk. The message never holds the data. */
static int journal_append(lua_State *L) {
    ot_journal *j = check_open(L);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    if (auth_write_all(j->fd, data, len) != 0 || fsync(j->fd) != 0)
        return fail(L, "cannot write it", errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* journal:close(): the lock goes with the file; closing twice is fine */
static int journal_close(lua_State *L) {
    ot_journal *j = (ot_journal *)luaL_checkudata(L, 1, OT_JOURNAL_MT);
    if (j->fd >= 0) {
        close(j->fd);
        j->fd = -1;
    }
    return 0;
}

static const luaL_Reg journal_methods[] = {
    {"read", journal_read},
    {"truncate", journal_truncate},
    {"append", journal_append},
    {"close", journal_close},
    {NULL, NULL},
};

static const luaL_Reg journal_meta[] = {
    {"__gc", journal_close},
    {"__close", journal_close},
    {NULL, NULL},
};

/* Makes the opentact.Journal metatable and sets core.journal_open in the
 * module table on top of the stack. */
void journal_register(lua_State *L) {
    luaL_newmetatable(L, OT_JOURNAL_MT);
    ot_setfuncs(L, journal_meta);
    ot_newlib(L, journal_methods);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, OT_JOURNAL_MT);
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
    lua_pushcfunction(L, journal_open);
    lua_setfield(L, -2, "journal_open");
}
