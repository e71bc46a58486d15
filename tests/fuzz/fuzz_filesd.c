/* Fuzz target: discovery.file's YAML reader (runtime/discovery/filesd.c).
 *
 * Input: any bytes, read as a YAML document. Properties:
 * - the reader reads only its input (ASan), gives 0 or -1, and after -1 an error that names
 *   a line and a column;
 * - after 0, the output is NUL-terminated at its length, within the bound, and valid JSON
 *   (checked with the JSON validator of runtime/logproc/jsonx.c, wrapped in an object);
 * - with a bound smaller than a success's output, the reader fails instead of truncating. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ffi.h"

#define FAIL(...)                                                                                  \
  do {                                                                                             \
    fprintf(stderr, "fuzz_filesd: " __VA_ARGS__);                                                  \
    fputc('\n', stderr);                                                                           \
    abort();                                                                                       \
  } while (0)

#define MAX_OUT (1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static mw_ffi_jsonx_t *x;
  char err[256];
  if (!x) {
    x = mw_ffi_jsonx_new(NULL, NULL, 0, err, sizeof err);
    if (!x) FAIL("jsonx: %s", err);
  }
  char *out;
  size_t len;
  if (mw_ffi_filesd_yaml_to_json((const char *)data, size, MAX_OUT, &out, &len, err, sizeof err) !=
      0) {
    if (out || len) FAIL("output after a failure");
    if (strncmp(err, "line ", 5) != 0 || !strstr(err, ", column "))
      FAIL("error without a position: %s", err);
    return 0;
  }
  if (len >= MAX_OUT || out[len] != '\0') FAIL("output not within its bound or not terminated");
  char *wrapped = malloc(len + 8);
  if (!wrapped) FAIL("out of memory");
  memcpy(wrapped, "{\"v\":", 5);
  memcpy(wrapped + 5, out, len);
  wrapped[len + 5] = '}';
  mw_ffi_jsonx_value_t unused[1];
  if (mw_ffi_jsonx_run(x, wrapped, len + 6, unused) != 0) FAIL("not JSON: %.*s", (int)len, out);
  free(wrapped);
  if (len > 1) {
    char *again;
    size_t len2;
    if (mw_ffi_filesd_yaml_to_json((const char *)data, size, len, &again, &len2, err, sizeof err) ==
        0)
      FAIL("a bound of %zu bytes let %zu bytes through", len, len2);
  }
  mw_ffi_filesd_free(out);
  return 0;
}
