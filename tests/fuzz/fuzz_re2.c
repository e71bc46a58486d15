/* Fuzz target: the RE2 (Go regexp/syntax) checker and translator of
 * runtime/base/re2.c, and the PCRE2 compile behind it.
 *
 * Input: the pattern, as it is (any bytes). Properties:
 * - mw_re2_translate either succeeds (a NUL-terminated translation, its length
 *   given) or fails with out NULL and a message ending "(at offset N)", N at
 *   most the pattern's length;
 * - mw_re2_compile refuses what the translator refuses, with the same
 *   message, and reports a PCRE2 refusal "(near offset N)" within the pattern;
 * - mw_ffi_regex_check agrees with the unanchored compile;
 * - a compiled regex (anchored or not, JIT or interpreter) matches the pattern
 *   itself and a few fixed subjects without failing other than "no match". */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/re2.h"
#include "ffi.h"

#define FAIL(...)                                                                                  \
  do {                                                                                             \
    fprintf(stderr, "fuzz_re2: " __VA_ARGS__);                                                     \
    fputc('\n', stderr);                                                                           \
    abort();                                                                                       \
  } while (0)

/* The N of a message ending in "(<word> offset N)"; -1 when it does not. */
static long offset_of(const char *msg, const char *word) {
  char tail[32];
  snprintf(tail, sizeof tail, "(%s offset ", word);
  const char *p = strstr(msg, tail);
  if (!p) return -1;
  char *end;
  long n = strtol(p + strlen(tail), &end, 10);
  return strcmp(end, ")") == 0 ? n : -1;
}

static void match_some(pcre2_code *code, const uint8_t *re, size_t len) {
  static const char *subjects[] = {"", "a", "abc", "foo bar\n", "\xc3\xa9t\xc3\xa9", "\xff\xfe"};
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
  if (!md) return;
  for (size_t i = 0; i <= sizeof subjects / sizeof subjects[0]; i++) {
    const char *s = i ? subjects[i - 1] : (const char *)re;
    size_t n = i ? strlen(s) : len;
    int rc = pcre2_match(code, (PCRE2_SPTR)s, n, 0, 0, md, NULL);
    /* invalid UTF is matched (PCRE2_MATCH_INVALID_UTF); limits may be hit */
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH && rc != PCRE2_ERROR_MATCHLIMIT &&
        rc != PCRE2_ERROR_DEPTHLIMIT && rc != PCRE2_ERROR_HEAPLIMIT &&
        rc != PCRE2_ERROR_JIT_STACKLIMIT && rc != PCRE2_ERROR_NOMEMORY)
      FAIL("pcre2_match returned %d", rc);
  }
  pcre2_match_data_free(md);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  const char *re = (const char *)data;
  char err[256] = "", cerr[256] = "", ferr[256] = "";
  char *out = NULL;
  size_t out_len = 0;
  int trc = mw_re2_translate(re, size, &out, &out_len, err, sizeof err);
  if (trc == 0) {
    if (!out) FAIL("translate: success without a translation");
    if (out[out_len] != '\0') FAIL("translate: translation not NUL-terminated");
  } else {
    if (trc != -1 || out) FAIL("translate: failure %d left a translation", trc);
    long off = offset_of(err, "at");
    if (off < 0 || (size_t)off > size) FAIL("translate: bad message \"%s\"", err);
  }
  free(out);

  for (int anchored = 0; anchored <= 1; anchored++) {
    int jit = -1;
    pcre2_code *code = mw_re2_compile(re, size, anchored, &jit, cerr, sizeof cerr);
    if (jit != 0 && jit != 1) FAIL("compile: jit flag %d", jit);
    if (trc != 0) {
      if (code) FAIL("compile accepted what translate refused: %s", err);
      if (strcmp(cerr, err) != 0) FAIL("compile said \"%s\", translate \"%s\"", cerr, err);
      continue;
    }
    if (!code) {
      long off = offset_of(cerr, "near");
      if (off < 0 || (size_t)off > size) FAIL("compile: bad message \"%s\"", cerr);
    } else {
      match_some(code, data, size);
    }
    if (!anchored) {
      int frc = mw_ffi_regex_check(re, size, ferr, sizeof ferr);
      if ((frc == 0) != (code != NULL)) FAIL("regex_check %d disagrees with compile", frc);
    }
    pcre2_code_free(code);
  }
  return 0;
}
