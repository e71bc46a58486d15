/* storage/metrics_wal.c: the metrics WAL, a layer on the record log
 * (storage/recordlog.c; see storage/wal.h for the format and the guarantees): series,
 * samples and exemplars records, memos by source table uid, label sets
 * borrowed from the source tables, the WAL ref -> series map, the checkpoint's
 * content. The writer keeps every live series in a series table (s = the
 * table's ref) with, per s, its WAL ref and the newest segment that mentions
 * it; a map WAL ref -> s serves replay and the readers
 * (runtime/remote/wal_reader.c), which take labels from it instead of keeping
 * their own copies (WAL refs are never reused, and a series is only forgotten
 * once no kept segment mentions it). Files, cursors and fsyncs are the record
 * log's. */
#include "storage/metrics_wal.h"
#include "base/err.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include "base/labels.h"
#include "model/batch.h"
#include "model/series.h"

#define MW_MAGIC "MWWAL001"
#define MW_SERIES_REC_BYTES (16u << 20) /* a series record is closed past this */
/* So is an exemplars or histograms record: one exemplar or histogram adds less than
 * MW_RLOG_MAX_RECORD - MW_REC_CLOSE_BYTES (histograms: mw_hist_max of the largest
 * valid one is under 4 MiB), so no record passes what the record log reads back. */
#define MW_REC_CLOSE_BYTES (16u << 20)
#define MW_SAMPLE_MAX 28u /* two varints and the value */
#define MW_MAX_MEMOS 4096
/* Seconds without a label set looked up in the series table (a series
 * new to the WAL or to a source) after which its index goes: 11-16 bytes
 * a series, when building it again costs about 30 ms per 400k series
 * (hashing every label set), at most once per quiet period. */
#define MW_INDEX_QUIET 30.0

typedef struct {
  uint32_t stamp; /* the source entry's stamp; 0: nothing */
  uint32_t s;
} mw_wmemo_entry_t;

typedef struct {
  uint64_t uid, used;
  mw_wmemo_entry_t *e;
  size_t cap;
  struct mw_wsrc *src; /* the source table's record (mw_wsrc_get), NULL: not looked up yet */
} mw_wmemo_t;

struct mw_wal {
  mw_rlog_t *log;
  mw_wal_opts_t opts;
  mw_series_t *tab;
  uint64_t *wref;     /* by s: WAL ref, 0: needs a (new) series record */
  uint32_t *last_seg; /* by s: newest segment with a record of the series */
  size_t scap;
  uint32_t *map_s;       /* WAL ref -> s, main: s + 1 keyed by wref[s], 0 empty */
  size_t map_n, map_len; /* slots (sized as base/grow.h says), entries */
  uint64_t *al_k;        /* WAL ref -> s, aliases: key 0 empty, al_v MW_NONE removed */
  uint32_t *al_v;
  size_t al_n, al_len;
  uint64_t next_ref;
  mw_wmemo_t *memos;
  size_t nmemos, memos_cap;
  uint32_t *memo_slots; /* index of memos by uid: memo index + 1, 0 empty */
  size_t memo_mask;     /* slots - 1 (0: no index) */
  struct mw_wsrc *srcs; /* the tables tab borrows label bytes from */
  uint64_t tick;
  mw_buf_t sbuf, dbuf;
  uint32_t *ss; /* per sample of the batch being appended: s or MW_NONE */
  size_t ss_cap;
  uint32_t *created;
  size_t ncreated, created_cap;
  size_t nreaders;
  uint64_t epoch;     /* grows when truncation forgets series */
  double looked_up;   /* CLOCK_MONOTONIC seconds of the last label set looked up in tab */
  double index_quiet; /* MW_INDEX_QUIET (tests change it) */
  int closed;
  mw_wal_stats_t st;
  /* exemplars: the record of the append, the last one written per s (a
   * hash, 0: none) and the (s, hash) pairs of this append */
  mw_buf_t ebuf;
  uint64_t *ex_last;
  size_t ex_last_cap;
  uint64_t *ex_new;
  size_t nex_new, ex_new_cap;
  mw_buf_t hbuf;   /* the histograms records of the append */
  uint32_t *hrefs; /* the series refs of its histogram samples */
  size_t hrefs_cap;
  mw_hscratch_t hscratch; /* replay's decoding */
};

/* --- helpers ---------------------------------------------------------- */

static uint8_t *mw_put_uvarint(uint8_t *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  return p;
}

static double mw_mono(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t mw_zig(uint64_t u) { return (u << 1) ^ (0 - (u >> 63)); }

/* Starts a record of type at the end of b (header and count reserved, extra
 * more bytes of room); returns its offset in b, or SIZE_MAX on OOM. */
static size_t mw_rec_begin(mw_buf_t *b, uint8_t type, size_t extra) {
  if (mw_buf_reserve(b, MW_RLOG_REC_HDR + 4 + extra) != 0) return SIZE_MAX;
  size_t at = b->len;
  b->p[at] = type;
  b->len += MW_RLOG_REC_HDR + 4;
  return at;
}

/* Fills in the header of the record started at `at` (it ends at b->len). */
static void mw_rec_end(mw_buf_t *b, size_t at, uint32_t count) {
  uint8_t *h = b->p + at;
  mw_put32(h + MW_RLOG_REC_HDR, count);
  mw_rlog_frame(h, h[0], (uint32_t)(b->len - at - MW_RLOG_REC_HDR));
}

/* --- histograms records ------------------------------------------------ */

size_t mw_hist_max(const mw_histogram_t *h) {
  return 100 + 15 * ((size_t)h->n_pos_spans + h->n_neg_spans) + 10 * ((size_t)h->n_pos + h->n_neg) +
         8 * (size_t)h->n_custom;
}

static uint8_t *mw_put_f64(uint8_t *p, double v) {
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  mw_put64(p, bits);
  return p + 8;
}

static uint8_t *mw_put_spans(uint8_t *p, const mw_hspan_t *sp, uint32_t n) {
  p = mw_put_uvarint(p, n);
  for (uint32_t i = 0; i < n; i++) {
    p = mw_put_uvarint(p, mw_zig((uint64_t)(int64_t)sp[i].offset));
    p = mw_put_uvarint(p, sp[i].length);
  }
  return p;
}

static uint8_t *mw_put_buckets(uint8_t *p, const mw_histogram_t *h, int pos) {
  uint32_t n = pos ? h->n_pos : h->n_neg;
  p = mw_put_uvarint(p, n);
  if (h->is_float) {
    const double *c = pos ? h->pos_counts : h->neg_counts;
    for (uint32_t i = 0; i < n; i++)
      p = mw_put_f64(p, c[i]);
  } else {
    const int64_t *d = pos ? h->pos_deltas : h->neg_deltas;
    for (uint32_t i = 0; i < n; i++)
      p = mw_put_uvarint(p, mw_zig((uint64_t)d[i]));
  }
  return p;
}

uint8_t *mw_hist_put(uint8_t *p, uint64_t ref_delta, int64_t ts_delta, const mw_histogram_t *h) {
  p = mw_put_uvarint(p, mw_zig(ref_delta));
  p = mw_put_uvarint(p, mw_zig((uint64_t)ts_delta));
  *p++ = (uint8_t)((h->is_float ? 1 : 0) | (h->reset_hint & 3) << 1);
  p = mw_put_uvarint(p, mw_zig((uint64_t)(int64_t)h->schema));
  p = mw_put_f64(p, h->zero_threshold);
  if (h->is_float) {
    p = mw_put_f64(p, h->fcount);
    p = mw_put_f64(p, h->fzero_count);
  } else {
    p = mw_put_uvarint(p, h->count);
    p = mw_put_uvarint(p, h->zero_count);
  }
  p = mw_put_f64(p, h->sum);
  p = mw_put_spans(p, h->pos_spans, h->n_pos_spans);
  p = mw_put_spans(p, h->neg_spans, h->n_neg_spans);
  p = mw_put_buckets(p, h, 1);
  p = mw_put_buckets(p, h, 0);
  p = mw_put_uvarint(p, h->n_custom);
  for (uint32_t i = 0; i < h->n_custom; i++)
    p = mw_put_f64(p, h->custom_values[i]);
  return p;
}

void mw_hscratch_free(mw_hscratch_t *sc) {
  free(sc->spans);
  free(sc->f);
  free(sc->i);
  *sc = (mw_hscratch_t){0};
}

/* A count of elements that take at least min bytes each: bounded by the bytes left
 * and by MW_HIST_MAX_BUCKETS. 0, -1 if malformed. */
static int mw_hget_count(mw_sdec_t *d, size_t min, uint32_t *n) {
  uint64_t v;
  if (mw_get_uvarint(&d->p, d->end, &v) || v > MW_HIST_MAX_BUCKETS ||
      v * min > (uint64_t)(d->end - d->p))
    return -1;
  *n = (uint32_t)v;
  return 0;
}

static int mw_hget_f64(mw_sdec_t *d, double *v) {
  if (d->end - d->p < 8) return -1;
  uint64_t bits = mw_get64(d->p);
  memcpy(v, &bits, sizeof bits);
  d->p += 8;
  return 0;
}

static int mw_hget_spans(mw_sdec_t *d, mw_hspan_t *sp, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    uint64_t o, l;
    if (mw_get_uvarint(&d->p, d->end, &o) || mw_get_uvarint(&d->p, d->end, &l)) return -1;
    int64_t off = (int64_t)mw_unzig(o);
    if (off < INT32_MIN || off > INT32_MAX || l > UINT32_MAX) return -1;
    sp[i] = (mw_hspan_t){.offset = (int32_t)off, .length = (uint32_t)l};
  }
  return 0;
}

int mw_hdec_next(mw_sdec_t *d, mw_hscratch_t *sc, uint64_t *ref, int64_t *ts, mw_histogram_t *h) {
  if (!d->left) return d->p == d->end ? 0 : -1;
  uint64_t a, b, v;
  if (mw_get_uvarint(&d->p, d->end, &a) || mw_get_uvarint(&d->p, d->end, &b) || d->p == d->end)
    return -1;
  d->ref += mw_unzig(a);
  *ref = d->ref;
  *ts = (int64_t)((uint64_t)d->base + mw_unzig(b));
  *h = (mw_histogram_t){0};
  uint8_t flags = *d->p++;
  if (flags > 7) return -1;
  h->is_float = flags & 1;
  h->reset_hint = (uint8_t)(flags >> 1);
  if (mw_get_uvarint(&d->p, d->end, &v)) return -1;
  int64_t schema = (int64_t)mw_unzig(v);
  if (schema < INT32_MIN || schema > INT32_MAX) return -1;
  h->schema = (int32_t)schema;
  if (mw_hget_f64(d, &h->zero_threshold)) return -1;
  if (h->is_float) {
    if (mw_hget_f64(d, &h->fcount) || mw_hget_f64(d, &h->fzero_count)) return -1;
  } else if (mw_get_uvarint(&d->p, d->end, &h->count) ||
             mw_get_uvarint(&d->p, d->end, &h->zero_count)) {
    return -1;
  }
  if (mw_hget_f64(d, &h->sum)) return -1;
  /* spans: counted, then read into the scratch (positive first) */
  uint32_t np, nn;
  const uint8_t *mark = d->p;
  if (mw_hget_count(d, 2, &np)) return -1;
  mw_hspan_t tmp;
  for (uint32_t i = 0; i < np; i++)
    if (mw_hget_spans(d, &tmp, 1)) return -1;
  if (mw_hget_count(d, 2, &nn)) return -1;
  if (mw_grow((void **)&sc->spans, &sc->spans_cap, (size_t)np + nn + 1, sizeof *sc->spans) != 0)
    return -2;
  d->p = mark;
  mw_hget_count(d, 2, &np);
  mw_hget_spans(d, sc->spans, np);
  mw_hget_count(d, 2, &nn);
  if (mw_hget_spans(d, sc->spans + np, nn)) return -1;
  h->n_pos_spans = np;
  h->n_neg_spans = nn;
  h->pos_spans = sc->spans;
  h->neg_spans = sc->spans + np;
  /* buckets: positive, then negative (into f or i), then custom values (into f) */
  size_t w = 0;
  uint32_t nb[2], nc;
  size_t at[2];
  for (int side = 0; side < 2; side++) {
    if (mw_hget_count(d, h->is_float ? 8 : 1, &nb[side])) return -1;
    if (h->is_float ? mw_grow((void **)&sc->f, &sc->f_cap, w + nb[side] + 1, sizeof *sc->f)
                    : mw_grow((void **)&sc->i, &sc->i_cap, w + nb[side] + 1, sizeof *sc->i))
      return -2;
    at[side] = w;
    for (uint32_t k = 0; k < nb[side]; k++, w++) {
      if (h->is_float) {
        if (mw_hget_f64(d, &sc->f[w])) return -1;
      } else {
        if (mw_get_uvarint(&d->p, d->end, &v)) return -1;
        sc->i[w] = (int64_t)mw_unzig(v);
      }
    }
  }
  size_t cat = h->is_float ? w : 0;
  if (mw_hget_count(d, 8, &nc)) return -1;
  if (mw_grow((void **)&sc->f, &sc->f_cap, cat + nc + 1, sizeof *sc->f) != 0) return -2;
  for (uint32_t k = 0; k < nc; k++)
    mw_hget_f64(d, &sc->f[cat + k]);
  h->n_pos = nb[0];
  h->n_neg = nb[1];
  if (h->is_float) {
    h->pos_counts = sc->f + at[0];
    h->neg_counts = sc->f + at[1];
  } else {
    h->pos_deltas = sc->i + at[0];
    h->neg_deltas = sc->i + at[1];
  }
  h->n_custom = nc;
  h->custom_values = sc->f + cat;
  d->left--;
  if (mw_histogram_validate(h, NULL, 0) != 0) return -1;
  return 1;
}

/* --- series: WAL ref -> s map, per-s arrays, memos ------------------- */

/* The map WAL ref -> s has two parts. The main index holds every s whose
 * wref[s] is set (at rest: an append sets and indexes its new series
 * together), keyed by that ref but storing only s + 1 (4-byte slots, the
 * key read from wref; 12 with the key), at a load of 1/2 to 3/4. Refs a
 * series had before its current one (a WAL that recorded one label set
 * under several refs; only replay makes them) are (ref, s) pairs in the
 * alias map, s MW_NONE once removed; it is usually empty. */

static uint32_t mw_map_get(const mw_wal_t *w, uint64_t k) {
  mw_wal_refs_t m;
  mw_wal_refs(w, &m);
  return mw_refs_get(&m, k);
}

/* Puts s (wref[s] set) into main's n slots. */
static void mw_main_place(uint32_t *slots, size_t n, const uint64_t *wref, uint32_t s) {
  size_t i = mw_map_home(wref[s], n);
  while (slots[i])
    i = mw_slot_next(i, n);
  slots[i] = s + 1;
}

/* Rebuilds main with room for need entries at a load of 1/2, keeping its
 * entries but the dead ones (dead[s]: s is being deleted). 0, -1 on OOM
 * (unchanged). Callers rebuild when the load would pass 3/4
 * (mw_slots_full) and ask for the entries they will hold, so the load
 * stays between 1/2 and 3/4 (base/grow.h). */
static int mw_main_rebuild(mw_wal_t *w, size_t need, const uint8_t *dead) {
  size_t n = mw_slots_for(need + need / 2), len = 0;
  uint32_t *slots = calloc(n, sizeof *slots);
  if (!slots) return -1;
  for (size_t i = 0; w->map_s && i < w->map_n; i++) {
    uint32_t v = w->map_s[i];
    if (!v || (dead && dead[v - 1])) continue;
    mw_main_place(slots, n, w->wref, v - 1);
    len++;
  }
  free(w->map_s);
  w->map_s = slots;
  w->map_n = n;
  w->map_len = len;
  return 0;
}

/* Room in main for more entries. 0, -1 on OOM. */
static int mw_main_room(mw_wal_t *w, size_t more) {
  if (w->map_s && !mw_slots_full(w->map_len + more - 1, w->map_n)) return 0;
  return mw_main_rebuild(w, w->map_len + more, NULL);
}

/* Indexes s by wref[s] (set; s not in main). 0, -1 on OOM. */
static int mw_main_add(mw_wal_t *w, uint32_t s) {
  if (mw_main_room(w, 1) != 0) return -1;
  mw_main_place(w->map_s, w->map_n, w->wref, s);
  w->map_len++;
  return 0;
}

/* Takes s out of main (it is there, under wref[s]): backward-shift
 * deletion, homes from wref. */
static void mw_main_del(mw_wal_t *w, uint32_t s) {
  size_t n = w->map_n, i = mw_map_home(w->wref[s], n);
  while (w->map_s[i] != s + 1)
    i = mw_slot_next(i, n);
  w->map_s[i] = 0;
  for (size_t j = mw_slot_next(i, n); w->map_s[j]; j = mw_slot_next(j, n)) {
    if (mw_slot_stays(i, j, mw_map_home(w->wref[w->map_s[j] - 1], n))) continue;
    w->map_s[i] = w->map_s[j];
    w->map_s[j] = 0;
    i = j;
  }
  w->map_len--;
}

static void mw_alias_insert(uint64_t *ks, uint32_t *vs, size_t n, uint64_t k, uint32_t v,
                            size_t *len) {
  size_t i = mw_map_home(k, n);
  while (ks[i] && ks[i] != k)
    i = mw_slot_next(i, n);
  if (!ks[i]) (*len)++;
  ks[i] = k;
  vs[i] = v;
}

/* Rebuilds the alias map for need entries, without the removed ones and
 * those of dead series; 0, -1 on OOM (unchanged). */
static int mw_alias_rebuild(mw_wal_t *w, size_t need, const uint8_t *dead) {
  size_t n = mw_slots_for(need + need / 2), len = 0;
  uint64_t *ks = calloc(n, sizeof *ks);
  uint32_t *vs = calloc(n, sizeof *vs);
  if (!ks || !vs) {
    free(ks);
    free(vs);
    return -1;
  }
  for (size_t i = 0; w->al_k && i < w->al_n; i++)
    if (w->al_k[i] && w->al_v[i] != MW_NONE && !(dead && dead[w->al_v[i]]))
      mw_alias_insert(ks, vs, n, w->al_k[i], w->al_v[i], &len);
  free(w->al_k);
  free(w->al_v);
  w->al_k = ks;
  w->al_v = vs;
  w->al_n = n;
  w->al_len = len;
  return 0;
}

/* Maps k -> s in the alias map (replacing k's entry). 0, -1 on OOM. */
static int mw_alias_put(mw_wal_t *w, uint64_t k, uint32_t s) {
  if ((!w->al_k || mw_slots_full(w->al_len, w->al_n)) &&
      mw_alias_rebuild(w, w->al_len + 1, NULL) != 0)
    return -1;
  mw_alias_insert(w->al_k, w->al_v, w->al_n, k, s, &w->al_len);
  return 0;
}

/* Removes k's alias entry, if any (its slot stays, marked removed). */
static void mw_alias_drop(mw_wal_t *w, uint64_t k) {
  if (!w->al_k) return;
  for (size_t i = mw_map_home(k, w->al_n); w->al_k[i]; i = mw_slot_next(i, w->al_n))
    if (w->al_k[i] == k) {
      w->al_v[i] = MW_NONE;
      return;
    }
}

/* Main and alias without the dead series (truncation). 0, -1 on OOM. */
static int mw_maps_drop_dead(mw_wal_t *w, const uint8_t *dead) {
  if (mw_main_rebuild(w, w->map_len, dead) != 0) return -1;
  return w->al_k ? mw_alias_rebuild(w, w->al_len, dead) : 0;
}

/* Room in the per-s arrays for s. */
static int mw_s_reserve(mw_wal_t *w, uint32_t s) {
  if (s < w->scap) return 0;
  size_t cap = w->scap ? w->scap : 1024;
  while (cap <= s)
    cap *= 2;
  uint64_t *a = realloc(w->wref, cap * sizeof *a);
  if (!a) return -1;
  w->wref = a;
  uint32_t *b = realloc(w->last_seg, cap * sizeof *b);
  if (!b) return -1;
  w->last_seg = b;
  memset(w->wref + w->scap, 0, (cap - w->scap) * sizeof *a);
  memset(w->last_seg + w->scap, 0, (cap - w->scap) * sizeof *b);
  w->scap = cap;
  return 0;
}

static void mw_memos_clear(mw_wal_t *w) {
  for (size_t i = 0; i < w->nmemos; i++)
    free(w->memos[i].e);
  w->nmemos = 0;
  if (w->memo_slots) memset(w->memo_slots, 0, (w->memo_mask + 1) * sizeof *w->memo_slots);
}

/* --- borrowed label sets ----------------------------------------------- */

/* A table that batches come from (a scrape target's, say): a new series in
 * tab borrows the source entry's label bytes instead of copying them (the
 * same label set is not held twice), and the WAL watches the source: when
 * those bytes move (compaction) tab follows them, when they go (the series
 * or the table is deleted) tab copies them first. s_of[r] is the s that
 * borrowed source ref r (MW_NONE: none), stale once s was deleted or r's
 * bytes changed hands: it is believed only while both point at the same
 * bytes. */
typedef struct mw_wsrc {
  mw_wal_t *w;
  mw_series_t *src;
  uint32_t *s_of;
  uint32_t cap;
  struct mw_wsrc *next;
} mw_wsrc_t;

/* The s that borrowed source ref r, if it still does; else MW_NONE. */
static uint32_t mw_wsrc_borrower(const mw_wsrc_t *x, uint32_t r) {
  if (r >= x->cap || x->s_of[r] == MW_NONE) return MW_NONE;
  uint32_t s = x->s_of[r];
  size_t l1, l2;
  if (!mw_series_borrowed(x->w->tab, s) ||
      mw_series_stored(x->w->tab, s, &l1) != mw_series_stored(x->src, r, &l2))
    return MW_NONE;
  return s;
}

/* Source ref r's bytes go: its borrower copies them. Nothing can be
 * reported from here, and tab must not keep a dangling pointer, so out of
 * memory (for one label set) ends the process with a message. */
static void mw_wsrc_own(mw_wsrc_t *x, uint32_t r) {
  uint32_t s = mw_wsrc_borrower(x, r);
  if (r < x->cap) x->s_of[r] = MW_NONE;
  if (s != MW_NONE && mw_series_own(x->w->tab, s) != 0) {
    fputs("moonwatch: out of memory copying a label set into the WAL\n", stderr);
    abort();
  }
}

/* Every borrower of x copies its bytes (if own); x is unlinked and freed
 * (its source no longer knows it when unwatch). */
static void mw_wsrc_release(mw_wsrc_t *x, int unwatch, int own) {
  for (uint32_t r = 0; own && r < x->cap; r++)
    mw_wsrc_own(x, r);
  for (size_t i = 0; i < x->w->nmemos; i++)
    if (x->w->memos[i].src == x) x->w->memos[i].src = NULL;
  if (unwatch) mw_series_unwatch(x->src, x);
  mw_wsrc_t **p = &x->w->srcs;
  while (*p != x)
    p = &(*p)->next;
  *p = x->next;
  free(x->s_of);
  free(x);
}

static void mw_wsrc_watch(void *ctx, uint32_t r, const uint8_t *now) {
  mw_wsrc_t *x = ctx;
  if (r == MW_SERIES_NONE) {
    mw_wsrc_release(x, 0, 1); /* the table is being freed */
  } else if (!now) {
    mw_wsrc_own(x, r);
  } else {
    uint32_t s = mw_wsrc_borrower(x, r);
    if (s != MW_NONE) mw_series_rebind(x->w->tab, s, now);
  }
}

/* The record of source table src (made, and src watched, if new); NULL on OOM. */
static mw_wsrc_t *mw_wsrc_get(mw_wal_t *w, mw_series_t *src) {
  for (mw_wsrc_t *x = w->srcs; x; x = x->next)
    if (x->src == src) return x;
  mw_wsrc_t *x = calloc(1, sizeof *x);
  if (!x) return NULL;
  *x = (mw_wsrc_t){.w = w, .src = src, .next = w->srcs};
  if (mw_series_watch(src, mw_wsrc_watch, x) != 0) {
    free(x);
    return NULL;
  }
  w->srcs = x;
  return x;
}

/* Records that s borrowed source ref r. 0, -1 on OOM. */
static int mw_wsrc_lend(mw_wsrc_t *x, uint32_t r, uint32_t s) {
  if (r >= x->cap) {
    uint32_t cap = x->cap ? x->cap : 64;
    while (cap <= r)
      cap *= 2;
    uint32_t *p = realloc(x->s_of, (size_t)cap * sizeof *p);
    if (!p) return -1;
    for (uint32_t i = x->cap; i < cap; i++)
      p[i] = MW_NONE;
    x->s_of = p;
    x->cap = cap;
  }
  x->s_of[r] = s;
  return 0;
}

static size_t mw_memo_home(const mw_wal_t *w, uint64_t uid) {
  return (size_t)((uid * 0x9e3779b97f4a7c15ULL) >> 32) & w->memo_mask;
}

/* Indexes the memos again, in slots for at least twice as many. 0, -1 on OOM
 * (the old index stays, still right for the memos it knew). */
static int mw_memo_reindex(mw_wal_t *w) {
  size_t n = 64;
  while (n < w->nmemos * 2)
    n *= 2;
  uint32_t *slots = calloc(n, sizeof *slots);
  if (!slots) return -1;
  free(w->memo_slots);
  w->memo_slots = slots;
  w->memo_mask = n - 1;
  for (size_t i = 0; i < w->nmemos; i++) {
    size_t j = mw_memo_home(w, w->memos[i].uid);
    while (w->memo_slots[j])
      j = (j + 1) & w->memo_mask;
    w->memo_slots[j] = (uint32_t)i + 1;
  }
  return 0;
}

/* The memo of source table uid (made if new; the least recently used one is
 * recycled past MW_MAX_MEMOS). Found through an index: a WAL fed by many
 * targets (two tables each) looks one up per append. NULL on OOM. */
static mw_wmemo_t *mw_memo(mw_wal_t *w, uint64_t uid) {
  w->tick++;
  if (w->memo_slots) {
    for (size_t j = mw_memo_home(w, uid); w->memo_slots[j]; j = (j + 1) & w->memo_mask) {
      mw_wmemo_t *m = &w->memos[w->memo_slots[j] - 1];
      if (m->uid == uid) {
        m->used = w->tick;
        return m;
      }
    }
  }
  mw_wmemo_t *m;
  if (w->nmemos == MW_MAX_MEMOS) {
    m = &w->memos[0];
    for (size_t i = 1; i < w->nmemos; i++)
      if (w->memos[i].used < m->used) m = &w->memos[i];
    free(m->e);
  } else {
    if (mw_grow((void **)&w->memos, &w->memos_cap, w->nmemos + 1, sizeof *w->memos) != 0)
      return NULL;
    m = &w->memos[w->nmemos++];
  }
  *m = (mw_wmemo_t){.uid = uid, .used = w->tick};
  if (mw_memo_reindex(w) != 0) {
    free(w->memo_slots); /* no index: the next call builds one */
    w->memo_slots = NULL;
    w->memo_mask = 0;
  }
  return m;
}

static int mw_memo_put(mw_wmemo_t *m, uint32_t ref, uint32_t stamp, uint32_t s) {
  if (ref >= m->cap) {
    size_t cap = m->cap ? m->cap : 256;
    while (cap <= ref)
      cap *= 2;
    mw_wmemo_entry_t *p = realloc(m->e, cap * sizeof *p);
    if (!p) return -1;
    memset(p + m->cap, 0, (cap - m->cap) * sizeof *p);
    m->e = p;
    m->cap = cap;
  }
  m->e[ref] = (mw_wmemo_entry_t){.stamp = stamp, .s = s};
  return 0;
}

/* A series record entry read from disk: wref has labels enc, mentioned in
 * segment seg. 0, -1 on OOM. */
static int mw_learn_series(mw_wal_t *w, uint64_t wref, const uint8_t *enc, size_t len, uint32_t seg,
                           char *err, size_t errlen) {
  uint32_t s;
  int added;
  if (mw_series_add(w->tab, enc, len, mw_labels_hash(enc, len), &s, &added, err, errlen) != 0)
    return -1;
  if (mw_s_reserve(w, s) != 0) goto oom;
  uint32_t old = mw_map_get(w, wref);
  if (old != MW_NONE && old != s) {
    if (w->wref[old] == wref) {
      /* one ref, two label sets (a damaged WAL): old gets a new ref */
      mw_main_del(w, old);
      w->wref[old] = 0;
    } else {
      mw_alias_drop(w, wref); /* replaced below */
    }
  }
  if (added || seg > w->last_seg[s]) w->last_seg[s] = seg;
  if (wref > w->wref[s]) {
    if (w->wref[s]) { /* its older ref stays mapped, as an alias */
      if (mw_alias_put(w, w->wref[s], s) != 0) goto oom;
      mw_main_del(w, s);
    }
    w->wref[s] = wref;
    if (mw_main_add(w, s) != 0) goto oom;
  } else if (wref < w->wref[s]) {
    if (mw_alias_put(w, wref, s) != 0) goto oom;
  }
  if (wref >= w->next_ref) w->next_ref = wref + 1;
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

/* 1 if enc is a label set the WAL keeps: names and values non-empty and
 * without NUL bytes (protobuf-c's strings end at one), names strictly
 * increasing. Appends and replay apply the same test. */
static int mw_labels_ok(const uint8_t *enc, size_t len) {
  size_t pos = 0;
  mw_label_t l, prev = {0};
  int r, n = 0;
  if (memchr(enc, 0, len)) return 0;
  while ((r = mw_labels_next(enc, len, &pos, &l)) == 1) {
    if (!l.name_len || !l.value_len) return 0;
    if (n++) {
      size_t m = prev.name_len < l.name_len ? prev.name_len : l.name_len;
      int c = memcmp(prev.name, l.name, m);
      if (c > 0 || (c == 0 && prev.name_len >= l.name_len)) return 0;
    }
    prev = l;
  }
  return r == 0 && n > 0;
}

int mw_wal_ex_labels_ok(const uint8_t *enc, size_t len) { return !len || mw_labels_ok(enc, len); }

/* Identifies an exemplar for the repeat test (never 0). */
static uint64_t mw_ex_hash(const mw_exemplar_t *e) {
  uint64_t bits;
  memcpy(&bits, &e->value, sizeof bits);
  uint64_t h = mw_labels_hash(e->labels, e->labels_len);
  h ^= ((uint64_t)e->ts_ms + 0x9e3779b97f4a7c15ULL) * 0xbf58476d1ce4e5b9ULL;
  h ^= (bits + 0x94d049bb133111ebULL) * 0x9e3779b97f4a7c15ULL;
  return h | 1;
}

/* Room in w->ex_last for every s of the series table. 0, -1 on OOM. */
static int mw_ex_last_reserve(mw_wal_t *w) {
  size_t limit = mw_series_limit(w->tab);
  if (limit <= w->ex_last_cap) return 0;
  size_t cap = w->ex_last_cap ? w->ex_last_cap : 1024;
  while (cap < limit)
    cap *= 2;
  uint64_t *p = realloc(w->ex_last, cap * sizeof *p);
  if (!p) return -1;
  memset(p + w->ex_last_cap, 0, (cap - w->ex_last_cap) * sizeof *p);
  w->ex_last = p;
  w->ex_last_cap = cap;
  return 0;
}

/* Applies a series record read from segment seg. 0; 1 if it is malformed;
 * -1 on OOM. */
static int mw_apply_series(mw_wal_t *w, const uint8_t *p, uint32_t len, uint32_t seg, char *err,
                           size_t errlen) {
  if (len < 4) return 1;
  uint32_t count = mw_get32(p);
  /* The whole record is checked before a series is learned: a record cut
   * as corrupt must leave none behind, or a later append would use its
   * ref without writing the series again (and its samples would be lost
   * at the next replay). A ref of 2^64 - 1 is never written: next_ref
   * would wrap to 0. */
  for (int learn = 0; learn < 2; learn++) {
    const uint8_t *q = p + 4, *end = p + len;
    for (uint32_t i = 0; i < count; i++) {
      uint64_t wref, l;
      if (mw_get_uvarint(&q, end, &wref) || mw_get_uvarint(&q, end, &l) || !wref ||
          wref == UINT64_MAX || l > (uint64_t)(end - q) || l == 0 || !mw_labels_ok(q, (size_t)l))
        return 1;
      if (learn) {
        if (mw_learn_series(w, wref, q, (size_t)l, seg, err, errlen) != 0) return -1;
        w->st.replayed_series++;
      }
      q += l;
    }
    if (q != end) return 1;
  }
  return 0;
}

/* --- replay ----------------------------------------------------------- */

/* The record log's replay callback: applies a record of segment rec->seg
 * (or of the checkpoint) and notes the segment's timestamps and samples.
 * 0; 1 if it is malformed (the segment is cut there); -1 on OOM. */
static int mw_replay_record(void *ctx, const mw_rlog_rec_t *rec, mw_rlog_seg_t *seg, char *err,
                            size_t errlen) {
  mw_wal_t *w = ctx;
  uint32_t index = rec->seg, len = rec->len;
  const uint8_t *p = rec->p;
  int rc;
  if (rec->type == MW_REC_SERIES) return mw_apply_series(w, p, len, index, err, errlen);
  if (rec->type == MW_REC_EXEMPLARS) {
    mw_sdec_t d;
    uint64_t ref, n = 0;
    int64_t ts;
    double v;
    const uint8_t *lab;
    size_t ll;
    /* Checked whole first, as series records: a cut record must not
     * leave a last-exemplar hash behind (the exemplar would not be
     * written again). */
    if (mw_sdec_begin(&d, p, len) != 0) return 1;
    while ((rc = mw_edec_next(&d, &ref, &ts, &v, &lab, &ll)) == 1 && mw_wal_ex_labels_ok(lab, ll))
      ;
    if (rc != 0) return 1;
    mw_sdec_begin(&d, p, len); /* checked: now applied */
    while (mw_edec_next(&d, &ref, &ts, &v, &lab, &ll) == 1) {
      uint32_t s = mw_map_get(w, ref);
      n++;
      if (s == MW_NONE) continue;
      if (index > w->last_seg[s]) w->last_seg[s] = index;
      /* the last exemplar of each series, so that a restart does not write it again */
      mw_exemplar_t e = {.labels = lab, .labels_len = (uint32_t)ll, .ts_ms = ts, .value = v};
      if (mw_ex_last_reserve(w) != 0) {
        mw_seterr(err, errlen, "out of memory");
        return -1;
      }
      w->ex_last[s] = mw_ex_hash(&e);
    }
    w->st.replayed_exemplars += n;
    return 0;
  }
  if (rec->type == MW_REC_HISTOGRAMS) {
    /* Checked whole first (a malformed or invalid histogram cuts the segment here), then
     * counted as the samples records' items: truncation judges its segment by them. */
    mw_sdec_t d;
    mw_histogram_t h;
    uint64_t ref, n = 0;
    int64_t ts, lo = INT64_MAX, hi = INT64_MIN;
    if (mw_sdec_begin(&d, p, len) != 0) return 1;
    while ((rc = mw_hdec_next(&d, &w->hscratch, &ref, &ts, &h)) == 1)
      ;
    if (rc == -2) {
      mw_seterr(err, errlen, "out of memory");
      return -1;
    }
    if (rc != 0) return 1;
    mw_sdec_begin(&d, p, len);
    while (mw_hdec_next(&d, &w->hscratch, &ref, &ts, &h) == 1) {
      uint32_t s = mw_map_get(w, ref);
      if (s != MW_NONE && index > w->last_seg[s]) w->last_seg[s] = index;
      if (ts < lo) lo = ts;
      if (ts > hi) hi = ts;
      n++;
    }
    if (n && lo < seg->min_ts) seg->min_ts = lo;
    if (n && hi > seg->max_ts) seg->max_ts = hi;
    seg->items += n;
    w->st.replayed_histograms += n;
    return 0;
  }
  mw_sdec_t d;
  uint64_t ref;
  int64_t ts, lo = INT64_MAX, hi = INT64_MIN;
  double v;
  uint64_t n = 0;
  if (mw_sdec_begin(&d, p, len) != 0) return 1;
  while ((rc = mw_sdec_next(&d, &ref, &ts, &v)) == 1) {
    uint32_t s = mw_map_get(w, ref);
    if (s != MW_NONE && index > w->last_seg[s]) w->last_seg[s] = index;
    if (ts < lo) lo = ts;
    if (ts > hi) hi = ts;
    n++;
  }
  if (rc < 0) return 1;
  if (lo < seg->min_ts) seg->min_ts = lo;
  if (hi > seg->max_ts) seg->max_ts = hi;
  seg->items += n;
  w->st.replayed_samples += n;
  return 0;
}

static void mw_wal_free(mw_wal_t *w) {
  if (!w) return;
  while (w->srcs)
    mw_wsrc_release(w->srcs, 1, 0);
  mw_rlog_free(w->log);
  mw_memos_clear(w);
  free(w->memos);
  free(w->memo_slots);
  mw_series_free(w->tab);
  free(w->wref);
  free(w->last_seg);
  free(w->map_s);
  free(w->al_k);
  free(w->al_v);
  free(w->sbuf.p);
  free(w->dbuf.p);
  free(w->ss);
  free(w->created);
  free(w->ebuf.p);
  free(w->ex_last);
  free(w->ex_new);
  free(w->hbuf.p);
  free(w->hrefs);
  mw_hscratch_free(&w->hscratch);
  free(w);
}

int mw_wal_open(const char *dir, const mw_wal_opts_t *opts, mw_wal_t **out, char *err,
                size_t errlen) {
  *out = NULL;
  char *wal_dir = NULL;
  mw_wal_t *w = calloc(1, sizeof *w);
  if (!w) goto oom;
  w->next_ref = 1;
  w->index_quiet = MW_INDEX_QUIET;
  w->looked_up = mw_mono();
  if (opts) w->opts = *opts;
  if (!w->opts.segment_size) w->opts.segment_size = MW_WAL_DEFAULT_SEGMENT_SIZE;
  w->tab = mw_series_new();
  size_t n = strlen(dir) + 5;
  wal_dir = malloc(n);
  if (!w->tab || !wal_dir) goto oom;
  snprintf(wal_dir, n, "%s/wal", dir);
  mw_rlog_opts_t lo = {.magic = MW_MAGIC,
                       .segment_size = w->opts.segment_size,
                       .fsync = w->opts.fsync,
                       .types = 1u << MW_REC_SERIES | 1u << MW_REC_SAMPLES |
                                1u << MW_REC_EXEMPLARS | 1u << MW_REC_HISTOGRAMS,
                       .counted = 1u << MW_REC_SAMPLES | 1u << MW_REC_HISTOGRAMS,
                       .cursor_dir = dir,
                       .what = "WAL",
                       .items = "samples",
                       .replay = mw_replay_record,
                       .ctx = w};
  if (mw_rlog_open(wal_dir, &lo, &w->log, err, errlen) != 0) goto fail;
  free(wal_dir);
  *out = w;
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
fail:
  free(wal_dir);
  mw_wal_free(w);
  return -1;
}

/* --- append ----------------------------------------------------------- */

/* Builds the exemplars records of an append into w->ebuf (nothing if none is
 * left): the exemplars of b's samples that were written (w->ss), except a
 * repeat of the last one written for the series (Prometheus agent's WAL
 * drops those too: a scrape shows the same exemplar until a new one comes),
 * at most MW_SAMPLES_PER_REC a record, a record closed past MW_REC_CLOSE_BYTES.
 * Their (s, hash) pairs go to w->ex_new, applied once the write succeeded.
 * 0, -1 on OOM. */
static int mw_exemplars_record(mw_wal_t *w, const mw_batch_t *b) {
  size_t nex = mw_batch_exemplars(b);
  if (mw_ex_last_reserve(w) != 0) return -1;
  mw_buf_t *eb = &w->ebuf;
  size_t at = SIZE_MAX;
  uint32_t count = 0;
  uint64_t prev = 0;
  int64_t base = 0;
  mw_exemplar_t e;
  for (size_t k = 0; k < nex; k++) {
    mw_batch_exemplar(b, k, &e);
    uint32_t s = w->ss[e.idx];
    /* (a label set that alone passes the record log's bound could not be read back) */
    if (s == MW_NONE || e.labels_len > MW_RLOG_MAX_RECORD - MW_REC_CLOSE_BYTES ||
        !mw_wal_ex_labels_ok(e.labels, e.labels_len))
      continue;
    uint64_t h = mw_ex_hash(&e);
    if (w->ex_last[s] == h) continue;
    if (at != SIZE_MAX && (count == MW_SAMPLES_PER_REC || eb->len - at > MW_REC_CLOSE_BYTES)) {
      mw_rec_end(eb, at, count);
      at = SIZE_MAX;
    }
    if (at == SIZE_MAX) {
      at = mw_rec_begin(eb, MW_REC_EXEMPLARS, 8);
      if (at == SIZE_MAX) return -1;
      base = e.ts_ms;
      mw_put64(eb->p + eb->len, (uint64_t)base);
      eb->len += 8;
      count = 0;
      prev = 0;
    }
    if (mw_buf_reserve(eb, MW_SAMPLE_MAX + 10 + e.labels_len) != 0 ||
        mw_grow((void **)&w->ex_new, &w->ex_new_cap, 2 * (w->nex_new + 1), sizeof *w->ex_new) != 0)
      return -1;
    uint64_t wr = w->wref[s];
    uint8_t *p = mw_put_uvarint(eb->p + eb->len, mw_zig(wr - prev));
    p = mw_put_uvarint(p, mw_zig((uint64_t)e.ts_ms - (uint64_t)base));
    uint64_t bits;
    memcpy(&bits, &e.value, sizeof bits);
    mw_put64(p, bits);
    p = mw_put_uvarint(p + 8, e.labels_len);
    if (e.labels_len) memcpy(p, e.labels, e.labels_len);
    eb->len = (size_t)(p - eb->p) + e.labels_len;
    prev = wr;
    count++;
    w->ex_new[2 * w->nex_new] = s;
    w->ex_new[2 * w->nex_new + 1] = h;
    w->nex_new++;
  }
  if (at != SIZE_MAX) mw_rec_end(eb, at, count);
  return 0;
}

/* Builds the histograms records of an append into w->hbuf: the histogram samples of b
 * whose series were written (w->ss[n + k]), in batch order, at most MW_HISTS_PER_REC a
 * record, a record closed past MW_REC_CLOSE_BYTES. *written gets their number; *lo, *hi
 * take in their timestamps. 0, -1 on OOM. */
static int mw_histograms_record(mw_wal_t *w, const mw_batch_t *b, size_t n, size_t *written,
                                int64_t *lo, int64_t *hi) {
  size_t nh = mw_batch_histograms(b), at = SIZE_MAX;
  mw_buf_t *hb = &w->hbuf;
  uint32_t count = 0;
  uint64_t prev = 0;
  int64_t base = 0;
  mw_hsample_t hs;
  for (size_t k = 0; k < nh; k++) {
    uint32_t s = w->ss[n + k];
    if (s == MW_NONE) continue;
    mw_batch_histogram(b, k, &hs);
    if (at != SIZE_MAX && (count == MW_HISTS_PER_REC || hb->len - at > MW_REC_CLOSE_BYTES)) {
      mw_rec_end(hb, at, count);
      at = SIZE_MAX;
    }
    if (at == SIZE_MAX) {
      at = mw_rec_begin(hb, MW_REC_HISTOGRAMS, 8);
      if (at == SIZE_MAX) return -1;
      base = hs.ts_ms;
      mw_put64(hb->p + hb->len, (uint64_t)base);
      hb->len += 8;
      count = 0;
      prev = 0;
    }
    if (mw_buf_reserve(hb, mw_hist_max(&hs.h)) != 0) return -1;
    uint64_t wr = w->wref[s];
    uint8_t *p = mw_hist_put(hb->p + hb->len, wr - prev,
                             (int64_t)((uint64_t)hs.ts_ms - (uint64_t)base), &hs.h);
    hb->len = (size_t)(p - hb->p);
    prev = wr;
    count++;
    (*written)++;
    if (hs.ts_ms < *lo) *lo = hs.ts_ms;
    if (hs.ts_ms > *hi) *hi = hs.ts_ms;
  }
  if (at != SIZE_MAX) mw_rec_end(hb, at, count);
  return 0;
}

void mw_wal_set_index_quiet(mw_wal_t *w, double seconds) { w->index_quiet = seconds; }

int mw_wal_append_batch(mw_wal_t *w, const mw_batch_t *b, char *err, size_t errlen) {
  size_t n = mw_batch_len(b), nh = mw_batch_histograms(b);
  if (w->closed) {
    mw_seterr(err, errlen, "WAL closed");
    return -1;
  }
  if (!n && !nh) return 0;
  mw_series_t *src = mw_batch_series(b);
  if (!src) {
    mw_seterr(err, errlen, "batch without a series table");
    return -1;
  }
  /* Appends whose series the memos all know look nothing up: after a quiet
   * period the series table's index goes, built again by the next lookup. */
  double now = mw_mono();
  if (now - w->looked_up >= w->index_quiet) mw_series_drop_index(w->tab);
  mw_wmemo_t *memo = mw_memo(w, mw_series_uid(src));
  mw_wsrc_t *lender = memo ? (memo->src ? memo->src : (memo->src = mw_wsrc_get(w, src))) : NULL;
  if (!memo || !lender || mw_grow((void **)&w->ss, &w->ss_cap, n + nh, sizeof *w->ss) != 0)
    goto oom;
  const uint32_t *refs = mw_batch_refs(b);
  const int64_t *ts = mw_batch_timestamps(b);
  const double *vs = mw_batch_values(b);
  mw_buf_t *sb = &w->sbuf, *db = &w->dbuf;
  sb->len = 0;
  db->len = 0;
  w->ebuf.len = 0;
  w->hbuf.len = 0;
  w->nex_new = 0;
  w->ncreated = 0;
  size_t srec = SIZE_MAX;
  uint32_t scount = 0;
  /* Series: the memo maps the source's refs to s; new label sets get a record. Float
   * samples first, then histogram samples (ss[n + k] for histogram k). */
  const uint32_t *rr = refs;
  if (nh) { /* the histogram samples' refs, for the second pass */
    if (mw_grow((void **)&w->hrefs, &w->hrefs_cap, nh, sizeof *w->hrefs) != 0) goto oom;
    for (size_t k = 0; k < nh; k++)
      w->hrefs[k] = mw_batch_histogram_ref(b, k);
  }
  size_t i = 0;
  for (int pass = 0; pass < 2; pass++) {
    size_t end = pass ? n + nh : n;
    if (pass) rr = w->hrefs;
    for (; i < end; i++) {
      uint32_t r = rr[pass ? i - n : i];
      uint32_t stamp = mw_series_stamp(src, r), s;
      if (r < memo->cap && stamp && memo->e[r].stamp == stamp) {
        s = memo->e[r].s;
      } else {
        size_t len, slen;
        const uint8_t *st = mw_series_stored(src, r, &slen);
        uint64_t hash = mw_series_hash(src, r);
        if (st) {
          w->looked_up = now;
          if (mw_series_index(w->tab) != 0) goto oom;
        }
        if (!st) {
          s = MW_NONE; /* not a live series of the batch's table */
        } else if ((s = mw_series_get_stored(w->tab, st, slen, hash)) == MW_NONE) {
          /* r is live: no text is out of memory (not an invalid series the memo would keep) */
          const uint8_t *enc = mw_series_labels(src, r, &len);
          if (!enc) goto oom;
          if (mw_labels_ok(enc, len)) {
            if (mw_series_add_borrowed(w->tab, st, slen, hash, &s, NULL, err, errlen) != 0)
              goto undo;
            if (mw_wsrc_lend(lender, r, s) != 0 && mw_series_own(w->tab, s) != 0) goto oom;
            if (mw_s_reserve(w, s) != 0) goto oom;
          }
        }
        if (st && mw_memo_put(memo, r, stamp, s) != 0) goto oom;
      }
      w->ss[i] = s;
      if (s == MW_NONE) {
        w->st.samples_invalid++;
        continue;
      }
      if (w->wref[s]) continue;
      /* First sight (or after a failed write): a series record entry. */
      size_t len;
      const uint8_t *enc = mw_series_labels(w->tab, s, &len);
      if (!enc) goto oom;
      if (srec != SIZE_MAX && sb->len - srec > MW_SERIES_REC_BYTES) {
        mw_rec_end(sb, srec, scount);
        srec = SIZE_MAX;
      }
      if (srec == SIZE_MAX) {
        srec = mw_rec_begin(sb, MW_REC_SERIES, 0);
        scount = 0;
        if (srec == SIZE_MAX) goto oom;
      }
      if (mw_buf_reserve(sb, 20 + len) != 0 ||
          mw_grow((void **)&w->created, &w->created_cap, w->ncreated + 1, sizeof *w->created) != 0)
        goto oom;
      w->wref[s] = w->next_ref++;
      w->created[w->ncreated++] = s;
      uint8_t *p = mw_put_uvarint(sb->p + sb->len, w->wref[s]);
      p = mw_put_uvarint(p, len);
      memcpy(p, enc, len);
      sb->len = (size_t)(p - sb->p) + len;
      scount++;
    }
  }
  if (srec != SIZE_MAX) mw_rec_end(sb, srec, scount);
  /* Samples, in records of at most MW_SAMPLES_PER_REC. */
  size_t written = 0, drec = SIZE_MAX;
  uint32_t dcount = 0;
  uint64_t prev = 0;
  int64_t base = 0, lo = INT64_MAX, hi = INT64_MIN;
  for (size_t i = 0; i < n; i++) {
    uint32_t s = w->ss[i];
    if (s == MW_NONE) continue;
    if (drec != SIZE_MAX && dcount == MW_SAMPLES_PER_REC) {
      mw_rec_end(db, drec, dcount);
      drec = SIZE_MAX;
    }
    if (drec == SIZE_MAX) {
      size_t left = n - i < MW_SAMPLES_PER_REC ? n - i : MW_SAMPLES_PER_REC;
      drec = mw_rec_begin(db, MW_REC_SAMPLES, 8 + left * MW_SAMPLE_MAX);
      if (drec == SIZE_MAX) goto oom;
      base = ts[i];
      mw_put64(db->p + db->len, (uint64_t)base);
      db->len += 8;
      dcount = 0;
      prev = 0;
    }
    uint64_t wr = w->wref[s];
    uint8_t *p = mw_put_uvarint(db->p + db->len, mw_zig(wr - prev));
    p = mw_put_uvarint(p, mw_zig((uint64_t)ts[i] - (uint64_t)base));
    uint64_t bits;
    memcpy(&bits, &vs[i], sizeof bits);
    mw_put64(p, bits);
    db->len = (size_t)(p - db->p) + 8;
    prev = wr;
    dcount++;
    written++;
    if (ts[i] < lo) lo = ts[i];
    if (ts[i] > hi) hi = ts[i];
  }
  if (drec != SIZE_MAX) mw_rec_end(db, drec, dcount);
  if (mw_batch_exemplars(b) && mw_exemplars_record(w, b) != 0) goto oom;
  size_t hwritten = 0;
  if (nh && mw_histograms_record(w, b, n, &hwritten, &lo, &hi) != 0) goto oom;
  size_t total = sb->len + db->len + w->ebuf.len + w->hbuf.len;
  if (!total) return 0;
  /* Room in the map now, so that nothing can fail once the bytes are written. */
  if (w->ncreated && mw_main_room(w, w->ncreated) != 0) goto oom;
  /* One writev into the record log: when it returns, the records are in the kernel. */
  struct iovec iov[4] = {
      {sb->p, sb->len}, {db->p, db->len}, {w->ebuf.p, w->ebuf.len}, {w->hbuf.p, w->hbuf.len}};
  uint32_t seg;
  int rc = mw_rlog_append(w->log, iov, nh ? 4 : 3, written + hwritten, lo, hi, &seg, err, errlen);
  if (rc < 0) goto undo;
  for (size_t i = 0; i < w->ncreated; i++)
    mw_main_place(w->map_s, w->map_n, w->wref, w->created[i]);
  w->map_len += w->ncreated;
  for (size_t i = 0; i < n + nh; i++)
    if (w->ss[i] != MW_NONE) w->last_seg[w->ss[i]] = seg;
  if ((written || hwritten) && hi > w->st.max_ts) w->st.max_ts = hi;
  w->st.samples_appended += written;
  w->st.histograms_appended += hwritten;
  for (size_t i = 0; i < w->nex_new; i++)
    w->ex_last[w->ex_new[2 * i]] = w->ex_new[2 * i + 1];
  w->st.exemplars_appended += w->nex_new;
  w->st.series_created += w->ncreated;
  return rc; /* 1: the fsync of MW_WAL_FSYNC_ALWAYS failed, the batch is in the WAL */
oom:
  mw_seterr(err, errlen, "out of memory");
undo:
  for (size_t i = 0; i < w->ncreated; i++)
    w->wref[w->created[i]] = 0;
  w->ncreated = 0;
  return -1;
}

int mw_wal_sync_start(mw_wal_t *w, char *err, size_t errlen) {
  return mw_rlog_sync_start(w->log, err, errlen);
}

int mw_wal_sync(mw_wal_t *w, char *err, size_t errlen) { return mw_rlog_sync(w->log, err, errlen); }

void mw_wal_stats(const mw_wal_t *w, mw_wal_stats_t *st) {
  mw_rlog_stats_t ls;
  mw_rlog_stats(w->log, &ls);
  size_t nsegs;
  const mw_rlog_seg_t *segs = mw_rlog_segments(w->log, &nsegs);
  *st = w->st;
  st->active_series = mw_series_len(w->tab);
  st->segments = nsegs;
  st->first_segment = nsegs ? segs[0].index : 0;
  st->last_segment = nsegs ? segs[nsegs - 1].index : 0;
  st->bytes = ls.bytes;
  st->corruptions = ls.corruptions;
  st->corrupt_bytes = ls.corrupt_bytes;
  st->segments_removed = ls.segments_removed;
  st->checkpoints = ls.checkpoints;
  st->fsyncs = ls.fsyncs;
}

const char *mw_wal_repair_log(const mw_wal_t *w) { return mw_rlog_repair_log(w->log); }

void mw_wal_close(mw_wal_t *w) {
  if (!w) return;
  mw_rlog_close(w->log);
  w->closed = 1;
  /* Stop following the sources now: they may outlive the WAL. Nothing reads
   * a label set of tab once the WAL is closed (reader calls fail), so the
   * borrowed ones are not copied (that would double the memory of every
   * label set at the moment of stopping). */
  while (w->srcs)
    mw_wsrc_release(w->srcs, 1, 0);
  if (!w->nreaders) mw_wal_free(w);
}

/* --- what readers use ------------------------------------------------ */

void mw_wal_refs(const mw_wal_t *w, mw_wal_refs_t *m) {
  *m = (mw_wal_refs_t){.map_s = w->map_s,
                       .map_n = w->map_n,
                       .al_k = w->al_k,
                       .al_v = w->al_v,
                       .al_n = w->al_n,
                       .wref = w->wref,
                       .scap = w->scap};
}

mw_series_t *mw_wal_series(const mw_wal_t *w) { return w->tab; }

mw_rlog_t *mw_wal_log(const mw_wal_t *w) { return w->log; }

int mw_wal_closed(const mw_wal_t *w) { return w->closed; }

uint64_t mw_wal_series_epoch(const mw_wal_t *w) { return w->epoch; }

size_t mw_wal_mem(const mw_wal_t *w, size_t *map) {
  size_t m = w->map_n * sizeof *w->map_s + w->al_n * (sizeof *w->al_k + sizeof *w->al_v);
  if (map) *map = m;
  m += mw_series_mem(w->tab, NULL) + w->scap * (sizeof *w->wref + sizeof *w->last_seg) +
       w->memos_cap * sizeof *w->memos + (w->memo_mask ? w->memo_mask + 1 : 0) * sizeof(uint32_t);
  for (size_t i = 0; i < w->nmemos; i++)
    m += w->memos[i].cap * sizeof *w->memos[i].e;
  for (const mw_wsrc_t *x = w->srcs; x; x = x->next)
    m += sizeof *x + (size_t)x->cap * sizeof *x->s_of;
  return m;
}

void mw_wal_attach(mw_wal_t *w) { w->nreaders++; }

void mw_wal_detach(mw_wal_t *w) {
  if (!--w->nreaders && w->closed) mw_wal_free(w);
}

/* --- truncation ------------------------------------------------------- */

/* The checkpoint's content: every WAL ref still mapped, with its labels, in
 * series records. */
static int mw_checkpoint_series(void *ctx, mw_rlog_cpw_t *cpw, char *err, size_t errlen) {
  mw_wal_t *w = ctx;
  mw_buf_t *b = &w->sbuf;
  size_t i = 0, end = (w->map_s ? w->map_n : 0) + (w->al_k ? w->al_n : 0);
  while (i < end) {
    b->len = 0;
    size_t rec = mw_rec_begin(b, MW_REC_SERIES, 0);
    uint32_t count = 0;
    if (rec == SIZE_MAX) goto oom;
    for (; i < end && b->len < MW_SERIES_REC_BYTES; i++) {
      /* main's slots, then the aliases' */
      uint64_t k;
      uint32_t s;
      if (w->map_s && i < w->map_n) {
        if (!w->map_s[i]) continue;
        s = w->map_s[i] - 1;
        k = w->wref[s];
      } else {
        size_t j = i - (w->map_s ? w->map_n : 0);
        k = w->al_k[j];
        s = w->al_v[j];
        if (!k || s == MW_NONE) continue;
      }
      size_t len;
      if (!mw_series_live(w->tab, s)) continue;
      const uint8_t *enc = mw_series_labels(w->tab, s, &len);
      if (!enc) goto oom; /* live: no memory for its text (never a checkpoint without it) */
      if (mw_buf_reserve(b, 20 + len) != 0) goto oom;
      uint8_t *p = mw_put_uvarint(b->p + b->len, k);
      p = mw_put_uvarint(p, len);
      memcpy(p, enc, len);
      b->len = (size_t)(p - b->p) + len;
      count++;
    }
    if (!count) break;
    mw_rec_end(b, rec, count);
    if (mw_rlog_cp_write(cpw, b->p, b->len) != 0) return -1;
  }
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

int mw_wal_truncate(mw_wal_t *w, int64_t now_ms, int64_t min_keepalive_ms, int64_t max_keepalive_ms,
                    char *err, size_t errlen) {
  if (w->closed) {
    mw_seterr(err, errlen, "WAL closed");
    return -1;
  }
  mw_rlog_bounds_t bounds = {.min_cut = now_ms - min_keepalive_ms,
                             .max_cut = now_ms - max_keepalive_ms};
  long k = mw_rlog_truncate_plan(w->log, &bounds, err, errlen);
  if (k <= 0) return (int)k;
  size_t nsegs;
  uint32_t first = mw_rlog_segments(w->log, &nsegs)[k].index;
  /* Readers that had not committed the removed data jump past it. */
  uint64_t dropped_max;
  int rc = mw_rlog_truncate_cursors(w->log, (size_t)k, &dropped_max, err, errlen);
  w->st.samples_dropped += dropped_max;
  /* Forget the series no kept segment mentions. */
  size_t limit = mw_series_limit(w->tab);
  uint8_t *dead = calloc(limit ? limit : 1, 1);
  if (!dead) {
    mw_seterr(err, errlen, "out of memory");
    return -1;
  }
  size_t ndead = 0;
  for (uint32_t s = 0; s < limit; s++) {
    if (mw_series_live(w->tab, s) && w->last_seg[s] < first) {
      dead[s] = 1;
      ndead++;
    }
  }
  if (ndead) {
    if (mw_maps_drop_dead(w, dead) != 0) {
      free(dead);
      mw_seterr(err, errlen, "out of memory");
      return -1;
    }
    for (uint32_t s = 0; s < limit; s++)
      if (dead[s]) {
        mw_series_del(w->tab, s);
        w->wref[s] = 0;
        if (s < w->ex_last_cap) w->ex_last[s] = 0;
        w->last_seg[s] = 0;
      }
    mw_memos_clear(w); /* they may point at deleted series */
    w->epoch++;        /* readers forget what they derived from the deleted series */
    w->st.series_removed += ndead;
    mw_series_compact(w->tab);
  }
  free(dead);
  /* The checkpoint first, then the segments and checkpoint it replaces. */
  if (mw_rlog_truncate_finish(w->log, (size_t)k, mw_checkpoint_series, w, err, errlen) != 0)
    return -1;
  return rc;
}

/* --- FFI -------------------------------------------------------------- */

int mw_ffi_wal_open(const char *dir, const mw_wal_opts_t *opts, mw_wal_t **out, char *err,
                    size_t errlen) {
  return mw_wal_open(dir, opts, out, err, errlen);
}

void mw_ffi_wal_close(mw_wal_t *w) { mw_wal_close(w); }

int mw_ffi_wal_append(mw_wal_t *w, const mw_batch_t *b, char *err, size_t errlen) {
  return mw_wal_append_batch(w, b, err, errlen);
}

int mw_ffi_wal_sync(mw_wal_t *w, char *err, size_t errlen) { return mw_wal_sync(w, err, errlen); }

int mw_ffi_wal_sync_start(mw_wal_t *w, char *err, size_t errlen) {
  return mw_wal_sync_start(w, err, errlen);
}

int mw_ffi_wal_truncate(mw_wal_t *w, int64_t now_ms, int64_t min_keepalive_ms,
                        int64_t max_keepalive_ms, char *err, size_t errlen) {
  return mw_wal_truncate(w, now_ms, min_keepalive_ms, max_keepalive_ms, err, errlen);
}

void mw_ffi_wal_stats(const mw_wal_t *w, mw_wal_stats_t *st) { mw_wal_stats(w, st); }

const char *mw_ffi_wal_repair_log(const mw_wal_t *w) { return mw_wal_repair_log(w); }
