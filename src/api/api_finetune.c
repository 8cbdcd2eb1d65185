/* api_finetune: fine-tuning jobs at the edge. Each handler parses the
 * request (a job's body into a struct am_ft_spec, with its hyper-
 * parameters checked), authorizes it (jobs and private datasets are their
 * owner's; a model that runs its own code is an admin's to train), asks
 * the fine-tuning module's verb (am_finetune_create, _stop, _resume,
 * _export: they check the rest and write the job) and renders the answer.
 * The supervisor (src/finetune/am_finetune.c) does the rest. */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../am_server.h"
#include "../base/am_json.h"
#include "../base/am_mem.h"
#include "../finetune/am_finetune.h"
#include "../model/am_model.h"
#include "../store/am_store.h"
#include "am_api.h"

#define JOB_COLS                                                                                                    \
	"id, name, base_model_id, datasets, method, stage, template, quantization_bit, params, gpu_count,"         \
	" pinned_gpus, deepspeed, gpus, gpu_indices, mem_per_gpu, precision, state, reason, runtime, node_id, progress, output_name," \
	" result_model_id, task_id, grace_ms, export_state, export_reason, export_name, export_model_id,"           \
	" created_by, created_at, started_at, finished_at, updated_at"


static json_t *job_json(struct am_server *srv, long long id)
{
	struct am_store *st = srv->store;
	json_t *j = NULL;
	am_store_row(st, &j, "SELECT " JOB_COLS " FROM ft_jobs WHERE id = ?", "i", id);
	if (!j)
		return NULL;
	static const char *const cols[] = { "datasets", "params", "pinned_gpus", "gpus", "progress" };
	for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
		const char *s = json_string_value(json_object_get(j, cols[i]));
		json_t *v = s ? json_loads(s, JSON_DECODE_ANY, NULL) : NULL;
		json_object_set_new(j, cols[i], v ? v : json_null());
	}
	json_t *m = NULL;
	am_store_row(st, &m, "SELECT id, name FROM models WHERE id = ?", "i", json_integer_value(json_object_get(j, "base_model_id")));
	json_object_set_new(j, "base_model", m ? m : json_null());
	json_object_del(j, "base_model_id");
	am_finetune_describe(srv->finetune, id, j);
	return j;
}

/* The job of the {id} parameter (id or name). Jobs are their owner's (and
 * admins'): someone else's is as good as absent, for reading and changing
 * alike (404, whether or not it exists). */
static int job_param(struct am_ctx *ctx, long long *id, struct am_err *err)
{
	const char *ref = am_api_param(ctx, "id");
	char *end;
	long long n = strtoll(ref, &end, 10);
	json_t *row = NULL;
	if (*ref && !*end && n > 0)
		am_store_row(ctx->srv->store, &row, "SELECT id, owner_id FROM ft_jobs WHERE id = ?", "i", n);
	else
		am_store_row(ctx->srv->store, &row, "SELECT id, owner_id FROM ft_jobs WHERE name = ?", "s", ref);
	long long found = json_integer_value(json_object_get(row, "id"));
	long long owner = json_integer_value(json_object_get(row, "owner_id"));
	json_decref(row);
	if (!found || !am_api_may_see(ctx, owner, 0))
		return am_err_set(err, AM_E_NOT_FOUND, "", "no fine-tuning job '%.100s'", ref);
	*id = found;
	am_fmt(ctx->target, sizeof ctx->target, "finetune:%lld", found);
	return 0;
}

/* ---- hyper-parameters: LLaMA-Factory's keys, checked and defaulted ---- */

enum hp_type { HP_NUM, HP_INT, HP_STR, HP_BOOL };
static const struct hp {
	const char *key;
	enum hp_type type;
	double min, max;
	const char *const *choices;
} HP[] = {
	{ "learning_rate", HP_NUM, 1e-9, 1.0, NULL },
	{ "num_train_epochs", HP_NUM, 0.01, 1000, NULL },
	{ "max_steps", HP_INT, 1, 1e9, NULL },
	{ "per_device_train_batch_size", HP_INT, 1, 1024, NULL },
	{ "gradient_accumulation_steps", HP_INT, 1, 1024, NULL },
	{ "cutoff_len", HP_INT, 16, 1048576, NULL },
	{ "max_samples", HP_INT, 1, 1e12, NULL },
	{ "lora_rank", HP_INT, 1, 1024, NULL },
	{ "lora_alpha", HP_INT, 1, 4096, NULL },
	{ "lora_dropout", HP_NUM, 0, 0.99, NULL },
	{ "lora_target", HP_STR, 1, 512, NULL },
	{ "warmup_ratio", HP_NUM, 0, 0.99, NULL },
	{ "lr_scheduler_type", HP_STR, 1, 64,
	  (const char *const[]){ "linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
				 "constant_with_warmup", "inverse_sqrt", NULL } },
	{ "save_steps", HP_INT, 1, 1e9, NULL },
	{ "logging_steps", HP_INT, 1, 1e9, NULL },
	{ "val_size", HP_NUM, 0, 0.5, NULL },
	{ "freeze_trainable_layers", HP_INT, -1000, 1000, NULL },
	{ "freeze_trainable_modules", HP_STR, 1, 256, NULL },
	{ "pure_bf16", HP_BOOL, 0, 0, NULL },
	{ "pref_beta", HP_NUM, 0, 100, NULL },
	{ "seed", HP_INT, 0, 2147483647, NULL },
};

/* No spaces or shell-looking text: LLaMA-Factory's launcher splits on spaces. */
static int plain_word(const char *s)
{
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') && !(*s >= '0' && *s <= '9') && !strchr("_.,-", *s))
			return 0;
	return 1;
}

static json_t *check_hyper(json_t *given, const char *method, const char *stage, struct am_err *err)
{
	json_t *p = json_object();
	int lora = !strcmp(method, "lora") || !strcmp(method, "qlora");
	/* the contract's examples: LoRA 1e-4, full 1e-5; the rest as LLaMA-Factory's examples */
	json_object_set_new(p, "learning_rate", json_real(lora ? 1e-4 : !strcmp(method, "full") ? 1e-5 : 5e-5));
	json_object_set_new(p, "num_train_epochs", json_real(3.0));
	json_object_set_new(p, "per_device_train_batch_size", json_integer(1));
	json_object_set_new(p, "gradient_accumulation_steps", json_integer(8));
	json_object_set_new(p, "cutoff_len", json_integer(2048));
	json_object_set_new(p, "warmup_ratio", json_real(0.1));
	json_object_set_new(p, "lr_scheduler_type", json_string("cosine"));
	json_object_set_new(p, "save_steps", json_integer(500));
	json_object_set_new(p, "logging_steps", json_integer(10));
	if (lora) {
		json_object_set_new(p, "lora_rank", json_integer(8));
		json_object_set_new(p, "lora_dropout", json_real(0));
		json_object_set_new(p, "lora_target", json_string("all"));
	}
	if (!strcmp(method, "freeze")) {
		json_object_set_new(p, "freeze_trainable_layers", json_integer(2));
		json_object_set_new(p, "freeze_trainable_modules", json_string("all"));
	}
	if (!strcmp(stage, "dpo"))
		json_object_set_new(p, "pref_beta", json_real(0.1));
	if (given && !json_is_object(given)) {
		json_decref(p);
		am_err_set(err, AM_E_INVALID, "hyper", "'hyper' must be an object of LLaMA-Factory hyper-parameters");
		return NULL;
	}
	const char *key;
	json_t *v;
	json_object_foreach(given, key, v) {
		const struct hp *h = NULL;
		for (size_t i = 0; i < sizeof HP / sizeof HP[0]; i++)
			if (!strcmp(HP[i].key, key))
				h = &HP[i];
		char field[80];
		am_fmt(field, sizeof field, "hyper.%.60s", key);
		const char *bad = NULL;
		if (!h)
			bad = AM_MSG_W("is not a hyper-parameter aimaas knows");
		else if ((!strncmp(key, "lora_", 5) && !lora) || (!strncmp(key, "freeze_", 7) && strcmp(method, "freeze")) ||
			 (!strcmp(key, "pref_beta") && strcmp(stage, "dpo")))
			bad = AM_MSG_W("does not apply to this method or stage");
		else if (json_is_null(v)) {
			/* a console's NaN (a number that did not parse) arrives so: never
			 * a silent fall back to LLaMA-Factory's default */
			json_decref(p);
			am_err_set(err, AM_E_INVALID, field, "'%s' is null: give a value, or leave it out for the default", field);
			return NULL;
		} else if ((h->type == HP_NUM || h->type == HP_INT) && json_is_string(v)) {
			/* a number as typed ("2e-4") is read whole, or refused by name */
			char *end = NULL;
			const char *t = json_string_value(v);
			double x = strtod(t, &end);
			int whole = *t && end && !*end && !isspace((unsigned char)*t) && isfinite(x);
			if (!whole || (h->type == HP_INT && (x != floor(x) || fabs(x) > 9e15))) {
				json_decref(p);
				if (h->type == HP_INT)
					am_err_set(err, AM_E_INVALID, field, "'%s' must be an integer, got '%.40s'", field, t);
				else
					am_err_set(err, AM_E_INVALID, field, "'%s' must be a number, got '%.40s'", field, t);
				return NULL;
			}
			v = h->type == HP_INT ? json_integer((json_int_t)x) : json_real(x);
			if (x < h->min || x > h->max) {
				json_decref(v);
				json_decref(p);
				am_err_set(err, AM_E_INVALID, field, "'%s' must be %g to %g", field, h->min, h->max);
				return NULL;
			}
			json_object_set_new(p, key, v);
			continue;
		} else if (h->type == HP_BOOL ? !json_is_boolean(v)
			   : h->type == HP_STR ? !json_is_string(v)
			   : h->type == HP_INT ? !json_is_integer(v) : !json_is_number(v))
			bad = h->type == HP_BOOL ? AM_MSG_W("must be true or false") : h->type == HP_STR ? AM_MSG_W("must be a string")
				: h->type == HP_INT ? AM_MSG_W("must be an integer") : AM_MSG_W("must be a number");
		else if ((h->type == HP_NUM || h->type == HP_INT) &&
			 (json_number_value(v) < h->min || json_number_value(v) > h->max || !isfinite(json_number_value(v))))
			bad = AM_MSG_W("is out of range");
		else if (h->type == HP_STR && (json_string_length(v) < (size_t)h->min || json_string_length(v) > (size_t)h->max ||
					       !plain_word(json_string_value(v))))
			bad = AM_MSG_W("must be a short word of letters, digits, '_', '.', ',' or '-'");
		else if (h->choices) {
			int ok = 0;
			for (const char *const *c = h->choices; *c; c++)
				ok |= !strcmp(*c, json_string_value(v));
			if (!ok)
				bad = AM_MSG_W("is not one of the allowed values");
		}
		if (bad) {
			json_decref(p);
			if (h && (h->type == HP_NUM || h->type == HP_INT) && !strcmp(bad, "is out of range"))
				am_err_set(err, AM_E_INVALID, field, "'%s' must be %g to %g", field, h->min, h->max);
			else if (am_err_set(err, AM_E_INVALID, field, "'%s' %s", field, bad) && err)
				am_msg_zhf(err->msg_zh, sizeof err->msg_zh, "'%s' %s", field, am_msg_word(bad));
			return NULL;
		}
		json_object_set(p, key, v);
	}
	if (lora && !json_object_get(p, "lora_alpha"))
		json_object_set_new(p, "lora_alpha", json_integer(2 * json_integer_value(json_object_get(p, "lora_rank"))));
	if (json_number_value(json_object_get(p, "val_size")) == 0)
		json_object_del(p, "val_size");
	return p;
}

/* ---- create ---- */

static int create(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "name", "base_model", "datasets", "method", "stage", "template",
					      "quantization_bit", "hyper", "gpus", "deepspeed", "output_name", "stop_grace_s",
					      NULL };
	struct am_server *srv = ctx->srv;
	char q[8];
	/* a dry run leaves no trace, refused or not */
	int dry = am_http_query(ctx->req, "dry_run", q, sizeof q) == 1 && (!strcmp(q, "true") || !strcmp(q, "1"));
	ctx->no_task = dry;
	struct am_ft_spec spec = { .method = "lora", .stage = "sft", .created_by = ctx->who.username,
				   .owner_id = ctx->who.user_id };
	long long qbits = 0, ds = 0, grace = 60;
	if (am_json_only(ctx->body, fields, err) != 0 ||
	    am_json_get_str(ctx->body, "name", AM_JSON_OPTIONAL, 1, 128, &spec.name, err) != 0 ||
	    am_json_get_str(ctx->body, "base_model", AM_JSON_REQUIRED, 1, 128, &spec.base_ref, err) != 0 ||
	    am_json_get_str(ctx->body, "method", AM_JSON_OPTIONAL, 1, 16, &spec.method, err) != 0 ||
	    am_json_get_str(ctx->body, "stage", AM_JSON_OPTIONAL, 1, 16, &spec.stage, err) != 0 ||
	    am_json_get_str(ctx->body, "template", AM_JSON_OPTIONAL, 1, 64, &spec.tmpl, err) != 0 ||
	    am_json_get_int(ctx->body, "quantization_bit", AM_JSON_OPTIONAL, 0, 64, &qbits, err) != 0 ||
	    am_json_get_int(ctx->body, "deepspeed", AM_JSON_OPTIONAL, 0, 3, &ds, err) != 0 ||
	    am_json_get_str(ctx->body, "output_name", AM_JSON_OPTIONAL, 1, 128, &spec.output_name, err) != 0 ||
	    am_json_get_int(ctx->body, "stop_grace_s", AM_JSON_OPTIONAL, 1, 3600, &grace, err) != 0)
		return -1;
	const char *method = spec.method, *stage = spec.stage;
	if (spec.name && !am_model_name_ok(spec.name))
		return am_err_set(err, AM_E_INVALID, "name", "'name' must be 1-128 of letters, digits, '.', '_', '-'");
	if (spec.output_name && !am_model_name_ok(spec.output_name))
		return am_err_set(err, AM_E_INVALID, "output_name", "'output_name' must be 1-128 of letters, digits, '.', '_', '-'");
	if (strcmp(method, "lora") && strcmp(method, "qlora") && strcmp(method, "full") && strcmp(method, "freeze"))
		return am_err_set(err, AM_E_INVALID, "method", "'method' must be lora, qlora, full or freeze");
	if (strcmp(stage, "sft") && strcmp(stage, "pt") && strcmp(stage, "dpo"))
		return am_err_set(err, AM_E_INVALID, "stage", "'stage' must be sft, pt or dpo");
	if (qbits && strcmp(method, "qlora"))
		return am_err_set(err, AM_E_INVALID, "quantization_bit", "quantization only works with LoRA: use method 'qlora'");
	if (!strcmp(method, "qlora") && !qbits)
		qbits = 4;
	if (qbits && qbits != 4 && qbits != 8)
		return am_err_set(err, AM_E_INVALID, "quantization_bit", "'quantization_bit' must be 4 or 8 (bitsandbytes)");
	if (ds == 1)
		return am_err_set(err, AM_E_INVALID, "deepspeed", "'deepspeed' is a ZeRO stage: 0 (off), 2 or 3");
	spec.quantization_bit = (int)qbits;
	spec.deepspeed = (int)ds;
	spec.grace_ms = grace * 1000;
	if (am_api_model_lookup(ctx, spec.base_ref, &spec.base_model_id) != 0)
		return am_err_set(err, AM_E_INVALID, "base_model", "no model '%.128s'", spec.base_ref);
	/* the trainer loads it with trust_remote_code: its code would run as
	 * aimaas, which deployments leave to admins too */
	long long remote = 0;
	am_store_int(srv->store, &remote, 0, "SELECT COALESCE(json_extract(facts, '$.needs_remote_code'), 0) FROM models"
		     " WHERE id = ? AND json_valid(facts)", "i", spec.base_model_id);
	if (remote && !ctx->who.admin)
		return am_err_set(err, AM_E_FORBIDDEN, "base_model",
				  "'%s' runs its own code (auto_map in config.json): only an admin may fine-tune it", spec.base_ref);
	if (spec.tmpl && !am_finetune_template_ok(spec.tmpl))
		return am_err_set(err, AM_E_INVALID, "template", "'%s' is not a LLaMA-Factory template aimaas knows (e.g. qwen, qwen3, llama3, glm4, deepseek3, mistral, default)", spec.tmpl);
	/* datasets: names or ids, each one the caller may use */
	json_t *given = json_object_get(ctx->body, "datasets");
	if (!json_is_array(given) || !json_array_size(given) || json_array_size(given) > 16)
		return am_err_set(err, AM_E_INVALID, "datasets", "'datasets' must be a list of 1 to 16 dataset names or ids");
	long long dsids[16];
	size_t i;
	json_t *v;
	json_array_foreach(given, i, v) {
		json_t *d = NULL;
		if (json_is_integer(v))
			am_store_row(srv->store, &d, "SELECT id, owner_id, visibility FROM datasets WHERE id = ?", "i",
				     (long long)json_integer_value(v));
		else if (json_is_string(v))
			am_store_row(srv->store, &d, "SELECT id, owner_id, visibility FROM datasets WHERE name = ?", "s",
				     json_string_value(v));
		int seen = d && am_api_may_see(ctx, json_integer_value(json_object_get(d, "owner_id")),
					       !strcmp(json_string_value(json_object_get(d, "visibility")) ?: "", "shared"));
		dsids[i] = json_integer_value(json_object_get(d, "id"));
		json_decref(d);
		if (!seen) { /* someone else's private dataset: as good as absent */
			char field[32];
			am_fmt(field, sizeof field, "datasets[%zu]", i);
			return am_err_set(err, AM_E_INVALID, field, "datasets[%zu]: no such dataset", i);
		}
	}
	spec.datasets = dsids;
	spec.ndatasets = json_array_size(given);
	if (!(spec.hyper = check_hyper(json_object_get(ctx->body, "hyper"), method, stage, err)))
		return -1;
	/* GPUs: a count or pinned ids (am_finetune_create checks they exist and fit) */
	json_t *g = json_object_get(ctx->body, "gpus");
	if (json_is_array(g))
		spec.pinned = g;
	else if (json_is_integer(g))
		spec.gpus = json_integer_value(g);
	else if (!g)
		spec.gpus = 1;
	else {
		json_decref(spec.hyper);
		return am_err_set(err, AM_E_INVALID, "gpus", "'gpus' must be a count or a list of GPU ids");
	}
	struct am_ft_plan plan;
	int rc = am_finetune_create(srv->finetune, &spec, dry, &plan, err);
	if (rc == 0 && dry)
		/* the console's job wizard: everything checked, the resolved settings and the memory
		 * estimate returned, nothing kept */
		ctx->resp = json_pack("{s:b,s:s,s:s,s:s,s:s,s:s?,s:I,s:O,s:I,s:I,s:I}", "dry_run", 1, "name", plan.name,
				      "output_name", plan.output_name, "method", method, "stage", stage, "template", plan.tmpl,
				      "gpu_count", (json_int_t)plan.gpu_count, "params", spec.hyper, "parameters",
				      (json_int_t)plan.parameters, "memory_per_gpu_bytes", (json_int_t)plan.mem_per_gpu,
				      "largest_gpu_bytes", (json_int_t)plan.largest_gpu);
	else if (rc == 0) {
		am_fmt(ctx->target, sizeof ctx->target, "finetune:%lld", plan.id);
		ctx->task_id = plan.task_id;
		ctx->resp = job_json(srv, plan.id);
		ctx->status = 201;
	}
	json_decref(spec.hyper);
	return rc == 0 && ctx->resp ? 0 : -1;
}

static json_t *job_row(void *srv, long long id) /* for am_api_render_ids */
{
	return job_json(srv, id);
}

/* GET /finetune/jobs: one's own jobs (an admin's: all), newest first,
 * paged by keyset (?after=<next>: ids below it). */
static int list(struct am_ctx *ctx, struct am_err *err)
{
	long long limit, offset, after, total = -1;
	int count;
	if (am_api_page(ctx, &limit, &offset, err) != 0 || am_api_keyset(ctx, &after, &count, err) != 0)
		return -1;
	json_t *ids = NULL;
	if (am_store_rows(ctx->srv->store, &ids,
			  "SELECT id FROM ft_jobs WHERE (?1 OR owner_id = ?2) AND (?3 = 0 OR id < ?3)"
			  " ORDER BY id DESC LIMIT ?4 OFFSET ?5", "iiiii", (long long)ctx->who.admin, ctx->who.user_id, after,
			  limit, offset) != 0 ||
	    (count && am_store_int(ctx->srv->store, &total, 0, "SELECT COUNT(*) FROM ft_jobs WHERE ?1 OR owner_id = ?2",
				   "ii", (long long)ctx->who.admin, ctx->who.user_id) != 0)) {
		json_decref(ids);
		return am_err_set(err, AM_E_INTERNAL, "", "could not read jobs");
	}
	long long next = am_api_next(ids, limit);
	ctx->resp = am_api_list_keyset(am_api_render_ids(ids, job_row, ctx->srv), total, limit, offset, next);
	return 0;
}

static int get(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (job_param(ctx, &id, err) != 0)
		return -1;
	ctx->resp = job_json(ctx->srv, id);
	return 0;
}

static void job_file(struct am_ctx *ctx, long long id, const char *rel, char *out, size_t size)
{
	am_fmt(out, size, "%s/finetune/%lld/%s", ctx->srv->cfg.data_dir, id, rel);
}

static int metrics(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (job_param(ctx, &id, err) != 0)
		return -1;
	char path[PATH_MAX];
	long long max = 1000;
	if (am_api_query_int(ctx, "max", 2, 100000, &max, err) != 0)
		return -1;
	job_file(ctx, id, "out/trainer_log.jsonl", path, sizeof path);
	json_t *j = job_json(ctx->srv, id);
	ctx->resp = json_pack("{s:O,s:O,s:o}", "state", json_object_get(j, "state"), "progress", json_object_get(j, "progress"),
			      "series", am_finetune_series(path, (int)max));
	json_decref(j);
	return 0;
}

static int logs(struct am_ctx *ctx, struct am_err *err)
{
	long long id, tail = 200;
	if (job_param(ctx, &id, err) != 0 || am_api_query_int(ctx, "tail", 0, 10000, &tail, err) != 0) {
		am_api_reply_error(ctx->req, err);
		return 0;
	}
	char path[PATH_MAX], name[64];
	if (am_finetune_log_file(ctx->srv->finetune, id, path, sizeof path) != 0)
		job_file(ctx, id, "train.log", path, sizeof path);
	am_fmt(name, sizeof name, "finetune-%lld.log", id);
	am_api_serve_log(ctx, path, tail, name);
	return 0;
}

static int stop(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (job_param(ctx, &id, err) != 0 || am_finetune_stop(ctx->srv->finetune, id, err) != 0)
		return -1;
	ctx->resp = job_json(ctx->srv, id);
	return 0;
}

static int resume(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (job_param(ctx, &id, err) != 0 || am_finetune_may_resume(ctx->srv->finetune, id, err) != 0 ||
	    am_finetune_resume(ctx->srv->finetune, id, ctx->who.username, &ctx->task_id, err) != 0)
		return -1;
	ctx->resp = job_json(ctx->srv, id);
	return 0;
}

/* Merges a finished LoRA job's adapter into its base model (on the CPU,
 * llamafactory-cli export) and registers the result as a full model. */
static int export(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "name", NULL };
	long long id;
	const char *name = NULL;
	if (job_param(ctx, &id, err) != 0 || am_json_only(ctx->body, fields, err) != 0 ||
	    am_json_get_str(ctx->body, "name", AM_JSON_OPTIONAL, 1, 128, &name, err) != 0)
		return -1;
	if (name && !am_model_name_ok(name))
		return am_err_set(err, AM_E_INVALID, "name", "'name' must be 1-128 of letters, digits, '.', '_', '-'");
	if (am_finetune_export(ctx->srv->finetune, id, name, err) != 0)
		return -1;
	ctx->resp = job_json(ctx->srv, id);
	ctx->status = 202;
	return 0;
}

/* Removes a folder aimaas made, with what is inside (links not followed). */
static int delete(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (job_param(ctx, &id, err) != 0 || am_finetune_delete(ctx->srv->finetune, id, err) != 0)
		return -1;
	ctx->resp = json_pack("{s:I,s:b}", "id", (json_int_t)id, "deleted", 1);
	return 0;
}

const struct am_route_def am_api_finetune_routes[] = {
	{ "GET", "/api/v1/finetune/jobs", list, AM_USER, NULL, 0, 0 },
	{ "POST", "/api/v1/finetune/jobs", create, AM_USER, "finetune.create", 0, 0 },
	{ "GET", "/api/v1/finetune/jobs/{id}", get, AM_USER, NULL, 0, 0 },
	{ "GET", "/api/v1/finetune/jobs/{id}/metrics", metrics, AM_USER, NULL, 0, 0 },
	{ "GET", "/api/v1/finetune/jobs/{id}/logs", logs, AM_USER, NULL, AM_ROUTE_RAW, 0 },
	{ "POST", "/api/v1/finetune/jobs/{id}/stop", stop, AM_USER, "finetune.stop", 0, 0 },
	{ "POST", "/api/v1/finetune/jobs/{id}/resume", resume, AM_USER, "finetune.resume", 0, 0 },
	{ "POST", "/api/v1/finetune/jobs/{id}/export", export, AM_USER, "finetune.export", 0, 0 },
	{ "DELETE", "/api/v1/finetune/jobs/{id}", delete, AM_USER, "finetune.delete", 0, 0 },
};
const size_t am_api_finetune_nroutes = sizeof am_api_finetune_routes / sizeof am_api_finetune_routes[0];
