/* relabel/cache.c: a relabel program applied to whole batches, with a cache of
 * results per input series. The cache is a memo per source series table
 * (each scrape target has its own) indexed by the source's series ref and
 * checked by the entry's stamp, so a hit costs one array read and no hashing;
 * only misses run the rules. Results go to an output batch whose series table
 * the cache owns. The size counts every result computed since the cache was
 * last emptied, so under series churn (refs of gone series handed to new ones)
 * the output series of forgotten results count too. The cache is emptied when
 * it would grow past its maximum size (between batches, so no output ref is in
 * use): memory stays bounded by max_size results. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/grow.h"
#include "base/labels.h"
#include "model/batch.h"
#include "model/series.h"
#include "relabel/relabel.h"

#define MW_DROPPED (UINT32_MAX - 1)
#define MW_MAX_MEMOS 4096

typedef struct {
  uint32_t stamp; /* the source entry's stamp when remembered; 0: nothing */
  uint32_t out;   /* output ref or MW_DROPPED */
} mw_memo_entry_t;

typedef struct {
  uint64_t uid; /* the source series table */
  uint64_t used;
  mw_memo_entry_t *e;
  size_t cap;
} mw_memo_t;

struct mw_relabel_cache {
  const mw_relabel_program_t *program; /* NULL: misses are left to the caller */
  mw_relabel_scratch_t *scratch;
  uint32_t max_size;
  size_t size; /* results remembered since the last clear, replaced ones included: an
                * upper bound of the output series and of the memo entries in use */
  mw_series_t *out;
  mw_batch_t *batch;
  mw_memo_t *memos;
  size_t nmemos, memos_cap;
  uint64_t tick;
  const mw_batch_t *last_in; /* the input of the last apply (for _put) */
  mw_memo_t *last_memo;
  uint32_t *misses;
  size_t nmisses, misses_cap;
  mw_label_t *ls;
  size_t ls_cap;
  uint8_t *enc;
  size_t enc_cap;
};

/* Forgets every result: memos and output series. */
static int mw_clear(mw_relabel_cache_t *c) {
  for (size_t i = 0; i < c->nmemos; i++)
    free(c->memos[i].e);
  c->nmemos = 0;
  c->size = 0;
  c->last_in = NULL;
  c->last_memo = NULL;
  mw_batch_free(c->batch);
  mw_series_free(c->out);
  c->out = mw_series_new();
  c->batch = c->out ? mw_batch_new(c->out) : NULL;
  return c->out && c->batch ? 0 : -1;
}

/* The memo of source table uid, made if new (the least recently used one is
 * recycled past MW_MAX_MEMOS); NULL on OOM. */
static mw_memo_t *mw_memo(mw_relabel_cache_t *c, uint64_t uid) {
  c->tick++;
  mw_memo_t *lru = NULL;
  for (size_t i = 0; i < c->nmemos; i++) {
    if (c->memos[i].uid == uid) {
      c->memos[i].used = c->tick;
      return &c->memos[i];
    }
    if (!lru || c->memos[i].used < lru->used) lru = &c->memos[i];
  }
  if (c->nmemos == MW_MAX_MEMOS) {
    free(lru->e);
    *lru = (mw_memo_t){.uid = uid, .used = c->tick};
    return lru;
  }
  if (c->nmemos == c->memos_cap) {
    size_t cap = c->memos_cap ? 2 * c->memos_cap : 16;
    mw_memo_t *p = realloc(c->memos, cap * sizeof *p);
    if (!p) return NULL;
    c->memos = p;
    c->memos_cap = cap;
  }
  c->memos[c->nmemos] = (mw_memo_t){.uid = uid, .used = c->tick};
  return &c->memos[c->nmemos++];
}

/* Remembers ref -> out in memo m. 0, -1 on OOM. */
static int mw_memo_put(mw_relabel_cache_t *c, mw_memo_t *m, uint32_t ref, uint32_t stamp,
                       uint32_t out) {
  if (ref >= m->cap) {
    size_t cap = m->cap ? m->cap : 256;
    while (cap <= ref)
      cap *= 2;
    mw_memo_entry_t *p = realloc(m->e, cap * sizeof *p);
    if (!p) return -1;
    memset(p + m->cap, 0, (cap - m->cap) * sizeof *p);
    m->e = p;
    m->cap = cap;
  }
  /* Every result counts, also one that replaces an older result for a ref the
   * source table handed to another series: the older result's output series
   * stays in the output table until the next clear, so counting only empty
   * slots let series churn grow the table without bound (issue 16). */
  c->size++;
  m->e[ref] = (mw_memo_entry_t){.stamp = stamp, .out = out};
  return 0;
}

mw_relabel_cache_t *mw_ffi_relabel_cache_new(uint32_t max_size) {
  mw_relabel_cache_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->max_size = max_size ? max_size : 100000;
  c->scratch = mw_relabel_scratch_new();
  if (!c->scratch || mw_clear(c) != 0) {
    mw_ffi_relabel_cache_free(c);
    return NULL;
  }
  return c;
}

void mw_ffi_relabel_cache_free(mw_relabel_cache_t *c) {
  if (!c) return;
  for (size_t i = 0; i < c->nmemos; i++)
    free(c->memos[i].e);
  free(c->memos);
  mw_batch_free(c->batch);
  mw_series_free(c->out);
  mw_relabel_scratch_free(c->scratch);
  free(c->misses);
  free(c->ls);
  free(c->enc);
  free(c);
}

int mw_ffi_relabel_cache_reset(mw_relabel_cache_t *c, const mw_ffi_relabel_program_t *p) {
  c->program = (const mw_relabel_program_t *)p;
  return mw_clear(c);
}

size_t mw_ffi_relabel_cache_len(const mw_relabel_cache_t *c) { return c->size; }

size_t mw_ffi_relabel_cache_outputs(const mw_relabel_cache_t *c) { return mw_series_len(c->out); }

/* The output ref for an encoded label set (out_len 0: dropped). */
static int mw_output(mw_relabel_cache_t *c, const uint8_t *out, size_t out_len, uint32_t *oref,
                     char *err, size_t errlen) {
  *oref = MW_DROPPED;
  if (!out_len) return 0;
  return mw_series_add(c->out, out, out_len, mw_labels_hash(out, out_len), oref, NULL, err, errlen);
}

/* Runs the program on an encoded input label set; *out NULL when dropped. */
static int mw_run(mw_relabel_cache_t *c, const uint8_t *in, size_t in_len, const uint8_t **out,
                  size_t *out_len, char *err, size_t errlen) {
  size_t n = 0, pos = 0;
  mw_label_t l;
  while (mw_labels_next(in, in_len, &pos, &l) == 1) {
    if (mw_grow((void **)&c->ls, &c->ls_cap, n + 1, sizeof *c->ls) != 0) goto oom;
    c->ls[n++] = l;
  }
  const mw_label_t *res;
  size_t rn;
  int kept = mw_relabel_apply(c->program, c->scratch, c->ls, n, &res, &rn);
  if (kept < 0) goto oom;
  *out = NULL;
  *out_len = 0;
  if (!kept || rn == 0) return 0;
  size_t need = mw_labels_encoded_size(res, rn);
  if (mw_grow((void **)&c->enc, &c->enc_cap, need, 1) != 0) goto oom;
  /* A label set the encoder refuses (e.g. an invalid name made by labelmap) is dropped. */
  char msg[128];
  if (mw_labels_encode(res, rn, c->enc, c->enc_cap, out_len, msg, sizeof msg) != 0) {
    *out_len = 0;
    return 0;
  }
  *out = c->enc;
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

/* Copies the exemplars of input sample i to the output sample just added;
 * *k walks in's exemplars (in sample order). 0, -1 on OOM. */
static int mw_copy_exemplars(mw_batch_t *out, const mw_batch_t *in, size_t nex, size_t i,
                             size_t *k) {
  mw_exemplar_t e;
  for (; *k < nex; ++*k) {
    mw_batch_exemplar(in, *k, &e);
    if (e.idx > i) break;
    if (e.idx == i && mw_batch_add_exemplar(out, mw_batch_len(out) - 1, e.labels, e.labels_len,
                                            e.ts_ms, e.value) != 0)
      return -1;
  }
  return 0;
}

/* A memo miss of source series r (stamp: its stamp): the rules run now and the result, in
 * *oref, is memoised; without a program (the rules run in Lua) the miss is only recorded as
 * key in c->misses. 0: *oref set; 1: a miss recorded; -1: the rules failed (err); -2: out of
 * memory. Kept out of line: mw_lookup's hit path is the hot one. */
static int mw_miss(mw_relabel_cache_t *c, mw_memo_t *memo, mw_series_t *src, uint32_t r,
                   uint32_t stamp, uint32_t key, uint32_t *oref, char *err, size_t errlen) {
  if (!c->program) {
    if (mw_grow((void **)&c->misses, &c->misses_cap, c->nmisses + 1, sizeof *c->misses) != 0)
      return -2;
    c->misses[c->nmisses++] = key;
    return 1;
  }
  size_t len, out_len;
  const uint8_t *enc = mw_series_labels(src, r, &len), *out;
  if (!enc) return -2; /* r is live: no memory for its text */
  if (mw_run(c, enc, len, &out, &out_len, err, errlen) != 0) return -1;
  if (mw_output(c, out, out_len, oref, err, errlen) != 0) return -1;
  if (mw_memo_put(c, memo, r, stamp, *oref) != 0) return -2;
  return 0;
}

/* The output series of source series r in *oref: the memo's (a hit) or mw_miss's. Counts
 * the hit or miss and the sample processed in st. 0: write the sample to *oref; 1: skip it
 * (a miss recorded, or dropped); -1: the rules failed (err); -2: out of memory. */
static inline int mw_lookup(mw_relabel_cache_t *c, mw_memo_t *memo, mw_series_t *src, uint32_t r,
                            uint32_t key, mw_relabel_stats_t *st, uint32_t *oref, char *err,
                            size_t errlen) {
  uint32_t stamp = mw_series_stamp(src, r);
  if (r < memo->cap && stamp && memo->e[r].stamp == stamp) {
    st->hits++;
    *oref = memo->e[r].out;
  } else {
    st->misses++;
    int rc = mw_miss(c, memo, src, r, stamp, key, oref, err, errlen);
    if (rc != 0) return rc;
  }
  st->processed++;
  return *oref == MW_DROPPED;
}

int mw_ffi_relabel_cache_apply(mw_relabel_cache_t *c, const mw_batch_t *in, mw_relabel_stats_t *st,
                               char *err, size_t errlen) {
  size_t n = mw_batch_len(in), nh = mw_batch_histograms(in);
  if (c->size + n + nh > c->max_size && c->size > 0) {
    if (mw_clear(c) != 0) goto oom;
    st->flushes++;
  }
  mw_batch_reset(c->batch, c->out);
  mw_batch_set_meta(c->batch, mw_batch_meta(in)); /* relabeling changes series, not families */
  if (mw_batch_reserve(c->batch, n) != 0) goto oom;
  c->nmisses = 0;
  mw_series_t *src = mw_batch_series(in);
  mw_memo_t *memo = mw_memo(c, mw_series_uid(src));
  if (!memo) goto oom;
  c->last_in = in;
  c->last_memo = memo;
  const uint32_t *refs = mw_batch_refs(in);
  const int64_t *ts = mw_batch_timestamps(in);
  const double *vs = mw_batch_values(in);
  size_t nex = mw_batch_exemplars(in), k = 0; /* exemplars go with their samples */
  for (size_t i = 0; i < n; i++) {
    uint32_t oref;
    int rc = mw_lookup(c, memo, src, refs[i], (uint32_t)i, st, &oref, err, errlen);
    if (rc == 1) continue;
    if (rc == -2) goto oom;
    if (rc != 0) return -1;
    if (mw_batch_add(c->batch, oref, ts[i], vs[i]) != 0) goto oom;
    st->written++;
    if (nex && mw_copy_exemplars(c->batch, in, nex, i, &k) != 0) goto oom;
  }
  /* Histogram samples: the same memo (a series' results do not depend on its kind); a
   * miss is keyed n + j for histogram sample j. */
  for (size_t j = 0; j < nh; j++) {
    uint32_t oref, r = mw_batch_histogram_ref(in, j);
    int rc = mw_lookup(c, memo, src, r, (uint32_t)(n + j), st, &oref, err, errlen);
    if (rc == 1) continue;
    if (rc == -2) goto oom;
    if (rc != 0) return -1;
    if (mw_batch_copy_histogram(c->batch, oref, in, j) != 0) goto oom;
    st->written++;
  }
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

mw_batch_t *mw_ffi_relabel_cache_batch(mw_relabel_cache_t *c) { return c->batch; }

size_t mw_ffi_relabel_cache_misses(const mw_relabel_cache_t *c, const uint32_t **idx) {
  *idx = c->misses;
  return c->nmisses;
}

int mw_ffi_relabel_cache_put(mw_relabel_cache_t *c, uint32_t i, const uint8_t *out, size_t out_len,
                             char *err, size_t errlen) {
  size_t nf = c->last_in ? mw_batch_len(c->last_in) : 0;
  if (!c->last_in || i >= nf + mw_batch_histograms(c->last_in)) {
    mw_seterr(err, errlen, "no sample %u in the last input batch", i);
    return -1;
  }
  /* out comes from Lua: check it is a valid label set */
  size_t pos = 0;
  mw_label_t l;
  int r;
  while ((r = mw_labels_next(out, out_len, &pos, &l)) == 1)
    if (!mw_labels_valid_utf8_name(l.name, l.name_len)) {
      mw_seterr(err, errlen, "invalid label name \"%.*s\"", (int)l.name_len, l.name);
      return -1;
    }
  if (r < 0) {
    mw_seterr(err, errlen, "malformed label set");
    return -1;
  }
  mw_series_t *src = mw_batch_series(c->last_in);
  uint32_t ref, oref;
  if (i < nf) {
    ref = mw_batch_refs(c->last_in)[i];
  } else {
    mw_hsample_t hs;
    mw_batch_histogram(c->last_in, i - nf, &hs);
    ref = hs.ref;
  }
  if (mw_output(c, out, out_len, &oref, err, errlen) != 0) return -1;
  if (mw_memo_put(c, c->last_memo, ref, mw_series_stamp(src, ref), oref) != 0) {
    mw_seterr(err, errlen, "out of memory");
    return -1;
  }
  return 0;
}
