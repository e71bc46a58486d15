/* exposition/write.c: Prometheus text 0.0.4 / OpenMetrics 1.0.0 writer, content
 * negotiation and gzip. The output follows prometheus/common's expfmt
 * (text_create.go, openmetrics_create.go) byte for byte, and the registry is
 * normalised as client_golang's Gather does (families by name, children by
 * label values). */
#include "exposition/write.h"
#include "base/err.h"
#include "base/gzip.h"

#include <ctype.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert((int)MW_EXPOSE_TEXT == (int)MW_METRICS_FMT_TEXT &&
                   (int)MW_EXPOSE_OPENMETRICS == (int)MW_METRICS_FMT_OPENMETRICS &&
                   (int)MW_EXPOSE_OPENMETRICS_0_0_1 == (int)MW_METRICS_FMT_OPENMETRICS_0_0_1,
               "expose formats match the FFI enum");

/* --- buffer --------------------------------------------------------------- */

void mw_expose_buf_free(mw_expose_buf_t *buf) {
  if (!buf) return;
  free(buf->data);
  buf->data = NULL;
  buf->len = buf->cap = 0;
}

static int buf_reserve(mw_expose_buf_t *b, size_t extra) {
  if (b->cap - b->len >= extra) return 0;
  if (extra > SIZE_MAX / 2 - b->len) return -1;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap - b->len < extra)
    cap *= 2;
  char *d = realloc(b->data, cap);
  if (!d) return -1;
  b->data = d;
  b->cap = cap;
  return 0;
}

/* A writer remembers the first allocation failure; later writes are no-ops. */
typedef struct {
  mw_expose_buf_t *b;
  int oom;
} writer_t;

static void put(writer_t *w, const char *s, size_t n) {
  if (w->oom || n == 0) return;
  if (buf_reserve(w->b, n) < 0) {
    w->oom = 1;
    return;
  }
  memcpy(w->b->data + w->b->len, s, n);
  w->b->len += n;
}

static void puts_(writer_t *w, const char *s) { put(w, s, strlen(s)); }

static void putc_(writer_t *w, char c) { put(w, &c, 1); }

/* expfmt's escaper: '\' -> "\\", newline -> "\n", and with quotes '"' -> "\"". */
static void put_escaped(writer_t *w, const char *s, size_t n, int quotes) {
  size_t start = 0;
  for (size_t i = 0; i < n; i++) {
    const char *rep = NULL;
    if (s[i] == '\\')
      rep = "\\\\";
    else if (s[i] == '\n')
      rep = "\\n";
    else if (quotes && s[i] == '"')
      rep = "\\\"";
    if (!rep) continue;
    put(w, s + start, i - start);
    put(w, rep, 2);
    start = i + 1;
  }
  put(w, s + start, n - start);
}

/* --- floats --------------------------------------------------------------- */

/* Exact powers of ten (every one up to 1e22 is a double). */
static const double pow10_tab[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The decimal digits of u ("0" for 0) without trailing zeros into digits[0..*nd);
 * returns how many digits u has (with the zeros). */
static int u64_digits(uint64_t u, char *digits, int *nd) {
  char tmp[20];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  int tz = 0;
  while (tz < n - 1 && tmp[tz] == '0')
    tz++;
  for (int i = 0; i < n - tz; i++)
    digits[i] = tmp[n - 1 - i];
  *nd = n - tz;
  return n;
}

/* Fast paths of shortest_digits for v (finite, > 0) with at most 15
 * significant digits; 1 when it filled digits/nd/dp, 0 when the caller must
 * take the slow path.
 *  - An integer below 2^53: its rounding interval is at most +-0.5 wide, so no
 *    decimal with fewer significant digits than the integer's own (trailing
 *    zeros stripped) lies in it; those digits are the shortest.
 *  - Else the smallest k <= 22 for which m = round(v * 10^k) < 10^15 and
 *    m / 10^k == v: m and 10^k are exact doubles and IEEE division rounds
 *    correctly, so m * 10^-k is a decimal that parses back to v. Below 10^15
 *    the rounding interval of v * 10^k is under 1/4 wide, so any k-decimal
 *    that round-trips is round(v * 10^k) (no smaller k is missed), and two
 *    decimals of at most 15 digits cannot both lie in it (the shortest is
 *    unique, so it is also the closest, as Go picks). */
static int shortest_fast(double v, char *digits, int *nd, int *dp) {
  if (v < 9007199254740992.0 && v == (double)(uint64_t)v) {
    *dp = u64_digits((uint64_t)v, digits, nd);
    return 1;
  }
  if (v >= 1e15 || v < 1e-7) return 0;
  for (int k = 1; k <= 22; k++) {
    double x = v * pow10_tab[k];
    if (x >= 1e15) return 0;
    double m = nearbyint(x);
    if (m < 1 || m / pow10_tab[k] != v) continue;
    *dp = u64_digits((uint64_t)m, digits, nd) - k;
    return 1;
  }
  return 0;
}

/* Shortest decimal digits that round-trip to v (finite, > 0), closest to v
 * among the shortest, like Go's strconv: digits[0..*nd) with value
 * 0.d1d2...dn * 10^dp.
 *
 * After the fast paths: the nearest p-digit decimal for p = 15, 16, 17. A
 * decimal of at most 15 digits that round-trips is the only one of its
 * length there (their spacing is over four ulps), so when the shortest has
 * <= 15 digits the nearest 15-digit decimal is it, zero-padded: trying p = 15
 * first gives what trying p = 1..15 in turn would. Subnormals have fewer
 * significant bits, so for them every p from 1 is tried. */
static void shortest_digits(double v, char *digits, int *nd, int *dp) {
  char buf[48];
  if (shortest_fast(v, digits, nd, dp)) return;
  for (int p = v < DBL_MIN ? 1 : 15; p <= 17; p++) {
    snprintf(buf, sizeof buf, "%.*e", p - 1, v);
    uint64_t m = 0;
    const char *s = buf;
    for (; *s && *s != 'e'; s++)
      if (*s >= '0' && *s <= '9') m = m * 10 + (uint64_t)(*s - '0');
    int e10 = atoi(s + 1) - (p - 1); /* v ~= m * 10^e10 */
    double r = strtod(buf, NULL);
    if (r != v) {
      /* The nearest p-digit decimal misses; near a power of two the
       * rounding interval is lopsided and the neighbour on the other side of
       * v may still round-trip. */
      uint64_t m2 = r < v ? m + 1 : m - 1;
      if (m2 == 0) continue;
      snprintf(buf, sizeof buf, "%" PRIu64 "e%d", m2, e10);
      if (strtod(buf, NULL) != v) continue;
      m = m2;
    }
    *dp = u64_digits(m, digits, nd) + e10;
    return;
  }
  /* %.16e always round-trips, so this is not reached. */
  digits[0] = '0';
  *nd = 1;
  *dp = 1;
}

/* strconv.FormatFloat(v, 'g', -1, 64) for finite non-zero v. */
static size_t fmt_go_g(char *dst, double v) {
  char digits[24] = {0}; /* fully written by shortest_digits; for the compiler */
  int nd, dp;
  char *p = dst;
  if (v < 0) {
    *p++ = '-';
    v = -v;
  }
  shortest_digits(v, digits, &nd, &dp);
  int exp = dp - 1;
  if (exp < -4 || exp >= 6) { /* %e, as Go's shortest 'g' uses eprec = 6 */
    *p++ = digits[0];
    if (nd > 1) {
      *p++ = '.';
      memcpy(p, digits + 1, (size_t)nd - 1);
      p += nd - 1;
    }
    *p++ = 'e';
    *p++ = exp < 0 ? '-' : '+';
    int e = exp < 0 ? -exp : exp;
    if (e < 10) {
      *p++ = '0';
      *p++ = (char)('0' + e);
    } else if (e < 100) {
      *p++ = (char)('0' + e / 10);
      *p++ = (char)('0' + e % 10);
    } else {
      *p++ = (char)('0' + e / 100);
      *p++ = (char)('0' + (e / 10) % 10);
      *p++ = (char)('0' + e % 10);
    }
  } else { /* %f with max(nd - dp, 0) decimals */
    if (dp > 0) {
      for (int i = 0; i < dp; i++)
        *p++ = i < nd ? digits[i] : '0';
    } else {
      *p++ = '0';
    }
    int prec = nd - dp;
    if (prec > 0) {
      *p++ = '.';
      for (int i = 0; i < prec; i++) {
        int j = dp + i;
        *p++ = (j >= 0 && j < nd) ? digits[j] : '0';
      }
    }
  }
  *p = '\0';
  return (size_t)(p - dst);
}

size_t mw_expose_fmt_float(char *dst, double v, int openmetrics) {
  const char *fixed = NULL;
  if (v == 1)
    fixed = openmetrics ? "1.0" : "1";
  else if (v == 0)
    fixed = openmetrics ? "0.0" : "0";
  else if (v == -1)
    fixed = openmetrics ? "-1.0" : "-1";
  else if (isnan(v))
    fixed = "NaN";
  else if (isinf(v))
    fixed = v > 0 ? "+Inf" : "-Inf";
  if (fixed) {
    size_t n = strlen(fixed);
    memcpy(dst, fixed, n + 1);
    return n;
  }
  size_t n = fmt_go_g(dst, v);
  if (openmetrics && !memchr(dst, '.', n) && !memchr(dst, 'e', n)) {
    memcpy(dst + n, ".0", 3);
    n += 2;
  }
  return n;
}

static void put_float(writer_t *w, double v, int om) {
  char tmp[40];
  put(w, tmp, mw_expose_fmt_float(tmp, v, om));
}

static void put_uint(writer_t *w, uint64_t u) {
  char tmp[24];
  size_t n = sizeof tmp;
  do {
    tmp[--n] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  put(w, tmp + n, sizeof tmp - n);
}

/* --- writer --------------------------------------------------------------- */

/* name+suffix{labels sorted by name[,le="bound"]} value\n */
static void put_sample(writer_t *w, const mw_metrics_family_t *f, const char *name, size_t name_len,
                       const char *suffix, const mw_metrics_child_t *c, const double *le, int om) {
  put(w, name, name_len);
  puts_(w, suffix);
  if (f->nlabels || le) {
    char sep = '{';
    for (size_t i = 0; i < f->nlabels; i++) {
      size_t k = f->label_order[i];
      putc_(w, sep);
      puts_(w, f->label_names[k]);
      put(w, "=\"", 2);
      put_escaped(w, c->values[k].ptr, c->values[k].len, 1);
      putc_(w, '"');
      sep = ',';
    }
    if (le) {
      putc_(w, sep);
      put(w, "le=\"", 4);
      put_float(w, *le, om);
      putc_(w, '"');
    }
    putc_(w, '}');
  }
  putc_(w, ' ');
}

static void put_family(writer_t *w, const mw_metrics_family_t *f,
                       mw_metrics_child_t *const *children, size_t n, int om) {
  size_t name_len = strlen(f->name);
  int total = f->type == MW_METRICS_COUNTER && name_len >= 6 &&
              strcmp(f->name + name_len - 6, "_total") == 0;
  /* OpenMetrics: a counter family is named without _total, its samples with. */
  size_t meta_len = om && total ? name_len - 6 : name_len;
  const char *type = "untyped";
  switch (f->type) {
  case MW_METRICS_COUNTER: type = !om || total ? "counter" : "unknown"; break;
  case MW_METRICS_GAUGE: type = "gauge"; break;
  case MW_METRICS_HISTOGRAM: type = "histogram"; break;
  case MW_METRICS_UNTYPED: type = om ? "unknown" : "untyped"; break;
  }
  put(w, "# HELP ", 7);
  put(w, f->name, meta_len);
  putc_(w, ' ');
  put_escaped(w, f->help, strlen(f->help), om);
  putc_(w, '\n');
  put(w, "# TYPE ", 7);
  put(w, f->name, meta_len);
  putc_(w, ' ');
  puts_(w, type);
  putc_(w, '\n');

  for (size_t i = 0; i < n; i++) {
    const mw_metrics_child_t *c = children[i];
    if (f->type != MW_METRICS_HISTOGRAM) {
      put_sample(w, f, f->name, name_len, "", c, NULL, om);
      put_float(w, c->value, om);
      putc_(w, '\n');
      continue;
    }
    uint64_t cum = 0;
    for (size_t b = 0; b < f->nbounds; b++) {
      cum += c->buckets[b];
      put_sample(w, f, f->name, name_len, "_bucket", c, &f->bounds[b], om);
      if (om)
        put_uint(w, cum);
      else
        put_float(w, (double)cum, 0);
      putc_(w, '\n');
    }
    double inf = INFINITY;
    put_sample(w, f, f->name, name_len, "_bucket", c, &inf, om);
    if (om)
      put_uint(w, c->count);
    else
      put_float(w, (double)c->count, 0);
    putc_(w, '\n');
    put_sample(w, f, f->name, name_len, "_sum", c, NULL, om);
    put_float(w, c->sum, om);
    putc_(w, '\n');
    put_sample(w, f, f->name, name_len, "_count", c, NULL, om);
    if (om)
      put_uint(w, c->count);
    else
      put_float(w, (double)c->count, 0);
    putc_(w, '\n');
  }
}

int mw_expose_write(mw_metrics_t *reg, int format, mw_expose_buf_t *buf, char *err, size_t errlen) {
  return mw_expose_write_extra(reg, format, NULL, 0, buf, err, errlen);
}

int mw_expose_write_extra(mw_metrics_t *reg, int format, const mw_expose_extra_t *extra, size_t n,
                          mw_expose_buf_t *buf, char *err, size_t errlen) {
  size_t start = buf ? buf->len : 0, x = 0;
  writer_t w = {buf, 0};
  int rc = -1;

  if (!reg || !buf) {
    mw_seterr(err, errlen, "expose: no registry or buffer");
    goto done;
  }
  if (format != MW_EXPOSE_TEXT && format != MW_EXPOSE_OPENMETRICS &&
      format != MW_EXPOSE_OPENMETRICS_0_0_1) {
    mw_seterr(err, errlen, "expose: unknown format %d", format);
    goto done;
  }
  int om = format != MW_EXPOSE_TEXT;
  mw_metrics_collect(reg);

  /* families by name, children by label values: sorted by the registry, which
   * keeps the order until a family or child comes or goes */
  size_t nf;
  mw_metrics_family_t *const *families = mw_metrics_families_sorted(reg, &nf);
  if (!families) goto oom;
  for (size_t i = 0; i < nf; i++) {
    mw_metrics_family_t *f = families[i];
    if (f->nchildren == 0) continue;
    for (; x < n && strcmp(extra[x].name, f->name) < 0; x++)
      put(&w, extra[x].text, extra[x].len);
    size_t nc;
    mw_metrics_child_t *const *children = mw_metrics_children_sorted(f, &nc);
    if (!children) goto oom;
    put_family(&w, f, children, nc, om);
  }
  for (; x < n; x++)
    put(&w, extra[x].text, extra[x].len);
  if (om) puts_(&w, "# EOF\n");
  if (w.oom) goto oom;
  rc = 0;
  goto done;

oom:
  mw_seterr(err, errlen, "expose: out of memory");
done:
  if (rc < 0 && buf) buf->len = start;
  return rc;
}

/* --- Accept negotiation (munnerz/goautoneg + expfmt) ------------------------ */

typedef struct {
  const char *p;
  size_t n;
} span_t;

/* goautoneg's nextSplitElement: item before the first sep, and the rest. */
static span_t next_split(span_t *s, char sep) {
  span_t item = *s;
  const char *q = s->n ? memchr(s->p, sep, s->n) : NULL;
  if (q) {
    item.n = (size_t)(q - s->p);
    s->p = q + 1;
    s->n -= item.n + 1;
  } else {
    s->p += s->n;
    s->n = 0;
  }
  return item;
}

static span_t trim_spaces(span_t s) {
  while (s.n && s.p[0] == ' ')
    s.p++, s.n--;
  while (s.n && s.p[s.n - 1] == ' ')
    s.n--;
  return s;
}

static int span_eq(span_t s, const char *lit) {
  size_t n = strlen(lit);
  return s.n == n && memcmp(s.p, lit, n) == 0;
}

/* strconv.ParseFloat(s, 32): the float32 value as a double; 0 on a syntax error. */
static double parse_float32(span_t s) {
  char tmp[256];
  if (s.n == 0 || s.n >= sizeof tmp) return 0;
  memcpy(tmp, s.p, s.n);
  tmp[s.n] = '\0';
  if (isspace((unsigned char)tmp[0]) || strchr(tmp, '(')) return 0;
  if ((strchr(tmp, 'x') || strchr(tmp, 'X')) && !strchr(tmp, 'p') && !strchr(tmp, 'P')) return 0;
  char *end;
  float f = strtof(tmp, &end);
  if (end == tmp || *end) return 0;
  return (double)f;
}

#define MAX_ACCEPT_CLAUSES 64

typedef struct {
  span_t type, subtype, version;
  double q;
} accept_clause_t;

/* goautoneg's Less, used by an insertion sort as Go's sort.Sort does for
 * short slices (it is not a strict order, so the algorithm matters). */
static int clause_less(const accept_clause_t *a, const accept_clause_t *b) {
  if (a->q > b->q) return 1;
  if (!span_eq(a->type, "*") && span_eq(b->type, "*")) return 1;
  if (!span_eq(a->subtype, "*") && span_eq(b->subtype, "*")) return 1;
  return 0;
}

static size_t parse_accept(const char *header, accept_clause_t *out, size_t max) {
  span_t rest = {header, header ? strlen(header) : 0};
  size_t n = 0;
  while (rest.n > 0 && n < max) {
    span_t part = trim_spaces(next_split(&rest, ','));
    accept_clause_t a = {{"", 0}, {"", 0}, {"", 0}, 1.0};
    span_t params = part;
    span_t media = next_split(&params, ';');
    span_t sp = media;
    a.type = trim_spaces(next_split(&sp, '/'));
    if (sp.n == 0) {
      if (!span_eq(a.type, "*")) continue;
      a.subtype = (span_t){"*", 1};
    } else {
      span_t sub = next_split(&sp, '/');
      if (sp.n > 0) continue;
      a.subtype = trim_spaces(sub);
    }
    while (params.n > 0) {
      span_t kv = next_split(&params, ';');
      span_t key = next_split(&kv, '=');
      if (kv.n == 0) continue;
      span_t val = next_split(&kv, '=');
      if (kv.n != 0) continue;
      key = trim_spaces(key);
      if (span_eq(key, "q"))
        a.q = parse_float32(val);
      else if (span_eq(key, "version"))
        a.version = trim_spaces(val);
    }
    out[n++] = a;
  }
  for (size_t i = 1; i < n; i++) {
    for (size_t j = i; j > 0 && clause_less(&out[j], &out[j - 1]); j--) {
      accept_clause_t t = out[j];
      out[j] = out[j - 1];
      out[j - 1] = t;
    }
  }
  return n;
}

int mw_expose_negotiate(const char *accept) {
  accept_clause_t clauses[MAX_ACCEPT_CLAUSES];
  size_t n = parse_accept(accept, clauses, MAX_ACCEPT_CLAUSES);
  for (size_t i = 0; i < n; i++) {
    const accept_clause_t *a = &clauses[i];
    span_t v = a->version;
    if (span_eq(a->type, "text") && span_eq(a->subtype, "plain") &&
        (span_eq(v, "0.0.4") || v.n == 0))
      return MW_EXPOSE_TEXT;
    if (span_eq(a->type, "application") && span_eq(a->subtype, "openmetrics-text")) {
      if (span_eq(v, "1.0.0")) return MW_EXPOSE_OPENMETRICS;
      if (span_eq(v, "0.0.1") || v.n == 0) return MW_EXPOSE_OPENMETRICS_0_0_1;
    }
  }
  return MW_EXPOSE_TEXT;
}

const char *mw_expose_content_type(int format) {
  switch (format) {
  case MW_EXPOSE_OPENMETRICS: return "application/openmetrics-text; version=1.0.0; charset=utf-8";
  case MW_EXPOSE_OPENMETRICS_0_0_1:
    return "application/openmetrics-text; version=0.0.1; charset=utf-8";
  default: return "text/plain; version=0.0.4; charset=utf-8";
  }
}

/* --- Accept-Encoding negotiation (golang/gddo httputil, as vendored by
 * client_golang) ------------------------------------------------------------ */

static int is_space_octet(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int is_token_octet(unsigned char c) {
  return c > 31 && c < 127 && !strchr(" \t\"(),/:;<=>?@[]\\{}", c);
}

int mw_expose_wants_gzip(const char *accept_encoding) {
  const char *s = accept_encoding ? accept_encoding : "";
  double best_q = -1;
  int best_gzip = 0; /* best offer starts as identity */
  span_t specs[MAX_ACCEPT_CLAUSES];
  double qs[MAX_ACCEPT_CLAUSES];
  size_t n = 0;

  while (n < MAX_ACCEPT_CLAUSES) {
    const char *t = s;
    while (*s && (is_token_octet((unsigned char)*s) || *s == '/'))
      s++;
    if (s == t) break;
    span_t value = {t, (size_t)(s - t)};
    double q = 1.0;
    while (is_space_octet((unsigned char)*s))
      s++;
    if (*s == ';') {
      s++;
      while (is_space_octet((unsigned char)*s))
        s++;
      if (strncmp(s, "q=", 2) != 0) break;
      s += 2;
      if (*s == '0')
        q = 0;
      else if (*s == '1')
        q = 1;
      else
        break;
      s++;
      if (*s == '.') {
        double num = 0, den = 1;
        for (s++; *s >= '0' && *s <= '9'; s++) {
          num = num * 10 + (*s - '0');
          den *= 10;
        }
        q += num / den;
      }
    }
    specs[n] = value;
    qs[n++] = q;
    while (is_space_octet((unsigned char)*s))
      s++;
    if (*s != ',') break;
    s++;
    while (is_space_octet((unsigned char)*s))
      s++;
  }
  static const char *const offers[] = {"identity", "gzip"};
  for (int o = 0; o < 2; o++) {
    for (size_t i = 0; i < n; i++) {
      if (qs[i] > best_q && (span_eq(specs[i], "*") || span_eq(specs[i], offers[o]))) {
        best_q = qs[i];
        best_gzip = o == 1;
      }
    }
  }
  return best_gzip && best_q != 0;
}

/* --- FFI ------------------------------------------------------------------ */

int mw_expose_finish(mw_expose_buf_t *text, int gzip, char **out, size_t *len, char *err,
                     size_t errlen) {
  int rc = -1;
  if (gzip) { /* base/gzip.h: the process's one compressor */
    unsigned char *z;
    size_t n;
    if (mw_gzip(text->data, text->len, &z, &n) != 0) {
      mw_seterr(err, errlen, "gzip: out of memory");
      goto done;
    }
    mw_expose_buf_free(text);
    *text = (mw_expose_buf_t){.data = (char *)z, .len = n, .cap = n};
  }
  if (!text->data && buf_reserve(text, 1) < 0) { /* never hand out NULL on success */
    mw_seterr(err, errlen, "expose: out of memory");
    goto done;
  }
  *out = text->data;
  *len = text->len;
  *text = (mw_expose_buf_t){0};
  rc = 0;
done:
  mw_expose_buf_free(text);
  return rc;
}

int mw_ffi_metrics_expose(mw_metrics_t *reg, int format, int gzip, char **out, size_t *len,
                          char *err, size_t errlen) {
  mw_expose_buf_t text = {0};
  if (!out || !len) {
    mw_seterr(err, errlen, "expose: no output pointers");
    return -1;
  }
  *out = NULL;
  *len = 0;
  if (mw_expose_write(reg, format, &text, err, errlen) < 0) {
    mw_expose_buf_free(&text);
    return -1;
  }
  return mw_expose_finish(&text, gzip, out, len, err, errlen);
}

void mw_ffi_metrics_buf_free(char *p) { free(p); }

int mw_ffi_metrics_negotiate(const char *accept) { return mw_expose_negotiate(accept); }

const char *mw_ffi_metrics_content_type(int format) { return mw_expose_content_type(format); }

int mw_ffi_metrics_wants_gzip(const char *accept_encoding) {
  return mw_expose_wants_gzip(accept_encoding);
}
