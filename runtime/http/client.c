/*
 * http/client.c: the HTTP client (see http/client.h), libcurl multi on libev.
 *
 * Each socket libcurl wants watched gets a small mw_httpc_sock_t holding an
 * ev_io, attached to the socket with curl_multi_assign(); the multi's one
 * timeout is an ev_timer. Both watchers call curl_multi_socket_action() and
 * then collect finished transfers with curl_multi_info_read(), outside of
 * any libcurl callback, so done callbacks may start and cancel requests.
 */
#include "http/client.h"

#include "base/err.h"
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <ev.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef MW_VERSION
#define MW_VERSION "dev"
#endif

#define MW_MAX_REDIRECTS 10L
#define MW_MAX_RESP_HEADERS 1000
#define MW_MAX_SECRET_FILE (1 << 20)

typedef struct mw_httpc_sock mw_httpc_sock_t;

struct mw_httpc {
  struct ev_loop *loop;
  CURLM *multi;
  ev_timer timer;
  mw_httpc_req_t *reqs;   /* in flight, doubly linked */
  mw_httpc_sock_t *socks; /* watched sockets, doubly linked */
  size_t pending;
  int dispatching;  /* inside mw_httpc_check_done */
  int free_pending; /* mw_httpc_free called from a done callback */
};

struct mw_httpc_sock {
  ev_io io; /* first: the watcher is the handle */
  mw_httpc_t *c;
  mw_httpc_sock_t *prev, *next;
};

struct mw_httpc_req {
  mw_httpc_t *c;
  CURL *easy;
  mw_httpc_req_t *prev, *next;
  mw_httpc_done_fn done;
  mw_httpc_data_fn on_data; /* streaming, or NULL */
  void *ctx;
  int finishing; /* its done callback is running */
  struct curl_slist *headers, *proxy_headers, *connect_to;
  char *req_body;
  /* response */
  char *body;
  size_t body_len, body_cap, max_body;
  int truncate_body;
  int too_big, oom, stopped;
  mw_httpc_header_t *resp_headers;
  size_t nresp_headers, resp_headers_cap;
  char errbuf[CURL_ERROR_SIZE];
  char err[CURL_ERROR_SIZE + 96];
};

/* ---- sockets and timer: libcurl <-> libev ---- */

static void mw_httpc_check_done(mw_httpc_t *c);

static void mw_httpc_on_io(EV_P_ ev_io *w, int revents) {
  (void)loop;
  mw_httpc_t *c = ((mw_httpc_sock_t *)w)->c;
  int flags =
      (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
  int running;
  curl_multi_socket_action(c->multi, w->fd, flags, &running); /* w may be freed inside */
  mw_httpc_check_done(c);
}

static void mw_httpc_on_timer(EV_P_ ev_timer *w, int revents) {
  (void)loop, (void)revents;
  mw_httpc_t *c = w->data;
  int running;
  curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  mw_httpc_check_done(c);
}

static void mw_httpc_sock_free(mw_httpc_t *c, mw_httpc_sock_t *s) {
  ev_io_stop(c->loop, &s->io);
  if (s->prev)
    s->prev->next = s->next;
  else
    c->socks = s->next;
  if (s->next) s->next->prev = s->prev;
  free(s);
}

/* CURLMOPT_SOCKETFUNCTION: watch s for what libcurl asks, or stop. */
static int mw_httpc_on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
  (void)easy;
  mw_httpc_t *c = userp;
  mw_httpc_sock_t *sk = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (sk) {
      curl_multi_assign(c->multi, s, NULL);
      mw_httpc_sock_free(c, sk);
    }
    return 0;
  }
  if (!sk) {
    sk = calloc(1, sizeof *sk);
    if (!sk) return -1;
    sk->c = c;
    sk->next = c->socks;
    if (c->socks) c->socks->prev = sk;
    c->socks = sk;
    ev_init(&sk->io, mw_httpc_on_io);
    curl_multi_assign(c->multi, s, sk);
  }
  int events = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
  ev_io_stop(c->loop, &sk->io);
  ev_io_set(&sk->io, s, events);
  ev_io_start(c->loop, &sk->io);
  return 0;
}

/* CURLMOPT_TIMERFUNCTION: one timeout for the whole multi; -1 deletes it.
 * Never calls back into libcurl (not allowed here): a 0 timeout fires on
 * the next loop iteration. */
static int mw_httpc_on_timeout(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  mw_httpc_t *c = userp;
  ev_timer_stop(c->loop, &c->timer);
  if (timeout_ms >= 0) {
    ev_timer_set(&c->timer, (double)timeout_ms / 1000.0, 0.);
    ev_timer_start(c->loop, &c->timer);
  }
  return 0;
}

/* ---- client ---- */

int mw_httpc_new(mw_httpc_t **out, struct ev_loop *loop, char *err, size_t errlen) {
  *out = NULL;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    mw_seterr(err, errlen, "curl_global_init failed");
    return -1;
  }
  mw_httpc_t *c = calloc(1, sizeof *c);
  if (!c) goto fail;
  c->loop = loop ? loop : EV_DEFAULT;
  c->multi = curl_multi_init();
  if (!c->multi) goto fail;
  ev_init(&c->timer, mw_httpc_on_timer);
  c->timer.data = c;
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, mw_httpc_on_socket);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, mw_httpc_on_timeout);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
  curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  *out = c;
  return 0;
fail:
  free(c);
  curl_global_cleanup();
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

static void mw_httpc_req_free(mw_httpc_req_t *r) {
  if (r->easy) curl_easy_cleanup(r->easy);
  curl_slist_free_all(r->headers);
  curl_slist_free_all(r->proxy_headers);
  curl_slist_free_all(r->connect_to);
  free(r->req_body);
  free(r->body);
  for (size_t i = 0; i < r->nresp_headers; i++)
    free((char *)r->resp_headers[i].name); /* the value lives in the same block */
  free(r->resp_headers);
  free(r);
}

static void mw_httpc_unlink(mw_httpc_req_t *r) {
  mw_httpc_t *c = r->c;
  if (r->prev)
    r->prev->next = r->next;
  else
    c->reqs = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
  c->pending--;
}

void mw_httpc_cancel(mw_httpc_req_t *r) {
  if (!r || r->finishing) return;
  mw_httpc_unlink(r);
  curl_multi_remove_handle(r->c->multi, r->easy);
  mw_httpc_req_free(r);
}

static void mw_httpc_destroy(mw_httpc_t *c) {
  while (c->reqs)
    mw_httpc_cancel(c->reqs);
  curl_multi_cleanup(c->multi);
  while (c->socks) /* libcurl may close pooled connections without telling us */
    mw_httpc_sock_free(c, c->socks);
  ev_timer_stop(c->loop, &c->timer);
  free(c);
  curl_global_cleanup();
}

void mw_httpc_free(mw_httpc_t *c) {
  if (!c) return;
  if (c->dispatching) {
    while (c->reqs)
      mw_httpc_cancel(c->reqs);
    c->free_pending = 1;
    return;
  }
  mw_httpc_destroy(c);
}

size_t mw_httpc_pending(const mw_httpc_t *c) { return c->pending; }

/* ---- response collection (libcurl callbacks) ---- */

static void mw_httpc_clear_headers(mw_httpc_req_t *r) {
  for (size_t i = 0; i < r->nresp_headers; i++)
    free((char *)r->resp_headers[i].name);
  r->nresp_headers = 0;
}

/* CURLOPT_HEADERFUNCTION: one header line at a time. A status line starts a
 * new response (a redirect or 100 Continue came before): forget the last. */
static size_t mw_httpc_on_header(char *p, size_t size, size_t n, void *ud) {
  mw_httpc_req_t *r = ud;
  size_t len = size * n, total = len;
  while (len && (p[len - 1] == '\n' || p[len - 1] == '\r'))
    len--;
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    mw_httpc_clear_headers(r);
    r->body_len = 0;
    return total;
  }
  if (len == 0 || p[0] == ' ' || p[0] == '\t') return total; /* end, or obsolete folding */
  const char *colon = memchr(p, ':', len);
  if (!colon || colon == p || r->nresp_headers >= MW_MAX_RESP_HEADERS) return total;
  size_t nlen = (size_t)(colon - p);
  while (nlen && (p[nlen - 1] == ' ' || p[nlen - 1] == '\t'))
    nlen--;
  const char *v = colon + 1, *end = p + len;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
    end--;
  size_t vlen = (size_t)(end - v);
  if (r->nresp_headers == r->resp_headers_cap) {
    size_t cap = r->resp_headers_cap ? 2 * r->resp_headers_cap : 16;
    mw_httpc_header_t *h = realloc(r->resp_headers, cap * sizeof *h);
    if (!h) goto oom;
    r->resp_headers = h;
    r->resp_headers_cap = cap;
  }
  char *block = malloc(nlen + vlen + 2);
  if (!block) goto oom;
  memcpy(block, p, nlen);
  block[nlen] = '\0';
  memcpy(block + nlen + 1, v, vlen);
  block[nlen + 1 + vlen] = '\0';
  r->resp_headers[r->nresp_headers].name = block;
  r->resp_headers[r->nresp_headers].value = block + nlen + 1;
  r->nresp_headers++;
  return total;
oom:
  r->oom = 1;
  return 0;
}

/* CURLOPT_WRITEFUNCTION: appends to the body; over max_body fails the
 * transfer (truncate_body: keeps max_body bytes, reads and drops the rest).
 * The first chunk reserves Content-Length bytes when known. */
static size_t mw_httpc_on_write(char *p, size_t size, size_t n, void *ud) {
  mw_httpc_req_t *r = ud;
  size_t len = size * n;
  if (r->on_data) {
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
      if (r->on_data(r->ctx, (int)status, p, len) != 0) {
        r->stopped = 1;
        return 0;
      }
      return len;
    }
  }
  size_t total = len;
  if (r->max_body && (len > r->max_body || r->body_len > r->max_body - len)) {
    if (!r->truncate_body) {
      r->too_big = 1;
      return 0;
    }
    len = r->max_body - r->body_len; /* what is left of the limit; the rest is dropped */
    if (len == 0) return total;
  }
  if (r->body_len + len + 1 > r->body_cap) {
    size_t cap = r->body_cap * 2;
    if (r->body_len == 0) {
      curl_off_t cl = -1;
      curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
      if (cl > 0 && (!r->max_body || (uint64_t)cl <= r->max_body) && (uint64_t)cl < SIZE_MAX / 2)
        cap = (size_t)cl + 1;
    }
    if (cap < r->body_len + len + 1) cap = r->body_len + len + 1;
    if (cap < 4096) cap = 4096;
    char *b = realloc(r->body, cap);
    if (!b) {
      r->oom = 1;
      return 0;
    }
    r->body = b;
    r->body_cap = cap;
  }
  memcpy(r->body + r->body_len, p, len);
  r->body_len += len;
  return total;
}

/* ---- completion ---- */

static void mw_httpc_set_err(mw_httpc_req_t *r, CURLcode rc) {
  const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
  const char *what = NULL;
  char oserr[64];
  switch (rc) {
  case CURLE_OPERATION_TIMEDOUT: what = "context deadline exceeded"; break;
  case CURLE_COULDNT_RESOLVE_HOST: what = "no such host"; break;
  case CURLE_COULDNT_RESOLVE_PROXY: what = "proxy: no such host"; break;
  case CURLE_COULDNT_CONNECT: {
    long os = 0;
    curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &os);
    snprintf(oserr, sizeof oserr, "connect: %s", os ? strerror((int)os) : "failed");
    oserr[9] = (char)tolower((unsigned char)oserr[9]); /* "connection refused", as Go says */
    what = oserr;
    break;
  }
  case CURLE_PEER_FAILED_VERIFICATION: what = "tls: failed to verify certificate"; break;
  case CURLE_SSL_CACERT_BADFILE: what = "tls: cannot load the CA certificate"; break;
  case CURLE_SSL_CERTPROBLEM: what = "tls: cannot load the client certificate"; break;
  case CURLE_SSL_CONNECT_ERROR: what = "tls: handshake failed"; break;
  case CURLE_TOO_MANY_REDIRECTS: what = "stopped after 10 redirects"; break;
  case CURLE_GOT_NOTHING: what = "EOF"; break;
  case CURLE_FILESIZE_EXCEEDED: snprintf(r->err, sizeof r->err, MW_ERR_BODY_LIMIT); return;
  case CURLE_WRITE_ERROR:
    if (r->stopped) {
      snprintf(r->err, sizeof r->err, "stream stopped by the receiver");
      return;
    }
    if (r->too_big) {
      snprintf(r->err, sizeof r->err, MW_ERR_BODY_LIMIT);
      return;
    }
    break;
  default: break;
  }
  if (r->oom) {
    snprintf(r->err, sizeof r->err, "out of memory");
    return;
  }
  if (what)
    snprintf(r->err, sizeof r->err, "%s (%s)", what, detail);
  else
    snprintf(r->err, sizeof r->err, "%s", detail);
}

const char *mw_httpc_resp_header(const mw_httpc_resp_t *resp, const char *name) {
  for (size_t i = 0; i < resp->nheaders; i++)
    if (strcasecmp(resp->headers[i].name, name) == 0) return resp->headers[i].value;
  return NULL;
}

/* Removes r from the multi, calls its done callback and frees it. */
static void mw_httpc_finish(mw_httpc_req_t *r, CURLcode rc) {
  mw_httpc_t *c = r->c;
  mw_httpc_unlink(r);
  curl_multi_remove_handle(c->multi, r->easy);
  r->finishing = 1;

  mw_httpc_resp_t resp;
  memset(&resp, 0, sizeof resp);
  long status = 0;
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
  curl_off_t us = 0;
  curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME_T, &us);
  long conns = 0;
  curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &conns);
  resp.new_connections = (int)conns;
  char *url = NULL;
  curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &url);
  if (rc != CURLE_OK) {
    mw_httpc_set_err(r, rc);
    resp.err = r->err;
  }
  resp.status = (int)status;
  resp.duration = (double)us / 1e6;
  resp.url = url ? url : "";
  resp.headers = r->resp_headers;
  resp.nheaders = r->nresp_headers;
  r->body[r->body_len] = '\0';
  resp.body = r->body;
  resp.body_len = r->body_len;
  r->body = NULL;
  const char *ce = mw_httpc_resp_header(&resp, "Content-Encoding");
  resp.gzip = ce && (strcasecmp(ce, "gzip") == 0 || strcasecmp(ce, "x-gzip") == 0);

  r->done(r->ctx, &resp);
  free(resp.body); /* NULL when the callback took it */
  mw_httpc_req_free(r);
}

static void mw_httpc_check_done(mw_httpc_t *c) {
  CURLMsg *m;
  int left;
  c->dispatching++;
  while ((m = curl_multi_info_read(c->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    CURLcode rc = m->data.result;
    mw_httpc_req_t *r = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
    if (r) mw_httpc_finish(r, rc);
  }
  c->dispatching--;
  if (c->free_pending && !c->dispatching) mw_httpc_destroy(c);
}

/* ---- request setup ---- */

/* Reads a secret file into *out (malloc'd), surrounding white space
 * trimmed, as Prometheus does. */
static int mw_httpc_read_secret(const char *path, const char *what, char **out, char *err,
                                size_t errlen) {
  int rc = -1;
  char *buf = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    mw_seterr(err, errlen, "unable to read %s file %s: %s", what, path, strerror(errno));
    goto out;
  }
  buf = malloc(MW_MAX_SECRET_FILE + 1);
  if (!buf) {
    mw_seterr(err, errlen, "out of memory");
    goto out;
  }
  size_t n = fread(buf, 1, MW_MAX_SECRET_FILE + 1, f);
  if (ferror(f) || n > MW_MAX_SECRET_FILE) {
    mw_seterr(err, errlen, "unable to read %s file %s: %s", what, path,
              ferror(f) ? strerror(errno) : "file too large");
    goto out;
  }
  size_t start = 0;
  while (start < n && isspace((unsigned char)buf[start]))
    start++;
  while (n > start && isspace((unsigned char)buf[n - 1]))
    n--;
  memmove(buf, buf + start, n - start);
  buf[n - start] = '\0';
  *out = buf;
  buf = NULL;
  rc = 0;
out:
  free(buf);
  if (f) fclose(f);
  return rc;
}

static int mw_httpc_bad_header_char(const char *s, int name) {
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '\r' || ch == '\n' || (name && (ch == ':' || ch <= ' ' || ch >= 127))) return 1;
  }
  return 0;
}

/* Appends "name: value" to *list ("name;" for an empty value, libcurl's way
 * of sending an empty header). Returns 0, or -1 with a message in err. */
static int mw_httpc_add_header(struct curl_slist **list, const char *name, const char *value,
                               char *err, size_t errlen) {
  if (!name || !*name || mw_httpc_bad_header_char(name, 1)) {
    mw_seterr(err, errlen, "invalid header name \"%s\"", name ? name : "");
    return -1;
  }
  if (!value) value = "";
  if (mw_httpc_bad_header_char(value, 0)) {
    mw_seterr(err, errlen, "invalid value for header %s", name);
    return -1;
  }
  size_t len = strlen(name) + strlen(value) + 3;
  char *line = malloc(len);
  if (!line) {
    mw_seterr(err, errlen, "out of memory");
    return -1;
  }
  if (*value)
    snprintf(line, len, "%s: %s", name, value);
  else
    snprintf(line, len, "%s;", name);
  struct curl_slist *l = curl_slist_append(*list, line);
  free(line);
  if (!l) {
    mw_seterr(err, errlen, "out of memory");
    return -1;
  }
  *list = l;
  return 0;
}

static int mw_httpc_has_header(const mw_httpc_opts_t *o, const char *name) {
  for (size_t i = 0; i < o->nheaders; i++)
    if (o->headers[i].name && strcasecmp(o->headers[i].name, name) == 0) return 1;
  return 0;
}

static const char *mw_httpc_env(const char *upper, const char *lower) {
  const char *v = getenv(upper);
  if (!v || !*v) v = getenv(lower);
  return v && *v ? v : NULL;
}

/* tls server_name: rewrites the URL's host to server_name, connects to the
 * original host with CURLOPT_CONNECT_TO and keeps it in the Host header.
 * *new_url gets a curl_free()able string, or NULL when the URL is not https. */
static int mw_httpc_server_name(mw_httpc_req_t *r, const mw_httpc_opts_t *o, char **new_url,
                                char *err, size_t errlen) {
  int rc = -1;
  char *scheme = NULL, *host = NULL, *port = NULL, *line = NULL;
  CURLU *u = curl_url();
  *new_url = NULL;
  if (!u) goto oom;
  if (curl_url_set(u, CURLUPART_URL, o->url, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
    mw_seterr(err, errlen, "invalid URL \"%s\"", o->url);
    goto out;
  }
  if (strcasecmp(scheme, "https") != 0) {
    rc = 0;
    goto out;
  }
  char *explicit_port = NULL;
  int has_port = curl_url_get(u, CURLUPART_PORT, &explicit_port, 0) == CURLUE_OK;
  curl_free(explicit_port);
  size_t len = strlen(o->server_name) + strlen(host) + 2 * strlen(port) + 8;
  if (!(line = malloc(len))) goto oom;
  snprintf(line, len, "%s:%s:%s:%s", o->server_name, port, host, port);
  struct curl_slist *l = curl_slist_append(r->connect_to, line);
  if (!l) goto oom;
  r->connect_to = l;
  if (!mw_httpc_has_header(o, "Host")) {
    if (has_port)
      snprintf(line, len, "%s:%s", host, port);
    else
      snprintf(line, len, "%s", host);
    if (mw_httpc_add_header(&r->headers, "Host", line, err, errlen) != 0) goto out;
  }
  if (curl_url_set(u, CURLUPART_HOST, o->server_name, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_URL, new_url, 0) != CURLUE_OK) {
    mw_seterr(err, errlen, "invalid tls server_name \"%s\"", o->server_name);
    goto out;
  }
  rc = 0;
  goto out;
oom:
  mw_seterr(err, errlen, "out of memory");
out:
  free(line);
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return rc;
}

static long mw_httpc_ms(double seconds) {
  double ms = seconds * 1000.0;
  if (ms < 1) return 1;
  if (ms > 1e12) return 0; /* "forever" */
  return (long)ms;
}

/* Sets every libcurl option of r from o. Returns 0, or -1 with err set. */
static int mw_httpc_setup(mw_httpc_req_t *r, const mw_httpc_opts_t *o, char *err, size_t errlen) {
  int rc = -1;
  char *secret = NULL, *url = NULL, *line = NULL;
  CURL *e = r->easy;
  if (!o->url || !*o->url) {
    mw_seterr(err, errlen, "no URL");
    goto out;
  }
  if (strncasecmp(o->url, "http://", 7) != 0 && strncasecmp(o->url, "https://", 8) != 0) {
    mw_seterr(err, errlen, "unsupported protocol scheme in \"%s\"", o->url);
    goto out;
  }
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, mw_httpc_on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, mw_httpc_on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");

  /* method and body */
  const char *method = o->method && *o->method ? o->method : "GET";
  if (mw_httpc_bad_header_char(method, 1)) {
    mw_seterr(err, errlen, "invalid method \"%s\"", method);
    goto out;
  }
  if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (strcmp(method, "GET") != 0 || r->req_body) {
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->req_body ? r->req_body : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(r->req_body ? o->body_len : 0));
    if (strcmp(method, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  }

  /* limits and protocol */
  if (o->timeout > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, mw_httpc_ms(o->timeout));
  if (o->connect_timeout > 0)
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, mw_httpc_ms(o->connect_timeout));
  r->max_body = o->max_body;
  r->truncate_body = o->truncate_body;
  r->on_data = o->on_data;
  /* (a streamed body has no overall size limit: its receiver bounds what it keeps) */
  if (o->max_body && !o->on_data && !o->truncate_body)
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_body);
  if (o->follow_redirects) {
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, MW_MAX_REDIRECTS);
  }
  /* libcurl before 8.0.0 fails a request on a reused prior-knowledge HTTP/2 connection
   * ("Error in the HTTP2 framing layer", curl/curl#10634): a connection per request there */
  if (o->http2_prior_knowledge && curl_version_info(CURLVERSION_NOW)->version_num < 0x080000 &&
      strncmp(url ? url : o->url, "http://", 7) == 0) {
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
  }
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                   o->http2_prior_knowledge ? (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE
                   : o->enable_http2        ? (long)CURL_HTTP_VERSION_2TLS
                                            : (long)CURL_HTTP_VERSION_1_1);

  /* headers */
  for (size_t i = 0; i < o->nheaders; i++)
    if (mw_httpc_add_header(&r->headers, o->headers[i].name, o->headers[i].value, err, errlen))
      goto out;
  if (o->accept_gzip && !mw_httpc_has_header(o, "Accept-Encoding") &&
      mw_httpc_add_header(&r->headers, "Accept-Encoding", "gzip", err, errlen))
    goto out;
  if (!mw_httpc_has_header(o, "User-Agent") &&
      mw_httpc_add_header(&r->headers, "User-Agent",
                          o->user_agent ? o->user_agent : "moonwatch/" MW_VERSION, err, errlen))
    goto out;
  if (r->req_body) {
    /* no "Expect: 100-continue" round trip; no made-up form Content-Type */
    if (mw_httpc_add_header(&r->headers, "Expect", NULL, err, errlen)) goto out;
    if (!mw_httpc_has_header(o, "Content-Type")) {
      struct curl_slist *l = curl_slist_append(r->headers, "Content-Type:");
      if (!l) goto oom;
      r->headers = l;
    }
  }

  /* auth */
  if (o->username || o->password || o->password_file) {
    const char *password = o->password ? o->password : "";
    if (o->password_file) {
      if (mw_httpc_read_secret(o->password_file, "basic auth password", &secret, err, errlen))
        goto out;
      password = secret;
    }
    curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(e, CURLOPT_USERNAME, o->username ? o->username : "");
    curl_easy_setopt(e, CURLOPT_PASSWORD, password);
  }
  if (o->auth_type || o->auth_credentials || o->auth_credentials_file) {
    const char *cred = o->auth_credentials ? o->auth_credentials : "";
    if (secret) memset(secret, 0, strlen(secret)); /* the basic auth password, given to curl */
    free(secret);
    secret = NULL;
    if (o->auth_credentials_file) {
      if (mw_httpc_read_secret(o->auth_credentials_file, "authorization credentials", &secret, err,
                               errlen)) {
        if (!o->auth_credentials) goto out;
        /* the file unreadable: credentials instead (see client.h) */
        if (err && errlen) err[0] = '\0';
      } else if (*secret || !o->auth_credentials) {
        cred = secret;
      }
    }
    const char *type = o->auth_type && *o->auth_type ? o->auth_type : "Bearer";
    size_t len = strlen(type) + strlen(cred) + 2;
    if (!(line = malloc(len))) goto oom;
    snprintf(line, len, "%s %s", type, cred);
    if (mw_httpc_add_header(&r->headers, "Authorization", line, err, errlen)) goto out;
  }
  if (secret) memset(secret, 0, strlen(secret));

  /* TLS */
  if (o->insecure_skip_verify) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (o->ca_file || o->ca_pem) {
    if (o->ca_file) {
      curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
    } else {
      struct curl_blob b = {(void *)o->ca_pem, strlen(o->ca_pem), CURL_BLOB_COPY};
      curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &b);
    }
    curl_easy_setopt(e, CURLOPT_CAPATH, NULL); /* only this CA, as Go's RootCAs */
  }
  if (o->cert_file) {
    curl_easy_setopt(e, CURLOPT_SSLCERT, o->cert_file);
  } else if (o->cert_pem) {
    struct curl_blob b = {(void *)o->cert_pem, strlen(o->cert_pem), CURL_BLOB_COPY};
    curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &b);
  }
  if (o->key_file) {
    curl_easy_setopt(e, CURLOPT_SSLKEY, o->key_file);
  } else if (o->key_pem) {
    struct curl_blob b = {(void *)o->key_pem, strlen(o->key_pem), CURL_BLOB_COPY};
    curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &b);
  }
  long tls;
  switch (o->min_version) {
  case MW_HTTPC_TLS_DEFAULT:
  case MW_HTTPC_TLS12: tls = CURL_SSLVERSION_TLSv1_2; break;
  case MW_HTTPC_TLS10: tls = CURL_SSLVERSION_TLSv1_0; break;
  case MW_HTTPC_TLS11: tls = CURL_SSLVERSION_TLSv1_1; break;
  case MW_HTTPC_TLS13: tls = CURL_SSLVERSION_TLSv1_3; break;
  default: mw_seterr(err, errlen, "unknown TLS version %d", o->min_version); goto out;
  }
  curl_easy_setopt(e, CURLOPT_SSLVERSION, tls);
  if (o->server_name && *o->server_name) {
    if (mw_httpc_server_name(r, o, &url, err, errlen)) goto out;
    if (r->connect_to) curl_easy_setopt(e, CURLOPT_CONNECT_TO, r->connect_to);
  }
  curl_easy_setopt(e, CURLOPT_URL, url ? url : o->url);

  /* proxy: "" disables libcurl's own reading of the environment */
  const char *proxy = "", *no_proxy = "";
  if (o->proxy_url && *o->proxy_url) {
    proxy = o->proxy_url;
    no_proxy = o->no_proxy ? o->no_proxy : "";
  } else if (o->proxy_from_environment) {
    int https = strncasecmp(o->url, "https://", 8) == 0;
    const char *p = https ? mw_httpc_env("HTTPS_PROXY", "https_proxy")
                          : mw_httpc_env("HTTP_PROXY", "http_proxy");
    const char *np = mw_httpc_env("NO_PROXY", "no_proxy");
    proxy = p ? p : "";
    no_proxy = np ? np : "";
  }
  curl_easy_setopt(e, CURLOPT_PROXY, proxy);
  curl_easy_setopt(e, CURLOPT_NOPROXY, no_proxy);
  for (size_t i = 0; i < o->nproxy_connect_headers; i++)
    if (mw_httpc_add_header(&r->proxy_headers, o->proxy_connect_headers[i].name,
                            o->proxy_connect_headers[i].value, err, errlen))
      goto out;
  if (r->proxy_headers) {
    curl_easy_setopt(e, CURLOPT_HEADEROPT, (long)CURLHEADER_SEPARATE);
    curl_easy_setopt(e, CURLOPT_PROXYHEADER, r->proxy_headers);
  }
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
  rc = 0;
  goto out;
oom:
  mw_seterr(err, errlen, "out of memory");
out:
  if (secret) {
    memset(secret, 0, strlen(secret));
    free(secret);
  }
  free(line);
  curl_free(url);
  return rc;
}

int mw_httpc_request(mw_httpc_t *c, const mw_httpc_opts_t *o, mw_httpc_done_fn done, void *ctx,
                     mw_httpc_req_t **out, char *err, size_t errlen) {
  if (out) *out = NULL;
  mw_httpc_req_t *r = calloc(1, sizeof *r);
  if (!r) {
    if (o->body_owned) free((void *)o->body);
    mw_seterr(err, errlen, "out of memory");
    return -1;
  }
  r->c = c;
  r->done = done;
  r->ctx = ctx;
  if (o->body) {
    if (o->body_owned) {
      r->req_body = (char *)o->body;
    } else if ((r->req_body = malloc(o->body_len ? o->body_len : 1))) {
      memcpy(r->req_body, o->body, o->body_len);
    }
  }
  r->body_cap = 1;
  r->body = malloc(r->body_cap);
  r->easy = curl_easy_init();
  if (!r->body || !r->easy || (o->body && !r->req_body)) {
    mw_seterr(err, errlen, "out of memory");
    goto fail;
  }
  if (mw_httpc_setup(r, o, err, errlen) != 0) goto fail;
  CURLMcode mc = curl_multi_add_handle(c->multi, r->easy);
  if (mc != CURLM_OK) {
    mw_seterr(err, errlen, "%s", curl_multi_strerror(mc));
    goto fail;
  }
  r->next = c->reqs;
  if (c->reqs) c->reqs->prev = r;
  c->reqs = r;
  c->pending++;
  if (out) *out = r;
  return 0;
fail:
  mw_httpc_req_free(r);
  return -1;
}
