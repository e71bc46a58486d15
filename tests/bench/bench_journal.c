/* bench_journal: loki.source.journal's read path. Makes a journal file of NENTRIES
 * entries (~200-byte MESSAGE, 12 fields, 20 units) with systemd-journal-remote from
 * journal export format, then reads it all into log-entry batches (4096 entries each) as
 * loki.source.journal does: without rules, and with relabel_rules of 3 rules (unit and
 * level into labels, a drop). Prints entries/s for each, best of 3 rounds, one core.
 *   make bench   (or: build/tests/bench_journal [entries]) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ffi.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static mw_ffi_relabel_str_t S(const char *z) {
  return (mw_ffi_relabel_str_t){z, z ? (uint32_t)strlen(z) : 0};
}

static double run(const char *dir, mw_ffi_relabel_program_t *p, size_t *lines) {
  char err[512];
  double best = 0;
  for (int round = 0; round < 3; round++) {
    mw_journal_t *j = mw_ffi_journal_open(dir, "", 0, err, sizeof err);
    if (!j || mw_ffi_journal_seek(j, NULL, (uint64_t)1e15, err, sizeof err) < 0) {
      fprintf(stderr, "journal: %s\n", err);
      exit(1);
    }
    mw_ffi_journal_configure(j, p, 0);
    mw_ffi_journal_set_labels(j, "job\xffjournal\xff", 13, err, sizeof err);
    mw_logbatch_t *b = mw_ffi_logbatch_new();
    mw_journal_stats_t st;
    int at_end = 0;
    size_t n = 0;
    *lines = 0;
    double t0 = now();
    while (!at_end) {
      int64_t r = mw_ffi_journal_read(j, b, 4096, 4u << 20, &st, &at_end, err, sizeof err);
      if (r < 0) {
        fprintf(stderr, "read: %s\n", err);
        exit(1);
      }
      n += (size_t)r;
      *lines += st.lines;
    }
    double rate = (double)n / (now() - t0);
    if (rate > best) best = rate;
    mw_ffi_logbatch_free(b);
    mw_ffi_journal_close(j);
  }
  return best;
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
  char dir[] = "/tmp/bench_journal.XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char path[512], cmd[2048];
  snprintf(path, sizeof path, "%s/in.export", dir);
  FILE *f = fopen(path, "w");
  if (!f) return 1;
  unsigned long long t = (unsigned long long)time(NULL) * 1000000ull - n * 10ull;
  char msg[201];
  memset(msg, 'x', 200);
  msg[200] = 0;
  for (size_t i = 0; i < n; i++)
    fprintf(f,
            "__REALTIME_TIMESTAMP=%llu\n__MONOTONIC_TIMESTAMP=%zu\n_BOOT_ID="
            "0123456789abcdef0123456789abcdef\n_MACHINE_ID=fedcba9876543210fedcba9876543210\n"
            "_HOSTNAME=host-1\n_TRANSPORT=journal\n_PID=%zu\n_UID=0\n_GID=0\n_COMM=app%zu\n"
            "_SYSTEMD_UNIT=unit-%zu.service\nSYSLOG_IDENTIFIER=app%zu\nPRIORITY=%zu\n"
            "MESSAGE=%zu %.*s\n\n",
            t + i * 10, 1000 + i, 100 + i % 20, i % 20, i % 20, i % 20, i % 8, i, 190, msg);
  fclose(f);
  snprintf(cmd, sizeof cmd,
           "/lib/systemd/systemd-journal-remote --output=%s/x.journal %s 2>/dev/null", dir, path);
  if (system(cmd) != 0) {
    fprintf(stderr, "bench_journal: skipped (needs systemd-journal-remote)\n");
    return 0;
  }
  remove(path);

  mw_ffi_relabel_str_t unit[1] = {S("__journal__systemd_unit")};
  mw_ffi_relabel_str_t prio[1] = {S("__journal_priority_keyword")};
  mw_ffi_relabel_rule_t rules[3];
  memset(rules, 0, sizeof rules);
  rules[0].source_labels = unit;
  rules[0].n_source_labels = 1;
  rules[0].target_label = S("unit");
  rules[1].source_labels = prio;
  rules[1].n_source_labels = 1;
  rules[1].target_label = S("level");
  rules[2].source_labels = unit;
  rules[2].n_source_labels = 1;
  rules[2].regex = S("unit-19\\.service");
  rules[2].action = S("drop");
  char err[512];
  mw_ffi_relabel_program_t *p = NULL;
  if (mw_ffi_relabel_program_new(rules, 3, &p, err, sizeof err) != 0) {
    fprintf(stderr, "rules: %s\n", err);
    return 1;
  }
  size_t lines;
  double plain = run(dir, NULL, &lines);
  printf("journal read, no rules:        %10.0f entries/s (%zu entries, %zu lines)\n", plain, n,
         lines);
  double rl = run(dir, p, &lines);
  printf("journal read, 3 relabel rules: %10.0f entries/s (%zu entries, %zu lines)\n", rl, n,
         lines);
  mw_ffi_relabel_program_free(p);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : 1;
}
