/* exporters/node/pressure.c: the pressure collector (node_exporter collector/pressure_linux.go):
 * PSI totals (microseconds) of cpu, io and memory as seconds. A missing
 * /proc/pressure (kernel < 4.20 or psi=0) is "no data" (success 0). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "exporters/node/node.h"

/* The total= of the line starting with kind ("some"/"full"); 0 or -1. */
static int psi_total(const char *data, const char *kind, uint64_t *out) {
  size_t kl = strlen(kind);
  for (const char *line = data; line && *line;) {
    if (strncmp(line, kind, kl) == 0 && line[kl] == ' ') {
      const char *t = strstr(line, "total=");
      const char *nl = strchr(line, '\n');
      if (!t || (nl && t > nl)) return -1;
      char num[32];
      size_t n = strspn(t + 6, "0123456789");
      if (n == 0 || n >= sizeof num) return -1;
      memcpy(num, t + 6, n);
      num[n] = '\0';
      return mw_node_parse_u64(num, 10, out);
    }
    line = strchr(line, '\n');
    if (line) line++;
  }
  *out = 0; /* procfs leaves a missing line nil; node_exporter would then crash */
  return 0;
}

int mw_node_collect_pressure(mw_node_scrape_t *s) {
  static const struct {
    const char *res, *kind, *name, *help;
  } m[] = {
      {"cpu", "some", "node_pressure_cpu_waiting_seconds_total",
       "Total time in seconds that processes have waited for CPU time"},
      {"io", "some", "node_pressure_io_waiting_seconds_total",
       "Total time in seconds that processes have waited due to IO congestion"},
      {"io", "full", "node_pressure_io_stalled_seconds_total",
       "Total time in seconds no process could make progress due to IO congestion"},
      {"memory", "some", "node_pressure_memory_waiting_seconds_total",
       "Total time in seconds that processes have waited for memory"},
      {"memory", "full", "node_pressure_memory_stalled_seconds_total",
       "Total time in seconds no process could make progress due to memory congestion"},
  };
  const char *data = NULL, *res = NULL;
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
    if (!res || strcmp(res, m[i].res) != 0) {
      char name[32];
      snprintf(name, sizeof name, "pressure/%s", m[i].res);
      res = m[i].res;
      data = mw_node_read(s, mw_node_proc_path(s, name), NULL);
      if (!data) {
        if (errno == ENOENT || errno == EOPNOTSUPP) {
          s->nodata = 1;
          return mw_node_fail(s, "pressure information is unavailable");
        }
        return mw_node_fail(s, "failed to retrieve pressure stats: %s", strerror(errno));
      }
    }
    uint64_t total;
    if (psi_total(data, m[i].kind, &total) < 0)
      return mw_node_fail(s, "failed to parse pressure/%s", m[i].res);
    mw_node_put1(s, m[i].name, m[i].help, MW_METRICS_COUNTER, (double)total / 1000.0 / 1000.0);
  }
  return 0;
}
