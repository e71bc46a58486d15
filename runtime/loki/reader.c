/* loki/reader.c: an endpoint's reader of the logs queue: queue records -> PushRequest. */
#include "loki/reader.h"

#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/grow.h"
#include "base/labels.h"
#include "loki/push.h"
#include "storage/logs_queue.h"

/* One request of a read: one tenant's entries. */
typedef struct {
  mw_lokienc_t *enc;
  char *tenant; /* from __tenant_id__ ("" none) */
  size_t tenant_cap;
  uint32_t tenant_len;
  mw_lokipart_t out;
} mw_lokireader_part_t;

struct mw_lokireader {
  mw_logq_t *q;
  mw_rlog_cursor_t *cur;
  mw_lokireader_part_t part[MW_LOKI_PARTS];
  uint32_t nparts;
  mw_logq_dec_t dec;
  int64_t *smap; /* record stream -> request stream of its part (-1: not yet) */
  size_t smap_cap;
  uint8_t *spart; /* record stream -> its part (0xff: not yet) */
  size_t spart_cap;
  mw_label_t *stenant; /* record stream -> its __tenant_id__ value (value_len 0: none) */
  size_t stenant_cap;
  uint8_t *strip; /* a stream's labels without __tenant_id__ */
  size_t strip_cap;
  uint64_t corruptions, committed_entries, read_entries;
};

int mw_lokireader_open(mw_logq_t *q, const char *name, mw_lokireader_t **out, char *err,
                       size_t errlen) {
  *out = NULL;
  if (mw_logq_closed(q)) {
    mw_seterr(err, errlen, "logs queue closed");
    return -1;
  }
  mw_lokireader_t *r = calloc(1, sizeof *r);
  if (!r) {
    mw_seterr(err, errlen, "out of memory");
    return -1;
  }
  if (mw_rlog_cursor_open(mw_logq_log(q), name, &r->cur, err, errlen) != 0) {
    free(r);
    return -1;
  }
  r->cur->save_every_commit =
      1; /* one commit per request: a crash resends only what was in flight */
  r->q = q;
  mw_logq_ref(q, 1);
  *out = r;
  return 0;
}

void mw_lokireader_close(mw_lokireader_t *r) {
  if (!r) return;
  mw_rlog_cursor_close(r->cur);
  for (size_t i = 0; i < MW_LOKI_PARTS; i++) {
    mw_lokienc_free(r->part[i].enc);
    free(r->part[i].tenant);
  }
  mw_logq_dec_free(&r->dec);
  free(r->smap);
  free(r->spart);
  free(r->stenant);
  free(r->strip);
  mw_logq_ref(r->q, -1);
  free(r);
}

const char *mw_lokireader_note(const mw_lokireader_t *r) { return r->cur->note; }

/* *ls without its __tenant_id__ label (in r->strip), when it has one. 0, -1 on OOM. */
static int mw_lokireader_strip_tenant(mw_lokireader_t *r, const uint8_t **ls, size_t *len) {
  mw_label_t l;
  size_t pos = 0, out = 0;
  if (!mw_labels_get(*ls, *len, MW_LOKI_TENANT_LABEL, sizeof MW_LOKI_TENANT_LABEL - 1, &l))
    return 0;
  if (mw_grow((void **)&r->strip, &r->strip_cap, *len, 1) != 0) return -1;
  while (mw_labels_next(*ls, *len, &pos, &l) == 1) {
    if (l.name_len == sizeof MW_LOKI_TENANT_LABEL - 1 &&
        memcmp(l.name, MW_LOKI_TENANT_LABEL, l.name_len) == 0)
      continue;
    memcpy(r->strip + out, l.name, l.name_len);
    out += l.name_len;
    r->strip[out++] = MW_LABELS_SEP;
    memcpy(r->strip + out, l.value, l.value_len);
    out += l.value_len;
    r->strip[out++] = MW_LABELS_SEP;
  }
  *ls = r->strip;
  *len = out;
  return 0;
}

/* A record at pos could not be read back whole: skipped (the rest of its segment). */
static void mw_lokireader_corrupt(mw_lokireader_t *r, mw_rlog_pos_t *pos) {
  r->corruptions++;
  mw_rlog_skip_corrupt(mw_logq_log(r->q), pos);
}

int mw_lokireader_next(mw_lokireader_t *r, const mw_lokireq_opts_t *o, mw_lokireq_t *req, char *err,
                       size_t errlen) {
  memset(req, 0, sizeof *req);
  if (mw_logq_closed(r->q)) {
    mw_seterr(err, errlen, "logs queue closed");
    return -1;
  }
  mw_rlog_t *log = mw_logq_log(r->q);
  r->nparts = 0;
  mw_rlog_pos_t pos = r->cur->read;
  uint64_t bytes = 0, n = 0;
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  int full = 0;
  while (!full && mw_rlog_seek(log, &pos)) {
    mw_rlog_rec_t rec;
    int rc = mw_rlog_read(r->cur, &pos, &rec, err, errlen);
    if (rc < 0) return -1;
    if (rc == 0 || rec.len < 8) {
      mw_lokireader_corrupt(r, &pos);
      continue;
    }
    rc = mw_logq_dec_begin(&r->dec, rec.p, rec.len - 8);
    if (rc == -2) goto oom;
    if (rc != 0) {
      mw_lokireader_corrupt(r, &pos);
      continue;
    }
    if (mw_grow((void **)&r->smap, &r->smap_cap, r->dec.nstreams ? r->dec.nstreams : 1,
                sizeof *r->smap) != 0)
      goto oom;
    if (mw_grow((void **)&r->stenant, &r->stenant_cap, r->dec.nstreams ? r->dec.nstreams : 1,
                sizeof *r->stenant) != 0 ||
        mw_grow((void **)&r->spart, &r->spart_cap, r->dec.nstreams ? r->dec.nstreams : 1, 1) != 0)
      goto oom;
    for (uint32_t s = 0; s < r->dec.nstreams; s++) {
      r->smap[s] = -1;
      r->spart[s] = 0xff;
      /* a value too long for Loki is sent as it is (Loki refuses it), as Alloy does: never
       * to the endpoint's tenant */
      if (!mw_labels_get(r->dec.stream[s], r->dec.stream_len[s], MW_LOKI_TENANT_LABEL,
                         sizeof MW_LOKI_TENANT_LABEL - 1, &r->stenant[s]))
        r->stenant[s].value_len = 0; /* none: the endpoint's */
    }
    mw_logentry_t e;
    uint32_t k = 0;
    while ((rc = mw_logq_dec_next(&r->dec, &e)) == 1) {
      if (k++ < pos.idx) continue; /* sent before */
      uint64_t size = (uint64_t)e.line_len + e.meta_len;
      if (n && bytes + size > o->batch_size) {
        full = 1;
        break;
      }
      /* one tenant per request: __tenant_id__ (stage.tenant) names it, as Alloy's; a read
       * takes the entries of up to MW_LOKI_PARTS tenants, a request each */
      if (r->spart[e.stream] == 0xff) {
        const mw_label_t *t = &r->stenant[e.stream];
        uint32_t p = 0;
        while (p < r->nparts && (r->part[p].tenant_len != t->value_len ||
                                 memcmp(r->part[p].tenant, t->value, t->value_len) != 0))
          p++;
        if (p == MW_LOKI_PARTS) {
          full = 1;
          break;
        }
        if (p == r->nparts) {
          mw_lokireader_part_t *pt = &r->part[p];
          if ((!pt->enc && !(pt->enc = mw_lokienc_new())) ||
              mw_lokienc_reset(pt->enc, o->external_labels, o->external_labels_len,
                               o->max_streams) != 0 ||
              mw_grow((void **)&pt->tenant, &pt->tenant_cap, t->value_len ? t->value_len : 1, 1) !=
                  0)
            goto oom;
          memcpy(pt->tenant, t->value, t->value_len);
          pt->tenant_len = t->value_len;
          memset(&pt->out, 0, sizeof pt->out);
          r->nparts++;
        }
        r->spart[e.stream] = (uint8_t)p;
      }
      mw_lokireader_part_t *pt = &r->part[r->spart[e.stream]];
      int64_t s = r->smap[e.stream];
      if (s < 0) {
        const uint8_t *ls = r->dec.stream[e.stream];
        size_t ls_len = r->dec.stream_len[e.stream];
        if (mw_lokireader_strip_tenant(r, &ls, &ls_len) != 0) goto oom;
        s = mw_lokienc_stream(pt->enc, ls, ls_len);
        if (s == -1) goto oom;
        if (s == -2) { /* max_streams: the request ends before this entry */
          full = 1;
          break;
        }
        r->smap[e.stream] = s;
      }
      if (mw_lokienc_entry(pt->enc, (uint32_t)s, e.ts_ns, e.line, e.line_len, e.meta, e.meta_len) !=
          0)
        goto oom;
      bytes += size;
      req->line_bytes += e.line_len;
      pt->out.entries++;
      pt->out.bytes += size;
      pt->out.line_bytes += e.line_len;
      n++;
      if (e.ts_ns < lo) lo = e.ts_ns;
      if (e.ts_ns > hi) hi = e.ts_ns;
      pos.idx = k;
    }
    if (full) break;
    if (rc < 0) {
      /* entries before the damage were taken; the rest of the segment is skipped */
      mw_lokireader_corrupt(r, &pos);
      continue;
    }
    pos.off += MW_RLOG_REC_HDR + rec.len;
    pos.idx = 0;
  }
  r->cur->read = pos;
  if (!n) return 0;
  for (uint32_t p = 0; p < r->nparts; p++) {
    mw_lokireader_part_t *pt = &r->part[p];
    const uint8_t *body;
    size_t len;
    if (mw_lokienc_finish(pt->enc, o->raw != 0, &body, &len, err, errlen) != 0) return -1;
    if (o->raw == 2 && mw_lokienc_json(pt->enc, body, len, &body, &len, err, errlen) != 0)
      return -1;
    pt->out.body = body;
    pt->out.body_len = len;
    pt->out.streams = (uint32_t)mw_lokienc_streams(pt->enc);
    pt->out.tenant = pt->tenant;
    pt->out.tenant_len = pt->tenant_len;
    req->streams += pt->out.streams;
  }
  req->body = r->part[0].out.body;
  req->body_len = r->part[0].out.body_len;
  req->entries = n;
  req->bytes = bytes;
  req->full = full;
  req->min_ts_ns = lo;
  req->max_ts_ns = hi;
  req->tenant = r->part[0].tenant;
  req->tenant_len = r->part[0].tenant_len;
  req->parts = r->nparts;
  r->read_entries += n;
  return 1;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

int mw_lokireader_part(mw_lokireader_t *r, uint32_t i, mw_lokipart_t *out) {
  if (i >= r->nparts) return -1;
  *out = r->part[i].out;
  return 0;
}

int mw_lokireader_commit(mw_lokireader_t *r, char *err, size_t errlen) {
  if (mw_logq_closed(r->q)) return 0;
  r->committed_entries = r->read_entries;
  return mw_rlog_cursor_commit(r->cur, r->cur->read, err, errlen);
}

void mw_lokireader_rewind(mw_lokireader_t *r) {
  r->cur->read = r->cur->committed;
  r->read_entries = r->committed_entries;
}

void mw_lokireader_stats(mw_lokireader_t *r, mw_lokireader_stats_t *st) {
  memset(st, 0, sizeof *st);
  st->corruptions = r->corruptions;
  st->entries_before_open = r->cur->items_before_open;
  st->entries_dropped = r->cur->items_dropped;
  st->cursor_errors = r->cur->cursor_errors;
  if (mw_logq_closed(r->q)) return;
  mw_rlog_t *log = mw_logq_log(r->q);
  size_t n;
  const mw_rlog_seg_t *segs = mw_rlog_segments(log, &n);
  mw_rlog_pos_t c = r->cur->committed;
  uint64_t pending = 0;
  for (size_t i = 0; i < n; i++) {
    if (segs[i].index < c.seg) continue;
    if (segs[i].index == c.seg)
      pending += mw_rlog_items_from(log, c.seg, c.off, c.idx);
    else
      pending += segs[i].items;
  }
  st->pending = pending;
}

/* --- FFI -------------------------------------------------------------- */

int mw_ffi_lokireader_open(mw_logq_t *q, const char *name, mw_lokireader_t **out, char *err,
                           size_t errlen) {
  return mw_lokireader_open(q, name, out, err, errlen);
}
void mw_ffi_lokireader_close(mw_lokireader_t *r) { mw_lokireader_close(r); }
int mw_ffi_lokireader_next(mw_lokireader_t *r, const mw_lokireq_opts_t *o, mw_lokireq_t *req,
                           char *err, size_t errlen) {
  return mw_lokireader_next(r, o, req, err, errlen);
}
int mw_ffi_lokireader_commit(mw_lokireader_t *r, char *err, size_t errlen) {
  return mw_lokireader_commit(r, err, errlen);
}
void mw_ffi_lokireader_rewind(mw_lokireader_t *r) { mw_lokireader_rewind(r); }
int mw_ffi_lokireader_part(mw_lokireader_t *r, uint32_t i, mw_lokipart_t *out) {
  return mw_lokireader_part(r, i, out);
}
void mw_ffi_lokireader_stats(mw_lokireader_t *r, mw_lokireader_stats_t *st) {
  mw_lokireader_stats(r, st);
}
const char *mw_ffi_lokireader_note(const mw_lokireader_t *r) { return mw_lokireader_note(r); }
