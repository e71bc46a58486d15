/* Fuzz target: the protobuf exposition parser (exposition/parse_proto.c), the NHCB
 * conversion of the text formats (exposition/nhcb.c) and their scrape cache. The first byte picks
 * the flags (native histograms, classic series too, legacy names, ignored timestamps) and the
 * second a bucket limit; the rest is the body, parsed twice through one cache (cold, then steady
 * state), once through a fresh cache and once in steps of a few bytes; the results must agree,
 * every label set must be canonical, every native histogram valid, and an error must name the
 * family (or be one of the scrape's own failures). A parse cancelled midway must leave the cache as
 * it was. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/labels.h"
#include "exposition/parse.h"
#include "exposition/scrapecache.h"
#include "model/batch.h"
#include "model/histogram.h"
#include "model/series.h"

static void check_labels(mw_series_t *s, uint32_t ref, int legacy) {
  size_t len, pos = 0;
  const uint8_t *enc = mw_series_labels(s, ref, &len);
  if (!enc) abort();
  mw_label_t l, prev = {0};
  int rc, n = 0, has_name = 0;
  while ((rc = mw_labels_next(enc, len, &pos, &l)) == 1) {
    if (l.name_len == 8 && memcmp(l.name, "__name__", 8) == 0) {
      has_name = 1;
      if (legacy ? !mw_labels_valid_metric_name(l.value, l.value_len)
                 : !mw_labels_valid_utf8_name(l.value, l.value_len))
        abort();
    } else if (legacy ? !mw_labels_valid_name(l.name, l.name_len)
                      : !mw_labels_valid_utf8_name(l.name, l.name_len)) {
      abort();
    }
    if (!mw_labels_valid_utf8(l.value, l.value_len) || l.value_len == 0) abort();
    if (n > 0) {
      uint32_t m = prev.name_len < l.name_len ? prev.name_len : l.name_len;
      int c = memcmp(prev.name, l.name, m);
      if (c > 0 || (c == 0 && prev.name_len >= l.name_len)) abort();
    }
    prev = l;
    n++;
  }
  if (!has_name || rc != 0) abort();
}

static void check_batch(mw_batch_t *b, int legacy, uint32_t limit) {
  mw_series_t *s = mw_batch_series(b);
  for (size_t i = 0; i < mw_batch_len(b); i++)
    check_labels(s, mw_batch_refs(b)[i], legacy);
  for (size_t k = 0; k < mw_batch_histograms(b); k++) {
    mw_hsample_t hs;
    mw_batch_histogram(b, k, &hs);
    check_labels(s, hs.ref, legacy);
    char err[160];
    if (mw_histogram_validate(&hs.h, err, sizeof err) != 0) abort();
    if (!mw_histogram_is_stale(&hs.h) && limit && hs.h.n_pos + hs.h.n_neg > limit) abort();
  }
}

/* Same samples and histograms (labels, values' bits, counts) in a and b. */
static void same(mw_batch_t *a, mw_batch_t *b) {
  if (mw_batch_len(a) != mw_batch_len(b) || mw_batch_histograms(a) != mw_batch_histograms(b))
    abort();
  for (size_t i = 0; i < mw_batch_len(a); i++) {
    size_t l1, l2;
    const uint8_t *e1 = mw_series_labels(mw_batch_series(a), mw_batch_refs(a)[i], &l1);
    const uint8_t *e2 = mw_series_labels(mw_batch_series(b), mw_batch_refs(b)[i], &l2);
    if (l1 != l2 || memcmp(e1, e2, l1) != 0) abort();
    if (memcmp(&mw_batch_values(a)[i], &mw_batch_values(b)[i], sizeof(double)) != 0) abort();
  }
  for (size_t k = 0; k < mw_batch_histograms(a); k++) {
    mw_hsample_t x, y;
    mw_batch_histogram(a, k, &x);
    mw_batch_histogram(b, k, &y);
    size_t l1, l2;
    const uint8_t *e1 = mw_series_labels(mw_batch_series(a), x.ref, &l1);
    const uint8_t *e2 = mw_series_labels(mw_batch_series(b), y.ref, &l2);
    if (l1 != l2 || memcmp(e1, e2, l1) != 0) abort();
    if (x.h.schema != y.h.schema || x.h.count != y.h.count || x.h.n_pos != y.h.n_pos ||
        x.h.n_neg != y.h.n_neg || memcmp(&x.h.sum, &y.h.sum, sizeof(double)) != 0)
      abort();
  }
}

static int known_error(const char *err) {
  return strncmp(err, "metric family #", 15) == 0 || strcmp(err, "out of memory") == 0 ||
         strncmp(err, "line ", 5) == 0 || strcmp(err, "histogram bucket limit exceeded") == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  uint32_t flags = ((data[0] & 1) ? MW_EXPFMT_NATIVE_HISTOGRAMS : 0) |
                   ((data[0] & 2) ? MW_EXPFMT_CLASSIC_HISTOGRAMS : 0) |
                   ((data[0] & 4) ? MW_EXPFMT_LEGACY_NAMES : 0) |
                   ((data[0] & 8) ? MW_EXPFMT_IGNORE_TIMESTAMPS : 0);
  /* 0x80: the body is text (0x40: OpenMetrics) and classic histograms convert to NHCB
   * (exposition/nhcb.c); 0x20: NHCB for protobuf too. */
  int format = (data[0] & 0x80) ? ((data[0] & 0x40) ? MW_EXPFMT_OPENMETRICS : MW_EXPFMT_TEXT)
                                : MW_EXPFMT_PROTOBUF;
  if (data[0] & 0xa0) flags |= MW_EXPFMT_NHCB;
  uint32_t limit = data[1] & 0x0f;
  double factor = (data[1] & 0x10) ? 1.1 : 0;
  int legacy = (flags & MW_EXPFMT_LEGACY_NAMES) != 0;
  size_t len = size - 2;
  char *copy = malloc(len ? len : 1); /* exact size: ASan sees any read past the end */
  if (len) memcpy(copy, data + 2, len);
  char err[256], err2[256];
  mw_expfmt_stats_t st;
  mw_scrapecache_t *c = mw_scrapecache_new();
  mw_batch_t *b = mw_batch_new(NULL);
  mw_expfmt_parser_t *p =
      mw_expfmt_begin(c, b, copy, len, format, 1000, flags, 0, &st, err, sizeof err);
  if (!p) abort();
  mw_expfmt_set_histograms(p, limit, factor);
  int rc1 = mw_expfmt_step(p, 0);
  if (rc1 != 0 && !known_error(err)) abort();
  check_batch(b, legacy, limit);
  size_t n1 = mw_batch_len(b), h1 = mw_batch_histograms(b);
  /* Steady state. */
  p = mw_expfmt_begin(c, b, copy, len, format, 2000, flags, 0, &st, err2, sizeof err2);
  mw_expfmt_set_histograms(p, limit, factor);
  int rc2 = mw_expfmt_step(p, 0);
  check_batch(b, legacy, limit);
  if (rc1 == 0 && (rc2 != 0 || mw_batch_len(b) != n1 || mw_batch_histograms(b) != h1 ||
                   st.series_added != 0 || st.stale != 0))
    abort();
  /* A fresh cache, in steps of a few bytes. */
  size_t step = 1 + (size_t)data[size - 1] % 64;
  mw_scrapecache_t *c2 = mw_scrapecache_new();
  mw_batch_t *b2 = mw_batch_new(NULL);
  p = mw_expfmt_begin(c2, b2, copy, len, format, 2000, flags, 0, &st, err2, sizeof err2);
  mw_expfmt_set_histograms(p, limit, factor);
  int rc3;
  while ((rc3 = mw_expfmt_step(p, step)) == 1) {
  }
  if (rc3 != rc1) abort();
  if (rc3 != 0 && strcmp(err, err2) != 0) abort();
  if (rc3 == 0) same(b, b2);
  /* Cancelled midway, then the steady state again. */
  p = mw_expfmt_begin(c, b, copy, len, format, 3000, flags, 0, &st, err2, sizeof err2);
  mw_expfmt_set_histograms(p, limit, factor);
  if (mw_expfmt_step(p, step) == 1) mw_expfmt_abort(p);
  p = mw_expfmt_begin(c, b, copy, len, format, 4000, flags, 0, &st, err2, sizeof err2);
  mw_expfmt_set_histograms(p, limit, factor);
  int rc5 = mw_expfmt_step(p, 0);
  if (rc1 == 0 && (rc5 != 0 || mw_batch_len(b) != n1 || st.series_added != 0 || st.stale != 0))
    abort();
  mw_batch_free(b2);
  mw_scrapecache_free(c2);
  mw_batch_free(b);
  mw_scrapecache_free(c);
  free(copy);
  return 0;
}
