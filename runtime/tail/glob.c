/* tail/glob.c: doublestar matching and the directory walk of local.file_match (glob.h). */
#include "tail/glob.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/err.h"
#include "base/grow.h"
#include "tail/tail.h"

/* The end of the bracket class starting at p ('['), or NULL if it is not closed. */
static const char *class_end(const char *p) {
  const char *q = p + 1;
  if (*q == '!' || *q == '^') q++;
  if (*q == ']') q++; /* a ] first is literal */
  for (; *q; q++) {
    if (*q == '\\' && q[1]) {
      q++;
    } else if (*q == ']') {
      return q;
    }
  }
  return NULL;
}

/* The length of the UTF-8 character at s (1 for a stray byte). */
static size_t ulen(const unsigned char *s) {
  if (*s < 0x80) return 1;
  size_t n = (*s >= 0xF0) ? 4 : (*s >= 0xE0) ? 3 : (*s >= 0xC0) ? 2 : 1;
  for (size_t i = 1; i < n; i++)
    if ((s[i] & 0xC0) != 0x80) return 1;
  return n;
}

static uint32_t udec(const unsigned char *s, size_t n) {
  if (n == 1) return s[0];
  uint32_t c = s[0] & (0x7F >> n);
  for (size_t i = 1; i < n; i++)
    c = (c << 6) | (s[i] & 0x3F);
  return c;
}

/* Whether the character c matches the class [p..end]. */
static int class_match(const char *p, const char *end, uint32_t c) {
  const unsigned char *q = (const unsigned char *)p + 1;
  int neg = 0, hit = 0;
  if (*q == '!' || *q == '^') {
    neg = 1;
    q++;
  }
  int first = 1;
  while ((const char *)q < end || (first && *q == ']')) {
    first = 0;
    if (*q == '\\') q++;
    size_t n = ulen(q);
    uint32_t lo = udec(q, n);
    q += n;
    uint32_t hi = lo;
    if (*q == '-' && (const char *)q + 1 < end) {
      q++;
      if (*q == '\\') q++;
      size_t m = ulen(q);
      hi = udec(q, m);
      q += m;
    }
    if (c >= lo && c <= hi) hit = 1;
  }
  return hit != neg;
}

/* Matching without braces (expanded before): p against s. A * is matched by backtracking
 * to the last * only (a later * absorbs what an earlier one could have taken, and no * goes
 * past a /), so a pattern with many * takes time linear in s per *; ** recurses. */
static int match(const char *p, const char *s, int depth) {
  if (depth > 256) return 0;
  const char *star_p = NULL, *star_s = NULL; /* the last *: after it, and where it ends now */
  for (;;) {
    if (!*p) {
      if (!*s) return 1;
      goto mismatch;
    }
    if (p[0] == '*' && p[1] == '*' && (p[2] == '/' || !p[2])) {
      /* ** as a whole component (start of the pattern or after a /) */
      if (!p[2]) return 1;
      const char *rest = p + 3;
      for (const char *t = s;;) {
        if (match(rest, t, depth + 1)) return 1;
        const char *slash = strchr(t, '/');
        if (!slash) break;
        t = slash + 1;
      }
      goto mismatch;
    }
    switch (*p) {
    case '*':
      while (*p == '*')
        p++;
      star_p = p;
      star_s = s;
      continue;
    case '?':
      if (!*s || *s == '/') goto mismatch;
      s += ulen((const unsigned char *)s);
      p++;
      continue;
    case '[': {
      const char *end = class_end(p);
      if (!end || !*s || *s == '/') goto mismatch;
      size_t n = ulen((const unsigned char *)s);
      if (!class_match(p, end, udec((const unsigned char *)s, n))) goto mismatch;
      s += n;
      p = end + 1;
      continue;
    }
    case '\\':
      if (p[1]) p++;
      /* fall through */
    default:
      if (*p != *s) goto mismatch;
      if (*p == '/') star_p = NULL; /* no * before this / can end past it */
      p++;
      s++;
      continue;
    }
  mismatch:
    if (!star_p || !*star_s || *star_s == '/') return 0;
    p = star_p; /* the last * takes one more byte */
    s = ++star_s;
  }
}

/* Expands the braces of pattern into out (a growing list of malloc'd strings). */
typedef struct {
  char **v;
  size_t n, cap;
} strlist_t;

static void strlist_free(strlist_t *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof *l);
}

static int expand(const char *pat, strlist_t *out, char *err, size_t errlen) {
  /* the first { not escaped and not inside a class */
  const char *open = NULL;
  for (const char *p = pat; *p; p++) {
    if (*p == '\\') {
      if (!p[1]) {
        mw_seterr(err, errlen, "a \\ at the end escapes nothing");
        return -1;
      }
      p++;
    } else if (*p == '[') {
      const char *e = class_end(p);
      if (!e) {
        mw_seterr(err, errlen, "unclosed [ at offset %zu", (size_t)(p - pat));
        return -1;
      }
      p = e;
    } else if (*p == '{') {
      open = p;
      break;
    }
  }
  if (!open) {
    if (out->n >= MW_GLOB_MAX_ALTERNATIVES) {
      mw_seterr(err, errlen, "more than %d alternatives after expanding {...}",
                MW_GLOB_MAX_ALTERNATIVES);
      return -1;
    }
    if (mw_grow((void **)&out->v, &out->cap, out->n + 1, sizeof *out->v) != 0) goto oom;
    if (!(out->v[out->n] = strdup(pat))) goto oom;
    out->n++;
    return 0;
  }
  /* its alternatives, split at top-level commas, up to the matching } */
  int level = 0;
  const char *close = NULL;
  for (const char *p = open + 1; *p; p++) {
    if (*p == '\\' && p[1]) {
      p++;
    } else if (*p == '[') {
      const char *e = class_end(p);
      if (e) p = e;
    } else if (*p == '{') {
      level++;
    } else if (*p == '}') {
      if (level == 0) {
        close = p;
        break;
      }
      level--;
    }
  }
  if (!close) {
    mw_seterr(err, errlen, "unclosed { at offset %zu", (size_t)(open - pat));
    return -1;
  }
  size_t pre = (size_t)(open - pat), post = strlen(close + 1);
  const char *a = open + 1;
  level = 0;
  for (const char *p = open + 1; p <= close; p++) {
    if (*p == '\\' && p < close) {
      p++;
      continue;
    }
    if (*p == '[') {
      const char *e = class_end(p);
      if (e && e < close) p = e;
      continue;
    }
    if (*p == '{') level++;
    if (*p == '}' && p < close) level--;
    if ((*p == ',' && level == 0) || p == close) {
      size_t alen = (size_t)(p - a);
      char *s = malloc(pre + alen + post + 1);
      if (!s) goto oom;
      memcpy(s, pat, pre);
      memcpy(s + pre, a, alen);
      memcpy(s + pre + alen, close + 1, post + 1);
      int rc = expand(s, out, err, errlen);
      free(s);
      if (rc != 0) return -1;
      a = p + 1;
    }
  }
  return 0;
oom:
  mw_oom(err, errlen);
  return -1;
}

int mw_glob_check(const char *pattern, char *err, size_t errlen) {
  strlist_t l = {0};
  int rc = expand(pattern, &l, err, errlen);
  strlist_free(&l);
  return rc;
}

int mw_glob_match(const char *pattern, const char *path, char *err, size_t errlen) {
  strlist_t l = {0};
  if (expand(pattern, &l, err, errlen) != 0) {
    strlist_free(&l);
    return -1;
  }
  int hit = 0;
  for (size_t i = 0; i < l.n && !hit; i++)
    hit = match(l.v[i], path, 0);
  strlist_free(&l);
  return hit;
}

/* --- the walk ------------------------------------------------------------ */

typedef struct {
  strlist_t pats;   /* the alternatives of the pattern */
  strlist_t excl;   /* of the exclusion */
  double min_mtime; /* files older are left out (0: none) */
  strlist_t found;
  char *err;
  size_t errlen;
  int full;
} walk_t;

static int has_meta(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strchr("*?[{\\", s[i])) return 1;
  return 0;
}

static int add_found(walk_t *w, const char *path) {
  for (size_t i = 0; i < w->excl.n; i++)
    if (match(w->excl.v[i], path, 0)) return 0;
  for (size_t i = 0; i < w->found.n; i++) /* rare: overlapping alternatives */
    if (w->found.n < 64 && strcmp(w->found.v[i], path) == 0) return 0;
  if (w->found.n >= MW_GLOB_MAX_FILES) {
    w->full = 1;
    return 0;
  }
  if (mw_grow((void **)&w->found.v, &w->found.cap, w->found.n + 1, sizeof(char *)) != 0) return -1;
  if (!(w->found.v[w->found.n] = strdup(path))) return -1;
  w->found.n++;
  return 0;
}

/* A candidate path: kept when it is a regular file (symbolic links followed) matching. */
static int consider(walk_t *w, const char *pat, const char *path) {
  if (!match(pat, path, 0)) return 0;
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  if (w->min_mtime > 0 && (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9 < w->min_mtime)
    return 0;
  return add_found(w, path);
}

/* Walks dir (a path prefix with no meta characters, "" for the current directory) for
 * pattern pat; depth bounds how many components below dir may match (-1: any, under **). */
static int walk(walk_t *w, const char *pat, const char *dir, int depth, int level) {
  if (level > MW_GLOB_MAX_DEPTH || w->full) return 0;
  DIR *d = opendir(*dir ? dir : ".");
  if (!d) return 0; /* an unreadable or missing directory matches nothing */
  struct dirent *e;
  int rc = 0;
  size_t dl = strlen(dir);
  while ((e = readdir(d)) && rc == 0 && !w->full) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    size_t nl = strlen(e->d_name);
    char *path = malloc(dl + nl + 2);
    if (!path) {
      rc = -1;
      break;
    }
    if (dl == 0)
      memcpy(path, e->d_name, nl + 1);
    else if (dir[dl - 1] == '/')
      memcpy(path, dir, dl), memcpy(path + dl, e->d_name, nl + 1);
    else
      memcpy(path, dir, dl), path[dl] = '/', memcpy(path + dl + 1, e->d_name, nl + 1);
    int isdir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st;
      isdir = lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
    }
    if (isdir) {
      if (depth != 1) rc = walk(w, pat, path, depth > 0 ? depth - 1 : depth, level + 1);
    } else {
      rc = consider(w, pat, path);
    }
    free(path);
  }
  closedir(d);
  return rc;
}

static int glob_one(walk_t *w, const char *pat) {
  /* the directory prefix without meta characters: the walk starts there */
  size_t fixed = 0;
  for (const char *p = pat; *p; p++) {
    if (*p == '/') {
      if (has_meta(pat, (size_t)(p - pat))) break;
      fixed = (size_t)(p - pat) + 1;
    }
  }
  if (!has_meta(pat, strlen(pat))) { /* a plain path */
    const char *unesc = pat;
    return consider(w, unesc, pat);
  }
  char *dir = strndup(pat, fixed);
  if (!dir) return -1;
  int depth = 0; /* components below dir, or -1 under ** */
  for (const char *p = pat + fixed; *p; p++)
    if (*p == '/') depth++;
  depth++;
  if (strstr(pat + fixed, "**")) depth = -1;
  if (fixed > 1) dir[fixed - 1] = 0; /* "/var/log/" -> "/var/log"; "/" stays */
  int rc = walk(w, pat, dir, depth, 0);
  free(dir);
  return rc;
}

static int cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int mw_ffi_glob(const char *pattern, const char *exclude, double min_mtime, char **out,
                size_t *out_len, size_t *count, char *err, size_t errlen) {
  walk_t w = {0};
  w.min_mtime = min_mtime;
  w.err = err;
  w.errlen = errlen;
  *out = NULL;
  *out_len = 0;
  *count = 0;
  int rc = -1;
  if (expand(pattern, &w.pats, err, errlen) != 0) {
    mw_adderr(err, errlen, " in __path__ %s", pattern);
    goto done;
  }
  if (exclude && *exclude && expand(exclude, &w.excl, err, errlen) != 0) {
    mw_adderr(err, errlen, " in __path_exclude__ %s", exclude);
    goto done;
  }
  for (size_t i = 0; i < w.pats.n; i++)
    if (glob_one(&w, w.pats.v[i]) != 0) {
      mw_oom(err, errlen);
      goto done;
    }
  if (w.found.n > 1) qsort(w.found.v, w.found.n, sizeof(char *), cmp);
  size_t total = 0, n = 0;
  for (size_t i = 0; i < w.found.n; i++)
    if (i == 0 || strcmp(w.found.v[i], w.found.v[i - 1]) != 0) total += strlen(w.found.v[i]) + 1;
  if (total) {
    char *buf = malloc(total), *q = buf;
    if (!buf) {
      mw_oom(err, errlen);
      goto done;
    }
    for (size_t i = 0; i < w.found.n; i++) {
      if (i > 0 && strcmp(w.found.v[i], w.found.v[i - 1]) == 0) continue;
      size_t l = strlen(w.found.v[i]) + 1;
      memcpy(q, w.found.v[i], l);
      q += l;
      n++;
    }
    *out = buf;
    *out_len = total;
  }
  *count = n;
  rc = w.full ? 1 : 0;
done:
  strlist_free(&w.pats);
  strlist_free(&w.excl);
  strlist_free(&w.found);
  return rc;
}

int mw_ffi_glob_match(const char *pattern, const char *path, char *err, size_t errlen) {
  return mw_glob_match(pattern, path, err, errlen);
}
