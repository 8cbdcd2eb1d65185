/* am_work: a worker thread with a queue in, a queue out and an event. */
#include "am_work.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "am_mem.h"

struct job {
	am_work_run_fn run;
	am_work_done_fn done;
	void *arg;
	struct job *next;
};

struct am_work {
	struct event_base *base;
	struct event *wake;        /* activated by the worker: results are waiting */
	pthread_t thread;
	pthread_mutex_t mu;        /* guards everything below */
	pthread_cond_t cv;
	struct job *todo, **todo_tail;
	struct job *done, **done_tail;
	int pending;               /* queued + running + not yet delivered */
	int stop;
};

static void push(struct job ***tail, struct job *j)
{
	j->next = NULL;
	**tail = j;
	*tail = &j->next;
}

static void *worker(void *p)
{
	struct am_work *w = p;
	/* below the loop: on a busy machine the loop's answers come first */
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->todo && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->stop)
			break;
		struct job *j = w->todo;
		w->todo = j->next;
		if (!w->todo)
			w->todo_tail = &w->todo;
		pthread_mutex_unlock(&w->mu);
		j->run(j->arg);
		pthread_mutex_lock(&w->mu);
		push(&w->done_tail, j);
		pthread_mutex_unlock(&w->mu);
		event_active(w->wake, EV_READ, 0); /* w->wake lives until the thread is joined */
		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* On the loop: deliver every finished job. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct am_work *w = arg;
	pthread_mutex_lock(&w->mu);
	struct job *j = w->done;
	w->done = NULL;
	w->done_tail = &w->done;
	pthread_mutex_unlock(&w->mu);
	while (j) {
		struct job *next = j->next;
		j->done(j->arg, 0);
		free(j);
		pthread_mutex_lock(&w->mu);
		w->pending--;
		pthread_mutex_unlock(&w->mu);
		j = next;
	}
}

struct am_work *am_work_new(struct event_base *base)
{
	struct am_work *w = am_calloc(1, sizeof *w);
	w->base = base;
	w->todo_tail = &w->todo;
	w->done_tail = &w->done;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->wake = event_new(base, -1, EV_PERSIST, on_wake, w);
	event_add(w->wake, NULL);
	if (pthread_create(&w->thread, NULL, worker, w) != 0) {
		event_free(w->wake);
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
		free(w);
		return NULL;
	}
	return w;
}

int am_work_submit(struct am_work *w, am_work_run_fn run, am_work_done_fn done, void *arg)
{
	struct job *j = am_calloc(1, sizeof *j);
	j->run = run;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&w->mu);
	if (w->stop) {
		pthread_mutex_unlock(&w->mu);
		free(j);
		return -1;
	}
	push(&w->todo_tail, j);
	w->pending++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

int am_work_pending(struct am_work *w)
{
	pthread_mutex_lock(&w->mu);
	int n = w->pending;
	pthread_mutex_unlock(&w->mu);
	return n;
}

void am_work_free(struct am_work *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	/* the thread is gone: the lists are ours */
	struct job *lists[2] = { w->done, w->todo };
	for (int i = 0; i < 2; i++)
		for (struct job *j = lists[i], *next; j; j = next) {
			next = j->next;
			j->done(j->arg, 1);
			free(j);
		}
	event_free(w->wake);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w);
}
