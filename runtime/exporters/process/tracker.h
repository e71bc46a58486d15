/* exporters/process/tracker.h: the process tracker's state, shared by the files that
 * implement exporters/process/group.h (not a public header):
 *   group.c   the tracker's life: create, collect (update, aggregate, write), free; the FFI
 *   match.c   matchers and name templates: which processes a matcher takes, the group name
 *   track.c   one collection: the procfs walk, per-process and per-thread reads, children
 *             attributed to a matched ancestor, per-group accumulation
 *   expose.c  the namedprocess_* families written from the groups */
#ifndef MW_PROCGROUP_TRACKER_H
#define MW_PROCGROUP_TRACKER_H
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/grow.h"
#include "exporters/process/group.h"
#include "exporters/process/proc.h"

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

/* What a new process offers to the matchers. */
typedef struct {
  int64_t pid;
  int dirfd;
  const mw_proc_stat_t *st;
  const char *argv; /* NUL-separated, argv_len bytes (t->argv) */
  size_t argv_len;
} cand_t;

/* Appends to a string builder (a mw_proc_buf_t); sets t->oom on failure. */
static inline void sb_put(mw_procgroup_t *t, mw_proc_buf_t *b, const char *s, size_t n) {
  if (t->oom) return;
  if (n >= SIZE_MAX - b->len || mw_grow((void **)&b->data, &b->cap, b->len + n + 1, 1) < 0) {
    t->oom = 1;
    return;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

/* --- match.c --- */

/* Parses a name template (see group.h) into *out, *nout segments (free with
 * mw_procgroup_segs_free). 0, or -1 with err. */
int mw_procgroup_template_parse(const char *tpl, seg_t **out, size_t *nout, char *err,
                                size_t errlen);
void mw_procgroup_segs_free(seg_t *segs, size_t n);
/* Compiles matcher idx (1-based, for messages) from src into m. 0, or -1 with err. */
int mw_procgroup_matcher_init(matcher_t *m, const mw_procgroup_matcher_t *src, size_t idx,
                              char *err, size_t errlen);
void mw_procgroup_matcher_clear(matcher_t *m);
/* 1 if m takes the candidate (its captures are left in t->caps), else 0. */
int mw_procgroup_matcher_match(mw_procgroup_t *t, const matcher_t *m, const cand_t *c);
/* Renders m's name template for the candidate into t->name. 0, or -1. */
int mw_procgroup_render_name(mw_procgroup_t *t, const matcher_t *m, const cand_t *c);

/* --- track.c --- */

/* Reads procfs and updates the tracked entries. 0, or -1 when procfs cannot be listed. */
int mw_procgroup_update(mw_procgroup_t *t);
/* Aggregates the tracked entries into groups (and forgets the groups to forget). */
void mw_procgroup_aggregate(mw_procgroup_t *t);
void mw_procgroup_group_free(group_t *g);
void mw_procgroup_pent_free(pent_t *e);

/* --- expose.c --- */

/* Appends the namedprocess_* exposition in format to buf: the groups' families when ok,
 * the scrape error counters always. 0, or -1 with err. */
int mw_procgroup_write(mw_procgroup_t *t, int ok, int format, mw_expose_buf_t *buf, char *err,
                       size_t errlen);

#endif
