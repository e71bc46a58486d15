/* Fuzz target: the JSON value extractor of runtime/logproc/jsonx.c.
 *
 * Input: the document, as it is (any bytes), read with a fixed set of paths (fields,
 * nested fields, array indexes, a repeated key). Properties:
 * - a run reads only the document (ASan) and gives 0 or -1;
 * - after 0, every value found lies inside the document, a string's span between its
 *   quotes, and a string with escapes unescapes (to at most its length);
 * - a document accepted once is accepted again with the same values, and also with
 *   white space around it;
 * - the unescaper never writes more than its input's length, valid or not. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ffi.h"

#define FAIL(...)                                                                                  \
  do {                                                                                             \
    fprintf(stderr, "fuzz_jsonx: " __VA_ARGS__);                                                   \
    fputc('\n', stderr);                                                                           \
    abort();                                                                                       \
  } while (0)

#define NPATHS 6

static mw_ffi_jsonx_t *extractor(void) {
  static mw_ffi_jsonx_t *x;
  if (x) return x;
  mw_ffi_jsonx_step_t steps[] = {
      {"level", 5, 0}, {"req", 3, 0}, {"path", 4, 0}, {"tags", 4, 0}, {NULL, 0, 1},
      {"a", 1, 0},     {"b", 1, 0},   {"c", 1, 0},    {"", 0, 0},     {"\xc3\xa9", 2, 0},
  };
  uint32_t lens[NPATHS] = {1, 2, 2, 3, 1, 1};
  char err[128];
  x = mw_ffi_jsonx_new(steps, lens, NPATHS, err, sizeof err);
  if (!x) FAIL("new: %s", err);
  return x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mw_ffi_jsonx_t *x = extractor();
  mw_ffi_jsonx_value_t out[NPATHS], again[NPATHS];
  const char *doc = (const char *)data;
  char *buf = malloc(size + 1);
  if (!buf) return 0;
  if (mw_ffi_jsonx_unescape(doc, size, buf) > (int64_t)size) FAIL("unescape grew its input");
  int rc = mw_ffi_jsonx_run(x, doc, size, out);
  if (rc != 0 && rc != -1) FAIL("run gave %d", rc);
  if (rc == 0) {
    for (int i = 0; i < NPATHS; i++) {
      mw_ffi_jsonx_value_t *v = &out[i];
      if (v->type < MW_JSONX_MISSING || v->type > MW_JSONX_ARRAY)
        FAIL("path %d: type %d", i, v->type);
      if (v->type == MW_JSONX_MISSING) continue;
      if (v->start < 0 || v->len < 0 || (size_t)(v->start + v->len) > size)
        FAIL("path %d: span %lld+%lld outside %zu bytes", i, (long long)v->start, (long long)v->len,
             size);
      if (v->type == MW_JSONX_STRING) {
        if (v->start < 1 || doc[v->start - 1] != '"' || doc[v->start + v->len] != '"')
          FAIL("path %d: a string span not between quotes", i);
        int64_t n = mw_ffi_jsonx_unescape(doc + v->start, (size_t)v->len, buf);
        if (n < 0 || n > v->len)
          FAIL("path %d: a valid string does not unescape (%lld)", i, (long long)n);
        if (!v->escaped && n != v->len) FAIL("path %d: no escapes, yet another length", i);
      }
    }
    if (mw_ffi_jsonx_run(x, doc, size, again) != 0 || memcmp(out, again, sizeof out) != 0)
      FAIL("a second run differs");
    char *padded = malloc(size + 2);
    if (padded) {
      padded[0] = ' ';
      memcpy(padded + 1, data, size);
      padded[size + 1] = '\n';
      if (mw_ffi_jsonx_run(x, padded, size + 2, again) != 0) FAIL("white space around it refused");
      for (int i = 0; i < NPATHS; i++)
        if (again[i].type != out[i].type ||
            (out[i].type != MW_JSONX_MISSING && again[i].start != out[i].start + 1))
          FAIL("path %d: another value with white space around", i);
      free(padded);
    }
  }
  free(buf);
  return 0;
}
