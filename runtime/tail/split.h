/* tail/split.h: the line splitter of the file tailer (loki.source.file). Bytes arrive in
 * chunks of any size; complete lines (ended by \n, a \r before it stripped, as Alloy and
 * promtail do) are handed to a callback, the unfinished end of a chunk is kept in the
 * splitter until its \n arrives. Bounded: a line over max_line bytes is cut to its first
 * max_line bytes (the rest up to its \n is dropped) and counted; the splitter never holds
 * more than max_line + 1 bytes. Plain C, no I/O: fuzzed by tests/fuzz/fuzz_linesplit.c. */
#ifndef MW_TAIL_SPLIT_H
#define MW_TAIL_SPLIT_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
  char *buf;          /* the unfinished line (malloc'd; NULL when none was ever kept) */
  size_t len, cap;    /* bytes kept, capacity */
  size_t max_line;    /* bound of a line (>= 1) */
  int cut;            /* the kept line passed max_line: the rest up to \n is dropped */
  uint64_t truncated; /* lines cut so far */
} mw_linesplit_t;

/* Called for each complete line (without its \n and \r); consumed = bytes of the input
 * consumed so far, including the \n. Returns 0 to go on, -1 to stop (out of memory). */
typedef int (*mw_line_fn)(void *ud, const char *line, size_t len, size_t consumed);

void mw_linesplit_init(mw_linesplit_t *s, size_t max_line);
/* Frees the kept bytes. */
void mw_linesplit_free(mw_linesplit_t *s);
/* Forgets the unfinished line (a truncated or rotated file); keeps the memory. */
void mw_linesplit_reset(mw_linesplit_t *s);
/* Splits data[0..len): fn for each line completed in it. 0, or -1 when fn or an
 * allocation failed (bytes up to the last line handed out are consumed). */
int mw_linesplit_feed(mw_linesplit_t *s, const char *data, size_t len, mw_line_fn fn, void *ud);
/* Hands the unfinished line to fn as a last line (a file that ended: rotated away or
 * compressed); nothing when none. 0 or -1 as fn. */
int mw_linesplit_flush(mw_linesplit_t *s, mw_line_fn fn, void *ud);

#endif
