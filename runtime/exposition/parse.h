/* runtime/exposition/: the Prometheus text and OpenMetrics formats in both directions: the
 * parser (a body into a batch, parse.c) with its per-target memory of the previous body
 * (the scrape cache, scrapecache.c: series refs, metadata, staleness), the writer (a metrics
 * registry into a body, write.c; a batch, write_batch.c) and the metrics registry the exporters
 * fill (registry.c).
 *
 * exposition/parse.h: the Prometheus exposition parser. One call parses a whole body
 * (Prometheus text format 0.0.4 / 1.0.0 or OpenMetrics 1.0) into a sample
 * batch, through a per-target scrape cache.
 *
 * Semantics follow Prometheus 3's model/textparse (promparse.go,
 * openmetricsparse.go): what they accept is accepted, what they reject fails
 * the whole body with an error naming the line. Deliberate choices:
 * - UTF-8 names (Prometheus 3): a metric name quoted in the braces, at any
 *   position (`{"my.metric",a="b"}`, `{a="b","my.metric"}`), quoted label
 *   names (`{"my.label"="v"}`, exemplars too), quoted family names in
 *   TYPE/HELP/UNIT; escapes \\, \" and \n inside quotes. A name must be valid
 *   UTF-8 and not empty, else the body fails (Prometheus's scrape loop refuses
 *   such series; it does not check the name of a TYPE/HELP/UNIT line, this
 *   parser does). With MW_EXPFMT_LEGACY_NAMES (the scrape's legacy validation
 *   scheme) a quoted name outside the legacy grammar fails the body, as
 *   Prometheus's `invalid metric name or label names` does. A label with an
 *   empty value is dropped before its name is checked. Family names are
 *   unescaped like series names (Prometheus keeps TYPE/HELP names escaped).
 *   Quoted series texts are scrape cache keys like any other.
 * - Samples: one per sample line; a label with an empty value is dropped
 *   (Prometheus treats name="" as absent); a repeated label name fails the
 *   body (`label name "x" is not unique`, Prometheus fails the scrape too); a
 *   second sample of the same series in one body is dropped and counted
 *   (stats.duplicates; Prometheus rejects it unless its timestamp differs).
 * - `_created` lines (OpenMetrics) are ordinary samples, as in Prometheus
 *   unless created-timestamp-zero-ingestion is on; MW_EXPFMT_SKIP_CREATED drops
 *   them for counter/histogram/summary families like Prometheus's
 *   skipOMCTSeries.
 * - Exemplars (OpenMetrics): a syntax error fails the body (as the Prometheus
 *   parser); a valid one is attached to its sample in the batch (not cached:
 *   every scrape parses them again), with the sample's timestamp when it has
 *   none (Prometheus's scrape loop), counted in stats.exemplars; one that
 *   Prometheus's appender would refuse (labels over 128 code points, a
 *   repeated label name) is dropped and counted in stats.exemplars_invalid,
 *   its sample kept. The exemplar of a dropped sample goes with it.
 * - Timestamps: text: integer ms (digits only, as the Prometheus lexer);
 *   OpenMetrics: any finite float seconds, truncated to ms; a sample whose ms
 *   do not fit int64 (`12345678901234567890.5`) is dropped and counted in
 *   stats.out_of_bounds, the body goes on (Prometheus's int64(ts*1000) makes
 *   math.MinInt64 of it on amd64, which its storage refuses as out of bounds);
 *   with MW_EXPFMT_IGNORE_TIMESTAMPS it is kept at the scrape's time. Values:
 *   Go ParseFloat syntax
 *   without hex floats and underscores (NaN, +Inf, -Inf, case-insensitive);
 *   every NaN becomes Prometheus's normal NaN, so a body cannot forge a
 *   staleness marker.
 * - Metric families' TYPE/HELP/UNIT go to the scrape cache's metadata.
 * - The protobuf format (MW_EXPFMT_PROTOBUF) is parse_proto.c's (see
 *   parse_proto.h): native histograms come only in it.
 * - Not supported: Prometheus 3's normalisation of le/quantile label values
 *   of the text formats (`0` -> `0.0`; the protobuf format's are formatted so).
 * - Text format quirks kept from the Prometheus lexer: blank lines, tabs and
 *   spaces between tokens, trailing commas; a NUL byte at the start of a line
 *   ends the body. OpenMetrics is strict: single spaces, no blank lines or
 *   other comments, `# EOF` last. */
#ifndef MW_EXPFMT_H
#define MW_EXPFMT_H
#include "model/batch.h"
#include <stddef.h>
#include <stdint.h>

/* ffi.cdef begin */
/* --- exposition / series / batch ------------------------------------- */

/* Exposition formats (mw_ffi_expfmt_parse's fallback, stats.format). */
enum { MW_EXPFMT_NONE = 0, MW_EXPFMT_TEXT = 1, MW_EXPFMT_OPENMETRICS = 2, MW_EXPFMT_PROTOBUF = 3 };

/* Parse flags, or-ed. */
enum {
  MW_EXPFMT_IGNORE_TIMESTAMPS = 1,   /* honor_timestamps = false */
  MW_EXPFMT_SKIP_CREATED = 2,        /* OpenMetrics: drop _created series of counters,
                                        histograms and summaries */
  MW_EXPFMT_NO_STALE = 4,            /* do not append staleness markers for gone series */
  MW_EXPFMT_TRACK_TS_STALENESS = 8,  /* staleness markers also for series with timestamps */
  MW_EXPFMT_LEGACY_NAMES = 16,       /* metric_name_validation_scheme "legacy": a quoted name
                                        outside [a-zA-Z_:][a-zA-Z0-9_:]* (metric) or
                                        [a-zA-Z_][a-zA-Z0-9_]* (label) fails the body */
  MW_EXPFMT_NATIVE_HISTOGRAMS = 32,  /* protobuf: a histogram with native buckets is one
                                        native histogram sample (scrape_native_histograms) */
  MW_EXPFMT_CLASSIC_HISTOGRAMS = 64, /* with it, its classic series too
                                        (scrape_classic_histograms) */
  MW_EXPFMT_NHCB = 128               /* classic histograms become schema -53 native histograms
                                        (convert_classic_histograms_to_nhcb) */
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
  /* Native histogram samples appended (counted in samples too), and those whose
   * resolution was reduced to stay within the bucket limit or min bucket factor. */
  uint64_t histograms;
  uint64_t histograms_reduced;
} mw_expfmt_stats_t;

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
/* ffi.cdef end */

/* Picks the format for a Content-Type as Prometheus does:
 * application/openmetrics-text -> OpenMetrics, text/plain (any version) ->
 * text, application/vnd.google.protobuf -> protobuf; missing, unparsable or other types -> fallback
 * (MW_EXPFMT_*), with *fallback_used = 1. Returns the format, or -1 (err filled) when the fallback
 * is needed and is MW_EXPFMT_NONE. content_type may be NULL. */
int mw_expfmt_format(const char *content_type, int fallback, int *fallback_used, char *err,
                     size_t errlen);

/* Parses body (len bytes, not necessarily NUL-terminated, the caller's) in
 * format (MW_EXPFMT_TEXT, _OPENMETRICS or _PROTOBUF) into b, which is reset to
 * refer to c's series table. Samples without a timestamp, and the staleness
 * markers for series of the previous scrape missing from this one, get
 * default_ts_ms. flags: MW_EXPFMT_IGNORE_TIMESTAMPS, MW_EXPFMT_SKIP_CREATED,
 * MW_EXPFMT_NO_STALE, MW_EXPFMT_TRACK_TS_STALENESS, MW_EXPFMT_LEGACY_NAMES
 * (a change of it forgets the cache's keys, not its series). stats (may be
 * NULL) is overwritten.
 * Returns 0. On an invalid body returns -1 with err ("line N: ...") and b
 * holding only staleness markers for the previous scrape's series; -1 also
 * on out of memory. Nothing is allocated for lines the cache knows. */
int mw_expfmt_parse(mw_scrapecache_t *c, mw_batch_t *b, const char *body, size_t len, int format,
                    int64_t default_ts_ms, uint32_t flags, mw_expfmt_stats_t *stats, char *err,
                    size_t errlen);

/* The longest line a body may have, in bytes: a longer one fails the body
 * ("line N: line longer than 1048576 bytes ...") as soon as the parser reaches
 * its start, without reading it. */
#define MW_EXPFMT_MAX_LINE (1 << 20)

/* Incremental parsing, so a big body is parsed in steps between which the
 * caller's event loop runs (and checks its deadline). mw_expfmt_begin starts a
 * parse as mw_expfmt_parse does (same arguments; body, stats and err must stay
 * valid until the parse ends) and returns the parser, or NULL with err (an
 * unknown format, out of memory; nothing started). sample_limit (0: none)
 * fails the body as soon as a sample past it is parsed ("sample limit
 * exceeded"). mw_expfmt_step parses lines until about max_bytes more of the
 * body are consumed (whole lines; 0: to the end) and returns 1 when there is
 * more to do; else the parse has ended, the parser is freed and the result is
 * mw_expfmt_parse's (0, or -1 with err). mw_expfmt_end(p, -1, why) ends it as
 * a failed scrape with the message why (e.g. a deadline); it returns -1.
 * mw_expfmt_abort(p) forgets the parse as if it never began (the scrape cache
 * is as it was, b is emptied): for a scrape cancelled midway. */
typedef struct mw_expfmt_parser mw_expfmt_parser_t;
mw_expfmt_parser_t *mw_expfmt_begin(mw_scrapecache_t *c, mw_batch_t *b, const char *body,
                                    size_t len, int format, int64_t default_ts_ms, uint32_t flags,
                                    uint64_t sample_limit, mw_expfmt_stats_t *stats, char *err,
                                    size_t errlen);
int mw_expfmt_step(mw_expfmt_parser_t *p, size_t max_bytes);
/* The protobuf format's native histogram limits, set before the first step:
 * bucket_limit (native_histogram_bucket_limit; 0: none) and min_factor
 * (native_histogram_min_bucket_factor; 0: none). */
void mw_expfmt_set_histograms(mw_expfmt_parser_t *p, uint32_t bucket_limit, double min_factor);
int mw_expfmt_end(mw_expfmt_parser_t *p, int rc, const char *why);
void mw_expfmt_abort(mw_expfmt_parser_t *p);

/* Parses a sample value as Prometheus does (Go ParseFloat without hex and
 * underscores; NaN normalised). Returns 0 and *out, or -1. */
int mw_expfmt_parse_float(const char *s, size_t n, double *out);

/* The name of a MW_METRIC_* type as TYPE lines spell it ("untyped" for
 * unknown in the text format is spelled "unknown" here). */
const char *mw_expfmt_type_name(int type);

#endif
