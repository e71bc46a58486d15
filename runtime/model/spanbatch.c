/* model/spanbatch.c: the span batch; see spanbatch.h. Strings live in one byte buffer and
 * spans and attributes name them by offset, so growing the buffer moves no pointer. */
#include "model/spanbatch.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "base/grow.h"

typedef struct {
  uint32_t key_off, key_len, str_off, str_len;
  int32_t type;
  int64_t i;
  double d;
} mw_attr_rec_t;

typedef struct {
  uint8_t trace_id[16], span_id[8], parent[8];
  int32_t kind, status_code;
  int64_t start_ns, end_ns;
  uint32_t name_off, name_len, msg_off, msg_len;
  uint32_t attr_first, attr_count;
} mw_span_rec_t;

struct mw_spanbatch {
  char *bytes;
  size_t nbytes, capbytes;
  mw_span_rec_t *spans;
  size_t nspans, capspans;
  mw_attr_rec_t *attrs;
  size_t nattrs, capattrs;
  mw_attr_rec_t *res;
  size_t nres, capres;
};

mw_spanbatch_t *mw_ffi_spanbatch_new(void) { return calloc(1, sizeof(mw_spanbatch_t)); }

void mw_ffi_spanbatch_free(mw_spanbatch_t *b) {
  if (!b) return;
  free(b->bytes);
  free(b->spans);
  free(b->attrs);
  free(b->res);
  free(b);
}

void mw_ffi_spanbatch_reset(mw_spanbatch_t *b) { b->nbytes = b->nspans = b->nattrs = b->nres = 0; }

/* Copies s into the byte buffer: its offset, or -1 (too long, out of memory). */
static int64_t mw_spanbatch_str(mw_spanbatch_t *b, const char *s, size_t len) {
  if (len > MW_SPANBATCH_MAX_STR || b->nbytes + len > UINT32_MAX) return -1;
  if (mw_grow((void **)&b->bytes, &b->capbytes, b->nbytes + len + 1, 1)) return -1;
  int64_t off = (int64_t)b->nbytes;
  if (len) memcpy(b->bytes + b->nbytes, s, len);
  b->bytes[b->nbytes + len] = '\0';
  b->nbytes += len + 1;
  return off;
}

/* A new attribute record in *list with its key copied: the record, or NULL. */
static mw_attr_rec_t *mw_spanbatch_newattr(mw_spanbatch_t *b, mw_attr_rec_t **list, size_t *n,
                                           size_t *cap, const char *key, size_t klen) {
  if (*n >= MW_SPANBATCH_MAX_ITEMS || mw_grow((void **)list, cap, *n + 1, sizeof **list))
    return NULL;
  size_t mark = b->nbytes;
  int64_t off = mw_spanbatch_str(b, key, klen);
  if (off < 0) {
    b->nbytes = mark;
    return NULL;
  }
  mw_attr_rec_t *a = &(*list)[*n];
  memset(a, 0, sizeof *a);
  a->key_off = (uint32_t)off;
  a->key_len = (uint32_t)klen;
  return a;
}

int mw_ffi_spanbatch_resource(mw_spanbatch_t *b, const char *key, size_t klen, const char *val,
                              size_t vlen) {
  size_t mark = b->nbytes;
  mw_attr_rec_t *a = mw_spanbatch_newattr(b, &b->res, &b->nres, &b->capres, key, klen);
  if (!a) return -1;
  int64_t off = mw_spanbatch_str(b, val, vlen);
  if (off < 0) {
    b->nbytes = mark;
    return -1;
  }
  a->type = MW_SPANATTR_STR;
  a->str_off = (uint32_t)off;
  a->str_len = (uint32_t)vlen;
  b->nres++;
  return 0;
}

static int mw_allzero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i]) return 0;
  return 1;
}

int mw_ffi_spanbatch_add(mw_spanbatch_t *b, const uint8_t *trace_id, const uint8_t *span_id,
                         const uint8_t *parent, const char *name, size_t nlen, int kind,
                         int64_t start_ns, int64_t end_ns, int status_code, const char *msg,
                         size_t mlen) {
  if (mw_allzero(trace_id, 16) || mw_allzero(span_id, 8)) return -1;
  if (b->nspans >= MW_SPANBATCH_MAX_ITEMS ||
      mw_grow((void **)&b->spans, &b->capspans, b->nspans + 1, sizeof *b->spans))
    return -1;
  size_t mark = b->nbytes;
  int64_t noff = mw_spanbatch_str(b, name, nlen);
  int64_t moff = noff < 0 ? -1 : mw_spanbatch_str(b, msg ? msg : "", msg ? mlen : 0);
  if (moff < 0) {
    b->nbytes = mark;
    return -1;
  }
  mw_span_rec_t *s = &b->spans[b->nspans++];
  memcpy(s->trace_id, trace_id, 16);
  memcpy(s->span_id, span_id, 8);
  if (parent)
    memcpy(s->parent, parent, 8);
  else
    memset(s->parent, 0, 8);
  s->kind = kind;
  s->status_code = status_code;
  s->start_ns = start_ns;
  s->end_ns = end_ns;
  s->name_off = (uint32_t)noff;
  s->name_len = (uint32_t)nlen;
  s->msg_off = (uint32_t)moff;
  s->msg_len = (uint32_t)(msg ? mlen : 0);
  s->attr_first = (uint32_t)b->nattrs;
  s->attr_count = 0;
  return 0;
}

void mw_ffi_spanbatch_pop(mw_spanbatch_t *b) {
  if (b->nspans == 0) return;
  const mw_span_rec_t *s = &b->spans[--b->nspans];
  b->nattrs = s->attr_first;
  b->nbytes = s->name_off; /* its name came first, then its message and attributes */
}

/* A new attribute of the last span, or NULL. */
static mw_attr_rec_t *mw_spanbatch_spanattr(mw_spanbatch_t *b, const char *key, size_t klen) {
  if (b->nspans == 0) return NULL;
  return mw_spanbatch_newattr(b, &b->attrs, &b->nattrs, &b->capattrs, key, klen);
}

static void mw_spanbatch_commit(mw_spanbatch_t *b) {
  b->nattrs++;
  b->spans[b->nspans - 1].attr_count++;
}

int mw_ffi_spanbatch_attr_str(mw_spanbatch_t *b, const char *key, size_t klen, const char *val,
                              size_t vlen) {
  size_t mark = b->nbytes;
  mw_attr_rec_t *a = mw_spanbatch_spanattr(b, key, klen);
  if (!a) return -1;
  int64_t off = mw_spanbatch_str(b, val, vlen);
  if (off < 0) {
    b->nbytes = mark;
    return -1;
  }
  a->type = MW_SPANATTR_STR;
  a->str_off = (uint32_t)off;
  a->str_len = (uint32_t)vlen;
  mw_spanbatch_commit(b);
  return 0;
}

int mw_ffi_spanbatch_attr_int(mw_spanbatch_t *b, const char *key, size_t klen, int64_t v) {
  mw_attr_rec_t *a = mw_spanbatch_spanattr(b, key, klen);
  if (!a) return -1;
  a->type = MW_SPANATTR_INT;
  a->i = v;
  mw_spanbatch_commit(b);
  return 0;
}

int mw_ffi_spanbatch_attr_double(mw_spanbatch_t *b, const char *key, size_t klen, double v) {
  mw_attr_rec_t *a = mw_spanbatch_spanattr(b, key, klen);
  if (!a) return -1;
  a->type = MW_SPANATTR_DOUBLE;
  a->d = v;
  mw_spanbatch_commit(b);
  return 0;
}

int mw_ffi_spanbatch_attr_bool(mw_spanbatch_t *b, const char *key, size_t klen, int v) {
  mw_attr_rec_t *a = mw_spanbatch_spanattr(b, key, klen);
  if (!a) return -1;
  a->type = MW_SPANATTR_BOOL;
  a->i = v != 0;
  mw_spanbatch_commit(b);
  return 0;
}

size_t mw_ffi_spanbatch_len(const mw_spanbatch_t *b) { return b->nspans; }
size_t mw_ffi_spanbatch_resource_len(const mw_spanbatch_t *b) { return b->nres; }

int mw_ffi_spanbatch_span(const mw_spanbatch_t *b, size_t i, mw_span_t *s) {
  if (i >= b->nspans) return -1;
  const mw_span_rec_t *r = &b->spans[i];
  memcpy(s->trace_id, r->trace_id, 16);
  memcpy(s->span_id, r->span_id, 8);
  memcpy(s->parent_span_id, r->parent, 8);
  s->kind = r->kind;
  s->status_code = r->status_code;
  s->start_ns = r->start_ns;
  s->end_ns = r->end_ns;
  s->name = b->bytes + r->name_off;
  s->name_len = r->name_len;
  s->status_message = b->bytes + r->msg_off;
  s->status_message_len = r->msg_len;
  s->attr_first = r->attr_first;
  s->attr_count = r->attr_count;
  return 0;
}

static void mw_spanbatch_readattr(const mw_spanbatch_t *b, const mw_attr_rec_t *r,
                                  mw_spanattr_t *a) {
  a->key = b->bytes + r->key_off;
  a->key_len = r->key_len;
  a->type = r->type;
  a->str = r->type == MW_SPANATTR_STR ? b->bytes + r->str_off : NULL;
  a->str_len = r->type == MW_SPANATTR_STR ? r->str_len : 0;
  a->i = r->i;
  a->d = r->d;
}

int mw_ffi_spanbatch_attr(const mw_spanbatch_t *b, size_t i, mw_spanattr_t *a) {
  if (i >= b->nattrs) return -1;
  mw_spanbatch_readattr(b, &b->attrs[i], a);
  return 0;
}

int mw_ffi_spanbatch_resource_attr(const mw_spanbatch_t *b, size_t i, mw_spanattr_t *a) {
  if (i >= b->nres) return -1;
  mw_spanbatch_readattr(b, &b->res[i], a);
  return 0;
}

/* ---- ids and sampling ---- */

static uint64_t mw_rng[4];
static int mw_rng_seeded;

static uint64_t mw_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t mw_rng_next(void) {
  uint64_t r = mw_rotl(mw_rng[1] * 5, 7) * 9, t = mw_rng[1] << 17;
  mw_rng[2] ^= mw_rng[0];
  mw_rng[3] ^= mw_rng[1];
  mw_rng[1] ^= mw_rng[2];
  mw_rng[0] ^= mw_rng[3];
  mw_rng[2] ^= t;
  mw_rng[3] = mw_rotl(mw_rng[3], 45);
  return r;
}

static void mw_rng_seed(void) {
  if (getrandom(mw_rng, sizeof mw_rng, 0) != (ssize_t)sizeof mw_rng) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    mw_rng[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30);
    mw_rng[1] = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
    mw_rng[2] = 0xD1B54A32D192ED03ull;
    mw_rng[3] = 0xABCDEF0123456789ull;
  }
  if (!(mw_rng[0] | mw_rng[1] | mw_rng[2] | mw_rng[3])) mw_rng[0] = 1;
  mw_rng_seeded = 1;
}

void mw_ffi_trace_random(uint8_t *out, size_t n) {
  if (!mw_rng_seeded) mw_rng_seed();
  do {
    for (size_t i = 0; i < n; i += 8) {
      uint64_t r = mw_rng_next();
      size_t k = n - i < 8 ? n - i : 8;
      memcpy(out + i, &r, k);
    }
  } while (n >= 8 && mw_allzero(out, n));
}

int64_t mw_ffi_trace_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int mw_ffi_trace_sampled(const uint8_t *trace_id, double fraction) {
  if (fraction >= 1) return 1;
  if (!(fraction > 0)) return 0;
  uint64_t bound = (uint64_t)(fraction * 9223372036854775808.0); /* 2^63 */
  uint64_t x = 0;
  for (int i = 8; i < 16; i++)
    x = (x << 8) | trace_id[i];
  return (x >> 1) < bound;
}
