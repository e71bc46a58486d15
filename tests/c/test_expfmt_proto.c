/* The protobuf exposition parser (exposition/parse_proto.c): its wire decoder against
 * protobuf-c on random MetricFamilies, then Prometheus's semantics case by case. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/labels.h"
#include "exposition/parse.h"
#include "exposition/scrapecache.h"
#include "exposition/write.h"
#include "ffi.h"
#include "metrics.pb-c.h"
#include "model/batch.h"
#include "model/histogram.h"
#include "model/series.h"
#include "test.h"

#define TS 1700000000000LL

typedef Io__Prometheus__Client__MetricFamily MF;
typedef Io__Prometheus__Client__Metric MT;
typedef Io__Prometheus__Client__LabelPair LP;
typedef Io__Prometheus__Client__Exemplar EX;

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

/* --- building bodies with protobuf-c ------------------------------------- */

/* Every allocation of a test body comes from here; reset per body. */
static char pool[1 << 20];
static size_t pool_used;
static void *palloc(size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (pool_used + n > sizeof pool) abort();
  void *p = pool + pool_used;
  pool_used += n;
  memset(p, 0, n);
  return p;
}
static char *pstr(const char *s) {
  char *d = palloc(strlen(s) + 1);
  strcpy(d, s);
  return d;
}

static uint8_t body[1 << 20];
static size_t body_len;

/* Appends mf to body, length-delimited. */
static void put_mf(const MF *mf) {
  size_t n = io__prometheus__client__metric_family__get_packed_size(mf);
  size_t v = n;
  do {
    body[body_len++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  body_len += io__prometheus__client__metric_family__pack(mf, body + body_len);
}

static MF *new_mf(const char *name, int type) {
  MF *mf = palloc(sizeof *mf);
  io__prometheus__client__metric_family__init(mf);
  mf->name = pstr(name);
  mf->has_type = 1;
  mf->type = type;
  mf->metric = palloc(64 * sizeof *mf->metric);
  return mf;
}
static MT *add_metric(MF *mf, int nl, const char *const *kv) {
  MT *m = palloc(sizeof *m);
  io__prometheus__client__metric__init(m);
  m->label = palloc((size_t)(nl + 1) * sizeof *m->label);
  for (int i = 0; i < nl; i++) {
    LP *l = palloc(sizeof *l);
    io__prometheus__client__label_pair__init(l);
    l->name = pstr(kv[2 * i]);
    l->value = pstr(kv[2 * i + 1]);
    m->label[m->n_label++] = l;
  }
  mf->metric[mf->n_metric++] = m;
  return m;
}
static EX *new_ex(const char *k, const char *v, double value, int64_t sec, int32_t nanos) {
  EX *x = palloc(sizeof *x);
  io__prometheus__client__exemplar__init(x);
  x->label = palloc(sizeof *x->label);
  LP *l = palloc(sizeof *l);
  io__prometheus__client__label_pair__init(l);
  l->name = pstr(k);
  l->value = pstr(v);
  x->label[x->n_label++] = l;
  x->has_value = 1;
  x->value = value;
  if (sec || nanos) {
    x->timestamp = palloc(sizeof *x->timestamp);
    google__protobuf__timestamp__init(x->timestamp);
    x->timestamp->seconds = sec;
    x->timestamp->nanos = nanos;
  }
  return x;
}

static int parse_body(uint32_t flags) {
  return mw_expfmt_parse(cache, batch, (const char *)body, body_len, MW_EXPFMT_PROTOBUF, TS, flags,
                         &st, err, sizeof err);
}

/* Sample i's series as "name{a=b,c=d}" (labels sorted, __name__ first as the name). */
static const char *series(size_t i) {
  static char out[1024];
  size_t len, pos = 0, o = 0;
  const uint8_t *enc = mw_ffi_batch_labels(batch, i, &len);
  mw_label_t l;
  char name[256] = "", rest[768] = "";
  while (mw_labels_next(enc, len, &pos, &l) == 1) {
    if (l.name_len == 8 && memcmp(l.name, "__name__", 8) == 0)
      snprintf(name, sizeof name, "%.*s", (int)l.value_len, l.value);
    else
      o += (size_t)snprintf(rest + o, sizeof rest - o, "%s%.*s=%.*s", o ? "," : "", (int)l.name_len,
                            l.name, (int)l.value_len, l.value);
  }
  snprintf(out, sizeof out, "%s{%s}", name, rest);
  return out;
}

/* --- the reference: protobuf-c's unpack, Prometheus's rules -------------- */

typedef struct {
  char series[1024];
  int64_t ts;
  double v;
  int has_ex;
  double ex_v;
  int64_t ex_ts;
} ref_t;
static ref_t refs[4096];
static size_t nrefs;

static int lp_cmp(const void *a, const void *b) {
  const LP *x = *(const LP *const *)a, *y = *(const LP *const *)b;
  return strcmp(x->name, y->name);
}

static void ref_add(const char *name, const MT *m, const char *magic, double mv, double v,
                    const EX *ex) {
  LP *ls[64];
  size_t n = 0;
  for (size_t i = 0; i < m->n_label; i++)
    if (m->label[i]->value[0]) ls[n++] = m->label[i];
  LP extra = IO__PROMETHEUS__CLIENT__LABEL_PAIR__INIT;
  char mval[40];
  if (magic) {
    mw_expose_fmt_float(mval, mv, 1);
    extra.name = (char *)magic;
    extra.value = mval;
    ls[n++] = &extra;
  }
  qsort(ls, n, sizeof *ls, lp_cmp);
  ref_t *r = &refs[nrefs];
  size_t o = (size_t)snprintf(r->series, sizeof r->series, "%s{", name);
  for (size_t i = 0; i < n; i++)
    o += (size_t)snprintf(r->series + o, sizeof r->series - o, "%s%s=%s", i ? "," : "", ls[i]->name,
                          ls[i]->value);
  snprintf(r->series + o, sizeof r->series - o, "}");
  for (size_t k = 0; k < nrefs; k++)
    if (strcmp(refs[k].series, r->series) == 0) return; /* a duplicate: dropped */
  r->ts = m->has_timestamp_ms && m->timestamp_ms ? m->timestamp_ms : TS;
  r->v = v;
  r->has_ex = ex != NULL;
  if (ex) {
    r->ex_v = ex->value;
    r->ex_ts =
        ex->timestamp ? ex->timestamp->seconds * 1000 + ex->timestamp->nanos / 1000000 : r->ts;
  }
  nrefs++;
}

/* Prometheus's samples of a body (no native histograms). */
static void reference(void) {
  nrefs = 0;
  size_t pos = 0;
  while (pos < body_len) {
    uint64_t len = 0;
    int shift = 0;
    while (body[pos] & 0x80)
      len |= (uint64_t)(body[pos++] & 0x7f) << shift, shift += 7;
    len |= (uint64_t)body[pos++] << shift;
    MF *mf = io__prometheus__client__metric_family__unpack(NULL, len, body + pos);
    if (!mf) abort();
    pos += len;
    char nm[256];
    for (size_t i = 0; i < mf->n_metric; i++) {
      const MT *m = mf->metric[i];
      switch (mf->type) {
      case 0:
        ref_add(mf->name, m, NULL, 0, m->counter ? m->counter->value : 0,
                m->counter ? m->counter->exemplar : NULL);
        break;
      case 1: ref_add(mf->name, m, NULL, 0, m->gauge ? m->gauge->value : 0, NULL); break;
      case 3: ref_add(mf->name, m, NULL, 0, m->untyped ? m->untyped->value : 0, NULL); break;
      case 2: {
        const Io__Prometheus__Client__Summary *s = m->summary;
        snprintf(nm, sizeof nm, "%s_count", mf->name);
        ref_add(nm, m, NULL, 0, s ? (double)s->sample_count : 0, NULL);
        snprintf(nm, sizeof nm, "%s_sum", mf->name);
        ref_add(nm, m, NULL, 0, s ? s->sample_sum : 0, NULL);
        for (size_t k = 0; s && k < s->n_quantile; k++)
          ref_add(mf->name, m, "quantile", s->quantile[k]->quantile, s->quantile[k]->value, NULL);
        break;
      }
      default: {
        const Io__Prometheus__Client__Histogram *h = m->histogram;
        double c =
            h ? (h->sample_count_float > 0 ? h->sample_count_float : (double)h->sample_count) : 0;
        snprintf(nm, sizeof nm, "%s_count", mf->name);
        ref_add(nm, m, NULL, 0, c, NULL);
        snprintf(nm, sizeof nm, "%s_sum", mf->name);
        ref_add(nm, m, NULL, 0, h ? h->sample_sum : 0, NULL);
        snprintf(nm, sizeof nm, "%s_bucket", mf->name);
        int inf = 0;
        for (size_t k = 0; h && k < h->n_bucket && !inf; k++) {
          const Io__Prometheus__Client__Bucket *b = h->bucket[k];
          ref_add(nm, m, "le", b->upper_bound,
                  b->cumulative_count_float > 0 ? b->cumulative_count_float
                                                : (double)b->cumulative_count,
                  b->exemplar);
          inf = isinf(b->upper_bound) && b->upper_bound > 0;
        }
        if (!inf) ref_add(nm, m, "le", INFINITY, c, NULL);
      }
      }
    }
    io__prometheus__client__metric_family__free_unpacked(mf, NULL);
  }
}

/* --- random bodies ---------------------------------------------------------- */

static uint64_t rng = 88172645463325252ULL;
static uint32_t rnd(uint32_t n) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng % n);
}
static double rnd_value(void) {
  static const double vals[] = {0, 1, -1, 0.5, 1e-300, 1e300, 42, 3.14159, -2.5e10, 1e21};
  switch (rnd(12)) {
  case 10: return NAN;
  case 11: return rnd(2) ? INFINITY : -INFINITY;
  default: return vals[rnd(10)] * (1 + rnd(1000));
  }
}
static EX *rnd_ex(void) {
  if (rnd(3)) return NULL;
  static const char *const ids[] = {"trace_id", "span_id", "id"};
  char v[32];
  snprintf(v, sizeof v, "%x", rnd(1u << 30));
  return new_ex(ids[rnd(3)], v, rnd_value(), rnd(2) ? 1700000000 + rnd(1000) : 0,
                (int32_t)rnd(1000000000));
}

static void random_body(void) {
  static const char *const lnames[] = {"a", "b", "code", "path", "zone"};
  static const char *const lvals[] = {"", "x", "200", "/api", "ü", "a b"};
  pool_used = 0;
  body_len = 0;
  int nfam = 1 + (int)rnd(6);
  for (int fi = 0; fi < nfam; fi++) {
    char name[32];
    snprintf(name, sizeof name, "fam_%d_%u", fi, rnd(3));
    int type = (int)rnd(6);
    MF *mf = new_mf(name, type);
    if (rnd(2)) mf->help = pstr("some help");
    int nm = (int)rnd(5);
    for (int mi = 0; mi < nm; mi++) {
      const char *kv[10];
      int nl = (int)rnd(4), used = 0;
      for (int k = 0; k < nl; k++) {
        const char *ln = lnames[rnd(5)];
        int dup = 0;
        for (int j = 0; j < used; j++)
          dup |= strcmp(kv[2 * j], ln) == 0;
        if (dup) continue;
        kv[2 * used] = ln;
        kv[2 * used + 1] = lvals[rnd(6)];
        used++;
      }
      MT *m = add_metric(mf, used, kv);
      if (rnd(3) == 0) {
        m->has_timestamp_ms = 1;
        m->timestamp_ms = 1600000000000LL + rnd(1000000);
      }
      switch (type) {
      case 0:
        m->counter = palloc(sizeof *m->counter);
        io__prometheus__client__counter__init(m->counter);
        m->counter->has_value = 1;
        m->counter->value = rnd_value();
        m->counter->exemplar = rnd_ex();
        break;
      case 1:
        m->gauge = palloc(sizeof *m->gauge);
        io__prometheus__client__gauge__init(m->gauge);
        m->gauge->has_value = rnd(4) != 0;
        m->gauge->value = m->gauge->has_value ? rnd_value() : 0;
        break;
      case 3:
        if (rnd(5) == 0) break; /* no value message at all: 0 */
        m->untyped = palloc(sizeof *m->untyped);
        io__prometheus__client__untyped__init(m->untyped);
        m->untyped->has_value = 1;
        m->untyped->value = rnd_value();
        break;
      case 2: {
        Io__Prometheus__Client__Summary *s = palloc(sizeof *s);
        io__prometheus__client__summary__init(s);
        s->has_sample_count = 1;
        s->sample_count = rnd(100000);
        s->has_sample_sum = 1;
        s->sample_sum = rnd_value();
        int nq = (int)rnd(4);
        s->quantile = palloc(4 * sizeof *s->quantile);
        static const double qs[] = {0.5, 0.9, 0.99, 1};
        for (int k = 0; k < nq; k++) {
          Io__Prometheus__Client__Quantile *qq = palloc(sizeof *qq);
          io__prometheus__client__quantile__init(qq);
          qq->has_quantile = qq->has_value = 1;
          qq->quantile = qs[k];
          qq->value = rnd_value();
          s->quantile[s->n_quantile++] = qq;
        }
        m->summary = s;
        break;
      }
      default: {
        Io__Prometheus__Client__Histogram *h = palloc(sizeof *h);
        io__prometheus__client__histogram__init(h);
        h->has_sample_count = 1;
        h->sample_count = rnd(1000);
        if (rnd(4) == 0) {
          h->has_sample_count_float = 1;
          h->sample_count_float = 0.5 + rnd(100);
        }
        h->has_sample_sum = 1;
        h->sample_sum = rnd_value();
        int nb = (int)rnd(6);
        h->bucket = palloc(6 * sizeof *h->bucket);
        static const double ub[] = {0.005, 0.1, 1, 10, 1e6, INFINITY};
        for (int k = 0; k < nb; k++) {
          Io__Prometheus__Client__Bucket *b = palloc(sizeof *b);
          io__prometheus__client__bucket__init(b);
          b->has_cumulative_count = b->has_upper_bound = 1;
          b->cumulative_count = (uint64_t)k * 3;
          b->upper_bound = ub[k];
          if (h->has_sample_count_float) {
            b->has_cumulative_count_float = 1;
            b->cumulative_count_float = k * 1.5;
          }
          b->exemplar = rnd_ex();
          h->bucket[h->n_bucket++] = b;
        }
        m->histogram = h;
      }
      }
    }
    put_mf(mf);
  }
}

static void compare(void) {
  CHECK_INT(mw_batch_len(batch), nrefs);
  size_t ex = 0, nex = mw_batch_exemplars(batch);
  for (size_t i = 0; i < nrefs; i++) {
    if (strcmp(series(i), refs[i].series) != 0)
      MW_FAIL("sample %zu: %s, expected %s", i, series(i), refs[i].series);
    CHECK_INT(mw_ffi_batch_ts(batch, i), refs[i].ts);
    CHECK_DBL(mw_ffi_batch_value(batch, i), refs[i].v);
    CHECK(!mw_ffi_batch_is_stale(batch, i));
    if (refs[i].has_ex) {
      mw_exemplar_t e;
      CHECK(ex < nex);
      mw_batch_exemplar(batch, ex++, &e);
      CHECK_INT(e.idx, i);
      CHECK_DBL(e.value, refs[i].ex_v);
      CHECK_INT(e.ts_ms, refs[i].ex_ts);
    }
  }
  CHECK_INT(ex, nex);
}

/* The wire decoder against protobuf-c: random bodies, parsed cold and then again from the
 * cache (every sample a hit), give protobuf-c's samples under Prometheus's rules. */
static void test_random_vs_protobuf_c(void) {
  for (int it = 0; it < 2000; it++) {
    fresh();
    random_body();
    reference();
    if (parse_body(0) != 0) MW_FAIL("iteration %d: %s", it, err);
    compare();
    if (mw_test_current_failed) MW_FAIL("iteration %d (cold)", it);
    CHECK_INT(st.series_added, nrefs);
    if (parse_body(0) != 0) MW_FAIL("iteration %d: %s", it, err);
    compare();
    if (mw_test_current_failed) MW_FAIL("iteration %d (cached)", it);
    CHECK_INT(st.series_added, 0);
  }
}

/* --- semantics ------------------------------------------------------------ */

static void test_families(void) {
  fresh();
  pool_used = body_len = 0;
  const char *kv[] = {"code", "200", "empty", ""};
  MF *c = new_mf("http_requests_total", 0);
  c->help = pstr("Requests.");
  MT *m = add_metric(c, 2, kv);
  m->counter = palloc(sizeof *m->counter);
  io__prometheus__client__counter__init(m->counter);
  m->counter->has_value = 1;
  m->counter->value = 7;
  m->counter->exemplar = new_ex("trace_id", "abc", 1.5, 1700000000, 250000000);
  put_mf(c);
  MF *s = new_mf("rpc_seconds", 2);
  m = add_metric(s, 0, NULL);
  m->has_timestamp_ms = 1;
  m->timestamp_ms = 1234;
  Io__Prometheus__Client__Summary sum = IO__PROMETHEUS__CLIENT__SUMMARY__INIT;
  Io__Prometheus__Client__Quantile q1 = IO__PROMETHEUS__CLIENT__QUANTILE__INIT;
  Io__Prometheus__Client__Quantile *qs[] = {&q1};
  q1.has_quantile = q1.has_value = 1;
  q1.quantile = 0.5;
  q1.value = 0.25;
  sum.has_sample_count = sum.has_sample_sum = 1;
  sum.sample_count = 10;
  sum.sample_sum = 3;
  sum.n_quantile = 1;
  sum.quantile = qs;
  m->summary = &sum;
  put_mf(s);
  MF *h = new_mf("latency", 4);
  m = add_metric(h, 0, NULL);
  Io__Prometheus__Client__Histogram hist = IO__PROMETHEUS__CLIENT__HISTOGRAM__INIT;
  Io__Prometheus__Client__Bucket b1 = IO__PROMETHEUS__CLIENT__BUCKET__INIT;
  Io__Prometheus__Client__Bucket *bs[] = {&b1};
  b1.has_cumulative_count = b1.has_upper_bound = 1;
  b1.cumulative_count = 2;
  b1.upper_bound = 1;
  hist.has_sample_count = hist.has_sample_sum = 1;
  hist.sample_count = 5;
  hist.sample_sum = 12.5;
  hist.n_bucket = 1;
  hist.bucket = bs;
  m->histogram = &hist;
  put_mf(h);
  MF *empty = new_mf("no_metrics", 1); /* skipped: no metadata either */
  put_mf(empty);
  if (parse_body(0) != 0) MW_FAIL("%s", err);
  CHECK_INT(mw_batch_len(batch), 8);
  CHECK_STR(series(0), "http_requests_total{code=200}");
  CHECK_DBL(mw_ffi_batch_value(batch, 0), 7);
  CHECK_INT(mw_ffi_batch_ts(batch, 0), TS);
  CHECK_STR(series(1), "rpc_seconds_count{}");
  CHECK_INT(mw_ffi_batch_ts(batch, 1), 1234);
  CHECK_STR(series(2), "rpc_seconds_sum{}");
  CHECK_STR(series(3), "rpc_seconds{quantile=0.5}");
  CHECK_STR(series(4), "latency_count{}");
  CHECK_STR(series(5), "latency_sum{}");
  CHECK_STR(series(6), "latency_bucket{le=1.0}");
  CHECK_DBL(mw_ffi_batch_value(batch, 6), 2);
  CHECK_STR(series(7), "latency_bucket{le=+Inf}");
  CHECK_DBL(mw_ffi_batch_value(batch, 7), 5);
  CHECK_INT(mw_batch_exemplars(batch), 1);
  mw_exemplar_t e;
  mw_batch_exemplar(batch, 0, &e);
  CHECK_INT(e.idx, 0);
  CHECK_INT(e.ts_ms, 1700000000250LL);
  CHECK_DBL(e.value, 1.5);
  CHECK_INT(st.exemplars, 1);
  /* metadata */
  CHECK_INT(mw_ffi_scrapecache_meta_len(cache), 3);
  size_t i = 0;
  mw_scrapecache_meta_t md;
  CHECK(mw_scrapecache_meta_next(cache, &i, &md));
  CHECK_STR(md.name, "http_requests_total");
  CHECK_INT(md.type, MW_METRIC_COUNTER);
  CHECK_STR(md.help, "Requests.");
  CHECK(mw_scrapecache_meta_next(cache, &i, &md));
  CHECK_INT(md.type, MW_METRIC_SUMMARY);
  CHECK(mw_scrapecache_meta_next(cache, &i, &md));
  CHECK_INT(md.type, MW_METRIC_HISTOGRAM);
  /* The next scrape without the histogram: its four series get staleness markers; the
   * summary's came with timestamps: none for them when it goes (as Prometheus). */
  body_len = 0;
  put_mf(c);
  put_mf(s);
  if (parse_body(0) != 0) MW_FAIL("%s", err);
  CHECK_INT(st.stale, 4);
  CHECK_INT(mw_batch_len(batch), 8);
  CHECK(mw_ffi_batch_is_stale(batch, 4));
  CHECK_STR(series(4), "latency_count{}");
  body_len = 0;
  put_mf(c);
  if (parse_body(0) != 0) MW_FAIL("%s", err);
  CHECK_INT(st.stale, 0);
  /* ignore timestamps */
  body_len = 0;
  put_mf(s);
  if (parse_body(MW_EXPFMT_IGNORE_TIMESTAMPS) != 0) MW_FAIL("%s", err);
  CHECK_INT(mw_ffi_batch_ts(batch, 0), TS);
}

static void test_invalid_bodies(void) {
  pool_used = body_len = 0;
  MF *c = new_mf("ok_total", 0);
  MT *m = add_metric(c, 0, NULL);
  m->counter = palloc(sizeof *m->counter);
  io__prometheus__client__counter__init(m->counter);
  put_mf(c);
  size_t one = body_len;
  put_mf(c);
  /* Every truncation of two families fails cleanly (or parses the first). */
  for (size_t n = 0; n < body_len; n++) {
    fresh();
    int rc = mw_expfmt_parse(cache, batch, (const char *)body, n, MW_EXPFMT_PROTOBUF, TS, 0, &st,
                             err, sizeof err);
    if (n == 0 || n == one) {
      CHECK_INT(rc, 0);
    } else {
      CHECK_INT(rc, -1);
      CHECK(strstr(err, "metric family #") != NULL);
    }
  }
  /* A length past the end. */
  fresh();
  uint8_t bad[] = {0x20, 0x0a, 0x01, 'x'};
  CHECK_INT(mw_expfmt_parse(cache, batch, (const char *)bad, sizeof bad, MW_EXPFMT_PROTOBUF, TS, 0,
                            &st, err, sizeof err),
            -1);
  CHECK_STR(err,
            "metric family #1 at byte 0: length 32 is past the end of the body (3 bytes left)");
  /* A name invalid under the legacy scheme; a bad label name; an unknown type. */
  pool_used = body_len = 0;
  c = new_mf("my.metric", 1);
  add_metric(c, 0, NULL);
  put_mf(c);
  fresh();
  CHECK_INT(parse_body(MW_EXPFMT_LEGACY_NAMES), -1);
  CHECK(strstr(err, "\"my.metric\" is not valid under the legacy validation scheme") != NULL);
  CHECK_INT(parse_body(0), 0);
  pool_used = body_len = 0;
  const char *kv[] = {"a", "1", "a", "2"};
  c = new_mf("dup", 1);
  add_metric(c, 2, kv);
  put_mf(c);
  fresh();
  CHECK_INT(parse_body(0), -1);
  CHECK(strstr(err, "label name \"a\" is not unique") != NULL);
  pool_used = body_len = 0;
  c = new_mf("typ", 1);
  c->type = 9;
  add_metric(c, 0, NULL);
  put_mf(c);
  fresh();
  CHECK_INT(parse_body(0), -1);
  CHECK(strstr(err, "unknown metric type 9") != NULL);
  /* Groups are not in metrics.proto: a clear error. */
  fresh();
  uint8_t grp[] = {0x02, 0x0b, 0x0c};
  CHECK_INT(mw_expfmt_parse(cache, batch, (const char *)grp, sizeof grp, MW_EXPFMT_PROTOBUF, TS, 0,
                            &st, err, sizeof err),
            -1);
  CHECK_STR(err, "metric family #1 at byte 1: invalid wire type");
}

/* A histogram family "h" (type: 4 histogram, 5 gauge histogram) of one metric: schema,
 * positive buckets at indexes first.. (deltas), a zero bucket, classic buckets. */
static Io__Prometheus__Client__Histogram *
native_body(int type, int32_t schema, int32_t first, const int64_t *deltas, size_t n, int classic) {
  pool_used = body_len = 0;
  MF *mf = new_mf("h", type);
  MT *m = add_metric(mf, 0, NULL);
  Io__Prometheus__Client__Histogram *h = palloc(sizeof *h);
  io__prometheus__client__histogram__init(h);
  h->has_sample_count = h->has_sample_sum = h->has_schema = h->has_zero_threshold = 1;
  h->has_zero_count = 1;
  h->schema = schema;
  h->zero_threshold = 1e-128;
  h->zero_count = 2;
  uint64_t total = 2, run = 0;
  h->positive_span = palloc(2 * sizeof *h->positive_span);
  Io__Prometheus__Client__BucketSpan *sp = palloc(sizeof *sp);
  io__prometheus__client__bucket_span__init(sp);
  sp->has_offset = sp->has_length = 1;
  sp->offset = first;
  sp->length = (uint32_t)n;
  h->positive_span[h->n_positive_span++] = sp;
  h->positive_delta = palloc(n * sizeof *h->positive_delta + 8);
  for (size_t i = 0; i < n; i++) {
    h->positive_delta[h->n_positive_delta++] = deltas[i];
    run = (uint64_t)((int64_t)run + deltas[i]);
    total += run;
  }
  h->sample_count = total;
  h->sample_sum = 42.5;
  if (classic) {
    h->bucket = palloc(sizeof *h->bucket);
    Io__Prometheus__Client__Bucket *b = palloc(sizeof *b);
    io__prometheus__client__bucket__init(b);
    b->has_cumulative_count = b->has_upper_bound = 1;
    b->cumulative_count = 2;
    b->upper_bound = 0.5;
    h->bucket[h->n_bucket++] = b;
  }
  m->histogram = h;
  put_mf(mf);
  return h;
}

static int parse_hist(uint32_t flags, uint32_t limit, double factor) {
  mw_expfmt_stats_t *stp = &st;
  mw_expfmt_parser_t *p = mw_expfmt_begin(cache, batch, (const char *)body, body_len,
                                          MW_EXPFMT_PROTOBUF, TS, flags, 0, stp, err, sizeof err);
  if (!p) return -1;
  mw_expfmt_set_histograms(p, limit, factor);
  return mw_expfmt_step(p, 0);
}

/* Bucket k of the positive side of histogram sample i: its count and index. */
static double hbucket(size_t i, size_t k, int32_t *idx) {
  mw_hsample_t hs;
  mw_batch_histogram(batch, i, &hs);
  double c[64];
  int32_t ix[64];
  size_t n = mw_histogram_buckets(&hs.h, 1, c, ix, 64);
  if (k >= n) return -1;
  *idx = ix[k];
  return c[k];
}

static void test_native(void) {
  static const int64_t d4[] = {1, 1, 1, 1}; /* counts 1 2 3 4 at indexes 1..4 */
  int32_t ix;
  mw_hsample_t hs;
  /* Without scrape_native_histograms: the classic series only. */
  fresh();
  native_body(4, 1, 1, d4, 4, 1);
  if (parse_hist(0, 0, 0) != 0) MW_FAIL("%s", err);
  CHECK_INT(mw_batch_histograms(batch), 0);
  CHECK_INT(mw_batch_len(batch), 4); /* _count, _sum, le=0.5, le=+Inf */
  /* With it: one native sample, no classic series (they go stale). */
  if (parse_hist(MW_EXPFMT_NATIVE_HISTOGRAMS, 0, 0) != 0) MW_FAIL("%s", err);
  CHECK_INT(mw_batch_histograms(batch), 1);
  CHECK_INT(st.histograms, 1);
  CHECK_INT(st.samples, 1);
  CHECK_INT(st.stale, 4);
  mw_batch_histogram(batch, 0, &hs);
  CHECK_INT(hs.ts_ms, TS);
  CHECK_INT(hs.h.schema, 1);
  CHECK_INT(hs.h.is_float, 0);
  CHECK_INT(hs.h.count, 12);
  CHECK_INT(hs.h.zero_count, 2);
  CHECK_DBL(hs.h.sum, 42.5);
  CHECK_DBL(hs.h.zero_threshold, 1e-128);
  CHECK_INT(hs.h.reset_hint, MW_HIST_RESET_UNKNOWN);
  CHECK_DBL(hbucket(0, 3, &ix), 4);
  CHECK_INT(ix, 4);
  size_t len;
  const uint8_t *enc = mw_series_labels(mw_scrapecache_series(cache), hs.ref, &len);
  CHECK_INT(len, 11); /* __name__ 0xFF h 0xFF */
  (void)enc;
  /* With scrape_classic_histograms: the classic series too. */
  if (parse_hist(MW_EXPFMT_NATIVE_HISTOGRAMS | MW_EXPFMT_CLASSIC_HISTOGRAMS, 0, 0) != 0)
    MW_FAIL("%s", err);
  CHECK_INT(mw_batch_histograms(batch), 1);
  CHECK_INT(mw_batch_len(batch), 4);
  CHECK_INT(st.samples, 5);
  /* The histogram goes: a histogram staleness marker. */
  pool_used = body_len = 0;
  if (parse_hist(MW_EXPFMT_NATIVE_HISTOGRAMS, 0, 0) != 0) MW_FAIL("%s", err);
  CHECK_INT(mw_batch_histograms(batch), 1);
  mw_batch_histogram(batch, 0, &hs);
  CHECK(mw_histogram_is_stale(&hs.h));
  CHECK_INT(mw_batch_len(batch), 4); /* and float markers for the classic series */
  /* Bucket limit 2: schema 1 -> 0, buckets (1+2) at 1 and (3+4) at 2. */
  fresh();
  native_body(4, 1, 1, d4, 4, 0);
  if (parse_hist(MW_EXPFMT_NATIVE_HISTOGRAMS, 2, 0) != 0) MW_FAIL("%s", err);
  mw_batch_histogram(batch, 0, &hs);
  CHECK_INT(hs.h.schema, 0);
  CHECK_INT(hs.h.count, 12);
  CHECK_DBL(hbucket(0, 0, &ix), 3);
  CHECK_INT(ix, 1);
  CHECK_DBL(hbucket(0, 1, &ix), 7);
  CHECK_INT(ix, 2);
  CHECK_INT(st.histograms_reduced, 1);
  /* Bucket limit 1: schema 1 -> -1 (indexes 1..4 all merge into bucket 1). */
  if (parse_hist(MW_EXPFMT_NATIVE_HISTOGRAMS, 1, 0) != 0) MW_FAIL("%s", err);
  mw_batch_histogram(batch, 0, &hs);
  CHECK_INT(hs.h.schema, -1);
  CHECK_DBL(hbucket(0, 0, &ix), 10);
  CHECK_INT(ix, 1);
  /* Min bucket factor 1.5 allows schema 0 at most. */
  if (parse_hist(MW_EXPFMT_NATIVE_HISTOGRAMS, 0, 1.5) != 0) MW_FAIL("%s", err);
  mw_batch_histogram(batch, 0, &hs);
  CHECK_INT(hs.h.schema, 0);
  CHECK_DBL(hbucket(0, 1, &ix), 7);
  /* Over the bucket limit at schema -4: the scrape fails. */
  static const int64_t far[] = {1, 0};
  fresh();
  Io__Prometheus__Client__Histogram *h = native_body(4, -4, 1, far, 2, 0);
  h->positive_span[0]->length = 1;
  Io__Prometheus__Client__BucketSpan *sp2 = palloc(sizeof *sp2);
  io__prometheus__client__bucket_span__init(sp2);
  sp2->has_offset = sp2->has_length = 1;
  sp2->offset = 10;
  sp2->length = 1;
  h->positive_span[h->n_positive_span++] = sp2;
  body_len = 0;
  MF *mf = new_mf("h", 4);
  add_metric(mf, 0, NULL)->histogram = h;
  put_mf(mf);
  CHECK_INT(parse_hist(MW_EXPFMT_NATIVE_HISTOGRAMS, 1, 0), -1);
  CHECK_STR(err, "histogram bucket limit exceeded");
  /* A float gauge histogram; negative buckets; counts given absolutely. */
  fresh();
  pool_used = body_len = 0;
  mf = new_mf("g", 5);
  MT *m = add_metric(mf, 0, NULL);
  h = palloc(sizeof *h);
  io__prometheus__client__histogram__init(h);
  h->has_sample_count_float = h->has_schema = h->has_sample_sum = 1;
  h->sample_count_float = 3.5;
  h->schema = -2;
  h->sample_sum = -1;
  h->negative_span = palloc(sizeof *h->negative_span);
  sp2 = palloc(sizeof *sp2);
  io__prometheus__client__bucket_span__init(sp2);
  sp2->has_offset = sp2->has_length = 1;
  sp2->offset = -1;
  sp2->length = 2;
  h->negative_span[h->n_negative_span++] = sp2;
  h->negative_count = palloc(2 * sizeof(double));
  h->negative_count[h->n_negative_count++] = 1.5;
  h->negative_count[h->n_negative_count++] = 2;
  m->histogram = h;
  put_mf(mf);
  if (parse_hist(MW_EXPFMT_NATIVE_HISTOGRAMS, 0, 0) != 0) MW_FAIL("%s", err);
  mw_batch_histogram(batch, 0, &hs);
  CHECK_INT(hs.h.is_float, 1);
  CHECK_DBL(hs.h.fcount, 3.5);
  CHECK_INT(hs.h.reset_hint, MW_HIST_RESET_GAUGE);
  CHECK_INT(hs.h.n_neg, 2);
  CHECK_DBL(hs.h.neg_counts[1], 2);
  CHECK_INT(hs.h.neg_spans[0].offset, -1);
  /* An invalid one (spans need more buckets than given) fails the body clearly. */
  h->n_negative_count = 1;
  body_len = 0;
  put_mf(mf);
  CHECK_INT(parse_hist(MW_EXPFMT_NATIVE_HISTOGRAMS, 0, 0), -1);
  CHECK(strstr(err, "invalid native histogram: ") != NULL);
}

/* convert_classic_histograms_to_nhcb: a classic histogram becomes one schema -53 sample. */
static void test_nhcb(void) {
  fresh();
  pool_used = body_len = 0;
  MF *mf = new_mf("req_seconds", 4);
  MT *m = add_metric(mf, 0, NULL);
  Io__Prometheus__Client__Histogram *h = palloc(sizeof *h);
  io__prometheus__client__histogram__init(h);
  h->has_sample_count = h->has_sample_sum = 1;
  h->sample_count = 10;
  h->sample_sum = 7;
  static const double ub[] = {0.1, 0.5, 1};
  static const uint64_t cum[] = {2, 2, 9};
  h->bucket = palloc(3 * sizeof *h->bucket);
  for (int k = 0; k < 3; k++) {
    Io__Prometheus__Client__Bucket *b = palloc(sizeof *b);
    io__prometheus__client__bucket__init(b);
    b->has_cumulative_count = b->has_upper_bound = 1;
    b->cumulative_count = cum[k];
    b->upper_bound = ub[k];
    h->bucket[h->n_bucket++] = b;
  }
  m->histogram = h;
  put_mf(mf);
  if (parse_hist(MW_EXPFMT_NHCB, 0, 0) != 0) MW_FAIL("%s", err);
  CHECK_INT(mw_batch_len(batch), 0);
  CHECK_INT(mw_batch_histograms(batch), 1);
  mw_hsample_t hs;
  mw_batch_histogram(batch, 0, &hs);
  CHECK_INT(hs.h.schema, MW_HIST_SCHEMA_CUSTOM);
  CHECK_INT(hs.h.is_float, 0);
  CHECK_INT(hs.h.count, 10);
  CHECK_DBL(hs.h.sum, 7);
  CHECK_INT(hs.h.n_custom, 3);
  CHECK_DBL(hs.h.custom_values[2], 1);
  int32_t ix;
  /* buckets (-Inf,0.1]: 2, (0.1,0.5]: 0, (0.5,1]: 7, (1,+Inf]: 1 */
  CHECK_DBL(hbucket(0, 0, &ix), 2);
  CHECK_DBL(hbucket(0, 1, &ix), 0);
  CHECK_DBL(hbucket(0, 2, &ix), 7);
  CHECK_DBL(hbucket(0, 3, &ix), 1);
  CHECK_INT(ix, 3);
  /* custom buckets do not merge: over the bucket limit the scrape fails */
  CHECK_INT(parse_hist(MW_EXPFMT_NHCB, 3, 0), -1);
  CHECK_STR(err, "histogram bucket limit exceeded");
  /* with scrape_classic_histograms the classic series too */
  if (parse_hist(MW_EXPFMT_NHCB | MW_EXPFMT_CLASSIC_HISTOGRAMS, 0, 0) != 0) MW_FAIL("%s", err);
  CHECK_INT(mw_batch_histograms(batch), 1);
  CHECK_INT(mw_batch_len(batch), 6);
  /* decreasing counts do not convert: the classic series go out as they are */
  h->bucket[1]->cumulative_count = 1;
  body_len = 0;
  put_mf(mf);
  if (parse_hist(MW_EXPFMT_NHCB, 0, 0) != 0) MW_FAIL("%s", err);
  CHECK_INT(mw_batch_histograms(batch), 1); /* the stale marker of the NHCB series */
  CHECK(mw_ffi_batch_is_stale(batch, 0) == 0);
  CHECK_INT(mw_batch_len(batch), 6);
}

/* convert_classic_histograms_to_nhcb for text bodies: the same conversion. */
static void test_nhcb_text(void) {
  fresh();
  const char *body = "# TYPE req_seconds histogram\n"
                     "req_seconds_bucket{a=\"x\",le=\"0.1\"} 2\n"
                     "req_seconds_bucket{a=\"x\",le=\"0.5\"} 2\n"
                     "req_seconds_bucket{a=\"x\",le=\"1\"} 9\n"
                     "req_seconds_bucket{a=\"x\",le=\"+Inf\"} 10\n"
                     "req_seconds_sum{a=\"x\"} 7\n"
                     "req_seconds_count{a=\"x\"} 10\n"
                     "other 1\n";
  mw_expfmt_parser_t *p = mw_expfmt_begin(cache, batch, body, strlen(body), MW_EXPFMT_TEXT, TS,
                                          MW_EXPFMT_NHCB, 0, &st, err, sizeof err);
  if (mw_expfmt_step(p, 0) != 0) MW_FAIL("%s", err);
  CHECK_INT(mw_batch_len(batch), 1);
  CHECK_STR(series(0), "other{}");
  CHECK_INT(mw_batch_histograms(batch), 1);
  CHECK_INT(st.samples, 2);
  CHECK_INT(st.series_added, 2); /* other, req_seconds */
  mw_hsample_t hs;
  mw_batch_histogram(batch, 0, &hs);
  CHECK_INT(hs.h.schema, MW_HIST_SCHEMA_CUSTOM);
  CHECK_INT(hs.h.count, 10);
  CHECK_DBL(hs.h.sum, 7);
  CHECK_INT(hs.h.n_custom, 3);
  int32_t ix;
  CHECK_DBL(hbucket(0, 2, &ix), 7);
  CHECK_DBL(hbucket(0, 3, &ix), 1);
  size_t len;
  const uint8_t *enc = mw_series_labels(mw_scrapecache_series(cache), hs.ref, &len);
  CHECK_INT(len, (size_t)(sizeof "a\xffx\xff__name__\xffreq_seconds\xff" - 1));
  CHECK(memcmp(enc, "__name__", 8) == 0 || memcmp(enc, "a\xff", 2) == 0);
  /* The next scrape: steady; the classic series never went out, so nothing is stale. */
  p = mw_expfmt_begin(cache, batch, body, strlen(body), MW_EXPFMT_TEXT, TS, MW_EXPFMT_NHCB, 0, &st,
                      err, sizeof err);
  if (mw_expfmt_step(p, 0) != 0) MW_FAIL("%s", err);
  CHECK_INT(st.stale, 0);
  CHECK_INT(st.series_added, 0);
  CHECK_INT(mw_batch_histograms(batch), 1);
  /* Without it: the classic series, and the NHCB series goes stale (a histogram marker). */
  if (mw_expfmt_parse(cache, batch, body, strlen(body), MW_EXPFMT_TEXT, TS, 0, &st, err,
                      sizeof err) != 0)
    MW_FAIL("%s", err);
  CHECK_INT(mw_batch_len(batch), 7);
  CHECK_INT(mw_batch_histograms(batch), 1);
  mw_batch_histogram(batch, 0, &hs);
  CHECK(mw_histogram_is_stale(&hs.h));
}

static void test_content_type(void) {
  int used;
  CHECK_INT(mw_expfmt_format("application/vnd.google.protobuf; "
                             "proto=io.prometheus.client.MetricFamily; encoding=delimited",
                             MW_EXPFMT_NONE, &used, err, sizeof err),
            MW_EXPFMT_PROTOBUF);
  CHECK_INT(mw_expfmt_format("", MW_EXPFMT_PROTOBUF, &used, err, sizeof err), MW_EXPFMT_PROTOBUF);
  CHECK_INT(used, 1);
}

int main(void) {
  MW_RUN(test_random_vs_protobuf_c);
  MW_RUN(test_families);
  MW_RUN(test_invalid_bodies);
  MW_RUN(test_native);
  MW_RUN(test_nhcb);
  MW_RUN(test_nhcb_text);
  MW_RUN(test_content_type);
  mw_scrapecache_free(cache);
  mw_batch_free(batch);
  return mw_test_summary();
}
