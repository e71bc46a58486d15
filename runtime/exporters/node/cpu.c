/* exporters/node/cpu.c: the cpu collector (node_exporter collector/cpu_linux.go):
 * per-CPU mode seconds from /proc/stat (counters kept from going backwards,
 * reset on a hotplug-like jump), guest seconds, thermal throttle counts and
 * isolated CPUs from sysfs, and with cpu_info the /proc/cpuinfo families. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exporters/node/node.h"

#define USER_HZ 100.0 /* prometheus/procfs assumes 100 ticks per second */
#define JUMP_BACK_SECONDS 3.0

enum { IDLE = 3 }; /* index of idle in mw_node_cpu_stat_t */

static const char *const modes[8] = {"user",   "nice", "system",  "idle",
                                     "iowait", "irq",  "softirq", "steal"};

/* cpuStat field order in /proc/stat: user nice system idle iowait irq softirq steal guest
 * guest_nice. */
static int update_stats(mw_node_t *n, size_t ncpu, const mw_node_cpu_stat_t *cur) {
  if (n->ncpu_stats != ncpu) {
    free(n->cpu_stats);
    n->cpu_stats = calloc(ncpu ? ncpu : 1, sizeof *n->cpu_stats);
    n->ncpu_stats = n->cpu_stats ? ncpu : 0;
    if (!n->cpu_stats) return -1;
  }
  for (size_t i = 0; i < ncpu; i++) {
    mw_node_cpu_stat_t *old = &n->cpu_stats[i];
    if (old->v[IDLE] - cur[i].v[IDLE] >= JUMP_BACK_SECONDS) memset(old, 0, sizeof *old);
    for (int k = 0; k < 10; k++)
      if (cur[i].v[k] >= old->v[k]) old->v[k] = cur[i].v[k];
  }
  return 0;
}

static int collect_stat(mw_node_scrape_t *s) {
  mw_node_t *n = s->node;
  size_t len;
  const char *data = mw_node_read(s, mw_node_proc_path(s, "stat"), &len);
  if (!data) return mw_node_fail(s, "%s/stat: %s", n->procfs, strerror(errno));
  char *copy = strdup(data);
  mw_node_cpu_stat_t *cur = NULL;
  size_t ncpu = 0;
  int rc = -1;
  if (!copy) {
    mw_node_fail(s, "out of memory");
    goto cleanup;
  }
  for (char *line = copy; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    if (strncmp(line, "cpu", 3) == 0 && line[3] >= '0' && line[3] <= '9') {
      char *f[12];
      size_t nf = mw_node_fields(line, f, 12);
      uint64_t id;
      if (mw_node_parse_u64(f[0] + 3, 10, &id) < 0 || id >= MW_NODE_MAX_CPUS || nf < 2) {
        mw_node_fail(s, "couldn't parse %s (cpu)", f[0]);
        goto cleanup;
      }
      if (id >= ncpu) {
        mw_node_cpu_stat_t *c = realloc(cur, (id + 1) * sizeof *cur);
        if (!c) {
          mw_node_fail(s, "out of memory");
          goto cleanup;
        }
        memset(c + ncpu, 0, (id + 1 - ncpu) * sizeof *cur);
        cur = c;
        ncpu = id + 1;
      }
      for (size_t k = 1; k < nf && k <= 10; k++) {
        double v;
        if (mw_node_parse_f64(f[k], &v) < 0) {
          mw_node_fail(s, "couldn't parse %s (cpu)", f[k]);
          goto cleanup;
        }
        cur[id].v[k - 1] = v / USER_HZ;
      }
    }
    line = nl ? nl + 1 : NULL;
  }
  if (update_stats(n, ncpu, cur) < 0) {
    mw_node_fail(s, "out of memory");
    goto cleanup;
  }
  int32_t fam = mw_node_family(s, "node_cpu_seconds_total", "Seconds the CPUs spent in each mode.",
                               MW_METRICS_COUNTER, "cpu,mode");
  int32_t guest = n->cpu_guest
                      ? mw_node_family(s, "node_cpu_guest_seconds_total",
                                       "Seconds the CPUs spent in guests (VMs) for each mode.",
                                       MW_METRICS_COUNTER, "cpu,mode")
                      : -1;
  for (size_t i = 0; i < n->ncpu_stats; i++) {
    char cpu[24];
    snprintf(cpu, sizeof cpu, "%zu", i);
    for (int k = 0; k < 8; k++)
      mw_node_put(s, fam, n->cpu_stats[i].v[k], cpu, modes[k]);
    mw_node_put(s, guest, n->cpu_stats[i].v[8], cpu, "user");
    mw_node_put(s, guest, n->cpu_stats[i].v[9], cpu, "nice");
  }
  rc = 0;
cleanup:
  free(copy);
  free(cur);
  return rc;
}

/* /proc/cpuinfo (x86 layout): node_cpu_info per processor, flags and bugs of the first. */
static int collect_info(mw_node_scrape_t *s) {
  mw_node_t *n = s->node;
  const char *data = mw_node_read(s, mw_node_proc_path(s, "cpuinfo"), NULL);
  if (!data) return mw_node_fail(s, "%s/cpuinfo: %s", n->procfs, strerror(errno));
  char *copy = strdup(data);
  if (!copy) return mw_node_fail(s, "out of memory");
  int32_t info = mw_node_family(
      s, "node_cpu_info", "CPU information from /proc/cpuinfo.", MW_METRICS_GAUGE,
      "package,core,cpu,vendor,family,model,model_name,microcode,stepping,cachesize");
  enum { PKG, CORE, CPU, VENDOR, FAMILY, MODEL, MODEL_NAME, MICROCODE, STEPPING, CACHE, NV };
  static const char *const keys[NV] = {"physical id", "core id",   "processor",  "vendor_id",
                                       "cpu family",  "model",     "model name", "microcode",
                                       "stepping",    "cache size"};
  const char *v[NV];
  const char *flags = NULL, *bugs = NULL;
  int first = 1, have = 0;
  for (int k = 0; k < NV; k++)
    v[k] = "";
  for (char *line = copy;;) {
    char *nl = line ? strchr(line, '\n') : NULL;
    if (nl) *nl = '\0';
    int end = !line || !*line;
    if (end || strncmp(line, "processor", 9) == 0) {
      if (have) {
        mw_node_putv(s, info, 1, v, NV);
        first = 0;
      }
      for (int k = 0; k < NV; k++)
        v[k] = "";
      have = 0;
    }
    if (!line) break;
    char *colon = strchr(line, ':');
    if (colon) {
      char *key = line, *val = colon + 1, *ke = colon;
      while (ke > key && (ke[-1] == ' ' || ke[-1] == '\t'))
        ke--;
      *ke = '\0';
      while (*val == ' ' || *val == '\t')
        val++;
      for (int k = 0; k < NV; k++)
        if (strcmp(key, keys[k]) == 0) {
          v[k] = val;
          if (k == CPU) have = 1;
        }
      if (first && strcmp(key, "flags") == 0) flags = val;
      if (first && strcmp(key, "bugs") == 0) bugs = val;
    }
    line = nl ? nl + 1 : NULL;
  }
  const struct {
    const char *list, *name, *help, *label;
    const mw_node_re_t *re;
  } fl[2] = {{flags, "node_cpu_flag_info",
              "The `flags` field of CPU information from /proc/cpuinfo taken from the first core.",
              "flag", n->cpu_flags_include},
             {bugs, "node_cpu_bug_info",
              "The `bugs` field of CPU information from /proc/cpuinfo taken from the first core.",
              "bug", n->cpu_bugs_include}};
  for (int i = 0; i < 2; i++) {
    if (!fl[i].re || !fl[i].list) continue;
    char *list = strdup(fl[i].list), *f[512];
    if (!list) break;
    size_t nf = mw_node_fields(list, f, 512);
    int32_t fam = mw_node_family(s, fl[i].name, fl[i].help, MW_METRICS_GAUGE, fl[i].label);
    for (size_t k = 0; k < nf; k++)
      if (mw_node_re_match(fl[i].re, f[k], strlen(f[k]))) mw_node_put(s, fam, 1, f[k]);
    free(list);
  }
  free(copy);
  return 0;
}

/* cpuN directory names under sysfs devices/system/cpu. */
static int is_cpu_dir(const char *name) {
  if (strncmp(name, "cpu", 3) != 0 || name[3] < '0' || name[3] > '9') return 0;
  return 1;
}

typedef struct {
  uint64_t pkg, core, count;
  int has_count;
} throttle_t;

static void collect_throttle(mw_node_scrape_t *s) {
  char base[4096], path[8192];
  snprintf(base, sizeof base, "%s/devices/system/cpu", s->node->sysfs);
  DIR *d = opendir(base);
  if (!d) return;
  throttle_t *cores = NULL, *pkgs = NULL;
  size_t ncores = 0, npkgs = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!is_cpu_dir(e->d_name)) continue;
    uint64_t pkg, core, cnt;
    snprintf(path, sizeof path, "%s/%s/topology/physical_package_id", base, e->d_name);
    if (mw_node_read_u64(s, path, &pkg) < 0) continue;
    snprintf(path, sizeof path, "%s/%s/topology/core_id", base, e->d_name);
    if (mw_node_read_u64(s, path, &core) < 0) continue;
    size_t i;
    for (i = 0; i < ncores && !(cores[i].pkg == pkg && cores[i].core == core); i++) {
    }
    if (i == ncores) {
      throttle_t *c = realloc(cores, (ncores + 1) * sizeof *cores);
      if (!c) break;
      cores = c;
      cores[ncores++] = (throttle_t){pkg, core, 0, 0};
      snprintf(path, sizeof path, "%s/%s/thermal_throttle/core_throttle_count", base, e->d_name);
      if (mw_node_read_u64(s, path, &cnt) == 0) cores[i].count = cnt, cores[i].has_count = 1;
    }
    for (i = 0; i < npkgs && pkgs[i].pkg != pkg; i++) {
    }
    if (i == npkgs) {
      snprintf(path, sizeof path, "%s/%s/thermal_throttle/package_throttle_count", base, e->d_name);
      if (mw_node_read_u64(s, path, &cnt) == 0) {
        throttle_t *p = realloc(pkgs, (npkgs + 1) * sizeof *pkgs);
        if (!p) break;
        pkgs = p;
        pkgs[npkgs++] = (throttle_t){pkg, 0, cnt, 1};
      }
    }
  }
  closedir(d);
  if (npkgs) {
    int32_t f = mw_node_family(s, "node_cpu_package_throttles_total",
                               "Number of times this CPU package has been throttled.",
                               MW_METRICS_COUNTER, "package");
    for (size_t i = 0; i < npkgs; i++) {
      char p[24];
      snprintf(p, sizeof p, "%llu", (unsigned long long)pkgs[i].pkg);
      mw_node_put(s, f, (double)pkgs[i].count, p);
    }
  }
  int32_t f = -1;
  for (size_t i = 0; i < ncores; i++) {
    if (!cores[i].has_count) continue;
    if (f < 0)
      f = mw_node_family(s, "node_cpu_core_throttles_total",
                         "Number of times this CPU core has been throttled.", MW_METRICS_COUNTER,
                         "package,core");
    char p[24], c[24];
    snprintf(p, sizeof p, "%llu", (unsigned long long)cores[i].pkg);
    snprintf(c, sizeof c, "%llu", (unsigned long long)cores[i].core);
    mw_node_put(s, f, (double)cores[i].count, p, c);
  }
  free(cores);
  free(pkgs);
}

/* devices/system/cpu/isolated: a list like "1,3-5". */
static void collect_isolated(mw_node_scrape_t *s) {
  const char *data = mw_node_read(s, mw_node_sys_path(s, "devices/system/cpu/isolated"), NULL);
  if (!data) return;
  char *copy = strdup(data);
  if (!copy) return;
  int32_t f = -1;
  for (char *tok = strtok(copy, ",\n"); tok; tok = strtok(NULL, ",\n")) {
    unsigned long lo, hi;
    char *dash = strchr(tok, '-');
    lo = strtoul(tok, NULL, 10);
    hi = dash ? strtoul(dash + 1, NULL, 10) : lo;
    if (hi < lo || hi - lo > MW_NODE_MAX_CPUS) break;
    if (f < 0)
      f = mw_node_family(s, "node_cpu_isolated",
                         "Whether each core is isolated, information from "
                         "/sys/devices/system/cpu/isolated.",
                         MW_METRICS_GAUGE, "cpu");
    for (unsigned long c = lo; c <= hi; c++) {
      char cpu[24];
      snprintf(cpu, sizeof cpu, "%lu", c);
      mw_node_put(s, f, 1, cpu);
    }
  }
  free(copy);
}

void mw_node_release_cpu(mw_node_t *n) {
  free(n->cpu_stats);
  n->cpu_stats = NULL;
  n->ncpu_stats = 0;
}

int mw_node_collect_cpu(mw_node_scrape_t *s) {
  if (s->node->cpu_info && collect_info(s) < 0) return -1;
  if (collect_stat(s) < 0) return -1;
  collect_isolated(s);
  collect_throttle(s);
  return 0;
}
