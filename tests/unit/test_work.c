/* Unit tests: am_work runs jobs on its thread in order and delivers each
 * result on the loop; freeing it cancels what has not been delivered. */
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdlib.h>

#include "am_test.h"
#include "base/am_work.h"

struct job {
	int n;
	pthread_t ran_on;
	int *log, *nlog;
	int cancelled;
	struct event_base *base;
	int stop_after;
};

static void run(void *arg)
{
	struct job *j = arg;
	j->ran_on = pthread_self();
	j->n *= 2;
}

static void done(void *arg, int cancelled)
{
	struct job *j = arg;
	j->cancelled = cancelled;
	if (!cancelled) {
		j->log[(*j->nlog)++] = j->n;
		if (*j->nlog == j->stop_after)
			event_base_loopbreak(j->base);
	}
}

static void never(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static void work_order_and_hand_off(void)
{
	evthread_use_pthreads();
	struct event_base *base = event_base_new();
	struct am_work *w = am_work_new(base);
	CHECK(w != NULL);
	int log[8], nlog = 0;
	struct job jobs[5];
	for (int i = 0; i < 5; i++) {
		jobs[i] = (struct job){ .n = i + 1, .log = log, .nlog = &nlog, .base = base, .stop_after = 5 };
		CHECK_INT(am_work_submit(w, run, done, &jobs[i]), 0);
	}
	/* a loop with nothing else to wait for would return at once (aimaas's has its listeners) */
	struct event *keep = evtimer_new(base, never, NULL);
	struct timeval tv = { 10, 0 };
	evtimer_add(keep, &tv);
	event_base_dispatch(base);
	event_free(keep);
	CHECK_INT(nlog, 5);
	for (int i = 0; i < 5 && i < nlog; i++)
		CHECK_INT(log[i], 2 * (i + 1)); /* in order, each run once */
	CHECK(!pthread_equal(jobs[0].ran_on, pthread_self()));
	CHECK_INT(am_work_pending(w), 0);
	/* not delivered before the free: cancelled, never lost */
	struct job late = { .n = 7, .log = log, .nlog = &nlog, .base = base, .stop_after = 100 };
	CHECK_INT(am_work_submit(w, run, done, &late), 0);
	am_work_free(w);
	CHECK_INT(late.cancelled, 1);
	CHECK_INT(nlog, 5);
	event_base_free(base);
}

void suite_work(void)
{
	RUN(work_order_and_hand_off);
}
