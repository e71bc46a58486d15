/* exposition/parse_proto.h: the protobuf exposition format (internal to exposition/):
 * a body of length-delimited io.prometheus.client.MetricFamily messages (metrics.proto
 * in this folder is their definition), decoded straight from the wire (no per-message
 * allocation) into a samples batch through the same scrape cache as the text formats.
 * parse.c hands it a body whose Content-Type is application/vnd.google.protobuf; its
 * semantics are Prometheus's model/textparse/protobufparse.go (see parse.h). */
#ifndef MW_PARSE_PROTO_H
#define MW_PARSE_PROTO_H
#include <stddef.h>
#include <stdint.h>

#include "exposition/parse.h"
#include "exposition/scrapecache.h"
#include "model/batch.h"

/* What a protobuf parse works with: the caller's (parse.c's parser's). */
typedef struct {
  mw_scrapecache_t *c;
  mw_batch_t *batch;
  mw_expfmt_stats_t *st;
  char *err;
  size_t errlen;
  uint32_t flags; /* MW_EXPFMT_* */
  int64_t dts;
  uint64_t sample_limit; /* 0: none */
  uint32_t bucket_limit; /* native_histogram_bucket_limit, 0: none */
  double min_factor;     /* native_histogram_min_bucket_factor, 0: none */
} mw_pctx_t;

typedef struct mw_proto mw_proto_t;

/* A parse of body (len bytes, the caller's until it ends) with ctx (copied). NULL on
 * OOM. */
mw_proto_t *mw_proto_new(const mw_pctx_t *ctx, const char *body, size_t len);
/* Parses metric families from where the last call stopped until the body ends (*done =
 * 1) or a family starts at or past stop (*done = 0); *pos gets where it stopped.
 * Returns 0, or -1 with ctx.err ("metric family #N ("name") at byte O: ..."). */
int mw_proto_some(mw_proto_t *q, size_t stop, int *done, size_t *pos);
void mw_proto_free(mw_proto_t *q);

#endif
