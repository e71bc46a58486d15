/* loki/push.c: PushRequest encoding (by hand, straight from the entries: no per-entry
 * allocation), decoding (protobuf-c, push.proto), stream label strings. */
#include "loki/push.h"

#include <protobuf-c/protobuf-c.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/grow.h"
#include "base/labels.h"
#include "push.pb-c.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

/* --- small helpers ---------------------------------------------------- */

static int mw_put(char **buf, size_t *len, size_t *cap, const void *p, size_t n) {
  if (mw_grow((void **)buf, cap, *len + n, 1) != 0) return -1;
  memcpy(*buf + *len, p, n);
  *len += n;
  return 0;
}

static size_t mw_utf8_len(const uint8_t *p, size_t n) {
  /* length of a valid UTF-8 sequence at p, 0 if invalid */
  uint8_t c = p[0];
  size_t k;
  uint32_t r;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf)
    k = 2, r = c & 0x1f;
  else if (c >= 0xe0 && c <= 0xef)
    k = 3, r = c & 0x0f;
  else if (c >= 0xf0 && c <= 0xf4)
    k = 4, r = c & 0x07;
  else
    return 0;
  if (n < k) return 0;
  for (size_t i = 1; i < k; i++) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    r = r << 6 | (p[i] & 0x3f);
  }
  if ((k == 3 && (r < 0x800 || (r >= 0xd800 && r <= 0xdfff))) ||
      (k == 4 && (r < 0x10000 || r > 0x10ffff)))
    return 0;
  return k;
}

/* Appends v quoted as Go's strconv.Quote (for the characters that matter here). */
static int mw_quote(char **buf, size_t *len, size_t *cap, const uint8_t *v, size_t n) {
  if (mw_grow((void **)buf, cap, *len + n + 2, 1) != 0) return -1;
  (*buf)[(*len)++] = '"';
  for (size_t i = 0; i < n;) {
    uint8_t c = v[i];
    char esc[8];
    const char *s = NULL;
    size_t sl = 0, k = 1;
    switch (c) {
    case '"': s = "\\\"", sl = 2; break;
    case '\\': s = "\\\\", sl = 2; break;
    case '\n': s = "\\n", sl = 2; break;
    case '\t': s = "\\t", sl = 2; break;
    case '\r': s = "\\r", sl = 2; break;
    case '\a': s = "\\a", sl = 2; break;
    case '\b': s = "\\b", sl = 2; break;
    case '\f': s = "\\f", sl = 2; break;
    case '\v': s = "\\v", sl = 2; break;
    default:
      if (c < 0x20 || c == 0x7f || (c >= 0x80 && !(k = mw_utf8_len(v + i, n - i)))) {
        snprintf(esc, sizeof esc, "\\x%02x", c);
        s = esc, sl = 4, k = 1;
      }
    }
    if (s) {
      if (mw_put(buf, len, cap, s, sl) != 0) return -1;
    } else if (mw_put(buf, len, cap, v + i, k) != 0) {
      return -1;
    }
    i += k;
  }
  return mw_put(buf, len, cap, "\"", 1);
}

int mw_loki_labels_format(const uint8_t *enc, size_t n, char **buf, size_t *len, size_t *cap) {
  size_t pos = 0;
  mw_label_t l;
  int first = 1;
  if (mw_put(buf, len, cap, "{", 1) != 0) return -1;
  while (mw_labels_next(enc, n, &pos, &l) == 1) {
    if (!first && mw_put(buf, len, cap, ", ", 2) != 0) return -1;
    first = 0;
    if (mw_put(buf, len, cap, l.name, l.name_len) != 0 || mw_put(buf, len, cap, "=", 1) != 0 ||
        mw_quote(buf, len, cap, (const uint8_t *)l.value, l.value_len) != 0)
      return -1;
  }
  return mw_put(buf, len, cap, "}", 1);
}

/* --- label string parsing --------------------------------------------- */

typedef struct {
  const char *s;
  size_t n, i;
  char *err;
  size_t errlen;
} mw_lp_t;

static int mw_lp_fail(mw_lp_t *p, const char *what) {
  if (p->i >= p->n)
    mw_seterr(p->err, p->errlen,
              "parse error at line 1, col %zu: syntax error: unexpected end of input, %s", p->i + 1,
              what);
  else
    mw_seterr(p->err, p->errlen,
              "parse error at line 1, col %zu: syntax error: unexpected '%c', %s", p->i + 1,
              p->s[p->i] >= 0x20 && p->s[p->i] < 0x7f ? p->s[p->i] : '?', what);
  return -1;
}

static void mw_lp_ws(mw_lp_t *p) {
  while (p->i < p->n &&
         (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
    p->i++;
}

static int mw_hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int mw_put_rune(char **b, size_t *len, size_t *cap, uint32_t r) {
  char u[4];
  size_t k;
  if (r < 0x80)
    u[0] = (char)r, k = 1;
  else if (r < 0x800)
    u[0] = (char)(0xc0 | r >> 6), u[1] = (char)(0x80 | (r & 0x3f)), k = 2;
  else if (r < 0x10000)
    u[0] = (char)(0xe0 | r >> 12), u[1] = (char)(0x80 | ((r >> 6) & 0x3f)),
    u[2] = (char)(0x80 | (r & 0x3f)), k = 3;
  else
    u[0] = (char)(0xf0 | r >> 18), u[1] = (char)(0x80 | ((r >> 12) & 0x3f)),
    u[2] = (char)(0x80 | ((r >> 6) & 0x3f)), u[3] = (char)(0x80 | (r & 0x3f)), k = 4;
  return mw_put(b, len, cap, u, k);
}

/* A Go string literal at p->i, unquoted into *b. 0, -1 (err), -2 OOM. */
static int mw_lp_string(mw_lp_t *p, char **b, size_t *len, size_t *cap) {
  if (p->i >= p->n || (p->s[p->i] != '"' && p->s[p->i] != '`'))
    return mw_lp_fail(p, "expecting string");
  char q = p->s[p->i++];
  while (p->i < p->n && p->s[p->i] != q) {
    char c = p->s[p->i];
    if (q == '`' || c != '\\') {
      if (q == '"' && c == '\n') return mw_lp_fail(p, "newline in string");
      if (mw_put(b, len, cap, &c, 1) != 0) return -2;
      p->i++;
      continue;
    }
    if (++p->i >= p->n) break;
    c = p->s[p->i++];
    const char *simple = strchr("abfnrtv\\\"", c);
    if (simple && c) {
      static const char out[] = "\a\b\f\n\r\t\v\\\"";
      if (mw_put(b, len, cap, &out[simple - "abfnrtv\\\""], 1) != 0) return -2;
      continue;
    }
    int digits = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : (c >= '0' && c <= '7') ? 2 : 0;
    if (!digits) {
      p->i--;
      return mw_lp_fail(p, "invalid escape in string");
    }
    uint32_t r = c >= '0' && c <= '7' ? (uint32_t)(c - '0') : 0;
    for (int k = 0; k < digits; k++) {
      int h = p->i < p->n ? mw_hex(p->s[p->i]) : -1;
      if (h < 0 || (c >= '0' && c <= '7' && h > 7))
        return mw_lp_fail(p, "invalid escape in string");
      r = c >= '0' && c <= '7' ? r * 8 + (uint32_t)h : r * 16 + (uint32_t)h;
      p->i++;
    }
    if (c == 'x' || (c >= '0' && c <= '7')) {
      if (r > 255) return mw_lp_fail(p, "invalid escape in string");
      char byte = (char)r;
      if (mw_put(b, len, cap, &byte, 1) != 0) return -2;
    } else {
      if (r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff))
        return mw_lp_fail(p, "invalid escape in string");
      if (mw_put_rune(b, len, cap, r) != 0) return -2;
    }
  }
  if (p->i >= p->n) return mw_lp_fail(p, "unterminated string");
  p->i++;
  return 0;
}

typedef struct {
  size_t name, name_len, value, value_len;
} mw_lp_pair_t;

static int mw_lp_cmp(const void *a, const void *b, void *text) {
  const mw_lp_pair_t *x = a, *y = b;
  size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
  int c = memcmp((const char *)text + x->name, (const char *)text + y->name, n);
  if (c) return c;
  if (x->name_len != y->name_len) return x->name_len < y->name_len ? -1 : 1;
  return x->name < y->name ? -1 : x->name > y->name; /* stable */
}

int mw_loki_labels_parse(const char *s, size_t n, uint8_t **out, size_t *len, size_t *cap,
                         char *err, size_t errlen) {
  mw_lp_t p = {.s = s, .n = n, .err = err, .errlen = errlen};
  char *text = NULL; /* names and values, unquoted */
  size_t tl = 0, tc = 0, np = 0, pc = 0;
  mw_lp_pair_t *pairs = NULL;
  int rc = -1;
  mw_lp_ws(&p);
  if (p.i >= n || s[p.i] != '{') {
    mw_lp_fail(&p, "expecting '{'");
    goto out;
  }
  p.i++;
  mw_lp_ws(&p);
  while (p.i < n && s[p.i] != '}') {
    if (np) {
      if (s[p.i] != ',') {
        mw_lp_fail(&p, "expecting ',' or '}'");
        goto out;
      }
      p.i++;
      mw_lp_ws(&p);
    }
    size_t start = p.i;
    while (p.i < n &&
           (s[p.i] == '_' || (s[p.i] >= 'a' && s[p.i] <= 'z') || (s[p.i] >= 'A' && s[p.i] <= 'Z') ||
            (p.i > start && s[p.i] >= '0' && s[p.i] <= '9')))
      p.i++;
    if (p.i == start) {
      mw_lp_fail(&p, "expecting label name");
      goto out;
    }
    if (mw_grow((void **)&pairs, &pc, np + 1, sizeof *pairs) != 0) goto oom;
    pairs[np].name = tl;
    pairs[np].name_len = p.i - start;
    if (mw_put(&text, &tl, &tc, s + start, p.i - start) != 0) goto oom;
    mw_lp_ws(&p);
    if (p.i >= n || s[p.i] != '=' || (p.i + 1 < n && s[p.i + 1] == '~')) {
      mw_lp_fail(&p, "expecting '=' (stream labels are equality matchers)");
      goto out;
    }
    p.i++;
    mw_lp_ws(&p);
    pairs[np].value = tl;
    int r = mw_lp_string(&p, &text, &tl, &tc);
    if (r == -2) goto oom;
    if (r) goto out;
    pairs[np].value_len = tl - pairs[np].value;
    for (size_t k = pairs[np].value; k < tl; k++)
      if ((uint8_t)text[k] == MW_LABELS_SEP) {
        mw_seterr(err, errlen, "invalid UTF-8 in the value of label %.*s", (int)pairs[np].name_len,
                  text + pairs[np].name);
        goto out;
      }
    np++;
    mw_lp_ws(&p);
  }
  if (p.i >= n) {
    mw_lp_fail(&p, "expecting '}'");
    goto out;
  }
  p.i++;
  mw_lp_ws(&p);
  if (p.i < n) {
    mw_lp_fail(&p, "expecting end of input");
    goto out;
  }
  if (np) qsort_r(pairs, np, sizeof *pairs, mw_lp_cmp, text);
  for (size_t k = 0; k < np; k++) {
    uint8_t sep = MW_LABELS_SEP;
    if (mw_put((char **)out, len, cap, text + pairs[k].name, pairs[k].name_len) != 0 ||
        mw_put((char **)out, len, cap, &sep, 1) != 0 ||
        mw_put((char **)out, len, cap, text + pairs[k].value, pairs[k].value_len) != 0 ||
        mw_put((char **)out, len, cap, &sep, 1) != 0)
      goto oom;
  }
  rc = 0;
  goto out;
oom:
  mw_seterr(err, errlen, "out of memory");
  rc = -2;
out:
  free(text);
  free(pairs);
  return rc;
}

/* --- encoding ----------------------------------------------------------- */

typedef struct {
  uint8_t *labels; /* merged encoded labels (the key) */
  size_t labels_len;
  uint64_t hash;
  char *str; /* {a="b"} */
  size_t str_len, str_cap;
  uint8_t *buf; /* encoded entries: field 2 of StreamAdapter, each tagged */
  size_t len, cap;
} mw_lstream_t;

struct mw_lokienc {
  uint8_t *ext;
  size_t ext_len, ext_cap;
  uint32_t max_streams;
  mw_lstream_t *st;
  size_t nst, st_cap;
  uint32_t *slots; /* open addressing: stream index + 1, 0 empty */
  size_t nslots;
  uint8_t *merged;
  size_t merged_cap;
  uint8_t *pb, *out;
  size_t pb_cap, out_cap;
  size_t entries;
};

mw_lokienc_t *mw_lokienc_new(void) { return calloc(1, sizeof(mw_lokienc_t)); }

void mw_lokienc_free(mw_lokienc_t *e) {
  if (!e) return;
  for (size_t i = 0; i < e->st_cap; i++) {
    free(e->st[i].labels);
    free(e->st[i].str);
    free(e->st[i].buf);
  }
  free(e->st);
  free(e->slots);
  free(e->ext);
  free(e->merged);
  free(e->pb);
  free(e->out);
  free(e);
}

int mw_lokienc_reset(mw_lokienc_t *e, const uint8_t *ext, size_t extlen, uint32_t max_streams) {
  /* streams beyond 64 KiB of buffered entries give their memory back */
  for (size_t i = 0; i < e->nst; i++)
    if (e->st[i].cap > (64u << 10)) {
      free(e->st[i].buf);
      e->st[i].buf = NULL;
      e->st[i].cap = 0;
    }
  e->nst = 0;
  e->entries = 0;
  e->max_streams = max_streams;
  if (e->slots) memset(e->slots, 0, e->nslots * sizeof *e->slots);
  e->ext_len = 0;
  if (extlen) {
    if (mw_grow((void **)&e->ext, &e->ext_cap, extlen, 1) != 0) return -1;
    memcpy(e->ext, ext, extlen);
    e->ext_len = extlen;
  }
  return 0;
}

/* labels merged with the external labels (a stream's own label wins), into e->merged. */
static int mw_merge_ext(mw_lokienc_t *e, const uint8_t *l, size_t n, size_t *outlen) {
  if (mw_grow((void **)&e->merged, &e->merged_cap, n + e->ext_len + 1, 1) != 0) return -1;
  size_t pa = 0, pb = 0, o = 0;
  mw_label_t a, b;
  int ha = mw_labels_next(l, n, &pa, &a) == 1,
      hb = mw_labels_next(e->ext, e->ext_len, &pb, &b) == 1;
  while (ha || hb) {
    int c;
    if (!hb)
      c = -1;
    else if (!ha)
      c = 1;
    else {
      size_t m = a.name_len < b.name_len ? a.name_len : b.name_len;
      c = memcmp(a.name, b.name, m);
      if (!c) c = a.name_len < b.name_len ? -1 : a.name_len > b.name_len;
    }
    const mw_label_t *t = c <= 0 ? &a : &b;
    memcpy(e->merged + o, t->name, t->name_len);
    o += t->name_len;
    e->merged[o++] = MW_LABELS_SEP;
    memcpy(e->merged + o, t->value, t->value_len);
    o += t->value_len;
    e->merged[o++] = MW_LABELS_SEP;
    if (c <= 0) ha = mw_labels_next(l, n, &pa, &a) == 1;
    if (c >= 0) hb = mw_labels_next(e->ext, e->ext_len, &pb, &b) == 1;
  }
  *outlen = o;
  return 0;
}

static int mw_rehash(mw_lokienc_t *e) {
  size_t n = e->nslots ? e->nslots * 2 : 64;
  uint32_t *s = calloc(n, sizeof *s);
  if (!s) return -1;
  for (size_t i = 0; i < e->nst; i++) {
    size_t k = e->st[i].hash & (n - 1);
    while (s[k])
      k = (k + 1) & (n - 1);
    s[k] = (uint32_t)i + 1;
  }
  free(e->slots);
  e->slots = s;
  e->nslots = n;
  return 0;
}

int64_t mw_lokienc_stream(mw_lokienc_t *e, const uint8_t *labels, size_t len) {
  const uint8_t *key = labels;
  size_t klen = len;
  if (e->ext_len) {
    if (mw_merge_ext(e, labels, len, &klen) != 0) return -1;
    key = e->merged;
  }
  uint64_t h = XXH3_64bits(key, klen);
  if (e->nslots) {
    for (size_t k = h & (e->nslots - 1); e->slots[k]; k = (k + 1) & (e->nslots - 1)) {
      mw_lstream_t *s = &e->st[e->slots[k] - 1];
      if (s->hash == h && s->labels_len == klen && memcmp(s->labels, key, klen) == 0)
        return e->slots[k] - 1;
    }
  }
  if (e->max_streams && e->nst >= e->max_streams) return -2;
  if ((e->nst + 1) * 2 > e->nslots && mw_rehash(e) != 0) return -1;
  if (e->nst == e->st_cap) {
    size_t old = e->st_cap;
    if (mw_grow((void **)&e->st, &e->st_cap, e->nst + 1, sizeof *e->st) != 0) return -1;
    memset(e->st + old, 0, (e->st_cap - old) * sizeof *e->st);
  }
  mw_lstream_t *s = &e->st[e->nst];
  uint8_t *kl = realloc(s->labels, klen ? klen : 1);
  if (!kl) return -1;
  s->labels = kl;
  memcpy(s->labels, key, klen);
  s->labels_len = klen;
  s->hash = h;
  s->str_len = 0;
  s->len = 0;
  if (mw_loki_labels_format(key, klen, &s->str, &s->str_len, &s->str_cap) != 0) return -1;
  size_t k = h & (e->nslots - 1);
  while (e->slots[k])
    k = (k + 1) & (e->nslots - 1);
  e->slots[k] = (uint32_t)e->nst + 1;
  return (int64_t)e->nst++;
}

static size_t mw_vlen(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80)
    v >>= 7, n++;
  return n;
}

static uint8_t *mw_vput(uint8_t *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  return p;
}

/* tag + length + n bytes */
static size_t mw_field_len(size_t n) { return 1 + mw_vlen(n) + n; }

int mw_lokienc_entry(mw_lokienc_t *e, uint32_t si, int64_t ts_ns, const char *line, size_t len,
                     const uint8_t *meta, size_t mlen) {
  mw_lstream_t *s = &e->st[si];
  int64_t sec = ts_ns / 1000000000, nsec = ts_ns % 1000000000;
  if (nsec < 0) sec--, nsec += 1000000000;
  size_t tsl = (sec ? 1 + mw_vlen((uint64_t)sec) : 0) + (nsec ? 1 + mw_vlen((uint64_t)nsec) : 0);
  size_t body = mw_field_len(tsl) + (len ? mw_field_len(len) : 0);
  /* metadata pairs: name 0xFF value 0xFF, in order */
  size_t pos = 0;
  mw_label_t l;
  while (mw_labels_next(meta, mlen, &pos, &l) == 1)
    body += mw_field_len((l.name_len ? mw_field_len(l.name_len) : 0) +
                         (l.value_len ? mw_field_len(l.value_len) : 0));
  size_t need = mw_field_len(body);
  if (mw_grow((void **)&s->buf, &s->cap, s->len + need, 1) != 0) return -1;
  uint8_t *p = s->buf + s->len;
  *p++ = 0x12;
  p = mw_vput(p, body);
  *p++ = 0x0a;
  p = mw_vput(p, tsl);
  if (sec) *p++ = 0x08, p = mw_vput(p, (uint64_t)sec);
  if (nsec) *p++ = 0x10, p = mw_vput(p, (uint64_t)nsec);
  if (len) {
    *p++ = 0x12;
    p = mw_vput(p, len);
    memcpy(p, line, len);
    p += len;
  }
  pos = 0;
  while (mw_labels_next(meta, mlen, &pos, &l) == 1) {
    *p++ = 0x1a;
    p = mw_vput(p, (l.name_len ? mw_field_len(l.name_len) : 0) +
                       (l.value_len ? mw_field_len(l.value_len) : 0));
    if (l.name_len) {
      *p++ = 0x0a;
      p = mw_vput(p, l.name_len);
      memcpy(p, l.name, l.name_len);
      p += l.name_len;
    }
    if (l.value_len) {
      *p++ = 0x12;
      p = mw_vput(p, l.value_len);
      memcpy(p, l.value, l.value_len);
      p += l.value_len;
    }
  }
  s->len = (size_t)(p - s->buf);
  e->entries++;
  return 0;
}

size_t mw_lokienc_entries(const mw_lokienc_t *e) { return e->entries; }
size_t mw_lokienc_streams(const mw_lokienc_t *e) { return e->nst; }

int mw_lokienc_finish(mw_lokienc_t *e, int raw, const uint8_t **out, size_t *outlen, char *err,
                      size_t errlen) {
  size_t total = 0;
  for (size_t i = 0; i < e->nst; i++)
    total += mw_field_len(mw_field_len(e->st[i].str_len) + e->st[i].len);
  if (mw_grow((void **)&e->pb, &e->pb_cap, total + 1, 1) != 0) goto oom;
  uint8_t *p = e->pb;
  for (size_t i = 0; i < e->nst; i++) {
    mw_lstream_t *s = &e->st[i];
    *p++ = 0x0a;
    p = mw_vput(p, mw_field_len(s->str_len) + s->len);
    *p++ = 0x0a;
    p = mw_vput(p, s->str_len);
    memcpy(p, s->str, s->str_len);
    p += s->str_len;
    if (s->len) memcpy(p, s->buf, s->len);
    p += s->len;
  }
  if (raw) {
    *out = e->pb;
    *outlen = total;
    return 0;
  }
  size_t clen = snappy_max_compressed_length(total);
  if (mw_grow((void **)&e->out, &e->out_cap, clen, 1) != 0) goto oom;
  if (snappy_compress((const char *)e->pb, total, (char *)e->out, &clen) != SNAPPY_OK) {
    mw_seterr(err, errlen, "snappy compression failed");
    return -1;
  }
  *out = e->out;
  *outlen = clen;
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

/* --- JSON (debugging) -------------------------------------------------- */

/* Appends s as a JSON string, as Go's encoding/json (HTML escaping aside). */
static int mw_json_str(char **b, size_t *len, size_t *cap, const uint8_t *s, size_t n) {
  if (mw_put(b, len, cap, "\"", 1) != 0) return -1;
  for (size_t i = 0; i < n;) {
    uint8_t c = s[i];
    char esc[8];
    size_t k = 1;
    const char *out = NULL;
    size_t ol = 0;
    if (c == '"')
      out = "\\\"", ol = 2;
    else if (c == '\\')
      out = "\\\\", ol = 2;
    else if (c == '\n')
      out = "\\n", ol = 2;
    else if (c == '\r')
      out = "\\r", ol = 2;
    else if (c == '\t')
      out = "\\t", ol = 2;
    else if (c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      out = esc, ol = 6;
    } else if (c >= 0x80 && !(k = mw_utf8_len(s + i, n - i))) {
      out = "\\ufffd", ol = 6, k = 1;
    }
    if (out ? mw_put(b, len, cap, out, ol) : mw_put(b, len, cap, s + i, k)) return -1;
    i += k;
  }
  return mw_put(b, len, cap, "\"", 1);
}

/* Appends {"name":"value",...} of name 0xFF value 0xFF pairs. */
static int mw_json_pairs(char **b, size_t *len, size_t *cap, const uint8_t *enc, size_t n) {
  size_t pos = 0;
  mw_label_t l;
  int first = 1;
  if (mw_put(b, len, cap, "{", 1) != 0) return -1;
  while (mw_labels_next(enc, n, &pos, &l) == 1) {
    if ((!first && mw_put(b, len, cap, ",", 1) != 0) ||
        mw_json_str(b, len, cap, (const uint8_t *)l.name, l.name_len) != 0 ||
        mw_put(b, len, cap, ":", 1) != 0 ||
        mw_json_str(b, len, cap, (const uint8_t *)l.value, l.value_len) != 0)
      return -1;
    first = 0;
  }
  return mw_put(b, len, cap, "}", 1);
}

int mw_lokienc_json(mw_lokienc_t *e, const uint8_t *pb, size_t len, const uint8_t **out,
                    size_t *outlen, char *err, size_t errlen) {
  mw_lokidec_t *d;
  if (mw_lokidec_new(pb, len, 0, &d, err, errlen) != 0) return -1;
  char *b = (char *)e->out;
  size_t n = 0, cap = e->out_cap;
  uint8_t *lab = NULL;
  size_t ll = 0, lc = 0;
  int rc = -1;
  if (mw_put(&b, &n, &cap, "{\"streams\":[", 12) != 0) goto oom;
  for (size_t i = 0; i < mw_lokidec_streams(d); i++) {
    const char *ls;
    size_t lsl, ne;
    mw_lokidec_stream(d, i, &ls, &lsl, &ne);
    ll = 0;
    if (mw_loki_labels_parse(ls, lsl, &lab, &ll, &lc, err, errlen) != 0) goto out;
    if ((i && mw_put(&b, &n, &cap, ",", 1) != 0) || mw_put(&b, &n, &cap, "{\"stream\":", 10) != 0 ||
        mw_json_pairs(&b, &n, &cap, lab, ll) != 0 || mw_put(&b, &n, &cap, ",\"values\":[", 11) != 0)
      goto oom;
    for (size_t j = 0; j < ne; j++) {
      int64_t ts;
      const char *line;
      size_t lnl, ml;
      const uint8_t *meta;
      char tsb[32];
      if (mw_lokidec_entry(d, i, j, &ts, &line, &lnl, &meta, &ml) != 0) goto oom;
      int tl = snprintf(tsb, sizeof tsb, "%s[\"%lld\",", j ? "," : "", (long long)ts);
      if (mw_put(&b, &n, &cap, tsb, (size_t)tl) != 0 ||
          mw_json_str(&b, &n, &cap, (const uint8_t *)line, lnl) != 0 ||
          (ml &&
           (mw_put(&b, &n, &cap, ",", 1) != 0 || mw_json_pairs(&b, &n, &cap, meta, ml) != 0)) ||
          mw_put(&b, &n, &cap, "]", 1) != 0)
        goto oom;
    }
    if (mw_put(&b, &n, &cap, "]}", 2) != 0) goto oom;
  }
  if (mw_put(&b, &n, &cap, "]}", 2) != 0) goto oom;
  *out = (const uint8_t *)b;
  *outlen = n;
  rc = 0;
  goto out;
oom:
  mw_seterr(err, errlen, "out of memory");
out:
  e->out = (uint8_t *)b;
  e->out_cap = cap;
  free(lab);
  mw_lokidec_free(d);
  return rc;
}

/* --- decoding ----------------------------------------------------------- */

struct mw_lokidec {
  Logproto__PushRequest *req;
  uint8_t *meta;
  size_t meta_cap;
};

/* A push body decoded: at most this many bytes once uncompressed (Loki's default
 * distributor limit is far lower; this bounds the receiver's memory). */
#define MW_LOKIDEC_MAX (256u << 20)

int mw_lokidec_new(const uint8_t *body, size_t len, int compressed, mw_lokidec_t **out, char *err,
                   size_t errlen) {
  *out = NULL;
  char *raw = NULL;
  const uint8_t *pb = body;
  size_t pblen = len;
  if (compressed) {
    size_t ulen;
    if (snappy_uncompressed_length((const char *)body, len, &ulen) != SNAPPY_OK) {
      mw_seterr(err, errlen, "snappy: corrupt input");
      return -1;
    }
    if (ulen > MW_LOKIDEC_MAX) {
      mw_seterr(err, errlen, "snappy: decoded body of %zu bytes is too large", ulen);
      return -1;
    }
    raw = malloc(ulen ? ulen : 1);
    if (!raw) goto oom;
    size_t got = ulen;
    if (snappy_uncompress((const char *)body, len, raw, &got) != SNAPPY_OK || got != ulen) {
      free(raw);
      mw_seterr(err, errlen, "snappy: corrupt input");
      return -1;
    }
    pb = (const uint8_t *)raw;
    pblen = ulen;
  }
  mw_lokidec_t *d = calloc(1, sizeof *d);
  if (!d) goto oom;
  d->req = logproto__push_request__unpack(NULL, pblen, pb);
  free(raw);
  if (!d->req) {
    free(d);
    mw_seterr(err, errlen, "proto: invalid PushRequest");
    return -1;
  }
  *out = d;
  return 0;
oom:
  free(raw);
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

void mw_lokidec_free(mw_lokidec_t *d) {
  if (!d) return;
  logproto__push_request__free_unpacked(d->req, NULL);
  free(d->meta);
  free(d);
}

size_t mw_lokidec_streams(const mw_lokidec_t *d) { return d->req->n_streams; }

int mw_lokidec_stream(const mw_lokidec_t *d, size_t i, const char **labels, size_t *labels_len,
                      size_t *entries) {
  if (i >= d->req->n_streams) return -1;
  const Logproto__StreamAdapter *s = d->req->streams[i];
  *labels = (const char *)s->labels.data;
  *labels_len = s->labels.len;
  *entries = s->n_entries;
  return 0;
}

int mw_lokidec_entry(mw_lokidec_t *d, size_t i, size_t j, int64_t *ts_ns, const char **line,
                     size_t *line_len, const uint8_t **meta, size_t *meta_len) {
  if (i >= d->req->n_streams || j >= d->req->streams[i]->n_entries) return -1;
  const Logproto__EntryAdapter *e = d->req->streams[i]->entries[j];
  int64_t sec = e->timestamp ? e->timestamp->seconds : 0;
  int32_t nsec = e->timestamp ? e->timestamp->nanos : 0;
  /* saturate what does not fit int64 nanoseconds (Loki refuses it as too old / too new) */
  if (sec > INT64_MAX / 1000000000 - 3)
    *ts_ns = INT64_MAX;
  else if (sec < INT64_MIN / 1000000000 + 3)
    *ts_ns = INT64_MIN;
  else
    *ts_ns = sec * 1000000000 + nsec;
  *line = (const char *)e->line.data;
  *line_len = e->line.len;
  size_t n = 0;
  for (size_t k = 0; k < e->n_structuredmetadata; k++) {
    const Logproto__LabelPairAdapter *l = e->structuredmetadata[k];
    size_t a = strlen(l->name), b = strlen(l->value);
    if (mw_grow((void **)&d->meta, &d->meta_cap, n + a + b + 2, 1) != 0) return -1;
    memcpy(d->meta + n, l->name, a);
    n += a;
    d->meta[n++] = MW_LABELS_SEP;
    memcpy(d->meta + n, l->value, b);
    n += b;
    d->meta[n++] = MW_LABELS_SEP;
  }
  *meta = d->meta;
  *meta_len = n;
  return 0;
}

/* --- FFI -------------------------------------------------------------- */

int mw_ffi_lokidec_new(const uint8_t *body, size_t len, int compressed, mw_lokidec_t **out,
                       char *err, size_t errlen) {
  return mw_lokidec_new(body, len, compressed, out, err, errlen);
}
void mw_ffi_lokidec_free(mw_lokidec_t *d) { mw_lokidec_free(d); }
size_t mw_ffi_lokidec_streams(const mw_lokidec_t *d) { return mw_lokidec_streams(d); }
int mw_ffi_lokidec_stream(const mw_lokidec_t *d, size_t i, const char **labels, size_t *labels_len,
                          size_t *entries) {
  return mw_lokidec_stream(d, i, labels, labels_len, entries);
}
int mw_ffi_lokidec_entry(mw_lokidec_t *d, size_t i, size_t j, int64_t *ts_ns, const char **line,
                         size_t *line_len, const uint8_t **meta, size_t *meta_len) {
  return mw_lokidec_entry(d, i, j, ts_ns, line, line_len, meta, meta_len);
}
int mw_ffi_loki_labels_parse(const char *s, size_t n, uint8_t **out, size_t *len, char *err,
                             size_t errlen) {
  size_t cap = 0;
  *out = NULL;
  *len = 0;
  int rc = mw_loki_labels_parse(s, n, out, len, &cap, err, errlen);
  if (rc != 0) {
    free(*out);
    *out = NULL;
  }
  return rc;
}
int mw_ffi_loki_labels_format(const uint8_t *enc, size_t n, char **out, size_t *len) {
  size_t cap = 0;
  *out = NULL;
  *len = 0;
  if (mw_loki_labels_format(enc, n, out, len, &cap) != 0) {
    free(*out);
    *out = NULL;
    return -1;
  }
  return 0;
}
void mw_ffi_loki_free(void *p) { free(p); }

int mw_ffi_loki_snappy(const uint8_t *in, size_t n, char **out, size_t *out_len) {
  size_t cap = snappy_max_compressed_length(n);
  *out = malloc(cap ? cap : 1);
  if (!*out) return -1;
  *out_len = cap;
  if (snappy_compress((const char *)in, n, *out, out_len) != SNAPPY_OK) {
    free(*out);
    *out = NULL;
    return -1;
  }
  return 0;
}
