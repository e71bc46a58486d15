/* tail/tail.h: the file tailer of loki.source.file. One mw_tailer_t per component: it owns
 * the files it tails (open descriptors, read offsets, unfinished lines, decoders), their
 * positions file (<storage.path>/loki.source.file.<label>/positions.yml, Alloy's YAML),
 * and an inotify descriptor (polling when the kernel has none or polling is asked). It runs
 * on the event loop's thread: the Lua side calls mw_ffi_tail_read when the inotify
 * descriptor is readable or a poll timer fires, and gets a whole log-entry batch per call
 * (stream = the target's labels, already without __ labels, plus filename). Plain C: no
 * lua_State. The FFI surface is in ffi.h ("file tailing"). */
#ifndef MW_TAIL_H
#define MW_TAIL_H
#include "ffi.h"

/* Bytes read from a file per read(2). */
#define MW_TAIL_CHUNK (256u << 10)
/* Bound of max_line_size. */
#define MW_TAIL_MAX_LINE_LIMIT (64u << 20)

#endif
