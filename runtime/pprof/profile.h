/* runtime/pprof/: profiles of the moonwatch process itself as pprof serves them (google/pprof's
 * profile.proto, compiled with protoc-c, gzipped with libdeflate): a profile builder
 * (profile.c), the CPU sampler (cpu.c) and a decoder for checks and tests (profile.c). It
 * knows nothing of Lua: Lua stacks come in as text.
 *
 * pprof/profile.h: building a profile. A builder collects sample types, locations (an
 * instruction address, symbolized with dladdr against the executable mappings of
 * /proc/self/maps, or a named function at a file:line) and samples, then writes the
 * profile.proto message, gzipped or not. */
#ifndef MW_PPROF_PROFILE_H
#define MW_PPROF_PROFILE_H
#include <stddef.h>
#include <stdint.h>

/* ffi.cdef begin */
/* --- pprof profiles (runtime/pprof/profile.h) -------------------------- */

typedef struct mw_pprof mw_pprof_t;

/* A new, empty builder; NULL when out of memory. */
mw_pprof_t *mw_ffi_pprof_new(void);
void mw_ffi_pprof_free(mw_pprof_t *p);
/* Appends a sample type (e.g. "samples"/"count"); every sample carries one value per type,
 * in this order. 0, -1 on OOM. */
int mw_ffi_pprof_sample_type(mw_pprof_t *p, const char *type, const char *unit);
/* The period type and period, the start time and duration (ns), the default sample type
 * (NULL: none). 0, -1 on OOM. */
int mw_ffi_pprof_meta(mw_pprof_t *p, const char *period_type, const char *period_unit,
                      int64_t period, int64_t time_ns, int64_t duration_ns,
                      const char *default_type);
/* Appends a comment. 0, -1 on OOM. */
int mw_ffi_pprof_comment(mw_pprof_t *p, const char *text);
/* The location of function name (defined in file at start_line; file may be "") at line;
 * the same arguments give the same id. A location id (> 0), 0 on OOM. */
uint64_t mw_ffi_pprof_func_location(mw_pprof_t *p, const char *name, const char *file,
                                    int64_t start_line, int64_t line);
/* The location of an instruction address pc of this process (leaf: the interrupted
 * instruction; otherwise a return address, symbolized as pc - 1). > 0, 0 on OOM. */
uint64_t mw_ffi_pprof_addr_location(mw_pprof_t *p, uint64_t pc, int leaf);
/* Appends a sample: nlocs location ids (leaf first), one value per sample type (nvalues must
 * equal their count), labels as nlabels pairs of NUL-terminated key and value strings
 * packed one after the other in labels. 0, -1 on OOM or a wrong value count. */
int mw_ffi_pprof_sample(mw_pprof_t *p, const uint64_t *locs, size_t nlocs, const int64_t *values,
                        size_t nvalues, const char *labels, size_t nlabels);
/* The profile.proto message of everything added, gzipped (gzip != 0) or not; *out owned by p,
 * valid until the next finish or free. 0, -1 with err. */
int mw_ffi_pprof_finish(mw_pprof_t *p, int gzip, const uint8_t **out, size_t *len, char *err,
                        size_t errlen);

/* Checks a profile as pprof reads one (gzipped or not): the message decodes, string_table[0]
 * is "", every index into the string table is in range, every sample has one value per
 * sample type and names existing locations, every location names existing functions and
 * mappings. On success *nsamples, *ntypes are set. 0, -1 with err naming what is wrong. */
int mw_ffi_pprof_check(const uint8_t *data, size_t len, size_t *nsamples, size_t *ntypes, char *err,
                       size_t errlen);
/* Delta profiles of cumulative ones, as Alloy's pyroscope.scrape makes them for memory, mutex
 * and block (its deltaAppender): each profile given has, for the sample types named in types
 * (nul-separated "type\0unit\0" pairs, at most 4), the value of every sample (by its stack:
 * addresses, functions, files and lines, and its labels) minus that of the profile given
 * before; a value that went down (a restart) is kept as it is. Samples with the same stack and
 * labels are summed into the first; samples left with no value but 0 are dropped; its
 * duration_nanos is the time since the last profile's time_nanos (Alloy's fastdelta). The first
 * profile has nothing to be a delta of. A profile without these sample types is passed on as
 * it is. NULL when out of memory. */
typedef struct mw_pprof_delta mw_pprof_delta_t;
mw_pprof_delta_t *mw_ffi_pprof_delta_new(const char *types, size_t ntypes);
void mw_ffi_pprof_delta_free(mw_pprof_delta_t *d);
/* The delta of data (gzipped or not): *out (gzipped; a profile passed on is as given; owned by
 * d, valid until its next call) and *outlen, 0 for the first profile (nothing to send). 0, or -1
 * with err (not a profile). */
int mw_ffi_pprof_delta_next(mw_pprof_delta_t *d, const uint8_t *data, size_t len,
                            const uint8_t **out, size_t *outlen, char *err, size_t errlen);
/* The name of the function at pc in this process into buf (see mw_pprof_symbol). 0, -1. */
int mw_ffi_pprof_symbol(uint64_t pc, char *buf, size_t buflen);
/* The C heap as glibc's mallinfo2 counts it (main arena): bytes in use in chunks, bytes in
 * mmapped chunks, free bytes held. */
void mw_ffi_pprof_mallinfo(uint64_t *inuse, uint64_t *mmapped, uint64_t *free_bytes);
/* ffi.cdef end */

/* The name of the function at pc in this process (dladdr with the symbol's size: a pc past
 * the end of the nearest exported symbol has no name) into buf; its object file into *file
 * (static storage, may be NULL). 0 found, -1 not. */
int mw_pprof_symbol(uint64_t pc, char *buf, size_t buflen, const char **file);

#endif
