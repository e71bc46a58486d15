/* discovery/filesd.c: YAML to JSON for file_sd files (libyaml's event parser) and inotify
 * directory watches. See filesd.h. */
#include "discovery/filesd.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <yaml.h>

#include "base/err.h"
#include "base/grow.h"

#define MW_YAML_MAX_DEPTH 64

typedef struct {
  char *p;
  size_t len, cap, max;
  int too_big, oom;
} mw_jbuf_t;

static int mw_jbuf_put(mw_jbuf_t *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->max) {
    b->too_big = 1;
    return -1;
  }
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 1024;
    while (cap < b->len + n + 1)
      cap *= 2;
    if (cap > b->max) cap = b->max;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return -1;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
  return 0;
}

/* A JSON string of s[0..n) (valid UTF-8: libyaml checks its input). */
static int mw_jbuf_str(mw_jbuf_t *b, const unsigned char *s, size_t n) {
  if (mw_jbuf_put(b, "\"", 1)) return -1;
  size_t start = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    if (i > start && mw_jbuf_put(b, (const char *)s + start, i - start)) return -1;
    char esc[8];
    if (c == '"' || c == '\\')
      snprintf(esc, sizeof esc, "\\%c", c);
    else
      snprintf(esc, sizeof esc, "\\u%04x", c);
    if (mw_jbuf_put(b, esc, strlen(esc))) return -1;
    start = i + 1;
  }
  if (n > start && mw_jbuf_put(b, (const char *)s + start, n - start)) return -1;
  return mw_jbuf_put(b, "\"", 1);
}

/* One open collection: a sequence or a mapping, how many items it has, for a mapping whether
 * the next node is a key, and its serial number (which mapping a seen key belongs to). */
typedef struct {
  int mapping, items, want_key;
  uint32_t serial;
} mw_yframe_t;

/* The keys seen so far, of every mapping, to refuse a repeated one as Prometheus's strict YAML
 * does ("key already set in map"): an open-addressing set of (mapping serial, the key's JSON
 * text at off..off+len in the output). Its size follows the keys, so the output bound bounds it. */
typedef struct {
  uint64_t hash; /* 0: an empty slot */
  uint32_t serial;
  size_t off, len;
} mw_ykey_t;

typedef struct {
  mw_ykey_t *slots;
  size_t n, used;
} mw_ykeys_t;

static uint64_t mw_ykey_hash(uint32_t serial, const char *s, size_t len) {
  uint64_t h = XXH3_64bits_withSeed(s, len, serial);
  return h ? h : 1;
}

/* Adds the key at buf[off..off+len) of mapping serial: 1 when that mapping has it already, 0
 * when added, -1 when out of memory. */
static int mw_ykeys_add(mw_ykeys_t *k, const char *buf, uint32_t serial, size_t off, size_t len) {
  uint64_t h = mw_ykey_hash(serial, buf + off, len);
  if ((k->used + 1) * 4 > k->n * 3) {
    size_t n = k->n ? k->n * 2 : 64;
    mw_ykey_t *slots = calloc(n, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < k->n; i++) {
      if (!k->slots[i].hash) continue;
      size_t j = k->slots[i].hash % n;
      while (slots[j].hash)
        j = (j + 1) % n;
      slots[j] = k->slots[i];
    }
    free(k->slots);
    k->slots = slots;
    k->n = n;
  }
  size_t j = h % k->n;
  for (; k->slots[j].hash; j = (j + 1) % k->n) {
    const mw_ykey_t *e = &k->slots[j];
    if (e->hash == h && e->serial == serial && e->len == len &&
        !memcmp(buf + e->off, buf + off, len))
      return 1;
  }
  k->slots[j].hash = h;
  k->slots[j].serial = serial;
  k->slots[j].off = off;
  k->slots[j].len = len;
  k->used++;
  return 0;
}

static int mw_yaml_is_null(const yaml_event_t *e) {
  if (e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
  const char *v = (const char *)e->data.scalar.value;
  size_t n = e->data.scalar.length;
  return n == 0 || (n == 1 && v[0] == '~') ||
         (n == 4 && (!memcmp(v, "null", 4) || !memcmp(v, "Null", 4) || !memcmp(v, "NULL", 4)));
}

int mw_ffi_filesd_yaml_to_json(const char *in, size_t len, size_t max_out, char **out,
                               size_t *out_len, char *err, size_t errlen) {
  yaml_parser_t parser;
  yaml_event_t ev;
  mw_yframe_t stack[MW_YAML_MAX_DEPTH];
  int depth = 0, done = 0, rc = -1, have_ev = 0, any = 0;
  uint32_t serials = 0;
  mw_ykeys_t keys = {NULL, 0, 0};
  mw_jbuf_t b = {NULL, 0, 0, max_out ? max_out : (size_t)1 << 30, 0, 0};
  *out = NULL;
  *out_len = 0;
  if (!yaml_parser_initialize(&parser)) {
    mw_seterr(err, errlen, "out of memory");
    return -1;
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)in, len);
  while (!done) {
    if (!yaml_parser_parse(&parser, &ev)) {
      mw_seterr(err, errlen, "line %zu, column %zu: %s", parser.problem_mark.line + 1,
                parser.problem_mark.column + 1, parser.problem ? parser.problem : "syntax error");
      goto out;
    }
    have_ev = 1;
    size_t line = ev.start_mark.line + 1, col = ev.start_mark.column + 1;
    const char *bad = NULL;
    int put = 0; /* 1: a node that takes a place in its parent */
    switch (ev.type) {
    case YAML_DOCUMENT_END_EVENT:
    case YAML_STREAM_END_EVENT: done = 1; break;
    case YAML_ALIAS_EVENT: bad = "aliases are not supported"; break;
    case YAML_SCALAR_EVENT:
      if (ev.data.scalar.anchor) bad = "anchors are not supported";
      put = 1;
      break;
    case YAML_SEQUENCE_START_EVENT:
      if (ev.data.sequence_start.anchor) bad = "anchors are not supported";
      put = 2;
      break;
    case YAML_MAPPING_START_EVENT:
      if (ev.data.mapping_start.anchor) bad = "anchors are not supported";
      put = 3;
      break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      depth--;
      if (mw_jbuf_put(&b, stack[depth].mapping ? "}" : "]", 1)) goto full;
      break;
    default: break;
    }
    if (bad) {
      mw_seterr(err, errlen, "line %zu, column %zu: %s", line, col, bad);
      goto out;
    }
    if (put) {
      mw_yframe_t *f = depth ? &stack[depth - 1] : NULL;
      if (f && f->mapping && f->want_key && put != 1) {
        mw_seterr(err, errlen, "line %zu, column %zu: a mapping key must be a scalar", line, col);
        goto out;
      }
      if (f) {
        if (!f->mapping || f->want_key) {
          if (f->items++ && mw_jbuf_put(&b, ",", 1)) goto full;
        } else if (mw_jbuf_put(&b, ":", 1)) {
          goto full;
        }
      }
      int is_key = f && f->mapping && f->want_key;
      if (f && f->mapping) f->want_key = !f->want_key;
      any = 1;
      if (put == 1) {
        size_t off = b.len;
        if (!is_key && mw_yaml_is_null(&ev)) {
          if (mw_jbuf_put(&b, "null", 4)) goto full;
        } else if (mw_jbuf_str(&b, ev.data.scalar.value, ev.data.scalar.length)) {
          goto full;
        }
        if (is_key) {
          int dup = mw_ykeys_add(&keys, b.p, f->serial, off, b.len - off);
          if (dup < 0) {
            mw_seterr(err, errlen, "line %zu, column %zu: out of memory", line, col);
            goto out;
          }
          if (dup) {
            mw_seterr(err, errlen, "line %zu, column %zu: key %.*s already set in map", line, col,
                      (int)(b.len - off), b.p + off);
            goto out;
          }
        }
      } else {
        if (depth == MW_YAML_MAX_DEPTH) {
          mw_seterr(err, errlen, "line %zu, column %zu: nesting deeper than %d", line, col,
                    MW_YAML_MAX_DEPTH);
          goto out;
        }
        stack[depth].mapping = put == 3;
        stack[depth].items = 0;
        stack[depth].want_key = 1;
        stack[depth].serial = serials++;
        depth++;
        if (mw_jbuf_put(&b, put == 3 ? "{" : "[", 1)) goto full;
      }
    }
    yaml_event_delete(&ev);
    have_ev = 0;
  }
  if (!any && mw_jbuf_put(&b, "null", 4)) goto full;
  *out = b.p;
  *out_len = b.len;
  b.p = NULL;
  rc = 0;
  goto out;
full:
  mw_seterr(err, errlen, "line %zu, column %zu: %s", ev.start_mark.line + 1,
            ev.start_mark.column + 1, b.oom ? "out of memory" : "document larger than the limit");
out:
  if (have_ev) yaml_event_delete(&ev);
  yaml_parser_delete(&parser);
  free(keys.slots);
  free(b.p);
  return rc;
}

void mw_ffi_filesd_free(char *p) { free(p); }

double mw_ffi_filesd_mtime(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  return (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9;
}

/* ---- inotify ---- */

typedef struct {
  int wd;
  char *dir;
} mw_fswatch_dir_t;

struct mw_fswatch {
  int fd;
  mw_fswatch_dir_t *dirs;
  size_t ndirs, cap;
};

mw_fswatch_t *mw_ffi_fswatch_new(char *err, size_t errlen) {
  mw_fswatch_t *w = calloc(1, sizeof *w);
  if (!w) {
    mw_seterr(err, errlen, "out of memory");
    return NULL;
  }
  w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (w->fd < 0) {
    mw_seterr(err, errlen, "inotify: %s", strerror(errno));
    free(w);
    return NULL;
  }
  return w;
}

void mw_ffi_fswatch_free(mw_fswatch_t *w) {
  if (!w) return;
  close(w->fd);
  for (size_t i = 0; i < w->ndirs; i++)
    free(w->dirs[i].dir);
  free(w->dirs);
  free(w);
}

int mw_ffi_fswatch_fd(const mw_fswatch_t *w) { return w->fd; }

int mw_ffi_fswatch_add(mw_fswatch_t *w, const char *dir, char *err, size_t errlen) {
  uint32_t mask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO |
                  IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;
  /* adding a directory watched already returns its descriptor again: nothing new is kept */
  int wd = inotify_add_watch(w->fd, dir, mask);
  if (wd < 0) {
    mw_seterr(err, errlen, "%s: %s", dir, strerror(errno));
    return -1;
  }
  for (size_t i = 0; i < w->ndirs; i++)
    if (w->dirs[i].wd == wd) return 0; /* the same directory under another name */
  if (mw_grow((void **)&w->dirs, &w->cap, w->ndirs + 1, sizeof *w->dirs) != 0) goto oom;
  char *copy = strdup(dir);
  if (!copy) goto oom;
  w->dirs[w->ndirs].wd = wd;
  w->dirs[w->ndirs].dir = copy;
  w->ndirs++;
  return 0;
oom:
  inotify_rm_watch(w->fd, wd);
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

/* Appends s[0..n) "/" name and a NUL to *out. */
static int mw_fswatch_put(char **out, size_t *len, size_t *cap, const char *s, const char *name) {
  size_t n = strlen(s), m = name ? strlen(name) : 0, need = n + (m ? m + 1 : 0) + 1;
  if (mw_grow((void **)out, cap, *len + need, 1) != 0) return -1;
  memcpy(*out + *len, s, n);
  *len += n;
  if (m) {
    (*out)[(*len)++] = '/';
    memcpy(*out + *len, name, m);
    *len += m;
  }
  (*out)[(*len)++] = '\0';
  return 0;
}

int mw_ffi_fswatch_drain(mw_fswatch_t *w, char **out, size_t *out_len) {
  char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
  size_t len = 0, cap = 0;
  *out = NULL;
  *out_len = 0;
  for (;;) {
    ssize_t got = read(w->fd, buf, sizeof buf);
    if (got <= 0) break;
    for (char *p = buf; p < buf + got;) {
      struct inotify_event *e = (struct inotify_event *)p;
      p += sizeof *e + e->len;
      const char *dir = NULL;
      size_t at = 0;
      for (size_t i = 0; i < w->ndirs; i++)
        if (w->dirs[i].wd == e->wd) dir = w->dirs[i].dir, at = i;
      if (e->mask & IN_Q_OVERFLOW) dir = "";
      if (!dir) continue;
      int put = mw_fswatch_put(out, &len, &cap, dir, e->len && dir[0] ? e->name : NULL);
      if (dir[0] && (e->mask & IN_IGNORED)) {
        /* the kernel dropped this watch (the directory was removed or unmounted): forget it,
         * so that adding the directory again, once it exists again, watches it */
        free(w->dirs[at].dir);
        w->dirs[at] = w->dirs[--w->ndirs];
      }
      if (put) {
        free(*out);
        *out = NULL;
        return -1;
      }
    }
  }
  *out_len = len;
  return 0;
}
