/* exporters/node/filesystem.c: the filesystem collector (node_exporter
 * collector/filesystem_linux.go): mounts from <procfs>/1/mounts (else <procfs>/mounts), filtered by
 * the mount point and fs type regexes, statfs'd under rootfs.
 *
 * statfs on a hung mount (NFS, FUSE) can block forever, so the calls run in a
 * detached worker thread and the collector waits for each at most
 * fs_mount_timeout. All mounts of one collection go to a worker in ONE batch
 * (one hand-off, one wake-up back), which it statfs's in order, noting when
 * it started each; the collector sleeps until the batch is done or the mount
 * in progress has run past the timeout. On a timeout that mount point is
 * marked stuck and reported with node_filesystem_device_error 1 (and no other
 * series) until its abandoned statfs finally returns, which unmarks it: the
 * same rule as node_exporter's stuckMounts, except that the scrape that hits
 * the hang is not blocked either. The worker stops after the hung mount; the
 * mounts after it go to another worker as a new batch. Workers are kept: one
 * that finished its batch waits for the next (a thread is only started when
 * none is idle, i.e. the first time and while others hang), and all exit when
 * the collector set is freed. Workers share only the refcounted state. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <time.h>

#include "exporters/node/node.h"

int (*mw_node_statfs_fn)(const char *path, struct statfs *buf) = statfs;

typedef struct batch batch_t;

struct mw_node_fs_state {
  pthread_mutex_t mu;
  pthread_cond_t work; /* idle workers wait here for next or closing */
  pthread_cond_t done; /* the collector waits here for its batch (CLOCK_MONOTONIC) */
  int refs;            /* the collector set + each worker */
  int idle;            /* workers waiting on work */
  int closing;         /* the collector set is gone: idle workers exit */
  batch_t *next;       /* a batch handed to an idle worker, not yet taken */
  char **stuck;        /* mount points whose statfs timed out and has not returned */
  size_t nstuck;
};

typedef struct {
  const char *path;       /* what statfs is called on */
  const char *mountpoint; /* the stuck-set key */
  size_t index;           /* the caller's index of this mount */
  int err;                /* errno of a failed statfs, else 0 */
  struct statfs buf;
} item_t;

/* One allocation: the batch, its items, then their strings. Fields are read
 * and written with st->mu held. */
struct batch {
  mw_node_fs_state_t *st;
  size_t n;
  size_t taken;  /* items the worker has started */
  size_t done;   /* items finished (taken - 1 while one is in statfs) */
  size_t end;    /* the worker stops before this item */
  int finished;  /* the worker is through with it (not abandoned): the collector frees it */
  int abandoned; /* the collector gave up on item end - 1: the worker frees it */
  struct timespec cur_start; /* when item `done` was started (or handed over) */
  item_t items[];
};

static int fs_state_new(mw_node_fs_state_t **out) {
  mw_node_fs_state_t *st = calloc(1, sizeof *st);
  pthread_condattr_t ca;
  if (!st) return -1;
  if (pthread_mutex_init(&st->mu, NULL) != 0) {
    free(st);
    return -1;
  }
  if (pthread_cond_init(&st->work, NULL) != 0) {
    pthread_mutex_destroy(&st->mu);
    free(st);
    return -1;
  }
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  int ok = pthread_cond_init(&st->done, &ca) == 0;
  pthread_condattr_destroy(&ca);
  if (!ok) {
    pthread_cond_destroy(&st->work);
    pthread_mutex_destroy(&st->mu);
    free(st);
    return -1;
  }
  st->refs = 1;
  *out = st;
  return 0;
}

/* Drops a reference; the last one frees. Called without st->mu held. */
static void state_unref(mw_node_fs_state_t *st) {
  pthread_mutex_lock(&st->mu);
  int last = --st->refs == 0;
  pthread_mutex_unlock(&st->mu);
  if (!last) return;
  for (size_t i = 0; i < st->nstuck; i++)
    free(st->stuck[i]);
  free(st->stuck);
  pthread_cond_destroy(&st->done);
  pthread_cond_destroy(&st->work);
  pthread_mutex_destroy(&st->mu);
  free(st);
}

void mw_node_release_filesystem(mw_node_t *n) {
  mw_node_fs_state_t *st = n->fs;
  n->fs = NULL;
  if (!st) return;
  pthread_mutex_lock(&st->mu);
  st->closing = 1;
  pthread_cond_broadcast(&st->work);
  pthread_mutex_unlock(&st->mu);
  state_unref(st);
}

/* With st->mu held. */
static ssize_t stuck_find(mw_node_fs_state_t *st, const char *mp) {
  for (size_t i = 0; i < st->nstuck; i++)
    if (strcmp(st->stuck[i], mp) == 0) return (ssize_t)i;
  return -1;
}

static void stuck_del(mw_node_fs_state_t *st, const char *mp) {
  ssize_t i = stuck_find(st, mp);
  if (i < 0) return;
  free(st->stuck[i]);
  st->stuck[i] = st->stuck[--st->nstuck];
}

/* Runs batches: the one it was started with, then each handed over in next,
 * until the collector set is freed. */
static void *worker(void *arg) {
  batch_t *b = arg;
  mw_node_fs_state_t *st = b->st;
  pthread_mutex_lock(&st->mu);
  while (b) {
    while (b->taken < b->end) {
      item_t *it = &b->items[b->taken++];
      clock_gettime(CLOCK_MONOTONIC, &b->cur_start);
      pthread_mutex_unlock(&st->mu);
      struct statfs buf;
      memset(&buf, 0, sizeof buf);
      int r = mw_node_statfs_fn(it->path, &buf), e = errno;
      pthread_mutex_lock(&st->mu);
      it->err = r < 0 ? (e ? e : EIO) : 0;
      it->buf = buf;
      b->done++;
    }
    int wake = !b->abandoned;
    if (b->abandoned) {
      /* recovered: monitored again from the next scrape */
      stuck_del(st, b->items[b->end - 1].mountpoint);
      free(b);
    } else {
      b->finished = 1;
    }
    b = NULL;
    st->idle++;
    if (wake) { /* signalled unlocked: the collector does not wake into a held mutex */
      pthread_mutex_unlock(&st->mu);
      pthread_cond_signal(&st->done);
      pthread_mutex_lock(&st->mu);
    }
    while (!st->next && !st->closing)
      pthread_cond_wait(&st->work, &st->mu);
    st->idle--;
    b = st->next;
    st->next = NULL;
  }
  pthread_mutex_unlock(&st->mu);
  state_unref(st);
  return NULL;
}

static void ts_add(struct timespec *t, double sec) {
  double whole = (double)(long long)sec;
  t->tv_sec += (time_t)whole;
  t->tv_nsec += (long)((sec - whole) * 1e9);
  if (t->tv_nsec >= 1000000000L) {
    t->tv_sec++;
    t->tv_nsec -= 1000000000L;
  }
}

static int ts_before(const struct timespec *a, const struct timespec *b) {
  return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Hands b to an idle worker or a new thread. 0, or -1 (no thread to be had). */
static int hand_over(mw_node_fs_state_t *st, batch_t *b) {
  pthread_attr_t ta;
  pthread_t tid;
  pthread_mutex_lock(&st->mu);
  clock_gettime(CLOCK_MONOTONIC, &b->cur_start);
  if (st->idle > 0 && !st->next) { /* an idle worker takes it */
    st->next = b;
    pthread_mutex_unlock(&st->mu);
    pthread_cond_signal(&st->work);
    return 0;
  }
  st->refs++;
  pthread_mutex_unlock(&st->mu);
  pthread_attr_init(&ta);
  pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&ta, 64 * 1024);
  int started = pthread_create(&tid, &ta, worker, b) == 0;
  pthread_attr_destroy(&ta);
  if (started) return 0;
  pthread_mutex_lock(&st->mu);
  st->refs--;
  pthread_mutex_unlock(&st->mu);
  return -1;
}

/* statfs of the n mounts paths[i] (stuck-set keys mps[i]), each with the
 * timeout: res[i] = 0 (bufs[i] filled), -1 (errno-like code in errs[i]), or
 * -2 when the call timed out or the mount is stuck. */
static void statfs_all(mw_node_fs_state_t *st, size_t n, char *const *paths, char *const *mps,
                       double timeout, int *res, int *errs, struct statfs *bufs) {
  size_t from = 0;
  while (from < n) {
    size_t m = 0, bytes = 0;
    pthread_mutex_lock(&st->mu);
    for (size_t i = from; i < n; i++) {
      res[i] = stuck_find(st, mps[i]) >= 0 ? -2 : 1; /* 1: to do */
      if (res[i] == 1) {
        m++;
        bytes += strlen(paths[i]) + strlen(mps[i]) + 2;
      }
    }
    pthread_mutex_unlock(&st->mu);
    if (m == 0) return;
    batch_t *b = calloc(1, sizeof *b + m * sizeof(item_t) + bytes);
    if (b) {
      char *p = (char *)&b->items[m];
      b->st = st;
      b->n = b->end = m;
      for (size_t i = from, k = 0; i < n; i++) {
        if (res[i] != 1) continue;
        item_t *it = &b->items[k++];
        size_t pl = strlen(paths[i]) + 1, ml = strlen(mps[i]) + 1;
        it->index = i;
        it->path = memcpy(p, paths[i], pl);
        p += pl;
        it->mountpoint = memcpy(p, mps[i], ml);
        p += ml;
      }
    }
    if (!b || hand_over(st, b) < 0) { /* no thread to be had: call them here */
      free(b);
      for (size_t i = from; i < n; i++) {
        if (res[i] != 1) continue;
        res[i] = mw_node_statfs_fn(paths[i], &bufs[i]) < 0 ? -1 : 0;
        if (res[i] < 0) errs[i] = errno;
      }
      return;
    }
    pthread_mutex_lock(&st->mu);
    int timed_out = 0;
    while (!b->finished) {
      struct timespec deadline = b->cur_start, now;
      ts_add(&deadline, timeout);
      int rc = pthread_cond_timedwait(&st->done, &st->mu, &deadline);
      if (b->finished || rc != ETIMEDOUT) continue;
      /* the deadline was the item's then in progress; is this one late? */
      clock_gettime(CLOCK_MONOTONIC, &now);
      deadline = b->cur_start;
      ts_add(&deadline, timeout);
      if (!ts_before(&now, &deadline)) {
        timed_out = 1;
        break;
      }
    }
    size_t ndone = b->done;
    for (size_t k = 0; k < ndone; k++) {
      const item_t *it = &b->items[k];
      res[it->index] = it->err ? -1 : 0;
      errs[it->index] = it->err;
      bufs[it->index] = it->buf;
    }
    if (!timed_out) {
      pthread_mutex_unlock(&st->mu);
      free(b);
      return;
    }
    /* item ndone hangs: the worker frees b once its statfs returns */
    const item_t *late = &b->items[ndone];
    size_t late_index = late->index;
    b->abandoned = 1;
    b->end = ndone + 1;
    res[late_index] = -2;
    char *key = strdup(late->mountpoint);
    char **ns = key ? realloc(st->stuck, (st->nstuck + 1) * sizeof *ns) : NULL;
    if (ns) {
      st->stuck = ns;
      st->stuck[st->nstuck++] = key;
    } else {
      free(key);
    }
    pthread_mutex_unlock(&st->mu);
    from = late_index + 1;
  }
}

/* Replaces the fstab(5) escapes node_exporter handles: \040 (space), \011 (tab). */
static void unescape(char *s) {
  char *o = s;
  for (; *s; s++) {
    if (s[0] == '\\' && s[1] == '0' && s[2] == '4' && s[3] == '0') {
      *o++ = ' ';
      s += 3;
    } else if (s[0] == '\\' && s[1] == '0' && s[2] == '1' && s[3] == '1') {
      *o++ = '\t';
      s += 3;
    } else {
      *o++ = *s;
    }
  }
  *o = '\0';
}

int mw_node_collect_filesystem(mw_node_scrape_t *s) {
  mw_node_t *n = s->node;
  const char *data = mw_node_read(s, mw_node_proc_path(s, "1/mounts"), NULL);
  if (!data && errno == ENOENT) data = mw_node_read(s, mw_node_proc_path(s, "mounts"), NULL);
  if (!data) return mw_node_fail(s, "%s/mounts: %s", n->procfs, strerror(errno));
  if (!n->fs && fs_state_new(&n->fs) < 0) return mw_node_fail(s, "out of memory");
  char *copy = strdup(data);
  if (!copy) return mw_node_fail(s, "out of memory");
  int rc = -1;
  size_t nlines = 1;
  /* every line must parse before anything is reported (parseFilesystemLabels) */
  for (const char *p = copy; *p;) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    char line[64];
    snprintf(line, sizeof line, "%.*s", (int)(len < 63 ? len : 63), p);
    int words = 0;
    for (size_t i = 0, in = 0; i < len; i++) {
      int sp = p[i] == ' ' || p[i] == '\t' || p[i] == '\r';
      if (!sp && !in) words++;
      in = !sp;
    }
    if (words < 4) {
      mw_node_fail(s, "malformed mount point information: \"%s\"", line);
      goto cleanup_copy;
    }
    if (!nl) break;
    nlines++;
    p = nl + 1;
  }
  static const struct {
    const char *name, *help;
  } fams[7] = {
      {"node_filesystem_device_error",
       "Whether an error occurred while getting statistics for the given device."},
      {"node_filesystem_size_bytes", "Filesystem size in bytes."},
      {"node_filesystem_free_bytes", "Filesystem free space in bytes."},
      {"node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes."},
      {"node_filesystem_files", "Filesystem total file nodes."},
      {"node_filesystem_files_free", "Filesystem total free file nodes."},
      {"node_filesystem_readonly", "Filesystem read-only status."},
  };
  int32_t fh[7];
  for (int i = 0; i < 7; i++)
    fh[i] =
        mw_node_family(s, fams[i].name, fams[i].help, MW_METRICS_GAUGE, "device,mountpoint,fstype");
  /* the mounts to statfs, in file order: fields point into copy */
  typedef struct {
    char *dev, *mp, *type, *opts;
  } mount_t;
  mount_t *mounts = calloc(nlines, sizeof *mounts);
  char **paths = calloc(nlines, sizeof *paths), **mps = calloc(nlines, sizeof *mps);
  int *res = calloc(nlines, sizeof *res), *errs = calloc(nlines, sizeof *errs);
  struct statfs *bufs = calloc(nlines, sizeof *bufs);
  size_t nm = 0;
  if (!mounts || !paths || !mps || !res || !errs || !bufs) {
    mw_node_fail(s, "out of memory");
    goto cleanup;
  }
  size_t rootlen = strcmp(n->rootfs, "/") == 0 ? 0 : strlen(n->rootfs);
  for (char *line = copy; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    char *f[6];
    size_t nf = mw_node_fields(line, f, 6);
    line = nl ? nl + 1 : NULL;
    if (nf < 4) continue;
    char *dev = f[0], *mp = f[1], *type = f[2], *opts = f[3];
    unescape(mp);
    /* rootfsStripPrefix */
    if (rootlen && strncmp(mp, n->rootfs, rootlen) == 0) {
      mp += rootlen;
      if (!*mp) mp = "/";
    }
    if (mw_node_re_match(n->fs_mount_points_exclude, mp, strlen(mp))) continue;
    if (mw_node_re_match(n->fs_types_exclude, type, strlen(type))) continue;
    char path[8192];
    snprintf(path, sizeof path, "%s%s%s", rootlen ? n->rootfs : "", mp[0] == '/' ? "" : "/", mp);
    if (!(paths[nm] = strdup(path))) {
      mw_node_fail(s, "out of memory");
      goto cleanup;
    }
    mps[nm] = mp;
    mounts[nm++] = (mount_t){dev, mp, type, opts};
  }
  statfs_all(n->fs, nm, paths, mps, n->fs_mount_timeout, res, errs, bufs);
  for (size_t m = 0; m < nm; m++) {
    const mount_t *mt = &mounts[m];
    mw_node_put(s, fh[0], res[m] == 0 ? 0 : 1, mt->dev, mt->mp, mt->type);
    if (res[m] != 0) continue;
    int ro = 0;
    for (char *o = mt->opts; o && *o;) {
      char *c = strchr(o, ',');
      size_t ol = c ? (size_t)(c - o) : strlen(o);
      if (ol == 2 && o[0] == 'r' && o[1] == 'o') ro = 1;
      o = c ? c + 1 : NULL;
    }
    const struct statfs *b = &bufs[m];
    double bs = (double)b->f_bsize;
    double v[6] = {(double)b->f_blocks * bs, (double)b->f_bfree * bs, (double)b->f_bavail * bs,
                   (double)b->f_files,       (double)b->f_ffree,      ro};
    for (int i = 0; i < 6; i++)
      mw_node_put(s, fh[i + 1], v[i], mt->dev, mt->mp, mt->type);
  }
  rc = 0;
cleanup:
  for (size_t m = 0; paths && m < nm; m++)
    free(paths[m]);
  free(mounts);
  free(paths);
  free(mps);
  free(res);
  free(errs);
  free(bufs);
cleanup_copy:
  free(copy);
  return rc;
}
