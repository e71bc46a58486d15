/* exporters/node/nfs.c: the nfs collector (node_exporter 1.5 collector/nfs_linux.go)
 * and the parser of <procfs>/net/rpc/nfs and nfsd it shares with
 * exporters/node/nfsd.c (procfs 0.8's nfs/parse*.go): the client's network and RPC
 * counters and every NFSv2/v3/v4 procedure count as
 * node_nfs_requests_total{proto, method}, methods named as procfs's struct
 * fields. No file is "no data"; a line procfs refuses (an unknown key, a
 * count that does not match, a value that is not a uint64) fails the
 * collector before anything is reported. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "exporters/node/node.h"

const char *const mw_node_nfs_v2_names[18] = {
    "Null",   "GetAttr", "SetAttr", "Root", "Lookup",  "ReadLink", "Read",  "WrCache", "Write",
    "Create", "Remove",  "Rename",  "Link", "SymLink", "MkDir",    "RmDir", "ReadDir", "FsStat"};
const char *const mw_node_nfs_v3_names[22] = {
    "Null",    "GetAttr",     "SetAttr", "Lookup", "Access",   "ReadLink", "Read",   "Write",
    "Create",  "MkDir",       "SymLink", "MkNod",  "Remove",   "RmDir",    "Rename", "Link",
    "ReadDir", "ReadDirPlus", "FsStat",  "FsInfo", "PathConf", "Commit"};
static const char *const v4_client_names[59] = {"Null",
                                                "Read",
                                                "Write",
                                                "Commit",
                                                "Open",
                                                "OpenConfirm",
                                                "OpenNoattr",
                                                "OpenDowngrade",
                                                "Close",
                                                "Setattr",
                                                "FsInfo",
                                                "Renew",
                                                "SetClientID",
                                                "SetClientIDConfirm",
                                                "Lock",
                                                "Lockt",
                                                "Locku",
                                                "Access",
                                                "Getattr",
                                                "Lookup",
                                                "LookupRoot",
                                                "Remove",
                                                "Rename",
                                                "Link",
                                                "Symlink",
                                                "Create",
                                                "Pathconf",
                                                "StatFs",
                                                "ReadLink",
                                                "ReadDir",
                                                "ServerCaps",
                                                "DelegReturn",
                                                "GetACL",
                                                "SetACL",
                                                "FsLocations",
                                                "ReleaseLockowner",
                                                "Secinfo",
                                                "FsidPresent",
                                                "ExchangeID",
                                                "CreateSession",
                                                "DestroySession",
                                                "Sequence",
                                                "GetLeaseTime",
                                                "ReclaimComplete",
                                                "LayoutGet",
                                                "GetDeviceInfo",
                                                "LayoutCommit",
                                                "LayoutReturn",
                                                "SecinfoNoName",
                                                "TestStateID",
                                                "FreeStateID",
                                                "GetDeviceList",
                                                "BindConnToSession",
                                                "DestroyClientID",
                                                "Seek",
                                                "Allocate",
                                                "DeAllocate",
                                                "LayoutStats",
                                                "Clone"};

/* A line's values after the key; grows as needed. */
typedef struct {
  uint64_t *v;
  size_t n, cap;
} vals_t;

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Copies want values (from index 1 of v, v[0] being the count) into dst,
 * zero-padding when fewer. */
static void take(uint64_t *dst, size_t want, const vals_t *v, size_t from) {
  for (size_t i = 0; i < want; i++)
    dst[i] = from + i < v->n ? v->v[from + i] : 0;
}

int mw_node_nfs_parse(const char *data, size_t len, int server, mw_node_nfs_stats_t *st, char *err,
                      size_t errlen) {
  const char *what = server ? "NFSd" : "NFS";
  vals_t v = {0};
  int rc = -1;
  memset(st, 0, sizeof *st);
  /* bufio.Scanner lines */
  for (size_t i = 0; i < len;) {
    const char *nl = memchr(data + i, '\n', len - i);
    size_t e = nl ? (size_t)(nl - data) : len, n = e - i;
    const char *line = data + i;
    i = nl ? e + 1 : len;
    if (n && line[n - 1] == '\r') n--;
    /* strings.Fields: the key, then the values */
    size_t p = 0, nparts = 0;
    const char *key = NULL;
    size_t key_len = 0;
    v.n = 0;
    int bad = 0;
    while (p < n) {
      while (p < n && is_space(line[p]))
        p++;
      if (p == n) break;
      size_t t = p;
      while (p < n && !is_space(line[p]))
        p++;
      nparts++;
      if (nparts == 1) {
        key = line + t;
        key_len = p - t;
        continue;
      }
      /* nfsd's th line: the first two values only */
      if (server && key_len == 2 && memcmp(key, "th", 2) == 0 && nparts > 3) continue;
      char tmp[32];
      uint64_t x;
      if (p - t >= sizeof tmp) {
        bad = 1;
        continue;
      }
      memcpy(tmp, line + t, p - t);
      tmp[p - t] = '\0';
      if (mw_node_parse_u64(tmp, 10, &x) < 0) {
        bad = 1;
        continue;
      }
      if (v.n == v.cap) {
        size_t c = v.cap ? v.cap * 2 : 64;
        uint64_t *a = realloc(v.v, c * sizeof *a);
        if (!a) {
          mw_seterr(err, errlen, "out of memory");
          goto done;
        }
        v.v = a;
        v.cap = c;
      }
      v.v[v.n++] = x;
    }
    if (nparts < 2) {
      mw_seterr(err, errlen, "invalid %s metric line \"%.*s\"", what, (int)n, line);
      goto done;
    }
    if (server && key_len == 2 && memcmp(key, "th", 2) == 0 && nparts < 3) {
      mw_seterr(err, errlen, "invalid NFSd th metric line \"%.*s\"", (int)n, line);
      goto done;
    }
    if (bad) {
      mw_seterr(err, errlen, "error parsing %s metric line: invalid value", what);
      goto done;
    }
#define KEY(k) (key_len == sizeof(k) - 1 && memcmp(key, k, sizeof(k) - 1) == 0)
    /* the count first: len(values[1:]) must equal int(values[0]) */
    int counted = v.n >= 1 && v.v[0] == v.n - 1;
    int ok;
    if (KEY("net")) {
      if ((ok = v.n == 4)) take(st->net, 4, &v, 0);
    } else if (KEY("rpc")) {
      if ((ok = v.n == (server ? 5u : 3u))) take(st->rpc, v.n, &v, 0);
    } else if (KEY("proc2")) {
      if ((ok = counted && v.v[0] >= 18)) take(st->proc2, 18, &v, 1);
    } else if (KEY("proc3")) {
      if ((ok = counted && v.v[0] >= 22)) take(st->proc3, 22, &v, 1);
    } else if (KEY("proc4") && !server) {
      if ((ok = counted)) take(st->proc4, 59, &v, 1); /* fewer on older kernels: zeros */
    } else if (KEY("proc4") && server) {
      if ((ok = counted && v.v[0] == 2)) take(st->proc4, 2, &v, 1);
    } else if (server && KEY("rc")) {
      if ((ok = v.n == 3)) take(st->rc, 3, &v, 0);
    } else if (server && KEY("fh")) {
      if ((ok = v.n == 5)) take(st->fh, 5, &v, 0);
    } else if (server && KEY("io")) {
      if ((ok = v.n == 2)) take(st->io, 2, &v, 0);
    } else if (server && KEY("th")) {
      if ((ok = v.n == 2)) take(st->th, 2, &v, 0);
    } else if (server && KEY("ra")) {
      if ((ok = v.n == 12)) take(st->ra, 12, &v, 0);
    } else if (server && KEY("proc4ops")) {
      if ((ok = counted && v.v[0] >= 39)) take(st->proc4ops, 38, &v, 1);
    } else {
      mw_seterr(err, errlen, "unknown %s metric line \"%.*s\"", what, (int)key_len, key);
      goto done;
    }
#undef KEY
    if (!ok) {
      mw_seterr(err, errlen, "errors parsing %s metric line: invalid %.*s line", what, (int)key_len,
                key);
      goto done;
    }
  }
  rc = 0;
done:
  free(v.v);
  return rc;
}

int mw_node_collect_nfs(mw_node_scrape_t *s) {
  size_t len;
  char msg[256];
  const char *data = mw_node_read(s, mw_node_proc_path(s, "net/rpc/nfs"), &len);
  if (!data) {
    int e = errno;
    if (e == ENOENT) {
      s->nodata = 1;
      return mw_node_fail(s, "Not collecting NFS metrics: %s", strerror(e));
    }
    return mw_node_fail(s, "failed to retrieve nfs stats: %s", strerror(e));
  }
  mw_node_nfs_stats_t st;
  if (mw_node_nfs_parse(data, len, 0, &st, msg, sizeof msg) < 0)
    return mw_node_fail(s, "failed to retrieve nfs stats: %s", msg);
  int32_t f = mw_node_family(s, "node_nfs_packets_total",
                             "Total NFSd network packets (sent+received) by protocol type.",
                             MW_METRICS_COUNTER, "protocol");
  mw_node_put(s, f, (double)st.net[1], "udp");
  mw_node_put(s, f, (double)st.net[2], "tcp");
  mw_node_put1(s, "node_nfs_connections_total", "Total number of NFSd TCP connections.",
               MW_METRICS_COUNTER, (double)st.net[3]);
  mw_node_put1(s, "node_nfs_rpcs_total", "Total number of RPCs performed.", MW_METRICS_COUNTER,
               (double)st.rpc[0]);
  mw_node_put1(s, "node_nfs_rpc_retransmissions_total", "Number of RPC transmissions performed.",
               MW_METRICS_COUNTER, (double)st.rpc[1]);
  mw_node_put1(s, "node_nfs_rpc_authentication_refreshes_total",
               "Number of RPC authentication refreshes performed.", MW_METRICS_COUNTER,
               (double)st.rpc[2]);
  f = mw_node_family(s, "node_nfs_requests_total", "Number of NFS procedures invoked.",
                     MW_METRICS_COUNTER, "proto,method");
  for (int i = 0; i < 18; i++)
    mw_node_put(s, f, (double)st.proc2[i], "2", mw_node_nfs_v2_names[i]);
  for (int i = 0; i < 22; i++)
    mw_node_put(s, f, (double)st.proc3[i], "3", mw_node_nfs_v3_names[i]);
  for (int i = 0; i < 59; i++)
    mw_node_put(s, f, (double)st.proc4[i], "4", v4_client_names[i]);
  return 0;
}
