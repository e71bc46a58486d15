/* tail/tail.c: the file tailer of loki.source.file (tail.h): files, reads, rotation and
 * truncation, decoders (iconv, zlib, libbz2), inotify, and the positions file. */
#include "tail/tail.h"

#include <bzlib.h>
#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>

#include "base/err.h"
#include "base/grow.h"
#include "model/logbatch.h"
#include "tail/split.h"

/* Bytes before a buffer given to feed() where the unfinished sequence of the last one goes. */
#define HEADROOM 16

enum { ST_ACTIVE, ST_MISSING, ST_DONE, ST_WAITING, ST_ERROR, ST_DELAYED };
static const char *const STATE_NAMES[] = {"active",  "missing", "done",
                                          "waiting", "error",   "delayed"};

/* A position of the positions file: (path, labels) -> offset (lines for compressed files). */
typedef struct {
  char *path, *labels;
  int64_t off;
  int attached; /* a file of the current targets holds it */
  int dead;     /* forgotten (the file was deleted): not written */
} mw_tailpos_t;

typedef struct {
  char *path, *dir, *poskey;
  uint8_t *labels;
  size_t labels_len;
  int fd, state, dirty, seen;
  int check; /* at its end, look at the path too (rotation, deletion): an event other than a
                write named it, a poll tick, or it is new */
  int from;  /* where a file not open yet starts when it opens (file_open's from_pos): its
                stored position (or the end) until it was opened once, then 0 */
  int final; /* not opened again (a compressed file that failed to decompress) */
  dev_t dev;
  ino_t ino;
  int64_t read_off;   /* raw bytes read from fd */
  int64_t line_start; /* raw offset where the unfinished line starts (plain files) */
  int64_t size;
  size_t pos; /* index into t->pos */
  uint32_t stream_gen, stream;
  mw_linesplit_t split;
  uint64_t read_lines, read_bytes;
  /* encoding */
  iconv_t cd;
  char raw[16]; /* at most HEADROOM */
  size_t raw_len;
  /* compressed files */
  z_stream *z;
  bz_stream *bz;
  int64_t skip; /* lines already sent before a restart */
  int64_t lines;
  double not_before;
  char err[160];
} mw_tailfile_t;

struct mw_tailer {
  mw_tail_opts_t o;
  char *enc, *positions;
  int ino_fd;
  struct {
    int wd;
    char *dir;
    int refs;
  } * dirs;
  size_t ndirs, dirs_cap;
  mw_tailfile_t **files;
  size_t nfiles, files_cap;
  uint32_t
      *index; /* path hash -> file index + 1 (0: empty), open addressing, index_cap a power of 2 */
  size_t index_cap;
  mw_tailpos_t *pos;
  size_t npos, pos_cap;
  uint32_t *pidx; /* path hash -> position index + 1 (0: empty), as index; NULL: scans */
  size_t pidx_cap;
  int pos_dirty;
  uint32_t gen, open;
  size_t rr;
  char *buf;  /* MW_TAIL_CHUNK bytes read */
  char *conv; /* decoded bytes (encodings, decompression) */
  size_t conv_cap;
  mw_tail_stats_t st;
  /* during a read */
  mw_logbatch_t *b;
  int64_t now_ns;
  int oom;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int mw_ffi_tail_check_encoding(const char *name, char *err, size_t errlen) {
  if (!name || !*name) return 0;
  iconv_t cd = iconv_open("UTF-8", name);
  if (cd == (iconv_t)-1) {
    mw_seterr(err, errlen, "unknown encoding %s", name);
    return -1;
  }
  iconv_close(cd);
  return 0;
}

/* --- positions ------------------------------------------------------------ */

/* The hash of path s in the positions index. */
static uint64_t path_hash(const char *s) { return XXH3_64bits(s, strlen(s)); }

/* The index of positions by path (tens of thousands of files: a scan per file added made
 * a sync quadratic). Rebuilt when it is half full or the positions moved; without memory
 * for it, pos_find scans. */
static void pos_reindex(mw_tailer_t *t) {
  size_t cap = 16;
  while (cap < t->npos * 2)
    cap *= 2;
  if (cap != t->pidx_cap) {
    uint32_t *x = realloc(t->pidx, cap * sizeof *x);
    if (!x) {
      free(t->pidx);
      t->pidx = NULL;
      t->pidx_cap = 0;
      return;
    }
    t->pidx = x;
    t->pidx_cap = cap;
  }
  memset(t->pidx, 0, cap * sizeof *t->pidx);
  for (size_t i = 0; i < t->npos; i++) {
    size_t k = path_hash(t->pos[i].path) & (cap - 1);
    while (t->pidx[k])
      k = (k + 1) & (cap - 1);
    t->pidx[k] = (uint32_t)i + 1;
  }
}

static mw_tailpos_t *pos_find(mw_tailer_t *t, const char *path, const char *labels) {
  if (!t->pidx) {
    for (size_t i = 0; i < t->npos; i++)
      if (!t->pos[i].dead && !strcmp(t->pos[i].path, path) && !strcmp(t->pos[i].labels, labels))
        return &t->pos[i];
    return NULL;
  }
  for (size_t k = path_hash(path) & (t->pidx_cap - 1); t->pidx[k];
       k = (k + 1) & (t->pidx_cap - 1)) {
    mw_tailpos_t *p = &t->pos[t->pidx[k] - 1];
    if (!p->dead && !strcmp(p->path, path) && !strcmp(p->labels, labels)) return p;
  }
  return NULL;
}

static int pos_add(mw_tailer_t *t, const char *path, const char *labels, int64_t off) {
  if (mw_grow((void **)&t->pos, &t->pos_cap, t->npos + 1, sizeof *t->pos) != 0) return -1;
  mw_tailpos_t *p = &t->pos[t->npos];
  memset(p, 0, sizeof *p);
  p->path = strdup(path);
  p->labels = strdup(labels);
  if (!p->path || !p->labels) {
    free(p->path);
    free(p->labels);
    return -1;
  }
  p->off = off;
  t->npos++;
  if (t->pidx_cap < t->npos * 2) {
    pos_reindex(t);
  } else {
    size_t k = path_hash(path) & (t->pidx_cap - 1);
    while (t->pidx[k])
      k = (k + 1) & (t->pidx_cap - 1);
    t->pidx[k] = (uint32_t)t->npos;
  }
  return 0;
}

/* A YAML scalar at s (single-quoted, double-quoted or plain) into a new string. */
static char *scalar(const char *s) {
  while (*s == ' ')
    s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
    n--;
  char *out = malloc(n + 1), *q = out;
  if (!out) return NULL;
  if (n >= 2 && s[0] == '\'' && s[n - 1] == '\'') {
    for (size_t i = 1; i + 1 < n; i++) {
      *q++ = s[i];
      if (s[i] == '\'' && s[i + 1] == '\'') i++;
    }
  } else if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
    for (size_t i = 1; i + 1 < n; i++) {
      if (s[i] == '\\' && i + 2 < n) {
        i++;
        unsigned v;
        int used;
        if (s[i] == 'x' && i + 3 < n && sscanf(s + i + 1, "%2x%n", &v, &used) == 1 && used == 2) {
          *q++ = (char)v; /* put_quoted's escape of a control byte */
          i += 2;
          continue;
        }
        *q++ = s[i] == 'n'   ? '\n'
               : s[i] == 't' ? '\t'
               : s[i] == 'r' ? '\r'
               : s[i] == '0' ? '\0'
               : s[i] == 'e' ? '\033'
                             : s[i];
      } else {
        *q++ = s[i];
      }
    }
  } else {
    memcpy(q, s, n);
    q += n;
  }
  *q = 0;
  return out;
}

/* Whether the raw YAML scalar s (after its key) is quoted and its closing quote is not in
 * it yet: it goes on on the next line. */
static int quoted_open(const char *s) {
  while (*s == ' ')
    s++;
  char q = *s;
  if (q != '\'' && q != '"') return 0;
  for (const char *p = s + 1; *p; p++) {
    if (q == '"' && *p == '\\') {
      if (!p[1]) return 1;
      p++;
    } else if (*p == q) {
      if (q == '\'' && p[1] == '\'') {
        p++;
        continue;
      }
      return 0;
    }
  }
  return 1;
}

/* Appends the next line of a folded scalar (yaml.v2, which Alloy writes its positions
 * with, breaks quoted and plain scalars longer than 80 columns at a space): the break is a
 * space, or nothing after a \ in a double-quoted one. The new string, or NULL (acc freed). */
static char *fold(char *acc, const char *next) {
  size_t n = strlen(acc);
  while (n && (acc[n - 1] == '\n' || acc[n - 1] == '\r' || acc[n - 1] == ' '))
    n--;
  const char *a = acc;
  while (*a == ' ')
    a++;
  int joined = 0;
  if (*a == '"') {
    size_t k = 0;
    while (k < n && acc[n - 1 - k] == '\\')
      k++;
    if (k % 2) { /* an escaped line break */
      n--;
      joined = 1;
    }
  }
  while (*next == ' ' || *next == '\t')
    next++;
  size_t m = strlen(next);
  char *out = realloc(acc, n + m + 2);
  if (!out) {
    free(acc);
    return NULL;
  }
  if (!joined) out[n++] = ' ';
  memcpy(out + n, next, m + 1);
  return out;
}

/* Reads a positions file: Alloy's (keys of path and labels, folded or not) or promtail's
 * (path: "offset", loaded with labels ""). A missing file is an empty one. 0, or -1 with
 * err. */
static int pos_load(mw_tailer_t *t, const char *file, char *err, size_t errlen) {
  FILE *f = fopen(file, "r");
  if (!f) {
    if (errno == ENOENT) return 0;
    mw_seterr(err, errlen, "positions file %s: %s", file, strerror(errno));
    return -1;
  }
  char *line = NULL; /* a line of any length: labels can be long */
  size_t linecap = 0;
  char *path = NULL, *labels = NULL; /* raw scalars, read at the ": offset" line */
  char **last = NULL;                /* the one the next line may go on */
  int rc = 0, lineno = 0;
  while (getline(&line, &linecap, f) >= 0) {
    lineno++;
    char *s = line;
    while (*s == ' ')
      s++;
    size_t indent = (size_t)(s - line);
    int key =
        !strncmp(s, "? path:", 7) || !strncmp(s, "labels:", 7) || (s[0] == ':' && s[1] == ' ');
    if (last && (quoted_open(*last) ||
                 (indent >= 6 && !key && *s && *s != '\n' && **last != '\'' && **last != '"'))) {
      if (!(*last = fold(*last, s))) {
        mw_oom(err, errlen);
        rc = -1;
        break;
      }
      continue;
    }
    last = NULL;
    if (!*s || *s == '\n' || *s == '#' || !strncmp(s, "positions:", 10)) continue;
    if (!strncmp(s, "? path:", 7) || !strncmp(s, "labels:", 7)) {
      last = s[0] == '?' ? &path : &labels;
      const char *v = s + 7;
      while (*v == ' ')
        v++;
      free(*last);
      if (!(*last = strdup(v))) {
        mw_oom(err, errlen);
        rc = -1;
        break;
      }
    } else if (s[0] == ':' && s[1] == ' ') {
      char *v = scalar(s + 1), *p = path ? scalar(path) : NULL, *l = labels ? scalar(labels) : NULL;
      char *end = NULL;
      long long off = v ? strtoll(v, &end, 10) : -1;
      if (p && v && (l || !labels) && end != v && !*end && off >= 0) {
        if (pos_add(t, p, l ? l : "{}", off) != 0) rc = -1;
      }
      free(v);
      free(p);
      free(l);
      free(path);
      free(labels);
      path = labels = NULL;
    } else {
      /* promtail: <path>: "<offset>" (the last ": " splits; paths may hold ':') */
      char *colon = strstr(s, ": ");
      char *last = NULL;
      while (colon) {
        last = colon;
        colon = strstr(colon + 2, ": ");
      }
      if (!last) {
        mw_seterr(err, errlen, "positions file %s:%d: not a position", file, lineno);
        rc = -1;
        break;
      }
      *last = 0;
      char *p = scalar(s), *v = scalar(last + 1), *end = NULL;
      long long off = v ? strtoll(v, &end, 10) : -1;
      if (p && v && end != v && !*end && off >= 0 && pos_add(t, p, "", off) != 0) rc = -1;
      free(p);
      free(v);
    }
  }
  free(path);
  free(labels);
  free(line);
  fclose(f);
  return rc;
}

/* A YAML scalar: single-quoted, or double-quoted with escapes when it holds a control
 * character (a newline in a file name would break the line-based reading). */
static void put_quoted(FILE *f, const char *s) {
  const char *c = s;
  while (*c && (unsigned char)*c >= 0x20 && *c != 0x7f)
    c++;
  if (*c) {
    fputc('"', f);
    for (; *s; s++) {
      unsigned char b = (unsigned char)*s;
      if (b == '"' || b == '\\')
        fprintf(f, "\\%c", b);
      else if (b < 0x20 || b == 0x7f)
        fprintf(f, "\\x%02x", b);
      else
        fputc(b, f);
    }
    fputc('"', f);
    return;
  }
  fputc('\'', f);
  for (; *s; s++) {
    if (*s == '\'') fputc('\'', f);
    fputc(*s, f);
  }
  fputc('\'', f);
}

/* Drops the forgotten positions no file refers to (files come and go: the array would
 * only grow), when they are most of it. */
static void pos_compact(mw_tailer_t *t) {
  size_t dead = 0;
  for (size_t i = 0; i < t->npos; i++)
    dead += t->pos[i].dead;
  if (dead < 64 || dead * 2 < t->npos) return;
  size_t *map = malloc(t->npos * sizeof *map);
  if (!map) return;
  for (size_t i = 0; i < t->npos; i++)
    map[i] = SIZE_MAX;
  for (size_t i = 0; i < t->nfiles; i++)
    map[t->files[i]->pos] = 0; /* referred to: kept */
  size_t j = 0;
  for (size_t i = 0; i < t->npos; i++) {
    if (t->pos[i].dead && map[i] == SIZE_MAX) {
      free(t->pos[i].path);
      free(t->pos[i].labels);
      continue;
    }
    t->pos[j] = t->pos[i];
    map[i] = j++;
  }
  t->npos = j;
  for (size_t i = 0; i < t->nfiles; i++)
    t->files[i]->pos = map[t->files[i]->pos];
  free(map);
  pos_reindex(t);
}

int mw_ffi_tail_save(mw_tailer_t *t, int force, char *err, size_t errlen) {
  if (!t->pos_dirty && !force) return 0;
  size_t n = strlen(t->positions);
  char *tmp = malloc(n + 5);
  if (!tmp) {
    mw_oom(err, errlen);
    return -1;
  }
  memcpy(tmp, t->positions, n);
  memcpy(tmp + n, "-new", 5);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    mw_seterr(err, errlen, "positions file %s: %s", tmp, strerror(errno));
    free(tmp);
    return -1;
  }
  fputs("positions:\n", f);
  for (size_t i = 0; i < t->npos; i++) {
    mw_tailpos_t *p = &t->pos[i];
    if (p->dead) continue;
    if (!p->attached) { /* kept for a target that may come back, while its file exists */
      struct stat st;
      if (stat(p->path, &st) != 0 && errno == ENOENT) {
        p->dead = 1;
        continue;
      }
    }
    fputs("  ? path: ", f);
    put_quoted(f, p->path);
    fputs("\n    labels: ", f);
    put_quoted(f, p->labels);
    fprintf(f, "\n  : \"%lld\"\n", (long long)p->off);
  }
  int bad = ferror(f);
  if (fflush(f) != 0 || fsync(fileno(f)) != 0) bad = 1;
  if (fclose(f) != 0) bad = 1;
  if (bad || rename(tmp, t->positions) != 0) {
    mw_seterr(err, errlen, "positions file %s: %s", t->positions, strerror(errno ? errno : EIO));
    unlink(tmp);
    free(tmp);
    return -1;
  }
  free(tmp);
  t->pos_dirty = 0;
  pos_compact(t); /* after the save marked the positions of files gone */
  return 0;
}

/* --- the tailer ----------------------------------------------------------- */

mw_tailer_t *mw_ffi_tail_new(const mw_tail_opts_t *o, char *err, size_t errlen) {
  if (mw_ffi_tail_check_encoding(o->encoding, err, errlen) != 0) return NULL;
  if (o->max_line_size == 0 || o->max_line_size > MW_TAIL_MAX_LINE_LIMIT) {
    mw_seterr(err, errlen, "max_line_size must be between 1 and %u bytes", MW_TAIL_MAX_LINE_LIMIT);
    return NULL;
  }
  mw_tailer_t *t = calloc(1, sizeof *t);
  if (!t) goto oom;
  t->o = *o;
  t->ino_fd = -1;
  t->enc = strdup(o->encoding ? o->encoding : "");
  t->positions = strdup(o->positions ? o->positions : "positions.yml");
  t->buf = malloc(MW_TAIL_CHUNK + HEADROOM);
  if (!t->enc || !t->positions || !t->buf) goto oom;
  t->buf += HEADROOM;
  t->o.encoding = t->enc;
  t->o.positions = t->positions;
  t->o.legacy_positions = NULL;
  if (!t->o.max_open_files) t->o.max_open_files = 1024;
  struct stat st;
  int fresh = stat(t->positions, &st) != 0;
  if (pos_load(t, t->positions, err, errlen) != 0) goto fail;
  if (fresh && o->legacy_positions && *o->legacy_positions) {
    if (pos_load(t, o->legacy_positions, err, errlen) != 0) goto fail;
    t->pos_dirty = 1;
  }
  if (!o->poll) t->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC); /* -1: polling */
  return t;
oom:
  mw_oom(err, errlen);
fail:
  mw_ffi_tail_free(t);
  return NULL;
}

static void file_close(mw_tailer_t *t, mw_tailfile_t *f) {
  if (f->fd >= 0) {
    close(f->fd);
    f->fd = -1;
    t->open--;
  }
  if (f->z) {
    inflateEnd(f->z);
    free(f->z);
    f->z = NULL;
  }
  if (f->bz) {
    BZ2_bzDecompressEnd(f->bz);
    free(f->bz);
    f->bz = NULL;
  }
  f->raw_len = 0;
  mw_linesplit_reset(&f->split);
}

static void dir_unref(mw_tailer_t *t, const char *dir) {
  for (size_t i = 0; i < t->ndirs; i++) {
    if (strcmp(t->dirs[i].dir, dir) != 0) continue;
    if (--t->dirs[i].refs > 0) return;
    if (t->ino_fd >= 0) inotify_rm_watch(t->ino_fd, t->dirs[i].wd);
    free(t->dirs[i].dir);
    t->dirs[i] = t->dirs[--t->ndirs];
    return;
  }
}

static void file_free(mw_tailer_t *t, mw_tailfile_t *f) {
  t->st.lines_truncated += f->split.truncated;
  file_close(t, f);
  if (f->cd) iconv_close(f->cd);
  if (f->dir) dir_unref(t, f->dir);
  mw_linesplit_free(&f->split);
  free(f->path);
  free(f->dir);
  free(f->poskey);
  free(f->labels);
  free(f);
}

void mw_ffi_tail_free(mw_tailer_t *t) {
  if (!t) return;
  for (size_t i = 0; i < t->nfiles; i++)
    file_free(t, t->files[i]);
  free(t->files);
  for (size_t i = 0; i < t->ndirs; i++)
    free(t->dirs[i].dir);
  free(t->dirs);
  for (size_t i = 0; i < t->npos; i++) {
    free(t->pos[i].path);
    free(t->pos[i].labels);
  }
  free(t->pos);
  free(t->pidx);
  free(t->index);
  if (t->ino_fd >= 0) close(t->ino_fd);
  free(t->enc);
  free(t->positions);
  free(t->buf ? t->buf - HEADROOM : NULL);
  free(t->conv);
  free(t);
}

int mw_ffi_tail_fd(const mw_tailer_t *t) { return t->ino_fd; }

static void set_err(mw_tailfile_t *f, const char *what, int e) {
  snprintf(f->err, sizeof f->err, "%s: %s", what, strerror(e));
}

/* Sets up the decoders of a freshly opened file. 0 or -1 (out of memory). */
static int decoders(mw_tailer_t *t, mw_tailfile_t *f) {
  if (t->o.decompress == MW_TAIL_GZ || t->o.decompress == MW_TAIL_Z) {
    f->z = calloc(1, sizeof *f->z);
    if (!f->z ||
        inflateInit2(f->z, t->o.decompress == MW_TAIL_GZ ? 16 + MAX_WBITS : MAX_WBITS) != Z_OK)
      return -1;
  } else if (t->o.decompress == MW_TAIL_BZ2) {
    f->bz = calloc(1, sizeof *f->bz);
    if (!f->bz || BZ2_bzDecompressInit(f->bz, 0, 0) != BZ_OK) return -1;
  }
  if (*t->enc && !f->cd) {
    f->cd = iconv_open("UTF-8", t->enc);
    if (f->cd == (iconv_t)-1) {
      f->cd = NULL;
      return -1;
    }
  }
  if (f->cd) iconv(f->cd, NULL, NULL, NULL, NULL);
  return 0;
}

/* Opens f's path; from_pos: the stored position (or the end with tail_from_end, or 0).
 * 0 opened, -1 not (state and error set). */
static int file_open(mw_tailer_t *t, mw_tailfile_t *f, int from_pos) {
  f->from = from_pos; /* kept for a later try, when this one fails */
  if (t->open >= t->o.max_open_files) {
    f->state = ST_WAITING;
    snprintf(f->err, sizeof f->err, "more than max_open_files (%u) files open",
             t->o.max_open_files);
    return -1;
  }
  struct stat pre; /* not opened when it is not a regular file: opening a FIFO would let its
                      writer go on as if we were its reader */
  if (stat(f->path, &pre) == 0 && !S_ISREG(pre.st_mode)) {
    f->state = ST_ERROR;
    snprintf(f->err, sizeof f->err, "not a regular file");
    t->st.open_errors++;
    f->from = 0;
    return -1;
  }
  int fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    f->state = errno == ENOENT ? ST_MISSING : ST_ERROR;
    if (errno == ENOENT) f->from = 0; /* a file that appears later is new */
    if (errno != ENOENT) {
      set_err(f, "open", errno);
      t->st.open_errors++;
    }
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    f->state = ST_ERROR;
    snprintf(f->err, sizeof f->err, "not a regular file");
    t->st.open_errors++;
    f->from = 0; /* a regular file that takes its place later is new */
    return -1;
  }
  t->open++;
  f->from = 0;
  f->fd = fd;
  f->dev = st.st_dev;
  f->ino = st.st_ino;
  f->size = st.st_size;
  f->err[0] = 0;
  f->state = ST_ACTIVE;
  f->read_off = f->line_start = 0;
  f->lines = f->skip = 0;
  mw_linesplit_reset(&f->split);
  if (decoders(t, f) != 0) {
    snprintf(f->err, sizeof f->err, "setting up the decoder: out of memory");
    file_close(t, f);
    f->state = ST_ERROR;
    return -1;
  }
  mw_tailpos_t *p = &t->pos[f->pos];
  if (p->dead) { /* re-created after a deletion */
    p->dead = 0;
    p->off = 0;
  }
  if (t->o.decompress) {
    if (from_pos) f->skip = p->off;
    f->not_before = now_s() + t->o.initial_delay;
    if (t->o.initial_delay > 0) f->state = ST_DELAYED;
    return 0;
  }
  int64_t start = 0;
  if (from_pos == 1 && p->off <= st.st_size) {
    start = p->off;
  } else if (from_pos == 2) {
    start = st.st_size;
  }
  if (start > 0 && lseek(fd, start, SEEK_SET) < 0) start = 0;
  f->read_off = f->line_start = start;
  if (p->off != start) {
    p->off = start;
    t->pos_dirty = 1;
  }
  return 0;
}

static int watch_dir(mw_tailer_t *t, const char *dir) {
  for (size_t i = 0; i < t->ndirs; i++)
    if (!strcmp(t->dirs[i].dir, dir)) {
      t->dirs[i].refs++;
      return 0;
    }
  if (mw_grow((void **)&t->dirs, &t->dirs_cap, t->ndirs + 1, sizeof *t->dirs) != 0) return -1;
  char *d = strdup(dir);
  if (!d) return -1;
  int wd = -1;
  if (t->ino_fd >= 0)
    wd = inotify_add_watch(t->ino_fd, dir,
                           IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                               IN_ATTRIB | IN_CLOSE_WRITE);
  t->dirs[t->ndirs].wd = wd; /* -1 (a missing directory): found by the periodic check */
  t->dirs[t->ndirs].dir = d;
  t->dirs[t->ndirs].refs = 1;
  t->ndirs++;
  return 0;
}

void mw_ffi_tail_sync_begin(mw_tailer_t *t) {
  for (size_t i = 0; i < t->nfiles; i++)
    t->files[i]->seen = 0;
}

static void rebuild_index(mw_tailer_t *t);

/* The file of path and poskey, or NULL: through the index (a scan per target made a sync
 * of many files quadratic), or a scan when it has no memory. */
static mw_tailfile_t *file_find(mw_tailer_t *t, const char *path, const char *poskey) {
  if (!t->index) {
    for (size_t i = 0; i < t->nfiles; i++)
      if (!strcmp(t->files[i]->path, path) && !strcmp(t->files[i]->poskey, poskey))
        return t->files[i];
    return NULL;
  }
  for (size_t k = path_hash(path) & (t->index_cap - 1); t->index[k];
       k = (k + 1) & (t->index_cap - 1)) {
    mw_tailfile_t *f = t->files[t->index[k] - 1];
    if (!strcmp(f->path, path) && !strcmp(f->poskey, poskey)) return f;
  }
  return NULL;
}

int mw_ffi_tail_add(mw_tailer_t *t, const char *path, const char *labels, size_t len,
                    const char *poskey, char *err, size_t errlen) {
  {
    mw_tailfile_t *f = file_find(t, path, poskey);
    if (f) {
      if (f->labels_len != len || memcmp(f->labels, labels, len) != 0) {
        uint8_t *l = malloc(len ? len : 1);
        if (!l) goto oom;
        memcpy(l, labels, len);
        free(f->labels);
        f->labels = l;
        f->labels_len = len;
        f->stream_gen = 0;
      }
      f->seen = 1;
      return 0;
    }
  }
  if (mw_grow((void **)&t->files, &t->files_cap, t->nfiles + 1, sizeof *t->files) != 0) goto oom;
  mw_tailfile_t *f = calloc(1, sizeof *f);
  if (!f) goto oom;
  f->fd = -1;
  f->path = strdup(path);
  f->poskey = strdup(poskey);
  f->labels = malloc(len ? len : 1);
  const char *slash = strrchr(path, '/');
  f->dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
  if (!f->path || !f->poskey || !f->labels || !f->dir) {
    file_free(t, f);
    goto oom;
  }
  memcpy(f->labels, labels, len);
  f->labels_len = len;
  mw_linesplit_init(&f->split, t->o.max_line_size);
  if (watch_dir(t, f->dir) != 0) {
    free(f->dir);
    f->dir = NULL;
    file_free(t, f);
    goto oom;
  }
  mw_tailpos_t *p = pos_find(t, path, poskey);
  int from = 1;
  if (!p && (p = pos_find(t, path, ""))) { /* a converted legacy position */
    free(p->labels);
    p->labels = strdup(poskey);
    if (!p->labels) p->labels = strdup("");
    t->pos_dirty = 1;
  }
  if (!p) {
    if (pos_add(t, path, poskey, 0) != 0) {
      file_free(t, f);
      goto oom;
    }
    p = &t->pos[t->npos - 1];
    from = t->o.tail_from_end ? 2 : 0;
    t->pos_dirty = 1;
  }
  p->attached = 1;
  f->pos = (size_t)(p - t->pos);
  f->seen = 1;
  f->dirty = f->check = 1;
  t->files[t->nfiles++] = f;
  if (t->index_cap < t->nfiles * 2) {
    rebuild_index(t);
  } else {
    size_t k = path_hash(path) & (t->index_cap - 1);
    while (t->index[k])
      k = (k + 1) & (t->index_cap - 1);
    t->index[k] = (uint32_t)t->nfiles;
  }
  file_open(t, f, from);
  return 0;
oom:
  mw_oom(err, errlen);
  return -1;
}

/* The index of files by path, for inotify events (rebuilt when the files change; without
 * memory the events fall back to a scan). */
static void rebuild_index(mw_tailer_t *t) {
  size_t cap = 16;
  while (cap < t->nfiles * 2)
    cap *= 2;
  if (cap != t->index_cap) {
    uint32_t *x = realloc(t->index, cap * sizeof *x);
    if (!x) {
      free(t->index);
      t->index = NULL;
      t->index_cap = 0;
      return;
    }
    t->index = x;
    t->index_cap = cap;
  }
  memset(t->index, 0, cap * sizeof *t->index);
  for (size_t i = 0; i < t->nfiles; i++) {
    size_t k = path_hash(t->files[i]->path) & (cap - 1);
    while (t->index[k])
      k = (k + 1) & (cap - 1);
    t->index[k] = (uint32_t)i + 1;
  }
}

/* Marks the files whose path is full (the same path with other labels too). */
static void mark_path(mw_tailer_t *t, const char *full, int check) {
  if (!t->index) { /* no memory for the index: a scan */
    for (size_t i = 0; i < t->nfiles; i++)
      if (!strcmp(t->files[i]->path, full)) {
        t->files[i]->dirty = 1;
        t->files[i]->check |= check;
      }
    return;
  }
  size_t k = path_hash(full) & (t->index_cap - 1);
  while (t->index[k]) {
    mw_tailfile_t *f = t->files[t->index[k] - 1];
    if (!strcmp(f->path, full)) {
      f->dirty = 1;
      f->check |= check;
    }
    k = (k + 1) & (t->index_cap - 1);
  }
}

/* Marks the files at dir/name (an inotify event's); check: not only a write. */
static void mark(mw_tailer_t *t, const char *dir, const char *name, int check) {
  size_t dl = strlen(dir), nl = strlen(name);
  char full[4096];
  if (dl + nl + 2 > sizeof full) {
    mw_ffi_tail_check_all(t);
    return;
  }
  if (!strcmp(dir, ".")) mark_path(t, name, check); /* a relative path without a directory */
  memcpy(full, dir, dl);
  size_t fl = dl;
  if (!dl || dir[dl - 1] != '/') full[fl++] = '/';
  memcpy(full + fl, name, nl + 1);
  mark_path(t, full, check);
}

void mw_ffi_tail_sync_end(mw_tailer_t *t) {
  size_t j = 0;
  for (size_t i = 0; i < t->nfiles; i++) {
    mw_tailfile_t *f = t->files[i];
    if (f->seen) {
      t->files[j++] = f;
      continue;
    }
    t->pos[f->pos].attached = 0; /* kept while the file exists (mw_ffi_tail_save) */
    t->pos_dirty = 1;
    file_free(t, f);
  }
  t->nfiles = j;
  if (t->rr >= j) t->rr = 0;
  rebuild_index(t);
}

void mw_ffi_tail_check_all(mw_tailer_t *t) {
  for (size_t i = 0; i < t->nfiles; i++)
    t->files[i]->dirty = t->files[i]->check = 1;
}

/* Drains inotify: the files named by events are marked; an overflow marks them all. */
static void drain_inotify(mw_tailer_t *t) {
  if (t->ino_fd < 0) return;
  char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
  for (;;) {
    ssize_t n = read(t->ino_fd, buf, sizeof buf);
    if (n <= 0) return;
    for (char *p = buf; p < buf + n;) {
      struct inotify_event *ev = (struct inotify_event *)p;
      p += sizeof *ev + ev->len;
      if (ev->mask & IN_Q_OVERFLOW) {
        mw_ffi_tail_check_all(t);
        continue;
      }
      const char *dir = NULL;
      for (size_t i = 0; i < t->ndirs; i++)
        if (t->dirs[i].wd == ev->wd) dir = t->dirs[i].dir;
      if (!dir || !ev->len) continue;
      mark(t, dir, ev->name, (ev->mask & ~(uint32_t)(IN_MODIFY | IN_CLOSE_WRITE)) != 0);
    }
  }
}

/* --- reading --------------------------------------------------------------- */

typedef struct {
  mw_tailer_t *t;
  mw_tailfile_t *f;
  int64_t base; /* raw offset of the chunk (plain files) */
} emit_ctx_t;

static int on_line(void *ud, const char *line, size_t len, size_t consumed) {
  emit_ctx_t *c = ud;
  mw_tailer_t *t = c->t;
  mw_tailfile_t *f = c->f;
  if (c->base >= 0 && consumed) f->line_start = c->base + (int64_t)consumed;
  if (t->o.decompress) {
    f->lines++;
    if (f->skip > 0) {
      f->skip--;
      return 0;
    }
  }
  if (f->stream_gen != t->gen) {
    int64_t s = mw_logbatch_stream(t->b, f->labels, f->labels_len);
    if (s < 0) {
      t->oom = 1;
      return -1;
    }
    f->stream = (uint32_t)s;
    f->stream_gen = t->gen;
  }
  if (mw_logbatch_add(t->b, f->stream, t->now_ns, line, len, NULL, 0) != 0) {
    t->oom = 1;
    return -1;
  }
  f->read_lines++;
  return 0;
}

/* Feeds decoded (UTF-8) bytes: through iconv when the file has an encoding. */
static int feed(mw_tailer_t *t, mw_tailfile_t *f, const char *p, size_t n, int64_t base) {
  emit_ctx_t c = {t, f, base};
  if (!f->cd) return mw_linesplit_feed(&f->split, p, n, on_line, &c);
  c.base = -1;
  size_t need = (n + HEADROOM) * 4 + 64;
  if (need > t->conv_cap) {
    char *q = realloc(t->conv, need);
    if (!q) return -1;
    t->conv = q;
    t->conv_cap = need;
  }
  /* the bytes kept from the last chunk (an unfinished sequence) go first: p has
   * HEADROOM bytes before it for them */
  if (f->raw_len) {
    p -= f->raw_len;
    memcpy((char *)p, f->raw, f->raw_len);
    n += f->raw_len;
    f->raw_len = 0;
  }
  char *out = t->conv;
  size_t outleft = t->conv_cap;
  const char *in = p;
  size_t inleft = n;
  while (inleft) {
    char *ip = (char *)in;
    size_t r = iconv(f->cd, &ip, &inleft, &out, &outleft);
    in = ip;
    if (r != (size_t)-1) break;
    if (errno == EILSEQ) {
      t->st.encoding_errors++;
      memcpy(out, "\xEF\xBF\xBD", 3);
      out += 3;
      outleft -= 3;
      in++;
      inleft--;
    } else if (errno == EINVAL) {
      size_t keep = inleft < sizeof f->raw ? inleft : sizeof f->raw;
      memcpy(f->raw, in, keep);
      f->raw_len = keep;
      inleft = 0;
    } else {
      break; /* E2BIG cannot happen: 4 bytes out per byte in */
    }
  }
  size_t outn = (size_t)(out - t->conv);
  const char *o = t->conv;
  if (f->read_off == (int64_t)n && outn >= 3 && !memcmp(o, "\xEF\xBB\xBF", 3)) { /* a BOM */
    o += 3;
    outn -= 3;
  }
  return mw_linesplit_feed(&f->split, o, outn, on_line, &c);
}

/* Decompresses a raw chunk and feeds it. at_end: the compressed file ended. */
static int feed_compressed(mw_tailer_t *t, mw_tailfile_t *f, const char *p, size_t n) {
  if (t->conv_cap < MW_TAIL_CHUNK * 4) {
    char *q = realloc(t->conv, MW_TAIL_CHUNK * 4);
    if (!q) return -1;
    t->conv = q;
    t->conv_cap = MW_TAIL_CHUNK * 4;
  }
  /* decoded bytes go through feed() (iconv when asked) from a second buffer */
  char *dec = t->conv + MW_TAIL_CHUNK * 2; /* half of conv; feed() with iconv needs its own */
  size_t deccap = MW_TAIL_CHUNK * 2;
  if (f->cd) {
    dec = malloc(MW_TAIL_CHUNK + HEADROOM);
    deccap = MW_TAIL_CHUNK;
    if (!dec) return -1;
    dec += HEADROOM;
  }
  int rc = 0;
  if (f->z) {
    f->z->next_in = (Bytef *)p;
    f->z->avail_in = (uInt)n;
    while (f->z->avail_in > 0) {
      f->z->next_out = (Bytef *)dec;
      f->z->avail_out = (uInt)deccap;
      int zr = inflate(f->z, Z_NO_FLUSH);
      size_t got = deccap - f->z->avail_out;
      if (got && feed(t, f, dec, got, -1) != 0) {
        rc = -1;
        break;
      }
      if (zr == Z_STREAM_END) {
        if (f->z->avail_in == 0) break;
        inflateReset(f->z); /* another gzip member */
      } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
        snprintf(f->err, sizeof f->err, "decompressing: %s",
                 f->z->msg ? f->z->msg : "corrupt data");
        rc = -2;
        break;
      } else if (zr == Z_BUF_ERROR && got == 0) {
        break;
      }
    }
  } else if (f->bz) {
    f->bz->next_in = (char *)p;
    f->bz->avail_in = (unsigned)n;
    while (f->bz->avail_in > 0) {
      f->bz->next_out = dec;
      f->bz->avail_out = (unsigned)deccap;
      int br = BZ2_bzDecompress(f->bz);
      size_t got = deccap - f->bz->avail_out;
      if (got && feed(t, f, dec, got, -1) != 0) {
        rc = -1;
        break;
      }
      if (br == BZ_STREAM_END) {
        if (f->bz->avail_in == 0) break;
        /* concatenated bzip2 streams */
        unsigned left = f->bz->avail_in;
        char *next = f->bz->next_in;
        BZ2_bzDecompressEnd(f->bz);
        memset(f->bz, 0, sizeof *f->bz);
        if (BZ2_bzDecompressInit(f->bz, 0, 0) != BZ_OK) {
          rc = -1;
          break;
        }
        f->bz->next_in = next;
        f->bz->avail_in = left;
      } else if (br != BZ_OK) {
        snprintf(f->err, sizeof f->err, "decompressing: corrupt bzip2 data (%d)", br);
        rc = -2;
        break;
      }
    }
  }
  if (f->cd) free(dec - HEADROOM);
  return rc;
}

/* 1 if fd is on a file system whose files' sizes are not their lengths (procfs, sysfs, ...). */
static int pseudo_fs(int fd) {
  struct statfs fs;
  if (fstatfs(fd, &fs) != 0) return 0;
  switch ((unsigned long)fs.f_type) {
  case PROC_SUPER_MAGIC:
  case SYSFS_MAGIC:
  case DEBUGFS_MAGIC:
  case TRACEFS_MAGIC:
  case CGROUP_SUPER_MAGIC:
  case CGROUP2_SUPER_MAGIC:
  case SECURITYFS_MAGIC: return 1;
  default: return 0;
  }
}

/* The end of f's data was reached: truncation, rotation, deletion. 1 when f has more to
 * read now (dirty stays), 0 when it is idle. */
static int at_eof(mw_tailer_t *t, mw_tailfile_t *f) {
  emit_ctx_t c = {t, f, -1};
  struct stat st, ps;
  if (fstat(f->fd, &st) == 0) {
    if (st.st_size < f->read_off && st.st_size == 0 && pseudo_fs(f->fd)) {
      /* a file of /proc, /sys and the like, whose size says 0 whatever it holds: it would look
       * truncated at each end and be sent again and again; read once, it is done (a regular
       * file truncated to 0 is followed on, however often) */
      if (mw_linesplit_flush(&f->split, on_line, &c) != 0) return 0;
      file_close(t, f);
      f->state = ST_DONE;
      f->final = 1;
      snprintf(
          f->err, sizeof f->err,
          "its size stays 0 though it has data (a /proc or /sys file?): read once, not followed");
      return 0;
    }
    if (st.st_size < f->read_off) { /* copytruncate or truncation: read again from the start */
      t->st.truncations++;
      lseek(f->fd, 0, SEEK_SET);
      f->read_off = f->line_start = 0;
      mw_linesplit_reset(&f->split);
      f->raw_len = 0;
      if (f->cd) iconv(f->cd, NULL, NULL, NULL, NULL);
      return 1;
    }
    f->size = st.st_size;
  }
  if (!f->check) return 0; /* only writes since the last look at the path */
  f->check = 0;
  if (stat(f->path, &ps) != 0) {
    if (errno != ENOENT) return 0;
    /* deleted (or renamed away and not yet replaced): its last line, then forget it */
    if (mw_linesplit_flush(&f->split, on_line, &c) != 0) return 0;
    file_close(t, f);
    f->state = ST_MISSING;
    t->pos[f->pos].off = 0;
    t->pos[f->pos].dead = 1;
    t->pos_dirty = 1;
    return 0;
  }
  if (ps.st_dev != f->dev || ps.st_ino != f->ino) {
    /* rotated by rename: finish the old file (read to its end above), open the new one */
    t->st.rotations++;
    if (mw_linesplit_flush(&f->split, on_line, &c) != 0) return 0;
    file_close(t, f);
    return file_open(t, f, 0) == 0 ? 1 : 0;
  }
  return 0;
}

/* Reads one chunk of f into the batch. 1: more may follow, 0: f is idle now. */
static int step(mw_tailer_t *t, mw_tailfile_t *f) {
  if (f->fd < 0) {
    if (f->state == ST_DONE || f->final) return 0;
    /* missing, waiting, an open error: can it be opened now? (from its stored position
     * when it never was, else from its start: a new file) */
    if (file_open(t, f, f->from) != 0) return 0;
  }
  if (f->state == ST_DELAYED) {
    if (now_s() < f->not_before) return 0;
    f->state = ST_ACTIVE;
  }
  ssize_t n = read(f->fd, t->buf, MW_TAIL_CHUNK);
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN) return 1;
    set_err(f, "read", errno);
    return 0;
  }
  if (t->o.decompress) {
    int rc = 0;
    if (n > 0) rc = feed_compressed(t, f, t->buf, (size_t)n);
    f->read_off += n;
    f->read_bytes += (uint64_t)n;
    if (rc == -1) return 0;
    if (rc == -2) t->st.decompress_errors++;
    if (n == 0 || rc == -2) { /* a compressed file is read once, to its end */
      emit_ctx_t c = {t, f, -1};
      if (rc == 0) mw_linesplit_flush(&f->split, on_line, &c);
      file_close(t, f);
      f->state = rc == -2 ? ST_ERROR : ST_DONE;
      f->final = 1;
    }
    if (t->pos[f->pos].off != f->lines && f->skip == 0) {
      t->pos[f->pos].off = f->lines;
      t->pos_dirty = 1;
    }
    return n > 0 && rc == 0;
  }
  if (n == 0) return at_eof(t, f);
  int64_t base = f->read_off;
  f->read_off += n;
  f->read_bytes += (uint64_t)n;
  if (feed(t, f, t->buf, (size_t)n, base) != 0) return 0;
  int64_t pos = f->line_start;
  if (f->cd) /* decoded: a position only where no line is unfinished */
    pos =
        (f->split.len == 0 && !f->split.cut && f->raw_len == 0) ? f->read_off : t->pos[f->pos].off;
  if (t->pos[f->pos].off != pos) {
    t->pos[f->pos].off = pos;
    t->pos_dirty = 1;
  }
  return 1;
}

int mw_ffi_tail_read(mw_tailer_t *t, mw_logbatch_t *b, size_t max_entries, size_t max_bytes) {
  mw_logbatch_reset(b);
  t->b = b;
  t->gen++;
  if (t->gen == 0) t->gen = 1;
  t->now_ns = now_ns();
  t->oom = 0;
  drain_inotify(t);
  int any = 1;
  while (any) {
    any = 0;
    for (size_t k = 0; k < t->nfiles; k++) {
      size_t i = (t->rr + k) % t->nfiles;
      mw_tailfile_t *f = t->files[i];
      if (!f->dirty) continue;
      f->dirty = step(t, f);
      any |= f->dirty;
      if (t->oom) break;
      if (mw_logbatch_len(b) >= max_entries || mw_logbatch_bytes(b) >= max_bytes) {
        t->rr = (i + 1) % t->nfiles;
        t->b = NULL;
        return 1;
      }
    }
    if (t->oom) break;
  }
  t->b = NULL;
  return 0;
}

void mw_ffi_tail_stats(const mw_tailer_t *t, mw_tail_stats_t *s) {
  *s = t->st;
  s->files = (uint32_t)t->nfiles;
  s->active = t->open;
  s->positions = (uint32_t)t->npos;
  for (size_t i = 0; i < t->nfiles; i++)
    s->lines_truncated += t->files[i]->split.truncated;
}

int mw_ffi_tail_file(const mw_tailer_t *t, size_t i, mw_tail_file_t *out) {
  if (i >= t->nfiles) return -1;
  const mw_tailfile_t *f = t->files[i];
  out->path = f->path;
  out->state = STATE_NAMES[f->state];
  out->error = f->err;
  out->position = t->pos[f->pos].off;
  out->size = f->size;
  out->read_lines = f->read_lines;
  out->read_bytes = f->read_bytes;
  return 0;
}
