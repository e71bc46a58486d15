/* procself: process stats from procfs, checked against /proc/self computed
 * independently, against a fake procfs tree, and against malformed files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "exporters/process/self.h"
#include "exposition/registry.h"
#include "exposition/write.h"
#include "ffi.h"
#include "test.h"

static char err[256];
static char root[256];

static void write_file(const char *rel, const char *content) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    exit(2);
  }
  fputs(content, f);
  fclose(f);
}

static void make_dir(const char *rel) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  if (mkdir(path, 0755) < 0 && errno != EEXIST) {
    perror(path);
    exit(2);
  }
}

static void rm_tree(void) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
}

static const char good_stat[] =
    "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 3 0 "
    "12345 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
static const char good_limits[] =
    "Limit                     Soft Limit           Hard Limit           Units     \n"
    "Max cpu time              unlimited            unlimited            seconds   \n"
    "Max open files            1024                 1048576              files     \n"
    "Max address space         unlimited            unlimited            bytes     \n";
static const char good_netstat[] =
    "TcpExt: SyncookiesSent SyncookiesRecv\n"
    "TcpExt: 0 0\n"
    "IpExt: InNoRoutes InTruncatedPkts InMcastPkts OutMcastPkts InBcastPkts OutBcastPkts "
    "InOctets OutOctets\n"
    "IpExt: 0 0 0 0 0 0 123456 654321\n";

/* The buffer's text as a malloc'd C string. */
static char *text(const mw_expose_buf_t *b) { return strndup(b->data ? b->data : "", b->len); }

static void make_fake_proc(void) {
  snprintf(root, sizeof root, "/tmp/mw_procself_%d", (int)getpid());
  rm_tree();
  make_dir("");
  make_dir("4242");
  make_dir("4242/fd");
  make_dir("4242/net");
  write_file("stat", "cpu  1 2 3 4\ncpu0 1 2 3 4\nintr 1 2 3\nctxt 99\nbtime 1700000000\n"
                     "processes 5\n");
  write_file("4242/stat", good_stat);
  write_file("4242/limits", good_limits);
  write_file("4242/net/netstat", good_netstat);
  write_file("4242/fd/0", "");
  write_file("4242/fd/1", "");
  write_file("4242/fd/7", "");
}

static void test_fake_procfs(void) {
  mw_procself_t st;
  make_fake_proc();
  int rc = mw_procself_read(root, 4242, &st, err, sizeof err);
  if (rc != 0) MW_FAIL("read: %s", err);
  long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
  CHECK_INT(st.have, MW_PROCSELF_ALL);
  CHECK_DBL(st.cpu_seconds, 400.0 / (double)tck);
  CHECK_DBL(st.virtual_bytes, 104857600);
  CHECK_DBL(st.resident_bytes, 2560.0 * (double)page);
  CHECK_DBL(st.start_time, 1700000000.0 + 12345.0 / (double)tck);
  CHECK_DBL(st.open_fds, 3);
  CHECK_DBL(st.max_fds, 1024);
  CHECK_DBL(st.virtual_max_bytes, 18446744073709551615.0);
  CHECK_DBL(st.network_receive_bytes, 123456);
  CHECK_DBL(st.network_transmit_bytes, 654321);
  rm_tree();
}

static void test_fake_procfs_exposition(void) {
  mw_metrics_t *reg = mw_metrics_create();
  mw_expose_buf_t b = {0};
  make_fake_proc();
  /* zero ticks keep the expected text independent of CLK_TCK */
  write_file("4242/stat", "4242 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 0 1000000 0 0\n");
  if (mw_ffi_metrics_process_add(reg, root, 4242, err, sizeof err) != 0) MW_FAIL("add: %s", err);
  CHECK_INT(mw_expose_write(reg, MW_EXPOSE_TEXT, &b, err, sizeof err), 0);
  char *s = text(&b);
  CHECK_STR(s,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
            "# TYPE process_cpu_seconds_total counter\n"
            "process_cpu_seconds_total 0\n"
            "# HELP process_max_fds Maximum number of open file descriptors.\n"
            "# TYPE process_max_fds gauge\n"
            "process_max_fds 1024\n"
            "# HELP process_network_receive_bytes_total Number of bytes received by the process "
            "over the network.\n"
            "# TYPE process_network_receive_bytes_total counter\n"
            "process_network_receive_bytes_total 123456\n"
            "# HELP process_network_transmit_bytes_total Number of bytes sent by the process over "
            "the network.\n"
            "# TYPE process_network_transmit_bytes_total counter\n"
            "process_network_transmit_bytes_total 654321\n"
            "# HELP process_open_fds Number of open file descriptors.\n"
            "# TYPE process_open_fds gauge\n"
            "process_open_fds 3\n"
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
            "# TYPE process_resident_memory_bytes gauge\n"
            "process_resident_memory_bytes 0\n"
            "# HELP process_start_time_seconds Start time of the process since unix epoch in "
            "seconds.\n"
            "# TYPE process_start_time_seconds gauge\n"
            "process_start_time_seconds 1.7e+09\n"
            "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
            "# TYPE process_virtual_memory_bytes gauge\n"
            "process_virtual_memory_bytes 1e+06\n"
            "# HELP process_virtual_memory_max_bytes Maximum amount of virtual memory available "
            "in bytes.\n"
            "# TYPE process_virtual_memory_max_bytes gauge\n"
            "process_virtual_memory_max_bytes 1.8446744073709552e+19\n");
  free(s);

  /* a stat that cannot be read disappears from the exposition, as in client_golang */
  write_file("4242/limits", "garbage\n");
  b.len = 0;
  CHECK_INT(mw_expose_write(reg, MW_EXPOSE_TEXT, &b, err, sizeof err), 0);
  s = text(&b);
  int gone = !strstr(s, "process_max_fds") && !strstr(s, "process_virtual_memory_max_bytes");
  int kept = strstr(s, "process_open_fds 3\n") != NULL;
  free(s);
  CHECK(gone && kept);
  /* and comes back when it can */
  write_file("4242/limits", good_limits);
  b.len = 0;
  CHECK_INT(mw_expose_write(reg, MW_EXPOSE_TEXT, &b, err, sizeof err), 0);
  s = text(&b);
  kept = strstr(s, "process_max_fds 1024\n") != NULL;
  free(s);
  CHECK(kept);
  mw_expose_buf_free(&b);
  mw_metrics_free(reg);
  rm_tree();
}

static void expect_fail(const char *rel, const char *content, unsigned must_lack) {
  mw_procself_t st;
  make_fake_proc();
  write_file(rel, content);
  err[0] = '\0';
  CHECK_INT(mw_procself_read(root, 4242, &st, err, sizeof err), -1);
  CHECK(err[0] != '\0');
  CHECK((st.have & must_lack) == 0);
  CHECK(st.have != 0);
  rm_tree();
}

static void test_odd_files(void) {
  expect_fail("4242/stat", "", MW_PROCSELF_CPU | MW_PROCSELF_START);
  expect_fail("4242/stat", "4242 (no close paren S 1 2 3\n", MW_PROCSELF_CPU);
  expect_fail("4242/stat", "4242 (x) S 1 2 3 4 5\n", MW_PROCSELF_CPU);
  expect_fail("4242/stat", "4242 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 0 0 0 20 0 1 0 0 1000000 0 0\n",
              MW_PROCSELF_CPU);
  expect_fail("4242/stat",
              "4242 (x) S 1 1 1 0 -1 0 0 0 0 0 99999999999999999999999 0 0 0 20 0 1 0 0 1 0 0\n",
              MW_PROCSELF_CPU);
  expect_fail("4242/limits", "Max open files\n", MW_PROCSELF_LIMITS);
  expect_fail("4242/limits", "Max open files            lots     1 files\n", MW_PROCSELF_LIMITS);
  expect_fail("4242/net/netstat", "IpExt: InOctets OutOctets\n", MW_PROCSELF_NET);
  expect_fail("4242/net/netstat", "IpExt: InOctets OutOctets\nIpExt: 1 x\n", MW_PROCSELF_NET);
  expect_fail("stat", "cpu 1 2 3\nbtime\n", MW_PROCSELF_START);
  expect_fail("stat", "", MW_PROCSELF_START);

  /* a missing process: nothing read, every source reports */
  mw_procself_t st;
  make_fake_proc();
  CHECK_INT(mw_procself_read(root, 999, &st, err, sizeof err), -1);
  CHECK(strstr(err, "999/stat") != NULL);
  CHECK_INT(st.have, 0);
  CHECK_INT(mw_procself_read(root, -3, &st, err, sizeof err), -1);
  CHECK_INT(mw_procself_read("/nonexistent", 0, &st, NULL, 0), -1);
  rm_tree();
}

/* /proc/self/stat fields 14, 15, 22 parsed here without the module's code. */
static int independent_stat(unsigned long long *utime, unsigned long long *stime,
                            unsigned long long *start, unsigned long long *btime) {
  char buf[4096];
  FILE *f = fopen("/proc/self/stat", "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  if (sscanf(p + 2,
             "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu",
             utime, stime, start) != 3)
    return -1;
  f = fopen("/proc/stat", "r");
  if (!f) return -1;
  char line[8192];
  int found = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "btime %llu", btime) == 1) found = 1;
  fclose(f);
  return found ? 0 : -1;
}

static void test_self(void) {
  mw_procself_t st;
  long tck = sysconf(_SC_CLK_TCK);
  unsigned long long utime, stime, start, btime;
  CHECK_INT(independent_stat(&utime, &stime, &start, &btime), 0);
  int rc = mw_procself_read(NULL, 0, &st, err, sizeof err);
  /* net/netstat may be missing in odd sandboxes; the rest must be there */
  if (rc != 0 && (st.have | MW_PROCSELF_NET) != MW_PROCSELF_ALL) MW_FAIL("read: %s", err);
  CHECK_DBL(st.start_time, (double)btime + (double)start / (double)tck);
  CHECK(st.start_time <= (double)time(NULL) + 1);
  CHECK(st.start_time > 1e9);
  CHECK(st.cpu_seconds >= (double)(utime + stime) / (double)tck);
  CHECK(st.resident_bytes > 0);
  CHECK(st.virtual_bytes >= st.resident_bytes);
  CHECK(st.open_fds >= 3);
  struct rlimit rl;
  CHECK_INT(getrlimit(RLIMIT_NOFILE, &rl), 0);
  CHECK_DBL(st.max_fds, rl.rlim_cur == RLIM_INFINITY ? 18446744073709551615.0 : rl.rlim_cur);
  CHECK_INT(getrlimit(RLIMIT_AS, &rl), 0);
  CHECK_DBL(st.virtual_max_bytes,
            rl.rlim_cur == RLIM_INFINITY ? 18446744073709551615.0 : rl.rlim_cur);
  /* pid given explicitly reads the same process */
  mw_procself_t st2;
  mw_procself_read("/proc", (int)getpid(), &st2, err, sizeof err);
  CHECK_DBL(st2.start_time, st.start_time);
  CHECK_DBL(st2.max_fds, st.max_fds);
}

static void test_self_exposition(void) {
  mw_metrics_t *reg = mw_metrics_create();
  char *out = NULL;
  size_t len = 0;
  CHECK_INT(mw_ffi_metrics_process_add(reg, NULL, 0, err, sizeof err), 0);
  CHECK_INT(mw_ffi_metrics_expose(reg, MW_METRICS_FMT_OPENMETRICS, 0, &out, &len, err, sizeof err),
            0);
  char *s = malloc(len + 1);
  memcpy(s, out, len);
  s[len] = '\0';
  mw_ffi_metrics_buf_free(out);
  CHECK(strstr(s, "# TYPE process_cpu_seconds counter\nprocess_cpu_seconds_total ") != NULL);
  CHECK(strstr(s, "\nprocess_resident_memory_bytes ") != NULL);
  CHECK(strstr(s, "\nprocess_start_time_seconds ") != NULL);
  CHECK(strstr(s, "\nprocess_open_fds ") != NULL);
  CHECK(len > 6 && strcmp(s + len - 6, "# EOF\n") == 0);
  free(s);
  mw_metrics_free(reg);
}

int main(void) {
  MW_RUN(test_fake_procfs);
  MW_RUN(test_fake_procfs_exposition);
  MW_RUN(test_odd_files);
  MW_RUN(test_self);
  MW_RUN(test_self_exposition);
  rm_tree();
  return mw_test_summary();
}
