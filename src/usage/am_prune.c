/* am_prune: retention and pruning, off the main loop (am_prune.h). */
#include "am_prune.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "../auth/am_auth.h"
#include "../base/am_buf.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_time.h"
#include "../store/am_store.h"
#include "../task/am_task.h"
#include "am_usage_sink.h"

#define DAY_MS 86400000LL
#define FIRST_PASS_S 5
#define BATCH_GAP_MS 20 /* between batches: the other writers' turn */

struct am_prune {
	struct am_prune_config c;
	struct am_store *st;
	pthread_t thread;
	int running;
	pthread_mutex_t mu; /* guards stop */
	pthread_cond_t cv;
	int stop;
};

static int stopping(struct am_prune *p)
{
	if (!p)
		return 0;
	pthread_mutex_lock(&p->mu);
	int s = p->stop;
	pthread_mutex_unlock(&p->mu);
	return s;
}

/* Waits ms or until stopped; 1 when stopped. */
static int nap(struct am_prune *p, long ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&p->mu);
	while (!p->stop && pthread_cond_timedwait(&p->cv, &p->mu, &ts) == 0)
		;
	int s = p->stop;
	pthread_mutex_unlock(&p->mu);
	return s;
}

/* The pass, stoppable between batches when p is set. */
static int pass(struct am_prune *p, struct am_store *st, const struct am_prune_config *c, long long now,
		long long *deleted)
{
	int batch = c->batch > 0 ? c->batch : 2000;
	long long total = 0;
	int rc = 0;
	for (int step = 0; step < 3 && !stopping(p); step++) {
		for (;;) {
			int n = step == 0 ? am_usage_sink_prune(st, now - c->usage_days * DAY_MS, now - c->rollup_days * DAY_MS, batch)
			      : step == 1 ? am_task_prune(st, now - c->task_days * DAY_MS, c->task_keep, batch)
					  : am_auth_prune(st, now, batch);
			if (n < 0) {
				rc = -1;
				break;
			}
			total += n;
			if (n == 0 || stopping(p) || (p && nap(p, BATCH_GAP_MS)))
				break;
		}
	}
	if (deleted)
		*deleted += total;
	return rc;
}

int am_prune_pass(struct am_store *st, const struct am_prune_config *c, long long now_ms, long long *deleted)
{
	return pass(NULL, st, c, now_ms, deleted);
}

static void *prune_main(void *arg)
{
	struct am_prune *p = arg;
	long wait_s = p->c.period_s < FIRST_PASS_S ? p->c.period_s : FIRST_PASS_S;
	while (!nap(p, wait_s * 1000L)) {
		long long n = 0;
		uint64_t t0 = am_now_ns();
		if (pass(p, p->st, &p->c, am_wall_ms(), &n) != 0)
			am_warn("prune", "a pass failed after deleting %lld rows; retried in %d s", n, p->c.period_s);
		else if (n > 0)
			am_info("prune", "deleted %lld rows past their retention in %.0f ms", n, (double)(am_now_ns() - t0) / 1e6);
		wait_s = p->c.period_s;
	}
	return NULL;
}

struct am_prune *am_prune_start(const char *dbpath, const struct am_prune_config *c, char *err, size_t errsize)
{
	struct am_prune *p = am_calloc(1, sizeof *p);
	p->c = *c;
	if (p->c.period_s <= 0)
		p->c.period_s = 600;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (am_store_open(dbpath, &p->st, err, errsize) != 0)
		goto fail;
	if (pthread_create(&p->thread, NULL, prune_main, p) != 0) {
		am_fmt(err, errsize, "cannot start the pruning thread");
		goto fail;
	}
	p->running = 1;
	return p;
fail:
	am_store_close(p->st);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
	return NULL;
}

void am_prune_free(struct am_prune *p)
{
	if (!p)
		return;
	if (p->running) {
		pthread_mutex_lock(&p->mu);
		p->stop = 1;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->thread, NULL);
	}
	am_store_close(p->st);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
