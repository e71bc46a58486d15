/* base/core.c: build facts, clocks and hashing for the FFI surface. */
#include <malloc.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <time.h>

#include "base/core.h"

double mw_ffi_time_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double mw_ffi_time_monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *mw_ffi_version(void) { return MW_VERSION; }

const char *mw_ffi_revision(void) { return MW_REVISION; }

/* The digest md of data[0..len) as lowercase hex digits and a NUL into out. */
static void mw_digest_hex(const EVP_MD *md, const char *data, size_t len, char *out) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data, len, d, &n, md, NULL);
  for (unsigned int i = 0; i < n; i++)
    snprintf(out + 2 * i, 3, "%02x", d[i]);
  out[2 * n] = '\0';
}

void mw_ffi_sha256_hex(const char *data, size_t len, char *out) {
  mw_digest_hex(EVP_sha256(), data, len, out);
}

void mw_ffi_sha3_256_hex(const char *data, size_t len, char *out) {
  mw_digest_hex(EVP_sha3_256(), data, len, out);
}

int mw_ffi_heap_trim(void) {
#ifdef __GLIBC__
  return malloc_trim(0);
#else
  return 0;
#endif
}
