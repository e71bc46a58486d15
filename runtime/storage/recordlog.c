/* storage/recordlog.c: the segmented record log (see storage/recordlog.h for the format and
 * the guarantees): segment files, replay and repair, append, named cursors
 * with their files, fsync policies and the fsync worker, truncation with a
 * checkpoint written by the layer above. */
#include "storage/recordlog.h"
#include "base/err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "base/grow.h"

/* An fsync on a worker thread (policy INTERVAL, mw_rlog_sync_start): it
 * fdatasyncs and closes fds (a dup of the head, and the segments finished
 * since the last sync), then fsyncs dir if set. The worker touches nothing
 * else; the loop thread reads the result once done is set, after joining. */
typedef struct {
  pthread_t thread;
  int *fds;
  size_t nfds, synced; /* synced: fds whose fdatasync succeeded */
  char *dir;           /* NULL: no directory fsync */
  int err_no;          /* first failure, 0: none */
  int dir_failed;      /* the directory's fsync failed */
  atomic_int done;     /* set last by the worker */
} mw_syncjob_t;

struct mw_rlog {
  char *dir, *cursor_dir;
  mw_rlog_opts_t opts;
  char magic[MW_RLOG_SEG_HDR];
  mw_rlog_seg_t *segs; /* by index; the last one is written to */
  size_t nsegs, segs_cap;
  int head_fd;
  int cut_next;  /* start a new segment before the next append */
  int dirty_dir; /* a segment was created since the last directory fsync */
  int *unsynced; /* INTERVAL: fds of finished segments, for the next sync */
  size_t nunsynced, unsynced_cap;
  mw_syncjob_t *job;   /* the fsync running on a worker thread, NULL: none */
  uint32_t checkpoint; /* N of checkpoint.N, 0: none */
  uint64_t checkpoint_bytes;
  uint8_t *rbuf; /* replay's record buffer */
  size_t rbuf_cap;
  mw_rlog_cursor_t **cursors;
  size_t ncursors, cursors_cap;
  int closed;
  mw_rlog_stats_t st;
  char *log;
  size_t log_len, log_cap;
};

struct mw_rlog_cpw {
  int fd;
  uint64_t bytes;
  int failed; /* a write failed (errno kept in err_no) */
  int err_no;
};

/* --- helpers ---------------------------------------------------------- */

/* Reads n bytes at off; returns the count read (< n at end of file), -1 on error. */
static ssize_t mw_pread_full(int fd, void *buf, size_t n, uint64_t off) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, (uint8_t *)buf + got, n - got, (off_t)(off + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    got += (size_t)r;
  }
  return (ssize_t)got;
}

static int mw_write_full(int fd, const void *buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = write(fd, (const uint8_t *)buf + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    done += (size_t)r;
  }
  return 0;
}

static int mw_fsync_dir(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

static char *mw_path(const char *a, const char *b) {
  size_t n = strlen(a) + strlen(b) + 2;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/%s", a, b);
  return p;
}

static char *mw_seg_path(const mw_rlog_t *l, uint32_t index) {
  char name[16];
  snprintf(name, sizeof name, "%08u", index);
  return mw_path(l->dir, name);
}

/* Removes a directory and the files in it (one level). */
static void mw_rmdir(const char *path) {
  DIR *d = opendir(path);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      char *p = mw_path(path, e->d_name);
      if (p) unlink(p);
      free(p);
    }
    closedir(d);
  }
  rmdir(path);
}

/* mkdir -p */
static int mw_mkdirs(const char *path) {
  char *p = strdup(path);
  if (!p) return -1;
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = '\0';
    if (mkdir(p, 0750) != 0 && errno != EEXIST) goto fail;
    *s = '/';
  }
  if (mkdir(p, 0750) != 0 && errno != EEXIST) goto fail;
  free(p);
  return 0;
fail:
  free(p);
  return -1;
}

static void mw_log(mw_rlog_t *l, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof line) n = sizeof line - 1;
  if (mw_grow((void **)&l->log, &l->log_cap, l->log_len + (size_t)n + 2, 1) != 0) return;
  memcpy(l->log + l->log_len, line, (size_t)n);
  l->log_len += (size_t)n;
  l->log[l->log_len++] = '\n';
  l->log[l->log_len] = '\0';
}

static int mw_is_type(const mw_rlog_t *l, uint8_t t) { return t < 32 && (l->opts.types >> t & 1); }

static int mw_is_counted(const mw_rlog_t *l, uint8_t t) {
  return t < 32 && (l->opts.counted >> t & 1);
}

void mw_rlog_frame(uint8_t *hdr, uint8_t type, uint32_t len) {
  hdr[0] = type;
  mw_put32(hdr + 1, len);
  uint32_t crc = mw_crc32c(0, hdr, 5);
  crc = mw_crc32c(crc, hdr + MW_RLOG_REC_HDR, len);
  mw_put32(hdr + 5, crc);
}

/* Reads the record at off of a segment whose good bytes end at end into
 * *buf. 1: the payload is in *buf (len, type); 0: off is the end; -1: torn,
 * short or corrupt; -2: I/O error (errno). */
static int mw_rec_read(const mw_rlog_t *l, int fd, uint64_t off, uint64_t end, uint8_t **buf,
                       size_t *cap, uint8_t *type, uint32_t *len) {
  if (off >= end) return 0;
  if (end - off < MW_RLOG_REC_HDR) return -1;
  uint8_t h[MW_RLOG_REC_HDR];
  ssize_t n = mw_pread_full(fd, h, sizeof h, off);
  if (n < 0) return -2;
  if ((size_t)n < sizeof h) return -1;
  uint32_t rl = mw_get32(h + 1);
  if (!mw_is_type(l, h[0]) || rl > MW_RLOG_MAX_RECORD || rl > end - off - MW_RLOG_REC_HDR)
    return -1;
  if (mw_grow((void **)buf, cap, rl ? rl : 1, 1) != 0) {
    errno = ENOMEM;
    return -2;
  }
  n = mw_pread_full(fd, *buf, rl, off + MW_RLOG_REC_HDR);
  if (n < 0) return -2;
  if ((size_t)n < rl) return -1;
  uint32_t crc = mw_crc32c(0, h, 5);
  if (mw_crc32c(crc, *buf, rl) != mw_get32(h + 5)) return -1;
  *type = h[0];
  *len = rl;
  return 1;
}

/* --- fsync on a worker thread (policy INTERVAL) -------------------- */

/* The worker: syncs and closes the job's fds, then the directory. */
static void mw_sync_run(mw_syncjob_t *j) {
  for (size_t i = 0; i < j->nfds; i++) {
    if (fdatasync(j->fds[i]) == 0)
      j->synced++;
    else if (!j->err_no)
      j->err_no = errno;
    close(j->fds[i]);
  }
  if (j->dir && mw_fsync_dir(j->dir) != 0) {
    j->dir_failed = 1;
    if (!j->err_no) j->err_no = errno;
  }
  atomic_store(&j->done, 1);
}

static void *mw_sync_thread(void *arg) {
  mw_sync_run(arg);
  return NULL;
}

static void mw_syncjob_free(mw_syncjob_t *j) {
  if (!j) return;
  free(j->fds);
  free(j->dir);
  free(j);
}

/* Counts a finished job's fsyncs, reports its failure and frees it. 0, or
 * -1 with err. */
static int mw_sync_end(mw_rlog_t *l, mw_syncjob_t *j, char *err, size_t errlen) {
  l->st.fsyncs += j->synced;
  int rc = 0;
  if (j->err_no) {
    if (j->dir_failed) l->dirty_dir = 1;
    mw_seterr(err, errlen, "fsync %s: %s", j->dir_failed ? l->dir : "segment", strerror(j->err_no));
    rc = -1;
  }
  mw_syncjob_free(j);
  return rc;
}

/* Ends the job on the worker (waiting for it if wait, else only if it is
 * done). 1 still running (not wait), 0 done or none, -1 with err if it
 * failed. */
static int mw_sync_collect(mw_rlog_t *l, int wait, char *err, size_t errlen) {
  mw_syncjob_t *j = l->job;
  if (!j) return 0;
  if (!wait && !atomic_load(&j->done)) return 1;
  pthread_join(j->thread, NULL);
  l->job = NULL;
  return mw_sync_end(l, j, err, errlen);
}

/* Syncs (if sync) and closes the fds of finished segments not yet synced. */
static void mw_sync_unsynced(mw_rlog_t *l, int sync) {
  for (size_t i = 0; i < l->nunsynced; i++) {
    if (sync && fdatasync(l->unsynced[i]) == 0) l->st.fsyncs++;
    close(l->unsynced[i]);
  }
  l->nunsynced = 0;
}

int mw_rlog_sync_start(mw_rlog_t *l, char *err, size_t errlen) {
  int rc = mw_sync_collect(l, 0, err, errlen);
  if (rc != 0) return rc < 0 ? -1 : 0; /* failed, or the last one still runs */
  if (l->closed || (l->head_fd < 0 && !l->nunsynced)) return 0;
  mw_syncjob_t *j = calloc(1, sizeof *j);
  if (!j || !(j->fds = malloc((l->nunsynced + 1) * sizeof *j->fds)) ||
      (l->dirty_dir && !(j->dir = strdup(l->dir)))) {
    mw_syncjob_free(j);
    mw_seterr(err, errlen, "out of memory");
    return -1;
  }
  /* A dup of the head: the worker closes what it syncs, and the head may be
   * closed meanwhile (a new segment under another policy). */
  if (l->head_fd >= 0) {
    int fd = fcntl(l->head_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
      mw_seterr(err, errlen, "fsync: dup: %s", strerror(errno));
      mw_syncjob_free(j);
      return -1;
    }
    j->fds[j->nfds++] = fd;
  }
  if (l->nunsynced) memcpy(j->fds + j->nfds, l->unsynced, l->nunsynced * sizeof *j->fds);
  j->nfds += l->nunsynced;
  l->nunsynced = 0;
  l->dirty_dir = 0;
  atomic_init(&j->done, 0);
  if (pthread_create(&j->thread, NULL, mw_sync_thread, j) != 0) {
    mw_sync_run(j); /* no thread: here, slower but the same */
    return mw_sync_end(l, j, err, errlen);
  }
  l->job = j;
  return 0;
}

int mw_rlog_sync(mw_rlog_t *l, char *err, size_t errlen) {
  int rc = mw_sync_collect(l, 1, err, errlen);
  mw_sync_unsynced(l, 1);
  if (l->closed || l->head_fd < 0) return rc;
  if (fdatasync(l->head_fd) != 0) {
    mw_seterr(err, errlen, "fsync: %s", strerror(errno));
    return -1;
  }
  l->st.fsyncs++;
  if (l->dirty_dir) {
    if (mw_fsync_dir(l->dir) != 0) {
      mw_seterr(err, errlen, "fsync %s: %s", l->dir, strerror(errno));
      return -1;
    }
    l->dirty_dir = 0;
  }
  return rc;
}

/* --- segments --------------------------------------------------------- */

static mw_rlog_seg_t *mw_head(mw_rlog_t *l) { return l->nsegs ? &l->segs[l->nsegs - 1] : NULL; }

/* The first segment with index >= index, or NULL. */
static mw_rlog_seg_t *mw_seg_from(mw_rlog_t *l, uint32_t index) {
  size_t lo = 0, hi = l->nsegs;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (l->segs[mid].index < index)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < l->nsegs ? &l->segs[lo] : NULL;
}

static int mw_seg_push(mw_rlog_t *l, uint32_t index, uint64_t size) {
  if (mw_grow((void **)&l->segs, &l->segs_cap, l->nsegs + 1, sizeof *l->segs) != 0) return -1;
  l->segs[l->nsegs++] =
      (mw_rlog_seg_t){.index = index, .size = size, .min_ts = INT64_MAX, .max_ts = INT64_MIN};
  return 0;
}

/* Closes the head and starts segment last + 1. 0, or -1 with err. */
static int mw_new_segment(mw_rlog_t *l, char *err, size_t errlen) {
  mw_rlog_seg_t *h = mw_head(l);
  uint32_t index = h ? h->index + 1 : l->checkpoint + 1;
  if (l->head_fd >= 0) {
    /* INTERVAL: the finished segment is synced (and closed) by the next
     * sync, off the loop thread; if it cannot be queued, here. */
    if (l->opts.fsync == MW_RLOG_FSYNC_INTERVAL &&
        mw_grow((void **)&l->unsynced, &l->unsynced_cap, l->nunsynced + 1, sizeof *l->unsynced) ==
            0) {
      l->unsynced[l->nunsynced++] = l->head_fd;
    } else {
      if (l->opts.fsync != MW_RLOG_FSYNC_NEVER && fdatasync(l->head_fd) == 0) l->st.fsyncs++;
      close(l->head_fd);
    }
    l->head_fd = -1;
  }
  char *path = mw_seg_path(l, index);
  if (!path) {
    mw_seterr(err, errlen, "out of memory");
    return -1;
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0 || mw_write_full(fd, l->magic, MW_RLOG_SEG_HDR) != 0 ||
      mw_seg_push(l, index, 0) != 0) {
    mw_seterr(err, errlen, "%s: %s", path, strerror(errno));
    if (fd >= 0) {
      close(fd);
      unlink(path);
    }
    free(path);
    l->cut_next = 1;
    return -1;
  }
  free(path);
  l->head_fd = fd;
  l->segs[l->nsegs - 1].size = MW_RLOG_SEG_HDR;
  l->cut_next = 0;
  l->dirty_dir = 1;
  if (l->opts.fsync == MW_RLOG_FSYNC_ALWAYS) {
    if (fdatasync(fd) == 0) l->st.fsyncs++;
    if (mw_fsync_dir(l->dir) == 0) l->dirty_dir = 0;
  }
  return 0;
}

/* Replays the segment file at path (index; a checkpoint when checkpoint is
 * set: never modified). Fills *seg. A bad magic or the first bad record
 * ends the segment: it is cut there, logged and counted. 0, or -1 with err
 * on I/O errors and fatal replay errors. */
static int mw_replay_file(mw_rlog_t *l, const char *path, uint32_t index, int checkpoint,
                          mw_rlog_seg_t *seg, char *err, size_t errlen) {
  int fd = open(path, (checkpoint ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  struct stat sb;
  if (fd < 0 || fstat(fd, &sb) != 0) {
    mw_seterr(err, errlen, "%s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  uint64_t size = (uint64_t)sb.st_size, off = 0;
  *seg = (mw_rlog_seg_t){.index = index, .min_ts = INT64_MAX, .max_ts = INT64_MIN};
  char magic[MW_RLOG_SEG_HDR];
  int bad = 0;
  if (size == 0 && !checkpoint) {
    /* Created, killed before its magic was written: nothing was lost. */
    if (pwrite(fd, l->magic, MW_RLOG_SEG_HDR, 0) != (ssize_t)MW_RLOG_SEG_HDR) {
      mw_seterr(err, errlen, "%s: %s", path, strerror(errno));
      goto fail;
    }
    size = MW_RLOG_SEG_HDR;
  }
  if (mw_pread_full(fd, magic, MW_RLOG_SEG_HDR, 0) != (ssize_t)MW_RLOG_SEG_HDR ||
      memcmp(magic, l->magic, MW_RLOG_SEG_HDR) != 0) {
    bad = 1;
  } else {
    off = MW_RLOG_SEG_HDR;
  }
  while (!bad) {
    mw_rlog_rec_t rec = {.seg = index, .checkpoint = checkpoint};
    int rc = mw_rec_read(l, fd, off, size, &l->rbuf, &l->rbuf_cap, &rec.type, &rec.len);
    if (rc == 0) break;
    if (rc == -2) {
      mw_seterr(err, errlen, "%s: %s", path, strerror(errno));
      goto fail;
    }
    if (rc < 0) {
      bad = 1;
      break;
    }
    rec.p = l->rbuf;
    int a = l->opts.replay ? l->opts.replay(l->opts.ctx, &rec, seg, err, errlen) : 0;
    if (a < 0) goto fail;
    if (a > 0) {
      bad = 1;
      break;
    }
    off += MW_RLOG_REC_HDR + rec.len;
  }
  if (bad) {
    l->st.corruptions++;
    l->st.corrupt_bytes += size - off;
    mw_log(l, "%s: torn or corrupt data at offset %llu: %s %llu bytes", path,
           (unsigned long long)off, checkpoint ? "ignored" : "cut",
           (unsigned long long)(size - off));
    if (!checkpoint) {
      int ok = ftruncate(fd, (off_t)off) == 0;
      if (ok && off < MW_RLOG_SEG_HDR) {
        ok = pwrite(fd, l->magic, MW_RLOG_SEG_HDR, 0) == (ssize_t)MW_RLOG_SEG_HDR;
        off = MW_RLOG_SEG_HDR;
      }
      if (!ok || fsync(fd) != 0) {
        mw_seterr(err, errlen, "%s: repair: %s", path, strerror(errno));
        goto fail;
      }
    }
  }
  seg->size = off;
  close(fd);
  return 0;
fail:
  close(fd);
  return -1;
}

static int mw_is_digits(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return 0;
  return 1;
}

static int mw_u32_cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

void mw_rlog_free(mw_rlog_t *l) {
  if (!l) return;
  mw_sync_collect(l, 1, NULL, 0);
  mw_sync_unsynced(l, 0);
  free(l->unsynced);
  if (l->head_fd >= 0) close(l->head_fd);
  free(l->segs);
  free(l->rbuf);
  free(l->cursors);
  free(l->log);
  free(l->dir);
  free(l->cursor_dir);
  free(l);
}

void mw_rlog_close(mw_rlog_t *l) {
  if (!l || l->closed) return;
  mw_sync_collect(l, 1, NULL, 0);
  mw_sync_unsynced(l, l->opts.fsync != MW_RLOG_FSYNC_NEVER);
  if (l->head_fd >= 0) {
    if (l->opts.fsync != MW_RLOG_FSYNC_NEVER) fdatasync(l->head_fd);
    close(l->head_fd);
    l->head_fd = -1;
  }
  l->closed = 1;
}

int mw_rlog_closed(const mw_rlog_t *l) { return l->closed; }

int mw_rlog_open(const char *dir, const mw_rlog_opts_t *opts, mw_rlog_t **out, char *err,
                 size_t errlen) {
  *out = NULL;
  uint32_t *idx = NULL;
  size_t nidx = 0, idx_cap = 0;
  DIR *d = NULL;
  mw_rlog_t *l = calloc(1, sizeof *l);
  if (!l) goto oom;
  l->head_fd = -1;
  l->opts = *opts;
  if (l->opts.fsync < MW_RLOG_FSYNC_NEVER || l->opts.fsync > MW_RLOG_FSYNC_ALWAYS) {
    mw_seterr(err, errlen, "invalid fsync policy %d", l->opts.fsync);
    goto fail;
  }
  if (!l->opts.what) l->opts.what = "log";
  if (!l->opts.items) l->opts.items = "records";
  memcpy(l->magic, opts->magic ? opts->magic : "MWRLOG01", MW_RLOG_SEG_HDR);
  if (l->opts.segment_size < 1024) l->opts.segment_size = 1024;
  l->dir = strdup(dir);
  l->cursor_dir = strdup(opts->cursor_dir ? opts->cursor_dir : dir);
  l->log = calloc(1, 1);
  if (!l->dir || !l->cursor_dir || !l->log) goto oom;
  l->log_cap = 1;
  if (mw_mkdirs(l->dir) != 0) {
    mw_seterr(err, errlen, "%s: %s", l->dir, strerror(errno));
    goto fail;
  }
  /* What is there: segments, checkpoints, leftovers of an interrupted checkpoint. */
  d = opendir(l->dir);
  if (!d) {
    mw_seterr(err, errlen, "%s: %s", l->dir, strerror(errno));
    goto fail;
  }
  struct dirent *e;
  uint32_t cp = 0;
  int has_cp = 0;
  while ((e = readdir(d))) {
    const char *n = e->d_name;
    size_t len = strlen(n);
    if (len == 8 && mw_is_digits(n, 8)) {
      if (mw_grow((void **)&idx, &idx_cap, nidx + 1, sizeof *idx) != 0) goto oom;
      idx[nidx++] = (uint32_t)strtoul(n, NULL, 10);
    } else if (len >= 19 && strncmp(n, "checkpoint.", 11) == 0 && mw_is_digits(n + 11, 8)) {
      if (len != 19) {
        char *p = mw_path(l->dir, n); /* checkpoint.N.tmp: interrupted */
        if (p) mw_rmdir(p);
        free(p);
        continue;
      }
      uint32_t c = (uint32_t)strtoul(n + 11, NULL, 10);
      if (!has_cp || c > cp) cp = c;
      has_cp = 1;
    }
  }
  closedir(d);
  d = NULL;
  if (has_cp) {
    /* Older checkpoints and segments it replaces are leftovers of an interrupted truncation. */
    d = opendir(l->dir);
    while (d && (e = readdir(d))) {
      if (strlen(e->d_name) == 19 && strncmp(e->d_name, "checkpoint.", 11) == 0 &&
          mw_is_digits(e->d_name + 11, 8) && (uint32_t)strtoul(e->d_name + 11, NULL, 10) != cp) {
        char *p = mw_path(l->dir, e->d_name);
        if (p) mw_rmdir(p);
        free(p);
      }
    }
    if (d) closedir(d);
    d = NULL;
    l->checkpoint = cp;
    char name[32];
    snprintf(name, sizeof name, "checkpoint.%08u/00000000", cp);
    char *p = mw_path(l->dir, name);
    if (!p) goto oom;
    struct stat sb;
    if (stat(p, &sb) == 0) {
      mw_rlog_seg_t meta;
      int rc = mw_replay_file(l, p, cp, 1, &meta, err, errlen);
      l->checkpoint_bytes = (uint64_t)sb.st_size;
      free(p);
      if (rc != 0) goto fail;
    } else {
      mw_log(l, "%s: missing: %s", p, strerror(errno));
      l->st.corruptions++;
      free(p);
    }
  }
  if (nidx) qsort(idx, nidx, sizeof *idx, mw_u32_cmp);
  for (size_t i = 0; i < nidx; i++) {
    char *p = mw_seg_path(l, idx[i]);
    if (!p) goto oom;
    if (has_cp && idx[i] <= cp) {
      unlink(p);
      free(p);
      continue;
    }
    mw_rlog_seg_t meta;
    int rc = mw_replay_file(l, p, idx[i], 0, &meta, err, errlen);
    free(p);
    if (rc != 0) goto fail;
    if (mw_grow((void **)&l->segs, &l->segs_cap, l->nsegs + 1, sizeof *l->segs) != 0) goto oom;
    l->segs[l->nsegs++] = meta;
  }
  /* Appends go to a fresh segment (the last one is reused if it has no record). */
  mw_rlog_seg_t *h = mw_head(l);
  if (h && h->size == MW_RLOG_SEG_HDR) {
    char *p = mw_seg_path(l, h->index);
    if (!p) goto oom;
    l->head_fd = open(p, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (l->head_fd < 0) mw_seterr(err, errlen, "%s: %s", p, strerror(errno));
    free(p);
    if (l->head_fd < 0) goto fail;
  } else if (mw_new_segment(l, err, errlen) != 0) {
    goto fail;
  }
  free(idx);
  *out = l;
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
fail:
  if (d) closedir(d);
  free(idx);
  mw_rlog_free(l);
  return -1;
}

/* --- append ----------------------------------------------------------- */

void mw_rlog_cut(mw_rlog_t *l) { l->cut_next = 1; }

int mw_rlog_append(mw_rlog_t *l, const struct iovec *iov_in, int niov, uint64_t items,
                   int64_t min_ts, int64_t max_ts, uint32_t *seg, char *err, size_t errlen) {
  if (l->closed) {
    mw_seterr(err, errlen, "%s closed", l->opts.what);
    return -1;
  }
  struct iovec iov[8];
  size_t total = 0;
  int nio = 0;
  for (int i = 0; i < niov; i++) {
    if (!iov_in[i].iov_len) continue;
    if (nio == 8) {
      mw_seterr(err, errlen, "too many buffers in one append");
      return -1;
    }
    iov[nio++] = iov_in[i];
    total += iov_in[i].iov_len;
  }
  mw_rlog_seg_t *h = mw_head(l);
  if (!total) {
    if (seg) *seg = h->index;
    return 0;
  }
  if (l->cut_next || (h->size > MW_RLOG_SEG_HDR && h->size + total > l->opts.segment_size)) {
    if (mw_new_segment(l, err, errlen) != 0) return -1;
    h = mw_head(l);
  }
  /* One writev: when it returns, the records are in the kernel. */
  int k = 0;
  size_t done = 0;
  while (done < total) {
    while (k < nio && iov[k].iov_len == 0)
      k++;
    ssize_t r = writev(l->head_fd, iov + k, nio - k);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      mw_seterr(err, errlen, "write segment %08u: %s", h->index,
                r < 0 ? strerror(errno) : "no progress");
      /* Take back what reached the file; if that fails, the next append
       * starts a new segment and the open cuts this one's torn tail. */
      if (done && ftruncate(l->head_fd, (off_t)h->size) != 0) l->cut_next = 1;
      return -1;
    }
    done += (size_t)r;
    for (size_t adv = (size_t)r; adv && k < nio; k++) {
      size_t m = adv < iov[k].iov_len ? adv : iov[k].iov_len;
      iov[k].iov_base = (uint8_t *)iov[k].iov_base + m;
      iov[k].iov_len -= m;
      adv -= m;
      if (iov[k].iov_len) break;
    }
  }
  h->size += total;
  if (items) {
    if (min_ts < h->min_ts) h->min_ts = min_ts;
    if (max_ts > h->max_ts) h->max_ts = max_ts;
  }
  h->items += items;
  if (seg) *seg = h->index;
  if (l->opts.fsync == MW_RLOG_FSYNC_ALWAYS) {
    if (fdatasync(l->head_fd) != 0) {
      /* The records are in the log (and the kernel), not known to be on disk. */
      mw_seterr(err, errlen, "fsync segment %08u: %s", h->index, strerror(errno));
      return 1;
    }
    l->st.fsyncs++;
  }
  return 0;
}

void mw_rlog_stats(const mw_rlog_t *l, mw_rlog_stats_t *st) {
  *st = l->st;
  uint64_t bytes = l->checkpoint_bytes;
  for (size_t i = 0; i < l->nsegs; i++)
    bytes += l->segs[i].size;
  st->bytes = bytes;
}

const char *mw_rlog_repair_log(const mw_rlog_t *l) { return l->log ? l->log : ""; }

const mw_rlog_seg_t *mw_rlog_segments(const mw_rlog_t *l, size_t *n) {
  *n = l->nsegs;
  return l->segs;
}

int mw_rlog_pos_cmp(mw_rlog_pos_t a, mw_rlog_pos_t b) {
  if (a.seg != b.seg) return a.seg < b.seg ? -1 : 1;
  if (a.off != b.off) return a.off < b.off ? -1 : 1;
  return (a.idx > b.idx) - (a.idx < b.idx);
}

static uint64_t mw_count_from(mw_rlog_t *l, const mw_rlog_seg_t *sg, uint64_t off, uint32_t idx) {
  if (off <= MW_RLOG_SEG_HDR && !idx) return sg->items;
  char *path = mw_seg_path(l, sg->index);
  int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
  free(path);
  uint64_t n = 0;
  while (fd >= 0 && off < sg->size) {
    uint8_t h[MW_RLOG_REC_HDR + 4];
    if (mw_pread_full(fd, h, sizeof h, off) != (ssize_t)sizeof h) break;
    if (mw_is_counted(l, h[0])) {
      uint32_t c = mw_get32(h + MW_RLOG_REC_HDR);
      n += c > idx ? c - idx : 0;
    }
    idx = 0;
    off += MW_RLOG_REC_HDR + mw_get32(h + 1);
  }
  if (fd >= 0) close(fd);
  return n;
}

uint64_t mw_rlog_items_from(mw_rlog_t *l, uint32_t seg, uint64_t off, uint32_t idx) {
  mw_rlog_seg_t *sg = mw_seg_from(l, seg);
  return sg && sg->index == seg ? mw_count_from(l, sg, off, idx) : 0;
}

/* --- cursors ---------------------------------------------------------- */

/* Cursor files: "mwcursor 2 SEG OFF IDX CRC\n", CRC the CRC32C of the text
 * before it (version 1 had no CRC). Saved as a new file renamed into place,
 * after the last one was renamed to the previous copy: a damaged or missing
 * cursor falls back to a copy at most one save older (a few items resent,
 * not the whole log). */
static int mw_cursor_save(mw_rlog_cursor_t *c, char *err, size_t errlen) {
  char text[96];
  int n = snprintf(text, sizeof text, "mwcursor 2 %u %llu %u", c->committed.seg,
                   (unsigned long long)c->committed.off, c->committed.idx);
  n += snprintf(text + n, sizeof text - (size_t)n, " %08x\n", mw_crc32c(0, text, (size_t)n));
  int fd = open(c->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) goto fail;
  int always = c->log->opts.fsync == MW_RLOG_FSYNC_ALWAYS;
  if (mw_write_full(fd, text, (size_t)n) != 0 || (always && fdatasync(fd) != 0)) {
    close(fd);
    goto fail;
  }
  close(fd);
  if (rename(c->path, c->prev) != 0 && errno != ENOENT) goto fail;
  if (rename(c->tmp, c->path) != 0) goto fail;
  if (always) mw_fsync_dir(c->log->cursor_dir);
  return 0;
fail:
  mw_seterr(err, errlen, "%s: %s", c->path, strerror(errno));
  return -1;
}

/* Reads a cursor file into *p: 1, 0 when there is none, -1 when it cannot be
 * read or is damaged (why in why). */
static int mw_cursor_load(const char *path, mw_rlog_pos_t *p, char *why, size_t whylen) {
  char text[128];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return 0;
    snprintf(why, whylen, "%s", strerror(errno));
    return -1;
  }
  ssize_t n = mw_pread_full(fd, text, sizeof text - 1, 0);
  int e = errno;
  close(fd);
  if (n < 0) {
    snprintf(why, whylen, "%s", strerror(e));
    return -1;
  }
  text[n] = '\0';
  unsigned ver, seg, idx, crc;
  unsigned long long off;
  int end = 0, body = 0;
  if (sscanf(text, "mwcursor %u %u %llu %u%n %8x%n", &ver, &seg, &off, &idx, &body, &crc, &end) >=
          4 &&
      ((ver == 1 && body && (text[body] == '\n' || !text[body])) ||
       (ver == 2 && end && text[end] == '\n' && !text[end + 1] &&
        mw_crc32c(0, text, (size_t)body) == crc))) {
    *p = (mw_rlog_pos_t){seg, off, idx};
    return 1;
  }
  snprintf(why, whylen, "damaged (%zd bytes, not a valid cursor)", n);
  return -1;
}

/* Moves *p to a record boundary of its segment at or before it (a cursor
 * from an older, longer segment, or a damaged cursor file). */
static void mw_pos_align(mw_rlog_t *l, mw_rlog_pos_t *p) {
  mw_rlog_seg_t *sg = mw_seg_from(l, p->seg);
  if (!sg || sg->index != p->seg) return;
  char *path = mw_seg_path(l, sg->index);
  int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
  free(path);
  uint64_t off = MW_RLOG_SEG_HDR;
  uint32_t count = 0;
  while (fd >= 0 && off < sg->size) {
    uint8_t h[MW_RLOG_REC_HDR + 4];
    if (mw_pread_full(fd, h, sizeof h, off) != (ssize_t)sizeof h) break;
    uint64_t next = off + MW_RLOG_REC_HDR + mw_get32(h + 1);
    if (next > sg->size || next > p->off) {
      count = mw_is_counted(l, h[0]) ? mw_get32(h + MW_RLOG_REC_HDR) : 0;
      break;
    }
    off = next;
  }
  if (fd >= 0) close(fd);
  if (off != p->off) {
    p->off = off;
    p->idx = 0;
  } else if (p->idx > count) {
    p->idx = count;
  }
}

void mw_rlog_cursor_close(mw_rlog_cursor_t *c) {
  if (!c) return;
  mw_rlog_t *l = c->log;
  if (c->dirty) mw_cursor_save(c, NULL, 0); /* best effort: a stale cursor only resends */
  for (size_t i = 0; i < l->ncursors; i++)
    if (l->cursors[i] == c) {
      l->cursors[i] = l->cursors[--l->ncursors];
      break;
    }
  if (c->fd >= 0) close(c->fd);
  free(c->path);
  free(c->tmp);
  free(c->prev);
  free(c->name);
  free(c->buf);
  free(c);
}

int mw_rlog_cursor_open(mw_rlog_t *l, const char *name, mw_rlog_cursor_t **out, char *err,
                        size_t errlen) {
  *out = NULL;
  if (l->closed) {
    mw_seterr(err, errlen, "%s closed", l->opts.what);
    return -1;
  }
  size_t nl = strlen(name);
  if (!nl || nl > 128) goto bad_name;
  for (size_t i = 0; i < nl; i++) {
    char ch = name[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '_' || ch == '-' || ch == '.'))
      goto bad_name;
  }
  for (size_t i = 0; i < l->ncursors; i++)
    if (strcmp(l->cursors[i]->name, name) == 0) {
      mw_seterr(err, errlen, "reader \"%s\" is already open", name);
      return -1;
    }
  mw_rlog_cursor_t *c = calloc(1, sizeof *c);
  if (!c) goto oom;
  c->fd = -1;
  c->log = l;
  char file[160];
  snprintf(file, sizeof file, "cursor.%s", name);
  c->path = mw_path(l->cursor_dir, file);
  snprintf(file, sizeof file, ".cursor.%s.tmp", name); /* never another cursor's file */
  c->tmp = mw_path(l->cursor_dir, file);
  snprintf(file, sizeof file, ".cursor.%s.prev", name);
  c->prev = mw_path(l->cursor_dir, file);
  c->name = strdup(name);
  if (!c->path || !c->tmp || !c->prev || !c->name ||
      mw_grow((void **)&l->cursors, &l->cursors_cap, l->ncursors + 1, sizeof *l->cursors) != 0) {
    mw_rlog_cursor_close(c);
    goto oom;
  }
  /* The saved cursor, else its previous copy (a crash between the renames, a
   * damaged file); without either, the oldest data. */
  mw_rlog_pos_t p = {l->nsegs ? l->segs[0].index : 0, MW_RLOG_SEG_HDR, 0}, got_pos;
  char why[160] = "", why_prev[160] = "";
  int got = mw_cursor_load(c->path, &got_pos, why, sizeof why);
  if (got <= 0) {
    int prev = mw_cursor_load(c->prev, &got_pos, why_prev, sizeof why_prev);
    if (got < 0) {
      /* kept aside for a look, never rotated into the previous copy */
      snprintf(file, sizeof file, ".cursor.%s.damaged", name);
      char *aside = mw_path(l->cursor_dir, file);
      if (aside && unlink(aside) != 0) rmdir(aside); /* the last damaged one */
      if (aside && rename(c->path, aside) != 0) unlink(c->path);
      free(aside);
      c->cursor_errors++;
      if (prev > 0)
        snprintf(c->note, sizeof c->note,
                 "cursor file %s: %s: using its previous copy (a second of %s may be resent)",
                 c->path, why, l->opts.items);
      else
        snprintf(c->note, sizeof c->note,
                 "cursor file %s: %s, and no good previous copy: reading the %s from its oldest "
                 "data (%s already sent are sent again)",
                 c->path, why, l->opts.what, l->opts.items);
    }
    got = prev;
  }
  if (got > 0) {
    if (l->nsegs && got_pos.seg > mw_head(l)->index) {
      c->cursor_errors++;
      snprintf(c->note, sizeof c->note,
               "cursor file %s: position %u:%llu is past the %s's end: reading the %s from its "
               "oldest data (%s already sent are sent again)",
               c->path, got_pos.seg, (unsigned long long)got_pos.off, l->opts.what, l->opts.what,
               l->opts.items);
    } else if (l->nsegs && got_pos.seg >= l->segs[0].index) {
      p = got_pos;
      mw_pos_align(l, &p);
    }
  }
  /* What the log holds before the cursor was delivered before this open. */
  for (size_t i = 0; i < l->nsegs && l->segs[i].index <= p.seg; i++) {
    const mw_rlog_seg_t *sg = &l->segs[i];
    c->items_before_open +=
        sg->index < p.seg ? sg->items : sg->items - mw_count_from(l, sg, p.off, p.idx);
  }
  c->committed = c->read = p;
  l->cursors[l->ncursors++] = c;
  *out = c;
  return 0;
bad_name:
  mw_seterr(err, errlen, "invalid reader name \"%s\"", name);
  return -1;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

int mw_rlog_cursor_commit(mw_rlog_cursor_t *c, mw_rlog_pos_t pos, char *err, size_t errlen) {
  if (mw_rlog_pos_cmp(pos, c->committed) <= 0) return 0;
  c->committed = pos;
  if (c->log->closed) return 0;
  /* The cursor file is rewritten at most once a second (every commit with
   * policy ALWAYS) and at close: a crash resends at most the last second of
   * committed data, never skips any. */
  c->dirty = 1;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
  if (!c->save_every_commit && c->log->opts.fsync != MW_RLOG_FSYNC_ALWAYS &&
      now - c->saved_at < 1.0)
    return 0;
  c->saved_at = now;
  c->dirty = 0;
  return mw_cursor_save(c, err, errlen);
}

/* --- reading ---------------------------------------------------------- */

int mw_rlog_seek(mw_rlog_t *l, mw_rlog_pos_t *pos) {
  for (;;) {
    mw_rlog_seg_t *sg = mw_seg_from(l, pos->seg);
    if (!sg) return 0;
    if (sg->index != pos->seg || pos->off < MW_RLOG_SEG_HDR)
      *pos = (mw_rlog_pos_t){sg->index, MW_RLOG_SEG_HDR, 0};
    if (pos->off < sg->size) return 1;
    if (sg == mw_head(l)) return 0;
    *pos = (mw_rlog_pos_t){sg->index + 1, MW_RLOG_SEG_HDR, 0};
  }
}

int mw_rlog_read(mw_rlog_cursor_t *c, const mw_rlog_pos_t *pos, mw_rlog_rec_t *rec, char *err,
                 size_t errlen) {
  mw_rlog_t *l = c->log;
  mw_rlog_seg_t *sg = mw_seg_from(l, pos->seg);
  if (!sg || sg->index != pos->seg) return 0;
  if (c->fd < 0 || c->fd_seg != sg->index) {
    if (c->fd >= 0) close(c->fd);
    char *p = mw_seg_path(l, sg->index);
    c->fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
    int e = p ? errno : ENOMEM;
    free(p);
    c->fd_seg = sg->index;
    /* a segment file removed from under the log: its records are gone, as a damaged
     * segment's (skipped, counted), never an error that stops the reader for good */
    if (c->fd < 0 && e == ENOENT) return 0;
    if (c->fd < 0) {
      mw_seterr(err, errlen, "segment %08u: %s", sg->index, strerror(e));
      return -1;
    }
  }
  *rec = (mw_rlog_rec_t){.seg = sg->index};
  int rc = mw_rec_read(l, c->fd, pos->off, sg->size, &c->buf, &c->buf_cap, &rec->type, &rec->len);
  if (rc == -2) {
    mw_seterr(err, errlen, "segment %08u: %s", sg->index, strerror(errno));
    return -1;
  }
  if (rc <= 0) return 0;
  rec->p = c->buf;
  return 1;
}

void mw_rlog_skip_corrupt(mw_rlog_t *l, mw_rlog_pos_t *pos) {
  mw_rlog_seg_t *sg = mw_seg_from(l, pos->seg);
  if (!sg || sg->index != pos->seg) return;
  l->st.corruptions++;
  l->st.corrupt_bytes += sg->size - pos->off;
  if (sg == mw_head(l)) {
    l->cut_next = 1; /* the writer moves on; this reader skips to the end */
    pos->off = sg->size;
  } else {
    sg->size = pos->off;
  }
  pos->idx = 0;
}

/* --- truncation ------------------------------------------------------- */

long mw_rlog_truncate_plan(mw_rlog_t *l, const mw_rlog_bounds_t *b, char *err, size_t errlen) {
  if (l->closed) {
    mw_seterr(err, errlen, "%s closed", l->opts.what);
    return -1;
  }
  /* A new head, so that a quiet log's data can age out too. */
  if (mw_head(l)->size > MW_RLOG_SEG_HDR && mw_new_segment(l, err, errlen) != 0) return -1;
  uint64_t bytes = 0;
  if (b->max_bytes) {
    mw_rlog_stats_t st;
    mw_rlog_stats(l, &st);
    bytes = st.bytes;
  }
  size_t k = 0;
  for (; k + 1 < l->nsegs; k++) {
    const mw_rlog_seg_t *sg = &l->segs[k];
    int read = 1;
    for (size_t i = 0; i < l->ncursors; i++) {
      mw_rlog_pos_t c = l->cursors[i]->committed;
      if (c.seg < sg->index || (c.seg == sg->index && mw_count_from(l, sg, c.off, c.idx) > 0))
        read = 0;
    }
    int forced = !sg->items || sg->max_ts < b->max_cut || (b->max_bytes && bytes > b->max_bytes);
    if (!((read && sg->max_ts < b->min_cut) || forced)) break;
    bytes -= b->max_bytes ? sg->size : 0;
  }
  return (long)k;
}

int mw_rlog_truncate_cursors(mw_rlog_t *l, size_t k, uint64_t *dropped_max, char *err,
                             size_t errlen) {
  *dropped_max = 0;
  if (!k || k >= l->nsegs) return 0;
  mw_rlog_pos_t start = {l->segs[k].index, MW_RLOG_SEG_HDR, 0};
  /* Cursors that had not committed the removed data jump past it. */
  int rc = 0;
  for (size_t i = 0; i < l->ncursors; i++) {
    mw_rlog_cursor_t *c = l->cursors[i];
    if (mw_rlog_pos_cmp(c->committed, start) >= 0) continue;
    uint64_t dropped = 0;
    for (size_t j = 0; j < k; j++) {
      const mw_rlog_seg_t *sg = &l->segs[j];
      if (sg->index > c->committed.seg)
        dropped += sg->items;
      else if (sg->index == c->committed.seg)
        dropped += mw_count_from(l, sg, c->committed.off, c->committed.idx);
    }
    c->items_dropped += dropped;
    if (dropped > *dropped_max) *dropped_max = dropped;
    c->committed = start;
    if (mw_rlog_pos_cmp(c->read, start) < 0) c->read = start;
    if (mw_cursor_save(c, err, errlen) != 0) rc = -1;
  }
  return rc;
}

int mw_rlog_cp_write(mw_rlog_cpw_t *w, const void *p, size_t n) {
  if (mw_write_full(w->fd, p, n) != 0) {
    w->failed = 1;
    w->err_no = errno;
    return -1;
  }
  w->bytes += n;
  return 0;
}

/* Writes checkpoint.N through cp. Durable (fsync) before it is renamed into
 * place. 0, or -1 with err. */
static int mw_write_checkpoint(mw_rlog_t *l, uint32_t n, mw_rlog_checkpoint_fn cp, void *ctx,
                               char *err, size_t errlen) {
  char name[40];
  snprintf(name, sizeof name, "checkpoint.%08u.tmp", n);
  char *tmp = mw_path(l->dir, name);
  snprintf(name, sizeof name, "checkpoint.%08u", n);
  char *final = mw_path(l->dir, name);
  char *file = tmp ? mw_path(tmp, "00000000") : NULL;
  mw_rlog_cpw_t w = {.fd = -1};
  int rc = -1;
  if (!tmp || !final || !file) {
    mw_seterr(err, errlen, "out of memory");
    goto done;
  }
  mw_rmdir(tmp);
  if (mkdir(tmp, 0750) != 0) goto io;
  w.fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (w.fd < 0 || mw_rlog_cp_write(&w, l->magic, MW_RLOG_SEG_HDR) != 0) goto io;
  if (cp && cp(ctx, &w, err, errlen) != 0) {
    if (w.failed) {
      errno = w.err_no;
      goto io;
    }
    goto done;
  }
  if (fsync(w.fd) != 0) goto io;
  close(w.fd);
  w.fd = -1;
  if (mw_fsync_dir(tmp) != 0 || rename(tmp, final) != 0 || mw_fsync_dir(l->dir) != 0) goto io;
  l->checkpoint_bytes = w.bytes;
  rc = 0;
  goto done;
io:
  mw_seterr(err, errlen, "checkpoint %s: %s", tmp, strerror(errno));
done:
  if (w.fd >= 0) close(w.fd);
  if (rc != 0 && tmp) mw_rmdir(tmp);
  free(tmp);
  free(final);
  free(file);
  return rc;
}

int mw_rlog_truncate_finish(mw_rlog_t *l, size_t k, mw_rlog_checkpoint_fn cp, void *ctx, char *err,
                            size_t errlen) {
  if (!k || k >= l->nsegs) return 0;
  /* The checkpoint first, then the segments and checkpoint it replaces. */
  uint32_t old_cp = l->checkpoint, first = l->segs[k].index;
  if (mw_write_checkpoint(l, first - 1, cp, ctx, err, errlen) != 0) return -1;
  l->checkpoint = first - 1;
  l->st.checkpoints++;
  for (size_t j = 0; j < k; j++) {
    char *p = mw_seg_path(l, l->segs[j].index);
    if (p) unlink(p);
    free(p);
  }
  if (old_cp && old_cp != l->checkpoint) {
    char name[32];
    snprintf(name, sizeof name, "checkpoint.%08u", old_cp);
    char *p = mw_path(l->dir, name);
    if (p) mw_rmdir(p);
    free(p);
  }
  memmove(l->segs, l->segs + k, (l->nsegs - k) * sizeof *l->segs);
  l->nsegs -= k;
  l->st.segments_removed += k;
  return 0;
}
