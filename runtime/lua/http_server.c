/*
 * lua/http_server.c: the C module moonwatch.httpd, the HTTP server (runtime/http/server.c)
 * as Lua sees it.
 *
 * A server is a userdata holding the libev watchers that drive it (an io
 * watcher on the server's epoll fd and a timer for its timeout) and a
 * registry reference to itself while open, as moonwatch.core handles do.
 * Each complete request calls the Lua handler through mw_lua_pcall with a
 * request userdata: fields method, path, query, headers (lowercased names),
 * body, and the method respond(). The handler returns status, body, headers
 * to answer at once, or nothing and calls req:respond() later (from a
 * coroutine). An error in the handler answers 500; a request nobody answers
 * gets 503 after the answer timeout, or 500 when its userdata is collected.
 */
#include <ctype.h>
#include <ev.h>
#include <lauxlib.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"
#include "http/server.h"
#include "lua/boundary.h"

#define MW_SERVER "moonwatch.httpd.server"
#define MW_REQUEST "moonwatch.httpd.request"
#define MW_DEFAULT_CONTENT_TYPE "text/plain; charset=utf-8"

/* What the protected handler call left for on_request. */
enum { MW_OUTCOME_ERROR, MW_OUTCOME_ANSWERED, MW_OUTCOME_LATER };

typedef struct {
  ev_io io; /* first: the watcher is the handle */
  ev_timer timer;
  mw_httpd_t *h;
  int self_ref;    /* LUA_NOREF unless open */
  int handler_ref; /* LUA_NOREF once closed */
  int running;     /* inside mw_httpd_run_once */
  int close_pending;
  int outcome;
} mw_lserver_t;

typedef struct {
  mw_httpd_req_t *req; /* NULL once the server forgot the request */
  mw_lserver_t *srv;
} mw_lreq_t;

static struct ev_loop *mw_loop(void) { return EV_DEFAULT; }

/* Sets the timer to the server's next deadline (after each run and answer). */
static void mw_lserver_rearm(mw_lserver_t *s) {
  if (!s->h || s->running || s->close_pending) return;
  double t = mw_httpd_timeout(s->h);
  ev_timer_stop(mw_loop(), &s->timer);
  if (t >= 0) {
    ev_timer_set(&s->timer, t, 0);
    ev_timer_start(mw_loop(), &s->timer);
  }
}

/* Stops the watchers, the server (answering pending requests with 503), and
 * drops the references; the userdata stays as a closed handle. */
static void mw_lserver_close(lua_State *L, mw_lserver_t *s) {
  ev_io_stop(mw_loop(), &s->io);
  ev_timer_stop(mw_loop(), &s->timer);
  if (s->running) {
    s->close_pending = 1; /* finished when mw_httpd_run_once returns */
    return;
  }
  mw_httpd_stop(s->h);
  s->h = NULL;
  s->close_pending = 0;
  if (s->handler_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, s->handler_ref);
    s->handler_ref = LUA_NOREF;
  }
  if (s->self_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, s->self_ref);
    s->self_ref = LUA_NOREF;
  }
}

static void mw_lserver_run(mw_lserver_t *s) {
  if (!s->h) return;
  s->running = 1;
  mw_httpd_run_once(s->h);
  s->running = 0;
  if (s->close_pending)
    mw_lserver_close(mw_lua_current, s);
  else
    mw_lserver_rearm(s);
}

static void mw_on_io(EV_P_ ev_io *w, int revents) {
  (void)loop, (void)revents;
  mw_lserver_run((mw_lserver_t *)w);
}

static void mw_on_timer(EV_P_ ev_timer *w, int revents) {
  (void)loop, (void)revents;
  mw_lserver_run((mw_lserver_t *)((char *)w - offsetof(mw_lserver_t, timer)));
}

/* Answers lr's request from the Lua values status, body, headers at idx..idx+2.
 * Returns 0, or -1 with the message in err. Raises on misuse (bad types). */
static int mw_lreq_answer(lua_State *L, mw_lreq_t *lr, int idx, char *err, size_t errlen) {
  mw_httpd_resp_t resp;
  memset(&resp, 0, sizeof resp);
  resp.status = (int)luaL_checkinteger(L, idx);
  resp.body = luaL_optlstring(L, idx + 1, "", &resp.body_len);
  resp.content_type = MW_DEFAULT_CONTENT_TYPE;
  int hidx = idx + 2;
  if (!lua_isnoneornil(L, hidx)) {
    luaL_checktype(L, hidx, LUA_TTABLE);
    /* Names and values are anchored in a scratch table while we point at them. */
    lua_newtable(L);
    int anchor = lua_gettop(L);
    size_t n = 0;
    for (lua_pushnil(L); lua_next(L, hidx); lua_pop(L, 1)) {
      if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
        return luaL_error(L, "respond: headers must map names to strings");
      lua_pushvalue(L, -2);
      lua_rawseti(L, anchor, (int)++n);
      lua_pushvalue(L, -1);
      lua_tostring(L, -1); /* numbers become strings in the copy */
      lua_rawseti(L, anchor, (int)++n);
    }
    const char **pairs = lua_newuserdata(L, (n ? n : 1) * sizeof *pairs);
    size_t np = 0;
    for (size_t i = 1; i <= n; i += 2) {
      lua_rawgeti(L, anchor, (int)i);
      lua_rawgeti(L, anchor, (int)i + 1);
      const char *name = lua_tostring(L, -2), *value = lua_tostring(L, -1);
      lua_pop(L, 2); /* both stay referenced by the anchor */
      if (strcasecmp(name, "Content-Type") == 0) {
        resp.content_type = value;
      } else {
        pairs[2 * np] = name;
        pairs[2 * np + 1] = value;
        np++;
      }
    }
    resp.headers = pairs;
    resp.header_pairs = np;
  }
  if (!lr->req) {
    mw_seterr(err, errlen, "request already finished");
    return -1;
  }
  int rc = mw_httpd_respond(lr->req, &resp, err, errlen);
  if (rc == 0) mw_lserver_rearm(lr->srv);
  return rc;
}

/* req:respond(status [, body [, headers]]) -> true | nil, err */
static int mw_lreq_respond(lua_State *L) {
  mw_lreq_t *lr = luaL_checkudata(L, 1, MW_REQUEST);
  char err[128];
  if (mw_lreq_answer(L, lr, 2, err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* Fields live in the userdata's environment table; methods come first. */
static int mw_lreq_index(lua_State *L) {
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  if (!lua_isnil(L, -1)) return 1;
  lua_getfenv(L, 1);
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

static int mw_lreq_newindex(lua_State *L) {
  lua_getfenv(L, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_rawset(L, -3);
  return 0;
}

/* A request dropped by Lua without an answer gets 500 now rather than 503 later. */
static int mw_lreq_gc(lua_State *L) {
  mw_lreq_t *lr = luaL_checkudata(L, 1, MW_REQUEST);
  if (!lr->req) return 0;
  mw_httpd_req_set_user(lr->req, NULL);
  static const char msg[] = "handler dropped the request\n";
  mw_httpd_resp_t resp = {.status = 500,
                          .content_type = MW_DEFAULT_CONTENT_TYPE,
                          .body = msg,
                          .body_len = sizeof msg - 1};
  char err[128];
  if (mw_httpd_respond(lr->req, &resp, err, sizeof err) == 0) mw_lserver_rearm(lr->srv);
  lr->req = NULL;
  return 0;
}

static int mw_lreq_tostring(lua_State *L) {
  mw_lreq_t *lr = luaL_checkudata(L, 1, MW_REQUEST);
  if (lr->req)
    lua_pushfstring(L, "http request %s %s", mw_httpd_req_method(lr->req),
                    mw_httpd_req_path(lr->req));
  else
    lua_pushliteral(L, "http request (finished)");
  return 1;
}

/* Pushes name lowercased. */
static void mw_push_lower(lua_State *L, const char *name) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (const char *p = name; *p; p++)
    luaL_addchar(&b, (char)tolower((unsigned char)*p));
  luaL_pushresult(&b);
}

/* Pushes the request userdata for req (fields filled). */
static mw_lreq_t *mw_push_request(lua_State *L, mw_lserver_t *s, mw_httpd_req_t *req) {
  mw_lreq_t *lr = lua_newuserdata(L, sizeof *lr);
  lr->req = NULL;
  lr->srv = s;
  luaL_getmetatable(L, MW_REQUEST);
  lua_setmetatable(L, -2);
  lua_createtable(L, 0, 5);
  lua_pushstring(L, mw_httpd_req_method(req));
  lua_setfield(L, -2, "method");
  lua_pushstring(L, mw_httpd_req_path(req));
  lua_setfield(L, -2, "path");
  size_t len, n;
  const char *body = mw_httpd_req_body(req, &len);
  lua_pushlstring(L, body, len);
  lua_setfield(L, -2, "body");
  const mw_httpd_kv_t *kv = mw_httpd_req_query(req, &n);
  lua_createtable(L, 0, (int)n);
  for (size_t i = 0; i < n; i++) { /* the first of repeated arguments wins */
    lua_getfield(L, -1, kv[i].name);
    int seen = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (seen) continue;
    lua_pushstring(L, kv[i].value);
    lua_setfield(L, -2, kv[i].name);
  }
  lua_setfield(L, -2, "query");
  kv = mw_httpd_req_headers(req, &n);
  lua_createtable(L, 0, (int)n);
  for (size_t i = 0; i < n; i++) { /* repeated headers are joined with ", " */
    mw_push_lower(L, kv[i].name);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushstring(L, kv[i].value);
    } else {
      lua_pushliteral(L, ", ");
      lua_pushstring(L, kv[i].value);
      lua_concat(L, 3);
    }
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, "headers");
  lua_setfenv(L, -2);
  lr->req = req;
  mw_httpd_req_set_user(req, lr);
  return lr;
}

/* Runs in protected mode: (server lightuserdata, req lightuserdata). Calls
 * the handler and answers from its results, or leaves the request deferred. */
static int mw_lserver_call(lua_State *L) {
  mw_lserver_t *s = lua_touserdata(L, 1);
  mw_httpd_req_t *req = lua_touserdata(L, 2);
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->handler_ref);
  mw_lreq_t *lr = mw_push_request(L, s, req);
  lua_call(L, 1, 3);
  if (lua_isnil(L, 1)) {
    s->outcome = MW_OUTCOME_LATER;
    return 0;
  }
  if (lua_type(L, 1) != LUA_TNUMBER)
    return luaL_error(L, "handler must return status, body, headers or nothing (got a %s)",
                      luaL_typename(L, 1));
  char err[128];
  if (mw_lreq_answer(L, lr, 1, err, sizeof err) != 0) return luaL_error(L, "respond: %s", err);
  s->outcome = MW_OUTCOME_ANSWERED;
  return 0;
}

static int mw_on_request(void *ctx, mw_httpd_req_t *req) {
  mw_lserver_t *s = ctx;
  lua_State *L = mw_lua_current;
  if (s->close_pending || s->handler_ref == LUA_NOREF) {
    static const char msg[] = "server shutting down\n";
    mw_httpd_resp_t resp = {.status = 503, .body = msg, .body_len = sizeof msg - 1};
    char err[128];
    mw_httpd_respond(req, &resp, err, sizeof err);
    return MW_HTTPD_ANSWERED;
  }
  char where[96];
  snprintf(where, sizeof where, "http handler %s %.64s", mw_httpd_req_method(req),
           mw_httpd_req_path(req));
  s->outcome = MW_OUTCOME_ERROR;
  lua_pushcfunction(L, mw_lserver_call);
  lua_pushlightuserdata(L, s);
  lua_pushlightuserdata(L, req);
  mw_lua_pcall(L, 2, where);
  /* ANSWERED without an answer means 500 (errors); an answer given inside
   * the handler through req:respond() is used whatever we return. */
  return s->outcome == MW_OUTCOME_LATER ? MW_HTTPD_LATER : MW_HTTPD_ANSWERED;
}

static void mw_on_done(void *ctx, mw_httpd_req_t *req) {
  (void)ctx;
  mw_lreq_t *lr = mw_httpd_req_get_user(req);
  if (lr) lr->req = NULL;
}

static mw_lserver_t *mw_check_server(lua_State *L) { return luaL_checkudata(L, 1, MW_SERVER); }

static double mw_opt_number(lua_State *L, int idx, const char *name, double dflt) {
  if (lua_isnoneornil(L, idx)) return dflt;
  lua_getfield(L, idx, name);
  double v = luaL_optnumber(L, -1, dflt);
  lua_pop(L, 1);
  if (v < 0) luaL_error(L, "listen: %s must not be negative", name);
  return v;
}

/* httpd.listen(addr, handler [, opts]) -> server | nil, err
 * opts: max_body (bytes, default 1 MiB), answer_timeout (seconds, default 60),
 * idle_timeout (seconds, default 60), head_timeout (seconds to send a request
 * head, default 10), max_connections (default 4096, kept below the open-files
 * limit), max_per_ip (connections per client address, default 0: no limit). */
static int mw_httpd_listen(lua_State *L) {
  const char *addr = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  mw_httpd_opts_t opts = {.addr = addr,
                          .max_body = (size_t)mw_opt_number(L, 3, "max_body", 0),
                          .answer_timeout = mw_opt_number(L, 3, "answer_timeout", 0),
                          .idle_timeout = (unsigned)mw_opt_number(L, 3, "idle_timeout", 0),
                          .head_timeout = mw_opt_number(L, 3, "head_timeout", 0),
                          .max_connections = (unsigned)mw_opt_number(L, 3, "max_connections", 0),
                          .max_per_ip = (unsigned)mw_opt_number(L, 3, "max_per_ip", 0),
                          .on_request = mw_on_request,
                          .on_done = mw_on_done};
  mw_lserver_t *s = lua_newuserdata(L, sizeof *s);
  memset(s, 0, sizeof *s);
  s->self_ref = s->handler_ref = LUA_NOREF;
  luaL_getmetatable(L, MW_SERVER);
  lua_setmetatable(L, -2);
  opts.ctx = s;
  char err[256];
  if (mw_httpd_start(&s->h, &opts, err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushvalue(L, 2);
  s->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  ev_io_init(&s->io, mw_on_io, mw_httpd_fd(s->h), EV_READ);
  ev_io_start(mw_loop(), &s->io);
  ev_init(&s->timer, mw_on_timer);
  mw_lserver_rearm(s);
  return 1;
}

/* server:close(): stops listening; pending deferred requests get 503. */
static int mw_server_close(lua_State *L) {
  mw_lserver_t *s = mw_check_server(L);
  if (s->h) mw_lserver_close(L, s);
  return 0;
}

/* server:addr() -> "127.0.0.1:PORT" (nil once closed) */
static int mw_server_addr(lua_State *L) {
  mw_lserver_t *s = mw_check_server(L);
  if (!s->h || s->close_pending) return 0;
  lua_pushstring(L, mw_httpd_addr(s->h));
  return 1;
}

/* server:port() -> PORT (nil once closed) */
static int mw_server_port(lua_State *L) {
  mw_lserver_t *s = mw_check_server(L);
  if (!s->h || s->close_pending) return 0;
  lua_pushinteger(L, mw_httpd_port(s->h));
  return 1;
}

/* server:stats() -> { head_timeouts = N, max_connections = N } (nil once closed) */
static int mw_server_stats(lua_State *L) {
  mw_lserver_t *s = mw_check_server(L);
  if (!s->h || s->close_pending) return 0;
  lua_createtable(L, 0, 2);
  lua_pushnumber(L, (lua_Number)mw_httpd_head_timeouts(s->h));
  lua_setfield(L, -2, "head_timeouts");
  lua_pushnumber(L, (lua_Number)mw_httpd_max_connections(s->h));
  lua_setfield(L, -2, "max_connections");
  return 1;
}

static int mw_server_tostring(lua_State *L) {
  mw_lserver_t *s = mw_check_server(L);
  if (s->h)
    lua_pushfstring(L, "http server %s", mw_httpd_addr(s->h));
  else
    lua_pushliteral(L, "http server (closed)");
  return 1;
}

int luaopen_moonwatch_httpd(lua_State *L) {
  static const luaL_Reg server_methods[] = {{"close", mw_server_close},
                                            {"addr", mw_server_addr},
                                            {"port", mw_server_port},
                                            {"stats", mw_server_stats},
                                            {NULL, NULL}};
  static const luaL_Reg req_methods[] = {{"respond", mw_lreq_respond}, {NULL, NULL}};
  if (luaL_newmetatable(L, MW_SERVER)) {
    lua_newtable(L);
    luaL_register(L, NULL, server_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, mw_server_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, mw_server_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, MW_REQUEST)) {
    lua_newtable(L);
    luaL_register(L, NULL, req_methods);
    lua_pushcclosure(L, mw_lreq_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, mw_lreq_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, mw_lreq_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, mw_lreq_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, mw_httpd_listen);
  lua_setfield(L, -2, "listen");
  return 1;
}
