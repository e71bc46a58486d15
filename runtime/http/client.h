/*
 * runtime/http/: HTTP in plain C on the libev loop: the client (client.c, libcurl multi) and
 * the server (server.c, libmicrohttpd). Their Lua faces are lua/http_client.c and
 * lua/http_server.c.
 *
 * http/client.h: the HTTP client, libcurl's multi interface driven by a libev loop.
 *
 * One client owns one curl multi handle; its sockets become ev_io watchers
 * and its single timeout an ev_timer (CURLMOPT_SOCKETFUNCTION/TIMERFUNCTION,
 * curl_multi_socket_action), so thousands of requests run concurrently on
 * the loop's thread with no thread per request. Connections (and TLS
 * sessions, and the DNS cache) are pooled by the multi handle and reused by
 * later requests to the same host.
 *
 * Options follow Prometheus's/Alloy's HTTP client config (basic_auth,
 * authorization, tls_config, proxy_url, no_proxy, proxy_from_environment,
 * proxy_connect_header, follow_redirects, enable_http2). Password and
 * credentials files are read at each request, as Prometheus does, so a
 * rotated secret is picked up.
 *
 * Limits, documented here once:
 * - Name resolution uses libcurl's resolver; Debian's libcurl resolves in a
 *   short-lived helper thread (AsynchDNS), never on the loop. Answers are
 *   cached by the multi handle for 60 s, and a reused connection needs none.
 * - tls.server_name is done with CURLOPT_CONNECT_TO: the request goes to
 *   https://<server_name>:<port>/... (so SNI and certificate verification
 *   use server_name), the connection goes to the URL's host, and the Host
 *   header keeps the URL's host. That Host header is also sent after a
 *   redirect; only https URLs are rewritten.
 * - proxy_from_environment reads HTTP_PROXY/http_proxy (http URLs),
 *   HTTPS_PROXY/https_proxy (https URLs) and NO_PROXY/no_proxy at each
 *   request; a redirect to the other scheme keeps the first proxy.
 *
 * Plain C, single-threaded: every function must be called on the loop's
 * thread.
 */
#ifndef MW_HTTPC_H
#define MW_HTTPC_H

#include <stddef.h>

struct ev_loop;

typedef struct mw_httpc mw_httpc_t;
typedef struct mw_httpc_req mw_httpc_req_t;

/* A header: name and value (request: given by the caller; response: owned by
 * the response). */
typedef struct {
  const char *name;
  const char *value;
} mw_httpc_header_t;

/* Minimum TLS version (tls_config.min_version). */
enum {
  MW_HTTPC_TLS_DEFAULT = 0, /* TLS 1.2, Go's default */
  MW_HTTPC_TLS10 = 10,
  MW_HTTPC_TLS11 = 11,
  MW_HTTPC_TLS12 = 12,
  MW_HTTPC_TLS13 = 13,
};

/* Streaming: called with each chunk of the body of a 2xx final response as it arrives,
 * from the loop, instead of collecting the body (see mw_httpc_opts_t.on_data). ctx is the
 * request's ctx; status the response's status. Return 0 to go on, or -1 to stop the
 * transfer: done is then called with err "stream stopped by the receiver". It must not
 * cancel the request, free the client or start requests. */
typedef int (*mw_httpc_data_fn)(void *ctx, int status, const char *p, size_t len);

/* A request. Every string is copied by mw_httpc_request(); the caller may
 * free them as soon as it returns. */
typedef struct {
  const char *method;               /* NULL: "GET" */
  const char *url;                  /* http:// or https:// only */
  const mw_httpc_header_t *headers; /* extra headers ("" value allowed) */
  size_t nheaders;
  const void *body; /* request body or NULL; copied unless body_owned */
  size_t body_len;
  int body_owned;            /* body came from malloc(); the client frees it (also on failure) */
  double timeout;            /* seconds for the whole request; <= 0: none */
  double connect_timeout;    /* seconds to connect (TLS included); <= 0: libcurl's 300 s */
  size_t max_body;           /* response body limit in bytes; 0: none */
  int truncate_body;         /* past max_body: keep its first max_body bytes, read and drop the
                              * rest (the request still succeeds); else the request fails */
  int follow_redirects;      /* follow up to 10 redirects */
  int enable_http2;          /* allow HTTP/2 over TLS (ALPN); else HTTP/1.1 only */
  int http2_prior_knowledge; /* HTTP/2 only: h2c without upgrade on http://, ALPN h2 on https:// */
  int accept_gzip;           /* send "Accept-Encoding: gzip"; the body is returned as sent */
  const char *user_agent;    /* NULL: "moonwatch/<version>"; a User-Agent header wins */
  /* Long-running responses (a Kubernetes watch): when set, a 2xx body goes to on_data as it
   * arrives and done gets an empty body; the caller bounds what it keeps. Any other status
   * is collected as usual (bounded by max_body) and given to done. NULL: collect. */
  mw_httpc_data_fn on_data;

  /* Proxy: proxy_url (and no_proxy, "host,.domain,10.0.0.0/8"), or
   * proxy_from_environment; neither means no proxy at all (the environment
   * is ignored). proxy_connect_headers go to the proxy in CONNECT only. */
  const char *proxy_url;
  const char *no_proxy;
  int proxy_from_environment;
  const mw_httpc_header_t *proxy_connect_headers;
  size_t nproxy_connect_headers;

  /* TLS (tls_config). Verification is on unless insecure_skip_verify. A
   * custom CA replaces the system store, as in Go. */
  const char *ca_file, *ca_pem;
  const char *cert_file, *cert_pem;
  const char *key_file, *key_pem;
  const char *server_name; /* SNI and name to verify; see the limits above */
  int insecure_skip_verify;
  int min_version; /* MW_HTTPC_TLS* */

  /* Basic auth (basic_auth): username with password or password_file. */
  const char *username, *password, *password_file;
  /* Authorization header (authorization, bearer_token): "<type> <credentials>"
   * with credentials or credentials_file (read at each request); type NULL: "Bearer".
   * With both, the file's content wins and credentials is what is sent when the file cannot
   * be read or is empty, as client-go takes a kubeconfig user's tokenFile over its token. */
  const char *auth_type, *auth_credentials, *auth_credentials_file;
} mw_httpc_opts_t;

/* What a completed request delivers. Everything is owned by the request
 * and valid only during the done callback, except the body, which the
 * callback may take: keep resp->body and set resp->body to NULL, then free()
 * it later. */
typedef struct {
  int status;      /* HTTP status of the last response; 0 when none came */
  const char *err; /* NULL, or why the request failed (then the body is partial or empty) */
  const mw_httpc_header_t *headers; /* the last response's headers, as sent */
  size_t nheaders;
  char *body; /* NUL-terminated (not counted in body_len); malloc'd */
  size_t body_len;
  int gzip;            /* Content-Encoding is gzip: the body is compressed */
  double duration;     /* seconds from start to end, redirects included */
  const char *url;     /* the last URL requested (after redirects) */
  int new_connections; /* connections opened for it; 0 when a pooled one was reused */
} mw_httpc_resp_t;

/* Called once per request that was not cancelled, from the loop. The
 * request is freed when it returns; cancelling it inside is a no-op. The
 * callback may start and cancel other requests. */
typedef void (*mw_httpc_done_fn)(void *ctx, mw_httpc_resp_t *resp);

/* Creates a client on `loop` (NULL: the libev default loop) in *out.
 * Returns 0, or -1 with a message in err. Free it with mw_httpc_free(). */
int mw_httpc_new(mw_httpc_t **out, struct ev_loop *loop, char *err, size_t errlen);

/* Cancels every pending request (their callbacks are not called), closes the
 * pooled connections and frees the client. NULL is a no-op. Called from a
 * done callback, the client is freed when the callback returns. */
void mw_httpc_free(mw_httpc_t *c);

/* Starts a request; done(ctx, resp) is called later from the loop, never
 * from inside this call. *out (may be NULL) gets the request, to cancel it;
 * it is valid until done returns or mw_httpc_cancel(). Returns 0, or -1 with a
 * message in err (bad option, unreadable password or credentials file, out of
 * memory); then done is never called. */
int mw_httpc_request(mw_httpc_t *c, const mw_httpc_opts_t *opts, mw_httpc_done_fn done, void *ctx,
                     mw_httpc_req_t **out, char *err, size_t errlen);

/* Cancels a pending request: its connection is closed or returned to the
 * pool, done is not called, and req is freed. NULL is a no-op. */
void mw_httpc_cancel(mw_httpc_req_t *req);

/* Requests in flight. */
size_t mw_httpc_pending(const mw_httpc_t *c);

/* The value of a response header by name (case-insensitive; the first
 * one), or NULL. Owned by resp. */
const char *mw_httpc_resp_header(const mw_httpc_resp_t *resp, const char *name);

#endif
