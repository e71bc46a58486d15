/* base/arena.h: a chunked bump allocator for the bytes of interned strings (label
 * sets, scrape-cache keys). Pointers stay valid until mw_arena_clear or
 * mw_arena_free; freeing an item only counts it as garbage, and the owner
 * compacts by copying its live items into a fresh arena. */
#ifndef MW_ARENA_H
#define MW_ARENA_H
#include <stddef.h>
#include <stdint.h>

#include <string.h>

typedef struct mw_arena_chunk mw_arena_chunk_t;
struct mw_arena_chunk {
  mw_arena_chunk_t *next;
  size_t cap;
  size_t off;
  uint8_t data[];
};

typedef struct {
  mw_arena_chunk_t *head; /* current chunk first; older chunks follow */
  size_t used;            /* bytes handed out, live or garbage */
  size_t garbage;         /* bytes the owner reported freed */
  size_t reserved;        /* bytes malloc'd for chunks, headers included */
} mw_arena_t;

/* Initialises an empty arena (no allocation). */
void mw_arena_init(mw_arena_t *a);
/* Copies n bytes into the arena; returns the stable copy, NULL on OOM.
 * Inline while the current chunk has room; mw_arena_dup_slow (same contract)
 * opens a new chunk. */
uint8_t *mw_arena_dup_slow(mw_arena_t *a, const void *src, size_t n);
static inline uint8_t *mw_arena_dup(mw_arena_t *a, const void *src, size_t n) {
  mw_arena_chunk_t *c = a->head;
  if (!c || c->cap - c->off < n) return mw_arena_dup_slow(a, src, n); /* a new chunk */
  uint8_t *p = c->data + c->off;
  if (n) memcpy(p, src, n);
  c->off += n;
  a->used += n;
  return p;
}
/* Records that an item of n bytes is no longer used (bookkeeping only). */
void mw_arena_release(mw_arena_t *a, size_t n);
/* Frees every chunk; the arena is empty and reusable. */
void mw_arena_free(mw_arena_t *a);

#endif
