/* exporters/node/xfs.c: the xfs collector (node_exporter 1.5 collector/xfs_linux.go
 * over procfs 0.8's xfs/): the per-filesystem statistics of
 * <sysfs>/fs/xfs/<device>/stats/stats, 39 counters per device named after
 * the XFS wiki's runtime stats. As procfs: every line with a key and values
 * must hold uint32 values (uint64 for xpc), the known keys their exact counts
 * (vnodes 7 or 8, qm 8 or 9); a file that does not parse or cannot be opened
 * fails the collector before anything is reported. No XFS is success with
 * nothing. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/err.h"
#include "exporters/node/node.h"

/* The keys procfs checks: value count (0 = 7 or 8, -1 = 8 or 9), where the
 * values land in mw_node_xfs_stats_t.v (-1: checked only). */
static const struct {
  const char *key;
  int count, at;
} keys[] = {
    {"extent_alloc", 4, 0}, {"abt", 4, 4},       {"blk_map", 7, 8},    {"bmbt", 4, 15},
    {"dir", 4, 19},         {"ig", 7, 23},       {"rw", 2, 30},        {"vnodes", 0, 32},
    {"trans", 3, -1},       {"log", 5, -1},      {"push_ail", 10, -1}, {"xstrat", 2, -1},
    {"attr", 4, -1},        {"icluster", 3, -1}, {"buf", 9, -1},       {"abtb2", 15, -1},
    {"abtc2", 15, -1},      {"bmbt2", 15, -1},   {"ibt2", 15, -1},     {"qm", -1, -1},
    {"debug", 1, -1},
};

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int mw_node_xfs_parse(const char *data, size_t len, mw_node_xfs_stats_t *st, char *err,
                      size_t errlen) {
  memset(st, 0, sizeof *st);
  for (size_t i = 0; i < len;) {
    const char *nl = memchr(data + i, '\n', len - i);
    size_t e = nl ? (size_t)(nl - data) : len, n = e - i;
    const char *line = data + i;
    i = nl ? e + 1 : len;
    if (n && line[n - 1] == '\r') n--;
    const char *key = NULL;
    size_t key_len = 0, nv = 0, p = 0;
    uint64_t v[16];
    int bad = 0, xpc = 0;
    while (p < n) {
      while (p < n && is_space(line[p]))
        p++;
      if (p == n) break;
      size_t t = p;
      while (p < n && !is_space(line[p]))
        p++;
      if (!key) {
        key = line + t;
        key_len = p - t;
        xpc = key_len == 3 && memcmp(key, "xpc", 3) == 0;
        continue;
      }
      char tmp[32];
      uint64_t x;
      if (p - t >= sizeof tmp) {
        bad = 1;
        nv++;
        continue;
      }
      memcpy(tmp, line + t, p - t);
      tmp[p - t] = '\0';
      if (mw_node_parse_u64(tmp, 10, &x) < 0 || (!xpc && x > UINT32_MAX)) bad = 1;
      if (nv < 16) v[nv] = x;
      nv++;
    }
    if (!key || nv == 0) continue; /* fewer than two fields: skipped */
    if (bad) {
      mw_seterr(err, errlen, "strconv.ParseUint: parsing a value of %.*s: invalid syntax",
                (int)key_len, key);
      return -1;
    }
    if (xpc) {
      if (nv != 3) {
        mw_seterr(err, errlen, "incorrect number of values for XFS extended precision stats: %zu",
                  nv);
        return -1;
      }
      continue;
    }
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
      if (strlen(keys[k].key) != key_len || memcmp(keys[k].key, key, key_len) != 0) continue;
      int c = keys[k].count;
      int ok = c > 0 ? nv == (size_t)c : c == 0 ? (nv == 7 || nv == 8) : (nv == 8 || nv == 9);
      if (!ok) {
        mw_seterr(err, errlen, "incorrect number of values for XFS %s stats: %zu", keys[k].key, nv);
        return -1;
      }
      if (keys[k].at >= 0) {
        size_t take = c > 0 ? (size_t)c : 7;
        for (size_t j = 0; j < take; j++)
          st->v[keys[k].at + (int)j] = v[j];
      }
      break;
    }
  }
  return 0;
}

/* The 39 metrics: name, help, index into mw_node_xfs_stats_t.v. */
static const struct {
  const char *name, *help;
  int at;
} metrics[] = {
    {"extent_allocation_extents_allocated_total", "Number of extents allocated for a filesystem.",
     0},
    {"extent_allocation_blocks_allocated_total", "Number of blocks allocated for a filesystem.", 1},
    {"extent_allocation_extents_freed_total", "Number of extents freed for a filesystem.", 2},
    {"extent_allocation_blocks_freed_total", "Number of blocks freed for a filesystem.", 3},
    {"allocation_btree_lookups_total", "Number of allocation B-tree lookups for a filesystem.", 4},
    {"allocation_btree_compares_total", "Number of allocation B-tree compares for a filesystem.",
     5},
    {"allocation_btree_records_inserted_total",
     "Number of allocation B-tree records inserted for a filesystem.", 6},
    {"allocation_btree_records_deleted_total",
     "Number of allocation B-tree records deleted for a filesystem.", 7},
    {"block_mapping_reads_total", "Number of block map for read operations for a filesystem.", 8},
    {"block_mapping_writes_total", "Number of block map for write operations for a filesystem.", 9},
    {"block_mapping_unmaps_total", "Number of block unmaps (deletes) for a filesystem.", 10},
    {"block_mapping_extent_list_insertions_total",
     "Number of extent list insertions for a filesystem.", 11},
    {"block_mapping_extent_list_deletions_total",
     "Number of extent list deletions for a filesystem.", 12},
    {"block_mapping_extent_list_lookups_total", "Number of extent list lookups for a filesystem.",
     13},
    {"block_mapping_extent_list_compares_total", "Number of extent list compares for a filesystem.",
     14},
    {"block_map_btree_lookups_total", "Number of block map B-tree lookups for a filesystem.", 15},
    {"block_map_btree_compares_total", "Number of block map B-tree compares for a filesystem.", 16},
    {"block_map_btree_records_inserted_total",
     "Number of block map B-tree records inserted for a filesystem.", 17},
    {"block_map_btree_records_deleted_total",
     "Number of block map B-tree records deleted for a filesystem.", 18},
    {"directory_operation_lookup_total",
     "Number of file name directory lookups which miss the operating systems directory name "
     "lookup cache.",
     19},
    {"directory_operation_create_total",
     "Number of times a new directory entry was created for a filesystem.", 20},
    {"directory_operation_remove_total",
     "Number of times an existing directory entry was created for a filesystem.", 21},
    {"directory_operation_getdents_total",
     "Number of times the directory getdents operation was performed for a filesystem.", 22},
    {"inode_operation_attempts_total",
     "Number of times the OS looked for an XFS inode in the inode cache.", 23},
    {"inode_operation_found_total",
     "Number of times the OS looked for and found an XFS inode in the inode cache.", 24},
    {"inode_operation_recycled_total",
     "Number of times the OS found an XFS inode in the cache, but could not use it as it was "
     "being recycled.",
     25},
    {"inode_operation_missed_total",
     "Number of times the OS looked for an XFS inode in the cache, but did not find it.", 26},
    {"inode_operation_duplicates_total",
     "Number of times the OS tried to add a missing XFS inode to the inode cache, but found it "
     "had already been added by another process.",
     27},
    {"inode_operation_reclaims_total",
     "Number of times the OS reclaimed an XFS inode from the inode cache to free memory for "
     "another purpose.",
     28},
    {"inode_operation_attribute_changes_total",
     "Number of times the OS explicitly changed the attributes of an XFS inode.", 29},
    {"read_calls_total", "Number of read(2) system calls made to files in a filesystem.", 31},
    {"write_calls_total", "Number of write(2) system calls made to files in a filesystem.", 30},
    {"vnode_active_total", "Number of vnodes not on free lists for a filesystem.", 32},
    {"vnode_allocate_total", "Number of times vn_alloc called for a filesystem.", 33},
    {"vnode_get_total", "Number of times vn_get called for a filesystem.", 34},
    {"vnode_hold_total", "Number of times vn_hold called for a filesystem.", 35},
    {"vnode_release_total", "Number of times vn_rele called for a filesystem.", 36},
    {"vnode_reclaim_total", "Number of times vn_reclaim called for a filesystem.", 37},
    {"vnode_remove_total", "Number of times vn_remove called for a filesystem.", 38},
};

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int mw_node_collect_xfs(mw_node_scrape_t *s) {
  char base[4096], path[8192], msg[256];
  snprintf(base, sizeof base, "%s/fs/xfs", s->node->sysfs);
  /* filepath.Glob of <sysfs>/fs/xfs/(any)/stats/stats, sorted */
  char **names = NULL;
  size_t n = 0, cap = 0, nst = 0;
  mw_node_xfs_stats_t *st = NULL;
  int rc = -1;
  DIR *d = opendir(base);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
        continue;
      struct stat sb;
      snprintf(path, sizeof path, "%s/%s/stats/stats", base, e->d_name);
      if (lstat(path, &sb) < 0) continue;
      if (n == cap) {
        size_t c = cap ? cap * 2 : 8;
        char **a = realloc(names, c * sizeof *a);
        if (!a) break;
        names = a;
        cap = c;
      }
      if (!(names[n] = strdup(e->d_name))) break;
      n++;
    }
    closedir(d);
    if (e) {
      mw_node_fail(s, "out of memory");
      goto done;
    }
  }
  if (n) qsort(names, n, sizeof *names, cmp_str);
  st = calloc(n ? n : 1, sizeof *st);
  if (!st) {
    mw_node_fail(s, "out of memory");
    goto done;
  }
  for (; nst < n; nst++) {
    size_t len;
    snprintf(path, sizeof path, "%s/%s/stats/stats", base, names[nst]);
    const char *data = mw_node_read(s, path, &len);
    if (!data) {
      mw_node_fail(s, "failed to retrieve XFS stats: open %s: %s", path, strerror(errno));
      goto done;
    }
    if (mw_node_xfs_parse(data, len, &st[nst], msg, sizeof msg) < 0) {
      mw_node_fail(s, "failed to retrieve XFS stats: %s", msg);
      goto done;
    }
  }
  for (size_t m = 0; m < sizeof metrics / sizeof metrics[0]; m++) {
    if (!n) break;
    char name[128];
    snprintf(name, sizeof name, "node_xfs_%s", metrics[m].name);
    int32_t f = mw_node_family(s, name, metrics[m].help, MW_METRICS_COUNTER, "device");
    for (size_t i = 0; i < n; i++)
      mw_node_put(s, f, (double)st[i].v[metrics[m].at], names[i]);
  }
  rc = 0;
done:
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  free(st);
  return rc;
}
