/* base/intern.c: the string intern table (see base/intern.h): open addressing with
 * linear probing over pointers to the strings, backward-shift deletion, the
 * index grown at half full and never shrunk below 64 slots. */
#include "base/intern.h"

#include <stdlib.h>
#include <string.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

static mw_istr_t **mw_slots;
static size_t mw_mask, mw_count, mw_bytes;

static size_t mw_home(uint64_t hash) { return (size_t)hash & mw_mask; }

static int mw_intern_grow(void) {
  size_t n = mw_slots ? (mw_mask + 1) * 2 : 64;
  mw_istr_t **slots = calloc(n, sizeof *slots);
  if (!slots) return -1;
  for (size_t i = 0; mw_slots && i <= mw_mask; i++) {
    mw_istr_t *x = mw_slots[i];
    if (!x) continue;
    size_t j = (size_t)x->hash & (n - 1);
    while (slots[j])
      j = (j + 1) & (n - 1);
    slots[j] = x;
  }
  free(mw_slots);
  mw_slots = slots;
  mw_mask = n - 1;
  return 0;
}

mw_istr_t *mw_intern(const char *s, size_t len) {
  if (len >= UINT32_MAX) return NULL;
  if ((mw_count + 1) * 2 > (mw_slots ? mw_mask + 1 : 0) && mw_intern_grow() != 0) return NULL;
  uint64_t hash = XXH3_64bits(s, len);
  size_t i = mw_home(hash);
  for (mw_istr_t *x; (x = mw_slots[i]) != NULL; i = (i + 1) & mw_mask) {
    if (x->hash == hash && x->len == len && memcmp(x->s, s, len) == 0) {
      x->refs++;
      return x;
    }
  }
  mw_istr_t *x = malloc(sizeof *x + len + 1);
  if (!x) return NULL;
  *x = (mw_istr_t){.refs = 1, .len = (uint32_t)len, .hash = hash};
  if (len) memcpy(x->s, s, len);
  x->s[len] = '\0';
  mw_slots[i] = x;
  mw_count++;
  mw_bytes += sizeof *x + len + 1;
  return x;
}

void mw_intern_release(mw_istr_t *x) {
  if (!x || --x->refs) return;
  size_t i = mw_home(x->hash);
  while (mw_slots[i] != x)
    i = (i + 1) & mw_mask;
  /* Backward-shift deletion: move later entries of the run into the hole
   * when their home does not lie cyclically in (hole, their slot]. */
  for (size_t j = (i + 1) & mw_mask; mw_slots[j]; j = (j + 1) & mw_mask) {
    size_t h = mw_home(mw_slots[j]->hash);
    if (((j - h) & mw_mask) >= ((j - i) & mw_mask)) {
      mw_slots[i] = mw_slots[j];
      i = j;
    }
  }
  mw_slots[i] = NULL;
  mw_count--;
  mw_bytes -= sizeof *x + x->len + 1;
  free(x);
}

size_t mw_intern_count(void) { return mw_count; }

size_t mw_intern_bytes(void) { return mw_bytes; }
