/* lua/vm.c: creates the LuaJIT state, sets the module path and runs moonwatch.cli. */
#include "lua/vm.h"

#include <ev.h>
#include <lauxlib.h>
#include <limits.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/watchdog.h"
#include "lua/boundary.h"

static int mw_file_exists(const char *dir, const char *rel) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/%s", dir, rel) >= (int)sizeof path) return 0;
  return access(path, R_OK) == 0;
}

/* Finds the Lua modules: the source tree when the binary is the one in the
 * build tree, else <bindir>/../share/lua/5.1 (make install, luarocks), else the
 * configured install directory. Returns 0 and fills lua_dir/stdlib_dir. */
static int mw_find_modules(char *lua_dir, char *stdlib_dir, size_t n) {
  char exe[PATH_MAX], bindir[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len <= 0) return -1;
  exe[len] = '\0';
  snprintf(bindir, sizeof bindir, "%s", exe);
  char *slash = strrchr(bindir, '/');
  if (slash) *slash = '\0';

  char real_build[PATH_MAX];
  if (realpath(MW_BUILD_DIR, real_build) && strcmp(real_build, bindir) == 0 &&
      mw_file_exists(MW_SOURCE_DIR, "lua/moonwatch/cli.lua")) {
    snprintf(lua_dir, n, "%s/lua", MW_SOURCE_DIR);
    snprintf(stdlib_dir, n, "%s/stdlib", MW_SOURCE_DIR);
    return 0;
  }
  char candidate[PATH_MAX + 32];
  if (snprintf(candidate, sizeof candidate, "%s/../share/lua/5.1", bindir) >= (int)sizeof candidate)
    return -1;
  const char *dirs[] = {candidate, MW_INSTALL_LUADIR};
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
    char real[PATH_MAX];
    if (realpath(dirs[i], real) && mw_file_exists(real, "moonwatch/cli.lua")) {
      if (snprintf(lua_dir, n, "%s", real) >= (int)n ||
          snprintf(stdlib_dir, n, "%s/moonwatch/stdlib", real) >= (int)n)
        return -1;
      return 0;
    }
  }
  return -1;
}

static int mw_cli(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = lua_touserdata(L, 2);
  const char *lua_dir = lua_tostring(L, 3), *stdlib_dir = lua_tostring(L, 4);

  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", lua_dir, lua_dir, lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 1);
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_moonwatch_core);
  lua_setfield(L, -2, "moonwatch.core");
  lua_pushcfunction(L, luaopen_moonwatch_httpd);
  lua_setfield(L, -2, "moonwatch.httpd");
  lua_pushcfunction(L, luaopen_moonwatch_httpc);
  lua_setfield(L, -2, "moonwatch.httpc");
  lua_pop(L, 2);

  lua_getglobal(L, "require");
  lua_pushliteral(L, "moonwatch.cli");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "main");
  lua_createtable(L, argc, 0);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_createtable(L, 0, 2);
  lua_pushstring(L, lua_dir);
  lua_setfield(L, -2, "lua");
  lua_pushstring(L, stdlib_dir);
  lua_setfield(L, -2, "stdlib");
  lua_call(L, 2, 2);
  return 2;
}

/* Raises the soft open-files limit to the hard one (at most 2^20), as Go
 * programs such as Prometheus and Alloy do at start: a collector holds many
 * sockets (targets, HTTP clients) and systemd's soft default is 1024. */
static void mw_raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (1u << 20) ? (1u << 20) : rl.rlim_max;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
    rl.rlim_cur = want;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int mw_vm_main(int argc, char **argv) {
  mw_raise_nofile();
  char lua_dir[PATH_MAX], stdlib_dir[PATH_MAX];
  if (mw_find_modules(lua_dir, stdlib_dir, sizeof lua_dir) != 0) {
    fprintf(stderr,
            "moonwatch: cannot find the moonwatch Lua modules (looked in %s/lua, "
            "<bindir>/../share/lua/5.1 and %s)\n",
            MW_SOURCE_DIR, MW_INSTALL_LUADIR);
    return 70;
  }
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "moonwatch: cannot create the Lua state (out of memory)\n");
    return 70;
  }
  luaL_openlibs(L);
  mw_lua_current = L;

  int code = 1;
  lua_pushcfunction(L, mw_cli);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  lua_pushstring(L, lua_dir);
  lua_pushstring(L, stdlib_dir);
  /* mw_cli leaves (exit code, run loop?) */
  lua_getglobal(L, "debug");
  lua_getfield(L, -1, "traceback");
  lua_replace(L, -2);
  lua_insert(L, 1);
  if (lua_pcall(L, 4, 2, 1) != 0) {
    fprintf(stderr, "moonwatch: %s\n", lua_tostring(L, -1));
  } else {
    code = (int)luaL_optinteger(L, -2, 0);
    if (lua_toboolean(L, -1)) {
      mw_lua_exit_code = code;
      ev_run(EV_DEFAULT, 0);
      code = mw_lua_exit_code;
    }
  }
  lua_close(L);
  mw_watchdog_exit_expected();
  return code;
}
