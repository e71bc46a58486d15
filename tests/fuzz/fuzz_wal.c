/* Fuzz target: WAL open/repair/read over an arbitrary segment file. The
 * first byte picks the mode: bit 0 set, the rest is a list of records
 * (type u8, length u32, payload) whose CRCs the harness fills in, so the
 * payload decoders get explored; clear, the rest is the segment file as it
 * is. Bit 1 puts the file in a checkpoint instead, bit 2 writes the last 24
 * bytes as a cursor file too. Then: open (repair), read everything through
 * a reader (each chunk must decode to a valid request), append, truncate,
 * reopen: the second open must find nothing left to repair. Record types 3
 * (exemplars) and 4 (native histograms) are in the seed corpus; the reader sends
 * histograms (send_native_histograms). */
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "base/labels.h"
#include "model/batch.h"
#include "model/series.h"
#include "remote.pb-c.h"
#include "remote/encode.h"
#include "remote/wal_reader.h"
#include "storage/wal.h"

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

/* Bytewise order of two label names, a prefix first. */
static int pb_cmp(ProtobufCBinaryData a, ProtobufCBinaryData b) {
  size_t m = a.len < b.len ? a.len : b.len;
  int c = m ? memcmp(a.data, b.data, m) : 0;
  return c ? c : (a.len > b.len) - (a.len < b.len);
}

/* Sorted, unique, non-empty: what every request must carry. */
static void check_request(const uint8_t *buf, size_t len) {
  char err[256];
  Prometheus__WriteRequest *req;
  if (mw_rwenc_decode(buf, len, &req, err, sizeof err) != 0) abort();
  for (size_t i = 0; i < req->n_timeseries; i++) {
    const Prometheus__TimeSeries *t = req->timeseries[i];
    if (!t->n_labels || (!t->n_samples && !t->n_exemplars && !t->n_histograms)) abort();
    for (size_t j = 1; j < t->n_histograms; j++)
      if (t->histograms[j]->timestamp < t->histograms[j - 1]->timestamp) abort();
    for (size_t j = 0; j < t->n_labels; j++) {
      if (!t->labels[j]->name.len || !t->labels[j]->value.len) abort();
      if (j && pb_cmp(t->labels[j - 1]->name, t->labels[j]->name) >= 0) abort();
    }
    for (size_t j = 1; j < t->n_samples; j++)
      if (t->samples[j]->timestamp < t->samples[j - 1]->timestamp) abort();
    for (size_t j = 0; j < t->n_exemplars; j++)
      for (size_t k = 0; k < t->exemplars[j]->n_labels; k++)
        if (!t->exemplars[j]->labels[k]->name.len || !t->exemplars[j]->labels[k]->value.len)
          abort();
  }
  mw_rwenc_decode_free(req);
}

static uint64_t drain(mw_wal_reader_t *r) {
  char err[256];
  uint64_t n = 0;
  for (int i = 0; i < 10000; i++) {
    const uint8_t *buf;
    size_t len;
    mw_wal_chunk_t c;
    uint32_t max = 1 + (uint32_t)(i % 3) * 50;
    if (i % 4 == 3) { /* a sharded span now and then: the same samples, cut by series */
      const uint8_t *bufs[3];
      size_t lens[3];
      mw_wal_chunk_t ch[3];
      int rc = mw_wal_reader_next_shards(r, 3, max, INT64_MIN, bufs, lens, ch, err, sizeof err);
      if (rc < 0) abort();
      if (rc == 0) return n;
      for (int k = 0; k < 3; k++) {
        if (ch[k].samples > max || ch[k].seq != ch[0].seq) abort();
        if (lens[k]) check_request(bufs[k], lens[k]);
        n += ch[k].samples;
      }
      if (mw_wal_reader_commit(r, ch[0].seq, err, sizeof err) != 0) abort();
      continue;
    }
    int rc = mw_wal_reader_next(r, max, &buf, &len, &c, err, sizeof err);
    if (rc < 0) abort();
    if (rc == 0) return n;
    check_request(buf, len);
    n += c.samples;
    if (i % 2 == 0 && mw_wal_reader_commit(r, c.seq, err, sizeof err) != 0) abort();
  }
  abort(); /* a reader must come to an end */
}

static void cleanup(void) { nftw(root, rm_one, 8, FTW_DEPTH | FTW_PHYS); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256], path[256];
  if (size == 0) return 0;
  if (!root[0]) {
    /* tmpfs when there is one: fsync is free there, so runs are faster */
    struct stat sb;
    strcpy(root,
           stat("/dev/shm", &sb) == 0 ? "/dev/shm/mw_fuzz_wal.XXXXXX" : "/tmp/mw_fuzz_wal.XXXXXX");
    if (!mkdtemp(root)) abort();
    atexit(cleanup);
  }
  char dir[96];
  snprintf(dir, sizeof dir, "%s/c", root);
  nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
  snprintf(path, sizeof path, "%s/wal", dir);
  mkdir(dir, 0750);
  mkdir(path, 0750);
  uint8_t mode = data[0];
  data++;
  size--;
  uint8_t *file = malloc(size + 8 + 16);
  size_t n = 0;
  if (mode & 1) {
    memcpy(file, "MWWAL001", 8);
    n = 8;
    size_t i = 0;
    while (i + 5 <= size) {
      uint8_t type = data[i];
      uint32_t len = (uint32_t)data[i + 1] | (uint32_t)data[i + 2] << 8;
      i += 5;
      if (len > size - i) len = (uint32_t)(size - i);
      uint8_t *h = file + n;
      h[0] = type;
      for (int k = 0; k < 4; k++)
        h[1 + k] = (uint8_t)(len >> (8 * k));
      memcpy(h + 9, data + i, len);
      uint32_t crc = mw_crc32c(mw_crc32c(0, h, 5), h + 9, len);
      for (int k = 0; k < 4; k++)
        h[5 + k] = (uint8_t)(crc >> (8 * k));
      n += 9 + len;
      i += len;
      file = realloc(file, n + (size - i) + 16);
    }
  } else {
    memcpy(file, data, size);
    n = size;
  }
  if (mode & 2) {
    snprintf(path, sizeof path, "%s/wal/checkpoint.00000003", dir);
    mkdir(path, 0750);
    snprintf(path, sizeof path, "%s/wal/checkpoint.00000003/00000000", dir);
    write_file(path, file, n);
    snprintf(path, sizeof path, "%s/wal/00000004", dir);
    write_file(path, (const uint8_t *)"MWWAL001", 8);
  } else {
    snprintf(path, sizeof path, "%s/wal/00000001", dir);
    write_file(path, file, n);
  }
  if (mode & 4) {
    snprintf(path, sizeof path, "%s/cursor.ep", dir);
    write_file(path, data + (size > 24 ? size - 24 : 0), size > 24 ? 24 : size);
  }
  free(file);

  mw_wal_opts_t o = {.segment_size = 4096};
  mw_wal_t *w;
  if (mw_wal_open(dir, &o, &w, err, sizeof err) != 0) abort(); /* corruption never fails */
  mw_wal_reader_t *r;
  if (mw_wal_reader_open(w, "ep", NULL, 0, &r, err, sizeof err) != 0) abort();
  mw_wal_reader_set_histograms(r, 1);
  drain(r);
  /* The WAL still takes appends after a repair, and a reader sees them. */
  mw_series_t *s = mw_series_new();
  const uint8_t enc[] = "__name__\xffup\xff";
  uint32_t ref;
  mw_series_add(s, enc, sizeof enc - 1, mw_labels_hash(enc, sizeof enc - 1), &ref, NULL, err,
                sizeof err);
  mw_batch_t *b = mw_batch_new(s);
  mw_batch_add(b, ref, 42, 1.0);
  mw_batch_add_exemplar(b, 0,
                        (const uint8_t *)"trace_id\xff"
                                         "abc\xff",
                        13, 41, 0.5);
  /* and native histograms: an integer one and a stale marker */
  const mw_hspan_t sp[] = {{0, 2}};
  const int64_t d[] = {1, 0};
  mw_histogram_t h = {.count = 3,
                      .zero_count = 1,
                      .sum = 2.5,
                      .n_pos_spans = 1,
                      .pos_spans = sp,
                      .n_pos = 2,
                      .pos_deltas = d};
  if (mw_batch_add_histogram(b, ref, 43, &h, err, sizeof err) != 0 ||
      mw_batch_add_histogram_stale(b, ref, 44, 0) != 0)
    abort();
  if (mw_wal_append_batch(w, b, err, sizeof err) != 0) abort();
  mw_wal_reader_rewind(r);
  drain(r);
  if (mw_wal_truncate(w, 1000, 0, 500, err, sizeof err) != 0) abort();
  mw_wal_reader_close(r);
  mw_wal_close(w);
  /* Everything was repaired the first time. */
  if (mw_wal_open(dir, &o, &w, err, sizeof err) != 0) abort();
  mw_wal_stats_t st;
  mw_wal_stats(w, &st);
  if (st.corruptions != 0) abort();
  mw_wal_close(w);
  mw_batch_free(b);
  mw_series_free(s);
  return 0;
}
