/* base/symtab.c: the symbol table (see base/symtab.h). Symbols are a dense array
 * indexed by id (freed ids are reused, through a free list); the index is open
 * addressing as base/grow.h sizes it, each slot holding (hash high 32 bits, id + 1),
 * with backward-shift deletion. */
#include "base/symtab.h"

#include <stdlib.h>
#include <string.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "base/grow.h"
#include "base/labels.h"

#define MW_SYM_NONE UINT32_MAX
#define MW_HOME(hash, n) mw_slot_home((uint32_t)((hash) >> 32), (n))

mw_sym_t *mw_syms_by_id;
static uint32_t mw_limit, mw_cap, mw_free = MW_SYM_NONE, mw_live;
static uint64_t *mw_slots;
static size_t mw_nslots, mw_str_bytes;

static int mw_syms_resize(size_t n) {
  uint64_t *slots = calloc(n, sizeof *slots);
  if (!slots) return -1;
  mw_slots_move(mw_slots, mw_nslots, slots, n, NULL);
  free(mw_slots);
  mw_slots = slots;
  mw_nslots = n;
  return 0;
}

/* The id of s[0..len) with one more reference (a new symbol if needed);
 * MW_SYM_NONE on out of memory. */
static uint32_t mw_sym_intern(const char *s, size_t len) {
  if (len >= UINT32_MAX) return MW_SYM_NONE;
  if (!mw_slots && mw_syms_resize(MW_SLOTS_MIN) != 0) return MW_SYM_NONE;
  uint64_t hash = XXH3_64bits(s, len);
  uint32_t tag = (uint32_t)(hash >> 32);
  size_t i = MW_HOME(hash, mw_nslots);
  for (uint64_t v; (v = mw_slots[i]) != 0; i = mw_slot_next(i, mw_nslots)) {
    if ((uint32_t)(v >> 32) != tag) continue;
    mw_sym_t *x = &mw_syms_by_id[(uint32_t)v - 1];
    if (x->len == len && memcmp(x->s, s, len) == 0) {
      x->refs++;
      return (uint32_t)v - 1;
    }
  }
  if (mw_slots_full(mw_live, mw_nslots) && mw_syms_resize(mw_slots_grown(mw_nslots)) != 0)
    return MW_SYM_NONE;
  if (mw_free == MW_SYM_NONE && mw_limit == mw_cap) {
    if (mw_cap >= UINT32_MAX / 4) return MW_SYM_NONE;
    uint32_t cap = mw_cap ? mw_cap * 2 : 256;
    mw_sym_t *a = realloc(mw_syms_by_id, (size_t)cap * sizeof *a);
    if (!a) return MW_SYM_NONE;
    mw_syms_by_id = a;
    mw_cap = cap;
  }
  size_t words = (len + 7) & ~(size_t)7; /* readable in whole words (symtab.h) */
  char *copy = malloc(words ? words : 8);
  if (!copy) return MW_SYM_NONE;
  memset(copy + (words ? words - 8 : 0), 0, 8);
  if (len) memcpy(copy, s, len);
  uint32_t id;
  if (mw_free != MW_SYM_NONE) {
    id = mw_free;
    mw_free = mw_syms_by_id[id].len;
  } else {
    id = mw_limit++;
  }
  mw_syms_by_id[id] = (mw_sym_t){.s = copy, .len = (uint32_t)len, .refs = 1};
  mw_slots_put(mw_slots, mw_nslots, mw_slot_tagged(hash, id));
  mw_live++;
  mw_str_bytes += len;
  return id;
}

static void mw_sym_release(uint32_t id) {
  mw_sym_t *x = &mw_syms_by_id[id];
  if (--x->refs) return;
  mw_slots_del(mw_slots, mw_nslots, XXH3_64bits(x->s, x->len), id);
  mw_str_bytes -= x->len;
  free(x->s);
  *x = (mw_sym_t){.s = NULL, .len = mw_free, .refs = 0};
  mw_free = id;
  mw_live--;
}

static inline uint8_t *mw_put_id(uint8_t *p, uint32_t v) {
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  return p;
}

size_t mw_syms_store(const uint8_t *text, size_t len, uint8_t *out) {
  uint8_t *p = out;
  size_t pos = 0;
  while (pos < len) {
    const uint8_t *sep = memchr(text + pos, MW_LABELS_SEP, len - pos);
    uint32_t id =
        sep ? mw_sym_intern((const char *)text + pos, (size_t)(sep - text) - pos) : MW_SYM_NONE;
    if (id == MW_SYM_NONE) {
      mw_syms_release(out, (size_t)(p - out));
      return (size_t)-1;
    }
    p = mw_put_id(p, id);
    pos = (size_t)(sep - text) + 1;
  }
  return (size_t)(p - out);
}

void mw_syms_ref(const uint8_t *st, size_t len) {
  for (const uint8_t *p = st; p < st + len;)
    ((mw_sym_t *)mw_syms_next(&p))->refs++;
}

void mw_syms_release(const uint8_t *st, size_t len) {
  for (const uint8_t *p = st; p < st + len;)
    mw_sym_release((uint32_t)(mw_syms_next(&p) - mw_syms_by_id));
}

size_t mw_syms_text_len(const uint8_t *st, size_t len) {
  size_t n = 0;
  for (const uint8_t *p = st; p < st + len;)
    n += mw_syms_next(&p)->len + 1;
  return n;
}

size_t mw_syms_text(const uint8_t *st, size_t len, uint8_t *out) {
  uint8_t *o = out;
  for (const uint8_t *p = st; p < st + len;) {
    const mw_sym_t *x = mw_syms_next(&p);
    memcpy(o, x->s, x->len);
    o += x->len;
    *o++ = MW_LABELS_SEP;
  }
  return (size_t)(o - out);
}

/* mw_syms_text_hash of a text longer than its buffer: streamed, a piece at a time. */
static uint64_t mw_syms_text_hash_long(const uint8_t *st, size_t len) {
  XXH3_state_t state;
  static const uint8_t sep = MW_LABELS_SEP;
  XXH3_64bits_reset(&state);
  for (const uint8_t *p = st; p < st + len;) {
    const mw_sym_t *x = mw_syms_next(&p);
    XXH3_64bits_update(&state, x->s, x->len);
    XXH3_64bits_update(&state, &sep, 1);
  }
  return XXH3_64bits_digest(&state);
}

uint64_t mw_syms_text_hash(const uint8_t *st, size_t len) {
  uint8_t buf[512];
  size_t n = 0;
  for (const uint8_t *p = st; p < st + len;) {
    const mw_sym_t *x = mw_syms_next(&p);
    if (x->len >= sizeof buf - n) return mw_syms_text_hash_long(st, len);
    memcpy(buf + n, x->s, x->len);
    n += x->len;
    buf[n++] = MW_LABELS_SEP;
  }
  return XXH3_64bits(buf, n);
}

int mw_syms_eq_text(const uint8_t *st, size_t len, const uint8_t *text, size_t text_len) {
  size_t pos = 0;
  for (const uint8_t *p = st; p < st + len;) {
    const mw_sym_t *x = mw_syms_next(&p);
    if (text_len - pos < (size_t)x->len + 1 || memcmp(text + pos, x->s, x->len) != 0 ||
        text[pos + x->len] != MW_LABELS_SEP)
      return 0;
    pos += x->len + 1;
  }
  return pos == text_len;
}

size_t mw_syms_count(void) { return mw_live; }

size_t mw_syms_bytes(void) {
  return (size_t)mw_cap * sizeof *mw_syms_by_id + mw_nslots * sizeof *mw_slots + mw_str_bytes;
}

size_t mw_ffi_label_symbols(size_t *bytes) {
  *bytes = mw_syms_bytes();
  return mw_syms_count();
}
