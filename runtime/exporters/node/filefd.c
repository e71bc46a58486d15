/* exporters/node/filefd.c: the filefd collector (node_exporter collector/filefd_linux.go):
 * allocated and maximum from <procfs>/sys/fs/file-nr. */
#include <errno.h>
#include <string.h>

#include "exporters/node/node.h"

int mw_node_collect_filefd(mw_node_scrape_t *s) {
  char buf[256], *f[3];
  const char *data = mw_node_read(s, mw_node_proc_path(s, "sys/fs/file-nr"), NULL);
  if (!data) return mw_node_fail(s, "couldn't get file-nr: %s", strerror(errno));
  strncpy(buf, data, sizeof buf - 1);
  buf[sizeof buf - 1] = '\0';
  double alloc, max;
  if (mw_node_fields(buf, f, 3) < 3) return mw_node_fail(s, "unexpected number of file stats");
  if (mw_node_parse_f64(f[0], &alloc) < 0 || mw_node_parse_f64(f[2], &max) < 0)
    return mw_node_fail(s, "invalid value in file-nr");
  mw_node_put1(s, "node_filefd_allocated", "File descriptor statistics: allocated.",
               MW_METRICS_GAUGE, alloc);
  mw_node_put1(s, "node_filefd_maximum", "File descriptor statistics: maximum.", MW_METRICS_GAUGE,
               max);
  return 0;
}
