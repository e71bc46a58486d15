/* logproc/jsonx.c: one pass over a JSON document that validates it (RFC 8259 grammar,
 * nesting bounded) and finds the values of compiled paths, for loki.process's json
 * stage. Nothing of the document is built: values are spans of it. Owns the compiled
 * paths (keys copied); never keeps the document. */
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "logproc/jsonx.h"

typedef struct {
  char *key; /* NULL: an array index */
  size_t key_len;
  int64_t index;
} step_t;

struct mw_jsonx {
  uint32_t n;
  uint32_t plen[MW_JSONX_MAX_PATHS];
  step_t *steps[MW_JSONX_MAX_PATHS];
};

typedef struct {
  const mw_ffi_jsonx_t *x;
  const unsigned char *doc, *p, *end;
  mw_ffi_jsonx_value_t *out;
} scan_t;

void mw_ffi_jsonx_free(mw_ffi_jsonx_t *x) {
  if (!x) return;
  for (uint32_t i = 0; i < x->n; i++) {
    if (!x->steps[i]) continue;
    for (uint32_t j = 0; j < x->plen[i]; j++)
      free(x->steps[i][j].key);
    free(x->steps[i]);
  }
  free(x);
}

mw_ffi_jsonx_t *mw_ffi_jsonx_new(const mw_ffi_jsonx_step_t *steps, const uint32_t *path_len,
                                 uint32_t npaths, char *err, size_t err_size) {
  if (npaths > MW_JSONX_MAX_PATHS) {
    mw_seterr(err, err_size, "more than %d paths", MW_JSONX_MAX_PATHS);
    return NULL;
  }
  mw_ffi_jsonx_t *x = calloc(1, sizeof(*x));
  if (!x) goto oom;
  size_t k = 0;
  for (uint32_t i = 0; i < npaths; i++) {
    if (path_len[i] == 0 || path_len[i] > MW_JSONX_MAX_DEPTH) {
      mw_seterr(err, err_size, "path %u: needs 1 to %d steps", i + 1, MW_JSONX_MAX_DEPTH);
      mw_ffi_jsonx_free(x);
      return NULL;
    }
    x->steps[i] = calloc(path_len[i], sizeof(step_t));
    x->plen[i] = path_len[i];
    x->n = i + 1;
    if (!x->steps[i]) goto oom;
    for (uint32_t j = 0; j < path_len[i]; j++, k++) {
      step_t *s = &x->steps[i][j];
      if (steps[k].key) {
        s->key = malloc(steps[k].key_len + 1);
        if (!s->key) goto oom;
        memcpy(s->key, steps[k].key, steps[k].key_len);
        s->key[steps[k].key_len] = 0;
        s->key_len = steps[k].key_len;
      } else if (steps[k].index < 0) {
        mw_seterr(err, err_size, "path %u: a negative index", i + 1);
        mw_ffi_jsonx_free(x);
        return NULL;
      } else {
        s->index = steps[k].index;
      }
    }
  }
  return x;
oom:
  mw_ffi_jsonx_free(x);
  mw_seterr(err, err_size, "out of memory");
  return NULL;
}

static void ws(scan_t *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

static int hex4(const unsigned char *p, const unsigned char *end, unsigned *v) {
  if (end - p < 4) return -1;
  unsigned r = 0;
  for (int i = 0; i < 4; i++) {
    unsigned char c = p[i];
    r <<= 4;
    if (c >= '0' && c <= '9')
      r |= c - '0';
    else if (c >= 'a' && c <= 'f')
      r |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      r |= c - 'A' + 10;
    else
      return -1;
  }
  *v = r;
  return 0;
}

/* *s->p is '"'. Moves past the closing quote; *escaped when the body has escapes. */
static int string(scan_t *s, int *escaped) {
  const unsigned char *p = s->p + 1;
  *escaped = 0;
  while (p < s->end) {
    unsigned char c = *p;
    if (c == '"') {
      s->p = p + 1;
      return 0;
    }
    if (c < 0x20) return -1;
    if (c == '\\') {
      *escaped = 1;
      if (p + 1 >= s->end) return -1;
      unsigned char e = p[1];
      if (e == 'u') {
        unsigned v;
        if (hex4(p + 2, s->end, &v)) return -1;
        p += 6;
        continue;
      }
      if (!strchr("\"\\/bfnrt", e) || e == 0) return -1;
      p += 2;
      continue;
    }
    p++;
  }
  return -1;
}

static int digits(scan_t *s) {
  const unsigned char *p0 = s->p;
  while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
    s->p++;
  return s->p > p0 ? 0 : -1;
}

static int number(scan_t *s) {
  if (*s->p == '-') s->p++;
  if (s->p >= s->end) return -1;
  if (*s->p == '0') {
    s->p++;
  } else if (digits(s)) {
    return -1;
  }
  if (s->p < s->end && *s->p == '.') {
    s->p++;
    if (digits(s)) return -1;
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-')) s->p++;
    if (digits(s)) return -1;
  }
  return 0;
}

static int literal(scan_t *s, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return -1;
  s->p += n;
  return 0;
}

static int value(scan_t *s, uint64_t mask, uint32_t depth);

/* The paths of mask whose step at depth is key k[0..n) (escaped: with escapes). */
static uint64_t match_key(const scan_t *s, uint64_t mask, uint32_t depth, const unsigned char *k,
                          size_t n, int escaped) {
  uint64_t out = 0;
  char small[256];
  char *buf = NULL;
  const char *key = (const char *)k;
  if (!mask) return 0;
  if (escaped) {
    buf = n <= sizeof(small) ? small : malloc(n);
    if (!buf) return 0; /* out of memory: the key matches nothing */
    int64_t m = mw_ffi_jsonx_unescape((const char *)k, n, buf);
    if (m < 0) m = 0;
    key = buf;
    n = (size_t)m;
  }
  for (uint32_t i = 0; i < s->x->n; i++) {
    if (!(mask >> i & 1) || s->x->plen[i] <= depth) continue;
    const step_t *st = &s->x->steps[i][depth];
    if (st->key && st->key_len == n && memcmp(st->key, key, n) == 0) out |= (uint64_t)1 << i;
  }
  if (buf && buf != small) free(buf);
  return out;
}

static uint64_t match_index(const scan_t *s, uint64_t mask, uint32_t depth, int64_t idx) {
  uint64_t out = 0;
  for (uint32_t i = 0; i < s->x->n; i++) {
    if (!(mask >> i & 1) || s->x->plen[i] <= depth) continue;
    const step_t *st = &s->x->steps[i][depth];
    if (!st->key && st->index == idx) out |= (uint64_t)1 << i;
  }
  return out;
}

/* Forgets what the paths of mask found: a repeated key's last value is the one kept. */
static void forget(scan_t *s, uint64_t mask) {
  for (uint32_t i = 0; mask && i < s->x->n; i++)
    if (mask >> i & 1) memset(&s->out[i], 0, sizeof s->out[i]);
}

static int object(scan_t *s, uint64_t mask, uint32_t depth) {
  s->p++; /* { */
  ws(s);
  if (s->p < s->end && *s->p == '}') {
    s->p++;
    return 0;
  }
  for (;;) {
    ws(s);
    if (s->p >= s->end || *s->p != '"') return -1;
    const unsigned char *k = s->p + 1;
    int escaped;
    if (string(s, &escaped)) return -1;
    size_t klen = (size_t)(s->p - 1 - k);
    ws(s);
    if (s->p >= s->end || *s->p != ':') return -1;
    s->p++;
    uint64_t child = match_key(s, mask, depth, k, klen, escaped);
    forget(s, child);
    if (value(s, child, depth + 1)) return -1;
    ws(s);
    if (s->p >= s->end) return -1;
    if (*s->p == ',') {
      s->p++;
      continue;
    }
    if (*s->p != '}') return -1;
    s->p++;
    return 0;
  }
}

static int array(scan_t *s, uint64_t mask, uint32_t depth) {
  s->p++; /* [ */
  ws(s);
  if (s->p < s->end && *s->p == ']') {
    s->p++;
    return 0;
  }
  for (int64_t idx = 0;; idx++) {
    if (value(s, match_index(s, mask, depth, idx), depth + 1)) return -1;
    ws(s);
    if (s->p >= s->end) return -1;
    if (*s->p == ',') {
      s->p++;
      continue;
    }
    if (*s->p != ']') return -1;
    s->p++;
    return 0;
  }
}

/* A value whose path from the top is matched by the paths of mask (depth steps). */
static int value(scan_t *s, uint64_t mask, uint32_t depth) {
  if (depth > MW_JSONX_MAX_DEPTH) return -1;
  ws(s);
  if (s->p >= s->end) return -1;
  const unsigned char *start = s->p;
  int type, escaped = 0, rc;
  switch (*s->p) {
  case '{':
    type = MW_JSONX_OBJECT;
    rc = object(s, mask, depth);
    break;
  case '[':
    type = MW_JSONX_ARRAY;
    rc = array(s, mask, depth);
    break;
  case '"':
    type = MW_JSONX_STRING;
    rc = string(s, &escaped);
    break;
  case 't':
    type = MW_JSONX_TRUE;
    rc = literal(s, "true");
    break;
  case 'f':
    type = MW_JSONX_FALSE;
    rc = literal(s, "false");
    break;
  case 'n':
    type = MW_JSONX_NULL;
    rc = literal(s, "null");
    break;
  default:
    type = MW_JSONX_NUMBER;
    rc = (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) ? number(s) : -1;
  }
  if (rc) return -1;
  for (uint32_t i = 0; mask && i < s->x->n; i++) {
    if (!(mask >> i & 1) || s->x->plen[i] != depth) continue;
    mw_ffi_jsonx_value_t *v = &s->out[i];
    v->type = type;
    v->escaped = escaped;
    v->start = start - s->doc;
    v->len = s->p - start;
    if (type == MW_JSONX_STRING) {
      v->start += 1;
      v->len -= 2;
    }
  }
  return 0;
}

int mw_ffi_jsonx_run(const mw_ffi_jsonx_t *x, const char *doc, size_t len,
                     mw_ffi_jsonx_value_t *out) {
  scan_t s = {x, (const unsigned char *)doc, (const unsigned char *)doc,
              (const unsigned char *)doc + len, out};
  memset(out, 0, x->n * sizeof *out); /* every path MW_JSONX_MISSING */
  ws(&s);
  if (s.p >= s.end) return -1;
  if (*s.p == 'n') {
    if (literal(&s, "null")) return -1;
  } else if (*s.p == '{') {
    uint64_t all = x->n == 64 ? ~(uint64_t)0 : (((uint64_t)1 << x->n) - 1);
    if (object(&s, all, 0)) return -1;
  } else {
    return -1;
  }
  ws(&s);
  return s.p == s.end ? 0 : -1;
}

static size_t utf8(char *o, unsigned cp) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | cp >> 6);
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | cp >> 12);
    o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | cp >> 18);
  o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
  o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

int64_t mw_ffi_jsonx_unescape(const char *in, size_t len, char *buf) {
  const unsigned char *p = (const unsigned char *)in, *end = p + len;
  size_t o = 0;
  while (p < end) {
    if (*p != '\\') {
      buf[o++] = (char)*p++;
      continue;
    }
    if (p + 1 >= end) return -1;
    unsigned char e = p[1];
    p += 2;
    switch (e) {
    case '"': buf[o++] = '"'; break;
    case '\\': buf[o++] = '\\'; break;
    case '/': buf[o++] = '/'; break;
    case 'b': buf[o++] = '\b'; break;
    case 'f': buf[o++] = '\f'; break;
    case 'n': buf[o++] = '\n'; break;
    case 'r': buf[o++] = '\r'; break;
    case 't': buf[o++] = '\t'; break;
    case 'u': {
      unsigned cp, lo;
      if (hex4(p, end, &cp)) return -1;
      p += 4;
      if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
          !hex4(p + 2, end, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        p += 6;
      } else if (cp >= 0xD800 && cp <= 0xDFFF) {
        cp = 0xFFFD; /* a lone surrogate, as Go's decoder reads it */
      }
      o += utf8(buf + o, cp);
      break;
    }
    default: return -1;
    }
  }
  return (int64_t)o;
}
