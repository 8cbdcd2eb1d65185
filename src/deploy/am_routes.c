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

static const char *str(json_t *row, const char *k)
{
	const char *s = json_string_value(json_object_get(row, k));
	return s ? s : "";
}

static long long num(json_t *row, const char *k)
{
	return json_integer_value(json_object_get(row, k));
}

/* A JSON array column; anything unreadable is an empty one (aimaas wrote
 * them: never expected, but never a crash). */
static json_t *array_col(json_t *row, const char *k)
{
	json_t *a = json_loads(json_string_value(json_object_get(row, k)) ?: "[]", 0, NULL);
	if (!json_is_array(a)) {
		json_decref(a);
		a = json_array();
	}
	return a;
}

/* One route per served name of deployment d: its name, its LoRA adapters,
 * then its aliases, each with copies of the ready replicas. */
static void add_deployment(struct am_routes *rt, json_t *d, const struct am_route_rep *reps, int nreps)
{
	json_t *loras = array_col(d, "lora_modules");
	json_t *aliases = array_col(d, "aliases");
	size_t nl = json_array_size(loras), na = json_array_size(aliases);
	const char *dname = str(d, "name");
	for (size_t l = 0; l <= nl + na; l++) {
		struct am_route *r = am_gateway_routes_add_route(rt);
		const char *name = dname;
		if (l > 0 && l <= nl)
			name = json_string_value(json_object_get(json_array_get(loras, l - 1), "name")) ?: "";
		else if (l > nl)
			name = json_string_value(json_array_get(aliases, l - 1 - nl)) ?: "";
		am_strlcpy(r->name, name, sizeof r->name);
		r->dep_id = num(d, "id");
		r->lora = l > 0 && l <= nl;
		/* an alias is the deployment under another name; an adapter keeps its own */
		am_strlcpy(r->engine_name, l > nl ? dname : name, sizeof r->engine_name);
		am_strlcpy(r->kind, json_string_value(json_object_get(d, "kind")) ?: "llm", sizeof r->kind);
		if (r->lora)
			am_strlcpy(r->parent, dname, sizeof r->parent);
		r->max_model_len = num(d, "max_model_len");
		am_strlcpy(r->state, nreps ? "running" : json_string_value(json_object_get(d, "state")) ?: "stopped",
			   sizeof r->state);
		if (nreps) {
			r->reps = am_malloc((size_t)nreps * sizeof *reps);
			memcpy(r->reps, reps, (size_t)nreps * sizeof *reps);
			r->nreps = nreps;
		}
	}
	json_decref(loras);
	json_decref(aliases);
}

static void add_key(struct am_routes *rt, json_t *kr)
{
	struct am_route_key *k = am_gateway_routes_add_key(rt);
	am_strlcpy(k->hash, str(kr, "key_hash"), sizeof k->hash);
	k->id = num(kr, "id");
	k->user_id = num(kr, "user_id");
	am_strlcpy(k->user, str(kr, "username"), sizeof k->user);
	k->rpm = num(kr, "rpm");
	k->tpm = num(kr, "tpm");
	k->quota = num(kr, "quota_tokens");
	k->used = num(kr, "used_tokens");
	k->expires_at = num(kr, "expires_at");
	k->disabled = num(kr, "disabled") != 0;
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
}

static void add_session(struct am_routes *rt, json_t *sr)
{
	struct am_route_key *k = am_gateway_routes_add_key(rt);
	am_strlcpy(k->hash, str(sr, "token_hash"), sizeof k->hash);
	am_strlcpy(k->csrf, str(sr, "csrf"), sizeof k->csrf);
	k->session = 1;
	k->id = num(sr, "id");
	k->user_id = num(sr, "user_id");
	am_strlcpy(k->user, str(sr, "username"), sizeof k->user);
	k->all_models = 1;
	k->expires_at = num(sr, "expires_at");
	k->disabled = num(sr, "disabled") != 0;
}

int am_routes_build(struct am_store *st, struct am_deploy *dp, int64_t now_ms, struct am_routes **out)
{
	json_t *deps = NULL, *insts = NULL, *keys = NULL, *sess = NULL;
	struct am_route_rep *reps = NULL;
	int rc = -1;
	if (am_store_rows(st, &deps, "SELECT d.id, d.name, d.state, d.lora_modules, d.aliases, m.kind,"
			  " COALESCE(d.max_model_len, m.max_context) AS max_model_len FROM deployments d"
			  " JOIN models m ON m.id = d.model_id ORDER BY d.id", NULL) != 0 ||
	    /* in deployment order: one merge pass joins them */
	    am_store_rows(st, &insts, "SELECT id, deployment_id, port, api_key FROM instances WHERE state = 'running'"
			  " ORDER BY deployment_id, id", NULL) != 0 ||
	    am_store_rows(st, &keys, "SELECT k.id, k.user_id, u.username, u.disabled, k.key_hash, k.models, k.rpm, k.tpm,"
			  " k.quota_tokens, k.used_tokens, k.expires_at FROM api_keys k JOIN users u ON u.id = k.user_id"
			  " WHERE k.revoked_at IS NULL", NULL) != 0 ||
	    /* the console's sessions call /v1 too (the playground), with the cookie */
	    am_store_rows(st, &sess, "SELECT s.id, s.user_id, u.username, u.disabled, s.token_hash, s.csrf, s.expires_at"
			  " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.kind = 'session' AND s.revoked_at IS NULL"
			  " AND (s.expires_at IS NULL OR s.expires_at > ?)", "i", (long long)now_ms) != 0)
		goto out;
	struct am_routes *rt = am_gateway_routes_new();
	size_t ni = json_array_size(insts), k = 0, i;
	reps = am_calloc(ni + 1, sizeof *reps);
	json_t *d;
	json_array_foreach(deps, i, d) {
		long long id = num(d, "id");
		int nreps = 0;
		for (; k < ni && num(json_array_get(insts, k), "deployment_id") < id; k++)
			; /* an instance of no deployment (never, with the foreign key) */
		for (; k < ni && num(json_array_get(insts, k), "deployment_id") == id; k++) {
			json_t *inst = json_array_get(insts, k);
			struct am_route_rep *r = &reps[nreps++];
			memset(r, 0, sizeof *r);
			r->instance_id = num(inst, "id");
			/* the local runtime's engines; a remote runtime's instance will carry its node's address */
			am_strlcpy(r->host, AM_DEPLOY_LOCAL_HOST, sizeof r->host);
			r->port = (int)num(inst, "port");
			am_deploy_engine_key(dp, json_string_value(json_object_get(inst, "api_key")), r->key, sizeof r->key);
		}
		add_deployment(rt, d, reps, nreps);
	}
	json_t *row;
	json_array_foreach(keys, i, row)
		add_key(rt, row);
	json_array_foreach(sess, i, row)
		add_session(rt, row);
	*out = rt;
	rc = 0;
out:
	free(reps);
	json_decref(deps);
	json_decref(insts);
	json_decref(keys);
	json_decref(sess);
	return rc;
}

/* FNV-1a, 64 bits: a digest to tell tables apart, not a defence */
static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ull;
	}
	return h;
}

static uint64_t mix_str(uint64_t h, const char *s)
{
	return mix(h, s, strlen(s) + 1);
}

static uint64_t mix_int(uint64_t h, long long v)
{
	return mix(h, &v, sizeof v);
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

void am_routes_publish(struct am_server *srv)
{
	if (!srv->gateway)
		return;
	struct am_routes *rt = NULL;
	if (am_routes_build(srv->store, srv->deploy, am_wall_ms(), &rt) != 0) {
		am_warn("gateway", "cannot read the routes from the database; the gateway keeps the last ones");
		return;
	}
	uint64_t digest = am_routes_digest(rt);
	if (srv->routes_published && digest == srv->routes_digest) {
		am_gateway_routes_free(rt);
		return;
	}
	srv->routes_digest = digest;
	srv->routes_published = 1;
	am_gateway_publish(srv->gateway, rt);
}
