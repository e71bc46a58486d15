/* runtime/storage/: what is kept on disk: the type-agnostic record log (recordlog.c) and the
 * metrics WAL on it (metrics_wal.c, wal.h). It knows nothing of Remote-Write.
 *
 * storage/recordlog.h: a type-agnostic segmented record log (storage's base layer).
 *
 * It owns files and bytes; what records mean is the business of the layer
 * above (the metrics WAL, later the logs queue). It knows nothing of
 * samples, series or Remote-Write.
 *
 * Layout (DIR is the directory given to mw_rlog_open):
 *
 *   DIR/00000001 ...              segments, numbered from 1, decimal, 8 digits
 *   DIR/checkpoint.NNNNNNNN/00000000
 *                                 what the layer above kept when segments <= N
 *                                 were removed (same format as a segment)
 *   CURSORS/cursor.NAME           a cursor's committed position (text), with
 *   CURSORS/.cursor.NAME.prev     its previous copy (CURSORS: opts.cursor_dir)
 *
 * A segment is an 8-byte magic (opts.magic) and records. A record is
 *
 *   type u8 | length u32 | crc u32 | payload (length bytes)
 *
 * little-endian, crc = CRC-32C of the type, the length and the payload.
 * Types the layer did not declare (opts.types) are corruption. Records of a
 * "counted" type (opts.counted) begin with a u32 item count: positions then
 * address items inside a record (mw_rlog_pos_t.idx), and segments count
 * their items, which the layer above supplies at append and replay along
 * with the segment's lowest and highest timestamps (for age bounds).
 *
 * Guarantees. An append writes its records with one writev before it
 * returns: acknowledged data is in the kernel and survives SIGKILL. A
 * failed write is truncated away at once. At open every segment is
 * replayed through opts.replay; the first torn, short, bad-CRC or
 * malformed record of a segment ends it: the segment is cut there, the cut
 * is logged (mw_rlog_repair_log) and counted, and reading goes on with the
 * next segment.
 *
 * Everything runs on the caller's (event loop) thread, except the fsyncs of
 * policy INTERVAL (mw_rlog_sync_start), which a worker thread does with its
 * own fds. */
#ifndef MW_RECORDLOG_H
#define MW_RECORDLOG_H
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define MW_RLOG_SEG_HDR 8u
#define MW_RLOG_REC_HDR 9u
#define MW_RLOG_MAX_RECORD (64u << 20) /* a longer length is corruption */

/* fsync policies: the values of MW_WAL_FSYNC_* */
enum { MW_RLOG_FSYNC_NEVER = 0, MW_RLOG_FSYNC_INTERVAL = 1, MW_RLOG_FSYNC_ALWAYS = 2 };

typedef struct mw_rlog mw_rlog_t;
typedef struct mw_rlog_cursor mw_rlog_cursor_t;
typedef struct mw_rlog_cpw mw_rlog_cpw_t;

typedef struct {
  uint32_t index;
  uint64_t size;          /* bytes up to the end of the last good record */
  int64_t min_ts, max_ts; /* supplied by the layer above; INT64_MAX/MIN: none */
  uint64_t items;         /* items of counted records */
} mw_rlog_seg_t;

/* A position: segment, a record's offset, items of that record already read. */
typedef struct {
  uint32_t seg;
  uint64_t off;
  uint32_t idx;
} mw_rlog_pos_t;

/* A record handed to the replay callback or read through a cursor. */
typedef struct {
  uint8_t type;
  uint32_t len;
  const uint8_t *p; /* payload, valid until the next read */
  uint32_t seg;     /* segment index (N of checkpoint.N for a checkpoint) */
  int checkpoint;   /* 1: read from the checkpoint */
} mw_rlog_rec_t;

/* Called for each record at open, in order (checkpoint first). Updates seg
 * (timestamps, items) for segment records. 0; 1: malformed (the segment is
 * cut before it); -1 with err: fatal (out of memory), the open fails. */
typedef int (*mw_rlog_replay_fn)(void *ctx, const mw_rlog_rec_t *rec, mw_rlog_seg_t *seg, char *err,
                                 size_t errlen);

/* Writes the checkpoint's records through mw_rlog_cp_write. 0, or -1 (with
 * err, unless a write failed: then the record log reports it). */
typedef int (*mw_rlog_checkpoint_fn)(void *ctx, mw_rlog_cpw_t *cpw, char *err, size_t errlen);

typedef struct {
  const char *magic;      /* 8 bytes, every segment starts with them */
  uint64_t segment_size;  /* bytes before a new segment is started (at least 1024) */
  int fsync;              /* MW_RLOG_FSYNC_* */
  uint32_t types;         /* bit t set: t is a record type */
  uint32_t counted;       /* bit t set: records of type t begin with a u32 item count */
  const char *cursor_dir; /* where cursor files live; NULL: the log's directory */
  const char *what;       /* the log's name in messages ("WAL") */
  const char *items;      /* its items' name in messages ("samples") */
  mw_rlog_replay_fn replay;
  void *ctx;
} mw_rlog_opts_t;

typedef struct {
  uint64_t fsyncs;
  uint64_t corruptions;   /* torn or corrupt records cut at open or skipped by readers */
  uint64_t corrupt_bytes; /* bytes cut or skipped because of them */
  uint64_t checkpoints;
  uint64_t segments_removed;
  uint64_t bytes; /* gauge: segments and checkpoint on disk */
} mw_rlog_stats_t;

/* Truncation bounds: a segment (never the head) goes when every cursor has
 * read it and its newest item is older than min_cut, or its newest item is
 * older than max_cut (read or not), or it holds no item; and the oldest go
 * while the log holds more than max_bytes (0: no size bound). */
typedef struct {
  int64_t min_cut, max_cut;
  uint64_t max_bytes;
} mw_rlog_bounds_t;

/* A named reader position: committed is saved to its cursor file (at most
 * once a second, every commit with policy ALWAYS or save_every_commit, and
 * at close); read is
 * where the layer above reads next. Fields other than these are the log's. */
struct mw_rlog_cursor {
  mw_rlog_t *log;
  mw_rlog_pos_t committed, read;
  char note[400];             /* what opening found wrong with the cursor file ("": nothing) */
  uint64_t items_before_open; /* items before the cursor at open (delivered before a restart) */
  uint64_t items_dropped;     /* items removed by truncation before this cursor committed them */
  uint64_t cursor_errors;     /* damaged cursor files, or a cursor past the log's end */
  int save_every_commit;      /* set by the caller: every commit saves the file (a reader that
                                 commits once per request: a crash resends only what was in
                                 flight, not the last second) */
  /* private */
  char *path, *tmp, *prev, *name;
  int fd;
  uint32_t fd_seg;
  uint8_t *buf;
  size_t buf_cap;
  double saved_at;
  int dirty;
};

/* Opens (creating if needed) the record log in dir, replays and repairs it;
 * appends then go to a fresh segment (the last one when it has no record).
 * opts is copied (its strings must outlive the log). 0, or -1 with err. */
int mw_rlog_open(const char *dir, const mw_rlog_opts_t *opts, mw_rlog_t **out, char *err,
                 size_t errlen);
/* Stops writing: waits for a running sync, syncs (unless NEVER) and closes
 * the segments. Cursors stay usable for close; the memory stays until
 * mw_rlog_free. */
void mw_rlog_close(mw_rlog_t *l);
/* Frees the log (NULL ok); every cursor must be closed. */
void mw_rlog_free(mw_rlog_t *l);
int mw_rlog_closed(const mw_rlog_t *l);

/* Fills in the header of a record whose payload (len bytes) follows it at hdr. */
void mw_rlog_frame(uint8_t *hdr, uint8_t type, uint32_t len);

/* Appends framed records (iov), items of counted records with timestamps in
 * [min_ts, max_ts] (ignored when items is 0), with one writev into the head
 * segment, starting a new one first when it would pass segment_size. *seg:
 * the segment written. 0; -1 with err: nothing written; 1 with err: written,
 * the fsync of policy ALWAYS failed. */
int mw_rlog_append(mw_rlog_t *l, const struct iovec *iov, int niov, uint64_t items, int64_t min_ts,
                   int64_t max_ts, uint32_t *seg, char *err, size_t errlen);
/* Starts a new segment before the next append (e.g. after a failure). */
void mw_rlog_cut(mw_rlog_t *l);

/* fsyncs the head, segments finished since the last sync and the directory
 * after a new segment; waits for a sync started by mw_rlog_sync_start first.
 * 0, or -1 with err. */
int mw_rlog_sync(mw_rlog_t *l, char *err, size_t errlen);
/* The same on a worker thread, not waited for: collects the sync started
 * the time before and starts one of what was appended since. 0: started (or
 * the last one still runs); -1 with err: the last one failed, or none could
 * be started. */
int mw_rlog_sync_start(mw_rlog_t *l, char *err, size_t errlen);

void mw_rlog_stats(const mw_rlog_t *l, mw_rlog_stats_t *st);
/* Repairs done at open, one line each; owned by l. */
const char *mw_rlog_repair_log(const mw_rlog_t *l);
/* The segments, oldest first (the last one is written to); valid until the
 * next append or truncation. */
const mw_rlog_seg_t *mw_rlog_segments(const mw_rlog_t *l, size_t *n);

/* Items of segment seg from record offset off on, less idx already read. */
uint64_t mw_rlog_items_from(mw_rlog_t *l, uint32_t seg, uint64_t off, uint32_t idx);
int mw_rlog_pos_cmp(mw_rlog_pos_t a, mw_rlog_pos_t b);

/* Opens cursor name ([A-Za-z0-9_.-], 1 to 128 bytes, one open cursor per
 * name): its saved position, else its previous copy, else the oldest data
 * (c->note and cursor_errors say what was wrong). *out is the caller's. 0, or
 * -1 with err. */
int mw_rlog_cursor_open(mw_rlog_t *l, const char *name, mw_rlog_cursor_t **out, char *err,
                        size_t errlen);
/* Saves a moved cursor (best effort) and frees it (NULL ok). */
void mw_rlog_cursor_close(mw_rlog_cursor_t *c);
/* Moves the committed position to pos when it is further; saves the cursor
 * file unless saved less than a second ago (policy ALWAYS: always). 0, or
 * -1 with err (the position is kept in memory). */
int mw_rlog_cursor_commit(mw_rlog_cursor_t *c, mw_rlog_pos_t pos, char *err, size_t errlen);

/* Moves *pos to the record it names or the next one (past a segment's end,
 * over removed segments). 1: a record may be at *pos; 0: the end. */
int mw_rlog_seek(mw_rlog_t *l, mw_rlog_pos_t *pos);
/* Reads the record at pos (after mw_rlog_seek) into c's buffer. 1 with rec;
 * 0: torn or corrupt, or its segment file is gone (mw_rlog_skip_corrupt); -1 with err: I/O
 * error. */
int mw_rlog_read(mw_rlog_cursor_t *c, const mw_rlog_pos_t *pos, mw_rlog_rec_t *rec, char *err,
                 size_t errlen);
/* Corruption found at *pos: the rest of its segment is skipped by every
 * reader (the head: the writer moves to a new segment), counted; *pos moves
 * to the segment's end. */
void mw_rlog_skip_corrupt(mw_rlog_t *l, mw_rlog_pos_t *pos);

/* Truncation, in three steps so the layer above can do its part between
 * them. _plan starts a new head if the head has records (so that a quiet
 * log ages out too) and returns how many of the oldest segments go under
 * the bounds (0: none, -1 with err); _cursors moves the cursors that had not
 * committed them past them, counting their items dropped (*dropped_max: the
 * most any cursor lost) and saving their files (-1 with err if one could not
 * be saved, the rest is done); _finish writes checkpoint.N (N: the index of
 * the last segment that goes) through cp, durable before the segments and
 * the older checkpoint are removed. 0, or -1 with err (nothing removed). */
long mw_rlog_truncate_plan(mw_rlog_t *l, const mw_rlog_bounds_t *b, char *err, size_t errlen);
int mw_rlog_truncate_cursors(mw_rlog_t *l, size_t k, uint64_t *dropped_max, char *err,
                             size_t errlen);
int mw_rlog_truncate_finish(mw_rlog_t *l, size_t k, mw_rlog_checkpoint_fn cp, void *ctx, char *err,
                            size_t errlen);
/* Writes framed records into the checkpoint being made. 0, -1 (errno). */
int mw_rlog_cp_write(mw_rlog_cpw_t *w, const void *p, size_t n);

/* The little-endian fixed-width fields of records and of the layers above. */
static inline void mw_put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static inline void mw_put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t mw_get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t mw_get64(const uint8_t *p) {
  return (uint64_t)mw_get32(p) | (uint64_t)mw_get32(p + 4) << 32;
}

#endif
