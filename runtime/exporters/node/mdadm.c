/* exporters/node/mdadm.c: the mdadm collector (node_exporter 1.5
 * collector/mdadm_linux.go over procfs 0.8's mdstat.go): per md device of
 * <procfs>/mdstat, node_md_state{device, state} (active, inactive,
 * recovering, resync, check: 1 for the device's state), node_md_disks{device,
 * state} (active, failed, spare), node_md_disks_required, node_md_blocks and
 * node_md_blocks_synced. No mdstat is "no data"; a device whose lines do not
 * parse fails the collector before anything is reported.
 *
 * procfs's regular expressions are matched by hand here, with the same
 * leftmost-first, greedy results:
 *   status line  (\d+) blocks .*\[(\d+)/(\d+)\] \[([U_]+)\]
 *   sync line    \((\d+)/\d+\)   = (.+)%   finish=(.+)min   speed=(.+)[A-Z] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "exporters/node/node.h"

/* A line: [p, p + n). */
typedef struct {
  const char *p;
  size_t n;
} span_t;

static int isdig(char c) { return c >= '0' && c <= '9'; }

static int has(span_t l, const char *needle) {
  size_t k = strlen(needle);
  for (size_t i = 0; i + k <= l.n; i++)
    if (memcmp(l.p + i, needle, k) == 0) return 1;
  return 0;
}

static size_t count(span_t l, const char *needle) {
  size_t k = strlen(needle), c = 0;
  for (size_t i = 0; i + k <= l.n;)
    if (memcmp(l.p + i, needle, k) == 0) {
      c++;
      i += k;
    } else {
      i++;
    }
  return c;
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* strconv.ParseInt(s, 10, 64) of a span. */
static int parse_i64(const char *p, size_t n, int64_t *out) {
  char tmp[32];
  if (n == 0 || n >= sizeof tmp) return -1;
  memcpy(tmp, p, n);
  tmp[n] = '\0';
  int neg = tmp[0] == '-', sign = neg || tmp[0] == '+';
  uint64_t u;
  if (mw_node_parse_u64(tmp + sign, 10, &u) < 0 || u > (uint64_t)INT64_MAX + (uint64_t)neg)
    return -1;
  *out = neg ? (int64_t)(0 - u) : (int64_t)u;
  return 0;
}

/* strconv.ParseFloat of a span. */
static int parse_f64(const char *p, size_t n, double *out) {
  char tmp[64];
  if (n == 0 || n >= sizeof tmp || is_space(p[0])) return -1;
  memcpy(tmp, p, n);
  tmp[n] = '\0';
  return mw_node_parse_f64(tmp, out);
}

/* The first whitespace-separated field of l. */
static span_t first_field(span_t l) {
  size_t i = 0;
  while (i < l.n && is_space(l.p[i]))
    i++;
  size_t j = i;
  while (j < l.n && !is_space(l.p[j]))
    j++;
  return (span_t){l.p + i, j - i};
}

/* (\d+) blocks .*\[(\d+)/(\d+)\] \[([U_]+)\]: 0 with total, active and the
 * [U_] span, or -1. */
static int status_match(span_t l, span_t *total, span_t *active, span_t *bits) {
  /* the leftmost digit run followed by " blocks " */
  size_t i = 0, after = 0;
  int found = 0;
  while (i < l.n && !found) {
    if (!isdig(l.p[i])) {
      i++;
      continue;
    }
    size_t j = i;
    while (j < l.n && isdig(l.p[j]))
      j++;
    if (l.n - j >= 8 && memcmp(l.p + j, " blocks ", 8) == 0) {
      found = 1;
      after = j + 8;
    }
    i = j;
  }
  if (!found) return -1;
  /* .* greedy: the rightmost place where the bracket part matches */
  for (size_t q = l.n; q-- > after;) {
    if (l.p[q] != '[') continue;
    size_t k = q + 1, a = k;
    while (k < l.n && isdig(l.p[k]))
      k++;
    if (k == a || k >= l.n || l.p[k] != '/') continue;
    size_t b = ++k;
    while (k < l.n && isdig(l.p[k]))
      k++;
    if (k == b || l.n - k < 3 || memcmp(l.p + k, "] [", 3) != 0) continue;
    size_t c = k + 3;
    k = c;
    while (k < l.n && (l.p[k] == 'U' || l.p[k] == '_'))
      k++;
    if (k == c || k >= l.n || l.p[k] != ']') continue;
    *total = (span_t){l.p + a, b - 1 - a};
    *active = (span_t){l.p + b, c - 3 - b};
    *bits = (span_t){l.p + c, k - c};
    return 0;
  }
  return -1;
}

/* The span between the first occurrence of open and the last occurrence of
 * close after it, at least one byte: open(.+)close. -1 if none. */
static int greedy_between(span_t l, const char *open, int (*is_close)(const char *, size_t),
                          size_t close_len, span_t *out) {
  size_t ol = strlen(open), i = 0;
  while (i + ol <= l.n && memcmp(l.p + i, open, ol) != 0)
    i++;
  if (i + ol > l.n) return -1;
  size_t start = i + ol;
  for (size_t e = l.n; e >= start + 1 + close_len; e--) {
    size_t c = e - close_len;
    if (c >= start + 1 && is_close(l.p + c, close_len)) {
      *out = (span_t){l.p + start, c - start};
      return 0;
    }
  }
  return -1;
}

static int close_pct(const char *p, size_t n) { return n == 1 && *p == '%'; }
static int close_min(const char *p, size_t n) { return n == 3 && memcmp(p, "min", 3) == 0; }
static int close_upper(const char *p, size_t n) { return n == 1 && *p >= 'A' && *p <= 'Z'; }

/* evalRecoveryLine: the synced blocks; the percentage, finish time and
 * speed must parse too. 0 or -1 (err). */
static int recovery_line(span_t l, int64_t *synced, char *err, size_t errlen) {
  /* \((\d+)/\d+\) */
  size_t i = 0;
  int ok = 0;
  for (; i < l.n && !ok; i++) {
    if (l.p[i] != '(') continue;
    size_t k = i + 1, a = k;
    while (k < l.n && isdig(l.p[k]))
      k++;
    if (k == a || k >= l.n || l.p[k] != '/') continue;
    size_t b = ++k;
    while (k < l.n && isdig(l.p[k]))
      k++;
    if (k == b || k >= l.n || l.p[k] != ')') continue;
    if (parse_i64(l.p + a, b - 1 - a, synced) < 0) {
      mw_seterr(err, errlen, "error parsing int from recoveryLine %.*s", (int)l.n, l.p);
      return -1;
    }
    ok = 1;
  }
  if (!ok) {
    mw_seterr(err, errlen, "unexpected recoveryLine: %.*s", (int)l.n, l.p);
    return -1;
  }
  span_t m;
  double v;
  if (greedy_between(l, "= ", close_pct, 1, &m) < 0) {
    mw_seterr(err, errlen, "unexpected recoveryLine matching percentage: %.*s", (int)l.n, l.p);
    return -1;
  }
  while (m.n && is_space(m.p[0])) /* strings.TrimSpace */
    m.p++, m.n--;
  while (m.n && is_space(m.p[m.n - 1]))
    m.n--;
  if (parse_f64(m.p, m.n, &v) < 0) {
    mw_seterr(err, errlen, "error parsing float from recoveryLine %.*s", (int)l.n, l.p);
    return -1;
  }
  if (greedy_between(l, "finish=", close_min, 3, &m) < 0 || parse_f64(m.p, m.n, &v) < 0) {
    mw_seterr(err, errlen, "unexpected recoveryLine matching est. finish time: %.*s", (int)l.n,
              l.p);
    return -1;
  }
  if (greedy_between(l, "speed=", close_upper, 1, &m) < 0 || parse_f64(m.p, m.n, &v) < 0) {
    mw_seterr(err, errlen, "unexpected recoveryLine matching speed: %.*s", (int)l.n, l.p);
    return -1;
  }
  return 0;
}

int mw_node_mdstat_parse(const char *data, size_t len, mw_node_md_t **out, size_t *nout, char *err,
                         size_t errlen) {
  span_t *lines = NULL;
  size_t nlines = 0, cap = 0, nmd = 0, mdcap = 0;
  mw_node_md_t *mds = NULL;
  *out = NULL;
  *nout = 0;
  /* strings.Split(data, "\n"): n newlines make n + 1 lines */
  for (size_t i = 0;;) {
    const char *nl = memchr(data + i, '\n', len - i);
    size_t e = nl ? (size_t)(nl - data) : len;
    if (nlines == cap) {
      size_t c = cap ? cap * 2 : 64;
      span_t *a = realloc(lines, c * sizeof *a);
      if (!a) goto oom;
      lines = a;
      cap = c;
    }
    lines[nlines++] = (span_t){data + i, e - i};
    if (!nl) break;
    i = e + 1;
  }
  for (size_t i = 0; i < nlines; i++) {
    span_t l = lines[i];
    size_t k = 0;
    while (k < l.n && is_space(l.p[k]))
      k++;
    if (k == l.n || l.p[0] == ' ' || (l.n >= 13 && memcmp(l.p, "Personalities", 13) == 0) ||
        (l.n >= 6 && memcmp(l.p, "unused", 6) == 0))
      continue;
    /* strings.Fields: name, ":", state */
    span_t f[3], rest = l;
    size_t nf = 0;
    while (nf < 3) {
      span_t t = first_field(rest);
      if (!t.n) break;
      f[nf++] = t;
      rest = (span_t){t.p + t.n, (size_t)(l.p + l.n - (t.p + t.n))};
    }
    if (nf < 3) {
      mw_seterr(err, errlen, "not enough fields in mdline (expected at least 3): %.*s", (int)l.n,
                l.p);
      goto fail;
    }
    if (nlines <= i + 3) {
      mw_seterr(err, errlen, "error parsing \"%.*s\": too few lines for md device", (int)f[0].n,
                f[0].p);
      goto fail;
    }
    mw_node_md_t md;
    memset(&md, 0, sizeof md);
    snprintf(md.name, sizeof md.name, "%.*s", (int)f[0].n, f[0].p);
    snprintf(md.state, sizeof md.state, "%.*s", (int)f[2].n, f[2].p);
    md.failed = (int64_t)count(l, "(F)");
    md.spare = (int64_t)count(l, "(S)");
    /* evalStatusLine */
    span_t status = lines[i + 1], size_f = first_field(status);
    if (!size_f.n) {
      mw_seterr(err, errlen, "error parsing md device lines: unexpected statusLine \"%.*s\"",
                (int)status.n, status.p);
      goto fail;
    }
    if (parse_i64(size_f.p, size_f.n, &md.blocks) < 0) {
      mw_seterr(err, errlen, "error parsing md device lines: unexpected statusLine \"%.*s\"",
                (int)status.n, status.p);
      goto fail;
    }
    if (has(l, "raid0") || has(l, "linear")) {
      md.total = md.active = (int64_t)count(l, "[");
    } else if (has(l, "inactive")) {
      md.total = md.active = 0;
    } else {
      span_t t, a, bits;
      if (status_match(status, &t, &a, &bits) < 0) {
        mw_seterr(err, errlen,
                  "error parsing md device lines: couldn't find all the substring matches: %.*s",
                  (int)status.n, status.p);
        goto fail;
      }
      if (parse_i64(t.p, t.n, &md.total) < 0 || parse_i64(a.p, a.n, &md.active) < 0) {
        mw_seterr(err, errlen, "error parsing md device lines: unexpected statusLine \"%.*s\"",
                  (int)status.n, status.p);
        goto fail;
      }
    }
    size_t sync = i + 2;
    if (has(lines[i + 2], "bitmap")) sync++;
    span_t sl = lines[sync];
    md.synced = md.blocks;
    int recovering = has(sl, "recovery"), resyncing = has(sl, "resync"),
        checking = has(sl, "check");
    if (recovering || resyncing || checking) {
      snprintf(md.state, sizeof md.state, "%s",
               recovering ? "recovering"
               : checking ? "checking"
                          : "resyncing");
      if (has(sl, "PENDING") || has(sl, "DELAYED")) {
        md.synced = 0;
      } else {
        char msg[300];
        if (recovery_line(sl, &md.synced, msg, sizeof msg) < 0) {
          mw_seterr(err, errlen, "error parsing sync line in md device \"%s\": %s", md.name, msg);
          goto fail;
        }
      }
    }
    if (nmd == mdcap) {
      size_t c = mdcap ? mdcap * 2 : 8;
      mw_node_md_t *a = realloc(mds, c * sizeof *a);
      if (!a) goto oom;
      mds = a;
      mdcap = c;
    }
    mds[nmd++] = md;
  }
  free(lines);
  *out = mds;
  *nout = nmd;
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
fail:
  free(lines);
  free(mds);
  return -1;
}

int mw_node_collect_mdadm(mw_node_scrape_t *s) {
  const char *path = mw_node_proc_path(s, "mdstat");
  char shown[4096], msg[512];
  snprintf(shown, sizeof shown, "%s", path ? path : "mdstat");
  size_t len;
  const char *data = mw_node_read(s, path, &len);
  if (!data) {
    int e = errno;
    if (e == ENOENT) {
      s->nodata = 1;
      return mw_node_fail(s, "Not collecting mdstat, file does not exist");
    }
    return mw_node_fail(s, "error parsing mdstatus: open %s: %s", shown, strerror(e));
  }
  char *copy = malloc(len + 1);
  if (!copy) return mw_node_fail(s, "out of memory");
  memcpy(copy, data, len + 1);
  mw_node_md_t *mds;
  size_t n;
  int rc = mw_node_mdstat_parse(copy, len, &mds, &n, msg, sizeof msg);
  free(copy);
  if (rc < 0)
    return mw_node_fail(s, "error parsing mdstatus: error parsing mdstat \"%s\": %s", shown, msg);
  int32_t req = mw_node_family(s, "node_md_disks_required", "Total number of disks of device.",
                               MW_METRICS_GAUGE, "device");
  int32_t disks =
      mw_node_family(s, "node_md_disks", "Number of active/failed/spare disks of device.",
                     MW_METRICS_GAUGE, "device,state");
  int32_t state = mw_node_family(s, "node_md_state", "Indicates the state of md-device.",
                                 MW_METRICS_GAUGE, "device,state");
  int32_t blocks = mw_node_family(s, "node_md_blocks", "Total number of blocks on device.",
                                  MW_METRICS_GAUGE, "device");
  int32_t synced = mw_node_family(s, "node_md_blocks_synced", "Number of blocks synced on device.",
                                  MW_METRICS_GAUGE, "device");
  static const char *const states[][2] = {{"active", "active"},
                                          {"inactive", "inactive"},
                                          {"recovering", "recovering"},
                                          {"resync", "resyncing"},
                                          {"check", "checking"}};
  for (size_t i = 0; i < n; i++) {
    mw_node_md_t *m = &mds[i];
    mw_node_put(s, req, (double)m->total, m->name);
    mw_node_put(s, disks, (double)m->active, m->name, "active");
    mw_node_put(s, disks, (double)m->failed, m->name, "failed");
    mw_node_put(s, disks, (double)m->spare, m->name, "spare");
    for (size_t k = 0; k < 5; k++)
      mw_node_put(s, state, strcmp(m->state, states[k][1]) == 0 ? 1 : 0, m->name, states[k][0]);
    mw_node_put(s, blocks, (double)m->blocks, m->name);
    mw_node_put(s, synced, (double)m->synced, m->name);
  }
  free(mds);
  return 0;
}
