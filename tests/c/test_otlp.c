/* test_otlp.c: OTLP traces encoding (runtime/otlp/otlp.c) of span batches
 * (runtime/model/spanbatch.c): OTLP/JSON numbers as protojson writes them; a refused span
 * taken back out of its batch. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/spanbatch.h"
#include "otlp/otlp.h"
#include "test.h"

/* The OTLP/JSON of one span with a double attribute "d" of value v. */
static char *json_of_double(double v) {
  mw_spanbatch_t *b = mw_ffi_spanbatch_new();
  uint8_t tid[16], sid[8];
  memset(tid, 1, sizeof tid);
  memset(sid, 2, sizeof sid);
  char err[256];
  uint8_t *out = NULL;
  size_t len = 0;
  char *s = NULL;
  if (mw_ffi_spanbatch_add(b, tid, sid, NULL, "s", 1, 1, 1, 2, 0, NULL, 0) == 0 &&
      mw_ffi_spanbatch_attr_double(b, "d", 1, v) == 0 &&
      mw_ffi_otlp_encode_traces(b, "moonwatch", "v", 1, &out, &len, err, sizeof err) == 0) {
    s = malloc(len + 1);
    memcpy(s, out, len);
    s[len] = 0;
  }
  mw_ffi_otlp_free(out);
  mw_ffi_spanbatch_free(b);
  return s;
}

static void test_json_doubles(void) {
  static const struct {
    double v;
    const char *want;
  } cases[] = {
      {1.5, "\"doubleValue\":1.5}"},
      {1.5e308, NULL}, /* finite: a number, not "Infinity" */
      {-DBL_MAX, "\"doubleValue\":-1.7976931348623157e+308}"},
      {INFINITY, "\"doubleValue\":\"Infinity\"}"},
      {-INFINITY, "\"doubleValue\":\"-Infinity\"}"},
      {NAN, "\"doubleValue\":\"NaN\"}"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char want[64];
    if (cases[i].want)
      snprintf(want, sizeof want, "%s", cases[i].want);
    else
      snprintf(want, sizeof want, "\"doubleValue\":%.17g}", cases[i].v);
    char *s = json_of_double(cases[i].v);
    CHECK(s != NULL);
    if (!strstr(s, want)) {
      MW_FAIL("%.17g: %s not in the JSON %s", cases[i].v, want, s); /* (s leaks on failure) */
    }
    free(s);
  }
}

/* pop takes the last span and its attributes back; what follows is whole */
static void test_spanbatch_pop(void) {
  mw_spanbatch_t *b = mw_ffi_spanbatch_new();
  uint8_t tid[16], sid[8];
  memset(tid, 1, sizeof tid);
  memset(sid, 2, sizeof sid);
  CHECK_INT(mw_ffi_spanbatch_resource(b, "service.name", 12, "t", 1), 0);
  CHECK_INT(mw_ffi_spanbatch_add(b, tid, sid, NULL, "kept", 4, 1, 1, 2, 0, NULL, 0), 0);
  CHECK_INT(mw_ffi_spanbatch_attr_int(b, "a", 1, 1), 0);
  CHECK_INT(mw_ffi_spanbatch_add(b, tid, sid, NULL, "gone", 4, 1, 1, 2, 2, "err", 3), 0);
  CHECK_INT(mw_ffi_spanbatch_attr_str(b, "k", 1, "v", 1), 0);
  mw_ffi_spanbatch_pop(b);
  CHECK_INT(mw_ffi_spanbatch_len(b), 1);
  CHECK_INT(mw_ffi_spanbatch_add(b, tid, sid, NULL, "next", 4, 1, 1, 2, 0, NULL, 0), 0);
  CHECK_INT(mw_ffi_spanbatch_attr_bool(b, "b", 1, 1), 0);
  char err[256];
  uint8_t *pb = NULL;
  size_t len = 0;
  char *json = NULL;
  size_t jlen = 0;
  CHECK_INT(mw_ffi_otlp_encode_traces(b, "moonwatch", "v", 0, &pb, &len, err, sizeof err), 0);
  CHECK_INT(mw_ffi_otlp_decode_traces(pb, len, &json, &jlen, err, sizeof err), 0);
  int ok = strstr(json, "\"name\":\"kept\"") && strstr(json, "\"attributes\":{\"a\":1}") &&
           strstr(json, "\"name\":\"next\"") && strstr(json, "\"attributes\":{\"b\":true}") &&
           !strstr(json, "gone") && strstr(json, "\"spans\":2}");
  if (!ok) MW_FAIL("decoded: %s", json);
  mw_ffi_otlp_free(json);
  mw_ffi_otlp_free(pb);
  mw_ffi_spanbatch_pop(b);
  mw_ffi_spanbatch_pop(b);
  mw_ffi_spanbatch_pop(b); /* empty: nothing */
  CHECK_INT(mw_ffi_spanbatch_len(b), 0);
  CHECK_INT(mw_ffi_spanbatch_resource_len(b), 1);
  mw_ffi_spanbatch_free(b);
}

int main(void) {
  MW_RUN(test_json_doubles);
  MW_RUN(test_spanbatch_pop);
  return mw_test_summary();
}
