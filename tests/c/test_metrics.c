/* The metrics registry and its exposition writer: exact text 0.0.4 and
 * OpenMetrics output (as prometheus/common's expfmt writes it), float
 * formatting (Go's strconv 'g', -1), Accept negotiation, gzip, handles. */
#include <inttypes.h>
#include <libdeflate.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/gzip.h"
#include "exposition/registry.h"
#include "exposition/write.h"
#include "ffi.h"
#include "test.h"

static char err[256];

static int32_t child(mw_metrics_t *reg, int32_t fam, const char *joined) {
  return mw_ffi_metrics_child_get(reg, fam, joined, strlen(joined), err, sizeof err);
}

/* The exposition of reg in format, as a malloc'd string (caller frees). */
static char *expose(mw_metrics_t *reg, int format) {
  mw_expose_buf_t b = {0};
  if (mw_expose_write(reg, format, &b, err, sizeof err) < 0) return NULL;
  char *s = malloc(b.len + 1);
  if (b.len) memcpy(s, b.data, b.len);
  s[b.len] = '\0';
  mw_expose_buf_free(&b);
  return s;
}

#define CHECK_EXPOSE(reg, format, want)                                                            \
  do {                                                                                             \
    char *got_ = expose(reg, format);                                                              \
    if (!got_ || strcmp(got_, want) != 0) {                                                        \
      fprintf(stderr, "--- got:\n%s--- want:\n%s---\n", got_ ? got_ : err, want);                  \
      free(got_);                                                                                  \
      MW_FAIL("exposition mismatch");                                                              \
    }                                                                                              \
    free(got_);                                                                                    \
  } while (0)

static const char *fmt(double v, int om) {
  static char buf[40];
  mw_expose_fmt_float(buf, v, om);
  return buf;
}

static void test_float_format(void) {
  CHECK_STR(fmt(1, 0), "1");
  CHECK_STR(fmt(0, 0), "0");
  CHECK_STR(fmt(-0.0, 0), "0");
  CHECK_STR(fmt(-1, 0), "-1");
  CHECK_STR(fmt(0.5, 0), "0.5");
  CHECK_STR(fmt(1e6, 0), "1e+06");
  CHECK_STR(fmt(123456, 0), "123456");
  CHECK_STR(fmt(999999, 0), "999999");
  CHECK_STR(fmt(1234567, 0), "1.234567e+06");
  CHECK_STR(fmt(12345678, 0), "1.2345678e+07");
  CHECK_STR(fmt(123456.7, 0), "123456.7");
  CHECK_STR(fmt(100, 0), "100");
  CHECK_STR(fmt(0.1, 0), "0.1");
  CHECK_STR(fmt(0.0001, 0), "0.0001");
  CHECK_STR(fmt(0.00001, 0), "1e-05");
  CHECK_STR(fmt(-2.5e-5, 0), "-2.5e-05");
  CHECK_STR(fmt(1.0 / 3, 0), "0.3333333333333333");
  CHECK_STR(fmt(0.1 + 0.2, 0), "0.30000000000000004");
  CHECK_STR(fmt(1e21, 0), "1e+21");
  CHECK_STR(fmt(1e100, 0), "1e+100");
  CHECK_STR(fmt(5e-324, 0), "5e-324");
  CHECK_STR(fmt(1.7976931348623157e308, 0), "1.7976931348623157e+308");
  CHECK_STR(fmt(9007199254740993.0, 0), "9.007199254740992e+15");
  CHECK_STR(fmt(18446744073709551615.0, 0), "1.8446744073709552e+19");
  /* 2^-1017: the nearest 16-digit decimal does not round-trip, its neighbour does */
  CHECK_STR(fmt(ldexp(1, -1017), 0), "7.120236347223045e-307");
  CHECK_STR(fmt(NAN, 0), "NaN");
  CHECK_STR(fmt(INFINITY, 0), "+Inf");
  CHECK_STR(fmt(-INFINITY, 0), "-Inf");
  /* OpenMetrics: ".0" when there is neither '.' nor 'e' */
  CHECK_STR(fmt(1, 1), "1.0");
  CHECK_STR(fmt(0, 1), "0.0");
  CHECK_STR(fmt(-1, 1), "-1.0");
  CHECK_STR(fmt(42, 1), "42.0");
  CHECK_STR(fmt(0.5, 1), "0.5");
  CHECK_STR(fmt(1e6, 1), "1e+06");
  CHECK_STR(fmt(NAN, 1), "NaN");
  CHECK_STR(fmt(-INFINITY, 1), "-Inf");
}

/* The reference for mw_expose_fmt_float's fast paths: the original
 * exhaustive implementation (nearest p-digit decimal for p = 1..17, with the
 * lopsided-interval neighbour), formatted as Go's 'g' with eprec 6. */
static void ref_shortest_digits(double v, char *digits, int *nd, int *dp) {
  char buf[48];
  for (int p = 1; p <= 17; p++) {
    snprintf(buf, sizeof buf, "%.*e", p - 1, v);
    uint64_t m = 0;
    const char *s = buf;
    for (; *s && *s != 'e'; s++)
      if (*s >= '0' && *s <= '9') m = m * 10 + (uint64_t)(*s - '0');
    int e10 = atoi(s + 1) - (p - 1);
    double r = strtod(buf, NULL);
    if (r != v) {
      uint64_t m2 = r < v ? m + 1 : m - 1;
      if (m2 == 0) continue;
      snprintf(buf, sizeof buf, "%" PRIu64 "e%d", m2, e10);
      if (strtod(buf, NULL) != v) continue;
      m = m2;
    }
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, m);
    *dp = n + e10;
    while (n > 1 && tmp[n - 1] == '0')
      n--;
    memcpy(digits, tmp, (size_t)n);
    *nd = n;
    return;
  }
  digits[0] = '0';
  *nd = 1;
  *dp = 1;
}

static const char *ref_fmt(double v) {
  static char out[40];
  char digits[24], *p = out;
  int nd, dp;
  if (v == 1 || v == 0 || v == -1 || isnan(v) || isinf(v)) return fmt(v, 0);
  if (v < 0) {
    *p++ = '-';
    v = -v;
  }
  ref_shortest_digits(v, digits, &nd, &dp);
  int exp = dp - 1;
  if (exp < -4 || exp >= 6) {
    p += sprintf(p, "%c", digits[0]);
    if (nd > 1) p += sprintf(p, ".%.*s", nd - 1, digits + 1);
    sprintf(p, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
  } else {
    for (int i = 0; i < (dp > 0 ? dp : 1); i++)
      *p++ = dp > 0 && i < nd ? digits[i] : '0';
    if (nd - dp > 0) {
      *p++ = '.';
      for (int i = 0; i < nd - dp; i++)
        *p++ = dp + i >= 0 && dp + i < nd ? digits[dp + i] : '0';
    }
    *p = '\0';
  }
  return out;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void) { /* splitmix64 */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

/* Randomised cross-check of the fast paths against the reference: random
 * bit patterns, integers of every size, short decimals (what counters and
 * gauges hold), neighbours of those and of powers of two and ten. */
static void test_float_format_random(void) {
  int bad = 0;
  for (int i = 0; i < 200000 && bad < 10; i++) {
    double v;
    uint64_t r = rng();
    switch (i % 8) {
    case 0: { /* any finite double */
      memcpy(&v, &r, sizeof v);
      if (!isfinite(v)) continue;
      break;
    }
    case 1: v = (double)(r >> (r % 64)); break;                                 /* integers */
    case 2: v = (double)(r % 100000000) / pow(10, (double)(rng() % 12)); break; /* decimals */
    case 3: v = (double)(r % 1000000) * pow(10, (double)(int)(rng() % 40) - 20); break;
    case 4:
      v = nextafter((double)(r % 10000000) / pow(10, (double)(rng() % 9)),
                    rng() & 1 ? 0 : INFINITY);
      break;
    case 5: v = ldexp(1, (int)(r % 200) - 100); break; /* powers of two */
    case 6: v = nextafter(ldexp(1, (int)(r % 200) - 100), rng() & 1 ? 0 : INFINITY); break;
    default: v = (double)(r % 1000000000) / 100.0; break; /* /proc ticks as seconds */
    }
    if (r & (1ull << 63)) v = -v;
    char got[40];
    mw_expose_fmt_float(got, v, 0);
    const char *want = ref_fmt(v);
    if (strcmp(got, want) != 0) {
      fprintf(stderr, "fmt %.17g: got %s want %s\n", v, got, want);
      bad++;
    }
  }
  CHECK(bad == 0);
}

/* A registry with every type, label sorting and escaping. */
static mw_metrics_t *sample_registry(void) {
  mw_metrics_t *reg = mw_metrics_create();
  const double bounds[] = {0.1, 0.5, 1};
  int32_t req = mw_ffi_metrics_family_add(reg, "http_requests_total", "Total requests.", "counter",
                                          "method\x1f"
                                          "code",
                                          11, NULL, 0, err, sizeof err);
  mw_metrics_add(reg,
                 child(reg, req,
                       "post\x1f"
                       "500"),
                 1.5);
  int32_t h = child(reg, req,
                    "get\x1f"
                    "200");
  mw_metrics_inc(reg, h);
  mw_metrics_add(reg, h, 2);
  int32_t temp = mw_ffi_metrics_family_add(reg, "temperature", "Temp \"in\" C\\ and\nnext", "gauge",
                                           "room", 4, NULL, 0, err, sizeof err);
  mw_metrics_set(reg, child(reg, temp, "a\\b\"c\nd"), -3.5);
  mw_metrics_set(reg, child(reg, temp, ""), 21);
  int32_t lat = mw_ffi_metrics_family_add(reg, "latency_seconds", "Latency.", "histogram",
                                          "component_id", 12, bounds, 3, err, sizeof err);
  int32_t la = child(reg, lat, "a");
  mw_metrics_observe(reg, la, 0.25);
  mw_metrics_observe(reg, la, 0.5);
  mw_metrics_observe(reg, la, 0.5);
  mw_metrics_observe(reg, la, 2);
  int32_t u = mw_ffi_metrics_family_add(reg, "untyped_thing", "", "untyped", "", 0, NULL, 0, err,
                                        sizeof err);
  mw_metrics_set(reg, child(reg, u, ""), 1e6);
  int32_t w = mw_ffi_metrics_family_add(reg, "weird_counter", "No suffix.", "counter", "", 0, NULL,
                                        0, err, sizeof err);
  mw_metrics_add(reg, child(reg, w, ""), 2);
  /* a labelled family without children is not exposed */
  mw_ffi_metrics_family_add(reg, "empty_gauge", "Nothing yet.", "gauge", "x", 1, NULL, 0, err,
                            sizeof err);
  return reg;
}

static void test_expose_text(void) {
  mw_metrics_t *reg = sample_registry();
  CHECK_EXPOSE(reg, MW_EXPOSE_TEXT,
               "# HELP http_requests_total Total requests.\n"
               "# TYPE http_requests_total counter\n"
               "http_requests_total{code=\"200\",method=\"get\"} 3\n"
               "http_requests_total{code=\"500\",method=\"post\"} 1.5\n"
               "# HELP latency_seconds Latency.\n"
               "# TYPE latency_seconds histogram\n"
               "latency_seconds_bucket{component_id=\"a\",le=\"0.1\"} 0\n"
               "latency_seconds_bucket{component_id=\"a\",le=\"0.5\"} 3\n"
               "latency_seconds_bucket{component_id=\"a\",le=\"1\"} 3\n"
               "latency_seconds_bucket{component_id=\"a\",le=\"+Inf\"} 4\n"
               "latency_seconds_sum{component_id=\"a\"} 3.25\n"
               "latency_seconds_count{component_id=\"a\"} 4\n"
               "# HELP temperature Temp \"in\" C\\\\ and\\nnext\n"
               "# TYPE temperature gauge\n"
               "temperature{room=\"\"} 21\n"
               "temperature{room=\"a\\\\b\\\"c\\nd\"} -3.5\n"
               "# HELP untyped_thing \n"
               "# TYPE untyped_thing untyped\n"
               "untyped_thing 1e+06\n"
               "# HELP weird_counter No suffix.\n"
               "# TYPE weird_counter counter\n"
               "weird_counter 2\n");
  mw_metrics_free(reg);
}

static void test_expose_openmetrics(void) {
  mw_metrics_t *reg = sample_registry();
  static const char want[] = "# HELP http_requests Total requests.\n"
                             "# TYPE http_requests counter\n"
                             "http_requests_total{code=\"200\",method=\"get\"} 3.0\n"
                             "http_requests_total{code=\"500\",method=\"post\"} 1.5\n"
                             "# HELP latency_seconds Latency.\n"
                             "# TYPE latency_seconds histogram\n"
                             "latency_seconds_bucket{component_id=\"a\",le=\"0.1\"} 0\n"
                             "latency_seconds_bucket{component_id=\"a\",le=\"0.5\"} 3\n"
                             "latency_seconds_bucket{component_id=\"a\",le=\"1.0\"} 3\n"
                             "latency_seconds_bucket{component_id=\"a\",le=\"+Inf\"} 4\n"
                             "latency_seconds_sum{component_id=\"a\"} 3.25\n"
                             "latency_seconds_count{component_id=\"a\"} 4\n"
                             "# HELP temperature Temp \\\"in\\\" C\\\\ and\\nnext\n"
                             "# TYPE temperature gauge\n"
                             "temperature{room=\"\"} 21.0\n"
                             "temperature{room=\"a\\\\b\\\"c\\nd\"} -3.5\n"
                             "# HELP untyped_thing \n"
                             "# TYPE untyped_thing unknown\n"
                             "untyped_thing 1e+06\n"
                             "# HELP weird_counter No suffix.\n"
                             "# TYPE weird_counter unknown\n"
                             "weird_counter 2.0\n"
                             "# EOF\n";
  CHECK_EXPOSE(reg, MW_EXPOSE_OPENMETRICS, want);
  CHECK_EXPOSE(reg, MW_EXPOSE_OPENMETRICS_0_0_1, want);
  mw_metrics_free(reg);
}

static void test_expose_empty_and_default_buckets(void) {
  mw_metrics_t *reg = mw_metrics_create();
  CHECK_EXPOSE(reg, MW_EXPOSE_TEXT, "");
  CHECK_EXPOSE(reg, MW_EXPOSE_OPENMETRICS, "# EOF\n");
  const double with_inf[] = {1, 2, INFINITY};
  int32_t h = mw_metrics_family_add(reg, "h", "H.", MW_METRICS_HISTOGRAM, NULL, 0, with_inf, 3, err,
                                    sizeof err);
  CHECK(h >= 0);
  CHECK_INT(mw_metrics_family_get(reg, h)->nbounds, 2);
  int32_t d = mw_metrics_family_add(reg, "d", "D.", MW_METRICS_HISTOGRAM, NULL, 0, NULL, 0, err,
                                    sizeof err);
  CHECK(d >= 0);
  mw_metrics_observe(reg, mw_metrics_child_get(reg, d, NULL, 0, err, sizeof err), 1e6);
  mw_metrics_observe(reg, mw_metrics_child_get(reg, d, NULL, 0, err, sizeof err), NAN);
  CHECK_EXPOSE(reg, MW_EXPOSE_TEXT,
               "# HELP d D.\n"
               "# TYPE d histogram\n"
               "d_bucket{le=\"0.005\"} 0\n"
               "d_bucket{le=\"0.01\"} 0\n"
               "d_bucket{le=\"0.025\"} 0\n"
               "d_bucket{le=\"0.05\"} 0\n"
               "d_bucket{le=\"0.1\"} 0\n"
               "d_bucket{le=\"0.25\"} 0\n"
               "d_bucket{le=\"0.5\"} 0\n"
               "d_bucket{le=\"1\"} 0\n"
               "d_bucket{le=\"2.5\"} 0\n"
               "d_bucket{le=\"5\"} 0\n"
               "d_bucket{le=\"10\"} 0\n"
               "d_bucket{le=\"+Inf\"} 2\n"
               "d_sum NaN\n"
               "d_count 2\n"
               "# HELP h H.\n"
               "# TYPE h histogram\n"
               "h_bucket{le=\"1\"} 0\n"
               "h_bucket{le=\"2\"} 0\n"
               "h_bucket{le=\"+Inf\"} 0\n"
               "h_sum 0\n"
               "h_count 0\n");
  mw_metrics_free(reg);
}

static void test_histogram_many_buckets(void) {
  double b[100];
  for (int i = 0; i < 100; i++)
    b[i] = i;
  mw_metrics_t *reg = mw_metrics_create();
  int32_t f =
      mw_metrics_family_add(reg, "big", "", MW_METRICS_HISTOGRAM, NULL, 0, b, 100, err, sizeof err);
  int32_t c = mw_metrics_child_get(reg, f, NULL, 0, err, sizeof err);
  CHECK_INT(mw_metrics_observe(reg, c, 41.5), 0);
  CHECK_INT(mw_metrics_observe(reg, c, 42), 0);
  CHECK_INT(mw_metrics_observe(reg, c, -5), 0);
  CHECK_INT(mw_metrics_observe(reg, c, 1000), 0);
  mw_metrics_child_t *ch = NULL;
  mw_metrics_family_t *fam = mw_metrics_family_get(reg, f);
  for (size_t i = 0; i < fam->table_size && !ch; i++)
    ch = fam->table[i];
  CHECK(ch != NULL);
  CHECK_INT(ch->buckets[0], 1);
  CHECK_INT(ch->buckets[42], 2);
  CHECK_INT(ch->buckets[100], 1);
  CHECK_INT(ch->count, 4);
  mw_metrics_free(reg);
}

static void test_family_validation(void) {
  mw_metrics_t *reg = mw_metrics_create();
  const char *l1[] = {"a", "a"};
  const char *l2[] = {"__x"};
  const char *l3[] = {"le"};
  const char *l4[] = {"9x"};
  const double bad[] = {1, 1};
  CHECK_INT(
      mw_metrics_family_add(reg, "9bad", "", MW_METRICS_GAUGE, NULL, 0, NULL, 0, err, sizeof err),
      -1);
  CHECK(strstr(err, "invalid metric name") != NULL);
  CHECK_INT(mw_metrics_family_add(reg, "x", "", MW_METRICS_GAUGE, l1, 2, NULL, 0, err, sizeof err),
            -1);
  CHECK(strstr(err, "duplicate label name") != NULL);
  CHECK_INT(mw_metrics_family_add(reg, "x", "", MW_METRICS_GAUGE, l2, 1, NULL, 0, err, sizeof err),
            -1);
  CHECK_INT(mw_metrics_family_add(reg, "x", "", MW_METRICS_GAUGE, l4, 1, NULL, 0, err, sizeof err),
            -1);
  CHECK_INT(
      mw_metrics_family_add(reg, "x", "", MW_METRICS_HISTOGRAM, l3, 1, NULL, 0, err, sizeof err),
      -1);
  CHECK(mw_metrics_family_add(reg, "x", "", MW_METRICS_GAUGE, l3, 1, NULL, 0, err, sizeof err) >=
        0);
  CHECK_INT(
      mw_metrics_family_add(reg, "y", "", MW_METRICS_HISTOGRAM, NULL, 0, bad, 2, err, sizeof err),
      -1);
  CHECK(strstr(err, "strictly increasing") != NULL);
  CHECK_INT(
      mw_metrics_family_add(reg, "y", "\xff", MW_METRICS_GAUGE, NULL, 0, NULL, 0, err, sizeof err),
      -1);
  CHECK_INT(mw_ffi_metrics_family_add(reg, "y", "", "summary", "", 0, NULL, 0, err, sizeof err),
            -1);
  CHECK(strstr(err, "unknown metric type") != NULL);
  /* same definition: same handle; different: error */
  int32_t a = mw_ffi_metrics_family_add(reg, "ns:ok_total", "Ok.", "counter", "component_id", 12,
                                        NULL, 0, err, sizeof err);
  CHECK(a >= 0);
  CHECK_INT(mw_ffi_metrics_family_add(reg, "ns:ok_total", "Ok.", "counter", "component_id", 12,
                                      NULL, 0, err, sizeof err),
            a);
  CHECK_INT(mw_ffi_metrics_family_add(reg, "ns:ok_total", "Other.", "counter", "component_id", 12,
                                      NULL, 0, err, sizeof err),
            -1);
  CHECK(strstr(err, "already registered") != NULL);
  CHECK_INT(mw_ffi_metrics_family_add(reg, "ns:ok_total", "Ok.", "gauge", "component_id", 12, NULL,
                                      0, err, sizeof err),
            -1);
  mw_metrics_free(reg);
}

static void test_children_and_handles(void) {
  mw_metrics_t *reg = mw_metrics_create();
  int32_t f = mw_ffi_metrics_family_add(reg, "c_total", "C.", "counter",
                                        "a\x1f"
                                        "b",
                                        3, NULL, 0, err, sizeof err);
  int32_t x = child(reg, f,
                    "1\x1f"
                    "2");
  CHECK(x >= 0);
  CHECK_INT(child(reg, f,
                  "1\x1f"
                  "2"),
            x);
  CHECK(child(reg, f, "1\x1f") >= 0); /* second value empty */
  CHECK(child(reg, f, "1\x1f") != x);
  CHECK_INT(child(reg, f, "1"), -1); /* one value for two labels */
  CHECK(strstr(err, "got 1 label values, want 2") != NULL);
  CHECK_INT(child(reg, f,
                  "1\x1f"
                  "2\x1f"
                  "3"),
            -1);
  CHECK_INT(child(reg, f,
                  "\xc3\x28\x1f"
                  "b"),
            -1);
  CHECK(strstr(err, "UTF-8") != NULL);
  CHECK(child(reg, f, "\xc3\xa9\x1f\xe2\x82\xac") >= 0);
  CHECK_INT(mw_ffi_metrics_child_get(reg, 12345, "", 0, err, sizeof err), -1);

  double v = -1;
  CHECK_INT(mw_metrics_inc(reg, x), 0);
  CHECK_INT(mw_metrics_add(reg, x, 2.5), 0);
  CHECK_INT(mw_metrics_add(reg, x, -1), -1); /* counters only go up */
  CHECK_INT(mw_metrics_observe(reg, x, 1), -1);
  CHECK_INT(mw_metrics_get(reg, x, &v), 0);
  CHECK_DBL(v, 3.5);
  CHECK_INT(mw_metrics_set(reg, x, 10), 0);
  CHECK_INT(mw_ffi_metrics_get(reg, x, &v), 0);
  CHECK_DBL(v, 10);

  /* a deleted child's handle goes stale; a reused slot gets a new handle */
  CHECK_INT(mw_metrics_child_del(reg, x), 0);
  CHECK_INT(mw_metrics_child_del(reg, x), -1);
  CHECK_INT(mw_metrics_inc(reg, x), -1);
  CHECK_INT(mw_metrics_get(reg, x, &v), -1);
  int32_t y = child(reg, f,
                    "1\x1f"
                    "2");
  CHECK(y >= 0 && y != x);
  CHECK_INT(mw_metrics_get(reg, y, &v), 0);
  CHECK_DBL(v, 0);
  CHECK_INT(mw_metrics_inc(reg, -1), -1);
  CHECK_INT(mw_metrics_inc(reg, f), -1); /* a family handle is not a child */

  /* gauges go both ways; histograms only observe */
  int32_t g = mw_ffi_metrics_family_add(reg, "g", "", "gauge", "", 0, NULL, 0, err, sizeof err);
  int32_t gc = child(reg, g, "");
  CHECK_INT(mw_metrics_add(reg, gc, -2), 0);
  CHECK_INT(mw_metrics_get(reg, gc, &v), 0);
  CHECK_DBL(v, -2);
  int32_t h = mw_ffi_metrics_family_add(reg, "h", "", "histogram", "", 0, NULL, 0, err, sizeof err);
  int32_t hc = child(reg, h, "");
  CHECK_INT(mw_metrics_set(reg, hc, 1), -1);
  CHECK_INT(mw_metrics_inc(reg, hc), -1);
  CHECK_INT(mw_ffi_metrics_observe(reg, hc, 1), 0);
  CHECK_INT(mw_metrics_get(reg, hc, &v), 0);
  CHECK_DBL(v, 1);

  /* deleting a family makes its handles stale */
  CHECK_INT(mw_ffi_metrics_family_del(reg, f), 0);
  CHECK_INT(mw_ffi_metrics_family_del(reg, f), -1);
  CHECK_INT(mw_metrics_inc(reg, y), -1);
  CHECK_INT(mw_ffi_metrics_child_get(reg, f, "", 0, err, sizeof err), -1);
  mw_metrics_free(reg);
}

static void test_many_children(void) {
  mw_metrics_t *reg = mw_metrics_create();
  int32_t f = mw_ffi_metrics_family_add(reg, "many", "", "gauge", "i", 1, NULL, 0, err, sizeof err);
  static int32_t handles[20000];
  char buf[32];
  for (int i = 0; i < 20000; i++) {
    snprintf(buf, sizeof buf, "%d", i);
    handles[i] = child(reg, f, buf);
    CHECK(handles[i] >= 0);
    CHECK_INT(mw_metrics_set(reg, handles[i], i), 0);
  }
  for (int i = 0; i < 20000; i += 7) {
    snprintf(buf, sizeof buf, "%d", i);
    CHECK_INT(child(reg, f, buf), handles[i]);
  }
  CHECK_INT(mw_metrics_family_get(reg, f)->nchildren, 20000);
  char *s = expose(reg, MW_EXPOSE_TEXT);
  CHECK(s != NULL);
  /* children sorted by label value, bytewise */
  CHECK(strstr(s, "many{i=\"0\"} 0\nmany{i=\"1\"} 1\nmany{i=\"10\"} 10\n") != NULL);
  free(s);
  mw_metrics_free(reg);
}

static void test_component_del(void) {
  mw_metrics_t *reg = mw_metrics_create();
  int32_t a = mw_ffi_metrics_family_add(reg, "errors_total", "Errors.", "counter",
                                        "component_id\x1f"
                                        "kind",
                                        17, NULL, 0, err, sizeof err);
  int32_t b = mw_ffi_metrics_family_add(reg, "up", "Up.", "gauge", "component_id", 12, NULL, 0, err,
                                        sizeof err);
  int32_t other = mw_ffi_metrics_family_add(reg, "other", "Other.", "gauge", "kind", 4, NULL, 0,
                                            err, sizeof err);
  int32_t s1 = child(reg, a,
                     "scrape.x\x1f"
                     "io");
  int32_t s2 = child(reg, a,
                     "scrape.x\x1f"
                     "parse");
  int32_t keep = child(reg, a,
                       "scrape.xy\x1f"
                       "io");
  int32_t u1 = child(reg, b, "scrape.x");
  int32_t u2 = child(reg, b, "write.y");
  int32_t o = child(reg, other, "scrape.x");
  mw_metrics_inc(reg, keep);
  mw_metrics_set(reg, u2, 1);
  CHECK_INT(mw_ffi_metrics_component_del(reg, "scrape.x", 8), 3);
  CHECK_INT(mw_metrics_inc(reg, s1), -1);
  CHECK_INT(mw_metrics_inc(reg, s2), -1);
  CHECK_INT(mw_metrics_set(reg, u1, 1), -1);
  CHECK_INT(mw_metrics_set(reg, o, 1), 0); /* no component_id label: untouched */
  CHECK_INT(mw_ffi_metrics_component_del(reg, "scrape.x", 8), 0);
  CHECK_EXPOSE(reg, MW_EXPOSE_TEXT,
               "# HELP errors_total Errors.\n"
               "# TYPE errors_total counter\n"
               "errors_total{component_id=\"scrape.xy\",kind=\"io\"} 1\n"
               "# HELP other Other.\n"
               "# TYPE other gauge\n"
               "other{kind=\"scrape.x\"} 1\n"
               "# HELP up Up.\n"
               "# TYPE up gauge\n"
               "up{component_id=\"write.y\"} 1\n");
  /* the family survives: the component can come back on reload */
  CHECK(child(reg, b, "scrape.x") >= 0);
  CHECK_INT(mw_ffi_metrics_component_del(reg, "write.y", 7), 1);
  CHECK_INT(mw_ffi_metrics_component_del(reg, "scrape.x", 8), 1);
  CHECK_INT(mw_metrics_family_get(reg, b)->nchildren, 0);
  mw_metrics_free(reg);
}

static void test_sorted_order_kept(void) {
  /* the exposition order is cached between writes: every change of families
   * or children shows up in the next one, sorted */
  mw_metrics_t *reg = mw_metrics_create();
  int32_t m = mw_ffi_metrics_family_add(reg, "m", "M.", "gauge", "k", 1, NULL, 0, err, sizeof err);
  int32_t b = child(reg, m, "b");
  mw_metrics_set(reg, b, 2);
  CHECK_EXPOSE(reg, MW_EXPOSE_TEXT, "# HELP m M.\n# TYPE m gauge\nm{k=\"b\"} 2\n");
  CHECK_EXPOSE(reg, MW_EXPOSE_TEXT, "# HELP m M.\n# TYPE m gauge\nm{k=\"b\"} 2\n");
  int32_t a = child(reg, m, "a");
  mw_metrics_set(reg, a, 1);
  mw_metrics_set(reg, child(reg, m, "c"), 3);
  int32_t z = mw_ffi_metrics_family_add(reg, "z", "Z.", "gauge", NULL, 0, NULL, 0, err, sizeof err);
  int32_t x = mw_ffi_metrics_family_add(reg, "a", "A.", "gauge", NULL, 0, NULL, 0, err, sizeof err);
  CHECK(z >= 0 && x >= 0);
  CHECK_EXPOSE(reg, MW_EXPOSE_TEXT,
               "# HELP a A.\n# TYPE a gauge\na 0\n"
               "# HELP m M.\n# TYPE m gauge\nm{k=\"a\"} 1\nm{k=\"b\"} 2\nm{k=\"c\"} 3\n"
               "# HELP z Z.\n# TYPE z gauge\nz 0\n");
  CHECK_INT(mw_metrics_child_del(reg, b), 0);
  CHECK_INT(mw_metrics_family_del(reg, x), 0);
  mw_metrics_set(reg, a, 5); /* a value change alone keeps the order */
  CHECK_EXPOSE(reg, MW_EXPOSE_TEXT,
               "# HELP m M.\n# TYPE m gauge\nm{k=\"a\"} 5\nm{k=\"c\"} 3\n"
               "# HELP z Z.\n# TYPE z gauge\nz 0\n");
  mw_metrics_set(reg, child(reg, m, "b"), 4);
  CHECK_EXPOSE(reg, MW_EXPOSE_TEXT,
               "# HELP m M.\n# TYPE m gauge\nm{k=\"a\"} 5\nm{k=\"b\"} 4\nm{k=\"c\"} 3\n"
               "# HELP z Z.\n# TYPE z gauge\nz 0\n");
  mw_metrics_free(reg);
}

static int collect_calls, freed;

static int collect_cb(mw_metrics_t *reg, void *ud) {
  int32_t fam = *(int32_t *)ud;
  collect_calls++;
  return mw_metrics_set(reg, mw_metrics_child_get(reg, fam, NULL, 0, NULL, 0), collect_calls);
}

static void free_cb(void *ud) {
  (void)ud;
  freed++;
}

static void test_collectors(void) {
  static int32_t fam;
  mw_metrics_t *reg = mw_metrics_create();
  fam = mw_metrics_family_add(reg, "refreshed", "R.", MW_METRICS_GAUGE, NULL, 0, NULL, 0, err,
                              sizeof err);
  collect_calls = freed = 0;
  CHECK_INT(mw_metrics_collector_add(reg, collect_cb, free_cb, &fam), 0);
  CHECK_EXPOSE(reg, MW_EXPOSE_TEXT, "# HELP refreshed R.\n# TYPE refreshed gauge\nrefreshed 1\n");
  CHECK_EXPOSE(reg, MW_EXPOSE_OPENMETRICS,
               "# HELP refreshed R.\n# TYPE refreshed gauge\nrefreshed 2.0\n# EOF\n");
  CHECK_INT(mw_metrics_collector_del(reg, collect_cb, &fam), 0);
  CHECK_INT(freed, 1);
  CHECK_INT(mw_metrics_collector_del(reg, collect_cb, &fam), -1);
  CHECK_INT(mw_metrics_collector_add(reg, collect_cb, free_cb, &fam), 0);
  mw_metrics_free(reg);
  CHECK_INT(freed, 2);
  CHECK_INT(collect_calls, 2);
}

static void test_negotiate(void) {
  CHECK_INT(mw_expose_negotiate(NULL), MW_EXPOSE_TEXT);
  CHECK_INT(mw_expose_negotiate(""), MW_EXPOSE_TEXT);
  /* Prometheus 2.x scrape default */
  CHECK_INT(mw_expose_negotiate("application/openmetrics-text;version=1.0.0,application/"
                                "openmetrics-text;version=0.0.1;q=0.75,text/"
                                "plain;version=0.0.4;q=0.5,*/*;q=0.1"),
            MW_EXPOSE_OPENMETRICS);
  /* Prometheus 3.x scrape default */
  CHECK_INT(mw_expose_negotiate("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8,"
                                "application/openmetrics-text;version=0.0.1;q=0.9,text/"
                                "plain;version=1.0.0;escaping=allow-utf-8;q=0.8,text/"
                                "plain;version=0.0.4;q=0.7,*/*;q=0.6"),
            MW_EXPOSE_OPENMETRICS);
  CHECK_INT(mw_expose_negotiate("application/openmetrics-text"), MW_EXPOSE_OPENMETRICS_0_0_1);
  CHECK_INT(mw_expose_negotiate("application/openmetrics-text; version=0.0.1"),
            MW_EXPOSE_OPENMETRICS_0_0_1);
  CHECK_INT(mw_expose_negotiate("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            MW_EXPOSE_OPENMETRICS);
  CHECK_INT(mw_expose_negotiate("application/openmetrics-text;version=2.0.0"), MW_EXPOSE_TEXT);
  CHECK_INT(mw_expose_negotiate("text/plain;version=0.0.4;q=0.5,application/"
                                "openmetrics-text;version=1.0.0;q=0.9"),
            MW_EXPOSE_OPENMETRICS);
  CHECK_INT(mw_expose_negotiate("text/plain;q=0.1, application/openmetrics-text"),
            MW_EXPOSE_OPENMETRICS_0_0_1);
  CHECK_INT(mw_expose_negotiate("text/plain, application/openmetrics-text"), MW_EXPOSE_TEXT);
  CHECK_INT(mw_expose_negotiate("text/plain;version=1.0.0, application/openmetrics-text"),
            MW_EXPOSE_OPENMETRICS_0_0_1);
  CHECK_INT(mw_expose_negotiate("*/*"), MW_EXPOSE_TEXT);
  CHECK_INT(mw_expose_negotiate("text/html, application/xhtml+xml, */*;q=0.8"), MW_EXPOSE_TEXT);
  /* a protobuf clause is skipped (we do not serve protobuf) */
  CHECK_INT(mw_expose_negotiate("application/vnd.google.protobuf;proto=io.prometheus.client."
                                "MetricFamily;encoding=delimited;q=0.7,application/"
                                "openmetrics-text;version=1.0.0;q=0.5"),
            MW_EXPOSE_OPENMETRICS);
  /* goautoneg keeps q=0 clauses and a bad q parses as 0 */
  CHECK_INT(mw_expose_negotiate("application/openmetrics-text;version=1.0.0;q=0"),
            MW_EXPOSE_OPENMETRICS);
  CHECK_INT(mw_expose_negotiate("application/openmetrics-text;version=1.0.0;q=x, text/plain;q=0.1"),
            MW_EXPOSE_TEXT);
  /* media types are case-sensitive there; malformed clauses are skipped */
  CHECK_INT(mw_expose_negotiate("Application/OpenMetrics-Text;version=1.0.0"), MW_EXPOSE_TEXT);
  CHECK_INT(mw_expose_negotiate("application/openmetrics-text/x, application/openmetrics-text;"
                                "version=1.0.0"),
            MW_EXPOSE_OPENMETRICS);
  CHECK_STR(mw_expose_content_type(MW_EXPOSE_TEXT), "text/plain; version=0.0.4; charset=utf-8");
  CHECK_STR(mw_expose_content_type(MW_EXPOSE_OPENMETRICS),
            "application/openmetrics-text; version=1.0.0; charset=utf-8");
  CHECK_STR(mw_ffi_metrics_content_type(MW_METRICS_FMT_OPENMETRICS_0_0_1),
            "application/openmetrics-text; version=0.0.1; charset=utf-8");
  CHECK_STR(mw_ffi_metrics_content_type(99), "text/plain; version=0.0.4; charset=utf-8");
}

static void test_wants_gzip(void) {
  CHECK_INT(mw_expose_wants_gzip(NULL), 0);
  CHECK_INT(mw_expose_wants_gzip(""), 0);
  CHECK_INT(mw_expose_wants_gzip("gzip"), 1);
  CHECK_INT(mw_expose_wants_gzip("gzip, deflate, br"), 1);
  CHECK_INT(mw_expose_wants_gzip("deflate, gzip;q=1.0, *;q=0.5"), 1);
  CHECK_INT(mw_expose_wants_gzip("identity"), 0);
  CHECK_INT(mw_expose_wants_gzip("*"), 0);
  CHECK_INT(mw_expose_wants_gzip("gzip;q=0"), 0);
  CHECK_INT(mw_expose_wants_gzip("gzip;q=0.5, identity"), 0);
  CHECK_INT(mw_expose_wants_gzip("identity;q=0.5, gzip"), 1);
  CHECK_INT(mw_expose_wants_gzip("gzip, identity"), 0); /* a tie goes to identity */
  CHECK_INT(mw_expose_wants_gzip("GZIP"), 0);
  CHECK_INT(mw_expose_wants_gzip("x-gzip"), 0);
  CHECK_INT(mw_expose_wants_gzip("br;q=2, gzip"), 0); /* bad q: the rest is ignored */
}

static void test_gzip_roundtrip(void) {
  mw_metrics_t *reg = sample_registry();
  char *plain = expose(reg, MW_EXPOSE_TEXT);
  char *out = NULL;
  size_t len = 0;
  CHECK(plain != NULL);
  CHECK_INT(mw_ffi_metrics_expose(reg, MW_METRICS_FMT_TEXT, 1, &out, &len, err, sizeof err), 0);
  CHECK(len > 18 && (unsigned char)out[0] == 0x1f && (unsigned char)out[1] == 0x8b);
  struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
  char back[8192];
  size_t n = 0;
  CHECK_INT(libdeflate_gzip_decompress(d, out, len, back, sizeof back - 1, &n), LIBDEFLATE_SUCCESS);
  libdeflate_free_decompressor(d);
  back[n] = '\0';
  CHECK_STR(back, plain);
  mw_ffi_metrics_buf_free(out);
  CHECK_INT(mw_ffi_metrics_expose(reg, MW_METRICS_FMT_OPENMETRICS, 0, &out, &len, err, sizeof err),
            0);
  CHECK(len > 6 && memcmp(out + len - 6, "# EOF\n", 6) == 0);
  mw_ffi_metrics_buf_free(out);
  CHECK_INT(mw_ffi_metrics_expose(reg, 7, 0, &out, &len, err, sizeof err), -1);
  CHECK(out == NULL);
  CHECK(strstr(err, "unknown format") != NULL);
  free(plain);
  mw_metrics_free(reg);

  /* an empty body gzips too */
  unsigned char *z;
  size_t zlen;
  CHECK_INT(mw_gzip("", 0, &z, &zlen), 0);
  CHECK(zlen >= 18);
  free(z);
}

/* promtool (Debian's prometheus package) accepts the text output of a registry
 * with every type; skipped when promtool is not installed. */
static void test_promtool_check_metrics(void) {
  if (access("/usr/bin/promtool", X_OK) != 0) {
    fprintf(stderr, "test_promtool_check_metrics: no /usr/bin/promtool, skipped\n");
    return;
  }
  mw_metrics_t *reg = mw_metrics_create();
  CHECK_INT(mw_ffi_metrics_process_add(reg, NULL, 0, err, sizeof err), 0);
  int32_t c = mw_ffi_metrics_family_add(reg, "moonwatch_component_errors_total",
                                        "Errors \"by\" component\\kind.\nSecond line.", "counter",
                                        "component_id\x1f"
                                        "kind",
                                        17, NULL, 0, err, sizeof err);
  mw_metrics_add(reg,
                 child(reg, c,
                       "q\"uo\\te\nx\x1f"
                       "parse"),
                 1234567);
  int32_t h = mw_ffi_metrics_family_add(reg, "moonwatch_scrape_duration_seconds", "Durations.",
                                        "histogram", "component_id", 12, NULL, 0, err, sizeof err);
  int32_t hc = child(reg, h, "prometheus.scrape.a");
  for (int i = 0; i < 100; i++)
    mw_metrics_observe(reg, hc, i * 0.13);
  int32_t g = mw_ffi_metrics_family_add(reg, "moonwatch_special_values", "NaN and Inf.", "gauge",
                                        "v", 1, NULL, 0, err, sizeof err);
  mw_metrics_set(reg, child(reg, g, "nan"), NAN);
  mw_metrics_set(reg, child(reg, g, "inf"), -INFINITY);
  int32_t u = mw_ffi_metrics_family_add(reg, "moonwatch_untyped", "Untyped.", "untyped", "", 0,
                                        NULL, 0, err, sizeof err);
  mw_metrics_set(reg, child(reg, u, ""), 1e300);
  char path[] = "/tmp/mw_promtool_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  char *text = expose(reg, MW_EXPOSE_TEXT);
  size_t n = text ? strlen(text) : 0;
  CHECK(text && write(fd, text, n) == (ssize_t)n);
  close(fd);
  free(text);
  mw_metrics_free(reg);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "/usr/bin/promtool check metrics < %s", path);
  int rc = system(cmd);
  unlink(path);
  CHECK_INT(rc, 0);
}

static void test_cdef_declares_metrics(void) {
  const char *s = mw_ffi_cdef();
  CHECK(strstr(s, "typedef struct mw_metrics mw_metrics_t;") != NULL);
  CHECK(strstr(s, "int mw_ffi_metrics_inc(mw_metrics_t *reg, int32_t child);") != NULL);
  CHECK(strstr(s, "mw_ffi_metrics_expose(") != NULL);
}

int main(void) {
  MW_RUN(test_float_format);
  MW_RUN(test_float_format_random);
  MW_RUN(test_expose_text);
  MW_RUN(test_expose_openmetrics);
  MW_RUN(test_expose_empty_and_default_buckets);
  MW_RUN(test_histogram_many_buckets);
  MW_RUN(test_family_validation);
  MW_RUN(test_children_and_handles);
  MW_RUN(test_many_children);
  MW_RUN(test_component_del);
  MW_RUN(test_sorted_order_kept);
  MW_RUN(test_collectors);
  MW_RUN(test_negotiate);
  MW_RUN(test_wants_gzip);
  MW_RUN(test_gzip_roundtrip);
  MW_RUN(test_promtool_check_metrics);
  MW_RUN(test_cdef_declares_metrics);
  return mw_test_summary();
}
