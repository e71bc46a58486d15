/* exporters/process/expose.c: the namedprocess_* families, written from the groups through
 * a short-lived metrics registry (runtime/exposition/registry.h), so that the exposition is
 * exposition/write.c's, byte for byte, as process-exporter's client_golang writes it. */
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "exporters/process/tracker.h"
#include "exposition/registry.h"

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

int mw_procgroup_write(mw_procgroup_t *t, int ok, int format, mw_expose_buf_t *buf, char *err,
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
