/* otlp/otlp.h: OTLP for traces (opentelemetry-proto's trace and collector/trace protos,
 * runtime/otlp/opentelemetry/..., compiled with protoc-c): a span batch (model/spanbatch.h)
 * as an ExportTraceServiceRequest in protobuf or in OTLP/JSON (what otelcol.exporter.otlp
 * and otelcol.exporter.otlphttp send), gzip for the request bodies, and the decoding of a
 * request back, checked as the OpenTelemetry Collector's receiver checks it (what the suite's
 * receivers and the fuzz target use). */
#ifndef MW_OTLP_H
#define MW_OTLP_H
#include <stddef.h>
#include <stdint.h>

#include "model/spanbatch.h"

/* ffi.cdef begin */
/* --- OTLP traces (runtime/otlp/otlp.h) ------------------------------- */

/* The batch's spans as an ExportTraceServiceRequest: one ResourceSpans (the batch's resource
 * attributes) with one ScopeSpans (scope name and version). json 0: protobuf bytes; json 1:
 * OTLP/JSON (ids in hex, 64-bit integers as strings, enums as numbers). *out is malloc'd
 * (free with mw_ffi_otlp_free). 0, or -1 with err. */
int mw_ffi_otlp_encode_traces(const mw_spanbatch_t *b, const char *scope_name,
                              const char *scope_version, int json, uint8_t **out, size_t *len,
                              char *err, size_t errlen);
/* Decodes a protobuf ExportTraceServiceRequest of len bytes into OTLP/JSON-like text for
 * tests: {"resource_spans":[{"resource":{...attrs},"scope_spans":[{"scope":{"name","version"},
 * "spans":[{"trace_id","span_id","parent_span_id","name","kind","start","end","status_code",
 * "status_message","attributes":{...}}]}]}],"spans":N}. It refuses what the Collector's OTLP
 * receiver refuses: bytes that are not the message, trace ids not of 16 bytes, span ids not
 * of 8 (parent: 0 or 8). *out malloc'd (mw_ffi_otlp_free). 0, or -1 with err. */
int mw_ffi_otlp_decode_traces(const uint8_t *buf, size_t len, char **out, size_t *outlen, char *err,
                              size_t errlen);
/* gzip of in (level 6): *out malloc'd (mw_ffi_otlp_free). 0, or -1 (out of memory). */
int mw_ffi_otlp_gzip(const uint8_t *in, size_t len, uint8_t **out, size_t *outlen);
void mw_ffi_otlp_free(void *p);
/* ffi.cdef end */

/* Longest request mw_ffi_otlp_decode_traces takes (the Collector's default max_request_body
 * on HTTP is 20 MiB; gRPC's max_recv_msg_size 4 MiB). */
#define MW_OTLP_MAX_DECODE (20u << 20)

#endif
