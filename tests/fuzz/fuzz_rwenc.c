/* Fuzz target: the hand-written WriteRequest encoder (mw_rwenc_finish)
 * against protobuf-c. The input describes a request (tests/c/rwref.h), which
 * is made both with mw_rwenc and with protobuf-c's pack: the protobuf bytes
 * must be the same (and again when mw_rwenc gets the series as a series
 * table's stored bytes, symbol ids), and what finish sends must decode with mw_rwenc_decode
 * to as many series, samples, exemplars and metadata as were added. One
 * encoder is reused across inputs, as a shard reuses its own.
 *
 * The input, read until it ends (missing bytes read as 0):
 *   flags u8: bit 0, external labels follow: a u8 picks which of a, cluster,
 *     job, zz (bits 0-3), each with a value (len u8 % 16 + 1, bytes)
 *   then operations, op u8 % 4:
 *     0 series:   labels, n u8, n x (ts, value)
 *     1 exemplar: labels, ts, value (on the last series; none before one)
 *     2 metadata: type (i32 LE), family (str), help (str), unit (str)
 *     3 histogram (on the last series): flags u8 (bit 0 float, bits 1-2 reset hint,
 *       bit 3 a 32-bit schema), schema (i8 or i32 LE), ts, zero threshold (value), count
 *       and zero count (float: values; integer: u64 LE), sum (value), then positive and
 *       negative spans (n u8 % 5, each offset i8 and length u8 % 4), positive and negative
 *       buckets (n u8 % 9, each an i8 delta or a value), custom values (n u8 % 4 values)
 *   labels: n u8 % 9 labels, each: name (len u8 % 32, bytes), value: b u8,
 *     b < 0xf0: b bytes; else a u16 LE length filled with one byte (3-byte
 *     varint lengths from a short input). 0xFF (the separator) reads as 0xFE.
 *   ts: s u8 % 8: 0, INT64_MIN, INT64_MAX, -1, an i8, else an i64 LE
 *   value: s u8 % 8: 0.0, -0.0, the staleness NaN, +Inf, -Inf, NaN, else the
 *     bits of a u64 LE
 *   str: len u8 (0xFF: a u16 LE length), bytes (any: NUL and 0xFF too) */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../c/rwref.h"
#include "model/batch.h"

#define POOL (8u << 20) /* label set and string bytes of one request */

typedef struct {
  const uint8_t *p;
  size_t n;
  uint8_t *pool;
  size_t used;
  int full; /* the pool ran out: the request ends there */
} rd_t;

static uint8_t rd_u8(rd_t *r) {
  if (!r->n) return 0;
  r->n--;
  return *r->p++;
}

static uint64_t rd_le(rd_t *r, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++)
    v |= (uint64_t)rd_u8(r) << (8 * i);
  return v;
}

/* Room for n bytes in the pool, or NULL (and r->full). */
static uint8_t *rd_room(rd_t *r, size_t n) {
  if (r->used + n > POOL) {
    r->full = 1;
    return NULL;
  }
  r->used += n;
  return r->pool + r->used - n;
}

/* n bytes of input (0xFF as 0xFE if sep) followed by a 0xFF if sep. */
static int rd_bytes(rd_t *r, size_t n, int sep) {
  uint8_t *p = rd_room(r, n + (sep ? 1 : 0));
  if (!p) return -1;
  for (size_t i = 0; i < n; i++) {
    p[i] = rd_u8(r);
    if (sep && p[i] == 0xff) p[i] = 0xfe;
  }
  if (sep) p[n] = 0xff;
  return 0;
}

static const uint8_t *rd_labels(rd_t *r, size_t *len) {
  size_t start = r->used, n = rd_u8(r) % 9;
  for (size_t i = 0; i < n && !r->full; i++) {
    if (rd_bytes(r, rd_u8(r) % 32, 1) != 0) break;
    uint8_t b = rd_u8(r);
    if (b < 0xf0) {
      rd_bytes(r, b, 1);
      continue;
    }
    size_t vl = (size_t)rd_le(r, 2);
    uint8_t fill = rd_u8(r), *p = rd_room(r, vl + 1);
    if (!p) break;
    memset(p, fill == 0xff ? 0xfe : fill, vl);
    p[vl] = 0xff;
  }
  /* cut at a full pool: back to the last whole label */
  if (r->full) {
    size_t pos = start, l = 0;
    mw_label_t lab;
    while (mw_labels_next(r->pool + start, r->used - start, &l, &lab) == 1)
      pos = start + l;
    r->used = pos;
  }
  *len = r->used - start;
  return r->pool + start;
}

static int64_t rd_ts(rd_t *r) {
  switch (rd_u8(r) % 8) {
  case 0: return 0;
  case 1: return INT64_MIN;
  case 2: return INT64_MAX;
  case 3: return -1;
  case 4: return (int8_t)rd_u8(r);
  default: return (int64_t)rd_le(r, 8);
  }
}

static double rd_value(rd_t *r) {
  uint64_t b;
  switch (rd_u8(r) % 8) {
  case 0: return 0.0;
  case 1: return -0.0;
  case 2: b = MW_STALE_NAN_BITS; break;
  case 3: return INFINITY;
  case 4: return -INFINITY;
  case 5: b = MW_NORMAL_NAN_BITS; break;
  default: b = rd_le(r, 8);
  }
  double v;
  memcpy(&v, &b, sizeof v);
  return v;
}

static const char *rd_str(rd_t *r, size_t *len) {
  size_t n = rd_u8(r);
  if (n == 0xff) n = (size_t)rd_le(r, 2);
  size_t start = r->used;
  if (rd_bytes(r, n, 0) != 0) {
    *len = 0;
    return "";
  }
  *len = n;
  return (const char *)r->pool + start;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static mw_rwenc_t *e;
  static uint8_t *pool;
  if (!e && !(e = mw_rwenc_new())) abort();
  if (!pool && !(pool = malloc(POOL))) abort();
  rd_t r = {.p = data, .n = size, .pool = pool};
  /* each operation reads at least one byte, a sample two */
  mw_rwref_series_t *series = calloc(size + 1, sizeof *series);
  mw_rwref_ex_t *ex = calloc(size + 1, sizeof *ex);
  mw_rwref_meta_t *meta = calloc(size + 1, sizeof *meta);
  size_t *meta_at = calloc(size + 1, sizeof *meta_at);
  int64_t *ts = calloc(size + 1, sizeof *ts);
  double *values = calloc(size + 1, sizeof *values);
  mw_histogram_t *hists = calloc(size + 1, sizeof *hists);
  int64_t *hts = calloc(size + 1, sizeof *hts);
  /* a histogram holds at most 8 spans, 16 buckets and 3 custom values */
  mw_hspan_t *hsp = calloc(8 * (size + 1), sizeof *hsp);
  int64_t *hd = calloc(16 * (size + 1), sizeof *hd);
  double *hf = calloc(19 * (size + 1), sizeof *hf);
  if (!series || !ex || !meta || !meta_at || !ts || !values || !hists || !hts || !hsp || !hd || !hf)
    abort();
  size_t nh = 0, nsp = 0, nd = 0, nf = 0;
  mw_rwref_req_t req = {.series = series, .meta = meta, .meta_at = meta_at};
  uint8_t ext[4 * (8 + 17)];
  if (rd_u8(&r) & 1) {
    static const char *const names[] = {"a", "cluster", "job", "zz"};
    uint8_t which = rd_u8(&r);
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
      if (!(which & (1u << i))) continue;
      size_t nl = strlen(names[i]), vl = rd_u8(&r) % 16 + 1;
      memcpy(ext + n, names[i], nl);
      n += nl;
      ext[n++] = 0xff;
      for (size_t k = 0; k < vl; k++) {
        uint8_t c = rd_u8(&r);
        ext[n++] = c == 0xff ? 0xfe : c;
      }
      ext[n++] = 0xff;
    }
    req.ext = ext;
    req.ext_len = n;
  }
  size_t nts = 0, nex = 0, want_samples = 0;
  while (r.n && !r.full) {
    switch (rd_u8(&r) % 4) {
    case 0: {
      mw_rwref_series_t *s = &series[req.nseries++];
      s->hist = hists + nh;
      s->hts = hts + nh;
      s->labels = rd_labels(&r, &s->len);
      s->ts = ts + nts;
      s->values = values + nts;
      s->ex = ex + nex;
      for (size_t n = rd_u8(&r); n > 0 && r.n; n--, s->n++) {
        ts[nts] = rd_ts(&r);
        values[nts++] = rd_value(&r);
      }
      want_samples += s->n;
      break;
    }
    case 1: {
      if (!req.nseries) break;
      mw_rwref_series_t *s = &series[req.nseries - 1];
      mw_rwref_ex_t *x = &ex[nex++];
      x->labels = rd_labels(&r, &x->len);
      x->ts = rd_ts(&r);
      x->value = rd_value(&r);
      s->nex++;
      break;
    }
    case 3: {
      if (!req.nseries || nh >= size) break;
      mw_rwref_series_t *s = &series[req.nseries - 1];
      mw_histogram_t *h = &hists[nh];
      uint8_t fl = rd_u8(&r);
      h->is_float = fl & 1;
      h->reset_hint = (fl >> 1) & 3;
      h->schema = fl & 8 ? (int32_t)(uint32_t)rd_le(&r, 4) : (int8_t)rd_u8(&r);
      hts[nh] = rd_ts(&r);
      h->zero_threshold = rd_value(&r);
      if (h->is_float) {
        h->fcount = rd_value(&r);
        h->fzero_count = rd_value(&r);
      } else {
        h->count = rd_le(&r, 8);
        h->zero_count = rd_le(&r, 8);
      }
      h->sum = rd_value(&r);
      for (int side = 0; side < 2; side++) {
        uint32_t n = rd_u8(&r) % 5;
        mw_hspan_t *sp = hsp + nsp;
        for (uint32_t k = 0; k < n; k++)
          hsp[nsp++] = (mw_hspan_t){.offset = (int8_t)rd_u8(&r), .length = rd_u8(&r) % 4u};
        if (side == 0) {
          h->pos_spans = sp;
          h->n_pos_spans = n;
        } else {
          h->neg_spans = sp;
          h->n_neg_spans = n;
        }
      }
      for (int side = 0; side < 2; side++) {
        uint32_t n = rd_u8(&r) % 9;
        int64_t *d = hd + nd;
        double *c = hf + nf;
        for (uint32_t k = 0; k < n; k++) {
          if (h->is_float)
            hf[nf++] = rd_value(&r);
          else
            hd[nd++] = (int8_t)rd_u8(&r);
        }
        if (side == 0) {
          h->n_pos = n;
          h->pos_deltas = d;
          h->pos_counts = c;
        } else {
          h->n_neg = n;
          h->neg_deltas = d;
          h->neg_counts = c;
        }
      }
      h->n_custom = rd_u8(&r) % 4;
      h->custom_values = hf + nf;
      for (uint32_t k = 0; k < h->n_custom; k++)
        hf[nf++] = rd_value(&r);
      nh++;
      s->nh++;
      break;
    }
    default: {
      mw_rwref_meta_t *m = &meta[req.nmeta];
      m->type = (int)(int32_t)(uint32_t)rd_le(&r, 4);
      m->family = rd_str(&r, &m->family_len);
      m->help = rd_str(&r, &m->help_len);
      m->unit = rd_str(&r, &m->unit_len);
      meta_at[req.nmeta++] = req.nseries;
      break;
    }
    }
  }
  uint8_t *hand, *ref;
  size_t hand_len = 0, ref_len = 0, raw = 0, z_len = 0;
  const uint8_t *z;
  if (mw_rwref_encode(&req, e, &hand, &hand_len, &raw, &z, &z_len) != 0) abort();
  if (mw_rwref_pack(&req, &ref, &ref_len) != 0) abort();
  if (raw != hand_len || mw_rwref_diff(hand, hand_len, ref, ref_len) >= 0) abort();
  /* the same request with the series from a series table's symbols: the same bytes */
  uint8_t *stored;
  size_t stored_len = 0;
  req.stored = 1;
  if (mw_rwref_encode(&req, e, &stored, &stored_len, &raw, &z, &z_len) != 0) abort();
  if (raw != stored_len || mw_rwref_diff(stored, stored_len, ref, ref_len) >= 0) abort();
  free(stored);
  char err[256];
  Prometheus__WriteRequest *back;
  if (mw_rwenc_decode(z, z_len, &back, err, sizeof err) != 0) abort();
  size_t got_samples = 0, got_ex = 0, got_h = 0;
  for (size_t i = 0; i < back->n_timeseries; i++) {
    got_samples += back->timeseries[i]->n_samples;
    got_ex += back->timeseries[i]->n_exemplars;
    got_h += back->timeseries[i]->n_histograms;
  }
  if (back->n_timeseries != req.nseries || back->n_metadata != req.nmeta ||
      got_samples != want_samples || got_ex != nex || got_h != nh)
    abort();
  mw_rwenc_decode_free(back);
  free(hand);
  free(ref);
  free(series);
  free(ex);
  free(meta);
  free(meta_at);
  free(ts);
  free(values);
  free(hists);
  free(hts);
  free(hsp);
  free(hd);
  free(hf);
  return 0;
}
