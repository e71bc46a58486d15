/* base/watchdog.h: what the VM tells the watchdog (runtime/base/watchdog.c; its Lua
 * surface is mw_ffi_watchdog_arm and mw_ffi_exit_guard_arm in ffi.h). */
#ifndef MW_WATCHDOG_H
#define MW_WATCHDOG_H

/* The process is about to exit through moonwatch's own path (main returns):
 * the exit guard stays silent. */
void mw_watchdog_exit_expected(void);

#endif
