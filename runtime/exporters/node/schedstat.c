/* exporters/node/schedstat.c: the schedstat collector (node_exporter collector/schedstat_linux.go):
 * per-CPU running/waiting seconds and timeslices from <procfs>/schedstat.
 * A missing file (CONFIG_SCHEDSTATS off) is "no data" (success 0). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "exporters/node/node.h"

int mw_node_collect_schedstat(mw_node_scrape_t *s) {
  const char *data = mw_node_read(s, mw_node_proc_path(s, "schedstat"), NULL);
  if (!data) {
    if (errno == ENOENT) s->nodata = 1;
    return mw_node_fail(s, "%s/schedstat: %s", s->node->procfs, strerror(errno));
  }
  char *copy = strdup(data);
  if (!copy) return mw_node_fail(s, "out of memory");
  int32_t run =
      mw_node_family(s, "node_schedstat_running_seconds_total",
                     "Number of seconds CPU spent running a process.", MW_METRICS_COUNTER, "cpu");
  int32_t wait = mw_node_family(s, "node_schedstat_waiting_seconds_total",
                                "Number of seconds spent by processing waiting for this CPU.",
                                MW_METRICS_COUNTER, "cpu");
  int32_t slices =
      mw_node_family(s, "node_schedstat_timeslices_total", "Number of timeslices executed by CPU.",
                     MW_METRICS_COUNTER, "cpu");
  for (char *line = copy; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    char *f[11];
    uint64_t v[10];
    size_t nf = mw_node_fields(line, f, 11);
    int ok =
        nf >= 10 && strncmp(f[0], "cpu", 3) == 0 && mw_node_parse_u64(f[0] + 3, 10, &v[0]) == 0;
    for (size_t k = 1; ok && k < 10; k++)
      ok = mw_node_parse_u64(f[k], 10, &v[k]) == 0;
    if (ok) {
      mw_node_put(s, run, (double)v[7] / 1e9, f[0] + 3);
      mw_node_put(s, wait, (double)v[8] / 1e9, f[0] + 3);
      mw_node_put(s, slices, (double)v[9], f[0] + 3);
    }
    line = nl ? nl + 1 : NULL;
  }
  free(copy);
  return 0;
}
