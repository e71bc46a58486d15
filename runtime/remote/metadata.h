/* remote/metadata.h: a set of metric metadata for prometheus.remote_write's
 * metadata_config (remote/metadata.c). */
#ifndef MW_RWMETA_H
#define MW_RWMETA_H
#include <stddef.h>
#include <stdint.h>

#include "model/batch.h"

/* ffi.cdef begin */
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
/* ffi.cdef end */

#endif
