/* base/gzip.h: gzip bodies (scrape bodies, profiles), inflated whole or in steps, bounded.
 * libdeflate for the common case (one member, an honest trailer), zlib's streaming inflate
 * for the rest. */
#ifndef MW_GZIP_H
#define MW_GZIP_H
#include <stddef.h>

/* Inflates a whole gzip body (one or more members) into a malloc'd,
 * NUL-terminated buffer in *out (size in *out_len; the caller frees it).
 * Output larger than max_out (0: no limit) fails with "body size limit
 * exceeded". The single-member case, nearly every scrape, goes through
 * libdeflate in one call with the exact size from the gzip trailer (ISIZE):
 * whole-buffer libdeflate is about twice as fast as zlib's streaming
 * inflate. When ISIZE lies (the size is mod 2^32, or the trailer is wrong)
 * or the body has several members, zlib's streaming inflate takes over.
 * Returns 0, or -1 with a message in err. */
int mw_gunzip_all(const void *in, size_t in_len, size_t max_out, char **out, size_t *out_len,
                  char *err, size_t errlen);

/* The same in steps, so that a big body (or a bomb inflating to max_out)
 * does not hold the event loop in one go: mw_gunzip_new checks the header
 * (NULL with err if it is not gzip, or on OOM); in stays the caller's and
 * must outlive the stream. Each mw_gunzip_step makes about budget more bytes
 * of output and returns 0 (more to do), 1 (done: *out, *out_len as
 * mw_gunzip_all gives them, the caller frees *out) or -1 (err filled; the
 * stream is spent). A body whose trailer size is at most 4 budgets goes
 * through libdeflate in one step (about twice zlib's speed). */
typedef struct mw_gunzip mw_gunzip_t;
mw_gunzip_t *mw_gunzip_new(const void *in, size_t in_len, size_t max_out, char *err, size_t errlen);
int mw_gunzip_step(mw_gunzip_t *g, size_t budget, char **out, size_t *out_len, char *err,
                   size_t errlen);
void mw_gunzip_free(mw_gunzip_t *g);

/* Compresses in (len bytes) into one gzip member at libdeflate's level 6: a
 * malloc'd *out of *out_len bytes (the caller frees it). 0, or -1 (out of
 * memory; *out is then NULL). */
int mw_gzip(const void *in, size_t len, unsigned char **out, size_t *out_len);

#endif
