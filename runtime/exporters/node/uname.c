/* exporters/node/uname.c: the uname collector (node_exporter collector/uname_linux.go). */
#include <errno.h>
#include <string.h>
#include <sys/utsname.h>

#include "exporters/node/node.h"

int mw_node_collect_uname(mw_node_scrape_t *s) {
  struct utsname u;
  if (uname(&u) < 0) return mw_node_fail(s, "uname: %s", strerror(errno));
  int32_t f = mw_node_family(
      s, "node_uname_info", "Labeled system information as provided by the uname system call.",
      MW_METRICS_GAUGE, "sysname,release,version,machine,nodename,domainname");
  mw_node_put(s, f, 1, u.sysname, u.release, u.version, u.machine, u.nodename, u.domainname);
  return 0;
}
