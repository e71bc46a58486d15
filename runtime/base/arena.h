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
/* Copies n bytes into the arena (src NULL: reserves them, uninitialised);
 * returns the stable copy, NULL on OOM.
 * Inline while the current chunk has room; mw_arena_dup_slow (same contract)
 * opens a new chunk. */
uint8_t *mw_arena_dup_slow(mw_arena_t *a, const void *src, size_t n);
static inline uint8_t *mw_arena_dup(mw_arena_t *a, const void *src, size_t n) {
  mw_arena_chunk_t *c = a->head;
  if (!c || c->cap - c->off < n) return mw_arena_dup_slow(a, src, n); /* a new chunk */
  uint8_t *p = c->data + c->off;
  if (n && src) memcpy(p, src, n);
  c->off += n;
  a->used += n;
  return p;
}
/* n uninitialised bytes aligned to 8 (for arrays of structs), same lifetime;
 * NULL on OOM. Inline while the current chunk has room. */
void *mw_arena_alloc_slow(mw_arena_t *a, size_t n);
static inline void *mw_arena_alloc(mw_arena_t *a, size_t n) {
  mw_arena_chunk_t *c = a->head;
  size_t off = c ? (c->off + 7) & ~(size_t)7 : 0;
  if (!c || off > c->cap || c->cap - off < n) return mw_arena_alloc_slow(a, n);
  a->used += off - c->off + n;
  c->off = off + n;
  return c->data + off;
}
/* Forgets every item but keeps the memory for the next round (a scratch arena
 * reset per operation): when the arena had grown to several chunks, they are
 * replaced by one chunk as large as all of them, so a round of the same size
 * then allocates nothing. */
void mw_arena_reset(mw_arena_t *a);
/* Records that an item of n bytes is no longer used (bookkeeping only). */
void mw_arena_release(mw_arena_t *a, size_t n);
/* Frees every chunk; the arena is empty and reusable. */
void mw_arena_free(mw_arena_t *a);

#endif
