/* am_deploy_verbs: the deploy module's verbs for the API (am_deploy.h):
 * create (and its dry run), update, and the actions that set what a
 * deployment should be (running, stopped, restarted, deleted). They own
 * the deployments table's writes outside the reconciler; the reconciler
 * (am_deploy.c) acts on what they record. */
#include "am_deploy.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "../am_server.h"
#include "../base/am_buf.h"
#include "../base/am_json.h"
#include "../base/am_mem.h"
#include "../base/am_msg.h"
#include "../base/am_path.h"
#include "../base/am_time.h"
#include "../gpu/am_smi.h"
#include "../model/am_model.h"
#include "../sched/am_capacity_db.h"
#include "../store/am_store.h"
#include "../task/am_task.h"
#include "deploy_internal.h"

#define MASK AM_ENGINE_MASK

/* The transaction a verb writes in: the caller's, or its own. */
static int tx_begin(struct am_store *st, int *own)
{
	*own = !am_store_in_tx(st);
	return *own ? am_store_begin(st) : 0;
}

static int tx_end(struct am_store *st, int own, int rc)
{
	if (!own)
		return rc;
	if (rc == 0 && am_store_commit(st) == 0)
		return 0;
	am_store_rollback(st);
	return -1;
}

static int served_name_ok(const char *n)
{
	size_t l = n ? strlen(n) : 0;
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

/* Names (aliases, or adapters' names), unique across every other
 * deployment's name, aliases and adapters, and not the deployment's own. */
static int check_names(struct am_store *st, const char *const *names, int n, const char *field, const char *own, long long self,
		       struct am_err *err)
{
	if (!n)
		return 0;
	json_t *rows = NULL;
	am_store_rows(st, &rows, "SELECT id, name, aliases, lora_modules FROM deployments WHERE id <> ?", "i", self);
	int rc = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		const char *who = NULL;
		if (!served_name_ok(names[i]) || (own && !strcmp(names[i], own)))
			rc = am_err_set(err, AM_E_INVALID, field, "%s[%d] must be a name (letters, digits, . _ - : /) other than the deployment's",
					field, i);
		else if (name_taken(rows, names[i], &who))
			rc = am_err_set(err, AM_E_CONFLICT, field, "'%s' already names deployment '%s'", names[i], who);
	}
	json_decref(rows);
	return rc;
}

json_t *am_deploy_engine_allow(struct am_deploy *d, const char *engine, const char *col)
{
	struct am_store *st = am__deploy_server(d)->store;
	json_t *row = NULL;
	if (!strcmp(col, "env_allow"))
		am_store_row(st, &row, "SELECT env_allow AS v FROM engine_settings WHERE name = ?", "s", engine);
	else
		am_store_row(st, &row, "SELECT args_allow AS v FROM engine_settings WHERE name = ?", "s", engine);
	const char *v = json_string_value(json_object_get(row, "v"));
	json_t *out = v ? json_loads(v, 0, NULL) : NULL;
	json_decref(row);
	return out;
}

int am_deploy_engine_set(struct am_deploy *d, const char *engine, const char *binary, const char *argv,
			 const char *env_allow, const char *args_allow, const char *image, struct am_err *err)
{
	int rc = am_store_exec(am__deploy_server(d)->store,
			       "INSERT INTO engine_settings(name, binary, argv, env_allow, args_allow, updated_at, image)"
			       " VALUES(?1, NULLIF(?2, ''), ?3, ?6, ?7, ?4, NULLIF(?8, ''))"
			       " ON CONFLICT(name) DO UPDATE SET binary = CASE WHEN ?5 THEN NULLIF(excluded.binary, '') ELSE binary END,"
			       " argv = COALESCE(excluded.argv, argv), env_allow = COALESCE(excluded.env_allow, env_allow),"
			       " args_allow = COALESCE(excluded.args_allow, args_allow), updated_at = excluded.updated_at,"
			       " image = CASE WHEN ?9 THEN NULLIF(?8, '') ELSE image END",
			       "sssiisssi", engine, binary ? binary : "", argv, am_wall_ms(), (long long)(binary != NULL), env_allow,
			       args_allow, image ? image : "", (long long)(image != NULL));
	if (rc != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not save the engine settings");
	return 0;
}

void am_deploy_program_setting(struct am_deploy *d, const char *name, char *out, size_t size)
{
	json_t *row = NULL;
	am_store_row(am__deploy_server(d)->store, &row, "SELECT binary FROM engine_settings WHERE name = ?", "s", name);
	am_strlcpy(out, json_string_value(json_object_get(row, "binary")) ?: "", size);
	json_decref(row);
}

#define PROBE_TTL_NS (30ull * 1000000000ull)
#define PROBE_TIMEOUT_MS 5000

/* Whether python (a resolved path) imports module: run it, once per
 * PROBE_TTL_NS, with a find_spec that does not import the package (SGLang's
 * import pulls in torch and takes seconds). */
static int imports(struct am_deploy *d, const char *python, const char *module)
{
	struct am__deploy_probe *p = am__deploy_probes(d), *slot = &p[0];
	uint64_t now = am_now_ns();
	for (int i = 0; i < AM__DEPLOY_PROBES; i++) {
		if (p[i].at_ns && now - p[i].at_ns < PROBE_TTL_NS && !strcmp(p[i].prog, python) && !strcmp(p[i].module, module))
			return p[i].ok;
		if (p[i].at_ns < slot->at_ns)
			slot = &p[i]; /* the oldest (or an empty) slot takes the new answer */
	}
	char code[200];
	am_fmt(code, sizeof code, "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('%s') else 3)", module);
	char *argv[] = { (char *)python, (char *)"-c", code, NULL };
	char *out = NULL;
	int ok = am_smi_run(argv, &out, 1 << 16, PROBE_TIMEOUT_MS) == 0;
	free(out);
	am_strlcpy(slot->prog, python, sizeof slot->prog);
	am_strlcpy(slot->module, module, sizeof slot->module);
	slot->ok = ok;
	slot->at_ns = am_now_ns();
	return ok;
}

int am_deploy_program_found(struct am_deploy *d, const char *prog, const char *py_module, char *out, size_t size,
			    struct am_err *err)
{
	char path[PATH_MAX];
	if (!prog || !*prog)
		return am_err_set(err, AM_E_NOT_FOUND, "binary", "the engine has no program, set it on the Engines page");
	if (am_path_which(prog, path, sizeof path) != 0)
		return strchr(prog, '/')
			       ? am_err_set(err, AM_E_NOT_FOUND, "binary",
					    "engine program '%s' not found or not executable, set it on the Engines page", prog)
			       : am_err_set(err, AM_E_NOT_FOUND, "binary",
					    "engine program '%s' not found on PATH, set it on the Engines page", prog);
	if (py_module && !imports(d, path, py_module))
		return am_err_set(err, AM_E_NOT_FOUND, "binary",
				  "engine program '%s' cannot import the Python module '%s', install it or set another Python on the Engines page",
				  prog, py_module);
	am_strlcpy(out, path, size);
	return 0;
}

/* env and engine_args as docs/api.md says a deployment may hold them. */
static int check_launch(struct am_deploy *d, const struct am_engine_def *e, json_t *env, json_t *args, struct am_err *err)
{
	json_t *ea = am_deploy_engine_allow(d, e->name, "env_allow"), *aa = am_deploy_engine_allow(d, e->name, "args_allow");
	int rc = am_engine_check_env(env, ea, err) != 0 || am_engine_check_args(e, args, aa, err) != 0 ? -1 : 0;
	json_decref(ea);
	json_decref(aa);
	return rc;
}

/* LoRA modules as stored: [{"name", "path", "model_id"}] of registered
 * adapters trained on base_id (or on no recorded base), served by vLLM
 * (and the simulator). NULL with err when one is not. */
static json_t *resolve_loras(struct am_store *st, const struct am_deploy_lora *l, int n, long long base_id,
			     const char *engine, const char *own, long long self, struct am_err *err)
{
	json_t *out = json_array();
	const char *names[AM_DEPLOY_MAX_NAMES];
	for (int i = 0; i < n; i++) {
		json_t *am = NULL;
		if (!served_name_ok(l[i].name) || !l[i].model_id || !(am = am_model_json(st, l[i].model_id)) ||
		    strcmp(json_string_value(json_object_get(am, "kind")) ?: "", "adapter")) {
			json_decref(am);
			json_decref(out);
			am_err_set(err, AM_E_INVALID, "lora_modules",
				   "lora_modules[%d] needs a 'name' and 'model' naming a registered LoRA adapter", i);
			return NULL;
		}
		long long b = json_integer_value(json_object_get(am, "base_model_id"));
		if (b && b != base_id) {
			json_decref(am);
			json_decref(out);
			am_err_set(err, AM_E_INVALID, "lora_modules", "adapter '%s' was trained on another base model",
				   l[i].model_ref ? l[i].model_ref : "?");
			return NULL;
		}
		json_array_append_new(out, json_pack("{s:s,s:s,s:I}", "name", l[i].name, "path",
						     json_string_value(json_object_get(am, "path")) ?: "", "model_id",
						     (json_int_t)l[i].model_id));
		json_decref(am);
		names[i] = l[i].name;
	}
	if (n && strcmp(engine, "vllm") && strcmp(engine, "aimaas-sim")) {
		json_decref(out);
		am_err_set(err, AM_E_INVALID, "lora_modules", "LoRA adapters are served by vLLM");
		return NULL;
	}
	if (check_names(st, names, n, "lora_modules", own, self, err) != 0) {
		json_decref(out);
		return NULL;
	}
	return out;
}

static json_t *names_json(const char *const *names, int n)
{
	json_t *a = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(a, json_string(names[i]));
	return a;
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
	return json_pack("{s:I,s:I,s:I,s:I,s:i,s:f,s:s?,s:f,s:o,s:s?}", "weights_bytes_per_gpu", (json_int_t)p->weights,
			 "kv_cache_bytes_per_gpu", (json_int_t)p->kv, "overhead_bytes_per_gpu", (json_int_t)p->overhead,
			 "need_bytes_per_gpu", (json_int_t)p->need, "max_model_len", p->max_model_len, "gpu_memory_utilization",
			 p->fraction, "dtype", p->dtype, "full_length_sequences", round(p->concurrency * 10) / 10, "replicas", reps,
			 "note", p->note[0] ? p->note : NULL);
}

long long am__deploy_track(struct am_deploy *d, long long id, const char *kind, const char *actor, const char *msg)
{
	struct am_store *st = am__deploy_server(d)->store;
	long long old = 0;
	am_store_int(st, &old, 0, "SELECT task_id FROM deployments WHERE id = ?", "i", id);
	if (old)
		am_task_update(st, old, AM_TASK_CANCELLED, -1, AM_MSG_T("superseded by a newer action"));
	char target[48];
	am_fmt(target, sizeof target, "deployment:%lld", id);
	long long task = am_task_create(st, kind, target, actor, AM_TASK_RUNNING, msg);
	am_store_exec(st, "UPDATE deployments SET task_id = ?, updated_at = ? WHERE id = ?", "iii", task, am_wall_ms(), id);
	am_deploy_touch(d, id);
	return task;
}

/* ---- create ---- */

/* What create decided: the spec with its defaults filled in, and the plan. */
struct planned {
	const char *engine, *placement;
	long long replicas, gpr;
	json_t *pinned;            /* the pinned GPUs' ids, or NULL */
	json_t *loras;             /* as stored */
	json_t *model;             /* the row the reconciler reads */
	struct am_plan plan;
	struct am_capacity cap;
	int tp;
};

/* The deployments row's JSON columns as stored. */
static void json_cols(const struct am_deploy_spec *s, const struct planned *pl, char **pinned, char **args, char **env,
		      char **loras)
{
	*pinned = pl->pinned ? am_json_dump(pl->pinned) : NULL;
	*args = json_is_array(s->engine_args) ? am_json_dump(s->engine_args) : am_strdup("[]");
	*env = json_is_object(s->env) ? am_json_dump(s->env) : am_strdup("{}");
	*loras = am_json_dump(pl->loras);
}

/* The first replica's command with the planned placement, from the row the
 * reconciler would read (built here: nothing is written). */
static int dry_command(struct am_deploy *d, const struct am_deploy_spec *s, const struct planned *pl,
		       struct am_deploy_created *out, struct am_err *err)
{
	const struct am_plan *p = &pl->plan;
	char *s_pinned, *s_args, *s_env, *s_loras;
	json_cols(s, pl, &s_pinned, &s_args, &s_env, &s_loras);
	json_t *dep = json_pack("{s:I,s:s,s:I,s:s,s:I,s:I,s:s?,s:s,s:I,s:I,s:s,s:s,s:I,s:s,s:s,s:s}", "id", (json_int_t)0,
				"name", s->name, "model_id", (json_int_t)s->model_id, "engine", pl->engine, "replicas",
				(json_int_t)pl->replicas, "gpus_per_replica", (json_int_t)pl->gpr, "pinned_gpus", s_pinned,
				"placement", pl->placement, "max_model_len",
				(json_int_t)(s->max_model_len ? s->max_model_len : p->max_model_len), "max_num_seqs",
				(json_int_t)s->max_num_seqs, "engine_args", s_args, "env", s_env, "trust_remote_code",
				(json_int_t)(s->trust_remote_code != 0), "lora_modules", s_loras, "desired",
				s->start ? "running" : "stopped", "state", "pending");
	free(s_pinned);
	free(s_args);
	free(s_env);
	free(s_loras);
	if (!s->max_num_seqs)
		json_object_set_new(dep, "max_num_seqs", json_null());
	json_t *idx = json_array();
	for (int k = 0; k < pl->tp; k++)
		json_array_append_new(idx, json_integer(pl->cap.gpus[p->choice[k]].index));
	char *sidx = am_json_dump(idx);
	json_t *inst = json_pack("{s:i,s:s,s:s,s:f,s:s?}", "port", 0, "api_key", "ame_example", "gpu_indices", sidx,
				 "mem_fraction", p->fraction, "dtype", p->dtype);
	free(sidx);
	json_decref(idx);
	int rc = am_deploy_command(d, dep, pl->model, inst, &out->argv, &out->env, err);
	json_decref(inst);
	json_decref(dep);
	return rc;
}

/* Records the deployment and places its replicas (a start). */
static int record(struct am_deploy *d, const struct am_deploy_spec *s, const struct am_deploy_actor *who,
		  const struct planned *pl, int idle, struct am_deploy_created *out, struct am_err *err)
{
	struct am_store *st = am__deploy_server(d)->store;
	char *s_pinned, *s_args, *s_env, *s_loras;
	json_cols(s, pl, &s_pinned, &s_args, &s_env, &s_loras);
	json_t *al = names_json(s->aliases, s->naliases);
	char *s_aliases = am_json_dump(al);
	json_decref(al);
	long long now = am_wall_ms();
	int ins = am_store_exec(st,
				"INSERT INTO deployments(name, model_id, engine, replicas, gpus_per_replica, pinned_gpus, placement,"
				" max_model_len, max_num_seqs, gpu_memory_utilization, engine_args, env, trust_remote_code,"
				" lora_modules, aliases, desired, state, owner_id, created_by, created_at, updated_at)"
				" VALUES(?, ?, ?, ?, ?, ?, ?, NULLIF(?, 0), NULLIF(?, 0), CASE WHEN ? > 0 THEN ?10 END, ?, ?, ?, ?,"
				" ?, ?, 'pending', ?, ?, ?, ?)",
				"sisiissiidssisssisii", s->name, s->model_id, pl->engine, pl->replicas, pl->gpr, s_pinned, pl->placement,
				(long long)(s->max_model_len ? s->max_model_len : pl->plan.max_model_len), (long long)s->max_num_seqs,
				s->gpu_memory_utilization, s_args, s_env, (long long)(s->trust_remote_code != 0), s_loras,
				s_aliases, s->start ? "running" : "stopped", who->user_id, who->username, now, now);
	free(s_pinned);
	free(s_args);
	free(s_env);
	free(s_loras);
	free(s_aliases);
	if (ins == AM_STORE_CONSTRAINT)
		return am_err_set(err, AM_E_CONFLICT, "name", "a deployment named '%s' already exists", s->name);
	if (ins != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not record the deployment");
	long long id = am_store_last_id(st);
	if (am_store_exec(st, "UPDATE deployments SET idle_after_s = ?, evictable = ?, priority = ? WHERE id = ?", "iiii",
			  (long long)s->idle_after_s, (long long)(s->evictable != 0), (long long)s->priority, id) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not record the deployment");
	if (idle) { /* no room now: its first request starts it */
		am_store_exec(st, "UPDATE deployments SET idle_at = ?1, idle_reason = ?2, state = 'idle', reason = ?2 WHERE id = ?3",
			      "isi", now, AM_MSG_T("no room on the GPUs now: starts on its first request"), id);
		out->id = id;
		return 0;
	}
	json_t *dep = NULL;
	am_store_row(st, &dep, "SELECT * FROM deployments WHERE id = ?", "i", id);
	char why[1024];
	for (int r = 0; s->start && r < (int)pl->replicas; r++)
		if (am_deploy_place(d, dep, pl->model, r, why, sizeof why) != 0) {
			json_decref(dep);
			return am_err_set(err, AM_E_CONFLICT, "replicas", "%s", why);
		}
	json_decref(dep);
	if (s->start) {
		char target[48];
		am_fmt(target, sizeof target, "deployment:%lld", id);
		out->task_id = am_task_create(st, "deployment.create", target, who->username, AM_TASK_RUNNING, AM_MSG_T("starting"));
		am_store_exec(st, "UPDATE deployments SET task_id = ? WHERE id = ?", "ii", out->task_id, id);
	}
	out->id = id;
	return 0;
}

/* What belongs to a deployment before any planning: its names, engine,
 * launch settings, model (ready, served by the engine, code it may run),
 * adapters, and the owner's quota. pl gets the defaults and the adapters;
 * *model the model's row (owned). 0, or -1 with err. */
static int check_spec(struct am_deploy *d, const struct am_deploy_spec *s, const struct am_deploy_actor *who,
		      struct planned *pl, json_t **model, struct am_err *err)
{
	struct am_store *st = am__deploy_server(d)->store;
	if (!served_name_ok(s->name))
		return am_err_set(err, AM_E_INVALID, "name",
				  "'name' (the model name clients send) must be 1-128 of letters, digits and . _ - : /");
	if (check_names(st, s->aliases, s->naliases, "aliases", s->name, 0, err) != 0)
		return -1;
	if (strcmp(pl->placement, "binpack") && strcmp(pl->placement, "spread"))
		return am_err_set(err, AM_E_INVALID, "placement", "'placement' must be 'binpack' or 'spread'");
	if (s->evictable && s->idle_after_s <= 0)
		return am_err_set(err, AM_E_INVALID, "evictable",
				  "only a deployment that scales to zero (idle_after_s) may be evicted for another's start");
	double frac = s->gpu_memory_utilization;
	if (frac != 0 && (frac < 0.05 || frac > 0.99))
		return am_err_set(err, AM_E_INVALID, "gpu_memory_utilization",
				  "'gpu_memory_utilization' must be a number between 0.05 and 0.99");
	const struct am_engine_def *e = am_engine_find(pl->engine);
	if (!e)
		return am_err_set(err, AM_E_INVALID, "engine", "unknown engine '%.40s' (vllm, sglang, llama.cpp, aimaas-sim, custom)",
				  pl->engine);
	if (check_launch(d, e, s->env, s->engine_args, err) != 0)
		return -1;
	const char *mref = s->model_ref ? s->model_ref : "";
	if (!s->model_id || !(*model = am_model_json(st, s->model_id)))
		return am_err_set(err, AM_E_INVALID, "model", "no model '%.100s' is registered", mref);
	const char *kind = json_string_value(json_object_get(*model, "kind")) ?: "llm";
	const char *state = json_string_value(json_object_get(*model, "state")) ?: "";
	json_t *facts = json_object_get(*model, "facts");
	if (strcmp(state, "ready"))
		return am_err_set(err, AM_E_CONFLICT, "model", "model '%s' is %s: it has no local files yet", mref, state);
	if (!strcmp(kind, "adapter"))
		return am_err_set(err, AM_E_INVALID, "model", "'%s' is a LoRA adapter: deploy its base model with lora_modules", mref);
	if (!am_engine_serves(e, kind))
		return am_err_set(err, AM_E_INVALID, "engine", "%s does not serve %s models", e->title, kind);
	int is_gguf = !strcmp(json_string_value(json_object_get(facts, "format")) ?: "", "gguf");
	if (e->wants_gguf && !is_gguf)
		return am_err_set(err, AM_E_INVALID, "engine", "%s needs a .gguf model; '%s' is %s", e->title, mref,
				  json_string_value(json_object_get(facts, "format")) ?: "not one");
	if (json_is_true(json_object_get(facts, "needs_remote_code"))) {
		if (!s->trust_remote_code)
			return am_err_set(err, AM_E_INVALID, "trust_remote_code",
					  "'%s' runs its own code (auto_map in config.json); set trust_remote_code: true to allow it",
					  mref);
		if (!who->admin)
			return am_err_set(err, AM_E_FORBIDDEN, "trust_remote_code", "only an admin may let a model run its own code");
	}
	if (!(pl->loras = resolve_loras(st, s->loras, s->nloras, s->model_id, pl->engine, s->name, 0, err)))
		return -1;
	long long mine = 0;
	am_store_int(st, &mine, 0, "SELECT COUNT(*) FROM deployments WHERE owner_id = ?", "i", who->user_id);
	if (!who->admin && mine >= 64) /* stopped ones too: rows cost nothing to make */
		return am_err_set(err, AM_E_CONFLICT, "", "you already have %lld deployments; delete some first", mine);
	long long dup = 0;
	am_store_int(st, &dup, 0, "SELECT COUNT(*) FROM deployments WHERE name = ?", "s", s->name);
	if (dup)
		return am_err_set(err, AM_E_CONFLICT, "name", "a deployment named '%s' already exists", s->name);
	return 0;
}

/* Plans the replicas on the GPUs as they are now (pinned ones when asked):
 * pl gets the GPUs per replica, the pinned ids, the plan and the model row
 * the reconciler reads. 0, or -1 with err. */
static int plan_spec(struct am_deploy *d, const struct am_deploy_spec *s, json_t *model, struct planned *pl,
		     struct am_err *err)
{
	am_capacity_free(&pl->cap);
	am_capacity_db_load(am__deploy_server(d), &pl->cap);
	int pin[AM_PLAN_MAX], npin = 0;
	if (s->gpus && !json_is_null(s->gpus)) {
		char perr[512];
		if (am_capacity_pin(&pl->cap, s->gpus, pin, AM_PLAN_MAX, &npin, perr, sizeof perr) != 0)
			return am_err_set(err, AM_E_INVALID, "gpus", "%s", perr);
		pl->pinned = json_array();
		for (int k = 0; k < npin; k++)
			json_array_append_new(pl->pinned, json_string(pl->cap.gpus[pin[k]].id));
		size_t np = json_array_size(pl->pinned);
		if (pl->gpr && (long long)np != pl->gpr * pl->replicas)
			return am_err_set(err, AM_E_INVALID, "gpus", "%zu pinned GPUs for %lld replica(s) of %lld GPU(s) each", np,
					  pl->replicas, pl->gpr);
		if (np % (size_t)pl->replicas)
			return am_err_set(err, AM_E_INVALID, "gpus", "%zu pinned GPUs do not split evenly over %lld replicas", np,
					  pl->replicas);
		pl->gpr = (long long)np / pl->replicas;
	}
	if (!pl->gpr)
		pl->gpr = 1;
	json_t *facts = json_object_get(model, "facts");
	struct am_plan_req req;
	memset(&req, 0, sizeof req);
	req.facts = facts;
	req.model = json_string_value(json_object_get(model, "name"));
	req.tp = (int)pl->gpr;
	req.replicas = (int)pl->replicas;
	req.max_model_len = s->max_model_len;
	req.mem_fraction = s->gpu_memory_utilization;
	req.spread = !strcmp(pl->placement, "spread");
	memcpy(req.pinned, pin, sizeof pin);
	req.npinned = npin;
	pl->tp = req.tp;
	am_planner_plan(pl->cap.gpus, pl->cap.n, &req, &pl->plan);
	if (!pl->plan.ok)
		return am_err_set_text(err, pl->plan.capacity ? AM_E_CONFLICT : AM_E_INVALID, pl->plan.field, pl->plan.reason,
					pl->plan.reason_zh);
	pl->model = json_pack("{s:I,s:s,s:s?,s:s,s:O}", "id", (json_int_t)s->model_id, "name", req.model, "path",
			      json_string_value(json_object_get(model, "path")), "kind",
			      json_string_value(json_object_get(model, "kind")) ?: "llm", "facts", facts);
	return 0;
}

int am_deploy_create(struct am_deploy *d, const struct am_deploy_spec *s, int dry_run, const struct am_deploy_actor *who,
		     struct am_deploy_created *out, struct am_err *err)
{
	struct am_store *st = am__deploy_server(d)->store;
	struct planned pl;
	memset(&pl, 0, sizeof pl);
	pl.engine = s->engine ? s->engine : "vllm";
	pl.placement = s->placement ? s->placement : "binpack";
	pl.replicas = s->replicas > 0 ? s->replicas : 1;
	pl.gpr = s->gpus_per_replica;
	am_capacity_init(&pl.cap, "");
	memset(out, 0, sizeof *out);
	json_t *model = NULL;
	int rc = -1, own = 0, in_tx = 0;
	if (check_spec(d, s, who, &pl, &model, err) != 0)
		goto out;
	/* the capacity read and the reservations land in one transaction, so
	 * two requests cannot take the same memory */
	if (!dry_run) {
		if (tx_begin(st, &own) != 0) {
			am_err_set(err, AM_E_INTERNAL, "", "the database is not available");
			goto out;
		}
		in_tx = 1;
	}
	int idle = 0;
	if (plan_spec(d, s, model, &pl, err) != 0) {
		/* one that scales to zero waits idle for room (or its first request's eviction) */
		if (dry_run || !s->start || s->idle_after_s <= 0 || err->code != AM_E_CONFLICT || !pl.plan.capacity)
			goto out;
		idle = 1;
		memset(err, 0, sizeof *err);
	}
	rc = dry_run ? dry_command(d, s, &pl, out, err) : record(d, s, who, &pl, idle, out, err);
	if (rc == 0 && !idle)
		out->plan = plan_json(&pl.plan, pl.cap.gpus, pl.tp, (int)pl.replicas);
out:
	if (in_tx && tx_end(st, own, rc) != 0 && rc == 0)
		rc = am_err_set(err, AM_E_INTERNAL, "", "could not commit the change");
	if (rc != 0)
		am_deploy_created_free(out);
	else if (!dry_run)
		am_deploy_touch(d, out->id);
	json_decref(model);
	json_decref(pl.model);
	json_decref(pl.loras);
	json_decref(pl.pinned);
	am_capacity_free(&pl.cap);
	return rc;
}

void am_deploy_created_free(struct am_deploy_created *c)
{
	json_decref(c->plan);
	am_argv_free(&c->argv);
	am_argv_free(&c->env);
	memset(c, 0, sizeof *c);
}

/* ---- update ---- */

/* Arguments sent back as GET shows them: a secret flag's masked value
 * ("--x=********", or "********" after "--hf-token") keeps the stored one. */
static json_t *unmask_args(json_t *args, const char *stored)
{
	json_t *out = json_deep_copy(args);
	json_t *old = json_loads(stored ? stored : "[]", 0, NULL);
	size_t ai;
	json_t *av;
	json_array_foreach(out, ai, av) {
		const char *nv = json_string_value(av), *ov = json_string_value(json_array_get(old, ai));
		size_t ml = strlen(MASK), nl = nv ? strlen(nv) : 0;
		if (nv && ov && nl >= ml && !strcmp(nv + nl - ml, MASK) && !strncmp(nv, ov, nl - ml))
			json_array_set_new(out, ai, json_string(ov));
	}
	json_decref(old);
	return out;
}

/* The environment sent back as GET shows it: "********" keeps the stored value. */
static json_t *unmask_env(json_t *env, const char *stored)
{
	json_t *out = json_deep_copy(env);
	json_t *old = json_loads(stored ? stored : "{}", 0, NULL);
	const char *k;
	json_t *v;
	json_object_foreach(out, k, v)
		if (!strcmp(json_string_value(v) ?: "", MASK) && json_is_string(json_object_get(old, k)))
			json_object_set(out, k, json_object_get(old, k));
	json_decref(old);
	return out;
}

static int set_json(struct am_store *st, long long id, const char *col, json_t *v)
{
	char *s = am_json_dump(v);
	int rc;
	if (!strcmp(col, "lora_modules"))
		rc = am_store_exec(st, "UPDATE deployments SET lora_modules = ? WHERE id = ?", "si", s, id);
	else if (!strcmp(col, "aliases"))
		rc = am_store_exec(st, "UPDATE deployments SET aliases = ? WHERE id = ?", "si", s, id);
	else if (!strcmp(col, "engine_args"))
		rc = am_store_exec(st, "UPDATE deployments SET engine_args = ? WHERE id = ?", "si", s, id);
	else
		rc = am_store_exec(st, "UPDATE deployments SET env = ? WHERE id = ?", "si", s, id);
	free(s);
	return rc;
}

static int apply(struct am_deploy *d, long long id, json_t *dep, const struct am_deploy_patch *pt, int *restart,
		 struct am_err *err)
{
	struct am_store *st = am__deploy_server(d)->store;
	const char *engine = json_string_value(json_object_get(dep, "engine")) ?: "";
	const char *name = json_string_value(json_object_get(dep, "name"));
	const struct am_engine_def *e = am_engine_find(engine);
	if (pt->has_aliases && check_names(st, pt->aliases, pt->naliases, "aliases", NULL, id, err) != 0)
		return -1;
	if (e && check_launch(d, e, pt->env, pt->engine_args, err) != 0)
		return -1;
	if (pt->has_loras) { /* adapters served on this base */
		json_t *loras = resolve_loras(st, pt->loras, pt->nloras, json_integer_value(json_object_get(dep, "model_id")),
					      engine, name, id, err);
		if (!loras)
			return -1;
		set_json(st, id, "lora_modules", loras);
		json_decref(loras);
		/* engines started with LoRA take them at runtime (the reconciler syncs each);
		 * one started without needs a restart to enable it */
		long long without = 0;
		am_store_int(st, &without, 0, "SELECT COUNT(*) FROM instances WHERE deployment_id = ? AND state IN"
			     " ('starting','running') AND lora_live IS NULL", "i", id);
		if (without > 0 || strcmp(engine, "vllm") != 0)
			*restart = 1;
		else
			am_deploy_touch(d, id);
	}
	if (pt->has_aliases) { /* the gateway picks them up; no restart */
		json_t *al = names_json(pt->aliases, pt->naliases);
		set_json(st, id, "aliases", al);
		json_decref(al);
	}
	if (json_is_array(pt->engine_args)) {
		json_t *args = unmask_args(pt->engine_args, json_string_value(json_object_get(dep, "engine_args")));
		set_json(st, id, "engine_args", args);
		json_decref(args);
		*restart = 1;
	}
	if (json_is_object(pt->env)) {
		json_t *env = unmask_env(pt->env, json_string_value(json_object_get(dep, "env")));
		set_json(st, id, "env", env);
		json_decref(env);
		*restart = 1;
	}
	if (pt->max_num_seqs > 0) {
		am_store_exec(st, "UPDATE deployments SET max_num_seqs = ? WHERE id = ?", "ii", (long long)pt->max_num_seqs, id);
		*restart = 1;
	}
	if (pt->min_replicas_zero && !pt->has_idle_after_s && json_integer_value(json_object_get(dep, "idle_after_s")) <= 0)
		return am_err_set(err, AM_E_INVALID, "min_replicas",
				  "min_replicas 0 (scale to zero) needs idle_after_s: how long without a request before the "
				  "replicas stop");
	if (pt->has_idle_after_s || pt->has_evictable || pt->has_priority) {
		long long idle_s = pt->has_idle_after_s ? pt->idle_after_s : json_integer_value(json_object_get(dep, "idle_after_s"));
		long long evict = pt->has_evictable ? pt->evictable : json_integer_value(json_object_get(dep, "evictable"));
		long long prio = pt->has_priority ? pt->priority : json_integer_value(json_object_get(dep, "priority"));
		if (idle_s <= 0 && evict) {
			if (pt->has_evictable)
				return am_err_set(err, AM_E_INVALID, "evictable", "only a deployment that scales to zero"
						  " (idle_after_s) may be evicted for another's start");
			evict = 0; /* scale to zero turned off: nor evicted any more */
		}
		am_store_exec(st, "UPDATE deployments SET idle_after_s = ?, evictable = ?, priority = ? WHERE id = ?", "iiii",
			      idle_s, evict, prio, id);
		if (idle_s <= 0) /* one idle now starts again: it no longer waits for a request */
			am_store_exec(st, "UPDATE deployments SET idle_at = NULL, idle_reason = '', woken_at = NULL WHERE id = ?",
				      "i", id);
		am_deploy_touch(d, id);
	}
	long long cur = json_integer_value(json_object_get(dep, "replicas")), replicas = pt->replicas;
	if (replicas && replicas != cur) {
		am_store_exec(st, "UPDATE deployments SET replicas = ? WHERE id = ?", "ii", replicas, id);
		if (replicas > cur && !strcmp(json_string_value(json_object_get(dep, "desired")) ?: "", "running") &&
		    !json_is_integer(json_object_get(dep, "idle_at"))) { /* an idle one places them when woken */
			/* the new replicas must fit now, or the change is refused */
			json_object_set_new(dep, "replicas", json_integer(replicas));
			json_t *model = am_model_json(st, json_integer_value(json_object_get(dep, "model_id")));
			char why[1024];
			int bad = 0;
			for (long long r = cur; r < replicas && !bad; r++)
				bad = am_deploy_place(d, dep, model, (int)r, why, sizeof why) != 0;
			json_decref(model);
			if (bad)
				return am_err_set(err, AM_E_CONFLICT, "replicas", "%s", why);
		}
	}
	return 0;
}

int am_deploy_update(struct am_deploy *d, long long id, const struct am_deploy_patch *patch, const char *actor,
		     long long *task_id, int *restarting, struct am_err *err)
{
	struct am_store *st = am__deploy_server(d)->store;
	int own, restart = 0;
	if (tx_begin(st, &own) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "the database is not available");
	json_t *dep = NULL;
	am_store_row(st, &dep, "SELECT * FROM deployments WHERE id = ?", "i", id);
	int rc = dep ? apply(d, id, dep, patch, &restart, err) : am_err_set(err, AM_E_NOT_FOUND, "", "no deployment %lld", id);
	json_decref(dep);
	long long task = 0;
	if (rc == 0) {
		if (restart)
			am_deploy_restart(d, id);
		task = am__deploy_track(d, id, "deployment.update", actor, restart ? AM_MSG_T("restarting with the new settings") : AM_MSG_T("scaling"));
	}
	if (tx_end(st, own, rc) != 0)
		return rc ? rc : am_err_set(err, AM_E_INTERNAL, "", "could not commit the change");
	*task_id = task;
	if (restarting)
		*restarting = restart;
	return 0;
}

/* ---- actions ---- */

enum want { WANT_RUNNING, WANT_STOPPED, WANT_RESTARTED, WANT_DELETED };

static int want(struct am_deploy *d, long long id, enum want w, const char *actor, long long *task_id, struct am_err *err)
{
	static const char *const kinds[] = { "deployment.start", "deployment.stop", "deployment.restart", "deployment.delete" };
	static const char *const msgs[] = { AM_MSG_T("starting"), AM_MSG_T("stopping"), AM_MSG_T("restarting"),
					    AM_MSG_T("deleting") };
	struct am_store *st = am__deploy_server(d)->store;
	json_t *row = NULL;
	am_store_row(st, &row, "SELECT state FROM deployments WHERE id = ?", "i", id);
	int gone = !row, deleting = !strcmp(json_string_value(json_object_get(row, "state")) ?: "", "deleting");
	json_decref(row);
	if (gone)
		return am_err_set(err, AM_E_NOT_FOUND, "", "no deployment %lld", id);
	if (deleting)
		return am_err_set(err, AM_E_CONFLICT, "", "the deployment is being deleted");
	int own;
	if (tx_begin(st, &own) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "the database is not available");
	/* a user's start, stop, restart or delete ends any scale-to-zero state:
	 * started now, or not wanted at all */
	am_store_exec(st, "UPDATE deployments SET idle_at = NULL, idle_reason = '', woken_at = NULL WHERE id = ?", "i", id);
	switch (w) {
	case WANT_RUNNING:
		am_store_exec(st, "UPDATE deployments SET desired = 'running' WHERE id = ?", "i", id);
		am_store_exec(st, "DELETE FROM instances WHERE deployment_id = ? AND state = 'failed'", "i", id);
		break;
	case WANT_STOPPED:
		am_store_exec(st, "UPDATE deployments SET desired = 'stopped' WHERE id = ?", "i", id);
		break;
	case WANT_RESTARTED:
		am_store_exec(st, "UPDATE deployments SET desired = 'running' WHERE id = ?", "i", id);
		am_deploy_restart(d, id);
		break;
	case WANT_DELETED:
		am_store_exec(st, "UPDATE deployments SET desired = 'stopped', state = 'deleting' WHERE id = ?", "i", id);
		break;
	}
	long long task = am__deploy_track(d, id, kinds[w], actor, msgs[w]);
	if (tx_end(st, own, 0) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not commit the change");
	*task_id = task;
	return 0;
}

int am_deploy_want_running(struct am_deploy *d, long long id, const char *actor, long long *task_id, struct am_err *err)
{
	return want(d, id, WANT_RUNNING, actor, task_id, err);
}

int am_deploy_want_stopped(struct am_deploy *d, long long id, const char *actor, long long *task_id, struct am_err *err)
{
	return want(d, id, WANT_STOPPED, actor, task_id, err);
}

int am_deploy_want_restarted(struct am_deploy *d, long long id, const char *actor, long long *task_id, struct am_err *err)
{
	return want(d, id, WANT_RESTARTED, actor, task_id, err);
}

int am_deploy_want_deleted(struct am_deploy *d, long long id, const char *actor, long long *task_id, struct am_err *err)
{
	return want(d, id, WANT_DELETED, actor, task_id, err);
}
