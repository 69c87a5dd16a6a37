/*
 * Lua tables <-> DMS request and response shapes, driven by the model table
 * of lua/dms/model.lua (generated from the AWS API model):
 * validation, timestamps, and the error values of the whole module.
 */
#ifndef DMS_SHAPE_H
#define DMS_SHAPE_H

#include <lua.h>

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)   /* only luaopen_dms_core is exported */
#endif

/* Upvalues shared by the functions of dms.core that need JSON or errors. */
#define DMS_UV_ENCODE 1     /* a private cjson instance's encode */
#define DMS_UV_DECODE 2     /* ... and decode */
#define DMS_UV_ERRMT  3     /* the metatable of error values */

/*
 * Pushes an error value: a table {kind=, code=, message=, retryable=false}
 * with the error metatable. Must run inside a C function that has the
 * upvalues above.
 */
void dms_push_error(lua_State *L, const char *kind, const char *code, const char *message);

/* The error metatable's functions (__tostring, __index). */
void dms_errmt_init(lua_State *L);

/* Parses an ISO-8601 date-time into epoch seconds; returns 0 on success. */
int dms_parse_iso8601(const char *s, size_t len, double *out);

/*
 * build(model, operation, params) -> request | nil, err
 * Validates params against the operation's input shape and serializes them.
 */
int dms_shape_build(lua_State *L);

/*
 * parse(model, operation, status, headers, body) -> result | nil, err
 * A 2xx body becomes the output shape as Lua tables; anything else an error.
 */
int dms_shape_parse(lua_State *L);

/* timestamp(value) -> epoch seconds | nil, err: the conversion used for TStamp members. */
int dms_shape_timestamp(lua_State *L);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
