/* remote/wal_reader.h: prometheus.remote_write's readers of the WAL
 * (storage/wal.h): each with its own cursor, write relabeling, shards,
 * Remote-Write encoding, sample_age_limit, spans and commits; see the
 * mw_ffi_wal_reader_* contracts in the FFI block below. */
#ifndef MW_WAL_READER_H
#define MW_WAL_READER_H
#include <stddef.h>
#include <stdint.h>

#include "relabel/relabel.h"
#include "storage/wal.h"

/* ffi.cdef begin */
/* --- remote write: WAL readers (remote/wal_reader.c) ---------------------- */

/* A reader of a WAL (storage/wal.h), one per endpoint. */
typedef struct mw_wal_reader mw_wal_reader_t;

/* Most shards a span may be cut into. */
enum { MW_WAL_MAX_SHARDS = 1024 };

/* One chunk handed out by mw_ffi_wal_reader_next, or one shard's request
 * of a span (mw_ffi_wal_reader_next_shards; empty: samples and exemplars
 * 0; a request may hold exemplars only, and must be sent too). */
typedef struct {
  uint64_t seq;       /* pass to mw_ffi_wal_reader_commit once sent (the span's) */
  uint32_t samples;   /* samples in the request */
  uint32_t series;    /* series in the request */
  int64_t min_ts;     /* lowest sample timestamp, ms */
  int64_t max_ts;     /* highest sample timestamp, ms */
  uint64_t raw_bytes; /* protobuf size before snappy */

  /* exemplars in the request (0 with send_exemplars off) */
  uint32_t exemplars;
  uint32_t reserved;
  /* histogram samples in the request (0 with send_native_histograms off) */
  uint32_t histograms;
  uint32_t reserved2;
} mw_wal_chunk_t;

typedef struct {
  uint64_t samples_read;      /* samples put in chunks, resends included, less what
                                 _drop_old took out of them */
  uint64_t samples_committed; /* counter: samples of committed chunks */
  uint64_t chunks_committed;  /* counter */
  uint64_t samples_dropped;   /* counter: dropped by max_keepalive before this reader had them */
  uint64_t unknown_series;    /* counter: samples skipped, their series record was lost */
  uint64_t pending_chunks;    /* gauge: chunks handed out and not committed yet */
  int64_t committed_max_ts;   /* gauge: highest timestamp committed, ms (0: none yet) */
  uint64_t segment;           /* gauge: committed cursor, segment index */
  uint64_t offset;            /* gauge: committed cursor, byte offset in the segment */
  uint64_t samples_relabel_dropped; /* counter: samples skipped, write relabeling dropped their
                                       series (re-reads included) */
  uint64_t samples_too_old;         /* counter: samples skipped for being older than the min_ts of
                                       _next_shards or taken out by _drop_old (re-reads included) */

  /* counter: exemplars put in chunks, resends included */
  uint64_t exemplars_read;
  /* counter: exemplars of committed chunks */
  uint64_t exemplars_committed;
  /* counter: exemplars skipped: write relabeling dropped their series, its
   * series record was lost, or older than the min_ts of _next_shards (re-reads
   * included) */
  uint64_t exemplars_dropped;
  /* gauge: exemplars of chunks handed out, not committed yet */
  uint64_t exemplars_pending;
  /* counters, parts of exemplars_dropped: older than min_ts (or taken out by
   * _drop_old), and of a series write relabeling dropped; the rest of it had
   * their series record lost (or invalid labels) */
  uint64_t exemplars_too_old;
  uint64_t exemplars_relabel_dropped;
  /* samples the WAL held before the cursor when the reader opened: sent before
   * a restart (pending is what the WAL got less these, the committed and the
   * dropped) */
  uint64_t samples_before_open;
  /* counter: damaged or unreadable cursor files found at open, or a cursor
   * past the WAL's end (mw_ffi_wal_reader_note says what was done) */
  uint64_t cursor_errors;

  /* Native histogram samples (the WAL's histograms records). The record log counts
   * them as items with the samples: samples_dropped (max_keepalive),
   * samples_before_open and the WAL's segments count both kinds. */
  uint64_t histograms_read;      /* counter: put in spans, resends included */
  uint64_t histograms_committed; /* counter: of committed spans */
  uint64_t histograms_pending;   /* gauge: of spans handed out, not committed yet */
  /* counter: skipped (re-reads included): sending them is off (send_native_histograms;
   * also in histograms_unsent), write relabeling dropped their series, older than
   * min_ts (or taken out by _drop_old), or their series record was lost */
  uint64_t histograms_dropped;
  uint64_t histograms_unsent;          /* part of histograms_dropped: sending them is off */
  uint64_t histograms_too_old;         /* part of histograms_dropped */
  uint64_t histograms_relabel_dropped; /* part of histograms_dropped */
} mw_wal_reader_stats_t;

/* Opens the reader called name (letters, digits, '_', '-', '.'; one per
 * endpoint) at its saved cursor, or at the oldest data if it has none: what
 * was written and not committed before a restart is read again. external
 * labels: an encoded label set (len 0: none). Free with
 * mw_ffi_wal_reader_close. */
int mw_ffi_wal_reader_open(mw_wal_t *w, const char *name, const uint8_t *external_labels,
                           size_t len, mw_wal_reader_t **out, char *err, size_t errlen);
void mw_ffi_wal_reader_close(mw_wal_reader_t *r);
/* What opening r found wrong with its cursor file and did about it (a damaged
 * or unreadable file: its previous copy used, or the WAL read from its oldest
 * data), for a warning; "" when nothing. */
const char *mw_ffi_wal_reader_note(const mw_wal_reader_t *r);
/* Reads up to max_samples samples after the last chunk handed out and
 * encodes them as a WriteRequest, snappy-compressed: *buf and *len (owned by
 * r, valid until its next call of _next or _close). Several chunks may be in
 * flight; a chunk whose send failed is resent with the same bytes. Returns 1
 * with a chunk (info in *chunk), 0 when there is nothing new, -1 on error. */
int mw_ffi_wal_reader_next(mw_wal_reader_t *r, uint32_t max_samples, const uint8_t **buf,
                           size_t *len, mw_wal_chunk_t *chunk, char *err, size_t errlen);
/* Reads the next span after the last one handed out and cuts it into
 * nshards (1 .. MW_WAL_MAX_SHARDS) requests: every sample of a series goes
 * to the same shard (a hash of its WAL ref mod nshards), in WAL order. The
 * span ends when nothing more is available or before the first sample whose
 * shard already has max_samples samples and exemplars together (as
 * Prometheus counts a batch; a shard goes past it only by the exemplars of
 * one WAL record, which are not split). Samples
 * with a timestamp below min_ts are skipped and counted in samples_too_old,
 * exemplars below it in exemplars_dropped (INT64_MIN: none). For shard k: bufs[k], lens[k] (owned
 * by r, valid until the next _next, _next_shards or _close; NULL, 0 for an empty shard) and
 * chunks[k] (every one with the span's seq). The span is one chunk in
 * flight: commit its seq once every non-empty request was accepted or
 * dropped; sending the next span only then keeps each series in order even
 * if the shard count changes. Returns 1 with a span (at least one sample
 * or exemplar: a span may hold exemplars only, e.g. when min_ts took out
 * every sample), 0 when there is nothing new, -1 on error. */
int mw_ffi_wal_reader_next_shards(mw_wal_reader_t *r, uint32_t nshards, uint32_t max_samples,
                                  int64_t min_ts, const uint8_t **bufs, size_t *lens,
                                  mw_wal_chunk_t *chunks, char *err, size_t errlen);
/* Before a retry of a request of span seq (its bytes: body, body_len, as
 * _next_shards made it or as this function made it last time): takes out
 * its samples and exemplars with a timestamp below min_ts
 * (sample_age_limit), and the series left with neither, counted in
 * samples_too_old and exemplars_dropped, and re-encodes what is left into
 * *buf, *len (owned by r, as for _next_shards; NULL, 0 when nothing is left,
 * then the request needs no send) and *chunk. Any request of any span in
 * flight can be filtered: it needs only its bytes; pass the request as it
 * was last sent (what this function made last time, if it made one), so
 * that nothing is counted twice. Returns the number of
 * samples and exemplars taken out (>= 0), or -1 with err (not a request
 * moonwatch made, out of memory): then send the request as it was. */
int mw_ffi_wal_reader_drop_old(mw_wal_reader_t *r, uint64_t seq, const uint8_t *body,
                               size_t body_len, int64_t min_ts, const uint8_t **buf, size_t *len,
                               mw_wal_chunk_t *chunk, char *err, size_t errlen);
/* The remote end accepted chunk seq (2xx, or a 4xx that will never succeed).
 * The saved cursor moves past every chunk committed without a gap
 * (atomically, by rename), so after a restart the reader resumes there:
 * delivery is at least once. An unknown seq (e.g. before a rewind) is
 * ignored. */
int mw_ffi_wal_reader_commit(mw_wal_reader_t *r, uint64_t seq, char *err, size_t errlen);
/* Forgets every chunk in flight: the next chunk starts at the committed cursor. */
void mw_ffi_wal_reader_rewind(mw_wal_reader_t *r);
void mw_ffi_wal_reader_stats(const mw_wal_reader_t *r, mw_wal_reader_stats_t *st);
/* Sets the reader's write relabeling (write_relabel_config), p NULL: none.
 * The caller keeps p alive while it is set. Each series is relabeled once,
 * when the reader first meets it: the external labels it lacks are added
 * first (as Prometheus does), then p runs; the samples of a dropped series
 * (or one left with no labels) are skipped and counted in
 * samples_relabel_dropped, the others are sent with the resulting labels.
 * Setting it forgets the cached results. */
int mw_ffi_wal_reader_set_relabel(mw_wal_reader_t *r, const mw_ffi_relabel_program_t *p, char *err,
                                  size_t errlen);
/* send_exemplars: 1 (the default) puts the exemplars of the WAL's exemplar
 * records in the chunks, each in TimeSeries.exemplars of its series (with
 * the series' labels after write relabeling; the exemplars of a dropped
 * series are dropped and counted); 0 leaves them out (not counted). Applies
 * from the next chunk on. */
void mw_ffi_wal_reader_set_exemplars(mw_wal_reader_t *r, int send);
/* send_native_histograms: 1 puts the histogram samples of the WAL's histograms records
 * in the chunks, each in TimeSeries.histograms of its series (labels after write
 * relabeling), in WAL order, counting toward max_samples as samples do (a span ends
 * before a histograms record once a shard is full); 0 (the default, as Alloy's) skips
 * them, counted in histograms_dropped and histograms_unsent. The float samples of the
 * same series flow either way. Applies from the next chunk on. */
void mw_ffi_wal_reader_set_histograms(mw_wal_reader_t *r, int send);
/* ffi.cdef end */

/* A reader belongs to the caller and must be closed (before or after its
 * WAL). */
int mw_wal_reader_open(mw_wal_t *w, const char *name, const uint8_t *external_labels, size_t len,
                       mw_wal_reader_t **out, char *err, size_t errlen);
void mw_wal_reader_close(mw_wal_reader_t *r);
int mw_wal_reader_next(mw_wal_reader_t *r, uint32_t max_samples, const uint8_t **buf, size_t *len,
                       mw_wal_chunk_t *chunk, char *err, size_t errlen);
int mw_wal_reader_next_shards(mw_wal_reader_t *r, uint32_t nshards, uint32_t max_samples,
                              int64_t min_ts, const uint8_t **bufs, size_t *lens,
                              mw_wal_chunk_t *chunks, char *err, size_t errlen);
int mw_wal_reader_drop_old(mw_wal_reader_t *r, uint64_t seq, const uint8_t *body, size_t body_len,
                           int64_t min_ts, const uint8_t **buf, size_t *len, mw_wal_chunk_t *chunk,
                           char *err, size_t errlen);
int mw_wal_reader_commit(mw_wal_reader_t *r, uint64_t seq, char *err, size_t errlen);
void mw_wal_reader_rewind(mw_wal_reader_t *r);
int mw_wal_reader_set_relabel(mw_wal_reader_t *r, const mw_ffi_relabel_program_t *p, char *err,
                              size_t errlen);
void mw_wal_reader_stats(const mw_wal_reader_t *r, mw_wal_reader_stats_t *st);
void mw_wal_reader_set_exemplars(mw_wal_reader_t *r, int send);
void mw_wal_reader_set_histograms(mw_wal_reader_t *r, int send);

#endif
