/* base/re2.h: regexes with Go's RE2 syntax and semantics, matched by PCRE2.
 * Every RE2 regex of the runtime (relabel rules, the exporters' filters,
 * argument checks) is compiled here. */
#ifndef MW_RE2_H
#define MW_RE2_H
#include <stddef.h>
#include <stdint.h>

/* ffi.cdef begin */
/* --- regexes (base/re2.c) -------------------------------------------------- */

/* Checks that re[0..len) compiles as an RE2-syntax regex the way every regex of
 * the runtime is compiled (mw_re2_compile: Go's syntax and semantics). 0, or -1
 * with a message in err (err_size bytes) ending with "(at offset N)". Nothing is
 * kept. For validating arguments before anything runs. */
int mw_ffi_regex_check(const char *re, size_t len, char *err, size_t err_size);
/* ffi.cdef end */

/* Checks an RE2-syntax pattern re[0..len) and translates it into a PCRE2 pattern
 * with the same meaning (see base/re2.c for what is rejected and rewritten). The
 * result is not anchored: compile "^(?s:" out ")$" with PCRE2_UTF, PCRE2_DOLLAR_ENDONLY,
 * PCRE2_ALT_CIRCUMFLEX and newline LF. On success returns 0, *out is a NUL-terminated malloc'd
 * string (caller frees) and *out_len (may be NULL) its length. On failure returns -1,
 * *out is NULL and err holds a message ending with "(at offset N)". */
int mw_re2_translate(const char *re, size_t len, char **out, size_t *out_len, char *err,
                     size_t err_size);

/* pcre2_code (pcre2.h with PCRE2_CODE_UNIT_WIDTH 8), without including pcre2.h here. */
struct pcre2_real_code_8;

/* Compiles the RE2-syntax pattern re[0..len) with PCRE2 so it matches as Go's
 * regexp does: translated by mw_re2_translate, PCRE2_UTF,
 * PCRE2_MATCH_INVALID_UTF, $ only at the end, ^ only at the start, newline LF,
 * \C refused; JIT-compiled when the platform allows (*jit, may be NULL, says
 * so; the interpreter is the fallback). anchored: the whole subject must match,
 * as "^(?s:re)$" in Prometheus relabeling. Returns the code (the caller frees
 * it with pcre2_code_free) or NULL with err ("... (at|near offset N)",
 * offsets in re). Every RE2 regex of the runtime goes through here. */
struct pcre2_real_code_8 *mw_re2_compile(const char *re, size_t len, int anchored, int *jit,
                                         char *err, size_t errlen);

#endif
