/* relabel/relabel.c: Prometheus relabeling compiled into a C rule program.
 *
 * The working label set mirrors Prometheus's labels.Builder exactly, because its
 * iteration order is observable (labelmap collisions: the last Set wins):
 *   base   the input set, sorted; hidden[i] marks base labels deleted or overridden
 *   add    labels set by rules, in insertion order, unique names
 * Get looks in add, then in base unless hidden; Set(n, "") is Del(n); Range visits the
 * visible base labels in order, then add, over a snapshot taken when it starts.
 *
 * Regexes go through mw_re2_translate and PCRE2 (JIT). Common shapes are
 * matched without PCRE2 (same answers, Go's semantics): (.*) / .* match everything,
 * a pure literal, an alternation of literals, and literal(.*) / literal(.+) prefixes.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "relabel/relabel.h"

#include "base/re2.h"

#include "base/arena.h"
#include "base/err.h"
#include "base/grow.h"
#include <ctype.h>
#include <errno.h>
#include <locale.h>
#include <openssl/evp.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

_Static_assert(sizeof(mw_label_t) == sizeof(mw_ffi_relabel_label_t), "label layout");

/* A NUL-terminated copy of s[0..n) in the arena (program strings, scratch bytes). */
static char *pool_dup(mw_arena_t *p, const char *s, size_t n) {
  char *d = (char *)mw_arena_alloc(p, n + 1);
  if (!d) return NULL;
  if (n) memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

/* ---- program ---- */

typedef struct {
  const char *p;
  uint32_t len;
} str_t;

enum {
  ACT_REPLACE,
  ACT_KEEP,
  ACT_DROP,
  ACT_KEEPEQUAL,
  ACT_DROPEQUAL,
  ACT_HASHMOD,
  ACT_LABELMAP,
  ACT_LABELDROP,
  ACT_LABELKEEP,
  ACT_LOWERCASE,
  ACT_UPPERCASE,
};

static const char *const action_names[] = {
    "replace",  "keep",      "drop",      "keepequal", "dropequal", "hashmod",
    "labelmap", "labeldrop", "labelkeep", "lowercase", "uppercase",
};

enum {
  RE_PCRE,    /* general: PCRE2 */
  RE_ALL,     /* (.*) or .*: everything matches; group 1 (if any) is the whole subject */
  RE_PREFIX,  /* lit(.*), lit(.+), lit.*, lit.+: group 1 (if any) is the rest */
  RE_LITERAL, /* one literal */
  RE_LITSET,  /* literal|literal|... */
};

typedef struct {
  int kind;
  pcre2_code *code;
  int jit;
  uint32_t ncap;    /* capture groups */
  uint32_t min_len; /* RE_PREFIX: bytes the rest needs (0 or 1) */
  str_t lit;        /* RE_PREFIX prefix, RE_LITERAL literal */
  str_t *set;       /* RE_LITSET alternatives */
  uint32_t nset;
} re_t;

typedef struct {
  uint32_t group; /* UINT32_MAX: a literal */
  str_t lit;
} top_t;

/* A replacement or target template, expanded as Go's Regexp.Expand. */
typedef struct {
  top_t *ops;
  uint32_t nops;
  int has_groups; /* 0: always expands to lit */
  str_t lit;      /* the expansion when has_groups == 0 */
} tmpl_t;

typedef struct {
  int action;
  int utf8_names;
  str_t *src;
  uint32_t nsrc;
  str_t sep;
  re_t re;
  tmpl_t target, repl;
  str_t target_label;
  uint64_t modulus;
} rule_t;

struct mw_relabel_program {
  rule_t *rules;
  size_t n;
  uint32_t max_pairs; /* largest ncap + 1, for the match data */
  mw_arena_t pool;
};

/* ---- scratch ---- */

struct mw_relabel_scratch {
  const mw_label_t *base;
  size_t nbase;
  mw_label_t *sorted; /* the input, sorted, when it was not */
  size_t sorted_cap;
  uint8_t *hidden, *hidden_snap;
  size_t hidden_cap, hidden_snap_cap;
  mw_label_t *add, *snap, *out;
  size_t nadd, add_cap, snap_cap, nout, out_cap;
  mw_label_t *ffi_in;
  mw_ffi_relabel_label_t *ffi_out;
  size_t ffi_in_cap, ffi_out_cap, ffi_nout;
  char *join;
  size_t join_cap;
  mw_arena_t pool;
  pcre2_match_data *md;
  uint32_t md_pairs;
  pcre2_match_context *mctx;
  pcre2_jit_stack *jstack;
  EVP_MD_CTX *md5;
  EVP_MD *md5_fetched;
  const EVP_MD *md5_alg;
  PCRE2_SIZE fov[4];
  uint64_t match_errors; /* PCRE2 errors (limits) counted as "no match" */
};

/* ---- small helpers ---- */

static int str_eq(const char *a, size_t an, const char *b, size_t bn) {
  return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

/* Bytewise order, shorter prefix first (Go's strings.Compare). */
static int str_cmp(const char *a, size_t an, const char *b, size_t bn) {
  size_t m = an < bn ? an : bn;
  int c = m ? memcmp(a, b, m) : 0;
  if (c) return c;
  return an < bn ? -1 : an > bn;
}

static int is_word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Decodes one UTF-8 rune as Go does: invalid input yields U+FFFD with width 1. */
static uint32_t utf8_decode(const unsigned char *s, size_t n, size_t *width) {
  unsigned char c = s[0];
  uint32_t r;
  size_t w;
  *width = 1;
  if (c < 0x80) return c;
  if (c >= 0xC2 && c <= 0xDF) {
    w = 2;
    r = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    w = 3;
    r = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    w = 4;
    r = c & 0x07;
  } else {
    return 0xFFFD;
  }
  if (n < w) return 0xFFFD;
  for (size_t i = 1; i < w; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0xFFFD;
    r = (r << 6) | (s[i] & 0x3F);
  }
  if ((w == 3 && r < 0x800) || (w == 4 && (r < 0x10000 || r > 0x10FFFF)) ||
      (r >= 0xD800 && r <= 0xDFFF))
    return 0xFFFD;
  *width = w;
  return r;
}

static size_t utf8_encode(uint32_t r, char *o) {
  if (r < 0x80) {
    o[0] = (char)r;
    return 1;
  }
  if (r < 0x800) {
    o[0] = (char)(0xC0 | (r >> 6));
    o[1] = (char)(0x80 | (r & 0x3F));
    return 2;
  }
  if (r < 0x10000) {
    o[0] = (char)(0xE0 | (r >> 12));
    o[1] = (char)(0x80 | ((r >> 6) & 0x3F));
    o[2] = (char)(0x80 | (r & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (r >> 18));
  o[1] = (char)(0x80 | ((r >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((r >> 6) & 0x3F));
  o[3] = (char)(0x80 | (r & 0x3F));
  return 4;
}

static int utf8_valid(const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t w;
    uint32_t r = utf8_decode((const unsigned char *)s + i, n - i, &w);
    if (r == 0xFFFD && w == 1) return 0;
    i += w;
  }
  return 1;
}

/* A label name under the rule's scheme: legacy [a-zA-Z_][a-zA-Z0-9_]*, or utf8. */
static int valid_name(const char *s, size_t n, int utf8) {
  if (n == 0) return 0;
  if (utf8) return utf8_valid(s, n);
  if (s[0] >= '0' && s[0] <= '9') return 0;
  for (size_t i = 0; i < n; i++)
    if (!is_word_byte((unsigned char)s[i])) return 0;
  return 1;
}

/* Prometheus's relabelTargetLegacy: ^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$, i.e.
 * word bytes and $var / ${var} references, starting with a letter, '_' or a reference. */
static int valid_target_template(const char *s, size_t n, int utf8) {
  if (utf8) return valid_name(s, n, 1);
  if (n == 0) return 0;
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    if (c == '$') {
      size_t j = i + 1;
      if (j < n && s[j] == '{') {
        size_t k = j + 1;
        while (k < n && is_word_byte((unsigned char)s[k]))
          k++;
        if (k == j + 1 || k >= n || s[k] != '}') return 0;
        i = k + 1;
      } else {
        size_t k = j;
        while (k < n && is_word_byte((unsigned char)s[k]))
          k++;
        if (k == j) return 0;
        i = k;
      }
      continue;
    }
    if (!is_word_byte(c) || (i == 0 && c >= '0' && c <= '9')) return 0;
    i++;
  }
  return 1;
}

/* Writes a Go-%q-like quoted form of s into buf (truncated past 80 bytes). */
static const char *quote(char *buf, size_t size, const char *s, size_t n) {
  size_t o = 0;
  buf[o++] = '"';
  for (size_t i = 0; i < n && o + 8 < size; i++) {
    unsigned char c = (unsigned char)s[i];
    if (i == 80) {
      memcpy(buf + o, "...", 3);
      o += 3;
      break;
    }
    if (c == '"' || c == '\\') {
      buf[o++] = '\\';
      buf[o++] = (char)c;
    } else if (c < 0x20 || c == 0x7f) {
      o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
    } else {
      buf[o++] = (char)c;
    }
  }
  buf[o++] = '"';
  buf[o] = '\0';
  return buf;
}

static void set_err(char *err, size_t err_size, size_t rule, const char *field, const char *fmt,
                    ...) {
  mw_seterr(err, err_size, "rule %zu: %s: ", rule + 1, field);
  va_list ap;
  va_start(ap, fmt);
  mw_vadderr(err, err_size, fmt, ap);
  va_end(ap);
}

/* ---- regex compile ---- */

/* Unescapes a pure-literal RE2 fragment (no metacharacters; \ only before ASCII
 * punctuation) into out (n bytes available). Returns the length, -1 if not literal. */
static long lit_unescape(const char *p, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '\\') {
      if (i + 1 >= n) return -1;
      unsigned char d = (unsigned char)p[++i];
      if (d >= 0x80 || is_word_byte(d) || d == '_') return -1;
      out[o++] = (char)d;
      continue;
    }
    if (c && strchr(".+*?()|[]{}^$", c)) return -1;
    out[o++] = (char)c;
  }
  return (long)o;
}

/* Picks a PCRE2-free matcher for common shapes; leaves kind RE_PCRE otherwise. */
static int re_fast_path(re_t *re, mw_arena_t *pool, const char *p, size_t n) {
  static const struct {
    const char *tail;
    uint32_t min_len, ncap;
  } tails[] = {{"(.*)", 0, 1}, {"(.+)", 1, 1}, {".*", 0, 0}, {".+", 1, 0}};
  char *buf = mw_arena_alloc(pool, n + 1);
  if (!buf) return -1;
  for (size_t t = 0; t < sizeof tails / sizeof tails[0]; t++) {
    size_t tl = strlen(tails[t].tail);
    if (n < tl || memcmp(p + n - tl, tails[t].tail, tl) != 0) continue;
    if (re->ncap != tails[t].ncap) continue;
    long k = lit_unescape(p, n - tl, buf);
    if (k < 0) continue;
    if (k == 0 && tails[t].min_len == 0) {
      re->kind = RE_ALL;
    } else {
      re->kind = RE_PREFIX;
      re->lit = (str_t){buf, (uint32_t)k};
      re->min_len = tails[t].min_len;
    }
    return 0;
  }
  if (re->ncap != 0) return 0;
  long k = lit_unescape(p, n, buf);
  if (k >= 0) {
    re->kind = RE_LITERAL;
    re->lit = (str_t){buf, (uint32_t)k};
    return 0;
  }
  /* literal|literal|...: split on unescaped '|'. */
  uint32_t nalt = 1;
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\\')
      i++;
    else if (p[i] == '|')
      nalt++;
  }
  if (nalt < 2 || nalt > 64) return 0;
  str_t *set = mw_arena_alloc(pool, nalt * sizeof *set);
  if (!set) return -1;
  size_t start = 0, o = 0;
  uint32_t a = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && p[i] == '\\') {
      i++;
      continue;
    }
    if (i < n && p[i] != '|') continue;
    k = lit_unescape(p + start, i - start, buf + o);
    if (k < 0) return 0;
    set[a++] = (str_t){buf + o, (uint32_t)k};
    o += (size_t)k;
    start = i + 1;
  }
  re->kind = RE_LITSET;
  re->set = set;
  re->nset = a;
  return 0;
}

/* Compiles an RE2 regex (anchored, dot-all). -1 with err on failure. */
static int re_compile(re_t *re, mw_arena_t *pool, const char *p, size_t n, size_t rule, char *err,
                      size_t err_size) {
  char msg[256];
  int rc = -1;
  memset(re, 0, sizeof *re);
  re->code = mw_re2_compile(p, n, 1, &re->jit, msg, sizeof msg);
  if (!re->code) {
    set_err(err, err_size, rule, "regex", "%s", msg);
    goto cleanup;
  }
  pcre2_pattern_info(re->code, PCRE2_INFO_CAPTURECOUNT, &re->ncap);
  if (re_fast_path(re, pool, p, n) < 0) {
    set_err(err, err_size, rule, "regex", "out of memory");
    goto cleanup;
  }
  rc = 0;
cleanup:
  if (rc < 0 && re->code) {
    pcre2_code_free(re->code);
    re->code = NULL;
  }
  return rc;
}

/* ---- templates (Go's Regexp.Expand) ---- */

/* Length of the Unicode letter/digit rune at s (Go's unicode.IsLetter/IsDigit), 0 if
 * none. Uses a helper PCRE2 pattern compiled on first need. */
static size_t name_rune(pcre2_code **helper, pcre2_match_data **hmd, const char *s, size_t n,
                        size_t at) {
  if (!*helper) {
    int ec;
    PCRE2_SIZE eo;
    *helper = pcre2_compile((PCRE2_SPTR) "[\\p{L}\\p{Nd}]", PCRE2_ZERO_TERMINATED,
                            PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);
    if (!*helper) return 0;
    *hmd = pcre2_match_data_create_from_pattern(*helper, NULL);
    if (!*hmd) return 0;
  }
  if (!*hmd) return 0;
  if (pcre2_match(*helper, (PCRE2_SPTR)s, n, at, PCRE2_ANCHORED, *hmd, NULL) < 1) return 0;
  return pcre2_get_ovector_pointer(*hmd)[1] - at;
}

/* Compiles template t[0..n) for regex re. -1 only when out of memory. */
static int tmpl_compile(tmpl_t *out, mw_arena_t *pool, const re_t *re, const char *t, size_t n,
                        pcre2_code **helper, pcre2_match_data **hmd) {
  top_t *ops = mw_arena_alloc(pool, (n + 1) * sizeof *ops); /* at most one op per byte */
  char *lit = mw_arena_alloc(pool, n + 1);
  if (!ops || !lit) return -1;
  uint32_t nops = 0;
  size_t litn = 0, i = 0, run = 0; /* run: start of the pending literal */
  int has_groups = 0;
#define FLUSH(end)                                                                                 \
  do {                                                                                             \
    if ((end) > run) {                                                                             \
      ops[nops++] = (top_t){UINT32_MAX, {t + run, (uint32_t)((end)-run)}};                         \
      memcpy(lit + litn, t + run, (end)-run);                                                      \
      litn += (end)-run;                                                                           \
    }                                                                                              \
  } while (0)
  while (i < n) {
    if (t[i] != '$') {
      i++;
      continue;
    }
    FLUSH(i);
    size_t d = i; /* the '$' */
    i++;
    if (i < n && t[i] == '$') { /* $$ is a literal $ */
      run = i;
      i++;
      continue;
    }
    int brace = i < n && t[i] == '{';
    size_t ns = i + (size_t)brace, ne = ns;
    while (ne < n) {
      unsigned char c = (unsigned char)t[ne];
      if (is_word_byte(c)) {
        ne++;
      } else if (c >= 0x80) {
        size_t w = name_rune(helper, hmd, t, n, ne);
        if (!w) break;
        ne += w;
      } else {
        break;
      }
    }
    if (ne == ns || (brace && (ne >= n || t[ne] != '}'))) { /* malformed: '$' is literal */
      run = d;
      continue;
    }
    i = ne + (size_t)brace;
    run = i;
    long num = 0;
    for (size_t k = ns; k < ne; k++) {
      if (t[k] < '0' || t[k] > '9' || num >= 100000000) {
        num = -1;
        break;
      }
      num = num * 10 + (t[k] - '0');
    }
    if (t[ns] == '0' && ne - ns > 1) num = -1;
    long group = -1;
    if (num >= 0) {
      group = num <= (long)re->ncap ? num : -1;
    } else if (re->code && ne - ns < 256) {
      char name[256];
      memcpy(name, t + ns, ne - ns);
      name[ne - ns] = '\0';
      int g = pcre2_substring_number_from_name(re->code, (PCRE2_SPTR)name);
      group = g >= 0 ? g : -1;
    }
    if (group >= 0) {
      ops[nops++] = (top_t){(uint32_t)group, {NULL, 0}};
      has_groups = 1;
    }
  }
  FLUSH(n);
#undef FLUSH
  lit[litn] = '\0';
  *out = (tmpl_t){ops, nops, has_groups, {lit, (uint32_t)litn}};
  return 0;
}

/* ---- compile ---- */

static void rule_free(rule_t *r) {
  if (r->re.code) pcre2_code_free(r->re.code);
  r->re.code = NULL;
}

void mw_relabel_program_free(mw_relabel_program_t *p) {
  if (!p) return;
  for (size_t i = 0; i < p->n; i++)
    rule_free(&p->rules[i]);
  free(p->rules);
  mw_arena_free(&p->pool);
  free(p);
}

size_t mw_relabel_program_rules(const mw_relabel_program_t *p) { return p ? p->n : 0; }

static int str_set(mw_relabel_str_t s) { return s.ptr != NULL; }

static int str_is(mw_relabel_str_t s, const char *z) {
  return s.ptr && str_eq(s.ptr, s.len, z, strlen(z));
}

/* Validates and compiles one rule (Prometheus's UnmarshalYAML + Config.Validate). */
static int rule_compile(mw_relabel_program_t *p, rule_t *r, const mw_relabel_rule_t *in, size_t i,
                        char *err, size_t err_size, pcre2_code **helper, pcre2_match_data **hmd) {
  char q[128];
  mw_arena_t *pool = &p->pool;
  /* action */
  r->action = ACT_REPLACE;
  if (in->action.ptr) {
    size_t k, na = sizeof action_names / sizeof action_names[0];
    if (in->action.len == 0) {
      set_err(err, err_size, i, "action", "relabel action cannot be empty");
      return -1;
    }
    for (k = 0; k < na; k++) {
      const char *a = action_names[k];
      size_t al = strlen(a), j;
      if (al != in->action.len) continue;
      for (j = 0; j < al && tolower((unsigned char)in->action.ptr[j]) == a[j]; j++) {
      }
      if (j == al) break;
    }
    if (k == na) {
      set_err(err, err_size, i, "action", "unknown relabel action %s",
              quote(q, sizeof q, in->action.ptr, in->action.len));
      return -1;
    }
    r->action = (int)k;
  }
  const char *act = action_names[r->action];
  if (in->name_validation > 1) {
    set_err(err, err_size, i, "name_validation",
            "unknown name validation scheme %u, must be 0 (legacy) or 1 (utf8)",
            (unsigned)in->name_validation);
    return -1;
  }
  int utf8 = r->utf8_names = in->name_validation == MW_RELABEL_NAMES_UTF8;
  /* source labels */
  if (in->n_source_labels && !in->source_labels) {
    set_err(err, err_size, i, "source_labels", "%u names but no array",
            (unsigned)in->n_source_labels);
    return -1;
  }
  r->nsrc = in->n_source_labels;
  r->src = mw_arena_alloc(pool, (r->nsrc + 1) * sizeof *r->src);
  if (!r->src) goto oom;
  for (uint32_t k = 0; k < r->nsrc; k++) {
    mw_relabel_str_t s = in->source_labels[k];
    if (!valid_name(s.ptr ? s.ptr : "", s.ptr ? s.len : 0, utf8)) {
      char field[40];
      snprintf(field, sizeof field, "source_labels[%u]", (unsigned)k + 1);
      set_err(err, err_size, i, field, "%s is not a valid label name",
              quote(q, sizeof q, s.ptr ? s.ptr : "", s.ptr ? s.len : 0));
      return -1;
    }
    r->src[k].p = pool_dup(pool, s.ptr, s.len);
    r->src[k].len = s.len;
    if (!r->src[k].p) goto oom;
  }
  /* separator, target_label, replacement, modulus */
  mw_relabel_str_t sep = str_set(in->separator) ? in->separator : (mw_relabel_str_t){";", 1};
  mw_relabel_str_t tgt = str_set(in->target_label) ? in->target_label : (mw_relabel_str_t){"", 0};
  mw_relabel_str_t rep = str_set(in->replacement) ? in->replacement : (mw_relabel_str_t){"$1", 2};
  r->sep = (str_t){pool_dup(pool, sep.ptr, sep.len), sep.len};
  r->target_label = (str_t){pool_dup(pool, tgt.ptr, tgt.len), tgt.len};
  char *rep_copy = pool_dup(pool, rep.ptr, rep.len);
  if (!r->sep.p || !r->target_label.p || !rep_copy) goto oom;
  r->modulus = in->modulus;
  /* regex (compiled before validation, as Prometheus does while unmarshalling) */
  if (str_set(in->regex)) {
    if (re_compile(&r->re, pool, in->regex.ptr, in->regex.len, i, err, err_size) < 0) return -1;
  } else if (re_compile(&r->re, pool, "(.*)", 4, i, err, err_size) < 0) {
    return -1;
  }
  int a = r->action;
  int needs_target = a == ACT_REPLACE || a == ACT_HASHMOD || a == ACT_LOWERCASE ||
                     a == ACT_UPPERCASE || a == ACT_KEEPEQUAL || a == ACT_DROPEQUAL;
  int simple_target = a == ACT_LOWERCASE || a == ACT_UPPERCASE || a == ACT_KEEPEQUAL ||
                      a == ACT_DROPEQUAL || a == ACT_HASHMOD;
  int has_var = memchr(tgt.ptr, '$', tgt.len) != NULL;
  if (a == ACT_HASHMOD && r->modulus == 0) {
    set_err(err, err_size, i, "modulus",
            "relabel configuration for hashmod requires non-zero "
            "modulus");
    return -1;
  }
  if (needs_target && tgt.len == 0) {
    set_err(err, err_size, i, "target_label",
            "relabel configuration for %s action requires 'target_label' value", act);
    return -1;
  }
  if ((a == ACT_REPLACE && !has_var && !valid_name(tgt.ptr, tgt.len, utf8)) ||
      (a == ACT_REPLACE && has_var && !valid_target_template(tgt.ptr, tgt.len, utf8)) ||
      (simple_target && !valid_name(tgt.ptr, tgt.len, utf8))) {
    set_err(err, err_size, i, "target_label", "%s is invalid 'target_label' for %s action",
            quote(q, sizeof q, tgt.ptr, tgt.len), act);
    return -1;
  }
  int rep_default = str_eq(rep.ptr, rep.len, "$1", 2);
  if ((a == ACT_LOWERCASE || a == ACT_UPPERCASE || a == ACT_KEEPEQUAL || a == ACT_DROPEQUAL) &&
      !rep_default) {
    set_err(err, err_size, i, "replacement", "'replacement' can not be set for %s action", act);
    return -1;
  }
  if (a == ACT_LABELMAP && !valid_target_template(rep.ptr, rep.len, utf8)) {
    set_err(err, err_size, i, "replacement", "%s is invalid 'replacement' for %s action",
            quote(q, sizeof q, rep.ptr, rep.len), act);
    return -1;
  }
  if (a == ACT_KEEPEQUAL || a == ACT_DROPEQUAL) {
    const char *field = NULL;
    if (str_set(in->regex) && !str_is(in->regex, "(.*)"))
      field = "regex";
    else if (r->modulus)
      field = "modulus";
    else if (!str_eq(sep.ptr, sep.len, ";", 1))
      field = "separator";
    if (field) {
      set_err(err, err_size, i, field,
              "%s action requires only 'source_labels' and `target_label`, and no other fields",
              act);
      return -1;
    }
  }
  if (a == ACT_LABELDROP || a == ACT_LABELKEEP) {
    const char *field = NULL;
    if (r->nsrc)
      field = "source_labels";
    else if (tgt.len)
      field = "target_label";
    else if (r->modulus)
      field = "modulus";
    else if (!str_eq(sep.ptr, sep.len, ";", 1))
      field = "separator";
    else if (!rep_default)
      field = "replacement";
    if (field) {
      set_err(err, err_size, i, field, "%s action requires only 'regex', and no other fields", act);
      return -1;
    }
  }
  if (tmpl_compile(&r->target, pool, &r->re, r->target_label.p, tgt.len, helper, hmd) < 0 ||
      tmpl_compile(&r->repl, pool, &r->re, rep_copy, rep.len, helper, hmd) < 0)
    goto oom;
  if (r->re.ncap + 1 > p->max_pairs) p->max_pairs = r->re.ncap + 1;
  return 0;
oom:
  set_err(err, err_size, i, "compile", "out of memory");
  return -1;
}

int mw_relabel_compile(const mw_relabel_rule_t *rules, size_t n, mw_relabel_program_t **out,
                       char *err, size_t err_size) {
  pcre2_code *helper = NULL;
  pcre2_match_data *hmd = NULL;
  mw_relabel_program_t *p = calloc(1, sizeof *p);
  int rc = -1;
  *out = NULL;
  if (err && err_size) err[0] = '\0';
  if (!p || (n && !(p->rules = calloc(n, sizeof *p->rules)))) {
    mw_seterr(err, err_size, "out of memory");
    goto cleanup;
  }
  if (n && !rules) {
    mw_seterr(err, err_size, "%zu rules but no array", n);
    goto cleanup;
  }
  p->max_pairs = 2;
  for (size_t i = 0; i < n; i++) {
    p->n = i + 1;
    if (rule_compile(p, &p->rules[i], &rules[i], i, err, err_size, &helper, &hmd) < 0) goto cleanup;
  }
  p->n = n;
  *out = p;
  p = NULL;
  rc = 0;
cleanup:
  mw_relabel_program_free(p);
  pcre2_match_data_free(hmd);
  pcre2_code_free(helper);
  return rc;
}

/* ---- scratch ---- */

mw_relabel_scratch_t *mw_relabel_scratch_new(void) {
  mw_relabel_scratch_t *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->mctx = pcre2_match_context_create(NULL);
  s->jstack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
  s->md5 = EVP_MD_CTX_new();
  s->md5_fetched = EVP_MD_fetch(NULL, "MD5", NULL);
  s->md5_alg = s->md5_fetched ? s->md5_fetched : EVP_md5();
  if (!s->mctx || !s->jstack || !s->md5) {
    mw_relabel_scratch_free(s);
    return NULL;
  }
  pcre2_jit_stack_assign(s->mctx, NULL, s->jstack);
  return s;
}

void mw_relabel_scratch_free(mw_relabel_scratch_t *s) {
  if (!s) return;
  free(s->sorted);
  free(s->hidden);
  free(s->hidden_snap);
  free(s->add);
  free(s->snap);
  free(s->out);
  free(s->ffi_in);
  free(s->ffi_out);
  free(s->join);
  mw_arena_free(&s->pool);
  pcre2_match_data_free(s->md);
  pcre2_match_context_free(s->mctx);
  pcre2_jit_stack_free(s->jstack);
  EVP_MD_CTX_free(s->md5);
  EVP_MD_free(s->md5_fetched);
  free(s);
}

const mw_label_t *mw_relabel_scratch_labels(const mw_relabel_scratch_t *s, size_t *n_out) {
  if (n_out) *n_out = s->nout;
  return s->out;
}

/* ---- matching ---- */

/* Matches subj against re. Returns 1 and *ov (pairs for groups 0..ncap; unset groups
 * are PCRE2_UNSET) on a match, 0 otherwise. */
static int re_match(const re_t *re, mw_relabel_scratch_t *s, const char *subj, size_t len,
                    const PCRE2_SIZE **ov) {
  switch (re->kind) {
  case RE_ALL:
    s->fov[0] = s->fov[2] = 0;
    s->fov[1] = s->fov[3] = len;
    *ov = s->fov;
    return 1;
  case RE_PREFIX:
    if (len < re->lit.len + re->min_len || (re->lit.len && memcmp(subj, re->lit.p, re->lit.len)))
      return 0;
    s->fov[0] = 0;
    s->fov[1] = s->fov[3] = len;
    s->fov[2] = re->lit.len;
    *ov = s->fov;
    return 1;
  case RE_LITERAL:
    s->fov[0] = 0;
    s->fov[1] = len;
    *ov = s->fov;
    return str_eq(subj, len, re->lit.p, re->lit.len);
  case RE_LITSET:
    s->fov[0] = 0;
    s->fov[1] = len;
    *ov = s->fov;
    for (uint32_t k = 0; k < re->nset; k++)
      if (str_eq(subj, len, re->set[k].p, re->set[k].len)) return 1;
    return 0;
  default: break;
  }
  int rc = re->jit ? pcre2_jit_match(re->code, (PCRE2_SPTR)subj, len, 0, 0, s->md, s->mctx)
                   : pcre2_match(re->code, (PCRE2_SPTR)subj, len, 0, 0, s->md, s->mctx);
  if (rc >= 0) {
    *ov = pcre2_get_ovector_pointer(s->md);
    return 1;
  }
  if (rc != PCRE2_ERROR_NOMATCH) s->match_errors++;
  return 0;
}

/* ---- the builder ---- */

static long base_find(const mw_relabel_scratch_t *s, const char *name, size_t n) {
  size_t lo = 0, hi = s->nbase;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    const mw_label_t *l = &s->base[mid];
    int c = str_cmp(l->name, l->name_len, name, n);
    if (c == 0) return (long)mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

/* Prometheus's Builder.Get: "" when absent. */
static void b_get(const mw_relabel_scratch_t *s, const char *name, size_t n, const char **v,
                  size_t *vn) {
  for (size_t k = 0; k < s->nadd; k++) {
    if (str_eq(s->add[k].name, s->add[k].name_len, name, n)) {
      *v = s->add[k].value;
      *vn = s->add[k].value_len;
      return;
    }
  }
  long i = base_find(s, name, n);
  if (i >= 0 && !s->hidden[i]) {
    *v = s->base[i].value;
    *vn = s->base[i].value_len;
    return;
  }
  *v = "";
  *vn = 0;
}

static void b_del(mw_relabel_scratch_t *s, const char *name, size_t n) {
  for (size_t k = 0; k < s->nadd; k++) {
    if (str_eq(s->add[k].name, s->add[k].name_len, name, n)) {
      memmove(&s->add[k], &s->add[k + 1], (s->nadd - k - 1) * sizeof *s->add);
      s->nadd--;
      break;
    }
  }
  long i = base_find(s, name, n);
  if (i >= 0) s->hidden[i] = 1;
}

/* Builder.Set; bytes must outlive the apply (input, program or scratch pool). */
static int b_set(mw_relabel_scratch_t *s, const char *name, size_t n, const char *v, size_t vn) {
  if (vn == 0) {
    b_del(s, name, n);
    return 0;
  }
  for (size_t k = 0; k < s->nadd; k++) {
    if (str_eq(s->add[k].name, s->add[k].name_len, name, n)) {
      s->add[k].value = v;
      s->add[k].value_len = (uint32_t)vn;
      return 0;
    }
  }
  if (mw_grow((void **)&s->add, &s->add_cap, s->nadd + 1, sizeof *s->add) < 0) return -1;
  s->add[s->nadd++] = (mw_label_t){name, v, (uint32_t)n, (uint32_t)vn};
  long i = base_find(s, name, n);
  if (i >= 0) s->hidden[i] = 1;
  return 0;
}

/* Snapshot for Range: hidden flags and the add list as they are now. */
static int b_snapshot(mw_relabel_scratch_t *s, size_t *nsnap) {
  if (mw_grow((void **)&s->snap, &s->snap_cap, s->nadd + 1, sizeof *s->snap) < 0 ||
      mw_grow((void **)&s->hidden_snap, &s->hidden_snap_cap, s->nbase + 1, 1) < 0)
    return -1;
  if (s->nadd) memcpy(s->snap, s->add, s->nadd * sizeof *s->snap);
  if (s->nbase) memcpy(s->hidden_snap, s->hidden, s->nbase);
  *nsnap = s->nadd;
  return 0;
}

/* Expands template t against subj and the match ov. The result is in the pool or the
 * program; NULL only when out of memory. */
static const char *expand(mw_relabel_scratch_t *s, const tmpl_t *t, const char *subj,
                          const PCRE2_SIZE *ov, size_t *out_len) {
  if (!t->has_groups) {
    *out_len = t->lit.len;
    return t->lit.p;
  }
  size_t n = 0;
  for (uint32_t k = 0; k < t->nops; k++) {
    const top_t *op = &t->ops[k];
    if (op->group == UINT32_MAX)
      n += op->lit.len;
    else if (ov[2 * op->group] != PCRE2_UNSET)
      n += ov[2 * op->group + 1] - ov[2 * op->group];
  }
  char *o = mw_arena_alloc(&s->pool, n + 1), *w = o;
  if (!o) return NULL;
  for (uint32_t k = 0; k < t->nops; k++) {
    const top_t *op = &t->ops[k];
    if (op->group == UINT32_MAX) {
      memcpy(w, op->lit.p, op->lit.len);
      w += op->lit.len;
    } else if (ov[2 * op->group] != PCRE2_UNSET) {
      size_t gl = ov[2 * op->group + 1] - ov[2 * op->group];
      memcpy(w, subj + ov[2 * op->group], gl);
      w += gl;
    }
  }
  *out_len = n;
  return o;
}

/* ---- case mapping (Go's strings.ToLower/ToUpper) ---- */

static locale_t utf8_locale;
static pthread_once_t utf8_locale_once = PTHREAD_ONCE_INIT;

static void utf8_locale_init(void) {
  utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
  if (!utf8_locale) utf8_locale = newlocale(LC_CTYPE_MASK, "C.utf8", (locale_t)0);
}

/* Maps v to lower (upper = 0) or upper case into the pool. Non-ASCII runes use the
 * C.UTF-8 locale's towlower/towupper (left unchanged without it); invalid UTF-8 bytes
 * become U+FFFD as in Go. NULL only when out of memory. */
static const char *case_map(mw_relabel_scratch_t *s, const char *v, size_t n, int upper,
                            size_t *out_len) {
  char *o = mw_arena_alloc(&s->pool, n * 3 + 1), *w = o; /* a byte grows to at most 3 */
  if (!o) return NULL;
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)v[i];
    if (c < 0x80) {
      *w++ =
          (char)(upper ? (c >= 'a' && c <= 'z' ? c - 32 : c) : (c >= 'A' && c <= 'Z' ? c + 32 : c));
      i++;
      continue;
    }
    size_t width;
    uint32_t r = utf8_decode((const unsigned char *)v + i, n - i, &width);
    i += width;
    if (r != 0xFFFD) {
      pthread_once(&utf8_locale_once, utf8_locale_init);
      if (utf8_locale) {
        wint_t m = upper ? towupper_l((wint_t)r, utf8_locale) : towlower_l((wint_t)r, utf8_locale);
        if (m > 0 && m <= 0x10FFFF && !(m >= 0xD800 && m <= 0xDFFF)) r = (uint32_t)m;
      }
    }
    w += utf8_encode(r, w);
  }
  *out_len = (size_t)(w - o);
  return o;
}

/* ---- apply ---- */

/* The source values joined with the separator (Prometheus: strings.Join of Get). The
 * result may live in s->join, valid until the next join. NULL when out of memory. */
static const char *join_sources(mw_relabel_scratch_t *s, const rule_t *r, size_t *len) {
  const char *v;
  size_t vn;
  if (r->nsrc == 0) {
    *len = 0;
    return "";
  }
  if (r->nsrc == 1) {
    b_get(s, r->src[0].p, r->src[0].len, &v, &vn);
    *len = vn;
    return v;
  }
  size_t n = 0;
  for (uint32_t k = 0; k < r->nsrc; k++) {
    b_get(s, r->src[k].p, r->src[k].len, &v, &vn);
    size_t need = n + vn + (k ? r->sep.len : 0);
    if (mw_grow((void **)&s->join, &s->join_cap, need + 1, 1) < 0) return NULL;
    if (k) {
      memcpy(s->join + n, r->sep.p, r->sep.len);
      n += r->sep.len;
    }
    if (vn) memcpy(s->join + n, v, vn);
    n += vn;
  }
  *len = n;
  return s->join;
}

/* Applies one rule. 1 keep, 0 drop, -1 error. */
static int rule_apply(const rule_t *r, mw_relabel_scratch_t *s) {
  size_t vn, nsnap;
  const char *v = join_sources(s, r, &vn);
  const PCRE2_SIZE *ov;
  if (!v) return -1;
  switch (r->action) {
  case ACT_DROP: return !re_match(&r->re, s, v, vn, &ov);
  case ACT_KEEP: return re_match(&r->re, s, v, vn, &ov);
  case ACT_DROPEQUAL:
  case ACT_KEEPEQUAL: {
    const char *t;
    size_t tn;
    b_get(s, r->target_label.p, r->target_label.len, &t, &tn);
    return str_eq(t, tn, v, vn) == (r->action == ACT_KEEPEQUAL);
  }
  case ACT_REPLACE: {
    if (!re_match(&r->re, s, v, vn, &ov)) return 1;
    size_t tn, rn;
    const char *t = expand(s, &r->target, v, ov, &tn);
    if (!t) return -1;
    if (!valid_name(t, tn, r->utf8_names)) return 1;
    const char *res = expand(s, &r->repl, v, ov, &rn);
    if (!res) return -1;
    return b_set(s, t, tn, res, rn) < 0 ? -1 : 1;
  }
  case ACT_LOWERCASE:
  case ACT_UPPERCASE: {
    size_t rn;
    const char *res = case_map(s, v, vn, r->action == ACT_UPPERCASE, &rn);
    if (!res) return -1;
    return b_set(s, r->target_label.p, r->target_label.len, res, rn) < 0 ? -1 : 1;
  }
  case ACT_HASHMOD: {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    if (!EVP_DigestInit_ex2(s->md5, s->md5_alg, NULL) || !EVP_DigestUpdate(s->md5, v, vn) ||
        !EVP_DigestFinal_ex(s->md5, d, &dl) || dl != 16) {
      errno = EIO;
      return -1;
    }
    uint64_t h = 0;
    for (int k = 8; k < 16; k++)
      h = (h << 8) | d[k];
    h %= r->modulus;
    char buf[24], *e = buf + sizeof buf, *b = e;
    do {
      *--b = (char)('0' + h % 10);
      h /= 10;
    } while (h);
    char *num = pool_dup(&s->pool, b, (size_t)(e - b));
    if (!num) return -1;
    return b_set(s, r->target_label.p, r->target_label.len, num, (size_t)(e - b)) < 0 ? -1 : 1;
  }
  case ACT_LABELMAP:
  case ACT_LABELDROP:
  case ACT_LABELKEEP: {
    if (b_snapshot(s, &nsnap) < 0) return -1;
    for (size_t k = 0; k < s->nbase + nsnap; k++) {
      const mw_label_t *l;
      if (k < s->nbase) {
        if (s->hidden_snap[k]) continue;
        l = &s->base[k];
      } else {
        l = &s->snap[k - s->nbase];
      }
      int m = re_match(&r->re, s, l->name, l->name_len, &ov);
      if (r->action == ACT_LABELMAP) {
        if (!m) continue;
        size_t rn;
        const char *res = expand(s, &r->repl, l->name, ov, &rn);
        if (!res || b_set(s, res, rn, l->value, l->value_len) < 0) return -1;
      } else if (m == (r->action == ACT_LABELDROP)) {
        b_del(s, l->name, l->name_len);
      }
    }
    return 1;
  }
  default: return 1;
  }
}

static int label_less(const mw_label_t *a, const mw_label_t *b) {
  return str_cmp(a->name, a->name_len, b->name, b->name_len) < 0;
}

static void sort_labels(mw_label_t *ls, size_t n) { /* insertion sort: sets are small */
  for (size_t i = 1; i < n; i++) {
    mw_label_t x = ls[i];
    size_t j = i;
    while (j > 0 && label_less(&x, &ls[j - 1])) {
      ls[j] = ls[j - 1];
      j--;
    }
    ls[j] = x;
  }
}

static int cmp_labels(const void *a, const void *b) {
  const mw_label_t *x = a, *y = b;
  return str_cmp(x->name, x->name_len, y->name, y->name_len);
}

int mw_relabel_apply(const mw_relabel_program_t *p, mw_relabel_scratch_t *s, const mw_label_t *in,
                     size_t n, const mw_label_t **out, size_t *out_n) {
  mw_arena_reset(&s->pool);
  s->nadd = 0;
  s->nout = 0;
  if (s->md_pairs < p->max_pairs) {
    pcre2_match_data_free(s->md);
    s->md = pcre2_match_data_create(p->max_pairs, NULL);
    s->md_pairs = s->md ? p->max_pairs : 0;
    if (!s->md) goto oom;
  }
  /* base: the input, sorted */
  size_t k = 1;
  while (k < n && !label_less(&in[k], &in[k - 1]))
    k++;
  if (k < n) {
    if (mw_grow((void **)&s->sorted, &s->sorted_cap, n, sizeof *s->sorted) < 0) goto oom;
    memcpy(s->sorted, in, n * sizeof *in);
    if (n <= 32)
      sort_labels(s->sorted, n);
    else
      qsort(s->sorted, n, sizeof *s->sorted, cmp_labels);
    s->base = s->sorted;
  } else {
    s->base = in;
  }
  s->nbase = n;
  if (mw_grow((void **)&s->hidden, &s->hidden_cap, n + 1, 1) < 0) goto oom;
  if (n) memset(s->hidden, 0, n);
  for (size_t i = 0; i < p->n; i++) {
    int rc = rule_apply(&p->rules[i], s);
    if (rc < 0) goto oom;
    if (rc == 0) return 0;
  }
  /* result: visible base labels merged with the sorted add list */
  if (mw_grow((void **)&s->out, &s->out_cap, n + s->nadd + 1, sizeof *s->out) < 0 ||
      mw_grow((void **)&s->snap, &s->snap_cap, s->nadd + 1, sizeof *s->snap) < 0)
    goto oom;
  if (s->nadd) memcpy(s->snap, s->add, s->nadd * sizeof *s->add);
  sort_labels(s->snap, s->nadd);
  size_t b = 0, a = 0, o = 0;
  while (b < n || a < s->nadd) {
    if (b < n && s->hidden[b]) {
      b++;
      continue;
    }
    if (a >= s->nadd || (b < n && label_less(&s->base[b], &s->snap[a])))
      s->out[o++] = s->base[b++];
    else
      s->out[o++] = s->snap[a++];
  }
  s->nout = o;
  if (out) *out = s->out;
  if (out_n) *out_n = o;
  return 1;
oom:
  if (errno != EIO) errno = ENOMEM;
  return -1;
}

/* ---- FFI ---- */

int mw_ffi_relabel_program_new(const mw_ffi_relabel_rule_t *rules, uint32_t n,
                               mw_ffi_relabel_program_t **out, char *err, size_t err_size) {
  return mw_relabel_compile(rules, n, out, err, err_size);
}

void mw_ffi_relabel_program_free(mw_ffi_relabel_program_t *p) { mw_relabel_program_free(p); }

mw_ffi_relabel_scratch_t *mw_ffi_relabel_scratch_new(void) { return mw_relabel_scratch_new(); }

void mw_ffi_relabel_scratch_free(mw_ffi_relabel_scratch_t *s) { mw_relabel_scratch_free(s); }

int mw_ffi_relabel_apply(const mw_ffi_relabel_program_t *p, mw_ffi_relabel_scratch_t *s,
                         const mw_ffi_relabel_label_t *labels, uint32_t n) {
  if (mw_grow((void **)&s->ffi_in, &s->ffi_in_cap, (size_t)n + 1, sizeof *s->ffi_in) < 0) {
    errno = ENOMEM;
    return -1;
  }
  for (uint32_t i = 0; i < n; i++)
    s->ffi_in[i] =
        (mw_label_t){labels[i].name, labels[i].value, labels[i].name_len, labels[i].value_len};
  const mw_label_t *o;
  size_t on;
  s->ffi_nout = 0;
  int rc = mw_relabel_apply(p, s, s->ffi_in, n, &o, &on);
  if (rc != 1) return rc;
  if (mw_grow((void **)&s->ffi_out, &s->ffi_out_cap, on + 1, sizeof *s->ffi_out) < 0) {
    errno = ENOMEM;
    return -1;
  }
  for (size_t i = 0; i < on; i++)
    s->ffi_out[i] = (mw_ffi_relabel_label_t){o[i].name, o[i].value, o[i].name_len, o[i].value_len};
  s->ffi_nout = on;
  return 1;
}

uint32_t mw_ffi_relabel_result(const mw_ffi_relabel_scratch_t *s,
                               const mw_ffi_relabel_label_t **labels) {
  *labels = s->ffi_out;
  return (uint32_t)s->ffi_nout;
}
