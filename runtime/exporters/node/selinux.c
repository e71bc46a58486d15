/* exporters/node/selinux.c: the selinux collector (node_exporter 1.5
 * collector/selinux_linux.go over opencontainers/selinux 1.10):
 * node_selinux_enabled, and when enabled node_selinux_config_mode (SELINUX=
 * of /etc/selinux/config: enforcing 1, permissive 0, else -1) and
 * node_selinux_current_mode (<selinuxfs>/enforce, -1 when unreadable).
 *
 * As go-selinux, this looks at the host moonwatch runs on, not at
 * procfs_path/sysfs_path: SELinux is enabled when a writable selinuxfs is
 * mounted (/sys/fs/selinux, else a selinuxfs mount of /proc/self/mountinfo
 * when /proc/filesystems lists it) and the thread's label is not "kernel".
 * That probe is done once per collector set (go-selinux: once per process);
 * the modes are read at every collection. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "exporters/node/node.h"

#define SELINUX_MAGIC 0xf97cff8cu
#define PROC_MAGIC 0x9fa0u

mw_node_selinux_env_t mw_node_selinux_env = {
    "/sys/fs/selinux",      "/proc/filesystems",
    "/proc/self/mountinfo", "/proc/thread-self/attr/current",
    "/etc/selinux/config",  statfs};

struct mw_node_selinux {
  int enabled;
  char mount[PATH_MAX];
};

void mw_node_release_selinux(mw_node_t *n) {
  free(n->selinux);
  n->selinux = NULL;
}

/* verifySELinuxfsMount: a selinuxfs, not mounted read-only. */
static int verify_mount(const char *mnt) {
  struct statfs st;
  int r;
  do
    r = mw_node_selinux_env.statfs_fn(mnt, &st);
  while (r < 0 && (errno == EAGAIN || errno == EINTR));
  return r == 0 && (uint32_t)st.f_type == SELINUX_MAGIC && !(st.f_flags & ST_RDONLY);
}

/* Reads a whole small file into a malloc'd NUL-terminated buffer; NULL on failure. */
static char *slurp(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  size_t cap = 4096, n = 0;
  char *b = malloc(cap);
  for (;;) {
    if (!b) break;
    if (cap - n < 2) {
      char *nb = cap < (64u << 20) ? realloc(b, cap * 2) : NULL;
      if (!nb) {
        free(b);
        b = NULL;
        break;
      }
      b = nb;
      cap *= 2;
    }
    ssize_t r = read(fd, b + n, cap - n - 1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      free(b);
      b = NULL;
      break;
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  close(fd);
  if (b) {
    b[n] = '\0';
    if (len) *len = n;
  }
  return b;
}

/* findSELinuxfs: the mount point in se->mount, or "". */
static void find_fs(struct mw_node_selinux *se) {
  se->mount[0] = '\0';
  if (verify_mount(mw_node_selinux_env.selinuxfs)) {
    snprintf(se->mount, sizeof se->mount, "%s", mw_node_selinux_env.selinuxfs);
    return;
  }
  char *fs = slurp(mw_node_selinux_env.filesystems, NULL);
  int listed = fs && strstr(fs, "\tselinuxfs\n");
  free(fs);
  if (!listed) return;
  char *mi = slurp(mw_node_selinux_env.mountinfo, NULL);
  for (char *line = mi; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    if (strstr(line, " - selinuxfs ")) {
      /* the fifth space-separated field */
      char *f = line;
      for (int k = 0; k < 4 && f; k++) {
        f = strchr(f, ' ');
        if (f) f++;
      }
      if (f) {
        char *end = strchr(f, ' ');
        if (end) {
          *end = '\0';
          if (verify_mount(f)) {
            snprintf(se->mount, sizeof se->mount, "%s", f);
            break;
          }
        }
      }
    }
    line = nl ? nl + 1 : NULL;
  }
  free(mi);
}

/* The thread's SELinux label (readCon of attr/current on procfs), "" when unreadable. */
static void current_label(char *out, size_t cap) {
  const char *path = mw_node_selinux_env.attr_current;
  char alt[64];
  if (access(path, F_OK) < 0) {
    snprintf(alt, sizeof alt, "/proc/self/task/%ld/attr/current", (long)gettid());
    path = alt;
  }
  out[0] = '\0';
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct statfs st;
  if (fstatfs(fd, &st) == 0 && (uint32_t)st.f_type == PROC_MAGIC) {
    ssize_t r = read(fd, out, cap - 1);
    if (r > 0) {
      out[r] = '\0';
      if (out[r - 1] == '\0') r--; /* bytes.TrimSuffix(data, "\x00") */
      out[r] = '\0';
    } else {
      out[0] = '\0';
    }
  }
  close(fd);
}

/* readConfig("SELINUX") as a mode: enforcing 1, permissive 0, else -1. */
static int config_mode(void) {
  char *cfg = slurp(mw_node_selinux_env.config, NULL);
  int mode = -1;
  for (char *line = cfg; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    char *next = nl ? nl + 1 : NULL;
    size_t len = strlen(line);
    line = mw_node_trim(line, &len);
    char *eq = strchr(line, '=');
    if (len && line[0] != ';' && line[0] != '#' && eq) {
      *eq = '\0';
      if (strcmp(line, "SELINUX") == 0) {
        char *v = eq + 1;
        size_t vl = strlen(v);
        while (vl && v[vl - 1] == '"')
          v[--vl] = '\0';
        while (*v == '"')
          v++;
        mode = strcmp(v, "enforcing") == 0 ? 1 : strcmp(v, "permissive") == 0 ? 0 : -1;
        break;
      }
    }
    line = next;
  }
  free(cfg);
  return mode;
}

/* enforceMode: strconv.Atoi of <selinuxfs>/enforce as read, -1 on failure. */
static double enforce_mode(const char *mount) {
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/enforce", mount);
  size_t len;
  char *b = slurp(path, &len);
  double mode = -1;
  if (b && len && strlen(b) == len) {
    int sign = b[0] == '-' || b[0] == '+';
    uint64_t u;
    if (mw_node_parse_u64(b + sign, 10, &u) == 0 && u <= (uint64_t)INT64_MAX + (b[0] == '-'))
      mode = b[0] == '-' ? -(double)u : (double)u;
  }
  free(b);
  return mode;
}

int mw_node_collect_selinux(mw_node_scrape_t *s) {
  mw_node_t *n = s->node;
  if (!n->selinux) {
    n->selinux = calloc(1, sizeof *n->selinux);
    if (!n->selinux) return mw_node_fail(s, "out of memory");
    find_fs(n->selinux);
    if (n->selinux->mount[0]) {
      char label[256];
      current_label(label, sizeof label);
      n->selinux->enabled = strcmp(label, "kernel") != 0;
    }
  }
  struct mw_node_selinux *se = n->selinux;
  mw_node_put1(s, "node_selinux_enabled", "SELinux is enabled, 1 is true, 0 is false",
               MW_METRICS_GAUGE, se->enabled ? 1 : 0);
  if (!se->enabled) return 0;
  mw_node_put1(s, "node_selinux_config_mode", "Configured SELinux enforcement mode",
               MW_METRICS_GAUGE, config_mode());
  mw_node_put1(s, "node_selinux_current_mode", "Current SELinux enforcement mode", MW_METRICS_GAUGE,
               enforce_mode(se->mount));
  return 0;
}
