/* am_metrics: HTTP request counters and latency histograms per route, in
 * Prometheus text format. Main loop only. */
#ifndef AM_METRICS_H
#define AM_METRICS_H

#include <stddef.h>

#include "../base/am_buf.h"

struct am_metrics;

/* One series set per route (method + pattern); route index nroutes is for
 * requests that matched none. */
struct am_metrics *am_metrics_new(const char *const *methods, const char *const *patterns, size_t nroutes);
void am_metrics_free(struct am_metrics *m);
void am_metrics_observe(struct am_metrics *m, size_t route, int status, double seconds);
/* Appends the aimaas_http_* families. */
void am_metrics_render(const struct am_metrics *m, struct am_buf *out);

#endif
