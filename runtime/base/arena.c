/* base/arena.c: chunked bump allocator (see base/arena.h). */
#include "base/arena.h"

#include <stdlib.h>
#include <string.h>

/* 16 KiB, not more: the last chunk of an arena is on average half empty, and
 * every scrape target's series table has one (64 KiB chunks cost 16 bytes a
 * series at 2,000 series a target; 16 KiB chunks 4). A chunk's header and
 * malloc's are 0.2% of it. */
#define MW_ARENA_CHUNK 16384
/* The first chunk: a table of a few series (a scrape's report series, a
 * small exporter) should not hold 16 KiB. Each new chunk is as large as all
 * the earlier ones together, up to MW_ARENA_CHUNK, so a big arena still
 * opens few chunks. */
#define MW_ARENA_FIRST 256

void mw_arena_init(mw_arena_t *a) { memset(a, 0, sizeof *a); }

uint8_t *mw_arena_dup_slow(mw_arena_t *a, const void *src, size_t n) {
  mw_arena_chunk_t *c = a->head;
  if (!c || c->cap - c->off < n) {
    size_t cap = a->reserved < MW_ARENA_FIRST ? MW_ARENA_FIRST : a->reserved;
    if (cap > MW_ARENA_CHUNK - sizeof(mw_arena_chunk_t))
      cap = MW_ARENA_CHUNK - sizeof(mw_arena_chunk_t);
    if (n > MW_ARENA_CHUNK / 4)
      cap = n;
    else if (cap < n)
      cap = n;
    mw_arena_chunk_t *nc = malloc(sizeof *nc + cap);
    if (!nc) return NULL;
    nc->cap = cap;
    nc->off = 0;
    a->reserved += sizeof *nc + cap;
    if (c && cap == n) {
      /* A big item gets its own chunk behind the current one, which stays open. */
      nc->next = c->next;
      c->next = nc;
    } else {
      nc->next = c;
      a->head = nc;
    }
    c = nc;
  }
  uint8_t *p = c->data + c->off;
  if (n && src) memcpy(p, src, n);
  c->off += n;
  a->used += n;
  return p;
}

void *mw_arena_alloc_slow(mw_arena_t *a, size_t n) {
  /* a fresh chunk's data is 8-aligned (the header is three size_t-sized fields) */
  if (!mw_arena_dup_slow(a, NULL, 0)) return NULL;
  mw_arena_chunk_t *c = a->head;
  size_t off = (c->off + 7) & ~(size_t)7;
  if (off > c->cap || c->cap - off < n) {
    /* the current chunk is too small: a chunk of its own for n bytes */
    uint8_t *p = mw_arena_dup_slow(a, NULL, n + 8);
    if (!p) return NULL;
    return (void *)(((uintptr_t)p + 7) & ~(uintptr_t)7);
  }
  a->used += off - c->off + n;
  c->off = off + n;
  return c->data + off;
}

void mw_arena_reset(mw_arena_t *a) {
  mw_arena_chunk_t *c = a->head;
  if (c && c->next) {
    size_t cap = a->reserved - sizeof *c;
    mw_arena_free(a);
    mw_arena_chunk_t *nc = malloc(sizeof *nc + cap);
    if (!nc) return; /* empty: the next allocation tries again */
    nc->next = NULL;
    nc->cap = cap;
    a->head = c = nc;
    a->reserved = sizeof *nc + cap;
  }
  if (c) c->off = 0;
  a->used = a->garbage = 0;
}

void mw_arena_release(mw_arena_t *a, size_t n) { a->garbage += n; }

void mw_arena_free(mw_arena_t *a) {
  mw_arena_chunk_t *c = a->head;
  while (c) {
    mw_arena_chunk_t *next = c->next;
    free(c);
    c = next;
  }
  mw_arena_init(a);
}
