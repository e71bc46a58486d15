/* relabel/logcache.c: a relabel program applied to log-entry batches (loki.relabel), with
 * a cache of results per stream label set. The rules run once per distinct stream of a
 * batch that the cache has not seen; entries of a dropped stream are left out. The output
 * is a new log-entry batch the cache owns (lines, timestamps and structured metadata
 * copied as they are). The cache holds at most max_size results between batches: when
 * it has reached max_size at the start of an apply it is emptied (so one batch may add
 * its streams beyond it; memory stays bounded by max_size plus one batch's streams).
 * Without a program (Lua function rules), the streams not cached are left to the caller:
 * their entries are left out of the output and their indexes listed as misses; the
 * caller computes each result, puts it, and applies again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/grow.h"
#include "base/labels.h"
#include "model/logbatch.h"
#include "relabel/logcache.h"
#include "relabel/relabel.h"

typedef struct {
  uint64_t hash;
  uint8_t *key; /* key bytes then out bytes, one allocation; NULL: empty slot */
  uint32_t klen;
  uint32_t olen;
  int dropped;
} mw_lrc_slot_t;

#define MW_LRC_MISS (-2)
#define MW_LRC_DROP (-1)

struct mw_logrelabel {
  const mw_relabel_program_t *program;
  mw_relabel_scratch_t *scratch;
  uint32_t max_size;
  mw_lrc_slot_t *slots;
  size_t cap, len; /* cap a power of 2 (or 0) */
  mw_logbatch_t *out;
  int64_t *map; /* per input stream of the last apply: output stream, DROP or MISS */
  size_t map_cap;
  uint8_t *fresh; /* per input stream: computed (or missed) in this apply */
  size_t fresh_cap;
  uint32_t *misses;
  size_t nmisses, misses_cap;
  const mw_logbatch_t *last_in;
  int awaiting; /* the last apply left misses to the caller: the next apply is its second */
  mw_label_t *ls;
  size_t ls_cap;
  uint8_t *enc;
  size_t enc_cap;
};

static void mw_lrc_clear(mw_logrelabel_t *c) {
  for (size_t i = 0; i < c->cap; i++)
    free(c->slots[i].key);
  if (c->cap) memset(c->slots, 0, c->cap * sizeof *c->slots);
  c->len = 0;
}

mw_logrelabel_t *mw_ffi_logrelabel_new(uint32_t max_size) {
  mw_logrelabel_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->max_size = max_size ? max_size : 10000;
  c->scratch = mw_relabel_scratch_new();
  c->out = mw_logbatch_new();
  if (!c->scratch || !c->out) {
    mw_ffi_logrelabel_free(c);
    return NULL;
  }
  return c;
}

void mw_ffi_logrelabel_free(mw_logrelabel_t *c) {
  if (!c) return;
  mw_lrc_clear(c);
  free(c->slots);
  mw_relabel_scratch_free(c->scratch);
  mw_logbatch_free(c->out);
  free(c->map);
  free(c->fresh);
  free(c->misses);
  free(c->ls);
  free(c->enc);
  free(c);
}

void mw_ffi_logrelabel_reset(mw_logrelabel_t *c, const mw_ffi_relabel_program_t *p,
                             uint32_t max_size) {
  c->program = (const mw_relabel_program_t *)p;
  c->max_size = max_size ? max_size : 10000;
  c->last_in = NULL;
  c->nmisses = 0;
  c->awaiting = 0;
  mw_lrc_clear(c);
}

size_t mw_ffi_logrelabel_len(const mw_logrelabel_t *c) { return c->len; }

static mw_lrc_slot_t *mw_lrc_find(mw_logrelabel_t *c, const uint8_t *key, size_t klen,
                                  uint64_t hash) {
  if (!c->cap) return NULL;
  size_t mask = c->cap - 1;
  for (size_t h = (size_t)hash & mask; c->slots[h].key; h = (h + 1) & mask) {
    mw_lrc_slot_t *s = &c->slots[h];
    if (s->hash == hash && s->klen == klen && memcmp(s->key, key, klen) == 0) return s;
  }
  return NULL;
}

static int mw_lrc_grow(mw_logrelabel_t *c) {
  size_t cap = c->cap ? c->cap * 2 : 64;
  mw_lrc_slot_t *ns = calloc(cap, sizeof *ns);
  if (!ns) return -1;
  for (size_t i = 0; i < c->cap; i++) {
    if (!c->slots[i].key) continue;
    size_t h = (size_t)c->slots[i].hash & (cap - 1);
    while (ns[h].key)
      h = (h + 1) & (cap - 1);
    ns[h] = c->slots[i];
  }
  free(c->slots);
  c->slots = ns;
  c->cap = cap;
  return 0;
}

/* Remembers key -> out (out NULL: dropped). The new slot, or NULL on OOM. */
static mw_lrc_slot_t *mw_lrc_put(mw_logrelabel_t *c, const uint8_t *key, size_t klen, uint64_t hash,
                                 const uint8_t *out, size_t olen) {
  uint8_t *mem = malloc(klen + olen + 1);
  if (!mem) return NULL;
  memcpy(mem, key, klen);
  if (olen) memcpy(mem + klen, out, olen);
  mw_lrc_slot_t *s = mw_lrc_find(c, key, klen, hash);
  if (s) {
    free(s->key);
    c->len--;
  } else {
    if ((c->len + 1) * 2 > c->cap && mw_lrc_grow(c)) {
      free(mem);
      return NULL;
    }
    size_t h = (size_t)hash & (c->cap - 1);
    while (c->slots[h].key)
      h = (h + 1) & (c->cap - 1);
    s = &c->slots[h];
  }
  *s = (mw_lrc_slot_t){
      .hash = hash, .key = mem, .klen = (uint32_t)klen, .olen = (uint32_t)olen, .dropped = !out};
  c->len++;
  return s;
}

/* Runs the program on an encoded label set; *out NULL when dropped. 0, -1 on OOM. */
static int mw_lrc_run(mw_logrelabel_t *c, const uint8_t *in, size_t in_len, const uint8_t **out,
                      size_t *out_len) {
  size_t n = 0, pos = 0;
  mw_label_t l;
  while (mw_labels_next(in, in_len, &pos, &l) == 1) {
    if (mw_grow((void **)&c->ls, &c->ls_cap, n + 1, sizeof *c->ls)) return -1;
    c->ls[n++] = l;
  }
  const mw_label_t *res;
  size_t rn;
  int kept = mw_relabel_apply(c->program, c->scratch, c->ls, n, &res, &rn);
  if (kept < 0) return -1;
  *out = NULL;
  *out_len = 0;
  if (!kept || rn == 0) return 0; /* no labels left: Loki has no stream without labels */
  size_t need = mw_labels_encoded_size(res, rn);
  if (mw_grow((void **)&c->enc, &c->enc_cap, need, 1)) return -1;
  char msg[128];
  /* a label set the encoder refuses (an invalid name made by labelmap) is dropped */
  if (mw_labels_encode(res, rn, c->enc, c->enc_cap, out_len, msg, sizeof msg)) {
    *out_len = 0;
    return 0;
  }
  *out = c->enc;
  return 0;
}

/* The output stream of a cached result (-1 dropped); -3 on OOM. */
static int64_t mw_lrc_output(mw_logrelabel_t *c, const mw_lrc_slot_t *s) {
  if (s->dropped) return MW_LRC_DROP;
  int64_t o = mw_logbatch_stream(c->out, s->key + s->klen, s->olen);
  return o < 0 ? -3 : o;
}

int mw_ffi_logrelabel_apply(mw_logrelabel_t *c, const mw_logbatch_t *in, mw_logrelabel_stats_t *st,
                            char *err, size_t errlen) {
  *st = (mw_logrelabel_stats_t){0};
  mw_logbatch_reset(c->out);
  /* (not between an apply that left misses and the second apply: the results put in
   * between must stay) */
  if (!c->awaiting && c->len >= c->max_size) mw_lrc_clear(c);
  c->last_in = in;
  c->awaiting = 0;
  c->nmisses = 0;
  size_t ns = mw_logbatch_streams(in), n = mw_logbatch_len(in);
  if (mw_grow((void **)&c->map, &c->map_cap, ns ? ns : 1, sizeof *c->map) ||
      mw_grow((void **)&c->fresh, &c->fresh_cap, ns ? ns : 1, 1))
    goto oom;
  for (size_t s = 0; s < ns; s++) {
    size_t klen;
    const uint8_t *key = mw_logbatch_stream_labels(in, (uint32_t)s, &klen);
    uint64_t hash = mw_labels_hash(key, klen);
    mw_lrc_slot_t *slot = mw_lrc_find(c, key, klen, hash);
    c->fresh[s] = !slot;
    if (!slot && c->program) {
      const uint8_t *o;
      size_t olen;
      if (mw_lrc_run(c, key, klen, &o, &olen)) goto oom;
      slot = mw_lrc_put(c, key, klen, hash, o, olen);
      if (!slot) goto oom;
    }
    if (!slot) {
      if (mw_grow((void **)&c->misses, &c->misses_cap, c->nmisses + 1, sizeof *c->misses)) goto oom;
      c->misses[c->nmisses++] = (uint32_t)s;
      c->map[s] = MW_LRC_MISS;
      continue;
    }
    c->map[s] = mw_lrc_output(c, slot);
    if (c->map[s] == -3) goto oom;
  }
  /* per entry, as Alloy counts: the first entry of a stream computed now is a miss */
  mw_logentry_t e;
  for (size_t i = 0; i < n; i++) {
    mw_logbatch_entry(in, i, &e);
    st->processed++;
    int64_t o = c->map[e.stream];
    if (c->fresh[e.stream]) {
      st->misses++;
      c->fresh[e.stream] = 0;
    } else {
      st->hits++;
    }
    if (o < 0) continue; /* dropped, or left to the caller */
    if (mw_logbatch_add(c->out, (uint32_t)o, e.ts_ns, e.line, e.line_len, e.meta, e.meta_len))
      goto oom;
    st->written++;
  }
  c->awaiting = c->nmisses > 0;
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

mw_logbatch_t *mw_ffi_logrelabel_batch(mw_logrelabel_t *c) { return c->out; }

size_t mw_ffi_logrelabel_misses(const mw_logrelabel_t *c, const uint32_t **streams) {
  *streams = c->misses;
  return c->nmisses;
}

int mw_ffi_logrelabel_put(mw_logrelabel_t *c, uint32_t stream, const char *pairs, size_t len,
                          char *err, size_t errlen) {
  if (!c->last_in || stream >= mw_logbatch_streams(c->last_in)) {
    mw_seterr(err, errlen, "stream %u is not one of the last batch", stream);
    return -1;
  }
  size_t klen;
  const uint8_t *key = mw_logbatch_stream_labels(c->last_in, stream, &klen);
  uint64_t hash = mw_labels_hash(key, klen);
  if (!len) {
    if (!mw_lrc_put(c, key, klen, hash, NULL, 0)) goto oom;
    return 0;
  }
  /* name 0xFF value 0xFF pairs, in any order: normalized and checked as a stream */
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    n += (unsigned char)pairs[i] == MW_LABELS_SEP;
  if (n % 2) {
    mw_seterr(err, errlen, "malformed label pairs");
    return -1;
  }
  n /= 2;
  if (mw_grow((void **)&c->ls, &c->ls_cap, n ? n : 1, sizeof *c->ls)) goto oom;
  const char *p = pairs, *end = pairs + len;
  for (size_t k = 0; k < n; k++) {
    const char *s1 = memchr(p, MW_LABELS_SEP, (size_t)(end - p));
    const char *s2 = memchr(s1 + 1, MW_LABELS_SEP, (size_t)(end - s1 - 1));
    c->ls[k] = (mw_label_t){.name = p,
                            .name_len = (uint32_t)(s1 - p),
                            .value = s1 + 1,
                            .value_len = (uint32_t)(s2 - s1 - 1)};
    p = s2 + 1;
  }
  if (mw_labels_normalize(c->ls, &n, err, errlen)) return -1;
  size_t need = mw_labels_encoded_size(c->ls, n), olen = 0;
  if (mw_grow((void **)&c->enc, &c->enc_cap, need ? need : 1, 1)) goto oom;
  if (n && mw_labels_encode(c->ls, n, c->enc, c->enc_cap, &olen, err, errlen)) return -1;
  if (!mw_lrc_put(c, key, klen, hash, n ? c->enc : NULL, olen)) goto oom;
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}
