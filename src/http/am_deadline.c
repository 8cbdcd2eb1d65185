/* am_deadline: see am_deadline.h. */
#include "am_deadline.h"

#include "../base/am_time.h"

#define SLACK_NS 1000000ull /* a deadline within 1 ms counts as passed: no re-arming for crumbs */

static void add(struct am_deadline *d, uint64_t ns)
{
	struct timeval tv = { (time_t)(ns / 1000000000ull), (suseconds_t)(ns % 1000000000ull / 1000) };
	evtimer_add(d->ev, &tv);
}

int am_deadline_init(struct am_deadline *d, struct event_base *base, event_callback_fn cb, void *arg)
{
	d->at_ns = d->fires_ns = 0;
	d->ev = evtimer_new(base, cb, arg);
	return d->ev ? 0 : -1;
}

void am_deadline_free(struct am_deadline *d)
{
	if (d->ev)
		event_free(d->ev);
	d->ev = NULL;
}

void am_deadline_set(struct am_deadline *d, uint64_t ms)
{
	uint64_t now = am_now_ns(), at = now + ms * 1000000ull;
	d->at_ns = at ? at : 1;
	if (d->fires_ns && d->fires_ns <= at)
		return; /* it fires sooner and looks again then */
	add(d, at - now);
	d->fires_ns = at;
}

void am_deadline_clear(struct am_deadline *d)
{
	d->at_ns = 0;
}

int am_deadline_due(struct am_deadline *d)
{
	d->fires_ns = 0;
	if (!d->at_ns)
		return 0;
	uint64_t now = am_now_ns();
	if (now + SLACK_NS >= d->at_ns) {
		d->at_ns = 0;
		return 1;
	}
	add(d, d->at_ns - now);
	d->fires_ns = d->at_ns;
	return 0;
}
