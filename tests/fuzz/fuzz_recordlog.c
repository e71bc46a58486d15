/* Fuzz target: the record log's open/repair/read over an arbitrary segment
 * file, knowing nothing of what records mean. The first byte picks the
 * mode: bit 0 set, the rest is a list of records (type u8, length u16,
 * 2 bytes ignored, payload) whose CRCs the harness fills in; clear, the
 * rest is the segment file as it is. Bit 1 puts the file in a checkpoint
 * instead, bit 2 writes the last 24 bytes as a cursor file too, bit 3 has
 * the toy layer reject records whose first payload byte is 0xee. Then:
 * open (repair), read every record through a cursor, commit, append,
 * truncate, reopen: the second open must find nothing left to repair. */
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "storage/recordlog.h"

static char root[64];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(p);
}

static void write_file(const char *path, const uint8_t *p, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
  if (fd < 0) abort();
  if (n && write(fd, p, n) != (ssize_t)n) abort();
  close(fd);
}

static void cleanup(void) { nftw(root, rm_one, 8, FTW_DEPTH | FTW_PHYS); }

/* Types 1 (counted: u32 count first) and 2; counted records with a count
 * over their length and, in mode 8, records starting 0xee are malformed. */
static int replay(void *ctx, const mw_rlog_rec_t *rec, mw_rlog_seg_t *seg, char *err,
                  size_t errlen) {
  (void)err;
  (void)errlen;
  int strict = *(int *)ctx;
  if (strict && rec->len && rec->p[0] == 0xee) return 1;
  if (rec->type == 1) {
    if (rec->len < 4) return 1;
    uint32_t c = (uint32_t)rec->p[0] | (uint32_t)rec->p[1] << 8 | (uint32_t)rec->p[2] << 16 |
                 (uint32_t)rec->p[3] << 24;
    if (c > rec->len) return 1;
    if (!rec->checkpoint) {
      seg->items += c;
      seg->min_ts = seg->max_ts = 5;
    }
  }
  return 0;
}

static void drain(mw_rlog_cursor_t *c) {
  char err[256];
  mw_rlog_pos_t pos = c->read;
  mw_rlog_rec_t rec;
  for (int i = 0; i < 100000; i++) {
    if (!mw_rlog_seek(c->log, &pos)) {
      c->read = pos;
      return;
    }
    int rc = mw_rlog_read(c, &pos, &rec, err, sizeof err);
    if (rc < 0) abort();
    if (rc == 0) {
      mw_rlog_skip_corrupt(c->log, &pos);
      continue;
    }
    pos.off += MW_RLOG_REC_HDR + rec.len;
    pos.idx = 0;
    if (i % 3 == 0 && mw_rlog_cursor_commit(c, pos, err, sizeof err) != 0) abort();
  }
  abort(); /* reading must come to an end */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256], path[256];
  if (size == 0) return 0;
  if (!root[0]) {
    struct stat sb;
    strcpy(root, stat("/dev/shm", &sb) == 0 ? "/dev/shm/mw_fuzz_rlog.XXXXXX"
                                            : "/tmp/mw_fuzz_rlog.XXXXXX");
    if (!mkdtemp(root)) abort();
    atexit(cleanup);
  }
  char dir[96];
  snprintf(dir, sizeof dir, "%s/l", root);
  nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
  mkdir(dir, 0750);
  uint8_t mode = data[0];
  data++;
  size--;
  uint8_t *file = malloc(size + 8 + 16);
  size_t n = 0;
  if (mode & 1) {
    memcpy(file, "MWFUZZ01", 8);
    n = 8;
    size_t i = 0;
    while (i + 5 <= size) {
      uint8_t type = data[i];
      uint32_t len = (uint32_t)data[i + 1] | (uint32_t)data[i + 2] << 8;
      i += 5;
      if (len > size - i) len = (uint32_t)(size - i);
      memcpy(file + n + MW_RLOG_REC_HDR, data + i, len);
      mw_rlog_frame(file + n, type, len);
      n += MW_RLOG_REC_HDR + len;
      i += len;
      file = realloc(file, n + (size - i) + 16);
    }
  } else {
    memcpy(file, data, size);
    n = size;
  }
  if (mode & 2) {
    snprintf(path, sizeof path, "%s/checkpoint.00000003", dir);
    mkdir(path, 0750);
    snprintf(path, sizeof path, "%s/checkpoint.00000003/00000000", dir);
    write_file(path, file, n);
    snprintf(path, sizeof path, "%s/00000004", dir);
    write_file(path, (const uint8_t *)"MWFUZZ01", 8);
  } else {
    snprintf(path, sizeof path, "%s/00000001", dir);
    write_file(path, file, n);
  }
  if (mode & 4) {
    snprintf(path, sizeof path, "%s/cursor.f", dir);
    write_file(path, data + (size > 24 ? size - 24 : 0), size > 24 ? 24 : size);
  }
  free(file);

  int strict = (mode & 8) != 0;
  mw_rlog_opts_t o = {.magic = "MWFUZZ01",
                      .segment_size = 4096,
                      .types = 1u << 1 | 1u << 2,
                      .counted = 1u << 1,
                      .replay = replay,
                      .ctx = &strict};
  mw_rlog_t *l;
  if (mw_rlog_open(dir, &o, &l, err, sizeof err) != 0) abort(); /* corruption never fails */
  mw_rlog_cursor_t *c;
  if (mw_rlog_cursor_open(l, "f", &c, err, sizeof err) != 0) abort();
  drain(c);
  /* It still takes appends after a repair, and a cursor reads them. */
  uint8_t rec[MW_RLOG_REC_HDR + 8] = {0};
  rec[MW_RLOG_REC_HDR] = 1;
  mw_rlog_frame(rec, 1, 8);
  struct iovec iov = {rec, sizeof rec};
  if (mw_rlog_append(l, &iov, 1, 1, 7, 7, NULL, err, sizeof err) != 0) abort();
  drain(c);
  mw_rlog_bounds_t b = {.min_cut = 10, .max_cut = 6, .max_bytes = 64};
  long k = mw_rlog_truncate_plan(l, &b, err, sizeof err);
  uint64_t dropped;
  if (k < 0 || mw_rlog_truncate_cursors(l, (size_t)k, &dropped, err, sizeof err) != 0 ||
      mw_rlog_truncate_finish(l, (size_t)k, NULL, NULL, err, sizeof err) != 0)
    abort();
  mw_rlog_cursor_close(c);
  mw_rlog_close(l);
  mw_rlog_free(l);
  /* Everything was repaired the first time. */
  if (mw_rlog_open(dir, &o, &l, err, sizeof err) != 0) abort();
  mw_rlog_stats_t st;
  mw_rlog_stats(l, &st);
  if (st.corruptions != 0) abort();
  mw_rlog_close(l);
  mw_rlog_free(l);
  return 0;
}
