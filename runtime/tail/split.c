/* tail/split.c: the line splitter (split.h). */
#include "tail/split.h"

#include <stdlib.h>
#include <string.h>

void mw_linesplit_init(mw_linesplit_t *s, size_t max_line) {
  memset(s, 0, sizeof *s);
  s->max_line = max_line ? max_line : 1;
}

void mw_linesplit_free(mw_linesplit_t *s) {
  free(s->buf);
  s->buf = NULL;
  s->len = s->cap = 0;
  s->cut = 0;
}

void mw_linesplit_reset(mw_linesplit_t *s) {
  s->len = 0;
  s->cut = 0;
}

/* Appends p[0..n) to the kept line, up to max_line bytes; past it the line is cut. */
static int keep(mw_linesplit_t *s, const char *p, size_t n) {
  if (s->cut) return 0;
  /* max_line + 1: room for a \r that a line of max_line bytes may still end with */
  size_t room = s->max_line + 1 - s->len;
  if (n > room) {
    n = room;
    s->cut = 1;
  }
  if (s->len + n > s->cap) {
    size_t c = s->cap ? s->cap : 256;
    while (c < s->len + n)
      c *= 2;
    if (c > s->max_line + 1) c = s->max_line + 1;
    char *q = realloc(s->buf, c);
    if (!q) return -1;
    s->buf = q;
    s->cap = c;
  }
  memcpy(s->buf + s->len, p, n);
  s->len += n;
  return 0;
}

/* A line without its \r; cut to max_line (counted). */
static int emit(mw_linesplit_t *s, const char *line, size_t len, size_t consumed, int was_cut,
                mw_line_fn fn, void *ud) {
  if (len > 0 && line[len - 1] == '\r' && !was_cut) len--;
  if (len > s->max_line) {
    len = s->max_line;
    was_cut = 1;
  }
  if (was_cut) s->truncated++;
  return fn(ud, line, len, consumed);
}

int mw_linesplit_feed(mw_linesplit_t *s, const char *data, size_t len, mw_line_fn fn, void *ud) {
  size_t i = 0;
  while (i < len) {
    const char *nl = memchr(data + i, '\n', len - i);
    if (!nl) return keep(s, data + i, len - i);
    size_t n = (size_t)(nl - (data + i)), consumed = (size_t)(nl - data) + 1;
    if (s->len || s->cut) {
      /* the end of a kept line (a \r\n split across chunks is stripped the same) */
      if (keep(s, data + i, n) != 0) return -1;
      int was_cut = s->cut;
      size_t l = s->len; /* emit strips the \r (once: a \r\r\n line keeps one) */
      s->len = 0;
      s->cut = 0;
      if (emit(s, s->buf, l, consumed, was_cut, fn, ud) != 0) return -1;
    } else if (emit(s, data + i, n, consumed, 0, fn, ud) != 0) {
      return -1;
    }
    i = consumed;
  }
  return 0;
}

int mw_linesplit_flush(mw_linesplit_t *s, mw_line_fn fn, void *ud) {
  if (!s->len && !s->cut) return 0;
  int was_cut = s->cut;
  size_t l = s->len;
  s->len = 0;
  s->cut = 0;
  return emit(s, s->buf ? s->buf : "", l, 0, was_cut, fn, ud);
}
