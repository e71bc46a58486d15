/* base/re2.c: RE2 (Go regexp/syntax) pattern checker and translator for PCRE2.
 *
 * Prometheus compiles relabel regexes with Go's regexp package (RE2 syntax). We match
 * with PCRE2, which accepts a superset of that syntax and reads a few constructs
 * differently. This scanner walks the pattern once (respecting escapes, \Q...\E and
 * character classes), rejects what RE2 rejects or what PCRE2 would read differently
 * (backreferences, lookaround, possessive and nested quantifiers, atomic groups,
 * recursion, conditionals, callouts, verbs, \K \G \C \Z ...) and rewrites the few
 * RE2-only spellings into their PCRE2 equivalent:
 *
 *   \s, \S      RE2 is [\t\n\f\r ]; PCRE2 also includes \v     -> explicit class
 *   \v          RE2: the VT character; PCRE2: a whitespace class -> \x{0B}
 *   \0 \12 \123 RE2: octal; PCRE2 may read a backreference      -> \x{..}
 *   {          not a valid {n}, {n,}, {n,m}: RE2 literal       -> \{
 *   \Q...\E    quoted text                                      -> escaped literals
 *   [ in class  literal in RE2 unless [:name:]                   -> \[
 *
 * The caller compiles the result with PCRE2_UTF, PCRE2_DOLLAR_ENDONLY (RE2's $ is end of
 * text), PCRE2_ALT_CIRCUMFLEX (RE2's (?m)^ also matches after a final newline) and
 * newline LF. Anything PCRE2 still rejects is reported by PCRE2. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/labels.h"
#include "base/re2.h"

typedef struct {
  const char *p; /* the pattern */
  size_t n, i;   /* length, cursor */
  char *out;     /* translation */
  size_t len, cap;
  size_t *map; /* with a map: the pattern offset each translated byte came from */
  size_t at;   /* the pattern offset of the construct being translated */
  int oom;
  char *err;
  size_t err_size;
} re2_t;

/* Sets the error "MESSAGE (at offset N)"; a message too long for the buffer
 * (it may quote the pattern) is cut with "...", never the offset. */
static int re2_fail(re2_t *s, size_t at, const char *fmt, ...) {
  char msg[512], suffix[48];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  size_t sl = (size_t)snprintf(suffix, sizeof suffix, " (at offset %zu)", at);
  size_t room = s->err_size > sl + 1 ? s->err_size - sl - 1 : 0;
  if (strlen(msg) > room && room >= 3) memcpy(msg + room - 3, "...", 4);
  mw_seterr(s->err, s->err_size, "%s%s", msg, suffix);
  return -1;
}

static void re2_put(re2_t *s, const char *b, size_t n) {
  if (s->oom) return;
  if (s->len + n + 1 > s->cap) {
    size_t cap = s->cap ? s->cap : 64;
    while (cap < s->len + n + 1)
      cap *= 2;
    char *o = realloc(s->out, cap);
    if (!o) {
      s->oom = 1;
      return;
    }
    s->out = o;
    if (s->map) {
      size_t *m = realloc(s->map, cap * sizeof *m);
      if (!m) {
        s->oom = 1;
        return;
      }
      s->map = m;
    }
    s->cap = cap;
  }
  if (s->map)
    for (size_t k = 0; k < n; k++)
      s->map[s->len + k] = s->at;
  memcpy(s->out + s->len, b, n);
  s->len += n;
  s->out[s->len] = '\0';
}

static void re2_puts(re2_t *s, const char *z) { re2_put(s, z, strlen(z)); }

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_octal(int c) { return c >= '0' && c <= '7'; }
static int is_hex(int c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static int is_alnum(int c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static int is_word(int c) { return is_alnum(c) || c == '_'; }

/* Emits a code point as \x{..}. */
static void re2_put_cp(re2_t *s, unsigned long cp) {
  char b[24];
  snprintf(b, sizeof b, "\\x{%lx}", cp);
  re2_puts(s, b);
}

/* Emits one literal byte of quoted text, escaped when PCRE2 could read it as syntax. */
static void re2_put_literal(re2_t *s, unsigned char c) {
  char b[2] = {'\\', (char)c};
  if (c < 0x80 && !is_alnum(c) && c != '_' && c != ' ')
    re2_put(s, b, 2);
  else
    re2_put(s, (const char *)&c, 1);
}

/* Parses {n}, {n,} or {n,m} at s->i (which points at '{'). Returns the length of the
 * quantifier, 0 when it is not one (RE2 then reads '{' literally), -1 on a bad count. */
static int re2_brace_quant(re2_t *s) {
  size_t j = s->i + 1, start = s->i;
  long lo = 0, hi = -1;
  if (j >= s->n || !is_digit((unsigned char)s->p[j])) return 0;
  while (j < s->n && is_digit((unsigned char)s->p[j])) {
    if (lo <= 100000) lo = lo * 10 + (s->p[j] - '0');
    j++;
  }
  hi = lo;
  if (j < s->n && s->p[j] == ',') {
    j++;
    if (j < s->n && is_digit((unsigned char)s->p[j])) {
      hi = 0;
      while (j < s->n && is_digit((unsigned char)s->p[j])) {
        if (hi <= 100000) hi = hi * 10 + (s->p[j] - '0');
        j++;
      }
    } else {
      hi = -1;
    }
  }
  if (j >= s->n || s->p[j] != '}') return 0;
  j++;
  if (lo > 1000 || hi > 1000 || (hi >= 0 && hi < lo)) {
    re2_fail(s, start, "invalid repeat count %.*s", (int)(j - start), s->p + start);
    return -1;
  }
  return (int)(j - start);
}

/* True when a quantifier starts at s->i. */
static int re2_at_quant(re2_t *s) {
  if (s->i >= s->n) return 0;
  char c = s->p[s->i];
  if (c == '*' || c == '+' || c == '?') return 1;
  if (c == '{') {
    size_t save = s->i;
    int q = re2_brace_quant(s);
    s->i = save;
    return q != 0;
  }
  return 0;
}

/* After a quantifier: copies an optional lazy '?', rejects possessive and nested ones. */
static int re2_after_quant(re2_t *s, size_t qstart) {
  if (s->i < s->n && s->p[s->i] == '+')
    return re2_fail(s, qstart,
                    "possessive quantifier %.*s+ is not supported (RE2 syntax has no possessive "
                    "quantifiers)",
                    (int)(s->i - qstart), s->p + qstart);
  if (s->i < s->n && s->p[s->i] == '?') {
    re2_put(s, "?", 1);
    s->i++;
  }
  if (re2_at_quant(s))
    return re2_fail(s, s->i, "invalid nested repetition operator %.*s", (int)(s->i + 1 - qstart),
                    s->p + qstart);
  return 0;
}

/* Octal escape \0, \12, \123 (RE2: up to three octal digits; a single non-zero digit is a
 * backreference, which RE2 does not support). s->i points at the first digit. */
static int re2_octal(re2_t *s, size_t bs) {
  size_t j = s->i;
  unsigned long v = 0;
  int c = (unsigned char)s->p[j];
  if (c != '0' && (j + 1 >= s->n || !is_octal((unsigned char)s->p[j + 1])))
    return re2_fail(s, bs, "backreference \\%c is not supported (RE2 syntax)", c);
  for (int k = 0; k < 3 && j < s->n && is_octal((unsigned char)s->p[j]); k++, j++)
    v = v * 8 + (unsigned long)(s->p[j] - '0');
  s->i = j;
  re2_put_cp(s, v);
  return 0;
}

/* \x7F or \x{10FFFF}; s->i points after 'x'. */
static int re2_hex(re2_t *s, size_t bs) {
  size_t j = s->i;
  unsigned long v = 0;
  if (j < s->n && s->p[j] == '{') {
    size_t d = ++j;
    while (j < s->n && is_hex((unsigned char)s->p[j])) {
      int c = (unsigned char)s->p[j];
      v = v * 16 + (unsigned long)(is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10);
      if (v > 0x10FFFF) break;
      j++;
    }
    if (j == d || j >= s->n || s->p[j] != '}' || v > 0x10FFFF)
      return re2_fail(s, bs, "invalid escape sequence \\x{...}");
    j++;
  } else {
    if (j + 1 >= s->n || !is_hex((unsigned char)s->p[j]) || !is_hex((unsigned char)s->p[j + 1]))
      return re2_fail(s, bs, "invalid escape sequence \\x (needs two hex digits or \\x{...})");
    for (int k = 0; k < 2; k++, j++) {
      int c = (unsigned char)s->p[j];
      v = v * 16 + (unsigned long)(is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10);
    }
  }
  s->i = j;
  re2_put_cp(s, v);
  return 0;
}

/* \pL, \p{Greek}, \P{^Greek}; s->i points after 'p'/'P'. Copied as is. */
static int re2_unicode_class(re2_t *s, size_t bs) {
  size_t j = s->i;
  if (j >= s->n) return re2_fail(s, bs, "invalid character class range \\p");
  if (s->p[j] == '{') {
    while (j < s->n && s->p[j] != '}')
      j++;
    if (j >= s->n) return re2_fail(s, bs, "invalid character class range (missing })");
    j++;
  } else {
    if ((unsigned char)s->p[j] >= 0x80) return re2_fail(s, bs, "invalid character class range");
    j++;
  }
  re2_put(s, s->p + bs, j - bs);
  s->i = j;
  return 0;
}

/* One escape sequence at s->i (pointing at the backslash), inside or outside a class. */
static int re2_escape(re2_t *s, int in_class) {
  size_t bs = s->i;
  if (bs + 1 >= s->n) return re2_fail(s, bs, "trailing backslash at end of expression");
  unsigned char c = (unsigned char)s->p[bs + 1];
  s->i = bs + 2;
  if (c >= 0x80) return re2_fail(s, bs, "invalid escape sequence (backslash before non-ASCII)");
  if (!is_alnum(c)) { /* escaped punctuation: a literal in both dialects */
    re2_put(s, s->p + bs, 2);
    return 0;
  }
  switch (c) {
  case '0':
  case '1':
  case '2':
  case '3':
  case '4':
  case '5':
  case '6':
  case '7': s->i = bs + 1; return re2_octal(s, bs);
  case '8':
  case '9': return re2_fail(s, bs, "backreference \\%c is not supported (RE2 syntax)", c);
  case 'x': return re2_hex(s, bs);
  case 'a':
  case 'f':
  case 'n':
  case 'r':
  case 't':
  case 'd':
  case 'D':
  case 'w':
  case 'W': re2_put(s, s->p + bs, 2); return 0;
  case 'v': re2_puts(s, "\\x{0b}"); return 0;
  case 's': re2_puts(s, in_class ? "\\t\\n\\f\\r " : "[\\t\\n\\f\\r ]"); return 0;
  case 'S':
    re2_puts(s, in_class ? "\\x{0}-\\x{8}\\x{b}\\x{e}-\\x{1f}\\x{21}-\\x{10ffff}"
                         : "[^\\t\\n\\f\\r ]");
    return 0;
  case 'p':
  case 'P': return re2_unicode_class(s, bs);
  case 'A':
  case 'z':
  case 'b':
  case 'B':
    if (in_class) break;
    re2_put(s, s->p + bs, 2);
    return 0;
  case 'k':
  case 'g': return re2_fail(s, bs, "backreference \\%c is not supported (RE2 syntax)", c);
  case 'K': return re2_fail(s, bs, "\\K (reset match start) is not supported (RE2 syntax)");
  case 'G': return re2_fail(s, bs, "\\G (end of previous match) is not supported (RE2 syntax)");
  case 'C': return re2_fail(s, bs, "\\C (any byte) is not supported");
  case 'Z': return re2_fail(s, bs, "\\Z is not supported (RE2 syntax); use \\z");
  default: break;
  }
  return re2_fail(s, bs, "invalid escape sequence \\%c (RE2 syntax)", c);
}

/* A character class; s->i points at '['. */
static int re2_class(re2_t *s) {
  size_t open = s->i;
  s->i++;
  re2_put(s, "[", 1);
  if (s->i < s->n && s->p[s->i] == '^') {
    re2_put(s, "^", 1);
    s->i++;
  }
  if (s->i < s->n && s->p[s->i] == ']') { /* leading ']' is a literal */
    re2_put(s, "\\]", 2);
    s->i++;
  }
  while (s->i < s->n) {
    char c = s->p[s->i];
    if (c == ']') {
      re2_put(s, "]", 1);
      s->i++;
      return 0;
    }
    if (c == '\\') {
      if (s->i + 1 < s->n && s->p[s->i + 1] == 'Q')
        return re2_fail(s, s->i, "\\Q inside a character class is not supported (RE2 syntax)");
      if (re2_escape(s, 1) < 0) return -1;
      continue;
    }
    if (c == '[') {
      /* [:name:] or [:^name:] is a POSIX class in both dialects; any other '[' is literal. */
      if (s->i + 1 < s->n && s->p[s->i + 1] == ':') {
        size_t j = s->i + 2;
        if (j < s->n && s->p[j] == '^') j++;
        while (j < s->n && ((s->p[j] >= 'a' && s->p[j] <= 'z')))
          j++;
        if (j + 1 < s->n && s->p[j] == ':' && s->p[j + 1] == ']') {
          re2_put(s, s->p + s->i, j + 2 - s->i);
          s->i = j + 2;
          continue;
        }
      }
      re2_put(s, "\\[", 2);
      s->i++;
      continue;
    }
    re2_put(s, &c, 1);
    s->i++;
  }
  return re2_fail(s, open, "missing closing ]");
}

/* "(?" constructs; s->i points at '('. Returns 0 and sets *capture when it opens a group. */
static int re2_group(re2_t *s) {
  size_t open = s->i;
  const char *p = s->p;
  size_t n = s->n, j = open + 2;
  if (j >= n) return re2_fail(s, open, "missing closing )");
  char c = p[j];
  if (c == 'P' || c == '<') {
    size_t name = j + (c == 'P' ? 2 : 1);
    if (c == 'P' && (j + 1 >= n || p[j + 1] != '<')) {
      if (j + 1 < n && p[j + 1] == '=')
        return re2_fail(s, open, "backreference (?P=name) is not supported (RE2 syntax)");
      if (j + 1 < n && p[j + 1] == '>')
        return re2_fail(s, open, "subroutine call (?P>name) is not supported (RE2 syntax)");
      return re2_fail(s, open, "invalid named capture");
    }
    if (c == '<' && j + 1 < n && (p[j + 1] == '=' || p[j + 1] == '!'))
      return re2_fail(s, open, "lookbehind (?<%c is not supported (RE2 syntax)", p[j + 1]);
    size_t k = name;
    while (k < n && is_word((unsigned char)p[k]))
      k++;
    if (k == name || k >= n || p[k] != '>')
      return re2_fail(s, open, "invalid named capture (names are [A-Za-z0-9_]+)");
    if (is_digit((unsigned char)p[name]))
      return re2_fail(s, open, "capture group name %.*s starting with a digit is not supported",
                      (int)(k - name), p + name);
    re2_puts(s, "(?P<");
    re2_put(s, p + name, k - name);
    re2_put(s, ">", 1);
    s->i = k + 1;
    return 0;
  }
  switch (c) {
  case '=':
  case '!': return re2_fail(s, open, "lookahead (?%c is not supported (RE2 syntax)", c);
  case '>': return re2_fail(s, open, "atomic group (?> is not supported (RE2 syntax)");
  case '|': return re2_fail(s, open, "branch reset group (?| is not supported (RE2 syntax)");
  case '#': return re2_fail(s, open, "comment group (?# is not supported (RE2 syntax)");
  case '(': return re2_fail(s, open, "conditional group (?( is not supported (RE2 syntax)");
  case 'R':
  case '&':
  case '+':
    return re2_fail(s, open, "recursion or subroutine call (?%c is not supported (RE2 syntax)", c);
  case 'C': return re2_fail(s, open, "callout (?C is not supported (RE2 syntax)");
  case '\'':
    return re2_fail(s, open, "named group (?'name' is not supported (RE2 syntax: (?P<name>)");
  default: break;
  }
  if (is_digit((unsigned char)c) || (c == '-' && j + 1 < n && is_digit((unsigned char)p[j + 1])))
    return re2_fail(s, open, "recursion or subroutine call (?%c is not supported (RE2 syntax)", c);
  /* Flags: (?imsU-imsU) or (?imsU-imsU:...). */
  size_t k = j;
  int neg = 0, any = 0, after_neg = 0;
  for (; k < n && p[k] != ')' && p[k] != ':'; k++) {
    char f = p[k];
    if (f == '-') {
      if (neg) return re2_fail(s, open, "invalid or unsupported Perl syntax (double '-' in flags)");
      neg = 1;
      after_neg = 0;
      continue;
    }
    if (f != 'i' && f != 'm' && f != 's' && f != 'U')
      return re2_fail(s, open, "invalid or unsupported Perl syntax (?%c (RE2 flags are i, m, s, U)",
                      f);
    any = 1;
    after_neg = 1;
  }
  if (k >= n) return re2_fail(s, open, "missing closing )");
  if ((!any && !(k == j && p[k] == ':')) || (neg && !after_neg))
    return re2_fail(s, open, "invalid or unsupported Perl syntax (empty flag group)");
  re2_put(s, p + open, k + 1 - open);
  s->i = k + 1;
  return p[k] == ':' ? 1 : 2; /* 1: opens a group; 2: a flag setting */
}

/* mw_re2_translate, and with map (not NULL) the pattern offset each byte of
 * the translation came from (*map is the caller's, freed with free). */
static int re2_translate(const char *re, size_t len, char **out, size_t *out_len, size_t **map,
                         char *err, size_t err_size) {
  re2_t s = {.p = re, .n = len, .err = err, .err_size = err_size};
  if (map) {
    *map = NULL;
    s.map = malloc(64 * sizeof *s.map);
    if (!s.map) {
      mw_seterr(err, err_size, "out of memory");
      return -1;
    }
  }
  int depth = 0, rc = -1;
  *out = NULL;
  if (out_len) *out_len = 0;
  re2_put(&s, "", 0);
  /* RE2 (Go's regexp) refuses a pattern that is not UTF-8; PCRE2's own error
   * would name an offset in the translation, not in the pattern. */
  for (size_t i = 0; i < len;) {
    unsigned char c = (unsigned char)re[i];
    size_t n = c < 0x80                 ? 1
               : c >= 0xc2 && c <= 0xdf ? 2
               : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
    if (!n || i + n > len || !mw_labels_valid_utf8(re + i, n)) {
      re2_fail(&s, i, "invalid UTF-8");
      goto cleanup;
    }
    i += n;
  }
  while (s.i < s.n && !s.oom) {
    unsigned char c = (unsigned char)s.p[s.i];
    size_t at = s.i;
    s.at = at;
    switch (c) {
    case '\\':
      if (s.i + 1 < s.n && s.p[s.i + 1] == 'Q') {
        size_t j = s.i + 2;
        while (j < s.n && !(s.p[j] == '\\' && j + 1 < s.n && s.p[j + 1] == 'E'))
          re2_put_literal(&s, (unsigned char)s.p[j++]);
        s.i = j < s.n ? j + 2 : j;
        break;
      }
      if (s.i + 1 < s.n && s.p[s.i + 1] == 'E') {
        re2_fail(&s, at, "\\E without \\Q is not supported (RE2 syntax)");
        goto cleanup;
      }
      if (re2_escape(&s, 0) < 0) goto cleanup;
      break;
    case '[':
      if (re2_class(&s) < 0) goto cleanup;
      break;
    case '(':
      if (s.i + 1 < s.n && s.p[s.i + 1] == '*') {
        re2_fail(&s, at, "(* verbs are not supported (RE2 syntax)");
        goto cleanup;
      }
      if (s.i + 1 < s.n && s.p[s.i + 1] == '?') {
        int g = re2_group(&s);
        if (g < 0) goto cleanup;
        if (g != 2) depth++;
        break;
      }
      re2_put(&s, "(", 1);
      s.i++;
      depth++;
      break;
    case ')':
      if (depth == 0) {
        re2_fail(&s, at, "unexpected )");
        goto cleanup;
      }
      depth--;
      re2_put(&s, ")", 1);
      s.i++;
      break;
    case '*':
    case '+':
    case '?':
      re2_put(&s, s.p + s.i, 1);
      s.i++;
      if (re2_after_quant(&s, at) < 0) goto cleanup;
      break;
    case '{': {
      int q = re2_brace_quant(&s);
      if (q < 0) goto cleanup;
      if (q == 0) {
        re2_put(&s, "\\{", 2);
        s.i++;
        break;
      }
      re2_put(&s, s.p + s.i, (size_t)q);
      s.i += (size_t)q;
      if (re2_after_quant(&s, at) < 0) goto cleanup;
      break;
    }
    default:
      re2_put(&s, s.p + s.i, 1);
      s.i++;
      break;
    }
  }
  if (s.oom) {
    mw_seterr(err, err_size, "out of memory");
    goto cleanup;
  }
  if (depth > 0) {
    re2_fail(&s, s.n, "missing closing )");
    goto cleanup;
  }
  *out = s.out;
  if (out_len) *out_len = s.len;
  s.out = NULL;
  if (map) *map = s.map;
  s.map = NULL;
  rc = 0;
cleanup:
  free(s.out);
  free(s.map);
  return rc;
}

int mw_re2_translate(const char *re, size_t len, char **out, size_t *out_len, char *err,
                     size_t err_size) {
  return re2_translate(re, len, out, out_len, NULL, err, err_size);
}

struct pcre2_real_code_8 *mw_re2_compile(const char *re, size_t len, int anchored, int *jit,
                                         char *err, size_t errlen) {
  static const char prefix[] = "^(?s:", suffix[] = ")$";
  const size_t pl = anchored ? sizeof prefix - 1 : 0, sl = anchored ? sizeof suffix - 1 : 0;
  char *tr = NULL, *full = NULL;
  size_t trn = 0, *map = NULL;
  pcre2_code *code = NULL;
  pcre2_compile_context *cctx = NULL;
  if (jit) *jit = 0;
  if (re2_translate(re, len, &tr, &trn, &map, err, errlen) < 0) return NULL;
  full = malloc(pl + trn + sl + 1);
  cctx = pcre2_compile_context_create(NULL);
  if (!full || !cctx) {
    mw_seterr(err, errlen, "out of memory");
    goto done;
  }
  memcpy(full, prefix, pl);
  memcpy(full + pl, tr, trn);
  memcpy(full + pl + trn, suffix, sl);
  full[pl + trn + sl] = '\0';
  pcre2_set_newline(cctx, PCRE2_NEWLINE_LF);
  int ec;
  PCRE2_SIZE eoff;
  code = pcre2_compile((PCRE2_SPTR)full, pl + trn + sl,
                       PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY |
                           PCRE2_ALT_CIRCUMFLEX | PCRE2_NEVER_BACKSLASH_C,
                       &ec, &eoff, cctx);
  if (!code) {
    PCRE2_UCHAR m[200];
    pcre2_get_error_message(ec, m, sizeof m);
    /* PCRE2's offset is in the translation: name the pattern's construct */
    size_t t = eoff > pl ? eoff - pl : 0;
    size_t off = t < trn ? map[t] : len;
    mw_seterr(err, errlen, "%s (near offset %zu)", (const char *)m, off);
    goto done;
  }
  int j = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  if (jit) *jit = j;
done:
  pcre2_compile_context_free(cctx);
  free(full);
  free(tr);
  free(map);
  return code;
}

int mw_ffi_regex_check(const char *re, size_t len, char *err, size_t err_size) {
  pcre2_code *code = mw_re2_compile(re, len, 0, NULL, err, err_size);
  if (!code) return -1;
  pcre2_code_free(code);
  return 0;
}
