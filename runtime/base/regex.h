/* base/regex.h: compiled RE2-syntax regexes matched against byte strings, with their
 * capture groups and group names (base/regex.c), for Lua over the FFI: loki.process's
 * regex, replace, drop, match and multiline stages. */
#ifndef MW_REGEX_H
#define MW_REGEX_H
#include <stddef.h>
#include <stdint.h>

/* ffi.cdef begin */
typedef struct mw_regex mw_ffi_regex_t;
/* Compiles the RE2-syntax pattern re[0..len) (Go's syntax and semantics, as
 * mw_re2_compile); anchored: the whole subject must match. Returns the regex
 * (free with mw_ffi_regex_free) or NULL with a message in err. */
mw_ffi_regex_t *mw_ffi_regex_new(const char *re, size_t len, int anchored, char *err,
                                 size_t err_size);
void mw_ffi_regex_free(mw_ffi_regex_t *r);
/* The number of capture groups (group 0, the whole match, not counted). */
uint32_t mw_ffi_regex_groups(const mw_ffi_regex_t *r);
/* The name of group i (1 to groups), owned by r; NULL when unnamed. */
const char *mw_ffi_regex_group_name(const mw_ffi_regex_t *r, uint32_t i);
/* Searches s[0..len) from byte offset start (Go's leftmost-first match; ^ and
 * lookbehind still see the bytes before start). 1 on a match, 0 on none (a
 * pattern reaching the match limits does not match). When ov is not NULL it gets
 * 2 * (groups + 1) byte offsets: start and end of the match and of each group,
 * -1 for a group that did not take part. */
int mw_ffi_regex_match(mw_ffi_regex_t *r, const char *s, size_t len, size_t start, int64_t *ov);
/* ffi.cdef end */

#endif
