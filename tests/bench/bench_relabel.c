/* bench_relabel: 100k series through 5 typical rules, uncached, one core.
 *
 * Rules: keep by regex on __name__, replace of instance (host from host:port),
 * labeldrop, hashmod, labelmap. Each series has 9 labels, Kubernetes-like.
 *
 * Build and run (after building mwcore in build-relabel):
 *   cmake -S /work/main -B /work/main/build-relabel && cmake --build /work/main/build-relabel -j2
 *   gcc -std=c11 -O2 -D_GNU_SOURCE -Wall -Wextra -Werror -I runtime -I build-relabel \
 *       tests/bench/bench_relabel.c build-relabel/libmwcore.a \
 *       $(pkg-config --libs libpcre2-8 libcrypto) -o /tmp/bench_relabel && /tmp/bench_relabel
 * (from /work/main). Prints series/s for the whole program and per rule kind.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "relabel/relabel.h"

#define NSERIES 100000
#define NLABELS 9
#define ROUNDS 5

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static mw_relabel_str_t S(const char *z) {
  return (mw_relabel_str_t){z, z ? (uint32_t)strlen(z) : 0};
}

static const char *const names[] = {"go_gc_duration_seconds", "http_requests_total",
                                    "node_cpu_seconds_total", "process_resident_memory_bytes",
                                    "up"};

/* Runs the series through p; returns series/s of the best round and the kept count. */
static double bench(const mw_relabel_program_t *p, mw_label_t (*series)[NLABELS], size_t *kept) {
  mw_relabel_scratch_t *s = mw_relabel_scratch_new();
  double best = 0;
  uint64_t sink = 0;
  for (int round = 0; round < ROUNDS; round++) {
    size_t k = 0;
    double t0 = now();
    for (size_t i = 0; i < NSERIES; i++) {
      const mw_label_t *out;
      size_t on;
      int rc = mw_relabel_apply(p, s, series[i], NLABELS, &out, &on);
      if (rc < 0) {
        fprintf(stderr, "apply failed\n");
        exit(1);
      }
      if (rc == 1) {
        k++;
        sink += on + out[on - 1].value_len;
      }
    }
    double rate = NSERIES / (now() - t0);
    if (rate > best) best = rate;
    *kept = k;
  }
  mw_relabel_scratch_free(s);
  if (sink == 1) printf("%llu\n", (unsigned long long)sink); /* keep the result alive */
  return best;
}

int main(void) {
  static mw_label_t series[NSERIES][NLABELS];
  static char buf[NSERIES][6][48];
  for (size_t i = 0; i < NSERIES; i++) {
    char(*b)[48] = buf[i];
    snprintf(b[0], 48, "10.%zu.%zu.%zu:9100", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    snprintf(b[1], 48, "web-%zu", i % 97);
    snprintf(b[2], 48, "%08zx", i * 2654435761u % 0xffffffffu);
    snprintf(b[3], 48, "pod-%zu", i);
    snprintf(b[4], 48, "%zu", i % 5 * 100 + 200);
    snprintf(b[5], 48, "ns-%zu", i % 13);
    const char *v[NLABELS][2] = {
        {"__meta_kubernetes_pod_label_app", b[1]},
        {"__meta_kubernetes_pod_label_pod_template_hash", b[2]},
        {"__name__", names[i % 5]},
        {"code", b[4]},
        {"instance", b[0]},
        {"job", "kubernetes-pods"},
        {"namespace", b[5]},
        {"pod", b[3]},
        {"pod_template_hash", b[2]},
    };
    for (int k = 0; k < NLABELS; k++)
      series[i][k] =
          (mw_label_t){v[k][0], v[k][1], (uint32_t)strlen(v[k][0]), (uint32_t)strlen(v[k][1])};
  }

  mw_relabel_str_t name_src[1] = {S("__name__")}, inst_src[1] = {S("instance")};
  mw_relabel_rule_t rules[5];
  memset(rules, 0, sizeof rules);
  /* 1. keep by regex on __name__ */
  rules[0].source_labels = name_src;
  rules[0].n_source_labels = 1;
  rules[0].regex = S("(http|node|process)_.+|up");
  rules[0].action = S("keep");
  /* 2. replace of instance: host from host:port */
  rules[1].source_labels = inst_src;
  rules[1].n_source_labels = 1;
  rules[1].regex = S("(.+):\\d+");
  rules[1].target_label = S("host");
  /* 3. labeldrop */
  rules[2].regex = S("pod_template_hash|controller_revision_hash");
  rules[2].action = S("labeldrop");
  /* 4. hashmod */
  rules[3].source_labels = inst_src;
  rules[3].n_source_labels = 1;
  rules[3].target_label = S("__tmp_shard");
  rules[3].modulus = 8;
  rules[3].action = S("hashmod");
  /* 5. labelmap */
  rules[4].regex = S("__meta_kubernetes_pod_label_(.+)");
  rules[4].replacement = S("k8s_$1");
  rules[4].action = S("labelmap");

  char err[256];
  size_t kept;
  mw_relabel_program_t *p;
  if (mw_relabel_compile(rules, 5, &p, err, sizeof err) < 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  double rate = bench(p, series, &kept);
  printf("5 rules: %.2f M series/s (%.0f ns/series), %zu of %d kept\n", rate / 1e6, 1e9 / rate,
         kept, NSERIES);
  mw_relabel_program_free(p);

  static const char *const what[] = {"keep (PCRE2 JIT)", "replace (PCRE2 JIT)",
                                     "labeldrop (literal set)", "hashmod (MD5)",
                                     "labelmap (prefix)"};
  for (int r = 0; r < 5; r++) {
    if (mw_relabel_compile(&rules[r], 1, &p, err, sizeof err) < 0) return 1;
    rate = bench(p, series, &kept);
    printf("  %-24s %.2f M series/s (%.0f ns/series)\n", what[r], rate / 1e6, 1e9 / rate);
    mw_relabel_program_free(p);
  }
  /* The same labeldrop and labelmap forced through PCRE2 (no fast path). */
  rules[2].regex = S("(?:pod_template_hash|controller_revision_hash)");
  rules[4].regex = S("(?:__meta_kubernetes_pod_label_)(.+)");
  for (int r = 2; r < 5; r += 2) {
    if (mw_relabel_compile(&rules[r], 1, &p, err, sizeof err) < 0) return 1;
    rate = bench(p, series, &kept);
    printf("  %-24s %.2f M series/s (%.0f ns/series)\n",
           r == 2 ? "labeldrop (PCRE2 JIT)" : "labelmap (PCRE2 JIT)", rate / 1e6, 1e9 / rate);
    mw_relabel_program_free(p);
  }
  if (mw_relabel_compile(rules, 5, &p, err, sizeof err) < 0) return 1;
  rate = bench(p, series, &kept);
  printf("5 rules, no fast paths for labeldrop/labelmap: %.2f M series/s (%.0f ns/series)\n",
         rate / 1e6, 1e9 / rate);
  mw_relabel_program_free(p);
  return 0;
}
