/* runtime/pyroscope/: Pyroscope's push API (push.v1.PusherService/Push, protobuf bodies of
 * grafana/pyroscope's push.proto and types.proto, kept in proto/ and compiled with protoc-c):
 * the PushRequest encoder pyroscope.write sends with, and the decoder the suite's receiver and
 * the fuzz target use. It knows nothing of Lua.
 *
 * pyroscope/push.h: encoding and decoding PushRequest. Labels travel as packed pairs: name NUL
 * value NUL, one after the other. */
#ifndef MW_PYROSCOPE_PUSH_H
#define MW_PYROSCOPE_PUSH_H
#include <stddef.h>
#include <stdint.h>

/* ffi.cdef begin */
/* --- Pyroscope push (runtime/pyroscope/push.h) ------------------------- */

typedef struct mw_pyroenc mw_pyroenc_t;
/* A new encoder (NULL on OOM); one request at a time, reused after finish. */
mw_pyroenc_t *mw_ffi_pyroenc_new(void);
void mw_ffi_pyroenc_free(mw_pyroenc_t *e);
/* Adds a series: nlabels packed pairs (name NUL value NUL ...) and one sample, the raw profile
 * (copied) with id (may be ""). 0, -1 on OOM. */
int mw_ffi_pyroenc_series(mw_pyroenc_t *e, const char *labels, size_t nlabels, const uint8_t *raw,
                          size_t rawlen, const char *id);
size_t mw_ffi_pyroenc_count(const mw_pyroenc_t *e);
/* The PushRequest of the series added since the last finish (then forgotten); *out owned by e,
 * valid until the next finish. 0, -1 with err. */
int mw_ffi_pyroenc_finish(mw_pyroenc_t *e, const uint8_t **out, size_t *len, char *err,
                          size_t errlen);

typedef struct mw_pyrodec mw_pyrodec_t;
/* Decodes and checks a PushRequest as Pyroscope's distributor does: every series has labels
 * with non-empty, valid names ([a-zA-Z_][a-zA-Z0-9_]*), no name twice, and at least one
 * sample; every sample has a non-empty profile. 0, or -1 with err (the receiver's 400). */
int mw_ffi_pyrodec_new(const uint8_t *body, size_t len, mw_pyrodec_t **out, char *err,
                       size_t errlen);
void mw_ffi_pyrodec_free(mw_pyrodec_t *d);
size_t mw_ffi_pyrodec_series(const mw_pyrodec_t *d);
/* Series i: its label count and sample count. 0, -1 out of range. */
int mw_ffi_pyrodec_info(const mw_pyrodec_t *d, size_t i, size_t *nlabels, size_t *nsamples);
/* Label j of series i. 0, -1 out of range. */
int mw_ffi_pyrodec_label(const mw_pyrodec_t *d, size_t i, size_t j, const char **name,
                         const char **value);
/* Sample k of series i: the raw profile and its id. 0, -1 out of range. */
int mw_ffi_pyrodec_sample(const mw_pyrodec_t *d, size_t i, size_t k, const uint8_t **raw,
                          size_t *rawlen, const char **id);
/* ffi.cdef end */

#endif
