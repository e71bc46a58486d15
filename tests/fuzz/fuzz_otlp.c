/* Fuzz target: OTLP traces (otlp/otlp.c, model/spanbatch.c). The first byte picks the mode:
 * 0, the rest is an ExportTraceServiceRequest for the checking decoder the suite's receivers use
 * (never a crash; what decodes gives text that ends as the decoder writes it); 1, the rest is cut
 * into spans (names, attributes, ids) put in a span batch, which the encoder must turn into a
 * request that decodes again with the same number of spans, and into OTLP/JSON. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/spanbatch.h"
#include "otlp/otlp.h"

static void roundtrip(const uint8_t *p, size_t n) {
  mw_spanbatch_t *b = mw_ffi_spanbatch_new();
  if (!b) abort();
  size_t want = 0;
  mw_ffi_spanbatch_resource(b, "service.name", 12, "moonwatch", 9);
  while (n >= 26) {
    uint8_t tid[16], sid[8];
    memcpy(tid, p, 16);
    memcpy(sid, p + 16, 8);
    tid[0] |= 1;
    sid[0] |= 1;
    size_t nlen = p[24] % 32, alen = p[25] % 32;
    p += 26;
    n -= 26;
    if (nlen + alen > n) break;
    int root = nlen & 1;
    if (mw_ffi_spanbatch_add(b, tid, sid, root ? NULL : sid, (const char *)p, nlen, (int)(alen % 6),
                             1, 2, (int)(nlen % 3), (const char *)p, nlen) != 0)
      abort();
    want++;
    mw_ffi_spanbatch_attr_str(b, (const char *)p, nlen, (const char *)p + nlen, alen);
    mw_ffi_spanbatch_attr_int(b, "i", 1, (int64_t)alen - 16);
    mw_ffi_spanbatch_attr_double(b, "d", 1, (double)nlen / 3);
    mw_ffi_spanbatch_attr_bool(b, "b", 1, (int)(alen & 1));
    p += nlen + alen;
    n -= nlen + alen;
  }
  uint8_t *out = NULL;
  size_t len = 0;
  char err[256], *text = NULL;
  size_t tlen = 0;
  if (mw_ffi_otlp_encode_traces(b, "moonwatch", "0", 0, &out, &len, err, sizeof err) != 0) abort();
  if (mw_ffi_otlp_decode_traces(out, len, &text, &tlen, err, sizeof err) != 0) abort();
  char tail[64];
  int k = snprintf(tail, sizeof tail, "],\"spans\":%zu}", want);
  if (tlen < (size_t)k || memcmp(text + tlen - (size_t)k, tail, (size_t)k) != 0) abort();
  mw_ffi_otlp_free(out);
  mw_ffi_otlp_free(text);
  if (mw_ffi_otlp_encode_traces(b, "moonwatch", "0", 1, &out, &len, err, sizeof err) != 0) abort();
  mw_ffi_otlp_free(out);
  mw_ffi_spanbatch_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  if (data[0] == 1) {
    roundtrip(data + 1, size - 1);
    return 0;
  }
  char *text = NULL, err[256];
  size_t tlen = 0;
  if (mw_ffi_otlp_decode_traces(data + 1, size - 1, &text, &tlen, err, sizeof err) == 0) {
    if (tlen < 10 || text[0] != '{' || text[tlen - 1] != '}') abort();
    mw_ffi_otlp_free(text);
  }
  return 0;
}
