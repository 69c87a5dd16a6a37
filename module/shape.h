/*
 * Lua tables <-> DMS request and response shapes, driven by the model table
 * of lua/dms/model.lua (generated from the AWS API model):
 * validation and timestamps.
 */
#ifndef DMS_SHAPE_H
#define DMS_SHAPE_H

#include <lua.h>

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)   /* only the luaopen_ functions are exported */
#endif

/*
 * Registers into the table at the top of the stack:
 *   build(model, operation, params) -> request | nil, err
 *     validates params against the operation's input shape and serializes them
 *   parse(model, operation, status, headers, body) -> result | nil, err
 *     a 2xx body becomes the output shape as Lua tables; anything else an error
 *   timestamp(value) -> epoch seconds | nil, err
 *     the conversion used for timestamp members
 * Needs lua-cjson (a private instance decodes, and encodes the request text).
 */
void dms_shape_open(lua_State *L);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
