/* model/logbatch.c: log-entry batches (see model/logbatch.h) and their FFI surface. */
#include "model/logbatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/grow.h"
#include "base/labels.h"

typedef struct {
  uint32_t stream, line_len, meta_len;
  int64_t ts_ns;
  size_t line_off, meta_off; /* into data */
} mw_logbatch_ent_t;

typedef struct {
  size_t off; /* labels at data + off */
  uint32_t len;
  uint64_t hash;
} mw_logbatch_stream_t;

struct mw_logbatch {
  mw_logbatch_ent_t *ents;
  size_t len, cap;
  mw_logbatch_stream_t *streams;
  size_t nstreams, streams_cap;
  uint32_t *index; /* open addressing: stream index + 1, 0 = empty; size index_cap (a power of 2) */
  size_t index_cap;
  uint8_t *data;
  size_t data_len, data_cap;
  size_t line_bytes;
};

mw_logbatch_t *mw_logbatch_new(void) { return calloc(1, sizeof(mw_logbatch_t)); }

void mw_logbatch_clear(mw_logbatch_t *b) {
  free(b->ents);
  free(b->streams);
  free(b->index);
  free(b->data);
  *b = (mw_logbatch_t){0};
}

void mw_logbatch_free(mw_logbatch_t *b) {
  if (!b) return;
  mw_logbatch_clear(b);
  free(b);
}

void mw_logbatch_reset(mw_logbatch_t *b) {
  b->len = b->nstreams = b->data_len = b->line_bytes = 0;
  if (b->index) memset(b->index, 0, b->index_cap * sizeof *b->index);
}

/* Copies n bytes into data; their offset in *off. 0 or -1 (OOM). data is allocated
 * even for n == 0 (one spare byte), so data + off is never arithmetic on NULL (an
 * empty label set or line at offset 0 of an empty batch). */
static int put(mw_logbatch_t *b, const void *p, size_t n, size_t *off) {
  if (mw_grow((void **)&b->data, &b->data_cap, b->data_len + n + 1, 1)) return -1;
  if (n) memcpy(b->data + b->data_len, p, n);
  *off = b->data_len;
  b->data_len += n;
  return 0;
}

static int index_rebuild(mw_logbatch_t *b, size_t cap) {
  uint32_t *ix = calloc(cap, sizeof *ix);
  if (!ix) return -1;
  for (size_t s = 0; s < b->nstreams; s++) {
    size_t h = (size_t)b->streams[s].hash & (cap - 1);
    while (ix[h])
      h = (h + 1) & (cap - 1);
    ix[h] = (uint32_t)s + 1;
  }
  free(b->index);
  b->index = ix;
  b->index_cap = cap;
  return 0;
}

int64_t mw_logbatch_stream(mw_logbatch_t *b, const uint8_t *labels, size_t len) {
  if (len > MW_LOGBATCH_MAX_LINE) return -1;
  uint64_t hash = mw_labels_hash(labels, len);
  if (b->index_cap) {
    size_t mask = b->index_cap - 1;
    for (size_t h = (size_t)hash & mask; b->index[h]; h = (h + 1) & mask) {
      const mw_logbatch_stream_t *s = &b->streams[b->index[h] - 1];
      if (s->hash == hash && s->len == len && memcmp(b->data + s->off, labels, len) == 0)
        return b->index[h] - 1;
    }
  }
  if (b->nstreams >= MW_LOGBATCH_MAX_STREAMS) return -1;
  if ((b->nstreams + 1) * 2 > b->index_cap &&
      index_rebuild(b, b->index_cap ? b->index_cap * 2 : 16))
    return -1;
  size_t off;
  if (mw_grow((void **)&b->streams, &b->streams_cap, b->nstreams + 1, sizeof *b->streams) ||
      put(b, labels, len, &off))
    return -1;
  b->streams[b->nstreams] = (mw_logbatch_stream_t){.off = off, .len = (uint32_t)len, .hash = hash};
  size_t mask = b->index_cap - 1, h = (size_t)hash & mask;
  while (b->index[h])
    h = (h + 1) & mask;
  b->index[h] = (uint32_t)b->nstreams + 1;
  return (int64_t)b->nstreams++;
}

int mw_logbatch_add(mw_logbatch_t *b, uint32_t stream, int64_t ts_ns, const char *line, size_t len,
                    const uint8_t *meta, size_t mlen) {
  if (stream >= b->nstreams || len > MW_LOGBATCH_MAX_LINE || mlen > MW_LOGBATCH_MAX_LINE) return -1;
  if (mw_grow((void **)&b->ents, &b->cap, b->len + 1, sizeof *b->ents)) return -1;
  size_t data_len = b->data_len, loff, moff;
  if (put(b, line, len, &loff) || put(b, meta, mlen, &moff)) {
    b->data_len = data_len;
    return -1;
  }
  b->ents[b->len++] = (mw_logbatch_ent_t){.stream = stream,
                                          .line_len = (uint32_t)len,
                                          .meta_len = (uint32_t)mlen,
                                          .ts_ns = ts_ns,
                                          .line_off = loff,
                                          .meta_off = moff};
  b->line_bytes += len;
  return 0;
}

size_t mw_logbatch_len(const mw_logbatch_t *b) { return b->len; }
size_t mw_logbatch_streams(const mw_logbatch_t *b) { return b->nstreams; }
size_t mw_logbatch_bytes(const mw_logbatch_t *b) { return b->line_bytes; }

size_t mw_logbatch_mem(const mw_logbatch_t *b) {
  return sizeof *b + b->cap * sizeof *b->ents + b->streams_cap * sizeof *b->streams +
         b->index_cap * sizeof *b->index + b->data_cap;
}

const uint8_t *mw_logbatch_stream_labels(const mw_logbatch_t *b, uint32_t s, size_t *len) {
  if (s >= b->nstreams) {
    *len = 0;
    return NULL;
  }
  *len = b->streams[s].len;
  return b->data + b->streams[s].off;
}

void mw_logbatch_entry(const mw_logbatch_t *b, size_t i, mw_logentry_t *e) {
  const mw_logbatch_ent_t *x = &b->ents[i];
  *e = (mw_logentry_t){.stream = x->stream,
                       .line_len = x->line_len,
                       .meta_len = x->meta_len,
                       .ts_ns = x->ts_ns,
                       .line = (const char *)b->data + x->line_off,
                       .meta = b->data + x->meta_off};
}

/* --- FFI ------------------------------------------------------------------ */

mw_logbatch_t *mw_ffi_logbatch_new(void) { return mw_logbatch_new(); }
void mw_ffi_logbatch_free(mw_logbatch_t *b) { mw_logbatch_free(b); }
void mw_ffi_logbatch_reset(mw_logbatch_t *b) { mw_logbatch_reset(b); }

int64_t mw_ffi_logbatch_stream(mw_logbatch_t *b, const char *pairs, size_t len, char *err,
                               size_t errlen) {
  mw_label_t *ls = NULL;
  uint8_t *enc = NULL;
  size_t ls_cap = 0, enc_cap = 0, elen;
  int64_t r = -1;
  if (mw_labels_from_pairs(pairs, len, &ls, &ls_cap, &enc, &enc_cap, &elen, err, errlen) == 0) {
    r = mw_logbatch_stream(b, enc, elen);
    if (r < 0)
      snprintf(err, errlen, "out of memory or more than %u streams in a batch",
               MW_LOGBATCH_MAX_STREAMS);
  }
  free(ls);
  free(enc);
  return r;
}

int mw_ffi_logbatch_add(mw_logbatch_t *b, uint32_t stream, int64_t ts_ns, const char *line,
                        size_t len, const char *meta, size_t mlen) {
  return mw_logbatch_add(b, stream, ts_ns, line, len, (const uint8_t *)meta, mlen);
}

size_t mw_ffi_logbatch_len(const mw_logbatch_t *b) { return b->len; }
size_t mw_ffi_logbatch_streams(const mw_logbatch_t *b) { return b->nstreams; }
size_t mw_ffi_logbatch_bytes(const mw_logbatch_t *b) { return b->line_bytes; }

const uint8_t *mw_ffi_logbatch_stream_labels(const mw_logbatch_t *b, uint32_t s, size_t *len) {
  return mw_logbatch_stream_labels(b, s, len);
}

int mw_ffi_logbatch_entry(const mw_logbatch_t *b, size_t i, mw_logentry_t *e) {
  if (i >= b->len) return -1;
  mw_logbatch_entry(b, i, e);
  return 0;
}
