/* am_deadline: a timeout that is moved far more often than it fires (a
 * connection's idle or header timeout, re-armed by every request; an
 * upstream's silence timeout, by every read). Moving it is a store, not a
 * timer-heap operation: the event stays where it was and, when it fires
 * before the deadline, is set again for what is left. One loop's. */
#ifndef AM_DEADLINE_H
#define AM_DEADLINE_H

#include <event2/event.h>
#include <stdint.h>

struct am_deadline {
	struct event *ev;
	uint64_t at_ns;            /* the deadline (am_now_ns); 0: none */
	uint64_t fires_ns;         /* when ev is due to fire; 0: not pending */
};

/* ev fires cb(arg); cb must begin with am_deadline_due. 0, or -1 when out of memory. */
int am_deadline_init(struct am_deadline *d, struct event_base *base, event_callback_fn cb, void *arg);
void am_deadline_free(struct am_deadline *d);
/* The deadline is ms from now (0: at the loop's next turn). */
void am_deadline_set(struct am_deadline *d, uint64_t ms);
/* No deadline (the event may still fire, and am_deadline_due says no). */
void am_deadline_clear(struct am_deadline *d);
/* In the callback: 1 when the deadline has passed (it is cleared), else 0
 * (set again for what is left, or none was set). */
int am_deadline_due(struct am_deadline *d);

#endif
