/* runtime/exporters/process/: procfs readers for one process (proc.c), process-exporter's
 * tracker and grouper (prometheus.exporter.process: group.c, with match.c, track.c and
 * expose.c on the state in tracker.h) and the moonwatch process's own stats (self.c,
 * prometheus.exporter.self).
 *
 * exporters/process/group.h: ncabatoff/process-exporter (v0.7.10, plus 0.8's
 * remove_empty_groups) in C: a tracker that matches processes, names them
 * into groups, follows their children and accumulates their counters across
 * collections, and writes the namedprocess_* metrics.
 *
 * Semantics, as process-exporter's proc/tracker.go, proc/grouper.go and
 * config/config.go:
 *  - matchers: the first matcher whose present rules (comm, exe, cmdline) all
 *    match names the process with its template. comm: exact name from stat;
 *    exe: basename of argv[0], or the exact argv[0] when the rule has a slash;
 *    cmdline: RE2 regexes (checked and translated for PCRE2 by
 *    mw_re2_translate), each searched unanchored in the argv joined
 *    with spaces; their capture groups fill .Matches.
 *  - name cache: a process is named once, when first seen (by pid and start
 *    time), and keeps that name. An unmatched process is ignored for good when
 *    track_children is on (children of a matched process are attributed to
 *    its group instead), unless recheck_on_scrape asks to re-run the matchers
 *    at every collection.
 *  - counters (cpu, io, page faults, context switches) are accumulated per
 *    group from per-process increments, so they never decrease when
 *    processes exit; a process that existed before the first collection
 *    counts from then on, a process started later counts in full.
 *  - a group that loses its last process keeps reporting its counters (gauges
 *    0, oldest start time Go's zero time) unless remove_empty_groups.
 *
 * Not thread-safe: one tracker is used by one thread at a time. */
#ifndef MW_PROCGROUP_H
#define MW_PROCGROUP_H
#include <stddef.h>
#include <stdint.h>

#include "exposition/write.h"

/* ffi.cdef begin */
/* --- process exporter --- */
/* ncabatoff/process-exporter natively (runtime/exporters/process/group.h has the full
 * contract): processes matched by matchers are grouped by a name template and
 * exposed as namedprocess_namegroup_* metrics. A tracker keeps state between
 * collections (counters stay monotonic while processes exit), so create one
 * per component and collect from it at each scrape. */
typedef struct mw_procgroup mw_procgroup_t;

/* Options; 0 is false, anything else true. */
typedef struct {
  const char *procfs_path;     /* NULL or empty: "/proc" */
  int32_t track_children;      /* unmatched children count toward their matched ancestor */
  int32_t track_threads;       /* expose the namedprocess_namegroup_thread_* families */
  int32_t gather_smaps;        /* proportionalResident/proportionalSwapped from smaps_rollup */
  int32_t recheck_on_scrape;   /* re-run matchers on unmatched processes at every collection */
  int32_t remove_empty_groups; /* forget a group once it has no process */
} mw_ffi_procgroup_opts_t;

/* One matcher block. A list pointer NULL means the rule is absent; all
 * present rules must match. comm: exact names (stat's comm); exe: argv 0
 * basenames, or exact paths when they contain a slash; cmdline: RE2 regexes
 * searched in the space-joined argv (named captures feed .Matches). name: a
 * Go template over .Comm .ExeBase .ExeFull .Username .PID .StartTime
 * .Cgroups .Matches.NAME (NULL or empty: "{{.ExeBase}}"). */
typedef struct {
  const char *const *comm;
  uint32_t n_comm;
  const char *const *exe;
  uint32_t n_exe;
  const char *const *cmdline;
  uint32_t n_cmdline;
  const char *name;
} mw_ffi_procgroup_matcher_t;

/* Compiles the n matchers (first match wins), reads the boot time and does a
 * first collection, as process-exporter does at start, into *out (free with
 * mw_ffi_procgroup_free). 0, or -1 with *out NULL and a message in err
 * naming the matcher (1-based) and the field at fault. */
int mw_ffi_procgroup_new(const mw_ffi_procgroup_opts_t *opts,
                         const mw_ffi_procgroup_matcher_t *matchers, uint32_t n,
                         mw_procgroup_t **out, char *err, size_t errlen);
void mw_ffi_procgroup_free(mw_procgroup_t *t);
/* Checks a matcher's name template (NUL-terminated; empty: the default
 * "{{.ExeBase}}") as mw_ffi_procgroup_new parses it. 0, or -1 with a message in
 * err. Nothing is kept, no process is read. */
int mw_ffi_procgroup_template_check(const char *tpl, char *err, size_t errlen);
/* Collects and writes the exposition in format MW_METRICS_FMT_*, gzipped if
 * gzip != 0, into a new buffer *out, *len that the caller frees with
 * mw_ffi_metrics_buf_free. Unreadable or vanishing processes are counted
 * in namedprocess_scrape_* metrics, not failures. 0, or -1 with a message in
 * err (out of memory). */
int mw_ffi_procgroup_collect(mw_procgroup_t *t, int format, int gzip, char **out, size_t *len,
                             char *err, size_t errlen);
/* ffi.cdef end */

typedef mw_ffi_procgroup_opts_t mw_procgroup_opts_t;
typedef mw_ffi_procgroup_matcher_t mw_procgroup_matcher_t;

/* Compiles n matchers and creates a tracker over opts->procfs_path, then runs
 * a first collection (its output is discarded). Strings are copied. 0 with
 * *out set (free with mw_procgroup_free), or -1 with *out NULL and err naming
 * the problem, e.g. "matcher 2: cmdline 1: missing closing ) (at offset 3)",
 * "matcher 1: no comm, exe or cmdline rule", "/nonexistent: No such file or
 * directory". */
int mw_procgroup_create(const mw_procgroup_opts_t *opts, const mw_procgroup_matcher_t *matchers,
                        size_t n, mw_procgroup_t **out, char *err, size_t errlen);

/* Frees a tracker (NULL is fine). */
void mw_procgroup_free(mw_procgroup_t *t);

/* Reads procfs, updates the tracker and appends the exposition (format
 * MW_EXPOSE_*) to buf: the namedprocess_* families as client_golang writes
 * them (families by name, series by label values). A process that vanishes
 * mid-read is skipped; unreadable files are counted in
 * namedprocess_scrape_partial_errors / _procread_errors; an unreadable procfs
 * counts in namedprocess_scrape_errors and only those counters are written.
 * 0, or -1 with a message in err (out of memory; buf->len restored). */
int mw_procgroup_collect(mw_procgroup_t *t, int format, mw_expose_buf_t *buf, char *err,
                         size_t errlen);

/* Number of processes the tracker currently tracks (matched or attributed). */
size_t mw_procgroup_tracked(const mw_procgroup_t *t);

#endif
