/* storage/metrics_wal.h: what the metrics WAL (runtime/storage/metrics_wal.c, a
 * layer on the record log) shares with its readers (remote_write's,
 * runtime/remote/wal_reader.c): the record types and their codecs, the
 * WAL ref -> series map, the series table and the record log. The public
 * API and the on-disk format are in storage/wal.h. */
#ifndef MW_METRICS_WAL_H
#define MW_METRICS_WAL_H
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/grow.h"
#include "model/histogram.h"
#include "model/series.h"
#include "storage/recordlog.h"
#include "storage/wal.h"

#define MW_REC_SERIES 1
#define MW_REC_SAMPLES 2
#define MW_REC_EXEMPLARS 3
#define MW_REC_HISTOGRAMS 4
/* Histogram samples in one histograms record at most (an append writes several). */
#define MW_HISTS_PER_REC 4096u
#define MW_SAMPLES_PER_REC (1u << 20)
#define MW_NONE UINT32_MAX

typedef struct {
  uint8_t *p;
  size_t len, cap;
} mw_buf_t;

static inline int mw_buf_reserve(mw_buf_t *b, size_t n) {
  return mw_grow((void **)&b->p, &b->cap, b->len + n, 1);
}

static inline int mw_get_uvarint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  uint64_t x = 0;
  for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
    uint8_t b = *(*p)++;
    x |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return -1;
}

static inline uint64_t mw_unzig(uint64_t u) { return (u >> 1) ^ (0 - (u & 1)); }

/* A samples (or exemplars) record being decoded. */
typedef struct {
  const uint8_t *p, *end;
  uint32_t left;
  uint64_t ref;
  int64_t base;
} mw_sdec_t;

static inline int mw_sdec_begin(mw_sdec_t *d, const uint8_t *p, uint32_t len) {
  if (len < 12) return -1;
  d->left = mw_get32(p);
  d->base = (int64_t)mw_get64(p + 4);
  d->p = p + 12;
  d->end = p + len;
  d->ref = 0;
  return 0;
}

/* 1 with a sample, 0 at the end of the record, -1 if it is malformed. */
static inline int mw_sdec_next(mw_sdec_t *d, uint64_t *ref, int64_t *ts, double *v) {
  if (!d->left) return d->p == d->end ? 0 : -1;
  uint64_t a, b;
  if (mw_get_uvarint(&d->p, d->end, &a) || mw_get_uvarint(&d->p, d->end, &b) || d->end - d->p < 8)
    return -1;
  d->ref += mw_unzig(a);
  *ref = d->ref;
  *ts = (int64_t)((uint64_t)d->base + mw_unzig(b));
  uint64_t bits = mw_get64(d->p);
  memcpy(v, &bits, sizeof bits);
  d->p += 8;
  d->left--;
  return 1;
}

/* An exemplar: a sample as in a samples record, then its label set. 1, 0 at
 * the end of the record, -1 if it is malformed (labels not checked). */
static inline int mw_edec_next(mw_sdec_t *d, uint64_t *ref, int64_t *ts, double *v,
                               const uint8_t **lab, size_t *lab_len) {
  int rc = mw_sdec_next(d, ref, ts, v);
  if (rc <= 0) return rc;
  uint64_t l;
  if (mw_get_uvarint(&d->p, d->end, &l) || l > (uint64_t)(d->end - d->p)) return -1;
  *lab = d->p;
  *lab_len = (size_t)l;
  d->p += l;
  return 1;
}

/* Histograms records (see storage/wal.h for the format). Decoding needs room for the
 * arrays of one histogram: a scratch the caller keeps (zeroed to start, freed with
 * mw_hscratch_free) and reuses. */
typedef struct {
  mw_hspan_t *spans;
  size_t spans_cap;
  double *f; /* float buckets and custom values */
  size_t f_cap;
  int64_t *i; /* bucket deltas */
  size_t i_cap;
} mw_hscratch_t;
void mw_hscratch_free(mw_hscratch_t *sc);
/* Most bytes mw_hist_put writes for h (one histogram of a record, ref and ts included). */
size_t mw_hist_max(const mw_histogram_t *h);
/* Writes one histogram of a record at p: ref delta and ts - base as zigzag varints
 * (as a samples record), then h. Returns the end. */
uint8_t *mw_hist_put(uint8_t *p, uint64_t ref_delta, int64_t ts_delta, const mw_histogram_t *h);
/* The next histogram of a histograms record begun with mw_sdec_begin: *ref, *ts and *h
 * (its arrays in sc, valid until the next call). 1, 0 at the end of the record, -1 if
 * it is malformed (not a valid histogram included), -2 on out of memory. */
int mw_hdec_next(mw_sdec_t *d, mw_hscratch_t *sc, uint64_t *ref, int64_t *ts, mw_histogram_t *h);

/* The WAL ref -> s map and the WAL ref of each s, as the WAL holds them
 * now (valid until the next append or truncation). The map has a main
 * index of every s whose wref is set, keyed by that ref but holding only
 * s + 1 (4-byte slots), and aliases: older refs of a series, (ref, s)
 * pairs, which only a replay of a WAL that recorded a label set under
 * several refs makes (see metrics_wal.c). */
typedef struct {
  const uint32_t *map_s; /* main: s + 1 keyed by wref[s], 0 empty; NULL: none */
  size_t map_n;          /* slots: a multiple of 8, sized as base/grow.h says */
  const uint64_t *al_k;  /* aliases: key 0 empty; NULL: none */
  const uint32_t *al_v;  /* s, MW_NONE: removed */
  size_t al_n;
  const uint64_t *wref; /* by s: WAL ref, 0: none */
  size_t scap;
} mw_wal_refs_t;

/* Home slot of ref k in n slots. Refs are handed out in sequence and
 * samples are read back mostly in that order (a scrape's series were
 * created in body order), so runs of 8 consecutive refs share a block of 8
 * slots (one cache line of keys) and only the blocks are spread by the
 * hash: a reader walking refs in order misses the cache once per 8
 * lookups, not once per lookup. n is a multiple of 8, so a block never
 * wraps. */
static inline size_t mw_map_home(uint64_t k, size_t n) {
  uint64_t b = k >> 3;
  b ^= b >> 33;
  b *= 0xff51afd7ed558ccdULL;
  b ^= b >> 33;
  return mw_slot_home((uint32_t)(b >> 32), n / 8) * 8 + (size_t)(k & 7);
}

static inline uint32_t mw_refs_get(const mw_wal_refs_t *m, uint64_t k) {
  if (!k) return MW_NONE;
  if (m->map_s)
    for (size_t i = mw_map_home(k, m->map_n); m->map_s[i]; i = mw_slot_next(i, m->map_n))
      if (m->wref[m->map_s[i] - 1] == k) return m->map_s[i] - 1;
  if (m->al_k)
    for (size_t i = mw_map_home(k, m->al_n); m->al_k[i]; i = mw_slot_next(i, m->al_n))
      if (m->al_k[i] == k) return m->al_v[i];
  return MW_NONE;
}

/* mw_refs_get(m, k), trying s = guess first: a batch's new series get
 * consecutive refs and, unless deleted ones are reused, consecutive s, and
 * samples come back in batch order, so the next sample's s is mostly the
 * last one's plus one. wref[s] == k proves it: every map entry k -> s is
 * made where wref[s] = k is set, an entry that replaces k -> old clears
 * wref[old], and truncation clears wref[s] of the series whose entries it
 * drops; so wref[s] == k (k != 0) means the map has k -> s. Debug builds
 * check that. */
static inline uint32_t mw_refs_to_s(const mw_wal_refs_t *m, uint64_t k, uint32_t guess) {
  if (k && guess < m->scap && m->wref[guess] == k) {
    assert(mw_refs_get(m, k) == guess);
    return guess;
  }
  return mw_refs_get(m, k);
}

/* The WAL's current map. */
void mw_wal_refs(const mw_wal_t *w, mw_wal_refs_t *m);
/* The WAL's series table (labels by s). */
mw_series_t *mw_wal_series(const mw_wal_t *w);
/* The record log under the WAL. */
mw_rlog_t *mw_wal_log(const mw_wal_t *w);
int mw_wal_closed(const mw_wal_t *w);
/* Grows each time truncation forgets series (their s may be reused). */
uint64_t mw_wal_series_epoch(const mw_wal_t *w);
/* A reader keeps the WAL's memory alive: attach at open, detach at close
 * (which frees a closed WAL when it was the last). */
void mw_wal_attach(mw_wal_t *w);
void mw_wal_detach(mw_wal_t *w);

/* The seconds without a label set looked up after which an append drops
 * the series table's index (30; tests set 0). */
void mw_wal_set_index_quiet(mw_wal_t *w, double seconds);

/* 1 if enc is an exemplar label set the WAL keeps: empty, or as a series'
 * (names and values non-empty, no NUL byte, names strictly increasing). */
int mw_wal_ex_labels_ok(const uint8_t *enc, size_t len);

#endif
