/* storage/logs_queue.h: the logs queue, loki.write's durable buffer: a layer on the record
 * log (storage/recordlog.h) as metrics_wal.c is for metrics. It stores log entries and
 * knows nothing of Loki's protocol (the endpoint readers in runtime/loki/reader.c do).
 *
 * Layout: DIR/queue/00000001 ... (segments), DIR/cursor.NAME (one per reader).
 * One record type, counted (an item is an entry):
 *
 *   u32 count | u32 nstreams | nstreams x (u32 len | encoded labels) |
 *   count x (u32 stream | i64 ts_ns | u32 line_len | u32 meta_len | line | meta)
 *
 * little-endian; labels and metadata as base/labels.h pairs. A segment's timestamps are the
 * append times (ms) of its records, so the age bound is the time entries waited in the
 * queue, whatever their own timestamps. An append is written (one writev) before it
 * returns: acknowledged entries survive SIGKILL. Event loop thread only (but the fsyncs of
 * policy interval). */
#ifndef MW_LOGS_QUEUE_H
#define MW_LOGS_QUEUE_H
#include <stddef.h>
#include <stdint.h>

#include "model/logbatch.h"
#include "storage/recordlog.h"

/* ffi.cdef begin */
/* --- logs queue (runtime/storage/logs_queue.h) ------------------------ */

typedef struct mw_logq mw_logq_t;

typedef struct {
  uint64_t entries_appended; /* since open */
  uint64_t bytes_appended;   /* line bytes, since open */
  uint64_t replayed_entries; /* found in the queue at open */
  uint64_t dropped_too_old;  /* removed unread by the age bound (most any reader lost) */
  uint64_t dropped_full;     /* removed unread by the size bound (most any reader lost) */
  uint64_t entries;          /* in the queue now (read or not) */
  uint64_t corruptions;
  uint64_t fsyncs;
  uint64_t bytes; /* on disk */
  uint64_t segments;
} mw_logq_stats_t;

/* The logs queue in dir/queue (cursors in dir). fsync: MW_WAL_FSYNC_*. 0, or -1 with err. */
int mw_ffi_logq_open(const char *dir, int fsync, uint64_t segment_size, mw_logq_t **out, char *err,
                     size_t errlen);
void mw_ffi_logq_close(mw_logq_t *q);
/* 0; -1 with err: not written; 1 with err: written, its fsync failed. */
int mw_ffi_logq_append(mw_logq_t *q, const mw_logbatch_t *b, int64_t now_ms, char *err,
                       size_t errlen);
int mw_ffi_logq_truncate(mw_logq_t *q, int64_t now_ms, int64_t max_age_ms, uint64_t max_bytes,
                         char *err, size_t errlen);
int mw_ffi_logq_sync_start(mw_logq_t *q, char *err, size_t errlen);
void mw_ffi_logq_stats(const mw_logq_t *q, mw_logq_stats_t *st);
const char *mw_ffi_logq_repair_log(const mw_logq_t *q);
/* ffi.cdef end */

#define MW_LOGQ_REC_ENTRIES 1

/* 0, or -1 with err. segment_size 0: 16 MiB. */
int mw_logq_open(const char *dir, int fsync, uint64_t segment_size, mw_logq_t **out, char *err,
                 size_t errlen);
/* Stops writing (syncs unless fsync never); freed once its last reader is closed. NULL ok. */
void mw_logq_close(mw_logq_t *q);
/* Appends every entry of b as one record at time now_ms. 0; -1 with err: nothing written;
 * 1 with err: written, its fsync (policy always) failed. */
int mw_logq_append(mw_logq_t *q, const mw_logbatch_t *b, int64_t now_ms, char *err, size_t errlen);
/* Removes segments every reader has committed, those older than max_age_ms (0: no age
 * bound; read or not: their unread entries count as dropped too_old), then the oldest while
 * the queue is over max_bytes (0: no bound; dropped queue_full). 0, or -1 with err. */
int mw_logq_truncate(mw_logq_t *q, int64_t now_ms, int64_t max_age_ms, uint64_t max_bytes,
                     char *err, size_t errlen);
int mw_logq_sync_start(mw_logq_t *q, char *err, size_t errlen);
void mw_logq_stats(const mw_logq_t *q, mw_logq_stats_t *st);
const char *mw_logq_repair_log(const mw_logq_t *q);

/* --- for readers ------------------------------------------------------ */

mw_rlog_t *mw_logq_log(mw_logq_t *q);
/* A reader opened (1) or closed (-1): the queue is freed after close and its last reader. */
void mw_logq_ref(mw_logq_t *q, int d);
int mw_logq_closed(const mw_logq_t *q);

/* A record being read: its streams (pointers into the record) and its entries in order. */
typedef struct {
  const uint8_t *p, *end;
  uint32_t count, nstreams, next;
  const uint8_t **stream;
  uint32_t *stream_len;
  size_t stream_cap;
} mw_logq_dec_t;

/* Starts decoding a record's payload (streams checked). 0, -1 malformed, -2 out of memory. */
int mw_logq_dec_begin(mw_logq_dec_t *d, const uint8_t *p, size_t len);
/* The next entry: 1 with e (pointers into the record), 0 at the end, -1 malformed. */
int mw_logq_dec_next(mw_logq_dec_t *d, mw_logentry_t *e);
void mw_logq_dec_free(mw_logq_dec_t *d);

#endif
