/* remote/metadata.c: a set of metric metadata for prometheus.remote_write's
 * metadata_config (contract in remote/metadata.h), as
 * Prometheus's MetadataWatcher collects it from the active scrape targets.
 *
 * Entries are deduplicated as they are added (an index by a hash of all four
 * fields: every target of a job repeats the same families, so the set holds
 * each once, not once a target), copied (a scrape cache's strings live only
 * until its next scrape, and a send outlives several) into one string buffer
 * by offset, then sorted once, at the first read after an add. Encoding
 * reuses one Remote-Write encoder, so a steady-state round costs no malloc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "exposition/scrapecache.h"
#include "remote/encode.h"
#include "remote/metadata.h"
#define XXH_INLINE_ALL
#include <xxhash.h>

typedef struct {
  size_t name, help, unit; /* offsets in strs (NUL-terminated) */
  size_t name_len, help_len, unit_len;
  int type;
  const char *base; /* strs at sort time (the comparator has no context) */
} mw_rwmeta_entry_t;

struct mw_rwmeta {
  mw_rwmeta_entry_t *e;
  size_t n, cap;
  uint64_t *slots; /* (hash >> 32) << 32 | (entry index + 1); 0 empty */
  size_t mask;     /* slots - 1; 0: no index yet */
  char *strs;
  size_t strs_len, strs_cap;
  int dirty; /* added since the last sort */
  mw_rwenc_t *enc;
};

mw_rwmeta_t *mw_ffi_rwmeta_new(void) {
  mw_rwmeta_t *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->enc = mw_rwenc_new();
  if (!m->enc) {
    free(m);
    return NULL;
  }
  return m;
}

void mw_ffi_rwmeta_free(mw_rwmeta_t *m) {
  if (!m) return;
  free(m->e);
  free(m->slots);
  free(m->strs);
  mw_rwenc_free(m->enc);
  free(m);
}

void mw_ffi_rwmeta_clear(mw_rwmeta_t *m) {
  if (m->slots) memset(m->slots, 0, (m->mask + 1) * sizeof *m->slots);
  m->n = 0;
  m->strs_len = 0;
  m->dirty = 0;
}

/* Copies s[0..n) and a NUL into strs; *off receives its offset. */
static int mw_rwmeta_str(mw_rwmeta_t *m, const char *s, size_t n, size_t *off) {
  size_t need = m->strs_len + n + 1;
  if (need < n) return -1;
  if (need > m->strs_cap) {
    size_t cap = m->strs_cap ? m->strs_cap : 4096;
    while (cap < need) {
      if (cap > SIZE_MAX / 2) return -1;
      cap *= 2;
    }
    char *p = realloc(m->strs, cap);
    if (!p) return -1;
    m->strs = p;
    m->strs_cap = cap;
  }
  *off = m->strs_len;
  if (n) memcpy(m->strs + m->strs_len, s, n);
  m->strs[m->strs_len + n] = '\0';
  m->strs_len = need;
  return 0;
}

/* Doubles the index (or makes the first one), placing every entry again. */
static int mw_rwmeta_grow_index(mw_rwmeta_t *m) {
  size_t n = m->slots ? (m->mask + 1) * 2 : 64;
  uint64_t *slots = calloc(n, sizeof *slots);
  if (!slots) return -1;
  for (size_t i = 0; m->slots && i <= m->mask; i++) {
    uint64_t v = m->slots[i];
    if (!v) continue;
    size_t j = (size_t)(v >> 32) & (n - 1);
    while (slots[j])
      j = (j + 1) & (n - 1);
    slots[j] = v;
  }
  free(m->slots);
  m->slots = slots;
  m->mask = n - 1;
  return 0;
}

/* The index's hash of an entry: all four fields. */
static uint64_t mw_rwmeta_hash(int type, const char *name, size_t name_len, const char *help,
                               size_t help_len, const char *unit, size_t unit_len) {
  return XXH3_64bits_withSeed(name, name_len, (uint64_t)type) ^ (XXH3_64bits(help, help_len) * 31) ^
         (XXH3_64bits(unit, unit_len) * 37);
}

static int mw_rwmeta_is(const mw_rwmeta_t *m, size_t off, size_t len, const char *s, size_t n) {
  return len == n && (n == 0 || memcmp(m->strs + off, s, n) == 0);
}

int mw_ffi_rwmeta_add(mw_rwmeta_t *m, int type, const char *name, size_t name_len, const char *help,
                      size_t help_len, const char *unit, size_t unit_len, char *err,
                      size_t errlen) {
  if (type < MW_METRIC_UNKNOWN || type > MW_METRIC_STATESET) {
    mw_seterr(err, errlen, "invalid metric type %d", type);
    return -1;
  }
  if ((m->n + 1) * 2 > (m->slots ? m->mask + 1 : 0) && mw_rwmeta_grow_index(m) != 0) goto oom;
  uint64_t hash = mw_rwmeta_hash(type, name, name_len, help, help_len, unit, unit_len);
  size_t slot = (size_t)(hash >> 32) & m->mask;
  for (uint64_t v; (v = m->slots[slot]) != 0; slot = (slot + 1) & m->mask) {
    const mw_rwmeta_entry_t *o = &m->e[(uint32_t)v - 1];
    if ((uint32_t)(v >> 32) == (uint32_t)(hash >> 32) && o->type == type &&
        mw_rwmeta_is(m, o->name, o->name_len, name, name_len) &&
        mw_rwmeta_is(m, o->help, o->help_len, help, help_len) &&
        mw_rwmeta_is(m, o->unit, o->unit_len, unit, unit_len))
      return 0; /* already in the set */
  }
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    mw_rwmeta_entry_t *e = realloc(m->e, cap * sizeof *e);
    if (!e) goto oom;
    m->e = e;
    m->cap = cap;
  }
  mw_rwmeta_entry_t *e = &m->e[m->n];
  size_t mark = m->strs_len;
  if (mw_rwmeta_str(m, name, name_len, &e->name) != 0 ||
      mw_rwmeta_str(m, help, help_len, &e->help) != 0 ||
      mw_rwmeta_str(m, unit, unit_len, &e->unit) != 0) {
    m->strs_len = mark;
    goto oom;
  }
  e->name_len = name_len;
  e->help_len = help_len;
  e->unit_len = unit_len;
  e->type = type;
  m->n++;
  m->slots[slot] = (hash >> 32 << 32) | m->n;
  m->dirty = 1;
  return 0;
oom:
  mw_oom(err, errlen);
  return -1;
}

int mw_ffi_rwmeta_add_cache(mw_rwmeta_t *m, const mw_scrapecache_t *c, char *err, size_t errlen) {
  mw_scrapecache_meta_t f;
  size_t i = 0;
  while (mw_scrapecache_meta_next(c, &i, &f) == 1)
    if (mw_ffi_rwmeta_add(m, f.type, f.name, f.name_len, f.help, f.help_len, f.unit, f.unit_len,
                          err, errlen) != 0)
      return -1;
  return 0;
}

static int mw_rwmeta_strcmp(const char *a, size_t al, const char *b, size_t bl) {
  int c = memcmp(a, b, al < bl ? al : bl);
  if (c) return c;
  return (al > bl) - (al < bl);
}

/* By name, then type, help and unit: equal entries end up adjacent. */
static int mw_rwmeta_cmp(const void *pa, const void *pb) {
  const mw_rwmeta_entry_t *a = pa, *b = pb;
  int c = mw_rwmeta_strcmp(a->base + a->name, a->name_len, b->base + b->name, b->name_len);
  if (c) return c;
  if (a->type != b->type) return a->type < b->type ? -1 : 1;
  c = mw_rwmeta_strcmp(a->base + a->help, a->help_len, b->base + b->help, b->help_len);
  if (c) return c;
  return mw_rwmeta_strcmp(a->base + a->unit, a->unit_len, b->base + b->unit, b->unit_len);
}

/* Sorts the entries added since the last time (the index, which refers to
 * entries by position, is rebuilt in the new order). */
static void mw_rwmeta_settle(mw_rwmeta_t *m) {
  if (!m->dirty) return;
  m->dirty = 0;
  for (size_t i = 0; i < m->n; i++)
    m->e[i].base = m->strs;
  qsort(m->e, m->n, sizeof *m->e, mw_rwmeta_cmp);
  memset(m->slots, 0, (m->mask + 1) * sizeof *m->slots);
  for (size_t i = 0; i < m->n; i++) {
    const mw_rwmeta_entry_t *e = &m->e[i];
    const char *b = m->strs;
    uint64_t hash = mw_rwmeta_hash(e->type, b + e->name, e->name_len, b + e->help, e->help_len,
                                   b + e->unit, e->unit_len);
    size_t slot = (size_t)(hash >> 32) & m->mask;
    while (m->slots[slot])
      slot = (slot + 1) & m->mask;
    m->slots[slot] = (hash >> 32 << 32) | (i + 1);
  }
}

size_t mw_ffi_rwmeta_len(mw_rwmeta_t *m) {
  mw_rwmeta_settle(m);
  return m->n;
}

size_t mw_ffi_rwmeta_mem(const mw_rwmeta_t *m) {
  return sizeof *m + m->cap * sizeof *m->e + (m->slots ? (m->mask + 1) * sizeof *m->slots : 0) +
         m->strs_cap;
}

int mw_ffi_rwmeta_get(mw_rwmeta_t *m, size_t i, int *type, const char **name, const char **help,
                      const char **unit) {
  mw_rwmeta_settle(m);
  if (i >= m->n) return -1;
  const mw_rwmeta_entry_t *e = &m->e[i];
  *type = e->type;
  *name = m->strs + e->name;
  *help = m->strs + e->help;
  *unit = m->strs + e->unit;
  return 0;
}

int mw_ffi_rwmeta_encode(mw_rwmeta_t *m, size_t first, size_t n, const uint8_t **buf, size_t *len,
                         size_t *raw_len, char *err, size_t errlen) {
  mw_rwmeta_settle(m);
  if (first > m->n) first = m->n;
  if (n > m->n - first) n = m->n - first;
  mw_rwenc_reset(m->enc);
  for (size_t i = first; i < first + n; i++) {
    const mw_rwmeta_entry_t *e = &m->e[i];
    if (mw_rwenc_add_metadata(m->enc, e->type, m->strs + e->name, e->name_len, m->strs + e->help,
                              e->help_len, m->strs + e->unit, e->unit_len, err, errlen) != 0)
      return -1;
  }
  return mw_rwenc_finish(m->enc, buf, len, raw_len, err, errlen);
}
