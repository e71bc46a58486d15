/* bench_mem: heap bytes per active series of the scrape -> WAL -> remote-write path
 * (issue #14's memory target), without the end-to-end bench. TARGETS scrape
 * targets of SERIES series each (targets.lua's lines: 8 labels with the
 * target's instance and job) are parsed by their scrape targets (scrape cache
 * + series table), appended to one WAL (its series table, memos, ref map) and
 * read back by one reader (as remote_write does), SCRAPES times. Prints the
 * heap in use (glibc mallinfo2: small blocks + mmapped ones) per series after
 * each stage of the first scrape and in steady state (the WAL's quiet
 * period for its series index set to 0: steady state as after 30 s), the
 * largest seen between stages, and the parts the modules report themselves.
 *   build/tests/bench_mem [targets [series [scrapes]]]     (default 50 2000 5) */
#include <ftw.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/labels.h"
#include "exposition/parse.h"
#include "exposition/scrapecache.h"
#include "model/batch.h"
#include "model/series.h"
#include "remote/wal_reader.h"
#include "scrape/scrape.h"
#include "storage/metrics_wal.h"
#include "storage/wal.h"

static size_t heap_peak;

static size_t heap(void) {
  struct mallinfo2 m = mallinfo2();
  size_t h = m.uordblks + m.hblkhd;
  if (h > heap_peak) heap_peak = h;
  return h;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(p);
}

/* The body of target t at scrape k: targets.lua's lines. */
static char *body_of(int t, int series, int k, size_t *len) {
  size_t cap = (size_t)series * 128 + 1, n = 0;
  char *b = malloc(cap);
  if (!b) abort();
  for (int i = 1; i <= series; i++)
    n += (size_t)snprintf(b + n, cap - n,
                          "bench_metric_%d{target=\"t%d\",path=\"/api/v1/item/%d\",method=\"GET\","
                          "code=\"200\"} %d\n",
                          i % 50, t, i, (k * 7 + i) % 1000);
  *len = n;
  return b;
}

int main(int argc, char **argv) {
  int targets = argc > 1 ? atoi(argv[1]) : 50, series = argc > 2 ? atoi(argv[2]) : 2000;
  int scrapes = argc > 3 ? atoi(argv[3]) : 5;
  if (targets < 1 || series < 1 || scrapes < 2) {
    fprintf(stderr, "usage: bench_mem [targets [series [scrapes >= 2]]]\n");
    return 2;
  }
  char err[256], dir[256];
  const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(dir, sizeof dir, "%s/mw_bench_mem.XXXXXX", tmp);
  if (!mkdtemp(dir)) return 1;
  double n = (double)targets * series;
  size_t h0 = heap();

  mw_scrape_target_t **ts = calloc((size_t)targets, sizeof *ts);
  mw_scrape_opts_t opts = {.honor_timestamps = 1, .fallback_format = MW_EXPFMT_TEXT};
  for (int t = 0; t < targets; t++) {
    char lab[128];
    int l = snprintf(lab, sizeof lab,
                     "instance\xff"
                     "127.0.0.1:19177\xff"
                     "job\xff"
                     "bench-%d\xff",
                     t);
    if (!(ts[t] = mw_ffi_scrape_target_new(lab, (size_t)l, &opts, err, sizeof err))) {
      fprintf(stderr, "target: %s\n", err);
      return 1;
    }
  }
  mw_wal_t *w;
  if (mw_wal_open(dir, NULL, &w, err, sizeof err) != 0) {
    fprintf(stderr, "open: %s\n", err);
    return 1;
  }
  /* Steady state as after 30 s without a new series: the WAL's series
   * index goes at the first append that looks nothing up. */
  mw_wal_set_index_quiet(w, 0);
  mw_wal_reader_t *r;
  if (mw_wal_reader_open(w, "bench", NULL, 0, &r, err, sizeof err) != 0) {
    fprintf(stderr, "reader: %s\n", err);
    return 1;
  }
  size_t h_base = heap(), h_scrape = 0, h_wal = 0, h_read = 0;
  printf("bench_mem: %d targets x %d series (%.0f), %d scrapes\n", targets, series, n, scrapes);
  for (int k = 0; k < scrapes; k++) {
    int64_t ms = 1700000000000 + (int64_t)k * 15000;
    size_t scrape_heap = 0;
    for (int t = 0; t < targets; t++) {
      size_t len;
      char *body = body_of(t, series, k, &len);
      if (mw_ffi_scrape_parse(ts[t], body, len, "text/plain; version=0.0.4", ms, NULL, err,
                              sizeof err) != 0) {
        fprintf(stderr, "parse: %s\n", err);
        return 1;
      }
      free(body);
      if (k == 0) scrape_heap += mw_ffi_scrape_mem(ts[t]);
      heap();
      if (mw_wal_append_batch(w, mw_ffi_scrape_batch(ts[t]), err, sizeof err) != 0) {
        fprintf(stderr, "append: %s\n", err);
        return 1;
      }
      mw_ffi_scrape_clear(ts[t]);
      heap();
    }
    if (k == 0) h_wal = heap();
    for (;;) {
      const uint8_t *buf;
      size_t blen;
      mw_wal_chunk_t c;
      int rc = mw_wal_reader_next(r, 2000, &buf, &blen, &c, err, sizeof err);
      if (rc < 0) {
        fprintf(stderr, "next: %s\n", err);
        return 1;
      }
      if (rc == 0) break;
      heap();
      mw_wal_reader_commit(r, c.seq, err, sizeof err);
    }
    if (k == 0) {
      h_read = heap();
      h_scrape = scrape_heap;
      printf("  scrape targets (their own count: cache, series, labels): %6.1f B/series\n",
             (double)h_scrape / n);
      printf("  heap after the first scrape + WAL append:                %6.1f B/series\n",
             (double)(h_wal - h_base) / n);
      printf("  heap after the reader read it all:                       %6.1f B/series\n",
             (double)(h_read - h_base) / n);
    }
  }
  size_t h_end = heap();
  size_t label_bytes = 0;
  for (int t = 0; t < targets; t++) {
    size_t lb;
    mw_series_mem(mw_scrapecache_series((mw_scrapecache_t *)mw_ffi_scrape_target_cache(ts[t])),
                  &lb);
    label_bytes += lb;
  }
  printf("  label bytes (one copy, in the scrape series tables):     %6.1f B/series\n",
         (double)label_bytes / n);
  size_t map, wal = mw_wal_mem(w, &map);
  printf("  WAL series structures (its own count), of them ref map:  %6.1f, %.1f B/series\n",
         (double)wal / n, (double)map / n);
  printf("  heap in steady state (scrape %d):                         %6.1f B/series\n", scrapes,
         (double)(h_end - h_base) / n);
  printf("  largest heap seen between steps:                         %6.1f B/series\n",
         (double)(heap_peak - h_base) / n);
  printf("  (process heap before any target: %.1f KiB)\n", (double)(h_base - h0) / 1024);
  mw_wal_reader_close(r);
  mw_wal_close(w);
  for (int t = 0; t < targets; t++)
    mw_ffi_scrape_target_free(ts[t]);
  free(ts);
  nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
  return 0;
}
