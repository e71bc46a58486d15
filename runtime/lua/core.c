/*
 * lua/core.c: the C module moonwatch.core, the event loop as Lua sees it.
 *
 * A handle is a userdata whose first member is the libev watcher (luv's
 * model): an active handle holds a registry reference to itself so it is not
 * collected while the loop may call it, and one trampoline, mw_lua_pcall,
 * runs every callback in protected mode with a traceback.
 */
#include <errno.h>
#include <ev.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/boundary.h"

lua_State *mw_lua_current;
int mw_lua_exit_code;
static int mw_error_hook = LUA_NOREF;

#define MW_HANDLE "moonwatch.handle"

enum { MW_TIMER, MW_SIGNAL, MW_IO };

typedef struct {
  union {
    ev_watcher w;
    ev_timer timer;
    ev_signal signal;
    ev_io io;
  } ev;
  int kind;
  int self_ref; /* LUA_NOREF unless active */
  int cb_ref;
  char name[48];
} mw_handle_t;

static int mw_traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) msg = luaL_typename(L, 1);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int mw_lua_pcall(lua_State *L, int nargs, const char *where) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, mw_traceback);
  lua_insert(L, base);
  int rc = lua_pcall(L, nargs, 0, base);
  if (rc == 0) {
    lua_remove(L, base);
    return 0;
  }
  if (rc == LUA_ERRMEM) {
    fprintf(stderr, "moonwatch: out of memory in %s\n", where);
    abort();
  }
  /* stack: traceback, message */
  if (mw_error_hook != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, mw_error_hook);
    lua_pushvalue(L, -2);
    lua_pushstring(L, where);
    if (lua_pcall(L, 2, 0, 0) != 0) {
      fprintf(stderr, "moonwatch: error in error hook: %s\n", lua_tostring(L, -1));
      fprintf(stderr, "moonwatch: %s: %s\n", where, lua_tostring(L, -2));
      lua_pop(L, 1);
    }
  } else {
    fprintf(stderr, "moonwatch: %s: %s\n", where, lua_tostring(L, -1));
  }
  lua_settop(L, base - 1);
  return -1;
}

static struct ev_loop *mw_loop(void) { return EV_DEFAULT; }

static mw_handle_t *mw_check_handle(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, MW_HANDLE);
}

static void mw_handle_ref(lua_State *L, mw_handle_t *h, int idx) {
  if (h->self_ref == LUA_NOREF) {
    lua_pushvalue(L, idx);
    h->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
}

static void mw_handle_unref(lua_State *L, mw_handle_t *h) {
  if (h->self_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, h->self_ref);
    h->self_ref = LUA_NOREF;
  }
}

static void mw_handle_ev_stop(mw_handle_t *h) {
  switch (h->kind) {
  case MW_TIMER: ev_timer_stop(mw_loop(), &h->ev.timer); break;
  case MW_SIGNAL: ev_signal_stop(mw_loop(), &h->ev.signal); break;
  case MW_IO: ev_io_stop(mw_loop(), &h->ev.io); break;
  }
}

static void mw_handle_ev_start(mw_handle_t *h) {
  switch (h->kind) {
  case MW_TIMER: ev_timer_start(mw_loop(), &h->ev.timer); break;
  case MW_SIGNAL: ev_signal_start(mw_loop(), &h->ev.signal); break;
  case MW_IO: ev_io_start(mw_loop(), &h->ev.io); break;
  }
}

/* Pushes the callback of h; the caller pushes arguments and calls mw_dispatch. */
static lua_State *mw_prepare(mw_handle_t *h) {
  lua_State *L = mw_lua_current;
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->cb_ref);
  if (!ev_is_active(&h->ev.w)) mw_handle_unref(L, h); /* may be collected after the call */
  return L;
}

static void mw_on_timer(EV_P_ ev_timer *w, int revents) {
  (void)loop, (void)revents;
  mw_handle_t *h = (mw_handle_t *)w;
  char where[64];
  snprintf(where, sizeof where, "timer %s", h->name);
  mw_lua_pcall(mw_prepare(h), 0, where);
}

static void mw_on_signal(EV_P_ ev_signal *w, int revents) {
  (void)loop, (void)revents;
  mw_handle_t *h = (mw_handle_t *)w;
  lua_State *L = mw_prepare(h);
  lua_pushinteger(L, w->signum);
  mw_lua_pcall(L, 1, "signal handler");
}

static void mw_on_io(EV_P_ ev_io *w, int revents) {
  (void)loop;
  mw_handle_t *h = (mw_handle_t *)w;
  lua_State *L = mw_prepare(h);
  lua_pushboolean(L, revents & EV_READ);
  lua_pushboolean(L, revents & EV_WRITE);
  mw_lua_pcall(L, 2, "io handler");
}

static mw_handle_t *mw_new_handle(lua_State *L, int kind, int cb_idx) {
  luaL_checktype(L, cb_idx, LUA_TFUNCTION);
  mw_handle_t *h = lua_newuserdata(L, sizeof *h);
  memset(h, 0, sizeof *h);
  h->kind = kind;
  h->self_ref = LUA_NOREF;
  lua_pushvalue(L, cb_idx);
  h->cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  luaL_getmetatable(L, MW_HANDLE);
  lua_setmetatable(L, -2);
  return h;
}

/* core.timer(after, repeat, fn [, name]) -> handle, started */
static int mw_core_timer(lua_State *L) {
  double after = luaL_checknumber(L, 1), repeat = luaL_optnumber(L, 2, 0);
  if (after < 0 || repeat < 0) return luaL_error(L, "timer: negative interval");
  const char *name = luaL_optstring(L, 4, "?");
  mw_handle_t *h = mw_new_handle(L, MW_TIMER, 3);
  snprintf(h->name, sizeof h->name, "%s", name);
  ev_timer_init(&h->ev.timer, mw_on_timer, after, repeat);
  mw_handle_ev_start(h);
  mw_handle_ref(L, h, -1);
  return 1;
}

/* core.signal(signum, fn) -> handle, started */
static int mw_core_signal(lua_State *L) {
  int signum = (int)luaL_checkinteger(L, 1);
  if (signum <= 0 || signum >= NSIG) return luaL_error(L, "signal: bad signal number %d", signum);
  mw_handle_t *h = mw_new_handle(L, MW_SIGNAL, 2);
  ev_signal_init(&h->ev.signal, mw_on_signal, signum);
  mw_handle_ev_start(h);
  mw_handle_ref(L, h, -1);
  return 1;
}

/* core.io(fd, "r"|"w"|"rw", fn(readable, writable)) -> handle, started */
static int mw_core_io(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  const char *mode = luaL_checkstring(L, 2);
  int events = (strchr(mode, 'r') ? EV_READ : 0) | (strchr(mode, 'w') ? EV_WRITE : 0);
  if (fd < 0 || !events) return luaL_error(L, "io: bad fd or mode");
  mw_handle_t *h = mw_new_handle(L, MW_IO, 3);
  ev_io_init(&h->ev.io, mw_on_io, fd, events);
  mw_handle_ev_start(h);
  mw_handle_ref(L, h, -1);
  return 1;
}

static int mw_handle_start(lua_State *L) {
  mw_handle_t *h = mw_check_handle(L, 1);
  if (h->cb_ref == LUA_NOREF) return luaL_error(L, "handle is closed");
  mw_handle_ev_start(h);
  mw_handle_ref(L, h, 1);
  return 0;
}

static int mw_handle_stop(lua_State *L) {
  mw_handle_t *h = mw_check_handle(L, 1);
  mw_handle_ev_stop(h);
  mw_handle_unref(L, h);
  return 0;
}

/* timer:again([repeat]): restart a timer with its repeat interval (libev's ev_timer_again). */
static int mw_handle_again(lua_State *L) {
  mw_handle_t *h = mw_check_handle(L, 1);
  if (h->kind != MW_TIMER || h->cb_ref == LUA_NOREF)
    return luaL_error(L, "again: not an open timer");
  if (!lua_isnoneornil(L, 2)) h->ev.timer.repeat = luaL_checknumber(L, 2);
  ev_timer_again(mw_loop(), &h->ev.timer);
  if (ev_is_active(&h->ev.timer))
    mw_handle_ref(L, h, 1);
  else
    mw_handle_unref(L, h);
  return 0;
}

static int mw_handle_active(lua_State *L) {
  lua_pushboolean(L, ev_is_active(&mw_check_handle(L, 1)->ev.w));
  return 1;
}

static int mw_handle_close(lua_State *L) {
  mw_handle_t *h = mw_check_handle(L, 1);
  mw_handle_ev_stop(h);
  mw_handle_unref(L, h);
  if (h->cb_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, h->cb_ref);
    h->cb_ref = LUA_NOREF;
  }
  return 0;
}

static int mw_core_now(lua_State *L) {
  lua_pushnumber(L, ev_now(mw_loop()));
  return 1;
}

static int mw_core_update_now(lua_State *L) {
  ev_now_update(mw_loop());
  lua_pushnumber(L, ev_now(mw_loop()));
  return 1;
}

/* core.run(): runs the loop until core.stop(); for tests and nested use. */
static int mw_core_run(lua_State *L) {
  lua_State *prev = mw_lua_current;
  mw_lua_current = L;
  ev_run(mw_loop(), 0);
  mw_lua_current = prev;
  lua_pushinteger(L, mw_lua_exit_code);
  return 1;
}

/* core.stop([code]): breaks out of the loop; the process exits with code. */
static int mw_core_stop(lua_State *L) {
  mw_lua_exit_code = (int)luaL_optinteger(L, 1, 0);
  ev_break(mw_loop(), EVBREAK_ALL);
  return 0;
}

/* core.on_error(fn(message, where)): the hook for errors in callbacks. */
static int mw_core_on_error(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (mw_error_hook != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, mw_error_hook);
  lua_pushvalue(L, 1);
  mw_error_hook = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

/* core.ignore_signal(signum): SIG_IGN (SIGPIPE). */
static int mw_core_ignore_signal(lua_State *L) {
  signal((int)luaL_checkinteger(L, 1), SIG_IGN);
  return 0;
}

static int mw_core_strerror(lua_State *L) {
  lua_pushstring(L, strerror((int)luaL_optinteger(L, 1, errno)));
  return 1;
}

int luaopen_moonwatch_core(lua_State *L) {
  static const luaL_Reg handle_methods[] = {
      {"start", mw_handle_start},   {"stop", mw_handle_stop},   {"again", mw_handle_again},
      {"active", mw_handle_active}, {"close", mw_handle_close}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"timer", mw_core_timer},
                                   {"signal", mw_core_signal},
                                   {"io", mw_core_io},
                                   {"now", mw_core_now},
                                   {"update_now", mw_core_update_now},
                                   {"run", mw_core_run},
                                   {"stop", mw_core_stop},
                                   {"on_error", mw_core_on_error},
                                   {"ignore_signal", mw_core_ignore_signal},
                                   {"strerror", mw_core_strerror},
                                   {NULL, NULL}};
  if (luaL_newmetatable(L, MW_HANDLE)) {
    lua_newtable(L);
    luaL_register(L, NULL, handle_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, mw_handle_close);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  luaL_register(L, NULL, funcs);
  static const struct {
    const char *name;
    int num;
  } sigs[] = {{"SIGINT", SIGINT},   {"SIGTERM", SIGTERM}, {"SIGHUP", SIGHUP},
              {"SIGPIPE", SIGPIPE}, {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
    lua_pushinteger(L, sigs[i].num);
    lua_setfield(L, -2, sigs[i].name);
  }
  return 1;
}
