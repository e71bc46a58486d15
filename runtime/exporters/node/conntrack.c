/* exporters/node/conntrack.c: the conntrack collector (node_exporter collector/conntrack_linux.go):
 * entries and limit from <procfs>/sys/net/netfilter, per-CPU statistics of
 * <procfs>/net/stat/nf_conntrack (hex, 17 columns) summed. No netfilter
 * files is "no data" (success 0). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "exporters/node/node.h"

static int handle_err(mw_node_scrape_t *s, int e) {
  if (e == ENOENT) {
    s->nodata = 1;
    return mw_node_fail(s, "conntrack probably not loaded");
  }
  return mw_node_fail(s, "failed to retrieve conntrack stats: %s", strerror(e));
}

int mw_node_collect_conntrack(mw_node_scrape_t *s) {
  uint64_t v;
  if (mw_node_read_u64(s, mw_node_proc_path(s, "sys/net/netfilter/nf_conntrack_count"), &v) < 0)
    return handle_err(s, errno);
  mw_node_put1(s, "node_nf_conntrack_entries",
               "Number of currently allocated flow entries for connection tracking.",
               MW_METRICS_GAUGE, (double)v);
  if (mw_node_read_u64(s, mw_node_proc_path(s, "sys/net/netfilter/nf_conntrack_max"), &v) < 0)
    return handle_err(s, errno);
  mw_node_put1(s, "node_nf_conntrack_entries_limit", "Maximum size of connection tracking table.",
               MW_METRICS_GAUGE, (double)v);

  static const struct {
    int col;
    const char *name, *help;
  } st[] = {
      {2, "node_nf_conntrack_stat_found", "Number of searched entries which were successful."},
      {4, "node_nf_conntrack_stat_invalid", "Number of packets seen which can not be tracked."},
      {5, "node_nf_conntrack_stat_ignore",
       "Number of packets seen which are already connected to a conntrack entry."},
      {8, "node_nf_conntrack_stat_insert", "Number of entries inserted into the list."},
      {9, "node_nf_conntrack_stat_insert_failed",
       "Number of entries for which list insertion was attempted but failed."},
      {10, "node_nf_conntrack_stat_drop", "Number of packets dropped due to conntrack failure."},
      {11, "node_nf_conntrack_stat_early_drop",
       "Number of dropped conntrack entries to make room for new ones, if maximum table size "
       "was reached."},
      {16, "node_nf_conntrack_stat_search_restart",
       "Number of conntrack table lookups which had to be restarted due to hashtable resizes."},
  };
  enum { NST = sizeof st / sizeof st[0] };
  uint64_t sum[NST] = {0};
  const char *data = mw_node_read(s, mw_node_proc_path(s, "net/stat/nf_conntrack"), NULL);
  if (!data) return handle_err(s, errno);
  char *copy = strdup(data);
  if (!copy) return mw_node_fail(s, "out of memory");
  const char *nl0 = strchr(copy, '\n'); /* the first line is the header */
  for (char *line = nl0 ? (char *)nl0 + 1 : NULL; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    char *f[18];
    size_t nf = mw_node_fields(line, f, 18);
    if (nf != 17) {
      free(copy);
      return mw_node_fail(s, "invalid conntrackstat entry, missing fields");
    }
    for (int i = 0; i < NST; i++) {
      uint64_t x;
      if (mw_node_parse_u64(f[st[i].col], 16, &x) < 0) {
        free(copy);
        return mw_node_fail(s, "couldn't parse %s field", f[st[i].col]);
      }
      sum[i] += x;
    }
    line = nl ? nl + 1 : NULL;
  }
  free(copy);
  for (int i = 0; i < NST; i++)
    mw_node_put1(s, st[i].name, st[i].help, MW_METRICS_GAUGE, (double)sum[i]);
  return 0;
}
