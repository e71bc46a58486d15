/* test_histogram.c: the histogram column of samples batches and histogram validation
 * (model/histogram.h, model/batch.h). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "model/batch.h"
#include "model/histogram.h"
#include "test.h"

static char err[256];

/* An integer histogram: zero bucket, positive [0,1] + [4], negative [-2]. Buckets
 * 2,3,1 (deltas 2,1,-2), negative 5, zero 4: count 15. */
static const mw_hspan_t ipos[] = {{0, 2}, {2, 1}};
static const int64_t ipd[] = {2, 1, -2};
static const mw_hspan_t ineg[] = {{-2, 1}};
static const int64_t ind[] = {5};

static mw_histogram_t int_hist(void) {
  return (mw_histogram_t){.schema = 3,
                          .zero_threshold = 0.001,
                          .count = 15,
                          .zero_count = 4,
                          .sum = 42.5,
                          .n_pos_spans = 2,
                          .pos_spans = ipos,
                          .n_pos = 3,
                          .pos_deltas = ipd,
                          .n_neg_spans = 1,
                          .neg_spans = ineg,
                          .n_neg = 1,
                          .neg_deltas = ind};
}

static void test_add_and_read(void) {
  mw_batch_t *b = mw_batch_new(NULL);
  CHECK(b);
  CHECK_INT(mw_batch_histograms(b), 0);
  CHECK_INT(mw_batch_add(b, 7, 1000, 1.5), 0);
  mw_histogram_t h = int_hist();
  CHECK_INT(mw_batch_add_histogram(b, 3, 2000, &h, err, sizeof err), 0);
  double fc[] = {1.5, 0.5};
  double cv[] = {0.1, 1, 10};
  mw_hspan_t fs[] = {{1, 2}};
  mw_histogram_t f = {.schema = MW_HIST_SCHEMA_CUSTOM,
                      .is_float = 1,
                      .reset_hint = MW_HIST_RESET_GAUGE,
                      .fcount = 2.5,
                      .sum = NAN,
                      .n_pos_spans = 1,
                      .pos_spans = fs,
                      .n_pos = 2,
                      .pos_counts = fc,
                      .n_custom = 3,
                      .custom_values = cv};
  CHECK_INT(mw_batch_add_histogram(b, 4, 3000, &f, err, sizeof err), 0);
  CHECK_INT(mw_batch_add_histogram_stale(b, 3, 4000, 0), 0);
  /* the caller's arrays are copied */
  fc[0] = 99;
  CHECK_INT(mw_batch_len(b), 1);
  CHECK_INT(mw_batch_histograms(b), 3);

  mw_hsample_t s;
  mw_batch_histogram(b, 0, &s);
  CHECK_INT(s.ref, 3);
  CHECK_INT(s.ts_ms, 2000);
  CHECK_INT(s.h.schema, 3);
  CHECK_INT(s.h.is_float, 0);
  CHECK_INT(s.h.count, 15);
  CHECK_INT(s.h.zero_count, 4);
  CHECK_DBL(s.h.zero_threshold, 0.001);
  CHECK_DBL(s.h.sum, 42.5);
  CHECK_INT(s.h.n_pos_spans, 2);
  CHECK_INT(s.h.pos_spans[1].offset, 2);
  CHECK_INT(s.h.pos_spans[1].length, 1);
  CHECK_INT(s.h.n_neg_spans, 1);
  CHECK_INT(s.h.neg_spans[0].offset, -2);
  CHECK_INT(s.h.pos_deltas[2], -2);
  CHECK_INT(s.h.neg_deltas[0], 5);
  CHECK_INT(s.h.n_custom, 0);
  double counts[8];
  int32_t idx[8];
  CHECK_INT(mw_histogram_buckets(&s.h, 1, counts, idx, 8), 3);
  CHECK_DBL(counts[0], 2);
  CHECK_DBL(counts[1], 3);
  CHECK_DBL(counts[2], 1);
  CHECK_INT(idx[0], 0);
  CHECK_INT(idx[1], 1);
  CHECK_INT(idx[2], 4);
  CHECK(!mw_histogram_is_stale(&s.h));

  mw_batch_histogram(b, 1, &s);
  CHECK_INT(s.ref, 4);
  CHECK_INT(s.h.is_float, 1);
  CHECK_INT(s.h.reset_hint, MW_HIST_RESET_GAUGE);
  CHECK_DBL(s.h.fcount, 2.5);
  CHECK(isnan(s.h.sum));
  CHECK_DBL(s.h.pos_counts[0], 1.5);
  CHECK_DBL(s.h.pos_counts[1], 0.5);
  CHECK_INT(s.h.n_custom, 3);
  CHECK_DBL(s.h.custom_values[2], 10);
  double lo, hi;
  mw_histogram_bounds(s.h.schema, 1, s.h.custom_values, s.h.n_custom, &lo, &hi);
  CHECK_DBL(lo, 0.1);
  CHECK_DBL(hi, 1);
  mw_histogram_bounds(s.h.schema, 3, s.h.custom_values, s.h.n_custom, &lo, &hi);
  CHECK_DBL(lo, 10);
  CHECK(isinf(hi));

  mw_batch_histogram(b, 2, &s);
  CHECK(mw_histogram_is_stale(&s.h));
  CHECK_INT(s.ts_ms, 4000);
  CHECK(!mw_batch_is_stale_value(NAN));

  mw_batch_truncate_histograms(b, 1);
  CHECK_INT(mw_batch_histograms(b), 1);
  CHECK_INT(mw_batch_add_histogram(b, 9, 5000, &h, err, sizeof err), 0);
  mw_batch_histogram(b, 1, &s);
  CHECK_INT(s.ref, 9);
  CHECK_INT(s.h.pos_deltas[0], 2);
  mw_batch_reset(b, NULL);
  CHECK_INT(mw_batch_histograms(b), 0);
  CHECK_INT(mw_batch_add_histogram(b, 1, 1, &h, err, sizeof err), 0);
  mw_batch_clear(b);
  CHECK_INT(mw_batch_histograms(b), 0);
  mw_batch_free(b);
}

/* Validation: each rule refuses with a message saying where. */
static void expect_invalid(mw_histogram_t h, const char *msg) {
  mw_batch_t *b = mw_batch_new(NULL);
  err[0] = 0;
  int rc = mw_batch_add_histogram(b, 1, 1, &h, err, sizeof err);
  size_t n = mw_batch_histograms(b);
  mw_batch_free(b);
  CHECK_INT(rc, -1);
  CHECK_INT(n, 0);
  if (!strstr(err, msg)) MW_FAIL("error \"%s\" lacks \"%s\"", err, msg);
}

/* The same for a stale marker, validated first: adding one that passes where it should
 * not may read through a NULL array. */
static void expect_invalid_stale(mw_histogram_t h, const char *msg) {
  CHECK(mw_histogram_is_stale(&h));
  int rc = mw_histogram_validate(&h, err, sizeof err);
  CHECK_INT(rc, -1);
  if (rc == 0) return;
  expect_invalid(h, msg);
}

static void test_validate(void) {
  mw_histogram_t h = int_hist();
  CHECK_INT(mw_histogram_validate(&h, err, sizeof err), 0);
  h.schema = 9;
  expect_invalid(h, "schema 9");
  h = int_hist();
  h.schema = -5;
  expect_invalid(h, "schema -5");
  h = int_hist();
  h.n_pos = 2;
  expect_invalid(h, "positive side: spans need 3 buckets, have 2 buckets");
  h = int_hist();
  mw_hspan_t bad[] = {{0, 2}, {-1, 1}};
  h.pos_spans = bad;
  expect_invalid(h, "positive side: span number 2 with offset -1");
  h = int_hist();
  int64_t neg[] = {2, -3, 1};
  h.pos_deltas = neg;
  expect_invalid(h, "positive side: bucket number 2 has observation count of -1");
  h = int_hist();
  h.count = 14;
  expect_invalid(h, "15 observations found in buckets, but the count field is 14");
  h.sum = NAN; /* NaN observations: count may exceed the buckets, not fall short */
  expect_invalid(h, "15 observations found in buckets");
  h.count = 16;
  CHECK_INT(mw_histogram_validate(&h, err, sizeof err), 0);
  h = int_hist();
  h.zero_threshold = -1;
  expect_invalid(h, "zero threshold -1");
  h = int_hist();
  h.reset_hint = 4;
  expect_invalid(h, "counter reset hint 4");
  h = int_hist();
  double cv[] = {1, 2};
  h.custom_values = cv;
  h.n_custom = 2;
  expect_invalid(h, "custom values given with schema 3");

  /* float histograms: negative counts refused, count not checked against buckets */
  double fc[] = {1, -0.5};
  mw_hspan_t fs[] = {{0, 2}};
  mw_histogram_t f = {.schema = 0,
                      .is_float = 1,
                      .fcount = 1,
                      .n_pos_spans = 1,
                      .pos_spans = fs,
                      .n_pos = 2,
                      .pos_counts = fc};
  expect_invalid(f, "positive side: bucket number 2 has observation count of -0.5");
  fc[1] = 5;
  CHECK_INT(mw_histogram_validate(&f, err, sizeof err), 0);
  f.fcount = -1;
  expect_invalid(f, "count -1");

  /* custom buckets */
  mw_histogram_t c = {.schema = MW_HIST_SCHEMA_CUSTOM,
                      .is_float = 1,
                      .fcount = 6,
                      .n_pos_spans = 1,
                      .pos_spans = fs,
                      .n_pos = 2,
                      .pos_counts = fc,
                      .n_custom = 2,
                      .custom_values = cv};
  fc[1] = 5;
  CHECK_INT(mw_histogram_validate(&c, err, sizeof err), 0);
  double dec[] = {2, 1};
  c.custom_values = dec;
  expect_invalid(c, "strictly increasing");
  double inf[] = {1, INFINITY};
  c.custom_values = inf;
  expect_invalid(c, "custom value 2 is inf");
  c.custom_values = cv;
  mw_hspan_t far[] = {{2, 2}};
  c.pos_spans = far;
  expect_invalid(c, "spans reach bucket 3, only 2 custom values");
  c.pos_spans = fs;
  c.zero_threshold = 0.5;
  expect_invalid(c, "custom buckets: zero bucket");
  c.zero_threshold = 0;
  c.n_neg_spans = 1;
  c.neg_spans = fs;
  c.n_neg = 2;
  c.neg_counts = fc;
  expect_invalid(c, "custom buckets: negative");

  /* a stale marker is valid whatever values it holds */
  mw_histogram_t st = {.schema = 99, .sum = mw_batch_stale_nan()};
  CHECK_INT(mw_histogram_validate(&st, err, sizeof err), 0);
  st.zero_threshold = -1;
  st.count = 3;
  CHECK_INT(mw_histogram_validate(&st, err, sizeof err), 0);
  /* ... but not whatever shape: its arrays are copied, written to the WAL and sent */
  expect_invalid_stale((mw_histogram_t){.sum = mw_batch_stale_nan(), .n_pos = 2},
                       "positive side: spans need 0 buckets, have 2 buckets");
  mw_hspan_t one[] = {{0, 3}};
  expect_invalid_stale(
      (mw_histogram_t){.sum = mw_batch_stale_nan(), .n_pos_spans = 1, .pos_spans = one, .n_pos = 3},
      "positive side: 3 buckets without bucket data");
  expect_invalid_stale((mw_histogram_t){.sum = mw_batch_stale_nan(), .n_custom = 2},
                       "custom values without data");
  expect_invalid_stale((mw_histogram_t){.sum = mw_batch_stale_nan(), .reset_hint = 4},
                       "counter reset hint 4");
  static mw_hspan_t many[MW_HIST_MAX_BUCKETS + 1]; /* empty spans: they need no bucket */
  expect_invalid_stale((mw_histogram_t){.sum = mw_batch_stale_nan(),
                                        .n_neg_spans = MW_HIST_MAX_BUCKETS + 1,
                                        .neg_spans = many},
                       "more than 65536 spans");
  /* spans without data, buckets without data */
  h = int_hist();
  h.pos_deltas = NULL;
  expect_invalid(h, "positive side: 3 buckets without bucket data");
}

/* Exponential bucket bounds (Prometheus's getBound): exact powers of two. */
static void test_bounds(void) {
  double lo, hi;
  mw_histogram_bounds(0, 1, NULL, 0, &lo, &hi);
  CHECK_DBL(lo, 1);
  CHECK_DBL(hi, 2);
  mw_histogram_bounds(0, 0, NULL, 0, &lo, &hi);
  CHECK_DBL(lo, 0.5);
  CHECK_DBL(hi, 1);
  mw_histogram_bounds(-2, 1, NULL, 0, &lo, &hi);
  CHECK_DBL(lo, 1);
  CHECK_DBL(hi, 16);
  mw_histogram_bounds(1, 1, NULL, 0, &lo, &hi);
  CHECK_DBL(lo, 1);
  CHECK_DBL(hi, 1.4142135623730951);
  mw_histogram_bounds(3, 8, NULL, 0, &lo, &hi);
  CHECK_DBL(hi, 2);
  mw_histogram_bounds(8, -256, NULL, 0, &lo, &hi);
  CHECK_DBL(hi, 0.5);
}

/* A batch built from FFI calls owns its series table. */
static void test_owned(void) {
  mw_batch_t *b = mw_ffi_batch_new_owned();
  CHECK(b);
  const char pairs[] = "__name__\xffh\xffjob\xffx\xff";
  int64_t ref = mw_ffi_batch_series_add(b, pairs, sizeof pairs - 1, err, sizeof err);
  CHECK(ref >= 0);
  CHECK_INT(mw_ffi_batch_series_add(b, pairs, sizeof pairs - 1, err, sizeof err), ref);
  mw_histogram_t h = int_hist();
  CHECK_INT(mw_ffi_batch_add_histogram(b, (uint32_t)ref, 5, &h, err, sizeof err), 0);
  mw_hsample_t s;
  CHECK_INT(mw_ffi_batch_histogram(b, 0, &s), 0);
  CHECK_INT(mw_ffi_batch_histogram(b, 1, &s), -1);
  size_t len;
  CHECK(mw_ffi_batch_series_labels(b, (uint32_t)ref, &len) != NULL);
  CHECK(mw_ffi_batch_series_add(b, "a\xff", 2, err, sizeof err) < 0);
  mw_ffi_batch_free(b);
  mw_batch_t *plain = mw_ffi_batch_new();
  CHECK(mw_ffi_batch_series_add(plain, pairs, sizeof pairs - 1, err, sizeof err) < 0);
  CHECK_STR(err, "the batch does not own its series table");
  mw_ffi_batch_free(plain);
}

int main(void) {
  MW_RUN(test_add_and_read);
  MW_RUN(test_validate);
  MW_RUN(test_bounds);
  MW_RUN(test_owned);
  return mw_test_summary();
}
