/* Fuzz target: Pyroscope push decoding as the suite's receiver does it (push.proto via
 * protobuf-c, then Pyroscope's checks of labels and samples). Every request that decodes is
 * encoded again with pyroscope.write's encoder (pyroscope/push.c), one series per sample, and
 * must decode to the same labels, profiles and ids. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pyroscope/push.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256];
  mw_pyrodec_t *d;
  if (mw_ffi_pyrodec_new(data, size, &d, err, sizeof err) != 0) return 0;
  mw_pyroenc_t *e = mw_ffi_pyroenc_new();
  if (!e) abort();
  size_t ns = mw_ffi_pyrodec_series(d), total = 0;
  for (size_t i = 0; i < ns; i++) {
    size_t nl, nsm;
    if (mw_ffi_pyrodec_info(d, i, &nl, &nsm) != 0) abort();
    /* labels packed as name NUL value NUL (a NUL inside a name or value cannot travel) */
    size_t bytes = 0;
    for (size_t j = 0; j < nl; j++) {
      const char *n, *v;
      if (mw_ffi_pyrodec_label(d, i, j, &n, &v) != 0) abort();
      bytes += strlen(n) + strlen(v) + 2;
    }
    char *packed = malloc(bytes + 1), *at = packed;
    for (size_t j = 0; j < nl; j++) {
      const char *n, *v;
      mw_ffi_pyrodec_label(d, i, j, &n, &v);
      memcpy(at, n, strlen(n) + 1);
      at += strlen(n) + 1;
      memcpy(at, v, strlen(v) + 1);
      at += strlen(v) + 1;
    }
    for (size_t k = 0; k < nsm; k++) {
      const uint8_t *raw;
      size_t rl;
      const char *id;
      if (mw_ffi_pyrodec_sample(d, i, k, &raw, &rl, &id) != 0) abort();
      if (mw_ffi_pyroenc_series(e, packed, nl, raw, rl, id) != 0) abort();
      total++;
    }
    free(packed);
  }
  if (mw_ffi_pyroenc_count(e) != total) abort();
  const uint8_t *body;
  size_t blen;
  if (mw_ffi_pyroenc_finish(e, &body, &blen, err, sizeof err) != 0) abort();
  mw_pyrodec_t *d2;
  /* empty strings survive (proto3 omits them, the decoder gives "" back) */
  if (total && mw_ffi_pyrodec_new(body, blen, &d2, err, sizeof err) == 0) {
    size_t s2 = 0;
    for (size_t i = 0; i < ns; i++) {
      size_t nl, nsm;
      mw_ffi_pyrodec_info(d, i, &nl, &nsm);
      for (size_t k = 0; k < nsm; k++, s2++) {
        size_t nl2, nsm2;
        if (mw_ffi_pyrodec_info(d2, s2, &nl2, &nsm2) != 0 || nl2 != nl || nsm2 != 1) abort();
        for (size_t j = 0; j < nl; j++) {
          const char *n1, *v1, *n2, *v2;
          mw_ffi_pyrodec_label(d, i, j, &n1, &v1);
          mw_ffi_pyrodec_label(d2, s2, j, &n2, &v2);
          if (strcmp(n1, n2) || strcmp(v1, v2)) abort();
        }
        const uint8_t *r1, *r2;
        size_t l1, l2;
        const char *i1, *i2;
        mw_ffi_pyrodec_sample(d, i, k, &r1, &l1, &i1);
        mw_ffi_pyrodec_sample(d2, s2, 0, &r2, &l2, &i2);
        if (l1 != l2 || memcmp(r1, r2, l1) || strcmp(i1, i2)) abort();
      }
    }
    mw_ffi_pyrodec_free(d2);
  } else if (total) {
    abort(); /* what decoded and passed the checks must decode again */
  }
  mw_ffi_pyroenc_free(e);
  mw_ffi_pyrodec_free(d);
  return 0;
}
