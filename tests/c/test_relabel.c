/* The relabel engine against Prometheus's semantics: a table of label sets run through
 * rule lists (cases adapted from Prometheus's docs and model/relabel/relabel_test.go),
 * validation messages, RE2 rejections and the FFI surface. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/re2.h"
#include "ffi.h"
#include "relabel/relabel.h"
#include "test.h"

/* The tables below leave trailing fields (action, modulus, utf8) to their zero default. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

typedef struct {
  const char *src[5]; /* source_labels, NULL-terminated */
  const char *sep, *regex, *repl, *target, *action;
  uint64_t modulus;
  uint32_t utf8;
} spec_t;

typedef struct {
  const char *name;
  spec_t rules[4];    /* ends at the first all-zero rule */
  const char *in[24]; /* name, value, ..., NULL */
  const char *out;    /* "a=1,b=2" (sorted); NULL: dropped */
} case_t;

static int spec_empty(const spec_t *r) {
  return !r->src[0] && !r->sep && !r->regex && !r->repl && !r->target && !r->action && !r->modulus;
}

static mw_relabel_str_t S(const char *z) {
  return (mw_relabel_str_t){z, z ? (uint32_t)strlen(z) : 0};
}

/* Builds rules from specs; srcs must hold 5 * n strings. Returns the count. */
static size_t build(const spec_t *specs, size_t max, mw_relabel_rule_t *rules,
                    mw_relabel_str_t *srcs) {
  size_t n = 0;
  for (; n < max && !spec_empty(&specs[n]); n++) {
    const spec_t *sp = &specs[n];
    mw_relabel_rule_t *r = &rules[n];
    memset(r, 0, sizeof *r);
    uint32_t k = 0;
    while (k < 5 && sp->src[k]) {
      srcs[n * 5 + k] = S(sp->src[k]);
      k++;
    }
    r->source_labels = &srcs[n * 5];
    r->n_source_labels = k;
    r->separator = S(sp->sep);
    r->regex = S(sp->regex);
    r->replacement = S(sp->repl);
    r->target_label = S(sp->target);
    r->action = S(sp->action);
    r->modulus = sp->modulus;
    r->name_validation = sp->utf8;
  }
  return n;
}

static void fmt_labels(char *buf, size_t size, const mw_label_t *ls, size_t n) {
  size_t o = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < n && o < size; i++)
    o += (size_t)snprintf(buf + o, size - o, "%s%.*s=%.*s", i ? "," : "", (int)ls[i].name_len,
                          ls[i].name, (int)ls[i].value_len, ls[i].value);
}

/* Compiles specs (expecting success) and applies them to in, forwards or reversed. */
static int run(const spec_t *specs, const char *const *in, int reverse, char *got, size_t size,
               char *err, size_t err_size) {
  mw_relabel_rule_t rules[4];
  mw_relabel_str_t srcs[20];
  mw_label_t ls[12];
  size_t n = build(specs, 4, rules, srcs), nl = 0;
  mw_relabel_program_t *p = NULL;
  if (mw_relabel_compile(rules, n, &p, err, err_size) < 0) return -2;
  while (in[2 * nl])
    nl++;
  for (size_t i = 0; i < nl; i++) {
    size_t j = reverse ? nl - 1 - i : i;
    ls[i] = (mw_label_t){in[2 * j], in[2 * j + 1], (uint32_t)strlen(in[2 * j]),
                         (uint32_t)strlen(in[2 * j + 1])};
  }
  mw_relabel_scratch_t *s = mw_relabel_scratch_new();
  const mw_label_t *out;
  size_t on;
  int rc = mw_relabel_apply(p, s, ls, nl, &out, &on);
  if (rc == 1) fmt_labels(got, size, out, on);
  mw_relabel_scratch_free(s);
  mw_relabel_program_free(p);
  return rc;
}

static const case_t cases[] = {
    /* --- replace (relabel_test.go) --- */
    {"replace ${1}",
     {{{"a"}, ";", "f(.*)", "ch${1}-ch${1}", "d", "replace"}},
     {"a", "foo", "b", "bar", "c", "baz"},
     "a=foo,b=bar,c=baz,d=choo-choo"},
    {"replace chained, two sources",
     {{{"a", "b"}, ";", "f(.*);(.*)r", "b${1}${2}m", "a", "replace"},
      {{"c", "a"}, ";", "(b).*b(.*)ba(.*)", "$1$2$2$3", "d", "replace"}},
     {"a", "foo", "b", "bar", "c", "baz"},
     "a=boobam,b=bar,c=baz,d=boooom"},
    {"replace .*(b).*", {{{"a"}, NULL, ".*(b).*", "$1", "d"}}, {"a", "abc"}, "a=abc,d=b"},
    {"replace no match changes nothing", {{{"a"}, NULL, "f", "bar", "b"}}, {"a", "boo"}, "a=boo"},
    {"replace empty result deletes target",
     {{{"a"}, NULL, "(f).*", "$2", "$1"}},
     {"a", "foo", "f", "baz"},
     "a=foo"},
    {"replace target and value from groups",
     {{{"a"}, NULL, "some-([^-]+)-([^,]+)", "${2}", "${1}"}},
     {"a", "some-name-value"},
     "a=some-name-value,name=value"},
    {"replace nonexistent group expands empty",
     {{{"a"}, NULL, "some-([^-]+)-([^,]+)", "${3}", "${1}"}},
     {"a", "some-name-value"},
     "a=some-name-value"},
    {"replace invalid target label is skipped",
     {{{"a"}, NULL, "some-([^-]+)-([^,]+)", "${1}", "${3}"},
      {{"a"}, NULL, "some-([^-]+)(-[^,]+)", "${1}", "${3}"},
      {{"a"}, NULL, "(.*)", "x", "${1}"}},
     {"a", "some-name-0"},
     "a=some-name-0"},
    {"replace sd tags",
     {{{"__meta_sd_tags"}, NULL, "(?:.+,|^)path:(/[^,]+).*", "${1}", "__metrics_path__"},
      {{"__meta_sd_tags"}, NULL, "(?:.+,|^)job:([^,]+).*", "${1}", "job"},
      {{"__meta_sd_tags"}, NULL, "(?:.+,|^)label:([^=]+)=([^,]+).*", "${2}", "${1}"}},
     {"__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar"},
     "__meta_sd_tags=path:/secret,job:some-job,label:foo=bar,__metrics_path__=/secret,foo=bar,"
     "job=some-job"},
    {"issue 12283: labeldrop then replace the same name",
     {{{NULL}, NULL, "^__meta_kubernetes_pod_container_port_name$", NULL, NULL, "labeldrop"},
      {{"__meta_kubernetes_pod_annotation_XXX_metrics_port"},
       NULL,
       "(.+)",
       "metrics",
       "__meta_kubernetes_pod_container_port_name"},
      {{"__meta_kubernetes_pod_container_port_name"}, NULL, "^metrics$", NULL, NULL, "keep"}},
     {"__meta_kubernetes_pod_container_port_name", "foo",
      "__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"},
     "__meta_kubernetes_pod_annotation_XXX_metrics_port=9091,"
     "__meta_kubernetes_pod_container_port_name=metrics"},
    {"dot matches newline",
     {{{"a"}, NULL, "line1.*line2", "match${1}", "d"}},
     {"a", "line1\nline2"},
     "a=line1\nline2,d=match"},
    {"named groups ${name} and $name",
     {{{"a"}, NULL, "(line1).*(?<second>line2)", "val_${second}", "label1_${1}"},
      {{"a"}, NULL, "(line1).*(?P<second>line2)", "val_$second", "label2_$1"}},
     {"a", "line1\nline2"},
     "a=line1\nline2,label1_line1=val_line2,label2_line1=val_line2"},
    {"$ inside the regex",
     {{{"__name__"}, NULL, ".*_total$", "counter", "__type__"}},
     {"__name__", "http_requests_total"},
     "__name__=http_requests_total,__type__=counter"},
    {"static replacement without sources",
     {{{NULL}, NULL, NULL, "dev", "cluster"}},
     {"a", "1"},
     "a=1,cluster=dev"},
    {"${0} target is skipped, ${0} replacement deletes",
     {{{NULL}, NULL, NULL, "dropped", "${0}"}, {{NULL}, NULL, NULL, "${0}", "dropped"}},
     {"dropped", "x"},
     ""},
    /* --- replacement expansion edge cases --- */
    {"$1x is the group named 1x",
     {{{"a"}, NULL, "(f)(o+)", "[$1x]", "d"}},
     {"a", "foo"},
     "a=foo,d=[]"},
    {"${1}x", {{{"a"}, NULL, "(f)(o+)", "${1}x$2", "d"}}, {"a", "foo"}, "a=foo,d=fxoo"},
    {"$$ is a literal $",
     {{{"a"}, NULL, "(f)(o+)", "$$1 a$$$1", "d"}},
     {"a", "foo"},
     "a=foo,d=$1 a$f"},
    {"malformed $ stays literal",
     {{{"a"}, NULL, "(f)(o+)", "c: $ ${1 $! ${}", "d"}},
     {"a", "foo"},
     "a=foo,d=c: $ ${1 $! ${}"},
    {"$0, $10 and $01",
     {{{"a"}, NULL, "(f)(o+)", "$0|$10|$01|", "d"}},
     {"a", "foo"},
     "a=foo,d=foo|||"},
    {"unset optional group", {{{"a"}, NULL, "(a)?(b)", "[$1$2]", "d"}}, {"a", "b"}, "a=b,d=[b]"},
    {"unknown name expands empty",
     {{{"a"}, NULL, "(?P<x>f)oo", "[${y}${x}]", "d"}},
     {"a", "foo"},
     "a=foo,d=[f]"},
    {"non-ASCII letters extend a $name",
     {{{"a"}, NULL, "(f)oo", "$1\xc3\xa9|${1}\xc3\xa9", "d"}},
     {"a", "foo"},
     "a=foo,d=|f\xc3\xa9"},
    /* --- sources, separator, empty values --- */
    {"missing source joins as empty",
     {{{"x", "a"}, NULL, ";(.*)", "$1", "d"}},
     {"a", "foo"},
     "a=foo,d=foo"},
    {"custom separator",
     {{{"a", "b"}, "::", "(.*)", "$1", "d"}},
     {"a", "x", "b", "y"},
     "a=x,b=y,d=x::y"},
    {"explicit empty separator",
     {{{"a", "b"}, "", "(.*)", "$1", "d"}},
     {"a", "x", "b", "y"},
     "a=x,b=y,d=xy"},
    {"empty value counts as absent",
     {{{"e"}, NULL, "", NULL, NULL, "keep"}},
     {"a", "1", "e", ""},
     "a=1,e="},
    {"explicit empty regex matches only empty",
     {{{"a"}, NULL, "", NULL, NULL, "drop"}},
     {"a", "1"},
     "a=1"},
    {"unsorted input comes out sorted",
     {{{"b"}, NULL, NULL, NULL, "a"}},
     {"c", "3", "b", "2", "d", "4"},
     "a=2,b=2,c=3,d=4"},
    /* --- keep / drop --- */
    {"drop on match", {{{"a"}, NULL, ".*o.*", NULL, NULL, "drop"}}, {"a", "foo", "b", "bar"}, NULL},
    {"drop stops the rule list",
     {{{"a"}, NULL, ".*o.*", NULL, NULL, "drop"}, {{"a"}, NULL, "f(.*)", "ch$1", "d"}},
     {"a", "foo"},
     NULL},
    {"drop no match", {{{"a"}, NULL, "no-match", NULL, NULL, "drop"}}, {"a", "foo"}, "a=foo"},
    {"drop is anchored", {{{"a"}, NULL, "f|o", NULL, NULL, "drop"}}, {"a", "foo"}, "a=foo"},
    {"keep no match", {{{"a"}, NULL, "no-match", NULL, NULL, "keep"}}, {"a", "foo"}, NULL},
    {"keep match", {{{"a"}, NULL, "f.*", NULL, NULL, "Keep"}}, {"a", "foo"}, "a=foo"},
    {"$ is end of text only", {{{"a"}, NULL, "abc", NULL, NULL, "keep"}}, {"a", "abc\n"}, NULL},
    {"(?m)^ matches after a final newline (Go)",
     {{{"a"}, NULL, "(?m)a\\n^", NULL, NULL, "keep"}},
     {"a", "a\n"},
     "a=a\n"},
    {"(?i) flag", {{{"a"}, NULL, "(?i)FOO|bar", NULL, NULL, "keep"}}, {"a", "foo"}, "a=foo"},
    {"\\s excludes \\v", {{{"a"}, NULL, "a\\sb", NULL, NULL, "keep"}}, {"a", "a\vb"}, NULL},
    {"\\v is VT", {{{"a"}, NULL, "a\\vb\\s", NULL, NULL, "keep"}}, {"a", "a\vb "}, "a=a\vb "},
    {"octal escape", {{{"a"}, NULL, "\\101\\0", NULL, NULL, "keep"}}, {"a", "A"}, NULL},
    {"octal escape 2", {{{"a"}, NULL, "\\101x", NULL, NULL, "keep"}}, {"a", "Ax"}, "a=Ax"},
    {"{ that is no quantifier is literal",
     {{{"a"}, NULL, "a{,2}b{", NULL, NULL, "keep"}},
     {"a", "a{,2}b{"},
     "a=a{,2}b{"},
    {"counted repetition", {{{"a"}, NULL, "a{2,3}", NULL, NULL, "keep"}}, {"a", "aaaa"}, NULL},
    {"\\Q...\\E", {{{"a"}, NULL, "\\Q.*\\E", NULL, NULL, "keep"}}, {"a", "xx"}, NULL},
    {"\\Q...\\E literal", {{{"a"}, NULL, "x\\Q.*\\E", NULL, NULL, "keep"}}, {"a", "x.*"}, "a=x.*"},
    {"] first in a class", {{{"a"}, NULL, "[]a]+", NULL, NULL, "keep"}}, {"a", "]a]"}, "a=]a]"},
    {"escaped literal", {{{"a"}, NULL, "foo\\.bar", NULL, NULL, "keep"}}, {"a", "fooxbar"}, NULL},
    {"literal set",
     {{{"a"}, NULL, "up|foo\\|bar", NULL, NULL, "keep"}},
     {"a", "foo|bar"},
     "a=foo|bar"},
    {"unicode class",
     {{{"a"}, NULL, "\\p{Greek}+", NULL, NULL, "keep"}},
     {"a", "\xce\xb1\xce\xb2"},
     "a=\xce\xb1\xce\xb2"},
    /* --- keepequal / dropequal --- */
    {"keepequal equal",
     {{{"__tmp_port"}, NULL, NULL, NULL, "__port1", "keepequal"}},
     {"__tmp_port", "1234", "__port1", "1234", "__port2", "5678"},
     "__port1=1234,__port2=5678,__tmp_port=1234"},
    {"dropequal equal",
     {{{"__tmp_port"}, NULL, NULL, NULL, "__port1", "dropequal"}},
     {"__tmp_port", "1234", "__port1", "1234", "__port2", "5678"},
     NULL},
    {"dropequal differ",
     {{{"__tmp_port"}, NULL, NULL, NULL, "__port2", "dropequal"}},
     {"__tmp_port", "1234", "__port1", "1234", "__port2", "5678"},
     "__port1=1234,__port2=5678,__tmp_port=1234"},
    {"keepequal differ",
     {{{"__tmp_port"}, NULL, NULL, NULL, "__port2", "keepequal"}},
     {"__tmp_port", "1234", "__port1", "1234", "__port2", "5678"},
     NULL},
    {"keepequal missing equals empty",
     {{{"x"}, NULL, "(.*)", "$1", "y", "keepequal"}},
     {"a", "1"},
     "a=1"},
    /* --- hashmod (expected values from Prometheus's relabel_test.go) --- */
    {"hashmod baz % 1000",
     {{{"c"}, ";", NULL, NULL, "d", "hashmod", 1000}},
     {"a", "foo", "b", "bar", "c", "baz"},
     "a=foo,b=bar,c=baz,d=976"},
    {"hashmod newline % 1000",
     {{{"a"}, ";", NULL, NULL, "b", "hashmod", 1000}},
     {"a", "foo\nbar"},
     "a=foo\nbar,b=734"},
    {"hashmod modulus 1", {{{"a"}, NULL, NULL, NULL, "b", "hashmod", 1}}, {"a", "x"}, "a=x,b=0"},
    /* --- labelmap / labeldrop / labelkeep --- */
    {"labelmap ${1}",
     {{{NULL}, NULL, "(b.*)", "bar_${1}", NULL, "labelmap"}},
     {"a", "foo", "b1", "bar", "b2", "baz"},
     "a=foo,b1=bar,b2=baz,bar_b1=bar,bar_b2=baz"},
    {"labelmap $1 default replacement",
     {{{NULL}, NULL, "__meta_(my.*)", NULL, NULL, "labelmap"}},
     {"a", "foo", "__meta_my_bar", "aaa", "__meta_my_baz", "bbb", "__meta_other", "ccc"},
     "__meta_my_bar=aaa,__meta_my_baz=bbb,__meta_other=ccc,a=foo,my_bar=aaa,my_baz=bbb"},
    {"labelmap prefix (.+) needs a rest",
     {{{NULL}, NULL, "__meta_kubernetes_pod_label_(.+)", "k8s_$1", NULL, "labelmap"}},
     {"__meta_kubernetes_pod_label_", "x", "__meta_kubernetes_pod_label_app", "web"},
     "__meta_kubernetes_pod_label_=x,__meta_kubernetes_pod_label_app=web,k8s_app=web"},
    {"labelmap visits base labels, then added ones in insertion order",
     {{{NULL}, NULL, NULL, "added", "a_k"}, {{NULL}, NULL, "[ab]_(k)", NULL, NULL, "labelmap"}},
     {"b_k", "base"},
     "a_k=added,b_k=base,k=added"},
    {"labelkeep",
     {{{NULL}, NULL, "(b.*)", NULL, NULL, "labelkeep"}},
     {"a", "foo", "b1", "bar", "b2", "baz"},
     "b1=bar,b2=baz"},
    {"labeldrop",
     {{{NULL}, NULL, "(b.*)", NULL, NULL, "labeldrop"}},
     {"a", "foo", "b1", "bar", "b2", "baz"},
     "a=foo"},
    {"labeldrop literal set and added label",
     {{{NULL}, NULL, NULL, "x", "pod_template_hash"},
      {{NULL}, NULL, "pod_template_hash|controller_revision_hash", NULL, NULL, "labeldrop"}},
     {"a", "1", "controller_revision_hash", "2"},
     "a=1"},
    /* --- lowercase / uppercase --- */
    {"upper and lower",
     {{{"foo"}, NULL, NULL, NULL, "foo_uppercase", "uppercase"},
      {{"foo"}, NULL, NULL, NULL, "foo_lowercase", "lowercase"}},
     {"foo", "bAr123Foo"},
     "foo=bAr123Foo,foo_lowercase=bar123foo,foo_uppercase=BAR123FOO"},
    {"lower unicode and invalid UTF-8",
     {{{"a"}, NULL, NULL, NULL, "b", "lowercase"}},
     {"a", "\xc3\x84\xce\xa3X\xff"},
     "a=\xc3\x84\xce\xa3X\xff,b=\xc3\xa4\xcf\x83x\xef\xbf\xbd"},
    {"upper unicode",
     {{{"a"}, NULL, NULL, NULL, "b", "uppercase"}},
     {"a", "stra\xc3\x9f\xc3\xa9"},
     "a=stra\xc3\x9f\xc3\xa9,b=STRA\xc3\x9f\xc3\x89"},
    {"lowercase of empty deletes", {{{"x"}, NULL, NULL, NULL, "a", "lowercase"}}, {"a", "1"}, ""},
    /* --- utf8 name validation scheme --- */
    {"utf8 scheme target",
     {{{"a"}, NULL, "line1.*line2", "match${1}", "utf-8.label", NULL, 0, 1}},
     {"a", "line1\nline2"},
     "a=line1\nline2,utf-8.label=match"},
    {"utf8 scheme source",
     {{{"utf-8.label"}, NULL, "(.*)", "$1", "d", NULL, 0, 1}},
     {"utf-8.label", "v"},
     "d=v,utf-8.label=v"},
};

static void test_cases(void) {
  char got[512], err[256];
  int failed = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const case_t *c = &cases[i];
    for (int rev = 0; rev < 2; rev++) {
      got[0] = '\0';
      err[0] = '\0';
      int rc = run(c->rules, c->in, rev, got, sizeof got, err, sizeof err);
      if (rc == -2) {
        fprintf(stderr, "case \"%s\": compile failed: %s\n", c->name, err);
        failed = 1;
        break;
      }
      if (!c->out && rc != 0) {
        fprintf(stderr, "case \"%s\"%s: expected drop, got rc %d {%s}\n", c->name,
                rev ? " (reversed input)" : "", rc, got);
        failed = 1;
      } else if (c->out && (rc != 1 || strcmp(got, c->out) != 0)) {
        fprintf(stderr, "case \"%s\"%s: rc %d\n   got {%s}\n  want {%s}\n", c->name,
                rev ? " (reversed input)" : "", rc, got, c->out);
        failed = 1;
      }
    }
  }
  CHECK(!failed);
}

/* Compiles a one-rule program and returns the error message ("" on success). */
static const char *compile_err(const spec_t *specs) {
  static char err[256];
  mw_relabel_rule_t rules[4];
  mw_relabel_str_t srcs[20];
  size_t n = build(specs, 4, rules, srcs);
  mw_relabel_program_t *p = (mw_relabel_program_t *)1;
  err[0] = '\0';
  if (mw_relabel_compile(rules, n, &p, err, sizeof err) == 0) {
    mw_relabel_program_free(p);
    return "";
  }
  if (p != NULL) return "(out pointer not cleared)";
  return err;
}

typedef struct {
  spec_t rules[3];
  const char *err; /* expected message ("" = valid) */
} verr_t;

static const verr_t verrs[] = {
    {{{{"a"}, NULL, NULL, NULL, "d", "hashmod"}},
     "rule 1: modulus: relabel configuration for hashmod requires non-zero modulus"},
    {{{{"a"}, NULL, NULL, NULL, NULL, "replace"}},
     "rule 1: target_label: relabel configuration for replace action requires 'target_label' "
     "value"},
    {{{{"a"}, NULL, NULL, NULL, NULL, "lowercase"}},
     "rule 1: target_label: relabel configuration for lowercase action requires 'target_label' "
     "value"},
    {{{{"a"}, NULL, NULL, NULL, "1abc"}},
     "rule 1: target_label: \"1abc\" is invalid 'target_label' for replace action"},
    {{{{"a"}, NULL, NULL, NULL, "-${1}"}},
     "rule 1: target_label: \"-${1}\" is invalid 'target_label' for replace action"},
    {{{{"a"}, NULL, NULL, NULL, "foo${"}},
     "rule 1: target_label: \"foo${\" is invalid 'target_label' for replace action"},
    {{{{"a"}, NULL, NULL, NULL, "${1}"}}, ""},
    {{{{"a"}, NULL, NULL, NULL, "asd$2asd"}}, ""},
    {{{{"a"}, NULL, NULL, NULL, "foo${bar}foo"}}, ""},
    {{{{"a"}, NULL, NULL, NULL, "bar.foo${1}bar"}},
     "rule 1: target_label: \"bar.foo${1}bar\" is invalid 'target_label' for replace action"},
    {{{{"a"}, NULL, NULL, NULL, "bar.foo${1}bar", NULL, 0, 1}}, ""},
    {{{{"a"}, NULL, NULL, NULL, "${3}", "lowercase"}},
     "rule 1: target_label: \"${3}\" is invalid 'target_label' for lowercase action"},
    {{{{"a"}, NULL, NULL, NULL, "${3}", "lowercase", 0, 1}}, ""},
    {{{{"a"}, NULL, NULL, "x", "b", "uppercase"}},
     "rule 1: replacement: 'replacement' can not be set for uppercase action"},
    {{{{NULL}, NULL, "__meta_(.+)", "-$1", NULL, "labelmap"}},
     "rule 1: replacement: \"-$1\" is invalid 'replacement' for labelmap action"},
    {{{{NULL}, NULL, "__meta_kubernetes_pod_label_(strimzi_io_.+)", "$1", NULL, "labelmap"}}, ""},
    {{{{"a"}, NULL, "x", NULL, NULL, "labeldrop"}},
     "rule 1: source_labels: labeldrop action requires only 'regex', and no other fields"},
    {{{{NULL}, NULL, "x", NULL, "t", "labelkeep"}},
     "rule 1: target_label: labelkeep action requires only 'regex', and no other fields"},
    {{{{NULL}, ",", "x", NULL, NULL, "labelkeep"}},
     "rule 1: separator: labelkeep action requires only 'regex', and no other fields"},
    {{{{"a"}, NULL, "foo", NULL, "b", "keepequal"}},
     "rule 1: regex: keepequal action requires only 'source_labels' and `target_label`, and no "
     "other fields"},
    {{{{"a"}, NULL, "(.*)", "$1", "b", "dropequal"}}, ""},
    {{{{"a"}, NULL, NULL, NULL, "b", "dropequal", 3}},
     "rule 1: modulus: dropequal action requires only 'source_labels' and `target_label`, and no "
     "other fields"},
    {{{{"a"}, NULL, NULL, NULL, "b", "foo"}}, "rule 1: action: unknown relabel action \"foo\""},
    {{{{"a"}, NULL, NULL, NULL, "b", ""}}, "rule 1: action: relabel action cannot be empty"},
    {{{{"a"}, NULL, NULL, NULL, "b", "HashMod", 2}}, ""},
    {{{{"1a"}, NULL, NULL, NULL, "b"}},
     "rule 1: source_labels[1]: \"1a\" is not a valid label name"},
    {{{{"a"}, NULL, NULL, NULL, "b"},
      {{"a"}, NULL, NULL, NULL, "b"},
      {{"a"}, NULL, "(", NULL, "b"}},
     "rule 3: regex: missing closing ) (at offset 1)"},
    {{{{"a"}, NULL, NULL, NULL, "b", NULL, 0, 7}},
     "rule 1: name_validation: unknown name validation scheme 7, must be 0 (legacy) or 1 (utf8)"},
};

static void test_validation(void) {
  int failed = 0;
  for (size_t i = 0; i < sizeof verrs / sizeof verrs[0]; i++) {
    const char *got = compile_err(verrs[i].rules);
    if (strcmp(got, verrs[i].err) != 0) {
      fprintf(stderr, "validation %zu:\n   got \"%s\"\n  want \"%s\"\n", i, got, verrs[i].err);
      failed = 1;
    }
  }
  CHECK(!failed);
}

/* Patterns RE2 rejects or PCRE2 would read differently: the message must name the
 * construct. */
static const struct {
  const char *re, *msg;
} re_rejects[] = {
    {"(a)\\1", "backreference \\1 is not supported (RE2 syntax) (at offset 3)"},
    /* not UTF-8 (found by fuzz_re2: PCRE2 named an offset in the translation) */
    {"a36\\0\xd9{", "invalid UTF-8 (at offset 5)"},
    {"\xff", "invalid UTF-8 (at offset 0)"},
    {"\xe2\x82", "invalid UTF-8 (at offset 0)"},
    /* PCRE2 names a byte of the translation (\0 became \x{0}): the pattern's is named */
    {"\\0\\pw4", "unknown property after \\P or \\p (near offset 5)"},
    {"\\9", "backreference \\9 is not supported"},
    {"(?P<n>a)\\k<n>", "backreference \\k is not supported"},
    {"(?P<n>a)(?P=n)", "backreference (?P=name) is not supported"},
    {"foo(?=bar)", "lookahead (?= is not supported (RE2 syntax) (at offset 3)"},
    {"foo(?!bar)", "lookahead (?! is not supported"},
    {"(?<=a)b", "lookbehind (?<= is not supported"},
    {"(?<!a)b", "lookbehind (?<! is not supported"},
    {"a*+", "possessive quantifier *+ is not supported"},
    {"a++", "possessive quantifier ++ is not supported"},
    {"a?+", "possessive quantifier ?+ is not supported"},
    {"a{2}+", "possessive quantifier {2}+ is not supported"},
    {"(?>a)", "atomic group (?> is not supported"},
    {"(a)(?1)", "recursion or subroutine call (?1 is not supported"},
    {"a(?R)", "recursion or subroutine call (?R is not supported"},
    {"(?&n)", "recursion or subroutine call (?& is not supported"},
    {"(?(1)a|b)", "conditional group (?( is not supported"},
    {"a\\Kb", "\\K (reset match start) is not supported"},
    {"\\Ga", "\\G (end of previous match) is not supported"},
    {"\\C", "\\C (any byte) is not supported"},
    {"a\\Z", "\\Z is not supported (RE2 syntax); use \\z"},
    {"(*UTF)a", "(* verbs are not supported"},
    {"(?x)a b", "invalid or unsupported Perl syntax (?x"},
    {"(?|a)", "branch reset group (?| is not supported"},
    {"(?#c)", "comment group (?# is not supported"},
    {"a**", "invalid nested repetition operator **"},
    {"a{1001}", "invalid repeat count {1001}"},
    {"a)", "unexpected )"},
    {"[a", "missing closing ]"},
    {"\\y", "invalid escape sequence \\y"},
    {"\\E", "\\E without \\Q is not supported"},
    {"[\\b]", "invalid escape sequence \\b"},
    {"a\\", "trailing backslash at end of expression"},
    {"\\xZZ", "invalid escape sequence \\x"},
    {"[z-a]", "range out of order in character class"},
};

static void test_re2_rejections(void) {
  int failed = 0;
  for (size_t i = 0; i < sizeof re_rejects / sizeof re_rejects[0]; i++) {
    spec_t sp[2] = {{{"a"}, NULL, re_rejects[i].re, NULL, NULL, "keep"}};
    const char *got = compile_err(sp);
    if (strncmp(got, "rule 1: regex: ", 15) != 0 || !strstr(got, re_rejects[i].msg)) {
      fprintf(stderr, "regex %s:\n   got \"%s\"\n  want \"...%s...\"\n", re_rejects[i].re, got,
              re_rejects[i].msg);
      failed = 1;
    }
  }
  CHECK(!failed);
}

/* mw_ffi_regex_check (argument validation before anything runs) refuses what
 * the rule compiler refuses, with the same message, and keeps nothing. */
static void test_regex_check(void) {
  char err[256];
  for (size_t i = 0; i < sizeof re_rejects / sizeof re_rejects[0]; i++) {
    const char *re = re_rejects[i].re;
    CHECK_INT(mw_ffi_regex_check(re, strlen(re), err, sizeof err), -1);
    CHECK(strstr(err, re_rejects[i].msg) != NULL);
  }
  const char *good[] = {"", "(.*)", "a|b", "^/usr/(?P<x>bin)$", "[[:alpha:]]+", "\\d{2,3}"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    CHECK_INT(mw_ffi_regex_check(good[i], strlen(good[i]), err, sizeof err), 0);
  /* the length is the regex: bytes past it are not read */
  CHECK_INT(mw_ffi_regex_check("a(", 1, err, sizeof err), 0);
}

static void test_re2_translate(void) {
  static const struct {
    const char *in, *out;
  } tr[] = {
      {"a\\sb", "a[\\t\\n\\f\\r ]b"},
      {"[\\s]", "[\\t\\n\\f\\r ]"},
      {"\\v", "\\x{0b}"},
      {"\\012\\0", "\\x{a}\\x{0}"},
      {"a{,2}", "a\\{,2}"},
      {"a{2,}?", "a{2,}?"},
      {"\\Q.*\\E", "\\.\\*"},
      {"[[:alpha:]x[]", "[[:alpha:]x\\[]"},
      {"(?P<n>a)(?<m>b)(?i:c)(?s)", "(?P<n>a)(?P<m>b)(?i:c)(?s)"},
      {"\\pL\\p{Greek}\\x41\\x{263a}", "\\pL\\p{Greek}\\x{41}\\x{263a}"},
  };
  char err[128];
  for (size_t i = 0; i < sizeof tr / sizeof tr[0]; i++) {
    char *out = NULL;
    size_t n = 0;
    CHECK_INT(mw_re2_translate(tr[i].in, strlen(tr[i].in), &out, &n, err, sizeof err), 0);
    int ok = out && strcmp(out, tr[i].out) == 0 && n == strlen(tr[i].out);
    if (!ok) fprintf(stderr, "translate %s: got %s want %s\n", tr[i].in, out, tr[i].out);
    free(out);
    CHECK(ok);
  }
}

/* The PCRE2-free matchers ((.*), literals, literal sets, prefixes) answer as PCRE2 does:
 * each pattern is run as is and wrapped in (?:...), which disables the fast path. */
static void test_fast_paths_match_pcre2(void) {
  static const char *const pats[] = {"(.*)",  ".*",       ".+",       "(.+)",     "abc",
                                     "a\\.b", "up|down|", "pre_(.+)", "pre_(.*)", "pre_.*",
                                     "",      "a\\|b|c",  "x\\\\(.*)"};
  static const char *const subjs[] = {"",      "abc",    "a.b", "axb", "up",    "down", "pre_",
                                      "pre_x", "pre_\n", "a|b", "c",   "x\\yz", "x\ny", "\xc3\xa9"};
  char fast[512], slow[512], err[256];
  int failed = 0;
  for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++) {
    char wrapped[64];
    const char *pat = pats[i];
    /* keep the group count: wrap only the part before a trailing group */
    const char *g = strstr(pat, "(.");
    if (g)
      snprintf(wrapped, sizeof wrapped, "(?:%.*s)%s", (int)(g - pat), pat, g);
    else
      snprintf(wrapped, sizeof wrapped, "(?:%s)", pat);
    for (size_t j = 0; j < sizeof subjs / sizeof subjs[0]; j++) {
      const char *in[] = {"a", subjs[j], NULL};
      spec_t a[2] = {{{"a"}, NULL, pat, "[$0|$1]", "d"}};
      spec_t b[2] = {{{"a"}, NULL, wrapped, "[$0|$1]", "d"}};
      fast[0] = slow[0] = '\0';
      int ra = run(a, in, 0, fast, sizeof fast, err, sizeof err);
      int rb = run(b, in, 0, slow, sizeof slow, err, sizeof err);
      if (ra != rb || strcmp(fast, slow) != 0) {
        fprintf(stderr, "fast path %s vs %s on \"%s\": {%s} vs {%s}\n", pat, wrapped, subjs[j],
                fast, slow);
        failed = 1;
      }
    }
  }
  CHECK(!failed);
}

/* A kept set's strings stay valid while the scratch is reused for a batch. */
static void test_batch_reuse(void) {
  spec_t sp[4] = {{{"instance"}, NULL, "(.*):\\d+", "$1", "host"},
                  {{"instance"}, NULL, NULL, NULL, "shard", "hashmod", 4},
                  {{"__name__"}, NULL, "up|node_.*", NULL, NULL, "keep"}};
  mw_relabel_rule_t rules[4];
  mw_relabel_str_t srcs[20];
  size_t nr = build(sp, 4, rules, srcs);
  mw_relabel_program_t *p;
  char err[256], inst[32], want[64], got[512];
  CHECK_INT(mw_relabel_compile(rules, nr, &p, err, sizeof err), 0);
  CHECK_INT(mw_relabel_program_rules(p), 3);
  mw_relabel_scratch_t *s = mw_relabel_scratch_new();
  CHECK(s != NULL);
  int kept = 0;
  for (int i = 0; i < 10000; i++) {
    snprintf(inst, sizeof inst, "10.0.%d.%d:9100", i / 256, i % 256);
    mw_label_t in[2] = {{"__name__", i % 2 ? "up" : "go_gc", 8, i % 2 ? 2u : 5u},
                        {"instance", inst, 8, (uint32_t)strlen(inst)}};
    const mw_label_t *out;
    size_t on;
    int rc = mw_relabel_apply(p, s, in, 2, &out, &on);
    CHECK_INT(rc, i % 2);
    if (rc != 1) continue;
    kept++;
    CHECK_INT(on, 4);
    fmt_labels(got, sizeof got, out, on);
    snprintf(want, sizeof want, "host=10.0.%d.%d", i / 256, i % 256);
    CHECK(strstr(got, want) != NULL);
    size_t n2;
    CHECK(mw_relabel_scratch_labels(s, &n2) == out && n2 == on);
  }
  CHECK_INT(kept, 5000);
  mw_relabel_scratch_free(s);
  mw_relabel_program_free(p);
}

static void test_empty_program(void) {
  mw_relabel_program_t *p;
  char err[64];
  CHECK_INT(mw_relabel_compile(NULL, 0, &p, err, sizeof err), 0);
  mw_relabel_scratch_t *s = mw_relabel_scratch_new();
  mw_label_t in[1] = {{"a", "1", 1, 1}};
  const mw_label_t *out;
  size_t on;
  CHECK_INT(mw_relabel_apply(p, s, in, 1, &out, &on), 1);
  CHECK_INT(on, 1);
  CHECK_INT(mw_relabel_apply(p, s, NULL, 0, &out, &on), 1);
  CHECK_INT(on, 0);
  mw_relabel_scratch_free(s);
  mw_relabel_program_free(p);
}

static void test_ffi(void) {
  const char *cdef = mw_ffi_cdef();
  CHECK(strstr(cdef, "int mw_ffi_relabel_apply(") != NULL);
  CHECK(strstr(cdef, "} mw_ffi_relabel_rule_t;") != NULL);
  mw_ffi_relabel_str_t src[1] = {{"a", 1}};
  mw_ffi_relabel_rule_t rules[2];
  memset(rules, 0, sizeof rules);
  rules[0].source_labels = src;
  rules[0].n_source_labels = 1;
  rules[0].regex = (mw_ffi_relabel_str_t){"(.)(.*)", 7};
  rules[0].replacement = (mw_ffi_relabel_str_t){"$2$1", 4};
  rules[0].target_label = (mw_ffi_relabel_str_t){"b", 1};
  rules[1].action = (mw_ffi_relabel_str_t){"labeldrop", 9};
  rules[1].regex = (mw_ffi_relabel_str_t){"c", 1};
  mw_ffi_relabel_program_t *p = NULL;
  char err[128];
  CHECK_INT(mw_ffi_relabel_program_new(rules, 2, &p, err, sizeof err), 0);
  mw_ffi_relabel_scratch_t *s = mw_ffi_relabel_scratch_new();
  mw_ffi_relabel_label_t in[2] = {{"c", "x", 1, 1}, {"a", "abc", 1, 3}};
  CHECK_INT(mw_ffi_relabel_apply(p, s, in, 2), 1);
  const mw_ffi_relabel_label_t *out;
  uint32_t n = mw_ffi_relabel_result(s, &out);
  CHECK_INT(n, 2);
  CHECK(out[0].name_len == 1 && out[0].name[0] == 'a');
  CHECK(out[1].name_len == 1 && out[1].name[0] == 'b');
  CHECK(out[1].value_len == 3 && memcmp(out[1].value, "bca", 3) == 0);
  rules[0].action = (mw_ffi_relabel_str_t){"drop", 4};
  mw_ffi_relabel_program_t *q = NULL;
  CHECK_INT(mw_ffi_relabel_program_new(rules, 1, &q, err, sizeof err), 0);
  CHECK_INT(mw_ffi_relabel_apply(q, s, in, 2), 0);
  CHECK_INT(mw_ffi_relabel_result(s, &out), 0);
  rules[0].regex = (mw_ffi_relabel_str_t){"(?=x)", 5};
  mw_ffi_relabel_program_t *r = (mw_ffi_relabel_program_t *)1;
  CHECK_INT(mw_ffi_relabel_program_new(rules, 1, &r, err, sizeof err), -1);
  CHECK(r == NULL);
  CHECK(strstr(err, "rule 1: regex: lookahead") == err);
  mw_ffi_relabel_scratch_free(s);
  mw_ffi_relabel_program_free(q);
  mw_ffi_relabel_program_free(p);
}

int main(void) {
  MW_RUN(test_cases);
  MW_RUN(test_validation);
  MW_RUN(test_re2_rejections);
  MW_RUN(test_re2_translate);
  MW_RUN(test_fast_paths_match_pcre2);
  MW_RUN(test_batch_reuse);
  MW_RUN(test_empty_program);
  MW_RUN(test_ffi);
  MW_RUN(test_regex_check);
  return mw_test_summary();
}
