/* test_arena.c: the chunked bump allocator behind series tables and scrape
 * caches. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "test.h"

/* A table of a few label sets (a scrape's 5 report series) costs a few
 * hundred bytes, not a 64 KiB chunk: 50 targets used to hold 6.5 MiB in
 * them. */
static void test_small_arena_stays_small(void) {
  mw_arena_t a;
  mw_arena_init(&a);
  char item[40];
  for (int i = 0; i < 5; i++) {
    memset(item, 'a' + i, sizeof item);
    CHECK(mw_arena_dup(&a, item, sizeof item) != NULL);
  }
  CHECK_INT(a.used, 5 * sizeof item);
  CHECK(a.reserved < 1024);
  mw_arena_free(&a);
  CHECK_INT(a.reserved, 0);
}

/* A big arena: chunks grow to 16 KiB, so little is reserved beyond what is
 * used, and every item keeps its address and bytes. */
static void test_big_arena(void) {
  enum { N = 100000, SZ = 100 };
  mw_arena_t a;
  mw_arena_init(&a);
  uint8_t **ptrs = malloc(N * sizeof *ptrs), item[SZ];
  for (int i = 0; i < N; i++) {
    memset(item, i & 0xff, SZ);
    memcpy(item, &i, sizeof i);
    ptrs[i] = mw_arena_dup(&a, item, SZ);
    CHECK(ptrs[i] != NULL);
  }
  CHECK_INT(a.used, (size_t)N * SZ);
  CHECK(a.reserved < a.used + a.used / 10);
  for (int i = 0; i < N; i++) {
    int j;
    memcpy(&j, ptrs[i], sizeof j);
    CHECK_INT(j, i);
    CHECK_INT(ptrs[i][SZ - 1], i & 0xff);
  }
  mw_arena_free(&a);
  free(ptrs);
}

/* The label bytes of a scrape target's series table (100-500 KB): what the
 * arena reserves beyond them is at most one chunk (16 KiB) and its headers,
 * whatever the size: the last chunk is the only one partly empty. */
static void test_arena_slack(void) {
  enum { SZ = 116 };
  uint8_t item[SZ] = {0};
  for (size_t total = 100000; total <= 500000; total += 7919) {
    mw_arena_t a;
    mw_arena_init(&a);
    for (size_t n = 0; n < total; n += SZ)
      CHECK(mw_arena_dup(&a, item, SZ) != NULL);
    CHECK(a.reserved - a.used <= 16384 + 64 * 32);
    mw_arena_free(&a);
  }
}

/* An item over a quarter of the largest chunk that does not fit the current
 * chunk gets its own, and the current chunk stays open for the next small
 * items. */
static void test_big_item_own_chunk(void) {
  mw_arena_t a;
  mw_arena_init(&a);
  char small[16] = "0123456789abcde", *big = calloc(1, 40000);
  uint8_t *p1 = mw_arena_dup(&a, small, sizeof small);
  uint8_t *pb = mw_arena_dup(&a, big, 40000);
  uint8_t *p2 = mw_arena_dup(&a, small, sizeof small);
  CHECK(p1 && pb && p2);
  CHECK(p2 == p1 + sizeof small);
  CHECK_INT(a.used, 40000 + 2 * sizeof small);
  CHECK(memcmp(p1, small, sizeof small) == 0 && memcmp(p2, small, sizeof small) == 0);
  mw_arena_release(&a, sizeof small);
  CHECK_INT(a.garbage, sizeof small);
  free(big);
  mw_arena_free(&a);
}

/* Aligned allocations for arrays of structs (relabel's compiled programs),
 * and a scratch arena reset per operation: after a round that needed several
 * chunks, the same round fits in the one chunk the reset kept. */
static void test_alloc_and_reset(void) {
  mw_arena_t a;
  mw_arena_init(&a);
  CHECK(mw_arena_dup(&a, "x", 1) != NULL);
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 200; i++) {
      uint64_t *v = mw_arena_alloc(&a, 3 * sizeof *v);
      CHECK(v != NULL && ((uintptr_t)v & 7) == 0);
      v[0] = v[1] = v[2] = (uint64_t)i;
      CHECK(mw_arena_dup(&a, "abc", 3) != NULL); /* unaligned bytes in between */
    }
    uint8_t *big = mw_arena_alloc(&a, 100000);
    CHECK(big != NULL && ((uintptr_t)big & 7) == 0);
    memset(big, 1, 100000);
    size_t reserved = a.reserved;
    mw_arena_reset(&a);
    CHECK_INT(a.used, 0);
    if (round > 0) CHECK(a.reserved <= reserved); /* nothing more after the first round */
    CHECK(a.head != NULL && a.head->next == NULL);
  }
  mw_arena_free(&a);
  CHECK_INT(a.reserved, 0);
}

int main(void) {
  MW_RUN(test_small_arena_stays_small);
  MW_RUN(test_big_arena);
  MW_RUN(test_arena_slack);
  MW_RUN(test_big_item_own_chunk);
  MW_RUN(test_alloc_and_reset);
  return mw_test_summary();
}
