/* tail/tail.h: the file tailer of loki.source.file. One mw_tailer_t per component: it owns
 * the files it tails (open descriptors, read offsets, unfinished lines, decoders), their
 * positions file (<storage.path>/loki.source.file.<label>/positions.yml, Alloy's YAML),
 * and an inotify descriptor (polling when the kernel has none or polling is asked). It runs
 * on the event loop's thread: the Lua side calls mw_ffi_tail_read when the inotify
 * descriptor is readable or a poll timer fires, and gets a whole log-entry batch per call
 * (stream = the target's labels, already without __ labels, plus filename). Plain C: no
 * lua_State. Its FFI surface is the ffi.cdef block below (globs and the tailer). */
#ifndef MW_TAIL_H
#define MW_TAIL_H
#include <stddef.h>
#include <stdint.h>

#include "model/logbatch.h"

/* Bytes read from a file per read(2). */
#define MW_TAIL_CHUNK (256u << 10)
/* Bound of max_line_size. */
#define MW_TAIL_MAX_LINE_LIMIT (64u << 20)

/* ffi.cdef begin */
/* --- file tailing: local.file_match, loki.source.file (runtime/tail/) --- */

/* The regular files (symbolic links followed) whose paths match the doublestar glob
 * pattern and not exclude ("" or NULL: none), modified at or after min_mtime (seconds
 * since the epoch; 0: any), sorted, as NUL-terminated strings in *out of *out_len bytes
 * (free with mw_ffi_fs_free; NULL when none), *count of them. 0; 1 when more than
 * MW_GLOB_MAX_FILES matched (the first ones returned); -1 with err (a malformed pattern). */
int mw_ffi_glob(const char *pattern, const char *exclude, double min_mtime, char **out,
                size_t *out_len, size_t *count, char *err, size_t errlen);
/* Whether path matches the doublestar pattern: 1, 0, or -1 with err. */
int mw_ffi_glob_match(const char *pattern, const char *path, char *err, size_t errlen);

typedef struct mw_tailer mw_tailer_t;
/* Decompression formats (loki.source.file's decompression.format). */
enum { MW_TAIL_PLAIN = 0, MW_TAIL_GZ = 1, MW_TAIL_BZ2 = 2, MW_TAIL_Z = 3 };
typedef struct {
  int tail_from_end;      /* a file without a position starts at its end */
  int poll;               /* 1: no inotify (polling by the caller's timer only) */
  int decompress;         /* MW_TAIL_*: files are whole compressed files, read once */
  double initial_delay;   /* seconds to wait before reading a compressed file */
  uint64_t max_line_size; /* longer lines are cut (counted) */
  uint32_t max_open_files;
  const char *encoding;         /* iconv name of the files' encoding; "" or NULL: UTF-8 */
  const char *positions;        /* the positions file */
  const char *legacy_positions; /* promtail's positions file to convert, or "" */
} mw_tail_opts_t;
/* A tailer; NULL with err (an unknown encoding, an unreadable positions file). */
mw_tailer_t *mw_ffi_tail_new(const mw_tail_opts_t *o, char *err, size_t errlen);
/* Saves nothing (call mw_ffi_tail_save first); closes every file. NULL is fine. */
void mw_ffi_tail_free(mw_tailer_t *t);
/* The inotify descriptor to watch for readability, or -1 when polling. */
int mw_ffi_tail_fd(const mw_tailer_t *t);
/* A new set of targets: begin, add each, end. add: path, the stream's labels as name
 * 0xFF value 0xFF pairs sorted by name (filename included), and the labels' text for the
 * positions key ({a="1", b="2"}). end closes the files not added since begin (their
 * positions kept while the file exists). add: 0, or -1 with err (out of memory). */
void mw_ffi_tail_sync_begin(mw_tailer_t *t);
int mw_ffi_tail_add(mw_tailer_t *t, const char *path, const char *labels, size_t len,
                    const char *poskey, char *err, size_t errlen);
void mw_ffi_tail_sync_end(mw_tailer_t *t);
/* Marks every file to be checked (stat, read) at the next read: a poll tick. */
void mw_ffi_tail_check_all(mw_tailer_t *t);
/* Resets b and fills it with the lines of the files that have news (inotify events drained
 * here), until it holds about max_entries entries or max_bytes bytes. 1 when more may be
 * waiting (call again), 0 when every file was read to its end. */
int mw_ffi_tail_read(mw_tailer_t *t, mw_logbatch_t *b, size_t max_entries, size_t max_bytes);
/* Writes the positions file (atomically: a temporary file renamed) when a position changed
 * since the last save (force: always). 0, or -1 with err. */
int mw_ffi_tail_save(mw_tailer_t *t, int force, char *err, size_t errlen);
typedef struct {
  uint64_t lines_truncated;   /* lines cut to max_line_size */
  uint64_t encoding_errors;   /* bytes not valid in the encoding (replaced by U+FFFD) */
  uint64_t decompress_errors; /* compressed files that failed to decompress */
  uint64_t truncations;       /* files found shorter than their position (read again from 0) */
  uint64_t rotations;         /* files replaced under their path */
  uint64_t open_errors;       /* files that could not be opened */
  uint32_t files, active;     /* files tailed, of which open */
  uint32_t positions;         /* positions held (of files tailed, gone or kept) */
} mw_tail_stats_t;
void mw_ffi_tail_stats(const mw_tailer_t *t, mw_tail_stats_t *s);
/* File i (below stats.files): path, state ("active", "missing", "done", "waiting",
 * "error", "delayed"), position (bytes; lines for compressed files), size, lines and bytes
 * read, last error. Strings owned by the tailer, valid until its next call. 0 or -1. */
typedef struct {
  const char *path;
  const char *state;
  const char *error;
  int64_t position, size;
  uint64_t read_lines, read_bytes;
} mw_tail_file_t;
int mw_ffi_tail_file(const mw_tailer_t *t, size_t i, mw_tail_file_t *f);
/* Checks an encoding name: 0, or -1 with err. */
int mw_ffi_tail_check_encoding(const char *name, char *err, size_t errlen);
/* ffi.cdef end */

#endif
