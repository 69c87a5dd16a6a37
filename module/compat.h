/*
 * Shims between Lua 5.1/LuaJIT and 5.4. Every name carries the dms_compat_
 * prefix so that nothing here collides with a definition of the Lua headers
 * (LuaJIT 2.1 ships some 5.2 functions of its own).
 */
#ifndef DMS_COMPAT_H
#define DMS_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM >= 502
#define dms_compat_rawlen(L, i) lua_rawlen((L), (i))
#define dms_compat_setfuncs(L, l, n) luaL_setfuncs((L), (l), (n))
#else
#define dms_compat_rawlen(L, i) lua_objlen((L), (i))
/* luaL_setfuncs for 5.1: registers l into the table below the nup upvalues. */
static inline void dms_compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    luaL_checkstack(L, nup + 1, "too many upvalues");
    for (; l->name != NULL; l++) {
        int i;
        for (i = 0; i < nup; i++)
            lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}
#endif

#if LUA_VERSION_NUM >= 503
#define dms_compat_isinteger(L, i) lua_isinteger((L), (i))
#else
static inline int dms_compat_isinteger(lua_State *L, int i)
{
    lua_Number n;
    if (lua_type(L, i) != LUA_TNUMBER)
        return 0;
    n = lua_tonumber(L, i);
    /* range first: casting NaN or a value beyond long long is undefined */
    return n >= -9007199254740992.0 && n <= 9007199254740992.0 && n == (lua_Number)(long long)n;
}
#endif

/* lua_Integer is ptrdiff_t on 5.1; integers that need 64 bits go through this. */
static inline void dms_compat_pushint64(lua_State *L, long long v)
{
#if LUA_VERSION_NUM >= 503
    lua_pushinteger(L, (lua_Integer)v);
#else
    lua_pushnumber(L, (lua_Number)v);
#endif
}

/*
 * A class of userdata: creates the metatable `name` with __gc and __close set
 * to `close` (which must be safe to call twice) and __index set to `methods`,
 * and leaves it on the stack. One setup for every native resource.
 */
static inline void dms_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                                 lua_CFunction close)
{
    luaL_newmetatable(L, name);
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
    lua_newtable(L);
    dms_compat_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
}

#if defined(__GNUC__)
#define DMS_API __attribute__((visibility("default")))
#else
#define DMS_API
#endif

#endif
