/* base/err.c: error messages into a caller's buffer (see base/err.h). */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void mw_vseterr(char *err, size_t errlen, const char *fmt, va_list ap) {
  if (!err || errlen == 0) return;
  vsnprintf(err, errlen, fmt, ap);
}

void mw_seterr(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  mw_vseterr(err, errlen, fmt, ap);
  va_end(ap);
}

void mw_vadderr(char *err, size_t errlen, const char *fmt, va_list ap) {
  if (!err || errlen == 0) return;
  size_t k = strnlen(err, errlen);
  if (k + 1 >= errlen) return;
  vsnprintf(err + k, errlen - k, fmt, ap);
}

void mw_adderr(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  mw_vadderr(err, errlen, fmt, ap);
  va_end(ap);
}

void mw_oom(char *err, size_t errlen) { mw_seterr(err, errlen, "out of memory"); }
