/*
 * dms.core: argument checking and Lua bindings. The work is in sigv4.c
 * (signing), shape.c (conversion, errors) and http.c (libcurl).
 *
 *   core.sign(req) -> signed                     raises on bad input
 *   core.sign_cache_stats() -> {hits=, misses=}   the key cache of this module instance
 *   core.build(model, op, params) -> request | nil, err
 *   core.parse(model, op, status, headers, body) -> result | nil, err
 *   core.timestamp(v) -> epoch | nil, msg
 *   core.error(t) -> t with the error metatable
 *   core.http() -> handle: handle:request(req) -> response | nil, err; handle:close()
 *     req: url, method, headers, body, connect_timeout, timeout, max_response_bytes,
 *          ca_file, insecure, fresh_connect
 *   core.sha256_hex(s) -> hex
 *   core.now(), core.monotonic(), core.sleep(s)   clock and sleep (the Lua layer injects its own)
 *   core.write_file_atomic(path, data) -> true | nil, msg
 *   core.lock(path) -> lock | nil, msg, holder_pid; core.pid(); core.isatty([fd])
 */
#define _DEFAULT_SOURCE 1          /* flock() */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

#include <openssl/crypto.h>

#include "compat.h"
#include "http.h"
#include "shape.h"
#include "sigv4.h"

#define DMS_CORE_VERSION "0.1.0"
#define HTTP_MT "dms.core.http"
#define SIGNED_MT "dms.core.signresult"
#define CACHE_MT "dms.core.keycache"

/* index of the key cache among the upvalues of sign() and sign_cache_stats() */
#define UV_CACHE 4

/* ------------------------------------------------------------------ */
/* sign                                                                */

static const char *opt_field_string(lua_State *L, int t, const char *k, size_t *len)
{
    const char *s = NULL;
    lua_getfield(L, t, k);
    if (!lua_isnil(L, -1)) {
        size_t n;
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "sign: field '%s' must be a string", k);
        s = lua_tolstring(L, -1, &n);
        if (strlen(s) != n && strcmp(k, "body") != 0)
            luaL_error(L, "sign: field '%s' contains NUL", k);
        if (len)
            *len = n;
    }
    lua_pop(L, 1);          /* still referenced by the request table */
    return s;
}

static const char *field_string(lua_State *L, int t, const char *k, size_t *len)
{
    const char *s = opt_field_string(L, t, k, len);
    if (!s)
        luaL_error(L, "sign: field '%s' is required", k);
    return s;
}

static int opt_field_bool(lua_State *L, int t, const char *k, int dflt)
{
    int v = dflt;
    lua_getfield(L, t, k);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TBOOLEAN)
            luaL_error(L, "sign: field '%s' must be a boolean", k);
        v = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

static int signed_gc(lua_State *L)
{
    dms_sigv4_result *r = luaL_checkudata(L, 1, SIGNED_MT);
    dms_sigv4_result_free(r);
    return 0;
}

/* Collects the headers (an array of {name, value} pairs, or a name -> value map)
 * into an array owned by a userdata, left on the stack. */
static dms_sigv4_header *collect_headers(lua_State *L, int req, size_t *count)
{
    dms_sigv4_header *hs;
    size_t n = 0, i = 0;
    int headers;

    lua_getfield(L, req, "headers");
    headers = lua_gettop(L);
    if (lua_isnil(L, headers)) {
        *count = 0;
        return lua_newuserdata(L, sizeof *hs);
    }
    if (!lua_istable(L, headers))
        luaL_error(L, "sign: field 'headers' must be a table");
    lua_pushnil(L);
    while (lua_next(L, headers) != 0) {
        n++;
        lua_pop(L, 1);
    }
    hs = lua_newuserdata(L, (n ? n : 1) * sizeof *hs);
    lua_pushnil(L);
    while (lua_next(L, headers) != 0) {
        int pair = lua_istable(L, -1);
        if (pair) {
            lua_rawgeti(L, -1, 1);
            lua_rawgeti(L, -2, 2);
        } else {
            lua_pushvalue(L, -2);
            lua_pushvalue(L, -2);
        }
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "sign: header #%d must be a string name and a string value", (int)i + 1);
        hs[i].name = lua_tolstring(L, -2, &hs[i].name_len);
        hs[i].value = lua_tolstring(L, -1, &hs[i].value_len);
        /* pairs are kept alive by the headers table; map keys/values likewise */
        lua_pop(L, 3);
        i++;
    }
    /* leave only the userdata above the headers table */
    *count = i;
    return hs;
}

static int l_sign(lua_State *L)
{
    dms_sigv4_request req;
    dms_sigv4_result *res;
    dms_sigv4_cache *cache = lua_touserdata(L, lua_upvalueindex(UV_CACHE));
    char err[256];
    int rc, n;
    size_t len;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    memset(&req, 0, sizeof req);
    req.method = field_string(L, 1, "method", &len);
    req.path = opt_field_string(L, 1, "path", &len);
    req.query = opt_field_string(L, 1, "query", &len);
    req.body = opt_field_string(L, 1, "body", &req.body_len);
    req.region = field_string(L, 1, "region", &len);
    req.service = field_string(L, 1, "service", &len);
    req.access_key = field_string(L, 1, "access_key", &len);
    req.secret_key = field_string(L, 1, "secret_key", &req.secret_key_len);
    req.session_token = opt_field_string(L, 1, "session_token", &len);
    req.normalize_path = opt_field_bool(L, 1, "normalize_path", 1);
    req.sign_session_token = opt_field_bool(L, 1, "sign_session_token", 1);
    lua_getfield(L, 1, "time");
    if (lua_isnil(L, -1))
        req.time = (int64_t)time(NULL);
    else if (dms_compat_isinteger(L, -1))
        req.time = (int64_t)lua_tonumber(L, -1);
    else
        return luaL_error(L, "sign: field 'time' must be an integer (epoch seconds)");
    lua_pop(L, 1);
    req.headers = collect_headers(L, 1, &req.nheaders);

    /* the result's strings are owned by a userdata from here on */
    res = lua_newuserdata(L, sizeof *res);
    memset(res, 0, sizeof *res);
    luaL_getmetatable(L, SIGNED_MT);
    lua_setmetatable(L, -2);

    rc = dms_sigv4_sign(&req, cache, res, err, sizeof err);
    if (rc == DMS_SIGV4_EINVAL)
        return luaL_error(L, "sign: %s", err);
    if (rc != DMS_SIGV4_OK)
        return luaL_error(L, "sign failed: %s", err);

    lua_createtable(L, 0, 6);
    lua_pushstring(L, res->canonical_request);
    lua_setfield(L, -2, "canonical_request");
    lua_pushstring(L, res->string_to_sign);
    lua_setfield(L, -2, "string_to_sign");
    lua_pushstring(L, res->authorization);
    lua_setfield(L, -2, "authorization");
    lua_pushstring(L, res->signature);
    lua_setfield(L, -2, "signature");
    lua_pushstring(L, res->amz_date);
    lua_setfield(L, -2, "amz_date");

    lua_createtable(L, 3, 0);
    n = 0;
#define ADD_HEADER(name, value) do { \
        lua_createtable(L, 2, 0); \
        lua_pushliteral(L, name); \
        lua_rawseti(L, -2, 1); \
        lua_pushstring(L, value); \
        lua_rawseti(L, -2, 2); \
        lua_rawseti(L, -2, ++n); \
    } while (0)
    if (res->date_added)
        ADD_HEADER("X-Amz-Date", res->amz_date);
    if (res->token_added)
        ADD_HEADER("X-Amz-Security-Token", req.session_token);
    ADD_HEADER("Authorization", res->authorization);
#undef ADD_HEADER
    lua_setfield(L, -2, "headers");
    dms_sigv4_result_free(res);
    return 1;
}

static int cache_gc(lua_State *L)
{
    dms_sigv4_cache *c = luaL_checkudata(L, 1, CACHE_MT);
    dms_sigv4_cache_clear(c);
    return 0;
}

static int l_sign_cache_stats(lua_State *L)
{
    dms_sigv4_cache *cache = lua_touserdata(L, lua_upvalueindex(UV_CACHE));
    lua_createtable(L, 0, 2);
    dms_compat_pushint64(L, (long long)cache->hits);
    lua_setfield(L, -2, "hits");
    dms_compat_pushint64(L, (long long)cache->misses);
    lua_setfield(L, -2, "misses");
    return 1;
}

/* ------------------------------------------------------------------ */
/* http                                                                */

typedef struct {
    dms_http *h;
} http_ud;

static http_ud *check_http(lua_State *L)
{
    http_ud *u = luaL_checkudata(L, 1, HTTP_MT);
    if (!u->h)
        luaL_error(L, "http handle is closed");
    return u;
}

static int http_close(lua_State *L)
{
    http_ud *u = luaL_checkudata(L, 1, HTTP_MT);
    if (u->h) {
        dms_http_free(u->h);
        u->h = NULL;
    }
    return 0;
}

static int l_http(lua_State *L)
{
    http_ud *u = lua_newuserdata(L, sizeof *u);
    u->h = NULL;
    luaL_getmetatable(L, HTTP_MT);
    lua_setmetatable(L, -2);
    u->h = dms_http_new();
    if (!u->h)
        return luaL_error(L, "cannot create a curl handle");
    return 1;
}

static long opt_ms(lua_State *L, int t, const char *k, long dflt)
{
    long v = dflt;
    lua_getfield(L, t, k);
    if (!lua_isnil(L, -1)) {
        lua_Number s = luaL_checknumber(L, -1);
        if (!(s > 0 && s < 86400 * 7))
            luaL_error(L, "request: '%s' must be a positive number of seconds", k);
        v = (long)(s * 1000 + 0.5);
        if (v < 1)
            v = 1;
    }
    lua_pop(L, 1);
    return v;
}

static int has_crlf(const char *s, size_t n)
{
    return memchr(s, '\r', n) || memchr(s, '\n', n) || memchr(s, '\0', n);
}

static void set_string(lua_State *L, const char *k, const char *v, size_t n)
{
    lua_pushlstring(L, v, n);
    lua_setfield(L, -2, k);
}

/* Turns the raw header block into {lowercase-name = value}, duplicates joined by ", ". */
static void push_headers(lua_State *L, const char *p, size_t len)
{
    const char *end = p + len;
    lua_newtable(L);
    /* skip the status line */
    while (p < end && *p != '\n')
        p++;
    while (p < end) {
        const char *line = ++p, *eol, *colon, *v, *ve;
        luaL_Buffer b;
        size_t i;
        while (p < end && *p != '\n')
            p++;
        eol = p;
        ve = eol;
        if (ve > line && ve[-1] == '\r')
            ve--;
        colon = memchr(line, ':', (size_t)(ve - line));
        if (!colon || colon == line)
            continue;
        v = colon + 1;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        luaL_buffinit(L, &b);
        for (i = 0; i < (size_t)(colon - line); i++) {
            char c = line[i];
            luaL_addchar(&b, (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c);
        }
        luaL_pushresult(&b);
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
        if (lua_isstring(L, -1)) {
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, v, (size_t)(ve - v));
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, v, (size_t)(ve - v));
        }
        lua_rawset(L, -3);
    }
}

/*
 * handle:request{url=, method=, headers=, body=, connect_timeout=, timeout=,
 *                max_response_bytes=, ca_file=, insecure=}
 *   -> {status=, reason=, headers=, body=, new_connections=, local_port=, elapsed=}
 *    | nil, err   (err.kind = "transport")
 */
static int http_request(lua_State *L)
{
    http_ud *u = check_http(L);
    dms_http_request req;
    dms_http_response res;
    dms_http_status st;
    const char **lines;
    size_t n = 0, i = 0;
    int headers;

    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    memset(&req, 0, sizeof req);
    lua_getfield(L, 2, "url");
    req.url = luaL_checkstring(L, -1);
    lua_getfield(L, 2, "method");
    req.method = luaL_optstring(L, -1, "POST");
    {
        const char *m = req.method;
        if (!*m)
            return luaL_error(L, "request: method must not be empty");
        for (; *m; m++)
            if (!((*m >= 'A' && *m <= 'Z') || *m == '-' || *m == '_'))
                return luaL_error(L, "request: method must be an HTTP method name such as POST");
    }
    lua_getfield(L, 2, "body");
    req.body = luaL_optlstring(L, -1, "", &req.body_len);
    lua_getfield(L, 2, "ca_file");
    req.ca_file = luaL_optstring(L, -1, NULL);
    lua_getfield(L, 2, "insecure");
    req.insecure = lua_toboolean(L, -1);
    lua_getfield(L, 2, "fresh_connect");
    req.fresh_connect = lua_toboolean(L, -1);
    lua_getfield(L, 2, "max_response_bytes");
    if (!lua_isnil(L, -1)) {
        lua_Number m = luaL_checknumber(L, -1);
        if (!(m >= 1 && m <= 1099511627776.0))
            return luaL_error(L, "request: 'max_response_bytes' must be between 1 and 2^40");
        req.max_response_bytes = (size_t)m;
    }
    lua_pop(L, 1);
    req.connect_timeout_ms = opt_ms(L, 2, "connect_timeout", 5000);
    req.timeout_ms = opt_ms(L, 2, "timeout", 60000);
    if (has_crlf(req.url, strlen(req.url)))
        return luaL_error(L, "request: url contains CR, LF or NUL");

    /* "Name: value" lines, kept alive in a table on the stack */
    lua_getfield(L, 2, "headers");
    headers = lua_gettop(L);
    lua_newtable(L);
    if (lua_istable(L, headers)) {
        lua_pushnil(L);
        while (lua_next(L, headers) != 0) {
            size_t nl, vl;
            const char *nm, *vv;
            if (lua_istable(L, -1)) {
                lua_rawgeti(L, -1, 1);
                lua_rawgeti(L, -2, 2);
            } else {
                lua_pushvalue(L, -2);
                lua_pushvalue(L, -2);
            }
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                return luaL_error(L, "request: headers must be strings");
            nm = lua_tolstring(L, -2, &nl);
            vv = lua_tolstring(L, -1, &vl);
            if (nl == 0 || has_crlf(nm, nl) || memchr(nm, ':', nl) || has_crlf(vv, vl))
                return luaL_error(L, "request: header names and values must not contain CR, LF, NUL (or ':' in a name)");
            lua_pushfstring(L, "%s: %s", nm, vv);
            lua_rawseti(L, headers + 1, (int)++n);
            lua_pop(L, 3);
        }
    }
    lines = lua_newuserdata(L, (n ? n : 1) * sizeof *lines);
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, headers + 1, (int)i + 1);
        lines[i] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    req.headers = lines;
    req.nheaders = n;

    /* libcurl runs here: no Lua call until it returns */
    st = dms_http_perform(u->h, &req, &res);

    if (st != DMS_HTTP_OK) {
        const char *code;
        switch (st) {
        case DMS_HTTP_TIMEOUT:   code = "Timeout"; break;
        case DMS_HTTP_CONNECT:   code = "ConnectionError"; break;
        case DMS_HTTP_TLS:       code = "TLSError"; break;
        case DMS_HTTP_TOO_LARGE: code = "ResponseTooLarge"; break;
        case DMS_HTTP_RECV:      code = "ConnectionLost"; break;
        case DMS_HTTP_BAD_INPUT: code = "BadRequest"; break;
        case DMS_HTTP_NOMEM:     code = "OutOfMemory"; break;
        default:                 code = "HTTPError"; break;
        }
        /* what happened only; dms.errors says what it means for a retry */
        lua_pushnil(L);
        dms_push_error(L, "transport", code, res.error ? res.error : "HTTP exchange failed");
        lua_pushboolean(L, res.sent);
        lua_setfield(L, -2, "sent");
        return 2;
    }

    lua_createtable(L, 0, 7);
    lua_pushinteger(L, (lua_Integer)res.status);
    lua_setfield(L, -2, "status");
    set_string(L, "reason", res.reason ? res.reason : "", res.reason ? res.reason_len : 0);
    push_headers(L, res.headers, res.headers_len);
    lua_setfield(L, -2, "headers");
    set_string(L, "body", res.body, res.body_len);
    lua_pushinteger(L, (lua_Integer)res.new_connections);
    lua_setfield(L, -2, "new_connections");
    lua_pushinteger(L, (lua_Integer)res.local_port);
    lua_setfield(L, -2, "local_port");
    lua_pushnumber(L, (lua_Number)res.total_seconds);
    lua_setfield(L, -2, "elapsed");
    return 1;
}

static int http_tostring(lua_State *L)
{
    http_ud *u = luaL_checkudata(L, 1, HTTP_MT);
    lua_pushfstring(L, "dms.core.http (%s)", u->h ? "open" : "closed");
    return 1;
}

/* ------------------------------------------------------------------ */
/* misc                                                                */

static int l_error(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(DMS_UV_ERRMT));
    lua_setmetatable(L, 1);
    lua_getfield(L, 1, "retryable");
    if (lua_isnil(L, -1)) {
        lua_pushboolean(L, 0);
        lua_setfield(L, 1, "retryable");
    }
    lua_settop(L, 1);
    return 1;
}

/* now() -> epoch seconds with a fraction (CLOCK_REALTIME) */
static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* monotonic() -> seconds from an arbitrary start, never going back */
static int l_monotonic(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* sleep(seconds): blocks the thread; the Lua layer swaps it for ngx.sleep in nginx */
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

/* ------------------------------------------------------------------ */
/* files: what the workflow needs to survive a crash                   */

#define LOCK_MT "dms.core.lock"

static int push_errno(lua_State *L, const char *what, const char *path)
{
    int e = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s: %s", what, path, strerror(e));
    return 2;
}

/*
 * write_file_atomic(path, data) -> true | nil, msg
 * Writes PATH.tmp.PID, fsyncs it, renames it over path and fsyncs the
 * directory: after a crash the file holds the old or the new data, whole.
 */
static int l_write_file_atomic(lua_State *L)
{
    size_t plen, len, off = 0;
    const char *path = luaL_checklstring(L, 1, &plen);
    const char *data = luaL_checklstring(L, 2, &len);
    const char *tmp, *slash;
    int fd, dfd;

    tmp = lua_pushfstring(L, "%s.tmp.%d", path, (int)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return push_errno(L, "cannot create", tmp);
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            errno = e;
            return push_errno(L, "cannot write", tmp);
        }
        off += (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return push_errno(L, "cannot sync", tmp);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return push_errno(L, "cannot rename onto", path);
    }
    slash = strrchr(path, '/');
    if (slash)
        lua_pushlstring(L, path, slash == path ? 1 : (size_t)(slash - path));
    else
        lua_pushliteral(L, ".");
    dfd = open(lua_tostring(L, -1), O_RDONLY);
    if (dfd >= 0) {
        fsync(dfd);             /* the rename itself reaches the disk */
        close(dfd);
    }
    lua_pushboolean(L, 1);
    return 1;
}

typedef struct {
    int fd;
} lock_ud;

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
 * lock(path) -> lock | nil, msg, holder_pid
 * An exclusive flock() on path, which holds our pid. The kernel drops it when
 * the process dies, so a killed runbook leaves no stale lock. lock:release(),
 * __gc and __close unlock.
 */
static int l_lock(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lock_ud *u = lua_newuserdata(L, sizeof *u);
    char buf[32];
    int n;

    u->fd = -1;
    luaL_getmetatable(L, LOCK_MT);
    lua_setmetatable(L, -2);
    u->fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (u->fd < 0)
        return push_errno(L, "cannot open lock", path);
    if (flock(u->fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        ssize_t r = read(u->fd, buf, sizeof buf - 1);
        close(u->fd);
        u->fd = -1;
        if (e != EWOULDBLOCK) {
            errno = e;
            return push_errno(L, "cannot lock", path);
        }
        buf[r > 0 ? r : 0] = '\0';
        lua_pushnil(L);
        lua_pushfstring(L, "%s is locked by process %d", path, (int)atol(buf));
        lua_pushinteger(L, (lua_Integer)atol(buf));
        return 3;
    }
    n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (ftruncate(u->fd, 0) != 0 || pwrite(u->fd, buf, (size_t)n, 0) != n) {
        int e = errno;
        close(u->fd);           /* releases the lock at once, not at collection */
        u->fd = -1;
        errno = e;
        return push_errno(L, "cannot write lock", path);
    }
    return 1;
}

static int l_pid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

/* isatty(fd) -> boolean (1 = standard output) */
static int l_isatty(lua_State *L)
{
    lua_pushboolean(L, isatty((int)luaL_optinteger(L, 1, 1)));
    return 1;
}

static int l_sha256_hex(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char hex[65];
    if (dms_sha256_hex(s, len, hex) != 0)
        return luaL_error(L, "SHA-256 failed");
    lua_pushstring(L, hex);
    return 1;
}

static const luaL_Reg http_methods[] = {
    {"request", http_request},
    {"close", http_close},
    {NULL, NULL}
};

static const luaL_Reg core_funcs[] = {
    {"sign", l_sign},
    {"sign_cache_stats", l_sign_cache_stats},
    {"build", dms_shape_build},
    {"parse", dms_shape_parse},
    {"timestamp", dms_shape_timestamp},
    {"error", l_error},
    {"http", l_http},
    {"sha256_hex", l_sha256_hex},
    {"now", l_now},
    {"monotonic", l_monotonic},
    {"sleep", l_sleep},
    {"write_file_atomic", l_write_file_atomic},
    {"lock", l_lock},
    {"pid", l_pid},
    {"isatty", l_isatty},
    {NULL, NULL}
};

DMS_API int luaopen_dms_core(lua_State *L);

DMS_API int luaopen_dms_core(lua_State *L)
{
    dms_sigv4_cache *cache;
    int uv, i;

    if (dms_http_global_init() != 0)
        return luaL_error(L, "libcurl initialisation failed");

    luaL_newmetatable(L, SIGNED_MT);
    lua_pushcfunction(L, signed_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, signed_gc);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);

    luaL_newmetatable(L, LOCK_MT);
    lua_pushcfunction(L, lock_release);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, lock_release);
    lua_setfield(L, -2, "__close");
    lua_newtable(L);
    lua_pushcfunction(L, lock_release);
    lua_setfield(L, -2, "release");
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    luaL_newmetatable(L, CACHE_MT);
    lua_pushcfunction(L, cache_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, cache_gc);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);

    /* upvalues: a private cjson instance's encode and decode, the error
     * metatable, the key cache; shared by the module's functions and methods */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "new");
    lua_call(L, 0, 1);
    lua_remove(L, -2);
    lua_getfield(L, -1, "encode_number_precision");
    lua_pushinteger(L, 14);     /* the most lua-cjson 2.1 allows */
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "encode_invalid_numbers");
    lua_pushboolean(L, 0);
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "encode_sparse_array");
    lua_pushboolean(L, 0);
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "encode");
    lua_getfield(L, -2, "decode");
    lua_remove(L, -3);
    dms_errmt_init(L);
    cache = lua_newuserdata(L, sizeof *cache);
    memset(cache, 0, sizeof *cache);
    luaL_getmetatable(L, CACHE_MT);
    lua_setmetatable(L, -2);
    uv = lua_gettop(L) - 3;

    luaL_newmetatable(L, HTTP_MT);
    lua_pushcfunction(L, http_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, http_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, http_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_newtable(L);
    for (i = 0; i < 4; i++)
        lua_pushvalue(L, uv + i);
    dms_compat_setfuncs(L, http_methods, 4);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    lua_newtable(L);                        /* the module */
    lua_insert(L, uv);
    dms_compat_setfuncs(L, core_funcs, 4);

    lua_pushliteral(L, DMS_CORE_VERSION);
    lua_setfield(L, -2, "_VERSION");
    lua_pushstring(L, dms_http_version());
    lua_setfield(L, -2, "curl_version");
    return 1;
}
