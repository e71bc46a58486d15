/* logproc/jsonx.h: JSON value extraction for loki.process's json stage: one pass over a
 * document finds the values of a few compiled paths (a.b[0].c) and checks that the whole
 * document is valid JSON, without building it. Its FFI surface (mw_ffi_jsonx_*) is in ffi.h. */
#ifndef MW_JSONX_H
#define MW_JSONX_H

/* Nesting deeper than this is refused as malformed (as lua-cjson's default). */
#define MW_JSONX_MAX_DEPTH 1000
/* Paths of one extractor at most (a bit mask per nesting level tracks them). */
#define MW_JSONX_MAX_PATHS 64

#endif
