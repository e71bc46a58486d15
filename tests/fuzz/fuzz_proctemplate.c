/* Fuzz target: process-exporter's matchers and name templates
 * (runtime/exporters/process/group.c: template parser, matcher, renderer, cgroup list) end
 * to end, over a fake procfs tree with one process (pid 4242) whose files
 * come from the input.
 *
 * Input: a flags byte, then NUL-separated fields: name template, cmdline
 * regex, comm, cgroup file, "UID STARTTIME BTIME" (decimal), and the rest is
 * the cmdline file as it is (NULs separate arguments). Flags: bit 0 adds a
 * comm rule (the comm field), bit 1 an exe rule (argv 0 as it is), bit 2 a
 * cmdline rule (the regex field; none of the three: a comm rule), bit 3
 * track_threads, bit 4 gather_smaps, bit 5 OpenMetrics, bit 6 a second
 * thread (the task directory is read).
 *
 * A tracker is created (a template or regex may be refused: then err names
 * it) and collects twice; a collection never fails, and what it writes
 * always holds the scrape error counters. */
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exporters/process/group.h"
#include "exposition/write.h"

static char root[64];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(p);
}

static void cleanup(void) { nftw(root, rm_one, 8, FTW_DEPTH | FTW_PHYS); }

static void write_file(const char *rel, const void *p, size_t n) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
  if (fd < 0) abort();
  if (n && write(fd, p, n) != (ssize_t)n) abort();
  close(fd);
}

static void write_str(const char *rel, const char *s) { write_file(rel, s, strlen(s)); }

/* The files that do not depend on the input, once per run. */
static void setup(void) {
  struct stat sb;
  strcpy(root, stat("/dev/shm", &sb) == 0 ? "/dev/shm/mw_fuzz_proctpl.XXXXXX"
                                          : "/tmp/mw_fuzz_proctpl.XXXXXX");
  if (!mkdtemp(root)) abort();
  atexit(cleanup);
  char path[256];
  const char *dirs[] = {"4242", "4242/fd", "4242/task", "4242/task/4243", "self"};
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", root, dirs[i]);
    if (mkdir(path, 0750) < 0) abort();
  }
  write_str("4242/fd/0", "");
  write_str("4242/io", "rchar: 1\nread_bytes: 10\nwrite_bytes: 20\n");
  write_str("4242/limits", "Max open files            1024                 4096       files\n");
  write_str("4242/wchan", "do_wait");
  write_str("4242/smaps_rollup", "Pss:  8 kB\nSwapPss:  1 kB\n");
  write_str("4242/task/4243/stat",
            "4243 (worker) R 1 4242 4242 0 -1 0 1 0 2 0 3 4 0 0 20 0 2 0 7 100 10\n");
  write_str("4242/task/4243/status", "voluntary_ctxt_switches:\t1\n");
  write_str("4242/task/4243/io", "read_bytes: 1\nwrite_bytes: 2\n");
  write_str("4242/task/4243/wchan", "futex_wait");
}

/* The next NUL-terminated field of [*p, end) (the last one runs to end). */
static char *field(const uint8_t **p, const uint8_t *end) {
  const uint8_t *s = *p, *z = memchr(s, '\0', (size_t)(end - s));
  size_t n = z ? (size_t)(z - s) : (size_t)(end - s);
  *p = z ? z + 1 : end;
  char *f = malloc(n + 1);
  if (!f) abort();
  memcpy(f, s, n);
  f[n] = '\0';
  return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0 || size > 8192) return 0;
  if (!root[0]) setup();
  const uint8_t *p = data + 1, *end = data + size;
  int flags = data[0];
  char *tpl = field(&p, end), *regex = field(&p, end), *comm = field(&p, end);
  char *cgroup = field(&p, end), *nums = field(&p, end);
  unsigned long long uid = 0, start = 0, btime = 0;
  sscanf(nums, "%llu %llu %llu", &uid, &start, &btime);

  char buf[512];
  snprintf(buf, sizeof buf, "cpu  1 2 3 4\nbtime %llu\n", btime);
  write_str("stat", buf);
  int threads = flags & 64 ? 2 : 1;
  /* comm goes in as it is (stat takes the text between the first '(' and
   * the last ')'), so it may hold parentheses, newlines or invalid UTF-8 */
  size_t cl = strlen(comm);
  char *st = malloc(cl + 256);
  if (!st) abort();
  int n = snprintf(st, cl + 256,
                   "4242 (%s) S 1 4242 4242 0 -1 0 1 0 2 0 3 4 0 0 20 0 %d 0 %llu 100 10\n", comm,
                   threads, start);
  write_file("4242/stat", st, (size_t)n);
  free(st);
  snprintf(buf, sizeof buf,
           "Uid:\t%llu\t%llu\t%llu\t%llu\nVmSwap:\t4 kB\nvoluntary_ctxt_switches:\t5\n"
           "nonvoluntary_ctxt_switches:\t6\n",
           uid, uid, uid, uid);
  write_str("4242/status", buf);
  write_str("4242/cgroup", cgroup);
  write_file("4242/cmdline", p, (size_t)(end - p));
  if (threads == 1) {
    snprintf(buf, sizeof buf, "%s/4242/task/4242", root);
    nftw(buf, rm_one, 8, FTW_DEPTH | FTW_PHYS);
  } else {
    snprintf(buf, sizeof buf, "%s/4242/task/4242", root);
    mkdir(buf, 0750);
    write_str("4242/task/4242/io", "read_bytes: 3\nwrite_bytes: 4\n");
    char *s2 = malloc(cl + 256);
    if (!s2) abort();
    n = snprintf(s2, cl + 256,
                 "4242 (%s) S 1 4242 4242 0 -1 0 1 0 2 0 3 4 0 0 20 0 2 0 %llu 100 10\n", comm,
                 start);
    write_file("4242/task/4242/stat", s2, (size_t)n);
    free(s2);
  }

  /* argv 0 for the exe rule: the cmdline up to its first NUL */
  size_t a0 = strnlen((const char *)p, (size_t)(end - p));
  char *argv0 = malloc(a0 + 1);
  if (!argv0) abort();
  memcpy(argv0, p, a0);
  argv0[a0] = '\0';
  const char *comms[] = {comm}, *exes[] = {argv0}, *res[] = {regex};
  mw_procgroup_matcher_t m = {0};
  if (flags & 1 || !(flags & 7)) m.comm = comms, m.n_comm = 1;
  if (flags & 2) m.exe = exes, m.n_exe = 1;
  if (flags & 4) m.cmdline = res, m.n_cmdline = 1;
  m.name = tpl;
  mw_procgroup_opts_t o = {.procfs_path = root,
                           .track_children = 1,
                           .track_threads = (flags & 8) != 0,
                           .gather_smaps = (flags & 16) != 0};
  char err[512] = "";
  mw_procgroup_t *t = NULL;
  if (mw_procgroup_create(&o, &m, 1, &t, err, sizeof err) < 0) {
    if (t || !err[0]) abort(); /* a refusal says why */
  } else {
    for (int i = 0; i < 2; i++) {
      mw_expose_buf_t b = {0};
      int format = flags & 32 ? MW_EXPOSE_OPENMETRICS : MW_EXPOSE_TEXT;
      if (mw_procgroup_collect(t, format, &b, err, sizeof err) < 0) abort();
      if (!b.data || !memmem(b.data, b.len, "namedprocess_scrape_errors", 26)) abort();
      mw_expose_buf_free(&b);
    }
    mw_procgroup_free(t);
  }
  free(argv0);
  free(tpl);
  free(regex);
  free(comm);
  free(cgroup);
  free(nums);
  return 0;
}
