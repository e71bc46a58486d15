/* remote/encode.c: Remote-Write 1.0 requests (see remote/encode.h). What a request holds is
 * kept in pools that live as long as the encoder: each series' labels
 * written as their Label fields, tags and lengths included, into one byte
 * buffer (strs) as they are added (one pass over the label set, no label
 * array; finish copies the block), samples, exemplars and metadata in
 * arrays. Each TimeSeries' (and
 * Exemplar's, MetricMetadata's) protobuf size is counted as it is added, so
 * finish knows the request's size, sizes its buffer exactly and writes
 * tags, lengths and payloads in one pass: no messages built, no generic walk.
 * protobuf-c still decodes (mw_rwenc_decode) and packs what
 * mw_rwenc_drop_old keeps of a decoded request. */
#include "remote/encode.h"
#include "base/err.h"

#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/grow.h"
#include "base/labels.h"
#include "base/symtab.h"
#include "remote.pb-c.h"

typedef struct {
  int64_t ts;
  double value;
} mw_rw_sample_t;

typedef struct {
  size_t lab, lab_len;      /* its Label fields, written: e->strs[lab, lab + lab_len) */
  size_t sample0, nsamples; /* range in e->samples */
  size_t ex0, nex;          /* range in e->ex */
  size_t h0, nh;            /* range in e->hist */
  int h_unsorted;           /* its histograms were not added in timestamp order */
  size_t size;              /* bytes of the TimeSeries message */
} mw_rw_series_t;

/* A histogram sample: its Histogram message, written, at e->hbuf[off, off + len). */
typedef struct {
  int64_t ts;
  size_t off, len;
} mw_rw_hist_t;

typedef struct {
  size_t lab, lab_len; /* its Label fields, written, in e->strs */
  int64_t ts;
  double value;
  size_t size; /* bytes of the Exemplar message */
} mw_rw_ex_t;

typedef struct {
  int type;
  size_t family, help, unit; /* offsets in e->strs */
  size_t family_len, help_len, unit_len;
  size_t size; /* bytes of the MetricMetadata message */
} mw_rw_meta_t;

struct mw_rwenc {
  char *strs; /* Label fields of series and exemplars, written; metadata strings */
  size_t strs_len, strs_cap;
  mw_rw_sample_t *samples;
  size_t nsamples, samples_cap;
  mw_rw_sample_t *sort_tmp;
  size_t sort_cap;
  mw_rw_series_t *series;
  size_t nseries, series_cap;
  mw_rw_ex_t *ex; /* exemplars: labels in labels too */
  size_t nex, ex_cap;
  mw_rw_meta_t *meta;
  size_t nmeta, meta_cap;
  mw_rw_hist_t *hist; /* histograms: their messages in hbuf */
  size_t nhist, hist_cap;
  uint8_t *hbuf;
  size_t hbuf_len, hbuf_cap;
  /* mw_rwenc_drop_old's view of a decoded request */
  Prometheus__Sample **sample_ptrs;
  size_t sample_ptrs_cap;
  Prometheus__TimeSeries *ts_msgs;
  Prometheus__TimeSeries **ts_ptrs;
  size_t ts_cap;
  Prometheus__Exemplar *ex_msgs;
  Prometheus__Exemplar **ex_ptrs;
  size_t ex_msgs_cap;
  Prometheus__Histogram **h_ptrs;
  size_t h_ptrs_cap;
  uint8_t *pb; /* the protobuf */
  size_t pb_cap;
  char *out; /* snappy */
  size_t out_cap;
  /* external labels: a copy of the encoded set, split */
  uint8_t *ext_enc;
  mw_label_t *ext;
  size_t next;
  uint8_t *text; /* a stored set's text, when external labels are merged */
  size_t text_cap;
};

/* --- the protobuf wire format -------------------------------------------- */

/* A field's tag, field << 3 | wire type (0 varint, 1 fixed 64-bit, 2 length
 * and bytes): one byte, as every field number here is below 16. */
#define MW_RW_TAG(field, wire) ((uint8_t)((field) << 3 | (wire)))
_Static_assert((MW_RWENC_WRITE_REQUEST_TIMESERIES | MW_RWENC_WRITE_REQUEST_METADATA |
                MW_RWENC_TIME_SERIES_LABELS | MW_RWENC_TIME_SERIES_SAMPLES |
                MW_RWENC_TIME_SERIES_EXEMPLARS | MW_RWENC_LABEL_NAME | MW_RWENC_LABEL_VALUE |
                MW_RWENC_SAMPLE_VALUE | MW_RWENC_SAMPLE_TIMESTAMP | MW_RWENC_EXEMPLAR_LABELS |
                MW_RWENC_EXEMPLAR_VALUE | MW_RWENC_EXEMPLAR_TIMESTAMP | MW_RWENC_METADATA_TYPE |
                MW_RWENC_METADATA_FAMILY_NAME | MW_RWENC_METADATA_HELP | MW_RWENC_METADATA_UNIT) <
                   16,
               "a field number of 16 or more takes a two-byte tag");

/* Bytes of v as a varint (an int64 or int32 is sent as its 64-bit two's
 * complement: a negative one takes 10). */
static inline size_t mw_rw_vlen(uint64_t v) {
  return 1 + (size_t)(63 - __builtin_clzll(v | 1)) / 7;
}

static inline uint8_t *mw_rw_varint(uint8_t *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  return p;
}

/* Bytes of a length-delimited field (tag, length, n bytes). */
static inline size_t mw_rw_ldlen(size_t n) { return 1 + mw_rw_vlen(n) + n; }

/* Writes a length-delimited field's tag and length; its n bytes follow. */
static inline uint8_t *mw_rw_ld(uint8_t *p, uint8_t tag, size_t n) {
  *p++ = tag;
  return mw_rw_varint(p, n);
}

/* A bytes or string field, left out when empty (proto3, as protobuf-c). */
static inline size_t mw_rw_bytes_len(size_t n) { return n ? mw_rw_ldlen(n) : 0; }

static inline uint8_t *mw_rw_put_bytes(uint8_t *p, uint8_t tag, const void *s, size_t n) {
  if (!n) return p;
  p = mw_rw_ld(p, tag, n);
  memcpy(p, s, n);
  return p + n;
}

/* A double field and an int64 field (Sample's and Exemplar's value and
 * timestamp), each left out when 0. protobuf-c 1.4 tests a double with
 * == 0, so -0.0 is left out too (Go's encoder would send it); NaN is sent. */
static inline size_t mw_rw_scalars_len(double v, int64_t ts) {
  return (v != 0 ? 9 : 0) + (ts ? 1 + mw_rw_vlen((uint64_t)ts) : 0);
}

static inline uint8_t *mw_rw_put_scalars(uint8_t *p, uint8_t vtag, uint8_t tstag, double v,
                                         int64_t ts) {
  if (v != 0) {
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    *p++ = vtag;
    for (int i = 0; i < 8; i++) /* fixed64: little-endian */
      p[i] = (uint8_t)(b >> (8 * i));
    p += 8;
  }
  if (ts) {
    *p++ = tstag;
    p = mw_rw_varint(p, (uint64_t)ts);
  }
  return p;
}

/* Most bytes a Label field (tag, length, then the name and value fields)
 * takes: three tags and three lengths of at most 5 bytes. */
#define MW_RW_LABEL_MAX(l) (18 + (size_t)(l)->name_len + (size_t)(l)->value_len)

/* Writes label l as a Label field with tag (TimeSeries.labels and
 * Exemplar.labels) at p; returns the end. */
static inline uint8_t *mw_rw_put_label(uint8_t *p, uint8_t tag, const mw_label_t *l) {
  p = mw_rw_ld(p, tag, mw_rw_bytes_len(l->name_len) + mw_rw_bytes_len(l->value_len));
  p = mw_rw_put_bytes(p, MW_RW_TAG(MW_RWENC_LABEL_NAME, 2), l->name, l->name_len);
  return mw_rw_put_bytes(p, MW_RW_TAG(MW_RWENC_LABEL_VALUE, 2), l->value, l->value_len);
}

/* --- building a request -------------------------------------------------- */

/* Grows *p (elements of size) to hold need elements. 0, -1 on OOM. */
/* Grows two parallel arrays that share *cap to hold need elements. On
 * failure *cap is unchanged and both arrays still hold *cap elements. */
static int mw_rw_grow2(void **a, size_t asize, void **b, size_t bsize, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 64;
  while (c < need) {
    if (c > SIZE_MAX / 2 / 64) return -1;
    c *= 2;
  }
  void *p = realloc(*a, c * asize);
  if (!p) return -1;
  *a = p;
  p = realloc(*b, c * bsize);
  if (!p) return -1;
  *b = p;
  *cap = c;
  return 0;
}

mw_rwenc_t *mw_rwenc_new(void) { return calloc(1, sizeof(mw_rwenc_t)); }

void mw_rwenc_free(mw_rwenc_t *e) {
  if (!e) return;
  free(e->strs);
  free(e->text);
  free(e->samples);
  free(e->sort_tmp);
  free(e->series);
  free(e->meta);
  free(e->sample_ptrs);
  free(e->ts_msgs);
  free(e->ts_ptrs);
  free(e->ex);
  free(e->ex_msgs);
  free(e->ex_ptrs);
  free(e->hist);
  free(e->hbuf);
  free(e->h_ptrs);
  free(e->pb);
  free(e->out);
  free(e->ext_enc);
  free(e->ext);
  free(e);
}

int mw_rwenc_set_external_labels(mw_rwenc_t *e, const uint8_t *enc, size_t len, char *err,
                                 size_t errlen) {
  uint8_t *copy = NULL;
  mw_label_t *ls = NULL;
  size_t n = 0, cap = 0, pos = 0;
  mw_label_t l;
  int r;
  if (len) {
    copy = malloc(len);
    if (!copy) goto oom;
    memcpy(copy, enc, len);
  }
  while ((r = mw_labels_next(copy, len, &pos, &l)) == 1) {
    if (l.value_len == 0 || !mw_labels_valid_utf8_name(l.name, l.name_len)) {
      mw_seterr(err, errlen, "invalid external label \"%.*s\"", (int)l.name_len, l.name);
      goto fail;
    }
    if (n > 0) {
      const mw_label_t *p = &ls[n - 1];
      size_t m = p->name_len < l.name_len ? p->name_len : l.name_len;
      int c = memcmp(p->name, l.name, m);
      if (c > 0 || (c == 0 && p->name_len >= l.name_len)) {
        mw_seterr(err, errlen, "external labels not sorted and unique at \"%.*s\"", (int)l.name_len,
                  l.name);
        goto fail;
      }
    }
    if (mw_grow((void **)&ls, &cap, n + 1, sizeof *ls) != 0) goto oom;
    ls[n++] = l;
  }
  if (r < 0) {
    mw_seterr(err, errlen, "malformed external label set");
    goto fail;
  }
  free(e->ext_enc);
  free(e->ext);
  e->ext_enc = copy;
  e->ext = ls;
  e->next = n;
  return 0;
oom:
  mw_oom(err, errlen);
fail:
  free(copy);
  free(ls);
  return -1;
}

void mw_rwenc_reset(mw_rwenc_t *e) {
  e->strs_len = 0;
  e->nsamples = 0;
  e->nseries = 0;
  e->nmeta = 0;
  e->nex = 0;
  e->nhist = 0;
  e->hbuf_len = 0;
}

size_t mw_rwenc_series(const mw_rwenc_t *e) { return e->nseries; }

size_t mw_rwenc_samples(const mw_rwenc_t *e) { return e->nsamples; }

size_t mw_rwenc_exemplars(const mw_rwenc_t *e) { return e->nex; }

size_t mw_rwenc_histograms(const mw_rwenc_t *e) { return e->nhist; }

/* Copies s[0..n) into strs (no NUL: label names and values are bytes
 * fields, and metadata strings are written with their length); *off
 * receives its offset. */
static int mw_rw_bytes(mw_rwenc_t *e, const void *s, size_t n, size_t *off) {
  if (mw_grow((void **)&e->strs, &e->strs_cap, e->strs_len + n + 1, 1) != 0) return -1;
  *off = e->strs_len;
  if (n) memcpy(e->strs + e->strs_len, s, n);
  e->strs_len += n;
  return 0;
}

static int mw_rw_name_cmp(const mw_label_t *a, const mw_label_t *b) {
  size_t m = a->name_len < b->name_len ? a->name_len : b->name_len;
  int c = memcmp(a->name, b->name, m);
  if (c) return c;
  return (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

/* Copies src[0..) to dst up to the first 0xFF separator, 8 bytes at a time
 * while 8 are left in src[0..avail); returns the bytes before the separator
 * (avail if there is none). dst must have 7 bytes of room past them: whole
 * words are written. */
static inline size_t mw_rw_copy_field(uint8_t *dst, const uint8_t *src, size_t avail) {
  size_t i = 0;
  for (; i + 8 <= avail; i += 8) {
    uint64_t w;
    memcpy(&w, src + i, 8);
    memcpy(dst + i, &w, 8);
    /* a byte of w is 0xFF where ~w has a zero byte; the lowest flag is exact */
    uint64_t ff = (~w - 0x0101010101010101ULL) & w & 0x8080808080808080ULL;
    if (ff) return i + ((size_t)__builtin_ctzll(ff) >> 3);
  }
  for (; i < avail && src[i] != 0xff; i++)
    dst[i] = src[i];
  return i;
}

/* mw_rw_put_set without external labels to merge, which is the hot case: each
 * name and value is read and copied once (the separators found as it is
 * copied), behind room for the tags and one-byte lengths filled in after; a
 * label whose lengths take more than one byte, or with an empty name or
 * value, is written again by mw_rw_put_label. The caller reserved
 * MW_RW_SET_MAX(len) bytes at p. Returns the end, NULL if enc is malformed. */
#define MW_RW_SET_MAX(len) (10 * (size_t)(len) + 32)
static uint8_t *mw_rw_put_plain(uint8_t *p, uint8_t tag, const uint8_t *enc, size_t len) {
  size_t pos = 0;
  while (pos < len) {
    size_t nl = mw_rw_copy_field(p + 4, enc + pos, len - pos);
    if (pos + nl == len) return NULL;
    size_t vpos = pos + nl + 1;
    size_t vl = mw_rw_copy_field(p + 6 + nl, enc + vpos, len - vpos);
    if (vpos + vl == len) return NULL;
    if (nl && vl && 4 + nl + vl < 128) {
      p[0] = tag;
      p[1] = (uint8_t)(4 + nl + vl);
      p[2] = MW_RW_TAG(MW_RWENC_LABEL_NAME, 2);
      p[3] = (uint8_t)nl;
      p[4 + nl] = MW_RW_TAG(MW_RWENC_LABEL_VALUE, 2);
      p[5 + nl] = (uint8_t)vl;
      p += 6 + nl + vl;
    } else {
      mw_label_t l = {.name = (const char *)enc + pos,
                      .name_len = (uint32_t)nl,
                      .value = (const char *)enc + vpos,
                      .value_len = (uint32_t)vl};
      p = mw_rw_put_label(p, tag, &l);
    }
    pos = vpos + vl + 1;
  }
  return p;
}

/* Copies symbol x's bytes to dst in whole 8-byte words (base/symtab.h: its
 * bytes are readable up to its length rounded up to 8; dst has 8 bytes of room
 * past them). */
static inline void mw_rw_copy_sym(uint8_t *dst, const mw_sym_t *x) {
  for (size_t i = 0; i < x->len; i += 8) {
    uint64_t w;
    memcpy(&w, x->s + i, 8);
    memcpy(dst + i, &w, 8);
  }
}

/* mw_rw_put_plain for a stored set (base/symtab.h; st[0..len)), at the end of
 * strs: the names and values copied from the symbols. 0; -1 on a malformed set
 * (strs_len unchanged), -2 on OOM. */
static int mw_rw_put_syms(mw_rwenc_t *e, uint8_t tag, const uint8_t *st, size_t len) {
  size_t at = e->strs_len;
  for (const uint8_t *q = st, *end = st + len; q < end;) {
    const mw_sym_t *nm = mw_syms_next(&q), *v = q < end ? mw_syms_next(&q) : NULL;
    if (!v) return -1;
    size_t nl = nm->len, vl = v->len, need = 18 + nl + vl + 16;
    if (e->strs_cap - at < need && mw_grow((void **)&e->strs, &e->strs_cap, at + need, 1) != 0)
      return -2;
    uint8_t *p = (uint8_t *)e->strs + at;
    if (nl && vl && 4 + nl + vl < 128) {
      p[0] = tag;
      p[1] = (uint8_t)(4 + nl + vl);
      p[2] = MW_RW_TAG(MW_RWENC_LABEL_NAME, 2);
      p[3] = (uint8_t)nl;
      mw_rw_copy_sym(p + 4, nm);
      p[4 + nl] = MW_RW_TAG(MW_RWENC_LABEL_VALUE, 2);
      p[5 + nl] = (uint8_t)vl;
      mw_rw_copy_sym(p + 6 + nl, v);
      p += 6 + nl + vl;
    } else {
      mw_label_t l = {.name = nm->s, .name_len = nm->len, .value = v->s, .value_len = v->len};
      p = mw_rw_put_label(p, tag, &l);
    }
    at = (size_t)(p - (uint8_t *)e->strs);
  }
  e->strs_len = at;
  return 0;
}

/* Writes the labels of an encoded set (len bytes; stored: a stored set of
 * base/symtab.h) as Label fields with tag at the end of strs, merged with the
 * external labels if ext (the set's own value wins): *off, *n. 0; -1 on a
 * malformed set (nothing kept), -2 on OOM. */
static int mw_rw_put_set(mw_rwenc_t *e, uint8_t tag, const uint8_t *enc, size_t len, int ext,
                         int stored, size_t *off, size_t *n) {
  size_t start = e->strs_len, pos = 0, j = 0, next = ext ? e->next : 0;
  if (stored && !next) {
    int r = mw_rw_put_syms(e, tag, enc, len);
    if (r != 0) return r;
    *off = start;
    *n = e->strs_len - start;
    return 0;
  }
  if (stored) { /* merged with the external labels: as text */
    size_t tl = mw_syms_text_len(enc, len);
    if (mw_grow((void **)&e->text, &e->text_cap, tl ? tl : 1, 1) != 0) return -2;
    len = mw_syms_text(enc, len, e->text);
    enc = e->text;
  }
  if (!next) {
    if (mw_grow((void **)&e->strs, &e->strs_cap, start + MW_RW_SET_MAX(len), 1) != 0) return -2;
    uint8_t *b = (uint8_t *)e->strs, *end = mw_rw_put_plain(b + start, tag, enc, len);
    if (!end) return -1;
    e->strs_len = (size_t)(end - b);
    *off = start;
    *n = e->strs_len - start;
    return 0;
  }
  mw_label_t l;
  int r = mw_labels_next(enc, len, &pos, &l);
  while (r == 1 || j < next) {
    const mw_label_t *w = &l;
    if (r != 1) {
      w = &e->ext[j++];
    } else if (j < next) {
      int c = mw_rw_name_cmp(&l, &e->ext[j]);
      if (c > 0) w = &e->ext[j++];
      if (c == 0) j++;
    }
    if (mw_grow((void **)&e->strs, &e->strs_cap, e->strs_len + MW_RW_LABEL_MAX(w), 1) != 0)
      return -2;
    uint8_t *b = (uint8_t *)e->strs;
    e->strs_len = (size_t)(mw_rw_put_label(b + e->strs_len, tag, w) - b);
    if (w == &l) r = mw_labels_next(enc, len, &pos, &l);
  }
  if (r < 0) {
    e->strs_len = start;
    return -1;
  }
  *off = start;
  *n = e->strs_len - start;
  return 0;
}

/* Stable merge sort of s[0..n) by timestamp (rarely needed: WAL order is
 * append order, which is time order per series unless a target went back). */
static int mw_rw_sort(mw_rwenc_t *e, mw_rw_sample_t *s, size_t n) {
  if (mw_grow((void **)&e->sort_tmp, &e->sort_cap, n, sizeof *s) != 0) return -1;
  mw_rw_sample_t *a = s, *b = e->sort_tmp;
  for (size_t w = 1; w < n; w *= 2) {
    for (size_t lo = 0; lo < n; lo += 2 * w) {
      size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
      size_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi)
        b[k++] = a[j].ts < a[i].ts ? a[j++] : a[i++];
      while (i < mid)
        b[k++] = a[i++];
      while (j < hi)
        b[k++] = a[j++];
    }
    mw_rw_sample_t *t = a;
    a = b;
    b = t;
  }
  if (a != s) memcpy(s, a, n * sizeof *s);
  return 0;
}

static int mw_rw_add_series(mw_rwenc_t *e, const uint8_t *labels, size_t len, int stored,
                            const int64_t *ts, const double *values, size_t n, char *err,
                            size_t errlen) {
  if (mw_grow((void **)&e->series, &e->series_cap, e->nseries + 1, sizeof *e->series) != 0)
    goto oom;
  mw_rw_series_t *s = &e->series[e->nseries];
  s->sample0 = e->nsamples;
  s->ex0 = e->nex;
  s->nex = 0;
  s->h0 = e->nhist;
  s->nh = 0;
  s->h_unsorted = 0;
  int r = mw_rw_put_set(e, MW_RW_TAG(MW_RWENC_TIME_SERIES_LABELS, 2), labels, len, 1, stored,
                        &s->lab, &s->lab_len);
  if (r == -2) goto oom;
  if (r < 0) {
    mw_seterr(err, errlen, "malformed label set");
    return -1;
  }
  s->size = s->lab_len;
  if (mw_grow((void **)&e->samples, &e->samples_cap, e->nsamples + n + 1, sizeof *e->samples) != 0)
    goto oom;
  mw_rw_sample_t *out = e->samples + e->nsamples;
  int sorted = 1;
  for (size_t i = 0; i < n; i++) {
    out[i] = (mw_rw_sample_t){.ts = ts[i], .value = values[i]};
    s->size += 2 + mw_rw_scalars_len(values[i], ts[i]); /* tag, length < 128 */
    if (i && ts[i] < ts[i - 1]) sorted = 0;
  }
  if (!sorted && mw_rw_sort(e, out, n) != 0) goto oom;
  e->nsamples += n;
  s->nsamples = n;
  e->nseries++;
  return 0;
oom:
  mw_oom(err, errlen);
  return -1;
}

int mw_rwenc_add_series(mw_rwenc_t *e, const uint8_t *labels, size_t len, const int64_t *ts,
                        const double *values, size_t n, char *err, size_t errlen) {
  return mw_rw_add_series(e, labels, len, 0, ts, values, n, err, errlen);
}

int mw_rwenc_add_series_stored(mw_rwenc_t *e, const uint8_t *st, size_t len, const int64_t *ts,
                               const double *values, size_t n, char *err, size_t errlen) {
  return mw_rw_add_series(e, st, len, 1, ts, values, n, err, errlen);
}

int mw_rwenc_add_exemplar(mw_rwenc_t *e, const uint8_t *labels, size_t len, int64_t ts,
                          double value, char *err, size_t errlen) {
  if (!e->nseries) {
    mw_seterr(err, errlen, "exemplar without a series");
    return -1;
  }
  if (mw_grow((void **)&e->ex, &e->ex_cap, e->nex + 1, sizeof *e->ex) != 0) goto oom;
  size_t lab, lab_len;
  int r =
      mw_rw_put_set(e, MW_RW_TAG(MW_RWENC_EXEMPLAR_LABELS, 2), labels, len, 0, 0, &lab, &lab_len);
  if (r == -2) goto oom;
  if (r < 0) {
    mw_seterr(err, errlen, "malformed exemplar label set");
    return -1;
  }
  size_t size = lab_len + mw_rw_scalars_len(value, ts);
  e->ex[e->nex++] =
      (mw_rw_ex_t){.lab = lab, .lab_len = lab_len, .ts = ts, .value = value, .size = size};
  e->series[e->nseries - 1].nex++;
  e->series[e->nseries - 1].size += mw_rw_ldlen(size);
  return 0;
oom:
  mw_oom(err, errlen);
  return -1;
}

/* --- native histograms ---------------------------------------------------- */

static inline uint64_t mw_rw_zig64(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline uint32_t mw_rw_zig32(int32_t v) { return ((uint32_t)v << 1) ^ (uint32_t)(v >> 31); }

/* Bytes of a BucketSpan message's fields. */
static inline size_t mw_rw_span_len(const mw_hspan_t *s) {
  return (s->offset ? 1 + mw_rw_vlen(mw_rw_zig32(s->offset)) : 0) +
         (s->length ? 1 + mw_rw_vlen(s->length) : 0);
}

static uint8_t *mw_rw_put_spans(uint8_t *p, uint8_t tag, const mw_hspan_t *sp, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    p = mw_rw_ld(p, tag, mw_rw_span_len(&sp[i]));
    if (sp[i].offset) {
      *p++ = MW_RW_TAG(MW_RWENC_BUCKET_SPAN_OFFSET, 0);
      p = mw_rw_varint(p, mw_rw_zig32(sp[i].offset));
    }
    if (sp[i].length) {
      *p++ = MW_RW_TAG(MW_RWENC_BUCKET_SPAN_LENGTH, 0);
      p = mw_rw_varint(p, sp[i].length);
    }
  }
  return p;
}

/* A packed repeated sint64 field (left out when empty). */
static uint8_t *mw_rw_put_sint64s(uint8_t *p, uint8_t tag, const int64_t *v, uint32_t n) {
  if (!n) return p;
  size_t len = 0;
  for (uint32_t i = 0; i < n; i++)
    len += mw_rw_vlen(mw_rw_zig64(v[i]));
  p = mw_rw_ld(p, tag, len);
  for (uint32_t i = 0; i < n; i++)
    p = mw_rw_varint(p, mw_rw_zig64(v[i]));
  return p;
}

static uint8_t *mw_rw_put_fixed64(uint8_t *p, double v) {
  uint64_t b;
  memcpy(&b, &v, sizeof b);
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(b >> (8 * i));
  return p + 8;
}

/* A packed repeated double field (left out when empty); tag: one or two bytes. */
static uint8_t *mw_rw_put_doubles(uint8_t *p, const uint8_t *tag, size_t tag_len, const double *v,
                                  uint32_t n) {
  if (!n) return p;
  memcpy(p, tag, tag_len);
  p = mw_rw_varint(p + tag_len, (uint64_t)n * 8);
  for (uint32_t i = 0; i < n; i++)
    p = mw_rw_put_fixed64(p, v[i]);
  return p;
}

/* Most bytes a Histogram message of h takes. */
static size_t mw_rw_hist_max(const mw_histogram_t *h) {
  return 128 + 16 * ((size_t)h->n_pos_spans + h->n_neg_spans) + 10 * ((size_t)h->n_pos + h->n_neg) +
         8 * (size_t)h->n_custom;
}

/* Writes h's Histogram message fields (timestamp ts) at p, in field-number order as
 * protobuf-c packs them; returns the end. */
static uint8_t *mw_rw_put_hist(uint8_t *p, int64_t ts, const mw_histogram_t *h) {
  if (h->is_float) {
    *p++ = MW_RW_TAG(MW_RWENC_HISTOGRAM_COUNT_FLOAT, 1);
    p = mw_rw_put_fixed64(p, h->fcount);
  } else {
    *p++ = MW_RW_TAG(MW_RWENC_HISTOGRAM_COUNT_INT, 0);
    p = mw_rw_varint(p, h->count);
  }
  if (h->sum != 0) {
    *p++ = MW_RW_TAG(MW_RWENC_HISTOGRAM_SUM, 1);
    p = mw_rw_put_fixed64(p, h->sum);
  }
  if (h->schema) {
    *p++ = MW_RW_TAG(MW_RWENC_HISTOGRAM_SCHEMA, 0);
    p = mw_rw_varint(p, mw_rw_zig32(h->schema));
  }
  if (h->zero_threshold != 0) {
    *p++ = MW_RW_TAG(MW_RWENC_HISTOGRAM_ZERO_THRESHOLD, 1);
    p = mw_rw_put_fixed64(p, h->zero_threshold);
  }
  if (h->is_float) {
    *p++ = MW_RW_TAG(MW_RWENC_HISTOGRAM_ZERO_COUNT_FLOAT, 1);
    p = mw_rw_put_fixed64(p, h->fzero_count);
  } else {
    *p++ = MW_RW_TAG(MW_RWENC_HISTOGRAM_ZERO_COUNT_INT, 0);
    p = mw_rw_varint(p, h->zero_count);
  }
  p = mw_rw_put_spans(p, MW_RW_TAG(MW_RWENC_HISTOGRAM_NEGATIVE_SPANS, 2), h->neg_spans,
                      h->n_neg_spans);
  const uint8_t nc_tag = MW_RW_TAG(MW_RWENC_HISTOGRAM_NEGATIVE_COUNTS, 2),
                pc_tag = MW_RW_TAG(MW_RWENC_HISTOGRAM_POSITIVE_COUNTS, 2);
  if (h->is_float)
    p = mw_rw_put_doubles(p, &nc_tag, 1, h->neg_counts, h->n_neg);
  else
    p = mw_rw_put_sint64s(p, MW_RW_TAG(MW_RWENC_HISTOGRAM_NEGATIVE_DELTAS, 2), h->neg_deltas,
                          h->n_neg);
  p = mw_rw_put_spans(p, MW_RW_TAG(MW_RWENC_HISTOGRAM_POSITIVE_SPANS, 2), h->pos_spans,
                      h->n_pos_spans);
  if (h->is_float)
    p = mw_rw_put_doubles(p, &pc_tag, 1, h->pos_counts, h->n_pos);
  else
    p = mw_rw_put_sint64s(p, MW_RW_TAG(MW_RWENC_HISTOGRAM_POSITIVE_DELTAS, 2), h->pos_deltas,
                          h->n_pos);
  if (h->reset_hint) {
    *p++ = MW_RW_TAG(MW_RWENC_HISTOGRAM_RESET_HINT, 0);
    p = mw_rw_varint(p, h->reset_hint);
  }
  if (ts) {
    *p++ = MW_RW_TAG(MW_RWENC_HISTOGRAM_TIMESTAMP, 0);
    p = mw_rw_varint(p, (uint64_t)ts);
  }
  /* field 16: a two-byte tag (16 << 3 | 2 = 130 as a varint) */
  static const uint8_t cv_tag[2] = {
      0x80 | (uint8_t)((MW_RWENC_HISTOGRAM_CUSTOM_VALUES << 3 | 2) & 0x7f),
      (uint8_t)((MW_RWENC_HISTOGRAM_CUSTOM_VALUES << 3 | 2) >> 7)};
  return mw_rw_put_doubles(p, cv_tag, 2, h->custom_values, h->n_custom);
}

int mw_rwenc_add_histogram(mw_rwenc_t *e, int64_t ts, const mw_histogram_t *h, char *err,
                           size_t errlen) {
  if (!e->nseries) {
    mw_seterr(err, errlen, "histogram without a series");
    return -1;
  }
  if (mw_grow((void **)&e->hist, &e->hist_cap, e->nhist + 1, sizeof *e->hist) != 0 ||
      mw_grow((void **)&e->hbuf, &e->hbuf_cap, e->hbuf_len + mw_rw_hist_max(h), 1) != 0) {
    mw_oom(err, errlen);
    return -1;
  }
  uint8_t *start = e->hbuf + e->hbuf_len, *end = mw_rw_put_hist(start, ts, h);
  size_t len = (size_t)(end - start);
  mw_rw_series_t *s = &e->series[e->nseries - 1];
  if (s->nh && ts < e->hist[e->nhist - 1].ts) s->h_unsorted = 1;
  e->hist[e->nhist++] = (mw_rw_hist_t){.ts = ts, .off = e->hbuf_len, .len = len};
  e->hbuf_len += len;
  s->nh++;
  s->size += mw_rw_ldlen(len);
  return 0;
}

/* Sorts a series' histograms stably by timestamp (insertion sort: rarely needed). */
static void mw_rw_sort_hist(mw_rw_hist_t *h, size_t n) {
  for (size_t i = 1; i < n; i++) {
    mw_rw_hist_t x = h[i];
    size_t k = i;
    while (k > 0 && h[k - 1].ts > x.ts) {
      h[k] = h[k - 1];
      k--;
    }
    h[k] = x;
  }
}

/* The length of s[0..n) up to its first NUL, if any. */
static size_t mw_rw_cstrlen(const char *s, size_t n) {
  const char *z = n ? memchr(s, '\0', n) : NULL;
  return z ? (size_t)(z - s) : n;
}

int mw_rwenc_add_metadata(mw_rwenc_t *e, int type, const char *family, size_t family_len,
                          const char *help, size_t help_len, const char *unit, size_t unit_len,
                          char *err, size_t errlen) {
  if (mw_grow((void **)&e->meta, &e->meta_cap, e->nmeta + 1, sizeof *e->meta) != 0) goto oom;
  mw_rw_meta_t *m = &e->meta[e->nmeta];
  m->type = type;
  m->family_len = mw_rw_cstrlen(family, family_len);
  m->help_len = mw_rw_cstrlen(help, help_len);
  m->unit_len = mw_rw_cstrlen(unit, unit_len);
  if (mw_rw_bytes(e, family, m->family_len, &m->family) != 0 ||
      mw_rw_bytes(e, help, m->help_len, &m->help) != 0 ||
      mw_rw_bytes(e, unit, m->unit_len, &m->unit) != 0)
    goto oom;
  /* an enum is an int32 varint: a negative one is sign-extended to 10 bytes */
  m->size = (type ? 1 + mw_rw_vlen((uint64_t)(int64_t)type) : 0) + mw_rw_bytes_len(m->family_len) +
            mw_rw_bytes_len(m->help_len) + mw_rw_bytes_len(m->unit_len);
  e->nmeta++;
  return 0;
oom:
  mw_oom(err, errlen);
  return -1;
}

/* Compresses e->pb[0..raw) into e->out: *out, *out_len, and *raw_len (if
 * not NULL) raw. 0, or -1 with err. */
static int mw_rw_compress(mw_rwenc_t *e, size_t raw, const uint8_t **out, size_t *out_len,
                          size_t *raw_len, char *err, size_t errlen) {
  if (mw_grow((void **)&e->out, &e->out_cap, snappy_max_compressed_length(raw), 1) != 0) {
    mw_oom(err, errlen);
    return -1;
  }
  size_t clen = e->out_cap;
  if (snappy_compress((const char *)e->pb, raw, e->out, &clen) != SNAPPY_OK) {
    mw_seterr(err, errlen, "snappy compression failed");
    return -1;
  }
  *out = (const uint8_t *)e->out;
  *out_len = clen;
  if (raw_len) *raw_len = raw;
  return 0;
}

int mw_rwenc_finish(mw_rwenc_t *e, const uint8_t **out, size_t *out_len, size_t *raw_len, char *err,
                    size_t errlen) {
  size_t raw = 0;
  for (size_t i = 0; i < e->nseries; i++)
    raw += mw_rw_ldlen(e->series[i].size);
  for (size_t i = 0; i < e->nmeta; i++)
    raw += mw_rw_ldlen(e->meta[i].size);
  if (mw_grow((void **)&e->pb, &e->pb_cap, raw ? raw : 1, 1) != 0) {
    mw_oom(err, errlen);
    return -1;
  }
  /* Fields in field-number order, as protobuf-c packs them: a series'
   * labels, then its samples, then its exemplars; all series, then all
   * metadata. */
  uint8_t *p = e->pb;
  for (size_t i = 0; i < e->nseries; i++) {
    const mw_rw_series_t *s = &e->series[i];
    p = mw_rw_ld(p, MW_RW_TAG(MW_RWENC_WRITE_REQUEST_TIMESERIES, 2), s->size);
    memcpy(p, e->strs + s->lab, s->lab_len);
    p += s->lab_len;
    for (size_t j = s->sample0; j < s->sample0 + s->nsamples; j++) {
      /* a Sample is at most 9 + 11 bytes: a one-byte length, filled in after */
      uint8_t *q = p;
      p = mw_rw_put_scalars(p + 2, MW_RW_TAG(MW_RWENC_SAMPLE_VALUE, 1),
                            MW_RW_TAG(MW_RWENC_SAMPLE_TIMESTAMP, 0), e->samples[j].value,
                            e->samples[j].ts);
      q[0] = MW_RW_TAG(MW_RWENC_TIME_SERIES_SAMPLES, 2);
      q[1] = (uint8_t)(p - q - 2);
    }
    for (size_t j = s->ex0; j < s->ex0 + s->nex; j++) {
      const mw_rw_ex_t *x = &e->ex[j];
      p = mw_rw_ld(p, MW_RW_TAG(MW_RWENC_TIME_SERIES_EXEMPLARS, 2), x->size);
      memcpy(p, e->strs + x->lab, x->lab_len);
      p += x->lab_len;
      p = mw_rw_put_scalars(p, MW_RW_TAG(MW_RWENC_EXEMPLAR_VALUE, 1),
                            MW_RW_TAG(MW_RWENC_EXEMPLAR_TIMESTAMP, 0), x->value, x->ts);
    }
    if (s->h_unsorted) mw_rw_sort_hist(e->hist + s->h0, s->nh);
    for (size_t j = s->h0; j < s->h0 + s->nh; j++) {
      const mw_rw_hist_t *x = &e->hist[j];
      p = mw_rw_ld(p, MW_RW_TAG(MW_RWENC_TIME_SERIES_HISTOGRAMS, 2), x->len);
      memcpy(p, e->hbuf + x->off, x->len);
      p += x->len;
    }
  }
  for (size_t i = 0; i < e->nmeta; i++) {
    const mw_rw_meta_t *m = &e->meta[i];
    p = mw_rw_ld(p, MW_RW_TAG(MW_RWENC_WRITE_REQUEST_METADATA, 2), m->size);
    if (m->type) {
      *p++ = MW_RW_TAG(MW_RWENC_METADATA_TYPE, 0);
      p = mw_rw_varint(p, (uint64_t)(int64_t)m->type);
    }
    p = mw_rw_put_bytes(p, MW_RW_TAG(MW_RWENC_METADATA_FAMILY_NAME, 2), e->strs + m->family,
                        m->family_len);
    p = mw_rw_put_bytes(p, MW_RW_TAG(MW_RWENC_METADATA_HELP, 2), e->strs + m->help, m->help_len);
    p = mw_rw_put_bytes(p, MW_RW_TAG(MW_RWENC_METADATA_UNIT, 2), e->strs + m->unit, m->unit_len);
  }
  /* The sizes counted and the bytes written disagree: a bug (test_rwenc and
   * fuzz_rwenc check every size class); stop rather than send it. */
  if ((size_t)(p - e->pb) != raw) abort();
  return mw_rw_compress(e, raw, out, out_len, raw_len, err, errlen);
}

int mw_rwenc_drop_old(mw_rwenc_t *e, const uint8_t *buf, size_t len, int64_t min_ts,
                      const uint8_t **out, size_t *out_len, mw_rwenc_kept_t *k, char *err,
                      size_t errlen) {
  *out = NULL;
  *out_len = 0;
  memset(k, 0, sizeof *k);
  Prometheus__WriteRequest *req;
  if (mw_rwenc_decode(buf, len, &req, err, errlen) != 0) return -1;
  /* A view of req: copies of the series that keep something, pointing at
   * the kept samples and exemplars; req itself stays whole for its free. */
  size_t ns = 0, nx = 0, nh = 0;
  for (size_t i = 0; i < req->n_timeseries; i++) {
    ns += req->timeseries[i]->n_samples;
    nx += req->timeseries[i]->n_exemplars;
    nh += req->timeseries[i]->n_histograms;
  }
  if (mw_rw_grow2((void **)&e->ts_msgs, sizeof *e->ts_msgs, (void **)&e->ts_ptrs,
                  sizeof *e->ts_ptrs, &e->ts_cap, req->n_timeseries) != 0 ||
      mw_grow((void **)&e->sample_ptrs, &e->sample_ptrs_cap, ns, sizeof *e->sample_ptrs) != 0 ||
      mw_rw_grow2((void **)&e->ex_msgs, sizeof *e->ex_msgs, (void **)&e->ex_ptrs,
                  sizeof *e->ex_ptrs, &e->ex_msgs_cap, nx) != 0 ||
      mw_grow((void **)&e->h_ptrs, &e->h_ptrs_cap, nh, sizeof *e->h_ptrs) != 0) {
    mw_rwenc_decode_free(req);
    mw_oom(err, errlen);
    return -1;
  }
  size_t nt = 0, si = 0, xi = 0, hi_ = 0;
  int64_t lo = INT64_MAX, hi = INT64_MIN, xlo = INT64_MAX, xhi = INT64_MIN;
  for (size_t i = 0; i < req->n_timeseries; i++) {
    const Prometheus__TimeSeries *t = req->timeseries[i];
    size_t s0 = si, x0 = xi, h0 = hi_;
    for (size_t j = 0; j < t->n_samples; j++) {
      int64_t ts = t->samples[j]->timestamp;
      if (ts < min_ts) continue;
      e->sample_ptrs[si++] = t->samples[j];
      if (ts < lo) lo = ts;
      if (ts > hi) hi = ts;
    }
    for (size_t j = 0; j < t->n_exemplars; j++) {
      int64_t ts = t->exemplars[j]->timestamp;
      if (ts < min_ts) continue;
      e->ex_ptrs[xi++] = t->exemplars[j];
      if (ts < xlo) xlo = ts;
      if (ts > xhi) xhi = ts;
    }
    for (size_t j = 0; j < t->n_histograms; j++) {
      int64_t ts = t->histograms[j]->timestamp;
      if (ts < min_ts) continue;
      e->h_ptrs[hi_++] = t->histograms[j];
      if (ts < lo) lo = ts;
      if (ts > hi) hi = ts;
    }
    k->samples_dropped += (uint32_t)(t->n_samples - (si - s0));
    k->exemplars_dropped += (uint32_t)(t->n_exemplars - (xi - x0));
    k->histograms_dropped += (uint32_t)(t->n_histograms - (hi_ - h0));
    if (si == s0 && xi == x0 && hi_ == h0) continue;
    Prometheus__TimeSeries *v = &e->ts_msgs[nt];
    *v = *t;
    v->n_samples = si - s0;
    v->samples = si > s0 ? &e->sample_ptrs[s0] : NULL;
    v->n_exemplars = xi - x0;
    v->exemplars = xi > x0 ? &e->ex_ptrs[x0] : NULL;
    v->n_histograms = hi_ - h0;
    v->histograms = hi_ > h0 ? &e->h_ptrs[h0] : NULL;
    e->ts_ptrs[nt++] = v;
  }
  k->series = (uint32_t)nt;
  k->samples = (uint32_t)si;
  k->exemplars = (uint32_t)xi;
  k->histograms = (uint32_t)hi_;
  k->min_ts = si || hi_ ? lo : xi ? xlo : 0;
  k->max_ts = si || hi_ ? hi : xi ? xhi : 0;
  int rc = 0;
  if (nt || req->n_metadata) {
    Prometheus__WriteRequest view = *req;
    view.n_timeseries = nt;
    view.timeseries = nt ? e->ts_ptrs : NULL;
    size_t raw = prometheus__write_request__get_packed_size(&view);
    if (mw_grow((void **)&e->pb, &e->pb_cap, raw ? raw : 1, 1) != 0) {
      mw_oom(err, errlen);
      rc = -1;
    } else {
      raw = prometheus__write_request__pack(&view, e->pb);
      rc = mw_rw_compress(e, raw, out, out_len, &k->raw, err, errlen);
    }
  }
  mw_rwenc_decode_free(req);
  return rc;
}

int mw_rwenc_decode(const uint8_t *buf, size_t len, Prometheus__WriteRequest **out, char *err,
                    size_t errlen) {
  *out = NULL;
  size_t ulen;
  char *raw = NULL;
  if (snappy_uncompressed_length((const char *)buf, len, &ulen) != SNAPPY_OK) {
    mw_seterr(err, errlen, "invalid snappy block");
    return -1;
  }
  if (ulen > MW_RWENC_MAX_DECODED) {
    mw_seterr(err, errlen, "decoded request too large (%zu bytes)", ulen);
    return -1;
  }
  raw = malloc(ulen ? ulen : 1);
  if (!raw) {
    mw_oom(err, errlen);
    return -1;
  }
  size_t got = ulen;
  if (snappy_uncompress((const char *)buf, len, raw, &got) != SNAPPY_OK || got != ulen) {
    mw_seterr(err, errlen, "invalid snappy block");
    goto fail;
  }
  *out = prometheus__write_request__unpack(NULL, got, (const uint8_t *)raw);
  if (!*out) {
    mw_seterr(err, errlen, "invalid WriteRequest protobuf");
    goto fail;
  }
  free(raw);
  return 0;
fail:
  free(raw);
  return -1;
}

void mw_rwenc_decode_free(Prometheus__WriteRequest *req) {
  if (req) prometheus__write_request__free_unpacked(req, NULL);
}

/* Bytewise order, a prefix first (Go's string comparison). */
static int mw_rw_bytes_cmp(ProtobufCBinaryData a, ProtobufCBinaryData b) {
  size_t m = a.len < b.len ? a.len : b.len;
  int c = m ? memcmp(a.data, b.data, m) : 0;
  if (c) return c;
  return (a.len > b.len) - (a.len < b.len);
}

int mw_rwenc_check(const Prometheus__WriteRequest *req, char *err, size_t errlen) {
  for (size_t i = 0; i < req->n_timeseries; i++) {
    const Prometheus__TimeSeries *t = req->timeseries[i];
    int has_name = 0;
    for (size_t j = 0; j < t->n_labels; j++) {
      ProtobufCBinaryData name = t->labels[j]->name, value = t->labels[j]->value;
      if (!name.len || !value.len) {
        mw_seterr(err, errlen, "series %zu: empty label name or value", i);
        return -1;
      }
      if (name.len == 8 && memcmp(name.data, "__name__", 8) == 0) has_name = 1;
      if (j && mw_rw_bytes_cmp(t->labels[j - 1]->name, name) >= 0) {
        mw_seterr(err, errlen, "series %zu: labels not sorted and unique at \"%.*s\"", i,
                  (int)(name.len > 256 ? 256 : name.len), (const char *)name.data);
        return -1;
      }
    }
    if (!has_name) {
      mw_seterr(err, errlen, "series %zu: no __name__ label", i);
      return -1;
    }
    for (size_t j = 1; j < t->n_samples; j++)
      if (t->samples[j]->timestamp < t->samples[j - 1]->timestamp) {
        mw_seterr(err, errlen, "series %zu: samples out of order", i);
        return -1;
      }
  }
  return 0;
}

/* --- FFI: decoding, for test receivers ----------------------------------- */

struct mw_rwdec {
  Prometheus__WriteRequest *req;
};

int mw_ffi_rwdec_new(const uint8_t *buf, size_t len, mw_rwdec_t **out, char *err, size_t errlen) {
  *out = NULL;
  mw_rwdec_t *d = calloc(1, sizeof *d);
  if (!d) {
    mw_oom(err, errlen);
    return -1;
  }
  if (mw_rwenc_decode(buf, len, &d->req, err, errlen) != 0) {
    free(d);
    return -1;
  }
  *out = d;
  return 0;
}

void mw_ffi_rwdec_free(mw_rwdec_t *d) {
  if (!d) return;
  mw_rwenc_decode_free(d->req);
  free(d);
}

void mw_ffi_rwdec_counts(const mw_rwdec_t *d, size_t *series, size_t *samples, size_t *metadata) {
  size_t n = 0;
  for (size_t i = 0; i < d->req->n_timeseries; i++)
    n += d->req->timeseries[i]->n_samples;
  *series = d->req->n_timeseries;
  *samples = n;
  *metadata = d->req->n_metadata;
}

int mw_ffi_rwdec_metadata(const mw_rwdec_t *d, size_t i, int *type, const char **name,
                          const char **help, const char **unit) {
  if (i >= d->req->n_metadata) return -1;
  const Prometheus__MetricMetadata *m = d->req->metadata[i];
  *type = (int)m->type;
  *name = m->metric_family_name;
  *help = m->help;
  *unit = m->unit;
  return 0;
}

int mw_ffi_rwdec_series(const mw_rwdec_t *d, size_t i, size_t *nlabels, size_t *nsamples) {
  if (i >= d->req->n_timeseries) return -1;
  *nlabels = d->req->timeseries[i]->n_labels;
  *nsamples = d->req->timeseries[i]->n_samples;
  return 0;
}

int mw_ffi_rwdec_label(const mw_rwdec_t *d, size_t i, size_t j, const uint8_t **name,
                       size_t *name_len, const uint8_t **value, size_t *value_len) {
  if (i >= d->req->n_timeseries || j >= d->req->timeseries[i]->n_labels) return -1;
  const Prometheus__Label *l = d->req->timeseries[i]->labels[j];
  *name = l->name.data;
  *name_len = l->name.len;
  *value = l->value.data;
  *value_len = l->value.len;
  return 0;
}

int mw_ffi_rwdec_sample(const mw_rwdec_t *d, size_t i, size_t j, int64_t *ts, double *value) {
  if (i >= d->req->n_timeseries || j >= d->req->timeseries[i]->n_samples) return -1;
  *ts = d->req->timeseries[i]->samples[j]->timestamp;
  *value = d->req->timeseries[i]->samples[j]->value;
  return 0;
}
