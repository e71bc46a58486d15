/* exporters/node/nfsd.c: the nfsd collector (node_exporter 1.5
 * collector/nfsd_linux.go): the NFS server's reply cache, file handle, I/O,
 * thread, read-ahead, network and RPC counters of <procfs>/net/rpc/nfsd
 * (parsed by exporters/node/nfs.c's mw_node_nfs_parse) and its NFSv2/v3/v4 operations
 * as node_nfsd_requests_total{proto, method}: the procedures and operations
 * node_exporter names (not Null, not v4's unused, PutPubFH and PutRootFH).
 * No file is "no data". */
#include <errno.h>
#include <string.h>

#include "exporters/node/node.h"

/* Indexes into the proc4ops values (procfs's V4Ops fields) and their names. */
static const struct {
  int i;
  const char *name;
} v4ops[] = {{3, "Access"},       {4, "Close"},        {5, "Commit"},     {6, "Create"},
             {7, "DelegPurge"},   {8, "DelegReturn"},  {9, "GetAttr"},    {10, "GetFH"},
             {11, "Link"},        {12, "Lock"},        {13, "Lockt"},     {14, "Locku"},
             {15, "Lookup"},      {16, "LookupRoot"},  {17, "Nverify"},   {18, "Open"},
             {19, "OpenAttr"},    {20, "OpenConfirm"}, {21, "OpenDgrd"},  {22, "PutFH"},
             {25, "Read"},        {26, "ReadDir"},     {27, "ReadLink"},  {28, "Remove"},
             {29, "Rename"},      {30, "Renew"},       {31, "RestoreFH"}, {32, "SaveFH"},
             {33, "SecInfo"},     {34, "SetAttr"},     {35, "Verify"},    {36, "Write"},
             {37, "RelLockOwner"}};

static void put1(mw_node_scrape_t *s, const char *name, const char *help, int counter, uint64_t v) {
  mw_node_put1(s, name, help, counter ? MW_METRICS_COUNTER : MW_METRICS_GAUGE, (double)v);
}

int mw_node_collect_nfsd(mw_node_scrape_t *s) {
  size_t len;
  char msg[256];
  const char *data = mw_node_read(s, mw_node_proc_path(s, "net/rpc/nfsd"), &len);
  if (!data) {
    int e = errno;
    if (e == ENOENT) {
      s->nodata = 1;
      return mw_node_fail(s, "Not collecting NFSd metrics: %s", strerror(e));
    }
    return mw_node_fail(s, "failed to retrieve nfsd stats: %s", strerror(e));
  }
  mw_node_nfs_stats_t st;
  if (mw_node_nfs_parse(data, len, 1, &st, msg, sizeof msg) < 0)
    return mw_node_fail(s, "failed to retrieve nfsd stats: %s", msg);
  put1(s, "node_nfsd_reply_cache_hits_total",
       "Total number of NFSd Reply Cache hits (client lost server response).", 1, st.rc[0]);
  put1(s, "node_nfsd_reply_cache_misses_total",
       "Total number of NFSd Reply Cache an operation that requires caching (idempotent).", 1,
       st.rc[1]);
  put1(s, "node_nfsd_reply_cache_nocache_total",
       "Total number of NFSd Reply Cache non-idempotent operations (rename/delete/\xe2\x80\xa6).",
       1, st.rc[2]);
  put1(s, "node_nfsd_file_handles_stale_total", "Total number of NFSd stale file handles", 1,
       st.fh[0]);
  put1(s, "node_nfsd_disk_bytes_read_total", "Total NFSd bytes read.", 1, st.io[0]);
  put1(s, "node_nfsd_disk_bytes_written_total", "Total NFSd bytes written.", 1, st.io[1]);
  put1(s, "node_nfsd_server_threads", "Total number of NFSd kernel threads that are running.", 0,
       st.th[0]);
  put1(s, "node_nfsd_read_ahead_cache_size_blocks", "How large the read ahead cache is in blocks.",
       0, st.ra[0]);
  put1(s, "node_nfsd_read_ahead_cache_not_found_total",
       "Total number of NFSd read ahead cache not found.", 1, st.ra[11]);
  int32_t f = mw_node_family(s, "node_nfsd_packets_total",
                             "Total NFSd network packets (sent+received) by protocol type.",
                             MW_METRICS_COUNTER, "proto");
  mw_node_put(s, f, (double)st.net[1], "udp");
  mw_node_put(s, f, (double)st.net[2], "tcp");
  put1(s, "node_nfsd_connections_total", "Total number of NFSd TCP connections.", 1, st.net[3]);
  f = mw_node_family(s, "node_nfsd_rpc_errors_total",
                     "Total number of NFSd RPC errors by error type.", MW_METRICS_COUNTER, "error");
  mw_node_put(s, f, (double)st.rpc[2], "fmt");
  mw_node_put(s, f, (double)st.rpc[3], "auth");
  mw_node_put(s, f, (double)st.rpc[4], "cInt");
  put1(s, "node_nfsd_server_rpcs_total", "Total number of NFSd RPCs.", 1, st.rpc[0]);
  f = mw_node_family(s, "node_nfsd_requests_total",
                     "Total number NFSd Requests by method and protocol.", MW_METRICS_COUNTER,
                     "proto,method");
  for (int i = 1; i < 18; i++)
    mw_node_put(s, f, (double)st.proc2[i], "2", mw_node_nfs_v2_names[i]);
  for (int i = 1; i < 22; i++)
    mw_node_put(s, f, (double)st.proc3[i], "3", mw_node_nfs_v3_names[i]);
  for (size_t i = 0; i < sizeof v4ops / sizeof v4ops[0]; i++)
    mw_node_put(s, f, (double)st.proc4ops[v4ops[i].i], "4", v4ops[i].name);
  return 0;
}
