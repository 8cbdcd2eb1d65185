/* am_due: what the reconciler has to look at, and when. A set of ids (the
 * deployments due for the next pass, or whose routes changed) and wakes
 * (ids to look at again at a time: a backoff's end, a stop's grace), with
 * one timer armed for the earliest. Main loop only; ids are > 0. */
#ifndef AM_DUE_H
#define AM_DUE_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

/* A set of ids (open addressing). Zeroed is empty. */
struct am_due_set {
	long long *v;
	size_t cap, n; /* cap: a power of two, or 0 */
};

/* Adds id (once; ids <= 0 are ignored). */
void am_due_set_add(struct am_due_set *s, long long id);
/* Takes every id out, sorted ascending, into *out (free it). How many. */
size_t am_due_set_take(struct am_due_set *s, long long **out);
/* Empties s, keeping its memory. */
void am_due_set_clear(struct am_due_set *s);
/* Frees what s holds (it is empty after). */
void am_due_set_free(struct am_due_set *s);

/* Called for each id whose wake time came. */
typedef void (*am_due_cb)(long long id, void *data);
struct am_due_wakes;
/* Wakes on base; cb(id, data) from the loop. Free with am_due_wakes_free. */
struct am_due_wakes *am_due_wakes_new(struct event_base *base, am_due_cb cb, void *data);
/* Calls cb for id in ms (0: on the next loop turn); an id has one wake,
 * the earliest asked. */
void am_due_wake_in(struct am_due_wakes *w, long long id, int64_t ms);
/* How many wakes wait. */
int am_due_wakes_count(const struct am_due_wakes *w);
void am_due_wakes_free(struct am_due_wakes *w);

#endif
