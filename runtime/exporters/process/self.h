/* exporters/process/self.h: the process stats client_golang's process collector exposes,
 * read from procfs, and a registry collector that publishes them. */
#ifndef MW_PROCSELF_H
#define MW_PROCSELF_H
#include <stddef.h>
#include <stdint.h>

#include "exposition/registry.h"

/* ffi.cdef begin */
/* --- the process_* families (exporters/process/self.c) ---------------------- */

/* Registers the process_* families (client_golang's process collector) and
 * refreshes them from procfs at each exposition. procfs_root NULL = "/proc",
 * pid 0 = self. Call once per registry. 0 or -1 (err). */
int mw_ffi_metrics_process_add(mw_metrics_t *reg, const char *procfs_root, int pid, char *err,
                               size_t errlen);
/* ffi.cdef end */

/* Bits of mw_procself_t.have: which fields were read. */
enum {
  MW_PROCSELF_CPU = 1 << 0,    /* cpu_seconds */
  MW_PROCSELF_MEM = 1 << 1,    /* resident_bytes, virtual_bytes */
  MW_PROCSELF_START = 1 << 2,  /* start_time */
  MW_PROCSELF_FDS = 1 << 3,    /* open_fds */
  MW_PROCSELF_LIMITS = 1 << 4, /* max_fds, virtual_max_bytes */
  MW_PROCSELF_NET = 1 << 5,    /* network_receive_bytes, network_transmit_bytes */
  MW_PROCSELF_ALL = (1 << 6) - 1,
};

typedef struct {
  unsigned have;
  double cpu_seconds;            /* (utime + stime) / CLK_TCK, /proc/<pid>/stat */
  double resident_bytes;         /* rss pages * page size, /proc/<pid>/stat */
  double virtual_bytes;          /* vsize, /proc/<pid>/stat */
  double start_time;             /* starttime / CLK_TCK + btime (/proc/stat), epoch seconds */
  double open_fds;               /* entries of /proc/<pid>/fd */
  double max_fds;                /* soft "Max open files", /proc/<pid>/limits */
  double virtual_max_bytes;      /* soft "Max address space" (unlimited = 2^64-1) */
  double network_receive_bytes;  /* IpExt InOctets, /proc/<pid>/net/netstat */
  double network_transmit_bytes; /* IpExt OutOctets */
} mw_procself_t;

/* Reads the stats of process pid (0 = "self") under procfs_root (NULL =
 * "/proc") into *out. Every source is tried; out->have tells which fields are
 * valid. Returns 0 when all were read, -1 otherwise with the first failure in
 * err (a missing or malformed file never crashes). */
int mw_procself_read(const char *procfs_root, int pid, mw_procself_t *out, char *err,
                     size_t errlen);

/* Registers the process_* families on reg (names and HELP texts as
 * client_golang's process collector) and a collector that refreshes them from
 * procfs at each exposition; a stat that cannot be read is left out of that
 * exposition, as client_golang does. procfs_root/pid as for mw_procself_read
 * (procfs_root is copied). 0, or -1 with a message in err. */
int mw_procself_register(mw_metrics_t *reg, const char *procfs_root, int pid, char *err,
                         size_t errlen);

#endif
