/* am_idle: scale to zero. A deployment with idle_after_s > 0 stops its
 * replicas after that long without a request and frees their GPUs: idle_at
 * says since when, and why (idle_reason); it still wants to run, so it
 * stays listed in /v1/models and a request for it is held by the gateway,
 * which asks here for a start (am_deploy_wake, from its threads). A wake
 * clears idle_at and stamps woken_at; the reconciler places and starts it
 * as any other, and when its replicas all run the cold start's time is
 * recorded (cold_starts). When a woken deployment finds no room, the least
 * recently used running deployments that opted in (evictable, a priority
 * no higher than the waker's) are made idle until its replicas fit.
 *
 * Everything is in the database, so a kill -9 at any point leaves a state
 * the next run carries on from: a wake recorded is a start the reconciler
 * finishes; an idle recorded is a stop it finishes. */
#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../am_server.h"
#include "../base/am_buf.h"
#include "../base/am_json.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_msg.h"
#include "../base/am_time.h"
#include "../gateway/am_gateway.h"
#include "../http/am_prio.h"
#include "../sched/am_capacity_db.h"
#include "../sched/am_planner.h"
#include "../store/am_store.h"
#include "am_deploy.h"
#include "deploy_internal.h"

#define TICK_MS 1000
#define COLD_KEEP 20 /* cold start times kept per deployment */

struct am_idle {
	struct am_deploy *d;
	struct am_server *srv;
	pthread_mutex_t mu;        /* guards q: the gateway's threads add, the main loop takes */
	long long *q;
	int nq, capq;
	struct event *wake_ev;     /* the main loop's turn at q */
	struct event *tick;        /* the idle check */
	int64_t started_ms;        /* no request before this run is known */
};

/* ---- going idle ---- */

/* Makes deployment id idle (its replicas stop; the reconciler finishes
 * the task). Nothing when it is idle already. */
static void go_idle(struct am_idle *ix, long long id, const char *name, const char *kind, const char *reason)
{
	struct am_store *st = ix->srv->store;
	int own = !am_store_in_tx(st); /* the reconciler's eviction runs in its pass's */
	if (own && am_store_begin(st) != 0)
		return;
	int rc = am_store_exec(st, "UPDATE deployments SET idle_at = ?, idle_reason = ?, woken_at = NULL, updated_at = ?"
			       " WHERE id = ? AND idle_at IS NULL AND desired = 'running'", "isii", am_wall_ms(), reason,
			       am_wall_ms(), id);
	if (rc == 0 && am_store_changes(st) > 0)
		am__deploy_track(ix->d, id, kind, "aimaas", reason);
	if (own && am_store_commit(st) != 0) {
		am_store_rollback(st);
		return;
	}
	am_info("deploy", "deployment %s: scaled to zero: %s", name, reason);
	am_deploy_touch(ix->d, id);
}

/* ---- waking ---- */

/* A held request's wish, on the main loop: an idle deployment that still
 * wants to run starts again. */
static void wake_one(struct am_idle *ix, long long id)
{
	struct am_store *st = ix->srv->store;
	json_t *dep = NULL;
	am_store_row(st, &dep, "SELECT name, idle_at, woken_at, state FROM deployments WHERE id = ? AND idle_after_s > 0 AND"
		     " desired = 'running' AND state NOT IN ('failed', 'deleting')", "i", id);
	if (dep && !json_is_integer(json_object_get(dep, "idle_at"))) {
		/* awake already; one waiting for room (created when there was none, or
		 * its start found none) is now woken too: a start may evict for it */
		if (!strcmp(json_string_value(json_object_get(dep, "state")) ?: "", "waiting") &&
		    !json_is_integer(json_object_get(dep, "woken_at"))) {
			am_store_exec(st, "UPDATE deployments SET woken_at = ? WHERE id = ? AND woken_at IS NULL", "ii",
				      (long long)am_wall_ms(), id);
			am_deploy_touch(ix->d, id);
		}
		json_decref(dep);
		return;
	}
	if (!dep)
		return; /* not wakeable (stopped, failed, deleted) */
	if (am_store_begin(st) == 0) {
		long long now = am_wall_ms();
		am_store_exec(st, "UPDATE deployments SET idle_at = NULL, idle_reason = '', woken_at = ?, state = 'starting',"
			      " reason = 'starting on demand: a request is waiting', updated_at = ? WHERE id = ?", "iii", now,
			      now, id);
		am__deploy_track(ix->d, id, "deployment.wake", "aimaas", AM_MSG_T("starting on demand: a request is waiting"));
		if (am_store_commit(st) != 0)
			am_store_rollback(st);
		else
			am_info("deploy", "deployment %s: woken by a request", json_string_value(json_object_get(dep, "name")));
	}
	json_decref(dep);
	am_deploy_touch(ix->d, id);
}

static void on_wake_ev(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct am_idle *ix = arg;
	pthread_mutex_lock(&ix->mu);
	long long *q = ix->q;
	int n = ix->nq;
	ix->q = NULL;
	ix->nq = ix->capq = 0;
	pthread_mutex_unlock(&ix->mu);
	for (int i = 0; i < n; i++)
		wake_one(ix, q[i]);
	free(q);
}

void am_deploy_wake(struct am_deploy *d, long long dep_id)
{
	struct am_idle *ix = d ? am__deploy_idle(d) : NULL;
	if (!ix)
		return;
	pthread_mutex_lock(&ix->mu);
	int dup = 0;
	for (int i = 0; i < ix->nq && !dup; i++)
		dup = ix->q[i] == dep_id;
	if (!dup) {
		if (ix->nq == ix->capq) {
			ix->capq = ix->capq ? ix->capq * 2 : 8;
			ix->q = am_realloc(ix->q, (size_t)ix->capq * sizeof *ix->q);
		}
		ix->q[ix->nq++] = dep_id;
	}
	pthread_mutex_unlock(&ix->mu);
	if (!dup)
		event_active(ix->wake_ev, EV_TIMEOUT, 0);
}

/* ---- the idle check ---- */

/* When deployment id last saw a request: the gateway's figure, else
 * what the database kept (used_at). */
static int64_t last_used(struct am_idle *ix, long long id, int64_t stored, long long *inflight)
{
	int64_t last = 0;
	*inflight = 0;
	if (ix->srv->gateway)
		am_gateway_activity(ix->srv->gateway, id, &last, inflight);
	return last > stored ? last : stored;
}

static void describe_idle(long long secs, char *out, size_t size)
{
	if (secs >= 3600 && secs % 3600 == 0)
		am_fmt(out, size, AM_MSG_T("idle for %lld h"), secs / 3600);
	else if (secs >= 60 && secs % 60 == 0)
		am_fmt(out, size, AM_MSG_T("idle for %lld min"), secs / 60);
	else
		am_fmt(out, size, AM_MSG_T("idle for %lld s"), secs);
}

/* Every second: a running deployment whose idle time passed with no
 * request under way goes idle; when each was last used is kept. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct am_idle *ix = arg;
	struct am_store *st = ix->srv->store;
	json_t *rows = NULL;
	am_store_rows(st, &rows, "SELECT id, name, state, idle_after_s, idle_at, woken_at, used_at, updated_at FROM deployments"
		      " WHERE idle_after_s > 0 AND desired = 'running'", NULL);
	int64_t now = am_wall_ms();
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r) {
		long long id = json_integer_value(json_object_get(r, "id"));
		int64_t stored = json_integer_value(json_object_get(r, "used_at"));
		long long inflight;
		int64_t last = last_used(ix, id, stored, &inflight);
		if (last > stored + 1000) /* for the LRU order and the API after a restart */
			am_store_exec(st, "UPDATE deployments SET used_at = ? WHERE id = ?", "ii", (long long)last, id);
		const char *state = json_string_value(json_object_get(r, "state")) ?: "";
		if (!json_is_null(json_object_get(r, "idle_at")) || inflight > 0 ||
		    (strcmp(state, "running") && strcmp(state, "waiting")))
			continue;
		int64_t since = last;
		int64_t cand[] = { json_integer_value(json_object_get(r, "woken_at")),
				   json_integer_value(json_object_get(r, "updated_at")), ix->started_ms };
		for (size_t k = 0; k < sizeof cand / sizeof cand[0]; k++)
			if (cand[k] > since)
				since = cand[k];
		long long after = json_integer_value(json_object_get(r, "idle_after_s"));
		if (now - since < after * 1000)
			continue;
		char why[96];
		describe_idle(after, why, sizeof why);
		go_idle(ix, id, json_string_value(json_object_get(r, "name")) ?: "?", "deployment.idle", why);
	}
	json_decref(rows);
}

/* ---- cold starts ---- */

void am__idle_started(struct am_deploy *d, json_t *dep)
{
	json_t *woken = json_object_get(dep, "woken_at");
	if (!json_is_integer(woken))
		return;
	struct am_store *st = am__deploy_server(d)->store;
	long long id = json_integer_value(json_object_get(dep, "id"));
	long long ms = am_wall_ms() - json_integer_value(woken);
	json_t *all = json_loads(json_string_value(json_object_get(dep, "cold_starts")) ?: "[]", 0, NULL);
	if (!json_is_array(all)) {
		json_decref(all);
		all = json_array();
	}
	json_array_append_new(all, json_integer(ms < 0 ? 0 : ms));
	while (json_array_size(all) > COLD_KEEP)
		json_array_remove(all, 0);
	char *s = am_json_dump(all);
	am_store_exec(st, "UPDATE deployments SET woken_at = NULL, cold_starts = ? WHERE id = ?", "si", s, id);
	json_object_set_new(dep, "woken_at", json_null());
	free(s);
	json_decref(all);
	am_info("deploy", "deployment %s: cold start took %.1f s", json_string_value(json_object_get(dep, "name")) ?: "?",
		(double)ms / 1000);
}

static int by_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

/* The last and median of a cold_starts column into *last and *median;
 * how many there are. */
static int cold_stats(const char *col, long long *last, long long *median)
{
	json_t *all = json_loads(col ? col : "[]", 0, NULL);
	int n = 0;
	long long v[COLD_KEEP * 2];
	size_t i;
	json_t *x;
	json_array_foreach(all, i, x)
		if (json_is_integer(x) && n < COLD_KEEP * 2)
			v[n++] = json_integer_value(x);
	json_decref(all);
	if (!n)
		return 0;
	*last = v[n - 1];
	qsort(v, (size_t)n, sizeof *v, by_ll);
	*median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return n;
}

json_t *am_deploy_cold_start_json(const char *cold_starts)
{
	long long last = 0, median = 0;
	int n = cold_stats(cold_starts, &last, &median);
	if (!n)
		return json_null();
	return json_pack("{s:I,s:I,s:i}", "last_ms", (json_int_t)last, "median_ms", (json_int_t)median, "count", n);
}

static int on_cold_row(const struct am_store_row *row, void *data)
{
	struct am_buf *out = data;
	long long last = 0, median = 0;
	if (!cold_stats(am_store_col_text(row, 1), &last, &median))
		return 0;
	const char *name = am_store_col_text(row, 0); /* a served name: no character a label must escape */
	am_buf_printf(out, "aimaas_deployment_cold_start_seconds{deployment=\"%s\",stat=\"last\"} %.3f\n", name,
		      (double)last / 1000);
	am_buf_printf(out, "aimaas_deployment_cold_start_seconds{deployment=\"%s\",stat=\"median\"} %.3f\n", name,
		      (double)median / 1000);
	return 0;
}

void am__idle_render_metrics(struct am_deploy *d, struct am_buf *out)
{
	am_buf_adds(out, "# HELP aimaas_deployment_cold_start_seconds Time from a request waking a deployment scaled to zero"
			 " to all its replicas serving (the last, and the median of the last 20).\n"
			 "# TYPE aimaas_deployment_cold_start_seconds gauge\n");
	am_store_each(am__deploy_server(d)->store, on_cold_row, out,
		      "SELECT name, cold_starts FROM deployments WHERE cold_starts != '[]' ORDER BY id", NULL);
}

/* ---- eviction ---- */

/* Takes what deployment id's instances reserve off cap (their GPUs as if
 * free). */
static void release_in(struct am_store *st, struct am_capacity *cap, long long id)
{
	json_t *rows = NULL;
	am_store_rows(st, &rows, "SELECT r.gpu_id, r.bytes FROM gpu_reservations r JOIN instances i ON r.owner_kind ="
		      " 'instance' AND r.owner_id = i.id WHERE i.deployment_id = ?", "i", id);
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r) {
		int g = am_capacity_find(cap, json_string_value(json_object_get(r, "gpu_id")) ?: "");
		uint64_t b = (uint64_t)json_integer_value(json_object_get(r, "bytes"));
		if (g >= 0)
			cap->gpus[g].reserved = cap->gpus[g].reserved > b ? cap->gpus[g].reserved - b : 0;
	}
	json_decref(rows);
}

/* Whether dep's replicas that have no instance yet all fit on cap, each
 * planned on what the ones before it left. */
static int fits(struct am_store *st, json_t *dep, json_t *model, const struct am_capacity *cap)
{
	struct am_capacity c = *cap;
	c.gpus = am_malloc((size_t)(cap->n + 1) * sizeof *c.gpus);
	memcpy(c.gpus, cap->gpus, (size_t)cap->n * sizeof *c.gpus);
	long long id = json_integer_value(json_object_get(dep, "id"));
	int replicas = (int)json_integer_value(json_object_get(dep, "replicas")), ok = 1;
	int tp = (int)json_integer_value(json_object_get(dep, "gpus_per_replica"));
	for (int r = 0; r < replicas && ok; r++) {
		long long have = 0;
		am_store_int(st, &have, 0, "SELECT COUNT(*) FROM instances WHERE deployment_id = ? AND replica = ?", "ii", id,
			     (long long)r);
		if (have)
			continue;
		struct am_plan p;
		char why[1024];
		ok = am__deploy_plan_replica(dep, model, &c, r, &p, why, sizeof why) == 0;
		for (int k = 0; ok && k < tp; k++)
			c.gpus[p.choice[k]].reserved += p.reserve[k];
	}
	free(c.gpus);
	return ok;
}

struct victim;
static int fits_without(struct am_server *srv, json_t *going, const struct victim *v, size_t n, const unsigned char *use,
			json_t *dep, json_t *model);

struct victim {
	long long id;
	char name[129];
	int64_t used;
};

static int by_use(const void *a, const void *b)
{
	const struct victim *x = a, *y = b;
	return (x->used > y->used) - (x->used < y->used);
}

/* Whether dep fits once the deployments going idle and the victims v[k]
 * with use[k] set have stopped. */
static int fits_without(struct am_server *srv, json_t *going, const struct victim *v, size_t n, const unsigned char *use,
			json_t *dep, json_t *model)
{
	struct am_capacity cap;
	am_capacity_db_load(srv, &cap);
	size_t i;
	json_t *r;
	json_array_foreach(going, i, r)
		release_in(srv->store, &cap, json_integer_value(json_object_get(r, "id")));
	for (size_t k = 0; k < n; k++)
		if (use[k])
			release_in(srv->store, &cap, v[k].id);
	int ok = fits(srv->store, dep, model, &cap);
	am_capacity_free(&cap);
	return ok;
}

void am__idle_make_room(struct am_deploy *d, json_t *dep, json_t *model, char *why, size_t whysize)
{
	struct am_server *srv = am__deploy_server(d);
	struct am_store *st = srv->store;
	struct am_idle *ix = am__deploy_idle(d);
	long long id = json_integer_value(json_object_get(dep, "id"));
	const char *name = json_string_value(json_object_get(dep, "name")) ?: "?";
	struct am_capacity cap;
	am_capacity_db_load(srv, &cap);
	/* what deployments already on their way to idle hold is as good as free */
	json_t *going = NULL, *cands = NULL;
	am_store_rows(st, &going, "SELECT d.id, d.name FROM deployments d WHERE d.idle_at IS NOT NULL AND EXISTS"
		      " (SELECT 1 FROM instances i WHERE i.deployment_id = d.id)", NULL);
	size_t i;
	json_t *r;
	json_array_foreach(going, i, r)
		release_in(st, &cap, json_integer_value(json_object_get(r, "id")));
	if (fits(st, dep, model, &cap)) {
		if (json_array_size(going))
			am_fmt(why + strlen(why), whysize - strlen(why), AM_MSG_T("; waiting for %s to stop (scaled to zero)"),
			       json_string_value(json_object_get(json_array_get(going, 0), "name")) ?: "?");
		goto out;
	}
	/* evictable, running, no higher priority: least recently used first,
	 * the lower priority before */
	am_store_rows(st, &cands, "SELECT id, name, used_at, priority FROM deployments WHERE id != ? AND idle_after_s > 0"
		      " AND evictable = 1 AND desired = 'running' AND idle_at IS NULL AND state IN ('running', 'starting')"
		      " AND priority <= ? ORDER BY priority, id", "ii", id,
		      (long long)json_integer_value(json_object_get(dep, "priority")));
	size_t n = json_array_size(cands), nv = 0;
	struct victim *v = am_calloc(n + 1, sizeof *v);
	long long prio = -1;
	size_t from = 0;
	json_array_foreach(cands, i, r) {
		long long inflight = 0;
		long long p = json_integer_value(json_object_get(r, "priority"));
		int64_t used = last_used(ix, json_integer_value(json_object_get(r, "id")),
					 json_integer_value(json_object_get(r, "used_at")), &inflight);
		if (inflight > 0)
			continue; /* answering someone now */
		if (p != prio) { /* sort the previous priority's run by use */
			qsort(v + from, nv - from, sizeof *v, by_use);
			from = nv;
			prio = p;
		}
		v[nv].id = json_integer_value(json_object_get(r, "id"));
		am_strlcpy(v[nv].name, json_string_value(json_object_get(r, "name")) ?: "?", sizeof v[nv].name);
		v[nv].used = used;
		nv++;
	}
	qsort(v + from, nv - from, sizeof *v, by_use);
	unsigned char *use = am_calloc(nv + 1, 1);
	size_t take = 0;
	int ok = 0;
	while (take < nv && !ok) {
		release_in(st, &cap, v[take].id);
		use[take++] = 1;
		ok = fits(st, dep, model, &cap);
	}
	if (!ok) {
		if (nv)
			am_fmt(why + strlen(why), whysize - strlen(why), AM_MSG_T("; stopping every evictable deployment would not make room"));
		free(use);
		free(v);
		goto out;
	}
	/* no more than needed: one whose cards did not help (another node,
	 * other GPUs) keeps running */
	for (size_t k = take; k-- > 0;) {
		use[k] = 0;
		if (!fits_without(srv, going, v, take, use, dep, model))
			use[k] = 1;
	}
	char names[600] = "";
	for (size_t k = 0; k < take; k++) {
		if (!use[k])
			continue;
		char reason[400];
		am_fmt(reason, sizeof reason, AM_MSG_T("evicted to make room for %s (least recently used)"), name);
		go_idle(ix, v[k].id, v[k].name, "deployment.evict", reason);
		am_fmt(names + strlen(names), sizeof names - strlen(names), "%s%s", names[0] ? ", " : "", v[k].name);
	}
	free(use);
	am_fmt(why + strlen(why), whysize - strlen(why), AM_MSG_T("; stopping %s (least recently used) to make room"), names);
	am_info("deploy", "deployment %s: evicting %s to make room", name, names);
	free(v);
out:
	json_decref(going);
	json_decref(cands);
	am_capacity_free(&cap);
}

/* ---- life ---- */

struct am_idle *am__idle_new(struct am_deploy *d)
{
	struct am_idle *ix = am_calloc(1, sizeof *ix);
	ix->d = d;
	ix->srv = am__deploy_server(d);
	ix->started_ms = am_wall_ms();
	pthread_mutex_init(&ix->mu, NULL);
	ix->wake_ev = event_new(ix->srv->base, -1, 0, on_wake_ev, ix);
	ix->tick = event_new(ix->srv->base, -1, EV_PERSIST, on_tick, ix);
	am_prio_background(ix->tick);
	struct timeval tv = { TICK_MS / 1000, (TICK_MS % 1000) * 1000 };
	event_add(ix->tick, &tv);
	return ix;
}

void am__idle_free(struct am_idle *ix)
{
	if (!ix)
		return;
	event_free(ix->wake_ev);
	event_free(ix->tick);
	pthread_mutex_destroy(&ix->mu);
	free(ix->q);
	free(ix);
}
