/* test_recordlog: the type-agnostic record log on its own, with a toy layer
 * above it: type 1 records are counted (u32 count, i64 timestamp, then
 * count u32 values), type 2 records are opaque bytes. Append and replay,
 * torn tails, corruption in the middle, cursors and their copies,
 * truncation by age and size with a checkpoint, fsync policies, SIGKILL. */
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "storage/recordlog.h"
#include "test.h"
#include "testdir.h"

static void rm_rf(const char *dir) { mw_test_rm_rf(dir); }

static char *tmpdir(void) { return mw_test_tmpdir("rlog"); }

/* What the toy layer saw at replay. */
typedef struct {
  uint32_t values[20000];
  size_t n;       /* values of type 1 records, in order */
  size_t opaque;  /* type 2 records */
  size_t from_cp; /* records read from a checkpoint */
  int reject_at;  /* a value that makes its record malformed (0: none) */
} seen_t;

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int replay(void *ctx, const mw_rlog_rec_t *rec, mw_rlog_seg_t *seg, char *err,
                  size_t errlen) {
  (void)err;
  (void)errlen;
  seen_t *s = ctx;
  if (rec->checkpoint) {
    s->from_cp++;
    return 0;
  }
  if (rec->type == 2) {
    s->opaque++;
    return 0;
  }
  if (rec->len < 12) return 1;
  uint32_t count = get32(rec->p);
  int64_t ts;
  memcpy(&ts, rec->p + 4, 8);
  if (rec->len != 12 + 4 * count) return 1;
  for (uint32_t i = 0; i < count; i++)
    if (s->reject_at && get32(rec->p + 12 + 4 * i) == (uint32_t)s->reject_at) return 1;
  for (uint32_t i = 0; i < count && s->n < 20000; i++)
    s->values[s->n++] = get32(rec->p + 12 + 4 * i);
  seg->items += count;
  if (ts < seg->min_ts) seg->min_ts = ts;
  if (ts > seg->max_ts) seg->max_ts = ts;
  return 0;
}

static mw_rlog_opts_t opts(seen_t *s, uint64_t segsize, int fsync) {
  return (mw_rlog_opts_t){.magic = "MWTEST01",
                          .segment_size = segsize,
                          .fsync = fsync,
                          .types = 1u << 1 | 1u << 2,
                          .counted = 1u << 1,
                          .what = "log",
                          .items = "values",
                          .replay = replay,
                          .ctx = s};
}

/* Appends one type 1 record of count values first, first + 1, ... at ts. */
static int put(mw_rlog_t *l, uint32_t first, uint32_t count, int64_t ts, char *err) {
  uint8_t buf[MW_RLOG_REC_HDR + 12 + 4 * 64];
  uint8_t *p = buf + MW_RLOG_REC_HDR;
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(count >> (8 * i));
  memcpy(p + 4, &ts, 8);
  for (uint32_t k = 0; k < count; k++)
    for (int i = 0; i < 4; i++)
      p[12 + 4 * k + (uint32_t)i] = (uint8_t)((first + k) >> (8 * i));
  uint32_t len = 12 + 4 * count;
  mw_rlog_frame(buf, 1, len);
  struct iovec iov = {buf, MW_RLOG_REC_HDR + len};
  uint32_t seg;
  return mw_rlog_append(l, &iov, 1, count, ts, ts, &seg, err, 256);
}

/* Reads every type 1 value from the cursor's read position on. */
static size_t read_all(mw_rlog_cursor_t *c, uint32_t *out, size_t cap) {
  char err[256];
  size_t n = 0;
  mw_rlog_pos_t pos = c->read;
  mw_rlog_rec_t rec;
  while (mw_rlog_seek(c->log, &pos)) {
    int rc = mw_rlog_read(c, &pos, &rec, err, sizeof err);
    if (rc < 0) return (size_t)-1;
    if (rc == 0) {
      mw_rlog_skip_corrupt(c->log, &pos);
      continue;
    }
    if (rec.type == 1)
      for (uint32_t i = pos.idx; i < get32(rec.p) && n < cap; i++)
        out[n++] = get32(rec.p + 12 + 4 * i);
    pos.off += MW_RLOG_REC_HDR + rec.len;
    pos.idx = 0;
  }
  c->read = pos;
  return n;
}

static void test_append_replay(void) {
  char err[256], *dir = tmpdir();
  static seen_t s;
  memset(&s, 0, sizeof s);
  mw_rlog_opts_t o = opts(&s, 1024, MW_RLOG_FSYNC_NEVER);
  mw_rlog_t *l;
  CHECK_INT(mw_rlog_open(dir, &o, &l, err, sizeof err), 0);
  for (uint32_t i = 0; i < 100; i++)
    CHECK_INT(put(l, i * 10, 10, 1000 + i, err), 0);
  /* an opaque record between them: not counted, passed to replay */
  uint8_t rec[MW_RLOG_REC_HDR + 3] = {0};
  memcpy(rec + MW_RLOG_REC_HDR, "abc", 3);
  mw_rlog_frame(rec, 2, 3);
  struct iovec iov = {rec, sizeof rec};
  CHECK_INT(mw_rlog_append(l, &iov, 1, 0, 0, 0, NULL, err, sizeof err), 0);
  size_t nseg;
  const mw_rlog_seg_t *segs = mw_rlog_segments(l, &nseg);
  CHECK(nseg > 5); /* 1 KiB segments */
  CHECK_INT(segs[0].index, 1);
  CHECK_INT(segs[0].min_ts, 1000);
  mw_rlog_close(l);
  mw_rlog_free(l);
  CHECK_INT(mw_rlog_open(dir, &o, &l, err, sizeof err), 0);
  CHECK_INT(s.n, 1000);
  CHECK_INT(s.opaque, 1);
  for (uint32_t i = 0; i < 1000; i++)
    CHECK_INT(s.values[i], i);
  CHECK_STR(mw_rlog_repair_log(l), "");
  mw_rlog_stats_t st;
  mw_rlog_stats(l, &st);
  CHECK_INT(st.corruptions, 0);
  /* a cursor reads the same from the oldest data */
  mw_rlog_cursor_t *c;
  CHECK_INT(mw_rlog_cursor_open(l, "r", &c, err, sizeof err), 0);
  static uint32_t got[2000];
  CHECK_INT(read_all(c, got, 2000), 1000);
  CHECK_INT(got[999], 999);
  CHECK_INT(c->items_before_open, 0);
  mw_rlog_cursor_close(c);
  mw_rlog_close(l);
  mw_rlog_free(l);
  /* a bad fsync policy is refused */
  o.fsync = 7;
  CHECK_INT(mw_rlog_open(dir, &o, &l, err, sizeof err), -1);
  CHECK_STR(err, "invalid fsync policy 7");
  rm_rf(dir);
}

static long fsize(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* A torn tail is cut, counted and described; the next open finds nothing. */
static void test_torn_tail(void) {
  char err[256], path[512], *dir = tmpdir();
  static seen_t s;
  memset(&s, 0, sizeof s);
  mw_rlog_opts_t o = opts(&s, 1 << 20, MW_RLOG_FSYNC_NEVER);
  mw_rlog_t *l;
  CHECK_INT(mw_rlog_open(dir, &o, &l, err, sizeof err), 0);
  for (uint32_t i = 0; i < 10; i++)
    CHECK_INT(put(l, i * 4, 4, i, err), 0);
  mw_rlog_close(l);
  mw_rlog_free(l);
  snprintf(path, sizeof path, "%s/00000001", dir);
  long size = fsize(path);
  CHECK_INT(truncate(path, size - 5), 0);
  s.n = 0;
  CHECK_INT(mw_rlog_open(dir, &o, &l, err, sizeof err), 0);
  CHECK_INT(s.n, 36);
  mw_rlog_stats_t st;
  mw_rlog_stats(l, &st);
  CHECK_INT(st.corruptions, 1);
  CHECK_INT(st.corrupt_bytes, 28 - 5 + 9);
  CHECK(strstr(mw_rlog_repair_log(l), "torn or corrupt data at offset") != NULL);
  CHECK(strstr(mw_rlog_repair_log(l), "cut 32 bytes") != NULL);
  CHECK_INT(fsize(path), size - 37);
  CHECK_INT(put(l, 100, 1, 100, err), 0); /* into a new segment */
  mw_rlog_close(l);
  mw_rlog_free(l);
  s.n = 0;
  CHECK_INT(mw_rlog_open(dir, &o, &l, err, sizeof err), 0);
  mw_rlog_stats(l, &st);
  CHECK_INT(st.corruptions, 0);
  CHECK_INT(s.n, 37);
  CHECK_INT(s.values[36], 100);
  mw_rlog_close(l);
  mw_rlog_free(l);
  /* an empty segment file (killed before its magic) loses nothing */
  snprintf(path, sizeof path, "%s/00000009", dir);
  close(open(path, O_WRONLY | O_CREAT, 0640));
  s.n = 0;
  CHECK_INT(mw_rlog_open(dir, &o, &l, err, sizeof err), 0);
  mw_rlog_stats(l, &st);
  CHECK_INT(st.corruptions, 0);
  CHECK_INT(s.n, 37);
  mw_rlog_close(l);
  mw_rlog_free(l);
  rm_rf(dir);
}

/* A flipped byte in the middle of an old segment ends that segment there;
 * the segments after it are read; a record the layer calls malformed too. */
static void test_corrupt_middle(void) {
  char err[256], path[512], *dir = tmpdir();
  static seen_t s;
  memset(&s, 0, sizeof s);
  mw_rlog_opts_t o = opts(&s, 1024, MW_RLOG_FSYNC_NEVER);
  mw_rlog_t *l;
  CHECK_INT(mw_rlog_open(dir, &o, &l, err, sizeof err), 0);
  for (uint32_t i = 0; i < 60; i++)
    CHECK_INT(put(l, i * 10, 10, i, err), 0); /* 61 bytes each: 16 a segment */
  mw_rlog_close(l);
  mw_rlog_free(l);
  snprintf(path, sizeof path, "%s/00000002", dir);
  int fd = open(path, O_RDWR);
  uint8_t b;
  CHECK(pread(fd, &b, 1, 8 + 61 * 3 + 20) == 1);
  b ^= 0x40;
  CHECK(pwrite(fd, &b, 1, 8 + 61 * 3 + 20) == 1);
  close(fd);
  s.n = 0;
  CHECK_INT(mw_rlog_open(dir, &o, &l, err, sizeof err), 0);
  mw_rlog_stats_t st;
  mw_rlog_stats(l, &st);
  CHECK_INT(st.corruptions, 1);
  CHECK_INT(s.n, 600 - 130); /* 13 of segment 2's records cut */
  CHECK_INT(s.values[160 + 29], 189);
  CHECK_INT(s.values[190], 320); /* segment 3 follows */
  CHECK_INT(fsize(path), 8 + 61 * 3);
  mw_rlog_close(l);
  mw_rlog_free(l);
  /* the layer above rejects value 500's record: its segment is cut there */
  s.n = 0;
  s.reject_at = 500;
  CHECK_INT(mw_rlog_open(dir, &o, &l, err, sizeof err), 0);
  mw_rlog_stats(l, &st);
  CHECK_INT(st.corruptions, 1);
  CHECK_INT(s.n, 470 - 100); /* records 50 to 59, the end of segment 4, cut */
  mw_rlog_close(l);
  mw_rlog_free(l);
  rm_rf(dir);
}

static void write_text(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
  if (fd < 0) return;
  if (write(fd, text, strlen(text)) < 0) {
  }
  close(fd);
}

/* Cursors: names, the committed position kept across opens, a damaged file
 * replaced by its previous copy, both bad: the oldest data, past the end. */
static void test_cursors(void) {
  char err[256], path[512], *dir = tmpdir(), *cdir = tmpdir();
  static seen_t s;
  static uint32_t got[4000];
  memset(&s, 0, sizeof s);
  mw_rlog_opts_t o = opts(&s, 1024, MW_RLOG_FSYNC_ALWAYS); /* every commit saved */
  o.cursor_dir = cdir;
  mw_rlog_t *l;
  CHECK_INT(mw_rlog_open(dir, &o, &l, err, sizeof err), 0);
  for (uint32_t i = 0; i < 50; i++)
    CHECK_INT(put(l, i * 10, 10, i, err), 0);
  mw_rlog_cursor_t *c, *c2;
  CHECK_INT(mw_rlog_cursor_open(l, "bad/name", &c, err, sizeof err), -1);
  CHECK_STR(err, "invalid reader name \"bad/name\"");
  CHECK_INT(mw_rlog_cursor_open(l, "a", &c, err, sizeof err), 0);
  CHECK_STR(c->note, "");
  CHECK_INT(mw_rlog_cursor_open(l, "a", &c2, err, sizeof err), -1);
  CHECK_STR(err, "reader \"a\" is already open");
  /* commit after the 20th record, inside the 21st (idx 3), then further */
  mw_rlog_pos_t p = c->read;
  for (int i = 0; i < 20; i++) {
    CHECK_INT(mw_rlog_seek(l, &p), 1);
    p.off += MW_RLOG_REC_HDR + 52;
  }
  CHECK_INT(mw_rlog_seek(l, &p), 1);
  p.idx = 3;
  mw_rlog_pos_t first = p;
  CHECK_INT(mw_rlog_cursor_commit(c, p, err, sizeof err), 0);
  p.idx = 7;
  CHECK_INT(mw_rlog_cursor_commit(c, p, err, sizeof err), 0);
  CHECK_INT(mw_rlog_cursor_commit(c, first, err, sizeof err), 0); /* never backwards */
  CHECK_INT(c->committed.idx, 7);
  mw_rlog_cursor_close(c);
  CHECK_INT(mw_rlog_cursor_open(l, "a", &c, err, sizeof err), 0);
  CHECK_INT(c->items_before_open, 207);
  CHECK_INT(read_all(c, got, 4000), 293);
  CHECK_INT(got[0], 207);
  mw_rlog_cursor_close(c);
  /* a damaged cursor: its previous copy (idx 3) is used, the file put aside */
  snprintf(path, sizeof path, "%s/cursor.a", cdir);
  write_text(path, "mwcursor 2 3 70 7 deadbeef\n");
  CHECK_INT(mw_rlog_cursor_open(l, "a", &c, err, sizeof err), 0);
  CHECK(strstr(c->note, "using its previous copy (a second of values may be resent)") != NULL);
  CHECK_INT(c->cursor_errors, 1);
  CHECK_INT(c->items_before_open, 203);
  mw_rlog_cursor_close(c);
  snprintf(path, sizeof path, "%s/.cursor.a.damaged", cdir);
  CHECK(fsize(path) > 0);
  /* both damaged: from the oldest data */
  snprintf(path, sizeof path, "%s/cursor.a", cdir);
  write_text(path, "garbage");
  snprintf(path, sizeof path, "%s/.cursor.a.prev", cdir);
  write_text(path, "garbage too");
  CHECK_INT(mw_rlog_cursor_open(l, "a", &c, err, sizeof err), 0);
  CHECK(strstr(c->note, "no good previous copy: reading the log from its oldest data (values") !=
        NULL);
  CHECK_INT(c->items_before_open, 0);
  mw_rlog_cursor_close(c);
  /* past the end, and version 1 files still read */
  snprintf(path, sizeof path, "%s/cursor.b", cdir);
  write_text(path, "mwcursor 1 999 8 0\n");
  CHECK_INT(mw_rlog_cursor_open(l, "b", &c, err, sizeof err), 0);
  CHECK(strstr(c->note, "is past the log's end") != NULL);
  CHECK_INT(c->cursor_errors, 1);
  mw_rlog_cursor_close(c);
  snprintf(path, sizeof path, "%s/cursor.b", cdir);
  write_text(path, "mwcursor 1 2 8 0\n");
  CHECK_INT(mw_rlog_cursor_open(l, "b", &c, err, sizeof err), 0);
  CHECK_STR(c->note, "");
  CHECK_INT(c->committed.seg, 2);
  CHECK_INT(c->items_before_open, 160); /* segment 1: 16 records */
  /* a position inside a record is moved to its start */
  mw_rlog_cursor_close(c);
  write_text(path, "mwcursor 1 2 30 0\n");
  CHECK_INT(mw_rlog_cursor_open(l, "b", &c, err, sizeof err), 0);
  CHECK_INT(c->committed.off, 8);
  mw_rlog_cursor_close(c);
  mw_rlog_close(l);
  mw_rlog_free(l);
  rm_rf(dir);
  rm_rf(cdir);
}

static int cp_hook(void *ctx, mw_rlog_cpw_t *w, char *err, size_t errlen) {
  (void)err;
  (void)errlen;
  int *n = ctx;
  uint8_t rec[MW_RLOG_REC_HDR + 4] = {0};
  memcpy(rec + MW_RLOG_REC_HDR, "keep", 4);
  mw_rlog_frame(rec, 2, 4);
  (*n)++;
  return mw_rlog_cp_write(w, rec, sizeof rec);
}

/* Truncation: by age once read, by age unread (counted as dropped), by
 * size; the checkpoint is written through the hook and replayed at open. */
static void test_truncate(void) {
  char err[256], path[512], *dir = tmpdir();
  static seen_t s;
  memset(&s, 0, sizeof s);
  mw_rlog_opts_t o = opts(&s, 1024, MW_RLOG_FSYNC_NEVER);
  mw_rlog_t *l;
  CHECK_INT(mw_rlog_open(dir, &o, &l, err, sizeof err), 0);
  for (uint32_t i = 0; i < 64; i++) /* 16 a segment: segments 1-4, ts = segment */
    CHECK_INT(put(l, i * 10, 10, 1 + i / 16, err), 0);
  mw_rlog_cursor_t *c;
  CHECK_INT(mw_rlog_cursor_open(l, "c", &c, err, sizeof err), 0);
  int cps = 0;
  uint64_t dropped;
  /* nothing read: min_cut alone removes nothing */
  mw_rlog_bounds_t b = {.min_cut = 100, .max_cut = INT64_MIN};
  long k = mw_rlog_truncate_plan(l, &b, err, sizeof err);
  CHECK_INT(k, 0);
  /* read everything of segments 1 and 2 */
  mw_rlog_pos_t p = {3, MW_RLOG_SEG_HDR, 0};
  CHECK_INT(mw_rlog_cursor_commit(c, p, err, sizeof err), 0);
  k = mw_rlog_truncate_plan(l, &b, err, sizeof err);
  CHECK_INT(k, 2);
  CHECK_INT(mw_rlog_truncate_cursors(l, (size_t)k, &dropped, err, sizeof err), 0);
  CHECK_INT(dropped, 0);
  CHECK_INT(mw_rlog_truncate_finish(l, (size_t)k, cp_hook, &cps, err, sizeof err), 0);
  CHECK_INT(cps, 1);
  snprintf(path, sizeof path, "%s/checkpoint.00000002/00000000", dir);
  CHECK_INT(fsize(path), 8 + 13);
  snprintf(path, sizeof path, "%s/00000001", dir);
  CHECK_INT(fsize(path), -1);
  /* max_cut: segment 3 (ts 3) goes unread: its 160 values dropped */
  b = (mw_rlog_bounds_t){.min_cut = INT64_MIN, .max_cut = 4};
  k = mw_rlog_truncate_plan(l, &b, err, sizeof err);
  CHECK_INT(k, 1);
  CHECK_INT(mw_rlog_truncate_cursors(l, (size_t)k, &dropped, err, sizeof err), 0);
  CHECK_INT(dropped, 160);
  CHECK_INT(c->items_dropped, 160);
  CHECK_INT(c->committed.seg, 4);
  CHECK_INT(mw_rlog_truncate_finish(l, (size_t)k, cp_hook, &cps, err, sizeof err), 0);
  snprintf(path, sizeof path, "%s/checkpoint.00000002", dir);
  CHECK_INT(fsize(path), -1); /* replaced by checkpoint.00000003 */
  /* by size: more segments, then at most 2 KiB kept */
  for (uint32_t i = 0; i < 200; i++)
    CHECK_INT(put(l, 1000 + i, 1, 10, err), 0);
  size_t nseg;
  mw_rlog_segments(l, &nseg);
  CHECK(nseg >= 4);
  b = (mw_rlog_bounds_t){.min_cut = INT64_MIN, .max_cut = INT64_MIN, .max_bytes = 2048};
  k = mw_rlog_truncate_plan(l, &b, err, sizeof err);
  CHECK(k > 0);
  CHECK_INT(mw_rlog_truncate_cursors(l, (size_t)k, &dropped, err, sizeof err), 0);
  CHECK_INT(mw_rlog_truncate_finish(l, (size_t)k, cp_hook, &cps, err, sizeof err), 0);
  mw_rlog_stats_t st;
  mw_rlog_stats(l, &st);
  CHECK(st.bytes <= 2048);
  CHECK_INT(st.checkpoints, 3);
  CHECK_INT(st.segments_removed, 3 + (uint64_t)k);
  mw_rlog_cursor_close(c);
  mw_rlog_close(l);
  mw_rlog_free(l);
  /* the checkpoint is replayed first, flagged */
  memset(&s, 0, sizeof s);
  CHECK_INT(mw_rlog_open(dir, &o, &l, err, sizeof err), 0);
  CHECK_INT(s.from_cp, 1);
  mw_rlog_close(l);
  mw_rlog_free(l);
  rm_rf(dir);
}

/* fsync policies: ALWAYS syncs each append, INTERVAL on the worker, NEVER
 * only when asked. */
static void test_fsync(void) {
  char err[256], *dir = tmpdir();
  static seen_t s;
  mw_rlog_stats_t st;
  for (int pol = 0; pol < 3; pol++) {
    memset(&s, 0, sizeof s);
    mw_rlog_opts_t o = opts(&s, 1024, pol);
    mw_rlog_t *l;
    CHECK_INT(mw_rlog_open(dir, &o, &l, err, sizeof err), 0);
    mw_rlog_stats(l, &st);
    uint64_t f0 = st.fsyncs;
    for (uint32_t i = 0; i < 10; i++)
      CHECK_INT(put(l, i, 1, i, err), 0);
    mw_rlog_stats(l, &st);
    if (pol == MW_RLOG_FSYNC_ALWAYS)
      CHECK_INT(st.fsyncs - f0, 10);
    else
      CHECK_INT(st.fsyncs - f0, 0);
    if (pol == MW_RLOG_FSYNC_INTERVAL) {
      for (uint32_t i = 0; i < 40; i++) /* finished segments wait for the worker */
        CHECK_INT(put(l, i, 10, i, err), 0);
      CHECK_INT(mw_rlog_sync_start(l, err, sizeof err), 0);
      CHECK_INT(mw_rlog_sync(l, err, sizeof err), 0); /* collects it, then syncs the head */
      mw_rlog_stats(l, &st);
      CHECK(st.fsyncs - f0 >= 3);
    } else {
      CHECK_INT(mw_rlog_sync(l, err, sizeof err), 0);
      mw_rlog_stats(l, &st);
      CHECK(st.fsyncs > f0);
    }
    mw_rlog_close(l);
    mw_rlog_free(l);
  }
  rm_rf(dir);
}

/* A child appends in a loop and reports through a pipe how many values its
 * appends have acknowledged; it is SIGKILLed at a random moment. Every
 * acknowledged value is there after the reopen, in order. */
static void test_sigkill(void) {
  char err[256], *dir = tmpdir();
  static seen_t s;
  srand((unsigned)time(NULL) ^ (unsigned)getpid());
  uint32_t total = 0;
  for (int round = 0; round < 6; round++) {
    memset(&s, 0, sizeof s);
    mw_rlog_opts_t o = opts(&s, 4096, MW_RLOG_FSYNC_NEVER);
    int fds[2];
    CHECK_INT(pipe(fds), 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      mw_rlog_t *cl;
      if (mw_rlog_open(dir, &o, &cl, err, sizeof err) != 0) _exit(2);
      for (uint32_t v = total;; v += 3) {
        if (v > 19000 - 3) pause();
        if (put(cl, v, 3, v, err) != 0) _exit(3);
        uint32_t acked = v + 3;
        if (write(fds[1], &acked, sizeof acked) != sizeof acked) _exit(4);
      }
    }
    close(fds[1]);
    usleep(1000 + (useconds_t)(rand() % 20000));
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status));
    uint32_t v, acked = total;
    while (read(fds[0], &v, sizeof v) == sizeof v)
      acked = v;
    close(fds[0]);
    mw_rlog_t *l;
    CHECK_INT(mw_rlog_open(dir, &o, &l, err, sizeof err), 0);
    CHECK(s.n >= acked);
    for (uint32_t i = 0; i < s.n; i++)
      if (s.values[i] != i) MW_FAIL("round %d: value %u is %u", round, i, s.values[i]);
    total = (uint32_t)s.n;
    mw_rlog_close(l);
    mw_rlog_free(l);
  }
  CHECK(total > 0);
  rm_rf(dir);
}

int main(void) {
  MW_RUN(test_append_replay);
  MW_RUN(test_torn_tail);
  MW_RUN(test_corrupt_middle);
  MW_RUN(test_cursors);
  MW_RUN(test_truncate);
  MW_RUN(test_fsync);
  MW_RUN(test_sigkill);
  return mw_test_summary();
}
