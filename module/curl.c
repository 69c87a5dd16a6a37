/*
 * dms.curl: one HTTP exchange over libcurl, a module of its own so that a
 * process that never uses libcurl (an nginx worker sending through cosockets)
 * never maps it. The exchange itself is in http.c; this file binds it.
 *
 *   curl.http([defaults]) -> handle | nil, err
 *     defaults: connect_timeout=, timeout=, max_response_bytes=, ca_file=,
 *     insecure=, for every request of the handle that does not give its own
 *   handle:request{url=, method=, headers=, body=, connect_timeout=, timeout=,
 *                  max_response_bytes=, ca_file=, insecure=, fresh_connect=}
 *     -> {status=, reason=, headers= {lowercase-name = value}, body=,
 *         new_connections=, local_port=, elapsed=}
 *      | nil, err   (kind "transport", code, message, sent: dms.errors classifies)
 *     A request no server should see (CR/LF in a header, a bad method) is
 *     nil, err BadRequest; wrong argument types raise.
 *   handle:close()   also __gc and __close; safe to call twice
 *   curl.version     libcurl's version line
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "compat.h"
#include "error.h"
#include "http.h"

#define HTTP_MT "dms.curl.http"

/* the settings a request may give, and a handle may give its requests */
typedef struct {
    long connect_timeout_ms;
    long timeout_ms;
    size_t max_response_bytes;      /* 0: the default */
    int insecure;
    const char *ca_file;            /* NULL: the system store */
} limits;

typedef struct {
    dms_http *h;
    limits defaults;
    char *ca_file;                  /* the defaults' CA file, a copy the handle owns */
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
    free(u->ca_file);
    u->ca_file = NULL;
    u->defaults.ca_file = NULL;
    return 0;
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

/* Reads the settings of table t over `dflt`; ca_file points to a string
 * left on the stack (or to dflt's). */
static void read_limits(lua_State *L, int t, const limits *dflt, limits *out)
{
    *out = *dflt;
    out->connect_timeout_ms = opt_ms(L, t, "connect_timeout", dflt->connect_timeout_ms);
    out->timeout_ms = opt_ms(L, t, "timeout", dflt->timeout_ms);
    lua_getfield(L, t, "max_response_bytes");
    if (!lua_isnil(L, -1)) {
        lua_Number m = luaL_checknumber(L, -1);
        if (!(m >= 1 && m <= 1099511627776.0))
            luaL_error(L, "request: 'max_response_bytes' must be between 1 and 2^40");
        out->max_response_bytes = (size_t)m;
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "insecure");
    if (!lua_isnil(L, -1))
        out->insecure = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, t, "ca_file");
    if (!lua_isnil(L, -1))
        out->ca_file = luaL_checkstring(L, -1);     /* stays on the stack */
}

static int l_http(lua_State *L)
{
    static const limits builtin = { 5000, 60000, 0, 0, NULL };
    limits d;
    http_ud *u;
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        read_limits(L, 1, &builtin, &d);
    } else {
        d = builtin;
    }
    u = lua_newuserdata(L, sizeof *u);
    memset(u, 0, sizeof *u);
    luaL_getmetatable(L, HTTP_MT);
    lua_setmetatable(L, -2);
    u->defaults = d;
    u->defaults.ca_file = NULL;
    if (d.ca_file && !(u->ca_file = strdup(d.ca_file)))
        return dms_return_error(L, "transport", "OutOfMemory", "cannot create a curl handle");
    u->defaults.ca_file = u->ca_file;
    u->h = dms_http_new();
    if (!u->h)
        return dms_return_error(L, "transport", "OutOfMemory", "cannot create a curl handle");
    return 1;
}

/* a request no server should see: nil, err (nothing was sent) */
static int bad_request(lua_State *L, const char *message)
{
    lua_pushnil(L);
    dms_push_error(L, "transport", "BadRequest", message);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "sent");
    return 2;
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
    const char *end = p + len, *q;
    int count = 0;
    char lower[64];

    for (q = p; q < end && (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++)
        count++;
    lua_createtable(L, 0, count);
    /* skip the status line */
    while (p < end && *p != '\n')
        p++;
    while (p < end) {
        const char *line = ++p, *eol, *colon, *v, *ve;
        size_t i, n;
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
        n = (size_t)(colon - line);
        if (n <= sizeof lower) {
            for (i = 0; i < n; i++) {
                char c = line[i];
                lower[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
            }
            lua_pushlstring(L, lower, n);
        } else {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (i = 0; i < n; i++) {
                char c = line[i];
                luaL_addchar(&b, (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c);
            }
            luaL_pushresult(&b);
        }
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

#define STACK_HEADERS 32

/* One header pair of the request into hs[i]: {name, value} or name = value
 * (key and value at -2, -1); 0, or the message of a request no server should see. */
static const char *header_pair(lua_State *L, dms_http_header *h)
{
    if (lua_istable(L, -1)) {
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
    } else {
        lua_pushvalue(L, -2);
        lua_pushvalue(L, -2);
    }
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "request: headers must be strings");
    /* the strings stay referenced by the headers table (the pair tables are in it) */
    h->name = lua_tolstring(L, -2, &h->name_len);
    h->value = lua_tolstring(L, -1, &h->value_len);
    lua_pop(L, 3);
    if (h->name_len == 0 || has_crlf(h->name, h->name_len) || memchr(h->name, ':', h->name_len)
        || has_crlf(h->value, h->value_len))
        return "request: header names and values must not contain CR, LF, NUL (or ':' in a name)";
    return NULL;
}

/*
 * handle:request{url=, method=, headers=, body=, connect_timeout=, timeout=,
 *                max_response_bytes=, ca_file=, insecure=, fresh_connect=}
 *   -> {status=, reason=, headers=, body=, new_connections=, local_port=, elapsed=}
 *    | nil, err   (err.kind = "transport")
 */
static int http_request(lua_State *L)
{
    http_ud *u = check_http(L);
    dms_http_request req;
    dms_http_response res;
    dms_http_status st;
    dms_http_header stack[STACK_HEADERS], *hs = stack;
    limits lim;
    size_t n = 0, url_len;
    int headers;
    const char *bad;

    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    memset(&req, 0, sizeof req);
    lua_getfield(L, 2, "url");
    req.url = luaL_checklstring(L, -1, &url_len);
    lua_getfield(L, 2, "method");
    req.method = luaL_optstring(L, -1, "POST");
    {
        const char *m = req.method;
        if (!*m)
            return bad_request(L, "request: method must not be empty");
        for (; *m; m++)
            if (!((*m >= 'A' && *m <= 'Z') || *m == '-' || *m == '_'))
                return bad_request(L, "request: method must be an HTTP method name such as POST");
    }
    lua_getfield(L, 2, "body");
    req.body = luaL_optlstring(L, -1, "", &req.body_len);
    lua_getfield(L, 2, "fresh_connect");
    req.fresh_connect = lua_toboolean(L, -1);
    lua_pop(L, 1);
    read_limits(L, 2, &u->defaults, &lim);
    req.connect_timeout_ms = lim.connect_timeout_ms;
    req.timeout_ms = lim.timeout_ms;
    req.max_response_bytes = lim.max_response_bytes;
    req.insecure = lim.insecure;
    req.ca_file = lim.ca_file;
    if (has_crlf(req.url, url_len))     /* a NUL inside would cut the URL short */
        return bad_request(L, "request: url contains CR, LF or NUL");

    /* the header pairs, pointing at strings the headers table keeps alive */
    lua_getfield(L, 2, "headers");
    headers = lua_gettop(L);
    if (lua_istable(L, headers)) {
        lua_pushnil(L);
        while (lua_next(L, headers) != 0) {
            if (n == STACK_HEADERS && hs == stack) {
                /* more than fit: count them, and start again in a userdata */
                lua_pop(L, 2);
                lua_pushnil(L);
                while (lua_next(L, headers) != 0) {
                    n++;
                    lua_pop(L, 1);
                }
                hs = lua_newuserdata(L, n * sizeof *hs);
                n = 0;
                lua_pushnil(L);
                continue;
            }
            if ((bad = header_pair(L, &hs[n])) != NULL)
                return bad_request(L, bad);
            n++;
        }
    }
    req.headers = hs;
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

static const luaL_Reg http_methods[] = {
    {"request", http_request},
    {"close", http_close},
    {NULL, NULL}
};

DMS_API int luaopen_dms_curl(lua_State *L);

DMS_API int luaopen_dms_curl(lua_State *L)
{
    if (dms_http_global_init() != 0)
        return luaL_error(L, "libcurl initialisation failed");
    lua_newtable(L);                        /* the module */
    dms_error_open(L);
    dms_new_class(L, HTTP_MT, http_methods, http_close);
    lua_pushcfunction(L, http_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_http);
    lua_setfield(L, -2, "http");
    lua_pushstring(L, dms_http_version());
    lua_setfield(L, -2, "version");
    return 1;
}
