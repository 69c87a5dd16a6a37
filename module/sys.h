/* Clock, sleep, pid, isatty, atomic file write and flock for dms.core. */
#ifndef DMS_SYS_H
#define DMS_SYS_H

#include <lua.h>

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)   /* only the luaopen_ functions are exported */
#endif

/* Registers now, monotonic, sleep, pid, isatty, write_file_atomic and lock
 * into the table at the top of the stack. */
void dms_sys_open(lua_State *L);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
