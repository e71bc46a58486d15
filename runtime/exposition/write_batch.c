/* exposition/write_batch.c: writes the samples of a batch in exposition format, one line per
 * sample with its timestamp (prometheus.echo). */
#include <inttypes.h>
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
  *out = b.data;
  *out_len = b.len;
  return 0;
oom:
  free(b.data);
  *out = NULL;
  *out_len = 0;
  return -1;
}
