/* exporters/node/node.c: the node collector set: options, the collector registry, one
 * collection (a kept metrics registry refilled collector by collector, swept
 * of series not seen again, then written by exposition/write.c), and the helpers the
 * node_<collector>.c readers share (file reads through kept procfs/sysfs fds). */
#include "exporters/node/node.h"
#include "base/err.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <fcntl.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/re2.h"

#define MAX_FILE (16u << 20)
#define PROC_MAGIC 0x9fa0u      /* PROC_SUPER_MAGIC */
#define SYSFS_MAGIC 0x62656572u /* SYSFS_MAGIC */
#define MAX_KEPT_FDS 4096       /* beyond this (or RLIMIT_NOFILE / 4), files are opened per read */

#define MAX_MEMO 8192 /* beyond this, mw_node_memo gives NULL */

struct mw_node_memo {
  struct mw_node_memo *next; /* hash chain */
  uint64_t hash;
  int32_t value;
  char tag;
  size_t len;
  char key[];
};

struct mw_node_fd {
  mw_node_fd_t *next; /* hash chain */
  uint64_t hash;
  uint64_t used; /* the last collection (epoch) that read it */
  int fd;
  char path[]; /* NUL-terminated */
};

/* --- the collectors --------------------------------------------------------- */

/* Sorted by name; default_enabled as in node_exporter 1.5.0. */
static const mw_node_collector_t collectors[] = {
    {"arp", 1, mw_node_collect_arp, NULL},
    {"conntrack", 1, mw_node_collect_conntrack, NULL},
    {"cpu", 1, mw_node_collect_cpu, mw_node_release_cpu},
    {"cpufreq", 1, mw_node_collect_cpufreq, NULL},
    {"diskstats", 1, mw_node_collect_diskstats, NULL},
    {"entropy", 1, mw_node_collect_entropy, NULL},
    {"filefd", 1, mw_node_collect_filefd, NULL},
    {"filesystem", 1, mw_node_collect_filesystem, mw_node_release_filesystem},
    {"hwmon", 1, mw_node_collect_hwmon, NULL},
    {"loadavg", 1, mw_node_collect_loadavg, NULL},
    {"mdadm", 1, mw_node_collect_mdadm, NULL},
    {"meminfo", 1, mw_node_collect_meminfo, NULL},
    {"netclass", 1, mw_node_collect_netclass, NULL},
    {"netdev", 1, mw_node_collect_netdev, NULL},
    {"netstat", 1, mw_node_collect_netstat, NULL},
    {"nfs", 1, mw_node_collect_nfs, NULL},
    {"nfsd", 1, mw_node_collect_nfsd, NULL},
    {"os", 1, mw_node_collect_os, mw_node_release_os},
    {"powersupplyclass", 1, mw_node_collect_powersupplyclass, NULL},
    {"pressure", 1, mw_node_collect_pressure, NULL},
    {"schedstat", 1, mw_node_collect_schedstat, NULL},
    {"selinux", 1, mw_node_collect_selinux, mw_node_release_selinux},
    {"sockstat", 1, mw_node_collect_sockstat, NULL},
    {"softnet", 1, mw_node_collect_softnet, NULL},
    {"stat", 1, mw_node_collect_stat, NULL},
    {"textfile", 1, mw_node_collect_textfile, mw_node_release_textfile},
    {"thermal_zone", 1, mw_node_collect_thermal_zone, NULL},
    {"time", 1, mw_node_collect_time, NULL},
    {"timex", 1, mw_node_collect_timex, NULL},
    {"udp_queues", 1, mw_node_collect_udp_queues, NULL},
    {"uname", 1, mw_node_collect_uname, NULL},
    {"vmstat", 1, mw_node_collect_vmstat, NULL},
    {"xfs", 1, mw_node_collect_xfs, NULL},
};
#define NCOLLECTORS (sizeof collectors / sizeof collectors[0])
_Static_assert(NCOLLECTORS <= 64, "collector bits fit in a uint64_t");

const mw_node_collector_t *mw_node_collectors(size_t *n) {
  *n = NCOLLECTORS;
  return collectors;
}

/* Comma-separated names, built once (static strings). */
static const char *names_list(int defaults_only) {
  static char all[512], defs[512];
  char *out = defaults_only ? defs : all;
  if (out[0]) return out;
  size_t len = 0;
  for (size_t i = 0; i < NCOLLECTORS; i++) {
    if (defaults_only && !collectors[i].default_enabled) continue;
    len += (size_t)snprintf(out + len, 512 - len, "%s%s", len ? "," : "", collectors[i].name);
  }
  return out;
}

void mw_node_opts_init(mw_node_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->collectors = names_list(1);
  o->procfs_path = "/proc";
  o->sysfs_path = "/sys";
  o->rootfs_path = "/";
  o->udev_data_path = "/run/udev/data";
  o->fs_mount_points_exclude =
      "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
  o->fs_types_exclude =
      "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|"
      "iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|"
      "sysfs|tracefs)$";
  o->fs_mount_timeout = 5;
  o->netdev_netlink = 1;
  o->disk_device_exclude = "^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\\d+n\\d+p)\\d+$";
  o->netstat_fields = "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|"
                      "Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|"
                      "TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|"
                      "RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|"
                      "RcvbufErrors|SndbufErrors))$";
  o->vmstat_fields = "^(oom_kill|pgpg|pswp|pg.*fault).*";
  o->cpu_guest = 1;
  o->netclass_ignored_devices = "^$";
  o->powersupply_ignored = "^$";
  o->textfile_directory = "";
}

/* --- regexes ------------------------------------------------------------------ */

struct mw_node_re {
  pcre2_code *code;
  pcre2_match_data *md;
};

int mw_node_re_compile(const char *pattern, mw_node_re_t **out, char *err, size_t errlen) {
  char msg[200];
  mw_node_re_t *re = NULL;
  int rc = -1;
  *out = NULL;
  re = calloc(1, sizeof *re);
  if (!re) {
    mw_seterr(err, errlen, "out of memory");
    goto cleanup;
  }
  /* unanchored, as node_exporter's regexp.MatchString */
  re->code = mw_re2_compile(pattern, strlen(pattern), 0, NULL, msg, sizeof msg);
  if (!re->code) {
    mw_seterr(err, errlen, "regex %s: %s", pattern, msg);
    goto cleanup;
  }
  re->md = pcre2_match_data_create_from_pattern(re->code, NULL);
  if (!re->md) {
    mw_seterr(err, errlen, "out of memory");
    goto cleanup;
  }
  *out = re;
  re = NULL;
  rc = 0;
cleanup:
  mw_node_re_free(re);
  return rc;
}

void mw_node_re_free(mw_node_re_t *re) {
  if (!re) return;
  pcre2_match_data_free(re->md);
  pcre2_code_free(re->code);
  free(re);
}

int mw_node_re_match(const mw_node_re_t *re, const char *s, size_t len) {
  return pcre2_match(re->code, (PCRE2_SPTR)s, len, 0, 0, re->md, NULL) >= 0;
}

int mw_node_device_ignored(const mw_node_re_t *include, const mw_node_re_t *exclude,
                           const char *name) {
  size_t n = strlen(name);
  return (exclude && mw_node_re_match(exclude, name, n)) ||
         (include && !mw_node_re_match(include, name, n));
}

/* --- create / free --------------------------------------------------------------- */

static int collector_index(const char *name, size_t len) {
  for (size_t i = 0; i < NCOLLECTORS; i++)
    if (strlen(collectors[i].name) == len && memcmp(collectors[i].name, name, len) == 0)
      return (int)i;
  return -1;
}

/* Copies a path prefix without trailing slashes ("/" stays "/"). */
static char *dup_root(const char *s) {
  size_t n = strlen(s);
  while (n > 1 && s[n - 1] == '/')
    n--;
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

/* Compiles pattern into *re; an empty pattern leaves *re NULL when empty_is_none. */
static int compile_opt(const char *pattern, const char *def, int empty_is_none, mw_node_re_t **re,
                       const char *what, char *err, size_t errlen) {
  char msg[300];
  if (!pattern) pattern = def;
  if (!pattern || (empty_is_none && !pattern[0])) return 0;
  if (mw_node_re_compile(pattern, re, msg, sizeof msg) < 0) {
    mw_seterr(err, errlen, "%s: %s", what, msg);
    return -1;
  }
  return 0;
}

int mw_node_create(const mw_node_opts_t *o, mw_node_t **out, char *err, size_t errlen) {
  mw_node_opts_t d;
  mw_node_t *n = NULL;
  int rc = -1;
  *out = NULL;
  mw_node_opts_init(&d);
  if (!o) o = &d;
  n = calloc(1, sizeof *n);
  if (!n) goto oom;

  const char *list = o->collectors ? o->collectors : d.collectors;
  for (const char *p = list; *p;) {
    while (*p == ',' || *p == ' ')
      p++;
    const char *e = p;
    while (*e && *e != ',' && *e != ' ')
      e++;
    if (e == p) break;
    int i = collector_index(p, (size_t)(e - p));
    if (i < 0) {
      mw_seterr(err, errlen, "unknown collector %.*s", (int)(e - p), p);
      goto cleanup;
    }
    n->enabled |= (uint64_t)1 << i;
    p = e;
  }

  n->procfs = dup_root(o->procfs_path ? o->procfs_path : d.procfs_path);
  n->sysfs = dup_root(o->sysfs_path ? o->sysfs_path : d.sysfs_path);
  n->rootfs = dup_root(o->rootfs_path ? o->rootfs_path : d.rootfs_path);
  n->udev = dup_root(o->udev_data_path ? o->udev_data_path : d.udev_data_path);
  n->textfile_dir = strdup(o->textfile_directory ? o->textfile_directory : "");
  n->errors = calloc(1, 1);
  if (!n->procfs || !n->sysfs || !n->rootfs || !n->udev || !n->textfile_dir || !n->errors) goto oom;
  struct rlimit rl;
  n->max_kept_fds = MAX_KEPT_FDS;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur / 4 < MAX_KEPT_FDS)
    n->max_kept_fds = (size_t)(rl.rlim_cur / 4);
  n->netclass_ignore_invalid_speed = o->netclass_ignore_invalid_speed;
  n->arp_netlink = o->arp_netlink;
  n->fs_mount_timeout = o->fs_mount_timeout > 0 ? o->fs_mount_timeout : d.fs_mount_timeout;
  n->netdev_netlink = o->netdev_netlink;
  n->cpu_guest = o->cpu_guest;
  n->stat_softirq = o->stat_softirq;
  /* as node_exporter: a flags/bugs filter turns cpu info on */
  n->cpu_info = o->cpu_info || (o->cpu_flags_include && o->cpu_flags_include[0]) ||
                (o->cpu_bugs_include && o->cpu_bugs_include[0]);

  if (o->netdev_device_include && o->netdev_device_include[0] && o->netdev_device_exclude &&
      o->netdev_device_exclude[0]) {
    mw_seterr(err, errlen, "netdev: device_include and device_exclude are mutually exclusive");
    goto cleanup;
  }
  if (o->arp_device_include && o->arp_device_include[0] && o->arp_device_exclude &&
      o->arp_device_exclude[0]) {
    mw_seterr(err, errlen, "arp: device_include and device_exclude are mutually exclusive");
    goto cleanup;
  }
  if (o->hwmon_chip_include && o->hwmon_chip_include[0] && o->hwmon_chip_exclude &&
      o->hwmon_chip_exclude[0]) {
    mw_seterr(err, errlen, "hwmon: chip_include and chip_exclude are mutually exclusive");
    goto cleanup;
  }
  /* Alloy: a disk include replaces the default exclude. */
  const char *disk_exclude = o->disk_device_exclude;
  if (o->disk_device_include && o->disk_device_include[0]) disk_exclude = "";
  if (compile_opt(o->fs_mount_points_exclude, d.fs_mount_points_exclude, 0,
                  &n->fs_mount_points_exclude, "filesystem mount_points_exclude", err,
                  errlen) < 0 ||
      compile_opt(o->fs_types_exclude, d.fs_types_exclude, 0, &n->fs_types_exclude,
                  "filesystem fs_types_exclude", err, errlen) < 0 ||
      compile_opt(o->netdev_device_include, NULL, 1, &n->netdev_include, "netdev device_include",
                  err, errlen) < 0 ||
      compile_opt(o->netdev_device_exclude, NULL, 1, &n->netdev_exclude, "netdev device_exclude",
                  err, errlen) < 0 ||
      compile_opt(o->disk_device_include, NULL, 1, &n->disk_include, "disk device_include", err,
                  errlen) < 0 ||
      compile_opt(disk_exclude, d.disk_device_exclude, 1, &n->disk_exclude, "disk device_exclude",
                  err, errlen) < 0 ||
      compile_opt(o->netstat_fields, d.netstat_fields, 0, &n->netstat_fields, "netstat fields", err,
                  errlen) < 0 ||
      compile_opt(o->vmstat_fields, d.vmstat_fields, 0, &n->vmstat_fields, "vmstat fields", err,
                  errlen) < 0 ||
      compile_opt(o->cpu_flags_include, NULL, 1, &n->cpu_flags_include, "cpu flags_include", err,
                  errlen) < 0 ||
      compile_opt(o->cpu_bugs_include, NULL, 1, &n->cpu_bugs_include, "cpu bugs_include", err,
                  errlen) < 0 ||
      compile_opt(o->netclass_ignored_devices, d.netclass_ignored_devices, 0, &n->netclass_ignored,
                  "netclass ignored_devices", err, errlen) < 0 ||
      compile_opt(o->arp_device_include, NULL, 1, &n->arp_include, "arp device_include", err,
                  errlen) < 0 ||
      compile_opt(o->arp_device_exclude, NULL, 1, &n->arp_exclude, "arp device_exclude", err,
                  errlen) < 0 ||
      compile_opt(o->hwmon_chip_include, NULL, 1, &n->hwmon_chip_include, "hwmon chip_include", err,
                  errlen) < 0 ||
      compile_opt(o->hwmon_chip_exclude, NULL, 1, &n->hwmon_chip_exclude, "hwmon chip_exclude", err,
                  errlen) < 0 ||
      compile_opt(o->powersupply_ignored, d.powersupply_ignored, 0, &n->powersupply_ignored,
                  "powersupply ignored_supplies", err, errlen) < 0)
    goto cleanup;
  *out = n;
  n = NULL;
  rc = 0;
  goto cleanup;
oom:
  mw_seterr(err, errlen, "out of memory");
cleanup:
  mw_node_free(n);
  return rc;
}

void mw_node_free(mw_node_t *n) {
  if (!n) return;
  free(n->procfs);
  free(n->sysfs);
  free(n->rootfs);
  free(n->udev);
  free(n->textfile_dir);
  free(n->errors);
  mw_node_re_t *res[] = {n->fs_mount_points_exclude,
                         n->fs_types_exclude,
                         n->netdev_include,
                         n->netdev_exclude,
                         n->disk_include,
                         n->disk_exclude,
                         n->netstat_fields,
                         n->vmstat_fields,
                         n->cpu_flags_include,
                         n->cpu_bugs_include,
                         n->netclass_ignored,
                         n->arp_include,
                         n->arp_exclude,
                         n->hwmon_chip_include,
                         n->hwmon_chip_exclude,
                         n->powersupply_ignored};
  for (size_t i = 0; i < sizeof res / sizeof res[0]; i++)
    mw_node_re_free(res[i]);
  for (size_t i = 0; i < NCOLLECTORS; i++)
    if (collectors[i].release) collectors[i].release(n);
  if (n->scrape) {
    mw_metrics_free(n->scrape->reg);
    mw_node_raw_free(n->scrape->raw);
    free(n->scrape->buf);
    free(n->scrape);
  }
  for (size_t i = 0; i < n->fds_size; i++) {
    for (mw_node_fd_t *f = n->fds[i], *next; f; f = next) {
      next = f->next;
      close(f->fd);
      free(f);
    }
  }
  free(n->fds);
  for (size_t i = 0; i < n->memo_size; i++) {
    for (struct mw_node_memo *m = n->memo[i], *next; m; m = next) {
      next = m->next;
      free(m);
    }
  }
  free(n->memo);
  free(n);
}

const char *mw_node_errors(const mw_node_t *n) { return n && n->errors ? n->errors : ""; }

/* --- collection ----------------------------------------------------------------- */

static double monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Appends "name: msg\n" to *errors (best effort). */
static void add_error(char **errors, const char *name, const char *msg) {
  size_t old = strlen(*errors), add = strlen(name) + strlen(msg) + 3;
  char *e = realloc(*errors, old + add + 1);
  if (!e) return;
  snprintf(e + old, add + 1, "%s: %s\n", name, msg);
  *errors = e;
}

/* Deletes every series not reported in the collection s->epoch. */
static void sweep(mw_node_scrape_t *s) {
  size_t nf;
  mw_metrics_family_t *const *fams = mw_metrics_families(s->reg, &nf);
  for (size_t i = 0; i < nf; i++) {
    mw_metrics_family_t *f = fams[i];
    for (size_t b = 0; b < f->table_size && f->nchildren; b++) {
      for (mw_metrics_child_t *c = f->table[b], *next; c; c = next) {
        next = c->next;
        if (c->mark != s->epoch) mw_metrics_child_del(s->reg, c->handle);
      }
    }
  }
}

/* Closes the kept fds the collection epoch did not read: the files of
 * devices, interfaces and mounts that went away. */
static void fd_sweep(mw_node_t *n, uint64_t epoch) {
  for (size_t i = 0; i < n->fds_size; i++) {
    for (mw_node_fd_t **pp = &n->fds[i]; *pp;) {
      mw_node_fd_t *f = *pp;
      if (f->used == epoch) {
        pp = &f->next;
        continue;
      }
      *pp = f->next;
      close(f->fd);
      free(f);
      n->nfds--;
    }
  }
}

int mw_node_collect(mw_node_t *n, int format, mw_expose_buf_t *buf, char *err, size_t errlen) {
  mw_node_scrape_t *s;
  char *errors = NULL;
  mw_expose_buf_t raw = {0};
  mw_expose_extra_t *extra = NULL;
  size_t nextra = 0;
  int rc = -1;
  if (!n || !buf) {
    mw_seterr(err, errlen, "node: no collector set or buffer");
    return -1;
  }
  if (!n->scrape) {
    n->scrape = calloc(1, sizeof *n->scrape);
    if (!n->scrape) goto oom;
    n->scrape->node = n;
  }
  s = n->scrape;
  if (!s->reg && !(s->reg = mw_metrics_create())) goto oom;
  if (!s->raw && !(s->raw = mw_node_raw_new())) goto oom;
  mw_node_raw_reset(s->raw);
  errors = calloc(1, 1);
  if (!errors) goto oom;
  s->epoch++;

  int32_t dur_fam = mw_node_family(s, "node_scrape_collector_duration_seconds",
                                   "node_exporter: Duration of a collector scrape.",
                                   MW_METRICS_GAUGE, "collector");
  int32_t ok_fam = mw_node_family(s, "node_scrape_collector_success",
                                  "node_exporter: Whether a collector succeeded.", MW_METRICS_GAUGE,
                                  "collector");
  for (size_t i = 0; i < NCOLLECTORS; i++) {
    if (!(n->enabled & ((uint64_t)1 << i))) continue;
    s->err[0] = '\0';
    s->note[0] = '\0';
    s->nodata = 0;
    double t0 = monotonic();
    int r = collectors[i].collect(s);
    double dt = monotonic() - t0;
    if (r < 0 && !s->nodata) add_error(&errors, collectors[i].name, s->err[0] ? s->err : "failed");
    if (r >= 0 && s->note[0]) add_error(&errors, collectors[i].name, s->note);
    mw_node_put(s, dur_fam, dt, collectors[i].name);
    mw_node_put(s, ok_fam, r < 0 ? 0 : 1, collectors[i].name);
  }
  sweep(s);
  fd_sweep(n, s->epoch);
  if (mw_node_raw_write(s->raw, s->reg, format, &raw, &extra, &nextra) < 0) goto oom;
  if (mw_expose_write_extra(s->reg, format, extra, nextra, buf, err, errlen) < 0) goto cleanup;
  free(n->errors);
  n->errors = errors;
  errors = NULL;
  rc = 0;
  goto cleanup;
oom:
  mw_seterr(err, errlen, "node: out of memory");
cleanup:
  free(errors);
  free(extra);
  mw_expose_buf_free(&raw);
  return rc;
}

/* --- helpers ---------------------------------------------------------------------- */

int mw_node_fail(mw_node_scrape_t *s, const char *fmt, ...) {
  if (!s->err[0]) {
    va_list ap;
    va_start(ap, fmt);
    mw_vseterr(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
  }
  return -1;
}

const char *mw_node_pathf(char *dst, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(dst, cap, fmt, ap);
  va_end(ap);
  return k < 0 || (size_t)k >= cap ? NULL : dst;
}

void mw_node_note(mw_node_scrape_t *s, const char *fmt, ...) {
  if (s->note[0]) return;
  va_list ap;
  va_start(ap, fmt);
  mw_vseterr(s->note, sizeof s->note, fmt, ap);
  va_end(ap);
}

static const char *join_path(mw_node_scrape_t *s, const char *root, const char *name) {
  int k = snprintf(s->path, sizeof s->path, "%s%s%s", root,
                   root[0] && root[strlen(root) - 1] == '/' ? "" : "/", name);
  return k < 0 || (size_t)k >= sizeof s->path ? NULL : s->path;
}

const char *mw_node_proc_path(mw_node_scrape_t *s, const char *name) {
  return join_path(s, s->node->procfs, name);
}

const char *mw_node_sys_path(mw_node_scrape_t *s, const char *name) {
  return join_path(s, s->node->sysfs, name);
}

static mw_node_fd_t **fd_slot(mw_node_t *n, const char *path, uint64_t h) {
  mw_node_fd_t **pp = &n->fds[h & (n->fds_size - 1)];
  while (*pp && ((*pp)->hash != h || strcmp((*pp)->path, path) != 0))
    pp = &(*pp)->next;
  return pp;
}

/* Keeps fd open under path when it is on procfs or sysfs (best effort: on
 * any failure the caller just closes it). 0 when kept, -1 otherwise. */
static int fd_keep(mw_node_t *n, const char *path, uint64_t h, int fd, uint64_t epoch) {
  struct statfs st;
  if (n->nfds >= n->max_kept_fds || fstatfs(fd, &st) < 0 ||
      ((unsigned long)st.f_type != PROC_MAGIC && (unsigned long)st.f_type != SYSFS_MAGIC))
    return -1;
  if (n->nfds + 1 > n->fds_size) {
    size_t size = n->fds_size ? n->fds_size * 2 : 64;
    mw_node_fd_t **t = calloc(size, sizeof *t);
    if (!t) return -1;
    for (size_t i = 0; i < n->fds_size; i++) {
      for (mw_node_fd_t *f = n->fds[i], *next; f; f = next) {
        next = f->next;
        f->next = t[f->hash & (size - 1)];
        t[f->hash & (size - 1)] = f;
      }
    }
    free(n->fds);
    n->fds = t;
    n->fds_size = size;
  }
  size_t len = strlen(path);
  mw_node_fd_t *f = malloc(sizeof *f + len + 1);
  if (!f) return -1;
  memcpy(f->path, path, len + 1);
  f->hash = h;
  f->fd = fd;
  f->used = epoch;
  f->next = n->fds[h & (n->fds_size - 1)];
  n->fds[h & (n->fds_size - 1)] = f;
  n->nfds++;
  return 0;
}

/* Reads fd from offset 0 to EOF into s->buf; the length, or -1 with errno. */
static ssize_t read_all(mw_node_scrape_t *s, int fd) {
  size_t n = 0;
  for (;;) {
    if (s->buf_cap - n < 4096) {
      size_t cap = s->buf_cap ? s->buf_cap * 2 : 16384;
      char *b = cap <= MAX_FILE ? realloc(s->buf, cap) : NULL;
      if (!b) {
        errno = cap <= MAX_FILE ? ENOMEM : EFBIG;
        return -1;
      }
      s->buf = b;
      s->buf_cap = cap;
    }
    ssize_t r = pread(fd, s->buf + n, s->buf_cap - n - 1, (off_t)n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    n += (size_t)r;
  }
  s->buf[n] = '\0';
  return (ssize_t)n;
}

const char *mw_node_read(mw_node_scrape_t *s, const char *path, size_t *len) {
  mw_node_t *n = s->node;
  if (!path) {
    errno = ENAMETOOLONG;
    return NULL;
  }
  uint64_t h = XXH3_64bits(path, strlen(path));
  ssize_t r;
  if (n->fds_size) {
    mw_node_fd_t **pp = fd_slot(n, path, h);
    if (*pp) {
      (*pp)->used = s->epoch;
      r = read_all(s, (*pp)->fd);
      if (r >= 0) {
        if (len) *len = (size_t)r;
        return s->buf;
      }
      /* gone (ENODEV, ...): forget it and read the path afresh */
      mw_node_fd_t *f = *pp;
      *pp = f->next;
      close(f->fd);
      free(f);
      n->nfds--;
    }
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  r = read_all(s, fd);
  if (r < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return NULL;
  }
  if (fd_keep(n, path, h, fd, s->epoch) < 0) close(fd);
  if (len) *len = (size_t)r;
  return s->buf;
}

int mw_node_read_u64(mw_node_scrape_t *s, const char *path, uint64_t *out) {
  size_t len;
  const char *b = mw_node_read(s, path, &len);
  if (!b) return -1;
  char tmp[32];
  while (len && (b[len - 1] == '\n' || b[len - 1] == ' '))
    len--;
  if (len == 0 || len >= sizeof tmp) {
    errno = EINVAL;
    return -1;
  }
  memcpy(tmp, b, len);
  tmp[len] = '\0';
  if (mw_node_parse_u64(tmp, 10, out) < 0) {
    errno = EINVAL;
    return -1;
  }
  return 0;
}

int mw_node_sysread(mw_node_scrape_t *s, const char *path, char *out, size_t *len) {
  mw_node_t *n = s->node;
  ssize_t r;
  if (!path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  uint64_t h = XXH3_64bits(path, strlen(path));
  if (n->fds_size) {
    mw_node_fd_t **pp = fd_slot(n, path, h);
    if (*pp) {
      (*pp)->used = s->epoch;
      do
        r = pread((*pp)->fd, out, MW_NODE_SYSREAD_MAX, 0);
      while (r < 0 && errno == EINTR);
      if (r >= 0 || (errno != ENODEV && errno != ESTALE && errno != EBADF)) goto done;
      /* the kernel object went away: forget it and open the path afresh */
      mw_node_fd_t *f = *pp;
      *pp = f->next;
      close(f->fd);
      free(f);
      n->nfds--;
    }
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  do
    r = read(fd, out, MW_NODE_SYSREAD_MAX);
  while (r < 0 && errno == EINTR);
  int e = errno;
  /* kept even when the read failed: EINVAL (a link that is down) comes back
   * next time without an open */
  if (fd_keep(n, path, h, fd, s->epoch) < 0) close(fd);
  errno = e;
done:
  if (r < 0) return -1;
  out[r] = '\0';
  *len = (size_t)r;
  return 0;
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

char *mw_node_trim(char *s, size_t *len) {
  size_t n = *len;
  while (n && is_space(s[n - 1]))
    n--;
  while (n && is_space(*s)) {
    s++;
    n--;
  }
  s[n] = '\0';
  *len = n;
  return s;
}

size_t mw_node_fields(char *s, char **fields, size_t max) {
  size_t n = 0;
  while (*s && n < max) {
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\v' || *s == '\f')
      *s++ = '\0';
    if (!*s) break;
    fields[n++] = s;
    while (*s && *s != ' ' && *s != '\t' && *s != '\n' && *s != '\r' && *s != '\v' && *s != '\f')
      s++;
  }
  if (*s) *s = '\0';
  return n;
}

int mw_node_parse_u64(const char *s, int base, uint64_t *out) {
  uint64_t v = 0;
  if (!*s) return -1;
  for (; *s; s++) {
    unsigned d;
    if (*s >= '0' && *s <= '9')
      d = (unsigned)(*s - '0');
    else if (base == 16 && *s >= 'a' && *s <= 'f')
      d = (unsigned)(*s - 'a' + 10);
    else if (base == 16 && *s >= 'A' && *s <= 'F')
      d = (unsigned)(*s - 'A' + 10);
    else
      return -1;
    if (v > (UINT64_MAX - d) / (uint64_t)base) return -1;
    v = v * (uint64_t)base + d;
  }
  *out = v;
  return 0;
}

int mw_node_parse_f64(const char *s, double *out) {
  char *end;
  if (!*s || *s == ' ') return -1;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end) return -1;
  *out = v;
  return 0;
}

size_t mw_node_utf8_len(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  if (n == 0) return 0;
  unsigned char c = p[0], lo = 0x80, hi = 0xbf;
  size_t w;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf)
    w = 2;
  else if (c >= 0xe0 && c <= 0xef)
    w = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
  else if (c >= 0xf0 && c <= 0xf4)
    w = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
  else
    return 0;
  if (n < w || p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i < w; i++)
    if (p[i] < 0x80 || p[i] > 0xbf) return 0;
  return w;
}

char *mw_node_valid_utf8(const char *s, size_t n) {
  char *out = malloc(3 * n + 1), *o = out;
  if (!out) return NULL;
  int in_bad = 0;
  for (size_t i = 0; i < n;) {
    size_t w = mw_node_utf8_len(s + i, n - i);
    if (w) {
      memcpy(o, s + i, w);
      o += w;
      i += w;
      in_bad = 0;
      continue;
    }
    if (!in_bad) {
      memcpy(o, "\xef\xbf\xbd", 3);
      o += 3;
    }
    in_bad = 1;
    i++;
  }
  *o = '\0';
  return out;
}

/* Go's underscoreOK: underscores only between digits (a base prefix counts
 * as a digit). */
static int underscore_ok(const char *s, size_t n) {
  char saw = '^';
  size_t i = 0;
  int hex = 0;
  if (n >= 1 && (s[0] == '-' || s[0] == '+')) {
    s++;
    n--;
  }
  if (n >= 2 && s[0] == '0' && strchr("bBoOxX", s[1])) {
    i = 2;
    saw = '0';
    hex = s[1] == 'x' || s[1] == 'X';
  }
  for (; i < n; i++) {
    char c = s[i], l = (char)(c | 0x20);
    if ((c >= '0' && c <= '9') || (hex && l >= 'a' && l <= 'f')) {
      saw = '0';
      continue;
    }
    if (c == '_') {
      if (saw != '0') return 0;
      saw = '_';
      continue;
    }
    if (saw == '_') return 0;
    saw = '!';
  }
  return saw != '_';
}

int mw_node_parse_goint(const char *s, size_t len, int64_t *out) {
  const char *s0 = s;
  size_t n0 = len;
  int neg = 0, base = 10, underscores = 0;
  if (len == 0) return -1;
  if (s[0] == '+' || s[0] == '-') {
    neg = s[0] == '-';
    s++;
    len--;
  }
  if (len == 0) return -1;
  if (s[0] == '0') {
    char l = len >= 3 ? (char)(s[1] | 0x20) : 0;
    base = l == 'b' ? 2 : l == 'o' ? 8 : l == 'x' ? 16 : 8;
    s += base == 8 && l != 'o' ? 1 : 2;
    len -= base == 8 && l != 'o' ? 1 : 2;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i], l = (char)(c | 0x20);
    unsigned d;
    if (c == '_') {
      underscores = 1;
      continue;
    }
    if (c >= '0' && c <= '9')
      d = (unsigned)(c - '0');
    else if (l >= 'a' && l <= 'z')
      d = (unsigned)(l - 'a' + 10);
    else
      return -1;
    if (d >= (unsigned)base) return -1;
    if (v > (UINT64_MAX - d) / (uint64_t)base) return -1;
    v = v * (uint64_t)base + d;
  }
  if (underscores && !underscore_ok(s0, n0)) return -1;
  if (!neg && v > (uint64_t)INT64_MAX) return -1;
  if (neg && v > (uint64_t)INT64_MAX + 1) return -1;
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return 0;
}

int32_t mw_node_family(mw_node_scrape_t *s, const char *name, const char *help,
                       mw_metrics_type_t type, const char *labels) {
  char tmp[256], msg[256];
  const char *names[MW_METRICS_MAX_LABELS];
  size_t n = 0;
  if (labels && labels[0]) {
    size_t len = strlen(labels);
    if (len >= sizeof tmp) return mw_node_fail(s, "%s: too many labels", name);
    memcpy(tmp, labels, len + 1);
    for (char *p = tmp; p && n < MW_METRICS_MAX_LABELS;) {
      names[n++] = p;
      p = strchr(p, ',');
      if (p) *p++ = '\0';
    }
  }
  int32_t h = mw_metrics_family_add(s->reg, name, help, type, n ? names : NULL, n, NULL, 0, msg,
                                    sizeof msg);
  if (h < 0) return mw_node_fail(s, "%s", msg);
  if (n == 0) {
    /* As in a fresh registry: an unlabelled family has its one series, at 0
     * until set, from the moment it is registered. */
    mw_metrics_child_t *c =
        mw_metrics_child_view(s->reg, mw_metrics_child_get(s->reg, h, NULL, 0, msg, sizeof msg));
    if (!c) return mw_node_fail(s, "%s", msg);
    if (c->mark != s->epoch) {
      c->mark = s->epoch;
      c->value = 0;
    }
  }
  return h;
}

void mw_node_putv(mw_node_scrape_t *s, int32_t fam, double v, const char *const *values, size_t n) {
  mw_metrics_str_t vals[MW_METRICS_MAX_LABELS];
  char msg[256];
  if (fam < 0) return;
  mw_metrics_family_t *f = mw_metrics_family_get(s->reg, fam);
  if (!f || n != f->nlabels || n > MW_METRICS_MAX_LABELS) return;
  for (size_t i = 0; i < n; i++)
    vals[i] = (mw_metrics_str_t){values[i], strlen(values[i])};
  mw_metrics_child_t *c =
      mw_metrics_child_view(s->reg, mw_metrics_child_get(s->reg, fam, vals, n, msg, sizeof msg));
  if (!c) {
    mw_node_fail(s, "%s: %s", f->name, msg);
    return;
  }
  if (c->mark == s->epoch && n > 0) return; /* a duplicate: the first one stays */
  c->mark = s->epoch;
  mw_metrics_set(s->reg, c->handle, v);
}

void mw_node_put(mw_node_scrape_t *s, int32_t fam, double v, ...) {
  const char *values[MW_METRICS_MAX_LABELS];
  if (fam < 0) return;
  mw_metrics_family_t *f = mw_metrics_family_get(s->reg, fam);
  if (!f) return;
  va_list ap;
  va_start(ap, v);
  for (size_t i = 0; i < f->nlabels && i < MW_METRICS_MAX_LABELS; i++)
    values[i] = va_arg(ap, const char *);
  va_end(ap);
  mw_node_putv(s, fam, v, values, f->nlabels);
}

int32_t *mw_node_memo(mw_node_t *n, char tag, const char *key, size_t len) {
  uint64_t h = XXH3_64bits_withSeed(key, len, (uint64_t)(unsigned char)tag);
  if (n->memo_size) {
    for (struct mw_node_memo *m = n->memo[h & (n->memo_size - 1)]; m; m = m->next)
      if (m->hash == h && m->tag == tag && m->len == len && memcmp(m->key, key, len) == 0)
        return &m->value;
  }
  if (n->nmemo >= MAX_MEMO) return NULL;
  if (n->nmemo + 1 > n->memo_size) {
    size_t size = n->memo_size ? n->memo_size * 2 : 256;
    struct mw_node_memo **t = calloc(size, sizeof *t);
    if (!t) return NULL;
    for (size_t i = 0; i < n->memo_size; i++) {
      for (struct mw_node_memo *m = n->memo[i], *next; m; m = next) {
        next = m->next;
        m->next = t[m->hash & (size - 1)];
        t[m->hash & (size - 1)] = m;
      }
    }
    free(n->memo);
    n->memo = t;
    n->memo_size = size;
  }
  struct mw_node_memo *m = malloc(sizeof *m + len + 1);
  if (!m) return NULL;
  m->hash = h;
  m->tag = tag;
  m->len = len;
  memcpy(m->key, key, len);
  m->key[len] = '\0';
  m->value = MW_NODE_MEMO_UNSET;
  m->next = n->memo[h & (n->memo_size - 1)];
  n->memo[h & (n->memo_size - 1)] = m;
  n->nmemo++;
  return &m->value;
}

int mw_node_put1_handle(mw_node_scrape_t *s, int32_t fam, double v) {
  mw_metrics_family_t *f = fam >= 0 ? mw_metrics_family_get(s->reg, fam) : NULL;
  if (!f || f->nlabels) return 0;
  mw_node_putv(s, fam, v, NULL, 0);
  return 1;
}

void mw_node_put1(mw_node_scrape_t *s, const char *name, const char *help, mw_metrics_type_t type,
                  double v) {
  int32_t f = mw_node_family(s, name, help, type, NULL);
  if (f < 0) return;
  mw_node_putv(s, f, v, NULL, 0);
}

/* --- FFI ---------------------------------------------------------------------------- */

void mw_ffi_node_opts_init(mw_ffi_node_opts_t *o) { mw_node_opts_init(o); }

const char *mw_ffi_node_collectors(void) { return names_list(0); }

int mw_ffi_node_new(const mw_ffi_node_opts_t *o, mw_node_t **out, char *err, size_t errlen) {
  if (!out) {
    mw_seterr(err, errlen, "node: no output pointer");
    return -1;
  }
  return mw_node_create(o, out, err, errlen);
}

void mw_ffi_node_free(mw_node_t *n) { mw_node_free(n); }

int mw_ffi_node_collect(mw_node_t *n, int format, int gzip, char **out, size_t *len, char *err,
                        size_t errlen) {
  mw_expose_buf_t text = {0};
  if (!out || !len) {
    mw_seterr(err, errlen, "node: no output pointers");
    return -1;
  }
  *out = NULL;
  *len = 0;
  /* sized like the last exposition (plus room to grow): one allocation */
  if (n && n->out_hint) {
    text.cap = n->out_hint + n->out_hint / 8 + 4096;
    text.data = malloc(text.cap);
    if (!text.data) text.cap = 0;
  }
  if (mw_node_collect(n, format, &text, err, errlen) < 0) {
    mw_expose_buf_free(&text);
    return -1;
  }
  n->out_hint = text.len;
  return mw_expose_finish(&text, gzip, out, len, err, errlen);
}

const char *mw_ffi_node_errors(const mw_node_t *n) { return mw_node_errors(n); }
