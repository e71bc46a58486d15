/* The HTTP server on a libev loop, exercised with libcurl from a client thread. */
#include <curl/curl.h>
#include <ev.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/server.h"
#include "test.h"

/* ---- the loop glue, as an embedder writes it ---- */

typedef struct {
  ev_io io;
  ev_timer timer;
  mw_httpd_t *h;
  mw_httpd_req_t *deferred; /* the request /later answers from a timer */
  ev_timer answer;
  int requests, done;
  char seen_query[64], seen_accept[64];
} server_t;

static struct ev_loop *loop;

static void rearm(server_t *s) {
  double t = mw_httpd_timeout(s->h);
  ev_timer_stop(loop, &s->timer);
  if (t >= 0) {
    ev_timer_set(&s->timer, t, 0);
    ev_timer_start(loop, &s->timer);
  }
}

static void on_io(EV_P_ ev_io *w, int revents) {
  (void)loop, (void)revents;
  server_t *s = w->data;
  mw_httpd_run_once(s->h);
  rearm(s);
}

static void on_timer(EV_P_ ev_timer *w, int revents) {
  (void)loop, (void)revents;
  server_t *s = w->data;
  mw_httpd_run_once(s->h);
  rearm(s);
}

static int respond_text(mw_httpd_req_t *req, int status, const char *body) {
  static const char *hdrs[] = {"X-Test", "yes"};
  mw_httpd_resp_t resp = {.status = status,
                          .content_type = "text/plain",
                          .headers = hdrs,
                          .header_pairs = 1,
                          .body = body,
                          .body_len = strlen(body)};
  char err[128];
  return mw_httpd_respond(req, &resp, err, sizeof err);
}

static void on_answer(EV_P_ ev_timer *w, int revents) {
  (void)loop, (void)revents;
  server_t *s = w->data;
  if (s->deferred) {
    char *body = strdup("answered later");
    mw_httpd_resp_t resp = {.status = 202, .body = body, .body_len = strlen(body), .body_owned = 1};
    char err[128];
    mw_httpd_respond(s->deferred, &resp, err, sizeof err);
    rearm(s);
  }
}

static int on_request(void *ctx, mw_httpd_req_t *req) {
  server_t *s = ctx;
  const char *path = mw_httpd_req_path(req), *method = mw_httpd_req_method(req);
  s->requests++;
  if (strcmp(path, "/hello") == 0) {
    size_t n;
    const mw_httpd_kv_t *q = mw_httpd_req_query(req, &n);
    s->seen_query[0] = '\0';
    for (size_t i = 0; i < n; i++) {
      size_t len = strlen(s->seen_query);
      snprintf(s->seen_query + len, sizeof s->seen_query - len, "%s=%s;", q[i].name, q[i].value);
    }
    const char *accept = mw_httpd_req_header(req, "accept");
    snprintf(s->seen_accept, sizeof s->seen_accept, "%s", accept ? accept : "");
    respond_text(req, 200, "hello");
    return MW_HTTPD_ANSWERED;
  }
  if (strcmp(path, "/echo") == 0 && strcmp(method, "POST") == 0) {
    size_t len;
    const char *body = mw_httpd_req_body(req, &len);
    const char *ct = mw_httpd_req_header(req, "Content-Type");
    mw_httpd_resp_t resp = {.status = 200, .content_type = ct, .body = body, .body_len = len};
    char err[128];
    mw_httpd_respond(req, &resp, err, sizeof err);
    return MW_HTTPD_ANSWERED;
  }
  if (strcmp(path, "/later") == 0 || strcmp(path, "/slow") == 0) {
    s->deferred = req;
    ev_timer_set(&s->answer, path[1] == 'l' ? 0.05 : 0.3, 0);
    ev_timer_start(loop, &s->answer);
    return MW_HTTPD_LATER;
  }
  if (strcmp(path, "/big") == 0) { /* several MiB: written over many loop turns */
    size_t len = (size_t)8 << 20;
    char *body = malloc(len);
    for (size_t i = 0; i < len; i++)
      body[i] = (char)('a' + i % 26);
    mw_httpd_resp_t resp = {.status = 200, .body = body, .body_len = len, .body_owned = 1};
    char err[128];
    mw_httpd_respond(req, &resp, err, sizeof err);
    return MW_HTTPD_ANSWERED;
  }
  if (strcmp(path, "/never") == 0) return MW_HTTPD_LATER;
  if (strcmp(path, "/forgot") == 0) return MW_HTTPD_ANSWERED; /* no answer: 500 */
  if (strcmp(path, "/twice") == 0) {
    respond_text(req, 200, "first");
    return respond_text(req, 200, "second") == -1 ? MW_HTTPD_ANSWERED : MW_HTTPD_LATER;
  }
  if (strcmp(path, "/badstatus") == 0) {
    if (respond_text(req, 42, "x") == 0) return MW_HTTPD_ANSWERED;
    respond_text(req, 400, "bad status refused");
    return MW_HTTPD_ANSWERED;
  }
  respond_text(req, 404, "not found");
  return MW_HTTPD_ANSWERED;
}

static void on_done(void *ctx, mw_httpd_req_t *req) {
  server_t *s = ctx;
  if (req == s->deferred) s->deferred = NULL;
  s->done++;
}

/* ---- the client thread ---- */

typedef struct {
  const char *method, *path, *body, *content_type;
  size_t body_len;   /* 0: strlen(body) */
  long timeout_ms;   /* 0: 10 s */
  unsigned pause_ms; /* sleep before the call */
  long status;
  char resp[256];
  size_t resp_len;
  size_t total; /* bytes of body received */
  int body_ok;  /* the body is the /big pattern */
  char x_test[16];
} call_t;

typedef struct {
  char base[96];
  call_t *calls;
  size_t n;
  ev_async done;
} client_t;

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  call_t *c = ud;
  size_t len = size * n, room = sizeof c->resp - 1 - c->resp_len;
  for (size_t i = 0; i < len && c->body_ok; i++)
    if (p[i] != (char)('a' + (c->total + i) % 26)) c->body_ok = 0;
  c->total += len;
  memcpy(c->resp + c->resp_len, p, len < room ? len : room);
  c->resp_len += len < room ? len : room;
  c->resp[c->resp_len] = '\0';
  return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  call_t *c = ud;
  size_t len = size * n;
  if (len > 8 && strncasecmp(p, "X-Test: ", 8) == 0)
    snprintf(c->x_test, sizeof c->x_test, "%.*s", (int)(len - 10), p + 8);
  return len;
}

static void *client_main(void *arg) {
  client_t *cl = arg;
  for (size_t i = 0; i < cl->n; i++) {
    call_t *c = &cl->calls[i];
    CURL *e = curl_easy_init();
    char url[256];
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: text/plain;q=0.5");
    if (c->content_type) {
      char h[128];
      snprintf(h, sizeof h, "Content-Type: %s", c->content_type);
      hdrs = curl_slist_append(hdrs, h);
    }
    snprintf(url, sizeof url, "%s%s", cl->base, c->path);
    c->body_ok = 1;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    if (strcmp(c->method, "HEAD") == 0)
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    else
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->method);
    if (c->body) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE,
                       (long)(c->body_len ? c->body_len : strlen(c->body)));
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms ? c->timeout_ms : 10000L);
    if (c->pause_ms) nanosleep(&(struct timespec){0, (long)c->pause_ms * 1000000L}, NULL);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(e);
    if (rc == CURLE_OK)
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &c->status);
    else if (!c->timeout_ms)
      fprintf(stderr, "test_httpd: %s %s: %s\n", c->method, c->path, curl_easy_strerror(rc));
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(e);
  }
  ev_async_send(loop, &cl->done);
  return NULL;
}

static void on_client_done(EV_P_ ev_async *w, int revents) {
  (void)w, (void)revents;
  ev_break(EV_A_ EVBREAK_ALL);
}

static void on_deadline(EV_P_ ev_timer *w, int revents) {
  (void)w, (void)revents;
  fprintf(stderr, "test_httpd: loop deadline reached\n");
  ev_break(EV_A_ EVBREAK_ALL);
}

static int start_server(server_t *s, const char *addr, double answer_timeout, size_t max_body,
                        char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  mw_httpd_opts_t opts = {.addr = addr,
                          .max_body = max_body,
                          .answer_timeout = answer_timeout,
                          .on_request = on_request,
                          .on_done = on_done,
                          .ctx = s};
  if (mw_httpd_start(&s->h, &opts, err, errlen) != 0) return -1;
  ev_io_init(&s->io, on_io, mw_httpd_fd(s->h), EV_READ);
  s->io.data = s;
  ev_io_start(loop, &s->io);
  ev_init(&s->timer, on_timer);
  s->timer.data = s;
  ev_init(&s->answer, on_answer);
  s->answer.data = s;
  rearm(s);
  return 0;
}

static void stop_server(server_t *s) {
  ev_io_stop(loop, &s->io);
  ev_timer_stop(loop, &s->timer);
  ev_timer_stop(loop, &s->answer);
  mw_httpd_stop(s->h);
  s->h = NULL;
}

/* Runs the calls against s from a client thread while the loop serves. */
static void run_calls(server_t *s, call_t *calls, size_t n) {
  client_t cl = {.calls = calls, .n = n};
  snprintf(cl.base, sizeof cl.base, "http://%s", mw_httpd_addr(s->h));
  ev_async_init(&cl.done, on_client_done);
  ev_async_start(loop, &cl.done);
  ev_timer deadline;
  ev_timer_init(&deadline, on_deadline, 20, 0);
  ev_timer_start(loop, &deadline);
  pthread_t t;
  pthread_create(&t, NULL, client_main, &cl);
  ev_run(loop, 0);
  pthread_join(t, NULL);
  ev_timer_stop(loop, &deadline);
  ev_async_stop(loop, &cl.done);
}

static void test_requests(void) {
  server_t s;
  char err[256];
  CHECK_INT(start_server(&s, "127.0.0.1:0", 0.3, 1024, err, sizeof err), 0);
  CHECK(mw_httpd_port(s.h) > 0);
  char want[64];
  snprintf(want, sizeof want, "127.0.0.1:%d", mw_httpd_port(s.h));
  CHECK_STR(mw_httpd_addr(s.h), want);

  static char big[4096];
  memset(big, 'x', sizeof big);
  call_t calls[] = {
      {.method = "GET", .path = "/hello?a=1&b=two%20words&flag"},
      {.method = "POST", .path = "/echo", .body = "{\"k\":1}", .content_type = "application/json"},
      {.method = "GET", .path = "/nope"},
      {.method = "GET", .path = "/later"},
      {.method = "GET", .path = "/never"},
      {.method = "GET", .path = "/forgot"},
      {.method = "GET", .path = "/twice"},
      {.method = "GET", .path = "/badstatus"},
      {.method = "POST", .path = "/echo", .body = big, .body_len = sizeof big},
      {.method = "POST", .path = "/echo", .body = "", .content_type = "text/plain"},
      {.method = "GET", .path = "/big"},
      {.method = "HEAD", .path = "/head"},
      /* the client gives up before the deferred answer comes */
      {.method = "GET", .path = "/slow", .timeout_ms = 100},
      {.method = "GET", .path = "/after", .pause_ms = 400},
  };
  run_calls(&s, calls, sizeof calls / sizeof calls[0]);

  CHECK_INT(calls[0].status, 200);
  CHECK_STR(calls[0].resp, "hello");
  CHECK_STR(calls[0].x_test, "yes");
  CHECK_STR(s.seen_query, "a=1;b=two words;flag=;");
  CHECK_STR(s.seen_accept, "text/plain;q=0.5");
  CHECK_INT(calls[1].status, 200);
  CHECK_STR(calls[1].resp, "{\"k\":1}");
  CHECK_INT(calls[2].status, 404);
  CHECK_STR(calls[2].resp, "not found");
  CHECK_INT(calls[3].status, 202);
  CHECK_STR(calls[3].resp, "answered later");
  CHECK_INT(calls[4].status, 503);
  CHECK_INT(calls[5].status, 500);
  CHECK_INT(calls[6].status, 200);
  CHECK_STR(calls[6].resp, "first");
  CHECK_INT(calls[7].status, 400);
  CHECK_INT(calls[8].status, 413);
  CHECK_INT(calls[9].status, 200);
  CHECK_STR(calls[9].resp, "");
  CHECK_INT(calls[10].status, 200);
  CHECK_INT(calls[10].total, (size_t)8 << 20);
  CHECK(calls[10].body_ok);
  CHECK_INT(calls[11].status, 404);
  CHECK_INT(calls[11].total, 0);
  CHECK_INT(calls[12].status, 0);
  CHECK_INT(calls[13].status, 404);
  CHECK_INT(s.requests, 13); /* the 413 never reaches the handler */
  CHECK_INT(s.done, 13);
  stop_server(&s);
}

static void test_bind_conflict(void) {
  server_t a, b;
  char err[256], want[128];
  CHECK_INT(start_server(&a, "127.0.0.1:0", 0, 0, err, sizeof err), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", mw_httpd_port(a.h));
  CHECK_INT(start_server(&b, addr, 0, 0, err, sizeof err), -1);
  snprintf(want, sizeof want, "listen tcp %s: address already in use", addr);
  CHECK_STR(err, want);
  stop_server(&a);
}

static void test_bad_addresses(void) {
  server_t s;
  char err[256];
  CHECK_INT(start_server(&s, "127.0.0.1", 0, 0, err, sizeof err), -1);
  CHECK(strstr(err, "listen tcp 127.0.0.1: bad address") == err);
  CHECK_INT(start_server(&s, "127.0.0.1:70000", 0, 0, err, sizeof err), -1);
  CHECK_INT(start_server(&s, "::1:80", 0, 0, err, sizeof err), -1);
  CHECK_INT(start_server(&s, "192.0.2.1:0", 0, 0, err, sizeof err), -1);
  CHECK_STR(err, "listen tcp 192.0.2.1:0: cannot assign requested address");
}

static void test_localhost_and_ipv6(void) {
  server_t s;
  char err[256];
  CHECK_INT(start_server(&s, "localhost:0", 0, 0, err, sizeof err), 0);
  CHECK(strncmp(mw_httpd_addr(s.h), "127.0.0.1:", 10) == 0);
  stop_server(&s);
  if (start_server(&s, "[::1]:0", 0, 0, err, sizeof err) != 0) {
    fprintf(stderr, "test_httpd: no IPv6 loopback, skipped (%s)\n", err);
    return;
  }
  CHECK(strncmp(mw_httpd_addr(s.h), "[::1]:", 6) == 0);
  call_t calls[] = {{.method = "GET", .path = "/hello"}};
  run_calls(&s, calls, 1);
  CHECK_INT(calls[0].status, 200);
  stop_server(&s);
}

/* Stopping with a deferred request pending answers it (503) and frees it. */
static void stop_when_pending(EV_P_ ev_timer *w, int revents) {
  (void)revents;
  server_t *s = w->data;
  if (s->requests == 0) return; /* not yet */
  ev_timer_stop(EV_A_ w);
  stop_server(s);
}

static void test_stop_with_pending(void) {
  server_t s;
  char err[256];
  CHECK_INT(start_server(&s, "127.0.0.1:0", 60, 0, err, sizeof err), 0);
  ev_timer poll;
  ev_timer_init(&poll, stop_when_pending, 0.02, 0.02);
  poll.data = &s;
  ev_timer_start(loop, &poll);
  call_t calls[] = {{.method = "GET", .path = "/never"}};
  run_calls(&s, calls, 1);
  ev_timer_stop(loop, &poll);
  CHECK(s.h == NULL);
  CHECK_INT(s.requests, 1);
  CHECK_INT(s.done, 1);
  CHECK(calls[0].status == 503 || calls[0].status == 0);
}

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  loop = EV_DEFAULT;
  MW_RUN(test_requests);
  MW_RUN(test_bind_conflict);
  MW_RUN(test_bad_addresses);
  MW_RUN(test_localhost_and_ipv6);
  MW_RUN(test_stop_with_pending);
  curl_global_cleanup();
  return mw_test_summary();
}
