/* runtime/journal/: the systemd journal reader of loki.source.journal (libsystemd's
 * sd-journal): opens the system journal or a directory of journal files, positions at a
 * saved cursor or at now - max_age, and turns entries into a log-entry batch in C: every
 * field as a __journal_<field lowercased> label (plus __journal_priority_keyword), the
 * constant labels, the relabel program, then the labels starting with "__" dropped; the
 * line is MESSAGE (or every field as a JSON object); the timestamp is the entry's
 * realtime timestamp.
 *
 * journal/journal.h: the reader (mw_ffi_journal_*, its FFI surface). One reader is used by
 * one thread at a time (sd-journal's rule). */
#ifndef MW_JOURNAL_H
#define MW_JOURNAL_H
#include <stddef.h>
#include <stdint.h>

#include "model/logbatch.h"
#include "relabel/relabel.h"

/* Bounds: a field is copied for the labels when it is at most MW_JOURNAL_MAX_FIELD bytes
 * (longer ones, e.g. a core dump, are left out of the labels and of the JSON line); at most
 * MW_JOURNAL_MAX_FIELDS fields of an entry are read. */
#define MW_JOURNAL_MAX_FIELD (64u << 10)
#define MW_JOURNAL_MAX_FIELDS 1024u

/* The priority keyword Alloy gives to PRIORITY's value ("0".."7" -> emerg..debug); the
 * value itself when it is not one of them. *len gets its length. */
const char *mw_journal_priority_keyword(const char *v, size_t n, size_t *len);

/* ffi.cdef begin */
/* --- systemd journal (runtime/journal/journal.h) --- */
/* A reader of the system journal or of a directory of journal files (sd-journal),
 * filling log-entry batches in C for loki.source.journal. */
typedef struct mw_journal mw_journal_t;
typedef struct {
  uint64_t entries;      /* journal entries read */
  uint64_t lines;        /* entries added to the batch */
  uint64_t no_message;   /* left out: no MESSAGE field (format_as_json false) */
  uint64_t empty_labels; /* left out: no label left after relabeling */
} mw_journal_stats_t;
/* Opens the journal files in directory path (NULL or "": the system's journal, local
 * only) with matches: "FIELD=value" strings, each followed by a NUL, matches_len bytes in
 * all (fields ANDed, values of one field ORed). NULL with err on failure. */
mw_journal_t *mw_ffi_journal_open(const char *path, const char *matches, size_t matches_len,
                                  char *err, size_t errlen);
void mw_ffi_journal_close(mw_journal_t *j);
/* Positions the reader after the entry of cursor (NULL or "": none), or at now - max_age
 * when there is no cursor, it is not valid, or its entry is older than max_age. 0 (after
 * the cursor), 1 (at now - max_age), -1 with err. */
int mw_ffi_journal_seek(mw_journal_t *j, const char *cursor, uint64_t max_age_usec, char *err,
                        size_t errlen);
/* The relabel program applied to each entry's labels (NULL: none; kept alive by the
 * caller) and the line format (json != 0: every field as a JSON object). */
void mw_ffi_journal_configure(mw_journal_t *j, const mw_ffi_relabel_program_t *p, int json);
/* The constant labels (name 0xFF value 0xFF pairs), added to every entry before relabeling.
 * 0, or -1 with err (a name twice, an invalid name). */
int mw_ffi_journal_set_labels(mw_journal_t *j, const char *pairs, size_t len, char *err,
                              size_t errlen);
/* Reads entries into b (emptied first) until max_entries were read, the lines reach
 * max_bytes, or the journal has no more (*at_end = 1). The number of entries read (>= 0;
 * some may be left out, see *st), or -1 with err. */
int64_t mw_ffi_journal_read(mw_journal_t *j, mw_logbatch_t *b, uint32_t max_entries,
                            size_t max_bytes, mw_journal_stats_t *st, int *at_end, char *err,
                            size_t errlen);
/* The cursor of the last entry read (owned by j, valid until its next read/seek), or NULL. */
const char *mw_ffi_journal_cursor(const mw_journal_t *j);
/* The file descriptor that becomes readable when the journal changes (poll it, then
 * call _process before reading again). */
int mw_ffi_journal_fd(const mw_journal_t *j);
/* Processes the changes the fd signalled: >= 0, -1 on error. */
int mw_ffi_journal_process(mw_journal_t *j);
/* ffi.cdef end */

#endif
