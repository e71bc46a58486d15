/* runtime/model/: the data that flows between components: series tables (interned label sets
 * with stable refs) and sample batches. Producers (scrape), transformers (relabel) and
 * consumers (storage, remote, echo) meet here and nowhere else.
 *
 * model/batch.h: a sample batch: (series ref, timestamp ms, value) triples stored
 * column-wise, plus the series table the refs point into, plus an optional
 * exemplar column: (sample index, exemplar label set, value, timestamp) in
 * sample order, labels in a batch-owned buffer. A batch without exemplars
 * pays nothing for the column (no allocation, one length check). */
#ifndef MW_BATCH_H
#define MW_BATCH_H
#include <stddef.h>
#include <stdint.h>

#include "ffi.h"

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

/* Appends a sample. Returns 0, -1 on out of memory (batch unchanged). */
int mw_batch_add(mw_batch_t *b, uint32_t ref, int64_t ts_ms, double value);
/* Makes room for n more samples without reallocating. 0, -1 on OOM. */
int mw_batch_reserve(mw_batch_t *b, size_t n);

size_t mw_batch_len(const mw_batch_t *b);
/* Bytes the batch holds from malloc. */
size_t mw_batch_mem(const mw_batch_t *b);
mw_series_t *mw_batch_series(const mw_batch_t *b);
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

/* The staleness marker value, and a test for it (by bits: a normal NaN is
 * not a staleness marker). */
double mw_batch_stale_nan(void);
int mw_batch_is_stale_value(double v);

#endif
