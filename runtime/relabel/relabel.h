/* runtime/relabel/: Prometheus relabeling: rules compiled into a program (relabel.c) and a
 * program applied to whole batches with a per-series memo (cache.c).
 *
 * relabel/relabel.h: Prometheus relabeling (relabel_config) as a compiled C rule program.
 *
 * Semantics are those of prometheus/prometheus model/relabel: actions replace, keep,
 * drop, keepequal, dropequal, hashmod, labelmap, labeldrop, labelkeep, lowercase,
 * uppercase; regexes are RE2 syntax, fully anchored and dot-all (^(?s:REGEX)$),
 * matched with PCRE2 (JIT) after mw_re2_translate has checked and translated
 * them; replacements expand $1, ${1}, $name, ${name} and $$ as Go's Regexp.Expand.
 *
 * Usage: compile a rule list once (mw_relabel_compile), create one scratch per thread
 * (mw_relabel_scratch_new), then run any number of label sets through the program
 * with mw_relabel_apply; in steady state an application allocates nothing. A program
 * is immutable after compile and may be shared by threads, each with its own scratch.
 */
#ifndef MW_RELABEL_H
#define MW_RELABEL_H
#include <stddef.h>
#include <stdint.h>

#include "base/labels.h"
#include "model/batch.h"

/* ffi.cdef begin */
/* --- relabel ---------------------------------------------------------- */
/* Prometheus relabeling (runtime/relabel/relabel.h has the full contract). Build an array of
 * rules, compile it once, then apply the program to label sets with a scratch and read
 * the result back. Strings are (ptr, len); ptr == NULL means "not set" (default). */

typedef struct {
  const char *ptr;
  uint32_t len;
} mw_ffi_relabel_str_t;

typedef struct {
  const mw_ffi_relabel_str_t *source_labels; /* n_source_labels names */
  uint32_t n_source_labels;
  uint32_t name_validation;          /* 0 legacy [a-zA-Z_][a-zA-Z0-9_]*, 1 utf8 */
  mw_ffi_relabel_str_t separator;    /* default ";" */
  mw_ffi_relabel_str_t regex;        /* default "(.*)" (RE2 syntax) */
  mw_ffi_relabel_str_t replacement;  /* default "$1" */
  mw_ffi_relabel_str_t target_label; /* default "" */
  mw_ffi_relabel_str_t action;       /* default "replace" */
  uint64_t modulus;                  /* hashmod; 0 = not set */
} mw_ffi_relabel_rule_t;

/* One label (the layout of mw_label_t); strings are not NUL-terminated. */
typedef struct {
  const char *name;
  const char *value;
  uint32_t name_len;
  uint32_t value_len;
} mw_ffi_relabel_label_t;

typedef struct mw_relabel_program mw_ffi_relabel_program_t;
typedef struct mw_relabel_scratch mw_ffi_relabel_scratch_t;

/* Compiles the n rules into *out (free with mw_ffi_relabel_program_free). Rule bytes
 * are copied; the caller keeps them. 0 ok; -1 with *out NULL and err (err_size bytes)
 * naming the rule (1-based) and field. */
int mw_ffi_relabel_program_new(const mw_ffi_relabel_rule_t *rules, uint32_t n,
                               mw_ffi_relabel_program_t **out, char *err, size_t err_size);
/* Frees a program (NULL ok). */
void mw_ffi_relabel_program_free(mw_ffi_relabel_program_t *p);
/* A new scratch (NULL when out of memory); one per thread; free it with _free. */
mw_ffi_relabel_scratch_t *mw_ffi_relabel_scratch_new(void);
void mw_ffi_relabel_scratch_free(mw_ffi_relabel_scratch_t *s);
/* Applies p to the n labels (sorted by name preferred; unsorted is sorted first).
 * Returns 1 kept, 0 dropped, -1 out of memory. The caller keeps labels' bytes alive
 * while it reads the result. */
int mw_ffi_relabel_apply(const mw_ffi_relabel_program_t *p, mw_ffi_relabel_scratch_t *s,
                         const mw_ffi_relabel_label_t *labels, uint32_t n);
/* The labels of the last mw_ffi_relabel_apply on s, sorted by name (none after a
 * drop): returns their count and stores the array in *labels. Owned by s, valid until
 * the next apply/free on s. */
uint32_t mw_ffi_relabel_result(const mw_ffi_relabel_scratch_t *s,
                               const mw_ffi_relabel_label_t **labels);

/* A relabel program applied to whole batches with a cache of results per
 * input series, a memo per source series table (runtime/relabel/cache.c). The output batch belongs
 * to the cache and is valid until its next apply or reset. */
typedef struct mw_relabel_cache mw_relabel_cache_t;
typedef struct {
  uint64_t hits, misses, processed, written, flushes;
} mw_relabel_stats_t;

/* A cache of at most max_size input series (0: 100000); NULL on OOM. */
mw_relabel_cache_t *mw_ffi_relabel_cache_new(uint32_t max_size);
void mw_ffi_relabel_cache_free(mw_relabel_cache_t *c);
/* Sets the program (kept by the caller while in use; NULL: misses are left to
 * the caller, see _misses/_put) and empties the cache. 0, -1 on OOM. */
int mw_ffi_relabel_cache_reset(mw_relabel_cache_t *c, const mw_ffi_relabel_program_t *p);
/* Relabels every sample of in into the output batch, adding to *st: its float
 * samples (with their exemplars) and its histogram samples (native histograms, through
 * the same cache: processed/written count both). Without a program, samples of
 * uncached series are left out and listed by _misses. 0, or -1 with err on OOM. */
int mw_ffi_relabel_cache_apply(mw_relabel_cache_t *c, const mw_batch_t *in, mw_relabel_stats_t *st,
                               char *err, size_t errlen);
mw_batch_t *mw_ffi_relabel_cache_batch(mw_relabel_cache_t *c);
/* Indices in the last input batch of the samples left out as misses: float sample i,
 * or at and above the batch's float sample count n, histogram sample i - n (as
 * mw_ffi_batch_labels numbers them). */
size_t mw_ffi_relabel_cache_misses(const mw_relabel_cache_t *c, const uint32_t **idx);
/* Caches the result for sample i of the last input batch (a miss left to the
 * caller): out, the encoded label set, or with out_len 0, dropped. Call before
 * the input batch goes. 0, or -1 with err (invalid label name, OOM). */
int mw_ffi_relabel_cache_put(mw_relabel_cache_t *c, uint32_t i, const uint8_t *out, size_t out_len,
                             char *err, size_t errlen);
/* Results the cache holds: those computed since it was last emptied, also
 * those replaced since (their output series stay until the cache is emptied). */
size_t mw_ffi_relabel_cache_len(const mw_relabel_cache_t *c);
/* Output series the cache holds (at most _len). */
size_t mw_ffi_relabel_cache_outputs(const mw_relabel_cache_t *c);
/* ffi.cdef end */

/* The rule description (declared in the FFI block above so Lua builds the same struct):
 * mw_relabel_str_t: ptr == NULL means "field not set" (default applies); a set
 * field may be empty (ptr != NULL, len 0), e.g. an explicit separator "".
 * mw_relabel_rule_t fields and defaults:
 *   source_labels/n_source_labels  names whose values are joined (default none)
 *   separator    default ";"       regex         default "(.*)"
 *   replacement  default "$1"      target_label  default ""
 *   action       default "replace" (case-insensitive, as Prometheus's YAML)
 *   modulus      hashmod only, 0 = unset
 *   name_validation  MW_RELABEL_NAMES_LEGACY (0): label names are
 *                [a-zA-Z_][a-zA-Z0-9_]*; MW_RELABEL_NAMES_UTF8 (1): any non-empty
 *                valid UTF-8 (Prometheus 3's utf8 scheme). */
typedef mw_ffi_relabel_str_t mw_relabel_str_t;
typedef mw_ffi_relabel_rule_t mw_relabel_rule_t;
typedef struct mw_relabel_program mw_relabel_program_t;
typedef struct mw_relabel_scratch mw_relabel_scratch_t;

enum { MW_RELABEL_NAMES_LEGACY = 0, MW_RELABEL_NAMES_UTF8 = 1 };

/* Compiles n rules into a program, validating each as Prometheus's Config.Validate
 * does and compiling its regex. The rules' bytes are copied: the caller keeps
 * ownership of rules and may free them after the call. On success *out is a new
 * program (free with mw_relabel_program_free) and 0 is returned. On failure -1 is
 * returned, *out is NULL and err (err_size bytes, may be NULL/0) holds a message
 * naming the rule (1-based) and the field, e.g.
 *   rule 2: modulus: relabel configuration for hashmod requires non-zero modulus
 *   rule 1: regex: lookahead (?= is not supported (RE2 syntax) (at offset 3)
 * n == 0 is valid (a program that keeps everything unchanged). */
int mw_relabel_compile(const mw_relabel_rule_t *rules, size_t n, mw_relabel_program_t **out,
                       char *err, size_t err_size);

/* Frees a program (NULL is fine). No scratch needs to be freed first. */
void mw_relabel_program_free(mw_relabel_program_t *p);

/* Number of rules in p. */
size_t mw_relabel_program_rules(const mw_relabel_program_t *p);

/* A new, empty scratch; NULL when out of memory. One scratch serves any program but
 * only one thread at a time; it grows to the largest label set seen and keeps its
 * memory. Free with mw_relabel_scratch_free. */
mw_relabel_scratch_t *mw_relabel_scratch_new(void);

/* Frees a scratch (NULL is fine); result labels from it become invalid. */
void mw_relabel_scratch_free(mw_relabel_scratch_t *s);

/* Applies program p to the label set in[0..n) using scratch s.
 * Input: names should be sorted bytewise and unique (the series table form). An
 * unsorted input is accepted and sorted into the scratch first (the caller's array is
 * never modified); with duplicate names the result is unspecified (but memory-safe).
 * A label with an empty value counts as absent for lookups, as in Prometheus.
 * Returns 1 if the set is kept, 0 if a rule dropped it, -1 if memory ran out (errno
 * ENOMEM; the scratch stays usable). When kept, *out and *out_n (either may be NULL) are
 * the resulting label set, sorted by name, unique. The array belongs to s and is valid
 * until the next apply or free on s; its strings point into in's bytes (keep them
 * alive as long as the result is used), the program's strings (keep p alive) or s. */
int mw_relabel_apply(const mw_relabel_program_t *p, mw_relabel_scratch_t *s, const mw_label_t *in,
                     size_t n, const mw_label_t **out, size_t *out_n);

/* The result of the last apply on s (what mw_relabel_apply returned in *out and *out_n;
 * 0 labels after a drop or error); n_out may be NULL. Same lifetime rules. */
const mw_label_t *mw_relabel_scratch_labels(const mw_relabel_scratch_t *s, size_t *n_out);

#endif
