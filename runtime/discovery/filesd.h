/*
 * runtime/discovery/: what the discovery.* components need in C.
 *
 * discovery/filesd.h: discovery.file's two helpers: a YAML reader (libyaml) that turns one
 * YAML document into JSON text, so file_sd's YAML and JSON files are checked by one decoder,
 * and a small inotify watch of directories, so a changed file is read again at once.
 *
 * The YAML reader is bounded: input and output sizes, nesting depth; anchors and aliases are
 * refused (an alias bomb expands a few bytes into gigabytes). Every scalar becomes a JSON
 * string holding its text as written (file_sd's labels are strings: `port: 80` is "80"), except
 * a plain `null`, `~` or empty scalar, which is JSON null. Errors name the line and column
 * (1-based) where libyaml or the reader stopped.
 *
 * Plain C, no Lua; single-threaded per object.
 */
#ifndef MW_DISCOVERY_FILESD_H
#define MW_DISCOVERY_FILESD_H

#include <stddef.h>

/* ffi.cdef begin */
/* --- discovery.file: YAML to JSON, directory watches (discovery/filesd.c) ---------------- */

/* Converts the first YAML document of in[0..len) into JSON in a malloc'd, NUL-terminated
 * buffer *out of *out_len bytes (free it with mw_ffi_filesd_free). An empty document gives
 * "null". Output over max_out bytes, nesting deeper than 64, an anchor, an alias, a
 * non-scalar mapping key or a key repeated in its mapping (as Prometheus's strict YAML) fail.
 * Returns 0, or -1 with "line L, column C: reason" in err. */
int mw_ffi_filesd_yaml_to_json(const char *in, size_t len, size_t max_out, char **out,
                               size_t *out_len, char *err, size_t errlen);
void mw_ffi_filesd_free(char *p);
/* The modification time of path in seconds since the epoch, or -1 when it cannot be read. */
double mw_ffi_filesd_mtime(const char *path);

typedef struct mw_fswatch mw_fswatch_t;
/* A set of inotify directory watches (creations, deletions, writes, moves, attribute
 * changes). NULL with err when inotify is not available (the caller polls). */
mw_fswatch_t *mw_ffi_fswatch_new(char *err, size_t errlen);
void mw_ffi_fswatch_free(mw_fswatch_t *w);
/* The descriptor to wait on for readability. */
int mw_ffi_fswatch_fd(const mw_fswatch_t *w);
/* Watches directory dir (again: nothing; a directory whose watch the kernel dropped, as it
 * does when the directory is removed, is watched anew). 0, or -1 with err ("dir: reason"). */
int mw_ffi_fswatch_add(mw_fswatch_t *w, const char *dir, char *err, size_t errlen);
/* Reads the pending events (never blocks): the paths they name (dir/name; the directory
 * itself for an event on it; "" for an overflow, meaning anything may have changed), each
 * followed by a NUL, in one malloc'd buffer *out of *out_len bytes (free it with
 * mw_ffi_fs_free; NULL and 0 when none). Returns 0, or -1 when memory runs out. */
int mw_ffi_fswatch_drain(mw_fswatch_t *w, char **out, size_t *out_len);
/* ffi.cdef end */

#endif
