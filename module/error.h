/*
 * Error values of dms: tables {kind=, code=, message=, ...} that share one
 * metatable, registered as "dms.error" (so every module of the package, and
 * the Lua layer through core.error, gives errors the same __tostring).
 */
#ifndef DMS_ERROR_H
#define DMS_ERROR_H

#include <lua.h>

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)   /* only the luaopen_ functions are exported */
#endif

#define DMS_ERROR_MT "dms.error"

/* Pushes {kind=, code=, message=, retryable=false} with the error metatable. */
void dms_push_error(lua_State *L, const char *kind, const char *code, const char *message);

/* Pushes nil and an error value: the `return nil, err` of a C function. */
int dms_return_error(lua_State *L, const char *kind, const char *code, const char *message);

/* Creates the metatable (once per Lua state) and sets module.error (the table
 * at the top of the stack): core.error(t) gives t the metatable. */
void dms_error_open(lua_State *L);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
