/* base/err.h: the error messages every primitive writes into a caller's buffer
 * (char *err, size_t errlen: NULL or 0 means the caller does not want one). */
#ifndef MW_ERR_H
#define MW_ERR_H
#include <stddef.h>

/* Formats the message into err (truncated to errlen, always terminated). */
void mw_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* mw_seterr(err, errlen, "out of memory"). */
void mw_oom(char *err, size_t errlen);

#endif
