/* exporters/node/sockstat.c: the sockstat collector (node_exporter collector/sockstat_linux.go):
 * <procfs>/net/sockstat and sockstat6, one gauge per protocol and field
 * (inuse always, orphan/tw/alloc/mem/memory when present, mem_bytes = mem
 * pages times the page size), and sockets_used for IPv4. A missing file is
 * skipped. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exporters/node/node.h"

static void put(mw_node_scrape_t *s, const char *proto, const char *field, double v) {
  char name[160], help[200];
  snprintf(name, sizeof name, "node_sockstat_%s_%s", proto, field);
  snprintf(help, sizeof help, "Number of %s sockets in state %s.", proto, field);
  mw_node_put1(s, name, help, MW_METRICS_GAUGE, v);
}

/* Parses one file completely, then exports it (procfs fails before anything is sent). */
static int one(mw_node_scrape_t *s, const char *file, int ipv6) {
  static const char *const known[] = {"orphan", "tw", "alloc", "mem", "memory"};
  const char *data = mw_node_read(s, mw_node_proc_path(s, file), NULL);
  if (!data) {
    if (errno == ENOENT) return 0;
    return mw_node_fail(s, "failed to get sockstat data: %s", strerror(errno));
  }
  char *copy = strdup(data);
  if (!copy) return mw_node_fail(s, "out of memory");
  int rc = -1;
  for (int pass = 0; pass < 2; pass++) {
    char *work = pass ? copy : strdup(copy);
    if (!work) {
      mw_node_fail(s, "out of memory");
      goto cleanup;
    }
    int bad = 0;
    for (char *line = work; line && *line && !bad;) {
      char *nl = strchr(line, '\n');
      if (nl) *nl = '\0';
      /* strings.Split(line, " "): single spaces */
      char *f[32];
      size_t nf = 0;
      for (char *p = line; p && nf < 32;) {
        f[nf++] = p;
        p = strchr(p, ' ');
        if (p) *p++ = '\0';
      }
      long long vals[16];
      if (nf < 3 || (nf - 1) % 2 != 0) {
        bad = mw_node_fail(s, "malformed sockstat line in %s", file);
        break;
      }
      for (size_t k = 2; k < nf; k += 2) {
        char *end;
        vals[(k - 2) / 2 % 16] = strtoll(f[k], &end, 10);
        if (end == f[k] || *end) bad = mw_node_fail(s, "invalid sockstat value %s", f[k]);
      }
      line = nl ? nl + 1 : NULL;
      if (bad || !pass) continue;
      size_t pl = strlen(f[0]);
      if (pl && f[0][pl - 1] == ':') f[0][--pl] = '\0';
      if (strcmp(f[0], "sockets") == 0) {
        for (size_t k = 1; k + 1 < nf; k += 2)
          if (!ipv6 && strcmp(f[k], "used") == 0)
            mw_node_put1(s, "node_sockstat_sockets_used", "Number of IPv4 sockets in use.",
                         MW_METRICS_GAUGE, (double)vals[(k - 1) / 2 % 16]);
        continue;
      }
      double inuse = 0;
      for (size_t k = 1; k + 1 < nf; k += 2)
        if (strcmp(f[k], "inuse") == 0) inuse = (double)vals[(k - 1) / 2 % 16];
      put(s, f[0], "inuse", inuse);
      for (size_t j = 0; j < sizeof known / sizeof known[0]; j++)
        for (size_t k = 1; k + 1 < nf; k += 2)
          if (strcmp(f[k], known[j]) == 0) {
            double v = (double)vals[(k - 1) / 2 % 16];
            put(s, f[0], known[j], v);
            if (j == 3) put(s, f[0], "mem_bytes", v * (double)sysconf(_SC_PAGESIZE));
          }
    }
    if (!pass) free(work);
    if (bad) goto cleanup;
  }
  rc = 0;
cleanup:
  free(copy);
  return rc;
}

int mw_node_collect_sockstat(mw_node_scrape_t *s) {
  if (one(s, "net/sockstat", 0) < 0) return -1;
  return one(s, "net/sockstat6", 1);
}
