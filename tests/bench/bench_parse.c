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
 * about 100k series. Then the same series as a protobuf body (length-delimited
 * MetricFamily messages: one per run of samples with the same name, each sample
 * a Metric with its labels and an untyped value), parsed the same way: the
 * per-sample costs of the two formats side by side. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/labels.h"
#include "exposition/parse.h"
#include "exposition/scrapecache.h"
#include "ffi.h"
#include "model/batch.h"
#include "model/series.h"

/* --- a protobuf body from a parsed batch ----------------------------------- */

static size_t put_varint(uint8_t *o, uint64_t v) {
  size_t n = 0;
  do {
    o[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  return n;
}
/* field num, wire type 2, bytes */
static size_t put_bytes(uint8_t *o, int num, const void *d, size_t len) {
  size_t n = put_varint(o, (uint64_t)num << 3 | 2);
  n += put_varint(o + n, len);
  memcpy(o + n, d, len);
  return n + len;
}

/* The samples of b as MetricFamily messages; returns the body's length. */
static size_t to_proto(mw_batch_t *b, uint8_t *out) {
  size_t o = 0, n = mw_batch_len(b), i = 0;
  static uint8_t fam[1 << 22], met[1 << 16], lp[1 << 14];
  while (i < n) {
    size_t len, pos = 0, fl = 0;
    const uint8_t *enc = mw_ffi_batch_labels(b, i, &len);
    mw_label_t l, name = {0};
    while (mw_labels_next(enc, len, &pos, &l) == 1)
      if (l.name_len == 8 && memcmp(l.name, "__name__", 8) == 0) name = l;
    fl += put_bytes(fam + fl, 1, name.value, name.value_len);
    fam[fl++] = 3 << 3; /* type UNTYPED */
    fam[fl++] = 3;
    for (; i < n; i++) {
      enc = mw_ffi_batch_labels(b, i, &len);
      size_t ml = 0;
      mw_label_t nm = {0};
      pos = 0;
      while (mw_labels_next(enc, len, &pos, &l) == 1) {
        if (l.name_len == 8 && memcmp(l.name, "__name__", 8) == 0) {
          nm = l;
          continue;
        }
        size_t pl = put_bytes(lp, 1, l.name, l.name_len);
        pl += put_bytes(lp + pl, 2, l.value, l.value_len);
        ml += put_bytes(met + ml, 1, lp, pl);
      }
      if (nm.value_len != name.value_len || memcmp(nm.value, name.value, nm.value_len) != 0) break;
      uint8_t val[9];
      double v = mw_batch_values(b)[i];
      val[0] = 1 << 3 | 1;
      memcpy(val + 1, &v, 8);
      ml += put_bytes(met + ml, 5, val, 9);
      fl += put_bytes(fam + fl, 4, met, ml);
    }
    o += put_varint(out + o, fl);
    memcpy(out + o, fam, fl);
    o += fl;
  }
  return o;
}

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
  /* The same series in the protobuf format. */
  {
    mw_scrapecache_t *c = mw_scrapecache_new();
    mw_expfmt_parse(c, b, body, o, MW_EXPFMT_TEXT, 0, 0, &st, err, sizeof err);
    uint8_t *pb = malloc(o * 2 + 1024);
    size_t plen = to_proto(b, pb);
    mw_scrapecache_free(c);
    double pcold = 1e9, pwarm = 1e9;
    size_t pn = 0;
    for (int r = 0; r < 5; r++) {
      c = mw_scrapecache_new();
      double t0 = now();
      if (mw_expfmt_parse(c, b, (const char *)pb, plen, MW_EXPFMT_PROTOBUF, 0, 0, &st, err,
                          sizeof err) != 0) {
        fprintf(stderr, "protobuf: %s\n", err);
        return 1;
      }
      double t1 = now();
      pn = mw_batch_len(b);
      if (t1 - t0 < pcold) pcold = t1 - t0;
      for (int w = 0; w < 10; w++) {
        double t2 = now();
        mw_expfmt_parse(c, b, (const char *)pb, plen, MW_EXPFMT_PROTOBUF, 0, 0, &st, err,
                        sizeof err);
        double t3 = now();
        if (t3 - t2 < pwarm) pwarm = t3 - t2;
        if (st.series_added || mw_batch_len(b) != pn) return 2;
      }
      mw_scrapecache_free(c);
    }
    printf("protobuf body: %.1f MB, %zu series\n", plen / 1e6, pn);
    printf("pb cold:   %7.1f MB/s  %6.1f ns/series  %5.2f M series/s\n", plen / pcold / 1e6,
           pcold / (double)pn * 1e9, (double)pn / pcold / 1e6);
    printf("pb steady: %7.1f MB/s  %6.1f ns/series  %5.2f M series/s\n", plen / pwarm / 1e6,
           pwarm / (double)pn * 1e9, (double)pn / pwarm / 1e6);
    free(pb);
  }
  mw_batch_free(b);
  free(body);
  return 0;
}
