/* runtime/remote/: Remote-Write: the wire format (remote.proto), the request encoder
 * (encode.c), metadata requests (metadata.c) and remote_write's reader of the metrics WAL
 * (wal_reader.c: relabel, shards, encode).
 *
 * remote/encode.h: the Prometheus Remote-Write 1.0 encoder: a WriteRequest
 * (runtime/remote/remote.proto; written by hand, the same bytes protobuf-c packs)
 * compressed with snappy's block format, ready to POST with
 * Content-Encoding: snappy and Content-Type: application/x-protobuf. Plus a
 * decoder (protobuf-c) for tests, fuzzing and mw_rwenc_drop_old.
 *
 * Use: reset, add series (an encoded label set, base/labels.h, and its samples,
 * then its exemplars) and metadata, then finish. The encoder keeps and reuses its buffers, so in
 * steady state a request costs no malloc per sample. Not thread-safe: one
 * encoder per user. */
#ifndef MW_RWENC_H
#define MW_RWENC_H
#include <stddef.h>
#include <stdint.h>

#include "model/histogram.h"

/* ffi.cdef begin */
/* --- remote write: decoding requests (remote/encode.c) --------------------- */

/* A decoded WriteRequest, for test receivers (runtime/remote/encode.c). */
typedef struct mw_rwdec mw_rwdec_t;
/* Decodes a snappy-compressed WriteRequest into *out (free with
 * mw_ffi_rwdec_free). 0, or -1 with *out NULL and err (bad snappy, too
 * large, bad protobuf). */
int mw_ffi_rwdec_new(const uint8_t *buf, size_t len, mw_rwdec_t **out, char *err, size_t errlen);
void mw_ffi_rwdec_free(mw_rwdec_t *d);
/* Series, samples (all series) and metadata entries in the request. */
void mw_ffi_rwdec_counts(const mw_rwdec_t *d, size_t *series, size_t *samples, size_t *metadata);
/* Metadata entry i: type (the protobuf enum, = MW_METRIC_*), family name,
 * help and unit, NUL-terminated, owned by d. 0, -1 if i is out of range. */
int mw_ffi_rwdec_metadata(const mw_rwdec_t *d, size_t i, int *type, const char **name,
                          const char **help, const char **unit);
/* Series i: how many labels and samples it has. 0, -1 if i is out of range. */
int mw_ffi_rwdec_series(const mw_rwdec_t *d, size_t i, size_t *nlabels, size_t *nsamples);
/* Label j of series i (bytes owned by d, not NUL-terminated). 0, -1 if out of range. */
int mw_ffi_rwdec_label(const mw_rwdec_t *d, size_t i, size_t j, const uint8_t **name,
                       size_t *name_len, const uint8_t **value, size_t *value_len);
/* Sample j of series i. 0, -1 if out of range. */
int mw_ffi_rwdec_sample(const mw_rwdec_t *d, size_t i, size_t j, int64_t *ts, double *value);
/* ffi.cdef end */

/* The generated message (remote.pb-c.h in the build dir has the fields). */
struct Prometheus__WriteRequest;

/* The field numbers of remote/remote.proto that mw_rwenc_finish writes itself.
 * remote/remote.proto stays the one definition: test_rwenc checks each number, its
 * type and each message's field count against the descriptors protoc-c
 * generates from it, so an edit there that the encoder does not follow
 * fails the test. */
enum {
  MW_RWENC_WRITE_REQUEST_TIMESERIES = 1,
  MW_RWENC_WRITE_REQUEST_METADATA = 3,
  MW_RWENC_TIME_SERIES_LABELS = 1,
  MW_RWENC_TIME_SERIES_SAMPLES = 2,
  MW_RWENC_TIME_SERIES_EXEMPLARS = 3,
  MW_RWENC_TIME_SERIES_HISTOGRAMS = 4,
  MW_RWENC_LABEL_NAME = 1,
  MW_RWENC_LABEL_VALUE = 2,
  MW_RWENC_SAMPLE_VALUE = 1,
  MW_RWENC_SAMPLE_TIMESTAMP = 2,
  MW_RWENC_EXEMPLAR_LABELS = 1,
  MW_RWENC_EXEMPLAR_VALUE = 2,
  MW_RWENC_EXEMPLAR_TIMESTAMP = 3,
  MW_RWENC_METADATA_TYPE = 1,
  MW_RWENC_METADATA_FAMILY_NAME = 2,
  MW_RWENC_METADATA_HELP = 4,
  MW_RWENC_METADATA_UNIT = 5,
  MW_RWENC_HISTOGRAM_COUNT_INT = 1,
  MW_RWENC_HISTOGRAM_COUNT_FLOAT = 2,
  MW_RWENC_HISTOGRAM_SUM = 3,
  MW_RWENC_HISTOGRAM_SCHEMA = 4,
  MW_RWENC_HISTOGRAM_ZERO_THRESHOLD = 5,
  MW_RWENC_HISTOGRAM_ZERO_COUNT_INT = 6,
  MW_RWENC_HISTOGRAM_ZERO_COUNT_FLOAT = 7,
  MW_RWENC_HISTOGRAM_NEGATIVE_SPANS = 8,
  MW_RWENC_HISTOGRAM_NEGATIVE_DELTAS = 9,
  MW_RWENC_HISTOGRAM_NEGATIVE_COUNTS = 10,
  MW_RWENC_HISTOGRAM_POSITIVE_SPANS = 11,
  MW_RWENC_HISTOGRAM_POSITIVE_DELTAS = 12,
  MW_RWENC_HISTOGRAM_POSITIVE_COUNTS = 13,
  MW_RWENC_HISTOGRAM_RESET_HINT = 14,
  MW_RWENC_HISTOGRAM_TIMESTAMP = 15,
  MW_RWENC_HISTOGRAM_CUSTOM_VALUES = 16,
  MW_RWENC_BUCKET_SPAN_OFFSET = 1,
  MW_RWENC_BUCKET_SPAN_LENGTH = 2
};

typedef struct mw_rwenc mw_rwenc_t;

/* Largest uncompressed request mw_rwenc_decode accepts (a decompression
 * bomb is refused, not allocated). */
#define MW_RWENC_MAX_DECODED (64u << 20)

/* Creates an encoder with no external labels; NULL on out of memory. The
 * caller owns it and frees it with mw_rwenc_free (NULL is fine). */
mw_rwenc_t *mw_rwenc_new(void);
void mw_rwenc_free(mw_rwenc_t *e);

/* Sets the external labels (an encoded label set, sorted and unique; len 0
 * for none), copied into e. Each series gets every external label whose name
 * it does not already have (the series' own value wins, as in Prometheus).
 * 0, or -1 with err (malformed set, out of memory; e keeps the old ones). */
int mw_rwenc_set_external_labels(mw_rwenc_t *e, const uint8_t *enc, size_t len, char *err,
                                 size_t errlen);

/* Starts a new request (keeps the buffers). */
void mw_rwenc_reset(mw_rwenc_t *e);

/* Adds a series: its encoded label set and n samples (ts[i], values[i]).
 * Both are copied; the caller keeps its arrays. Samples are sent in timestamp
 * order (sorted stably here if they are not); values are kept bit for bit, so
 * the staleness marker NaN passes through. 0, or -1 with err (malformed label
 * set, out of memory: the request is then unusable until reset). */
int mw_rwenc_add_series(mw_rwenc_t *e, const uint8_t *labels, size_t len, const int64_t *ts,
                        const double *values, size_t n, char *err, size_t errlen);

/* mw_rwenc_add_series for a label set given as a series table's stored bytes
 * (model/series.h mw_series_stored: symbol ids, base/symtab.h), its names and
 * values copied from the symbols (no text made unless external labels are merged). */
int mw_rwenc_add_series_stored(mw_rwenc_t *e, const uint8_t *st, size_t len, const int64_t *ts,
                               const double *values, size_t n, char *err, size_t errlen);

/* Adds an exemplar (an encoded label set, copied; it may be empty) to the
 * series added last, as TimeSeries.exemplars. 0, or -1 with err (no series
 * yet, malformed label set, out of memory; the exemplar is not added). */
int mw_rwenc_add_exemplar(mw_rwenc_t *e, const uint8_t *labels, size_t len, int64_t ts,
                          double value, char *err, size_t errlen);

/* Adds a native histogram sample (ts ms, h: copied) to the series added last, as
 * TimeSeries.histograms (prompb.Histogram: count_int/zero_count_int and *_deltas for
 * an integer histogram, count_float/zero_count_float and *_counts for a float one,
 * custom_values for schema -53; the oneofs are always sent, even 0, as protobuf-c and
 * Go send a set oneof). A series' histograms are sent in timestamp order (sorted
 * stably at finish if they were not added so); the sum is kept bit for bit (the stale
 * marker). h is not validated here (the batch did). 0, or -1 with err (no series yet,
 * out of memory). */
int mw_rwenc_add_histogram(mw_rwenc_t *e, int64_t ts, const mw_histogram_t *h, char *err,
                           size_t errlen);

/* Adds a metadata entry: type (MW_METRIC_*, which match the protobuf enum),
 * family name, help and unit (not NUL-terminated, copied; each is sent up
 * to its first NUL byte, if it has one, as protobuf-c sends a C string).
 * 0, or -1 (OOM). */
int mw_rwenc_add_metadata(mw_rwenc_t *e, int type, const char *family, size_t family_len,
                          const char *help, size_t help_len, const char *unit, size_t unit_len,
                          char *err, size_t errlen);

/* Series and samples added since the last reset. */
size_t mw_rwenc_series(const mw_rwenc_t *e);
size_t mw_rwenc_samples(const mw_rwenc_t *e);
size_t mw_rwenc_exemplars(const mw_rwenc_t *e);
size_t mw_rwenc_histograms(const mw_rwenc_t *e);

/* Writes the request and compresses it: *out (owned by e, valid until the
 * next finish, reset or free) and *out_len; *raw_len (if not NULL) receives
 * the protobuf size before compression. The protobuf is byte for byte what
 * protobuf-c 1.4 packs for the same messages (test_rwenc, fuzz_rwenc): fields
 * in field-number order, a scalar equal to 0 left out (a -0.0 value too),
 * empty bytes and strings left out. 0, or -1 with err (out of memory). */
int mw_rwenc_finish(mw_rwenc_t *e, const uint8_t **out, size_t *out_len, size_t *raw_len, char *err,
                    size_t errlen);

/* What mw_rwenc_drop_old left in a request and took out of it. min_ts and
 * max_ts span the samples left (the exemplars if no sample is left; 0 if
 * nothing is); raw is the protobuf size before snappy. */
typedef struct {
  uint32_t series, samples, exemplars;
  uint32_t samples_dropped, exemplars_dropped;
  int64_t min_ts, max_ts;
  size_t raw;
  uint32_t histograms, histograms_dropped;
} mw_rwenc_kept_t;

/* Re-encodes a request (buf, len: a snappy WriteRequest, as finish makes)
 * without its samples, histograms and exemplars older than min_ts (ms) and
 * without the series left with none of them; everything else (labels, metadata, order) is
 * kept as it was. For a retry under sample_age_limit: it needs nothing but
 * the request. *out (owned by e, as finish's; NULL, 0 when nothing is left)
 * and *k. 0, or -1 with err (not a valid request, out of memory). */
int mw_rwenc_drop_old(mw_rwenc_t *e, const uint8_t *buf, size_t len, int64_t min_ts,
                      const uint8_t **out, size_t *out_len, mw_rwenc_kept_t *k, char *err,
                      size_t errlen);

/* Decodes a snappy-compressed WriteRequest (as a receiver does) into *out,
 * which the caller frees with mw_rwenc_decode_free. 0, or -1 with *out NULL
 * and err (bad snappy, too large, bad protobuf). */
int mw_rwenc_decode(const uint8_t *buf, size_t len, struct Prometheus__WriteRequest **out,
                    char *err, size_t errlen);
void mw_rwenc_decode_free(struct Prometheus__WriteRequest *req);

/* Checks what the specification requires of a request: every series has
 * labels with non-empty names, sorted by name and unique, a __name__ label,
 * and samples in non-decreasing timestamp order. 0, or -1 with err naming
 * the series (0-based) and the problem. */
int mw_rwenc_check(const struct Prometheus__WriteRequest *req, char *err, size_t errlen);

#endif
