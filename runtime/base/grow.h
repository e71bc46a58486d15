/* base/grow.h: the one grow helper for malloc'd arrays (Redis's habit: one
 * helper, used everywhere). */
#ifndef MW_GROW_H
#define MW_GROW_H
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Makes *p (an array of *cap elements of size bytes, NULL when *cap is 0) hold
 * at least need elements: the capacity doubles from 16 until it does. 0, or -1
 * when out of memory or when the size would overflow (*p and *cap unchanged). */
static inline int mw_grow(void **p, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 16;
  while (c < need) {
    if (c > SIZE_MAX / 4 / size) return -1;
    c *= 2;
  }
  void *q = realloc(*p, c * size);
  if (!q) return -1;
  *p = q;
  *cap = c;
  return 0;
}

/* Open-addressing indexes (series tables, scrape caches, the WAL's ref
 * map) share one sizing: any slot count n >= 64 (not a power of two), a
 * key's home slot taken from 32 bits of its hash by multiply-shift (so the
 * home order is the hash order, which linear probing and backward-shift
 * deletion need), a load of at most 3/4, growth by half. The load then
 * stays between 1/2 and 3/4: 11-16 bytes a series for 8-byte slots, where
 * powers of two at a load of at most 1/2 cost 16-32. Linear probing at 3/4
 * looks at 2.5 slots for a hit and 8.5 for a miss on average (one cache
 * line of 8-byte slots). */
#define MW_SLOTS_MIN 64
/* The home slot of a key whose hash has these 32 bits, in n slots. */
static inline size_t mw_slot_home(uint32_t h32, size_t n) {
  return (size_t)(((uint64_t)h32 * (uint64_t)n) >> 32);
}
/* The slot after i (wrapping). */
static inline size_t mw_slot_next(size_t i, size_t n) { return i + 1 == n ? 0 : i + 1; }
/* 1 if n slots cannot take used + 1 keys (the load would pass 3/4). */
static inline int mw_slots_full(size_t used, size_t n) { return (used + 1) * 4 > n * 3; }
/* The slot count after n, rounded up to a multiple of 8. */
static inline size_t mw_slots_grown(size_t n) { return (n + n / 2 + 7) & ~(size_t)7; }
/* Backward-shift deletion: with a hole at slot i, the key in slot j (a later slot of the
 * same run) whose home is home stays where it is when home lies cyclically in (i, j];
 * otherwise it moves into the hole. */
static inline int mw_slot_stays(size_t i, size_t j, size_t home) {
  return i <= j ? (home > i && home <= j) : (home > i || home <= j);
}

/* Tagged slots (series tables, scrape caches, the symbol table): 64 bits each, the high 32
 * bits of the key's hash and its index + 1 (0: empty); the home comes from the high bits,
 * so moving slots never reads a key. */
static inline uint64_t mw_slot_tagged(uint64_t hash, size_t idx) {
  return ((uint64_t)(uint32_t)(hash >> 32) << 32) | ((uint64_t)idx + 1);
}
/* Puts tagged slot v into the first empty slot of its run (there is one: the load is at
 * most 3/4); returns where. */
static inline size_t mw_slots_put(uint64_t *slots, size_t n, uint64_t v) {
  size_t i = mw_slot_home((uint32_t)(v >> 32), n);
  while (slots[i])
    i = mw_slot_next(i, n);
  slots[i] = v;
  return i;
}
/* Moves the used tagged slots of old (old_n of them) into slots (n, zeroed), in slot order,
 * index k becoming remap[k] - 1 (dropped if 0) when remap is given; no key is read. The
 * used slots of 64 at a time are found without branches: their pattern is random. */
static inline void mw_slots_move(const uint64_t *old, size_t old_n, uint64_t *slots, size_t n,
                                 const uint32_t *remap) {
  for (size_t i = 0; i < old_n; i += 64) {
    size_t m = old_n - i < 64 ? old_n - i : 64;
    uint64_t used = 0;
    for (size_t k = 0; k < m; k++)
      used |= (uint64_t)(old[i + k] != 0) << k;
    while (used) {
      uint64_t v = old[i + (size_t)__builtin_ctzll(used)];
      used &= used - 1;
      if (remap) {
        uint32_t idx = remap[(uint32_t)v - 1];
        if (!idx) continue;
        v = (v >> 32 << 32) | idx;
      }
      mw_slots_put(slots, n, v);
    }
  }
}
/* Empties the slot of index idx (whose key's hash is hash; it is there), by backward-shift
 * deletion: every probe sequence stays unbroken. */
static inline void mw_slots_del(uint64_t *slots, size_t n, uint64_t hash, size_t idx) {
  size_t i = mw_slot_home((uint32_t)(hash >> 32), n);
  while ((uint32_t)slots[i] != (uint32_t)(idx + 1))
    i = mw_slot_next(i, n);
  slots[i] = 0;
  for (size_t j = mw_slot_next(i, n); slots[j]; j = mw_slot_next(j, n)) {
    if (mw_slot_stays(i, j, mw_slot_home((uint32_t)(slots[j] >> 32), n))) continue;
    slots[i] = slots[j];
    slots[j] = 0;
    i = j;
  }
}

/* The smallest slot count (a multiple of 8, >= MW_SLOTS_MIN) for used keys. */
static inline size_t mw_slots_for(size_t used) {
  size_t n = (used * 4 / 3 + 8) & ~(size_t)7;
  return n < MW_SLOTS_MIN ? MW_SLOTS_MIN : n;
}

#endif
