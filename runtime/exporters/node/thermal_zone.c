/* exporters/node/thermal_zone.c: the thermal_zone collector (node_exporter 1.5
 * collector/thermal_zone_linux.go over procfs 0.8's sysfs/class_thermal.go
 * and class_cooling_device.go): node_thermal_zone_temp{zone, type} for
 * <sysfs>/class/thermal/thermal_zone[0-9]*, node_cooling_device_cur_state and
 * _max_state{name, type} for cooling_device[0-9]*, in name order.
 *
 * As procfs: a zone needs type and policy (one read of at most 128 bytes)
 * and temp (an integer); mode must be readable if present and passive must be
 * an unsigned integer if present (neither is reported); a zone whose files
 * answer ENODATA is skipped; any other failure fails the collector before
 * anything is reported. A cooling device needs type, max_state and cur_state
 * (integers; cur_state may be -1); a failure there fails the collector after
 * the zones were reported. No thermal class at all is success with nothing. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exporters/node/node.h"

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in dir matching prefix[0-9]* (Go's filepath.Glob), sorted;
 * malloc'd array of malloc'd strings. 0, or -1 (out of memory). */
static int glob_prefix(const char *dir, const char *prefix, char ***out, size_t *n) {
  size_t pl = strlen(prefix), cap = 0;
  *out = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (!d) return 0; /* an empty glob */
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, prefix, pl) != 0 || e->d_name[pl] < '0' || e->d_name[pl] > '9') continue;
    if (*n == cap) {
      size_t c = cap ? cap * 2 : 16;
      char **a = realloc(*out, c * sizeof *a);
      if (!a) goto oom;
      *out = a;
      cap = c;
    }
    if (!((*out)[*n] = strdup(e->d_name))) goto oom;
    (*n)++;
  }
  closedir(d);
  if (*n) qsort(*out, *n, sizeof **out, cmp_str);
  return 0;
oom:
  closedir(d);
  return -1;
}

static void free_names(char **names, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
}

/* util.SysReadFile of dir/name into buf (trimmed); the value or NULL (errno). */
static char *sysread(mw_node_scrape_t *s, const char *dir, const char *name, char *buf) {
  char path[8192];
  size_t len;
  if (mw_node_sysread(s, mw_node_pathf(path, sizeof path, "%s/%s", dir, name), buf, &len) < 0)
    return NULL;
  return mw_node_trim(buf, &len);
}

/* util.ReadIntFromFile (signed) / ReadUintFromFile of dir/name: 0, -1 with
 * errno (EINVAL: not a number). */
static int read_int(mw_node_scrape_t *s, const char *dir, const char *name, int sign,
                    int64_t *out) {
  char path[8192];
  size_t len;
  const char *b = mw_node_read(s, mw_node_pathf(path, sizeof path, "%s/%s", dir, name), &len);
  if (!b) return -1;
  char tmp[64];
  while (len && strchr(" \t\n\r\v\f", b[len - 1]))
    len--;
  while (len && strchr(" \t\n\r\v\f", *b)) {
    b++;
    len--;
  }
  if (len >= sizeof tmp) {
    errno = EINVAL;
    return -1;
  }
  memcpy(tmp, b, len);
  tmp[len] = '\0';
  uint64_t u;
  const char *digits = tmp + (sign && tmp[0] == '-') + (sign && tmp[0] == '+');
  if (mw_node_parse_u64(digits, 10, &u) < 0 || (digits != tmp && !sign)) {
    errno = EINVAL;
    return -1;
  }
  if (sign) {
    int neg = tmp[0] == '-';
    if ((!neg && u > (uint64_t)INT64_MAX) || (neg && u > (uint64_t)INT64_MAX + 1)) {
      errno = ERANGE;
      return -1;
    }
    *out = neg ? (int64_t)(0 - u) : (int64_t)u;
  } else {
    *out = u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
  }
  return 0;
}

typedef struct {
  char *name, *type;
  int64_t a, b; /* zone: temp; cooling device: max_state, cur_state */
} entry_t;

static void free_entries(entry_t *es, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(es[i].type);
  free(es);
}

static int zones(mw_node_scrape_t *s, const char *base) {
  char **names, buf[MW_NODE_SYSREAD_MAX + 1], dir[8192];
  size_t n, ne = 0;
  if (glob_prefix(base, "thermal_zone", &names, &n) < 0) return mw_node_fail(s, "out of memory");
  entry_t *es = calloc(n ? n : 1, sizeof *es);
  int rc = -1;
  if (!es) {
    mw_node_fail(s, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    snprintf(dir, sizeof dir, "%s/%s", base, names[i]);
    const char *type = sysread(s, dir, "type", buf);
    char *t = type ? strdup(type) : NULL;
    int64_t temp = 0, passive;
    int e = 0;
    if (!type)
      e = errno;
    else if (!t)
      e = ENOMEM;
    else if (!sysread(s, dir, "policy", buf))
      e = errno;
    else if (read_int(s, dir, "temp", 1, &temp) < 0)
      e = errno;
    else if (!sysread(s, dir, "mode", buf) && errno != ENOENT && errno != EACCES && errno != EPERM)
      e = errno;
    else if (read_int(s, dir, "passive", 0, &passive) < 0 && errno != ENOENT && errno != EACCES &&
             errno != EPERM)
      e = errno;
    if (e == ENODATA) {
      free(t);
      continue;
    }
    if (e) {
      free(t);
      mw_node_fail(s, "%s: %s", dir, strerror(e));
      goto done;
    }
    es[ne++] = (entry_t){names[i] + 12, t, temp, 0};
  }
  int32_t f = mw_node_family(s, "node_thermal_zone_temp", "Zone temperature in Celsius",
                             MW_METRICS_GAUGE, "zone,type");
  for (size_t i = 0; i < ne; i++)
    mw_node_put(s, f, (double)es[i].a / 1000.0, es[i].name, es[i].type);
  rc = 0;
done:
  free_entries(es, ne);
  free_names(names, n);
  return rc;
}

static int cooling_devices(mw_node_scrape_t *s, const char *base) {
  char **names, buf[MW_NODE_SYSREAD_MAX + 1], dir[8192];
  size_t n, ne = 0;
  if (glob_prefix(base, "cooling_device", &names, &n) < 0) return mw_node_fail(s, "out of memory");
  entry_t *es = calloc(n ? n : 1, sizeof *es);
  int rc = -1;
  if (!es) {
    mw_node_fail(s, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    snprintf(dir, sizeof dir, "%s/%s", base, names[i]);
    const char *v = sysread(s, dir, "type", buf);
    if (!v) {
      mw_node_fail(s, "%s/type: %s", names[i], strerror(errno));
      goto done;
    }
    char *t = strdup(v);
    if (!t) {
      mw_node_fail(s, "out of memory");
      goto done;
    }
    es[ne].type = t;
    es[ne].name = names[i] + 14;
    ne++;
    static const char *const files[2] = {"max_state", "cur_state"};
    for (int k = 0; k < 2; k++) {
      int64_t x;
      if (!(v = sysread(s, dir, files[k], buf))) {
        mw_node_fail(s, "%s/%s: %s", names[i], files[k], strerror(errno));
        goto done;
      }
      /* strconv.ParseInt(v, 10, 64) */
      int neg = v[0] == '-' || v[0] == '+';
      uint64_t u;
      if (mw_node_parse_u64(v + neg, 10, &u) < 0 || u > (uint64_t)INT64_MAX + (v[0] == '-')) {
        mw_node_fail(s, "strconv.ParseInt: parsing \"%s\": invalid syntax", v);
        goto done;
      }
      x = v[0] == '-' ? (int64_t)(0 - u) : (int64_t)u;
      if (k == 0)
        es[ne - 1].a = x;
      else
        es[ne - 1].b = x;
    }
  }
  int32_t cur =
      mw_node_family(s, "node_cooling_device_cur_state",
                     "Current throttle state of the cooling device", MW_METRICS_GAUGE, "name,type");
  int32_t max =
      mw_node_family(s, "node_cooling_device_max_state",
                     "Maximum throttle state of the cooling device", MW_METRICS_GAUGE, "name,type");
  for (size_t i = 0; i < ne; i++) {
    mw_node_put(s, cur, (double)es[i].b, es[i].name, es[i].type);
    mw_node_put(s, max, (double)es[i].a, es[i].name, es[i].type);
  }
  rc = 0;
done:
  free_entries(es, ne);
  free_names(names, n);
  return rc;
}

int mw_node_collect_thermal_zone(mw_node_scrape_t *s) {
  char base[4096];
  snprintf(base, sizeof base, "%s/class/thermal", s->node->sysfs);
  if (zones(s, base) < 0) return -1;
  return cooling_devices(s, base);
}
