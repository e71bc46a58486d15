/* storage/logs_queue.c: the logs queue on the record log (see logs_queue.h). */
#include "storage/logs_queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "base/err.h"
#include "base/grow.h"
#include "model/logbatch.h"

#define MW_LOGQ_MAGIC "MWLOGQ01"

struct mw_logq {
  mw_rlog_t *log;
  int closed, nreaders;
  mw_logq_stats_t st;
  uint8_t *buf; /* the record being built */
  size_t cap;
};

/* --- records --------------------------------------------------------- */

int mw_logq_dec_begin(mw_logq_dec_t *d, const uint8_t *p, size_t len) {
  d->p = p;
  d->end = p + len;
  d->next = 0;
  if (len < 8) return -1;
  d->count = mw_get32(p);
  d->nstreams = mw_get32(p + 4);
  d->p += 8;
  if (d->nstreams > len / 4) return -1;
  if (mw_grow((void **)&d->stream, &d->stream_cap, d->nstreams ? d->nstreams : 1,
              sizeof *d->stream) != 0)
    return -2;
  uint32_t *sl = realloc(d->stream_len, d->stream_cap * sizeof *sl);
  if (!sl) return -2;
  d->stream_len = sl;
  for (uint32_t i = 0; i < d->nstreams; i++) {
    if (d->end - d->p < 4) return -1;
    uint32_t n = mw_get32(d->p);
    d->p += 4;
    if ((size_t)(d->end - d->p) < n) return -1;
    d->stream[i] = d->p;
    d->stream_len[i] = n;
    d->p += n;
  }
  return 0;
}

int mw_logq_dec_next(mw_logq_dec_t *d, mw_logentry_t *e) {
  if (d->next == d->count) return d->p == d->end ? 0 : -1;
  if (d->end - d->p < 20) return -1;
  e->stream = mw_get32(d->p);
  e->ts_ns = (int64_t)mw_get64(d->p + 4);
  e->line_len = mw_get32(d->p + 12);
  e->meta_len = mw_get32(d->p + 16);
  d->p += 20;
  if (e->stream >= d->nstreams || (size_t)(d->end - d->p) < (size_t)e->line_len + e->meta_len)
    return -1;
  e->line = (const char *)d->p;
  e->meta = d->p + e->line_len;
  d->p += (size_t)e->line_len + e->meta_len;
  d->next++;
  return 1;
}

void mw_logq_dec_free(mw_logq_dec_t *d) {
  free(d->stream);
  free(d->stream_len);
  d->stream = NULL;
  d->stream_len = NULL;
  d->stream_cap = 0;
}

/* Replay: checks each record whole; its items and append time go to the segment. */
static int mw_logq_replay(void *ctx, const mw_rlog_rec_t *rec, mw_rlog_seg_t *seg, char *err,
                          size_t errlen) {
  mw_logq_t *q = ctx;
  if (rec->checkpoint) return 0;
  if (rec->len < 16) return 1;
  /* the append time is kept after the entries' count: see mw_logq_append */
  int64_t at = (int64_t)mw_get64(rec->p + rec->len - 8);
  mw_logq_dec_t d = {0};
  int rc = mw_logq_dec_begin(&d, rec->p, rec->len - 8);
  mw_logentry_t e;
  uint64_t n = 0;
  if (rc == 0)
    while ((rc = mw_logq_dec_next(&d, &e)) == 1)
      n++;
  mw_logq_dec_free(&d);
  if (rc == -2) {
    mw_seterr(err, errlen, "out of memory");
    return -1;
  }
  if (rc != 0) return 1;
  if (at < seg->min_ts) seg->min_ts = at;
  if (at > seg->max_ts) seg->max_ts = at;
  seg->items += n;
  q->st.replayed_entries += n;
  return 0;
}

int mw_logq_open(const char *dir, int fsync, uint64_t segment_size, mw_logq_t **out, char *err,
                 size_t errlen) {
  *out = NULL;
  mw_logq_t *q = calloc(1, sizeof *q);
  size_t n = strlen(dir) + 8;
  char *qdir = malloc(n);
  if (!q || !qdir) {
    free(q);
    free(qdir);
    mw_seterr(err, errlen, "out of memory");
    return -1;
  }
  snprintf(qdir, n, "%s/queue", dir);
  mw_rlog_opts_t lo = {.magic = MW_LOGQ_MAGIC,
                       .segment_size = segment_size ? segment_size : (16u << 20),
                       .fsync = fsync,
                       .types = 1u << MW_LOGQ_REC_ENTRIES,
                       .counted = 1u << MW_LOGQ_REC_ENTRIES,
                       .cursor_dir = dir,
                       .what = "logs queue",
                       .items = "entries",
                       .replay = mw_logq_replay,
                       .ctx = q};
  if (lo.segment_size < 1024) lo.segment_size = 1024;
  int rc = mw_rlog_open(qdir, &lo, &q->log, err, errlen);
  free(qdir);
  if (rc != 0) {
    free(q);
    return -1;
  }
  *out = q;
  return 0;
}

static void mw_logq_free(mw_logq_t *q) {
  mw_rlog_free(q->log);
  free(q->buf);
  free(q);
}

void mw_logq_close(mw_logq_t *q) {
  if (!q || q->closed) return;
  mw_rlog_close(q->log);
  q->closed = 1;
  if (!q->nreaders) mw_logq_free(q);
}

void mw_logq_ref(mw_logq_t *q, int d) {
  q->nreaders += d;
  if (q->closed && !q->nreaders) mw_logq_free(q);
}

int mw_logq_closed(const mw_logq_t *q) { return q->closed; }
mw_rlog_t *mw_logq_log(mw_logq_t *q) { return q->log; }
const char *mw_logq_repair_log(const mw_logq_t *q) { return mw_rlog_repair_log(q->log); }

/* A batch is split into records of about this many bytes of entries (a record holds the whole
 * streams table of its batch). */
#define MW_LOGQ_RECORD_BYTES (8u << 20)

/* Writes one record of entries [from, to) of b at p; returns its end. */
static uint8_t *mw_logq_record(uint8_t *p, const mw_logbatch_t *b, size_t from, size_t to,
                               size_t streams_size, int64_t now_ms, uint64_t *bytes) {
  uint8_t *hdr = p;
  size_t ns = mw_logbatch_streams(b);
  p += MW_RLOG_REC_HDR;
  mw_put32(p, (uint32_t)(to - from));
  mw_put32(p + 4, (uint32_t)ns);
  p += 8;
  for (uint32_t s = 0; s < ns; s++) {
    size_t l;
    const uint8_t *lab = mw_logbatch_stream_labels(b, s, &l);
    mw_put32(p, (uint32_t)l);
    memcpy(p + 4, lab, l);
    p += 4 + l;
  }
  mw_logentry_t e;
  for (size_t i = from; i < to; i++) {
    mw_logbatch_entry(b, i, &e);
    mw_put32(p, e.stream);
    mw_put64(p + 4, (uint64_t)e.ts_ns);
    mw_put32(p + 12, e.line_len);
    mw_put32(p + 16, e.meta_len);
    p += 20;
    if (e.line_len) memcpy(p, e.line, e.line_len);
    p += e.line_len;
    if (e.meta_len) memcpy(p, e.meta, e.meta_len);
    p += e.meta_len;
    *bytes += e.line_len;
  }
  mw_put64(p, (uint64_t)now_ms);
  p += 8;
  (void)streams_size;
  mw_rlog_frame(hdr, MW_LOGQ_REC_ENTRIES, (uint32_t)(p - hdr - MW_RLOG_REC_HDR));
  return p;
}

int mw_logq_append(mw_logq_t *q, const mw_logbatch_t *b, int64_t now_ms, char *err, size_t errlen) {
  if (q->closed) {
    mw_seterr(err, errlen, "logs queue closed");
    return -1;
  }
  size_t n = mw_logbatch_len(b), ns = mw_logbatch_streams(b);
  if (!n) return 0;
  /* a record: header, count, streams, entries, then the append time (u64, not counted) */
  size_t streams_size = 0;
  for (uint32_t s = 0; s < ns; s++) {
    size_t l;
    mw_logbatch_stream_labels(b, s, &l);
    streams_size += 4 + l;
  }
  size_t fixed = MW_RLOG_REC_HDR + 8 + streams_size + 8, need = fixed, chunk = 0;
  mw_logentry_t e;
  for (size_t i = 0; i < n; i++) {
    mw_logbatch_entry(b, i, &e);
    size_t sz = 20 + (size_t)e.line_len + e.meta_len;
    if (chunk && chunk + sz > MW_LOGQ_RECORD_BYTES) {
      need += fixed;
      chunk = 0;
    }
    if (fixed - MW_RLOG_REC_HDR + sz > MW_RLOG_MAX_RECORD) {
      mw_seterr(err, errlen, "an entry of %zu bytes is too large for the queue", sz);
      return -1;
    }
    chunk += sz;
    need += sz;
  }
  if (mw_grow((void **)&q->buf, &q->cap, need, 1) != 0) {
    mw_seterr(err, errlen, "out of memory");
    return -1;
  }
  uint8_t *p = q->buf;
  uint64_t bytes = 0;
  size_t from = 0;
  chunk = 0;
  for (size_t i = 0; i < n; i++) {
    mw_logbatch_entry(b, i, &e);
    size_t sz = 20 + (size_t)e.line_len + e.meta_len;
    if (chunk && chunk + sz > MW_LOGQ_RECORD_BYTES) {
      p = mw_logq_record(p, b, from, i, streams_size, now_ms, &bytes);
      from = i;
      chunk = 0;
    }
    chunk += sz;
  }
  p = mw_logq_record(p, b, from, n, streams_size, now_ms, &bytes);
  struct iovec iov = {.iov_base = q->buf, .iov_len = (size_t)(p - q->buf)};
  uint32_t seg;
  int rc = mw_rlog_append(q->log, &iov, 1, n, now_ms, now_ms, &seg, err, errlen);
  if (rc >= 0) {
    q->st.entries_appended += n;
    q->st.bytes_appended += bytes;
  }
  if (q->cap > (16u << 20) && need < (1u << 20)) { /* a huge batch gives its memory back */
    free(q->buf);
    q->buf = NULL;
    q->cap = 0;
  }
  return rc;
}

static int mw_logq_cp_none(void *ctx, mw_rlog_cpw_t *cpw, char *err, size_t errlen) {
  (void)ctx, (void)cpw, (void)err, (void)errlen;
  return 0; /* nothing outlives its segment */
}

static int mw_logq_cut(mw_logq_t *q, const mw_rlog_bounds_t *b, uint64_t *dropped, char *err,
                       size_t errlen) {
  long k = mw_rlog_truncate_plan(q->log, b, err, errlen);
  if (k <= 0) return (int)k;
  uint64_t d = 0;
  int rc = mw_rlog_truncate_cursors(q->log, (size_t)k, &d, err, errlen);
  *dropped += d;
  if (mw_rlog_truncate_finish(q->log, (size_t)k, mw_logq_cp_none, q, err, errlen) != 0) return -1;
  return rc;
}

int mw_logq_truncate(mw_logq_t *q, int64_t now_ms, int64_t max_age_ms, uint64_t max_bytes,
                     char *err, size_t errlen) {
  if (q->closed) {
    mw_seterr(err, errlen, "logs queue closed");
    return -1;
  }
  /* read by every reader: gone at once; older than max_age: gone, read or not */
  mw_rlog_bounds_t age = {.min_cut = INT64_MAX,
                          .max_cut = max_age_ms > 0 ? now_ms - max_age_ms : INT64_MIN};
  if (mw_logq_cut(q, &age, &q->st.dropped_too_old, err, errlen) != 0) return -1;
  if (!max_bytes) return 0;
  mw_rlog_stats_t ls;
  mw_rlog_stats(q->log, &ls);
  if (ls.bytes <= max_bytes) return 0;
  mw_rlog_bounds_t size = {.min_cut = INT64_MAX, .max_cut = INT64_MIN, .max_bytes = max_bytes};
  return mw_logq_cut(q, &size, &q->st.dropped_full, err, errlen);
}

int mw_logq_sync_start(mw_logq_t *q, char *err, size_t errlen) {
  if (q->closed) return 0;
  return mw_rlog_sync_start(q->log, err, errlen);
}

void mw_logq_stats(const mw_logq_t *q, mw_logq_stats_t *st) {
  *st = q->st;
  mw_rlog_stats_t ls;
  mw_rlog_stats(q->log, &ls);
  st->corruptions = ls.corruptions;
  st->fsyncs = ls.fsyncs;
  st->bytes = ls.bytes;
  size_t n;
  const mw_rlog_seg_t *segs = mw_rlog_segments(q->log, &n);
  st->segments = n;
  uint64_t items = 0;
  for (size_t i = 0; i < n; i++)
    items += segs[i].items;
  st->entries = items;
}

/* --- FFI -------------------------------------------------------------- */

int mw_ffi_logq_open(const char *dir, int fsync, uint64_t segment_size, mw_logq_t **out, char *err,
                     size_t errlen) {
  return mw_logq_open(dir, fsync, segment_size, out, err, errlen);
}
void mw_ffi_logq_close(mw_logq_t *q) { mw_logq_close(q); }
int mw_ffi_logq_append(mw_logq_t *q, const mw_logbatch_t *b, int64_t now_ms, char *err,
                       size_t errlen) {
  return mw_logq_append(q, b, now_ms, err, errlen);
}
int mw_ffi_logq_truncate(mw_logq_t *q, int64_t now_ms, int64_t max_age_ms, uint64_t max_bytes,
                         char *err, size_t errlen) {
  return mw_logq_truncate(q, now_ms, max_age_ms, max_bytes, err, errlen);
}
int mw_ffi_logq_sync_start(mw_logq_t *q, char *err, size_t errlen) {
  return mw_logq_sync_start(q, err, errlen);
}
void mw_ffi_logq_stats(const mw_logq_t *q, mw_logq_stats_t *st) { mw_logq_stats(q, st); }
const char *mw_ffi_logq_repair_log(const mw_logq_t *q) { return mw_logq_repair_log(q); }
