/* exporters/node/meminfo.c: the meminfo collector (node_exporter collector/meminfo_linux.go):
 * one gauge per /proc/meminfo line, "Active(anon)" becoming Active_anon, values
 * with a unit (kB) times 1024 and suffixed _bytes. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "exporters/node/node.h"

int mw_node_collect_meminfo(mw_node_scrape_t *s) {
  const char *data = mw_node_read(s, mw_node_proc_path(s, "meminfo"), NULL);
  if (!data) return mw_node_fail(s, "couldn't get meminfo: %s", strerror(errno));
  for (const char *line = data; line && *line;) {
    const char *nl = strchr(line, '\n');
    size_t n = nl ? (size_t)(nl - line) : strlen(line);
    char buf[256], *f[4], key[128], name[192], help[256];
    if (n >= sizeof buf) return mw_node_fail(s, "invalid line in meminfo");
    memcpy(buf, line, n);
    buf[n] = '\0';
    line = nl ? nl + 1 : NULL;
    size_t nf = mw_node_fields(buf, f, 4);
    if (nf == 0) continue;
    double v;
    if (nf < 2 || mw_node_parse_f64(f[1], &v) < 0)
      return mw_node_fail(s, "invalid value in meminfo: %s", nf < 2 ? "" : f[1]);
    if (nf > 3) return mw_node_fail(s, "invalid line in meminfo");
    /* key without the trailing ':'; "(x)" -> "_x" (reParens, greedy) */
    size_t kl = strlen(f[0]);
    if (kl && f[0][kl - 1] == ':') kl--;
    if (kl >= sizeof key - 2) continue;
    memcpy(key, f[0], kl);
    key[kl] = '\0';
    char *open = strchr(key, '('), *close = strrchr(key, ')');
    if (open && close && close > open) {
      char rest[128];
      snprintf(rest, sizeof rest, "_%.*s%s", (int)(close - open - 1), open + 1, close + 1);
      snprintf(open, sizeof key - (size_t)(open - key), "%s", rest);
    }
    if (nf == 3) {
      v *= 1024;
      strcat(key, "_bytes");
    }
    snprintf(name, sizeof name, "node_memory_%s", key);
    snprintf(help, sizeof help, "Memory information field %s.", key);
    size_t kn = strlen(key);
    int total = kn >= 6 && strcmp(key + kn - 6, "_total") == 0;
    mw_node_put1(s, name, help, total ? MW_METRICS_COUNTER : MW_METRICS_GAUGE, v);
  }
  return 0;
}
