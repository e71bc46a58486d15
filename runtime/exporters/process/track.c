/* exporters/process/track.c: one collection of the tracker: list <procfs>/<pid> (sorted by
 * pid), merge-join with the entries of the previous collection (also sorted by pid), read a
 * known tracked process's metrics (and its threads'), skip an ignored one after reading its
 * stat, and run the matchers on a new one; attribute unmatched new processes to a matched
 * ancestor (track_children); then accumulate the entries into their groups, so that the
 * groups' counters never go back while processes exit. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exporters/process/tracker.h"

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

/* --- groups ---------------------------------------------------------------- */

void mw_procgroup_group_free(group_t *g) {
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
  if (mw_grow((void **)&t->groups, &t->cap_groups, t->ngroups + 1, sizeof *t->groups) < 0)
    return NULL;
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
  if (mw_grow((void **)v, cap, *n + 1, sizeof **v) < 0) return -1;
  (*v)[(*n)++] = p;
  return 0;
}

/* --- reading a process ----------------------------------------------------- */

void mw_procgroup_pent_free(pent_t *e) {
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
    if (!mw_procgroup_matcher_match(t, &t->m[i], &c)) continue;
    if (mw_procgroup_render_name(t, &t->m[i], &c) < 0) {
      mw_procgroup_pent_free(e);
      return NULL;
    }
    group_t *g = t->oom ? NULL : group_get(t, t->name.data);
    if (!g) {
      t->oom = 1;
      mw_procgroup_pent_free(e);
      return NULL;
    }
    track_new(t, e, dirfd, st, g);
    return e;
  }
  if (t->track_children) e->state = P_PENDING;
  return e;
}

/* Reads procfs and updates entries. -1 when procfs cannot be listed. */
int mw_procgroup_update(mw_procgroup_t *t) {
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
    if (mw_grow((void **)&pids, &cap, npids + 1, sizeof *pids) < 0) {
      t->oom = 1;
      closedir(d);
      goto done;
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
      mw_procgroup_pent_free(t->ents[oi++]); /* gone */
    pent_t *old = oi < t->nents && t->ents[oi]->pid == pid ? t->ents[oi++] : NULL;
    char name[24];
    snprintf(name, sizeof name, "%" PRId64, pid);
    int dirfd = mw_proc_open(t->rootfd, name);
    mw_proc_stat_t st;
    if (dirfd < 0 || mw_proc_read_stat(dirfd, &t->scratch, &st) < 0) {
      if (dirfd >= 0) close(dirfd);
      mw_procgroup_pent_free(old);
      continue;
    }
    pent_t *e = NULL;
    if (old && old->starttime == st.starttime) {
      if (old->state == P_TRACKED) {
        int soft;
        if (read_metrics(t, old, dirfd, &st, 0, &soft) < 0) {
          if (!mw_proc_vanished(errno)) t->read_errors++;
          mw_procgroup_pent_free(old);
        } else {
          t->partial_errors += (uint64_t)soft;
          e = old;
        }
      } else {
        e = old; /* ignored */
      }
    } else {
      mw_procgroup_pent_free(old); /* gone, and its pid reused */
      e = handle_new(t, pid, dirfd, &st);
    }
    close(dirfd);
    if (e && e->state == P_DROP) {
      mw_procgroup_pent_free(e);
      e = NULL;
    }
    if (e) ents[nents++] = e;
  }
  while (oi < t->nents)
    mw_procgroup_pent_free(t->ents[oi++]);
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
      mw_procgroup_pent_free(e);
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
void mw_procgroup_aggregate(mw_procgroup_t *t) {
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
      mw_procgroup_group_free(g);
      continue;
    }
    t->groups[k++] = g;
  }
  t->ngroups = k;
}
