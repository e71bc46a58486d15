/* exporters/process/proc.c: procfs readers relative to a pid's directory descriptor (see
 * exporters/process/proc.h). Parsing follows prometheus/procfs as vendored by
 * ncabatoff/process-exporter. */
#include "exporters/process/proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#define MAX_PROC_FILE ((size_t)64 << 20)

void mw_proc_buf_free(mw_proc_buf_t *b) {
  if (!b) return;
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

int mw_proc_vanished(int e) { return e == ENOENT || e == ESRCH; }

int mw_proc_open(int dirfd, const char *name) {
  return openat(dirfd, name ? name : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/* Makes room for at least extra more bytes after b->len. 0 or -1 (errno). */
static int buf_grow(mw_proc_buf_t *b, size_t extra) {
  if (b->cap - b->len > extra) return 0;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap - b->len <= extra) {
    if (cap > MAX_PROC_FILE) {
      errno = EFBIG;
      return -1;
    }
    cap *= 2;
  }
  char *d = realloc(b->data, cap);
  if (!d) {
    errno = ENOMEM;
    return -1;
  }
  b->data = d;
  b->cap = cap;
  return 0;
}

int mw_proc_read_file(int dirfd, const char *name, mw_proc_buf_t *b) {
  int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  b->len = 0;
  for (;;) {
    if (buf_grow(b, 1024) < 0) goto fail;
    size_t want = b->cap - b->len - 1;
    ssize_t r = read(fd, b->data + b->len, want);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) goto fail;
    b->len += (size_t)r;
    /* A short read is the end: procfs's seq_files fill the buffer until the
     * last record, and regular files return what is left. This saves the
     * read that would return 0, one syscall per file. */
    if (r == 0 || (size_t)r < want) break;
  }
  close(fd);
  b->data[b->len] = '\0';
  return 0;
fail:;
  int e = errno;
  close(fd);
  errno = e;
  return -1;
}

/* Parses a decimal unsigned integer at *p (leading spaces/tabs skipped),
 * advancing *p past it. 0 or -1. */
static int parse_u64(const char **p, uint64_t *out) {
  const char *s = *p;
  while (*s == ' ' || *s == '\t')
    s++;
  if (*s < '0' || *s > '9') return -1;
  uint64_t v = 0;
  for (; *s >= '0' && *s <= '9'; s++) {
    uint64_t d = (uint64_t)(*s - '0');
    if (v > (UINT64_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  *p = s;
  *out = v;
  return 0;
}

/* As parse_u64, accepting a leading '-' (reported in *negative). */
static int parse_i64(const char **p, uint64_t *out, int *negative) {
  const char *s = *p;
  while (*s == ' ' || *s == '\t')
    s++;
  *negative = *s == '-';
  if (*negative) s++;
  *p = s;
  return parse_u64(p, out);
}

int mw_proc_parse_stat(const char *buf, size_t len, mw_proc_stat_t *out) {
  const char *l = memchr(buf, '(', len);
  const char *r = memrchr(buf, ')', len);
  if (!l || !r || r < l || r[1] != ' ') goto bad;
  size_t n = (size_t)(r - l - 1);
  if (n >= sizeof out->comm) n = sizeof out->comm - 1;
  memcpy(out->comm, l + 1, n);
  out->comm[n] = '\0';
  out->comm_len = n;
  const char *s = r + 2;
  out->state = *s;
  if (!*s) goto bad;
  s++;
  /* fields 4.. as in proc(5); values[k] is field k + 4 */
  uint64_t v[21];
  for (int k = 0; k < 21; k++) {
    int neg;
    if (parse_i64(&s, &v[k], &neg) < 0) goto bad;
    if (neg) v[k] = 0; /* rss may read negative in theory: clamp */
  }
  out->ppid = (int64_t)v[0];
  out->minflt = v[6];       /* field 10 */
  out->majflt = v[8];       /* field 12 */
  out->utime = v[10];       /* field 14 */
  out->stime = v[11];       /* field 15 */
  out->num_threads = v[16]; /* field 20 */
  out->starttime = v[18];   /* field 22 */
  out->vsize = v[19];       /* field 23 */
  out->rss = v[20];         /* field 24 */
  return 0;
bad:
  errno = EINVAL;
  return -1;
}

int mw_proc_read_stat(int dirfd, mw_proc_buf_t *scratch, mw_proc_stat_t *out) {
  if (mw_proc_read_file(dirfd, "stat", scratch) < 0) return -1;
  return mw_proc_parse_stat(scratch->data, scratch->len, out);
}

/* The value after "key:" at the start of a line in buf, or NULL. */
static const char *find_key(const char *buf, const char *key) {
  size_t n = strlen(key);
  for (const char *line = buf; line && *line;) {
    if (strncmp(line, key, n) == 0 && line[n] == ':') return line + n + 1;
    line = strchr(line, '\n');
    if (line) line++;
  }
  return NULL;
}

/* If the line at p starts with "key:", the value after the colon, else NULL. */
static const char *key_value(const char *p, const char *end, const char *key, size_t n) {
  return (size_t)(end - p) > n && memcmp(p, key, n) == 0 && p[n] == ':' ? p + n + 1 : NULL;
}

int mw_proc_parse_status(const char *buf, size_t len, mw_proc_status_t *out) {
  const char *end = buf + len, *p, *line = buf;
  uint64_t v;
  int seen = 0; /* the first line of each key counts, as a lookup from the top would */
  out->euid = -1;
  out->vmswap_bytes = out->ctx_voluntary = out->ctx_nonvoluntary = 0;
  /* One pass over the ~55 lines; the first byte picks the candidate key. */
  while (line < end && seen != 15) {
    const char *nl = memchr(line, '\n', (size_t)(end - line));
    switch (*line) {
    case 'U':
      if (!(seen & 1) && (p = key_value(line, end, "Uid", 3)) != NULL) {
        seen |= 1;
        uint64_t real;
        if (parse_u64(&p, &real) == 0 && parse_u64(&p, &v) == 0 && v <= UINT32_MAX)
          out->euid = (int64_t)v; /* uids are 32 bits: anything else is malformed */
      }
      break;
    case 'V':
      if (!(seen & 2) && (p = key_value(line, end, "VmSwap", 6)) != NULL) {
        seen |= 2;
        if (parse_u64(&p, &v) == 0) out->vmswap_bytes = v * 1024;
      }
      break;
    case 'v':
      if (!(seen & 4) && (p = key_value(line, end, "voluntary_ctxt_switches", 23)) != NULL) {
        seen |= 4;
        if (parse_u64(&p, &v) == 0) out->ctx_voluntary = v;
      }
      break;
    case 'n':
      if (!(seen & 8) && (p = key_value(line, end, "nonvoluntary_ctxt_switches", 26)) != NULL) {
        seen |= 8;
        if (parse_u64(&p, &v) == 0) out->ctx_nonvoluntary = v;
      }
      break;
    }
    if (!nl) break;
    line = nl + 1;
  }
  return 0;
}

int mw_proc_read_status(int dirfd, mw_proc_buf_t *scratch, mw_proc_status_t *out) {
  if (mw_proc_read_file(dirfd, "status", scratch) < 0) return -1;
  return mw_proc_parse_status(scratch->data, scratch->len, out);
}

int mw_proc_parse_io(const char *buf, size_t len, mw_proc_io_t *out) {
  (void)len; /* buf[len] is the NUL that ends the scans */
  const char *p;
  out->read_bytes = out->write_bytes = 0;
  if ((p = find_key(buf, "read_bytes")) == NULL || parse_u64(&p, &out->read_bytes) < 0) goto bad;
  if ((p = find_key(buf, "write_bytes")) == NULL || parse_u64(&p, &out->write_bytes) < 0) goto bad;
  return 0;
bad:
  errno = EINVAL;
  return -1;
}

int mw_proc_read_io(int dirfd, mw_proc_buf_t *scratch, mw_proc_io_t *out) {
  if (mw_proc_read_file(dirfd, "io", scratch) < 0) return -1;
  return mw_proc_parse_io(scratch->data, scratch->len, out);
}

int mw_proc_is_procfs(int fd) {
  struct statfs sf;
  return fstatfs(fd, &sf) == 0 && sf.f_type == PROC_SUPER_MAGIC;
}

int mw_proc_count_fds(int dirfd, int procfs, uint64_t *out) {
  /* Linux 6.2+ reports the number of open fds as the size of the fd
   * directory: two cheap syscalls instead of listing it. The permission check
   * keeps the answer what listing gives (EACCES for others' processes). */
  if (procfs) {
    struct stat st;
    if (fstatat(dirfd, "fd", &st, 0) < 0) return -1;
    uid_t me = geteuid();
    if (me != 0 && st.st_uid != me && faccessat(dirfd, "fd", R_OK, AT_EACCESS) < 0) return -1;
    if (st.st_size > 0 && S_ISDIR(st.st_mode)) {
      *out = (uint64_t)st.st_size;
      return 0;
    }
  }
  int fd = openat(dirfd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  DIR *d = fdopendir(fd);
  if (!d) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  uint64_t n = 0;
  struct dirent *e;
  errno = 0;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') n++;
  int err = errno;
  closedir(d);
  if (err) {
    errno = err;
    return -1;
  }
  *out = n;
  return 0;
}

int mw_proc_parse_nofile_limit(const char *buf, size_t len, uint64_t *out) {
  static const char key[] = "Max open files";
  (void)len;
  for (const char *line = buf; line && *line;) {
    if (strncmp(line, key, sizeof key - 1) == 0) {
      const char *p = line + sizeof key - 1;
      while (*p == ' ')
        p++;
      if (strncmp(p, "unlimited", 9) == 0) {
        *out = UINT64_MAX;
        return 0;
      }
      if (parse_u64(&p, out) == 0) return 0;
      break;
    }
    line = strchr(line, '\n');
    if (line) line++;
  }
  errno = EINVAL;
  return -1;
}

int mw_proc_read_nofile_limit(int dirfd, mw_proc_buf_t *scratch, uint64_t *out) {
  if (mw_proc_read_file(dirfd, "limits", scratch) < 0) return -1;
  return mw_proc_parse_nofile_limit(scratch->data, scratch->len, out);
}

int mw_proc_nofile_limit(int dirfd, int64_t pid, mw_proc_buf_t *scratch, uint64_t *out) {
  struct rlimit rl;
  if (pid > 0 && prlimit((pid_t)pid, RLIMIT_NOFILE, NULL, &rl) == 0) {
    *out = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
    return 0;
  }
  return mw_proc_read_nofile_limit(dirfd, scratch, out);
}

int mw_proc_read_wchan(int dirfd, char *out, size_t size) {
  if (size == 0) {
    errno = EINVAL;
    return -1;
  }
  int fd = openat(dirfd, "wchan", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t r;
  do
    r = read(fd, out, size - 1);
  while (r < 0 && errno == EINTR);
  int e = errno;
  close(fd);
  if (r < 0) {
    errno = e;
    return -1;
  }
  out[r] = '\0';
  if (strcmp(out, "0") == 0) out[0] = '\0';
  return 0;
}

/* Sums the "key: N kB" lines of buf into *out (bytes). */
static void sum_kb(const char *buf, const char *key, uint64_t *out) {
  size_t n = strlen(key);
  for (const char *line = buf; line && *line;) {
    if (strncmp(line, key, n) == 0 && line[n] == ':') {
      const char *p = line + n + 1;
      uint64_t v;
      if (parse_u64(&p, &v) == 0) *out += v * 1024;
    }
    line = strchr(line, '\n');
    if (line) line++;
  }
}

void mw_proc_parse_smaps(const char *buf, size_t len, mw_proc_smaps_t *out) {
  (void)len;
  out->pss = out->swap_pss = 0;
  sum_kb(buf, "Pss", &out->pss);
  sum_kb(buf, "SwapPss", &out->swap_pss);
}

int mw_proc_read_smaps(int dirfd, mw_proc_buf_t *scratch, mw_proc_smaps_t *out) {
  if (mw_proc_read_file(dirfd, "smaps_rollup", scratch) < 0) {
    if (errno != ENOENT || mw_proc_read_file(dirfd, "smaps", scratch) < 0) return -1;
  }
  mw_proc_parse_smaps(scratch->data, scratch->len, out);
  return 0;
}

size_t mw_proc_parse_cmdline(char *buf, size_t len) {
  while (len > 0 && buf[len - 1] == '\0')
    len--;
  buf[len] = '\0';
  return len;
}

int mw_proc_read_cmdline(int dirfd, mw_proc_buf_t *out) {
  if (mw_proc_read_file(dirfd, "cmdline", out) < 0) return -1;
  out->len = mw_proc_parse_cmdline(out->data, out->len);
  return 0;
}

int mw_proc_parse_btime(const char *buf, size_t len, uint64_t *out) {
  (void)len;
  const char *p = find_key(buf, "btime");
  if (!p) {
    /* "btime N": a space, not a colon */
    for (const char *line = buf; line && *line;) {
      if (strncmp(line, "btime ", 6) == 0) {
        p = line + 6;
        break;
      }
      line = strchr(line, '\n');
      if (line) line++;
    }
  }
  if (p && parse_u64(&p, out) == 0) return 0;
  errno = EINVAL;
  return -1;
}

int mw_proc_read_btime(int rootfd, mw_proc_buf_t *scratch, uint64_t *out) {
  if (mw_proc_read_file(rootfd, "stat", scratch) < 0) return -1;
  return mw_proc_parse_btime(scratch->data, scratch->len, out);
}
