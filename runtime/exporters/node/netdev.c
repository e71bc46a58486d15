/* exporters/node/netdev.c: the netdev collector (node_exporter collector/netdev_linux.go,
 * netdev_common.go): per-device counters from an RTM_GETLINK dump (rtnetlink,
 * IFLA_STATS64; the default) or from <procfs>/net/dev (netdev_netlink = 0, or
 * when netlink fails), named as node_exporter's legacy (non-detailed) mode
 * names them, e.g. receive_drop = rx_dropped + rx_missed_errors. */
#include <errno.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "exporters/node/node.h"

enum {
  RX_BYTES,
  RX_PACKETS,
  RX_ERRS,
  RX_DROP,
  RX_FIFO,
  RX_FRAME,
  RX_COMPRESSED,
  RX_MULTICAST,
  TX_BYTES,
  TX_PACKETS,
  TX_ERRS,
  TX_DROP,
  TX_FIFO,
  TX_COLLS,
  TX_CARRIER,
  TX_COMPRESSED,
  RX_NOHANDLER,
  NSTATS
};
static const char *const keys[NSTATS] = {
    "receive_bytes",    "receive_packets",  "receive_errs",       "receive_drop",
    "receive_fifo",     "receive_frame",    "receive_compressed", "receive_multicast",
    "transmit_bytes",   "transmit_packets", "transmit_errs",      "transmit_drop",
    "transmit_fifo",    "transmit_colls",   "transmit_carrier",   "transmit_compressed",
    "receive_nohandler"};

typedef struct {
  int32_t fam[NSTATS];
} fams_t;

static void put_dev(mw_node_scrape_t *s, fams_t *fams, const char *dev, const uint64_t *v,
                    size_t nstats) {
  if (mw_node_device_ignored(s->node->netdev_include, s->node->netdev_exclude, dev)) return;
  for (size_t i = 0; i < nstats; i++) {
    if (fams->fam[i] == -2) {
      char name[96], help[128];
      snprintf(name, sizeof name, "node_network_%s_total", keys[i]);
      snprintf(help, sizeof help, "Network device statistic %s.", keys[i]);
      fams->fam[i] = mw_node_family(s, name, help, MW_METRICS_COUNTER, "device");
    }
    mw_node_put(s, fams->fam[i], (double)v[i], dev);
  }
}

/* 0, or -1 with errno set (then nothing was reported). */
typedef struct {
  char name[32];
  uint64_t v[NSTATS];
} link_t;

typedef struct {
  link_t *links;
  size_t n;
} links_t;

/* One RTM_NEWLINK message: the device's name and counters, if it has both. */
static int add_link(const struct nlmsghdr *nh, void *ctx) {
  links_t *ls = ctx;
  if (nh->nlmsg_type != RTM_NEWLINK) return 0;
  const struct ifinfomsg *ifi = NLMSG_DATA(nh);
  int alen = (int)(nh->nlmsg_len - NLMSG_LENGTH(sizeof *ifi));
  const char *name = NULL;
  struct rtnl_link_stats64 st;
  int have = 0;
  memset(&st, 0, sizeof st);
  for (struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
    if (a->rta_type == IFLA_IFNAME) name = RTA_DATA(a);
    if (a->rta_type == IFLA_STATS64) {
      size_t l = RTA_PAYLOAD(a);
      memcpy(&st, RTA_DATA(a), l < sizeof st ? l : sizeof st);
      have = 1;
    }
  }
  if (!name || !have) return 0;
  link_t *nl = realloc(ls->links, (ls->n + 1) * sizeof *nl);
  if (!nl) return ENOMEM;
  ls->links = nl;
  link_t *d = &ls->links[ls->n++];
  snprintf(d->name, sizeof d->name, "%s", name);
  uint64_t *v = d->v;
  v[RX_BYTES] = st.rx_bytes;
  v[RX_PACKETS] = st.rx_packets;
  v[RX_ERRS] = st.rx_errors;
  v[RX_DROP] = st.rx_dropped + st.rx_missed_errors;
  v[RX_FIFO] = st.rx_fifo_errors;
  v[RX_FRAME] = st.rx_frame_errors + st.rx_length_errors + st.rx_over_errors + st.rx_crc_errors;
  v[RX_COMPRESSED] = st.rx_compressed;
  v[RX_MULTICAST] = st.multicast;
  v[TX_BYTES] = st.tx_bytes;
  v[TX_PACKETS] = st.tx_packets;
  v[TX_ERRS] = st.tx_errors;
  v[TX_DROP] = st.tx_dropped;
  v[TX_FIFO] = st.tx_fifo_errors;
  v[TX_COLLS] = st.collisions;
  v[TX_CARRIER] =
      st.tx_carrier_errors + st.tx_aborted_errors + st.tx_heartbeat_errors + st.tx_window_errors;
  v[TX_COMPRESSED] = st.tx_compressed;
  v[RX_NOHANDLER] = st.rx_nohandler;
  return 0;
}

/* Every link's counters (RTM_GETLINK), reported once the dump is complete. */
static int from_netlink(mw_node_scrape_t *s, fams_t *fams) {
  struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
  links_t ls = {0};
  int rc = mw_node_rtnl_dump(RTM_GETLINK, &ifi, sizeof ifi, add_link, &ls);
  if (rc == 0)
    for (size_t i = 0; i < ls.n; i++)
      put_dev(s, fams, ls.links[i].name, ls.links[i].v, NSTATS);
  int e = errno;
  free(ls.links);
  errno = e;
  return rc;
}

static int from_proc(mw_node_scrape_t *s, fams_t *fams) {
  const char *data = mw_node_read(s, mw_node_proc_path(s, "net/dev"), NULL);
  if (!data)
    return mw_node_fail(s, "couldn't get netstats: failed to parse /proc/net/dev: %s",
                        strerror(errno));
  char *copy = strdup(data);
  if (!copy) return mw_node_fail(s, "out of memory");
  int lineno = 0, rc = 0;
  for (char *line = copy; line && *line; lineno++) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    char *cur = line;
    line = nl ? nl + 1 : NULL;
    if (lineno < 2) continue; /* two header lines */
    char *colon = strrchr(cur, ':');
    if (!colon) {
      rc = mw_node_fail(s, "invalid net/dev line, missing colon");
      break;
    }
    *colon = '\0';
    char *name = cur, *f[17];
    while (*name == ' ')
      name++;
    size_t nf = mw_node_fields(colon + 1, f, 17);
    uint64_t v[16];
    if (nf < 16) {
      rc = mw_node_fail(s, "invalid net/dev line for %s", name);
      break;
    }
    for (int i = 0; i < 16 && rc == 0; i++)
      if (mw_node_parse_u64(f[i], 10, &v[i]) < 0) rc = mw_node_fail(s, "invalid value %s", f[i]);
    if (rc < 0) break;
    /* /proc/net/dev columns are the legacy counters already, in this order */
    put_dev(s, fams, name, v, 16);
  }
  free(copy);
  return rc;
}

int mw_node_collect_netdev(mw_node_scrape_t *s) {
  fams_t fams;
  for (int i = 0; i < NSTATS; i++)
    fams.fam[i] = -2;
  if (s->node->netdev_netlink && from_netlink(s, &fams) == 0) return 0;
  return from_proc(s, &fams);
}
