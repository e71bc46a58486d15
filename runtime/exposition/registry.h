/* exposition/registry.h: the self-metrics registry (families, children, collect callbacks).
 *
 * A registry holds metric families (name, help, type, label names, histogram
 * bucket bounds). A family holds children, one per tuple of label values.
 * Families and children are named by int32 handles (>= 0; -1 is an error):
 * a handle is a slot index plus a generation, so a stale handle (its child or
 * family was deleted) is refused instead of touching freed memory. Updating a
 * child by handle (inc/add/set/observe) is O(1) (histograms: O(log buckets))
 * and never allocates.
 *
 * A family with no label names has exactly one child, created with the family
 * (as client_golang's plain Counter/Gauge/Histogram); a family is only exposed
 * while it has children. A family may have a `component_id` label: deleting a
 * component removes every child whose component_id value matches.
 *
 * Not thread-safe: a registry is used from the event loop thread only. */
#ifndef MW_METRICS_H
#define MW_METRICS_H
#include <stddef.h>
#include <stdint.h>

/* ffi.cdef begin */
/* --- metrics ---------------------------------------------------------- */

/* The self-metrics registry (runtime/exposition/registry.c, exposition/write.c,
 * exporters/process/self.c). Families and children are int32 handles (-1 = error); a stale handle
 * (its child or family was deleted) is refused, never dereferenced. Updates by handle are O(1) and
 * never allocate. err/errlen: the caller's buffer for a message. The registry is used from the
 * event loop thread only. */
typedef struct mw_metrics mw_metrics_t;

/* New empty registry (NULL on out of memory); the caller frees it with
 * mw_ffi_metrics_free (tie it to the GC with ffi.gc). */
mw_metrics_t *mw_ffi_metrics_create(void);
void mw_ffi_metrics_free(mw_metrics_t *reg);

/* Registers a family; returns its handle or -1 (err). type: "counter",
 * "gauge", "histogram" or "untyped". label_names: names joined by "\x1f"
 * (len 0 = no labels); a "component_id" label ties children to a component.
 * buckets/nbuckets: histogram upper bounds, strictly increasing (NULL/0 =
 * client_golang's default buckets); ignored for other types. Registering the
 * same definition again returns the same handle; a different one is an
 * error. A family without labels has its one child from the start. */
int32_t mw_ffi_metrics_family_add(mw_metrics_t *reg, const char *name, const char *help,
                                  const char *type, const char *label_names, size_t label_names_len,
                                  const double *buckets, size_t nbuckets, char *err, size_t errlen);
/* Deletes a family and its children. 0 or -1 (stale handle). */
int mw_ffi_metrics_family_del(mw_metrics_t *reg, int32_t family);

/* Handle of the child with these label values, joined by "\x1f" in the
 * family's label order (with one label the whole string is the value),
 * created at zero if new; -1 (err) on a bad handle, count or UTF-8. */
int32_t mw_ffi_metrics_child_get(mw_metrics_t *reg, int32_t family, const char *values, size_t len,
                                 char *err, size_t errlen);
/* Deletes one child. 0 or -1 (stale handle). */
int mw_ffi_metrics_child_del(mw_metrics_t *reg, int32_t child);
/* Deletes every child whose component_id label is component_id[0..len);
 * returns how many. */
int mw_ffi_metrics_component_del(mw_metrics_t *reg, const char *component_id, size_t len);

/* Updates by child handle: 0, or -1 on a stale handle or a type mismatch
 * (inc/add: counter (v >= 0), gauge, untyped; set: counter, gauge, untyped;
 * observe: histogram). get: the value (histogram: sample count). */
int mw_ffi_metrics_inc(mw_metrics_t *reg, int32_t child);
int mw_ffi_metrics_add(mw_metrics_t *reg, int32_t child, double v);
int mw_ffi_metrics_set(mw_metrics_t *reg, int32_t child, double v);
int mw_ffi_metrics_observe(mw_metrics_t *reg, int32_t child, double v);
int mw_ffi_metrics_get(mw_metrics_t *reg, int32_t child, double *out);
/* ffi.cdef end */

typedef enum {
  MW_METRICS_COUNTER = 0,
  MW_METRICS_GAUGE = 1,
  MW_METRICS_HISTOGRAM = 2,
  MW_METRICS_UNTYPED = 3,
} mw_metrics_type_t;

/* Limits: label names per family, histogram buckets, children+families. */
#define MW_METRICS_MAX_LABELS 32
#define MW_METRICS_MAX_BUCKETS 1024
#define MW_METRICS_MAX_HANDLES (1 << 20)
/* The label whose value names the component a child belongs to. */
#define MW_METRICS_COMPONENT_LABEL "component_id"

/* A string view (bytes need not be NUL-terminated). */
typedef struct {
  const char *ptr;
  size_t len;
} mw_metrics_str_t;

/* Read-only views of the registry, for the exposition writer. Everything is
 * owned by the registry and valid until the next call that changes it. */
typedef struct mw_metrics_family mw_metrics_family_t;
typedef struct mw_metrics_child mw_metrics_child_t;

struct mw_metrics_child {
  mw_metrics_family_t *family;
  mw_metrics_child_t *next; /* hash chain in the family */
  uint64_t hash;
  int32_t handle;
  double value;             /* counter, gauge, untyped */
  double sum;               /* histogram */
  uint64_t count;           /* histogram */
  uint64_t *buckets;        /* histogram: nbounds + 1 non-cumulative counts, last is +Inf */
  mw_metrics_str_t *values; /* nlabels label values, in label-name declaration order */
  uint64_t mark;            /* 0 at creation, then free for the registry's owner */
};

struct mw_metrics_family {
  char *name;
  char *help;
  mw_metrics_type_t type;
  int32_t handle;
  size_t nlabels;
  char **label_names;  /* declaration order */
  size_t *label_order; /* indexes into label_names, sorted by name (exposition order) */
  int component_label; /* index of component_id in label_names, or -1 */
  size_t nbounds;      /* histogram: upper bounds without +Inf */
  double *bounds;      /* strictly increasing */
  mw_metrics_child_t **table;
  size_t table_size; /* power of two */
  size_t nchildren;
  mw_metrics_family_t *name_next; /* hash chain in the registry's name index */
  uint64_t name_hash;
  mw_metrics_child_t **sorted; /* mw_metrics_children_sorted's cache (nchildren entries) */
  size_t sorted_cap;
  int sorted_ok; /* sorted is up to date: no child added or deleted since */
};

/* Called at exposition time (before writing) to refresh values, e.g. process
 * stats. It may add families and get/set/delete children; it must not delete
 * collectors. A non-zero return is ignored (values simply stay as they are). */
typedef int (*mw_metrics_collect_fn)(mw_metrics_t *reg, void *ud);

/* New empty registry, or NULL when out of memory. The caller owns it and
 * releases it with mw_metrics_free. */
mw_metrics_t *mw_metrics_create(void);

/* Frees the registry, its families and children, and calls each collector's
 * free function on its user data. NULL is a no-op. */
void mw_metrics_free(mw_metrics_t *reg);

/* Parses "counter", "gauge", "histogram", "untyped" into *out. 0 or -1. */
int mw_metrics_type_parse(const char *s, mw_metrics_type_t *out);

/* Registers a family and returns its handle, or -1 with a message in err.
 * name must match [a-zA-Z_:][a-zA-Z0-9_:]*; label names [a-zA-Z_][a-zA-Z0-9_]*,
 * distinct, not starting with "__" ("le" is refused for histograms). help may
 * be NULL (empty) and must be valid UTF-8. bounds (histograms only) are copied;
 * they must be strictly increasing, a trailing +Inf is dropped, and
 * nbounds == 0 means client_golang's DefBuckets. Registering a name again with
 * the same type, help, label names and bounds returns the existing handle;
 * anything else about a taken name is an error. The strings are copied.
 * Names are found through a hash index: O(1) expected, whatever the number of
 * families. */
int32_t mw_metrics_family_add(mw_metrics_t *reg, const char *name, const char *help,
                              mw_metrics_type_t type, const char *const *label_names,
                              size_t nlabels, const double *bounds, size_t nbounds, char *err,
                              size_t errlen);

/* Deletes a family and all its children; their handles go stale. 0 or -1
 * (unknown or stale handle). */
int mw_metrics_family_del(mw_metrics_t *reg, int32_t family);

/* The family behind a family handle, or NULL. */
mw_metrics_family_t *mw_metrics_family_get(mw_metrics_t *reg, int32_t family);

/* Returns the handle of the child with these label values (n must equal the
 * family's label count, values in label-name declaration order), creating it
 * with zero values if needed; -1 with a message in err on a bad family handle,
 * wrong count, invalid UTF-8 or too many children. The values are copied. */
int32_t mw_metrics_child_get(mw_metrics_t *reg, int32_t family, const mw_metrics_str_t *values,
                             size_t n, char *err, size_t errlen);

/* The child behind a child handle, or NULL (stale or not a child). */
mw_metrics_child_t *mw_metrics_child_view(mw_metrics_t *reg, int32_t child);

/* Deletes one child; its handle goes stale. 0 or -1 (unknown handle). */
int mw_metrics_child_del(mw_metrics_t *reg, int32_t child);

/* Deletes every child, in every family, whose component_id label value is
 * id[0..len). Returns how many children were deleted. */
int mw_metrics_component_del(mw_metrics_t *reg, const char *id, size_t len);

/* Update a child. 0, or -1 when the handle is stale or the operation does not
 * fit the type: inc/add on counters (v >= 0), gauges and untyped; set on
 * counters (to mirror a total kept elsewhere), gauges and untyped; observe on
 * histograms. No allocation. */
int mw_metrics_inc(mw_metrics_t *reg, int32_t child);
int mw_metrics_add(mw_metrics_t *reg, int32_t child, double v);
int mw_metrics_set(mw_metrics_t *reg, int32_t child, double v);
int mw_metrics_observe(mw_metrics_t *reg, int32_t child, double v);

/* Reads a child's value into *out (histograms: the sample count). 0 or -1. */
int mw_metrics_get(mw_metrics_t *reg, int32_t child, double *out);

/* Registers a collect callback; free_ud (may be NULL) is called on ud when the
 * registry is freed or the collector deleted. 0, or -1 when out of memory (then
 * free_ud is called on ud at once, so the caller never leaks it). */
int mw_metrics_collector_add(mw_metrics_t *reg, mw_metrics_collect_fn fn, void (*free_ud)(void *),
                             void *ud);

/* Deletes the collector registered with (fn, ud), calling its free_ud. 0 or -1. */
int mw_metrics_collector_del(mw_metrics_t *reg, mw_metrics_collect_fn fn, void *ud);

/* Runs every collector, in registration order. */
void mw_metrics_collect(mw_metrics_t *reg);

/* The registered families, in registration order (deleted ones removed):
 * *n gets the count. The array is owned by the registry. */
mw_metrics_family_t *const *mw_metrics_families(mw_metrics_t *reg, size_t *n);

/* The registered families sorted by name, and a family's children sorted by
 * their label values in label-name order, bytewise (client_golang's
 * MetricSorter): the exposition order. Both are kept between calls and only
 * sorted again after a family (children: a child of that family) was added or
 * deleted, so a registry whose series are stable is not re-sorted. NULL (and
 * *n = 0) when out of memory. Valid until the next change. */
mw_metrics_family_t *const *mw_metrics_families_sorted(mw_metrics_t *reg, size_t *n);
mw_metrics_child_t *const *mw_metrics_children_sorted(mw_metrics_family_t *f, size_t *n);

#endif
