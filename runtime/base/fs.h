/* base/fs.h: the file-system calls Lua needs (base/fs.c), so that nothing on the
 * event loop shells out to mkdir(1) or find(1). */
#ifndef MW_FS_H
#define MW_FS_H
#include <stddef.h>
#include <stdint.h>

/* ffi.cdef begin */
/* --- files (runtime/base/fs.c) ----------------------------------------- */

/* Creates directory path and its missing parents (mode 0777 less the umask),
 * as `mkdir -p`: an existing directory is fine. 0, or -1 with err naming the
 * path that could not be made ("PATH: reason"). */
int mw_ffi_fs_mkdir_p(const char *path, char *err, size_t errlen);
/* The files under dir (any depth; symbolic links to directories are not
 * followed, as find(1)) whose names end with suffix: their paths relative to
 * dir, '/'-separated, sorted, each followed by a NUL, in one malloc'd buffer
 * *out of *out_len bytes (free it with mw_ffi_fs_free; NULL and 0 when none).
 * Unreadable subdirectories are skipped. 0, or -1 with err when dir itself
 * cannot be read or memory runs out. */
int mw_ffi_fs_find(const char *dir, const char *suffix, char **out, size_t *out_len, char *err,
                   size_t errlen);
void mw_ffi_fs_free(char *p);
/* The process's working directory into buf[0..len) (getcwd(3)). 0, or -1 with err. */
int mw_ffi_fs_getcwd(char *buf, size_t len, char *err, size_t errlen);
/* ffi.cdef end */

#endif
