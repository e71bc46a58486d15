/* base/err.c: error messages into a caller's buffer (see base/err.h). */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>

void mw_seterr(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

void mw_oom(char *err, size_t errlen) { mw_seterr(err, errlen, "out of memory"); }
