/* loki/reader.h: an endpoint's reader of the logs queue (storage/logs_queue.h): reads the
 * entries after its cursor into one push request at a time (loki/push.h), which the caller
 * sends and then commits (or rewinds to resend from the committed position). */
#ifndef MW_LOKI_READER_H
#define MW_LOKI_READER_H
#include <stddef.h>
#include <stdint.h>

#include "ffi.h"

/* Opens reader name (its cursor file DIR/cursor.NAME) on q. 0, or -1 with err. */
int mw_lokireader_open(mw_logq_t *q, const char *name, mw_lokireader_t **out, char *err,
                       size_t errlen);
/* Saves the cursor and frees the reader (NULL ok). */
void mw_lokireader_close(mw_lokireader_t *r);
/* Reads the next request after the last one read (see mw_lokireq_opts_t): 1 with *req (its
 * body owned by r, valid until the next call), 0 when nothing is left, -1 with err. */
int mw_lokireader_next(mw_lokireader_t *r, const mw_lokireq_opts_t *o, mw_lokireq_t *req, char *err,
                       size_t errlen);
/* Marks everything read so far as done (the cursor is saved at most once a second). */
int mw_lokireader_commit(mw_lokireader_t *r, char *err, size_t errlen);
/* Reads again from the last commit. */
void mw_lokireader_rewind(mw_lokireader_t *r);
void mw_lokireader_stats(mw_lokireader_t *r, mw_lokireader_stats_t *st);
/* What opening found wrong with the cursor file ("" if nothing). */
const char *mw_lokireader_note(const mw_lokireader_t *r);

#endif
