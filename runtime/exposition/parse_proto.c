/* exposition/parse_proto.c: protobuf exposition parser (see exposition/parse_proto.h).
 *
 * A direct wire decoder: every read is bounds-checked against the message it is in, and
 * nothing is allocated per message (protobuf-c's unpack allocates every submessage).
 * Per metric the raw bytes of its label fields are hashed once (seeded with the family
 * name's hash); each sample's scrape cache key mixes that hash with the sample's kind
 * (_count, _sum, a bucket's le, a quantile) so a cached sample costs a hash of its
 * labels' bytes and a lookup, like a cached text line. A miss decodes the labels,
 * checks them as the text parser does, and interns the series. */
#include "exposition/parse_proto.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "base/err.h"
#include "base/grow.h"
#include "base/labels.h"
#include "exposition/write.h"
#include "model/histogram.h"
#include "model/series.h"

/* metrics.proto's MetricType. */
enum {
  PB_COUNTER = 0,
  PB_GAUGE = 1,
  PB_SUMMARY = 2,
  PB_UNTYPED = 3,
  PB_HISTOGRAM = 4,
  PB_GAUGE_HISTOGRAM = 5
};
/* Kinds of samples (mixed into keys). */
enum { K_PLAIN = 1, K_COUNT, K_SUM, K_BUCKET, K_QUANTILE, K_NATIVE };

/* OpenMetrics / Prometheus: exemplar labels hold at most 128 code points. */
#define MW_EXEMPLAR_MAX_RUNES 128

/* One wire field. */
typedef struct {
  uint32_t num;
  int wt;
  uint64_t v;       /* varint, fixed64 or fixed32 value */
  const uint8_t *d; /* wire type 2: the bytes */
  size_t len;
  const uint8_t *at; /* where the field's key starts */
} pb_field_t;

/* A Metric's fields as found on the wire. */
typedef struct {
  const uint8_t *m, *me;      /* the message */
  const uint8_t *lab0, *lab1; /* the label fields' bytes, if contiguous */
  int contig;
  uint32_t nlab;
  const uint8_t *val; /* the submessage of the family's type, NULL: absent */
  size_t val_len;
  int64_t ts;
  XXH128_hash_t h; /* hash of the label fields' bytes */
} pb_metric_t;

struct mw_proto {
  mw_pctx_t x;
  const uint8_t *b;
  size_t n, pos;
  size_t fam; /* index of the family being parsed (1-based) */
  size_t fam_at;
  const uint8_t *mp, *fe; /* its metric loop: where it resumes, the family's end (NULL: none) */
  /* the current family */
  const char *name;
  size_t name_len;
  int type;
  uint64_t seed;
  /* scratch */
  mw_label_t *ls;
  size_t ls_cap;
  char *nbuf; /* __name__ with its suffix, then the magic label's value */
  size_t nbuf_cap;
  uint8_t *enc;
  size_t enc_cap;
  uint8_t *kbuf; /* label fields gathered when they are not contiguous */
  size_t kbuf_cap;
  /* a native histogram's spans and buckets (both sides), and their reduced copies */
  mw_hspan_t *sp[2], *rsp[2];
  size_t sp_cap[2], rsp_cap[2];
  int64_t *dl[2];
  double *ct[2], *rct[2];
  size_t dl_cap[2], ct_cap[2], rct_cap[2];
  int64_t *rdl[2];
  size_t rdl_cap[2];
  double *cv; /* NHCB: custom bounds */
  size_t cv_cap;
};

/* --- errors --------------------------------------------------------------- */

/* Fails the parse at byte at (in the body): "metric family #N ("name") at byte O: ...".
 * Returns -1. */
static int pfail(mw_proto_t *q, const uint8_t *at, const char *fmt, ...) {
  mw_pctx_t *x = &q->x;
  if (!x->err || !x->errlen) return -1;
  size_t off = at ? (size_t)(at - q->b) : q->fam_at;
  if (q->name && q->name_len)
    mw_seterr(x->err, x->errlen, "metric family #%zu (\"%.*s\") at byte %zu: ", q->fam,
              (int)(q->name_len > 80 ? 80 : q->name_len), q->name, off);
  else
    mw_seterr(x->err, x->errlen, "metric family #%zu at byte %zu: ", q->fam, off);
  va_list ap;
  va_start(ap, fmt);
  mw_vadderr(x->err, x->errlen, fmt, ap);
  va_end(ap);
  return -1;
}

static int poom(mw_proto_t *q) {
  mw_seterr(q->x.err, q->x.errlen, "out of memory");
  return -1;
}

/* --- wire ----------------------------------------------------------------- */

/* Reads a varint at *p (below e): 0 and *v, *p advanced; -1 if truncated or longer than
 * 10 bytes. */
static inline int pb_varint(const uint8_t **p, const uint8_t *e, uint64_t *v) {
  const uint8_t *s = *p;
  if (s < e && *s < 0x80) {
    *v = *s;
    *p = s + 1;
    return 0;
  }
  uint64_t r = 0;
  for (int shift = 0; shift < 70 && s < e; shift += 7) {
    uint8_t c = *s++;
    r |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) {
      *v = r;
      *p = s;
      return 0;
    }
  }
  return -1;
}

/* Reads the field at *p (below e) into f. 1 for a field, 0 at e, -1 if malformed (*why
 * says what). Groups (wire types 3, 4) are malformed: metrics.proto has none. */
static inline int pb_next(const uint8_t **p, const uint8_t *e, pb_field_t *f, const char **why) {
  const uint8_t *s = *p;
  if (s >= e) return 0;
  uint64_t key;
  f->at = s;
  if (pb_varint(&s, e, &key) != 0) {
    *why = "truncated field key";
    return -1;
  }
  f->num = (uint32_t)(key >> 3);
  f->wt = (int)(key & 7);
  if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff) {
    *why = "invalid field number";
    return -1;
  }
  switch (f->wt) {
  case 0:
    if (pb_varint(&s, e, &f->v) != 0) {
      *why = "truncated varint";
      return -1;
    }
    break;
  case 1:
    if ((size_t)(e - s) < 8) {
      *why = "truncated fixed64";
      return -1;
    }
    memcpy(&f->v, s, 8);
    s += 8;
    break;
  case 2: {
    uint64_t len;
    if (pb_varint(&s, e, &len) != 0 || len > (uint64_t)(e - s)) {
      *why = "length-delimited field longer than its message";
      return -1;
    }
    f->d = s;
    f->len = (size_t)len;
    s += len;
    break;
  }
  case 5: {
    uint32_t v32;
    if ((size_t)(e - s) < 4) {
      *why = "truncated fixed32";
      return -1;
    }
    memcpy(&v32, s, 4);
    f->v = v32;
    s += 4;
    break;
  }
  default: *why = "invalid wire type"; return -1;
  }
  *p = s;
  return 1;
}

static inline double pb_double(uint64_t v) {
  double d;
  memcpy(&d, &v, sizeof d);
  return d;
}

/* A NaN read from the body is Prometheus's normal NaN: a body cannot forge a staleness
 * marker. */
static inline double pb_value(uint64_t v) {
  double d = pb_double(v);
  if (isnan(d)) {
    uint64_t bits = MW_NORMAL_NAN_BITS;
    memcpy(&d, &bits, sizeof d);
  }
  return d;
}

/* --- keys --------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* The key of the sample of kind (K_*) with extra (a bound's or quantile's bits) of the
 * metric whose label bytes hashed to h. */
static inline mw_skey_t pkey(XXH128_hash_t h, int kind, uint64_t extra) {
  uint64_t a = mix64(extra ^ ((uint64_t)kind << 56) ^ 0x9e3779b97f4a7c15ULL);
  return (mw_skey_t){h.low64 ^ a, h.high64 ^ mix64(a + 0x632be59bd9b4e019ULL)};
}

/* --- names and labels ------------------------------------------------------ */

/* 1 if the n bytes at s are valid UTF-8 (all ASCII checked 8 bytes at a time first). */
static inline int utf8_ok(const char *s, size_t n) {
  uint64_t acc = 0, w;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    memcpy(&w, s + i, 8);
    acc |= w;
  }
  for (; i < n; i++)
    acc |= (unsigned char)s[i];
  return !(acc & 0x8080808080808080ULL) || mw_labels_valid_utf8(s, n);
}

static int check_name(mw_proto_t *q, const uint8_t *at, const char *s, size_t n, int metric) {
  const char *what = metric ? "metric" : "label";
  if (n == 0) return pfail(q, at, "invalid %s name \"\"", what);
  if (!utf8_ok(s, n))
    return pfail(q, at, "invalid UTF-8 %s name \"%.*s\"", what, (int)(n > 80 ? 80 : n), s);
  if ((q->x.flags & MW_EXPFMT_LEGACY_NAMES) &&
      !(metric ? mw_labels_valid_metric_name(s, n) : mw_labels_valid_name(s, n)))
    return pfail(q, at, "%s name \"%.*s\" is not valid under the legacy validation scheme", what,
                 (int)(n > 80 ? 80 : n), s);
  return 0;
}

/* Decodes the LabelPairs of message [m, e) (field field of it) into ls from index *n
 * on (capacity ensured here). Checks names and values (only labels with a value: an
 * empty one is dropped later, as Prometheus does). */
static int decode_pairs(mw_proto_t *q, const uint8_t *m, const uint8_t *e, uint32_t field,
                        size_t *n, int check) {
  const uint8_t *p = m;
  pb_field_t f = {0};
  const char *why = NULL;
  int r;
  while ((r = pb_next(&p, e, &f, &why)) > 0) {
    if (f.num != field || f.wt != 2) continue;
    const char *name = "", *value = "";
    size_t nl = 0, vl = 0;
    const uint8_t *lp = f.d, *le = f.d + f.len;
    pb_field_t g = {0};
    int r2;
    while ((r2 = pb_next(&lp, le, &g, &why)) > 0) {
      if (g.wt != 2) continue;
      if (g.num == 1) {
        name = (const char *)g.d;
        nl = g.len;
      } else if (g.num == 2) {
        value = (const char *)g.d;
        vl = g.len;
      }
    }
    if (r2 < 0) return pfail(q, g.at, "label: %s", why);
    if (nl >= (1u << 31) || vl >= (1u << 31)) return pfail(q, f.at, "label too long");
    if (check && vl) {
      if (check_name(q, f.at, name, nl, 0) != 0) return -1;
      if (!utf8_ok(value, vl))
        return pfail(q, f.at, "invalid UTF-8 label value for \"%.*s\"", (int)(nl > 80 ? 80 : nl),
                     name);
    }
    if (mw_grow((void **)&q->ls, &q->ls_cap, *n + 2, sizeof *q->ls) != 0) return poom(q);
    q->ls[(*n)++] = (mw_label_t){
        .name = name, .name_len = (uint32_t)nl, .value = value, .value_len = (uint32_t)vl};
  }
  if (r < 0) return pfail(q, f.at, "%s", why);
  return 0;
}

/* A cache miss: the series of metric pm with the name's suffix and, if magic, the label
 * magic="mval" (le, quantile). Interns it, teaches the cache key -> ref. */
static int series_miss(mw_proto_t *q, const pb_metric_t *pm, const char *suffix, const char *magic,
                       double mval, mw_skey_t key, uint32_t *ref) {
  size_t sl = strlen(suffix);
  if (mw_grow((void **)&q->nbuf, &q->nbuf_cap, q->name_len + sl + 40, 1) != 0) return poom(q);
  memcpy(q->nbuf, q->name, q->name_len);
  memcpy(q->nbuf + q->name_len, suffix, sl);
  size_t n = 0;
  if (mw_grow((void **)&q->ls, &q->ls_cap, pm->nlab + 2, sizeof *q->ls) != 0) return poom(q);
  q->ls[n++] = (mw_label_t){.name = "__name__",
                            .name_len = 8,
                            .value = q->nbuf,
                            .value_len = (uint32_t)(q->name_len + sl)};
  if (decode_pairs(q, pm->m, pm->me, 1, &n, 1) != 0) return -1;
  if (magic) {
    char *v = q->nbuf + q->name_len + sl;
    size_t vl = mw_expose_fmt_float(v, mval, 1);
    q->ls[n++] = (mw_label_t){
        .name = magic, .name_len = (uint32_t)strlen(magic), .value = v, .value_len = (uint32_t)vl};
  }
  char msg[160];
  if (mw_labels_normalize(q->ls, &n, msg, sizeof msg) != 0) return pfail(q, pm->m, "%s", msg);
  const mw_label_t *fin;
  size_t fn;
  if (mw_scrapecache_mutate(q->x.c, q->ls, n, &fin, &fn, msg, sizeof msg) != 0)
    return pfail(q, pm->m, "%s", msg);
  size_t need = mw_labels_encoded_size(fin, fn), elen;
  if (mw_grow((void **)&q->enc, &q->enc_cap, need, 1) != 0) return poom(q);
  if (fin == q->ls) {
    /* Names and values checked as UTF-8 above (no 0xFF byte): encode directly. */
    uint8_t *o = q->enc;
    for (size_t i = 0; i < fn; i++) {
      memcpy(o, fin[i].name, fin[i].name_len);
      o += fin[i].name_len;
      *o++ = MW_LABELS_SEP;
      memcpy(o, fin[i].value, fin[i].value_len);
      o += fin[i].value_len;
      *o++ = MW_LABELS_SEP;
    }
    elen = (size_t)(o - q->enc);
  } else if (mw_labels_encode(fin, fn, q->enc, need, &elen, msg, sizeof msg) != 0) {
    return pfail(q, pm->m, "%s", msg);
  }
  if (elen >= UINT32_MAX) return pfail(q, pm->m, "label set too large");
  int added;
  mw_series_t *s = mw_scrapecache_series(q->x.c);
  if (mw_series_add(s, q->enc, elen, mw_labels_hash(q->enc, elen), ref, &added, msg, sizeof msg) !=
      0)
    return pfail(q, pm->m, "%s", msg);
  if (added) q->x.st->series_added++;
  if (mw_scrapecache_add(q->x.c, key, *ref, msg, sizeof msg) != 0)
    return pfail(q, pm->m, "%s", msg);
  return 0;
}

/* Attaches the Exemplar message [m, m + len) to the batch's last sample (ts: the
 * sample's timestamp, used when the exemplar has none), or counts it in
 * stats.exemplars_invalid when Prometheus's appender would refuse it. */
static int add_exemplar(mw_proto_t *q, const uint8_t *m, size_t len, int64_t ts) {
  const uint8_t *p = m, *e = m + len;
  pb_field_t f = {0};
  const char *why = NULL;
  int r;
  double v = 0;
  int has_ts = 0;
  int64_t xts = ts;
  while ((r = pb_next(&p, e, &f, &why)) > 0) {
    if (f.num == 2 && f.wt == 1) v = pb_value(f.v);
    if (f.num == 3 && f.wt == 2) {
      /* google.protobuf.Timestamp: seconds (1), nanos (2) */
      int64_t sec = 0, nanos = 0;
      const uint8_t *tp = f.d, *te = f.d + f.len;
      pb_field_t g = {0};
      int r2;
      while ((r2 = pb_next(&tp, te, &g, &why)) > 0) {
        if (g.num == 1 && g.wt == 0) sec = (int64_t)g.v;
        if (g.num == 2 && g.wt == 0) nanos = (int32_t)g.v;
      }
      if (r2 < 0) return pfail(q, g.at, "exemplar timestamp: %s", why);
      if (sec > INT64_MAX / 1000 - 1 || sec < INT64_MIN / 1000 + 1) {
        q->x.st->exemplars_invalid++;
        return 0;
      }
      xts = sec * 1000 + nanos / 1000000;
      has_ts = 1;
    }
  }
  if (r < 0) return pfail(q, f.at, "exemplar: %s", why);
  (void)has_ts;
  size_t n = 0;
  if (decode_pairs(q, m, e, 1, &n, 0) != 0) return -1;
  size_t runes = 0;
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    if (!mw_labels_valid_utf8(q->ls[i].name, q->ls[i].name_len) ||
        !mw_labels_valid_utf8(q->ls[i].value, q->ls[i].value_len) || q->ls[i].name_len == 0)
      bad = 1;
    for (uint32_t k = 0; k < q->ls[i].name_len; k++)
      runes += ((unsigned char)q->ls[i].name[k] & 0xC0) != 0x80;
    for (uint32_t k = 0; k < q->ls[i].value_len; k++)
      runes += ((unsigned char)q->ls[i].value[k] & 0xC0) != 0x80;
  }
  if (bad || runes > MW_EXEMPLAR_MAX_RUNES || mw_labels_normalize(q->ls, &n, NULL, 0) != 0) {
    q->x.st->exemplars_invalid++;
    return 0;
  }
  size_t need = mw_labels_encoded_size(q->ls, n), elen;
  if (mw_grow((void **)&q->enc, &q->enc_cap, need + 1, 1) != 0) return poom(q);
  if (mw_labels_encode(q->ls, n, q->enc, need + 1, &elen, NULL, 0) != 0) {
    q->x.st->exemplars_invalid++;
    return 0;
  }
  if (mw_batch_add_exemplar(q->x.batch, mw_batch_len(q->x.batch) - 1, q->enc, elen, xts, v) != 0)
    return poom(q);
  q->x.st->exemplars++;
  return 0;
}

/* One float sample of metric pm: its series (cached, or interned), its mark, the batch.
 * ex: its Exemplar message (NULL: none). */
static int emit(mw_proto_t *q, const pb_metric_t *pm, int kind, const char *suffix,
                const char *magic, double mval, double v, const uint8_t *ex, size_t ex_len) {
  uint64_t extra = 0;
  if (magic) memcpy(&extra, &mval, sizeof extra);
  /* A plain sample's key is its labels' hash (seeded by the family name). */
  mw_skey_t key =
      kind == K_PLAIN ? (mw_skey_t){pm->h.low64, pm->h.high64} : pkey(pm->h, kind, extra);
  uint32_t ref = mw_scrapecache_get(q->x.c, key);
  if (ref == MW_SERIES_NONE && series_miss(q, pm, suffix, magic, mval, key, &ref) != 0) return -1;
  int explicit_ts = pm->ts != 0;
  int64_t ts = explicit_ts ? pm->ts : q->x.dts;
  if (q->x.flags & MW_EXPFMT_IGNORE_TIMESTAMPS) {
    ts = q->x.dts;
    explicit_ts = 0;
  }
  int m =
      mw_scrapecache_mark(q->x.c, ref, explicit_ts && !(q->x.flags & MW_EXPFMT_TRACK_TS_STALENESS));
  if (m < 0) return poom(q);
  if (m == 0) {
    q->x.st->duplicates++;
    return 0;
  }
  if (mw_batch_add(q->x.batch, ref, ts, v) != 0) return poom(q);
  if (++q->x.st->samples > q->x.sample_limit && q->x.sample_limit) {
    mw_seterr(q->x.err, q->x.errlen, "sample limit exceeded");
    return -1;
  }
  if (ex) return add_exemplar(q, ex, ex_len, ts);
  return 0;
}

/* --- metrics -------------------------------------------------------------- */

/* A Counter, Gauge or Untyped: value (1) and, for a counter, its exemplar (2). */
static int metric_plain(mw_proto_t *q, const pb_metric_t *pm) {
  double v = 0;
  const uint8_t *ex = NULL;
  size_t ex_len = 0;
  if (pm->val && pm->val_len == 9 && pm->val[0] == 0x09) {
    uint64_t bits;
    memcpy(&bits, pm->val + 1, 8);
    v = pb_value(bits);
  } else if (pm->val) {
    const uint8_t *p = pm->val, *e = pm->val + pm->val_len;
    pb_field_t f = {0};
    const char *why = NULL;
    int r;
    while ((r = pb_next(&p, e, &f, &why)) > 0) {
      if (f.num == 1 && f.wt == 1) v = pb_value(f.v);
      if (f.num == 2 && f.wt == 2 && q->type == PB_COUNTER) {
        ex = f.d;
        ex_len = f.len;
      }
    }
    if (r < 0) return pfail(q, f.at, "%s", why);
  }
  return emit(q, pm, K_PLAIN, "", NULL, 0, v, ex, ex_len);
}

/* A Summary: _count, _sum, then one sample per quantile. */
static int metric_summary(mw_proto_t *q, const pb_metric_t *pm) {
  uint64_t count = 0;
  double sum = 0;
  const uint8_t *p = pm->val, *e = pm->val ? pm->val + pm->val_len : NULL;
  pb_field_t f = {0};
  const char *why = NULL;
  int r = 0;
  if (p) {
    while ((r = pb_next(&p, e, &f, &why)) > 0) {
      if (f.num == 1 && f.wt == 0) count = f.v;
      if (f.num == 2 && f.wt == 1) sum = pb_value(f.v);
    }
    if (r < 0) return pfail(q, f.at, "summary: %s", why);
  }
  if (emit(q, pm, K_COUNT, "_count", NULL, 0, (double)count, NULL, 0) != 0) return -1;
  if (emit(q, pm, K_SUM, "_sum", NULL, 0, sum, NULL, 0) != 0) return -1;
  if (!pm->val) return 0;
  for (p = pm->val; (r = pb_next(&p, e, &f, &why)) > 0;) {
    if (f.num != 3 || f.wt != 2) continue;
    double qv = 0, v = 0;
    const uint8_t *qp = f.d, *qe = f.d + f.len;
    pb_field_t g = {0};
    int r2;
    while ((r2 = pb_next(&qp, qe, &g, &why)) > 0) {
      if (g.num == 1 && g.wt == 1) qv = pb_double(g.v);
      if (g.num == 2 && g.wt == 1) v = pb_value(g.v);
    }
    if (r2 < 0) return pfail(q, g.at, "quantile: %s", why);
    if (emit(q, pm, K_QUANTILE, "", "quantile", qv, v, NULL, 0) != 0) return -1;
  }
  return 0;
}

/* A classic histogram: _count, _sum, the buckets (cumulative_count_float when > 0),
 * up to the +Inf bucket, which is added with the count when the buckets lack it. */
static int metric_classic(mw_proto_t *q, const pb_metric_t *pm) {
  uint64_t count = 0;
  double fcount = 0, sum = 0;
  const uint8_t *p = pm->val, *e = pm->val ? pm->val + pm->val_len : NULL;
  pb_field_t f = {0};
  const char *why = NULL;
  int r = 0;
  if (p) {
    while ((r = pb_next(&p, e, &f, &why)) > 0) {
      if (f.num == 1 && f.wt == 0) count = f.v;
      if (f.num == 2 && f.wt == 1) sum = pb_value(f.v);
      if (f.num == 4 && f.wt == 1) fcount = pb_value(f.v);
    }
    if (r < 0) return pfail(q, f.at, "histogram: %s", why);
  }
  double c = fcount > 0 ? fcount : (double)count;
  if (emit(q, pm, K_COUNT, "_count", NULL, 0, c, NULL, 0) != 0) return -1;
  if (emit(q, pm, K_SUM, "_sum", NULL, 0, sum, NULL, 0) != 0) return -1;
  if (pm->val) {
    for (p = pm->val; (r = pb_next(&p, e, &f, &why)) > 0;) {
      if (f.num != 3 || f.wt != 2) continue;
      uint64_t bc = 0;
      double bf = 0, ub = 0;
      const uint8_t *ex = NULL;
      size_t ex_len = 0;
      const uint8_t *bp = f.d, *be = f.d + f.len;
      pb_field_t g = {0};
      int r2;
      while ((r2 = pb_next(&bp, be, &g, &why)) > 0) {
        if (g.num == 1 && g.wt == 0) bc = g.v;
        if (g.num == 2 && g.wt == 1) ub = pb_double(g.v);
        if (g.num == 4 && g.wt == 1) bf = pb_value(g.v);
        if (g.num == 3 && g.wt == 2) {
          ex = g.d;
          ex_len = g.len;
        }
      }
      if (r2 < 0) return pfail(q, g.at, "bucket: %s", why);
      if (emit(q, pm, K_BUCKET, "_bucket", "le", ub, bf > 0 ? bf : (double)bc, ex, ex_len) != 0)
        return -1;
      if (isinf(ub) && ub > 0) return 0;
    }
    if (r < 0) return pfail(q, f.at, "histogram: %s", why);
  }
  return emit(q, pm, K_BUCKET, "_bucket", "le", INFINITY, c, NULL, 0);
}

/* Reads Metric [m, m + len) of the current family into pm: its label fields and their
 * hash, the value submessage of the family's type, its timestamp. */
static int read_metric(mw_proto_t *q, const uint8_t *m, size_t len, pb_metric_t *pm) {
  static const uint32_t field_of[] = {
      [PB_COUNTER] = 3, [PB_GAUGE] = 2,     [PB_SUMMARY] = 4,
      [PB_UNTYPED] = 5, [PB_HISTOGRAM] = 7, [PB_GAUGE_HISTOGRAM] = 7};
  uint32_t vf = field_of[q->type];
  const uint8_t *p = m, *e = m + len, *last = NULL;
  pb_field_t f = {0};
  const char *why = NULL;
  int r;
  *pm = (pb_metric_t){.m = m, .me = e, .contig = 1};
  const uint8_t vtag = (uint8_t)(vf << 3 | 2);
  r = 0;
  while (p < e) {
    /* Fast path: one-byte tags and lengths (labels, the value, the timestamp). */
    uint8_t tag = *p;
    if ((tag == 0x0a || tag == vtag) && e - p >= 2 && p[1] < 0x80 && p[1] <= e - p - 2) {
      const uint8_t *at = p, *d = p + 2;
      p = d + p[1];
      if (tag == 0x0a) {
        if (pm->nlab == 0)
          pm->lab0 = at;
        else if (last != at)
          pm->contig = 0;
        last = p;
        pm->nlab++;
      } else {
        pm->val = d;
        pm->val_len = (size_t)(p - d);
      }
      continue;
    }
    if ((r = pb_next(&p, e, &f, &why)) < 0) break;
    if (f.num == 1 && f.wt == 2) {
      if (pm->nlab == 0)
        pm->lab0 = f.at;
      else if (last != f.at)
        pm->contig = 0;
      last = p;
      pm->nlab++;
    } else if (f.num == vf && f.wt == 2) {
      pm->val = f.d;
      pm->val_len = f.len;
    } else if (f.num == 6 && f.wt == 0) {
      pm->ts = (int64_t)f.v;
    }
  }
  if (r < 0) return pfail(q, f.at, "metric: %s", why);
  if (pm->nlab >= (1u << 30)) return pfail(q, m, "too many labels");
  pm->lab1 = last;
  if (pm->contig) {
    pm->h = XXH3_128bits_withSeed(pm->lab0, pm->lab0 ? (size_t)(pm->lab1 - pm->lab0) : 0, q->seed);
    return 0;
  }
  /* Labels interleaved with other fields: gather their bytes. */
  size_t k = 0;
  for (p = m; pb_next(&p, e, &f, &why) > 0;) {
    if (f.num != 1 || f.wt != 2) continue;
    size_t fl = (size_t)(p - f.at);
    if (mw_grow((void **)&q->kbuf, &q->kbuf_cap, k + fl, 1) != 0) return poom(q);
    memcpy(q->kbuf + k, f.at, fl);
    k += fl;
  }
  pm->h = XXH3_128bits_withSeed(q->kbuf, k, q->seed);
  return 0;
}

/* --- native histograms ---------------------------------------------------- */

/* A side's spans, deltas and counts as read from the wire (side 0 positive, 1 negative). */
typedef struct {
  size_t nsp, ndl, nct;
} pb_side_t;

static int push_span(mw_proto_t *q, int side, size_t *n, const uint8_t *d, size_t len) {
  const uint8_t *p = d, *e = d + len;
  pb_field_t f = {0};
  const char *why = NULL;
  int r;
  mw_hspan_t sp = {0, 0};
  while ((r = pb_next(&p, e, &f, &why)) > 0) {
    if (f.num == 1 && f.wt == 0) sp.offset = (int32_t)((uint32_t)(f.v >> 1) ^ -(uint32_t)(f.v & 1));
    if (f.num == 2 && f.wt == 0) sp.length = (uint32_t)f.v;
  }
  if (r < 0) return pfail(q, f.at, "bucket span: %s", why);
  if (*n >= MW_HIST_MAX_BUCKETS)
    return pfail(q, d, "more than %u bucket spans", MW_HIST_MAX_BUCKETS);
  if (mw_grow((void **)&q->sp[side], &q->sp_cap[side], *n + 1, sizeof(mw_hspan_t)) != 0)
    return poom(q);
  q->sp[side][(*n)++] = sp;
  return 0;
}

static int push_delta(mw_proto_t *q, int side, size_t *n, uint64_t zz) {
  if (*n >= MW_HIST_MAX_BUCKETS) return -1;
  if (mw_grow((void **)&q->dl[side], &q->dl_cap[side], *n + 1, sizeof(int64_t)) != 0) return -1;
  q->dl[side][(*n)++] = (int64_t)((zz >> 1) ^ -(zz & 1));
  return 0;
}

static int push_count(mw_proto_t *q, int side, size_t *n, uint64_t bits) {
  if (*n >= MW_HIST_MAX_BUCKETS) return -1;
  if (mw_grow((void **)&q->ct[side], &q->ct_cap[side], *n + 1, sizeof(double)) != 0) return -1;
  q->ct[side][(*n)++] = pb_value(bits);
  return 0;
}

/* Reads the Histogram message of pm into h (arrays in q's scratch); *native says whether it
 * has native buckets (Prometheus's isNativeHistogram: a span, a zero threshold or a zero
 * count), *nbuckets the number of its classic buckets. */
static int read_native(mw_proto_t *q, const pb_metric_t *pm, mw_histogram_t *h, int *native,
                       size_t *nbuckets) {
  pb_side_t sd[2] = {{0, 0, 0}, {0, 0, 0}};
  double fcount = 0, fzero = 0;
  *h = (mw_histogram_t){0};
  *nbuckets = 0;
  const uint8_t *p = pm->val, *e = pm->val + pm->val_len;
  pb_field_t f = {0};
  const char *why = NULL;
  int r;
  while ((r = pb_next(&p, e, &f, &why)) > 0) {
    int side = f.num >= 12 ? 0 : 1;
    switch (f.num) {
    case 1:
      if (f.wt == 0) h->count = f.v;
      break;
    case 2:
      if (f.wt == 1) h->sum = pb_value(f.v);
      break;
    case 3:
      if (f.wt == 2) (*nbuckets)++;
      break;
    case 4:
      if (f.wt == 1) fcount = pb_value(f.v);
      break;
    case 5:
      if (f.wt == 0) h->schema = (int32_t)((uint32_t)(f.v >> 1) ^ -(uint32_t)(f.v & 1));
      break;
    case 6:
      if (f.wt == 1) h->zero_threshold = pb_value(f.v);
      break;
    case 7:
      if (f.wt == 0) h->zero_count = f.v;
      break;
    case 8:
      if (f.wt == 1) fzero = pb_value(f.v);
      break;
    case 9:
    case 12:
      if (f.wt == 2 && push_span(q, side, &sd[side].nsp, f.d, f.len) != 0) return -1;
      break;
    case 10:
    case 13:
      if (f.wt == 0) {
        if (push_delta(q, side, &sd[side].ndl, f.v) != 0) return pfail(q, f.at, "too many buckets");
      } else if (f.wt == 2) { /* packed */
        const uint8_t *dp = f.d, *de = f.d + f.len;
        while (dp < de) {
          uint64_t v;
          if (pb_varint(&dp, de, &v) != 0) return pfail(q, dp, "truncated packed delta");
          if (push_delta(q, side, &sd[side].ndl, v) != 0) return pfail(q, f.at, "too many buckets");
        }
      }
      break;
    case 11:
    case 14:
      if (f.wt == 1) {
        if (push_count(q, side, &sd[side].nct, f.v) != 0) return pfail(q, f.at, "too many buckets");
      } else if (f.wt == 2) {
        if (f.len % 8) return pfail(q, f.at, "packed counts not a multiple of 8 bytes");
        for (size_t k = 0; k < f.len; k += 8) {
          uint64_t v;
          memcpy(&v, f.d + k, 8);
          if (push_count(q, side, &sd[side].nct, v) != 0) return pfail(q, f.at, "too many buckets");
        }
      }
      break;
    default: break;
    }
  }
  if (r < 0) return pfail(q, f.at, "histogram: %s", why);
  *native = sd[0].nsp || sd[1].nsp || h->zero_threshold > 0 || h->zero_count > 0;
  h->is_float = fcount > 0 || fzero > 0;
  h->reset_hint = q->type == PB_GAUGE_HISTOGRAM ? MW_HIST_RESET_GAUGE : MW_HIST_RESET_UNKNOWN;
  if (h->is_float) {
    h->fcount = fcount;
    h->fzero_count = fzero;
    h->count = h->zero_count = 0;
  }
  for (int side = 0; side < 2; side++) {
    /* Spans of length 0 (client_golang's marker of an empty native histogram) go, their
     * offset carried to the next span, as Prometheus's Compact does. */
    size_t k = 0;
    int32_t carry = 0;
    for (size_t i = 0; i < sd[side].nsp; i++) {
      mw_hspan_t s = q->sp[side][i];
      if (s.length == 0) {
        if (k || i + 1 < sd[side].nsp) carry += s.offset;
        continue;
      }
      s.offset += carry;
      carry = 0;
      q->sp[side][k++] = s;
    }
    sd[side].nsp = k;
    uint32_t nb = (uint32_t)(h->is_float ? sd[side].nct : sd[side].ndl);
    if (side == 0) {
      h->pos_spans = q->sp[0];
      h->n_pos_spans = (uint32_t)k;
      h->n_pos = nb;
      h->pos_deltas = h->is_float ? NULL : q->dl[0];
      h->pos_counts = h->is_float ? q->ct[0] : NULL;
    } else {
      h->neg_spans = q->sp[1];
      h->n_neg_spans = (uint32_t)k;
      h->n_neg = nb;
      h->neg_deltas = h->is_float ? NULL : q->dl[1];
      h->neg_counts = h->is_float ? q->ct[1] : NULL;
    }
  }
  return 0;
}

/* Merges the buckets of one side to schema target (< h->schema) as Prometheus's
 * ReduceResolution: bucket index i goes to ((i - 1) >> (schema - target)) + 1. The new
 * spans and counts go to q's reduced scratch of that side; *nsp, *nb get their numbers. */
static int reduce_side(mw_proto_t *q, int side, const mw_histogram_t *h, int32_t target,
                       size_t *nsp, size_t *nb) {
  uint32_t nspans = side ? h->n_neg_spans : h->n_pos_spans, n = side ? h->n_neg : h->n_pos;
  const mw_hspan_t *spans = side ? h->neg_spans : h->pos_spans;
  const int64_t *dl = side ? h->neg_deltas : h->pos_deltas;
  const double *ct = side ? h->neg_counts : h->pos_counts;
  if (mw_grow((void **)&q->rsp[side], &q->rsp_cap[side], n + 1, sizeof(mw_hspan_t)) != 0 ||
      mw_grow((void **)&q->rct[side], &q->rct_cap[side], n + 1, sizeof(double)) != 0 ||
      mw_grow((void **)&q->rdl[side], &q->rdl_cap[side], n + 1, sizeof(int64_t)) != 0)
    return poom(q);
  int shift = h->schema - target;
  size_t k = 0, ns = 0, out = 0;
  int64_t idx = 0, prev_t = 0, abs_i = 0, prev_abs = 0;
  for (uint32_t s = 0; s < nspans; s++) {
    idx += spans[s].offset;
    for (uint32_t j = 0; j < spans[s].length && k < n; j++, k++, idx++) {
      int64_t t = ((idx - 1) >> shift) + 1;
      double c = 0;
      if (h->is_float) {
        c = ct[k];
      } else {
        abs_i += dl[k];
      }
      if (out && t == prev_t) {
        if (h->is_float)
          q->rct[side][out - 1] += c;
        else
          q->rdl[side][out - 1] += abs_i; /* absolute counts for now */
        continue;
      }
      if (!out) {
        q->rsp[side][ns++] = (mw_hspan_t){.offset = (int32_t)t, .length = 1};
      } else if (t == prev_t + 1) {
        q->rsp[side][ns - 1].length++;
      } else {
        q->rsp[side][ns++] = (mw_hspan_t){.offset = (int32_t)(t - prev_t - 1), .length = 1};
      }
      if (h->is_float)
        q->rct[side][out] = c;
      else
        q->rdl[side][out] = abs_i;
      out++;
      prev_t = t;
    }
  }
  if (!h->is_float) /* absolute counts back to deltas */
    for (size_t i = 0; i < out; i++) {
      int64_t a = q->rdl[side][i];
      q->rdl[side][i] = a - prev_abs;
      prev_abs = a;
    }
  *nsp = ns;
  *nb = out;
  return 0;
}

/* h at schema target (< h->schema): h's arrays then point into q's reduced scratch. */
static int reduce(mw_proto_t *q, mw_histogram_t *h, int32_t target) {
  size_t nsp[2], nb[2];
  for (int side = 0; side < 2; side++)
    if (reduce_side(q, side, h, target, &nsp[side], &nb[side]) != 0) return -1;
  /* Swap the scratch: the reduced arrays become the current ones (a second reduction
   * reads them). */
  for (int side = 0; side < 2; side++) {
    mw_hspan_t *ts = q->sp[side];
    size_t tc = q->sp_cap[side];
    q->sp[side] = q->rsp[side];
    q->sp_cap[side] = q->rsp_cap[side];
    q->rsp[side] = ts;
    q->rsp_cap[side] = tc;
    if (h->is_float) {
      double *t = q->ct[side];
      tc = q->ct_cap[side];
      q->ct[side] = q->rct[side];
      q->ct_cap[side] = q->rct_cap[side];
      q->rct[side] = t;
      q->rct_cap[side] = tc;
    } else {
      int64_t *t = q->dl[side];
      tc = q->dl_cap[side];
      q->dl[side] = q->rdl[side];
      q->dl_cap[side] = q->rdl_cap[side];
      q->rdl[side] = t;
      q->rdl_cap[side] = tc;
    }
  }
  h->schema = target;
  h->pos_spans = q->sp[0];
  h->neg_spans = q->sp[1];
  h->n_pos_spans = (uint32_t)nsp[0];
  h->n_neg_spans = (uint32_t)nsp[1];
  h->n_pos = (uint32_t)nb[0];
  h->n_neg = (uint32_t)nb[1];
  h->pos_deltas = h->is_float ? NULL : q->dl[0];
  h->neg_deltas = h->is_float ? NULL : q->dl[1];
  h->pos_counts = h->is_float ? q->ct[0] : NULL;
  h->neg_counts = h->is_float ? q->ct[1] : NULL;
  return 0;
}

/* The schema native_histogram_min_bucket_factor allows (Prometheus's pickSchema). */
static int32_t max_schema(double factor) {
  if (factor <= 1) factor = 1.00271;
  double fl = floor(-log2(log2(factor)));
  if (fl >= MW_HIST_SCHEMA_MAX) return MW_HIST_SCHEMA_MAX;
  if (fl <= MW_HIST_SCHEMA_MIN) return MW_HIST_SCHEMA_MIN;
  return (int32_t)fl;
}

/* A native histogram sample of metric pm (h read by read_native). The min bucket factor
 * and then the bucket limit reduce its resolution as Prometheus's scrape does; a
 * histogram over the bucket limit at schema -4 fails the scrape. */
static int emit_hist(mw_proto_t *q, const pb_metric_t *pm, mw_histogram_t *h, int reduced);

static int emit_native(mw_proto_t *q, const pb_metric_t *pm, mw_histogram_t *h) {
  int reduced = 0;
  if (h->schema > MW_HIST_SCHEMA_MAX || h->schema < MW_HIST_SCHEMA_MIN)
    return pfail(q, pm->m, "invalid native histogram schema %d (valid: -4..8)", h->schema);
  if (q->x.min_factor > 0) {
    int32_t ms = max_schema(q->x.min_factor);
    if (h->schema > ms) {
      if (reduce(q, h, ms) != 0) return -1;
      reduced = 1;
    }
  }
  if (q->x.bucket_limit)
    while ((size_t)h->n_pos + h->n_neg > q->x.bucket_limit) {
      if (h->schema <= MW_HIST_SCHEMA_MIN) {
        mw_seterr(q->x.err, q->x.errlen, "histogram bucket limit exceeded");
        return -1;
      }
      if (reduce(q, h, h->schema - 1) != 0) return -1;
      reduced = 1;
    }
  return emit_hist(q, pm, h, reduced);
}

/* Appends native histogram h of metric pm: its series, mark (a histogram one), sample. */
static int emit_hist(mw_proto_t *q, const pb_metric_t *pm, mw_histogram_t *h, int reduced) {
  /* Custom buckets cannot merge: over the limit, the scrape fails (Prometheus). */
  if (h->schema == MW_HIST_SCHEMA_CUSTOM && q->x.bucket_limit && h->n_pos > q->x.bucket_limit) {
    mw_seterr(q->x.err, q->x.errlen, "histogram bucket limit exceeded");
    return -1;
  }
  mw_skey_t key = pkey(pm->h, K_NATIVE, 0);
  uint32_t ref = mw_scrapecache_get(q->x.c, key);
  if (ref == MW_SERIES_NONE && series_miss(q, pm, "", NULL, 0, key, &ref) != 0) return -1;
  int explicit_ts = pm->ts != 0;
  int64_t ts = explicit_ts ? pm->ts : q->x.dts;
  if (q->x.flags & MW_EXPFMT_IGNORE_TIMESTAMPS) {
    ts = q->x.dts;
    explicit_ts = 0;
  }
  char msg[160];
  if (mw_histogram_validate(h, msg, sizeof msg) != 0)
    return pfail(q, pm->m, "invalid native histogram: %s", msg);
  int m = mw_scrapecache_mark_kind(q->x.c, ref,
                                   explicit_ts && !(q->x.flags & MW_EXPFMT_TRACK_TS_STALENESS),
                                   h->is_float ? 2 : 1);
  if (m < 0) return poom(q);
  if (m == 0) {
    q->x.st->duplicates++;
    return 0;
  }
  if (mw_batch_add_histogram(q->x.batch, ref, ts, h, msg, sizeof msg) != 0)
    return pfail(q, pm->m, "%s", msg);
  q->x.st->histograms++;
  q->x.st->histograms_reduced += (uint64_t)reduced;
  if (++q->x.st->samples > q->x.sample_limit && q->x.sample_limit) {
    mw_seterr(q->x.err, q->x.errlen, "sample limit exceeded");
    return -1;
  }
  return 0;
}

/* A classic histogram as a native histogram with custom buckets (schema -53), as
 * Prometheus 3's convert_classic_histograms_to_nhcb: the finite upper bounds become the
 * custom values, each bucket's count the difference of the cumulative counts, the +Inf
 * bucket what the count adds beyond the last finite bound. Integer when every count is
 * (no cumulative_count_float, no sample_count_float), else float. Returns 0, -1 on
 * failure, 1 when it does not convert (bounds not increasing, cumulative counts that
 * decrease): its classic series then go out as they are, as with the text formats. */
static int emit_nhcb(mw_proto_t *q, const pb_metric_t *pm) {
  uint64_t count = 0;
  double fcount = 0, sum = 0;
  size_t nb = 0;
  int is_float = 0;
  const uint8_t *p = pm->val, *e = pm->val + pm->val_len;
  pb_field_t f = {0};
  const char *why = NULL;
  int r;
  while ((r = pb_next(&p, e, &f, &why)) > 0) {
    if (f.num == 1 && f.wt == 0) count = f.v;
    if (f.num == 2 && f.wt == 1) sum = pb_value(f.v);
    if (f.num == 4 && f.wt == 1) fcount = pb_value(f.v);
    if (f.num != 3 || f.wt != 2) continue;
    uint64_t bc = 0;
    double bf = 0, ub = 0;
    const uint8_t *bp = f.d, *be = f.d + f.len;
    pb_field_t g = {0};
    int r2;
    while ((r2 = pb_next(&bp, be, &g, &why)) > 0) {
      if (g.num == 1 && g.wt == 0) bc = g.v;
      if (g.num == 2 && g.wt == 1) ub = pb_double(g.v);
      if (g.num == 4 && g.wt == 1) bf = pb_value(g.v);
    }
    if (r2 < 0) return pfail(q, g.at, "bucket: %s", why);
    if (isinf(ub) && ub > 0) break;
    if (nb >= MW_HIST_MAX_BUCKETS)
      return pfail(q, f.at, "more than %u buckets", MW_HIST_MAX_BUCKETS);
    if (mw_grow((void **)&q->cv, &q->cv_cap, nb + 1, sizeof(double)) != 0 ||
        mw_grow((void **)&q->ct[0], &q->ct_cap[0], nb + 2, sizeof(double)) != 0)
      return poom(q);
    if (isnan(ub) || isinf(ub) || (nb && !(ub > q->cv[nb - 1])))
      return 1; /* bounds not increasing: not converted */
    if (bf > 0) is_float = 1;
    q->cv[nb] = ub;
    q->ct[0][nb++] = bf > 0 ? bf : (double)bc;
  }
  if (r < 0) return pfail(q, f.at, "histogram: %s", why);
  if (fcount > 0) is_float = 1;
  double total = fcount > 0 ? fcount : (double)count;
  if (mw_grow((void **)&q->ct[0], &q->ct_cap[0], nb + 1, sizeof(double)) != 0 ||
      mw_grow((void **)&q->dl[0], &q->dl_cap[0], nb + 1, sizeof(int64_t)) != 0 ||
      mw_grow((void **)&q->sp[0], &q->sp_cap[0], 1, sizeof(mw_hspan_t)) != 0)
    return poom(q);
  q->ct[0][nb] = total;
  /* cumulative -> per bucket (in place, from the end) */
  for (size_t i = nb; i > 0; i--) {
    if (!(q->ct[0][i] >= q->ct[0][i - 1]) || q->ct[0][i - 1] < 0)
      return 1; /* counts decrease: not converted */
    q->ct[0][i] -= q->ct[0][i - 1];
  }
  int64_t prev = 0;
  for (size_t i = 0; !is_float && i <= nb; i++) {
    q->dl[0][i] = (int64_t)q->ct[0][i] - prev;
    prev = (int64_t)q->ct[0][i];
  }
  q->sp[0][0] = (mw_hspan_t){.offset = 0, .length = (uint32_t)(nb + 1)};
  mw_histogram_t h = {.schema = MW_HIST_SCHEMA_CUSTOM,
                      .is_float = (uint8_t)is_float,
                      .reset_hint = q->type == PB_GAUGE_HISTOGRAM ? MW_HIST_RESET_GAUGE
                                                                  : MW_HIST_RESET_UNKNOWN,
                      .count = is_float ? 0 : count,
                      .fcount = is_float ? total : 0,
                      .sum = sum,
                      .n_pos_spans = 1,
                      .pos_spans = q->sp[0],
                      .n_pos = (uint32_t)(nb + 1),
                      .pos_deltas = is_float ? NULL : q->dl[0],
                      .pos_counts = is_float ? q->ct[0] : NULL,
                      .n_custom = (uint32_t)nb,
                      .custom_values = q->cv};
  return emit_hist(q, pm, &h, 0);
}

static int metric(mw_proto_t *q, const uint8_t *m, size_t len) {
  pb_metric_t pm;
  if (read_metric(q, m, len, &pm) != 0) return -1;
  switch (q->type) {
  case PB_SUMMARY: return metric_summary(q, &pm);
  case PB_HISTOGRAM:
  case PB_GAUGE_HISTOGRAM:
    if (pm.val && (q->x.flags & MW_EXPFMT_NATIVE_HISTOGRAMS)) {
      mw_histogram_t h;
      int native = 0;
      size_t nbuckets = 0;
      if (read_native(q, &pm, &h, &native, &nbuckets) != 0) return -1;
      if (native) {
        if (emit_native(q, &pm, &h) != 0) return -1;
        /* The classic series too only when asked and when there are classic buckets
         * (Prometheus's redoClassic). */
        if (!(q->x.flags & MW_EXPFMT_CLASSIC_HISTOGRAMS) || nbuckets == 0) return 0;
        return metric_classic(q, &pm);
      }
    }
    if (pm.val && (q->x.flags & MW_EXPFMT_NHCB)) {
      int r = emit_nhcb(q, &pm);
      if (r < 0) return -1;
      if (r == 0 && !(q->x.flags & MW_EXPFMT_CLASSIC_HISTOGRAMS)) return 0;
    }
    return metric_classic(q, &pm);
  default: return metric_plain(q, &pm);
  }
}

/* --- families ------------------------------------------------------------ */

static const int mw_meta_type_of[] = {
    [PB_COUNTER] = MW_METRIC_COUNTER,     [PB_GAUGE] = MW_METRIC_GAUGE,
    [PB_SUMMARY] = MW_METRIC_SUMMARY,     [PB_UNTYPED] = MW_METRIC_UNKNOWN,
    [PB_HISTOGRAM] = MW_METRIC_HISTOGRAM, [PB_GAUGE_HISTOGRAM] = MW_METRIC_GAUGEHISTOGRAM};

static int has_suffix(const char *s, size_t n, const char *suf, size_t sl) {
  return n >= sl + 1 && memcmp(s + n - sl, suf, sl) == 0 && s[n - sl - 1] == '_';
}

/* The MetricFamily message [m, e). */
static int family(mw_proto_t *q, const uint8_t *m, const uint8_t *e) {
  const uint8_t *p = m;
  pb_field_t f = {0};
  const char *why = NULL;
  const char *help = NULL, *unit = NULL;
  size_t help_len = 0, unit_len = 0, nmetrics = 0;
  uint64_t type = PB_COUNTER;
  int r;
  q->name = NULL;
  q->name_len = 0;
  while ((r = pb_next(&p, e, &f, &why)) > 0) {
    if (f.num == 1 && f.wt == 2) {
      q->name = (const char *)f.d;
      q->name_len = f.len;
    } else if (f.num == 2 && f.wt == 2) {
      help = (const char *)f.d;
      help_len = f.len;
    } else if (f.num == 3 && f.wt == 0) {
      type = f.v;
    } else if (f.num == 4 && f.wt == 2) {
      nmetrics++;
    } else if (f.num == 5 && f.wt == 2) {
      unit = (const char *)f.d;
      unit_len = f.len;
    }
  }
  if (r < 0) return pfail(q, f.at, "%s", why);
  /* Prometheus skips a family without metrics (nothing is checked). */
  if (nmetrics == 0) return 0;
  const char *name = q->name ? q->name : "";
  size_t nl = q->name_len;
  if (check_name(q, m, name, nl, 1) != 0) return -1;
  if (help && !mw_labels_valid_utf8(help, help_len)) return pfail(q, m, "invalid UTF-8 help text");
  if (type > PB_GAUGE_HISTOGRAM)
    return pfail(q, m, "unknown metric type %llu", (unsigned long long)type);
  q->type = (int)type;
  if (unit_len) {
    int ok = q->type == PB_COUNTER && nl >= 6 && memcmp(name + nl - 6, "_total", 6) == 0
                 ? has_suffix(name, nl - 6, unit, unit_len)
                 : has_suffix(name, nl, unit, unit_len);
    if (!ok)
      return pfail(q, m, "unit \"%.*s\" not a suffix of metric \"%.*s\"",
                   (int)(unit_len > 80 ? 80 : unit_len), unit, (int)(nl > 80 ? 80 : nl), name);
  }
  char msg[160];
  if (mw_scrapecache_meta_set(q->x.c, name, nl, MW_META_TYPE, mw_meta_type_of[q->type], NULL, 0,
                              msg, sizeof msg) != 0)
    return pfail(q, m, "%s", msg);
  if (help && !mw_scrapecache_meta_same(q->x.c, name, nl, MW_META_HELP, help, help_len) &&
      mw_scrapecache_meta_set(q->x.c, name, nl, MW_META_HELP, 0, help, help_len, msg, sizeof msg) !=
          0)
    return pfail(q, m, "%s", msg);
  if (unit_len && mw_scrapecache_meta_set(q->x.c, name, nl, MW_META_UNIT, 0, unit, unit_len, msg,
                                          sizeof msg) != 0)
    return pfail(q, m, "%s", msg);
  q->seed = XXH3_64bits(name, nl);
  /* Its metrics next (family_metrics), maybe over several steps. */
  q->mp = m;
  q->fe = e;
  return 0;
}

/* The metrics of the current family from q->mp on, until its end (q->fe becomes NULL) or
 * one starts at or past byte stop (q->mp is where to resume): a family with very many
 * metrics does not hold the loop for one step. */
static int family_metrics(mw_proto_t *q, size_t stop) {
  const uint8_t *p = q->mp, *e = q->fe;
  pb_field_t f = {0};
  const char *why = NULL;
  while (p < e) {
    if ((size_t)(p - q->b) >= stop) {
      q->mp = p;
      return 0;
    }
    if (pb_next(&p, e, &f, &why) <= 0) break; /* checked by family() */
    if (f.num == 4 && f.wt == 2 && metric(q, f.d, f.len) != 0) return -1;
  }
  q->fe = NULL;
  return 0;
}

/* --- parser --------------------------------------------------------------- */

mw_proto_t *mw_proto_new(const mw_pctx_t *ctx, const char *body, size_t len) {
  mw_proto_t *q = calloc(1, sizeof *q);
  if (!q) return NULL;
  q->x = *ctx;
  q->b = (const uint8_t *)(body ? body : "");
  q->n = body ? len : 0;
  return q;
}

int mw_proto_some(mw_proto_t *q, size_t stop, int *done, size_t *pos) {
  *done = 0;
  for (;;) {
    if (q->fe) {
      if (family_metrics(q, stop) != 0) return -1;
      if (q->fe) { /* paused inside the family */
        *pos = (size_t)(q->mp - q->b);
        return 0;
      }
    }
    if (q->pos >= q->n) break;
    if (q->pos >= stop) {
      *pos = q->pos;
      return 0;
    }
    q->fam++;
    q->fam_at = q->pos;
    q->name = NULL;
    const uint8_t *p = q->b + q->pos, *e = q->b + q->n;
    uint64_t len;
    if (pb_varint(&p, e, &len) != 0) return pfail(q, q->b + q->pos, "truncated length prefix");
    if (len > (uint64_t)(e - p))
      return pfail(q, q->b + q->pos, "length %llu is past the end of the body (%zu bytes left)",
                   (unsigned long long)len, (size_t)(e - p));
    q->fe = NULL;
    if (family(q, p, p + len) != 0) return -1;
    q->pos = (size_t)(p + len - q->b); /* where the next family starts */
  }
  *pos = q->pos;
  *done = 1;
  return 0;
}

void mw_proto_free(mw_proto_t *q) {
  if (!q) return;
  free(q->ls);
  free(q->nbuf);
  free(q->enc);
  free(q->kbuf);
  free(q->cv);
  for (int side = 0; side < 2; side++) {
    free(q->sp[side]);
    free(q->rsp[side]);
    free(q->dl[side]);
    free(q->rdl[side]);
    free(q->ct[side]);
    free(q->rct[side]);
  }
  free(q);
}
