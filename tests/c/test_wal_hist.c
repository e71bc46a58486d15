/* test_wal_hist.c: native histograms through the remote_write WAL (histograms records)
 * and its reader: round trip into TimeSeries.histograms, replay and restart (exactly
 * what was not committed is read again), send_native_histograms off, shards and
 * max_samples, truncation of histogram-only segments, sample_age_limit (drop_old),
 * write relabeling, a corrupt histograms record. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/labels.h"
#include "model/batch.h"
#include "model/histogram.h"
#include "model/series.h"
#include "relabel/relabel.h"
#include "remote.pb-c.h"
#include "remote/encode.h"
#include "remote/wal_reader.h"
#include "storage/metrics_wal.h"
#include "storage/wal.h"
#include "test.h"
#include "testdir.h"

static char err[256];

/* Series i: {__name__="h", i="<i>"}. */
typedef struct {
  mw_series_t *s;
  uint32_t refs[64];
} src_t;

static void src_init(src_t *src) {
  src->s = mw_series_new();
  for (int i = 0; i < 64; i++) {
    char enc[64];
    int len = snprintf(enc, sizeof enc, "__name__\xffh\xffi\xff%d\xff", i);
    mw_series_add(src->s, (const uint8_t *)enc, (size_t)len,
                  mw_labels_hash((const uint8_t *)enc, (size_t)len), &src->refs[i], NULL, NULL, 0);
  }
}

static const mw_hspan_t pos_spans[] = {{-1, 2}, {3, 1}};
static const int64_t pos_deltas[] = {3, -1, 4};
static const mw_hspan_t neg_spans[] = {{0, 1}};
static const int64_t neg_deltas[] = {2};

/* An integer histogram whose sum encodes v (so each sample is told apart). */
static mw_histogram_t int_hist(double v) {
  /* buckets 3, 2, 6 and 2 negative, 1 zero: count 14 */
  return (mw_histogram_t){.schema = 2,
                          .zero_threshold = 1e-3,
                          .count = 14,
                          .zero_count = 1,
                          .sum = v,
                          .reset_hint = MW_HIST_RESET_NO,
                          .n_pos_spans = 2,
                          .pos_spans = pos_spans,
                          .n_pos = 3,
                          .pos_deltas = pos_deltas,
                          .n_neg_spans = 1,
                          .neg_spans = neg_spans,
                          .n_neg = 1,
                          .neg_deltas = neg_deltas};
}

static const double fcounts[] = {0.5, 1.5};
static const mw_hspan_t fspans[] = {{0, 2}};
static const double cvals[] = {0.25, 1, 4};

static mw_histogram_t float_hist(double v) {
  return (mw_histogram_t){.schema = MW_HIST_SCHEMA_CUSTOM,
                          .is_float = 1,
                          .fcount = 2,
                          .sum = v,
                          .n_pos_spans = 1,
                          .pos_spans = fspans,
                          .n_pos = 2,
                          .pos_counts = fcounts,
                          .n_custom = 3,
                          .custom_values = cvals};
}

/* What a reader got: per histogram sample, its series (label i), ts and sum; the
 * float samples' count; and whether every histogram's fields came back as sent. */
typedef struct {
  int series[4096];
  int64_t ts[4096];
  double sum[4096];
  size_t n, floats, requests, max_per_request;
  int bad; /* a histogram differs from what int_hist/float_hist make */
} got_t;

static int label_i(const Prometheus__TimeSeries *t) {
  for (size_t j = 0; j < t->n_labels; j++)
    if (t->labels[j]->name.len == 1 && t->labels[j]->name.data[0] == 'i') {
      int v = 0;
      for (size_t k = 0; k < t->labels[j]->value.len; k++)
        v = v * 10 + (t->labels[j]->value.data[k] - '0');
      return v;
    }
  return -1;
}

static int same_hist(const Prometheus__Histogram *m) {
  if (mw_batch_is_stale_value(m->sum)) return m->count_case != 0 && m->n_positive_spans == 0;
  if (m->count_case == PROMETHEUS__HISTOGRAM__COUNT_COUNT_INT) {
    return m->count_int == 14 && m->zero_count_int == 1 && m->schema == 2 &&
           m->zero_threshold == 1e-3 && m->reset_hint == 2 && m->n_positive_spans == 2 &&
           m->positive_spans[0]->offset == -1 && m->positive_spans[0]->length == 2 &&
           m->positive_spans[1]->offset == 3 && m->n_positive_deltas == 3 &&
           m->positive_deltas[1] == -1 && m->positive_deltas[2] == 4 && m->n_negative_spans == 1 &&
           m->n_negative_deltas == 1 && m->negative_deltas[0] == 2 && m->n_custom_values == 0 &&
           m->n_positive_counts == 0;
  }
  return m->count_case == PROMETHEUS__HISTOGRAM__COUNT_COUNT_FLOAT && m->count_float == 2 &&
         m->zero_count_case == PROMETHEUS__HISTOGRAM__ZERO_COUNT_ZERO_COUNT_FLOAT &&
         m->zero_count_float == 0 && m->schema == -53 && m->n_custom_values == 3 &&
         m->custom_values[2] == 4 && m->n_positive_counts == 2 && m->positive_counts[1] == 1.5 &&
         m->n_positive_deltas == 0;
}

static int got_request(got_t *g, const uint8_t *buf, size_t len) {
  Prometheus__WriteRequest *req;
  if (mw_rwenc_decode(buf, len, &req, err, sizeof err) != 0) return -1;
  size_t here = 0;
  for (size_t i = 0; i < req->n_timeseries; i++) {
    const Prometheus__TimeSeries *t = req->timeseries[i];
    g->floats += t->n_samples;
    for (size_t j = 0; j < t->n_histograms && g->n < 4096; j++) {
      const Prometheus__Histogram *m = t->histograms[j];
      if (!same_hist(m)) g->bad++;
      g->series[g->n] = label_i(t);
      g->ts[g->n] = m->timestamp;
      g->sum[g->n] = m->sum;
      g->n++;
      here++;
    }
  }
  g->requests++;
  if (here > g->max_per_request) g->max_per_request = here;
  mw_rwenc_decode_free(req);
  return 0;
}

/* Reads every span (nshards, max), committing each if commit. */
static int drain(mw_wal_reader_t *r, uint32_t nshards, uint32_t max, int64_t min_ts, int commit,
                 got_t *g) {
  const uint8_t *bufs[16];
  size_t lens[16];
  mw_wal_chunk_t chunks[16];
  for (;;) {
    int rc =
        mw_wal_reader_next_shards(r, nshards, max, min_ts, bufs, lens, chunks, err, sizeof err);
    if (rc < 0) return -1;
    if (rc == 0) return 0;
    for (uint32_t k = 0; k < nshards; k++)
      if (bufs[k] && got_request(g, bufs[k], lens[k]) != 0) return -1;
    if (commit && mw_wal_reader_commit(r, chunks[0].seq, err, sizeof err) != 0) return -1;
  }
}

/* Appends, for series first..first+count-1: a histogram (integer for even i, float for
 * odd) at ts with sum i * 1000 + ts / 1000, and a float sample if floats. */
static int append(mw_wal_t *w, src_t *src, int first, int count, int64_t ts, int floats) {
  mw_batch_t *b = mw_batch_new(src->s);
  int rc = 0;
  for (int i = first; i < first + count && !rc; i++) {
    double v = i * 1000 + (double)ts / 1000;
    mw_histogram_t h = i % 2 ? float_hist(v) : int_hist(v);
    rc = mw_batch_add_histogram(b, src->refs[i], ts, &h, err, sizeof err);
    if (!rc && floats) rc = mw_batch_add(b, src->refs[i], ts, v);
  }
  if (!rc) rc = mw_wal_append_batch(w, b, err, sizeof err);
  mw_batch_free(b);
  return rc;
}

static mw_wal_reader_t *reader(mw_wal_t *w, const char *name, int send) {
  mw_wal_reader_t *r;
  if (mw_wal_reader_open(w, name, NULL, 0, &r, err, sizeof err) != 0) return NULL;
  mw_wal_reader_set_histograms(r, send);
  return r;
}

/* Histograms and floats of the same append reach the request, each histogram in its
 * series' TimeSeries.histograms with every field as written, stale markers too; a
 * restart replays what was not committed, and only that. */
static void test_roundtrip_and_restart(void) {
  char *dir = mw_test_tmpdir("walh");
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src);
  CHECK_INT(append(w, &src, 0, 4, 1000, 1), 0);
  mw_batch_t *b = mw_batch_new(src.s);
  CHECK_INT(mw_batch_add_histogram_stale(b, src.refs[0], 2000, 0), 0);
  CHECK_INT(mw_wal_append_batch(w, b, err, sizeof err), 0); /* a histogram-only append */
  mw_batch_free(b);
  mw_wal_stats_t st;
  mw_wal_stats(w, &st);
  CHECK_INT(st.histograms_appended, 5);
  CHECK_INT(st.samples_appended, 4);
  mw_wal_reader_t *r = reader(w, "ep", 1);
  got_t *g = calloc(1, sizeof *g);
  CHECK_INT(drain(r, 1, 100, INT64_MIN, 1, g), 0);
  CHECK_INT(g->n, 5);
  CHECK_INT(g->floats, 4);
  CHECK_INT(g->bad, 0);
  /* grouped by series, each series' in WAL order */
  CHECK_INT(g->series[0], 0);
  CHECK_DBL(g->sum[0], 1);
  CHECK_INT(g->series[1], 0);
  CHECK_INT(g->ts[1], 2000);
  CHECK(mw_batch_is_stale_value(g->sum[1]));
  CHECK_INT(g->series[2], 1);
  CHECK_DBL(g->sum[2], 1001);
  CHECK_INT(g->ts[2], 1000);
  mw_wal_reader_stats_t rs;
  mw_wal_reader_stats(r, &rs);
  CHECK_INT(rs.histograms_read, 5);
  CHECK_INT(rs.histograms_committed, 5);
  CHECK_INT(rs.histograms_pending, 0);
  /* more, read and not committed: a restart sends exactly these again */
  CHECK_INT(append(w, &src, 0, 2, 3000, 0), 0);
  memset(g, 0, sizeof *g);
  CHECK_INT(drain(r, 1, 100, INT64_MIN, 0, g), 0);
  CHECK_INT(g->n, 2);
  mw_wal_reader_stats(r, &rs);
  CHECK_INT(rs.histograms_pending, 2);
  mw_wal_reader_close(r);
  mw_wal_close(w);
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  mw_wal_stats(w, &st);
  CHECK_INT(st.replayed_histograms, 7);
  CHECK_INT(st.replayed_samples, 4);
  CHECK_INT(st.corruptions, 0);
  r = reader(w, "ep", 1);
  memset(g, 0, sizeof *g);
  CHECK_INT(drain(r, 1, 100, INT64_MIN, 1, g), 0);
  CHECK_INT(g->n, 2);
  CHECK_INT(g->ts[0], 3000);
  CHECK_INT(g->ts[1], 3000);
  CHECK_INT(g->bad, 0);
  mw_wal_reader_stats(r, &rs);
  CHECK_INT(rs.samples_before_open, 9); /* items: 4 samples and 5 histograms */
  /* a new reader reads all 7 */
  mw_wal_reader_t *r2 = reader(w, "other", 1);
  memset(g, 0, sizeof *g);
  CHECK_INT(drain(r2, 1, 100, INT64_MIN, 1, g), 0);
  CHECK_INT(g->n, 7);
  mw_wal_reader_close(r2);
  mw_wal_reader_close(r);
  mw_wal_close(w);
  mw_series_free(src.s);
  free(g);
  mw_test_rm_rf(dir);
}

/* send_native_histograms off (the default): the floats flow, the histograms are counted
 * as dropped. */
static void test_send_off(void) {
  char *dir = mw_test_tmpdir("walh");
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src);
  CHECK_INT(append(w, &src, 0, 6, 1000, 1), 0);
  CHECK_INT(append(w, &src, 0, 6, 2000, 0), 0);
  mw_wal_reader_t *r;
  CHECK_INT(mw_wal_reader_open(w, "ep", NULL, 0, &r, err, sizeof err), 0); /* default: off */
  got_t *g = calloc(1, sizeof *g);
  CHECK_INT(drain(r, 2, 100, INT64_MIN, 1, g), 0);
  CHECK_INT(g->n, 0);
  CHECK_INT(g->floats, 6);
  mw_wal_reader_stats_t rs;
  mw_wal_reader_stats(r, &rs);
  CHECK_INT(rs.histograms_dropped, 12);
  CHECK_INT(rs.histograms_unsent, 12);
  CHECK_INT(rs.histograms_read, 0);
  mw_wal_reader_close(r);
  mw_wal_close(w);
  mw_series_free(src.s);
  free(g);
  mw_test_rm_rf(dir);
}

/* Shards: each series' histograms in one shard and in order; a request holds at most
 * max_samples histograms plus one record's; nothing lost, nothing twice. */
static void test_shards(void) {
  char *dir = mw_test_tmpdir("walh");
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src);
  for (int k = 0; k < 40; k++) /* 40 appends of 16 histograms, no float samples */
    CHECK_INT(append(w, &src, (k % 4) * 16, 16, 1000 + k * 10, 0), 0);
  mw_wal_reader_t *r = reader(w, "ep", 1);
  got_t *g = calloc(1, sizeof *g);
  CHECK_INT(drain(r, 4, 20, INT64_MIN, 1, g), 0);
  CHECK_INT(g->n, 640);
  CHECK_INT(g->bad, 0);
  CHECK(g->max_per_request <= 20 + 16);
  CHECK(g->requests > 640 / 36);
  /* per series: 10 histograms in increasing ts */
  for (int i = 0; i < 64; i++) {
    int64_t last = -1;
    int n = 0;
    for (size_t k = 0; k < g->n; k++) {
      if (g->series[k] != i) continue;
      CHECK(g->ts[k] > last);
      last = g->ts[k];
      n++;
    }
    CHECK_INT(n, 10);
  }
  mw_wal_reader_close(r);
  mw_wal_close(w);
  mw_series_free(src.s);
  free(g);
  mw_test_rm_rf(dir);
}

/* Truncation keeps the segments of histogram-only appends a reader has not read (they
 * hold items, as samples records do), and removes them once it has. */
static void test_truncate_histogram_only(void) {
  char *dir = mw_test_tmpdir("walh");
  mw_wal_opts_t o = {.segment_size = 4096};
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src);
  mw_wal_reader_t *r = reader(w, "ep", 1);
  for (int k = 0; k < 50; k++)
    CHECK_INT(append(w, &src, 0, 8, 1000 + k, 0), 0);
  CHECK_INT(mw_wal_truncate(w, 1000000, 0, 3600000000, err, sizeof err), 0);
  mw_wal_stats_t st;
  mw_wal_stats(w, &st);
  CHECK_INT(st.segments_removed, 0);
  got_t *g = calloc(1, sizeof *g);
  CHECK_INT(drain(r, 1, 1000, INT64_MIN, 1, g), 0);
  CHECK_INT(g->n, 400);
  CHECK_INT(mw_wal_truncate(w, 1000000, 0, 3600000000, err, sizeof err), 0);
  mw_wal_stats(w, &st);
  CHECK(st.segments_removed > 0);
  mw_wal_reader_close(r);
  mw_wal_close(w);
  mw_series_free(src.s);
  free(g);
  mw_test_rm_rf(dir);
}

/* sample_age_limit: histograms older than min_ts are skipped and counted, at read and
 * in a retry (drop_old). */
static void test_too_old(void) {
  char *dir = mw_test_tmpdir("walh");
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src);
  CHECK_INT(append(w, &src, 0, 4, 1000, 0), 0);
  CHECK_INT(append(w, &src, 0, 4, 5000, 0), 0);
  mw_wal_reader_t *r = reader(w, "ep", 1);
  got_t *g = calloc(1, sizeof *g);
  CHECK_INT(drain(r, 1, 100, 2000, 0, g), 0);
  CHECK_INT(g->n, 4);
  mw_wal_reader_stats_t rs;
  mw_wal_reader_stats(r, &rs);
  CHECK_INT(rs.histograms_too_old, 4);
  CHECK_INT(rs.histograms_dropped, 4);
  /* a request read again and filtered by a later min_ts */
  mw_wal_reader_rewind(r);
  const uint8_t *buf, *out;
  size_t len, olen;
  mw_wal_chunk_t c;
  CHECK_INT(mw_wal_reader_next_shards(r, 1, 100, INT64_MIN, &buf, &len, &c, err, sizeof err), 1);
  CHECK_INT(c.histograms, 8);
  uint8_t *copy = malloc(len);
  memcpy(copy, buf, len);
  CHECK_INT(mw_wal_reader_drop_old(r, c.seq, copy, len, 2000, &out, &olen, &c, err, sizeof err), 4);
  CHECK_INT(c.histograms, 4);
  CHECK_INT(c.min_ts, 5000);
  memset(g, 0, sizeof *g);
  CHECK_INT(got_request(g, out, olen), 0);
  CHECK_INT(g->n, 4);
  CHECK_INT(g->ts[0], 5000);
  free(copy);
  mw_wal_reader_close(r);
  mw_wal_close(w);
  mw_series_free(src.s);
  free(g);
  mw_test_rm_rf(dir);
}

/* Write relabeling drops a histogram series' samples with it (counted). */
static void test_write_relabel(void) {
  char *dir = mw_test_tmpdir("walh");
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src);
  CHECK_INT(append(w, &src, 0, 4, 1000, 1), 0);
  mw_relabel_str_t i_src[] = {{.ptr = "i", .len = 1}};
  mw_relabel_rule_t rule = {.source_labels = i_src,
                            .n_source_labels = 1,
                            .regex = {.ptr = "[02]", .len = 4},
                            .action = {.ptr = "drop", .len = 4}};
  mw_relabel_program_t *p = NULL;
  CHECK_INT(mw_relabel_compile(&rule, 1, &p, err, sizeof err), 0);
  mw_wal_reader_t *r = reader(w, "ep", 1);
  CHECK_INT(mw_wal_reader_set_relabel(r, p, err, sizeof err), 0);
  got_t *g = calloc(1, sizeof *g);
  CHECK_INT(drain(r, 1, 100, INT64_MIN, 1, g), 0);
  CHECK_INT(g->n, 2);
  CHECK_INT(g->floats, 2);
  CHECK(g->series[0] == 1 && g->series[1] == 3);
  mw_wal_reader_stats_t rs;
  mw_wal_reader_stats(r, &rs);
  CHECK_INT(rs.histograms_relabel_dropped, 2);
  mw_wal_reader_close(r);
  mw_relabel_program_free(p);
  mw_wal_close(w);
  mw_series_free(src.s);
  free(g);
  mw_test_rm_rf(dir);
}

/* A histograms record that does not decode to valid histograms (a bad CRC is the usual
 * corruption; this one has a good CRC) cuts its segment at replay: what precedes it
 * stays. */
static void test_invalid_record_cut(void) {
  char *dir = mw_test_tmpdir("walh");
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src);
  CHECK_INT(append(w, &src, 0, 2, 1000, 1), 0);
  mw_wal_close(w);
  /* append a histograms record: ref 1, ts base, an integer histogram with count 5 and
   * one bucket of 1 (count mismatch) */
  char path[512];
  snprintf(path, sizeof path, "%s/wal/00000001", dir);
  FILE *f = fopen(path, "ab");
  CHECK(f);
  uint8_t rec[64] = {0}, *p = rec + 9;
  mw_put32(p, 1);
  mw_put64(p + 4, 1000);
  p += 12;
  const uint8_t body[] = {2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0,
                          0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 2, 0, 0};
  memcpy(p, body, sizeof body);
  p += sizeof body;
  mw_rlog_frame(rec, MW_REC_HISTOGRAMS, (uint32_t)(p - rec - 9));
  CHECK_INT(fwrite(rec, 1, (size_t)(p - rec), f), (size_t)(p - rec));
  fclose(f);
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  mw_wal_stats_t st;
  mw_wal_stats(w, &st);
  CHECK_INT(st.corruptions, 1);
  CHECK_INT(st.replayed_histograms, 2);
  CHECK_INT(st.replayed_samples, 2);
  mw_wal_close(w);
  mw_series_free(src.s);
  mw_test_rm_rf(dir);
}

/* Histograms of one append that take more than the 64 MiB a record log reads back (4096
 * float histograms of 2100 buckets, 17 KB each: under 4096 a record): all are written in
 * records the replay and readers accept, and the append after them too (the one record
 * of them was cut at the next open as corrupt, with what followed it in the segment). */
static void test_big_append(void) {
  char *dir = mw_test_tmpdir("walh");
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src);
  enum { NB = 2100, NH = 4096 };
  double *counts = malloc(NB * sizeof *counts);
  for (int k = 0; k < NB; k++)
    counts[k] = 1;
  const mw_hspan_t span = {0, NB};
  mw_batch_t *b = mw_batch_new(src.s);
  for (int i = 0; i < NH; i++) {
    mw_histogram_t h = {.is_float = 1,
                        .fcount = NB,
                        .sum = i,
                        .n_pos_spans = 1,
                        .pos_spans = &span,
                        .n_pos = NB,
                        .pos_counts = counts};
    CHECK_INT(mw_batch_add_histogram(b, src.refs[i % 64], 1000 + i / 64, &h, err, sizeof err), 0);
  }
  CHECK_INT(mw_wal_append_batch(w, b, err, sizeof err), 0);
  mw_batch_free(b);
  free(counts);
  CHECK_INT(append(w, &src, 0, 2, 900000, 1), 0);
  mw_wal_close(w);
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  mw_wal_stats_t st;
  mw_wal_stats(w, &st);
  CHECK_INT(st.corruptions, 0);
  CHECK_INT(st.replayed_histograms, NH + 2);
  CHECK_INT(st.replayed_samples, 2);
  mw_wal_reader_t *r = reader(w, "ep", 1);
  size_t n = 0;
  for (;;) {
    const uint8_t *buf;
    size_t len;
    mw_wal_chunk_t c;
    int rc = mw_wal_reader_next(r, 500, &buf, &len, &c, err, sizeof err);
    CHECK(rc >= 0);
    if (rc <= 0) break;
    n += c.histograms;
    CHECK_INT(mw_wal_reader_commit(r, c.seq, err, sizeof err), 0);
  }
  CHECK_INT(n, NH + 2);
  mw_wal_reader_close(r);
  mw_wal_close(w);
  mw_series_free(src.s);
  mw_test_rm_rf(dir);
}

/* Histograms count toward max_samples for the float samples after them too: a span that
 * holds 19 histograms takes one float sample more at max 20, not 20 (a request held 39:
 * the float samples' check counted samples and exemplars only). */
static void test_max_counts_histograms_before_floats(void) {
  char *dir = mw_test_tmpdir("walh");
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src);
  CHECK_INT(append(w, &src, 0, 19, 1000, 0), 0); /* 19 histograms */
  mw_batch_t *b = mw_batch_new(src.s);
  for (int i = 0; i < 20; i++) /* then 20 float samples of series 20..39 */
    CHECK_INT(mw_batch_add(b, src.refs[20 + i], 2000, i), 0);
  CHECK_INT(mw_wal_append_batch(w, b, err, sizeof err), 0);
  mw_batch_free(b);
  mw_wal_reader_t *r = reader(w, "ep", 1);
  size_t nh = 0, ns = 0, spans = 0;
  for (;;) {
    const uint8_t *buf;
    size_t len;
    mw_wal_chunk_t c;
    int rc = mw_wal_reader_next(r, 20, &buf, &len, &c, err, sizeof err);
    CHECK(rc >= 0);
    if (rc <= 0) break;
    if (!spans++) CHECK_INT(c.samples + c.histograms, 20);
    nh += c.histograms;
    ns += c.samples;
    CHECK_INT(mw_wal_reader_commit(r, c.seq, err, sizeof err), 0);
  }
  CHECK_INT(nh, 19);
  CHECK_INT(ns, 20);
  CHECK_INT(spans, 2);
  mw_wal_reader_close(r);
  mw_wal_close(w);
  mw_series_free(src.s);
  mw_test_rm_rf(dir);
}

int main(void) {
  MW_RUN(test_roundtrip_and_restart);
  MW_RUN(test_send_off);
  MW_RUN(test_shards);
  MW_RUN(test_truncate_histogram_only);
  MW_RUN(test_too_old);
  MW_RUN(test_write_relabel);
  MW_RUN(test_invalid_record_cut);
  MW_RUN(test_big_append);
  MW_RUN(test_max_counts_histograms_before_floats);
  return mw_test_summary();
}
