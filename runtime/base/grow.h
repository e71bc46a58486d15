/* base/grow.h: the one grow helper for malloc'd arrays (Redis's habit: one
 * helper, used everywhere). */
#ifndef MW_GROW_H
#define MW_GROW_H
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Makes *p (an array of *cap elements of size bytes, NULL when *cap is 0) hold
 * at least need elements: the capacity doubles from 16 until it does. 0, or -1
 * when out of memory or when the size would overflow (*p and *cap unchanged). */
static inline int mw_grow(void **p, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 16;
  while (c < need) {
    if (c > SIZE_MAX / 4 / size) return -1;
    c *= 2;
  }
  void *q = realloc(*p, c * size);
  if (!q) return -1;
  *p = q;
  *cap = c;
  return 0;
}

#endif
