/* exposition/parse.c: Prometheus text / OpenMetrics parser (see exposition/parse.h).
 *
 * Per sample line the parser first finds the raw series text (metric name and
 * label braces, unparsed), hashes it and asks the scrape cache. A hit gives
 * the series ref at once; a miss parses and validates the labels and queues
 * the label set, which is interned (and the cache taught) with the other
 * misses of its group, in line order, before any later sample goes out (see
 * mw_flush). On a miss the parser also scans and hashes the next lines ahead
 * (mw_look_ahead). Both let the memory loads of the two hash indexes overlap
 * instead of stalling every new series twice. The value and timestamp are
 * parsed on both paths. Every read stays below the body length. */
#include "exposition/parse.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "base/err.h"
#include "base/labels.h"
#include "exposition/nhcb.h"
#include "exposition/parse_proto.h"
#include "exposition/scrapecache.h"
#include "model/batch.h"
#include "model/series.h"

typedef struct mw_expfmt_parser mw_parser_t;

/* New series are interned in groups of up to MW_PEND (see mw_flush). */
#define MW_PEND 16
/* On cache misses the series texts of up to MW_AHEAD following lines are
 * scanned and hashed ahead (see mw_look_ahead). */
#define MW_AHEAD 8
/* OpenMetrics (and Prometheus's exemplar.ExemplarMaxLabelSetLength): the
 * label names and values of an exemplar hold at most 128 code points. */
#define MW_EXEMPLAR_MAX_RUNES 128

/* A sample line's series text, found ahead: mw_scan_series(start) and its
 * hash. */
typedef struct {
  size_t start, name_end, key_end;
  mw_skey_t hash;
} mw_ahead_t;

/* A cache miss queued for interning: its series text's key, its encoded
 * labels (in the parser's penc) and, once the rest of its line parsed, its
 * sample. */
typedef struct {
  size_t ls;          /* line start, for errors */
  size_t enc;         /* encoded labels offset in penc */
  uint32_t enc_len;   /* encoded labels length */
  mw_skey_t key_hash; /* mw_scrapecache_hash of the series text */
  uint64_t hash;      /* mw_labels_hash of the encoded labels */
  int64_t ts;
  double v;
  int has_sample; /* the line parsed to its end: mark and append the sample */
  int explicit_ts;
  int oob; /* its timestamp is out of int64 milliseconds: mark it, drop the sample */
  int ex;  /* the line's exemplar (index in the parser's pex), -1: none */
} mw_pend_t;

/* A valid exemplar, parsed and waiting for its sample to be appended: its
 * encoded labels in the parser's pexbuf. */
typedef struct {
  size_t off;
  uint32_t len;
  int has_ts;
  int64_t ts;
  double v;
} mw_pex_t;

struct mw_expfmt_parser {
  const char *b;
  size_t n;
  int om;
  uint32_t flags;
  int64_t dts;
  mw_scrapecache_t *c;
  mw_batch_t *batch;
  mw_expfmt_stats_t *st;
  char *err;
  size_t errlen;
  int cur_type; /* type from the last TYPE line */
  int legacy;   /* MW_EXPFMT_LEGACY_NAMES: names must match the legacy grammar */
  /* The metric name mw_parse_labels found quoted in the braces (Prometheus
   * 3), unescaped (in the body or in buf). */
  const char *qname;
  uint32_t qname_len;
  /* Scratch for cache misses, allocated on the first miss. */
  mw_label_t *ls;
  size_t ls_cap;
  char *buf; /* unescaped label values */
  size_t buf_cap;
  /* Look-ahead, on cache misses: the series texts of the next sample lines
   * (ah_n of them from ah[ah_head], ring order, by offset), scanned and
   * hashed early so that their cache slots load while this line is interned;
   * ah_next is where scanning ahead resumes. */
  mw_ahead_t ah[MW_AHEAD];
  size_t ah_head, ah_n, ah_next;
  /* Cache misses queued for interning, and their encoded label sets. */
  mw_pend_t pend[MW_PEND];
  size_t npend;
  uint8_t *penc;
  size_t penc_len, penc_cap;
  /* Exemplars of the queued lines and of the current one; emptied at a line
   * start with nothing queued. Allocated at the first exemplar. */
  mw_pex_t *pex;
  size_t npex, pex_cap;
  uint8_t *pexbuf;
  size_t pexbuf_len, pexbuf_cap;
  int line_ex; /* the current line's exemplar, -1: none */
  /* Incremental parsing (mw_expfmt_begin/step): where the next line starts,
   * where this step pauses (at the first line start at or past it), whether
   * OpenMetrics' # EOF was seen; lines starting before line_ok are known to be
   * at most MW_EXPFMT_MAX_LINE bytes long. */
  size_t pos, stop, line_ok;
  int eof;
  uint64_t sample_limit; /* 0: none */
  /* The protobuf format: its parser (made at the first step) and the native histogram
   * limits it applies (mw_expfmt_set_histograms). */
  int proto_fmt;
  mw_proto_t *proto;
  uint32_t bucket_limit;
  double min_factor;
};

/* --- character classes and errors --------------------------------------- */

/* Character classes of the bytes 0-255. */
enum { MW_C_LSTART = 1, MW_C_LCHAR = 2, MW_C_MSTART = 4, MW_C_MCHAR = 8 };
#define MW_C_LETTER (MW_C_LSTART | MW_C_LCHAR | MW_C_MSTART | MW_C_MCHAR)
#define MW_C_LETTERS(a)                                                                            \
  [a] = MW_C_LETTER, [a + 1] = MW_C_LETTER, [a + 2] = MW_C_LETTER, [a + 3] = MW_C_LETTER,          \
  [a + 4] = MW_C_LETTER, [a + 5] = MW_C_LETTER, [a + 6] = MW_C_LETTER, [a + 7] = MW_C_LETTER,      \
  [a + 8] = MW_C_LETTER, [a + 9] = MW_C_LETTER, [a + 10] = MW_C_LETTER, [a + 11] = MW_C_LETTER,    \
  [a + 12] = MW_C_LETTER, [a + 13] = MW_C_LETTER, [a + 14] = MW_C_LETTER, [a + 15] = MW_C_LETTER,  \
  [a + 16] = MW_C_LETTER, [a + 17] = MW_C_LETTER, [a + 18] = MW_C_LETTER, [a + 19] = MW_C_LETTER,  \
  [a + 20] = MW_C_LETTER, [a + 21] = MW_C_LETTER, [a + 22] = MW_C_LETTER, [a + 23] = MW_C_LETTER,  \
  [a + 24] = MW_C_LETTER, [a + 25] = MW_C_LETTER
#define MW_C_DIGIT (MW_C_LCHAR | MW_C_MCHAR)
static const unsigned char mw_cls[256] = {
    MW_C_LETTERS('a'),  MW_C_LETTERS('A'),  ['_'] = MW_C_LETTER, [':'] = MW_C_MSTART | MW_C_MCHAR,
    ['0'] = MW_C_DIGIT, ['1'] = MW_C_DIGIT, ['2'] = MW_C_DIGIT,  ['3'] = MW_C_DIGIT,
    ['4'] = MW_C_DIGIT, ['5'] = MW_C_DIGIT, ['6'] = MW_C_DIGIT,  ['7'] = MW_C_DIGIT,
    ['8'] = MW_C_DIGIT, ['9'] = MW_C_DIGIT};

/* c is a byte or -1 (past the end: in no class). */
static inline int mw_is_lname_start(int c) { return c >= 0 && (mw_cls[c] & MW_C_LSTART); }
static inline int mw_is_lname_char(int c) { return c >= 0 && (mw_cls[c] & MW_C_LCHAR); }
static inline int mw_is_mname_start(int c) { return c >= 0 && (mw_cls[c] & MW_C_MSTART); }
static inline int mw_is_mname_char(int c) { return c >= 0 && (mw_cls[c] & MW_C_MCHAR); }
static inline int mw_is_ws(int c) { return c == ' ' || c == '\t'; }

/* The offset of the first byte in [j, n) equal to c1, c2 or c3, or n (j if
 * j >= n). */
static inline size_t mw_find3(const char *b, size_t j, size_t n, char c1, char c2, char c3) {
#ifdef __SSE2__
  const __m128i v1 = _mm_set1_epi8(c1), v2 = _mm_set1_epi8(c2), v3 = _mm_set1_epi8(c3);
  for (; j + 16 <= n; j += 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + j));
    __m128i eq = _mm_or_si128(_mm_cmpeq_epi8(v, v1), _mm_cmpeq_epi8(v, v2));
    unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(eq, _mm_cmpeq_epi8(v, v3)));
    if (m) return j + (size_t)__builtin_ctz(m);
  }
#endif
  while (j < n && b[j] != c1 && b[j] != c2 && b[j] != c3)
    j++;
  return j;
}

/* The end of the run of metric name characters [a-zA-Z0-9_:] at i. */
static inline size_t mw_mname_end(const char *b, size_t i, size_t n) {
#ifdef __SSE2__
  for (; i + 16 <= n; i += 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + i));
    /* Signed compares: bytes >= 0x80 are negative, in no range. */
    __m128i lo = _mm_or_si128(v, _mm_set1_epi8(0x20)); /* A-Z -> a-z */
    __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(lo, _mm_set1_epi8('a' - 1)),
                                   _mm_cmplt_epi8(lo, _mm_set1_epi8('z' + 1)));
    __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
                                  _mm_cmplt_epi8(v, _mm_set1_epi8(':' + 1))); /* 0-9 and : */
    __m128i ok = _mm_or_si128(_mm_or_si128(letter, digit), _mm_cmpeq_epi8(v, _mm_set1_epi8('_')));
    unsigned m = ~(unsigned)_mm_movemask_epi8(ok) & 0xffffu;
    if (m) return i + (size_t)__builtin_ctz(m);
  }
#endif
  while (i < n && mw_is_mname_char((unsigned char)b[i]))
    i++;
  return i;
}

/* The byte at i, or -1 past the end. */
static inline int mw_at(const mw_parser_t *p, size_t i) {
  return i < p->n ? (unsigned char)p->b[i] : -1;
}
/* Text format: the body ends with an implicit newline. */
static inline int mw_at_text(const mw_parser_t *p, size_t i) {
  return i < p->n ? (unsigned char)p->b[i] : '\n';
}

/* Writes s (n bytes) quoted like Go's %q (ASCII escapes, \xNN), cut at about
 * 80 source bytes. */
static void mw_quote(char *dst, size_t cap, const char *s, size_t n) {
  size_t o = 0;
  const size_t max = 80;
  int cut = n > max;
  if (cut) n = max;
  if (o + 1 < cap) dst[o++] = '"';
  for (size_t i = 0; i < n && o + 6 < cap; i++) {
    unsigned char ch = (unsigned char)s[i];
    switch (ch) {
    case '"': o += (size_t)snprintf(dst + o, cap - o, "\\\""); break;
    case '\\': o += (size_t)snprintf(dst + o, cap - o, "\\\\"); break;
    case '\n': o += (size_t)snprintf(dst + o, cap - o, "\\n"); break;
    case '\t': o += (size_t)snprintf(dst + o, cap - o, "\\t"); break;
    case '\r': o += (size_t)snprintf(dst + o, cap - o, "\\r"); break;
    default:
      if (ch < 0x20 || ch >= 0x7f) {
        o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", ch);
      } else {
        dst[o++] = (char)ch;
      }
    }
  }
  if (cut && o + 4 < cap) o += (size_t)snprintf(dst + o, cap - o, "...");
  if (o + 1 < cap) dst[o++] = '"';
  dst[o < cap ? o : cap - 1] = 0;
}

static size_t mw_line_no(const mw_parser_t *p, size_t pos) {
  size_t line = 1;
  const char *s = p->b, *end = p->b + (pos < p->n ? pos : p->n);
  while ((s = memchr(s, '\n', (size_t)(end - s))) != NULL) {
    line++;
    s++;
  }
  return line;
}

/* Fails the parse at the line holding ls: "line N: <msg>". Returns -1. */
static int mw_fail(mw_parser_t *p, size_t ls, const char *fmt, ...) {
  if (!p->err || !p->errlen) return -1;
  mw_seterr(p->err, p->errlen, "line %zu: ", mw_line_no(p, ls));
  va_list ap;
  va_start(ap, fmt);
  mw_vadderr(p->err, p->errlen, fmt, ap);
  va_end(ap);
  return -1;
}

/* "<what>, got "<token>" while parsing: "<line so far>"", as Prometheus's
 * parseError. The token is [tok, tok_end) (one byte if empty, nothing at the
 * end of the body). */
static int mw_fail_tok(mw_parser_t *p, size_t ls, size_t tok, size_t tok_end, const char *what) {
  char got[128], line[128];
  if (tok_end <= tok) tok_end = tok + 1;
  if (tok > p->n) tok = p->n;
  if (tok_end > p->n) tok_end = p->n;
  mw_quote(got, sizeof got, p->b + tok, tok_end - tok);
  mw_quote(line, sizeof line, p->b + ls, tok_end - ls);
  return mw_fail(p, ls, "%s, got %s while parsing: %s", what, tok < p->n ? got : "EOF", line);
}

static int mw_fail_oom(mw_parser_t *p) {
  mw_seterr(p->err, p->errlen, "out of memory");
  return -1;
}

/* The body has more samples than the sample limit: it fails at once, without
 * parsing the rest (Prometheus's message). */
static int mw_fail_limit(mw_parser_t *p) {
  mw_seterr(p->err, p->errlen, "sample limit exceeded");
  return -1;
}

/* --- numbers ------------------------------------------------------------- */

static locale_t mw_c_locale;
static pthread_once_t mw_c_locale_once = PTHREAD_ONCE_INIT;
static void mw_c_locale_init(void) { mw_c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

static int mw_ieq(const char *s, const char *lower, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((s[i] | 0x20) != lower[i]) return 0;
  return 1;
}

static const double mw_pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                  1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                  1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

int mw_expfmt_parse_float(const char *s, size_t n, double *out) {
  size_t i = 0;
  int neg = 0;
  if (n == 0) return -1;
  /* Specials, as Go's strconv: [+-]inf, [+-]infinity, nan (any case). */
  if (s[0] == '+' || s[0] == '-') {
    neg = s[0] == '-';
    i = 1;
  }
  if (n - i == 3 || n - i == 8) {
    if ((n - i == 3 && mw_ieq(s + i, "inf", 3)) || (n - i == 8 && mw_ieq(s + i, "infinity", 8))) {
      *out = neg ? -INFINITY : INFINITY;
      return 0;
    }
    if (i == 0 && n == 3 && mw_ieq(s, "nan", 3)) {
      uint64_t bits = MW_NORMAL_NAN_BITS;
      memcpy(out, &bits, sizeof *out);
      return 0;
    }
  }
  /* Decimal syntax: digits [. digits] | . digits, then [eE][+-]digits. */
  uint64_t mant = 0;
  int ndig = 0, dropped = 0, exp10 = 0, any = 0;
  for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, any = 1) {
    if (mant == 0 && s[i] == '0') continue;
    if (ndig < 19) {
      mant = mant * 10 + (uint64_t)(s[i] - '0');
      ndig++;
    } else {
      dropped = 1;
      exp10++;
    }
  }
  if (i < n && s[i] == '.') {
    for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, any = 1) {
      if (mant == 0 && s[i] == '0') {
        exp10--;
        continue;
      }
      if (ndig < 19) {
        mant = mant * 10 + (uint64_t)(s[i] - '0');
        ndig++;
        exp10--;
      } else {
        dropped = 1;
      }
    }
  }
  if (!any) return -1;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    int eneg = 0, edig = 0;
    long e = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, edig = 1)
      if (e < 100000) e = e * 10 + (s[i] - '0');
    if (!edig) return -1;
    exp10 += (int)(eneg ? -e : e);
  }
  if (i != n) return -1;
  /* Exact fast path (Clinger): mantissa and power of ten both exact doubles. */
  if (!dropped && mant <= (1ULL << 53) && exp10 >= -22 && exp10 <= 22) {
    double v = (double)mant;
    v = exp10 < 0 ? v / mw_pow10[-exp10] : v * mw_pow10[exp10];
    *out = neg ? -v : v;
    return 0;
  }
  if (mant == 0) {
    *out = neg ? -0.0 : 0.0;
    return 0;
  }
  /* Correctly rounded slow path, locale-independent. */
  char tmp[512];
  char *t = n < sizeof tmp ? tmp : malloc(n + 1);
  if (!t) return -1;
  memcpy(t, s, n);
  t[n] = 0;
  pthread_once(&mw_c_locale_once, mw_c_locale_init);
  errno = 0;
  double v = mw_c_locale ? strtod_l(t, NULL, mw_c_locale) : strtod(t, NULL);
  int range = errno == ERANGE && isinf(v);
  if (t != tmp) free(t);
  if (range) return -1; /* Go: value out of range */
  *out = v;
  return 0;
}

/* --- scratch ----------------------------------------------------------- */

static int mw_scratch(mw_parser_t *p, size_t bytes, size_t labels) {
  if (p->buf_cap < bytes) {
    size_t cap = p->buf_cap ? p->buf_cap : 256;
    while (cap < bytes)
      cap *= 2;
    char *b = realloc(p->buf, cap);
    if (!b) return -1;
    p->buf = b;
    p->buf_cap = cap;
  }
  if (p->ls_cap < labels) {
    size_t cap = p->ls_cap ? p->ls_cap : 16;
    while (cap < labels)
      cap *= 2;
    mw_label_t *ls = realloc(p->ls, cap * sizeof *ls);
    if (!ls) return -1;
    p->ls = ls;
    p->ls_cap = cap;
  }
  return 0;
}

/* Room for bytes more encoded label bytes in penc. */
static int mw_scratch_enc(mw_parser_t *p, size_t bytes) {
  if (p->penc_cap - p->penc_len >= bytes) return 0;
  size_t cap = p->penc_cap ? p->penc_cap : 4096;
  while (cap - p->penc_len < bytes)
    cap *= 2;
  uint8_t *e = realloc(p->penc, cap);
  if (!e) return -1;
  p->penc = e;
  p->penc_cap = cap;
  return 0;
}

/* Unescapes \\, \" and \n (others stay as they are) from src into dst;
 * returns the length. dst has room for n bytes. */
static size_t mw_unescape(char *dst, const char *src, size_t n, int quote) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (src[i] == '\\' && i + 1 < n) {
      char e = src[i + 1];
      if (e == '\\' || e == 'n' || (quote && e == '"')) {
        dst[o++] = e == 'n' ? '\n' : e;
        i++;
        continue;
      }
    }
    dst[o++] = src[i];
  }
  return o;
}

/* --- series text --------------------------------------------------------- */

/* 1 if the n bytes at s are all ASCII (then valid UTF-8). */
static inline int mw_ascii(const char *s, size_t n) {
  uint64_t acc = 0, w;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    memcpy(&w, s + i, 8);
    acc |= w;
  }
  for (; i < n; i++)
    acc |= (unsigned char)s[i];
  return !(acc & 0x8080808080808080ULL);
}

#ifdef __SSE2__
/* Bit k set where v[k] == c, for 16 bytes. */
static inline uint64_t mw_mask16(__m128i v, char c) {
  return (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(c)));
}
#endif

/* Skips a brace section from j (just past '{'): outside quotes up to '}',
 * inside them up to the '"' not escaped by '\\'. Returns the offset past
 * '}', or (size_t)-1 if the body ends first. 64 bytes at a time, the
 * positions of '"', '\\' and '}' are found at once and walked as bits, so
 * the scan does not wait on one load per token. */
static size_t mw_skip_braces(const char *b, size_t j, size_t n) {
  int inq = 0;
#ifdef __SSE2__
  while (j + 64 <= n) {
    const __m128i *s = (const __m128i *)(const void *)(b + j);
    __m128i v0 = _mm_loadu_si128(s), v1 = _mm_loadu_si128(s + 1), v2 = _mm_loadu_si128(s + 2),
            v3 = _mm_loadu_si128(s + 3);
    uint64_t q = mw_mask16(v0, '"') | mw_mask16(v1, '"') << 16 | mw_mask16(v2, '"') << 32 |
                 mw_mask16(v3, '"') << 48;
    uint64_t bs = mw_mask16(v0, '\\') | mw_mask16(v1, '\\') << 16 | mw_mask16(v2, '\\') << 32 |
                  mw_mask16(v3, '\\') << 48;
    uint64_t cl = mw_mask16(v0, '}') | mw_mask16(v1, '}') << 16 | mw_mask16(v2, '}') << 32 |
                  mw_mask16(v3, '}') << 48;
    uint64_t avail = ~0ULL; /* bits not consumed yet */
    size_t next = 64;       /* where the next block starts, relative to j */
    for (;;) {
      uint64_t ev = (inq ? q | bs : q | cl) & avail;
      if (!ev) break;
      int k = __builtin_ctzll(ev);
      uint64_t bit = 1ULL << k;
      if (!inq && (cl & bit)) return j + (size_t)k + 1;
      if (q & bit) {
        inq = !inq;
      } else { /* '\\' in quotes: the next byte is escaped */
        k++;
        if (k == 64) next = 65; /* the escaped byte starts the next block */
      }
      avail = k >= 63 ? 0 : ~0ULL << (k + 1);
    }
    j += next;
  }
#endif
  for (; j < n; j++) {
    char ch = b[j];
    if (!inq) {
      if (ch == '}') return j + 1;
      if (ch == '"') inq = 1;
    } else if (ch == '"') {
      inq = 0;
    } else if (ch == '\\') {
      j++;
    }
  }
  return (size_t)-1;
}

/* Finds the end of the raw series text starting at the metric name at i:
 * the name, then (text format: after optional blanks) a brace section skipped
 * quote-aware. Returns the end offset (past '}' or the name), or (size_t)-1 if
 * a quoted string or the braces are unterminated. *name_end gets the end of
 * the name. No validation: the cache only knows validated keys. */
static size_t mw_scan_series(const mw_parser_t *p, size_t i, size_t *name_end) {
  const char *b = p->b;
  size_t n = p->n;
  i = mw_mname_end(b, i, n);
  *name_end = i;
  size_t j = i;
  if (!p->om)
    while (j < n && mw_is_ws((unsigned char)b[j]))
      j++;
  if (j >= n || b[j] != '{') return i;
  return mw_skip_braces(b, j + 1, n);
}

/* Finds the end of the quoted string whose opening '"' is at j, as the
 * Prometheus lexers' \"(\\.|[^\\"])*\": returns the offset of the closing
 * '"', or (size_t)-1 if the body ends first, a '\\' escapes a newline or
 * (nl_ends) a raw newline comes first. *esc is set if it holds a '\\'. */
static size_t mw_qstring_end(const mw_parser_t *p, size_t j, int nl_ends, int *esc) {
  const char *b = p->b;
  for (j++;;) {
    j = mw_find3(b, j, p->n, '"', '\\', nl_ends ? '\n' : '"');
    int c = mw_at(p, j);
    if (c == '"') return j;
    if (c != '\\') return (size_t)-1; /* the end, or a newline */
    int e = mw_at(p, j + 1);
    if (e < 0 || e == '\n') return (size_t)-1;
    *esc = 1;
    j += 2;
  }
}

/* Checks a quoted name [s, s + n) (raw, escaped if esc) found in the body:
 * valid UTF-8, not empty and, under the legacy scheme, a legacy metric name
 * (metric) or label name. Returns 0, or -1 with the error set. */
static int mw_check_qname(mw_parser_t *p, size_t ls, const char *s, size_t n, int esc, int metric) {
  const char *what = metric ? "metric" : "label";
  char q[128];
  mw_quote(q, sizeof q, s, n);
  if (!mw_ascii(s, n) && !mw_labels_valid_utf8(s, n))
    return mw_fail(p, ls, "invalid UTF-8 %s name %s", what, q);
  if (n == 0) return mw_fail(p, ls, "invalid %s name \"\"", what);
  /* An escape makes a byte outside the legacy grammar ('"', '\\', '\n'). */
  if (p->legacy &&
      (esc || !(metric ? mw_labels_valid_metric_name(s, n) : mw_labels_valid_name(s, n))))
    return mw_fail(p, ls, "%s name %s is not valid under the legacy validation scheme", what, q);
  return 0;
}

/* What mw_parse_labels expects of a quoted string followed by ',' or '}',
 * which names the metric (Prometheus 3): */
enum {
  MW_LB_NAMED,   /* refused: the line began with the metric name */
  MW_LB_UNNAMED, /* expected once: the line began with '{' */
  MW_LB_EXEMPLAR /* refused: exemplar labels (not a label name) */
};

/* Parses the label braces starting at '{' (offset j) strictly, into p->ls
 * from index 1 on (index 0 is __name__), unescaping values and quoted names
 * into p->buf (it needs as many bytes as the braces). mode is a MW_LB_*;
 * with MW_LB_UNNAMED, p->qname gets the quoted metric name. Quoted names are
 * checked (mw_check_qname), a label's only when its value is not empty
 * (Prometheus drops such a label before it validates names). *end gets the
 * offset past '}'; *nl the number of labels including __name__. Returns 0,
 * or -1 with the error set. */
static int mw_parse_labels(mw_parser_t *p, size_t ls, size_t j, int mode, size_t *end, size_t *nl) {
  const char *b = p->b;
  size_t count = 1, bo = 0;
  int named = mode != MW_LB_UNNAMED;
  j++; /* '{' */
  for (;;) {
    if (!p->om)
      while (mw_is_ws(mw_at(p, j)))
        j++;
    int ch = p->om ? mw_at(p, j) : mw_at_text(p, j);
    if (ch == '}') {
      if (!named) {
        char line[128];
        mw_quote(line, sizeof line, b + ls, j + 1 - ls);
        return mw_fail(p, ls, "metric name not set while parsing: %s", line);
      }
      *end = j + 1;
      *nl = count;
      return 0;
    }
    size_t ns = j, ne;
    int quoted = 0, nesc = 0;
    if (mw_is_lname_start(ch)) {
      while (mw_is_lname_char(mw_at(p, j)))
        j++;
      ne = j;
    } else if (ch == '"') {
      /* OpenMetrics exemplar names stop at a newline, series names do not. */
      ne = mw_qstring_end(p, j, p->om && mode == MW_LB_EXEMPLAR, &nesc);
      if (ne == (size_t)-1) return mw_fail_tok(p, ls, j, j + 1, "expected label name");
      ns = j + 1;
      j = ne + 1;
      quoted = 1;
    } else {
      return mw_fail_tok(p, ls, j, j + 1, "expected label name");
    }
    if (!p->om)
      while (mw_is_ws(mw_at(p, j)))
        j++;
    if (quoted) {
      int nc = p->om ? mw_at(p, j) : mw_at_text(p, j);
      if (nc == ',' || nc == '}') {
        /* The metric name. */
        if (mode == MW_LB_EXEMPLAR) return mw_fail_tok(p, ls, j, j + 1, "expected label name");
        if (named) {
          char line[128];
          mw_quote(line, sizeof line, b + ls, j + 1 - ls);
          return mw_fail(p, ls, "metric name already set while parsing: %s", line);
        }
        if (mw_check_qname(p, ls, b + ns, ne - ns, nesc, 1) != 0) return -1;
        named = 1;
        if (nesc) {
          size_t k = mw_unescape(p->buf + bo, b + ns, ne - ns, 1);
          p->qname = p->buf + bo;
          p->qname_len = (uint32_t)k;
          bo += k;
        } else {
          p->qname = b + ns;
          p->qname_len = (uint32_t)(ne - ns);
        }
        if (nc == ',') j++;
        continue;
      }
    }
    if (mw_at(p, j) != '=') return mw_fail_tok(p, ls, j, j + 1, "expected equal");
    j++;
    if (!p->om)
      while (mw_is_ws(mw_at(p, j)))
        j++;
    if (mw_at(p, j) != '"') return mw_fail_tok(p, ls, j, j + 1, "expected label value");
    size_t vs = ++j;
    int esc = 0;
    for (;;) {
      j = mw_find3(b, j, p->n, '"', '\\', p->om ? '\n' : '"');
      int c = mw_at(p, j);
      if (c < 0 || (p->om && c == '\n'))
        return mw_fail_tok(p, ls, vs - 1, j, "expected label value");
      if (c == '"') break;
      /* '\\' */
      int e = mw_at(p, j + 1);
      if (e < 0 || e == '\n') return mw_fail_tok(p, ls, vs - 1, j + 1, "expected label value");
      esc = 1;
      j += 2;
    }
    size_t ve = j++;
    if (!mw_ascii(b + vs, ve - vs) && !mw_labels_valid_utf8(b + vs, ve - vs)) {
      char q[128];
      mw_quote(q, sizeof q, b + vs - 1, ve - vs + 2);
      return mw_fail(p, ls, "invalid UTF-8 label value: %s", q);
    }
    if (count >= p->ls_cap && mw_scratch(p, 0, count + 1) != 0) return mw_fail_oom(p);
    mw_label_t *l = &p->ls[count++];
    if (quoted && ve > vs && mw_check_qname(p, ls, b + ns, ne - ns, nesc, 0) != 0) return -1;
    if (nesc) {
      size_t k = mw_unescape(p->buf + bo, b + ns, ne - ns, 1);
      l->name = p->buf + bo;
      l->name_len = (uint32_t)k;
      bo += k;
    } else {
      l->name = b + ns;
      l->name_len = (uint32_t)(ne - ns);
    }
    if (esc) {
      size_t k = mw_unescape(p->buf + bo, b + vs, ve - vs, 1);
      l->value = p->buf + bo;
      l->value_len = (uint32_t)k;
      bo += k;
    } else {
      l->value = b + vs;
      l->value_len = (uint32_t)(ve - vs);
    }
    if (!p->om)
      while (mw_is_ws(mw_at(p, j)))
        j++;
    int nc = p->om ? mw_at(p, j) : mw_at_text(p, j);
    if (nc == ',') {
      j++;
    } else if (p->om && nc != '}') {
      return mw_fail_tok(p, ls, j, j + 1, "expected comma or brace close");
    }
  }
}

/* Encodes the canonical set ls that mw_parse_labels and mw_labels_normalize
 * produced from the body, into out (mw_labels_encoded_size bytes); returns
 * the length. Nothing to validate: bare names were parsed by the name
 * grammars, quoted ones and values checked as valid UTF-8 (no 0xFF), and
 * normalize sorted the set and rejected repeated names. */
static size_t mw_encode_parsed(const mw_label_t *ls, size_t n, uint8_t *out) {
  uint8_t *o = out;
  for (size_t i = 0; i < n; i++) {
    memcpy(o, ls[i].name, ls[i].name_len);
    o += ls[i].name_len;
    *o++ = MW_LABELS_SEP;
    memcpy(o, ls[i].value, ls[i].value_len);
    o += ls[i].value_len;
    *o++ = MW_LABELS_SEP;
  }
  return (size_t)(o - out);
}

/* Cache miss: parses the series text [i, key_end) fully. If intern, encodes
 * the labels and queues the series for mw_flush (as p->pend[p->npend - 1],
 * without its sample yet); else the labels are only validated. */
static int mw_series_miss(mw_parser_t *p, size_t ls, size_t i, size_t name_end, size_t key_end,
                          mw_skey_t khash, int intern) {
  size_t klen = key_end - i;
  if (klen >= (1u << 31)) return mw_fail(p, ls, "series text too long");
  if (mw_scratch(p, klen, 16) != 0) return mw_fail_oom(p);
  size_t nl = 1, end = name_end, j = name_end;
  int unnamed = name_end == i; /* the line starts with '{': the name is quoted inside */
  if (!p->om)
    while (mw_is_ws(mw_at(p, j)))
      j++;
  if (mw_at(p, j) == '{') {
    if (mw_parse_labels(p, ls, j, unnamed ? MW_LB_UNNAMED : MW_LB_NAMED, &end, &nl) != 0) return -1;
  }
  if (end != key_end) return mw_fail_tok(p, ls, end, end + 1, "unexpected text after labels");
  if (!intern) return 0;
  p->ls[0] = (mw_label_t){.name = "__name__",
                          .name_len = 8,
                          .value = unnamed ? p->qname : p->b + i,
                          .value_len = unnamed ? p->qname_len : (uint32_t)(name_end - i)};
  char msg[160];
  if (mw_labels_normalize(p->ls, &nl, msg, sizeof msg) != 0) return mw_fail(p, ls, "%s", msg);
  const mw_label_t *fin;
  size_t fn;
  if (mw_scrapecache_mutate(p->c, p->ls, nl, &fin, &fn, msg, sizeof msg) != 0)
    return mw_fail(p, ls, "%s", msg);
  size_t need = mw_labels_encoded_size(fin, fn), elen;
  if (mw_scratch_enc(p, need) != 0) return mw_fail_oom(p);
  uint8_t *enc = p->penc + p->penc_len;
  if (fin == p->ls) {
    elen = mw_encode_parsed(fin, fn, enc);
  } else if (mw_labels_encode(fin, fn, enc, need, &elen, msg, sizeof msg) != 0) {
    return mw_fail(p, ls, "%s", msg);
  }
  if (elen >= UINT32_MAX) return mw_fail(p, ls, "label set too large");
  uint64_t h = mw_labels_hash(enc, elen);
  mw_series_prefetch(mw_scrapecache_series(p->c), h);
  p->pend[p->npend++] = (mw_pend_t){
      .ls = ls, .enc = p->penc_len, .enc_len = (uint32_t)elen, .key_hash = khash, .hash = h};
  p->penc_len += elen;
  return 0;
}

/* Attaches staged exemplar k to the sample just appended (ts: the sample's
 * timestamp, the exemplar's when it had none, as Prometheus does). */
static int mw_attach_exemplar(mw_parser_t *p, int k, int64_t ts) {
  const mw_pex_t *x = &p->pex[k];
  if (mw_batch_add_exemplar(p->batch, mw_batch_len(p->batch) - 1, p->pexbuf + x->off, x->len,
                            x->has_ts ? x->ts : ts, x->v) != 0)
    return mw_fail_oom(p);
  p->st->exemplars++;
  return 0;
}

/* Interns the queued cache misses in line order: each one's series is added
 * to the table (or found there), its series text taught to the cache unless
 * an earlier line of the group had the same text (the cache would have hit),
 * then its sample is marked and appended as for a hit. The group's slots
 * were prefetched when the lines were parsed, so their misses overlap. */
static int mw_flush(mw_parser_t *p) {
  size_t n = p->npend;
  mw_series_t *s = mw_scrapecache_series(p->c);
  char msg[160];
  uint64_t keys = 0; /* bit key_hash % 64 of the group's keys so far */
  p->npend = 0;
  p->penc_len = 0;
  for (size_t i = 0; i < n; i++) {
    const mw_pend_t *q = &p->pend[i];
    uint64_t kbit = 1ULL << (q->key_hash.lo & 63);
    uint32_t ref;
    int added;
    if (mw_series_add(s, p->penc + q->enc, q->enc_len, q->hash, &ref, &added, msg, sizeof msg) != 0)
      return mw_fail(p, q->ls, "%s", msg);
    int dup = 0;
    for (size_t k = 0; k < i && !dup && (keys & kbit); k++)
      dup = mw_skey_eq(p->pend[k].key_hash, q->key_hash);
    if (!dup && mw_scrapecache_add(p->c, q->key_hash, ref, msg, sizeof msg) != 0)
      return mw_fail(p, q->ls, "%s", msg);
    keys |= kbit;
    /* The sweep at the start of the scrape left only the previous scrape's
     * series in the table: a new entry is a new series. */
    if (added) p->st->series_added++;
    if (!q->has_sample) continue;
    int m = mw_scrapecache_mark(p->c, ref, q->explicit_ts);
    if (m < 0) return mw_fail_oom(p);
    if (m == 0) {
      p->st->duplicates++;
      continue;
    }
    if (q->oob) {
      p->st->out_of_bounds++;
      continue;
    }
    if (mw_batch_add(p->batch, ref, q->ts, q->v) != 0) return mw_fail_oom(p);
    if (++p->st->samples > p->sample_limit && p->sample_limit) return mw_fail_limit(p);
    if (q->ex >= 0 && mw_attach_exemplar(p, q->ex, q->ts) != 0) return -1;
  }
  return 0;
}

/* On a cache miss at a line whose series text ends at key_end: scans the
 * series texts of the next sample lines ahead, hashes them and starts loading
 * their cache slots, so that their lookups (mw_sample_line takes the results
 * by offset) do not wait for memory. Line ends are guessed with memchr; a
 * wrong guess costs only the wasted scan, as results are used only for a
 * line that does start at their offset. */
static void mw_look_ahead(mw_parser_t *p, size_t key_end) {
  const char *b = p->b;
  size_t n = p->n;
  if (p->ah_n == 0) {
    const char *eol = memchr(b + key_end, '\n', n - key_end);
    p->ah_next = eol ? (size_t)(eol - b) + 1 : n;
  }
  while (p->ah_n < MW_AHEAD && p->ah_next < n) {
    size_t q = p->ah_next, from = q;
    if (!p->om)
      while (q < n && mw_is_ws((unsigned char)b[q]))
        q++;
    if (q < n && (mw_is_mname_start((unsigned char)b[q]) || b[q] == '{')) {
      mw_ahead_t *a = &p->ah[(p->ah_head + p->ah_n) % MW_AHEAD];
      a->start = q;
      a->key_end = mw_scan_series(p, q, &a->name_end);
      if (a->key_end == (size_t)-1) {
        p->ah_next = n; /* that line fails: nothing to scan beyond */
        return;
      }
      a->hash = mw_scrapecache_hash(b + q, a->key_end - q);
      mw_scrapecache_prefetch(p->c, a->hash);
      p->ah_n++;
      from = a->key_end;
    }
    const char *eol = from < n ? memchr(b + from, '\n', n - from) : NULL;
    p->ah_next = eol ? (size_t)(eol - b) + 1 : n;
  }
}

/* --- lines ------------------------------------------------------------- */

/* OpenMetrics, a line starting with '{' at i: the raw metric name, the
 * quoted string followed by ',' or '}' in the braces, in [*s, *e). 0 if
 * there is none (the strict parse reports why). */
static int mw_quoted_name(const mw_parser_t *p, size_t i, size_t *s, size_t *e) {
  size_t j = i + 1;
  for (;;) {
    int esc = 0;
    if (mw_at(p, j) == '"') {
      size_t q = mw_qstring_end(p, j, 0, &esc);
      if (q == (size_t)-1) return 0;
      if (mw_at(p, q + 1) == ',' || mw_at(p, q + 1) == '}') {
        *s = j + 1;
        *e = q;
        return 1;
      }
      j = q + 1;
    } else {
      while (mw_is_lname_char(mw_at(p, j)))
        j++;
    }
    if (mw_at(p, j) != '=' || mw_at(p, j + 1) != '"') return 0;
    j = mw_qstring_end(p, j + 1, 1, &esc);
    if (j == (size_t)-1) return 0;
    j++;
    if (mw_at(p, j) != ',') return 0;
    j++;
  }
}

static int mw_is_created(const mw_parser_t *p, size_t i, size_t name_end) {
  if (!(p->flags & MW_EXPFMT_SKIP_CREATED) || !p->om) return 0;
  if (p->cur_type != MW_METRIC_COUNTER && p->cur_type != MW_METRIC_HISTOGRAM &&
      p->cur_type != MW_METRIC_SUMMARY)
    return 0;
  size_t s = i, e = name_end;
  if (e == s && !mw_quoted_name(p, i, &s, &e)) return 0;
  return e - s >= 8 && memcmp(p->b + e - 8, "_created", 8) == 0;
}

/* Keeps a syntactically valid exemplar (labels ls[0..n), value v, timestamp
 * t seconds if has_ts) for the current line's sample, or counts it in
 * stats.exemplars_invalid as Prometheus's appender refuses it (the scrape
 * goes on): a repeated label name, label names and values longer than
 * MW_EXEMPLAR_MAX_RUNES code points together, a timestamp out of range.
 * Labels with an empty value are left out, as for series. 0, -1 on OOM. */
static int mw_stage_exemplar(mw_parser_t *p, mw_label_t *ls, size_t n, double v, int has_ts,
                             double t) {
  size_t runes = 0;
  for (size_t i = 0; i < n; i++) {
    for (uint32_t k = 0; k < ls[i].name_len; k++)
      runes += ((unsigned char)ls[i].name[k] & 0xC0) != 0x80;
    for (uint32_t k = 0; k < ls[i].value_len; k++)
      runes += ((unsigned char)ls[i].value[k] & 0xC0) != 0x80;
  }
  if (runes > MW_EXEMPLAR_MAX_RUNES || (has_ts && !(fabs(t * 1000.0) < 9.2e18)) ||
      mw_labels_normalize(ls, &n, NULL, 0) != 0) {
    p->st->exemplars_invalid++;
    return 0;
  }
  size_t need = mw_labels_encoded_size(ls, n);
  if (p->npex == p->pex_cap) {
    size_t cap = p->pex_cap ? 2 * p->pex_cap : MW_PEND + 1;
    mw_pex_t *x = realloc(p->pex, cap * sizeof *x);
    if (!x) return mw_fail_oom(p);
    p->pex = x;
    p->pex_cap = cap;
  }
  if (!p->pexbuf || p->pexbuf_cap - p->pexbuf_len < need) {
    size_t cap = p->pexbuf_cap ? p->pexbuf_cap : 1024;
    while (cap - p->pexbuf_len < need)
      cap *= 2;
    uint8_t *b = realloc(p->pexbuf, cap);
    if (!b) return mw_fail_oom(p);
    p->pexbuf = b;
    p->pexbuf_cap = cap;
  }
  size_t len = mw_encode_parsed(ls, n, p->pexbuf + p->pexbuf_len);
  p->pex[p->npex] = (mw_pex_t){.off = p->pexbuf_len,
                               .len = (uint32_t)len,
                               .has_ts = has_ts,
                               .ts = has_ts ? (int64_t)(t * 1000.0) : 0,
                               .v = v};
  p->pexbuf_len += len;
  p->line_ex = (int)p->npex++;
  return 0;
}

/* OpenMetrics exemplar after " # {" (j at '{'); *jp gets the offset of the
 * line's newline. */
static int mw_parse_exemplar(mw_parser_t *p, size_t ls, size_t j, size_t *jp) {
  size_t end, nl;
  if (mw_scratch(p, 0, 16) != 0) return mw_fail_oom(p);
  /* Labels go to scratch space too: reserve room for their unescaping. */
  size_t close = j;
  while (close < p->n && p->b[close] != '\n')
    close++;
  if (mw_scratch(p, close - j, 16) != 0) return mw_fail_oom(p);
  if (mw_parse_labels(p, ls, j, MW_LB_EXEMPLAR, &end, &nl) != 0) return -1;
  j = end;
  if (mw_at(p, j) != ' ' || mw_at(p, j + 1) < 0 || mw_at(p, j + 1) == ' ' ||
      mw_at(p, j + 1) == '\n') {
    if (mw_at(p, j) < 0) return mw_fail(p, ls, "data does not end with # EOF");
    return mw_fail_tok(p, ls, j, j + 1, "expected value after exemplar labels");
  }
  size_t vs = ++j;
  while (j < p->n && p->b[j] != ' ' && p->b[j] != '\n')
    j++;
  double v, t = 0;
  int has_ts = 0;
  if (mw_expfmt_parse_float(p->b + vs, j - vs, &v) != 0) {
    char q[128];
    mw_quote(q, sizeof q, p->b + vs, j - vs);
    return mw_fail(p, ls, "invalid exemplar value %s", q);
  }
  if (mw_at(p, j) == ' ') {
    size_t ts = ++j;
    while (j < p->n && p->b[j] != ' ' && p->b[j] != '\n')
      j++;
    if (j == ts) return mw_fail_tok(p, ls, j, j + 1, "expected timestamp or new record");
    if (mw_expfmt_parse_float(p->b + ts, j - ts, &t) != 0 || isnan(t) || isinf(t)) {
      char q[128];
      mw_quote(q, sizeof q, p->b + ts, j - ts);
      return mw_fail(p, ls, "invalid exemplar timestamp %s", q);
    }
    if (mw_at(p, j) == ' ')
      return mw_fail_tok(p, ls, j, j + 1, "expected next entry after exemplar timestamp");
    has_ts = 1;
  }
  if (mw_at(p, j) < 0) return mw_fail(p, ls, "data does not end with # EOF");
  *jp = j;
  return mw_stage_exemplar(p, p->ls + 1, nl - 1, v, has_ts, t);
}

/* A sample line starting with the metric name at i; *next gets the offset
 * of the following line. */
static int mw_sample_line(mw_parser_t *p, size_t ls, size_t i, size_t *next) {
  const char *b = p->b;
  size_t name_end, key_end;
  mw_skey_t kh = {0, 0};
  while (p->ah_n && p->ah[p->ah_head].start < i) {
    p->ah_head = (p->ah_head + 1) % MW_AHEAD; /* a wrong guess */
    p->ah_n--;
  }
  if (p->ah_n && p->ah[p->ah_head].start == i) {
    const mw_ahead_t *a = &p->ah[p->ah_head];
    name_end = a->name_end;
    key_end = a->key_end;
    kh = a->hash;
    p->ah_head = (p->ah_head + 1) % MW_AHEAD;
    p->ah_n--;
  } else {
    key_end = mw_scan_series(p, i, &name_end);
    if (key_end != (size_t)-1) kh = mw_scrapecache_hash(b + i, key_end - i);
  }
  int skip = mw_is_created(p, i, name_end);
  uint32_t ref = MW_SERIES_NONE;
  p->line_ex = -1;
  if (p->npex && !p->npend) p->npex = p->pexbuf_len = 0; /* every staged one was appended */
  if (key_end == (size_t)-1) {
    /* Unterminated: the strict parser reports where. */
    size_t end, nl, j = name_end;
    if (mw_scratch(p, p->n - i, 16) != 0) return mw_fail_oom(p);
    while (!p->om && mw_is_ws(mw_at(p, j)))
      j++;
    if (mw_parse_labels(p, ls, j, name_end == i ? MW_LB_UNNAMED : MW_LB_NAMED, &end, &nl) != 0)
      return -1;
    return mw_fail_tok(p, ls, end, end + 1, "unterminated labels");
  }
  int queued = 0;
  if (!skip) ref = mw_scrapecache_get(p->c, kh);
  if (ref == MW_SERIES_NONE) {
    mw_look_ahead(p, key_end);
    if (mw_series_miss(p, ls, i, name_end, key_end, kh, !skip) != 0) return -1;
    queued = !skip;
  }
  /* Value. */
  size_t j = key_end, vs;
  double v;
  int64_t ts = p->dts;
  int explicit_ts = 0, oob = 0;
  if (p->om) {
    if (mw_at(p, j) != ' ' || mw_at(p, j + 1) < 0 || mw_at(p, j + 1) == ' ' ||
        mw_at(p, j + 1) == '\n') {
      if (mw_at(p, j) < 0) return mw_fail(p, ls, "data does not end with # EOF");
      return mw_fail_tok(p, ls, j, j + 1, "expected value after metric");
    }
    vs = ++j;
    while (j < p->n && b[j] != ' ' && b[j] != '\n')
      j++;
  } else {
    while (mw_is_ws(mw_at(p, j)))
      j++;
    vs = j;
    while (j < p->n && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '{')
      j++;
    if (j == vs) return mw_fail_tok(p, ls, j, j + 1, "expected value after metric");
  }
  if (mw_expfmt_parse_float(b + vs, j - vs, &v) != 0) {
    char q[128], line[128];
    mw_quote(q, sizeof q, b + vs, j - vs);
    mw_quote(line, sizeof line, b + ls, j - ls);
    return mw_fail(p, ls, "invalid float value %s while parsing: %s", q, line);
  }
  /* Timestamp. */
  if (p->om) {
    int ex = 0;
    if (mw_at(p, j) == ' ' && mw_at(p, j + 1) == '#' && mw_at(p, j + 2) == ' ' &&
        mw_at(p, j + 3) == '{') {
      ex = 1;
    } else if (mw_at(p, j) == ' ') {
      size_t t0 = ++j;
      while (j < p->n && b[j] != ' ' && b[j] != '\n')
        j++;
      double t;
      if (j == t0) return mw_fail_tok(p, ls, j, j + 1, "expected timestamp or new record");
      if (mw_expfmt_parse_float(b + t0, j - t0, &t) != 0 || isnan(t) || isinf(t)) {
        char q[128];
        mw_quote(q, sizeof q, b + t0, j - t0);
        return mw_fail(p, ls, "invalid timestamp %s", q);
      }
      /* Any finite float is a timestamp (Prometheus); one whose milliseconds
       * do not fit int64 drops the sample (its storage refuses it). */
      explicit_ts = 1;
      double ms = t * 1000.0;
      if (ms >= -0x1p63 && ms < 0x1p63)
        ts = (int64_t)ms;
      else
        oob = 1;
      if (mw_at(p, j) == ' ') {
        if (mw_at(p, j + 1) == '#' && mw_at(p, j + 2) == ' ' && mw_at(p, j + 3) == '{')
          ex = 1;
        else
          return mw_fail_tok(p, ls, j, j + 1, "expected next entry after timestamp");
      }
    }
    if (ex && mw_parse_exemplar(p, ls, j + 3, &j) != 0) return -1;
    if (mw_at(p, j) < 0) return mw_fail(p, ls, "data does not end with # EOF");
  } else {
    while (mw_is_ws(mw_at(p, j)))
      j++;
    int ch = mw_at_text(p, j);
    if (ch >= '0' && ch <= '9') {
      size_t t0 = j;
      int64_t t = 0;
      int ovf = 0;
      for (; j < p->n && b[j] >= '0' && b[j] <= '9'; j++) {
        int d = b[j] - '0';
        if (t > (INT64_MAX - d) / 10) ovf = 1;
        if (!ovf) t = t * 10 + d;
      }
      if (ovf) {
        char q[128];
        mw_quote(q, sizeof q, b + t0, j - t0);
        return mw_fail(p, ls, "timestamp %s out of range", q);
      }
      explicit_ts = 1;
      ts = t;
      while (mw_is_ws(mw_at(p, j)))
        j++;
      if (mw_at_text(p, j) != '\n')
        return mw_fail_tok(p, ls, j, j + 1, "expected next entry after timestamp");
    } else if (ch != '\n') {
      return mw_fail_tok(p, ls, j, j + 1, "expected timestamp or new record");
    }
  }
  *next = j + 1; /* past '\n' (or the end of the body) */
  if (skip) {
    p->st->created_skipped++;
    return 0;
  }
  if (p->flags & MW_EXPFMT_IGNORE_TIMESTAMPS) {
    ts = p->dts;
    explicit_ts = oob = 0;
  }
  if (p->flags & MW_EXPFMT_TRACK_TS_STALENESS) explicit_ts = 0;
  if (queued) {
    mw_pend_t *q = &p->pend[p->npend - 1];
    q->has_sample = 1;
    q->explicit_ts = explicit_ts;
    q->oob = oob;
    q->ts = ts;
    q->v = v;
    q->ex = p->line_ex;
    return p->npend == MW_PEND ? mw_flush(p) : 0;
  }
  /* Samples go out in line order: the queued ones first. */
  if (p->npend && mw_flush(p) != 0) return -1;
  int m = mw_scrapecache_mark(p->c, ref, explicit_ts);
  if (m < 0) return mw_fail_oom(p);
  if (m == 0) {
    p->st->duplicates++;
    return 0;
  }
  if (oob) {
    p->st->out_of_bounds++;
    return 0;
  }
  if (mw_batch_add(p->batch, ref, ts, v) != 0) return mw_fail_oom(p);
  if (++p->st->samples > p->sample_limit && p->sample_limit) return mw_fail_limit(p);
  if (p->line_ex >= 0) return mw_attach_exemplar(p, p->line_ex, ts);
  return 0;
}

static int mw_type_from(const char *s, size_t n, int om) {
  static const struct {
    const char *name;
    int type, om_only;
  } types[] = {{"counter", MW_METRIC_COUNTER, 0},
               {"gauge", MW_METRIC_GAUGE, 0},
               {"histogram", MW_METRIC_HISTOGRAM, 0},
               {"summary", MW_METRIC_SUMMARY, 0},
               {"untyped", MW_METRIC_UNKNOWN, -1},
               {"unknown", MW_METRIC_UNKNOWN, 1},
               {"gaugehistogram", MW_METRIC_GAUGEHISTOGRAM, 1},
               {"info", MW_METRIC_INFO, 1},
               {"stateset", MW_METRIC_STATESET, 1}};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    if (strlen(types[i].name) != n || memcmp(types[i].name, s, n) != 0) continue;
    if ((types[i].om_only == 1 && !om) || (types[i].om_only == -1 && om)) return -1;
    return types[i].type;
  }
  return -1;
}

/* A metadata line: kw (0 TYPE, 1 HELP, 2 UNIT) at offset k, name next. */
static int mw_meta_line(mw_parser_t *p, size_t ls, size_t k, int kw, size_t *next) {
  static const char *const kws[] = {"TYPE", "HELP", "UNIT"};
  const char *b = p->b;
  size_t j = k + 4;
  if (p->om) {
    j++; /* one space, checked by the caller */
  } else {
    while (mw_is_ws(mw_at(p, j)))
      j++;
  }
  /* The family name: bare, or quoted (Prometheus 3) and then unescaped. */
  size_t ns = j, ne;
  int quoted = mw_at(p, j) == '"', nesc = 0;
  if (quoted) {
    ne = mw_qstring_end(p, j, 0, &nesc);
    if (ne != (size_t)-1) {
      ns = j + 1;
      j = ne + 1;
    }
  } else {
    while (mw_is_mname_char(mw_at(p, j)))
      j++;
    ne = j;
  }
  if (ne == (size_t)-1 || (!quoted && (ne == ns || !mw_is_mname_start(mw_at(p, ns))))) {
    char what[40];
    snprintf(what, sizeof what, "expected metric name after %s", kws[kw]);
    return mw_fail_tok(p, ls, ns, ns + 1, what);
  }
  if (quoted && !mw_ascii(b + ns, ne - ns) && !mw_labels_valid_utf8(b + ns, ne - ns)) {
    char q[128];
    mw_quote(q, sizeof q, b + ns, ne - ns);
    return mw_fail(p, ls, "invalid UTF-8 metric name %s", q);
  }
  const char *eol = j < p->n ? memchr(b + j, '\n', p->n - j) : NULL;
  size_t e = eol ? (size_t)(eol - b) : p->n;
  const char *text = b + j;
  size_t tlen = 0;
  if (p->om) {
    if (!eol || mw_at(p, j) != ' ') return mw_fail(p, ls, "expected text in %s", kws[kw]);
    text = b + j + 1;
    tlen = e - j - 1;
  } else {
    /* The lexer takes the rest of the line and drops its first byte, unless
     * the rest is all blanks. */
    size_t w = j;
    while (w < e && mw_is_ws((unsigned char)b[w]))
      w++;
    if (w < e && e - j > 1) {
      text = b + j + 1;
      tlen = e - j - 1;
    }
  }
  /* Unescaped name and help text go to p->buf, in one allocation. */
  int hesc = kw == 1 && memchr(text, '\\', tlen) != NULL;
  const char *name = b + ns;
  size_t nl = ne - ns;
  if ((nesc || hesc) && mw_scratch(p, nl + tlen, 0) != 0) return mw_fail_oom(p);
  if (nesc) {
    nl = mw_unescape(p->buf, b + ns, ne - ns, 1);
    name = p->buf;
  }
  char msg[160];
  int rc = 0;
  if (kw == 0) {
    int t = mw_type_from(text, tlen, p->om);
    if (t < 0) {
      char q[128];
      mw_quote(q, sizeof q, text, tlen);
      return mw_fail(p, ls, "invalid metric type %s", q);
    }
    p->cur_type = t;
    rc = mw_scrapecache_meta_set(p->c, name, nl, MW_META_TYPE, t, NULL, 0, msg, sizeof msg);
  } else if (kw == 1) {
    /* Unchanged since the last scrape (the usual case): nothing to check. */
    if (!hesc && mw_scrapecache_meta_same(p->c, name, nl, MW_META_HELP, text, tlen)) {
      *next = e + 1;
      return 0;
    }
    if (!mw_labels_valid_utf8(text, tlen)) {
      char q[128];
      mw_quote(q, sizeof q, text, tlen);
      return mw_fail(p, ls, "help text %s is not a valid utf8 string", q);
    }
    const char *h = text;
    size_t hlen = tlen;
    if (hesc) {
      char *hb = p->buf + (nesc ? nl : 0);
      hlen = mw_unescape(hb, text, tlen, p->om);
      h = hb;
    }
    rc = mw_scrapecache_meta_set(p->c, name, nl, MW_META_HELP, 0, h, hlen, msg, sizeof msg);
  } else {
    if (tlen > 0 && (nl < tlen + 1 || memcmp(name + nl - tlen, text, tlen) != 0 ||
                     name[nl - tlen - 1] != '_')) {
      char qu[128], qm[128];
      mw_quote(qu, sizeof qu, text, tlen);
      mw_quote(qm, sizeof qm, name, nl);
      return mw_fail(p, ls, "unit %s not a suffix of metric %s", qu, qm);
    }
    rc = mw_scrapecache_meta_set(p->c, name, nl, MW_META_UNIT, 0, text, tlen, msg, sizeof msg);
  }
  if (rc != 0) return mw_fail(p, ls, "%s", msg);
  *next = e + 1;
  return 0;
}

/* Text format: '#' at i. */
static int mw_comment_text(mw_parser_t *p, size_t ls, size_t i, size_t *next, int *stop) {
  const char *b = p->b;
  size_t j = i + 1;
  const char *eol = memchr(b + i, '\n', p->n - i);
  size_t e = eol ? (size_t)(eol - b) : p->n;
  if (mw_is_ws(mw_at(p, j))) {
    while (mw_is_ws(mw_at(p, j)))
      j++;
    int kw = -1;
    if (p->n - j >= 5 && mw_is_ws((unsigned char)b[j + 4])) {
      if (memcmp(b + j, "TYPE", 4) == 0) kw = 0;
      if (memcmp(b + j, "HELP", 4) == 0) kw = 1;
    }
    if (kw >= 0) return mw_meta_line(p, ls, j, kw, next);
  } else if (memchr(b + i, 0, e - i)) {
    /* The Prometheus lexer stops at a NUL in such a comment. */
    *stop = 1;
  }
  *next = e + 1;
  return 0;
}

/* OpenMetrics: '#' at i. */
static int mw_comment_om(mw_parser_t *p, size_t ls, size_t i, size_t *next, int *eof) {
  const char *b = p->b;
  size_t j = i + 2;
  if (mw_at(p, i + 1) == ' ' && p->n - j >= 3) {
    if (p->n - j >= 5 && b[j + 4] == ' ') {
      static const char *const kws[] = {"TYPE", "HELP", "UNIT"};
      for (int kw = 0; kw < 3; kw++)
        if (memcmp(b + j, kws[kw], 4) == 0) return mw_meta_line(p, ls, j, kw, next);
    }
    if (memcmp(b + j, "EOF", 3) == 0) {
      j += 3;
      if (mw_at(p, j) == '\n') j++;
      if (j != p->n) return mw_fail(p, ls, "unexpected data after # EOF");
      *eof = 1;
      *next = j;
      return 0;
    }
  }
  return mw_fail_tok(p, ls, i, i + 1, "expected a valid start token");
}

/* Checks that the line starting at ls ends within MW_EXPFMT_MAX_LINE bytes.
 * One look backwards from the end of the window finds the last newline in it:
 * every line starting before it is short enough, so the body is scanned about
 * once more in all, not once per line. */
static int mw_check_line_len(mw_parser_t *p, size_t ls) {
  if (ls < p->line_ok) return 0;
  if (p->n - ls <= MW_EXPFMT_MAX_LINE) {
    p->line_ok = p->n;
    return 0;
  }
  const char *nl = memrchr(p->b + ls, '\n', MW_EXPFMT_MAX_LINE + 1);
  if (!nl)
    return mw_fail(p, ls, "line longer than %d bytes (the limit of a line)", MW_EXPFMT_MAX_LINE);
  p->line_ok = (size_t)(nl - p->b) + 1;
  return 0;
}

/* Parses lines from p->pos until the body ends (1 in *done), # EOF or the
 * Prometheus lexer's end, or a line starts at or past p->stop (0 in *done,
 * p->pos is where to resume). */
static int mw_parse_lines(mw_parser_t *p, int *done) {
  const char *b = p->b;
  size_t pos = p->pos;
  int eof = 0;
  *done = 0;
  while (pos < p->n) {
    if (pos >= p->stop) {
      p->pos = pos;
      return 0;
    }
    size_t ls = pos, i = pos, next = p->n;
    if (mw_check_line_len(p, ls) != 0) return -1;
    if (!p->om) {
      while (i < p->n && mw_is_ws((unsigned char)b[i]))
        i++;
      if (i >= p->n) break;
      if (b[i] == '\n') {
        pos = i + 1;
        continue;
      }
      if (b[i] == 0) break; /* the Prometheus lexer's EOF */
    }
    unsigned char ch = (unsigned char)b[i];
    if (ch == '#') {
      int stop = 0;
      if (p->om ? mw_comment_om(p, ls, i, &next, &eof) : mw_comment_text(p, ls, i, &next, &stop))
        return -1;
      if (eof || stop) break;
    } else if (mw_is_mname_start(ch) || ch == '{') {
      if (mw_sample_line(p, ls, i, &next) != 0) return -1;
    } else {
      return mw_fail_tok(p, ls, i, i + 1, "expected a valid start token");
    }
    pos = next;
  }
  p->pos = pos;
  p->eof = eof;
  *done = 1;
  return 0;
}

/* Parses the next lines (see mw_parse_lines); at the end of the body flushes
 * the queued misses and checks OpenMetrics' # EOF. 0 with *done, or -1. */
static int mw_parse_some(mw_parser_t *p, int *done) {
  int rc = mw_parse_lines(p, done);
  if (rc == 0 && !*done) return 0;
  *done = 1;
  size_t pos = p->pos;
  int eof = p->eof;
  if (p->npend) {
    if (rc == 0) {
      rc = mw_flush(p);
    } else {
      /* The lines before the failing one still teach the cache, as they
       * would have unqueued; the error stays the failing line's. */
      char *err = p->err;
      p->err = NULL;
      mw_flush(p);
      p->err = err;
    }
  }
  if (rc != 0) return -1;
  if (p->om && !eof) return mw_fail(p, pos, "data does not end with # EOF");
  return 0;
}

mw_expfmt_parser_t *mw_expfmt_begin(mw_scrapecache_t *c, mw_batch_t *b, const char *body,
                                    size_t len, int format, int64_t default_ts_ms, uint32_t flags,
                                    uint64_t sample_limit, mw_expfmt_stats_t *stats, char *err,
                                    size_t errlen) {
  memset(stats, 0, sizeof *stats);
  stats->format = format;
  if (err && errlen) err[0] = 0;
  mw_batch_reset(b, mw_scrapecache_series(c));
  if (format != MW_EXPFMT_TEXT && format != MW_EXPFMT_OPENMETRICS && format != MW_EXPFMT_PROTOBUF) {
    mw_seterr(err, errlen, "unknown exposition format %d", format);
    return NULL;
  }
  mw_parser_t *p = malloc(sizeof *p);
  if (!p) {
    mw_seterr(err, errlen, "out of memory");
    return NULL;
  }
  if (mw_scrapecache_begin(c, err, errlen) != 0) {
    free(p);
    return NULL;
  }
  /* About as many samples as the last scrape had: a batch emptied since
   * (mw_batch_clear) grows in one step. A failure shows at the first add. */
  (void)mw_batch_reserve(b, mw_scrapecache_len(c));
  /* Keys validated under one format's (or name scheme's) rules are not valid
   * under another's. */
  int legacy = (flags & MW_EXPFMT_LEGACY_NAMES) != 0;
  mw_scrapecache_keyspace(c, format | legacy << 8);
  *p = (mw_parser_t){.b = body ? body : "",
                     .n = body ? len : 0,
                     .om = format == MW_EXPFMT_OPENMETRICS,
                     .flags = flags,
                     .dts = default_ts_ms,
                     .c = c,
                     .batch = b,
                     .st = stats,
                     .err = err,
                     .errlen = errlen,
                     .cur_type = MW_METRIC_UNKNOWN,
                     .legacy = legacy,
                     .line_ex = -1,
                     .sample_limit = sample_limit,
                     .proto_fmt = format == MW_EXPFMT_PROTOBUF};
  return p;
}

void mw_expfmt_set_histograms(mw_expfmt_parser_t *p, uint32_t bucket_limit, double min_factor) {
  p->bucket_limit = bucket_limit;
  p->min_factor = min_factor;
}

static void mw_parser_free(mw_parser_t *p) {
  mw_proto_free(p->proto);
  free(p->ls);
  free(p->buf);
  free(p->penc);
  free(p->pex);
  free(p->pexbuf);
  free(p);
}

int mw_expfmt_end(mw_expfmt_parser_t *p, int rc, const char *why) {
  mw_expfmt_stats_t *st = p->st;
  if (rc != 0) {
    if (why) mw_seterr(p->err, p->errlen, "%s", why);
    /* A failed scrape: no samples, every series of the previous scrape is
     * gone (Prometheus appends an empty body). */
    mw_batch_truncate(p->batch, 0);
    st->parsed = st->samples;
    st->samples = st->series_added = st->duplicates = st->exemplars = st->created_skipped = 0;
    st->exemplars_invalid = st->out_of_bounds = st->histograms = st->histograms_reduced = 0;
  }
  int stale_markers = !(p->flags & MW_EXPFMT_NO_STALE);
  char msg[64];
  if (mw_scrapecache_end(p->c, rc == 0, p->batch, stale_markers, p->dts, &st->stale, msg,
                         sizeof msg) != 0 &&
      rc == 0) {
    mw_seterr(p->err, p->errlen, "%s", msg);
    rc = -1;
  }
  mw_parser_free(p);
  return rc;
}

/* mw_parse_some for the protobuf format. */
static int mw_proto_step(mw_parser_t *p, int *done) {
  if (!p->proto) {
    mw_pctx_t x = {.c = p->c,
                   .batch = p->batch,
                   .st = p->st,
                   .err = p->err,
                   .errlen = p->errlen,
                   .flags = p->flags,
                   .dts = p->dts,
                   .sample_limit = p->sample_limit,
                   .bucket_limit = p->bucket_limit,
                   .min_factor = p->min_factor};
    p->proto = mw_proto_new(&x, p->b, p->n);
    if (!p->proto) return mw_fail_oom(p);
  }
  return mw_proto_some(p->proto, p->stop, done, &p->pos);
}

int mw_expfmt_step(mw_expfmt_parser_t *p, size_t max_bytes) {
  int done;
  p->stop = max_bytes && max_bytes < p->n - p->pos ? p->pos + max_bytes : p->n;
  if (p->proto_fmt) {
    if (mw_proto_step(p, &done) != 0) return mw_expfmt_end(p, -1, NULL);
    return done ? mw_expfmt_end(p, 0, NULL) : 1;
  }
  if (mw_parse_some(p, &done) != 0) return mw_expfmt_end(p, -1, NULL);
  if (!done) return 1;
  /* convert_classic_histograms_to_nhcb: the text formats' classic histograms, now that
   * every sample of their families is in the batch. */
  if ((p->flags & MW_EXPFMT_NHCB) &&
      mw_nhcb_convert(p->c, p->batch, (p->flags & MW_EXPFMT_CLASSIC_HISTOGRAMS) != 0, p->dts,
                      p->bucket_limit, p->st, p->err, p->errlen) != 0)
    return mw_expfmt_end(p, -1, NULL);
  return mw_expfmt_end(p, 0, NULL);
}

void mw_expfmt_abort(mw_expfmt_parser_t *p) {
  if (!p) return;
  mw_scrapecache_abort(p->c);
  mw_batch_truncate(p->batch, 0);
  mw_parser_free(p);
}

int mw_expfmt_parse(mw_scrapecache_t *c, mw_batch_t *b, const char *body, size_t len, int format,
                    int64_t default_ts_ms, uint32_t flags, mw_expfmt_stats_t *stats, char *err,
                    size_t errlen) {
  mw_expfmt_stats_t local;
  mw_expfmt_parser_t *p = mw_expfmt_begin(c, b, body, len, format, default_ts_ms, flags, 0,
                                          stats ? stats : &local, err, errlen);
  return p ? mw_expfmt_step(p, 0) : -1;
}

/* --- content type ------------------------------------------------------- */

int mw_expfmt_format(const char *content_type, int fallback, int *fallback_used, char *err,
                     size_t errlen) {
  if (fallback_used) *fallback_used = 0;
  const char *why = "blank Content-Type";
  if (content_type && *content_type) {
    /* The media type: the part before ';', blanks trimmed, case-insensitive. */
    const char *s = content_type, *e;
    while (*s == ' ' || *s == '\t')
      s++;
    e = s;
    while (*e && *e != ';')
      e++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
      e--;
    size_t n = (size_t)(e - s);
    if (n == 28 && strncasecmp(s, "application/openmetrics-text", n) == 0)
      return MW_EXPFMT_OPENMETRICS;
    if (n == 10 && strncasecmp(s, "text/plain", n) == 0) return MW_EXPFMT_TEXT;
    if (n == 31 && strncasecmp(s, "application/vnd.google.protobuf", n) == 0)
      return MW_EXPFMT_PROTOBUF;
    why = "unsupported Content-Type";
  }
  if (fallback != MW_EXPFMT_TEXT && fallback != MW_EXPFMT_OPENMETRICS &&
      fallback != MW_EXPFMT_PROTOBUF) {
    mw_seterr(err, errlen, "received %s \"%s\" and no fallback_scrape_protocol specified", why,
              content_type ? content_type : "");
    return -1;
  }
  if (fallback_used) *fallback_used = 1;
  return fallback;
}

const char *mw_expfmt_type_name(int type) {
  switch (type) {
  case MW_METRIC_COUNTER: return "counter";
  case MW_METRIC_GAUGE: return "gauge";
  case MW_METRIC_HISTOGRAM: return "histogram";
  case MW_METRIC_GAUGEHISTOGRAM: return "gaugehistogram";
  case MW_METRIC_SUMMARY: return "summary";
  case MW_METRIC_INFO: return "info";
  case MW_METRIC_STATESET: return "stateset";
  default: return "unknown";
  }
}

/* --- FFI ---------------------------------------------------------------- */

int mw_ffi_expfmt_parse(mw_scrapecache_t *c, mw_batch_t *b, const char *body, size_t len,
                        const char *content_type, int fallback, int64_t default_ts_ms,
                        uint32_t flags, mw_expfmt_stats_t *stats, char *err, size_t errlen) {
  int used = 0;
  int format = mw_expfmt_format(content_type, fallback, &used, err, errlen);
  if (format < 0) {
    /* No parser: the scrape fails like an invalid body. */
    mw_expfmt_stats_t local;
    mw_expfmt_stats_t *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);
    mw_batch_reset(b, mw_scrapecache_series(c));
    if (mw_scrapecache_begin(c, NULL, 0) == 0)
      mw_scrapecache_end(c, 0, b, !(flags & MW_EXPFMT_NO_STALE), default_ts_ms, &st->stale, NULL,
                         0);
    return -1;
  }
  int rc = mw_expfmt_parse(c, b, body, len, format, default_ts_ms, flags, stats, err, errlen);
  if (stats) stats->fallback_used = used;
  return rc;
}
