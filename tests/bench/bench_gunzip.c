/* bench_gunzip: inflating a gzip'd scrape body, whole-body libdeflate (what the HTTP
 * client does when the size is known from the gzip trailer) vs zlib's streaming inflate
 * (its fallback). The body is the node_exporter fixture repeated to ~6 MB.
 *   make bench   (or: build/tests/bench_gunzip) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "base/gzip.h"
#include "exposition/write.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int zlib_gunzip(const char *in, size_t len, char *out, size_t cap, size_t *out_len) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return -1;
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)len;
  z.next_out = (Bytef *)out;
  z.avail_out = (uInt)cap;
  int rc = inflate(&z, Z_FINISH);
  *out_len = z.total_out;
  inflateEnd(&z);
  return rc == Z_STREAM_END ? 0 : -1;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "../shared/testdata/exposition/node_exporter-1.5.0.prom";
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return 1;
  }
  char chunk[1 << 16];
  size_t n, cap = 8 << 20, len = 0;
  char *body = malloc(cap);
  size_t flen = fread(chunk, 1, sizeof chunk, f);
  fclose(f);
  while (len + flen < 6 << 20) {
    memcpy(body + len, chunk, flen);
    len += flen;
  }
  struct {
    char *data;
    size_t len;
  } gz;
  char err[256];
  if (mw_gzip(body, len, (unsigned char **)&gz.data, &gz.len) != 0) return 1;
  double best_d = 1e9, best_z = 1e9;
  char *out = malloc(len + 16);
  for (int round = 0; round < 10; round++) {
    double t0 = now();
    char *o;
    size_t olen;
    if (mw_gunzip_all(gz.data, gz.len, 0, &o, &olen, err, sizeof err) != 0 || olen != len) return 1;
    double d = now() - t0;
    free(o);
    t0 = now();
    if (zlib_gunzip(gz.data, gz.len, out, len + 16, &n) != 0 || n != len) return 1;
    double z = now() - t0;
    if (d < best_d) best_d = d;
    if (z < best_z) best_z = z;
  }
  printf(
      "gunzip %.1f MB (%.1f MB gzip'd): libdeflate whole body %.0f MB/s, zlib inflate %.0f MB/s\n",
      len / 1e6, gz.len / 1e6, len / 1e6 / best_d, len / 1e6 / best_z);
  free(out);
  free(body);
  free(gz.data);
  return 0;
}
