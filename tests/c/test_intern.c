/* test_intern.c: the string intern table behind scrape caches' metadata. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/intern.h"
#include "test.h"

/* The same bytes give the same string, counted; the last release frees it. */
static void test_shared_and_counted(void) {
  size_t base = mw_intern_count();
  mw_istr_t *a = mw_intern("Seconds the CPUs spent in each mode.", 36);
  mw_istr_t *b = mw_intern("Seconds the CPUs spent in each mode.", 36);
  mw_istr_t *c = mw_intern("Seconds the CPUs spent in each mode", 35);
  CHECK(a && b && c);
  CHECK(a == b);
  CHECK(a != c);
  CHECK_INT(a->refs, 2);
  CHECK_INT(a->s[a->len], 0);
  CHECK(mw_istr_is(a, "Seconds the CPUs spent in each mode.", 36));
  CHECK(!mw_istr_is(a, "Seconds", 7));
  CHECK(!mw_istr_is(NULL, "", 0));
  CHECK_INT(mw_intern_count(), base + 2);
  mw_intern_release(b);
  CHECK_INT(mw_intern_count(), base + 2);
  mw_intern_release(a);
  mw_intern_release(c);
  CHECK_INT(mw_intern_count(), base);
  mw_istr_t *e = mw_intern("", 0);
  CHECK(e && e->len == 0 && mw_istr_is(e, "", 0));
  mw_intern_release(e);
  mw_intern_release(NULL);
  CHECK_INT(mw_intern_count(), base);
}

/* Many strings, half of them released in between: every live one is still
 * found (the deletion keeps every probe run whole), the table holds only the
 * live ones. */
static void test_many_with_deletions(void) {
  enum { N = 20000 };
  size_t base = mw_intern_count(), bytes = mw_intern_bytes();
  mw_istr_t **xs = calloc(N, sizeof *xs);
  char s[32];
  for (int i = 0; i < N; i++) {
    int n = snprintf(s, sizeof s, "family_%d_total", i);
    xs[i] = mw_intern(s, (size_t)n);
    CHECK(xs[i] != NULL);
  }
  for (int i = 0; i < N; i += 2) {
    mw_intern_release(xs[i]);
    xs[i] = NULL;
  }
  CHECK_INT(mw_intern_count(), base + N / 2);
  for (int i = 1; i < N; i += 2) {
    int n = snprintf(s, sizeof s, "family_%d_total", i);
    mw_istr_t *again = mw_intern(s, (size_t)n);
    CHECK(again == xs[i]);
    mw_intern_release(again);
  }
  for (int i = 1; i < N; i += 2)
    mw_intern_release(xs[i]);
  CHECK_INT(mw_intern_count(), base);
  CHECK_INT(mw_intern_bytes(), bytes);
  free(xs);
}

int main(void) {
  MW_RUN(test_shared_and_counted);
  MW_RUN(test_many_with_deletions);
  return mw_test_summary();
}
