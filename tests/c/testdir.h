/* testdir.h: scratch directories for the C tests that write files (the WAL,
 * the record log): mw_test_tmpdir makes one under /tmp (the last 8 stay
 * valid), mw_test_rm_rf removes one with everything in it. */
#ifndef MW_TESTDIR_H
#define MW_TESTDIR_H
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static inline int mw_test_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(p);
}

static inline void mw_test_rm_rf(const char *dir) {
  nftw(dir, mw_test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A new directory /tmp/mw_<name>_test.XXXXXX, or NULL. */
static inline char *mw_test_tmpdir(const char *name) {
  static char buf[8][96];
  static int n;
  char *d = buf[n++ % 8];
  snprintf(d, sizeof buf[0], "/tmp/mw_%s_test.XXXXXX", name);
  return mkdtemp(d);
}

#endif
