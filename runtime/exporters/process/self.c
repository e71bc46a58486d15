/* exporters/process/self.c: process stats from procfs, as prometheus/procfs reads them for
 * client_golang's process collector. */
#include "exporters/process/self.h"
#include "base/err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_PROC_FILE (4u << 20)

/* root/<pid or self>/name (pid < 0: root/name) into path. 0 or -1. */
static int proc_path(char *path, size_t size, const char *root, int pid, const char *name) {
  int n;
  if (pid < 0)
    n = snprintf(path, size, "%s/%s", root, name);
  else if (pid == 0)
    n = snprintf(path, size, "%s/self/%s", root, name);
  else
    n = snprintf(path, size, "%s/%d/%s", root, pid, name);
  return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* Reads a whole (size-less) procfs file into a NUL-terminated malloc'd buffer
 * that the caller frees. 0, or -1 with a message in err. */
static int read_all(const char *path, char **out, size_t *len, char *err, size_t errlen) {
  char *buf = NULL;
  size_t cap = 0, n = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    mw_seterr(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  for (;;) {
    if (cap - n < 4096) {
      size_t ncap = cap ? cap * 2 : 8192;
      if (ncap > MAX_PROC_FILE + 1) {
        mw_seterr(err, errlen, "%s: file too large", path);
        goto fail;
      }
      char *b = realloc(buf, ncap);
      if (!b) {
        mw_seterr(err, errlen, "%s: out of memory", path);
        goto fail;
      }
      buf = b;
      cap = ncap;
    }
    ssize_t r = read(fd, buf + n, cap - n - 1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      mw_seterr(err, errlen, "%s: %s", path, strerror(errno));
      goto fail;
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  close(fd);
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return 0;
fail:
  close(fd);
  free(buf);
  return -1;
}

/* Parses a decimal unsigned integer spanning exactly s[0..n). 0 or -1. */
static int parse_u64(const char *s, size_t n, unsigned long long *out) {
  unsigned long long v = 0;
  if (n == 0 || n > 20) return -1;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (ULLONG_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

/* The i-th space-separated field of s (0-based) as [*f, *f + *n). 0 or -1. */
static int nth_field(const char *s, size_t i, const char **f, size_t *n) {
  for (size_t k = 0;; k++) {
    while (*s == ' ')
      s++;
    if (!*s || *s == '\n') return -1;
    const char *start = s;
    while (*s && *s != ' ' && *s != '\n')
      s++;
    if (k == i) {
      *f = start;
      *n = (size_t)(s - start);
      return 0;
    }
  }
}

static int stat_field(const char *after, size_t field, unsigned long long *out) {
  const char *f;
  size_t n;
  /* after starts at field 3 (state); field numbers as in proc(5) */
  if (nth_field(after, field - 3, &f, &n) < 0) return -1;
  if (n > 0 && f[0] == '-') { /* rss may read negative in theory: clamp to 0 */
    unsigned long long tmp;
    if (parse_u64(f + 1, n - 1, &tmp) < 0) return -1;
    *out = 0;
    return 0;
  }
  return parse_u64(f, n, out);
}

/* btime from <root>/stat. */
static int read_btime(const char *root, unsigned long long *btime, char *err, size_t errlen) {
  char path[PATH_MAX], *buf = NULL;
  size_t len;
  int rc = -1;
  if (proc_path(path, sizeof path, root, -1, "stat") < 0) {
    mw_seterr(err, errlen, "procfs path too long");
    return -1;
  }
  if (read_all(path, &buf, &len, err, errlen) < 0) return -1;
  for (char *line = buf; line && *line;) {
    char *nl = strchr(line, '\n');
    size_t n = nl ? (size_t)(nl - line) : strlen(line);
    if (n > 6 && strncmp(line, "btime ", 6) == 0) {
      const char *v = line + 6;
      while (*v == ' ')
        v++;
      if (parse_u64(v, (size_t)(line + n - v), btime) == 0) rc = 0;
      break;
    }
    line = nl ? nl + 1 : NULL;
  }
  if (rc < 0) mw_seterr(err, errlen, "%s: no valid btime line", path);
  free(buf);
  return rc;
}

static int read_stat(const char *root, int pid, mw_procself_t *out, char *err, size_t errlen) {
  char path[PATH_MAX], *buf = NULL;
  size_t len;
  int rc = -1;
  unsigned long long utime, stime, starttime, vsize, rss, btime;
  if (proc_path(path, sizeof path, root, pid, "stat") < 0) {
    mw_seterr(err, errlen, "procfs path too long");
    return -1;
  }
  if (read_all(path, &buf, &len, err, errlen) < 0) return -1;
  if (strlen(buf) != len) goto bad; /* embedded NUL */
  char *l = strchr(buf, '('), *r = strrchr(buf, ')');
  if (!l || !r || r < l || r[1] != ' ') goto bad;
  const char *after = r + 2;
  if (stat_field(after, 14, &utime) < 0 || stat_field(after, 15, &stime) < 0 ||
      stat_field(after, 22, &starttime) < 0 || stat_field(after, 23, &vsize) < 0 ||
      stat_field(after, 24, &rss) < 0)
    goto bad;
  long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
  if (tck <= 0) tck = 100;
  if (page <= 0) page = 4096;
  out->cpu_seconds = (double)(utime + stime) / (double)tck;
  out->virtual_bytes = (double)vsize;
  out->resident_bytes = (double)rss * (double)page;
  out->have |= MW_PROCSELF_CPU | MW_PROCSELF_MEM;
  free(buf);
  buf = NULL;
  if (read_btime(root, &btime, err, errlen) < 0) return -1;
  out->start_time = (double)btime + (double)starttime / (double)tck;
  out->have |= MW_PROCSELF_START;
  return 0;
bad:
  mw_seterr(err, errlen, "%s: malformed", path);
  free(buf);
  return rc;
}

static int read_fds(const char *root, int pid, mw_procself_t *out, char *err, size_t errlen) {
  char path[PATH_MAX];
  if (proc_path(path, sizeof path, root, pid, "fd") < 0) {
    mw_seterr(err, errlen, "procfs path too long");
    return -1;
  }
  DIR *d = opendir(path);
  if (!d) {
    mw_seterr(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
  closedir(d);
  out->open_fds = (double)n;
  out->have |= MW_PROCSELF_FDS;
  return 0;
}

/* Soft limit of the line starting with name in a limits file. 0 or -1. */
static int limit_soft(const char *buf, const char *name, double *out) {
  size_t nlen = strlen(name);
  for (const char *line = buf; line && *line;) {
    const char *nl = strchr(line, '\n');
    if (strncmp(line, name, nlen) == 0 && line[nlen] == ' ') {
      const char *f;
      size_t n;
      unsigned long long v;
      if (nth_field(line + nlen, 0, &f, &n) < 0) return -1;
      if (n == 9 && strncmp(f, "unlimited", 9) == 0) {
        *out = 18446744073709551615.0;
        return 0;
      }
      if (parse_u64(f, n, &v) < 0) return -1;
      *out = (double)v;
      return 0;
    }
    line = nl ? nl + 1 : NULL;
  }
  return -1;
}

static int read_limits(const char *root, int pid, mw_procself_t *out, char *err, size_t errlen) {
  char path[PATH_MAX], *buf = NULL;
  size_t len;
  double fds, as;
  if (proc_path(path, sizeof path, root, pid, "limits") < 0) {
    mw_seterr(err, errlen, "procfs path too long");
    return -1;
  }
  if (read_all(path, &buf, &len, err, errlen) < 0) return -1;
  int ok = limit_soft(buf, "Max open files", &fds) == 0 &&
           limit_soft(buf, "Max address space", &as) == 0;
  free(buf);
  if (!ok) {
    mw_seterr(err, errlen, "%s: malformed", path);
    return -1;
  }
  out->max_fds = fds;
  out->virtual_max_bytes = as;
  out->have |= MW_PROCSELF_LIMITS;
  return 0;
}

/* IpExt InOctets/OutOctets: a header line of names then a line of values. */
static int read_netstat(const char *root, int pid, mw_procself_t *out, char *err, size_t errlen) {
  char path[PATH_MAX], *buf = NULL;
  size_t len;
  int found = 0;
  double in = 0, outb = 0;
  if (proc_path(path, sizeof path, root, pid, "net/netstat") < 0) {
    mw_seterr(err, errlen, "procfs path too long");
    return -1;
  }
  if (read_all(path, &buf, &len, err, errlen) < 0) return -1;
  char *names = strstr(buf, "IpExt:");
  if (names && (names == buf || names[-1] == '\n')) {
    char *nl = strchr(names, '\n');
    char *values = nl ? strstr(nl + 1, "IpExt:") : NULL;
    if (values && values == nl + 1) {
      const char *nf, *vf;
      size_t nn, vn;
      for (size_t i = 1; nth_field(names, i, &nf, &nn) == 0; i++) {
        unsigned long long v;
        if (nth_field(values, i, &vf, &vn) < 0) break;
        int is_in = nn == 8 && strncmp(nf, "InOctets", 8) == 0;
        int is_out = nn == 9 && strncmp(nf, "OutOctets", 9) == 0;
        if (!is_in && !is_out) continue;
        if (parse_u64(vf, vn, &v) < 0) break;
        if (is_in) in = (double)v, found |= 1;
        if (is_out) outb = (double)v, found |= 2;
      }
    }
  }
  free(buf);
  if (found != 3) {
    mw_seterr(err, errlen, "%s: no IpExt InOctets/OutOctets", path);
    return -1;
  }
  out->network_receive_bytes = in;
  out->network_transmit_bytes = outb;
  out->have |= MW_PROCSELF_NET;
  return 0;
}

int mw_procself_read(const char *procfs_root, int pid, mw_procself_t *out, char *err,
                     size_t errlen) {
  char e2[256];
  int rc = 0;
  const char *root = procfs_root && *procfs_root ? procfs_root : "/proc";
  if (!out) {
    mw_seterr(err, errlen, "procself: no output");
    return -1;
  }
  memset(out, 0, sizeof *out);
  if (pid < 0) {
    mw_seterr(err, errlen, "procself: invalid pid %d", pid);
    return -1;
  }
  /* Keep the first failure in err, but try every source. */
  if (read_stat(root, pid, out, rc ? e2 : err, rc ? sizeof e2 : errlen) < 0) rc = -1;
  if (read_fds(root, pid, out, rc ? e2 : err, rc ? sizeof e2 : errlen) < 0) rc = -1;
  if (read_limits(root, pid, out, rc ? e2 : err, rc ? sizeof e2 : errlen) < 0) rc = -1;
  if (read_netstat(root, pid, out, rc ? e2 : err, rc ? sizeof e2 : errlen) < 0) rc = -1;
  return rc;
}

/* --- registry collector --------------------------------------------------- */

enum {
  P_CPU,
  P_OPEN_FDS,
  P_MAX_FDS,
  P_VSIZE,
  P_VMAX,
  P_RSS,
  P_START,
  P_NET_IN,
  P_NET_OUT,
  P_COUNT,
};

static const struct {
  const char *name, *help;
  mw_metrics_type_t type;
  unsigned have;
} process_metrics[P_COUNT] = {
    [P_CPU] = {"process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
               MW_METRICS_COUNTER, MW_PROCSELF_CPU},
    [P_OPEN_FDS] = {"process_open_fds", "Number of open file descriptors.", MW_METRICS_GAUGE,
                    MW_PROCSELF_FDS},
    [P_MAX_FDS] = {"process_max_fds", "Maximum number of open file descriptors.", MW_METRICS_GAUGE,
                   MW_PROCSELF_LIMITS},
    [P_VSIZE] = {"process_virtual_memory_bytes", "Virtual memory size in bytes.", MW_METRICS_GAUGE,
                 MW_PROCSELF_MEM},
    [P_VMAX] = {"process_virtual_memory_max_bytes",
                "Maximum amount of virtual memory available in bytes.", MW_METRICS_GAUGE,
                MW_PROCSELF_LIMITS},
    [P_RSS] = {"process_resident_memory_bytes", "Resident memory size in bytes.", MW_METRICS_GAUGE,
               MW_PROCSELF_MEM},
    [P_START] = {"process_start_time_seconds",
                 "Start time of the process since unix epoch in seconds.", MW_METRICS_GAUGE,
                 MW_PROCSELF_START},
    [P_NET_IN] = {"process_network_receive_bytes_total",
                  "Number of bytes received by the process over the network.", MW_METRICS_COUNTER,
                  MW_PROCSELF_NET},
    [P_NET_OUT] = {"process_network_transmit_bytes_total",
                   "Number of bytes sent by the process over the network.", MW_METRICS_COUNTER,
                   MW_PROCSELF_NET},
};

typedef struct {
  char *root;
  int pid;
  int32_t family[P_COUNT];
} process_collector_t;

static void process_collector_free(void *ud) {
  process_collector_t *pc = ud;
  if (pc) free(pc->root);
  free(pc);
}

static int process_collect(mw_metrics_t *reg, void *ud) {
  process_collector_t *pc = ud;
  mw_procself_t st;
  (void)mw_procself_read(pc->root, pc->pid, &st, NULL, 0);
  const double values[P_COUNT] = {
      [P_CPU] = st.cpu_seconds,
      [P_OPEN_FDS] = st.open_fds,
      [P_MAX_FDS] = st.max_fds,
      [P_VSIZE] = st.virtual_bytes,
      [P_VMAX] = st.virtual_max_bytes,
      [P_RSS] = st.resident_bytes,
      [P_START] = st.start_time,
      [P_NET_IN] = st.network_receive_bytes,
      [P_NET_OUT] = st.network_transmit_bytes,
  };
  for (int i = 0; i < P_COUNT; i++) {
    int32_t child = mw_metrics_child_get(reg, pc->family[i], NULL, 0, NULL, 0);
    if (child < 0) continue; /* family deleted behind our back */
    if (st.have & process_metrics[i].have)
      mw_metrics_set(reg, child, values[i]);
    else
      mw_metrics_child_del(reg, child);
  }
  return st.have == MW_PROCSELF_ALL ? 0 : -1;
}

int mw_procself_register(mw_metrics_t *reg, const char *procfs_root, int pid, char *err,
                         size_t errlen) {
  process_collector_t *pc = calloc(1, sizeof *pc);
  if (!pc) goto oom;
  pc->pid = pid;
  if (procfs_root && *procfs_root) {
    size_t n = strlen(procfs_root);
    if (!(pc->root = malloc(n + 1))) goto oom;
    memcpy(pc->root, procfs_root, n + 1);
  }
  for (int i = 0; i < P_COUNT; i++) {
    pc->family[i] = mw_metrics_family_add(reg, process_metrics[i].name, process_metrics[i].help,
                                          process_metrics[i].type, NULL, 0, NULL, 0, err, errlen);
    if (pc->family[i] < 0) goto fail;
  }
  /* collector_add frees pc itself when it fails */
  if (mw_metrics_collector_add(reg, process_collect, process_collector_free, pc) < 0) {
    pc = NULL;
    goto oom;
  }
  return 0;
oom:
  mw_seterr(err, errlen, "procself: out of memory");
fail:
  process_collector_free(pc);
  return -1;
}

int mw_ffi_metrics_process_add(mw_metrics_t *reg, const char *procfs_root, int pid, char *err,
                               size_t errlen) {
  return mw_procself_register(reg, procfs_root, pid, err, errlen);
}
