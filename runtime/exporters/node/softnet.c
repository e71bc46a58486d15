/* exporters/node/softnet.c: the softnet collector (node_exporter collector/softnet_linux.go):
 * processed, dropped and time-squeezed packets per line of
 * <procfs>/net/softnet_stat (hex; cpu label = line index, as procfs). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exporters/node/node.h"

int mw_node_collect_softnet(mw_node_scrape_t *s) {
  const char *data = mw_node_read(s, mw_node_proc_path(s, "net/softnet_stat"), NULL);
  if (!data) return mw_node_fail(s, "could not get softnet statistics: %s", strerror(errno));
  char *copy = strdup(data);
  if (!copy) return mw_node_fail(s, "out of memory");
  int32_t fam[3] = {
      mw_node_family(s, "node_softnet_processed_total", "Number of processed packets",
                     MW_METRICS_COUNTER, "cpu"),
      mw_node_family(s, "node_softnet_dropped_total", "Number of dropped packets",
                     MW_METRICS_COUNTER, "cpu"),
      mw_node_family(s, "node_softnet_times_squeezed_total",
                     "Number of times processing packets ran out of quota", MW_METRICS_COUNTER,
                     "cpu"),
  };
  /* procfs parses every line before anything is exported */
  size_t cpu = 0;
  int rc = 0;
  for (int pass = 0; pass < 2 && rc == 0; pass++) {
    char *work = pass ? copy : strdup(copy);
    if (!work) {
      rc = mw_node_fail(s, "out of memory");
      break;
    }
    cpu = 0;
    for (char *line = work; line && *line;) {
      char *nl = strchr(line, '\n');
      if (nl) *nl = '\0';
      char *f[16];
      size_t nf = mw_node_fields(line, f, 16);
      uint64_t v[3];
      if (nf < 9) {
        rc = mw_node_fail(s, "%zu columns were detected, but at least 9 were expected", nf);
        break;
      }
      for (int k = 0; k < 3; k++)
        if (mw_node_parse_u64(f[k], 16, &v[k]) < 0 || v[k] > UINT32_MAX)
          rc = mw_node_fail(s, "could not parse %s", f[k]);
      if (rc < 0) break;
      if (pass) {
        char c[24];
        snprintf(c, sizeof c, "%zu", cpu);
        for (int k = 0; k < 3; k++)
          mw_node_put(s, fam[k], (double)v[k], c);
      }
      cpu++;
      line = nl ? nl + 1 : NULL;
    }
    if (!pass) free(work);
  }
  free(copy);
  return rc;
}
