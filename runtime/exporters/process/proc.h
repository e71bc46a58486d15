/* exporters/process/proc.h: procfs readers for one process or thread, as prometheus/procfs reads
 * them for ncabatoff/process-exporter (stat, status, io, fd count, limits,
 * smaps_rollup, cmdline, wchan, cgroup, and the boot time from <root>/stat).
 *
 * Every reader works relative to a directory file descriptor (the pid's or
 * task's directory, opened with mw_proc_open), so a whole process costs one
 * path lookup. Readers never allocate except to grow a caller's scratch
 * buffer; they return 0, or -1 with errno set: ENOENT or ESRCH when the
 * process vanished (a normal race, not an error), EACCES/EPERM when the file
 * is not readable for us, EINVAL when the content is malformed, ENOMEM when
 * the scratch buffer cannot grow. Plain C: no Lua, no global state.
 *
 * Each reader is a read into the scratch buffer and a parser over it; the
 * parsers (mw_proc_parse_*) are public so that tests and fuzz targets
 * (tests/fuzz/fuzz_procfs.c) run them on any content. A parser takes a file's
 * content buf[0..len) with buf[len] == '\0', as mw_proc_read_file leaves it
 * (a NUL inside ends the content early), never reads past it, and fails with
 * -1 and errno EINVAL on content it cannot use. */
#ifndef MW_PROC_H
#define MW_PROC_H
#include <stddef.h>
#include <stdint.h>

/* A growable scratch buffer; zero-initialise it, release with
 * mw_proc_buf_free. Contents are NUL-terminated after each read. */
typedef struct {
  char *data;
  size_t len;
  size_t cap;
} mw_proc_buf_t;

void mw_proc_buf_free(mw_proc_buf_t *b);

/* Opens name (a pid, "task/<tid>", or NULL for the root itself) under dirfd
 * as an O_PATH directory descriptor. Returns the fd (caller closes) or -1
 * with errno. */
int mw_proc_open(int dirfd, const char *name);

/* Reads the whole file dirfd/name into b (replacing its content, NUL added;
 * b->len excludes the NUL). 0, or -1 with errno. Files are capped at 64 MiB
 * (EFBIG beyond). */
int mw_proc_read_file(int dirfd, const char *name, mw_proc_buf_t *b);

/* /proc/<pid>/stat, the fields process-exporter uses. comm is the text
 * between the first '(' and the last ')', truncated to 63 bytes. */
typedef struct {
  uint64_t starttime; /* clock ticks after boot (field 22) */
  uint64_t utime, stime;
  uint64_t minflt, majflt;
  uint64_t num_threads;
  uint64_t vsize; /* bytes */
  uint64_t rss;   /* pages (negative values read as 0) */
  int64_t ppid;
  char state; /* R, S, D, Z, ... */
  char comm[64];
  size_t comm_len;
} mw_proc_stat_t;

int mw_proc_read_stat(int dirfd, mw_proc_buf_t *scratch, mw_proc_stat_t *out);
int mw_proc_parse_stat(const char *buf, size_t len, mw_proc_stat_t *out);

/* /proc/<pid>/status: effective uid (-1 when absent), VmSwap in bytes (0 when
 * absent, as for kernel threads) and the context switch counters. */
typedef struct {
  int64_t euid;
  uint64_t vmswap_bytes;
  uint64_t ctx_voluntary;
  uint64_t ctx_nonvoluntary;
} mw_proc_status_t;

int mw_proc_read_status(int dirfd, mw_proc_buf_t *scratch, mw_proc_status_t *out);
/* Never fails: absent or malformed lines leave their defaults. */
int mw_proc_parse_status(const char *buf, size_t len, mw_proc_status_t *out);

/* /proc/<pid>/io: read_bytes and write_bytes (storage I/O). */
typedef struct {
  uint64_t read_bytes;
  uint64_t write_bytes;
} mw_proc_io_t;

int mw_proc_read_io(int dirfd, mw_proc_buf_t *scratch, mw_proc_io_t *out);
int mw_proc_parse_io(const char *buf, size_t len, mw_proc_io_t *out);

/* Number of entries in /proc/<pid>/fd into *out. procfs != 0 says dirfd is
 * on a real procfs (mw_proc_is_procfs): on Linux 6.2+ the count is then the
 * directory's size (after a permission check, so that the result is what
 * listing it gives), else the directory is listed. 0 or -1 with errno. */
int mw_proc_count_fds(int dirfd, int procfs, uint64_t *out);

/* 1 if fd is on a procfs mount (statfs magic), else 0. */
int mw_proc_is_procfs(int fd);

/* Soft limit of "Max open files" in /proc/<pid>/limits; "unlimited" reads
 * as UINT64_MAX (procfs's -1 seen as a uint64). */
int mw_proc_read_nofile_limit(int dirfd, mw_proc_buf_t *scratch, uint64_t *out);
int mw_proc_parse_nofile_limit(const char *buf, size_t len, uint64_t *out);

/* The same soft limit through prlimit(2) for a pid of our own pid namespace
 * (about 20 times cheaper than formatting and parsing the limits file);
 * falls back to the limits file when prlimit is refused (EPERM: another
 * user's process). pid 0: read the file. */
int mw_proc_nofile_limit(int dirfd, int64_t pid, mw_proc_buf_t *scratch, uint64_t *out);

/* /proc/<pid>/wchan into out (size bytes, NUL-terminated, truncated); "0"
 * (not waiting, or hidden from us) reads as "". */
int mw_proc_read_wchan(int dirfd, char *out, size_t size);

/* Pss and SwapPss in bytes from /proc/<pid>/smaps_rollup, or summed over
 * /proc/<pid>/smaps when there is no smaps_rollup (kernels before 4.14). */
typedef struct {
  uint64_t pss;
  uint64_t swap_pss;
} mw_proc_smaps_t;

int mw_proc_read_smaps(int dirfd, mw_proc_buf_t *scratch, mw_proc_smaps_t *out);
/* Sums every "Pss:" and "SwapPss:" line (one of each in smaps_rollup). */
void mw_proc_parse_smaps(const char *buf, size_t len, mw_proc_smaps_t *out);

/* /proc/<pid>/cmdline into out with trailing NULs removed: the arguments are
 * out->data[0..out->len) separated by NUL bytes (len 0: no arguments, as
 * for kernel threads and zombies). */
int mw_proc_read_cmdline(int dirfd, mw_proc_buf_t *out);
/* Drops the trailing NULs of buf[0..len) in place and returns the new length
 * (buf[len] must be writable). */
size_t mw_proc_parse_cmdline(char *buf, size_t len);

/* btime (seconds since the epoch) from the "btime" line of rootfd/stat. */
int mw_proc_read_btime(int rootfd, mw_proc_buf_t *scratch, uint64_t *out);
int mw_proc_parse_btime(const char *buf, size_t len, uint64_t *out);

/* 1 if errno value e means the process went away while we read it. */
int mw_proc_vanished(int e);

#endif
