/* exposition/scrapecache.h: per-target memory of the previous scrape. It owns the
 * target's series table and maps the raw series text of a sample line
 * (everything before the value, e.g. `http_requests_total{code="200"}`) to a
 * series ref, so an unchanged line costs a hash and a lookup. The cache keeps
 * a 128-bit hash of each text (mw_skey_t), not the text: 16 bytes a series
 * instead of the text's length. Two texts of one target with the same hash
 * would share a series; with 10^7 series in a cache the chance of any such
 * pair is below 10^-24 (n^2 / 2^129). It tracks which
 * series each scrape saw, to report the gone ones (staleness markers) and the
 * new ones (scrape_series_added), and it keeps the metric family metadata.
 *
 * A scrape is: mw_scrapecache_begin, then per sample line mw_scrapecache_get
 * (and on a miss mw_scrapecache_add) and mw_scrapecache_mark, then
 * mw_scrapecache_end. mw_expfmt_parse does all of that. */
#ifndef MW_SCRAPECACHE_H
#define MW_SCRAPECACHE_H
#include <stddef.h>
#include <stdint.h>

#include "base/labels.h"
#include "model/batch.h"

/* ffi.cdef begin */
/* --- scrape caches (exposition/scrapecache.c) ------------------------------ */

/* A scrape cache (one per scrape target) owns a series table and remembers,
 * from one scrape to the next, which series line maps to which series ref. */
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

/* A number that no other scrape cache of this process has (its series
 * table's uid): tells metadata sources apart across batches. */
uint64_t mw_ffi_scrapecache_uid(const mw_scrapecache_t *c);
/* ffi.cdef end */

/* Creates an empty cache with its own series table; NULL on OOM. */
mw_scrapecache_t *mw_scrapecache_new(void);
/* Frees the cache and its series table (NULL is fine). */
void mw_scrapecache_free(mw_scrapecache_t *c);
/* The cache's series table (owned by the cache). */
mw_series_t *mw_scrapecache_series(const mw_scrapecache_t *c);

/* Starts a scrape: deletes the series, keys and metadata the previous scrape
 * did not see (their staleness markers went out with the previous batch,
 * which must be consumed by now) and compacts storage. Returns 0, -1 on OOM. */
int mw_scrapecache_begin(mw_scrapecache_t *c, char *err, size_t errlen);

/* The key of a raw series text: its XXH3 128-bit hash. */
typedef struct {
  uint64_t lo, hi;
} mw_skey_t;

/* The ref cached for key (mw_scrapecache_hash of the series text), or
 * MW_SERIES_NONE. A hit keeps the key alive for the next scrape. */
uint32_t mw_scrapecache_get(mw_scrapecache_t *c, mw_skey_t key);
/* Declares the rules the keys of this scrape were validated under (the
 * exposition format); when it differs from the previous scrape's, every key
 * is forgotten (series stay). Call after mw_scrapecache_begin. */
void mw_scrapecache_keyspace(mw_scrapecache_t *c, int tag);
/* Forgets every key (series stay): the next scrape finds each line's series
 * through the mutate hook again, so new labelling rules apply to all of them;
 * a series whose labels come out the same keeps its ref. */
void mw_scrapecache_forget(mw_scrapecache_t *c);
/* The key of a raw series text (len bytes). */
mw_skey_t mw_scrapecache_hash(const char *text, size_t len);
/* 1 if a and b are the same key. */
static inline int mw_skey_eq(mw_skey_t a, mw_skey_t b) { return a.lo == b.lo && a.hi == b.hi; }
/* Hints that key is about to be looked up: starts loading its index slot. No
 * effect on the cache. */
void mw_scrapecache_prefetch(const mw_scrapecache_t *c, mw_skey_t key);
/* Remembers key -> ref. Returns 0, -1 on OOM (err filled). */
int mw_scrapecache_add(mw_scrapecache_t *c, mw_skey_t key, uint32_t ref, char *err, size_t errlen);
/* Marks ref as seen by this scrape; explicit_ts says the sample carried its
 * own timestamp (Prometheus writes no staleness marker for such series).
 * Returns 1 the first time in this scrape, 0 for a duplicate, -1 on OOM. */
int mw_scrapecache_mark(mw_scrapecache_t *c, uint32_t ref, int explicit_ts);
/* mw_scrapecache_mark for a sample of kind 0 (float), 1 (integer native histogram) or
 * 2 (float native histogram): a histogram series that goes gets a histogram staleness
 * marker (mw_batch_add_histogram_stale) instead of a float one. */
int mw_scrapecache_mark_kind(mw_scrapecache_t *c, uint32_t ref, int explicit_ts, int kind);
/* ref, marked by this scrape, had its sample taken out of the batch (NHCB conversion):
 * it stays alive in the cache (the next scrape finds it) but gets no staleness marker
 * when it goes, as one with an explicit timestamp. */
void mw_scrapecache_quiet(mw_scrapecache_t *c, uint32_t ref);
/* 1 if ref was seen by the previous (successful) scrape, else 0. */
int mw_scrapecache_was_seen(const mw_scrapecache_t *c, uint32_t ref);

/* Ends the scrape. ok: the body parsed; the series of the previous scrape
 * that this one did not see are gone. !ok: the scrape failed and every series
 * of the previous scrape is gone. If stale_markers, a staleness marker at
 * ts_ms is appended to b for each gone series (except those that had explicit
 * timestamps); *stale (if not NULL) receives their count. Returns 0, -1 on
 * OOM. */
int mw_scrapecache_end(mw_scrapecache_t *c, int ok, mw_batch_t *b, int stale_markers, int64_t ts_ms,
                       uint64_t *stale, char *err, size_t errlen);

/* Forgets the scrape begun (mw_scrapecache_begin) and not ended, as if it
 * never began: the next begin finds the series of the last completed scrape
 * alive (and deletes the ones the forgotten scrape added). For a scrape
 * cancelled midway. */
void mw_scrapecache_abort(mw_scrapecache_t *c);

/* Metadata of the family name, as TYPE (what 0, sets type), HELP (what 1,
 * text) or UNIT (what 2, text) lines give it; text is already unescaped and
 * copied by the cache only when it changed. Returns 0, -1 on OOM. */
enum { MW_META_TYPE = 0, MW_META_HELP = 1, MW_META_UNIT = 2 };
int mw_scrapecache_meta_set(mw_scrapecache_t *c, const char *name, size_t name_len, int what,
                            int type, const char *text, size_t text_len, char *err, size_t errlen);
/* 1 if family name's HELP (what 1) or UNIT (what 2) text is already text
 * (bytes as given to mw_scrapecache_meta_set): the family counts as mentioned
 * by this scrape, and the caller need not check or set the text again. */
int mw_scrapecache_meta_same(mw_scrapecache_t *c, const char *name, size_t name_len, int what,
                             const char *text, size_t text_len);
/* Type of family name as last set (MW_METRIC_UNKNOWN if unknown). */
int mw_scrapecache_meta_type(mw_scrapecache_t *c, const char *name, size_t name_len);

/* One family's metadata as the cache keeps it: strings owned by the cache
 * (NUL-terminated; help and unit "" when absent), valid until the next
 * mw_scrapecache_begin or free. */
typedef struct {
  const char *name, *help, *unit;
  size_t name_len, help_len, unit_len;
  int type; /* MW_METRIC_* */
} mw_scrapecache_meta_t;
/* Iterates the families the last ended scrape mentioned (TYPE, HELP or UNIT),
 * in body order: start with *i = 0; returns 1 with *out filled and *i
 * advanced, 0 at the end. None before the first scrape ends, nor after a
 * scrape that failed without a body. Reads only: no cost for the scrape. */
int mw_scrapecache_meta_next(const mw_scrapecache_t *c, size_t *i, mw_scrapecache_meta_t *out);

/* A cache-miss hook: gets the labels of a new series (sorted, empty values
 * dropped) and returns the labels to intern in out and out_n (storage owned by
 * ctx, valid until its next call), or -1 with err to fail the body (e.g. a
 * label limit). Used by scrape targets to add the target's labels. */
typedef int (*mw_scrapecache_mutate_fn)(void *ctx, const mw_label_t *in, size_t n,
                                        const mw_label_t **out, size_t *out_n, char *err,
                                        size_t errlen);
/* Sets (or, with fn NULL, clears) the cache-miss hook. Series already cached
 * keep their labels: set it before the first scrape. */
void mw_scrapecache_set_mutate(mw_scrapecache_t *c, mw_scrapecache_mutate_fn fn, void *ctx);
/* Runs the hook on in (or passes in through when none is set). */
int mw_scrapecache_mutate(mw_scrapecache_t *c, const mw_label_t *in, size_t n,
                          const mw_label_t **out, size_t *out_n, char *err, size_t errlen);

/* Number of cached keys; bytes held from malloc by the cache including its
 * series table. */
size_t mw_scrapecache_len(const mw_scrapecache_t *c);
size_t mw_scrapecache_mem(const mw_scrapecache_t *c);

#endif
