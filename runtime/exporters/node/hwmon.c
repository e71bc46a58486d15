/* exporters/node/hwmon.c: the hwmon collector (node_exporter 1.5
 * collector/hwmon_linux.go): the sensor files of every directory of
 * <sysfs>/class/hwmon (and of its device/ directory) whose names parse as
 * <type><n>_<property> for a known sensor type, reported per chip and sensor
 * as node_hwmon_<type>[_<property>]_<unit> with node_exporter's units and HELP
 * texts, plus node_hwmon_chip_names and node_hwmon_sensor_label.
 *
 * As node_exporter: a sensor file is read with one read of at most 128 bytes
 * (a broken driver answering EAGAIN costs one syscall) and skipped when that
 * fails or its value is not a float; the chip is named after its device's
 * resolved path (<bus>_<device>), else its name file, else the hwmon
 * directory; a chip whose directories cannot be listed fails the collector
 * after the other chips were reported. No hwmon class is "no data". Alloy's
 * chip_include / chip_exclude filter chips by that name (node_exporter 1.7). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "exporters/node/node.h"

static const char *const sensor_types[] = {
    "vrm",  "beep_enable", "update_interval", "in",     "cpu",      "fan",      "pwm",
    "temp", "curr",        "power",           "energy", "humidity", "intrusion"};

int mw_node_hwmon_split(const char *name, size_t *type_len, long *num, const char **prop) {
  size_t n = strlen(name), t = 0;
  if (memchr(name, '\n', n)) return -1; /* '.' does not match a newline */
  while (t < n && (name[t] < '0' || name[t] > '9'))
    t++;
  if (t == 0) return -1; /* [^0-9]+ needs one */
  size_t d = t;
  while (d < n && name[d] >= '0' && name[d] <= '9')
    d++;
  /* ^(type)(id)?(_(property))?$ with greedy type: after the longest type and
   * id, nothing or "_" and one byte at least must be left */
  if (d == n || (name[d] == '_' && d + 1 < n)) {
    if (d > t) {
      /* strconv.Atoi: a number that does not fit an int fails the name */
      long v = 0;
      for (size_t i = t; i < d; i++) {
        if (v > (LONG_MAX - (name[i] - '0')) / 10) return -1;
        v = v * 10 + (name[i] - '0');
      }
      *num = v;
    } else {
      *num = 0;
    }
    *type_len = t;
    *prop = d == n ? name + n : name + d + 1;
    return 0;
  }
  /* else a shorter type followed by "_<property>" (no id): the last '_'
   * before the first digit that leaves a non-empty type */
  for (size_t k = t; k-- > 1;) {
    if (name[k] != '_') continue;
    *type_len = k;
    *num = 0;
    *prop = name + k + 1;
    return 0;
  }
  return -1;
}

/* cleanMetricName: lower case, every rune outside [a-z0-9:_] becomes '_'
 * (a multi-byte or invalid UTF-8 rune is one), '_' trimmed at both ends. */
static void clean_name(const char *in, size_t n, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 1 < cap;) {
    unsigned char c = (unsigned char)in[i];
    if (c >= 0x80) { /* one rune, valid or not, becomes one '_' */
      size_t w = mw_node_utf8_len(in + i, n - i);
      out[o++] = '_';
      i += w ? w : 1;
      continue;
    }
    if (c >= 'A' && c <= 'Z') c = (unsigned char)(c + 32);
    out[o++] =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ':' || c == '_' ? (char)c : '_';
    i++;
  }
  out[o] = '\0';
  size_t a = 0;
  while (out[a] == '_')
    a++;
  while (o > a && out[o - 1] == '_')
    o--;
  memmove(out, out + a, o - a);
  out[o - a] = '\0';
}

/* dst = a + sep + b; -1 (dst empty) when it does not fit. */
static int join(char *dst, size_t cap, const char *a, char sep, const char *b) {
  size_t al = strlen(a), bl = strlen(b);
  if (al + 1 + bl >= cap) {
    dst[0] = '\0';
    return -1;
  }
  memmove(dst, a, al);
  dst[al] = sep;
  memcpy(dst + al + 1, b, bl + 1);
  return 0;
}

/* The last element of path (after trailing slashes are gone) in out. */
static void base_name(const char *path, char *out, size_t cap) {
  size_t n = strlen(path);
  const char *slash = memrchr(path, '/', n);
  snprintf(out, cap, "%s", slash ? slash + 1 : path);
}

/* hwmonName: "<device type>_<device>" from dir/device's resolved path, else
 * the name file, else the directory's resolved name. 0, or -1 (s->err). */
static int chip_name(mw_node_scrape_t *s, const char *dir, char *out, size_t cap) {
  char path[PATH_MAX + 16], real[PATH_MAX], a[PATH_MAX], b[PATH_MAX];
  join(path, sizeof path, dir, '/', "device");
  if (path[0] && realpath(path, real)) {
    base_name(real, a, sizeof a);
    char *slash = strrchr(real, '/');
    if (slash) *slash = '\0';
    size_t rl = strlen(real);
    while (rl > 0 && real[rl - 1] == '/')
      real[--rl] = '\0';
    base_name(real, b, sizeof b);
    char dev[PATH_MAX], type[PATH_MAX];
    clean_name(a, strlen(a), dev, sizeof dev);
    clean_name(b, strlen(b), type, sizeof type);
    if (type[0] && dev[0] && join(out, cap, type, '_', dev) == 0) return 0;
    if (dev[0] && strlen(dev) < cap) {
      memcpy(out, dev, strlen(dev) + 1);
      return 0;
    }
  }
  join(path, sizeof path, dir, '/', "name");
  size_t len;
  const char *raw = path[0] ? mw_node_read(s, path, &len) : NULL;
  if (raw && len) {
    clean_name(raw, len, out, cap);
    if (out[0]) return 0;
  }
  if (realpath(dir, real)) {
    base_name(real, a, sizeof a);
    clean_name(a, strlen(a), out, cap);
    if (out[0]) return 0;
  } else {
    return mw_node_fail(s, "lstat %s: %s", dir, strerror(errno));
  }
  return mw_node_fail(s, "Could not derive a monitoring name for %s", dir);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
}

/* The entries of dir but . and .., sorted (os.ReadDir). 0, -1 with errno
 * when dir cannot be listed, -2 out of memory. */
static int list_dir(const char *dir, char ***out, size_t *n) {
  size_t cap = 0;
  *out = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (!d) return -1;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
    if (*n == cap) {
      size_t c = cap ? cap * 2 : 32;
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
  free_names(*out, *n);
  *out = NULL;
  *n = 0;
  return -2;
}

typedef struct {
  char sensor[64]; /* type + number */
  size_t type_len;
  char *prop;
  char *value;
} reading_t;

typedef struct {
  reading_t *r;
  size_t n, cap;
} readings_t;

static void readings_free(readings_t *rs) {
  for (size_t i = 0; i < rs->n; i++) {
    free(rs->r[i].prop);
    free(rs->r[i].value);
  }
  free(rs->r);
}

/* collectSensorData: the sensor files of dir into rs (a later file of the
 * same sensor and property replaces the value). 0, -1 (errno) when dir
 * cannot be listed, -2 out of memory. */
static int sensor_data(mw_node_scrape_t *s, const char *dir, readings_t *rs) {
  char **names;
  size_t nnames;
  int rc = list_dir(dir, &names, &nnames);
  if (rc < 0) return rc;
  char path[8192], buf[MW_NODE_SYSREAD_MAX + 1];
  for (size_t f = 0; f < nnames; f++) {
    const char *fname = names[f];
    size_t tl, len;
    long num;
    const char *prop;
    if (mw_node_hwmon_split(fname, &tl, &num, &prop) < 0) continue;
    size_t k = 0, nt = sizeof sensor_types / sizeof sensor_types[0];
    while (k < nt && (strlen(sensor_types[k]) != tl || memcmp(sensor_types[k], fname, tl)))
      k++;
    if (k == nt) continue;
    if (join(path, sizeof path, dir, '/', fname) < 0 || mw_node_sysread(s, path, buf, &len) < 0)
      continue;
    /* strings.Trim(raw, "\n") */
    char *v = buf;
    while (len && v[len - 1] == '\n')
      v[--len] = '\0';
    while (*v == '\n') {
      v++;
      len--;
    }
    char sensor[64];
    snprintf(sensor, sizeof sensor, "%s%ld", sensor_types[k], num);
    size_t i = 0;
    while (i < rs->n && (strcmp(rs->r[i].sensor, sensor) || strcmp(rs->r[i].prop, prop)))
      i++;
    char *val = malloc(len + 1);
    if (!val) {
      rc = -2;
      break;
    }
    memcpy(val, v, len + 1); /* may hold NUL bytes: the value stops there, as a float parse */
    if (i < rs->n) {
      free(rs->r[i].value);
      rs->r[i].value = val;
      continue;
    }
    if (rs->n == rs->cap) {
      size_t c = rs->cap ? rs->cap * 2 : 32;
      reading_t *a = realloc(rs->r, c * sizeof *a);
      if (!a) {
        free(val);
        rc = -2;
        break;
      }
      rs->r = a;
      rs->cap = c;
    }
    reading_t *r = &rs->r[rs->n];
    snprintf(r->sensor, sizeof r->sensor, "%s", sensor);
    r->type_len = tl;
    r->value = val;
    if (!(r->prop = strdup(prop))) {
      free(val);
      rc = -2;
      break;
    }
    rs->n++;
  }
  free_names(names, nnames);
  return rc;
}

/* strconv.ParseFloat of a whole value. */
static int parse_value(const char *v, double *out) {
  if (!v[0] || strchr(" \t\n\r\v\f", v[0])) return -1;
  return mw_node_parse_f64(v, out);
}

static void put_gauge(mw_node_scrape_t *s, const char *name, const char *help, int counter,
                      double v, const char *chip, const char *sensor) {
  int32_t f =
      mw_node_family(s, name, help, counter ? MW_METRICS_COUNTER : MW_METRICS_GAUGE, "chip,sensor");
  mw_node_put(s, f, v, chip, sensor);
}

/* One sensor's metrics (the readings rs->r[idx[0..n)]). */
static void put_sensor(mw_node_scrape_t *s, const char *chip, readings_t *rs, const size_t *idx,
                       size_t n) {
  const reading_t *first = &rs->r[idx[0]];
  const char *sensor = first->sensor;
  char type[32], name[512], help[512], clean[256];
  snprintf(type, sizeof type, "%.*s", (int)first->type_len, sensor);
  const char *bare = NULL; /* the property "" (the file without _<property>) */
  for (size_t i = 0; i < n; i++) {
    const reading_t *r = &rs->r[idx[i]];
    if (!r->prop[0]) bare = r->value;
    if (strcmp(r->prop, "label") == 0) {
      char *label = mw_node_valid_utf8(r->value, strlen(r->value));
      if (!label) continue;
      int32_t f = mw_node_family(s, "node_hwmon_sensor_label", "Label for given chip and sensor",
                                 MW_METRICS_GAUGE, "chip,sensor,label");
      mw_node_put(s, f, 1, chip, sensor, label);
      free(label);
    }
  }
  double v;
  if (strcmp(type, "beep_enable") == 0) {
    put_gauge(s, "node_hwmon_beep_enabled", "Hardware beep enabled", 0,
              bare && strcmp(bare, "1") == 0 ? 1 : 0, chip, sensor);
    return;
  }
  if (strcmp(type, "vrm") == 0) {
    if (parse_value(bare ? bare : "", &v) == 0)
      put_gauge(s, "node_hwmon_voltage_regulator_version", "Hardware voltage regulator", 0, v, chip,
                sensor);
    return;
  }
  if (strcmp(type, "update_interval") == 0) {
    if (parse_value(bare ? bare : "", &v) == 0)
      put_gauge(s, "node_hwmon_update_interval_seconds", "Hardware monitor update interval", 0,
                v * 0.001, chip, sensor);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    const reading_t *r = &rs->r[idx[i]];
    const char *el = r->prop;
    if (strcmp(el, "label") == 0) continue;
    int len = snprintf(name, sizeof name, "node_hwmon_%s", type);
    if (strcmp(el, "input") == 0) {
      if (bare) snprintf(name + len, sizeof name - (size_t)len, "_input");
    } else if (el[0]) {
      clean_name(el, strlen(el), clean, sizeof clean);
      snprintf(name + len, sizeof name - (size_t)len, "_%s", clean);
    }
    if (parse_value(r->value, &v) < 0) continue;
    size_t nl = strlen(name);
    char *suffix = name + nl;
    size_t room = sizeof name - nl;
    if (strcmp(el, "fault") == 0 || strcmp(el, "alarm") == 0) {
      snprintf(help, sizeof help, "Hardware sensor %s status (%s)", el, type);
      put_gauge(s, name, help, 0, v, chip, sensor);
    } else if (strcmp(el, "beep") == 0) {
      snprintf(suffix, room, "_enabled");
      put_gauge(s, name, "Hardware monitor sensor has beeping enabled", 0, v, chip, sensor);
    } else if (strcmp(type, "in") == 0 || strcmp(type, "cpu") == 0) {
      snprintf(suffix, room, "_volts");
      snprintf(help, sizeof help, "Hardware monitor for voltage (%s)", el);
      put_gauge(s, name, help, 0, v * 0.001, chip, sensor);
    } else if (strcmp(type, "temp") == 0 && strcmp(el, "type") != 0) {
      snprintf(suffix, room, "_celsius");
      snprintf(help, sizeof help, "Hardware monitor for temperature (%s)", el[0] ? el : "input");
      put_gauge(s, name, help, 0, v * 0.001, chip, sensor);
    } else if (strcmp(type, "curr") == 0) {
      snprintf(suffix, room, "_amps");
      snprintf(help, sizeof help, "Hardware monitor for current (%s)", el);
      put_gauge(s, name, help, 0, v * 0.001, chip, sensor);
    } else if (strcmp(type, "energy") == 0) {
      snprintf(suffix, room, "_joule_total");
      snprintf(help, sizeof help, "Hardware monitor for joules used so far (%s)", el);
      put_gauge(s, name, help, 1, v / 1000000.0, chip, sensor);
    } else if (strcmp(type, "power") == 0 && strcmp(el, "accuracy") == 0) {
      put_gauge(s, name, "Hardware monitor power meter accuracy, as a ratio", 0, v / 1000000.0,
                chip, sensor);
    } else if (strcmp(type, "power") == 0 &&
               (strcmp(el, "average_interval") == 0 || strcmp(el, "average_interval_min") == 0 ||
                strcmp(el, "average_interval_max") == 0)) {
      snprintf(suffix, room, "_seconds");
      snprintf(help, sizeof help, "Hardware monitor power usage update interval (%s)", el);
      put_gauge(s, name, help, 0, v * 0.001, chip, sensor);
    } else if (strcmp(type, "power") == 0) {
      snprintf(suffix, room, "_watt");
      snprintf(help, sizeof help, "Hardware monitor for power usage in watts (%s)", el);
      put_gauge(s, name, help, 0, v / 1000000.0, chip, sensor);
    } else if (strcmp(type, "humidity") == 0) {
      snprintf(help, sizeof help,
               "Hardware monitor for humidity, as a ratio (multiply with 100.0 to get the "
               "humidity as a percentage) (%s)",
               el);
      put_gauge(s, name, help, 0, v / 1000000.0, chip, sensor);
    } else if (strcmp(type, "fan") == 0 && (strcmp(el, "input") == 0 || strcmp(el, "min") == 0 ||
                                            strcmp(el, "max") == 0 || strcmp(el, "target") == 0)) {
      snprintf(suffix, room, "_rpm");
      snprintf(help, sizeof help, "Hardware monitor for fan revolutions per minute (%s)", el);
      put_gauge(s, name, help, 0, v, chip, sensor);
    } else {
      snprintf(help, sizeof help, "Hardware monitor %s element %s", type, el);
      put_gauge(s, name, help, 0, v, chip, sensor);
    }
  }
}

static int cmp_reading(const void *a, const void *b, void *ctx) {
  const reading_t *r = ctx;
  return strcmp(r[*(const size_t *)a].sensor, r[*(const size_t *)b].sensor);
}

/* updateHwmon for one chip directory; 0, or -1 (s->err set). */
static int update_chip(mw_node_scrape_t *s, const char *dir) {
  char chip[512], path[8192];
  if (chip_name(s, dir, chip, sizeof chip) < 0) return -1;
  if (mw_node_device_ignored(s->node->hwmon_chip_include, s->node->hwmon_chip_exclude, chip))
    return 0;
  readings_t rs = {0};
  size_t *idx = NULL;
  int rc = -1, r = sensor_data(s, dir, &rs);
  if (r == -1) {
    mw_node_fail(s, "open %s: %s", dir, strerror(errno));
    goto done;
  }
  join(path, sizeof path, dir, '/', "device");
  struct stat st;
  if (r == 0 && path[0] && stat(path, &st) == 0) {
    r = sensor_data(s, path, &rs);
    if (r == -1) {
      mw_node_fail(s, "open %s: %s", path, strerror(errno));
      goto done;
    }
  }
  if (r == -2) {
    mw_node_fail(s, "out of memory");
    goto done;
  }
  /* node_hwmon_chip_names from the name file, when it cleans to something */
  join(path, sizeof path, dir, '/', "name");
  size_t len;
  const char *raw = path[0] ? mw_node_read(s, path, &len) : NULL;
  if (raw && len) {
    char human[512];
    clean_name(raw, len, human, sizeof human);
    if (human[0]) {
      int32_t f = mw_node_family(s, "node_hwmon_chip_names",
                                 "Annotation metric for human-readable chip names",
                                 MW_METRICS_GAUGE, "chip,chip_name");
      mw_node_put(s, f, 1, chip, human);
    }
  }
  if (rs.n) {
    idx = malloc(rs.n * sizeof *idx);
    if (!idx) {
      mw_node_fail(s, "out of memory");
      goto done;
    }
    for (size_t i = 0; i < rs.n; i++)
      idx[i] = i;
    qsort_r(idx, rs.n, sizeof *idx, cmp_reading, rs.r);
    for (size_t i = 0, j; i < rs.n; i = j) {
      for (j = i + 1; j < rs.n && strcmp(rs.r[idx[j]].sensor, rs.r[idx[i]].sensor) == 0; j++)
        ;
      put_sensor(s, chip, &rs, idx + i, j - i);
    }
  }
  rc = 0;
done:
  free(idx);
  readings_free(&rs);
  return rc;
}

int mw_node_collect_hwmon(mw_node_scrape_t *s) {
  char base[4096], path[8192], last[512] = "";
  snprintf(base, sizeof base, "%s/class/hwmon", s->node->sysfs);
  char **names;
  size_t n;
  int rc = list_dir(base, &names, &n);
  if (rc == -2) return mw_node_fail(s, "out of memory");
  if (rc < 0) {
    int e = errno;
    if (e == ENOENT) {
      s->nodata = 1;
      return mw_node_fail(s, "hwmon collector metrics are not available for this system");
    }
    return mw_node_fail(s, "open %s: %s", base, strerror(e));
  }
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (join(path, sizeof path, base, '/', names[i]) < 0 || stat(path, &st) < 0 ||
        !S_ISDIR(st.st_mode))
      continue;
    s->err[0] = '\0';
    if (update_chip(s, path) < 0) {
      rc = -1; /* the last failure is reported; the other chips still are */
      snprintf(last, sizeof last, "%s", s->err);
    }
  }
  free_names(names, n);
  if (rc < 0) {
    s->err[0] = '\0';
    return mw_node_fail(s, "%s", last);
  }
  return 0;
}
