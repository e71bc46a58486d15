/* pprof/cpu.c: the CPU sampler (see pprof/cpu.h). */
#define UNW_LOCAL_ONLY
#include "pprof/cpu.h"

#include <errno.h>
#include <libunwind.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/grow.h"

#define RING 4096u
#define DEPTH 64

typedef struct {
  _Atomic uint64_t ready; /* the claim number + 1 once written */
  uint32_t tid;
  uint32_t depth;
  uint64_t pc[DEPTH];
} ring_slot_t;

/* What the handler shares with the loop thread. */
static ring_slot_t *ring;
static _Atomic uint64_t head, tail, lost, handler_ns, handler_ticks;
static _Atomic int active;
static struct sigaction prev;
static pid_t loop_tid;

/* Loop thread only. */
static int running, own_timer, period_hz;
static size_t max_keep;

typedef struct {
  uint32_t tid, depth;
  size_t pcs;  /* offset into pcs */
  int32_t lua; /* index into luas, -1: none */
} sample_t;
static sample_t *samples;
static size_t nsamples, capsamples;
static uint64_t *pcs;
static size_t npcs, cappcs;
static char **luas;
static size_t nluas, capluas;

/* Executable mappings, read when sampling starts: which pcs are the Lua VM's. */
#define MAXMAPS 512
static struct {
  uint64_t start, limit;
  int luajit;
} maps[MAXMAPS];
static size_t nmaps;

static pid_t gettid_(void) { return (pid_t)syscall(SYS_gettid); }

static void read_maps(void) {
  nmaps = 0;
  FILE *f = fopen("/proc/self/maps", "re");
  if (!f) return;
  char line[4096];
  while (nmaps < MAXMAPS && fgets(line, sizeof(line), f)) {
    unsigned long long start, end;
    char perms[8];
    int n = 0;
    if (sscanf(line, "%llx-%llx %7s %*s %*s %*s %n", &start, &end, perms, &n) < 3) continue;
    if (perms[2] != 'x') continue;
    maps[nmaps].start = start;
    maps[nmaps].limit = end;
    /* LuaJIT's library, or an anonymous executable mapping: LuaJIT's machine code areas */
    char *name = line + n;
    name[strcspn(name, "\n")] = 0;
    maps[nmaps].luajit = strstr(name, "libluajit") != NULL || name[0] == 0;
    nmaps++;
  }
  fclose(f);
}

/* Whether pc is the Lua VM's: LuaJIT's library, or code mapped by no file (its traces, in
 * anonymous mappings, also those made after sampling started). */
static int in_vm(uint64_t pc) {
  for (size_t i = 0; i < nmaps; i++)
    if (pc >= maps[i].start && pc < maps[i].limit) return maps[i].luajit;
  return 1;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts); /* async-signal-safe */
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_sigprof(int sig, siginfo_t *si, void *uc) {
  int saved = errno;
  uint64_t t0 = now_ns();
  pid_t tid = gettid_();
  if (atomic_load(&active)) {
    uint64_t h = atomic_load(&head);
    for (;;) {
      if (h - atomic_load(&tail) >= RING) {
        atomic_fetch_add(&lost, 1);
        break;
      }
      if (atomic_compare_exchange_weak(&head, &h, h + 1)) {
        ring_slot_t *s = &ring[h % RING];
        unw_cursor_t cur;
        uint32_t n = 0;
        if (unw_init_local2(&cur, (unw_context_t *)uc, UNW_INIT_SIGNAL_FRAME) == 0) {
          do {
            unw_word_t ip;
            if (unw_get_reg(&cur, UNW_REG_IP, &ip) < 0 || !ip) break;
            s->pc[n++] = ip;
          } while (n < DEPTH && unw_step(&cur) > 0);
        }
        s->depth = n;
        s->tid = (uint32_t)tid;
        atomic_store_explicit(&s->ready, h + 1, memory_order_release);
        break;
      }
    }
  }
  /* LuaJIT's handler samples the Lua stack; only the loop thread runs Lua */
  if (tid == loop_tid) {
    if (prev.sa_flags & SA_SIGINFO) {
      if (prev.sa_sigaction) prev.sa_sigaction(sig, si, uc);
    } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
      prev.sa_handler(sig);
    }
  }
  atomic_fetch_add(&handler_ns, now_ns() - t0);
  atomic_fetch_add(&handler_ticks, 1);
  errno = saved;
}

static void clear_samples(void) {
  for (size_t i = 0; i < nluas; i++)
    free(luas[i]);
  nluas = nsamples = npcs = 0;
}

int mw_ffi_pprof_cpu_prepare(char *err, size_t errlen) {
  if (running) {
    mw_seterr(err, errlen, "cpu profiling already in use");
    return -1;
  }
  struct sigaction cur;
  if (sigaction(SIGPROF, NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
      cur.sa_handler == SIG_DFL)
    signal(SIGPROF, SIG_IGN);
  return 0;
}

int mw_ffi_pprof_cpu_start(int hz, size_t max_samples, char *err, size_t errlen) {
  if (running) {
    mw_seterr(err, errlen, "cpu profiling already in use");
    return -1;
  }
  if (hz < 1 || hz > 1000) {
    mw_seterr(err, errlen, "sampling rate %d Hz: must be 1 to 1000", hz);
    return -1;
  }
  if (!ring && !(ring = calloc(RING, sizeof(*ring)))) {
    mw_oom(err, errlen);
    return -1;
  }
  clear_samples();
  read_maps();
  loop_tid = gettid_();
  max_keep = max_samples;
  period_hz = hz;
  atomic_store(&head, 0);
  atomic_store(&tail, 0);
  atomic_store(&lost, 0);
  atomic_store(&handler_ns, 0);
  atomic_store(&handler_ticks, 0);
  for (size_t i = 0; i < RING; i++)
    atomic_store(&ring[i].ready, 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_sigprof;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGPROF, &sa, &prev)) {
    mw_seterr(err, errlen, "sigaction(SIGPROF): %s", strerror(errno));
    return -1;
  }
  struct itimerval cur;
  own_timer = 0;
  if (getitimer(ITIMER_PROF, &cur) == 0 && !cur.it_interval.tv_sec && !cur.it_interval.tv_usec) {
    /* tv_usec must stay under 1000000: 1 Hz is a 1 s interval */
    struct timeval every = {hz == 1 ? 1 : 0, hz == 1 ? 0 : 1000000 / hz};
    struct itimerval tv = {every, every};
    if (setitimer(ITIMER_PROF, &tv, NULL)) {
      mw_seterr(err, errlen, "setitimer(ITIMER_PROF): %s", strerror(errno));
      sigaction(SIGPROF, &prev, NULL);
      return -1;
    }
    own_timer = 1;
  }
  running = 1;
  atomic_store(&active, 1);
  return 0;
}

int mw_ffi_pprof_cpu_running(void) { return running; }

void mw_ffi_pprof_cpu_cost(uint64_t *ns, uint64_t *ticks) {
  *ns = atomic_load(&handler_ns);
  *ticks = atomic_load(&handler_ticks);
}

void mw_ffi_pprof_cpu_drain(void) {
  if (!ring) return;
  uint64_t t = atomic_load(&tail);
  for (;; t++) {
    ring_slot_t *s = &ring[t % RING];
    if (atomic_load_explicit(&s->ready, memory_order_acquire) != t + 1) break;
    if ((max_keep && nsamples >= max_keep) ||
        mw_grow((void **)&samples, &capsamples, nsamples + 1, sizeof(sample_t)) ||
        mw_grow((void **)&pcs, &cappcs, npcs + s->depth + 1, sizeof(uint64_t))) {
      atomic_fetch_add(&lost, 1);
    } else {
      memcpy(pcs + npcs, s->pc, s->depth * sizeof(uint64_t));
      samples[nsamples++] = (sample_t){s->tid, s->depth, npcs, -1};
      npcs += s->depth;
    }
    atomic_store(&tail, t + 1);
  }
}

int mw_ffi_pprof_cpu_lua(const char *frames, size_t len, int ticks) {
  if (!running) return 0;
  mw_ffi_pprof_cpu_drain();
  int32_t idx = -1;
  for (size_t i = nsamples; i-- > 0 && ticks > 0;) {
    sample_t *s = &samples[i];
    if (s->tid != (uint32_t)loop_tid) continue;
    if (s->lua >= 0) break;
    ticks--;
    int vm = 0;
    for (uint32_t k = 0; k < s->depth && !vm; k++)
      vm = in_vm(pcs[s->pcs + k]);
    if (!vm) continue;
    if (idx < 0) {
      char *copy = malloc(len + 1);
      if (!copy || mw_grow((void **)&luas, &capluas, nluas + 1, sizeof(char *))) {
        free(copy);
        return -1;
      }
      memcpy(copy, frames, len);
      copy[len] = 0;
      luas[nluas] = copy;
      idx = (int32_t)nluas++;
    }
    s->lua = idx;
  }
  return 0;
}

void mw_ffi_pprof_cpu_stop(void) {
  if (!running) return;
  atomic_store(&active, 0);
  if (own_timer) {
    struct itimerval zero;
    memset(&zero, 0, sizeof(zero));
    setitimer(ITIMER_PROF, &zero, NULL);
  }
  sigaction(SIGPROF, &prev, NULL);
  mw_ffi_pprof_cpu_drain();
  running = 0;
}

/* Appends the locations of a Lua stack text (leaf first) to *locs. */
static int lua_locations(mw_pprof_t *p, char *text, uint64_t **locs, size_t *n, size_t *cap) {
  char *line = text;
  while (*line) {
    char *end = strchr(line, '\n');
    if (end) *end = 0;
    char *f[4] = {line, "", "0", "0"};
    for (int k = 1; k < 4; k++) {
      char *tab = strchr(f[k - 1], '\t');
      if (!tab) break;
      *tab = 0;
      f[k] = tab + 1;
    }
    uint64_t id =
        mw_ffi_pprof_func_location(p, f[0], f[1], strtoll(f[2], NULL, 10), strtoll(f[3], NULL, 10));
    if (!id || mw_grow((void **)locs, cap, *n + 1, sizeof(uint64_t))) return -1;
    (*locs)[(*n)++] = id;
    if (!end) break;
    line = end + 1;
  }
  return 0;
}

int mw_ffi_pprof_cpu_build(mw_pprof_t *p, uint64_t *lostp) {
  int rc = -1;
  uint64_t *locs = NULL;
  size_t cap = 0;
  int64_t period = 1000000000 / (period_hz ? period_hz : 100);
  if (mw_ffi_pprof_sample_type(p, "samples", "count") ||
      mw_ffi_pprof_sample_type(p, "cpu", "nanoseconds"))
    goto done;
  for (size_t i = 0; i < nsamples; i++) {
    sample_t *s = &samples[i];
    const uint64_t *pc = pcs + s->pcs;
    size_t n = 0;
    uint32_t first = s->depth, last = 0;
    if (s->lua >= 0) {
      for (uint32_t k = 0; k < s->depth; k++)
        if (in_vm(pc[k])) {
          if (first == s->depth) first = k;
          last = k;
        }
    }
    for (uint32_t k = 0; k < s->depth; k++) {
      if (k == first && s->lua >= 0) {
        char *text = strdup(luas[s->lua]);
        int bad = !text || lua_locations(p, text, &locs, &n, &cap);
        free(text);
        if (bad) goto done;
        k = last;
        continue;
      }
      uint64_t id = mw_ffi_pprof_addr_location(p, pc[k], k == 0);
      if (!id || mw_grow((void **)&locs, &cap, n + 1, sizeof(uint64_t))) goto done;
      locs[n++] = id;
    }
    int64_t values[2] = {1, period};
    const char *thread = s->tid == (uint32_t)loop_tid ? "thread\0loop" : "thread\0other";
    if (mw_ffi_pprof_sample(p, locs, n, values, 2, thread, 1)) goto done;
  }
  if (lostp) *lostp = atomic_load(&lost);
  rc = 0;
done:
  free(locs);
  clear_samples();
  return rc;
}
