/* pprof/profile.c: the profile builder and checker (see pprof/profile.h). */
#include "pprof/profile.h"

#include <dlfcn.h>
#include <link.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/err.h"
#include "base/grow.h"
#include "base/gzip.h"
#include "profile.pb-c.h"

typedef Perftools__Profiles__Profile pb_profile;
typedef Perftools__Profiles__ValueType pb_vt;
typedef Perftools__Profiles__Sample pb_sample;
typedef Perftools__Profiles__Label pb_label;
typedef Perftools__Profiles__Mapping pb_mapping;
typedef Perftools__Profiles__Location pb_location;
typedef Perftools__Profiles__Line pb_line;
typedef Perftools__Profiles__Function pb_function;

/* An open-addressing map of keys (bytes, copied) to ids, power-of-two slots. */
typedef struct {
  char *key;
  size_t klen;
  uint64_t id;
} slot_t;
typedef struct {
  slot_t *slots;
  size_t n, used;
} map_t;

static slot_t *map_find(map_t *m, const void *key, size_t klen) {
  if (!m->n) return NULL;
  size_t mask = m->n - 1, i = (size_t)XXH3_64bits(key, klen) & mask;
  for (;; i = (i + 1) & mask) {
    slot_t *s = &m->slots[i];
    if (!s->key || (s->klen == klen && memcmp(s->key, key, klen) == 0)) return s;
  }
}

/* The id of key, or 0 when absent. */
static uint64_t map_get(map_t *m, const void *key, size_t klen) {
  slot_t *s = map_find(m, key, klen);
  return s && s->key ? s->id : 0;
}

static int map_put(map_t *m, const void *key, size_t klen, uint64_t id) {
  if ((m->used + 1) * 4 >= m->n * 3) {
    map_t g = {calloc(m->n ? m->n * 2 : 64, sizeof(slot_t)), m->n ? m->n * 2 : 64, m->used};
    if (!g.slots) return -1;
    for (size_t i = 0; i < m->n; i++)
      if (m->slots[i].key) *map_find(&g, m->slots[i].key, m->slots[i].klen) = m->slots[i];
    free(m->slots);
    *m = g;
  }
  slot_t *s = map_find(m, key, klen);
  s->key = malloc(klen ? klen : 1);
  if (!s->key) return -1;
  memcpy(s->key, key, klen);
  s->klen = klen;
  s->id = id;
  m->used++;
  return 0;
}

static void map_free(map_t *m) {
  for (size_t i = 0; i < m->n; i++)
    free(m->slots[i].key);
  free(m->slots);
}

/* An executable mapping of this process. */
typedef struct {
  uint64_t start, limit, offset;
  int64_t file;
} mapping_t;

struct mw_pprof {
  char **strs;
  size_t nstrs, capstrs;
  map_t strmap, funcmap, locmap;
  pb_vt *types;
  size_t ntypes, captypes;
  pb_vt period_type;
  int64_t period, time_ns, duration_ns, default_type;
  int64_t *comments;
  size_t ncomments, capcomments;
  pb_function *funcs;
  size_t nfuncs, capfuncs;
  pb_location *locs;
  size_t nlocs, caplocs;
  pb_line *lines; /* one per location, same index */
  size_t caplines;
  mapping_t *maps;
  size_t nmaps, capmaps;
  int maps_read;
  /* samples: location ids, values, labels in flat arrays */
  pb_sample *samples;
  size_t nsamples, capsamples;
  uint64_t *sample_locs;
  size_t nsample_locs, capsample_locs;
  int64_t *sample_vals;
  size_t nsample_vals, capsample_vals;
  pb_label *sample_labels;
  size_t nsample_labels, capsample_labels;
  uint8_t *out;
  size_t outlen;
};

/* The index of s in the string table, added when new; -1 on OOM. */
static int64_t str_index(mw_pprof_t *p, const char *s) {
  size_t len = strlen(s);
  uint64_t id = map_get(&p->strmap, s, len);
  if (id) return (int64_t)id - 1;
  if (mw_grow((void **)&p->strs, &p->capstrs, p->nstrs + 1, sizeof(char *))) return -1;
  char *copy = strdup(s);
  if (!copy || map_put(&p->strmap, s, len, p->nstrs + 1)) {
    free(copy);
    return -1;
  }
  p->strs[p->nstrs] = copy;
  return (int64_t)p->nstrs++;
}

mw_pprof_t *mw_ffi_pprof_new(void) {
  mw_pprof_t *p = calloc(1, sizeof(*p));
  if (!p) return NULL;
  perftools__profiles__value_type__init(&p->period_type);
  if (str_index(p, "") != 0) {
    mw_ffi_pprof_free(p);
    return NULL;
  }
  return p;
}

void mw_ffi_pprof_free(mw_pprof_t *p) {
  if (!p) return;
  for (size_t i = 0; i < p->nstrs; i++)
    free(p->strs[i]);
  free(p->strs);
  map_free(&p->strmap);
  map_free(&p->funcmap);
  map_free(&p->locmap);
  free(p->types);
  free(p->comments);
  free(p->funcs);
  free(p->locs);
  free(p->lines);
  free(p->maps);
  free(p->samples);
  free(p->sample_locs);
  free(p->sample_vals);
  free(p->sample_labels);
  free(p->out);
  free(p);
}

int mw_ffi_pprof_sample_type(mw_pprof_t *p, const char *type, const char *unit) {
  if (mw_grow((void **)&p->types, &p->captypes, p->ntypes + 1, sizeof(pb_vt))) return -1;
  pb_vt *vt = &p->types[p->ntypes];
  perftools__profiles__value_type__init(vt);
  vt->type = str_index(p, type);
  vt->unit = str_index(p, unit);
  if (vt->type < 0 || vt->unit < 0) return -1;
  p->ntypes++;
  return 0;
}

int mw_ffi_pprof_meta(mw_pprof_t *p, const char *period_type, const char *period_unit,
                      int64_t period, int64_t time_ns, int64_t duration_ns,
                      const char *default_type) {
  p->period_type.type = str_index(p, period_type);
  p->period_type.unit = str_index(p, period_unit);
  p->default_type = default_type ? str_index(p, default_type) : 0;
  if (p->period_type.type < 0 || p->period_type.unit < 0 || p->default_type < 0) return -1;
  p->period = period;
  p->time_ns = time_ns;
  p->duration_ns = duration_ns;
  return 0;
}

int mw_ffi_pprof_comment(mw_pprof_t *p, const char *text) {
  int64_t i = str_index(p, text);
  if (i < 0 || mw_grow((void **)&p->comments, &p->capcomments, p->ncomments + 1, sizeof(int64_t)))
    return -1;
  p->comments[p->ncomments++] = i;
  return 0;
}

/* The function id of (name, file, start_line); 0 on OOM. */
static uint64_t func_id(mw_pprof_t *p, const char *name, const char *file, int64_t start_line) {
  int64_t key[3] = {str_index(p, name), str_index(p, file), start_line};
  if (key[0] < 0 || key[1] < 0) return 0;
  uint64_t id = map_get(&p->funcmap, key, sizeof(key));
  if (id) return id;
  if (mw_grow((void **)&p->funcs, &p->capfuncs, p->nfuncs + 1, sizeof(pb_function))) return 0;
  pb_function *f = &p->funcs[p->nfuncs];
  perftools__profiles__function__init(f);
  f->id = p->nfuncs + 1;
  f->name = f->system_name = key[0];
  f->filename = key[1];
  f->start_line = start_line;
  if (map_put(&p->funcmap, key, sizeof(key), f->id)) return 0;
  return ++p->nfuncs;
}

/* Appends a location with one line (function fid at line, or none when fid is 0). */
static uint64_t add_location(mw_pprof_t *p, uint64_t mapping, uint64_t addr, uint64_t fid,
                             int64_t line) {
  if (mw_grow((void **)&p->locs, &p->caplocs, p->nlocs + 1, sizeof(pb_location)) ||
      mw_grow((void **)&p->lines, &p->caplines, p->nlocs + 1, sizeof(pb_line)))
    return 0;
  pb_location *l = &p->locs[p->nlocs];
  perftools__profiles__location__init(l);
  perftools__profiles__line__init(&p->lines[p->nlocs]);
  l->id = p->nlocs + 1;
  l->mapping_id = mapping;
  l->address = addr;
  p->lines[p->nlocs].function_id = fid;
  p->lines[p->nlocs].line = line;
  return ++p->nlocs;
}

uint64_t mw_ffi_pprof_func_location(mw_pprof_t *p, const char *name, const char *file,
                                    int64_t start_line, int64_t line) {
  uint64_t fid = func_id(p, name, file, start_line);
  if (!fid) return 0;
  uint64_t key[3] = {0, fid, (uint64_t)line}; /* 0: not an address */
  uint64_t id = map_get(&p->locmap, key, sizeof(key));
  if (id) return id;
  id = add_location(p, 0, 0, fid, line);
  if (!id || map_put(&p->locmap, key, sizeof(key), id)) return 0;
  return id;
}

/* Reads the executable mappings of /proc/self/maps once. */
static void read_maps(mw_pprof_t *p) {
  p->maps_read = 1;
  FILE *f = fopen("/proc/self/maps", "re");
  if (!f) return;
  char line[4096];
  while (fgets(line, sizeof(line), f)) {
    unsigned long long start, end, off;
    char perms[8];
    int n = 0;
    if (sscanf(line, "%llx-%llx %7s %llx %*s %*s %n", &start, &end, perms, &off, &n) < 4) continue;
    if (perms[2] != 'x') continue;
    char *name = line + n;
    name[strcspn(name, "\n")] = 0;
    if (mw_grow((void **)&p->maps, &p->capmaps, p->nmaps + 1, sizeof(mapping_t))) break;
    int64_t file = str_index(p, name);
    if (file < 0) break;
    p->maps[p->nmaps++] = (mapping_t){start, end, off, file};
  }
  fclose(f);
}

int mw_pprof_symbol(uint64_t pc, char *buf, size_t buflen, const char **file) {
  Dl_info info;
  ElfW(Sym) *sym = NULL;
  if (file) *file = NULL;
  if (!dladdr1((void *)(uintptr_t)pc, &info, (void **)&sym, RTLD_DL_SYMENT)) return -1;
  if (file) *file = info.dli_fname;
  if (!info.dli_sname || !info.dli_saddr || !sym) return -1;
  uint64_t start = (uint64_t)(uintptr_t)info.dli_saddr;
  if (pc < start || (sym->st_size && pc >= start + sym->st_size)) return -1;
  snprintf(buf, buflen, "%s", info.dli_sname);
  return 0;
}

int mw_ffi_pprof_symbol(uint64_t pc, char *buf, size_t buflen) {
  return mw_pprof_symbol(pc, buf, buflen, NULL);
}

void mw_ffi_pprof_mallinfo(uint64_t *inuse, uint64_t *mmapped, uint64_t *free_bytes) {
  struct mallinfo2 mi = mallinfo2();
  *inuse = mi.uordblks;
  *mmapped = mi.hblkhd;
  *free_bytes = mi.fordblks;
}

uint64_t mw_ffi_pprof_addr_location(mw_pprof_t *p, uint64_t pc, int leaf) {
  uint64_t key[3] = {1, pc, 0};
  uint64_t id = map_get(&p->locmap, key, sizeof(key));
  if (id) return id;
  if (!p->maps_read) read_maps(p);
  uint64_t mapping = 0;
  const mapping_t *m = NULL;
  for (size_t i = 0; i < p->nmaps; i++)
    if (pc >= p->maps[i].start && pc < p->maps[i].limit) {
      mapping = i + 1;
      m = &p->maps[i];
      break;
    }
  char name[512];
  const char *file = NULL;
  uint64_t fid = 0;
  uint64_t at = leaf || !pc ? pc : pc - 1;
  if (mw_pprof_symbol(at, name, sizeof(name), &file) == 0) {
    fid = func_id(p, name, "", 0);
  } else if (m && !p->strs[m->file][0]) {
    fid = func_id(p, "[LuaJIT compiled code]", "", 0); /* an anonymous executable mapping */
  } else if (m) {
    const char *base = strrchr(p->strs[m->file], '/');
    snprintf(name, sizeof(name), "%s+0x%llx", base ? base + 1 : p->strs[m->file],
             (unsigned long long)(at - m->start + m->offset));
    fid = func_id(p, name, "", 0);
  } else {
    /* no mapping: code LuaJIT generated at run time */
    fid = func_id(p, "[LuaJIT compiled code]", "", 0);
  }
  if (!fid) return 0;
  id = add_location(p, mapping, pc, fid, 0);
  if (!id || map_put(&p->locmap, key, sizeof(key), id)) return 0;
  return id;
}

int mw_ffi_pprof_sample(mw_pprof_t *p, const uint64_t *locs, size_t nlocs, const int64_t *values,
                        size_t nvalues, const char *labels, size_t nlabels) {
  if (nvalues != p->ntypes) return -1;
  if (mw_grow((void **)&p->samples, &p->capsamples, p->nsamples + 1, sizeof(pb_sample)) ||
      mw_grow((void **)&p->sample_locs, &p->capsample_locs, p->nsample_locs + nlocs + 1,
              sizeof(uint64_t)) ||
      mw_grow((void **)&p->sample_vals, &p->capsample_vals, p->nsample_vals + nvalues + 1,
              sizeof(int64_t)) ||
      mw_grow((void **)&p->sample_labels, &p->capsample_labels, p->nsample_labels + nlabels + 1,
              sizeof(pb_label)))
    return -1;
  pb_sample *s = &p->samples[p->nsamples];
  perftools__profiles__sample__init(s);
  /* offsets now, pointers at finish (the arrays may move) */
  s->location_id = (uint64_t *)(uintptr_t)p->nsample_locs;
  s->n_location_id = nlocs;
  s->value = (int64_t *)(uintptr_t)p->nsample_vals;
  s->n_value = nvalues;
  s->label = (pb_label **)(uintptr_t)p->nsample_labels;
  s->n_label = nlabels;
  memcpy(p->sample_locs + p->nsample_locs, locs, nlocs * sizeof(uint64_t));
  memcpy(p->sample_vals + p->nsample_vals, values, nvalues * sizeof(int64_t));
  const char *at = labels;
  for (size_t i = 0; i < nlabels; i++) {
    pb_label *l = &p->sample_labels[p->nsample_labels + i];
    perftools__profiles__label__init(l);
    l->key = str_index(p, at);
    at += strlen(at) + 1;
    l->str = str_index(p, at);
    at += strlen(at) + 1;
    if (l->key < 0 || l->str < 0) return -1;
  }
  p->nsample_locs += nlocs;
  p->nsample_vals += nvalues;
  p->nsample_labels += nlabels;
  p->nsamples++;
  return 0;
}

int mw_ffi_pprof_finish(mw_pprof_t *p, int gzip, const uint8_t **out, size_t *len, char *err,
                        size_t errlen) {
  int rc = -1;
  pb_profile prof;
  perftools__profiles__profile__init(&prof);
  pb_vt **types = calloc(p->ntypes + 1, sizeof(*types));
  pb_sample **samples = calloc(p->nsamples + 1, sizeof(*samples));
  pb_label **labels = calloc(p->nsample_labels + 1, sizeof(*labels));
  pb_location **locs = calloc(p->nlocs + 1, sizeof(*locs));
  pb_line **lines = calloc(p->nlocs + 1, sizeof(*lines));
  pb_function **funcs = calloc(p->nfuncs + 1, sizeof(*funcs));
  if (!p->maps_read) read_maps(p); /* mapping[0]: the main binary, as pprof expects */
  pb_mapping *maps = calloc(p->nmaps + 1, sizeof(*maps));
  pb_mapping **mapps = calloc(p->nmaps + 1, sizeof(*mapps));
  uint8_t *buf = NULL;
  if (!types || !samples || !labels || !locs || !lines || !funcs || !maps || !mapps) {
    mw_oom(err, errlen);
    goto done;
  }
  for (size_t i = 0; i < p->ntypes; i++)
    types[i] = &p->types[i];
  for (size_t i = 0; i < p->nsample_labels; i++)
    labels[i] = &p->sample_labels[i];
  for (size_t i = 0; i < p->nsamples; i++) {
    pb_sample *s = &p->samples[i];
    samples[i] = s;
    s->location_id = p->sample_locs + (uintptr_t)s->location_id;
    s->value = p->sample_vals + (uintptr_t)s->value;
    s->label = labels + (uintptr_t)s->label;
  }
  for (size_t i = 0; i < p->nlocs; i++) {
    locs[i] = &p->locs[i];
    lines[i] = &p->lines[i];
    if (p->lines[i].function_id) {
      p->locs[i].line = &lines[i];
      p->locs[i].n_line = 1;
    }
  }
  for (size_t i = 0; i < p->nfuncs; i++)
    funcs[i] = &p->funcs[i];
  for (size_t i = 0; i < p->nmaps; i++) {
    perftools__profiles__mapping__init(&maps[i]);
    maps[i].id = i + 1;
    maps[i].memory_start = p->maps[i].start;
    maps[i].memory_limit = p->maps[i].limit;
    maps[i].file_offset = p->maps[i].offset;
    maps[i].filename = p->maps[i].file;
    maps[i].has_functions = 1;
    mapps[i] = &maps[i];
  }
  prof.n_sample_type = p->ntypes;
  prof.sample_type = types;
  prof.n_sample = p->nsamples;
  prof.sample = samples;
  prof.n_mapping = p->nmaps;
  prof.mapping = mapps;
  prof.n_location = p->nlocs;
  prof.location = locs;
  prof.n_function = p->nfuncs;
  prof.function = funcs;
  prof.n_string_table = p->nstrs;
  prof.string_table = p->strs;
  prof.time_nanos = p->time_ns;
  prof.duration_nanos = p->duration_ns;
  prof.period_type = &p->period_type;
  prof.period = p->period;
  prof.n_comment = p->ncomments;
  prof.comment = p->comments;
  prof.default_sample_type = p->default_type;
  size_t n = perftools__profiles__profile__get_packed_size(&prof);
  buf = malloc(n + 1);
  if (!buf) {
    mw_oom(err, errlen);
    goto done;
  }
  perftools__profiles__profile__pack(&prof, buf);
  free(p->out);
  p->out = NULL;
  if (gzip) {
    size_t got = 0;
    if (mw_gzip(buf, n, &p->out, &got) != 0) {
      mw_seterr(err, errlen, "gzip: out of memory");
      goto done;
    }
    p->outlen = got;
  } else {
    p->out = buf;
    p->outlen = n;
    buf = NULL;
  }
  *out = p->out;
  *len = p->outlen;
  rc = 0;
done:
  /* back to offsets, so that a later sample or finish still works */
  for (size_t i = 0; samples && labels && i < p->nsamples; i++) {
    pb_sample *s = &p->samples[i];
    if (s->location_id >= p->sample_locs && s->value >= p->sample_vals) {
      s->location_id = (uint64_t *)(uintptr_t)(s->location_id - p->sample_locs);
      s->value = (int64_t *)(uintptr_t)(s->value - p->sample_vals);
      s->label = (pb_label **)(uintptr_t)(s->label - labels);
    }
  }
  free(buf);
  free(types);
  free(samples);
  free(labels);
  free(locs);
  free(lines);
  free(funcs);
  free(maps);
  free(mapps);
  return rc;
}

/* --- checking ------------------------------------------------------------- */

/* Gunzips data into *raw (malloc'd) when it starts with the gzip magic; bounded to 256 MiB. */
static int gunzip(const uint8_t *data, size_t len, uint8_t **raw, size_t *rawlen, char *err,
                  size_t errlen) {
  *raw = NULL;
  if (len < 2 || data[0] != 0x1f || data[1] != 0x8b) return 0;
  char *out;
  if (mw_gunzip_all(data, len, (size_t)256 << 20, &out, rawlen, err, errlen) != 0) {
    if (err && errlen && strcmp(err, MW_ERR_BODY_LIMIT) == 0)
      mw_seterr(err, errlen, "gzip: more than 256 MiB uncompressed");
    return -1;
  }
  *raw = (uint8_t *)out;
  return 0;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* The ids of n messages (each a pointer to a struct starting with ProtobufCMessage then the
 * uint64 id), sorted, malloc'd; NULL on OOM. */
#define SORTED_IDS(arr, n, out)                                                                    \
  do {                                                                                             \
    out = malloc(((n) + 1) * sizeof(uint64_t));                                                    \
    if (out) {                                                                                     \
      for (size_t i_ = 0; i_ < (n); i_++)                                                          \
        out[i_] = (arr)[i_]->id;                                                                   \
      qsort(out, (n), sizeof(uint64_t), cmp_u64);                                                  \
    }                                                                                              \
  } while (0)

static int has_id(const uint64_t *ids, size_t n, uint64_t id) {
  return bsearch(&id, ids, n, sizeof(uint64_t), cmp_u64) != NULL;
}

#define STR_OK(i) ((i) >= 0 && (uint64_t)(i) < prof->n_string_table)

int mw_ffi_pprof_check(const uint8_t *data, size_t len, size_t *nsamples, size_t *ntypes, char *err,
                       size_t errlen) {
  uint8_t *raw = NULL;
  uint64_t *fids = NULL, *mids = NULL, *lids = NULL;
  size_t rawlen = 0;
  if (gunzip(data, len, &raw, &rawlen, err, errlen)) return -1;
  int rc = -1;
  pb_profile *prof =
      perftools__profiles__profile__unpack(NULL, raw ? rawlen : len, raw ? raw : data);
  if (!prof) {
    mw_seterr(err, errlen, "not a profile.proto message");
    goto done;
  }
  if (!prof->n_string_table || prof->string_table[0][0]) {
    mw_seterr(err, errlen, "string_table[0] is not \"\"");
    goto done;
  }
  for (size_t i = 0; i < prof->n_sample_type; i++)
    if (!STR_OK(prof->sample_type[i]->type) || !STR_OK(prof->sample_type[i]->unit)) {
      mw_seterr(err, errlen, "sample_type %zu: string index out of range", i);
      goto done;
    }
  SORTED_IDS(prof->function, prof->n_function, fids);
  SORTED_IDS(prof->mapping, prof->n_mapping, mids);
  SORTED_IDS(prof->location, prof->n_location, lids);
  if (!fids || !mids || !lids) {
    mw_oom(err, errlen);
    goto done;
  }
  for (size_t i = 0; i < prof->n_function; i++) {
    pb_function *f = prof->function[i];
    if (!f->id || !STR_OK(f->name) || !STR_OK(f->system_name) || !STR_OK(f->filename)) {
      mw_seterr(err, errlen, "function %zu: zero id or string index out of range", i);
      goto done;
    }
  }
  for (size_t i = 0; i < prof->n_mapping; i++)
    if (!prof->mapping[i]->id || !STR_OK(prof->mapping[i]->filename) ||
        !STR_OK(prof->mapping[i]->build_id)) {
      mw_seterr(err, errlen, "mapping %zu: zero id or string index out of range", i);
      goto done;
    }
  for (size_t i = 0; i < prof->n_location; i++) {
    pb_location *l = prof->location[i];
    if (!l->id) {
      mw_seterr(err, errlen, "location %zu: zero id", i);
      goto done;
    }
    int found = l->mapping_id == 0 || has_id(mids, prof->n_mapping, l->mapping_id);
    for (size_t k = 0; found && k < l->n_line; k++) /* 0: a line without a function (pprof's) */
      found = !l->line[k]->function_id || has_id(fids, prof->n_function, l->line[k]->function_id);
    if (!found) {
      mw_seterr(err, errlen, "location %llu: unknown mapping or function",
                (unsigned long long)l->id);
      goto done;
    }
  }
  for (size_t i = 0; i < prof->n_sample; i++) {
    pb_sample *s = prof->sample[i];
    if (s->n_value != prof->n_sample_type) {
      mw_seterr(err, errlen, "sample %zu: %zu values for %zu sample types", i, s->n_value,
                prof->n_sample_type);
      goto done;
    }
    for (size_t k = 0; k < s->n_location_id; k++) {
      if (!has_id(lids, prof->n_location, s->location_id[k])) {
        mw_seterr(err, errlen, "sample %zu: unknown location %llu", i,
                  (unsigned long long)s->location_id[k]);
        goto done;
      }
    }
    for (size_t k = 0; k < s->n_label; k++)
      if (!STR_OK(s->label[k]->key) || !STR_OK(s->label[k]->str) ||
          !STR_OK(s->label[k]->num_unit)) {
        mw_seterr(err, errlen, "sample %zu: label string index out of range", i);
        goto done;
      }
  }
  if (!STR_OK(prof->drop_frames) || !STR_OK(prof->keep_frames) ||
      !STR_OK(prof->default_sample_type) ||
      (prof->period_type &&
       (!STR_OK(prof->period_type->type) || !STR_OK(prof->period_type->unit)))) {
    mw_seterr(err, errlen, "string index out of range");
    goto done;
  }
  for (size_t i = 0; i < prof->n_comment; i++)
    if (!STR_OK(prof->comment[i])) {
      mw_seterr(err, errlen, "comment %zu: string index out of range", i);
      goto done;
    }
  *nsamples = prof->n_sample;
  *ntypes = prof->n_sample_type;
  rc = 0;
done:
  if (prof) perftools__profiles__profile__free_unpacked(prof, NULL);
  free(raw);
  free(fids);
  free(mids);
  free(lids);
  return rc;
}

/* --- delta profiles ------------------------------------------------------- */

#define DELTA_MAX_TYPES 4

/* A sample's totals of the delta sample types, by the hash of its stack and labels. */
typedef struct {
  uint64_t key;
  int used;
  size_t first; /* the index of its first sample in the current profile */
  int64_t v[DELTA_MAX_TYPES];
} dslot_t;

typedef struct {
  dslot_t *slots;
  size_t cap; /* a power of two, or 0 */
} dmap_t;

struct mw_pprof_delta {
  char *types[2 * DELTA_MAX_TYPES];
  size_t ntypes;
  dmap_t prev;
  int have_prev;
  int64_t prev_time; /* the last profile's time_nanos */
  uint8_t *out;
};

static dslot_t *dmap_find(dmap_t *m, uint64_t key) {
  if (!m->cap) return NULL;
  for (size_t i = (size_t)key & (m->cap - 1);; i = (i + 1) & (m->cap - 1))
    if (!m->slots[i].used || m->slots[i].key == key) return &m->slots[i];
}

mw_pprof_delta_t *mw_ffi_pprof_delta_new(const char *types, size_t ntypes) {
  if (ntypes > DELTA_MAX_TYPES) return NULL;
  mw_pprof_delta_t *d = calloc(1, sizeof(*d));
  if (!d) return NULL;
  const char *at = types;
  for (size_t i = 0; i < 2 * ntypes; i++) {
    d->types[i] = strdup(at);
    if (!d->types[i]) {
      d->ntypes = ntypes;
      mw_ffi_pprof_delta_free(d);
      return NULL;
    }
    at += strlen(at) + 1;
  }
  d->ntypes = ntypes;
  return d;
}

void mw_ffi_pprof_delta_free(mw_pprof_delta_t *d) {
  if (!d) return;
  for (size_t i = 0; i < 2 * d->ntypes; i++)
    free(d->types[i]);
  free(d->prev.slots);
  free(d->out);
  free(d);
}

typedef struct {
  uint64_t id;
  const void *p;
} idptr_t;

static int cmp_idptr(const void *a, const void *b) {
  uint64_t x = ((const idptr_t *)a)->id, y = ((const idptr_t *)b)->id;
  return x < y ? -1 : x > y;
}

static const void *find_id(const idptr_t *ids, size_t n, uint64_t id) {
  idptr_t k = {id, NULL};
  const idptr_t *f = bsearch(&k, ids, n, sizeof(idptr_t), cmp_idptr);
  return f ? f->p : NULL;
}

static const char *pstr(const pb_profile *prof, int64_t i) {
  return i >= 0 && (uint64_t)i < prof->n_string_table ? prof->string_table[i] : "";
}

static uint64_t hash_str(const char *s, uint64_t seed) {
  return XXH3_64bits_withSeed(s, strlen(s), seed);
}

/* The identity of sample s: its locations (address, then each line's function name, file and
 * line) in order, and its labels in any order. */
static uint64_t sample_key(const pb_profile *prof, const pb_sample *s, const idptr_t *locs,
                           const idptr_t *funcs) {
  uint64_t h = 0x9E3779B97F4A7C15ull;
  for (size_t k = 0; k < s->n_location_id; k++) {
    const pb_location *l = find_id(locs, prof->n_location, s->location_id[k]);
    uint64_t a = l ? l->address : s->location_id[k];
    h = XXH3_64bits_withSeed(&a, sizeof a, h);
    for (size_t j = 0; l && j < l->n_line; j++) {
      const pb_function *f = find_id(funcs, prof->n_function, l->line[j]->function_id);
      if (f) {
        h = hash_str(pstr(prof, f->name), h);
        h = hash_str(pstr(prof, f->filename), h);
      }
      int64_t line = l->line[j]->line;
      h = XXH3_64bits_withSeed(&line, sizeof line, h);
    }
  }
  uint64_t lh = 0;
  for (size_t k = 0; k < s->n_label; k++) {
    const pb_label *lb = s->label[k];
    uint64_t x = hash_str(pstr(prof, lb->key), 1);
    x = hash_str(pstr(prof, lb->str), x);
    x = XXH3_64bits_withSeed(&lb->num, sizeof lb->num, x);
    lh += hash_str(pstr(prof, lb->num_unit), x);
  }
  return h ^ (lh * 0xC2B2AE3D27D4EB4Full);
}

int mw_ffi_pprof_delta_next(mw_pprof_delta_t *d, const uint8_t *data, size_t len,
                            const uint8_t **out, size_t *outlen, char *err, size_t errlen) {
  uint8_t *raw = NULL, *buf = NULL;
  size_t rawlen = 0;
  idptr_t *locs = NULL, *funcs = NULL;
  pb_sample **kept = NULL;
  uint64_t *keys = NULL;
  dmap_t cur = {NULL, 0};
  int rc = -1;
  if (gunzip(data, len, &raw, &rawlen, err, errlen)) return -1;
  pb_profile *prof =
      perftools__profiles__profile__unpack(NULL, raw ? rawlen : len, raw ? raw : data);
  if (!prof) {
    mw_seterr(err, errlen, "not a profile.proto message");
    goto done;
  }
  int idx[DELTA_MAX_TYPES], any = 0;
  for (size_t k = 0; k < d->ntypes; k++) {
    idx[k] = -1;
    for (size_t i = 0; i < prof->n_sample_type; i++)
      if (!strcmp(pstr(prof, prof->sample_type[i]->type), d->types[2 * k]) &&
          !strcmp(pstr(prof, prof->sample_type[i]->unit), d->types[2 * k + 1])) {
        idx[k] = (int)i;
        any = 1;
      }
  }
  if (!any) { /* not a profile of these types: as it is */
    free(d->out);
    d->out = malloc(len ? len : 1);
    if (!d->out) {
      mw_oom(err, errlen);
      goto done;
    }
    memcpy(d->out, data, len);
    *out = d->out;
    *outlen = len;
    rc = 0;
    goto done;
  }
  locs = malloc((prof->n_location + 1) * sizeof(*locs));
  funcs = malloc((prof->n_function + 1) * sizeof(*funcs));
  kept = malloc((prof->n_sample + 1) * sizeof(*kept));
  keys = malloc((prof->n_sample + 1) * sizeof(*keys));
  for (cur.cap = 16; cur.cap < 2 * prof->n_sample + 2; cur.cap *= 2)
    ;
  cur.slots = calloc(cur.cap, sizeof(dslot_t));
  if (!locs || !funcs || !kept || !keys || !cur.slots) {
    mw_oom(err, errlen);
    goto done;
  }
  for (size_t i = 0; i < prof->n_location; i++)
    locs[i] = (idptr_t){prof->location[i]->id, prof->location[i]};
  for (size_t i = 0; i < prof->n_function; i++)
    funcs[i] = (idptr_t){prof->function[i]->id, prof->function[i]};
  qsort(locs, prof->n_location, sizeof(*locs), cmp_idptr);
  qsort(funcs, prof->n_function, sizeof(*funcs), cmp_idptr);
  /* the totals of this profile, by sample (each sample's key kept for the pass below) */
  for (size_t i = 0; i < prof->n_sample; i++) {
    pb_sample *s = prof->sample[i];
    keys[i] = sample_key(prof, s, locs, funcs);
    dslot_t *e = dmap_find(&cur, keys[i]);
    if (!e->used) {
      e->used = 1;
      e->key = keys[i];
      e->first = i;
    }
    for (size_t k = 0; k < d->ntypes; k++)
      if (idx[k] >= 0 && (size_t)idx[k] < s->n_value) e->v[k] += s->value[idx[k]];
  }
  /* each first sample of a stack gets its total minus the last profile's; the others 0 */
  size_t nkept = 0;
  for (size_t i = 0; i < prof->n_sample; i++) {
    pb_sample *s = prof->sample[i];
    const dslot_t *e = dmap_find(&cur, keys[i]);
    const dslot_t *p = dmap_find(&d->prev, e->key);
    for (size_t k = 0; k < d->ntypes; k++) {
      if (idx[k] < 0 || (size_t)idx[k] >= s->n_value) continue;
      int64_t before = p && p->used ? p->v[k] : 0;
      s->value[idx[k]] = e->first != i ? 0 : e->v[k] >= before ? e->v[k] - before : e->v[k];
    }
    int nonzero = 0;
    for (size_t k = 0; k < s->n_value && !nonzero; k++)
      nonzero = s->value[k] != 0;
    if (nonzero) kept[nkept++] = s;
  }
  free(d->prev.slots);
  d->prev = cur;
  cur.slots = NULL;
  int64_t time_ns = prof->time_nanos; /* the delta covers the time since the last profile */
  if (d->have_prev && time_ns > d->prev_time) prof->duration_nanos = time_ns - d->prev_time;
  d->prev_time = time_ns;
  if (!d->have_prev) {
    d->have_prev = 1;
    *out = NULL;
    *outlen = 0;
    rc = 0;
    goto done;
  }
  pb_sample **all = prof->sample;
  size_t nall = prof->n_sample;
  prof->sample = kept;
  prof->n_sample = nkept;
  size_t n = perftools__profiles__profile__get_packed_size(prof);
  buf = malloc(n + 1);
  if (buf) perftools__profiles__profile__pack(prof, buf);
  prof->sample = all;
  prof->n_sample = nall;
  free(d->out);
  d->out = NULL;
  size_t got = 0;
  if (!buf || mw_gzip(buf, n, &d->out, &got) != 0) {
    mw_oom(err, errlen);
    goto done;
  }
  *out = d->out;
  *outlen = got;
  rc = 0;
done:
  if (prof) perftools__profiles__profile__free_unpacked(prof, NULL);
  free(raw);
  free(buf);
  free(locs);
  free(funcs);
  free(kept);
  free(keys);
  free(cur.slots);
  return rc;
}
