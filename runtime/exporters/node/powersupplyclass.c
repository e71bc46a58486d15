/* exporters/node/powersupplyclass.c: the powersupplyclass collector (node_exporter 1.5
 * collector/powersupplyclass_linux.go over procfs 0.8's
 * sysfs/class_power_supply.go): for each entry of <sysfs>/class/power_supply
 * not matched by ignored_supplies, node_power_supply_<attribute>{power_supply}
 * for its numeric attributes (micro-units scaled to units, tenths of a degree
 * to degrees) and node_power_supply_info with one label per non-empty string
 * attribute (a raw family: its series have label names of their own).
 *
 * As procfs: every regular file of a supply is read (one read of at most 128
 * bytes, trimmed); missing files, EOPNOTSUPP and EINVAL are skipped, any other
 * read error or a numeric attribute that is not a Go integer (ParseInt base 0)
 * fails the collector before anything is reported; no power_supply class is
 * "no data" (success 0), an empty one success. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "exporters/node/node.h"

enum { SCALE_1, SCALE_MICRO, SCALE_DECI, STR };

/* Every attribute procfs parses: the file, the metric name (NULL: parsed,
 * not reported) and its scale, or STR for the info labels. */
static const struct {
  const char *file, *metric;
  int kind;
} attrs[] = {
    {"authentic", "authentic", SCALE_1},
    {"calibrate", "calibrate", SCALE_1},
    {"capacity", "capacity", SCALE_1},
    {"capacity_alert_max", "capacity_alert_max", SCALE_1},
    {"capacity_alert_min", "capacity_alert_min", SCALE_1},
    {"capacity_level", "capacity_level", STR},
    {"charge_avg", NULL, SCALE_1},
    {"charge_control_limit", "charge_control_limit", SCALE_MICRO},
    {"charge_control_limit_max", "charge_control_limit_max", SCALE_MICRO},
    {"charge_counter", "charge_counter", SCALE_MICRO},
    {"charge_empty", "charge_empty", SCALE_MICRO},
    {"charge_empty_design", "charge_empty_design", SCALE_MICRO},
    {"charge_full", "charge_full", SCALE_MICRO},
    {"charge_full_design", "charge_full_design", SCALE_MICRO},
    {"charge_now", "charge_ampere", SCALE_MICRO},
    {"charge_term_current", "charge_term_current", SCALE_MICRO},
    {"charge_type", "charge_type", STR},
    {"constant_charge_current", "constant_charge_current", SCALE_MICRO},
    {"constant_charge_current_max", "constant_charge_current_max", SCALE_MICRO},
    {"constant_charge_voltage", "constant_charge_voltage", SCALE_MICRO},
    {"constant_charge_voltage_max", "constant_charge_voltage_max", SCALE_MICRO},
    {"current_avg", NULL, SCALE_1},
    {"current_boot", "current_boot", SCALE_MICRO},
    {"current_max", "current_max", SCALE_MICRO},
    {"current_now", "current_ampere", SCALE_MICRO},
    {"cycle_count", "cyclecount", SCALE_1},
    {"energy_avg", NULL, SCALE_1},
    {"energy_empty", "energy_empty", SCALE_MICRO},
    {"energy_empty_design", "energy_empty_design", SCALE_MICRO},
    {"energy_full", "energy_full", SCALE_MICRO},
    {"energy_full_design", "energy_full_design", SCALE_MICRO},
    {"energy_now", "energy_watthour", SCALE_MICRO},
    {"health", "health", STR},
    {"input_current_limit", "input_current_limit", SCALE_MICRO},
    {"manufacturer", "manufacturer", STR},
    {"model_name", "model_name", STR},
    {"online", "online", SCALE_1},
    {"power_avg", NULL, SCALE_1},
    {"power_now", "power_watt", SCALE_MICRO},
    {"precharge_current", "precharge_current", SCALE_MICRO},
    {"present", "present", SCALE_1},
    {"scope", "scope", STR},
    {"serial_number", "serial_number", STR},
    {"status", "status", STR},
    {"technology", "technology", STR},
    {"temp", "temp_celsius", SCALE_DECI},
    {"temp_alert_max", "temp_alert_max_celsius", SCALE_DECI},
    {"temp_alert_min", "temp_alert_min_celsius", SCALE_DECI},
    {"temp_ambient", "temp_ambient_celsius", SCALE_DECI},
    {"temp_ambient_max", "temp_ambient_max_celsius", SCALE_DECI},
    {"temp_ambient_min", "temp_ambient_min_celsius", SCALE_DECI},
    {"temp_max", "temp_max_celsius", SCALE_DECI},
    {"temp_min", "temp_min_celsius", SCALE_DECI},
    {"time_to_empty_avg", NULL, SCALE_1},
    {"time_to_empty_now", "time_to_empty_seconds", SCALE_1},
    {"time_to_full_avg", NULL, SCALE_1},
    {"time_to_full_now", "time_to_full_seconds", SCALE_1},
    {"type", "type", STR},
    {"usb_type", "usb_type", STR},
    {"voltage_avg", NULL, SCALE_1},
    {"voltage_boot", "voltage_boot", SCALE_MICRO},
    {"voltage_max", "voltage_max", SCALE_MICRO},
    {"voltage_max_design", "voltage_max_design", SCALE_MICRO},
    {"voltage_min", "voltage_min", SCALE_MICRO},
    {"voltage_min_design", "voltage_min_design", SCALE_MICRO},
    {"voltage_now", "voltage_volt", SCALE_MICRO},
    {"voltage_ocv", "voltage_ocv", SCALE_MICRO},
};
enum { NATTRS = sizeof attrs / sizeof attrs[0] };

typedef struct {
  char *name;
  char *str[NATTRS];
  int has[NATTRS];
  int64_t num[NATTRS];
} supply_t;

static void supplies_free(supply_t *ps, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(ps[i].name);
    for (int k = 0; k < NATTRS; k++)
      free(ps[i].str[k]);
  }
  free(ps);
}

static int attr_index(const char *file) {
  int lo = 0, hi = NATTRS - 1; /* attrs is sorted by file */
  while (lo <= hi) {
    int mid = (lo + hi) / 2, c = strcmp(file, attrs[mid].file);
    if (c == 0) return mid;
    if (c < 0)
      hi = mid - 1;
    else
      lo = mid + 1;
  }
  return -1;
}

/* Reads one supply's regular files; 0, or -1 (s->err set). */
static int read_supply(mw_node_scrape_t *s, const char *base, supply_t *ps) {
  char dir[8192], path[8192], buf[MW_NODE_SYSREAD_MAX + 1];
  snprintf(dir, sizeof dir, "%s/%s", base, ps->name);
  DIR *d = opendir(dir);
  if (!d) {
    int e = errno;
    if (e == ENOENT) s->nodata = 1;
    return mw_node_fail(s, "could not get power_supply class info: open %s: %s", dir, strerror(e));
  }
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    unsigned char type = e->d_type;
    if (type == DT_UNKNOWN) {
      struct stat st;
      if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
        type = DT_REG;
    }
    if (type != DT_REG) continue;
    size_t len;
    int pl = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (pl < 0 || (size_t)pl >= sizeof path) continue;
    if (mw_node_sysread(s, path, buf, &len) < 0) {
      int err = errno;
      if (err == ENOENT || err == EOPNOTSUPP || err == EINVAL) continue;
      rc = mw_node_fail(s, "could not get power_supply class info: failed to read file %s: %s",
                        path, strerror(err));
      break;
    }
    int k = attr_index(e->d_name);
    if (k < 0) continue;
    char *v = mw_node_trim(buf, &len);
    if (attrs[k].kind == STR) {
      free(ps->str[k]);
      if (!(ps->str[k] = strdup(v))) {
        rc = mw_node_fail(s, "out of memory");
        break;
      }
      continue;
    }
    if (mw_node_parse_goint(v, len, &ps->num[k]) < 0) {
      rc = mw_node_fail(s,
                        "could not get power_supply class info: strconv.ParseInt: parsing "
                        "\"%s\": invalid syntax",
                        v);
      break;
    }
    ps->has[k] = 1;
  }
  closedir(d);
  return rc;
}

int mw_node_collect_powersupplyclass(mw_node_scrape_t *s) {
  mw_node_t *n = s->node;
  char base[4096];
  snprintf(base, sizeof base, "%s/class/power_supply", n->sysfs);
  DIR *d = opendir(base);
  if (!d) {
    int e = errno;
    if (e == ENOENT) s->nodata = 1;
    return mw_node_fail(s, "could not get power_supply class info: open %s: %s", base, strerror(e));
  }
  supply_t *ps = NULL;
  size_t nps = 0, cap = 0;
  int rc = -1;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
    if (nps == cap) {
      size_t c = cap ? cap * 2 : 4;
      supply_t *a = realloc(ps, c * sizeof *a);
      if (!a) goto oom;
      ps = a;
      cap = c;
    }
    memset(&ps[nps], 0, sizeof ps[nps]);
    if (!(ps[nps].name = strdup(e->d_name))) goto oom;
    nps++;
  }
  for (size_t i = 0; i < nps; i++)
    if (read_supply(s, base, &ps[i]) < 0) goto done;

  static const char *const info_labels[] = {
      "power_supply",  "capacity_level", "charge_type", "health", "manufacturer", "model_name",
      "serial_number", "status",         "technology",  "type",   "usb_type",     "scope"};
  enum { NINFO = sizeof info_labels / sizeof info_labels[0] };
  int oom = 0;
  static const char info_name[] = "node_power_supply_info",
                    info_help[] = "info of /sys/class/power_supply/<power_supply>.";
  int info = mw_node_raw_family(s->raw, info_name, sizeof info_name - 1, info_help,
                                sizeof info_help - 1, MW_NODE_RAW_GAUGE, &oom);
  if (oom) goto oom;
  for (size_t i = 0; i < nps; i++) {
    supply_t *p = &ps[i];
    if (mw_node_re_match(n->powersupply_ignored, p->name, strlen(p->name))) continue;
    for (int k = 0; k < NATTRS; k++) {
      if (!p->has[k] || !attrs[k].metric) continue;
      char name[96], help[128];
      snprintf(name, sizeof name, "node_power_supply_%s", attrs[k].metric);
      snprintf(help, sizeof help, "%s value of /sys/class/power_supply/<power_supply>.",
               attrs[k].metric);
      int32_t f = mw_node_family(s, name, help, MW_METRICS_GAUGE, "power_supply");
      double v = (double)p->num[k];
      mw_node_put(s, f,
                  attrs[k].kind == SCALE_MICRO  ? v / 1e6
                  : attrs[k].kind == SCALE_DECI ? v / 10.0
                                                : v,
                  p->name);
    }
    mw_label_t ls[NINFO];
    char *fixed[NINFO] = {0};
    size_t nl = 0;
    for (int j = 0; j < NINFO; j++) {
      const char *v = j == 0 ? p->name : p->str[attr_index(info_labels[j])];
      if (!v || !v[0]) continue;
      /* strings.ToValidUTF8(value, "\uFFFD") */
      fixed[j] = mw_node_valid_utf8(v, strlen(v));
      if (!fixed[j]) {
        for (int k = 0; k < j; k++)
          free(fixed[k]);
        goto oom;
      }
      ls[nl++] = (mw_label_t){info_labels[j], fixed[j], (uint32_t)strlen(info_labels[j]),
                              (uint32_t)strlen(fixed[j])};
    }
    int r = mw_node_raw_add(s->raw, info, ls, nl, 1, NULL, 0, 0, 0);
    for (int j = 0; j < NINFO; j++)
      free(fixed[j]);
    if (r < 0) goto oom;
  }
  rc = 0;
  goto done;
oom:
  mw_node_fail(s, "out of memory");
done:
  closedir(d);
  supplies_free(ps, nps);
  return rc;
}
