/* Fuzz target: the line splitter of the file tailer (runtime/tail/split.c).
 *
 * Input: byte 0 sets max_line (1..64), byte 1 seeds how the rest is cut into chunks
 * (as read(2) would hand them out), the rest is the file's content. Properties:
 * - the lines handed out are exactly the complete lines of the content (ended by \n),
 *   each without its \n and one \r before it, cut to max_line bytes, in order, whatever
 *   the chunking; the cut ones are counted;
 * - `consumed` is the offset just past each line's \n within its chunk;
 * - the splitter never holds more than max_line + 1 bytes; flush hands out the unfinished
 *   last line (cut the same way) and nothing when the content ends with \n. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tail/split.h"

#define FAIL(...)                                                                                  \
  do {                                                                                             \
    fprintf(stderr, "fuzz_linesplit: " __VA_ARGS__);                                               \
    fputc('\n', stderr);                                                                           \
    abort();                                                                                       \
  } while (0)

typedef struct {
  const uint8_t *want; /* the content */
  size_t wlen, at;     /* where the next expected line starts */
  size_t max_line;
  uint64_t cut;
  const uint8_t *chunk;
  size_t chunk_len;
} check_t;

/* The next expected line from c->at: its bytes and length (\r stripped, cut). */
static int next_line(check_t *c, const uint8_t **p, size_t *len, int *complete) {
  if (c->at >= c->wlen) return 0;
  const uint8_t *s = c->want + c->at;
  const uint8_t *nl = memchr(s, '\n', c->wlen - c->at);
  size_t l = nl ? (size_t)(nl - s) : c->wlen - c->at;
  c->at += l + (nl ? 1 : 0);
  *complete = nl != NULL;
  if (l > 0 && s[l - 1] == '\r') l--;
  if (l > c->max_line) {
    l = c->max_line;
    c->cut++;
  }
  *p = s;
  *len = l;
  return 1;
}

static int on_line(void *ud, const char *line, size_t len, size_t consumed) {
  check_t *c = ud;
  const uint8_t *p;
  size_t l;
  int complete;
  if (!next_line(c, &p, &l, &complete)) FAIL("a line too many");
  if (consumed) {
    if (!complete) FAIL("a line without its newline handed out");
    if (consumed > c->chunk_len || c->chunk[consumed - 1] != '\n')
      FAIL("consumed %zu is not past a newline", consumed);
  }
  if (l != len || memcmp(p, line, len) != 0) FAIL("line differs (%zu bytes, expected %zu)", len, l);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  size_t max_line = (size_t)(data[0] % 64) + 1;
  uint32_t seed = data[1];
  data += 2;
  size -= 2;
  mw_linesplit_t s;
  mw_linesplit_init(&s, max_line);
  check_t c = {.want = data, .wlen = size, .max_line = max_line};
  size_t off = 0;
  while (off < size) {
    seed = seed * 1103515245u + 12345u;
    size_t n = 1 + (seed >> 16) % 97;
    if (n > size - off) n = size - off;
    c.chunk = data + off;
    c.chunk_len = n;
    if (mw_linesplit_feed(&s, (const char *)data + off, n, on_line, &c) != 0) FAIL("feed failed");
    if (s.len > max_line + 1 || s.cap > max_line + 1)
      FAIL("holds %zu bytes (cap %zu)", s.len, s.cap);
    off += n;
  }
  int ends_nl = size > 0 && data[size - 1] == '\n';
  c.chunk_len = 0;
  if (mw_linesplit_flush(&s, on_line, &c) != 0) FAIL("flush failed");
  if (c.at != c.wlen) FAIL("lines missing: stopped at %zu of %zu", c.at, c.wlen);
  if (ends_nl && s.len) FAIL("bytes kept after a final newline");
  if (s.truncated != c.cut)
    FAIL("counted %llu cut lines, expected %llu", (unsigned long long)s.truncated,
         (unsigned long long)c.cut);
  mw_linesplit_free(&s);
  return 0;
}
