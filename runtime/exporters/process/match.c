/* exporters/process/match.c: which processes a matcher takes and what group they go to:
 * comm, exe and cmdline rules (cmdline: RE2 regexes on PCRE2, their captures), and the
 * name templates (Go text/template's subset that process-exporter's names use), rendered
 * for a new process. */
#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/re2.h"
#include "exporters/process/tracker.h"

static char *xstrndup(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

static void sb_puts(mw_procgroup_t *t, mw_proc_buf_t *b, const char *s) {
  sb_put(t, b, s, strlen(s));
}

/* Go's filepath.Base. */
static void go_base(const char *p, size_t n, const char **out, size_t *out_len) {
  if (n == 0) {
    *out = ".";
    *out_len = 1;
    return;
  }
  while (n > 0 && p[n - 1] == '/')
    n--;
  if (n == 0) {
    *out = "/";
    *out_len = 1;
    return;
  }
  size_t i = n;
  while (i > 0 && p[i - 1] != '/')
    i--;
  *out = p + i;
  *out_len = n - i;
}

/* --- templates ------------------------------------------------------------- */

void mw_procgroup_segs_free(seg_t *segs, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(segs[i].s);
  free(segs);
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int is_ident(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         (unsigned char)c >= 0x80;
}

/* Parses the subset of Go's text/template that names use: text, {{.Field}},
 * {{.Matches.KEY}}, {{/ * comments * /}} and the {{- -}} trim markers. */
int mw_procgroup_template_parse(const char *tpl, seg_t **out, size_t *nout, char *err,
                                size_t errlen) {
  static const struct {
    const char *name;
    int kind;
  } fields[] = {{"Comm", SEG_COMM},         {"ExeBase", SEG_EXEBASE}, {"ExeFull", SEG_EXEFULL},
                {"Username", SEG_USERNAME}, {"PID", SEG_PID},         {"StartTime", SEG_STARTTIME},
                {"Cgroups", SEG_CGROUPS},   {"Matches", SEG_MATCHES}};
  size_t n = strlen(tpl), cap = 8, ns = 0;
  seg_t *segs = calloc(cap, sizeof *segs);
  int trim_next = 0;
  if (!segs) goto oom;
  for (size_t i = 0; i <= n;) {
    const char *open = strstr(tpl + i, "{{");
    size_t end = open ? (size_t)(open - tpl) : n;
    size_t ts = i, te = end;
    if (trim_next)
      while (ts < te && is_space(tpl[ts]))
        ts++;
    int ltrim = open && open[2] == '-' && is_space(open[3]);
    if (ltrim)
      while (te > ts && is_space(tpl[te - 1]))
        te--;
    if (ns + 2 > cap) {
      seg_t *s = realloc(segs, 2 * cap * sizeof *segs);
      if (!s) goto oom;
      segs = s;
      cap *= 2;
    }
    if (te > ts) {
      segs[ns] = (seg_t){SEG_TEXT, xstrndup(tpl + ts, te - ts), te - ts};
      if (!segs[ns++].s) goto oom;
    }
    if (!open) break;
    const char *a = open + 2 + (ltrim ? 2 : 0);
    const char *close = strstr(a, "}}");
    if (!close) {
      mw_seterr(err, errlen, "name template \"%s\": unclosed action", tpl);
      goto fail;
    }
    const char *ae = close;
    trim_next = ae - a >= 2 && ae[-1] == '-' && is_space(ae[-2]);
    if (trim_next) ae -= 2;
    while (a < ae && is_space(*a))
      a++;
    while (ae > a && is_space(ae[-1]))
      ae--;
    i = (size_t)(close + 2 - tpl);
    if (ae - a >= 4 && a[0] == '/' && a[1] == '*' && ae[-1] == '/' && ae[-2] == '*') continue;
    int kind = -1;
    const char *key = NULL;
    size_t klen = 0;
    if (a < ae && *a == '.') {
      const char *f = a + 1, *fe = f;
      while (fe < ae && is_ident(*fe))
        fe++;
      for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
        if (strlen(fields[k].name) == (size_t)(fe - f) &&
            memcmp(fields[k].name, f, (size_t)(fe - f)) == 0)
          kind = fields[k].kind;
      if (kind == SEG_MATCHES && fe < ae && *fe == '.') {
        key = fe + 1;
        const char *ke = key;
        while (ke < ae && is_ident(*ke))
          ke++;
        klen = (size_t)(ke - key);
        kind = klen ? SEG_MATCH : -1;
        fe = ke;
      }
      if (fe != ae) kind = -1;
    }
    if (kind < 0) {
      mw_seterr(err, errlen,
                "name template \"%s\": unsupported action \"%.*s\" (use {{.Comm}}, {{.ExeBase}}, "
                "{{.ExeFull}}, {{.Username}}, {{.PID}}, {{.StartTime}}, {{.Cgroups}} or "
                "{{.Matches.NAME}})",
                tpl, (int)(close - open - 2), open + 2);
      goto fail;
    }
    segs[ns] = (seg_t){kind, key ? xstrndup(key, klen) : NULL, klen};
    if (key && !segs[ns].s) goto oom;
    ns++;
  }
  *out = segs;
  *nout = ns;
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
fail:
  mw_procgroup_segs_free(segs, ns);
  return -1;
}

/* --- matchers -------------------------------------------------------------- */

static void strs_free(char **v, size_t n) {
  if (!v) return;
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

void mw_procgroup_matcher_clear(matcher_t *m) {
  strs_free(m->comm, m->ncomm);
  strs_free(m->exe_base, m->nexe);
  strs_free(m->exe_full, m->nexe);
  for (size_t i = 0; i < m->nre; i++) {
    pcre2_match_data_free(m->re[i].md);
    pcre2_code_free(m->re[i].code);
    strs_free(m->re[i].names, m->re[i].code ? m->re[i].ncap + 1 : 0);
  }
  free(m->re);
  mw_procgroup_segs_free(m->segs, m->nsegs);
  memset(m, 0, sizeof *m);
}

static int regex_compile(mre_t *r, const char *src, char *err, size_t errlen) {
  int rc = -1;
  /* unanchored, as process-exporter's regexp.FindStringSubmatchIndex */
  r->code = mw_re2_compile(src, strlen(src), 0, NULL, err, errlen);
  if (!r->code) goto done;
  pcre2_pattern_info(r->code, PCRE2_INFO_CAPTURECOUNT, &r->ncap);
  r->md = pcre2_match_data_create_from_pattern(r->code, NULL);
  r->names = calloc(r->ncap + 1, sizeof *r->names);
  if (!r->md || !r->names) goto oom;
  uint32_t count = 0, size = 0;
  PCRE2_SPTR table = NULL;
  pcre2_pattern_info(r->code, PCRE2_INFO_NAMECOUNT, &count);
  pcre2_pattern_info(r->code, PCRE2_INFO_NAMEENTRYSIZE, &size);
  pcre2_pattern_info(r->code, PCRE2_INFO_NAMETABLE, &table);
  for (uint32_t i = 0; i < count; i++) {
    const unsigned char *e = table + (size_t)i * size;
    uint32_t g = ((uint32_t)e[0] << 8) | e[1];
    if (g <= r->ncap && !r->names[g]) {
      r->names[g] = strdup((const char *)e + 2);
      if (!r->names[g]) goto oom;
    }
  }
  for (uint32_t g = 0; g <= r->ncap; g++)
    if (!r->names[g] && !(r->names[g] = strdup(""))) goto oom;
  rc = 0;
  goto done;
oom:
  mw_seterr(err, errlen, "out of memory");
done:
  return rc;
}

static int strs_copy(char ***out, const char *const *in, size_t n) {
  *out = calloc(n ? n : 1, sizeof **out);
  if (!*out) return -1;
  for (size_t i = 0; i < n; i++)
    if (!((*out)[i] = strdup(in[i] ? in[i] : ""))) return -1;
  return 0;
}

int mw_procgroup_matcher_init(matcher_t *m, const mw_procgroup_matcher_t *src, size_t idx,
                              char *err, size_t errlen) {
  char sub[512];
  memset(m, 0, sizeof *m);
  m->has_comm = src->comm != NULL;
  m->has_exe = src->exe != NULL;
  m->has_cmdline = src->cmdline != NULL;
  if (!m->has_comm && !m->has_exe && !m->has_cmdline) {
    mw_seterr(err, errlen, "matcher %zu: no comm, exe or cmdline rule", idx);
    return -1;
  }
  if (m->has_comm) {
    m->ncomm = src->n_comm;
    if (strs_copy(&m->comm, src->comm, src->n_comm) < 0) goto oom;
  }
  if (m->has_exe) {
    m->nexe = src->n_exe;
    m->exe_base = calloc(src->n_exe ? src->n_exe : 1, sizeof *m->exe_base);
    m->exe_full = calloc(src->n_exe ? src->n_exe : 1, sizeof *m->exe_full);
    if (!m->exe_base || !m->exe_full) goto oom;
    for (size_t i = 0; i < src->n_exe; i++) {
      const char *e = src->exe[i] ? src->exe[i] : "", *b;
      size_t bl;
      go_base(e, strlen(e), &b, &bl);
      if (!(m->exe_base[i] = strchr(e, '/') ? xstrndup(b, bl) : strdup(e))) goto oom;
      if (strchr(e, '/') && !(m->exe_full[i] = strdup(e))) goto oom;
    }
  }
  if (m->has_cmdline) {
    m->re = calloc(src->n_cmdline ? src->n_cmdline : 1, sizeof *m->re);
    if (!m->re) goto oom;
    for (size_t i = 0; i < src->n_cmdline; i++) {
      m->nre = i + 1;
      if (regex_compile(&m->re[i], src->cmdline[i] ? src->cmdline[i] : "", sub, sizeof sub) < 0) {
        mw_seterr(err, errlen, "matcher %zu: cmdline %zu: %s", idx, i + 1, sub);
        return -1;
      }
    }
  }
  const char *tpl = src->name && src->name[0] ? src->name : "{{.ExeBase}}";
  if (mw_procgroup_template_parse(tpl, &m->segs, &m->nsegs, sub, sizeof sub) < 0) {
    mw_seterr(err, errlen, "matcher %zu: name: %s", idx, sub);
    return -1;
  }
  return 0;
oom:
  mw_seterr(err, errlen, "out of memory");
  return -1;
}

static void caps_set(mw_procgroup_t *t, const char *name, size_t off, size_t len) {
  for (size_t i = 0; i < t->ncaps; i++)
    if (strcmp(t->caps[i].name, name) == 0) {
      t->caps[i].off = off;
      t->caps[i].len = len;
      return;
    }
  if (mw_grow((void **)&t->caps, &t->cap_caps, t->ncaps + 1, sizeof *t->caps) < 0) {
    t->oom = 1;
    return;
  }
  t->caps[t->ncaps++] = (capture_t){name, off, len};
}

/* 1 if m matches c (captures land in t->caps over t->joined), else 0. */
int mw_procgroup_matcher_match(mw_procgroup_t *t, const matcher_t *m, const cand_t *c) {
  if (m->has_comm) {
    int found = 0;
    for (size_t i = 0; i < m->ncomm && !found; i++)
      found = strcmp(m->comm[i], c->st->comm) == 0;
    if (!found) return 0;
  }
  size_t a0len = strnlen(c->argv, c->argv_len);
  if (m->has_exe) {
    if (c->argv_len == 0) return 0;
    const char *b;
    size_t bl;
    go_base(c->argv, a0len, &b, &bl);
    ssize_t hit = -1; /* a later rule with the same basename replaces an earlier one */
    for (size_t i = 0; i < m->nexe; i++)
      if (strlen(m->exe_base[i]) == bl && memcmp(m->exe_base[i], b, bl) == 0) hit = (ssize_t)i;
    if (hit < 0) return 0;
    const char *full = m->exe_full[hit];
    if (full && !(strlen(full) == a0len && memcmp(full, c->argv, a0len) == 0)) return 0;
  }
  t->ncaps = 0;
  if (m->has_cmdline) {
    for (size_t i = 0; i < m->nre; i++) {
      const mre_t *r = &m->re[i];
      if (pcre2_match(r->code, (PCRE2_SPTR)t->joined.data, t->joined.len, 0, 0, r->md, NULL) < 0)
        return 0;
      PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
      for (uint32_t g = 0; g <= r->ncap; g++) {
        if (ov[2 * g] == PCRE2_UNSET)
          caps_set(t, r->names[g], 0, 0);
        else
          caps_set(t, r->names[g], ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
      }
    }
  }
  return 1;
}

static const char *username(mw_procgroup_t *t, int64_t uid, char *tmp, size_t tmplen) {
  for (size_t i = 0; i < t->nusers; i++)
    if (t->users[i].uid == uid) return t->users[i].name;
  struct passwd pw, *res = NULL;
  char buf[4096];
  const char *name;
  if (uid >= 0 && getpwuid_r((uid_t)uid, &pw, buf, sizeof buf, &res) == 0 && res)
    name = res->pw_name;
  else {
    snprintf(tmp, tmplen, "%" PRId64, uid);
    name = tmp;
  }
  user_t *u = realloc(t->users, (t->nusers + 1) * sizeof *u);
  if (!u) return name;
  t->users = u;
  char *copy = strdup(name);
  if (!copy) return name;
  t->users[t->nusers++] = (user_t){uid, copy};
  return copy;
}

static int cmp_cap(const void *a, const void *b) {
  return strcmp(((const capture_t *)a)->name, ((const capture_t *)b)->name);
}

/* Renders m's template for c into t->name. 0, or -1 (errno) when a file it
 * needs cannot be read. */
int mw_procgroup_render_name(mw_procgroup_t *t, const matcher_t *m, const cand_t *c) {
  mw_proc_buf_t *out = &t->name;
  char tmp[64];
  out->len = 0;
  sb_put(t, out, "", 0);
  size_t a0len = strnlen(c->argv, c->argv_len);
  for (size_t i = 0; i < m->nsegs; i++) {
    const seg_t *s = &m->segs[i];
    switch (s->kind) {
    case SEG_TEXT: sb_put(t, out, s->s, s->len); break;
    case SEG_COMM: sb_put(t, out, c->st->comm, c->st->comm_len); break;
    case SEG_EXEBASE:
    case SEG_EXEFULL:
      if (c->argv_len == 0) {
        sb_put(t, out, c->st->comm, c->st->comm_len);
      } else if (s->kind == SEG_EXEFULL) {
        sb_put(t, out, c->argv, a0len);
      } else {
        const char *b;
        size_t bl;
        go_base(c->argv, a0len, &b, &bl);
        sb_put(t, out, b, bl);
      }
      break;
    case SEG_USERNAME: {
      mw_proc_status_t status;
      if (mw_proc_read_status(c->dirfd, &t->aux, &status) < 0) return -1;
      sb_puts(t, out, username(t, status.euid, tmp, sizeof tmp));
      break;
    }
    case SEG_PID:
      snprintf(tmp, sizeof tmp, "%" PRId64, c->pid);
      sb_puts(t, out, tmp);
      break;
    case SEG_STARTTIME: { /* Go's time.Time.String() of a UTC time */
      time_t secs = (time_t)(t->btime + c->st->starttime / USER_HZ);
      unsigned frac = (unsigned)(c->st->starttime % USER_HZ);
      struct tm tm;
      /* a year past int's range (only a fake procfs gets there): no date */
      if (!gmtime_r(&secs, &tm)) memset(&tm, 0, sizeof tm);
      strftime(tmp, sizeof tmp, "%Y-%m-%d %H:%M:%S", &tm);
      sb_puts(t, out, tmp);
      if (frac) {
        snprintf(tmp, sizeof tmp, ".%02u", frac);
        if (tmp[2] == '0') tmp[2] = '\0';
        sb_puts(t, out, tmp);
      }
      sb_puts(t, out, " +0000 UTC");
      break;
    }
    case SEG_CGROUPS: { /* fmt's %v of a []string; unreadable or malformed: empty */
      size_t start = out->len;
      sb_put(t, out, "[", 1);
      int ok = mw_proc_read_file(c->dirfd, "cgroup", &t->aux) == 0;
      for (char *line = ok ? t->aux.data : NULL, *nl; line && *line && ok; line = nl) {
        nl = strchr(line, '\n');
        if (nl) *nl++ = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) {
          ok = 0;
          break;
        }
        if (out->len > start + 1) sb_put(t, out, " ", 1);
        sb_puts(t, out, c2 + 1);
      }
      if (!ok) out->len = start + 1;
      sb_put(t, out, "]", 1);
      break;
    }
    case SEG_MATCHES: /* fmt's %v of a map: sorted keys */
      if (t->ncaps) qsort(t->caps, t->ncaps, sizeof *t->caps, cmp_cap);
      sb_put(t, out, "map[", 4);
      for (size_t k = 0; k < t->ncaps; k++) {
        if (k) sb_put(t, out, " ", 1);
        sb_puts(t, out, t->caps[k].name);
        sb_put(t, out, ":", 1);
        sb_put(t, out, t->joined.data + t->caps[k].off, t->caps[k].len);
      }
      sb_put(t, out, "]", 1);
      break;
    case SEG_MATCH: {
      const capture_t *hit = NULL;
      for (size_t k = 0; k < t->ncaps; k++)
        if (strcmp(t->caps[k].name, s->s) == 0) hit = &t->caps[k];
      if (hit)
        sb_put(t, out, t->joined.data + hit->off, hit->len);
      else
        sb_puts(t, out, "<no value>"); /* text/template's missing map key */
      break;
    }
    }
  }
  return 0;
}
