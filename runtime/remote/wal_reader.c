/* remote/wal_reader.c: prometheus.remote_write's reader of the metrics WAL, a layer
 * on it (runtime/storage/metrics_wal.c) and on the record log's cursors: it
 * reads samples and exemplars records from its cursor, applies write
 * relabeling (cached per series), drops samples older than sample_age_limit,
 * cuts a span of the WAL into one Remote-Write request per shard (a series'
 * samples all in one shard, by a hash of its WAL ref), encodes them
 * (protobuf + snappy, remote/encode.c) and keeps the spans in flight until they are
 * committed as a whole; the cursor then moves (saved by the record log). */
#include "remote/wal_reader.h"
#include "base/err.h"
#include "storage/metrics_wal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/labels.h"
#include "model/batch.h"
#include "model/series.h"
#include "relabel/relabel.h"
#include "remote/encode.h"

typedef mw_rlog_pos_t mw_pos_t;

typedef struct {
  uint32_t s, n, at; /* series, samples, where its samples start */
  uint32_t shard, fill;
  uint64_t ref; /* its WAL ref */
} mw_slot_t;

/* One shard's request of the span handed out last: its series are
 * order[first, first + nslots) (slot indexes), their samples in g_ts/g_v. */
typedef struct {
  uint32_t n, first, nslots;
  uint32_t nex; /* exemplars */
  int64_t lo, hi;
  uint32_t nh; /* histogram samples */
} mw_shard_t;

/* A reader's write relabeling result for series s: computed for WAL ref
 * ref (0: nothing cached; refs are never reused, so a different ref means a
 * different series), kept with the label set rl_arena[off, off + len) or
 * dropped. */
typedef struct {
  uint64_t ref;
  size_t off;
  uint32_t len;
  uint32_t kept;
} mw_rlcache_t;

typedef struct {
  uint64_t seq;
  mw_rlog_pos_t end;
  uint32_t samples;
  int64_t max_ts;
  int acked;
  uint32_t exemplars;
  uint32_t histograms;
} mw_flight_t;

/* An exemplar of the chunk being built: its series' slot, its labels in
 * the reader's rex_buf, the next exemplar of the slot (MW_NONE: last). */
typedef struct {
  uint32_t slot, next, len;
  size_t off;
  int64_t ts;
  double v;
} mw_rex_t;

struct mw_wal_reader {
  mw_wal_t *w;
  mw_rlog_cursor_t *cur; /* the record log's cursor: committed and read positions, its file */
  mw_wal_refs_t refs;    /* the WAL's ref map, fetched at each call */
  uint64_t epoch;        /* the WAL's series epoch the relabeling results are for */
  /* the samples record being decoded */
  int rec_ok;
  uint32_t rec_seg, rec_len, dec_idx;
  uint64_t rec_off;
  const uint8_t *rec_p; /* the record last read (the cursor's buffer) */
  mw_sdec_t dec;
  /* the chunk being built */
  uint32_t *c_slot;
  int64_t *c_ts;
  double *c_v;
  size_t c_cap;
  uint32_t *slot_of; /* by s: its slot in this span, if slots[slot_of[s]].s == s */
  size_t so_cap;
  mw_slot_t *slots; /* series of the chunk, in order of first sample */
  size_t nslots, slots_cap;
  uint32_t *order; /* slot indexes grouped by shard, each shard's in order of first sample */
  size_t order_cap;
  mw_shard_t *sh; /* the shards of the span being built */
  size_t sh_cap;
  uint32_t build_shards; /* shards of the span being read (exemplars pick their slot's shard) */
  int64_t build_min_ts;  /* and its min_ts: older exemplars are dropped like older samples */
  int64_t *g_ts;
  double *g_v;
  size_t g_cap;
  mw_rwenc_t **encs; /* one encoder per shard, created when first needed */
  size_t nencs, encs_cap;
  int encs_ext; /* the encoders add the external labels (no write relabeling) */
  uint8_t *ext; /* the external labels (encoded), NULL: none */
  size_t ext_len;
  /* write relabeling: the program (the caller's), its results by s */
  const mw_relabel_program_t *rl;
  mw_relabel_scratch_t *rl_scratch;
  mw_rlcache_t *rl_cache; /* so_cap entries while rl is set, else NULL */
  mw_buf_t rl_arena;
  mw_label_t *rl_in;
  size_t rl_in_cap;
  mw_flight_t *fl;
  size_t nfl, fl_cap;
  uint64_t seq;
  mw_wal_reader_stats_t st;
  /* exemplars of the chunk being built (send_exemplars) */
  int no_exemplars;
  mw_rex_t *rex;
  size_t nrex, rex_cap;
  mw_buf_t rex_buf;
  uint32_t *rex_head, *rex_tail; /* by slot */
  size_t rex_slots_cap;
  /* histogram samples of the span being built (send_native_histograms): kept in hb's
   * histogram column, rh_slot[k] the slot of histogram k, rh_next[k] the next of that
   * slot (MW_NONE: last), rh_head/rh_tail by slot */
  int send_hist;
  uint32_t build_max; /* max_samples of the span being built */
  int64_t hist_hi;    /* highest histogram timestamp of the span */
  mw_batch_t *hb;
  uint32_t *rh_slot, *rh_next;
  size_t rh_cap;
  uint32_t *rh_head, *rh_tail;
  size_t rh_slots_cap;
  mw_hscratch_t hsc;
};

/* --- helpers ---------------------------------------------------------- */

/* 1 if series s has a slot in the span being built: slot_of[s] is only
 * believed when that slot is s's (slots are reset per span; no per-s
 * generation array, 4 bytes a series fewer). s < so_cap. */
static inline int mw_reader_has_slot(const mw_wal_reader_t *r, uint32_t s) {
  uint32_t k = r->slot_of[s];
  return k < r->nslots && r->slots[k].s == s;
}

// R1
/* Makes sure r has encoders for shards 0 .. n - 1, new ones adding the
 * external labels when the others do. 0, or -1 with err. */
static int mw_reader_encs(mw_wal_reader_t *r, size_t n, char *err, size_t errlen) {
  if (n <= r->nencs) return 0;
  if (mw_grow((void **)&r->encs, &r->encs_cap, n, sizeof *r->encs) != 0) goto oom;
  while (r->nencs < n) {
    mw_rwenc_t *e = mw_rwenc_new();
    if (!e) goto oom;
    if (r->encs_ext && mw_rwenc_set_external_labels(e, r->ext, r->ext_len, err, errlen) != 0) {
      mw_rwenc_free(e);
      return -1;
    }
    r->encs[r->nencs++] = e;
  }
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

/* Switches every encoder of r to adding the external labels (on != 0) or
 * not. 0, or -1 with err. */
static int mw_reader_encs_ext(mw_wal_reader_t *r, int on, char *err, size_t errlen) {
  for (size_t i = 0; i < r->nencs; i++)
    if (mw_rwenc_set_external_labels(r->encs[i], on ? r->ext : NULL, on ? r->ext_len : 0, err,
                                     errlen) != 0)
      return -1;
  r->encs_ext = on;
  return 0;
}

int mw_wal_reader_open(mw_wal_t *w, const char *name, const uint8_t *external_labels, size_t len,
                       mw_wal_reader_t **out, char *err, size_t errlen) {
  *out = NULL;
  if (mw_wal_closed(w)) {
    mw_seterr(err, errlen, "WAL closed");
    return -1;
  }
  mw_wal_reader_t *r = calloc(1, sizeof *r);
  if (!r) goto oom;
  r->w = w;
  mw_wal_attach(w);
  if (len) {
    r->ext = malloc(len);
    if (!r->ext) {
      mw_wal_reader_close(r);
      goto oom;
    }
    memcpy(r->ext, external_labels, len);
    r->ext_len = len;
    r->encs_ext = 1;
  }
  /* The cursor: its saved position, else its previous copy, else the oldest data. */
  if (mw_reader_encs(r, 1, err, errlen) != 0 ||
      mw_rlog_cursor_open(mw_wal_log(w), name, &r->cur, err, errlen) != 0) {
    mw_wal_reader_close(r);
    return -1;
  }
  r->epoch = mw_wal_series_epoch(w);
  *out = r;
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

void mw_wal_reader_close(mw_wal_reader_t *r) {
  if (!r) return;
  mw_rlog_cursor_close(r->cur); /* saves a moved cursor (best effort: a stale one only resends) */
  free(r->c_slot);
  free(r->c_ts);
  free(r->c_v);
  free(r->slot_of);
  free(r->slots);
  free(r->order);
  free(r->sh);
  free(r->g_ts);
  free(r->g_v);
  free(r->fl);
  free(r->ext);
  mw_relabel_scratch_free(r->rl_scratch);
  free(r->rl_cache);
  free(r->rl_arena.p);
  free(r->rl_in);
  free(r->rex);
  free(r->rex_buf.p);
  free(r->rex_head);
  free(r->rex_tail);
  mw_batch_free(r->hb);
  free(r->rh_slot);
  free(r->rh_next);
  free(r->rh_head);
  free(r->rh_tail);
  mw_hscratch_free(&r->hsc);
  for (size_t i = 0; i < r->nencs; i++)
    mw_rwenc_free(r->encs[i]);
  free(r->encs);
  mw_wal_t *w = r->w;
  free(r);
  mw_wal_detach(w);
}

// R2
/* --- readers: reading ------------------------------------------------- */

/* Corruption found at *pos: the rest of the segment is skipped (for every
 * reader), counted by the record log. */
static void mw_reader_corrupt(mw_wal_reader_t *r, mw_pos_t *pos) {
  mw_rlog_skip_corrupt(mw_wal_log(r->w), pos);
  r->rec_ok = 0;
}

static int mw_reader_relabel(mw_wal_reader_t *r, uint32_t s, uint64_t ref);

/* The shard of a series: a mix of its WAL ref (refs are dense, so the plain
 * ref mod n would put neighbours on neighbouring shards only by luck). */
/* Gives series s (WAL ref ref) the next slot of the span being built, in shard shard. 0, -1
 * on OOM. */
static inline int mw_reader_add_slot(mw_wal_reader_t *r, uint32_t s, uint64_t ref, uint32_t shard) {
  if (mw_grow((void **)&r->slots, &r->slots_cap, r->nslots + 1, sizeof *r->slots) != 0) return -1;
  r->slot_of[s] = (uint32_t)r->nslots;
  r->slots[r->nslots++] = (mw_slot_t){.s = s, .shard = shard, .ref = ref};
  r->sh[shard].nslots++;
  return 0;
}

/* Grows two arrays that share one capacity (*cap, in elements) to hold n: the capacity
 * doubles from 64 until it does. 0, -1 on OOM (the arrays stay valid, *cap unchanged). */
static inline int mw_grow_pair(uint32_t **a, uint32_t **b, size_t *cap, size_t n) {
  if (n <= *cap) return 0;
  size_t c = *cap ? *cap : 64;
  while (c < n)
    c *= 2;
  uint32_t *na = realloc(*a, c * sizeof *na);
  if (!na) return -1;
  *a = na;
  uint32_t *nb = realloc(*b, c * sizeof *nb);
  if (!nb) return -1;
  *b = nb;
  *cap = c;
  return 0;
}

static uint32_t mw_shard_of(uint64_t ref, uint32_t nshards) {
  if (nshards <= 1) return 0;
  uint64_t x = ref;
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return (uint32_t)(x % nshards);
}

/* The exemplars record in r->rec (len bytes), passed over while building a
 * chunk: its exemplars join the chunk, each with the slot of its series
 * (made if the chunk has no sample of it). Exemplars of unknown series, of
 * series dropped by write relabeling or older than the span's min_ts
 * (sample_age_limit) are counted and skipped. 0, -1 on OOM. */
static int mw_reader_exemplars(mw_wal_reader_t *r, uint32_t len) {
  mw_sdec_t d;
  uint64_t ref;
  int64_t ts;
  double v;
  const uint8_t *lab;
  size_t ll;
  if (mw_sdec_begin(&d, r->rec_p, len) != 0) return 0; /* checked at replay; never written */
  while (mw_edec_next(&d, &ref, &ts, &v, &lab, &ll) == 1) {
    uint32_t s = mw_refs_get(&r->refs, ref);
    if (s == MW_NONE || s >= r->so_cap || !mw_wal_ex_labels_ok(lab, ll)) {
      r->st.exemplars_dropped++;
      continue;
    }
    if (ts < r->build_min_ts) {
      r->st.exemplars_dropped++;
      r->st.exemplars_too_old++;
      continue;
    }
    if (r->rl) {
      int kept = mw_reader_relabel(r, s, ref);
      if (kept < 0) return -1;
      if (!kept) {
        r->st.exemplars_dropped++;
        r->st.exemplars_relabel_dropped++;
        continue;
      }
    }
    if (!mw_reader_has_slot(r, s) &&
        mw_reader_add_slot(r, s, ref, mw_shard_of(ref, r->build_shards)) != 0)
      return -1;
    if (mw_grow((void **)&r->rex, &r->rex_cap, r->nrex + 1, sizeof *r->rex) != 0 ||
        mw_buf_reserve(&r->rex_buf, ll ? ll : 1) != 0)
      return -1;
    r->rex[r->nrex++] = (mw_rex_t){
        .slot = r->slot_of[s], .len = (uint32_t)ll, .off = r->rex_buf.len, .ts = ts, .v = v};
    r->sh[r->slots[r->slot_of[s]].shard].nex++; /* counts toward max_samples, as in Prometheus */
    if (ll) memcpy(r->rex_buf.p + r->rex_buf.len, lab, ll);
    r->rex_buf.len += ll;
  }
  return 0;
}

/* The histograms record in r->rec (len bytes), passed over while building a span: with
 * send_native_histograms its histogram samples join the span, each with the slot of its
 * series (made if the span has no sample of it), else they are counted as dropped.
 * Samples of unknown series, of series dropped by write relabeling or older than the
 * span's min_ts are counted and skipped. The span ends before the record (1) when a
 * shard already holds max_samples samples, exemplars and histograms. 0, 1, -1 on OOM. */
static int mw_reader_histograms(mw_wal_reader_t *r, uint32_t len) {
  mw_sdec_t d;
  if (mw_sdec_begin(&d, r->rec_p, len) != 0) return 0; /* checked at replay; never written */
  if (!r->send_hist) {
    r->st.histograms_dropped += d.left;
    r->st.histograms_unsent += d.left;
    return 0;
  }
  for (uint32_t k = 0; k < r->build_shards; k++)
    if (r->sh[k].n + r->sh[k].nex + r->sh[k].nh >= r->build_max) return 1;
  if (!r->hb && !(r->hb = mw_batch_new(NULL))) return -1;
  uint64_t ref;
  int64_t ts;
  mw_histogram_t h;
  int rc;
  while ((rc = mw_hdec_next(&d, &r->hsc, &ref, &ts, &h)) == 1) {
    uint32_t s = mw_refs_get(&r->refs, ref);
    if (s == MW_NONE || s >= r->so_cap) {
      r->st.histograms_dropped++;
      r->st.unknown_series++;
      continue;
    }
    if (r->rl) {
      int kept = mw_reader_relabel(r, s, ref);
      if (kept < 0) return -1;
      if (!kept) {
        r->st.histograms_dropped++;
        r->st.histograms_relabel_dropped++;
        continue;
      }
    }
    if (ts < r->build_min_ts) {
      r->st.histograms_dropped++;
      r->st.histograms_too_old++;
      continue;
    }
    if (!mw_reader_has_slot(r, s) &&
        mw_reader_add_slot(r, s, ref, mw_shard_of(ref, r->build_shards)) != 0)
      return -1;
    size_t k = mw_batch_histograms(r->hb);
    if (mw_grow_pair(&r->rh_slot, &r->rh_next, &r->rh_cap, k + 1) != 0) return -1;
    if (mw_batch_add_histogram(r->hb, s, ts, &h, NULL, 0) != 0) return -1;
    uint32_t slot = r->slot_of[s];
    r->rh_slot[k] = slot;
    mw_shard_t *sh = &r->sh[r->slots[slot].shard];
    sh->nh++; /* counts toward max_samples, as in Prometheus */
    if (ts < sh->lo) sh->lo = ts;
    if (ts > sh->hi) sh->hi = ts;
    if (ts > r->hist_hi) r->hist_hi = ts;
  }
  return rc == -2 ? -1 : 0;
}

/* Links the span's histograms to their slots, in WAL order. 0, -1 on OOM. */
static int mw_reader_link_histograms(mw_wal_reader_t *r) {
  if (mw_grow_pair(&r->rh_head, &r->rh_tail, &r->rh_slots_cap, r->nslots) != 0) return -1;
  for (size_t k = 0; k < r->nslots; k++)
    r->rh_head[k] = MW_NONE;
  size_t n = mw_batch_histograms(r->hb);
  for (size_t i = 0; i < n; i++) {
    uint32_t k = r->rh_slot[i];
    r->rh_next[i] = MW_NONE;
    if (r->rh_head[k] == MW_NONE)
      r->rh_head[k] = (uint32_t)i;
    else
      r->rh_next[r->rh_tail[k]] = (uint32_t)i;
    r->rh_tail[k] = (uint32_t)i;
  }
  return 0;
}

/* Links the chunk's exemplars to their slots, in WAL order. 0, -1 on OOM. */
static int mw_reader_link_exemplars(mw_wal_reader_t *r) {
  if (mw_grow_pair(&r->rex_head, &r->rex_tail, &r->rex_slots_cap, r->nslots) != 0) return -1;
  for (size_t k = 0; k < r->nslots; k++)
    r->rex_head[k] = MW_NONE;
  for (size_t i = 0; i < r->nrex; i++) {
    uint32_t k = r->rex[i].slot;
    r->rex[i].next = MW_NONE;
    if (r->rex_head[k] == MW_NONE)
      r->rex_head[k] = (uint32_t)i;
    else
      r->rex[r->rex_tail[k]].next = (uint32_t)i;
    r->rex_tail[k] = (uint32_t)i;
  }
  return 0;
}

/* Positions r's decoder on the next sample at or after *pos. 1: ready; 0:
 * nothing more to read; 2: the span is full before a histograms record (*pos at it);
 * -1: I/O error (err). */
static int mw_reader_load(mw_wal_reader_t *r, mw_pos_t *pos, char *err, size_t errlen) {
  mw_rlog_t *log = mw_wal_log(r->w);
  for (;;) {
    if (!mw_rlog_seek(log, pos)) return 0;
    if (r->rec_ok && r->rec_seg == pos->seg && r->rec_off == pos->off && r->dec_idx == pos->idx) {
      if (r->dec.left) return 1;
      if (r->dec.p != r->dec.end) {
        mw_reader_corrupt(r, pos);
        continue;
      }
      pos->off += MW_RLOG_REC_HDR + r->rec_len;
      pos->idx = 0;
      r->rec_ok = 0;
      continue;
    }
    r->rec_ok = 0;
    mw_rlog_rec_t rec;
    int rc = mw_rlog_read(r->cur, pos, &rec, err, errlen);
    if (rc < 0) return -1;
    if (rc == 0) {
      mw_reader_corrupt(r, pos);
      continue;
    }
    r->rec_p = rec.p;
    if (rec.type != MW_REC_SAMPLES) {
      if (rec.type == MW_REC_EXEMPLARS && !r->no_exemplars &&
          mw_reader_exemplars(r, rec.len) != 0) {
        mw_seterr(err, errlen, "out of memory");
        return -1;
      }
      if (rec.type == MW_REC_HISTOGRAMS) {
        int h = mw_reader_histograms(r, rec.len);
        if (h < 0) {
          mw_seterr(err, errlen, "out of memory");
          return -1;
        }
        if (h == 1) return 2; /* the span is full: this record starts the next one */
      }
      pos->off += MW_RLOG_REC_HDR + rec.len;
      pos->idx = 0;
      continue;
    }
    if (mw_sdec_begin(&r->dec, rec.p, rec.len) != 0) {
      mw_reader_corrupt(r, pos);
      continue;
    }
    uint64_t ref;
    int64_t ts;
    double v;
    uint32_t k = 0;
    while (k < pos->idx && (rc = mw_sdec_next(&r->dec, &ref, &ts, &v)) == 1)
      k++;
    if (k < pos->idx && rc < 0) {
      mw_reader_corrupt(r, pos);
      continue;
    }
    pos->idx = k;
    r->rec_ok = 1;
    r->rec_seg = pos->seg;
    r->rec_off = pos->off;
    r->rec_len = rec.len;
    r->dec_idx = k;
  }
}

/* Forgets every cached relabeling result. */
static void mw_reader_relabel_clear(mw_wal_reader_t *r) {
  if (r->rl_cache) memset(r->rl_cache, 0, r->so_cap * sizeof *r->rl_cache);
  r->rl_arena.len = 0;
}

/* 1 if a label name or value can be encoded (no separator byte). */
static int mw_label_encodable(const char *p, size_t n) { return !memchr(p, MW_LABELS_SEP, n); }

/* Applies the reader's write relabeling to series s (WAL ref ref) once and
 * caches the result: the series' labels plus the external labels it lacks
 * (Prometheus adds them first), through the program, sorted, labels with
 * an empty value left out. 1 kept, 0 dropped (by a rule, or nothing left,
 * or a label that cannot be encoded), -1 out of memory. */
static int mw_reader_relabel(mw_wal_reader_t *r, uint32_t s, uint64_t ref) {
  mw_rlcache_t *c = &r->rl_cache[s];
  if (c->ref == ref) return (int)c->kept;
  size_t len, pos = 0, epos = 0, n = 0;
  const uint8_t *enc = mw_series_labels(mw_wal_series(r->w), s, &len);
  if (!enc) return -1; /* s is live: no memory for its text */
  mw_label_t a, b;
  int ra = mw_labels_next(enc, len, &pos, &a);
  int rb = mw_labels_next(r->ext, r->ext_len, &epos, &b);
  while (ra == 1 || rb == 1) {
    if (mw_grow((void **)&r->rl_in, &r->rl_in_cap, n + 1, sizeof *r->rl_in) != 0) return -1;
    int cmp = 0;
    if (ra != 1) {
      cmp = 1;
    } else if (rb == 1) {
      size_t m = a.name_len < b.name_len ? a.name_len : b.name_len;
      cmp = memcmp(a.name, b.name, m);
      if (!cmp) cmp = (a.name_len > b.name_len) - (a.name_len < b.name_len);
    } else {
      cmp = -1;
    }
    if (cmp <= 0) { /* the series' own value wins */
      r->rl_in[n++] = a;
      ra = mw_labels_next(enc, len, &pos, &a);
      if (cmp == 0) rb = mw_labels_next(r->ext, r->ext_len, &epos, &b);
    } else {
      r->rl_in[n++] = b;
      rb = mw_labels_next(r->ext, r->ext_len, &epos, &b);
    }
  }
  const mw_label_t *out;
  size_t out_n;
  int kept = mw_relabel_apply(r->rl, r->rl_scratch, r->rl_in, n, &out, &out_n);
  if (kept < 0) return -1;
  size_t off = r->rl_arena.len;
  if (kept) {
    kept = 0;
    for (size_t i = 0; i < out_n; i++) {
      const mw_label_t *l = &out[i];
      if (!l->value_len) continue;
      if (!l->name_len || !mw_label_encodable(l->name, l->name_len) ||
          !mw_label_encodable(l->value, l->value_len)) {
        kept = 0;
        break;
      }
      if (mw_buf_reserve(&r->rl_arena, (size_t)l->name_len + l->value_len + 2) != 0) {
        r->rl_arena.len = off;
        return -1;
      }
      uint8_t *p = r->rl_arena.p + r->rl_arena.len;
      memcpy(p, l->name, l->name_len);
      p[l->name_len] = MW_LABELS_SEP;
      memcpy(p + l->name_len + 1, l->value, l->value_len);
      p[l->name_len + 1 + l->value_len] = MW_LABELS_SEP;
      r->rl_arena.len += (size_t)l->name_len + l->value_len + 2;
      kept = 1;
    }
  }
  if (!kept) r->rl_arena.len = off;
  *c = (mw_rlcache_t){
      .ref = ref, .off = off, .len = (uint32_t)(r->rl_arena.len - off), .kept = (uint32_t)kept};
  return kept;
}

int mw_wal_reader_set_relabel(mw_wal_reader_t *r, const mw_ffi_relabel_program_t *p, char *err,
                              size_t errlen) {
  if (p && !r->rl_scratch && !(r->rl_scratch = mw_relabel_scratch_new())) {
    mw_seterr(err, errlen, "out of memory");
    return -1;
  }
  /* The results cache (so_cap entries) exists only with a program. */
  if (p && !r->rl_cache && r->so_cap && !(r->rl_cache = calloc(r->so_cap, sizeof *r->rl_cache))) {
    mw_seterr(err, errlen, "out of memory");
    return -1;
  }
  /* With a program the reader adds the external labels before relabeling;
   * without one the encoder adds them. */
  if (mw_reader_encs_ext(r, !p && r->ext_len, err, errlen) != 0) return -1;
  if (!p) {
    free(r->rl_cache);
    r->rl_cache = NULL;
  }
  r->rl = p;
  mw_reader_relabel_clear(r);
  return 0;
}

/* Encodes shard k of the span handed out last: its non-empty series, their
 * samples from g_ts/g_v. */
static int mw_shard_encode(mw_wal_reader_t *r, uint32_t k, const uint8_t **buf, size_t *len,
                           size_t *raw, char *err, size_t errlen) {
  const mw_shard_t *sh = &r->sh[k];
  mw_rwenc_t *e = r->encs[k];
  mw_rwenc_reset(e);
  for (uint32_t i = sh->first; i < sh->first + sh->nslots; i++) {
    uint32_t slot = r->order[i];
    const mw_slot_t *sl = &r->slots[slot];
    uint32_t ex = r->nrex ? r->rex_head[slot] : MW_NONE;
    uint32_t hh = r->hb && mw_batch_histograms(r->hb) ? r->rh_head[slot] : MW_NONE;
    if (!sl->n && ex == MW_NONE && hh == MW_NONE) continue;
    size_t l;
    int rc;
    if (r->rl) {
      const mw_rlcache_t *c = &r->rl_cache[sl->s];
      rc = mw_rwenc_add_series(e, r->rl_arena.p + c->off, c->len, r->g_ts + sl->at, r->g_v + sl->at,
                               sl->n, err, errlen);
    } else { /* straight from the symbols, no text made */
      const uint8_t *st = mw_series_stored(mw_wal_series(r->w), sl->s, &l);
      rc = mw_rwenc_add_series_stored(e, st, l, r->g_ts + sl->at, r->g_v + sl->at, sl->n, err,
                                      errlen);
    }
    if (rc != 0) return -1;
    for (; ex != MW_NONE; ex = r->rex[ex].next)
      if (mw_rwenc_add_exemplar(e, r->rex_buf.p + r->rex[ex].off, r->rex[ex].len, r->rex[ex].ts,
                                r->rex[ex].v, err, errlen) != 0)
        return -1;
    for (; hh != MW_NONE; hh = r->rh_next[hh]) {
      mw_hsample_t hs;
      mw_batch_histogram(r->hb, hh, &hs);
      if (mw_rwenc_add_histogram(e, hs.ts_ms, &hs.h, err, errlen) != 0) return -1;
    }
  }
  return mw_rwenc_finish(e, buf, len, raw, err, errlen);
}

/* Grows the span's sample arrays to hold need samples; 0 or -1 (out of
 * memory). */
static int mw_reader_grow_samples(mw_wal_reader_t *r, size_t need) {
  if (mw_grow((void **)&r->c_slot, &r->c_cap, need, sizeof *r->c_slot) != 0) return -1;
  if (r->c_cap > r->g_cap) {
    int64_t *a = realloc(r->c_ts, r->c_cap * sizeof *a);
    if (!a) return -1;
    r->c_ts = a;
    double *b = realloc(r->c_v, r->c_cap * sizeof *b);
    if (!b) return -1;
    r->c_v = b;
    a = realloc(r->g_ts, r->c_cap * sizeof *a);
    if (!a) return -1;
    r->g_ts = a;
    b = realloc(r->g_v, r->c_cap * sizeof *b);
    if (!b) return -1;
    r->g_v = b;
    r->g_cap = r->c_cap;
  }
  return 0;
}

/* Sizes the reader's per-span arrays: the samples of a first request, the
 * shards, the series table's limit; 0 or -1 (out of memory). */
static int mw_reader_reserve(mw_wal_reader_t *r, uint32_t max_samples, uint32_t nshards) {
  mw_wal_t *w = r->w;
  if (mw_reader_grow_samples(r, max_samples) != 0) return -1;
  if (mw_grow((void **)&r->sh, &r->sh_cap, nshards, sizeof *r->sh) != 0) return -1;
  size_t limit = mw_series_limit(mw_wal_series(w));
  if (limit > r->so_cap) {
    size_t cap = r->so_cap ? r->so_cap : 1024;
    while (cap < limit)
      cap *= 2;
    uint32_t *a = realloc(r->slot_of, cap * sizeof *a);
    if (!a) return -1;
    memset(a + r->so_cap, 0xff, (cap - r->so_cap) * sizeof *a); /* no slot */
    r->slot_of = a;
    if (r->rl) { /* the relabeling results: only with a program */
      size_t old = r->rl_cache ? r->so_cap : 0;
      mw_rlcache_t *c = realloc(r->rl_cache, cap * sizeof *c);
      if (!c) return -1;
      memset(c + old, 0, (cap - old) * sizeof *c);
      r->rl_cache = c;
    }
    r->so_cap = cap;
  }
  return 0;
}

int mw_wal_reader_next_shards(mw_wal_reader_t *r, uint32_t nshards, uint32_t max_samples,
                              int64_t min_ts, const uint8_t **bufs, size_t *lens,
                              mw_wal_chunk_t *chunks, char *err, size_t errlen) {
  mw_wal_t *w = r->w;
  if (mw_wal_closed(w)) {
    mw_seterr(err, errlen, "WAL closed");
    return -1;
  }
  if (nshards < 1 || nshards > MW_WAL_MAX_SHARDS) {
    mw_seterr(err, errlen, "shards: %u not in [1, %u]", nshards, MW_WAL_MAX_SHARDS);
    return -1;
  }
  if (!max_samples) max_samples = 2000;
  if (max_samples > MW_SAMPLES_PER_REC) max_samples = MW_SAMPLES_PER_REC;
  size_t span = (size_t)nshards * max_samples;
  mw_wal_refs(w, &r->refs);
  if (r->epoch != mw_wal_series_epoch(w)) {
    /* truncation forgot series: their relabeling results go */
    mw_reader_relabel_clear(r);
    r->epoch = mw_wal_series_epoch(w);
  }
  if (mw_reader_reserve(r, max_samples, nshards) != 0) goto oom;
  if (mw_reader_encs(r, nshards, err, errlen) != 0) return -1;
  for (uint32_t k = 0; k < nshards; k++)
    r->sh[k] = (mw_shard_t){.lo = INT64_MAX, .hi = INT64_MIN};
  r->nslots = 0;
  r->nrex = 0;
  r->rex_buf.len = 0;
  r->build_shards = nshards;
  r->build_min_ts = min_ts;
  r->build_max = max_samples;
  r->hist_hi = INT64_MIN;
  if (r->hb) mw_batch_reset(r->hb, NULL);
  uint32_t got = 0;
  int64_t hi = INT64_MIN;
  int full = 0;
  uint32_t guess = MW_NONE; /* s expected for the next sample */
  mw_pos_t pos = r->cur->read;
  while (!full && got < span) {
    int rc = mw_reader_load(r, &pos, err, errlen);
    if (rc < 0) return -1;
    if (rc == 0) break;
    if (rc == 2) {
      full = 1;
      break;
    }
    while (got < span) {
      uint64_t ref;
      int64_t ts;
      double v;
      rc = mw_sdec_next(&r->dec, &ref, &ts, &v);
      if (rc < 0) mw_reader_corrupt(r, &pos);
      if (rc <= 0) break; /* mw_reader_load moves on */
      uint32_t s = mw_refs_to_s(&r->refs, ref, guess);
      guess = s == MW_NONE ? MW_NONE : s + 1;
      int known = s != MW_NONE && s < r->so_cap;
      int new_slot = known && !mw_reader_has_slot(r, s);
      uint32_t shard = !known     ? 0
                       : new_slot ? mw_shard_of(ref, nshards)
                                  : r->slots[r->slot_of[s]].shard;
      if (known && r->sh[shard].n + r->sh[shard].nex + r->sh[shard].nh >= max_samples) {
        /* Its shard is full (samples, exemplars and histograms, as Prometheus
         * counts a batch): the span ends before this sample, which the next
         * span reads again (from the record's start). */
        r->rec_ok = 0;
        full = 1;
        break;
      }
      if (got == r->c_cap && mw_reader_grow_samples(r, (size_t)got + 1) != 0) {
        r->rec_ok = 0; /* the decoder is past pos */
        goto oom;
      }
      pos.idx++;
      r->dec_idx++;
      if (!known) {
        r->st.unknown_series++;
        continue;
      }
      if (r->rl) {
        int kept = mw_reader_relabel(r, s, ref);
        if (kept < 0) goto oom;
        if (!kept) {
          r->st.samples_relabel_dropped++;
          continue;
        }
      }
      if (ts < min_ts) {
        r->st.samples_too_old++;
        continue;
      }
      if (new_slot && mw_reader_add_slot(r, s, ref, shard) != 0) goto oom;
      uint32_t k = r->slot_of[s];
      mw_shard_t *sh = &r->sh[shard];
      r->slots[k].n++;
      sh->n++;
      if (ts < sh->lo) sh->lo = ts;
      if (ts > sh->hi) sh->hi = ts;
      r->c_slot[got] = k;
      r->c_ts[got] = ts;
      r->c_v[got] = v;
      got++;
      if (ts > hi) hi = ts;
    }
  }
  /* A span that filled every shard leaves the exemplars records after its
   * last sample to the next span (they count toward max_samples there); a
   * span cut before a sample re-reads that record next time. */
  r->cur->read = pos;
  if (r->nrex && mw_reader_link_exemplars(r) != 0) goto oom;
  uint32_t nhs = r->hb ? (uint32_t)mw_batch_histograms(r->hb) : 0;
  if (nhs && mw_reader_link_histograms(r) != 0) goto oom;
  if (nhs && r->hist_hi > hi) hi = r->hist_hi;
  for (size_t i = 0; i < r->nrex; i++) {
    /* a shard with exemplars only spans their timestamps */
    mw_shard_t *sh = &r->sh[r->slots[r->rex[i].slot].shard];
    if (!sh->n && !sh->nh) {
      if (r->rex[i].ts < sh->lo) sh->lo = r->rex[i].ts;
      if (r->rex[i].ts > sh->hi) sh->hi = r->rex[i].ts;
    }
    if (!got && !nhs && r->rex[i].ts > hi) hi = r->rex[i].ts;
  }
  if (!got && !r->nrex && !nhs) {
    /* Nothing to send up to pos: with nothing in flight the cursor may move. */
    if (!r->nfl && mw_rlog_pos_cmp(pos, r->cur->committed) > 0) r->cur->committed = pos;
    return 0;
  }
  /* Series grouped by shard (each shard's in order of first sample), the
   * samples grouped by series (each series' in WAL order). */
  if (mw_grow((void **)&r->order, &r->order_cap, r->nslots, sizeof *r->order) != 0) goto oom;
  uint32_t first = 0;
  for (uint32_t k = 0; k < nshards; k++) {
    r->sh[k].first = first;
    first += r->sh[k].nslots;
    r->sh[k].nslots = 0;
  }
  for (size_t k = 0; k < r->nslots; k++) {
    mw_shard_t *sh = &r->sh[r->slots[k].shard];
    r->order[sh->first + sh->nslots++] = (uint32_t)k;
  }
  uint32_t at = 0;
  for (size_t i = 0; i < r->nslots; i++) {
    mw_slot_t *sl = &r->slots[r->order[i]];
    sl->at = sl->fill = at;
    at += sl->n;
  }
  for (uint32_t i = 0; i < got; i++) {
    uint32_t j = r->slots[r->c_slot[i]].fill++;
    r->g_ts[j] = r->c_ts[i];
    r->g_v[j] = r->c_v[i];
  }
  uint64_t seq = r->seq + 1;
  for (uint32_t k = 0; k < nshards; k++) {
    const mw_shard_t *sh = &r->sh[k];
    size_t raw = 0;
    bufs[k] = NULL;
    lens[k] = 0;
    int some = sh->n || sh->nex || sh->nh;
    if (some && mw_shard_encode(r, k, &bufs[k], &lens[k], &raw, err, errlen) != 0) return -1;
    if (chunks)
      chunks[k] = (mw_wal_chunk_t){.seq = seq,
                                   .samples = sh->n,
                                   .series = sh->nslots,
                                   .min_ts = some ? sh->lo : 0,
                                   .max_ts = some ? sh->hi : 0,
                                   .raw_bytes = raw,
                                   .exemplars = sh->nex,
                                   .histograms = sh->nh};
  }
  if (mw_grow((void **)&r->fl, &r->fl_cap, r->nfl + 1, sizeof *r->fl) != 0) goto oom;
  r->fl[r->nfl++] = (mw_flight_t){.seq = seq,
                                  .end = pos,
                                  .samples = got,
                                  .max_ts = hi,
                                  .exemplars = (uint32_t)r->nrex,
                                  .histograms = nhs};
  r->seq = seq;
  r->st.samples_read += got;
  r->st.exemplars_read += r->nrex;
  r->st.histograms_read += nhs;
  return 1;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

int mw_wal_reader_next(mw_wal_reader_t *r, uint32_t max_samples, const uint8_t **buf, size_t *len,
                       mw_wal_chunk_t *chunk, char *err, size_t errlen) {
  return mw_wal_reader_next_shards(r, 1, max_samples, INT64_MIN, buf, len, chunk, err, errlen);
}

int mw_wal_reader_drop_old(mw_wal_reader_t *r, uint64_t seq, const uint8_t *body, size_t body_len,
                           int64_t min_ts, const uint8_t **buf, size_t *len, mw_wal_chunk_t *chunk,
                           char *err, size_t errlen) {
  if (mw_reader_encs(r, 1, err, errlen) != 0) return -1;
  mw_rwenc_kept_t k;
  if (mw_rwenc_drop_old(r->encs[0], body, body_len, min_ts, buf, len, &k, err, errlen) != 0)
    return -1;
  /* What was taken out is no longer pending but dropped (when its span is
   * still in flight: a rewound span is read again, and counted then). */
  for (size_t i = 0; i < r->nfl; i++) {
    mw_flight_t *fl = &r->fl[i];
    if (fl->seq != seq) continue;
    fl->samples -= k.samples_dropped;
    fl->exemplars -= k.exemplars_dropped;
    fl->histograms -= k.histograms_dropped;
    r->st.histograms_read -= k.histograms_dropped;
    r->st.histograms_dropped += k.histograms_dropped;
    r->st.histograms_too_old += k.histograms_dropped;
    r->st.samples_read -= k.samples_dropped;
    r->st.samples_too_old += k.samples_dropped;
    r->st.exemplars_read -= k.exemplars_dropped;
    r->st.exemplars_dropped += k.exemplars_dropped;
    r->st.exemplars_too_old += k.exemplars_dropped;
  }
  if (chunk)
    *chunk = (mw_wal_chunk_t){.seq = seq,
                              .samples = k.samples,
                              .series = k.series,
                              .min_ts = k.min_ts,
                              .max_ts = k.max_ts,
                              .raw_bytes = k.raw,
                              .exemplars = k.exemplars,
                              .histograms = k.histograms};
  return (int)(k.samples_dropped + k.exemplars_dropped + k.histograms_dropped);
}

int mw_wal_reader_commit(mw_wal_reader_t *r, uint64_t seq, char *err, size_t errlen) {
  size_t i = 0;
  while (i < r->nfl && r->fl[i].seq != seq)
    i++;
  if (i == r->nfl) return 0;
  r->fl[i].acked = 1;
  size_t k = 0;
  mw_pos_t c = r->cur->committed;
  while (k < r->nfl && r->fl[k].acked) {
    if (mw_rlog_pos_cmp(r->fl[k].end, c) > 0) c = r->fl[k].end;
    r->st.samples_committed += r->fl[k].samples;
    r->st.exemplars_committed += r->fl[k].exemplars;
    r->st.histograms_committed += r->fl[k].histograms;
    r->st.chunks_committed++;
    if (r->fl[k].max_ts > r->st.committed_max_ts) r->st.committed_max_ts = r->fl[k].max_ts;
    k++;
  }
  if (!k) return 0;
  memmove(r->fl, r->fl + k, (r->nfl - k) * sizeof *r->fl);
  r->nfl -= k;
  /* The cursor file is rewritten at most once a second (every commit with
   * MW_WAL_FSYNC_ALWAYS) and at close: a crash resends at most the last
   * second of committed chunks, never skips any. */
  return mw_rlog_cursor_commit(r->cur, c, err, errlen);
}

void mw_wal_reader_rewind(mw_wal_reader_t *r) {
  r->nfl = 0;
  r->cur->read = r->cur->committed;
}

void mw_wal_reader_stats(const mw_wal_reader_t *r, mw_wal_reader_stats_t *st) {
  *st = r->st;
  st->segment = r->cur->committed.seg;
  st->offset = r->cur->committed.off;
  st->samples_dropped = r->cur->items_dropped;
  st->samples_before_open = r->cur->items_before_open;
  st->cursor_errors = r->cur->cursor_errors;
  st->pending_chunks = r->nfl;
  st->exemplars_pending = 0;
  st->histograms_pending = 0;
  for (size_t i = 0; i < r->nfl; i++) {
    st->exemplars_pending += r->fl[i].exemplars;
    st->histograms_pending += r->fl[i].histograms;
  }
}

void mw_wal_reader_set_exemplars(mw_wal_reader_t *r, int send) { r->no_exemplars = !send; }

void mw_wal_reader_set_histograms(mw_wal_reader_t *r, int send) { r->send_hist = send != 0; }

/* --- FFI -------------------------------------------------------------- */

int mw_ffi_wal_reader_open(mw_wal_t *w, const char *name, const uint8_t *external_labels,
                           size_t len, mw_wal_reader_t **out, char *err, size_t errlen) {
  return mw_wal_reader_open(w, name, external_labels, len, out, err, errlen);
}

void mw_ffi_wal_reader_close(mw_wal_reader_t *r) { mw_wal_reader_close(r); }

const char *mw_ffi_wal_reader_note(const mw_wal_reader_t *r) { return r->cur->note; }

int mw_ffi_wal_reader_next(mw_wal_reader_t *r, uint32_t max_samples, const uint8_t **buf,
                           size_t *len, mw_wal_chunk_t *chunk, char *err, size_t errlen) {
  return mw_wal_reader_next(r, max_samples, buf, len, chunk, err, errlen);
}

int mw_ffi_wal_reader_next_shards(mw_wal_reader_t *r, uint32_t nshards, uint32_t max_samples,
                                  int64_t min_ts, const uint8_t **bufs, size_t *lens,
                                  mw_wal_chunk_t *chunks, char *err, size_t errlen) {
  return mw_wal_reader_next_shards(r, nshards, max_samples, min_ts, bufs, lens, chunks, err,
                                   errlen);
}

int mw_ffi_wal_reader_drop_old(mw_wal_reader_t *r, uint64_t seq, const uint8_t *body,
                               size_t body_len, int64_t min_ts, const uint8_t **buf, size_t *len,
                               mw_wal_chunk_t *chunk, char *err, size_t errlen) {
  return mw_wal_reader_drop_old(r, seq, body, body_len, min_ts, buf, len, chunk, err, errlen);
}

int mw_ffi_wal_reader_commit(mw_wal_reader_t *r, uint64_t seq, char *err, size_t errlen) {
  return mw_wal_reader_commit(r, seq, err, errlen);
}

void mw_ffi_wal_reader_rewind(mw_wal_reader_t *r) { mw_wal_reader_rewind(r); }

int mw_ffi_wal_reader_set_relabel(mw_wal_reader_t *r, const mw_ffi_relabel_program_t *p, char *err,
                                  size_t errlen) {
  return mw_wal_reader_set_relabel(r, p, err, errlen);
}

void mw_ffi_wal_reader_set_exemplars(mw_wal_reader_t *r, int send) {
  mw_wal_reader_set_exemplars(r, send);
}

void mw_ffi_wal_reader_set_histograms(mw_wal_reader_t *r, int send) {
  mw_wal_reader_set_histograms(r, send);
}

void mw_ffi_wal_reader_stats(const mw_wal_reader_t *r, mw_wal_reader_stats_t *st) {
  mw_wal_reader_stats(r, st);
}
