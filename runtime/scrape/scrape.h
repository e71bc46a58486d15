/* runtime/scrape/: prometheus.scrape's C side: a target (scrape.c) and its cache of the
 * previous scrape (cache.c: series refs, metadata, staleness).
 *
 * scrape/scrape.h: the C side of one scrape target. A target owns two scrape caches:
 * the scraped body's series, whose new series get the target's labels as
 * Prometheus's mutateSampleLabels gives them (honor_labels, exported_
 * prefixes) and are checked against the label limits; and the report series
 * (up, scrape_duration_seconds, ...), which get the target's labels as
 * mutateReportSampleLabels and no limit. One call turns a body into a batch;
 * the batches are valid until the next call on the target. */
#ifndef MW_SCRAPE_H
#define MW_SCRAPE_H
#include <stddef.h>
#include <stdint.h>

#include "base/labels.h"
#include "ffi.h"

/* Merges target labels into scraped labels as Prometheus's mutateSampleLabels
 * (exposed for tests): in sorted; target sorted, without __ labels. The result
 * goes to *out (n in *out_n) in storage owned by t until the next call. */
int mw_scrape_mutate(mw_scrape_target_t *t, const mw_label_t *in, size_t n, const mw_label_t **out,
                     size_t *out_n, char *err, size_t errlen);

#endif
