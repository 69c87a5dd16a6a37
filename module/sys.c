/*
 * The system calls the Lua layer needs: clock, sleep, pid, isatty, an atomic
 * file write and an exclusive lock (what a runbook needs to survive a crash).
 *
 *   now() -> epoch seconds with a fraction; monotonic() -> seconds, never back
 *   sleep(s)                       blocks the thread (the Lua layer swaps in ngx.sleep)
 *   pid(); isatty([fd])
 *   write_file_atomic(path, data) -> true | nil, err
 *   mkdir(path) -> true | nil, err  the directory and its missing parents (mode 0700)
 *   lock(path) -> lock | nil, err  (err.code "Locked" with err.pid when another
 *                                   process holds it); lock:release(), __gc, __close
 */
#define _DEFAULT_SOURCE 1          /* flock(), mkstemp() */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

#include "compat.h"
#include "error.h"
#include "sys.h"

#define LOCK_MT "dms.core.lock"

/* ------------------------------------------------------------------ */
/* clock and sleep                                                     */

static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

static int l_monotonic(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

static int l_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    struct timespec ts;
    if (!(s > 0))
        return 0;
    if (s > 86400)
        s = 86400;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return 0;
}

static int l_pid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

/* isatty(fd) -> boolean (1 = standard output) */
static int l_isatty(lua_State *L)
{
    lua_Integer fd = luaL_optinteger(L, 1, 1);
    lua_pushboolean(L, fd >= 0 && fd <= 1024 && isatty((int)fd));
    return 1;
}

/* ------------------------------------------------------------------ */
/* files                                                               */

/* nil, {kind = "system", code = code, message = "what path: strerror", path, errno} */
static int return_errno(lua_State *L, int e, const char *code, const char *what, const char *path)
{
    lua_pushfstring(L, "%s %s: %s", what, path, strerror(e));
    lua_pushnil(L);
    dms_push_error(L, "system", code, lua_tostring(L, -2));
    lua_pushstring(L, path);
    lua_setfield(L, -2, "path");
    lua_pushinteger(L, e);
    lua_setfield(L, -2, "errno");
    return 2;
}

static int write_all(int fd, const char *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

/*
 * write_file_atomic(path, data) -> true | nil, err
 * Writes a new temporary file beside path (created exclusively by mkstemp:
 * never an existing file, never through a symbolic link, mode 0600), fsyncs
 * it, renames it over path and fsyncs the directory: after a crash the file
 * holds the old or the new data, whole.
 */
static int l_write_file_atomic(lua_State *L)
{
    size_t plen, len;
    const char *path = luaL_checklstring(L, 1, &plen);
    const char *data = luaL_checklstring(L, 2, &len);
    const char *slash;
    char *tmp;
    int fd, dfd, e;

    if (plen == 0 || strlen(path) != plen)
        return return_errno(L, EINVAL, "FileError", "cannot write", "(a path with NUL)");
    /* the template is owned by a Lua string buffer: freed by the collector */
    lua_pushfstring(L, "%s.tmp.XXXXXX", path);
    tmp = lua_newuserdata(L, plen + 12);
    memcpy(tmp, lua_tostring(L, -2), plen + 12);
    fd = mkstemp(tmp);
    if (fd < 0)
        return return_errno(L, errno, "FileError", "cannot create a temporary file for", path);
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        e = errno;
        close(fd);
        unlink(tmp);
        return return_errno(L, e, "FileError", "cannot write", tmp);
    }
    if (close(fd) != 0) {
        e = errno;
        unlink(tmp);
        return return_errno(L, e, "FileError", "cannot write", tmp);
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        return return_errno(L, e, "FileError", "cannot rename onto", path);
    }
    slash = strrchr(path, '/');
    if (slash)
        lua_pushlstring(L, path, slash == path ? 1 : (size_t)(slash - path));
    else
        lua_pushliteral(L, ".");
    dfd = open(lua_tostring(L, -1), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);             /* the rename itself reaches the disk */
        close(dfd);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/*
 * mkdir(path) -> true | nil, err
 * Creates the directory and its missing parents (mode 0700, as a runbook's
 * state is nobody else's); an existing directory is fine.
 */
static int l_mkdir(lua_State *L)
{
    size_t len, i;
    const char *path = luaL_checklstring(L, 1, &len);
    char *p;
    struct stat st;
    if (len == 0 || strlen(path) != len)
        return return_errno(L, EINVAL, "FileError", "cannot create directory", "(an empty path or one with NUL)");
    p = lua_newuserdata(L, len + 1);
    memcpy(p, path, len + 1);
    for (i = 1; i <= len; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        p[i] = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            return return_errno(L, errno, "FileError", "cannot create directory", p);
        if (i < len)
            p[i] = '/';
    }
    if (stat(path, &st) != 0)
        return return_errno(L, errno, "FileError", "cannot create directory", path);
    if (!S_ISDIR(st.st_mode))
        return return_errno(L, ENOTDIR, "FileError", "cannot create directory", path);
    lua_pushboolean(L, 1);
    return 1;
}

typedef struct {
    int fd;
} lock_ud;

/* release, __gc and __close: safe to call twice */
static int lock_release(lua_State *L)
{
    lock_ud *u = luaL_checkudata(L, 1, LOCK_MT);
    if (u->fd >= 0) {
        flock(u->fd, LOCK_UN);
        close(u->fd);
        u->fd = -1;
    }
    return 0;
}

/*
 * lock(path) -> lock | nil, err
 * An exclusive flock() on path, which holds our pid. The kernel drops it when
 * the process dies, so a killed runbook leaves no stale lock. The file is
 * opened without following a symbolic link and must be a regular file with
 * one link (a hard link planted in a shared directory is refused, so the pid
 * written here can never land in another file).
 */
static int l_lock(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lock_ud *u = lua_newuserdata(L, sizeof *u);
    struct stat st;
    char buf[32];
    int n;

    u->fd = -1;
    luaL_getmetatable(L, LOCK_MT);
    lua_setmetatable(L, -2);
    u->fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0644);
    if (u->fd < 0)
        return return_errno(L, errno, "LockFailed", "cannot open lock", path);
    if (fstat(u->fd, &st) != 0) {
        int e = errno;
        close(u->fd);
        u->fd = -1;
        return return_errno(L, e, "LockFailed", "cannot stat lock", path);
    }
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
        close(u->fd);
        u->fd = -1;
        lua_pushnil(L);
        lua_pushfstring(L, "refusing the lock file %s: it is %s", path,
                        !S_ISREG(st.st_mode) ? "not a regular file" : "a file with more than one link");
        dms_push_error(L, "system", "LockFailed", lua_tostring(L, -1));
        lua_remove(L, -2);
        lua_pushstring(L, path);
        lua_setfield(L, -2, "path");
        return 2;
    }
    if (flock(u->fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        ssize_t r = pread(u->fd, buf, sizeof buf - 1, 0);
        long holder;
        close(u->fd);
        u->fd = -1;
        if (e != EWOULDBLOCK)
            return return_errno(L, e, "LockFailed", "cannot lock", path);
        buf[r > 0 ? r : 0] = '\0';
        holder = atol(buf);
        lua_pushnil(L);
        lua_pushfstring(L, "%s is locked by process %d", path, (int)holder);
        dms_push_error(L, "system", "Locked", lua_tostring(L, -1));
        lua_remove(L, -2);
        lua_pushinteger(L, (lua_Integer)holder);
        lua_setfield(L, -2, "pid");
        lua_pushstring(L, path);
        lua_setfield(L, -2, "path");
        return 2;
    }
    n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (ftruncate(u->fd, 0) != 0 || pwrite(u->fd, buf, (size_t)n, 0) != n) {
        int e = errno;
        close(u->fd);           /* releases the lock at once, not at collection */
        u->fd = -1;
        return return_errno(L, e, "LockFailed", "cannot write lock", path);
    }
    return 1;
}

static const luaL_Reg lock_methods[] = {
    {"release", lock_release},
    {NULL, NULL}
};

static const luaL_Reg sys_funcs[] = {
    {"now", l_now},
    {"monotonic", l_monotonic},
    {"sleep", l_sleep},
    {"pid", l_pid},
    {"isatty", l_isatty},
    {"write_file_atomic", l_write_file_atomic},
    {"mkdir", l_mkdir},
    {"lock", l_lock},
    {NULL, NULL}
};

void dms_sys_open(lua_State *L)
{
    dms_new_class(L, LOCK_MT, lock_methods, lock_release);
    lua_pop(L, 1);
    dms_compat_setfuncs(L, sys_funcs, 0);
}
