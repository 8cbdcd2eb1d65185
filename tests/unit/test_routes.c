/* Unit tests: the control plane's route table (am_routes: the database to
 * a struct am_routes, its digest) and the gateway's published table
 * (gw_table: aliases, adapters, disabled users' keys, replicas on several
 * hosts, counters that outlive a table). */
#include <stdlib.h>

#include "am_test.h"
#include "base/am_buf.h"
#include "deploy/am_routes.h"
#include "gateway/gw_internal.h"
#include "http/am_client.h"
#include "store/am_store.h"

struct am_store *am_test_db_open(const char *tag, char *path, size_t size);
void am_test_db_drop(struct am_store *s, const char *path);

static void seed(struct am_store *s)
{
	CHECK_INT(am_store_exec(s, "INSERT INTO users(id, username, password_hash, role, created_at, updated_at)"
			       " VALUES(1, 'ann', 'x', 'user', 0, 0), (2, 'bob', 'x', 'user', 0, 0)", NULL), 0);
	CHECK_INT(am_store_exec(s, "UPDATE users SET disabled = 1 WHERE id = 2", NULL), 0);
	CHECK_INT(am_store_exec(s, "INSERT INTO models(id, name, source, state, kind, max_context, created_by, created_at,"
			       " updated_at) VALUES(1, 'm', 'local', 'ready', 'llm', 32768, 'ann', 0, 0),"
			       " (2, 'e', 'local', 'ready', 'embedding', 512, 'ann', 0, 0)", NULL), 0);
	CHECK_INT(am_store_exec(s, "INSERT INTO deployments(id, name, model_id, engine, replicas, gpus_per_replica,"
			       " max_model_len, lora_modules, aliases, desired, state, created_by, created_at, updated_at)"
			       " VALUES(1, 'qwen', 1, 'vllm', 2, 1, 8192, '[{\"name\":\"sql-lora\",\"path\":\"/x\"}]',"
			       " '[\"gpt-4o\"]', 'running', 'running', 'ann', 0, 0),"
			       " (2, 'emb', 2, 'vllm', 1, 1, NULL, '[]', '[]', 'stopped', 'stopped', 'ann', 0, 0)", NULL), 0);
	CHECK_INT(am_store_exec(s, "INSERT INTO instances(id, deployment_id, replica, node_id, address, api_key, state,"
			       " created_at, updated_at) VALUES(7, 1, 0, 'n', '127.0.0.1:41001', 'k7', 'running', 0, 0),"
			       " (8, 1, 1, 'n', '10.0.0.5:41002', 'k8', 'running', 0, 0),"
			       " (9, 2, 0, 'n', '127.0.0.1:41003', 'k9', 'stopped', 0, 0)",
			       NULL), 0);
	CHECK_INT(am_store_exec(s, "INSERT INTO api_keys(id, user_id, name, key_hash, key_hint, models, rpm, used_tokens,"
			       " revoked_at, created_at, updated_at) VALUES"
			       " (1, 1, 'a', 'h1', 'sk', '[\"qwen\"]', 60, 500, NULL, 0, 0),"
			       " (2, 2, 'b', 'h2', 'sk', NULL, NULL, 0, NULL, 0, 0),"
			       " (3, 1, 'c', 'h3', 'sk', NULL, NULL, 0, 5, 0, 0)", NULL), 0);
	CHECK_INT(am_store_exec(s, "INSERT INTO sessions(id, user_id, kind, token_hash, token_hint, csrf, created_at,"
			       " expires_at) VALUES(4, 1, 'session', 'hs', 'x', 'tok', 0, 2000000000000),"
			       " (5, 1, 'session', 'old', 'x', 'tok', 0, 1000)", NULL), 0);
}

static const struct am_route *route(const struct am_routes *r, const char *name)
{
	for (int i = 0; i < r->nroutes; i++)
		if (!strcmp(r->routes[i].name, name))
			return &r->routes[i];
	return NULL;
}

static const struct am_route_key *key(const struct am_routes *r, const char *hash)
{
	for (int i = 0; i < r->nkeys; i++)
		if (!strcmp(r->keys[i].hash, hash))
			return &r->keys[i];
	return NULL;
}

static void build_from_database(void)
{
	char path[256];
	struct am_store *s = am_test_db_open("routes", path, sizeof path);
	CHECK(s != NULL);
	if (!s)
		return;
	/* an empty database: an empty table, with or without the publisher's cache */
	struct am_routes_cache *empty = am_routes_cache_new();
	struct am_routes *r = NULL;
	CHECK_INT(am_routes_build(s, NULL, empty, 1700000000000LL, &r), 0);
	CHECK(r && r->nroutes == 0 && r->nkeys == 0);
	am_gateway_routes_free(r);
	r = NULL;
	CHECK_INT(am_routes_build(s, NULL, empty, 1700000000000LL, &r), 0);
	am_gateway_routes_free(r);
	r = NULL;
	am_routes_cache_free(empty);
	seed(s);
	CHECK_INT(am_routes_build(s, NULL, NULL, 1700000000000LL, &r), 0);
	if (!r) {
		am_test_db_drop(s, path);
		return;
	}
	/* qwen, its adapter, its alias; emb */
	CHECK_INT(r->nroutes, 4);
	const struct am_route *q = route(r, "qwen"), *lora = route(r, "sql-lora"), *alias = route(r, "gpt-4o"),
			      *emb = route(r, "emb");
	CHECK(q && lora && alias && emb);
	if (q && lora && alias && emb) {
		CHECK_INT(q->nreps, 2);
		CHECK_STR(q->reps[0].host, "127.0.0.1");
		CHECK_INT(q->reps[0].port, 41001);
		CHECK_INT(q->reps[1].port, 41002);
		CHECK_STR(q->reps[1].host, "10.0.0.5"); /* the address as the runtime recorded it */
		CHECK_STR(q->reps[1].key, "k8");
		CHECK_STR(q->state, "running");
		CHECK_INT(q->max_model_len, 8192);
		CHECK_STR(alias->engine_name, "qwen"); /* the engine knows the deployment's name */
		CHECK_INT(alias->lora, 0);
		CHECK_INT(alias->nreps, 2);
		CHECK_STR(lora->engine_name, "sql-lora"); /* an adapter keeps its own */
		CHECK_STR(lora->parent, "qwen");
		CHECK_INT(lora->lora, 1);
		CHECK_INT(emb->nreps, 0);
		CHECK_STR(emb->state, "stopped");
		CHECK_STR(emb->kind, "embedding");
		CHECK_INT(emb->max_model_len, 512); /* the model's context */
	}
	/* the revoked key and the expired session are left out; the disabled user's key is marked */
	CHECK_INT(r->nkeys, 3);
	const struct am_route_key *k1 = key(r, "h1"), *k2 = key(r, "h2"), *ks = key(r, "hs");
	CHECK(k1 && k2 && ks && !key(r, "h3") && !key(r, "old"));
	if (k1 && k2 && ks) {
		CHECK_INT(k1->all_models, 0);
		CHECK_INT(k1->nmodels, 1);
		CHECK_STR(k1->models[0], "qwen");
		CHECK_INT(k1->rpm, 60);
		CHECK_INT(k1->used, 500);
		CHECK_STR(k1->user, "ann");
		CHECK_INT(k1->disabled, 0);
		CHECK_INT(k2->disabled, 1);
		CHECK_INT(k2->all_models, 1);
		CHECK_INT(ks->session, 1);
		CHECK_STR(ks->csrf, "tok");
	}
	/* the digest: the same for the same table, not moved by usage, moved by a port */
	uint64_t d1 = am_routes_digest(r);
	struct am_routes *again = NULL;
	CHECK_INT(am_store_exec(s, "UPDATE api_keys SET used_tokens = 900 WHERE id = 1", NULL), 0);
	CHECK_INT(am_routes_build(s, NULL, NULL, 1700000000000LL, &again), 0);
	CHECK(again && am_routes_digest(again) == d1);
	am_gateway_routes_free(again);
	again = NULL;
	CHECK_INT(am_store_exec(s, "UPDATE instances SET address = '10.0.0.5:41009' WHERE id = 8", NULL), 0);
	CHECK_INT(am_routes_build(s, NULL, NULL, 1700000000000LL, &again), 0);
	CHECK(again && am_routes_digest(again) != d1);
	am_gateway_routes_free(again);
	/* with the publisher's cache: a stored key that changed is derived again */
	struct am_routes_cache *cache = am_routes_cache_new();
	again = NULL;
	CHECK_INT(am_routes_build(s, NULL, cache, 1700000000000LL, &again), 0);
	am_gateway_routes_free(again);
	again = NULL;
	CHECK_INT(am_store_exec(s, "UPDATE instances SET api_key = 'k8b' WHERE id = 8", NULL), 0);
	CHECK_INT(am_routes_build(s, NULL, cache, 1700000000000LL, &again), 0);
	q = again ? route(again, "qwen") : NULL;
	CHECK(q && q->nreps == 2);
	if (q && q->nreps == 2) {
		CHECK_STR(q->reps[0].key, "k7");
		CHECK_STR(q->reps[1].key, "k8b");
	}
	am_gateway_routes_free(again);
	/* a patch of the deployments that changed gives what a full build does */
	struct am_routes *patched = NULL, *full = NULL;
	CHECK_INT(am_routes_build(s, NULL, cache, 1700000000000LL, &patched), 0);
	long long ids[] = { 1, 2, 3 };
	CHECK_INT(patched ? am_routes_patch(s, NULL, cache, patched, ids, 3) : -1, 0); /* nothing changed */
	CHECK_INT(am_store_exec(s, "UPDATE instances SET address = '10.0.0.6:41010' WHERE id = 7", NULL), 0);
	CHECK_INT(am_store_exec(s, "UPDATE deployments SET aliases = '[\"gpt-4o\",\"o1\"]' WHERE id = 1", NULL), 0);
	CHECK_INT(am_store_exec(s, "INSERT INTO deployments(id, name, model_id, engine, replicas, gpus_per_replica, desired,"
			       " state, created_by, created_at, updated_at) VALUES(3, 'new', 1, 'vllm', 1, 1, 'running',"
			       " 'starting', 'ann', 0, 0)", NULL), 0);
	CHECK_INT(am_store_exec(s, "DELETE FROM deployments WHERE id = 2", NULL), 0);
	CHECK_INT(patched ? am_routes_patch(s, NULL, cache, patched, ids, 3) : -1, 1);
	CHECK_INT(am_routes_build(s, NULL, cache, 1700000000000LL, &full), 0);
	CHECK(patched && full && am_routes_digest(patched) == am_routes_digest(full));
	CHECK(patched && route(patched, "o1") && route(patched, "new") && !route(patched, "emb"));
	am_gateway_routes_free(patched);
	am_gateway_routes_free(full);
	am_routes_cache_free(cache);
	am_gateway_routes_free(r);
	am_test_db_drop(s, path);
}

/* A deployment with two replicas on two hosts, an alias, and two keys (one
 * of a disabled user), as a remote control plane might publish them. */
static struct am_routes *two_hosts(long long used)
{
	struct am_routes *r = am_gateway_routes_new();
	static const char *const names[] = { "zeta", "llama", "alpha" };
	for (int i = 0; i < 3; i++) {
		struct am_route *x = am_gateway_routes_add_route(r);
		am_strlcpy(x->name, names[i], sizeof x->name);
		am_strlcpy(x->engine_name, "llama", sizeof x->engine_name);
		x->dep_id = 3;
		x->nreps = 2;
		x->reps = calloc(2, sizeof *x->reps);
		x->reps[0] = (struct am_route_rep){ .instance_id = 1, .host = "10.0.0.1", .port = 8000, .key = "a" };
		x->reps[1] = (struct am_route_rep){ .instance_id = 2, .host = "10.0.0.2", .port = 8000, .key = "b" };
	}
	struct am_route_key *k = am_gateway_routes_add_key(r);
	am_strlcpy(k->hash, "ffff", sizeof k->hash);
	k->id = 10;
	k->all_models = 1;
	k->used = used;
	k = am_gateway_routes_add_key(r);
	am_strlcpy(k->hash, "aaaa", sizeof k->hash);
	k->id = 11;
	k->disabled = 1;
	k->nmodels = 1;
	k->models = calloc(2, sizeof *k->models);
	k->models[0] = strdup("llama");
	return r;
}

static void table_lookups(void)
{
	struct am_gateway *g = calloc(1, sizeof *g);
	pthread_mutex_init(&g->mu, NULL);
	struct gw_table *t = gw_table_new(g, two_hosts(77));
	const struct am_route *r = gw_table_route(t, "alpha");
	CHECK(r != NULL);
	if (r) {
		CHECK_STR(r->engine_name, "llama");
		CHECK_INT(r->nreps, 2);
		CHECK_STR(r->reps[0].host, "10.0.0.1");
		CHECK_STR(r->reps[1].host, "10.0.0.2");
	}
	CHECK(gw_table_route(t, "zeta") != NULL);
	CHECK(gw_table_route(t, "llama") != NULL);
	CHECK(gw_table_route(t, "beta") == NULL);
	CHECK(gw_table_route(t, "") == NULL);
	/* a disabled user's key is not there at all */
	CHECK(gw_table_key(t, "aaaa") == NULL);
	CHECK_INT(t->nlive, 1);
	const struct am_route_key *k = gw_table_key(t, "ffff");
	CHECK(k != NULL);
	struct gw_counters *c = k ? gw_table_counters(t, k) : NULL;
	CHECK(c && atomic_load(&c->used) == 77);
	gw_table_swap(g, t);
	/* the next table keeps the key's counters (and what they counted) */
	if (c)
		atomic_store(&c->used, 100);
	struct gw_table *t2 = gw_table_new(g, two_hosts(0));
	k = gw_table_key(t2, "ffff");
	CHECK(k && gw_table_counters(t2, k) == c);
	CHECK(c && atomic_load(&c->used) == 100);
	gw_table_swap(g, t2);
	/* what the playground checks before it calls the gateway */
	CHECK(am_gateway_serves(g, "zeta"));
	CHECK(am_gateway_serves(g, "llama"));
	CHECK(!am_gateway_serves(g, "nope"));
	gw_table_unref(g, g->table);
	gw_table_free_counters(g);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

static void client_addresses(void)
{
	struct sockaddr_storage ss;
	socklen_t n = 0;
	CHECK_INT(am_client_addr("127.0.0.1", 8000, &ss, &n), 0);
	CHECK_INT(ss.ss_family, AF_INET);
	CHECK_INT(am_client_addr("::1", 8000, &ss, &n), 0);
	CHECK_INT(ss.ss_family, AF_INET6);
	/* names are never resolved (nothing may block a loop) */
	CHECK_INT(am_client_addr("localhost", 8000, &ss, &n), -1);
	CHECK_INT(am_client_addr("127.0.0.1", 0, &ss, &n), -1);
	CHECK_INT(am_client_addr("127.0.0.1", 70000, &ss, &n), -1);
}

void suite_routes(void)
{
	RUN(build_from_database);
	RUN(table_lookups);
	RUN(client_addresses);
}
