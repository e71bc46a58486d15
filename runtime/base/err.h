/* base/err.h: the one writer of the error messages every primitive puts into a caller's buffer
 * (char *err, size_t errlen: NULL or 0 means the caller does not want one). */
#ifndef MW_ERR_H
#define MW_ERR_H
#include <stdarg.h>
#include <stddef.h>

/* Formats the message into err (truncated to errlen, always terminated). */
void mw_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same with a va_list. */
void mw_vseterr(char *err, size_t errlen, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* Appends to the message already in err (a prefix such as "line 3: ", or a
 * suffix such as " (at offset 7)"); nothing when err is already full. */
void mw_adderr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void mw_vadderr(char *err, size_t errlen, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* mw_seterr(err, errlen, "out of memory"). */
void mw_oom(char *err, size_t errlen);
/* The message of a body past its size limit (the HTTP client's max_body, a gzip body's
 * max_out), as Prometheus words it; callers compare with it. */
#define MW_ERR_BODY_LIMIT "body size limit exceeded"

#endif
