/* base/symtab.h: the process-wide symbol table of label names and values, and label
 * sets stored as symbol ids.
 *
 * Every distinct name or value string is held once, with a 32-bit id and a reference
 * count: 400,000 series of a few hundred targets repeat a few thousand strings, so a
 * label set stored as ids (1 or 2 bytes each) instead of its text (base/labels.h, 117
 * bytes for a node_exporter series) saves most of the label bytes (#14). Series tables
 * (model/series.h) store their label sets so and give the text back on demand.
 *
 * A stored label set ("symbolized"): for each label, in the text's order (sorted by
 * name), uvarint(name id) uvarint(value id). Two stored sets are equal exactly when the
 * label sets are, as long as both hold their references (a symbol's id is stable while
 * it is referenced).
 *
 * Process-wide, event loop thread only. */
#ifndef MW_SYMTAB_H
#define MW_SYMTAB_H
#include <stddef.h>
#include <stdint.h>

/* Bytes a stored set may need for a text of len bytes: a piece (name or value) per
 * separator at most, each id at most 5 bytes (whatever the text, even empty names). */
#define MW_SYMS_MAX(len) ((len)*5 + 10)

/* Stores the encoded label set text (len bytes, base/labels.h) into out (capacity at
 * least MW_SYMS_MAX(len)) as ids, taking a reference on each symbol (new ones are
 * made); the stored length. 0 with nothing taken if len is 0; (size_t)-1 on out of
 * memory or malformed text (nothing taken). */
size_t mw_syms_store(const uint8_t *text, size_t len, uint8_t *out);
/* Takes one more reference on every symbol of a stored set (a second owner of it). */
void mw_syms_ref(const uint8_t *st, size_t len);
/* Gives back one reference on every symbol of a stored set. */
void mw_syms_release(const uint8_t *st, size_t len);
/* The text length of a stored set. */
size_t mw_syms_text_len(const uint8_t *st, size_t len);
/* Writes the text of a stored set into out (capacity at least mw_syms_text_len); its
 * length. */
size_t mw_syms_text(const uint8_t *st, size_t len, uint8_t *out);
/* mw_labels_hash of a stored set's text, without a buffer for it. */
uint64_t mw_syms_text_hash(const uint8_t *st, size_t len);
/* 1 if the stored set st is the label set text, else 0. */
int mw_syms_eq_text(const uint8_t *st, size_t len, const uint8_t *text, size_t text_len);

/* A symbol: its bytes (not NUL-terminated; readable in whole 8-byte words, up to len
 * rounded up to 8, the rest zeros) and references; read only. */
typedef struct {
  char *s;
  uint32_t len;
  uint32_t refs;
} mw_sym_t;
/* The symbols, by id (the table's; it moves when a symbol is added). */
extern mw_sym_t *mw_syms_by_id;

/* The symbol at *p of a stored set (p below its end), *p advanced past it: with the
 * table's array, readers that copy the strings (the remote-write encoder) need no text. */
static inline const mw_sym_t *mw_syms_next(const uint8_t **p) {
  const uint8_t *q = *p;
  uint32_t v = *q & 0x7f;
  for (unsigned shift = 7; *q++ & 0x80; shift += 7)
    v |= (uint32_t)(*q & 0x7f) << shift;
  *p = q;
  return &mw_syms_by_id[v];
}

/* Distinct symbols now, and the bytes the table holds (entries, index, strings). */
size_t mw_syms_count(void);
size_t mw_syms_bytes(void);

/* ffi.cdef begin */
/* --- the label symbol table ------------------------------------------------ */

/* Distinct label names and values held now (mw_syms_count), the table's bytes in *bytes
 * (mw_syms_bytes): moonwatch_label_symbols and moonwatch_label_symbol_bytes. */
size_t mw_ffi_label_symbols(size_t *bytes);
/* ffi.cdef end */

#endif
