/* base/watchdog.c: the last resort of a stop. SIGINT and SIGTERM are handled on
 * the event loop (libev), so a loop stuck in a callback (Lua code in an endless
 * loop) would never see them. The watchdog chains its own handler in front of
 * the loop's: the first SIGINT/SIGTERM starts a clock on a thread of its own,
 * and if the process is still alive when the shutdown timeout has passed, the
 * thread writes one log line on stderr and ends the process with _exit(1).
 * Installed once; later calls update the timeout and the log format.
 * The exit guard logs an exit that does not go through moonwatch's own path
 * (exit() called by Lua code through the FFI, say). */
#include "base/watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"

static const int mw_wd_signals[] = {SIGINT, SIGTERM};
#define MW_WD_NSIG (sizeof mw_wd_signals / sizeof mw_wd_signals[0])

static struct sigaction mw_wd_old[MW_WD_NSIG];
static sem_t mw_wd_sem;
static atomic_int mw_wd_fired;
static atomic_int mw_wd_installed;
static _Atomic long long mw_wd_timeout_ms;
static atomic_int mw_wd_json;
static atomic_int mw_wd_signum;

/* Chains to the handler that was installed before ours (libev's). */
static void mw_wd_handler(int sig, siginfo_t *info, void *uc) {
  int saved = errno;
  if (!atomic_exchange(&mw_wd_fired, 1)) {
    atomic_store(&mw_wd_signum, sig);
    sem_post(&mw_wd_sem); /* async-signal-safe */
  }
  for (size_t i = 0; i < MW_WD_NSIG; i++) {
    if (mw_wd_signals[i] != sig) continue;
    struct sigaction *old = &mw_wd_old[i];
    if (old->sa_flags & SA_SIGINFO) {
      if (old->sa_sigaction) old->sa_sigaction(sig, info, uc);
    } else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN && old->sa_handler) {
      old->sa_handler(sig);
    }
  }
  errno = saved;
}

/* One log line on stderr at level error (JSON or logfmt), from a thread or at exit. */
static void mw_wd_log(const char *msg, const char *kv_logfmt, const char *kv_json) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  struct tm tm;
  gmtime_r(&now.tv_sec, &tm);
  char ts[40];
  size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(ts + n, sizeof ts - n, ".%03ldZ", now.tv_nsec / 1000000L);
  char line[512];
  int len;
  if (atomic_load(&mw_wd_json))
    len = snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"error\",\"msg\":\"%s\",%s}\n", ts,
                   msg, kv_json);
  else
    len = snprintf(line, sizeof line, "ts=%s level=error msg=\"%s\" %s\n", ts, msg, kv_logfmt);
  if (len > 0) {
    ssize_t w =
        write(STDERR_FILENO, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
    (void)w;
  }
}

static atomic_int mw_exit_expected;
static atomic_int mw_exit_guarded;

void mw_watchdog_exit_expected(void) { atomic_store(&mw_exit_expected, 1); }

static void mw_exit_guard(int status, void *arg) {
  (void)arg;
  if (atomic_load(&mw_exit_expected)) return;
  char kv[64], kvj[64];
  snprintf(kv, sizeof kv, "code=%d", status);
  snprintf(kvj, sizeof kvj, "\"code\":\"%d\"", status);
  mw_wd_log(
      "exit called outside moonwatch's stop (e.g. by Lua code through the FFI); components were "
      "not stopped",
      kv, kvj);
}

int mw_ffi_exit_guard_arm(int json) {
  atomic_store(&mw_wd_json, json ? 1 : 0);
  if (atomic_exchange(&mw_exit_guarded, 1)) return 0;
  return on_exit(mw_exit_guard, NULL) == 0 ? 0 : -1;
}

static void *mw_wd_main(void *arg) {
  (void)arg;
  while (sem_wait(&mw_wd_sem) != 0 && errno == EINTR) {
  }
  long long ms = atomic_load(&mw_wd_timeout_ms);
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += (time_t)(ms / 1000);
  deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR) {
  }
  /* Still alive: the loop did not stop in time (Lua code stuck, most likely). */
  const char *sig = atomic_load(&mw_wd_signum) == SIGINT ? "SIGINT" : "SIGTERM";
  char kv[128], kvj[128];
  snprintf(kv, sizeof kv, "signal=%s timeout=%gs code=1", sig, (double)ms / 1000.0);
  snprintf(kvj, sizeof kvj, "\"signal\":\"%s\",\"timeout\":\"%gs\",\"code\":\"1\"", sig,
           (double)ms / 1000.0);
  mw_wd_log("shutdown did not finish within the shutdown timeout (the event loop is stuck, e.g. in "
            "Lua code); exiting now",
            kv, kvj);
  _exit(1);
  return NULL;
}

int mw_ffi_watchdog_arm(double timeout, int json, char *err, size_t errlen) {
  if (!(timeout >= 0) || timeout > 1e9) {
    mw_seterr(err, errlen, "watchdog: bad timeout %g", timeout);
    return -1;
  }
  atomic_store(&mw_wd_timeout_ms, (long long)(timeout * 1000.0 + 0.5));
  atomic_store(&mw_wd_json, json ? 1 : 0);
  if (atomic_load(&mw_wd_installed)) return 0;
  if (sem_init(&mw_wd_sem, 0, 0) != 0) {
    mw_seterr(err, errlen, "watchdog: sem_init: %s", strerror(errno));
    return -1;
  }
  /* The thread takes no signal: they all go to the loop's thread. */
  sigset_t all, prev;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &prev);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t th;
  int rc = pthread_create(&th, &attr, mw_wd_main, NULL);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &prev, NULL);
  if (rc != 0) {
    mw_seterr(err, errlen, "watchdog: pthread_create: %s", strerror(rc));
    return -1;
  }
  for (size_t i = 0; i < MW_WD_NSIG; i++) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = mw_wd_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);
    if (sigaction(mw_wd_signals[i], &sa, &mw_wd_old[i]) != 0) {
      mw_seterr(err, errlen, "watchdog: sigaction: %s", strerror(errno));
      return -1;
    }
  }
  atomic_store(&mw_wd_installed, 1);
  return 0;
}
