/* exporters/process/group.c: process-exporter's tracker and grouper (see
 * exporters/process/group.h).
 *
 * One collection: list <procfs>/<pid> (sorted by pid), merge-join with the
 * entries of the previous collection (also sorted by pid), read a known
 * tracked process's metrics, skip an ignored one after reading its stat, and
 * run the matchers on a new one. Unmatched new processes are attributed to a
 * matched ancestor afterwards (track_children). Then groups are aggregated
 * and written through a short-lived metrics registry (runtime/exposition/registry.h), so
 * the exposition is exposition/write.c's, byte for byte. */
#include "exporters/process/group.h"
#include "base/err.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pcre2.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/re2.h"
#include "exporters/process/proc.h"
#include "exposition/registry.h"

/* process-exporter hard-codes USER_HZ (proc/read.go's userHZ). */
#define USER_HZ 100
#define WCHAN_MAX 128
/* Go's time.Time{}.Unix(): the oldest start time of an empty group. */
#define GO_ZERO_TIME_UNIX (-62135596800.0)

/* --- data ------------------------------------------------------------------ */

typedef struct {
  double user, system;
  uint64_t read_bytes, write_bytes, majflt, minflt, ctx_vol, ctx_nonvol;
} counts_t;

typedef struct {
  uint64_t running, sleeping, waiting, zombie, other;
} states_t;

typedef struct {
  int64_t tid;
  uint64_t starttime;
  counts_t total;  /* as last read */
  counts_t latest; /* increment since the previous collection */
  char state;      /* R, S, D, Z, ... */
  char name[64];
  char wchan[WCHAN_MAX];
} thr_t;

enum { P_TRACKED, P_IGNORED, P_PENDING, P_RESOLVING, P_DROP };

typedef struct group group_t;

typedef struct {
  int64_t pid, ppid;
  uint64_t starttime; /* ticks after boot: with pid, the process's identity */
  int state;          /* P_* */
  group_t *group;
  counts_t total, latest;
  uint64_t rss, vsize, swap, pss, swap_pss;
  int64_t open_fds; /* -1: unknown */
  uint64_t fd_limit, num_threads;
  states_t states;
  char wchan[WCHAN_MAX];
  thr_t *threads; /* NULL, or nthreads >= 2 sorted by tid */
  size_t nthreads;
} pent_t;

/* Accumulated counters of the threads of a group sharing a name. */
typedef struct {
  char *name;
  uint64_t count;
  counts_t c;
} tagg_t;

struct group {
  char *name;
  counts_t accum; /* what the counters report */
  int ever;       /* had a process at some collection */
  /* this collection */
  int active;
  uint64_t procs, open_fds, num_threads, rss, vsize, swap, pss, swap_pss;
  double worst;
  uint64_t oldest_ticks; /* btime*USER_HZ + starttime of the oldest process */
  states_t states;
  thr_t **tupd; /* thread updates */
  size_t ntupd, cap_tupd;
  const char **wch; /* wchans, one per waiting thread */
  size_t nwch, cap_wch;
  tagg_t *thist; /* thread accumulations, sorted by name */
  size_t nthist;
};

typedef struct {
  pcre2_code *code;
  pcre2_match_data *md;
  uint32_t ncap;
  char **names; /* ncap + 1 group names, "" for unnamed */
} mre_t;

enum {
  SEG_TEXT,
  SEG_COMM,
  SEG_EXEBASE,
  SEG_EXEFULL,
  SEG_USERNAME,
  SEG_PID,
  SEG_STARTTIME,
  SEG_CGROUPS,
  SEG_MATCHES,
  SEG_MATCH
};

typedef struct {
  int kind;
  char *s; /* SEG_TEXT: the text; SEG_MATCH: the key */
  size_t len;
} seg_t;

typedef struct {
  int has_comm, has_exe, has_cmdline;
  char **comm;
  size_t ncomm;
  char **exe_base, **exe_full; /* exe_full NULL when the rule had no slash */
  size_t nexe;
  mre_t *re;
  size_t nre;
  seg_t *segs;
  size_t nsegs;
} matcher_t;

typedef struct {
  const char *name;
  size_t off, len; /* into the joined cmdline */
} capture_t;

typedef struct {
  int64_t uid;
  char *name;
} user_t;

struct mw_procgroup {
  char *root;
  int rootfd;
  int procfs; /* rootfd is a real procfs */
  int own_ns; /* ... of our pid namespace (its "self" is our pid) */
  int track_children, track_threads, gather_smaps, recheck, remove_empty;
  matcher_t *m;
  size_t nm;
  uint64_t btime;
  double first_update;
  pent_t **ents; /* sorted by pid */
  size_t nents;
  group_t **groups; /* sorted by name */
  size_t ngroups, cap_groups;
  uint64_t scrape_errors, read_errors, partial_errors;
  mw_proc_buf_t scratch, argv, joined, name, aux;
  capture_t *caps;
  size_t ncaps, cap_caps;
  user_t *users;
  size_t nusers;
  int oom;
};

/* --- small helpers --------------------------------------------------------- */

static char *xstrndup(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

/* Appends to a string builder (a mw_proc_buf_t); sets t->oom on failure. */
static void sb_put(mw_procgroup_t *t, mw_proc_buf_t *b, const char *s, size_t n) {
  if (t->oom) return;
  if (b->cap - b->len <= n) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= n)
      cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
      t->oom = 1;
      return;
    }
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

static void sb_puts(mw_procgroup_t *t, mw_proc_buf_t *b, const char *s) {
  sb_put(t, b, s, strlen(s));
}

/* Go's filepath.Base. */
static void go_base(const char *p, size_t n, const char **out, size_t *out_len) {
  if (n == 0) {
    *out = ".";
    *out_len = 1;
    return;
  }
  while (n > 0 && p[n - 1] == '/')
    n--;
  if (n == 0) {
    *out = "/";
    *out_len = 1;
    return;
  }
  size_t i = n;
  while (i > 0 && p[i - 1] != '/')
    i--;
  *out = p + i;
  *out_len = n - i;
}

static double wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* new - old per counter, clamped at 0 so that a counter never goes back (a
 * thread that exits lowers a process's summed context switches). */
static counts_t counts_delta(const counts_t *n, const counts_t *o) {
  counts_t d;
  d.user = n->user > o->user ? n->user - o->user : 0;
  d.system = n->system > o->system ? n->system - o->system : 0;
#define D(f) d.f = n->f > o->f ? n->f - o->f : 0
  D(read_bytes);
  D(write_bytes);
  D(majflt);
  D(minflt);
  D(ctx_vol);
  D(ctx_nonvol);
#undef D
  return d;
}

static void counts_add(counts_t *a, const counts_t *b) {
  a->user += b->user;
  a->system += b->system;
  a->read_bytes += b->read_bytes;
  a->write_bytes += b->write_bytes;
  a->majflt += b->majflt;
  a->minflt += b->minflt;
  a->ctx_vol += b->ctx_vol;
  a->ctx_nonvol += b->ctx_nonvol;
}

static void states_count(states_t *s, char state) {
  switch (state) {
  case 'R': s->running++; break;
  case 'S': s->sleeping++; break;
  case 'D': s->waiting++; break;
  case 'Z': s->zombie++; break;
  default: s->other++; break;
  }
}

/* --- templates ------------------------------------------------------------- */

static void segs_free(seg_t *segs, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(segs[i].s);
  free(segs);
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int is_ident(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         (unsigned char)c >= 0x80;
}

/* Parses the subset of Go's text/template that names use: text, {{.Field}},
 * {{.Matches.KEY}}, {{/ * comments * /}} and the {{- -}} trim markers. */
static int template_parse(const char *tpl, seg_t **out, size_t *nout, char *err, size_t errlen) {
  static const struct {
    const char *name;
    int kind;
  } fields[] = {{"Comm", SEG_COMM},         {"ExeBase", SEG_EXEBASE}, {"ExeFull", SEG_EXEFULL},
                {"Username", SEG_USERNAME}, {"PID", SEG_PID},         {"StartTime", SEG_STARTTIME},
                {"Cgroups", SEG_CGROUPS},   {"Matches", SEG_MATCHES}};
  size_t n = strlen(tpl), cap = 8, ns = 0;
  seg_t *segs = calloc(cap, sizeof *segs);
  int trim_next = 0;
  if (!segs) goto oom;
  for (size_t i = 0; i <= n;) {
    const char *open = strstr(tpl + i, "{{");
    size_t end = open ? (size_t)(open - tpl) : n;
    size_t ts = i, te = end;
    if (trim_next)
      while (ts < te && is_space(tpl[ts]))
        ts++;
    int ltrim = open && open[2] == '-' && is_space(open[3]);
    if (ltrim)
      while (te > ts && is_space(tpl[te - 1]))
        te--;
    if (ns + 2 > cap) {
      seg_t *s = realloc(segs, 2 * cap * sizeof *segs);
      if (!s) goto oom;
      segs = s;
      cap *= 2;
    }
    if (te > ts) {
      segs[ns] = (seg_t){SEG_TEXT, xstrndup(tpl + ts, te - ts), te - ts};
      if (!segs[ns++].s) goto oom;
    }
    if (!open) break;
    const char *a = open + 2 + (ltrim ? 2 : 0);
    const char *close = strstr(a, "}}");
    if (!close) {
      mw_seterr(err, errlen, "name template \"%s\": unclosed action", tpl);
      goto fail;
    }
    const char *ae = close;
    trim_next = ae - a >= 2 && ae[-1] == '-' && is_space(ae[-2]);
    if (trim_next) ae -= 2;
    while (a < ae && is_space(*a))
      a++;
    while (ae > a && is_space(ae[-1]))
      ae--;
    i = (size_t)(close + 2 - tpl);
    if (ae - a >= 4 && a[0] == '/' && a[1] == '*' && ae[-1] == '/' && ae[-2] == '*') continue;
    int kind = -1;
    const char *key = NULL;
    size_t klen = 0;
    if (a < ae && *a == '.') {
      const char *f = a + 1, *fe = f;
      while (fe < ae && is_ident(*fe))
        fe++;
      for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
        if (strlen(fields[k].name) == (size_t)(fe - f) &&
            memcmp(fields[k].name, f, (size_t)(fe - f)) == 0)
          kind = fields[k].kind;
      if (kind == SEG_MATCHES && fe < ae && *fe == '.') {
        key = fe + 1;
        const char *ke = key;
        while (ke < ae && is_ident(*ke))
          ke++;
        klen = (size_t)(ke - key);
        kind = klen ? SEG_MATCH : -1;
        fe = ke;
      }
      if (fe != ae) kind = -1;
    }
    if (kind < 0) {
      mw_seterr(err, errlen,
                "name template \"%s\": unsupported action \"%.*s\" (use {{.Comm}}, {{.ExeBase}}, "
                "{{.ExeFull}}, {{.Username}}, {{.PID}}, {{.StartTime}}, {{.Cgroups}} or "
                "{{.Matches.NAME}})",
                tpl, (int)(close - open - 2), open + 2);
      goto fail;
    }
    segs[ns] = (seg_t){kind, key ? xstrndup(key, klen) : NULL, klen};
    if (key && !segs[ns].s) goto oom;
    ns++;
  }
  *out = segs;
  *nout = ns;
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
fail:
  segs_free(segs, ns);
  return -1;
}

/* --- matchers -------------------------------------------------------------- */

static void strs_free(char **v, size_t n) {
  if (!v) return;
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

static void matcher_clear(matcher_t *m) {
  strs_free(m->comm, m->ncomm);
  strs_free(m->exe_base, m->nexe);
  strs_free(m->exe_full, m->nexe);
  for (size_t i = 0; i < m->nre; i++) {
    pcre2_match_data_free(m->re[i].md);
    pcre2_code_free(m->re[i].code);
    strs_free(m->re[i].names, m->re[i].code ? m->re[i].ncap + 1 : 0);
  }
  free(m->re);
  segs_free(m->segs, m->nsegs);
  memset(m, 0, sizeof *m);
}

static int regex_compile(mre_t *r, const char *src, char *err, size_t errlen) {
  int rc = -1;
  /* unanchored, as process-exporter's regexp.FindStringSubmatchIndex */
  r->code = mw_re2_compile(src, strlen(src), 0, NULL, err, errlen);
  if (!r->code) goto done;
  pcre2_pattern_info(r->code, PCRE2_INFO_CAPTURECOUNT, &r->ncap);
  r->md = pcre2_match_data_create_from_pattern(r->code, NULL);
  r->names = calloc(r->ncap + 1, sizeof *r->names);
  if (!r->md || !r->names) goto oom;
  uint32_t count = 0, size = 0;
  PCRE2_SPTR table = NULL;
  pcre2_pattern_info(r->code, PCRE2_INFO_NAMECOUNT, &count);
  pcre2_pattern_info(r->code, PCRE2_INFO_NAMEENTRYSIZE, &size);
  pcre2_pattern_info(r->code, PCRE2_INFO_NAMETABLE, &table);
  for (uint32_t i = 0; i < count; i++) {
    const unsigned char *e = table + (size_t)i * size;
    uint32_t g = ((uint32_t)e[0] << 8) | e[1];
    if (g <= r->ncap && !r->names[g]) {
      r->names[g] = strdup((const char *)e + 2);
      if (!r->names[g]) goto oom;
    }
  }
  for (uint32_t g = 0; g <= r->ncap; g++)
    if (!r->names[g] && !(r->names[g] = strdup(""))) goto oom;
  rc = 0;
  goto done;
oom:
  mw_seterr(err, errlen, "out of memory");
done:
  return rc;
}

static int strs_copy(char ***out, const char *const *in, size_t n) {
  *out = calloc(n ? n : 1, sizeof **out);
  if (!*out) return -1;
  for (size_t i = 0; i < n; i++)
    if (!((*out)[i] = strdup(in[i] ? in[i] : ""))) return -1;
  return 0;
}

static int matcher_init(matcher_t *m, const mw_procgroup_matcher_t *src, size_t idx, char *err,
                        size_t errlen) {
  char sub[512];
  memset(m, 0, sizeof *m);
  m->has_comm = src->comm != NULL;
  m->has_exe = src->exe != NULL;
  m->has_cmdline = src->cmdline != NULL;
  if (!m->has_comm && !m->has_exe && !m->has_cmdline) {
    mw_seterr(err, errlen, "matcher %zu: no comm, exe or cmdline rule", idx);
    return -1;
  }
  if (m->has_comm) {
    m->ncomm = src->n_comm;
    if (strs_copy(&m->comm, src->comm, src->n_comm) < 0) goto oom;
  }
  if (m->has_exe) {
    m->nexe = src->n_exe;
    m->exe_base = calloc(src->n_exe ? src->n_exe : 1, sizeof *m->exe_base);
    m->exe_full = calloc(src->n_exe ? src->n_exe : 1, sizeof *m->exe_full);
    if (!m->exe_base || !m->exe_full) goto oom;
    for (size_t i = 0; i < src->n_exe; i++) {
      const char *e = src->exe[i] ? src->exe[i] : "", *b;
      size_t bl;
      go_base(e, strlen(e), &b, &bl);
      if (!(m->exe_base[i] = strchr(e, '/') ? xstrndup(b, bl) : strdup(e))) goto oom;
      if (strchr(e, '/') && !(m->exe_full[i] = strdup(e))) goto oom;
    }
  }
  if (m->has_cmdline) {
    m->re = calloc(src->n_cmdline ? src->n_cmdline : 1, sizeof *m->re);
    if (!m->re) goto oom;
    for (size_t i = 0; i < src->n_cmdline; i++) {
      m->nre = i + 1;
      if (regex_compile(&m->re[i], src->cmdline[i] ? src->cmdline[i] : "", sub, sizeof sub) < 0) {
        mw_seterr(err, errlen, "matcher %zu: cmdline %zu: %s", idx, i + 1, sub);
        return -1;
      }
    }
  }
  const char *tpl = src->name && src->name[0] ? src->name : "{{.ExeBase}}";
  if (template_parse(tpl, &m->segs, &m->nsegs, sub, sizeof sub) < 0) {
    mw_seterr(err, errlen, "matcher %zu: name: %s", idx, sub);
    return -1;
  }
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

/* What a new process offers to the matchers. */
typedef struct {
  int64_t pid;
  int dirfd;
  const mw_proc_stat_t *st;
  const char *argv; /* NUL-separated, argv_len bytes (t->argv) */
  size_t argv_len;
} cand_t;

static void caps_set(mw_procgroup_t *t, const char *name, size_t off, size_t len) {
  for (size_t i = 0; i < t->ncaps; i++)
    if (strcmp(t->caps[i].name, name) == 0) {
      t->caps[i].off = off;
      t->caps[i].len = len;
      return;
    }
  if (t->ncaps == t->cap_caps) {
    size_t cap = t->cap_caps ? 2 * t->cap_caps : 8;
    capture_t *c = realloc(t->caps, cap * sizeof *c);
    if (!c) {
      t->oom = 1;
      return;
    }
    t->caps = c;
    t->cap_caps = cap;
  }
  t->caps[t->ncaps++] = (capture_t){name, off, len};
}

/* 1 if m matches c (captures land in t->caps over t->joined), else 0. */
static int matcher_match(mw_procgroup_t *t, const matcher_t *m, const cand_t *c) {
  if (m->has_comm) {
    int found = 0;
    for (size_t i = 0; i < m->ncomm && !found; i++)
      found = strcmp(m->comm[i], c->st->comm) == 0;
    if (!found) return 0;
  }
  size_t a0len = strnlen(c->argv, c->argv_len);
  if (m->has_exe) {
    if (c->argv_len == 0) return 0;
    const char *b;
    size_t bl;
    go_base(c->argv, a0len, &b, &bl);
    ssize_t hit = -1; /* a later rule with the same basename replaces an earlier one */
    for (size_t i = 0; i < m->nexe; i++)
      if (strlen(m->exe_base[i]) == bl && memcmp(m->exe_base[i], b, bl) == 0) hit = (ssize_t)i;
    if (hit < 0) return 0;
    const char *full = m->exe_full[hit];
    if (full && !(strlen(full) == a0len && memcmp(full, c->argv, a0len) == 0)) return 0;
  }
  t->ncaps = 0;
  if (m->has_cmdline) {
    for (size_t i = 0; i < m->nre; i++) {
      const mre_t *r = &m->re[i];
      if (pcre2_match(r->code, (PCRE2_SPTR)t->joined.data, t->joined.len, 0, 0, r->md, NULL) < 0)
        return 0;
      PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
      for (uint32_t g = 0; g <= r->ncap; g++) {
        if (ov[2 * g] == PCRE2_UNSET)
          caps_set(t, r->names[g], 0, 0);
        else
          caps_set(t, r->names[g], ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
      }
    }
  }
  return 1;
}

static const char *username(mw_procgroup_t *t, int64_t uid, char *tmp, size_t tmplen) {
  for (size_t i = 0; i < t->nusers; i++)
    if (t->users[i].uid == uid) return t->users[i].name;
  struct passwd pw, *res = NULL;
  char buf[4096];
  const char *name;
  if (uid >= 0 && getpwuid_r((uid_t)uid, &pw, buf, sizeof buf, &res) == 0 && res)
    name = res->pw_name;
  else {
    snprintf(tmp, tmplen, "%" PRId64, uid);
    name = tmp;
  }
  user_t *u = realloc(t->users, (t->nusers + 1) * sizeof *u);
  if (!u) return name;
  t->users = u;
  char *copy = strdup(name);
  if (!copy) return name;
  t->users[t->nusers++] = (user_t){uid, copy};
  return copy;
}

static int cmp_cap(const void *a, const void *b) {
  return strcmp(((const capture_t *)a)->name, ((const capture_t *)b)->name);
}

/* Renders m's template for c into t->name. 0, or -1 (errno) when a file it
 * needs cannot be read. */
static int render_name(mw_procgroup_t *t, const matcher_t *m, const cand_t *c) {
  mw_proc_buf_t *out = &t->name;
  char tmp[64];
  out->len = 0;
  sb_put(t, out, "", 0);
  size_t a0len = strnlen(c->argv, c->argv_len);
  for (size_t i = 0; i < m->nsegs; i++) {
    const seg_t *s = &m->segs[i];
    switch (s->kind) {
    case SEG_TEXT: sb_put(t, out, s->s, s->len); break;
    case SEG_COMM: sb_put(t, out, c->st->comm, c->st->comm_len); break;
    case SEG_EXEBASE:
    case SEG_EXEFULL:
      if (c->argv_len == 0) {
        sb_put(t, out, c->st->comm, c->st->comm_len);
      } else if (s->kind == SEG_EXEFULL) {
        sb_put(t, out, c->argv, a0len);
      } else {
        const char *b;
        size_t bl;
        go_base(c->argv, a0len, &b, &bl);
        sb_put(t, out, b, bl);
      }
      break;
    case SEG_USERNAME: {
      mw_proc_status_t status;
      if (mw_proc_read_status(c->dirfd, &t->aux, &status) < 0) return -1;
      sb_puts(t, out, username(t, status.euid, tmp, sizeof tmp));
      break;
    }
    case SEG_PID:
      snprintf(tmp, sizeof tmp, "%" PRId64, c->pid);
      sb_puts(t, out, tmp);
      break;
    case SEG_STARTTIME: { /* Go's time.Time.String() of a UTC time */
      time_t secs = (time_t)(t->btime + c->st->starttime / USER_HZ);
      unsigned frac = (unsigned)(c->st->starttime % USER_HZ);
      struct tm tm;
      /* a year past int's range (only a fake procfs gets there): no date */
      if (!gmtime_r(&secs, &tm)) memset(&tm, 0, sizeof tm);
      strftime(tmp, sizeof tmp, "%Y-%m-%d %H:%M:%S", &tm);
      sb_puts(t, out, tmp);
      if (frac) {
        snprintf(tmp, sizeof tmp, ".%02u", frac);
        if (tmp[2] == '0') tmp[2] = '\0';
        sb_puts(t, out, tmp);
      }
      sb_puts(t, out, " +0000 UTC");
      break;
    }
    case SEG_CGROUPS: { /* fmt's %v of a []string; unreadable or malformed: empty */
      size_t start = out->len;
      sb_put(t, out, "[", 1);
      int ok = mw_proc_read_file(c->dirfd, "cgroup", &t->aux) == 0;
      for (char *line = ok ? t->aux.data : NULL, *nl; line && *line && ok; line = nl) {
        nl = strchr(line, '\n');
        if (nl) *nl++ = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) {
          ok = 0;
          break;
        }
        if (out->len > start + 1) sb_put(t, out, " ", 1);
        sb_puts(t, out, c2 + 1);
      }
      if (!ok) out->len = start + 1;
      sb_put(t, out, "]", 1);
      break;
    }
    case SEG_MATCHES: /* fmt's %v of a map: sorted keys */
      if (t->ncaps) qsort(t->caps, t->ncaps, sizeof *t->caps, cmp_cap);
      sb_put(t, out, "map[", 4);
      for (size_t k = 0; k < t->ncaps; k++) {
        if (k) sb_put(t, out, " ", 1);
        sb_puts(t, out, t->caps[k].name);
        sb_put(t, out, ":", 1);
        sb_put(t, out, t->joined.data + t->caps[k].off, t->caps[k].len);
      }
      sb_put(t, out, "]", 1);
      break;
    case SEG_MATCH: {
      const capture_t *hit = NULL;
      for (size_t k = 0; k < t->ncaps; k++)
        if (strcmp(t->caps[k].name, s->s) == 0) hit = &t->caps[k];
      if (hit)
        sb_put(t, out, t->joined.data + hit->off, hit->len);
      else
        sb_puts(t, out, "<no value>"); /* text/template's missing map key */
      break;
    }
    }
  }
  return 0;
}

/* --- groups ---------------------------------------------------------------- */

static void group_free(group_t *g) {
  if (!g) return;
  for (size_t i = 0; i < g->nthist; i++)
    free(g->thist[i].name);
  free(g->thist);
  free(g->tupd);
  free(g->wch);
  free(g->name);
  free(g);
}

static size_t group_pos(const mw_procgroup_t *t, const char *name, int *found) {
  size_t lo = 0, hi = t->ngroups;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(t->groups[mid]->name, name);
    if (c == 0) {
      *found = 1;
      return mid;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = 0;
  return lo;
}

static group_t *group_get(mw_procgroup_t *t, const char *name) {
  int found;
  size_t pos = group_pos(t, name, &found);
  if (found) return t->groups[pos];
  if (t->ngroups == t->cap_groups) {
    size_t cap = t->cap_groups ? 2 * t->cap_groups : 16;
    group_t **g = realloc(t->groups, cap * sizeof *g);
    if (!g) return NULL;
    t->groups = g;
    t->cap_groups = cap;
  }
  group_t *g = calloc(1, sizeof *g);
  if (!g || !(g->name = strdup(name))) {
    free(g);
    return NULL;
  }
  memmove(t->groups + pos + 1, t->groups + pos, (t->ngroups - pos) * sizeof *t->groups);
  t->groups[pos] = g;
  t->ngroups++;
  return g;
}

static int push_ptr(void ***v, size_t *n, size_t *cap, void *p) {
  if (*n == *cap) {
    size_t c = *cap ? 2 * *cap : 8;
    void **d = realloc(*v, c * sizeof *d);
    if (!d) return -1;
    *v = d;
    *cap = c;
  }
  (*v)[(*n)++] = p;
  return 0;
}

/* --- reading a process ----------------------------------------------------- */

static void pent_free(pent_t *e) {
  if (!e) return;
  free(e->threads);
  free(e);
}

static int cmp_thr(const void *a, const void *b) {
  const thr_t *x = a, *y = b;
  return x->tid < y->tid ? -1 : x->tid > y->tid;
}

/* Reads <pid>/task/<tid> for every thread into a new array (*out, *n sorted
 * by tid). 0, or -1 (errno) when the task directory cannot be listed.
 *
 * The main thread's status and wchan are not read again: <pid>/task/<pid> and
 * <pid> are the same task (the thread group leader) and both directories
 * render status and wchan with the same functions (proc_pid_status,
 * proc_pid_wchan in fs/proc/base.c), so *pstatus and pwchan, just read from
 * <pid>, are what they would give. stat and io differ (<pid>'s sum the
 * threads). A thread's io is only read when the thread families are written. */
static int read_threads(mw_procgroup_t *t, int dirfd, int64_t pid, const mw_proc_status_t *pstatus,
                        const char *pwchan, thr_t **out, size_t *n) {
  int fd = openat(dirfd, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return -1;
  }
  thr_t *v = NULL;
  size_t nv = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
    int64_t tid = strtoll(de->d_name, NULL, 10);
    int leader = tid == pid;
    int tfd = mw_proc_open(fd, de->d_name);
    if (tfd < 0) continue;
    mw_proc_stat_t st;
    mw_proc_status_t status;
    mw_proc_io_t io = {0, 0};
    if (mw_proc_read_stat(tfd, &t->scratch, &st) < 0 ||
        (leader ? (status = *pstatus, 0) : mw_proc_read_status(tfd, &t->scratch, &status)) < 0) {
      close(tfd);
      continue;
    }
    if (nv == cap) {
      size_t c = cap ? 2 * cap : 8;
      thr_t *nvp = realloc(v, c * sizeof *v);
      if (!nvp) {
        close(tfd);
        break;
      }
      v = nvp;
      cap = c;
    }
    thr_t *th = &v[nv++];
    memset(th, 0, sizeof *th);
    th->tid = tid;
    th->starttime = st.starttime;
    memcpy(th->name, st.comm, st.comm_len + 1);
    if (t->track_threads && mw_proc_read_io(tfd, &t->scratch, &io) < 0)
      io.read_bytes = io.write_bytes = 0;
    if (leader)
      memcpy(th->wchan, pwchan, sizeof th->wchan);
    else if (mw_proc_read_wchan(tfd, th->wchan, sizeof th->wchan) < 0)
      th->wchan[0] = '\0';
    th->total = (counts_t){(double)st.utime / USER_HZ,
                           (double)st.stime / USER_HZ,
                           io.read_bytes,
                           io.write_bytes,
                           st.majflt,
                           st.minflt,
                           status.ctx_voluntary,
                           status.ctx_nonvoluntary};
    th->state = st.state;
    close(tfd);
  }
  closedir(d);
  if (v) qsort(v, nv, sizeof *v, cmp_thr);
  *out = v;
  *n = nv;
  return 0;
}

/* Reads a process's metrics into e. is_new: first sight (the increment is
 * the whole counters when it started after the first collection, else 0).
 * 0, or -1 (errno) when the basic metrics cannot be read; *soft is set to 1
 * when some (io, fds, wchan, smaps, threads) could not. */
static int read_metrics(mw_procgroup_t *t, pent_t *e, int dirfd, const mw_proc_stat_t *st,
                        int is_new, int *soft) {
  mw_proc_status_t status;
  mw_proc_io_t io = {0, 0};
  uint64_t nfds = 0;
  *soft = 0;
  if (mw_proc_read_status(dirfd, &t->scratch, &status) < 0) return -1;
  if (mw_proc_read_io(dirfd, &t->scratch, &io) < 0) {
    io.read_bytes = io.write_bytes = 0;
    *soft = 1;
  }
  if (mw_proc_count_fds(dirfd, t->procfs, &nfds) < 0) {
    e->open_fds = -1;
    *soft = 1;
  } else {
    e->open_fds = (int64_t)nfds;
  }
  if (mw_proc_nofile_limit(dirfd, t->own_ns ? e->pid : 0, &t->scratch, &e->fd_limit) < 0) return -1;
  if (mw_proc_read_wchan(dirfd, e->wchan, sizeof e->wchan) < 0) {
    e->wchan[0] = '\0';
    *soft = 1;
  }
  e->pss = e->swap_pss = 0;
  if (t->gather_smaps) {
    mw_proc_smaps_t sm;
    if (mw_proc_read_smaps(dirfd, &t->scratch, &sm) < 0)
      *soft = 1;
    else
      e->pss = sm.pss, e->swap_pss = sm.swap_pss;
  }
  long page = sysconf(_SC_PAGESIZE);
  e->rss = st->rss * (uint64_t)(page > 0 ? page : 4096);
  e->vsize = st->vsize;
  e->swap = status.vmswap_bytes;
  e->num_threads = st->num_threads;
  e->ppid = st->ppid;
  memset(&e->states, 0, sizeof e->states);
  states_count(&e->states, st->state);
  counts_t total = {(double)st->utime / USER_HZ,
                    (double)st->stime / USER_HZ,
                    io.read_bytes,
                    io.write_bytes,
                    st->majflt,
                    st->minflt,
                    status.ctx_voluntary,
                    status.ctx_nonvoluntary};

  /* Threads: only a process with more than one (process-exporter drops a
   * single-thread list), so the task directory is skipped for most. */
  thr_t *thr = NULL;
  size_t nthr = 0;
  if (st->num_threads > 1) {
    if (read_threads(t, dirfd, e->pid, &status, e->wchan, &thr, &nthr) < 0) {
      *soft = 1;
      thr = NULL;
      nthr = 0;
    }
    if (nthr < 2) {
      free(thr);
      thr = NULL;
      nthr = 0;
    }
  }
  if (nthr) {
    total.ctx_vol = total.ctx_nonvol = 0;
    for (size_t i = 0; i < nthr; i++) {
      thr_t *th = &thr[i];
      total.ctx_vol += th->total.ctx_vol;
      total.ctx_nonvol += th->total.ctx_nonvol;
      states_count(&e->states, th->state);
      const thr_t *old = NULL;
      if (!is_new && e->threads) {
        thr_t key = {.tid = th->tid};
        old = bsearch(&key, e->threads, e->nthreads, sizeof key, cmp_thr);
        if (old && old->starttime != th->starttime) old = NULL;
      }
      memset(&th->latest, 0, sizeof th->latest);
      if (old) th->latest = counts_delta(&th->total, &old->total);
    }
  }
  free(e->threads);
  e->threads = thr;
  e->nthreads = nthr;

  if (is_new) {
    double start = (double)t->btime + (double)st->starttime / USER_HZ;
    if (start > t->first_update)
      e->latest = total;
    else
      memset(&e->latest, 0, sizeof e->latest);
  } else {
    e->latest = counts_delta(&total, &e->total);
  }
  e->total = total;
  return 0;
}

/* Reads and attributes a new process to group g; on failure the entry is
 * marked P_DROP and the failure counted. */
static void track_new(mw_procgroup_t *t, pent_t *e, int dirfd, const mw_proc_stat_t *st,
                      group_t *g) {
  int soft;
  if (read_metrics(t, e, dirfd, st, 1, &soft) < 0) {
    if (!mw_proc_vanished(errno)) t->read_errors++;
    e->state = P_DROP;
    return;
  }
  t->partial_errors += (uint64_t)soft;
  e->state = P_TRACKED;
  e->group = g;
}

/* --- collection ------------------------------------------------------------ */

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static pent_t *ent_find(pent_t **v, size_t n, int64_t pid) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (v[mid]->pid == pid) return v[mid];
    if (v[mid]->pid < pid)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

/* process-exporter's checkAncestry: the group of e's nearest tracked
 * ancestor, or NULL (e is then ignored). */
static group_t *resolve(mw_procgroup_t *t, pent_t **v, size_t n, pent_t *e, int depth) {
  if (e->state == P_TRACKED) return e->group;
  if (e->state != P_PENDING) return NULL;
  e->state = P_RESOLVING;
  group_t *g = NULL;
  pent_t *p = e->ppid >= 1 ? ent_find(v, n, e->ppid) : NULL;
  if (p && p->state == P_TRACKED)
    g = p->group;
  else if (p && p->state == P_PENDING && depth < 4096)
    g = resolve(t, v, n, p, depth + 1);
  if (g) {
    char name[24];
    snprintf(name, sizeof name, "%" PRId64, e->pid);
    int dirfd = mw_proc_open(t->rootfd, name);
    mw_proc_stat_t st;
    if (dirfd < 0 || mw_proc_read_stat(dirfd, &t->scratch, &st) < 0 ||
        st.starttime != e->starttime) {
      e->state = P_DROP;
    } else {
      track_new(t, e, dirfd, &st, g);
    }
    if (dirfd >= 0) close(dirfd);
    return e->state == P_TRACKED ? g : NULL;
  }
  e->state = t->recheck ? P_DROP : P_IGNORED;
  return NULL;
}

/* A new process: match it, and track it, keep it pending for the ancestry
 * pass, or drop it. Returns the entry or NULL (skip). */
static pent_t *handle_new(mw_procgroup_t *t, int64_t pid, int dirfd, const mw_proc_stat_t *st) {
  if (mw_proc_read_cmdline(dirfd, &t->argv) < 0) {
    if (!mw_proc_vanished(errno)) t->read_errors++;
    return NULL;
  }
  t->joined.len = 0;
  sb_put(t, &t->joined, t->argv.data, t->argv.len);
  for (size_t i = 0; i < t->joined.len; i++)
    if (t->joined.data[i] == '\0') t->joined.data[i] = ' ';
  if (t->oom) return NULL;
  cand_t c = {pid, dirfd, st, t->argv.data, t->argv.len};
  pent_t *e = calloc(1, sizeof *e);
  if (!e) {
    t->oom = 1;
    return NULL;
  }
  e->pid = pid;
  e->ppid = st->ppid;
  e->starttime = st->starttime;
  e->state = P_DROP;
  for (size_t i = 0; i < t->nm; i++) {
    if (!matcher_match(t, &t->m[i], &c)) continue;
    if (render_name(t, &t->m[i], &c) < 0) {
      pent_free(e);
      return NULL;
    }
    group_t *g = t->oom ? NULL : group_get(t, t->name.data);
    if (!g) {
      t->oom = 1;
      pent_free(e);
      return NULL;
    }
    track_new(t, e, dirfd, st, g);
    return e;
  }
  if (t->track_children) e->state = P_PENDING;
  return e;
}

/* Reads procfs and updates entries. -1 when procfs cannot be listed. */
static int update(mw_procgroup_t *t) {
  int64_t *pids = NULL;
  size_t npids = 0, cap = 0;
  pent_t **ents = NULL;
  size_t nents = 0, oi = 0;
  int rc = -1;

  /* procfs is opened afresh at every collection, as process-exporter does
   * (a remount or a vanished fake tree is then seen). */
  int nfd = open(t->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (nfd < 0) return -1;
  if (t->rootfd >= 0) close(t->rootfd);
  t->rootfd = nfd;
  t->procfs = mw_proc_is_procfs(nfd);
  char self[32], pid[24];
  ssize_t sl = readlinkat(nfd, "self", self, sizeof self - 1);
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  t->own_ns =
      t->procfs && sl > 0 && (size_t)sl == strlen(pid) && memcmp(self, pid, (size_t)sl) == 0;
  int lfd = openat(t->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
  if (!d) {
    if (lfd >= 0) close(lfd);
    return -1;
  }
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    const char *s = de->d_name;
    if (*s < '1' || *s > '9') continue;
    int64_t pid = 0;
    for (; *s >= '0' && *s <= '9' && pid < INT32_MAX; s++)
      pid = pid * 10 + (*s - '0');
    if (*s) continue;
    if (npids == cap) {
      cap = cap ? 2 * cap : 1024;
      int64_t *p = realloc(pids, cap * sizeof *p);
      if (!p) {
        t->oom = 1;
        closedir(d);
        goto done;
      }
      pids = p;
    }
    pids[npids++] = pid;
  }
  closedir(d);
  if (npids) qsort(pids, npids, sizeof *pids, cmp_i64);
  ents = malloc((npids ? npids : 1) * sizeof *ents);
  if (!ents) {
    t->oom = 1;
    goto done;
  }

  for (size_t i = 0; i < npids && !t->oom; i++) {
    int64_t pid = pids[i];
    while (oi < t->nents && t->ents[oi]->pid < pid)
      pent_free(t->ents[oi++]); /* gone */
    pent_t *old = oi < t->nents && t->ents[oi]->pid == pid ? t->ents[oi++] : NULL;
    char name[24];
    snprintf(name, sizeof name, "%" PRId64, pid);
    int dirfd = mw_proc_open(t->rootfd, name);
    mw_proc_stat_t st;
    if (dirfd < 0 || mw_proc_read_stat(dirfd, &t->scratch, &st) < 0) {
      if (dirfd >= 0) close(dirfd);
      pent_free(old);
      continue;
    }
    pent_t *e = NULL;
    if (old && old->starttime == st.starttime) {
      if (old->state == P_TRACKED) {
        int soft;
        if (read_metrics(t, old, dirfd, &st, 0, &soft) < 0) {
          if (!mw_proc_vanished(errno)) t->read_errors++;
          pent_free(old);
        } else {
          t->partial_errors += (uint64_t)soft;
          e = old;
        }
      } else {
        e = old; /* ignored */
      }
    } else {
      pent_free(old); /* gone, and its pid reused */
      e = handle_new(t, pid, dirfd, &st);
    }
    close(dirfd);
    if (e && e->state == P_DROP) {
      pent_free(e);
      e = NULL;
    }
    if (e) ents[nents++] = e;
  }
  while (oi < t->nents)
    pent_free(t->ents[oi++]);
  free(t->ents);
  t->ents = ents;
  t->nents = nents;
  ents = NULL;

  if (t->track_children)
    for (size_t i = 0; i < t->nents; i++)
      if (t->ents[i]->state == P_PENDING) resolve(t, t->ents, t->nents, t->ents[i], 0);
  size_t k = 0;
  for (size_t i = 0; i < t->nents; i++) {
    pent_t *e = t->ents[i];
    if (e->state == P_RESOLVING) e->state = t->recheck ? P_DROP : P_IGNORED;
    if (e->state == P_PENDING || e->state == P_DROP)
      pent_free(e);
    else
      t->ents[k++] = e;
  }
  t->nents = k;
  rc = 0;
done:
  free(ents);
  free(pids);
  return rc;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_thr_name(const void *a, const void *b) {
  return strcmp((*(const thr_t *const *)a)->name, (*(const thr_t *const *)b)->name);
}

/* Aggregates this collection's thread updates of g by name and adds the
 * history, as process-exporter's Grouper.threads (names gone are forgotten). */
static void group_threads(mw_procgroup_t *t, group_t *g) {
  tagg_t *agg = NULL;
  size_t n = 0;
  if (g->ntupd) {
    qsort(g->tupd, g->ntupd, sizeof *g->tupd, cmp_thr_name);
    agg = calloc(g->ntupd, sizeof *agg);
    if (!agg) {
      t->oom = 1;
      return;
    }
    for (size_t i = 0; i < g->ntupd; i++) {
      const thr_t *th = g->tupd[i];
      if (n == 0 || strcmp(agg[n - 1].name, th->name) != 0) {
        if (!(agg[n].name = strdup(th->name))) {
          t->oom = 1;
          break;
        }
        n++;
      }
      agg[n - 1].count++;
      counts_add(&agg[n - 1].c, &th->latest);
    }
    for (size_t i = 0, j = 0; i < n && j < g->nthist;) { /* both sorted by name */
      int c = strcmp(agg[i].name, g->thist[j].name);
      if (c == 0) counts_add(&agg[i].c, &g->thist[j].c);
      if (c <= 0) i++;
      if (c >= 0) j++;
    }
  }
  for (size_t i = 0; i < g->nthist; i++)
    free(g->thist[i].name);
  free(g->thist);
  g->thist = agg;
  g->nthist = n;
}

/* Aggregates the tracked entries into groups. */
static void aggregate(mw_procgroup_t *t) {
  for (size_t i = 0; i < t->ngroups; i++) {
    group_t *g = t->groups[i];
    g->active = 0;
    g->procs = g->open_fds = g->num_threads = 0;
    g->rss = g->vsize = g->swap = g->pss = g->swap_pss = 0;
    g->worst = 0;
    g->oldest_ticks = 0;
    memset(&g->states, 0, sizeof g->states);
    g->ntupd = g->nwch = 0;
  }
  for (size_t i = 0; i < t->nents; i++) {
    pent_t *e = t->ents[i];
    if (e->state != P_TRACKED) continue;
    group_t *g = e->group;
    g->active = g->ever = 1;
    g->procs++;
    g->rss += e->rss;
    g->vsize += e->vsize;
    g->swap += e->swap;
    g->pss += e->pss;
    g->swap_pss += e->swap_pss;
    if (e->open_fds != -1) g->open_fds += (uint64_t)e->open_fds;
    double ratio = (double)e->open_fds / (double)e->fd_limit;
    if (g->worst < ratio) g->worst = ratio;
    g->num_threads += e->num_threads;
    counts_add(&g->accum, &e->latest);
    g->states.running += e->states.running;
    g->states.sleeping += e->states.sleeping;
    g->states.waiting += e->states.waiting;
    g->states.zombie += e->states.zombie;
    g->states.other += e->states.other;
    uint64_t start = t->btime * USER_HZ + e->starttime;
    if (g->oldest_ticks == 0 || start < g->oldest_ticks) g->oldest_ticks = start;
    if (e->wchan[0] && push_ptr((void ***)&g->wch, &g->nwch, &g->cap_wch, e->wchan) < 0) t->oom = 1;
    for (size_t k = 0; k < e->nthreads; k++) {
      thr_t *th = &e->threads[k];
      if (push_ptr((void ***)&g->tupd, &g->ntupd, &g->cap_tupd, th) < 0) t->oom = 1;
      if (th->wchan[0] && push_ptr((void ***)&g->wch, &g->nwch, &g->cap_wch, th->wchan) < 0)
        t->oom = 1;
    }
  }
  size_t k = 0;
  for (size_t i = 0; i < t->ngroups; i++) {
    group_t *g = t->groups[i];
    if (g->active) {
      group_threads(t, g);
      if (g->nwch) qsort(g->wch, g->nwch, sizeof *g->wch, cmp_str);
    }
    if (!g->ever || (!g->active && t->remove_empty)) {
      group_free(g);
      continue;
    }
    t->groups[k++] = g;
  }
  t->ngroups = k;
}

/* --- exposition ------------------------------------------------------------ */

enum {
  F_CTX,
  F_CPU,
  F_MAJ,
  F_MEM,
  F_MIN,
  F_NPROCS,
  F_NTHR,
  F_START,
  F_FDS,
  F_READ,
  F_STATES,
  F_TCTX,
  F_TCOUNT,
  F_TCPU,
  F_TIO,
  F_TMAJ,
  F_TMIN,
  F_WCHAN,
  F_WORST,
  F_WRITE,
  F_SERR,
  F_PERR,
  F_RERR,
  F_COUNT
};

static const struct {
  const char *name, *help;
  mw_metrics_type_t type;
  const char *labels[3];
} families[F_COUNT] = {
    {"namedprocess_namegroup_context_switches_total",
     "Context switches",
     MW_METRICS_COUNTER,
     {"groupname", "ctxswitchtype"}},
    {"namedprocess_namegroup_cpu_seconds_total",
     "Cpu user usage in seconds",
     MW_METRICS_COUNTER,
     {"groupname", "mode"}},
    {"namedprocess_namegroup_major_page_faults_total",
     "Major page faults",
     MW_METRICS_COUNTER,
     {"groupname"}},
    {"namedprocess_namegroup_memory_bytes",
     "number of bytes of memory in use",
     MW_METRICS_GAUGE,
     {"groupname", "memtype"}},
    {"namedprocess_namegroup_minor_page_faults_total",
     "Minor page faults",
     MW_METRICS_COUNTER,
     {"groupname"}},
    {"namedprocess_namegroup_num_procs",
     "number of processes in this group",
     MW_METRICS_GAUGE,
     {"groupname"}},
    {"namedprocess_namegroup_num_threads", "Number of threads", MW_METRICS_GAUGE, {"groupname"}},
    {"namedprocess_namegroup_oldest_start_time_seconds",
     "start time in seconds since 1970/01/01 of oldest process in group",
     MW_METRICS_GAUGE,
     {"groupname"}},
    {"namedprocess_namegroup_open_filedesc",
     "number of open file descriptors for this group",
     MW_METRICS_GAUGE,
     {"groupname"}},
    {"namedprocess_namegroup_read_bytes_total",
     "number of bytes read by this group",
     MW_METRICS_COUNTER,
     {"groupname"}},
    {"namedprocess_namegroup_states",
     "Number of processes in states Running, Sleeping, Waiting, Zombie, or Other",
     MW_METRICS_GAUGE,
     {"groupname", "state"}},
    {"namedprocess_namegroup_thread_context_switches_total",
     "Context switches for these threads",
     MW_METRICS_COUNTER,
     {"groupname", "threadname", "ctxswitchtype"}},
    {"namedprocess_namegroup_thread_count",
     "Number of threads in this group with same threadname",
     MW_METRICS_GAUGE,
     {"groupname", "threadname"}},
    {"namedprocess_namegroup_thread_cpu_seconds_total",
     "Cpu user/system usage in seconds",
     MW_METRICS_COUNTER,
     {"groupname", "threadname", "mode"}},
    {"namedprocess_namegroup_thread_io_bytes_total",
     "number of bytes read/written by these threads",
     MW_METRICS_COUNTER,
     {"groupname", "threadname", "iomode"}},
    {"namedprocess_namegroup_thread_major_page_faults_total",
     "Major page faults for these threads",
     MW_METRICS_COUNTER,
     {"groupname", "threadname"}},
    {"namedprocess_namegroup_thread_minor_page_faults_total",
     "Minor page faults for these threads",
     MW_METRICS_COUNTER,
     {"groupname", "threadname"}},
    {"namedprocess_namegroup_threads_wchan",
     "Number of threads in this group waiting on each wchan",
     MW_METRICS_GAUGE,
     {"groupname", "wchan"}},
    {"namedprocess_namegroup_worst_fd_ratio",
     "the worst (closest to 1) ratio between open fds and max fds among all procs in this group",
     MW_METRICS_GAUGE,
     {"groupname"}},
    {"namedprocess_namegroup_write_bytes_total",
     "number of bytes written by this group",
     MW_METRICS_COUNTER,
     {"groupname"}},
    {"namedprocess_scrape_errors",
     "general scrape errors: no proc metrics collected during a cycle",
     MW_METRICS_COUNTER,
     {NULL}},
    {"namedprocess_scrape_partial_errors",
     "incremented each time a tracked proc's metrics collection fails partially, e.g. unreadable "
     "I/O stats",
     MW_METRICS_COUNTER,
     {NULL}},
    {"namedprocess_scrape_procread_errors",
     "incremented each time a proc's metrics collection fails",
     MW_METRICS_COUNTER,
     {NULL}},
};

typedef struct {
  mw_metrics_t *reg;
  int32_t fam[F_COUNT];
  int failed;
} emitter_t;

/* Sets the series of family f with label values a, b, c (NULL-terminated)
 * to v. A value the registry refuses (invalid UTF-8 in a process or thread
 * name) drops that one series. */
static void emit(emitter_t *em, int f, double v, const char *a, const char *b, const char *c) {
  mw_metrics_str_t vals[3];
  size_t n = 0;
  const char *in[3] = {a, b, c};
  for (size_t i = 0; i < 3 && in[i]; i++)
    vals[n++] = (mw_metrics_str_t){in[i], strlen(in[i])};
  int32_t h = mw_metrics_child_get(em->reg, em->fam[f], vals, n, NULL, 0);
  if (h >= 0) mw_metrics_set(em->reg, h, v);
}

static void emit_group(mw_procgroup_t *t, emitter_t *em, const group_t *g) {
  const char *n = g->name;
  const counts_t *c = &g->accum;
  emit(em, F_NPROCS, (double)g->procs, n, NULL, NULL);
  emit(em, F_MEM, (double)g->rss, n, "resident", NULL);
  emit(em, F_MEM, (double)g->vsize, n, "virtual", NULL);
  emit(em, F_MEM, (double)g->swap, n, "swapped", NULL);
  if (t->gather_smaps) {
    emit(em, F_MEM, (double)g->pss, n, "proportionalResident", NULL);
    emit(em, F_MEM, (double)g->swap_pss, n, "proportionalSwapped", NULL);
  }
  emit(em, F_START, g->active ? (double)(int64_t)(g->oldest_ticks / USER_HZ) : GO_ZERO_TIME_UNIX, n,
       NULL, NULL);
  emit(em, F_FDS, (double)g->open_fds, n, NULL, NULL);
  emit(em, F_WORST, g->worst, n, NULL, NULL);
  emit(em, F_CPU, c->user, n, "user", NULL);
  emit(em, F_CPU, c->system, n, "system", NULL);
  emit(em, F_READ, (double)c->read_bytes, n, NULL, NULL);
  emit(em, F_WRITE, (double)c->write_bytes, n, NULL, NULL);
  emit(em, F_MAJ, (double)c->majflt, n, NULL, NULL);
  emit(em, F_MIN, (double)c->minflt, n, NULL, NULL);
  emit(em, F_CTX, (double)c->ctx_vol, n, "voluntary", NULL);
  emit(em, F_CTX, (double)c->ctx_nonvol, n, "nonvoluntary", NULL);
  emit(em, F_NTHR, (double)g->num_threads, n, NULL, NULL);
  emit(em, F_STATES, (double)g->states.running, n, "Running", NULL);
  emit(em, F_STATES, (double)g->states.sleeping, n, "Sleeping", NULL);
  emit(em, F_STATES, (double)g->states.waiting, n, "Waiting", NULL);
  emit(em, F_STATES, (double)g->states.zombie, n, "Zombie", NULL);
  emit(em, F_STATES, (double)g->states.other, n, "Other", NULL);
  if (!g->active) return;
  for (size_t i = 0; i < g->nwch;) {
    size_t j = i;
    while (j < g->nwch && strcmp(g->wch[j], g->wch[i]) == 0)
      j++;
    emit(em, F_WCHAN, (double)(j - i), n, g->wch[i], NULL);
    i = j;
  }
  if (!t->track_threads) return;
  for (size_t i = 0; i < g->nthist; i++) {
    const tagg_t *a = &g->thist[i];
    emit(em, F_TCOUNT, (double)a->count, n, a->name, NULL);
    emit(em, F_TCPU, a->c.user, n, a->name, "user");
    emit(em, F_TCPU, a->c.system, n, a->name, "system");
    emit(em, F_TIO, (double)a->c.read_bytes, n, a->name, "read");
    emit(em, F_TIO, (double)a->c.write_bytes, n, a->name, "write");
    emit(em, F_TMAJ, (double)a->c.majflt, n, a->name, NULL);
    emit(em, F_TMIN, (double)a->c.minflt, n, a->name, NULL);
    emit(em, F_TCTX, (double)a->c.ctx_vol, n, a->name, "voluntary");
    emit(em, F_TCTX, (double)a->c.ctx_nonvol, n, a->name, "nonvoluntary");
  }
}

static int write_exposition(mw_procgroup_t *t, int ok, int format, mw_expose_buf_t *buf, char *err,
                            size_t errlen) {
  emitter_t em = {0};
  int rc = -1;
  em.reg = mw_metrics_create();
  if (!em.reg) {
    mw_seterr(err, errlen, "out of memory");
    return -1;
  }
  for (int f = 0; f < F_COUNT; f++) {
    size_t nl = 0;
    while (nl < 3 && families[f].labels[nl])
      nl++;
    em.fam[f] = mw_metrics_family_add(em.reg, families[f].name, families[f].help, families[f].type,
                                      families[f].labels, nl, NULL, 0, err, errlen);
    if (em.fam[f] < 0) goto done;
  }
  if (ok)
    for (size_t i = 0; i < t->ngroups; i++)
      emit_group(t, &em, t->groups[i]);
  uint64_t scalars[3] = {t->scrape_errors, t->partial_errors, t->read_errors};
  for (int f = F_SERR; f <= F_RERR; f++) {
    int32_t h = mw_metrics_child_get(em.reg, em.fam[f], NULL, 0, err, errlen);
    if (h < 0) goto done;
    mw_metrics_set(em.reg, h, (double)scalars[f - F_SERR]);
  }
  rc = mw_expose_write(em.reg, format, buf, err, errlen);
done:
  mw_metrics_free(em.reg);
  return rc;
}

/* --- public ---------------------------------------------------------------- */

void mw_procgroup_free(mw_procgroup_t *t) {
  if (!t) return;
  for (size_t i = 0; i < t->nm; i++)
    matcher_clear(&t->m[i]);
  free(t->m);
  for (size_t i = 0; i < t->nents; i++)
    pent_free(t->ents[i]);
  free(t->ents);
  for (size_t i = 0; i < t->ngroups; i++)
    group_free(t->groups[i]);
  free(t->groups);
  for (size_t i = 0; i < t->nusers; i++)
    free(t->users[i].name);
  free(t->users);
  free(t->caps);
  mw_proc_buf_free(&t->scratch);
  mw_proc_buf_free(&t->argv);
  mw_proc_buf_free(&t->joined);
  mw_proc_buf_free(&t->name);
  mw_proc_buf_free(&t->aux);
  if (t->rootfd >= 0) close(t->rootfd);
  free(t->root);
  free(t);
}

int mw_procgroup_collect(mw_procgroup_t *t, int format, mw_expose_buf_t *buf, char *err,
                         size_t errlen) {
  if (!t || !buf) {
    mw_seterr(err, errlen, "procgroup: no tracker or buffer");
    return -1;
  }
  int ok = update(t) == 0;
  if (!ok && !t->oom) t->scrape_errors++;
  if (ok) aggregate(t);
  if (t->oom) {
    t->oom = 0;
    mw_seterr(err, errlen, "procgroup: out of memory");
    return -1;
  }
  return write_exposition(t, ok, format, buf, err, errlen);
}

size_t mw_procgroup_tracked(const mw_procgroup_t *t) {
  size_t n = 0;
  for (size_t i = 0; t && i < t->nents; i++)
    n += t->ents[i]->state == P_TRACKED;
  return n;
}

int mw_procgroup_create(const mw_procgroup_opts_t *opts, const mw_procgroup_matcher_t *matchers,
                        size_t n, mw_procgroup_t **out, char *err, size_t errlen) {
  mw_procgroup_t *t = NULL;
  mw_expose_buf_t first = {0};
  *out = NULL;
  if (!opts || (n && !matchers)) {
    mw_seterr(err, errlen, "procgroup: no options or matchers");
    return -1;
  }
  t = calloc(1, sizeof *t);
  if (!t) goto oom;
  t->rootfd = -1;
  t->root = strdup(opts->procfs_path && opts->procfs_path[0] ? opts->procfs_path : "/proc");
  if (!t->root) goto oom;
  t->track_children = opts->track_children != 0;
  t->track_threads = opts->track_threads != 0;
  t->gather_smaps = opts->gather_smaps != 0;
  t->recheck = opts->recheck_on_scrape != 0;
  t->remove_empty = opts->remove_empty_groups != 0;
  t->m = calloc(n ? n : 1, sizeof *t->m);
  if (!t->m) goto oom;
  for (size_t i = 0; i < n; i++) {
    t->nm = i + 1;
    if (matcher_init(&t->m[i], &matchers[i], i + 1, err, errlen) < 0) goto fail;
  }
  t->rootfd = open(t->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (t->rootfd < 0 || mw_proc_read_btime(t->rootfd, &t->scratch, &t->btime) < 0) {
    mw_seterr(err, errlen, "%s: %s", t->root, strerror(errno));
    goto fail;
  }
  t->first_update = wall_now();
  if (mw_procgroup_collect(t, MW_EXPOSE_TEXT, &first, err, errlen) < 0) goto fail;
  mw_expose_buf_free(&first);
  *out = t;
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
fail:
  mw_expose_buf_free(&first);
  mw_procgroup_free(t);
  return -1;
}

/* --- FFI ------------------------------------------------------------------- */

int mw_ffi_procgroup_new(const mw_ffi_procgroup_opts_t *opts,
                         const mw_ffi_procgroup_matcher_t *matchers, uint32_t n,
                         mw_procgroup_t **out, char *err, size_t errlen) {
  return mw_procgroup_create(opts, matchers, n, out, err, errlen);
}

void mw_ffi_procgroup_free(mw_procgroup_t *t) { mw_procgroup_free(t); }

int mw_ffi_procgroup_template_check(const char *tpl, char *err, size_t errlen) {
  seg_t *segs = NULL;
  size_t n = 0;
  if (template_parse(tpl ? tpl : "", &segs, &n, err, errlen) < 0) return -1;
  segs_free(segs, n);
  return 0;
}

int mw_ffi_procgroup_collect(mw_procgroup_t *t, int format, int gzip, char **out, size_t *len,
                             char *err, size_t errlen) {
  mw_expose_buf_t text = {0};
  if (!out || !len) {
    mw_seterr(err, errlen, "procgroup: no output pointers");
    return -1;
  }
  *out = NULL;
  *len = 0;
  if (mw_procgroup_collect(t, format, &text, err, errlen) < 0) {
    mw_expose_buf_free(&text);
    return -1;
  }
  return mw_expose_finish(&text, gzip, out, len, err, errlen);
}
