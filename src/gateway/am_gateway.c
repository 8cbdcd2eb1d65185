/* am_gateway: the gateway's threads, snapshot, usage and metrics. */
#include "am_gateway.h"

#include <event2/thread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../am_server.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_rand.h"
#include <unistd.h>
#include "../base/am_time.h"
#include "../deploy/am_deploy.h"
#include "../store/am_store.h"
#include "gw_internal.h"

static const double bounds[GW_NB] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120 };

int am_gateway_owns(const char *t, size_t n)
{
	size_t plen = n;
	const char *q = memchr(t, '?', n);
	if (q)
		plen = (size_t)(q - t);
	if (plen >= 4 && !memcmp(t, "/v1/", 4))
		return 1;
	return (plen == 7 && !memcmp(t, "/rerank", 7)) || (plen == 10 && !memcmp(t, "/v2/rerank", 10)) ||
	       (plen == 6 && !memcmp(t, "/score", 6));
}

/* ---- the snapshot ---- */

static void table_free(struct gw_table *t)
{
	if (!t)
		return;
	for (int i = 0; i < t->nroutes; i++)
		free(t->routes[i].reps);
	free(t->routes);
	for (int i = 0; i < t->nkeys; i++) {
		for (int k = 0; k < t->keys[i].nmodels; k++)
			free(t->keys[i].models[k]);
		free(t->keys[i].models);
	}
	free(t->keys);
	free(t);
}

static void table_unref(struct am_gateway *g, struct gw_table *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&g->mu);
	int last = --t->refs == 0;
	pthread_mutex_unlock(&g->mu);
	if (last)
		table_free(t);
}

int am_gateway_resolve(struct am_gateway *g, const char *model, int *port, char *key, size_t keysize, char *engine_name,
		       size_t namesize, char *why, size_t whysize)
{
	static _Atomic unsigned next;
	int rc = -1;
	pthread_mutex_lock(&g->mu);
	struct gw_table *t = g->table;
	const struct gw_route *r = NULL;
	for (int i = 0; t && i < t->nroutes && !r; i++)
		if (!strcmp(t->routes[i].name, model))
			r = &t->routes[i];
	if (!r)
		am_fmt(why, whysize, "no deployment serves '%.128s'", model);
	else if (!r->nreps)
		am_fmt(why, whysize, "'%.128s' is not running (%s)", model, r->state);
	else {
		const struct gw_rep *rep = &r->reps[atomic_fetch_add(&next, 1) % (unsigned)r->nreps];
		*port = rep->port;
		am_strlcpy(key, rep->key, keysize);
		am_strlcpy(engine_name, r->engine_name, namesize);
		rc = 0;
	}
	pthread_mutex_unlock(&g->mu);
	return rc;
}

struct gw_table *gw_table_get(struct gw_worker *w)
{
	struct am_gateway *g = w->g;
	long long gen = atomic_load(&g->gen);
	if (gen != w->table_gen || !w->table) {
		pthread_mutex_lock(&g->mu);
		struct gw_table *t = g->table;
		if (t)
			t->refs++;
		pthread_mutex_unlock(&g->mu);
		table_unref(g, w->table);
		w->table = t;
		w->table_gen = gen;
	}
	return w->table;
}

static struct gw_counters *counters_for(struct am_gateway *g, long long key_id, long long used)
{
	for (int i = 0; i < g->nctrs; i++)
		if (g->ctrs[i]->key_id == key_id)
			return g->ctrs[i];
	struct gw_counters *c = am_calloc(1, sizeof *c);
	c->key_id = key_id;
	atomic_store(&c->used, used);
	pthread_mutex_lock(&g->mu);
	if (g->nctrs == g->capctrs) {
		g->capctrs = g->capctrs ? g->capctrs * 2 : 64;
		g->ctrs = am_realloc(g->ctrs, (size_t)g->capctrs * sizeof *g->ctrs);
	}
	g->ctrs[g->nctrs++] = c;
	pthread_mutex_unlock(&g->mu);
	return c;
}

static int by_hash(const void *a, const void *b)
{
	return strcmp(((const struct gw_key *)a)->hash, ((const struct gw_key *)b)->hash);
}

/* What a request can see, as one short string: states, ports and key
 * policies, but not the usage counters that change all the time. */
static void signature(struct am_store *st, char out[65])
{
	json_t *row = NULL;
	am_store_row(st, &row,
		     "SELECT (SELECT group_concat(id || ':' || name || ':' || state || ':' || lora_modules || aliases, ',') FROM deployments) AS d,"
		     " (SELECT group_concat(id || ':' || state || ':' || COALESCE(port, 0), ',') FROM instances) AS i,"
		     " (SELECT COUNT(*) || ':' || COALESCE(MAX(updated_at), 0) || ':' || COALESCE(MAX(id), 0) FROM api_keys) AS k,"
		     " (SELECT COUNT(*) || ':' || COALESCE(MAX(id), 0) || ':' || COALESCE(group_concat(CASE WHEN disabled"
		     "  THEN id END), '') FROM users) AS u," /* which users are off, not how many */
		     " (SELECT COUNT(*) || ':' || COALESCE(MAX(id), 0) || ':' || COUNT(revoked_at) FROM sessions"
		     "  WHERE kind = 'session') AS s", NULL);
	char *s = row ? json_dumps(row, JSON_COMPACT) : NULL;
	am_sha256_hex(s ? s : "", s ? strlen(s) : 0, out);
	free(s);
	json_decref(row);
}

void am_gateway_refresh(struct am_gateway *g)
{
	struct am_store *st = g->srv->store;
	char digest[65];
	signature(st, digest);
	if (!strcmp(digest, g->signature))
		return;
	json_t *deps = NULL, *insts = NULL, *keys = NULL, *sess = NULL;
	am_store_rows(st, &deps, "SELECT d.id, d.name, d.state, d.desired, d.lora_modules, d.aliases, m.kind,"
		      " COALESCE(d.max_model_len, m.max_context) AS max_model_len FROM deployments d"
		      " JOIN models m ON m.id = d.model_id ORDER BY d.id", NULL);
	am_store_rows(st, &insts, "SELECT id, deployment_id,"
		      " CAST(substr(address, instr(address, ':') + 1) AS INTEGER) AS port, api_key" /* address: 127.0.0.1:PORT */
		      " FROM instances WHERE state = 'running' ORDER BY id", NULL);
	am_store_rows(st, &keys, "SELECT k.id, k.user_id, u.username, k.key_hash, k.models, k.rpm, k.tpm, k.quota_tokens,"
		      " k.used_tokens, k.expires_at, k.updated_at FROM api_keys k JOIN users u ON u.id = k.user_id"
		      " WHERE k.revoked_at IS NULL AND u.disabled = 0", NULL);
	/* the console's sessions call /v1 too (the playground), with the cookie */
	am_store_rows(st, &sess, "SELECT s.id, s.user_id, u.username, s.token_hash, s.csrf, s.expires_at FROM sessions s"
		      " JOIN users u ON u.id = s.user_id WHERE s.kind = 'session' AND s.revoked_at IS NULL"
		      " AND u.disabled = 0 AND (s.expires_at IS NULL OR s.expires_at > ?)", "i", am_wall_ms());
	if (!deps || !insts || !keys || !sess)
		goto out;
	am_strlcpy(g->signature, digest, sizeof g->signature);

	struct gw_table *t = am_calloc(1, sizeof *t);
	t->refs = 1;
	t->created_s = (long long)(am_wall_ms() / 1000);
	size_t nd = json_array_size(deps);
	int cap = (int)nd * 2 + 1;
	t->routes = am_calloc((size_t)cap, sizeof *t->routes);
	size_t i;
	json_t *d;
	json_array_foreach(deps, i, d) {
		long long id = json_integer_value(json_object_get(d, "id"));
		struct gw_rep *reps = NULL;
		int nreps = 0;
		size_t k;
		json_t *inst;
		json_array_foreach(insts, k, inst) {
			if (json_integer_value(json_object_get(inst, "deployment_id")) != id)
				continue;
			reps = am_realloc(reps, (size_t)(nreps + 1) * sizeof *reps);
			reps[nreps].instance_id = json_integer_value(json_object_get(inst, "id"));
			reps[nreps].port = (int)json_integer_value(json_object_get(inst, "port"));
			am_deploy_engine_key(g->srv->deploy, json_string_value(json_object_get(inst, "api_key")), reps[nreps].key,
					     sizeof reps[nreps].key);
			nreps++;
		}
		json_t *loras = json_loads(json_string_value(json_object_get(d, "lora_modules")) ?: "[]", 0, NULL);
		json_t *aliases = json_loads(json_string_value(json_object_get(d, "aliases")) ?: "[]", 0, NULL);
		if (!json_is_array(loras)) { /* aimaas wrote them: never expected, but never a crash */
			json_decref(loras);
			loras = json_array();
		}
		/* aliases route like the name itself; they come after the adapters */
		size_t na = json_array_size(aliases);
		for (size_t x = 0; x < na; x++)
			json_array_append_new(loras, json_pack("{s:O,s:b}", "name", json_array_get(aliases, x), "alias", 1));
		json_decref(aliases);
		size_t nl = json_array_size(loras);
		if (t->nroutes + 1 + (int)nl > cap) {
			cap = t->nroutes + 1 + (int)nl + 16;
			t->routes = am_realloc(t->routes, (size_t)cap * sizeof *t->routes);
		}
		for (size_t l = 0; l <= nl; l++) {
			struct gw_route *r = &t->routes[t->nroutes++];
			memset(r, 0, sizeof *r);
			const char *name = l == 0 ? json_string_value(json_object_get(d, "name"))
						  : json_string_value(json_object_get(json_array_get(loras, l - 1), "name"));
			am_strlcpy(r->name, name ?: "", sizeof r->name);
			r->dep_id = id;
			r->lora = l > 0 && !json_is_true(json_object_get(json_array_get(loras, l - 1), "alias"));
			/* an alias is the deployment under another name; an adapter keeps its own */
			am_strlcpy(r->engine_name, l > 0 && !r->lora ? json_string_value(json_object_get(d, "name")) : name ?: "",
				   sizeof r->engine_name);
			am_strlcpy(r->kind, json_string_value(json_object_get(d, "kind")) ?: "llm", sizeof r->kind);
			if (r->lora)
				am_strlcpy(r->parent, json_string_value(json_object_get(d, "name")) ?: "", sizeof r->parent);
			r->max_model_len = json_integer_value(json_object_get(d, "max_model_len"));
			am_strlcpy(r->state, nreps ? "running" : json_string_value(json_object_get(d, "state")) ?: "stopped",
				   sizeof r->state);
			if (nreps) {
				r->reps = am_malloc((size_t)nreps * sizeof *reps);
				memcpy(r->reps, reps, (size_t)nreps * sizeof *reps);
				r->nreps = nreps;
			}
		}
		json_decref(loras);
		free(reps);
	}
	size_t nk = json_array_size(keys);
	t->nkeys = (int)(nk + json_array_size(sess));
	t->keys = am_calloc((size_t)t->nkeys + 1, sizeof *t->keys);
	json_t *kr;
	json_array_foreach(keys, i, kr) {
		struct gw_key *k = &t->keys[i];
		am_strlcpy(k->hash, json_string_value(json_object_get(kr, "key_hash")), sizeof k->hash);
		k->id = json_integer_value(json_object_get(kr, "id"));
		k->user_id = json_integer_value(json_object_get(kr, "user_id"));
		am_strlcpy(k->user, json_string_value(json_object_get(kr, "username")), sizeof k->user);
		k->rpm = json_integer_value(json_object_get(kr, "rpm"));
		k->tpm = json_integer_value(json_object_get(kr, "tpm"));
		k->quota = json_integer_value(json_object_get(kr, "quota_tokens"));
		k->expires_at = json_integer_value(json_object_get(kr, "expires_at"));
		json_t *models = json_loads(json_string_value(json_object_get(kr, "models")) ?: "null", JSON_DECODE_ANY, NULL);
		/* NULL is every model; anything unreadable is none (fail closed) */
		k->all_models = json_is_null(models);
		if (json_is_array(models)) {
			k->nmodels = (int)json_array_size(models);
			k->models = am_calloc((size_t)k->nmodels + 1, sizeof *k->models);
			for (int m = 0; m < k->nmodels; m++)
				k->models[m] = am_strdup(json_string_value(json_array_get(models, (size_t)m)) ?: "");
		}
		json_decref(models);
		k->ctr = counters_for(g, k->id, json_integer_value(json_object_get(kr, "used_tokens")));
	}
	json_array_foreach(sess, i, kr) {
		struct gw_key *k = &t->keys[nk + i];
		am_strlcpy(k->hash, json_string_value(json_object_get(kr, "token_hash")) ?: "", sizeof k->hash);
		am_strlcpy(k->csrf, json_string_value(json_object_get(kr, "csrf")) ?: "", sizeof k->csrf);
		k->session = 1;
		k->user_id = json_integer_value(json_object_get(kr, "user_id"));
		am_strlcpy(k->user, json_string_value(json_object_get(kr, "username")) ?: "", sizeof k->user);
		k->all_models = 1;
		k->expires_at = json_integer_value(json_object_get(kr, "expires_at"));
		/* no limits; counters of their own (negative ids never meet a key's) */
		k->ctr = counters_for(g, -json_integer_value(json_object_get(kr, "id")), 0);
	}
	qsort(t->keys, (size_t)t->nkeys, sizeof *t->keys, by_hash);
	pthread_mutex_lock(&g->mu);
	struct gw_table *old = g->table;
	g->table = t;
	atomic_fetch_add(&g->gen, 1);
	pthread_mutex_unlock(&g->mu);
	table_unref(g, old);
out:
	json_decref(deps);
	json_decref(insts);
	json_decref(keys);
	json_decref(sess);
}

/* ---- usage (gw_usage.c) ---- */

static void on_ub_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	gw_usage_handover(arg);
}

void am_gateway_flush_usage(struct am_gateway *g)
{
	gw_usage_fold(g, g->wstore ? g->wstore : g->srv->store);
}

/* ---- statistics ---- */

struct gw_mstats *gw_stats(struct gw_worker *w, const char *model)
{
	for (int i = 0; i < w->nstats; i++)
		if (!strcmp(w->stats[i].model, model))
			return &w->stats[i];
	if (w->nstats >= 512)
		return &w->stats[w->nstats - 1]; /* bounded: names beyond go to the last series */
	w->stats = am_realloc(w->stats, (size_t)(w->nstats + 1) * sizeof *w->stats);
	struct gw_mstats *m = &w->stats[w->nstats++];
	memset(m, 0, sizeof *m);
	am_strlcpy(m->model, model, sizeof m->model);
	return m;
}

void gw_stats_observe(uint64_t *buckets, double v)
{
	int i = 0;
	while (i < GW_NB && v > bounds[i])
		i++;
	buckets[i]++;
}

static void merge(struct gw_mstats *into, const struct gw_mstats *m)
{
	for (int i = 0; i < m->nst; i++) {
		int k;
		for (k = 0; k < into->nst; k++)
			if (into->st[k].status == m->st[i].status)
				break;
		if (k == into->nst && into->nst < 12)
			into->st[into->nst++].status = m->st[i].status;
		if (k < into->nst)
			into->st[k].n += m->st[i].n;
	}
	into->prompt += m->prompt;
	into->completion += m->completion;
	for (int b = 0; b <= GW_NB; b++) {
		into->ttft[b] += m->ttft[b];
		into->dur[b] += m->dur[b];
	}
	into->ttft_n += m->ttft_n;
	into->dur_n += m->dur_n;
	into->ttft_sum += m->ttft_sum;
	into->dur_sum += m->dur_sum;
	into->inflight += m->inflight;
}

static void hist(struct am_buf *o, const char *name, const char *model, const uint64_t *b, uint64_t n, double sum)
{
	uint64_t cum = 0;
	for (int i = 0; i <= GW_NB; i++) {
		cum += b[i];
		if (i < GW_NB)
			am_buf_printf(o, "%s_bucket{model=\"%s\",le=\"%g\"} %llu\n", name, model, bounds[i], (unsigned long long)cum);
		else
			am_buf_printf(o, "%s_bucket{model=\"%s\",le=\"+Inf\"} %llu\n", name, model, (unsigned long long)cum);
	}
	am_buf_printf(o, "%s_sum{model=\"%s\"} %.6f\n%s_count{model=\"%s\"} %llu\n", name, model, sum, name, model,
		      (unsigned long long)n);
}

void am_gateway_render_metrics(struct am_gateway *g, struct am_buf *o)
{
	struct gw_mstats *all = NULL;
	int n = 0;
	for (int w = 0; w < g->nworkers; w++) {
		struct gw_worker *wk = &g->workers[w];
		pthread_mutex_lock(&wk->smu);
		for (int i = 0; i < wk->nstats; i++) {
			int k;
			for (k = 0; k < n; k++)
				if (!strcmp(all[k].model, wk->stats[i].model))
					break;
			if (k == n) {
				all = am_realloc(all, (size_t)(n + 1) * sizeof *all);
				memset(&all[n], 0, sizeof all[n]);
				am_strlcpy(all[n].model, wk->stats[i].model, sizeof all[n].model);
				n++;
			}
			merge(&all[k], &wk->stats[i]);
		}
		pthread_mutex_unlock(&wk->smu);
	}
	am_buf_adds(o, "# HELP aimaas_gateway_requests_total Gateway requests by model and status.\n"
		       "# TYPE aimaas_gateway_requests_total counter\n");
	for (int i = 0; i < n; i++)
		for (int k = 0; k < all[i].nst; k++)
			am_buf_printf(o, "aimaas_gateway_requests_total{model=\"%s\",status=\"%d\"} %llu\n", all[i].model,
				      all[i].st[k].status, (unsigned long long)all[i].st[k].n);
	static const char *const reasons[GW_REJECT_N] = {
		[GW_REJECT_INVALID] = "invalid",           [GW_REJECT_UNAUTHORIZED] = "unauthorized",
		[GW_REJECT_FORBIDDEN] = "forbidden",       [GW_REJECT_UNKNOWN_MODEL] = "unknown_model",
		[GW_REJECT_NOT_FOUND] = "not_found",       [GW_REJECT_METHOD] = "method_not_allowed",
		[GW_REJECT_TOO_LARGE] = "too_large",       [GW_REJECT_RATE_LIMITED] = "rate_limited",
		[GW_REJECT_QUOTA] = "quota_exceeded",      [GW_REJECT_UNAVAILABLE] = "unavailable",
		[GW_REJECT_OTHER] = "other",
	};
	static const int statuses[GW_REJECT_N] = {
		[GW_REJECT_INVALID] = 400,   [GW_REJECT_UNAUTHORIZED] = 401, [GW_REJECT_FORBIDDEN] = 403,
		[GW_REJECT_UNKNOWN_MODEL] = 404, [GW_REJECT_NOT_FOUND] = 404, [GW_REJECT_METHOD] = 405,
		[GW_REJECT_TOO_LARGE] = 413, [GW_REJECT_RATE_LIMITED] = 429, [GW_REJECT_QUOTA] = 429,
		[GW_REJECT_UNAVAILABLE] = 503, [GW_REJECT_OTHER] = 0,
	};
	am_buf_adds(o, "# HELP aimaas_gateway_rejected_total Gateway requests refused before an engine saw them, by reason.\n"
		       "# TYPE aimaas_gateway_rejected_total counter\n");
	for (int r = 0; r < GW_REJECT_N; r++) {
		uint64_t sum = 0;
		for (int w = 0; w < g->nworkers; w++)
			sum += atomic_load(&g->workers[w].rejected[r]);
		if (statuses[r])
			am_buf_printf(o, "aimaas_gateway_rejected_total{reason=\"%s\",status=\"%d\"} %llu\n", reasons[r],
				      statuses[r], (unsigned long long)sum);
		else
			am_buf_printf(o, "aimaas_gateway_rejected_total{reason=\"%s\"} %llu\n", reasons[r],
				      (unsigned long long)sum);
	}
	am_buf_adds(o, "# HELP aimaas_gateway_prompt_tokens_total Prompt tokens by model.\n"
		       "# TYPE aimaas_gateway_prompt_tokens_total counter\n");
	for (int i = 0; i < n; i++)
		am_buf_printf(o, "aimaas_gateway_prompt_tokens_total{model=\"%s\"} %llu\n", all[i].model,
			      (unsigned long long)all[i].prompt);
	am_buf_adds(o, "# HELP aimaas_gateway_completion_tokens_total Completion tokens by model.\n"
		       "# TYPE aimaas_gateway_completion_tokens_total counter\n");
	for (int i = 0; i < n; i++)
		am_buf_printf(o, "aimaas_gateway_completion_tokens_total{model=\"%s\"} %llu\n", all[i].model,
			      (unsigned long long)all[i].completion);
	am_buf_adds(o, "# HELP aimaas_gateway_requests_in_flight Requests being answered.\n"
		       "# TYPE aimaas_gateway_requests_in_flight gauge\n");
	for (int i = 0; i < n; i++)
		am_buf_printf(o, "aimaas_gateway_requests_in_flight{model=\"%s\"} %lld\n", all[i].model, all[i].inflight);
	am_buf_adds(o, "# HELP aimaas_gateway_time_to_first_token_seconds Time to the first streamed token.\n"
		       "# TYPE aimaas_gateway_time_to_first_token_seconds histogram\n");
	for (int i = 0; i < n; i++)
		hist(o, "aimaas_gateway_time_to_first_token_seconds", all[i].model, all[i].ttft, all[i].ttft_n, all[i].ttft_sum);
	am_buf_adds(o, "# HELP aimaas_gateway_request_duration_seconds Whole request time.\n"
		       "# TYPE aimaas_gateway_request_duration_seconds histogram\n");
	for (int i = 0; i < n; i++)
		hist(o, "aimaas_gateway_request_duration_seconds", all[i].model, all[i].dur, all[i].dur_n, all[i].dur_sum);
	free(all);
}

/* ---- threads and hand-offs ---- */

static void push(struct gw_pending **q, int *n, int *cap, int fd, const char *bytes, size_t len, const char *peer)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*q = am_realloc(*q, (size_t)*cap * sizeof **q);
	}
	struct gw_pending *p = &(*q)[(*n)++];
	p->fd = fd;
	p->bytes = am_malloc(len ? len : 1);
	memcpy(p->bytes, bytes, len);
	p->len = len;
	am_strlcpy(p->peer, peer, sizeof p->peer);
}

void am_gateway_handoff(struct am_gateway *g, int fd, const char *bytes, size_t len, const char *peer)
{
	struct gw_worker *w = &g->workers[atomic_fetch_add(&g->next, 1) % (unsigned)g->nworkers];
	pthread_mutex_lock(&w->qmu);
	push(&w->q, &w->nq, &w->capq, fd, bytes, len, peer);
	pthread_mutex_unlock(&w->qmu);
	event_active(w->notify, EV_READ, 0);
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct gw_worker *w = arg;
	pthread_mutex_lock(&w->qmu);
	struct gw_pending *q = w->q;
	int n = w->nq;
	w->q = NULL;
	w->nq = w->capq = 0;
	pthread_mutex_unlock(&w->qmu);
	for (int i = 0; i < n; i++) {
		am_http_server_adopt(w->http, q[i].fd, q[i].bytes, q[i].len, q[i].peer);
		free(q[i].bytes);
	}
	free(q);
}

/* A worker's connection turned to the control plane: back to the main loop. */
static void back_to_main(int fd, const char *bytes, size_t len, const char *peer, void *data)
{
	struct am_gateway *g = ((struct gw_worker *)data)->g;
	pthread_mutex_lock(&g->mu);
	push(&g->inbox, &g->ninbox, &g->capinbox, fd, bytes, len, peer);
	pthread_mutex_unlock(&g->mu);
	event_active(g->inbox_ev, EV_READ, 0);
}

static void on_inbox(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct am_gateway *g = arg;
	pthread_mutex_lock(&g->mu);
	struct gw_pending *q = g->inbox;
	int n = g->ninbox;
	g->inbox = NULL;
	g->ninbox = g->capinbox = 0;
	pthread_mutex_unlock(&g->mu);
	for (int i = 0; i < n; i++) {
		am_http_server_adopt(g->srv->http, q[i].fd, q[i].bytes, q[i].len, q[i].peer);
		free(q[i].bytes);
	}
	free(q);
}

/* The usage writer: batches every 250 ms, on its own database connection
 * and at a lower priority, so neither the requests nor the control loop
 * wait for the inserts. */
static void *writer_main(void *arg)
{
	struct am_gateway *g = arg;
	/* only when nothing else wants the CPU: request threads must never wait
	 * for usage bookkeeping (SCHED_IDLE; nice 10 where that is refused) */
	struct sched_param sp = { 0 };
	if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0)
		setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
	pthread_mutex_lock(&g->mu);
	while (!g->writer_stop) {
		/* every 250 ms; slower while folds fail (a full disk), up to 5 s */
		long wait_ms = g->uretry_ms > 250 ? g->uretry_ms : 250;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += wait_ms / 1000;
		ts.tv_nsec += (wait_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&g->writer_cv, &g->mu, &ts);
		pthread_mutex_unlock(&g->mu);
		gw_usage_fold(g, g->wstore);
		pthread_mutex_lock(&g->mu);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

static void on_quit(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopexit(((struct gw_worker *)arg)->base, NULL);
}

static void *worker_main(void *arg)
{
	struct gw_worker *w = arg;
	/* its events have no fd and no timeout until a connection arrives */
	event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

struct am_gateway *am_gateway_new(struct am_server *srv, const struct am_gateway_config *cfg)
{
	struct am_gateway *g = am_calloc(1, sizeof *g);
	g->srv = srv;
	g->cfg = *cfg;
	if (g->cfg.threads < 1)
		g->cfg.threads = 1;
	pthread_mutex_init(&g->mu, NULL);
	return g;
}

int am_gateway_start(struct am_gateway *g)
{
	g->inbox_ev = event_new(g->srv->base, -1, EV_PERSIST, on_inbox, g);
	event_add(g->inbox_ev, NULL);
	char dbpath[4200], err[512];
	am_fmt(dbpath, sizeof dbpath, "%s/aimaas.db", g->srv->cfg.data_dir);
	if (am_store_open(dbpath, &g->wstore, err, sizeof err) != 0) {
		am_error("gateway", "usage writer: %s", err);
		return -1;
	}
	am_fmt(g->jdir, sizeof g->jdir, "%s/usage-journal", g->srv->cfg.data_dir);
	if (gw_journal_mkdir(g->jdir) != 0) {
		am_error("gateway", "usage journal: cannot create %s: %s (records wait in memory until written)", g->jdir,
			 strerror(errno));
		g->jdir[0] = '\0';
	}
	/* what the last run answered but did not write, before serving (and
	 * before the keys' counters are read); on a full disk the writer retries */
	gw_usage_replay(g);
	gw_usage_fold(g, g->wstore);
	am_gateway_refresh(g);
	pthread_cond_init(&g->writer_cv, NULL);
	if (pthread_create(&g->writer, NULL, writer_main, g) != 0)
		return -1;
	g->writer_running = 1;
	g->nworkers = g->cfg.threads;
	g->workers = am_calloc((size_t)g->nworkers, sizeof *g->workers);
	for (int i = 0; i < g->nworkers; i++) {
		struct gw_worker *w = &g->workers[i];
		w->g = g;
		w->idx = i;
		w->jf.fd = -1;
		w->base = event_base_new();
		w->pool = gw_pool_new(w->base);
		pthread_mutex_init(&w->qmu, NULL);
		pthread_mutex_init(&w->smu, NULL);
		struct am_http_config hc;
		am_http_config_defaults(&hc);
		hc.max_body = g->cfg.max_body;
		hc.header_timeout_s = g->srv->cfg.header_timeout_s;
		hc.idle_timeout_s = g->srv->cfg.idle_timeout_s;
		hc.write_timeout_s = 600;
		struct am_http_handlers h;
		gw_proxy_handlers(w, &h);
		h.handoff = back_to_main;
		h.data = w;
		w->http = am_http_server_new(w->base, &hc, &h);
		w->notify = event_new(w->base, -1, EV_PERSIST, on_notify, w);
		event_add(w->notify, NULL);
		w->quit = event_new(w->base, -1, 0, on_quit, w);
		w->ub_timer = event_new(w->base, -1, EV_PERSIST, on_ub_timer, w);
		struct timeval every = { 0, 100000 };
		event_add(w->ub_timer, &every);
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			am_error("gateway", "cannot start worker %d", i);
			return -1;
		}
	}
	am_info("gateway", "OpenAI-compatible endpoint at /v1 on %d worker thread(s)", g->nworkers);
	return 0;
}

void am_gateway_free(struct am_gateway *g)
{
	if (!g)
		return;
	for (int i = 0; i < g->nworkers; i++) {
		struct gw_worker *w = &g->workers[i];
		if (!w->base)
			continue;
		event_active(w->quit, EV_TIMEOUT, 0);
		pthread_join(w->thread, NULL);
		am_http_server_free(w->http); /* aborts requests in flight, which cancel their upstreams */
		gw_usage_handover(w);         /* its last rows, those aborts' included */
		event_free(w->ub_timer);
		gw_pool_free(w->pool);
		event_free(w->notify);
		event_free(w->quit);
		for (int k = 0; k < w->nq; k++) {
			close(w->q[k].fd);
			free(w->q[k].bytes);
		}
		free(w->q);
		table_unref(g, w->table);
		free(w->reps);
		free(w->stats);
		pthread_mutex_destroy(&w->qmu);
		pthread_mutex_destroy(&w->smu);
		event_base_free(w->base);
	}
	free(g->workers);
	if (g->writer_running) {
		pthread_mutex_lock(&g->mu);
		g->writer_stop = 1;
		pthread_cond_signal(&g->writer_cv);
		pthread_mutex_unlock(&g->mu);
		pthread_join(g->writer, NULL);
		pthread_cond_destroy(&g->writer_cv);
	}
	if (g->wstore)
		am_gateway_flush_usage(g); /* what the workers queued last */
	gw_usage_free(g);
	am_store_close(g->wstore);
	for (int k = 0; k < g->ninbox; k++) {
		close(g->inbox[k].fd);
		free(g->inbox[k].bytes);
	}
	free(g->inbox);
	if (g->inbox_ev)
		event_free(g->inbox_ev);
	table_unref(g, g->table);
	for (int i = 0; i < g->nctrs; i++)
		free(g->ctrs[i]);
	free(g->ctrs);

	pthread_mutex_destroy(&g->mu);
	free(g);
}
