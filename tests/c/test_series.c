/* Series table and sample batch. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/labels.h"
#include "base/symtab.h"
#include "model/batch.h"
#include "model/series.h"
#include "test.h"

static size_t enc_one(uint8_t *buf, size_t cap, int i) {
  char v[32];
  int n = snprintf(v, sizeof v, "v%d", i);
  mw_label_t ls[] = {{"__name__", "m", 8, 1}, {"i", v, 1, (uint32_t)n}};
  size_t len = 0;
  mw_labels_encode(ls, 2, buf, cap, &len, NULL, 0);
  return len;
}

static void test_intern_lookup_delete(void) {
  mw_series_t *s = mw_series_new();
  CHECK(s);
  uint8_t buf[64];
  uint32_t refs[5000];
  for (int i = 0; i < 5000; i++) {
    size_t len = enc_one(buf, sizeof buf, i);
    int added;
    CHECK_INT(mw_series_add(s, buf, len, mw_labels_hash(buf, len), &refs[i], &added, NULL, 0), 0);
    CHECK_INT(added, 1);
    CHECK_INT(refs[i], i);
  }
  CHECK_INT(mw_series_len(s), 5000);
  for (int i = 0; i < 5000; i++) {
    size_t len = enc_one(buf, sizeof buf, i), got;
    uint32_t r;
    int added;
    CHECK_INT(mw_series_add(s, buf, len, mw_labels_hash(buf, len), &r, &added, NULL, 0), 0);
    CHECK_INT(added, 0);
    CHECK_INT(r, refs[i]);
    const uint8_t *l = mw_series_labels(s, r, &got);
    CHECK(l && got == len && memcmp(l, buf, len) == 0);
    CHECK(mw_series_hash(s, r) == mw_labels_hash(buf, len));
  }
  /* Delete the even ones; the odd ones stay findable under the same refs. */
  for (int i = 0; i < 5000; i += 2)
    mw_series_del(s, refs[i]);
  mw_series_del(s, refs[0]); /* twice: no-op */
  CHECK_INT(mw_series_len(s), 2500);
  CHECK_INT(mw_series_compact(s), 0);
  for (int i = 0; i < 5000; i++) {
    size_t len = enc_one(buf, sizeof buf, i), got;
    uint32_t r = mw_series_get(s, buf, len, mw_labels_hash(buf, len));
    if (i % 2) {
      CHECK_INT(r, refs[i]);
      const uint8_t *l = mw_series_labels(s, r, &got);
      CHECK(l && got == len && memcmp(l, buf, len) == 0);
    } else {
      CHECK_INT(r, MW_SERIES_NONE);
      CHECK(mw_series_labels(s, refs[i], &got) == NULL);
    }
  }
  /* Freed refs are reused. */
  size_t len = enc_one(buf, sizeof buf, 99999);
  uint32_t r;
  CHECK_INT(mw_series_add(s, buf, len, mw_labels_hash(buf, len), &r, NULL, NULL, 0), 0);
  CHECK(r < 5000 && r % 2 == 0);
  size_t lb;
  size_t mem = mw_series_mem(s, &lb);
  CHECK(mem > lb);
  mw_series_free(s);
}

/* Bytes beyond the labels, at sizes just past a power of two too (where a
 * doubling index at a load of at most 1/2 held 32 bytes a series): entries
 * (16 bytes, their array doubling: up to 32) and an index of 8-byte slots at
 * a load of 1/2 to 3/4 (up to 16), plus arena slack. */
static void test_memory_per_series(void) {
  static const int sizes[] = {2000, 2049, 4097, 65537, 100000};
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    mw_series_t *s = mw_series_new();
    uint8_t buf[64];
    const int n = sizes[k];
    for (int i = 0; i < n; i++) {
      size_t len = enc_one(buf, sizeof buf, i);
      uint32_t r;
      CHECK_INT(mw_series_add(s, buf, len, mw_labels_hash(buf, len), &r, NULL, NULL, 0), 0);
    }
    size_t lb, mem = mw_series_mem(s, &lb);
    double per = (double)(mem - lb) / n;
    printf("series table of %d: %.1f bytes/series beyond %zu label bytes\n", n, per, lb / n);
    CHECK(per <= 48 + 20000.0 / n);
    mw_series_free(s);
  }
}

/* Without its index (mw_series_drop_index), a table still finds every
 * label set, deletes, and adds (building the index again): the same label
 * set gets its ref back, never a second entry. */
static void test_drop_index(void) {
  mw_series_t *s = mw_series_new();
  uint8_t buf[64];
  uint32_t refs[3000];
  for (int i = 0; i < 3000; i++) {
    size_t len = enc_one(buf, sizeof buf, i);
    CHECK_INT(mw_series_add(s, buf, len, mw_labels_hash(buf, len), &refs[i], NULL, NULL, 0), 0);
  }
  size_t mem = mw_series_mem(s, NULL);
  mw_series_drop_index(s);
  CHECK(!mw_series_indexed(s));
  CHECK(mw_series_mem(s, NULL) < mem);
  for (int i = 0; i < 3000; i += 7) {
    size_t len = enc_one(buf, sizeof buf, i);
    CHECK_INT(mw_series_get(s, buf, len, mw_labels_hash(buf, len)), refs[i]);
  }
  for (int i = 0; i < 3000; i += 3) /* deleted without an index */
    mw_series_del(s, refs[i]);
  CHECK(!mw_series_indexed(s));
  for (int i = 0; i < 3500; i++) { /* old, deleted and new label sets */
    size_t len = enc_one(buf, sizeof buf, i);
    uint32_t r;
    int added;
    CHECK_INT(mw_series_add(s, buf, len, mw_labels_hash(buf, len), &r, &added, NULL, 0), 0);
    CHECK_INT(added, i >= 3000 || i % 3 == 0);
    if (i < 3000 && i % 3) CHECK_INT(r, refs[i]);
    CHECK(mw_series_indexed(s));
  }
  CHECK_INT(mw_series_len(s), 3500);
  for (int i = 0; i < 3500; i++) {
    size_t len = enc_one(buf, sizeof buf, i), got;
    uint32_t r = mw_series_get(s, buf, len, mw_labels_hash(buf, len));
    const uint8_t *l = mw_series_labels(s, r, &got);
    CHECK(l && got == len && memcmp(l, buf, len) == 0);
  }
  mw_series_free(s);
}

static void test_batch(void) {
  mw_series_t *s = mw_series_new();
  mw_batch_t *b = mw_batch_new(s);
  CHECK(b && mw_batch_series(b) == s);
  for (int i = 0; i < 1000; i++)
    CHECK_INT(mw_batch_add(b, (uint32_t)i, i * 10, i * 0.5), 0);
  CHECK_INT(mw_batch_len(b), 1000);
  CHECK_INT(mw_batch_refs(b)[999], 999);
  CHECK_INT(mw_batch_timestamps(b)[7], 70);
  CHECK_DBL(mw_batch_values(b)[3], 1.5);
  CHECK_INT(mw_ffi_batch_ref(b, 5), 5);
  CHECK_INT(mw_ffi_batch_ts(b, 5), 50);
  CHECK_DBL(mw_ffi_batch_value(b, 5), 2.5);
  CHECK_INT(mw_ffi_batch_ref(b, 5000), UINT32_MAX);
  size_t mem = mw_batch_mem(b);
  mw_batch_reset(b, s);
  CHECK_INT(mw_batch_len(b), 0);
  for (int i = 0; i < 1000; i++)
    CHECK_INT(mw_batch_add(b, 1, 1, 1), 0);
  CHECK_INT(mw_batch_mem(b), mem); /* capacity kept */
  mw_batch_truncate(b, 10);
  CHECK_INT(mw_batch_len(b), 10);
  mw_batch_free(b);
  mw_series_free(s);
}

/* mw_batch_keep: the kept samples in order, each with its exemplars (labels, value),
 * renumbered; the dropped ones' exemplars gone. */
static void test_batch_keep(void) {
  mw_batch_t *b = mw_batch_new(NULL);
  CHECK(b);
  for (int i = 0; i < 6; i++)
    CHECK_INT(mw_batch_add(b, (uint32_t)i, i * 10, i * 0.5), 0);
  const char *lab[] = {"a", "bb", "ccc", "dddd"};
  size_t at[] = {0, 1, 1, 4};
  for (int k = 0; k < 4; k++)
    CHECK_INT(mw_batch_add_exemplar(b, at[k], (const uint8_t *)lab[k], strlen(lab[k]), k, k), 0);
  uint8_t keep[] = {0, 1, 0, 1, 1, 0};
  CHECK_INT(mw_batch_keep(b, keep), 3);
  CHECK_INT(mw_batch_len(b), 3);
  CHECK_INT(mw_batch_refs(b)[0], 1);
  CHECK_INT(mw_batch_refs(b)[2], 4);
  CHECK_INT(mw_batch_timestamps(b)[1], 30);
  CHECK_DBL(mw_batch_values(b)[2], 2.0);
  CHECK_INT(mw_batch_exemplars(b), 3);
  size_t want_idx[] = {0, 0, 2};
  for (int k = 0; k < 3; k++) {
    mw_exemplar_t e;
    mw_batch_exemplar(b, (size_t)k, &e);
    CHECK_INT(e.idx, want_idx[k]);
    CHECK_INT(e.labels_len, strlen(lab[k + 1]));
    CHECK(memcmp(e.labels, lab[k + 1], e.labels_len) == 0);
    CHECK_DBL(e.value, k + 1);
  }
  mw_batch_free(b);
}

static void test_stale_nan(void) {
  double v = mw_batch_stale_nan();
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  CHECK(bits == 0x7ff0000000000002ULL);
  CHECK(isnan(v));
  CHECK(mw_batch_is_stale_value(v));
  CHECK(!mw_batch_is_stale_value(NAN));
  CHECK(!mw_batch_is_stale_value(1.0));
  double w = mw_ffi_batch_stale_nan();
  CHECK(memcmp(&v, &w, sizeof v) == 0);
}

/* What a watcher heard: per call, the ref, whether the bytes are still
 * readable then (their first byte), and the new address. */
typedef struct {
  int n;
  uint32_t ref[16];
  char first[16];
  const uint8_t *now[16];
  mw_series_t *s;
} heard_t;

static void hear(void *ctx, uint32_t ref, const uint8_t *now) {
  heard_t *h = ctx;
  if (h->n == 16) return;
  size_t len;
  const uint8_t *b = ref == MW_SERIES_NONE ? NULL : mw_series_labels(h->s, ref, &len);
  h->ref[h->n] = ref;
  h->first[h->n] = b ? (char)b[0] : 0;
  h->now[h->n++] = now;
}

/* Watchers hear of a deletion and of the table's end while the bytes are
 * still readable, and of each move by compaction with the new address; a
 * borrowing table keeps the lender's address until told otherwise, is not
 * moved by its own compaction, and owns a copy after mw_series_own. */
static void test_watch_and_borrow(void) {
  mw_series_t *a = mw_series_new(), *b = mw_series_new();
  heard_t h = {.s = a};
  CHECK_INT(mw_series_watch(a, hear, &h), 0);
  CHECK_INT(mw_series_watch(a, hear, &h), 0); /* once per ctx */
  uint32_t r[4], br;
  const char *sets[4] = {"__name__\xff"
                         "a\xff",
                         "__name__\xff"
                         "b\xff",
                         "__name__\xff"
                         "c\xff",
                         "__name__\xff"
                         "d\xff"};
  for (int i = 0; i < 4; i++) {
    size_t n = strlen(sets[i]);
    CHECK_INT(mw_series_add(a, (const uint8_t *)sets[i], n,
                            mw_labels_hash((const uint8_t *)sets[i], n), &r[i], NULL, NULL, 0),
              0);
  }
  size_t len, tlen = strlen(sets[3]);
  const uint8_t *d = mw_series_stored(a, r[3], &len), *text = (const uint8_t *)sets[3];
  uint64_t dh = mw_labels_hash(text, tlen);
  CHECK(len < tlen); /* two symbol ids (stored, not text) */
  int added = 0;
  CHECK_INT(mw_series_add_borrowed(b, d, len, dh, &br, &added, NULL, 0), 0);
  CHECK(added && mw_series_borrowed(b, br));
  CHECK(mw_series_stored(b, br, &len) == d); /* not a copy */
  CHECK_INT(mw_series_get(b, text, tlen, dh), br);
  CHECK_INT(mw_series_get_stored(b, d, len, dh), br);
  CHECK_INT(mw_series_hash(b, br), dh);
  mw_series_del(a, r[0]);
  CHECK_INT(h.n, 1);
  CHECK_INT(h.ref[0], r[0]);
  CHECK_INT(h.first[0], '_'); /* still readable when heard */
  CHECK(h.now[0] == NULL);
  mw_series_del(a, r[1]);
  mw_series_del(a, r[2]);
  CHECK_INT(mw_series_compact(a), 0); /* 3 of 4 are garbage: d moves */
  CHECK_INT(h.n, 4);
  CHECK_INT(h.ref[3], r[3]);
  const uint8_t *moved = mw_series_stored(a, r[3], &len);
  CHECK(h.now[3] == moved && moved != d);
  mw_series_rebind(b, br, moved);
  CHECK(mw_series_stored(b, br, &len) == moved);
  CHECK_INT(mw_series_compact(b), 0); /* its borrowed bytes stay where they are */
  CHECK(mw_series_stored(b, br, &len) == moved);
  CHECK_INT(mw_series_own(b, br), 0);
  CHECK(!mw_series_borrowed(b, br) && mw_series_stored(b, br, &len) != moved);
  const uint8_t *t = mw_series_labels(b, br, &len);
  CHECK(len == tlen && memcmp(t, sets[3], len) == 0);
  /* b's own copy holds its symbols: a's series and a itself can go */
  mw_series_unwatch(a, &h);
  mw_series_del(a, r[3]);
  CHECK_INT(h.n, 4); /* no longer watching */
  CHECK_INT(mw_series_watch(a, hear, &h), 0);
  mw_series_free(a);
  CHECK_INT(h.n, 5);
  CHECK_INT(h.ref[4], MW_SERIES_NONE);
  t = mw_series_labels(b, br, &len);
  CHECK(t && len == tlen && memcmp(t, sets[3], len) == 0);
  mw_series_free(b);
}

/* Label sets are stored as symbol ids: the same set has the same stored bytes in
 * two tables, a long value (past the text hash's 512-byte buffer) hashes as its text
 * does, each symbol is held once whatever the number of series, and every reference
 * goes back when the series and the tables go (no symbol left behind). */
static void test_symbols(void) {
  size_t before = mw_syms_count();
  mw_series_t *a = mw_series_new(), *b = mw_series_new();
  char longv[1500];
  memset(longv, 'x', sizeof longv);
  for (size_t i = 0; i < sizeof longv; i++)
    longv[i] = (char)('a' + i % 26);
  uint8_t buf[2048];
  uint32_t refs[1000]; /* a's: the odd i share one series */
  for (int i = 0; i < 1000; i++) {
    mw_label_t ls[] = {
        {"__name__", "m", 8, 1},
        {"job", "j", 3, 1},
        {"long", longv, 4, (uint32_t)(i % 2 ? sizeof longv : (size_t)(600 + i / 2))}};
    size_t len = 0, slen, slen2;
    CHECK_INT(mw_labels_encode(ls, 3, buf, sizeof buf, &len, NULL, 0), 0);
    uint64_t h = mw_labels_hash(buf, len);
    uint32_t ra, rb;
    CHECK_INT(mw_series_add(a, buf, len, h, &ra, NULL, NULL, 0), 0);
    refs[i] = ra;
    CHECK_INT(mw_series_add(b, buf, len, h, &rb, NULL, NULL, 0), 0);
    const uint8_t *sa = mw_series_stored(a, ra, &slen), *sb = mw_series_stored(b, rb, &slen2);
    CHECK(sa != sb && slen == slen2 && memcmp(sa, sb, slen) == 0);
    CHECK(mw_series_hash(a, ra) == h);
    CHECK_INT(mw_series_get_stored(b, sa, slen, h), rb);
    size_t tlen;
    const uint8_t *t = mw_series_labels(a, ra, &tlen);
    CHECK(tlen == len && memcmp(t, buf, len) == 0);
  }
  /* __name__ m job j long, and 501 distinct long values */
  CHECK_INT(mw_syms_count() - before, 5 + 501);
  CHECK_INT(mw_series_len(a), 501);
  for (int i = 0; i < 1000; i += 2)
    mw_series_del(a, refs[i]);
  CHECK_INT(mw_syms_count() - before, 5 + 501); /* b still holds them */
  mw_series_free(b);
  CHECK_INT(mw_syms_count() - before, 5 + 1);
  mw_series_free(a);
  CHECK_INT(mw_syms_count(), before);
}

int main(void) {
  MW_RUN(test_intern_lookup_delete);
  MW_RUN(test_memory_per_series);
  MW_RUN(test_drop_index);
  MW_RUN(test_batch);
  MW_RUN(test_batch_keep);
  MW_RUN(test_stale_nan);
  MW_RUN(test_watch_and_borrow);
  MW_RUN(test_symbols);
  return mw_test_summary();
}
