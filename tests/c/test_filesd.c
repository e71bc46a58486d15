/* test_filesd.c: discovery.file's directory watches (discovery/filesd.h): events name the
 * changed path; a directory removed and made again is watched anew when added again (the
 * kernel drops a removed directory's watch); the set keeps one entry per live watch. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "discovery/filesd.h"
#include "test.h"
#include "testdir.h"

/* Whether the NUL-separated list buf[0..len) holds path. */
static int has(const char *buf, size_t len, const char *path) {
  for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
    if (!strcmp(buf + i, path)) return 1;
  return 0;
}

/* Drains w until path shows up (a few tries: events are queued at once, read at once). */
static int saw(mw_fswatch_t *w, const char *path) {
  for (int i = 0; i < 50; i++) {
    char *out;
    size_t len;
    if (mw_ffi_fswatch_drain(w, &out, &len) != 0) return 0;
    int found = out && has(out, len, path);
    mw_ffi_fs_free(out);
    if (found) return 1;
    usleep(10000);
  }
  return 0;
}

static void touch(const char *path) {
  FILE *f = fopen(path, "w");
  if (f) fclose(f);
}

static void test_watch_again_after_removal(void) {
  char err[256], dir[128], file[160];
  char *tmp = mw_test_tmpdir("filesd");
  CHECK(tmp != NULL);
  snprintf(dir, sizeof dir, "%s/sd", tmp);
  CHECK_INT(mkdir(dir, 0755), 0);
  mw_fswatch_t *w = mw_ffi_fswatch_new(err, sizeof err);
  CHECK(w != NULL);
  CHECK_INT(mw_ffi_fswatch_add(w, dir, err, sizeof err), 0);
  CHECK_INT(mw_ffi_fswatch_add(w, dir, err, sizeof err), 0); /* again: nothing */
  snprintf(file, sizeof file, "%s/a.json", dir);
  touch(file);
  int ok = saw(w, file);
  /* removed: an event on the directory itself */
  unlink(file);
  rmdir(dir);
  ok = ok && saw(w, dir);
  /* made again and added again: its files are seen again */
  mkdir(dir, 0755);
  ok = ok && mw_ffi_fswatch_add(w, dir, err, sizeof err) == 0;
  snprintf(file, sizeof file, "%s/b.json", dir);
  touch(file);
  ok = ok && saw(w, file);
  mw_ffi_fswatch_free(w);
  mw_test_rm_rf(tmp);
  CHECK(ok);
}

static void test_add_missing_dir(void) {
  char err[256];
  mw_fswatch_t *w = mw_ffi_fswatch_new(err, sizeof err);
  CHECK(w != NULL);
  int rc = mw_ffi_fswatch_add(w, "/nonexistent/mw-filesd", err, sizeof err);
  mw_ffi_fswatch_free(w);
  CHECK_INT(rc, -1);
  CHECK(strstr(err, "/nonexistent/mw-filesd: ") == err);
}

int main(void) {
  MW_RUN(test_watch_again_after_removal);
  MW_RUN(test_add_missing_dir);
  return mw_test_summary();
}
