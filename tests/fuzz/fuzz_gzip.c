/* Fuzz target: gzip bodies (runtime/base/gzip.c), whole and in steps.
 *
 * Input: a gzip body, as it is (any bytes). Properties:
 * - mw_gunzip_all with a 1 MiB limit reads only the input (ASan) and gives 0 or -1; after 0
 *   the output is at most the limit, NUL-terminated;
 * - the same input inflated in steps (a budget from 1 byte to 4 KiB, chosen by the input's
 *   length) gives the same answer and, after 0, the same bytes; every step but the last
 *   returns "more to do", and the steps are at most limit / budget + 2. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/gzip.h"

#define FAIL(...)                                                                                  \
  do {                                                                                             \
    fprintf(stderr, "fuzz_gzip: " __VA_ARGS__);                                                    \
    fputc('\n', stderr);                                                                           \
    abort();                                                                                       \
  } while (0)

#define LIMIT ((size_t)1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256], *out = NULL, *sout = NULL;
  size_t len = 0, slen = 0;
  int rc = mw_gunzip_all(data, size, LIMIT, &out, &len, err, sizeof err);
  if (rc != 0 && rc != -1) FAIL("mw_gunzip_all returned %d", rc);
  if (rc == 0 && (len > LIMIT || out[len] != '\0')) FAIL("output of %zu bytes", len);
  if (rc != 0 && out) FAIL("output after an error");
  size_t budget = 1 + (size * 131) % 4096;
  int src = -1;
  mw_gunzip_t *g = mw_gunzip_new(data, size, LIMIT, err, sizeof err);
  if (g) {
    size_t steps = 0;
    while ((src = mw_gunzip_step(g, budget, &sout, &slen, err, sizeof err)) == 0)
      if (++steps > LIMIT / budget + 2) FAIL("%zu steps of %zu bytes", steps, budget);
    mw_gunzip_free(g);
    src = src == 1 ? 0 : -1;
  }
  if (src != rc) FAIL("whole %d, in steps of %zu: %d", rc, budget, src);
  if (rc == 0 && (slen != len || memcmp(sout, out, len) != 0))
    FAIL("whole %zu bytes, in steps %zu different bytes", len, slen);
  free(out);
  free(sout);
  return 0;
}
