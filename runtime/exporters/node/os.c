/* exporters/node/os.c: the os collector (node_exporter collector/os_release.go):
 * <rootfs>/etc/os-release, else <rootfs>/usr/lib/os-release, parsed as an
 * env file (hashicorp/go-envparse: quotes, escapes, comments, export), into
 * node_os_info and node_os_version (major.minor of VERSION_ID). Neither file
 * is "no data" (success 0). The parse is kept and the file only read again
 * when a stat shows another file or a change (device, inode, size, mtime,
 * ctime). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "exporters/node/node.h"

enum {
  BUILD_ID,
  ID,
  ID_LIKE,
  IMAGE_ID,
  IMAGE_VERSION,
  NAME,
  PRETTY_NAME,
  VARIANT,
  VARIANT_ID,
  VERSION,
  VERSION_CODENAME,
  VERSION_ID,
  NKEYS
};
#define VAL_CAP 512

struct mw_node_os_cache {
  int valid, file; /* file: index into files */
  struct stat st;
  char vals[NKEYS][VAL_CAP];
};

static const char *const keys[NKEYS] = {
    "BUILD_ID",    "ID",      "ID_LIKE",    "IMAGE_ID", "IMAGE_VERSION",    "NAME",
    "PRETTY_NAME", "VARIANT", "VARIANT_ID", "VERSION",  "VERSION_CODENAME", "VERSION_ID"};

/* Parses the value starting at *p (after '=') into out (cap bytes), consuming
 * through the end of its line; returns the position after. */
static const char *parse_value(const char *p, char *out, size_t cap) {
  size_t n = 0;
#define PUT(c)                                                                                     \
  do {                                                                                             \
    if (n + 1 < cap) out[n++] = (c);                                                               \
  } while (0)
  while (*p && *p != '\n') {
    if (*p == '\'') {
      for (p++; *p && *p != '\''; p++)
        PUT(*p);
      if (*p) p++;
    } else if (*p == '"') {
      for (p++; *p && *p != '"'; p++) {
        if (*p == '\\' && p[1]) {
          if (strchr("\"\\$`", p[1])) {
            PUT(p[1]);
            p++;
            continue;
          }
          if (p[1] == '\n') {
            p++;
            continue;
          }
        }
        PUT(*p);
      }
      if (*p) p++;
    } else if (*p == '#' && (n == 0 || out[n - 1] == ' ' || out[n - 1] == '\t')) {
      while (*p && *p != '\n')
        p++;
    } else if (*p == '\\' && p[1] && p[1] != '\n') {
      PUT(p[1]);
      p += 2;
    } else {
      PUT(*p);
      p++;
    }
  }
#undef PUT
  while (n && (out[n - 1] == ' ' || out[n - 1] == '\t' || out[n - 1] == '\r'))
    n--;
  out[n] = '\0';
  return *p ? p + 1 : p;
}

static int same_file(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
         a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Parses an os-release file into c->vals. */
static void parse(const char *data, struct mw_node_os_cache *c) {
  char tmp[VAL_CAP];
  memset(c->vals, 0, sizeof c->vals);
  for (const char *p = data; *p;) {
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
      p++;
    if (!*p) break;
    if (*p == '#') {
      p = strchr(p, '\n');
      if (!p) break;
      continue;
    }
    if (strncmp(p, "export ", 7) == 0) p += 7;
    const char *eq = p;
    while (*eq && *eq != '=' && *eq != '\n')
      eq++;
    if (*eq != '=') {
      p = *eq ? eq + 1 : eq;
      continue;
    }
    size_t kl = (size_t)(eq - p);
    while (kl && (p[kl - 1] == ' ' || p[kl - 1] == '\t'))
      kl--;
    int k = -1;
    for (int i = 0; i < NKEYS; i++)
      if (strlen(keys[i]) == kl && memcmp(keys[i], p, kl) == 0) k = i;
    p = parse_value(eq + 1, k >= 0 ? c->vals[k] : tmp, VAL_CAP);
  }
}

void mw_node_release_os(mw_node_t *n) {
  free(n->os);
  n->os = NULL;
}

int mw_node_collect_os(mw_node_scrape_t *s) {
  static const char *const files[2] = {"/etc/os-release", "/usr/lib/os-release"};
  char path[8192];
  struct mw_node_os_cache *c = s->node->os;
  const char *data = NULL;
  int hit = 0;
  for (int i = 0; i < 2 && !data && !hit; i++) {
    snprintf(path, sizeof path, "%s%s", strcmp(s->node->rootfs, "/") ? s->node->rootfs : "",
             files[i]);
    struct stat st;
    int have_st = stat(path, &st) == 0;
    if (have_st && c && c->valid && c->file == i && same_file(&st, &c->st)) {
      hit = 1;
      break;
    }
    if (!have_st && errno == ENOENT) continue;
    data = mw_node_read(s, path, NULL);
    if (!data && errno != ENOENT) return mw_node_fail(s, "%s: %s", path, strerror(errno));
    if (!data) continue;
    if (!c && !(c = s->node->os = calloc(1, sizeof *c))) return mw_node_fail(s, "out of memory");
    parse(data, c);
    c->valid = have_st;
    c->file = i;
    if (have_st) c->st = st;
  }
  if (!data && !hit) {
    s->nodata = 1;
    return mw_node_fail(s, "no os-release file found");
  }
  const char *v[NKEYS];
  for (int i = 0; i < NKEYS; i++)
    v[i] = c->vals[i];
  int32_t info = mw_node_family(
      s, "node_os_info",
      "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, "
      "image_version, name, pretty_name, variant, variant_id, version, version_codename, "
      "version_id.",
      MW_METRICS_GAUGE,
      "build_id,id,id_like,image_id,image_version,name,pretty_name,variant,variant_id,version,"
      "version_codename,version_id");
  mw_node_putv(s, info, 1, v, NKEYS);
  /* versionRegex ^[0-9]+\.?[0-9]* */
  const char *vid = v[VERSION_ID];
  size_t n = strspn(vid, "0123456789");
  if (n > 0) {
    if (vid[n] == '.') n += 1 + strspn(vid + n + 1, "0123456789");
    char num[64];
    snprintf(num, sizeof num, "%.*s", (int)n, vid);
    double ver = strtod(num, NULL);
    if (ver > 0) {
      int32_t f = mw_node_family(s, "node_os_version",
                                 "Metric containing the major.minor part of the OS version.",
                                 MW_METRICS_GAUGE, "id,id_like,name");
      mw_node_put(s, f, ver, v[ID], v[ID_LIKE], v[NAME]);
    }
  }
  return 0;
}
