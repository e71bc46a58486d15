/* model/histogram.c: native histogram validation and helpers (see model/histogram.h). */
#include "model/histogram.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "base/err.h"
#include "model/batch.h"

int mw_histogram_is_stale(const mw_histogram_t *h) { return mw_batch_is_stale_value(h->sum); }

/* Spans of one side against its bucket count (Prometheus's checkHistogramSpans). */
static int check_spans(const char *side, const mw_hspan_t *spans, uint32_t n, uint32_t nbuckets,
                       char *err, size_t errlen) {
  uint64_t need = 0;
  if (n && !spans) {
    mw_seterr(err, errlen, "%s side: %u spans without span data", side, n);
    return -1;
  }
  for (uint32_t i = 0; i < n; i++) {
    if (i > 0 && spans[i].offset < 0) {
      mw_seterr(err, errlen,
                "%s side: span number %u with offset %d: histogram has a span whose "
                "offset is negative",
                side, i + 1, spans[i].offset);
      return -1;
    }
    need += spans[i].length;
  }
  if (need != nbuckets) {
    mw_seterr(err, errlen, "%s side: spans need %llu buckets, have %u buckets", side,
              (unsigned long long)need, nbuckets);
    return -1;
  }
  return 0;
}

/* Bucket counts of one side (checkHistogramBuckets): none negative; their sum into *total. */
static int check_buckets(const char *side, const mw_histogram_t *h, int pos, uint64_t *itotal,
                         char *err, size_t errlen) {
  uint32_t n = pos ? h->n_pos : h->n_neg;
  if (!h->is_float) {
    const int64_t *d = pos ? h->pos_deltas : h->neg_deltas;
    if (n && !d) goto missing;
    int64_t c = 0;
    for (uint32_t i = 0; i < n; i++) {
      /* wrap as Go's int64 does, then judge the result */
      c = (int64_t)((uint64_t)c + (uint64_t)d[i]);
      if (c < 0) {
        mw_seterr(err, errlen, "%s side: bucket number %u has observation count of %lld", side,
                  i + 1, (long long)c);
        return -1;
      }
      *itotal += (uint64_t)c;
    }
  } else {
    const double *f = pos ? h->pos_counts : h->neg_counts;
    if (n && !f) goto missing;
    for (uint32_t i = 0; i < n; i++)
      if (!(f[i] >= 0)) {
        mw_seterr(err, errlen, "%s side: bucket number %u has observation count of %g", side, i + 1,
                  f[i]);
        return -1;
      }
  }
  return 0;
missing:
  mw_seterr(err, errlen, "%s side: %u buckets without bucket data", side, n);
  return -1;
}

int mw_histogram_validate(const mw_histogram_t *h, char *err, size_t errlen) {
  /* A stale marker skips the checks of what its values mean (schema, zero threshold,
   * counts), not those of its shape: its arrays are copied, written to the WAL (whose
   * reader refuses more than MW_HIST_MAX_BUCKETS) and sent, where a receiver refuses
   * spans that do not match the buckets. */
  int stale = mw_histogram_is_stale(h);
  int custom = h->schema == MW_HIST_SCHEMA_CUSTOM;
  if (!stale && !custom && (h->schema < MW_HIST_SCHEMA_MIN || h->schema > MW_HIST_SCHEMA_MAX)) {
    mw_seterr(err, errlen, "schema %d: not -4..8 (exponential) or -53 (custom buckets)", h->schema);
    return -1;
  }
  if (h->reset_hint > MW_HIST_RESET_GAUGE) {
    mw_seterr(err, errlen, "counter reset hint %u: not 0..3", h->reset_hint);
    return -1;
  }
  if (h->is_float > 1) {
    mw_seterr(err, errlen, "is_float %u: not 0 or 1", h->is_float);
    return -1;
  }
  if (!stale && !(h->zero_threshold >= 0)) {
    mw_seterr(err, errlen, "zero threshold %g: must be >= 0", h->zero_threshold);
    return -1;
  }
  if (h->n_pos_spans > MW_HIST_MAX_BUCKETS || h->n_neg_spans > MW_HIST_MAX_BUCKETS ||
      h->n_pos > MW_HIST_MAX_BUCKETS || h->n_neg > MW_HIST_MAX_BUCKETS ||
      h->n_custom > MW_HIST_MAX_BUCKETS) {
    mw_seterr(err, errlen, "more than %u spans, buckets or custom values on a side",
              MW_HIST_MAX_BUCKETS);
    return -1;
  }
  if (check_spans("negative", h->neg_spans, h->n_neg_spans, h->n_neg, err, errlen) != 0 ||
      check_spans("positive", h->pos_spans, h->n_pos_spans, h->n_pos, err, errlen) != 0)
    return -1;
  if (stale) {
    const void *pd = h->is_float ? (const void *)h->pos_counts : (const void *)h->pos_deltas;
    const void *nd = h->is_float ? (const void *)h->neg_counts : (const void *)h->neg_deltas;
    if ((h->n_pos && !pd) || (h->n_neg && !nd)) {
      mw_seterr(err, errlen, "%s side: %u buckets without bucket data",
                h->n_pos && !pd ? "positive" : "negative", h->n_pos && !pd ? h->n_pos : h->n_neg);
      return -1;
    }
    if (h->n_custom && !h->custom_values) {
      mw_seterr(err, errlen, "custom buckets: %u custom values without data", h->n_custom);
      return -1;
    }
    return 0;
  }
  uint64_t total = 0;
  if (check_buckets("negative", h, 0, &total, err, errlen) != 0 ||
      check_buckets("positive", h, 1, &total, err, errlen) != 0)
    return -1;
  if (h->is_float) {
    if (!(h->fzero_count >= 0)) {
      mw_seterr(err, errlen, "zero count %g: must be >= 0", h->fzero_count);
      return -1;
    }
    if (!(h->fcount >= 0)) {
      mw_seterr(err, errlen, "count %g: must be >= 0", h->fcount);
      return -1;
    }
  } else {
    total += h->zero_count;
    if (isnan(h->sum) ? total > h->count : total != h->count) {
      mw_seterr(err, errlen, "%llu observations found in buckets, but the count field is %llu",
                (unsigned long long)total, (unsigned long long)h->count);
      return -1;
    }
  }
  if (!custom) {
    if (h->n_custom) {
      mw_seterr(err, errlen, "custom values given with schema %d (only schema -53 has them)",
                h->schema);
      return -1;
    }
    return 0;
  }
  /* Custom buckets (NHCB). */
  if (h->n_neg_spans || h->n_neg) {
    mw_seterr(err, errlen, "custom buckets: negative spans or buckets given");
    return -1;
  }
  if ((h->is_float ? h->fzero_count != 0 : h->zero_count != 0) || h->zero_threshold != 0) {
    mw_seterr(err, errlen, "custom buckets: zero bucket given");
    return -1;
  }
  if (h->n_custom && !h->custom_values) {
    mw_seterr(err, errlen, "custom buckets: %u custom values without data", h->n_custom);
    return -1;
  }
  for (uint32_t i = 0; i < h->n_custom; i++) {
    double v = h->custom_values[i];
    if (!isfinite(v)) {
      mw_seterr(err, errlen, "custom buckets: custom value %u is %g (must be finite)", i + 1, v);
      return -1;
    }
    if (i > 0 && !(v > h->custom_values[i - 1])) {
      mw_seterr(err, errlen, "custom buckets: custom values must be strictly increasing, %g <= %g",
                v, h->custom_values[i - 1]);
      return -1;
    }
  }
  int64_t idx = 0;
  for (uint32_t i = 0; i < h->n_pos_spans; i++) {
    idx += h->pos_spans[i].offset;
    if (idx < 0) {
      mw_seterr(err, errlen, "custom buckets: span number %u starts at bucket %lld", i + 1,
                (long long)idx);
      return -1;
    }
    idx += h->pos_spans[i].length;
  }
  if (idx > (int64_t)h->n_custom + 1) {
    mw_seterr(err, errlen, "custom buckets: spans reach bucket %lld, only %u custom values",
              (long long)idx - 1, h->n_custom);
    return -1;
  }
  return 0;
}

size_t mw_histogram_buckets(const mw_histogram_t *h, int positive, double *counts, int32_t *indexes,
                            size_t cap) {
  const mw_hspan_t *spans = positive ? h->pos_spans : h->neg_spans;
  uint32_t nspans = positive ? h->n_pos_spans : h->n_neg_spans;
  uint32_t n = positive ? h->n_pos : h->n_neg;
  const int64_t *d = positive ? h->pos_deltas : h->neg_deltas;
  const double *f = positive ? h->pos_counts : h->neg_counts;
  size_t k = 0;
  int64_t idx = 0, c = 0;
  for (uint32_t s = 0; s < nspans && k < n && k < cap; s++) {
    idx += spans[s].offset;
    for (uint32_t j = 0; j < spans[s].length && k < n && k < cap; j++, idx++, k++) {
      if (h->is_float) {
        counts[k] = f[k];
      } else {
        c = (int64_t)((uint64_t)c + (uint64_t)d[k]);
        counts[k] = (double)c;
      }
      indexes[k] = (int32_t)idx;
    }
  }
  return k;
}

/* The upper bound of bucket idx at an exponential schema (Prometheus's getBound). */
static double exp_bound(int32_t schema, int64_t idx) {
  if (schema < 0) {
    int64_t e = idx * ((int64_t)1 << -schema);
    if (e == 1024) return DBL_MAX; /* the last finite bucket */
    if (e > 1024) return INFINITY;
    if (e < -1100) return 0;
    return ldexp(1, (int)e);
  }
  int64_t per = (int64_t)1 << schema;
  int64_t frac_idx = idx & (per - 1);
  int64_t e = (idx >> schema) + 1;
  double frac = exp2((double)frac_idx / (double)per - 1.0);
  if (frac_idx == 0 && e == 1025) return DBL_MAX;
  if (e > 1025) return INFINITY;
  if (e < -1100) return 0;
  return ldexp(frac, (int)e);
}

void mw_histogram_bounds(int32_t schema, int32_t idx, const double *custom, uint32_t n, double *lo,
                         double *hi) {
  if (schema == MW_HIST_SCHEMA_CUSTOM) {
    *lo = idx <= 0 ? -INFINITY : (uint32_t)idx - 1 < n ? custom[idx - 1] : INFINITY;
    *hi = idx < 0 ? -INFINITY : (uint32_t)idx < n ? custom[idx] : INFINITY;
    return;
  }
  *lo = exp_bound(schema, (int64_t)idx - 1);
  *hi = exp_bound(schema, idx);
}
