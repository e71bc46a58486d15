/* scrape/scrape.c: one scrape target: body and report series with the target's labels. */
#include "scrape/scrape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "exposition/parse.h"
#include "exposition/scrapecache.h"
#include "model/batch.h"

#define MW_EXPORTED "exported_"
#define MW_EXPORTED_LEN 9

struct mw_scrape_target {
  mw_scrape_opts_t opts;
  char *label_bytes;  /* the target labels' names and values */
  mw_label_t *labels; /* sorted by name, no __ labels */
  size_t nlabels;
  mw_scrapecache_t *body, *report;
  mw_batch_t *batch, *report_batch;
  /* mutate scratch: labels, and names made with the exported_ prefix */
  mw_label_t *out;
  size_t out_cap;
  char **names;
  size_t nnames, names_cap;
  /* A parse in steps (mw_ffi_scrape_parse_begin), and options set meanwhile
   * (applied when it ends: the cache must not change rules midway). */
  mw_expfmt_parser_t *parser;
  mw_scrape_opts_t next_opts;
  int has_next_opts;
  char perr[512]; /* the parse's error, until it ends */
};

static int mw_label_cmp(const void *a, const void *b) {
  const mw_label_t *x = a, *y = b;
  size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
  int c = memcmp(x->name, y->name, n);
  if (c) return c;
  return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/* The value of name among out[0..n), or NULL (absent or empty). */
static mw_label_t *mw_find(mw_label_t *ls, size_t n, const char *name, size_t len) {
  for (size_t i = 0; i < n; i++)
    if (ls[i].name_len == len && memcmp(ls[i].name, name, len) == 0)
      return ls[i].value_len ? &ls[i] : NULL;
  return NULL;
}

/* Sets name=value in out[0..*n) (replacing or appending; capacity is ensured
 * by the caller). */
static void mw_set(mw_label_t *ls, size_t *n, const char *name, uint32_t name_len,
                   const char *value, uint32_t value_len) {
  for (size_t i = 0; i < *n; i++)
    if (ls[i].name_len == name_len && memcmp(ls[i].name, name, name_len) == 0) {
      ls[i].value = value;
      ls[i].value_len = value_len;
      return;
    }
  ls[(*n)++] =
      (mw_label_t){.name = name, .name_len = name_len, .value = value, .value_len = value_len};
}

static void mw_free_names(mw_scrape_target_t *t) {
  for (size_t i = 0; i < t->nnames; i++)
    free(t->names[i]);
  t->nnames = 0;
}

/* A name "exported_" + name kept until the next mutate; NULL on OOM. */
static char *mw_exported(mw_scrape_target_t *t, const char *name, size_t len) {
  if (t->nnames == t->names_cap) {
    size_t cap = t->names_cap ? 2 * t->names_cap : 8;
    char **p = realloc(t->names, cap * sizeof *p);
    if (!p) return NULL;
    t->names = p;
    t->names_cap = cap;
  }
  char *s = malloc(MW_EXPORTED_LEN + len);
  if (!s) return NULL;
  memcpy(s, MW_EXPORTED, MW_EXPORTED_LEN);
  memcpy(s + MW_EXPORTED_LEN, name, len);
  t->names[t->nnames++] = s;
  return s;
}

static int mw_conflict_cmp(const void *a, const void *b) {
  const mw_label_t *x = a, *y = b;
  return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

int mw_scrape_mutate(mw_scrape_target_t *t, const mw_label_t *in, size_t n, const mw_label_t **out,
                     size_t *out_n, char *err, size_t errlen) {
  mw_free_names(t);
  /* worst case: every label, every target label, and one exported_ per target label */
  size_t cap = n + 2 * t->nlabels + 1;
  if (t->out_cap < cap) {
    mw_label_t *p = realloc(t->out, 2 * cap * sizeof *p);
    if (!p) goto oom;
    t->out = p;
    t->out_cap = cap;
  }
  mw_label_t *ls = t->out, *conflicts = t->out + cap;
  size_t k = n, nc = 0;
  memcpy(ls, in, n * sizeof *in);
  for (size_t i = 0; i < t->nlabels; i++) {
    const mw_label_t *l = &t->labels[i];
    mw_label_t *have = mw_find(ls, k, l->name, l->name_len);
    if (t->opts.honor_labels) {
      if (!have) mw_set(ls, &k, l->name, l->name_len, l->value, l->value_len);
      continue;
    }
    if (have) conflicts[nc++] = *have;
    mw_set(ls, &k, l->name, l->name_len, l->value, l->value_len);
  }
  /* resolveConflictingExposedLabels: shortest names first, exported_ until free */
  qsort(conflicts, nc, sizeof *conflicts, mw_conflict_cmp);
  for (size_t i = 0; i < nc; i++) {
    const char *name = conflicts[i].name;
    size_t len = conflicts[i].name_len;
    for (;;) {
      char *nn = mw_exported(t, name, len);
      if (!nn) goto oom;
      name = nn;
      len += MW_EXPORTED_LEN;
      if (!mw_find(ls, k, name, len)) {
        mw_set(ls, &k, name, (uint32_t)len, conflicts[i].value, conflicts[i].value_len);
        break;
      }
    }
  }
  size_t m = 0;
  for (size_t i = 0; i < k; i++)
    if (ls[i].value_len) ls[m++] = ls[i];
  qsort(ls, m, sizeof *ls, mw_label_cmp);
  /* verifyLabelLimits */
  const mw_label_t *metric = mw_find(ls, m, "__name__", 8);
  int ml = metric ? (int)(metric->value_len > 50 ? 50 : metric->value_len) : 0;
  const char *mn = metric ? metric->value : "";
  if (t->opts.label_limit && m > t->opts.label_limit) {
    mw_seterr(err, errlen, "label_limit exceeded (metric: %.*s, number of labels: %zu, limit: %u)",
              ml, mn, m, t->opts.label_limit);
    return -1;
  }
  for (size_t i = 0; i < m; i++) {
    if (t->opts.label_name_length_limit && ls[i].name_len > t->opts.label_name_length_limit) {
      mw_seterr(err, errlen,
                "label_name_length_limit exceeded (metric: %.*s, label name: %.*s, length: %u, "
                "limit: %u)",
                ml, mn, (int)(ls[i].name_len > 50 ? 50 : ls[i].name_len), ls[i].name,
                ls[i].name_len, t->opts.label_name_length_limit);
      return -1;
    }
    if (t->opts.label_value_length_limit && ls[i].value_len > t->opts.label_value_length_limit) {
      mw_seterr(err, errlen,
                "label_value_length_limit exceeded (metric: %.*s, label name: %.*s, value: "
                "\"%.*s\", length: %u, limit: %u)",
                ml, mn, (int)(ls[i].name_len > 50 ? 50 : ls[i].name_len), ls[i].name,
                (int)(ls[i].value_len > 50 ? 50 : ls[i].value_len), ls[i].value, ls[i].value_len,
                t->opts.label_value_length_limit);
      return -1;
    }
  }
  *out = ls;
  *out_n = m;
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

static int mw_mutate_cb(void *ctx, const mw_label_t *in, size_t n, const mw_label_t **out,
                        size_t *out_n, char *err, size_t errlen) {
  return mw_scrape_mutate(ctx, in, n, out, out_n, err, errlen);
}

/* The labels of a report series (up, ...), as Prometheus's
 * mutateReportSampleLabels: the target's labels over the series' own,
 * whatever honor_labels says, and no label limit (a scrape that fails on a
 * limit still reports up 0). */
static int mw_report_mutate_cb(void *ctx, const mw_label_t *in, size_t n, const mw_label_t **out,
                               size_t *out_n, char *err, size_t errlen) {
  mw_scrape_target_t *t = ctx;
  size_t cap = n + t->nlabels;
  if (t->out_cap < cap) {
    mw_label_t *p = realloc(t->out, 2 * cap * sizeof *p);
    if (!p) {
      mw_seterr(err, errlen, "out of memory");
      return -1;
    }
    t->out = p;
    t->out_cap = cap;
  }
  mw_label_t *ls = t->out;
  size_t k = n;
  memcpy(ls, in, n * sizeof *in);
  for (size_t i = 0; i < t->nlabels; i++) {
    const mw_label_t *l = &t->labels[i];
    mw_set(ls, &k, l->name, l->name_len, l->value, l->value_len);
  }
  qsort(ls, k, sizeof *ls, mw_label_cmp);
  *out = ls;
  *out_n = k;
  return 0;
}

static uint32_t mw_flags(const mw_scrape_opts_t *o) {
  return (o->honor_timestamps ? 0 : MW_EXPFMT_IGNORE_TIMESTAMPS) |
         (o->track_timestamps_staleness ? MW_EXPFMT_TRACK_TS_STALENESS : 0) |
         (o->utf8_names ? 0 : MW_EXPFMT_LEGACY_NAMES) |
         (o->native_histograms ? MW_EXPFMT_NATIVE_HISTOGRAMS : 0) |
         (o->classic_histograms ? MW_EXPFMT_CLASSIC_HISTOGRAMS : 0) |
         (o->convert_nhcb ? MW_EXPFMT_NHCB : 0);
}

mw_scrape_target_t *mw_ffi_scrape_target_new(const char *labels, size_t len,
                                             const mw_scrape_opts_t *opts, char *err,
                                             size_t errlen) {
  mw_scrape_target_t *t = calloc(1, sizeof *t);
  if (!t) goto oom;
  t->opts = *opts;
  t->label_bytes = malloc(len ? len : 1);
  if (!t->label_bytes) goto oom;
  memcpy(t->label_bytes, labels, len);
  size_t count = 0;
  for (size_t i = 0; i < len; i++)
    count += (unsigned char)labels[i] == MW_LABELS_SEP;
  t->labels = calloc(count / 2 + 1, sizeof *t->labels);
  if (!t->labels) goto oom;
  for (size_t i = 0; i < len;) {
    const char *name = t->label_bytes + i, *sep = memchr(name, MW_LABELS_SEP, len - i);
    if (!sep) goto bad;
    const char *value = sep + 1,
               *end = memchr(value, MW_LABELS_SEP, len - (size_t)(value - t->label_bytes));
    if (!end) goto bad;
    size_t nl = (size_t)(sep - name), vl = (size_t)(end - value);
    i = (size_t)(end - t->label_bytes) + 1;
    if (nl >= 2 && name[0] == '_' && name[1] == '_') continue;
    if (opts->utf8_names ? !mw_labels_valid_utf8_name(name, nl) : !mw_labels_valid_name(name, nl)) {
      mw_seterr(err, errlen, "invalid target label name \"%.*s\"", (int)nl, name);
      goto fail;
    }
    if (vl == 0) continue;
    t->labels[t->nlabels++] = (mw_label_t){
        .name = name, .name_len = (uint32_t)nl, .value = value, .value_len = (uint32_t)vl};
  }
  qsort(t->labels, t->nlabels, sizeof *t->labels, mw_label_cmp);
  t->body = mw_scrapecache_new();
  t->report = mw_scrapecache_new();
  if (!t->body || !t->report) goto oom;
  mw_scrapecache_set_mutate(t->body, mw_mutate_cb, t);
  mw_scrapecache_set_mutate(t->report, mw_report_mutate_cb, t);
  t->batch = mw_batch_new(mw_scrapecache_series(t->body));
  t->report_batch = mw_batch_new(mw_scrapecache_series(t->report));
  if (!t->batch || !t->report_batch) goto oom;
  mw_batch_set_meta(t->batch, t->body); /* the body's TYPE/HELP/UNIT go with its samples */
  return t;
bad:
  mw_seterr(err, errlen, "malformed target labels");
  goto fail;
oom:
  mw_seterr(err, errlen, "out of memory");
fail:
  mw_ffi_scrape_target_free(t);
  return NULL;
}

static void mw_apply_opts(mw_scrape_target_t *t, const mw_scrape_opts_t *opts);

/* Ends the parse in steps, if any: forgotten (abort) or applied. */
static void mw_parse_abort(mw_scrape_target_t *t) {
  if (!t->parser) return;
  mw_expfmt_abort(t->parser);
  t->parser = NULL;
  if (t->has_next_opts) mw_apply_opts(t, &t->next_opts);
  t->has_next_opts = 0;
}

void mw_ffi_scrape_target_free(mw_scrape_target_t *t) {
  if (!t) return;
  mw_parse_abort(t);
  mw_batch_free(t->batch);
  mw_batch_free(t->report_batch);
  mw_scrapecache_free(t->body);
  mw_scrapecache_free(t->report);
  mw_free_names(t);
  free(t->names);
  free(t->out);
  free(t->labels);
  free(t->label_bytes);
  free(t);
}

void mw_ffi_scrape_target_set_opts(mw_scrape_target_t *t, const mw_scrape_opts_t *opts) {
  if (t->parser) {
    t->next_opts = *opts;
    t->has_next_opts = 1;
    return;
  }
  mw_apply_opts(t, opts);
}

static void mw_apply_opts(mw_scrape_target_t *t, const mw_scrape_opts_t *opts) {
  const mw_scrape_opts_t *o = &t->opts;
  /* the body's cached series were labelled and checked under the old rules:
   * the next scrape labels and checks every series again (Prometheus starts a
   * new cache then) */
  if (o->honor_labels != opts->honor_labels || o->label_limit != opts->label_limit ||
      o->label_value_length_limit != opts->label_value_length_limit ||
      o->label_name_length_limit != opts->label_name_length_limit)
    mw_scrapecache_forget(t->body);
  /* the target labels were checked with utf8_names: a new target changes it */
  uint32_t utf8 = o->utf8_names;
  t->opts = *opts;
  t->opts.utf8_names = utf8;
}

/* The parse in steps ended with rc: the options set meanwhile apply, the
 * error goes to the caller. */
static int mw_parse_ended(mw_scrape_target_t *t, int rc, char *err, size_t errlen) {
  t->parser = NULL;
  if (t->has_next_opts) mw_apply_opts(t, &t->next_opts);
  t->has_next_opts = 0;
  if (rc != 0) mw_seterr(err, errlen, "%s", t->perr);
  return rc;
}

int mw_ffi_scrape_parse_begin(mw_scrape_target_t *t, const char *body, size_t len,
                              const char *content_type, int64_t ts_ms, mw_expfmt_stats_t *stats,
                              char *err, size_t errlen) {
  mw_parse_abort(t);
  memset(stats, 0, sizeof *stats);
  int used;
  int format = mw_expfmt_format(content_type, t->opts.fallback_format, &used, err, errlen);
  if (format < 0) {
    mw_ffi_scrape_fail(t, ts_ms);
    return -1;
  }
  /* Over the sample limit, the body fails at once: Prometheus rolls the
   * scrape back and appends an empty one, every series of this scrape goes
   * stale (the ones never sent are ignored downstream). */
  t->parser = mw_expfmt_begin(t->body, t->batch, body, len, format, ts_ms, mw_flags(&t->opts),
                              t->opts.sample_limit, stats, t->perr, sizeof t->perr);
  if (!t->parser) {
    mw_seterr(err, errlen, "%s", t->perr);
    mw_ffi_scrape_fail(t, ts_ms);
    return -1;
  }
  mw_expfmt_set_histograms(t->parser, t->opts.native_bucket_limit,
                           t->opts.native_min_bucket_factor);
  stats->fallback_used = used;
  return 0;
}

int mw_ffi_scrape_parse_step(mw_scrape_target_t *t, size_t max_bytes, char *err, size_t errlen) {
  if (!t->parser) {
    mw_seterr(err, errlen, "no parse in progress");
    return -1;
  }
  int rc = mw_expfmt_step(t->parser, max_bytes);
  return rc == 1 ? 1 : mw_parse_ended(t, rc, err, errlen);
}

int mw_ffi_scrape_parse_fail(mw_scrape_target_t *t, const char *why, char *err, size_t errlen) {
  if (!t->parser) {
    mw_seterr(err, errlen, "no parse in progress");
    return -1;
  }
  return mw_parse_ended(t, mw_expfmt_end(t->parser, -1, why), err, errlen);
}

void mw_ffi_scrape_parse_abort(mw_scrape_target_t *t) { mw_parse_abort(t); }

int mw_ffi_scrape_parse(mw_scrape_target_t *t, const char *body, size_t len,
                        const char *content_type, int64_t ts_ms, mw_expfmt_stats_t *stats,
                        char *err, size_t errlen) {
  mw_expfmt_stats_t local;
  if (!stats) stats = &local;
  if (mw_ffi_scrape_parse_begin(t, body, len, content_type, ts_ms, stats, err, errlen) != 0)
    return -1;
  return mw_ffi_scrape_parse_step(t, 0, err, errlen);
}

int mw_ffi_scrape_fail(mw_scrape_target_t *t, int64_t ts_ms) {
  mw_parse_abort(t);
  mw_expfmt_stats_t st;
  char err[64];
  return mw_expfmt_parse(t->body, t->batch, "", 0, MW_EXPFMT_TEXT, ts_ms, 0, &st, err, sizeof err);
}

static const char *const mw_report_names[] = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
    "scrape_timeout_seconds",
    "scrape_sample_limit",
    "scrape_body_size_bytes",
};

int mw_ffi_scrape_report(mw_scrape_target_t *t, int64_t ts_ms, const double *values, uint32_t n,
                         char *err, size_t errlen) {
  if (n != 5 && n != 8) {
    mw_seterr(err, errlen, "report: expected 5 or 8 values, got %u", n);
    return -1;
  }
  char body[1024];
  size_t len = 0;
  for (uint32_t i = 0; i < n; i++)
    len += (size_t)snprintf(body + len, sizeof body - len, "%s %.17g\n", mw_report_names[i],
                            values[i]);
  mw_expfmt_stats_t st;
  return mw_expfmt_parse(t->report, t->report_batch, body, len, MW_EXPFMT_TEXT, ts_ms, 0, &st, err,
                         errlen);
}

int mw_ffi_scrape_stale(mw_scrape_target_t *t, int64_t ts_ms) {
  mw_expfmt_stats_t st;
  char err[64];
  if (mw_ffi_scrape_fail(t, ts_ms) != 0) return -1;
  return mw_expfmt_parse(t->report, t->report_batch, "", 0, MW_EXPFMT_TEXT, ts_ms, 0, &st, err,
                         sizeof err);
}

mw_batch_t *mw_ffi_scrape_batch(mw_scrape_target_t *t) { return t->batch; }

mw_batch_t *mw_ffi_scrape_report_batch(mw_scrape_target_t *t) { return t->report_batch; }

void mw_ffi_scrape_clear(mw_scrape_target_t *t) {
  mw_batch_clear(t->batch);
  mw_batch_clear(t->report_batch);
}

size_t mw_ffi_scrape_series(const mw_scrape_target_t *t) {
  return mw_scrapecache_len(t->body) + mw_scrapecache_len(t->report);
}

size_t mw_ffi_scrape_mem(const mw_scrape_target_t *t) {
  return mw_scrapecache_mem(t->body) + mw_scrapecache_mem(t->report) + mw_batch_mem(t->batch) +
         mw_batch_mem(t->report_batch);
}

const mw_scrapecache_t *mw_ffi_scrape_target_cache(const mw_scrape_target_t *t) { return t->body; }
