/* runtime/exporters/node/: prometheus.exporter.unix: the collector set (node.c), one file per
 * node_exporter collector (cpu.c, filesystem.c, ...), each owning its state, and raw families
 * (raw.c).
 *
 * exporters/node/node.h: node_exporter's Linux collectors in C (prometheus.exporter.unix).
 *
 * A collector set (mw_node_t) is built once from options (which collectors,
 * procfs/sysfs/rootfs prefixes, per-collector filters) and collected on
 * demand: each collection fills a metrics registry (runtime/exposition/registry.h)
 * collector by collector and writes it with the registry's exposition writer
 * (runtime/exposition/write.h), so families come out sorted by name and series by label
 * values exactly like client_golang's. The registry is kept from one
 * collection to the next (families and series are found again instead of
 * re-created) and a series not reported again is deleted before writing, so
 * the output is what a fresh registry would give. Files on procfs and sysfs
 * are kept open and re-read from offset 0 (the kernel regenerates them). The
 * output has node_exporter 1.5.0's metric names, HELP texts, types and labels,
 * plus
 * node_scrape_collector_duration_seconds / node_scrape_collector_success per
 * collector. Families whose series carry label names of their own (textfile,
 * node_power_supply_info), summaries and histograms with per-series buckets
 * are "raw" families (exporters/node/raw.c): kept per collection beside the registry,
 * written by exporters/node/raw.c and merged into the output by name.
 *
 * A collector never crashes on odd or missing files: it fails (success 0, an
 * error line in mw_node_errors) and what it had already emitted stays, as with
 * node_exporter. Collectors run one after the other on the calling thread;
 * only the filesystem collector's statfs calls run in a kept worker thread
 * (all mounts of a collection in one hand-off), each waited for at most
 * mount_timeout (a mount that times out is reported with device_error 1 and
 * skipped until its statfs returns).
 *
 * Kept procfs/sysfs fds: a file not read by a collection is closed at its
 * end (interfaces and devices come and go), and at most a quarter of
 * RLIMIT_NOFILE's soft limit (4096 at most) are kept.
 *
 * Not thread-safe: one mw_node_t is collected from one thread at a time. */
#ifndef MW_NODE_H
#define MW_NODE_H
#include <stddef.h>
#include <stdint.h>

#include "base/labels.h"
#include "exposition/registry.h"
#include "exposition/write.h"

/* ffi.cdef begin */
/* --- node --- */
/* prometheus.exporter.unix: node_exporter 1.5.0's Linux collectors in C
 * (runtime/exporters/node/node.h has the full contract). Fill the options with
 * mw_ffi_node_opts_init, override fields, create a collector set once, then
 * collect the whole exposition into a buffer as often as needed. Strings are
 * NUL-terminated and copied by mw_ffi_node_new. Event loop thread only. */
typedef struct mw_node mw_node_t;

typedef struct {
  const char *collectors;              /* enabled collectors, comma-separated */
  const char *procfs_path;             /* default "/proc" */
  const char *sysfs_path;              /* default "/sys" */
  const char *rootfs_path;             /* default "/" */
  const char *udev_data_path;          /* default "/run/udev/data" */
  const char *fs_mount_points_exclude; /* filesystem: mount points to skip (Go regex) */
  const char *fs_types_exclude;        /* filesystem: fs types to skip */
  double fs_mount_timeout;             /* filesystem: seconds a statfs may take, default 5 */
  const char *netdev_device_include;   /* netdev: NULL or empty = no filter */
  const char *netdev_device_exclude;
  int32_t netdev_netlink;                /* netdev: 1 = rtnetlink (default), 0 = /proc/net/dev */
  const char *disk_device_include;       /* diskstats: NULL or empty = no filter */
  const char *disk_device_exclude;       /* diskstats: default node_exporter's */
  const char *netstat_fields;            /* netstat: fields to keep */
  const char *vmstat_fields;             /* vmstat: fields to keep */
  int32_t cpu_guest;                     /* cpu: node_cpu_guest_seconds_total, default 1 */
  int32_t cpu_info;                      /* cpu: node_cpu_info, default 0 */
  const char *cpu_flags_include;         /* cpu: node_cpu_flag_info filter, NULL = none */
  const char *cpu_bugs_include;          /* cpu: node_cpu_bug_info filter, NULL = none */
  int32_t stat_softirq;                  /* stat: node_softirqs_total, default 0 */
  const char *netclass_ignored_devices;  /* netclass: devices to skip, default "^$" */
  int32_t netclass_ignore_invalid_speed; /* netclass: no speed_bytes for speed < 0, default 0 */
  const char *arp_device_include;        /* arp: NULL or empty = no filter */
  const char *arp_device_exclude;
  int32_t arp_netlink;             /* arp: 1 = rtnetlink neighbours, 0 = /proc/net/arp (default) */
  const char *hwmon_chip_include;  /* hwmon: chips to keep, NULL or empty = no filter */
  const char *hwmon_chip_exclude;  /* hwmon: chips to skip */
  const char *powersupply_ignored; /* powersupplyclass: supplies to skip, default "^$" */
  const char *textfile_directory;  /* textfile: directory (or glob) of *.prom files, "" = none */
} mw_ffi_node_opts_t;

/* Fills o with the defaults: node_exporter 1.5.0's flag defaults and every
 * default-enabled collector this build implements (static strings). */
void mw_ffi_node_opts_init(mw_ffi_node_opts_t *o);
/* Every collector this build implements, comma-separated, sorted (static). */
const char *mw_ffi_node_collectors(void);
/* Builds a collector set into *out (free with mw_ffi_node_free). 0, or -1
 * with *out NULL and a message in err (unknown collector, bad regex). */
int mw_ffi_node_new(const mw_ffi_node_opts_t *o, mw_node_t **out, char *err, size_t errlen);
void mw_ffi_node_free(mw_node_t *n);
/* Collects every enabled collector and writes the exposition in format
 * MW_METRICS_FMT_*, gzipped if gzip != 0, into a new buffer *out, *len; the
 * caller frees it with mw_ffi_metrics_buf_free. 0, or -1 with a message in err
 * (out of memory); a failing collector is reported in the body
 * (node_scrape_collector_success 0) and by mw_ffi_node_errors. */
int mw_ffi_node_collect(mw_node_t *n, int format, int gzip, char **out, size_t *len, char *err,
                        size_t errlen);
/* The failures of the last collection, one "collector: message" per line,
 * empty if none. Owned by n, valid until the next collect. */
const char *mw_ffi_node_errors(const mw_node_t *n);
/* ffi.cdef end */

typedef mw_ffi_node_opts_t mw_node_opts_t;

/* A compiled Go-syntax (RE2) regex, matched unanchored like Go's MatchString. */
typedef struct mw_node_re mw_node_re_t;

/* Per-mount-point state shared with filesystem worker threads (exporters/node/filesystem.c). */
typedef struct mw_node_fs_state mw_node_fs_state_t;

/* One collection's scratch state (below), kept between collections. */
typedef struct mw_node_scrape mw_node_scrape_t;

/* Open procfs/sysfs files by path (exporters/node/node.c). */
typedef struct mw_node_fd mw_node_fd_t;

/* A collection's raw families (exporters/node/raw.c). */
typedef struct mw_node_raw mw_node_raw_t;

#define MW_NODE_MAX_CPUS 4096

/* The last counters seen per CPU (cpu collector: counters never go backwards). */
typedef struct {
  double v[10]; /* user nice system idle iowait irq softirq steal guest guest_nice */
} mw_node_cpu_stat_t;

struct mw_node {
  char *procfs, *sysfs, *rootfs, *udev;
  uint64_t enabled; /* bit i: collector i of mw_node_collectors() */
  double fs_mount_timeout;
  int netdev_netlink, cpu_guest, cpu_info, stat_softirq;
  mw_node_re_t *fs_mount_points_exclude, *fs_types_exclude;
  mw_node_re_t *netdev_include, *netdev_exclude, *disk_include, *disk_exclude;
  mw_node_re_t *netstat_fields, *vmstat_fields, *cpu_flags_include, *cpu_bugs_include;
  mw_node_re_t *netclass_ignored, *arp_include, *arp_exclude, *hwmon_chip_include;
  mw_node_re_t *hwmon_chip_exclude, *powersupply_ignored;
  int netclass_ignore_invalid_speed, arp_netlink;
  char *textfile_dir;                /* "" = none */
  struct mw_node_textfile *textfile; /* exporters/node/textfile.c's per-file parse state */
  struct mw_node_selinux *selinux;   /* exporters/node/selinux.c's probe of the host, done once */
  size_t max_kept_fds;               /* kept procfs/sysfs fds at most */
  mw_node_cpu_stat_t *cpu_stats;
  size_t ncpu_stats;
  mw_node_fs_state_t *fs;
  char *errors;                /* the last collection's failures, one "name: message" per line */
  mw_node_scrape_t *scrape;    /* reused by every collection; owns the registry */
  mw_node_fd_t **fds;          /* kept-open procfs/sysfs files: hash table by path */
  size_t fds_size, nfds;       /* fds_size: power of two or 0 */
  struct mw_node_memo **memo;  /* mw_node_memo's entries: hash table by (tag, key) */
  size_t memo_size, nmemo;     /* memo_size: power of two or 0 */
  struct mw_node_os_cache *os; /* the os collector's last parse (exporters/node/os.c) */
  size_t out_hint;             /* the last exposition's length (buffer pre-sizing) */
};

/* One collection in progress: collectors add series to reg through the
 * helpers below; a failing collector writes its message into err. reg and the
 * scratch buffers live on from one collection to the next; a series belongs
 * to this collection when its mark is epoch. */
struct mw_node_scrape {
  mw_node_t *node;
  mw_metrics_t *reg;
  uint64_t epoch;
  char err[512];
  char note[512];  /* a problem a succeeding collector reports (mw_node_note) */
  int nodata;      /* set by a collector that found nothing to report (ErrNoData) */
  char path[4096]; /* scratch for mw_node_*_path */
  char *buf;       /* scratch for mw_node_read */
  size_t buf_cap;
  mw_node_raw_t *raw; /* this collection's raw families (exporters/node/raw.c) */
};

/* A collector: fills s from files; 0, or -1 with s->err set (s->nodata for
 * "nothing to report"). */
typedef int (*mw_node_collect_fn)(mw_node_scrape_t *s);

/* A collector's release: frees the state it keeps in the collector set between
 * collections (created by its collect when first needed; NULL fields are fine).
 * mw_node_free calls it whether or not the collector was enabled. */
typedef void (*mw_node_release_fn)(mw_node_t *n);

typedef struct {
  const char *name;
  int default_enabled; /* in node_exporter 1.5.0's default set */
  mw_node_collect_fn collect;
  mw_node_release_fn release; /* NULL: the collector keeps no state */
} mw_node_collector_t;

/* The collectors this build knows, sorted by name; *n receives the count. */
const mw_node_collector_t *mw_node_collectors(size_t *n);

/* Fills o with the defaults (node_exporter 1.5.0's flags defaults, every
 * default-enabled collector). The strings are static. */
void mw_node_opts_init(mw_node_opts_t *o);

/* Builds a collector set from o (strings copied; NULL strings take the
 * defaults, "" device filters mean no filter). 0 and *out, or -1 with a
 * message in err (unknown collector, bad regex, out of memory). */
int mw_node_create(const mw_node_opts_t *o, mw_node_t **out, char *err, size_t errlen);

/* Frees a collector set (NULL ok). Filesystem workers still blocked in statfs
 * keep only their own memory and free it when they return. */
void mw_node_free(mw_node_t *n);

/* Runs every enabled collector and appends the exposition in format
 * (MW_EXPOSE_*) to buf. 0, or -1 with a message in err (out of memory);
 * collector failures are not errors (see mw_node_errors). */
int mw_node_collect(mw_node_t *n, int format, mw_expose_buf_t *buf, char *err, size_t errlen);

/* The failures of the last collection, one "collector: message" per line ("" if none). */
const char *mw_node_errors(const mw_node_t *n);

/* --- helpers for the collectors (exporters/node/node.c) ---------------------------------- */

/* Compiles a Go-syntax regex. 0 and *out, or -1 with a message in err. */
int mw_node_re_compile(const char *pattern, mw_node_re_t **out, char *err, size_t errlen);
void mw_node_re_free(mw_node_re_t *re);
/* 1 if re matches anywhere in s[0..len) (Go's MatchString), else 0. */
int mw_node_re_match(const mw_node_re_t *re, const char *s, size_t len);
/* Sends one rtnetlink dump request of type (RTM_GETLINK, RTM_GETNEIGH, ...)
 * with body (an ifinfomsg, ndmsg, ...) and calls each for every message of the
 * answer until NLMSG_DONE; each returns 0, or an errno that ends the dump.
 * 0 once the dump is complete, else -1 with errno. */
struct nlmsghdr;
int mw_node_rtnl_dump(uint16_t type, const void *body, size_t body_len,
                      int (*each)(const struct nlmsghdr *nh, void *ctx), void *ctx);

/* node_exporter's deviceFilter.ignored: excluded by exclude, or include set and not matching. */
int mw_node_device_ignored(const mw_node_re_t *include, const mw_node_re_t *exclude,
                           const char *name);

/* Formats a path into dst (cap bytes); dst, or NULL when it does not fit. */
const char *mw_node_pathf(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "<procfs>/<name>" (sysfs, rootfs likewise) in s->path; NULL if too long. */
const char *mw_node_proc_path(mw_node_scrape_t *s, const char *name);
const char *mw_node_sys_path(mw_node_scrape_t *s, const char *name);

/* Reads a whole file into s's scratch buffer (NUL-terminated, valid until the
 * next mw_node_read on s); *len gets its length. NULL with errno set on failure.
 * A file on procfs or sysfs stays open in the collector set and is re-read
 * with pread from offset 0 next time; if that fails (the kernel object went
 * away) the path is opened afresh, so errors are those of a plain open+read. */
const char *mw_node_read(mw_node_scrape_t *s, const char *path, size_t *len);
/* Reads a file holding one unsigned integer (util.ReadUintFromFile). 0 or -1 (errno). */
int mw_node_read_u64(mw_node_scrape_t *s, const char *path, uint64_t *out);

/* Reads a sysfs attribute as procfs's util.SysReadFile: one read(2) of at
 * most 128 bytes (a driver answering EAGAIN fails at once instead of being
 * polled), through a kept fd like mw_node_read. out (cap >= 129) gets the
 * bytes read, NUL-terminated; *len their count. 0, or -1 with errno (the
 * open's or the read's: EINVAL, EOPNOTSUPP... are the caller's to judge). */
#define MW_NODE_SYSREAD_MAX 128
int mw_node_sysread(mw_node_scrape_t *s, const char *path, char *out, size_t *len);
/* Trims ASCII white space at both ends of s[0..*len) in place (bytes.TrimSpace
 * for ASCII); returns the new start, *len updated, NUL-terminated. */
char *mw_node_trim(char *s, size_t *len);

/* A value remembered per (tag, key) for the collector set's life, e.g. a
 * field's filter decision and family handle: the slot, MW_NODE_MEMO_UNSET the
 * first time, or NULL (too many keys, out of memory: just don't memoize). */
#define MW_NODE_MEMO_UNSET INT32_MIN
int32_t *mw_node_memo(mw_node_t *n, char tag, const char *key, size_t len);
/* For a memo slot holding an unlabelled family's handle (from mw_node_family):
 * sets its series to v as mw_node_put1 would and returns 1; 0 (nothing done)
 * when the handle is not a family's. */
int mw_node_put1_handle(mw_node_scrape_t *s, int32_t fam, double v);

/* Sets s->err from a format (first failure wins) and returns -1. */
int mw_node_fail(mw_node_scrape_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Notes a problem of a collector that still succeeds (a textfile that does
 * not parse): listed in mw_node_errors like a failure; the first note wins. */
void mw_node_note(mw_node_scrape_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Registers (or finds) a family: labels are comma-separated names in the order
 * values are given to mw_node_put (NULL or "" = none). Returns the handle, or
 * -1 (s->err set). */
int32_t mw_node_family(mw_node_scrape_t *s, const char *name, const char *help,
                       mw_metrics_type_t type, const char *labels);
/* Sets the series of family fam with the given label values (exactly the
 * family's label count, const char *) to v. A series seen twice in one
 * collection keeps its first value (client_golang drops the duplicate).
 * fam < 0 is ignored. */
void mw_node_put(mw_node_scrape_t *s, int32_t fam, double v, ...);
/* The same with the values as an array. */
void mw_node_putv(mw_node_scrape_t *s, int32_t fam, double v, const char *const *values, size_t n);
/* A family without labels and its one value. */
void mw_node_put1(mw_node_scrape_t *s, const char *name, const char *help, mw_metrics_type_t type,
                  double v);

/* Splits s at whitespace into at most max fields (pointers into s, which is
 * modified: separators become NUL). Returns the field count. */
size_t mw_node_fields(char *s, char **fields, size_t max);
/* Parses a whole field as an unsigned decimal (or base 16 with base = 16). 0 or -1. */
int mw_node_parse_u64(const char *s, int base, uint64_t *out);
/* Parses a whole field as a float (strconv.ParseFloat). 0 or -1. */
int mw_node_parse_f64(const char *s, double *out);
/* The length of the valid UTF-8 sequence at s[0..n) (1-4, Go's DecodeRune
 * rules), 0 when it is invalid (or n is 0). */
size_t mw_node_utf8_len(const char *s, size_t n);
/* strings.ToValidUTF8(s, "\uFFFD"): a malloc'd NUL-terminated copy of
 * s[0..n) with each run of invalid bytes replaced by U+FFFD; NULL on OOM. */
char *mw_node_valid_utf8(const char *s, size_t n);
/* Parses s[0..len) as Go's strconv.ParseInt(s, 0, 64): optional sign, base
 * prefixes 0x/0o/0b and a leading 0 for octal, underscores between digits.
 * 0 and *out, or -1 (syntax or range). */
int mw_node_parse_goint(const char *s, size_t len, int64_t *out);

/* --- raw families (exporters/node/raw.c) ---------------------------------------------- */

/* Raw family types. */
enum {
  MW_NODE_RAW_COUNTER,
  MW_NODE_RAW_GAUGE,
  MW_NODE_RAW_UNTYPED,
  MW_NODE_RAW_SUMMARY,
  MW_NODE_RAW_HISTOGRAM
};

/* A new empty set of raw families; NULL when out of memory. */
mw_node_raw_t *mw_node_raw_new(void);
/* Frees r (NULL ok). */
void mw_node_raw_free(mw_node_raw_t *r);
/* Forgets every family and series (a new collection). */
void mw_node_raw_reset(mw_node_raw_t *r);
/* Finds or adds family name (bytes copied). Returns its index; -1 when a
 * family of that name has another type or help, or a new family's name
 * collides with a summary's or histogram's (x_count, x_sum, x_bucket; both
 * ways, as client_golang's checkSuffixCollisions: it refuses such series,
 * the caller drops them), or out of memory (*oom set if oom != NULL). */
int mw_node_raw_family(mw_node_raw_t *r, const char *name, size_t name_len, const char *help,
                       size_t help_len, int type, int *oom);
/* Adds a series to family fam: its labels (any order, names distinct, bytes
 * copied), and for counters, gauges and untyped its value; for summaries
 * npoints (quantile, value) pairs, for histograms (upper bound, cumulative
 * count) pairs, with sum and count. A series whose labels an earlier one of
 * the family has is dropped (client_golang keeps the first). 0, 1 when
 * dropped, -1 when out of memory. */
int mw_node_raw_add(mw_node_raw_t *r, int fam, const mw_label_t *labels, size_t nlabels,
                    double value, const double *points, size_t npoints, double sum, uint64_t count);
/* Writes the families in format (MW_EXPOSE_*) into out, families sorted by
 * name and series as client_golang sorts them (fewer labels first, then
 * label values in label-name order), and fills *extras (malloc'd, *n
 * entries, pointing into out->data: valid while out is unchanged) for
 * mw_expose_write_extra. A family whose name reg (may be NULL) has is left
 * out. 0, or -1 when out of memory. */
int mw_node_raw_write(mw_node_raw_t *r, mw_metrics_t *reg, int format, mw_expose_buf_t *out,
                      mw_expose_extra_t **extras, size_t *n);

/* --- the collectors (node_<name>.c) ---------------------------------------- */

int mw_node_collect_arp(mw_node_scrape_t *s);
int mw_node_collect_conntrack(mw_node_scrape_t *s);
int mw_node_collect_cpu(mw_node_scrape_t *s);
int mw_node_collect_cpufreq(mw_node_scrape_t *s);
int mw_node_collect_diskstats(mw_node_scrape_t *s);
int mw_node_collect_entropy(mw_node_scrape_t *s);
int mw_node_collect_filefd(mw_node_scrape_t *s);
int mw_node_collect_filesystem(mw_node_scrape_t *s);
int mw_node_collect_hwmon(mw_node_scrape_t *s);
int mw_node_collect_loadavg(mw_node_scrape_t *s);
int mw_node_collect_mdadm(mw_node_scrape_t *s);
int mw_node_collect_meminfo(mw_node_scrape_t *s);
int mw_node_collect_netclass(mw_node_scrape_t *s);
int mw_node_collect_netdev(mw_node_scrape_t *s);
int mw_node_collect_netstat(mw_node_scrape_t *s);
int mw_node_collect_nfs(mw_node_scrape_t *s);
int mw_node_collect_nfsd(mw_node_scrape_t *s);
int mw_node_collect_os(mw_node_scrape_t *s);
int mw_node_collect_powersupplyclass(mw_node_scrape_t *s);
int mw_node_collect_pressure(mw_node_scrape_t *s);
int mw_node_collect_schedstat(mw_node_scrape_t *s);
int mw_node_collect_selinux(mw_node_scrape_t *s);
int mw_node_collect_sockstat(mw_node_scrape_t *s);
int mw_node_collect_softnet(mw_node_scrape_t *s);
int mw_node_collect_stat(mw_node_scrape_t *s);
int mw_node_collect_textfile(mw_node_scrape_t *s);
int mw_node_collect_thermal_zone(mw_node_scrape_t *s);
int mw_node_collect_time(mw_node_scrape_t *s);
int mw_node_collect_timex(mw_node_scrape_t *s);
int mw_node_collect_udp_queues(mw_node_scrape_t *s);
int mw_node_collect_uname(mw_node_scrape_t *s);
int mw_node_collect_vmstat(mw_node_scrape_t *s);
int mw_node_collect_xfs(mw_node_scrape_t *s);

/* The releases of the collectors that keep state in mw_node_t. */
void mw_node_release_cpu(mw_node_t *n);
void mw_node_release_filesystem(mw_node_t *n);
void mw_node_release_os(mw_node_t *n);
void mw_node_release_selinux(mw_node_t *n);
void mw_node_release_textfile(mw_node_t *n);

/* --- parsers of the collectors, pure functions (fuzzed by fuzz_procfs) ------- */

/* exporters/node/arp.c: <procfs>/net/arp as node_exporter 1.5's parseARPEntries: per
 * device (the last column) the number of entries (lines whose first column is
 * not "IP"); a line with fewer than 6 columns fails. data is modified (device
 * names are NUL-terminated in place and pointed to by *out). 0 and *out
 * (malloc'd, *n entries), or -1 with err. */
typedef struct {
  const char *device;
  uint32_t entries;
} mw_node_arp_count_t;
int mw_node_arp_parse(char *data, mw_node_arp_count_t **out, size_t *n, char *err, size_t errlen);

/* exporters/node/mdadm.c: <procfs>/mdstat as procfs 0.8's parseMDStat. 0 and *out
 * (malloc'd, *n devices), or -1 with err. */
typedef struct {
  char name[128], state[64]; /* state: active, inactive, recovering, resyncing, checking, ... */
  int64_t active, total, failed, spare, blocks, synced;
} mw_node_md_t;
int mw_node_mdstat_parse(const char *data, size_t len, mw_node_md_t **out, size_t *n, char *err,
                         size_t errlen);

/* exporters/node/nfs.c: <procfs>/net/rpc/nfs (server 0) or nfsd (server 1) as procfs
 * 0.8's ParseClientRPCStats / ParseServerRPCStats; lines absent leave zeros.
 * proc4 holds the client's 59 NFSv4 counts (the server's Null and Compound).
 * 0, or -1 with err. */
typedef struct {
  uint64_t net[4], rpc[5], proc2[18], proc3[22], proc4[59];
  uint64_t rc[3], fh[5], io[2], th[2], ra[12], proc4ops[38];
} mw_node_nfs_stats_t;
int mw_node_nfs_parse(const char *data, size_t len, int server, mw_node_nfs_stats_t *st, char *err,
                      size_t errlen);
extern const char *const mw_node_nfs_v2_names[18];
extern const char *const mw_node_nfs_v3_names[22];

/* exporters/node/xfs.c: a <sysfs>/fs/xfs/<dev>/stats/stats file as procfs 0.8's
 * xfs.ParseStats; v: extent_alloc[0..4) abt[4..8) blk_map[8..15) bmbt[15..19)
 * dir[19..23) ig[23..30) rw[30..32) vnodes[32..39). 0, or -1 with err. */
typedef struct {
  uint64_t v[39];
} mw_node_xfs_stats_t;
int mw_node_xfs_parse(const char *data, size_t len, mw_node_xfs_stats_t *st, char *err,
                      size_t errlen);

/* exporters/node/hwmon.c: splits a sensor file name as node_exporter's
 * ^(?P<type>[^0-9]+)(?P<id>[0-9]*)?(_(?P<property>.+))?$: the type is
 * name[0..*type_len), *num the id (0 if none), *prop the property ("" if
 * none, a pointer into name). 0, or -1 when the name does not match (or the
 * id does not fit a long). */
int mw_node_hwmon_split(const char *name, size_t *type_len, long *num, const char **prop);

/* exporters/node/textfile.c: parses body as the file path (node_exporter's
 * TextParser) and adds its families to raw as the textfile collector does
 * (one file: a family without HELP is "Metric read from <path>"). *state
 * (NULL the first time) keeps the parser's buffers; free it with
 * mw_node_textfile_free. 0, or -1 with err (the file is refused: nothing was
 * added). */
struct mw_node_textfile;
int mw_node_textfile_convert(mw_node_raw_t *raw, struct mw_node_textfile **state, const char *path,
                             const char *body, size_t len, char *err, size_t errlen);
void mw_node_textfile_free(struct mw_node_textfile *t);

/* exporters/node/selinux.c: where the selinux collector looks (the host's files, as
 * go-selinux), and the statfs it calls; tests point them at fixtures. */
struct statfs;
typedef struct {
  const char *selinuxfs, *filesystems, *mountinfo, *attr_current, *config;
  int (*statfs_fn)(const char *path, struct statfs *buf);
} mw_node_selinux_env_t;
extern mw_node_selinux_env_t mw_node_selinux_env;

/* The statfs the filesystem collector's workers call (statfs(2); tests swap
 * in one that hangs). */
struct statfs;
extern int (*mw_node_statfs_fn)(const char *path, struct statfs *buf);

#endif
