/* base/crc32c.h: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by
 * the WAL's records. Table-driven (slicing by 8); on x86-64 with SSE4.2 the
 * CPU's crc32 instruction is used instead (same result). */
#ifndef MW_CRC32C_H
#define MW_CRC32C_H
#include <stddef.h>
#include <stdint.h>

/* Continues the CRC crc (0 to start) over p[0..n) and returns it:
 * mw_crc32c(mw_crc32c(0, a, n), b, m) == CRC of a followed by b.
 * mw_crc32c(0, "123456789", 9) == 0xE3069283. Thread-safe. */
uint32_t mw_crc32c(uint32_t crc, const void *p, size_t n);

#endif
