/* exporters/node/time.c: the time collector (node_exporter collector/time.go, time_linux.go):
 * wall-clock seconds, the local zone's offset, and the clocksources of
 * <sysfs>/devices/system/clocksource (device label = index in name order,
 * as procfs's sorted glob). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exporters/node/node.h"

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int clocksources(mw_node_scrape_t *s) {
  char base[4096], path[8192];
  snprintf(base, sizeof base, "%s/devices/system/clocksource", s->node->sysfs);
  DIR *d = opendir(base);
  if (!d) {
    if (errno == ENOENT) return 0; /* an empty glob */
    return mw_node_fail(s, "couldn't get clocksources: %s", strerror(errno));
  }
  char **names = NULL;
  size_t n = 0;
  int rc = -1;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, "clocksource", 11) != 0 || e->d_name[11] < '0' || e->d_name[11] > '9')
      continue;
    char **nn = realloc(names, (n + 1) * sizeof *names);
    if (!nn) goto cleanup;
    names = nn;
    if (!(names[n] = strdup(e->d_name))) goto cleanup;
    n++;
  }
  if (n) qsort(names, n, sizeof *names, cmp_str);
  int32_t avail =
      mw_node_family(s, "node_time_clocksource_available_info",
                     "Available clocksources read from '/sys/devices/system/clocksource'.",
                     MW_METRICS_GAUGE, "device,clocksource");
  int32_t cur = mw_node_family(s, "node_time_clocksource_current_info",
                               "Current clocksource read from '/sys/devices/system/clocksource'.",
                               MW_METRICS_GAUGE, "device,clocksource");
  for (size_t i = 0; i < n; i++) {
    char idx[24], *f[64], *a = NULL;
    snprintf(idx, sizeof idx, "%zu", i);
    snprintf(path, sizeof path, "%s/%s/available_clocksource", base, names[i]);
    const char *data = mw_node_read(s, path, NULL);
    if (!data || !(a = strdup(data))) {
      mw_node_fail(s, "couldn't get clocksources: %s", strerror(errno));
      goto cleanup;
    }
    size_t nf = mw_node_fields(a, f, 64);
    snprintf(path, sizeof path, "%s/%s/current_clocksource", base, names[i]);
    data = mw_node_read(s, path, NULL);
    if (!data) {
      free(a);
      mw_node_fail(s, "couldn't get clocksources: %s", strerror(errno));
      goto cleanup;
    }
    for (size_t k = 0; k < nf; k++)
      mw_node_put(s, avail, 1, idx, f[k]);
    free(a);
    char c[256], *cf[1];
    snprintf(c, sizeof c, "%s", data);
    mw_node_put(s, cur, 1, idx, mw_node_fields(c, cf, 1) ? cf[0] : "");
  }
  rc = 0;
cleanup:
  if (rc < 0 && !s->err[0]) mw_node_fail(s, "out of memory");
  closedir(d);
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  return rc;
}

int mw_node_collect_time(mw_node_scrape_t *s) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  double now = (double)((long long)ts.tv_sec * 1000000000LL + ts.tv_nsec) / 1e9;
  time_t t = ts.tv_sec;
  localtime_r(&t, &tm);
  mw_node_put1(s, "node_time_seconds", "System time in seconds since epoch (1970).",
               MW_METRICS_GAUGE, now);
  int32_t z = mw_node_family(s, "node_time_zone_offset_seconds",
                             "System time zone offset in seconds.", MW_METRICS_GAUGE, "time_zone");
  mw_node_put(s, z, (double)tm.tm_gmtoff, tm.tm_zone ? tm.tm_zone : "UTC");
  return clocksources(s);
}
