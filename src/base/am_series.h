/* am_series: a fixed-size ring of timestamped samples (a few numbers each),
 * for the console's history charts: GPU memory and utilisation, a
 * deployment's serving metrics. Memory only: history starts again when
 * aimaas does. Not thread-safe; the owner locks. */
#ifndef AM_SERIES_H
#define AM_SERIES_H

#include <jansson.h>
#include <stdint.h>

#define AM_SERIES_WIDTH 4

struct am_series {
	int cap, n, head;          /* head: where the next sample goes */
	int alloc;                 /* samples allocated: grows to cap as they come (a thousand
	                            * series made at once touch no memory they do not use) */
	int width;                 /* values per sample, at most AM_SERIES_WIDTH */
	int64_t *t;                /* wall-clock ms */
	double *v;                 /* cap * width */
};

void am_series_init(struct am_series *s, int cap, int width);
void am_series_free(struct am_series *s);
/* Appends a sample, dropping the oldest when full. */
void am_series_push(struct am_series *s, int64_t t_ms, const double *vals);
/* The newest sample's time, 0 when empty. */
int64_t am_series_last(const struct am_series *s);
/* {"t": [...], names[0]: [...], ...} of the samples at or after since_ms,
 * oldest first, thinned to about `max` points (every k-th, the newest kept). */
json_t *am_series_json(const struct am_series *s, const char *const *names, int64_t since_ms, int max);

#endif
