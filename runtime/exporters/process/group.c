/* exporters/process/group.c: process-exporter's tracker and grouper (see
 * exporters/process/group.h): the tracker's life (create, collect, free) and its FFI.
 * A collection reads procfs and updates the entries (track.c, running the matchers of
 * match.c on new processes), aggregates them into groups (track.c) and writes the
 * namedprocess_* metrics (expose.c); their shared state is exporters/process/tracker.h. */
#include "exporters/process/group.h"
#include "base/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exporters/process/tracker.h"

static double wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- public ---------------------------------------------------------------- */

void mw_procgroup_free(mw_procgroup_t *t) {
  if (!t) return;
  for (size_t i = 0; i < t->nm; i++)
    mw_procgroup_matcher_clear(&t->m[i]);
  free(t->m);
  for (size_t i = 0; i < t->nents; i++)
    mw_procgroup_pent_free(t->ents[i]);
  free(t->ents);
  for (size_t i = 0; i < t->ngroups; i++)
    mw_procgroup_group_free(t->groups[i]);
  free(t->groups);
  for (size_t i = 0; i < t->nusers; i++)
    free(t->users[i].name);
  free(t->users);
  free(t->caps);
  mw_proc_buf_free(&t->scratch);
  mw_proc_buf_free(&t->argv);
  mw_proc_buf_free(&t->joined);
  mw_proc_buf_free(&t->name);
  mw_proc_buf_free(&t->aux);
  if (t->rootfd >= 0) close(t->rootfd);
  free(t->root);
  free(t);
}

int mw_procgroup_collect(mw_procgroup_t *t, int format, mw_expose_buf_t *buf, char *err,
                         size_t errlen) {
  if (!t || !buf) {
    mw_seterr(err, errlen, "procgroup: no tracker or buffer");
    return -1;
  }
  int ok = mw_procgroup_update(t) == 0;
  if (!ok && !t->oom) t->scrape_errors++;
  if (ok) mw_procgroup_aggregate(t);
  if (t->oom) {
    t->oom = 0;
    mw_seterr(err, errlen, "procgroup: out of memory");
    return -1;
  }
  return mw_procgroup_write(t, ok, format, buf, err, errlen);
}

size_t mw_procgroup_tracked(const mw_procgroup_t *t) {
  size_t n = 0;
  for (size_t i = 0; t && i < t->nents; i++)
    n += t->ents[i]->state == P_TRACKED;
  return n;
}

int mw_procgroup_create(const mw_procgroup_opts_t *opts, const mw_procgroup_matcher_t *matchers,
                        size_t n, mw_procgroup_t **out, char *err, size_t errlen) {
  mw_procgroup_t *t = NULL;
  mw_expose_buf_t first = {0};
  *out = NULL;
  if (!opts || (n && !matchers)) {
    mw_seterr(err, errlen, "procgroup: no options or matchers");
    return -1;
  }
  t = calloc(1, sizeof *t);
  if (!t) goto oom;
  t->rootfd = -1;
  t->root = strdup(opts->procfs_path && opts->procfs_path[0] ? opts->procfs_path : "/proc");
  if (!t->root) goto oom;
  t->track_children = opts->track_children != 0;
  t->track_threads = opts->track_threads != 0;
  t->gather_smaps = opts->gather_smaps != 0;
  t->recheck = opts->recheck_on_scrape != 0;
  t->remove_empty = opts->remove_empty_groups != 0;
  t->m = calloc(n ? n : 1, sizeof *t->m);
  if (!t->m) goto oom;
  for (size_t i = 0; i < n; i++) {
    t->nm = i + 1;
    if (mw_procgroup_matcher_init(&t->m[i], &matchers[i], i + 1, err, errlen) < 0) goto fail;
  }
  t->rootfd = open(t->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (t->rootfd < 0 || mw_proc_read_btime(t->rootfd, &t->scratch, &t->btime) < 0) {
    mw_seterr(err, errlen, "%s: %s", t->root, strerror(errno));
    goto fail;
  }
  t->first_update = wall_now();
  if (mw_procgroup_collect(t, MW_EXPOSE_TEXT, &first, err, errlen) < 0) goto fail;
  mw_expose_buf_free(&first);
  *out = t;
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
fail:
  mw_expose_buf_free(&first);
  mw_procgroup_free(t);
  return -1;
}

/* --- FFI ------------------------------------------------------------------- */

int mw_ffi_procgroup_new(const mw_ffi_procgroup_opts_t *opts,
                         const mw_ffi_procgroup_matcher_t *matchers, uint32_t n,
                         mw_procgroup_t **out, char *err, size_t errlen) {
  return mw_procgroup_create(opts, matchers, n, out, err, errlen);
}

void mw_ffi_procgroup_free(mw_procgroup_t *t) { mw_procgroup_free(t); }

int mw_ffi_procgroup_template_check(const char *tpl, char *err, size_t errlen) {
  seg_t *segs = NULL;
  size_t n = 0;
  if (mw_procgroup_template_parse(tpl ? tpl : "", &segs, &n, err, errlen) < 0) return -1;
  mw_procgroup_segs_free(segs, n);
  return 0;
}

int mw_ffi_procgroup_collect(mw_procgroup_t *t, int format, int gzip, char **out, size_t *len,
                             char *err, size_t errlen) {
  mw_expose_buf_t text = {0};
  if (!out || !len) {
    mw_seterr(err, errlen, "procgroup: no output pointers");
    return -1;
  }
  *out = NULL;
  *len = 0;
  if (mw_procgroup_collect(t, format, &text, err, errlen) < 0) {
    mw_expose_buf_free(&text);
    return -1;
  }
  return mw_expose_finish(&text, gzip, out, len, err, errlen);
}
