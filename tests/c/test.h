/* test.h: the C unit tests' harness. A test file defines test functions,
 * lists them in main with MW_RUN, and returns mw_test_summary(). */
#ifndef MW_TEST_H
#define MW_TEST_H
#include <math.h>
#include <stdio.h>
#include <string.h>

static int mw_test_failed, mw_test_passed, mw_test_current_failed;

#define MW_FAIL(...)                                                                               \
  do {                                                                                             \
    fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                                \
    fprintf(stderr, __VA_ARGS__);                                                                  \
    fputc('\n', stderr);                                                                           \
    mw_test_current_failed = 1;                                                                    \
    return;                                                                                        \
  } while (0)

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) MW_FAIL("CHECK(%s) failed", #cond);                                               \
  } while (0)

#define CHECK_INT(a, b)                                                                            \
  do {                                                                                             \
    long long mw_a_ = (long long)(a), mw_b_ = (long long)(b);                                      \
    if (mw_a_ != mw_b_) MW_FAIL("%s == %lld, expected %s == %lld", #a, mw_a_, #b, mw_b_);          \
  } while (0)

#define CHECK_DBL(a, b)                                                                            \
  do {                                                                                             \
    double mw_a_ = (double)(a), mw_b_ = (double)(b);                                               \
    if (!(mw_a_ == mw_b_ || (isnan(mw_a_) && isnan(mw_b_))))                                       \
      MW_FAIL("%s == %.17g, expected %.17g", #a, mw_a_, mw_b_);                                    \
  } while (0)

#define CHECK_STR(a, b)                                                                            \
  do {                                                                                             \
    const char *mw_a_ = (a), *mw_b_ = (b);                                                         \
    if (!mw_a_ || !mw_b_ || strcmp(mw_a_, mw_b_) != 0)                                             \
      MW_FAIL("%s == \"%s\", expected \"%s\"", #a, mw_a_ ? mw_a_ : "(null)",                       \
              mw_b_ ? mw_b_ : "(null)");                                                           \
  } while (0)

/* a: anything with .len and .data (ProtobufCBinaryData), b: a C string. */
#define CHECK_BYTES(a, b)                                                                          \
  do {                                                                                             \
    size_t mw_n_ = (a).len;                                                                        \
    const char *mw_p_ = (const char *)(a).data, *mw_b_ = (b);                                      \
    if (mw_n_ != strlen(mw_b_) || (mw_n_ && memcmp(mw_p_, mw_b_, mw_n_) != 0))                     \
      MW_FAIL("%s == \"%.*s\", expected \"%s\"", #a, (int)mw_n_, mw_n_ ? mw_p_ : "", mw_b_);       \
  } while (0)

#define MW_RUN(fn)                                                                                 \
  do {                                                                                             \
    mw_test_current_failed = 0;                                                                    \
    fn();                                                                                          \
    if (mw_test_current_failed) {                                                                  \
      mw_test_failed++;                                                                            \
      fprintf(stderr, "FAIL %s\n", #fn);                                                           \
    } else {                                                                                       \
      mw_test_passed++;                                                                            \
    }                                                                                              \
  } while (0)

static inline int mw_test_summary(void) {
  printf("%d passed, %d failed\n", mw_test_passed, mw_test_failed);
  return mw_test_failed ? 1 : 0;
}

#endif
