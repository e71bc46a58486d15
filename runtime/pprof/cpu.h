/* pprof/cpu.h: the CPU sampler behind /debug/pprof/profile. SIGPROF (from ITIMER_PROF, the
 * timer LuaJIT's jit.profile sets, or our own) records the C stack of the interrupted thread
 * with libunwind's unw_backtrace into a fixed ring (no allocation, no lock in the handler),
 * then hands the signal on to the handler that was there before (LuaJIT's, which samples the
 * Lua stack at the next safe point). The event loop thread drains the ring, attaches each Lua
 * stack to the tick it belongs to, and merges both into one profile: the C frames above the
 * Lua VM, the Lua frames, then the C frames below it.
 *
 * Why libunwind and not glibc's backtrace(): backtrace() goes through libgcc's unwinder, which
 * takes a (non-recursive) mutex to search the unwind tables registered with __register_frame,
 * and LuaJIT registers one for every trace it compiles: a SIGPROF landing while the loop
 * thread is inside __register_frame would deadlock. libunwind's local unwinder finds unwind
 * tables through dl_iterate_phdr only and is meant to be called from signal handlers; it stops
 * at JIT-compiled code (no unwind table), where the Lua frames take over.
 *
 * One profile at a time; the loop thread only. */
#ifndef MW_PPROF_CPU_H
#define MW_PPROF_CPU_H
#include <stddef.h>
#include <stdint.h>

#include "pprof/profile.h"

/* ffi.cdef begin */
/* --- CPU sampling (runtime/pprof/cpu.h) -------------------------------- */

/* Before jit.profile.start: a SIGPROF left at its default action (terminate) becomes ignored,
 * so that a tick still pending when jit.profile.stop restores it cannot kill the process.
 * 0; -1 with err ("cpu profiling already in use"). */
int mw_ffi_pprof_cpu_prepare(char *err, size_t errlen);
/* Starts sampling: installs the SIGPROF handler (chaining to the current one) and, when no
 * ITIMER_PROF runs yet, starts one at hz. max_samples bounds what is kept (beyond it samples
 * are counted as lost). 0; -1 with err ("cpu profiling already in use" when a profile is being
 * taken). */
int mw_ffi_pprof_cpu_start(int hz, size_t max_samples, char *err, size_t errlen);
/* Moves what the signal handler recorded out of the ring (call often: the ring holds 4096
 * ticks). */
void mw_ffi_pprof_cpu_drain(void);
/* Attaches a Lua stack (jit.profile's callback: the stack at the first safe point after the
 * ticks) to the latest ticks of the loop thread that stopped in the Lua VM and have none yet:
 * at most ticks of them, going back until one that has a Lua stack. frames (leaf first) as
 * lines "name\tfile\tstart_line\tline\n". 0, -1 on OOM. */
int mw_ffi_pprof_cpu_lua(const char *frames, size_t len, int ticks);
/* Stops sampling (restores the previous handler, stops our timer). */
void mw_ffi_pprof_cpu_stop(void);
/* Adds the samples (types samples/count and cpu/nanoseconds, period 1e9/hz) to p and frees
 * them; *lost: ticks dropped (ring or max_samples full). 0, -1 on OOM. */
int mw_ffi_pprof_cpu_build(mw_pprof_t *p, uint64_t *lost);
/* What the signal handler cost since start: nanoseconds spent in it (CLOCK_MONOTONIC, as read
 * at its entry and exit) and ticks handled. */
void mw_ffi_pprof_cpu_cost(uint64_t *handler_ns, uint64_t *ticks);
/* Whether a profile is being taken. */
int mw_ffi_pprof_cpu_running(void);
/* ffi.cdef end */

#endif
