/* base/regex.c: compiled RE2-syntax regexes matched against byte strings, with
 * their capture groups and group names, for Lua over the FFI (loki.process's
 * regex, drop and match stages). Owns the pcre2 code, its match data and match
 * context; single-threaded (the Lua thread). Compiled by mw_re2_compile, so
 * the syntax and semantics are Go's as everywhere in the runtime. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/re2.h"
#include "base/regex.h"

struct mw_regex {
  pcre2_code *code;
  pcre2_match_data *md;
  pcre2_match_context *mctx;
  uint32_t ncap;
  char **names; /* ncap + 1 entries; names[i] NULL for an unnamed group */
};

/* Match limits: a pathological pattern on a long line stops as "no match". */
#define MW_REGEX_MATCH_LIMIT 10000000u
#define MW_REGEX_DEPTH_LIMIT 100000u

void mw_ffi_regex_free(mw_ffi_regex_t *r) {
  if (!r) return;
  if (r->names) {
    for (uint32_t i = 0; i <= r->ncap; i++)
      free(r->names[i]);
    free(r->names);
  }
  pcre2_match_data_free(r->md);
  pcre2_match_context_free(r->mctx);
  pcre2_code_free(r->code);
  free(r);
}

mw_ffi_regex_t *mw_ffi_regex_new(const char *re, size_t len, int anchored, char *err,
                                 size_t err_size) {
  int jit = 0;
  mw_ffi_regex_t *r = calloc(1, sizeof(*r));
  if (!r) {
    mw_seterr(err, err_size, "out of memory");
    return NULL;
  }
  r->code = mw_re2_compile(re, len, anchored, &jit, err, err_size);
  if (!r->code) goto fail;
  pcre2_pattern_info(r->code, PCRE2_INFO_CAPTURECOUNT, &r->ncap);
  r->md = pcre2_match_data_create_from_pattern(r->code, NULL);
  r->mctx = pcre2_match_context_create(NULL);
  r->names = calloc(r->ncap + 1, sizeof(char *));
  if (!r->md || !r->mctx || !r->names) {
    mw_seterr(err, err_size, "out of memory");
    goto fail;
  }
  pcre2_set_match_limit(r->mctx, MW_REGEX_MATCH_LIMIT);
  pcre2_set_depth_limit(r->mctx, MW_REGEX_DEPTH_LIMIT);
  uint32_t count = 0, size = 0;
  PCRE2_SPTR table = NULL;
  pcre2_pattern_info(r->code, PCRE2_INFO_NAMECOUNT, &count);
  pcre2_pattern_info(r->code, PCRE2_INFO_NAMEENTRYSIZE, &size);
  pcre2_pattern_info(r->code, PCRE2_INFO_NAMETABLE, &table);
  for (uint32_t i = 0; i < count; i++) {
    const unsigned char *e = table + (size_t)i * size;
    uint32_t g = ((uint32_t)e[0] << 8) | e[1];
    if (g > r->ncap || r->names[g]) continue;
    r->names[g] = strdup((const char *)e + 2);
    if (!r->names[g]) {
      mw_seterr(err, err_size, "out of memory");
      goto fail;
    }
  }
  return r;
fail:
  mw_ffi_regex_free(r);
  return NULL;
}

uint32_t mw_ffi_regex_groups(const mw_ffi_regex_t *r) { return r->ncap; }

const char *mw_ffi_regex_group_name(const mw_ffi_regex_t *r, uint32_t i) {
  return i <= r->ncap ? r->names[i] : NULL;
}

int mw_ffi_regex_match(mw_ffi_regex_t *r, const char *s, size_t len, size_t start, int64_t *ov) {
  if (start > len) return 0;
  int rc = pcre2_match(r->code, (PCRE2_SPTR)s, len, start, 0, r->md, r->mctx);
  if (rc < 0) return 0; /* no match, or a limit reached: no match */
  if (!ov) return 1;
  PCRE2_SIZE *v = pcre2_get_ovector_pointer(r->md);
  for (uint32_t i = 0; i <= r->ncap; i++) {
    if ((int)i >= rc || v[2 * i] == PCRE2_UNSET) {
      ov[2 * i] = ov[2 * i + 1] = -1;
    } else {
      ov[2 * i] = (int64_t)v[2 * i];
      ov[2 * i + 1] = (int64_t)v[2 * i + 1];
    }
  }
  return 1;
}
