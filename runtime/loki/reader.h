/* loki/reader.h: an endpoint's reader of the logs queue (storage/logs_queue.h): reads the
 * entries after its cursor into one push request at a time (loki/push.h), which the caller
 * sends and then commits (or rewinds to resend from the committed position). */
#ifndef MW_LOKI_READER_H
#define MW_LOKI_READER_H
#include <stddef.h>
#include <stdint.h>

#include "storage/logs_queue.h"

/* The label that names an entry's tenant (stage.tenant of loki.process), as Alloy's
 * ReservedLabelTenantID: it is sent as X-Scope-OrgID, not as a label, whatever its length
 * (Loki refuses one over 150 bytes, as it refuses Alloy's). */
#define MW_LOKI_TENANT_LABEL "__tenant_id__"
/* Tenants one read takes entries of (one request each, as Alloy keeps a batch per tenant):
 * entries of tenants that alternate go in a few requests, not one request each. */
#define MW_LOKI_PARTS 8

/* ffi.cdef begin */
/* --- loki.write's endpoint readers (runtime/loki/reader.h) ------------ */

typedef struct mw_lokireader mw_lokireader_t;

typedef struct {
  uint64_t batch_size;            /* line + metadata bytes per request (at least one entry) */
  uint32_t max_streams;           /* streams per request (0: no limit) */
  int raw;                        /* 1: protobuf without snappy (tests); 2: JSON (debugging) */
  const uint8_t *external_labels; /* encoded label pairs merged into every stream */
  size_t external_labels_len;
} mw_lokireq_opts_t;

typedef struct {
  const uint8_t *body; /* snappy-compressed PushRequest, owned by the reader */
  size_t body_len;
  uint64_t entries, bytes, line_bytes;
  uint32_t streams;
  int32_t
      full; /* 1: ended by batch_size or max_streams (more entries follow); 0: by the queue's end */
  int64_t min_ts_ns, max_ts_ns;
  const char *tenant;  /* the entries' __tenant_id__ (stage.tenant), owned by the reader; */
  uint32_t tenant_len; /* 0: none (the endpoint's tenant_id applies) */
  uint32_t parts;      /* requests (one per tenant); body..tenant_len above are the first's, the
                          counts the sum of them all; see mw_ffi_lokireader_part */
} mw_lokireq_t;

/* One request of a read (one tenant's entries). */
typedef struct {
  const uint8_t *body;
  size_t body_len;
  uint64_t entries, bytes, line_bytes;
  uint32_t streams;
  const char *tenant;
  uint32_t tenant_len;
} mw_lokipart_t;

typedef struct {
  uint64_t pending;             /* entries after the committed position */
  uint64_t entries_before_open; /* committed before a restart */
  uint64_t entries_dropped;     /* removed by the queue's bounds before this reader sent them */
  uint64_t cursor_errors;
  uint64_t corruptions;
} mw_lokireader_stats_t;

int mw_ffi_lokireader_open(mw_logq_t *q, const char *name, mw_lokireader_t **out, char *err,
                           size_t errlen);
void mw_ffi_lokireader_close(mw_lokireader_t *r);
/* 1 with *req, 0: nothing to read, -1 with err. */
int mw_ffi_lokireader_next(mw_lokireader_t *r, const mw_lokireq_opts_t *o, mw_lokireq_t *req,
                           char *err, size_t errlen);
/* Request i (< req.parts) of the last read; 0, -1 when there is none. */
int mw_ffi_lokireader_part(mw_lokireader_t *r, uint32_t i, mw_lokipart_t *out);
int mw_ffi_lokireader_commit(mw_lokireader_t *r, char *err, size_t errlen);
void mw_ffi_lokireader_rewind(mw_lokireader_t *r);
void mw_ffi_lokireader_stats(mw_lokireader_t *r, mw_lokireader_stats_t *st);
const char *mw_ffi_lokireader_note(const mw_lokireader_t *r);
/* ffi.cdef end */

/* Opens reader name (its cursor file DIR/cursor.NAME) on q. 0, or -1 with err. */
int mw_lokireader_open(mw_logq_t *q, const char *name, mw_lokireader_t **out, char *err,
                       size_t errlen);
/* Saves the cursor and frees the reader (NULL ok). */
void mw_lokireader_close(mw_lokireader_t *r);
/* Reads the next request after the last one read (see mw_lokireq_opts_t): 1 with *req (its
 * body owned by r, valid until the next call), 0 when nothing is left, -1 with err. */
int mw_lokireader_next(mw_lokireader_t *r, const mw_lokireq_opts_t *o, mw_lokireq_t *req, char *err,
                       size_t errlen);
/* Request i (< req->parts) of the last read into *out: 0, -1 when there is none. */
int mw_lokireader_part(mw_lokireader_t *r, uint32_t i, mw_lokipart_t *out);
/* Marks everything read so far as done (the cursor is saved at most once a second). */
int mw_lokireader_commit(mw_lokireader_t *r, char *err, size_t errlen);
/* Reads again from the last commit. */
void mw_lokireader_rewind(mw_lokireader_t *r);
void mw_lokireader_stats(mw_lokireader_t *r, mw_lokireader_stats_t *st);
/* What opening found wrong with the cursor file ("" if nothing). */
const char *mw_lokireader_note(const mw_lokireader_t *r);

#endif
