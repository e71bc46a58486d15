/* model/series.h: a series table interns encoded label sets (base/labels.h) and gives
 * each a stable 32-bit series ref, with its 64-bit hash. It stores them as symbol ids
 * (base/symtab.h: each name and value string once in the process) and gives their text
 * back on demand (mw_series_labels). */
#ifndef MW_SERIES_H
#define MW_SERIES_H
#include <stddef.h>
#include <stdint.h>

/* ffi.cdef begin */
/* --- series tables --------------------------------------------------------- */

/* A series table (opaque to Lua): interned label sets with stable refs. */
typedef struct mw_series mw_series_t;
/* ffi.cdef end */

/* "No series": never a valid ref. */
#define MW_SERIES_NONE UINT32_MAX

/* Creates an empty table; NULL on out of memory. The caller owns it. */
mw_series_t *mw_series_new(void);
/* Frees the table and every label set it holds (NULL is fine). */
void mw_series_free(mw_series_t *s);

/* Interns the encoded label set enc (len bytes, hash = mw_labels_hash(enc))
 * and stores its ref in *ref; *added (if not NULL) says whether it was new.
 * The table copies the bytes; enc stays the caller's. Returns 0, or -1 on out
 * of memory (err filled). Refs of deleted series are reused. */
int mw_series_add(mw_series_t *s, const uint8_t *enc, size_t len, uint64_t hash, uint32_t *ref,
                  int *added, char *err, size_t errlen);

/* The ref of the label set (enc, len, hash), or MW_SERIES_NONE. */
uint32_t mw_series_get(const mw_series_t *s, const uint8_t *enc, size_t len, uint64_t hash);
/* The same for a label set given as another table's stored bytes (mw_series_stored)
 * and the hash of its text. */
uint32_t mw_series_get_stored(const mw_series_t *s, const uint8_t *st, size_t len, uint64_t hash);

/* Hints that the label set with this hash is about to be looked up or added:
 * starts loading its index slot. No effect on the table. */
void mw_series_prefetch(const mw_series_t *s, uint64_t hash);

/* The encoded labels (text) of ref (length in *len), NULL if ref is not live (or
 * out of memory). The text is made in a buffer of the table, one at a time: it stays
 * valid until the next mw_series_labels or mw_series_add of this table (copy it to
 * keep it, or to hold two of one table at once). */
const uint8_t *mw_series_labels(const mw_series_t *s, uint32_t ref, size_t *len);
/* The stored bytes of ref (symbol ids, base/symtab.h; length in *len), NULL if not
 * live: the same label set has the same bytes in every table. They belong to the
 * table and stay valid until the series is deleted or mw_series_compact runs. */
const uint8_t *mw_series_stored(const mw_series_t *s, uint32_t ref, size_t *len);
/* 1 if ref is live, else 0. */
int mw_series_live(const mw_series_t *s, uint32_t ref);
/* The hash of ref (mw_labels_hash of its bytes, computed again: not for a
 * hot path; 0 if not live). */
uint64_t mw_series_hash(const mw_series_t *s, uint32_t ref);

/* A number no other table of this process has: with mw_series_stamp, it lets
 * a consumer remember what it computed for (table, ref) across batches. */
uint64_t mw_series_uid(const mw_series_t *s);
/* The stamp of live entry ref: it changes whenever ref is handed to another
 * label set (0 if ref is not live). */
uint32_t mw_series_stamp(const mw_series_t *s, uint32_t ref);

/* Borrowing. mw_series_add_borrowed interns a label set given as another
 * table's stored bytes (mw_series_stored) and the hash of its text, and keeps
 * the pointer instead of a copy; the caller follows them by watching that table.
 * A watcher (fn, ctx) of a table hears, while the bytes are still readable:
 * fn(ctx, ref, NULL) before ref is deleted, fn(ctx, ref, now) when
 * mw_series_compact moves ref's bytes to now, and fn(ctx, MW_SERIES_NONE,
 * NULL) before the table is freed (now: stored bytes). The borrower then makes its entry its own
 * (mw_series_own) or re-points it (mw_series_rebind). Watching again with
 * the same ctx is a no-op; 0, -1 on OOM. A watcher must not change the
 * table it watches (from fn). Compaction moves only a table's own bytes;
 * deleting a borrowed entry frees nothing. */
typedef void (*mw_series_watch_fn)(void *ctx, uint32_t ref, const uint8_t *now);
int mw_series_add_borrowed(mw_series_t *s, const uint8_t *enc, size_t len, uint64_t hash,
                           uint32_t *ref, int *added, char *err, size_t errlen);
int mw_series_borrowed(const mw_series_t *s, uint32_t ref);
/* Copies a borrowed entry's bytes into the table (no-op if its own). 0, -1 on OOM. */
int mw_series_own(mw_series_t *s, uint32_t ref);
void mw_series_rebind(mw_series_t *s, uint32_t ref, const uint8_t *enc);
int mw_series_watch(mw_series_t *s, mw_series_watch_fn fn, void *ctx);
void mw_series_unwatch(mw_series_t *s, void *ctx);

/* Frees the index of label sets (8-byte slots at a load of 1/2 to 3/4: 11
 * to 16 bytes a series). Until the next add (which builds it again,
 * hashing every live label set), mw_series_get reads every entry. For a
 * table whose adds come in rare bursts: a scrape target's, between scrapes
 * that see no new series line. mw_series_indexed says whether it has one. */
void mw_series_drop_index(mw_series_t *s);
int mw_series_indexed(const mw_series_t *s);
/* Builds the index again if it was dropped (before mw_series_gets that
 * should not read every entry). 0, -1 on OOM (still without one). */
int mw_series_index(mw_series_t *s);

/* Deletes ref (no-op if not live); its ref may be handed out again. */
void mw_series_del(mw_series_t *s, uint32_t ref);

/* Number of live series. */
size_t mw_series_len(const mw_series_t *s);
/* One past the largest ref ever handed out: iterate refs below it and skip
 * those for which mw_series_labels returns NULL. */
uint32_t mw_series_limit(const mw_series_t *s);

/* Reclaims the bytes of deleted series if they are more than half of the
 * label store, moving the live label sets: every pointer obtained from
 * mw_series_labels becomes invalid. Returns 0, -1 on out of memory (the table
 * is unchanged). Refs never change. */
int mw_series_compact(mw_series_t *s);

/* Bytes the table holds from malloc (entries, index, label store); the live
 * label bytes are stored in *label_bytes if not NULL. */
size_t mw_series_mem(const mw_series_t *s, size_t *label_bytes);

#endif
