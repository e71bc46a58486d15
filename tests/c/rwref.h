/* rwref.h: the reference for mw_rwenc's WriteRequest bytes, shared by
 * test_rwenc and fuzz_rwenc. A request is described once (mw_rwref_req_t:
 * the arguments of the mw_rwenc_* calls), then
 *   - mw_rwref_encode makes it with mw_rwenc (set_external_labels, add_series,
 *     add_exemplar, add_metadata, finish) and un-snappies the result;
 *   - mw_rwref_pack builds the same request as protobuf-c messages from the
 *     description alone (external labels merged, samples sorted stably,
 *     metadata strings NUL-terminated, as remote/encode.h specifies) and packs it
 *     with prometheus__write_request__pack.
 * The two must be the same bytes. The reference knows nothing of the
 * encoder's insides: it reads the description and remote/encode.h's contract. */
#ifndef MW_RWREF_H
#define MW_RWREF_H
#include <snappy-c.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/labels.h"
#include "model/series.h"
#include "remote.pb-c.h"
#include "remote/encode.h"

typedef struct {
  const uint8_t *labels; /* an encoded label set (base/labels.h); len 0 for none */
  size_t len;
  int64_t ts;
  double value;
} mw_rwref_ex_t;

typedef struct {
  const uint8_t *labels; /* an encoded label set */
  size_t len;
  const int64_t *ts; /* n samples, in any order */
  const double *values;
  size_t n;
  const mw_rwref_ex_t *ex; /* nex exemplars, added after the series */
  size_t nex;
  const mw_histogram_t *hist; /* nh native histograms (timestamps hts), added after them */
  const int64_t *hts;
  size_t nh;
} mw_rwref_series_t;

typedef struct {
  int type;
  const char *family, *help, *unit; /* not NUL-terminated */
  size_t family_len, help_len, unit_len;
} mw_rwref_meta_t;

/* A request: external labels (ext_len 0 for none), series, then metadata.
 * meta_at[i] (if not NULL) is how many series are added before metadata i,
 * so metadata and series calls interleave; the bytes do not depend on it. */
typedef struct {
  const uint8_t *ext;
  size_t ext_len;
  const mw_rwref_series_t *series;
  size_t nseries;
  const mw_rwref_meta_t *meta;
  const size_t *meta_at;
  size_t nmeta;
  /* mw_rwref_encode adds the series as a series table's stored bytes (symbol ids:
   * mw_rwenc_add_series_stored, as remote_write's WAL reader does), not as text */
  int stored;
} mw_rwref_req_t;

/* Bytewise, a prefix first (as mw_rwenc merges names). */
static int mw_rwref_name_cmp(const mw_label_t *a, const mw_label_t *b) {
  size_t m = a->name_len < b->name_len ? a->name_len : b->name_len;
  int c = m ? memcmp(a->name, b->name, m) : 0;
  if (c) return c;
  return (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

/* Labels of an encoded set, in *out (malloc'd, caller frees); the count, or
 * -1 if the set is malformed. */
static long mw_rwref_split(const uint8_t *enc, size_t len, mw_label_t **out) {
  size_t n = 0, pos = 0;
  mw_label_t l;
  int r;
  while ((r = mw_labels_next(enc, len, &pos, &l)) == 1)
    n++;
  *out = malloc((n + 1) * sizeof **out);
  if (r < 0 || !*out) return -1;
  pos = 0;
  for (size_t i = 0; i < n; i++)
    mw_labels_next(enc, len, &pos, &(*out)[i]);
  return (long)n;
}

static void mw_rwref_label(Prometheus__Label *m, const mw_label_t *l) {
  Prometheus__Label init = PROMETHEUS__LABEL__INIT;
  *m = init;
  m->name = (ProtobufCBinaryData){.len = l->name_len, .data = (uint8_t *)l->name};
  m->value = (ProtobufCBinaryData){.len = l->value_len, .data = (uint8_t *)l->value};
}

/* A NUL-terminated copy of s[0..n) (protobuf-c strings). */
static char *mw_rwref_str(const char *s, size_t n) {
  char *c = malloc(n + 1);
  if (!c) return NULL;
  if (n) memcpy(c, s, n);
  c[n] = '\0';
  return c;
}

/* Histogram h at ts as a protobuf-c message *m; its span messages are malloc'd into
 * *keep (the caller frees it). 0, -1 on OOM. */
static int mw_rwref_hist(Prometheus__Histogram *m, const mw_histogram_t *h, int64_t ts,
                         void **keep) {
  Prometheus__Histogram init = PROMETHEUS__HISTOGRAM__INIT;
  *m = init;
  size_t ns = (size_t)h->n_pos_spans + h->n_neg_spans;
  Prometheus__BucketSpan *sp = malloc((ns + 1) * sizeof *sp);
  Prometheus__BucketSpan **pp = malloc((ns + 1) * sizeof *pp);
  void **both = malloc(2 * sizeof *both);
  if (!sp || !pp || !both) {
    free(sp);
    free(pp);
    free(both);
    return -1;
  }
  both[0] = sp;
  both[1] = pp;
  *keep = both;
  for (size_t i = 0; i < ns; i++) {
    Prometheus__BucketSpan sinit = PROMETHEUS__BUCKET_SPAN__INIT;
    const mw_hspan_t *x = i < h->n_pos_spans ? &h->pos_spans[i] : &h->neg_spans[i - h->n_pos_spans];
    sp[i] = sinit;
    sp[i].offset = x->offset;
    sp[i].length = x->length;
    pp[i] = &sp[i];
  }
  m->n_positive_spans = h->n_pos_spans;
  m->positive_spans = h->n_pos_spans ? pp : NULL;
  m->n_negative_spans = h->n_neg_spans;
  m->negative_spans = h->n_neg_spans ? pp + h->n_pos_spans : NULL;
  if (h->is_float) {
    m->count_case = PROMETHEUS__HISTOGRAM__COUNT_COUNT_FLOAT;
    m->count_float = h->fcount;
    m->zero_count_case = PROMETHEUS__HISTOGRAM__ZERO_COUNT_ZERO_COUNT_FLOAT;
    m->zero_count_float = h->fzero_count;
    m->n_positive_counts = h->n_pos;
    m->positive_counts = (double *)h->pos_counts;
    m->n_negative_counts = h->n_neg;
    m->negative_counts = (double *)h->neg_counts;
  } else {
    m->count_case = PROMETHEUS__HISTOGRAM__COUNT_COUNT_INT;
    m->count_int = h->count;
    m->zero_count_case = PROMETHEUS__HISTOGRAM__ZERO_COUNT_ZERO_COUNT_INT;
    m->zero_count_int = h->zero_count;
    m->n_positive_deltas = h->n_pos;
    m->positive_deltas = (int64_t *)h->pos_deltas;
    m->n_negative_deltas = h->n_neg;
    m->negative_deltas = (int64_t *)h->neg_deltas;
  }
  m->sum = h->sum;
  m->schema = h->schema;
  m->zero_threshold = h->zero_threshold;
  m->reset_hint = (Prometheus__Histogram__ResetHint)h->reset_hint;
  m->timestamp = ts;
  m->n_custom_values = h->n_custom;
  m->custom_values = (double *)h->custom_values;
  return 0;
}

/* Packs r with protobuf-c: *out (malloc'd, caller frees) and *out_len.
 * 0, or -1 (a malformed label set, out of memory). */
static int mw_rwref_pack(const mw_rwref_req_t *r, uint8_t **out, size_t *out_len) {
  int rc = -1;
  *out = NULL;
  *out_len = 0;
  mw_label_t *ext = NULL;
  long next = 0;
  size_t nl = 0, nx = 0;
  Prometheus__TimeSeries *ts = NULL, **ts_ptrs = NULL;
  Prometheus__MetricMetadata *meta = NULL, **meta_ptrs = NULL;
  /* each series' label and sample arrays, freed at the end */
  Prometheus__Label **lmsgs = NULL, ***lptrs = NULL;
  Prometheus__Sample **smsgs = NULL, ***sptrs = NULL;
  Prometheus__Exemplar **xmsgs = NULL, ***xptrs = NULL;
  Prometheus__Label ***xlptrs = NULL; /* per exemplar label arrays, flat */
  Prometheus__Label **xlmsgs = NULL;
  Prometheus__Histogram **hmsgs = NULL, ***hptrs = NULL;
  void ***hkeep = NULL; /* per series, per histogram: its span arrays */
  char **strs = NULL;
  if (r->ext_len && (next = mw_rwref_split(r->ext, r->ext_len, &ext)) < 0) goto done;
  for (size_t i = 0; i < r->nseries; i++)
    nx += r->series[i].nex;
  size_t ns = r->nseries ? r->nseries : 1, nxs = nx ? nx : 1;
  ts = calloc(ns, sizeof *ts);
  ts_ptrs = calloc(ns, sizeof *ts_ptrs);
  lmsgs = calloc(ns, sizeof *lmsgs);
  lptrs = calloc(ns, sizeof *lptrs);
  smsgs = calloc(ns, sizeof *smsgs);
  sptrs = calloc(ns, sizeof *sptrs);
  xmsgs = calloc(ns, sizeof *xmsgs);
  xptrs = calloc(ns, sizeof *xptrs);
  xlmsgs = calloc(nxs, sizeof *xlmsgs);
  xlptrs = calloc(nxs, sizeof *xlptrs);
  meta = calloc(r->nmeta + 1, sizeof *meta);
  meta_ptrs = calloc(r->nmeta + 1, sizeof *meta_ptrs);
  strs = calloc(3 * r->nmeta + 1, sizeof *strs);
  hmsgs = calloc(ns, sizeof *hmsgs);
  hptrs = calloc(ns, sizeof *hptrs);
  hkeep = calloc(ns, sizeof *hkeep);
  if (!ts || !ts_ptrs || !lmsgs || !lptrs || !smsgs || !sptrs || !xmsgs || !xptrs || !xlmsgs ||
      !xlptrs || !meta || !meta_ptrs || !strs || !hmsgs || !hptrs || !hkeep)
    goto done;
  size_t xi = 0;
  for (size_t i = 0; i < r->nseries; i++) {
    const mw_rwref_series_t *s = &r->series[i];
    Prometheus__TimeSeries init = PROMETHEUS__TIME_SERIES__INIT;
    ts[i] = init;
    ts_ptrs[i] = &ts[i];
    /* labels: the series' own, with every external label whose name it does
     * not have merged in by name (the series' value wins) */
    mw_label_t *own;
    long n = mw_rwref_split(s->labels, s->len, &own);
    if (n < 0) {
      free(own);
      goto done;
    }
    lmsgs[i] = malloc(((size_t)n + (size_t)next + 1) * sizeof **lmsgs);
    lptrs[i] = malloc(((size_t)n + (size_t)next + 1) * sizeof **lptrs);
    if (!lmsgs[i] || !lptrs[i]) {
      free(own);
      goto done;
    }
    long a = 0, b = 0;
    nl = 0;
    while (a < n || b < next) {
      const mw_label_t *pick;
      if (a < n && b < next) {
        int c = mw_rwref_name_cmp(&own[a], &ext[b]);
        if (c == 0) b++;
        pick = c > 0 ? &ext[b++] : &own[a++];
      } else {
        pick = a < n ? &own[a++] : &ext[b++];
      }
      mw_rwref_label(&lmsgs[i][nl], pick);
      lptrs[i][nl] = &lmsgs[i][nl];
      nl++;
    }
    free(own);
    ts[i].n_labels = nl;
    ts[i].labels = nl ? lptrs[i] : NULL;
    /* samples, sorted stably by timestamp (insertion sort) */
    smsgs[i] = malloc((s->n + 1) * sizeof **smsgs);
    sptrs[i] = malloc((s->n + 1) * sizeof **sptrs);
    if (!smsgs[i] || !sptrs[i]) goto done;
    for (size_t j = 0; j < s->n; j++) {
      Prometheus__Sample sinit = PROMETHEUS__SAMPLE__INIT;
      sinit.value = s->values[j];
      sinit.timestamp = s->ts[j];
      size_t k = j;
      while (k > 0 && smsgs[i][k - 1].timestamp > sinit.timestamp) {
        smsgs[i][k] = smsgs[i][k - 1];
        k--;
      }
      smsgs[i][k] = sinit;
    }
    for (size_t j = 0; j < s->n; j++)
      sptrs[i][j] = &smsgs[i][j];
    ts[i].n_samples = s->n;
    ts[i].samples = s->n ? sptrs[i] : NULL;
    /* exemplars: their own labels only, no external ones */
    xmsgs[i] = malloc((s->nex + 1) * sizeof **xmsgs);
    xptrs[i] = malloc((s->nex + 1) * sizeof **xptrs);
    if (!xmsgs[i] || !xptrs[i]) goto done;
    for (size_t j = 0; j < s->nex; j++, xi++) {
      Prometheus__Exemplar xinit = PROMETHEUS__EXEMPLAR__INIT;
      Prometheus__Exemplar *x = &xmsgs[i][j];
      *x = xinit;
      x->value = s->ex[j].value;
      x->timestamp = s->ex[j].ts;
      mw_label_t *xl;
      long m = mw_rwref_split(s->ex[j].labels, s->ex[j].len, &xl);
      if (m < 0) {
        free(xl);
        goto done;
      }
      xlmsgs[xi] = malloc(((size_t)m + 1) * sizeof **xlmsgs);
      xlptrs[xi] = malloc(((size_t)m + 1) * sizeof **xlptrs);
      if (!xlmsgs[xi] || !xlptrs[xi]) {
        free(xl);
        goto done;
      }
      for (long k = 0; k < m; k++) {
        mw_rwref_label(&xlmsgs[xi][k], &xl[k]);
        xlptrs[xi][k] = &xlmsgs[xi][k];
      }
      free(xl);
      x->n_labels = (size_t)m;
      x->labels = m ? xlptrs[xi] : NULL;
      xptrs[i][j] = x;
    }
    ts[i].n_exemplars = s->nex;
    ts[i].exemplars = s->nex ? xptrs[i] : NULL;
    /* histograms, sorted stably by timestamp */
    hmsgs[i] = malloc((s->nh + 1) * sizeof **hmsgs);
    hptrs[i] = malloc((s->nh + 1) * sizeof **hptrs);
    hkeep[i] = calloc(s->nh + 1, sizeof **hkeep);
    if (!hmsgs[i] || !hptrs[i] || !hkeep[i]) goto done;
    for (size_t j = 0; j < s->nh; j++) {
      Prometheus__Histogram hm;
      if (mw_rwref_hist(&hm, &s->hist[j], s->hts[j], &hkeep[i][j]) != 0) goto done;
      size_t k = j;
      while (k > 0 && hmsgs[i][k - 1].timestamp > hm.timestamp) {
        hmsgs[i][k] = hmsgs[i][k - 1];
        k--;
      }
      hmsgs[i][k] = hm;
    }
    for (size_t j = 0; j < s->nh; j++)
      hptrs[i][j] = &hmsgs[i][j];
    ts[i].n_histograms = s->nh;
    ts[i].histograms = s->nh ? hptrs[i] : NULL;
  }
  for (size_t i = 0; i < r->nmeta; i++) {
    const mw_rwref_meta_t *m = &r->meta[i];
    Prometheus__MetricMetadata minit = PROMETHEUS__METRIC_METADATA__INIT;
    meta[i] = minit;
    meta[i].type = (Prometheus__MetricMetadata__MetricType)m->type;
    if (!(strs[3 * i] = mw_rwref_str(m->family, m->family_len)) ||
        !(strs[3 * i + 1] = mw_rwref_str(m->help, m->help_len)) ||
        !(strs[3 * i + 2] = mw_rwref_str(m->unit, m->unit_len)))
      goto done;
    meta[i].metric_family_name = strs[3 * i];
    meta[i].help = strs[3 * i + 1];
    meta[i].unit = strs[3 * i + 2];
    meta_ptrs[i] = &meta[i];
  }
  Prometheus__WriteRequest req = PROMETHEUS__WRITE_REQUEST__INIT;
  req.n_timeseries = r->nseries;
  req.timeseries = r->nseries ? ts_ptrs : NULL;
  req.n_metadata = r->nmeta;
  req.metadata = r->nmeta ? meta_ptrs : NULL;
  size_t size = prometheus__write_request__get_packed_size(&req);
  *out = malloc(size ? size : 1);
  if (!*out) goto done;
  *out_len = prometheus__write_request__pack(&req, *out);
  rc = *out_len == size ? 0 : -1;
done:
  for (size_t i = 0; lmsgs && i < r->nseries; i++) {
    free(lmsgs[i]);
    free(lptrs[i]);
    free(smsgs[i]);
    free(sptrs[i]);
    free(xmsgs[i]);
    free(xptrs[i]);
    for (size_t j = 0; hkeep && hkeep[i] && j < r->series[i].nh; j++) {
      void **both = hkeep[i][j];
      if (!both) continue;
      free(both[0]);
      free(both[1]);
      free(both);
    }
    if (hkeep) free(hkeep[i]);
    if (hmsgs) free(hmsgs[i]);
    if (hptrs) free(hptrs[i]);
  }
  free(hkeep);
  free(hmsgs);
  free(hptrs);
  for (size_t i = 0; xlmsgs && i < nx; i++) {
    free(xlmsgs[i]);
    free(xlptrs[i]);
  }
  for (size_t i = 0; strs && i < 3 * r->nmeta; i++)
    free(strs[i]);
  free(ext);
  free(ts);
  free(ts_ptrs);
  free(lmsgs);
  free(lptrs);
  free(smsgs);
  free(sptrs);
  free(xmsgs);
  free(xptrs);
  free(xlmsgs);
  free(xlptrs);
  free(meta);
  free(meta_ptrs);
  free(strs);
  if (rc != 0) {
    free(*out);
    *out = NULL;
  }
  return rc;
}

/* Makes r with e (reset first; its external labels are set to r's): *out
 * (malloc'd, caller frees) is the protobuf finish compressed, un-snappied,
 * *out_len its length, *raw_len what finish reported as the raw size, and
 * *z, *z_len finish's own output (owned by e, valid until its next finish).
 * 0, or -1 (an mw_rwenc call failed, or the snappy block is bad). */
static int mw_rwref_encode(const mw_rwref_req_t *r, mw_rwenc_t *e, uint8_t **out, size_t *out_len,
                           size_t *raw_len, const uint8_t **z, size_t *z_len) {
  char err[256];
  *out = NULL;
  *out_len = 0;
  mw_rwenc_reset(e);
  if (mw_rwenc_set_external_labels(e, r->ext, r->ext_len, err, sizeof err) != 0) return -1;
  size_t m = 0;
  for (size_t i = 0; i <= r->nseries; i++) {
    for (; m < r->nmeta && (!r->meta_at || r->meta_at[m] <= i || i == r->nseries); m++) {
      const mw_rwref_meta_t *x = &r->meta[m];
      if (mw_rwenc_add_metadata(e, x->type, x->family, x->family_len, x->help, x->help_len, x->unit,
                                x->unit_len, err, sizeof err) != 0)
        return -1;
    }
    if (i == r->nseries) break;
    const mw_rwref_series_t *s = &r->series[i];
    if (r->stored) {
      uint32_t ref;
      size_t sl;
      mw_series_t *tab = mw_series_new();
      int rc = !tab || mw_series_add(tab, s->labels, s->len, mw_labels_hash(s->labels, s->len),
                                     &ref, NULL, err, sizeof err) != 0;
      if (!rc) {
        const uint8_t *st = mw_series_stored(tab, ref, &sl);
        rc = mw_rwenc_add_series_stored(e, st, sl, s->ts, s->values, s->n, err, sizeof err);
      }
      mw_series_free(tab); /* the encoder copied the labels */
      if (rc != 0) return -1;
    } else if (mw_rwenc_add_series(e, s->labels, s->len, s->ts, s->values, s->n, err, sizeof err) !=
               0) {
      return -1;
    }
    for (size_t j = 0; j < s->nex; j++)
      if (mw_rwenc_add_exemplar(e, s->ex[j].labels, s->ex[j].len, s->ex[j].ts, s->ex[j].value, err,
                                sizeof err) != 0)
        return -1;
    for (size_t j = 0; j < s->nh; j++)
      if (mw_rwenc_add_histogram(e, s->hts[j], &s->hist[j], err, sizeof err) != 0) return -1;
  }
  if (mw_rwenc_finish(e, z, z_len, raw_len, err, sizeof err) != 0) return -1;
  size_t ulen;
  if (snappy_uncompressed_length((const char *)*z, *z_len, &ulen) != SNAPPY_OK) return -1;
  *out = malloc(ulen ? ulen : 1);
  if (!*out) return -1;
  *out_len = ulen;
  if (snappy_uncompress((const char *)*z, *z_len, (char *)*out, out_len) != SNAPPY_OK ||
      *out_len != ulen) {
    free(*out);
    *out = NULL;
    return -1;
  }
  return 0;
}

/* The offset of the first byte where a and b differ (the shorter length if
 * one is a prefix of the other), or -1 if they are the same. */
static long mw_rwref_diff(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  size_t n = alen < blen ? alen : blen;
  for (size_t i = 0; i < n; i++)
    if (a[i] != b[i]) return (long)i;
  return alen == blen ? -1 : (long)n;
}

#endif
