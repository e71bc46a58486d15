/* model/logbatch.h: the log-entry batch (logs; moonwatch.batch.logs in Lua), what logs
 * receivers get, shaped as Loki's push API: entries of (stream, timestamp ns, line bytes,
 * structured metadata), where a stream is a label set. Streams are kept once per batch
 * (an entry names its stream by index), so a tailer that reads 10,000 lines of one file
 * stores that file's labels once. Everything is copied into the batch; a batch is
 * transient (valid during the receiver's append) and reused by its producer (reset keeps
 * the capacity). Bytes are stored as given: lines may hold any bytes (a sender checks
 * UTF-8 where its protocol needs it). */
#ifndef MW_LOGBATCH_H
#define MW_LOGBATCH_H
#include <stddef.h>
#include <stdint.h>

/* ffi.cdef begin */
/* --- log-entry batches (runtime/model/logbatch.h) -------------------- */

/* A log-entry batch: entries (stream, timestamp ns, line, structured metadata)
 * of streams (label sets) kept once per batch. */
typedef struct mw_logbatch mw_logbatch_t;
/* One entry as read back; pointers owned by the batch, valid until its next change. */
typedef struct {
  uint32_t stream; /* index of its stream (mw_ffi_logbatch_stream_labels) */
  uint32_t line_len;
  uint32_t meta_len; /* structured metadata: name 0xFF value 0xFF pairs, in order */
  int64_t ts_ns;     /* nanoseconds since the epoch */
  const char *line;
  const uint8_t *meta;
} mw_logentry_t;

/* NULL on out of memory; free with mw_ffi_logbatch_free. */
mw_logbatch_t *mw_ffi_logbatch_new(void);
void mw_ffi_logbatch_free(mw_logbatch_t *b);
/* Empties the batch, keeps its capacity. */
void mw_ffi_logbatch_reset(mw_logbatch_t *b);
/* The index of the stream whose labels are the name 0xFF value 0xFF pairs in
 * any order (sorted here; empty values dropped, as Prometheus and Loki treat
 * them as absent), added if new. >= 0, or -1 with err (a name twice, a name
 * that is not UTF-8, out of memory). */
int64_t mw_ffi_logbatch_stream(mw_logbatch_t *b, const char *pairs, size_t len, char *err,
                               size_t errlen);
/* Appends an entry: 0, or -1 (unknown stream, a line over 64 MiB, out of memory). */
int mw_ffi_logbatch_add(mw_logbatch_t *b, uint32_t stream, int64_t ts_ns, const char *line,
                        size_t len, const char *meta, size_t mlen);
size_t mw_ffi_logbatch_len(const mw_logbatch_t *b);
size_t mw_ffi_logbatch_streams(const mw_logbatch_t *b);
/* Sum of the entries' line lengths. */
size_t mw_ffi_logbatch_bytes(const mw_logbatch_t *b);
/* The encoded label set of stream s (NULL if out of range). */
const uint8_t *mw_ffi_logbatch_stream_labels(const mw_logbatch_t *b, uint32_t s, size_t *len);
/* Entry i into *e: 0, or -1 if i is out of range. */
int mw_ffi_logbatch_entry(const mw_logbatch_t *b, size_t i, mw_logentry_t *e);
/* ffi.cdef end */

/* Bounds of one batch: a line or a metadata set longer than MW_LOGBATCH_MAX_LINE bytes is
 * refused (Loki refuses lines over its max_line_size, 256 KiB by default, long before),
 * as are more than MW_LOGBATCH_MAX_STREAMS streams. */
#define MW_LOGBATCH_MAX_LINE (64u << 20)
#define MW_LOGBATCH_MAX_STREAMS (1u << 24)

mw_logbatch_t *mw_logbatch_new(void);
/* NULL is fine. */
void mw_logbatch_free(mw_logbatch_t *b);
/* Empties the batch (entries and streams), keeps its capacity. */
void mw_logbatch_reset(mw_logbatch_t *b);
/* Empties the batch and frees its storage (an idle producer's batch holds no memory). */
void mw_logbatch_clear(mw_logbatch_t *b);

/* The index of the stream with the encoded label set labels (base/labels.h: sorted,
 * unique; not checked here, see mw_ffi_logbatch_stream for unsorted input), added when
 * the batch does not have it yet. >= 0, or -1 when out of memory or past the bounds. */
int64_t mw_logbatch_stream(mw_logbatch_t *b, const uint8_t *labels, size_t len);
/* Appends an entry of stream (an index mw_logbatch_stream returned) at ts_ns with line
 * (len bytes) and structured metadata meta (mlen bytes encoded as label pairs, name 0xFF
 * value 0xFF, in the order given; NULL/0: none). 0, or -1 when out of memory, the
 * stream is unknown or a length is past MW_LOGBATCH_MAX_LINE (batch unchanged). */
int mw_logbatch_add(mw_logbatch_t *b, uint32_t stream, int64_t ts_ns, const char *line, size_t len,
                    const uint8_t *meta, size_t mlen);

size_t mw_logbatch_len(const mw_logbatch_t *b);
size_t mw_logbatch_streams(const mw_logbatch_t *b);
/* Sum of the line lengths of the entries (what Loki calls the batch's bytes). */
size_t mw_logbatch_bytes(const mw_logbatch_t *b);
/* Bytes the batch holds from malloc. */
size_t mw_logbatch_mem(const mw_logbatch_t *b);
/* The encoded label set of stream s (below mw_logbatch_streams); owned by the batch,
 * valid until its next add/stream/reset. NULL (and *len 0) if s is out of range. */
const uint8_t *mw_logbatch_stream_labels(const mw_logbatch_t *b, uint32_t s, size_t *len);
/* Entry i (below mw_logbatch_len) into *e; pointers owned by the batch, valid until its
 * next add/stream/reset. */
void mw_logbatch_entry(const mw_logbatch_t *b, size_t i, mw_logentry_t *e);

#endif
