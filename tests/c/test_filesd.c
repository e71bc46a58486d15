/* test_filesd.c: discovery.file's C helpers (discovery/filesd.h). Directory watches: events
 * name the changed path; a directory removed and made again is watched anew when added again
 * (the kernel drops a removed directory's watch). The YAML reader: a key repeated in one
 * mapping is refused, as Prometheus's strict YAML does. */
#include <stdio.h>
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

/* yaml_to_json of s: its JSON (static) or "ERR: " and the error. */
static const char *yaml(const char *s) {
  static char buf[1024];
  char err[256], *out;
  size_t len;
  if (mw_ffi_filesd_yaml_to_json(s, strlen(s), 0, &out, &len, err, sizeof err) != 0) {
    snprintf(buf, sizeof buf, "ERR: %s", err);
    return buf;
  }
  snprintf(buf, sizeof buf, "%s", out);
  mw_ffi_filesd_free(out);
  return buf;
}

/* Prometheus reads file_sd YAML strictly: a key twice in one mapping is refused (yaml.v2's
 * "key already set in map"); the same key in different mappings is fine. */
static void test_yaml_duplicate_keys(void) {
  CHECK_STR(yaml("- targets: [a:1]\n  labels: {job: x}\n- targets: [b:2]\n  labels: {job: y}\n"),
            "[{\"targets\":[\"a:1\"],\"labels\":{\"job\":\"x\"}},"
            "{\"targets\":[\"b:2\"],\"labels\":{\"job\":\"y\"}}]");
  CHECK_STR(yaml("- targets: [a:1]\n  labels:\n    job: x\n    env: p\n    job: y\n"),
            "ERR: line 5, column 5: key \"job\" already set in map");
  CHECK_STR(yaml("- labels: {a: b}\n  targets: [a:1]\n  labels: {c: d}\n"),
            "ERR: line 3, column 3: key \"labels\" already set in map");
  CHECK_STR(yaml("{a: {a: {a: 1}}}"), "{\"a\":{\"a\":{\"a\":\"1\"}}}");
  /* "a" and 'a' are one key; a key spelled differently is another */
  CHECK_STR(yaml("{a: 1, 'a': 2}"), "ERR: line 1, column 8: key \"a\" already set in map");
  CHECK_STR(yaml("{a: 1, A: 2}"), "{\"a\":\"1\",\"A\":\"2\"}");
}

/* Many keys: the set grows (and stays exact). */
static void test_yaml_many_keys(void) {
  size_t cap = 200000, len = 0;
  char *s = malloc(cap);
  CHECK(s != NULL);
  len += (size_t)snprintf(s + len, cap - len, "{");
  for (int i = 0; i < 5000; i++)
    len += (size_t)snprintf(s + len, cap - len, "%sk%d: v", i ? ", " : "", i);
  snprintf(s + len, cap - len, "}");
  char err[256], *out;
  size_t n;
  int rc = mw_ffi_filesd_yaml_to_json(s, strlen(s), 0, &out, &n, err, sizeof err);
  if (rc == 0) mw_ffi_filesd_free(out);
  snprintf(s + len - 1, cap - len + 1, ", k4999: w}");
  int rc2 = mw_ffi_filesd_yaml_to_json(s, strlen(s), 0, &out, &n, err, sizeof err);
  if (rc2 == 0) mw_ffi_filesd_free(out);
  free(s);
  CHECK_INT(rc, 0);
  CHECK_INT(rc2, -1);
  CHECK(strstr(err, "key \"k4999\" already set in map") != NULL);
}

int main(void) {
  MW_RUN(test_watch_again_after_removal);
  MW_RUN(test_add_missing_dir);
  MW_RUN(test_yaml_duplicate_keys);
  MW_RUN(test_yaml_many_keys);
  return mw_test_summary();
}
