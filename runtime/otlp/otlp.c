/* otlp/otlp.c: OTLP traces encoding and decoding; see otlp.h. */
#include "otlp/otlp.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/grow.h"
#include "base/gzip.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

typedef Opentelemetry__Proto__Common__V1__KeyValue mw_kv_t;
typedef Opentelemetry__Proto__Common__V1__AnyValue mw_anyvalue_t;
typedef Opentelemetry__Proto__Trace__V1__Span mw_pbspan_t;

/* ---- a growing text buffer (JSON) ---- */

typedef struct {
  char *p;
  size_t len, cap;
  int oom;
} mw_obuf_t;

static void mw_obuf_put(mw_obuf_t *o, const char *s, size_t n) {
  if (o->oom) return;
  if (mw_grow((void **)&o->p, &o->cap, o->len + n + 1, 1)) {
    o->oom = 1;
    return;
  }
  memcpy(o->p + o->len, s, n);
  o->len += n;
  o->p[o->len] = '\0';
}

static void mw_obuf_puts(mw_obuf_t *o, const char *s) { mw_obuf_put(o, s, strlen(s)); }

static void mw_obuf_printf(mw_obuf_t *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void mw_obuf_printf(mw_obuf_t *o, const char *fmt, ...) {
  char tmp[64];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0) mw_obuf_put(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A JSON string of len bytes: escapes quotes, backslashes and control bytes; other bytes as
 * they are (a string of OTLP is UTF-8). */
static void mw_obuf_jstr(mw_obuf_t *o, const char *s, size_t len) {
  mw_obuf_put(o, "\"", 1);
  size_t run = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    mw_obuf_put(o, s + run, i - run);
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      mw_obuf_put(o, e, 2);
    } else {
      mw_obuf_printf(o, "\\u%04x", c);
    }
    run = i + 1;
  }
  mw_obuf_put(o, s + run, len - run);
  mw_obuf_put(o, "\"", 1);
}

static void mw_obuf_hex(mw_obuf_t *o, const uint8_t *p, size_t n) {
  static const char hex[] = "0123456789abcdef";
  mw_obuf_put(o, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    char h[2] = {hex[p[i] >> 4], hex[p[i] & 15]};
    mw_obuf_put(o, h, 2);
  }
  mw_obuf_put(o, "\"", 1);
}

/* ---- encoding ---- */

/* Fills kv/value from attribute a (strings point into the batch). */
static void mw_otlp_setkv(mw_kv_t *kv, mw_anyvalue_t *v, const mw_spanattr_t *a) {
  opentelemetry__proto__common__v1__key_value__init(kv);
  opentelemetry__proto__common__v1__any_value__init(v);
  kv->key = (char *)a->key;
  kv->value = v;
  switch (a->type) {
  case MW_SPANATTR_INT:
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    v->int_value = a->i;
    break;
  case MW_SPANATTR_DOUBLE:
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
    v->double_value = a->d;
    break;
  case MW_SPANATTR_BOOL:
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
    v->bool_value = a->i != 0;
    break;
  default:
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v->string_value = (char *)a->str;
    break;
  }
}

static void mw_json_attrs(mw_obuf_t *o, const mw_spanattr_t *as, size_t n) {
  mw_obuf_puts(o, "[");
  for (size_t i = 0; i < n; i++) {
    const mw_spanattr_t *a = &as[i];
    if (i) mw_obuf_puts(o, ",");
    mw_obuf_puts(o, "{\"key\":");
    mw_obuf_jstr(o, a->key, a->key_len);
    switch (a->type) {
    case MW_SPANATTR_INT:
      mw_obuf_printf(o, ",\"value\":{\"intValue\":\"%" PRId64 "\"}}", a->i);
      break;
    case MW_SPANATTR_DOUBLE:
      if (isnan(a->d))
        mw_obuf_puts(o, ",\"value\":{\"doubleValue\":\"NaN\"}}");
      else if (isinf(a->d))
        mw_obuf_puts(o, a->d > 0 ? ",\"value\":{\"doubleValue\":\"Infinity\"}}"
                                 : ",\"value\":{\"doubleValue\":\"-Infinity\"}}");
      else
        mw_obuf_printf(o, ",\"value\":{\"doubleValue\":%.17g}}", a->d);
      break;
    case MW_SPANATTR_BOOL:
      mw_obuf_puts(o,
                   a->i ? ",\"value\":{\"boolValue\":true}}" : ",\"value\":{\"boolValue\":false}}");
      break;
    default:
      mw_obuf_puts(o, ",\"value\":{\"stringValue\":");
      mw_obuf_jstr(o, a->str, a->str_len);
      mw_obuf_puts(o, "}}");
      break;
    }
  }
  mw_obuf_puts(o, "]");
}

static int mw_otlp_json(const mw_spanbatch_t *b, const char *scope_name, const char *scope_version,
                        const mw_spanattr_t *res, size_t nres, const mw_spanattr_t *attrs,
                        uint8_t **out, size_t *len, char *err, size_t errlen) {
  mw_obuf_t o = {0};
  mw_obuf_puts(&o, "{\"resourceSpans\":[{\"resource\":{\"attributes\":");
  mw_json_attrs(&o, res, nres);
  mw_obuf_puts(&o, "},\"scopeSpans\":[{\"scope\":{\"name\":");
  mw_obuf_jstr(&o, scope_name, strlen(scope_name));
  mw_obuf_puts(&o, ",\"version\":");
  mw_obuf_jstr(&o, scope_version, strlen(scope_version));
  mw_obuf_puts(&o, "},\"spans\":[");
  size_t n = mw_ffi_spanbatch_len(b);
  for (size_t i = 0; i < n; i++) {
    mw_span_t s;
    mw_ffi_spanbatch_span(b, i, &s);
    if (i) mw_obuf_puts(&o, ",");
    mw_obuf_puts(&o, "{\"traceId\":");
    mw_obuf_hex(&o, s.trace_id, 16);
    mw_obuf_puts(&o, ",\"spanId\":");
    mw_obuf_hex(&o, s.span_id, 8);
    static const uint8_t zero[8];
    if (memcmp(s.parent_span_id, zero, 8) != 0) {
      mw_obuf_puts(&o, ",\"parentSpanId\":");
      mw_obuf_hex(&o, s.parent_span_id, 8);
    }
    mw_obuf_puts(&o, ",\"name\":");
    mw_obuf_jstr(&o, s.name, s.name_len);
    mw_obuf_printf(&o, ",\"kind\":%d", (int)s.kind);
    mw_obuf_printf(&o, ",\"startTimeUnixNano\":\"%" PRId64 "\"", s.start_ns);
    mw_obuf_printf(&o, ",\"endTimeUnixNano\":\"%" PRId64 "\"", s.end_ns);
    mw_obuf_puts(&o, ",\"attributes\":");
    mw_json_attrs(&o, attrs + s.attr_first, s.attr_count);
    mw_obuf_printf(&o, ",\"status\":{\"code\":%d", (int)s.status_code);
    if (s.status_message_len) {
      mw_obuf_puts(&o, ",\"message\":");
      mw_obuf_jstr(&o, s.status_message, s.status_message_len);
    }
    mw_obuf_puts(&o, "}}");
  }
  mw_obuf_puts(&o, "]}]}]}");
  if (o.oom) {
    free(o.p);
    mw_oom(err, errlen);
    return -1;
  }
  *out = (uint8_t *)o.p;
  *len = o.len;
  return 0;
}

int mw_ffi_otlp_encode_traces(const mw_spanbatch_t *b, const char *scope_name,
                              const char *scope_version, int json, uint8_t **out, size_t *len,
                              char *err, size_t errlen) {
  int rc = -1;
  size_t nres = mw_ffi_spanbatch_resource_len(b), nspans = mw_ffi_spanbatch_len(b), nattrs = 0;
  for (size_t i = 0; i < nspans; i++) {
    mw_span_t s;
    mw_ffi_spanbatch_span(b, i, &s);
    nattrs = s.attr_first + s.attr_count;
  }
  mw_spanattr_t *res = calloc(nres + 1, sizeof *res), *attrs = calloc(nattrs + 1, sizeof *attrs);
  mw_kv_t *kvs = calloc(nres + nattrs + 1, sizeof *kvs),
          **kvp = calloc(nres + nattrs + 1, sizeof *kvp);
  mw_anyvalue_t *vals = calloc(nres + nattrs + 1, sizeof *vals);
  mw_pbspan_t *spans = calloc(nspans + 1, sizeof *spans),
              **spanp = calloc(nspans + 1, sizeof *spanp);
  Opentelemetry__Proto__Trace__V1__Status *st = calloc(nspans + 1, sizeof *st);
  if (!res || !attrs || !kvs || !kvp || !vals || !spans || !spanp || !st) {
    mw_oom(err, errlen);
    goto out;
  }
  for (size_t i = 0; i < nres; i++)
    mw_ffi_spanbatch_resource_attr(b, i, &res[i]);
  for (size_t i = 0; i < nattrs; i++)
    mw_ffi_spanbatch_attr(b, i, &attrs[i]);
  if (json) {
    rc = mw_otlp_json(b, scope_name, scope_version, res, nres, attrs, out, len, err, errlen);
    goto out;
  }
  for (size_t i = 0; i < nres; i++) {
    mw_otlp_setkv(&kvs[i], &vals[i], &res[i]);
    kvp[i] = &kvs[i];
  }
  for (size_t i = 0; i < nattrs; i++) {
    mw_otlp_setkv(&kvs[nres + i], &vals[nres + i], &attrs[i]);
    kvp[nres + i] = &kvs[nres + i];
  }
  static const uint8_t zero[8];
  mw_span_t *ms = calloc(nspans + 1, sizeof *ms);
  if (!ms) {
    mw_oom(err, errlen);
    goto out;
  }
  for (size_t i = 0; i < nspans; i++) {
    mw_span_t *s = &ms[i];
    mw_ffi_spanbatch_span(b, i, s);
    mw_pbspan_t *p = &spans[i];
    opentelemetry__proto__trace__v1__span__init(p);
    opentelemetry__proto__trace__v1__status__init(&st[i]);
    p->trace_id.data = s->trace_id;
    p->trace_id.len = 16;
    p->span_id.data = s->span_id;
    p->span_id.len = 8;
    if (memcmp(s->parent_span_id, zero, 8) != 0) {
      p->parent_span_id.data = s->parent_span_id;
      p->parent_span_id.len = 8;
    }
    p->name = (char *)s->name;
    p->kind = (Opentelemetry__Proto__Trace__V1__Span__SpanKind)s->kind;
    p->start_time_unix_nano = (uint64_t)s->start_ns;
    p->end_time_unix_nano = (uint64_t)s->end_ns;
    p->n_attributes = s->attr_count;
    p->attributes = s->attr_count ? &kvp[nres + s->attr_first] : NULL;
    st[i].code = (Opentelemetry__Proto__Trace__V1__Status__StatusCode)s->status_code;
    st[i].message = (char *)s->status_message;
    p->status = &st[i];
    spanp[i] = p;
  }
  Opentelemetry__Proto__Common__V1__InstrumentationScope scope =
      OPENTELEMETRY__PROTO__COMMON__V1__INSTRUMENTATION_SCOPE__INIT;
  scope.name = (char *)scope_name;
  scope.version = (char *)scope_version;
  Opentelemetry__Proto__Trace__V1__ScopeSpans ss =
      OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
  ss.scope = &scope;
  ss.n_spans = nspans;
  ss.spans = spanp;
  Opentelemetry__Proto__Trace__V1__ScopeSpans *ssp = &ss;
  Opentelemetry__Proto__Resource__V1__Resource resource =
      OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
  resource.n_attributes = nres;
  resource.attributes = kvp;
  Opentelemetry__Proto__Trace__V1__ResourceSpans rs =
      OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
  rs.resource = &resource;
  rs.n_scope_spans = 1;
  rs.scope_spans = &ssp;
  Opentelemetry__Proto__Trace__V1__ResourceSpans *rsp = &rs;
  Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest req =
      OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
  req.n_resource_spans = 1;
  req.resource_spans = &rsp;
  size_t n =
      opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(
          &req);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) {
    free(ms);
    mw_oom(err, errlen);
    goto out;
  }
  opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(&req, buf);
  free(ms);
  *out = buf;
  *len = n;
  rc = 0;
out:
  free(res);
  free(attrs);
  free(kvs);
  free(kvp);
  free(vals);
  free(spans);
  free(spanp);
  free(st);
  return rc;
}

/* ---- decoding (receivers in tests, fuzzing) ---- */

static void mw_json_anyvalue(mw_obuf_t *o, const mw_anyvalue_t *v, int depth);

static void mw_json_kvs(mw_obuf_t *o, mw_kv_t **kvs, size_t n, int depth) {
  mw_obuf_puts(o, "{");
  for (size_t i = 0; i < n; i++) {
    if (i) mw_obuf_puts(o, ",");
    const char *k = kvs[i]->key ? kvs[i]->key : "";
    mw_obuf_jstr(o, k, strlen(k));
    mw_obuf_puts(o, ":");
    mw_json_anyvalue(o, kvs[i]->value, depth + 1);
  }
  mw_obuf_puts(o, "}");
}

static void mw_json_anyvalue(mw_obuf_t *o, const mw_anyvalue_t *v, int depth) {
  if (!v || depth > 32) {
    mw_obuf_puts(o, "null");
    return;
  }
  switch (v->value_case) {
  case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
    mw_obuf_jstr(o, v->string_value, strlen(v->string_value));
    break;
  case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
    mw_obuf_puts(o, v->bool_value ? "true" : "false");
    break;
  case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
    mw_obuf_printf(o, "%" PRId64, v->int_value);
    break;
  case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
    if (!isfinite(v->double_value))
      mw_obuf_puts(o, "null");
    else
      mw_obuf_printf(o, "%.17g", v->double_value);
    break;
  case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
    mw_obuf_puts(o, "[");
    for (size_t i = 0; v->array_value && i < v->array_value->n_values; i++) {
      if (i) mw_obuf_puts(o, ",");
      mw_json_anyvalue(o, v->array_value->values[i], depth + 1);
    }
    mw_obuf_puts(o, "]");
    break;
  case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE:
    if (v->kvlist_value)
      mw_json_kvs(o, v->kvlist_value->values, v->kvlist_value->n_values, depth + 1);
    else
      mw_obuf_puts(o, "{}");
    break;
  case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
    mw_obuf_hex(o, v->bytes_value.data, v->bytes_value.len);
    break;
  default: mw_obuf_puts(o, "null"); break;
  }
}

int mw_ffi_otlp_decode_traces(const uint8_t *buf, size_t len, char **out, size_t *outlen, char *err,
                              size_t errlen) {
  if (len > MW_OTLP_MAX_DECODE) {
    mw_seterr(err, errlen, "request of %zu bytes is over the %u bytes allowed", len,
              MW_OTLP_MAX_DECODE);
    return -1;
  }
  Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *req =
      opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(NULL, len,
                                                                                       buf);
  if (!req) {
    mw_seterr(err, errlen, "proto: cannot parse invalid wire-format data");
    return -1;
  }
  int rc = -1;
  size_t total = 0;
  mw_obuf_t o = {0};
  mw_obuf_puts(&o, "{\"resource_spans\":[");
  for (size_t r = 0; r < req->n_resource_spans; r++) {
    Opentelemetry__Proto__Trace__V1__ResourceSpans *rs = req->resource_spans[r];
    if (r) mw_obuf_puts(&o, ",");
    mw_obuf_puts(&o, "{\"resource\":");
    if (rs->resource)
      mw_json_kvs(&o, rs->resource->attributes, rs->resource->n_attributes, 0);
    else
      mw_obuf_puts(&o, "{}");
    mw_obuf_puts(&o, ",\"scope_spans\":[");
    for (size_t s = 0; s < rs->n_scope_spans; s++) {
      Opentelemetry__Proto__Trace__V1__ScopeSpans *ss = rs->scope_spans[s];
      if (s) mw_obuf_puts(&o, ",");
      const char *sn = ss->scope && ss->scope->name ? ss->scope->name : "";
      const char *sv = ss->scope && ss->scope->version ? ss->scope->version : "";
      mw_obuf_puts(&o, "{\"scope\":{\"name\":");
      mw_obuf_jstr(&o, sn, strlen(sn));
      mw_obuf_puts(&o, ",\"version\":");
      mw_obuf_jstr(&o, sv, strlen(sv));
      mw_obuf_puts(&o, "},\"spans\":[");
      for (size_t i = 0; i < ss->n_spans; i++) {
        mw_pbspan_t *p = ss->spans[i];
        /* pdata's TraceID/SpanID unmarshal: "invalid length for ID" unless 16/8 (or empty) */
        if (p->trace_id.len != 16 && p->trace_id.len != 0) {
          mw_seterr(err, errlen, "span %zu: invalid length for ID (trace_id of %zu bytes)", total,
                    p->trace_id.len);
          goto out;
        }
        if ((p->span_id.len != 8 && p->span_id.len != 0) ||
            (p->parent_span_id.len != 8 && p->parent_span_id.len != 0)) {
          mw_seterr(err, errlen, "span %zu: invalid length for ID (span_id or parent_span_id)",
                    total);
          goto out;
        }
        if (i) mw_obuf_puts(&o, ",");
        mw_obuf_puts(&o, "{\"trace_id\":");
        mw_obuf_hex(&o, p->trace_id.data, p->trace_id.len);
        mw_obuf_puts(&o, ",\"span_id\":");
        mw_obuf_hex(&o, p->span_id.data, p->span_id.len);
        mw_obuf_puts(&o, ",\"parent_span_id\":");
        mw_obuf_hex(&o, p->parent_span_id.data, p->parent_span_id.len);
        mw_obuf_puts(&o, ",\"name\":");
        mw_obuf_jstr(&o, p->name, strlen(p->name));
        mw_obuf_printf(&o, ",\"kind\":%d", (int)p->kind);
        mw_obuf_printf(&o, ",\"start\":\"%" PRIu64 "\"", p->start_time_unix_nano);
        mw_obuf_printf(&o, ",\"end\":\"%" PRIu64 "\"", p->end_time_unix_nano);
        mw_obuf_printf(&o, ",\"status_code\":%d", p->status ? (int)p->status->code : 0);
        const char *m = p->status && p->status->message ? p->status->message : "";
        mw_obuf_puts(&o, ",\"status_message\":");
        mw_obuf_jstr(&o, m, strlen(m));
        mw_obuf_puts(&o, ",\"attributes\":");
        mw_json_kvs(&o, p->attributes, p->n_attributes, 0);
        mw_obuf_puts(&o, "}");
        total++;
      }
      mw_obuf_puts(&o, "]}");
    }
    mw_obuf_puts(&o, "]}");
  }
  mw_obuf_printf(&o, "],\"spans\":%zu}", total);
  if (o.oom) {
    mw_oom(err, errlen);
    goto out;
  }
  *out = o.p;
  *outlen = o.len;
  o.p = NULL;
  rc = 0;
out:
  free(o.p);
  opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(req,
                                                                                          NULL);
  return rc;
}

int mw_ffi_otlp_gzip(const uint8_t *in, size_t len, uint8_t **out, size_t *outlen) {
  return mw_gzip(in, len, out, outlen);
}

void mw_ffi_otlp_free(void *p) { free(p); }
