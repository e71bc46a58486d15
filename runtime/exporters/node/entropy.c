/* exporters/node/entropy.c: the entropy collector (node_exporter collector/entropy_linux.go). */
#include <errno.h>
#include <string.h>

#include "exporters/node/node.h"

int mw_node_collect_entropy(mw_node_scrape_t *s) {
  uint64_t avail, pool;
  if (mw_node_read_u64(s, mw_node_proc_path(s, "sys/kernel/random/entropy_avail"), &avail) < 0)
    return mw_node_fail(s, "couldn't get entropy_avail: %s", strerror(errno));
  mw_node_put1(s, "node_entropy_available_bits", "Bits of available entropy.", MW_METRICS_GAUGE,
               (double)avail);
  if (mw_node_read_u64(s, mw_node_proc_path(s, "sys/kernel/random/poolsize"), &pool) < 0)
    return mw_node_fail(s, "couldn't get entropy poolsize: %s", strerror(errno));
  mw_node_put1(s, "node_entropy_pool_size_bits", "Bits of entropy pool.", MW_METRICS_GAUGE,
               (double)pool);
  return 0;
}
