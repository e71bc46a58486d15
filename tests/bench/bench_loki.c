/* bench_loki: loki.write's hot path in C, one core. Log-entry batches of 1,000 lines of ~200
 * bytes (realistic access-log text, 100 files' streams of 4 labels each) are appended to the
 * logs queue (fsync "never"), then one endpoint reader reads everything back as 1 MiB push
 * requests (PushRequest protobuf + snappy, what goes on the wire). Prints entries/s and CPU
 * seconds per million entries for each step and the wire bytes per entry; in a directory
 * under $TMPDIR (default /tmp).
 *   make bench   (or: build/tests/bench_loki [million entries, default 2]) */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loki/reader.h"
#include "model/logbatch.h"
#include "storage/logs_queue.h"

#define BATCH 1000
#define FILES 100
#define DISTINCT 20

static double cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(p);
}

int main(int argc, char **argv) {
  double millions = argc > 1 ? atof(argv[1]) : 2;
  size_t total = (size_t)(millions * 1e6);
  char err[256], dir[256];
  const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(dir, sizeof dir, "%s/mw_bench_loki.XXXXXX", tmp);
  if (!mkdtemp(dir)) return 1;
  mw_logq_t *q;
  if (mw_logq_open(dir, 0, 64u << 20, &q, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  /* DISTINCT batches made first (a source's work, not loki.write's), appended in turn */
  mw_logbatch_t *bs[DISTINCT];
  size_t n = 0, line_bytes = 0;
  int64_t ts = 1700000000000000000LL;
  for (int k = 0; k < DISTINCT; k++) {
    mw_logbatch_t *b = bs[k] = mw_logbatch_new();
    for (int i = 0; i < BATCH; i++, n++) {
      char labels[256], line[256];
      int f = (int)(n % FILES);
      int ll = snprintf(labels, sizeof labels,
                        "filename\xff/var/log/app/service-%02d.log\xffhost\xffnode-7\xff"
                        "job\xff"
                        "app\xffnamespace\xffprod\xff",
                        f);
      int64_t s = mw_logbatch_stream(b, (const uint8_t *)labels, (size_t)ll);
      int len = snprintf(
          line, sizeof line,
          "10.%d.%d.%d - - [14/Nov/2023:22:13:%02d +0000] \"GET /api/v1/items/%zu?page=%d "
          "HTTP/1.1\" %d %d \"https://shop.example.com/catalog\" \"Mozilla/5.0 (X11; Linux x86_64) "
          "Firefox/120.0\" rt=%d.%03d",
          (int)(n % 255), (int)(n / 255 % 255), i % 255, (int)(n % 60), n, i % 50,
          i % 17 ? 200 : 404, (int)(n * 7 % 99999), i % 3, (int)(n % 1000));
      line_bytes += (size_t)len;
      if (s < 0 ||
          mw_logbatch_add(b, (uint32_t)s, ts + (int64_t)n, line, (size_t)len, NULL, 0) != 0)
        return 1;
    }
  }
  line_bytes /= n;
  n = 0;
  double c0 = cpu(), w0 = wall();
  for (int k = 0; n < total; k = (k + 1) % DISTINCT, n += BATCH) {
    if (mw_logq_append(q, bs[k], 1000, err, sizeof err) != 0) {
      fprintf(stderr, "%s\n", err);
      return 1;
    }
  }
  double c1 = cpu(), w1 = wall();
  mw_lokireader_t *r;
  if (mw_lokireader_open(q, "bench", &r, err, sizeof err) != 0) return 1;
  mw_lokireq_opts_t o = {.batch_size = 1u << 20};
  mw_lokireq_t req;
  size_t got = 0, wire = 0, reqs = 0;
  int rc;
  while ((rc = mw_lokireader_next(r, &o, &req, err, sizeof err)) == 1) {
    got += req.entries;
    wire += req.body_len;
    reqs++;
  }
  double c2 = cpu(), w2 = wall();
  if (rc < 0 || got != n) {
    fprintf(stderr, "read %zu of %zu: %s\n", got, n, rc < 0 ? err : "");
    return 1;
  }
  line_bytes *= n;
  printf("entries: %zu, avg line %.0f bytes, %zu requests of 1 MiB\n", n, (double)line_bytes / n,
         reqs);
  printf("queue append:        %8.0f entries/s  %.3f CPU s/M entries  (%.0f MB/s of lines)\n",
         n / (w1 - w0), (c1 - c0) / (n / 1e6), line_bytes / (w1 - w0) / 1e6);
  printf("read+encode+snappy:  %8.0f entries/s  %.3f CPU s/M entries  (%.1f wire bytes/entry)\n",
         n / (w2 - w1), (c2 - c1) / (n / 1e6), (double)wire / n);
  printf("both:                %8.0f entries/s  %.3f CPU s/M entries\n", n / (w2 - w0),
         (c2 - c0) / (n / 1e6));
  mw_lokireader_close(r);
  mw_logq_close(q);
  for (int k = 0; k < DISTINCT; k++)
    mw_logbatch_free(bs[k]);
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}
