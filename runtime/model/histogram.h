/* model/histogram.h: native histograms (Prometheus's histogram.Histogram and
 * histogram.FloatHistogram; Remote-Write 1.0's prompb.Histogram) as the samples
 * batch carries them (model/batch.h: the histogram column).
 *
 * A native histogram has exponential buckets: at schema s (-4..8) the boundaries are
 * powers of base = 2^(2^-s); bucket index i covers (base^(i-1), base^i] on the positive
 * side and [-base^i, -base^(i-1)) on the negative side. Observations whose absolute
 * value is at most zero_threshold go to the zero bucket (zero_count). Schema -53
 * (MW_HIST_SCHEMA_CUSTOM, "NHCB": native histogram with custom buckets) has explicit
 * upper bounds instead: custom_values (finite, strictly increasing; +Inf implied after
 * the last), bucket index i covers (custom_values[i-1], custom_values[i]] with
 * custom_values[-1] = -Inf and custom_values[n] = +Inf; no negative buckets, no zero
 * bucket.
 *
 * Buckets are sparse: spans (offset, length) say which bucket indexes are present.
 * The first span's offset is the index of its first bucket; each later span's offset
 * is the gap (>= 0) after the previous span's last bucket. The spans of a side need
 * exactly as many buckets as the sum of their lengths.
 *
 * Integer histograms (is_float = 0) carry count and zero_count as uint64 (fields
 * count, zero_count) and buckets as deltas: pos_deltas[0] is the first bucket's count,
 * pos_deltas[k] = count[k] - count[k-1] (int64), as Prometheus and prompb hold them.
 * Float histograms (is_float = 1) carry fcount, fzero_count and absolute bucket counts
 * (pos_counts, neg_counts). The fields of the other kind are ignored (keep them 0/NULL).
 *
 * Filling one from a parser (io.prometheus.client.Histogram of metrics.proto):
 *   schema <- schema; zero_threshold <- zero_threshold;
 *   integer (sample_count set, no sample_count_float): is_float = 0, count <-
 *   sample_count, zero_count <- zero_count, pos/neg_deltas <- positive/negative_delta;
 *   float: is_float = 1, fcount <- sample_count_float, fzero_count <- zero_count_float,
 *   pos/neg_counts <- positive/negative_count; sum <- sample_sum; spans <- the
 *   BucketSpans (offset sint32, length uint32) as they are; reset_hint: scrapes give
 *   MW_HIST_RESET_UNKNOWN, or MW_HIST_RESET_GAUGE for a gauge histogram. The pointers
 *   are only read during mw_batch_add_histogram, which copies them into the batch.
 *
 * Staleness: as Prometheus (its head and WAL), a stale marker of a histogram series is
 * a histogram sample whose sum has the staleness NaN's bits (MW_STALE_NAN_BITS) and
 * which is otherwise empty (counts 0, no spans, no buckets). mw_batch_add_histogram_stale
 * appends one; mw_histogram_is_stale tests for one. Producers mark a histogram series
 * stale that way (not with a float stale sample), so it travels through the WAL and
 * remote_write as a histogram (Prometheus sends it as a Histogram with that sum). */
#ifndef MW_HISTOGRAM_H
#define MW_HISTOGRAM_H
#include <stddef.h>
#include <stdint.h>

/* ffi.cdef begin */
/* --- native histograms ------------------------------------------------------ */

/* Counter reset hints (prompb.Histogram.ResetHint, histogram.CounterResetHint). */
enum {
  MW_HIST_RESET_UNKNOWN = 0,
  MW_HIST_RESET_YES = 1,
  MW_HIST_RESET_NO = 2,
  MW_HIST_RESET_GAUGE = 3
};
/* Schemas: exponential -4..8, and custom buckets (NHCB). */
enum { MW_HIST_SCHEMA_MIN = -4, MW_HIST_SCHEMA_MAX = 8, MW_HIST_SCHEMA_CUSTOM = -53 };

/* A span of consecutive buckets (prompb.BucketSpan). */
typedef struct {
  int32_t offset;
  uint32_t length;
} mw_hspan_t;

/* A native histogram (see the header comment for the meaning of each field). The
 * arrays are borrowed: a caller that fills one keeps them alive for the call it passes
 * the struct to; one read from a batch points into the batch (valid while it is). */
typedef struct {
  int32_t schema;
  uint8_t is_float;   /* 0: integer histogram; 1: float histogram */
  uint8_t reset_hint; /* MW_HIST_RESET_* */
  double zero_threshold;
  uint64_t count, zero_count; /* integer histograms */
  double fcount, fzero_count; /* float histograms */
  double sum;
  uint32_t n_pos_spans, n_neg_spans;
  const mw_hspan_t *pos_spans, *neg_spans;
  uint32_t n_pos, n_neg;                  /* buckets on each side */
  const int64_t *pos_deltas, *neg_deltas; /* integer: n_pos / n_neg deltas */
  const double *pos_counts, *neg_counts;  /* float: n_pos / n_neg counts */
  uint32_t n_custom;
  const double *custom_values; /* schema -53 only: the upper bounds */
} mw_histogram_t;

/* A histogram sample of a batch: series ref, timestamp and histogram. */
typedef struct {
  uint32_t ref;
  int64_t ts_ms;
  mw_histogram_t h;
} mw_hsample_t;
/* ffi.cdef end */

/* Bounds: more than this many spans or buckets on a side, or custom values, is refused
 * (Prometheus's bucket limits are far lower; this only bounds memory for bad input). */
#define MW_HIST_MAX_BUCKETS 65536u

/* Checks h as Prometheus does before it stores one (ValidateHistogram,
 * ValidateFloatHistogram, plus the schema and custom-bucket rules): schema in -4..8 or
 * -53; reset_hint 0..3; zero_threshold >= 0 and not NaN; spans vs bucket counts (every
 * span after the first has an offset >= 0, the lengths add up to the buckets given);
 * no negative bucket count (integer: the running sum of the deltas); an integer
 * histogram's count equals the sum of its buckets and zero count (at least it when the
 * sum is NaN); custom_values only with schema -53, finite and strictly increasing, and
 * then no negative side, no zero bucket, positive indexes within 0..n_custom. A stale
 * marker (mw_histogram_is_stale) is checked for its shape only (reset_hint, is_float,
 * the bounds, spans vs bucket counts, data behind every count), not for its schema,
 * zero threshold or counts. 0, or -1 with err naming what is wrong
 * ("positive side: spans need 3 buckets, have 2 buckets"). */
int mw_histogram_validate(const mw_histogram_t *h, char *err, size_t errlen);

/* 1 if h is a staleness marker (its sum has the stale NaN's bits), else 0. */
int mw_histogram_is_stale(const mw_histogram_t *h);

/* The counts of h's buckets, expanded: for bucket k of the positive side (k below
 * n_pos) its absolute count as a double (integer histograms: the running sum of the
 * deltas), and its index (the span offsets resolved). Reads one side at a time:
 * positive != 0 for the positive side. For printers and tests; a hot path walks the
 * spans itself. Returns the number of buckets written (at most cap). */
size_t mw_histogram_buckets(const mw_histogram_t *h, int positive, double *counts, int32_t *indexes,
                            size_t cap);

/* The bounds of bucket index idx on the positive side of a histogram of this schema:
 * (*lo, *hi]. Schema -53 reads custom (n values). For exponential schemas the bounds
 * are exact powers of two at schema <= 0 and computed with ldexp/exp2 otherwise (as
 * Prometheus's getBound does: exact at every power of two). */
void mw_histogram_bounds(int32_t schema, int32_t idx, const double *custom, uint32_t n, double *lo,
                         double *hi);

#endif
