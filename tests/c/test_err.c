/* test_err.c: the one error writer (base/err.h): messages into a caller's
 * buffer, truncated and always terminated, with prefixes and suffixes. */
#include <string.h>

#include "base/err.h"
#include "test.h"

static void test_seterr_truncates(void) {
  char err[8];
  mw_seterr(err, sizeof err, "line %d: %s", 12, "bad");
  CHECK_STR(err, "line 12");
  mw_seterr(NULL, 0, "ignored %d", 1); /* the caller wants no message */
  mw_seterr(err, 0, "ignored");
  CHECK_STR(err, "line 12");
}

/* A prefix then the message, as the exposition parser ("line N: ") and the
 * relabel compiler ("rule N: field: ") write them; a suffix, as the RE2
 * checker's " (at offset N)". */
static void test_adderr_appends(void) {
  char err[64];
  mw_seterr(err, sizeof err, "line %d: ", 3);
  mw_adderr(err, sizeof err, "unexpected %s", "\"}\"");
  CHECK_STR(err, "line 3: unexpected \"}\"");
  mw_adderr(err, sizeof err, " (at offset %d)", 7);
  CHECK_STR(err, "line 3: unexpected \"}\" (at offset 7)");
}

/* A message that already fills the buffer gets nothing more, and the suffix
 * of a short buffer is cut, never written past the end. */
static void test_adderr_full(void) {
  char err[10];
  mw_seterr(err, sizeof err, "0123456789abc");
  CHECK_STR(err, "012345678");
  mw_adderr(err, sizeof err, " (at offset 1)");
  CHECK_STR(err, "012345678");
  mw_seterr(err, sizeof err, "abc");
  mw_adderr(err, sizeof err, " (at offset 1)");
  CHECK_STR(err, "abc (at o");
  mw_adderr(NULL, 0, "x");
}

int main(void) {
  MW_RUN(test_seterr_truncates);
  MW_RUN(test_adderr_appends);
  MW_RUN(test_adderr_full);
  return mw_test_summary();
}
