/* test_rwenc.c: the Remote-Write 1.0 encoder and decoder, and CRC-32C. */
#include <float.h>
#include <snappy-c.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/crc32c.h"
#include "model/batch.h"
#include "remote.pb-c.h"
#include "remote/encode.h"
#include "rwref.h"
#include "test.h"

#define L(s) (const uint8_t *)(s), sizeof(s) - 1

static uint64_t bits(double v) {
  uint64_t b;
  memcpy(&b, &v, sizeof b);
  return b;
}

static double from_bits(uint64_t b) {
  double v;
  memcpy(&v, &b, sizeof v);
  return v;
}

static void test_crc32c(void) {
  CHECK_INT(mw_crc32c(0, "123456789", 9), 0xE3069283u);
  CHECK_INT(mw_crc32c(0, "", 0), 0);
  /* Incremental == one shot, at every split and alignment. */
  char buf[100];
  for (int i = 0; i < 100; i++)
    buf[i] = (char)(i * 7 + 3);
  uint32_t whole = mw_crc32c(0, buf, sizeof buf);
  for (size_t k = 0; k <= sizeof buf; k++)
    CHECK_INT(mw_crc32c(mw_crc32c(0, buf, k), buf + k, sizeof buf - k), whole);
  /* 32 zero bytes: the RFC 3720 test vector. */
  char z[32] = {0};
  CHECK_INT(mw_crc32c(0, z, sizeof z), 0x8A9136AAu);
}

static void test_roundtrip(void) {
  char err[256];
  mw_rwenc_t *e = mw_rwenc_new();
  CHECK(e);
  CHECK_INT(mw_rwenc_set_external_labels(e,
                                         L("cluster\xff"
                                           "eu\xffjob\xff"
                                           "ext\xff"),
                                         err, sizeof err),
            0);
  int64_t ts1[] = {1000, 2000, 3000};
  /* (-0.0 would come back as 0: proto3 omits zero values, as Prometheus's Go code does) */
  double v1[] = {1.5, from_bits(MW_NORMAL_NAN_BITS), from_bits(MW_STALE_NAN_BITS)};
  CHECK_INT(
      mw_rwenc_add_series(e, L("__name__\xffup\xffjob\xffnode\xff"), ts1, v1, 3, err, sizeof err),
      0);
  /* Out of order on input: sent sorted (stably). */
  int64_t ts2[] = {30, 10, 20, 10};
  double v2[] = {3, 1, 2, 1.25};
  CHECK_INT(mw_rwenc_add_series(e, L("__name__\xffzz\xff"), ts2, v2, 4, err, sizeof err), 0);
  CHECK_INT(mw_rwenc_add_metadata(e, 1, "up", 2, "help me", 7, "seconds", 7, err, sizeof err), 0);
  CHECK_INT(mw_rwenc_series(e), 2);
  CHECK_INT(mw_rwenc_samples(e), 7);
  const uint8_t *out;
  size_t len, raw;
  CHECK_INT(mw_rwenc_finish(e, &out, &len, &raw, err, sizeof err), 0);
  CHECK(len > 0 && raw > 0);
  Prometheus__WriteRequest *req;
  CHECK_INT(mw_rwenc_decode(out, len, &req, err, sizeof err), 0);
  CHECK_INT(mw_rwenc_check(req, err, sizeof err), 0);
  CHECK_INT(req->n_timeseries, 2);
  Prometheus__TimeSeries *t = req->timeseries[0];
  CHECK_INT(t->n_labels, 3);
  CHECK_BYTES(t->labels[0]->name, "__name__");
  CHECK_BYTES(t->labels[0]->value, "up");
  CHECK_BYTES(t->labels[1]->name, "cluster");
  CHECK_BYTES(t->labels[1]->value, "eu");
  CHECK_BYTES(t->labels[2]->name, "job");
  CHECK_BYTES(t->labels[2]->value, "node"); /* the series' own value wins */
  CHECK_INT(t->n_samples, 3);
  for (int i = 0; i < 3; i++) {
    CHECK_INT(t->samples[i]->timestamp, ts1[i]);
    CHECK(bits(t->samples[i]->value) == bits(v1[i]));
  }
  t = req->timeseries[1];
  CHECK_INT(t->n_labels, 3);
  CHECK_BYTES(t->labels[0]->value, "zz");
  CHECK_BYTES(t->labels[1]->name, "cluster");
  CHECK_BYTES(t->labels[2]->name, "job");
  CHECK_BYTES(t->labels[2]->value, "ext");
  CHECK_INT(t->n_samples, 4);
  int64_t want_ts[] = {10, 10, 20, 30};
  double want_v[] = {1, 1.25, 2, 3};
  for (int i = 0; i < 4; i++) {
    CHECK_INT(t->samples[i]->timestamp, want_ts[i]);
    CHECK_DBL(t->samples[i]->value, want_v[i]);
  }
  CHECK_INT(req->n_metadata, 1);
  CHECK_INT(req->metadata[0]->type, PROMETHEUS__METRIC_METADATA__METRIC_TYPE__COUNTER);
  CHECK_STR(req->metadata[0]->metric_family_name, "up");
  CHECK_STR(req->metadata[0]->help, "help me");
  CHECK_STR(req->metadata[0]->unit, "seconds");
  mw_rwenc_decode_free(req);
  /* Buffers are reused: the same request again gives the same bytes. */
  uint8_t *copy = malloc(len);
  memcpy(copy, out, len);
  mw_rwenc_reset(e);
  CHECK_INT(
      mw_rwenc_add_series(e, L("__name__\xffup\xffjob\xffnode\xff"), ts1, v1, 3, err, sizeof err),
      0);
  CHECK_INT(mw_rwenc_add_series(e, L("__name__\xffzz\xff"), ts2, v2, 4, err, sizeof err), 0);
  CHECK_INT(mw_rwenc_add_metadata(e, 1, "up", 2, "help me", 7, "seconds", 7, err, sizeof err), 0);
  size_t len2;
  CHECK_INT(mw_rwenc_finish(e, &out, &len2, NULL, err, sizeof err), 0);
  CHECK(len2 == len && memcmp(copy, out, len) == 0);
  free(copy);
  mw_rwenc_free(e);
}

static void test_empty_and_errors(void) {
  char err[256];
  mw_rwenc_t *e = mw_rwenc_new();
  const uint8_t *out;
  size_t len;
  CHECK_INT(mw_rwenc_finish(e, &out, &len, NULL, err, sizeof err), 0);
  Prometheus__WriteRequest *req;
  CHECK_INT(mw_rwenc_decode(out, len, &req, err, sizeof err), 0);
  CHECK_INT(req->n_timeseries, 0);
  mw_rwenc_decode_free(req);
  /* Malformed inputs are refused. */
  CHECK_INT(mw_rwenc_set_external_labels(e,
                                         L("b\xff"
                                           "1\xff"
                                           "a\xff"
                                           "2\xff"),
                                         err, sizeof err),
            -1);
  CHECK_INT(mw_rwenc_set_external_labels(e, L("a\xff"), err, sizeof err), -1);
  CHECK_INT(mw_rwenc_set_external_labels(e, L("a\xff\xff"), err, sizeof err), -1);
  int64_t ts = 1;
  double v = 1;
  CHECK_INT(mw_rwenc_add_series(e, L("__name__\xffup"), &ts, &v, 1, err, sizeof err), -1);
  CHECK_INT(mw_rwenc_decode((const uint8_t *)"garbage", 7, &req, err, sizeof err), -1);
  CHECK(req == NULL);
  mw_rwenc_free(e);
}

/* mw_rwenc_check catches what the specification forbids. */
static void test_check(void) {
  char err[256];
  Prometheus__Label a = PROMETHEUS__LABEL__INIT, b = PROMETHEUS__LABEL__INIT;
  a.name = (ProtobufCBinaryData){8, (uint8_t *)"__name__"};
  a.value = (ProtobufCBinaryData){1, (uint8_t *)"x"};
  b.name = (ProtobufCBinaryData){1, (uint8_t *)"A"};
  b.value = (ProtobufCBinaryData){1, (uint8_t *)"y"};
  Prometheus__Label *ls[] = {&a, &b};
  Prometheus__Sample s1 = PROMETHEUS__SAMPLE__INIT, s2 = PROMETHEUS__SAMPLE__INIT;
  s1.timestamp = 2;
  s2.timestamp = 1;
  Prometheus__Sample *ss[] = {&s1, &s2};
  Prometheus__TimeSeries t = PROMETHEUS__TIME_SERIES__INIT;
  t.labels = ls;
  t.n_labels = 1;
  t.samples = ss;
  t.n_samples = 1;
  Prometheus__TimeSeries *ts[] = {&t};
  Prometheus__WriteRequest req = PROMETHEUS__WRITE_REQUEST__INIT;
  req.timeseries = ts;
  req.n_timeseries = 1;
  CHECK_INT(mw_rwenc_check(&req, err, sizeof err), 0);
  t.n_labels = 2; /* "__name__" > "A": unsorted */
  CHECK_INT(mw_rwenc_check(&req, err, sizeof err), -1);
  CHECK(strstr(err, "sorted") != NULL);
  t.n_labels = 1;
  t.n_samples = 2; /* 2 then 1: out of order */
  CHECK_INT(mw_rwenc_check(&req, err, sizeof err), -1);
  t.n_samples = 1;
  a.name = (ProtobufCBinaryData){3, (uint8_t *)"job"}; /* no __name__ */
  CHECK_INT(mw_rwenc_check(&req, err, sizeof err), -1);
  /* A decompression bomb is refused by its announced size. */
  size_t big = MW_RWENC_MAX_DECODED + 1;
  uint8_t hdr[8];
  size_t n = 0;
  while (big >= 0x80) {
    hdr[n++] = (uint8_t)(big | 0x80);
    big >>= 7;
  }
  hdr[n++] = (uint8_t)big;
  Prometheus__WriteRequest *out;
  CHECK_INT(mw_rwenc_decode(hdr, n, &out, err, sizeof err), -1);
  CHECK(strstr(err, "too large") != NULL);
}

/* A large request: many series, many samples; round trip exact. */
static void test_large(void) {
  char err[256];
  mw_rwenc_t *e = mw_rwenc_new();
  for (int round = 0; round < 2; round++) {
    mw_rwenc_reset(e);
    for (int s = 0; s < 500; s++) {
      char enc[64];
      int n = snprintf(enc, sizeof enc, "__name__\xffm%d\xffi\xff%d\xff", s % 7, s);
      int64_t ts[10];
      double v[10];
      for (int i = 0; i < 10; i++) {
        ts[i] = 1000 * i + s;
        v[i] = s * 10 + i + round;
      }
      CHECK_INT(mw_rwenc_add_series(e, (const uint8_t *)enc, (size_t)n, ts, v, 10, err, sizeof err),
                0);
    }
    const uint8_t *out;
    size_t len;
    CHECK_INT(mw_rwenc_finish(e, &out, &len, NULL, err, sizeof err), 0);
    Prometheus__WriteRequest *req;
    CHECK_INT(mw_rwenc_decode(out, len, &req, err, sizeof err), 0);
    CHECK_INT(mw_rwenc_check(req, err, sizeof err), 0);
    CHECK_INT(req->n_timeseries, 500);
    for (int s = 0; s < 500; s++) {
      CHECK_INT(req->timeseries[s]->n_samples, 10);
      CHECK_DBL(req->timeseries[s]->samples[9]->value, s * 10 + 9 + round);
    }
    mw_rwenc_decode_free(req);
  }
  mw_rwenc_free(e);
}

/* finish writes into a buffer sized by its own count: requests with every
 * length class (1-, 2- and 3-byte varints), negative timestamps (10-byte
 * varints), exemplars and external labels come to exactly the size
 * protobuf-c computes for what they decode to. (In the ASan build, a count
 * too small is a heap overflow there.) */
static void test_packed_size_bound(void) {
  static const size_t lens[] = {1, 3, 120, 127, 128, 300, 16383, 16384, 20000};
  static char big[20001];
  memset(big, 'v', sizeof big - 1);
  char err[256];
  uint32_t seed = 12345;
#define RND() (seed = seed * 1103515245u + 12345u, (seed >> 8))
  uint8_t *enc = malloc(9 * 2 * 20002 + 64);
  for (int round = 0; round < 60; round++) {
    /* e2 gets the same series as a series table's stored sets (symbol ids): the
     * same bytes */
    mw_rwenc_t *e = mw_rwenc_new(), *e2 = mw_rwenc_new();
    mw_series_t *tab = mw_series_new();
    for (int k = 0; round % 3 == 0 && k < 2; k++)
      CHECK_INT(mw_rwenc_set_external_labels(k ? e2 : e,
                                             L("cluster\xff"
                                               "eu\xff"
                                               "zone\xff"
                                               "a1\xff"),
                                             err, sizeof err),
                0);
    size_t nseries = 1 + RND() % 20;
    for (size_t i = 0; i < nseries; i++) {
      size_t len = 0, nl = RND() % 6;
      memcpy(enc, "__name__\xff", 9);
      len = 9;
      size_t vl = lens[RND() % 9];
      memcpy(enc + len, big, vl);
      len += vl;
      enc[len++] = 0xff;
      for (size_t k = 0; k < nl; k++) { /* names l0..l5: sorted after __name__ */
        size_t v = lens[RND() % 9];
        enc[len++] = 'l';
        enc[len++] = (uint8_t)('0' + k);
        enc[len++] = 0xff;
        memcpy(enc + len, big, v);
        len += v;
        enc[len++] = 0xff;
      }
      int64_t ts[4];
      double v[4];
      size_t ns = 1 + RND() % 4;
      for (size_t k = 0; k < ns; k++) {
        ts[k] = RND() % 2 ? -(int64_t)RND() * 1000 : (int64_t)RND() << 20;
        v[k] = RND() % 2 ? 0.0 : (double)RND() / 7;
      }
      CHECK_INT(mw_rwenc_add_series(e, enc, len, ts, v, ns, err, sizeof err), 0);
      uint32_t ref;
      size_t slen;
      CHECK_INT(mw_series_add(tab, enc, len, mw_labels_hash(enc, len), &ref, NULL, err, sizeof err),
                0);
      const uint8_t *st = mw_series_stored(tab, ref, &slen);
      CHECK_INT(mw_rwenc_add_series_stored(e2, st, slen, ts, v, ns, err, sizeof err), 0);
      for (size_t k = RND() % 3; k > 0; k--) {
        int64_t ets = -(int64_t)RND();
        for (int m = 0; m < 2; m++)
          CHECK_INT(mw_rwenc_add_exemplar(m ? e2 : e, k == 1 ? enc : enc + 9 + vl + 1,
                                          k == 1 ? 0 : len - 10 - vl, ets, 1.5, err, sizeof err),
                    0);
      }
    }
    const uint8_t *out, *out2;
    size_t out_len, raw, out2_len, raw2;
    CHECK_INT(mw_rwenc_finish(e, &out, &out_len, &raw, err, sizeof err), 0);
    CHECK_INT(mw_rwenc_finish(e2, &out2, &out2_len, &raw2, err, sizeof err), 0);
    CHECK(out_len == out2_len && raw == raw2 && memcmp(out, out2, out_len) == 0);
    mw_rwenc_free(e2);
    mw_series_free(tab);
    Prometheus__WriteRequest *req;
    CHECK_INT(mw_rwenc_decode(out, out_len, &req, err, sizeof err), 0);
    CHECK_INT(req->n_timeseries, nseries);
    CHECK_INT(prometheus__write_request__get_packed_size(req), raw);
    mw_rwenc_decode_free(req);
    mw_rwenc_free(e);
  }
#undef RND
  free(enc);
}

/* The field numbers mw_rwenc_finish writes (remote/encode.h) are remote/remote.proto's:
 * each is checked against protoc-c's descriptor with its type, label and
 * message; each message has no field the encoder does not know; and
 * protobuf-c packs fields in the order the encoder writes them (by number). */
static void test_field_numbers(void) {
  const ProtobufCMessageDescriptor *wr = &prometheus__write_request__descriptor,
                                   *ts = &prometheus__time_series__descriptor,
                                   *la = &prometheus__label__descriptor,
                                   *sa = &prometheus__sample__descriptor,
                                   *ex = &prometheus__exemplar__descriptor,
                                   *md = &prometheus__metric_metadata__descriptor,
                                   *hi = &prometheus__histogram__descriptor,
                                   *bs = &prometheus__bucket_span__descriptor;
  static const ProtobufCLabel rep = PROTOBUF_C_LABEL_REPEATED, one = PROTOBUF_C_LABEL_NONE;
  /* a oneof member: written whenever it is the one set (even 0) */
  static const ProtobufCLabel oof = (ProtobufCLabel)-1;
  const struct {
    const ProtobufCMessageDescriptor *in;
    const char *name;
    unsigned id;
    ProtobufCLabel label;
    ProtobufCType type;
    const void *msg; /* a message field's message */
  } f[] = {
      {wr, "timeseries", MW_RWENC_WRITE_REQUEST_TIMESERIES, rep, PROTOBUF_C_TYPE_MESSAGE, ts},
      {wr, "metadata", MW_RWENC_WRITE_REQUEST_METADATA, rep, PROTOBUF_C_TYPE_MESSAGE, md},
      {ts, "labels", MW_RWENC_TIME_SERIES_LABELS, rep, PROTOBUF_C_TYPE_MESSAGE, la},
      {ts, "samples", MW_RWENC_TIME_SERIES_SAMPLES, rep, PROTOBUF_C_TYPE_MESSAGE, sa},
      {ts, "exemplars", MW_RWENC_TIME_SERIES_EXEMPLARS, rep, PROTOBUF_C_TYPE_MESSAGE, ex},
      {la, "name", MW_RWENC_LABEL_NAME, one, PROTOBUF_C_TYPE_BYTES, NULL},
      {la, "value", MW_RWENC_LABEL_VALUE, one, PROTOBUF_C_TYPE_BYTES, NULL},
      {sa, "value", MW_RWENC_SAMPLE_VALUE, one, PROTOBUF_C_TYPE_DOUBLE, NULL},
      {sa, "timestamp", MW_RWENC_SAMPLE_TIMESTAMP, one, PROTOBUF_C_TYPE_INT64, NULL},
      {ex, "labels", MW_RWENC_EXEMPLAR_LABELS, rep, PROTOBUF_C_TYPE_MESSAGE, la},
      {ex, "value", MW_RWENC_EXEMPLAR_VALUE, one, PROTOBUF_C_TYPE_DOUBLE, NULL},
      {ex, "timestamp", MW_RWENC_EXEMPLAR_TIMESTAMP, one, PROTOBUF_C_TYPE_INT64, NULL},
      {md, "type", MW_RWENC_METADATA_TYPE, one, PROTOBUF_C_TYPE_ENUM, NULL},
      {md, "metric_family_name", MW_RWENC_METADATA_FAMILY_NAME, one, PROTOBUF_C_TYPE_STRING, NULL},
      {md, "help", MW_RWENC_METADATA_HELP, one, PROTOBUF_C_TYPE_STRING, NULL},
      {md, "unit", MW_RWENC_METADATA_UNIT, one, PROTOBUF_C_TYPE_STRING, NULL},
      {ts, "histograms", MW_RWENC_TIME_SERIES_HISTOGRAMS, rep, PROTOBUF_C_TYPE_MESSAGE, hi},
      {hi, "count_int", MW_RWENC_HISTOGRAM_COUNT_INT, oof, PROTOBUF_C_TYPE_UINT64, NULL},
      {hi, "count_float", MW_RWENC_HISTOGRAM_COUNT_FLOAT, oof, PROTOBUF_C_TYPE_DOUBLE, NULL},
      {hi, "sum", MW_RWENC_HISTOGRAM_SUM, one, PROTOBUF_C_TYPE_DOUBLE, NULL},
      {hi, "schema", MW_RWENC_HISTOGRAM_SCHEMA, one, PROTOBUF_C_TYPE_SINT32, NULL},
      {hi, "zero_threshold", MW_RWENC_HISTOGRAM_ZERO_THRESHOLD, one, PROTOBUF_C_TYPE_DOUBLE, NULL},
      {hi, "zero_count_int", MW_RWENC_HISTOGRAM_ZERO_COUNT_INT, oof, PROTOBUF_C_TYPE_UINT64, NULL},
      {hi, "zero_count_float", MW_RWENC_HISTOGRAM_ZERO_COUNT_FLOAT, oof, PROTOBUF_C_TYPE_DOUBLE,
       NULL},
      {hi, "negative_spans", MW_RWENC_HISTOGRAM_NEGATIVE_SPANS, rep, PROTOBUF_C_TYPE_MESSAGE, bs},
      {hi, "negative_deltas", MW_RWENC_HISTOGRAM_NEGATIVE_DELTAS, rep, PROTOBUF_C_TYPE_SINT64,
       NULL},
      {hi, "negative_counts", MW_RWENC_HISTOGRAM_NEGATIVE_COUNTS, rep, PROTOBUF_C_TYPE_DOUBLE,
       NULL},
      {hi, "positive_spans", MW_RWENC_HISTOGRAM_POSITIVE_SPANS, rep, PROTOBUF_C_TYPE_MESSAGE, bs},
      {hi, "positive_deltas", MW_RWENC_HISTOGRAM_POSITIVE_DELTAS, rep, PROTOBUF_C_TYPE_SINT64,
       NULL},
      {hi, "positive_counts", MW_RWENC_HISTOGRAM_POSITIVE_COUNTS, rep, PROTOBUF_C_TYPE_DOUBLE,
       NULL},
      {hi, "reset_hint", MW_RWENC_HISTOGRAM_RESET_HINT, one, PROTOBUF_C_TYPE_ENUM, NULL},
      {hi, "timestamp", MW_RWENC_HISTOGRAM_TIMESTAMP, one, PROTOBUF_C_TYPE_INT64, NULL},
      {hi, "custom_values", MW_RWENC_HISTOGRAM_CUSTOM_VALUES, rep, PROTOBUF_C_TYPE_DOUBLE, NULL},
      {bs, "offset", MW_RWENC_BUCKET_SPAN_OFFSET, one, PROTOBUF_C_TYPE_SINT32, NULL},
      {bs, "length", MW_RWENC_BUCKET_SPAN_LENGTH, one, PROTOBUF_C_TYPE_UINT32, NULL},
  };
  const ProtobufCMessageDescriptor *msgs[] = {wr, ts, la, sa, ex, md, hi, bs};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
    const ProtobufCFieldDescriptor *d =
        protobuf_c_message_descriptor_get_field_by_name(f[i].in, f[i].name);
    if (!d) MW_FAIL("%s has no field %s", f[i].in->name, f[i].name);
    int oneof = f[i].label == oof;
    ProtobufCLabel label = oneof ? one : f[i].label;
    /* repeated scalars are packed (proto3), as the encoder writes them */
    int packed = f[i].label == rep && f[i].type != PROTOBUF_C_TYPE_MESSAGE;
    if (d->id != f[i].id || d->label != label || d->type != f[i].type ||
        (f[i].msg && d->descriptor != f[i].msg) ||
        !(d->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != !oneof ||
        !(d->flags & PROTOBUF_C_FIELD_FLAG_PACKED) != !packed)
      MW_FAIL("%s.%s: number %u, label %d, type %d in remote/remote.proto; the encoder writes %u",
              f[i].in->name, f[i].name, d->id, (int)d->label, (int)d->type, f[i].id);
  }
  size_t known = 0;
  for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
    known += msgs[i]->n_fields;
    for (unsigned k = 1; k < msgs[i]->n_fields; k++)
      CHECK(msgs[i]->fields[k - 1].id < msgs[i]->fields[k].id);
  }
  CHECK_INT(known, sizeof f / sizeof f[0]);
}

/* protobuf-c 1.4, which the encoder's bytes must equal, leaves out a proto3
 * scalar equal to 0 (a double compares, so -0.0 is left out too, where Go
 * sends it), bytes of length 0 and a string whose first byte is NUL; it
 * sends a string up to its first NUL and a negative enum in 10 bytes. */
static void test_protobuf_c_defaults(void) {
  Prometheus__Sample s = PROMETHEUS__SAMPLE__INIT;
  s.value = -0.0;
  CHECK_INT(prometheus__sample__get_packed_size(&s), 0);
  s.value = from_bits(MW_STALE_NAN_BITS);
  CHECK_INT(prometheus__sample__get_packed_size(&s), 9);
  s.value = 0.0;
  s.timestamp = INT64_MIN;
  CHECK_INT(prometheus__sample__get_packed_size(&s), 11);
  Prometheus__Label l = PROMETHEUS__LABEL__INIT;
  l.name = (ProtobufCBinaryData){.len = 0, .data = (uint8_t *)"x"};
  CHECK_INT(prometheus__label__get_packed_size(&l), 0);
  Prometheus__MetricMetadata m = PROMETHEUS__METRIC_METADATA__INIT;
  m.help = (char *)"\0x";
  m.unit = (char *)"ab\0c";
  m.type = (Prometheus__MetricMetadata__MetricType)-1;
  CHECK_INT(prometheus__metric_metadata__get_packed_size(&m), 4 + 11);
}

/* A deterministic generator (xorshift64*), so a failure is reproducible. */
static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void) {
  rnd_state ^= rnd_state >> 12;
  rnd_state ^= rnd_state << 25;
  rnd_state ^= rnd_state >> 27;
  return rnd_state * 0x2545f4914f6cdd1dull;
}

static size_t rnd_n(size_t n) { return (size_t)(rnd() % n); }

#define GEN_SERIES 8
#define GEN_SAMPLES 300
#define GEN_EX 4
#define GEN_META 3
#define GEN_BYTES (8u << 20)
#define GEN_H 4   /* histograms a series at most */
#define GEN_HB 12 /* buckets and spans a side at most */

/* One random request: its description and the bytes it points into. */
typedef struct {
  uint8_t *bytes;
  size_t nbytes;
  mw_rwref_series_t series[GEN_SERIES];
  mw_rwref_ex_t ex[GEN_SERIES][GEN_EX];
  int64_t ts[GEN_SERIES][GEN_SAMPLES];
  double v[GEN_SERIES][GEN_SAMPLES];
  mw_rwref_meta_t meta[GEN_META];
  mw_histogram_t hist[GEN_SERIES][GEN_H];
  int64_t hts[GEN_SERIES][GEN_H];
  mw_hspan_t hspans[GEN_SERIES][GEN_H][2][GEN_HB];
  int64_t hdeltas[GEN_SERIES][GEN_H][2][GEN_HB];
  double hcounts[GEN_SERIES][GEN_H][3][GEN_HB]; /* positive, negative, custom values */
  size_t meta_at[GEN_META];
  uint8_t ext[128];
  mw_rwref_req_t req;
  /* what the requests so far had, so the test can insist they had it */
  size_t n_meta, n_neg_zero, n_stale, n_int64_min, n_int64_max, n_only_ex, n_empty_ex, n_len3,
      n_len2, n_no_samples, n_empty_value;
  size_t n_hist, n_hist_float, n_hist_stale, n_hist_nan_sum, n_hist_empty_span, n_hist_no_spans,
      n_hist_custom, n_hist_only;
} gen_t;

/* Lengths of label values and metadata strings: empty, short, and each side
 * of the 1-, 2- and 3-byte varint lengths. */
static size_t gen_len(void) {
  static const size_t lens[] = {0, 127, 128, 300, 16383, 16384, 20000};
  size_t k = rnd_n(24);
  if (k < 7) return lens[k];
  return 1 + rnd_n(k < 20 ? 12 : 200);
}

/* n random bytes other than 0xFF (the label set separator) into g. */
static uint8_t *gen_fill(gen_t *g, size_t n, int any_byte) {
  uint8_t *p = g->bytes + g->nbytes;
  if (g->nbytes + n > GEN_BYTES) abort();
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(any_byte ? rnd() : rnd_n(255));
  g->nbytes += n;
  return p;
}

/* A random sorted, unique label set (names from a sorted pool, which has an
 * empty name and one of 200 bytes); *len receives its length. */
static const uint8_t *gen_set(gen_t *g, size_t *len) {
  static char longname[201];
  if (!longname[0]) memset(longname, 'n', 200);
  const char *pool[] = {"", "__name__", "a", "aa", "job", "le", longname, "x_y", "zz"};
  const uint8_t *start = g->bytes + g->nbytes;
  size_t first = rnd_n(8) ? 1 : 0; /* the empty name, now and then */
  for (size_t i = first; i < 9; i++) {
    if (rnd_n(3)) continue;
    size_t nl = strlen(pool[i]), vl = gen_len();
    memcpy(gen_fill(g, nl + 1, 0), pool[i], nl);
    g->bytes[g->nbytes - 1] = 0xff;
    gen_fill(g, vl, 0);
    *gen_fill(g, 1, 0) = 0xff;
    if (vl == 0) g->n_empty_value++;
    if (vl >= 16384) g->n_len3++;
    if (vl >= 128 && vl < 16384) g->n_len2++;
  }
  *len = (size_t)(g->bytes + g->nbytes - start);
  return start;
}

static double gen_value(gen_t *g) {
  switch (rnd_n(14)) {
  case 0: return 0.0;
  case 1: g->n_neg_zero++; return -0.0;
  case 2: return from_bits(MW_NORMAL_NAN_BITS);
  case 3: g->n_stale++; return from_bits(MW_STALE_NAN_BITS);
  case 4: return INFINITY;
  case 5: return -INFINITY;
  case 6: return DBL_MIN / 4; /* subnormal */
  case 7: return DBL_MAX;
  case 8: return from_bits(rnd()); /* any bits, NaN payloads too */
  default: return (double)(int64_t)rnd() / 1e9;
  }
}

static int64_t gen_ts(gen_t *g) {
  switch (rnd_n(12)) {
  case 0: g->n_int64_min++; return INT64_MIN;
  case 1: g->n_int64_max++; return INT64_MAX;
  case 2: return 0;
  case 3: return -1;
  case 4: return 127;
  case 5: return 128;
  case 6: return -(int64_t)rnd_n(1000000);
  case 7: return (int64_t)rnd();
  default: return 1700000000000 + (int64_t)rnd_n(1000000);
  }
}

/* A random histogram (any field values: the encoder does not validate) for series i. */
static void gen_hist(gen_t *g, size_t i, size_t j) {
  mw_histogram_t *h = &g->hist[i][j];
  memset(h, 0, sizeof *h);
  h->is_float = (uint8_t)rnd_n(2);
  g->n_hist++;
  if (h->is_float) g->n_hist_float++;
  if (rnd_n(8) == 0) { /* a stale marker */
    h->sum = from_bits(MW_STALE_NAN_BITS);
    g->n_hist_stale++;
    return;
  }
  static const int32_t schemas[] = {-53, -4, -1, 0, 1, 3, 8, INT32_MIN, INT32_MAX};
  h->schema = rnd_n(3) ? (int32_t)rnd_n(13) - 4 : schemas[rnd_n(9)];
  h->reset_hint = (uint8_t)rnd_n(4);
  h->zero_threshold = rnd_n(2) ? 0 : gen_value(g);
  h->sum = gen_value(g);
  if (isnan(h->sum)) g->n_hist_nan_sum++;
  if (h->is_float) {
    h->fcount = gen_value(g);
    h->fzero_count = rnd_n(3) ? 0 : gen_value(g);
  } else {
    h->count = rnd_n(4) ? rnd_n(1000) : rnd();
    h->zero_count = rnd_n(3) ? 0 : rnd();
  }
  for (int side = 0; side < 2; side++) {
    uint32_t ns = (uint32_t)rnd_n(GEN_HB + 1) / (rnd_n(3) ? 3 : 1), nb = 0;
    mw_hspan_t *sp = g->hspans[i][j][side];
    for (uint32_t k = 0; k < ns; k++) {
      static const int32_t offs[] = {0, 1, -1, 63, 64, -65, INT32_MIN, INT32_MAX};
      sp[k].offset = rnd_n(2) ? (int32_t)rnd_n(5) : offs[rnd_n(8)];
      sp[k].length = rnd_n(5) ? (uint32_t)rnd_n(3) : (rnd_n(2) ? 0 : UINT32_MAX);
      if (!sp[k].offset && !sp[k].length) g->n_hist_empty_span++;
    }
    if (!ns) g->n_hist_no_spans++;
    nb = (uint32_t)rnd_n(GEN_HB + 1);
    for (uint32_t k = 0; k < nb; k++) {
      static const int64_t ds[] = {0, 1, -1, 63, -64, INT64_MIN, INT64_MAX};
      g->hdeltas[i][j][side][k] = rnd_n(2) ? (int64_t)rnd_n(100) - 50 : ds[rnd_n(7)];
      g->hcounts[i][j][side][k] = gen_value(g);
    }
    if (side == 0) {
      h->n_pos_spans = ns;
      h->pos_spans = sp;
      h->n_pos = nb;
      h->pos_deltas = g->hdeltas[i][j][0];
      h->pos_counts = g->hcounts[i][j][0];
    } else {
      h->n_neg_spans = ns;
      h->neg_spans = sp;
      h->n_neg = nb;
      h->neg_deltas = g->hdeltas[i][j][1];
      h->neg_counts = g->hcounts[i][j][1];
    }
  }
  if (rnd_n(4) == 0) {
    h->n_custom = (uint32_t)rnd_n(GEN_HB + 1);
    for (uint32_t k = 0; k < h->n_custom; k++)
      g->hcounts[i][j][2][k] = gen_value(g);
    h->custom_values = g->hcounts[i][j][2];
    g->n_hist_custom++;
  }
}

static void gen_request(gen_t *g) {
  g->nbytes = 0;
  mw_rwref_req_t *r = &g->req;
  memset(r, 0, sizeof *r);
  if (rnd_n(3) == 0) { /* external labels: valid, sorted names, non-empty values */
    static const char *const names[] = {"a", "cluster", "job", "zz"};
    size_t n = 0;
    for (size_t i = 0; i < 4; i++) {
      if (rnd_n(2)) continue;
      size_t nl = strlen(names[i]), vl = 1 + rnd_n(8);
      memcpy(g->ext + n, names[i], nl);
      n += nl;
      g->ext[n++] = 0xff;
      for (size_t k = 0; k < vl; k++)
        g->ext[n++] = (uint8_t)('a' + rnd_n(26));
      g->ext[n++] = 0xff;
    }
    r->ext = g->ext;
    r->ext_len = n;
  }
  r->series = g->series;
  r->nseries = rnd_n(GEN_SERIES + 1);
  for (size_t i = 0; i < r->nseries; i++) {
    mw_rwref_series_t *s = &g->series[i];
    s->labels = gen_set(g, &s->len);
    size_t k = rnd_n(20);
    s->n = k < 4 ? 0 : k < 19 ? 1 + rnd_n(5) : GEN_SAMPLES;
    for (size_t j = 0; j < s->n; j++) {
      g->ts[i][j] = gen_ts(g);
      g->v[i][j] = gen_value(g);
    }
    s->ts = g->ts[i];
    s->values = g->v[i];
    s->nex = rnd_n(3) ? 0 : 1 + rnd_n(GEN_EX);
    for (size_t j = 0; j < s->nex; j++) {
      mw_rwref_ex_t *x = &g->ex[i][j];
      if (rnd_n(3) == 0) {
        x->labels = NULL;
        x->len = 0;
        g->n_empty_ex++;
      } else {
        x->labels = gen_set(g, &x->len);
      }
      x->ts = gen_ts(g);
      x->value = gen_value(g);
    }
    s->ex = g->ex[i];
    s->nh = rnd_n(3) ? 0 : 1 + rnd_n(GEN_H);
    for (size_t j = 0; j < s->nh; j++) {
      gen_hist(g, i, j);
      g->hts[i][j] = gen_ts(g);
    }
    s->hist = g->hist[i];
    s->hts = g->hts[i];
    if (!s->n && !s->nex && s->nh) g->n_hist_only++;
    if (!s->n) g->n_no_samples++;
    if (!s->n && s->nex) g->n_only_ex++;
  }
  if (rnd_n(4) == 0) { /* metadata: any bytes, a NUL included */
    static const int types[] = {0, 1, 2, 3, 4, 5, 6, 7, -1, 1000};
    r->meta = g->meta;
    r->meta_at = g->meta_at;
    r->nmeta = 1 + rnd_n(GEN_META);
    for (size_t i = 0; i < r->nmeta; i++) {
      mw_rwref_meta_t *m = &g->meta[i];
      m->type = types[rnd_n(10)];
      m->family_len = gen_len() % 300;
      m->family = (const char *)gen_fill(g, m->family_len, 1);
      m->help_len = gen_len();
      m->help = (const char *)gen_fill(g, m->help_len, 1);
      m->unit_len = rnd_n(4);
      m->unit = (const char *)gen_fill(g, m->unit_len, 1);
      g->meta_at[i] = (i ? g->meta_at[i - 1] : 0) + rnd_n(r->nseries + 1);
    }
    g->n_meta++;
  }
}

/* 1,500 random requests, made by mw_rwenc and by protobuf-c from the same
 * description (rwref.h), are the same bytes. One encoder makes them all (a
 * second, new one every 100), so reused buffers are covered. */
static void test_same_bytes_as_protobuf_c(void) {
  gen_t *g = calloc(1, sizeof *g);
  g->bytes = malloc(GEN_BYTES);
  mw_rwenc_t *e = mw_rwenc_new();
  char err[256];
  size_t total = 0;
  for (int i = 0; i < 1500; i++) {
    gen_request(g);
    mw_rwenc_t *f = i % 100 == 99 ? mw_rwenc_new() : e;
    uint8_t *hand = NULL, *ref = NULL;
    size_t hand_len = 0, ref_len = 0, raw = 0, z_len;
    const uint8_t *z;
    g->req.stored = i % 2; /* every other one from a series table's symbols */
    CHECK_INT(mw_rwref_encode(&g->req, f, &hand, &hand_len, &raw, &z, &z_len), 0);
    CHECK_INT(mw_rwref_pack(&g->req, &ref, &ref_len), 0);
    long at = mw_rwref_diff(hand, hand_len, ref, ref_len);
    if (at >= 0)
      MW_FAIL("request %d: %zu bytes, protobuf-c %zu; first difference at byte %ld", i, hand_len,
              ref_len, at);
    CHECK_INT(raw, ref_len);
    Prometheus__WriteRequest *req;
    CHECK_INT(mw_rwenc_decode(z, z_len, &req, err, sizeof err), 0);
    CHECK_INT(req->n_timeseries, g->req.nseries);
    CHECK_INT(req->n_metadata, g->req.nmeta);
    mw_rwenc_decode_free(req);
    total += ref_len;
    free(hand);
    free(ref);
    if (f != e) mw_rwenc_free(f);
  }
  /* the generator did make what the test is about */
  CHECK(g->n_meta >= 100 && g->n_neg_zero >= 100 && g->n_stale >= 100 && g->n_int64_min >= 100 &&
        g->n_int64_max >= 100 && g->n_only_ex >= 20 && g->n_empty_ex >= 100 && g->n_len3 >= 100 &&
        g->n_len2 >= 100 && g->n_no_samples >= 100 && g->n_empty_value >= 100);
  CHECK(g->n_hist >= 1000 && g->n_hist_float >= 400 && g->n_hist_stale >= 100 &&
        g->n_hist_nan_sum >= 100 && g->n_hist_empty_span >= 100 && g->n_hist_no_spans >= 100 &&
        g->n_hist_custom >= 100 && g->n_hist_only >= 20);
  CHECK(total > 0);
  mw_rwenc_free(e);
  free(g->bytes);
  free(g);
}

/* Histograms whose packed fields and messages take lengths of two and three bytes (the
 * random requests' stay under 128 bytes a field): the same bytes as protobuf-c. */
static void test_big_histograms_same_bytes(void) {
  enum { NB = 3000, NS = 300 };
  static int64_t deltas[NB];
  static double counts[NB], cvals[NB];
  static mw_hspan_t spans[NS];
  static const int64_t ds[] = {1, -1, INT64_MAX, INT64_MIN, 0, 64, -65};
  for (int i = 0; i < NB; i++) {
    deltas[i] = ds[i % 7];
    counts[i] = i % 5 ? i * 0.25 : -0.0;
    cvals[i] = i - 1500.5;
  }
  for (int i = 0; i < NS; i++)
    spans[i] = (mw_hspan_t){.offset = i % 3 ? -i : INT32_MAX, .length = NB / NS};
  mw_histogram_t h[3] = {{.schema = 8,
                          .reset_hint = 3,
                          .zero_threshold = 1e-300,
                          .count = UINT64_MAX,
                          .zero_count = 1,
                          .sum = -0.0,
                          .n_pos_spans = NS,
                          .pos_spans = spans,
                          .n_pos = NB,
                          .pos_deltas = deltas,
                          .n_neg_spans = NS,
                          .neg_spans = spans,
                          .n_neg = 120,
                          .neg_deltas = deltas},
                         {.schema = -4,
                          .is_float = 1,
                          .fcount = 1e300,
                          .fzero_count = -0.0,
                          .sum = NAN,
                          .n_pos_spans = 1,
                          .pos_spans = spans,
                          .n_pos = NB,
                          .pos_counts = counts,
                          .n_neg = 17,
                          .neg_counts = counts},
                         {.schema = MW_HIST_SCHEMA_CUSTOM,
                          .is_float = 1,
                          .n_pos = 16,
                          .pos_counts = counts,
                          .n_custom = NB,
                          .custom_values = cvals}};
  const int64_t hts[3] = {INT64_MIN, -1, 1700000000000};
  static const uint8_t lab[] = "__name__\xffh\xff";
  mw_rwref_series_t ser = {.labels = lab, .len = sizeof lab - 1, .hist = h, .hts = hts, .nh = 3};
  mw_rwref_req_t req = {.series = &ser, .nseries = 1};
  mw_rwenc_t *e = mw_rwenc_new();
  uint8_t *hand = NULL, *ref = NULL;
  size_t hand_len = 0, ref_len = 0, raw = 0, z_len;
  const uint8_t *z;
  CHECK_INT(mw_rwref_encode(&req, e, &hand, &hand_len, &raw, &z, &z_len), 0);
  CHECK_INT(mw_rwref_pack(&req, &ref, &ref_len), 0);
  CHECK(ref_len > 3 * 16384);
  long at = mw_rwref_diff(hand, hand_len, ref, ref_len);
  if (at >= 0)
    MW_FAIL("%zu bytes, protobuf-c %zu; first difference at byte %ld", hand_len, ref_len, at);
  free(hand);
  free(ref);
  mw_rwenc_free(e);
}

/* drop_old takes out the samples and exemplars older than min_ts and the
 * series left with neither, from the request's bytes alone; labels, order
 * and metadata are kept. */
static void test_drop_old(void) {
  char err[256];
  mw_rwenc_t *e = mw_rwenc_new(), *f = mw_rwenc_new();
  int64_t ts_a[] = {10, 20}, ts_b[] = {1, 2};
  double v[] = {1.5, 2.5};
  CHECK_INT(mw_rwenc_add_series(e,
                                L("__name__\xff"
                                  "a\xff"),
                                ts_a, v, 2, err, sizeof err),
            0);
  CHECK_INT(mw_rwenc_add_exemplar(e,
                                  L("trace_id\xff"
                                    "old\xff"),
                                  5, 9, err, sizeof err),
            0);
  CHECK_INT(mw_rwenc_add_exemplar(e,
                                  L("trace_id\xff"
                                    "new\xff"),
                                  25, 9, err, sizeof err),
            0);
  CHECK_INT(mw_rwenc_add_series(e,
                                L("__name__\xff"
                                  "b\xff"),
                                ts_b, v, 2, err, sizeof err),
            0);
  const uint8_t *out, *out2;
  size_t len, len2;
  CHECK_INT(mw_rwenc_finish(e, &out, &len, NULL, err, sizeof err), 0);
  mw_rwenc_kept_t k;
  CHECK_INT(mw_rwenc_drop_old(f, out, len, 15, &out2, &len2, &k, err, sizeof err), 0);
  CHECK_INT(k.series, 1);
  CHECK_INT(k.samples, 1);
  CHECK_INT(k.exemplars, 1);
  CHECK_INT(k.samples_dropped, 3);
  CHECK_INT(k.exemplars_dropped, 1);
  CHECK_INT(k.min_ts, 20);
  CHECK_INT(k.max_ts, 20);
  Prometheus__WriteRequest *req;
  CHECK_INT(mw_rwenc_decode(out2, len2, &req, err, sizeof err), 0);
  CHECK_INT(k.raw, prometheus__write_request__get_packed_size(req));
  CHECK_INT(req->n_timeseries, 1);
  CHECK_BYTES(req->timeseries[0]->labels[0]->value, "a");
  CHECK_INT(req->timeseries[0]->n_samples, 1);
  CHECK_INT(req->timeseries[0]->samples[0]->timestamp, 20);
  CHECK_DBL(req->timeseries[0]->samples[0]->value, 2.5);
  CHECK_INT(req->timeseries[0]->n_exemplars, 1);
  CHECK_BYTES(req->timeseries[0]->exemplars[0]->labels[0]->value, "new");
  mw_rwenc_decode_free(req);
  /* all too old: nothing left to send */
  CHECK_INT(mw_rwenc_drop_old(f, out, len, 100, &out2, &len2, &k, err, sizeof err), 0);
  CHECK(out2 == NULL && len2 == 0 && k.series == 0);
  CHECK_INT(k.samples_dropped, 4);
  CHECK_INT(k.exemplars_dropped, 2);
  /* metadata is not filtered */
  mw_rwenc_reset(e);
  CHECK_INT(mw_rwenc_add_metadata(e, 1, "up", 2, "h", 1, "", 0, err, sizeof err), 0);
  CHECK_INT(mw_rwenc_finish(e, &out, &len, NULL, err, sizeof err), 0);
  CHECK_INT(mw_rwenc_drop_old(f, out, len, 100, &out2, &len2, &k, err, sizeof err), 0);
  CHECK(len2 == len && memcmp(out, out2, len) == 0);
  /* not a request */
  CHECK_INT(
      mw_rwenc_drop_old(f, (const uint8_t *)"\x05junk", 5, 0, &out2, &len2, &k, err, sizeof err),
      -1);
  mw_rwenc_free(e);
  mw_rwenc_free(f);
}

int main(void) {
  MW_RUN(test_crc32c);
  MW_RUN(test_roundtrip);
  MW_RUN(test_empty_and_errors);
  MW_RUN(test_check);
  MW_RUN(test_large);
  MW_RUN(test_packed_size_bound);
  MW_RUN(test_drop_old);
  MW_RUN(test_field_numbers);
  MW_RUN(test_protobuf_c_defaults);
  MW_RUN(test_same_bytes_as_protobuf_c);
  MW_RUN(test_big_histograms_same_bytes);
  return mw_test_summary();
}
