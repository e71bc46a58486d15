/* test_procgroup.c: the process-exporter tracker over a fake procfs tree
 * built in a temporary directory. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "exporters/process/group.h"
#include "exporters/process/proc.h"
#include "ffi.h"
#include "test.h"

#define BTIME 1000000000ull

static char root[256];

static void wfile(const char *content, const char *fmt, ...) {
  char path[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(path, sizeof path, fmt, ap);
  va_end(ap);
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    exit(2);
  }
  fputs(content, f);
  fclose(f);
}

static void mkdirf(const char *fmt, ...) {
  char path[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(path, sizeof path, fmt, ap);
  va_end(ap);
  if (mkdir(path, 0755) < 0 && errno != EEXIST) {
    perror(path);
    exit(2);
  }
}

typedef struct {
  int pid, ppid;
  const char *comm;
  const char *cmdline; /* args separated by '|' */
  char state;
  unsigned long long utime, stime, minflt, majflt, starttime, vsize, rss;
  int threads;
  unsigned long long ctx_vol, ctx_nonvol, read_bytes, write_bytes;
  int fds;
  const char *wchan;
  unsigned uid;
} fake_t;

/* Writes <root>/<dir>/{stat,status,io,...}; dir is "<pid>" or "<pid>/task/<tid>". */
static void write_proc(const char *dir, const fake_t *p) {
  char buf[1024];
  mkdirf("%s/%s", root, dir);
  snprintf(buf, sizeof buf,
           "%d (%s) %c %d %d %d 0 -1 4194560 %llu 0 %llu 0 %llu %llu 0 0 20 0 %d 0 %llu %llu %llu "
           "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
           p->pid, p->comm, p->state, p->ppid, p->pid, p->pid, p->minflt, p->majflt, p->utime,
           p->stime, p->threads, p->starttime, p->vsize, p->rss);
  wfile(buf, "%s/%s/stat", root, dir);
  snprintf(buf, sizeof buf,
           "Name:\t%s\nState:\t%c (x)\nPPid:\t%d\nUid:\t%u\t%u\t%u\t%u\nVmSwap:\t       4 kB\n"
           "voluntary_ctxt_switches:\t%llu\nnonvoluntary_ctxt_switches:\t%llu\n",
           p->comm, p->state, p->ppid, p->uid, p->uid, p->uid, p->uid, p->ctx_vol, p->ctx_nonvol);
  wfile(buf, "%s/%s/status", root, dir);
  snprintf(buf, sizeof buf,
           "rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: %llu\nwrite_bytes: %llu\n"
           "cancelled_write_bytes: 0\n",
           p->read_bytes, p->write_bytes);
  wfile(buf, "%s/%s/io", root, dir);
  snprintf(buf, sizeof buf, "%s\n", p->comm);
  wfile(buf, "%s/%s/comm", root, dir);
  wfile(p->wchan ? p->wchan : "0", "%s/%s/wchan", root, dir);
  /* cmdline: '|' -> NUL, with a trailing NUL */
  char cl[256];
  size_t n = 0;
  for (const char *s = p->cmdline ? p->cmdline : ""; *s && n < sizeof cl - 1; s++)
    cl[n++] = *s == '|' ? '\0' : *s;
  if (n) cl[n++] = '\0';
  snprintf(buf, sizeof buf, "%s/%s/cmdline", root, dir);
  FILE *f = fopen(buf, "w");
  fwrite(cl, 1, n, f);
  fclose(f);
  wfile("Limit                     Soft Limit           Hard Limit           Units     \n"
        "Max cpu time              unlimited            unlimited            seconds   \n"
        "Max open files            1024                 524288               files     \n",
        "%s/%s/limits", root, dir);
  wfile("00400000-7ffc0000 ---p 00000000 00:00 0                          [rollup]\n"
        "Rss:                 100 kB\nPss:                   8 kB\nSwapPss:               1 kB\n",
        "%s/%s/smaps_rollup", root, dir);
  wfile("0::/user.slice/session-1.scope\n", "%s/%s/cgroup", root, dir);
  mkdirf("%s/%s/fd", root, dir);
  for (int i = 0; i < p->fds; i++)
    wfile("", "%s/%s/fd/%d", root, dir, i);
}

static void add_proc(const fake_t *p) {
  char dir[64];
  snprintf(dir, sizeof dir, "%d", p->pid);
  write_proc(dir, p);
  mkdirf("%s/%d/task", root, p->pid);
}

static void add_thread(int pid, const fake_t *t) {
  char dir[64];
  snprintf(dir, sizeof dir, "%d/task/%d", pid, t->pid);
  write_proc(dir, t);
}

static void rm_proc(int pid) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s/%d'", root, pid);
  if (system(cmd) != 0) exit(2);
}

static void setup_root(void) {
  char cmd[600];
  if (root[0]) {
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) exit(2);
  }
  snprintf(root, sizeof root, "/tmp/mw_procgroup_XXXXXX");
  if (!mkdtemp(root)) exit(2);
  char stat[128];
  snprintf(stat, sizeof stat, "cpu  1 2 3 4 5 6 7 0 0 0\nbtime %llu\nprocesses 10\n", BTIME);
  wfile(stat, "%s/stat", root);
  mkdirf("%s/self", root); /* non-numeric entries are skipped */
}

/* Ticks after BTIME for a process started `ago` seconds before now (< 0: in
 * the future, i.e. after the tracker's first collection). */
static time_t t0; /* "now" for the fake trees, fixed so start times are stable */

static unsigned long long ticks_ago(double ago) {
  return (unsigned long long)(((double)t0 - (double)BTIME - ago) * 100);
}

static const fake_t SERVER = {10,   1,   "server",  "/usr/bin/server|--port|8080",
                              'S',  100, 50,        7,
                              1,    0,   1000000,   10,
                              1,    5,   6,         1000,
                              2000, 3,   "do_wait", 0};

static void base_tree(void) {
  setup_root();
  fake_t s = SERVER;
  s.starttime = ticks_ago(100.25);
  add_proc(&s);
  fake_t w = {11,     10, "worker", "worker", 'R', 10, 10, 1, 0,   ticks_ago(50),
              500000, 5,  1,        1,        1,   0,  0,  2, "0", 0};
  add_proc(&w);
  /* a multi-threaded process: 3 threads, two named "db" */
  fake_t db = {20,
               1,
               "postgres",
               "/opt/db/bin/postgres|-D|/data",
               'S',
               300,
               30,
               0,
               0,
               ticks_ago(200),
               2000000,
               20,
               3,
               0,
               0,
               0,
               0,
               4,
               "futex_wait_queue",
               0};
  add_proc(&db);
  fake_t t1 = db, t2 = db, t3 = db;
  t1.pid = 20, t1.comm = "db", t1.utime = 100, t1.ctx_vol = 10, t1.wchan = "futex_wait_queue";
  t2.pid = 21, t2.comm = "db", t2.utime = 100, t2.ctx_vol = 20, t2.wchan = "futex_wait_queue";
  t3.pid = 22, t3.comm = "bg", t3.utime = 100, t3.ctx_vol = 30, t3.state = 'D', t3.wchan = "io";
  add_thread(20, &t1);
  add_thread(20, &t2);
  add_thread(20, &t3);
  fake_t sl = {
      30, 1, "sleep", "sleep|100",         'S', 0, 0, 0, 0, ticks_ago(10), 100000, 1, 1, 0, 0,
      0,  0, 1,       "hrtimer_nanosleep", 0};
  add_proc(&sl);
  fake_t other = {40, 1, "other", "/bin/other", 'S', 5, 5, 0, 0, ticks_ago(300), 1, 1, 1, 0, 0,
                  0,  0, 1,       "0",          0};
  add_proc(&other);
}

static const char *const COMM_SERVER[] = {"server"};
static const char *const EXE_PG[] = {"/opt/db/bin/postgres"};
static const char *const CMD_SLEEP[] = {"sleep (?P<secs>\\d+)"};

static const mw_procgroup_matcher_t MATCHERS[] = {
    {COMM_SERVER, 1, NULL, 0, NULL, 0, "{{.Comm}}:{{.ExeBase}}"},
    {NULL, 0, EXE_PG, 1, NULL, 0, NULL},
    {NULL, 0, NULL, 0, CMD_SLEEP, 1, "sleep-{{.Matches.secs}}-{{ .Matches.nope }}"},
};

static mw_procgroup_t *tracker(int children, int threads, int recheck, int remove_empty,
                               const mw_procgroup_matcher_t *m, size_t n) {
  mw_procgroup_opts_t o = {root, children, threads, 1, recheck, remove_empty};
  mw_procgroup_t *t = NULL;
  char err[256] = "";
  if (mw_procgroup_create(&o, m, n, &t, err, sizeof err) < 0) fprintf(stderr, "create: %s\n", err);
  return t;
}

static char body[1 << 16];

static const char *collect(mw_procgroup_t *t) {
  mw_expose_buf_t b = {0};
  char err[256];
  body[0] = '\0';
  if (mw_procgroup_collect(t, MW_EXPOSE_TEXT, &b, err, sizeof err) < 0) {
    fprintf(stderr, "collect: %s\n", err);
    return body;
  }
  size_t n = b.len < sizeof body - 1 ? b.len : sizeof body - 1;
  memcpy(body, b.data, n);
  body[n] = '\0';
  mw_expose_buf_free(&b);
  return body;
}

/* 1 if body has this exact line. */
static int has(const char *b, const char *line) {
  size_t n = strlen(line);
  for (const char *p = b; (p = strstr(p, line)) != NULL; p++)
    if ((p == b || p[-1] == '\n') && p[n] == '\n') return 1;
  return 0;
}

#define CHECK_LINE(b, line)                                                                        \
  do {                                                                                             \
    if (!has(b, line)) MW_FAIL("missing line: %s\n--- body:\n%s", line, b);                        \
  } while (0)
#define CHECK_NO(b, s)                                                                             \
  do {                                                                                             \
    if (strstr(b, s)) MW_FAIL("unexpected: %s\n--- body:\n%s", s, b);                              \
  } while (0)

static void test_readers(void) {
  base_tree();
  char dir[600];
  snprintf(dir, sizeof dir, "%s", root);
  int rfd = mw_proc_open(-100 /* AT_FDCWD */, dir);
  CHECK(rfd >= 0);
  int fd = mw_proc_open(rfd, "10");
  CHECK(fd >= 0);
  mw_proc_buf_t b = {0};
  mw_proc_stat_t st;
  CHECK_INT(mw_proc_read_stat(fd, &b, &st), 0);
  CHECK_STR(st.comm, "server");
  CHECK_INT(st.ppid, 1);
  CHECK_INT(st.utime, 100);
  CHECK_INT(st.stime, 50);
  CHECK_INT(st.minflt, 7);
  CHECK_INT(st.majflt, 1);
  CHECK_INT(st.rss, 10);
  CHECK_INT(st.vsize, 1000000);
  CHECK_INT(st.num_threads, 1);
  mw_proc_status_t s;
  CHECK_INT(mw_proc_read_status(fd, &b, &s), 0);
  CHECK_INT(s.euid, 0);
  CHECK_INT(s.vmswap_bytes, 4096);
  CHECK_INT(s.ctx_voluntary, 5);
  CHECK_INT(s.ctx_nonvoluntary, 6);
  uint64_t v;
  CHECK_INT(mw_proc_count_fds(fd, 0, &v), 0);
  CHECK_INT(v, 3);
  CHECK_INT(mw_proc_read_nofile_limit(fd, &b, &v), 0);
  CHECK_INT(v, 1024);
  mw_proc_smaps_t sm;
  CHECK_INT(mw_proc_read_smaps(fd, &b, &sm), 0);
  CHECK_INT(sm.pss, 8192);
  CHECK_INT(sm.swap_pss, 1024);
  char w[64];
  CHECK_INT(mw_proc_read_wchan(fd, w, sizeof w), 0);
  CHECK_STR(w, "do_wait");
  CHECK_INT(mw_proc_read_cmdline(fd, &b), 0);
  CHECK_INT(b.len, strlen("/usr/bin/server") + 1 + strlen("--port") + 1 + 4);
  CHECK_INT(mw_proc_read_btime(rfd, &b, &v), 0);
  CHECK_INT(v, BTIME);
  /* a comm with spaces and parentheses */
  wfile("12 (a (b) c) S 1 2 3 0 -1 0 1 0 2 0 3 4 0 0 20 0 1 0 5 6 -7 0\n", "%s/10/stat", root);
  CHECK_INT(mw_proc_read_stat(fd, &b, &st), 0);
  CHECK_STR(st.comm, "a (b) c");
  CHECK_INT(st.rss, 0);
  CHECK_INT(st.starttime, 5);
  /* the parsers behind the readers: the first line of a key counts; a uid
   * beyond 32 bits is malformed */
  static const char status[] = "Uid:\t1\t4294967296\t0\t0\nVmSwap:\t2 kB\n"
                               "voluntary_ctxt_switches:\t3\nvoluntary_ctxt_switches:\t4\n";
  CHECK_INT(mw_proc_parse_status(status, sizeof status - 1, &s), 0);
  CHECK_INT(s.euid, -1);
  CHECK_INT(s.vmswap_bytes, 2048);
  CHECK_INT(s.ctx_voluntary, 3);
  CHECK_INT(s.ctx_nonvoluntary, 0);
  static const char trunc[] = "12 (a) S 1 2";
  CHECK_INT(mw_proc_parse_stat(trunc, sizeof trunc - 1, &st), -1);
  CHECK_INT(errno, EINVAL);
  char cl[] = "a\0b\0\0";
  CHECK_INT(mw_proc_parse_cmdline(cl, sizeof cl - 1), 3);
  /* the fd count from the directory size (Linux 6.2+) agrees with listing it;
   * the limit from prlimit with the limits file */
  int self = mw_proc_open(-100 /* AT_FDCWD */, "/proc/self");
  CHECK(self >= 0 && mw_proc_is_procfs(self));
  uint64_t listed, sized;
  CHECK_INT(mw_proc_count_fds(self, 0, &listed), 0);
  CHECK_INT(mw_proc_count_fds(self, 1, &sized), 0);
  CHECK(sized + 1 == listed || sized == listed); /* listing counts its own fd (6.2+) */
  CHECK_INT(mw_proc_nofile_limit(self, getpid(), &b, &sized), 0);
  CHECK_INT(mw_proc_read_nofile_limit(self, &b, &listed), 0);
  CHECK_INT(sized, listed);
  close(self);
  /* vanished */
  close(fd);
  CHECK_INT(mw_proc_open(rfd, "999"), -1);
  CHECK(mw_proc_vanished(errno));
  mw_proc_buf_free(&b);
  close(rfd);
}

static void test_groups(void) {
  base_tree();
  mw_procgroup_t *t = tracker(1, 1, 0, 0, MATCHERS, 3);
  CHECK(t);
  const char *b = collect(t);
  /* children: worker (11) counts toward server (10) */
  CHECK_LINE(b, "namedprocess_namegroup_num_procs{groupname=\"server:server\"} 2");
  CHECK_LINE(b, "namedprocess_namegroup_num_procs{groupname=\"postgres\"} 1");
  CHECK_LINE(b, "namedprocess_namegroup_num_procs{groupname=\"sleep-100-<no value>\"} 1");
  CHECK_INT(mw_procgroup_tracked(t), 4);
  CHECK_LINE(b, "namedprocess_namegroup_num_threads{groupname=\"postgres\"} 3");
  CHECK_LINE(b, "namedprocess_namegroup_open_filedesc{groupname=\"server:server\"} 5");
  CHECK_LINE(b, "namedprocess_namegroup_worst_fd_ratio{groupname=\"server:server\"} 0.0029296875");
  CHECK_LINE(
      b, "namedprocess_namegroup_memory_bytes{groupname=\"server:server\",memtype=\"resident\"} "
         "61440");
  CHECK_LINE(b,
             "namedprocess_namegroup_memory_bytes{groupname=\"server:server\",memtype=\"virtual\"} "
             "1.5e+06");
  CHECK_LINE(b,
             "namedprocess_namegroup_memory_bytes{groupname=\"server:server\",memtype=\"swapped\"} "
             "8192");
  CHECK_LINE(b, "namedprocess_namegroup_memory_bytes{groupname=\"server:server\",memtype="
                "\"proportionalResident\"} 16384");
  /* oldest start: btime + starttime/100, truncated to seconds */
  char line[256], num[40];
  mw_expose_fmt_float(num, (double)(long long)(BTIME + ticks_ago(100.25) / 100), 0);
  snprintf(line, sizeof line,
           "namedprocess_namegroup_oldest_start_time_seconds{groupname=\"server:server\"} %s", num);
  CHECK_LINE(b, line);
  /* states: single-threaded processes count once; the 3 threads add to the process */
  CHECK_LINE(b, "namedprocess_namegroup_states{groupname=\"server:server\",state=\"Running\"} 1");
  CHECK_LINE(b, "namedprocess_namegroup_states{groupname=\"server:server\",state=\"Sleeping\"} 1");
  CHECK_LINE(b, "namedprocess_namegroup_states{groupname=\"postgres\",state=\"Sleeping\"} 3");
  CHECK_LINE(b, "namedprocess_namegroup_states{groupname=\"postgres\",state=\"Waiting\"} 1");
  /* wchans: the process's, plus each thread's */
  CHECK_LINE(
      b, "namedprocess_namegroup_threads_wchan{groupname=\"server:server\",wchan=\"do_wait\"} 1");
  CHECK_LINE(
      b,
      "namedprocess_namegroup_threads_wchan{groupname=\"postgres\",wchan=\"futex_wait_queue\"} 3");
  CHECK_LINE(b, "namedprocess_namegroup_threads_wchan{groupname=\"postgres\",wchan=\"io\"} 1");
  /* threads by name */
  CHECK_LINE(b, "namedprocess_namegroup_thread_count{groupname=\"postgres\",threadname=\"db\"} 2");
  CHECK_LINE(b, "namedprocess_namegroup_thread_count{groupname=\"postgres\",threadname=\"bg\"} 1");
  CHECK_NO(b, "thread_count{groupname=\"server:server\"");
  /* processes that existed before the first collection count from then on */
  CHECK_LINE(
      b, "namedprocess_namegroup_cpu_seconds_total{groupname=\"server:server\",mode=\"user\"} 0");
  /* the context switches of a multi-threaded process are its threads' */
  CHECK_LINE(b, "namedprocess_scrape_errors 0");
  CHECK_LINE(b, "# TYPE namedprocess_namegroup_cpu_seconds_total counter");
  CHECK_LINE(b, "# HELP namedprocess_namegroup_num_procs number of processes in this group");
  /* families sorted by name, as client_golang */
  CHECK(strstr(b, "namedprocess_namegroup_thread_count") <
        strstr(b, "namedprocess_namegroup_threads_wchan"));
  CHECK(strstr(b, "namedprocess_namegroup_write_bytes_total") <
        strstr(b, "namedprocess_scrape_errors"));
  CHECK_NO(b, "other");

  /* second collection: counters grow by the increments */
  fake_t s = SERVER;
  s.starttime = ticks_ago(100.25);
  s.utime = 150, s.stime = 60, s.minflt = 17, s.read_bytes = 1500, s.ctx_vol = 9;
  add_proc(&s);
  fake_t t3 = {22,      1,  "bg", "", 'S', 125, 30, 0, 0,    ticks_ago(200),
               2000000, 20, 3,    33, 0,   0,   0,  4, "io", 0};
  add_thread(20, &t3);
  /* a process started after the first collection counts in full */
  fake_t late = {31,     1, "sleep", "sleep|100", 'S', 20, 10, 3, 0,   ticks_ago(-3600),
                 100000, 1, 1,       0,           0,   0,  0,  1, "0", 0};
  add_proc(&late);
  b = collect(t);
  CHECK_LINE(
      b, "namedprocess_namegroup_cpu_seconds_total{groupname=\"server:server\",mode=\"user\"} 0.5");
  CHECK_LINE(b, "namedprocess_namegroup_cpu_seconds_total{groupname=\"server:server\",mode="
                "\"system\"} 0.09999999999999998");
  CHECK_LINE(b, "namedprocess_namegroup_minor_page_faults_total{groupname=\"server:server\"} 10");
  CHECK_LINE(b, "namedprocess_namegroup_read_bytes_total{groupname=\"server:server\"} 500");
  CHECK_LINE(b, "namedprocess_namegroup_context_switches_total{ctxswitchtype=\"voluntary\","
                "groupname=\"server:server\"} 4");
  CHECK_LINE(b, "namedprocess_namegroup_thread_cpu_seconds_total{groupname=\"postgres\",mode="
                "\"user\",threadname=\"bg\"} 0.25");
  CHECK_LINE(b, "namedprocess_namegroup_thread_context_switches_total{ctxswitchtype=\"voluntary\","
                "groupname=\"postgres\",threadname=\"bg\"} 3");
  CHECK_LINE(b, "namedprocess_namegroup_context_switches_total{ctxswitchtype=\"voluntary\","
                "groupname=\"postgres\"} 3");
  CHECK_LINE(b, "namedprocess_namegroup_num_procs{groupname=\"sleep-100-<no value>\"} 2");
  CHECK_LINE(b, "namedprocess_namegroup_cpu_seconds_total{groupname=\"sleep-100-<no "
                "value>\",mode=\"user\"} 0.2");

  /* the server and the sleeps exit: counters stay, gauges drop to 0 */
  rm_proc(10);
  rm_proc(11);
  rm_proc(30);
  rm_proc(31);
  b = collect(t);
  CHECK_LINE(b, "namedprocess_namegroup_num_procs{groupname=\"server:server\"} 0");
  CHECK_LINE(
      b, "namedprocess_namegroup_cpu_seconds_total{groupname=\"server:server\",mode=\"user\"} 0.5");
  CHECK_LINE(b, "namedprocess_namegroup_read_bytes_total{groupname=\"server:server\"} 500");
  CHECK_LINE(b, "namedprocess_namegroup_cpu_seconds_total{groupname=\"sleep-100-<no "
                "value>\",mode=\"user\"} 0.2");
  CHECK_LINE(b, "namedprocess_namegroup_oldest_start_time_seconds{groupname=\"server:server\"} "
                "-6.21355968e+10");
  CHECK_LINE(b, "namedprocess_namegroup_states{groupname=\"server:server\",state=\"Sleeping\"} 0");
  CHECK_NO(b, "wchan=\"do_wait\"");
  /* a new process under the same pid is a different process */
  fake_t s2 = SERVER;
  s2.starttime = ticks_ago(-7200);
  s2.utime = 30;
  add_proc(&s2);
  b = collect(t);
  CHECK_LINE(b, "namedprocess_namegroup_num_procs{groupname=\"server:server\"} 1");
  CHECK_LINE(
      b, "namedprocess_namegroup_cpu_seconds_total{groupname=\"server:server\",mode=\"user\"} 0.8");
  mw_procgroup_free(t);
}

static void test_remove_empty_and_no_children(void) {
  base_tree();
  mw_procgroup_t *t = tracker(0, 0, 0, 1, MATCHERS, 3);
  CHECK(t);
  const char *b = collect(t);
  /* without track_children, the worker is nobody's */
  CHECK_LINE(b, "namedprocess_namegroup_num_procs{groupname=\"server:server\"} 1");
  /* without track_threads, no thread_* families; wchans stay */
  CHECK_NO(b, "namedprocess_namegroup_thread_");
  CHECK_LINE(b, "namedprocess_namegroup_threads_wchan{groupname=\"postgres\",wchan=\"io\"} 1");
  rm_proc(30);
  b = collect(t);
  CHECK_NO(b, "sleep-100");
  CHECK_LINE(b, "namedprocess_namegroup_num_procs{groupname=\"postgres\"} 1");
  mw_procgroup_free(t);
}

static void test_recheck(void) {
  static const char *const comm[] = {"renamed"};
  static const mw_procgroup_matcher_t m[] = {{comm, 1, NULL, 0, NULL, 0, "{{.Comm}}"}};
  for (int recheck = 0; recheck <= 1; recheck++) {
    base_tree();
    mw_procgroup_t *t = tracker(1, 1, recheck, 0, m, 1);
    CHECK(t);
    const char *b = collect(t);
    CHECK_NO(b, "renamed");
    /* pid 40 renames itself (prctl PR_SET_NAME): same pid and start time */
    fake_t o = {40, 1, "renamed", "/bin/other", 'S', 5, 5, 0, 0, ticks_ago(300), 1, 1, 1, 0, 0,
                0,  0, 1,         "0",          0};
    add_proc(&o);
    b = collect(t);
    if (recheck)
      CHECK_LINE(b, "namedprocess_namegroup_num_procs{groupname=\"renamed\"} 1");
    else
      CHECK_NO(b, "renamed"); /* the name cache: ignored for good */
    mw_procgroup_free(t);
  }
}

static void test_matchers_and_templates(void) {
  base_tree();
  static const char *const exe_base[] = {"server", "postgres"};
  static const char *const exe_wrong[] = {"/usr/local/bin/server"};
  static const char *const cmd_two[] = {"--port", "(?P<port>\\d+)$"};
  static const char *const comm_sleep[] = {"sleep"};
  static const mw_procgroup_matcher_t m[] = {
      /* all rules must match: comm matches, exe does not */
      {comm_sleep, 1, exe_wrong, 1, NULL, 0, "never"},
      {NULL, 0, exe_wrong, 1, NULL, 0, "never"},
      {NULL, 0, exe_base, 2, cmd_two, 2,
       "{{.ExeFull}}|{{.Matches.port}}|{{.PID}}|{{.Username}}|{{.Cgroups}}|{{.StartTime}}"},
      {comm_sleep, 1, NULL, 0, NULL, 0, "  {{- .Comm -}}  "},
  };
  mw_procgroup_t *t = tracker(0, 1, 0, 0, m, 4);
  CHECK(t);
  const char *b = collect(t);
  CHECK_NO(b, "never");
  char when[64], line[256];
  time_t secs = (time_t)(BTIME + ticks_ago(100.25) / 100);
  struct tm tm;
  gmtime_r(&secs, &tm);
  strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
  unsigned frac = (unsigned)(ticks_ago(100.25) % 100);
  char fs[8] = "";
  if (frac) snprintf(fs, sizeof fs, frac % 10 ? ".%02u" : ".%u", frac % 10 ? frac : frac / 10);
  snprintf(line, sizeof line,
           "namedprocess_namegroup_num_procs{groupname=\"/usr/bin/server|8080|10|root|"
           "[/user.slice/session-1.scope]|%s%s +0000 UTC\"} 1",
           when, fs);
  CHECK_LINE(b, line);
  CHECK_LINE(b, "namedprocess_namegroup_num_procs{groupname=\"sleep\"} 1");
  mw_procgroup_free(t);
}

static void test_errors(void) {
  base_tree();
  mw_procgroup_opts_t o = {root, 1, 1, 1, 0, 0};
  mw_procgroup_t *t = NULL;
  char err[256];
  static const char *const bad_re[] = {"(a"};
  static const char *const lookahead[] = {"a(?=b)"};
  static const char *const comm[] = {"x"};
  mw_procgroup_matcher_t m = {NULL, 0, NULL, 0, NULL, 0, NULL};
  CHECK_INT(mw_procgroup_create(&o, &m, 1, &t, err, sizeof err), -1);
  CHECK(t == NULL);
  CHECK_STR(err, "matcher 1: no comm, exe or cmdline rule");
  mw_procgroup_matcher_t m2[2] = {{comm, 1, NULL, 0, NULL, 0, NULL},
                                  {NULL, 0, NULL, 0, bad_re, 1, NULL}};
  CHECK_INT(mw_procgroup_create(&o, m2, 2, &t, err, sizeof err), -1);
  CHECK(strncmp(err, "matcher 2: cmdline 1: ", 22) == 0);
  m2[1].cmdline = lookahead;
  CHECK_INT(mw_procgroup_create(&o, m2, 2, &t, err, sizeof err), -1);
  CHECK(strstr(err, "matcher 2: cmdline 1: ") && strstr(err, "RE2"));
  m2[1] = (mw_procgroup_matcher_t){comm, 1, NULL, 0, NULL, 0, "{{.Nope}}"};
  CHECK_INT(mw_procgroup_create(&o, m2, 2, &t, err, sizeof err), -1);
  CHECK(strstr(err, "matcher 2: name: name template \"{{.Nope}}\": unsupported action"));
  m2[1].name = "{{.Comm";
  CHECK_INT(mw_procgroup_create(&o, m2, 2, &t, err, sizeof err), -1);
  /* the template check alone (argument validation) parses as the tracker does */
  CHECK_INT(mw_ffi_procgroup_template_check("{{.Comm", err, sizeof err), -1);
  CHECK_STR(err, "name template \"{{.Comm\": unclosed action");
  CHECK_INT(mw_ffi_procgroup_template_check("{{.Nope}}", err, sizeof err), -1);
  CHECK(strstr(err, "unsupported action \".Nope\""));
  CHECK_INT(
      mw_ffi_procgroup_template_check("{{ .Matches.x }}-{{.PID}} {{/* c */}}", err, sizeof err), 0);
  CHECK_INT(mw_ffi_procgroup_template_check("", err, sizeof err), 0);
  CHECK_INT(mw_ffi_procgroup_template_check(NULL, err, sizeof err), 0);
  mw_procgroup_opts_t bad = {"/nonexistent/proc", 1, 1, 1, 0, 0};
  CHECK_INT(mw_procgroup_create(&bad, m2, 1, &t, err, sizeof err), -1);
  CHECK_STR(err, "/nonexistent/proc: No such file or directory");
  /* no matchers: nothing tracked, only the scrape counters */
  t = tracker(1, 1, 0, 0, NULL, 0);
  CHECK(t);
  const char *b = collect(t);
  CHECK_NO(b, "namegroup");
  CHECK_LINE(b, "namedprocess_scrape_errors 0");
  /* procfs unreadable at a later collection: a scrape error, no groups */
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  CHECK_INT(system(cmd), 0);
  b = collect(t);
  CHECK_LINE(b, "namedprocess_scrape_errors 1");
  mw_procgroup_free(t);
}

static void test_real_proc(void) {
  /* our own process, through the real /proc */
  char comm[64];
  FILE *f = fopen("/proc/self/comm", "r");
  CHECK(f && fgets(comm, sizeof comm, f));
  fclose(f);
  comm[strcspn(comm, "\n")] = '\0';
  const char *cv[] = {comm};
  mw_procgroup_matcher_t m = {cv, 1, NULL, 0, NULL, 0, "self"};
  mw_procgroup_opts_t o = {NULL, 0, 1, 1, 0, 0};
  mw_procgroup_t *t = NULL;
  char err[256];
  CHECK_INT(mw_procgroup_create(&o, &m, 1, &t, err, sizeof err), 0);
  const char *b = collect(t);
  CHECK_LINE(b, "namedprocess_namegroup_num_procs{groupname=\"self\"} 1");
  CHECK_LINE(b, "namedprocess_namegroup_num_threads{groupname=\"self\"} 1");
  mw_procgroup_free(t);
}

int main(void) {
  t0 = time(NULL);
  MW_RUN(test_readers);
  MW_RUN(test_groups);
  MW_RUN(test_remove_empty_and_no_children);
  MW_RUN(test_recheck);
  MW_RUN(test_matchers_and_templates);
  MW_RUN(test_errors);
  MW_RUN(test_real_proc);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0) return 2;
  return mw_test_summary();
}
