/* logproc/jsonx.h: JSON value extraction for loki.process's json and docker stages: one
 * pass over a document finds the values of a few compiled paths (a.b[0].c) and checks that
 * the whole document is valid JSON, without building it (logproc/jsonx.c). */
#ifndef MW_JSONX_H
#define MW_JSONX_H
#include <stddef.h>
#include <stdint.h>

/* Nesting deeper than this is refused as malformed (as lua-cjson's default). */
#define MW_JSONX_MAX_DEPTH 1000
/* Paths of one extractor at most (a bit mask per nesting level tracks them). */
#define MW_JSONX_MAX_PATHS 64

/* ffi.cdef begin */
/* JSON value extraction (runtime/logproc/jsonx.c): paths of field names and array
 * indexes, compiled once; one pass over a document validates it whole and finds
 * each path's value (the last one when a key repeats, as a decoder's map keeps it). */
typedef struct mw_jsonx mw_ffi_jsonx_t;
typedef struct {
  const char *key; /* a field name (key_len bytes), or NULL for an array index */
  size_t key_len;
  int64_t index; /* the array index (0-based, >= 0) when key is NULL */
} mw_ffi_jsonx_step_t;
enum {
  MW_JSONX_MISSING = 0,
  MW_JSONX_STRING = 1,
  MW_JSONX_NUMBER = 2,
  MW_JSONX_TRUE = 3,
  MW_JSONX_FALSE = 4,
  MW_JSONX_NULL = 5,
  MW_JSONX_OBJECT = 6,
  MW_JSONX_ARRAY = 7
};
typedef struct {
  int32_t type;    /* MW_JSONX_* */
  int32_t escaped; /* a string with backslash escapes (mw_ffi_jsonx_unescape it) */
  int64_t start;   /* the value's bytes in the document: a string's inside its quotes */
  int64_t len;
} mw_ffi_jsonx_value_t;
/* Compiles npaths paths (at most MW_JSONX_MAX_PATHS): path i is path_len[i] steps
 * (at least 1), the paths' steps one after another in steps. Keys are copied. NULL
 * with err on a bad argument or out of memory. Free with mw_ffi_jsonx_free. */
mw_ffi_jsonx_t *mw_ffi_jsonx_new(const mw_ffi_jsonx_step_t *steps, const uint32_t *path_len,
                                 uint32_t npaths, char *err, size_t err_size);
void mw_ffi_jsonx_free(mw_ffi_jsonx_t *x);
/* Reads doc[0..len): 0 when it is one JSON object (or null) with only white space
 * around it, out[0..npaths) then giving each path's value (MISSING when absent);
 * -1 when it is not valid JSON, not an object, or nested deeper than
 * MW_JSONX_MAX_DEPTH (out then undefined). */
int mw_ffi_jsonx_run(const mw_ffi_jsonx_t *x, const char *doc, size_t len,
                     mw_ffi_jsonx_value_t *out);
/* Writes the bytes a JSON string body s[0..len) (escapes included, as _run gives it)
 * stands for into buf (len bytes suffice), \uXXXX as UTF-8 (a lone surrogate as
 * U+FFFD, as Go's decoder). Returns their length, or -1 on a bad escape. */
int64_t mw_ffi_jsonx_unescape(const char *s, size_t len, char *buf);
/* ffi.cdef end */

#endif
