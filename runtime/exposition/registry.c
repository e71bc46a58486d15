/* exposition/registry.c: the self-metrics registry. See exposition/registry.h for the model. */
#include "exposition/registry.h"
#include "base/err.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/labels.h"

/* Handles: low 20 bits are the slot index, the next 11 bits its generation. */
#define HANDLE_INDEX_BITS 20
#define HANDLE_INDEX_MASK ((1u << HANDLE_INDEX_BITS) - 1)
#define HANDLE_GEN_MASK 0x7ffu

enum { SLOT_FREE = 0, SLOT_FAMILY = 1, SLOT_CHILD = 2 };

typedef struct {
  void *ptr;
  int32_t next_free; /* free list link while free */
  uint16_t gen;
  uint8_t kind;
} slot_t;

typedef struct {
  mw_metrics_collect_fn fn;
  void (*free_ud)(void *);
  void *ud;
} collector_t;

struct mw_metrics {
  slot_t *slots;
  size_t nslots, slots_cap;
  int32_t free_head; /* -1 when empty */
  mw_metrics_family_t **families;
  size_t nfamilies, families_cap;
  mw_metrics_family_t **names; /* name index: chains through name_next */
  size_t names_size;           /* power of two, or 0 before the first family */
  collector_t *collectors;
  size_t ncollectors, collectors_cap;
  mw_metrics_family_t **sorted; /* mw_metrics_families_sorted's cache */
  size_t sorted_cap;
  int sorted_ok; /* no family added or deleted since sorted was filled */
};

/* client_golang's DefBuckets. */
static const double default_bounds[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};

/* --- handles ------------------------------------------------------------ */

static int32_t slot_alloc(mw_metrics_t *reg, int kind, void *ptr) {
  int32_t idx;
  if (reg->free_head >= 0) {
    idx = reg->free_head;
    reg->free_head = reg->slots[idx].next_free;
  } else {
    if (reg->nslots >= MW_METRICS_MAX_HANDLES) return -1;
    if (reg->nslots == reg->slots_cap) {
      size_t cap = reg->slots_cap ? reg->slots_cap * 2 : 64;
      slot_t *s = realloc(reg->slots, cap * sizeof *s);
      if (!s) return -1;
      reg->slots = s;
      reg->slots_cap = cap;
    }
    idx = (int32_t)reg->nslots++;
    reg->slots[idx].gen = 0;
  }
  slot_t *s = &reg->slots[idx];
  s->ptr = ptr;
  s->kind = (uint8_t)kind;
  s->next_free = -1;
  return (int32_t)(((uint32_t)s->gen << HANDLE_INDEX_BITS) | (uint32_t)idx);
}

static void slot_free(mw_metrics_t *reg, int32_t handle) {
  uint32_t idx = (uint32_t)handle & HANDLE_INDEX_MASK;
  slot_t *s = &reg->slots[idx];
  s->ptr = NULL;
  s->kind = SLOT_FREE;
  s->gen = (uint16_t)((s->gen + 1) & HANDLE_GEN_MASK);
  s->next_free = reg->free_head;
  reg->free_head = (int32_t)idx;
}

static void *slot_get(const mw_metrics_t *reg, int32_t handle, int kind) {
  if (!reg || handle < 0) return NULL;
  uint32_t idx = (uint32_t)handle & HANDLE_INDEX_MASK;
  uint32_t gen = ((uint32_t)handle >> HANDLE_INDEX_BITS) & HANDLE_GEN_MASK;
  if (idx >= reg->nslots) return NULL;
  const slot_t *s = &reg->slots[idx];
  if (s->kind != kind || s->gen != gen) return NULL;
  return s->ptr;
}

/* --- validation ----------------------------------------------------------- */

static int valid_metric_name(const char *s) {
  if (!s || !*s) return 0;
  for (size_t i = 0; s[i]; i++) {
    char c = s[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
             (i > 0 && c >= '0' && c <= '9');
    if (!ok) return 0;
  }
  return 1;
}

static int valid_label_name(const char *s) {
  if (!s || !*s) return 0;
  for (size_t i = 0; s[i]; i++) {
    char c = s[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
             (i > 0 && c >= '0' && c <= '9');
    if (!ok) return 0;
  }
  return strncmp(s, "__", 2) != 0;
}

/* --- families ------------------------------------------------------------- */

static char *dup_str(const char *s) {
  size_t n = strlen(s);
  char *d = malloc(n + 1);
  if (d) memcpy(d, s, n + 1);
  return d;
}

static void child_free(mw_metrics_child_t *c) { free(c); }

static void family_free(mw_metrics_family_t *f) {
  if (!f) return;
  for (size_t i = 0; f->table && i < f->table_size; i++) {
    mw_metrics_child_t *c = f->table[i];
    while (c) {
      mw_metrics_child_t *next = c->next;
      child_free(c);
      c = next;
    }
  }
  free(f->table);
  free(f->sorted);
  for (size_t i = 0; f->label_names && i < f->nlabels; i++)
    free(f->label_names[i]);
  free(f->label_names);
  free(f->label_order);
  free(f->bounds);
  free(f->name);
  free(f->help);
  free(f);
}

/* --- the name index --------------------------------------------------------- */

static uint64_t name_hash(const char *name) { return XXH3_64bits(name, strlen(name)); }

static mw_metrics_family_t *name_find(const mw_metrics_t *reg, const char *name, uint64_t h) {
  if (!reg->names_size) return NULL;
  for (mw_metrics_family_t *f = reg->names[h & (reg->names_size - 1)]; f; f = f->name_next)
    if (f->name_hash == h && strcmp(f->name, name) == 0) return f;
  return NULL;
}

/* Links f (name_hash set) into the index, growing it to keep chains short.
 * 0 or -1 (out of memory; then the index is unchanged). */
static int name_insert(mw_metrics_t *reg, mw_metrics_family_t *f) {
  if (reg->nfamilies + 1 > reg->names_size) {
    size_t size = reg->names_size ? reg->names_size * 2 : 64;
    mw_metrics_family_t **t = calloc(size, sizeof *t);
    if (!t) return -1;
    for (size_t i = 0; i < reg->nfamilies; i++) {
      mw_metrics_family_t *o = reg->families[i];
      size_t b = o->name_hash & (size - 1);
      o->name_next = t[b];
      t[b] = o;
    }
    free(reg->names);
    reg->names = t;
    reg->names_size = size;
  }
  size_t b = f->name_hash & (reg->names_size - 1);
  f->name_next = reg->names[b];
  reg->names[b] = f;
  return 0;
}

static void name_remove(mw_metrics_t *reg, mw_metrics_family_t *f) {
  mw_metrics_family_t **pp = &reg->names[f->name_hash & (reg->names_size - 1)];
  while (*pp && *pp != f)
    pp = &(*pp)->name_next;
  if (*pp) *pp = f->name_next;
}

/* Same definition as an existing family? */
static int family_same(const mw_metrics_family_t *f, const char *help, mw_metrics_type_t type,
                       const char *const *label_names, size_t nlabels, const double *bounds,
                       size_t nbounds) {
  if (f->type != type || strcmp(f->help, help) != 0 || f->nlabels != nlabels) return 0;
  for (size_t i = 0; i < nlabels; i++)
    if (strcmp(f->label_names[i], label_names[i]) != 0) return 0;
  if (type == MW_METRICS_HISTOGRAM) {
    if (f->nbounds != nbounds) return 0;
    for (size_t i = 0; i < nbounds; i++)
      if (f->bounds[i] != bounds[i]) return 0;
  }
  return 1;
}

int mw_metrics_type_parse(const char *s, mw_metrics_type_t *out) {
  static const char *const names[] = {"counter", "gauge", "histogram", "untyped"};
  for (int i = 0; s && i < 4; i++) {
    if (strcmp(s, names[i]) == 0) {
      *out = (mw_metrics_type_t)i;
      return 0;
    }
  }
  return -1;
}

mw_metrics_t *mw_metrics_create(void) {
  mw_metrics_t *reg = calloc(1, sizeof *reg);
  if (reg) reg->free_head = -1;
  return reg;
}

void mw_metrics_free(mw_metrics_t *reg) {
  if (!reg) return;
  for (size_t i = 0; i < reg->ncollectors; i++)
    if (reg->collectors[i].free_ud) reg->collectors[i].free_ud(reg->collectors[i].ud);
  free(reg->collectors);
  for (size_t i = 0; i < reg->nfamilies; i++)
    family_free(reg->families[i]);
  free(reg->families);
  free(reg->sorted);
  free(reg->names);
  free(reg->slots);
  free(reg);
}

int32_t mw_metrics_family_add(mw_metrics_t *reg, const char *name, const char *help,
                              mw_metrics_type_t type, const char *const *label_names,
                              size_t nlabels, const double *bounds, size_t nbounds, char *err,
                              size_t errlen) {
  mw_metrics_family_t *f = NULL;
  int32_t handle = -1;
  double clean_bounds[MW_METRICS_MAX_BUCKETS];

  if (!help) help = "";
  if (!reg) {
    mw_seterr(err, errlen, "no registry");
    goto fail;
  }
  /* Re-registering the same definition (the common case) skips validation:
   * a stored family passed it, and only an identical one is returned here.
   * Histograms take the long way (their bounds are normalised first). */
  uint64_t h = name ? name_hash(name) : 0;
  mw_metrics_family_t *o = name ? name_find(reg, name, h) : NULL;
  if (o && type != MW_METRICS_HISTOGRAM &&
      family_same(o, help, type, label_names, nlabels, NULL, 0))
    return o->handle;
  if (!valid_metric_name(name)) {
    mw_seterr(err, errlen, "invalid metric name \"%s\"", name ? name : "(null)");
    goto fail;
  }
  if ((unsigned)type > MW_METRICS_UNTYPED) {
    mw_seterr(err, errlen, "%s: invalid metric type %d", name, (int)type);
    goto fail;
  }
  if (!mw_labels_valid_utf8(help, strlen(help))) {
    mw_seterr(err, errlen, "%s: help is not valid UTF-8", name);
    goto fail;
  }
  if (nlabels > MW_METRICS_MAX_LABELS) {
    mw_seterr(err, errlen, "%s: too many labels (%zu, at most %d)", name, nlabels,
              MW_METRICS_MAX_LABELS);
    goto fail;
  }
  for (size_t i = 0; i < nlabels; i++) {
    if (!valid_label_name(label_names[i])) {
      mw_seterr(err, errlen, "%s: invalid label name \"%s\"", name,
                label_names[i] ? label_names[i] : "(null)");
      goto fail;
    }
    if (type == MW_METRICS_HISTOGRAM && strcmp(label_names[i], "le") == 0) {
      mw_seterr(err, errlen, "%s: label name \"le\" is reserved in histograms", name);
      goto fail;
    }
    for (size_t j = 0; j < i; j++) {
      if (strcmp(label_names[i], label_names[j]) == 0) {
        mw_seterr(err, errlen, "%s: duplicate label name \"%s\"", name, label_names[i]);
        goto fail;
      }
    }
  }
  if (type == MW_METRICS_HISTOGRAM) {
    if (nbounds == 0 || !bounds) {
      bounds = default_bounds;
      nbounds = sizeof default_bounds / sizeof default_bounds[0];
    }
    if (isinf(bounds[nbounds - 1]) && bounds[nbounds - 1] > 0) nbounds--;
    if (nbounds > MW_METRICS_MAX_BUCKETS) {
      mw_seterr(err, errlen, "%s: too many buckets (%zu, at most %d)", name, nbounds,
                MW_METRICS_MAX_BUCKETS);
      goto fail;
    }
    for (size_t i = 0; i < nbounds; i++) {
      if (isnan(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1]))) {
        mw_seterr(err, errlen, "%s: histogram buckets must be in strictly increasing order", name);
        goto fail;
      }
      clean_bounds[i] = bounds[i];
    }
  } else {
    nbounds = 0;
  }

  if (o) {
    if (family_same(o, help, type, label_names, nlabels, clean_bounds, nbounds)) return o->handle;
    mw_seterr(err, errlen, "%s: already registered with a different type, help, labels or buckets",
              name);
    goto fail;
  }

  f = calloc(1, sizeof *f);
  if (!f) goto oom;
  f->type = type;
  f->nlabels = nlabels;
  f->nbounds = nbounds;
  f->component_label = -1;
  f->name = dup_str(name);
  f->help = dup_str(help);
  f->label_names = calloc(nlabels ? nlabels : 1, sizeof *f->label_names);
  f->label_order = calloc(nlabels ? nlabels : 1, sizeof *f->label_order);
  f->bounds = malloc((nbounds ? nbounds : 1) * sizeof *f->bounds);
  f->table_size = 8;
  f->table = calloc(f->table_size, sizeof *f->table);
  if (!f->name || !f->help || !f->label_names || !f->label_order || !f->bounds || !f->table)
    goto oom;
  if (nbounds) memcpy(f->bounds, clean_bounds, nbounds * sizeof *f->bounds);
  for (size_t i = 0; i < nlabels; i++) {
    if (!(f->label_names[i] = dup_str(label_names[i]))) goto oom;
    if (strcmp(label_names[i], MW_METRICS_COMPONENT_LABEL) == 0) f->component_label = (int)i;
    /* insertion sort of label indexes by name */
    size_t j = i;
    while (j > 0 && strcmp(f->label_names[f->label_order[j - 1]], label_names[i]) > 0) {
      f->label_order[j] = f->label_order[j - 1];
      j--;
    }
    f->label_order[j] = i;
  }
  if (reg->nfamilies == reg->families_cap) {
    size_t cap = reg->families_cap ? reg->families_cap * 2 : 16;
    mw_metrics_family_t **a = realloc(reg->families, cap * sizeof *a);
    if (!a) goto oom;
    reg->families = a;
    reg->families_cap = cap;
  }
  handle = slot_alloc(reg, SLOT_FAMILY, f);
  if (handle < 0) {
    mw_seterr(err, errlen, "%s: too many metric families and children", name);
    goto fail;
  }
  f->handle = handle;
  f->name_hash = h;
  if (name_insert(reg, f) < 0) {
    slot_free(reg, handle);
    goto oom;
  }
  reg->families[reg->nfamilies++] = f;
  reg->sorted_ok = 0;
  if (nlabels == 0 && mw_metrics_child_get(reg, handle, NULL, 0, err, errlen) < 0) {
    mw_metrics_family_del(reg, handle);
    return -1;
  }
  return handle;

oom:
  mw_seterr(err, errlen, "%s: out of memory", name);
fail:
  family_free(f);
  return -1;
}

int mw_metrics_family_del(mw_metrics_t *reg, int32_t family) {
  mw_metrics_family_t *f = slot_get(reg, family, SLOT_FAMILY);
  if (!f) return -1;
  for (size_t i = 0; i < f->table_size; i++)
    for (mw_metrics_child_t *c = f->table[i]; c; c = c->next)
      slot_free(reg, c->handle);
  slot_free(reg, family);
  name_remove(reg, f);
  for (size_t i = 0; i < reg->nfamilies; i++) {
    if (reg->families[i] == f) {
      memmove(&reg->families[i], &reg->families[i + 1],
              (reg->nfamilies - i - 1) * sizeof *reg->families);
      reg->nfamilies--;
      reg->sorted_ok = 0;
      break;
    }
  }
  family_free(f);
  return 0;
}

mw_metrics_family_t *mw_metrics_family_get(mw_metrics_t *reg, int32_t family) {
  return slot_get(reg, family, SLOT_FAMILY);
}

mw_metrics_family_t *const *mw_metrics_families(mw_metrics_t *reg, size_t *n) {
  *n = reg ? reg->nfamilies : 0;
  return reg ? reg->families : NULL;
}

static int cmp_family(const void *a, const void *b) {
  const mw_metrics_family_t *fa = *(mw_metrics_family_t *const *)a;
  const mw_metrics_family_t *fb = *(mw_metrics_family_t *const *)b;
  return strcmp(fa->name, fb->name);
}

/* client_golang's MetricSorter: label values in label-name order, bytewise. */
static int cmp_child(const void *a, const void *b) {
  const mw_metrics_child_t *ca = *(mw_metrics_child_t *const *)a;
  const mw_metrics_child_t *cb = *(mw_metrics_child_t *const *)b;
  const mw_metrics_family_t *f = ca->family;
  for (size_t i = 0; i < f->nlabels; i++) {
    size_t k = f->label_order[i];
    const mw_metrics_str_t *va = &ca->values[k], *vb = &cb->values[k];
    size_t n = va->len < vb->len ? va->len : vb->len;
    int r = n ? memcmp(va->ptr, vb->ptr, n) : 0;
    if (r) return r;
    if (va->len != vb->len) return va->len < vb->len ? -1 : 1;
  }
  return 0;
}

/* arr (of *cap pointers) grown to hold n pointers: arr itself when it is big
 * enough, else the reallocated array, or NULL (arr left as it was). */
static void *ptrs_reserve(void *arr, size_t *cap, size_t n) {
  if (n <= *cap && arr) return arr;
  size_t c = *cap > 16 ? *cap : 16;
  while (c < n)
    c *= 2;
  void *a = realloc(arr, c * sizeof(void *));
  if (a) *cap = c;
  return a;
}

mw_metrics_family_t *const *mw_metrics_families_sorted(mw_metrics_t *reg, size_t *n) {
  *n = 0;
  if (!reg) return NULL;
  if (!reg->sorted_ok) {
    mw_metrics_family_t **a = ptrs_reserve(reg->sorted, &reg->sorted_cap, reg->nfamilies);
    if (!a) return NULL;
    reg->sorted = a;
    if (reg->nfamilies) {
      memcpy(reg->sorted, reg->families, reg->nfamilies * sizeof *reg->sorted);
      qsort(reg->sorted, reg->nfamilies, sizeof *reg->sorted, cmp_family);
    }
    reg->sorted_ok = 1;
  }
  *n = reg->nfamilies;
  return reg->sorted;
}

mw_metrics_child_t *const *mw_metrics_children_sorted(mw_metrics_family_t *f, size_t *n) {
  *n = 0;
  if (!f) return NULL;
  if (!f->sorted_ok) {
    mw_metrics_child_t **a = ptrs_reserve(f->sorted, &f->sorted_cap, f->nchildren);
    if (!a) return NULL;
    f->sorted = a;
    size_t k = 0;
    for (size_t b = 0; b < f->table_size; b++)
      for (mw_metrics_child_t *c = f->table[b]; c; c = c->next)
        f->sorted[k++] = c;
    if (k > 1) qsort(f->sorted, k, sizeof *f->sorted, cmp_child);
    f->sorted_ok = 1;
  }
  *n = f->nchildren;
  return f->sorted;
}

/* --- children ------------------------------------------------------------- */

static uint64_t values_hash(const mw_metrics_str_t *values, size_t n) {
  uint64_t h = n;
  for (size_t i = 0; i < n; i++)
    h = XXH3_64bits_withSeed(values[i].ptr, values[i].len, h);
  return h;
}

static int values_equal(const mw_metrics_child_t *c, const mw_metrics_str_t *values, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (c->values[i].len != values[i].len) return 0;
    if (values[i].len && memcmp(c->values[i].ptr, values[i].ptr, values[i].len) != 0) return 0;
  }
  return 1;
}

static int table_grow(mw_metrics_family_t *f) {
  size_t size = f->table_size * 2;
  mw_metrics_child_t **t = calloc(size, sizeof *t);
  if (!t) return -1;
  for (size_t i = 0; i < f->table_size; i++) {
    mw_metrics_child_t *c = f->table[i];
    while (c) {
      mw_metrics_child_t *next = c->next;
      size_t b = (size_t)c->hash & (size - 1);
      c->next = t[b];
      t[b] = c;
      c = next;
    }
  }
  free(f->table);
  f->table = t;
  f->table_size = size;
  return 0;
}

int32_t mw_metrics_child_get(mw_metrics_t *reg, int32_t family, const mw_metrics_str_t *values,
                             size_t n, char *err, size_t errlen) {
  mw_metrics_family_t *f = slot_get(reg, family, SLOT_FAMILY);
  mw_metrics_child_t *c = NULL;
  if (!f) {
    mw_seterr(err, errlen, "unknown metric family handle %d", (int)family);
    goto fail;
  }
  if (n != f->nlabels) {
    mw_seterr(err, errlen, "%s: got %zu label values, want %zu", f->name, n, f->nlabels);
    goto fail;
  }
  uint64_t h = values_hash(values, n);
  for (c = f->table[(size_t)h & (f->table_size - 1)]; c; c = c->next)
    if (c->hash == h && values_equal(c, values, n)) return c->handle;

  size_t bytes = 0;
  for (size_t i = 0; i < n; i++) {
    if (!mw_labels_valid_utf8(values[i].ptr, values[i].len)) {
      mw_seterr(err, errlen, "%s: value of label \"%s\" is not valid UTF-8", f->name,
                f->label_names[i]);
      goto fail;
    }
    bytes += values[i].len + 1;
  }
  size_t nbuckets = f->type == MW_METRICS_HISTOGRAM ? f->nbounds + 1 : 0;
  /* One block: child, bucket counts, value views, value bytes. */
  size_t size = sizeof *c + nbuckets * sizeof(uint64_t) + n * sizeof(mw_metrics_str_t) + bytes;
  c = calloc(1, size);
  if (!c) {
    mw_seterr(err, errlen, "%s: out of memory", f->name);
    goto fail;
  }
  c->family = f;
  c->hash = h;
  c->buckets = (uint64_t *)(c + 1);
  c->values = (mw_metrics_str_t *)(c->buckets + nbuckets);
  char *p = (char *)(c->values + n);
  for (size_t i = 0; i < n; i++) {
    if (values[i].len) memcpy(p, values[i].ptr, values[i].len);
    p[values[i].len] = '\0';
    c->values[i].ptr = p;
    c->values[i].len = values[i].len;
    p += values[i].len + 1;
  }
  if (f->nchildren + 1 > f->table_size && table_grow(f) < 0) {
    mw_seterr(err, errlen, "%s: out of memory", f->name);
    goto fail;
  }
  c->handle = slot_alloc(reg, SLOT_CHILD, c);
  if (c->handle < 0) {
    mw_seterr(err, errlen, "%s: too many metric families and children", f->name);
    goto fail;
  }
  size_t b = (size_t)h & (f->table_size - 1);
  c->next = f->table[b];
  f->table[b] = c;
  f->nchildren++;
  f->sorted_ok = 0;
  return c->handle;

fail:
  child_free(c);
  return -1;
}

/* Unlinks c from its family's table, frees its handle and the child. */
static void child_remove(mw_metrics_t *reg, mw_metrics_child_t *c) {
  mw_metrics_family_t *f = c->family;
  mw_metrics_child_t **pp = &f->table[(size_t)c->hash & (f->table_size - 1)];
  while (*pp && *pp != c)
    pp = &(*pp)->next;
  if (*pp) *pp = c->next;
  f->nchildren--;
  f->sorted_ok = 0;
  slot_free(reg, c->handle);
  child_free(c);
}

mw_metrics_child_t *mw_metrics_child_view(mw_metrics_t *reg, int32_t child) {
  return slot_get(reg, child, SLOT_CHILD);
}

int mw_metrics_child_del(mw_metrics_t *reg, int32_t child) {
  mw_metrics_child_t *c = slot_get(reg, child, SLOT_CHILD);
  if (!c) return -1;
  child_remove(reg, c);
  return 0;
}

int mw_metrics_component_del(mw_metrics_t *reg, const char *id, size_t len) {
  int removed = 0;
  if (!reg || (!id && len)) return 0;
  for (size_t i = 0; i < reg->nfamilies; i++) {
    mw_metrics_family_t *f = reg->families[i];
    if (f->component_label < 0) continue;
    for (size_t b = 0; b < f->table_size; b++) {
      mw_metrics_child_t **pp = &f->table[b];
      while (*pp) {
        mw_metrics_child_t *c = *pp;
        const mw_metrics_str_t *v = &c->values[f->component_label];
        if (v->len == len && (len == 0 || memcmp(v->ptr, id, len) == 0)) {
          *pp = c->next;
          f->nchildren--;
          f->sorted_ok = 0;
          slot_free(reg, c->handle);
          child_free(c);
          removed++;
        } else {
          pp = &c->next;
        }
      }
    }
  }
  return removed;
}

/* --- updates -------------------------------------------------------------- */

int mw_metrics_inc(mw_metrics_t *reg, int32_t child) { return mw_metrics_add(reg, child, 1); }

int mw_metrics_add(mw_metrics_t *reg, int32_t child, double v) {
  mw_metrics_child_t *c = slot_get(reg, child, SLOT_CHILD);
  if (!c || c->family->type == MW_METRICS_HISTOGRAM) return -1;
  if (c->family->type == MW_METRICS_COUNTER && v < 0) return -1;
  c->value += v;
  return 0;
}

int mw_metrics_set(mw_metrics_t *reg, int32_t child, double v) {
  mw_metrics_child_t *c = slot_get(reg, child, SLOT_CHILD);
  if (!c || c->family->type == MW_METRICS_HISTOGRAM) return -1;
  c->value = v;
  return 0;
}

int mw_metrics_observe(mw_metrics_t *reg, int32_t child, double v) {
  mw_metrics_child_t *c = slot_get(reg, child, SLOT_CHILD);
  if (!c || c->family->type != MW_METRICS_HISTOGRAM) return -1;
  const double *ub = c->family->bounds;
  size_t n = c->family->nbounds, i;
  if (n < 35) { /* as client_golang: linear for few buckets, else binary search */
    for (i = 0; i < n && !(v <= ub[i]); i++) {
    }
  } else {
    size_t lo = 0, hi = n; /* first i with v <= ub[i]; NaN lands in +Inf */
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      if (v <= ub[mid])
        hi = mid;
      else
        lo = mid + 1;
    }
    i = isnan(v) ? n : lo;
  }
  c->buckets[i]++;
  c->count++;
  c->sum += v;
  return 0;
}

int mw_metrics_get(mw_metrics_t *reg, int32_t child, double *out) {
  mw_metrics_child_t *c = slot_get(reg, child, SLOT_CHILD);
  if (!c || !out) return -1;
  *out = c->family->type == MW_METRICS_HISTOGRAM ? (double)c->count : c->value;
  return 0;
}

/* --- collectors ----------------------------------------------------------- */

int mw_metrics_collector_add(mw_metrics_t *reg, mw_metrics_collect_fn fn, void (*free_ud)(void *),
                             void *ud) {
  if (!reg || !fn) goto fail;
  if (reg->ncollectors == reg->collectors_cap) {
    size_t cap = reg->collectors_cap ? reg->collectors_cap * 2 : 4;
    collector_t *a = realloc(reg->collectors, cap * sizeof *a);
    if (!a) goto fail;
    reg->collectors = a;
    reg->collectors_cap = cap;
  }
  reg->collectors[reg->ncollectors++] = (collector_t){fn, free_ud, ud};
  return 0;

fail:
  if (free_ud) free_ud(ud);
  return -1;
}

int mw_metrics_collector_del(mw_metrics_t *reg, mw_metrics_collect_fn fn, void *ud) {
  for (size_t i = 0; reg && i < reg->ncollectors; i++) {
    collector_t c = reg->collectors[i];
    if (c.fn != fn || c.ud != ud) continue;
    memmove(&reg->collectors[i], &reg->collectors[i + 1],
            (reg->ncollectors - i - 1) * sizeof *reg->collectors);
    reg->ncollectors--;
    if (c.free_ud) c.free_ud(c.ud);
    return 0;
  }
  return -1;
}

void mw_metrics_collect(mw_metrics_t *reg) {
  for (size_t i = 0; reg && i < reg->ncollectors; i++)
    (void)reg->collectors[i].fn(reg, reg->collectors[i].ud);
}

/* --- FFI ------------------------------------------------------------------ */

/* Splits s[0..len) at '\x1f' into at most max views; returns the count, or
 * max + 1 when there are more parts. An empty string is zero parts. */
static size_t split_us(const char *s, size_t len, mw_metrics_str_t *out, size_t max) {
  size_t n = 0, start = 0;
  if (len == 0) return 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && s[i] != '\x1f') continue;
    if (n == max) return max + 1;
    out[n].ptr = s + start;
    out[n].len = i - start;
    n++;
    start = i + 1;
  }
  return n;
}

mw_metrics_t *mw_ffi_metrics_create(void) { return mw_metrics_create(); }

void mw_ffi_metrics_free(mw_metrics_t *reg) { mw_metrics_free(reg); }

int32_t mw_ffi_metrics_family_add(mw_metrics_t *reg, const char *name, const char *help,
                                  const char *type, const char *label_names, size_t label_names_len,
                                  const double *buckets, size_t nbuckets, char *err,
                                  size_t errlen) {
  mw_metrics_str_t parts[MW_METRICS_MAX_LABELS];
  char names[MW_METRICS_MAX_LABELS][128];
  const char *ptrs[MW_METRICS_MAX_LABELS];
  mw_metrics_type_t t;
  if (mw_metrics_type_parse(type, &t) < 0) {
    mw_seterr(err, errlen, "%s: unknown metric type \"%s\"", name ? name : "(null)",
              type ? type : "(null)");
    return -1;
  }
  size_t n = split_us(label_names, label_names_len, parts, MW_METRICS_MAX_LABELS);
  if (n > MW_METRICS_MAX_LABELS) {
    mw_seterr(err, errlen, "%s: too many labels (at most %d)", name ? name : "(null)",
              MW_METRICS_MAX_LABELS);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    if (parts[i].len >= sizeof names[i] || memchr(parts[i].ptr, '\0', parts[i].len)) {
      mw_seterr(err, errlen, "%s: invalid label name", name ? name : "(null)");
      return -1;
    }
    memcpy(names[i], parts[i].ptr, parts[i].len);
    names[i][parts[i].len] = '\0';
    ptrs[i] = names[i];
  }
  return mw_metrics_family_add(reg, name, help, t, ptrs, n, buckets, nbuckets, err, errlen);
}

int mw_ffi_metrics_family_del(mw_metrics_t *reg, int32_t family) {
  return mw_metrics_family_del(reg, family);
}

int32_t mw_ffi_metrics_child_get(mw_metrics_t *reg, int32_t family, const char *values, size_t len,
                                 char *err, size_t errlen) {
  mw_metrics_str_t parts[MW_METRICS_MAX_LABELS];
  mw_metrics_family_t *f = mw_metrics_family_get(reg, family);
  if (!f) {
    mw_seterr(err, errlen, "unknown metric family handle %d", (int)family);
    return -1;
  }
  size_t n;
  if (f->nlabels == 1) { /* one value: the whole string, even empty or with \x1f */
    parts[0].ptr = values ? values : "";
    parts[0].len = len;
    n = 1;
  } else {
    n = split_us(values, len, parts, MW_METRICS_MAX_LABELS);
  }
  if (n != f->nlabels) {
    mw_seterr(err, errlen, "%s: got %zu label values, want %zu", f->name, n, f->nlabels);
    return -1;
  }
  return mw_metrics_child_get(reg, family, parts, n, err, errlen);
}

int mw_ffi_metrics_child_del(mw_metrics_t *reg, int32_t child) {
  return mw_metrics_child_del(reg, child);
}

int mw_ffi_metrics_component_del(mw_metrics_t *reg, const char *component_id, size_t len) {
  return mw_metrics_component_del(reg, component_id, len);
}

int mw_ffi_metrics_inc(mw_metrics_t *reg, int32_t child) { return mw_metrics_inc(reg, child); }

int mw_ffi_metrics_add(mw_metrics_t *reg, int32_t child, double v) {
  return mw_metrics_add(reg, child, v);
}

int mw_ffi_metrics_set(mw_metrics_t *reg, int32_t child, double v) {
  return mw_metrics_set(reg, child, v);
}

int mw_ffi_metrics_observe(mw_metrics_t *reg, int32_t child, double v) {
  return mw_metrics_observe(reg, child, v);
}

int mw_ffi_metrics_get(mw_metrics_t *reg, int32_t child, double *out) {
  return mw_metrics_get(reg, child, out);
}
