/* The HTTP client on a libev loop, against the HTTP server (runtime/http/server.c)
 * on the same loop and thread, plus a raw socket peer for answers httpd
 * does not give (no Content-Length, garbage). */
#include <arpa/inet.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "base/gzip.h"
#include "http/client.h"
#include "http/server.h"
#include "test.h"

static struct ev_loop *loop;
static mw_httpc_t *client;

/* ---- the server peer ---- */

typedef struct {
  ev_io io;
  ev_timer timer;
  mw_httpd_t *h;
  mw_httpd_req_t *slow;
  ev_timer slow_timer;
  char seen_auth[256], seen_ae[64], seen_ua[64], seen_method[16], seen_ct[64];
  int requests;
} server_t;

static server_t srv;
static char base[64];

static void rearm(server_t *s) {
  double t = mw_httpd_timeout(s->h);
  ev_timer_stop(loop, &s->timer);
  if (t >= 0) {
    ev_timer_set(&s->timer, t, 0);
    ev_timer_start(loop, &s->timer);
  }
}

static void srv_on_io(EV_P_ ev_io *w, int revents) {
  (void)loop, (void)revents, (void)w;
  mw_httpd_run_once(srv.h);
  rearm(&srv);
}

static void srv_on_timer(EV_P_ ev_timer *w, int revents) {
  (void)loop, (void)revents, (void)w;
  mw_httpd_run_once(srv.h);
  rearm(&srv);
}

static void respond(mw_httpd_req_t *req, int status, const char *ct, const char *const *hdrs,
                    size_t npairs, const void *body, size_t len) {
  mw_httpd_resp_t resp = {.status = status,
                          .content_type = ct,
                          .headers = hdrs,
                          .header_pairs = npairs,
                          .body = body,
                          .body_len = len};
  char err[128];
  mw_httpd_respond(req, &resp, err, sizeof err);
}

static void srv_on_slow(EV_P_ ev_timer *w, int revents) {
  (void)loop, (void)revents, (void)w;
  if (srv.slow) {
    respond(srv.slow, 200, "text/plain", NULL, 0, "slow", 4);
    srv.slow = NULL;
    rearm(&srv);
  }
}

/* gzip of in[len] into a malloc'd buffer (zlib, one member). */
static unsigned char *gz(const void *in, size_t len, size_t *out_len) {
  z_stream z;
  memset(&z, 0, sizeof z);
  deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  size_t cap = deflateBound(&z, (uLong)len);
  unsigned char *out = malloc(cap);
  z.next_in = (unsigned char *)in;
  z.avail_in = (uInt)len;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  deflate(&z, Z_FINISH);
  *out_len = cap - z.avail_out;
  deflateEnd(&z);
  return out;
}

static const char gz_text[] = "# TYPE up gauge\nup 1\nup{job=\"x\"} 0\n";

static void copy_header(mw_httpd_req_t *req, const char *name, char *dst, size_t n) {
  const char *v = mw_httpd_req_header(req, name);
  snprintf(dst, n, "%s", v ? v : "");
}

static int srv_on_request(void *ctx, mw_httpd_req_t *req) {
  (void)ctx;
  const char *path = mw_httpd_req_path(req);
  srv.requests++;
  copy_header(req, "Authorization", srv.seen_auth, sizeof srv.seen_auth);
  copy_header(req, "Accept-Encoding", srv.seen_ae, sizeof srv.seen_ae);
  copy_header(req, "User-Agent", srv.seen_ua, sizeof srv.seen_ua);
  copy_header(req, "Content-Type", srv.seen_ct, sizeof srv.seen_ct);
  snprintf(srv.seen_method, sizeof srv.seen_method, "%s", mw_httpd_req_method(req));
  if (strcmp(path, "/hello") == 0) {
    static const char *h[] = {"X-Test", "yes"};
    respond(req, 200, "text/plain; version=0.0.4", h, 1, "hello", 5);
  } else if (strcmp(path, "/echo") == 0) {
    size_t len;
    const char *body = mw_httpd_req_body(req, &len);
    respond(req, 200, mw_httpd_req_header(req, "Content-Type"), NULL, 0, body, len);
  } else if (strcmp(path, "/slow") == 0) {
    srv.slow = req;
    ev_timer_set(&srv.slow_timer, 1.0, 0);
    ev_timer_start(loop, &srv.slow_timer);
    return MW_HTTPD_LATER;
  } else if (strcmp(path, "/big") == 0) {
    static char big[100000];
    memset(big, 'x', sizeof big);
    respond(req, 200, "text/plain", NULL, 0, big, sizeof big);
  } else if (strcmp(path, "/gzip") == 0) {
    size_t len;
    unsigned char *z = gz(gz_text, sizeof gz_text - 1, &len);
    static const char *h[] = {"Content-Encoding", "gzip"};
    respond(req, 200, "text/plain", h, 1, z, len);
    free(z);
  } else if (strcmp(path, "/redirect") == 0) {
    static const char *h[] = {"Location", "/hello"};
    respond(req, 302, "text/plain", h, 1, "moved", 5);
  } else if (strcmp(path, "/busy") == 0) {
    static const char *h[] = {"Retry-After", "7"};
    respond(req, 503, "text/plain", h, 1, "busy", 4);
  } else {
    respond(req, 404, "text/plain", NULL, 0, "not found", 9);
  }
  return MW_HTTPD_ANSWERED;
}

static void on_srv_done(void *ctx, mw_httpd_req_t *req) {
  (void)ctx;
  if (req == srv.slow) srv.slow = NULL;
}

static int server_start(void) {
  mw_httpd_opts_t o = {.addr = "127.0.0.1:0",
                       .max_body = (size_t)16 << 20,
                       .on_request = srv_on_request,
                       .on_done = on_srv_done};
  char err[128];
  if (mw_httpd_start(&srv.h, &o, err, sizeof err) != 0) {
    fprintf(stderr, "httpd: %s\n", err);
    return -1;
  }
  ev_io_init(&srv.io, srv_on_io, mw_httpd_fd(srv.h), EV_READ);
  ev_io_start(loop, &srv.io);
  ev_init(&srv.timer, srv_on_timer);
  ev_init(&srv.slow_timer, srv_on_slow);
  rearm(&srv);
  snprintf(base, sizeof base, "http://%s", mw_httpd_addr(srv.h));
  return 0;
}

static void server_stop(void) {
  ev_io_stop(loop, &srv.io);
  ev_timer_stop(loop, &srv.timer);
  ev_timer_stop(loop, &srv.slow_timer);
  mw_httpd_stop(srv.h);
}

/* ---- a raw socket peer: answers each connection with a canned reply ---- */

typedef struct {
  ev_io io;
  int fd, port;
  const char *reply;
  size_t reply_len;
} raw_t;

static void raw_on_accept(EV_P_ ev_io *w, int revents) {
  (void)loop, (void)revents;
  raw_t *r = (raw_t *)w;
  int fd = accept(r->fd, NULL, NULL);
  if (fd < 0) return;
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf); /* the request, ignored */
  (void)n;
  size_t off = 0;
  while (off < r->reply_len) {
    ssize_t k = write(fd, r->reply + off, r->reply_len - off);
    if (k <= 0) break;
    off += (size_t)k;
  }
  close(fd);
}

static int raw_start(raw_t *r, const char *reply, size_t len) {
  memset(r, 0, sizeof *r);
  r->reply = reply;
  r->reply_len = len;
  r->fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  if (bind(r->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(r->fd, 16) != 0) return -1;
  getsockname(r->fd, (struct sockaddr *)&a, &alen);
  r->port = ntohs(a.sin_port);
  ev_io_init(&r->io, raw_on_accept, r->fd, EV_READ);
  ev_io_start(loop, &r->io);
  return 0;
}

static void raw_stop(raw_t *r) {
  ev_io_stop(loop, &r->io);
  close(r->fd);
}

/* ---- client helpers ---- */

typedef struct {
  int done, calls;
  int status, gzip, new_connections;
  char err[512], url[256], ctype[128], retry_after[32], location[128], x_test[16];
  char *body; /* taken from the response */
  size_t body_len;
  double duration;
} result_t;

static void on_done(void *ctx, mw_httpc_resp_t *resp) {
  result_t *r = ctx;
  r->calls++;
  r->done = 1;
  r->status = resp->status;
  r->gzip = resp->gzip;
  r->duration = resp->duration;
  r->new_connections = resp->new_connections;
  snprintf(r->err, sizeof r->err, "%s", resp->err ? resp->err : "");
  snprintf(r->url, sizeof r->url, "%s", resp->url);
  const char *v;
  v = mw_httpc_resp_header(resp, "content-type");
  snprintf(r->ctype, sizeof r->ctype, "%s", v ? v : "");
  v = mw_httpc_resp_header(resp, "Retry-After");
  snprintf(r->retry_after, sizeof r->retry_after, "%s", v ? v : "");
  v = mw_httpc_resp_header(resp, "Location");
  snprintf(r->location, sizeof r->location, "%s", v ? v : "");
  v = mw_httpc_resp_header(resp, "X-Test");
  snprintf(r->x_test, sizeof r->x_test, "%s", v ? v : "");
  free(r->body);
  r->body = resp->body;
  r->body_len = resp->body_len;
  resp->body = NULL;
}

static void on_deadline(EV_P_ ev_timer *w, int revents) {
  (void)w, (void)revents;
  ev_break(EV_A_ EVBREAK_ONE);
}

/* Runs the loop until *flag or 10 s. */
static void run_until(const int *flag) {
  ev_timer guard;
  ev_timer_init(&guard, on_deadline, 10.0, 0);
  ev_timer_start(loop, &guard);
  while (!*flag && ev_is_active(&guard))
    ev_run(loop, EVRUN_ONCE);
  ev_timer_stop(loop, &guard);
}

static void run_for(double seconds) {
  ev_timer t;
  ev_timer_init(&t, on_deadline, seconds, 0);
  ev_timer_start(loop, &t);
  ev_run(loop, 0);
  ev_timer_stop(loop, &t);
}

/* Sends o and waits for the answer in *r. Returns mw_httpc_request's result. */
static int fetch(mw_httpc_opts_t *o, result_t *r) {
  memset(r, 0, sizeof *r);
  char err[256];
  if (mw_httpc_request(client, o, on_done, r, NULL, err, sizeof err) != 0) {
    snprintf(r->err, sizeof r->err, "%s", err);
    return -1;
  }
  run_until(&r->done);
  return 0;
}

static void result_free(result_t *r) {
  free(r->body);
  r->body = NULL;
}

static char url_buf[256];
static const char *url(const char *path) {
  snprintf(url_buf, sizeof url_buf, "%s%s", base, path);
  return url_buf;
}

/* ---- tests ---- */

static void test_get(void) {
  result_t r;
  mw_httpc_opts_t o = {.url = url("/hello"), .timeout = 5};
  CHECK_INT(fetch(&o, &r), 0);
  CHECK_STR(r.err, "");
  CHECK_INT(r.status, 200);
  CHECK_INT(r.body_len, 5);
  CHECK_STR(r.body, "hello");
  CHECK_STR(r.ctype, "text/plain; version=0.0.4");
  CHECK_STR(r.x_test, "yes");
  CHECK_STR(r.url, url("/hello"));
  CHECK(r.duration > 0 && r.duration < 5);
  CHECK_STR(srv.seen_method, "GET");
  CHECK(strncmp(srv.seen_ua, "moonwatch/", 10) == 0);
  CHECK_STR(srv.seen_ae, ""); /* not asked for */
  CHECK_INT(mw_httpc_pending(client), 0);
  result_free(&r);
  /* the next request to the same host reuses the pooled connection */
  o.url = url("/hello");
  CHECK_INT(fetch(&o, &r), 0);
  CHECK_INT(r.status, 200);
  CHECK_INT(r.new_connections, 0);
  result_free(&r);
}

static void test_post_body(void) {
  size_t len = (size_t)3 << 20; /* big enough for curl's Expect: 100-continue */
  char *body = malloc(len);
  for (size_t i = 0; i < len; i++)
    body[i] = (char)('a' + i % 26);
  mw_httpc_header_t h[] = {{"Content-Type", "application/x-protobuf"}};
  mw_httpc_opts_t o = {.method = "POST",
                       .url = url("/echo"),
                       .headers = h,
                       .nheaders = 1,
                       .body = body,
                       .body_len = len,
                       .body_owned = 1,
                       .timeout = 10};
  result_t r;
  CHECK_INT(fetch(&o, &r), 0);
  CHECK_STR(r.err, "");
  CHECK_INT(r.status, 200);
  CHECK_STR(srv.seen_method, "POST");
  CHECK_STR(srv.seen_ct, "application/x-protobuf");
  CHECK_INT(r.body_len, len);
  CHECK(r.body && r.body[5] == 'f' && r.body[len - 1] == (char)('a' + (len - 1) % 26));
  result_free(&r);

  /* a copied body, another method, no Content-Type made up */
  o = (mw_httpc_opts_t){.method = "PUT", .url = url("/echo"), .body = "xyz", .body_len = 3};
  CHECK_INT(fetch(&o, &r), 0);
  CHECK_INT(r.status, 200);
  CHECK_STR(r.body, "xyz");
  CHECK_STR(srv.seen_method, "PUT");
  CHECK_STR(srv.seen_ct, "");
  result_free(&r);
}

static void test_timeout(void) {
  mw_httpc_opts_t o = {.url = url("/slow"), .timeout = 0.2};
  result_t r;
  CHECK_INT(fetch(&o, &r), 0);
  CHECK_INT(r.status, 0);
  CHECK(strstr(r.err, "context deadline exceeded") != NULL);
  CHECK(r.duration >= 0.15 && r.duration < 1);
  result_free(&r);
  run_for(0.9); /* let the server answer the request nobody waits for */
}

static void test_body_limit(void) {
  /* Content-Length known: refused up front */
  mw_httpc_opts_t o = {.url = url("/big"), .max_body = 1000, .timeout = 5};
  result_t r;
  CHECK_INT(fetch(&o, &r), 0);
  CHECK_STR(r.err, "body size limit exceeded");
  result_free(&r);
  /* exactly at the limit is fine */
  o.max_body = 100000;
  CHECK_INT(fetch(&o, &r), 0);
  CHECK_STR(r.err, "");
  CHECK_INT(r.body_len, 100000);
  result_free(&r);

  /* no Content-Length: counted while reading */
  static char reply[8192];
  int n = snprintf(reply, sizeof reply, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
  memset(reply + n, 'y', 5000);
  raw_t raw;
  CHECK_INT(raw_start(&raw, reply, (size_t)n + 5000), 0);
  char u[64];
  snprintf(u, sizeof u, "http://127.0.0.1:%d/metrics", raw.port);
  o = (mw_httpc_opts_t){.url = u, .max_body = 4096, .timeout = 5};
  fetch(&o, &r);
  CHECK_STR(r.err, "body size limit exceeded");
  result_free(&r);
  o.max_body = 0;
  fetch(&o, &r);
  CHECK_STR(r.err, "");
  CHECK_INT(r.body_len, 5000);
  result_free(&r);
  /* truncate_body: the first max_body bytes, the rest read and dropped, no error */
  o.max_body = 4096;
  o.truncate_body = 1;
  fetch(&o, &r);
  CHECK_STR(r.err, "");
  CHECK_INT(r.body_len, 4096);
  CHECK(r.body[0] == 'y' && r.body[4095] == 'y');
  result_free(&r);
  raw_stop(&raw);
  /* the same with a Content-Length over the limit */
  o = (mw_httpc_opts_t){.url = url("/big"), .max_body = 1000, .truncate_body = 1, .timeout = 5};
  CHECK_INT(fetch(&o, &r), 0);
  CHECK_STR(r.err, "");
  CHECK_INT(r.body_len, 1000);
  result_free(&r);
}

static void test_refused(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  bind(fd, (struct sockaddr *)&a, sizeof a);
  getsockname(fd, (struct sockaddr *)&a, &alen);
  close(fd); /* nobody listens there now */
  char u[64];
  snprintf(u, sizeof u, "http://127.0.0.1:%d/metrics", ntohs(a.sin_port));
  mw_httpc_opts_t o = {.url = u, .timeout = 5};
  result_t r;
  CHECK_INT(fetch(&o, &r), 0);
  CHECK_INT(r.status, 0);
  CHECK(strncmp(r.err, "connect: connection refused", 27) == 0);
  result_free(&r);
}

static void test_bad_options(void) {
  char err[256];
  mw_httpc_opts_t o = {.url = "ftp://example.com/x"};
  CHECK_INT(mw_httpc_request(client, &o, on_done, NULL, NULL, err, sizeof err), -1);
  CHECK(strstr(err, "unsupported protocol scheme") != NULL);
  mw_httpc_header_t h[] = {{"X-Bad", "a\r\nInjected: yes"}};
  o = (mw_httpc_opts_t){.url = url("/hello"), .headers = h, .nheaders = 1};
  CHECK_INT(mw_httpc_request(client, &o, on_done, NULL, NULL, err, sizeof err), -1);
  CHECK_STR(err, "invalid value for header X-Bad");
  o = (mw_httpc_opts_t){.url = url("/hello"), .password_file = "/nonexistent/pw"};
  CHECK_INT(mw_httpc_request(client, &o, on_done, NULL, NULL, err, sizeof err), -1);
  CHECK(strstr(err, "unable to read basic auth password file /nonexistent/pw") == err);
  CHECK_INT(mw_httpc_pending(client), 0);
}

static void test_gzip_round_trip(void) {
  mw_httpc_opts_t o = {.url = url("/gzip"), .accept_gzip = 1, .timeout = 5};
  result_t r;
  CHECK_INT(fetch(&o, &r), 0);
  CHECK_STR(r.err, "");
  CHECK_STR(srv.seen_ae, "gzip");
  CHECK_INT(r.gzip, 1);
  CHECK(r.body_len > 0 && (unsigned char)r.body[0] == 0x1f); /* raw, as sent */
  char *out;
  size_t len;
  char err[128];
  CHECK_INT(mw_gunzip_all(r.body, r.body_len, 0, &out, &len, err, sizeof err), 0);
  CHECK_INT(len, sizeof gz_text - 1);
  CHECK_STR(out, gz_text);
  free(out);
  /* the limit applies to the inflated size */
  CHECK_INT(mw_gunzip_all(r.body, r.body_len, 10, &out, &len, err, sizeof err), -1);
  CHECK_STR(err, "body size limit exceeded");
  CHECK(out == NULL);
  CHECK_INT(mw_gunzip_all(r.body, r.body_len, sizeof gz_text - 1, &out, &len, err, sizeof err), 0);
  free(out);
  result_free(&r);
}

static void test_gunzip_fallbacks(void) {
  char err[128], *out;
  size_t len, la, lb;
  /* two members: libdeflate stops after the first, zlib reads both */
  unsigned char *a = gz("first,", 6, &la), *b = gz("second", 6, &lb);
  unsigned char *two = malloc(la + lb);
  memcpy(two, a, la);
  memcpy(two + la, b, lb);
  CHECK_INT(mw_gunzip_all(two, la + lb, 0, &out, &len, err, sizeof err), 0);
  CHECK_STR(out, "first,second");
  free(out);
  CHECK_INT(mw_gunzip_all(two, la + lb, 8, &out, &len, err, sizeof err), -1);
  CHECK_STR(err, "body size limit exceeded");
  free(two);

  /* a large body of a lying ISIZE (as after 4 GiB wrap-around): zlib, bounded */
  size_t big_len = 1 << 20;
  char *big = malloc(big_len);
  for (size_t i = 0; i < big_len; i++)
    big[i] = (char)('0' + (i * 7) % 10);
  size_t zl;
  unsigned char *z = gz(big, big_len, &zl);
  CHECK_INT(mw_gunzip_all(z, zl, 0, &out, &len, err, sizeof err), 0);
  CHECK_INT(len, big_len);
  CHECK(memcmp(out, big, big_len) == 0);
  free(out);
  CHECK_INT(mw_gunzip_all(z, zl, big_len - 1, &out, &len, err, sizeof err), -1);
  CHECK_STR(err, "body size limit exceeded");
  z[zl - 1] = 0xff; /* ISIZE now says ~4 GiB: implausible, zlib then rejects the lie */
  CHECK_INT(mw_gunzip_all(z, zl, 0, &out, &len, err, sizeof err), -1);
  CHECK(strstr(err, "gzip: invalid data") == err);
  free(z);
  free(big);

  /* truncated and non-gzip input */
  CHECK_INT(mw_gunzip_all(a, la - 6, 0, &out, &len, err, sizeof err), -1);
  CHECK_INT(mw_gunzip_all("hello world, not gzip", 21, 0, &out, &len, err, sizeof err), -1);
  CHECK_STR(err, "gzip: invalid header");
  free(a);
  free(b);
}

/* mw_gzip: one gzip member that inflates back to its input, the empty input included. */
static void test_gzip(void) {
  char err[128], *out;
  unsigned char *z;
  size_t zl, len;
  CHECK_INT(mw_gzip(gz_text, sizeof gz_text - 1, &z, &zl), 0);
  CHECK(zl >= 18 && z[0] == 0x1f && z[1] == 0x8b);
  CHECK_INT(mw_gunzip_all(z, zl, 0, &out, &len, err, sizeof err), 0);
  CHECK_INT(len, sizeof gz_text - 1);
  CHECK_STR(out, gz_text);
  free(out);
  free(z);
  CHECK_INT(mw_gzip(NULL, 0, &z, &zl), 0);
  CHECK_INT(mw_gunzip_all(z, zl, 0, &out, &len, err, sizeof err), 0);
  CHECK_INT(len, 0);
  free(out);
  free(z);
}

/* Steps until done or failed; *steps counts the steps that returned "more". */
static int gunzip_steps(const void *in, size_t in_len, size_t max, size_t budget, char **out,
                        size_t *len, size_t *steps, char *err, size_t errlen) {
  mw_gunzip_t *g = mw_gunzip_new(in, in_len, max, err, errlen);
  *steps = 0;
  if (!g) return -1;
  int r;
  while ((r = mw_gunzip_step(g, budget, out, len, err, errlen)) == 0)
    (*steps)++;
  mw_gunzip_free(g);
  return r;
}

static void test_gunzip_steps(void) {
  char err[128], *out;
  size_t len, zl, steps;
  size_t big_len = 1 << 20;
  char *big = malloc(big_len);
  for (size_t i = 0; i < big_len; i++)
    big[i] = (char)('0' + (i * 7) % 10);
  unsigned char *z = gz(big, big_len, &zl);
  /* within four budgets: libdeflate, one step */
  CHECK_INT(gunzip_steps(z, zl, 0, big_len / 4, &out, &len, &steps, err, sizeof err), 1);
  CHECK_INT(steps, 0);
  CHECK_INT(len, big_len);
  CHECK(memcmp(out, big, big_len) == 0);
  free(out);
  /* more: zlib, about a budget of output a step, the same bytes */
  CHECK_INT(gunzip_steps(z, zl, 0, 64 * 1024, &out, &len, &steps, err, sizeof err), 1);
  CHECK(steps >= 15 && steps <= 16);
  CHECK_INT(len, big_len);
  CHECK(memcmp(out, big, big_len) == 0);
  free(out);
  /* the limit, in steps: it fails once output passes it, not at the end */
  mw_gunzip_t *g = mw_gunzip_new(z, zl, big_len / 2, err, sizeof err);
  CHECK(g != NULL);
  int r;
  steps = 0;
  while ((r = mw_gunzip_step(g, 64 * 1024, &out, &len, err, sizeof err)) == 0)
    steps++;
  CHECK_INT(r, -1);
  CHECK_STR(err, "body size limit exceeded");
  CHECK(steps >= 7 && steps <= 9);
  mw_gunzip_free(g);
  /* a bomb whose ISIZE lies small: libdeflate gives up at that size, zlib goes on
   * in bounded steps and stops past the limit */
  size_t bomb_len = 32u << 20;
  char *zeros = calloc(1, bomb_len);
  size_t bl;
  unsigned char *bomb = gz(zeros, bomb_len, &bl);
  bomb[bl - 4] = 100; /* ISIZE: 100 bytes */
  bomb[bl - 3] = bomb[bl - 2] = bomb[bl - 1] = 0;
  CHECK_INT(gunzip_steps(bomb, bl, 8u << 20, 1u << 20, &out, &len, &steps, err, sizeof err), -1);
  CHECK_STR(err, "body size limit exceeded");
  CHECK(steps >= 7 && steps <= 9);
  /* without a limit the lie is found at the end */
  CHECK_INT(gunzip_steps(bomb, bl, 0, 1u << 20, &out, &len, &steps, err, sizeof err), -1);
  CHECK(strstr(err, "gzip: invalid data") == err);
  CHECK(steps >= 31 && steps <= 33);
  free(bomb);
  free(zeros);
  /* not gzip: refused at once */
  CHECK(mw_gunzip_new("hello world, not gzip", 21, 0, err, sizeof err) == NULL);
  CHECK_STR(err, "gzip: invalid header");
  free(z);
  free(big);
}

static void test_cancel(void) {
  result_t r1, r2;
  memset(&r1, 0, sizeof r1);
  memset(&r2, 0, sizeof r2);
  mw_httpc_req_t *req;
  char err[256];
  mw_httpc_opts_t o = {.url = url("/slow"), .timeout = 5};
  CHECK_INT(mw_httpc_request(client, &o, on_done, &r1, &req, err, sizeof err), 0);
  run_for(0.1); /* connected and waiting */
  CHECK_INT(mw_httpc_pending(client), 1);
  mw_httpc_cancel(req);
  CHECK_INT(mw_httpc_pending(client), 0);
  run_for(1.2); /* the server answers into the void */
  CHECK_INT(r1.calls, 0);
  /* the client goes on working */
  o.url = url("/hello");
  CHECK_INT(fetch(&o, &r2), 0);
  CHECK_INT(r2.status, 200);
  result_free(&r2);
  /* cancelling before the loop ever ran */
  CHECK_INT(mw_httpc_request(client, &o, on_done, &r1, &req, err, sizeof err), 0);
  mw_httpc_cancel(req);
  run_for(0.05);
  CHECK_INT(r1.calls, 0);
}

/* A callback that cancels itself (no-op), cancels a sibling, and starts a new request. */
typedef struct {
  mw_httpc_req_t *self, *sibling;
  result_t next;
  int calls;
} chain_t;

static void on_chain(void *ctx, mw_httpc_resp_t *resp) {
  chain_t *c = ctx;
  (void)resp;
  c->calls++;
  mw_httpc_cancel(c->self);
  mw_httpc_cancel(c->sibling);
  c->sibling = NULL;
  mw_httpc_opts_t o = {.url = url("/hello")};
  char err[256];
  mw_httpc_request(client, &o, on_done, &c->next, NULL, err, sizeof err);
}

static void test_callback_reentry(void) {
  chain_t c;
  memset(&c, 0, sizeof c);
  result_t sib;
  memset(&sib, 0, sizeof sib);
  char err[256];
  mw_httpc_opts_t o = {.url = url("/hello")}, slow = {.url = url("/slow")};
  CHECK_INT(mw_httpc_request(client, &slow, on_done, &sib, &c.sibling, err, sizeof err), 0);
  CHECK_INT(mw_httpc_request(client, &o, on_chain, &c, &c.self, err, sizeof err), 0);
  run_until(&c.next.done);
  CHECK_INT(c.calls, 1);
  CHECK_INT(c.next.status, 200);
  CHECK_INT(sib.calls, 0);
  result_free(&c.next);
  run_for(1.1);
}

static void test_redirects(void) {
  mw_httpc_opts_t o = {.url = url("/redirect"), .follow_redirects = 1, .timeout = 5};
  result_t r;
  CHECK_INT(fetch(&o, &r), 0);
  CHECK_INT(r.status, 200);
  CHECK_STR(r.body, "hello");
  CHECK_STR(r.url, url("/hello"));
  CHECK_STR(r.location, ""); /* headers of the last response only */
  result_free(&r);
  o.follow_redirects = 0;
  o.url = url("/redirect"); /* url() reuses one buffer */
  CHECK_INT(fetch(&o, &r), 0);
  CHECK_INT(r.status, 302);
  CHECK_STR(r.location, "/hello");
  CHECK_STR(r.body, "moved");
  result_free(&r);
}

static void test_status_passthrough(void) {
  mw_httpc_opts_t o = {.url = url("/busy"), .timeout = 5};
  result_t r;
  CHECK_INT(fetch(&o, &r), 0);
  CHECK_STR(r.err, "");
  CHECK_INT(r.status, 503);
  CHECK_STR(r.retry_after, "7");
  result_free(&r);
  o.url = url("/nothing-here");
  CHECK_INT(fetch(&o, &r), 0);
  CHECK_INT(r.status, 404);
  result_free(&r);
}

/* Writes s as the whole content of path (made if missing). */
static void put_file(const char *path, const char *s) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  CHECK(fd >= 0);
  CHECK_INT(write(fd, s, strlen(s)), (long)strlen(s));
  close(fd);
}

static void test_auth(void) {
  mw_httpc_opts_t o = {.url = url("/hello"), .username = "alice", .password = "s3cret"};
  result_t r;
  CHECK_INT(fetch(&o, &r), 0);
  CHECK_STR(srv.seen_auth, "Basic YWxpY2U6czNjcmV0");
  result_free(&r);

  char path[] = "/tmp/mw_httpc_pw_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  CHECK_INT(write(fd, "  tok-en\n", 9), 9);
  close(fd);
  o = (mw_httpc_opts_t){.url = url("/hello"), .username = "alice", .password_file = path};
  fetch(&o, &r);
  CHECK_STR(srv.seen_auth, "Basic YWxpY2U6dG9rLWVu"); /* "alice:tok-en", trimmed */
  result_free(&r);
  o = (mw_httpc_opts_t){.url = url("/hello"), .auth_credentials = "abc"};
  fetch(&o, &r);
  CHECK_STR(srv.seen_auth, "Bearer abc");
  result_free(&r);
  o = (mw_httpc_opts_t){.url = url("/hello"), .auth_type = "Token", .auth_credentials_file = path};
  fetch(&o, &r);
  CHECK_STR(srv.seen_auth, "Token tok-en");
  result_free(&r);
  /* both (a kubeconfig's token and tokenFile): the file wins, credentials while it cannot be
   * read or is empty */
  o = (mw_httpc_opts_t){
      .url = url("/hello"), .auth_credentials = "inline", .auth_credentials_file = path};
  fetch(&o, &r);
  CHECK_STR(srv.seen_auth, "Bearer tok-en");
  result_free(&r);
  put_file(path, " \n");
  fetch(&o, &r);
  CHECK_STR(r.err, "");
  CHECK_STR(srv.seen_auth, "Bearer inline");
  result_free(&r);
  unlink(path);
  fetch(&o, &r);
  CHECK_STR(r.err, "");
  CHECK_STR(srv.seen_auth, "Bearer inline");
  result_free(&r);
  /* the file back (a rotated token): it wins again at the next request */
  put_file(path, "rotated\n");
  fetch(&o, &r);
  CHECK_STR(r.err, "");
  CHECK_STR(srv.seen_auth, "Bearer rotated");
  result_free(&r);
  unlink(path);
  o.auth_credentials = NULL; /* the file alone: its absence fails the request */
  fetch(&o, &r);
  CHECK(strstr(r.err, "unable to read authorization credentials file") != NULL);
  result_free(&r);
  put_file(path, "back\n"); /* and its return mends it */
  fetch(&o, &r);
  CHECK_STR(r.err, "");
  CHECK_STR(srv.seen_auth, "Bearer back");
  result_free(&r);
  unlink(path);
}

static int many_done;
static void on_many(void *ctx, mw_httpc_resp_t *resp) {
  (void)ctx;
  if (resp->status == 200 && !resp->err) many_done++;
}

static void test_many_concurrent(void) {
  char err[256];
  many_done = 0;
  int n = 300;
  for (int i = 0; i < n; i++) {
    mw_httpc_opts_t o = {.url = url("/hello"), .timeout = 10};
    CHECK_INT(mw_httpc_request(client, &o, on_many, NULL, NULL, err, sizeof err), 0);
  }
  CHECK_INT(mw_httpc_pending(client), n);
  ev_timer guard;
  ev_timer_init(&guard, on_deadline, 10.0, 0);
  ev_timer_start(loop, &guard);
  while (mw_httpc_pending(client) && ev_is_active(&guard))
    ev_run(loop, EVRUN_ONCE);
  ev_timer_stop(loop, &guard);
  CHECK_INT(many_done, n);
}

static void test_free_with_pending(void) {
  mw_httpc_t *c2;
  char err[256];
  CHECK_INT(mw_httpc_new(&c2, loop, err, sizeof err), 0);
  result_t r;
  memset(&r, 0, sizeof r);
  mw_httpc_opts_t o = {.url = url("/slow")};
  for (int i = 0; i < 3; i++)
    CHECK_INT(mw_httpc_request(c2, &o, on_done, &r, NULL, err, sizeof err), 0);
  run_for(0.1);
  mw_httpc_free(c2);
  run_for(1.1);
  CHECK_INT(r.calls, 0);
}

/* ---- streaming (a Kubernetes watch): the body reaches on_data as it arrives ---- */

/* A peer that sends `first` at once, then `second` 0.3 s later, and closes. */
typedef struct {
  ev_io io;
  ev_timer later;
  int fd, cfd, port, sent_second;
  const char *first, *second;
} drip_t;

static void drip_write(int fd, const char *s) {
  size_t off = 0, len = strlen(s);
  while (off < len) {
    ssize_t k = write(fd, s + off, len - off);
    if (k <= 0) break;
    off += (size_t)k;
  }
}

static void drip_on_later(EV_P_ ev_timer *w, int revents) {
  (void)loop, (void)revents;
  drip_t *d = (drip_t *)((char *)w - offsetof(drip_t, later));
  d->sent_second = 1;
  drip_write(d->cfd, d->second);
  close(d->cfd);
  d->cfd = -1;
}

static void drip_on_accept(EV_P_ ev_io *w, int revents) {
  (void)revents;
  drip_t *d = (drip_t *)w;
  int fd = accept(d->fd, NULL, NULL);
  if (fd < 0) return;
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf);
  (void)n;
  d->cfd = fd;
  drip_write(fd, d->first);
  ev_timer_init(&d->later, drip_on_later, 0.3, 0);
  ev_timer_start(EV_A_ & d->later);
}

static int drip_start(drip_t *d, const char *first, const char *second) {
  memset(d, 0, sizeof *d);
  d->first = first;
  d->second = second;
  d->cfd = -1;
  d->fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  if (bind(d->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(d->fd, 16) != 0) return -1;
  getsockname(d->fd, (struct sockaddr *)&a, &alen);
  d->port = ntohs(a.sin_port);
  ev_io_init(&d->io, drip_on_accept, d->fd, EV_READ);
  ev_io_start(loop, &d->io);
  return 0;
}

static void drip_stop(drip_t *d) {
  ev_io_stop(loop, &d->io);
  ev_timer_stop(loop, &d->later);
  if (d->cfd >= 0) close(d->cfd);
  close(d->fd);
}

typedef struct {
  result_t r; /* first: on_done's ctx */
  drip_t *peer;
  char got[256];
  size_t got_len;
  int chunks, before_second, status, stop_after;
} stream_t;

static int on_stream_data(void *ctx, int status, const char *p, size_t len) {
  stream_t *s = ctx;
  s->chunks++;
  s->status = status;
  if (!s->peer->sent_second) s->before_second += (int)len;
  if (s->got_len + len < sizeof s->got) {
    memcpy(s->got + s->got_len, p, len);
    s->got_len += len;
  }
  return s->stop_after && s->chunks >= s->stop_after ? -1 : 0;
}

static int stream(stream_t *s, drip_t *d, size_t max_body, int stop_after) {
  memset(s, 0, sizeof *s);
  s->peer = d;
  s->stop_after = stop_after;
  char u[64], err[256];
  snprintf(u, sizeof u, "http://127.0.0.1:%d/watch", d->port);
  mw_httpc_opts_t o = {.url = u, .timeout = 5, .max_body = max_body, .on_data = on_stream_data};
  if (mw_httpc_request(client, &o, on_done, s, NULL, err, sizeof err) != 0) return -1;
  run_until(&s->r.done);
  return 0;
}

static void test_streaming(void) {
  static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n"
                             "f\r\n{\"type\":\"ADDED\"\r\n"
                             "2\r\n}\n\r\n";
  static const char tail[] = "14\r\n{\"type\":\"BOOKMARK\"}\n\r\n0\r\n\r\n";
  drip_t d;
  stream_t s;
  CHECK_INT(drip_start(&d, head, tail), 0);
  /* the first event arrives before the peer sends the rest; max_body does not bound a stream */
  CHECK_INT(stream(&s, &d, 8, 0), 0);
  CHECK_STR(s.r.err, "");
  CHECK_INT(s.r.status, 200);
  CHECK_INT(s.status, 200);
  CHECK_INT(s.before_second, 17);
  s.got[s.got_len] = '\0';
  CHECK_STR(s.got, "{\"type\":\"ADDED\"}\n{\"type\":\"BOOKMARK\"}\n");
  CHECK_INT(s.r.body_len, 0);
  result_free(&s.r);
  /* the receiver stops the stream */
  CHECK_INT(stream(&s, &d, 0, 1), 0);
  CHECK_STR(s.r.err, "stream stopped by the receiver");
  CHECK_INT(s.chunks, 1);
  result_free(&s.r);
  drip_stop(&d);

  /* another status: the body is collected for done, bounded by max_body, never streamed */
  static const char gone[] =
      "HTTP/1.1 410 Gone\r\nContent-Length: 20\r\n\r\n{\"reason\":\"Expired\"}";
  CHECK_INT(drip_start(&d, gone, ""), 0);
  CHECK_INT(stream(&s, &d, 100, 0), 0);
  CHECK_INT(s.r.status, 410);
  CHECK_INT(s.chunks, 0);
  CHECK_INT(s.r.body_len, 20);
  result_free(&s.r);
  CHECK_INT(stream(&s, &d, 10, 0), 0);
  CHECK_STR(s.r.err, "body size limit exceeded");
  result_free(&s.r);
  drip_stop(&d);
}

int main(void) {
  loop = EV_DEFAULT;
  char err[256];
  if (server_start() != 0) return 1;
  if (mw_httpc_new(&client, loop, err, sizeof err) != 0) {
    fprintf(stderr, "httpc: %s\n", err);
    return 1;
  }
  MW_RUN(test_get);
  MW_RUN(test_post_body);
  MW_RUN(test_timeout);
  MW_RUN(test_body_limit);
  MW_RUN(test_refused);
  MW_RUN(test_bad_options);
  MW_RUN(test_gzip_round_trip);
  MW_RUN(test_gunzip_fallbacks);
  MW_RUN(test_gzip);
  MW_RUN(test_gunzip_steps);
  MW_RUN(test_cancel);
  MW_RUN(test_callback_reentry);
  MW_RUN(test_redirects);
  MW_RUN(test_status_passthrough);
  MW_RUN(test_auth);
  MW_RUN(test_many_concurrent);
  MW_RUN(test_streaming);
  MW_RUN(test_free_with_pending);
  mw_httpc_free(client);
  server_stop();
  return mw_test_summary();
}
