/* exporters/node/udp_queues.c: the udp_queues collector (node_exporter
 * collector/udp_queues_linux.go): tx/rx queue bytes summed over <procfs>/net/udp and udp6. Both
 * files missing is "no data" (success 0). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "exporters/node/node.h"

/* Sums the tx_queue:rx_queue column (hex) of every socket line. 0, -1 (errno or s->err). */
static int summary(mw_node_scrape_t *s, const char *name, uint64_t *tx, uint64_t *rx) {
  const char *data = mw_node_read(s, mw_node_proc_path(s, name), NULL);
  if (!data) return -1;
  *tx = *rx = 0;
  const char *line = strchr(data, '\n'); /* header */
  while (line && *++line) {
    const char *nl = strchr(line, '\n');
    size_t n = nl ? (size_t)(nl - line) : strlen(line);
    char buf[512], *f[12];
    if (n >= sizeof buf) n = sizeof buf - 1;
    memcpy(buf, line, n);
    buf[n] = '\0';
    line = nl;
    if (mw_node_fields(buf, f, 12) < 10) {
      errno = EINVAL;
      mw_node_fail(s, "cannot parse net socket line as it has less then 10 columns");
      return -2;
    }
    char *colon = strchr(f[4], ':');
    uint64_t t, r;
    if (!colon) {
      errno = EINVAL;
      mw_node_fail(s, "cannot parse tx/rx queues in socket line");
      return -2;
    }
    *colon = '\0';
    if (mw_node_parse_u64(f[4], 16, &t) < 0 || mw_node_parse_u64(colon + 1, 16, &r) < 0) {
      mw_node_fail(s, "cannot parse tx/rx queue value in socket line");
      return -2;
    }
    *tx += t;
    *rx += r;
  }
  return 0;
}

int mw_node_collect_udp_queues(mw_node_scrape_t *s) {
  int32_t f = mw_node_family(s, "node_udp_queues",
                             "Number of allocated memory in the kernel for UDP datagrams in bytes.",
                             MW_METRICS_GAUGE, "queue,ip");
  uint64_t tx, rx;
  int missing = 0;
  static const char *const files[2] = {"net/udp", "net/udp6"};
  static const char *const ips[2] = {"v4", "v6"};
  for (int i = 0; i < 2; i++) {
    int r = summary(s, files[i], &tx, &rx);
    if (r == 0) {
      mw_node_put(s, f, (double)tx, "tx", ips[i]);
      mw_node_put(s, f, (double)rx, "rx", ips[i]);
    } else if (r == -1 && errno == ENOENT) {
      missing++;
    } else {
      if (r == -1) mw_node_fail(s, "couldn't get udp queued bytes: %s", strerror(errno));
      return -1;
    }
  }
  if (missing == 2) {
    s->nodata = 1;
    return mw_node_fail(s, "no udp files");
  }
  return 0;
}
