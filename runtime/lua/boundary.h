/* runtime/lua/: the C<->Lua bridge, the only C that includes lua.h: the binary's main, the VM,
 * the event loop as Lua sees it (core.c) and the HTTP client and server modules.
 *
 * lua/boundary.h: shared by the files of runtime/lua/, the C<->Lua boundary. */
#ifndef MW_LUA_BOUNDARY_H
#define MW_LUA_BOUNDARY_H

#include <lua.h>

/* The Lua thread that event-loop callbacks run on: the main state, or the
 * caller of moonwatch.core.run() while that call lasts. */
extern lua_State *mw_lua_current;
/* Exit code set by moonwatch.core.stop(). */
extern int mw_lua_exit_code;

/* Calls the function below nargs arguments on the stack in protected mode
 * with a traceback. On error the message is handed to the error hook set by
 * moonwatch.core.on_error (or printed on stderr) with `where` naming the
 * callback, and -1 is returned; out of memory aborts. Pops function and
 * arguments; leaves no results. */
int mw_lua_pcall(lua_State *L, int nargs, const char *where);

/* The C module moonwatch.core (loop, timers, signals, io). */
int luaopen_moonwatch_core(lua_State *L);

/* The C module moonwatch.httpd (the HTTP server on the loop). */
int luaopen_moonwatch_httpd(lua_State *L);

/* The C module moonwatch.httpc (the HTTP client, libcurl multi on the loop). */
int luaopen_moonwatch_httpc(lua_State *L);

#endif
