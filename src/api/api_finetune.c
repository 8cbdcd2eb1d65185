/* api_finetune: fine-tuning jobs. Creating one checks everything that can
 * be checked before a GPU is touched (model, datasets, method and its
 * options, template, hyper-parameters, whether the method can ever fit the
 * GPUs by LLaMA-Factory's memory table) and queues it; the supervisor
 * (src/finetune/am_finetune.c) does the rest. */
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../am_server.h"
#include "../base/am_json.h"
#include "../base/am_mem.h"
#include "../base/am_time.h"
#include "../deploy/am_deploy.h"
#include "../finetune/am_finetune.h"
#include "../model/am_model.h"
#include "../sched/am_capacity_db.h"
#include "../store/am_store.h"
#include "../task/am_task.h"
#include "am_api.h"

#define JOB_COLS                                                                                                    \
	"id, name, base_model_id, datasets, method, stage, template, quantization_bit, params, gpu_count,"         \
	" pinned_gpus, deepspeed, gpus, gpu_indices, mem_per_gpu, precision, state, reason, runtime, node_id, progress, output_name," \
	" result_model_id, task_id, grace_ms, export_state, export_reason, export_name, export_model_id,"           \
	" created_by, created_at, started_at, finished_at, updated_at"

static const char *const ACTIVE = "('queued','starting','running','stopping')";

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
			bad = "is not a hyper-parameter aimaas knows";
		else if ((!strncmp(key, "lora_", 5) && !lora) || (!strncmp(key, "freeze_", 7) && strcmp(method, "freeze")) ||
			 (!strcmp(key, "pref_beta") && strcmp(stage, "dpo")))
			bad = "does not apply to this method or stage";
		else if (json_is_null(v)) {
			json_object_del(p, key);
			continue;
		} else if (h->type == HP_BOOL ? !json_is_boolean(v)
			   : h->type == HP_STR ? !json_is_string(v)
			   : h->type == HP_INT ? !json_is_integer(v) : !json_is_number(v))
			bad = h->type == HP_BOOL ? "must be true or false" : h->type == HP_STR ? "must be a string"
				: h->type == HP_INT ? "must be an integer" : "must be a number";
		else if ((h->type == HP_NUM || h->type == HP_INT) &&
			 (json_number_value(v) < h->min || json_number_value(v) > h->max || !isfinite(json_number_value(v))))
			bad = "is out of range";
		else if (h->type == HP_STR && (json_string_length(v) < (size_t)h->min || json_string_length(v) > (size_t)h->max ||
					       !plain_word(json_string_value(v))))
			bad = "must be a short word of letters, digits, '_', '.', ',' or '-'";
		else if (h->choices) {
			int ok = 0;
			for (const char *const *c = h->choices; *c; c++)
				ok |= !strcmp(*c, json_string_value(v));
			if (!ok)
				bad = "is not one of the allowed values";
		}
		if (bad) {
			json_decref(p);
			if (h && (h->type == HP_NUM || h->type == HP_INT) && !strcmp(bad, "is out of range"))
				am_err_set(err, AM_E_INVALID, field, "'%s' must be %g to %g", field, h->min, h->max);
			else
				am_err_set(err, AM_E_INVALID, field, "'%s' %s", field, bad);
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
	const char *name = NULL, *base = NULL, *method = "lora", *stage = "sft", *tmpl = NULL, *outname = NULL;
	long long qbits = 0, ds = 0, grace = 60;
	if (am_json_only(ctx->body, fields, err) != 0 ||
	    am_json_get_str(ctx->body, "name", AM_JSON_OPTIONAL, 1, 128, &name, err) != 0 ||
	    am_json_get_str(ctx->body, "base_model", AM_JSON_REQUIRED, 1, 128, &base, err) != 0 ||
	    am_json_get_str(ctx->body, "method", AM_JSON_OPTIONAL, 1, 16, &method, err) != 0 ||
	    am_json_get_str(ctx->body, "stage", AM_JSON_OPTIONAL, 1, 16, &stage, err) != 0 ||
	    am_json_get_str(ctx->body, "template", AM_JSON_OPTIONAL, 1, 64, &tmpl, err) != 0 ||
	    am_json_get_int(ctx->body, "quantization_bit", AM_JSON_OPTIONAL, 0, 64, &qbits, err) != 0 ||
	    am_json_get_int(ctx->body, "deepspeed", AM_JSON_OPTIONAL, 0, 3, &ds, err) != 0 ||
	    am_json_get_str(ctx->body, "output_name", AM_JSON_OPTIONAL, 1, 128, &outname, err) != 0 ||
	    am_json_get_int(ctx->body, "stop_grace_s", AM_JSON_OPTIONAL, 1, 3600, &grace, err) != 0)
		return -1;
	if (name && !am_model_name_ok(name))
		return am_err_set(err, AM_E_INVALID, "name", "'name' must be 1-128 of letters, digits, '.', '_', '-'");
	if (outname && !am_model_name_ok(outname))
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
	long long mid;
	if (am_api_model_lookup(ctx, base, &mid) != 0)
		return am_err_set(err, AM_E_INVALID, "base_model", "no model '%.128s'", base);
	json_t *model = NULL;
	am_store_row(srv->store, &model, "SELECT name, path, kind, state, architecture, parameters, facts FROM models WHERE id = ?",
		     "i", mid);
	const char *kind = json_string_value(json_object_get(model, "kind")) ?: "";
	json_t *facts = json_loads(json_string_value(json_object_get(model, "facts")) ?: "{}", 0, NULL);
	int rc = -1;
	json_t *hyper = NULL, *dsids = json_array(), *pinned = json_array();
	struct am_capacity cap;
	am_capacity_init(&cap, "");
	long long count = 1;
	if (!json_string_value(json_object_get(model, "path")) || strcmp(json_string_value(json_object_get(model, "state")), "ready")) {
		am_err_set(err, AM_E_INVALID, "base_model", "model '%s' has no local files to train from", base);
		goto out;
	}
	if (strcmp(kind, "llm") && strcmp(kind, "vlm")) {
		am_err_set(err, AM_E_INVALID, "base_model", "model '%s' is a%s %s model; fine-tuning takes a language model", base,
			   kind[0] == 'e' || kind[0] == 'a' ? "n" : "", kind[0] ? kind : "unknown");
		goto out;
	}
	/* the trainer loads it with trust_remote_code: its code would run as
	 * aimaas, which deployments leave to admins too */
	if (json_is_true(json_object_get(facts, "needs_remote_code")) && !ctx->who.admin) {
		am_err_set(err, AM_E_FORBIDDEN, "base_model",
			   "'%s' runs its own code (auto_map in config.json): only an admin may fine-tune it", base);
		goto out;
	}
	if (!tmpl)
		tmpl = am_finetune_template_for(json_string_value(json_object_get(model, "architecture")),
						json_string_value(json_object_get(facts, "model_type")));
	else if (!am_finetune_template_ok(tmpl)) {
		am_err_set(err, AM_E_INVALID, "template", "'%s' is not a LLaMA-Factory template aimaas knows (e.g. qwen, qwen3, llama3, glm4, deepseek3, mistral, default)", tmpl);
		goto out;
	}
	/* datasets: names or ids, each valid */
	json_t *given = json_object_get(ctx->body, "datasets");
	if (!json_is_array(given) || !json_array_size(given) || json_array_size(given) > 16) {
		am_err_set(err, AM_E_INVALID, "datasets", "'datasets' must be a list of 1 to 16 dataset names or ids");
		goto out;
	}
	size_t i;
	json_t *v;
	json_array_foreach(given, i, v) {
		json_t *d = NULL;
		if (json_is_integer(v))
			am_store_row(srv->store, &d, "SELECT id, name, state, json_extract(report, '$.purpose') AS purpose,"
				     " owner_id, visibility FROM datasets WHERE id = ?", "i", (long long)json_integer_value(v));
		else if (json_is_string(v))
			am_store_row(srv->store, &d, "SELECT id, name, state, json_extract(report, '$.purpose') AS purpose,"
				     " owner_id, visibility FROM datasets WHERE name = ?", "s", json_string_value(v));
		if (d && !am_api_may_see(ctx, json_integer_value(json_object_get(d, "owner_id")),
					 !strcmp(json_string_value(json_object_get(d, "visibility")) ?: "", "shared"))) {
			json_decref(d); /* someone else's private dataset: as good as absent */
			d = NULL;
		}
		if (!d) {
			char field[32];
			am_fmt(field, sizeof field, "datasets[%zu]", i);
			am_err_set(err, AM_E_INVALID, field, "datasets[%zu]: no such dataset", i);
			goto out;
		}
		int ok = !strcmp(json_string_value(json_object_get(d, "state")), "valid");
		/* each stage trains on its own kind of data */
		const char *purpose = json_string_value(json_object_get(d, "purpose")) ?: "sft";
		const char *want = !strcmp(stage, "dpo") ? "preference" : !strcmp(stage, "pt") ? "text" : "sft";
		if (!ok)
			am_err_set(err, AM_E_INVALID, "datasets", "dataset '%s' is invalid (see its report); fix and upload it again",
				   json_string_value(json_object_get(d, "name")));
		else if (strcmp(purpose, want))
			ok = 0, am_err_set(err, AM_E_INVALID, "datasets", "dataset '%s' holds %s data; stage '%s' trains on %s data",
					   json_string_value(json_object_get(d, "name")), purpose, stage, want);
		else
			json_array_append(dsids, json_object_get(d, "id"));
		json_decref(d);
		if (!ok)
			goto out;
	}
	if (!(hyper = check_hyper(json_object_get(ctx->body, "hyper"), method, stage, err)))
		goto out;
	/* GPUs: a count or pinned ids; the method must fit them by the table */
	am_capacity_db_load(srv, &cap);
	int pin[AM_PLAN_MAX], npin = 0;
	json_t *g = json_object_get(ctx->body, "gpus");
	if (json_is_array(g)) {
		char perr[512];
		if (am_capacity_pin(&cap, g, pin, AM_PLAN_MAX, &npin, perr, sizeof perr) != 0) {
			am_err_set(err, AM_E_INVALID, "gpus", "%s", perr);
			goto out;
		}
		for (int k = 0; k < npin; k++) {
			if (strcmp(cap.gpus[pin[k]].node, cap.gpus[pin[0]].node)) {
				am_err_set(err, AM_E_INVALID, "gpus", "a job's GPUs must be on one node: GPU %d of %s and GPU %d of %s are not",
					   cap.gpus[pin[0]].index, cap.gpus[pin[0]].node, cap.gpus[pin[k]].index, cap.gpus[pin[k]].node);
				goto out;
			}
			json_array_append_new(pinned, json_string(cap.gpus[pin[k]].id));
		}
		count = npin;
	} else if (json_is_integer(g))
		count = json_integer_value(g);
	else if (g) {
		am_err_set(err, AM_E_INVALID, "gpus", "'gpus' must be a count or a list of GPU ids");
		goto out;
	}
	const char *wnode;
	int widest = am_capacity_widest(&cap, &wnode);
	if (count < 1 || count > widest) {
		if (cap.n && am_capacity_widest(&cap, &wnode) < cap.n)
			am_err_set(err, AM_E_INVALID, "gpus", "a job runs on one node and the largest, %s, has %d GPU%s; 'gpus' asks for %lld",
				   wnode, widest, widest == 1 ? "" : "s", count);
		else
			am_err_set(err, AM_E_INVALID, "gpus", "this machine has %d GPU%s; 'gpus' asks for %lld", widest,
				   widest == 1 ? "" : "s", count);
		goto out;
	}
	long long params = json_integer_value(json_object_get(model, "parameters"));
	uint64_t need = am_finetune_mem_need(method, (int)qbits, params, (int)count, ds != 0,
					     json_is_true(json_object_get(hyper, "pure_bf16")));
	uint64_t biggest = 0;
	for (int k = 0; k < cap.n; k++) {
		int counted = !npin;
		for (int w = 0; w < npin; w++)
			counted |= pin[w] == k;
		if (counted && cap.gpus[k].total > biggest)
			biggest = cap.gpus[k].total;
	}
	if (need > biggest) {
		am_err_set(err, AM_E_INVALID, "method",
			   "%s fine-tuning of this %.1fB model needs about %.0f GB on each of %lld GPU%s by LLaMA-Factory's table;"
			   " the largest GPU has %.0f GB. Use %s", method, params / 1e9, need / 1e9, count, count == 1 ? "" : "s",
			   biggest / 1e9, !strcmp(method, "full") ? "lora or qlora, or more GPUs with deepspeed 3" : "qlora or more memory");
		goto out;
	}
	/* names */
	char defname[160];
	if (!name) {
		long long seq = 0;
		am_store_int(srv->store, &seq, 0, "SELECT COALESCE(MAX(id), 0) + 1 FROM ft_jobs", NULL);
		am_fmt(defname, sizeof defname, "%.100s-%s-%lld", json_string_value(json_object_get(model, "name")), method, seq);
		name = defname;
	}
	if (!outname)
		outname = name;
	long long taken = 0;
	am_store_int(srv->store, &taken, 0, "SELECT COUNT(*) FROM ft_jobs WHERE name = ?", "s", name);
	if (taken) {
		am_err_set(err, AM_E_CONFLICT, "name", "a fine-tuning job named '%s' already exists", name);
		goto out;
	}
	am_store_int(srv->store, &taken, 0, "SELECT COUNT(*) FROM models WHERE name = ?", "s", outname);
	if (taken) {
		am_err_set(err, AM_E_CONFLICT, "output_name", "a model named '%s' already exists; choose 'output_name'", outname);
		goto out;
	}
	if (dry) {
		/* the console's job wizard: everything checked, the resolved settings and the memory
		 * estimate returned, nothing kept */
		ctx->resp = json_pack("{s:b,s:s,s:s,s:s,s:s,s:s?,s:I,s:O,s:I,s:I,s:I}", "dry_run", 1, "name", name, "output_name",
				      outname, "method", method, "stage", stage, "template", tmpl, "gpu_count", (json_int_t)count,
				      "params", hyper, "parameters", (json_int_t)params, "memory_per_gpu_bytes", (json_int_t)need,
				      "largest_gpu_bytes", (json_int_t)biggest);
		rc = ctx->resp ? 0 : -1;
		goto out;
	}
	char *sds = am_json_dump(dsids), *shy = am_json_dump(hyper), *spin = am_json_dump(pinned);
	long long now = am_wall_ms();
	int src = am_store_exec(srv->store,
				"INSERT INTO ft_jobs(name, base_model_id, datasets, method, stage, template, quantization_bit, params,"
				" gpu_count, pinned_gpus, deepspeed, state, reason, output_name, grace_ms, created_by, created_at,"
				" updated_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', 'waiting to start', ?, ?, ?, ?, ?)",
				"sissssisisisisii", name, mid, sds, method, stage, tmpl, qbits, shy, count, spin, ds, outname,
				grace * 1000, ctx->who.username, now, now);
	free(sds);
	free(shy);
	free(spin);
	if (src != 0) {
		am_err_set(err, AM_E_INTERNAL, "", "could not record the job");
		goto out;
	}
	long long id = am_store_last_id(srv->store);
	am_store_exec(srv->store, "UPDATE ft_jobs SET owner_id = ? WHERE id = ?", "ii", ctx->who.user_id, id);
	am_fmt(ctx->target, sizeof ctx->target, "finetune:%lld", id);
	ctx->task_id = am_task_create(srv->store, "finetune.create", ctx->target, ctx->who.username, AM_TASK_RUNNING, "queued");
	am_store_exec(srv->store, "UPDATE ft_jobs SET task_id = ? WHERE id = ?", "ii", ctx->task_id, id);
	am_finetune_kick(srv->finetune);
	ctx->resp = job_json(srv, id);
	ctx->status = 201;
	rc = 0;
out:
	json_decref(model);
	json_decref(facts);
	json_decref(hyper);
	json_decref(dsids);
	json_decref(pinned);
	am_capacity_free(&cap);
	return rc;
}

static json_t *job_row(void *srv, long long id) /* for am_api_render_ids */
{
	return job_json(srv, id);
}

static int list(struct am_ctx *ctx, struct am_err *err)
{
	(void)err;
	json_t *ids = NULL;
	am_store_rows(ctx->srv->store, &ids, "SELECT id FROM ft_jobs WHERE ?1 OR owner_id = ?2 ORDER BY id DESC", "ii",
		      (long long)ctx->who.admin, ctx->who.user_id);
	json_t *items = am_api_render_ids(ids, job_row, ctx->srv);
	ctx->resp = am_api_list(items, (long long)json_array_size(items), (long long)json_array_size(items), 0);
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
	if (job_param(ctx, &id, err) != 0)
		return -1;
	json_t *j = NULL;
	am_store_row(ctx->srv->store, &j, "SELECT state, task_id FROM ft_jobs WHERE id = ?", "i", id);
	const char *st = json_string_value(json_object_get(j, "state"));
	long long now = am_wall_ms();
	if (!strcmp(st, "queued")) {
		am_store_exec(ctx->srv->store, "UPDATE ft_jobs SET state = 'stopped', reason = 'stopped before it started',"
			      " finished_at = ?, updated_at = ? WHERE id = ?", "iii", now, now, id);
		/* what a start interrupted by a kill may have reserved */
		am_capacity_db_release(ctx->srv->store, "job", id);
		long long task = json_integer_value(json_object_get(j, "task_id"));
		if (task)
			am_task_update(ctx->srv->store, task, AM_TASK_CANCELLED, 100, "stopped before it started");
	} else if (!strcmp(st, "starting") || !strcmp(st, "running")) {
		am_store_exec(ctx->srv->store, "UPDATE ft_jobs SET state = 'stopping', stop_requested_at = ?,"
			      " reason = 'saving and stopping', updated_at = ? WHERE id = ?", "iii", now, now, id);
		am_finetune_stop_job(ctx->srv->finetune, id); /* it saves at the next step, then exits */
	} else if (strcmp(st, "stopping")) {
		am_err_set(err, AM_E_CONFLICT, "", "job %lld is %s; only a queued or running job can be stopped", id, st);
		json_decref(j);
		return -1;
	}
	json_decref(j);
	am_finetune_kick(ctx->srv->finetune);
	ctx->resp = job_json(ctx->srv, id);
	return 0;
}

static int resume(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (job_param(ctx, &id, err) != 0)
		return -1;
	json_t *j = NULL;
	am_store_row(ctx->srv->store, &j, "SELECT state FROM ft_jobs WHERE id = ?", "i", id);
	const char *st = json_string_value(json_object_get(j, "state"));
	if (strcmp(st, "stopped") && strcmp(st, "failed")) {
		am_err_set(err, AM_E_CONFLICT, "", "job %lld is %s; only a stopped or failed job can be resumed", id, st);
		json_decref(j);
		return -1;
	}
	json_decref(j);
	/* it trains on its datasets again: each must still be there for its
	 * owner (someone else's may have been taken back or deleted) */
	json_t *gone = NULL;
	am_store_row(ctx->srv->store, &gone,
		     "SELECT e.key AS i FROM ft_jobs j, json_each(j.datasets) e LEFT JOIN datasets d ON d.id = e.value"
		     " WHERE j.id = ? AND (d.id IS NULL OR NOT (d.owner_id IS j.owner_id OR d.visibility = 'shared'))"
		     " ORDER BY e.key LIMIT 1", "i", id);
	if (gone) {
		long long i = json_integer_value(json_object_get(gone, "i"));
		json_decref(gone);
		return am_err_set(err, AM_E_CONFLICT, "datasets", "datasets[%lld] of job %lld was deleted or is no longer shared;"
				  " the job cannot resume", i, id);
	}
	long long now = am_wall_ms();
	ctx->task_id = am_task_create(ctx->srv->store, "finetune.resume", ctx->target, ctx->who.username, AM_TASK_RUNNING, "queued");
	am_store_exec(ctx->srv->store, "UPDATE ft_jobs SET state = 'queued', reason = 'waiting to resume', resume = 1,"
		      " finished_at = NULL, task_id = ?, updated_at = ? WHERE id = ?", "iii", ctx->task_id, now, id);
	am_finetune_kick(ctx->srv->finetune);
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
	json_t *j = NULL;
	am_store_row(ctx->srv->store, &j, "SELECT state, method, output_name, export_state FROM ft_jobs WHERE id = ?", "i", id);
	const char *st = json_string_value(json_object_get(j, "state")), *m = json_string_value(json_object_get(j, "method"));
	const char *ex = json_string_value(json_object_get(j, "export_state")) ?: "";
	char def[160];
	am_fmt(def, sizeof def, "%.120s-merged", json_string_value(json_object_get(j, "output_name")));
	if (!name)
		name = def;
	long long taken = 0;
	am_store_int(ctx->srv->store, &taken, 0, "SELECT COUNT(*) FROM models WHERE name = ?", "s", name);
	int rc = -1;
	if (strcmp(m, "lora") && strcmp(m, "qlora"))
		am_err_set(err, AM_E_CONFLICT, "", "job %lld trained a full model; there is no adapter to merge", id);
	else if (strcmp(st, "succeeded"))
		am_err_set(err, AM_E_CONFLICT, "", "job %lld is %s; only a finished job can be merged", id, st);
	else if (!strcmp(ex, "queued") || !strcmp(ex, "running") || !strcmp(ex, "succeeded"))
		am_err_set(err, AM_E_CONFLICT, "", "job %lld's adapter is already %s", id,
			   !strcmp(ex, "succeeded") ? "merged" : "being merged");
	else if (taken)
		am_err_set(err, AM_E_CONFLICT, "name", "a model named '%s' already exists", name);
	else
		rc = 0;
	json_decref(j);
	if (rc != 0)
		return -1;
	am_store_exec(ctx->srv->store, "UPDATE ft_jobs SET export_state = 'queued', export_reason = '', export_name = ?,"
		      " updated_at = ? WHERE id = ?", "sii", name, am_wall_ms(), id);
	am_finetune_kick(ctx->srv->finetune);
	ctx->resp = job_json(ctx->srv, id);
	ctx->status = 202;
	return 0;
}

/* Removes a folder aimaas made, with what is inside (links not followed). */
static void remove_tree(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			char p[PATH_MAX];
			am_fmt(p, sizeof p, "%s/%s", path, e->d_name);
			struct stat sb;
			if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
				remove_tree(p);
			else
				unlink(p);
		}
		closedir(d);
	}
	rmdir(path);
}

static int delete(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (job_param(ctx, &id, err) != 0)
		return -1;
	long long active = 0, result = 0;
	char sql[160];
	am_fmt(sql, sizeof sql, "SELECT COUNT(*) FROM ft_jobs WHERE id = ? AND state IN %s", ACTIVE);
	am_store_int(ctx->srv->store, &active, 0, sql, "i", id);
	if (active)
		return am_err_set(err, AM_E_CONFLICT, "", "job %lld is still active; stop it first", id);
	am_store_int(ctx->srv->store, &result, 0, "SELECT (SELECT COUNT(*) FROM models m WHERE m.id IN (j.result_model_id, j.export_model_id))"
		     " + COALESCE(j.export_state IN ('queued','running'), 0) FROM ft_jobs j WHERE j.id = ?", "i", id);
	if (result)
		return am_err_set(err, AM_E_CONFLICT, "", "job %lld's output is registered as a model (or being merged); delete"
				  " that model first", id);
	if (am_store_exec(ctx->srv->store, "DELETE FROM ft_jobs WHERE id = ?", "i", id) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not delete the job");
	char dir[PATH_MAX];
	job_file(ctx, id, "", dir, sizeof dir);
	dir[strlen(dir) - 1] = '\0';
	remove_tree(dir);
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
