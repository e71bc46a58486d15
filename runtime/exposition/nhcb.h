/* exposition/nhcb.h: convert_classic_histograms_to_nhcb for the text formats (internal to
 * exposition/; the protobuf parser converts in place, parse_proto.c). */
#ifndef MW_NHCB_H
#define MW_NHCB_H
#include <stddef.h>
#include <stdint.h>

#include "exposition/parse.h"
#include "exposition/scrapecache.h"
#include "model/batch.h"

/* Turns the classic histograms among b's float samples into native histograms with
 * custom buckets (schema -53), as Prometheus 3's NHCB conversion: the samples of a family
 * the cache knows as a histogram (gauge histogram) named <family>_bucket (with le),
 * _count and _sum (_gcount, _gsum), grouped by their other labels, become one histogram
 * sample of the series <family>{labels} (interned in c's series table, marked in c as a
 * histogram series, at the _count sample's timestamp, else the first one's): custom values
 * the finite le bounds, bucket counts the differences of the cumulative ones, +Inf what the
 * count adds. The classic samples leave b unless keep_classic (c keeps their series,
 * quiet: mw_scrapecache_quiet). A
 * group that does not convert (no buckets, bounds or counts out of order, no count) keeps
 * its classic samples. dts: the scrape's default timestamp (samples at another one had
 * their own). Updates st (samples, series_added, histograms). Call at the end of a
 * successful parse, before mw_scrapecache_end. A histogram with more buckets than
 * bucket_limit (0: none) fails the scrape ("histogram bucket limit exceeded": custom
 * buckets do not merge, as Prometheus). 0, or -1 (err). */
int mw_nhcb_convert(mw_scrapecache_t *c, mw_batch_t *b, int keep_classic, int64_t dts,
                    uint32_t bucket_limit, mw_expfmt_stats_t *st, char *err, size_t errlen);

#endif
