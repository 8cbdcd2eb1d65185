/* Unit tests: am_due (the reconciler's due sets and wakes). */
#include <stdlib.h>
#include <unistd.h>

#include "am_test.h"
#include "deploy/am_due.h"

static void sets(void)
{
	struct am_due_set s = { 0 };
	for (long long id = 500; id >= 1; id--) /* past a few growths, twice each */
		am_due_set_add(&s, id), am_due_set_add(&s, id);
	am_due_set_add(&s, 0);
	am_due_set_add(&s, -3);
	CHECK_INT((int)s.n, 500);
	long long *ids;
	size_t n = am_due_set_take(&s, &ids);
	CHECK_INT((int)n, 500);
	int sorted = 1;
	for (size_t i = 0; i < n; i++)
		sorted &= ids[i] == (long long)i + 1;
	CHECK(sorted);
	free(ids);
	CHECK_INT((int)s.n, 0);
	am_due_set_add(&s, 7);
	am_due_set_clear(&s);
	n = am_due_set_take(&s, &ids);
	CHECK_INT((int)n, 0);
	free(ids);
	am_due_set_free(&s);
}

struct seen {
	long long ids[8];
	int n;
};

static void on_due(long long id, void *data)
{
	struct seen *s = data;
	if (s->n < 8)
		s->ids[s->n++] = id;
}

static void wakes(void)
{
	struct event_base *base = event_base_new();
	struct seen seen = { { 0 }, 0 };
	struct am_due_wakes *w = am_due_wakes_new(base, on_due, &seen);
	am_due_wake_in(w, 2, 60);
	am_due_wake_in(w, 1, 20);
	am_due_wake_in(w, 2, 5000); /* later than the one it has: kept at 60 ms */
	am_due_wake_in(w, 3, 10000);
	CHECK_INT(am_due_wakes_count(w), 3);
	for (int i = 0; i < 400 && seen.n < 2; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
	CHECK_INT(seen.n, 2);
	CHECK(seen.ids[0] == 1 && seen.ids[1] == 2);
	CHECK_INT(am_due_wakes_count(w), 1); /* 3 waits */
	am_due_wake_in(w, 3, 0); /* sooner: now */
	for (int i = 0; i < 100 && seen.n < 3; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
	CHECK_INT(seen.n, 3);
	CHECK_INT(am_due_wakes_count(w), 0);
	am_due_wakes_free(w);
	event_base_free(base);
}

void suite_due(void)
{
	RUN(sets);
	RUN(wakes);
}
