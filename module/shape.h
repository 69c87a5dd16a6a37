/*
 * Lua tables <-> the request and response shapes of an AWS JSON protocol
 * model (awsJson1_0, awsJson1_1), driven by the model table that
 * tools/gen_model.py generates (lua/dms/model.lua for DMS): validation,
 * the JSON text (json.c), timestamps and errors.
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
 *     a 2xx body becomes the output shape as Lua tables; anything else an
 *     error (a modeled error's members in err.fields)
 *   timestamp(value) -> epoch seconds | nil, err
 *     the conversion used for timestamp members
 * The model is a plain table, read without metamethods.
 */
void dms_shape_open(lua_State *L);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
