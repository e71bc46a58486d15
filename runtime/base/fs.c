/* base/fs.c: the file-system calls Lua needs (contracts in base/fs.h),
 * so that nothing on the event loop shells out to mkdir(1) or find(1). */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fs.h"
#include "base/grow.h"

int mw_ffi_fs_mkdir_p(const char *path, char *err, size_t errlen) {
  size_t n = strlen(path);
  if (n == 0) {
    mw_seterr(err, errlen, "empty directory path");
    return -1;
  }
  char *p = malloc(n + 1);
  if (!p) {
    mw_oom(err, errlen);
    return -1;
  }
  memcpy(p, path, n + 1);
  int rc = -1;
  /* each prefix that ends before a '/', then the whole path */
  for (size_t i = 1; i <= n; i++) {
    if (i < n && p[i] != '/') continue;
    if (i < n && p[i - 1] == '/') continue; /* "a//b" */
    char c = p[i];
    p[i] = '\0';
    if (mkdir(p, 0777) != 0) {
      struct stat st;
      if (errno != EEXIST) {
        mw_seterr(err, errlen, "%s: %s", p, strerror(errno));
        goto done;
      }
      if (stat(p, &st) != 0) {
        mw_seterr(err, errlen, "%s: %s", p, strerror(errno));
        goto done;
      }
      if (!S_ISDIR(st.st_mode)) {
        mw_seterr(err, errlen, "%s: not a directory", p);
        goto done;
      }
    }
    p[i] = c;
  }
  rc = 0;
done:
  free(p);
  return rc;
}

typedef struct {
  char **paths;
  size_t n, cap;
} list_t;

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* Adds the matching files under root/rel (rel "" at the top). -1: out of memory. */
static int walk(const char *root, const char *rel, const char *suffix, list_t *l, int top,
                char *err, size_t errlen) {
  size_t rl = strlen(root), ll = strlen(rel);
  char *dir = malloc(rl + ll + 2);
  if (!dir) return -1;
  memcpy(dir, root, rl);
  dir[rl] = '/';
  memcpy(dir + rl + 1, rel, ll + 1);
  DIR *d = opendir(ll ? dir : root);
  free(dir);
  if (!d) {
    if (top) mw_seterr(err, errlen, "%s: %s", root, strerror(errno));
    return top ? -2 : 0;
  }
  int rc = 0;
  struct dirent *e;
  while (rc == 0 && (e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    size_t nl = strlen(e->d_name);
    char *sub = malloc(ll + nl + 2);
    if (!sub) {
      rc = -1;
      break;
    }
    if (ll) {
      memcpy(sub, rel, ll);
      sub[ll] = '/';
      memcpy(sub + ll + 1, e->d_name, nl + 1);
    } else {
      memcpy(sub, e->d_name, nl + 1);
    }
    int is_dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) { /* some file systems do not say: ask, without following */
      char *full = malloc(rl + strlen(sub) + 2);
      struct stat st;
      if (full) {
        memcpy(full, root, rl);
        full[rl] = '/';
        strcpy(full + rl + 1, sub);
        is_dir = lstat(full, &st) == 0 && S_ISDIR(st.st_mode);
        free(full);
      }
    }
    if (is_dir) {
      rc = walk(root, sub, suffix, l, 0, err, errlen);
      free(sub);
    } else if (ends_with(e->d_name, suffix)) {
      if (mw_grow((void **)&l->paths, &l->cap, l->n + 1, sizeof *l->paths) != 0) {
        free(sub);
        rc = -1;
      } else {
        l->paths[l->n++] = sub;
      }
    } else {
      free(sub);
    }
  }
  closedir(d);
  return rc;
}

int mw_ffi_fs_find(const char *dir, const char *suffix, char **out, size_t *out_len, char *err,
                   size_t errlen) {
  list_t l = {0};
  *out = NULL;
  *out_len = 0;
  int rc = walk(dir, "", suffix, &l, 1, err, errlen);
  if (rc == 0 && l.n) {
    qsort(l.paths, l.n, sizeof *l.paths, cmp_str);
    size_t total = 0;
    for (size_t i = 0; i < l.n; i++)
      total += strlen(l.paths[i]) + 1;
    char *buf = malloc(total);
    if (!buf) {
      rc = -1;
    } else {
      size_t o = 0;
      for (size_t i = 0; i < l.n; i++) {
        size_t k = strlen(l.paths[i]) + 1;
        memcpy(buf + o, l.paths[i], k);
        o += k;
      }
      *out = buf;
      *out_len = total;
    }
  }
  if (rc == -1) mw_oom(err, errlen);
  for (size_t i = 0; i < l.n; i++)
    free(l.paths[i]);
  free(l.paths);
  return rc == 0 ? 0 : -1;
}

void mw_ffi_fs_free(char *p) { free(p); }

int mw_ffi_fs_getcwd(char *buf, size_t len, char *err, size_t errlen) {
  if (!getcwd(buf, len)) {
    mw_seterr(err, errlen, "the working directory: %s", strerror(errno));
    return -1;
  }
  return 0;
}
