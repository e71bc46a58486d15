/* Fuzz target: the procfs parsers of runtime/exporters/process/proc.c (mw_proc_parse_*) and the
 * pure parsers of prometheus.exporter.unix's collectors (exporters/node/node.h). The first
 * byte picks the file (its value modulo 14): 0 stat, 1 status, 2 io, 3
 * limits, 4 smaps/smaps_rollup, 5 cmdline, 6 the root's stat for btime, 7
 * net/arp, 8 mdstat, 9 net/rpc/nfs, 10 net/rpc/nfsd, 11 an XFS stats file,
 * 12 a hwmon sensor file name, 13 a textfile (parsed and written back in
 * both formats); the rest is the file's content, handed over as the readers
 * leave it (NUL-terminated at len, in a buffer of exactly len + 1 bytes so
 * that ASan sees any read past the end). Checks what each parser promises on
 * success. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exporters/node/node.h"
#include "exporters/process/proc.h"
#include "exposition/write.h"

static void fuzz_node(int which, char *buf, size_t size) {
  char err[256];
  switch (which) {
  case 7: {
    mw_node_arp_count_t *c;
    size_t n;
    if (mw_node_arp_parse(buf, &c, &n, err, sizeof err) == 0) {
      for (size_t i = 0; i < n; i++)
        if (c[i].device < buf || c[i].device >= buf + size || c[i].entries == 0) abort();
      free(c);
    }
    break;
  }
  case 8: {
    mw_node_md_t *md;
    size_t n;
    if (mw_node_mdstat_parse(buf, size, &md, &n, err, sizeof err) == 0) {
      for (size_t i = 0; i < n; i++)
        if (!memchr(md[i].name, '\0', sizeof md[i].name) ||
            !memchr(md[i].state, '\0', sizeof md[i].state))
          abort();
      free(md);
    }
    break;
  }
  case 9:
  case 10: {
    mw_node_nfs_stats_t st;
    mw_node_nfs_parse(buf, size, which == 10, &st, err, sizeof err);
    break;
  }
  case 11: {
    mw_node_xfs_stats_t st;
    mw_node_xfs_parse(buf, size, &st, err, sizeof err);
    break;
  }
  case 12: {
    size_t tl, n = strlen(buf);
    long num;
    const char *prop;
    if (mw_node_hwmon_split(buf, &tl, &num, &prop) == 0) {
      if (tl == 0 || tl > n || prop < buf || prop > buf + n) abort();
      for (size_t i = 0; i < tl; i++)
        if (buf[i] >= '0' && buf[i] <= '9') abort();
    }
    break;
  }
  case 13: {
    mw_node_raw_t *raw = mw_node_raw_new();
    struct mw_node_textfile *state = NULL;
    if (!raw) abort();
    for (int round = 0; round < 2; round++) { /* the state is reused */
      mw_node_raw_reset(raw);
      err[0] = '\0';
      if (mw_node_textfile_convert(raw, &state, "/fuzz/f.prom", buf, size, err, sizeof err) != 0) {
        if (!err[0]) abort(); /* a refused file says why */
        continue;
      }
      for (int format = MW_EXPOSE_TEXT; format <= MW_EXPOSE_OPENMETRICS; format++) {
        mw_expose_buf_t out = {0};
        mw_expose_extra_t *extras;
        size_t n;
        if (mw_node_raw_write(raw, NULL, format, &out, &extras, &n) != 0) abort();
        for (size_t i = 0; i < n; i++)
          if (extras[i].len < 7 || memcmp(extras[i].text, "# HELP ", 7) != 0 ||
              extras[i].text[extras[i].len - 1] != '\n')
            abort();
        free(extras);
        mw_expose_buf_free(&out);
      }
    }
    mw_node_textfile_free(state);
    mw_node_raw_free(raw);
    break;
  }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  int which = data[0] % 14;
  data++;
  size--;
  char *buf = malloc(size + 1);
  if (!buf) abort();
  memcpy(buf, data, size);
  buf[size] = '\0';
  int rc = 0;
  switch (which) {
  case 0: {
    mw_proc_stat_t st;
    rc = mw_proc_parse_stat(buf, size, &st);
    if (rc == 0) {
      if (st.comm_len >= sizeof st.comm || st.comm[st.comm_len] != '\0') abort();
      if (!memchr(buf, st.state, size)) abort();
    }
    break;
  }
  case 1: {
    mw_proc_status_t s;
    rc = mw_proc_parse_status(buf, size, &s);
    if (rc != 0) abort(); /* never fails */
    if (s.euid < -1 || s.euid > (int64_t)UINT32_MAX) abort();
    break;
  }
  case 2: {
    mw_proc_io_t io;
    rc = mw_proc_parse_io(buf, size, &io);
    break;
  }
  case 3: {
    uint64_t v;
    rc = mw_proc_parse_nofile_limit(buf, size, &v);
    break;
  }
  case 4: {
    mw_proc_smaps_t sm;
    mw_proc_parse_smaps(buf, size, &sm);
    break;
  }
  case 5: {
    size_t n = mw_proc_parse_cmdline(buf, size);
    if (n > size || buf[n] != '\0' || (n > 0 && buf[n - 1] == '\0')) abort();
    break;
  }
  case 6: {
    uint64_t v;
    rc = mw_proc_parse_btime(buf, size, &v);
    break;
  }
  default: fuzz_node(which, buf, size); break;
  }
  if (rc != 0 && rc != -1) abort();
  if (rc == -1 && errno != EINVAL) abort();
  free(buf);
  return 0;
}
