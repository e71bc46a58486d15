/* base/gzip.c: gzip bodies inflated whole or in steps (see base/gzip.h). */
#include "base/gzip.h"

#include <libdeflate.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/err.h"

/* A gunzip in steps (see base/gzip.h). The output buffer never grows past
 * max_out + 1 bytes of data (+ NUL), so one byte too many is seen without
 * inflating a bomb. */
struct mw_gunzip {
  const unsigned char *in;
  size_t in_len, pos;
  size_t max_out, limit; /* limit: data + 1 extra byte + NUL (SIZE_MAX: none) */
  size_t isize;          /* the trailer's size */
  int fast;              /* isize is plausible and within max_out: libdeflate may try */
  char *buf;
  size_t cap, len;
  z_stream z;
  int inited; /* z is set up: the libdeflate try is behind us */
};

mw_gunzip_t *mw_gunzip_new(const void *in, size_t in_len, size_t max_out, char *err,
                           size_t errlen) {
  const unsigned char *p = in;
  if (in_len < 2 || p[0] != 0x1f || p[1] != 0x8b) {
    mw_seterr(err, errlen, "gzip: invalid header");
    return NULL;
  }
  if (in_len < 18) { /* a header and a trailer at least */
    mw_seterr(err, errlen, "gzip: unexpected EOF");
    return NULL;
  }
  mw_gunzip_t *g = calloc(1, sizeof *g);
  if (!g) {
    mw_oom(err, errlen);
    return NULL;
  }
  g->in = p;
  g->in_len = in_len;
  g->max_out = max_out;
  g->limit = max_out ? max_out + 2 : SIZE_MAX;
  size_t isize = (size_t)p[in_len - 4] | (size_t)p[in_len - 3] << 8 | (size_t)p[in_len - 2] << 16 |
                 (size_t)p[in_len - 1] << 24;
  /* deflate cannot expand more than about 1032:1; a bigger ISIZE is a lie */
  if (in_len < SIZE_MAX / 1032 && isize <= in_len * 1032 && (!max_out || isize <= max_out))
    g->fast = 1;
  g->isize = isize;
  return g;
}

void mw_gunzip_free(mw_gunzip_t *g) {
  if (!g) return;
  if (g->inited) inflateEnd(&g->z);
  free(g->buf);
  free(g);
}

/* The one-call try: libdeflate with the exact size from the trailer. 1 done
 * (*out taken), 0 not so (ISIZE lied, several members, trailing bytes, bad
 * data: zlib decides), -1 out of memory. */
static int mw_gunzip_libdeflate(mw_gunzip_t *g, char **out, size_t *out_len) {
  size_t isize = g->isize;
  char *buf = malloc(isize + 1);
  struct libdeflate_decompressor *d = buf ? libdeflate_alloc_decompressor() : NULL;
  if (!d) {
    free(buf);
    return -1;
  }
  size_t used = 0, got = 0;
  enum libdeflate_result res =
      libdeflate_gzip_decompress_ex(d, g->in, g->in_len, buf, isize, &used, &got);
  libdeflate_free_decompressor(d);
  if (res == LIBDEFLATE_SUCCESS && used == g->in_len && got == isize) {
    buf[got] = '\0';
    *out = buf;
    *out_len = got;
    return 1;
  }
  free(buf);
  return 0;
}

int mw_gunzip_step(mw_gunzip_t *g, size_t budget, char **out, size_t *out_len, char *err,
                   size_t errlen) {
  if (!budget) budget = 1;
  if (!g->inited) {
    /* a body whose whole output fits the step goes through libdeflate in one call,
     * which is about as fast again as zlib: up to four steps' worth */
    if (g->fast && g->isize <= (budget > SIZE_MAX / 4 ? SIZE_MAX : budget * 4)) {
      int r = mw_gunzip_libdeflate(g, out, out_len);
      if (r < 0) goto oom;
      if (r) return 1;
    }
    g->cap = g->in_len < SIZE_MAX / 8 ? g->in_len * 4 + 64 : SIZE_MAX / 2;
    if (g->cap > g->limit) g->cap = g->limit;
    if (!(g->buf = malloc(g->cap))) goto oom;
    if (inflateInit2(&g->z, 16 + MAX_WBITS) != Z_OK) goto oom;
    g->inited = 1;
  }
  z_stream *z = &g->z;
  size_t goal = g->len + budget < g->len ? SIZE_MAX : g->len + budget;
  for (;;) {
    if (g->max_out && g->len > g->max_out) {
      mw_seterr(err, errlen, MW_ERR_BODY_LIMIT);
      return -1;
    }
    if (g->len >= goal) return 0; /* this step's output is made */
    if (g->cap - 1 - g->len == 0) {
      size_t ncap = g->cap > g->limit / 2 ? g->limit : g->cap * 2;
      char *b = realloc(g->buf, ncap);
      if (!b) goto oom;
      g->buf = b;
      g->cap = ncap;
    }
    size_t chunk = g->in_len - g->pos > UINT32_MAX ? UINT32_MAX : g->in_len - g->pos;
    size_t room = g->cap - 1 - g->len;
    if (room > goal - g->len) room = goal - g->len;
    if (room > UINT32_MAX) room = UINT32_MAX;
    z->next_in = (unsigned char *)g->in + g->pos;
    z->avail_in = (uInt)chunk;
    z->next_out = (unsigned char *)g->buf + g->len;
    z->avail_out = (uInt)room;
    int zr = inflate(z, Z_NO_FLUSH);
    g->pos += chunk - z->avail_in;
    g->len += room - z->avail_out;
    if (zr == Z_STREAM_END) {
      /* another member may follow; trailing zero padding is tolerated */
      while (g->pos < g->in_len && g->in[g->pos] == 0)
        g->pos++;
      if (g->pos >= g->in_len) break;
      if (inflateReset(z) != Z_OK) goto bad;
    } else if (zr == Z_BUF_ERROR) {
      if (z->avail_out == 0) continue; /* needs room, or this step is done */
      mw_seterr(err, errlen, "gzip: unexpected EOF");
      return -1;
    } else if (zr != Z_OK) {
      goto bad;
    }
  }
  if (g->max_out && g->len > g->max_out) {
    mw_seterr(err, errlen, MW_ERR_BODY_LIMIT);
    return -1;
  }
  g->buf[g->len] = '\0';
  *out = g->buf;
  *out_len = g->len;
  g->buf = NULL;
  return 1;
bad:
  mw_seterr(err, errlen, "gzip: invalid data (%s)", z->msg ? z->msg : "corrupt stream");
  return -1;
oom:
  mw_oom(err, errlen);
  return -1;
}

int mw_gunzip_all(const void *in, size_t in_len, size_t max_out, char **out, size_t *out_len,
                  char *err, size_t errlen) {
  *out = NULL;
  *out_len = 0;
  mw_gunzip_t *g = mw_gunzip_new(in, in_len, max_out, err, errlen);
  if (!g) return -1;
  int r = mw_gunzip_step(g, SIZE_MAX, out, out_len, err, errlen);
  mw_gunzip_free(g);
  return r == 1 ? 0 : -1;
}

int mw_gzip(const void *in, size_t len, unsigned char **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  struct libdeflate_compressor *c = libdeflate_alloc_compressor(6);
  if (!c) return -1;
  size_t bound = libdeflate_gzip_compress_bound(c, len);
  unsigned char *buf = malloc(bound);
  size_t n = buf ? libdeflate_gzip_compress(c, in ? in : "", len, buf, bound) : 0;
  libdeflate_free_compressor(c);
  if (!n) {
    free(buf);
    return -1;
  }
  *out = buf;
  *out_len = n;
  return 0;
}
