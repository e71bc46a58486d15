/* base/watchdog.h: what the VM tells the watchdog (runtime/base/watchdog.c; its Lua
 * surface is mw_ffi_watchdog_arm and mw_ffi_exit_guard_arm below). */
#ifndef MW_WATCHDOG_H
#define MW_WATCHDOG_H
#include <stddef.h>
#include <stdint.h>

/* ffi.cdef begin */
/* --- shutdown watchdog and exit guard (base/watchdog.c) ----------------- */

/* Arms the shutdown watchdog (runtime/base/watchdog.h): after the first SIGINT or
 * SIGTERM, if the process is still alive `timeout` seconds later, one log line
 * (JSON when json != 0, logfmt otherwise) goes to stderr and the process ends
 * with _exit(1), even with the event loop stuck. Call after the loop's own
 * handlers for both signals are installed (it chains to them). Later calls
 * update the timeout and the format. Returns 0, or -1 and the reason in err. */
int mw_ffi_watchdog_arm(double timeout, int json, char *err, size_t errlen);
/* Arms the exit guard: an exit of the process that does not come through
 * moonwatch's own path (main returning) logs one line with its status at
 * level error. Later calls update the format. Returns 0 or -1. */
int mw_ffi_exit_guard_arm(int json);
/* ffi.cdef end */

/* The process is about to exit through moonwatch's own path (main returns):
 * the exit guard stays silent. */
void mw_watchdog_exit_expected(void);

#endif
