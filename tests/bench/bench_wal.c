/* bench_wal: prometheus.remote_write's hot paths. 50 targets of 2,000 series
 * each (8 labels, Kubernetes-like; one series table per target, as scrapes
 * make them) are appended to a WAL as one batch per target and scrape: the
 * first scrape (series records), then steady state (a memo read per
 * sample). Then one reader reads everything back and encodes Remote-Write
 * requests of 2,000 samples (protobuf + snappy). Prints samples/s for each
 * and bytes per sample on disk and on the wire; one core, fsync "never", in
 * a directory under $TMPDIR (default /tmp).
 *   make bench   (or: build/tests/bench_wal [scrapes]) */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/labels.h"
#include "model/batch.h"
#include "model/series.h"
#include "remote/wal_reader.h"
#include "storage/wal.h"

#define TARGETS 50
#define SERIES 2000

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(p);
}

static const char *const names[] = {"go_gc_duration_seconds", "http_requests_total",
                                    "node_cpu_seconds_total", "process_resident_memory_bytes",
                                    "up"};

int main(int argc, char **argv) {
  int scrapes = argc > 1 ? atoi(argv[1]) : 20;
  char err[256], dir[256];
  const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(dir, sizeof dir, "%s/mw_bench_wal.XXXXXX", tmp);
  if (!mkdtemp(dir)) return 1;
  mw_series_t *tabs[TARGETS];
  mw_batch_t *batches[TARGETS];
  uint32_t *refs = malloc(sizeof(uint32_t) * TARGETS * SERIES);
  for (int t = 0; t < TARGETS; t++) {
    tabs[t] = mw_series_new();
    batches[t] = mw_batch_new(tabs[t]);
    for (int i = 0; i < SERIES; i++) {
      char enc[512];
      int n = snprintf(enc, sizeof enc,
                       "__name__\xff%s\xff"
                       "app\xffweb-%d\xff"
                       "code\xff%d\xff"
                       "instance\xff"
                       "10.0.%d.%d:9100\xffjob\xffkubernetes-pods\xffnamespace\xffns-%d\xffpod\xff"
                       "pod-%d-%d\xffseries\xff%d\xff",
                       names[i % 5], i % 97, i % 5 * 100 + 200, t, i % 250, t % 13, t, i, i);
      mw_series_add(tabs[t], (const uint8_t *)enc, (size_t)n,
                    mw_labels_hash((const uint8_t *)enc, (size_t)n), &refs[t * SERIES + i], NULL,
                    NULL, 0);
    }
  }
  mw_wal_t *w;
  if (mw_wal_open(dir, NULL, &w, err, sizeof err) != 0) {
    fprintf(stderr, "open: %s\n", err);
    return 1;
  }
  double first = 0, best = 1e9;
  for (int k = 0; k < scrapes; k++) {
    int64_t ts = 1700000000000 + (int64_t)k * 15000;
    for (int t = 0; t < TARGETS; t++) {
      mw_batch_reset(batches[t], tabs[t]);
      for (int i = 0; i < SERIES; i++)
        mw_batch_add(batches[t], refs[t * SERIES + i], ts, (double)(k * 1000 + i) * 0.5);
    }
    double t0 = now();
    for (int t = 0; t < TARGETS; t++)
      if (mw_wal_append_batch(w, batches[t], err, sizeof err) != 0) {
        fprintf(stderr, "append: %s\n", err);
        return 1;
      }
    double dt = now() - t0;
    if (k == 0)
      first = dt;
    else if (dt < best)
      best = dt;
  }
  double per = (double)TARGETS * SERIES;
  mw_wal_stats_t st;
  mw_wal_stats(w, &st);
  printf("append, first scrape (series records): %.2f M samples/s (%.1f ms for %d x %d)\n",
         per / first / 1e6, first * 1e3, TARGETS, SERIES);
  printf("append, steady state:                  %.2f M samples/s (%.1f ms per scrape of %.0f)\n",
         per / best / 1e6, best * 1e3, per);
  printf("WAL: %.2f bytes/sample on disk (series records included), %llu segments\n",
         (double)st.bytes / (double)st.samples_appended, (unsigned long long)st.segments);
  mw_wal_reader_t *r;
  if (mw_wal_reader_open(w, "bench", NULL, 0, &r, err, sizeof err) != 0) return 1;
  double t0 = now();
  uint64_t samples = 0, wire = 0, raw = 0, chunks = 0;
  for (;;) {
    const uint8_t *buf;
    size_t len;
    mw_wal_chunk_t c;
    int rc = mw_wal_reader_next(r, 2000, &buf, &len, &c, err, sizeof err);
    if (rc < 0) {
      fprintf(stderr, "next: %s\n", err);
      return 1;
    }
    if (rc == 0) break;
    samples += c.samples;
    wire += len;
    raw += c.raw_bytes;
    chunks++;
    mw_wal_reader_commit(r, c.seq, err, sizeof err);
  }
  double dt = now() - t0;
  printf("read + encode (2000 samples/request):  %.2f M samples/s (%llu requests, %.1f ms)\n",
         (double)samples / dt / 1e6, (unsigned long long)chunks, dt * 1e3);
  printf("wire: %.2f bytes/sample snappy'd (%.2f protobuf)\n", (double)wire / (double)samples,
         (double)raw / (double)samples);
  mw_wal_reader_close(r);
  mw_wal_close(w);
  for (int t = 0; t < TARGETS; t++) {
    mw_batch_free(batches[t]);
    mw_series_free(tabs[t]);
  }
  free(refs);
  nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
  return 0;
}
