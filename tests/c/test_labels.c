/* Label sets: validation, canonical order, encoding, iteration, hashing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/labels.h"
#include "test.h"

#define L(n, v)                                                                                    \
  { n, v, (uint32_t)strlen(n), (uint32_t)strlen(v) }

static void test_names(void) {
  CHECK(mw_labels_valid_name("a", 1));
  CHECK(mw_labels_valid_name("_a9", 3));
  CHECK(!mw_labels_valid_name("9a", 2));
  CHECK(!mw_labels_valid_name("a:b", 3));
  CHECK(!mw_labels_valid_name("", 0));
  CHECK(mw_labels_valid_metric_name("a:b_c", 5));
  CHECK(mw_labels_valid_metric_name(":x", 2));
  CHECK(!mw_labels_valid_metric_name("a-b", 3));
  CHECK(!mw_labels_valid_metric_name("1a", 2));
  /* Prometheus 3's utf8 scheme: any non-empty valid UTF-8. */
  CHECK(mw_labels_valid_utf8_name("a", 1));
  CHECK(mw_labels_valid_utf8_name("my.metric", 9));
  CHECK(mw_labels_valid_utf8_name("1 \"x\"\n", 6));
  CHECK(mw_labels_valid_utf8_name("caf\xc3\xa9", 5));
  CHECK(!mw_labels_valid_utf8_name("", 0));
  CHECK(!mw_labels_valid_utf8_name("a\xff", 2));
  CHECK(!mw_labels_valid_utf8_name("\xc3(", 2));
}

static void test_utf8(void) {
  CHECK(mw_labels_valid_utf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
  CHECK(mw_labels_valid_utf8("a\0b", 3));
  CHECK(!mw_labels_valid_utf8("\xff", 1));
  CHECK(!mw_labels_valid_utf8("\xc0\xaf", 2));         /* overlong */
  CHECK(!mw_labels_valid_utf8("\xed\xa0\x80", 3));     /* surrogate */
  CHECK(!mw_labels_valid_utf8("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
  CHECK(!mw_labels_valid_utf8("\xe2\x82", 2));         /* truncated */
}

static void test_normalize_encode_iterate(void) {
  mw_label_t ls[] = {L("job", "node"), L("__name__", "up"), L("empty", ""), L("a", "1")};
  size_t n = 4;
  char err[128];
  CHECK_INT(mw_labels_normalize(ls, &n, err, sizeof err), 0);
  CHECK_INT(n, 3);
  uint8_t buf[128];
  size_t len;
  CHECK_INT(mw_labels_encoded_size(ls, n), 25);
  CHECK_INT(mw_labels_encode(ls, n, buf, sizeof buf, &len, err, sizeof err), 0);
  CHECK_INT(len, 25);
  CHECK(memcmp(buf,
               "__name__\xffup\xff"
               "a\xff"
               "1\xffjob\xffnode\xff",
               25) == 0);
  size_t pos = 0;
  mw_label_t l;
  CHECK_INT(mw_labels_next(buf, len, &pos, &l), 1);
  CHECK(l.name_len == 8 && memcmp(l.name, "__name__", 8) == 0);
  CHECK_INT(mw_labels_next(buf, len, &pos, &l), 1);
  CHECK(l.name_len == 1 && l.value_len == 1 && l.value[0] == '1');
  CHECK_INT(mw_labels_next(buf, len, &pos, &l), 1);
  CHECK(l.value_len == 4 && memcmp(l.value, "node", 4) == 0);
  CHECK_INT(mw_labels_next(buf, len, &pos, &l), 0);
  CHECK_INT(mw_labels_next(buf, 5, &(size_t){0}, &l), -1);
  CHECK(mw_labels_get(buf, len, "job", 3, &l) && l.value_len == 4);
  CHECK(!mw_labels_get(buf, len, "jo", 2, &l));
  CHECK(mw_labels_hash(buf, len) != 0);
  CHECK(mw_labels_hash(buf, len) == mw_labels_hash(buf, len));
  CHECK(mw_labels_hash(buf, len) != mw_labels_hash(buf, len - 1));
}

static void test_errors(void) {
  char err[128];
  mw_label_t dup[] = {L("b", "1"), L("a", "2"), L("b", "3")};
  size_t n = 3;
  CHECK_INT(mw_labels_normalize(dup, &n, err, sizeof err), -1);
  CHECK_STR(err, "label name \"b\" is not unique");
  uint8_t buf[64];
  size_t len;
  mw_label_t unsorted[] = {L("b", "1"), L("a", "2")};
  CHECK_INT(mw_labels_encode(unsorted, 2, buf, sizeof buf, &len, err, sizeof err), -1);
  mw_label_t bad[] = {L("a\xc3(", "1")};
  CHECK_INT(mw_labels_encode(bad, 1, buf, sizeof buf, &len, err, sizeof err), -1);
  CHECK_STR(err, "invalid label name \"a\xc3(\"");
  mw_label_t empty[] = {L("", "1")};
  CHECK_INT(mw_labels_encode(empty, 1, buf, sizeof buf, &len, err, sizeof err), -1);
  mw_label_t badname[] = {L("__name__", "x\xe2\x82")};
  CHECK_INT(mw_labels_encode(badname, 1, buf, sizeof buf, &len, err, sizeof err), -1);
  CHECK_STR(err, "invalid metric name \"x\xe2\x82\"");
  /* UTF-8 names (Prometheus 3) are label sets like any other. */
  mw_label_t utf8[] = {L("__name__", "my.metric"), L("caf\xc3\xa9 \"au lait\"", "1"),
                       L("my.label", "v")};
  CHECK_INT(mw_labels_encode(utf8, 3, buf, sizeof buf, &len, err, sizeof err), 0);
  mw_label_t got;
  CHECK(mw_labels_get(buf, len, "my.label", 8, &got) && got.value_len == 1);
  CHECK(mw_labels_get(buf, len, "__name__", 8, &got) && got.value_len == 9);
  mw_label_t sep[] = {L("a", "x\xffy")};
  CHECK_INT(mw_labels_encode(sep, 1, buf, sizeof buf, &len, err, sizeof err), -1);
  mw_label_t big[] = {L("a", "0123456789")};
  CHECK_INT(mw_labels_encode(big, 1, buf, 5, &len, err, sizeof err), -1);
}

/* mw_labels_next finds each separator wherever it falls in an 8-byte word,
 * next to bytes that a word-at-a-time scan could mistake for one (0xFE,
 * 0x7F, 0x80, 0x00, 0x01), in sets of every length up to 3 x 20 bytes. */
static void test_next_every_offset(void) {
  static const uint8_t fill[] = {'a', 0xfe, 0x7f, 0x80, 0x00, 0x01, 0xef};
  uint8_t enc[128];
  for (size_t f = 0; f < sizeof fill; f++)
    for (size_t nl = 0; nl <= 20; nl++)
      for (size_t vl = 0; vl <= 20; vl++) {
        size_t len = 0;
        for (int k = 0; k < 2; k++) { /* two labels: name nl bytes, value vl */
          for (size_t i = 0; i < nl; i++)
            enc[len++] = fill[(f + i) % sizeof fill];
          enc[len++] = 0xff;
          for (size_t i = 0; i < vl; i++)
            enc[len++] = fill[(f + i + 3) % sizeof fill];
          enc[len++] = 0xff;
        }
        size_t pos = 0;
        mw_label_t l;
        for (int k = 0; k < 2; k++) {
          CHECK_INT(mw_labels_next(enc, len, &pos, &l), 1);
          CHECK_INT(l.name_len, nl);
          CHECK_INT(l.value_len, vl);
          CHECK(l.name == (const char *)enc + (size_t)k * (nl + vl + 2));
          CHECK(l.value == l.name + nl + 1);
        }
        CHECK_INT(mw_labels_next(enc, len, &pos, &l), 0);
        /* without its last separator the set is malformed */
        pos = nl + vl + 2;
        CHECK_INT(mw_labels_next(enc, len - 1, &pos, &l), -1);
      }
}

/* Pairs in any order become one canonical encoded set; scratch arrays are reused. */
static void test_from_pairs(void) {
  mw_label_t *ls = NULL;
  uint8_t *enc = NULL;
  size_t ls_cap = 0, enc_cap = 0, len = 99;
  char err[128];
  const char in[] = "job\xffnode\xff"
                    "empty\xff\xff"
                    "__name__\xffup\xff";
  CHECK_INT(
      mw_labels_from_pairs(in, sizeof in - 1, &ls, &ls_cap, &enc, &enc_cap, &len, err, sizeof err),
      0);
  const char want[] = "__name__\xffup\xffjob\xffnode\xff";
  CHECK_INT(len, sizeof want - 1);
  CHECK(memcmp(enc, want, len) == 0);
  CHECK_INT(mw_labels_from_pairs("", 0, &ls, &ls_cap, &enc, &enc_cap, &len, err, sizeof err), 0);
  CHECK_INT(len, 0);
  CHECK_INT(mw_labels_from_pairs("a\xff", 2, &ls, &ls_cap, &enc, &enc_cap, &len, err, sizeof err),
            -1);
  CHECK_STR(err, "malformed label pairs");
  const char dup[] = "a\xff"
                     "1\xff"
                     "a\xff"
                     "2\xff";
  CHECK_INT(mw_labels_from_pairs(dup, sizeof dup - 1, &ls, &ls_cap, &enc, &enc_cap, &len, err,
                                 sizeof err),
            -1);
  CHECK(strstr(err, "not unique") != NULL);
  free(ls);
  free(enc);
}

int main(void) {
  MW_RUN(test_names);
  MW_RUN(test_utf8);
  MW_RUN(test_normalize_encode_iterate);
  MW_RUN(test_errors);
  MW_RUN(test_next_every_offset);
  MW_RUN(test_from_pairs);
  return mw_test_summary();
}
