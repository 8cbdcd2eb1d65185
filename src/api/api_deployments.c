/* api_deployments: deploying models on engines, and everything after:
 * state, instances, scale, start/stop/restart, delete, the exact command,
 * logs (tail, follow over SSE, download) and serving metrics. Users manage
 * the deployments they created; admins all. */
#include <ctype.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/am_buf.h"
#include "../base/am_json.h"
#include "../base/am_mem.h"
#include "../base/am_time.h"
#include "../deploy/am_deploy.h"
#include "../finetune/am_finetune.h"
#include "../gateway/am_gateway.h"
#include "../model/am_model.h"
#include "../store/am_store.h"
#include "am_api.h"

#define DEP_COLS "id, name, model_id, engine, replicas, gpus_per_replica, pinned_gpus, placement, max_model_len," \
		 " max_num_seqs, gpu_memory_utilization, engine_args, env, trust_remote_code, lora_modules, desired, state," \
		 " reason, task_id, aliases, created_by, created_at, updated_at, idle_after_s, evictable, priority," \
		 " idle_at AS idle_since, used_at, cold_starts"

#define MASK AM_ENGINE_MASK /* what a secret env value reads as, here as in /command */

/* The values of env's secret-named variables (borrowed from env), at most
 * max - 1 of them, NULL-terminated. */
static void env_secrets(json_t *env, const char **out, size_t max)
{
	size_t n = 0;
	const char *k;
	json_t *v;
	json_object_foreach(env, k, v)
		if (n + 1 < max && am_engine_secret_name(k, 0) && json_is_string(v))
			out[n++] = json_string_value(v);
	out[n] = NULL;
}

/* Each string of arr with those values masked (a user may pass a secret
 * in an argument too). */
static void mask_strings(json_t *arr, const char *const *secrets)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(v);
		if (!s)
			continue;
		char m[8192];
		am_engine_mask(s, secrets, m, sizeof m);
		if (strcmp(m, s))
			json_array_set_new(arr, i, json_string(m) ?: json_string(MASK));
	}
}

static json_t *instance_json(struct am_server *srv, json_t *inst, const char *const *secrets)
{
	json_t *o = json_object();
	static const char *const keep[] = { "id", "replica", "node_id", "state", "reason", "restarts", "failures",
					    "mem_per_gpu", "mem_fraction", "dtype", "started_at", "ready_at", "stopped_at",
					    "backoff_until", NULL };
	for (const char *const *k = keep; *k; k++)
		json_object_set(o, *k, json_object_get(inst, *k) ?: json_null());
	json_t *g = am_json_column(json_string_value(json_object_get(inst, "gpus")) ?: "[]", 0);
	json_t *gi = am_json_column(json_string_value(json_object_get(inst, "gpu_indices")) ?: "[]", 0);
	json_object_set_new(o, "gpus", g ? g : json_array());
	json_object_set_new(o, "gpu_indices", gi ? gi : json_array());
	am_deploy_describe(srv->deploy, inst, o); /* runtime, address, port, pid */
	const char *st = json_string_value(json_object_get(inst, "state"));
	if (st && (!strcmp(st, "failed") || !strcmp(st, "backoff"))) {
		/* an engine may print its key or a secret variable */
		const char *all[68];
		size_t n = 0;
		char ekey[96];
		all[n++] = am_deploy_engine_key(srv->deploy, json_string_value(json_object_get(inst, "api_key")), ekey,
						sizeof ekey) == 0 ? ekey : NULL;
		for (const char *const *s = secrets; s && *s && n < 67; s++)
			all[n++] = *s;
		all[n] = NULL;
		json_t *lines = am_deploy_last_lines(srv->deploy, inst, 20), *v;
		size_t i;
		json_array_foreach(lines, i, v) {
			char m[4096];
			am_engine_mask(json_string_value(v), all[0] ? all : all + 1, m, sizeof m);
			json_array_set_new(lines, i, json_string(m) ?: json_string("(not UTF-8)"));
		}
		json_object_set_new(o, "last_log_lines", lines);
	}
	return o;
}

/* A deployment as the API shows it, from its row d (DEP_COLS; taken), its
 * model's row m (taken; NULL when gone) and its instances' rows insts[0..n)
 * (borrowed), secrets masked. */
static json_t *dep_render(struct am_server *srv, json_t *d, json_t *m, json_t *const *insts, size_t n)
{
	long long id = json_integer_value(json_object_get(d, "id"));
	static const char *const cols[] = { "pinned_gpus", "engine_args", "env", "lora_modules", "aliases" };
	for (size_t i = 0; i < 5; i++) {
		const char *s = json_string_value(json_object_get(d, cols[i]));
		json_t *v = am_json_column(s, 0);
		json_object_set_new(d, cols[i], v ? v : json_null());
	}
	const char *k;
	json_t *v;
	json_t *held = json_deep_copy(json_object_get(d, "env")); /* the values, for masking the log lines */
	const char *secrets[66];
	env_secrets(held, secrets, 66);
	mask_strings(json_object_get(d, "engine_args"), secrets);
	json_object_foreach(json_object_get(d, "env"), k, v)
		if (am_engine_secret_name(k, 0))
			json_object_set_new(json_object_get(d, "env"), k, json_string(MASK));
	/* a secret flag's value ("--hf-token x", "--x-token=y") as /command shows it */
	if (json_is_array(json_object_get(d, "engine_args"))) {
		struct am_argv args = { 0 };
		size_t ai;
		json_t *av;
		json_array_foreach(json_object_get(d, "engine_args"), ai, av)
			am_argv_add(&args, json_string_value(av) ?: "");
		json_object_set_new(d, "engine_args", am_argv_json(&args, 0));
		am_argv_free(&args);
	}
	am_api_bools(d, (const char *const[]){ "trust_remote_code", "evictable", NULL });
	/* scale to zero: replicas stop together after idle_after_s without a request */
	long long idle_s = json_integer_value(json_object_get(d, "idle_after_s"));
	json_object_set_new(d, "min_replicas", json_integer(idle_s > 0 ? 0 : json_integer_value(json_object_get(d, "replicas"))));
	json_object_set_new(d, "cold_start", am_deploy_cold_start_json(json_string_value(json_object_get(d, "cold_starts"))));
	json_object_del(d, "cold_starts");
	int64_t last = 0;
	long long inflight = 0;
	if (srv->gateway && am_gateway_activity(srv->gateway, id, &last, &inflight) == 0 &&
	    last > json_integer_value(json_object_get(d, "used_at")))
		json_object_set_new(d, "used_at", json_integer(last));
	json_object_set_new(d, "model", m ? m : json_null());
	json_t *out = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(out, instance_json(srv, insts[i], secrets));
	json_decref(held);
	json_object_set_new(d, "instances", out);
	/* adapters can change without a restart: vLLM, every live engine started with LoRA */
	int live = 0, with = 0;
	for (size_t i = 0; i < n; i++) {
		const char *st = json_string_value(json_object_get(insts[i], "state")) ?: "";
		if (!strcmp(st, "starting") || !strcmp(st, "running")) {
			live++;
			with += json_is_string(json_object_get(insts[i], "lora_live"));
		}
	}
	json_object_set_new(d, "lora_runtime", json_boolean(!strcmp(json_string_value(json_object_get(d, "engine")) ?: "", "vllm") &&
							     (live == 0 || with == live)));
	json_object_set_new(d, "metrics", am_deploy_metrics(srv->deploy, id));
	json_object_set_new(d, "endpoint", json_pack("{s:s,s:O}", "base_url", "/v1", "model", json_object_get(d, "name")));
	return d;
}

#define MODEL_COLS "id, name, kind, architecture, parameters"

/* One deployment as the API shows it, or NULL. */
static json_t *dep_json(struct am_server *srv, long long id)
{
	json_t *d = NULL, *m = NULL, *insts = NULL;
	if (am_store_row(srv->store, &d, "SELECT " DEP_COLS " FROM deployments WHERE id = ?", "i", id) != 0 || !d)
		return NULL;
	am_store_row(srv->store, &m, "SELECT " MODEL_COLS " FROM models WHERE id = ?", "i",
		     (long long)json_integer_value(json_object_get(d, "model_id")));
	am_store_rows(srv->store, &insts, "SELECT * FROM instances WHERE deployment_id = ? ORDER BY replica", "i", id);
	size_t n = json_array_size(insts);
	json_t **v = am_calloc(n + 1, sizeof *v);
	for (size_t i = 0; i < n; i++)
		v[i] = json_array_get(insts, i);
	json_t *out = dep_render(srv, d, m, v, n);
	free(v);
	json_decref(insts);
	return out;
}

/* The deployment of the {id} parameter (id or name), if the caller may
 * touch it: its owner's and admins'; someone else's is as good as absent. */
static int dep_param(struct am_ctx *ctx, long long *id, struct am_err *err)
{
	const char *ref = am_api_param(ctx, "id");
	char *end;
	long long n = strtoll(ref, &end, 10);
	json_t *row = NULL;
	if (*ref && !*end && n > 0)
		am_store_row(ctx->srv->store, &row, "SELECT id, owner_id FROM deployments WHERE id = ?", "i", n);
	else
		am_store_row(ctx->srv->store, &row, "SELECT id, owner_id FROM deployments WHERE name = ?", "s", ref);
	long long found = json_integer_value(json_object_get(row, "id"));
	long long owner = json_integer_value(json_object_get(row, "owner_id"));
	json_decref(row);
	if (!found || !am_api_may_see(ctx, owner, 0))
		return am_err_set(err, AM_E_NOT_FOUND, "", "no deployment '%.100s'", ref);
	*id = found;
	am_fmt(ctx->target, sizeof ctx->target, "deployment:%lld", found);
	return 0;
}

/* aliases as the deploy module takes them: absent or null is no change
 * (*has 0); the module checks each name. */
static int parse_aliases(json_t *a, const char **out, int *n, int *has, struct am_err *err)
{
	*n = 0;
	*has = 0;
	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a) || json_array_size(a) > AM_DEPLOY_MAX_NAMES)
		return am_err_set(err, AM_E_INVALID, "aliases", "'aliases' must be a list of at most 16 names");
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v)
		out[(*n)++] = json_string_value(v); /* NULL: not a string, which the module refuses */
	*has = 1;
	return 0;
}

/* lora_modules [{"name", "model"}]: each adapter's model reference resolved
 * to one the caller may see (0 when none: the module refuses it). Absent
 * is no change (*has 0); null is none. */
static int parse_loras(struct am_ctx *ctx, json_t *in, struct am_deploy_lora *out, int *n, int *has, struct am_err *err)
{
	*n = 0;
	*has = in != NULL;
	if (!in || json_is_null(in))
		return 0;
	if (!json_is_array(in) || json_array_size(in) > AM_DEPLOY_MAX_NAMES)
		return am_err_set(err, AM_E_INVALID, "lora_modules", "'lora_modules' must be a list of at most 16 {name, model}");
	size_t i;
	json_t *m;
	json_array_foreach(in, i, m) {
		struct am_deploy_lora *l = &out[(*n)++];
		l->name = json_string_value(json_object_get(m, "name"));
		l->model_ref = json_string_value(json_object_get(m, "model"));
		if (!l->model_ref || am_api_model_lookup(ctx, l->model_ref, &l->model_id) != 0)
			l->model_id = 0;
	}
	return 0;
}

/* Scale to zero's members of a create or PATCH body: idle_after_s (null
 * or 0: never), min_replicas (0: scale to zero, which needs idle_after_s;
 * 1 or more: never), evictable, priority. has_* say which were sent. */
struct idle_fields {
	int has_idle, idle, has_evict, evict, has_prio, prio;
	int min_zero;              /* a PATCH's min_replicas 0 alone: the stored idle_after_s must be set */
};

static int parse_idle(json_t *b, int patch, struct idle_fields *f, struct am_err *err)
{
	long long idle = 0, minr = -1, prio = 0;
	json_t *ij = json_object_get(b, "idle_after_s"), *mj = json_object_get(b, "min_replicas");
	if (ij && !json_is_null(ij) && am_json_get_int(b, "idle_after_s", AM_JSON_OPTIONAL, 0, 2592000, &idle, err) != 0)
		return -1;
	if (mj && !json_is_null(mj) && am_json_get_int(b, "min_replicas", AM_JSON_OPTIONAL, 0, 64, &minr, err) != 0)
		return -1;
	f->has_idle = ij != NULL;
	f->idle = (int)idle;
	if (minr == 0 && patch && (!ij || json_is_null(ij)))
		f->min_zero = 1;
	else if (minr == 0 && (!ij || idle <= 0))
		return am_err_set(err, AM_E_INVALID, "min_replicas",
				  "min_replicas 0 (scale to zero) needs idle_after_s: how long without a request before the "
				  "replicas stop");
	if (minr > 0) {
		if (idle > 0)
			return am_err_set(err, AM_E_INVALID, "min_replicas",
					  "with idle_after_s the replicas stop together: min_replicas can only be 0");
		f->has_idle = 1; /* never scale to zero */
		f->idle = 0;
	}
	f->has_evict = json_object_get(b, "evictable") != NULL;
	if (am_json_get_bool(b, "evictable", AM_JSON_OPTIONAL, &f->evict, err) != 0 ||
	    am_json_get_int(b, "priority", AM_JSON_OPTIONAL, 0, 100, &prio, err) != 0)
		return -1;
	f->has_prio = json_object_get(b, "priority") != NULL;
	f->prio = (int)prio;
	return 0;
}

static int create(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "name", "model", "engine", "replicas", "gpus_per_replica", "gpus", "placement",
					      "max_model_len", "max_num_seqs", "gpu_memory_utilization", "engine_args", "env",
					      "trust_remote_code", "lora_modules", "start", "aliases", "idle_after_s", "min_replicas",
					      "evictable", "priority", NULL };
	json_t *b = ctx->body;
	char q[8];
	/* a dry run leaves no trace, refused or not: no row, no id, no task */
	ctx->no_task = am_http_query(ctx->req, "dry_run", q, sizeof q) == 1 && (!strcmp(q, "true") || !strcmp(q, "1"));
	struct am_deploy_spec s;
	memset(&s, 0, sizeof s);
	const char *mref = NULL;
	long long replicas = 1, gpr = 0, mml = 0, mns = 0;
	int has;
	s.engine = "vllm";
	s.placement = "binpack";
	s.start = 1;
	if (am_json_only(b, fields, err) != 0 || am_json_get_str(b, "name", AM_JSON_REQUIRED, 1, 128, &s.name, err) != 0 ||
	    am_json_get_str(b, "model", AM_JSON_REQUIRED, 1, 128, &mref, err) != 0 ||
	    am_json_get_str(b, "engine", AM_JSON_OPTIONAL, 1, 32, &s.engine, err) != 0 ||
	    am_json_get_int(b, "replicas", AM_JSON_OPTIONAL, 1, 64, &replicas, err) != 0 ||
	    am_json_get_int(b, "gpus_per_replica", AM_JSON_OPTIONAL, 1, 64, &gpr, err) != 0 ||
	    am_json_get_str(b, "placement", AM_JSON_OPTIONAL, 1, 16, &s.placement, err) != 0 ||
	    am_json_get_int(b, "max_model_len", AM_JSON_OPTIONAL, 16, 10000000, &mml, err) != 0 ||
	    am_json_get_int(b, "max_num_seqs", AM_JSON_OPTIONAL, 1, 100000, &mns, err) != 0 ||
	    am_json_get_bool(b, "trust_remote_code", AM_JSON_OPTIONAL, &s.trust_remote_code, err) != 0 ||
	    am_json_get_bool(b, "start", AM_JSON_OPTIONAL, &s.start, err) != 0 ||
	    parse_aliases(json_object_get(b, "aliases"), s.aliases, &s.naliases, &has, err) != 0)
		return -1;
	struct idle_fields idf = { 0 };
	if (parse_idle(b, 0, &idf, err) != 0)
		return -1;
	s.idle_after_s = idf.idle;
	s.evictable = idf.evict;
	s.priority = idf.prio;
	json_t *fj = json_object_get(b, "gpu_memory_utilization");
	if (fj && !json_is_null(fj)) {
		if (!json_is_number(fj) || json_number_value(fj) < 0.05 || json_number_value(fj) > 0.99)
			return am_err_set(err, AM_E_INVALID, "gpu_memory_utilization",
					  "'gpu_memory_utilization' must be a number between 0.05 and 0.99");
		s.gpu_memory_utilization = json_number_value(fj);
	}
	am_fmt(ctx->target, sizeof ctx->target, "deployment:%s", s.name);
	if (parse_loras(ctx, json_object_get(b, "lora_modules"), s.loras, &s.nloras, &has, err) != 0)
		return -1;
	s.model_ref = mref;
	if (am_api_model_lookup(ctx, mref, &s.model_id) != 0)
		s.model_id = 0; /* none the caller may see: the module says so in its turn */
	s.replicas = (int)replicas;
	s.gpus_per_replica = (int)gpr;
	s.gpus = json_object_get(b, "gpus");
	s.max_model_len = (int)mml;
	s.max_num_seqs = (int)mns;
	s.engine_args = json_object_get(b, "engine_args");
	s.env = json_object_get(b, "env");
	struct am_deploy_actor who = { ctx->who.user_id, ctx->who.username, ctx->who.admin };
	struct am_deploy_created out;
	if (am_deploy_create(ctx->srv->deploy, &s, ctx->no_task, &who, &out, err) != 0)
		return -1;
	if (ctx->no_task) {
		/* what a dry run shows of the command: secrets masked, as /command shows them */
		const char *secrets[66];
		json_t *aj = am_argv_json(&out.argv, 0);
		env_secrets(json_is_object(s.env) ? s.env : NULL, secrets, 66);
		mask_strings(aj, secrets);
		json_t *cmd = json_pack("{s:o,s:o}", "argv", aj, "env", am_argv_json(&out.env, 1));
		ctx->resp = json_pack("{s:b,s:O,s:o}", "dry_run", 1, "plan", out.plan, "command", cmd);
		am_deploy_created_free(&out);
		return 0;
	}
	am_fmt(ctx->target, sizeof ctx->target, "deployment:%lld", out.id);
	ctx->task_id = out.task_id;
	ctx->resp = dep_json(ctx->srv, out.id);
	json_object_set(ctx->resp, "plan", out.plan);
	ctx->status = 201;
	am_deploy_created_free(&out);
	return 0;
}

/* A page of deployments, rendered from three queries (their rows, their
 * models, their instances) rather than three per deployment. rows: DEP_COLS
 * in id order; each is taken. */
static json_t *dep_page(struct am_server *srv, json_t *rows)
{
	json_t *items = json_array();
	size_t n = json_array_size(rows);
	if (!n) {
		json_decref(rows);
		return items;
	}
	long long lo = json_integer_value(json_object_get(json_array_get(rows, 0), "id"));
	long long hi = json_integer_value(json_object_get(json_array_get(rows, n - 1), "id"));
	json_t *models = NULL, *insts = NULL;
	am_store_rows(srv->store, &models, "SELECT " MODEL_COLS " FROM models WHERE id IN"
		      " (SELECT model_id FROM deployments WHERE id BETWEEN ? AND ?)", "ii", lo, hi);
	am_store_rows(srv->store, &insts, "SELECT * FROM instances WHERE deployment_id BETWEEN ? AND ?"
		      " ORDER BY deployment_id, replica", "ii", lo, hi);
	size_t ni = json_array_size(insts), at = 0;
	json_t **v = am_calloc(ni + 1, sizeof *v);
	for (size_t r = 0; r < n; r++) {
		json_t *d = json_incref(json_array_get(rows, r));
		long long id = json_integer_value(json_object_get(d, "id"));
		long long mid = json_integer_value(json_object_get(d, "model_id"));
		json_t *m = NULL, *mv;
		size_t k;
		json_array_foreach(models, k, mv)
			if (json_integer_value(json_object_get(mv, "id")) == mid)
				m = json_deep_copy(mv);
		while (at < ni && json_integer_value(json_object_get(json_array_get(insts, at), "deployment_id")) < id)
			at++; /* instances of deployments not on this page (another owner's) */
		size_t k0 = at;
		while (at < ni && json_integer_value(json_object_get(json_array_get(insts, at), "deployment_id")) == id) {
			v[at - k0] = json_array_get(insts, at);
			at++;
		}
		json_t *o = dep_render(srv, d, m, v, at - k0);
		if (o)
			json_array_append_new(items, o);
	}
	free(v);
	json_decref(models);
	json_decref(insts);
	json_decref(rows);
	return items;
}

static int list(struct am_ctx *ctx, struct am_err *err)
{
	long long limit, offset, after, total = -1;
	int count;
	if (am_api_page(ctx, &limit, &offset, err) != 0 || am_api_keyset(ctx, &after, &count, err) != 0)
		return -1;
	long long admin = ctx->who.admin, me = ctx->who.user_id;
	json_t *rows = NULL;
	if (am_store_rows(ctx->srv->store, &rows, "SELECT " DEP_COLS " FROM deployments WHERE (?1 OR owner_id = ?2) AND id > ?5"
			  " ORDER BY id LIMIT ?3 OFFSET ?4", "iiiii", admin, me, limit, offset, after) != 0 ||
	    (count && am_store_int(ctx->srv->store, &total, 0, "SELECT COUNT(*) FROM deployments WHERE ?1 OR owner_id = ?2", "ii",
				   admin, me) != 0)) {
		json_decref(rows);
		return am_err_set(err, AM_E_INTERNAL, "", "could not read deployments");
	}
	long long next = am_api_next(rows, limit);
	ctx->resp = am_api_list_keyset(dep_page(ctx->srv, rows), total, limit, offset, next);
	return 0;
}

static int get(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (dep_param(ctx, &id, err) != 0)
		return -1;
	ctx->resp = dep_json(ctx->srv, id);
	return 0;
}

typedef int (*want_fn)(struct am_deploy *d, long long id, const char *actor, long long *task_id, struct am_err *err);

static int action(struct am_ctx *ctx, struct am_err *err, want_fn want)
{
	long long id;
	if (dep_param(ctx, &id, err) != 0 || want(ctx->srv->deploy, id, ctx->who.username, &ctx->task_id, err) != 0)
		return -1;
	ctx->resp = dep_json(ctx->srv, id);
	ctx->status = 202;
	return 0;
}

static int start(struct am_ctx *ctx, struct am_err *err) { return action(ctx, err, am_deploy_want_running); }
static int stop(struct am_ctx *ctx, struct am_err *err) { return action(ctx, err, am_deploy_want_stopped); }
static int restart(struct am_ctx *ctx, struct am_err *err) { return action(ctx, err, am_deploy_want_restarted); }
static int delete(struct am_ctx *ctx, struct am_err *err) { return action(ctx, err, am_deploy_want_deleted); }

static int update(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "replicas", "engine_args", "env", "max_num_seqs", "aliases", "lora_modules",
					      "idle_after_s", "min_replicas", "evictable", "priority", NULL };
	long long id, replicas = 0, mns = 0;
	struct am_deploy_patch p;
	memset(&p, 0, sizeof p);
	json_t *b = ctx->body;
	if (dep_param(ctx, &id, err) != 0 || am_json_only(b, fields, err) != 0 ||
	    parse_aliases(json_object_get(b, "aliases"), p.aliases, &p.naliases, &p.has_aliases, err) != 0 ||
	    am_json_get_int(b, "replicas", AM_JSON_OPTIONAL, 1, 64, &replicas, err) != 0 ||
	    am_json_get_int(b, "max_num_seqs", AM_JSON_OPTIONAL, 1, 100000, &mns, err) != 0 ||
	    parse_loras(ctx, json_object_get(b, "lora_modules"), p.loras, &p.nloras, &p.has_loras, err) != 0)
		return -1;
	struct idle_fields idf = { 0 };
	if (parse_idle(b, 1, &idf, err) != 0)
		return -1;
	p.min_replicas_zero = idf.min_zero;
	p.has_idle_after_s = idf.has_idle;
	p.idle_after_s = idf.idle;
	p.has_evictable = idf.has_evict;
	p.evictable = idf.evict;
	p.has_priority = idf.has_prio;
	p.priority = idf.prio;
	p.replicas = (int)replicas;
	p.max_num_seqs = (int)mns;
	p.engine_args = json_object_get(b, "engine_args");
	p.env = json_object_get(b, "env");
	int restarting = 0;
	if (am_deploy_update(ctx->srv->deploy, id, &p, ctx->who.username, &ctx->task_id, &restarting, err) != 0)
		return -1;
	ctx->resp = dep_json(ctx->srv, id);
	/* whether the change restarts the engines (adapters on an engine started with LoRA do not) */
	json_object_set_new(ctx->resp, "restarting", json_boolean(restarting));
	return 0;
}

static int command(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (dep_param(ctx, &id, err) != 0)
		return -1;
	json_t *dep = NULL, *insts = NULL, *model = NULL;
	am_store_row(ctx->srv->store, &dep, "SELECT * FROM deployments WHERE id = ?", "i", id);
	model = am_model_json(ctx->srv->store, json_integer_value(json_object_get(dep, "model_id")));
	am_store_rows(ctx->srv->store, &insts, "SELECT * FROM instances WHERE deployment_id = ? ORDER BY replica", "i", id);
	json_t *denv = json_loads(json_string_value(json_object_get(dep, "env")) ?: "{}", 0, NULL);
	const char *secrets[66];
	env_secrets(denv, secrets, 66);
	json_t *out = json_array();
	size_t i;
	json_t *inst;
	int rc = 0;
	json_array_foreach(insts, i, inst) {
		struct am_argv argv = { 0 }, env = { 0 };
		if (am_deploy_command(ctx->srv->deploy, dep, model, inst, &argv, &env, err) != 0)
			rc = -1;
		else {
			json_t *aj = am_argv_json(&argv, 0);
			mask_strings(aj, secrets);
			json_array_append_new(out, json_pack("{s:I,s:I,s:o,s:o}", "instance", json_integer_value(json_object_get(inst, "id")),
							     "replica", json_integer_value(json_object_get(inst, "replica")), "argv",
							     aj, "env", am_argv_json(&env, 1)));
		}
		am_argv_free(&argv);
		am_argv_free(&env);
	}
	json_decref(dep);
	json_decref(insts);
	json_decref(model);
	json_decref(denv);
	if (rc) {
		json_decref(out);
		return -1;
	}
	ctx->resp = json_pack("{s:o}", "instances", out);
	return 0;
}

/* GET /deployments/{id}/metrics?since=&max=: the serving metrics now and
 * over time (scraped from the engines), for the console's charts */
static int metrics(struct am_ctx *ctx, struct am_err *err)
{
	long long id, since = 0, max = 300;
	if (dep_param(ctx, &id, err) != 0 || am_api_query_int(ctx, "since", 0, INT64_MAX / 2, &since, err) != 0 ||
	    am_api_query_int(ctx, "max", 1, 5000, &max, err) != 0)
		return -1;
	ctx->resp = json_pack("{s:I,s:o,s:o}", "deployment", (json_int_t)id, "current", am_deploy_metrics(ctx->srv->deploy, id),
			      "series", am_deploy_history(ctx->srv->deploy, id, since, (int)max));
	return 0;
}

/* ---- logs ---- */

static int logs(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (dep_param(ctx, &id, err) != 0) {
		am_api_reply_error(ctx->req, err);
		return 0;
	}
	long long tail = 200;
	if (am_api_query_int(ctx, "tail", 0, 10000, &tail, err) != 0) {
		am_api_reply_error(ctx->req, err);
		return 0;
	}
	char inst[32] = "";
	am_http_query(ctx->req, "instance", inst, sizeof inst);
	char path[4200] = "";
	am_deploy_log_file(ctx->srv->deploy, id, inst, path, sizeof path);
	char name[64];
	am_fmt(name, sizeof name, "deployment-%lld.log", id);
	/* what an engine may print of its secrets (SGLang prints its ServerArgs,
	 * key included): the engine keys and the secret env values */
	json_t *keys = NULL, *envrow = NULL;
	am_store_rows(ctx->srv->store, &keys, "SELECT api_key FROM instances WHERE deployment_id = ? AND api_key IS NOT NULL",
		      "i", id);
	am_store_row(ctx->srv->store, &envrow, "SELECT env FROM deployments WHERE id = ?", "i", id);
	json_t *env = json_loads(json_string_value(json_object_get(envrow, "env")) ?: "{}", 0, NULL);
	const char *secrets[80];
	char ekeys[16][96];
	size_t ns = 0, i;
	json_t *v;
	json_array_foreach(keys, i, v)
		if (ns < 16 && am_deploy_engine_key(ctx->srv->deploy, json_string_value(json_object_get(v, "api_key")), ekeys[ns],
						    sizeof ekeys[ns]) == 0)
			secrets[ns] = ekeys[ns], ns++;
	const char *k;
	json_object_foreach(env, k, v)
		if (ns < 79 && am_engine_secret_name(k, 0) && json_is_string(v))
			secrets[ns++] = json_string_value(v);
	secrets[ns] = NULL;
	am_api_serve_log_masked(ctx, path, tail, name, secrets);
	json_decref(keys);
	json_decref(envrow);
	json_decref(env);
	return 0;
}

static int engines(struct am_ctx *ctx, struct am_err *err)
{
	(void)err;
	size_t n;
	const struct am_engine_def *all = am_engine_all(&n);
	json_t *items = json_array();
	for (size_t i = 0; i < n; i++) {
		char bin[4096];
		am_deploy_binary(ctx->srv->deploy, &all[i], bin, sizeof bin);
		json_t *kinds = json_array();
		for (const char *const *k = all[i].kinds; *k; k++)
			json_array_append_new(kinds, json_string(*k));
		json_t *row = NULL;
		am_store_row(ctx->srv->store, &row, "SELECT argv FROM engine_settings WHERE name = ?", "s", all[i].name);
		json_t *argv = row && json_string_value(json_object_get(row, "argv"))
				       ? json_loads(json_string_value(json_object_get(row, "argv")), 0, NULL) : NULL;
		json_decref(row);
		json_t *ea = am_deploy_engine_allow(ctx->srv->deploy, all[i].name, "env_allow"),
		       *aa = am_deploy_engine_allow(ctx->srv->deploy, all[i].name, "args_allow");
		/* where the program is, as the engine's start will find it (null: not
		 * installed, and why: SGLang's python3 without its module, say) */
		char found[4096];
		const char *prog = bin[0] ? bin : json_string_value(json_array_get(argv, 0)); /* custom: its template's */
		struct am_err why;
		am_err_clear(&why);
		int ok = am_deploy_program_found(ctx->srv->deploy, prog, all[i].py_module, found, sizeof found, &why) == 0;
		char image[512];
		am_deploy_image(ctx->srv->deploy, &all[i], image, sizeof image);
		json_array_append_new(items, json_pack("{s:s,s:s,s:s,s:s,s:s?,s:s?,s:s,s:b,s:o,s:o,s:o,s:o,s:s?,s:s?}", "name",
						       all[i].name, "title", all[i].title, "role", "serve", "binary", bin,
						       "found", ok ? found : NULL, "missing", ok ? NULL : why.msg,
						       "health_path", all[i].health_path, "gguf", all[i].wants_gguf, "kinds", kinds,
						       "argv", argv ? argv : json_null(), "env_allow", ea ? ea : json_array(),
						       "args_allow", aa ? aa : json_array(), "image", image[0] ? image : NULL,
						       "default_image", all[i].default_image));
	}
	/* LLaMA-Factory, the trainer: its program set here too, not an engine a deployment picks */
	char prog[4096], found[4096];
	const char *source;
	am_finetune_program(ctx->srv, prog, sizeof prog, &source);
	struct am_err why;
	am_err_clear(&why);
	int ok = am_deploy_program_found(ctx->srv->deploy, prog, NULL, found, sizeof found, &why) == 0;
	json_array_append_new(items, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s?,s:s?,s:n,s:b,s:[],s:n,s:[],s:[],s:n,s:n}", "name",
					       AM_FINETUNE_ENGINE, "title", "LLaMA-Factory (fine-tuning)", "role", "finetune",
					       "binary", prog, "binary_source", source, "found", ok ? found : NULL, "missing",
					       ok ? NULL : why.msg, "health_path", "gguf", 0, "kinds", "argv", "env_allow",
					       "args_allow", "image", "default_image"));
	ctx->resp = am_api_list(items, (long long)n + 1, 100, 0);
	return 0;
}

/* An admin's widening: env names (or prefixes ending in '*') or flags. */
static int allow_list(json_t *v, const char *field, char **out, struct am_err *err)
{
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v) || json_array_size(v) > 64)
		return am_err_set(err, AM_E_INVALID, field, "'%s' must be a list of at most 64 names", field);
	size_t i;
	json_t *x;
	json_array_foreach(v, i, x) {
		const char *s = json_string_value(x);
		size_t n = s ? strlen(s) : 0;
		int ok = s && n >= 1 && n <= 128 && n == json_string_length(x);
		for (size_t k = 0; ok && k < n; k++)
			ok = !strcmp(field, "env_allow")
				     ? isupper((unsigned char)s[k]) || isdigit((unsigned char)s[k]) || s[k] == '_' || (s[k] == '*' && k == n - 1 && k > 0)
				     : (k == 0 ? s[k] == '-' : isalnum((unsigned char)s[k]) || s[k] == '-' || s[k] == '_');
		if (!ok) {
			const char *what = !strcmp(field, "env_allow")
						   ? AM_MSG_W("a variable name (A-Z, 0-9, '_'), or a prefix ending in '*'")
						   : AM_MSG_W("a flag such as --chat-template");
			am_err_set(err, AM_E_INVALID, field, "%s[%zu] must be %s", field, i, what);
			am_msg_zhf(err->msg_zh, sizeof err->msg_zh, "%s[%zu] must be %s", field, i, am_msg_word(what));
			return -1;
		}
	}
	*out = am_json_dump(v);
	return 0;
}

static int engine_update(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "binary", "argv", "env_allow", "args_allow", "image", NULL };
	static const char *const trainer_fields[] = { "binary", NULL };
	const char *name = am_api_param(ctx, "name");
	const struct am_engine_def *e = am_engine_find(name);
	int trainer = !strcmp(name, AM_FINETUNE_ENGINE); /* LLaMA-Factory: its program only */
	if (!e && !trainer)
		return am_err_set(err, AM_E_NOT_FOUND, "", "no engine '%.40s'", name);
	am_fmt(ctx->target, sizeof ctx->target, "engine:%s", name);
	const char *bin = NULL;
	if (am_json_only(ctx->body, trainer ? trainer_fields : fields, err) != 0 ||
	    am_json_get_str(ctx->body, "binary", AM_JSON_OPTIONAL, 0, 4000, &bin, err) != 0)
		return -1;
	if (bin && *bin && bin[0] != '/' && strchr(bin, '/'))
		return am_err_set(err, AM_E_INVALID, "binary", "'binary' must be an absolute path or a program name on PATH");
	if (trainer)
		return am_deploy_engine_set(ctx->srv->deploy, name, bin, NULL, NULL, NULL, NULL, err) != 0 ? -1 : engines(ctx, err);
	const char *image = NULL; /* on clusters; "" goes back to the engine's default */
	if (am_json_get_str(ctx->body, "image", AM_JSON_OPTIONAL, 0, 255, &image, err) != 0)
		return -1;
	for (const char *c = image; c && *c; c++)
		if (!(islower((unsigned char)*c) || isdigit((unsigned char)*c) || strchr("./_:@-", *c)))
			return am_err_set(err, AM_E_INVALID, "image",
					  "'image' must be a container image reference such as registry.local/vllm/vllm-openai:v0.10.1");
	json_t *argv = json_object_get(ctx->body, "argv");
	char *s_argv = NULL;
	if (argv && !json_is_null(argv)) {
		if (strcmp(name, "custom"))
			return am_err_set(err, AM_E_INVALID, "argv", "only the custom engine takes an argv template");
		if (!json_is_array(argv) || !json_array_size(argv) || json_array_size(argv) > 128)
			return am_err_set(err, AM_E_INVALID, "argv", "'argv' must be a non-empty list of strings");
		size_t i;
		json_t *v;
		json_array_foreach(argv, i, v)
			if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
				return am_err_set(err, AM_E_INVALID, "argv", "argv[%zu] must be a string", i);
		s_argv = am_json_dump(argv);
	}
	char *s_ea = NULL, *s_aa = NULL;
	if (allow_list(json_object_get(ctx->body, "env_allow"), "env_allow", &s_ea, err) != 0 ||
	    allow_list(json_object_get(ctx->body, "args_allow"), "args_allow", &s_aa, err) != 0) {
		free(s_argv);
		free(s_ea);
		return -1;
	}
	int rc = am_deploy_engine_set(ctx->srv->deploy, name, bin, s_argv, s_ea, s_aa, image, err);
	free(s_argv);
	free(s_ea);
	free(s_aa);
	if (rc != 0)
		return -1;
	return engines(ctx, err);
}

const struct am_route_def am_api_deployments_routes[] = {
	{ "GET", "/api/v1/deployments", list, AM_USER, NULL, 0, 0 },
	{ "POST", "/api/v1/deployments", create, AM_USER, "deployment.create", 0, 0 },
	{ "GET", "/api/v1/deployments/{id}", get, AM_USER, NULL, 0, 0 },
	{ "PATCH", "/api/v1/deployments/{id}", update, AM_USER, "deployment.update", 0, 0 },
	{ "DELETE", "/api/v1/deployments/{id}", delete, AM_USER, "deployment.delete", 0, 0 },
	{ "POST", "/api/v1/deployments/{id}/start", start, AM_USER, "deployment.start", 0, 0 },
	{ "POST", "/api/v1/deployments/{id}/stop", stop, AM_USER, "deployment.stop", 0, 0 },
	{ "POST", "/api/v1/deployments/{id}/restart", restart, AM_USER, "deployment.restart", 0, 0 },
	{ "GET", "/api/v1/deployments/{id}/command", command, AM_USER, NULL, 0, 0 },
	{ "GET", "/api/v1/deployments/{id}/metrics", metrics, AM_USER, NULL, 0, 0 },
	{ "GET", "/api/v1/deployments/{id}/logs", logs, AM_USER, NULL, AM_ROUTE_RAW, 0 },
	{ "GET", "/api/v1/engines", engines, AM_USER, NULL, 0, 0 },
	{ "PATCH", "/api/v1/engines/{name}", engine_update, AM_ADMIN, "engine.update", 0, 0 },
};
const size_t am_api_deployments_nroutes = sizeof am_api_deployments_routes / sizeof am_api_deployments_routes[0];
