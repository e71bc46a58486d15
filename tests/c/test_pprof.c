/* test_pprof.c: profiles of the process (runtime/pprof/): the builder writes what the checker
 * (and pprof) reads, the checker names what is wrong, the CPU sampler collects the C stacks of
 * SIGPROF ticks and leaves no handler behind; Pyroscope's PushRequest round trip. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <libdeflate.h>

#include "pprof/cpu.h"
#include "pprof/profile.h"
#include "profile.pb-c.h"
#include "pyroscope/push.h"
#include "test.h"

/* gzip or not, the bytes of a profile in *raw (malloc'd) when gzipped. 0, -1. */
static int gunzip(const uint8_t *data, size_t len, uint8_t **raw, size_t *rawlen, char *err,
                  size_t errlen) {
  (void)err;
  (void)errlen;
  *raw = NULL;
  if (len < 2 || data[0] != 0x1f || data[1] != 0x8b) return 0;
  struct libdeflate_decompressor *dc = libdeflate_alloc_decompressor();
  size_t cap = 1 << 20;
  *raw = malloc(cap);
  int rc = dc && *raw && libdeflate_gzip_decompress(dc, data, len, *raw, cap, rawlen) == 0 ? 0 : -1;
  if (dc) libdeflate_free_decompressor(dc);
  return rc;
}

static void test_builder_roundtrip(void) {
  mw_pprof_t *p = mw_ffi_pprof_new();
  CHECK(p != NULL);
  CHECK_INT(mw_ffi_pprof_sample_type(p, "samples", "count"), 0);
  CHECK_INT(mw_ffi_pprof_sample_type(p, "cpu", "nanoseconds"), 0);
  CHECK_INT(mw_ffi_pprof_meta(p, "cpu", "nanoseconds", 10000000, 1, 2, NULL), 0);
  uint64_t f = mw_ffi_pprof_func_location(p, "burn_cpu", "pipeline.lua", 1, 3);
  uint64_t g = mw_ffi_pprof_func_location(p, "main chunk", "pipeline.lua", 0, 9);
  CHECK(f > 0 && g > 0 && f != g);
  CHECK_INT(mw_ffi_pprof_func_location(p, "burn_cpu", "pipeline.lua", 1, 3), f); /* same: same id */
  uint64_t a = mw_ffi_pprof_addr_location(p, (uint64_t)(uintptr_t)&mw_ffi_pprof_new, 1);
  CHECK(a > 0);
  uint64_t locs[3] = {a, f, g};
  int64_t values[2] = {1, 10000000};
  CHECK_INT(mw_ffi_pprof_sample(p, locs, 3, values, 2, "thread\0loop", 1), 0);
  CHECK_INT(mw_ffi_pprof_sample(p, locs, 3, values, 1, "", 0), -1); /* one value for two types */
  const uint8_t *out;
  size_t len, ns, nt;
  char err[256];
  for (int gz = 0; gz <= 1; gz++) {
    CHECK_INT(mw_ffi_pprof_finish(p, gz, &out, &len, err, sizeof err), 0);
    CHECK_INT(mw_ffi_pprof_check(out, len, &ns, &nt, err, sizeof err), 0);
    CHECK_INT(ns, 1);
    CHECK_INT(nt, 2);
    CHECK_INT(out[0] == 0x1f && out[1] == 0x8b, gz);
  }
  mw_ffi_pprof_free(p);
}

static void test_check_names_the_fault(void) {
  char err[256];
  size_t ns, nt;
  CHECK_INT(mw_ffi_pprof_check((const uint8_t *)"\xff\xff", 2, &ns, &nt, err, sizeof err), -1);
  CHECK_STR(err, "not a profile.proto message");
  /* sample_type {type: 99}, string_table [""] */
  const uint8_t bad[] = {0x0a, 0x02, 0x08, 0x63, 0x32, 0x00};
  CHECK_INT(mw_ffi_pprof_check(bad, sizeof bad, &ns, &nt, err, sizeof err), -1);
  CHECK_STR(err, "sample_type 0: string index out of range");
  const uint8_t gz[] = {0x1f, 0x8b, 0x08, 0x00, 0x01};
  CHECK_INT(mw_ffi_pprof_check(gz, sizeof gz, &ns, &nt, err, sizeof err), -1);
  CHECK_STR(err, "gzip: unexpected EOF");
}

static volatile double sink;

static void test_cpu_sampler(void) {
  char err[256];
  CHECK_INT(mw_ffi_pprof_cpu_prepare(err, sizeof err), 0);
  CHECK_INT(mw_ffi_pprof_cpu_start(1000, 0, err, sizeof err), 0);
  CHECK_INT(mw_ffi_pprof_cpu_running(), 1);
  CHECK_INT(mw_ffi_pprof_cpu_start(100, 0, err, sizeof err), -1);
  CHECK_STR(err, "cpu profiling already in use");
  /* burn CPU (tens of milliseconds: tens of ticks at 1000 Hz), draining as the loop would */
  for (long i = 1; i <= 50000000L; i++) {
    sink += (double)i * 1e-9;
    if (i % 1000000 == 0) mw_ffi_pprof_cpu_drain();
  }
  mw_ffi_pprof_cpu_stop();
  CHECK_INT(mw_ffi_pprof_cpu_running(), 0);
  struct sigaction now;
  sigaction(SIGPROF, NULL, &now);
  CHECK(!(now.sa_flags & SA_SIGINFO) && now.sa_handler == SIG_IGN); /* prepare's, not ours */
  mw_pprof_t *p = mw_ffi_pprof_new();
  uint64_t lost = 99;
  CHECK_INT(mw_ffi_pprof_cpu_build(p, &lost), 0);
  CHECK_INT(lost, 0);
  const uint8_t *out;
  size_t len, ns, nt;
  CHECK_INT(mw_ffi_pprof_finish(p, 1, &out, &len, err, sizeof err), 0);
  CHECK_INT(mw_ffi_pprof_check(out, len, &ns, &nt, err, sizeof err), 0);
  CHECK(ns > 0);
  CHECK_INT(nt, 2);
  mw_ffi_pprof_free(p);
}

/* 1 Hz, the lowest rate cpu_start takes: its timer's interval is 1 s, not 1000000 us (EINVAL) */
static void test_cpu_sampler_one_hz(void) {
  char err[256] = "";
  CHECK_INT(mw_ffi_pprof_cpu_prepare(err, sizeof err), 0);
  int rc = mw_ffi_pprof_cpu_start(1, 0, err, sizeof err);
  if (rc != 0) MW_FAIL("cpu_start at 1 Hz: %s", err);
  struct itimerval tv;
  CHECK_INT(getitimer(ITIMER_PROF, &tv), 0);
  CHECK_INT(tv.it_interval.tv_sec, 1);
  CHECK_INT(tv.it_interval.tv_usec, 0);
  mw_ffi_pprof_cpu_stop();
  CHECK_INT(getitimer(ITIMER_PROF, &tv), 0);
  CHECK(!tv.it_interval.tv_sec && !tv.it_interval.tv_usec);
  mw_pprof_t *p = mw_ffi_pprof_new();
  uint64_t lost;
  CHECK_INT(mw_ffi_pprof_cpu_build(p, &lost), 0);
  mw_ffi_pprof_free(p);
}

/* pprof reads a line without a function (function_id 0): so does the check */
static void test_check_line_without_function(void) {
  char err[256] = "";
  size_t ns = 9, nt = 9;
  /* location {id: 1, line {line: 5}}, string_table [""] */
  const uint8_t prof[] = {0x22, 0x06, 0x08, 0x01, 0x22, 0x02, 0x10, 0x05, 0x32, 0x00};
  int rc = mw_ffi_pprof_check(prof, sizeof prof, &ns, &nt, err, sizeof err);
  if (rc != 0) MW_FAIL("refused: %s", err);
  CHECK_INT(ns, 0);
  /* a line naming a function that is not there is still refused */
  const uint8_t bad[] = {0x22, 0x08, 0x08, 0x01, 0x22, 0x04, 0x08, 0x07, 0x10, 0x05, 0x32, 0x00};
  CHECK_INT(mw_ffi_pprof_check(bad, sizeof bad, &ns, &nt, err, sizeof err), -1);
  CHECK_STR(err, "location 1: unknown mapping or function");
}

/* A memory profile: samples at functions f0..f2 with values (alloc_objects, alloc_space,
 * inuse_objects, inuse_space) v[i] (a sample of all 0 left out); its bytes in *out. */
static int64_t profile_time = 1000000000;

static const uint8_t *memory_profile(mw_pprof_t **p, const int64_t v[3][4], size_t *len) {
  static const char *names[3] = {"f0", "f1", "f2"};
  char err[256];
  const uint8_t *out = NULL;
  *p = mw_ffi_pprof_new();
  mw_ffi_pprof_sample_type(*p, "alloc_objects", "count");
  mw_ffi_pprof_sample_type(*p, "alloc_space", "bytes");
  mw_ffi_pprof_sample_type(*p, "inuse_objects", "count");
  mw_ffi_pprof_sample_type(*p, "inuse_space", "bytes");
  mw_ffi_pprof_meta(*p, "space", "bytes", 1, profile_time, 0, NULL);
  profile_time += 15000000000; /* the next one 15 s later */
  for (int i = 0; i < 3; i++) {
    if (!v[i][0] && !v[i][1] && !v[i][2] && !v[i][3]) continue;
    uint64_t loc = mw_ffi_pprof_func_location(*p, names[i], "m.go", 1, 10 + i);
    mw_ffi_pprof_sample(*p, &loc, 1, v[i], 4, "", 0);
  }
  if (mw_ffi_pprof_finish(*p, 1, &out, len, err, sizeof err)) return NULL;
  return out;
}

/* The values of the profile's samples by function name ("f0 3 300 1 100;f2 ...", in order). */
static void sample_values(const uint8_t *data, size_t len, char *buf, size_t buflen) {
  /* the delta's output goes through the checker's decoder: a valid profile first */
  size_t ns, nt;
  char err[256];
  buf[0] = 0;
  if (mw_ffi_pprof_check(data, len, &ns, &nt, err, sizeof err)) {
    snprintf(buf, buflen, "invalid: %s", err);
    return;
  }
  uint8_t *raw = NULL;
  size_t rawlen = 0;
  if (gunzip(data, len, &raw, &rawlen, err, sizeof err)) return;
  Perftools__Profiles__Profile *prof =
      perftools__profiles__profile__unpack(NULL, raw ? rawlen : len, raw ? raw : data);
  size_t at = 0;
  if (prof && prof->duration_nanos)
    at += (size_t)snprintf(buf, buflen, "%llds:", (long long)prof->duration_nanos / 1000000000);
  for (size_t i = 0; prof && i < prof->n_sample; i++) {
    Perftools__Profiles__Sample *s = prof->sample[i];
    const char *fn = "?";
    for (size_t l = 0; l < prof->n_location; l++)
      if (prof->location[l]->id == s->location_id[0])
        for (size_t f = 0; f < prof->n_function; f++)
          if (prof->function[f]->id == prof->location[l]->line[0]->function_id)
            fn = prof->string_table[prof->function[f]->name];
    at += (size_t)snprintf(buf + at, buflen - at, "%s%s", i ? ";" : "", fn);
    for (size_t k = 0; k < s->n_value; k++)
      at += (size_t)snprintf(buf + at, buflen - at, " %lld", (long long)s->value[k]);
  }
  if (prof) perftools__profiles__profile__free_unpacked(prof, NULL);
  free(raw);
}

/* Alloy's delta of memory profiles: alloc_* minus the last profile's, inuse_* as they are */
static void test_delta_profiles(void) {
  mw_pprof_delta_t *d = mw_ffi_pprof_delta_new("alloc_objects\0count\0alloc_space\0bytes\0", 2);
  CHECK(d != NULL);
  char err[256], got[512];
  const uint8_t *out;
  size_t outlen, len;
  mw_pprof_t *p;
  const int64_t v1[3][4] = {{2, 200, 1, 100}, {1, 10, 0, 0}, {0, 0, 0, 0}};
  const uint8_t *in = memory_profile(&p, v1, &len);
  CHECK_INT(mw_ffi_pprof_delta_next(d, in, len, &out, &outlen, err, sizeof err), 0);
  CHECK_INT(outlen, 0); /* the first: nothing to be a delta of */
  mw_ffi_pprof_free(p);
  const int64_t v2[3][4] = {{5, 500, 1, 100}, {1, 10, 0, 0}, {1, 1, 1, 1}};
  in = memory_profile(&p, v2, &len);
  CHECK_INT(mw_ffi_pprof_delta_next(d, in, len, &out, &outlen, err, sizeof err), 0);
  mw_ffi_pprof_free(p);
  CHECK(outlen > 0 && out[0] == 0x1f);
  sample_values(out, outlen, got, sizeof got);
  CHECK_STR(got, "15s:f0 3 300 1 100;f2 1 1 1 1"); /* f1 did not change: left out */
  const int64_t v3[3][4] = {{1, 50, 1, 50}, {1, 10, 0, 0}, {1, 1, 1, 1}};
  in = memory_profile(&p, v3, &len); /* f0 went down: a restart, taken as it is */
  CHECK_INT(mw_ffi_pprof_delta_next(d, in, len, &out, &outlen, err, sizeof err), 0);
  mw_ffi_pprof_free(p);
  sample_values(out, outlen, got, sizeof got);
  CHECK_STR(got, "15s:f0 1 50 1 50;f2 0 0 1 1");
  CHECK_INT(
      mw_ffi_pprof_delta_next(d, (const uint8_t *)"\xff\xff", 2, &out, &outlen, err, sizeof err),
      -1);
  CHECK_STR(err, "not a profile.proto message");
  mw_ffi_pprof_delta_free(d);
  /* a profile without the delta types is passed on as it is, the first one too */
  d = mw_ffi_pprof_delta_new("contentions\0count\0delay\0nanoseconds\0", 2);
  in = memory_profile(&p, v1, &len);
  CHECK_INT(mw_ffi_pprof_delta_next(d, in, len, &out, &outlen, err, sizeof err), 0);
  CHECK_INT(outlen, len);
  CHECK(memcmp(out, in, len) == 0);
  mw_ffi_pprof_free(p);
  mw_ffi_pprof_delta_free(d);
}

static void test_pyroscope_push_roundtrip(void) {
  char err[256];
  mw_pyroenc_t *e = mw_ffi_pyroenc_new();
  CHECK_INT(mw_ffi_pyroenc_series(e, "__name__\0process_cpu\0service_name\0x\0", 2,
                                  (const uint8_t *)"prof", 4, "id1"),
            0);
  const uint8_t *body;
  size_t blen;
  CHECK_INT(mw_ffi_pyroenc_finish(e, &body, &blen, err, sizeof err), 0);
  mw_pyrodec_t *d;
  CHECK_INT(mw_ffi_pyrodec_new(body, blen, &d, err, sizeof err), 0);
  CHECK_INT(mw_ffi_pyrodec_series(d), 1);
  const char *n, *v, *id;
  const uint8_t *raw;
  size_t rl;
  CHECK_INT(mw_ffi_pyrodec_label(d, 0, 1, &n, &v), 0);
  CHECK_STR(n, "service_name");
  CHECK_STR(v, "x");
  CHECK_INT(mw_ffi_pyrodec_sample(d, 0, 0, &raw, &rl, &id), 0);
  CHECK_INT(rl, 4);
  CHECK_STR(id, "id1");
  CHECK_INT(mw_ffi_pyrodec_sample(d, 0, 1, &raw, &rl, &id), -1);
  mw_ffi_pyrodec_free(d);
  /* a bad label name is refused, naming it */
  CHECK_INT(mw_ffi_pyroenc_series(e, "a-b\0v\0", 1, (const uint8_t *)"p", 1, ""), 0);
  CHECK_INT(mw_ffi_pyroenc_finish(e, &body, &blen, err, sizeof err), 0);
  CHECK_INT(mw_ffi_pyrodec_new(body, blen, &d, err, sizeof err), -1);
  CHECK_STR(err, "series 0: invalid label name \"a-b\"");
  mw_ffi_pyroenc_free(e);
}

int main(void) {
  MW_RUN(test_builder_roundtrip);
  MW_RUN(test_check_names_the_fault);
  MW_RUN(test_cpu_sampler);
  MW_RUN(test_cpu_sampler_one_hz);
  MW_RUN(test_check_line_without_function);
  MW_RUN(test_delta_profiles);
  MW_RUN(test_pyroscope_push_roundtrip);
  return mw_test_summary();
}
