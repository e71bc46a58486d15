/* test_node.c: node collectors against fixture procfs/sysfs/rootfs trees
 * written under a temporary directory; exact exposition lines expected. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "exporters/node/node.h"
#include "ffi.h"
#include "test.h"

static char root[PATH_MAX];

/* Writes root/rel (creating parent directories) with printf-style content. */
static void fixture(const char *rel, const char *fmt, ...) {
  char path[PATH_MAX * 2];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')); p++) {
    *p = '\0';
    mkdir(path, 0755);
    *p = '/';
  }
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    exit(1);
  }
  va_list ap;
  va_start(ap, fmt);
  vfprintf(f, fmt, ap);
  va_end(ap);
  fclose(f);
}

static void setup_fixtures(void) {
  snprintf(root, sizeof root, "/tmp/mw_test_node_XXXXXX");
  if (!mkdtemp(root)) {
    perror("mkdtemp");
    exit(1);
  }
  fixture("proc/meminfo", "MemTotal:       16000000 kB\n"
                          "MemFree:         1000 kB\n"
                          "Active(anon):      24 kB\n"
                          "HugePages_Total:       0\n"
                          "Hugepagesize:       2048 kB\n");
  fixture("proc/loadavg", "0.10 0.42 1.5 2/345 6789\n");
  fixture("proc/stat", "cpu  10 0 20 300 4 0 1 0 0 0\n"
                       "cpu0 1234 5 678 90000 12 0 34 7 100 2\n"
                       "cpu1 1000 0 600 91000 10 0 30 5\n"
                       "intr 4761908 10 0 0\n"
                       "ctxt 9409606\n"
                       "btime 1795318104\n"
                       "processes 22551\n"
                       "procs_running 2\n"
                       "procs_blocked 1\n"
                       "softirq 100 1 2 3 4 5 6 7 8 9 10\n");
  fixture("proc/vmstat", "nr_free_pages 100\npgpgin 2710761\npgfault 12507567\noom_kill 0\n");
  fixture("proc/sys/fs/file-nr", "385\t0\t2466177\n");
  fixture("proc/sys/kernel/random/entropy_avail", "256\n");
  fixture("proc/sys/kernel/random/poolsize", "256\n");
  fixture("proc/diskstats",
          "   7       0 loop0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
          " 254       0 vda 92731 16353 5421522 50232 51143 19005 10950592 30014 0 17404 83234 "
          "16514 36 7250256 2345 12712 642\n"
          " 254       1 vda1 1 2 3 4 5 6 7 8 9 10 11\n"
          "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11\n");
  fixture("udev/b254:0", "S:disk/by-path/x\nE:ID_PATH=pci-0000:00:05.0\nE:ID_MODEL=QEMU\n"
                         "E:ID_FS_TYPE=ext4\nE:ID_FS_UUID=abcd\n");
  fixture("proc/net/dev",
          "Inter-|   Receive                                                |  Transmit\n"
          " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets "
          "errs drop fifo colls carrier compressed\n"
          "    lo:    1000      10    0    0    0     0          0         0     1000      10    "
          "0    0    0     0       0          0\n"
          "  eth0: 127394685    2570    1    2    3     4          5         6   123206    1614  "
          "  7    8    9    10      11         12\n");
  fixture("proc/net/netstat", "TcpExt: SyncookiesSent ListenDrops TW\nTcpExt: 1 2 3\n"
                              "IpExt: InOctets OutOctets InNoRoutes\nIpExt: 100 200 0\n");
  fixture("proc/net/snmp", "Ip: Forwarding DefaultTTL\nIp: 1 64\n"
                           "Tcp: RtoMin CurrEstab MaxConn\nTcp: 200 3 -1\n");
  fixture("proc/net/snmp6", "Ip6InReceives    10\nIp6InOctets 4000\nUdpLite6InErrors 0\n"
                            "Icmp6InMsgs 7\n");
  fixture("proc/net/sockstat", "sockets: used 17\nTCP: inuse 4 orphan 0 tw 1 alloc 5 mem 2\n"
                               "UDP: inuse 1 mem 3\nFRAG: inuse 0 memory 0\n");
  fixture("proc/net/sockstat6", "TCP6: inuse 2\nUDP6: inuse 1\n");
  fixture("proc/net/softnet_stat",
          "0006d601 00000000 00000001 00000000 00000000 00000000 00000000 00000000 00000000 "
          "00000000 00000000\n"
          "0006cc06 00000002 00000001 00000000 00000000 00000000 00000000 00000000 00000000 "
          "00000000 00000001\n");
  fixture("proc/sys/net/netfilter/nf_conntrack_count", "5\n");
  fixture("proc/sys/net/netfilter/nf_conntrack_max", "262144\n");
  fixture("proc/net/stat/nf_conntrack",
          "entries  clashres found new invalid ignore delete chainlength insert insert_failed "
          "drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n"
          "00000005  00000000 00000001 00000000 00000002 00000003 00000000 00000000 00000004 "
          "00000005 00000006 00000007 00000000  00000000 00000000 00000000 0000000a\n"
          "00000005  00000000 00000001 00000000 00000002 00000003 00000000 00000000 00000004 "
          "00000005 00000006 00000007 00000000  00000000 00000000 00000000 0000000a\n");
  fixture("proc/schedstat", "version 15\ntimestamp 4294\n"
                            "cpu0 0 0 0 0 0 0 2500000000 1500000000 42\n"
                            "domain0 3 1 2\n");
  fixture("proc/pressure/cpu", "some avg10=0.00 avg60=0.00 avg300=0.00 total=268824109\n"
                               "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
  fixture("proc/pressure/io", "some avg10=0.00 avg60=0.00 avg300=0.00 total=7842970\n"
                              "full avg10=0.00 avg60=0.00 avg300=0.00 total=5801514\n");
  fixture("proc/pressure/memory", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
                                  "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
  fixture("proc/net/udp",
          "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
          "timeout inode\n"
          "   1: 00000000:0044 00000000:0000 07 00000010:00000020 00:00000000 00000000     0    "
          "    0 1 2 ffff 0 0\n"
          "   2: 00000000:0045 00000000:0000 07 00000001:00000002 00:00000000 00000000     0    "
          "    0 1 2 ffff 0 0\n");
  fixture("proc/cpuinfo", "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n"
                          "model\t\t: 85\nmodel name\t: Xeon\nstepping\t: 7\nmicrocode\t: 0x1\n"
                          "cache size\t: 16384 KB\nphysical id\t: 0\ncore id\t\t: 0\n"
                          "flags\t\t: fpu vme sse avx\nbugs\t\t: spectre_v1 mds\n\n"
                          "processor\t: 1\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n"
                          "model\t\t: 85\nmodel name\t: Xeon\nstepping\t: 7\nmicrocode\t: 0x1\n"
                          "cache size\t: 16384 KB\nphysical id\t: 0\ncore id\t\t: 1\n"
                          "flags\t\t: fpu vme sse avx\nbugs\t\t: spectre_v1 mds\n\n");
  fixture("sys/devices/system/cpu/isolated", "1\n");
  fixture("sys/devices/system/cpu/cpu0/topology/physical_package_id", "0\n");
  fixture("sys/devices/system/cpu/cpu0/topology/core_id", "0\n");
  fixture("sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count", "3\n");
  fixture("sys/devices/system/cpu/cpu0/thermal_throttle/package_throttle_count", "9\n");
  fixture("sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "3000000\n");
  fixture("sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "1200000\n");
  fixture("sys/devices/system/clocksource/clocksource0/available_clocksource", "kvm-clock tsc\n");
  fixture("sys/devices/system/clocksource/clocksource0/current_clocksource", "tsc\n");
  fixture("rootfs/etc/os-release",
          "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n"
          "VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n"
          "# a comment\nHOME_URL=\"https://www.debian.org/\"\n");
  fixture("rootfs/data/keep", "x");
  fixture("proc/1/mounts",
          "/dev/vda %s/rootfs ext4 rw,relatime 0 0\n"
          "/dev/vdb %s/rootfs/data xfs ro,noatime 0 0\n"
          "proc %s/rootfs/proc proc rw 0 0\n"
          "tmpfs %s/rootfs/dev/shm tmpfs rw 0 0\n"
          "/dev/vda %s/rootfs ext4 rw,relatime 0 0\n",
          root, root, root, root, root);
}

/* A collector set with o's options, its paths pointed at the fixtures. */
static mw_node_t *fixture_node(mw_ffi_node_opts_t *o) {
  char proc[PATH_MAX + 8], sys[PATH_MAX + 8], rootfs[PATH_MAX + 8], udev[PATH_MAX + 8];
  char err[512];
  snprintf(proc, sizeof proc, "%s/proc", root);
  snprintf(sys, sizeof sys, "%s/sys", root);
  snprintf(rootfs, sizeof rootfs, "%s/rootfs", root);
  snprintf(udev, sizeof udev, "%s/udev", root);
  o->procfs_path = proc;
  o->sysfs_path = sys;
  o->rootfs_path = rootfs;
  o->udev_data_path = udev;
  o->netdev_netlink = 0;
  mw_node_t *n = NULL;
  if (mw_ffi_node_new(o, &n, err, sizeof err) != 0) {
    fprintf(stderr, "mw_ffi_node_new: %s\n", err);
    return NULL;
  }
  return n;
}

/* Samples that change by themselves: durations, the clock, the real disk. */
static int volatile_sample(const char *line) {
  static const char *const prefixes[] = {
      "node_scrape_collector_duration_seconds{", "node_time_seconds ",
      "node_filesystem_avail_bytes{", "node_filesystem_free_bytes{", "node_filesystem_files_free{"};
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
    if (strncmp(line, prefixes[i], strlen(prefixes[i])) == 0) return 1;
  return 0;
}

/* One collection of n as text, without volatile samples; malloc'd. */
static char *collect_node(mw_node_t *n) {
  char err[512], *out = NULL;
  size_t len = 0;
  if (mw_ffi_node_collect(n, MW_METRICS_FMT_TEXT, 0, &out, &len, err, sizeof err) != 0) {
    fprintf(stderr, "mw_ffi_node_collect: %s\n", err);
    return NULL;
  }
  char *body = malloc(len + 1), *w = body;
  for (size_t i = 0; i < len;) {
    const char *nl = memchr(out + i, '\n', len - i);
    size_t l = nl ? (size_t)(nl - (out + i)) + 1 : len - i;
    if (!volatile_sample(out + i)) {
      memcpy(w, out + i, l);
      w += l;
    }
    i += l;
  }
  *w = '\0';
  mw_ffi_metrics_buf_free(out);
  return body;
}

/* Collects with these collectors (other options: defaults pointed at the fixtures). */
static char *collect_opts(mw_ffi_node_opts_t *o) {
  char err[512];
  mw_node_t *n = fixture_node(o);
  if (!n) return NULL;
  char *out = NULL;
  size_t len = 0;
  if (mw_ffi_node_collect(n, MW_METRICS_FMT_TEXT, 0, &out, &len, err, sizeof err) != 0) {
    fprintf(stderr, "mw_ffi_node_collect: %s\n", err);
    mw_ffi_node_free(n);
    return NULL;
  }
  char *body = strndup(out, len);
  const char *errors = mw_ffi_node_errors(n);
  if (errors[0]) fprintf(stderr, "(collector errors: %s)", errors);
  mw_ffi_metrics_buf_free(out);
  mw_ffi_node_free(n);
  return body;
}

static char *collect(const char *collectors) {
  mw_ffi_node_opts_t o;
  mw_ffi_node_opts_init(&o);
  o.collectors = collectors;
  return collect_opts(&o);
}

/* Every line of want (newline-separated) appears as a whole line of body. */
#define CHECK_LINES(body, want)                                                                    \
  do {                                                                                             \
    const char *w_ = (want);                                                                       \
    while (*w_) {                                                                                  \
      const char *e_ = strchr(w_, '\n');                                                           \
      size_t n_ = e_ ? (size_t)(e_ - w_) : strlen(w_);                                             \
      char line_[1024];                                                                            \
      snprintf(line_, sizeof line_, "\n%.*s\n", (int)n_, w_);                                      \
      if (!strstr(body, line_) && strncmp(body, line_ + 1, n_ + 1) != 0) {                         \
        fprintf(stderr, "--- body:\n%s---\n", body);                                               \
        free(body);                                                                                \
        MW_FAIL("missing line: %.*s", (int)n_, w_);                                                \
      }                                                                                            \
      w_ += n_ + (e_ ? 1 : 0);                                                                     \
    }                                                                                              \
  } while (0)

#define CHECK_NO(body, s)                                                                          \
  do {                                                                                             \
    if (strstr(body, s)) {                                                                         \
      fprintf(stderr, "--- body:\n%s---\n", body);                                                 \
      free(body);                                                                                  \
      MW_FAIL("unexpected: %s", s);                                                                \
    }                                                                                              \
  } while (0)

static void test_meminfo_loadavg_filefd_entropy(void) {
  char *b = collect("meminfo,loadavg,filefd,entropy");
  CHECK(b);
  CHECK_LINES(b,
              "# HELP node_memory_Active_anon_bytes Memory information field Active_anon_bytes.\n"
              "# TYPE node_memory_Active_anon_bytes gauge\n"
              "node_memory_Active_anon_bytes 24576\n"
              "node_memory_HugePages_Total 0\n"
              "node_memory_Hugepagesize_bytes 2.097152e+06\n"
              "node_memory_MemTotal_bytes 1.6384e+10\n"
              "# HELP node_load1 1m load average.\n"
              "# TYPE node_load1 gauge\n"
              "node_load1 0.1\n"
              "node_load15 1.5\n"
              "node_load5 0.42\n"
              "node_filefd_allocated 385\n"
              "node_filefd_maximum 2.466177e+06\n"
              "node_entropy_available_bits 256\n"
              "# HELP node_entropy_pool_size_bits Bits of entropy pool.\n"
              "node_scrape_collector_success{collector=\"entropy\"} 1\n"
              "node_scrape_collector_success{collector=\"meminfo\"} 1\n");
  /* families sorted by name */
  CHECK(strstr(b, "node_entropy_available_bits") < strstr(b, "node_filefd_allocated"));
  CHECK(strstr(b, "node_load15 ") < strstr(b, "node_load5 "));
  free(b);
}

static void test_stat_cpu(void) {
  mw_ffi_node_opts_t o;
  mw_ffi_node_opts_init(&o);
  o.collectors = "stat,cpu";
  o.stat_softirq = 1;
  o.cpu_flags_include = "^(sse|avx)$";
  char *b = collect_opts(&o);
  CHECK(b);
  CHECK_LINES(b, "# HELP node_boot_time_seconds Node boot time, in unixtime.\n"
                 "node_boot_time_seconds 1.795318104e+09\n"
                 "# TYPE node_context_switches_total counter\n"
                 "node_context_switches_total 9.409606e+06\n"
                 "node_forks_total 22551\n"
                 "node_intr_total 4.761908e+06\n"
                 "node_procs_blocked 1\n"
                 "node_procs_running 2\n"
                 "node_softirqs_total{vector=\"block_iopoll\"} 6\n"
                 "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n"
                 "# TYPE node_cpu_seconds_total counter\n"
                 "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 900\n"
                 "node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 12.34\n"
                 "node_cpu_seconds_total{cpu=\"0\",mode=\"steal\"} 0.07\n"
                 "node_cpu_seconds_total{cpu=\"1\",mode=\"system\"} 6\n"
                 "node_cpu_guest_seconds_total{cpu=\"0\",mode=\"nice\"} 0.02\n"
                 "node_cpu_guest_seconds_total{cpu=\"0\",mode=\"user\"} 1\n"
                 "node_cpu_guest_seconds_total{cpu=\"1\",mode=\"user\"} 0\n"
                 "node_cpu_info{cachesize=\"16384 KB\",core=\"1\",cpu=\"1\",family=\"6\","
                 "microcode=\"0x1\",model=\"85\",model_name=\"Xeon\",package=\"0\",stepping=\"7\","
                 "vendor=\"GenuineIntel\"} 1\n"
                 "node_cpu_flag_info{flag=\"avx\"} 1\n"
                 "node_cpu_flag_info{flag=\"sse\"} 1\n"
                 "node_cpu_isolated{cpu=\"1\"} 1\n"
                 "node_cpu_core_throttles_total{core=\"0\",package=\"0\"} 3\n"
                 "node_cpu_package_throttles_total{package=\"0\"} 9\n");
  CHECK_NO(b, "flag=\"fpu\"");
  CHECK_NO(b, "node_cpu_bug_info");
  free(b);
}

static void test_vmstat_netstat_sockstat(void) {
  char *b = collect("vmstat,netstat,sockstat");
  CHECK(b);
  CHECK_LINES(b, "# HELP node_vmstat_pgfault /proc/vmstat information field pgfault.\n"
                 "# TYPE node_vmstat_pgfault untyped\n"
                 "node_vmstat_pgfault 1.2507567e+07\n"
                 "node_vmstat_oom_kill 0\n"
                 "node_vmstat_pgpgin 2.710761e+06\n"
                 "# HELP node_netstat_TcpExt_SyncookiesSent Statistic TcpExtSyncookiesSent.\n"
                 "# TYPE node_netstat_TcpExt_SyncookiesSent untyped\n"
                 "node_netstat_TcpExt_SyncookiesSent 1\n"
                 "node_netstat_TcpExt_ListenDrops 2\n"
                 "node_netstat_IpExt_InOctets 100\n"
                 "node_netstat_Ip_Forwarding 1\n"
                 "node_netstat_Tcp_CurrEstab 3\n"
                 "node_netstat_Ip6_InOctets 4000\n"
                 "# HELP node_netstat_UdpLite6_InErrors Statistic UdpLite6InErrors.\n"
                 "node_netstat_Icmp6_InMsgs 7\n"
                 "# HELP node_sockstat_sockets_used Number of IPv4 sockets in use.\n"
                 "node_sockstat_sockets_used 17\n"
                 "# HELP node_sockstat_TCP_tw Number of TCP sockets in state tw.\n"
                 "node_sockstat_TCP_tw 1\n"
                 "node_sockstat_TCP_mem 2\n"
                 "node_sockstat_FRAG_memory 0\n"
                 "node_sockstat_FRAG_inuse 0\n"
                 "node_sockstat_TCP6_inuse 2\n"
                 "node_sockstat_UDP_mem 3\n");
  CHECK_NO(b, "nr_free_pages");
  CHECK_NO(b, "TcpExt_TW");
  CHECK_NO(b, "Tcp_MaxConn");
  CHECK_NO(b, "node_sockstat_UDP_tw");
  char want[128];
  snprintf(want, sizeof want, "node_sockstat_TCP_mem_bytes %ld\n", 2 * sysconf(_SC_PAGESIZE));
  CHECK_LINES(b, want);
  free(b);
}

static void test_diskstats(void) {
  char *b = collect("diskstats");
  CHECK(b);
  CHECK_LINES(b, "# HELP node_disk_info Info of /sys/block/<block_device>.\n"
                 "node_disk_info{device=\"sda\",major=\"8\",minor=\"0\",model=\"\",path=\"\","
                 "revision=\"\",serial=\"\",wwn=\"\"} 1\n"
                 "node_disk_info{device=\"vda\",major=\"254\",minor=\"0\",model=\"QEMU\","
                 "path=\"pci-0000:00:05.0\",revision=\"\",serial=\"\",wwn=\"\"} 1\n"
                 "node_disk_read_bytes_total{device=\"vda\"} 2.775819264e+09\n"
                 "node_disk_read_time_seconds_total{device=\"vda\"} 50.232\n"
                 "node_disk_io_time_weighted_seconds_total{device=\"vda\"} 83.234\n"
                 "node_disk_discarded_sectors_total{device=\"vda\"} 7.250256e+06\n"
                 "node_disk_flush_requests_time_seconds_total{device=\"vda\"} 0.642\n"
                 "node_disk_io_time_seconds_total{device=\"sda\"} 0.01\n"
                 "node_disk_filesystem_info{device=\"vda\",type=\"ext4\",usage=\"\",uuid=\"abcd\","
                 "version=\"\"} 1\n"
                 "# TYPE node_disk_io_now gauge\n");
  CHECK_NO(b, "loop0");
  CHECK_NO(b, "vda1");
  CHECK_NO(b, "node_disk_discards_completed_total{device=\"sda\"}"); /* 11 stats only */
  free(b);
}

static void test_netdev_filters(void) {
  mw_ffi_node_opts_t o;
  mw_ffi_node_opts_init(&o);
  o.collectors = "netdev";
  o.netdev_device_exclude = "^lo$";
  char *b = collect_opts(&o);
  CHECK(b);
  CHECK_LINES(b, "# HELP node_network_receive_bytes_total Network device statistic receive_bytes.\n"
                 "# TYPE node_network_receive_bytes_total counter\n"
                 "node_network_receive_bytes_total{device=\"eth0\"} 1.27394685e+08\n"
                 "node_network_receive_multicast_total{device=\"eth0\"} 6\n"
                 "node_network_transmit_colls_total{device=\"eth0\"} 10\n"
                 "node_network_transmit_carrier_total{device=\"eth0\"} 11\n"
                 "node_network_transmit_compressed_total{device=\"eth0\"} 12\n");
  CHECK_NO(b, "device=\"lo\"");
  CHECK_NO(b, "nohandler"); /* not in /proc/net/dev */
  free(b);
  mw_ffi_node_opts_init(&o);
  o.collectors = "netdev";
  o.netdev_device_include = "^l";
  b = collect_opts(&o);
  CHECK(b);
  CHECK_LINES(b, "node_network_receive_packets_total{device=\"lo\"} 10\n");
  CHECK_NO(b, "eth0");
  free(b);
}

static void test_misc(void) {
  char *b = collect("softnet,conntrack,schedstat,pressure,udp_queues,cpufreq,time,os");
  CHECK(b);
  CHECK_LINES(b, "# HELP node_softnet_processed_total Number of processed packets\n"
                 "node_softnet_processed_total{cpu=\"0\"} 448001\n"
                 "node_softnet_dropped_total{cpu=\"1\"} 2\n"
                 "node_softnet_times_squeezed_total{cpu=\"1\"} 1\n"
                 "node_nf_conntrack_entries 5\n"
                 "node_nf_conntrack_entries_limit 262144\n"
                 "node_nf_conntrack_stat_found 2\n"
                 "node_nf_conntrack_stat_search_restart 20\n"
                 "node_nf_conntrack_stat_early_drop 14\n"
                 "node_schedstat_running_seconds_total{cpu=\"0\"} 2.5\n"
                 "node_schedstat_waiting_seconds_total{cpu=\"0\"} 1.5\n"
                 "node_schedstat_timeslices_total{cpu=\"0\"} 42\n"
                 "# TYPE node_pressure_cpu_waiting_seconds_total counter\n"
                 "node_pressure_cpu_waiting_seconds_total 268.824109\n"
                 "node_pressure_io_stalled_seconds_total 5.801514\n"
                 "node_pressure_io_waiting_seconds_total 7.84297\n"
                 "node_pressure_memory_stalled_seconds_total 0\n"
                 "node_udp_queues{ip=\"v4\",queue=\"rx\"} 34\n"
                 "node_udp_queues{ip=\"v4\",queue=\"tx\"} 17\n"
                 "node_cpu_frequency_max_hertz{cpu=\"0\"} 3e+09\n"
                 "node_cpu_scaling_frequency_hertz{cpu=\"0\"} 1.2e+09\n"
                 "node_time_clocksource_available_info{clocksource=\"kvm-clock\",device=\"0\"} 1\n"
                 "node_time_clocksource_available_info{clocksource=\"tsc\",device=\"0\"} 1\n"
                 "node_time_clocksource_current_info{clocksource=\"tsc\",device=\"0\"} 1\n"
                 "node_os_info{build_id=\"\",id=\"debian\",id_like=\"\",image_id=\"\","
                 "image_version=\"\",name=\"Debian GNU/Linux\",pretty_name=\"Debian GNU/Linux 12 "
                 "(bookworm)\",variant=\"\",variant_id=\"\",version=\"12 (bookworm)\","
                 "version_codename=\"bookworm\",version_id=\"12\"} 1\n"
                 "node_os_version{id=\"debian\",id_like=\"\",name=\"Debian GNU/Linux\"} 12\n"
                 "node_scrape_collector_success{collector=\"udp_queues\"} 1\n"
                 "node_scrape_collector_success{collector=\"time\"} 1\n");
  CHECK_NO(b, "ip=\"v6\""); /* no udp6 file */
  CHECK_NO(b, "node_cpu_frequency_hertz");
  CHECK(strstr(b, "\nnode_time_seconds "));
  CHECK(strstr(b, "\nnode_time_zone_offset_seconds{time_zone=\""));
  free(b);
}

static void test_filesystem(void) {
  char *b = collect("filesystem");
  CHECK(b);
  /* mount points are relative to rootfs; /proc and /dev are excluded; the
   * duplicate line of / is reported once; ro comes from the options */
  CHECK_LINES(
      b, "node_filesystem_device_error{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} 0\n"
         "node_filesystem_readonly{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} 0\n"
         "node_filesystem_readonly{device=\"/dev/vdb\",fstype=\"xfs\",mountpoint=\"/data\"} 1\n"
         "# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in "
         "bytes.\n"
         "# TYPE node_filesystem_size_bytes gauge\n");
  CHECK_NO(b, "mountpoint=\"/proc\"");
  CHECK_NO(b, "/dev/shm");
  CHECK(strstr(
      b, "\nnode_filesystem_size_bytes{device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"} "));
  free(b);
}

/* A statfs that hangs on ".../hang" until released. */
static pthread_mutex_t hang_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hang_cond = PTHREAD_COND_INITIALIZER;
static int hang_released;

static int hanging_statfs(const char *path, struct statfs *buf) {
  size_t len = strlen(path);
  if (len >= 5 && strcmp(path + len - 5, "/hang") == 0) {
    pthread_mutex_lock(&hang_mu);
    while (!hang_released)
      pthread_cond_wait(&hang_cond, &hang_mu);
    pthread_mutex_unlock(&hang_mu);
  }
  return statfs(path, buf);
}

static double now_sec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_filesystem_stuck(void) {
  /* a mount whose statfs hangs, between two that answer: the scrape waits
   * mount_timeout for it, reports it with device_error 1 only, still reports
   * the mounts after it; later scrapes skip it without waiting until its
   * statfs returns, then it is reported in full again */
  fixture("rootfs/hang/keep", "x");
  fixture("proc/1/mounts",
          "/dev/vda %s/rootfs ext4 rw,relatime 0 0\n"
          "/dev/vdc %s/rootfs/hang nfs rw 0 0\n"
          "/dev/vdb %s/rootfs/data xfs ro,noatime 0 0\n",
          root, root, root);
  hang_released = 0;
  mw_node_statfs_fn = hanging_statfs;
  mw_ffi_node_opts_t o;
  mw_ffi_node_opts_init(&o);
  o.collectors = "filesystem";
  o.fs_mount_timeout = 0.2;
  mw_node_t *n = fixture_node(&o);
  CHECK(n != NULL);
  const char *hang_err = "node_filesystem_device_error{device=\"/dev/vdc\",fstype=\"nfs\","
                         "mountpoint=\"/hang\"} 1\n";
  const char *others = "node_filesystem_device_error{device=\"/dev/vda\",fstype=\"ext4\","
                       "mountpoint=\"/\"} 0\n"
                       "node_filesystem_device_error{device=\"/dev/vdb\",fstype=\"xfs\","
                       "mountpoint=\"/data\"} 0\n"
                       "node_filesystem_readonly{device=\"/dev/vdb\",fstype=\"xfs\","
                       "mountpoint=\"/data\"} 1\n";
  double t0 = now_sec();
  char *b = collect_node(n);
  double dt = now_sec() - t0;
  CHECK(b != NULL);
  CHECK(dt >= 0.19 && dt < 2);
  CHECK_LINES(b, hang_err);
  CHECK_LINES(b, others);
  CHECK_NO(b, "node_filesystem_size_bytes{device=\"/dev/vdc\"");
  free(b);
  /* stuck: skipped at once */
  t0 = now_sec();
  b = collect_node(n);
  dt = now_sec() - t0;
  CHECK(b != NULL);
  CHECK(dt < 0.15);
  CHECK_LINES(b, hang_err);
  CHECK_LINES(b, others);
  free(b);
  /* recovers once its statfs returns */
  pthread_mutex_lock(&hang_mu);
  hang_released = 1;
  pthread_cond_broadcast(&hang_cond);
  pthread_mutex_unlock(&hang_mu);
  int recovered = 0;
  for (int i = 0; i < 200 && !recovered; i++) {
    b = collect_node(n);
    CHECK(b != NULL);
    recovered = b && strstr(b, "node_filesystem_size_bytes{device=\"/dev/vdc\",fstype=\"nfs\","
                               "mountpoint=\"/hang\"} ") != NULL;
    if (recovered) {
      CHECK_LINES(b, "node_filesystem_device_error{device=\"/dev/vdc\",fstype=\"nfs\","
                     "mountpoint=\"/hang\"} 0\n");
      CHECK_LINES(b, others);
    }
    free(b);
    if (!recovered) usleep(10000);
  }
  CHECK(recovered);
  /* a set freed while a statfs hangs: the worker finishes on its own */
  pthread_mutex_lock(&hang_mu);
  hang_released = 0;
  pthread_mutex_unlock(&hang_mu);
  b = collect_node(n);
  free(b);
  mw_ffi_node_free(n);
  pthread_mutex_lock(&hang_mu);
  hang_released = 1;
  pthread_cond_broadcast(&hang_cond);
  pthread_mutex_unlock(&hang_mu);
  usleep(50000);
  mw_node_statfs_fn = statfs;
  fixture("proc/1/mounts",
          "/dev/vda %s/rootfs ext4 rw,relatime 0 0\n"
          "/dev/vdb %s/rootfs/data xfs ro,noatime 0 0\n"
          "proc %s/rootfs/proc proc rw 0 0\n"
          "tmpfs %s/rootfs/dev/shm tmpfs rw 0 0\n"
          "/dev/vda %s/rootfs ext4 rw,relatime 0 0\n",
          root, root, root, root, root);
}

static void test_failures(void) {
  /* an empty procfs: every file collector fails, nothing crashes */
  char empty[PATH_MAX + 16], err[256];
  snprintf(empty, sizeof empty, "%s/empty", root);
  mkdir(empty, 0755);
  mw_ffi_node_opts_t o;
  mw_ffi_node_opts_init(&o);
  o.collectors = mw_ffi_node_collectors();
  o.procfs_path = empty;
  o.sysfs_path = empty;
  o.rootfs_path = empty;
  o.netdev_netlink = 0;
  mw_node_t *n = NULL;
  CHECK_INT(mw_ffi_node_new(&o, &n, err, sizeof err), 0);
  char *out;
  size_t len;
  CHECK_INT(mw_ffi_node_collect(n, MW_METRICS_FMT_TEXT, 0, &out, &len, err, sizeof err), 0);
  char *b = strndup(out, len);
  mw_ffi_metrics_buf_free(out);
  CHECK(strstr(mw_ffi_node_errors(n), "meminfo: couldn't get meminfo"));
  CHECK(!strstr(mw_ffi_node_errors(n), "schedstat")); /* no data is not an error */
  mw_ffi_node_free(n);
  CHECK_LINES(b, "node_scrape_collector_success{collector=\"meminfo\"} 0\n"
                 "node_scrape_collector_success{collector=\"schedstat\"} 0\n"
                 "node_scrape_collector_success{collector=\"os\"} 0\n"
                 "node_scrape_collector_success{collector=\"uname\"} 1\n"
                 "# HELP node_scrape_collector_duration_seconds node_exporter: Duration of a "
                 "collector scrape.\n");
  free(b);

  /* bad options are refused with a message */
  mw_ffi_node_opts_init(&o);
  o.collectors = "cpu,nope";
  CHECK_INT(mw_ffi_node_new(&o, &n, err, sizeof err), -1);
  CHECK(n == NULL);
  CHECK_STR(err, "unknown collector nope");
  mw_ffi_node_opts_init(&o);
  o.vmstat_fields = "(";
  CHECK_INT(mw_ffi_node_new(&o, &n, err, sizeof err), -1);
  CHECK(strncmp(err, "vmstat fields: regex (", 22) == 0);
  mw_ffi_node_opts_init(&o);
  o.netdev_device_include = "a";
  o.netdev_device_exclude = "b";
  CHECK_INT(mw_ffi_node_new(&o, &n, err, sizeof err), -1);

  /* malformed files fail their collector only */
  fixture("bad/proc/loadavg", "garbage\n");
  fixture("bad/proc/meminfo", "MemTotal: x kB\n");
  fixture("bad/proc/1/mounts", "/dev/vda /\n");
  fixture("bad/proc/net/softnet_stat", "01 02\n");
  char bad[PATH_MAX + 16];
  snprintf(bad, sizeof bad, "%s/bad/proc", root);
  mw_ffi_node_opts_init(&o);
  o.collectors = "loadavg,meminfo,filesystem,softnet";
  o.procfs_path = bad;
  CHECK_INT(mw_ffi_node_new(&o, &n, err, sizeof err), 0);
  CHECK_INT(mw_ffi_node_collect(n, MW_METRICS_FMT_TEXT, 0, &out, &len, err, sizeof err), 0);
  b = strndup(out, len);
  mw_ffi_metrics_buf_free(out);
  const char *e = mw_ffi_node_errors(n);
  CHECK(strstr(e, "loadavg: unexpected content in loadavg\n"));
  CHECK(strstr(e, "meminfo: invalid value in meminfo: x\n"));
  CHECK(strstr(e, "filesystem: malformed mount point information"));
  CHECK(strstr(e, "softnet: 2 columns were detected, but at least 9 were expected\n"));
  mw_ffi_node_free(n);
  CHECK_LINES(b, "node_scrape_collector_success{collector=\"softnet\"} 0\n");
  CHECK_NO(b, "node_load1");
  free(b);
}

static void test_real_host(void) {
  /* the running system: every collector either succeeds or reports why */
  mw_ffi_node_opts_t o;
  mw_ffi_node_opts_init(&o);
  o.collectors = mw_ffi_node_collectors();
  mw_node_t *n = NULL;
  char err[256], *out;
  size_t len;
  CHECK_INT(mw_ffi_node_new(&o, &n, err, sizeof err), 0);
  for (int i = 0; i < 3; i++) {
    CHECK_INT(
        mw_ffi_node_collect(n, MW_METRICS_FMT_OPENMETRICS, i == 2, &out, &len, err, sizeof err), 0);
    CHECK(len > 100);
    if (i < 2) CHECK(strstr(out, "\n# EOF\n"));
    if (i < 2) CHECK(strstr(out, "node_scrape_collector_success{collector=\"uname\"} 1.0\n"));
    mw_ffi_metrics_buf_free(out);
  }
  mw_ffi_node_free(n);
}

static void test_repeat_collections(void) {
  /* a kept collector set gives, collection after collection, exactly what a
   * fresh one gives: series that went away are gone, values are new */
  mw_ffi_node_opts_t o;
  mw_ffi_node_opts_init(&o);
  o.collectors = mw_ffi_node_collectors();
  o.cpu_info = 1;
  mw_node_t *n = fixture_node(&o);
  CHECK(n != NULL);
  char *first = collect_node(n);
  CHECK(first != NULL);
  CHECK(strstr(first, "node_network_receive_bytes_total{device=\"eth0\"} 1.27394685e+08\n"));
  CHECK(strstr(first, "node_cpu_isolated{cpu=\"1\"} 1\n"));
  fixture("proc/net/dev",
          "Inter-|   Receive                                                |  Transmit\n"
          " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets "
          "errs drop fifo colls carrier compressed\n"
          "    lo:    2000      20    0    0    0     0          0         0     2000      20    "
          "0    0    0     0       0          0\n");
  fixture("proc/loadavg", "0.25 0.5 1 2/345 6789\n");
  fixture("sys/devices/system/cpu/isolated", "\n");
  fixture("rootfs/etc/os-release", "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"13\"\nID=debian\n");
  for (int round = 0; round < 2; round++) {
    char *again = collect_node(n);
    mw_node_t *f = fixture_node(&o);
    CHECK(f != NULL);
    char *fresh2 = collect_node(f);
    mw_ffi_node_free(f);
    CHECK(again != NULL && fresh2 != NULL);
    if (strcmp(again, fresh2) != 0) {
      fprintf(stderr, "--- kept:\n%s--- fresh:\n%s---\n", again, fresh2);
      MW_FAIL("a kept collector set differs from a fresh one");
    }
    CHECK(strstr(again, "device=\"eth0\"") == NULL);
    CHECK(strstr(again, "node_cpu_isolated") == NULL);
    CHECK(strstr(again, "node_load1 0.25\n"));
    CHECK(strstr(again,
                 "node_os_version{id=\"debian\",id_like=\"\",name=\"Debian GNU/Linux\"} 13\n"));
    CHECK(strstr(again, "bookworm") == NULL);
    free(again);
    free(fresh2);
  }
  free(first);
  mw_ffi_node_free(n);
}

/* The collectors that read the kernel's tables through rtnetlink (netdev by
 * default, arp with netlink = 1) succeed on this host and see the same devices
 * as their /proc readers. */
static char *collect_lines(const char *collectors, int netlink, const char *prefix, int values) {
  char err[256];
  mw_ffi_node_opts_t o;
  mw_ffi_node_opts_init(&o);
  o.collectors = collectors;
  o.netdev_netlink = netlink;
  o.arp_netlink = netlink;
  mw_node_t *n = NULL;
  if (mw_ffi_node_new(&o, &n, err, sizeof err) != 0) return NULL;
  char *out;
  size_t len;
  int rc = mw_ffi_node_collect(n, MW_METRICS_FMT_TEXT, 0, &out, &len, err, sizeof err);
  mw_ffi_node_free(n);
  if (rc != 0) return NULL;
  /* the lines starting with prefix (their label sets only, unless values), one per line */
  char *b = calloc(1, len + 1), *w = b;
  for (char *l = out; b && l < out + len;) {
    char *e = memchr(l, '\n', (size_t)(out + len - l));
    size_t ll = e ? (size_t)(e - l) : (size_t)(out + len - l);
    if (ll > strlen(prefix) && strncmp(l, prefix, strlen(prefix)) == 0) {
      const char *sp = memchr(l, ' ', ll);
      size_t keep = sp && !values ? (size_t)(sp - l) : ll;
      memcpy(w, l, keep);
      w += keep;
      *w++ = '\n';
    }
    l += ll + 1;
  }
  mw_ffi_metrics_buf_free(out);
  return b;
}

static void test_netlink_matches_proc(void) {
  const char *prefixes[] = {"node_network_receive_bytes_total{", "node_arp_entries{",
                            "node_scrape_collector_success{"};
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
    char *nl = collect_lines("netdev,arp", 1, prefixes[i], 0);
    char *proc = collect_lines("netdev,arp", 0, prefixes[i], 0);
    CHECK(nl && proc);
    if (nl && proc) CHECK_STR(nl, proc);
    if (i == 0) CHECK(nl && strstr(nl, "device=\"lo\""));
    free(nl);
    free(proc);
  }
  char *ok = collect_lines("netdev,arp", 1, "node_scrape_collector_success{", 1);
  CHECK(ok && strstr(ok, "{collector=\"arp\"} 1\n") && strstr(ok, "{collector=\"netdev\"} 1\n"));
  free(ok);
}

int main(void) {
  setup_fixtures();
  MW_RUN(test_meminfo_loadavg_filefd_entropy);
  MW_RUN(test_stat_cpu);
  MW_RUN(test_vmstat_netstat_sockstat);
  MW_RUN(test_diskstats);
  MW_RUN(test_netdev_filters);
  MW_RUN(test_misc);
  MW_RUN(test_filesystem);
  MW_RUN(test_filesystem_stuck);
  MW_RUN(test_failures);
  MW_RUN(test_real_host);
  MW_RUN(test_netlink_matches_proc);
  MW_RUN(test_repeat_collections);
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
  return mw_test_summary();
}
