/* relabel/logcache.h: a relabel program applied to log-entry batches (loki.relabel), with a
 * cache of results per stream label set (relabel/logcache.c has the details). */
#ifndef MW_LOGCACHE_H
#define MW_LOGCACHE_H
#include <stddef.h>
#include <stdint.h>

#include "model/logbatch.h"
#include "relabel/relabel.h"

/* ffi.cdef begin */
/* --- log relabel (runtime/relabel/logcache.c) --- */
/* A relabel program applied to log-entry batches with a cache of results per stream
 * label set: the rules run once per distinct stream not cached; entries of a dropped
 * stream are left out. The output batch belongs to the cache (valid until its next
 * apply or free). The cache is emptied at the start of an apply once it holds max_size
 * results. */
typedef struct mw_logrelabel mw_logrelabel_t;
typedef struct {
  uint64_t processed, written, hits, misses; /* per entry, as Alloy's loki.relabel */
} mw_logrelabel_stats_t;
/* max_size 0: 10000. NULL on OOM. */
mw_logrelabel_t *mw_ffi_logrelabel_new(uint32_t max_size);
void mw_ffi_logrelabel_free(mw_logrelabel_t *c);
/* Sets the program (kept alive by the caller; NULL: streams not cached are left to the
 * caller, see _misses/_put) and the size, and empties the cache. */
void mw_ffi_logrelabel_reset(mw_logrelabel_t *c, const mw_ffi_relabel_program_t *p,
                             uint32_t max_size);
/* Relabels the entries of in into the output batch; *st gets this call's counts. 0, or
 * -1 with err (OOM). */
int mw_ffi_logrelabel_apply(mw_logrelabel_t *c, const mw_logbatch_t *in, mw_logrelabel_stats_t *st,
                            char *err, size_t errlen);
mw_logbatch_t *mw_ffi_logrelabel_batch(mw_logrelabel_t *c);
/* The streams of the last input left to the caller (without a program). */
size_t mw_ffi_logrelabel_misses(const mw_logrelabel_t *c, const uint32_t **streams);
/* Caches the result for stream s of the last input: pairs (name 0xFF value 0xFF, any
 * order; empty values dropped) or len 0 for dropped. 0, or -1 with err (a name twice,
 * an invalid name, OOM). */
int mw_ffi_logrelabel_put(mw_logrelabel_t *c, uint32_t stream, const char *pairs, size_t len,
                          char *err, size_t errlen);
/* Results the cache holds. */
size_t mw_ffi_logrelabel_len(const mw_logrelabel_t *c);
/* ffi.cdef end */

#endif
