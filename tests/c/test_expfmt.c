/* The exposition parser and the scrape cache: fixtures, syntax, OpenMetrics,
 * errors, cache hits, staleness. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/labels.h"
#include "exposition/parse.h"
#include "exposition/scrapecache.h"
#include "ffi.h"
#include "model/batch.h"
#include "model/series.h"
#include "test.h"

#define TS 1700000000000LL

static mw_scrapecache_t *cache;
static mw_batch_t *batch;
static mw_expfmt_stats_t st;
static char err[256];

static void fresh(void) {
  mw_scrapecache_free(cache);
  mw_batch_free(batch);
  cache = mw_scrapecache_new();
  batch = mw_batch_new(NULL);
}

static int parse_fmt(const char *body, int format, uint32_t flags) {
  return mw_expfmt_parse(cache, batch, body, strlen(body), format, TS, flags, &st, err, sizeof err);
}
static int parse_fmt2(const char *body, size_t len) {
  return mw_expfmt_parse(cache, batch, body, len, MW_EXPFMT_TEXT, TS, 0, &st, err, sizeof err);
}
static int parse(const char *body) { return parse_fmt(body, MW_EXPFMT_TEXT, 0); }
static int parse_om(const char *body) { return parse_fmt(body, MW_EXPFMT_OPENMETRICS, 0); }

/* The value of label name of sample i's series, as a static string. */
static const char *label(size_t i, const char *name) {
  static char out[256];
  size_t len;
  const uint8_t *enc = mw_ffi_batch_labels(batch, i, &len);
  mw_label_t l;
  if (!enc || !mw_labels_get(enc, len, name, strlen(name), &l)) return "(none)";
  snprintf(out, sizeof out, "%.*s", (int)l.value_len, l.value);
  return out;
}

static size_t nlabels(size_t i) {
  size_t len, pos = 0, n = 0;
  const uint8_t *enc = mw_ffi_batch_labels(batch, i, &len);
  mw_label_t l;
  while (mw_labels_next(enc, len, &pos, &l) == 1)
    n++;
  return n;
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  *len = fread(buf, 1, (size_t)n, f);
  buf[*len] = 0;
  fclose(f);
  return buf;
}

static size_t heap_in_use(void) {
#if defined(__SANITIZE_ADDRESS__)
  return 0; /* ASan replaces malloc: mallinfo2 says nothing */
#else
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
#endif
}

/* Sample counts: `grep -cv -e '^#' -e '^[[:space:]]*$' FILE` (no fixture has
 * timestamps or duplicate series); families: `grep -c '^# TYPE' FILE`. */
static const struct {
  const char *file;
  size_t samples, families;
} fixtures[] = {
    {"/work/shared/testdata/exposition/node_exporter-1.5.0.prom", 507, 283},
    {"/work/shared/testdata/exposition/process-exporter-0.7.10.prom", 378, 60},
    {"/work/shared/testdata/exposition/prometheus-2.42.0.prom", 324, 168},
    {"/work/shared/testdata/exposition/victoria-metrics-1.79.5.prom", 636, 0},
};

static void test_fixtures(void) {
  for (size_t f = 0; f < sizeof fixtures / sizeof fixtures[0]; f++) {
    size_t len;
    char *body = slurp(fixtures[f].file, &len);
    if (!body) {
      /* Tests run from the source tree; the fixtures are copied into the corpus. */
      const char *base = strrchr(fixtures[f].file, '/') + 1;
      char path[512];
      snprintf(path, sizeof path, "tests/fuzz/corpus/exposition/%s", base);
      body = slurp(path, &len);
    }
    CHECK(body != NULL);
    fresh();
    int rc = mw_expfmt_parse(cache, batch, body, len, MW_EXPFMT_TEXT, TS, 0, &st, err, sizeof err);
    if (rc != 0) MW_FAIL("%s: %s", fixtures[f].file, err);
    CHECK_INT(mw_batch_len(batch), fixtures[f].samples);
    CHECK_INT(st.samples, fixtures[f].samples);
    CHECK_INT(st.series_added, fixtures[f].samples);
    CHECK_INT(st.stale, 0);
    CHECK_INT(st.duplicates, 0);
    CHECK_INT(mw_series_len(mw_scrapecache_series(cache)), fixtures[f].samples);
    CHECK_INT(mw_ffi_scrapecache_meta_len(cache), fixtures[f].families);
    for (size_t i = 0; i < mw_batch_len(batch); i++)
      CHECK_INT(mw_ffi_batch_ts(batch, i), TS);
    /* Steady state: same refs, nothing new, no allocation; the first
     * scrape without a new line frees the series table's index. */
    uint32_t *refs = malloc(len * sizeof *refs);
    memcpy(refs, mw_batch_refs(batch), mw_batch_len(batch) * sizeof *refs);
    size_t before = heap_in_use();
    rc = mw_expfmt_parse(cache, batch, body, len, MW_EXPFMT_TEXT, TS + 1, 0, &st, err, sizeof err);
    size_t after = heap_in_use();
    CHECK_INT(rc, 0);
    CHECK(after <= before);
    CHECK(!mw_series_indexed(mw_scrapecache_series(cache)));
    before = heap_in_use();
    rc = mw_expfmt_parse(cache, batch, body, len, MW_EXPFMT_TEXT, TS + 2, 0, &st, err, sizeof err);
    CHECK_INT(rc, 0);
    CHECK_INT(heap_in_use(), before);
    CHECK_INT(st.series_added, 0);
    CHECK_INT(st.stale, 0);
    CHECK_INT(mw_batch_len(batch), fixtures[f].samples);
    CHECK(memcmp(refs, mw_batch_refs(batch), mw_batch_len(batch) * sizeof *refs) == 0);
    free(refs);
    free(body);
  }
}

static void test_fixture_values(void) {
  size_t len;
  char *body = slurp(fixtures[2].file, &len);
  if (!body) body = slurp("tests/fuzz/corpus/exposition/prometheus-2.42.0.prom", &len);
  CHECK(body);
  fresh();
  CHECK_INT(mw_expfmt_parse(cache, batch, body, len, MW_EXPFMT_TEXT, TS, 0, &st, err, sizeof err),
            0);
  free(body);
  /* go_gc_duration_seconds{quantile="0.5"} 0.000264844 is the third sample. */
  CHECK_STR(label(2, "__name__"), "go_gc_duration_seconds");
  CHECK_STR(label(2, "quantile"), "0.5");
  CHECK_DBL(mw_ffi_batch_value(batch, 2), 0.000264844);
  CHECK_DBL(mw_ffi_batch_value(batch, 5), 0.001385555);
  CHECK_DBL(mw_ffi_batch_value(batch, 6), 4);
  /* Help text and type of a family. */
  int found = 0;
  for (size_t i = 0; i < mw_ffi_scrapecache_meta_len(cache); i++) {
    const char *name, *help, *unit;
    size_t nl, hl, ul;
    int type;
    CHECK_INT(mw_ffi_scrapecache_meta_get(cache, i, &name, &nl, &type, &help, &hl, &unit, &ul), 0);
    if (nl == 13 && memcmp(name, "go_goroutines", 13) == 0) {
      found = 1;
      CHECK_INT(type, MW_METRIC_GAUGE);
      CHECK_STR(help, "Number of goroutines that currently exist.");
      CHECK_INT(ul, 0);
    }
  }
  CHECK(found);
}

static void test_text_syntax(void) {
  fresh();
  const char *body = "# HELP m A metric\\nwith \\\\ escapes.\n"
                     "# TYPE m counter\n"
                     "\n"
                     "   \t\n"
                     "m{b=\"2\",a=\"1\"} 1\n"
                     "m { a = \"1\" , b = \"3\" , } 2\n"
                     "m{a=\"1\" b=\"4\"}3\n"
                     "  m{a=\"x\\\\y\\\"z\\nw\",b=\"\\t\"} 4   \n"
                     "# a comment\n"
                     "#another comment\n"
                     "# HELP\n"
                     "m{} 5 1234\n"
                     "n\t6\t1700000000123\t\n"
                     "o{a=\"\"} 7\n"
                     "p-8\n"
                     "q 9";
  CHECK_INT(parse(body), 0);
  CHECK_INT(mw_batch_len(batch), 9);
  CHECK_STR(label(0, "a"), "1");
  CHECK_STR(label(0, "b"), "2");
  CHECK_STR(label(1, "b"), "3");
  CHECK_STR(label(2, "b"), "4");
  CHECK_DBL(mw_ffi_batch_value(batch, 2), 3);
  CHECK_STR(label(3, "a"), "x\\y\"z\nw");
  CHECK_STR(label(3, "b"), "\\t"); /* unknown escapes stay */
  CHECK_INT(nlabels(4), 1);
  CHECK_INT(mw_ffi_batch_ts(batch, 4), 1234);
  CHECK_INT(mw_ffi_batch_ts(batch, 5), 1700000000123LL);
  CHECK_INT(mw_ffi_batch_ts(batch, 3), TS);
  CHECK_INT(nlabels(6), 1);             /* a="" dropped */
  CHECK_STR(label(7, "__name__"), "p"); /* the Prometheus lexer reads p-8 as p -8 */
  CHECK_DBL(mw_ffi_batch_value(batch, 7), -8);
  CHECK_DBL(mw_ffi_batch_value(batch, 8), 9);
  const char *name, *help, *unit;
  size_t nl, hl, ul;
  int type;
  CHECK_INT(mw_ffi_scrapecache_meta_get(cache, 0, &name, &nl, &type, &help, &hl, &unit, &ul), 0);
  CHECK_STR(help, "A metric\nwith \\ escapes.");
  CHECK_INT(type, MW_METRIC_COUNTER);
  /* IGNORE_TIMESTAMPS. */
  CHECK_INT(parse_fmt("a 1 5\n", MW_EXPFMT_TEXT, MW_EXPFMT_IGNORE_TIMESTAMPS), 0);
  CHECK_INT(mw_ffi_batch_ts(batch, 0), TS);
  /* A NUL at the start of a line ends the body, as in the Prometheus lexer. */
  fresh();
  CHECK_INT(
      mw_expfmt_parse(cache, batch, "a 1\n\0b 2\n", 9, MW_EXPFMT_TEXT, TS, 0, &st, err, sizeof err),
      0);
  CHECK_INT(mw_batch_len(batch), 1);
  /* Empty body: no samples, the previous scrape's series are stale. */
  CHECK_INT(parse(""), 0);
  CHECK_INT(mw_batch_len(batch), 1);
  CHECK_INT(st.stale, 1);
  fresh();
  CHECK_INT(parse(""), 0);
  CHECK_INT(mw_batch_len(batch), 0);
}

static void test_values(void) {
  fresh();
  CHECK_INT(parse("a 1.5e3\nb -0.25\nc +Inf\nd -Inf\ne NaN\nf nan\ng Infinity\nh .5\ni 5.\n"
                  "j 123456789012345678901234567890\nk 1e-400\nl 0.1\nm 9007199254740993\n"
                  "n -inf\no 1E+2\n"),
            0);
  CHECK_INT(mw_batch_len(batch), 15);
  CHECK_DBL(mw_ffi_batch_value(batch, 0), 1500);
  CHECK_DBL(mw_ffi_batch_value(batch, 1), -0.25);
  CHECK(isinf(mw_ffi_batch_value(batch, 2)) && mw_ffi_batch_value(batch, 2) > 0);
  CHECK(isinf(mw_ffi_batch_value(batch, 3)) && mw_ffi_batch_value(batch, 3) < 0);
  double nan = mw_ffi_batch_value(batch, 4);
  uint64_t bits;
  memcpy(&bits, &nan, sizeof bits);
  CHECK(bits == MW_NORMAL_NAN_BITS);
  CHECK(!mw_ffi_batch_is_stale(batch, 4));
  CHECK(isnan(mw_ffi_batch_value(batch, 5)));
  CHECK(isinf(mw_ffi_batch_value(batch, 6)));
  CHECK_DBL(mw_ffi_batch_value(batch, 7), 0.5);
  CHECK_DBL(mw_ffi_batch_value(batch, 8), 5);
  CHECK_DBL(mw_ffi_batch_value(batch, 9), 1.2345678901234568e29);
  CHECK_DBL(mw_ffi_batch_value(batch, 10), 0);
  CHECK_DBL(mw_ffi_batch_value(batch, 11), 0.1);
  CHECK_DBL(mw_ffi_batch_value(batch, 12), 9007199254740992.0); /* round to even */
  CHECK(isinf(mw_ffi_batch_value(batch, 13)));
  CHECK_DBL(mw_ffi_batch_value(batch, 14), 100);
  /* Forms Go's ParseFloat (as Prometheus restricts it) rejects. */
  const char *bad[] = {"0x10", "1_000", "1e", "+nan", ".", "--1", "1e400", "infin", "0x1p3", "1,5"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    double v;
    if (mw_expfmt_parse_float(bad[i], strlen(bad[i]), &v) == 0) MW_FAIL("accepted %s", bad[i]);
  }
}

static void test_openmetrics(void) {
  fresh();
  const char *body = "# TYPE foo_seconds counter\n"
                     "# UNIT foo_seconds seconds\n"
                     "# HELP foo_seconds Time \\\"spent\\\".\n"
                     "foo_seconds_total{a=\"b\"} 17 1520879607.789 # {id=\"x\"} 1.5 1520879607.5\n"
                     "foo_seconds_created{a=\"b\"} 1520430000.123\n"
                     "foo_seconds_total{a=\"c\",} 1 # {} 2\n"
                     "# TYPE bar gauge\n"
                     "bar 1.5 1520879607\n"
                     "bar_created 3\n"
                     "# EOF\n";
  CHECK_INT(parse_om(body), 0);
  CHECK_INT(mw_batch_len(batch), 5);
  CHECK_INT(st.exemplars, 2);
  CHECK_INT(st.format, MW_EXPFMT_OPENMETRICS);
  CHECK_INT(mw_ffi_batch_ts(batch, 0), 1520879607789LL);
  CHECK_DBL(mw_ffi_batch_value(batch, 0), 17);
  CHECK_STR(label(1, "__name__"), "foo_seconds_created");
  CHECK_INT(mw_ffi_batch_ts(batch, 3), 1520879607000LL);
  const char *name, *help, *unit;
  size_t nl, hl, ul;
  int type;
  CHECK_INT(mw_ffi_scrapecache_meta_get(cache, 0, &name, &nl, &type, &help, &hl, &unit, &ul), 0);
  CHECK_STR(name, "foo_seconds");
  CHECK_INT(type, MW_METRIC_COUNTER);
  CHECK_STR(unit, "seconds");
  CHECK_STR(help, "Time \"spent\".");
  /* Skipping _created like Prometheus's created-timestamp ingestion: only for
   * counters, histograms and summaries. */
  fresh();
  CHECK_INT(parse_fmt(body, MW_EXPFMT_OPENMETRICS, MW_EXPFMT_SKIP_CREATED), 0);
  CHECK_INT(mw_batch_len(batch), 4);
  CHECK_INT(st.created_skipped, 1);
  CHECK_STR(label(3, "__name__"), "bar_created");
  /* # EOF without a final newline. */
  fresh();
  CHECK_INT(parse_om("a 1\n# EOF"), 0);
  CHECK_INT(mw_batch_len(batch), 1);
  CHECK_INT(parse_om("# EOF\n"), 0);
}

static const struct {
  int om;
  const char *body, *err;
} invalid[] = {
    {0, "a{b=\"c\" 1\n",
     "line 1: expected label name, got \"1\" while parsing: \"a{b=\\\"c\\\" 1\""},
    {0, "a 1\nb{c:d=\"1\"} 2\n", "line 2: expected equal, got \":\" while parsing: \"b{c:\""},
    {0, "x 1\ny 2\n{a=\"b\"} 3\n", "line 3: metric name not set while parsing: \"{a=\\\"b\\\"}\""},
    {0, "a{b=c} 1\n", "line 1: expected label value, got \"c\""},
    {0, "a{b=\"c\",,} 1\n", "line 1: expected label name, got \",\""},
    {0, "a{1=\"c\"} 1\n", "line 1: expected label name, got \"1\""},
    {0, "a\n", "line 1: expected value after metric, got \"\\n\""},
    {0, "a{b=\"c\"}\n", "line 1: expected value after metric"},
    {0, "a{b=\"c\"}{d=\"e\"} 1\n", "line 1: expected value after metric, got \"{\""},
    {0, "a abc\n", "line 1: invalid float value \"abc\" while parsing: \"a abc\""},
    {0, "a 1 -5\n", "line 1: expected timestamp or new record, got \"-\""},
    {0, "a 1 12x\n", "line 1: expected next entry after timestamp, got \"x\""},
    {0, "a 1 2 3\n", "line 1: expected next entry after timestamp, got \"3\""},
    {0, "a 1 99999999999999999999\n", "line 1: timestamp \"99999999999999999999\" out of range"},
    {0, "a 1\r\n", "line 1: invalid float value \"1\\r\""},
    {0, "# TYPE a foo\n", "line 1: invalid metric type \"foo\""},
    {0, "# TYPE a unknown\n", "line 1: invalid metric type \"unknown\""},
    {0, "# TYPE a counter \n", "line 1: invalid metric type \"counter \""},
    {0, "# HELP 1a x\n", "line 1: expected metric name after HELP, got \"1\""},
    {0, "# HELP a \xff\n", "line 1: help text \"\\xff\" is not a valid utf8 string"},
    {0, "a{b=\"\xc3\x28\"} 1\n", "line 1: invalid UTF-8 label value: \"\\\"\\xc3(\\\"\""},
    {0, "a{b=\"1\",b=\"2\"} 1\n", "line 1: label name \"b\" is not unique"},
    {0, "a{__name__=\"b\"} 1\n", "line 1: label name \"__name__\" is not unique"},
    {0, "a{b=\"1\n", "line 1: expected label value"},
    {0, "a{b=\"1\"\n", "line 1: expected label name, got \"\\n\""},
    {0, "a{b=\"x\\\ny\"} 1\n", "line 1: expected label value"},
    {0, "\"a\" 1\n", "line 1: expected a valid start token, got \"\\\"\""},
    {1, "a 1\n", "line 2: data does not end with # EOF"},
    {1, "a 1", "line 1: data does not end with # EOF"},
    {1, "a 1\n# EOF\nb 2\n", "line 2: unexpected data after # EOF"},
    {1, "a 1\n\n# EOF\n", "line 2: expected a valid start token, got \"\\n\""},
    {1, "# comment\n# EOF\n", "line 1: expected a valid start token, got \"#\""},
    {1, "a  1\n# EOF\n", "line 1: expected value after metric, got \" \""},
    {1, " a 1\n# EOF\n", "line 1: expected a valid start token, got \" \""},
    {1, "a{b=\"c\" d=\"e\"} 1\n# EOF\n", "line 1: expected comma or brace close, got \" \""},
    {1, "a{b=\"c\"} 1 NaN\n# EOF\n", "line 1: invalid timestamp \"NaN\""},
    {1, "a 1 2 3\n# EOF\n", "line 1: expected next entry after timestamp, got \" \""},
    {1, "# TYPE a untyped\n# EOF\n", "line 1: invalid metric type \"untyped\""},
    {1, "# UNIT a_bytes seconds\n# EOF\n",
     "line 1: unit \"seconds\" not a suffix of metric \"a_bytes\""},
    {1, "# HELP a\n# EOF\n", "line 1: expected text in HELP"},
    {1, "a 1 # {id=\"x\"}\n# EOF\n", "line 1: expected value after exemplar labels, got \"\\n\""},
    {1, "a 1 # {id=\"x\"} 1 Inf\n# EOF\n", "line 1: invalid exemplar timestamp \"Inf\""},
    {1, "a{b=\"x\ny\"} 1\n# EOF\n", "line 1: expected label value"},
    {1, "a 1\n# EOF\n\n", "line 2: unexpected data after # EOF"},
};

static void test_invalid(void) {
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    fresh();
    int rc = invalid[i].om ? parse_om(invalid[i].body) : parse(invalid[i].body);
    if (rc != -1) MW_FAIL("case %zu accepted: %s", i, invalid[i].body);
    if (strncmp(err, invalid[i].err, strlen(invalid[i].err)) != 0)
      MW_FAIL("case %zu: error \"%s\", expected \"%s...\"", i, err, invalid[i].err);
    CHECK_INT(mw_batch_len(batch), 0);
  }
}

static void test_cache_and_staleness(void) {
  fresh();
  CHECK_INT(parse("a{x=\"1\"} 1\na{x=\"2\"} 2\nb 3 1000\nc 4\n"), 0);
  CHECK_INT(st.series_added, 4);
  uint32_t ra1 = mw_ffi_batch_ref(batch, 0), rc = mw_ffi_batch_ref(batch, 3);
  size_t keys = mw_scrapecache_len(cache);
  /* a{x="2"}, b (explicit timestamp) and c are gone; d is new; a{x="1"}
   * written differently still maps to the same series. */
  CHECK_INT(parse("a{x=\"1\"} 10\nd 5\na { x=\"1\" } 11\n"), 0);
  CHECK_INT(st.samples, 2);
  CHECK_INT(st.series_added, 1);
  CHECK_INT(st.duplicates, 1);
  CHECK_INT(st.stale, 2); /* a{x="2"} and c; b had a timestamp */
  CHECK_INT(mw_batch_len(batch), 4);
  CHECK_INT(mw_ffi_batch_ref(batch, 0), ra1);
  CHECK(mw_ffi_batch_is_stale(batch, 2) && mw_ffi_batch_is_stale(batch, 3));
  CHECK_INT(mw_ffi_batch_ts(batch, 2), TS);
  CHECK_STR(label(2, "x"), "2");
  CHECK_STR(label(3, "__name__"), "c");
  CHECK(mw_scrapecache_len(cache) == keys + 2); /* swept at the next scrape */
  /* Gone series are deleted at the next scrape; c comes back as new. */
  CHECK_INT(parse("a{x=\"1\"} 12\nd 6\nc 7\n"), 0);
  CHECK_INT(st.series_added, 1);
  CHECK_INT(st.stale, 0);
  CHECK_INT(mw_series_len(mw_scrapecache_series(cache)), 3);
  (void)rc;
  /* NO_STALE. */
  CHECK_INT(parse_fmt("a{x=\"1\"} 13\n", MW_EXPFMT_TEXT, MW_EXPFMT_NO_STALE), 0);
  CHECK_INT(st.stale, 2);
  CHECK_INT(mw_batch_len(batch), 1);
  /* A failed scrape: no samples, staleness markers for the whole previous one. */
  CHECK_INT(parse("a{x=\"1\"} 14\nd 1\n"), 0);
  CHECK_INT(parse("a{x=\"1\"} 15\nbroken\n"), -1);
  CHECK_INT(st.stale, 2);
  CHECK_INT(mw_batch_len(batch), 2);
  CHECK(mw_ffi_batch_is_stale(batch, 0) && mw_ffi_batch_is_stale(batch, 1));
  /* After a failed scrape everything is new again, nothing is stale. */
  CHECK_INT(parse("a{x=\"1\"} 16\n"), 0);
  CHECK_INT(st.series_added, 1);
  CHECK_INT(st.stale, 0);
  CHECK_INT(mw_series_len(mw_scrapecache_series(cache)), 1);
  /* Switching format forgets keys (their validation differs) but not series. */
  CHECK_INT(parse_om("a{x=\"1\"} 17\n# EOF\n"), 0);
  CHECK_INT(st.series_added, 0);
  CHECK_INT(mw_batch_len(batch), 1);
  CHECK_INT(parse_om("a{x=\"1\" } 17\n# EOF\n"), -1);
}

static void test_new_series_groups(void) {
  /* New series are interned in groups: samples still come out in line order,
   * a series text repeated within a group is a duplicate, a cached line
   * between new ones keeps its place. */
  fresh();
  char body[8192];
  size_t o = 0;
  for (int i = 0; i < 40; i++)
    o += (size_t)sprintf(body + o, "m{i=\"%d\"} %d\n", i % 30, i);
  body[o] = 0;
  CHECK_INT(parse(body), 0);
  CHECK_INT(st.samples, 30);
  CHECK_INT(st.series_added, 30);
  CHECK_INT(st.duplicates, 10);
  CHECK_INT(mw_scrapecache_len(cache), 30);
  for (size_t k = 0; k < 30; k++) {
    char want[16];
    snprintf(want, sizeof want, "%zu", k);
    CHECK_STR(label(k, "i"), want);
    CHECK(mw_ffi_batch_value(batch, k) == (double)k);
  }
  /* Cached lines between new ones; a new series text for a known series. */
  o = 0;
  for (int i = 0; i < 20; i++)
    o += (size_t)sprintf(body + o, "n{i=\"%d\"} %d\nm{i=\"%d\"} %d\nm {i=\"%d\"} 0\n", i, i, i, i,
                         i);
  body[o] = 0;
  CHECK_INT(parse(body), 0);
  CHECK_INT(st.samples, 40);
  CHECK_INT(st.series_added, 20);
  CHECK_INT(st.duplicates, 20);
  CHECK_INT(st.stale, 10);
  for (size_t k = 0; k < 40; k++) {
    char want[16];
    snprintf(want, sizeof want, "%zu", k / 2);
    CHECK_STR(label(k, "__name__"), k % 2 ? "m" : "n");
    CHECK_STR(label(k, "i"), want);
  }
  size_t keys = mw_scrapecache_len(cache);
  CHECK_INT(keys, 30 + 20 + 20);
  /* A failing line after queued new ones: the lines before it still teach
   * the cache (as the failing line's own series text does when only its
   * value is bad), the body fails as a whole. */
  o = 0;
  for (int i = 0; i < 5; i++)
    o += (size_t)sprintf(body + o, "p{i=\"%d\"} 1\n", i);
  o += (size_t)sprintf(body + o, "q 1x\n");
  body[o] = 0;
  CHECK_INT(parse(body), -1);
  CHECK_STR(err, "line 6: invalid float value \"1x\" while parsing: \"q 1x\"");
  CHECK_INT(mw_batch_len(batch), 40); /* staleness markers */
  CHECK_INT(mw_scrapecache_len(cache), keys - 10 + 6);
  /* The next scrape starts over. */
  CHECK_INT(parse("p{i=\"1\"} 2\n"), 0);
  CHECK_INT(st.series_added, 1);
  CHECK_INT(st.stale, 0);
  CHECK_INT(mw_scrapecache_len(cache), 1);
}

static void test_long_series_texts(void) {
  /* Series texts crossing the 64-byte blocks of the brace scan, with escapes
   * on every position of a block, parse the same cold and cached. */
  for (int pad = 0; pad < 70; pad++) {
    fresh();
    char body[1024], v[160];
    size_t o = 0;
    memset(v, 'x', (size_t)pad);
    memcpy(v + pad, "\\\\\\\"\\n}{,", 10);
    o += (size_t)sprintf(body + o, "a{v=\"%s\",w=\"%s\"} 1\n", v, v);
    o += (size_t)sprintf(body + o, "b{v=\"%.*s\\\\\"} 2\nc 3", pad, v);
    body[o] = 0;
    for (int pass = 0; pass < 2; pass++) {
      if (parse(body) != 0) MW_FAIL("pad %d pass %d: %s", pad, pass, err);
      CHECK_INT(mw_batch_len(batch), 3);
      CHECK_INT(st.series_added, pass ? 0 : 3);
      char want[160];
      snprintf(want, sizeof want, "%.*s\\\"\n}{,", pad, v);
      CHECK_STR(label(0, "v"), want);
      CHECK_STR(label(0, "w"), want);
      snprintf(want, sizeof want, "%.*s\\", pad, v);
      CHECK_STR(label(1, "v"), want);
      CHECK_STR(label(2, "__name__"), "c");
    }
    /* Unterminated at the end of the body, on every block position. */
    o = (size_t)sprintf(body, "a{v=\"%.*s\\", pad, v);
    CHECK_INT(parse(body), -1);
    CHECK(strncmp(err, "line 1: expected label value", 28) == 0);
  }
}

static void test_churn(void) {
  /* Many scrapes with rotating series: memory stays bounded. */
  fresh();
  char *body = malloc(64 * 1000);
  size_t mem_first = 0;
  for (int s = 0; s < 30; s++) {
    size_t o = 0;
    for (int i = 0; i < 1000; i++)
      o += (size_t)sprintf(body + o, "m{i=\"%d\",pad=\"xxxxxxxxxxxxxxxx\"} %d\n", s * 500 + i, i);
    CHECK_INT(mw_expfmt_parse(cache, batch, body, o, MW_EXPFMT_TEXT, TS, 0, &st, err, sizeof err),
              0);
    CHECK_INT(st.samples, 1000);
    if (s > 0) CHECK_INT(st.series_added, 500);
    if (s > 0) CHECK_INT(st.stale, 500);
    if (s == 2) mem_first = mw_scrapecache_mem(cache);
  }
  CHECK_INT(mw_series_len(mw_scrapecache_series(cache)), 1500);
  CHECK(mw_scrapecache_mem(cache) < mem_first * 2);
  free(body);
}

static void test_memory_per_series(void) {
  fresh();
  size_t cap = 100000 * 80, o = 0;
  char *body = malloc(cap);
  for (int i = 0; i < 100000; i++)
    o += (size_t)snprintf(body + o, cap - o,
                          "node_cpu_seconds_total{cpu=\"%d\",mode=\"idle\"} %d.25\n", i, i);
  CHECK_INT(mw_expfmt_parse(cache, batch, body, o, MW_EXPFMT_TEXT, TS, 0, &st, err, sizeof err), 0);
  CHECK_INT(st.samples, 100000);
  size_t label_bytes;
  mw_series_mem(mw_scrapecache_series(cache), &label_bytes);
  size_t series_mem = mw_series_mem(mw_scrapecache_series(cache), NULL) - label_bytes;
  size_t total = mw_scrapecache_mem(cache);
  printf("series table: %.1f B/series beyond %.1f label bytes; scrape cache total: %.1f B/series "
         "beyond label bytes\n",
         (double)series_mem / 1e5, (double)label_bytes / 1e5, (double)(total - label_bytes) / 1e5);
  CHECK(series_mem / 100000 <= 200);
  /* the cache keeps a 16-byte key a series, not the series text (45 bytes here) */
  CHECK((total - label_bytes - series_mem) / 100000 <= 80);
  free(body);
}

/* Exemplar k of the batch as "i|name=value,...|value|ts". */
static const char *exemplar(size_t k) {
  static char out[512];
  mw_exemplar_t e;
  if (k >= mw_batch_exemplars(batch)) return "(none)";
  mw_batch_exemplar(batch, k, &e);
  size_t pos = 0, n;
  mw_label_t l;
  n = (size_t)snprintf(out, sizeof out, "%u|", e.idx);
  while (mw_labels_next(e.labels, e.labels_len, &pos, &l) == 1)
    n += (size_t)snprintf(out + n, sizeof out - n, "%s%.*s=%.*s",
                          pos > l.value_len + 2 + l.name_len ? "," : "", (int)l.name_len, l.name,
                          (int)l.value_len, l.value);
  snprintf(out + n, sizeof out - n, "|%g|%lld", e.value, (long long)e.ts_ms);
  return out;
}

static void test_exemplars(void) {
  mw_exemplar_t e;
  fresh();
  char big[200], body[2048];
  memset(big, 'x', 126);
  big[126] = 0; /* "id" + 126 = 128 code points: the limit */
  char utf[300] = "";
  for (int i = 0; i < 126; i++)
    strcat(utf, "\xc3\xa9"); /* 126 two-byte code points: 252 bytes, still valid */
  snprintf(body, sizeof body,
           "# TYPE a counter\n"
           "a_total{k=\"1\"} 1 # {trace_id=\"abc\",span=\"\\\"q\\\"\"} 0.5 1700000001.25\n"
           "a_total{k=\"2\"} 2 1700000002.5 # {trace_id=\"def\"} 7\n"
           "a_total{k=\"3\"} 3 # {trace_id=\"ghi\",empty=\"\"} 8\n"
           "a_total{k=\"4\"} 4 # {id=\"%s\"} 9 1\n"
           "a_total{k=\"5\"} 5 # {id=\"%sy\"} 10 1\n"
           "a_total{k=\"6\"} 6 # {a=\"1\",a=\"2\"} 11 1\n"
           "a_total{k=\"7\"} 7 # {id=\"%s\"} 12 1\n"
           "a_total{k=\"8\"} 8\n"
           "a_total{k=\"1\"} 9 # {trace_id=\"dup\"} 13\n"
           "# EOF\n",
           big, big, utf);
  /* twice: cache misses (queued lines), then cache hits */
  for (int round = 0; round < 2; round++) {
    CHECK_INT(parse_om(body), 0);
    CHECK_INT(mw_batch_len(batch), 8);
    CHECK_INT(st.exemplars, 5);
    CHECK_INT(st.exemplars_invalid, 2); /* over 128 code points, repeated name */
    CHECK_INT(st.duplicates, 1);        /* its exemplar goes with it */
    CHECK_INT(mw_batch_exemplars(batch), 5);
    CHECK_STR(exemplar(0), "0|span=\"q\",trace_id=abc|0.5|1700000001250");
    /* no timestamp: the sample's, explicit or the scrape's */
    CHECK_STR(exemplar(1), "1|trace_id=def|7|1700000002500");
    CHECK_STR(exemplar(2), "2|trace_id=ghi|8|1700000000000");
    mw_batch_exemplar(batch, 3, &e);
    CHECK_INT(e.idx, 3);
    CHECK_INT(e.labels_len, 2 + 126 + 2);
    CHECK_INT(e.ts_ms, 1000);
    mw_batch_exemplar(batch, 4, &e);
    CHECK_INT(e.idx, 6);
    CHECK_INT(e.labels_len, 2 + 252 + 2);
  }
  /* OpenMetrics output shows them; the text format has none */
  char *out;
  size_t out_len;
  CHECK_INT(mw_ffi_batch_write(batch, 1, &out, &out_len), 0);
  out = realloc(out, out_len + 1); /* not NUL-terminated */
  out[out_len] = 0;
  CHECK(strstr(out,
               "a_total{k=\"1\"} 1.0 1700000000.000 # {span=\"\\\"q\\\"\",trace_id=\"abc\"} 0.5 "
               "1700000001.250\n"));
  CHECK(
      strstr(out, "a_total{k=\"3\"} 3.0 1700000000.000 # {trace_id=\"ghi\"} 8.0 1700000000.000\n"));
  CHECK(strstr(out, "a_total{k=\"8\"} 8.0 1700000000.000\n"));
  free(out);
  CHECK_INT(mw_ffi_batch_write(batch, 0, &out, &out_len), 0);
  CHECK(out_len > 0 && !memchr(out, '#', out_len));
  free(out);
  /* honor_timestamps = false: a timestamp-less exemplar takes the scrape's */
  CHECK_INT(parse_fmt(body, MW_EXPFMT_OPENMETRICS, MW_EXPFMT_IGNORE_TIMESTAMPS), 0);
  CHECK_STR(exemplar(1), "1|trace_id=def|7|1700000000000");
  CHECK_STR(exemplar(0), "0|span=\"q\",trace_id=abc|0.5|1700000001250");
  /* a failed scrape has none; a body without exemplars has none */
  CHECK_INT(parse_om("a_total{k=\"1\"} 1 # {x=\"1\"} 1\nbad\n# EOF\n"), -1);
  CHECK_INT(mw_batch_exemplars(batch), 0);
  CHECK_INT(st.exemplars, 0);
  CHECK_INT(parse_om("a_total{k=\"1\"} 1\n# EOF\n"), 0);
  CHECK_INT(mw_batch_exemplars(batch), 0);
  /* a syntax error in an exemplar fails the body, as in Prometheus */
  CHECK_INT(parse_om("a_total{k=\"1\"} 1 # {x=\"1\"} z\n# EOF\n"), -1);
  /* more queued lines than the parser's queue, each with an exemplar */
  fresh();
  size_t n = 0;
  static char many[64 * 1024];
  for (int i = 0; i < 500; i++)
    n +=
        (size_t)snprintf(many + n, sizeof many - n, "m{i=\"%d\"} %d # {t=\"%d\"} %d\n", i, i, i, i);
  snprintf(many + n, sizeof many - n, "# EOF\n");
  for (int round = 0; round < 2; round++) {
    CHECK_INT(parse_om(many), 0);
    CHECK_INT(mw_batch_exemplars(batch), 500);
    for (size_t k = 0; k < 500; k += 37) {
      mw_batch_exemplar(batch, k, &e);
      CHECK_INT(e.idx, k);
      CHECK_DBL(e.value, (double)k);
      CHECK_DBL(mw_ffi_batch_value(batch, e.idx), (double)k);
    }
  }
  /* truncating the batch drops the exemplars of the samples cut */
  mw_batch_truncate(batch, 100);
  CHECK_INT(mw_batch_exemplars(batch), 100);
}

/* prometheus.echo's OpenMetrics output: timestamps between -1 s and 0 keep
 * their sign, for samples and exemplars alike. */
static void test_write_negative_timestamps(void) {
  fresh();
  CHECK_INT(parse_om("a_total 1 -0.5 # {x=\"1\"} 2 -0.001\nb_total 2 -1.25\n# EOF\n"), 0);
  CHECK_INT(mw_batch_len(batch), 2);
  char *out;
  size_t out_len;
  CHECK_INT(mw_ffi_batch_write(batch, 1, &out, &out_len), 0);
  out = realloc(out, out_len + 1); /* not NUL-terminated */
  out[out_len] = 0;
  CHECK(strstr(out, "a_total 1.0 -0.500 # {x=\"1\"} 2.0 -0.001\n"));
  CHECK(strstr(out, "b_total 2.0 -1.250\n"));
  free(out);
}

/* A relabel cache keeps the exemplars of the samples it keeps, on the right
 * output sample, and drops those of the samples it drops. */
static void test_exemplars_relabel(void) {
  fresh();
  mw_ffi_relabel_str_t src = {"k", 1};
  mw_ffi_relabel_rule_t rule = {
      .source_labels = &src, .n_source_labels = 1, .regex = {"2", 1}, .action = {"drop", 4}};
  mw_ffi_relabel_program_t *prog;
  char e2[256];
  CHECK_INT(mw_ffi_relabel_program_new(&rule, 1, &prog, e2, sizeof e2), 0);
  mw_relabel_cache_t *rc = mw_ffi_relabel_cache_new(0);
  CHECK_INT(mw_ffi_relabel_cache_reset(rc, prog), 0);
  const char *body = "a{k=\"1\"} 1 # {t=\"x\"} 10 5\n"
                     "a{k=\"2\"} 2 # {t=\"y\"} 20 6\n"
                     "a{k=\"3\"} 3\n"
                     "a{k=\"4\"} 4 # {t=\"z\"} 40 7\n"
                     "# EOF\n";
  for (int round = 0; round < 2; round++) { /* misses, then cached results */
    CHECK_INT(parse_om(body), 0);
    mw_relabel_stats_t rs = {0};
    CHECK_INT(mw_ffi_relabel_cache_apply(rc, batch, &rs, e2, sizeof e2), 0);
    mw_batch_t *out = mw_ffi_relabel_cache_batch(rc);
    CHECK_INT(mw_batch_len(out), 3);
    CHECK_INT(mw_ffi_batch_exemplars(out), 2);
    size_t idx, len;
    const uint8_t *lab;
    int64_t ts;
    double v;
    CHECK_INT(mw_ffi_batch_exemplar(out, 0, &idx, &lab, &len, &ts, &v), 0);
    CHECK_INT(idx, 0);
    CHECK_DBL(v, 10);
    CHECK_INT(ts, 5000);
    CHECK_INT(len, 4);
    CHECK(memcmp(lab, "t\xffx\xff", 4) == 0);
    CHECK_INT(mw_ffi_batch_exemplar(out, 1, &idx, &lab, &len, &ts, &v), 0);
    CHECK_INT(idx, 2); /* the sample of k="4", third in the output */
    CHECK_DBL(mw_ffi_batch_value(out, idx), 4);
    CHECK_DBL(v, 40);
    CHECK_INT(mw_ffi_batch_exemplar(out, 2, &idx, &lab, &len, &ts, &v), -1);
  }
  mw_ffi_relabel_cache_free(rc);
  mw_ffi_relabel_program_free(prog);
}

/* UTF-8 names go through a relabel cache untouched (C rules), and a Lua
 * rule's result may carry them (_put). */
static void test_utf8_relabel(void) {
  fresh();
  mw_ffi_relabel_rule_t rule = {.regex = {"drop[.]me", 9}, .action = {"labeldrop", 9}};
  mw_ffi_relabel_program_t *prog;
  char e2[256];
  CHECK_INT(mw_ffi_relabel_program_new(&rule, 1, &prog, e2, sizeof e2), 0);
  mw_relabel_cache_t *rc = mw_ffi_relabel_cache_new(0);
  CHECK_INT(mw_ffi_relabel_cache_reset(rc, prog), 0);
  const char *body = "{\"my.metric\",\"my.label\"=\"v\",\"drop.me\"=\"x\"} 1\n";
  for (int round = 0; round < 2; round++) { /* misses, then cached results */
    CHECK_INT(parse(body), 0);
    mw_relabel_stats_t rs = {0};
    CHECK_INT(mw_ffi_relabel_cache_apply(rc, batch, &rs, e2, sizeof e2), 0);
    mw_batch_t *out = mw_ffi_relabel_cache_batch(rc);
    CHECK_INT(mw_batch_len(out), 1);
    size_t len;
    const uint8_t *enc = mw_ffi_batch_labels(out, 0, &len);
    CHECK(len == 30 && memcmp(enc, "__name__\xffmy.metric\xffmy.label\xffv\xff", 30) == 0);
  }
  CHECK_INT(mw_ffi_relabel_cache_reset(rc, NULL), 0);
  CHECK_INT(parse(body), 0);
  mw_relabel_stats_t rs = {0};
  CHECK_INT(mw_ffi_relabel_cache_apply(rc, batch, &rs, e2, sizeof e2), 0);
  const uint32_t *idx;
  CHECK_INT(mw_ffi_relabel_cache_misses(rc, &idx), 1);
  const char res[] = "__name__\xffother.metric\xff\xc3\xa9t\xc3\xa9\xff"
                     "1\xff";
  CHECK_INT(
      mw_ffi_relabel_cache_put(rc, idx[0], (const uint8_t *)res, sizeof res - 1, e2, sizeof e2), 0);
  const char bad[] = "__name__\xffm\xff\xc3(\xff"
                     "1\xff";
  CHECK_INT(
      mw_ffi_relabel_cache_put(rc, idx[0], (const uint8_t *)bad, sizeof bad - 1, e2, sizeof e2),
      -1);
  CHECK_STR(e2, "invalid label name \"\xc3(\"");
  mw_ffi_relabel_cache_free(rc);
  mw_ffi_relabel_program_free(prog);
}

/* A relabel cache under series churn: a target whose series names change at
 * every scrape (the scrape table hands the refs of gone series to new ones)
 * keeps the cache's output series table bounded by max_cache_size, and the
 * reported size counts every result the cache holds (issue 16). */
static void test_relabel_churn(void) {
  fresh();
  mw_ffi_relabel_rule_t rule = {.target_label = {"env", 3}, .replacement = {"prod", 4}};
  mw_ffi_relabel_program_t *prog;
  char e2[256];
  CHECK_INT(mw_ffi_relabel_program_new(&rule, 1, &prog, e2, sizeof e2), 0);
  mw_relabel_cache_t *rc = mw_ffi_relabel_cache_new(1000);
  CHECK_INT(mw_ffi_relabel_cache_reset(rc, prog), 0);
  char *body = malloc(64 * 100);
  size_t max_out = 0, max_len = 0, flushes = 0;
  for (int s = 0; s < 200; s++) {
    size_t o = 0;
    for (int i = 0; i < 100; i++)
      o += (size_t)sprintf(body + o, "churn_%d_%d{pad=\"xxxxxxxx\"} %d\n", s, i, i);
    CHECK_INT(parse_fmt(body, MW_EXPFMT_TEXT, 0), 0);
    mw_relabel_stats_t rs = {0};
    CHECK_INT(mw_ffi_relabel_cache_apply(rc, batch, &rs, e2, sizeof e2), 0);
    flushes += rs.flushes;
    mw_series_t *out = mw_batch_series(mw_ffi_relabel_cache_batch(rc));
    if (mw_series_len(out) > max_out) max_out = mw_series_len(out);
    if (mw_ffi_relabel_cache_len(rc) > max_len) max_len = mw_ffi_relabel_cache_len(rc);
    /* the output table holds no more series than the size reported */
    CHECK(mw_series_len(out) <= mw_ffi_relabel_cache_len(rc));
  }
  /* 200 scrapes x 100 new series = 20,000 results: at most 1000 are held */
  CHECK(max_out <= 1000);
  CHECK(max_len <= 1000);
  CHECK(flushes >= 15);
  free(body);
  mw_ffi_relabel_cache_free(rc);
  mw_ffi_relabel_program_free(prog);
}

/* A line longer than MW_EXPFMT_MAX_LINE fails the body with its number, as
 * soon as the parser reaches it; a line of exactly the limit parses. */
static void test_line_limit(void) {
  fresh();
  size_t n = MW_EXPFMT_MAX_LINE;
  char *body = malloc(2 * n + 64);
  size_t o = (size_t)sprintf(body, "a 1\nb{l=\"");
  size_t val = n - 7 - 1; /* b{l="" + value + "} 2 = n bytes, then \n */
  memset(body + o, 'x', val - 4);
  o += val - 4;
  o += (size_t)sprintf(body + o, "\"} 2\n");
  CHECK_INT(parse_fmt2(body, o), 0);
  CHECK_INT(st.samples, 2);
  memset(body + o, 'y', n + 1); /* line 3: no newline for more than the limit */
  o += n + 1;
  CHECK_INT(parse_fmt2(body, o), -1);
  CHECK_STR(err, "line 3: line longer than 1048576 bytes (the limit of a line)");
  free(body);
}

static void test_content_type(void) {
  int used;
  CHECK_INT(mw_expfmt_format("text/plain; version=0.0.4; charset=utf-8", MW_EXPFMT_NONE, &used, err,
                             sizeof err),
            MW_EXPFMT_TEXT);
  CHECK_INT(used, 0);
  CHECK_INT(mw_expfmt_format("Text/Plain", MW_EXPFMT_NONE, &used, err, sizeof err), MW_EXPFMT_TEXT);
  CHECK_INT(mw_expfmt_format("application/openmetrics-text; version=1.0.0; charset=utf-8",
                             MW_EXPFMT_TEXT, &used, err, sizeof err),
            MW_EXPFMT_OPENMETRICS);
  CHECK_INT(mw_expfmt_format(NULL, MW_EXPFMT_OPENMETRICS, &used, err, sizeof err),
            MW_EXPFMT_OPENMETRICS);
  CHECK_INT(used, 1);
  CHECK_INT(mw_expfmt_format("application/json", MW_EXPFMT_TEXT, &used, err, sizeof err),
            MW_EXPFMT_TEXT);
  CHECK_INT(used, 1);
  CHECK_INT(mw_expfmt_format("", MW_EXPFMT_NONE, &used, err, sizeof err), -1);
  CHECK_STR(err, "received blank Content-Type \"\" and no fallback_scrape_protocol specified");
  /* Through the FFI entry point. */
  fresh();
  const char *om = "a 1\n# EOF\n";
  CHECK_INT(mw_ffi_expfmt_parse(cache, batch, om, strlen(om), "application/openmetrics-text",
                                MW_EXPFMT_TEXT, TS, 0, &st, err, sizeof err),
            0);
  CHECK_INT(st.format, MW_EXPFMT_OPENMETRICS);
  CHECK_INT(st.fallback_used, 0);
  CHECK_INT(mw_ffi_expfmt_parse(cache, batch, om, strlen(om), "application/x-foo", MW_EXPFMT_NONE,
                                TS, 0, &st, err, sizeof err),
            -1);
  CHECK_INT(st.stale, 1);
}

/* The name of sample i's metric, as a static string. */
static const char *metric(size_t i) { return label(i, "__name__"); }

/* Prometheus 3's quoted UTF-8 names, text format: the metric name quoted in
 * the braces at any position, quoted label names, escapes, blanks (the cases
 * of Prometheus's TestUTF8PromParse and more). */
static void test_utf8_text(void) {
  fresh();
  const char *body =
      "# HELP \"go.gc_duration_seconds\" A summary of the GC invocation durations.\n"
      "# \tTYPE \"go.gc_duration_seconds\" summary\n"
      "{\"go.gc_duration_seconds\",quantile=\"0\"} 4.9351e-05\n"
      "{\"go.gc_duration_seconds\",quantile=\"0.25\",} 7.4241e-05\n"
      "{ \"go.gc_duration_seconds\", quantile= \"0.5\", a= \"b\", } 8.3835e-05\n"
      "{ \"go.gc_duration_seconds\" , quantile = \"1.0\", a = \"b\" } 8.3835e-05 1234\n"
      "{q=\"0.9\",\"http.status\",a=\"b\"} 1\n"
      "{q=\"0.8\",a=\"b\",\"http.status\"} 2\n"
      "{\"go.gc_duration_seconds_count\"} 99\n"
      "{\"Heiz\xc3\xb6lr\xc3\xbc\x63kstoßabd\xc3\xa4mpfung 10\xe2\x82\xac metric with "
      "\\\"interesting\\\" {character\\nchoices}\","
      "\"strange\xc2\xa9\xe2\x84\xa2\\n'quoted' \\\"name\\\"\"=\"6\"} 10.0\n"
      "m{\"my.label\"=\"v\",\"plain\"=\"w\", \"caf\xc3\xa9\" = \"x\"} 3\n"
      "{\"a\\\\b\",\"c\\\"d\"=\"e\\\"f\"} 4\n"
      "  {\"ws.lead\"}\t5\n"
      "{\"dots.{and}=,braces\"} 6\n";
  if (parse(body) != 0) MW_FAIL("%s", err);
  CHECK_INT(mw_batch_len(batch), 12);
  CHECK_STR(metric(0), "go.gc_duration_seconds");
  CHECK_STR(label(0, "quantile"), "0");
  CHECK_INT(nlabels(0), 2);
  CHECK_STR(label(1, "quantile"), "0.25");
  CHECK_STR(label(2, "a"), "b");
  CHECK_INT(nlabels(2), 3);
  CHECK_STR(label(3, "quantile"), "1.0");
  CHECK_INT(mw_ffi_batch_ts(batch, 3), 1234);
  CHECK_STR(metric(4), "http.status"); /* the name in the middle */
  CHECK_STR(label(4, "q"), "0.9");
  CHECK_STR(metric(5), "http.status"); /* last */
  CHECK_STR(label(5, "a"), "b");
  CHECK_STR(metric(6), "go.gc_duration_seconds_count");
  CHECK_DBL(mw_ffi_batch_value(batch, 6), 99);
  CHECK_STR(metric(7),
            "Heiz\xc3\xb6lr\xc3\xbc\x63kstoßabd\xc3\xa4mpfung 10\xe2\x82\xac metric with "
            "\"interesting\" {character\nchoices}");
  CHECK_STR(label(7, "strange\xc2\xa9\xe2\x84\xa2\n'quoted' \"name\""), "6");
  CHECK_STR(metric(8), "m");
  CHECK_STR(label(8, "my.label"), "v");
  CHECK_STR(label(8, "plain"), "w");
  CHECK_STR(label(8, "caf\xc3\xa9"), "x");
  CHECK_STR(metric(9), "a\\b");
  CHECK_STR(label(9, "c\"d"), "e\"f");
  CHECK_STR(metric(10), "ws.lead");
  CHECK_DBL(mw_ffi_batch_value(batch, 10), 5);
  CHECK_STR(metric(11), "dots.{and}=,braces");
  const char *name, *help, *unit;
  size_t nl, hl, ul;
  int type;
  CHECK_INT(mw_ffi_scrapecache_meta_len(cache), 1);
  CHECK_INT(mw_ffi_scrapecache_meta_get(cache, 0, &name, &nl, &type, &help, &hl, &unit, &ul), 0);
  CHECK_STR(name, "go.gc_duration_seconds");
  CHECK_STR(help, "A summary of the GC invocation durations.");
  CHECK_INT(type, MW_METRIC_SUMMARY);
  /* Steady state: every quoted text is a cache key like any other. */
  uint32_t refs[12];
  memcpy(refs, mw_batch_refs(batch), sizeof refs);
  if (parse(body) != 0) MW_FAIL("%s", err);
  CHECK_INT(st.series_added, 0);
  CHECK_INT(st.samples, 12);
  CHECK_INT(memcmp(refs, mw_batch_refs(batch), sizeof refs), 0);
  /* A quoted legacy name is the same series as the bare one. */
  fresh();
  CHECK_INT(parse("up{a=\"1\"} 1\n{\"up\",\"a\"=\"1\"} 2\n# HELP \"up\" help\n"), 0);
  CHECK_INT(mw_batch_len(batch), 1);
  CHECK_INT(st.duplicates, 1);
  CHECK_INT(mw_ffi_scrapecache_meta_get(cache, 0, &name, &nl, &type, &help, &hl, &unit, &ul), 0);
  CHECK_STR(name, "up");
  /* An escaped family name is unescaped, as the series' names are. */
  fresh();
  CHECK_INT(parse("# HELP \"a\\\"b\" q \\\\ \\n\n{\"a\\\"b\"} 1\n"), 0);
  CHECK_INT(mw_ffi_scrapecache_meta_get(cache, 0, &name, &nl, &type, &help, &hl, &unit, &ul), 0);
  CHECK_STR(name, "a\"b");
  CHECK_STR(help, "q \\ \n");
  CHECK_STR(metric(0), "a\"b");
  /* A label whose value is empty is dropped before its name is checked. */
  fresh();
  CHECK_INT(parse("{\"m\",\"\"=\"\"} 1\n"), 0);
  CHECK_INT(nlabels(0), 1);
}

/* The same in OpenMetrics (Prometheus's TestOpenMetricsParse_UTF8), with
 * quoted exemplar label names, UNIT and _created skipping. */
static void test_utf8_openmetrics(void) {
  fresh();
  const char *body =
      "# HELP \"go.gc_duration_seconds\" A summary of the GC invocation durations.\n"
      "# TYPE \"go.gc_duration_seconds\" summary\n"
      "# UNIT \"go.gc_duration_seconds\" seconds\n"
      "{\"go.gc_duration_seconds\",quantile=\"0\"} 4.9351e-05\n"
      "{\"go.gc_duration_seconds\",quantile=\"0.25\"} 7.424100000000001e-05\n"
      "{\"go.gc_duration_seconds_created\"} 1520872607.123\n"
      "{\"go.gc_duration_seconds\",quantile=\"0.5\",a=\"b\"} 8.3835e-05\n"
      "{\"http.status\",q=\"0.9\",a=\"b\"} 8.3835e-05\n"
      "{\"http.status\",q=\"0.9\",a=\"b\"} 8.3835e-05\n"
      "{q=\"0.9\",\"http.status\",a=\"b\"} 8.3835e-05\n"
      "{\"go.gc_duration_seconds_sum\"} 0.004304266\n"
      "{\"Heiz\xc3\xb6lr\xc3\xbc\x63kstoßabd\xc3\xa4mpfung 10\xe2\x82\xac metric with "
      "\\\"interesting\\\" {character\\nchoices}\","
      "\"strange\xc2\xa9\xe2\x84\xa2\\n'quoted' \\\"name\\\"\"=\"6\"} 10.0\n"
      "quotedexemplar_count 1 # {\"id.thing\"=\"histogram-count-test\"} 4\n"
      "quotedexemplar2_count 1 # {\"id.thing\"=\"histogram-count-test\",other=\"hello\"} 4\n"
      "{\"x.y\",\"a.b\"=\"c\",} 1 1520872607.5 # {\"t.id\"=\"1\"} 2\n"
      "# EOF\n";
  if (parse_om(body) != 0) MW_FAIL("%s", err);
  /* 12 sample lines; the 2nd and 3rd http.status lines repeat the first */
  CHECK_INT(mw_batch_len(batch), 10);
  CHECK_INT(st.duplicates, 2);
  CHECK_STR(metric(0), "go.gc_duration_seconds");
  CHECK_STR(metric(2), "go.gc_duration_seconds_created");
  CHECK_STR(metric(4), "http.status");
  CHECK_STR(label(4, "q"), "0.9");
  CHECK_STR(metric(5), "go.gc_duration_seconds_sum");
  CHECK_STR(metric(6),
            "Heiz\xc3\xb6lr\xc3\xbc\x63kstoßabd\xc3\xa4mpfung 10\xe2\x82\xac metric with "
            "\"interesting\" {character\nchoices}");
  CHECK_STR(metric(9), "x.y");
  CHECK_STR(label(9, "a.b"), "c");
  CHECK_INT(mw_ffi_batch_ts(batch, 9), 1520872607500LL);
  CHECK_INT(st.exemplars, 3);
  CHECK_INT(mw_batch_exemplars(batch), 3);
  mw_exemplar_t e;
  mw_batch_exemplar(batch, 0, &e);
  mw_label_t l;
  CHECK(mw_labels_get(e.labels, e.labels_len, "id.thing", 8, &l));
  CHECK_INT(l.value_len, 20);
  mw_batch_exemplar(batch, 2, &e);
  CHECK(mw_labels_get(e.labels, e.labels_len, "t.id", 4, &l));
  const char *name, *help, *unit;
  size_t nl, hl, ul;
  int type;
  CHECK_INT(mw_ffi_scrapecache_meta_get(cache, 0, &name, &nl, &type, &help, &hl, &unit, &ul), 0);
  CHECK_STR(name, "go.gc_duration_seconds");
  CHECK_STR(unit, "seconds");
  CHECK_INT(type, MW_METRIC_SUMMARY);
  /* _created of a summary skipped, its name quoted; twice: misses, hits */
  fresh();
  for (int round = 0; round < 2; round++) {
    if (parse_fmt(body, MW_EXPFMT_OPENMETRICS, MW_EXPFMT_SKIP_CREATED) != 0) MW_FAIL("%s", err);
    CHECK_INT(mw_batch_len(batch), 9);
    CHECK_INT(st.created_skipped, 1);
    CHECK_STR(metric(2), "go.gc_duration_seconds");
  }
}

/* metric_name_validation_scheme = "legacy" (MW_EXPFMT_LEGACY_NAMES): quoted
 * names are parsed, and refused unless the legacy grammar allows them. */
static void test_utf8_legacy_scheme(void) {
  const uint32_t legacy = MW_EXPFMT_LEGACY_NAMES;
  fresh();
  CHECK_INT(parse_fmt("{\"up\",\"job\"=\"x\"} 1\n# HELP \"my.metric\" h\n", MW_EXPFMT_TEXT, legacy),
            0);
  CHECK_STR(metric(0), "up");
  CHECK_STR(label(0, "job"), "x");
  static const struct {
    int om;
    const char *body, *err;
  } refused[] = {
      {0, "a 1\n{\"my.metric\"} 1\n",
       "line 2: metric name \"my.metric\" is not valid under the legacy validation scheme"},
      {0, "a{\"my.label\"=\"v\"} 1\n",
       "line 1: label name \"my.label\" is not valid under the legacy validation scheme"},
      {0, "{\"a:b\"=\"v\",\"c\"} 1\n",
       "line 1: label name \"a:b\" is not valid under the legacy validation scheme"},
      {0, "{\"1a\"} 1\n",
       "line 1: metric name \"1a\" is not valid under the legacy validation scheme"},
      {0, "{\"a\\\\b\"} 1\n",
       "line 1: metric name \"a\\\\\\\\b\" is not valid under the legacy validation scheme"},
      {1, "{\"my.metric\"} 1\n# EOF\n",
       "line 1: metric name \"my.metric\" is not valid under the legacy validation scheme"},
      {1, "a 1 # {\"t.id\"=\"1\"} 1\n# EOF\n",
       "line 1: label name \"t.id\" is not valid under the legacy validation scheme"},
  };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    fresh();
    int rc =
        parse_fmt(refused[i].body, refused[i].om ? MW_EXPFMT_OPENMETRICS : MW_EXPFMT_TEXT, legacy);
    if (rc != -1) MW_FAIL("case %zu accepted: %s", i, refused[i].body);
    if (strcmp(err, refused[i].err) != 0)
      MW_FAIL("case %zu: error \"%s\", expected \"%s\"", i, err, refused[i].err);
  }
  /* A cache that learnt a UTF-8 name under utf8 does not let it through
   * after a switch to legacy, and learns it again after a switch back. */
  fresh();
  CHECK_INT(parse("{\"my.metric\"} 1\nok 2\n"), 0);
  CHECK_INT(parse_fmt("{\"my.metric\"} 1\nok 2\n", MW_EXPFMT_TEXT, legacy), -1);
  CHECK_STR(err, "line 1: metric name \"my.metric\" is not valid under the legacy validation "
                 "scheme");
  CHECK_INT(parse("{\"my.metric\"} 1\nok 2\n"), 0);
  CHECK_INT(mw_batch_len(batch), 2);
}

/* Quoted names that Prometheus 3 refuses: errors name the line. */
static const struct {
  int om;
  const char *body, *err;
} invalid_utf8[] = {
    {0, "a 1\n{\"a\",\"b\"} 1\n",
     "line 2: metric name already set while parsing: \"{\\\"a\\\",\\\"b\\\"}\""},
    {0, "m{\"a\"} 1\n", "line 1: metric name already set while parsing: \"m{\\\"a\\\"}\""},
    {0, "{a=\"b\"} 1\n", "line 1: metric name not set while parsing: \"{a=\\\"b\\\"}\""},
    {0, "{} 1\n", "line 1: metric name not set while parsing: \"{}\""},
    {0, "{A}0\n", "line 1: expected equal, got \"}\" while parsing: \"{A}\""},
    {0, "{\"a\" 1\n", "line 1: expected equal, got \"1\""},
    {0, "{\"a\", \"b = \"c\"} 1\n", "line 1: expected equal, got \"c\""},
    {0, "a 1\n\n{\"my.metric\xff\"} 1\n", "line 3: invalid UTF-8 metric name \"my.metric\\xff\""},
    {0, "{\"\"} 1\n", "line 1: invalid metric name \"\""},
    {0, "{\"m\",\"\"=\"v\"} 1\n", "line 1: invalid label name \"\""},
    {0, "{\"m\",\"\xc3(\"=\"v\"} 1\n", "line 1: invalid UTF-8 label name \"\\xc3(\""},
    {0, "{\"m\",\"a\"=\"1\",a=\"2\"} 1\n", "line 1: label name \"a\" is not unique"},
    {0, "{\"m\",\"__name__\"=\"x\"} 1\n", "line 1: label name \"__name__\" is not unique"},
    {0, "{\"unterminated} 1\n", "line 1: expected label name, got \"\\\"\""},
    {0, "{\"m\\\n\"} 1\n", "line 1: expected label name, got \"\\\"\""},
    {0, "\"m\" 1\n", "line 1: expected a valid start token, got \"\\\"\""},
    {0, "# HELP \"unterminated help\n", "line 1: expected metric name after HELP, got \"\\\"\""},
    {0, "# TYPE \"a\xff\" counter\n", "line 1: invalid UTF-8 metric name \"a\\xff\""},
    {1, "{\"a\", b=\"c\"} 1\n# EOF\n", "line 1: expected label name, got \" \""},
    {1, "{\"a\" ,b=\"c\"} 1\n# EOF\n", "line 1: expected equal, got \" \""},
    {1, "a 1 # {\"q\"} 1\n# EOF\n", "line 1: expected label name, got \"}\""},
    {1, "a 1 # {\"x\ny\"=\"1\"} 1\n# EOF\n", "line 1: expected label name, got \"\\\"\""},
    {1, "# UNIT \"a.bytes\" seconds\n# EOF\n",
     "line 1: unit \"seconds\" not a suffix of metric \"a.bytes\""},
    {1, "{\"a\"} 1\n", "line 2: data does not end with # EOF"},
};

static void test_utf8_invalid(void) {
  for (size_t i = 0; i < sizeof invalid_utf8 / sizeof invalid_utf8[0]; i++) {
    fresh();
    int rc = invalid_utf8[i].om ? parse_om(invalid_utf8[i].body) : parse(invalid_utf8[i].body);
    if (rc != -1) MW_FAIL("case %zu accepted: %s", i, invalid_utf8[i].body);
    if (strncmp(err, invalid_utf8[i].err, strlen(invalid_utf8[i].err)) != 0)
      MW_FAIL("case %zu: error \"%s\", expected \"%s...\"", i, err, invalid_utf8[i].err);
    CHECK_INT(mw_batch_len(batch), 0);
  }
}

/* OpenMetrics timestamps are any finite float (Prometheus): one whose
 * milliseconds do not fit int64 drops its sample, counted; the scrape goes
 * on. honor_timestamps = false keeps it at the scrape's time. */
static void test_om_timestamps(void) {
  const char *body = "a 1 12345678901234567890.1234567890\n"
                     "b 2 -12345678901234567890.5 # {x=\"1\"} 3\n"
                     "c 3 1e15\n"
                     "d 4 -1520872607.25\n"
                     "# EOF\n";
  fresh();
  for (int round = 0; round < 2; round++) { /* misses, then hits */
    if (parse_om(body) != 0) MW_FAIL("%s", err);
    CHECK_INT(mw_batch_len(batch), 2);
    CHECK_INT(st.out_of_bounds, 2);
    CHECK_INT(st.samples, 2);
    CHECK_INT(st.exemplars, 0); /* the dropped sample's exemplar goes with it */
    CHECK_INT(st.stale, 0);
    CHECK_STR(metric(0), "c");
    CHECK_INT(mw_ffi_batch_ts(batch, 0), 1000000000000000000LL);
    CHECK_INT(mw_ffi_batch_ts(batch, 1), -1520872607250LL);
  }
  fresh();
  CHECK_INT(parse_fmt(body, MW_EXPFMT_OPENMETRICS, MW_EXPFMT_IGNORE_TIMESTAMPS), 0);
  CHECK_INT(mw_batch_len(batch), 4);
  CHECK_INT(st.out_of_bounds, 0);
  CHECK_INT(mw_ffi_batch_ts(batch, 0), TS);
  /* Not floats, or not finite: invalid, as before. */
  fresh();
  CHECK_INT(parse_om("a 1 1e400\n# EOF\n"), -1);
  CHECK_STR(err, "line 1: invalid timestamp \"1e400\"");
  CHECK_INT(parse_om("a 1 -Inf\n# EOF\n"), -1);
  CHECK_STR(err, "line 1: invalid timestamp \"-Inf\"");
}

/* prometheus.echo writes UTF-8 names as Prometheus 3 does: quoted, the
 * metric name inside the braces; what it writes parses back the same. */
static void test_write_utf8_names(void) {
  fresh();
  const char *body = "{\"my.metric\",\"my.label\"=\"v\",a=\"b\",\"q\\\"\\\\\\n\"=\"x\"} 1 5\n"
                     "{\"only.name\"} 2 5\n"
                     "legacy{\"l.x\"=\"1\"} 3 5\n"
                     "{\"1a\"} 4 5\n";
  if (parse(body) != 0) MW_FAIL("%s", err);
  char *out;
  size_t out_len;
  CHECK_INT(mw_ffi_batch_write(batch, 0, &out, &out_len), 0);
  out = realloc(out, out_len + 1);
  out[out_len] = 0;
  CHECK_STR(out, "{\"my.metric\",a=\"b\",\"my.label\"=\"v\",\"q\\\"\\\\\\n\"=\"x\"} 1 5\n"
                 "{\"only.name\"} 2 5\n"
                 "legacy{\"l.x\"=\"1\"} 3 5\n"
                 "{\"1a\"} 4 5\n");
  mw_scrapecache_t *c2 = mw_scrapecache_new();
  mw_batch_t *b2 = mw_batch_new(NULL);
  CHECK_INT(mw_expfmt_parse(c2, b2, out, out_len, MW_EXPFMT_TEXT, TS, 0, &st, err, sizeof err), 0);
  CHECK_INT(mw_batch_len(b2), 4);
  for (size_t i = 0; i < 4; i++) {
    size_t l1, l2;
    const uint8_t *e1 = mw_ffi_batch_labels(batch, i, &l1), *e2 = mw_ffi_batch_labels(b2, i, &l2);
    CHECK(l1 == l2 && memcmp(e1, e2, l1) == 0);
  }
  mw_batch_free(b2);
  mw_scrapecache_free(c2);
  free(out);
}

static void test_ffi_cdef(void) {
  const char *s = mw_ffi_cdef();
  CHECK(strstr(s, "/* --- exposition / series / batch") != NULL);
  CHECK(strstr(s, "int mw_ffi_expfmt_parse(mw_scrapecache_t *c, mw_batch_t *b,") != NULL);
  CHECK(strstr(s, "double mw_ffi_batch_stale_nan(void);") != NULL);
  size_t pos = 0, nl, vl;
  const char *n, *v;
  const uint8_t enc[] = "a\xff"
                        "b\xff";
  CHECK_INT(mw_ffi_labels_next(enc, 4, &pos, &n, &nl, &v, &vl), 1);
  CHECK(nl == 1 && vl == 1 && *n == 'a' && *v == 'b');
  CHECK_INT(mw_ffi_labels_next(enc, 4, &pos, &n, &nl, &v, &vl), 0);
}

/* A scrape cache's bytes per series beyond the label bytes, at 2,049
 * series (just past a power of two, where doubling arrays are half empty):
 * keys (24 bytes, doubling: up to 48) and their index, one byte of flags
 * per series, the series table's entries and index, the arena's last chunk.
 * Before the flags byte and the index sizing of base/grow.h it was 190. */
/* Scrapes that see no new line free the series table's index; a line new
 * to the cache then (a known series written another way, a new series)
 * finds its series through an index built again. */
static void test_index_dropped_and_rebuilt(void) {
  fresh();
  const char *body = "a{x=\"1\",y=\"2\"} 1\nb 2\n";
  CHECK_INT(parse(body), 0);
  uint32_t a = mw_batch_refs(batch)[0], b = mw_batch_refs(batch)[1];
  CHECK_INT(parse(body), 0);
  CHECK(!mw_series_indexed(mw_scrapecache_series(cache)));
  CHECK_INT(parse("a{y=\"2\",x=\"1\"} 1\nb 2\nc 3\n"), 0);
  CHECK_INT(st.series_added, 1);
  CHECK_INT(mw_batch_len(batch), 3);
  CHECK_INT(mw_batch_refs(batch)[0], a);
  CHECK_INT(mw_batch_refs(batch)[1], b);
  CHECK_INT(mw_series_len(mw_scrapecache_series(cache)), 3);
  CHECK(mw_series_indexed(mw_scrapecache_series(cache)));
  /* Likewise the key index, after scrapes in the same order: the lines then
   * come in another order and are all found (no new key, no new series). */
  const char *abc = "a{x=\"1\",y=\"2\"} 1\nb 2\nc 3\n";
  fresh();
  CHECK_INT(parse(abc), 0);
  a = mw_batch_refs(batch)[0];
  b = mw_batch_refs(batch)[1];
  CHECK_INT(parse(abc), 0);
  size_t keys = mw_scrapecache_len(cache), mem = mw_scrapecache_mem(cache);
  CHECK_INT(parse(abc), 0);
  CHECK_INT(mw_scrapecache_mem(cache), mem); /* nothing left to free */
  CHECK_INT(parse("c 3\nb 2\na{x=\"1\",y=\"2\"} 1\n"), 0);
  CHECK_INT(st.series_added, 0);
  CHECK_INT(mw_scrapecache_len(cache), keys);
  CHECK_INT(mw_batch_refs(batch)[2], a);
  CHECK_INT(mw_batch_refs(batch)[1], b);
  CHECK(mw_scrapecache_mem(cache) > mem); /* the key index is back */
}

static void test_cache_memory_per_series(void) {
  enum { N = 2049 };
  char *body = malloc((size_t)N * 64), *p = body;
  for (int i = 0; i < N; i++)
    p += sprintf(p, "m_%d{path=\"/item/%d\",code=\"200\"} %d\n", i % 50, i, i);
  fresh();
  CHECK_INT(parse_fmt2(body, (size_t)(p - body)), 0);
  CHECK_INT(parse_fmt2(body, (size_t)(p - body)), 0); /* steady state */
  size_t lb;
  mw_series_mem(mw_scrapecache_series(cache), &lb);
  double per = (double)(mw_scrapecache_mem(cache) - lb) / N;
  printf("scrape cache of %d series: %.1f bytes/series beyond %zu label bytes\n", N, per, lb / N);
  CHECK(per <= 130);
  free(body);
}

int main(void) {
  MW_RUN(test_fixtures);
  MW_RUN(test_cache_memory_per_series);
  MW_RUN(test_index_dropped_and_rebuilt);
  MW_RUN(test_fixture_values);
  MW_RUN(test_text_syntax);
  MW_RUN(test_values);
  MW_RUN(test_openmetrics);
  MW_RUN(test_exemplars);
  MW_RUN(test_exemplars_relabel);
  MW_RUN(test_write_negative_timestamps);
  MW_RUN(test_invalid);
  MW_RUN(test_utf8_text);
  MW_RUN(test_utf8_openmetrics);
  MW_RUN(test_utf8_legacy_scheme);
  MW_RUN(test_utf8_invalid);
  MW_RUN(test_om_timestamps);
  MW_RUN(test_write_utf8_names);
  MW_RUN(test_utf8_relabel);
  MW_RUN(test_cache_and_staleness);
  MW_RUN(test_new_series_groups);
  MW_RUN(test_long_series_texts);
  MW_RUN(test_churn);
  MW_RUN(test_memory_per_series);
  MW_RUN(test_relabel_churn);
  MW_RUN(test_line_limit);
  MW_RUN(test_content_type);
  MW_RUN(test_ffi_cdef);
  mw_scrapecache_free(cache);
  mw_batch_free(batch);
  return mw_test_summary();
}
