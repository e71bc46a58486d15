/* exporters/node/textfile.c: the textfile collector (node_exporter 1.5
 * collector/textfile.go; Alloy's `textfile { directory }`): the *.prom files
 * of directory (a glob of directories too, as filepath.Glob), in name order,
 * each parsed as node_exporter parses it and its families reported as
 * client_golang would gather them. "" reads nothing; the collector itself
 * always succeeds.
 *
 * Parsing is a port of the expfmt.TextParser node_exporter 1.5.0 is built
 * with (prometheus/common before quoted UTF-8 names): the same state machine
 * byte by byte, so a file is refused exactly when node_exporter refuses it
 * (a TYPE after the family's samples, a second HELP, an escape other than
 * \\ \n (and \" in label values), a file not ending in a newline, blanks
 * after the value, CRLF, a value strconv.ParseFloat refuses or a p, P or _
 * in it, an invalid metric or label name, a label value that is not UTF-8,
 * `__name__` as a label...), with its message. A file with a sample
 * timestamp is refused whole. HELP/TYPE lines of `<name>_count`, `_sum`
 * (`_bucket`) belong to an existing summary (histogram) `<name>`; TYPE is
 * matched case-insensitively; families without samples are dropped; labels
 * with an empty value are kept (`a=""`). Summaries and histograms are put
 * together as TextParser does: series by their labels without quantile / le,
 * a point whose quantile / le is NaN dropped, counts converted to uint64 as
 * Go does on amd64 (-1 -> 2^64-1, NaN and >= 2^64 -> 2^63).
 *
 * Conversion (convertMetricFamily): every series of a family gets the label
 * names any of them has (empty values for the missing ones); a family
 * without HELP gets "Metric read from <file>, <file>..." (every file that
 * has it). Gathering (client_golang): a family of a later file with another
 * type or HELP, or one whose name collides with a summary's or histogram's
 * _count/_sum/_bucket, is dropped (exporters/node/raw.c), and so is a series whose
 * labels an earlier one had. node_textfile_mtime_seconds{file} for each file
 * read, node_textfile_scrape_error 1 when a directory or a file could not be
 * read or was refused.
 *
 * Where node_exporter panics (a label name starting with "__", a TYPE of
 * gauge_histogram with samples) the file is refused instead. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/grow.h"
#include "exporters/node/node.h"

/* dto.MetricType beyond node_raw's types: no TYPE yet, and gauge_histogram
 * (TextParser accepts it; node_exporter cannot convert it). */
#define TP_NIL (-1)
#define TP_GAUGE_HISTOGRAM 100

typedef struct {
  const char *name, *help; /* arena; help NULL: no HELP line */
  size_t name_len, help_len;
  int type; /* TP_NIL, TP_GAUGE_HISTOGRAM or MW_NODE_RAW_* */
  size_t nmetrics;
} tp_fam_t;

typedef struct {
  uint32_t fam, lab, nlab; /* labels[lab .. lab + nlab) of the file */
  uint64_t sig;            /* summaries, histograms: hash of the label set */
  double value, sum;
  uint64_t count;
} tp_metric_t;

typedef struct {
  uint32_t metric;
  double k, v;
} tp_point_t;

/* One file's parse. */
typedef struct {
  char *path;
  double mtime; /* -1: none (stat failed) */
  mw_arena_t arena;
  tp_fam_t *fams;
  size_t nfams, fams_cap;
  int32_t *fam_idx; /* by name: family index + 1 */
  size_t fam_idx_size;
  tp_metric_t *metrics;
  size_t nmetrics, metrics_cap;
  int32_t *sig_idx; /* summary and histogram metrics by (family, labels): index + 1 */
  size_t sig_idx_size, nsig;
  mw_label_t *labels;
  size_t nlabels, labels_cap;
  tp_point_t *points;
  size_t npoints, points_cap;
  int has_ts;
} tf_file_t;

typedef struct {
  char *name, *files; /* family name, "a.prom, b.prom" */
  size_t name_len, files_len;
} tf_name_t;

struct mw_node_textfile {
  tf_file_t *files; /* this collection's files, in order */
  size_t nfiles, files_cap;
  tf_name_t *names;
  size_t nnames, names_cap;
  int32_t *name_idx; /* open addressing: name index + 1 */
  size_t name_idx_size;
  char *tok; /* the parser's token */
  size_t tok_cap;
};

static void file_free(tf_file_t *f) {
  free(f->path);
  mw_arena_free(&f->arena);
  free(f->fams);
  free(f->fam_idx);
  free(f->metrics);
  free(f->sig_idx);
  free(f->labels);
  free(f->points);
  memset(f, 0, sizeof *f);
}

static void names_reset(struct mw_node_textfile *t) {
  for (size_t i = 0; i < t->nnames; i++) {
    free(t->names[i].name);
    free(t->names[i].files);
  }
  t->nnames = 0;
  if (t->name_idx) memset(t->name_idx, 0, t->name_idx_size * sizeof *t->name_idx);
}

static void files_reset(struct mw_node_textfile *t) {
  for (size_t i = 0; i < t->nfiles; i++)
    file_free(&t->files[i]);
  t->nfiles = 0;
}

void mw_node_release_textfile(mw_node_t *n) {
  mw_node_textfile_free(n->textfile);
  n->textfile = NULL;
}

void mw_node_textfile_free(struct mw_node_textfile *t) {
  if (!t) return;
  files_reset(t);
  free(t->files);
  names_reset(t);
  free(t->names);
  free(t->name_idx);
  free(t->tok);
  free(t);
}

/* mw_grow, with counts that fit the int32_t indexes. */
static int grow(void **arr, size_t *cap, size_t need, size_t sz) {
  return need > INT32_MAX ? -1 : mw_grow(arr, cap, need, sz);
}

static uint64_t hash_bytes(uint64_t h, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}
#define HASH0 1469598103934665603ull

static const char *dupz(mw_arena_t *a, const char *s, size_t n) {
  char *d = (char *)mw_arena_dup(a, s, n + 1);
  if (d) d[n] = '\0';
  return d;
}

/* Go's uint64(float64) on amd64: below 2^63 through int64 (CVTTSD2SQ: NaN
 * and out of range give INT64_MIN), else 2^63 subtracted first and the top
 * bit set. */
static int64_t cvtt(double x) {
  if (!(x > -9223372036854775809.0 && x < 9223372036854775808.0)) return INT64_MIN;
  return (int64_t)x;
}
static uint64_t go_u64(double v) {
  if (v < 9223372036854775808.0) return (uint64_t)cvtt(v);
  return (uint64_t)cvtt(v - 9223372036854775808.0) | 0x8000000000000000ull;
}

/* expfmt's parseFloat: strconv.ParseFloat(s, 64), and no p, P or _ at all.
 * Go's syntax: [+-]inf, [+-]infinity, nan (any case), or decimal digits
 * with an optional point and exponent; out of range is an error. */
static int go_parse_float(const char *s, size_t n, double *out) {
  char buf[512];
  size_t i = 0;
  for (size_t k = 0; k < n; k++)
    if (s[k] == 'p' || s[k] == 'P' || s[k] == '_' || s[k] == '\0') return -1;
  if (n == 0) return -1;
  int neg = 0;
  if (s[0] == '+' || s[0] == '-') {
    neg = s[0] == '-';
    i = 1;
  }
  if (n - i == 3 || n - i == 8) { /* inf, infinity */
    static const char inf[] = "infinity";
    size_t k = 0;
    while (k < n - i && (s[i + k] | 0x20) == inf[k])
      k++;
    if (k == n - i) {
      *out = neg ? -INFINITY : INFINITY;
      return 0;
    }
  }
  if (i == 0 && n == 3 && (s[0] | 0x20) == 'n' && (s[1] | 0x20) == 'a' && (s[2] | 0x20) == 'n') {
    *out = NAN;
    return 0;
  }
  size_t digits = 0, k = i;
  for (; k < n && s[k] >= '0' && s[k] <= '9'; k++)
    digits++;
  if (k < n && s[k] == '.')
    for (k++; k < n && s[k] >= '0' && s[k] <= '9'; k++)
      digits++;
  if (!digits) return -1;
  if (k < n && (s[k] == 'e' || s[k] == 'E')) {
    k++;
    if (k < n && (s[k] == '+' || s[k] == '-')) k++;
    if (k >= n || s[k] < '0' || s[k] > '9') return -1;
    while (k < n && s[k] >= '0' && s[k] <= '9')
      k++;
  }
  if (k != n) return -1;
  char *heap = NULL, *z = buf;
  if (n >= sizeof buf && !(z = heap = malloc(n + 1))) return -1;
  memcpy(z, s, n);
  z[n] = '\0';
  double v = strtod(z, NULL);
  free(heap);
  if (isinf(v)) return -1; /* ErrRange */
  *out = v;
  return 0;
}

/* strconv.ParseInt(s, 10, 64) succeeds. */
static int go_parse_int_ok(const char *s, size_t n) {
  size_t i = 0;
  int neg = 0;
  if (n && (s[0] == '+' || s[0] == '-')) {
    neg = s[0] == '-';
    i = 1;
  }
  if (i == n) return 0;
  uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (lim - d) / 10) return 0;
    v = v * 10 + d;
  }
  return 1;
}

/* --- TextParser ---------------------------------------------------------------- */

enum { E_NONE, E_EOF, E_PARSE, E_OOM };

enum {
  S_STOP,
  S_START_OF_LINE,
  S_COMMENT,
  S_METRIC_NAME,
  S_LABELS,
  S_LABEL_NAME,
  S_LABEL_VALUE,
  S_VALUE,
  S_TIMESTAMP,
  S_HELP,
  S_TYPE
};

typedef struct {
  struct mw_node_textfile *t;
  tf_file_t *f;
  const unsigned char *in;
  size_t len, pos;
  unsigned char cur; /* currentByte (0 after EOF, as Go's ReadByte) */
  int err;           /* E_* */
  int line;
  char *msg;
  size_t msglen;
  size_t ntok;
  int mf;                  /* currentMF: family index, -1 none */
  int is_count, is_sum;    /* currentIsSummaryCount/Sum, currentIsHistogramCount/Sum */
  size_t m_lab;            /* the current line's labels start at f->labels[m_lab] */
  int label_special;       /* the current label is the summary's quantile / histogram's le */
  double quantile, bucket; /* currentQuantile, currentBucket (NaN: none) */
  const char *lname;       /* the current label's name (arena) */
  size_t lname_len;
} tp_t;

static void tp_error(tp_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tp_error(tp_t *p, const char *fmt, ...) {
  char m[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m, sizeof m, fmt, ap);
  va_end(ap);
  snprintf(p->msg, p->msglen, "text format parsing error in line %d: %s", p->line, m);
  p->err = E_PARSE;
}

/* A token quoted for a message as Go's %q would (printable ASCII kept,
 * the rest escaped). */
static const char *quoted(const char *s, size_t n, char *buf, size_t cap) {
  size_t o = 0;
  buf[o++] = '"';
  for (size_t i = 0; i < n && o + 6 < cap; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      buf[o++] = '\\';
      buf[o++] = (char)c;
    } else if (c == '\n') {
      buf[o++] = '\\';
      buf[o++] = 'n';
    } else if (c == '\r') {
      buf[o++] = '\\';
      buf[o++] = 'r';
    } else if (c == '\t') {
      buf[o++] = '\\';
      buf[o++] = 't';
    } else if (c < 0x20 || c == 0x7f || c >= 0x80) {
      o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
    } else {
      buf[o++] = (char)c;
    }
  }
  buf[o++] = '"';
  buf[o] = '\0';
  return buf;
}
#define Q(p, s, n) quoted((s), (n), qbuf, sizeof qbuf)

/* A byte as Go's %q writes it: 'x', '\n', '\x00'. */
static const char *qchar(unsigned char c, char *buf, size_t cap) {
  if (c == '\n')
    snprintf(buf, cap, "'\\n'");
  else if (c == '\t')
    snprintf(buf, cap, "'\\t'");
  else if (c == '\r')
    snprintf(buf, cap, "'\\r'");
  else if (c == '\'' || c == '\\')
    snprintf(buf, cap, "'\\%c'", c);
  else if (c < 0x20 || c == 0x7f)
    snprintf(buf, cap, "'\\x%02x'", c);
  else if (c >= 0x80)
    snprintf(buf, cap, "'\\u%04x'", c);
  else
    snprintf(buf, cap, "'%c'", c);
  return buf;
}

/* ReadByte: 0, or -1 with err = E_EOF. */
static int rd(tp_t *p) {
  if (p->pos >= p->len) {
    p->cur = 0;
    p->err = E_EOF;
    return -1;
  }
  p->cur = p->in[p->pos++];
  return 0;
}

static int blank(unsigned char c) { return c == ' ' || c == '\t'; }

static void skip_blank_tab(tp_t *p) {
  while (rd(p) == 0 && blank(p->cur)) {
  }
}

static void skip_blank_tab_if_current(tp_t *p) {
  if (blank(p->cur)) skip_blank_tab(p);
}

static void tok_put(tp_t *p, unsigned char c) {
  struct mw_node_textfile *t = p->t;
  if (p->ntok + 1 >= t->tok_cap) {
    size_t cap = t->tok_cap ? t->tok_cap * 2 : 256;
    char *b = realloc(t->tok, cap);
    if (!b) {
      p->err = E_OOM;
      return;
    }
    t->tok = b;
    t->tok_cap = cap;
  }
  t->tok[p->ntok++] = (char)c;
}

static void read_token_until_whitespace(tp_t *p) {
  p->ntok = 0;
  while (p->err == E_NONE && !blank(p->cur) && p->cur != '\n') {
    tok_put(p, p->cur);
    if (p->err == E_NONE) rd(p);
  }
}

static void read_token_until_newline(tp_t *p, int escapes) {
  int escaped = 0;
  p->ntok = 0;
  while (p->err == E_NONE) {
    if (escapes && escaped) {
      if (p->cur == '\\')
        tok_put(p, '\\');
      else if (p->cur == 'n')
        tok_put(p, '\n');
      else {
        tp_error(p, "invalid escape sequence '\\%c'", p->cur);
        return;
      }
      escaped = 0;
    } else if (p->cur == '\n') {
      return;
    } else if (p->cur == '\\') {
      escaped = 1;
    } else {
      tok_put(p, p->cur);
    }
    if (p->err == E_NONE) rd(p);
  }
}

static int name_start(unsigned char c, int metric) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (metric && c == ':');
}

static int name_cont(unsigned char c, int metric) {
  return name_start(c, metric) || (c >= '0' && c <= '9');
}

/* readTokenAsMetricName (metric 1) / readTokenAsLabelName (metric 0). */
static void read_token_as_name(tp_t *p, int metric) {
  p->ntok = 0;
  if (!name_start(p->cur, metric)) return;
  for (;;) {
    tok_put(p, p->cur);
    if (p->err != E_NONE || rd(p) < 0 || !name_cont(p->cur, metric)) return;
  }
}

static void read_token_as_label_value(tp_t *p) {
  char qbuf[160];
  int escaped = 0;
  p->ntok = 0;
  for (;;) {
    if (rd(p) < 0) return;
    if (escaped) {
      if (p->cur == '"' || p->cur == '\\')
        tok_put(p, p->cur);
      else if (p->cur == 'n')
        tok_put(p, '\n');
      else {
        tp_error(p, "invalid escape sequence '\\%c'", p->cur);
        return;
      }
      escaped = 0;
      if (p->err != E_NONE) return;
      continue;
    }
    switch (p->cur) {
    case '"': return;
    case '\n':
      tp_error(p, "label value %s contains unescaped new-line", Q(p, p->t->tok, p->ntok));
      return;
    case '\\': escaped = 1; break;
    default: tok_put(p, p->cur);
    }
    if (p->err != E_NONE) return;
  }
}

/* --- families and metrics of the file ------------------------------------------ */

static int fam_lookup(const tf_file_t *f, const char *name, size_t len) {
  if (!f->fam_idx_size) return -1;
  size_t mask = f->fam_idx_size - 1;
  for (size_t k = hash_bytes(HASH0, name, len) & mask; f->fam_idx[k]; k = (k + 1) & mask) {
    const tp_fam_t *x = &f->fams[f->fam_idx[k] - 1];
    if (x->name_len == len && memcmp(x->name, name, len) == 0) return f->fam_idx[k] - 1;
  }
  return -1;
}

static int fam_add(tf_file_t *f, const char *name, size_t len) {
  if (grow((void **)&f->fams, &f->fams_cap, f->nfams + 1, sizeof *f->fams) < 0) return -1;
  if ((f->nfams + 1) * 2 > f->fam_idx_size) {
    size_t size = f->fam_idx_size ? f->fam_idx_size * 2 : 32;
    int32_t *idx = calloc(size, sizeof *idx);
    if (!idx) return -1;
    for (size_t i = 0; i < f->nfams; i++) {
      size_t k = hash_bytes(HASH0, f->fams[i].name, f->fams[i].name_len) & (size - 1);
      while (idx[k])
        k = (k + 1) & (size - 1);
      idx[k] = (int32_t)i + 1;
    }
    free(f->fam_idx);
    f->fam_idx = idx;
    f->fam_idx_size = size;
  }
  tp_fam_t *x = &f->fams[f->nfams];
  memset(x, 0, sizeof *x);
  x->type = TP_NIL;
  if (!(x->name = dupz(&f->arena, name, len))) return -1;
  x->name_len = len;
  size_t k = hash_bytes(HASH0, name, len) & (f->fam_idx_size - 1);
  while (f->fam_idx[k])
    k = (k + 1) & (f->fam_idx_size - 1);
  f->fam_idx[k] = (int32_t)f->nfams + 1;
  return (int)f->nfams++;
}

static int suffix(const char *s, size_t n, const char *suf) {
  size_t k = strlen(suf);
  return n > k && memcmp(s + n - k, suf, k) == 0;
}

/* setOrCreateCurrentMF for the name in the token. */
static void set_or_create_mf(tp_t *p) {
  const char *name = p->t->tok;
  size_t n = p->ntok;
  int cnt = suffix(name, n, "_count"), sum = suffix(name, n, "_sum");
  p->is_count = p->is_sum = 0;
  if ((p->mf = fam_lookup(p->f, name, n)) >= 0) return;
  size_t sn = cnt ? n - 6 : sum ? n - 4 : n; /* summaryMetricName */
  int mf = fam_lookup(p->f, name, sn);
  if (mf >= 0 && p->f->fams[mf].type == MW_NODE_RAW_SUMMARY) {
    p->mf = mf;
    p->is_count = cnt;
    p->is_sum = sum;
    return;
  }
  size_t hn = cnt ? n - 6 : sum ? n - 4 : suffix(name, n, "_bucket") ? n - 7 : n;
  mf = fam_lookup(p->f, name, hn);
  if (mf >= 0 && p->f->fams[mf].type == MW_NODE_RAW_HISTOGRAM) {
    p->mf = mf;
    p->is_count = cnt;
    p->is_sum = sum;
    return;
  }
  if ((p->mf = fam_add(p->f, name, n)) < 0) p->err = E_OOM;
}

/* The label set's hash, independent of the order (LabelsToSignature). */
static uint64_t labels_sig(const tf_file_t *f, uint32_t fam, size_t lab, size_t n) {
  uint64_t h = 0;
  for (size_t i = 0; i < n; i++) {
    const mw_label_t *l = &f->labels[lab + i];
    uint64_t x = hash_bytes(HASH0, l->name, l->name_len);
    x = hash_bytes(x ^ 0xff, l->value, l->value_len);
    h += x * 0x9e3779b97f4a7c15ull;
  }
  return h ^ ((uint64_t)fam * 0xc2b2ae3d27d4eb4full);
}

static int same_set(const tf_file_t *f, size_t a, size_t na, size_t b, size_t nb) {
  if (na != nb) return 0;
  for (size_t i = 0; i < na; i++) {
    const mw_label_t *x = &f->labels[a + i];
    size_t j = 0;
    for (; j < nb; j++) {
      const mw_label_t *y = &f->labels[b + j];
      if (x->name_len == y->name_len && memcmp(x->name, y->name, x->name_len) == 0) break;
    }
    if (j == nb) return 0;
    const mw_label_t *y = &f->labels[b + j];
    if (x->value_len != y->value_len || memcmp(x->value, y->value, x->value_len) != 0) return 0;
  }
  return 1;
}

/* The summary's or histogram's metric with these labels, -1 if none. */
static int sig_find(const tf_file_t *f, uint32_t fam, uint64_t sig, size_t lab, size_t n) {
  if (!f->sig_idx_size) return -1;
  size_t mask = f->sig_idx_size - 1;
  for (size_t k = sig & mask; f->sig_idx[k]; k = (k + 1) & mask) {
    const tp_metric_t *m = &f->metrics[f->sig_idx[k] - 1];
    if (m->sig == sig && m->fam == fam && same_set(f, m->lab, m->nlab, lab, n))
      return f->sig_idx[k] - 1;
  }
  return -1;
}

static int sig_add(tf_file_t *f, int metric) {
  if ((f->nsig + 1) * 2 > f->sig_idx_size) {
    size_t size = f->sig_idx_size ? f->sig_idx_size * 2 : 64;
    int32_t *idx = calloc(size, sizeof *idx);
    if (!idx) return -1;
    for (size_t i = 0; i < f->sig_idx_size; i++)
      if (f->sig_idx[i]) {
        size_t k = f->metrics[f->sig_idx[i] - 1].sig & (size - 1);
        while (idx[k])
          k = (k + 1) & (size - 1);
        idx[k] = f->sig_idx[i];
      }
    free(f->sig_idx);
    f->sig_idx = idx;
    f->sig_idx_size = size;
  }
  size_t k = f->metrics[metric].sig & (f->sig_idx_size - 1);
  while (f->sig_idx[k])
    k = (k + 1) & (f->sig_idx_size - 1);
  f->sig_idx[k] = metric + 1;
  f->nsig++;
  return 0;
}

/* --- the states ------------------------------------------------------------------ */

static int st_start_of_line(tp_t *p) {
  p->line++;
  skip_blank_tab(p);
  if (p->err != E_NONE) {
    if (p->err == E_EOF) p->err = E_NONE; /* the end */
    return S_STOP;
  }
  if (p->cur == '#') return S_COMMENT;
  if (p->cur == '\n') return S_START_OF_LINE;
  return S_METRIC_NAME;
}

static int st_comment(tp_t *p) {
  skip_blank_tab(p);
  if (p->err != E_NONE) return S_STOP;
  if (p->cur == '\n') return S_START_OF_LINE;
  read_token_until_whitespace(p);
  if (p->err != E_NONE) return S_STOP;
  if (p->cur == '\n') return S_START_OF_LINE;
  int help = p->ntok == 4 && memcmp(p->t->tok, "HELP", 4) == 0;
  int type = p->ntok == 4 && memcmp(p->t->tok, "TYPE", 4) == 0;
  if (!help && !type) {
    while (p->cur != '\n')
      if (rd(p) < 0) return S_STOP;
    return S_START_OF_LINE;
  }
  skip_blank_tab(p);
  if (p->err != E_NONE) return S_STOP;
  read_token_as_name(p, 1);
  if (p->err != E_NONE) return S_STOP;
  if (p->cur == '\n') return S_START_OF_LINE;
  if (!blank(p->cur)) {
    tp_error(p, "invalid metric name in comment");
    return S_STOP;
  }
  set_or_create_mf(p);
  if (p->err != E_NONE) return S_STOP;
  skip_blank_tab(p);
  if (p->err != E_NONE) return S_STOP;
  if (p->cur == '\n') return S_START_OF_LINE;
  return help ? S_HELP : S_TYPE;
}

static int st_metric_name(tp_t *p) {
  read_token_as_name(p, 1);
  if (p->err != E_NONE) return S_STOP;
  if (p->ntok == 0) {
    tp_error(p, "invalid metric name");
    return S_STOP;
  }
  set_or_create_mf(p);
  if (p->err != E_NONE) return S_STOP;
  tp_fam_t *F = &p->f->fams[p->mf];
  if (F->type == TP_NIL) F->type = MW_NODE_RAW_UNTYPED;
  p->m_lab = p->f->nlabels; /* a new metric */
  skip_blank_tab_if_current(p);
  if (p->err != E_NONE) return S_STOP;
  return S_LABELS;
}

static int st_labels(tp_t *p) {
  p->quantile = p->bucket = NAN;
  if (p->cur != '{') return S_VALUE;
  return S_LABEL_NAME;
}

static int st_label_name(tp_t *p) {
  char qbuf[160];
  tf_file_t *f = p->f;
  const tp_fam_t *F = &f->fams[p->mf];
  skip_blank_tab(p);
  if (p->err != E_NONE) return S_STOP;
  if (p->cur == '}') {
    skip_blank_tab(p);
    if (p->err != E_NONE) return S_STOP;
    return S_VALUE;
  }
  read_token_as_name(p, 0);
  if (p->err != E_NONE) return S_STOP;
  if (p->ntok == 0) {
    tp_error(p, "invalid label name for metric %s", Q(p, F->name, F->name_len));
    return S_STOP;
  }
  if (p->ntok == 8 && memcmp(p->t->tok, "__name__", 8) == 0) {
    tp_error(p, "label name \"__name__\" is reserved");
    return S_STOP;
  }
  if (!(p->lname = dupz(&f->arena, p->t->tok, p->ntok))) {
    p->err = E_OOM;
    return S_STOP;
  }
  p->lname_len = p->ntok;
  p->label_special =
      (F->type == MW_NODE_RAW_SUMMARY && p->ntok == 8 && memcmp(p->lname, "quantile", 8) == 0) ||
      (F->type == MW_NODE_RAW_HISTOGRAM && p->ntok == 2 && memcmp(p->lname, "le", 2) == 0);
  if (!p->label_special) {
    if (grow((void **)&f->labels, &f->labels_cap, f->nlabels + 1, sizeof *f->labels) < 0) {
      p->err = E_OOM;
      return S_STOP;
    }
    f->labels[f->nlabels++] = (mw_label_t){p->lname, "", (uint32_t)p->ntok, 0};
  }
  skip_blank_tab_if_current(p);
  if (p->err != E_NONE) return S_STOP;
  if (p->cur != '=') {
    tp_error(p, "expected '=' after label name, found %s", qchar(p->cur, qbuf, sizeof qbuf));
    return S_STOP;
  }
  for (size_t i = p->m_lab; i < f->nlabels; i++)
    for (size_t j = i + 1; j < f->nlabels; j++)
      if (f->labels[i].name_len == f->labels[j].name_len &&
          memcmp(f->labels[i].name, f->labels[j].name, f->labels[i].name_len) == 0) {
        tp_error(p, "duplicate label names for metric %s", Q(p, F->name, F->name_len));
        return S_STOP;
      }
  return S_LABEL_VALUE;
}

static int valid_utf8(const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t w = mw_node_utf8_len(s + i, n - i);
    if (!w) return 0;
    i += w;
  }
  return 1;
}

static int st_label_value(tp_t *p) {
  char qbuf[160];
  tf_file_t *f = p->f;
  const tp_fam_t *F = &f->fams[p->mf];
  skip_blank_tab(p);
  if (p->err != E_NONE) return S_STOP;
  if (p->cur != '"') {
    tp_error(p, "expected '\"' at start of label value, found %s",
             qchar(p->cur, qbuf, sizeof qbuf));
    return S_STOP;
  }
  read_token_as_label_value(p);
  if (p->err != E_NONE) return S_STOP;
  const char *tok = p->t->tok;
  if (!valid_utf8(tok, p->ntok)) {
    tp_error(p, "invalid label value %s", Q(p, tok, p->ntok));
    return S_STOP;
  }
  if (!p->label_special) {
    const char *v = dupz(&f->arena, tok, p->ntok);
    if (!v) {
      p->err = E_OOM;
      return S_STOP;
    }
    f->labels[f->nlabels - 1].value = v;
    f->labels[f->nlabels - 1].value_len = (uint32_t)p->ntok;
  } else if (F->type == MW_NODE_RAW_SUMMARY) {
    if (go_parse_float(tok, p->ntok, &p->quantile) < 0) {
      tp_error(p, "expected float as value for 'quantile' label, got %s", Q(p, tok, p->ntok));
      return S_STOP;
    }
  } else if (go_parse_float(tok, p->ntok, &p->bucket) < 0) {
    tp_error(p, "expected float as value for 'le' label, got %s", Q(p, tok, p->ntok));
    return S_STOP;
  }
  skip_blank_tab(p);
  if (p->err != E_NONE) return S_STOP;
  if (p->cur == ',') return S_LABEL_NAME;
  if (p->cur == '}') {
    skip_blank_tab(p);
    if (p->err != E_NONE) return S_STOP;
    return S_VALUE;
  }
  tp_error(p, "unexpected end of label value %s", Q(p, tok, p->ntok));
  return S_STOP;
}

static int st_value(tp_t *p) {
  char qbuf[160];
  tf_file_t *f = p->f;
  tp_fam_t *F = &f->fams[p->mf];
  int type = F->type, mi = -1;
  size_t nlab = f->nlabels - p->m_lab;
  uint64_t sig = 0;
  if (type == MW_NODE_RAW_SUMMARY || type == MW_NODE_RAW_HISTOGRAM) {
    sig = labels_sig(f, (uint32_t)p->mf, p->m_lab, nlab);
    mi = sig_find(f, (uint32_t)p->mf, sig, p->m_lab, nlab);
    if (mi >= 0) f->nlabels = p->m_lab; /* the series exists: this line's labels go */
  }
  if (mi < 0) {
    if (grow((void **)&f->metrics, &f->metrics_cap, f->nmetrics + 1, sizeof *f->metrics) < 0) {
      p->err = E_OOM;
      return S_STOP;
    }
    mi = (int)f->nmetrics++;
    f->metrics[mi] =
        (tp_metric_t){(uint32_t)p->mf, (uint32_t)p->m_lab, (uint32_t)nlab, sig, 0, 0, 0};
    F->nmetrics++;
    if ((type == MW_NODE_RAW_SUMMARY || type == MW_NODE_RAW_HISTOGRAM) && sig_add(f, mi) < 0) {
      p->err = E_OOM;
      return S_STOP;
    }
  }
  read_token_until_whitespace(p);
  if (p->err != E_NONE) return S_STOP;
  double v;
  if (go_parse_float(p->t->tok, p->ntok, &v) < 0) {
    tp_error(p, "expected float as value, got %s", Q(p, p->t->tok, p->ntok));
    return S_STOP;
  }
  tp_metric_t *m = &f->metrics[mi];
  switch (type) {
  case MW_NODE_RAW_SUMMARY:
  case MW_NODE_RAW_HISTOGRAM: {
    double k = type == MW_NODE_RAW_SUMMARY ? p->quantile : p->bucket;
    if (p->is_count) {
      m->count = go_u64(v);
    } else if (p->is_sum) {
      m->sum = v;
    } else if (!isnan(k)) {
      if (grow((void **)&f->points, &f->points_cap, f->npoints + 1, sizeof *f->points) < 0) {
        p->err = E_OOM;
        return S_STOP;
      }
      f->points[f->npoints++] =
          (tp_point_t){(uint32_t)mi, k, type == MW_NODE_RAW_SUMMARY ? v : (double)go_u64(v)};
    }
    break;
  }
  case TP_GAUGE_HISTOGRAM:
    tp_error(p, "unsupported metric type gauge_histogram for metric name %s",
             Q(p, F->name, F->name_len));
    return S_STOP;
  default: m->value = v;
  }
  if (p->cur == '\n') return S_START_OF_LINE;
  return S_TIMESTAMP;
}

static int st_timestamp(tp_t *p) {
  char qbuf[160];
  skip_blank_tab(p);
  if (p->err != E_NONE) return S_STOP;
  read_token_until_whitespace(p);
  if (p->err != E_NONE) return S_STOP;
  if (!go_parse_int_ok(p->t->tok, p->ntok)) {
    tp_error(p, "expected integer as timestamp, got %s", Q(p, p->t->tok, p->ntok));
    return S_STOP;
  }
  p->f->has_ts = 1;
  read_token_until_newline(p, 0);
  if (p->err != E_NONE) return S_STOP;
  if (p->ntok > 0) {
    tp_error(p, "spurious string after timestamp: %s", Q(p, p->t->tok, p->ntok));
    return S_STOP;
  }
  return S_START_OF_LINE;
}

static int st_help(tp_t *p) {
  char qbuf[160];
  tp_fam_t *F = &p->f->fams[p->mf];
  if (F->help) {
    tp_error(p, "second HELP line for metric name %s", Q(p, F->name, F->name_len));
    return S_STOP;
  }
  read_token_until_newline(p, 1);
  if (p->err != E_NONE) return S_STOP;
  if (!(F->help = dupz(&p->f->arena, p->t->tok, p->ntok))) {
    p->err = E_OOM;
    return S_STOP;
  }
  F->help_len = p->ntok;
  return S_START_OF_LINE;
}

/* dto.MetricType_value[strings.ToUpper(s)]: ASCII letters, and the two
 * letters ToUpper turns into ASCII (U+0131 -> I, U+017F -> S). */
static int type_of(const char *s, size_t n) {
  static const struct {
    const char *name;
    int type;
  } types[] = {{"COUNTER", MW_NODE_RAW_COUNTER},     {"GAUGE", MW_NODE_RAW_GAUGE},
               {"SUMMARY", MW_NODE_RAW_SUMMARY},     {"UNTYPED", MW_NODE_RAW_UNTYPED},
               {"HISTOGRAM", MW_NODE_RAW_HISTOGRAM}, {"GAUGE_HISTOGRAM", TP_GAUGE_HISTOGRAM}};
  char up[32];
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (k + 1 >= sizeof up) return TP_NIL;
    if (c >= 'a' && c <= 'z')
      up[k++] = (char)(c - 32);
    else if (c == 0xc4 && i + 1 < n && (unsigned char)s[i + 1] == 0xb1)
      up[k++] = 'I', i++;
    else if (c == 0xc5 && i + 1 < n && (unsigned char)s[i + 1] == 0xbf)
      up[k++] = 'S', i++;
    else
      up[k++] = (char)c;
  }
  for (size_t i = 0; i < sizeof types / sizeof *types; i++)
    if (strlen(types[i].name) == k && memcmp(types[i].name, up, k) == 0) return types[i].type;
  return TP_NIL;
}

static int st_type(tp_t *p) {
  char qbuf[160];
  tp_fam_t *F = &p->f->fams[p->mf];
  if (F->type != TP_NIL) {
    tp_error(p, "second TYPE line for metric name %s, or TYPE reported after samples",
             Q(p, F->name, F->name_len));
    return S_STOP;
  }
  read_token_until_newline(p, 0);
  if (p->err != E_NONE) return S_STOP;
  int type = type_of(p->t->tok, p->ntok);
  if (type == TP_NIL) {
    tp_error(p, "unknown metric type %s", Q(p, p->t->tok, p->ntok));
    return S_STOP;
  }
  F->type = type;
  return S_START_OF_LINE;
}

/* TextToMetricFamilies on body into f (emptied first). 0, or -1 with msg. */
static int tp_parse(struct mw_node_textfile *t, tf_file_t *f, const char *body, size_t len,
                    char *msg, size_t msglen) {
  tp_t p = {.t = t,
            .f = f,
            .in = (const unsigned char *)body,
            .len = len,
            .msg = msg,
            .msglen = msglen,
            .mf = -1,
            .quantile = NAN,
            .bucket = NAN};
  int st = S_START_OF_LINE;
  while (st != S_STOP) {
    switch (st) {
    case S_START_OF_LINE: st = st_start_of_line(&p); break;
    case S_COMMENT: st = st_comment(&p); break;
    case S_METRIC_NAME: st = st_metric_name(&p); break;
    case S_LABELS: st = st_labels(&p); break;
    case S_LABEL_NAME: st = st_label_name(&p); break;
    case S_LABEL_VALUE: st = st_label_value(&p); break;
    case S_VALUE: st = st_value(&p); break;
    case S_TIMESTAMP: st = st_timestamp(&p); break;
    case S_HELP: st = st_help(&p); break;
    case S_TYPE: st = st_type(&p); break;
    default: st = S_STOP;
    }
  }
  if (p.err == E_EOF) {
    p.err = E_NONE;
    tp_error(&p, "unexpected end of input stream");
  }
  if (p.err == E_OOM) snprintf(msg, msglen, "out of memory");
  return p.err == E_NONE ? 0 : -1;
}

/* Parses body as the file path (processFile): 0, or -1 with err (refused).
 * Label names client_golang's NewDesc refuses (a "__" prefix: node_exporter
 * panics) refuse the file too. */
static int file_parse(struct mw_node_textfile *t, tf_file_t *f, const char *body, size_t len,
                      char *err, size_t errlen) {
  char msg[448];
  if (tp_parse(t, f, body, len, msg, sizeof msg) < 0) {
    if (strcmp(msg, "out of memory") == 0)
      mw_seterr(err, errlen, "%s", msg);
    else
      mw_seterr(err, errlen, "failed to parse textfile data from \"%s\": %s", f->path, msg);
    return -1;
  }
  if (f->has_ts) {
    mw_seterr(err, errlen,
              "textfile \"%s\" contains unsupported client-side timestamps, skipping entire file",
              f->path);
    return -1;
  }
  for (size_t i = 0; i < f->nlabels; i++)
    if (f->labels[i].name_len >= 2 && memcmp(f->labels[i].name, "__", 2) == 0) {
      mw_seterr(err, errlen,
                "failed to parse textfile data from \"%s\": \"%s\" is not a valid label name",
                f->path, f->labels[i].name);
      return -1;
    }
  return 0;
}

/* --- the families-to-files map (HELP of families without one) -------------------- */

static tf_name_t *name_find(struct mw_node_textfile *t, const char *name, size_t len, int add) {
  uint64_t h = hash_bytes(HASH0, name, len);
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
      size_t k = hash_bytes(HASH0, t->names[i].name, t->names[i].name_len) & (size - 1);
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

/* metricsNamesToFiles: appends f's path to every family (with samples) it
 * has. 0, -1 out of memory. */
static int file_names(struct mw_node_textfile *t, const tf_file_t *f) {
  size_t pl = strlen(f->path);
  for (size_t i = 0; i < f->nfams; i++) {
    const tp_fam_t *F = &f->fams[i];
    if (!F->nmetrics) continue;
    tf_name_t *e = name_find(t, F->name, F->name_len, 1);
    if (!e) return -1;
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

/* --- conversion into raw families (convertMetricFamily) -------------------------- */

static int has_label(const mw_label_t *ls, size_t n, const char *name, size_t len) {
  for (size_t i = 0; i < n; i++)
    if (ls[i].name_len == len && memcmp(ls[i].name, name, len) == 0) return 1;
  return 0;
}

/* Adds f's families to raw, family by family in the order they came, each
 * family's series in file order. 0, -1 out of memory. */
static int file_convert(struct mw_node_textfile *t, mw_node_raw_t *raw, tf_file_t *f) {
  int rc = -1, oom;
  char *help_buf = NULL;
  mw_label_t *names = NULL, *ls = NULL;
  size_t names_cap = 0, ls_cap = 0, pts_cap = 0;
  size_t *mstart = calloc(f->nfams + 1, sizeof *mstart), *morder = NULL;
  size_t *pstart = calloc(f->nmetrics + 1, sizeof *pstart);
  double *pts = NULL;
  tp_point_t *porder = NULL;
  if (!mstart || !pstart) goto done;
  /* metrics by family and points by metric, file order kept (counting sorts) */
  if (f->nmetrics && !(morder = malloc(f->nmetrics * sizeof *morder))) goto done;
  for (size_t i = 0; i < f->nmetrics; i++)
    mstart[f->metrics[i].fam + 1]++;
  for (size_t i = 0; i < f->nfams; i++)
    mstart[i + 1] += mstart[i];
  for (size_t i = 0; i < f->nmetrics; i++)
    morder[mstart[f->metrics[i].fam]++] = i;
  for (size_t i = f->nfams; i > 0; i--) /* back to the starts */
    mstart[i] = mstart[i - 1];
  mstart[0] = 0;
  if (f->npoints && !(porder = malloc(f->npoints * sizeof *porder))) goto done;
  for (size_t i = 0; i < f->npoints; i++)
    pstart[f->points[i].metric + 1]++;
  for (size_t i = 0; i < f->nmetrics; i++)
    pstart[i + 1] += pstart[i];
  for (size_t i = 0; i < f->npoints; i++)
    porder[pstart[f->points[i].metric]++] = f->points[i];
  for (size_t i = f->nmetrics; i > 0; i--)
    pstart[i] = pstart[i - 1];
  pstart[0] = 0;
  for (size_t fi = 0; fi < f->nfams; fi++) {
    const tp_fam_t *F = &f->fams[fi];
    if (!F->nmetrics) continue;
    /* allLabelNames */
    size_t nnames = 0;
    for (size_t j = mstart[fi]; j < mstart[fi + 1]; j++) {
      const tp_metric_t *m = &f->metrics[morder[j]];
      for (size_t k = 0; k < m->nlab; k++) {
        const mw_label_t *l = &f->labels[m->lab + k];
        if (has_label(names, nnames, l->name, l->name_len)) continue;
        if (grow((void **)&names, &names_cap, nnames + 1, sizeof *names) < 0) goto done;
        names[nnames++] = *l;
      }
    }
    const char *help = F->help;
    size_t hl = F->help_len;
    if (!help) {
      const tf_name_t *e = name_find(t, F->name, F->name_len, 0);
      size_t fl = e && e->files ? e->files_len : 0;
      free(help_buf);
      if (!(help_buf = malloc(fl + 18))) goto done;
      memcpy(help_buf, "Metric read from ", 17);
      if (fl) memcpy(help_buf + 17, e->files, fl);
      help_buf[17 + fl] = '\0';
      help = help_buf;
      hl = 17 + fl;
    }
    int fam = mw_node_raw_family(raw, F->name, F->name_len, help, hl, F->type, &oom);
    if (oom) goto done;
    if (fam < 0) continue; /* refused when gathered: another type or HELP, a suffix collision */
    if (grow((void **)&ls, &ls_cap, nnames ? nnames : 1, sizeof *ls) < 0) goto done;
    int simple = F->type != MW_NODE_RAW_SUMMARY && F->type != MW_NODE_RAW_HISTOGRAM;
    for (size_t j = mstart[fi]; j < mstart[fi + 1]; j++) {
      size_t mi = morder[j];
      const tp_metric_t *m = &f->metrics[mi];
      size_t nl = m->nlab;
      if (nl) memcpy(ls, &f->labels[m->lab], nl * sizeof *ls);
      for (size_t q = 0; q < nnames; q++)
        if (!has_label(ls, m->nlab, names[q].name, names[q].name_len))
          ls[nl++] = (mw_label_t){names[q].name, "", names[q].name_len, 0};
      size_t np = pstart[mi + 1] - pstart[mi];
      if (grow((void **)&pts, &pts_cap, 2 * np + 2, sizeof *pts) < 0) goto done;
      for (size_t k = 0; k < np; k++) {
        pts[2 * k] = porder[pstart[mi] + k].k;
        pts[2 * k + 1] = porder[pstart[mi] + k].v;
      }
      if (mw_node_raw_add(raw, fam, ls, nl, simple ? m->value : 0, pts, np, m->sum, m->count) < 0)
        goto done;
    }
  }
  rc = 0;
done:
  free(help_buf);
  free(names);
  free(ls);
  free(pts);
  free(mstart);
  free(morder);
  free(pstart);
  free(porder);
  return rc;
}

/* --- the collector ----------------------------------------------------------------- */

static tf_file_t *file_new(struct mw_node_textfile *t, const char *path) {
  if (grow((void **)&t->files, &t->files_cap, t->nfiles + 1, sizeof *t->files) < 0) return NULL;
  tf_file_t *f = &t->files[t->nfiles];
  memset(f, 0, sizeof *f);
  mw_arena_init(&f->arena);
  f->mtime = -1;
  if (!(f->path = strdup(path))) return NULL;
  t->nfiles++;
  return f;
}

int mw_node_textfile_convert(mw_node_raw_t *raw, struct mw_node_textfile **state, const char *path,
                             const char *body, size_t len, char *err, size_t errlen) {
  if (!*state && !(*state = calloc(1, sizeof **state))) goto oom;
  struct mw_node_textfile *t = *state;
  names_reset(t);
  files_reset(t);
  tf_file_t *f = file_new(t, path);
  if (!f) goto oom;
  int rc = file_parse(t, f, body, len, err, errlen);
  if (rc == 0 && (file_names(t, f) < 0 || file_convert(t, raw, f) < 0)) goto oom;
  files_reset(t);
  return rc;
oom:
  if (*state) files_reset(*state);
  mw_seterr(err, errlen, "out of memory");
  return -1;
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
  names_reset(t);
  files_reset(t);

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
      tf_file_t *f = path ? file_new(t, path) : NULL;
      free(path);
      if (!f) {
        errored = 1;
        mw_node_note(s, "out of memory");
        continue;
      }
      int fd = open(f->path, O_RDONLY | O_CLOEXEC);
      size_t len = 0;
      char *body = fd >= 0 ? read_fd(fd, &len) : NULL;
      if (!body && fd >= 0 && errno == EISDIR) /* TextParser: a read error at a line's */
        body = calloc(1, 1);                   /* start ends the input */
      if (!body) {
        errored = 1;
        mw_node_note(s, "failed to open textfile data file \"%s\": %s", f->path, strerror(errno));
        if (fd >= 0) close(fd);
        file_free(f);
        t->nfiles--;
        continue;
      }
      int r = file_parse(t, f, body, len, msg, sizeof msg);
      free(body);
      struct stat st;
      if (r == 0 && fstat(fd, &st) < 0) { /* the families count, the file has no mtime */
        errored = 1;
        mw_node_note(s, "failed to stat \"%s\": %s", f->path, strerror(errno));
      } else if (r == 0) {
        f->mtime = (double)st.st_mtim.tv_sec;
      }
      close(fd);
      if (r < 0) {
        errored = 1;
        mw_node_note(s, "%s", msg);
        file_free(f);
        t->nfiles--;
        continue;
      }
      if (file_names(t, f) < 0) {
        errored = 1;
        mw_node_note(s, "out of memory");
        file_free(f);
        t->nfiles--;
      }
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
  for (size_t i = 0; i < t->nfiles; i++) {
    tf_file_t *f = &t->files[i];
    if (file_convert(t, s->raw, f) < 0) {
      errored = 1;
      mw_node_note(s, "out of memory");
      continue;
    }
    if (f->mtime >= 0) mw_node_put(s, mt, f->mtime, f->path);
  }
  mw_node_put1(s, "node_textfile_scrape_error",
               "1 if there was an error opening or reading a file, 0 otherwise", MW_METRICS_GAUGE,
               errored);
  files_reset(t); /* no memory held between collections but the arrays */
  names_reset(t);
  return 0;
}
