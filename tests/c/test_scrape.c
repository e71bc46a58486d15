/* Scrape targets: target labels as Prometheus adds them, limits, report series, staleness. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/batch.h"
#include "scrape/scrape.h"
#include "test.h"

static const mw_scrape_opts_t defaults = {.honor_timestamps = 1, .fallback_format = MW_EXPFMT_TEXT};

/* "name=value,name=value" of sample i. */
static const char *labels_of(mw_batch_t *b, size_t i) {
  static char out[1024];
  size_t len, pos = 0, o = 0;
  const uint8_t *enc = mw_ffi_batch_labels(b, i, &len);
  const char *n, *v;
  size_t nl, vl;
  out[0] = '\0';
  while (mw_ffi_labels_next(enc, len, &pos, &n, &nl, &v, &vl) == 1)
    o += (size_t)snprintf(out + o, sizeof out - o, "%s%.*s=%.*s", o ? "," : "", (int)nl, n, (int)vl,
                          v);
  return out;
}

/* The labels of the sample whose __name__ is name (first one), or NULL. */
static const char *find(mw_batch_t *b, const char *name, double *value) {
  char want[128];
  snprintf(want, sizeof want, "__name__=%s,", name);
  for (size_t i = 0; i < mw_ffi_batch_len(b); i++) {
    const char *l = labels_of(b, i);
    if (strncmp(l, want, strlen(want)) == 0 || strcmp(l, want) == 0) {
      if (value) *value = mw_ffi_batch_value(b, i);
      return l;
    }
  }
  return NULL;
}

#define TARGET "job\xffnode\xffinstance\xffhost:9100\xff__address__\xffhost:9100\xff"

static mw_scrape_target_t *target(const mw_scrape_opts_t *o) {
  char err[256];
  mw_scrape_target_t *t = mw_ffi_scrape_target_new(TARGET, sizeof TARGET - 1, o, err, sizeof err);
  if (!t) fprintf(stderr, "%s\n", err);
  return t;
}

static void test_target_labels_override_and_export(void) {
  mw_scrape_target_t *t = target(&defaults);
  char err[256];
  const char *body = "a{job=\"app\"} 1\nb 2\nc{job=\"x\",exported_job=\"y\"} 3\n";
  CHECK_INT(mw_ffi_scrape_parse(t, body, strlen(body), "text/plain; version=0.0.4", 1000, NULL, err,
                                sizeof err),
            0);
  mw_batch_t *b = mw_ffi_scrape_batch(t);
  CHECK_INT(mw_ffi_batch_len(b), 3);
  CHECK_STR(find(b, "a", NULL), "__name__=a,exported_job=app,instance=host:9100,job=node");
  CHECK_STR(find(b, "b", NULL), "__name__=b,instance=host:9100,job=node");
  CHECK_STR(find(b, "c", NULL),
            "__name__=c,exported_exported_job=x,exported_job=y,instance=host:9100,job=node");
  mw_ffi_scrape_target_free(t);
}

static void test_honor_labels(void) {
  mw_scrape_opts_t o = defaults;
  o.honor_labels = 1;
  mw_scrape_target_t *t = target(&o);
  char err[256];
  const char *body = "a{job=\"app\"} 1\n";
  CHECK_INT(mw_ffi_scrape_parse(t, body, strlen(body), NULL, 1000, NULL, err, sizeof err), 0);
  CHECK_STR(find(mw_ffi_scrape_batch(t), "a", NULL), "__name__=a,instance=host:9100,job=app");
  mw_ffi_scrape_target_free(t);
}

static void test_label_limits_fail_the_scrape(void) {
  mw_scrape_opts_t o = defaults;
  o.label_limit = 3;
  mw_scrape_target_t *t = target(&o);
  char err[256] = "";
  const char *body = "a{x=\"1\"} 1\n";
  CHECK_INT(mw_ffi_scrape_parse(t, body, strlen(body), NULL, 1000, NULL, err, sizeof err), -1);
  CHECK_STR(err, "line 1: label_limit exceeded (metric: a, number of labels: 4, limit: 3)");
  mw_ffi_scrape_target_free(t);

  o = defaults;
  o.label_value_length_limit = 4;
  t = target(&o);
  CHECK_INT(mw_ffi_scrape_parse(t, body, strlen(body), NULL, 1000, NULL, err, sizeof err), -1);
  CHECK(strstr(err, "label_value_length_limit exceeded (metric: a, label name: instance, value: "
                    "\"host:9100\", length: 9, limit: 4)") != NULL);
  mw_ffi_scrape_target_free(t);
}

static void test_sample_limit(void) {
  mw_scrape_opts_t o = defaults;
  o.sample_limit = 2;
  mw_scrape_target_t *t = target(&o);
  char err[256] = "";
  const char *ok = "a 1\nb 2\n", *over = "a 1\nb 2\nc 3\n";
  CHECK_INT(mw_ffi_scrape_parse(t, ok, strlen(ok), NULL, 1000, NULL, err, sizeof err), 0);
  CHECK_INT(mw_ffi_scrape_parse(t, over, strlen(over), NULL, 2000, NULL, err, sizeof err), -1);
  CHECK_STR(err, "sample limit exceeded");
  mw_batch_t *b = mw_ffi_scrape_batch(t);
  CHECK(mw_ffi_batch_len(b) >= 2);
  for (size_t i = 0; i < mw_ffi_batch_len(b); i++)
    CHECK(mw_ffi_batch_is_stale(b, i));
  /* a big body stops at the first sample past the limit, in its first step */
  size_t cap = 200000 * 16, blen = 0;
  char *big = malloc(cap);
  for (int i = 0; i < 200000; i++)
    blen += (size_t)snprintf(big + blen, cap - blen, "m{i=\"%d\"} 1\n", i);
  mw_expfmt_stats_t st;
  CHECK_INT(mw_ffi_scrape_parse_begin(t, big, blen, NULL, 3000, &st, err, sizeof err), 0);
  CHECK_INT(mw_ffi_scrape_parse_step(t, 1 << 20, err, sizeof err), -1);
  CHECK_STR(err, "sample limit exceeded");
  CHECK_INT(st.parsed, 3);
  free(big);
  mw_ffi_scrape_target_free(t);
}

static void test_report_series(void) {
  mw_scrape_target_t *t = target(&defaults);
  char err[256];
  double v[8] = {1, 0.25, 10, 10, 3, 10, 0, 1234};
  CHECK_INT(mw_ffi_scrape_report(t, 5000, v, 5, err, sizeof err), 0);
  mw_batch_t *b = mw_ffi_scrape_report_batch(t);
  CHECK_INT(mw_ffi_batch_len(b), 5);
  double up = 0, dur = 0;
  CHECK_STR(find(b, "up", &up), "__name__=up,instance=host:9100,job=node");
  CHECK_DBL(up, 1);
  CHECK(find(b, "scrape_duration_seconds", &dur) != NULL);
  CHECK_DBL(dur, 0.25);
  CHECK_INT(mw_ffi_batch_ts(b, 0), 5000);
  CHECK_INT(mw_ffi_scrape_report(t, 6000, v, 8, err, sizeof err), 0);
  CHECK_INT(mw_ffi_batch_len(b), 8);
  double body = 0;
  CHECK(find(b, "scrape_body_size_bytes", &body) != NULL);
  CHECK_DBL(body, 1234);
  mw_ffi_scrape_target_free(t);
}

static void test_gone_series_and_target_go_stale(void) {
  mw_scrape_target_t *t = target(&defaults);
  char err[256];
  double v[5] = {1, 0.1, 2, 2, 2};
  const char *two = "a 1\nb 2\n", *one = "a 1\n";
  CHECK_INT(mw_ffi_scrape_parse(t, two, strlen(two), NULL, 1000, NULL, err, sizeof err), 0);
  CHECK_INT(mw_ffi_scrape_report(t, 1000, v, 5, err, sizeof err), 0);
  mw_expfmt_stats_t st;
  CHECK_INT(mw_ffi_scrape_parse(t, one, strlen(one), NULL, 2000, &st, err, sizeof err), 0);
  CHECK_INT(st.stale, 1);
  mw_batch_t *b = mw_ffi_scrape_batch(t);
  CHECK_INT(mw_ffi_batch_len(b), 2);
  double bv;
  CHECK(find(b, "b", &bv) != NULL);
  CHECK(mw_ffi_batch_is_stale(b, 1) || mw_ffi_batch_is_stale(b, 0));
  CHECK_INT(mw_ffi_scrape_stale(t, 3000), 0);
  CHECK_INT(mw_ffi_batch_len(mw_ffi_scrape_batch(t)), 1);
  CHECK(mw_ffi_batch_is_stale(mw_ffi_scrape_batch(t), 0));
  CHECK_INT(mw_ffi_batch_len(mw_ffi_scrape_report_batch(t)), 5);
  for (size_t i = 0; i < 5; i++)
    CHECK(mw_ffi_batch_is_stale(mw_ffi_scrape_report_batch(t), i));
  mw_ffi_scrape_target_free(t);
}

static void test_failed_scrape_marks_previous_series_stale(void) {
  mw_scrape_target_t *t = target(&defaults);
  char err[256];
  const char *two = "a 1\nb 2\n", *bad = "a 1\nb{ 2\n";
  CHECK_INT(mw_ffi_scrape_parse(t, two, strlen(two), NULL, 1000, NULL, err, sizeof err), 0);
  CHECK_INT(mw_ffi_scrape_parse(t, bad, strlen(bad), NULL, 2000, NULL, err, sizeof err), -1);
  CHECK(strncmp(err, "line 2: ", 8) == 0);
  mw_batch_t *b = mw_ffi_scrape_batch(t);
  CHECK_INT(mw_ffi_batch_len(b), 2);
  CHECK(mw_ffi_batch_is_stale(b, 0) && mw_ffi_batch_is_stale(b, 1));
  CHECK_INT(mw_ffi_scrape_fail(t, 3000), 0);
  CHECK_INT(mw_ffi_batch_len(b), 0); /* already stale: nothing twice */
  mw_ffi_scrape_target_free(t);
}

static void test_steady_state_keeps_refs(void) {
  mw_scrape_target_t *t = target(&defaults);
  char err[256];
  const char *body = "a{x=\"1\"} 1\nb 2\n";
  CHECK_INT(mw_ffi_scrape_parse(t, body, strlen(body), NULL, 1000, NULL, err, sizeof err), 0);
  uint32_t r0 = mw_ffi_batch_ref(mw_ffi_scrape_batch(t), 0);
  mw_expfmt_stats_t st;
  CHECK_INT(mw_ffi_scrape_parse(t, body, strlen(body), NULL, 2000, &st, err, sizeof err), 0);
  CHECK_INT(mw_ffi_batch_ref(mw_ffi_scrape_batch(t), 0), r0);
  CHECK_INT(st.series_added, 0);
  CHECK_INT(mw_ffi_scrape_series(t), 2);
  mw_ffi_scrape_target_free(t);
}

/* Between scrapes a target's batches hold no memory (mw_ffi_scrape_clear);
 * the next scrape allocates again (as much as before) and keeps the refs,
 * and a target removed after a clear still marks every series stale. */
static void test_clear_frees_batches(void) {
  mw_scrape_target_t *t = target(&defaults);
  char err[256], *body = malloc(1000 * 32), *p = body;
  for (int i = 0; i < 1000; i++)
    p += sprintf(p, "m{i=\"%d\"} %d\n", i, i);
  size_t len = (size_t)(p - body);
  double v[5] = {1, 0.1, 1000, 1000, 1000};
  CHECK_INT(mw_ffi_scrape_parse(t, body, len, NULL, 1000, NULL, err, sizeof err), 0);
  CHECK_INT(mw_ffi_scrape_report(t, 1000, v, 5, err, sizeof err), 0);
  mw_batch_t *b = mw_ffi_scrape_batch(t);
  uint32_t r999 = mw_ffi_batch_ref(b, 999);
  size_t full = mw_ffi_scrape_mem(t), bmem = mw_batch_mem(b);
  CHECK(bmem >= 1000 * 20);
  mw_ffi_scrape_clear(t);
  CHECK_INT(mw_ffi_batch_len(b), 0);
  CHECK_INT(mw_ffi_batch_len(mw_ffi_scrape_report_batch(t)), 0);
  CHECK(mw_ffi_scrape_mem(t) <= full - bmem);
  mw_expfmt_stats_t st;
  CHECK_INT(mw_ffi_scrape_parse(t, body, len, NULL, 2000, &st, err, sizeof err), 0);
  CHECK_INT(st.series_added, 0);
  CHECK_INT(mw_ffi_batch_len(b), 1000);
  CHECK_INT(mw_ffi_batch_ref(b, 999), r999);
  CHECK_DBL(mw_ffi_batch_value(b, 999), 999);
  CHECK_INT(mw_batch_mem(b), bmem);
  mw_ffi_scrape_clear(t);
  CHECK_INT(mw_ffi_scrape_stale(t, 3000), 0);
  CHECK_INT(mw_ffi_batch_len(b), 1000);
  for (size_t i = 0; i < 1000; i++)
    CHECK(mw_ffi_batch_is_stale(b, i));
  CHECK_INT(mw_ffi_batch_len(mw_ffi_scrape_report_batch(t)), 5);
  mw_ffi_scrape_target_free(t);
  free(body);
}

/* Report series bypass the label limits (Prometheus's report series are not
 * checked): a scrape that fails on a limit still writes up 0 and the rest. */
static void test_report_series_bypass_label_limits(void) {
  mw_scrape_opts_t o = defaults;
  o.label_limit = 1;
  o.label_name_length_limit = 2;
  o.label_value_length_limit = 2;
  mw_scrape_target_t *t = target(&o);
  char err[256] = "";
  const char *body = "a 1\n";
  CHECK_INT(mw_ffi_scrape_parse(t, body, strlen(body), NULL, 1000, NULL, err, sizeof err), -1);
  CHECK(strstr(err, "label_limit exceeded") != NULL);
  double v[8] = {0, 0.01, 0, 0, 0, 10, 0, 4};
  CHECK_INT(mw_ffi_scrape_report(t, 1000, v, 8, err, sizeof err), 0);
  mw_batch_t *b = mw_ffi_scrape_report_batch(t);
  CHECK_INT(mw_ffi_batch_len(b), 8);
  double up = -1;
  CHECK_STR(find(b, "up", &up), "__name__=up,instance=host:9100,job=node");
  CHECK_DBL(up, 0);
  CHECK(find(b, "scrape_body_size_bytes", NULL) != NULL);
  /* honor_labels does not change them either */
  o = defaults;
  o.honor_labels = 1;
  mw_ffi_scrape_target_free(t);
  t = target(&o);
  CHECK_INT(mw_ffi_scrape_report(t, 1000, v, 5, err, sizeof err), 0);
  CHECK_STR(find(mw_ffi_scrape_report_batch(t), "up", NULL),
            "__name__=up,instance=host:9100,job=node");
  mw_ffi_scrape_target_free(t);
}

/* honor_labels and the label limits change in place: the next scrape labels
 * and checks every series again, as a new target would; a series whose labels
 * changed is a new one and the old one goes stale; unchanged series keep
 * their refs. */
static void test_label_options_change_in_place(void) {
  mw_scrape_target_t *t = target(&defaults);
  char err[256] = "";
  const char *body = "a{job=\"app\"} 1\nb 2\n";
  CHECK_INT(mw_ffi_scrape_parse(t, body, strlen(body), NULL, 1000, NULL, err, sizeof err), 0);
  mw_batch_t *b = mw_ffi_scrape_batch(t);
  CHECK_STR(find(b, "a", NULL), "__name__=a,exported_job=app,instance=host:9100,job=node");
  uint32_t rb = mw_ffi_batch_ref(b, 1);
  mw_scrape_opts_t o = defaults;
  o.honor_labels = 1;
  mw_ffi_scrape_target_set_opts(t, &o);
  mw_expfmt_stats_t st;
  CHECK_INT(mw_ffi_scrape_parse(t, body, strlen(body), NULL, 2000, &st, err, sizeof err), 0);
  CHECK_INT(st.series_added, 1);
  CHECK_INT(st.stale, 1);
  CHECK_INT(mw_ffi_batch_len(b), 3);
  CHECK_STR(labels_of(b, 0), "__name__=a,instance=host:9100,job=app");
  CHECK_INT(mw_ffi_batch_ref(b, 1), rb);
  CHECK_STR(labels_of(b, 2), "__name__=a,exported_job=app,instance=host:9100,job=node");
  CHECK(mw_ffi_batch_is_stale(b, 2));
  /* a tighter limit applies to the series already cached */
  o.label_limit = 2;
  mw_ffi_scrape_target_set_opts(t, &o);
  CHECK_INT(mw_ffi_scrape_parse(t, body, strlen(body), NULL, 3000, NULL, err, sizeof err), -1);
  CHECK(strstr(err, "label_limit exceeded (metric: a, number of labels: 3, limit: 2)") != NULL);
  mw_ffi_scrape_target_free(t);
}

static void test_bad_target_label(void) {
  char err[256];
  const char bad[] = "0bad\xffv\xff";
  CHECK(mw_ffi_scrape_target_new(bad, sizeof bad - 1, &defaults, err, sizeof err) == NULL);
  CHECK_STR(err, "invalid target label name \"0bad\"");
}

/* metric_name_validation_scheme: utf8 takes quoted names and UTF-8 target
 * label names; legacy (the zero value, Alloy's default) refuses both, and a
 * target keeps the scheme it was made with. */
static void test_utf8_names(void) {
  char err[256];
  const char labels[] = "my.target\xffv\xffjob\xffj\xff";
  const char *body = "{\"my.metric\",\"my.label\"=\"x\"} 1\n";
  mw_scrape_opts_t utf8 = defaults;
  utf8.utf8_names = 1;
  mw_scrape_target_t *t =
      mw_ffi_scrape_target_new(labels, sizeof labels - 1, &utf8, err, sizeof err);
  if (!t) MW_FAIL("%s", err);
  mw_ffi_scrape_target_set_opts(t, &defaults); /* keeps utf8_names */
  for (int round = 0; round < 2; round++) {
    if (mw_ffi_scrape_parse(t, body, strlen(body), "text/plain; version=1.0.0", 1000, NULL, err,
                            sizeof err) != 0)
      MW_FAIL("%s", err);
    CHECK_STR(labels_of(mw_ffi_scrape_batch(t), 0),
              "__name__=my.metric,job=j,my.label=x,my.target=v");
  }
  mw_ffi_scrape_target_free(t);
  CHECK(mw_ffi_scrape_target_new(labels, sizeof labels - 1, &defaults, err, sizeof err) == NULL);
  CHECK_STR(err, "invalid target label name \"my.target\"");
  t = target(&defaults);
  CHECK_INT(mw_ffi_scrape_parse(t, body, strlen(body), "text/plain", 1000, NULL, err, sizeof err),
            -1);
  CHECK_STR(err,
            "line 1: metric name \"my.metric\" is not valid under the legacy validation scheme");
  const char *legacy_ok = "{\"up\",\"code\"=\"200\"} 1\n";
  CHECK_INT(mw_ffi_scrape_parse(t, legacy_ok, strlen(legacy_ok), "text/plain", 2000, NULL, err,
                                sizeof err),
            0);
  CHECK_STR(find(mw_ffi_scrape_batch(t), "up", NULL),
            "__name__=up,code=200,instance=host:9100,job=node");
  mw_ffi_scrape_target_free(t);
}

int main(void) {
  MW_RUN(test_target_labels_override_and_export);
  MW_RUN(test_honor_labels);
  MW_RUN(test_label_limits_fail_the_scrape);
  MW_RUN(test_sample_limit);
  MW_RUN(test_report_series);
  MW_RUN(test_gone_series_and_target_go_stale);
  MW_RUN(test_failed_scrape_marks_previous_series_stale);
  MW_RUN(test_steady_state_keeps_refs);
  MW_RUN(test_clear_frees_batches);
  MW_RUN(test_bad_target_label);
  MW_RUN(test_report_series_bypass_label_limits);
  MW_RUN(test_label_options_change_in_place);
  MW_RUN(test_utf8_names);
  return mw_test_summary();
}
