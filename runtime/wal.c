/* wal.c: the remote_write write-ahead log (see wal.h for the format and the
 * guarantees). The writer keeps every live series in a series table (s =
 * the table's ref) with, per s, its WAL ref and the newest segment that
 * mentions it; a map WAL ref -> s serves replay and the readers, which take
 * labels from it instead of keeping their own copies (WAL refs are never
 * reused, and a series is only forgotten once no kept segment mentions it). */
#include "wal.h"
#include "err.h"

#include <assert.h>
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
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "crc32c.h"
#include "labels.h"
#include "relabel.h"
#include "rwenc.h"
#include "series.h"

#define MW_MAGIC "MWWAL001"
#define MW_SEG_HDR 8u
#define MW_REC_HDR 9u
#define MW_REC_SERIES 1
#define MW_REC_SAMPLES 2
#define MW_REC_EXEMPLARS 3
#define MW_MAX_RECORD (64u << 20)       /* a longer length is corruption */
#define MW_SERIES_REC_BYTES (16u << 20) /* a series record is closed past this */
#define MW_SAMPLES_PER_REC (1u << 20)
#define MW_SAMPLE_MAX 28u /* two varints and the value */
#define MW_MAX_MEMOS 4096
#define MW_NONE UINT32_MAX

typedef struct {
  uint32_t index;
  uint64_t size; /* bytes up to the end of the last good record */
  int64_t min_ts, max_ts;
  uint64_t samples;
} mw_seg_t;

typedef struct {
  uint32_t seg;
  uint64_t off; /* a record's offset */
  uint32_t idx; /* samples of that record already read */
} mw_pos_t;

typedef struct {
  uint32_t stamp; /* the source entry's stamp; 0: nothing */
  uint32_t s;
} mw_wmemo_entry_t;

typedef struct {
  uint64_t uid, used;
  mw_wmemo_entry_t *e;
  size_t cap;
  struct mw_wsrc *src; /* the source table's record (mw_wsrc_get), NULL: not looked up yet */
} mw_wmemo_t;

typedef struct {
  uint8_t *p;
  size_t len, cap;
} mw_buf_t;

/* An fsync on a worker thread (policy INTERVAL, mw_wal_sync_start): it
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

typedef struct {
  const uint8_t *p, *end;
  uint32_t left;
  uint64_t ref;
  int64_t base;
} mw_sdec_t;

struct mw_wal {
  char *dir, *wal_dir;
  mw_wal_opts_t opts;
  mw_seg_t *segs; /* by index; the last one is written to */
  size_t nsegs, segs_cap;
  int head_fd;
  int cut_next;  /* start a new segment before the next append */
  int dirty_dir; /* a segment was created since the last directory fsync */
  int *unsynced; /* INTERVAL: fds of finished segments, for the next sync */
  size_t nunsynced, unsynced_cap;
  mw_syncjob_t *job;   /* the fsync running on a worker thread, NULL: none */
  uint32_t checkpoint; /* N of checkpoint.N, 0: none */
  uint64_t checkpoint_bytes;
  mw_series_t *tab;
  uint64_t *wref;     /* by s: WAL ref, 0: needs a (new) series record */
  uint32_t *last_seg; /* by s: newest segment with a record of the series */
  size_t scap;
  uint64_t *map_k; /* WAL ref -> s, open addressing, key 0 = empty */
  uint32_t *map_v;
  size_t map_mask, map_len;
  uint64_t next_ref;
  mw_wmemo_t *memos;
  size_t nmemos, memos_cap;
  uint32_t *memo_slots; /* index of memos by uid: memo index + 1, 0 empty */
  size_t memo_mask;     /* slots - 1 (0: no index) */
  struct mw_wsrc *srcs; /* the tables tab borrows label bytes from */
  uint64_t tick;
  mw_buf_t sbuf, dbuf, rbuf;
  uint32_t *ss; /* per sample of the batch being appended: s or MW_NONE */
  size_t ss_cap;
  uint32_t *created;
  size_t ncreated, created_cap;
  mw_wal_reader_t **readers;
  size_t nreaders, readers_cap;
  int closed;
  mw_wal_stats_t st;
  char *log;
  size_t log_len, log_cap;
  /* exemplars: the record of the append, the last one written per s (a
   * hash, 0: none) and the (s, hash) pairs of this append */
  mw_buf_t ebuf;
  uint64_t *ex_last;
  size_t ex_last_cap;
  uint64_t *ex_new;
  size_t nex_new, ex_new_cap;
};

typedef struct {
  uint32_t s, n, at; /* series, samples, where its samples start */
  uint32_t shard, fill;
  uint64_t ref; /* its WAL ref */
} mw_slot_t;

/* One shard's request of the span handed out last: its series are
 * order[first, first + nslots) (slot indexes), their samples in g_ts/g_v. */
typedef struct {
  uint32_t n, first, nslots;
  uint32_t nex; /* exemplars */
  int64_t lo, hi;
} mw_shard_t;

/* A reader's write relabeling result for series s: computed for WAL ref
 * ref (0: nothing cached; refs are never reused, so a different ref means a
 * different series), kept with the label set rl_arena[off, off + len) or
 * dropped. */
typedef struct {
  uint64_t ref;
  size_t off;
  uint32_t len;
  uint32_t kept;
} mw_rlcache_t;

typedef struct {
  uint64_t seq;
  mw_pos_t end;
  uint32_t samples;
  int64_t max_ts;
  int acked;
  uint32_t exemplars;
} mw_flight_t;

/* An exemplar of the chunk being built: its series' slot, its labels in
 * the reader's rex_buf, the next exemplar of the slot (MW_NONE: last). */
typedef struct {
  uint32_t slot, next, len;
  size_t off;
  int64_t ts;
  double v;
} mw_rex_t;

struct mw_wal_reader {
  mw_wal_t *w;
  char *path, *tmp, *prev; /* cursor file, its temporary and its previous copy */
  char note[400];          /* what opening found wrong with the cursor ("" if nothing) */
  mw_pos_t committed, read;
  int fd;
  uint32_t fd_seg;
  /* the samples record being decoded */
  int rec_ok;
  uint32_t rec_seg, rec_len, dec_idx;
  uint64_t rec_off;
  mw_buf_t rec;
  mw_sdec_t dec;
  /* the chunk being built */
  uint32_t *c_slot;
  int64_t *c_ts;
  double *c_v;
  size_t c_cap;
  uint32_t *slot_of, *slot_gen; /* by s */
  size_t so_cap;
  uint32_t gen;
  mw_slot_t *slots; /* series of the chunk, in order of first sample */
  size_t nslots, slots_cap;
  uint32_t *order; /* slot indexes grouped by shard, each shard's in order of first sample */
  size_t order_cap;
  mw_shard_t *sh; /* the shards of the span being built */
  size_t sh_cap;
  uint32_t build_shards; /* shards of the span being read (exemplars pick their slot's shard) */
  int64_t build_min_ts;  /* and its min_ts: older exemplars are dropped like older samples */
  int64_t *g_ts;
  double *g_v;
  size_t g_cap;
  mw_rwenc_t **encs; /* one encoder per shard, created when first needed */
  size_t nencs, encs_cap;
  int encs_ext; /* the encoders add the external labels (no write relabeling) */
  uint8_t *ext; /* the external labels (encoded), NULL: none */
  size_t ext_len;
  /* write relabeling: the program (the caller's), its results by s */
  const mw_relabel_program_t *rl;
  mw_relabel_scratch_t *rl_scratch;
  mw_rlcache_t *rl_cache; /* so_cap entries while rl is set, else NULL */
  mw_buf_t rl_arena;
  mw_label_t *rl_in;
  size_t rl_in_cap;
  mw_flight_t *fl;
  size_t nfl, fl_cap;
  uint64_t seq;
  mw_wal_reader_stats_t st;
  double saved_at; /* monotonic seconds of the last cursor save */
  int dirty;       /* committed moved since the last save */
  /* exemplars of the chunk being built (send_exemplars) */
  int no_exemplars;
  mw_rex_t *rex;
  size_t nrex, rex_cap;
  mw_buf_t rex_buf;
  uint32_t *rex_head, *rex_tail; /* by slot */
  size_t rex_slots_cap;
};

/* --- helpers ---------------------------------------------------------- */

static int mw_grow(void **p, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 64;
  while (c < need) {
    if (c > SIZE_MAX / 4 / size) return -1;
    c *= 2;
  }
  void *q = realloc(*p, c * size);
  if (!q) return -1;
  *p = q;
  *cap = c;
  return 0;
}

static int mw_buf_reserve(mw_buf_t *b, size_t n) {
  return mw_grow((void **)&b->p, &b->cap, b->len + n, 1);
}

static void mw_put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void mw_put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t mw_get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t mw_get64(const uint8_t *p) {
  return (uint64_t)mw_get32(p) | (uint64_t)mw_get32(p + 4) << 32;
}

static uint8_t *mw_put_uvarint(uint8_t *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  return p;
}

static int mw_get_uvarint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  uint64_t x = 0;
  for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
    uint8_t b = *(*p)++;
    x |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return -1;
}

static uint64_t mw_zig(uint64_t u) { return (u << 1) ^ (0 - (u >> 63)); }

static uint64_t mw_unzig(uint64_t u) { return (u >> 1) ^ (0 - (u & 1)); }

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
static int mw_sync_end(mw_wal_t *w, mw_syncjob_t *j, char *err, size_t errlen) {
  w->st.fsyncs += j->synced;
  int rc = 0;
  if (j->err_no) {
    if (j->dir_failed) w->dirty_dir = 1;
    mw_seterr(err, errlen, "fsync %s: %s", j->dir_failed ? w->wal_dir : "segment",
              strerror(j->err_no));
    rc = -1;
  }
  mw_syncjob_free(j);
  return rc;
}

/* Ends the job on the worker (waiting for it if wait, else only if it is
 * done). 1 still running (not wait), 0 done or none, -1 with err if it
 * failed. */
static int mw_sync_collect(mw_wal_t *w, int wait, char *err, size_t errlen) {
  mw_syncjob_t *j = w->job;
  if (!j) return 0;
  if (!wait && !atomic_load(&j->done)) return 1;
  pthread_join(j->thread, NULL);
  w->job = NULL;
  return mw_sync_end(w, j, err, errlen);
}

/* Syncs (if sync) and closes the fds of finished segments not yet synced. */
static void mw_sync_unsynced(mw_wal_t *w, int sync) {
  for (size_t i = 0; i < w->nunsynced; i++) {
    if (sync && fdatasync(w->unsynced[i]) == 0) w->st.fsyncs++;
    close(w->unsynced[i]);
  }
  w->nunsynced = 0;
}

static char *mw_path(const char *a, const char *b) {
  size_t n = strlen(a) + strlen(b) + 2;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/%s", a, b);
  return p;
}

static char *mw_seg_path(const mw_wal_t *w, uint32_t index) {
  char name[16];
  snprintf(name, sizeof name, "%08u", index);
  return mw_path(w->wal_dir, name);
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

static void mw_log(mw_wal_t *w, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof line) n = sizeof line - 1;
  if (mw_grow((void **)&w->log, &w->log_cap, w->log_len + (size_t)n + 2, 1) != 0) return;
  memcpy(w->log + w->log_len, line, (size_t)n);
  w->log_len += (size_t)n;
  w->log[w->log_len++] = '\n';
  w->log[w->log_len] = '\0';
}

/* --- records ---------------------------------------------------------- */

/* Starts a record of type at the end of b (header and count reserved, extra
 * more bytes of room); returns its offset in b, or SIZE_MAX on OOM. */
static size_t mw_rec_begin(mw_buf_t *b, uint8_t type, size_t extra) {
  if (mw_buf_reserve(b, MW_REC_HDR + 4 + extra) != 0) return SIZE_MAX;
  size_t at = b->len;
  b->p[at] = type;
  b->len += MW_REC_HDR + 4;
  return at;
}

/* Fills in the header of the record started at `at` (it ends at b->len). */
static void mw_rec_end(mw_buf_t *b, size_t at, uint32_t count) {
  uint8_t *h = b->p + at;
  uint32_t len = (uint32_t)(b->len - at - MW_REC_HDR);
  mw_put32(h + 1, len);
  mw_put32(h + MW_REC_HDR, count);
  uint32_t crc = mw_crc32c(0, h, 5);
  crc = mw_crc32c(crc, h + MW_REC_HDR, len);
  mw_put32(h + 5, crc);
}

/* Reads the record at off of a segment whose good bytes end at end. 1: the
 * payload is in buf (len, type); 0: off is the end; -1: torn, short or
 * corrupt; -2: I/O error (errno). */
static int mw_rec_read(int fd, uint64_t off, uint64_t end, mw_buf_t *buf, uint8_t *type,
                       uint32_t *len) {
  if (off >= end) return 0;
  if (end - off < MW_REC_HDR) return -1;
  uint8_t h[MW_REC_HDR];
  ssize_t n = mw_pread_full(fd, h, sizeof h, off);
  if (n < 0) return -2;
  if ((size_t)n < sizeof h) return -1;
  uint32_t l = mw_get32(h + 1);
  if ((h[0] != MW_REC_SERIES && h[0] != MW_REC_SAMPLES && h[0] != MW_REC_EXEMPLARS) ||
      l > MW_MAX_RECORD || l > end - off - MW_REC_HDR)
    return -1;
  buf->len = 0;
  if (mw_buf_reserve(buf, l ? l : 1) != 0) {
    errno = ENOMEM;
    return -2;
  }
  n = mw_pread_full(fd, buf->p, l, off + MW_REC_HDR);
  if (n < 0) return -2;
  if ((size_t)n < l) return -1;
  uint32_t crc = mw_crc32c(0, h, 5);
  if (mw_crc32c(crc, buf->p, l) != mw_get32(h + 5)) return -1;
  buf->len = l;
  *type = h[0];
  *len = l;
  return 1;
}

static int mw_sdec_begin(mw_sdec_t *d, const uint8_t *p, uint32_t len) {
  if (len < 12) return -1;
  d->left = mw_get32(p);
  d->base = (int64_t)mw_get64(p + 4);
  d->p = p + 12;
  d->end = p + len;
  d->ref = 0;
  return 0;
}

/* 1 with a sample, 0 at the end of the record, -1 if it is malformed. */
static int mw_sdec_next(mw_sdec_t *d, uint64_t *ref, int64_t *ts, double *v) {
  if (!d->left) return d->p == d->end ? 0 : -1;
  uint64_t a, b;
  if (mw_get_uvarint(&d->p, d->end, &a) || mw_get_uvarint(&d->p, d->end, &b) || d->end - d->p < 8)
    return -1;
  d->ref += mw_unzig(a);
  *ref = d->ref;
  *ts = (int64_t)((uint64_t)d->base + mw_unzig(b));
  uint64_t bits = mw_get64(d->p);
  memcpy(v, &bits, sizeof bits);
  d->p += 8;
  d->left--;
  return 1;
}

/* An exemplar: a sample as in a samples record, then its label set. 1, 0 at
 * the end of the record, -1 if it is malformed (labels not checked). */
static int mw_edec_next(mw_sdec_t *d, uint64_t *ref, int64_t *ts, double *v, const uint8_t **lab,
                        size_t *lab_len) {
  int rc = mw_sdec_next(d, ref, ts, v);
  if (rc <= 0) return rc;
  uint64_t l;
  if (mw_get_uvarint(&d->p, d->end, &l) || l > (uint64_t)(d->end - d->p)) return -1;
  *lab = d->p;
  *lab_len = (size_t)l;
  d->p += l;
  return 1;
}

/* --- series: WAL ref -> s map, per-s arrays, memos ------------------- */

/* Home slot of ref k. Refs are handed out in sequence and samples are read
 * back mostly in that order (a scrape's series were created in body
 * order), so runs of 8 consecutive refs share a block of 8 slots (one cache
 * line of keys) and only the blocks are spread by the hash: a reader walking
 * refs in order misses the cache once per 8 lookups, not once per lookup.
 * The table has at least 64 slots, so a block never wraps. */
static size_t mw_map_home(uint64_t k, size_t mask) {
  uint64_t b = k >> 3;
  b ^= b >> 33;
  b *= 0xff51afd7ed558ccdULL;
  b ^= b >> 33;
  return (size_t)(b << 3 | (k & 7)) & mask;
}

static uint32_t mw_map_get(const mw_wal_t *w, uint64_t k) {
  if (!k || !w->map_k) return MW_NONE;
  for (size_t i = mw_map_home(k, w->map_mask);; i = (i + 1) & w->map_mask) {
    if (w->map_k[i] == k) return w->map_v[i];
    if (!w->map_k[i]) return MW_NONE;
  }
}

static void mw_map_insert(uint64_t *ks, uint32_t *vs, size_t mask, uint64_t k, uint32_t v,
                          size_t *len) {
  size_t i = mw_map_home(k, mask);
  while (ks[i] && ks[i] != k)
    i = (i + 1) & mask;
  if (!ks[i]) (*len)++;
  ks[i] = k;
  vs[i] = v;
}

/* Rebuilds the map with room for need entries at a load of at most 1/2
 * (at least 2 * need slots), keeping those whose s is still live with that
 * ref (dead: s deleted). 0, -1 on OOM (map unchanged). Callers rebuild when
 * the load would pass 1/2 and ask for the entries they will hold, so the
 * load stays between 1/4 and 1/2. */
static int mw_map_rebuild(mw_wal_t *w, size_t need, const uint8_t *dead) {
  size_t n = 64;
  while (n < need * 2)
    n *= 2;
  uint64_t *ks = calloc(n, sizeof *ks);
  uint32_t *vs = calloc(n, sizeof *vs);
  if (!ks || !vs) {
    free(ks);
    free(vs);
    return -1;
  }
  size_t len = 0;
  for (size_t i = 0; w->map_k && i <= w->map_mask; i++)
    if (w->map_k[i] && !(dead && dead[w->map_v[i]]))
      mw_map_insert(ks, vs, n - 1, w->map_k[i], w->map_v[i], &len);
  free(w->map_k);
  free(w->map_v);
  w->map_k = ks;
  w->map_v = vs;
  w->map_mask = n - 1;
  w->map_len = len;
  return 0;
}

static int mw_map_put(mw_wal_t *w, uint64_t k, uint32_t v) {
  if (!w->map_k || (w->map_len + 1) * 2 > w->map_mask + 1) {
    if (mw_map_rebuild(w, w->map_len + 1, NULL) != 0) return -1;
  }
  mw_map_insert(w->map_k, w->map_v, w->map_mask, k, v, &w->map_len);
  return 0;
}

/* mw_map_get(w, k), trying s = guess first: a batch's new series get
 * consecutive refs and, unless deleted ones are reused, consecutive s, and
 * samples come back in batch order, so the next sample's s is mostly the
 * last one's plus one. wref[s] == k proves it: every map entry k -> s is
 * made where wref[s] = k is set (mw_learn_series, mw_wal_append_batch,
 * whose failure clears the wref of the series it created), an entry that
 * replaces k -> old clears wref[old] (mw_learn_series), and truncation
 * clears wref[s] of the series whose entries it drops; so wref[s] == k
 * (k != 0) means the map has k -> s. Debug builds check that. */
static uint32_t mw_ref_to_s(const mw_wal_t *w, uint64_t k, uint32_t guess) {
  if (k && guess < w->scap && w->wref[guess] == k) {
    assert(mw_map_get(w, k) == guess);
    return guess;
  }
  return mw_map_get(w, k);
}

/* Room in the per-s arrays for s. */
static int mw_s_reserve(mw_wal_t *w, uint32_t s) {
  if (s < w->scap) return 0;
  size_t cap = w->scap ? w->scap : 1024;
  while (cap <= s)
    cap *= 2;
  uint64_t *a = realloc(w->wref, cap * sizeof *a);
  if (!a) return -1;
  w->wref = a;
  uint32_t *b = realloc(w->last_seg, cap * sizeof *b);
  if (!b) return -1;
  w->last_seg = b;
  memset(w->wref + w->scap, 0, (cap - w->scap) * sizeof *a);
  memset(w->last_seg + w->scap, 0, (cap - w->scap) * sizeof *b);
  w->scap = cap;
  return 0;
}

static void mw_memos_clear(mw_wal_t *w) {
  for (size_t i = 0; i < w->nmemos; i++)
    free(w->memos[i].e);
  w->nmemos = 0;
  if (w->memo_slots) memset(w->memo_slots, 0, (w->memo_mask + 1) * sizeof *w->memo_slots);
}

/* --- borrowed label sets ----------------------------------------------- */

/* A table that batches come from (a scrape target's, say): a new series in
 * tab borrows the source entry's label bytes instead of copying them (the
 * same label set is not held twice), and the WAL watches the source: when
 * those bytes move (compaction) tab follows them, when they go (the series
 * or the table is deleted) tab copies them first. s_of[r] is the s that
 * borrowed source ref r (MW_NONE: none), stale once s was deleted or r's
 * bytes changed hands: it is believed only while both point at the same
 * bytes. */
typedef struct mw_wsrc {
  mw_wal_t *w;
  mw_series_t *src;
  uint32_t *s_of;
  uint32_t cap;
  struct mw_wsrc *next;
} mw_wsrc_t;

/* The s that borrowed source ref r, if it still does; else MW_NONE. */
static uint32_t mw_wsrc_borrower(const mw_wsrc_t *x, uint32_t r) {
  if (r >= x->cap || x->s_of[r] == MW_NONE) return MW_NONE;
  uint32_t s = x->s_of[r];
  size_t l1, l2;
  if (!mw_series_borrowed(x->w->tab, s) ||
      mw_series_labels(x->w->tab, s, &l1) != mw_series_labels(x->src, r, &l2))
    return MW_NONE;
  return s;
}

/* Source ref r's bytes go: its borrower copies them. Nothing can be
 * reported from here, and tab must not keep a dangling pointer, so out of
 * memory (for one label set) ends the process with a message. */
static void mw_wsrc_own(mw_wsrc_t *x, uint32_t r) {
  uint32_t s = mw_wsrc_borrower(x, r);
  if (r < x->cap) x->s_of[r] = MW_NONE;
  if (s != MW_NONE && mw_series_own(x->w->tab, s) != 0) {
    fputs("moonwatch: out of memory copying a label set into the WAL\n", stderr);
    abort();
  }
}

/* Every borrower of x copies its bytes (if own); x is unlinked and freed
 * (its source no longer knows it when unwatch). */
static void mw_wsrc_release(mw_wsrc_t *x, int unwatch, int own) {
  for (uint32_t r = 0; own && r < x->cap; r++)
    mw_wsrc_own(x, r);
  for (size_t i = 0; i < x->w->nmemos; i++)
    if (x->w->memos[i].src == x) x->w->memos[i].src = NULL;
  if (unwatch) mw_series_unwatch(x->src, x);
  mw_wsrc_t **p = &x->w->srcs;
  while (*p != x)
    p = &(*p)->next;
  *p = x->next;
  free(x->s_of);
  free(x);
}

static void mw_wsrc_watch(void *ctx, uint32_t r, const uint8_t *now) {
  mw_wsrc_t *x = ctx;
  if (r == MW_SERIES_NONE) {
    mw_wsrc_release(x, 0, 1); /* the table is being freed */
  } else if (!now) {
    mw_wsrc_own(x, r);
  } else {
    uint32_t s = mw_wsrc_borrower(x, r);
    if (s != MW_NONE) mw_series_rebind(x->w->tab, s, now);
  }
}

/* The record of source table src (made, and src watched, if new); NULL on OOM. */
static mw_wsrc_t *mw_wsrc_get(mw_wal_t *w, mw_series_t *src) {
  for (mw_wsrc_t *x = w->srcs; x; x = x->next)
    if (x->src == src) return x;
  mw_wsrc_t *x = calloc(1, sizeof *x);
  if (!x) return NULL;
  *x = (mw_wsrc_t){.w = w, .src = src, .next = w->srcs};
  if (mw_series_watch(src, mw_wsrc_watch, x) != 0) {
    free(x);
    return NULL;
  }
  w->srcs = x;
  return x;
}

/* Records that s borrowed source ref r. 0, -1 on OOM. */
static int mw_wsrc_lend(mw_wsrc_t *x, uint32_t r, uint32_t s) {
  if (r >= x->cap) {
    uint32_t cap = x->cap ? x->cap : 64;
    while (cap <= r)
      cap *= 2;
    uint32_t *p = realloc(x->s_of, (size_t)cap * sizeof *p);
    if (!p) return -1;
    for (uint32_t i = x->cap; i < cap; i++)
      p[i] = MW_NONE;
    x->s_of = p;
    x->cap = cap;
  }
  x->s_of[r] = s;
  return 0;
}

static size_t mw_memo_home(const mw_wal_t *w, uint64_t uid) {
  return (size_t)((uid * 0x9e3779b97f4a7c15ULL) >> 32) & w->memo_mask;
}

/* Indexes the memos again, in slots for at least twice as many. 0, -1 on OOM
 * (the old index stays, still right for the memos it knew). */
static int mw_memo_reindex(mw_wal_t *w) {
  size_t n = 64;
  while (n < w->nmemos * 2)
    n *= 2;
  uint32_t *slots = calloc(n, sizeof *slots);
  if (!slots) return -1;
  free(w->memo_slots);
  w->memo_slots = slots;
  w->memo_mask = n - 1;
  for (size_t i = 0; i < w->nmemos; i++) {
    size_t j = mw_memo_home(w, w->memos[i].uid);
    while (w->memo_slots[j])
      j = (j + 1) & w->memo_mask;
    w->memo_slots[j] = (uint32_t)i + 1;
  }
  return 0;
}

/* The memo of source table uid (made if new; the least recently used one is
 * recycled past MW_MAX_MEMOS). Found through an index: a WAL fed by many
 * targets (two tables each) looks one up per append. NULL on OOM. */
static mw_wmemo_t *mw_memo(mw_wal_t *w, uint64_t uid) {
  w->tick++;
  if (w->memo_slots) {
    for (size_t j = mw_memo_home(w, uid); w->memo_slots[j]; j = (j + 1) & w->memo_mask) {
      mw_wmemo_t *m = &w->memos[w->memo_slots[j] - 1];
      if (m->uid == uid) {
        m->used = w->tick;
        return m;
      }
    }
  }
  mw_wmemo_t *m;
  if (w->nmemos == MW_MAX_MEMOS) {
    m = &w->memos[0];
    for (size_t i = 1; i < w->nmemos; i++)
      if (w->memos[i].used < m->used) m = &w->memos[i];
    free(m->e);
  } else {
    if (mw_grow((void **)&w->memos, &w->memos_cap, w->nmemos + 1, sizeof *w->memos) != 0)
      return NULL;
    m = &w->memos[w->nmemos++];
  }
  *m = (mw_wmemo_t){.uid = uid, .used = w->tick};
  if (mw_memo_reindex(w) != 0) {
    free(w->memo_slots); /* no index: the next call builds one */
    w->memo_slots = NULL;
    w->memo_mask = 0;
  }
  return m;
}

static int mw_memo_put(mw_wmemo_t *m, uint32_t ref, uint32_t stamp, uint32_t s) {
  if (ref >= m->cap) {
    size_t cap = m->cap ? m->cap : 256;
    while (cap <= ref)
      cap *= 2;
    mw_wmemo_entry_t *p = realloc(m->e, cap * sizeof *p);
    if (!p) return -1;
    memset(p + m->cap, 0, (cap - m->cap) * sizeof *p);
    m->e = p;
    m->cap = cap;
  }
  m->e[ref] = (mw_wmemo_entry_t){.stamp = stamp, .s = s};
  return 0;
}

/* A series record entry read from disk: wref has labels enc, mentioned in
 * segment seg. 0, -1 on OOM. */
static int mw_learn_series(mw_wal_t *w, uint64_t wref, const uint8_t *enc, size_t len, uint32_t seg,
                           char *err, size_t errlen) {
  uint32_t s;
  int added;
  if (mw_series_add(w->tab, enc, len, mw_labels_hash(enc, len), &s, &added, err, errlen) != 0)
    return -1;
  if (mw_s_reserve(w, s) != 0) goto oom;
  uint32_t old = mw_map_get(w, wref);
  if (old != MW_NONE && old != s && old < w->scap && w->wref[old] == wref)
    w->wref[old] = 0; /* one ref, two label sets (a damaged WAL): old gets a new ref */
  if (added || wref > w->wref[s]) w->wref[s] = wref;
  if (added || seg > w->last_seg[s]) w->last_seg[s] = seg;
  if (mw_map_put(w, wref, s) != 0) goto oom;
  if (wref >= w->next_ref) w->next_ref = wref + 1;
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

/* 1 if enc is a label set the WAL keeps: names and values non-empty and
 * without NUL bytes (protobuf-c's strings end at one), names strictly
 * increasing. Appends and replay apply the same test. */
static int mw_labels_ok(const uint8_t *enc, size_t len) {
  size_t pos = 0;
  mw_label_t l, prev = {0};
  int r, n = 0;
  if (memchr(enc, 0, len)) return 0;
  while ((r = mw_labels_next(enc, len, &pos, &l)) == 1) {
    if (!l.name_len || !l.value_len) return 0;
    if (n++) {
      size_t m = prev.name_len < l.name_len ? prev.name_len : l.name_len;
      int c = memcmp(prev.name, l.name, m);
      if (c > 0 || (c == 0 && prev.name_len >= l.name_len)) return 0;
    }
    prev = l;
  }
  return r == 0 && n > 0;
}

/* 1 if enc is an exemplar label set the WAL keeps: empty, or as a series'. */
static int mw_ex_labels_ok(const uint8_t *enc, size_t len) {
  return !len || mw_labels_ok(enc, len);
}

/* Identifies an exemplar for the repeat test (never 0). */
static uint64_t mw_ex_hash(const mw_exemplar_t *e) {
  uint64_t bits;
  memcpy(&bits, &e->value, sizeof bits);
  uint64_t h = mw_labels_hash(e->labels, e->labels_len);
  h ^= ((uint64_t)e->ts_ms + 0x9e3779b97f4a7c15ULL) * 0xbf58476d1ce4e5b9ULL;
  h ^= (bits + 0x94d049bb133111ebULL) * 0x9e3779b97f4a7c15ULL;
  return h | 1;
}

/* Room in w->ex_last for every s of the series table. 0, -1 on OOM. */
static int mw_ex_last_reserve(mw_wal_t *w) {
  size_t limit = mw_series_limit(w->tab);
  if (limit <= w->ex_last_cap) return 0;
  size_t cap = w->ex_last_cap ? w->ex_last_cap : 1024;
  while (cap < limit)
    cap *= 2;
  uint64_t *p = realloc(w->ex_last, cap * sizeof *p);
  if (!p) return -1;
  memset(p + w->ex_last_cap, 0, (cap - w->ex_last_cap) * sizeof *p);
  w->ex_last = p;
  w->ex_last_cap = cap;
  return 0;
}

/* Applies a series record read from segment seg. 0; 1 if it is malformed;
 * -1 on OOM. */
static int mw_apply_series(mw_wal_t *w, const uint8_t *p, uint32_t len, uint32_t seg, char *err,
                           size_t errlen) {
  if (len < 4) return 1;
  uint32_t count = mw_get32(p);
  /* The whole record is checked before a series is learned: a record cut
   * as corrupt must leave none behind, or a later append would use its
   * ref without writing the series again (and its samples would be lost
   * at the next replay). A ref of 2^64 - 1 is never written: next_ref
   * would wrap to 0. */
  for (int learn = 0; learn < 2; learn++) {
    const uint8_t *q = p + 4, *end = p + len;
    for (uint32_t i = 0; i < count; i++) {
      uint64_t wref, l;
      if (mw_get_uvarint(&q, end, &wref) || mw_get_uvarint(&q, end, &l) || !wref ||
          wref == UINT64_MAX || l > (uint64_t)(end - q) || l == 0 || !mw_labels_ok(q, (size_t)l))
        return 1;
      if (learn) {
        if (mw_learn_series(w, wref, q, (size_t)l, seg, err, errlen) != 0) return -1;
        w->st.replayed_series++;
      }
      q += l;
    }
    if (q != end) return 1;
  }
  return 0;
}

/* --- segments --------------------------------------------------------- */

static mw_seg_t *mw_head(mw_wal_t *w) { return w->nsegs ? &w->segs[w->nsegs - 1] : NULL; }

/* The first segment with index >= index, or NULL. */
static mw_seg_t *mw_seg_from(mw_wal_t *w, uint32_t index) {
  size_t lo = 0, hi = w->nsegs;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (w->segs[mid].index < index)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < w->nsegs ? &w->segs[lo] : NULL;
}

static int mw_seg_push(mw_wal_t *w, uint32_t index, uint64_t size) {
  if (mw_grow((void **)&w->segs, &w->segs_cap, w->nsegs + 1, sizeof *w->segs) != 0) return -1;
  w->segs[w->nsegs++] =
      (mw_seg_t){.index = index, .size = size, .min_ts = INT64_MAX, .max_ts = INT64_MIN};
  return 0;
}

/* Closes the head and starts segment last + 1. 0, or -1 with err. */
static int mw_new_segment(mw_wal_t *w, char *err, size_t errlen) {
  mw_seg_t *h = mw_head(w);
  uint32_t index = h ? h->index + 1 : w->checkpoint + 1;
  if (w->head_fd >= 0) {
    /* INTERVAL: the finished segment is synced (and closed) by the next
     * sync, off the loop thread; if it cannot be queued, here. */
    if (w->opts.fsync == MW_WAL_FSYNC_INTERVAL &&
        mw_grow((void **)&w->unsynced, &w->unsynced_cap, w->nunsynced + 1, sizeof *w->unsynced) ==
            0) {
      w->unsynced[w->nunsynced++] = w->head_fd;
    } else {
      if (w->opts.fsync != MW_WAL_FSYNC_NEVER && fdatasync(w->head_fd) == 0) w->st.fsyncs++;
      close(w->head_fd);
    }
    w->head_fd = -1;
  }
  char *path = mw_seg_path(w, index);
  if (!path) {
    mw_seterr(err, errlen, "out of memory");
    return -1;
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0 || mw_write_full(fd, MW_MAGIC, MW_SEG_HDR) != 0 || mw_seg_push(w, index, 0) != 0) {
    mw_seterr(err, errlen, "%s: %s", path, strerror(errno));
    if (fd >= 0) {
      close(fd);
      unlink(path);
    }
    free(path);
    w->cut_next = 1;
    return -1;
  }
  free(path);
  w->head_fd = fd;
  w->segs[w->nsegs - 1].size = MW_SEG_HDR;
  w->cut_next = 0;
  w->dirty_dir = 1;
  if (w->opts.fsync == MW_WAL_FSYNC_ALWAYS) {
    if (fdatasync(fd) == 0) w->st.fsyncs++;
    if (mw_fsync_dir(w->wal_dir) == 0) w->dirty_dir = 0;
  }
  return 0;
}

/* Replays the segment file at path (index; a checkpoint when checkpoint is
 * set: never modified). Fills *seg. A bad magic or the first bad record
 * ends the segment: it is cut there, logged and counted. 0, or -1 with err
 * on I/O errors and OOM. */
static int mw_replay_file(mw_wal_t *w, const char *path, uint32_t index, int checkpoint,
                          mw_seg_t *seg, char *err, size_t errlen) {
  int fd = open(path, (checkpoint ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  struct stat sb;
  if (fd < 0 || fstat(fd, &sb) != 0) {
    mw_seterr(err, errlen, "%s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  uint64_t size = (uint64_t)sb.st_size, off = 0;
  *seg = (mw_seg_t){.index = index, .min_ts = INT64_MAX, .max_ts = INT64_MIN};
  char magic[MW_SEG_HDR];
  int bad = 0;
  if (size == 0 && !checkpoint) {
    /* Created, killed before its magic was written: nothing was lost. */
    if (pwrite(fd, MW_MAGIC, MW_SEG_HDR, 0) != (ssize_t)MW_SEG_HDR) {
      mw_seterr(err, errlen, "%s: %s", path, strerror(errno));
      goto fail;
    }
    size = MW_SEG_HDR;
  }
  if (mw_pread_full(fd, magic, MW_SEG_HDR, 0) != (ssize_t)MW_SEG_HDR ||
      memcmp(magic, MW_MAGIC, MW_SEG_HDR) != 0) {
    bad = 1;
  } else {
    off = MW_SEG_HDR;
  }
  while (!bad) {
    uint8_t type;
    uint32_t len;
    int rc = mw_rec_read(fd, off, size, &w->rbuf, &type, &len);
    if (rc == 0) break;
    if (rc == -2) {
      mw_seterr(err, errlen, "%s: %s", path, strerror(errno));
      goto fail;
    }
    if (rc < 0) {
      bad = 1;
      break;
    }
    if (type == MW_REC_SERIES) {
      int a = mw_apply_series(w, w->rbuf.p, len, index, err, errlen);
      if (a < 0) goto fail;
      if (a > 0) {
        bad = 1;
        break;
      }
    } else if (type == MW_REC_EXEMPLARS) {
      mw_sdec_t d;
      uint64_t ref, n = 0;
      int64_t ts;
      double v;
      const uint8_t *lab;
      size_t ll;
      /* Checked whole first, as series records: a cut record must not
       * leave a last-exemplar hash behind (the exemplar would not be
       * written again). */
      if (mw_sdec_begin(&d, w->rbuf.p, len) != 0) {
        bad = 1;
        break;
      }
      while ((rc = mw_edec_next(&d, &ref, &ts, &v, &lab, &ll)) == 1 && mw_ex_labels_ok(lab, ll))
        ;
      if (rc != 0) {
        bad = 1;
        break;
      }
      mw_sdec_begin(&d, w->rbuf.p, len); /* checked: now applied */
      while (mw_edec_next(&d, &ref, &ts, &v, &lab, &ll) == 1) {
        uint32_t s = mw_map_get(w, ref);
        n++;
        if (s == MW_NONE) continue;
        if (index > w->last_seg[s]) w->last_seg[s] = index;
        /* the last exemplar of each series, so that a restart does not write it again */
        mw_exemplar_t e = {.labels = lab, .labels_len = (uint32_t)ll, .ts_ms = ts, .value = v};
        if (mw_ex_last_reserve(w) != 0) {
          mw_seterr(err, errlen, "out of memory");
          goto fail;
        }
        w->ex_last[s] = mw_ex_hash(&e);
      }
      w->st.replayed_exemplars += n;
    } else {
      mw_sdec_t d;
      uint64_t ref;
      int64_t ts, lo = INT64_MAX, hi = INT64_MIN;
      double v;
      uint64_t n = 0;
      if (mw_sdec_begin(&d, w->rbuf.p, len) != 0) {
        bad = 1;
        break;
      }
      while ((rc = mw_sdec_next(&d, &ref, &ts, &v)) == 1) {
        uint32_t s = mw_map_get(w, ref);
        if (s != MW_NONE && index > w->last_seg[s]) w->last_seg[s] = index;
        if (ts < lo) lo = ts;
        if (ts > hi) hi = ts;
        n++;
      }
      if (rc < 0) {
        bad = 1;
        break;
      }
      if (lo < seg->min_ts) seg->min_ts = lo;
      if (hi > seg->max_ts) seg->max_ts = hi;
      seg->samples += n;
      w->st.replayed_samples += n;
    }
    off += MW_REC_HDR + len;
  }
  if (bad) {
    w->st.corruptions++;
    w->st.corrupt_bytes += size - off;
    mw_log(w, "%s: torn or corrupt data at offset %llu: %s %llu bytes", path,
           (unsigned long long)off, checkpoint ? "ignored" : "cut",
           (unsigned long long)(size - off));
    if (!checkpoint) {
      int ok = ftruncate(fd, (off_t)off) == 0;
      if (ok && off < MW_SEG_HDR) {
        ok = pwrite(fd, MW_MAGIC, MW_SEG_HDR, 0) == (ssize_t)MW_SEG_HDR;
        off = MW_SEG_HDR;
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

static void mw_wal_free(mw_wal_t *w) {
  if (!w) return;
  while (w->srcs)
    mw_wsrc_release(w->srcs, 1, 0);
  mw_sync_collect(w, 1, NULL, 0);
  mw_sync_unsynced(w, 0);
  free(w->unsynced);
  if (w->head_fd >= 0) close(w->head_fd);
  mw_memos_clear(w);
  free(w->memos);
  free(w->memo_slots);
  mw_series_free(w->tab);
  free(w->wref);
  free(w->last_seg);
  free(w->map_k);
  free(w->map_v);
  free(w->segs);
  free(w->sbuf.p);
  free(w->dbuf.p);
  free(w->rbuf.p);
  free(w->ss);
  free(w->created);
  free(w->readers);
  free(w->ebuf.p);
  free(w->ex_last);
  free(w->ex_new);
  free(w->log);
  free(w->dir);
  free(w->wal_dir);
  free(w);
}

int mw_wal_open(const char *dir, const mw_wal_opts_t *opts, mw_wal_t **out, char *err,
                size_t errlen) {
  *out = NULL;
  uint32_t *idx = NULL;
  size_t nidx = 0, idx_cap = 0;
  DIR *d = NULL;
  mw_wal_t *w = calloc(1, sizeof *w);
  if (!w) goto oom;
  w->head_fd = -1;
  w->next_ref = 1;
  if (opts) w->opts = *opts;
  if (w->opts.fsync < MW_WAL_FSYNC_NEVER || w->opts.fsync > MW_WAL_FSYNC_ALWAYS) {
    mw_seterr(err, errlen, "invalid fsync policy %d", (int)w->opts.fsync);
    goto fail;
  }
  if (!w->opts.segment_size) w->opts.segment_size = MW_WAL_DEFAULT_SEGMENT_SIZE;
  if (w->opts.segment_size < 1024) w->opts.segment_size = 1024;
  w->dir = strdup(dir);
  w->wal_dir = mw_path(dir, "wal");
  w->tab = mw_series_new();
  w->log = calloc(1, 1);
  if (!w->dir || !w->wal_dir || !w->tab || !w->log) goto oom;
  w->log_cap = 1;
  if (mw_mkdirs(w->wal_dir) != 0) {
    mw_seterr(err, errlen, "%s: %s", w->wal_dir, strerror(errno));
    goto fail;
  }
  /* What is there: segments, checkpoints, leftovers of an interrupted checkpoint. */
  d = opendir(w->wal_dir);
  if (!d) {
    mw_seterr(err, errlen, "%s: %s", w->wal_dir, strerror(errno));
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
        char *p = mw_path(w->wal_dir, n); /* checkpoint.N.tmp: interrupted */
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
    d = opendir(w->wal_dir);
    while (d && (e = readdir(d))) {
      if (strlen(e->d_name) == 19 && strncmp(e->d_name, "checkpoint.", 11) == 0 &&
          mw_is_digits(e->d_name + 11, 8) && (uint32_t)strtoul(e->d_name + 11, NULL, 10) != cp) {
        char *p = mw_path(w->wal_dir, e->d_name);
        if (p) mw_rmdir(p);
        free(p);
      }
    }
    if (d) closedir(d);
    d = NULL;
    w->checkpoint = cp;
    char name[32];
    snprintf(name, sizeof name, "checkpoint.%08u/00000000", cp);
    char *p = mw_path(w->wal_dir, name);
    if (!p) goto oom;
    struct stat sb;
    if (stat(p, &sb) == 0) {
      mw_seg_t meta;
      int rc = mw_replay_file(w, p, cp, 1, &meta, err, errlen);
      w->checkpoint_bytes = (uint64_t)sb.st_size;
      free(p);
      if (rc != 0) goto fail;
    } else {
      mw_log(w, "%s: missing: %s", p, strerror(errno));
      w->st.corruptions++;
      free(p);
    }
  }
  if (nidx) qsort(idx, nidx, sizeof *idx, mw_u32_cmp);
  for (size_t i = 0; i < nidx; i++) {
    char *p = mw_seg_path(w, idx[i]);
    if (!p) goto oom;
    if (has_cp && idx[i] <= cp) {
      unlink(p);
      free(p);
      continue;
    }
    mw_seg_t meta;
    int rc = mw_replay_file(w, p, idx[i], 0, &meta, err, errlen);
    free(p);
    if (rc != 0) goto fail;
    if (mw_grow((void **)&w->segs, &w->segs_cap, w->nsegs + 1, sizeof *w->segs) != 0) goto oom;
    w->segs[w->nsegs++] = meta;
  }
  /* Appends go to a fresh segment (the last one is reused if it has no record). */
  mw_seg_t *h = mw_head(w);
  if (h && h->size == MW_SEG_HDR) {
    char *p = mw_seg_path(w, h->index);
    if (!p) goto oom;
    w->head_fd = open(p, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (w->head_fd < 0) mw_seterr(err, errlen, "%s: %s", p, strerror(errno));
    free(p);
    if (w->head_fd < 0) goto fail;
  } else if (mw_new_segment(w, err, errlen) != 0) {
    goto fail;
  }
  free(idx);
  *out = w;
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
fail:
  if (d) closedir(d);
  free(idx);
  mw_wal_free(w);
  return -1;
}

/* --- append ----------------------------------------------------------- */

/* Builds the exemplars record of an append into w->ebuf (nothing if none is
 * left): the exemplars of b's samples that were written (w->ss), except a
 * repeat of the last one written for the series (Prometheus agent's WAL
 * drops those too: a scrape shows the same exemplar until a new one comes).
 * Their (s, hash) pairs go to w->ex_new, applied once the write succeeded.
 * 0, -1 on OOM. */
static int mw_exemplars_record(mw_wal_t *w, const mw_batch_t *b) {
  size_t nex = mw_batch_exemplars(b);
  if (mw_ex_last_reserve(w) != 0) return -1;
  mw_buf_t *eb = &w->ebuf;
  size_t at = SIZE_MAX;
  uint32_t count = 0;
  uint64_t prev = 0;
  int64_t base = 0;
  mw_exemplar_t e;
  for (size_t k = 0; k < nex && count < MW_SAMPLES_PER_REC; k++) {
    mw_batch_exemplar(b, k, &e);
    uint32_t s = w->ss[e.idx];
    if (s == MW_NONE || !mw_ex_labels_ok(e.labels, e.labels_len)) continue;
    uint64_t h = mw_ex_hash(&e);
    if (w->ex_last[s] == h) continue;
    if (at == SIZE_MAX) {
      at = mw_rec_begin(eb, MW_REC_EXEMPLARS, 8);
      if (at == SIZE_MAX) return -1;
      base = e.ts_ms;
      mw_put64(eb->p + eb->len, (uint64_t)base);
      eb->len += 8;
    }
    if (mw_buf_reserve(eb, MW_SAMPLE_MAX + 10 + e.labels_len) != 0 ||
        mw_grow((void **)&w->ex_new, &w->ex_new_cap, 2 * (w->nex_new + 1), sizeof *w->ex_new) != 0)
      return -1;
    uint64_t wr = w->wref[s];
    uint8_t *p = mw_put_uvarint(eb->p + eb->len, mw_zig(wr - prev));
    p = mw_put_uvarint(p, mw_zig((uint64_t)e.ts_ms - (uint64_t)base));
    uint64_t bits;
    memcpy(&bits, &e.value, sizeof bits);
    mw_put64(p, bits);
    p = mw_put_uvarint(p + 8, e.labels_len);
    if (e.labels_len) memcpy(p, e.labels, e.labels_len);
    eb->len = (size_t)(p - eb->p) + e.labels_len;
    prev = wr;
    count++;
    w->ex_new[2 * w->nex_new] = s;
    w->ex_new[2 * w->nex_new + 1] = h;
    w->nex_new++;
  }
  if (at != SIZE_MAX) mw_rec_end(eb, at, count);
  return 0;
}

int mw_wal_append_batch(mw_wal_t *w, const mw_batch_t *b, char *err, size_t errlen) {
  size_t n = mw_batch_len(b);
  if (w->closed) {
    mw_seterr(err, errlen, "WAL closed");
    return -1;
  }
  if (!n) return 0;
  mw_series_t *src = mw_batch_series(b);
  if (!src) {
    mw_seterr(err, errlen, "batch without a series table");
    return -1;
  }
  mw_wmemo_t *memo = mw_memo(w, mw_series_uid(src));
  mw_wsrc_t *lender = memo ? (memo->src ? memo->src : (memo->src = mw_wsrc_get(w, src))) : NULL;
  if (!memo || !lender || mw_grow((void **)&w->ss, &w->ss_cap, n, sizeof *w->ss) != 0) goto oom;
  const uint32_t *refs = mw_batch_refs(b);
  const int64_t *ts = mw_batch_timestamps(b);
  const double *vs = mw_batch_values(b);
  mw_buf_t *sb = &w->sbuf, *db = &w->dbuf;
  sb->len = 0;
  db->len = 0;
  w->ebuf.len = 0;
  w->nex_new = 0;
  w->ncreated = 0;
  size_t srec = SIZE_MAX;
  uint32_t scount = 0;
  /* Series: the memo maps the source's refs to s; new label sets get a record. */
  for (size_t i = 0; i < n; i++) {
    uint32_t r = refs[i], stamp = mw_series_stamp(src, r), s;
    if (r < memo->cap && stamp && memo->e[r].stamp == stamp) {
      s = memo->e[r].s;
    } else {
      size_t len;
      const uint8_t *enc = mw_series_labels(src, r, &len);
      uint64_t hash = mw_series_hash(src, r);
      if (!enc) {
        s = MW_NONE; /* not a live series of the batch's table */
      } else if ((s = mw_series_get(w->tab, enc, len, hash)) == MW_NONE && mw_labels_ok(enc, len)) {
        if (mw_series_add_borrowed(w->tab, enc, len, hash, &s, NULL, err, errlen) != 0) goto undo;
        if (mw_wsrc_lend(lender, r, s) != 0 && mw_series_own(w->tab, s) != 0) goto oom;
        if (mw_s_reserve(w, s) != 0) goto oom;
      }
      if (enc && mw_memo_put(memo, r, stamp, s) != 0) goto oom;
    }
    w->ss[i] = s;
    if (s == MW_NONE) {
      w->st.samples_invalid++;
      continue;
    }
    if (w->wref[s]) continue;
    /* First sight (or after a failed write): a series record entry. */
    size_t len;
    const uint8_t *enc = mw_series_labels(w->tab, s, &len);
    if (srec != SIZE_MAX && sb->len - srec > MW_SERIES_REC_BYTES) {
      mw_rec_end(sb, srec, scount);
      srec = SIZE_MAX;
    }
    if (srec == SIZE_MAX) {
      srec = mw_rec_begin(sb, MW_REC_SERIES, 0);
      scount = 0;
      if (srec == SIZE_MAX) goto oom;
    }
    if (mw_buf_reserve(sb, 20 + len) != 0 ||
        mw_grow((void **)&w->created, &w->created_cap, w->ncreated + 1, sizeof *w->created) != 0)
      goto oom;
    w->wref[s] = w->next_ref++;
    w->created[w->ncreated++] = s;
    uint8_t *p = mw_put_uvarint(sb->p + sb->len, w->wref[s]);
    p = mw_put_uvarint(p, len);
    memcpy(p, enc, len);
    sb->len = (size_t)(p - sb->p) + len;
    scount++;
  }
  if (srec != SIZE_MAX) mw_rec_end(sb, srec, scount);
  /* Samples, in records of at most MW_SAMPLES_PER_REC. */
  size_t written = 0, drec = SIZE_MAX;
  uint32_t dcount = 0;
  uint64_t prev = 0;
  int64_t base = 0, lo = INT64_MAX, hi = INT64_MIN;
  for (size_t i = 0; i < n; i++) {
    uint32_t s = w->ss[i];
    if (s == MW_NONE) continue;
    if (drec != SIZE_MAX && dcount == MW_SAMPLES_PER_REC) {
      mw_rec_end(db, drec, dcount);
      drec = SIZE_MAX;
    }
    if (drec == SIZE_MAX) {
      size_t left = n - i < MW_SAMPLES_PER_REC ? n - i : MW_SAMPLES_PER_REC;
      drec = mw_rec_begin(db, MW_REC_SAMPLES, 8 + left * MW_SAMPLE_MAX);
      if (drec == SIZE_MAX) goto oom;
      base = ts[i];
      mw_put64(db->p + db->len, (uint64_t)base);
      db->len += 8;
      dcount = 0;
      prev = 0;
    }
    uint64_t wr = w->wref[s];
    uint8_t *p = mw_put_uvarint(db->p + db->len, mw_zig(wr - prev));
    p = mw_put_uvarint(p, mw_zig((uint64_t)ts[i] - (uint64_t)base));
    uint64_t bits;
    memcpy(&bits, &vs[i], sizeof bits);
    mw_put64(p, bits);
    db->len = (size_t)(p - db->p) + 8;
    prev = wr;
    dcount++;
    written++;
    if (ts[i] < lo) lo = ts[i];
    if (ts[i] > hi) hi = ts[i];
  }
  if (drec != SIZE_MAX) mw_rec_end(db, drec, dcount);
  if (mw_batch_exemplars(b) && mw_exemplars_record(w, b) != 0) goto oom;
  size_t total = sb->len + db->len + w->ebuf.len;
  if (!total) return 0;
  /* Room in the map now, so that nothing can fail once the bytes are written. */
  if ((w->map_len + w->ncreated + 1) * 2 > w->map_mask + 1 &&
      mw_map_rebuild(w, w->map_len + w->ncreated + 1, NULL) != 0)
    goto oom;
  mw_seg_t *h = mw_head(w);
  if (w->cut_next || (h->size > MW_SEG_HDR && h->size + total > w->opts.segment_size)) {
    if (mw_new_segment(w, err, errlen) != 0) goto undo;
    h = mw_head(w);
  }
  /* One writev: when it returns, the records are in the kernel. */
  struct iovec iov[3] = {{sb->p, sb->len}, {db->p, db->len}, {w->ebuf.p, w->ebuf.len}};
  int nio = 3, k = 0;
  size_t done = 0;
  while (done < total) {
    while (k < nio && iov[k].iov_len == 0)
      k++;
    ssize_t r = writev(w->head_fd, iov + k, nio - k);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      mw_seterr(err, errlen, "write segment %08u: %s", h->index,
                r < 0 ? strerror(errno) : "no progress");
      /* Take back what reached the file; if that fails, the next append
       * starts a new segment and the open cuts this one's torn tail. */
      if (done && ftruncate(w->head_fd, (off_t)h->size) != 0) w->cut_next = 1;
      goto undo;
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
  for (size_t i = 0; i < w->ncreated; i++)
    mw_map_insert(w->map_k, w->map_v, w->map_mask, w->wref[w->created[i]], w->created[i],
                  &w->map_len);
  for (size_t i = 0; i < n; i++)
    if (w->ss[i] != MW_NONE) w->last_seg[w->ss[i]] = h->index;
  if (written) {
    if (lo < h->min_ts) h->min_ts = lo;
    if (hi > h->max_ts) h->max_ts = hi;
    if (hi > w->st.max_ts) w->st.max_ts = hi;
  }
  h->samples += written;
  w->st.samples_appended += written;
  for (size_t i = 0; i < w->nex_new; i++)
    w->ex_last[w->ex_new[2 * i]] = w->ex_new[2 * i + 1];
  w->st.exemplars_appended += w->nex_new;
  w->st.series_created += w->ncreated;
  if (w->opts.fsync == MW_WAL_FSYNC_ALWAYS) {
    if (fdatasync(w->head_fd) != 0) {
      /* The batch is in the WAL (and the kernel), not known to be on disk. */
      mw_seterr(err, errlen, "fsync segment %08u: %s", h->index, strerror(errno));
      return 1;
    }
    w->st.fsyncs++;
  }
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
undo:
  for (size_t i = 0; i < w->ncreated; i++)
    w->wref[w->created[i]] = 0;
  w->ncreated = 0;
  return -1;
}

int mw_wal_sync_start(mw_wal_t *w, char *err, size_t errlen) {
  int rc = mw_sync_collect(w, 0, err, errlen);
  if (rc != 0) return rc < 0 ? -1 : 0; /* failed, or the last one still runs */
  if (w->closed || (w->head_fd < 0 && !w->nunsynced)) return 0;
  mw_syncjob_t *j = calloc(1, sizeof *j);
  if (!j || !(j->fds = malloc((w->nunsynced + 1) * sizeof *j->fds)) ||
      (w->dirty_dir && !(j->dir = strdup(w->wal_dir)))) {
    mw_syncjob_free(j);
    mw_seterr(err, errlen, "out of memory");
    return -1;
  }
  /* A dup of the head: the worker closes what it syncs, and the head may be
   * closed meanwhile (a new segment under another policy). */
  if (w->head_fd >= 0) {
    int fd = fcntl(w->head_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
      mw_seterr(err, errlen, "fsync: dup: %s", strerror(errno));
      mw_syncjob_free(j);
      return -1;
    }
    j->fds[j->nfds++] = fd;
  }
  if (w->nunsynced) memcpy(j->fds + j->nfds, w->unsynced, w->nunsynced * sizeof *j->fds);
  j->nfds += w->nunsynced;
  w->nunsynced = 0;
  w->dirty_dir = 0;
  atomic_init(&j->done, 0);
  if (pthread_create(&j->thread, NULL, mw_sync_thread, j) != 0) {
    mw_sync_run(j); /* no thread: here, slower but the same */
    return mw_sync_end(w, j, err, errlen);
  }
  w->job = j;
  return 0;
}

int mw_wal_sync(mw_wal_t *w, char *err, size_t errlen) {
  int rc = mw_sync_collect(w, 1, err, errlen);
  mw_sync_unsynced(w, 1);
  if (w->closed || w->head_fd < 0) return rc;
  if (fdatasync(w->head_fd) != 0) {
    mw_seterr(err, errlen, "fsync: %s", strerror(errno));
    return -1;
  }
  w->st.fsyncs++;
  if (w->dirty_dir) {
    if (mw_fsync_dir(w->wal_dir) != 0) {
      mw_seterr(err, errlen, "fsync %s: %s", w->wal_dir, strerror(errno));
      return -1;
    }
    w->dirty_dir = 0;
  }
  return rc;
}

void mw_wal_stats(const mw_wal_t *w, mw_wal_stats_t *st) {
  *st = w->st;
  st->active_series = mw_series_len(w->tab);
  st->segments = w->nsegs;
  st->first_segment = w->nsegs ? w->segs[0].index : 0;
  st->last_segment = w->nsegs ? w->segs[w->nsegs - 1].index : 0;
  uint64_t bytes = w->checkpoint_bytes;
  for (size_t i = 0; i < w->nsegs; i++)
    bytes += w->segs[i].size;
  st->bytes = bytes;
}

const char *mw_wal_repair_log(const mw_wal_t *w) { return w->log ? w->log : ""; }

/* --- readers: positions and cursor files ------------------------------ */

static uint64_t mw_count_from(mw_wal_t *w, const mw_seg_t *sg, uint64_t off, uint32_t idx);

static int mw_pos_cmp(mw_pos_t a, mw_pos_t b) {
  if (a.seg != b.seg) return a.seg < b.seg ? -1 : 1;
  if (a.off != b.off) return a.off < b.off ? -1 : 1;
  return (a.idx > b.idx) - (a.idx < b.idx);
}

/* Cursor files: "mwcursor 2 SEG OFF IDX CRC\n", CRC the CRC32C of the text
 * before it (version 1 had no CRC). Saved as a new file renamed into place,
 * after the last one was renamed to the previous copy: a damaged or missing
 * cursor falls back to a copy at most one save older (a few resent samples,
 * not the whole WAL). */
static int mw_cursor_save(mw_wal_reader_t *r, char *err, size_t errlen) {
  char text[96];
  int n = snprintf(text, sizeof text, "mwcursor 2 %u %llu %u", r->committed.seg,
                   (unsigned long long)r->committed.off, r->committed.idx);
  n += snprintf(text + n, sizeof text - (size_t)n, " %08x\n", mw_crc32c(0, text, (size_t)n));
  int fd = open(r->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) goto fail;
  int always = r->w->opts.fsync == MW_WAL_FSYNC_ALWAYS;
  if (mw_write_full(fd, text, (size_t)n) != 0 || (always && fdatasync(fd) != 0)) {
    close(fd);
    goto fail;
  }
  close(fd);
  if (rename(r->path, r->prev) != 0 && errno != ENOENT) goto fail;
  if (rename(r->tmp, r->path) != 0) goto fail;
  if (always) mw_fsync_dir(r->w->dir);
  return 0;
fail:
  mw_seterr(err, errlen, "%s: %s", r->path, strerror(errno));
  return -1;
}

/* Reads a cursor file into *p: 1, 0 when there is none, -1 when it cannot be
 * read or is damaged (why in why). */
static int mw_cursor_load(const char *path, mw_pos_t *p, char *why, size_t whylen) {
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
    *p = (mw_pos_t){seg, off, idx};
    return 1;
  }
  snprintf(why, whylen, "damaged (%zd bytes, not a valid cursor)", n);
  return -1;
}

/* Moves *p to a record boundary of its segment at or before it (a cursor
 * from an older, longer segment, or a damaged cursor file). */
static void mw_pos_align(mw_wal_t *w, mw_pos_t *p) {
  mw_seg_t *sg = mw_seg_from(w, p->seg);
  if (!sg || sg->index != p->seg) return;
  char *path = mw_seg_path(w, sg->index);
  int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
  free(path);
  uint64_t off = MW_SEG_HDR;
  uint32_t count = 0;
  while (fd >= 0 && off < sg->size) {
    uint8_t h[MW_REC_HDR + 4];
    if (mw_pread_full(fd, h, sizeof h, off) != (ssize_t)sizeof h) break;
    uint64_t next = off + MW_REC_HDR + mw_get32(h + 1);
    if (next > sg->size || next > p->off) {
      count = h[0] == MW_REC_SAMPLES ? mw_get32(h + MW_REC_HDR) : 0;
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

/* Makes sure r has encoders for shards 0 .. n - 1, new ones adding the
 * external labels when the others do. 0, or -1 with err. */
static int mw_reader_encs(mw_wal_reader_t *r, size_t n, char *err, size_t errlen) {
  if (n <= r->nencs) return 0;
  if (mw_grow((void **)&r->encs, &r->encs_cap, n, sizeof *r->encs) != 0) goto oom;
  while (r->nencs < n) {
    mw_rwenc_t *e = mw_rwenc_new();
    if (!e) goto oom;
    if (r->encs_ext && mw_rwenc_set_external_labels(e, r->ext, r->ext_len, err, errlen) != 0) {
      mw_rwenc_free(e);
      return -1;
    }
    r->encs[r->nencs++] = e;
  }
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

/* Switches every encoder of r to adding the external labels (on != 0) or
 * not. 0, or -1 with err. */
static int mw_reader_encs_ext(mw_wal_reader_t *r, int on, char *err, size_t errlen) {
  for (size_t i = 0; i < r->nencs; i++)
    if (mw_rwenc_set_external_labels(r->encs[i], on ? r->ext : NULL, on ? r->ext_len : 0, err,
                                     errlen) != 0)
      return -1;
  r->encs_ext = on;
  return 0;
}

int mw_wal_reader_open(mw_wal_t *w, const char *name, const uint8_t *external_labels, size_t len,
                       mw_wal_reader_t **out, char *err, size_t errlen) {
  *out = NULL;
  if (w->closed) {
    mw_seterr(err, errlen, "WAL closed");
    return -1;
  }
  size_t nl = strlen(name);
  if (!nl || nl > 128) goto bad_name;
  for (size_t i = 0; i < nl; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == '.'))
      goto bad_name;
  }
  for (size_t i = 0; i < w->nreaders; i++)
    if (strcmp(w->readers[i]->path + strlen(w->dir) + 8, name) == 0) {
      mw_seterr(err, errlen, "reader \"%s\" is already open", name);
      return -1;
    }
  mw_wal_reader_t *r = calloc(1, sizeof *r);
  if (!r) goto oom;
  r->fd = -1;
  r->w = w;
  char file[160];
  snprintf(file, sizeof file, "cursor.%s", name);
  r->path = mw_path(w->dir, file);
  snprintf(file, sizeof file, ".cursor.%s.tmp", name); /* never another reader's cursor */
  r->tmp = mw_path(w->dir, file);
  snprintf(file, sizeof file, ".cursor.%s.prev", name);
  r->prev = mw_path(w->dir, file);
  if (!r->path || !r->tmp || !r->prev ||
      mw_grow((void **)&w->readers, &w->readers_cap, w->nreaders + 1, sizeof *w->readers) != 0) {
    mw_wal_reader_close(r);
    goto oom;
  }
  if (len) {
    r->ext = malloc(len);
    if (!r->ext) {
      mw_wal_reader_close(r);
      goto oom;
    }
    memcpy(r->ext, external_labels, len);
    r->ext_len = len;
    r->encs_ext = 1;
  }
  if (mw_reader_encs(r, 1, err, errlen) != 0) {
    mw_wal_reader_close(r);
    return -1;
  }
  /* The saved cursor, else its previous copy (a crash between the renames, a
   * damaged file); without either, the oldest data. */
  mw_pos_t p = {w->nsegs ? w->segs[0].index : 0, MW_SEG_HDR, 0}, c;
  char why[160] = "", why_prev[160] = "";
  int got = mw_cursor_load(r->path, &c, why, sizeof why);
  if (got <= 0) {
    int prev = mw_cursor_load(r->prev, &c, why_prev, sizeof why_prev);
    if (got < 0) {
      /* kept aside for a look, never rotated into the previous copy */
      snprintf(file, sizeof file, ".cursor.%s.damaged", name);
      char *aside = mw_path(w->dir, file);
      if (aside && unlink(aside) != 0) rmdir(aside); /* the last damaged one */
      if (aside && rename(r->path, aside) != 0) unlink(r->path);
      free(aside);
      r->st.cursor_errors++;
      if (prev > 0)
        snprintf(r->note, sizeof r->note,
                 "cursor file %s: %s: using its previous copy (a second of samples may be resent)",
                 r->path, why);
      else
        snprintf(r->note, sizeof r->note,
                 "cursor file %s: %s, and no good previous copy: reading the WAL from its oldest "
                 "data (samples already sent are sent again)",
                 r->path, why);
    }
    got = prev;
  }
  if (got > 0) {
    if (w->nsegs && c.seg > mw_head(w)->index) {
      r->st.cursor_errors++;
      snprintf(r->note, sizeof r->note,
               "cursor file %s: position %u:%llu is past the WAL's end: reading the WAL from its "
               "oldest data (samples already sent are sent again)",
               r->path, c.seg, (unsigned long long)c.off);
    } else if (w->nsegs && c.seg >= w->segs[0].index) {
      p = c;
      mw_pos_align(w, &p);
    }
  }
  /* What the WAL holds before the cursor was sent before this open. */
  for (size_t i = 0; i < w->nsegs && w->segs[i].index <= p.seg; i++) {
    const mw_seg_t *sg = &w->segs[i];
    r->st.samples_before_open +=
        sg->index < p.seg ? sg->samples : sg->samples - mw_count_from(w, sg, p.off, p.idx);
  }
  r->committed = r->read = p;
  r->st.segment = p.seg;
  r->st.offset = p.off;
  w->readers[w->nreaders++] = r;
  *out = r;
  return 0;
bad_name:
  mw_seterr(err, errlen, "invalid reader name \"%s\"", name);
  return -1;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

void mw_wal_reader_close(mw_wal_reader_t *r) {
  if (!r) return;
  mw_wal_t *w = r->w;
  if (r->dirty) mw_cursor_save(r, NULL, 0); /* best effort: a stale cursor only resends */
  for (size_t i = 0; i < w->nreaders; i++)
    if (w->readers[i] == r) {
      w->readers[i] = w->readers[--w->nreaders];
      break;
    }
  if (r->fd >= 0) close(r->fd);
  free(r->path);
  free(r->tmp);
  free(r->prev);
  free(r->rec.p);
  free(r->c_slot);
  free(r->c_ts);
  free(r->c_v);
  free(r->slot_of);
  free(r->slot_gen);
  free(r->slots);
  free(r->order);
  free(r->sh);
  free(r->g_ts);
  free(r->g_v);
  free(r->fl);
  free(r->ext);
  mw_relabel_scratch_free(r->rl_scratch);
  free(r->rl_cache);
  free(r->rl_arena.p);
  free(r->rl_in);
  free(r->rex);
  free(r->rex_buf.p);
  free(r->rex_head);
  free(r->rex_tail);
  for (size_t i = 0; i < r->nencs; i++)
    mw_rwenc_free(r->encs[i]);
  free(r->encs);
  free(r);
  if (w->closed && !w->nreaders) mw_wal_free(w);
}

void mw_wal_close(mw_wal_t *w) {
  if (!w) return;
  mw_sync_collect(w, 1, NULL, 0);
  mw_sync_unsynced(w, w->opts.fsync != MW_WAL_FSYNC_NEVER);
  if (w->head_fd >= 0) {
    if (w->opts.fsync != MW_WAL_FSYNC_NEVER) fdatasync(w->head_fd);
    close(w->head_fd);
    w->head_fd = -1;
  }
  w->closed = 1;
  /* Stop following the sources now: they may outlive the WAL. Nothing reads
   * a label set of tab once the WAL is closed (reader calls fail), so the
   * borrowed ones are not copied (that would double the memory of every
   * label set at the moment of stopping). */
  while (w->srcs)
    mw_wsrc_release(w->srcs, 1, 0);
  if (!w->nreaders) mw_wal_free(w);
}

/* --- readers: reading ------------------------------------------------- */

/* Corruption found while reading segment sg at *pos: the rest of the segment
 * is skipped (for every reader), counted. */
static void mw_reader_corrupt(mw_wal_reader_t *r, mw_seg_t *sg, mw_pos_t *pos) {
  mw_wal_t *w = r->w;
  w->st.corruptions++;
  w->st.corrupt_bytes += sg->size - pos->off;
  if (sg == mw_head(w)) {
    w->cut_next = 1; /* the writer moves on; this reader skips to the end */
    pos->off = sg->size;
  } else {
    sg->size = pos->off;
  }
  pos->idx = 0;
  r->rec_ok = 0;
}

static int mw_reader_fd(mw_wal_reader_t *r, uint32_t index) {
  if (r->fd >= 0 && r->fd_seg == index) return r->fd;
  if (r->fd >= 0) close(r->fd);
  char *p = mw_seg_path(r->w, index);
  r->fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
  free(p);
  r->fd_seg = index;
  return r->fd;
}

static int mw_reader_relabel(mw_wal_reader_t *r, uint32_t s, uint64_t ref);

/* The shard of a series: a mix of its WAL ref (refs are dense, so the plain
 * ref mod n would put neighbours on neighbouring shards only by luck). */
static uint32_t mw_shard_of(uint64_t ref, uint32_t nshards) {
  if (nshards <= 1) return 0;
  uint64_t x = ref;
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return (uint32_t)(x % nshards);
}

/* The exemplars record in r->rec (len bytes), passed over while building a
 * chunk: its exemplars join the chunk, each with the slot of its series
 * (made if the chunk has no sample of it). Exemplars of unknown series, of
 * series dropped by write relabeling or older than the span's min_ts
 * (sample_age_limit) are counted and skipped. 0, -1 on OOM. */
static int mw_reader_exemplars(mw_wal_reader_t *r, uint32_t len) {
  mw_wal_t *w = r->w;
  mw_sdec_t d;
  uint64_t ref;
  int64_t ts;
  double v;
  const uint8_t *lab;
  size_t ll;
  if (mw_sdec_begin(&d, r->rec.p, len) != 0) return 0; /* checked at replay; never written */
  while (mw_edec_next(&d, &ref, &ts, &v, &lab, &ll) == 1) {
    uint32_t s = mw_map_get(w, ref);
    if (s == MW_NONE || s >= r->so_cap || !mw_ex_labels_ok(lab, ll)) {
      r->st.exemplars_dropped++;
      continue;
    }
    if (ts < r->build_min_ts) {
      r->st.exemplars_dropped++;
      r->st.exemplars_too_old++;
      continue;
    }
    if (r->rl) {
      int kept = mw_reader_relabel(r, s, ref);
      if (kept < 0) return -1;
      if (!kept) {
        r->st.exemplars_dropped++;
        r->st.exemplars_relabel_dropped++;
        continue;
      }
    }
    if (r->slot_gen[s] != r->gen) {
      if (mw_grow((void **)&r->slots, &r->slots_cap, r->nslots + 1, sizeof *r->slots) != 0)
        return -1;
      uint32_t shard = mw_shard_of(ref, r->build_shards);
      r->slot_gen[s] = r->gen;
      r->slot_of[s] = (uint32_t)r->nslots;
      r->slots[r->nslots++] = (mw_slot_t){.s = s, .shard = shard, .ref = ref};
      r->sh[shard].nslots++;
    }
    if (mw_grow((void **)&r->rex, &r->rex_cap, r->nrex + 1, sizeof *r->rex) != 0 ||
        mw_buf_reserve(&r->rex_buf, ll ? ll : 1) != 0)
      return -1;
    r->rex[r->nrex++] = (mw_rex_t){
        .slot = r->slot_of[s], .len = (uint32_t)ll, .off = r->rex_buf.len, .ts = ts, .v = v};
    r->sh[r->slots[r->slot_of[s]].shard].nex++; /* counts toward max_samples, as in Prometheus */
    if (ll) memcpy(r->rex_buf.p + r->rex_buf.len, lab, ll);
    r->rex_buf.len += ll;
  }
  return 0;
}

/* Links the chunk's exemplars to their slots, in WAL order. 0, -1 on OOM. */
static int mw_reader_link_exemplars(mw_wal_reader_t *r) {
  if (r->nslots > r->rex_slots_cap) {
    size_t cap = r->rex_slots_cap ? r->rex_slots_cap : 64;
    while (cap < r->nslots)
      cap *= 2;
    uint32_t *h = realloc(r->rex_head, cap * sizeof *h);
    if (!h) return -1;
    r->rex_head = h;
    uint32_t *t = realloc(r->rex_tail, cap * sizeof *t);
    if (!t) return -1;
    r->rex_tail = t;
    r->rex_slots_cap = cap;
  }
  for (size_t k = 0; k < r->nslots; k++)
    r->rex_head[k] = MW_NONE;
  for (size_t i = 0; i < r->nrex; i++) {
    uint32_t k = r->rex[i].slot;
    r->rex[i].next = MW_NONE;
    if (r->rex_head[k] == MW_NONE)
      r->rex_head[k] = (uint32_t)i;
    else
      r->rex[r->rex_tail[k]].next = (uint32_t)i;
    r->rex_tail[k] = (uint32_t)i;
  }
  return 0;
}

/* Positions r's decoder on the next sample at or after *pos. 1: ready; 0:
 * nothing more to read; -1: I/O error (err). */
static int mw_reader_load(mw_wal_reader_t *r, mw_pos_t *pos, char *err, size_t errlen) {
  mw_wal_t *w = r->w;
  for (;;) {
    mw_seg_t *sg = mw_seg_from(w, pos->seg);
    if (!sg) return 0;
    if (sg->index != pos->seg || pos->off < MW_SEG_HDR) *pos = (mw_pos_t){sg->index, MW_SEG_HDR, 0};
    if (pos->off >= sg->size) {
      if (sg == mw_head(w)) return 0;
      *pos = (mw_pos_t){sg->index + 1, MW_SEG_HDR, 0};
      continue;
    }
    if (r->rec_ok && r->rec_seg == pos->seg && r->rec_off == pos->off && r->dec_idx == pos->idx) {
      if (r->dec.left) return 1;
      if (r->dec.p != r->dec.end) {
        mw_reader_corrupt(r, sg, pos);
        continue;
      }
      pos->off += MW_REC_HDR + r->rec_len;
      pos->idx = 0;
      r->rec_ok = 0;
      continue;
    }
    r->rec_ok = 0;
    int fd = mw_reader_fd(r, sg->index);
    if (fd < 0) {
      mw_seterr(err, errlen, "segment %08u: %s", sg->index, strerror(errno));
      return -1;
    }
    uint8_t type;
    uint32_t len;
    int rc = mw_rec_read(fd, pos->off, sg->size, &r->rec, &type, &len);
    if (rc == -2) {
      mw_seterr(err, errlen, "segment %08u: %s", sg->index, strerror(errno));
      return -1;
    }
    if (rc <= 0) {
      mw_reader_corrupt(r, sg, pos);
      continue;
    }
    if (type != MW_REC_SAMPLES) {
      if (type == MW_REC_EXEMPLARS && !r->no_exemplars && mw_reader_exemplars(r, len) != 0) {
        mw_seterr(err, errlen, "out of memory");
        return -1;
      }
      pos->off += MW_REC_HDR + len;
      pos->idx = 0;
      continue;
    }
    if (mw_sdec_begin(&r->dec, r->rec.p, len) != 0) {
      mw_reader_corrupt(r, sg, pos);
      continue;
    }
    uint64_t ref;
    int64_t ts;
    double v;
    uint32_t k = 0;
    while (k < pos->idx && (rc = mw_sdec_next(&r->dec, &ref, &ts, &v)) == 1)
      k++;
    if (k < pos->idx && rc < 0) {
      mw_reader_corrupt(r, sg, pos);
      continue;
    }
    pos->idx = k;
    r->rec_ok = 1;
    r->rec_seg = pos->seg;
    r->rec_off = pos->off;
    r->rec_len = len;
    r->dec_idx = k;
  }
}

/* Forgets every cached relabeling result. */
static void mw_reader_relabel_clear(mw_wal_reader_t *r) {
  if (r->rl_cache) memset(r->rl_cache, 0, r->so_cap * sizeof *r->rl_cache);
  r->rl_arena.len = 0;
}

/* 1 if a label name or value can be encoded (no separator byte). */
static int mw_label_encodable(const char *p, size_t n) { return !memchr(p, MW_LABELS_SEP, n); }

/* Applies the reader's write relabeling to series s (WAL ref ref) once and
 * caches the result: the series' labels plus the external labels it lacks
 * (Prometheus adds them first), through the program, sorted, labels with
 * an empty value left out. 1 kept, 0 dropped (by a rule, or nothing left,
 * or a label that cannot be encoded), -1 out of memory. */
static int mw_reader_relabel(mw_wal_reader_t *r, uint32_t s, uint64_t ref) {
  mw_rlcache_t *c = &r->rl_cache[s];
  if (c->ref == ref) return (int)c->kept;
  size_t len, pos = 0, epos = 0, n = 0;
  const uint8_t *enc = mw_series_labels(r->w->tab, s, &len);
  mw_label_t a, b;
  int ra = mw_labels_next(enc, len, &pos, &a);
  int rb = mw_labels_next(r->ext, r->ext_len, &epos, &b);
  while (ra == 1 || rb == 1) {
    if (mw_grow((void **)&r->rl_in, &r->rl_in_cap, n + 1, sizeof *r->rl_in) != 0) return -1;
    int cmp = 0;
    if (ra != 1) {
      cmp = 1;
    } else if (rb == 1) {
      size_t m = a.name_len < b.name_len ? a.name_len : b.name_len;
      cmp = memcmp(a.name, b.name, m);
      if (!cmp) cmp = (a.name_len > b.name_len) - (a.name_len < b.name_len);
    } else {
      cmp = -1;
    }
    if (cmp <= 0) { /* the series' own value wins */
      r->rl_in[n++] = a;
      ra = mw_labels_next(enc, len, &pos, &a);
      if (cmp == 0) rb = mw_labels_next(r->ext, r->ext_len, &epos, &b);
    } else {
      r->rl_in[n++] = b;
      rb = mw_labels_next(r->ext, r->ext_len, &epos, &b);
    }
  }
  const mw_label_t *out;
  size_t out_n;
  int kept = mw_relabel_apply(r->rl, r->rl_scratch, r->rl_in, n, &out, &out_n);
  if (kept < 0) return -1;
  size_t off = r->rl_arena.len;
  if (kept) {
    kept = 0;
    for (size_t i = 0; i < out_n; i++) {
      const mw_label_t *l = &out[i];
      if (!l->value_len) continue;
      if (!l->name_len || !mw_label_encodable(l->name, l->name_len) ||
          !mw_label_encodable(l->value, l->value_len)) {
        kept = 0;
        break;
      }
      if (mw_buf_reserve(&r->rl_arena, (size_t)l->name_len + l->value_len + 2) != 0) {
        r->rl_arena.len = off;
        return -1;
      }
      uint8_t *p = r->rl_arena.p + r->rl_arena.len;
      memcpy(p, l->name, l->name_len);
      p[l->name_len] = MW_LABELS_SEP;
      memcpy(p + l->name_len + 1, l->value, l->value_len);
      p[l->name_len + 1 + l->value_len] = MW_LABELS_SEP;
      r->rl_arena.len += (size_t)l->name_len + l->value_len + 2;
      kept = 1;
    }
  }
  if (!kept) r->rl_arena.len = off;
  *c = (mw_rlcache_t){
      .ref = ref, .off = off, .len = (uint32_t)(r->rl_arena.len - off), .kept = (uint32_t)kept};
  return kept;
}

int mw_wal_reader_set_relabel(mw_wal_reader_t *r, const mw_ffi_relabel_program_t *p, char *err,
                              size_t errlen) {
  if (p && !r->rl_scratch && !(r->rl_scratch = mw_relabel_scratch_new())) {
    mw_seterr(err, errlen, "out of memory");
    return -1;
  }
  /* The results cache (so_cap entries) exists only with a program. */
  if (p && !r->rl_cache && r->so_cap && !(r->rl_cache = calloc(r->so_cap, sizeof *r->rl_cache))) {
    mw_seterr(err, errlen, "out of memory");
    return -1;
  }
  /* With a program the reader adds the external labels before relabeling;
   * without one the encoder adds them. */
  if (mw_reader_encs_ext(r, !p && r->ext_len, err, errlen) != 0) return -1;
  if (!p) {
    free(r->rl_cache);
    r->rl_cache = NULL;
  }
  r->rl = p;
  mw_reader_relabel_clear(r);
  return 0;
}

/* Encodes shard k of the span handed out last: its non-empty series, their
 * samples from g_ts/g_v. */
static int mw_shard_encode(mw_wal_reader_t *r, uint32_t k, const uint8_t **buf, size_t *len,
                           size_t *raw, char *err, size_t errlen) {
  const mw_shard_t *sh = &r->sh[k];
  mw_rwenc_t *e = r->encs[k];
  mw_rwenc_reset(e);
  for (uint32_t i = sh->first; i < sh->first + sh->nslots; i++) {
    uint32_t slot = r->order[i];
    const mw_slot_t *sl = &r->slots[slot];
    uint32_t ex = r->nrex ? r->rex_head[slot] : MW_NONE;
    if (!sl->n && ex == MW_NONE) continue;
    size_t l;
    const uint8_t *enc;
    if (r->rl) {
      const mw_rlcache_t *c = &r->rl_cache[sl->s];
      enc = r->rl_arena.p + c->off;
      l = c->len;
    } else {
      enc = mw_series_labels(r->w->tab, sl->s, &l);
    }
    if (mw_rwenc_add_series(e, enc, l, r->g_ts + sl->at, r->g_v + sl->at, sl->n, err, errlen) != 0)
      return -1;
    for (; ex != MW_NONE; ex = r->rex[ex].next)
      if (mw_rwenc_add_exemplar(e, r->rex_buf.p + r->rex[ex].off, r->rex[ex].len, r->rex[ex].ts,
                                r->rex[ex].v, err, errlen) != 0)
        return -1;
  }
  return mw_rwenc_finish(e, buf, len, raw, err, errlen);
}

/* Grows the span's sample arrays to hold need samples; 0 or -1 (out of
 * memory). */
static int mw_reader_grow_samples(mw_wal_reader_t *r, size_t need) {
  if (mw_grow((void **)&r->c_slot, &r->c_cap, need, sizeof *r->c_slot) != 0) return -1;
  if (r->c_cap > r->g_cap) {
    int64_t *a = realloc(r->c_ts, r->c_cap * sizeof *a);
    if (!a) return -1;
    r->c_ts = a;
    double *b = realloc(r->c_v, r->c_cap * sizeof *b);
    if (!b) return -1;
    r->c_v = b;
    a = realloc(r->g_ts, r->c_cap * sizeof *a);
    if (!a) return -1;
    r->g_ts = a;
    b = realloc(r->g_v, r->c_cap * sizeof *b);
    if (!b) return -1;
    r->g_v = b;
    r->g_cap = r->c_cap;
  }
  return 0;
}

/* Sizes the reader's per-span arrays: the samples of a first request, the
 * shards, the series table's limit; 0 or -1 (out of memory). */
static int mw_reader_reserve(mw_wal_reader_t *r, uint32_t max_samples, uint32_t nshards) {
  mw_wal_t *w = r->w;
  if (mw_reader_grow_samples(r, max_samples) != 0) return -1;
  if (mw_grow((void **)&r->sh, &r->sh_cap, nshards, sizeof *r->sh) != 0) return -1;
  size_t limit = mw_series_limit(w->tab);
  if (limit > r->so_cap) {
    size_t cap = r->so_cap ? r->so_cap : 1024;
    while (cap < limit)
      cap *= 2;
    uint32_t *a = realloc(r->slot_of, cap * sizeof *a);
    if (!a) return -1;
    r->slot_of = a;
    a = realloc(r->slot_gen, cap * sizeof *a);
    if (!a) return -1;
    memset(a + r->so_cap, 0, (cap - r->so_cap) * sizeof *a);
    r->slot_gen = a;
    if (r->rl) { /* the relabeling results: only with a program */
      size_t old = r->rl_cache ? r->so_cap : 0;
      mw_rlcache_t *c = realloc(r->rl_cache, cap * sizeof *c);
      if (!c) return -1;
      memset(c + old, 0, (cap - old) * sizeof *c);
      r->rl_cache = c;
    }
    r->so_cap = cap;
  }
  return 0;
}

int mw_wal_reader_next_shards(mw_wal_reader_t *r, uint32_t nshards, uint32_t max_samples,
                              int64_t min_ts, const uint8_t **bufs, size_t *lens,
                              mw_wal_chunk_t *chunks, char *err, size_t errlen) {
  mw_wal_t *w = r->w;
  if (w->closed) {
    mw_seterr(err, errlen, "WAL closed");
    return -1;
  }
  if (nshards < 1 || nshards > MW_WAL_MAX_SHARDS) {
    mw_seterr(err, errlen, "shards: %u not in [1, %u]", nshards, MW_WAL_MAX_SHARDS);
    return -1;
  }
  if (!max_samples) max_samples = 2000;
  if (max_samples > MW_SAMPLES_PER_REC) max_samples = MW_SAMPLES_PER_REC;
  size_t span = (size_t)nshards * max_samples;
  if (mw_reader_reserve(r, max_samples, nshards) != 0) goto oom;
  if (mw_reader_encs(r, nshards, err, errlen) != 0) return -1;
  if (++r->gen == 0) {
    memset(r->slot_gen, 0, r->so_cap * sizeof *r->slot_gen);
    r->gen = 1;
  }
  for (uint32_t k = 0; k < nshards; k++)
    r->sh[k] = (mw_shard_t){.lo = INT64_MAX, .hi = INT64_MIN};
  r->nslots = 0;
  r->nrex = 0;
  r->rex_buf.len = 0;
  r->build_shards = nshards;
  r->build_min_ts = min_ts;
  uint32_t got = 0;
  int64_t hi = INT64_MIN;
  int full = 0;
  uint32_t guess = MW_NONE; /* s expected for the next sample */
  mw_pos_t pos = r->read;
  while (!full && got < span) {
    int rc = mw_reader_load(r, &pos, err, errlen);
    if (rc < 0) return -1;
    if (rc == 0) break;
    while (got < span) {
      uint64_t ref;
      int64_t ts;
      double v;
      rc = mw_sdec_next(&r->dec, &ref, &ts, &v);
      if (rc < 0) mw_reader_corrupt(r, mw_seg_from(w, pos.seg), &pos);
      if (rc <= 0) break; /* mw_reader_load moves on */
      uint32_t s = mw_ref_to_s(w, ref, guess);
      guess = s == MW_NONE ? MW_NONE : s + 1;
      int known = s != MW_NONE && s < r->so_cap;
      int new_slot = known && r->slot_gen[s] != r->gen;
      uint32_t shard = !known     ? 0
                       : new_slot ? mw_shard_of(ref, nshards)
                                  : r->slots[r->slot_of[s]].shard;
      if (known && r->sh[shard].n + r->sh[shard].nex >= max_samples) {
        /* Its shard is full (samples and exemplars, as Prometheus counts a
         * batch): the span ends before this sample, which the next span
         * reads again (from the record's start). */
        r->rec_ok = 0;
        full = 1;
        break;
      }
      if (got == r->c_cap && mw_reader_grow_samples(r, (size_t)got + 1) != 0) {
        r->rec_ok = 0; /* the decoder is past pos */
        goto oom;
      }
      pos.idx++;
      r->dec_idx++;
      if (!known) {
        r->st.unknown_series++;
        continue;
      }
      if (r->rl) {
        int kept = mw_reader_relabel(r, s, ref);
        if (kept < 0) goto oom;
        if (!kept) {
          r->st.samples_relabel_dropped++;
          continue;
        }
      }
      if (ts < min_ts) {
        r->st.samples_too_old++;
        continue;
      }
      if (new_slot) {
        if (mw_grow((void **)&r->slots, &r->slots_cap, r->nslots + 1, sizeof *r->slots) != 0)
          goto oom;
        r->slot_gen[s] = r->gen;
        r->slot_of[s] = (uint32_t)r->nslots;
        r->slots[r->nslots++] = (mw_slot_t){.s = s, .shard = shard, .ref = ref};
        r->sh[shard].nslots++;
      }
      uint32_t k = r->slot_of[s];
      mw_shard_t *sh = &r->sh[shard];
      r->slots[k].n++;
      sh->n++;
      if (ts < sh->lo) sh->lo = ts;
      if (ts > sh->hi) sh->hi = ts;
      r->c_slot[got] = k;
      r->c_ts[got] = ts;
      r->c_v[got] = v;
      got++;
      if (ts > hi) hi = ts;
    }
  }
  /* A span that filled every shard leaves the exemplars records after its
   * last sample to the next span (they count toward max_samples there); a
   * span cut before a sample re-reads that record next time. */
  r->read = pos;
  if (r->nrex && mw_reader_link_exemplars(r) != 0) goto oom;
  for (size_t i = 0; i < r->nrex; i++) {
    /* a shard with exemplars only spans their timestamps */
    mw_shard_t *sh = &r->sh[r->slots[r->rex[i].slot].shard];
    if (!sh->n) {
      if (r->rex[i].ts < sh->lo) sh->lo = r->rex[i].ts;
      if (r->rex[i].ts > sh->hi) sh->hi = r->rex[i].ts;
    }
    if (!got && r->rex[i].ts > hi) hi = r->rex[i].ts;
  }
  if (!got && !r->nrex) {
    /* Nothing to send up to pos: with nothing in flight the cursor may move. */
    if (!r->nfl && mw_pos_cmp(pos, r->committed) > 0) r->committed = pos;
    return 0;
  }
  /* Series grouped by shard (each shard's in order of first sample), the
   * samples grouped by series (each series' in WAL order). */
  if (mw_grow((void **)&r->order, &r->order_cap, r->nslots, sizeof *r->order) != 0) goto oom;
  uint32_t first = 0;
  for (uint32_t k = 0; k < nshards; k++) {
    r->sh[k].first = first;
    first += r->sh[k].nslots;
    r->sh[k].nslots = 0;
  }
  for (size_t k = 0; k < r->nslots; k++) {
    mw_shard_t *sh = &r->sh[r->slots[k].shard];
    r->order[sh->first + sh->nslots++] = (uint32_t)k;
  }
  uint32_t at = 0;
  for (size_t i = 0; i < r->nslots; i++) {
    mw_slot_t *sl = &r->slots[r->order[i]];
    sl->at = sl->fill = at;
    at += sl->n;
  }
  for (uint32_t i = 0; i < got; i++) {
    uint32_t j = r->slots[r->c_slot[i]].fill++;
    r->g_ts[j] = r->c_ts[i];
    r->g_v[j] = r->c_v[i];
  }
  uint64_t seq = r->seq + 1;
  for (uint32_t k = 0; k < nshards; k++) {
    const mw_shard_t *sh = &r->sh[k];
    size_t raw = 0;
    bufs[k] = NULL;
    lens[k] = 0;
    int some = sh->n || sh->nex;
    if (some && mw_shard_encode(r, k, &bufs[k], &lens[k], &raw, err, errlen) != 0) return -1;
    if (chunks)
      chunks[k] = (mw_wal_chunk_t){.seq = seq,
                                   .samples = sh->n,
                                   .series = sh->nslots,
                                   .min_ts = some ? sh->lo : 0,
                                   .max_ts = some ? sh->hi : 0,
                                   .raw_bytes = raw,
                                   .exemplars = sh->nex};
  }
  if (mw_grow((void **)&r->fl, &r->fl_cap, r->nfl + 1, sizeof *r->fl) != 0) goto oom;
  r->fl[r->nfl++] = (mw_flight_t){
      .seq = seq, .end = pos, .samples = got, .max_ts = hi, .exemplars = (uint32_t)r->nrex};
  r->seq = seq;
  r->st.samples_read += got;
  r->st.exemplars_read += r->nrex;
  return 1;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

int mw_wal_reader_next(mw_wal_reader_t *r, uint32_t max_samples, const uint8_t **buf, size_t *len,
                       mw_wal_chunk_t *chunk, char *err, size_t errlen) {
  return mw_wal_reader_next_shards(r, 1, max_samples, INT64_MIN, buf, len, chunk, err, errlen);
}

int mw_wal_reader_drop_old(mw_wal_reader_t *r, uint64_t seq, const uint8_t *body, size_t body_len,
                           int64_t min_ts, const uint8_t **buf, size_t *len, mw_wal_chunk_t *chunk,
                           char *err, size_t errlen) {
  if (mw_reader_encs(r, 1, err, errlen) != 0) return -1;
  mw_rwenc_kept_t k;
  if (mw_rwenc_drop_old(r->encs[0], body, body_len, min_ts, buf, len, &k, err, errlen) != 0)
    return -1;
  /* What was taken out is no longer pending but dropped (when its span is
   * still in flight: a rewound span is read again, and counted then). */
  for (size_t i = 0; i < r->nfl; i++) {
    mw_flight_t *fl = &r->fl[i];
    if (fl->seq != seq) continue;
    fl->samples -= k.samples_dropped;
    fl->exemplars -= k.exemplars_dropped;
    r->st.samples_read -= k.samples_dropped;
    r->st.samples_too_old += k.samples_dropped;
    r->st.exemplars_read -= k.exemplars_dropped;
    r->st.exemplars_dropped += k.exemplars_dropped;
    r->st.exemplars_too_old += k.exemplars_dropped;
  }
  if (chunk)
    *chunk = (mw_wal_chunk_t){.seq = seq,
                              .samples = k.samples,
                              .series = k.series,
                              .min_ts = k.min_ts,
                              .max_ts = k.max_ts,
                              .raw_bytes = k.raw,
                              .exemplars = k.exemplars};
  return (int)(k.samples_dropped + k.exemplars_dropped);
}

int mw_wal_reader_commit(mw_wal_reader_t *r, uint64_t seq, char *err, size_t errlen) {
  size_t i = 0;
  while (i < r->nfl && r->fl[i].seq != seq)
    i++;
  if (i == r->nfl) return 0;
  r->fl[i].acked = 1;
  size_t k = 0;
  mw_pos_t c = r->committed;
  while (k < r->nfl && r->fl[k].acked) {
    if (mw_pos_cmp(r->fl[k].end, c) > 0) c = r->fl[k].end;
    r->st.samples_committed += r->fl[k].samples;
    r->st.exemplars_committed += r->fl[k].exemplars;
    r->st.chunks_committed++;
    if (r->fl[k].max_ts > r->st.committed_max_ts) r->st.committed_max_ts = r->fl[k].max_ts;
    k++;
  }
  if (!k) return 0;
  memmove(r->fl, r->fl + k, (r->nfl - k) * sizeof *r->fl);
  r->nfl -= k;
  if (mw_pos_cmp(c, r->committed) <= 0) return 0;
  r->committed = c;
  r->st.segment = c.seg;
  r->st.offset = c.off;
  if (r->w->closed) return 0;
  /* The cursor file is rewritten at most once a second (every commit with
   * MW_WAL_FSYNC_ALWAYS) and at close: a crash resends at most the last
   * second of committed chunks, never skips any. */
  r->dirty = 1;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
  if (r->w->opts.fsync != MW_WAL_FSYNC_ALWAYS && now - r->saved_at < 1.0) return 0;
  r->saved_at = now;
  r->dirty = 0;
  return mw_cursor_save(r, err, errlen);
}

void mw_wal_reader_rewind(mw_wal_reader_t *r) {
  r->nfl = 0;
  r->read = r->committed;
}

void mw_wal_reader_stats(const mw_wal_reader_t *r, mw_wal_reader_stats_t *st) {
  *st = r->st;
  st->pending_chunks = r->nfl;
  st->exemplars_pending = 0;
  for (size_t i = 0; i < r->nfl; i++)
    st->exemplars_pending += r->fl[i].exemplars;
}

void mw_wal_reader_set_exemplars(mw_wal_reader_t *r, int send) { r->no_exemplars = !send; }

/* --- truncation ------------------------------------------------------- */

/* Samples of segment sg from record offset off on, less idx already read. */
static uint64_t mw_count_from(mw_wal_t *w, const mw_seg_t *sg, uint64_t off, uint32_t idx) {
  if (off <= MW_SEG_HDR && !idx) return sg->samples;
  char *path = mw_seg_path(w, sg->index);
  int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
  free(path);
  uint64_t n = 0;
  while (fd >= 0 && off < sg->size) {
    uint8_t h[MW_REC_HDR + 4];
    if (mw_pread_full(fd, h, sizeof h, off) != (ssize_t)sizeof h) break;
    if (h[0] == MW_REC_SAMPLES) {
      uint32_t c = mw_get32(h + MW_REC_HDR);
      n += c > idx ? c - idx : 0;
    }
    idx = 0;
    off += MW_REC_HDR + mw_get32(h + 1);
  }
  if (fd >= 0) close(fd);
  return n;
}

/* Writes checkpoint.N (N = first kept segment - 1): every WAL ref still
 * mapped, with its labels. Durable (fsync) before it is renamed into place. */
static int mw_write_checkpoint(mw_wal_t *w, uint32_t n, char *err, size_t errlen) {
  char name[40];
  snprintf(name, sizeof name, "checkpoint.%08u.tmp", n);
  char *tmp = mw_path(w->wal_dir, name);
  snprintf(name, sizeof name, "checkpoint.%08u", n);
  char *final = mw_path(w->wal_dir, name);
  char *file = tmp ? mw_path(tmp, "00000000") : NULL;
  mw_buf_t *b = &w->sbuf;
  int fd = -1, rc = -1;
  if (!tmp || !final || !file) {
    mw_seterr(err, errlen, "out of memory");
    goto done;
  }
  mw_rmdir(tmp);
  if (mkdir(tmp, 0750) != 0) goto io;
  fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0 || mw_write_full(fd, MW_MAGIC, MW_SEG_HDR) != 0) goto io;
  uint64_t bytes = MW_SEG_HDR;
  size_t i = 0;
  while (w->map_k && i <= w->map_mask) {
    b->len = 0;
    size_t rec = mw_rec_begin(b, MW_REC_SERIES, 0);
    uint32_t count = 0;
    if (rec == SIZE_MAX) goto oom;
    for (; i <= w->map_mask && b->len < MW_SERIES_REC_BYTES; i++) {
      if (!w->map_k[i]) continue;
      size_t len;
      const uint8_t *enc = mw_series_labels(w->tab, w->map_v[i], &len);
      if (!enc) continue;
      if (mw_buf_reserve(b, 20 + len) != 0) goto oom;
      uint8_t *p = mw_put_uvarint(b->p + b->len, w->map_k[i]);
      p = mw_put_uvarint(p, len);
      memcpy(p, enc, len);
      b->len = (size_t)(p - b->p) + len;
      count++;
    }
    if (!count) break;
    mw_rec_end(b, rec, count);
    if (mw_write_full(fd, b->p, b->len) != 0) goto io;
    bytes += b->len;
  }
  if (fsync(fd) != 0) goto io;
  close(fd);
  fd = -1;
  if (mw_fsync_dir(tmp) != 0 || rename(tmp, final) != 0 || mw_fsync_dir(w->wal_dir) != 0) goto io;
  w->checkpoint_bytes = bytes;
  rc = 0;
  goto done;
oom:
  mw_seterr(err, errlen, "out of memory");
  goto done;
io:
  mw_seterr(err, errlen, "checkpoint %s: %s", tmp, strerror(errno));
done:
  if (fd >= 0) close(fd);
  if (rc != 0 && tmp) mw_rmdir(tmp);
  free(tmp);
  free(final);
  free(file);
  return rc;
}

int mw_wal_truncate(mw_wal_t *w, int64_t now_ms, int64_t min_keepalive_ms, int64_t max_keepalive_ms,
                    char *err, size_t errlen) {
  if (w->closed) {
    mw_seterr(err, errlen, "WAL closed");
    return -1;
  }
  /* A new head, so that a quiet WAL's data can age out too. */
  if (mw_head(w)->size > MW_SEG_HDR && mw_new_segment(w, err, errlen) != 0) return -1;
  int64_t min_cut = now_ms - min_keepalive_ms, max_cut = now_ms - max_keepalive_ms;
  size_t k = 0;
  for (; k + 1 < w->nsegs; k++) {
    const mw_seg_t *sg = &w->segs[k];
    int read = 1;
    for (size_t i = 0; i < w->nreaders; i++) {
      mw_pos_t c = w->readers[i]->committed;
      if (c.seg < sg->index || (c.seg == sg->index && mw_count_from(w, sg, c.off, c.idx) > 0))
        read = 0;
    }
    int forced = !sg->samples || sg->max_ts < max_cut;
    if (!((read && sg->max_ts < min_cut) || forced)) break;
  }
  if (!k) return 0;
  uint32_t first = w->segs[k].index;
  mw_pos_t start = {first, MW_SEG_HDR, 0};
  /* Readers that had not committed the removed data jump past it. */
  uint64_t dropped_max = 0;
  int rc = 0;
  for (size_t i = 0; i < w->nreaders; i++) {
    mw_wal_reader_t *r = w->readers[i];
    if (mw_pos_cmp(r->committed, start) >= 0) continue;
    uint64_t dropped = 0;
    for (size_t j = 0; j < k; j++) {
      const mw_seg_t *sg = &w->segs[j];
      if (sg->index > r->committed.seg)
        dropped += sg->samples;
      else if (sg->index == r->committed.seg)
        dropped += mw_count_from(w, sg, r->committed.off, r->committed.idx);
    }
    r->st.samples_dropped += dropped;
    if (dropped > dropped_max) dropped_max = dropped;
    r->committed = start;
    r->st.segment = start.seg;
    r->st.offset = start.off;
    if (mw_pos_cmp(r->read, start) < 0) {
      r->read = start;
      r->rec_ok = 0;
    }
    if (mw_cursor_save(r, err, errlen) != 0) rc = -1;
  }
  w->st.samples_dropped += dropped_max;
  /* Forget the series no kept segment mentions. */
  size_t limit = mw_series_limit(w->tab);
  uint8_t *dead = calloc(limit ? limit : 1, 1);
  if (!dead) {
    mw_seterr(err, errlen, "out of memory");
    return -1;
  }
  size_t ndead = 0;
  for (uint32_t s = 0; s < limit; s++) {
    size_t l;
    if (mw_series_labels(w->tab, s, &l) && w->last_seg[s] < first) {
      dead[s] = 1;
      ndead++;
    }
  }
  if (ndead) {
    if (mw_map_rebuild(w, w->map_len, dead) != 0) {
      free(dead);
      mw_seterr(err, errlen, "out of memory");
      return -1;
    }
    for (uint32_t s = 0; s < limit; s++)
      if (dead[s]) {
        mw_series_del(w->tab, s);
        w->wref[s] = 0;
        if (s < w->ex_last_cap) w->ex_last[s] = 0;
        w->last_seg[s] = 0;
      }
    mw_memos_clear(w); /* they may point at deleted series */
    for (size_t i = 0; i < w->nreaders; i++)
      mw_reader_relabel_clear(w->readers[i]); /* frees the results of the deleted series */
    w->st.series_removed += ndead;
    mw_series_compact(w->tab);
  }
  free(dead);
  /* The checkpoint first, then the segments and checkpoint it replaces. */
  uint32_t old_cp = w->checkpoint;
  if (mw_write_checkpoint(w, first - 1, err, errlen) != 0) return -1;
  w->checkpoint = first - 1;
  w->st.checkpoints++;
  for (size_t j = 0; j < k; j++) {
    char *p = mw_seg_path(w, w->segs[j].index);
    if (p) unlink(p);
    free(p);
  }
  if (old_cp && old_cp != w->checkpoint) {
    char name[32];
    snprintf(name, sizeof name, "checkpoint.%08u", old_cp);
    char *p = mw_path(w->wal_dir, name);
    if (p) mw_rmdir(p);
    free(p);
  }
  memmove(w->segs, w->segs + k, (w->nsegs - k) * sizeof *w->segs);
  w->nsegs -= k;
  w->st.segments_removed += k;
  return rc;
}

/* --- FFI -------------------------------------------------------------- */

int mw_ffi_wal_open(const char *dir, const mw_wal_opts_t *opts, mw_wal_t **out, char *err,
                    size_t errlen) {
  return mw_wal_open(dir, opts, out, err, errlen);
}

void mw_ffi_wal_close(mw_wal_t *w) { mw_wal_close(w); }

int mw_ffi_wal_append(mw_wal_t *w, const mw_batch_t *b, char *err, size_t errlen) {
  return mw_wal_append_batch(w, b, err, errlen);
}

int mw_ffi_wal_sync(mw_wal_t *w, char *err, size_t errlen) { return mw_wal_sync(w, err, errlen); }

int mw_ffi_wal_sync_start(mw_wal_t *w, char *err, size_t errlen) {
  return mw_wal_sync_start(w, err, errlen);
}

int mw_ffi_wal_truncate(mw_wal_t *w, int64_t now_ms, int64_t min_keepalive_ms,
                        int64_t max_keepalive_ms, char *err, size_t errlen) {
  return mw_wal_truncate(w, now_ms, min_keepalive_ms, max_keepalive_ms, err, errlen);
}

void mw_ffi_wal_stats(const mw_wal_t *w, mw_wal_stats_t *st) { mw_wal_stats(w, st); }

const char *mw_ffi_wal_repair_log(const mw_wal_t *w) { return mw_wal_repair_log(w); }

int mw_ffi_wal_reader_open(mw_wal_t *w, const char *name, const uint8_t *external_labels,
                           size_t len, mw_wal_reader_t **out, char *err, size_t errlen) {
  return mw_wal_reader_open(w, name, external_labels, len, out, err, errlen);
}

void mw_ffi_wal_reader_close(mw_wal_reader_t *r) { mw_wal_reader_close(r); }

const char *mw_ffi_wal_reader_note(const mw_wal_reader_t *r) { return r->note; }

int mw_ffi_wal_reader_next(mw_wal_reader_t *r, uint32_t max_samples, const uint8_t **buf,
                           size_t *len, mw_wal_chunk_t *chunk, char *err, size_t errlen) {
  return mw_wal_reader_next(r, max_samples, buf, len, chunk, err, errlen);
}

int mw_ffi_wal_reader_next_shards(mw_wal_reader_t *r, uint32_t nshards, uint32_t max_samples,
                                  int64_t min_ts, const uint8_t **bufs, size_t *lens,
                                  mw_wal_chunk_t *chunks, char *err, size_t errlen) {
  return mw_wal_reader_next_shards(r, nshards, max_samples, min_ts, bufs, lens, chunks, err,
                                   errlen);
}

int mw_ffi_wal_reader_drop_old(mw_wal_reader_t *r, uint64_t seq, const uint8_t *body,
                               size_t body_len, int64_t min_ts, const uint8_t **buf, size_t *len,
                               mw_wal_chunk_t *chunk, char *err, size_t errlen) {
  return mw_wal_reader_drop_old(r, seq, body, body_len, min_ts, buf, len, chunk, err, errlen);
}

int mw_ffi_wal_reader_commit(mw_wal_reader_t *r, uint64_t seq, char *err, size_t errlen) {
  return mw_wal_reader_commit(r, seq, err, errlen);
}

void mw_ffi_wal_reader_rewind(mw_wal_reader_t *r) { mw_wal_reader_rewind(r); }

int mw_ffi_wal_reader_set_relabel(mw_wal_reader_t *r, const mw_ffi_relabel_program_t *p, char *err,
                                  size_t errlen) {
  return mw_wal_reader_set_relabel(r, p, err, errlen);
}

void mw_ffi_wal_reader_set_exemplars(mw_wal_reader_t *r, int send) {
  mw_wal_reader_set_exemplars(r, send);
}

void mw_ffi_wal_reader_stats(const mw_wal_reader_t *r, mw_wal_reader_stats_t *st) {
  mw_wal_reader_stats(r, st);
}
