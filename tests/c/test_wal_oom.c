/* test_wal_oom.c: the metrics WAL when a series table cannot make a label set's text
 * (model/series.h: mw_series_labels makes it in a buffer it grows with realloc). Linked
 * with -Wl,--wrap=realloc: one buffer's growth fails while `victim` is that buffer.
 * Out of memory must fail the call, never drop a series: before the fix an append
 * counted the series invalid and remembered it so (it stayed invalid when memory came
 * back), and a truncation left it out of the checkpoint (gone after a reopen). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/labels.h"
#include "base/symtab.h"
#include "model/batch.h"
#include "model/series.h"
#include "storage/metrics_wal.h"
#include "storage/wal.h"
#include "test.h"
#include "testdir.h"

void *__real_realloc(void *p, size_t n);
static const void *victim;
static int fails;
void *__wrap_realloc(void *p, size_t n) {
  if (victim && p == victim) {
    fails++;
    return NULL;
  }
  return __real_realloc(p, n);
}

static size_t enc(uint8_t *buf, const char *v) {
  mw_label_t ls[] = {{"__name__", "m", 8, 1}, {"x", v, 1, (uint32_t)strlen(v)}};
  size_t len = 0;
  mw_labels_encode(ls, 2, buf, 4096, &len, NULL, 0);
  return len;
}

static char big[600];

/* A batch of src's series rx and ry at t, appended. */
static int append2(mw_wal_t *w, mw_series_t *src, uint32_t rx, uint32_t ry, int64_t t, char *err) {
  mw_batch_t *b = mw_batch_new(src);
  mw_batch_add(b, rx, t, 1);
  mw_batch_add(b, ry, t, 2);
  int rc = mw_wal_append_batch(w, b, err, 256);
  mw_batch_free(b);
  return rc;
}

/* An append whose new series' text cannot be made fails (out of memory); the next one,
 * with memory back, writes both series. */
static void test_append(void) {
  size_t syms = mw_syms_count();
  char *dir = mw_test_tmpdir("waloom"), err[256];
  mw_wal_t *w;
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  mw_series_t *src = mw_series_new();
  uint8_t buf[4096];
  uint32_t r0, r1;
  size_t l, n0 = enc(buf, "a");
  CHECK_INT(mw_series_add(src, buf, n0, mw_labels_hash(buf, n0), &r0, NULL, NULL, 0), 0);
  memset(big, 'z', sizeof big - 1);
  size_t n1 = enc(buf, big);
  CHECK_INT(mw_series_add(src, buf, n1, mw_labels_hash(buf, n1), &r1, NULL, NULL, 0), 0);
  victim = mw_series_labels(src, r0, &l); /* src's text buffer, too small for r1's */
  fails = 0;
  CHECK_INT(append2(w, src, r0, r1, 1000, err), -1);
  CHECK(fails >= 1 && strstr(err, "out of memory"));
  victim = NULL;
  CHECK_INT(append2(w, src, r0, r1, 2000, err), 0);
  mw_wal_stats_t st;
  mw_wal_stats(w, &st);
  CHECK_INT(st.samples_invalid, 0);
  CHECK_INT(mw_series_len(mw_wal_series(w)), 2);
  mw_wal_close(w);
  mw_series_free(src);
  CHECK_INT(mw_syms_count(), syms); /* the WAL's borrowed and own label sets gave theirs back */
  mw_test_rm_rf(dir);
}

/* A truncation whose checkpoint cannot make a series' text fails and removes nothing;
 * both series are there after a reopen. */
static void test_checkpoint(void) {
  size_t syms = mw_syms_count();
  char *dir = mw_test_tmpdir("waloom"), err[256];
  uint8_t bx[4096], by[4096];
  memset(big, 'z', sizeof big - 1);
  size_t nx = enc(bx, big), ny = enc(by, "a"), l;
  mw_wal_t *w;
  for (int round = 0; round < 2; round++) {
    CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
    mw_series_t *src = mw_series_new();
    uint32_t rx, ry;
    CHECK_INT(mw_series_add(src, bx, nx, mw_labels_hash(bx, nx), &rx, NULL, NULL, 0), 0);
    CHECK_INT(mw_series_add(src, by, ny, mw_labels_hash(by, ny), &ry, NULL, NULL, 0), 0);
    if (round == 1) {
      mw_series_t *tab = mw_wal_series(w); /* replayed: the WAL's own texts */
      uint32_t sy = mw_series_get(tab, by, ny, mw_labels_hash(by, ny));
      CHECK(sy != MW_SERIES_NONE);
      CHECK_INT(mw_wal_truncate(w, 0, 0, 1000000000, err, sizeof err), 0); /* a new segment */
      CHECK_INT(append2(w, src, rx, ry, 2000, err), 0);
      victim = mw_series_labels(tab, sy, &l); /* too small for x's text */
      fails = 0;
      mw_wal_stats_t st;
      CHECK_INT(mw_wal_truncate(w, 1500, 0, 1000000000, err, sizeof err), -1);
      mw_wal_stats(w, &st);
      CHECK(fails >= 1);
      CHECK_INT(st.segments_removed, 0);
      victim = NULL;
    } else {
      CHECK_INT(append2(w, src, rx, ry, 1000, err), 0);
    }
    mw_series_free(src);
    mw_wal_close(w);
  }
  CHECK_INT(mw_wal_open(dir, NULL, &w, err, sizeof err), 0);
  mw_series_t *tab = mw_wal_series(w);
  CHECK(mw_series_get(tab, bx, nx, mw_labels_hash(bx, nx)) != MW_SERIES_NONE);
  CHECK(mw_series_get(tab, by, ny, mw_labels_hash(by, ny)) != MW_SERIES_NONE);
  mw_wal_close(w);
  CHECK_INT(mw_syms_count(), syms); /* replayed, truncated, closed: every symbol back */
  mw_test_rm_rf(dir);
}

int main(void) {
  MW_RUN(test_append);
  MW_RUN(test_checkpoint);
  return mw_test_summary();
}
