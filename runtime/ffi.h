/*
 * The FFI surface of the moonwatch runtime: every C function Lua calls through
 * the LuaJIT FFI is declared here, and only here. This file is compiled by the
 * C sources and tests and handed verbatim to ffi.cdef (preprocessor lines are
 * stripped by cmake/embed_cdef.cmake), so a signature drift fails the build.
 *
 * Rules (OpenResty's): no lua_State, never call back into Lua, return an int
 * status (0 ok, -1 error) and report errors through an out-parameter.
 */
#ifndef MW_FFI_H
#define MW_FFI_H
#include <stddef.h>
#include <stdint.h>

/* --- core ------------------------------------------------------------- */

/* The text of this header for ffi.cdef (generated at build time). */
const char *mw_ffi_cdef(void);
/* Wall-clock time in seconds since the epoch, with sub-microsecond resolution. */
double mw_ffi_time_now(void);
/* Monotonic time in seconds (CLOCK_MONOTONIC). */
double mw_ffi_time_monotonic(void);
/* Version and revision strings baked in at build time. */
const char *mw_ffi_version(void);
const char *mw_ffi_revision(void);
/* SHA-256 of data[0..len) as 64 lowercase hex digits and a NUL into out[65]. */
void mw_ffi_sha256_hex(const char *data, size_t len, char *out);
/* Arms the shutdown watchdog (runtime/base/watchdog.h): after the first SIGINT or
 * SIGTERM, if the process is still alive `timeout` seconds later, one log line
 * (JSON when json != 0, logfmt otherwise) goes to stderr and the process ends
 * with _exit(1), even with the event loop stuck. Call after the loop's own
 * handlers for both signals are installed (it chains to them). Later calls
 * update the timeout and the format. Returns 0, or -1 and the reason in err. */
int mw_ffi_watchdog_arm(double timeout, int json, char *err, size_t errlen);
/* Arms the exit guard: an exit of the process that does not come through
 * moonwatch's own path (main returning) logs one line with its status at
 * level error. Later calls update the format. Returns 0 or -1. */
int mw_ffi_exit_guard_arm(int json);

/* --- exposition / series / batch ------------------------------------- */

/* Opaque handles. A scrape cache (one per scrape target) owns a series table
 * and remembers, from one scrape to the next, which series line maps to which
 * series ref; a batch holds samples whose refs point into that table. */
typedef struct mw_series mw_series_t;
typedef struct mw_batch mw_batch_t;
typedef struct mw_scrapecache mw_scrapecache_t;

/* Exposition formats (mw_ffi_expfmt_parse's fallback, stats.format). */
enum { MW_EXPFMT_NONE = 0, MW_EXPFMT_TEXT = 1, MW_EXPFMT_OPENMETRICS = 2 };

/* Parse flags, or-ed. */
enum {
  MW_EXPFMT_IGNORE_TIMESTAMPS = 1,  /* honor_timestamps = false */
  MW_EXPFMT_SKIP_CREATED = 2,       /* OpenMetrics: drop _created series of counters,
                                       histograms and summaries */
  MW_EXPFMT_NO_STALE = 4,           /* do not append staleness markers for gone series */
  MW_EXPFMT_TRACK_TS_STALENESS = 8, /* staleness markers also for series with timestamps */
  MW_EXPFMT_LEGACY_NAMES = 16       /* metric_name_validation_scheme "legacy": a quoted name
                                       outside [a-zA-Z_:][a-zA-Z0-9_:]* (metric) or
                                       [a-zA-Z_][a-zA-Z0-9_]* (label) fails the body */
};

/* Metric family types (metadata). */
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

/* What one parse did. */
typedef struct {
  uint64_t samples;         /* samples appended, stale markers excluded (scrape_samples_scraped) */
  uint64_t series_added;    /* series not in the previous scrape (scrape_series_added) */
  uint64_t stale;           /* staleness markers appended for series gone since the last scrape */
  uint64_t duplicates;      /* samples dropped: same series twice in one body */
  uint64_t exemplars;       /* OpenMetrics exemplars attached to samples of the batch */
  uint64_t created_skipped; /* _created samples dropped by MW_EXPFMT_SKIP_CREATED */
  int32_t format;           /* the format used, MW_EXPFMT_TEXT or MW_EXPFMT_OPENMETRICS */
  int32_t fallback_used;    /* 1 if Content-Type was missing or unsupported */

  /* Exemplars dropped as Prometheus's appender refuses them (a repeated label
   * name, labels over 128 code points, timestamp out of range); the sample
   * is kept. */
  uint64_t exemplars_invalid;
  /* Samples dropped: an OpenMetrics timestamp whose milliseconds do not fit
   * int64 (Prometheus's storage refuses them as out of bounds). */
  uint64_t out_of_bounds;
  /* Samples parsed before the body failed (0 when it parsed): what Prometheus
   * reports as scrape_samples_scraped for a failed body. A body over the
   * sample limit stops at the first sample past it: sample_limit + 1. */
  uint64_t parsed;
} mw_expfmt_stats_t;

/* Creates a scrape cache (NULL on out of memory); free with
 * mw_ffi_scrapecache_free. */
mw_scrapecache_t *mw_ffi_scrapecache_new(void);
void mw_ffi_scrapecache_free(mw_scrapecache_t *c);
/* Number of metric families whose metadata (TYPE/HELP/UNIT) the cache knows. */
size_t mw_ffi_scrapecache_meta_len(const mw_scrapecache_t *c);
/* Metadata of family i (0-based): name, type (MW_METRIC_*), help and unit
 * (unescaped; empty if absent). Pointers belong to the cache and are valid
 * until the next parse. Returns 0, -1 if i is out of range. */
int mw_ffi_scrapecache_meta_get(const mw_scrapecache_t *c, size_t i, const char **name,
                                size_t *name_len, int *type, const char **help, size_t *help_len,
                                const char **unit, size_t *unit_len);

/* Creates an empty batch (NULL on out of memory); free with mw_ffi_batch_free. */
mw_batch_t *mw_ffi_batch_new(void);
void mw_ffi_batch_free(mw_batch_t *b);

/* Parses a whole exposition body into batch b (cleared first; it then refers
 * to c's series table), using and updating the scrape cache c. content_type
 * is the response's Content-Type (NULL or "" if missing); fallback
 * (MW_EXPFMT_*) is used when it is missing or unsupported, MW_EXPFMT_NONE
 * makes that an error. Samples without a timestamp get default_ts_ms, as do
 * staleness markers. flags: MW_EXPFMT_* parse flags. stats may be NULL.
 * Returns 0; on an invalid body -1, err (errlen bytes, caller's) names the
 * line and the problem, and b holds only the staleness markers for every
 * series of the previous scrape, as Prometheus does for a failed scrape.
 * b must not be used across two parses of the same cache: series gone in one
 * parse are deleted at the start of the next. */
int mw_ffi_expfmt_parse(mw_scrapecache_t *c, mw_batch_t *b, const char *body, size_t len,
                        const char *content_type, int fallback, int64_t default_ts_ms,
                        uint32_t flags, mw_expfmt_stats_t *stats, char *err, size_t errlen);

/* Sample accessors (i below mw_ffi_batch_len). */
size_t mw_ffi_batch_len(const mw_batch_t *b);
uint32_t mw_ffi_batch_ref(const mw_batch_t *b, size_t i);
int64_t mw_ffi_batch_ts(const mw_batch_t *b, size_t i);
double mw_ffi_batch_value(const mw_batch_t *b, size_t i);
/* 1 if sample i is a staleness marker, else 0. */
int mw_ffi_batch_is_stale(const mw_batch_t *b, size_t i);
/* The encoded label set (see mw_ffi_labels_next) of sample i's series; *len
 * receives its length. The bytes belong to the series table; valid while
 * the batch is. NULL if i is out of range. */
const uint8_t *mw_ffi_batch_labels(const mw_batch_t *b, size_t i, size_t *len);

/* The batch's metric metadata (TYPE/HELP/UNIT of its families; see
 * batch.h, mw_batch_meta): a scrape cache to read with
 * mw_ffi_scrapecache_meta_len/_get or mw_ffi_rwmeta_add_cache, valid while
 * the batch is; NULL if the batch carries none. */
const mw_scrapecache_t *mw_ffi_batch_meta(const mw_batch_t *b);
/* A number that no other scrape cache of this process has (its series
 * table's uid): tells metadata sources apart across batches. */
uint64_t mw_ffi_scrapecache_uid(const mw_scrapecache_t *c);

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

/* Iterates an encoded label set (name 0xFF value 0xFF, sorted by name):
 * stores the label at *pos and advances *pos (start at 0). Returns 1 for a
 * label, 0 at the end, -1 if the bytes are malformed. */
int mw_ffi_labels_next(const uint8_t *enc, size_t len, size_t *pos, const char **name,
                       size_t *name_len, const char **value, size_t *value_len);

/* --- log-entry batches (runtime/model/logbatch.h) -------------------- */

/* A log-entry batch: entries (stream, timestamp ns, line, structured metadata)
 * of streams (label sets) kept once per batch. */
typedef struct mw_logbatch mw_logbatch_t;
/* One entry as read back; pointers owned by the batch, valid until its next change. */
typedef struct {
  uint32_t stream; /* index of its stream (mw_ffi_logbatch_stream_labels) */
  uint32_t line_len;
  uint32_t meta_len; /* structured metadata: name 0xFF value 0xFF pairs, in order */
  int64_t ts_ns;     /* nanoseconds since the epoch */
  const char *line;
  const uint8_t *meta;
} mw_logentry_t;

/* NULL on out of memory; free with mw_ffi_logbatch_free. */
mw_logbatch_t *mw_ffi_logbatch_new(void);
void mw_ffi_logbatch_free(mw_logbatch_t *b);
/* Empties the batch, keeps its capacity. */
void mw_ffi_logbatch_reset(mw_logbatch_t *b);
/* The index of the stream whose labels are the name 0xFF value 0xFF pairs in
 * any order (sorted here; empty values dropped, as Prometheus and Loki treat
 * them as absent), added if new. >= 0, or -1 with err (a name twice, a name
 * that is not UTF-8, out of memory). */
int64_t mw_ffi_logbatch_stream(mw_logbatch_t *b, const char *pairs, size_t len, char *err,
                               size_t errlen);
/* Appends an entry: 0, or -1 (unknown stream, a line over 64 MiB, out of memory). */
int mw_ffi_logbatch_add(mw_logbatch_t *b, uint32_t stream, int64_t ts_ns, const char *line,
                        size_t len, const char *meta, size_t mlen);
size_t mw_ffi_logbatch_len(const mw_logbatch_t *b);
size_t mw_ffi_logbatch_streams(const mw_logbatch_t *b);
/* Sum of the entries' line lengths. */
size_t mw_ffi_logbatch_bytes(const mw_logbatch_t *b);
/* The encoded label set of stream s (NULL if out of range). */
const uint8_t *mw_ffi_logbatch_stream_labels(const mw_logbatch_t *b, uint32_t s, size_t *len);
/* Entry i into *e: 0, or -1 if i is out of range. */
int mw_ffi_logbatch_entry(const mw_logbatch_t *b, size_t i, mw_logentry_t *e);

/* Writes batch's samples as exposition lines with timestamps (text: ms;
 * OpenMetrics: seconds) into a new buffer *out (free with
 * mw_ffi_metrics_buf_free). Staleness markers print as NaN. 0, or -1 on OOM. */
int mw_ffi_batch_write(const mw_batch_t *batch, int openmetrics, char **out, size_t *out_len);

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
  int32_t fallback_format;             /* MW_EXPFMT_TEXT, _OPENMETRICS or _NONE */
  uint32_t utf8_names;                 /* metric_name_validation_scheme "utf8": metric and
                                          label names (scraped and the target's) may be any
                                          UTF-8; 0 "legacy": the body's are parsed with
                                          MW_EXPFMT_LEGACY_NAMES */
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

/* --- relabel ---------------------------------------------------------- */
/* Prometheus relabeling (runtime/relabel/relabel.h has the full contract). Build an array of
 * rules, compile it once, then apply the program to label sets with a scratch and read
 * the result back. Strings are (ptr, len); ptr == NULL means "not set" (default). */

typedef struct {
  const char *ptr;
  uint32_t len;
} mw_ffi_relabel_str_t;

typedef struct {
  const mw_ffi_relabel_str_t *source_labels; /* n_source_labels names */
  uint32_t n_source_labels;
  uint32_t name_validation;          /* 0 legacy [a-zA-Z_][a-zA-Z0-9_]*, 1 utf8 */
  mw_ffi_relabel_str_t separator;    /* default ";" */
  mw_ffi_relabel_str_t regex;        /* default "(.*)" (RE2 syntax) */
  mw_ffi_relabel_str_t replacement;  /* default "$1" */
  mw_ffi_relabel_str_t target_label; /* default "" */
  mw_ffi_relabel_str_t action;       /* default "replace" */
  uint64_t modulus;                  /* hashmod; 0 = not set */
} mw_ffi_relabel_rule_t;

/* One label (the layout of mw_label_t); strings are not NUL-terminated. */
typedef struct {
  const char *name;
  const char *value;
  uint32_t name_len;
  uint32_t value_len;
} mw_ffi_relabel_label_t;

typedef struct mw_relabel_program mw_ffi_relabel_program_t;
typedef struct mw_relabel_scratch mw_ffi_relabel_scratch_t;

/* Compiles the n rules into *out (free with mw_ffi_relabel_program_free). Rule bytes
 * are copied; the caller keeps them. 0 ok; -1 with *out NULL and err (err_size bytes)
 * naming the rule (1-based) and field. */
int mw_ffi_relabel_program_new(const mw_ffi_relabel_rule_t *rules, uint32_t n,
                               mw_ffi_relabel_program_t **out, char *err, size_t err_size);
/* Frees a program (NULL ok). */
void mw_ffi_relabel_program_free(mw_ffi_relabel_program_t *p);
/* Checks that re[0..len) compiles as an RE2-syntax regex the way every regex of
 * the runtime is compiled (mw_re2_compile: Go's syntax and semantics). 0, or -1
 * with a message in err (err_size bytes) ending with "(at offset N)". Nothing is
 * kept. For validating arguments before anything runs. */
int mw_ffi_regex_check(const char *re, size_t len, char *err, size_t err_size);
/* A new scratch (NULL when out of memory); one per thread; free it with _free. */
mw_ffi_relabel_scratch_t *mw_ffi_relabel_scratch_new(void);
void mw_ffi_relabel_scratch_free(mw_ffi_relabel_scratch_t *s);
/* Applies p to the n labels (sorted by name preferred; unsorted is sorted first).
 * Returns 1 kept, 0 dropped, -1 out of memory. The caller keeps labels' bytes alive
 * while it reads the result. */
int mw_ffi_relabel_apply(const mw_ffi_relabel_program_t *p, mw_ffi_relabel_scratch_t *s,
                         const mw_ffi_relabel_label_t *labels, uint32_t n);
/* The labels of the last mw_ffi_relabel_apply on s, sorted by name (none after a
 * drop): returns their count and stores the array in *labels. Owned by s, valid until
 * the next apply/free on s. */
uint32_t mw_ffi_relabel_result(const mw_ffi_relabel_scratch_t *s,
                               const mw_ffi_relabel_label_t **labels);

/* A relabel program applied to whole batches with a cache of results per
 * input series, a memo per source series table (runtime/relabel/cache.c). The output batch belongs
 * to the cache and is valid until its next apply or reset. */
typedef struct mw_relabel_cache mw_relabel_cache_t;
typedef struct {
  uint64_t hits, misses, processed, written, flushes;
} mw_relabel_stats_t;

/* A cache of at most max_size input series (0: 100000); NULL on OOM. */
mw_relabel_cache_t *mw_ffi_relabel_cache_new(uint32_t max_size);
void mw_ffi_relabel_cache_free(mw_relabel_cache_t *c);
/* Sets the program (kept by the caller while in use; NULL: misses are left to
 * the caller, see _misses/_put) and empties the cache. 0, -1 on OOM. */
int mw_ffi_relabel_cache_reset(mw_relabel_cache_t *c, const mw_ffi_relabel_program_t *p);
/* Relabels every sample of in into the output batch, adding to *st. Without a
 * program, samples of uncached series are left out and listed by _misses. 0,
 * or -1 with err on OOM. */
int mw_ffi_relabel_cache_apply(mw_relabel_cache_t *c, const mw_batch_t *in, mw_relabel_stats_t *st,
                               char *err, size_t errlen);
mw_batch_t *mw_ffi_relabel_cache_batch(mw_relabel_cache_t *c);
/* Indices in the last input batch of the samples left out as misses. */
size_t mw_ffi_relabel_cache_misses(const mw_relabel_cache_t *c, const uint32_t **idx);
/* Caches the result for sample i of the last input batch (a miss left to the
 * caller): out, the encoded label set, or with out_len 0, dropped. Call before
 * the input batch goes. 0, or -1 with err (invalid label name, OOM). */
int mw_ffi_relabel_cache_put(mw_relabel_cache_t *c, uint32_t i, const uint8_t *out, size_t out_len,
                             char *err, size_t errlen);
/* Results the cache holds: those computed since it was last emptied, also
 * those replaced since (their output series stay until the cache is emptied). */
size_t mw_ffi_relabel_cache_len(const mw_relabel_cache_t *c);
/* Output series the cache holds (at most _len). */
size_t mw_ffi_relabel_cache_outputs(const mw_relabel_cache_t *c);

/* --- metrics ---------------------------------------------------------- */

/* The self-metrics registry (runtime/exposition/registry.c, exposition/write.c,
 * exporters/process/self.c). Families and children are int32 handles (-1 = error); a stale handle
 * (its child or family was deleted) is refused, never dereferenced. Updates by handle are O(1) and
 * never allocate. err/errlen: the caller's buffer for a message. The registry is used from the
 * event loop thread only. */
typedef struct mw_metrics mw_metrics_t;

/* Exposition formats (mw_ffi_metrics_negotiate, mw_ffi_metrics_expose). */
enum {
  MW_METRICS_FMT_TEXT = 0,             /* text/plain; version=0.0.4 */
  MW_METRICS_FMT_OPENMETRICS = 1,      /* application/openmetrics-text; version=1.0.0 */
  MW_METRICS_FMT_OPENMETRICS_0_0_1 = 2 /* same body, version=0.0.1 content type */
};

/* New empty registry (NULL on out of memory); the caller frees it with
 * mw_ffi_metrics_free (tie it to the GC with ffi.gc). */
mw_metrics_t *mw_ffi_metrics_create(void);
void mw_ffi_metrics_free(mw_metrics_t *reg);

/* Registers a family; returns its handle or -1 (err). type: "counter",
 * "gauge", "histogram" or "untyped". label_names: names joined by "\x1f"
 * (len 0 = no labels); a "component_id" label ties children to a component.
 * buckets/nbuckets: histogram upper bounds, strictly increasing (NULL/0 =
 * client_golang's default buckets); ignored for other types. Registering the
 * same definition again returns the same handle; a different one is an
 * error. A family without labels has its one child from the start. */
int32_t mw_ffi_metrics_family_add(mw_metrics_t *reg, const char *name, const char *help,
                                  const char *type, const char *label_names, size_t label_names_len,
                                  const double *buckets, size_t nbuckets, char *err, size_t errlen);
/* Deletes a family and its children. 0 or -1 (stale handle). */
int mw_ffi_metrics_family_del(mw_metrics_t *reg, int32_t family);

/* Handle of the child with these label values, joined by "\x1f" in the
 * family's label order (with one label the whole string is the value),
 * created at zero if new; -1 (err) on a bad handle, count or UTF-8. */
int32_t mw_ffi_metrics_child_get(mw_metrics_t *reg, int32_t family, const char *values, size_t len,
                                 char *err, size_t errlen);
/* Deletes one child. 0 or -1 (stale handle). */
int mw_ffi_metrics_child_del(mw_metrics_t *reg, int32_t child);
/* Deletes every child whose component_id label is component_id[0..len);
 * returns how many. */
int mw_ffi_metrics_component_del(mw_metrics_t *reg, const char *component_id, size_t len);

/* Updates by child handle: 0, or -1 on a stale handle or a type mismatch
 * (inc/add: counter (v >= 0), gauge, untyped; set: counter, gauge, untyped;
 * observe: histogram). get: the value (histogram: sample count). */
int mw_ffi_metrics_inc(mw_metrics_t *reg, int32_t child);
int mw_ffi_metrics_add(mw_metrics_t *reg, int32_t child, double v);
int mw_ffi_metrics_set(mw_metrics_t *reg, int32_t child, double v);
int mw_ffi_metrics_observe(mw_metrics_t *reg, int32_t child, double v);
int mw_ffi_metrics_get(mw_metrics_t *reg, int32_t child, double *out);

/* Registers the process_* families (client_golang's process collector) and
 * refreshes them from procfs at each exposition. procfs_root NULL = "/proc",
 * pid 0 = self. Call once per registry. 0 or -1 (err). */
int mw_ffi_metrics_process_add(mw_metrics_t *reg, const char *procfs_root, int pid, char *err,
                               size_t errlen);

/* Writes the whole registry (after running its collectors) in format
 * MW_METRICS_FMT_*, gzipped if gzip != 0, into a new buffer: *out, *len. The
 * caller frees *out with mw_ffi_metrics_buf_free (which frees the buffers of
 * every exposition writer: node and process exporters too). 0, or -1 (err;
 * *out NULL). */
int mw_ffi_metrics_expose(mw_metrics_t *reg, int format, int gzip, char **out, size_t *len,
                          char *err, size_t errlen);
void mw_ffi_metrics_buf_free(char *p);

/* The format for an Accept header value (NULL if absent), as client_golang's
 * promhttp with OpenMetrics enabled chooses it. */
int mw_ffi_metrics_negotiate(const char *accept);
/* The Content-Type for a format (static string). */
const char *mw_ffi_metrics_content_type(int format);
/* 1 if the Accept-Encoding value (NULL if absent) selects gzip, else 0. */
int mw_ffi_metrics_wants_gzip(const char *accept_encoding);

/* --- node --- */
/* prometheus.exporter.unix: node_exporter 1.5.0's Linux collectors in C
 * (runtime/exporters/node/node.h has the full contract). Fill the options with
 * mw_ffi_node_opts_init, override fields, create a collector set once, then
 * collect the whole exposition into a buffer as often as needed. Strings are
 * NUL-terminated and copied by mw_ffi_node_new. Event loop thread only. */
typedef struct mw_node mw_node_t;

typedef struct {
  const char *collectors;              /* enabled collectors, comma-separated */
  const char *procfs_path;             /* default "/proc" */
  const char *sysfs_path;              /* default "/sys" */
  const char *rootfs_path;             /* default "/" */
  const char *udev_data_path;          /* default "/run/udev/data" */
  const char *fs_mount_points_exclude; /* filesystem: mount points to skip (Go regex) */
  const char *fs_types_exclude;        /* filesystem: fs types to skip */
  double fs_mount_timeout;             /* filesystem: seconds a statfs may take, default 5 */
  const char *netdev_device_include;   /* netdev: NULL or empty = no filter */
  const char *netdev_device_exclude;
  int32_t netdev_netlink;                /* netdev: 1 = rtnetlink (default), 0 = /proc/net/dev */
  const char *disk_device_include;       /* diskstats: NULL or empty = no filter */
  const char *disk_device_exclude;       /* diskstats: default node_exporter's */
  const char *netstat_fields;            /* netstat: fields to keep */
  const char *vmstat_fields;             /* vmstat: fields to keep */
  int32_t cpu_guest;                     /* cpu: node_cpu_guest_seconds_total, default 1 */
  int32_t cpu_info;                      /* cpu: node_cpu_info, default 0 */
  const char *cpu_flags_include;         /* cpu: node_cpu_flag_info filter, NULL = none */
  const char *cpu_bugs_include;          /* cpu: node_cpu_bug_info filter, NULL = none */
  int32_t stat_softirq;                  /* stat: node_softirqs_total, default 0 */
  const char *netclass_ignored_devices;  /* netclass: devices to skip, default "^$" */
  int32_t netclass_ignore_invalid_speed; /* netclass: no speed_bytes for speed < 0, default 0 */
  const char *arp_device_include;        /* arp: NULL or empty = no filter */
  const char *arp_device_exclude;
  int32_t arp_netlink;             /* arp: 1 = rtnetlink neighbours, 0 = /proc/net/arp (default) */
  const char *hwmon_chip_include;  /* hwmon: chips to keep, NULL or empty = no filter */
  const char *hwmon_chip_exclude;  /* hwmon: chips to skip */
  const char *powersupply_ignored; /* powersupplyclass: supplies to skip, default "^$" */
  const char *textfile_directory;  /* textfile: directory (or glob) of *.prom files, "" = none */
} mw_ffi_node_opts_t;

/* Fills o with the defaults: node_exporter 1.5.0's flag defaults and every
 * default-enabled collector this build implements (static strings). */
void mw_ffi_node_opts_init(mw_ffi_node_opts_t *o);
/* Every collector this build implements, comma-separated, sorted (static). */
const char *mw_ffi_node_collectors(void);
/* Builds a collector set into *out (free with mw_ffi_node_free). 0, or -1
 * with *out NULL and a message in err (unknown collector, bad regex). */
int mw_ffi_node_new(const mw_ffi_node_opts_t *o, mw_node_t **out, char *err, size_t errlen);
void mw_ffi_node_free(mw_node_t *n);
/* Collects every enabled collector and writes the exposition in format
 * MW_METRICS_FMT_*, gzipped if gzip != 0, into a new buffer *out, *len; the
 * caller frees it with mw_ffi_metrics_buf_free. 0, or -1 with a message in err
 * (out of memory); a failing collector is reported in the body
 * (node_scrape_collector_success 0) and by mw_ffi_node_errors. */
int mw_ffi_node_collect(mw_node_t *n, int format, int gzip, char **out, size_t *len, char *err,
                        size_t errlen);
/* The failures of the last collection, one "collector: message" per line,
 * empty if none. Owned by n, valid until the next collect. */
const char *mw_ffi_node_errors(const mw_node_t *n);

/* --- process exporter --- */
/* ncabatoff/process-exporter natively (runtime/exporters/process/group.h has the full
 * contract): processes matched by matchers are grouped by a name template and
 * exposed as namedprocess_namegroup_* metrics. A tracker keeps state between
 * collections (counters stay monotonic while processes exit), so create one
 * per component and collect from it at each scrape. */
typedef struct mw_procgroup mw_procgroup_t;

/* Options; 0 is false, anything else true. */
typedef struct {
  const char *procfs_path;     /* NULL or empty: "/proc" */
  int32_t track_children;      /* unmatched children count toward their matched ancestor */
  int32_t track_threads;       /* expose the namedprocess_namegroup_thread_* families */
  int32_t gather_smaps;        /* proportionalResident/proportionalSwapped from smaps_rollup */
  int32_t recheck_on_scrape;   /* re-run matchers on unmatched processes at every collection */
  int32_t remove_empty_groups; /* forget a group once it has no process */
} mw_ffi_procgroup_opts_t;

/* One matcher block. A list pointer NULL means the rule is absent; all
 * present rules must match. comm: exact names (stat's comm); exe: argv 0
 * basenames, or exact paths when they contain a slash; cmdline: RE2 regexes
 * searched in the space-joined argv (named captures feed .Matches). name: a
 * Go template over .Comm .ExeBase .ExeFull .Username .PID .StartTime
 * .Cgroups .Matches.NAME (NULL or empty: "{{.ExeBase}}"). */
typedef struct {
  const char *const *comm;
  uint32_t n_comm;
  const char *const *exe;
  uint32_t n_exe;
  const char *const *cmdline;
  uint32_t n_cmdline;
  const char *name;
} mw_ffi_procgroup_matcher_t;

/* Compiles the n matchers (first match wins), reads the boot time and does a
 * first collection, as process-exporter does at start, into *out (free with
 * mw_ffi_procgroup_free). 0, or -1 with *out NULL and a message in err
 * naming the matcher (1-based) and the field at fault. */
int mw_ffi_procgroup_new(const mw_ffi_procgroup_opts_t *opts,
                         const mw_ffi_procgroup_matcher_t *matchers, uint32_t n,
                         mw_procgroup_t **out, char *err, size_t errlen);
void mw_ffi_procgroup_free(mw_procgroup_t *t);
/* Checks a matcher's name template (NUL-terminated; empty: the default
 * "{{.ExeBase}}") as mw_ffi_procgroup_new parses it. 0, or -1 with a message in
 * err. Nothing is kept, no process is read. */
int mw_ffi_procgroup_template_check(const char *tpl, char *err, size_t errlen);
/* Collects and writes the exposition in format MW_METRICS_FMT_*, gzipped if
 * gzip != 0, into a new buffer *out, *len that the caller frees with
 * mw_ffi_metrics_buf_free. Unreadable or vanishing processes are counted
 * in namedprocess_scrape_* metrics, not failures. 0, or -1 with a message in
 * err (out of memory). */
int mw_ffi_procgroup_collect(mw_procgroup_t *t, int format, int gzip, char **out, size_t *len,
                             char *err, size_t errlen);

/* --- remote write --- */
/* prometheus.remote_write: a crash-safe write-ahead log per component and
 * Remote-Write 1.0 requests read from it (runtime/storage/wal.h and runtime/remote/encode.h
 * have the full contracts). Pull-style: Lua appends batches, each endpoint
 * pulls spans of snappy-compressed protobuf requests (one per shard) from
 * its own reader, POSTs them concurrently and commits the span once every
 * request of it is done (2xx, or dropped). Event loop thread only.
 * Returns: 0 ok, -1 error with a message in err (errlen bytes). */
typedef struct mw_wal mw_wal_t;
typedef struct mw_wal_reader mw_wal_reader_t;

/* Most shards a span may be cut into. */
enum { MW_WAL_MAX_SHARDS = 1024 };

/* When the WAL calls fsync. A returned append has reached the kernel with
 * every policy, so it survives a crash or SIGKILL of the process; only
 * ALWAYS also survives a power loss or kernel crash at every moment.
 * INTERVAL loses at most what was appended since the last completed sync
 * (mw_ffi_wal_sync_start, every interval, on a worker thread),
 * NEVER what the OS had not yet written back (Prometheus agent's default). */
enum { MW_WAL_FSYNC_NEVER = 0, MW_WAL_FSYNC_INTERVAL = 1, MW_WAL_FSYNC_ALWAYS = 2 };

typedef struct {
  uint64_t segment_size; /* bytes before a new segment file is started; 0: 128 MiB */
  int32_t fsync;         /* MW_WAL_FSYNC_* */
  int32_t reserved;      /* 0 */
} mw_wal_opts_t;

/* Counters only grow while the WAL is open; gauges are current values. */
typedef struct {
  uint64_t samples_appended; /* counter: samples written by appends */
  uint64_t series_created;   /* counter: series records written by appends */
  uint64_t series_removed;   /* counter: series forgotten by truncation */
  uint64_t active_series;    /* gauge */
  uint64_t bytes;            /* gauge: segments and checkpoint on disk */
  uint64_t segments;         /* gauge: segment files */
  uint64_t first_segment;    /* gauge: index of the oldest segment */
  uint64_t last_segment;     /* gauge: index of the segment being written */
  uint64_t corruptions;      /* counter: torn or corrupt records cut at open or skipped */
  uint64_t corrupt_bytes;    /* counter: bytes cut or skipped because of them */
  uint64_t samples_dropped;  /* counter: samples removed by max_keepalive before every
                                reader had committed them (the largest loss of any reader) */
  uint64_t segments_removed; /* counter: segments removed by truncation */
  uint64_t checkpoints;      /* counter: checkpoints written */
  uint64_t fsyncs;           /* counter */
  uint64_t replayed_samples; /* samples found in the WAL at open */
  uint64_t replayed_series;  /* series found in the WAL at open */
  uint64_t samples_invalid;  /* counter: samples not written, their label set has an empty
                                name or value, a NUL byte or is not sorted */

  /* counter: exemplars written by appends (a repeat of the last exemplar
   * written for a series is left out, as Prometheus agent's WAL does) */
  uint64_t exemplars_appended;
  /* exemplars found in the WAL at open */
  uint64_t replayed_exemplars;
  /* gauge: highest timestamp (ms) of a sample appended since open, 0: none
   * yet (Prometheus's highest_timestamp_in_seconds) */
  int64_t max_ts;
} mw_wal_stats_t;

/* One chunk handed out by mw_ffi_wal_reader_next, or one shard's request
 * of a span (mw_ffi_wal_reader_next_shards; empty: samples and exemplars
 * 0; a request may hold exemplars only, and must be sent too). */
typedef struct {
  uint64_t seq;       /* pass to mw_ffi_wal_reader_commit once sent (the span's) */
  uint32_t samples;   /* samples in the request */
  uint32_t series;    /* series in the request */
  int64_t min_ts;     /* lowest sample timestamp, ms */
  int64_t max_ts;     /* highest sample timestamp, ms */
  uint64_t raw_bytes; /* protobuf size before snappy */

  /* exemplars in the request (0 with send_exemplars off) */
  uint32_t exemplars;
  uint32_t reserved;
} mw_wal_chunk_t;

typedef struct {
  uint64_t samples_read;      /* samples put in chunks, resends included, less what
                                 _drop_old took out of them */
  uint64_t samples_committed; /* counter: samples of committed chunks */
  uint64_t chunks_committed;  /* counter */
  uint64_t samples_dropped;   /* counter: dropped by max_keepalive before this reader had them */
  uint64_t unknown_series;    /* counter: samples skipped, their series record was lost */
  uint64_t pending_chunks;    /* gauge: chunks handed out and not committed yet */
  int64_t committed_max_ts;   /* gauge: highest timestamp committed, ms (0: none yet) */
  uint64_t segment;           /* gauge: committed cursor, segment index */
  uint64_t offset;            /* gauge: committed cursor, byte offset in the segment */
  uint64_t samples_relabel_dropped; /* counter: samples skipped, write relabeling dropped their
                                       series (re-reads included) */
  uint64_t samples_too_old;         /* counter: samples skipped for being older than the min_ts of
                                       _next_shards or taken out by _drop_old (re-reads included) */

  /* counter: exemplars put in chunks, resends included */
  uint64_t exemplars_read;
  /* counter: exemplars of committed chunks */
  uint64_t exemplars_committed;
  /* counter: exemplars skipped: write relabeling dropped their series, its
   * series record was lost, or older than the min_ts of _next_shards (re-reads
   * included) */
  uint64_t exemplars_dropped;
  /* gauge: exemplars of chunks handed out, not committed yet */
  uint64_t exemplars_pending;
  /* counters, parts of exemplars_dropped: older than min_ts (or taken out by
   * _drop_old), and of a series write relabeling dropped; the rest of it had
   * their series record lost (or invalid labels) */
  uint64_t exemplars_too_old;
  uint64_t exemplars_relabel_dropped;
  /* samples the WAL held before the cursor when the reader opened: sent before
   * a restart (pending is what the WAL got less these, the committed and the
   * dropped) */
  uint64_t samples_before_open;
  /* counter: damaged or unreadable cursor files found at open, or a cursor
   * past the WAL's end (mw_ffi_wal_reader_note says what was done) */
  uint64_t cursor_errors;
} mw_wal_reader_stats_t;

/* Opens the WAL of one component in directory dir (created if missing; the
 * WAL lives in dir/wal, reader cursors in dir/cursor.NAME), replays it and
 * repairs a torn or corrupt tail (cut to the last good record, counted in
 * stats, described by mw_ffi_wal_repair_log): corruption never fails the
 * open, only I/O errors do. opts NULL: defaults. *out is freed with
 * mw_ffi_wal_close. */
int mw_ffi_wal_open(const char *dir, const mw_wal_opts_t *opts, mw_wal_t **out, char *err,
                    size_t errlen);
/* Closes the WAL (NULL ok). Readers still open keep its memory alive until
 * they are closed; their calls then fail. */
void mw_ffi_wal_close(mw_wal_t *w);
/* Appends every sample of batch b (series records first for label sets the
 * WAL has not seen). When it returns 0 the bytes are in the kernel (and on
 * disk with MW_WAL_FSYNC_ALWAYS). On -1 (err set) nothing of b was written;
 * on 1 (err set) the fsync of MW_WAL_FSYNC_ALWAYS failed: b is in the WAL,
 * not known to be on disk. */
int mw_ffi_wal_append(mw_wal_t *w, const mw_batch_t *b, char *err, size_t errlen);
/* fsyncs what was appended, on the calling thread (at stop). */
int mw_ffi_wal_sync(mw_wal_t *w, char *err, size_t errlen);
/* Starts an fsync of what was appended on a worker thread and collects the
 * previous one (call every interval with MW_WAL_FSYNC_INTERVAL); -1 with err
 * if the previous one failed. See mw_wal_sync_start. */
int mw_ffi_wal_sync_start(mw_wal_t *w, char *err, size_t errlen);
/* Starts a new segment, then removes the oldest segments that every reader
 * has committed and whose newest sample is older than now_ms -
 * min_keepalive_ms, and those whose newest sample is older than now_ms -
 * max_keepalive_ms even if a reader has not committed them (its cursor
 * jumps ahead; the samples are counted as dropped). Series of removed
 * segments still in use are kept in a checkpoint. Call periodically. */
int mw_ffi_wal_truncate(mw_wal_t *w, int64_t now_ms, int64_t min_keepalive_ms,
                        int64_t max_keepalive_ms, char *err, size_t errlen);
void mw_ffi_wal_stats(const mw_wal_t *w, mw_wal_stats_t *st);
/* What repairs at open found and did, one line each ("" if none). Owned by
 * w, valid until it is closed. */
const char *mw_ffi_wal_repair_log(const mw_wal_t *w);

/* Opens the reader called name (letters, digits, '_', '-', '.'; one per
 * endpoint) at its saved cursor, or at the oldest data if it has none: what
 * was written and not committed before a restart is read again. external
 * labels: an encoded label set (len 0: none). Free with
 * mw_ffi_wal_reader_close. */
int mw_ffi_wal_reader_open(mw_wal_t *w, const char *name, const uint8_t *external_labels,
                           size_t len, mw_wal_reader_t **out, char *err, size_t errlen);
void mw_ffi_wal_reader_close(mw_wal_reader_t *r);
/* What opening r found wrong with its cursor file and did about it (a damaged
 * or unreadable file: its previous copy used, or the WAL read from its oldest
 * data), for a warning; "" when nothing. */
const char *mw_ffi_wal_reader_note(const mw_wal_reader_t *r);
/* Reads up to max_samples samples after the last chunk handed out and
 * encodes them as a WriteRequest, snappy-compressed: *buf and *len (owned by
 * r, valid until its next call of _next or _close). Several chunks may be in
 * flight; a chunk whose send failed is resent with the same bytes. Returns 1
 * with a chunk (info in *chunk), 0 when there is nothing new, -1 on error. */
int mw_ffi_wal_reader_next(mw_wal_reader_t *r, uint32_t max_samples, const uint8_t **buf,
                           size_t *len, mw_wal_chunk_t *chunk, char *err, size_t errlen);
/* Reads the next span after the last one handed out and cuts it into
 * nshards (1 .. MW_WAL_MAX_SHARDS) requests: every sample of a series goes
 * to the same shard (a hash of its WAL ref mod nshards), in WAL order. The
 * span ends when nothing more is available or before the first sample whose
 * shard already has max_samples samples and exemplars together (as
 * Prometheus counts a batch; a shard goes past it only by the exemplars of
 * one WAL record, which are not split). Samples
 * with a timestamp below min_ts are skipped and counted in samples_too_old,
 * exemplars below it in exemplars_dropped (INT64_MIN: none). For shard k: bufs[k], lens[k] (owned
 * by r, valid until the next _next, _next_shards or _close; NULL, 0 for an empty shard) and
 * chunks[k] (every one with the span's seq). The span is one chunk in
 * flight: commit its seq once every non-empty request was accepted or
 * dropped; sending the next span only then keeps each series in order even
 * if the shard count changes. Returns 1 with a span (at least one sample
 * or exemplar: a span may hold exemplars only, e.g. when min_ts took out
 * every sample), 0 when there is nothing new, -1 on error. */
int mw_ffi_wal_reader_next_shards(mw_wal_reader_t *r, uint32_t nshards, uint32_t max_samples,
                                  int64_t min_ts, const uint8_t **bufs, size_t *lens,
                                  mw_wal_chunk_t *chunks, char *err, size_t errlen);
/* Before a retry of a request of span seq (its bytes: body, body_len, as
 * _next_shards made it or as this function made it last time): takes out
 * its samples and exemplars with a timestamp below min_ts
 * (sample_age_limit), and the series left with neither, counted in
 * samples_too_old and exemplars_dropped, and re-encodes what is left into
 * *buf, *len (owned by r, as for _next_shards; NULL, 0 when nothing is left,
 * then the request needs no send) and *chunk. Any request of any span in
 * flight can be filtered: it needs only its bytes; pass the request as it
 * was last sent (what this function made last time, if it made one), so
 * that nothing is counted twice. Returns the number of
 * samples and exemplars taken out (>= 0), or -1 with err (not a request
 * moonwatch made, out of memory): then send the request as it was. */
int mw_ffi_wal_reader_drop_old(mw_wal_reader_t *r, uint64_t seq, const uint8_t *body,
                               size_t body_len, int64_t min_ts, const uint8_t **buf, size_t *len,
                               mw_wal_chunk_t *chunk, char *err, size_t errlen);
/* The remote end accepted chunk seq (2xx, or a 4xx that will never succeed).
 * The saved cursor moves past every chunk committed without a gap
 * (atomically, by rename), so after a restart the reader resumes there:
 * delivery is at least once. An unknown seq (e.g. before a rewind) is
 * ignored. */
int mw_ffi_wal_reader_commit(mw_wal_reader_t *r, uint64_t seq, char *err, size_t errlen);
/* Forgets every chunk in flight: the next chunk starts at the committed cursor. */
void mw_ffi_wal_reader_rewind(mw_wal_reader_t *r);
void mw_ffi_wal_reader_stats(const mw_wal_reader_t *r, mw_wal_reader_stats_t *st);
/* Sets the reader's write relabeling (write_relabel_config), p NULL: none.
 * The caller keeps p alive while it is set. Each series is relabeled once,
 * when the reader first meets it: the external labels it lacks are added
 * first (as Prometheus does), then p runs; the samples of a dropped series
 * (or one left with no labels) are skipped and counted in
 * samples_relabel_dropped, the others are sent with the resulting labels.
 * Setting it forgets the cached results. */
int mw_ffi_wal_reader_set_relabel(mw_wal_reader_t *r, const mw_ffi_relabel_program_t *p, char *err,
                                  size_t errlen);
/* send_exemplars: 1 (the default) puts the exemplars of the WAL's exemplar
 * records in the chunks, each in TimeSeries.exemplars of its series (with
 * the series' labels after write relabeling; the exemplars of a dropped
 * series are dropped and counted); 0 leaves them out (not counted). Applies
 * from the next chunk on. */
void mw_ffi_wal_reader_set_exemplars(mw_wal_reader_t *r, int send);

/* --- remote write metadata --- */
/* metadata_config: a set of metric metadata (family name, type, help, unit)
 * collected from scrape caches every send_interval, deduplicated on all four
 * fields (as Prometheus's MetadataWatcher does across targets) and sorted by
 * name, then encoded as WriteRequests that carry only metadata, snappy-
 * compressed like sample requests (runtime/remote/metadata.c). Not in the WAL. The
 * set copies what it is given: it may be sent while the caches scrape on.
 * Event loop thread only. */
typedef struct mw_rwmeta mw_rwmeta_t;

/* An empty set (NULL on out of memory); free with mw_ffi_rwmeta_free. */
mw_rwmeta_t *mw_ffi_rwmeta_new(void);
void mw_ffi_rwmeta_free(mw_rwmeta_t *m);
/* Empties the set (keeps its memory for the next round). */
void mw_ffi_rwmeta_clear(mw_rwmeta_t *m);
/* Adds the metadata of every family the cache's last scrape mentioned (the
 * walk costs the scrape nothing). 0, or -1 with err (out of memory). */
int mw_ffi_rwmeta_add_cache(mw_rwmeta_t *m, const mw_scrapecache_t *c, char *err, size_t errlen);
/* Adds one entry: type MW_METRIC_*, strings (ptr, len) copied. 0, or -1 with
 * err (type out of range, out of memory). */
int mw_ffi_rwmeta_add(mw_rwmeta_t *m, int type, const char *name, size_t name_len, const char *help,
                      size_t help_len, const char *unit, size_t unit_len, char *err, size_t errlen);
/* Distinct entries in the set. */
size_t mw_ffi_rwmeta_len(mw_rwmeta_t *m);
/* Bytes the set holds from malloc (entries, index, strings, encoder aside). */
size_t mw_ffi_rwmeta_mem(const mw_rwmeta_t *m);
/* Entry i (0-based, below mw_ffi_rwmeta_len) in sort order: strings are
 * NUL-terminated, owned by m, valid until its next add, clear or free.
 * 0, -1 if i is out of range. */
int mw_ffi_rwmeta_get(mw_rwmeta_t *m, size_t i, int *type, const char **name, const char **help,
                      const char **unit);
/* Encodes entries [first, first + n) (cut at the end of the set) as one
 * snappy-compressed WriteRequest with no series: *buf and *len owned by m,
 * valid until its next encode, clear or free; *raw_len (if not NULL) gets
 * the protobuf size. 0, or -1 with err (out of memory). */
int mw_ffi_rwmeta_encode(mw_rwmeta_t *m, size_t first, size_t n, const uint8_t **buf, size_t *len,
                         size_t *raw_len, char *err, size_t errlen);

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

/* --- files (runtime/base/fs.c) ----------------------------------------- */

/* Creates directory path and its missing parents (mode 0777 less the umask),
 * as `mkdir -p`: an existing directory is fine. 0, or -1 with err naming the
 * path that could not be made ("PATH: reason"). */
int mw_ffi_fs_mkdir_p(const char *path, char *err, size_t errlen);
/* The files under dir (any depth; symbolic links to directories are not
 * followed, as find(1)) whose names end with suffix: their paths relative to
 * dir, '/'-separated, sorted, each followed by a NUL, in one malloc'd buffer
 * *out of *out_len bytes (free it with mw_ffi_fs_free; NULL and 0 when none).
 * Unreadable subdirectories are skipped. 0, or -1 with err when dir itself
 * cannot be read or memory runs out. */
int mw_ffi_fs_find(const char *dir, const char *suffix, char **out, size_t *out_len, char *err,
                   size_t errlen);
void mw_ffi_fs_free(char *p);

/* === loki.process: regexes with capture groups (runtime/base/regex.c) === */

typedef struct mw_regex mw_ffi_regex_t;
/* Compiles the RE2-syntax pattern re[0..len) (Go's syntax and semantics, as
 * mw_re2_compile); anchored: the whole subject must match. Returns the regex
 * (free with mw_ffi_regex_free) or NULL with a message in err. */
mw_ffi_regex_t *mw_ffi_regex_new(const char *re, size_t len, int anchored, char *err,
                                 size_t err_size);
void mw_ffi_regex_free(mw_ffi_regex_t *r);
/* The number of capture groups (group 0, the whole match, not counted). */
uint32_t mw_ffi_regex_groups(const mw_ffi_regex_t *r);
/* The name of group i (1 to groups), owned by r; NULL when unnamed. */
const char *mw_ffi_regex_group_name(const mw_ffi_regex_t *r, uint32_t i);
/* Searches s[0..len) from byte offset start (Go's leftmost-first match; ^ and
 * lookbehind still see the bytes before start). 1 on a match, 0 on none (a
 * pattern reaching the match limits does not match). When ov is not NULL it gets
 * 2 * (groups + 1) byte offsets: start and end of the match and of each group,
 * -1 for a group that did not take part. */
int mw_ffi_regex_match(mw_ffi_regex_t *r, const char *s, size_t len, size_t start, int64_t *ov);

/* JSON value extraction (runtime/logproc/jsonx.c): paths of field names and array
 * indexes, compiled once; one pass over a document validates it whole and finds
 * each path's value (the last one when a key repeats, as a decoder's map keeps it). */
typedef struct mw_jsonx mw_ffi_jsonx_t;
typedef struct {
  const char *key; /* a field name (key_len bytes), or NULL for an array index */
  size_t key_len;
  int64_t index; /* the array index (0-based, >= 0) when key is NULL */
} mw_ffi_jsonx_step_t;
enum {
  MW_JSONX_MISSING = 0,
  MW_JSONX_STRING = 1,
  MW_JSONX_NUMBER = 2,
  MW_JSONX_TRUE = 3,
  MW_JSONX_FALSE = 4,
  MW_JSONX_NULL = 5,
  MW_JSONX_OBJECT = 6,
  MW_JSONX_ARRAY = 7
};
typedef struct {
  int32_t type;    /* MW_JSONX_* */
  int32_t escaped; /* a string with backslash escapes (mw_ffi_jsonx_unescape it) */
  int64_t start;   /* the value's bytes in the document: a string's inside its quotes */
  int64_t len;
} mw_ffi_jsonx_value_t;
/* Compiles npaths paths (at most MW_JSONX_MAX_PATHS): path i is path_len[i] steps
 * (at least 1), the paths' steps one after another in steps. Keys are copied. NULL
 * with err on a bad argument or out of memory. Free with mw_ffi_jsonx_free. */
mw_ffi_jsonx_t *mw_ffi_jsonx_new(const mw_ffi_jsonx_step_t *steps, const uint32_t *path_len,
                                 uint32_t npaths, char *err, size_t err_size);
void mw_ffi_jsonx_free(mw_ffi_jsonx_t *x);
/* Reads doc[0..len): 0 when it is one JSON object (or null) with only white space
 * around it, out[0..npaths) then giving each path's value (MISSING when absent);
 * -1 when it is not valid JSON, not an object, or nested deeper than
 * MW_JSONX_MAX_DEPTH (out then undefined). */
int mw_ffi_jsonx_run(const mw_ffi_jsonx_t *x, const char *doc, size_t len,
                     mw_ffi_jsonx_value_t *out);
/* Writes the bytes a JSON string body s[0..len) (escapes included, as _run gives it)
 * stands for into buf (len bytes suffice), \uXXXX as UTF-8 (a lone surrogate as
 * U+FFFD, as Go's decoder). Returns their length, or -1 on a bad escape. */
int64_t mw_ffi_jsonx_unescape(const char *s, size_t len, char *buf);

/* === end of loki.process === */

#endif
