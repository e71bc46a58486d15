/* exporters/node/arp.c: the arp collector (node_exporter 1.5 collector/arp_linux.go):
 * node_arp_entries{device}, the entries of <procfs>/net/arp counted per
 * device (the last column); with arp_netlink (Alloy's `arp { netlink = true }`,
 * node_exporter 1.8's --collector.arp.netlink) the IPv4 neighbours of an
 * RTM_GETNEIGH dump whose state is not NUD_NOARP, as /proc/net/arp lists
 * them. device_include / device_exclude filter devices. */
#include <errno.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/err.h"
#include "exporters/node/node.h"

/* Adds one entry for dev (copied pointer: the caller's bytes) to counts. */
static int count_dev(mw_node_arp_count_t **counts, size_t *n, size_t *cap, const char *dev) {
  for (size_t i = 0; i < *n; i++)
    if (strcmp((*counts)[i].device, dev) == 0) {
      (*counts)[i].entries++;
      return 0;
    }
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 8;
    mw_node_arp_count_t *a = realloc(*counts, c * sizeof *a);
    if (!a) return -1;
    *counts = a;
    *cap = c;
  }
  (*counts)[(*n)++] = (mw_node_arp_count_t){dev, 1};
  return 0;
}

int mw_node_arp_parse(char *data, mw_node_arp_count_t **out, size_t *n, char *err, size_t errlen) {
  size_t cap = 0;
  *out = NULL;
  *n = 0;
  /* bufio.Scanner's lines: split at \n, a trailing \r dropped, no empty
   * token after a final newline */
  for (char *line = data; *line;) {
    char *nl = strchr(line, '\n'), *next = nl ? nl + 1 : NULL;
    if (nl) *nl = '\0';
    size_t len = strlen(line);
    if (len && line[len - 1] == '\r') line[len - 1] = '\0';
    /* strings.Fields: the first and the last column and how many */
    char *first = NULL, *last = NULL;
    size_t nf = 0;
    for (char *p = line; *p;) {
      while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\v' || *p == '\f')
        *p++ = '\0';
      if (!*p) break;
      if (!first) first = p;
      last = p;
      nf++;
      while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\v' && *p != '\f')
        p++;
    }
    if (nf < 6) {
      mw_seterr(err, errlen, "unexpected ARP table format");
      goto fail;
    }
    if (strcmp(first, "IP") != 0 && count_dev(out, n, &cap, last) < 0) {
      mw_seterr(err, errlen, "out of memory");
      goto fail;
    }
    if (!next) break;
    line = next;
  }
  return 0;
fail:
  free(*out);
  *out = NULL;
  *n = 0;
  return -1;
}

/* The IPv4 neighbours per interface from rtnetlink; 0, or -1 with errno. */
typedef struct {
  int ifindex;
  uint32_t entries;
} neigh_count_t;

typedef struct {
  neigh_count_t *c;
  size_t n;
} neigh_counts_t;

/* One RTM_NEWNEIGH message: an IPv4 neighbour counted for its interface. */
static int count_neigh(const struct nlmsghdr *nh, void *ctx) {
  neigh_counts_t *cs = ctx;
  if (nh->nlmsg_type != RTM_NEWNEIGH || nh->nlmsg_len < NLMSG_LENGTH(sizeof(struct ndmsg)))
    return 0;
  const struct ndmsg *nd = NLMSG_DATA(nh);
  if (nd->ndm_family != AF_INET || (nd->ndm_state & NUD_NOARP)) return 0;
  size_t i = 0;
  while (i < cs->n && cs->c[i].ifindex != nd->ndm_ifindex)
    i++;
  if (i == cs->n) {
    neigh_count_t *a = realloc(cs->c, (cs->n + 1) * sizeof *a);
    if (!a) return ENOMEM;
    cs->c = a;
    cs->c[cs->n++] = (neigh_count_t){nd->ndm_ifindex, 0};
  }
  cs->c[i].entries++;
  return 0;
}

/* IPv4 neighbours per interface from an rtnetlink dump (RTM_GETNEIGH). */
static int from_netlink(mw_node_scrape_t *s, int32_t fam) {
  struct ndmsg req = {.ndm_family = AF_INET};
  neigh_counts_t cs = {0};
  int rc = mw_node_rtnl_dump(RTM_GETNEIGH, &req, sizeof req, count_neigh, &cs);
  int e = errno;
  if (rc == 0) {
    for (size_t i = 0; i < cs.n; i++) {
      char name[IF_NAMESIZE];
      if (!if_indextoname((unsigned)cs.c[i].ifindex, name)) continue; /* gone meanwhile */
      if (mw_node_device_ignored(s->node->arp_include, s->node->arp_exclude, name)) continue;
      mw_node_put(s, fam, (double)cs.c[i].entries, name);
    }
  }
  free(cs.c);
  errno = e;
  return rc;
}

int mw_node_collect_arp(mw_node_scrape_t *s) {
  int32_t fam =
      mw_node_family(s, "node_arp_entries", "ARP entries by device", MW_METRICS_GAUGE, "device");
  if (s->node->arp_netlink) {
    if (from_netlink(s, fam) < 0)
      return mw_node_fail(s, "could not get ARP entries: %s", strerror(errno));
    return 0;
  }
  const char *path = mw_node_proc_path(s, "net/arp");
  const char *data = mw_node_read(s, path, NULL);
  if (!data)
    return mw_node_fail(s, "could not get ARP entries: open %s: %s", path ? path : "net/arp",
                        strerror(errno));
  char *copy = strdup(data), msg[128];
  if (!copy) return mw_node_fail(s, "out of memory");
  mw_node_arp_count_t *counts;
  size_t n;
  if (mw_node_arp_parse(copy, &counts, &n, msg, sizeof msg) < 0) {
    free(copy);
    return mw_node_fail(s, "could not get ARP entries: %s", msg);
  }
  for (size_t i = 0; i < n; i++) {
    if (mw_node_device_ignored(s->node->arp_include, s->node->arp_exclude, counts[i].device))
      continue;
    mw_node_put(s, fam, (double)counts[i].entries, counts[i].device);
  }
  free(counts);
  free(copy);
  return 0;
}
