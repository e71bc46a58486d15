/* base/labels.c: label-set validation, canonical order, encoding and hashing. */
#include "base/labels.h"

#include "base/err.h"
#include "base/grow.h"

#include <stdio.h>
#include <string.h>
/* Inlined: label sets are short, the call and dispatch would dominate. */
#define XXH_INLINE_ALL
#include <xxhash.h>

static const char *const mw_name_label = "__name__";

int mw_labels_valid_name(const char *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
             (i > 0 && c >= '0' && c <= '9');
    if (!ok) return 0;
  }
  return 1;
}

int mw_labels_valid_metric_name(const char *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
             (i > 0 && c >= '0' && c <= '9');
    if (!ok) return 0;
  }
  return 1;
}

int mw_labels_valid_utf8(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f; /* <= U+10FFFF */
    } else {
      return 0;
    }
    if (n - i - 1 < need) return 0;
    if (s[i + 1] < lo || s[i + 1] > hi) return 0;
    for (size_t k = 2; k <= need; k++)
      if (s[i + k] < 0x80 || s[i + k] > 0xbf) return 0;
    i += need + 1;
  }
  return 1;
}

int mw_labels_valid_utf8_name(const char *s, size_t n) {
  return n > 0 && mw_labels_valid_utf8(s, n);
}

static inline int mw_label_cmp(const mw_label_t *a, const mw_label_t *b) {
  /* Names are short and usually differ early: compare bytes inline. */
  uint32_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
  const unsigned char *x = (const unsigned char *)a->name, *y = (const unsigned char *)b->name;
  for (uint32_t i = 0; i < n; i++)
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  return a->name_len < b->name_len ? -1 : a->name_len > b->name_len ? 1 : 0;
}

/* Insertion sort (label sets are small, typically < 16), stable. Returns 1
 * if two names are equal: every pair that ends up adjacent was compared
 * (the later one inserted stops at, or passes, the earlier one), so equal
 * names always meet in a comparison that returns 0. */
static int mw_labels_sort_dup(mw_label_t *ls, size_t n) {
  int dup = 0;
  for (size_t i = 1; i < n; i++) {
    int c = mw_label_cmp(&ls[i - 1], &ls[i]);
    if (c <= 0) { /* in place: the common case */
      dup |= c == 0;
      continue;
    }
    mw_label_t t = ls[i];
    size_t j = i - 1;
    ls[i] = ls[j];
    while (j > 0 && (c = mw_label_cmp(&ls[j - 1], &t)) > 0) {
      ls[j] = ls[j - 1];
      j--;
    }
    dup |= j > 0 && c == 0;
    ls[j] = t;
  }
  return dup;
}

void mw_labels_sort(mw_label_t *ls, size_t n) { (void)mw_labels_sort_dup(ls, n); }

int mw_labels_normalize(mw_label_t *ls, size_t *n, char *err, size_t errlen) {
  size_t out = 0;
  if (mw_labels_sort_dup(ls, *n)) {
    for (size_t i = 1; i < *n; i++) {
      if (mw_label_cmp(&ls[i - 1], &ls[i]) == 0) {
        mw_seterr(err, errlen, "label name \"%.*s\" is not unique", (int)ls[i].name_len,
                  ls[i].name);
        return -1;
      }
    }
  }
  for (size_t i = 0; i < *n; i++)
    if (ls[i].value_len > 0) ls[out++] = ls[i];
  *n = out;
  return 0;
}

size_t mw_labels_encoded_size(const mw_label_t *ls, size_t n) {
  size_t sz = 0;
  for (size_t i = 0; i < n; i++)
    sz += (size_t)ls[i].name_len + ls[i].value_len + 2;
  return sz;
}

int mw_labels_from_pairs(const char *pairs, size_t len, mw_label_t **ls, size_t *ls_cap,
                         uint8_t **enc, size_t *enc_cap, size_t *enc_len, char *err,
                         size_t errlen) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    n += (unsigned char)pairs[i] == MW_LABELS_SEP;
  if (n % 2) {
    mw_seterr(err, errlen, "malformed label pairs");
    return -1;
  }
  n /= 2;
  if (mw_grow((void **)ls, ls_cap, n ? n : 1, sizeof **ls)) goto oom;
  const char *p = pairs, *end = pairs + len;
  for (size_t k = 0; k < n; k++) {
    const char *s1 = memchr(p, MW_LABELS_SEP, (size_t)(end - p));
    const char *s2 = memchr(s1 + 1, MW_LABELS_SEP, (size_t)(end - s1 - 1));
    (*ls)[k] = (mw_label_t){.name = p,
                            .name_len = (uint32_t)(s1 - p),
                            .value = s1 + 1,
                            .value_len = (uint32_t)(s2 - s1 - 1)};
    p = s2 + 1;
  }
  if (mw_labels_normalize(*ls, &n, err, errlen)) return -1;
  size_t need = mw_labels_encoded_size(*ls, n);
  if (mw_grow((void **)enc, enc_cap, need ? need : 1, 1)) goto oom;
  *enc_len = 0;
  if (n && mw_labels_encode(*ls, n, *enc, *enc_cap, enc_len, err, errlen)) return -1;
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

int mw_labels_encode(const mw_label_t *ls, size_t n, uint8_t *out, size_t cap, size_t *len,
                     char *err, size_t errlen) {
  size_t pos = 0;
  for (size_t i = 0; i < n; i++) {
    const mw_label_t *l = &ls[i];
    if (i > 0 && mw_label_cmp(&ls[i - 1], l) >= 0) {
      mw_seterr(err, errlen, "labels not sorted or not unique at \"%.*s\"", (int)l->name_len,
                l->name);
      return -1;
    }
    int is_name = l->name_len == 8 && memcmp(l->name, mw_name_label, 8) == 0;
    if (!mw_labels_valid_utf8_name(l->name, l->name_len)) {
      mw_seterr(err, errlen, "invalid label name \"%.*s\"", (int)l->name_len, l->name);
      return -1;
    }
    if (is_name && !mw_labels_valid_utf8_name(l->value, l->value_len)) {
      mw_seterr(err, errlen, "invalid metric name \"%.*s\"", (int)l->value_len, l->value);
      return -1;
    }
    if (l->value_len && memchr(l->value, MW_LABELS_SEP, l->value_len)) {
      mw_seterr(err, errlen, "label value of \"%.*s\" contains byte 0xff", (int)l->name_len,
                l->name);
      return -1;
    }
    size_t need = (size_t)l->name_len + l->value_len + 2;
    if (cap - pos < need) {
      mw_seterr(err, errlen, "label encoding buffer too small");
      return -1;
    }
    memcpy(out + pos, l->name, l->name_len);
    pos += l->name_len;
    out[pos++] = MW_LABELS_SEP;
    if (l->value_len) memcpy(out + pos, l->value, l->value_len);
    pos += l->value_len;
    out[pos++] = MW_LABELS_SEP;
  }
  *len = pos;
  return 0;
}

/* The offset of the first separator in p[0..n), or n. Eight bytes at a time:
 * names and values are short, where a memchr call costs more than the scan.
 * (x - 0x01..) & ~x & 0x80.. marks the lowest zero byte of x exactly (a
 * borrow can only mark bytes above it), and ~w has a zero byte where w has
 * a separator. */
static inline size_t mw_labels_sep(const uint8_t *p, size_t n) {
  size_t i = 0;
  for (; n - i >= 8; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, sizeof w);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w); /* p[i] in the low byte */
#endif
    uint64_t x = ~w, z = (x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL;
    if (z) return i + ((size_t)__builtin_ctzll(z) >> 3);
  }
  for (; i < n; i++)
    if (p[i] == MW_LABELS_SEP) return i;
  return n;
}

int mw_labels_next(const uint8_t *enc, size_t len, size_t *pos, mw_label_t *out) {
  size_t p = *pos;
  if (p >= len) return 0;
  size_t a = p + mw_labels_sep(enc + p, len - p);
  if (a == len) return -1;
  size_t vstart = a + 1, b = vstart + mw_labels_sep(enc + vstart, len - vstart);
  if (b == len) return -1;
  out->name = (const char *)enc + p;
  out->name_len = (uint32_t)(a - p);
  out->value = (const char *)enc + vstart;
  out->value_len = (uint32_t)(b - vstart);
  *pos = b + 1;
  return 1;
}

int mw_labels_get(const uint8_t *enc, size_t len, const char *name, size_t name_len,
                  mw_label_t *out) {
  size_t pos = 0;
  mw_label_t l;
  while (mw_labels_next(enc, len, &pos, &l) == 1) {
    if (l.name_len == name_len && memcmp(l.name, name, name_len) == 0) {
      *out = l;
      return 1;
    }
  }
  return 0;
}

uint64_t mw_labels_hash(const uint8_t *enc, size_t len) { return XXH3_64bits(enc, len); }
