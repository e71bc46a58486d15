/* runtime/loki/: Loki's push protocol: the PushRequest encoder loki.write sends with
 * (push.c), the decoder and validation the suite's receiver and the fuzz target use
 * (push.c, on push.proto compiled with protoc-c), and loki.write's endpoint reader over the
 * logs queue (reader.c). It knows nothing of Lua.
 *
 * loki/push.h: PushRequest encoding and decoding, and stream label strings as Loki writes
 * them ({a="b", c="d"}: names sorted, values quoted as Go's strconv.Quote). */
#ifndef MW_LOKI_PUSH_H
#define MW_LOKI_PUSH_H
#include <stddef.h>
#include <stdint.h>

#include "model/logbatch.h"

/* ffi.cdef begin */
/* --- Loki push decoding, label strings (runtime/loki/push.h) ---------- */

typedef struct mw_lokidec mw_lokidec_t;

/* Push decoding (the suite's receiver): see loki/push.h. */
int mw_ffi_lokidec_new(const uint8_t *body, size_t len, int compressed, mw_lokidec_t **out,
                       char *err, size_t errlen);
void mw_ffi_lokidec_free(mw_lokidec_t *d);
size_t mw_ffi_lokidec_streams(const mw_lokidec_t *d);
int mw_ffi_lokidec_stream(const mw_lokidec_t *d, size_t i, const char **labels, size_t *labels_len,
                          size_t *entries);
int mw_ffi_lokidec_entry(mw_lokidec_t *d, size_t i, size_t j, int64_t *ts_ns, const char **line,
                         size_t *line_len, const uint8_t **meta, size_t *meta_len);
/* Parses a stream label string into sorted pairs (duplicates kept) in a malloc'd *out (free
 * with mw_ffi_loki_free). 0; -1 with err (not a selector); -2 out of memory. */
int mw_ffi_loki_labels_parse(const char *s, size_t n, uint8_t **out, size_t *len, char *err,
                             size_t errlen);
/* The label string {a="b", c="d"} of encoded pairs, malloc'd (free with mw_ffi_loki_free). */
int mw_ffi_loki_labels_format(const uint8_t *enc, size_t n, char **out, size_t *len);
void mw_ffi_loki_free(void *p);
/* Snappy block compression of n bytes into a malloc'd *out (free with mw_ffi_loki_free), for
 * tests and tools that build push bodies by hand. 0, -1 on OOM. */
int mw_ffi_loki_snappy(const uint8_t *in, size_t n, char **out, size_t *out_len);
/* ffi.cdef end */

/* --- labels ---------------------------------------------------------- */

/* Appends the label string of the encoded label set enc (base/labels.h) to *buf (malloc'd,
 * *len bytes used of *cap): {a="b", c="d"}, values quoted as Go's strconv.Quote does
 * (\" \\ \n \t ..., other control bytes and invalid UTF-8 as \xHH). 0, -1 on OOM. */
int mw_loki_labels_format(const uint8_t *enc, size_t n, char **buf, size_t *len, size_t *cap);

/* Parses a stream's label string as Loki does (a selector of equality matchers,
 * {a="b", c="d"}; names [a-zA-Z_][a-zA-Z0-9_]*, values Go string literals, double-quoted
 * or `raw`) into name 0xFF value 0xFF pairs sorted by name, duplicates kept, appended to
 * *out (malloc'd, *len used of *cap). 0; -1 with err: not a selector (err says where);
 * -2: out of memory. */
int mw_loki_labels_parse(const char *s, size_t n, uint8_t **out, size_t *len, size_t *cap,
                         char *err, size_t errlen);

/* --- encoding -------------------------------------------------------- */

/* Collects entries into one PushRequest: streams in order of first entry, the entries of
 * each stream in the order added. Reused between requests (reset keeps the memory). */
typedef struct mw_lokienc mw_lokienc_t;

mw_lokienc_t *mw_lokienc_new(void);
void mw_lokienc_free(mw_lokienc_t *e);
/* Starts a new request: ext (encoded labels, may be NULL/0) is merged into every stream
 * (a stream's own label wins), max_streams (0: no limit) bounds the streams of the request. */
int mw_lokienc_reset(mw_lokienc_t *e, const uint8_t *ext, size_t extlen, uint32_t max_streams);
/* The request's stream index for encoded labels (after the merge with ext); >= 0, -1 on OOM,
 * -2 when the request has max_streams streams already. */
int64_t mw_lokienc_stream(mw_lokienc_t *e, const uint8_t *labels, size_t len);
/* Adds an entry to stream s (from mw_lokienc_stream). 0, -1 on OOM. */
int mw_lokienc_entry(mw_lokienc_t *e, uint32_t s, int64_t ts_ns, const char *line, size_t len,
                     const uint8_t *meta, size_t mlen);
size_t mw_lokienc_entries(const mw_lokienc_t *e);
size_t mw_lokienc_streams(const mw_lokienc_t *e);
/* The request: the PushRequest protobuf, snappy-compressed unless raw. *out owned by e,
 * valid until its next reset. 0, or -1 with err. */
int mw_lokienc_finish(mw_lokienc_t *e, int raw, const uint8_t **out, size_t *len, char *err,
                      size_t errlen);

/* The request as Loki's JSON push body, {"streams":[{"stream":{"a":"b"},"values":[["<ns>",
 * "<line>", {"<name>":"<value>"}]]}]} (for debugging: loki.write's encoding = "json"): the
 * protobuf request e finished (raw) rewritten; strings as Go's encoding/json writes them
 * (invalid UTF-8 as U+FFFD). *out owned by e, valid until its next reset. 0, -1 with err. */
int mw_lokienc_json(mw_lokienc_t *e, const uint8_t *pb, size_t len, const uint8_t **out,
                    size_t *outlen, char *err, size_t errlen);

/* --- decoding -------------------------------------------------------- */

typedef struct mw_lokidec mw_lokidec_t;
/* Decodes a push body: snappy-compressed (compressed != 0) or not, then the PushRequest.
 * 0, or -1 with err (Loki answers 400 with it). */
int mw_lokidec_new(const uint8_t *body, size_t len, int compressed, mw_lokidec_t **out, char *err,
                   size_t errlen);
void mw_lokidec_free(mw_lokidec_t *d);
size_t mw_lokidec_streams(const mw_lokidec_t *d);
/* Stream i: its label string and number of entries. 0, -1 out of range. */
int mw_lokidec_stream(const mw_lokidec_t *d, size_t i, const char **labels, size_t *labels_len,
                      size_t *entries);
/* Entry j of stream i: timestamp, line, structured metadata as name 0xFF value 0xFF pairs
 * (in the order sent; owned by d, valid until the next call). 0, -1 out of range. */
int mw_lokidec_entry(mw_lokidec_t *d, size_t i, size_t j, int64_t *ts_ns, const char **line,
                     size_t *line_len, const uint8_t **meta, size_t *meta_len);

#endif
