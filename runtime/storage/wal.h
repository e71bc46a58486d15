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
 * would take a type 3 record for corruption). Refs are WAL series refs: handed
 * out in increasing order from 1, never reused, so a ref means one label set
 * for the life of the WAL. A series record always precedes the first sample
 * of its series.
 *
 * Guarantees. An append writes all its records with one writev before it
 * returns: acknowledged data is in the kernel and survives SIGKILL or a crash
 * of the process at any moment (see MW_WAL_FSYNC_* in ffi.h for power loss).
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
#include <stddef.h>
#include <stdint.h>

#include "ffi.h"

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
/* Repairs done at open, one line each; owned by w. */
const char *mw_wal_repair_log(const mw_wal_t *w);

#endif
