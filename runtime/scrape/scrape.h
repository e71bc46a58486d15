/* runtime/scrape/: prometheus.scrape's C side: a target (scrape.c), its labels, limits and
 * report series, on the exposition parser and the scrape caches of exposition/.
 *
 * scrape/scrape.h: the C side of one scrape target. A target owns two scrape caches:
 * the scraped body's series, whose new series get the target's labels as
 * Prometheus's mutateSampleLabels gives them (honor_labels, exported_
 * prefixes) and are checked against the label limits; and the report series
 * (up, scrape_duration_seconds, ...), which get the target's labels as
 * mutateReportSampleLabels and no limit. One call turns a body into a batch;
 * the batches are valid until the next call on the target. */
#ifndef MW_SCRAPE_H
#define MW_SCRAPE_H
#include <stddef.h>
#include <stdint.h>

#include "base/labels.h"
#include "exposition/parse.h"
#include "exposition/scrapecache.h"
#include "model/batch.h"

/* ffi.cdef begin */
/* --- scrape ----------------------------------------------------------- */

/* One scrape target (runtime/scrape/scrape.c): body and report series of a target,
 * with the target's labels added to every series. */
typedef struct mw_scrape_target mw_scrape_target_t;

typedef struct {
  uint32_t honor_labels;               /* scraped labels win over target labels */
  uint32_t honor_timestamps;           /* keep the body's timestamps */
  uint32_t track_timestamps_staleness; /* staleness markers for timestamped series too */
  uint32_t label_limit;                /* 0: no limit */
  uint32_t label_name_length_limit;    /* 0: no limit */
  uint32_t label_value_length_limit;   /* 0: no limit */
  uint32_t sample_limit;               /* 0: no limit */
  int32_t fallback_format;             /* MW_EXPFMT_TEXT, _OPENMETRICS, _PROTOBUF or _NONE */
  uint32_t utf8_names;                 /* metric_name_validation_scheme "utf8": metric and
                                          label names (scraped and the target's) may be any
                                          UTF-8; 0 "legacy": the body's are parsed with
                                          MW_EXPFMT_LEGACY_NAMES */
  /* Native histograms (protobuf bodies): scrape_native_histograms,
   * scrape_classic_histograms (the classic series of a native histogram too),
   * native_histogram_bucket_limit (0: none), native_histogram_min_bucket_factor
   * (0: none). A change of them applies at the next scrape. */
  uint32_t native_histograms;
  uint32_t classic_histograms;
  uint32_t native_bucket_limit;
  double native_min_bucket_factor;
  uint32_t convert_nhcb; /* convert_classic_histograms_to_nhcb (protobuf bodies) */
} mw_scrape_opts_t;

/* A new target with labels encoded as name 0xFF value 0xFF pairs in any order
 * (labels starting with __ are left out, as Prometheus drops them). NULL with
 * err on bad labels (a name invalid under opts->utf8_names' scheme) or out of
 * memory. Free with mw_ffi_scrape_target_free. */
mw_scrape_target_t *mw_ffi_scrape_target_new(const char *labels, size_t len,
                                             const mw_scrape_opts_t *opts, char *err,
                                             size_t errlen);
void mw_ffi_scrape_target_free(mw_scrape_target_t *t);
/* Changes the options in place. When honor_labels or a label limit changes,
 * the next scrape labels and checks every series again (a series whose labels
 * change is a new series; the old one gets its staleness marker then).
 * utf8_names is kept (the target labels were checked with it: make a new
 * target to change it). */
void mw_ffi_scrape_target_set_opts(mw_scrape_target_t *t, const mw_scrape_opts_t *opts);

/* Parses a scraped body (the format from content_type, NULL when absent, with
 * the target's fallback) into the target's batch, with ts_ms for samples
 * without a timestamp. 0, or -1 with err when the scrape fails (invalid body,
 * a label limit, sample limit exceeded): the batch then holds staleness
 * markers for the series of the previous scrape. stats may be NULL. */
int mw_ffi_scrape_parse(mw_scrape_target_t *t, const char *body, size_t len,
                        const char *content_type, int64_t ts_ms, mw_expfmt_stats_t *stats,
                        char *err, size_t errlen);
/* The same parse in steps, so that the loop runs between them: _begin starts
 * it (0; or -1 with err, the scrape failed as with _parse); body, stats and
 * err stay the caller's until it ends. _step parses about max_bytes more of
 * the body (whole lines; 0: the rest): 1 while there is more, else it has
 * ended with _parse's result (0, or -1 with err). _fail ends it as a failed
 * scrape with the message why (returns -1, err = why). _abort forgets it as
 * if it never began (a scrape cancelled midway; the previous scrape's series
 * stay alive). Options set meanwhile apply when it ends; a new parse, a
 * _fail/_stale or freeing the target aborts one left open. The sample limit
 * and the label limits fail the body at the first sample past them. */
int mw_ffi_scrape_parse_begin(mw_scrape_target_t *t, const char *body, size_t len,
                              const char *content_type, int64_t ts_ms, mw_expfmt_stats_t *stats,
                              char *err, size_t errlen);
int mw_ffi_scrape_parse_step(mw_scrape_target_t *t, size_t max_bytes, char *err, size_t errlen);
int mw_ffi_scrape_parse_fail(mw_scrape_target_t *t, const char *why, char *err, size_t errlen);
void mw_ffi_scrape_parse_abort(mw_scrape_target_t *t);
/* A failed scrape without a body (HTTP error, timeout): staleness markers for
 * the previous scrape's series in the target's batch. */
int mw_ffi_scrape_fail(mw_scrape_target_t *t, int64_t ts_ms);
/* Writes the report series into the report batch at ts_ms, values in this
 * order: up, scrape_duration_seconds, scrape_samples_scraped,
 * scrape_samples_post_metric_relabeling, scrape_series_added, and with
 * extra metrics (n = 8) scrape_timeout_seconds, scrape_sample_limit,
 * scrape_body_size_bytes. They get the target's labels (honor_labels aside)
 * and no label limit applies to them, so a failed scrape reports too.
 * 0 or -1 (err: a bad n, out of memory). */
int mw_ffi_scrape_report(mw_scrape_target_t *t, int64_t ts_ms, const double *values, uint32_t n,
                         char *err, size_t errlen);
/* The target went away (its end-of-run staleness): staleness markers at ts_ms
 * for all its series, body and report, in the two batches. */
int mw_ffi_scrape_stale(mw_scrape_target_t *t, int64_t ts_ms);
/* The batches of the last call (owned by the target). */
mw_batch_t *mw_ffi_scrape_batch(mw_scrape_target_t *t);
mw_batch_t *mw_ffi_scrape_report_batch(mw_scrape_target_t *t);
/* The batches were forwarded: frees their storage (empty until the next
 * call), so an idle target holds none (40 KB at 2,000 samples). */
void mw_ffi_scrape_clear(mw_scrape_target_t *t);
/* Series the target currently tracks (body and report), and the bytes its
 * caches hold. */
size_t mw_ffi_scrape_series(const mw_scrape_target_t *t);
size_t mw_ffi_scrape_mem(const mw_scrape_target_t *t);
/* The target's body cache, for reading its metric metadata (e.g. with
 * mw_ffi_rwmeta_add_cache). Owned by the target, valid while it is. */
const mw_scrapecache_t *mw_ffi_scrape_target_cache(const mw_scrape_target_t *t);
/* ffi.cdef end */

/* Merges target labels into scraped labels as Prometheus's mutateSampleLabels
 * (exposed for tests): in sorted; target sorted, without __ labels. The result
 * goes to *out (n in *out_n) in storage owned by t until the next call. */
int mw_scrape_mutate(mw_scrape_target_t *t, const mw_label_t *in, size_t n, const mw_label_t **out,
                     size_t *out_n, char *err, size_t errlen);

#endif
