/* Fuzz target: the pprof profile checker (runtime/pprof/profile.c) the Pyroscope receiver and
 * pyroscope.scrape run on every profile they get: gzip (bounded) and profile.proto via
 * protobuf-c, then every index and id checked. The first byte picks the mode: 0, the rest as
 * is (gzipped or raw); 1, the rest gzipped here first, so the fuzzer reaches the decoder
 * through the gzip path. Anything it accepts must also be accepted once more (no state), and
 * its delta (mw_ffi_pprof_delta_next, which pyroscope.scrape runs after it) accepted too. */
#include <libdeflate.h>
#include <stdint.h>
#include <stdlib.h>

#include "pprof/profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  char err[256];
  size_t ns, nt, ns2, nt2;
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  uint8_t *gz = NULL;
  if (data[0] == 1) {
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(1);
    size_t bound = libdeflate_gzip_compress_bound(c, n);
    gz = malloc(bound);
    n = libdeflate_gzip_compress(c, p, n, gz, bound);
    libdeflate_free_compressor(c);
    if (!n) abort();
    p = gz;
  }
  if (mw_ffi_pprof_check(p, n, &ns, &nt, err, sizeof err) == 0) {
    if (mw_ffi_pprof_check(p, n, &ns2, &nt2, err, sizeof err) != 0 || ns != ns2 || nt != nt2)
      abort();
  }
  /* pyroscope.scrape's deltas of what it scraped: the first has none; the delta of a valid
   * profile is one */
  mw_pprof_delta_t *d = mw_ffi_pprof_delta_new("samples\0count\0cpu\0nanoseconds\0", 2);
  const uint8_t *out;
  size_t outlen;
  if (!d) abort();
  if (mw_ffi_pprof_delta_next(d, p, n, &out, &outlen, err, sizeof err) == 0 &&
      mw_ffi_pprof_delta_next(d, p, n, &out, &outlen, err, sizeof err) == 0 &&
      mw_ffi_pprof_check(p, n, &ns, &nt, err, sizeof err) == 0 &&
      mw_ffi_pprof_check(out, outlen, &ns2, &nt2, err, sizeof err) != 0)
    abort();
  mw_ffi_pprof_delta_free(d);
  free(gz);
  return 0;
}
