/* Fuzz target: the exposition parser and scrape cache. The first byte picks
 * the format and flags; the rest is the body, parsed twice through one cache
 * (cold, then steady state) and once more through a fresh cache, and each
 * result is checked for consistency. A body that parses is then written
 * again with every name quoted (Prometheus 3's UTF-8 syntax), which must
 * parse to the same series and values. The body is also parsed in steps of a
 * few bytes (same outcome as in one go), and a parse cancelled midway must
 * leave the cache as it was. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/labels.h"
#include "exposition/parse.h"
#include "exposition/scrapecache.h"
#include "model/batch.h"
#include "model/series.h"

/* Every name valid under the scheme (legacy: the Prometheus 2 grammars). */
static void check_batch(mw_batch_t *b, int legacy) {
  mw_series_t *s = mw_batch_series(b);
  for (size_t i = 0; i < mw_batch_len(b); i++) {
    size_t len, pos = 0;
    const uint8_t *enc = mw_series_labels(s, mw_batch_refs(b)[i], &len);
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
        /* Strictly increasing names. */
        uint32_t m = prev.name_len < l.name_len ? prev.name_len : l.name_len;
        int c = memcmp(prev.name, l.name, m);
        if (c > 0 || (c == 0 && prev.name_len >= l.name_len)) abort();
      }
      prev = l;
      n++;
    }
    if (!has_name) abort();
    if (rc != 0 || n == 0) abort();
  }
}

static char *put_quoted(char *o, const char *s, size_t n) {
  *o++ = '"';
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '"' || s[i] == '\\' || s[i] == '\n') {
      *o++ = '\\';
      *o++ = s[i] == '\n' ? 'n' : s[i];
    } else {
      *o++ = s[i];
    }
  }
  *o++ = '"';
  return o;
}

/* Writes b's samples as text lines {"name","label"="value",...} value and
 * parses them in a fresh cache: same label sets and values, in order. */
static void check_quoted_roundtrip(mw_batch_t *b) {
  mw_series_t *s = mw_batch_series(b);
  size_t n = mw_batch_len(b), cap = 1;
  for (size_t i = 0; i < n; i++) {
    size_t len;
    mw_series_labels(s, mw_batch_refs(b)[i], &len);
    cap += 3 * len + 64;
  }
  char *text = malloc(cap), *o = text;
  for (size_t i = 0; i < n; i++) {
    size_t len, pos = 0;
    const uint8_t *enc = mw_series_labels(s, mw_batch_refs(b)[i], &len);
    mw_label_t l, name;
    if (!mw_labels_get(enc, len, "__name__", 8, &name)) abort();
    *o++ = '{';
    o = put_quoted(o, name.value, name.value_len);
    while (mw_labels_next(enc, len, &pos, &l) == 1) {
      if (l.name_len == 8 && memcmp(l.name, "__name__", 8) == 0) continue;
      *o++ = ',';
      o = put_quoted(o, l.name, l.name_len);
      *o++ = '=';
      o = put_quoted(o, l.value, l.value_len);
    }
    double v = mw_batch_values(b)[i];
    if (isnan(v))
      o += sprintf(o, "} NaN\n");
    else if (isinf(v))
      o += sprintf(o, "} %cInf\n", v > 0 ? '+' : '-');
    else
      o += sprintf(o, "} %.17g\n", v);
  }
  mw_scrapecache_t *c = mw_scrapecache_new();
  mw_batch_t *q = mw_batch_new(NULL);
  char err[256];
  if (mw_expfmt_parse(c, q, text, (size_t)(o - text), MW_EXPFMT_TEXT, 0, 0, NULL, err,
                      sizeof err) != 0) {
    if (strcmp(err, "out of memory") != 0) abort();
  } else {
    if (mw_batch_len(q) != n) abort();
    for (size_t i = 0; i < n; i++) {
      size_t l1, l2;
      const uint8_t *e1 = mw_series_labels(s, mw_batch_refs(b)[i], &l1);
      const uint8_t *e2 = mw_series_labels(mw_batch_series(q), mw_batch_refs(q)[i], &l2);
      if (l1 != l2 || memcmp(e1, e2, l1) != 0) abort();
      double v1 = mw_batch_values(b)[i], v2 = mw_batch_values(q)[i];
      if (memcmp(&v1, &v2, sizeof v1) != 0) abort();
    }
  }
  mw_batch_free(q);
  mw_scrapecache_free(c);
  free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  /* Corpus files that are plain exposition bodies start with a printable
   * byte: treat those as text format, whole. */
  int format = MW_EXPFMT_TEXT;
  uint32_t flags = 0;
  const char *body = (const char *)data;
  size_t len = size;
  if (data[0] < 0x08 || (data[0] >= 0x10 && data[0] < 0x18)) {
    format = (data[0] & 1) ? MW_EXPFMT_OPENMETRICS : MW_EXPFMT_TEXT;
    flags = (data[0] & 2) ? MW_EXPFMT_SKIP_CREATED : 0;
    flags |= (data[0] & 4) ? MW_EXPFMT_IGNORE_TIMESTAMPS : 0;
    flags |= (data[0] & 0x10) ? MW_EXPFMT_LEGACY_NAMES : 0; /* legacy validation scheme */
    body++;
    len--;
  } else if (size > 6 && memcmp(data + size - 6, "# EOF\n", 6) == 0) {
    format = MW_EXPFMT_OPENMETRICS;
  }
  /* Exact-size copy so ASan sees any read past the end. */
  char *copy = malloc(len ? len : 1);
  if (len) memcpy(copy, body, len);
  mw_scrapecache_t *c = mw_scrapecache_new();
  mw_batch_t *b = mw_batch_new(NULL);
  char err[256];
  mw_expfmt_stats_t st1, st2;
  int rc1 = mw_expfmt_parse(c, b, copy, len, format, 1000, flags, &st1, err, sizeof err);
  if (rc1 != 0 && strncmp(err, "line ", 5) != 0 && strcmp(err, "out of memory") != 0) abort();
  int legacy = (flags & MW_EXPFMT_LEGACY_NAMES) != 0;
  check_batch(b, legacy);
  size_t n1 = mw_batch_len(b);
  int rc2 = mw_expfmt_parse(c, b, copy, len, format, 2000, flags, &st2, err, sizeof err);
  check_batch(b, legacy);
  if (rc1 == 0) {
    /* Steady state: same outcome, same samples, nothing new, nothing stale. */
    if (rc2 != 0 || mw_batch_len(b) != n1 || st2.series_added != 0 || st2.stale != 0) abort();
  }
  /* A fresh cache agrees with the warm one. */
  mw_scrapecache_t *c2 = mw_scrapecache_new();
  mw_batch_t *b2 = mw_batch_new(NULL);
  int rc3 = mw_expfmt_parse(c2, b2, copy, len, format, 2000, flags, NULL, err, sizeof err);
  if (rc3 != rc1) abort();
  if (rc3 == 0) {
    if (mw_batch_len(b2) != mw_batch_len(b)) abort();
    for (size_t i = 0; i < mw_batch_len(b); i++) {
      size_t l1, l2;
      const uint8_t *e1 = mw_series_labels(mw_batch_series(b), mw_batch_refs(b)[i], &l1);
      const uint8_t *e2 = mw_series_labels(mw_batch_series(b2), mw_batch_refs(b2)[i], &l2);
      if (l1 != l2 || memcmp(e1, e2, l1) != 0) abort();
      double v1 = mw_batch_values(b)[i], v2 = mw_batch_values(b2)[i];
      if (memcmp(&v1, &v2, sizeof v1) != 0) abort();
      if (mw_batch_is_stale_value(v1)) abort();
    }
    check_quoted_roundtrip(b2);
  }
  /* In steps (a few bytes each, so that steps end anywhere in a line): the
   * same outcome, error and samples as in one go. */
  size_t step = 1 + (size_t)data[size - 1] % 64;
  char err4[256];
  mw_scrapecache_t *c4 = mw_scrapecache_new();
  mw_batch_t *b4 = mw_batch_new(NULL);
  mw_expfmt_stats_t st4;
  mw_expfmt_parser_t *p4 =
      mw_expfmt_begin(c4, b4, copy, len, format, 2000, flags, 0, &st4, err4, sizeof err4);
  int rc4 = p4 ? 1 : -1;
  while (rc4 == 1)
    rc4 = mw_expfmt_step(p4, step);
  if (rc4 != rc3) abort();
  if (rc4 != 0 && strcmp(err4, err) != 0) abort();
  if (rc4 == 0) {
    if (mw_batch_len(b4) != mw_batch_len(b2)) abort();
    for (size_t i = 0; i < mw_batch_len(b4); i++) {
      size_t l1, l2;
      const uint8_t *e1 = mw_series_labels(mw_batch_series(b4), mw_batch_refs(b4)[i], &l1);
      const uint8_t *e2 = mw_series_labels(mw_batch_series(b2), mw_batch_refs(b2)[i], &l2);
      if (l1 != l2 || memcmp(e1, e2, l1) != 0) abort();
      if (memcmp(&mw_batch_values(b4)[i], &mw_batch_values(b2)[i], sizeof(double)) != 0) abort();
    }
  }
  /* A parse cancelled midway is forgotten: the warm cache then parses the
   * body as its steady state again. */
  mw_expfmt_parser_t *p5 =
      mw_expfmt_begin(c, b, copy, len, format, 3000, flags, 0, &st4, err4, sizeof err4);
  if (p5 && mw_expfmt_step(p5, step) == 1) mw_expfmt_abort(p5);
  int rc5 = mw_expfmt_parse(c, b, copy, len, format, 4000, flags, &st4, err4, sizeof err4);
  if (rc1 == 0 && (rc5 != 0 || mw_batch_len(b) != n1 || st4.series_added != 0 || st4.stale != 0))
    abort();
  mw_batch_free(b4);
  mw_scrapecache_free(c4);
  mw_batch_free(b2);
  mw_scrapecache_free(c2);
  mw_batch_free(b);
  mw_scrapecache_free(c);
  free(copy);
  return 0;
}
