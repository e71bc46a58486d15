/* exporters/node/vmstat.c: the vmstat collector (node_exporter collector/vmstat_linux.go):
 * /proc/vmstat fields matching vmstat_fields, untyped. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "exporters/node/node.h"

int mw_node_collect_vmstat(mw_node_scrape_t *s) {
  const char *data = mw_node_read(s, mw_node_proc_path(s, "vmstat"), NULL);
  if (!data) return mw_node_fail(s, "%s/vmstat: %s", s->node->procfs, strerror(errno));
  for (const char *line = data; line && *line;) {
    const char *nl = strchr(line, '\n');
    size_t n = nl ? (size_t)(nl - line) : strlen(line);
    char buf[256], *f[3], name[192], help[256];
    if (n >= sizeof buf) n = sizeof buf - 1;
    memcpy(buf, line, n);
    buf[n] = '\0';
    line = nl ? nl + 1 : NULL;
    size_t nf = mw_node_fields(buf, f, 3);
    double v;
    if (nf < 2 || mw_node_parse_f64(f[1], &v) < 0)
      return mw_node_fail(s, "invalid line in vmstat: %s", nf ? f[0] : "");
    /* the filter's decision and the family, per field name */
    size_t flen = strlen(f[0]);
    int32_t *m = mw_node_memo(s->node, 'v', f[0], flen);
    if (m && *m == -2) continue;
    if (m && mw_node_put1_handle(s, *m, v)) continue;
    if (!mw_node_re_match(s->node->vmstat_fields, f[0], flen)) {
      if (m) *m = -2;
      continue;
    }
    snprintf(name, sizeof name, "node_vmstat_%s", f[0]);
    snprintf(help, sizeof help, "/proc/vmstat information field %s.", f[0]);
    int32_t fam = mw_node_family(s, name, help, MW_METRICS_UNTYPED, NULL);
    if (fam < 0) continue;
    if (m) *m = fam;
    mw_node_putv(s, fam, v, NULL, 0);
  }
  return 0;
}
