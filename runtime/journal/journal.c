/* journal/journal.c: the journal reader (see journal/journal.h). */
#include "journal/journal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-journal.h>
#include <time.h>

#include "base/err.h"
#include "base/grow.h"
#include "base/labels.h"
#include "model/logbatch.h"
#include "relabel/relabel.h"

/* One field of the current entry: name (lowercased, with the __journal_ prefix) and value
 * as offsets into buf; raw name for the JSON line. */
typedef struct {
  size_t name_off, name_len; /* label name in buf */
  size_t raw_off, raw_len;   /* FIELD as the journal has it, in buf */
  size_t val_off, val_len;   /* value in buf */
  int label;                 /* 1 when the value may be a label value (UTF-8, no 0xFF) */
} mw_jfield_t;

struct mw_journal {
  sd_journal *j;
  int fd;
  int pending; /* the journal is positioned at an entry not read yet */
  const mw_relabel_program_t *program;
  mw_relabel_scratch_t *scratch;
  uint8_t *consts; /* constant labels: encoded (sorted) */
  size_t consts_len, consts_cap;
  int json;
  char *cursor; /* of the last entry read (sd_journal_get_cursor), or NULL */
  char *buf;    /* the fields of the current entry */
  size_t buf_len, buf_cap;
  mw_jfield_t *fields;
  size_t nfields, fields_cap;
  mw_label_t *ls;
  size_t ls_cap;
  uint8_t *enc;
  size_t enc_cap;
  char *line; /* the JSON line */
  size_t line_len, line_cap;
  size_t *order;
  size_t order_cap;
};

static const char *const mw_priorities[] = {"emerg",   "alert",  "crit", "error",
                                            "warning", "notice", "info", "debug"};

const char *mw_journal_priority_keyword(const char *v, size_t n, size_t *len) {
  if (n == 1 && v[0] >= '0' && v[0] <= '7') {
    const char *k = mw_priorities[v[0] - '0'];
    *len = strlen(k);
    return k;
  }
  *len = n;
  return v;
}

static int mw_put(mw_journal_t *j, const void *p, size_t n, size_t *off) {
  if (mw_grow((void **)&j->buf, &j->buf_cap, j->buf_len + n + 1, 1)) return -1;
  if (n) memcpy(j->buf + j->buf_len, p, n);
  *off = j->buf_len;
  j->buf_len += n;
  return 0;
}

static void mw_jerr(char *err, size_t errlen, const char *what, int r) {
  mw_seterr(err, errlen, "%s: %s", what, strerror(r < 0 ? -r : r));
}

void mw_ffi_journal_close(mw_journal_t *j) {
  if (!j) return;
  if (j->j) sd_journal_close(j->j);
  mw_relabel_scratch_free(j->scratch);
  free(j->consts);
  free(j->cursor);
  free(j->buf);
  free(j->fields);
  free(j->ls);
  free(j->enc);
  free(j->line);
  free(j->order);
  free(j);
}

mw_journal_t *mw_ffi_journal_open(const char *path, const char *matches, size_t matches_len,
                                  char *err, size_t errlen) {
  mw_journal_t *j = calloc(1, sizeof *j);
  if (!j || !(j->scratch = mw_relabel_scratch_new())) {
    mw_seterr(err, errlen, "out of memory");
    mw_ffi_journal_close(j);
    return NULL;
  }
  int r = path && *path ? sd_journal_open_directory(&j->j, path, 0)
                        : sd_journal_open(&j->j, SD_JOURNAL_LOCAL_ONLY);
  if (r < 0) {
    j->j = NULL;
    mw_seterr(err, errlen, "opening the journal%s%s: %s", path && *path ? " in " : "",
              path && *path ? path : "", strerror(-r));
    goto fail;
  }
  /* matches: "FIELD=value" strings, each NUL-terminated; fields ANDed, values of one field
   * ORed (sd_journal_add_match's rule, as Alloy's) */
  for (size_t off = 0; off < matches_len;) {
    const char *m = matches + off;
    size_t n = strnlen(m, matches_len - off);
    r = sd_journal_add_match(j->j, m, n);
    if (r < 0) {
      mw_seterr(err, errlen, "matches: %.*s: %s", (int)(n > 200 ? 200 : n), m, strerror(-r));
      goto fail;
    }
    off += n + 1;
  }
  j->fd = sd_journal_get_fd(j->j);
  if (j->fd < 0) {
    mw_jerr(err, errlen, "watching the journal", j->fd);
    goto fail;
  }
  return j;
fail:
  mw_ffi_journal_close(j);
  return NULL;
}

int mw_ffi_journal_fd(const mw_journal_t *j) { return j->fd; }

int mw_ffi_journal_process(mw_journal_t *j) {
  int r = sd_journal_process(j->j);
  return r < 0 ? -1 : r;
}

static uint64_t mw_now_usec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int mw_seek_age(mw_journal_t *j, uint64_t max_age_usec, char *err, size_t errlen) {
  uint64_t now = mw_now_usec();
  int r = sd_journal_seek_realtime_usec(j->j, now > max_age_usec ? now - max_age_usec : 0);
  if (r < 0) {
    mw_jerr(err, errlen, "seeking the journal", r);
    return -1;
  }
  j->pending = 0;
  return 1;
}

int mw_ffi_journal_seek(mw_journal_t *j, const char *cursor, uint64_t max_age_usec, char *err,
                        size_t errlen) {
  free(j->cursor);
  j->cursor = NULL;
  if (!cursor || !*cursor || sd_journal_seek_cursor(j->j, cursor) < 0)
    return mw_seek_age(j, max_age_usec, err, errlen);
  int r = sd_journal_next(j->j);
  if (r < 0) {
    mw_jerr(err, errlen, "reading the journal", r);
    return -1;
  }
  if (r == 0) { /* nothing at or after the cursor (yet): new entries come after it */
    j->pending = 0;
    return 0;
  }
  uint64_t ts;
  if (sd_journal_get_realtime_usec(j->j, &ts) >= 0 && mw_now_usec() > ts &&
      mw_now_usec() - ts > max_age_usec)
    return mw_seek_age(j, max_age_usec, err, errlen);
  /* at the cursor's entry (sent before): go on after it; else the entry is the first one
   * after where the cursor was (the cursor's entry is gone): read it */
  j->pending = sd_journal_test_cursor(j->j, cursor) <= 0;
  return 0;
}

void mw_ffi_journal_configure(mw_journal_t *j, const mw_ffi_relabel_program_t *p, int json) {
  j->program = (const mw_relabel_program_t *)p;
  j->json = json;
}

int mw_ffi_journal_set_labels(mw_journal_t *j, const char *pairs, size_t len, char *err,
                              size_t errlen) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    n += (unsigned char)pairs[i] == MW_LABELS_SEP;
  if (n % 2) {
    mw_seterr(err, errlen, "malformed label pairs");
    return -1;
  }
  n /= 2;
  if (mw_grow((void **)&j->ls, &j->ls_cap, n ? n : 1, sizeof *j->ls)) goto oom;
  const char *p = pairs, *end = pairs + len;
  for (size_t k = 0; k < n; k++) {
    const char *s1 = memchr(p, MW_LABELS_SEP, (size_t)(end - p));
    const char *s2 = memchr(s1 + 1, MW_LABELS_SEP, (size_t)(end - s1 - 1));
    j->ls[k] = (mw_label_t){.name = p,
                            .name_len = (uint32_t)(s1 - p),
                            .value = s1 + 1,
                            .value_len = (uint32_t)(s2 - s1 - 1)};
    p = s2 + 1;
  }
  if (mw_labels_normalize(j->ls, &n, err, errlen)) return -1;
  size_t need = mw_labels_encoded_size(j->ls, n);
  if (mw_grow((void **)&j->consts, &j->consts_cap, need ? need : 1, 1)) goto oom;
  j->consts_len = 0;
  if (n && mw_labels_encode(j->ls, n, j->consts, j->consts_cap, &j->consts_len, err, errlen))
    return -1;
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

/* Reads the fields of the current entry into j->fields. 0, -1 (err). */
static int mw_read_fields(mw_journal_t *j, const char **msg, size_t *msg_len, char *err,
                          size_t errlen) {
  static const char prefix[] = "__journal_";
  j->buf_len = 0;
  j->nfields = 0;
  const void *data;
  size_t len;
  size_t msg_off = SIZE_MAX, mlen = 0;
  int r;
  sd_journal_restart_data(j->j);
  while ((r = sd_journal_enumerate_data(j->j, &data, &len)) > 0) {
    const char *d = data, *eq = memchr(d, '=', len);
    if (!eq || eq == d) continue;
    size_t fn = (size_t)(eq - d), vn = len - fn - 1;
    if (len > MW_JOURNAL_MAX_FIELD + fn + 1) continue;
    if (j->nfields >= MW_JOURNAL_MAX_FIELDS) break;
    if (mw_grow((void **)&j->fields, &j->fields_cap, j->nfields + 2, sizeof *j->fields)) goto oom;
    mw_jfield_t *f = &j->fields[j->nfields];
    size_t off;
    if (mw_put(j, prefix, sizeof prefix - 1, &f->name_off) || mw_put(j, d, fn, &off)) goto oom;
    for (size_t i = 0; i < fn; i++) {
      char c = j->buf[off + i];
      if (c >= 'A' && c <= 'Z') j->buf[off + i] = (char)(c - 'A' + 'a');
    }
    f->name_len = sizeof prefix - 1 + fn;
    if (mw_put(j, d, fn, &f->raw_off) || mw_put(j, eq + 1, vn, &f->val_off)) goto oom;
    f->raw_len = fn;
    f->val_len = vn;
    f->label = !memchr(eq + 1, 0xff, vn) && mw_labels_valid_utf8(eq + 1, vn) &&
               mw_labels_valid_utf8_name(d, fn);
    j->nfields++;
    if (fn == 7 && memcmp(d, "MESSAGE", 7) == 0) {
      msg_off = f->val_off;
      mlen = vn;
    }
    if (fn == 8 && memcmp(d, "PRIORITY", 8) == 0 && f->label) {
      /* __journal_priority_keyword */
      mw_jfield_t *k = &j->fields[j->nfields];
      static const char kw[] = "__journal_priority_keyword";
      size_t kn;
      const char *kv = mw_journal_priority_keyword(eq + 1, vn, &kn);
      if (mw_put(j, kw, sizeof kw - 1, &k->name_off) || mw_put(j, kv, kn, &k->val_off)) goto oom;
      k->name_len = sizeof kw - 1;
      k->val_len = kn;
      k->raw_off = k->raw_len = 0;
      k->label = 1;
      j->nfields++;
    }
  }
  if (r < 0) {
    mw_jerr(err, errlen, "reading a journal entry", r);
    return -1;
  }
  *msg = msg_off == SIZE_MAX ? NULL : j->buf + msg_off;
  *msg_len = mlen;
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

/* Appends s as a JSON string (Go's encoding/json escaping: <, >, & and U+2028/2029 escaped,
 * invalid UTF-8 as U+FFFD). */
static int mw_json_str(mw_journal_t *j, const char *s, size_t n) {
  if (mw_grow((void **)&j->line, &j->line_cap, j->line_len + n * 6 + 3, 1)) return -1;
  char *o = j->line + j->line_len;
  *o++ = '"';
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
      if (c == '"' || c == '\\') {
        *o++ = '\\';
        *o++ = (char)c;
      } else if (c == '\n') {
        *o++ = '\\', *o++ = 'n';
      } else if (c == '\r') {
        *o++ = '\\', *o++ = 'r';
      } else if (c == '\t') {
        *o++ = '\\', *o++ = 't';
      } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
        memcpy(o, "\\u00", 4);
        o[4] = hex[c >> 4];
        o[5] = hex[c & 15];
        o += 6;
      } else {
        *o++ = (char)c;
      }
      i++;
      continue;
    }
    size_t k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    if (k == 1 || i + k > n || !mw_labels_valid_utf8(s + i, k)) {
      memcpy(o, "\\ufffd", 6);
      o += 6;
      i++;
      continue;
    }
    if (k == 3 && c == 0xe2 && (unsigned char)s[i + 1] == 0x80 &&
        ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9)) {
      memcpy(o, (unsigned char)s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
      o += 6;
    } else {
      memcpy(o, s + i, k);
      o += k;
    }
    i += k;
  }
  *o++ = '"';
  j->line_len = (size_t)(o - j->line);
  return 0;
}

static const mw_journal_t *mw_sort_j;
static int mw_by_raw(const void *a, const void *b) {
  const mw_jfield_t *x = &mw_sort_j->fields[*(const size_t *)a];
  const mw_jfield_t *y = &mw_sort_j->fields[*(const size_t *)b];
  size_t n = x->raw_len < y->raw_len ? x->raw_len : y->raw_len;
  int c = memcmp(mw_sort_j->buf + x->raw_off, mw_sort_j->buf + y->raw_off, n);
  return c ? c : (x->raw_len > y->raw_len) - (x->raw_len < y->raw_len);
}

/* Every field as a JSON object, keys sorted (Go's map marshalling). 0, -1 OOM. */
static int mw_json_line(mw_journal_t *j) {
  j->line_len = 0;
  size_t n = 0;
  if (mw_grow((void **)&j->order, &j->order_cap, j->nfields + 1, sizeof *j->order)) return -1;
  for (size_t i = 0; i < j->nfields; i++)
    if (j->fields[i].raw_len) j->order[n++] = i;
  mw_sort_j = j;
  qsort(j->order, n, sizeof *j->order, mw_by_raw);
  if (mw_grow((void **)&j->line, &j->line_cap, 2, 1)) return -1;
  j->line[j->line_len++] = '{';
  for (size_t k = 0; k < n; k++) {
    const mw_jfield_t *f = &j->fields[j->order[k]];
    if (k && f->raw_len == j->fields[j->order[k - 1]].raw_len &&
        memcmp(j->buf + f->raw_off, j->buf + j->fields[j->order[k - 1]].raw_off, f->raw_len) == 0)
      continue; /* a field twice: one key (a Go map keeps the last; the first is as good) */
    if (k && mw_grow((void **)&j->line, &j->line_cap, j->line_len + 1, 1)) return -1;
    if (k) j->line[j->line_len++] = ',';
    if (mw_json_str(j, j->buf + f->raw_off, f->raw_len)) return -1;
    if (mw_grow((void **)&j->line, &j->line_cap, j->line_len + 1, 1)) return -1;
    j->line[j->line_len++] = ':';
    if (mw_json_str(j, j->buf + f->val_off, f->val_len)) return -1;
  }
  if (mw_grow((void **)&j->line, &j->line_cap, j->line_len + 1, 1)) return -1;
  j->line[j->line_len++] = '}';
  return 0;
}

/* The label set of the current entry after relabeling, encoded into j->enc: 1 when it has
 * labels, 0 when none are left, -1 OOM. */
static int mw_entry_labels(mw_journal_t *j, size_t *enc_len) {
  size_t n = 0, pos = 0;
  mw_label_t l;
  size_t need = j->nfields + 64;
  if (mw_grow((void **)&j->ls, &j->ls_cap, need, sizeof *j->ls)) return -1;
  for (size_t i = 0; i < j->nfields; i++) {
    const mw_jfield_t *f = &j->fields[i];
    if (!f->label || !f->val_len) continue;
    j->ls[n++] = (mw_label_t){.name = j->buf + f->name_off,
                              .name_len = (uint32_t)f->name_len,
                              .value = j->buf + f->val_off,
                              .value_len = (uint32_t)f->val_len};
  }
  /* the constant labels last: after a stable sort they win over a field of the same name */
  while (mw_labels_next(j->consts, j->consts_len, &pos, &l) == 1) {
    if (mw_grow((void **)&j->ls, &j->ls_cap, n + 1, sizeof *j->ls)) return -1;
    j->ls[n++] = l;
  }
  mw_labels_sort(j->ls, n);
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    if (m && j->ls[m - 1].name_len == j->ls[i].name_len &&
        memcmp(j->ls[m - 1].name, j->ls[i].name, j->ls[i].name_len) == 0)
      m--; /* a name twice (a field repeated, or a constant label): the later one */
    j->ls[m++] = j->ls[i];
  }
  n = m;
  const mw_label_t *res = j->ls;
  size_t rn = n;
  if (j->program) {
    int kept = mw_relabel_apply(j->program, j->scratch, j->ls, n, &res, &rn);
    if (kept < 0) return -1;
    if (!kept) return 0;
  }
  /* labels starting with "__" are dropped after relabeling, as Alloy's */
  size_t total = 0;
  for (size_t i = 0; i < rn; i++)
    total += res[i].name_len + res[i].value_len + 2;
  if (mw_grow((void **)&j->enc, &j->enc_cap, total + 1, 1)) return -1;
  size_t o = 0, kept = 0;
  for (size_t i = 0; i < rn; i++) {
    const mw_label_t *x = &res[i];
    if ((x->name_len >= 2 && x->name[0] == '_' && x->name[1] == '_') || !x->value_len) continue;
    if (!mw_labels_valid_utf8_name(x->name, x->name_len) || memchr(x->value, 0xff, x->value_len))
      continue;
    memcpy(j->enc + o, x->name, x->name_len);
    o += x->name_len;
    j->enc[o++] = MW_LABELS_SEP;
    memcpy(j->enc + o, x->value, x->value_len);
    o += x->value_len;
    j->enc[o++] = MW_LABELS_SEP;
    kept++;
  }
  *enc_len = o;
  return kept > 0;
}

int64_t mw_ffi_journal_read(mw_journal_t *j, mw_logbatch_t *b, uint32_t max_entries,
                            size_t max_bytes, mw_journal_stats_t *st, int *at_end, char *err,
                            size_t errlen) {
  *st = (mw_journal_stats_t){0};
  *at_end = 0;
  mw_logbatch_reset(b);
  int64_t n = 0;
  while ((uint32_t)n < max_entries && mw_logbatch_bytes(b) < max_bytes) {
    int r;
    if (j->pending) {
      j->pending = 0;
      r = 1;
    } else {
      r = sd_journal_next(j->j);
    }
    if (r < 0) {
      mw_jerr(err, errlen, "reading the journal", r);
      return -1;
    }
    if (r == 0) {
      *at_end = 1;
      break;
    }
    n++;
    st->entries++;
    const char *msg;
    size_t msg_len;
    if (mw_read_fields(j, &msg, &msg_len, err, errlen)) return -1;
    uint64_t usec = 0;
    if (sd_journal_get_realtime_usec(j->j, &usec) < 0) usec = mw_now_usec();
    const char *line = msg;
    size_t line_len = msg_len;
    if (j->json) {
      if (mw_json_line(j)) goto oom;
      line = j->line;
      line_len = j->line_len;
    } else if (!msg) {
      st->no_message++;
      continue;
    }
    size_t enc_len;
    int has = mw_entry_labels(j, &enc_len);
    if (has < 0) goto oom;
    if (!has) {
      st->empty_labels++;
      continue;
    }
    int64_t s = mw_logbatch_stream(b, j->enc, enc_len);
    if (s < 0) goto oom;
    if (line_len > MW_LOGBATCH_MAX_LINE) line_len = MW_LOGBATCH_MAX_LINE;
    if (mw_logbatch_add(b, (uint32_t)s, (int64_t)usec * 1000, line, line_len, NULL, 0)) goto oom;
    st->lines++;
  }
  if (n > 0) {
    char *c = NULL;
    int r = sd_journal_get_cursor(j->j, &c);
    if (r < 0) {
      mw_jerr(err, errlen, "reading the journal's cursor", r);
      return -1;
    }
    free(j->cursor);
    j->cursor = c;
  }
  return n;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

const char *mw_ffi_journal_cursor(const mw_journal_t *j) { return j->cursor; }
