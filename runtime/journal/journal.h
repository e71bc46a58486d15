/* runtime/journal/: the systemd journal reader of loki.source.journal (libsystemd's
 * sd-journal): opens the system journal or a directory of journal files, positions at a
 * saved cursor or at now - max_age, and turns entries into a log-entry batch in C: every
 * field as a __journal_<field lowercased> label (plus __journal_priority_keyword), the
 * constant labels, the relabel program, then the labels starting with "__" dropped; the
 * line is MESSAGE (or every field as a JSON object); the timestamp is the entry's
 * realtime timestamp.
 *
 * journal/journal.h: the reader. Its FFI surface is in ffi.h (mw_ffi_journal_*). One
 * reader is used by one thread at a time (sd-journal's rule). */
#ifndef MW_JOURNAL_H
#define MW_JOURNAL_H
#include <stddef.h>
#include <stdint.h>

#include "ffi.h"

/* Bounds: a field is copied for the labels when it is at most MW_JOURNAL_MAX_FIELD bytes
 * (longer ones, e.g. a core dump, are left out of the labels and of the JSON line); at most
 * MW_JOURNAL_MAX_FIELDS fields of an entry are read. */
#define MW_JOURNAL_MAX_FIELD (64u << 10)
#define MW_JOURNAL_MAX_FIELDS 1024u

/* The priority keyword Alloy gives to PRIORITY's value ("0".."7" -> emerg..debug); the
 * value itself when it is not one of them. *len gets its length. */
const char *mw_journal_priority_keyword(const char *v, size_t n, size_t *len);

#endif
