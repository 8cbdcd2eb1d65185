/* api_deployments: deploying models on engines, and everything after:
 * state, instances, scale, start/stop/restart, delete, the exact command,
 * logs (tail, follow over SSE, download) and serving metrics. Users manage
 * the deployments they created; admins all. */
#include <ctype.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/am_buf.h"
#include "../base/am_json.h"
#include "../base/am_mem.h"
#include "../base/am_path.h"
#include "../base/am_time.h"
#include "../deploy/am_deploy.h"
#include "../model/am_model.h"
#include "../sched/am_capacity_db.h"
#include "../store/am_store.h"
#include "../task/am_task.h"
#include "am_api.h"

#define DEP_COLS "id, name, model_id, engine, replicas, gpus_per_replica, pinned_gpus, placement, max_model_len," \
		 " max_num_seqs, gpu_memory_utilization, engine_args, env, trust_remote_code, lora_modules, desired, state," \
		 " reason, task_id, aliases, created_by, created_at, updated_at"

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
	json_t *g = json_loads(json_string_value(json_object_get(inst, "gpus")) ?: "[]", 0, NULL);
	json_t *gi = json_loads(json_string_value(json_object_get(inst, "gpu_indices")) ?: "[]", 0, NULL);
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

static json_t *dep_json(struct am_server *srv, long long id)
{
	json_t *d = NULL;
	if (am_store_row(srv->store, &d, "SELECT " DEP_COLS " FROM deployments WHERE id = ?", "i", id) != 0 || !d)
		return NULL;
	static const char *const cols[] = { "pinned_gpus", "engine_args", "env", "lora_modules", "aliases" };
	for (size_t i = 0; i < 5; i++) {
		const char *s = json_string_value(json_object_get(d, cols[i]));
		json_t *v = s ? json_loads(s, 0, NULL) : NULL;
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
	am_api_bools(d, (const char *const[]){ "trust_remote_code", NULL });
	json_t *m = NULL;
	am_store_row(srv->store, &m, "SELECT id, name, kind, architecture, parameters FROM models WHERE id = ?", "i",
		     (long long)json_integer_value(json_object_get(d, "model_id")));
	json_object_set_new(d, "model", m ? m : json_null());
	json_t *insts = NULL, *out = json_array();
	am_store_rows(srv->store, &insts, "SELECT * FROM instances WHERE deployment_id = ? ORDER BY replica", "i", id);
	size_t i;
	json_t *inst;
	json_array_foreach(insts, i, inst)
		json_array_append_new(out, instance_json(srv, inst, secrets));
	json_decref(insts);
	json_decref(held);
	json_object_set_new(d, "instances", out);
	json_object_set_new(d, "metrics", am_deploy_metrics(srv->deploy, id));
	json_object_set_new(d, "endpoint", json_pack("{s:s,s:O}", "base_url", "/v1", "model", json_object_get(d, "name")));
	return d;
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

static int served_name_ok(const char *n)
{
	size_t l = strlen(n);
	if (l < 1 || l > 128 || !isalnum((unsigned char)n[0]))
		return 0;
	for (size_t i = 0; i < l; i++)
		if (!isalnum((unsigned char)n[i]) && !strchr("._-:/", n[i]))
			return 0;
	return 1;
}

/* Whether another deployment already answers to `n` (its name, an alias or
 * an adapter); the name of that deployment goes to `who`. */
static int name_taken(json_t *rows, const char *n, const char **who)
{
	size_t k;
	json_t *r;
	json_array_foreach(rows, k, r) {
		const char *rs = json_string_value(json_object_get(r, "aliases"));
		const char *ls = json_string_value(json_object_get(r, "lora_modules"));
		const char *hit;
		if (!strcmp(json_string_value(json_object_get(r, "name")), n) ||
		    (rs && (hit = strstr(rs, n)) && hit[-1] == '"' && hit[strlen(n)] == '"') ||
		    (ls && (hit = strstr(ls, n)) && hit[-1] == '"' && hit[strlen(n)] == '"')) {
			*who = json_string_value(json_object_get(r, "name"));
			return 1;
		}
	}
	return 0;
}

/* Names in `a` (aliases, or adapters' names when `key` is "name"), unique
 * across every other deployment's name, aliases and adapters. */
static int check_names(struct am_ctx *ctx, json_t *a, const char *field, const char *key, const char *own,
		       long long self, struct am_err *err)
{
	if (!a || !json_is_array(a))
		return 0;
	json_t *rows = NULL;
	am_store_rows(ctx->srv->store, &rows, "SELECT id, name, aliases, lora_modules FROM deployments WHERE id <> ?", "i", self);
	size_t i;
	json_t *v;
	int rc = 0;
	json_array_foreach(a, i, v) {
		const char *n = json_string_value(key ? json_object_get(v, key) : v), *who = NULL;
		if (!n || !served_name_ok(n) || (own && !strcmp(n, own))) {
			rc = am_err_set(err, AM_E_INVALID, field, "%s[%zu] must be a name (letters, digits, . _ - : /) other than the deployment's",
					field, i);
			break;
		}
		if (name_taken(rows, n, &who)) {
			rc = am_err_set(err, AM_E_CONFLICT, field, "'%s' already names deployment '%s'", n, who);
			break;
		}
	}
	json_decref(rows);
	return rc;
}

/* Aliases: other names clients may send (e.g. a name an application has
 * hard-coded). */
static int check_aliases(struct am_ctx *ctx, json_t *a, const char *own, long long self, struct am_err *err)
{
	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a) || json_array_size(a) > 16)
		return am_err_set(err, AM_E_INVALID, "aliases", "'aliases' must be a list of at most 16 names");
	return check_names(ctx, a, "aliases", NULL, own, self, err);
}

/* An engine's admin-set allow list (env_allow or args_allow), or NULL. */
static json_t *engine_allow(struct am_server *srv, const char *engine, const char *col)
{
	json_t *row = NULL;
	if (!strcmp(col, "env_allow"))
		am_store_row(srv->store, &row, "SELECT env_allow AS v FROM engine_settings WHERE name = ?", "s", engine);
	else
		am_store_row(srv->store, &row, "SELECT args_allow AS v FROM engine_settings WHERE name = ?", "s", engine);
	const char *v = json_string_value(json_object_get(row, "v"));
	json_t *out = v ? json_loads(v, 0, NULL) : NULL;
	json_decref(row);
	return out;
}

/* env and engine_args as docs/api.md says a deployment may hold them. */
static int check_launch(struct am_ctx *ctx, const struct am_engine_def *e, json_t *env, json_t *args, struct am_err *err)
{
	json_t *ea = engine_allow(ctx->srv, e->name, "env_allow"), *aa = engine_allow(ctx->srv, e->name, "args_allow");
	int rc = am_engine_check_env(env, ea, err) != 0 || am_engine_check_args(e, args, aa, err) != 0 ? -1 : 0;
	json_decref(ea);
	json_decref(aa);
	return rc;
}

/* LoRA modules: [{"name", "model"}] with adapters registered as models; the
 * stored form carries their paths. */
static json_t *resolve_loras(struct am_ctx *ctx, json_t *in, long long base_id, struct am_err *err)
{
	json_t *out = json_array();
	if (!in || json_is_null(in))
		return out;
	if (!json_is_array(in) || json_array_size(in) > 16) {
		json_decref(out);
		am_err_set(err, AM_E_INVALID, "lora_modules", "'lora_modules' must be a list of at most 16 {name, model}");
		return NULL;
	}
	size_t i;
	json_t *m;
	json_array_foreach(in, i, m) {
		const char *name = json_string_value(json_object_get(m, "name"));
		const char *ref = json_string_value(json_object_get(m, "model"));
		long long aid;
		json_t *am = NULL;
		if (!name || !served_name_ok(name) || !ref || am_api_model_lookup(ctx, ref, &aid) != 0 ||
		    !(am = am_model_json(ctx->srv->store, aid)) ||
		    strcmp(json_string_value(json_object_get(am, "kind")) ?: "", "adapter")) {
			json_decref(am);
			json_decref(out);
			am_err_set(err, AM_E_INVALID, "lora_modules",
				   "lora_modules[%zu] needs a 'name' and 'model' naming a registered LoRA adapter", i);
			return NULL;
		}
		long long b = json_integer_value(json_object_get(am, "base_model_id"));
		if (b && b != base_id) {
			json_decref(am);
			json_decref(out);
			am_err_set(err, AM_E_INVALID, "lora_modules", "adapter '%s' was trained on another base model", ref);
			return NULL;
		}
		json_array_append_new(out, json_pack("{s:s,s:s,s:I}", "name", name, "path",
						     json_string_value(json_object_get(am, "path")), "model_id", (json_int_t)aid));
		json_decref(am);
	}
	return out;
}

static json_t *plan_json(const struct am_plan *p, const struct am_plan_gpu *gpus, int tp, int replicas)
{
	json_t *reps = json_array();
	for (int r = 0; r < replicas; r++) {
		json_t *g = json_array();
		for (int k = 0; k < tp; k++) {
			const struct am_plan_gpu *x = &gpus[p->choice[r * tp + k]];
			json_array_append_new(g, json_pack("{s:s,s:s,s:i,s:s,s:I}", "id", x->id, "node", x->node, "index", x->index,
							   "name", x->name, "reserve_bytes", (json_int_t)p->reserve[r * tp + k]));
		}
		json_array_append_new(reps, json_pack("{s:i,s:s,s:o}", "replica", r, "node", gpus[p->choice[r * tp]].node,
						      "gpus", g));
	}
	return json_pack("{s:I,s:I,s:I,s:I,s:i,s:f,s:s?,s:f,s:o}", "weights_bytes_per_gpu", (json_int_t)p->weights,
			 "kv_cache_bytes_per_gpu", (json_int_t)p->kv, "overhead_bytes_per_gpu", (json_int_t)p->overhead,
			 "need_bytes_per_gpu", (json_int_t)p->need, "max_model_len", p->max_model_len, "gpu_memory_utilization",
			 p->fraction, "dtype", p->dtype, "full_length_sequences", round(p->concurrency * 10) / 10, "replicas", reps);
}

static int create(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "name", "model", "engine", "replicas", "gpus_per_replica", "gpus", "placement",
					      "max_model_len", "max_num_seqs", "gpu_memory_utilization", "engine_args", "env",
					      "trust_remote_code", "lora_modules", "start", "aliases", NULL };
	json_t *b = ctx->body;
	char q[8];
	/* a dry run leaves no trace, refused or not: no row, no id, no task */
	ctx->no_task = am_http_query(ctx->req, "dry_run", q, sizeof q) == 1 && (!strcmp(q, "true") || !strcmp(q, "1"));
	const char *name = NULL, *mref = NULL, *engine = "vllm", *placement = "binpack";
	long long replicas = 1, gpr = 0, mml = 0, mns = 0;
	int trust = 0, start = 1;
	if (am_json_only(b, fields, err) != 0 || am_json_get_str(b, "name", AM_JSON_REQUIRED, 1, 128, &name, err) != 0 ||
	    am_json_get_str(b, "model", AM_JSON_REQUIRED, 1, 128, &mref, err) != 0 ||
	    am_json_get_str(b, "engine", AM_JSON_OPTIONAL, 1, 32, &engine, err) != 0 ||
	    am_json_get_int(b, "replicas", AM_JSON_OPTIONAL, 1, 64, &replicas, err) != 0 ||
	    am_json_get_int(b, "gpus_per_replica", AM_JSON_OPTIONAL, 1, 64, &gpr, err) != 0 ||
	    am_json_get_str(b, "placement", AM_JSON_OPTIONAL, 1, 16, &placement, err) != 0 ||
	    am_json_get_int(b, "max_model_len", AM_JSON_OPTIONAL, 16, 10000000, &mml, err) != 0 ||
	    am_json_get_int(b, "max_num_seqs", AM_JSON_OPTIONAL, 1, 100000, &mns, err) != 0 ||
	    am_json_get_bool(b, "trust_remote_code", AM_JSON_OPTIONAL, &trust, err) != 0 ||
	    am_json_get_bool(b, "start", AM_JSON_OPTIONAL, &start, err) != 0)
		return -1;
	if (!served_name_ok(name))
		return am_err_set(err, AM_E_INVALID, "name",
				  "'name' (the model name clients send) must be 1-128 of letters, digits and . _ - : /");
	if (check_aliases(ctx, json_object_get(b, "aliases"), name, 0, err) != 0)
		return -1;
	if (strcmp(placement, "binpack") && strcmp(placement, "spread"))
		return am_err_set(err, AM_E_INVALID, "placement", "'placement' must be 'binpack' or 'spread'");
	double frac = 0;
	json_t *fj = json_object_get(b, "gpu_memory_utilization");
	if (fj && !json_is_null(fj)) {
		if (!json_is_number(fj) || json_number_value(fj) < 0.05 || json_number_value(fj) > 0.99)
			return am_err_set(err, AM_E_INVALID, "gpu_memory_utilization",
					  "'gpu_memory_utilization' must be a number between 0.05 and 0.99");
		frac = json_number_value(fj);
	}
	const struct am_engine_def *e = am_engine_find(engine);
	if (!e)
		return am_err_set(err, AM_E_INVALID, "engine", "unknown engine '%.40s' (vllm, sglang, llama.cpp, aimaas-sim, custom)",
				  engine);
	am_fmt(ctx->target, sizeof ctx->target, "deployment:%s", name);
	if (check_launch(ctx, e, json_object_get(b, "env"), json_object_get(b, "engine_args"), err) != 0)
		return -1;
	long long mid;
	if (am_api_model_lookup(ctx, mref, &mid) != 0)
		return am_err_set(err, AM_E_INVALID, "model", "no model '%.100s' is registered", mref);
	json_t *model = am_model_json(ctx->srv->store, mid);
	int rc = -1;
	json_t *loras = NULL, *pinned = NULL;
	struct am_capacity cap;
	am_capacity_init(&cap, "");
	const char *kind = json_string_value(json_object_get(model, "kind")) ?: "llm";
	json_t *facts = json_object_get(model, "facts");
	if (strcmp(json_string_value(json_object_get(model, "state")) ?: "", "ready")) {
		am_err_set(err, AM_E_CONFLICT, "model", "model '%s' is %s: it has no local files yet", mref,
			   json_string_value(json_object_get(model, "state")));
		goto out;
	}
	if (!strcmp(kind, "adapter")) {
		am_err_set(err, AM_E_INVALID, "model", "'%s' is a LoRA adapter: deploy its base model with lora_modules", mref);
		goto out;
	}
	if (!am_engine_serves(e, kind)) {
		am_err_set(err, AM_E_INVALID, "engine", "%s does not serve %s models", e->title, kind);
		goto out;
	}
	int is_gguf = !strcmp(json_string_value(json_object_get(facts, "format")) ?: "", "gguf");
	if (e->wants_gguf && !is_gguf) {
		am_err_set(err, AM_E_INVALID, "engine", "%s needs a .gguf model; '%s' is %s", e->title, mref,
			   json_string_value(json_object_get(facts, "format")) ?: "not one");
		goto out;
	}
	if (json_is_true(json_object_get(facts, "needs_remote_code"))) {
		if (!trust) {
			am_err_set(err, AM_E_INVALID, "trust_remote_code",
				   "'%s' runs its own code (auto_map in config.json); set trust_remote_code: true to allow it", mref);
			goto out;
		}
		if (!ctx->who.admin) {
			am_err_set(err, AM_E_FORBIDDEN, "trust_remote_code", "only an admin may let a model run its own code");
			goto out;
		}
	}
	if (!(loras = resolve_loras(ctx, json_object_get(b, "lora_modules"), mid, err)) ||
	    check_names(ctx, json_object_get(b, "lora_modules"), "lora_modules", "name", name, 0, err) != 0)
		goto out;
	if (json_array_size(loras) && strcmp(engine, "vllm") && strcmp(engine, "aimaas-sim")) {
		am_err_set(err, AM_E_INVALID, "lora_modules", "LoRA adapters are served by vLLM");
		goto out;
	}
	long long mine = 0;
	am_store_int(ctx->srv->store, &mine, 0, "SELECT COUNT(*) FROM deployments WHERE owner_id = ?", "i", ctx->who.user_id);
	if (!ctx->who.admin && mine >= 64) { /* stopped ones too: rows cost nothing to make */
		am_err_set(err, AM_E_CONFLICT, "", "you already have %lld deployments; delete some first", mine);
		goto out;
	}
	long long dup = 0;
	am_store_int(ctx->srv->store, &dup, 0, "SELECT COUNT(*) FROM deployments WHERE name = ?", "s", name);
	if (dup) {
		am_err_set(err, AM_E_CONFLICT, "name", "a deployment named '%s' already exists", name);
		goto out;
	}
	am_capacity_db_load(ctx->srv, &cap);
	int pin[AM_PLAN_MAX], npin = 0;
	json_t *gj = json_object_get(b, "gpus");
	if (gj && !json_is_null(gj)) {
		char perr[512];
		if (am_capacity_pin(&cap, gj, pin, AM_PLAN_MAX, &npin, perr, sizeof perr) != 0) {
			am_err_set(err, AM_E_INVALID, "gpus", "%s", perr);
			goto out;
		}
		pinned = json_array();
		for (int k = 0; k < npin; k++)
			json_array_append_new(pinned, json_string(cap.gpus[pin[k]].id));
	}
	if (pinned) {
		size_t np = json_array_size(pinned);
		if (gpr && (long long)np != gpr * replicas) {
			am_err_set(err, AM_E_INVALID, "gpus", "%zu pinned GPUs for %lld replica(s) of %lld GPU(s) each", np, replicas, gpr);
			goto out;
		}
		if (np % (size_t)replicas) {
			am_err_set(err, AM_E_INVALID, "gpus", "%zu pinned GPUs do not split evenly over %lld replicas", np, replicas);
			goto out;
		}
		gpr = (long long)np / replicas;
	}
	if (!gpr)
		gpr = 1;
	struct am_plan_req req;
	memset(&req, 0, sizeof req);
	req.facts = facts;
	req.model = json_string_value(json_object_get(model, "name"));
	req.tp = (int)gpr;
	req.replicas = (int)replicas;
	req.max_model_len = (int)mml;
	req.mem_fraction = frac;
	req.spread = !strcmp(placement, "spread");
	memcpy(req.pinned, pin, sizeof pin);
	req.npinned = npin;
	struct am_plan p;
	am_planner_plan(cap.gpus, cap.n, &req, &p);
	if (!p.ok) {
		am_err_set(err, p.capacity ? AM_E_CONFLICT : AM_E_INVALID, p.field, "%s", p.reason);
		goto out;
	}
	char *s_pinned = pinned ? am_json_dump(pinned) : NULL;
	char *s_args = json_is_array(json_object_get(b, "engine_args")) ? am_json_dump(json_object_get(b, "engine_args"))
									 : am_strdup("[]");
	char *s_env = json_is_object(json_object_get(b, "env")) ? am_json_dump(json_object_get(b, "env")) : am_strdup("{}");
	char *s_loras = am_json_dump(loras);
	long long now = am_wall_ms();
	int dry = ctx->no_task;
	json_t *mrow = json_pack("{s:I,s:s,s:s?,s:s,s:O}", "id", (json_int_t)mid, "name", req.model, "path",
				 json_string_value(json_object_get(model, "path")), "kind", kind, "facts", facts);
	if (dry) {
		/* nothing is written: the row the reconciler would read is built
		 * here, and a taken name is said as the insert would say it */
		long long taken = 0;
		am_store_int(ctx->srv->store, &taken, 0, "SELECT COUNT(*) FROM deployments WHERE name = ?", "s", name);
		if (taken) {
			json_decref(mrow);
			free(s_pinned);
			free(s_args);
			free(s_env);
			free(s_loras);
			am_err_set(err, AM_E_CONFLICT, "name", "a deployment named '%s' already exists", name);
			goto out;
		}
		json_t *dep = json_pack("{s:I,s:s,s:I,s:s,s:I,s:I,s:s?,s:s,s:I,s:I,s:s,s:s,s:I,s:s,s:s,s:s}", "id", (json_int_t)0,
					"name", name, "model_id", (json_int_t)mid, "engine", engine, "replicas", (json_int_t)replicas,
					"gpus_per_replica", (json_int_t)gpr, "pinned_gpus", s_pinned, "placement", placement,
					"max_model_len", (json_int_t)(mml ? mml : p.max_model_len), "max_num_seqs", (json_int_t)mns,
					"engine_args", s_args, "env", s_env, "trust_remote_code", (json_int_t)trust, "lora_modules", s_loras,
					"desired", start ? "running" : "stopped", "state", "pending");
		free(s_pinned);
		free(s_args);
		free(s_env);
		free(s_loras);
		if (!mns)
			json_object_set_new(dep, "max_num_seqs", json_null());
		json_t *cmd = NULL;
		/* the command the first replica would run, with the planned placement */
		json_t *idx = json_array();
		for (int k = 0; k < req.tp; k++)
			json_array_append_new(idx, json_integer(cap.gpus[p.choice[k]].index));
		char *sidx = am_json_dump(idx);
		json_t *inst = json_pack("{s:i,s:s,s:s,s:f,s:s?}", "port", 0, "api_key", "ame_example", "gpu_indices", sidx,
					 "mem_fraction", p.fraction, "dtype", p.dtype);
		free(sidx);
		json_decref(idx);
		struct am_argv argv = { 0 }, env = { 0 };
		if (am_deploy_command(ctx->srv->deploy, dep, mrow, inst, &argv, &env, err) == 0) {
			const char *secrets[66];
			env_secrets(json_object_get(b, "env"), secrets, 66);
			json_t *aj = am_argv_json(&argv, 0);
			mask_strings(aj, secrets);
			cmd = json_pack("{s:o,s:o}", "argv", aj, "env", am_argv_json(&env, 1));
		}
		am_argv_free(&argv);
		am_argv_free(&env);
		json_decref(inst);
		ctx->no_task = 1;
		ctx->resp = json_pack("{s:b,s:o,s:o}", "dry_run", 1, "plan", plan_json(&p, cap.gpus, req.tp, req.replicas), "command",
				      cmd ? cmd : json_null());
		json_decref(dep);
		json_decref(mrow);
		rc = cmd ? 0 : -1;
		goto out;
	}
	int ins = am_store_exec(ctx->srv->store,
				"INSERT INTO deployments(name, model_id, engine, replicas, gpus_per_replica, pinned_gpus, placement,"
				" max_model_len, max_num_seqs, gpu_memory_utilization, engine_args, env, trust_remote_code,"
				" lora_modules, desired, state, created_by, created_at, updated_at)"
				" VALUES(?, ?, ?, ?, ?, ?, ?, NULLIF(?, 0), NULLIF(?, 0), NULLIF(?, 0), ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
				"sisiissiidssisssii", name, mid, engine, replicas, gpr, s_pinned, placement,
				(long long)(mml ? mml : p.max_model_len), mns, frac, s_args, s_env, (long long)trust, s_loras,
				start ? "running" : "stopped", ctx->who.username, now, now);
	/* the JSON columns re-read as the reconciler sees them (NULLIF on a
	 * double needs care: store frac 0 as NULL explicitly) */
	free(s_pinned);
	free(s_args);
	free(s_env);
	free(s_loras);
	if (ins == 0 && json_is_array(json_object_get(b, "aliases"))) {
		char *al = am_json_dump(json_object_get(b, "aliases"));
		am_store_exec(ctx->srv->store, "UPDATE deployments SET aliases = ? WHERE id = ?", "si", al,
			      am_store_last_id(ctx->srv->store));
		free(al);
	}
	if (ins == AM_STORE_CONSTRAINT) {
		json_decref(mrow);
		am_err_set(err, AM_E_CONFLICT, "name", "a deployment named '%s' already exists", name);
		goto out;
	}
	if (ins != 0) {
		json_decref(mrow);
		am_err_set(err, AM_E_INTERNAL, "", "could not record the deployment");
		goto out;
	}
	long long id = am_store_last_id(ctx->srv->store);
	am_store_exec(ctx->srv->store, "UPDATE deployments SET owner_id = ? WHERE id = ?", "ii", ctx->who.user_id, id);
	if (frac == 0)
		am_store_exec(ctx->srv->store, "UPDATE deployments SET gpu_memory_utilization = NULL WHERE id = ?", "i", id);
	json_t *dep = NULL;
	am_store_row(ctx->srv->store, &dep, "SELECT * FROM deployments WHERE id = ?", "i", id);
	char why[1024];
	for (int r = 0; start && r < (int)replicas; r++)
		if (am_deploy_place(ctx->srv->deploy, dep, mrow, r, why, sizeof why) != 0) {
			json_decref(dep);
			json_decref(mrow);
			am_err_set(err, AM_E_CONFLICT, "replicas", "%s", why);
			goto out;
		}
	json_decref(dep);
	json_decref(mrow);
	am_fmt(ctx->target, sizeof ctx->target, "deployment:%lld", id);
	if (start) {
		ctx->task_id = am_task_create(ctx->srv->store, "deployment.create", ctx->target, ctx->who.username, AM_TASK_RUNNING,
					      "starting");
		am_store_exec(ctx->srv->store, "UPDATE deployments SET task_id = ? WHERE id = ?", "ii", ctx->task_id, id);
	}
	am_deploy_touch(ctx->srv->deploy, id);
	ctx->resp = dep_json(ctx->srv, id);
	json_object_set_new(ctx->resp, "plan", plan_json(&p, cap.gpus, req.tp, req.replicas));
	ctx->status = 201;
	rc = 0;
out:
	json_decref(model);
	json_decref(loras);
	json_decref(pinned);
	am_capacity_free(&cap);
	return rc;
}

static json_t *dep_row(void *srv, long long id) /* for am_api_render_ids */
{
	return dep_json(srv, id);
}

static int list(struct am_ctx *ctx, struct am_err *err)
{
	long long limit, offset, after, total = -1;
	int count;
	if (am_api_page(ctx, &limit, &offset, err) != 0 || am_api_keyset(ctx, &after, &count, err) != 0)
		return -1;
	long long admin = ctx->who.admin, me = ctx->who.user_id;
	json_t *ids = NULL;
	if (am_store_rows(ctx->srv->store, &ids, "SELECT id FROM deployments WHERE (?1 OR owner_id = ?2) AND id > ?5 ORDER BY id"
			  " LIMIT ?3 OFFSET ?4", "iiiii", admin, me, limit, offset, after) != 0 ||
	    (count && am_store_int(ctx->srv->store, &total, 0, "SELECT COUNT(*) FROM deployments WHERE ?1 OR owner_id = ?2", "ii",
				   admin, me) != 0)) {
		json_decref(ids);
		return am_err_set(err, AM_E_INTERNAL, "", "could not read deployments");
	}
	long long next = am_api_next(ids, limit);
	ctx->resp = am_api_list_keyset(am_api_render_ids(ids, dep_row, ctx->srv), total, limit, offset, next);
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

/* Records a task the reconciler will finish, replacing any still open. */
static void track(struct am_ctx *ctx, long long id, const char *kind, const char *msg)
{
	long long old = 0;
	am_store_int(ctx->srv->store, &old, 0, "SELECT task_id FROM deployments WHERE id = ?", "i", id);
	if (old)
		am_task_update(ctx->srv->store, old, AM_TASK_CANCELLED, -1, "superseded by a newer action");
	ctx->task_id = am_task_create(ctx->srv->store, kind, ctx->target, ctx->who.username, AM_TASK_RUNNING, msg);
	am_store_exec(ctx->srv->store, "UPDATE deployments SET task_id = ?, updated_at = ? WHERE id = ?", "iii", ctx->task_id,
		      am_wall_ms(), id);
	am_deploy_touch(ctx->srv->deploy, id);
}

static int action(struct am_ctx *ctx, struct am_err *err, const char *what)
{
	long long id;
	if (dep_param(ctx, &id, err) != 0)
		return -1;
	char state[32] = "";
	json_t *row = NULL;
	am_store_row(ctx->srv->store, &row, "SELECT state FROM deployments WHERE id = ?", "i", id);
	am_strlcpy(state, json_string_value(json_object_get(row, "state")) ?: "", sizeof state);
	json_decref(row);
	if (!strcmp(state, "deleting"))
		return am_err_set(err, AM_E_CONFLICT, "", "the deployment is being deleted");
	char kind[48];
	am_fmt(kind, sizeof kind, "deployment.%s", what);
	if (!strcmp(what, "stop")) {
		am_store_exec(ctx->srv->store, "UPDATE deployments SET desired = 'stopped' WHERE id = ?", "i", id);
		track(ctx, id, kind, "stopping");
	} else if (!strcmp(what, "start")) {
		am_store_exec(ctx->srv->store, "UPDATE deployments SET desired = 'running' WHERE id = ?", "i", id);
		am_store_exec(ctx->srv->store, "DELETE FROM instances WHERE deployment_id = ? AND state = 'failed'", "i", id);
		track(ctx, id, kind, "starting");
	} else if (!strcmp(what, "restart")) {
		am_store_exec(ctx->srv->store, "UPDATE deployments SET desired = 'running' WHERE id = ?", "i", id);
		am_deploy_restart(ctx->srv->deploy, id);
		track(ctx, id, kind, "restarting");
	} else { /* delete */
		am_store_exec(ctx->srv->store, "UPDATE deployments SET desired = 'stopped', state = 'deleting' WHERE id = ?", "i", id);
		track(ctx, id, kind, "deleting");
	}
	ctx->resp = dep_json(ctx->srv, id);
	ctx->status = 202;
	return 0;
}

static int start(struct am_ctx *ctx, struct am_err *err) { return action(ctx, err, "start"); }
static int stop(struct am_ctx *ctx, struct am_err *err) { return action(ctx, err, "stop"); }
static int restart(struct am_ctx *ctx, struct am_err *err) { return action(ctx, err, "restart"); }
static int delete(struct am_ctx *ctx, struct am_err *err) { return action(ctx, err, "delete"); }

static int update(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "replicas", "engine_args", "env", "max_num_seqs", "aliases", "lora_modules", NULL };
	long long id, replicas = 0, mns = -1;
	if (dep_param(ctx, &id, err) != 0 || am_json_only(ctx->body, fields, err) != 0 ||
	    check_aliases(ctx, json_object_get(ctx->body, "aliases"), NULL, id, err) != 0 ||
	    am_json_get_int(ctx->body, "replicas", AM_JSON_OPTIONAL, 1, 64, &replicas, err) != 0 ||
	    am_json_get_int(ctx->body, "max_num_seqs", AM_JSON_OPTIONAL, 1, 100000, &mns, err) != 0)
		return -1;
	json_t *dep = NULL;
	am_store_row(ctx->srv->store, &dep, "SELECT * FROM deployments WHERE id = ?", "i", id);
	const struct am_engine_def *e = am_engine_find(json_string_value(json_object_get(dep, "engine")) ?: "");
	if (e && check_launch(ctx, e, json_object_get(ctx->body, "env"), json_object_get(ctx->body, "engine_args"), err) != 0) {
		json_decref(dep);
		return -1;
	}
	int restart_needed = 0;
	json_t *lm = json_object_get(ctx->body, "lora_modules");
	if (lm) { /* adapters served on this base: the engine restarts with them */
		json_t *loras = resolve_loras(ctx, lm, json_integer_value(json_object_get(dep, "model_id")), err);
		const char *eng = json_string_value(json_object_get(dep, "engine")) ?: "";
		if (loras && json_array_size(loras) && strcmp(eng, "vllm") && strcmp(eng, "aimaas-sim")) {
			json_decref(loras);
			loras = NULL;
			am_err_set(err, AM_E_INVALID, "lora_modules", "LoRA adapters are served by vLLM");
		}
		if (!loras || check_names(ctx, lm, "lora_modules", "name", json_string_value(json_object_get(dep, "name")), id,
					  err) != 0) {
			json_decref(loras);
			json_decref(dep);
			return -1;
		}
		char *s = am_json_dump(loras);
		am_store_exec(ctx->srv->store, "UPDATE deployments SET lora_modules = ? WHERE id = ?", "si", s, id);
		free(s);
		json_decref(loras);
		restart_needed = 1;
	}
	if (json_is_array(json_object_get(ctx->body, "aliases"))) { /* the gateway picks them up; no restart */
		char *s = am_json_dump(json_object_get(ctx->body, "aliases"));
		am_store_exec(ctx->srv->store, "UPDATE deployments SET aliases = ? WHERE id = ?", "si", s, id);
		free(s);
	}
	if (json_is_array(json_object_get(ctx->body, "engine_args"))) {
		/* a secret flag's value reads masked from GET: sent back masked, the stored one stays */
		json_t *args = json_object_get(ctx->body, "engine_args");
		json_t *old = json_loads(json_string_value(json_object_get(dep, "engine_args")) ?: "[]", 0, NULL);
		size_t ai;
		json_t *av;
		json_array_foreach(args, ai, av) {
			const char *nv = json_string_value(av), *ov = json_string_value(json_array_get(old, ai));
			size_t ml = strlen(MASK), nl = nv ? strlen(nv) : 0;
			if (nv && ov && nl >= ml && !strcmp(nv + nl - ml, MASK) && !strncmp(nv, ov, nl - ml))
				json_array_set_new(args, ai, json_string(ov));
		}
		json_decref(old);
		char *s = am_json_dump(json_object_get(ctx->body, "engine_args"));
		am_store_exec(ctx->srv->store, "UPDATE deployments SET engine_args = ? WHERE id = ?", "si", s, id);
		free(s);
		restart_needed = 1;
	}
	if (json_is_object(json_object_get(ctx->body, "env"))) {
		/* a secret's value comes back masked from GET: "********" keeps what is stored */
		json_t *env = json_object_get(ctx->body, "env");
		json_t *old = json_loads(json_string_value(json_object_get(dep, "env")) ?: "{}", 0, NULL);
		const char *k;
		json_t *v;
		json_object_foreach(env, k, v)
			if (!strcmp(json_string_value(v), MASK) && json_is_string(json_object_get(old, k)))
				json_object_set(env, k, json_object_get(old, k));
		json_decref(old);
		char *s = am_json_dump(env);
		am_store_exec(ctx->srv->store, "UPDATE deployments SET env = ? WHERE id = ?", "si", s, id);
		free(s);
		restart_needed = 1;
	}
	if (mns > 0) {
		am_store_exec(ctx->srv->store, "UPDATE deployments SET max_num_seqs = ? WHERE id = ?", "ii", mns, id);
		restart_needed = 1;
	}
	long long cur = json_integer_value(json_object_get(dep, "replicas"));
	if (replicas && replicas != cur) {
		am_store_exec(ctx->srv->store, "UPDATE deployments SET replicas = ? WHERE id = ?", "ii", replicas, id);
		if (replicas > cur && !strcmp(json_string_value(json_object_get(dep, "desired")), "running")) {
			/* the new replicas must fit now, or the change is refused */
			json_object_set_new(dep, "replicas", json_integer(replicas));
			json_t *model = am_model_json(ctx->srv->store, json_integer_value(json_object_get(dep, "model_id")));
			char why[1024];
			int bad = 0;
			for (long long r = cur; r < replicas && !bad; r++)
				bad = am_deploy_place(ctx->srv->deploy, dep, model, (int)r, why, sizeof why) != 0;
			json_decref(model);
			if (bad) {
				json_decref(dep);
				return am_err_set(err, AM_E_CONFLICT, "replicas", "%s", why);
			}
		}
	}
	json_decref(dep);
	if (restart_needed)
		am_deploy_restart(ctx->srv->deploy, id);
	track(ctx, id, "deployment.update", restart_needed ? "restarting with the new settings" : "scaling");
	ctx->resp = dep_json(ctx->srv, id);
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
		json_t *ea = engine_allow(ctx->srv, all[i].name, "env_allow"), *aa = engine_allow(ctx->srv, all[i].name, "args_allow");
		/* where the program is, as the engine's start will find it (null: not installed) */
		char found[4096];
		const char *prog = bin[0] ? bin : json_string_value(json_array_get(argv, 0)); /* custom: its template's */
		int ok = prog && am_path_which(prog, found, sizeof found) == 0;
		json_array_append_new(items, json_pack("{s:s,s:s,s:s,s:s?,s:s,s:b,s:o,s:o,s:o,s:o}", "name", all[i].name, "title",
						       all[i].title, "binary", bin, "found", ok ? found : NULL, "health_path",
						       all[i].health_path, "gguf", all[i].wants_gguf, "kinds", kinds, "argv",
						       argv ? argv : json_null(), "env_allow", ea ? ea : json_array(), "args_allow",
						       aa ? aa : json_array()));
	}
	ctx->resp = am_api_list(items, (long long)n, 100, 0);
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
		if (!ok)
			return am_err_set(err, AM_E_INVALID, field, "%s[%zu] must be %s", field, i,
					  !strcmp(field, "env_allow") ? "a variable name (A-Z, 0-9, '_'), or a prefix ending in '*'"
								      : "a flag such as --chat-template");
	}
	*out = am_json_dump(v);
	return 0;
}

static int engine_update(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "binary", "argv", "env_allow", "args_allow", NULL };
	const char *name = am_api_param(ctx, "name");
	const struct am_engine_def *e = am_engine_find(name);
	if (!e)
		return am_err_set(err, AM_E_NOT_FOUND, "", "no engine '%.40s'", name);
	am_fmt(ctx->target, sizeof ctx->target, "engine:%s", name);
	const char *bin = NULL;
	if (am_json_only(ctx->body, fields, err) != 0 ||
	    am_json_get_str(ctx->body, "binary", AM_JSON_OPTIONAL, 0, 4000, &bin, err) != 0)
		return -1;
	if (bin && *bin && bin[0] != '/' && strchr(bin, '/'))
		return am_err_set(err, AM_E_INVALID, "binary", "'binary' must be an absolute path or a program name on PATH");
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
	int rc = am_store_exec(ctx->srv->store,
			       "INSERT INTO engine_settings(name, binary, argv, env_allow, args_allow, updated_at)"
			       " VALUES(?1, NULLIF(?2, ''), ?3, ?6, ?7, ?4)"
			       " ON CONFLICT(name) DO UPDATE SET binary = CASE WHEN ?5 THEN NULLIF(excluded.binary, '') ELSE binary END,"
			       " argv = COALESCE(excluded.argv, argv), env_allow = COALESCE(excluded.env_allow, env_allow),"
			       " args_allow = COALESCE(excluded.args_allow, args_allow), updated_at = excluded.updated_at",
			       "sssiiss", name, bin ? bin : "", s_argv, am_wall_ms(), (long long)(bin != NULL), s_ea, s_aa);
	free(s_argv);
	free(s_ea);
	free(s_aa);
	if (rc != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not save the engine settings");
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
