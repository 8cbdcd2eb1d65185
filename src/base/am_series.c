/* am_series: a ring of timestamped samples. */
#include "am_series.h"

#include <string.h>

#include "am_mem.h"

void am_series_init(struct am_series *s, int cap, int width)
{
	memset(s, 0, sizeof *s);
	s->cap = cap > 0 ? cap : 1;
	s->width = width < 1 ? 1 : width > AM_SERIES_WIDTH ? AM_SERIES_WIDTH : width;
	s->alloc = s->cap < 16 ? s->cap : 16;
	s->t = am_calloc((size_t)s->alloc, sizeof *s->t);
	s->v = am_calloc((size_t)s->alloc * (size_t)s->width, sizeof *s->v);
}

void am_series_free(struct am_series *s)
{
	free(s->t);
	free(s->v);
	memset(s, 0, sizeof *s);
}

void am_series_push(struct am_series *s, int64_t t_ms, const double *vals)
{
	if (!s->t)
		return;
	if (s->head == s->alloc && s->alloc < s->cap) {
		/* not wrapped yet (head == n): the ring grows in place, indices modulo cap unchanged */
		s->alloc = s->alloc * 2 < s->cap ? s->alloc * 2 : s->cap;
		s->t = am_realloc(s->t, (size_t)s->alloc * sizeof *s->t);
		s->v = am_realloc(s->v, (size_t)s->alloc * (size_t)s->width * sizeof *s->v);
	}
	s->t[s->head] = t_ms;
	memcpy(&s->v[(size_t)s->head * (size_t)s->width], vals, (size_t)s->width * sizeof *vals);
	s->head = (s->head + 1) % s->cap;
	if (s->n < s->cap)
		s->n++;
}

int64_t am_series_last(const struct am_series *s)
{
	return s->n ? s->t[(s->head + s->cap - 1) % s->cap] : 0;
}

json_t *am_series_json(const struct am_series *s, const char *const *names, int64_t since_ms, int max)
{
	json_t *out = json_object(), *t = json_array(), *cols[AM_SERIES_WIDTH] = { 0 };
	json_object_set_new(out, "t", t);
	for (int c = 0; c < s->width && names[c]; c++) {
		cols[c] = json_array();
		json_object_set_new(out, names[c], cols[c]);
	}
	int first = (s->head - s->n + s->cap) % s->cap, skip = 0;
	while (skip < s->n && s->t[(first + skip) % s->cap] < since_ms)
		skip++;
	int left = s->n - skip, step = max > 0 && left > max ? (left + max - 1) / max : 1;
	/* counted back from the newest, so the newest sample is always kept */
	for (int k = (left - 1) % step; k < left; k += step) {
		int i = (first + skip + k) % s->cap;
		json_array_append_new(t, json_integer(s->t[i]));
		for (int c = 0; c < s->width && cols[c]; c++)
			json_array_append_new(cols[c], json_real(s->v[(size_t)i * (size_t)s->width + (size_t)c]));
	}
	return out;
}
