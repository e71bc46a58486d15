/* base/intern.h: one shared, reference-counted copy of each string that many
 * owners hold the same (metric family names, HELP and UNIT texts: every target
 * of a job repeats them). Process-wide, event loop thread only. */
#ifndef MW_INTERN_H
#define MW_INTERN_H
#include <stddef.h>
#include <stdint.h>

/* An interned string: s[len] is a NUL. Owned by the table; read only. */
typedef struct mw_istr {
  uint32_t refs;
  uint32_t len;
  uint64_t hash;
  char s[];
} mw_istr_t;

/* A reference to the interned copy of s[0..len): the existing one (its count
 * raised) or a new one. NULL on out of memory. Give it back with
 * mw_intern_release. */
mw_istr_t *mw_intern(const char *s, size_t len);
/* 1 if x (NULL: none) holds s[0..len). */
static inline int mw_istr_is(const mw_istr_t *x, const char *s, size_t len) {
  return x && x->len == len && (len == 0 || __builtin_memcmp(x->s, s, len) == 0);
}
/* Gives back a reference (NULL is fine); the last one frees the string. */
void mw_intern_release(mw_istr_t *x);
/* Distinct strings interned now, and the bytes they hold (headers included). */
size_t mw_intern_count(void);
size_t mw_intern_bytes(void);

#endif
