/* exporters/node/stat.c: the stat collector (node_exporter collector/stat_linux.go):
 * interrupts, context switches, forks, boot time and running/blocked
 * processes from /proc/stat; softirq vectors with stat_softirq. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "exporters/node/node.h"

int mw_node_collect_stat(mw_node_scrape_t *s) {
  static const char *const vectors[10] = {"hi",           "timer",   "net_tx", "net_rx",  "block",
                                          "block_iopoll", "tasklet", "sched",  "hrtimer", "rcu"};
  uint64_t intr = 0, ctxt = 0, forks = 0, btime = 0, running = 0, blocked = 0, si[10] = {0};
  const char *data = mw_node_read(s, mw_node_proc_path(s, "stat"), NULL);
  if (!data) return mw_node_fail(s, "%s/stat: %s", s->node->procfs, strerror(errno));
  for (const char *line = data; line && *line;) {
    const char *nl = strchr(line, '\n');
    size_t n = nl ? (size_t)(nl - line) : strlen(line);
    char buf[512], *f[14];
    if (n >= sizeof buf) n = sizeof buf - 1; /* only the first fields matter */
    memcpy(buf, line, n);
    buf[n] = '\0';
    size_t nf = mw_node_fields(buf, f, 14);
    line = nl ? nl + 1 : NULL;
    if (nf < 2) continue;
    uint64_t *dst = NULL;
    if (strcmp(f[0], "btime") == 0)
      dst = &btime;
    else if (strcmp(f[0], "intr") == 0)
      dst = &intr;
    else if (strcmp(f[0], "ctxt") == 0)
      dst = &ctxt;
    else if (strcmp(f[0], "processes") == 0)
      dst = &forks;
    else if (strcmp(f[0], "procs_running") == 0)
      dst = &running;
    else if (strcmp(f[0], "procs_blocked") == 0)
      dst = &blocked;
    else if (strcmp(f[0], "softirq") == 0) {
      for (size_t k = 2; k < nf && k < 12; k++)
        if (mw_node_parse_u64(f[k], 10, &si[k - 2]) < 0)
          return mw_node_fail(s, "couldn't parse %s (softirq)", f[k]);
      continue;
    }
    if (dst && mw_node_parse_u64(f[1], 10, dst) < 0)
      return mw_node_fail(s, "couldn't parse %s (%s)", f[1], f[0]);
  }
  mw_node_put1(s, "node_intr_total", "Total number of interrupts serviced.", MW_METRICS_COUNTER,
               (double)intr);
  mw_node_put1(s, "node_context_switches_total", "Total number of context switches.",
               MW_METRICS_COUNTER, (double)ctxt);
  mw_node_put1(s, "node_forks_total", "Total number of forks.", MW_METRICS_COUNTER, (double)forks);
  mw_node_put1(s, "node_boot_time_seconds", "Node boot time, in unixtime.", MW_METRICS_GAUGE,
               (double)btime);
  mw_node_put1(s, "node_procs_running", "Number of processes in runnable state.", MW_METRICS_GAUGE,
               (double)running);
  mw_node_put1(s, "node_procs_blocked", "Number of processes blocked waiting for I/O to complete.",
               MW_METRICS_GAUGE, (double)blocked);
  if (s->node->stat_softirq) {
    int32_t f = mw_node_family(s, "node_softirqs_total", "Number of softirq calls.",
                               MW_METRICS_COUNTER, "vector");
    for (int k = 0; k < 10; k++)
      mw_node_put(s, f, (double)si[k], vectors[k]);
  }
  return 0;
}
