/* gw_table: the route table the workers read. The control plane publishes
 * a plain struct am_routes; here it becomes an immutable gw_table (names
 * and keys indexed, each key tied to its counters) that is
 * swapped in whole: a worker takes a reference when it sees a newer
 * generation, so requests never wait for a build and a table lives until
 * the last request that holds it ends (RCU-like, with a reference count
 * instead of grace periods). */
#include <stdlib.h>
#include <string.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "../base/am_time.h"
#include "gw_internal.h"

static void table_free(struct gw_table *t)
{
	if (!t)
		return;
	am_gateway_routes_free(t->owned);
	free(t->by_name);
	free(t->by_hash);
	free(t->ctrs);
	free(t->acts);
	free(t);
}

void gw_table_unref(struct am_gateway *g, struct gw_table *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&g->mu);
	int last = --t->refs == 0;
	pthread_mutex_unlock(&g->mu);
	if (last)
		table_free(t);
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
		gw_table_unref(g, w->table);
		w->table = t;
		w->table_gen = gen;
	}
	return w->table;
}

void gw_table_swap(struct am_gateway *g, struct gw_table *t)
{
	pthread_mutex_lock(&g->mu);
	struct gw_table *old = g->table;
	g->table = t;
	atomic_fetch_add(&g->gen, 1);
	pthread_mutex_unlock(&g->mu);
	gw_table_unref(g, old);
}

/* The counters of key_id, created (with used tokens) the first time a
 * table names it; kept sorted by id. Only the publishing thread adds;
 * workers hold pointers, which never move. */
static struct gw_counters *counters_for(struct am_gateway *g, long long key_id, long long used)
{
	int lo = 0, hi = g->nctrs;
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		if (g->ctrs[mid]->key_id < key_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < g->nctrs && g->ctrs[lo]->key_id == key_id)
		return g->ctrs[lo];
	struct gw_counters *c = am_calloc(1, sizeof *c);
	c->key_id = key_id;
	atomic_store(&c->used, used);
	pthread_mutex_lock(&g->mu);
	if (g->nctrs == g->capctrs) {
		g->capctrs = g->capctrs ? g->capctrs * 2 : 64;
		g->ctrs = am_realloc(g->ctrs, (size_t)g->capctrs * sizeof *g->ctrs);
	}
	memmove(&g->ctrs[lo + 1], &g->ctrs[lo], (size_t)(g->nctrs - lo) * sizeof *g->ctrs);
	g->ctrs[lo] = c;
	g->nctrs++;
	pthread_mutex_unlock(&g->mu);
	return c;
}

/* The index in g->acts where dep_id is or would go. Under g->mu. */
static int activity_at(const struct am_gateway *g, long long dep_id)
{
	int lo = 0, hi = g->nacts;
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		if (g->acts[mid]->dep_id < dep_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Deployment dep_id's traffic record, created the first time a table
 * names it. Only the publishing thread adds; workers hold pointers. */
static struct gw_activity *activity_for(struct am_gateway *g, long long dep_id)
{
	pthread_mutex_lock(&g->mu);
	int lo = activity_at(g, dep_id);
	struct gw_activity *a = lo < g->nacts && g->acts[lo]->dep_id == dep_id ? g->acts[lo] : NULL;
	if (!a) {
		a = am_calloc(1, sizeof *a);
		a->dep_id = dep_id;
		if (g->nacts == g->capacts) {
			g->capacts = g->capacts ? g->capacts * 2 : 64;
			g->acts = am_realloc(g->acts, (size_t)g->capacts * sizeof *g->acts);
		}
		memmove(&g->acts[lo + 1], &g->acts[lo], (size_t)(g->nacts - lo) * sizeof *g->acts);
		g->acts[lo] = a;
		g->nacts++;
	}
	pthread_mutex_unlock(&g->mu);
	return a;
}

int am_gateway_activity(struct am_gateway *g, long long dep_id, int64_t *last_ms, long long *inflight)
{
	pthread_mutex_lock(&g->mu);
	int lo = activity_at(g, dep_id), rc = -1;
	if (lo < g->nacts && g->acts[lo]->dep_id == dep_id) {
		*last_ms = atomic_load(&g->acts[lo]->last_ms);
		*inflight = atomic_load(&g->acts[lo]->inflight);
		rc = 0;
	}
	pthread_mutex_unlock(&g->mu);
	return rc;
}

struct gw_activity *gw_table_activity(const struct gw_table *t, const struct am_route *r)
{
	return t->acts[r - t->routes];
}

void gw_table_free_counters(struct am_gateway *g)
{
	for (int i = 0; i < g->nctrs; i++)
		free(g->ctrs[i]);
	free(g->ctrs);
	g->ctrs = NULL;
	g->nctrs = g->capctrs = 0;
	for (int i = 0; i < g->nacts; i++)
		free(g->acts[i]);
	free(g->acts);
	g->acts = NULL;
	g->nacts = g->capacts = 0;
}

/* qsort has no context argument: the indices sort pairs instead */
struct ix {
	const char *s;
	int i;
};

static int by_s(const void *a, const void *b)
{
	const struct ix *x = a, *y = b;
	int c = strcmp(x->s, y->s);
	return c ? c : x->i - y->i; /* a name served twice: the first route wins, as before */
}

/* The indices of n strings (those for which skip is 0) sorted, into *out
 * (allocated); their count. */
static int sort_index(int n, const char *(*at)(const void *, int), const void *arr, int (*skip)(const void *, int),
		      int **out)
{
	struct ix *v = am_malloc(((size_t)n + 1) * sizeof *v);
	int m = 0;
	for (int i = 0; i < n; i++)
		if (!skip || !skip(arr, i))
			v[m++] = (struct ix){ at(arr, i), i };
	qsort(v, (size_t)m, sizeof *v, by_s);
	*out = am_malloc(((size_t)m + 1) * sizeof **out);
	for (int i = 0; i < m; i++)
		(*out)[i] = v[i].i;
	free(v);
	return m;
}

static const char *route_name(const void *arr, int i)
{
	return ((const struct am_route *)arr)[i].name;
}

static const char *key_hash(const void *arr, int i)
{
	return ((const struct am_route_key *)arr)[i].hash;
}

/* a disabled user's keys are as good as unknown: never indexed */
static int key_off(const void *arr, int i)
{
	return ((const struct am_route_key *)arr)[i].disabled;
}

struct gw_table *gw_table_new(struct am_gateway *g, struct am_routes *r)
{
	struct gw_table *t = am_calloc(1, sizeof *t);
	t->refs = 1;
	t->created_s = (long long)(am_wall_ms() / 1000);
	t->owned = r;
	t->routes = r->routes;
	t->nroutes = r->nroutes;
	t->keys = r->keys;
	t->nkeys = r->nkeys;
	sort_index(t->nroutes, route_name, t->routes, NULL, &t->by_name);
	t->nlive = sort_index(t->nkeys, key_hash, t->keys, key_off, &t->by_hash);
	t->acts = am_calloc((size_t)t->nroutes + 1, sizeof *t->acts);
	for (int i = 0; i < t->nroutes; i++) /* a deployment's routes are next to each other */
		t->acts[i] = i && t->routes[i - 1].dep_id == t->routes[i].dep_id ? t->acts[i - 1]
										: activity_for(g, t->routes[i].dep_id);
	t->ctrs = am_calloc((size_t)t->nkeys + 1, sizeof *t->ctrs);
	for (int i = 0; i < t->nkeys; i++) {
		const struct am_route_key *k = &t->keys[i];
		/* a session has no limits, but counters of its own (negative ids never meet a key's) */
		if (!k->disabled)
			t->ctrs[i] = k->session ? counters_for(g, -k->id, 0) : counters_for(g, k->id, k->used);
	}
	return t;
}

const struct am_route *gw_table_route(const struct gw_table *t, const char *model)
{
	if (!t)
		return NULL;
	int lo = 0, hi = t->nroutes;
	while (lo < hi) { /* the first of equal names */
		int mid = lo + (hi - lo) / 2;
		if (strcmp(t->routes[t->by_name[mid]].name, model) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < t->nroutes && !strcmp(t->routes[t->by_name[lo]].name, model))
		return &t->routes[t->by_name[lo]];
	return NULL;
}

const struct am_route_key *gw_table_key(const struct gw_table *t, const char *h)
{
	if (!t || !h)
		return NULL;
	int lo = 0, hi = t->nlive - 1;
	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		int c = strcmp(t->keys[t->by_hash[mid]].hash, h);
		if (!c)
			return &t->keys[t->by_hash[mid]];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

struct gw_counters *gw_table_counters(const struct gw_table *t, const struct am_route_key *k)
{
	return t->ctrs[k - t->keys];
}
