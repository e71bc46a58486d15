/* test_rwmeta.c: remote_write's metadata set: what it collects from scrape
 * targets (the last scrape's families only), deduplication across targets,
 * order, and metadata-only requests cut at a size. */
#include <stdio.h>
#include <string.h>

#include "ffi.h"
#include "remote.pb-c.h"
#include "remote/encode.h"
#include "test.h"

static const mw_scrape_opts_t opts = {.honor_timestamps = 1, .fallback_format = MW_EXPFMT_TEXT};
#define OM "application/openmetrics-text; version=1.0.0"
#define TEXT "text/plain; version=0.0.4"

static mw_scrape_target_t *scraped(const char *labels, const char *body, const char *ctype) {
  char err[256];
  mw_scrape_target_t *t = mw_ffi_scrape_target_new(labels, strlen(labels), &opts, err, sizeof err);
  if (!t) return NULL;
  if (mw_ffi_scrape_parse(t, body, strlen(body), ctype, 1000, NULL, err, sizeof err) != 0) {
    fprintf(stderr, "parse: %s\n", err);
    mw_ffi_scrape_target_free(t);
    return NULL;
  }
  return t;
}

/* Entry i of m as "type name|help|unit". */
static const char *entry(mw_rwmeta_t *m, size_t i) {
  static char out[512];
  int type;
  const char *name, *help, *unit;
  if (mw_ffi_rwmeta_get(m, i, &type, &name, &help, &unit) != 0) return "(none)";
  snprintf(out, sizeof out, "%d %s|%s|%s", type, name, help, unit);
  return out;
}

static const char *const body_a = "# HELP http_requests Requests \\\\ served.\n"
                                  "# TYPE http_requests counter\n"
                                  "# UNIT http_requests \n"
                                  "http_requests_total 3\n"
                                  "# TYPE temp_celsius gauge\n"
                                  "# UNIT temp_celsius celsius\n"
                                  "# HELP temp_celsius Temperature.\n"
                                  "temp_celsius 21.5\n"
                                  "# EOF\n";
static const char *const body_b = "# HELP temp_celsius Temperature.\n"
                                  "# TYPE temp_celsius gauge\n"
                                  "temp_celsius 20\n"
                                  "# HELP a_first Sorted first.\n"
                                  "# TYPE a_first untyped\n"
                                  "a_first 1\n";

static void test_collect_dedup_sort(void) {
  char err[256];
  mw_scrape_target_t *a = scraped("job\xff"
                                  "a\xff",
                                  body_a, OM);
  mw_scrape_target_t *a2 = scraped("job\xff"
                                   "a2\xff",
                                   body_a, OM);
  mw_scrape_target_t *b = scraped("job\xff"
                                  "b\xff",
                                  body_b, TEXT);
  CHECK(a && a2 && b);
  mw_rwmeta_t *m = mw_ffi_rwmeta_new();
  CHECK(m);
  CHECK_INT(mw_ffi_rwmeta_len(m), 0);
  CHECK_INT(mw_ffi_rwmeta_add_cache(m, mw_ffi_scrape_target_cache(a), err, sizeof err), 0);
  CHECK_INT(mw_ffi_rwmeta_add_cache(m, mw_ffi_scrape_target_cache(a2), err, sizeof err), 0);
  CHECK_INT(mw_ffi_rwmeta_add_cache(m, mw_ffi_scrape_target_cache(b), err, sizeof err), 0);
  /* a and a2 give the same two entries once; b's temp_celsius has no unit:
   * a distinct entry, as Prometheus keys on all four fields. */
  CHECK_INT(mw_ffi_rwmeta_len(m), 4);
  CHECK_STR(entry(m, 0), "0 a_first|Sorted first.|");
  CHECK_STR(entry(m, 1), "1 http_requests|Requests \\ served.|");
  CHECK_STR(entry(m, 2), "2 temp_celsius|Temperature.|");
  CHECK_STR(entry(m, 3), "2 temp_celsius|Temperature.|celsius");
  CHECK_STR(entry(m, 4), "(none)");
  /* A new round starts empty. */
  mw_ffi_rwmeta_clear(m);
  CHECK_INT(mw_ffi_rwmeta_len(m), 0);
  CHECK_INT(mw_ffi_rwmeta_add_cache(m, mw_ffi_scrape_target_cache(b), err, sizeof err), 0);
  CHECK_INT(mw_ffi_rwmeta_len(m), 2);
  CHECK_INT(mw_ffi_rwmeta_add(m, 8, "x", 1, "", 0, "", 0, err, sizeof err), -1);
  CHECK_STR(err, "invalid metric type 8");
  mw_ffi_rwmeta_free(m);
  mw_ffi_scrape_target_free(a);
  mw_ffi_scrape_target_free(a2);
  mw_ffi_scrape_target_free(b);
}

/* Every target of a job has the same families: the set holds each once, and
 * its memory does not grow with the number of targets (it held a copy of
 * every target's strings until sorted: 8 MB for 200 node-like targets). Two
 * targets' caches share the strings of the same metadata. */
static void test_same_metadata_of_many_targets(void) {
  char err[256];
  mw_scrape_target_t *t[2];
  for (int i = 0; i < 2; i++) {
    char labels[32];
    snprintf(labels, sizeof labels, "job\xff%d\xff", i);
    t[i] = scraped(labels, body_b, TEXT);
    CHECK(t[i]);
  }
  const char *help[2], *name, *unit;
  size_t hl, nl, ul;
  int type;
  for (int i = 0; i < 2; i++)
    CHECK_INT(mw_ffi_scrapecache_meta_get(mw_ffi_scrape_target_cache(t[i]), 0, &name, &nl, &type,
                                          &help[i], &hl, &unit, &ul),
              0);
  CHECK(help[0] == help[1]);
  mw_rwmeta_t *m = mw_ffi_rwmeta_new();
  CHECK_INT(mw_ffi_rwmeta_add_cache(m, mw_ffi_scrape_target_cache(t[0]), err, sizeof err), 0);
  size_t one = mw_ffi_rwmeta_mem(m);
  for (int i = 0; i < 1000; i++)
    CHECK_INT(mw_ffi_rwmeta_add_cache(m, mw_ffi_scrape_target_cache(t[i & 1]), err, sizeof err), 0);
  CHECK_INT(mw_ffi_rwmeta_len(m), 2);
  CHECK_INT(mw_ffi_rwmeta_mem(m), one);
  mw_ffi_rwmeta_free(m);
  for (int i = 0; i < 2; i++)
    mw_ffi_scrape_target_free(t[i]);
}

static void test_only_last_scrape(void) {
  char err[256];
  mw_scrape_target_t *t = mw_ffi_scrape_target_new("job\xffj\xff", 6, &opts, err, sizeof err);
  CHECK(t);
  mw_rwmeta_t *m = mw_ffi_rwmeta_new();
  /* Before the first scrape: nothing. */
  CHECK_INT(mw_ffi_rwmeta_add_cache(m, mw_ffi_scrape_target_cache(t), err, sizeof err), 0);
  CHECK_INT(mw_ffi_rwmeta_len(m), 0);
  CHECK_INT(mw_ffi_scrape_parse(t, body_b, strlen(body_b), TEXT, 1000, NULL, err, sizeof err), 0);
  const char *next = "# HELP a_first Sorted first.\na_first 2\n";
  CHECK_INT(mw_ffi_scrape_parse(t, next, strlen(next), TEXT, 2000, NULL, err, sizeof err), 0);
  /* temp_celsius went away with the last scrape (the cache still holds it). */
  CHECK_INT(mw_ffi_rwmeta_add_cache(m, mw_ffi_scrape_target_cache(t), err, sizeof err), 0);
  CHECK_INT(mw_ffi_rwmeta_len(m), 1);
  CHECK_STR(entry(m, 0), "0 a_first|Sorted first.|");
  /* A failed scrape (target down): no metadata. */
  CHECK_INT(mw_ffi_scrape_fail(t, 3000), 0);
  mw_ffi_rwmeta_clear(m);
  CHECK_INT(mw_ffi_rwmeta_add_cache(m, mw_ffi_scrape_target_cache(t), err, sizeof err), 0);
  CHECK_INT(mw_ffi_rwmeta_len(m), 0);
  mw_ffi_rwmeta_free(m);
  mw_ffi_scrape_target_free(t);
}

static void test_encode_chunks(void) {
  char err[256], name[32], help[32];
  mw_rwmeta_t *m = mw_ffi_rwmeta_new();
  CHECK(m);
  for (int i = 4; i >= 0; i--) { /* added out of order, twice */
    snprintf(name, sizeof name, "fam_%d", i);
    snprintf(help, sizeof help, "Help %d.", i);
    for (int k = 0; k < 2; k++)
      CHECK_INT(mw_ffi_rwmeta_add(m, MW_METRIC_GAUGE, name, strlen(name), help, strlen(help),
                                  "bytes", 5, err, sizeof err),
                0);
  }
  CHECK_INT(mw_ffi_rwmeta_len(m), 5);
  size_t sizes[] = {2, 2, 1}, got = 0;
  for (size_t r = 0; r < 3; r++) {
    const uint8_t *buf;
    size_t len, raw;
    CHECK_INT(mw_ffi_rwmeta_encode(m, r * 2, 2, &buf, &len, &raw, err, sizeof err), 0);
    CHECK(raw > 0);
    mw_rwdec_t *d;
    CHECK_INT(mw_ffi_rwdec_new(buf, len, &d, err, sizeof err), 0);
    size_t series, samples, meta;
    mw_ffi_rwdec_counts(d, &series, &samples, &meta);
    CHECK_INT(series, 0);
    CHECK_INT(samples, 0);
    CHECK_INT(meta, sizes[r]);
    for (size_t i = 0; i < meta; i++, got++) {
      int type;
      const char *n, *h, *u;
      CHECK_INT(mw_ffi_rwdec_metadata(d, i, &type, &n, &h, &u), 0);
      snprintf(name, sizeof name, "fam_%zu", got);
      snprintf(help, sizeof help, "Help %zu.", got);
      CHECK_INT(type, PROMETHEUS__METRIC_METADATA__METRIC_TYPE__GAUGE);
      CHECK_STR(n, name);
      CHECK_STR(h, help);
      CHECK_STR(u, "bytes");
    }
    int type;
    const char *n, *h, *u;
    CHECK_INT(mw_ffi_rwdec_metadata(d, meta, &type, &n, &h, &u), -1);
    mw_ffi_rwdec_free(d);
  }
  CHECK_INT(got, 5);
  /* Past the end: an empty request. */
  const uint8_t *buf;
  size_t len;
  CHECK_INT(mw_ffi_rwmeta_encode(m, 9, 2, &buf, &len, NULL, err, sizeof err), 0);
  mw_rwdec_t *d;
  CHECK_INT(mw_ffi_rwdec_new(buf, len, &d, err, sizeof err), 0);
  size_t series, samples, meta;
  mw_ffi_rwdec_counts(d, &series, &samples, &meta);
  CHECK_INT(meta, 0);
  mw_ffi_rwdec_free(d);
  CHECK_INT(mw_ffi_rwdec_new((const uint8_t *)"junk", 4, &d, err, sizeof err), -1);
  CHECK(d == NULL);
  mw_ffi_rwmeta_free(m);
}

int main(void) {
  MW_RUN(test_collect_dedup_sort);
  MW_RUN(test_same_metadata_of_many_targets);
  MW_RUN(test_only_last_scrape);
  MW_RUN(test_encode_chunks);
  return mw_test_summary();
}
