/* exporters/node/timex.c: the timex collector (node_exporter collector/timex.go): the
 * kernel clock discipline state from adjtimex(2). */
#include <errno.h>
#include <string.h>
#include <sys/timex.h>

#include "exporters/node/node.h"

int mw_node_collect_timex(mw_node_scrape_t *s) {
  struct timex tx;
  memset(&tx, 0, sizeof tx);
  int status = adjtimex(&tx);
  if (status < 0) {
    if (errno == EPERM) s->nodata = 1;
    return mw_node_fail(s, "failed to retrieve adjtimex stats: %s", strerror(errno));
  }
  const double ppm16frac = 1000000.0 * 65536.0;
  double divisor = (tx.status & STA_NANO) ? 1e9 : 1e6;
  const struct {
    const char *name, *help;
    mw_metrics_type_t type;
    double v;
  } m[] = {
      {"node_timex_sync_status", "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
       MW_METRICS_GAUGE, status == TIME_ERROR ? 0 : 1},
      {"node_timex_offset_seconds", "Time offset in between local system and reference clock.",
       MW_METRICS_GAUGE, (double)tx.offset / divisor},
      {"node_timex_frequency_adjustment_ratio", "Local clock frequency adjustment.",
       MW_METRICS_GAUGE, 1 + (double)tx.freq / ppm16frac},
      {"node_timex_maxerror_seconds", "Maximum error in seconds.", MW_METRICS_GAUGE,
       (double)tx.maxerror / 1e6},
      {"node_timex_estimated_error_seconds", "Estimated error in seconds.", MW_METRICS_GAUGE,
       (double)tx.esterror / 1e6},
      {"node_timex_status", "Value of the status array bits.", MW_METRICS_GAUGE, (double)tx.status},
      {"node_timex_loop_time_constant", "Phase-locked loop time constant.", MW_METRICS_GAUGE,
       (double)tx.constant},
      {"node_timex_tick_seconds", "Seconds between clock ticks.", MW_METRICS_GAUGE,
       (double)tx.tick / 1e6},
      {"node_timex_pps_frequency_hertz", "Pulse per second frequency.", MW_METRICS_GAUGE,
       (double)tx.ppsfreq / ppm16frac},
      {"node_timex_pps_jitter_seconds", "Pulse per second jitter.", MW_METRICS_GAUGE,
       (double)tx.jitter / divisor},
      {"node_timex_pps_shift_seconds", "Pulse per second interval duration.", MW_METRICS_GAUGE,
       (double)tx.shift},
      {"node_timex_pps_stability_hertz",
       "Pulse per second stability, average of recent frequency changes.", MW_METRICS_GAUGE,
       (double)tx.stabil / ppm16frac},
      {"node_timex_pps_jitter_total", "Pulse per second count of jitter limit exceeded events.",
       MW_METRICS_COUNTER, (double)tx.jitcnt},
      {"node_timex_pps_calibration_total", "Pulse per second count of calibration intervals.",
       MW_METRICS_COUNTER, (double)tx.calcnt},
      {"node_timex_pps_error_total", "Pulse per second count of calibration errors.",
       MW_METRICS_COUNTER, (double)tx.errcnt},
      {"node_timex_pps_stability_exceeded_total",
       "Pulse per second count of stability limit exceeded events.", MW_METRICS_COUNTER,
       (double)tx.stbcnt},
      {"node_timex_tai_offset_seconds", "International Atomic Time (TAI) offset.", MW_METRICS_GAUGE,
       (double)tx.tai},
  };
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
    mw_node_put1(s, m[i].name, m[i].help, m[i].type, m[i].v);
  return 0;
}
