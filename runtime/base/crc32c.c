/* base/crc32c.c: CRC-32C (see base/crc32c.h). */
#include "base/crc32c.h"

#include <pthread.h>
#include <string.h>

static uint32_t mw_crc_table[8][256];
static int mw_crc_hw_ok; /* use the SSE4.2 instruction */
static pthread_once_t mw_crc_once = PTHREAD_ONCE_INIT;

static void mw_crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++)
      c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
    mw_crc_table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int t = 1; t < 8; t++)
      mw_crc_table[t][i] =
          (mw_crc_table[t - 1][i] >> 8) ^ mw_crc_table[0][mw_crc_table[t - 1][i] & 0xff];
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  mw_crc_hw_ok = __builtin_cpu_supports("sse4.2") != 0;
#endif
}

static uint32_t mw_crc_sw(uint32_t c, const uint8_t *p, size_t n) {
  while (n && ((uintptr_t)p & 7)) {
    c = (c >> 8) ^ mw_crc_table[0][(c ^ *p++) & 0xff];
    n--;
  }
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    w ^= c; /* little-endian hosts only: the WAL is written little-endian */
    c = mw_crc_table[7][w & 0xff] ^ mw_crc_table[6][(w >> 8) & 0xff] ^
        mw_crc_table[5][(w >> 16) & 0xff] ^ mw_crc_table[4][(w >> 24) & 0xff] ^
        mw_crc_table[3][(w >> 32) & 0xff] ^ mw_crc_table[2][(w >> 40) & 0xff] ^
        mw_crc_table[1][(w >> 48) & 0xff] ^ mw_crc_table[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n--)
    c = (c >> 8) ^ mw_crc_table[0][(c ^ *p++) & 0xff];
  return c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2"))) static uint32_t mw_crc_hw(uint32_t c, const uint8_t *p,
                                                            size_t n) {
  uint64_t c64 = c;
  while (n && ((uintptr_t)p & 7)) {
    c64 = __builtin_ia32_crc32qi((uint32_t)c64, *p++);
    n--;
  }
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    c64 = __builtin_ia32_crc32di(c64, w);
    p += 8;
    n -= 8;
  }
  while (n--)
    c64 = __builtin_ia32_crc32qi((uint32_t)c64, *p++);
  return (uint32_t)c64;
}
#endif

uint32_t mw_crc32c(uint32_t crc, const void *p, size_t n) {
  pthread_once(&mw_crc_once, mw_crc_init);
  uint32_t c = ~crc;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (mw_crc_hw_ok) return ~mw_crc_hw(c, p, n);
#endif
  return ~mw_crc_sw(c, p, n);
}
