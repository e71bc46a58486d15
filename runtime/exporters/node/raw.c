/* exporters/node/raw.c: raw families of one node collection. client_golang lets a
 * collector send metrics of one name with label names of their own per
 * series (the textfile collector converts whatever the files hold;
 * node_power_supply_info leaves out empty labels), summaries, and histograms
 * whose series have buckets of their own; the metrics registry has fixed
 * label names per family, histograms with one bucket layout per family and no
 * summaries. Those families are collected here, as client_golang's Gather
 * would see them, and written in the same format as exposition/write.c writes the
 * registry, to be merged into the output by name (mw_expose_write_extra).
 *
 * Storage: strings in an arena, series and their labels and points in
 * growable arrays addressed by index; everything is forgotten by
 * mw_node_raw_reset (the arena's memory is returned, the arrays' kept). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "base/grow.h"
#include "exporters/node/node.h"

typedef struct {
  const char *name, *help; /* arena, NUL-terminated */
  size_t name_len, help_len;
  int type;
  size_t rank; /* position by name, set when writing */
} raw_family_t;

typedef struct {
  uint32_t fam;
  uint32_t lab, nlab; /* labels[lab .. lab + nlab), sorted by name */
  uint32_t pt, npt;   /* points[2 * pt .. 2 * (pt + npt)) */
  uint32_t seq;       /* insertion order: the first of duplicates stays */
  double value, sum;
  uint64_t count;
} raw_series_t;

struct mw_node_raw {
  mw_arena_t arena;
  raw_family_t *fams;
  size_t nfams, fams_cap;
  int32_t *index; /* open addressing by name hash: family index + 1, 0 = empty */
  size_t index_size;
  raw_series_t *series;
  size_t nseries, series_cap;
  mw_label_t *labels;
  size_t nlabels, labels_cap;
  double *points; /* (bound or quantile, value) pairs */
  size_t npoints, points_cap;
};

mw_node_raw_t *mw_node_raw_new(void) {
  mw_node_raw_t *r = calloc(1, sizeof *r);
  if (r) mw_arena_init(&r->arena);
  return r;
}

void mw_node_raw_free(mw_node_raw_t *r) {
  if (!r) return;
  mw_arena_free(&r->arena);
  free(r->fams);
  free(r->index);
  free(r->series);
  free(r->labels);
  free(r->points);
  free(r);
}

void mw_node_raw_reset(mw_node_raw_t *r) {
  if (!r) return;
  mw_arena_free(&r->arena);
  r->nfams = r->nseries = r->nlabels = r->npoints = 0;
  if (r->index) memset(r->index, 0, r->index_size * sizeof *r->index);
}

/* Grows *arr (elements of size sz) to hold need; 0 or -1. */
/* mw_grow, with counts that fit the uint32_t indexes. */
static int grow(void **arr, size_t *cap, size_t need, size_t sz) {
  return need > UINT32_MAX ? -1 : mw_grow(arr, cap, need, sz);
}

static uint64_t hash_name(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

static int reindex(mw_node_raw_t *r, size_t size) {
  int32_t *t = calloc(size, sizeof *t);
  if (!t) return -1;
  for (size_t i = 0; i < r->nfams; i++) {
    size_t k = hash_name(r->fams[i].name, r->fams[i].name_len) & (size - 1);
    while (t[k])
      k = (k + 1) & (size - 1);
    t[k] = (int32_t)i + 1;
  }
  free(r->index);
  r->index = t;
  r->index_size = size;
  return 0;
}

static const char *dupz(mw_arena_t *a, const char *s, size_t n) {
  char *d = (char *)mw_arena_dup(a, s, n + 1);
  if (d) d[n] = '\0';
  return d;
}

/* The family named name[0..len), -1 if none. */
static int find_family(const mw_node_raw_t *r, const char *name, size_t len) {
  if (!r->index_size) return -1;
  size_t k = hash_name(name, len) & (r->index_size - 1);
  for (; r->index[k]; k = (k + 1) & (r->index_size - 1)) {
    const raw_family_t *f = &r->fams[r->index[k] - 1];
    if (f->name_len == len && memcmp(f->name, name, len) == 0) return r->index[k] - 1;
  }
  return -1;
}

static int has_suffix(const char *s, size_t n, const char *suf) {
  size_t k = strlen(suf);
  return n >= k && memcmp(s + n - k, suf, k) == 0;
}

/* client_golang's checkSuffixCollisions: x_count and x_sum collide with a
 * summary or histogram x, x_bucket with a histogram x. */
static int suffix_collision(const mw_node_raw_t *r, const char *name, size_t len, int type) {
  size_t base = has_suffix(name, len, "_count")    ? len - 6
                : has_suffix(name, len, "_sum")    ? len - 4
                : has_suffix(name, len, "_bucket") ? len - 7
                                                   : len;
  if (base != len) {
    int f = find_family(r, name, base);
    if (f >= 0 && ((r->fams[f].type == MW_NODE_RAW_SUMMARY && !has_suffix(name, len, "_bucket")) ||
                   r->fams[f].type == MW_NODE_RAW_HISTOGRAM))
      return 1;
  }
  if (type != MW_NODE_RAW_SUMMARY && type != MW_NODE_RAW_HISTOGRAM) return 0;
  static const char *const sufs[] = {"_count", "_sum", "_bucket"};
  char small[256], *buf = len + 8 <= sizeof small ? small : malloc(len + 8);
  int hit = 0;
  if (!buf) return 0; /* out of memory: not checked */
  memcpy(buf, name, len);
  for (int i = 0; !hit && i < (type == MW_NODE_RAW_HISTOGRAM ? 3 : 2); i++) {
    size_t k = strlen(sufs[i]);
    memcpy(buf + len, sufs[i], k);
    hit = find_family(r, buf, len + k) >= 0;
  }
  if (buf != small) free(buf);
  return hit;
}

int mw_node_raw_family(mw_node_raw_t *r, const char *name, size_t name_len, const char *help,
                       size_t help_len, int type, int *oom) {
  if (oom) *oom = 0;
  int found = find_family(r, name, name_len);
  if (found >= 0) {
    const raw_family_t *f = &r->fams[found];
    if (f->type != type || f->help_len != help_len || memcmp(f->help, help, help_len) != 0)
      return -1;
    return found;
  }
  if (suffix_collision(r, name, name_len, type)) return -1;
  if (r->nfams >= INT32_MAX - 1 ||
      grow((void **)&r->fams, &r->fams_cap, r->nfams + 1, sizeof *r->fams) < 0)
    goto oom;
  if ((r->nfams + 1) * 2 > r->index_size && reindex(r, r->index_size ? r->index_size * 2 : 64) < 0)
    goto oom;
  raw_family_t *f = &r->fams[r->nfams];
  f->name = dupz(&r->arena, name, name_len);
  f->help = dupz(&r->arena, help ? help : "", help ? help_len : 0);
  if (!f->name || !f->help) goto oom;
  f->name_len = name_len;
  f->help_len = help ? help_len : 0;
  f->type = type;
  size_t k = hash_name(name, name_len) & (r->index_size - 1);
  while (r->index[k])
    k = (k + 1) & (r->index_size - 1);
  r->index[k] = (int32_t)r->nfams + 1;
  return (int)r->nfams++;
oom:
  if (oom) *oom = 1;
  return -1;
}

int mw_node_raw_add(mw_node_raw_t *r, int fam, const mw_label_t *labels, size_t nlabels,
                    double value, const double *points, size_t npoints, double sum,
                    uint64_t count) {
  if (fam < 0 || (size_t)fam >= r->nfams) return 1;
  if (grow((void **)&r->series, &r->series_cap, r->nseries + 1, sizeof *r->series) < 0 ||
      /* one more than needed: the arrays exist once a series does (no arithmetic on NULL) */
      grow((void **)&r->labels, &r->labels_cap, r->nlabels + nlabels + 1, sizeof *r->labels) < 0 ||
      grow((void **)&r->points, &r->points_cap, r->npoints + 2 * npoints + 2, sizeof *r->points) <
          0)
    return -1;
  raw_series_t *s = &r->series[r->nseries];
  s->fam = (uint32_t)fam;
  s->lab = (uint32_t)r->nlabels;
  s->nlab = (uint32_t)nlabels;
  s->pt = (uint32_t)(r->npoints / 2);
  s->npt = (uint32_t)npoints;
  s->seq = (uint32_t)r->nseries;
  s->value = value;
  s->sum = sum;
  s->count = count;
  mw_label_t *ls = &r->labels[r->nlabels];
  for (size_t i = 0; i < nlabels; i++) {
    const char *n = dupz(&r->arena, labels[i].name, labels[i].name_len);
    const char *v = dupz(&r->arena, labels[i].value, labels[i].value_len);
    if (!n || !v) return -1;
    ls[i] = (mw_label_t){n, v, labels[i].name_len, labels[i].value_len};
  }
  mw_labels_sort(ls, nlabels);
  if (npoints) memcpy(&r->points[r->npoints], points, 2 * npoints * sizeof *points);
  r->nlabels += nlabels;
  r->npoints += 2 * npoints;
  r->nseries++;
  return 0;
}

/* --- writing ------------------------------------------------------------------ */

static int cmp_bytes(const char *a, size_t an, const char *b, size_t bn) {
  int c = memcmp(a, b, an < bn ? an : bn);
  return c ? c : (an > bn) - (an < bn);
}

static int cmp_fam(const void *a, const void *b, void *ctx) {
  const raw_family_t *fams = ctx;
  const raw_family_t *fa = &fams[*(const size_t *)a], *fb = &fams[*(const size_t *)b];
  return cmp_bytes(fa->name, fa->name_len, fb->name, fb->name_len);
}

/* client_golang's metricSorter: by family, then fewer labels first, then the
 * label values position by position; ties (same values, under other names
 * too) in insertion order, as Go's sort.Sort leaves them in families of up
 * to 12 series (insertion sort), and so the first of duplicates comes first. */
static int cmp_series(const void *a, const void *b, void *ctx) {
  const mw_node_raw_t *r = ctx;
  const raw_series_t *sa = a, *sb = b;
  size_t ra = r->fams[sa->fam].rank, rb = r->fams[sb->fam].rank;
  if (ra != rb) return ra < rb ? -1 : 1;
  if (sa->nlab != sb->nlab) return sa->nlab < sb->nlab ? -1 : 1;
  const mw_label_t *la = &r->labels[sa->lab], *lb = &r->labels[sb->lab];
  for (uint32_t i = 0; i < sa->nlab; i++) {
    int c = cmp_bytes(la[i].value, la[i].value_len, lb[i].value, lb[i].value_len);
    if (c) return c;
  }
  return sa->seq < sb->seq ? -1 : sa->seq > sb->seq;
}

/* Same family, label count and values (names aside): sorted next to each other. */
static int same_values(const mw_node_raw_t *r, const raw_series_t *a, const raw_series_t *b) {
  if (a->fam != b->fam || a->nlab != b->nlab) return 0;
  const mw_label_t *la = &r->labels[a->lab], *lb = &r->labels[b->lab];
  for (uint32_t i = 0; i < a->nlab; i++)
    if (cmp_bytes(la[i].value, la[i].value_len, lb[i].value, lb[i].value_len)) return 0;
  return 1;
}

static int same_labels(const mw_node_raw_t *r, const raw_series_t *a, const raw_series_t *b) {
  if (a->fam != b->fam || a->nlab != b->nlab) return 0;
  const mw_label_t *la = &r->labels[a->lab], *lb = &r->labels[b->lab];
  for (uint32_t i = 0; i < a->nlab; i++)
    if (cmp_bytes(la[i].name, la[i].name_len, lb[i].name, lb[i].name_len) ||
        cmp_bytes(la[i].value, la[i].value_len, lb[i].value, lb[i].value_len))
      return 0;
  return 1;
}

typedef struct {
  mw_expose_buf_t *b;
  int oom;
} out_t;

static void put(out_t *o, const char *s, size_t n) {
  if (o->oom || n == 0) return;
  mw_expose_buf_t *b = o->b;
  if (b->cap - b->len < n) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n)
      cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
      o->oom = 1;
      return;
    }
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
}

static void puts_(out_t *o, const char *s) { put(o, s, strlen(s)); }

/* expfmt's escaping: '\' and newline, and '"' when quotes. */
static void put_escaped(out_t *o, const char *s, size_t n, int quotes) {
  size_t start = 0;
  for (size_t i = 0; i < n; i++) {
    const char *rep = s[i] == '\\'            ? "\\\\"
                      : s[i] == '\n'          ? "\\n"
                      : quotes && s[i] == '"' ? "\\\""
                                              : NULL;
    if (!rep) continue;
    put(o, s + start, i - start);
    put(o, rep, 2);
    start = i + 1;
  }
  put(o, s + start, n - start);
}

static void put_float(out_t *o, double v, int om) {
  char tmp[32];
  put(o, tmp, mw_expose_fmt_float(tmp, v, om));
}

static void put_uint(out_t *o, uint64_t u) {
  char tmp[24];
  size_t n = sizeof tmp;
  do
    tmp[--n] = (char)('0' + u % 10);
  while (u /= 10);
  put(o, tmp + n, sizeof tmp - n);
}

/* name+suffix{labels[,extra="v"]} (the space before the value included). */
static void put_series(out_t *o, const raw_family_t *f, const char *suffix, const mw_label_t *ls,
                       size_t n, const char *extra, const double *extra_v, int om) {
  put(o, f->name, f->name_len);
  puts_(o, suffix);
  if (n || extra) {
    char sep = '{';
    for (size_t i = 0; i < n; i++) {
      put(o, &sep, 1);
      put(o, ls[i].name, ls[i].name_len);
      put(o, "=\"", 2);
      put_escaped(o, ls[i].value, ls[i].value_len, 1);
      put(o, "\"", 1);
      sep = ',';
    }
    if (extra) {
      put(o, &sep, 1);
      puts_(o, extra);
      put(o, "=\"", 2);
      put_float(o, *extra_v, om);
      put(o, "\"", 1);
    }
    put(o, "}", 1);
  }
  put(o, " ", 1);
}

/* Text and OpenMetrics write counts as client_golang does: a float in text,
 * an integer in OpenMetrics. */
static void put_count(out_t *o, uint64_t c, int om) {
  if (om)
    put_uint(o, c);
  else
    put_float(o, (double)c, 0);
  put(o, "\n", 1);
}

/* Go's uint64(float64) where it is defined; 0 for NaN and negatives, the
 * maximum above it (Go leaves those to the platform). */
static uint64_t to_u64(double v) {
  if (!(v >= 0)) return 0;
  if (v >= 18446744073709551616.0) return UINT64_MAX;
  return (uint64_t)v;
}

static int cmp_point(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  if (isnan(x) || isnan(y)) return isnan(x) - isnan(y); /* NaN last */
  return x < y ? -1 : x > y;
}

static void put_family_head(out_t *o, const raw_family_t *f, int om) {
  int total = f->type == MW_NODE_RAW_COUNTER && f->name_len >= 6 &&
              memcmp(f->name + f->name_len - 6, "_total", 6) == 0;
  size_t meta_len = om && total ? f->name_len - 6 : f->name_len;
  const char *type = "untyped";
  switch (f->type) {
  case MW_NODE_RAW_COUNTER: type = !om || total ? "counter" : "unknown"; break;
  case MW_NODE_RAW_GAUGE: type = "gauge"; break;
  case MW_NODE_RAW_UNTYPED: type = om ? "unknown" : "untyped"; break;
  case MW_NODE_RAW_SUMMARY: type = "summary"; break;
  case MW_NODE_RAW_HISTOGRAM: type = "histogram"; break;
  }
  puts_(o, "# HELP ");
  put(o, f->name, meta_len);
  put(o, " ", 1);
  put_escaped(o, f->help, f->help_len, om);
  puts_(o, "\n# TYPE ");
  put(o, f->name, meta_len);
  put(o, " ", 1);
  puts_(o, type);
  put(o, "\n", 1);
}

static void put_raw_series(out_t *o, mw_node_raw_t *r, const raw_family_t *f, raw_series_t *s,
                           int om) {
  const mw_label_t *ls = &r->labels[s->lab];
  double *pts = &r->points[2 * s->pt];
  if (f->type != MW_NODE_RAW_SUMMARY && f->type != MW_NODE_RAW_HISTOGRAM) {
    put_series(o, f, "", ls, s->nlab, NULL, NULL, om);
    put_float(o, s->value, om);
    put(o, "\n", 1);
    return;
  }
  /* client_golang keeps the points in a map (a repeated bound or quantile:
   * the last one wins) and writes them sorted */
  size_t n = s->npt;
  for (size_t i = 0; i < n; i++) /* stable "last wins": drop earlier equal keys */
    for (size_t j = i + 1; j < n; j++)
      if (pts[2 * i] == pts[2 * j]) {
        memmove(&pts[2 * i], &pts[2 * i + 2], 2 * (n - i - 1) * sizeof *pts);
        n--;
        i--;
        break;
      }
  qsort(pts, n, 2 * sizeof *pts, cmp_point);
  int summary = f->type == MW_NODE_RAW_SUMMARY, inf = 0;
  for (size_t i = 0; i < n; i++) {
    double k = pts[2 * i], v = pts[2 * i + 1];
    put_series(o, f, summary ? "" : "_bucket", ls, s->nlab, summary ? "quantile" : "le", &k, om);
    if (summary) {
      put_float(o, v, om);
      put(o, "\n", 1);
    } else {
      put_count(o, to_u64(v), om);
      inf |= isinf(k) && k > 0;
    }
  }
  if (!summary && !inf) {
    double k = INFINITY;
    put_series(o, f, "_bucket", ls, s->nlab, "le", &k, om);
    put_count(o, s->count, om);
  }
  put_series(o, f, "_sum", ls, s->nlab, NULL, NULL, om);
  put_float(o, s->sum, om);
  put(o, "\n", 1);
  put_series(o, f, "_count", ls, s->nlab, NULL, NULL, om);
  put_count(o, s->count, om);
}

int mw_node_raw_write(mw_node_raw_t *r, mw_metrics_t *reg, int format, mw_expose_buf_t *out,
                      mw_expose_extra_t **extras, size_t *n) {
  int om = format != MW_EXPOSE_TEXT, rc = -1;
  size_t *order = NULL, *starts = NULL, nout = 0;
  out_t o = {out, 0};
  *extras = NULL;
  *n = 0;
  if (!r || r->nfams == 0) return 0;
  order = malloc(r->nfams * sizeof *order);
  starts = malloc((r->nfams + 1) * sizeof *starts);
  if (!order || !starts) goto done;
  for (size_t i = 0; i < r->nfams; i++)
    order[i] = i;
  qsort_r(order, r->nfams, sizeof *order, cmp_fam, r->fams);
  for (size_t i = 0; i < r->nfams; i++)
    r->fams[order[i]].rank = i;
  if (r->nseries) qsort_r(r->series, r->nseries, sizeof *r->series, cmp_series, r);

  /* the registry's families with series, sorted: merged against ours */
  size_t nreg = 0, ri = 0;
  mw_metrics_family_t *const *regf = reg ? mw_metrics_families_sorted(reg, &nreg) : NULL;
  size_t si = 0;
  for (size_t i = 0; i < r->nfams; i++) {
    raw_family_t *f = &r->fams[order[i]];
    for (; ri < nreg; ri++) {
      if (regf[ri]->nchildren == 0) continue;
      if (cmp_bytes(regf[ri]->name, strlen(regf[ri]->name), f->name, f->name_len) >= 0) break;
    }
    int taken = ri < nreg && strcmp(regf[ri]->name, f->name) == 0;
    size_t start = out->len, first = si, run = si;
    int any = 0;
    for (; si < r->nseries && r->series[si].fam == (uint32_t)order[i]; si++) {
      if (taken) continue;
      /* a duplicate (same names and values) is in the run of equal values */
      if (si == first || !same_values(r, &r->series[si - 1], &r->series[si])) run = si;
      int dup = 0;
      for (size_t k = run; k < si && !dup; k++)
        dup = same_labels(r, &r->series[k], &r->series[si]);
      if (dup) continue;
      if (!any) put_family_head(&o, f, om);
      any = 1;
      put_raw_series(&o, r, f, &r->series[si], om);
    }
    if (o.oom) goto done;
    if (any) {
      order[nout] = order[i];
      starts[nout++] = start;
    }
  }
  starts[nout] = out->len;
  if (nout) {
    *extras = malloc(nout * sizeof **extras);
    if (!*extras) goto done;
    for (size_t i = 0; i < nout; i++)
      (*extras)[i] = (mw_expose_extra_t){r->fams[order[i]].name, out->data + starts[i],
                                         starts[i + 1] - starts[i]};
    *n = nout;
  }
  rc = 0;
done:
  free(order);
  free(starts);
  return rc;
}
