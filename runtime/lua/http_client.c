/*
 * lua/http_client.c: the C module moonwatch.httpc, the HTTP client (runtime/http/client.c)
 * as Lua sees it.
 *
 *   local h = httpc.request(opts, function(resp) ... end)   -- or nil, err
 *   h:cancel()   -- the callback is then never called
 *
 * opts are the flat fields of mw_httpc_opts_t with plain strings (secrets
 * already revealed; moonwatch.http_client builds them from Alloy-style
 * config): url, method, headers = { name = value | { values } }, body,
 * timeout, connect_timeout, max_body, truncate_body, follow_redirects, enable_http2,
 * accept_gzip, user_agent, proxy_url, no_proxy, proxy_from_environment,
 * proxy_connect_headers, ca_file, ca_pem, cert_file, cert_pem, key_file,
 * key_pem, server_name, insecure_skip_verify, min_version ("TLS10".."TLS13"),
 * username, password, password_file, auth_type, auth_credentials,
 * auth_credentials_file, and keep_body.
 *
 * Streaming (a Kubernetes watch): with on_line = function(line) ... end, the body of a 2xx
 * response is not collected: each line (without its "\n" and a "\r" before it; a last line
 * without "\n" too) is passed to on_line as it arrives, from the loop; resp.body is then "".
 * A line longer than max_line bytes (default 16 MiB) fails the request ("line longer than N
 * bytes"); on_line returning false stops it ("stream stopped by the receiver"). on_line must
 * not cancel its own request: it runs inside libcurl's callback (defer such work to a timer).
 *
 * The callback runs through mw_lua_pcall with resp = { status, headers
 * (lowercased names, repeats joined with ", "), body, gzip, err, duration,
 * url, new_connections (0 when a pooled connection was reused) }. body is a Lua string, or with
 * keep_body a body userdata that keeps the bytes in C for the scrape hot path (no Lua string is
 * made):
 *
 *   body:ptr() -> lightuserdata (ffi.cast("const char *", p) for the FFI
 *                 exposition parser; valid while body is referenced and not freed)
 *   body:len() / #body, body:string(), body:gunzip([max]) -> body | nil, err,
 *   body:free() (early release; the GC does it otherwise)
 *   body:gunzip_stream([max]) -> g | nil, err: the same inflate in steps, so a big
 *                 body or a bomb does not hold the loop; g:step(budget) makes about
 *                 budget more bytes and returns false (more to do), the body, or nil,
 *                 err; g:free(). g keeps body alive; freeing body first fails the step.
 *
 * An in-flight request holds a registry reference to its handle, so
 * dropping the handle does not cancel it. One client (one curl multi, one
 * connection pool) serves the whole VM on the default loop; it is freed at
 * lua_close.
 */
#include <ev.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/grow.h"
#include "base/gzip.h"
#include "http/client.h"
#include "lua/boundary.h"

#define MW_LREQ "moonwatch.httpc.request"
#define MW_LBODY "moonwatch.httpc.body"
#define MW_LCLIENT "moonwatch.httpc.client"
#define MW_LGUNZIP "moonwatch.httpc.gunzip"

typedef struct mw_lreq {
  mw_httpc_req_t *req; /* NULL once done or cancelled */
  int self_ref, cb_ref;
  int keep_body;
  /* streaming: on_line's reference, the partial line, its bound, why the stream failed */
  int line_ref;
  char *line;
  size_t line_len, line_cap, max_line;
  const char *stream_err;
  char stream_errbuf[64];
  struct mw_lreq *prev, *next; /* in flight */
} mw_lreq_t;

typedef struct {
  char *p; /* malloc'd, NUL-terminated; NULL once freed */
  size_t len;
} mw_lbody_t;

static mw_httpc_t *mw_client;
static mw_lreq_t *mw_live;

static void mw_live_unlink(mw_lreq_t *lr) {
  if (lr->prev)
    lr->prev->next = lr->next;
  else if (mw_live == lr)
    mw_live = lr->next;
  if (lr->next) lr->next->prev = lr->prev;
  lr->prev = lr->next = NULL;
}

static void mw_lreq_release(lua_State *L, mw_lreq_t *lr) {
  if (lr->line_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, lr->line_ref);
    lr->line_ref = LUA_NOREF;
  }
  free(lr->line);
  lr->line = NULL;
  lr->line_len = lr->line_cap = 0;
  if (lr->cb_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, lr->cb_ref);
    lr->cb_ref = LUA_NOREF;
  }
  if (lr->self_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, lr->self_ref);
    lr->self_ref = LUA_NOREF;
  }
}

/* ---- body userdata ---- */

static mw_lbody_t *mw_push_body(lua_State *L, char *p, size_t len) {
  mw_lbody_t *b = lua_newuserdata(L, sizeof *b);
  b->p = p;
  b->len = len;
  luaL_getmetatable(L, MW_LBODY);
  lua_setmetatable(L, -2);
  return b;
}

static int mw_body_ptr(lua_State *L) {
  mw_lbody_t *b = luaL_checkudata(L, 1, MW_LBODY);
  if (!b->p) return luaL_error(L, "http body already freed");
  lua_pushlightuserdata(L, b->p);
  return 1;
}

static int mw_body_len(lua_State *L) {
  mw_lbody_t *b = luaL_checkudata(L, 1, MW_LBODY);
  lua_pushinteger(L, (lua_Integer)(b->p ? b->len : 0));
  return 1;
}

static int mw_body_string(lua_State *L) {
  mw_lbody_t *b = luaL_checkudata(L, 1, MW_LBODY);
  if (!b->p) return luaL_error(L, "http body already freed");
  lua_pushlstring(L, b->p, b->len);
  return 1;
}

static int mw_body_free(lua_State *L) {
  mw_lbody_t *b = luaL_checkudata(L, 1, MW_LBODY);
  free(b->p);
  b->p = NULL;
  b->len = 0;
  return 0;
}

static int mw_body_tostring(lua_State *L) {
  mw_lbody_t *b = luaL_checkudata(L, 1, MW_LBODY);
  if (b->p)
    lua_pushfstring(L, "http body (%d bytes)", (int)b->len);
  else
    lua_pushliteral(L, "http body (freed)");
  return 1;
}

/* Inflates in[len] with max; pushes the result (a body userdata when as_body,
 * else a string) or nil, err. */
static int mw_push_gunzip(lua_State *L, const char *in, size_t len, lua_Number max, int as_body) {
  if (max < 0) return luaL_error(L, "gunzip: max must not be negative");
  /* the userdata first, so an allocation error cannot leak the buffer */
  mw_lbody_t *b = mw_push_body(L, NULL, 0);
  char *out;
  size_t out_len;
  char err[128];
  if (mw_gunzip_all(in, len, (size_t)max, &out, &out_len, err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  b->p = out;
  b->len = out_len;
  if (as_body) return 1;
  lua_pushlstring(L, out, out_len);
  free(b->p);
  b->p = NULL;
  return 1;
}

/* body:gunzip([max]) -> body | nil, err */
static int mw_body_gunzip(lua_State *L) {
  mw_lbody_t *b = luaL_checkudata(L, 1, MW_LBODY);
  if (!b->p) return luaL_error(L, "http body already freed");
  return mw_push_gunzip(L, b->p, b->len, luaL_optnumber(L, 2, 0), 1);
}

/* A stepped gunzip of a body, which it keeps referenced (body_ref) and whose bytes
 * it checks are still there at every step (in). */
typedef struct {
  mw_gunzip_t *g; /* NULL once done, failed or freed */
  mw_lbody_t *body;
  const char *in;
  int body_ref;
} mw_lgunzip_t;

static int mw_lgunzip_free(lua_State *L) {
  mw_lgunzip_t *z = luaL_checkudata(L, 1, MW_LGUNZIP);
  mw_gunzip_free(z->g);
  z->g = NULL;
  if (z->body_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, z->body_ref);
    z->body_ref = LUA_NOREF;
  }
  return 0;
}

/* body:gunzip_stream([max]) -> g | nil, err */
static int mw_body_gunzip_stream(lua_State *L) {
  mw_lbody_t *b = luaL_checkudata(L, 1, MW_LBODY);
  lua_Number max = luaL_optnumber(L, 2, 0);
  if (!b->p) return luaL_error(L, "http body already freed");
  if (max < 0) return luaL_error(L, "gunzip: max must not be negative");
  mw_lgunzip_t *z = lua_newuserdata(L, sizeof *z);
  z->g = NULL;
  z->body = b;
  z->in = b->p;
  z->body_ref = LUA_NOREF;
  luaL_getmetatable(L, MW_LGUNZIP);
  lua_setmetatable(L, -2);
  char err[128];
  z->g = mw_gunzip_new(b->p, b->len, (size_t)max, err, sizeof err);
  if (!z->g) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushvalue(L, 1);
  z->body_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

/* g:step(budget) -> false | body | nil, err */
static int mw_lgunzip_step(lua_State *L) {
  mw_lgunzip_t *z = luaL_checkudata(L, 1, MW_LGUNZIP);
  lua_Number budget = luaL_checknumber(L, 2);
  if (!z->g) return luaL_error(L, "gunzip stream already finished");
  if (z->body->p != z->in) return luaL_error(L, "gunzip stream: its http body was freed");
  if (budget < 1) budget = 1;
  mw_lbody_t *b = mw_push_body(L, NULL, 0);
  char *out;
  size_t out_len;
  char err[128];
  int r = mw_gunzip_step(z->g, budget >= (lua_Number)SIZE_MAX ? SIZE_MAX : (size_t)budget, &out,
                         &out_len, err, sizeof err);
  if (r == 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  mw_lgunzip_free(L); /* index 1: the stream is spent either way */
  if (r < 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  b->p = out;
  b->len = out_len;
  return 1;
}

/* httpc.gunzip(string | body [, max]) -> same kind | nil, err */
static int mw_httpc_lgunzip(lua_State *L) {
  lua_Number max = luaL_optnumber(L, 2, 0);
  if (lua_type(L, 1) == LUA_TUSERDATA) {
    lua_settop(L, 2);
    return mw_body_gunzip(L);
  }
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  return mw_push_gunzip(L, s, len, max, 0);
}

/* ---- options ---- */

/* The string field k of table t, or NULL; the value stays on the stack
 * (anchored) until the request is started. */
static const char *mw_opt_str(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  if (lua_isnil(L, -1)) return NULL;
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "httpc.request: %s must be a string", k);
  return lua_tostring(L, -1);
}

static double mw_opt_num(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  double v = 0;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "httpc.request: %s must be a number", k);
    v = lua_tonumber(L, -1);
    if (v < 0) luaL_error(L, "httpc.request: %s must not be negative", k);
  }
  lua_pop(L, 1);
  return v;
}

static int mw_opt_bool(lua_State *L, int t, const char *k, int dflt) {
  lua_getfield(L, t, k);
  int v = lua_isnil(L, -1) ? dflt : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* Appends a string copy of the value at idx to the anchor table; returns it. */
static const char *mw_anchor(lua_State *L, int anchor, int idx, const char *what) {
  if (lua_type(L, idx) != LUA_TSTRING && lua_type(L, idx) != LUA_TNUMBER)
    luaL_error(L, "httpc.request: %s must map names to strings or lists of strings", what);
  lua_pushvalue(L, idx);
  lua_tostring(L, -1);
  const char *s = lua_tostring(L, -1);
  lua_rawseti(L, anchor, (int)lua_objlen(L, anchor) + 1);
  return s;
}

/* Reads the header table field k (name = value | { values }) into an array
 * allocated as a userdata in the anchor table. */
static const mw_httpc_header_t *mw_opt_headers(lua_State *L, int t, const char *k, int anchor,
                                               size_t *n) {
  *n = 0;
  lua_getfield(L, t, k);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return NULL;
  }
  if (!lua_istable(L, -1)) luaL_error(L, "httpc.request: %s must be a table", k);
  int h = lua_gettop(L);
  size_t count = 0;
  for (lua_pushnil(L); lua_next(L, h); lua_pop(L, 1))
    count += lua_istable(L, -1) ? lua_objlen(L, -1) : 1;
  mw_httpc_header_t *arr = lua_newuserdata(L, (count ? count : 1) * sizeof *arr);
  lua_rawseti(L, anchor, (int)lua_objlen(L, anchor) + 1);
  for (lua_pushnil(L); lua_next(L, h); lua_pop(L, 1)) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "httpc.request: %s names must be strings", k);
    if (lua_istable(L, -1)) {
      size_t m = lua_objlen(L, -1);
      for (size_t i = 1; i <= m && *n < count; i++) {
        lua_rawgeti(L, -1, (int)i);
        arr[*n].name = mw_anchor(L, anchor, -3, k);
        arr[*n].value = mw_anchor(L, anchor, -1, k);
        (*n)++;
        lua_pop(L, 1);
      }
    } else if (*n < count) {
      arr[*n].name = mw_anchor(L, anchor, -2, k);
      arr[*n].value = mw_anchor(L, anchor, -1, k);
      (*n)++;
    }
  }
  lua_pop(L, 1);
  return arr;
}

static int mw_opt_tls_version(lua_State *L, int t) {
  const char *v = mw_opt_str(L, t, "min_version");
  if (!v || !*v) return MW_HTTPC_TLS_DEFAULT;
  static const struct {
    const char *name;
    int version;
  } names[] = {{"TLS10", MW_HTTPC_TLS10},
               {"TLS11", MW_HTTPC_TLS11},
               {"TLS12", MW_HTTPC_TLS12},
               {"TLS13", MW_HTTPC_TLS13}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(v, names[i].name) == 0) return names[i].version;
  return luaL_error(L, "httpc.request: unknown TLS version %s", v);
}

/* ---- requests ---- */

/* Runs in protected mode: (lr, resp) as light userdata. Builds the resp
 * table and calls the callback. */
static int mw_lreq_call(lua_State *L) {
  mw_lreq_t *lr = lua_touserdata(L, 1);
  mw_httpc_resp_t *resp = lua_touserdata(L, 2);
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, lr->cb_ref);
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, resp->status);
  lua_setfield(L, -2, "status");
  lua_pushboolean(L, resp->gzip);
  lua_setfield(L, -2, "gzip");
  lua_pushnumber(L, resp->duration);
  lua_setfield(L, -2, "duration");
  lua_pushstring(L, resp->url);
  lua_setfield(L, -2, "url");
  lua_pushinteger(L, resp->new_connections);
  lua_setfield(L, -2, "new_connections");
  if (resp->err) {
    lua_pushstring(L, resp->err);
    lua_setfield(L, -2, "err");
  }
  if (lr->keep_body) {
    mw_lbody_t *b = mw_push_body(L, NULL, 0);
    b->p = resp->body; /* taken from the response */
    b->len = resp->body_len;
    resp->body = NULL;
  } else {
    lua_pushlstring(L, resp->body, resp->body_len);
  }
  lua_setfield(L, -2, "body");
  lua_createtable(L, 0, (int)resp->nheaders);
  for (size_t i = 0; i < resp->nheaders; i++) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (const char *p = resp->headers[i].name; *p; p++)
      luaL_addchar(&b, (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p));
    luaL_pushresult(&b);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushstring(L, resp->headers[i].value);
    } else {
      lua_pushliteral(L, ", ");
      lua_pushstring(L, resp->headers[i].value);
      lua_concat(L, 3);
    }
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, "headers");
  lua_call(L, 1, 0);
  return 0;
}

/* ---- streaming ---- */

/* Runs in protected mode: (lr, line, len) as light userdata and number. Calls on_line and
 * leaves whether it returned false in lr->stream_err. */
static int mw_lreq_line_call(lua_State *L) {
  mw_lreq_t *lr = lua_touserdata(L, 1);
  const char *p = lua_touserdata(L, 2);
  size_t len = (size_t)lua_tonumber(L, 3);
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, lr->line_ref);
  lua_pushlstring(L, p, len);
  lua_call(L, 1, 1);
  if (lua_isboolean(L, -1) && !lua_toboolean(L, -1))
    lr->stream_err = "stream stopped by the receiver";
  return 0;
}

/* Hands one line (its "\r" dropped) to on_line. 0 to go on, -1 to stop. */
static int mw_lreq_line(mw_lreq_t *lr, const char *p, size_t len) {
  if (len && p[len - 1] == '\r') len--;
  lua_State *L = mw_lua_current;
  lua_pushcfunction(L, mw_lreq_line_call);
  lua_pushlightuserdata(L, lr);
  lua_pushlightuserdata(L, (void *)p);
  lua_pushnumber(L, (lua_Number)len);
  mw_lua_pcall(L, 3, "http client stream callback");
  return lr->stream_err ? -1 : 0;
}

/* mw_httpc_data_fn: splits the body into lines, keeping a partial one (bounded). */
static int mw_lreq_data(void *ctx, int status, const char *p, size_t len) {
  (void)status;
  mw_lreq_t *lr = ctx;
  while (len) {
    const char *nl = memchr(p, '\n', len);
    size_t n = nl ? (size_t)(nl - p) : len;
    if (lr->line_len + n > lr->max_line) {
      snprintf(lr->stream_errbuf, sizeof lr->stream_errbuf, "line longer than %zu bytes",
               lr->max_line);
      lr->stream_err = lr->stream_errbuf;
      return -1;
    }
    if (nl && lr->line_len == 0) { /* a whole line in the chunk: no copy */
      if (mw_lreq_line(lr, p, n)) return -1;
    } else {
      if (mw_grow((void **)&lr->line, &lr->line_cap, lr->line_len + n, 1) != 0) {
        lr->stream_err = "out of memory";
        return -1;
      }
      memcpy(lr->line + lr->line_len, p, n);
      lr->line_len += n;
      if (nl) {
        size_t total = lr->line_len;
        lr->line_len = 0;
        if (mw_lreq_line(lr, lr->line, total)) return -1;
      }
    }
    if (!nl) break;
    p = nl + 1;
    len -= n + 1;
  }
  return 0;
}

static void mw_lreq_done(void *ctx, mw_httpc_resp_t *resp) {
  mw_lreq_t *lr = ctx;
  lua_State *L = mw_lua_current;
  if (lr->line_ref != LUA_NOREF) {
    if (lr->stream_err && resp->err)
      resp->err = lr->stream_err;
    else if (!resp->err && lr->line_len) /* a last line without its newline */
      mw_lreq_line(lr, lr->line, lr->line_len);
    if (lr->stream_err && !resp->err) resp->err = lr->stream_err;
  }
  lr->req = NULL;
  mw_live_unlink(lr);
  lua_pushcfunction(L, mw_lreq_call);
  lua_pushlightuserdata(L, lr);
  lua_pushlightuserdata(L, resp);
  mw_lua_pcall(L, 2, "http client callback");
  mw_lreq_release(L, lr); /* lr may be collected from here on */
}

static void mw_lreq_cancel(lua_State *L, mw_lreq_t *lr) {
  if (lr->req) {
    mw_httpc_cancel(lr->req);
    lr->req = NULL;
    mw_live_unlink(lr);
  }
  mw_lreq_release(L, lr);
}

/* httpc.request(opts, callback) -> handle | nil, err */
static int mw_httpc_lrequest(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  luaL_checkstack(L, 64, "httpc.request");
  if (!mw_client) {
    char err[128];
    if (mw_httpc_new(&mw_client, EV_DEFAULT, err, sizeof err) != 0) {
      lua_pushnil(L);
      lua_pushstring(L, err);
      return 2;
    }
  }
  lua_newtable(L);
  int anchor = lua_gettop(L);
  mw_httpc_opts_t o;
  memset(&o, 0, sizeof o);
  o.url = mw_opt_str(L, 1, "url");
  if (!o.url) return luaL_error(L, "httpc.request: url is required");
  o.method = mw_opt_str(L, 1, "method");
  o.headers = mw_opt_headers(L, 1, "headers", anchor, &o.nheaders);
  lua_getfield(L, 1, "body");
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "httpc.request: body must be a string");
    o.body = lua_tolstring(L, -1, &o.body_len);
  }
  o.timeout = mw_opt_num(L, 1, "timeout");
  o.connect_timeout = mw_opt_num(L, 1, "connect_timeout");
  o.max_body = (size_t)mw_opt_num(L, 1, "max_body");
  o.truncate_body = mw_opt_bool(L, 1, "truncate_body", 0);
  o.follow_redirects = mw_opt_bool(L, 1, "follow_redirects", 1);
  o.enable_http2 = mw_opt_bool(L, 1, "enable_http2", 1);
  o.http2_prior_knowledge = mw_opt_bool(L, 1, "http2_prior_knowledge", 0);
  o.accept_gzip = mw_opt_bool(L, 1, "accept_gzip", 0);
  o.user_agent = mw_opt_str(L, 1, "user_agent");
  o.proxy_url = mw_opt_str(L, 1, "proxy_url");
  o.no_proxy = mw_opt_str(L, 1, "no_proxy");
  o.proxy_from_environment = mw_opt_bool(L, 1, "proxy_from_environment", 0);
  o.proxy_connect_headers =
      mw_opt_headers(L, 1, "proxy_connect_headers", anchor, &o.nproxy_connect_headers);
  o.ca_file = mw_opt_str(L, 1, "ca_file");
  o.ca_pem = mw_opt_str(L, 1, "ca_pem");
  o.cert_file = mw_opt_str(L, 1, "cert_file");
  o.cert_pem = mw_opt_str(L, 1, "cert_pem");
  o.key_file = mw_opt_str(L, 1, "key_file");
  o.key_pem = mw_opt_str(L, 1, "key_pem");
  o.server_name = mw_opt_str(L, 1, "server_name");
  o.insecure_skip_verify = mw_opt_bool(L, 1, "insecure_skip_verify", 0);
  o.min_version = mw_opt_tls_version(L, 1);
  o.username = mw_opt_str(L, 1, "username");
  o.password = mw_opt_str(L, 1, "password");
  o.password_file = mw_opt_str(L, 1, "password_file");
  o.auth_type = mw_opt_str(L, 1, "auth_type");
  o.auth_credentials = mw_opt_str(L, 1, "auth_credentials");
  o.auth_credentials_file = mw_opt_str(L, 1, "auth_credentials_file");

  mw_lreq_t *lr = lua_newuserdata(L, sizeof *lr);
  memset(lr, 0, sizeof *lr);
  lr->self_ref = lr->cb_ref = lr->line_ref = LUA_NOREF;
  lr->keep_body = mw_opt_bool(L, 1, "keep_body", 0);
  lua_getfield(L, 1, "on_line");
  if (!lua_isnil(L, -1)) {
    if (!lua_isfunction(L, -1)) return luaL_error(L, "httpc.request: on_line must be a function");
    o.on_data = mw_lreq_data;
    lr->max_line = (size_t)mw_opt_num(L, 1, "max_line");
    if (!lr->max_line) lr->max_line = 16u << 20;
    lua_pushvalue(L, -1);
    lr->line_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_pop(L, 1);
  luaL_getmetatable(L, MW_LREQ);
  lua_setmetatable(L, -2);
  char err[256];
  if (mw_httpc_request(mw_client, &o, mw_lreq_done, lr, &lr->req, err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lr->next = mw_live;
  if (mw_live) mw_live->prev = lr;
  mw_live = lr;
  lua_pushvalue(L, 2);
  lr->cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  lr->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

/* handle:cancel(): the callback will not be called; no-op once done. */
static int mw_lreq_lcancel(lua_State *L) {
  mw_lreq_cancel(L, luaL_checkudata(L, 1, MW_LREQ));
  return 0;
}

/* handle:active() -> true while in flight */
static int mw_lreq_active(lua_State *L) {
  lua_pushboolean(L, ((mw_lreq_t *)luaL_checkudata(L, 1, MW_LREQ))->req != NULL);
  return 1;
}

/* httpc.pending() -> requests in flight */
static int mw_httpc_lpending(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)(mw_client ? mw_httpc_pending(mw_client) : 0));
  return 1;
}

/* At lua_close: cancel what is left and free the client. */
static int mw_client_gc(lua_State *L) {
  (void)L;
  for (mw_lreq_t *lr = mw_live; lr; lr = lr->next)
    lr->req = NULL; /* freed by mw_httpc_free below */
  mw_live = NULL;
  mw_httpc_free(mw_client);
  mw_client = NULL;
  return 0;
}

int luaopen_moonwatch_httpc(lua_State *L) {
  static const luaL_Reg req_methods[] = {
      {"cancel", mw_lreq_lcancel}, {"active", mw_lreq_active}, {NULL, NULL}};
  static const luaL_Reg body_methods[] = {{"ptr", mw_body_ptr},
                                          {"len", mw_body_len},
                                          {"string", mw_body_string},
                                          {"gunzip", mw_body_gunzip},
                                          {"free", mw_body_free},
                                          {"gunzip_stream", mw_body_gunzip_stream},
                                          {NULL, NULL}};
  static const luaL_Reg gunzip_methods[] = {
      {"step", mw_lgunzip_step}, {"free", mw_lgunzip_free}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"request", mw_httpc_lrequest},
                                   {"gunzip", mw_httpc_lgunzip},
                                   {"pending", mw_httpc_lpending},
                                   {NULL, NULL}};
  if (luaL_newmetatable(L, MW_LREQ)) {
    lua_newtable(L);
    luaL_register(L, NULL, req_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, mw_lreq_lcancel);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, MW_LBODY)) {
    lua_newtable(L);
    luaL_register(L, NULL, body_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, mw_body_free);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, mw_body_len);
    lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, mw_body_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, MW_LGUNZIP)) {
    lua_newtable(L);
    luaL_register(L, NULL, gunzip_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, mw_lgunzip_free);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, MW_LCLIENT)) {
    lua_pushcfunction(L, mw_client_gc);
    lua_setfield(L, -2, "__gc");
    /* one sentinel, kept by the registry until lua_close */
    lua_newuserdata(L, 1);
    lua_pushvalue(L, -2);
    lua_setmetatable(L, -2);
    luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_pop(L, 1);
  lua_newtable(L);
  luaL_register(L, NULL, funcs);
  return 1;
}
