/* am_due: see am_due.h. */
#include "am_due.h"

#include <stdlib.h>
#include <string.h>

#include "../base/am_mem.h"
#include "../base/am_time.h"

static size_t slot(const struct am_due_set *s, long long id)
{
	uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ull;
	return (size_t)(x >> 32) & (s->cap - 1);
}

void am_due_set_add(struct am_due_set *s, long long id)
{
	if (id <= 0)
		return;
	if ((s->n + 1) * 2 > s->cap) { /* grow: keep it at most half full */
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct am_due_set big = { am_calloc(cap, sizeof(long long)), cap, 0 };
		for (size_t i = 0; i < s->cap; i++)
			if (s->v[i])
				am_due_set_add(&big, s->v[i]);
		free(s->v);
		*s = big;
	}
	size_t i = slot(s, id);
	while (s->v[i] && s->v[i] != id)
		i = (i + 1) & (s->cap - 1);
	if (!s->v[i]) {
		s->v[i] = id;
		s->n++;
	}
}

static int by_id(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

size_t am_due_set_take(struct am_due_set *s, long long **out)
{
	long long *v = am_calloc(s->n ? s->n : 1, sizeof *v);
	size_t n = 0;
	for (size_t i = 0; i < s->cap; i++)
		if (s->v[i]) {
			v[n++] = s->v[i];
			s->v[i] = 0;
		}
	s->n = 0;
	qsort(v, n, sizeof *v, by_id);
	*out = v;
	return n;
}

void am_due_set_clear(struct am_due_set *s)
{
	if (s->cap)
		memset(s->v, 0, s->cap * sizeof *s->v);
	s->n = 0;
}

void am_due_set_free(struct am_due_set *s)
{
	free(s->v);
	memset(s, 0, sizeof *s);
}

/* ---- wakes ---- */

struct wake {
	long long id;
	int64_t at_ms;
};

struct am_due_wakes {
	struct event *ev;
	am_due_cb cb;
	void *data;
	struct wake *v;
	int n, cap;
	int64_t armed; /* what ev is armed for; 0: not armed */
};

static void arm(struct am_due_wakes *w)
{
	int64_t first = 0;
	for (int i = 0; i < w->n; i++)
		if (!first || w->v[i].at_ms < first)
			first = w->v[i].at_ms;
	if (first == w->armed)
		return;
	w->armed = first;
	if (!first) {
		event_del(w->ev);
		return;
	}
	int64_t in = first - am_wall_ms();
	if (in < 0)
		in = 0;
	struct timeval tv = { (time_t)(in / 1000), (suseconds_t)(in % 1000) * 1000 };
	event_add(w->ev, &tv);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct am_due_wakes *w = arg;
	int64_t now = am_wall_ms();
	w->armed = 0;
	for (int i = 0; i < w->n;) {
		if (w->v[i].at_ms <= now) {
			long long id = w->v[i].id;
			w->v[i] = w->v[--w->n];
			w->cb(id, w->data);
		} else {
			i++;
		}
	}
	arm(w);
}

struct am_due_wakes *am_due_wakes_new(struct event_base *base, am_due_cb cb, void *data)
{
	struct am_due_wakes *w = am_calloc(1, sizeof *w);
	w->ev = event_new(base, -1, 0, on_wake, w);
	w->cb = cb;
	w->data = data;
	return w;
}

void am_due_wake_in(struct am_due_wakes *w, long long id, int64_t ms)
{
	int64_t at = am_wall_ms() + (ms > 0 ? ms : 0);
	for (int i = 0; i < w->n; i++)
		if (w->v[i].id == id) {
			if (at < w->v[i].at_ms) {
				w->v[i].at_ms = at;
				arm(w);
			}
			return;
		}
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 16;
		w->v = am_realloc(w->v, (size_t)w->cap * sizeof *w->v);
	}
	w->v[w->n++] = (struct wake){ id, at };
	arm(w);
}

int am_due_wakes_count(const struct am_due_wakes *w)
{
	return w ? w->n : 0;
}

void am_due_wakes_free(struct am_due_wakes *w)
{
	if (!w)
		return;
	event_free(w->ev);
	free(w->v);
	free(w);
}
