/* exporters/node/netstat.c: the netstat collector (node_exporter collector/netstat_linux.go):
 * <procfs>/net/netstat and net/snmp (header line + value line per protocol)
 * and net/snmp6 ("Ip6InOctets 123" lines; a missing file is skipped), fields
 * Protocol_Name matching netstat_fields, untyped. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exporters/node/node.h"

static void put(mw_node_scrape_t *s, const char *proto, size_t plen, const char *name, double v) {
  char key[256], full[300], help[320];
  static const char prefix[] = "node_netstat_";
  size_t pre = sizeof prefix - 1, nlen = strlen(name);
  if (plen + 1 + nlen > 255) { /* names cut at 255 bytes (never seen in the kernel's files) */
    snprintf(key, sizeof key, "%.*s_%s", (int)plen, proto, name);
    if (!mw_node_re_match(s->node->netstat_fields, key, strlen(key))) return;
    snprintf(full, sizeof full, "node_netstat_%s", key);
    snprintf(help, sizeof help, "Statistic %.*s%s.", (int)plen, proto, name);
    mw_node_put1(s, full, help, MW_METRICS_UNTYPED, v);
    return;
  }
  /* full = "node_netstat_" proto "_" name; the filter sees it from proto on */
  memcpy(full, prefix, pre);
  memcpy(full + pre, proto, plen);
  full[pre + plen] = '_';
  memcpy(full + pre + plen + 1, name, nlen + 1);
  /* the filter's decision and the family, per field */
  int32_t *m = mw_node_memo(s->node, 'n', full + pre, plen + 1 + nlen);
  if (m && *m == -2) return;
  if (m && mw_node_put1_handle(s, *m, v)) return;
  if (!mw_node_re_match(s->node->netstat_fields, full + pre, plen + 1 + nlen)) {
    if (m) *m = -2;
    return;
  }
  snprintf(help, sizeof help, "Statistic %.*s%s.", (int)plen, proto, name);
  int32_t fam = mw_node_family(s, full, help, MW_METRICS_UNTYPED, NULL);
  if (fam < 0) return;
  if (m) *m = fam;
  mw_node_putv(s, fam, v, NULL, 0);
}

/* Splits at single spaces (strings.Split(s, " ")). */
static size_t split_spaces(char *line, char **f, size_t max) {
  size_t n = 0;
  for (char *p = line; p && n < max;) {
    f[n++] = p;
    p = strchr(p, ' ');
    if (p) *p++ = '\0';
  }
  return n;
}

static int pairs_file(mw_node_scrape_t *s, const char *file) {
  enum { MAXF = 512 };
  const char *data = mw_node_read(s, mw_node_proc_path(s, file), NULL);
  if (!data) return mw_node_fail(s, "couldn't get %s: %s", file, strerror(errno));
  char *copy = strdup(data);
  char **names = malloc(MAXF * sizeof *names), **vals = malloc(MAXF * sizeof *vals);
  int rc = -1;
  if (!copy || !names || !vals) {
    mw_node_fail(s, "out of memory");
    goto cleanup;
  }
  for (char *line = copy; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    char *vline = nl ? nl + 1 : NULL;
    char *vnl = vline ? strchr(vline, '\n') : NULL;
    if (vnl) *vnl = '\0';
    size_t nn = split_spaces(line, names, MAXF);
    size_t nv = vline ? split_spaces(vline, vals, MAXF) : 0;
    size_t pl = strlen(names[0]);
    if (pl) pl--; /* trailing ':' */
    if (nn != nv) {
      mw_node_fail(s, "mismatch field count mismatch in %s: %.*s", file, (int)pl, names[0]);
      goto cleanup;
    }
    for (size_t i = 1; i < nn; i++) {
      double v;
      if (mw_node_parse_f64(vals[i], &v) < 0) {
        mw_node_fail(s, "invalid value %s in netstats", vals[i]);
        goto cleanup;
      }
      put(s, names[0], pl, names[i], v);
    }
    line = vnl ? vnl + 1 : NULL;
  }
  rc = 0;
cleanup:
  free(copy);
  free(names);
  free(vals);
  return rc;
}

static int snmp6(mw_node_scrape_t *s) {
  const char *data = mw_node_read(s, mw_node_proc_path(s, "net/snmp6"), NULL);
  if (!data) {
    if (errno == ENOENT) return 0; /* IPv6 disabled */
    return mw_node_fail(s, "couldn't get SNMP6 stats: %s", strerror(errno));
  }
  char *copy = strdup(data);
  if (!copy) return mw_node_fail(s, "out of memory");
  int rc = 0;
  for (char *line = copy; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    char *f[3];
    size_t nf = mw_node_fields(line, f, 3);
    line = nl ? nl + 1 : NULL;
    if (nf < 2) continue;
    char *six = strchr(f[0], '6');
    if (!six) continue;
    double v;
    if (mw_node_parse_f64(f[1], &v) < 0) {
      rc = mw_node_fail(s, "invalid value %s in netstats", f[1]);
      break;
    }
    put(s, f[0], (size_t)(six - f[0] + 1), six + 1, v);
  }
  free(copy);
  return rc;
}

int mw_node_collect_netstat(mw_node_scrape_t *s) {
  if (pairs_file(s, "net/netstat") < 0) return -1;
  if (pairs_file(s, "net/snmp") < 0) return -1;
  return snmp6(s);
}
