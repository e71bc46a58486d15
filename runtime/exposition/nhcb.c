/* exposition/nhcb.c: classic histograms of text bodies into NHCB samples (see
 * exposition/nhcb.h). One pass groups the histogram families' samples by their labels
 * without le (an open-addressing table of the groups' encoded label sets), a second builds
 * and appends a histogram per group, a third drops the converted classic samples. */
#include "exposition/nhcb.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/grow.h"
#include "base/labels.h"
#include "model/histogram.h"
#include "model/series.h"

typedef struct {
  double le, v;
} nh_bucket_t;

typedef struct {
  size_t enc_off;
  uint32_t enc_len;
  uint64_t hash;
  int gauge;
  int has_count, has_sum, bad;
  double count, sum;
  int64_t ts;
  int ts_from_count;
  nh_bucket_t *bk;
  size_t nbk, bk_cap;
} nh_group_t;

typedef struct {
  nh_group_t *g;
  size_t n, cap;
  uint32_t *slots; /* group index + 1, 0 empty */
  size_t nslots;
  uint8_t *enc;
  size_t enc_len, enc_cap;
} nh_t;

/* The suffix of name (len n) that makes it a classic histogram series: 1 _bucket, 2
 * _count, 3 _sum (_gcount, _gsum), with *fam_len the family name's length; 0 for none. */
static int nh_suffix(const char *name, size_t n, size_t *fam_len) {
  static const struct {
    const char *s;
    int kind;
  } sfx[] = {{"_bucket", 1}, {"_count", 2}, {"_sum", 3}, {"_gcount", 2}, {"_gsum", 3}};
  for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
    size_t l = strlen(sfx[i].s);
    if (n > l && memcmp(name + n - l, sfx[i].s, l) == 0) {
      *fam_len = n - l;
      return sfx[i].kind;
    }
  }
  return 0;
}

/* The group of encoded labels enc (len bytes), made if new; -1 on OOM. */
static long nh_group(nh_t *t, const uint8_t *enc, size_t len, int gauge) {
  uint64_t h = mw_labels_hash(enc, len);
  if (t->n * 2 >= t->nslots) {
    size_t ns = t->nslots ? t->nslots * 2 : 64;
    uint32_t *sl = calloc(ns, sizeof *sl);
    if (!sl) return -1;
    for (size_t i = 0; i < t->n; i++) {
      size_t k = t->g[i].hash & (ns - 1);
      while (sl[k])
        k = (k + 1) & (ns - 1);
      sl[k] = (uint32_t)(i + 1);
    }
    free(t->slots);
    t->slots = sl;
    t->nslots = ns;
  }
  size_t k = h & (t->nslots - 1);
  for (; t->slots[k]; k = (k + 1) & (t->nslots - 1)) {
    nh_group_t *g = &t->g[t->slots[k] - 1];
    if (g->hash == h && g->enc_len == len && memcmp(t->enc + g->enc_off, enc, len) == 0)
      return (long)(t->slots[k] - 1);
  }
  if (mw_grow((void **)&t->g, &t->cap, t->n + 1, sizeof *t->g) != 0 ||
      mw_grow((void **)&t->enc, &t->enc_cap, t->enc_len + len, 1) != 0)
    return -1;
  memcpy(t->enc + t->enc_len, enc, len);
  t->g[t->n] =
      (nh_group_t){.enc_off = t->enc_len, .enc_len = (uint32_t)len, .hash = h, .gauge = gauge};
  t->enc_len += len;
  t->slots[k] = (uint32_t)(t->n + 1);
  return (long)t->n++;
}

static int nh_le_cmp(const void *a, const void *b) {
  double x = ((const nh_bucket_t *)a)->le, y = ((const nh_bucket_t *)b)->le;
  return (x > y) - (x < y);
}

/* Group g as a custom-bucket histogram into h (arrays in the caller's scratch: cv, cnt,
 * dl, sp). 0, or -1 when it does not convert. */
static int nh_build(nh_group_t *g, mw_histogram_t *h, double *cv, double *cnt, int64_t *dl,
                    mw_hspan_t *sp) {
  if (g->bad || g->nbk == 0) return -1;
  qsort(g->bk, g->nbk, sizeof *g->bk, nh_le_cmp);
  size_t nb = 0;
  double inf = NAN;
  for (size_t i = 0; i < g->nbk; i++) {
    double le = g->bk[i].le;
    if (isnan(le) || (i && le == g->bk[i - 1].le)) return -1;
    if (isinf(le) && le > 0) {
      inf = g->bk[i].v;
      continue;
    }
    if (isinf(le)) return -1;
    cv[nb] = le;
    cnt[nb++] = g->bk[i].v;
  }
  double total = g->has_count ? g->count : inf;
  if (isnan(total)) return -1;
  cnt[nb] = total;
  int is_float = 0;
  for (size_t i = nb + 1; i > 0; i--) {
    if (isnan(cnt[i - 1]) || cnt[i - 1] < 0) return -1;
    if (cnt[i - 1] != floor(cnt[i - 1]) || cnt[i - 1] > 9.0e15) is_float = 1;
    if (i - 1 > 0) {
      if (cnt[i - 1] < cnt[i - 2]) return -1;
      cnt[i - 1] -= cnt[i - 2];
    }
  }
  int64_t prev = 0;
  for (size_t i = 0; !is_float && i <= nb; i++) {
    dl[i] = (int64_t)cnt[i] - prev;
    prev = (int64_t)cnt[i];
  }
  sp[0] = (mw_hspan_t){.offset = 0, .length = (uint32_t)(nb + 1)};
  *h = (mw_histogram_t){.schema = MW_HIST_SCHEMA_CUSTOM,
                        .is_float = (uint8_t)is_float,
                        .reset_hint = g->gauge ? MW_HIST_RESET_GAUGE : MW_HIST_RESET_UNKNOWN,
                        .count = is_float ? 0 : (uint64_t)total,
                        .fcount = is_float ? total : 0,
                        .sum = g->has_sum ? g->sum : 0,
                        .n_pos_spans = 1,
                        .pos_spans = sp,
                        .n_pos = (uint32_t)(nb + 1),
                        .pos_deltas = is_float ? NULL : dl,
                        .pos_counts = is_float ? cnt : NULL,
                        .n_custom = (uint32_t)nb,
                        .custom_values = cv};
  char msg[8];
  return mw_histogram_validate(h, msg, sizeof msg) == 0 ? 0 : -1;
}

int mw_nhcb_convert(mw_scrapecache_t *c, mw_batch_t *b, int keep_classic, int64_t dts,
                    uint32_t bucket_limit, mw_expfmt_stats_t *st, char *err, size_t errlen) {
  mw_series_t *s = mw_scrapecache_series(c);
  size_t n = mw_batch_len(b);
  nh_t t = {0};
  long *gi = malloc((n ? n : 1) * sizeof *gi); /* each sample's group, -1: none */
  mw_label_t *ls = NULL;
  size_t ls_cap = 0, maxb = 0;
  uint8_t *enc = NULL;
  size_t enc_cap = 0;
  int rc = -1;
  double *cv = NULL, *cnt = NULL;
  int64_t *dl = NULL;
  if (!gi) goto oom;
  for (size_t i = 0; i < n; i++) {
    gi[i] = -1;
    size_t len, pos = 0;
    const uint8_t *e = mw_series_labels(s, mw_batch_refs(b)[i], &len);
    if (!e) goto oom; /* a batch's refs are live: only out of memory */
    mw_label_t name = {0}, le = {0}, l;
    size_t nl = 0;
    int has_le = 0;
    while (mw_labels_next(e, len, &pos, &l) == 1) {
      if (mw_grow((void **)&ls, &ls_cap, nl + 1, sizeof *ls) != 0) goto oom;
      if (l.name_len == 8 && memcmp(l.name, "__name__", 8) == 0) {
        name = l;
        continue;
      }
      if (l.name_len == 2 && memcmp(l.name, "le", 2) == 0) {
        le = l;
        has_le = 1;
        continue;
      }
      ls[nl++] = l;
    }
    size_t fl;
    int kind = name.value ? nh_suffix(name.value, name.value_len, &fl) : 0;
    if (!kind || (kind == 1) != has_le) continue;
    int type = mw_scrapecache_meta_type(c, name.value, fl);
    if (type != MW_METRIC_HISTOGRAM && type != MW_METRIC_GAUGEHISTOGRAM) continue;
    double lev = 0;
    if (kind == 1 && mw_expfmt_parse_float(le.value, le.value_len, &lev) != 0) continue;
    if (mw_grow((void **)&ls, &ls_cap, nl + 1, sizeof *ls) != 0) goto oom;
    ls[nl++] = (mw_label_t){
        .name = "__name__", .name_len = 8, .value = name.value, .value_len = (uint32_t)fl};
    mw_labels_sort(ls, nl);
    size_t need = mw_labels_encoded_size(ls, nl), elen;
    if (mw_grow((void **)&enc, &enc_cap, need, 1) != 0) goto oom;
    if (mw_labels_encode(ls, nl, enc, need, &elen, NULL, 0) != 0) continue;
    long g = nh_group(&t, enc, elen, type == MW_METRIC_GAUGEHISTOGRAM);
    if (g < 0) goto oom;
    nh_group_t *gr = &t.g[g];
    double v = mw_batch_values(b)[i];
    int64_t ts = mw_batch_timestamps(b)[i];
    if (kind == 1) {
      if (mw_grow((void **)&gr->bk, &gr->bk_cap, gr->nbk + 1, sizeof *gr->bk) != 0) goto oom;
      gr->bk[gr->nbk++] = (nh_bucket_t){.le = lev, .v = v};
      if (gr->nbk > maxb) maxb = gr->nbk;
    } else if (kind == 2) {
      gr->has_count = 1;
      gr->count = v;
      gr->ts = ts;
      gr->ts_from_count = 1;
    } else {
      gr->has_sum = 1;
      gr->sum = v;
    }
    if (!gr->ts_from_count && gr->nbk + gr->has_count + gr->has_sum == 1) gr->ts = ts;
    gi[i] = g;
  }
  if (t.n == 0) {
    rc = 0;
    goto done;
  }
  cv = malloc((maxb + 1) * sizeof *cv);
  cnt = malloc((maxb + 1) * sizeof *cnt);
  dl = malloc((maxb + 1) * sizeof *dl);
  if (!cv || !cnt || !dl) goto oom;
  int *ok = calloc(t.n, sizeof *ok);
  if (!ok) goto oom;
  for (size_t k = 0; k < t.n; k++) {
    nh_group_t *g = &t.g[k];
    mw_histogram_t h;
    mw_hspan_t sp[1];
    if (nh_build(g, &h, cv, cnt, dl, sp) != 0) continue;
    if (bucket_limit && h.n_pos > bucket_limit) {
      free(ok);
      mw_seterr(err, errlen, "histogram bucket limit exceeded");
      goto fail;
    }
    const uint8_t *e = t.enc + g->enc_off;
    uint32_t ref;
    int added;
    char msg[128];
    if (mw_series_add(s, e, g->enc_len, g->hash, &ref, &added, msg, sizeof msg) != 0) {
      free(ok);
      mw_seterr(err, errlen, "%s", msg);
      goto fail;
    }
    int m = mw_scrapecache_mark_kind(c, ref, g->ts != dts, h.is_float ? 2 : 1);
    if (m < 0) {
      free(ok);
      goto oom;
    }
    ok[k] = 1;
    if (added) st->series_added++;
    if (m == 0) {
      st->duplicates++;
      continue;
    }
    if (mw_batch_add_histogram(b, ref, g->ts, &h, msg, sizeof msg) != 0) {
      free(ok);
      mw_seterr(err, errlen, "%s", msg);
      goto fail;
    }
    st->histograms++;
    st->samples++;
  }
  if (!keep_classic) {
    /* Drop the converted groups' classic samples (exemplars follow their samples). */
    uint8_t *keep = malloc(n ? n : 1);
    int good = keep != NULL;
    for (size_t i = 0; good && i < n; i++) {
      keep[i] = !(gi[i] >= 0 && ok[gi[i]]);
      if (keep[i]) continue;
      /* Kept in the cache, never sent: no staleness marker when it goes; a series new in
       * this scrape is not counted as added (its histogram is). */
      uint32_t r = mw_batch_refs(b)[i];
      if (!mw_scrapecache_was_seen(c, r) && st->series_added) st->series_added--;
      mw_scrapecache_quiet(c, r);
    }
    if (good) st->samples -= n - mw_batch_keep(b, keep);
    free(keep);
    if (!good) {
      free(ok);
      goto oom;
    }
  }
  free(ok);
  rc = 0;
  goto done;
oom:
  mw_oom(err, errlen);
fail:
  rc = -1;
done:
  for (size_t k = 0; k < t.n; k++)
    free(t.g[k].bk);
  free(t.g);
  free(t.slots);
  free(t.enc);
  free(gi);
  free(ls);
  free(enc);
  free(cv);
  free(cnt);
  free(dl);
  return rc;
}
