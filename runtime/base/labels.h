/* runtime/base/: what every subsystem stands on: the arena, error messages, growable arrays,
 * CRC-32C, label sets, string interning, RE2 regexes on PCRE2, files, clocks and build facts,
 * and the shutdown watchdog. It includes nothing else of the runtime.
 *
 * base/labels.h: label pairs as the C primitives exchange them, and label sets
 * (sorted, validated, hashed, encoded as one byte string). */
#ifndef MW_LABELS_H
#define MW_LABELS_H
#include <stddef.h>
#include <stdint.h>

/* One label: name and value are not NUL-terminated; the owner of the bytes is
 * whoever produced the array (a parser's buffer, a series table, a builder). */
typedef struct {
  const char *name;
  const char *value;
  uint32_t name_len;
  uint32_t value_len;
} mw_label_t;

/* The encoded form of a label set, as series tables store it and every module
 * exchanges it: for each label, sorted by name (bytewise), unique names,
 *
 *     name 0xFF value 0xFF
 *
 * e.g. "__name__\xffup\xffjob\xffnode\xff". 0xFF never occurs in valid UTF-8,
 * of which names (mw_labels_valid_utf8_name) and values are, so the separator
 * is unambiguous; encoders reject a value that contains it. Iterate with
 * mw_labels_next. */
#define MW_LABELS_SEP 0xff

/* 1 if s is a valid label name under the legacy scheme (Prometheus 2)
 * [a-zA-Z_][a-zA-Z0-9_]*, else 0. */
int mw_labels_valid_name(const char *s, size_t n);
/* 1 if s is a valid metric name under the legacy scheme [a-zA-Z_:][a-zA-Z0-9_:]*,
 * else 0. */
int mw_labels_valid_metric_name(const char *s, size_t n);
/* 1 if s is a valid metric or label name under the utf8 scheme (Prometheus 3,
 * the default of its parsers, remote write and storage): not empty and valid
 * UTF-8 (so without byte 0xFF); else 0. Every legacy name is one. */
int mw_labels_valid_utf8_name(const char *s, size_t n);
/* 1 if s is valid UTF-8 (no overlong forms, no surrogates, <= U+10FFFF), as
 * Go's utf8.Valid; else 0. */
int mw_labels_valid_utf8(const char *s, size_t n);

/* Sorts ls by name (bytewise, shorter prefix first), in place. Stable. */
void mw_labels_sort(mw_label_t *ls, size_t n);

/* Makes ls canonical in place: sorts by name and drops labels whose value is
 * empty (Prometheus treats name="" as absent); *n is updated. Fails (-1, err
 * filled, ls left sorted) if a name occurs twice, with Prometheus's message
 * `label name "x" is not unique`. Names are not validated here. */
int mw_labels_normalize(mw_label_t *ls, size_t *n, char *err, size_t errlen);

/* Bytes mw_labels_encode needs for ls. */
size_t mw_labels_encoded_size(const mw_label_t *ls, size_t n);

/* Encodes the canonical (sorted, unique) set ls into out (capacity cap, at
 * least mw_labels_encoded_size bytes) and stores the length in *len. Fails
 * (-1, err filled) if ls is not sorted/unique, a name or the value of
 * __name__ is not a name under the utf8 scheme (mw_labels_valid_utf8_name:
 * label sets carry Prometheus 3's names; a scrape under the legacy scheme
 * refuses the others when it parses), a value contains 0xFF, or out is too
 * small. The caller owns out. */
int mw_labels_encode(const mw_label_t *ls, size_t n, uint8_t *out, size_t cap, size_t *len,
                     char *err, size_t errlen);

/* Iterates an encoded set: reads the label at *pos into *out (pointers into
 * enc, valid as long as enc is) and advances *pos. Returns 1 for a label, 0 at
 * the end, -1 if enc is malformed. Start with *pos = 0. */
int mw_labels_next(const uint8_t *enc, size_t len, size_t *pos, mw_label_t *out);

/* Finds the label called name in an encoded set; 1 and *out filled if found,
 * else 0. */
int mw_labels_get(const uint8_t *enc, size_t len, const char *name, size_t name_len,
                  mw_label_t *out);

/* The 64-bit hash of an encoded set (XXH3_64bits of the bytes). */
uint64_t mw_labels_hash(const uint8_t *enc, size_t len);

#endif
