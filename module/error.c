/*
 * Error values: one metatable for the whole package, found in the registry.
 */
#include "error.h"

#include <string.h>

#include <lauxlib.h>

void dms_push_error(lua_State *L, const char *kind, const char *code, const char *message)
{
    lua_createtable(L, 0, 8);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "retryable");
    luaL_getmetatable(L, DMS_ERROR_MT);
    lua_setmetatable(L, -2);
}

int dms_return_error(lua_State *L, const char *kind, const char *code, const char *message)
{
    lua_pushnil(L);
    dms_push_error(L, kind, code, message);
    return 2;
}

/*
 * "service error InvalidResourceStateFault: message (HTTP 400, request id x, attempts 3)"
 * The pieces are concatenated on the stack: a luaL_Buffer cannot be used here,
 * since lua_getfield between buffer calls breaks its stack discipline (Lua 5.4
 * then removes the very string being added once the text outgrows the buffer).
 */
static int err_tostring(lua_State *L)
{
    static const char *const details[][2] = {
        {"status", "HTTP "}, {"request_id", "request id "}, {"attempts", "attempts "}
    };
    int n, first = 1;
    size_t i;
    const char *s;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, 24, "error tostring");
    lua_getfield(L, 1, "kind");
    if (!lua_isstring(L, -1)) {
        lua_pop(L, 1);
        lua_pushliteral(L, "unknown");
    }
    lua_pushliteral(L, " error ");
    lua_getfield(L, 1, "code");
    if (!lua_isstring(L, -1)) {
        lua_pop(L, 1);
        lua_pushliteral(L, "?");
    }
    n = 3;
    lua_getfield(L, 1, "message");
    if (lua_isstring(L, -1)) {
        lua_pushliteral(L, ": ");
        lua_insert(L, -2);
        n += 2;
    } else {
        lua_pop(L, 1);
    }
    for (i = 0; i < sizeof details / sizeof details[0]; i++) {
        lua_getfield(L, 1, details[i][0]);
        if (lua_isstring(L, -1)) {
            lua_pushstring(L, first ? " (" : ", ");
            lua_insert(L, -2);
            lua_pushstring(L, details[i][1]);
            lua_insert(L, -2);
            n += 3;
            first = 0;
        } else {
            lua_pop(L, 1);
        }
    }
    if (!first) {
        lua_pushliteral(L, ")");
        n++;
    }
    lua_concat(L, n);
    /* one line, whatever the message holds */
    s = lua_tostring(L, -1);
    if (strpbrk(s, "\r\n")) {
        luaL_gsub(L, s, "\r\n", " ");
        s = luaL_gsub(L, lua_tostring(L, -1), "\n", " ");
        luaL_gsub(L, s, "\r", " ");
    }
    return 1;
}

/* core.error(t) -> t, with the error metatable and retryable defaulting to false */
static int l_error(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_getmetatable(L, DMS_ERROR_MT);
    lua_setmetatable(L, 1);
    lua_getfield(L, 1, "retryable");
    if (lua_isnil(L, -1)) {
        lua_pushboolean(L, 0);
        lua_setfield(L, 1, "retryable");
    }
    lua_settop(L, 1);
    return 1;
}

void dms_error_open(lua_State *L)
{
    if (luaL_newmetatable(L, DMS_ERROR_MT)) {
        lua_pushcfunction(L, err_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, DMS_ERROR_MT);
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_error);
    lua_setfield(L, -2, "error");
}
