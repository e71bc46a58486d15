/*
 * http/server.c: the HTTP server (libmicrohttpd in external epoll mode).
 *
 * We bind the listening socket ourselves (exact bind errors, host:port
 * parsing) and hand it to MHD. A request lives in MHD's per-request pointer:
 * READING collects the body; IN_HANDLER while on_request runs; SUSPENDED
 * after it returned MW_HTTPD_LATER (the connection is suspended and the
 * request sits on the server's pending list with a deadline); RESUMED once
 * a deferred answer was built and the connection resumed (MHD calls the
 * access handler again and we queue the answer there, the pattern MHD
 * documents); QUEUED when MHD owns the answer.
 *
 * Every connection also has a mw_conn_t (MHD's socket context, on the
 * server's list) with the deadline for its current request head: accept +
 * head_timeout; request line + head_timeout on a kept-alive connection
 * (after the previous answer it may idle up to idle_timeout); none while a
 * request is answered. run_once sweeps the list when the earliest deadline
 * passes and shuts down the sockets past theirs: MHD sees the end of the
 * stream at once and closes the connection. (MHD 0.9.75 has no head timeout
 * of its own; its connection timeout restarts with every byte received.)
 */
#include "http/server.h"

#include "base/err.h"
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MW_HTTPD_DEFAULT_MAX_BODY ((size_t)1 << 20)
#define MW_HTTPD_DEFAULT_ANSWER_TIMEOUT 60.0
#define MW_HTTPD_DEFAULT_IDLE_TIMEOUT 60u
#define MW_HTTPD_DEFAULT_HEAD_TIMEOUT 10.0
#define MW_HTTPD_DEFAULT_MAX_CONNECTIONS 4096u
#define MW_HTTPD_RESERVED_FDS 256u /* kept for everything else: targets, files, WALs */

typedef struct mw_conn mw_conn_t;

enum { MW_REQ_READING, MW_REQ_IN_HANDLER, MW_REQ_SUSPENDED, MW_REQ_RESUMED, MW_REQ_QUEUED };

struct mw_httpd {
  struct MHD_Daemon *daemon;
  mw_httpd_opts_t opts; /* opts.addr is not kept */
  int epoll_fd;
  int port;
  char addr[80];
  mw_httpd_req_t *pending; /* SUSPENDED requests, oldest first */
  mw_httpd_req_t *pending_tail;
  int resumes;       /* RESUMED requests whose answer is not queued yet */
  int stopping;      /* in mw_httpd_stop: answer new requests with 503 */
  mw_conn_t *conns;  /* every open connection */
  double next_sweep; /* no head deadline passes before this; 0: none */
  unsigned long long head_timeouts;
};

struct mw_conn {
  struct MHD_Connection *conn;
  double deadline; /* the request head (or body) must be in by then; 0: none */
  int closing;     /* shut down by the sweep */
  mw_conn_t *prev, *next;
};

struct mw_httpd_req {
  mw_httpd_t *h;
  struct MHD_Connection *conn;
  int state;
  int seen; /* on_request was called: on_done is owed */
  int too_large;
  const char *method, *path; /* MHD's, valid for the request's life */
  char *body;
  size_t body_len, body_cap;
  mw_httpd_kv_t *headers, *query;
  size_t n_headers, n_query, cap_headers, cap_query;
  struct MHD_Response *resp; /* built, not queued yet */
  unsigned status;
  double deadline;
  mw_httpd_req_t *prev, *next; /* pending list */
  void *user;
};

static double mw_monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sets c's deadline to at + timeout, or none when timeout is 0. */
static void mw_conn_deadline(mw_httpd_t *h, mw_conn_t *c, double at, double timeout) {
  if (!c) return;
  c->deadline = timeout > 0 ? at + timeout : 0;
  if (c->deadline > 0 && (h->next_sweep == 0 || c->deadline < h->next_sweep))
    h->next_sweep = c->deadline;
}

/* The mw_conn_t of conn (NULL if it could not be allocated). */
static mw_conn_t *mw_conn_of(struct MHD_Connection *conn) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

/* Shuts down the connections whose deadline passed, and finds the next one. */
static void mw_sweep(mw_httpd_t *h, double now) {
  double next = 0;
  for (mw_conn_t *c = h->conns; c; c = c->next) {
    if (c->closing || c->deadline == 0) continue;
    if (c->deadline <= now) {
      const union MHD_ConnectionInfo *ci =
          MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
      if (ci) shutdown(ci->connect_fd, SHUT_RDWR);
      c->closing = 1;
      h->head_timeouts++;
    } else if (next == 0 || c->deadline < next) {
      next = c->deadline;
    }
  }
  h->next_sweep = next;
}

static void mw_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                             enum MHD_ConnectionNotificationCode toe) {
  mw_httpd_t *h = cls;
  mw_conn_t *c = *socket_context;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    c = calloc(1, sizeof *c);
    *socket_context = c;
    if (!c) return; /* untracked: only MHD's idle timeout applies */
    c->conn = conn;
    c->next = h->conns;
    if (h->conns) h->conns->prev = c;
    h->conns = c;
    mw_conn_deadline(h, c, mw_monotonic(), h->opts.head_timeout);
  } else if (c) {
    if (c->prev)
      c->prev->next = c->next;
    else
      h->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    free(c);
    *socket_context = NULL;
  }
}

/* MHD has the request line: the rest of the head must follow within head_timeout. */
static void *mw_on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
  (void)uri;
  mw_httpd_t *h = cls;
  mw_conn_t *c = mw_conn_of(conn);
  double now = mw_monotonic();
  if (c && !c->closing && (c->deadline == 0 || now + h->opts.head_timeout < c->deadline))
    mw_conn_deadline(h, c, now, h->opts.head_timeout);
  return NULL; /* the access handler's first call sees no request yet */
}

static void mw_pending_unlink(mw_httpd_t *h, mw_httpd_req_t *req) {
  if (req->prev)
    req->prev->next = req->next;
  else
    h->pending = req->next;
  if (req->next)
    req->next->prev = req->prev;
  else
    h->pending_tail = req->prev;
  req->prev = req->next = NULL;
}

static void mw_pending_append(mw_httpd_t *h, mw_httpd_req_t *req) {
  req->prev = h->pending_tail;
  req->next = NULL;
  if (h->pending_tail)
    h->pending_tail->next = req;
  else
    h->pending = req;
  h->pending_tail = req;
}

/* Queues req->resp (built by mw_httpd_respond) on the connection. */
static enum MHD_Result mw_queue_built(mw_httpd_req_t *req) {
  enum MHD_Result rc = MHD_queue_response(req->conn, req->status, req->resp);
  MHD_destroy_response(req->resp);
  req->resp = NULL;
  req->state = MW_REQ_QUEUED;
  return rc;
}

/* Queues a short text answer; for errors the server produces itself. */
static enum MHD_Result mw_queue_text(mw_httpd_req_t *req, unsigned status, const char *text) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
  enum MHD_Result rc = MHD_queue_response(req->conn, status, r);
  MHD_destroy_response(r);
  req->state = MW_REQ_QUEUED;
  return rc;
}

/* Answers a pending request with a short text (timeouts, shutdown). */
static void mw_answer_text(mw_httpd_req_t *req, int status, const char *text) {
  mw_httpd_resp_t resp = {.status = status,
                          .content_type = "text/plain; charset=utf-8",
                          .body = text,
                          .body_len = strlen(text)};
  char err[128];
  if (mw_httpd_respond(req, &resp, err, sizeof err) != 0 && req->state == MW_REQ_SUSPENDED) {
    /* Out of memory: resume without an answer; MHD closes the connection. */
    mw_pending_unlink(req->h, req);
    req->state = MW_REQ_RESUMED;
    req->h->resumes++;
    MHD_resume_connection(req->conn);
  }
}

static int mw_kv_push(mw_httpd_kv_t **arr, size_t *n, size_t *cap, const char *name,
                      const char *value) {
  if (*n == *cap) {
    size_t ncap = *cap ? *cap * 2 : 8;
    mw_httpd_kv_t *a = realloc(*arr, ncap * sizeof *a);
    if (!a) return -1;
    *arr = a;
    *cap = ncap;
  }
  (*arr)[*n].name = name;
  (*arr)[*n].value = value ? value : "";
  (*n)++;
  return 0;
}

static enum MHD_Result mw_collect_kv(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value) {
  mw_httpd_req_t *req = cls;
  int rc = kind == MHD_HEADER_KIND
               ? mw_kv_push(&req->headers, &req->n_headers, &req->cap_headers, key, value)
               : mw_kv_push(&req->query, &req->n_query, &req->cap_query, key, value);
  return rc == 0 ? MHD_YES : MHD_NO;
}

static int mw_body_append(mw_httpd_req_t *req, const char *data, size_t n) {
  size_t max = req->h->opts.max_body;
  if (req->too_large || n > max - req->body_len) {
    req->too_large = 1;
    return 0;
  }
  if (req->body_len + n + 1 > req->body_cap) {
    size_t ncap = req->body_cap ? req->body_cap : 1024;
    while (ncap < req->body_len + n + 1)
      ncap *= 2;
    if (ncap > max + 1) ncap = max + 1;
    char *b = realloc(req->body, ncap);
    if (!b) return -1;
    req->body = b;
    req->body_cap = ncap;
  }
  memcpy(req->body + req->body_len, data, n);
  req->body_len += n;
  req->body[req->body_len] = '\0';
  return 0;
}

/* The whole request is in: hand it to on_request and act on the answer. */
static enum MHD_Result mw_dispatch(mw_httpd_t *h, mw_httpd_req_t *req) {
  MHD_get_connection_values(req->conn, MHD_HEADER_KIND, mw_collect_kv, req);
  MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, mw_collect_kv, req);
  /* A short count means the iterator stopped: out of memory. */
  if ((size_t)MHD_get_connection_values(req->conn, MHD_HEADER_KIND, NULL, NULL) != req->n_headers ||
      (size_t)MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, NULL, NULL) !=
          req->n_query)
    return mw_queue_text(req, 500, "out of memory\n");
  if (h->stopping) return mw_queue_text(req, 503, "server shutting down\n");
  req->state = MW_REQ_IN_HANDLER;
  req->seen = 1;
  int rc = h->opts.on_request(h->opts.ctx, req);
  if (req->resp) return mw_queue_built(req);
  if (rc == MW_HTTPD_LATER) {
    req->state = MW_REQ_SUSPENDED;
    req->deadline = mw_monotonic() + h->opts.answer_timeout;
    mw_pending_append(h, req);
    MHD_suspend_connection(req->conn);
    return MHD_YES;
  }
  return mw_queue_text(req, 500, "internal server error\n");
}

static enum MHD_Result mw_on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version, const char *data,
                                    size_t *data_size, void **req_cls) {
  (void)version;
  mw_httpd_t *h = cls;
  mw_httpd_req_t *req = *req_cls;
  if (!req) {
    req = calloc(1, sizeof *req);
    if (!req) return MHD_NO;
    req->h = h;
    req->conn = conn;
    req->method = method;
    req->path = url;
    *req_cls = req;
    /* The head is in; the body (if any) gets as long again. */
    mw_conn_deadline(h, mw_conn_of(conn), mw_monotonic(), h->opts.head_timeout);
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
      char *end;
      errno = 0;
      unsigned long long n = strtoull(cl, &end, 10);
      if (errno == 0 && *end == '\0' && n > h->opts.max_body) {
        req->too_large = 1;
        return mw_queue_text(req, 413, "request body too large\n");
      }
    }
    return MHD_YES;
  }
  switch (req->state) {
  case MW_REQ_READING:
    if (*data_size) {
      int rc = mw_body_append(req, data, *data_size);
      *data_size = 0;
      return rc == 0 ? MHD_YES : MHD_NO;
    }
    if (req->too_large) return mw_queue_text(req, 413, "request body too large\n");
    mw_conn_deadline(h, mw_conn_of(conn), 0, 0); /* read in full: answering has its own timeout */
    return mw_dispatch(h, req);
  case MW_REQ_RESUMED:
    h->resumes--;
    if (!req->resp) { /* could not build an answer: close */
      req->state = MW_REQ_QUEUED;
      return MHD_NO;
    }
    return mw_queue_built(req);
  default: *data_size = 0; return MHD_YES;
  }
}

static void mw_on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                            enum MHD_RequestTerminationCode toe) {
  (void)toe;
  mw_httpd_t *h = cls;
  mw_httpd_req_t *req = *req_cls;
  /* Kept alive, the connection may idle until its next request line. */
  mw_conn_t *c = mw_conn_of(conn);
  if (c && !c->closing) mw_conn_deadline(h, c, mw_monotonic(), (double)h->opts.idle_timeout);
  if (!req) return;
  *req_cls = NULL;
  if (req->state == MW_REQ_SUSPENDED) mw_pending_unlink(h, req);
  if (req->state == MW_REQ_RESUMED) h->resumes--;
  if (req->resp) MHD_destroy_response(req->resp);
  if (req->seen && h->opts.on_done) h->opts.on_done(h->opts.ctx, req);
  free(req->body);
  free(req->headers);
  free(req->query);
  free(req);
}

/* Splits "host:port" / "[v6]:port" / ":port". Returns 0 or -1. */
static int mw_split_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen) {
  const char *colon;
  size_t n;
  if (addr[0] == '[') {
    const char *close = strchr(addr, ']');
    if (!close || close[1] != ':') return -1;
    n = (size_t)(close - addr - 1);
    if (n == 0 || n >= hostlen) return -1;
    memcpy(host, addr + 1, n);
    colon = close + 1;
  } else {
    colon = strrchr(addr, ':');
    if (!colon) return -1;
    n = (size_t)(colon - addr);
    if (n >= hostlen || memchr(addr, ':', n)) return -1;
    memcpy(host, addr, n);
  }
  host[n] = '\0';
  const char *p = colon + 1;
  size_t plen = strlen(p);
  if (plen == 0 || plen >= portlen || strspn(p, "0123456789") != plen || atol(p) > 65535) return -1;
  memcpy(port, p, plen + 1);
  return 0;
}

/* "Address already in use" -> "address already in use", as Go prints it. */
static void mw_lower_first(char *s) {
  if (s[0] >= 'A' && s[0] <= 'Z' && !(s[1] >= 'A' && s[1] <= 'Z')) s[0] = (char)(s[0] - 'A' + 'a');
}

static void mw_listen_error(char *err, size_t errlen, const char *addr, int errnum) {
  char msg[128];
  snprintf(msg, sizeof msg, "%s", strerror(errnum));
  mw_lower_first(msg);
  mw_seterr(err, errlen, "listen tcp %s: %s", addr, msg);
}

/* Binds and listens on addr; IPv4 results are tried before IPv6 ones (so
 * "localhost" means 127.0.0.1, as in Go). Returns the fd or -1 with err. */
static int mw_listen(const char *addr, char *err, size_t errlen) {
  char host[256], port[8];
  struct addrinfo hints, *res = NULL;
  int fd = -1, first_errno = 0;
  if (mw_split_addr(addr, host, sizeof host, port, sizeof port) != 0) {
    mw_seterr(err, errlen, "listen tcp %s: bad address (want host:port, [ipv6]:port or :port)",
              addr);
    goto cleanup;
  }
  memset(&hints, 0, sizeof hints);
  hints.ai_family = host[0] ? AF_UNSPEC : AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
  if (gai != 0) {
    mw_seterr(err, errlen, "listen tcp %s: lookup %s: %s", addr, host, gai_strerror(gai));
    goto cleanup;
  }
  for (int pass = 0; pass < 2 && fd < 0; pass++) {
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
      if ((ai->ai_family == AF_INET) != (pass == 0)) continue;
      if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
      fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        if (!first_errno) first_errno = errno;
        continue;
      }
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (ai->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
      if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
        if (!first_errno) first_errno = errno;
        close(fd);
        fd = -1;
      }
    }
  }
  if (fd < 0) mw_listen_error(err, errlen, addr, first_errno ? first_errno : EADDRNOTAVAIL);
cleanup:
  if (res) freeaddrinfo(res);
  return fd;
}

/* Fills h->addr and h->port from the bound socket. */
static int mw_bound_addr(mw_httpd_t *h, int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char ip[INET6_ADDRSTRLEN];
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -1;
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
    h->port = ntohs(sin->sin_port);
    snprintf(h->addr, sizeof h->addr, "%s:%d", ip, h->port);
  } else {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
    h->port = ntohs(sin6->sin6_port);
    snprintf(h->addr, sizeof h->addr, "[%s]:%d", ip, h->port);
  }
  return 0;
}

int mw_httpd_start(mw_httpd_t **out, const mw_httpd_opts_t *opts, char *err, size_t errlen) {
  mw_httpd_t *h = NULL;
  int fd = -1;
  *out = NULL;
  if (!opts || !opts->addr || !opts->on_request) {
    mw_seterr(err, errlen, "httpd: addr and on_request are required");
    goto fail;
  }
  h = calloc(1, sizeof *h);
  if (!h) {
    mw_seterr(err, errlen, "httpd: out of memory");
    goto fail;
  }
  h->opts = *opts;
  h->opts.addr = NULL;
  if (!h->opts.max_body) h->opts.max_body = MW_HTTPD_DEFAULT_MAX_BODY;
  if (!(h->opts.answer_timeout > 0)) h->opts.answer_timeout = MW_HTTPD_DEFAULT_ANSWER_TIMEOUT;
  if (!h->opts.idle_timeout) h->opts.idle_timeout = MW_HTTPD_DEFAULT_IDLE_TIMEOUT;
  if (!(h->opts.head_timeout > 0)) h->opts.head_timeout = MW_HTTPD_DEFAULT_HEAD_TIMEOUT;
  if (!h->opts.max_connections) h->opts.max_connections = MW_HTTPD_DEFAULT_MAX_CONNECTIONS;
  /* Past the open-files limit accept() fails and the listener spins: stay below it. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    rlim_t room = rl.rlim_cur > 2 * MW_HTTPD_RESERVED_FDS ? rl.rlim_cur - MW_HTTPD_RESERVED_FDS
                                                          : rl.rlim_cur / 2;
    if (room < 1) room = 1;
    if (h->opts.max_connections > room) h->opts.max_connections = (unsigned)room;
  }
  fd = mw_listen(opts->addr, err, errlen);
  if (fd < 0) goto fail;
  if (mw_bound_addr(h, fd) != 0) {
    mw_listen_error(err, errlen, opts->addr, errno);
    goto fail;
  }
  h->daemon = MHD_start_daemon(
      MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL, mw_on_access, h,
      MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_NOTIFY_COMPLETED, mw_on_completed, h,
      MHD_OPTION_NOTIFY_CONNECTION, mw_on_connection, h, MHD_OPTION_URI_LOG_CALLBACK, mw_on_uri, h,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)h->opts.idle_timeout,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned int)h->opts.max_connections,
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)h->opts.max_per_ip, MHD_OPTION_END);
  if (!h->daemon) {
    mw_seterr(err, errlen, "listen tcp %s: libmicrohttpd could not start", opts->addr);
    goto fail;
  }
  fd = -1; /* the daemon owns it now */
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_EPOLL_FD);
  if (!info) {
    mw_seterr(err, errlen, "listen tcp %s: libmicrohttpd has no epoll fd", opts->addr);
    goto fail;
  }
  h->epoll_fd = info->epoll_fd;
  *out = h;
  return 0;
fail:
  if (fd >= 0) close(fd);
  if (h && h->daemon) MHD_stop_daemon(h->daemon);
  free(h);
  return -1;
}

void mw_httpd_stop(mw_httpd_t *h) {
  if (!h) return;
  /* MHD panics when stopped with suspended connections: answer and resume
   * them, and let MHD take them off its suspended list. */
  h->stopping = 1;
  while (h->pending)
    mw_answer_text(h->pending, 503, "server shutting down\n");
  for (int i = 0; i < 16 && h->resumes > 0; i++)
    MHD_run(h->daemon);
  MHD_stop_daemon(h->daemon);
  free(h);
}

int mw_httpd_fd(const mw_httpd_t *h) { return h->epoll_fd; }

double mw_httpd_timeout(mw_httpd_t *h) {
  double t = -1;
  MHD_UNSIGNED_LONG_LONG ms;
  /* MHD takes a resumed connection back in its next MHD_run(), and that
   * does not make the epoll fd readable: run at once. */
  if (h->resumes > 0) return 0;
  if (MHD_get_timeout(h->daemon, &ms) == MHD_YES) t = (double)ms / 1000.0;
  if (h->pending) {
    double d = h->pending->deadline - mw_monotonic(); /* oldest first: earliest deadline */
    if (d < 0) d = 0;
    if (t < 0 || d < t) t = d;
  }
  if (h->next_sweep > 0) {
    double d = h->next_sweep - mw_monotonic();
    if (d < 0) d = 0;
    if (t < 0 || d < t) t = d;
  }
  return t;
}

int mw_httpd_run_once(mw_httpd_t *h) {
  if (h->pending) {
    double now = mw_monotonic();
    while (h->pending && h->pending->deadline <= now)
      mw_answer_text(h->pending, 503, "handler did not answer in time\n");
  }
  if (h->next_sweep > 0) {
    double now = mw_monotonic();
    if (h->next_sweep <= now) mw_sweep(h, now);
  }
  return MHD_run(h->daemon) == MHD_YES ? 0 : -1;
}

const char *mw_httpd_addr(const mw_httpd_t *h) { return h->addr; }

int mw_httpd_port(const mw_httpd_t *h) { return h->port; }

unsigned long long mw_httpd_head_timeouts(const mw_httpd_t *h) { return h->head_timeouts; }

unsigned mw_httpd_max_connections(const mw_httpd_t *h) { return h->opts.max_connections; }

int mw_httpd_respond(mw_httpd_req_t *req, const mw_httpd_resp_t *resp, char *err, size_t errlen) {
  struct MHD_Response *r = NULL;
  int owned = resp->body_owned;
  if (req->resp || (req->state != MW_REQ_IN_HANDLER && req->state != MW_REQ_SUSPENDED)) {
    mw_seterr(err, errlen, "request already answered");
    goto fail;
  }
  if (resp->status < 100 || resp->status > 599) {
    mw_seterr(err, errlen, "bad HTTP status %d", resp->status);
    goto fail;
  }
  void *body = resp->body_len ? (void *)resp->body : (void *)"";
  r = MHD_create_response_from_buffer(resp->body_len, body,
                                      owned && resp->body_len ? MHD_RESPMEM_MUST_FREE
                                                              : MHD_RESPMEM_MUST_COPY);
  if (!r) {
    mw_seterr(err, errlen, "out of memory");
    goto fail;
  }
  if (owned && !resp->body_len) free((void *)resp->body);
  owned = 0;
  if (resp->content_type &&
      MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type) != MHD_YES) {
    mw_seterr(err, errlen, "bad content type");
    goto fail;
  }
  for (size_t i = 0; i < resp->header_pairs; i++) {
    const char *name = resp->headers[2 * i], *value = resp->headers[2 * i + 1];
    if (!name || !value || strpbrk(name, "\r\n:") || strpbrk(value, "\r\n") ||
        MHD_add_response_header(r, name, value) != MHD_YES) {
      mw_seterr(err, errlen, "bad response header \"%s\"", name ? name : "(null)");
      goto fail;
    }
  }
  req->resp = r;
  req->status = (unsigned)resp->status;
  if (req->state == MW_REQ_SUSPENDED) {
    mw_pending_unlink(req->h, req);
    req->state = MW_REQ_RESUMED;
    req->h->resumes++;
    MHD_resume_connection(req->conn);
  }
  return 0;
fail:
  if (r) MHD_destroy_response(r);
  if (owned) free((void *)resp->body);
  return -1;
}

const char *mw_httpd_req_method(const mw_httpd_req_t *req) { return req->method; }

const char *mw_httpd_req_path(const mw_httpd_req_t *req) { return req->path; }

const char *mw_httpd_req_body(const mw_httpd_req_t *req, size_t *len) {
  if (len) *len = req->body_len;
  return req->body ? req->body : "";
}

const char *mw_httpd_req_header(const mw_httpd_req_t *req, const char *name) {
  return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const mw_httpd_kv_t *mw_httpd_req_headers(const mw_httpd_req_t *req, size_t *n) {
  *n = req->n_headers;
  return req->headers;
}

const mw_httpd_kv_t *mw_httpd_req_query(const mw_httpd_req_t *req, size_t *n) {
  *n = req->n_query;
  return req->query;
}

void mw_httpd_req_set_user(mw_httpd_req_t *req, void *user) { req->user = user; }

void *mw_httpd_req_get_user(const mw_httpd_req_t *req) { return req->user; }
