/* tail/glob.h: doublestar globs for local.file_match, with the syntax of Go's
 * github.com/bmatcuk/doublestar that Alloy uses: `**` as a whole path component matches
 * zero or more directories, `*` any run of characters but `/`, `?` one character but `/`,
 * `[abc]`, `[a-z]`, `[!x]`/`[^x]` one character of a class, `{a,b}` alternatives (nested
 * too), `\` escapes the next character. Names starting with a dot are matched like any
 * other. Plain C (opendir, no shell); bounded in alternatives, depth and files. */
#ifndef MW_TAIL_GLOB_H
#define MW_TAIL_GLOB_H
#include <stddef.h>

/* Bounds: brace alternatives after expansion, directory depth walked under a `**`,
 * files one pattern may return. */
#define MW_GLOB_MAX_ALTERNATIVES 1024
#define MW_GLOB_MAX_DEPTH 64
#define MW_GLOB_MAX_FILES 100000

/* Whether path matches pattern: 1, 0, or -1 with err when the pattern is malformed
 * (an unclosed [ or {, a trailing \). */
int mw_glob_match(const char *pattern, const char *path, char *err, size_t errlen);

/* Checks the syntax of pattern: 0, or -1 with err. */
int mw_glob_check(const char *pattern, char *err, size_t errlen);

#endif
