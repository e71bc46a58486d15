/*
 * http/server.h: the HTTP server, libmicrohttpd driven by the caller's event loop.
 *
 * MHD runs without threads of its own (external epoll mode). The caller
 * watches one fd for readability and one timeout, and calls
 * mw_httpd_run_once() when either fires; then it asks mw_httpd_timeout()
 * again. Completed requests (headers and body read) go to on_request, which
 * answers at once with mw_httpd_respond() or returns MW_HTTPD_LATER and
 * answers later (the connection is suspended meanwhile). A deferred request
 * not answered within answer_timeout gets 503. Plain C, single-threaded:
 * every function here must be called on the loop's thread.
 *
 * Slow clients cannot hold the server: a connection has head_timeout
 * seconds from accept (or from its request line, on a kept-alive
 * connection) to send a complete request head, and as long again for the
 * body; one that does not is closed, however often it sends a byte (MHD's
 * own idle timeout restarts with every byte). Connections are capped in
 * total (max_connections) and per client address (max_per_ip), so one
 * client cannot take every slot.
 */
#ifndef MW_HTTPD_H
#define MW_HTTPD_H

#include <stddef.h>

typedef struct mw_httpd mw_httpd_t;
typedef struct mw_httpd_req mw_httpd_req_t;

/* What on_request returns. */
enum {
  MW_HTTPD_ANSWERED = 0, /* mw_httpd_respond() was called (else the client gets 500) */
  MW_HTTPD_LATER = 1,    /* mw_httpd_respond() will be called later */
};

/* A name/value pair (request header or query argument). */
typedef struct {
  const char *name;
  const char *value; /* "" for a query argument without "=" */
} mw_httpd_kv_t;

/* Called once per complete request. req is valid until on_done(ctx, req). */
typedef int (*mw_httpd_on_request_fn)(void *ctx, mw_httpd_req_t *req);
/* Called once for every request that on_request saw, when the server forgets
 * it (answer sent, connection closed, or server stopped); req is invalid after. */
typedef void (*mw_httpd_on_done_fn)(void *ctx, mw_httpd_req_t *req);

typedef struct {
  const char *addr;         /* "host:port", "[::1]:port", ":port" (all IPv4); port 0 = ephemeral */
  size_t max_body;          /* request bodies larger than this get 413; 0 = 1 MiB */
  double answer_timeout;    /* seconds a deferred request may wait; <= 0: 60 */
  unsigned idle_timeout;    /* seconds an idle connection is kept; 0: 60 */
  double head_timeout;      /* seconds to send a request head (and again its body); <= 0: 10 */
  unsigned max_connections; /* open connections at most; 0: 4096 (and below RLIMIT_NOFILE) */
  unsigned max_per_ip;      /* open connections per client address at most; 0: no limit */
  mw_httpd_on_request_fn on_request; /* required */
  mw_httpd_on_done_fn on_done;       /* optional */
  void *ctx;
} mw_httpd_opts_t;

/* A response: status, optional content type, extra headers as name/value
 * pairs (header_pairs pairs in `headers`, i.e. 2*header_pairs strings), and a
 * body. The body is copied unless body_owned, in which case it must come from
 * malloc() and the server frees it (also when mw_httpd_respond fails). */
typedef struct {
  int status;
  const char *content_type;
  const char *const *headers;
  size_t header_pairs;
  const void *body;
  size_t body_len;
  int body_owned;
} mw_httpd_resp_t;

/* Binds opts->addr and starts a server in *out. Returns 0, or -1 with a
 * message in err (e.g. "listen tcp 127.0.0.1:12345: address already in use").
 * The caller stops it with mw_httpd_stop(). */
int mw_httpd_start(mw_httpd_t **out, const mw_httpd_opts_t *opts, char *err, size_t errlen);

/* Answers all pending deferred requests with 503, closes every connection
 * (on_done runs for each request), and frees the server. NULL is a no-op.
 * Must not be called from on_request/on_done or inside mw_httpd_run_once(). */
void mw_httpd_stop(mw_httpd_t *h);

/* The fd the loop watches for readability (an epoll fd). */
int mw_httpd_fd(const mw_httpd_t *h);

/* Seconds until mw_httpd_run_once() must run even if the fd stays quiet; 0
 * means now, -1 means no deadline. Ask again after every mw_httpd_run_once()
 * and mw_httpd_respond(). */
double mw_httpd_timeout(mw_httpd_t *h);

/* Does the pending work: accepts, reads, calls on_request, writes, expires
 * deferred requests and idle connections. Never blocks. Returns 0, or -1 when
 * MHD reports an internal error. */
int mw_httpd_run_once(mw_httpd_t *h);

/* The bound address, "127.0.0.1:43123" or "[::1]:43123"; owned by h. */
const char *mw_httpd_addr(const mw_httpd_t *h);

/* The bound port. */
int mw_httpd_port(const mw_httpd_t *h);

/* Connections closed so far because their request head (or body) did not
 * arrive within head_timeout. */
unsigned long long mw_httpd_head_timeouts(const mw_httpd_t *h);

/* The connection cap in force (max_connections, lowered to fit the process's
 * open-files limit). */
unsigned mw_httpd_max_connections(const mw_httpd_t *h);

/* Answers req. Valid inside on_request, or later for a request whose
 * on_request returned MW_HTTPD_LATER, until on_done. Returns 0, or -1 with
 * a message in err (already answered, bad status, out of memory). */
int mw_httpd_respond(mw_httpd_req_t *req, const mw_httpd_resp_t *resp, char *err, size_t errlen);

/* The request's method ("GET"), path (percent-decoded, no query string), and
 * body (NUL-terminated; *len gets its size when len is not NULL). Owned by req. */
const char *mw_httpd_req_method(const mw_httpd_req_t *req);
const char *mw_httpd_req_path(const mw_httpd_req_t *req);
const char *mw_httpd_req_body(const mw_httpd_req_t *req, size_t *len);

/* A request header by name (case-insensitive), or NULL. Owned by req. */
const char *mw_httpd_req_header(const mw_httpd_req_t *req, const char *name);

/* All request headers (names as sent) or query arguments (decoded, in order,
 * repeats kept): *n gets the count; the array is owned by req. */
const mw_httpd_kv_t *mw_httpd_req_headers(const mw_httpd_req_t *req, size_t *n);
const mw_httpd_kv_t *mw_httpd_req_query(const mw_httpd_req_t *req, size_t *n);

/* A pointer the caller attaches to req (e.g. its own wrapper), NULL at first. */
void mw_httpd_req_set_user(mw_httpd_req_t *req, void *user);
void *mw_httpd_req_get_user(const mw_httpd_req_t *req);

#endif
