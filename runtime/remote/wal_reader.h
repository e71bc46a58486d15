/* remote/wal_reader.h: prometheus.remote_write's readers of the WAL
 * (storage/wal.h): each with its own cursor, write relabeling, shards,
 * Remote-Write encoding, sample_age_limit, spans and commits; see the
 * mw_ffi_wal_reader_* contracts in ffi.h. */
#ifndef MW_WAL_READER_H
#define MW_WAL_READER_H
#include <stddef.h>
#include <stdint.h>

#include "storage/wal.h"

/* A reader belongs to the caller and must be closed (before or after its
 * WAL). */
int mw_wal_reader_open(mw_wal_t *w, const char *name, const uint8_t *external_labels, size_t len,
                       mw_wal_reader_t **out, char *err, size_t errlen);
void mw_wal_reader_close(mw_wal_reader_t *r);
int mw_wal_reader_next(mw_wal_reader_t *r, uint32_t max_samples, const uint8_t **buf, size_t *len,
                       mw_wal_chunk_t *chunk, char *err, size_t errlen);
int mw_wal_reader_next_shards(mw_wal_reader_t *r, uint32_t nshards, uint32_t max_samples,
                              int64_t min_ts, const uint8_t **bufs, size_t *lens,
                              mw_wal_chunk_t *chunks, char *err, size_t errlen);
int mw_wal_reader_drop_old(mw_wal_reader_t *r, uint64_t seq, const uint8_t *body, size_t body_len,
                           int64_t min_ts, const uint8_t **buf, size_t *len, mw_wal_chunk_t *chunk,
                           char *err, size_t errlen);
int mw_wal_reader_commit(mw_wal_reader_t *r, uint64_t seq, char *err, size_t errlen);
void mw_wal_reader_rewind(mw_wal_reader_t *r);
int mw_wal_reader_set_relabel(mw_wal_reader_t *r, const mw_ffi_relabel_program_t *p, char *err,
                              size_t errlen);
void mw_wal_reader_stats(const mw_wal_reader_t *r, mw_wal_reader_stats_t *st);
void mw_wal_reader_set_exemplars(mw_wal_reader_t *r, int send);

#endif
