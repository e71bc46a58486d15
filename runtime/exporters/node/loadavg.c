/* exporters/node/loadavg.c: the loadavg collector (node_exporter collector/loadavg_linux.go). */
#include <errno.h>
#include <string.h>

#include "exporters/node/node.h"

int mw_node_collect_loadavg(mw_node_scrape_t *s) {
  static const char *const names[3] = {"node_load1", "node_load5", "node_load15"};
  static const char *const helps[3] = {"1m load average.", "5m load average.", "15m load average."};
  char buf[256], *f[3];
  const char *data = mw_node_read(s, mw_node_proc_path(s, "loadavg"), NULL);
  if (!data) return mw_node_fail(s, "couldn't get load: %s", strerror(errno));
  strncpy(buf, data, sizeof buf - 1);
  buf[sizeof buf - 1] = '\0';
  double v[3];
  if (mw_node_fields(buf, f, 3) < 3) return mw_node_fail(s, "unexpected content in loadavg");
  for (int i = 0; i < 3; i++)
    if (mw_node_parse_f64(f[i], &v[i]) < 0)
      return mw_node_fail(s, "could not parse load '%s'", f[i]);
  for (int i = 0; i < 3; i++)
    mw_node_put1(s, names[i], helps[i], MW_METRICS_GAUGE, v[i]);
  return 0;
}
