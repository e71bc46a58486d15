/* Fuzz target: Loki push decoding as the suite's receiver does it (snappy + push.proto via
 * protobuf-c, then each stream's label string parsed as Loki parses it). The first byte picks
 * the mode: 0, the rest is a snappy-compressed PushRequest; 1, the rest is the protobuf
 * (compressed here, so the fuzzer reaches the decoder directly); 2, the rest is a label
 * string. Every stream whose labels parse (unique names) is encoded again with loki.write's
 * encoder (loki/push.c) and must decode to the same label string, timestamps, lines and
 * metadata, and be written as a JSON body; a parsed label set must format back to a string that
 * parses to the same set. */
#include <snappy-c.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/labels.h"
#include "loki/push.h"

static void check_labels(const char *s, size_t n) {
  uint8_t *enc = NULL, *again = NULL;
  size_t len = 0, cap = 0, alen = 0, acap = 0, flen = 0, fcap = 0;
  char *fmt = NULL, err[256];
  if (mw_loki_labels_parse(s, n, &enc, &len, &cap, err, sizeof err) != 0) goto out;
  if (mw_loki_labels_format(enc, len, &fmt, &flen, &fcap) != 0) abort();
  if (mw_loki_labels_parse(fmt, flen, &again, &alen, &acap, err, sizeof err) != 0) abort();
  if (alen != len || (len && memcmp(enc, again, len) != 0)) abort();
out:
  free(enc);
  free(again);
  free(fmt);
}

static int unique(const uint8_t *enc, size_t len) {
  size_t pos = 0;
  mw_label_t l, prev = {0};
  int first = 1;
  while (mw_labels_next(enc, len, &pos, &l) == 1) {
    if (!first && l.name_len == prev.name_len && memcmp(l.name, prev.name, l.name_len) == 0)
      return 0;
    if (!mw_labels_valid_utf8(l.value, l.value_len)) return 0;
    prev = l;
    first = 0;
  }
  return 1;
}

/* Metadata pairs as the decoder gives them, representable as name 0xFF value 0xFF pairs (a
 * name or value holding 0xFF, invalid UTF-8, is not: loki.write never has one to send). */
static int meta_ok(const uint8_t *m, size_t ml) {
  size_t ff = 0, pairs = 0, pos = 0;
  mw_label_t l;
  for (size_t k = 0; k < ml; k++)
    ff += m[k] == 0xff;
  while (mw_labels_next(m, ml, &pos, &l) == 1)
    pairs++;
  return ff == 2 * pairs && pos == ml;
}

static int stream_ok(mw_lokidec_t *d, size_t i, size_t ne) {
  for (size_t j = 0; j < ne; j++) {
    int64_t ts;
    const char *line;
    size_t len, ml;
    const uint8_t *meta;
    if (mw_lokidec_entry(d, i, j, &ts, &line, &len, &meta, &ml) != 0) abort();
    if (!meta_ok(meta, ml)) return 0;
  }
  return 1;
}

static void roundtrip(mw_lokidec_t *d) {
  char err[256];
  mw_lokienc_t *e = mw_lokienc_new();
  if (!e || mw_lokienc_reset(e, NULL, 0, 0) != 0) abort();
  size_t ns = mw_lokidec_streams(d);
  uint8_t **encs = calloc(ns + 1, sizeof *encs);
  size_t *lens = calloc(ns + 1, sizeof *lens);
  int64_t *ids = calloc(ns + 1, sizeof *ids);
  for (size_t i = 0; i < ns; i++) {
    const char *l;
    size_t ll, ne, cap = 0;
    ids[i] = -1;
    mw_lokidec_stream(d, i, &l, &ll, &ne);
    check_labels(l, ll);
    if (mw_loki_labels_parse(l, ll, &encs[i], &lens[i], &cap, err, sizeof err) != 0 ||
        !unique(encs[i], lens[i]) || !lens[i] || !stream_ok(d, i, ne))
      continue;
    ids[i] = mw_lokienc_stream(e, encs[i], lens[i]);
    if (ids[i] < 0) abort();
    for (size_t j = 0; j < ne; j++) {
      int64_t ts;
      const char *line;
      size_t len, ml;
      const uint8_t *meta;
      if (mw_lokidec_entry(d, i, j, &ts, &line, &len, &meta, &ml) != 0) abort();
      if (mw_lokienc_entry(e, (uint32_t)ids[i], ts, line, len, meta, ml) != 0) abort();
    }
  }
  const uint8_t *body;
  size_t blen;
  if (mw_lokienc_finish(e, 0, &body, &blen, err, sizeof err) != 0) abort();
  mw_lokidec_t *d2;
  if (mw_lokidec_new(body, blen, 1, &d2, err, sizeof err) != 0) abort();
  /* every entry of a kept stream, in order, in the stream of its labels */
  size_t *next = calloc(mw_lokidec_streams(d2) + 1, sizeof *next);
  for (size_t i = 0; i < ns; i++) {
    if (ids[i] < 0) continue;
    size_t s = (size_t)ids[i];
    const char *l1, *l2;
    size_t n1, n2, ne, ne2;
    mw_lokidec_stream(d, i, &l1, &n1, &ne);
    if (mw_lokidec_stream(d2, s, &l2, &n2, &ne2) != 0) abort();
    for (size_t j = 0; j < ne; j++) {
      int64_t t1, t2;
      const char *a, *b;
      size_t al, bl, m1l, m2l;
      const uint8_t *m1, *m2;
      mw_lokidec_entry(d, i, j, &t1, &a, &al, &m1, &m1l);
      uint8_t *m1c = malloc(m1l + 1);
      if (m1l) memcpy(m1c, m1, m1l);
      if (mw_lokidec_entry(d2, s, next[s]++, &t2, &b, &bl, &m2, &m2l) != 0) abort();
      /* timestamps saturated or beyond int64 ns are not compared */
      if (t1 != INT64_MAX && t1 != INT64_MIN && t1 != t2) abort();
      if (al != bl || (al && memcmp(a, b, al) != 0)) abort();
      if (m1l != m2l || (m1l && memcmp(m1c, m2, m1l) != 0)) abort();
      free(m1c);
    }
  }
  free(next);
  mw_lokidec_free(d2);
  /* the JSON body of the same request (encoding = "json") */
  const uint8_t *raw, *json;
  size_t rl, jl;
  if (mw_lokienc_finish(e, 1, &raw, &rl, err, sizeof err) != 0) abort();
  if (mw_lokienc_json(e, raw, rl, &json, &jl, err, sizeof err) != 0) abort();
  if (jl < 14 || memcmp(json, "{\"streams\":[", 12) != 0) abort();
  for (size_t i = 0; i < ns; i++)
    free(encs[i]);
  free(encs);
  free(lens);
  free(ids);
  mw_lokienc_free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  char err[256];
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  if (data[0] == 2) {
    check_labels((const char *)p, n);
    return 0;
  }
  uint8_t *comp = NULL;
  if (data[0] == 1) {
    size_t clen = snappy_max_compressed_length(n);
    comp = malloc(clen + 1);
    if (snappy_compress((const char *)p, n, (char *)comp, &clen) != SNAPPY_OK) abort();
    p = comp;
    n = clen;
  }
  mw_lokidec_t *d;
  if (mw_lokidec_new(p, n, 1, &d, err, sizeof err) == 0) {
    roundtrip(d);
    mw_lokidec_free(d);
  }
  free(comp);
  return 0;
}
