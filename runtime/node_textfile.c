/* node_textfile.c: the textfile collector (node_exporter 1.5
 * collector/textfile.go; Alloy's `textfile { directory }`): the *.prom files
 * of directory (a glob of directories too, as filepath.Glob), in name
 * order, parsed with moonwatch's exposition parser (runtime/expfmt.h, text
 * format, legacy names) and reported as client_golang would convert them:
 * counters, gauges and untyped samples as they are, summaries and histograms
 * put together from their quantile / le, _sum and _count lines; a family
 * without HELP gets "Metric read from <file>, <file>..." (every file that has
 * it). node_textfile_mtime_seconds{file} for each file read, and
 * node_textfile_scrape_error (1 when a directory or a file could not be
 * read or parsed, or a file has timestamps: that file is skipped whole). The
 * collector itself always succeeds; "" reads nothing.
 *
 * The families are raw families (node_raw.c): a family may have different
 * label names per series, summaries and histograms keep each series' points.
 * A family of two files with another type or HELP, or a name another
 * collector reports, is dropped from the later file (client_golang refuses
 * them). Each file keeps its parser cache from one collection to the next
 * (an unchanged line costs a hash lookup).
 *
 * Differences with node_exporter's TextParser, which is stricter in places
 * and keeps what Prometheus drops: a label with an empty value is dropped
 * (`a=""`, as Prometheus ingests it; node_exporter writes it, and adds a=""
 * to series of a family that lack a label others have); a second HELP or a
 * TYPE after the family's samples is accepted; what the Prometheus parser
 * refuses fails the file (e.g. a repeated label name, as TextParser). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch.h"
#include "expfmt.h"
#include "node.h"
#include "scrapecache.h"
#include "series.h"

#define NO_TS INT64_MIN /* the default timestamp: a sample with another one had its own */
#define BAD_POINT "failed to parse textfile data from \"%s\": a quantile or le label is not a float"

typedef struct {
  const char *name, *help;
  size_t name_len, help_len;
  int type; /* MW_NODE_RAW_* */
} tf_meta_t;

typedef struct {
  char *path;
  mw_scrapecache_t *cache;
  mw_batch_t *batch;
  uint64_t seen; /* the last collection that listed it */
  int ok;        /* parsed by this collection */
  double mtime;
  tf_meta_t *meta; /* this parse's families, sorted by name */
  size_t nmeta, meta_cap;
} tf_file_t;

typedef struct {
  char *name, *files; /* family name, "a.prom, b.prom" */
  size_t name_len, files_len;
} tf_name_t;

/* A summary or histogram series being put together. */
typedef struct {
  const char *fam, *help;
  size_t fam_len, help_len;
  int type;
  uint64_t hash;
  size_t lab, nlab; /* labels in the state's label pool */
  double *pts;      /* (key, value) pairs */
  size_t npts, cap;
  double sum;
  uint64_t count;
} tf_group_t;

struct mw_node_textfile {
  tf_file_t *files;
  size_t nfiles, files_cap;
  uint64_t epoch;
  tf_name_t *names;
  size_t nnames, names_cap;
  int32_t *name_idx; /* open addressing: name index + 1 */
  size_t name_idx_size;
  mw_label_t *pool; /* labels of the current file's series */
  size_t npool, pool_cap;
  tf_group_t *groups;
  size_t ngroups, groups_cap;
  int32_t *group_idx;
  size_t group_idx_size;
};

static void file_free(tf_file_t *f) {
  free(f->path);
  mw_batch_free(f->batch);
  mw_scrapecache_free(f->cache);
  free(f->meta);
}

void mw_node_textfile_free(struct mw_node_textfile *t) {
  if (!t) return;
  for (size_t i = 0; i < t->nfiles; i++)
    file_free(&t->files[i]);
  free(t->files);
  for (size_t i = 0; i < t->nnames; i++) {
    free(t->names[i].name);
    free(t->names[i].files);
  }
  free(t->names);
  free(t->name_idx);
  free(t->pool);
  for (size_t i = 0; i < t->ngroups; i++)
    free(t->groups[i].pts);
  free(t->groups);
  free(t->group_idx);
  free(t);
}

static int grow(void **arr, size_t *cap, size_t need, size_t sz) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 16;
  while (c < need)
    c *= 2;
  void *a = realloc(*arr, c * sz);
  if (!a) return -1;
  *arr = a;
  *cap = c;
  return 0;
}

static uint64_t hash_bytes(uint64_t h, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

/* --- paths ------------------------------------------------------------------ */

/* Go's filepath.Clean, in place. */
static void go_clean(char *p) {
  size_t n = strlen(p), w = 0, r = 0, dotdot = 0;
  int rooted = n && p[0] == '/';
  if (n == 0) {
    strcpy(p, ".");
    return;
  }
  if (rooted) {
    w = 1;
    r = 1;
    dotdot = 1;
  }
  while (r < n) {
    if (p[r] == '/') {
      r++;
    } else if (p[r] == '.' && (r + 1 == n || p[r + 1] == '/')) {
      r++;
    } else if (p[r] == '.' && p[r + 1] == '.' && (r + 2 == n || p[r + 2] == '/')) {
      r += 2;
      if (w > dotdot) {
        w--;
        while (w > dotdot && p[w] != '/')
          w--;
      } else if (!rooted) {
        if (w > 0) p[w++] = '/';
        p[w++] = '.';
        p[w++] = '.';
        dotdot = w;
      }
    } else {
      if ((rooted && w != 1) || (!rooted && w != 0)) p[w++] = '/';
      for (; r < n && p[r] != '/'; r++)
        p[w++] = p[r];
    }
  }
  if (w == 0) p[w++] = '.';
  p[w] = '\0';
}

/* filepath.Join(dir, name): malloc'd, NULL on OOM. */
static char *go_join(const char *dir, const char *name) {
  size_t dl = strlen(dir), nl = strlen(name);
  char *p = malloc(dl + nl + 3);
  if (!p) return NULL;
  if (dl == 0)
    memcpy(p, name, nl + 1);
  else
    snprintf(p, dl + nl + 3, "%s/%s", dir, name);
  go_clean(p);
  return p;
}

/* --- per-file state ---------------------------------------------------------- */

static tf_file_t *file_get(struct mw_node_textfile *t, const char *path) {
  for (size_t i = 0; i < t->nfiles; i++)
    if (strcmp(t->files[i].path, path) == 0) return &t->files[i];
  if (grow((void **)&t->files, &t->files_cap, t->nfiles + 1, sizeof *t->files) < 0) return NULL;
  tf_file_t *f = &t->files[t->nfiles];
  memset(f, 0, sizeof *f);
  f->path = strdup(path);
  f->cache = mw_scrapecache_new();
  f->batch = mw_batch_new(NULL);
  if (!f->path || !f->cache || !f->batch) {
    file_free(f);
    return NULL;
  }
  t->nfiles++;
  return f;
}

static int meta_type(int t) {
  switch (t) {
  case MW_METRIC_COUNTER: return MW_NODE_RAW_COUNTER;
  case MW_METRIC_GAUGE: return MW_NODE_RAW_GAUGE;
  case MW_METRIC_SUMMARY: return MW_NODE_RAW_SUMMARY;
  case MW_METRIC_HISTOGRAM: return MW_NODE_RAW_HISTOGRAM;
  default: return MW_NODE_RAW_UNTYPED;
  }
}

static int cmp_meta(const void *a, const void *b) {
  const tf_meta_t *x = a, *y = b;
  size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
  int c = memcmp(x->name, y->name, n);
  return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

static const tf_meta_t *meta_find(const tf_file_t *f, const char *name, size_t len) {
  tf_meta_t key = {name, NULL, len, 0, 0};
  return f->nmeta ? bsearch(&key, f->meta, f->nmeta, sizeof key, cmp_meta) : NULL;
}

/* Parses body into f's batch and metadata; 0, or -1 with err. */
static int file_parse(tf_file_t *f, const char *body, size_t len, char *err, size_t errlen) {
  char msg[256];
  mw_expfmt_stats_t st;
  f->nmeta = 0;
  if (mw_expfmt_parse(f->cache, f->batch, body, len, MW_EXPFMT_TEXT, NO_TS,
                      MW_EXPFMT_NO_STALE | MW_EXPFMT_LEGACY_NAMES, &st, msg, sizeof msg) < 0) {
    snprintf(err, errlen, "failed to parse textfile data from \"%s\": %s", f->path, msg);
    return -1;
  }
  const int64_t *ts = mw_batch_timestamps(f->batch);
  for (size_t i = 0, n = mw_batch_len(f->batch); i < n; i++)
    if (ts[i] != NO_TS) {
      snprintf(err, errlen,
               "textfile \"%s\" contains unsupported client-side timestamps, skipping entire file",
               f->path);
      return -1;
    }
  size_t it = 0;
  mw_scrapecache_meta_t m;
  while (mw_scrapecache_meta_next(f->cache, &it, &m)) {
    if (grow((void **)&f->meta, &f->meta_cap, f->nmeta + 1, sizeof *f->meta) < 0) {
      snprintf(err, errlen, "out of memory");
      return -1;
    }
    f->meta[f->nmeta++] = (tf_meta_t){m.name, m.help, m.name_len, m.help_len, meta_type(m.type)};
  }
  qsort(f->meta, f->nmeta, sizeof *f->meta, cmp_meta);
  return 0;
}

/* --- classification (TextParser's setOrCreateCurrentMF) ------------------------ */

enum { PART_VALUE, PART_POINT, PART_SUM, PART_COUNT };

typedef struct {
  const char *fam, *help;
  size_t fam_len, help_len;
  int type, part;
} tf_class_t;

static int ends_with(const char *s, size_t n, const char *suf, size_t k) {
  return n > k && memcmp(s + n - k, suf, k) == 0;
}

static void classify(const tf_file_t *f, const char *name, size_t n, tf_class_t *c) {
  const tf_meta_t *m = meta_find(f, name, n);
  *c = (tf_class_t){name, "", n, 0, MW_NODE_RAW_UNTYPED, PART_VALUE};
  if (m) {
    c->type = m->type;
    c->help = m->help;
    c->help_len = m->help_len;
    c->part = m->type == MW_NODE_RAW_SUMMARY || m->type == MW_NODE_RAW_HISTOGRAM ? PART_POINT
                                                                                 : PART_VALUE;
    return;
  }
  size_t k = ends_with(name, n, "_sum", 4) ? 4 : ends_with(name, n, "_count", 6) ? 6 : 0;
  int bucket = !k && ends_with(name, n, "_bucket", 7);
  if (!k && !bucket) return;
  m = meta_find(f, name, n - (bucket ? 7 : k));
  if (!m || (m->type != MW_NODE_RAW_HISTOGRAM && (bucket || m->type != MW_NODE_RAW_SUMMARY)))
    return;
  *c = (tf_class_t){m->name,     m->help, m->name_len,
                    m->help_len, m->type, bucket ? PART_POINT : k == 4 ? PART_SUM : PART_COUNT};
}

/* The label set of sample i without __name__ (and without the summary's
 * quantile / the histogram's le, whose value goes to *key): labels appended
 * to t->pool from *first; *name gets __name__. 0, -1 OOM. */
static int sample_labels(struct mw_node_textfile *t, const tf_file_t *f, size_t i, mw_label_t *name,
                         const char *special, mw_label_t *key, size_t *first) {
  size_t len, pos = 0;
  const uint32_t ref = mw_batch_refs(f->batch)[i];
  const uint8_t *enc = mw_series_labels(mw_batch_series(f->batch), ref, &len);
  mw_label_t l;
  *first = t->npool;
  memset(name, 0, sizeof *name);
  if (key) memset(key, 0, sizeof *key);
  while (enc && mw_labels_next(enc, len, &pos, &l) == 1) {
    if (l.name_len == 8 && memcmp(l.name, "__name__", 8) == 0) {
      *name = l;
      continue;
    }
    if (special && key && l.name_len == strlen(special) &&
        memcmp(l.name, special, l.name_len) == 0) {
      *key = l;
      continue;
    }
    if (grow((void **)&t->pool, &t->pool_cap, t->npool + 1, sizeof *t->pool) < 0) return -1;
    t->pool[t->npool++] = l;
  }
  return 0;
}

/* --- the families-to-files map (HELP of families without one) -------------------- */

static tf_name_t *name_find(struct mw_node_textfile *t, const char *name, size_t len, int add) {
  uint64_t h = hash_bytes(1469598103934665603ull, name, len);
  if (t->name_idx_size) {
    for (size_t k = h & (t->name_idx_size - 1); t->name_idx[k];
         k = (k + 1) & (t->name_idx_size - 1)) {
      tf_name_t *e = &t->names[t->name_idx[k] - 1];
      if (e->name_len == len && memcmp(e->name, name, len) == 0) return e;
    }
  }
  if (!add) return NULL;
  if (grow((void **)&t->names, &t->names_cap, t->nnames + 1, sizeof *t->names) < 0) return NULL;
  if ((t->nnames + 1) * 2 > t->name_idx_size) {
    size_t size = t->name_idx_size ? t->name_idx_size * 2 : 64;
    int32_t *idx = calloc(size, sizeof *idx);
    if (!idx) return NULL;
    for (size_t i = 0; i < t->nnames; i++) {
      size_t k =
          hash_bytes(1469598103934665603ull, t->names[i].name, t->names[i].name_len) & (size - 1);
      while (idx[k])
        k = (k + 1) & (size - 1);
      idx[k] = (int32_t)i + 1;
    }
    free(t->name_idx);
    t->name_idx = idx;
    t->name_idx_size = size;
  }
  tf_name_t *e = &t->names[t->nnames];
  e->name = malloc(len + 1);
  e->files = NULL;
  e->files_len = 0;
  if (!e->name) return NULL;
  memcpy(e->name, name, len);
  e->name[len] = '\0';
  e->name_len = len;
  size_t k = h & (t->name_idx_size - 1);
  while (t->name_idx[k])
    k = (k + 1) & (t->name_idx_size - 1);
  t->name_idx[k] = (int32_t)t->nnames + 1;
  t->nnames++;
  return e;
}

static void names_reset(struct mw_node_textfile *t) {
  for (size_t i = 0; i < t->nnames; i++) {
    free(t->names[i].name);
    free(t->names[i].files);
  }
  t->nnames = 0;
  if (t->name_idx) memset(t->name_idx, 0, t->name_idx_size * sizeof *t->name_idx);
}

/* metricsNamesToFiles: appends f's path to every family name it has (once).
 * Also what TextParser refuses and the Prometheus parser does not: a
 * summary's quantile or a histogram's le that is not a float (1: the file
 * fails). 0, -1 out of memory. */
static int file_names(struct mw_node_textfile *t, const tf_file_t *f) {
  size_t pl = strlen(f->path);
  for (size_t i = 0, n = mw_batch_len(f->batch); i < n; i++) {
    mw_label_t name, key;
    size_t first;
    tf_class_t c;
    if (sample_labels(t, f, i, &name, NULL, NULL, &first) < 0) return -1;
    t->npool = first;
    classify(f, name.value, name.value_len, &c);
    const char *special = c.type == MW_NODE_RAW_SUMMARY     ? "quantile"
                          : c.type == MW_NODE_RAW_HISTOGRAM ? "le"
                                                            : NULL;
    if (special) {
      double k;
      if (sample_labels(t, f, i, &name, special, &key, &first) < 0) return -1;
      t->npool = first;
      if (c.part == PART_POINT && key.value_len &&
          mw_expfmt_parse_float(key.value, key.value_len, &k) < 0)
        return 1;
    }
    tf_name_t *e = name_find(t, c.fam, c.fam_len, 1);
    if (!e) return -1;
    if (e->files_len >= pl && memcmp(e->files + e->files_len - pl, f->path, pl) == 0 &&
        (e->files_len == pl || memcmp(e->files + e->files_len - pl - 2, ", ", 2) == 0))
      continue; /* this file is already the last one listed */
    char *nf = realloc(e->files, e->files_len + pl + 3);
    if (!nf) return -1;
    if (e->files_len) {
      memcpy(nf + e->files_len, ", ", 2);
      e->files_len += 2;
    }
    memcpy(nf + e->files_len, f->path, pl + 1);
    e->files_len += pl;
    e->files = nf;
  }
  return 0;
}

/* --- conversion into raw families ------------------------------------------------ */

static uint64_t to_u64(double v) {
  if (!(v >= 0)) return 0;
  if (v >= 18446744073709551616.0) return UINT64_MAX;
  return (uint64_t)v;
}

/* The help a family gets: its HELP, else "Metric read from <files>". */
static const char *help_of(struct mw_node_textfile *t, const tf_class_t *c, char **tmp,
                           size_t *len) {
  if (c->help_len) {
    *len = c->help_len;
    return c->help;
  }
  tf_name_t *e = name_find(t, c->fam, c->fam_len, 0);
  const char *files = e && e->files ? e->files : "";
  size_t fl = e ? e->files_len : 0;
  free(*tmp);
  *tmp = malloc(fl + 18);
  if (!*tmp) return NULL;
  memcpy(*tmp, "Metric read from ", 17);
  memcpy(*tmp + 17, files, fl);
  (*tmp)[17 + fl] = '\0';
  *len = 17 + fl;
  return *tmp;
}

static tf_group_t *group_find(struct mw_node_textfile *t, const tf_class_t *c, const char *help,
                              size_t help_len, size_t first, size_t nlab) {
  uint64_t h = hash_bytes(1469598103934665603ull, c->fam, c->fam_len);
  for (size_t i = 0; i < nlab; i++) {
    const mw_label_t *l = &t->pool[first + i];
    h = hash_bytes(h, l->name, l->name_len) * 31 + 1;
    h = hash_bytes(h, l->value, l->value_len) * 31 + 2;
  }
  if (t->group_idx_size) {
    for (size_t k = h & (t->group_idx_size - 1); t->group_idx[k];
         k = (k + 1) & (t->group_idx_size - 1)) {
      tf_group_t *g = &t->groups[t->group_idx[k] - 1];
      if (g->hash != h || g->nlab != nlab || g->fam_len != c->fam_len ||
          memcmp(g->fam, c->fam, c->fam_len) != 0)
        continue;
      size_t i = 0;
      for (; i < nlab; i++) {
        const mw_label_t *a = &t->pool[g->lab + i], *b = &t->pool[first + i];
        if (a->name_len != b->name_len || a->value_len != b->value_len ||
            memcmp(a->name, b->name, a->name_len) || memcmp(a->value, b->value, a->value_len))
          break;
      }
      if (i == nlab) return g;
    }
  }
  if (grow((void **)&t->groups, &t->groups_cap, t->ngroups + 1, sizeof *t->groups) < 0) return NULL;
  if ((t->ngroups + 1) * 2 > t->group_idx_size) {
    size_t size = t->group_idx_size ? t->group_idx_size * 2 : 64;
    int32_t *idx = calloc(size, sizeof *idx);
    if (!idx) return NULL;
    for (size_t i = 0; i < t->ngroups; i++) {
      size_t k = t->groups[i].hash & (size - 1);
      while (idx[k])
        k = (k + 1) & (size - 1);
      idx[k] = (int32_t)i + 1;
    }
    free(t->group_idx);
    t->group_idx = idx;
    t->group_idx_size = size;
  }
  tf_group_t *g = &t->groups[t->ngroups];
  *g = (tf_group_t){c->fam, help, c->fam_len, help_len, c->type, h, first, nlab, NULL, 0, 0, 0, 0};
  size_t k = h & (t->group_idx_size - 1);
  while (t->group_idx[k])
    k = (k + 1) & (t->group_idx_size - 1);
  t->group_idx[k] = (int32_t)t->ngroups + 1;
  t->ngroups++;
  return g;
}

static void groups_reset(struct mw_node_textfile *t) {
  for (size_t i = 0; i < t->ngroups; i++)
    free(t->groups[i].pts);
  t->ngroups = 0;
  if (t->group_idx) memset(t->group_idx, 0, t->group_idx_size * sizeof *t->group_idx);
}

static int cmp_group_fam(const void *a, const void *b, void *ctx) {
  const tf_group_t *gs = ctx, *x = &gs[*(const size_t *)a], *y = &gs[*(const size_t *)b];
  size_t n = x->fam_len < y->fam_len ? x->fam_len : y->fam_len;
  int c = memcmp(x->fam, y->fam, n);
  if (!c) c = (x->fam_len > y->fam_len) - (x->fam_len < y->fam_len);
  return c ? c
           : (*(const size_t *)a > *(const size_t *)b) - (*(const size_t *)a < *(const size_t *)b);
}

static int has_label(const mw_label_t *ls, size_t n, const mw_label_t *l) {
  for (size_t i = 0; i < n; i++)
    if (ls[i].name_len == l->name_len && memcmp(ls[i].name, l->name, l->name_len) == 0) return 1;
  return 0;
}

/* Adds f's samples to raw as convertMetricFamily converts a file's
 * families: every series of a family gets the label names any of them has
 * (empty values for the missing ones). 0, -1 out of memory. */
static int file_convert(struct mw_node_textfile *t, mw_node_raw_t *raw, const tf_file_t *f) {
  char *tmp = NULL;
  size_t *order = NULL, names_cap = 0, ls_cap = 0;
  mw_label_t *names = NULL, *ls = NULL;
  int rc = -1, oom;
  t->npool = 0;
  groups_reset(t);
  const double *vals = mw_batch_values(f->batch);
  for (size_t i = 0, n = mw_batch_len(f->batch); i < n; i++) {
    mw_label_t name, key;
    size_t first;
    tf_class_t c;
    /* the name first: which label is special depends on the family */
    if (sample_labels(t, f, i, &name, NULL, NULL, &first) < 0) goto done;
    t->npool = first;
    classify(f, name.value, name.value_len, &c);
    const char *special = c.type == MW_NODE_RAW_SUMMARY     ? "quantile"
                          : c.type == MW_NODE_RAW_HISTOGRAM ? "le"
                                                            : NULL;
    if (sample_labels(t, f, i, &name, special, &key, &first) < 0) goto done;
    tf_group_t *g = group_find(t, &c, NULL, 0, first, t->npool - first);
    if (!g) goto done;
    if (g->lab != first) t->npool = first; /* an existing series: its labels are kept already */
    double v = vals[i];
    if (!special)
      g->sum = v; /* the value (the parser kept the first of a series' lines) */
    else if (c.part == PART_SUM)
      g->sum = v;
    else if (c.part == PART_COUNT)
      g->count = to_u64(v);
    else if (key.value_len) { /* no quantile / le: the series exists, no point */
      double k = 0;
      mw_expfmt_parse_float(key.value, key.value_len, &k); /* checked by file_names */
      if (grow((void **)&g->pts, &g->cap, g->npts * 2 + 2, sizeof *g->pts) < 0) goto done;
      g->pts[g->npts * 2] = k;
      g->pts[g->npts * 2 + 1] = v;
      g->npts++;
    }
  }
  if (!t->ngroups) {
    rc = 0;
    goto done;
  }
  /* family by family, in the order they came */
  order = malloc(t->ngroups * sizeof *order);
  if (!order) goto done;
  for (size_t i = 0; i < t->ngroups; i++)
    order[i] = i;
  qsort_r(order, t->ngroups, sizeof *order, cmp_group_fam, t->groups);
  for (size_t i = 0, j; i < t->ngroups; i = j) {
    tf_group_t *g0 = &t->groups[order[i]];
    size_t nnames = 0;
    for (j = i; j < t->ngroups; j++) {
      tf_group_t *g = &t->groups[order[j]];
      if (g->fam_len != g0->fam_len || memcmp(g->fam, g0->fam, g0->fam_len) != 0) break;
      for (size_t k = 0; k < g->nlab; k++) {
        const mw_label_t *l = &t->pool[g->lab + k];
        if (has_label(names, nnames, l)) continue;
        if (grow((void **)&names, &names_cap, nnames + 1, sizeof *names) < 0) goto done;
        names[nnames++] = *l;
      }
    }
    tf_class_t c = {g0->fam, "", g0->fam_len, 0, g0->type, 0};
    const tf_meta_t *m = meta_find(f, g0->fam, g0->fam_len);
    if (m) {
      c.help = m->help;
      c.help_len = m->help_len;
    }
    size_t hl;
    const char *help = help_of(t, &c, &tmp, &hl);
    if (!help) goto done;
    int fam = mw_node_raw_family(raw, g0->fam, g0->fam_len, help, hl, g0->type, &oom);
    if (oom) goto done;
    if (fam < 0) continue; /* another type or HELP than a family of an earlier file */
    if (grow((void **)&ls, &ls_cap, nnames ? nnames : 1, sizeof *ls) < 0) goto done;
    for (size_t k = i; k < j; k++) {
      tf_group_t *g = &t->groups[order[k]];
      size_t nl = g->nlab;
      memcpy(ls, &t->pool[g->lab], nl * sizeof *ls);
      for (size_t q = 0; q < nnames; q++)
        if (!has_label(ls, g->nlab, &names[q]))
          ls[nl++] = (mw_label_t){names[q].name, "", names[q].name_len, 0};
      int simple = g->type != MW_NODE_RAW_SUMMARY && g->type != MW_NODE_RAW_HISTOGRAM;
      if (mw_node_raw_add(raw, fam, ls, nl, simple ? g->sum : 0, g->pts, g->npts,
                          simple ? 0 : g->sum, g->count) < 0)
        goto done;
    }
  }
  rc = 0;
done:
  free(tmp);
  free(order);
  free(names);
  free(ls);
  return rc;
}

/* --- the collector ----------------------------------------------------------------- */

int mw_node_textfile_convert(mw_node_raw_t *raw, struct mw_node_textfile **state, const char *path,
                             const char *body, size_t len, char *err, size_t errlen) {
  if (!*state && !(*state = calloc(1, sizeof **state))) goto oom;
  struct mw_node_textfile *t = *state;
  names_reset(t);
  tf_file_t *f = file_get(t, path);
  if (!f) goto oom;
  if (file_parse(f, body, len, err, errlen) < 0) return -1;
  int r = file_names(t, f);
  if (r < 0) goto oom;
  if (r > 0) {
    snprintf(err, errlen, BAD_POINT, path);
    return -1;
  }
  if (file_convert(t, raw, f) < 0) goto oom;
  return 0;
oom:
  snprintf(err, errlen, "out of memory");
  return -1;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.prom entries of dir, sorted; -1 (errno) when dir cannot be listed. */
static int list_prom(const char *dir, char ***out, size_t *n) {
  size_t cap = 0;
  *out = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (!d) return -1;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (l < 5 || strcmp(e->d_name + l - 5, ".prom") != 0) continue;
    if (*n == cap) {
      size_t c = cap ? cap * 2 : 16;
      char **a = realloc(*out, c * sizeof *a);
      if (!a) break;
      *out = a;
      cap = c;
    }
    if (!((*out)[*n] = strdup(e->d_name))) break;
    (*n)++;
  }
  closedir(d);
  if (*n) qsort(*out, *n, sizeof **out, cmp_str);
  return 0;
}

/* Reads a whole file through an open fd into a malloc'd buffer. */
static char *read_fd(int fd, size_t *len) {
  size_t cap = 65536, n = 0;
  char *b = malloc(cap);
  while (b) {
    if (cap - n < 4096) {
      char *nb = cap < (256u << 20) ? realloc(b, cap * 2) : NULL;
      if (!nb) {
        free(b);
        errno = ENOMEM;
        return NULL;
      }
      b = nb;
      cap *= 2;
    }
    ssize_t r = read(fd, b + n, cap - n - 1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      free(b);
      errno = e;
      return NULL;
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  if (b) {
    b[n] = '\0';
    *len = n;
  }
  return b;
}

int mw_node_collect_textfile(mw_node_scrape_t *s) {
  mw_node_t *n = s->node;
  int errored = 0;
  char msg[512];
  if (!n->textfile && !(n->textfile = calloc(1, sizeof *n->textfile)))
    return mw_node_fail(s, "out of memory");
  struct mw_node_textfile *t = n->textfile;
  t->epoch++;
  names_reset(t);

  /* filepath.Glob(dir); no match or a bad pattern: the path itself */
  glob_t g;
  memset(&g, 0, sizeof g);
  const char *one[1] = {n->textfile_dir};
  char *const *dirs = (char *const *)one;
  size_t ndirs = 1;
  int globbed =
      n->textfile_dir[0] && glob(n->textfile_dir, GLOB_PERIOD, NULL, &g) == 0 && g.gl_pathc > 0;
  if (globbed) {
    dirs = g.gl_pathv;
    ndirs = g.gl_pathc;
  }
  /* pass 1: parse every file, and note which files each family comes from */
  tf_file_t **order = NULL;
  size_t nord = 0, ord_cap = 0;
  for (size_t di = 0; di < ndirs; di++) {
    char **names;
    size_t nn;
    if (list_prom(dirs[di], &names, &nn) < 0) {
      if (dirs[di][0]) {
        errored = 1;
        mw_node_note(s, "failed to read textfile collector directory %s: %s", dirs[di],
                     strerror(errno));
      }
      continue;
    }
    for (size_t i = 0; i < nn; i++) {
      char *path = go_join(dirs[di], names[i]);
      tf_file_t *f = path ? file_get(t, path) : NULL;
      free(path);
      if (!f || grow((void **)&order, &ord_cap, nord + 1, sizeof *order) < 0) {
        errored = 1;
        mw_node_note(s, "out of memory");
        continue;
      }
      f->seen = t->epoch;
      f->ok = 0;
      int fd = open(f->path, O_RDONLY | O_CLOEXEC);
      size_t len = 0;
      char *body = fd >= 0 ? read_fd(fd, &len) : NULL;
      if (!body) {
        errored = 1;
        mw_node_note(s, "failed to open textfile data file \"%s\": %s", f->path, strerror(errno));
        if (fd >= 0) close(fd);
        continue;
      }
      int r = file_parse(f, body, len, msg, sizeof msg);
      free(body);
      struct stat st;
      if (r == 0 && fstat(fd, &st) < 0) { /* the families count, the file has no mtime */
        errored = 1;
        mw_node_note(s, "failed to stat \"%s\": %s", f->path, strerror(errno));
        f->mtime = -1;
      } else if (r == 0) {
        f->mtime = (double)st.st_mtim.tv_sec;
      }
      close(fd);
      if (r < 0) {
        errored = 1;
        mw_node_note(s, "%s", msg);
        continue;
      }
      r = file_names(t, f);
      if (r != 0) {
        errored = 1;
        if (r < 0)
          mw_node_note(s, "out of memory");
        else
          mw_node_note(s, BAD_POINT, f->path);
        continue;
      }
      f->ok = 1;
      order[nord++] = f;
    }
    for (size_t i = 0; i < nn; i++)
      free(names[i]);
    free(names);
  }
  if (globbed) globfree(&g);

  /* pass 2: the families, file by file */
  int32_t mt =
      mw_node_family(s, "node_textfile_mtime_seconds",
                     "Unixtime mtime of textfiles successfully read.", MW_METRICS_GAUGE, "file");
  for (size_t i = 0; i < nord; i++) {
    tf_file_t *f = order[i];
    if (file_convert(t, s->raw, f) < 0) {
      errored = 1;
      mw_node_note(s, "out of memory");
      continue;
    }
    if (f->mtime >= 0) mw_node_put(s, mt, f->mtime, f->path);
  }
  free(order);
  mw_node_put1(s, "node_textfile_scrape_error",
               "1 if there was an error opening or reading a file, 0 otherwise", MW_METRICS_GAUGE,
               errored);

  /* files gone since: their parser state goes too */
  size_t w = 0;
  for (size_t i = 0; i < t->nfiles; i++) {
    if (t->files[i].seen == t->epoch) {
      mw_batch_clear(t->files[i].batch); /* no memory held between collections */
      t->files[w++] = t->files[i];
    } else {
      file_free(&t->files[i]);
    }
  }
  t->nfiles = w;
  return 0;
}
