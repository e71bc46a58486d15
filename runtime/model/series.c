/* model/series.c: the series table (see model/series.h). Label sets are stored as
 * symbol ids (base/symtab.h): an own entry holds a reference on each of its
 * symbols. Entries are a dense array
 * indexed by ref; the index is open addressing with linear probing and
 * backward-shift deletion, each slot holding (hash high 32 bits, ref + 1),
 * sized as base/grow.h says (load 1/2 to 3/4). A slot's home is derived
 * from those high bits (MW_HOME), so growing the index and deleting never
 * read the entries.
 *
 * An entry's label bytes are the table's own (in its arena) or borrowed
 * from another table's entry (mw_series_add_borrowed); the lender's
 * watchers (mw_series_watch) hear when those bytes move or go, and copy or
 * re-point them. */
#include "model/series.h"
#include "base/err.h"
#include "base/grow.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "base/labels.h"
#include "base/symtab.h"

/* No hash in an entry (16 bytes, not 24: 0.8 MB at 100k series): a slot
 * holds its high 32 bits, enough to probe, and deletion and
 * mw_series_hash, which new series and deleted ones pay, hash the bytes
 * again (every caller passes mw_labels_hash). */
typedef struct {
  const uint8_t *labels; /* stored as ids (base/symtab.h); NULL: free entry */
  uint32_t len;          /* | MW_BORROWED: the bytes are another table's */
  uint32_t next_free;    /* free list link while free; the entry's stamp while live */
} mw_series_entry_t;

#define MW_BORROWED 0x80000000u
#define MW_LEN(e) ((e)->len & ~MW_BORROWED)

typedef struct {
  mw_series_watch_fn fn;
  void *ctx;
} mw_series_watcher_t;

struct mw_series {
  mw_series_entry_t *e;
  uint32_t limit, cap; /* entries used (incl. free ones), allocated */
  uint32_t free_head;  /* MW_SERIES_NONE: no free entry */
  uint32_t live;
  uint64_t *slots; /* 0: empty; NULL: no index (mw_series_drop_index) */
  size_t nslots;   /* 0 without an index */
  mw_arena_t arena;
  size_t label_bytes;
  uint64_t uid;   /* unique per table for the life of the process */
  uint32_t stamp; /* last stamp handed to an entry */
  uint8_t *text;  /* mw_series_labels's text (one at a time) */
  size_t text_cap;
  uint8_t *st; /* a label set being stored */
  size_t st_cap;
  mw_series_watcher_t *watchers;
  size_t nwatchers;
};

/* Tells every watcher that ref's bytes moved to now, or go (now NULL; ref
 * MW_SERIES_NONE: the whole table). The bytes are still readable. */
static void mw_series_notify(const mw_series_t *s, uint32_t ref, const uint8_t *now) {
  for (size_t i = 0; i < s->nwatchers; i++)
    s->watchers[i].fn(s->watchers[i].ctx, ref, now);
}

static uint64_t mw_series_uids;

/* Home slot of a hash, or of a slot's value v (both keep the high 32 bits). */
#define MW_HOME(hash, n) mw_slot_home((uint32_t)((hash) >> 32), (n))

mw_series_t *mw_series_new(void) {
  mw_series_t *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->free_head = MW_SERIES_NONE;
  s->uid = __atomic_add_fetch(&mw_series_uids, 1, __ATOMIC_RELAXED);
  s->nslots = MW_SLOTS_MIN;
  s->slots = calloc(s->nslots, sizeof *s->slots);
  if (!s->slots) {
    free(s);
    return NULL;
  }
  mw_arena_init(&s->arena);
  return s;
}

void mw_series_free(mw_series_t *s) {
  if (!s) return;
  mw_series_notify(s, MW_SERIES_NONE, NULL);
  free(s->watchers);
  for (uint32_t r = 0; r < s->limit; r++)
    if (s->e[r].labels && !(s->e[r].len & MW_BORROWED))
      mw_syms_release(s->e[r].labels, s->e[r].len);
  free(s->text);
  free(s->st);
  mw_arena_free(&s->arena);
  free(s->slots);
  free(s->e);
  free(s);
}

/* Moves the index into n slots (mw_slots_grown: half as many more): no entry is read. */
static int mw_series_resize_index(mw_series_t *s, size_t n) {
  uint64_t *slots = calloc(n, sizeof *slots);
  if (!slots) return -1;
  mw_slots_move(s->slots, s->nslots, slots, n, NULL);
  free(s->slots);
  s->slots = slots;
  s->nslots = n;
  return 0;
}

/* The text of stored set (st, len) into the table's text buffer (NULL on OOM). */
static const uint8_t *mw_series_text(const mw_series_t *cs, const uint8_t *st, size_t len,
                                     size_t *text_len) {
  mw_series_t *s = (mw_series_t *)cs; /* the buffer is scratch, not the table's state */
  size_t n = mw_syms_text_len(st, len);
  if (mw_grow((void **)&s->text, &s->text_cap, n ? n : 1, 1) != 0) {
    *text_len = 0;
    return NULL;
  }
  *text_len = mw_syms_text(st, len, s->text);
  return s->text;
}

/* 1 if entry e holds key (stored: a stored set; else the text of one). */
static int mw_series_entry_is(const mw_series_entry_t *e, const uint8_t *key, size_t len,
                              int stored) {
  if (stored) return MW_LEN(e) == len && memcmp(e->labels, key, len) == 0;
  return mw_syms_eq_text(e->labels, MW_LEN(e), key, len);
}

/* The ref of (key, len, hash) in the index (stored: key is a stored set, else a
 * text), or MW_SERIES_NONE. */
static uint32_t mw_series_probe(const mw_series_t *s, const uint8_t *enc, size_t len, uint64_t hash,
                                int stored) {
  uint32_t tag = (uint32_t)(hash >> 32);
  for (size_t i = MW_HOME(hash, s->nslots);; i = mw_slot_next(i, s->nslots)) {
    uint64_t v = s->slots[i];
    if (!v) return MW_SERIES_NONE;
    if ((uint32_t)(v >> 32) == tag && mw_series_entry_is(&s->e[(uint32_t)v - 1], enc, len, stored))
      return (uint32_t)v - 1;
  }
}

/* Indexes every live entry again (after mw_series_drop_index), in slots
 * for half as many more: hashes every label set. 0, -1 on OOM. */
static int mw_series_build_index(mw_series_t *s) {
  size_t n = mw_slots_for((size_t)s->live + s->live / 2 + 1);
  uint64_t *slots = calloc(n, sizeof *slots);
  if (!slots) return -1;
  for (uint32_t r = 0; r < s->limit; r++) {
    const mw_series_entry_t *e = &s->e[r];
    if (!e->labels) continue;
    mw_slots_put(slots, n, mw_slot_tagged(mw_syms_text_hash(e->labels, MW_LEN(e)), r));
  }
  s->slots = slots;
  s->nslots = n;
  return 0;
}

void mw_series_drop_index(mw_series_t *s) {
  free(s->slots);
  s->slots = NULL;
  s->nslots = 0;
}

int mw_series_indexed(const mw_series_t *s) { return s->slots != NULL; }

int mw_series_index(mw_series_t *s) { return s->slots ? 0 : mw_series_build_index(s); }

static uint32_t mw_series_find(const mw_series_t *s, const uint8_t *key, size_t len, uint64_t hash,
                               int stored) {
  uint32_t ref;
  if (!s->slots) { /* no index: look at every entry (a const lookup cannot build one) */
    for (ref = 0; ref < s->limit; ref++)
      if (s->e[ref].labels && mw_series_entry_is(&s->e[ref], key, len, stored)) return ref;
    return MW_SERIES_NONE;
  }
  return mw_series_probe(s, key, len, hash, stored);
}

uint32_t mw_series_get(const mw_series_t *s, const uint8_t *enc, size_t len, uint64_t hash) {
  return mw_series_find(s, enc, len, hash, 0);
}

uint32_t mw_series_get_stored(const mw_series_t *s, const uint8_t *st, size_t len, uint64_t hash) {
  return mw_series_find(s, st, len, hash, 1);
}

void mw_series_prefetch(const mw_series_t *s, uint64_t hash) {
  if (s->slots) __builtin_prefetch(&s->slots[MW_HOME(hash, s->nslots)]);
}

static int mw_series_put(mw_series_t *s, const uint8_t *enc, size_t len, uint64_t hash,
                         uint32_t *ref, int *added, int borrow, char *err, size_t errlen) {
  uint32_t r;
  if (!s->slots && mw_series_build_index(s) != 0) goto oom;
  r = mw_series_probe(s, enc, len, hash, borrow);
  if (added) *added = 0;
  if (r != MW_SERIES_NONE) {
    *ref = r;
    return 0;
  }
  if (len >= MW_BORROWED) {
    mw_seterr(err, errlen, "label set too large");
    return -1;
  }
  /* deletion finds the slot by it */
  assert(hash == (borrow ? mw_syms_text_hash(enc, len) : mw_labels_hash(enc, len)));
  if (mw_slots_full(s->live, s->nslots) &&
      mw_series_resize_index(s, mw_slots_grown(s->nslots)) != 0)
    goto oom;
  if (s->free_head == MW_SERIES_NONE && s->limit == s->cap) {
    if (s->cap >= UINT32_MAX / 2) {
      mw_seterr(err, errlen, "series table full");
      return -1;
    }
    uint32_t cap = s->cap ? s->cap * 2 : 64;
    mw_series_entry_t *e = realloc(s->e, (size_t)cap * sizeof *e);
    if (!e) goto oom;
    s->e = e;
    s->cap = cap;
  }
  const uint8_t *copy = enc;
  if (!borrow) { /* the text as ids, a reference on each symbol */
    if (mw_grow((void **)&s->st, &s->st_cap, MW_SYMS_MAX(len), 1) != 0) goto oom;
    size_t n = mw_syms_store(enc, len, s->st);
    if (n == (size_t)-1) goto oom;
    copy = mw_arena_dup(&s->arena, s->st, n);
    if (!copy) {
      mw_syms_release(s->st, n);
      goto oom;
    }
    len = n;
  }
  if (s->free_head != MW_SERIES_NONE) {
    r = s->free_head;
    s->free_head = s->e[r].next_free;
  } else {
    r = s->limit++;
  }
  if (++s->stamp == 0) s->stamp = 1;
  s->e[r] = (mw_series_entry_t){
      .labels = copy, .len = (uint32_t)len | (borrow ? MW_BORROWED : 0), .next_free = s->stamp};
  mw_slots_put(s->slots, s->nslots, mw_slot_tagged(hash, r));
  s->live++;
  if (!borrow) s->label_bytes += len;
  *ref = r;
  if (added) *added = 1;
  return 0;
oom:
  mw_oom(err, errlen);
  return -1;
}

int mw_series_add(mw_series_t *s, const uint8_t *enc, size_t len, uint64_t hash, uint32_t *ref,
                  int *added, char *err, size_t errlen) {
  return mw_series_put(s, enc, len, hash, ref, added, 0, err, errlen);
}

int mw_series_add_borrowed(mw_series_t *s, const uint8_t *enc, size_t len, uint64_t hash,
                           uint32_t *ref, int *added, char *err, size_t errlen) {
  return mw_series_put(s, enc, len, hash, ref, added, 1, err, errlen);
}

int mw_series_borrowed(const mw_series_t *s, uint32_t ref) {
  return ref < s->limit && s->e[ref].labels && (s->e[ref].len & MW_BORROWED);
}

int mw_series_own(mw_series_t *s, uint32_t ref) {
  if (!mw_series_borrowed(s, ref)) return 0;
  mw_series_entry_t *e = &s->e[ref];
  const uint8_t *copy = mw_arena_dup(&s->arena, e->labels, MW_LEN(e));
  if (!copy) return -1;
  mw_syms_ref(copy, MW_LEN(e));
  e->labels = copy;
  e->len = MW_LEN(e);
  s->label_bytes += e->len;
  return 0;
}

void mw_series_rebind(mw_series_t *s, uint32_t ref, const uint8_t *enc) {
  if (mw_series_borrowed(s, ref)) s->e[ref].labels = enc;
}

int mw_series_watch(mw_series_t *s, mw_series_watch_fn fn, void *ctx) {
  for (size_t i = 0; i < s->nwatchers; i++)
    if (s->watchers[i].ctx == ctx) return 0;
  mw_series_watcher_t *w = realloc(s->watchers, (s->nwatchers + 1) * sizeof *w);
  if (!w) return -1;
  s->watchers = w;
  s->watchers[s->nwatchers++] = (mw_series_watcher_t){.fn = fn, .ctx = ctx};
  return 0;
}

void mw_series_unwatch(mw_series_t *s, void *ctx) {
  for (size_t i = 0; i < s->nwatchers; i++)
    if (s->watchers[i].ctx == ctx) {
      s->watchers[i] = s->watchers[--s->nwatchers];
      return;
    }
}

const uint8_t *mw_series_labels(const mw_series_t *s, uint32_t ref, size_t *len) {
  if (ref >= s->limit || !s->e[ref].labels) {
    *len = 0;
    return NULL;
  }
  return mw_series_text(s, s->e[ref].labels, MW_LEN(&s->e[ref]), len);
}

const uint8_t *mw_series_stored(const mw_series_t *s, uint32_t ref, size_t *len) {
  if (ref >= s->limit || !s->e[ref].labels) return NULL;
  *len = MW_LEN(&s->e[ref]);
  return s->e[ref].labels;
}

int mw_series_live(const mw_series_t *s, uint32_t ref) {
  return ref < s->limit && s->e[ref].labels != NULL;
}

uint64_t mw_series_hash(const mw_series_t *s, uint32_t ref) {
  if (ref >= s->limit || !s->e[ref].labels) return 0;
  return mw_syms_text_hash(s->e[ref].labels, MW_LEN(&s->e[ref]));
}

uint64_t mw_series_uid(const mw_series_t *s) { return s->uid; }

uint32_t mw_series_stamp(const mw_series_t *s, uint32_t ref) {
  if (ref >= s->limit || !s->e[ref].labels) return 0;
  return s->e[ref].next_free;
}

void mw_series_del(mw_series_t *s, uint32_t ref) {
  if (ref >= s->limit || !s->e[ref].labels) return;
  mw_series_entry_t *e = &s->e[ref];
  if (s->slots) mw_slots_del(s->slots, s->nslots, mw_syms_text_hash(e->labels, MW_LEN(e)), ref);
  mw_series_notify(s, ref, NULL);
  if (!(e->len & MW_BORROWED)) {
    mw_syms_release(e->labels, e->len);
    mw_arena_release(&s->arena, e->len);
    s->label_bytes -= e->len;
  }
  e->labels = NULL;
  e->len = 0;
  e->next_free = s->free_head;
  s->free_head = ref;
  s->live--;
}

size_t mw_series_len(const mw_series_t *s) { return s->live; }

uint32_t mw_series_limit(const mw_series_t *s) { return s->limit; }

int mw_series_compact(mw_series_t *s) {
  if (s->arena.garbage * 2 <= s->arena.used) return 0;
  mw_arena_t fresh;
  mw_arena_init(&fresh);
  /* Copy first, then switch pointers, so a failure leaves the table intact. */
  const uint8_t **copies = malloc((size_t)(s->limit ? s->limit : 1) * sizeof *copies);
  if (!copies) return -1;
  for (uint32_t r = 0; r < s->limit; r++) {
    copies[r] = NULL;
    if (!s->e[r].labels || (s->e[r].len & MW_BORROWED)) continue;
    copies[r] = mw_arena_dup(&fresh, s->e[r].labels, s->e[r].len);
    if (!copies[r]) {
      mw_arena_free(&fresh);
      free(copies);
      return -1;
    }
  }
  for (uint32_t r = 0; r < s->limit; r++)
    if (copies[r]) mw_series_notify(s, r, copies[r]); /* the old bytes are still there */
  for (uint32_t r = 0; r < s->limit; r++)
    if (copies[r]) s->e[r].labels = copies[r];
  free(copies);
  mw_arena_free(&s->arena);
  s->arena = fresh;
  return 0;
}

size_t mw_series_mem(const mw_series_t *s, size_t *label_bytes) {
  if (label_bytes) *label_bytes = s->label_bytes;
  return sizeof *s + (size_t)s->cap * sizeof *s->e + s->nslots * sizeof *s->slots +
         s->arena.reserved + s->text_cap + s->st_cap;
}
