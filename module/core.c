/*
 * dms.core: the module table and the signer's bindings. The work is done in
 * sigv4.c (signing), shape.c (conversion), sys.c (clock, files, locks) and
 * error.c (error values); libcurl is the separate module dms.curl (curl.c).
 *
 *   core.sign(req) -> signed                     raises on bad input (a programming error)
 *   core.sign_headers(req, headers, n) -> authorization   the client's: pairs into headers
 *   core.sign_cache_stats() -> {hits=, misses=}   the key cache of this module instance
 *   core.sha256_hex(s) -> hex
 *   core.decode_model(json) -> model             the tables of a generated model
 *   core.build(model, op, params) -> request | nil, err         (shape.c)
 *   core.parse(model, op, status, headers, body) -> result | nil, err
 *   core.timestamp(v) -> epoch | nil, err
 *   core.error(t) -> t with the error metatable                 (error.c)
 *   core.now(), core.monotonic(), core.sleep(s), core.pid(), core.isatty([fd]),
 *   core.write_file_atomic(path, data) -> true | nil, err,
 *   core.lock(path) -> lock | nil, err                          (sys.c)
 *
 * The rule at this boundary: a wrong argument type, or a request table for
 * sign that the program assembled wrongly, raises; a runtime failure returns
 * nil and an error value.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <lua.h>
#include <lauxlib.h>

#include "compat.h"
#include "error.h"
#include "json.h"
#include "shape.h"
#include "sigv4.h"
#include "sys.h"

#define DMS_CORE_VERSION "0.1.0"
#define CACHE_MT "dms.core.keycache"

/* the upvalues of sign(), sign_headers() and sign_cache_stats(): the key
 * cache, and the names of the request's fields as Lua strings (made once: a
 * lookup by a string already made costs a fraction of lua_getfield's) */
#define UV_CACHE 1
#define UV_FIELDS 2

enum {
    F_METHOD = 1, F_PATH, F_QUERY, F_BODY, F_REGION, F_SERVICE, F_ACCESS_KEY, F_SECRET_KEY,
    F_SESSION_TOKEN, F_NORMALIZE_PATH, F_SIGN_SESSION_TOKEN, F_TIME, F_HEADERS, F_COUNT
};
static const char *const FIELDS[F_COUNT] = {
    NULL, "method", "path", "query", "body", "region", "service", "access_key", "secret_key",
    "session_token", "normalize_path", "sign_session_token", "time", "headers"
};

/* ------------------------------------------------------------------ */
/* sign                                                                */

/* Pushes t[FIELDS[f]], metamethods included (the request may be a proxy). */
static void get_field(lua_State *L, int t, int f)
{
    lua_rawgeti(L, lua_upvalueindex(UV_FIELDS), f);
    lua_gettable(L, t);
}

static const char *opt_field_string(lua_State *L, int t, int f, size_t *len)
{
    const char *s = NULL;
    get_field(L, t, f);
    if (!lua_isnil(L, -1)) {
        size_t n;
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "sign: field '%s' must be a string", FIELDS[f]);
        s = lua_tolstring(L, -1, &n);
        if (f != F_BODY && memchr(s, '\0', n))
            luaL_error(L, "sign: field '%s' contains NUL", FIELDS[f]);
        if (len)
            *len = n;
    }
    /* the value stays on the stack while the string is used: the request table
     * may not hold it (an __index that builds each value afresh) */
    return s;
}

static const char *field_string(lua_State *L, int t, int f, size_t *len)
{
    const char *s = opt_field_string(L, t, f, len);
    if (!s)
        luaL_error(L, "sign: field '%s' is required", FIELDS[f]);
    return s;
}

static int opt_field_bool(lua_State *L, int t, int f, int dflt)
{
    int v = dflt;
    get_field(L, t, f);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TBOOLEAN)
            luaL_error(L, "sign: field '%s' must be a boolean", FIELDS[f]);
        v = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* An integral number of seconds in 0 .. 9999-12-31T23:59:59Z (3 and 3.0 alike);
 * returns 0 for anything else, converting nothing out of range. */
static int epoch_seconds(lua_State *L, int idx, int64_t *out)
{
    lua_Number d;
    if (lua_type(L, idx) != LUA_TNUMBER)
        return 0;
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        if (i < 0 || i > 253402300799LL)
            return 0;
        *out = (int64_t)i;
        return 1;
    }
#endif
    d = lua_tonumber(L, idx);
    if (!(d >= 0 && d <= 253402300799.0) || d != floor(d))
        return 0;
    *out = (int64_t)d;
    return 1;
}

#define STACK_HEADERS 16

/* Collects the headers (an array of {name, value} pairs, or a name -> value
 * map) into `stack` when they fit, else into an array owned by a userdata
 * pushed on the stack. The strings stay referenced by the headers table,
 * which stays on the stack. */
static dms_sigv4_header *collect_headers(lua_State *L, int req, dms_sigv4_header *stack, size_t *count)
{
    dms_sigv4_header *hs = stack;
    size_t n = 0, i = 0;
    int headers;

    get_field(L, req, F_HEADERS);
    headers = lua_gettop(L);
    *count = 0;
    if (lua_isnil(L, headers))
        return hs;
    if (!lua_istable(L, headers))
        luaL_error(L, "sign: field 'headers' must be a table");
    lua_pushnil(L);
    while (lua_next(L, headers) != 0) {
        if (i == STACK_HEADERS && hs == stack) {
            /* more than fit: count them, and start again in a userdata */
            lua_pop(L, 2);
            n = 0;
            lua_pushnil(L);
            while (lua_next(L, headers) != 0) {
                n++;
                lua_pop(L, 1);
            }
            hs = lua_newuserdata(L, n * sizeof *hs);
            i = 0;
            lua_pushnil(L);
            continue;
        }
        if (lua_istable(L, -1)) {
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
    *count = i;
    return hs;
}

/* {name, value} into the array on top; the value is at index v */
static void push_header(lua_State *L, int n, const char *name, size_t name_len, int v)
{
    lua_createtable(L, 2, 0);
    lua_pushlstring(L, name, name_len);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, v);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, n);
}

/* Signs req with the module's key cache and pushes the Authorization and
 * X-Amz-Date values. Raises on a request the program assembled wrongly. The
 * result's strings live in the cache's buffers: nothing leaks if a push
 * raises, and dms_sigv4_result_free stays the caller's. */
static void sign_push(lua_State *L, const dms_sigv4_request *req, dms_sigv4_result *res)
{
    dms_sigv4_cache *cache = lua_touserdata(L, lua_upvalueindex(UV_CACHE));
    char err[256];
    int rc = dms_sigv4_sign(req, cache, res, err, sizeof err);
    if (rc == DMS_SIGV4_EINVAL)
        luaL_error(L, "sign: %s", err);
    else if (rc != DMS_SIGV4_OK)
        luaL_error(L, "sign failed: %s", err);
    lua_pushlstring(L, res->authorization, res->authorization_len);
    lua_pushlstring(L, res->amz_date, 16);
}

/* Reads the fields of the request table at 1 but its headers into req; the
 * session token (or nil) is left at the top of the stack, the other values
 * below it. */
static void read_request(lua_State *L, dms_sigv4_request *req)
{
    size_t len;
    memset(req, 0, sizeof *req);
    req->method = field_string(L, 1, F_METHOD, &len);
    req->path = opt_field_string(L, 1, F_PATH, &len);
    req->query = opt_field_string(L, 1, F_QUERY, &len);
    req->body = opt_field_string(L, 1, F_BODY, &req->body_len);
    req->region = field_string(L, 1, F_REGION, &len);
    req->service = field_string(L, 1, F_SERVICE, &len);
    req->access_key = field_string(L, 1, F_ACCESS_KEY, &len);
    req->secret_key = field_string(L, 1, F_SECRET_KEY, &req->secret_key_len);
    req->normalize_path = opt_field_bool(L, 1, F_NORMALIZE_PATH, 1);
    req->sign_session_token = opt_field_bool(L, 1, F_SIGN_SESSION_TOKEN, 1);
    get_field(L, 1, F_TIME);
    if (lua_isnil(L, -1))
        req->time = (int64_t)time(NULL);
    else if (!epoch_seconds(L, -1, &req->time))
        luaL_error(L, "sign: field 'time' must be an integer number of epoch seconds "
                      "between 0 and 253402300799 (9999-12-31)");
    lua_pop(L, 1);
    req->session_token = opt_field_string(L, 1, F_SESSION_TOKEN, &len);
}

static int l_sign(lua_State *L)
{
    dms_sigv4_request req;
    dms_sigv4_result res;
    dms_sigv4_header stack[STACK_HEADERS];
    int n, auth, date, token;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, 24, "sign");
    read_request(L, &req);
    token = lua_gettop(L);          /* the token (or nil) stays here */
    req.headers = collect_headers(L, 1, stack, &req.nheaders);
    sign_push(L, &req, &res);
    auth = lua_gettop(L) - 1;
    date = auth + 1;
    lua_createtable(L, 0, 6);
    lua_pushlstring(L, res.canonical_request, res.canonical_request_len);
    lua_setfield(L, -2, "canonical_request");
    lua_pushlstring(L, res.string_to_sign, res.string_to_sign_len);
    lua_setfield(L, -2, "string_to_sign");
    lua_pushvalue(L, auth);
    lua_setfield(L, -2, "authorization");
    lua_pushlstring(L, res.signature, 64);
    lua_setfield(L, -2, "signature");
    lua_pushvalue(L, date);
    lua_setfield(L, -2, "amz_date");

    lua_createtable(L, 3, 0);
    n = 0;
    if (res.date_added)
        push_header(L, ++n, "X-Amz-Date", 10, date);
    if (res.token_added)
        push_header(L, ++n, "X-Amz-Security-Token", 20, token);
    push_header(L, ++n, "Authorization", 13, auth);
    lua_setfield(L, -2, "headers");
    dms_sigv4_result_free(&res);
    return 1;
}

/* Sets headers[i] = {name, value (at v)}: the pair already there when it is
 * a table naming the same header (updated in place), else a new one. */
static void put_pair(lua_State *L, int headers, int i, const char *name, size_t name_len, int v)
{
    lua_rawgeti(L, headers, i);
    if (lua_type(L, -1) == LUA_TTABLE) {
        size_t n;
        const char *s;
        lua_rawgeti(L, -1, 1);
        s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
        lua_pop(L, 1);
        if (s && n == name_len && memcmp(s, name, n) == 0) {
            lua_pushvalue(L, v);
            lua_rawseti(L, -2, 2);
            lua_pop(L, 1);
            return;
        }
    }
    lua_pop(L, 1);
    lua_createtable(L, 2, 0);
    lua_pushlstring(L, name, name_len);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, v);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, headers, i);
}

/*
 * core.sign_headers(req, headers, n) -> authorization
 * The client's signature: what core.sign does, for the headers
 * headers[1..n] ({name, value} pairs; req.headers is not read), with the
 * headers the signature adds (X-Amz-Date, X-Amz-Security-Token when signed
 * with a token, Authorization) written into headers[n + 1 ...] and nothing
 * after them. A pair of the same name already in its place is updated
 * rather than made again; nothing else (canonical request, string to sign)
 * becomes a Lua value. Raises as core.sign does.
 */
static int l_sign_headers(lua_State *L)
{
    dms_sigv4_request req;
    dms_sigv4_result res;
    dms_sigv4_header stack[STACK_HEADERS];
    dms_sigv4_header *hs = stack;
    int i, n, auth, date, token, len;

    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    n = (int)luaL_checkinteger(L, 3);
    len = (int)dms_compat_rawlen(L, 2);
    if (n < 0 || n > len)
        return luaL_argerror(L, 3, "must be a count of the headers' pairs");
    lua_settop(L, 3);
    luaL_checkstack(L, 24, "sign");
    read_request(L, &req);
    token = lua_gettop(L);
    if (n > STACK_HEADERS)
        hs = lua_newuserdata(L, (size_t)n * sizeof *hs);
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, 2, i + 1);
        if (lua_type(L, -1) != LUA_TTABLE)
            return luaL_error(L, "sign: header #%d must be a string name and a string value", i + 1);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "sign: header #%d must be a string name and a string value", i + 1);
        /* the pair stays in headers, which stays on the stack, until the end */
        hs[i].name = lua_tolstring(L, -2, &hs[i].name_len);
        hs[i].value = lua_tolstring(L, -1, &hs[i].value_len);
        lua_pop(L, 3);
    }
    req.headers = hs;
    req.nheaders = (size_t)n;

    /* the pairs are written once nothing is read from headers any more */
    sign_push(L, &req, &res);
    auth = lua_gettop(L) - 1;
    date = auth + 1;
    dms_sigv4_result_free(&res);
    if (res.date_added)
        put_pair(L, 2, ++n, "X-Amz-Date", 10, date);
    if (res.token_added)
        put_pair(L, 2, ++n, "X-Amz-Security-Token", 20, token);
    put_pair(L, 2, ++n, "Authorization", 13, auth);
    for (i = n + 1; i <= len; i++) {
        lua_pushnil(L);
        lua_rawseti(L, 2, i);
    }
    lua_pushvalue(L, auth);
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

/*
 * core.decode_model(text) -> model
 * The Lua tables of a model that tools/gen_model.py wrote as JSON text (a
 * JSON object; nulls are left out). Decoding the text costs a fraction of
 * compiling the same tables as Lua source. Text that is not one JSON object
 * raises: a generated file is wrong, not a runtime failure.
 */
static int l_decode_model(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    dms_jr r;
    lua_settop(L, 1);
    dms_jr_init(&r, s, n);
    if (dms_jr_peek(&r) != '{' || !dms_jr_value(&r, L, 1) || dms_jr_peek(&r) != -1)
        return luaL_error(L, "decode_model: the text is not one JSON object (%s at byte %d)",
                          r.err ? r.err : "text after it", (int)(r.p - s) + 1);
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

static const luaL_Reg sign_funcs[] = {
    {"sign", l_sign},
    {"sign_headers", l_sign_headers},
    {"sign_cache_stats", l_sign_cache_stats},
    {NULL, NULL}
};

/* private userdata: only a __gc (no script ever holds or closes them) */
static void gc_class(lua_State *L, const char *name, lua_CFunction gc)
{
    luaL_newmetatable(L, name);
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
}

DMS_API int luaopen_dms_core(lua_State *L);

DMS_API int luaopen_dms_core(lua_State *L)
{
    dms_sigv4_cache *cache;
    int f;

    gc_class(L, CACHE_MT, cache_gc);

    lua_newtable(L);                        /* the module */
    dms_error_open(L);
    dms_shape_open(L);
    dms_sys_open(L);
    cache = lua_newuserdata(L, sizeof *cache);
    memset(cache, 0, sizeof *cache);
    luaL_getmetatable(L, CACHE_MT);
    lua_setmetatable(L, -2);
    lua_createtable(L, F_COUNT - 1, 0);
    for (f = 1; f < F_COUNT; f++) {
        lua_pushstring(L, FIELDS[f]);
        lua_rawseti(L, -2, f);
    }
    dms_compat_setfuncs(L, sign_funcs, 2);
    lua_pushcfunction(L, l_sha256_hex);
    lua_setfield(L, -2, "sha256_hex");
    lua_pushcfunction(L, l_decode_model);
    lua_setfield(L, -2, "decode_model");
    lua_pushliteral(L, DMS_CORE_VERSION);
    lua_setfield(L, -2, "_VERSION");
    return 1;
}
