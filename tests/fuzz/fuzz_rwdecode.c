/* Fuzz target: Remote-Write request decoding (snappy + protobuf), as a
 * receiver does it. The first byte picks the mode: 0, the rest is a
 * snappy-compressed request; 1, the rest is the protobuf, compressed here so
 * the fuzzer reaches the protobuf decoder directly. A request that decodes
 * and passes mw_rwenc_check is encoded again with mw_rwenc and must decode
 * to the same labels and samples (bit for bit). Every request is also put
 * through mw_rwenc_drop_old (sample_age_limit's re-encoding) at a cut-off
 * taken from the input: what it leaves must decode, keep every sample and
 * exemplar at or after the cut-off and none before, and add up (the decode
 * checks only for requests that protobuf-c itself packs back into something
 * it decodes: it keeps an unknown field numbered 0, invalid, and writes it
 * back unreadable; moonwatch's own requests have no unknown fields). */
#include <snappy-c.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/labels.h"
#include "remote.pb-c.h"
#include "remote/encode.h"

static int pb_eq(ProtobufCBinaryData a, ProtobufCBinaryData b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

static void roundtrip(const Prometheus__WriteRequest *req) {
  char err[256];
  mw_rwenc_t *e = mw_rwenc_new();
  if (!e) abort();
  uint8_t *enc = NULL;
  size_t kept = 0;
  for (size_t i = 0; i < req->n_timeseries; i++) {
    const Prometheus__TimeSeries *t = req->timeseries[i];
    size_t need = 0;
    for (size_t j = 0; j < t->n_labels; j++)
      need += t->labels[j]->name.len + t->labels[j]->value.len + 2;
    enc = realloc(enc, need + 1);
    size_t len = 0;
    int ok = 1;
    for (size_t j = 0; j < t->n_labels; j++) {
      ProtobufCBinaryData nv[2] = {t->labels[j]->name, t->labels[j]->value};
      for (int k = 0; k < 2; k++) {
        size_t l = nv[k].len;
        if (l && memchr(nv[k].data, 0xff, l)) ok = 0;
        if (l) memcpy(enc + len, nv[k].data, l);
        len += l;
        enc[len++] = 0xff;
      }
    }
    int64_t *ts = malloc((t->n_samples + 1) * sizeof *ts);
    double *v = malloc((t->n_samples + 1) * sizeof *v);
    for (size_t j = 0; j < t->n_samples; j++) {
      ts[j] = t->samples[j]->timestamp;
      v[j] = t->samples[j]->value;
    }
    if (ok) {
      if (mw_rwenc_add_series(e, enc, len, ts, v, t->n_samples, err, sizeof err) != 0) abort();
      kept++;
    }
    free(ts);
    free(v);
  }
  free(enc);
  const uint8_t *out;
  size_t out_len;
  if (mw_rwenc_finish(e, &out, &out_len, NULL, err, sizeof err) != 0) abort();
  Prometheus__WriteRequest *again;
  if (mw_rwenc_decode(out, out_len, &again, err, sizeof err) != 0) abort();
  if (again->n_timeseries != kept) abort();
  size_t k = 0;
  for (size_t i = 0; i < req->n_timeseries && k < kept; i++) {
    const Prometheus__TimeSeries *a = req->timeseries[i], *b = again->timeseries[k];
    if (a->n_labels != b->n_labels) continue; /* skipped series (0xFF in a value) */
    int same = 1;
    for (size_t j = 0; j < a->n_labels; j++)
      if (!pb_eq(a->labels[j]->name, b->labels[j]->name) ||
          !pb_eq(a->labels[j]->value, b->labels[j]->value))
        same = 0;
    if (!same) continue;
    if (a->n_samples != b->n_samples) abort();
    for (size_t j = 0; j < a->n_samples; j++) {
      double x = a->samples[j]->value, y = b->samples[j]->value;
      if (a->samples[j]->timestamp != b->samples[j]->timestamp) abort();
      /* proto3 does not send a zero value, so -0.0 comes back as 0 */
      if (memcmp(&x, &y, sizeof x) != 0 && !(x == 0 && y == 0)) abort();
    }
    k++;
  }
  mw_rwenc_decode_free(again);
  mw_rwenc_free(e);
}

static void drop_old(const uint8_t *buf, size_t len, const Prometheus__WriteRequest *req,
                     int64_t min_ts) {
  char err[256];
  size_t want_s = 0, want_x = 0, all_s = 0, all_x = 0;
  for (size_t i = 0; i < req->n_timeseries; i++) {
    const Prometheus__TimeSeries *t = req->timeseries[i];
    for (size_t j = 0; j < t->n_samples; j++)
      want_s += t->samples[j]->timestamp >= min_ts;
    for (size_t j = 0; j < t->n_exemplars; j++)
      want_x += t->exemplars[j]->timestamp >= min_ts;
    all_s += t->n_samples;
    all_x += t->n_exemplars;
  }
  mw_rwenc_t *e = mw_rwenc_new();
  if (!e) abort();
  const uint8_t *out;
  size_t out_len;
  mw_rwenc_kept_t k;
  if (mw_rwenc_drop_old(e, buf, len, min_ts, &out, &out_len, &k, err, sizeof err) != 0) abort();
  if (k.samples != want_s || k.exemplars != want_x || k.samples + k.samples_dropped != all_s ||
      k.exemplars + k.exemplars_dropped != all_x)
    abort();
  uint8_t *again = malloc(prometheus__write_request__get_packed_size(req) + 1);
  if (!again) abort();
  size_t again_len = prometheus__write_request__pack(req, again);
  Prometheus__WriteRequest *back = prometheus__write_request__unpack(NULL, again_len, again);
  free(again);
  if (!back) {
    mw_rwenc_free(e);
    return;
  }
  prometheus__write_request__free_unpacked(back, NULL);
  if (out_len) {
    Prometheus__WriteRequest *left;
    if (mw_rwenc_decode(out, out_len, &left, err, sizeof err) != 0) abort();
    size_t got = 0;
    for (size_t i = 0; i < left->n_timeseries; i++) {
      const Prometheus__TimeSeries *t = left->timeseries[i];
      if (!t->n_samples && !t->n_exemplars) abort();
      for (size_t j = 0; j < t->n_samples; j++, got++)
        if (t->samples[j]->timestamp < min_ts) abort();
      for (size_t j = 0; j < t->n_exemplars; j++)
        if (t->exemplars[j]->timestamp < min_ts) abort();
    }
    if (got != want_s || left->n_metadata != req->n_metadata) abort();
    mw_rwenc_decode_free(left);
  } else if (want_s || want_x || req->n_metadata) {
    abort();
  }
  mw_rwenc_free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  char err[256];
  uint8_t mode = data[0];
  data++;
  size--;
  char *packed = NULL;
  const uint8_t *in = data;
  size_t in_len = size;
  if (mode & 1) {
    size_t cap = snappy_max_compressed_length(size);
    packed = malloc(cap ? cap : 1);
    if (snappy_compress((const char *)data, size, packed, &cap) != SNAPPY_OK) abort();
    in = (const uint8_t *)packed;
    in_len = cap;
  }
  /* Exact-size copy so ASan sees any read past the end. */
  uint8_t *copy = malloc(in_len ? in_len : 1);
  memcpy(copy, in, in_len);
  Prometheus__WriteRequest *req;
  if (mw_rwenc_decode(copy, in_len, &req, err, sizeof err) == 0) {
    if (mw_rwenc_check(req, err, sizeof err) == 0) roundtrip(req);
    drop_old(copy, in_len, req, size ? (int64_t)(int8_t)data[size - 1] * 1000 : 0);
    mw_rwenc_decode_free(req);
  } else if (req) {
    abort();
  }
  free(copy);
  free(packed);
  return 0;
}
