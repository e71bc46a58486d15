/* exposition/write.h: the exposition writer for a metrics registry (Prometheus text
 * 0.0.4 and OpenMetrics 1.0.0, byte for byte as prometheus/common's expfmt
 * writes them), Accept / Accept-Encoding negotiation as client_golang's
 * promhttp does it, and gzip with libdeflate. */
#ifndef MW_EXPOSE_H
#define MW_EXPOSE_H
#include <stddef.h>
#include <stdint.h>

#include "exposition/registry.h"
#include "model/batch.h"

/* ffi.cdef begin */
/* --- exposition writers (exposition/write.c, write_batch.c) --------------- */

/* Exposition formats (mw_ffi_metrics_negotiate, mw_ffi_metrics_expose). */
enum {
  MW_METRICS_FMT_TEXT = 0,             /* text/plain; version=0.0.4 */
  MW_METRICS_FMT_OPENMETRICS = 1,      /* application/openmetrics-text; version=1.0.0 */
  MW_METRICS_FMT_OPENMETRICS_0_0_1 = 2 /* same body, version=0.0.1 content type */
};

/* Writes the whole registry (after running its collectors) in format
 * MW_METRICS_FMT_*, gzipped if gzip != 0, into a new buffer: *out, *len. The
 * caller frees *out with mw_ffi_metrics_buf_free (which frees the buffers of
 * every exposition writer: node and process exporters too). 0, or -1 (err;
 * *out NULL). */
int mw_ffi_metrics_expose(mw_metrics_t *reg, int format, int gzip, char **out, size_t *len,
                          char *err, size_t errlen);
void mw_ffi_metrics_buf_free(char *p);

/* The format for an Accept header value (NULL if absent), as client_golang's
 * promhttp with OpenMetrics enabled chooses it. */
int mw_ffi_metrics_negotiate(const char *accept);
/* The Content-Type for a format (static string). */
const char *mw_ffi_metrics_content_type(int format);
/* 1 if the Accept-Encoding value (NULL if absent) selects gzip, else 0. */
int mw_ffi_metrics_wants_gzip(const char *accept_encoding);

/* Writes batch's samples as exposition lines with timestamps (text: ms;
 * OpenMetrics: seconds) into a new buffer *out (free with
 * mw_ffi_metrics_buf_free). Staleness markers print as NaN. 0, or -1 on OOM. */
int mw_ffi_batch_write(const mw_batch_t *batch, int openmetrics, char **out, size_t *out_len);
/* ffi.cdef end */

typedef enum {
  MW_EXPOSE_TEXT = 0,              /* text/plain; version=0.0.4 */
  MW_EXPOSE_OPENMETRICS = 1,       /* application/openmetrics-text; version=1.0.0 */
  MW_EXPOSE_OPENMETRICS_0_0_1 = 2, /* same bytes as OPENMETRICS, version=0.0.1 content type */
} mw_expose_format_t;

/* A growable byte buffer. Zero-initialise it; the owner frees data with
 * mw_expose_buf_free (or free()). */
typedef struct {
  char *data;
  size_t len;
  size_t cap;
} mw_expose_buf_t;

/* Releases buf->data and zeroes the buffer. */
void mw_expose_buf_free(mw_expose_buf_t *buf);

/* Runs the registry's collectors, then appends the whole registry to buf in
 * the given format: families sorted by name, children by label values (label
 * pairs sorted by name), families without children left out; OpenMetrics ends
 * with "# EOF". 0, or -1 with a message in err (out of memory, bad format);
 * on error buf->len is restored. buf stays owned by the caller. */
int mw_expose_write(mw_metrics_t *reg, int format, mw_expose_buf_t *buf, char *err, size_t errlen);

/* A family written elsewhere in the same format (e.g. exporters/node/raw.c's families
 * with per-series label names): its name and its whole text, HELP and TYPE
 * lines included. The bytes are the caller's. */
typedef struct {
  const char *name;
  const char *text;
  size_t len;
} mw_expose_extra_t;

/* mw_expose_write, with extra families (n of them, sorted by name, no name
 * the registry has) copied verbatim where their names sort among the
 * registry's families (before "# EOF" in OpenMetrics). Same contract. */
int mw_expose_write_extra(mw_metrics_t *reg, int format, const mw_expose_extra_t *extra, size_t n,
                          mw_expose_buf_t *buf, char *err, size_t errlen);

/* Formats v as Go's strconv.FormatFloat(v, 'g', -1, 64) after expfmt's special
 * cases ("0", "1", "-1", "NaN", "+Inf", "-Inf"); with openmetrics, ".0" is
 * appended when there is neither '.' nor 'e' (as expfmt). dst needs 32 bytes;
 * returns the length (dst is NUL-terminated). */
size_t mw_expose_fmt_float(char *dst, double v, int openmetrics);

/* Chooses the format for an Accept header value (NULL = absent) exactly like
 * expfmt.NegotiateIncludingOpenMetrics (prometheus/common v0.70), minus the
 * protobuf formats (a protobuf clause is skipped): clauses sorted by q, first
 * text/plain (version 0.0.4 or none) -> TEXT, application/openmetrics-text
 * version 1.0.0 -> OPENMETRICS, version 0.0.1 or none -> OPENMETRICS_0_0_1;
 * nothing matched -> TEXT. */
int mw_expose_negotiate(const char *accept);

/* The Content-Type to send for a format (a static string; TEXT for unknown). */
const char *mw_expose_content_type(int format);

/* 1 when the Accept-Encoding value (NULL = absent) selects gzip under
 * client_golang's negotiation (offers identity, gzip; highest q wins, ties go
 * to identity; "*" matches identity first), else 0. */
int mw_expose_wants_gzip(const char *accept_encoding);

/* Hands a finished exposition to an FFI caller: takes text (gzipped first
 * when gzip != 0) and stores it in *out (never NULL on success, freed by the
 * caller with free()) and *len. text is emptied either way. 0, or -1 with a
 * message in err (out of memory). */
int mw_expose_finish(mw_expose_buf_t *text, int gzip, char **out, size_t *len, char *err,
                     size_t errlen);

#endif
