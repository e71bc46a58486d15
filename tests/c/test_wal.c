/* test_wal.c: the remote_write WAL: round trips through readers and the
 * encoder, restarts, SIGKILL at random moments, torn and corrupt segments,
 * truncation by checkpoint and max_keepalive, sharded spans. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "base/labels.h"
#include "model/batch.h"
#include "model/series.h"
#include "relabel/relabel.h"
#include "remote.pb-c.h"
#include "remote/encode.h"
#include "remote/wal_reader.h"
#include "storage/metrics_wal.h"
#include "storage/wal.h"
#include "test.h"
#include "testdir.h"

/* --- helpers ---------------------------------------------------------- */

/* Label names and values are protobuf bytes: compare one with a C string, or
 * get a NUL-terminated copy (the last 4 stay valid; a test's labels are short). */
static int pb_is(ProtobufCBinaryData b, const char *s) {
  return b.len == strlen(s) && (b.len == 0 || memcmp(b.data, s, b.len) == 0);
}
static const char *pb_str(ProtobufCBinaryData b) {
  static char bufs[4][256];
  static unsigned k;
  char *o = bufs[k++ % 4];
  snprintf(o, sizeof bufs[0], "%.*s", (int)b.len, b.len ? (const char *)b.data : "");
  return o;
}

static void rm_rf(const char *dir) { mw_test_rm_rf(dir); }

static char *tmpdir(void) { return mw_test_tmpdir("wal"); }

static uint64_t bits(double v) {
  uint64_t b;
  memcpy(&b, &v, sizeof b);
  return b;
}

/* A source: a series table with series i = {__name__="m<i%3>", i="<i>"}. */
typedef struct {
  mw_series_t *s;
  uint32_t *refs;
  int n;
} src_t;

static void src_init(src_t *src, int n, const char *extra) {
  src->s = mw_series_new();
  src->refs = calloc((size_t)n, sizeof *src->refs);
  src->n = n;
  for (int i = 0; i < n; i++) {
    char enc[128];
    int len = snprintf(enc, sizeof enc, "__name__\xffm%d\xffi\xff%d\xff%s", i % 3, i, extra);
    mw_series_add(src->s, (const uint8_t *)enc, (size_t)len,
                  mw_labels_hash((const uint8_t *)enc, (size_t)len), &src->refs[i], NULL, NULL, 0);
  }
}

static void src_free(src_t *src) {
  mw_series_free(src->s);
  free(src->refs);
}

/* What a reader got, flattened: per sample, the series index (from label i),
 * the timestamp and the value's bits, in the order of the requests. */
typedef struct {
  int *series;
  int64_t *ts;
  uint64_t *v;
  size_t n, cap;
  size_t chunks;
  char last_labels[256]; /* the labels of the last series, "n=v," */
} got_t;

static void got_free(got_t *g) {
  free(g->series);
  free(g->ts);
  free(g->v);
  memset(g, 0, sizeof *g);
}

static int got_add_request(got_t *g, const uint8_t *buf, size_t len) {
  char err[256];
  Prometheus__WriteRequest *req;
  if (mw_rwenc_decode(buf, len, &req, err, sizeof err) != 0) return -1;
  if (mw_rwenc_check(req, err, sizeof err) != 0) {
    fprintf(stderr, "check: %s\n", err);
    mw_rwenc_decode_free(req);
    return -1;
  }
  for (size_t i = 0; i < req->n_timeseries; i++) {
    Prometheus__TimeSeries *t = req->timeseries[i];
    int idx = -1;
    size_t o = 0;
    for (size_t j = 0; j < t->n_labels; j++) {
      ProtobufCBinaryData n = t->labels[j]->name, v = t->labels[j]->value;
      if (pb_is(n, "i")) idx = atoi(pb_str(v));
      o += (size_t)snprintf(g->last_labels + o,
                            o < sizeof g->last_labels ? sizeof g->last_labels - o : 0, "%.*s=%.*s,",
                            (int)n.len, (const char *)n.data, (int)v.len, (const char *)v.data);
      if (o >= sizeof g->last_labels) o = sizeof g->last_labels - 1;
    }
    for (size_t j = 0; j < t->n_samples; j++) {
      if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 1024;
        g->series = realloc(g->series, g->cap * sizeof *g->series);
        g->ts = realloc(g->ts, g->cap * sizeof *g->ts);
        g->v = realloc(g->v, g->cap * sizeof *g->v);
      }
      g->series[g->n] = idx;
      g->ts[g->n] = t->samples[j]->timestamp;
      g->v[g->n] = bits(t->samples[j]->value);
      g->n++;
    }
  }
  g->chunks++;
  mw_rwenc_decode_free(req);
  return 0;
}

static int64_t *sort_ts;

static int cmp_idx(const void *a, const void *b) {
  int64_t x = sort_ts[*(const size_t *)a], y = sort_ts[*(const size_t *)b];
  return (x > y) - (x < y);
}

/* Sorts g's samples by timestamp. */
static void sort_by_ts(got_t *g) {
  size_t *idx = malloc((g->n ? g->n : 1) * sizeof *idx);
  for (size_t i = 0; i < g->n; i++)
    idx[i] = i;
  sort_ts = g->ts;
  qsort(idx, g->n, sizeof *idx, cmp_idx);
  got_t o = {0};
  o.cap = g->n ? g->n : 1;
  o.series = malloc(o.cap * sizeof *o.series);
  o.ts = malloc(o.cap * sizeof *o.ts);
  o.v = malloc(o.cap * sizeof *o.v);
  for (size_t i = 0; i < g->n; i++) {
    o.series[i] = g->series[idx[i]];
    o.ts[i] = g->ts[idx[i]];
    o.v[i] = g->v[idx[i]];
  }
  o.n = g->n;
  o.chunks = g->chunks;
  free(idx);
  got_free(g);
  *g = o;
}

/* Reads everything from r (chunks of max samples), committing each if commit. */
static int drain(mw_wal_reader_t *r, uint32_t max, int commit, got_t *g) {
  char err[256];
  for (;;) {
    const uint8_t *buf;
    size_t len;
    mw_wal_chunk_t c;
    int rc = mw_wal_reader_next(r, max, &buf, &len, &c, err, sizeof err);
    if (rc < 0) {
      fprintf(stderr, "next: %s\n", err);
      return -1;
    }
    if (rc == 0) return 0;
    if (c.samples > max) return -1;
    if (got_add_request(g, buf, len) != 0) return -1;
    if (commit && mw_wal_reader_commit(r, c.seq, err, sizeof err) != 0) return -1;
  }
}

/* Appends samples of series first..first+count-1 of src at ts, values v0+k. */
/* Reads the whole WAL into *g (zeroed first) through a new reader "ep",
 * max samples per chunk, committing each, then closes the reader. 0, or -1
 * (reader refused, or drain failed). */
static int read_all(mw_wal_t *w, uint32_t max, got_t *g) {
  char err[256];
  mw_wal_reader_t *r;
  *g = (got_t){0};
  if (mw_wal_reader_open(w, "ep", NULL, 0, &r, err, sizeof err) != 0) return -1;
  int rc = drain(r, max, 1, g);
  mw_wal_reader_close(r);
  return rc;
}

static int append(mw_wal_t *w, src_t *src, int first, int count, int64_t ts, double v0) {
  char err[256];
  mw_batch_t *b = mw_batch_new(src->s);
  for (int k = 0; k < count; k++)
    mw_batch_add(b, src->refs[(first + k) % src->n], ts, v0 + k);
  int rc = mw_wal_append_batch(w, b, err, sizeof err);
  if (rc != 0) fprintf(stderr, "append: %s\n", err);
  mw_batch_free(b);
  return rc;
}

static uint32_t last_segment(const char *dir, char *path, size_t cap) {
  char wal[256];
  snprintf(wal, sizeof wal, "%s/wal", dir);
  DIR *d = opendir(wal);
  struct dirent *e;
  uint32_t best = 0;
  while ((e = readdir(d)))
    if (strlen(e->d_name) == 8 && (uint32_t)atoi(e->d_name) > best)
      best = (uint32_t)atoi(e->d_name);
  closedir(d);
  snprintf(path, cap, "%s/%08u", wal, best);
  return best;
}

/* Open file descriptors of the process. */
static int open_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  for (struct dirent *e; d && (e = readdir(d));)
    n += e->d_name[0] != '.';
  if (d) closedir(d);
  return n - 1; /* the DIR's own */
}

static off_t file_size(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 ? sb.st_size : -1;
}

/* --- tests ------------------------------------------------------------ */

static void test_roundtrip(void) {
  char err[256], *dir = tmpdir();
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  CHECK_STR(mw_wal_repair_log(w), "");
  src_t src;
  src_init(&src, 50, "");
  /* Three scrapes of 50 series; the second has a staleness marker for series 7. */
  for (int k = 0; k < 3; k++) {
    mw_batch_t *b = mw_batch_new(src.s);
    for (int i = 0; i < 50; i++)
      mw_batch_add(b, src.refs[i], 1000 * (k + 1), k == 1 && i == 7 ? mw_batch_stale_nan() : i + k);
    CHECK_INT(mw_wal_append_batch(w, b, err, sizeof err), 0);
    mw_batch_free(b);
  }
  mw_wal_stats_t st;
  mw_wal_stats(w, &st);
  CHECK_INT(st.samples_appended, 150);
  CHECK_INT(st.series_created, 50);
  CHECK_INT(st.active_series, 50);
  mw_wal_reader_t *r;
  CHECK_INT(mw_wal_reader_open(w, "ep", NULL, 0, &r, err, sizeof err), 0);
  got_t g = {0};
  CHECK_INT(drain(r, 40, 1, &g), 0);
  CHECK_INT(g.n, 150);
  CHECK_INT(g.chunks, 4);
  /* Every sample exactly once, per series in time order, values bit for bit. */
  int seen[50][3] = {{0}};
  int64_t last[50] = {0};
  for (size_t i = 0; i < g.n; i++) {
    int s = g.series[i];
    CHECK(s >= 0 && s < 50);
    int k = (int)(g.ts[i] / 1000) - 1;
    CHECK(k >= 0 && k < 3);
    CHECK(g.ts[i] > last[s]);
    last[s] = g.ts[i];
    seen[s][k]++;
    uint64_t want = k == 1 && s == 7 ? MW_STALE_NAN_BITS : bits((double)(s + k));
    CHECK(g.v[i] == want);
  }
  for (int s = 0; s < 50; s++)
    for (int k = 0; k < 3; k++)
      CHECK_INT(seen[s][k], 1);
  mw_wal_reader_stats_t rs;
  mw_wal_reader_stats(r, &rs);
  CHECK_INT(rs.samples_committed, 150);
  CHECK_INT(rs.pending_chunks, 0);
  CHECK_INT(rs.committed_max_ts, 3000);
  got_free(&g);
  /* Label sets the WAL refuses (unsorted, a NUL byte) are counted, not written. */
  mw_series_t *bad = mw_series_new();
  const uint8_t unsorted[] = "b\xff"
                             "1\xff"
                             "a\xff"
                             "2\xff",
                nul[] = "__name__\xffx\0y\xff";
  uint32_t r1, r2;
  mw_series_add(bad, unsorted, sizeof unsorted - 1, mw_labels_hash(unsorted, sizeof unsorted - 1),
                &r1, NULL, NULL, 0);
  mw_series_add(bad, nul, sizeof nul - 1, mw_labels_hash(nul, sizeof nul - 1), &r2, NULL, NULL, 0);
  mw_batch_t *b = mw_batch_new(bad);
  for (int k = 0; k < 2; k++) {
    mw_batch_add(b, r1, 5000, 1);
    mw_batch_add(b, r2, 5000, 2);
  }
  CHECK_INT(mw_wal_append_batch(w, b, err, sizeof err), 0);
  mw_batch_free(b);
  mw_series_free(bad);
  mw_wal_stats(w, &st);
  CHECK_INT(st.samples_invalid, 4);
  CHECK_INT(st.samples_appended, 150);
  CHECK_INT(drain(r, 40, 1, &g), 0);
  CHECK_INT(g.n, 0);
  got_free(&g);
  mw_wal_reader_close(r);
  mw_wal_close(w);
  src_free(&src);
  rm_rf(dir);
}

/* Chunks in flight, commits out of order, rewind, several readers. */
static void test_pipeline(void) {
  char err[256], *dir = tmpdir();
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src, 100, "");
  CHECK_INT(append(w, &src, 0, 100, 5000, 0), 0);
  mw_wal_reader_t *a, *b;
  CHECK_INT(mw_wal_reader_open(w, "a", NULL, 0, &a, err, sizeof err), 0);
  CHECK_INT(mw_wal_reader_open(w, "b", NULL, 0, &b, err, sizeof err), 0);
  mw_wal_reader_t *x;
  CHECK_INT(mw_wal_reader_open(w, "a", NULL, 0, &x, err, sizeof err), -1);
  CHECK_INT(mw_wal_reader_open(w, "../x", NULL, 0, &x, err, sizeof err), -1);
  CHECK(x == NULL);
  const uint8_t *buf;
  size_t len;
  mw_wal_chunk_t c1, c2, c3;
  CHECK_INT(mw_wal_reader_next(a, 30, &buf, &len, &c1, err, sizeof err), 1);
  CHECK_INT(mw_wal_reader_next(a, 30, &buf, &len, &c2, err, sizeof err), 1);
  CHECK_INT(mw_wal_reader_next(a, 30, &buf, &len, &c3, err, sizeof err), 1);
  CHECK_INT(c1.samples + c2.samples + c3.samples, 90);
  /* Acks of 2 and 3 before 1: the cursor waits for 1. */
  CHECK_INT(mw_wal_reader_commit(a, c3.seq, err, sizeof err), 0);
  CHECK_INT(mw_wal_reader_commit(a, c2.seq, err, sizeof err), 0);
  mw_wal_reader_stats_t rs;
  mw_wal_reader_stats(a, &rs);
  CHECK_INT(rs.samples_committed, 0);
  CHECK_INT(rs.pending_chunks, 3);
  CHECK_INT(mw_wal_reader_commit(a, c1.seq, err, sizeof err), 0);
  mw_wal_reader_stats(a, &rs);
  CHECK_INT(rs.samples_committed, 90);
  CHECK_INT(rs.pending_chunks, 0);
  /* A chunk handed out, not committed, rewound: read again. */
  mw_wal_chunk_t c4, c5;
  CHECK_INT(mw_wal_reader_next(a, 1000, &buf, &len, &c4, err, sizeof err), 1);
  CHECK_INT(c4.samples, 10);
  mw_wal_reader_rewind(a);
  CHECK_INT(mw_wal_reader_commit(a, c4.seq, err, sizeof err), 0); /* late ack: ignored */
  CHECK_INT(mw_wal_reader_next(a, 1000, &buf, &len, &c5, err, sizeof err), 1);
  CHECK_INT(c5.samples, 10);
  CHECK_INT(mw_wal_reader_commit(a, c5.seq, err, sizeof err), 0);
  CHECK_INT(mw_wal_reader_next(a, 1000, &buf, &len, &c5, err, sizeof err), 0);
  /* b is independent. */
  got_t g = {0};
  CHECK_INT(drain(b, 7, 0, &g), 0);
  CHECK_INT(g.n, 100);
  got_free(&g);
  mw_wal_reader_close(a);
  mw_wal_reader_close(b);
  mw_wal_close(w);
  src_free(&src);
  rm_rf(dir);
}

/* Close and reopen: readers resume at their cursor; labels of series made
 * before the restart are known; appends go on with new series. */
static void test_restart(void) {
  char err[256], *dir = tmpdir();
  mw_wal_opts_t o = {.segment_size = 4096};
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src, 200, "");
  for (int k = 0; k < 20; k++)
    CHECK_INT(append(w, &src, 0, 100, 1000 + k, k * 1000), 0);
  mw_wal_reader_t *r;
  CHECK_INT(mw_wal_reader_open(w, "ep", NULL, 0, &r, err, sizeof err), 0);
  const uint8_t *buf;
  size_t len;
  mw_wal_chunk_t c;
  got_t g = {0};
  for (int i = 0; i < 7; i++) {
    CHECK_INT(mw_wal_reader_next(r, 150, &buf, &len, &c, err, sizeof err), 1);
    CHECK_INT(got_add_request(&g, buf, len), 0);
    CHECK_INT(mw_wal_reader_commit(r, c.seq, err, sizeof err), 0);
  }
  /* One more chunk handed out and not committed: sent again after the restart. */
  CHECK_INT(mw_wal_reader_next(r, 150, &buf, &len, &c, err, sizeof err), 1);
  mw_wal_stats_t st;
  mw_wal_stats(w, &st);
  CHECK(st.segments > 3);
  mw_wal_reader_close(r);
  mw_wal_close(w);

  CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), 0);
  mw_wal_stats(w, &st);
  CHECK_INT(st.replayed_samples, 2000);
  CHECK_INT(st.active_series, 100);
  CHECK_INT(st.corruptions, 0);
  /* New series and old ones after the restart. */
  CHECK_INT(append(w, &src, 50, 150, 5000, 100000), 0);
  mw_wal_stats(w, &st);
  CHECK_INT(st.series_created, 100);
  CHECK_INT(mw_wal_reader_open(w, "ep", NULL, 0, &r, err, sizeof err), 0);
  /* What the reader had committed before the restart is known as sent. */
  mw_wal_reader_stats_t rst;
  mw_wal_reader_stats(r, &rst);
  CHECK_INT(rst.samples_before_open, 7 * 150);
  CHECK_INT(rst.cursor_errors, 0);
  CHECK_STR(mw_ffi_wal_reader_note(r), "");
  CHECK_INT(drain(r, 150, 1, &g), 0);
  CHECK_INT(g.n, 2000 + 150);
  /* Scrape k of series i has value k*1000+i; the new samples 100000+i-50. */
  size_t old = 0, fresh = 0;
  for (size_t i = 0; i < g.n; i++) {
    uint64_t want = g.ts[i] == 5000 ? bits((double)(100000 + g.series[i] - 50))
                                    : bits((double)((g.ts[i] - 1000) * 1000 + g.series[i]));
    if (g.v[i] != want)
      MW_FAIL("sample %zu: series %d ts %lld", i, g.series[i], (long long)g.ts[i]);
    if (g.ts[i] == 5000)
      fresh++;
    else
      old++;
  }
  CHECK_INT(old, 2000);
  CHECK_INT(fresh, 150);
  got_free(&g);
  mw_wal_reader_close(r);
  mw_wal_close(w);
  src_free(&src);
  rm_rf(dir);
}

/* Opens reader "ep", commits chunks of 100 samples until n were read (all:
 * n < 0), closes it (saving the cursor); returns the samples it read. */
static size_t read_some(mw_wal_t *w, int n, mw_wal_reader_stats_t *st, char *note, size_t cap) {
  char err[256];
  mw_wal_reader_t *r;
  if (mw_wal_reader_open(w, "ep", NULL, 0, &r, err, sizeof err) != 0) return (size_t)-1;
  mw_wal_reader_stats(r, st);
  snprintf(note, cap, "%s", mw_ffi_wal_reader_note(r));
  got_t g = {0};
  const uint8_t *buf;
  size_t len;
  mw_wal_chunk_t c;
  while (n < 0 || g.n < (size_t)n) {
    int rc = mw_wal_reader_next(r, 100, &buf, &len, &c, err, sizeof err);
    if (rc <= 0 || got_add_request(&g, buf, len) != 0 ||
        mw_wal_reader_commit(r, c.seq, err, sizeof err) != 0)
      break;
  }
  size_t got = g.n;
  got_free(&g);
  mw_wal_reader_close(r);
  return got;
}

static void put_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

/* A damaged or unreadable cursor file: its previous copy is used (counted,
 * with a note), without one the WAL is read from its start; a version 1
 * cursor (no CRC) is still read. */
static void test_cursor_copies(void) {
  char err[256], path[512], prev[512], text[128], note[512], *dir = tmpdir();
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src, 100, "");
  for (int k = 0; k < 10; k++)
    CHECK_INT(append(w, &src, 0, 100, 1000 + k, k), 0);
  snprintf(path, sizeof path, "%s/cursor.ep", dir);
  snprintf(prev, sizeof prev, "%s/.cursor.ep.prev", dir);
  mw_wal_reader_stats_t st;
  CHECK_INT(read_some(w, 100, &st, note, sizeof note), 100);
  CHECK_INT(read_some(w, 100, &st, note, sizeof note), 100);
  CHECK_INT(st.samples_before_open, 100);
  /* cursor at 200, its previous copy at 100: a damaged cursor falls back to 100 */
  put_file(path, "mwcursor 2 1 12345 0 deadbeef\n");
  CHECK_INT(read_some(w, 0, &st, note, sizeof note), 0);
  CHECK_INT(st.cursor_errors, 1);
  CHECK_INT(st.samples_before_open, 100);
  CHECK(strstr(note, "using its previous copy") != NULL);
  char aside[512];
  snprintf(aside, sizeof aside, "%s/.cursor.ep.damaged", dir);
  CHECK(access(aside, F_OK) == 0);
  /* read 100 more (cursor 200); a directory where the cursor should be: unreadable */
  CHECK_INT(read_some(w, 100, &st, note, sizeof note), 100);
  CHECK_INT(st.cursor_errors, 0);
  CHECK_STR(note, "");
  CHECK_INT(read_some(w, 100, &st, note, sizeof note), 100); /* cursor 300, previous 200 */
  unlink(path);
  CHECK_INT(mkdir(path, 0750), 0);
  CHECK_INT(read_some(w, 0, &st, note, sizeof note), 0);
  CHECK_INT(st.cursor_errors, 1);
  CHECK_INT(st.samples_before_open, 200);
  CHECK(strstr(note, "Is a directory") != NULL);
  /* both damaged: everything again, said so */
  put_file(path, "garbage");
  put_file(prev, "mwcursor 2 1 8 0 00000000\n");
  CHECK_INT(read_some(w, 0, &st, note, sizeof note), 0);
  CHECK_INT(st.cursor_errors, 1);
  CHECK_INT(st.samples_before_open, 0);
  CHECK(strstr(note, "no good previous copy: reading the WAL from its oldest data") != NULL);
  /* a missing cursor beside a good previous copy (a crash between the renames): no error */
  CHECK_INT(read_some(w, 500, &st, note, sizeof note), 500);
  CHECK_INT(read_some(w, 0, &st, note, sizeof note), 0); /* cursor 500, previous 500 */
  CHECK_INT(rename(path, prev), 0);
  CHECK_INT(read_some(w, 0, &st, note, sizeof note), 0);
  CHECK_INT(st.cursor_errors, 0);
  CHECK_INT(st.samples_before_open, 500);
  /* version 1, as written before this change (only the previous copy is there) */
  FILE *f = fopen(prev, "r");
  unsigned seg, idx;
  unsigned long long off;
  CHECK(f && fscanf(f, "mwcursor 2 %u %llu %u", &seg, &off, &idx) == 3);
  if (f) fclose(f);
  snprintf(text, sizeof text, "mwcursor 1 %u %llu %u\n", seg, off, idx);
  put_file(path, text);
  unlink(prev);
  CHECK_INT(read_some(w, -1, &st, note, sizeof note), 500);
  CHECK_INT(st.cursor_errors, 0);
  CHECK_INT(st.samples_before_open, 500);
  mw_wal_close(w);
  src_free(&src);
  rm_rf(dir);
}

/* A child appends in a loop and reports through a pipe how many samples its
 * appends have acknowledged; it is SIGKILLed at a random moment. Every
 * acknowledged sample must be in the WAL after the reopen, in order. */
static void test_sigkill(void) {
  char err[256], *dir = tmpdir();
  srand((unsigned)time(NULL) ^ (unsigned)getpid());
  uint64_t acked_total = 0, repairs = 0, unacked = 0;
  mw_wal_opts_t o = {.segment_size = 64 << 10};
  for (int round = 0; round < 12; round++) {
    int fds[2];
    CHECK_INT(pipe(fds), 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      mw_wal_t *cw;
      if (mw_wal_open(dir, &o, &cw, err, sizeof err) != 0) _exit(2);
      src_t src;
      src_init(&src, 300, "");
      mw_batch_t *b = mw_batch_new(src.s);
      uint64_t seq = acked_total;
      for (unsigned it = 0;; it++) {
        mw_batch_reset(b, src.s);
        int n = 1 + (int)((it * 7919u + (unsigned)round * 31u) % 600);
        for (int k = 0; k < n; k++)
          mw_batch_add(b, src.refs[(seq + (uint64_t)k) % 300], (int64_t)(seq + (uint64_t)k),
                       (double)(seq + (uint64_t)k));
        if (mw_wal_append_batch(cw, b, err, sizeof err) != 0) _exit(3);
        seq += (uint64_t)n;
        if (write(fds[1], &seq, sizeof seq) != sizeof seq) _exit(4);
      }
    }
    close(fds[1]);
    usleep(2000 + (useconds_t)(rand() % 40000));
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status));
    uint64_t v, acked = acked_total;
    while (read(fds[0], &v, sizeof v) == sizeof v)
      acked = v;
    close(fds[0]);
    CHECK(acked >= acked_total);
    /* Reopen (repairing a torn tail) and read everything from the start. */
    mw_wal_t *w;
    CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), 0);
    mw_wal_stats_t st;
    mw_wal_stats(w, &st);
    repairs += st.corruptions;
    mw_wal_reader_t *r;
    char name[32];
    snprintf(name, sizeof name, "check%d", round);
    CHECK_INT(mw_wal_reader_open(w, name, NULL, 0, &r, err, sizeof err), 0);
    got_t g = {0};
    CHECK_INT(drain(r, 5000, 0, &g), 0);
    /* Values 0, 1, 2, ... in order, at least up to the acknowledged count,
     * each with its series (i = value % 300) and timestamp. */
    CHECK(g.n >= acked);
    /* Chunks group samples per series: put them back in append order. */
    sort_by_ts(&g);
    for (size_t i = 0; i < g.n; i++) {
      uint64_t want = (uint64_t)i;
      if (i >= acked) break; /* past the acknowledged: a whole unacknowledged batch is fine */
      if (g.v[i] != bits((double)want) || g.ts[i] != (int64_t)want ||
          g.series[i] != (int)(want % 300)) {
        MW_FAIL("round %d: sample %zu: got ts %lld", round, i, (long long)g.ts[i]);
      }
    }
    /* The next round continues after everything that is there. */
    unacked += g.n - acked;
    acked_total = g.n;
    for (size_t i = acked; i < g.n; i++)
      CHECK(g.v[i] == bits((double)i));
    got_free(&g);
    mw_wal_reader_close(r);
    mw_wal_close(w);
  }
  CHECK(acked_total > 0);
  printf("sigkill: 12 kills, %llu samples acknowledged and found, %llu more found "
         "(appended, not yet acknowledged), %llu torn tails repaired\n",
         (unsigned long long)acked_total - unacked, (unsigned long long)unacked,
         (unsigned long long)repairs);
  rm_rf(dir);
}

/* A torn last record (the file cut short) and a flipped byte: repaired at
 * open, logged, counted; the good records stay readable; appends go on. */
static void test_torn_and_corrupt(void) {
  char err[256], *dir = tmpdir(), path[512];
  mw_wal_t *w;
  mw_wal_opts_t o = {.segment_size = 1 << 20};
  CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src, 20, "");
  for (int k = 0; k < 5; k++)
    CHECK_INT(append(w, &src, 0, 20, 1000 + k, k * 100), 0);
  mw_wal_close(w);
  last_segment(dir, path, sizeof path);
  off_t size = file_size(path);
  CHECK_INT(truncate(path, size - 3), 0);
  CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), 0);
  mw_wal_stats_t st;
  mw_wal_stats(w, &st);
  CHECK_INT(st.corruptions, 1);
  CHECK(st.corrupt_bytes > 0);
  CHECK(strstr(mw_wal_repair_log(w), "torn or corrupt") != NULL);
  CHECK_INT(st.replayed_samples, 80);
  CHECK_INT(append(w, &src, 0, 20, 2000, 7), 0);
  got_t g;
  CHECK_INT(read_all(w, 1000, &g), 0);
  CHECK_INT(g.n, 100);
  CHECK_INT(g.ts[99], 2000);
  got_free(&g);
  mw_wal_close(w);
  /* Opening again finds nothing more to repair. */
  CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), 0);
  mw_wal_stats(w, &st);
  CHECK_INT(st.corruptions, 0);
  mw_wal_close(w);

  /* A flipped byte in the middle of an older segment: its tail is skipped,
   * the next segments are read. */
  char *dir2 = tmpdir();
  mw_wal_opts_t small = {.segment_size = 2048};
  CHECK_INT(mw_wal_open(dir2, &small, &w, err, sizeof err), 0);
  for (int k = 0; k < 30; k++)
    CHECK_INT(append(w, &src, 0, 20, 1000 + k, k * 100), 0);
  mw_wal_close(w);
  snprintf(path, sizeof path, "%s/wal/00000002", dir2);
  size = file_size(path);
  CHECK(size > 600);
  int fd = open(path, O_RDWR);
  uint8_t byte;
  CHECK_INT(pread(fd, &byte, 1, 500), 1);
  byte ^= 0x40;
  CHECK_INT(pwrite(fd, &byte, 1, 500), 1);
  close(fd);
  CHECK_INT(mw_wal_open(dir2, &small, &w, err, sizeof err), 0);
  mw_wal_stats(w, &st);
  CHECK_INT(st.corruptions, 1);
  if (!(st.replayed_samples < 600 && st.replayed_samples >= 400))
    MW_FAIL("replayed %llu", (unsigned long long)st.replayed_samples);
  CHECK(file_size(path) < size);
  CHECK_INT(read_all(w, 1000, &g), 0);
  CHECK_INT(g.n, st.replayed_samples);
  CHECK_INT(g.ts[g.n - 1], 1029); /* the last scrape is there */
  got_free(&g);
  mw_wal_close(w);

  /* Garbage segments, an empty one, a bad cursor file: open, never crash. */
  char *dir3 = tmpdir();
  snprintf(path, sizeof path, "%s/wal", dir3);
  mkdir(path, 0750);
  snprintf(path, sizeof path, "%s/wal/00000001", dir3);
  FILE *f = fopen(path, "w");
  fputs("this is not a WAL segment at all", f);
  fclose(f);
  snprintf(path, sizeof path, "%s/wal/00000002", dir3);
  fclose(fopen(path, "w"));
  snprintf(path, sizeof path, "%s/cursor.ep", dir3);
  f = fopen(path, "w");
  fputs("mwcursor 1 junk", f);
  fclose(f);
  CHECK_INT(mw_wal_open(dir3, NULL, &w, err, sizeof err), 0);
  mw_wal_stats(w, &st);
  CHECK_INT(st.corruptions, 1); /* the empty file is a segment created just before a crash */
  CHECK_INT(append(w, &src, 0, 5, 1, 1), 0);
  CHECK_INT(read_all(w, 1000, &g), 0);
  CHECK_INT(g.n, 5);
  got_free(&g);
  mw_wal_close(w);
  src_free(&src);
  rm_rf(dir);
  rm_rf(dir2);
  rm_rf(dir3);
}

/* Writes dir/wal/00000001: the magic and one series record holding
 * payload[0..n) (the header and CRC filled in). */
static void write_series_segment(const char *dir, const uint8_t *payload, uint32_t n) {
  char path[512];
  snprintf(path, sizeof path, "%s/wal", dir);
  mkdir(path, 0750);
  snprintf(path, sizeof path, "%s/wal/00000001", dir);
  uint8_t h[9] = {1, (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24)};
  uint32_t crc = mw_crc32c(mw_crc32c(0, h, 5), payload, n);
  for (int k = 0; k < 4; k++)
    h[5 + k] = (uint8_t)(crc >> (8 * k));
  FILE *f = fopen(path, "w");
  fwrite("MWWAL001", 1, 8, f);
  fwrite(h, 1, 9, f);
  fwrite(payload, 1, n, f);
  fclose(f);
}

/* A series record cut as corrupt leaves nothing learned behind: here its
 * first entry is good and its second is not. Before, the first entry's
 * series stayed known with its ref, the next append used that ref
 * without writing the series again, and after a restart its samples had
 * no series (dropped). A ref of 2^64 - 1 is corrupt too (the next ref
 * wrapped to 0, which replay refuses). Found by fuzz_wal. */
static void test_corrupt_series_record_learns_nothing(void) {
  char err[256];
  src_t src;
  src_init(&src, 1, ""); /* __name__="m0", i="0" */
  const char lab[] = "__name__\xffm0\xffi\xff"
                     "0\xff";
  uint8_t rec[64] = {2, 0, 0, 0, 1, sizeof lab - 1}, max_ref[64] = {1, 0, 0, 0};
  memcpy(rec + 6, lab, sizeof lab - 1);
  size_t n = 6 + sizeof lab - 1;
  rec[n++] = 2; /* second entry: ref 2, labels of length 0 */
  rec[n++] = 0;
  size_t m = 4;
  for (int k = 0; k < 9; k++)
    max_ref[m++] = 0xff;
  max_ref[m++] = 1;
  max_ref[m++] = sizeof lab - 1;
  memcpy(max_ref + m, lab, sizeof lab - 1);
  m += sizeof lab - 1;
  for (int c = 0; c < 2; c++) {
    char *dir = tmpdir();
    write_series_segment(dir, c ? max_ref : rec, (uint32_t)(c ? m : n));
    mw_wal_t *w;
    mw_wal_stats_t st;
    CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
    mw_wal_stats(w, &st);
    CHECK_INT(st.corruptions, 1);
    CHECK_INT(st.replayed_series, 0);
    CHECK_INT(append(w, &src, 0, 1, 1000, 5), 0);
    mw_wal_close(w);
    CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
    mw_wal_stats(w, &st);
    CHECK_INT(st.corruptions, 0);
    got_t g;
    CHECK_INT(read_all(w, 1000, &g), 0);
    CHECK_INT(g.n, 1);
    CHECK_INT(g.ts[0], 1000);
    got_free(&g);
    mw_wal_close(w);
    rm_rf(dir);
  }
  src_free(&src);
}

static uint64_t disk_bytes(const char *dir) {
  char wal[256];
  snprintf(wal, sizeof wal, "%s/wal", dir);
  uint64_t total = 0;
  DIR *d = opendir(wal);
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char p[512];
    snprintf(p, sizeof p, "%s/%s", wal, e->d_name);
    struct stat sb;
    if (stat(p, &sb) != 0) continue;
    if (S_ISDIR(sb.st_mode)) {
      char q[600];
      snprintf(q, sizeof q, "%s/00000000", p);
      total += (uint64_t)file_size(q);
    } else {
      total += (uint64_t)sb.st_size;
    }
  }
  closedir(d);
  return total;
}

/* Truncation: sent data older than min_keepalive goes, series still in use
 * survive in the checkpoint (also across a restart), old series are
 * forgotten, disk use stays bounded. */
static void test_truncate(void) {
  char err[256], *dir = tmpdir();
  mw_wal_opts_t o = {.segment_size = 8192};
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src, 400, "");
  mw_wal_reader_t *r;
  CHECK_INT(mw_wal_reader_open(w, "ep", NULL, 0, &r, err, sizeof err), 0);
  /* Series 0..99 once, then series 100..149 forever. */
  CHECK_INT(append(w, &src, 0, 100, 1000, 0), 0);
  uint64_t max_bytes = 0;
  int64_t now = 0;
  got_t g = {0};
  for (int k = 1; k <= 400; k++) {
    now = 1000 + k * 1000;
    CHECK_INT(append(w, &src, 100, 50, now, k), 0);
    CHECK_INT(drain(r, 500, 1, &g), 0);
    if (k % 20 == 0) {
      CHECK_INT(mw_wal_truncate(w, now, 30000, 3600000, err, sizeof err), 0);
      uint64_t b = disk_bytes(dir);
      if (k > 100 && b > max_bytes) max_bytes = b;
    }
  }
  CHECK_INT(g.n, 100 + 400 * 50);
  mw_wal_stats_t st;
  mw_wal_stats(w, &st);
  CHECK(st.segments_removed > 10);
  CHECK(st.checkpoints > 5);
  CHECK_INT(st.series_removed, 100);
  CHECK_INT(st.active_series, 50);
  CHECK_INT(st.samples_dropped, 0);
  CHECK(max_bytes < 100000); /* about 30 s of data plus one segment */
  CHECK_INT(st.bytes, disk_bytes(dir));
  mw_wal_reader_close(r);
  mw_wal_close(w);
  /* After a restart, series whose records were in removed segments are
   * known from the checkpoint. */
  CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), 0);
  mw_wal_stats(w, &st);
  CHECK_INT(st.active_series, 50);
  CHECK_INT(st.corruptions, 0);
  CHECK_INT(append(w, &src, 100, 50, now + 1000, 7), 0);
  mw_wal_stats(w, &st);
  CHECK_INT(st.series_created, 0); /* nothing new */
  CHECK_INT(mw_wal_reader_open(w, "ep", NULL, 0, &r, err, sizeof err), 0);
  got_t g2 = {0};
  CHECK_INT(drain(r, 500, 1, &g2), 0);
  CHECK_INT(g2.n, 50);
  for (size_t i = 0; i < g2.n; i++)
    CHECK_INT(g2.series[i], 100 + (int)i);
  /* A series forgotten by truncation comes back with a new record. */
  CHECK_INT(append(w, &src, 0, 1, now + 2000, 1), 0);
  mw_wal_stats(w, &st);
  CHECK_INT(st.series_created, 1);
  got_free(&g2);
  CHECK_INT(drain(r, 500, 1, &g2), 0);
  CHECK_INT(g2.n, 1);
  CHECK_INT(g2.series[0], 0);
  got_free(&g);
  got_free(&g2);
  mw_wal_reader_close(r);
  mw_wal_close(w);
  src_free(&src);
  rm_rf(dir);
}

/* max_keepalive: a reader that never commits loses data older than it, and
 * the loss is counted; a reader that is not behind loses nothing. */
static void test_max_keepalive(void) {
  char err[256], *dir = tmpdir();
  mw_wal_opts_t o = {.segment_size = 4096};
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src, 30, "");
  mw_wal_reader_t *stuck, *fine;
  CHECK_INT(mw_wal_reader_open(w, "stuck", NULL, 0, &stuck, err, sizeof err), 0);
  CHECK_INT(mw_wal_reader_open(w, "fine", NULL, 0, &fine, err, sizeof err), 0);
  got_t g = {0};
  for (int k = 0; k < 100; k++) {
    CHECK_INT(append(w, &src, 0, 30, (int64_t)k * 60000, k), 0);
    CHECK_INT(drain(fine, 1000, 1, &g), 0);
  }
  CHECK_INT(g.n, 3000);
  /* stuck reads one chunk and never commits it. */
  const uint8_t *buf;
  size_t len;
  mw_wal_chunk_t c;
  CHECK_INT(mw_wal_reader_next(stuck, 10, &buf, &len, &c, err, sizeof err), 1);
  /* Keep an hour (60 scrapes): min_keepalive alone cannot remove what stuck
   * has not committed; max_keepalive does. */
  int64_t now = 99 * 60000;
  CHECK_INT(mw_wal_truncate(w, now, 60000, 100 * 60000, err, sizeof err), 0);
  mw_wal_stats_t st;
  mw_wal_stats(w, &st);
  CHECK_INT(st.segments_removed, 0);
  CHECK_INT(mw_wal_truncate(w, now, 60000, 3600000, err, sizeof err), 0);
  mw_wal_stats(w, &st);
  CHECK(st.segments_removed > 0);
  mw_wal_reader_stats_t rs, fs;
  mw_wal_reader_stats(stuck, &rs);
  mw_wal_reader_stats(fine, &fs);
  CHECK_INT(fs.samples_dropped, 0);
  CHECK(rs.samples_dropped > 0);
  CHECK_INT(st.samples_dropped, rs.samples_dropped);
  /* stuck now reads what is left: exactly what was not dropped, all of it
   * newer than now - max_keepalive. */
  got_t s = {0};
  mw_wal_reader_rewind(stuck);
  CHECK_INT(drain(stuck, 1000, 1, &s), 0);
  CHECK_INT(s.n + rs.samples_dropped, 3000);
  CHECK(s.ts[0] >= now - 3600000 - 10 * 60000);
  CHECK_INT(s.ts[s.n - 1], now);
  /* The cursor was saved: a restart does not bring dropped data back. */
  mw_wal_reader_close(stuck);
  mw_wal_reader_close(fine);
  mw_wal_close(w);
  CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), 0);
  CHECK_INT(append(w, &src, 0, 1, now + 1, 1), 0);
  CHECK_INT(mw_wal_reader_open(w, "stuck", NULL, 0, &stuck, err, sizeof err), 0);
  got_t s2 = {0};
  CHECK_INT(drain(stuck, 1000, 1, &s2), 0);
  CHECK_INT(s2.n, 1);
  got_free(&g);
  got_free(&s);
  got_free(&s2);
  mw_wal_reader_close(stuck);
  mw_wal_close(w);
  src_free(&src);
  rm_rf(dir);
}

/* External labels through a reader; a WAL closed before its readers. */
static void test_external_labels(void) {
  char err[256], *dir = tmpdir();
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src, 3, "");
  CHECK_INT(append(w, &src, 0, 3, 1, 0), 0);
  mw_wal_reader_t *r;
  const char ext[] = "cluster\xff"
                     "c1\xffi\xff"
                     "ignored\xff";
  CHECK_INT(mw_wal_reader_open(w, "ep", (const uint8_t *)ext, sizeof ext - 1, &r, err, sizeof err),
            0);
  got_t g = {0};
  CHECK_INT(drain(r, 10, 0, &g), 0);
  CHECK_INT(g.n, 3);
  CHECK_STR(g.last_labels, "__name__=m2,cluster=c1,i=2,");
  got_free(&g);
  mw_wal_close(w);
  const uint8_t *buf;
  size_t len;
  CHECK_INT(mw_wal_reader_next(r, 10, &buf, &len, NULL, err, sizeof err), -1);
  mw_wal_reader_close(r); /* frees the WAL too */
  src_free(&src);
  rm_rf(dir);
}

static mw_relabel_str_t rstr(const char *s) {
  return (mw_relabel_str_t){.ptr = s, .len = s ? strlen(s) : 0};
}

/* write_relabel_config: a reader relabels each series once, after adding
 * the external labels; dropped series' samples are never sent. */
static void test_write_relabel(void) {
  char err[256], *dir = tmpdir();
  mw_wal_opts_t o = {.segment_size = 4096};
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src, 6, "");
  /* drop i=1,2; region from the external label cluster; drop external env */
  mw_relabel_str_t i_src[] = {rstr("i")}, c_src[] = {rstr("cluster")};
  mw_relabel_rule_t rules[3] = {
      {.source_labels = i_src, .n_source_labels = 1, .regex = rstr("[12]"), .action = rstr("drop")},
      {.source_labels = c_src,
       .n_source_labels = 1,
       .target_label = rstr("region"),
       .replacement = rstr("eu-$1")},
      {.regex = rstr("env"), .action = rstr("labeldrop")},
  };
  mw_relabel_program_t *p, *keep;
  CHECK_INT(mw_relabel_compile(rules, 3, &p, err, sizeof err), 0);
  mw_relabel_str_t n_src[] = {rstr("__name__")};
  mw_relabel_rule_t keep_rule = {
      .source_labels = n_src, .n_source_labels = 1, .regex = rstr("m0"), .action = rstr("keep")};
  CHECK_INT(mw_relabel_compile(&keep_rule, 1, &keep, err, sizeof err), 0);
  const char ext[] = "cluster\xff"
                     "c1\xff"
                     "env\xff"
                     "prod\xffi\xff"
                     "ignored\xff";
  mw_wal_reader_t *r, *r2;
  CHECK_INT(mw_wal_reader_open(w, "ep", (const uint8_t *)ext, sizeof ext - 1, &r, err, sizeof err),
            0);
  CHECK_INT(mw_wal_reader_open(w, "ep2", NULL, 0, &r2, err, sizeof err), 0);
  CHECK_INT(mw_wal_reader_set_relabel(r, p, err, sizeof err), 0);
  CHECK_INT(mw_wal_reader_set_relabel(r2, keep, err, sizeof err), 0);
  got_t g = {0}, g2 = {0};
  for (int k = 0; k < 3; k++) {
    CHECK_INT(append(w, &src, 0, 6, 1000 + k, k), 0);
    CHECK_INT(drain(r, 4, 1, &g), 0);
    CHECK_INT(drain(r2, 100, 1, &g2), 0);
  }
  CHECK_INT(g.n, 3 * 4);
  for (size_t i = 0; i < g.n; i++)
    CHECK(g.series[i] != 1 && g.series[i] != 2);
  CHECK_STR(g.last_labels, "__name__=m2,cluster=c1,i=5,region=eu-c1,");
  CHECK_INT(g2.n, 3 * 2);
  for (size_t i = 0; i < g2.n; i++)
    CHECK(g2.series[i] == 0 || g2.series[i] == 3);
  CHECK_STR(g2.last_labels, "__name__=m0,i=3,");
  mw_wal_reader_stats_t rs;
  mw_wal_reader_stats(r, &rs);
  CHECK_INT(rs.samples_relabel_dropped, 3 * 2);
  CHECK_INT(rs.samples_read, 3 * 4);
  CHECK_INT(rs.samples_committed, 3 * 4);
  mw_wal_reader_stats(r2, &rs);
  CHECK_INT(rs.samples_relabel_dropped, 3 * 4);
  /* Truncation forgets series; they come back with new refs, relabeled again. */
  CHECK_INT(mw_wal_truncate(w, 1000000, 0, 0, err, sizeof err), 0);
  mw_wal_stats_t st;
  mw_wal_stats(w, &st);
  CHECK_INT(st.series_removed, 6);
  got_free(&g);
  CHECK_INT(append(w, &src, 0, 6, 2000, 0), 0);
  CHECK_INT(drain(r, 100, 1, &g), 0);
  CHECK_INT(g.n, 4);
  CHECK_STR(g.last_labels, "__name__=m2,cluster=c1,i=5,region=eu-c1,");
  /* Another program replaces the cached results; none restores the plain
   * labels with every external label. */
  CHECK_INT(mw_wal_reader_set_relabel(r, keep, err, sizeof err), 0);
  got_free(&g);
  CHECK_INT(append(w, &src, 0, 6, 3000, 0), 0);
  CHECK_INT(drain(r, 100, 1, &g), 0);
  CHECK_INT(g.n, 2);
  CHECK_STR(g.last_labels, "__name__=m0,cluster=c1,env=prod,i=3,");
  CHECK_INT(mw_wal_reader_set_relabel(r, NULL, err, sizeof err), 0);
  got_free(&g);
  CHECK_INT(append(w, &src, 0, 6, 4000, 0), 0);
  CHECK_INT(drain(r, 100, 1, &g), 0);
  CHECK_INT(g.n, 6);
  CHECK_STR(g.last_labels, "__name__=m2,cluster=c1,env=prod,i=5,");
  /* A program that drops every series: nothing is sent, the cursor moves. */
  mw_relabel_rule_t none = {
      .source_labels = n_src, .n_source_labels = 1, .regex = rstr("x"), .action = rstr("keep")};
  mw_relabel_program_t *drop_all;
  CHECK_INT(mw_relabel_compile(&none, 1, &drop_all, err, sizeof err), 0);
  CHECK_INT(mw_wal_reader_set_relabel(r, drop_all, err, sizeof err), 0);
  got_free(&g);
  CHECK_INT(append(w, &src, 0, 6, 5000, 0), 0);
  CHECK_INT(drain(r, 100, 1, &g), 0);
  CHECK_INT(g.n, 0);
  mw_wal_reader_stats(r, &rs);
  CHECK_INT(rs.samples_relabel_dropped, 3 * 2 + 2 + 4 + 6);
  mw_wal_reader_stats(r2, &rs);
  CHECK_INT(rs.pending_chunks, 0);
  got_free(&g);
  got_free(&g2);
  mw_wal_reader_close(r);
  mw_wal_reader_close(r2);
  mw_wal_close(w);
  mw_relabel_program_free(p);
  mw_relabel_program_free(keep);
  mw_relabel_program_free(drop_all);
  src_free(&src);
  rm_rf(dir);
}

/* fsync policies: always and interval work; stats count fsyncs. */
static void test_fsync(void) {
  char err[256], *dir = tmpdir();
  mw_wal_opts_t o = {.fsync = MW_WAL_FSYNC_ALWAYS};
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src, 10, "");
  CHECK_INT(append(w, &src, 0, 10, 1, 0), 0);
  CHECK_INT(append(w, &src, 0, 10, 2, 0), 0);
  mw_wal_stats_t st;
  mw_wal_stats(w, &st);
  CHECK(st.fsyncs >= 2);
  mw_wal_close(w);
  o.fsync = MW_WAL_FSYNC_INTERVAL;
  CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), 0);
  CHECK_INT(append(w, &src, 0, 10, 3, 0), 0);
  mw_wal_stats(w, &st);
  uint64_t before = st.fsyncs;
  CHECK_INT(mw_wal_sync(w, err, sizeof err), 0);
  mw_wal_stats(w, &st);
  CHECK_INT(st.fsyncs, before + 1);
  mw_wal_close(w);
  /* interval on the worker thread: a new segment does not fsync the old
   * one on the loop thread but keeps it open for the next sync, which
   * syncs and closes it with (a dup of) the head. */
  o.segment_size = 4096;
  int fds0 = open_fds();
  CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), 0);
  mw_wal_stats(w, &st);
  before = st.fsyncs;
  for (int i = 0; i < 400; i++)
    CHECK_INT(append(w, &src, 0, 10, 10 + i, 0), 0);
  mw_wal_stats(w, &st);
  CHECK_INT(st.fsyncs, before);
  int held = open_fds() - fds0 - 1; /* - the head */
  CHECK(held >= 3);
  CHECK_INT(mw_wal_sync_start(w, err, sizeof err), 0);
  CHECK_INT(mw_wal_sync(w, err, sizeof err), 0); /* waits for it, then the head */
  mw_wal_stats(w, &st);
  CHECK_INT(st.fsyncs, before + (uint64_t)held + 2);
  CHECK_INT(open_fds(), fds0 + 1);
  /* collected by the next start; one running is not doubled */
  CHECK_INT(append(w, &src, 0, 10, 500, 0), 0);
  CHECK_INT(mw_wal_sync_start(w, err, sizeof err), 0);
  CHECK_INT(mw_wal_sync_start(w, err, sizeof err), 0);
  mw_wal_close(w);
  CHECK_INT(open_fds(), fds0);
  o.segment_size = 0;
  o.fsync = 7;
  CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), -1);
  src_free(&src);
  rm_rf(dir);
}

/* Batches from many source tables (scrape targets), a large batch split in
 * records, the memo surviving truncation's series GC. */
static void test_many_sources(void) {
  char err[256], *dir = tmpdir();
  mw_wal_t *w;
  mw_wal_opts_t o = {.segment_size = 1 << 20};
  CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), 0);
  src_t src[5];
  for (int t = 0; t < 5; t++) {
    char extra[32];
    snprintf(extra, sizeof extra, "target\xff%d\xff", t);
    src_init(&src[t], 1000, extra);
  }
  for (int k = 0; k < 3; k++)
    for (int t = 0; t < 5; t++)
      CHECK_INT(append(w, &src[t], 0, 1000, 1000 * (k + 1), t * 10000 + k), 0);
  mw_wal_stats_t st;
  mw_wal_stats(w, &st);
  CHECK_INT(st.active_series, 5000);
  CHECK_INT(st.samples_appended, 15000);
  got_t g;
  CHECK_INT(read_all(w, 2000, &g), 0);
  CHECK_INT(g.n, 15000);
  got_free(&g);
  mw_wal_close(w);
  for (int t = 0; t < 5; t++)
    src_free(&src[t]);
  rm_rf(dir);
}

/* More source tables than the WAL keeps memos for (4,096: the least recently
 * used is recycled), some freed and made again between appends (a new table
 * may get a freed one's address): every sample is read back, and under ASan
 * no memo uses a freed table's record. */
static void test_many_memos(void) {
  enum { N = 4200, FREED = 300 };
  char err[256], *dir = tmpdir();
  mw_wal_t *w;
  mw_wal_opts_t o = {.segment_size = 1 << 20};
  CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), 0);
  src_t *src = calloc(N, sizeof *src);
  char extra[32];
  for (int t = 0; t < N; t++) {
    snprintf(extra, sizeof extra, "target\xff%d\xff", t);
    src_init(&src[t], 2, extra);
  }
  size_t appended = 0;
  for (int t = 0; t < N; t++, appended += 2)
    CHECK_INT(append(w, &src[t], 0, 2, 1000, t), 0);
  for (int t = 0; t < FREED; t++) {
    src_free(&src[t]);
    snprintf(extra, sizeof extra, "target\xff%d\xff", t);
    src_init(&src[t], 2, extra);
  }
  for (int t = 0; t < N; t++, appended += 2)
    CHECK_INT(append(w, &src[t], 0, 2, 2000, t), 0);
  mw_wal_stats_t st;
  mw_wal_stats(w, &st);
  CHECK_INT(st.active_series, 2 * N);
  got_t g;
  CHECK_INT(read_all(w, 2000, &g), 0);
  CHECK_INT(g.n, appended);
  got_free(&g);
  mw_wal_close(w);
  for (int t = 0; t < N; t++)
    src_free(&src[t]);
  free(src);
  rm_rf(dir);
}

/* --- exemplars -------------------------------------------------------- */

/* Appends samples of series 0..count-1 of src at ts (values v0+k), with an
 * exemplar {trace_id="t<k>"} value k+0.5 at ex_ts on every even one. */
static int append_ex(mw_wal_t *w, src_t *src, int count, int64_t ts, double v0, int64_t ex_ts) {
  char err[256];
  mw_batch_t *b = mw_batch_new(src->s);
  for (int k = 0; k < count; k++) {
    mw_batch_add(b, src->refs[k % src->n], ts, v0 + k);
    if (k % 2) continue;
    char lab[64];
    int n = snprintf(lab, sizeof lab, "trace_id\xfft%d\xff", k);
    mw_batch_add_exemplar(b, (size_t)k, (const uint8_t *)lab, (size_t)n, ex_ts, k + 0.5);
  }
  int rc = mw_wal_append_batch(w, b, err, sizeof err);
  if (rc != 0) fprintf(stderr, "append: %s\n", err);
  mw_batch_free(b);
  return rc;
}

/* What a reader sent: samples and exemplars ("i=<series>,<name>=<value>,...
 * v=<value> ts=<ts>", in request order). */
typedef struct {
  size_t samples, nex, chunks, chunk_ex;
  size_t max_request; /* the most samples + exemplars in one request */
  char ex[256][96];
} exgot_t;

static int exgot_request(exgot_t *g, const uint8_t *buf, size_t len) {
  char err[256];
  Prometheus__WriteRequest *req;
  if (mw_rwenc_decode(buf, len, &req, err, sizeof err) != 0) return -1;
  if (mw_rwenc_check(req, err, sizeof err) != 0) {
    fprintf(stderr, "check: %s\n", err);
    mw_rwenc_decode_free(req);
    return -1;
  }
  for (size_t i = 0; i < req->n_timeseries; i++) {
    const Prometheus__TimeSeries *t = req->timeseries[i];
    const char *idx = "?";
    for (size_t j = 0; j < t->n_labels; j++)
      if (pb_is(t->labels[j]->name, "i")) idx = pb_str(t->labels[j]->value);
    g->samples += t->n_samples;
    for (size_t j = 0; j < t->n_exemplars && g->nex < 256; j++) {
      const Prometheus__Exemplar *e = t->exemplars[j];
      size_t o = (size_t)snprintf(g->ex[g->nex], sizeof g->ex[0], "i=%s,", idx);
      for (size_t k = 0; k < e->n_labels; k++)
        o += (size_t)snprintf(g->ex[g->nex] + o, sizeof g->ex[0] - o, "%.*s=%.*s,",
                              (int)e->labels[k]->name.len, (const char *)e->labels[k]->name.data,
                              (int)e->labels[k]->value.len, (const char *)e->labels[k]->value.data);
      snprintf(g->ex[g->nex] + o, sizeof g->ex[0] - o, "v=%g ts=%lld", e->value,
               (long long)e->timestamp);
      g->nex++;
    }
  }
  mw_rwenc_decode_free(req);
  return 0;
}

static int drain_ex(mw_wal_reader_t *r, uint32_t max, exgot_t *g) {
  char err[256];
  for (;;) {
    const uint8_t *buf;
    size_t len;
    mw_wal_chunk_t c;
    int rc = mw_wal_reader_next(r, max, &buf, &len, &c, err, sizeof err);
    if (rc < 0) {
      fprintf(stderr, "next: %s\n", err);
      return -1;
    }
    if (rc == 0) return 0;
    g->chunks++;
    g->chunk_ex += c.exemplars;
    if (c.samples + c.exemplars > g->max_request) g->max_request = c.samples + c.exemplars;
    if (exgot_request(g, buf, len) != 0) return -1;
    if (mw_wal_reader_commit(r, c.seq, err, sizeof err) != 0) return -1;
  }
}

/* drain_ex with next_shards: every request of each span decoded. */
static int drain_ex_shards(mw_wal_reader_t *r, uint32_t nshards, uint32_t max, exgot_t *g) {
  char err[256];
  const uint8_t *bufs[8];
  size_t lens[8];
  mw_wal_chunk_t ch[8];
  for (;;) {
    int rc = mw_wal_reader_next_shards(r, nshards, max, INT64_MIN, bufs, lens, ch, err, sizeof err);
    if (rc < 0) {
      fprintf(stderr, "next_shards: %s\n", err);
      return -1;
    }
    if (rc == 0) return 0;
    for (uint32_t k = 0; k < nshards; k++) {
      g->chunk_ex += ch[k].exemplars;
      if (!lens[k]) {
        if (ch[k].samples || ch[k].exemplars) return -1; /* an empty request with content */
        continue;
      }
      g->chunks++;
      if (ch[k].samples + ch[k].exemplars > g->max_request)
        g->max_request = ch[k].samples + ch[k].exemplars;
      if (exgot_request(g, bufs[k], lens[k]) != 0) return -1;
    }
    if (mw_wal_reader_commit(r, ch[0].seq, err, sizeof err) != 0) return -1;
  }
}

static int exgot_has(const exgot_t *g, const char *want) {
  for (size_t i = 0; i < g->nex; i++)
    if (strcmp(g->ex[i], want) == 0) return 1;
  return 0;
}

static void test_exemplars(void) {
  char err[256], *dir = tmpdir(), path[512];
  mw_wal_opts_t o = {.segment_size = 1 << 20};
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src, 10, "");
  mw_wal_reader_t *r, *off;
  CHECK_INT(mw_wal_reader_open(w, "ep", NULL, 0, &r, err, sizeof err), 0);
  CHECK_INT(mw_wal_reader_open(w, "off", NULL, 0, &off, err, sizeof err), 0);
  mw_wal_reader_set_exemplars(off, 0);
  for (int k = 0; k < 3; k++)
    CHECK_INT(append_ex(w, &src, 10, 1000 + k, k * 100, 900 + k), 0);
  /* the same exemplars again (a scrape shows the last one until a new one):
   * not written twice */
  CHECK_INT(append_ex(w, &src, 10, 1003, 300, 902), 0);
  mw_wal_stats_t st;
  mw_wal_stats(w, &st);
  CHECK_INT(st.samples_appended, 40);
  CHECK_INT(st.exemplars_appended, 15);
  /* chunks of 4 samples: exemplar records land in the chunk that reaches them */
  exgot_t g = {0};
  CHECK_INT(drain_ex(r, 4, &g), 0);
  CHECK_INT(g.samples, 40);
  CHECK_INT(g.nex, 15);
  CHECK_INT(g.chunk_ex, 15);
  CHECK(exgot_has(&g, "i=0,trace_id=t0,v=0.5 ts=900"));
  CHECK(exgot_has(&g, "i=8,trace_id=t8,v=8.5 ts=902"));
  CHECK(!exgot_has(&g, "i=1,trace_id=t1,v=1.5 ts=900"));
  mw_wal_reader_stats_t rs;
  mw_wal_reader_stats(r, &rs);
  CHECK_INT(rs.exemplars_read, 15);
  CHECK_INT(rs.exemplars_committed, 15);
  CHECK_INT(rs.exemplars_pending, 0);
  /* sharded spans: each exemplar travels in its series' request */
  mw_wal_reader_t *shr;
  CHECK_INT(mw_wal_reader_open(w, "sharded", NULL, 0, &shr, err, sizeof err), 0);
  exgot_t gs = {0};
  CHECK_INT(drain_ex_shards(shr, 3, 4, &gs), 0);
  CHECK_INT(gs.samples, 40);
  CHECK_INT(gs.nex, 15);
  CHECK_INT(gs.chunk_ex, 15);
  CHECK(gs.chunks > 3);
  for (size_t i = 0; i < g.nex; i++)
    CHECK(exgot_has(&gs, g.ex[i]));
  mw_wal_reader_close(shr);
  /* send_exemplars = false: the samples, no exemplar */
  exgot_t g0 = {0};
  CHECK_INT(drain_ex(off, 1000, &g0), 0);
  CHECK_INT(g0.samples, 40);
  CHECK_INT(g0.nex, 0);
  mw_wal_reader_close(r);
  mw_wal_reader_close(off);
  mw_wal_close(w);

  /* Replay after reopen: a new reader gets every exemplar again, the old one
   * nothing (its cursor is past them). */
  CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), 0);
  mw_wal_stats(w, &st);
  CHECK_INT(st.corruptions, 0);
  CHECK_INT(st.replayed_samples, 40);
  CHECK_INT(st.replayed_exemplars, 15);
  CHECK_INT(mw_wal_reader_open(w, "ep", NULL, 0, &r, err, sizeof err), 0);
  exgot_t g1 = {0};
  CHECK_INT(drain_ex(r, 1000, &g1), 0);
  CHECK_INT(g1.samples + g1.nex, 0);
  mw_wal_reader_t *r2;
  CHECK_INT(mw_wal_reader_open(w, "new", NULL, 0, &r2, err, sizeof err), 0);
  exgot_t g2 = {0};
  CHECK_INT(drain_ex(r2, 7, &g2), 0);
  CHECK_INT(g2.samples, 40);
  CHECK_INT(g2.nex, 15);
  CHECK(exgot_has(&g2, "i=4,trace_id=t4,v=4.5 ts=901"));
  /* after the replay the last exemplar per series is still known: no repeat */
  CHECK_INT(append_ex(w, &src, 10, 1004, 400, 902), 0);
  /* write relabeling: the exemplars of a dropped series are dropped, counted */
  mw_relabel_str_t i_src[] = {rstr("i")};
  mw_relabel_rule_t drop = {
      .source_labels = i_src, .n_source_labels = 1, .regex = rstr("[02]"), .action = rstr("drop")};
  mw_relabel_program_t *p;
  CHECK_INT(mw_relabel_compile(&drop, 1, &p, err, sizeof err), 0);
  CHECK_INT(mw_wal_reader_set_relabel(r, p, err, sizeof err), 0);
  CHECK_INT(append_ex(w, &src, 10, 1005, 500, 905), 0);
  exgot_t g3 = {0};
  CHECK_INT(drain_ex(r, 1000, &g3), 0);
  CHECK_INT(g3.samples, 16); /* 20 less 2 series x 2 appends */
  CHECK_INT(g3.nex, 3);      /* t4, t6, t8 of the last append */
  CHECK(exgot_has(&g3, "i=6,trace_id=t6,v=6.5 ts=905"));
  mw_wal_reader_stats(r, &rs);
  CHECK_INT(rs.exemplars_dropped, 2);
  CHECK_INT(rs.exemplars_relabel_dropped, 2);
  CHECK_INT(rs.exemplars_too_old, 0);
  mw_wal_reader_close(r);
  mw_wal_reader_close(r2);
  mw_relabel_program_free(p);
  /* A torn exemplar record (the last record of the last append): cut at
   * open, the samples before it kept. */
  CHECK_INT(append_ex(w, &src, 10, 1006, 600, 906), 0);
  mw_wal_close(w);
  last_segment(dir, path, sizeof path);
  CHECK_INT(truncate(path, file_size(path) - 3), 0);
  CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), 0);
  mw_wal_stats(w, &st);
  CHECK_INT(st.corruptions, 1);
  CHECK_INT(st.replayed_samples, 70);
  CHECK_INT(st.replayed_exemplars, 20);
  CHECK_INT(mw_wal_reader_open(w, "late", NULL, 0, &r, err, sizeof err), 0);
  exgot_t g4 = {0};
  CHECK_INT(drain_ex(r, 1000, &g4), 0);
  CHECK_INT(g4.samples, 70);
  CHECK_INT(g4.nex, 20);
  CHECK(!exgot_has(&g4, "i=0,trace_id=t0,v=0.5 ts=906"));
  mw_wal_reader_close(r);
  mw_wal_close(w);
  CHECK_INT(mw_wal_open(dir, &o, &w, err, sizeof err), 0);
  mw_wal_stats(w, &st);
  CHECK_INT(st.corruptions, 0);
  mw_wal_close(w);
  src_free(&src);
  rm_rf(dir);
}

/* Exemplars count toward max_samples_per_send with the samples, as in a
 * Prometheus batch: a request takes no more samples once it holds max
 * samples and exemplars, so it can only go past max by the exemplars of one
 * WAL record (5 here), which are never split. Without that count a request
 * would hold 8 samples and 5 exemplars. */
static void test_exemplars_count_toward_max(void) {
  char err[256], *dir = tmpdir();
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src, 10, "");
  for (int k = 0; k < 4; k++) /* 10 samples, 5 exemplars each */
    CHECK_INT(append_ex(w, &src, 10, 1000 + k, k * 100, 900 + k), 0);
  mw_wal_reader_t *r, *shr;
  CHECK_INT(mw_wal_reader_open(w, "one", NULL, 0, &r, err, sizeof err), 0);
  CHECK_INT(mw_wal_reader_open(w, "sharded", NULL, 0, &shr, err, sizeof err), 0);
  exgot_t g = {0}, gs = {0};
  CHECK_INT(drain_ex(r, 8, &g), 0);
  CHECK_INT(g.samples, 40);
  CHECK_INT(g.nex, 20);
  CHECK(g.max_request <= 8 - 1 + 5);
  CHECK_INT(drain_ex_shards(shr, 2, 8, &gs), 0);
  CHECK_INT(gs.samples, 40);
  CHECK_INT(gs.nex, 20);
  CHECK(gs.max_request <= 8 - 1 + 5);
  mw_wal_reader_close(r);
  mw_wal_reader_close(shr);
  mw_wal_close(w);
  src_free(&src);
  rm_rf(dir);
}

/* A span whose samples min_ts took out but whose exemplars are left: it is
 * handed out (requests with exemplars only), committed like any other, and
 * the cursor moves past it (not read again by the same or a reopened
 * reader). */
static void test_exemplars_only_span(void) {
  char err[256], *dir = tmpdir();
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src, 10, "");
  mw_wal_reader_t *r;
  CHECK_INT(mw_wal_reader_open(w, "ep", NULL, 0, &r, err, sizeof err), 0);
  CHECK_INT(append_ex(w, &src, 10, 1000, 0, 5000), 0); /* samples at 1 s, exemplars at 5 s */
  const uint8_t *bufs[2];
  size_t lens[2];
  mw_wal_chunk_t ch[2];
  CHECK_INT(mw_wal_reader_next_shards(r, 2, 100, 2000, bufs, lens, ch, err, sizeof err), 1);
  exgot_t g = {0};
  for (int k = 0; k < 2; k++) {
    CHECK_INT(ch[k].samples, 0);
    CHECK((lens[k] > 0) == (ch[k].exemplars > 0));
    if (lens[k]) CHECK_INT(exgot_request(&g, bufs[k], lens[k]), 0);
  }
  CHECK_INT(ch[0].exemplars + ch[1].exemplars, 5);
  CHECK_INT(g.samples, 0);
  CHECK_INT(g.nex, 5);
  CHECK(exgot_has(&g, "i=4,trace_id=t4,v=4.5 ts=5000"));
  CHECK_INT(mw_wal_reader_commit(r, ch[0].seq, err, sizeof err), 0);
  mw_wal_reader_stats_t rs;
  mw_wal_reader_stats(r, &rs);
  CHECK_INT(rs.samples_too_old, 10);
  CHECK_INT(rs.exemplars_committed, 5);
  CHECK_INT(rs.exemplars_pending, 0);
  CHECK_INT(rs.pending_chunks, 0);
  CHECK_INT(mw_wal_reader_next_shards(r, 2, 100, 2000, bufs, lens, ch, err, sizeof err), 0);
  mw_wal_reader_close(r);
  CHECK_INT(mw_wal_reader_open(w, "ep", NULL, 0, &r, err, sizeof err), 0);
  CHECK_INT(mw_wal_reader_next_shards(r, 2, 100, INT64_MIN, bufs, lens, ch, err, sizeof err), 0);
  mw_wal_reader_close(r);
  mw_wal_close(w);
  src_free(&src);
  rm_rf(dir);
}

/* sample_age_limit applies to exemplars as to samples: those older than
 * min_ts are not sent and are counted as dropped. */
static void test_exemplars_too_old(void) {
  char err[256], *dir = tmpdir();
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src, 10, "");
  mw_wal_reader_t *r;
  CHECK_INT(mw_wal_reader_open(w, "ep", NULL, 0, &r, err, sizeof err), 0);
  CHECK_INT(append_ex(w, &src, 10, 6000, 0, 1500), 0); /* samples at 6 s, exemplars at 1.5 s */
  const uint8_t *bufs[2];
  size_t lens[2];
  mw_wal_chunk_t ch[2];
  CHECK_INT(mw_wal_reader_next_shards(r, 2, 100, 2000, bufs, lens, ch, err, sizeof err), 1);
  exgot_t g = {0};
  for (int k = 0; k < 2; k++)
    if (lens[k]) CHECK_INT(exgot_request(&g, bufs[k], lens[k]), 0);
  CHECK_INT(g.samples, 10);
  CHECK_INT(g.nex, 0);
  CHECK_INT(ch[0].exemplars + ch[1].exemplars, 0);
  mw_wal_reader_stats_t rs;
  mw_wal_reader_stats(r, &rs);
  CHECK_INT(rs.exemplars_dropped, 5);
  CHECK_INT(rs.exemplars_too_old, 5); /* by reason, as Prometheus counts them */
  CHECK_INT(rs.exemplars_relabel_dropped, 0);
  CHECK_INT(rs.samples_too_old, 0);
  mw_wal_reader_close(r);
  mw_wal_close(w);
  src_free(&src);
  rm_rf(dir);
}

/* A span read with next_shards: every request decoded into g (in shard
 * order), with checks that each request has at most max samples, that the
 * chunks carry the span's seq and that a series is in one shard only;
 * shard_of[series] gets its shard. 1 span, 0 nothing, -1 failure. */
static uint32_t span_fullest; /* samples of the fullest request of the last span */

static int read_span(mw_wal_reader_t *r, uint32_t nshards, uint32_t max, int64_t min_ts, got_t *g,
                     int *shard_of, int nseries, uint64_t *seq, uint32_t *samples) {
  char err[256];
  const uint8_t *bufs[16];
  size_t lens[16];
  mw_wal_chunk_t ch[16];
  int rc = mw_wal_reader_next_shards(r, nshards, max, min_ts, bufs, lens, ch, err, sizeof err);
  if (rc <= 0) {
    if (rc < 0) fprintf(stderr, "next_shards: %s\n", err);
    return rc;
  }
  *samples = 0;
  span_fullest = 0;
  for (int i = 0; i < nseries; i++)
    shard_of[i] = -1;
  for (uint32_t k = 0; k < nshards; k++) {
    if (ch[k].seq != ch[0].seq || ch[k].samples > max || (ch[k].samples == 0) != (lens[k] == 0))
      return -1;
    *samples += ch[k].samples;
    if (ch[k].samples > span_fullest) span_fullest = ch[k].samples;
    if (!lens[k]) continue;
    size_t before = g->n;
    if (got_add_request(g, bufs[k], lens[k]) != 0) return -1;
    if (g->n - before != ch[k].samples) return -1;
    for (size_t i = before; i < g->n; i++) {
      int s = g->series[i];
      if (s < 0 || s >= nseries || (shard_of[s] >= 0 && shard_of[s] != (int)k)) return -1;
      shard_of[s] = (int)k;
    }
  }
  *seq = ch[0].seq;
  return 1;
}

/* Sharded spans: every sample exactly once across shards and spans, a
 * series in one shard per span and always the same one for a shard count,
 * each series in order whatever the shard counts of successive spans; a
 * span is one chunk for commit, rewind and restart; min_ts and drop_old
 * take out old samples and count them. */
static void test_shards(void) {
  char err[256], *dir = tmpdir();
  enum { NS = 200, SCRAPES = 10 };
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src, NS, "");
  for (int k = 0; k < SCRAPES; k++)
    CHECK_INT(append(w, &src, 0, NS, 1000 * (k + 1), k * 1000), 0);
  mw_wal_reader_t *r;
  CHECK_INT(mw_wal_reader_open(w, "ep", NULL, 0, &r, err, sizeof err), 0);
  const uint8_t *bufs[4];
  size_t lens[4];
  mw_wal_chunk_t ch[4];
  CHECK_INT(mw_wal_reader_next_shards(r, 0, 10, INT64_MIN, bufs, lens, ch, err, sizeof err), -1);
  CHECK_INT(
      mw_wal_reader_next_shards(r, MW_WAL_MAX_SHARDS + 1, 10, INT64_MIN, bufs, lens, ch, err, 256),
      -1);
  /* Spans of 1, 3, 7, 2, 3 ... shards of at most 60 samples each. */
  static const uint32_t counts[] = {1, 3, 7, 2, 3, 7, 5, 3};
  int shard_of[NS], seen_shard[8][NS];
  memset(seen_shard, -1, sizeof seen_shard);
  got_t g = {0};
  size_t spans = 0, at_cut = 0;
  int max_shards_used = 0;
  for (;;) {
    uint32_t n = counts[spans % 8], samples = 0;
    uint64_t seq = 0;
    int rc = read_span(r, n, 60, INT64_MIN, &g, shard_of, NS, &seq, &samples);
    CHECK(rc >= 0);
    if (rc == 0) break;
    spans++;
    CHECK(samples > 0 && samples <= n * 60);
    int used = 0;
    for (int s = 0; s < NS; s++) {
      if (shard_of[s] < 0) continue;
      if (seen_shard[n][s] >= 0) CHECK_INT(shard_of[s], seen_shard[n][s]); /* stable */
      seen_shard[n][s] = shard_of[s];
      used |= 1 << shard_of[s];
    }
    int nused = __builtin_popcount((unsigned)used);
    if (nused > max_shards_used) max_shards_used = nused;
    /* The span ended at a full shard, or at the end of the data. */
    if (g.n < (size_t)NS * SCRAPES) {
      CHECK_INT(span_fullest, 60);
      at_cut++;
    }
    CHECK_INT(mw_wal_reader_commit(r, seq, err, sizeof err), 0);
  }
  CHECK(max_shards_used >= 5); /* 200 series spread over 7 shards */
  CHECK(at_cut > 0);
  /* Every sample exactly once, each series' samples in time order. */
  CHECK_INT(g.n, NS * SCRAPES);
  int64_t last[NS] = {0};
  int count[NS] = {0};
  for (size_t i = 0; i < g.n; i++) {
    int s = g.series[i];
    CHECK(g.ts[i] > last[s]);
    last[s] = g.ts[i];
    count[s]++;
    CHECK(g.v[i] == bits((double)(s + (g.ts[i] / 1000 - 1) * 1000)));
  }
  for (int s = 0; s < NS; s++)
    CHECK_INT(count[s], SCRAPES);
  mw_wal_reader_stats_t rs;
  mw_wal_reader_stats(r, &rs);
  CHECK_INT(rs.samples_committed, NS * SCRAPES);
  CHECK_INT(rs.chunks_committed, spans);
  CHECK_INT(rs.pending_chunks, 0);
  got_free(&g);

  /* Two spans in flight: the cursor waits for the first; a rewind forgets
   * both and the same samples come again; a restart resumes after the last
   * committed span. */
  CHECK_INT(append(w, &src, 0, NS, 20000, 0), 0);
  CHECK_INT(append(w, &src, 0, NS, 21000, 0), 0);
  uint64_t s1, s2;
  uint32_t n1, n2;
  CHECK_INT(read_span(r, 4, 30, INT64_MIN, &g, shard_of, NS, &s1, &n1), 1);
  CHECK_INT(read_span(r, 2, 30, INT64_MIN, &g, shard_of, NS, &s2, &n2), 1);
  CHECK(s2 == s1 + 1);
  CHECK_INT(mw_wal_reader_commit(r, s2, err, sizeof err), 0);
  mw_wal_reader_stats(r, &rs);
  CHECK_INT(rs.samples_committed, NS * SCRAPES);
  CHECK_INT(rs.pending_chunks, 2);
  mw_wal_reader_rewind(r);
  got_free(&g);
  uint64_t s3;
  uint32_t n3;
  CHECK_INT(read_span(r, 3, 50, INT64_MIN, &g, shard_of, NS, &s3, &n3), 1);
  CHECK(g.ts[0] == 20000);
  CHECK_INT(mw_wal_reader_commit(r, s3, err, sizeof err), 0);
  mw_wal_reader_close(r); /* saves the cursor */
  CHECK_INT(mw_wal_reader_open(w, "ep", NULL, 0, &r, err, sizeof err), 0);
  for (;;) {
    uint64_t seq;
    uint32_t n;
    int rc = read_span(r, 5, 50, INT64_MIN, &g, shard_of, NS, &seq, &n);
    CHECK(rc >= 0);
    if (rc == 0) break;
    CHECK_INT(mw_wal_reader_commit(r, seq, err, sizeof err), 0);
  }
  CHECK_INT(g.n, 2 * NS); /* nothing twice, nothing lost */
  sort_by_ts(&g);
  CHECK(g.ts[0] == 20000 && g.ts[NS - 1] == 20000 && g.ts[NS] == 21000);
  got_free(&g);

  /* min_ts: older samples are skipped and counted, the cursor moves on. */
  CHECK_INT(append(w, &src, 0, NS, 30000, 0), 0);
  CHECK_INT(append(w, &src, 0, NS, 31000, 0), 0);
  uint64_t seq;
  uint32_t n;
  mw_wal_reader_stats(r, &rs);
  uint64_t old0 = rs.samples_too_old;
  CHECK_INT(read_span(r, 4, 1000, 31000, &g, shard_of, NS, &seq, &n), 1);
  CHECK_INT(n, NS);
  for (size_t i = 0; i < g.n; i++)
    CHECK(g.ts[i] == 31000);
  CHECK_INT(mw_wal_reader_commit(r, seq, err, sizeof err), 0);
  mw_wal_reader_stats(r, &rs);
  CHECK_INT(rs.samples_too_old - old0, NS);
  got_free(&g);
  CHECK_INT(append(w, &src, 0, NS, 32000, 0), 0);
  CHECK_INT(mw_wal_reader_next_shards(r, 2, 1000, 40000, bufs, lens, ch, err, sizeof err), 0);
  mw_wal_reader_stats(r, &rs);
  CHECK_INT(rs.samples_too_old - old0, 2 * NS);
  CHECK_INT(rs.pending_chunks, 0);

  /* drop_old before a retry: each shard's request loses its old samples.
   * It works from the request's bytes (copied: bufs belong to r). */
  CHECK_INT(append(w, &src, 0, NS, 50000, 0), 0);
  CHECK_INT(append(w, &src, 0, NS / 2, 51000, 0), 0);
  CHECK_INT(mw_wal_reader_next_shards(r, 3, 1000, INT64_MIN, bufs, lens, ch, err, sizeof err), 1);
  uint32_t total = ch[0].samples + ch[1].samples + ch[2].samples;
  CHECK_INT(total, NS + NS / 2);
  uint8_t *body[3];
  size_t blen[3];
  for (uint32_t k = 0; k < 3; k++) {
    blen[k] = lens[k];
    body[k] = malloc(lens[k] ? lens[k] : 1);
    memcpy(body[k], bufs[k], lens[k]);
  }
  uint64_t seq1 = ch[0].seq;
  mw_wal_chunk_t ch1[3];
  memcpy(ch1, ch, sizeof ch1);
  uint32_t dropped = 0, kept = 0;
  uint8_t *kept_body = NULL; /* a request as drop_old left it */
  size_t kept_len = 0;
  for (uint32_t k = 0; k < 3; k++) {
    const uint8_t *b;
    size_t l;
    mw_wal_chunk_t c;
    int d = mw_wal_reader_drop_old(r, seq1, body[k], blen[k], 51000, &b, &l, &c, err, sizeof err);
    CHECK(d >= 0);
    CHECK_INT(c.samples + (uint32_t)d, ch1[k].samples);
    dropped += (uint32_t)d;
    kept += c.samples;
    CHECK((l == 0) == (c.samples == 0));
    if (l) {
      size_t before = g.n;
      CHECK_INT(got_add_request(&g, b, l), 0);
      CHECK_INT(g.n - before, c.samples);
      CHECK(c.min_ts == 51000 && c.max_ts == 51000);
      /* again, on what it made: nothing more to take out, the same bytes */
      uint8_t *again = malloc(l);
      memcpy(again, b, l);
      size_t l2;
      CHECK_INT(mw_wal_reader_drop_old(r, seq1, again, l, 51000, &b, &l2, &c, err, sizeof err), 0);
      CHECK(l2 == l && memcmp(again, b, l) == 0);
      if (!kept_body) {
        kept_body = again;
        kept_len = l;
      } else {
        free(again);
      }
    }
  }
  CHECK_INT(dropped, NS);
  CHECK_INT(kept, NS / 2);
  for (size_t i = 0; i < g.n; i++)
    CHECK(g.ts[i] == 51000 && g.series[i] < NS / 2);
  got_free(&g);
  {
    const uint8_t *b;
    size_t l;
    mw_wal_chunk_t c;
    CHECK_INT(
        mw_wal_reader_drop_old(r, seq1, (const uint8_t *)"junk", 4, 0, &b, &l, &c, err, sizeof err),
        -1);
    CHECK(strstr(err, "snappy") != NULL);
  }
  mw_wal_reader_stats(r, &rs);
  uint64_t committed = rs.samples_committed;
  CHECK_INT(rs.samples_too_old - old0, 3 * NS);
  /* what drop_old took out is no longer pending */
  CHECK_INT(rs.samples_read - rs.samples_committed, NS / 2);
  /* A later span does not stop the earlier one's requests from being
   * filtered (shards send independently). */
  CHECK_INT(append(w, &src, 0, NS, 52000, 0), 0);
  CHECK_INT(mw_wal_reader_next_shards(r, 3, 1000, INT64_MIN, bufs, lens, ch, err, sizeof err), 1);
  uint64_t seq2 = ch[0].seq;
  {
    const uint8_t *b;
    size_t l;
    mw_wal_chunk_t c;
    CHECK_INT(
        mw_wal_reader_drop_old(r, seq1, kept_body, kept_len, 51000, &b, &l, &c, err, sizeof err),
        0);
    CHECK(l == kept_len && c.samples > 0);
  }
  CHECK_INT(mw_wal_reader_commit(r, seq1, err, sizeof err), 0);
  CHECK_INT(mw_wal_reader_commit(r, seq2, err, sizeof err), 0);
  mw_wal_reader_stats(r, &rs);
  CHECK_INT(rs.samples_committed - committed, NS / 2 + NS); /* what was sent */
  CHECK_INT(rs.samples_read - rs.samples_committed, 0);
  /* After a commit or a rewind the request can still be filtered (its bytes
   * are all it needs), and the counts no longer move. */
  CHECK_INT(append(w, &src, 0, NS, 60000, 0), 0);
  CHECK_INT(mw_wal_reader_next_shards(r, 2, 1000, INT64_MIN, bufs, lens, ch, err, sizeof err), 1);
  mw_wal_reader_rewind(r);
  {
    const uint8_t *b;
    size_t l;
    mw_wal_chunk_t c;
    uint64_t too_old = rs.samples_too_old;
    CHECK_INT(mw_wal_reader_drop_old(r, seq1, body[0], blen[0], 51000, &b, &l, &c, err, sizeof err),
              (int)(ch1[0].samples - c.samples));
    mw_wal_reader_stats(r, &rs);
    CHECK_INT(rs.samples_too_old, too_old);
  }
  for (uint32_t k = 0; k < 3; k++)
    free(body[k]);
  free(kept_body);
  mw_wal_reader_close(r);
  mw_wal_close(w);
  src_free(&src);
  rm_rf(dir);
}

/* The WAL's table borrows each new series' label bytes from the batch's
 * source table instead of copying them; it follows them when the source
 * compacts and copies them when the source deletes the series or is freed,
 * and stops following a source when the WAL closes first. Every request read
 * afterwards carries the right labels (in the ASan build a pointer left
 * behind is a use after free). */
static void test_borrowed_labels(void) {
  char err[256], *dir = tmpdir();
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src, 100, "");
  CHECK_INT(append(w, &src, 0, 100, 1000, 0), 0);
  /* half the series go (copied), the source compacts (followed), then the
   * source itself goes (copied) */
  for (int i = 0; i < 60; i++) /* more than half: the source compacts */
    mw_series_del(src.s, src.refs[i]);
  CHECK_INT(mw_series_compact(src.s), 0);
  CHECK_INT(append(w, &src, 60, 40, 2000, 0), 0);
  mw_wal_reader_t *r;
  CHECK_INT(mw_wal_reader_open(w, "ep", NULL, 0, &r, err, sizeof err), 0);
  got_t g = {0};
  CHECK_INT(drain(r, 1000, 1, &g), 0);
  CHECK_INT(g.n, 140);
  src_free(&src);
  src_t again;
  src_init(&again, 100, "");
  CHECK_INT(append(w, &again, 0, 100, 4000, 0), 0); /* the same label sets: known to the WAL */
  CHECK_INT(drain(r, 1000, 1, &g), 0);
  CHECK_INT(g.n, 240);
  int seen[100] = {0};
  for (size_t i = 0; i < g.n; i++) {
    CHECK(g.series[i] >= 0 && g.series[i] < 100);
    if (g.series[i] >= 0 && g.series[i] < 100) seen[g.series[i]]++;
  }
  for (int i = 0; i < 100; i++)
    CHECK_INT(seen[i], i < 60 ? 2 : 3);
  got_free(&g);
  mw_wal_reader_close(r);
  mw_wal_close(w);
  /* The WAL closes first: the source no longer tells it anything. */
  for (int i = 0; i < 100; i++)
    mw_series_del(again.s, again.refs[i]);
  CHECK_INT(mw_series_compact(again.s), 0);
  src_free(&again);
  rm_rf(dir);
}

/* The WAL's series structures per series, at sizes just past a power of
 * two too: the ref map (4-byte slots, the key read from wref) at a load of
 * 1/2 to 3/4 holds at most 8 bytes a series (12-byte slots at 1/4 to 1/2
 * held up to 48), and everything (table entries and index, per-series
 * arrays, memo, borrow record; the label bytes are borrowed) stays under
 * 128. */
static void test_memory_per_series(void) {
  static const int sizes[] = {2049, 70000};
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    char err[256], *dir = tmpdir();
    mw_wal_t *w;
    CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
    src_t src;
    int n = sizes[k];
    src_init(&src, n, "");
    CHECK_INT(append(w, &src, 0, n, 1000, 0), 0);
    size_t map, mem = mw_wal_mem(w, &map);
    printf("WAL of %d series: %.1f bytes/series, ref map %.1f\n", n, (double)mem / n,
           (double)map / n);
    CHECK(map <= (size_t)n * 8 + 1024);
    CHECK(mem <= (size_t)n * 128);
    mw_wal_close(w);
    src_free(&src);
    rm_rf(dir);
  }
}

/* Appends that look no label set up (every series known to the memos)
 * drop the series table's index after the quiet period (0 here); a new
 * source with the same label sets then finds them through an index built
 * again: no new series, the reader gets every sample. */
static void test_index_quiet(void) {
  char err[256], *dir = tmpdir();
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  mw_wal_set_index_quiet(w, 0);
  src_t src;
  src_init(&src, 3000, "");
  CHECK_INT(append(w, &src, 0, 3000, 1000, 0), 0);
  CHECK(mw_series_indexed(mw_wal_series(w)));
  size_t mem = mw_wal_mem(w, NULL);
  CHECK_INT(append(w, &src, 0, 3000, 2000, 0), 0);
  CHECK(!mw_series_indexed(mw_wal_series(w)));
  CHECK(mw_wal_mem(w, NULL) < mem);
  src_t again; /* the target restarted: a new table, the same label sets */
  src_init(&again, 3000, "");
  CHECK_INT(append(w, &again, 0, 3000, 3000, 0), 0);
  CHECK(mw_series_indexed(mw_wal_series(w)));
  mw_wal_stats_t st;
  mw_wal_stats(w, &st);
  CHECK_INT(st.series_created, 3000);
  CHECK_INT(st.active_series, 3000);
  mw_wal_reader_t *r;
  CHECK_INT(mw_wal_reader_open(w, "ep", NULL, 0, &r, err, sizeof err), 0);
  got_t g = {0};
  CHECK_INT(drain(r, 1000, 1, &g), 0);
  CHECK_INT(g.n, 9000);
  for (size_t i = 0; i < g.n; i++)
    CHECK_INT(g.series[i], (int)(i % 3000));
  got_free(&g);
  mw_wal_reader_close(r);
  mw_wal_close(w);
  src_free(&src);
  src_free(&again);
  rm_rf(dir);
}

/* Writes records (type, payload) as segment 1 of dir's WAL. */
static void write_records(const char *dir, const uint8_t *types, const uint8_t *const *payloads,
                          const uint32_t *lens, int n) {
  char path[512];
  snprintf(path, sizeof path, "%s/wal", dir);
  mkdir(path, 0750);
  snprintf(path, sizeof path, "%s/wal/00000001", dir);
  FILE *f = fopen(path, "w");
  fwrite("MWWAL001", 1, 8, f);
  for (int r = 0; r < n; r++) {
    uint32_t len = lens[r];
    uint8_t h[9] = {types[r], (uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                    (uint8_t)(len >> 24)};
    uint32_t crc = mw_crc32c(mw_crc32c(0, h, 5), payloads[r], len);
    for (int k = 0; k < 4; k++)
      h[5 + k] = (uint8_t)(crc >> (8 * k));
    fwrite(h, 1, 9, f);
    fwrite(payloads[r], 1, len, f);
  }
  fclose(f);
}

/* A WAL that recorded one label set under two refs (1 and 5; ref 3 is
 * another series): replay maps both refs to it (the newer one in the main
 * index, the older as an alias), the reader gets every sample with its
 * labels, and new appends of both series write no series record. */
static void test_replay_two_refs_one_series(void) {
  char err[256], *dir = tmpdir();
  const char a[] = "__name__\xffm0\xffi\xff"
                   "0\xff",
             b[] = "__name__\xffm1\xffi\xff"
                   "1\xff";
  uint8_t series[128] = {3, 0, 0, 0}, samples[128] = {3, 0, 0, 0};
  size_t n = 4;
  const uint8_t refs[3] = {1, 5, 3};
  for (int k = 0; k < 3; k++) {
    const char *l = k == 2 ? b : a;
    series[n++] = refs[k];
    series[n++] = (uint8_t)(sizeof a - 1);
    memcpy(series + n, l, sizeof a - 1);
    n += sizeof a - 1;
  }
  size_t m = 4;
  uint64_t base = 1000;
  memcpy(samples + m, &base, 8); /* little endian */
  m += 8;
  const uint8_t deltas[3] = {2, 4, 4}; /* zigzag of +1, +2, +2: refs 1, 3, 5 */
  for (int k = 0; k < 3; k++) {
    samples[m++] = deltas[k];
    samples[m++] = 0; /* ts 1000 */
    double v = k;
    memcpy(samples + m, &v, 8);
    m += 8;
  }
  const uint8_t types[2] = {1, 2};
  const uint8_t *payloads[2] = {series, samples};
  const uint32_t lens[2] = {(uint32_t)n, (uint32_t)m};
  write_records(dir, types, payloads, lens, 2);
  for (int round = 0; round < 2; round++) {
    mw_wal_t *w;
    CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
    mw_wal_stats_t st;
    mw_wal_stats(w, &st);
    CHECK_INT(st.corruptions, 0);
    got_t g;
    CHECK_INT(read_all(w, 1000, &g), 0);
    if (round == 0) {
      CHECK_INT(g.n, 3); /* a request groups a series' samples: A's two, then B's */
      int want[3] = {0, 0, 1};
      for (size_t i = 0; i < g.n && i < 3; i++)
        CHECK_INT(g.series[i], want[i]);
      src_t src; /* a source with both label sets: known, no series record */
      src_init(&src, 2, "");
      CHECK_INT(append(w, &src, 0, 2, 2000, 7), 0);
      mw_wal_stats(w, &st);
      CHECK_INT(st.series_created, 0);
      src_free(&src);
    } else {
      CHECK_INT(g.n, 2);
      for (size_t i = 0; i < g.n && i < 2; i++) {
        CHECK_INT(g.series[i], (int)i);
        CHECK_INT(g.ts[i], 2000);
      }
    }
    got_free(&g);
    mw_wal_close(w);
  }
  rm_rf(dir);
}

/* A damaged WAL with one ref (7) for two label sets: the later one has
 * it (as before the map kept keys in wref), the earlier gets a new ref
 * and a series record at its next append. */
static void test_replay_one_ref_two_series(void) {
  char err[256], *dir = tmpdir();
  const char a[] = "__name__\xffm0\xffi\xff"
                   "0\xff",
             b[] = "__name__\xffm1\xffi\xff"
                   "1\xff";
  uint8_t s1[64] = {1, 0, 0, 0, 7, sizeof a - 1}, s2[64] = {1, 0, 0, 0, 7, sizeof b - 1};
  memcpy(s1 + 6, a, sizeof a - 1);
  memcpy(s2 + 6, b, sizeof b - 1);
  uint8_t samples[64] = {1, 0, 0, 0};
  uint64_t base = 1000;
  memcpy(samples + 4, &base, 8);
  samples[12] = 14; /* zigzag of +7 */
  samples[13] = 0;
  double v = 1;
  memcpy(samples + 14, &v, 8);
  const uint8_t types[3] = {1, 1, 2};
  const uint8_t *payloads[3] = {s1, s2, samples};
  const uint32_t lens[3] = {6 + sizeof a - 1, 6 + sizeof b - 1, 22};
  write_records(dir, types, payloads, lens, 3);
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  got_t g;
  CHECK_INT(read_all(w, 1000, &g), 0);
  CHECK_INT(g.n, 1);
  if (g.n == 1) CHECK_INT(g.series[0], 1);
  got_free(&g);
  src_t src;
  src_init(&src, 2, "");
  CHECK_INT(append(w, &src, 0, 2, 2000, 0), 0);
  mw_wal_stats_t st;
  mw_wal_stats(w, &st);
  CHECK_INT(st.series_created, 1); /* a's new ref */
  mw_wal_close(w);
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  CHECK_INT(read_all(w, 1000, &g), 0);
  CHECK_INT(g.n, 2);
  for (size_t i = 0; i < g.n && i < 2; i++)
    CHECK_INT(g.series[i], (int)i);
  got_free(&g);
  mw_wal_close(w);
  src_free(&src);
  rm_rf(dir);
}

/* Drains reader r in spans of max samples, committing each; the exemplars and samples
 * handed out. 0, -1 on error. */
static int drain_counts(mw_wal_reader_t *r, uint32_t max, size_t *samples, size_t *exemplars) {
  char err[256];
  for (;;) {
    const uint8_t *buf;
    size_t len;
    mw_wal_chunk_t c;
    int rc = mw_wal_reader_next(r, max, &buf, &len, &c, err, sizeof err);
    if (rc < 0) fprintf(stderr, "next: %s\n", err);
    if (rc <= 0) return rc;
    *samples += c.samples;
    *exemplars += c.exemplars;
    if (mw_wal_reader_commit(r, c.seq, err, sizeof err) != 0) return -1;
  }
}

/* Checks a WAL holding exemplars appended by one test below plus the 8 samples and 4
 * exemplars of append_ex after them: replayed whole, read whole. */
static void check_exemplars_kept(mw_wal_t **w, const char *dir, size_t samples, size_t ex) {
  char err[256];
  mw_wal_stats_t st;
  mw_wal_stats(*w, &st);
  CHECK_INT(st.exemplars_appended, ex + 4);
  mw_wal_close(*w);
  CHECK_INT(mw_wal_open(dir, NULL, w, err, sizeof err), 0);
  mw_wal_stats(*w, &st);
  CHECK_INT(st.corruptions, 0);
  CHECK_INT(st.replayed_exemplars, ex + 4);
  CHECK_INT(st.replayed_samples, samples + 8);
  mw_wal_reader_t *r;
  CHECK_INT(mw_wal_reader_open(*w, "ep", NULL, 0, &r, err, sizeof err), 0);
  size_t ns = 0, nx = 0;
  CHECK_INT(drain_counts(r, 200000, &ns, &nx), 0);
  CHECK_INT(ns, samples + 8);
  CHECK_INT(nx, ex + 4);
  mw_wal_reader_close(r);
}

/* Exemplars of one append that take more than the 64 MiB a record log reads back (80
 * exemplars with a 1 MiB label value): all are written, in records the replay and
 * readers accept, and the append after them too (their one record was cut at the next
 * open as corrupt, with what followed it in the segment). */
static void test_exemplars_big_record(void) {
  char err[256], *dir = tmpdir();
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src, 8, "");
  size_t vlen = 1u << 20, llen = 8 + 1 + vlen + 1;
  uint8_t *lab = malloc(llen);
  memcpy(lab, "trace_id\xff", 9);
  memset(lab + 9, 'a', vlen);
  lab[llen - 1] = 0xff;
  mw_batch_t *b = mw_batch_new(src.s);
  for (int k = 0; k < 80; k++) {
    CHECK_INT(mw_batch_add(b, src.refs[k % 8], 1000 + k, k), 0);
    lab[9] = (uint8_t)('A' + k % 26); /* told apart, not a repeat */
    CHECK_INT(mw_batch_add_exemplar(b, (size_t)k, lab, llen, 1000 + k, k), 0);
  }
  CHECK_INT(mw_wal_append_batch(w, b, err, sizeof err), 0);
  mw_batch_free(b);
  free(lab);
  CHECK_INT(append_ex(w, &src, 8, 900000, 0, 900000), 0);
  check_exemplars_kept(&w, dir, 80, 80);
  mw_wal_close(w);
  src_free(&src);
  rm_rf(dir);
}

/* More exemplars in one append than a record's 2^20 items: all are written (those past
 * 2^20 were left out). */
static void test_exemplars_many(void) {
  char err[256], *dir = tmpdir();
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  src_t src;
  src_init(&src, 8, "");
  size_t many = MW_SAMPLES_PER_REC + 10; /* a sample with an exemplar each (empty labels) */
  mw_batch_t *b = mw_batch_new(src.s);
  for (size_t k = 0; k < many; k++) {
    CHECK(mw_batch_add(b, src.refs[k % 8], 2000 + (int64_t)(k / 8), 1) == 0);
    CHECK(mw_batch_add_exemplar(b, k, NULL, 0, 2000 + (int64_t)k, 1) == 0);
  }
  CHECK_INT(mw_wal_append_batch(w, b, err, sizeof err), 0);
  mw_batch_free(b);
  CHECK_INT(append_ex(w, &src, 8, 900000, 0, 900000), 0);
  check_exemplars_kept(&w, dir, many, many);
  mw_wal_close(w);
  src_free(&src);
  rm_rf(dir);
}

int main(void) {
  MW_RUN(test_roundtrip);
  MW_RUN(test_memory_per_series);
  MW_RUN(test_index_quiet);
  MW_RUN(test_replay_two_refs_one_series);
  MW_RUN(test_replay_one_ref_two_series);
  MW_RUN(test_pipeline);
  MW_RUN(test_restart);
  MW_RUN(test_cursor_copies);
  MW_RUN(test_sigkill);
  MW_RUN(test_torn_and_corrupt);
  MW_RUN(test_corrupt_series_record_learns_nothing);
  MW_RUN(test_truncate);
  MW_RUN(test_max_keepalive);
  MW_RUN(test_external_labels);
  MW_RUN(test_write_relabel);
  MW_RUN(test_fsync);
  MW_RUN(test_many_sources);
  MW_RUN(test_many_memos);
  MW_RUN(test_exemplars);
  MW_RUN(test_exemplars_only_span);
  MW_RUN(test_exemplars_count_toward_max);
  MW_RUN(test_borrowed_labels);
  MW_RUN(test_exemplars_too_old);
  MW_RUN(test_shards);
  MW_RUN(test_exemplars_big_record);
  MW_RUN(test_exemplars_many);
  return mw_test_summary();
}
