/* model/batch.c: sample batches (see model/batch.h) and their FFI accessors. */
#include "model/batch.h"

#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/grow.h"
#include "base/labels.h"
#include "model/series.h"

typedef struct {
  uint32_t idx, len;
  size_t off; /* labels at exbuf + off */
  int64_t ts;
  double value;
} mw_batch_ex_t;

struct mw_batch {
  mw_series_t *series;
  const mw_scrapecache_t *meta; /* metric metadata of the samples, borrowed; NULL: none */
  uint32_t *refs;
  int64_t *ts;
  double *values;
  size_t len, cap;
  /* exemplar column: allocated at the first exemplar */
  mw_batch_ex_t *ex;
  size_t nex, ex_cap;
  uint8_t *exbuf;
  size_t exbuf_len, exbuf_cap;
  /* histogram column: allocated at the first histogram sample. Entry k's arrays are
   * 8-byte units at hbuf + hs[k].off: positive spans, negative spans, positive
   * buckets, negative buckets, custom values (their counts in hs[k].h, whose pointers
   * are NULL here and set when read). */
  mw_hsample_t *hs;
  size_t *hoff;
  size_t nh, hs_cap, hoff_cap;
  uint8_t *hbuf;
  size_t hbuf_len, hbuf_cap;
  mw_series_t *owned; /* the series table the batch owns (mw_ffi_batch_new_owned), or NULL */
};

mw_batch_t *mw_batch_new(mw_series_t *series) {
  mw_batch_t *b = calloc(1, sizeof *b);
  if (b) b->series = series;
  return b;
}

void mw_batch_free(mw_batch_t *b) {
  if (!b) return;
  free(b->refs);
  free(b->ts);
  free(b->values);
  free(b->ex);
  free(b->exbuf);
  free(b->hs);
  free(b->hoff);
  free(b->hbuf);
  mw_series_free(b->owned);
  free(b);
}

void mw_batch_reset(mw_batch_t *b, mw_series_t *series) {
  b->series = series;
  b->len = 0;
  b->nex = 0;
  b->exbuf_len = 0;
  b->nh = 0;
  b->hbuf_len = 0;
}

void mw_batch_clear(mw_batch_t *b) {
  free(b->refs);
  free(b->ts);
  free(b->values);
  free(b->ex);
  free(b->exbuf);
  free(b->hs);
  free(b->hoff);
  free(b->hbuf);
  *b = (mw_batch_t){.series = b->series, .meta = b->meta, .owned = b->owned};
}

void mw_batch_truncate(mw_batch_t *b, size_t n) {
  if (n >= b->len) return;
  b->len = n;
  while (b->nex && b->ex[b->nex - 1].idx >= n) {
    b->nex--;
    b->exbuf_len = b->ex[b->nex].off;
  }
}

size_t mw_batch_keep(mw_batch_t *b, const uint8_t *keep) {
  size_t kept = 0, xk = 0, nx = 0, xoff = 0;
  for (size_t i = 0; i < b->len; i++) {
    for (; xk < b->nex && b->ex[xk].idx == i; xk++) { /* sample i's exemplars */
      if (!keep[i]) continue;
      mw_batch_ex_t x = b->ex[xk];
      if (x.len) memmove(b->exbuf + xoff, b->exbuf + x.off, x.len);
      x.idx = (uint32_t)kept;
      x.off = xoff;
      xoff += x.len;
      b->ex[nx++] = x;
    }
    if (!keep[i]) continue;
    b->refs[kept] = b->refs[i];
    b->ts[kept] = b->ts[i];
    b->values[kept++] = b->values[i];
  }
  b->len = kept;
  b->nex = nx;
  b->exbuf_len = xoff;
  return kept;
}

int mw_batch_reserve(mw_batch_t *b, size_t n) {
  if (b->cap - b->len >= n) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < n) {
    if (cap > SIZE_MAX / 2 / sizeof(int64_t)) return -1;
    cap *= 2;
  }
  /* Grow each column separately; a failure leaves the old columns usable. */
  uint32_t *refs = realloc(b->refs, cap * sizeof *refs);
  if (!refs) return -1;
  b->refs = refs;
  int64_t *ts = realloc(b->ts, cap * sizeof *ts);
  if (!ts) return -1;
  b->ts = ts;
  double *values = realloc(b->values, cap * sizeof *values);
  if (!values) return -1;
  b->values = values;
  b->cap = cap;
  return 0;
}

int mw_batch_add(mw_batch_t *b, uint32_t ref, int64_t ts_ms, double value) {
  if (b->len == b->cap && mw_batch_reserve(b, 1) != 0) return -1;
  b->refs[b->len] = ref;
  b->ts[b->len] = ts_ms;
  b->values[b->len] = value;
  b->len++;
  return 0;
}

int mw_batch_add_exemplar(mw_batch_t *b, size_t idx, const uint8_t *labels, size_t len,
                          int64_t ts_ms, double value) {
  if (idx >= b->len || len >= UINT32_MAX || (b->nex && b->ex[b->nex - 1].idx > idx)) return -1;
  if (b->nex == b->ex_cap) {
    size_t cap = b->ex_cap ? 2 * b->ex_cap : 16;
    mw_batch_ex_t *ex = realloc(b->ex, cap * sizeof *ex);
    if (!ex) return -1;
    b->ex = ex;
    b->ex_cap = cap;
  }
  if (!b->exbuf || b->exbuf_cap - b->exbuf_len < len) {
    size_t cap = b->exbuf_cap ? b->exbuf_cap : 1024;
    while (cap - b->exbuf_len < len)
      cap *= 2;
    uint8_t *p = realloc(b->exbuf, cap);
    if (!p) return -1;
    b->exbuf = p;
    b->exbuf_cap = cap;
  }
  if (len) memcpy(b->exbuf + b->exbuf_len, labels, len);
  b->ex[b->nex++] = (mw_batch_ex_t){
      .idx = (uint32_t)idx, .len = (uint32_t)len, .off = b->exbuf_len, .ts = ts_ms, .value = value};
  b->exbuf_len += len;
  return 0;
}

size_t mw_batch_exemplars(const mw_batch_t *b) { return b->nex; }

/* --- histogram column ----------------------------------------------------- */

/* Bytes of entry h's arrays (8-byte units). */
static size_t hist_units(const mw_histogram_t *h) {
  return (size_t)h->n_pos_spans + h->n_neg_spans + h->n_pos + h->n_neg + h->n_custom;
}

static uint8_t *put(uint8_t *p, const void *src, size_t n) {
  if (n) memcpy(p, src, n * 8);
  return p + n * 8;
}

/* Room for one more histogram sample whose arrays take bytes. 0, -1 on OOM. */
static int hist_reserve(mw_batch_t *b, size_t bytes) {
  /* (+ 8: hbuf is never NULL, even for empty arrays) */
  if (mw_grow((void **)&b->hs, &b->hs_cap, b->nh + 1, sizeof *b->hs) != 0 ||
      mw_grow((void **)&b->hoff, &b->hoff_cap, b->nh + 1, sizeof *b->hoff) != 0 ||
      mw_grow((void **)&b->hbuf, &b->hbuf_cap, b->hbuf_len + bytes + 8, 1) != 0)
    return -1;
  return 0;
}

int mw_batch_add_histogram(mw_batch_t *b, uint32_t ref, int64_t ts_ms, const mw_histogram_t *h,
                           char *err, size_t errlen) {
  if (mw_histogram_validate(h, err, errlen) != 0) return -1;
  size_t bytes = hist_units(h) * 8;
  if (hist_reserve(b, bytes) != 0) {
    mw_oom(err, errlen);
    return -1;
  }
  mw_hsample_t *e = &b->hs[b->nh];
  e->ref = ref;
  e->ts_ms = ts_ms;
  e->h = *h;
  int fl = h->is_float != 0;
  e->h.is_float = (uint8_t)fl;
  if (fl) {
    e->h.count = e->h.zero_count = 0;
  } else {
    e->h.fcount = e->h.fzero_count = 0;
  }
  e->h.pos_spans = e->h.neg_spans = NULL;
  e->h.pos_deltas = e->h.neg_deltas = NULL;
  e->h.pos_counts = e->h.neg_counts = NULL;
  e->h.custom_values = NULL;
  if (bytes) { /* (h19-proto: no arithmetic on hbuf while it is NULL: UBSan) */
    uint8_t *p = b->hbuf + b->hbuf_len;
    p = put(p, h->pos_spans, h->n_pos_spans);
    p = put(p, h->neg_spans, h->n_neg_spans);
    p = put(p, fl ? (const void *)h->pos_counts : (const void *)h->pos_deltas, h->n_pos);
    p = put(p, fl ? (const void *)h->neg_counts : (const void *)h->neg_deltas, h->n_neg);
    put(p, h->custom_values, h->n_custom);
  }
  b->hoff[b->nh] = b->hbuf_len;
  b->hbuf_len += bytes;
  b->nh++;
  return 0;
}

int mw_batch_copy_histogram(mw_batch_t *b, uint32_t ref, const mw_batch_t *src, size_t k) {
  size_t bytes = hist_units(&src->hs[k].h) * 8;
  if (hist_reserve(b, bytes) != 0) return -1;
  b->hs[b->nh] = src->hs[k];
  b->hs[b->nh].ref = ref;
  if (bytes) memcpy(b->hbuf + b->hbuf_len, src->hbuf + src->hoff[k], bytes);
  b->hoff[b->nh] = b->hbuf_len;
  b->hbuf_len += bytes;
  b->nh++;
  return 0;
}

int mw_batch_add_histogram_stale(mw_batch_t *b, uint32_t ref, int64_t ts_ms, int is_float) {
  mw_histogram_t h = {.is_float = (uint8_t)(is_float != 0), .sum = mw_batch_stale_nan()};
  return mw_batch_add_histogram(b, ref, ts_ms, &h, NULL, 0);
}

size_t mw_batch_histograms(const mw_batch_t *b) { return b->nh; }

uint32_t mw_batch_histogram_ref(const mw_batch_t *b, size_t k) { return b->hs[k].ref; }

void mw_batch_histogram(const mw_batch_t *b, size_t k, mw_hsample_t *out) {
  *out = b->hs[k];
  mw_histogram_t *h = &out->h;
  /* (h19-proto: a batch whose histograms have no arrays has no hbuf: no arithmetic on
   * NULL; the pointers then point at nothing, with 0 elements each) */
  static const uint64_t none[1];
  const uint8_t *p = b->hbuf ? b->hbuf + b->hoff[k] : (const uint8_t *)none;
  h->pos_spans = (const mw_hspan_t *)p;
  p += (size_t)h->n_pos_spans * 8;
  h->neg_spans = (const mw_hspan_t *)p;
  p += (size_t)h->n_neg_spans * 8;
  if (h->is_float) {
    h->pos_counts = (const double *)p;
    p += (size_t)h->n_pos * 8;
    h->neg_counts = (const double *)p;
  } else {
    h->pos_deltas = (const int64_t *)p;
    p += (size_t)h->n_pos * 8;
    h->neg_deltas = (const int64_t *)p;
  }
  p += (size_t)h->n_neg * 8;
  h->custom_values = (const double *)p;
}

void mw_batch_truncate_histograms(mw_batch_t *b, size_t n) {
  if (n >= b->nh) return;
  b->nh = n;
  b->hbuf_len = b->hoff[n];
}

void mw_batch_exemplar(const mw_batch_t *b, size_t k, mw_exemplar_t *e) {
  const mw_batch_ex_t *x = &b->ex[k];
  *e = (mw_exemplar_t){.idx = x->idx,
                       .labels_len = x->len,
                       .labels = b->exbuf + x->off,
                       .ts_ms = x->ts,
                       .value = x->value};
}

size_t mw_batch_len(const mw_batch_t *b) { return b->len; }

size_t mw_batch_mem(const mw_batch_t *b) {
  return sizeof *b + b->cap * (sizeof *b->refs + sizeof *b->ts + sizeof *b->values) +
         b->ex_cap * sizeof *b->ex + b->exbuf_cap + b->hs_cap * sizeof *b->hs +
         b->hoff_cap * sizeof *b->hoff + b->hbuf_cap;
}

mw_series_t *mw_batch_series(const mw_batch_t *b) { return b->series; }

const uint32_t *mw_batch_refs(const mw_batch_t *b) { return b->refs; }

const int64_t *mw_batch_timestamps(const mw_batch_t *b) { return b->ts; }

const double *mw_batch_values(const mw_batch_t *b) { return b->values; }

double mw_batch_stale_nan(void) {
  uint64_t bits = MW_STALE_NAN_BITS;
  double v;
  memcpy(&v, &bits, sizeof v);
  return v;
}

int mw_batch_is_stale_value(double v) {
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  return bits == MW_STALE_NAN_BITS;
}

/* --- FFI ---------------------------------------------------------------- */

mw_batch_t *mw_ffi_batch_new(void) { return mw_batch_new(NULL); }

void mw_ffi_batch_free(mw_batch_t *b) { mw_batch_free(b); }

size_t mw_ffi_batch_len(const mw_batch_t *b) { return b->len; }

void mw_batch_set_meta(mw_batch_t *b, const mw_scrapecache_t *meta) { b->meta = meta; }

const mw_scrapecache_t *mw_batch_meta(const mw_batch_t *b) { return b->meta; }

const mw_scrapecache_t *mw_ffi_batch_meta(const mw_batch_t *b) { return b->meta; }

uint32_t mw_ffi_batch_ref(const mw_batch_t *b, size_t i) {
  return i < b->len ? b->refs[i] : UINT32_MAX;
}

int64_t mw_ffi_batch_ts(const mw_batch_t *b, size_t i) { return i < b->len ? b->ts[i] : 0; }

double mw_ffi_batch_value(const mw_batch_t *b, size_t i) { return i < b->len ? b->values[i] : 0.0; }

int mw_ffi_batch_is_stale(const mw_batch_t *b, size_t i) {
  return i < b->len && mw_batch_is_stale_value(b->values[i]);
}

const uint8_t *mw_ffi_batch_labels(const mw_batch_t *b, size_t i, size_t *len) {
  if (!b->series) return NULL;
  if (i < b->len) return mw_series_labels(b->series, b->refs[i], len);
  if (i - b->len < b->nh) return mw_series_labels(b->series, b->hs[i - b->len].ref, len);
  return NULL;
}

double mw_ffi_batch_stale_nan(void) { return mw_batch_stale_nan(); }

size_t mw_ffi_batch_exemplars(const mw_batch_t *b) { return b->nex; }

int mw_ffi_batch_exemplar(const mw_batch_t *b, size_t k, size_t *idx, const uint8_t **labels,
                          size_t *len, int64_t *ts_ms, double *value) {
  if (k >= b->nex) return -1;
  mw_exemplar_t e;
  mw_batch_exemplar(b, k, &e);
  *idx = e.idx;
  *labels = e.labels;
  *len = e.labels_len;
  *ts_ms = e.ts_ms;
  *value = e.value;
  return 0;
}

int mw_ffi_labels_next(const uint8_t *enc, size_t len, size_t *pos, const char **name,
                       size_t *name_len, const char **value, size_t *value_len) {
  mw_label_t l;
  int rc = mw_labels_next(enc, len, pos, &l);
  if (rc == 1) {
    *name = l.name;
    *name_len = l.name_len;
    *value = l.value;
    *value_len = l.value_len;
  }
  return rc;
}

/* --- FFI: histograms and batches built from Lua ---------------------------------- */

mw_batch_t *mw_ffi_batch_new_owned(void) {
  mw_series_t *s = mw_series_new();
  if (!s) return NULL;
  mw_batch_t *b = mw_batch_new(s);
  if (!b) {
    mw_series_free(s);
    return NULL;
  }
  b->owned = s;
  return b;
}

int64_t mw_ffi_batch_series_add(mw_batch_t *b, const char *pairs, size_t len, char *err,
                                size_t errlen) {
  if (!b->owned) {
    mw_seterr(err, errlen, "the batch does not own its series table");
    return -1;
  }
  mw_label_t *ls = NULL;
  uint8_t *enc = NULL;
  size_t ls_cap = 0, enc_cap = 0, elen;
  int64_t r = -1;
  uint32_t ref;
  if (mw_labels_from_pairs(pairs, len, &ls, &ls_cap, &enc, &enc_cap, &elen, err, errlen) == 0 &&
      mw_series_add(b->owned, enc, elen, mw_labels_hash(enc, elen), &ref, NULL, err, errlen) == 0)
    r = ref;
  free(ls);
  free(enc);
  return r;
}

int mw_ffi_batch_add(mw_batch_t *b, uint32_t ref, int64_t ts_ms, double value) {
  return mw_batch_add(b, ref, ts_ms, value);
}

int mw_ffi_batch_add_histogram(mw_batch_t *b, uint32_t ref, int64_t ts_ms, const mw_histogram_t *h,
                               char *err, size_t errlen) {
  return mw_batch_add_histogram(b, ref, ts_ms, h, err, errlen);
}

size_t mw_ffi_batch_histograms(const mw_batch_t *b) { return b->nh; }

int mw_ffi_batch_histogram(const mw_batch_t *b, size_t k, mw_hsample_t *out) {
  if (k >= b->nh) return -1;
  mw_batch_histogram(b, k, out);
  return 0;
}

const uint8_t *mw_ffi_batch_series_labels(const mw_batch_t *b, uint32_t ref, size_t *len) {
  if (!b->series) return NULL;
  return mw_series_labels(b->series, ref, len);
}

int mw_ffi_batch_add_histogram_stale(mw_batch_t *b, uint32_t ref, int64_t ts_ms, int is_float) {
  return mw_batch_add_histogram_stale(b, ref, ts_ms, is_float);
}

int mw_ffi_batch_histogram_is_stale(const mw_histogram_t *h) { return mw_histogram_is_stale(h); }
