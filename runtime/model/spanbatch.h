/* model/spanbatch.h: the span batch (traces; moonwatch.batch.traces in Lua), what trace
 * receivers (otelcol consumers) get: spans of one resource (the process that made them),
 * each with its W3C ids, name, kind, start and end times, status and attributes, shaped as
 * OTLP's Span. moonwatch makes its own spans in Lua (a handful per scrape or push request,
 * sampled): the batch is where they meet C, which encodes them (otlp/otlp.h). Everything is
 * copied into the batch; a batch is transient (valid during the receiver's append) and reused
 * by its producer (reset keeps the capacity). Also here: trace and span ids and the
 * trace-id ratio sampler (OpenTelemetry's TraceIdRatioBased). */
#ifndef MW_SPANBATCH_H
#define MW_SPANBATCH_H
#include <stddef.h>
#include <stdint.h>

/* ffi.cdef begin */
/* --- span batches (runtime/model/spanbatch.h) ------------------------ */

typedef struct mw_spanbatch mw_spanbatch_t;
/* Attribute value types (OTLP AnyValue's scalars). */
enum { MW_SPANATTR_STR = 0, MW_SPANATTR_INT = 1, MW_SPANATTR_DOUBLE = 2, MW_SPANATTR_BOOL = 3 };
/* One attribute as read back; pointers owned by the batch, valid until its next change. */
typedef struct {
  const char *key;
  const char *str; /* MW_SPANATTR_STR */
  uint32_t key_len, str_len;
  int32_t type;
  int64_t i; /* MW_SPANATTR_INT, MW_SPANATTR_BOOL (0/1) */
  double d;  /* MW_SPANATTR_DOUBLE */
} mw_spanattr_t;
/* One span as read back (see mw_ffi_spanbatch_span). */
typedef struct {
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint8_t parent_span_id[8]; /* all zero for a root span */
  int32_t kind;              /* OTLP SpanKind: 1 internal, 2 server, 3 client, ... */
  int32_t status_code;       /* OTLP Status.code: 0 unset, 1 ok, 2 error */
  int64_t start_ns, end_ns;  /* nanoseconds since the epoch */
  const char *name;
  const char *status_message;
  uint32_t name_len, status_message_len;
  uint32_t attr_first, attr_count; /* its attributes: mw_ffi_spanbatch_attr(b, attr_first + k) */
} mw_span_t;

/* NULL on out of memory; free with mw_ffi_spanbatch_free. */
mw_spanbatch_t *mw_ffi_spanbatch_new(void);
void mw_ffi_spanbatch_free(mw_spanbatch_t *b);
/* Empties the batch (spans, resource attributes), keeps its capacity. */
void mw_ffi_spanbatch_reset(mw_spanbatch_t *b);
/* Adds a string attribute of the batch's resource: 0, or -1 (out of memory, too long). */
int mw_ffi_spanbatch_resource(mw_spanbatch_t *b, const char *key, size_t klen, const char *val,
                              size_t vlen);
/* Appends a span (ids of 16 and 8 bytes; parent NULL for a root span): 0, or -1 (all-zero
 * trace or span id, a string over MW_SPANBATCH_MAX_STR, out of memory; batch unchanged). */
int mw_ffi_spanbatch_add(mw_spanbatch_t *b, const uint8_t *trace_id, const uint8_t *span_id,
                         const uint8_t *parent, const char *name, size_t nlen, int kind,
                         int64_t start_ns, int64_t end_ns, int status_code, const char *msg,
                         size_t mlen);
/* Removes the last span added with its attributes (one of them was refused): the batch is as
 * before that span's mw_ffi_spanbatch_add, provided nothing but its attributes came after it. */
void mw_ffi_spanbatch_pop(mw_spanbatch_t *b);
/* Adds an attribute to the last span added: 0, or -1 (no span yet, too long, out of memory). */
int mw_ffi_spanbatch_attr_str(mw_spanbatch_t *b, const char *key, size_t klen, const char *val,
                              size_t vlen);
int mw_ffi_spanbatch_attr_int(mw_spanbatch_t *b, const char *key, size_t klen, int64_t v);
int mw_ffi_spanbatch_attr_double(mw_spanbatch_t *b, const char *key, size_t klen, double v);
int mw_ffi_spanbatch_attr_bool(mw_spanbatch_t *b, const char *key, size_t klen, int v);
size_t mw_ffi_spanbatch_len(const mw_spanbatch_t *b);
size_t mw_ffi_spanbatch_resource_len(const mw_spanbatch_t *b);
/* Span i into *s: 0, or -1 if i is out of range. */
int mw_ffi_spanbatch_span(const mw_spanbatch_t *b, size_t i, mw_span_t *s);
/* Attribute i (of all spans, see mw_span_t.attr_first) into *a: 0, or -1 if out of range. */
int mw_ffi_spanbatch_attr(const mw_spanbatch_t *b, size_t i, mw_spanattr_t *a);
/* Resource attribute i into *a: 0, or -1 if out of range. */
int mw_ffi_spanbatch_resource_attr(const mw_spanbatch_t *b, size_t i, mw_spanattr_t *a);

/* Fills out with n random bytes for trace and span ids (a xoshiro256** generator seeded from
 * the kernel once; never all zero for n >= 8). */
void mw_ffi_trace_random(uint8_t *out, size_t n);
/* OpenTelemetry's TraceIdRatioBased decision for a 16-byte trace id: 1 when the trace is
 * sampled at fraction (>= 1: always, <= 0: never): the id's last 8 bytes, big-endian, shifted
 * right by one, are below fraction * 2^63. */
int mw_ffi_trace_sampled(const uint8_t *trace_id, double fraction);
/* Wall-clock nanoseconds since the epoch (span start and end times). */
int64_t mw_ffi_trace_now_ns(void);
/* ffi.cdef end */

/* Bounds: a name, key or value longer than this is refused; at most this many spans or
 * attributes in a batch. */
#define MW_SPANBATCH_MAX_STR (1u << 20)
#define MW_SPANBATCH_MAX_ITEMS (1u << 24)

#endif
