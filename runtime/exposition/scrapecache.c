/* exposition/scrapecache.c: the per-target scrape cache (see exposition/scrapecache.h).
 *
 * Epochs: every scrape gets a new epoch (never 0); keys and families
 * remember the epoch that last used them, and `last` is the epoch of the
 * last completed scrape. Per series ref the cache keeps one byte of flags
 * (not two epochs: 1 byte a series instead of 8): MW_CUR (the current
 * scrape saw it), MW_PREV (the last completed scrape saw it), each with
 * its _NOSTALE (the sample had an explicit timestamp). A series is alive
 * while it has MW_PREV; mw_scrapecache_end moves MW_CUR to MW_PREV. */
#include "exposition/scrapecache.h"
#include "base/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* Inlined: series texts are short, the call and dispatch would dominate. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "base/grow.h"
#include "base/intern.h"
#include "model/batch.h"
#include "model/series.h"

#define MW_EPOCH 0x7fffffffu
enum { MW_CUR = 1, MW_CUR_NOSTALE = 2, MW_PREV = 4, MW_PREV_NOSTALE = 8 };
/* A native histogram series (its staleness marker is a histogram), and a float one;
 * both carried from scrape to scrape as they are. */
enum { MW_HIST = 16, MW_HFLOAT = 32 };

/* A key: 20 bytes (4-aligned; 24 with 8), and in kseen (same index) the
 * low byte of the epoch that last used it (MW_SEEN): mw_scrapecache_begin
 * drops every key whose seen is not the last scrape's, so a kept key's is
 * the last or the current scrape's, two epochs in a row, which their low
 * bytes tell apart. (Packing the byte into the key, 21 bytes, made every
 * key unaligned: 10% slower cached parses.) */
typedef struct __attribute__((packed, aligned(4))) {
  mw_skey_t key;
  uint32_t ref;
} mw_key_t;
#define MW_SEEN(epoch) ((uint8_t)(epoch))

/* A family's metadata: its strings interned (every target of a job repeats
 * them); help and unit NULL when absent. */
typedef struct {
  mw_istr_t *name, *help, *unit;
  int type;
  uint32_t seen;
} mw_family_t;

struct mw_scrapecache {
  mw_series_t *series;
  mw_key_t *keys;
  uint8_t *kseen; /* per key: MW_SEEN of the epoch that last used it */
  size_t nkeys, keys_cap;
  uint64_t *slots; /* (key.hi >> 32) << 32 | (key index + 1); 0 empty; home at
                      MW_HOME, from the high bits, so growing needs no key;
                      sized as base/grow.h says; NULL: none (see probed) */
  size_t nslots;
  int probed;   /* this scrape looked a key up in the index (the guess missed):
                   a scrape that did not frees the index until one does */
  size_t guess; /* key index expected next: bodies keep their order */
  uint8_t *fl;  /* per ref: MW_CUR ... */
  size_t refs_cap;
  uint32_t epoch, last;
  int keyspace;
  int taught; /* this scrape added a key: its series table's index was used */
  mw_family_t *fam;
  size_t nfam, fam_cap, fam_guess;
  mw_scrapecache_mutate_fn mutate;
  void *mutate_ctx;
};

void mw_scrapecache_set_mutate(mw_scrapecache_t *c, mw_scrapecache_mutate_fn fn, void *ctx) {
  c->mutate = fn;
  c->mutate_ctx = ctx;
}

int mw_scrapecache_mutate(mw_scrapecache_t *c, const mw_label_t *in, size_t n,
                          const mw_label_t **out, size_t *out_n, char *err, size_t errlen) {
  if (!c->mutate) {
    *out = in;
    *out_n = n;
    return 0;
  }
  return c->mutate(c->mutate_ctx, in, n, out, out_n, err, errlen);
}

/* Home slot of a hash, or of a slot's value (both keep the high 32 bits). */
#define MW_HOME(hash, n) mw_slot_home((uint32_t)((hash) >> 32), (n))

mw_scrapecache_t *mw_scrapecache_new(void) {
  mw_scrapecache_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->series = mw_series_new();
  c->nslots = MW_SLOTS_MIN;
  c->slots = calloc(c->nslots, sizeof *c->slots);
  if (!c->series || !c->slots) {
    mw_series_free(c->series);
    free(c->slots);
    free(c);
    return NULL;
  }
  return c;
}

static void mw_family_clear(mw_family_t *f) {
  mw_intern_release(f->name);
  mw_intern_release(f->help);
  mw_intern_release(f->unit);
}

void mw_scrapecache_free(mw_scrapecache_t *c) {
  if (!c) return;
  mw_series_free(c->series);
  free(c->keys);
  free(c->kseen);
  free(c->slots);
  free(c->fl);
  for (size_t i = 0; i < c->nfam; i++)
    mw_family_clear(&c->fam[i]);
  free(c->fam);
  free(c);
}

mw_series_t *mw_scrapecache_series(const mw_scrapecache_t *c) { return c->series; }

mw_skey_t mw_scrapecache_hash(const char *text, size_t len) {
  XXH128_hash_t h = XXH3_128bits(text, len);
  return (mw_skey_t){.lo = h.low64, .hi = h.high64};
}

static void mw_slot_put(uint64_t *slots, size_t n, uint64_t hash, size_t idx) {
  mw_slots_put(slots, n, mw_slot_tagged(hash, idx));
}

/* Grows the index by half (the slots move, no key is read). */
static int mw_grow_index(mw_scrapecache_t *c) {
  size_t n = mw_slots_grown(c->nslots);
  uint64_t *slots = calloc(n, sizeof *slots);
  if (!slots) return -1;
  mw_slots_move(c->slots, c->nslots, slots, n, NULL);
  free(c->slots);
  c->slots = slots;
  c->nslots = n;
  return 0;
}

/* Rebuilds the index after the keys were compacted, key index k moving to
 * remap[k] - 1 (0: dropped). Without memory for a second index, refills it
 * in place from the keys. */
static void mw_rebuild_index(mw_scrapecache_t *c, const uint32_t *remap) {
  size_t n = c->nslots;
  if (!c->slots) return; /* none to rebuild: mw_key_index builds one when needed */
  uint64_t *slots = remap ? calloc(n, sizeof *slots) : NULL;
  if (slots) {
    mw_slots_move(c->slots, n, slots, n, remap);
    free(c->slots);
    c->slots = slots;
    return;
  }
  memset(c->slots, 0, n * sizeof *c->slots);
  for (size_t i = 0; i < c->nkeys; i++)
    mw_slot_put(c->slots, n, c->keys[i].key.hi, i);
}

/* Builds the key index if there is none (the keys hold their hashes: no
 * key text is read). 0, -1 on OOM. */
static int mw_key_index(mw_scrapecache_t *c) {
  if (c->slots) return 0;
  size_t n = mw_slots_for(c->nkeys + c->nkeys / 2 + 1);
  uint64_t *slots = calloc(n, sizeof *slots);
  if (!slots) return -1;
  for (size_t i = 0; i < c->nkeys; i++)
    mw_slot_put(slots, n, c->keys[i].key.hi, i);
  c->slots = slots;
  c->nslots = n;
  return 0;
}

int mw_scrapecache_begin(mw_scrapecache_t *c, char *err, size_t errlen) {
  uint32_t last = c->last;
  /* Keys: keep those the last scrape used whose series it saw. */
  size_t out = 0;
  uint32_t *remap = NULL;
  for (size_t i = 0; i < c->nkeys; i++) {
    mw_key_t *k = &c->keys[i];
    if (last && c->kseen[i] == MW_SEEN(last) && k->ref < c->refs_cap && (c->fl[k->ref] & MW_PREV)) {
      if (remap) remap[i] = (uint32_t)out + 1;
      c->kseen[out] = c->kseen[i];
      c->keys[out++] = *k;
    } else {
      /* The first key dropped: from here on indexes change (no remap
       * memory: the index is rebuilt from the key bytes). */
      if (out == i && !remap && (remap = malloc(c->nkeys * sizeof *remap)) != NULL)
        for (size_t r = 0; r < i; r++)
          remap[r] = (uint32_t)r + 1;
      if (remap) remap[i] = 0;
    }
  }
  int rebuild = out != c->nkeys;
  c->nkeys = out;
  if (rebuild) mw_rebuild_index(c, remap);
  free(remap);
  /* Series: keep those the last scrape saw. */
  uint32_t limit = mw_series_limit(c->series);
  for (uint32_t r = 0; r < limit; r++) {
    if (!mw_series_live(c->series, r)) continue;
    if (!last || r >= c->refs_cap || !(c->fl[r] & MW_PREV)) {
      mw_series_del(c->series, r);
      if (r < c->refs_cap) c->fl[r] = 0;
    }
  }
  if (mw_series_compact(c->series) != 0) goto oom;
  /* Metadata: keep the families the last scrape mentioned. */
  out = 0;
  for (size_t i = 0; i < c->nfam; i++) {
    if (last && c->fam[i].seen == last) {
      c->fam[out++] = c->fam[i];
    } else {
      mw_family_clear(&c->fam[i]);
    }
  }
  c->nfam = out;
  c->fam_guess = 0;
  c->guess = 0;
  c->taught = 0;
  c->probed = 0;
  c->epoch = (c->last + 1) & MW_EPOCH;
  if (!c->epoch) c->epoch = 1;
  return 0;
oom:
  mw_oom(err, errlen);
  return -1;
}

void mw_scrapecache_abort(mw_scrapecache_t *c) {
  uint32_t e = c->epoch;
  for (size_t r = 0; r < c->refs_cap; r++)
    c->fl[r] &= (uint8_t) ~(MW_CUR | MW_CUR_NOSTALE);
  for (size_t i = 0; i < c->nkeys; i++)
    if (c->kseen[i] == MW_SEEN(e)) c->kseen[i] = MW_SEEN(c->last);
  for (size_t i = 0; i < c->nfam; i++)
    if (c->fam[i].seen == e) c->fam[i].seen = c->last;
}

void mw_scrapecache_forget(mw_scrapecache_t *c) {
  c->nkeys = 0;
  c->guess = 0;
  if (c->slots) memset(c->slots, 0, c->nslots * sizeof *c->slots);
}

void mw_scrapecache_keyspace(mw_scrapecache_t *c, int tag) {
  if (tag == c->keyspace) return;
  c->keyspace = tag;
  mw_scrapecache_forget(c);
}

uint32_t mw_scrapecache_get(mw_scrapecache_t *c, mw_skey_t key) {
  mw_key_t *k;
  if (c->guess < c->nkeys) {
    k = &c->keys[c->guess];
    if (mw_skey_eq(k->key, key)) goto hit;
  }
  c->probed = 1;
  if (mw_key_index(c) != 0) { /* no memory for the index: every key is read */
    for (k = c->keys; k < c->keys + c->nkeys; k++)
      if (mw_skey_eq(k->key, key)) goto hit;
    return MW_SERIES_NONE;
  }
  uint32_t tag = (uint32_t)(key.hi >> 32);
  for (size_t i = MW_HOME(key.hi, c->nslots);; i = mw_slot_next(i, c->nslots)) {
    uint64_t v = c->slots[i];
    if (!v) return MW_SERIES_NONE;
    if ((uint32_t)(v >> 32) != tag) continue;
    k = &c->keys[(uint32_t)v - 1];
    if (mw_skey_eq(k->key, key)) goto hit;
  }
hit:
  c->guess = (size_t)(k - c->keys) + 1;
  c->kseen[c->guess - 1] = MW_SEEN(c->epoch);
  return k->ref;
}

void mw_scrapecache_prefetch(const mw_scrapecache_t *c, mw_skey_t key) {
  if (c->slots) __builtin_prefetch(&c->slots[MW_HOME(key.hi, c->nslots)]);
}

int mw_scrapecache_add(mw_scrapecache_t *c, mw_skey_t key, uint32_t ref, char *err, size_t errlen) {
  if (mw_key_index(c) != 0) goto oom;
  if (mw_slots_full(c->nkeys, c->nslots) && mw_grow_index(c) != 0) goto oom;
  if (c->nkeys == c->keys_cap) {
    size_t cap = c->keys_cap ? c->keys_cap * 2 : 64;
    mw_key_t *keys = realloc(c->keys, cap * sizeof *keys);
    if (!keys) goto oom;
    c->keys = keys;
    uint8_t *kseen = realloc(c->kseen, cap);
    if (!kseen) goto oom;
    c->kseen = kseen;
    c->keys_cap = cap;
  }
  c->keys[c->nkeys] = (mw_key_t){.key = key, .ref = ref};
  c->kseen[c->nkeys] = MW_SEEN(c->epoch);
  c->taught = 1;
  mw_slot_put(c->slots, c->nslots, key.hi, c->nkeys);
  c->nkeys++;
  c->guess = c->nkeys;
  return 0;
oom:
  mw_oom(err, errlen);
  return -1;
}

int mw_scrapecache_mark_kind(mw_scrapecache_t *c, uint32_t ref, int explicit_ts, int kind) {
  int m = mw_scrapecache_mark(c, ref, explicit_ts);
  if (m == 1)
    c->fl[ref] = (uint8_t)((c->fl[ref] & ~(MW_HIST | MW_HFLOAT)) | (kind ? MW_HIST : 0) |
                           (kind == 2 ? MW_HFLOAT : 0));
  return m;
}

void mw_scrapecache_quiet(mw_scrapecache_t *c, uint32_t ref) {
  if (ref < c->refs_cap && (c->fl[ref] & MW_CUR)) c->fl[ref] |= MW_CUR_NOSTALE;
}

int mw_scrapecache_mark(mw_scrapecache_t *c, uint32_t ref, int explicit_ts) {
  if (ref >= c->refs_cap) {
    size_t cap = c->refs_cap ? c->refs_cap : 256;
    while (cap <= ref)
      cap *= 2;
    uint8_t *fl = realloc(c->fl, cap);
    if (!fl) return -1;
    memset(fl + c->refs_cap, 0, cap - c->refs_cap);
    c->fl = fl;
    c->refs_cap = cap;
  }
  if (c->fl[ref] & MW_CUR) return 0;
  c->fl[ref] |= MW_CUR | (explicit_ts ? MW_CUR_NOSTALE : 0);
  return 1;
}

int mw_scrapecache_was_seen(const mw_scrapecache_t *c, uint32_t ref) {
  return c->last && ref < c->refs_cap && (c->fl[ref] & MW_PREV);
}

int mw_scrapecache_end(mw_scrapecache_t *c, int ok, mw_batch_t *b, int stale_markers, int64_t ts_ms,
                       uint64_t *stale, char *err, size_t errlen) {
  uint64_t n = 0;
  int rc = 0;
  uint32_t limit = mw_series_limit(c->series);
  double snan = mw_batch_stale_nan();
  if (limit > c->refs_cap) limit = (uint32_t)c->refs_cap; /* refs never marked */
  for (uint32_t r = 0; r < limit; r++) {
    uint8_t f = c->fl[r];
    /* the current scrape's flags become the last one's */
    c->fl[r] =
        ok ? (uint8_t)((f & (MW_CUR | MW_CUR_NOSTALE)) << 2 | (f & (MW_HIST | MW_HFLOAT))) : 0;
    if (ok && (f & MW_CUR)) continue;
    if (!c->last || !(f & MW_PREV)) continue;
    if (f & MW_PREV_NOSTALE) continue;
    n++;
    if (stale_markers && rc == 0 && (f & MW_HIST) &&
        mw_batch_add_histogram_stale(b, r, ts_ms, (f & MW_HFLOAT) != 0) != 0) {
      mw_oom(err, errlen);
      rc = -1;
    } else if (stale_markers && rc == 0 && !(f & MW_HIST) && mw_batch_add(b, r, ts_ms, snan) != 0) {
      mw_oom(err, errlen);
      rc = -1;
    }
  }
  c->last = c->epoch;
  if (stale) *stale = n;
  /* A scrape whose every line the cache knew did not look up a label set:
   * the series table's index goes until a line is new again (then it is
   * built again, hashing the target's label sets once), 11-16 bytes a
   * series fewer for targets whose series do not change. */
  if (!c->taught) mw_series_drop_index(c->series);
  /* Likewise the key index after a scrape whose lines all came in the
   * order of the last one (each found at the guess): bodies that keep
   * their order (most exporters sort) need no index between changes. */
  if (!c->probed) {
    free(c->slots);
    c->slots = NULL;
    c->nslots = 0;
  }
  return rc;
}

static mw_family_t *mw_family_find(mw_scrapecache_t *c, const char *name, size_t len) {
  /* Families come in the same order every scrape: try the last one found
   * (HELP then TYPE of one family) and the one after it first. */
  size_t guesses[2] = {c->fam_guess ? c->fam_guess - 1 : 0, c->fam_guess};
  for (size_t k = 0; k < 2; k++) {
    size_t i = guesses[k];
    if (i < c->nfam && mw_istr_is(c->fam[i].name, name, len)) {
      c->fam_guess = i + 1;
      return &c->fam[i];
    }
  }
  for (size_t i = 0; i < c->nfam; i++) {
    if (mw_istr_is(c->fam[i].name, name, len)) {
      c->fam_guess = i + 1;
      return &c->fam[i];
    }
  }
  return NULL;
}

/* Points *dst at the interned text (the same one when unchanged). 0, -1 on OOM. */
static int mw_text_set(mw_istr_t **dst, const char *text, size_t len) {
  if (mw_istr_is(*dst, text, len)) return 0;
  mw_istr_t *x = mw_intern(text, len);
  if (!x) return -1;
  mw_intern_release(*dst);
  *dst = x;
  return 0;
}

int mw_scrapecache_meta_set(mw_scrapecache_t *c, const char *name, size_t name_len, int what,
                            int type, const char *text, size_t text_len, char *err, size_t errlen) {
  mw_family_t *f = mw_family_find(c, name, name_len);
  if (!f) {
    if (c->nfam == c->fam_cap) {
      size_t cap = c->fam_cap ? c->fam_cap * 2 : 32;
      mw_family_t *fam = realloc(c->fam, cap * sizeof *fam);
      if (!fam) goto oom;
      c->fam = fam;
      c->fam_cap = cap;
    }
    f = &c->fam[c->nfam];
    memset(f, 0, sizeof *f);
    if (mw_text_set(&f->name, name, name_len) != 0) goto oom;
    c->nfam++;
    c->fam_guess = c->nfam;
  }
  f->seen = c->epoch;
  switch (what) {
  case MW_META_TYPE: f->type = type; break;
  case MW_META_HELP:
    if (mw_text_set(&f->help, text, text_len) != 0) goto oom;
    break;
  default:
    if (mw_text_set(&f->unit, text, text_len) != 0) goto oom;
    break;
  }
  return 0;
oom:
  mw_oom(err, errlen);
  return -1;
}

int mw_scrapecache_meta_same(mw_scrapecache_t *c, const char *name, size_t name_len, int what,
                             const char *text, size_t text_len) {
  mw_family_t *f = mw_family_find(c, name, name_len);
  if (!f || !mw_istr_is(what == MW_META_HELP ? f->help : f->unit, text, text_len)) return 0;
  f->seen = c->epoch;
  return 1;
}

int mw_scrapecache_meta_type(mw_scrapecache_t *c, const char *name, size_t name_len) {
  mw_family_t *f = mw_family_find(c, name, name_len);
  return f ? f->type : MW_METRIC_UNKNOWN;
}

int mw_scrapecache_meta_next(const mw_scrapecache_t *c, size_t *i, mw_scrapecache_meta_t *out) {
  /* Families of the scrape before the last one stay until the next begin:
   * only those the last one saw count. */
  for (; c->last && *i < c->nfam; (*i)++) {
    const mw_family_t *f = &c->fam[*i];
    if (f->seen != c->last) continue;
    *out = (mw_scrapecache_meta_t){.name = f->name->s,
                                   .name_len = f->name->len,
                                   .help = f->help ? f->help->s : "",
                                   .help_len = f->help ? f->help->len : 0,
                                   .unit = f->unit ? f->unit->s : "",
                                   .unit_len = f->unit ? f->unit->len : 0,
                                   .type = f->type};
    (*i)++;
    return 1;
  }
  return 0;
}

size_t mw_scrapecache_len(const mw_scrapecache_t *c) { return c->nkeys; }

size_t mw_scrapecache_mem(const mw_scrapecache_t *c) {
  size_t m = sizeof *c + c->keys_cap * (sizeof *c->keys + sizeof *c->kseen) +
             c->nslots * sizeof *c->slots + c->refs_cap * sizeof *c->fl +
             c->fam_cap * sizeof *c->fam;
  return m + mw_series_mem(c->series, NULL); /* family strings are shared: not counted */
}

/* --- FFI ---------------------------------------------------------------- */

mw_scrapecache_t *mw_ffi_scrapecache_new(void) { return mw_scrapecache_new(); }

void mw_ffi_scrapecache_free(mw_scrapecache_t *c) { mw_scrapecache_free(c); }

size_t mw_ffi_scrapecache_meta_len(const mw_scrapecache_t *c) { return c->nfam; }

uint64_t mw_ffi_scrapecache_uid(const mw_scrapecache_t *c) { return mw_series_uid(c->series); }

int mw_ffi_scrapecache_meta_get(const mw_scrapecache_t *c, size_t i, const char **name,
                                size_t *name_len, int *type, const char **help, size_t *help_len,
                                const char **unit, size_t *unit_len) {
  if (i >= c->nfam) return -1;
  const mw_family_t *f = &c->fam[i];
  *name = f->name->s;
  *name_len = f->name->len;
  *type = f->type;
  *help = f->help ? f->help->s : "";
  *help_len = f->help ? f->help->len : 0;
  *unit = f->unit ? f->unit->s : "";
  *unit_len = f->unit ? f->unit->len : 0;
  return 0;
}
