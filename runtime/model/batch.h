/* runtime/model/: the data that flows between components: series tables (interned label sets
 * with stable refs) and sample batches. Producers (scrape), transformers (relabel) and
 * consumers (storage, remote, echo) meet here and nowhere else.
 *
 * model/batch.h: the samples batch (metrics; moonwatch.batch.samples in Lua):
 * (series ref, timestamp ms, value) triples stored column-wise, plus the
 * series table the refs point into, plus an optional exemplar column: (sample
 * index, exemplar label set, value, timestamp) in sample order, labels in a
 * batch-owned buffer. A batch without exemplars pays nothing for the column
 * (no allocation, one length check).
 *
 * The histogram column (native histograms, model/histogram.h): histogram samples
 * (series ref, timestamp ms, histogram) in the order they were added, apart from the
 * float samples (mw_batch_len counts float samples only; mw_batch_histograms the
 * histogram ones). As in Prometheus's appender, a series' float and histogram samples
 * are two streams: consumers keep each in order (the WAL writes a batch's float
 * samples then its histogram samples). A stale histogram series gets a histogram
 * stale marker (mw_batch_add_histogram_stale). Spans, buckets and custom values are
 * copied into a batch-owned buffer; like the exemplar column, a batch without
 * histograms pays nothing for it. A consumer that does not know histograms simply
 * ignores the column: such a batch may have mw_batch_len == 0 and histograms. */
#ifndef MW_BATCH_H
#define MW_BATCH_H
#include "model/histogram.h"
#include "model/series.h"
#include <stddef.h>
#include <stdint.h>

/* ffi.cdef begin */
/* --- sample batches --------------------------------------------------------- */

/* A samples batch: (series ref, timestamp, value) of a series table, with
 * exemplars and, optionally, the metric metadata of its families: a scrape
 * cache (exposition/scrapecache.h), opaque here. */
typedef struct mw_batch mw_batch_t;
typedef struct mw_scrapecache mw_scrapecache_t;

/* Metric family types (the metadata a batch may carry). */
enum {
  MW_METRIC_UNKNOWN = 0,
  MW_METRIC_COUNTER = 1,
  MW_METRIC_GAUGE = 2,
  MW_METRIC_HISTOGRAM = 3,
  MW_METRIC_GAUGEHISTOGRAM = 4,
  MW_METRIC_SUMMARY = 5,
  MW_METRIC_INFO = 6,
  MW_METRIC_STATESET = 7
};

/* Creates an empty batch (NULL on out of memory); free with mw_ffi_batch_free. */
mw_batch_t *mw_ffi_batch_new(void);
void mw_ffi_batch_free(mw_batch_t *b);
/* Sample accessors (i below mw_ffi_batch_len). */
size_t mw_ffi_batch_len(const mw_batch_t *b);
uint32_t mw_ffi_batch_ref(const mw_batch_t *b, size_t i);
int64_t mw_ffi_batch_ts(const mw_batch_t *b, size_t i);
double mw_ffi_batch_value(const mw_batch_t *b, size_t i);
/* 1 if sample i is a staleness marker, else 0. */
int mw_ffi_batch_is_stale(const mw_batch_t *b, size_t i);
/* The encoded label set (see mw_ffi_labels_next) of sample i's series; *len
 * receives its length. The bytes belong to the series table; valid while
 * the batch is. NULL if i is out of range. Indexes from mw_ffi_batch_len on
 * name the histogram samples (i - len), as relabel misses do. */
const uint8_t *mw_ffi_batch_labels(const mw_batch_t *b, size_t i, size_t *len);

/* The batch's metric metadata (TYPE/HELP/UNIT of its families; see
 * batch.h, mw_batch_meta): a scrape cache to read with
 * mw_ffi_scrapecache_meta_len/_get or mw_ffi_rwmeta_add_cache, valid while
 * the batch is; NULL if the batch carries none. */
const mw_scrapecache_t *mw_ffi_batch_meta(const mw_batch_t *b);

/* Prometheus's staleness marker value (the NaN with bits 0x7ff0000000000002). */
double mw_ffi_batch_stale_nan(void);

/* Exemplars of the batch (OpenMetrics bodies; relabel keeps those of the
 * samples it keeps), in sample order. */
size_t mw_ffi_batch_exemplars(const mw_batch_t *b);
/* Exemplar k: the index of its sample, its encoded label set (see
 * mw_ffi_labels_next; bytes owned by the batch, valid while the batch is),
 * its timestamp (ms; the scrape's when the body had none) and value.
 * 0, or -1 if k is out of range. */
int mw_ffi_batch_exemplar(const mw_batch_t *b, size_t k, size_t *idx, const uint8_t **labels,
                          size_t *len, int64_t *ts_ms, double *value);

/* Histogram samples (native histograms; model/histogram.h), in the order added. */
size_t mw_ffi_batch_histograms(const mw_batch_t *b);
/* Histogram sample k into *out (its arrays point into the batch, valid while it is
 * and until its next add). 0, or -1 if k is out of range. */
int mw_ffi_batch_histogram(const mw_batch_t *b, size_t k, mw_hsample_t *out);
/* The encoded label set of series ref of the batch's table (*len its length); NULL if
 * ref is not live. */
const uint8_t *mw_ffi_batch_series_labels(const mw_batch_t *b, uint32_t ref, size_t *len);

/* Batches built from Lua (sources written in Lua, tests): a batch that owns a series
 * table of its own (freed with it); NULL on out of memory. */
mw_batch_t *mw_ffi_batch_new_owned(void);
/* Interns label pairs "name 0xFF value 0xFF ..." (any order; see
 * mw_labels_from_pairs) in the batch's own table: the series ref, or -1 with err
 * filled (bad labels, out of memory, a batch that does not own its table). */
int64_t mw_ffi_batch_series_add(mw_batch_t *b, const char *pairs, size_t len, char *err,
                                size_t errlen);
/* Appends a float sample: 0, -1 on out of memory. */
int mw_ffi_batch_add(mw_batch_t *b, uint32_t ref, int64_t ts_ms, double value);
/* Appends a histogram sample (mw_batch_add_histogram): 0, or -1 with err filled. */
int mw_ffi_batch_add_histogram(mw_batch_t *b, uint32_t ref, int64_t ts_ms, const mw_histogram_t *h,
                               char *err, size_t errlen);

/* Appends histogram sample k of src (k below mw_batch_histograms(src)) as a sample of
 * series ref (of b's series table): a sample in a batch is valid already, so its arrays
 * are copied as they are, unchecked. 0, -1 on OOM (b unchanged). */
int mw_batch_copy_histogram(mw_batch_t *b, uint32_t ref, const mw_batch_t *src, size_t k);
/* Appends a histogram staleness marker (mw_batch_add_histogram_stale): 0, -1 on OOM. */
int mw_ffi_batch_add_histogram_stale(mw_batch_t *b, uint32_t ref, int64_t ts_ms, int is_float);
/* 1 if h is a staleness marker (mw_histogram_is_stale), else 0. */
int mw_ffi_batch_histogram_is_stale(const mw_histogram_t *h);

/* Iterates an encoded label set (name 0xFF value 0xFF, sorted by name):
 * stores the label at *pos and advances *pos (start at 0). Returns 1 for a
 * label, 0 at the end, -1 if the bytes are malformed. */
int mw_ffi_labels_next(const uint8_t *enc, size_t len, size_t *pos, const char **name,
                       size_t *name_len, const char **value, size_t *value_len);
/* ffi.cdef end */

/* Bit pattern of Prometheus's staleness marker (value.StaleNaN). */
#define MW_STALE_NAN_BITS 0x7ff0000000000002ULL
/* Bit pattern of the NaN Prometheus parsers normalise every NaN to (value.NormalNaN). */
#define MW_NORMAL_NAN_BITS 0x7ff8000000000001ULL

/* Creates an empty batch referring to series (borrowed: the table must
 * outlive the batch; NULL until set by mw_batch_reset). NULL on OOM. */
mw_batch_t *mw_batch_new(mw_series_t *series);
/* Frees the batch (not its series table). NULL is fine. */
void mw_batch_free(mw_batch_t *b);
/* Empties the batch, keeps its capacity, and points it at series. */
void mw_batch_reset(mw_batch_t *b, mw_series_t *series);
/* Empties the batch and frees its storage (it keeps its series table): a
 * batch that is filled, handed on and then idle (a scrape target's between
 * scrapes) holds no memory while idle. */
void mw_batch_clear(mw_batch_t *b);
/* Drops samples from index n on (no-op if n >= length). */
void mw_batch_truncate(mw_batch_t *b, size_t n);

/* Keeps float sample i only if keep[i] (keep has mw_batch_len(b) entries), in order, in
 * place; exemplars follow their samples. Returns the number kept. */
size_t mw_batch_keep(mw_batch_t *b, const uint8_t *keep);

/* Appends a sample. Returns 0, -1 on out of memory (batch unchanged). */
int mw_batch_add(mw_batch_t *b, uint32_t ref, int64_t ts_ms, double value);
/* Makes room for n more samples without reallocating. 0, -1 on OOM. */
int mw_batch_reserve(mw_batch_t *b, size_t n);

size_t mw_batch_len(const mw_batch_t *b);
/* Bytes the batch holds from malloc. */
size_t mw_batch_mem(const mw_batch_t *b);
mw_series_t *mw_batch_series(const mw_batch_t *b);

/* Metadata travels with the data: a batch may carry a handle to the metric
 * metadata (family -> type, help, unit) of its samples, the scrape cache of
 * the target they were scraped from (mw_scrapecache_meta_next reads it).
 * Borrowed like the series table: it must outlive the batch's use; NULL (the
 * default) means none. Emptying the batch keeps it; a component that makes a
 * new batch from one it received (relabel) hands it on. */
void mw_batch_set_meta(mw_batch_t *b, const mw_scrapecache_t *meta);
const mw_scrapecache_t *mw_batch_meta(const mw_batch_t *b);
/* Column arrays, mw_batch_len entries each; owned by the batch and valid
 * until the next add/reserve/free. */
const uint32_t *mw_batch_refs(const mw_batch_t *b);
const int64_t *mw_batch_timestamps(const mw_batch_t *b);
const double *mw_batch_values(const mw_batch_t *b);

/* One exemplar of a batch (OpenMetrics): it belongs to sample idx. labels is
 * an encoded label set (base/labels.h; sorted, unique names) of labels_len bytes,
 * owned by the batch, valid until its next add/reset/truncate/free. */
typedef struct {
  uint32_t idx;
  uint32_t labels_len;
  const uint8_t *labels;
  int64_t ts_ms;
  double value;
} mw_exemplar_t;

/* Attaches an exemplar to sample idx: labels (len bytes, copied), value and
 * ts_ms. idx must be below mw_batch_len and not below the idx of the last
 * exemplar added (exemplars stay in sample order). 0, or -1 on out of memory
 * or a bad idx (batch unchanged). */
int mw_batch_add_exemplar(mw_batch_t *b, size_t idx, const uint8_t *labels, size_t len,
                          int64_t ts_ms, double value);
/* Number of exemplars, and exemplar k (k below that number) into *e. */
size_t mw_batch_exemplars(const mw_batch_t *b);
void mw_batch_exemplar(const mw_batch_t *b, size_t k, mw_exemplar_t *e);

/* Appends a histogram sample of series ref at ts_ms: h is validated
 * (mw_histogram_validate) and copied (its arrays too; the caller keeps h's). 0, or -1
 * with err filled (the validation error, or "out of memory"; batch unchanged). */
int mw_batch_add_histogram(mw_batch_t *b, uint32_t ref, int64_t ts_ms, const mw_histogram_t *h,
                           char *err, size_t errlen);
/* Appends a histogram staleness marker for series ref (an empty histogram whose sum is
 * the stale NaN; integer or float as the series' samples were). 0, -1 on OOM. */
int mw_batch_add_histogram_stale(mw_batch_t *b, uint32_t ref, int64_t ts_ms, int is_float);
/* Number of histogram samples, and sample k (k below it) into *out: out->h's arrays
 * point into the batch, valid until its next add/reset/truncate/free. */
size_t mw_batch_histograms(const mw_batch_t *b);
void mw_batch_histogram(const mw_batch_t *b, size_t k, mw_hsample_t *out);
/* The series ref of histogram sample k (k below mw_batch_histograms). */
uint32_t mw_batch_histogram_ref(const mw_batch_t *b, size_t k);
/* Drops histogram samples from index n on (no-op if n >= their number); a producer
 * rolling back a failed scrape truncates both columns. mw_batch_reset and
 * mw_batch_clear empty the histogram column too; mw_batch_truncate leaves it. */
void mw_batch_truncate_histograms(mw_batch_t *b, size_t n);

/* The staleness marker value, and a test for it (by bits: a normal NaN is
 * not a staleness marker). */
double mw_batch_stale_nan(void);
int mw_batch_is_stale_value(double v);

#endif
