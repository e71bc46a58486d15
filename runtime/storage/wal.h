/* storage/wal.h: prometheus.remote_write's write-ahead log (one per component);
 * its readers are in remote/wal_reader.h.
 *
 * Three layers: the type-agnostic record log (runtime/storage/recordlog.c:
 * segments, CRCs, repair, cursor files, fsyncs, truncation), the metrics WAL
 * on it (runtime/storage/metrics_wal.c: series, samples and exemplars
 * records, memos, borrowed label sets, the ref map, the checkpoint's
 * content) and remote_write's reader on that (runtime/remote/wal_reader.c:
 * relabel, shards, encode, sample_age_limit, spans and commits).
 *
 * Layout (DIR is the component's directory under --storage.path):
 *
 *   DIR/wal/00000001 ...          segments, numbered from 1, decimal, 8 digits
 *   DIR/wal/checkpoint.NNNNNNNN/00000000
 *                                 series still in use when segments <= N were
 *                                 removed (same format as a segment)
 *   DIR/cursor.NAME               a reader's committed position: the text
 *                                 "mwcursor 2 SEG OFF IDX CRC" (CRC-32C of what
 *                                 precedes it; version 1 had no CRC)
 *   DIR/.cursor.NAME.prev         the cursor saved before it (read when the
 *                                 cursor is missing, damaged or unreadable)
 *   DIR/.cursor.NAME.damaged      the last damaged cursor, set aside
 *
 * A segment is the 8-byte magic "MWWAL001" and records. A record is
 *
 *   type u8 | length u32 | crc u32 | payload (length bytes)
 *
 * little-endian, crc = CRC-32C of the type, the length and the payload.
 * Types: 1 series: count u32, then count times (ref uvarint, label set
 * length uvarint, encoded label set); 2 samples: count u32, base timestamp
 * i64, then count times (ref delta from the previous sample's ref, zigzag
 * varint; timestamp - base, zigzag varint; value, 8 bytes, the IEEE bits as
 * they are, so the staleness NaN is kept); 3 exemplars: count u32, base
 * timestamp i64, then count times (ref delta, zigzag varint; timestamp -
 * base, zigzag varint; value, 8 bytes; label set length uvarint, encoded
 * label set, possibly empty), written after the samples record of the same
 * append, for series of that append. A WAL written before exemplars
 * existed has no type 3 records and reads as before (an older moonwatch
 * would take a type 3 record for corruption). 4 histograms (native
 * histogram samples, model/histogram.h), written last in an append, at most
 * 4096 a record (exemplars and histograms records are also closed past 16 MiB:
 * none passes the 64 MiB the record log reads back): count u32, base timestamp
 * i64, then count times (ref delta, zigzag varint; timestamp - base, zigzag
 * varint; flags u8: bit 0 float histogram, bits 1-2 the counter reset hint;
 * schema, zigzag varint; zero threshold, 8 bytes; count and zero count:
 * uvarints for an integer histogram, 8 bytes each (IEEE bits) for a float one;
 * sum, 8 bytes (the staleness NaN of a histogram stale marker kept bit for
 * bit); positive spans, then negative spans: a uvarint count, then (offset
 * zigzag varint, length uvarint) each; positive buckets, then negative
 * buckets: a uvarint count, then zigzag varint deltas (integer) or 8-byte
 * counts (float); custom values: a uvarint count, 8 bytes each). Like samples
 * records they are counted records: their histograms are items of their segment
 * (truncation, cursors). A WAL written before histograms existed has no
 * type 4 records and reads as before (an older moonwatch would take one for
 * corruption). A record that does not decode to valid histograms
 * (mw_histogram_validate) is corruption. Refs are WAL series refs: handed
 * out in increasing order from 1, never reused, so a ref means one label set
 * for the life of the WAL. A series record always precedes the first sample
 * of its series.
 *
 * Guarantees. An append writes all its records with one writev before it
 * returns: acknowledged data is in the kernel and survives SIGKILL or a crash
 * of the process at any moment (see MW_WAL_FSYNC_* above for power loss).
 * A write killed midway leaves a torn record that the next open cuts off;
 * a failed write is truncated away at once. At open every segment is
 * replayed; the first torn, short or bad-CRC record of a segment ends it:
 * the segment is truncated there (the last one included), the cut is logged
 * and counted, and reading goes on with the next segment.
 *
 * Readers keep their own cursor (segment, offset, samples of that record
 * already read). Delivery is at least once: chunks handed out and not
 * committed before a crash are sent again after the restart. A chunk is a
 * span of the WAL cut into one request per shard (a series' samples all in
 * one shard's request, chosen by a hash of its WAL ref); the span is
 * committed as a whole, so a series' samples never overtake each other
 * whatever the shard count of the next span.
 *
 * Everything here runs on the event loop thread, except the fsyncs of
 * policy INTERVAL (mw_wal_sync_start), which a worker thread does with its
 * own fds; fsyncs of policy ALWAYS and mw_wal_sync block the loop. */
#ifndef MW_WAL_H
#define MW_WAL_H
#include "model/batch.h"
#include <stddef.h>
#include <stdint.h>

/* ffi.cdef begin */
/* --- remote write --- */
/* prometheus.remote_write: a crash-safe write-ahead log per component and
 * Remote-Write 1.0 requests read from it (runtime/storage/wal.h and runtime/remote/encode.h
 * have the full contracts). Pull-style: Lua appends batches, each endpoint
 * pulls spans of snappy-compressed protobuf requests (one per shard) from
 * its own reader, POSTs them concurrently and commits the span once every
 * request of it is done (2xx, or dropped). Event loop thread only.
 * Returns: 0 ok, -1 error with a message in err (errlen bytes). */
typedef struct mw_wal mw_wal_t;

/* When the WAL calls fsync. A returned append has reached the kernel with
 * every policy, so it survives a crash or SIGKILL of the process; only
 * ALWAYS also survives a power loss or kernel crash at every moment.
 * INTERVAL loses at most what was appended since the last completed sync
 * (mw_ffi_wal_sync_start, every interval, on a worker thread),
 * NEVER what the OS had not yet written back (Prometheus agent's default). */
enum { MW_WAL_FSYNC_NEVER = 0, MW_WAL_FSYNC_INTERVAL = 1, MW_WAL_FSYNC_ALWAYS = 2 };

typedef struct {
  uint64_t segment_size; /* bytes before a new segment file is started; 0: 128 MiB */
  int32_t fsync;         /* MW_WAL_FSYNC_* */
  int32_t reserved;      /* 0 */
} mw_wal_opts_t;

/* Counters only grow while the WAL is open; gauges are current values. */
typedef struct {
  uint64_t samples_appended; /* counter: samples written by appends */
  uint64_t series_created;   /* counter: series records written by appends */
  uint64_t series_removed;   /* counter: series forgotten by truncation */
  uint64_t active_series;    /* gauge */
  uint64_t bytes;            /* gauge: segments and checkpoint on disk */
  uint64_t segments;         /* gauge: segment files */
  uint64_t first_segment;    /* gauge: index of the oldest segment */
  uint64_t last_segment;     /* gauge: index of the segment being written */
  uint64_t corruptions;      /* counter: torn or corrupt records cut at open or skipped */
  uint64_t corrupt_bytes;    /* counter: bytes cut or skipped because of them */
  uint64_t samples_dropped;  /* counter: samples removed by max_keepalive before every
                                reader had committed them (the largest loss of any reader) */
  uint64_t segments_removed; /* counter: segments removed by truncation */
  uint64_t checkpoints;      /* counter: checkpoints written */
  uint64_t fsyncs;           /* counter */
  uint64_t replayed_samples; /* samples found in the WAL at open */
  uint64_t replayed_series;  /* series found in the WAL at open */
  uint64_t samples_invalid;  /* counter: samples not written, their label set has an empty
                                name or value, a NUL byte or is not sorted */

  /* counter: exemplars written by appends (a repeat of the last exemplar
   * written for a series is left out, as Prometheus agent's WAL does) */
  uint64_t exemplars_appended;
  /* exemplars found in the WAL at open */
  uint64_t replayed_exemplars;
  /* gauge: highest timestamp (ms) of a sample appended since open, 0: none
   * yet (Prometheus's highest_timestamp_in_seconds) */
  int64_t max_ts;
  /* counter: histogram samples (native histograms) written by appends */
  uint64_t histograms_appended;
  /* histogram samples found in the WAL at open */
  uint64_t replayed_histograms;
} mw_wal_stats_t;

/* Opens the WAL of one component in directory dir (created if missing; the
 * WAL lives in dir/wal, reader cursors in dir/cursor.NAME), replays it and
 * repairs a torn or corrupt tail (cut to the last good record, counted in
 * stats, described by mw_ffi_wal_repair_log): corruption never fails the
 * open, only I/O errors do. opts NULL: defaults. *out is freed with
 * mw_ffi_wal_close. */
int mw_ffi_wal_open(const char *dir, const mw_wal_opts_t *opts, mw_wal_t **out, char *err,
                    size_t errlen);
/* Closes the WAL (NULL ok). Readers still open keep its memory alive until
 * they are closed; their calls then fail. */
void mw_ffi_wal_close(mw_wal_t *w);
/* Appends every sample of batch b (series records first for label sets the
 * WAL has not seen). When it returns 0 the bytes are in the kernel (and on
 * disk with MW_WAL_FSYNC_ALWAYS). On -1 (err set) nothing of b was written;
 * on 1 (err set) the fsync of MW_WAL_FSYNC_ALWAYS failed: b is in the WAL,
 * not known to be on disk. */
int mw_ffi_wal_append(mw_wal_t *w, const mw_batch_t *b, char *err, size_t errlen);
/* fsyncs what was appended, on the calling thread (at stop). */
int mw_ffi_wal_sync(mw_wal_t *w, char *err, size_t errlen);
/* Starts an fsync of what was appended on a worker thread and collects the
 * previous one (call every interval with MW_WAL_FSYNC_INTERVAL); -1 with err
 * if the previous one failed. See mw_wal_sync_start. */
int mw_ffi_wal_sync_start(mw_wal_t *w, char *err, size_t errlen);
/* Starts a new segment, then removes the oldest segments that every reader
 * has committed and whose newest sample is older than now_ms -
 * min_keepalive_ms, and those whose newest sample is older than now_ms -
 * max_keepalive_ms even if a reader has not committed them (its cursor
 * jumps ahead; the samples are counted as dropped). Series of removed
 * segments still in use are kept in a checkpoint. Call periodically. */
int mw_ffi_wal_truncate(mw_wal_t *w, int64_t now_ms, int64_t min_keepalive_ms,
                        int64_t max_keepalive_ms, char *err, size_t errlen);
void mw_ffi_wal_stats(const mw_wal_t *w, mw_wal_stats_t *st);
/* What repairs at open found and did, one line each ("" if none). Owned by
 * w, valid until it is closed. */
const char *mw_ffi_wal_repair_log(const mw_wal_t *w);
/* ffi.cdef end */

#define MW_WAL_DEFAULT_SEGMENT_SIZE (128u << 20)

/* Opens (creating if needed) the WAL in dir/wal, replays and repairs it; see
 * mw_ffi_wal_open. *out is the caller's, freed with mw_wal_close. */
int mw_wal_open(const char *dir, const mw_wal_opts_t *opts, mw_wal_t **out, char *err,
                size_t errlen);
/* Closes the WAL (NULL ok); open readers keep its memory until closed. */
void mw_wal_close(mw_wal_t *w);

/* Appends batch b: maps its series (refs of b's series table) to WAL series
 * through a memo per source table, writing a series record for label sets
 * seen for the first time, then the samples. b stays the caller's. 0; -1
 * with err: nothing of b is in the WAL; 1 with err: the fsync of
 * MW_WAL_FSYNC_ALWAYS failed, the batch was written, not known to be on disk. */
int mw_wal_append_batch(mw_wal_t *w, const mw_batch_t *b, char *err, size_t errlen);

/* fsyncs the segment being written, the segments finished since the last
 * sync, and the directory after a new segment; waits for a sync started by
 * mw_wal_sync_start first. 0, or -1 with err (also when that one failed). */
int mw_wal_sync(mw_wal_t *w, char *err, size_t errlen);
/* The same on a worker thread, which the call does not wait for: it starts
 * the sync of what has been appended so far and collects the one it started
 * the time before. 0: started, or the last one still runs (then nothing new
 * is started); -1 with err: the last one failed (then nothing new is
 * started: call again), or no sync could be started (out of memory). The
 * fsyncs stat counts a sync when it is collected (next call, mw_wal_sync,
 * mw_wal_close). Finished segments are then closed, and with policy
 * INTERVAL a new segment leaves the old one to this sync. */
int mw_wal_sync_start(mw_wal_t *w, char *err, size_t errlen);

/* Checkpoint and truncation; see mw_ffi_wal_truncate. */
int mw_wal_truncate(mw_wal_t *w, int64_t now_ms, int64_t min_keepalive_ms, int64_t max_keepalive_ms,
                    char *err, size_t errlen);

void mw_wal_stats(const mw_wal_t *w, mw_wal_stats_t *st);
/* Bytes the WAL's series structures hold from malloc (its series table with
 * the label bytes it owns, not the borrowed ones; per-series arrays; the
 * ref map; memos and borrow records); *map (if not NULL) gets the ref
 * map's share. Buffers of the record being written are not counted. */
size_t mw_wal_mem(const mw_wal_t *w, size_t *map);
/* Repairs done at open, one line each; owned by w. */
const char *mw_wal_repair_log(const mw_wal_t *w);

#endif
