/* model/batch.c: sample batches (see model/batch.h) and their FFI accessors. */
#include "model/batch.h"

#include <stdlib.h>
#include <string.h>

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
  uint32_t *refs;
  int64_t *ts;
  double *values;
  size_t len, cap;
  /* exemplar column: allocated at the first exemplar */
  mw_batch_ex_t *ex;
  size_t nex, ex_cap;
  uint8_t *exbuf;
  size_t exbuf_len, exbuf_cap;
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
  free(b);
}

void mw_batch_reset(mw_batch_t *b, mw_series_t *series) {
  b->series = series;
  b->len = 0;
  b->nex = 0;
  b->exbuf_len = 0;
}

void mw_batch_clear(mw_batch_t *b) {
  free(b->refs);
  free(b->ts);
  free(b->values);
  free(b->ex);
  free(b->exbuf);
  *b = (mw_batch_t){.series = b->series};
}

void mw_batch_truncate(mw_batch_t *b, size_t n) {
  if (n >= b->len) return;
  b->len = n;
  while (b->nex && b->ex[b->nex - 1].idx >= n) {
    b->nex--;
    b->exbuf_len = b->ex[b->nex].off;
  }
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
         b->ex_cap * sizeof *b->ex + b->exbuf_cap;
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

uint32_t mw_ffi_batch_ref(const mw_batch_t *b, size_t i) {
  return i < b->len ? b->refs[i] : UINT32_MAX;
}

int64_t mw_ffi_batch_ts(const mw_batch_t *b, size_t i) { return i < b->len ? b->ts[i] : 0; }

double mw_ffi_batch_value(const mw_batch_t *b, size_t i) { return i < b->len ? b->values[i] : 0.0; }

int mw_ffi_batch_is_stale(const mw_batch_t *b, size_t i) {
  return i < b->len && mw_batch_is_stale_value(b->values[i]);
}

const uint8_t *mw_ffi_batch_labels(const mw_batch_t *b, size_t i, size_t *len) {
  if (i >= b->len || !b->series) return NULL;
  return mw_series_labels(b->series, b->refs[i], len);
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
