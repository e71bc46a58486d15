/* exporters/node/cpufreq.c: the cpufreq collector (node_exporter collector/cpufreq_linux.go):
 * cpuinfo_* and scaling_* frequencies of every CPU with a cpufreq directory,
 * kHz in sysfs, hertz out. Unreadable files are skipped (procfs fails the
 * whole collector when one of the string files it reads but does not export
 * is missing; those files are not read here). A CPU without a cpufreq
 * directory costs one faccessat, not six failed opens. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "exporters/node/node.h"

int mw_node_collect_cpufreq(mw_node_scrape_t *s) {
  static const struct {
    const char *file, *name, *help;
  } files[] = {
      {"cpuinfo_cur_freq", "node_cpu_frequency_hertz", "Current cpu thread frequency in hertz."},
      {"cpuinfo_min_freq", "node_cpu_frequency_min_hertz",
       "Minimum cpu thread frequency in hertz."},
      {"cpuinfo_max_freq", "node_cpu_frequency_max_hertz",
       "Maximum cpu thread frequency in hertz."},
      {"scaling_cur_freq", "node_cpu_scaling_frequency_hertz",
       "Current scaled CPU thread frequency in hertz."},
      {"scaling_min_freq", "node_cpu_scaling_frequency_min_hertz",
       "Minimum scaled CPU thread frequency in hertz."},
      {"scaling_max_freq", "node_cpu_scaling_frequency_max_hertz",
       "Maximum scaled CPU thread frequency in hertz."},
  };
  char base[4096], path[8192];
  snprintf(base, sizeof base, "%s/devices/system/cpu", s->node->sysfs);
  DIR *d = opendir(base);
  if (!d) return mw_node_fail(s, "%s: %s", base, strerror(errno));
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, "cpu", 3) != 0 || e->d_name[3] < '0' || e->d_name[3] > '9') continue;
    snprintf(path, sizeof path, "%s/cpufreq", e->d_name);
    if (faccessat(dirfd(d), path, F_OK, 0) < 0 && errno == ENOENT) continue; /* every read fails */
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
      uint64_t v;
      snprintf(path, sizeof path, "%s/%s/cpufreq/%s", base, e->d_name, files[i].file);
      if (mw_node_read_u64(s, path, &v) < 0) continue;
      int32_t f = mw_node_family(s, files[i].name, files[i].help, MW_METRICS_GAUGE, "cpu");
      mw_node_put(s, f, (double)v * 1000.0, e->d_name + 3);
    }
  }
  closedir(d);
  return 0;
}
