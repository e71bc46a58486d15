/* exporters/node/diskstats.c: the diskstats collector (node_exporter collector/diskstats_linux.go):
 * <procfs>/diskstats per device (device filter applied), as many of the 17
 * statistics as the kernel prints, node_disk_info with udev properties from
 * <udev_data_path>/b<major>:<minor>, and the udev-derived filesystem, device
 * mapper and ATA families when those properties exist. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exporters/node/node.h"

#define SECONDS_PER_TICK (1.0 / 1000.0)
#define SECTOR 512.0

static const struct {
  const char *name, *help;
  mw_metrics_type_t type;
  double factor;
} stats[17] = {
    {"node_disk_reads_completed_total", "The total number of reads completed successfully.",
     MW_METRICS_COUNTER, 1},
    {"node_disk_reads_merged_total", "The total number of reads merged.", MW_METRICS_COUNTER, 1},
    {"node_disk_read_bytes_total", "The total number of bytes read successfully.",
     MW_METRICS_COUNTER, SECTOR},
    {"node_disk_read_time_seconds_total", "The total number of seconds spent by all reads.",
     MW_METRICS_COUNTER, SECONDS_PER_TICK},
    {"node_disk_writes_completed_total", "The total number of writes completed successfully.",
     MW_METRICS_COUNTER, 1},
    {"node_disk_writes_merged_total", "The number of writes merged.", MW_METRICS_COUNTER, 1},
    {"node_disk_written_bytes_total", "The total number of bytes written successfully.",
     MW_METRICS_COUNTER, SECTOR},
    {"node_disk_write_time_seconds_total",
     "This is the total number of seconds spent by all writes.", MW_METRICS_COUNTER,
     SECONDS_PER_TICK},
    {"node_disk_io_now", "The number of I/Os currently in progress.", MW_METRICS_GAUGE, 1},
    {"node_disk_io_time_seconds_total", "Total seconds spent doing I/Os.", MW_METRICS_COUNTER,
     SECONDS_PER_TICK},
    {"node_disk_io_time_weighted_seconds_total", "The weighted # of seconds spent doing I/Os.",
     MW_METRICS_COUNTER, SECONDS_PER_TICK},
    {"node_disk_discards_completed_total", "The total number of discards completed successfully.",
     MW_METRICS_COUNTER, 1},
    {"node_disk_discards_merged_total", "The total number of discards merged.", MW_METRICS_COUNTER,
     1},
    {"node_disk_discarded_sectors_total", "The total number of sectors discarded successfully.",
     MW_METRICS_COUNTER, 1},
    {"node_disk_discard_time_seconds_total",
     "This is the total number of seconds spent by all discards.", MW_METRICS_COUNTER,
     SECONDS_PER_TICK},
    {"node_disk_flush_requests_total", "The total number of flush requests completed successfully",
     MW_METRICS_COUNTER, 1},
    {"node_disk_flush_requests_time_seconds_total",
     "This is the total number of seconds spent by all flush requests.", MW_METRICS_COUNTER,
     SECONDS_PER_TICK},
};

enum {
  U_PATH,
  U_WWN,
  U_MODEL,
  U_SERIAL,
  U_REVISION,
  U_FS_TYPE,
  U_FS_USAGE,
  U_FS_UUID,
  U_FS_VERSION,
  U_DM_NAME,
  U_DM_UUID,
  U_DM_VG,
  U_DM_LV,
  U_DM_LAYER,
  U_ATA,
  U_ATA_WC,
  U_ATA_WCE,
  U_ATA_RPM,
  NU
};
static const char *const ukeys[NU] = {"ID_PATH",
                                      "ID_WWN",
                                      "ID_MODEL",
                                      "ID_SERIAL_SHORT",
                                      "ID_REVISION",
                                      "ID_FS_TYPE",
                                      "ID_FS_USAGE",
                                      "ID_FS_UUID",
                                      "ID_FS_VERSION",
                                      "DM_NAME",
                                      "DM_UUID",
                                      "DM_VG_NAME",
                                      "DM_LV_NAME",
                                      "DM_LV_LAYER",
                                      "ID_ATA",
                                      "ID_ATA_WRITE_CACHE",
                                      "ID_ATA_WRITE_CACHE_ENABLED",
                                      "ID_ATA_ROTATION_RATE_RPM"};

/* Reads the udev properties of a block device into vals (NU strings of 256). */
static void udev_props(mw_node_scrape_t *s, const char *major, const char *minor, char *vals,
                       int *present) {
  char path[8192];
  memset(vals, 0, NU * 256);
  memset(present, 0, NU * sizeof *present);
  snprintf(path, sizeof path, "%s/b%s:%s", s->node->udev, major, minor);
  const char *data = mw_node_read(s, path, NULL);
  if (!data) return;
  for (const char *line = data; line && *line;) {
    const char *nl = strchr(line, '\n');
    size_t n = nl ? (size_t)(nl - line) : strlen(line);
    if (n > 2 && line[0] == 'E' && line[1] == ':') {
      const char *eq = memchr(line + 2, '=', n - 2);
      for (int k = 0; eq && k < NU; k++) {
        size_t kl = strlen(ukeys[k]);
        if ((size_t)(eq - line - 2) == kl && memcmp(line + 2, ukeys[k], kl) == 0) {
          snprintf(vals + 256 * k, 256, "%.*s", (int)(line + n - eq - 1), eq + 1);
          present[k] = 1;
        }
      }
    }
    line = nl ? nl + 1 : NULL;
  }
}

int mw_node_collect_diskstats(mw_node_scrape_t *s) {
  mw_node_t *n = s->node;
  const char *data = mw_node_read(s, mw_node_proc_path(s, "diskstats"), NULL);
  if (!data) return mw_node_fail(s, "couldn't get diskstats: %s", strerror(errno));
  char *copy = strdup(data), *uvals = malloc(NU * 256);
  int present[NU];
  if (!copy || !uvals) {
    free(copy);
    free(uvals);
    return mw_node_fail(s, "out of memory");
  }
  int32_t info =
      mw_node_family(s, "node_disk_info", "Info of /sys/block/<block_device>.", MW_METRICS_GAUGE,
                     "device,major,minor,path,wwn,model,serial,revision");
  int32_t fams[17];
  for (int i = 0; i < 17; i++)
    fams[i] = -2; /* registered on first use */
  for (char *line = copy; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    char *f[21];
    size_t nf = mw_node_fields(line, f, 21);
    line = nl ? nl + 1 : NULL;
    /* fmt.Sscanf: the count of leading fields that scan (numbers, then the name, then numbers) */
    uint64_t v[17], maj, min;
    size_t count = 0;
    if (nf >= 1 && mw_node_parse_u64(f[0], 10, &maj) == 0) count = 1;
    if (count == 1 && nf >= 2 && mw_node_parse_u64(f[1], 10, &min) == 0) count = 2;
    if (count == 2 && nf >= 3) count = 3;
    while (count >= 3 && count < nf && count < 20 &&
           mw_node_parse_u64(f[count], 10, &v[count - 3]) == 0)
      count++;
    if (count < 14) continue;
    const char *dev = f[2];
    if (mw_node_device_ignored(n->disk_include, n->disk_exclude, dev)) continue;
    udev_props(s, f[0], f[1], uvals, present);
    const char *iv[8] = {dev,
                         f[0],
                         f[1],
                         uvals + 256 * U_PATH,
                         uvals + 256 * U_WWN,
                         uvals + 256 * U_MODEL,
                         uvals + 256 * U_SERIAL,
                         uvals + 256 * U_REVISION};
    mw_node_putv(s, info, 1, iv, 8);
    for (size_t i = 0; i + 3 < count && i < 17; i++) {
      if (fams[i] == -2)
        fams[i] = mw_node_family(s, stats[i].name, stats[i].help, stats[i].type, "device");
      mw_node_put(s, fams[i], (double)v[i] * stats[i].factor, dev);
    }
    if (uvals[256 * U_FS_TYPE]) {
      int32_t fam = mw_node_family(s, "node_disk_filesystem_info", "Info about disk filesystem.",
                                   MW_METRICS_GAUGE, "device,type,usage,uuid,version");
      mw_node_put(s, fam, 1, dev, uvals + 256 * U_FS_TYPE, uvals + 256 * U_FS_USAGE,
                  uvals + 256 * U_FS_UUID, uvals + 256 * U_FS_VERSION);
    }
    if (uvals[256 * U_DM_NAME]) {
      int32_t fam =
          mw_node_family(s, "node_disk_device_mapper_info", "Info about disk device mapper.",
                         MW_METRICS_GAUGE, "device,name,uuid,vg_name,lv_name,lv_layer");
      mw_node_put(s, fam, 1, dev, uvals + 256 * U_DM_NAME, uvals + 256 * U_DM_UUID,
                  uvals + 256 * U_DM_VG, uvals + 256 * U_DM_LV, uvals + 256 * U_DM_LAYER);
    }
    if (uvals[256 * U_ATA]) {
      static const struct {
        int key;
        const char *name, *help;
      } ata[3] = {
          {U_ATA_WC, "node_disk_ata_write_cache", "ATA disk has a write cache."},
          {U_ATA_WCE, "node_disk_ata_write_cache_enabled", "ATA disk has its write cache enabled."},
          {U_ATA_RPM, "node_disk_ata_rotation_rate_rpm",
           "ATA disk rotation rate in RPMs (0 for SSDs)."},
      };
      for (int k = 0; k < 3; k++) {
        double x;
        if (!present[ata[k].key] || mw_node_parse_f64(uvals + 256 * ata[k].key, &x) < 0) continue;
        int32_t fam = mw_node_family(s, ata[k].name, ata[k].help, MW_METRICS_GAUGE, "device");
        mw_node_put(s, fam, x, dev);
      }
    }
  }
  free(copy);
  free(uvals);
  return 0;
}
