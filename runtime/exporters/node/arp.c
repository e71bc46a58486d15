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
static int from_netlink(mw_node_scrape_t *s, int32_t fam) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return -1;
  struct {
    struct nlmsghdr nh;
    struct ndmsg nd;
  } req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof req.nd);
  req.nh.nlmsg_type = RTM_GETNEIGH;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.nh.nlmsg_seq = 1;
  req.nd.ndm_family = AF_INET;
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  typedef struct {
    int ifindex;
    uint32_t entries;
  } idx_t;
  idx_t *idx = NULL;
  size_t nidx = 0, cap = 32768;
  char *buf = malloc(cap);
  int done = 0, e = 0;
  if (!buf) e = ENOMEM;
  if (buf && sendto(fd, &req, req.nh.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof sa) < 0)
    e = errno;
  while (!e && !done) {
    ssize_t r = recv(fd, buf, cap, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      e = r < 0 ? errno : EIO;
      break;
    }
    for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)r);
         nh = NLMSG_NEXT(nh, r)) {
      if (nh->nlmsg_type == NLMSG_DONE) {
        done = 1;
        break;
      }
      if (nh->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *ne = NLMSG_DATA(nh);
        e = ne->error ? -ne->error : EIO;
        break;
      }
      if (nh->nlmsg_type != RTM_NEWNEIGH || nh->nlmsg_len < NLMSG_LENGTH(sizeof(struct ndmsg)))
        continue;
      struct ndmsg *nd = NLMSG_DATA(nh);
      if (nd->ndm_family != AF_INET || (nd->ndm_state & NUD_NOARP)) continue;
      size_t i = 0;
      while (i < nidx && idx[i].ifindex != nd->ndm_ifindex)
        i++;
      if (i == nidx) {
        idx_t *a = realloc(idx, (nidx + 1) * sizeof *a);
        if (!a) {
          e = ENOMEM;
          break;
        }
        idx = a;
        idx[nidx++] = (idx_t){nd->ndm_ifindex, 0};
      }
      idx[i].entries++;
    }
  }
  if (!e) {
    for (size_t i = 0; i < nidx; i++) {
      char name[IF_NAMESIZE];
      if (!if_indextoname((unsigned)idx[i].ifindex, name)) continue; /* gone meanwhile */
      if (mw_node_device_ignored(s->node->arp_include, s->node->arp_exclude, name)) continue;
      mw_node_put(s, fam, (double)idx[i].entries, name);
    }
  }
  free(buf);
  free(idx);
  close(fd);
  if (e) errno = e;
  return e ? -1 : 0;
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
