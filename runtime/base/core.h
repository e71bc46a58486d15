/* base/core.h: build facts, clocks and hashing (base/core.c), and the text of the
 * FFI surface for ffi.cdef (generated at build time; see runtime/ffi.h). */
#ifndef MW_CORE_H
#define MW_CORE_H
#include <stddef.h>
#include <stdint.h>

/* ffi.cdef begin */
/* --- core: build facts, clocks, hashing (base/core.c) --------------------- */

/* The text of this header for ffi.cdef (generated at build time). */
const char *mw_ffi_cdef(void);
/* Wall-clock time in seconds since the epoch, with sub-microsecond resolution. */
double mw_ffi_time_now(void);
/* Monotonic time in seconds (CLOCK_MONOTONIC). */
double mw_ffi_time_monotonic(void);
/* Version and revision strings baked in at build time. */
const char *mw_ffi_version(void);
const char *mw_ffi_revision(void);
/* SHA-256 of data[0..len) as 64 lowercase hex digits and a NUL into out[65]. */
void mw_ffi_sha256_hex(const char *data, size_t len, char *out);
/* SHA3-256 of data[0..len) as 64 lowercase hex digits and a NUL into out[65]. */
void mw_ffi_sha3_256_hex(const char *data, size_t len, char *out);
/* Gives the pages of free heap memory back to the system (glibc's
 * malloc_trim(0): free() returns only the top of the heap, so what tables
 * free between live blocks (grown indexes, compacted arenas, dropped
 * indexes) stays resident until then). Returns 1 if some memory was given
 * back, 0 if none (or not glibc). Takes about a millisecond per 100 MB of
 * heap: the runtime calls it every 10 seconds. */
int mw_ffi_heap_trim(void);
/* ffi.cdef end */

#endif
