/* bench_parse.c: exposition parser throughput, cold (empty scrape cache) and
 * steady state (every line cached). Not part of ctest. Build and run from
 * the repository root:
 *
 *   gcc -O2 -std=c11 -D_GNU_SOURCE -Iruntime -o /tmp/bench_parse tests/bench/bench_parse.c \
 *     runtime/base/labels.c runtime/base/arena.c runtime/model/series.c runtime/model/batch.c \
 *     runtime/exposition/scrapecache.c runtime/exposition/parse.c -lxxhash -lm -lpthread
 *   /tmp/bench_parse [fixture.prom] [series]
 *
 * The body: the families of the node_exporter fixture, each family's HELP and
 * TYPE once, then its samples replicated with a varying `replica` label until
 * about 100k series. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exposition/parse.h"
#include "exposition/scrapecache.h"
#include "model/batch.h"
#include "model/series.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Appends line (len bytes, a sample line) with replica="k" added. */
static size_t emit(char *out, const char *line, size_t len, int k) {
  const char *brace = memchr(line, '{', len);
  const char *space = memchr(line, ' ', len);
  if (brace && (!space || brace < space)) {
    size_t pre = (size_t)(brace - line) + 1;
    memcpy(out, line, pre);
    int n = sprintf(out + pre, "replica=\"%d\",", k);
    memcpy(out + pre + (size_t)n, line + pre, len - pre);
    return len + (size_t)n;
  }
  size_t pre = (size_t)(space - line);
  memcpy(out, line, pre);
  int n = sprintf(out + pre, "{replica=\"%d\"}", k);
  memcpy(out + pre + (size_t)n, line + pre, len - pre);
  return len + (size_t)n;
}

int main(int argc, char **argv) {
  const char *path =
      argc > 1 ? argv[1] : "/work/shared/testdata/exposition/node_exporter-1.5.0.prom";
  long want = argc > 2 ? atol(argv[2]) : 100000;
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return 1;
  }
  static char src[1 << 20];
  size_t slen = fread(src, 1, sizeof src - 1, f);
  fclose(f);
  src[slen] = 0;
  size_t samples = 0;
  for (const char *l = src; *l; l = strchr(l, '\n') + 1) {
    if (*l != '#' && *l != '\n') samples++;
    if (!strchr(l, '\n')) break;
  }
  int reps = (int)((want + (long)samples - 1) / (long)samples);
  size_t cap = slen * (size_t)reps * 2 + 1024, o = 0;
  char *body = malloc(cap);
  /* Walk family blocks: comment lines, then sample lines. */
  const char *p = src, *end = src + slen;
  while (p < end) {
    const char *blk = p;
    while (p < end && *p == '#')
      p = strchr(p, '\n') + 1;
    memcpy(body + o, blk, (size_t)(p - blk));
    o += (size_t)(p - blk);
    const char *s0 = p;
    while (p < end && *p != '#')
      p = strchr(p, '\n') + 1;
    for (int k = 0; k < reps; k++)
      for (const char *l = s0; l < p;) {
        const char *nl = strchr(l, '\n');
        o += emit(body + o, l, (size_t)(nl - l) + 1, k);
        l = nl + 1;
      }
  }
  char err[256];
  mw_expfmt_stats_t st;
  mw_batch_t *b = mw_batch_new(NULL);
  double best_cold = 1e9, best_warm = 1e9;
  size_t n = 0;
  for (int r = 0; r < 5; r++) {
    mw_scrapecache_t *c = mw_scrapecache_new();
    double t0 = now();
    if (mw_expfmt_parse(c, b, body, o, MW_EXPFMT_TEXT, 0, 0, &st, err, sizeof err) != 0) {
      fprintf(stderr, "%s\n", err);
      return 1;
    }
    double t1 = now();
    n = mw_batch_len(b);
    if (t1 - t0 < best_cold) best_cold = t1 - t0;
    for (int w = 0; w < 10; w++) {
      double t2 = now();
      mw_expfmt_parse(c, b, body, o, MW_EXPFMT_TEXT, 0, 0, &st, err, sizeof err);
      double t3 = now();
      if (t3 - t2 < best_warm) best_warm = t3 - t2;
      if (st.series_added || mw_batch_len(b) != n) return 2;
    }
    size_t label_bytes, mem = mw_scrapecache_mem(c);
    mw_series_mem(mw_scrapecache_series(c), &label_bytes);
    if (r == 0)
      printf("body: %.1f MB, %zu series; cache: %.0f B/series (incl. %.0f label bytes; "
             "%.0f B beyond them)\n",
             o / 1e6, n, (double)mem / (double)n, (double)label_bytes / (double)n,
             (double)(mem - label_bytes) / (double)n);
    mw_scrapecache_free(c);
  }
  printf("cold:   %7.1f MB/s  %6.1f ns/series  %5.2f M series/s\n", o / best_cold / 1e6,
         best_cold / (double)n * 1e9, (double)n / best_cold / 1e6);
  printf("steady: %7.1f MB/s  %6.1f ns/series  %5.2f M series/s\n", o / best_warm / 1e6,
         best_warm / (double)n * 1e9, (double)n / best_warm / 1e6);
  mw_batch_free(b);
  free(body);
  return 0;
}
