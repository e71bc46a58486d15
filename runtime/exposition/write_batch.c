/* exposition/write_batch.c: writes the samples of a batch in exposition format, one line per
 * sample with its timestamp (prometheus.echo). Native histogram samples follow the float
 * samples, one line each, the histogram written as Prometheus's Histogram.String() /
 * FloatHistogram.String() writes it:
 *   name{labels} {count:14, sum:42.5, [-2,-1):2, [-0.001,0.001]:1, (0.5,1]:3} 1700000000000
 * (negative buckets first, most negative first, then the zero bucket, then the positive
 * ones; buckets with a count of 0 left out; numbers as Go's %g; a stale marker has the sum
 * NaN and nothing else). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/labels.h"
#include "exposition/write.h"
#include "model/batch.h"
#include "model/series.h"

static int mw_reserve(mw_expose_buf_t *b, size_t more) {
  if (b->len + more <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + more)
    cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) return -1;
  b->data = p;
  b->cap = cap;
  return 0;
}

static void mw_put(mw_expose_buf_t *b, const char *s, size_t n) {
  memcpy(b->data + b->len, s, n);
  b->len += n;
}

/* Appends a label value escaped as the text format wants (\\, \", \n). */
static void mw_put_escaped(mw_expose_buf_t *b, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '\\' || c == '"') {
      b->data[b->len++] = '\\';
      b->data[b->len++] = c;
    } else if (c == '\n') {
      b->data[b->len++] = '\\';
      b->data[b->len++] = 'n';
    } else {
      b->data[b->len++] = c;
    }
  }
}

/* Appends a label name (label) or metric name: bare when the legacy grammar
 * allows it, else quoted and escaped as Prometheus 3 writes UTF-8 names. */
static void mw_put_name(mw_expose_buf_t *b, const char *s, size_t n, int label) {
  if (label ? mw_labels_valid_name(s, n) : mw_labels_valid_metric_name(s, n)) {
    mw_put(b, s, n);
    return;
  }
  mw_put(b, "\"", 1);
  mw_put_escaped(b, s, n);
  mw_put(b, "\"", 1);
}

/* Appends " S.mmm": timestamp ms as OpenMetrics seconds (-0.500 for -500). */
static void mw_put_seconds(mw_expose_buf_t *b, int64_t ms) {
  char num[32];
  int frac = (int)(ms % 1000);
  size_t k = (size_t)snprintf(num, sizeof num, " %s%" PRId64 ".%03d",
                              ms < 0 && ms > -1000 ? "-" : "", ms / 1000, frac < 0 ? -frac : frac);
  mw_put(b, num, k);
}

/* Appends " # {labels} value ts" (OpenMetrics exemplar syntax, ts in
 * seconds) for exemplar e. */
static int mw_put_exemplar(mw_expose_buf_t *b, const mw_exemplar_t *e) {
  if (mw_reserve(b, 3 * (size_t)e->labels_len + 128) != 0) return -1;
  mw_put(b, " # {", 4);
  size_t pos = 0;
  mw_label_t l;
  int first = 1;
  while (mw_labels_next(e->labels, e->labels_len, &pos, &l) == 1) {
    if (!first) mw_put(b, ",", 1);
    first = 0;
    mw_put_name(b, l.name, l.name_len, 1);
    mw_put(b, "=\"", 2);
    mw_put_escaped(b, l.value, l.value_len);
    mw_put(b, "\"", 1);
  }
  char num[64];
  size_t k = mw_expose_fmt_float(num, e->value, 1);
  mw_put(b, "} ", 2);
  mw_put(b, num, k);
  mw_put_seconds(b, e->ts_ms);
  return 0;
}

/* Appends the metric name and labels of the encoded set enc (len bytes): name{a="b",...}. The
 * caller reserved 3 * len + 64 bytes. */
static void mw_put_series(mw_expose_buf_t *b, const uint8_t *enc, size_t len) {
  size_t pos = 0;
  mw_label_t l, name = {0};
  int first = 1;
  if (mw_labels_get(enc, len, "__name__", 8, &name)) {
    if (mw_labels_valid_metric_name(name.value, name.value_len)) {
      mw_put(b, name.value, name.value_len);
    } else { /* Prometheus 3: {"my.metric",a="b"} */
      mw_put(b, "{", 1);
      mw_put_name(b, name.value, name.value_len, 0);
      first = 0;
    }
  }
  while (mw_labels_next(enc, len, &pos, &l) == 1) {
    if (l.name_len == 8 && memcmp(l.name, "__name__", 8) == 0) continue;
    mw_put(b, first ? "{" : ",", 1);
    first = 0;
    mw_put_name(b, l.name, l.name_len, 1);
    mw_put(b, "=\"", 2);
    mw_put_escaped(b, l.value, l.value_len);
    mw_put(b, "\"", 1);
  }
  if (!first) mw_put(b, "}", 1);
}

/* Go's %g of v ("-0" for negative zero, "+Inf", "NaN"). */
static void mw_put_g(mw_expose_buf_t *b, double v) {
  char num[64];
  if (v == 0 && signbit(v)) {
    mw_put(b, "-0", 2);
    return;
  }
  mw_put(b, num, mw_expose_fmt_float(num, v, 0));
}

/* Appends ", [lo,hi):count" (inclusivity as given). Reserved: 160 bytes. */
static void mw_put_bucket(mw_expose_buf_t *b, double lo, double hi, int lo_incl, int hi_incl,
                          double count, int is_float) {
  char num[32];
  mw_put(b, lo_incl ? ", [" : ", (", 3);
  mw_put_g(b, lo);
  mw_put(b, ",", 1);
  mw_put_g(b, hi);
  mw_put(b, hi_incl ? "]:" : "):", 2);
  if (is_float)
    mw_put_g(b, count);
  else
    mw_put(b, num, (size_t)snprintf(num, sizeof num, "%.0f", count));
}

/* Appends histogram h as Prometheus's String() writes it. 0, -1 on OOM. */
static int mw_put_histogram(mw_expose_buf_t *b, const mw_histogram_t *h) {
  char num[48];
  size_t nb = (size_t)h->n_pos + h->n_neg + 1;
  double *counts = malloc(nb * sizeof *counts);
  int32_t *idx = malloc(nb * sizeof *idx);
  if (!counts || !idx || mw_reserve(b, 160 * (nb + 1)) != 0) {
    free(counts);
    free(idx);
    return -1;
  }
  mw_put(b, "{count:", 7);
  if (h->is_float)
    mw_put_g(b, h->fcount);
  else
    mw_put(b, num, (size_t)snprintf(num, sizeof num, "%" PRIu64, h->count));
  mw_put(b, ", sum:", 6);
  mw_put_g(b, h->sum);
  double lo, hi;
  size_t n = mw_histogram_buckets(h, 0, counts, idx, nb);
  for (size_t k = n; k-- > 0;) {
    if (counts[k] == 0) continue;
    mw_histogram_bounds(h->schema, idx[k], h->custom_values, h->n_custom, &lo, &hi);
    mw_put_bucket(b, -hi, -lo, 1, 0, counts[k], h->is_float);
  }
  double zc = h->is_float ? h->fzero_count : (double)h->zero_count;
  if (zc != 0) mw_put_bucket(b, -h->zero_threshold, h->zero_threshold, 1, 1, zc, h->is_float);
  n = mw_histogram_buckets(h, 1, counts, idx, nb);
  for (size_t k = 0; k < n; k++) {
    if (counts[k] == 0) continue;
    mw_histogram_bounds(h->schema, idx[k], h->custom_values, h->n_custom, &lo, &hi);
    mw_put_bucket(b, lo, hi, 0, 1, counts[k], h->is_float);
  }
  mw_put(b, "}", 1);
  free(counts);
  free(idx);
  return 0;
}

int mw_ffi_batch_write(const mw_batch_t *batch, int openmetrics, char **out, size_t *out_len) {
  mw_expose_buf_t b = {0};
  mw_series_t *s = mw_batch_series(batch);
  const uint32_t *refs = mw_batch_refs(batch);
  const int64_t *ts = mw_batch_timestamps(batch);
  const double *vs = mw_batch_values(batch);
  size_t n = mw_batch_len(batch);
  /* exemplars: OpenMetrics only (the text format has none), one per line */
  size_t nex = openmetrics ? mw_batch_exemplars(batch) : 0, k = 0;
  mw_exemplar_t ex;
  for (size_t i = 0; i < n; i++) {
    size_t len, pos = 0;
    const uint8_t *enc = mw_series_labels(s, refs[i], &len);
    if (!enc) goto oom; /* a batch's refs are live: only out of memory */
    /* worst case: every byte escaped (2 bytes), names quoted and label
     * punctuation (at most 6 bytes a label, whose 2 separators count 6 here),
     * the value and timestamp */
    if (mw_reserve(&b, 3 * len + 128) != 0) goto oom;
    mw_label_t l, name = {0};
    int first = 1;
    if (mw_labels_get(enc, len, "__name__", 8, &name)) {
      if (mw_labels_valid_metric_name(name.value, name.value_len)) {
        mw_put(&b, name.value, name.value_len);
      } else { /* Prometheus 3: {"my.metric",a="b"} */
        mw_put(&b, "{", 1);
        mw_put_name(&b, name.value, name.value_len, 0);
        first = 0;
      }
    }
    while (mw_labels_next(enc, len, &pos, &l) == 1) {
      if (l.name_len == 8 && memcmp(l.name, "__name__", 8) == 0) continue;
      mw_put(&b, first ? "{" : ",", 1);
      first = 0;
      mw_put_name(&b, l.name, l.name_len, 1);
      mw_put(&b, "=\"", 2);
      mw_put_escaped(&b, l.value, l.value_len);
      mw_put(&b, "\"", 1);
    }
    if (!first) mw_put(&b, "}", 1);
    char num[64];
    size_t m = mw_expose_fmt_float(num, vs[i], openmetrics);
    mw_put(&b, " ", 1);
    mw_put(&b, num, m);
    if (openmetrics) {
      mw_put_seconds(&b, ts[i]);
    } else {
      m = (size_t)snprintf(num, sizeof num, " %" PRId64, ts[i]);
      mw_put(&b, num, m);
    }
    int done = 0;
    for (; k < nex; k++) {
      mw_batch_exemplar(batch, k, &ex);
      if (ex.idx > i) break;
      if (ex.idx == i && !done) {
        if (mw_put_exemplar(&b, &ex) != 0) goto oom;
        done = 1;
      }
    }
    mw_put(&b, "\n", 1);
  }
  size_t nh = mw_batch_histograms(batch);
  for (size_t i = 0; i < nh; i++) {
    mw_hsample_t hs;
    mw_batch_histogram(batch, i, &hs);
    size_t len;
    const uint8_t *enc = mw_series_labels(s, hs.ref, &len);
    if (!enc) goto oom; /* a batch's refs are live: only out of memory */
    if (mw_reserve(&b, 3 * len + 64) != 0) goto oom;
    mw_put_series(&b, enc, len);
    mw_put(&b, " ", 1);
    if (mw_put_histogram(&b, &hs.h) != 0 || mw_reserve(&b, 40) != 0) goto oom;
    if (openmetrics) {
      mw_put_seconds(&b, hs.ts_ms);
    } else {
      char num[32];
      mw_put(&b, num, (size_t)snprintf(num, sizeof num, " %" PRId64, hs.ts_ms));
    }
    mw_put(&b, "\n", 1);
  }
  *out = b.data;
  *out_len = b.len;
  return 0;
oom:
  free(b.data);
  *out = NULL;
  *out_len = 0;
  return -1;
}
