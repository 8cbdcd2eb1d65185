/* am_routes: the gateway's route table, built from the database. */
#include "am_routes.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../am_server.h"
#include "../base/am_buf.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_time.h"
#include "../store/am_store.h"
#include "am_deploy.h"

/* An instance's engine key as derived from what the database stores. */
struct memo {
	long long inst_id;
	char stored[128];
	char key[80];
};

struct am_routes_cache {
	uint64_t digest;           /* of the table the gateway has, when published says so */
	int published;
	struct am_routes *last;    /* a copy of what the gateway has (deployments' routes in id order) */
	struct memo *m;            /* the last build's ready instances, sorted by id */
	int n;
};

/* What the queries' callbacks fill. */
struct build {
	struct am_routes *rt;
	struct am_deploy *dp;
	const struct am_routes_cache *cache;
	struct am_route_rep *reps; /* every ready replica, in deployment order */
	long long *rep_dep;        /* reps[i]'s deployment */
	struct memo *memo;         /* reps[i]'s key and what it was derived from */
	json_t **live;             /* reps[i]'s adapters loaded ([{name, path}]); NULL: not tracked (all served) */
	int nreps, capreps, next;  /* next: the first replica not yet given to a deployment */
};

static int by_inst(const void *a, const void *b)
{
	long long x = ((const struct memo *)a)->inst_id, y = ((const struct memo *)b)->inst_id;
	return (x > y) - (x < y);
}

/* The engine key of instance id whose stored key is stored: the last
 * build's when it was derived from the same, else derived now (BLAKE2b
 * keyed with the engine secret: half a build's time when done for every
 * replica every time). */
static void engine_key(struct build *b, long long id, const char *stored, char *out, size_t size)
{
	const struct am_routes_cache *c = b->cache;
	struct memo probe = { .inst_id = id };
	const struct memo *m = c && c->n ? bsearch(&probe, c->m, (size_t)c->n, sizeof *c->m, by_inst) : NULL;
	if (m && !strcmp(m->stored, stored)) {
		am_strlcpy(out, m->key, size);
		return;
	}
	am_deploy_engine_key(b->dp, stored, out, size);
}

struct am_routes_cache *am_routes_cache_new(void)
{
	return am_calloc(1, sizeof(struct am_routes_cache));
}

void am_routes_cache_free(struct am_routes_cache *c)
{
	if (!c)
		return;
	am_gateway_routes_free(c->last);
	free(c->m);
	free(c);
}

/* A JSON array column ("[]" read without a parse); anything unreadable is
 * an empty one (aimaas wrote them: never expected, but never a crash). */
static json_t *array_col(const char *text)
{
	if (!text[0] || !strcmp(text, "[]"))
		return NULL;
	json_t *a = json_loads(text, 0, NULL);
	if (!json_is_array(a)) {
		json_decref(a);
		return NULL;
	}
	return a;
}

/* SELECT id, deployment_id, address, api_key, lora_live ... ORDER BY deployment_id */
static int on_instance(const struct am_store_row *row, void *data)
{
	struct build *b = data;
	if (b->nreps == b->capreps) {
		b->capreps = b->capreps ? b->capreps * 2 : 64;
		b->reps = am_realloc(b->reps, (size_t)b->capreps * sizeof *b->reps);
		b->rep_dep = am_realloc(b->rep_dep, (size_t)b->capreps * sizeof *b->rep_dep);
		b->memo = am_realloc(b->memo, (size_t)b->capreps * sizeof *b->memo);
		b->live = am_realloc(b->live, (size_t)b->capreps * sizeof *b->live);
	}
	/* SQL NULL: not tracked; anything else is the list, "[]" (none loaded) included */
	json_t *live = am_store_col_null(row, 4) ? NULL : json_loads(am_store_col_text(row, 4), 0, NULL);
	if (!am_store_col_null(row, 4) && !json_is_array(live)) {
		json_decref(live);
		live = json_array();
	}
	b->live[b->nreps] = live;
	struct am_route_rep *r = &b->reps[b->nreps];
	memset(r, 0, sizeof *r);
	r->instance_id = am_store_col_int(row, 0);
	b->rep_dep[b->nreps] = am_store_col_int(row, 1);
	/* where its runtime says it serves: "HOST:PORT" ("[v6]:PORT") */
	if (am_deploy_split_address(am_store_col_text(row, 2), r->host, sizeof r->host, &r->port) != 0) {
		am_strlcpy(r->host, AM_DEPLOY_LOCAL_HOST, sizeof r->host);
		r->port = 0;
	}
	const char *stored = am_store_col_text(row, 3);
	engine_key(b, r->instance_id, stored, r->key, sizeof r->key);
	struct memo *m = &b->memo[b->nreps];
	m->inst_id = r->instance_id;
	/* a stored key too long to keep is derived every time */
	if (am_strlcpy(m->stored, stored, sizeof m->stored) >= sizeof m->stored)
		m->inst_id = -1;
	am_strlcpy(m->key, r->key, sizeof m->key);
	b->nreps++;
	return 0;
}

/* Whether an engine whose loaded adapters are live serves adapter name
 * (live NULL: its adapters are not tracked, so all are). */
static int has_adapter(json_t *live, const char *name)
{
	if (!live)
		return 1;
	size_t i;
	json_t *a;
	json_array_foreach(live, i, a)
		if (!strcmp(json_string_value(json_object_get(a, "name")) ?: "", name))
			return 1;
	return 0;
}

/* Whether a request may start the deployment (scale to zero): it has an
 * idle time and wants to run, and has not failed. */
#define WAKEABLE "(d.idle_after_s > 0 AND d.desired = 'running' AND d.state NOT IN ('failed', 'deleting'))"

/* SELECT d.id, d.name, d.state, d.lora_modules, d.aliases, m.kind,
 * max_model_len, WAKEABLE ... ORDER BY d.id: one route per served name of the
 * deployment (its name, its LoRA adapters, then its aliases), each with
 * copies of its ready replicas. */
static int on_deployment(const struct am_store_row *row, void *data)
{
	struct build *b = data;
	long long id = am_store_col_int(row, 0);
	while (b->next < b->nreps && b->rep_dep[b->next] < id)
		b->next++; /* an instance of no deployment (never, with the foreign key) */
	int first = b->next;
	while (b->next < b->nreps && b->rep_dep[b->next] == id)
		b->next++;
	int nreps = b->next - first;
	const char *dname = am_store_col_text(row, 1);
	json_t *loras = array_col(am_store_col_text(row, 3));
	json_t *aliases = array_col(am_store_col_text(row, 4));
	size_t nl = json_array_size(loras), na = json_array_size(aliases);
	for (size_t l = 0; l <= nl + na; l++) {
		struct am_route *r = am_gateway_routes_add_route(b->rt);
		const char *name = dname;
		if (l > 0 && l <= nl)
			name = json_string_value(json_object_get(json_array_get(loras, l - 1), "name")) ?: "";
		else if (l > nl)
			name = json_string_value(json_array_get(aliases, l - 1 - nl)) ?: "";
		am_strlcpy(r->name, name, sizeof r->name);
		r->dep_id = id;
		r->lora = l > 0 && l <= nl;
		/* an alias is the deployment under another name; an adapter keeps its own */
		am_strlcpy(r->engine_name, l > nl ? dname : name, sizeof r->engine_name);
		am_strlcpy(r->kind, am_store_col_null(row, 5) ? "llm" : am_store_col_text(row, 5), sizeof r->kind);
		if (r->lora)
			am_strlcpy(r->parent, dname, sizeof r->parent);
		r->max_model_len = am_store_col_int(row, 6);
		r->wakeable = am_store_col_int(row, 7) != 0;
		am_strlcpy(r->state, nreps ? "running" : am_store_col_text(row, 2), sizeof r->state);
		if (nreps)
			r->reps = am_malloc((size_t)nreps * sizeof *r->reps);
		/* an adapter goes only to the engines that have it loaded: one
		 * being loaded at runtime holds its requests meanwhile */
		for (int k = first; k < first + nreps; k++)
			if (!r->lora || has_adapter(b->live[k], name))
				r->reps[r->nreps++] = b->reps[k];
		if (r->lora && nreps && !r->nreps) {
			am_strlcpy(r->state, "loading", sizeof r->state);
			r->wakeable = 1;
		}
		if (!r->nreps) {
			free(r->reps);
			r->reps = NULL;
		}
	}
	json_decref(loras);
	json_decref(aliases);
	return 0;
}

/* SELECT k.id, k.user_id, u.username, u.disabled, k.key_hash, k.models,
 * k.rpm, k.tpm, k.quota_tokens, k.used_tokens, k.expires_at */
static int on_key(const struct am_store_row *row, void *data)
{
	struct build *b = data;
	struct am_route_key *k = am_gateway_routes_add_key(b->rt);
	k->id = am_store_col_int(row, 0);
	k->user_id = am_store_col_int(row, 1);
	am_strlcpy(k->user, am_store_col_text(row, 2), sizeof k->user);
	k->disabled = am_store_col_int(row, 3) != 0;
	am_strlcpy(k->hash, am_store_col_text(row, 4), sizeof k->hash);
	k->rpm = am_store_col_int(row, 6);
	k->tpm = am_store_col_int(row, 7);
	k->quota = am_store_col_int(row, 8);
	k->used = am_store_col_int(row, 9);
	k->expires_at = am_store_col_int(row, 10);
	/* NULL is every model; anything unreadable is none (fail closed) */
	if (am_store_col_null(row, 5)) {
		k->all_models = 1;
		return 0;
	}
	json_t *models = json_loads(am_store_col_text(row, 5), JSON_DECODE_ANY, NULL);
	k->all_models = json_is_null(models);
	if (json_is_array(models)) {
		k->nmodels = (int)json_array_size(models);
		k->models = am_calloc((size_t)k->nmodels + 1, sizeof *k->models);
		for (int m = 0; m < k->nmodels; m++)
			k->models[m] = am_strdup(json_string_value(json_array_get(models, (size_t)m)) ?: "");
	}
	json_decref(models);
	return 0;
}

/* SELECT s.id, s.user_id, u.username, u.disabled, s.token_hash, s.csrf,
 * s.expires_at: a console session, with no limits and every model */
static int on_session(const struct am_store_row *row, void *data)
{
	struct build *b = data;
	struct am_route_key *k = am_gateway_routes_add_key(b->rt);
	k->session = 1;
	k->id = am_store_col_int(row, 0);
	k->user_id = am_store_col_int(row, 1);
	am_strlcpy(k->user, am_store_col_text(row, 2), sizeof k->user);
	k->disabled = am_store_col_int(row, 3) != 0;
	am_strlcpy(k->hash, am_store_col_text(row, 4), sizeof k->hash);
	am_strlcpy(k->csrf, am_store_col_text(row, 5), sizeof k->csrf);
	k->all_models = 1;
	k->expires_at = am_store_col_int(row, 6);
	return 0;
}

int am_routes_build(struct am_store *st, struct am_deploy *dp, struct am_routes_cache *cache, int64_t now_ms,
		    struct am_routes **out)
{
	struct build b = { .rt = am_gateway_routes_new(), .dp = dp, .cache = cache };
	int rc = -1;
	/* in deployment order: one merge pass joins them to their deployments */
	if (am_store_each(st, on_instance, &b, "SELECT id, deployment_id, address, api_key, lora_live FROM instances"
			  " WHERE state = 'running' ORDER BY deployment_id, id", NULL) != 0 ||
	    am_store_each(st, on_deployment, &b, "SELECT d.id, d.name, d.state, d.lora_modules, d.aliases, m.kind,"
			  " COALESCE(d.max_model_len, m.max_context), " WAKEABLE " FROM deployments d JOIN models m ON m.id = d.model_id"
			  " ORDER BY d.id", NULL) != 0 ||
	    am_store_each(st, on_key, &b, "SELECT k.id, k.user_id, u.username, u.disabled, k.key_hash, k.models, k.rpm,"
			  " k.tpm, k.quota_tokens, k.used_tokens, k.expires_at FROM api_keys k JOIN users u ON u.id = k.user_id"
			  " WHERE k.revoked_at IS NULL", NULL) != 0 ||
	    /* the console's sessions call /v1 too (the playground), with the cookie */
	    am_store_each(st, on_session, &b, "SELECT s.id, s.user_id, u.username, u.disabled, s.token_hash, s.csrf,"
			  " s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.kind = 'session'"
			  " AND s.revoked_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > ?)", "i",
			  (long long)now_ms) != 0)
		goto out;
	*out = b.rt;
	b.rt = NULL;
	rc = 0;
	if (cache) { /* the keys derived this time, for the next build */
		if (b.nreps)
			qsort(b.memo, (size_t)b.nreps, sizeof *b.memo, by_inst);
		free(cache->m);
		cache->m = b.memo;
		cache->n = b.nreps;
		b.memo = NULL;
	}
out:
	am_gateway_routes_free(b.rt);
	for (int k = 0; k < b.nreps; k++)
		json_decref(b.live[k]);
	free(b.live);
	free(b.reps);
	free(b.rep_dep);
	free(b.memo);
	return rc;
}

/* A 64-bit multiply-xorshift over 8 bytes at a time: a digest to tell
 * tables apart (a miss costs one extra publish), not a defence. */
static uint64_t mix_word(uint64_t h, uint64_t w)
{
	h = (h ^ w) * 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 29);
}

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t w;
	for (; n >= 8; n -= 8, b += 8) {
		memcpy(&w, b, 8);
		h = mix_word(h, w);
	}
	w = n; /* the tail, with its length so "a" and "a\0" differ */
	for (size_t i = 0; i < n; i++)
		w = (w << 8) | b[i];
	return mix_word(h, w);
}

static uint64_t mix_str(uint64_t h, const char *s)
{
	return mix(h, s, strlen(s));
}

static uint64_t mix_int(uint64_t h, long long v)
{
	return mix_word(h, (uint64_t)v);
}

uint64_t am_routes_digest(const struct am_routes *r)
{
	uint64_t h = 1469598103934665603ull;
	h = mix_int(h, r->nroutes);
	for (int i = 0; i < r->nroutes; i++) {
		const struct am_route *x = &r->routes[i];
		h = mix_str(h, x->name);
		h = mix_int(h, x->dep_id);
		h = mix_str(h, x->kind);
		h = mix_str(h, x->state);
		h = mix_int(h, x->lora);
		h = mix_str(h, x->engine_name);
		h = mix_str(h, x->parent);
		h = mix_int(h, x->max_model_len);
		h = mix_int(h, x->wakeable);
		h = mix_int(h, x->nreps);
		for (int k = 0; k < x->nreps; k++) {
			h = mix_int(h, x->reps[k].instance_id);
			h = mix_str(h, x->reps[k].host);
			h = mix_int(h, x->reps[k].port);
			h = mix_str(h, x->reps[k].key);
		}
	}
	h = mix_int(h, r->nkeys);
	for (int i = 0; i < r->nkeys; i++) {
		const struct am_route_key *k = &r->keys[i];
		h = mix_str(h, k->hash);
		h = mix_int(h, k->id);
		h = mix_int(h, k->user_id);
		h = mix_str(h, k->user);
		h = mix_int(h, k->all_models);
		h = mix_int(h, k->nmodels);
		for (int m = 0; m < k->nmodels; m++)
			h = mix_str(h, k->models[m]);
		h = mix_int(h, k->rpm);
		h = mix_int(h, k->tpm);
		h = mix_int(h, k->quota);
		h = mix_int(h, k->expires_at);
		h = mix_int(h, k->disabled);
		h = mix_int(h, k->session);
		h = mix_str(h, k->csrf);
	}
	return h;
}

/* A deep copy of r, for the gateway to own. */
static struct am_routes *routes_copy(const struct am_routes *r)
{
	struct am_routes *c = am_gateway_routes_new();
	if (r->nroutes) {
		c->routes = am_malloc((size_t)r->nroutes * sizeof *c->routes);
		memcpy(c->routes, r->routes, (size_t)r->nroutes * sizeof *c->routes);
		c->nroutes = c->caproutes = r->nroutes;
		for (int i = 0; i < c->nroutes; i++) {
			struct am_route *x = &c->routes[i];
			if (x->nreps) {
				x->reps = am_malloc((size_t)x->nreps * sizeof *x->reps);
				memcpy(x->reps, r->routes[i].reps, (size_t)x->nreps * sizeof *x->reps);
			} else {
				x->reps = NULL;
			}
		}
	}
	if (r->nkeys) {
		c->keys = am_malloc((size_t)r->nkeys * sizeof *c->keys);
		memcpy(c->keys, r->keys, (size_t)r->nkeys * sizeof *c->keys);
		c->nkeys = c->capkeys = r->nkeys;
		for (int i = 0; i < c->nkeys; i++) {
			struct am_route_key *k = &c->keys[i];
			if (!k->models)
				continue;
			k->models = am_calloc((size_t)k->nmodels + 1, sizeof *k->models);
			for (int m = 0; m < k->nmodels; m++)
				k->models[m] = am_strdup(r->keys[i].models[m]);
		}
	}
	return c;
}

static int route_eq(const struct am_route *a, const struct am_route *b)
{
	return !strcmp(a->name, b->name) && a->dep_id == b->dep_id && !strcmp(a->kind, b->kind) &&
	       !strcmp(a->state, b->state) && a->lora == b->lora && !strcmp(a->engine_name, b->engine_name) &&
	       !strcmp(a->parent, b->parent) && a->max_model_len == b->max_model_len && a->wakeable == b->wakeable && a->nreps == b->nreps &&
	       (!a->nreps || !memcmp(a->reps, b->reps, (size_t)a->nreps * sizeof *a->reps));
}

/* Puts src's routes (all of deployment dep_id's, none when it is gone) in
 * r in place of dep_id's, keeping r in deployment order; takes src's
 * replicas. 1 when anything differs, 0 when r already had them. */
static int splice(struct am_routes *r, long long dep_id, struct am_routes *src)
{
	int lo = 0, hi = r->nroutes;
	while (lo < hi) { /* the first route of a deployment >= dep_id */
		int mid = lo + (hi - lo) / 2;
		if (r->routes[mid].dep_id < dep_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	hi = lo;
	while (hi < r->nroutes && r->routes[hi].dep_id == dep_id)
		hi++;
	int same = hi - lo == src->nroutes;
	for (int i = 0; same && i < src->nroutes; i++)
		same = route_eq(&r->routes[lo + i], &src->routes[i]);
	if (same)
		return 0;
	for (int i = lo; i < hi; i++)
		free(r->routes[i].reps);
	int n = r->nroutes - (hi - lo) + src->nroutes;
	if (n > r->caproutes) {
		r->caproutes = n * 2;
		r->routes = am_realloc(r->routes, (size_t)r->caproutes * sizeof *r->routes);
	}
	if (hi < r->nroutes)
		memmove(r->routes + lo + src->nroutes, r->routes + hi, (size_t)(r->nroutes - hi) * sizeof *r->routes);
	if (src->nroutes)
		memcpy(r->routes + lo, src->routes, (size_t)src->nroutes * sizeof *r->routes);
	r->nroutes = n;
	for (int i = 0; i < src->nroutes; i++)
		src->routes[i].reps = NULL; /* r's now */
	return 1;
}

/* The routes of one deployment (none when it is gone) into a new table. */
static int build_dep(struct am_store *st, struct am_deploy *dp, const struct am_routes_cache *cache, long long dep_id,
		     struct am_routes **out)
{
	struct build b = { .rt = am_gateway_routes_new(), .dp = dp, .cache = cache };
	int rc = -1;
	if (am_store_each(st, on_instance, &b, "SELECT id, deployment_id, address, api_key, lora_live FROM instances"
			  " WHERE deployment_id = ? AND state = 'running' ORDER BY id", "i", dep_id) != 0 ||
	    am_store_each(st, on_deployment, &b, "SELECT d.id, d.name, d.state, d.lora_modules, d.aliases, m.kind,"
			  " COALESCE(d.max_model_len, m.max_context), " WAKEABLE " FROM deployments d JOIN models m ON m.id = d.model_id"
			  " WHERE d.id = ?", "i", dep_id) != 0)
		goto out;
	*out = b.rt;
	b.rt = NULL;
	rc = 0;
out:
	am_gateway_routes_free(b.rt);
	for (int k = 0; k < b.nreps; k++)
		json_decref(b.live[k]);
	free(b.live);
	free(b.reps);
	free(b.rep_dep);
	free(b.memo);
	return rc;
}

int am_routes_patch(struct am_store *st, struct am_deploy *d, const struct am_routes_cache *cache, struct am_routes *r,
		    const long long *ids, size_t n)
{
	int changed = 0;
	for (size_t i = 0; i < n; i++) {
		struct am_routes *one = NULL;
		if (build_dep(st, d, cache, ids[i], &one) != 0)
			return -1;
		changed |= splice(r, ids[i], one);
		am_gateway_routes_free(one);
	}
	return changed;
}

void am_routes_publish_deps(struct am_server *srv, const long long *ids, size_t n)
{
	struct am_routes_cache *c = srv->routes;
	if (!srv->gateway || !n)
		return;
	if (!c || !c->last) {
		am_routes_publish(srv);
		return;
	}
	int changed = am_routes_patch(srv->store, srv->deploy, c, c->last, ids, n);
	if (changed < 0) {
		am_routes_publish(srv); /* the whole table, then (the patch may be half done) */
		return;
	}
	if (!changed)
		return;
	c->published = 0; /* the digest is of an older table: the next full build hands its table over */
	am_gateway_publish(srv->gateway, routes_copy(c->last));
}

void am_routes_publish(struct am_server *srv)
{
	if (!srv->gateway)
		return;
	if (!srv->routes)
		srv->routes = am_routes_cache_new();
	struct am_routes *rt = NULL;
	if (am_routes_build(srv->store, srv->deploy, srv->routes, am_wall_ms(), &rt) != 0) {
		am_warn("gateway", "cannot read the routes from the database; the gateway keeps the last ones");
		return;
	}
	struct am_routes_cache *c = srv->routes;
	uint64_t digest = am_routes_digest(rt);
	am_gateway_routes_free(c->last);
	c->last = rt; /* what the gateway has, or is about to have */
	if (c->published && digest == c->digest)
		return;
	c->digest = digest;
	c->published = 1;
	am_gateway_publish(srv->gateway, routes_copy(rt));
}
