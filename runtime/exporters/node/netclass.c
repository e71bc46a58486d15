/* exporters/node/netclass.c: the netclass collector (node_exporter 1.5
 * collector/netclass_linux.go over procfs 0.8's sysfs/net_class.go): for
 * each entry of <sysfs>/class/net that is not a regular file and not matched
 * by ignored_devices, node_network_up, node_network_info{address, broadcast,
 * duplex, operstate, ifalias} and one gauge (counter for the carrier change
 * counts) per numeric attribute, named and helped as node_exporter does.
 *
 * Attributes are read as util.SysReadFile does (one read of at most 128
 * bytes, white space trimmed); a file that is missing, unreadable (EACCES,
 * EPERM) or answers EOPNOTSUPP or EINVAL (carrier, speed and duplex of a link
 * that is down) is skipped, any other failure fails the collector and nothing
 * is reported (node_exporter gathers every interface before sending).
 * Numbers parse as strconv.ParseInt(v, 0, 64); a value that does not parse
 * reports 0, as procfs 0.8's ValueParser.PInt64 returns a pointer to 0 then.
 * speed_bytes = speed * 1000 * 1000 / 8 in int64 arithmetic; with
 * ignore_invalid_speed a negative speed reports no speed_bytes. Only the
 * attributes node_exporter reports are read (it reads every file of the
 * directory and ignores the others). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "exporters/node/node.h"

enum { A_STR, A_INT };

/* The attribute files, and the metric each numeric one becomes. */
static const struct {
  const char *file, *metric;
  int kind, counter;
} attrs[] = {
    {"address", NULL, A_STR, 0},
    {"broadcast", NULL, A_STR, 0},
    {"duplex", NULL, A_STR, 0},
    {"ifalias", NULL, A_STR, 0},
    {"operstate", NULL, A_STR, 0},
    {"addr_assign_type", "address_assign_type", A_INT, 0},
    {"carrier", "carrier", A_INT, 0},
    {"carrier_changes", "carrier_changes_total", A_INT, 1},
    {"carrier_up_count", "carrier_up_changes_total", A_INT, 1},
    {"carrier_down_count", "carrier_down_changes_total", A_INT, 1},
    {"dev_id", "device_id", A_INT, 0},
    {"dormant", "dormant", A_INT, 0},
    {"flags", "flags", A_INT, 0},
    {"ifindex", "iface_id", A_INT, 0},
    {"iflink", "iface_link", A_INT, 0},
    {"link_mode", "iface_link_mode", A_INT, 0},
    {"mtu", "mtu_bytes", A_INT, 0},
    {"name_assign_type", "name_assign_type", A_INT, 0},
    {"netdev_group", "net_dev_group", A_INT, 0},
    {"speed", "speed_bytes", A_INT, 0},
    {"tx_queue_len", "transmit_queue_length", A_INT, 0},
    {"type", "protocol_type", A_INT, 0},
};
enum { NATTRS = sizeof attrs / sizeof attrs[0], NSTR = 5, SPEED = 19 };

typedef struct {
  char *name;
  char *str[NSTR]; /* address broadcast duplex ifalias operstate ("" if absent) */
  int has[NATTRS];
  int64_t num[NATTRS];
} iface_t;

static void iface_free(iface_t *ifs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(ifs[i].name);
    for (int k = 0; k < NSTR; k++)
      free(ifs[i].str[k]);
  }
  free(ifs);
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(((const iface_t *)a)->name, ((const iface_t *)b)->name);
}

/* Reads one interface's attributes into it; 0, or -1 (s->err set). */
static int read_iface(mw_node_scrape_t *s, const char *base, iface_t *it) {
  char path[8192], buf[MW_NODE_SYSREAD_MAX + 1];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", base, it->name);
  int e = stat(path, &st) < 0 ? errno : !S_ISDIR(st.st_mode) ? ENOTDIR : 0;
  if (e) { /* procfs reads the directory */
    if (e == ENOENT || e == EACCES || e == EPERM) {
      s->nodata = 1; /* node_exporter: os.ErrNotExist or ErrPermission is ErrNoData */
      return mw_node_fail(s, "Could not read netclass file: %s: %s", path, strerror(e));
    }
    return mw_node_fail(s, "could not get net class info: open %s: %s", path, strerror(e));
  }
  for (int i = 0; i < NATTRS; i++) {
    size_t len;
    snprintf(path, sizeof path, "%s/%s/%s", base, it->name, attrs[i].file);
    if (mw_node_sysread(s, path, buf, &len) < 0) {
      e = errno;
      if (e == ENOENT || e == EACCES || e == EPERM || e == EOPNOTSUPP || e == EINVAL ||
          e == EISDIR || e == ENOTDIR)
        continue;
      return mw_node_fail(s, "could not get net class info: failed to read file %s: %s", path,
                          strerror(e));
    }
    char *v = mw_node_trim(buf, &len);
    if (attrs[i].kind == A_STR) {
      if (!(it->str[i] = strdup(v))) return mw_node_fail(s, "out of memory");
      continue;
    }
    int64_t x = 0;
    if (mw_node_parse_goint(v, len, &x) < 0) x = 0;
    it->has[i] = 1;
    it->num[i] = x;
  }
  return 0;
}

int mw_node_collect_netclass(mw_node_scrape_t *s) {
  mw_node_t *n = s->node;
  char base[4096];
  snprintf(base, sizeof base, "%s/class/net", n->sysfs);
  DIR *d = opendir(base);
  if (!d) {
    int e = errno;
    if (e == ENOENT || e == EACCES || e == EPERM) {
      s->nodata = 1;
      return mw_node_fail(s, "Could not read netclass file: %s", strerror(e));
    }
    return mw_node_fail(s, "could not get net class info: cannot access dir %s: %s", base,
                        strerror(e));
  }
  iface_t *ifs = NULL;
  size_t nifs = 0, cap = 0;
  int rc = -1;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
    unsigned char type = e->d_type;
    if (type == DT_UNKNOWN) {
      struct stat st;
      if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
        type = DT_REG;
    }
    if (type == DT_REG) continue; /* bonding_masters */
    if (mw_node_re_match(n->netclass_ignored, e->d_name, strlen(e->d_name))) continue;
    if (nifs == cap) {
      size_t c = cap ? cap * 2 : 16;
      iface_t *a = realloc(ifs, c * sizeof *a);
      if (!a) goto oom;
      ifs = a;
      cap = c;
    }
    memset(&ifs[nifs], 0, sizeof ifs[nifs]);
    if (!(ifs[nifs].name = strdup(e->d_name))) goto oom;
    nifs++;
  }
  if (nifs) qsort(ifs, nifs, sizeof *ifs, cmp_name);
  for (size_t i = 0; i < nifs; i++)
    if (read_iface(s, base, &ifs[i]) < 0) goto done;

  int32_t up = mw_node_family(s, "node_network_up", "Value is 1 if operstate is 'up', 0 otherwise.",
                              MW_METRICS_GAUGE, "device");
  int32_t info = mw_node_family(
      s, "node_network_info", "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
      MW_METRICS_GAUGE, "device,address,broadcast,duplex,operstate,ifalias");
  int32_t fams[NATTRS];
  for (int k = 0; k < NATTRS; k++)
    fams[k] = -2;
  for (size_t i = 0; i < nifs; i++) {
    iface_t *it = &ifs[i];
    const char *str[NSTR];
    for (int k = 0; k < NSTR; k++)
      str[k] = it->str[k] ? it->str[k] : "";
    mw_node_put(s, up, strcmp(str[4], "up") == 0 ? 1 : 0, it->name);
    mw_node_put(s, info, 1, it->name, str[0], str[1], str[2], str[4], str[3]);
    for (int k = NSTR; k < NATTRS; k++) {
      if (!it->has[k]) continue;
      int64_t v = it->num[k];
      if (k == SPEED) {
        if (v < 0 && n->netclass_ignore_invalid_speed) continue;
        /* int64(*Speed * 1000 * 1000 / 8), wrapping as Go does */
        v = (int64_t)((uint64_t)v * 1000000u) / 8;
      }
      if (fams[k] == -2) {
        char name[96], help[96];
        snprintf(name, sizeof name, "node_network_%s", attrs[k].metric);
        snprintf(help, sizeof help, "Network device property: %s", attrs[k].metric);
        fams[k] = mw_node_family(
            s, name, help, attrs[k].counter ? MW_METRICS_COUNTER : MW_METRICS_GAUGE, "device");
      }
      mw_node_put(s, fams[k], (double)v, it->name);
    }
  }
  rc = 0;
  goto done;
oom:
  mw_node_fail(s, "out of memory");
done:
  closedir(d);
  iface_free(ifs, nifs);
  return rc;
}
