/* am_finetune: see am_finetune.h. */
#include "am_finetune.h"
#include "am_job_state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../am_server.h"
#include "../base/am_buf.h"
#include "../base/am_err.h"
#include "../base/am_json.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_msg.h"
#include "../base/am_path.h"
#include "../base/am_time.h"
#include "../deploy/am_deploy.h"
#include "../engine/am_engine.h"
#include "../model/am_inspect.h"
#include "../base/am_file.h"
#include "../node/am_node.h"
#include "../runtime/am_runtime.h"
#include "../sched/am_capacity.h"
#include "../sched/am_capacity_db.h"
#include "../store/am_store.h"
#include "../task/am_task.h"


struct am_finetune {
	struct am_server *srv;
	struct event *tick, *kick;
	int kicked;
};

/* ---- the job folder ---- */

/* LLaMA-Factory's image, for trainers on a cluster */
#define AM_LLAMAFACTORY_IMAGE "hiyouga/llamafactory:latest"

static void job_paths(struct am_finetune *f, long long id, char *dir, size_t size)
{
	am_fmt(dir, size, "%s/finetune/%lld", f->srv->cfg.data_dir, id);
}

static int write_json(const char *path, json_t *v)
{
	char tmp[PATH_MAX + 8];
	am_fmt(tmp, sizeof tmp, "%s.tmp", path);
	/* not json_dump_file: its fopen lacks close-on-exec */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	int rc = json_dumpfd(v, fd, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (close(fd) != 0 || rc != 0)
		return -1;
	return rename(tmp, path);
}

/* dataset_info.json entries for the job's datasets, with a link to each
 * stored file. Names are "ds<id>" so no user text reaches the trainer's
 * command line. Returns the comma list of names, or NULL with why. */
static char *write_datasets(struct am_finetune *f, json_t *job, const char *datadir, char *why, size_t whysize)
{
	json_t *ids = json_loads(json_string_value(json_object_get(job, "datasets")) ?: "[]", 0, NULL);
	json_t *info = json_object();
	struct am_buf names;
	am_buf_init(&names, 4096);
	size_t i;
	json_t *v;
	int ok = 1;
	json_array_foreach(ids, i, v) {
		json_t *ds = NULL;
		am_store_row(f->srv->store, &ds, "SELECT id, path, file_type, format, columns, state, json_extract(report, '$.purpose') AS purpose"
			     " FROM datasets WHERE id = ?",
			     "i", (long long)json_integer_value(v));
		if (!ds) {
			am_fmt(why, whysize, AM_MSG_T("dataset %lld no longer exists"), (long long)json_integer_value(v));
			ok = 0;
			break;
		}
		char name[32], file[64], link[PATH_MAX + 80];
		am_fmt(name, sizeof name, "ds%lld", (long long)json_integer_value(v));
		am_fmt(file, sizeof file, "%s.%s", name, json_string_value(json_object_get(ds, "file_type")));
		am_fmt(link, sizeof link, "%s/%s", datadir, file);
		unlink(link);
		if (symlink(json_string_value(json_object_get(ds, "path")), link) != 0) {
			am_fmt(why, whysize, AM_MSG_T("could not link dataset %s: %s"), name, strerror(errno));
			json_decref(ds);
			ok = 0;
			break;
		}
		const char *fmt = json_string_value(json_object_get(ds, "format"));
		const char *purpose = json_string_value(json_object_get(ds, "purpose")) ?: "sft";
		int pref = !strcmp(purpose, "preference");
		json_t *e = json_pack("{s:s}", "file_name", file);
		if (!strcmp(purpose, "text")) {
			json_object_set_new(e, "columns", json_pack("{s:s}", "prompt", "text"));
		} else if (!strcmp(fmt, "openai")) {
			json_object_set_new(e, "formatting", json_string("sharegpt"));
			json_object_set_new(e, "columns", json_pack("{s:s}", "messages", "messages"));
			json_object_set_new(e, "tags", json_pack("{s:s,s:s,s:s,s:s,s:s}", "role_tag", "role", "content_tag", "content",
								 "user_tag", "user", "assistant_tag", "assistant", "system_tag",
								 "system"));
		} else if (!strcmp(fmt, "sharegpt")) {
			json_object_set_new(e, "formatting", json_string("sharegpt"));
			json_object_set_new(e, "columns", json_pack("{s:s}", "messages", "conversations"));
		} else {
			json_object_set_new(e, "formatting", json_string("alpaca"));
			json_t *cols = json_loads(json_string_value(json_object_get(ds, "columns")) ?: "{}", 0, NULL);
			const char *c;
			json_t *cm = json_object();
			static const char *const map[][2] = { { "instruction", "prompt" }, { "input", "query" },
							       { "output", "response" }, { "system", "system" } };
			for (int k = 0; k < 4; k++)
				if ((c = json_string_value(json_object_get(cols, map[k][0]))))
					json_object_set_new(cm, map[k][1], json_string(c));
			if (json_object_size(cm))
				json_object_set_new(e, "columns", cm);
			else
				json_decref(cm);
			json_decref(cols);
		}
		if (pref) { /* LLaMA-Factory's pairwise data: a prompt, a chosen and a rejected answer */
			json_object_set_new(e, "ranking", json_true());
			json_t *cols = json_object_get(e, "columns");
			if (!cols)
				json_object_set_new(e, "columns", cols = json_object());
			if (!strcmp(fmt, "alpaca")) {
				json_object_set_new(cols, "prompt", json_string("instruction"));
				json_object_set_new(cols, "query", json_string("input"));
			}
			json_object_set_new(cols, "chosen", json_string("chosen"));
			json_object_set_new(cols, "rejected", json_string("rejected"));
		}
		json_object_set_new(info, name, e);
		am_buf_printf(&names, "%s%s", names.len ? "," : "", name);
		json_decref(ds);
	}
	char path[PATH_MAX + 32];
	am_fmt(path, sizeof path, "%s/dataset_info.json", datadir);
	if (ok && write_json(path, info) != 0) {
		am_fmt(why, whysize, AM_MSG_T("could not write %s"), path);
		ok = 0;
	}
	json_decref(info);
	json_decref(ids);
	char *out = ok ? am_strdup(am_buf_str(&names)) : NULL;
	am_buf_free(&names);
	return out;
}

/* The trainer's config as LLaMA-Factory reads it (JSON is loaded as YAML). */
static json_t *train_config(json_t *job, json_t *model, const char *dir, const char *datasets, int bf16)
{
	json_t *params = json_loads(json_string_value(json_object_get(job, "params")) ?: "{}", 0, NULL);
	const char *method = json_string_value(json_object_get(job, "method"));
	char datadir[PATH_MAX], out[PATH_MAX];
	am_fmt(datadir, sizeof datadir, "%s/data", dir);
	am_fmt(out, sizeof out, "%s/out", dir);
	json_t *c = json_pack("{s:s,s:b,s:s,s:b,s:s,s:s,s:s,s:s,s:s,s:b,s:s,s:b,s:I}", "model_name_or_path",
			      json_string_value(json_object_get(model, "path")), "trust_remote_code", 1, "stage",
			      json_string_value(json_object_get(job, "stage")), "do_train", 1, "finetuning_type",
			      !strcmp(method, "qlora") ? "lora" : method, "dataset", datasets, "dataset_dir", datadir, "template",
			      json_string_value(json_object_get(job, "template")), "output_dir", out, "plot_loss", 1, "report_to",
			      "none", "overwrite_output_dir", !json_integer_value(json_object_get(job, "resume")), "ddp_timeout",
			      (json_int_t)180000000);
	json_object_set_new(c, bf16 ? "bf16" : "fp16", json_true());
	if (!strcmp(method, "qlora")) {
		json_object_set_new(c, "quantization_bit", json_integer(json_integer_value(json_object_get(job, "quantization_bit")) ?: 4));
		json_object_set_new(c, "quantization_method", json_string("bnb"));
	}
	const char *key;
	json_t *v;
	json_object_foreach(params, key, v) {
		int lora_key = !strncmp(key, "lora_", 5);
		if (lora_key && strcmp(method, "lora") && strcmp(method, "qlora"))
			continue;
		if (!strncmp(key, "freeze_", 7) && strcmp(method, "freeze"))
			continue;
		if (!strcmp(key, "val_size") && json_number_value(v) > 0) {
			json_object_set_new(c, "eval_strategy", json_string("steps"));
			json_object_set(c, "eval_steps", json_object_get(params, "save_steps") ?: json_integer(500));
			json_object_set_new(c, "per_device_eval_batch_size", json_integer(1));
		}
		json_object_set(c, key, v);
	}
	int ds = (int)json_integer_value(json_object_get(job, "deepspeed"));
	if (ds) {
		char p[PATH_MAX + 32];
		am_fmt(p, sizeof p, "%s/ds_z%d_config.json", dir, ds);
		json_object_set_new(c, "deepspeed", json_string(p));
	}
	json_decref(params);
	return c;
}

/* A DeepSpeed ZeRO config with the "auto" values HF fills in. */
static int write_deepspeed(const char *dir, int stage)
{
	json_t *z = json_pack("{s:i,s:b}", "stage", stage, "overlap_comm", 0);
	if (stage == 3)
		json_object_set_new(z, "stage3_gather_16bit_weights_on_model_save", json_true());
	json_t *c = json_pack("{s:s,s:s,s:s,s:s,s:o,s:{s:s},s:{s:s},s:o}", "train_batch_size", "auto",
			      "train_micro_batch_size_per_gpu", "auto", "gradient_accumulation_steps", "auto",
			      "gradient_clipping", "auto", "zero_allow_untested_optimizer",
			      json_true(), "fp16", "enabled", "auto", "bf16", "enabled", "auto", "zero_optimization", z);
	char p[PATH_MAX + 32];
	am_fmt(p, sizeof p, "%s/ds_z%d_config.json", dir, stage);
	int rc = write_json(p, c);
	json_decref(c);
	return rc;
}

/* ---- GPUs ---- */

static void release(struct am_finetune *f, long long id)
{
	am_capacity_db_release(f->srv->store, "job", id);
}

/* Picks and reserves the job's GPUs through the planner (the pinned ones,
 * or the emptiest cards with room, all on one node). 0, or -1 with why (no
 * room now). */
static int place(struct am_finetune *f, json_t *job, json_t *model, struct am_buf *visible, int *bf16, char *node,
		 size_t nodesize, char *why, size_t whysize)
{
	struct am_capacity cap;
	am_capacity_db_load(f->srv, &cap);
	int rc = -1;
	struct am_plan_req req;
	memset(&req, 0, sizeof req);
	req.model = json_string_value(json_object_get(job, "name")) ?: "the job";
	req.replicas = 1;
	req.spread = 1;
	req.tp = (int)json_integer_value(json_object_get(job, "gpu_count"));
	json_t *pinned = json_loads(json_string_value(json_object_get(job, "pinned_gpus")) ?: "[]", 0, NULL);
	if (json_array_size(pinned)) {
		char err[512];
		if (am_capacity_pin(&cap, pinned, req.pinned, AM_PLAN_MAX, &req.npinned, err, sizeof err) != 0) {
			am_fmt(why, whysize, AM_MSG_T("waiting for GPUs: %s"), err);
			goto out;
		}
		req.tp = req.npinned;
	}
	json_t *params = json_loads(json_string_value(json_object_get(job, "params")) ?: "{}", 0, NULL);
	req.need = am_finetune_mem_need(json_string_value(json_object_get(job, "method")),
					(int)json_integer_value(json_object_get(job, "quantization_bit")),
					json_integer_value(json_object_get(model, "parameters")), req.tp,
					json_integer_value(json_object_get(job, "deepspeed")) != 0,
					json_is_true(json_object_get(params, "pure_bf16")));
	json_decref(params);
	if (!req.need)
		req.need = 1; /* a fixed need, however small */
	struct am_plan p;
	am_planner_plan(cap.gpus, cap.n, &req, &p);
	if (!p.ok) {
		am_fmt(why, whysize, AM_MSG_T("waiting for GPUs: %s"), p.reason);
		goto out;
	}
	long long id = json_integer_value(json_object_get(job, "id"));
	*bf16 = 1;
	const char *gid[AM_PLAN_MAX];
	json_t *ids = json_array();
	for (int i = 0; i < req.tp; i++) {
		const struct am_plan_gpu *g = &cap.gpus[p.choice[i]];
		gid[i] = g->id;
		am_buf_printf(visible, "%s%d", i ? "," : "", g->index);
		json_array_append_new(ids, json_string(g->id));
		if (g->cc_major && g->cc_major < 8)
			*bf16 = 0; /* V100, T4, 2080 Ti: no bf16 */
	}
	rc = am_capacity_db_reserve(f->srv->store, "job", id, gid, p.reserve, req.tp);
	am_strlcpy(node, cap.gpus[p.choice[0]].node, nodesize); /* the planner keeps a job on one node */
	char *s = am_json_dump(ids);
	am_store_exec(f->srv->store, "UPDATE ft_jobs SET gpus = ?, mem_per_gpu = ?, node_id = ? WHERE id = ?", "sisi", s,
		      (long long)req.need, node, id);
	free(s);
	json_decref(ids);
out:
	json_decref(pinned);
	am_capacity_free(&cap);
	return rc;
}

/* ---- driving a job ---- */

static void job_started(struct am_finetune *f, long long id, const char *ref, struct am_runtime *rt);
static void export_started(struct am_finetune *f, long long id, const char *ref);

/* What a move writes besides the state and its reason, by where it goes:
 * ref for a trainer (or merge) that started, task for a resumed job, name
 * for a merge asked for. */
struct move_cols {
	const char *runtime; /* the runtime that started it (to starting) */
	const char *ref;
	long long task;
	const char *name;
};

/* A move the machine refused, or one whose row had moved meanwhile: a bug
 * (the tests make it abort) or a race the caller should have seen. */
static int refused(const char *what, long long id, const char *from, const char *to, const char *now, const char *reason)
{
	if (now)
		am_warn("finetune", "job %lld: %s%s -> %s not written: it is %s now (%s)", id, what, from, to, now,
			reason ? reason : "");
	else
		am_warn("finetune", "job %lld: %s%s -> %s refused by the state machine (%s)", id, what, from, to,
			reason ? reason : "");
	if (getenv("AIMAAS_TEST_ABORT_ON_REFUSED_MOVE")) /* the tests: a refused move is a bug */
		abort();
	return -1;
}

/* Opens a transaction unless the caller holds one (the API's); 1 when it
 * opened one, which end_tx then commits or rolls back. */
static int begin_tx(struct am_finetune *f)
{
	return !am_store_in_tx(f->srv->store) && am_store_begin(f->srv->store) == 0;
}

static int end_tx(struct am_finetune *f, int own, int rc)
{
	if (!own)
		return rc;
	if (rc == 0 && am_store_commit(f->srv->store) == 0)
		return 0;
	am_store_rollback(f->srv->store);
	return -1;
}

/* The one way a job changes state (am_job_state.h): the move from `from`
 * (the state the caller read) to `to` is checked against the machine and
 * written with its reason (NULL keeps the reason) only while the row still
 * says `from`; the job's other columns, reservations and task move with it
 * (x: what the move needs, or NULL). Logged when the state changes. 0, or
 * -1 when refused, raced or gone (nothing written). */
static int job_to(struct am_finetune *f, long long id, enum am_job_state from, enum am_job_state to, const char *reason,
		  const struct move_cols *x)
{
	struct am_store *st = f->srv->store;
	const char *fs = am_job_state_name(from), *ts = am_job_state_name(to);
	if (!am_job_transition_ok(from, to))
		return refused("", id, fs, ts, NULL, reason);
	int own = begin_tx(f), rc = -1;
	long long now = am_wall_ms();
	if (am_store_exec(st, "UPDATE ft_jobs SET state = ?, reason = COALESCE(?, reason), updated_at = ? WHERE id = ? AND state = ?",
			  "ssiis", ts, reason, now, id, fs) != 0)
		goto out;
	if (am_store_changes(st) != 1) {
		json_t *row = NULL;
		am_store_row(st, &row, "SELECT state FROM ft_jobs WHERE id = ?", "i", id);
		if (row)
			refused("", id, fs, ts, json_string_value(json_object_get(row, "state")) ?: "?", reason);
		json_decref(row);
		goto out;
	}
	rc = 0;
	if (to == AM_JOB_STARTING && from != to)
		rc = am_store_exec(st, "UPDATE ft_jobs SET runtime = ?, rt_ref = ?, started_at = COALESCE(started_at, ?),"
				   " stop_requested_at = NULL WHERE id = ?", "ssii", x && x->runtime ? x->runtime : "local",
				   x ? x->ref : NULL, now, id);
	else if (to == AM_JOB_STOPPING && from != to)
		rc = am_store_exec(st, "UPDATE ft_jobs SET stop_requested_at = ? WHERE id = ?", "ii", now, id);
	else if (to == AM_JOB_QUEUED && am_job_state_finished(from)) /* resumed */
		rc = am_store_exec(st, "UPDATE ft_jobs SET resume = 1, finished_at = NULL, task_id = NULLIF(?, 0) WHERE id = ?",
				   "ii", x ? x->task : 0, id);
	else if (am_job_state_finished(to) && from != to) {
		/* the job, its reservations and its task move together */
		rc = am_store_exec(st, "UPDATE ft_jobs SET finished_at = ? WHERE id = ?", "ii", now, id);
		release(f, id);
		long long task = 0;
		am_store_int(st, &task, 0, "SELECT task_id FROM ft_jobs WHERE id = ?", "i", id);
		if (task)
			am_task_update(st, task, to == AM_JOB_SUCCEEDED ? AM_TASK_SUCCEEDED
					   : to == AM_JOB_FAILED ? AM_TASK_FAILED : AM_TASK_CANCELLED,
				       100, reason && *reason ? reason : ts);
	}
out:
	rc = end_tx(f, own, rc);
	if (rc == 0 && from != to)
		am_info("finetune", "job %lld: %s -> %s%s%s", id, fs, ts, reason && *reason ? ": " : "", reason ? reason : "");
	return rc;
}

/* The same for a job's merge (export_state): checked against the export
 * machine, written only while the row still says `from` (NULL for none). */
static int export_to(struct am_finetune *f, long long id, enum am_export_state from, enum am_export_state to,
		     const char *reason, const struct move_cols *x)
{
	struct am_store *st = f->srv->store;
	const char *fs = am_export_state_name(from), *ts = am_export_state_name(to);
	if (!am_export_transition_ok(from, to) || to == AM_EXPORT_NONE)
		return refused("export ", id, fs, ts, NULL, reason);
	int own = begin_tx(f), rc = -1;
	if (am_store_exec(st, "UPDATE ft_jobs SET export_state = ?, export_reason = COALESCE(?, export_reason), updated_at = ?"
			  " WHERE id = ? AND export_state IS ?", "ssiis", ts, reason, am_wall_ms(), id,
			  from == AM_EXPORT_NONE ? NULL : fs) != 0)
		goto out;
	if (am_store_changes(st) != 1) {
		json_t *row = NULL;
		am_store_row(st, &row, "SELECT export_state FROM ft_jobs WHERE id = ?", "i", id);
		if (row)
			refused("export ", id, fs, ts, json_string_value(json_object_get(row, "export_state")) ?: "none", reason);
		json_decref(row);
		goto out;
	}
	rc = 0;
	if (to == AM_EXPORT_RUNNING && from != to)
		rc = am_store_exec(st, "UPDATE ft_jobs SET export_ref = ? WHERE id = ?", "si", x ? x->ref : NULL, id);
	else if (to == AM_EXPORT_QUEUED && x && x->name) /* asked for (again) */
		rc = am_store_exec(st, "UPDATE ft_jobs SET export_name = ? WHERE id = ?", "si", x->name, id);
out:
	rc = end_tx(f, own, rc);
	if (rc == 0 && from != to)
		am_info("finetune", "job %lld: export %s -> %s%s%s", id, fs, ts, reason && *reason ? ": " : "",
			reason ? reason : "");
	return rc;
}

void am_finetune_program(struct am_server *srv, char *out, size_t size, const char **source)
{
	const char *src = "setting", *cli = getenv("AIMAAS_LLAMAFACTORY_CLI");
	am_deploy_program_setting(srv->deploy, AM_FINETUNE_ENGINE, out, size);
	if (!*out) {
		src = cli && *cli ? "env" : "default";
		am_strlcpy(out, cli && *cli ? cli : "llamafactory-cli", size);
	}
	if (source)
		*source = src;
}

/* Starts `llamafactory-cli VERB CONFIG` (am_finetune_program: the Engines
 * page can name another program) through the runtime of node, with env
 * added; kind and id name it ("job" or "export"), gpus the GPUs it holds
 * there. 0 with ref and *rt_out (the runtime that started it), or -1 with
 * err (a missing program: at once, saying where to set it). */
static int run_cli(struct am_finetune *f, const char *kind, long long id, const char *node, const char *verb,
		   const char *cfgp, struct am_argv *env, const char *gpus, const char *marker, const char *log,
		   const char *model_path, const char *work_dir, char *ref, size_t refsize, struct am_runtime **rt_out,
		   char *err, size_t errsize)
{
	char rtname[160];
	struct am_runtime *rt = am_runtimes_get(&f->srv->runtimes, am_node_runtime(f->srv, node, rtname, sizeof rtname));
	*rt_out = rt;
	if (!rt) {
		am_fmt(err, errsize, AM_MSG_T("no runtime '%s' for node %s"), rtname, node);
		am_argv_free(env);
		return -1;
	}
	char bin[PATH_MAX], found[PATH_MAX];
	/* in a container, the image's program (AIMAAS_LLAMAFACTORY_IMAGE: another image) */
	if (rt->ops->containers)
		am_strlcpy(bin, "llamafactory-cli", sizeof bin);
	else
		am_finetune_program(f->srv, bin, sizeof bin, NULL);
	struct am_err why;
	if (rt->ops->this_host && am_deploy_program_found(f->srv->deploy, bin, NULL, found, sizeof found, &why) != 0) {
		am_strlcpy(err, why.msg, errsize);
		am_argv_free(env);
		return -1;
	}
	const char *image = getenv("AIMAAS_LLAMAFACTORY_IMAGE");
	char *argv[] = { bin, (char *)verb, (char *)cfgp, NULL };
	am_argv_add(env, "DISABLE_VERSION_CHECK=1");
	int ngpus = gpus && *gpus ? 1 : 0;
	for (const char *c = gpus; c && *c; c++)
		ngpus += *c == ',';
	struct am_rt_spec spec = {
		.kind = kind,
		.id = id,
		.argv = argv,
		.env = env->v,
		.node = node,
		.gpus = gpus,
		.ngpus = ngpus,
		.log_path = log,
		.owner = marker,
		.image = image && *image ? image : AM_LLAMAFACTORY_IMAGE,
		.model_path = model_path,
		.work_dir = work_dir,
	};
	int rc = rt->ops->start(rt, &spec, ref, refsize, err, errsize);
	am_argv_free(env);
	return rc;
}

/* A job's runtime reference while its trainer is meant to run, or NULL. */
static const char *job_ref(json_t *job)
{
	const char *st = json_string_value(json_object_get(job, "state"));
	const char *ref = json_string_value(json_object_get(job, "rt_ref"));
	if (!ref || !ref[0] || !st || (strcmp(st, "starting") && strcmp(st, "running") && strcmp(st, "stopping")))
		return NULL;
	return ref;
}

/* The export's reference while it runs, or NULL. */
static const char *export_ref(json_t *job)
{
	const char *st = json_string_value(json_object_get(job, "export_state"));
	const char *ref = json_string_value(json_object_get(job, "export_ref"));
	return ref && ref[0] && st && !strcmp(st, "running") ? ref : NULL;
}

/* The runtime of a job's row, by the name it recorded ("local" when none);
 * NULL for a runtime this aimaas lacks. */
static struct am_runtime *runtime_of(struct am_finetune *f, json_t *job)
{
	return am_runtimes_get(&f->srv->runtimes, json_string_value(json_object_get(job, "runtime")));
}

static void start_job(struct am_finetune *f, json_t *job)
{
	struct am_server *srv = f->srv;
	long long id = json_integer_value(json_object_get(job, "id"));
	json_t *model = NULL;
	am_store_row(srv->store, &model, "SELECT id, name, path, parameters, architecture FROM models WHERE id = ?", "i",
		     json_integer_value(json_object_get(job, "base_model_id")));
	if (!model || !json_string_value(json_object_get(model, "path"))) {
		job_to(f, id, AM_JOB_QUEUED, AM_JOB_FAILED, AM_MSG_T("the base model is gone or has no local files"), NULL);
		json_decref(model);
		return;
	}
	char why[1024] = "";
	struct am_buf visible;
	am_buf_init(&visible, 1024);
	int bf16 = 1;
	/* the reservations and the intent (the marker the trainer will carry)
	 * commit together, before the spawn */
	if (am_store_begin(srv->store) != 0) {
		am_buf_free(&visible);
		json_decref(model);
		return;
	}
	char node[64];
	if (place(f, job, model, &visible, &bf16, node, sizeof node, why, sizeof why) != 0) {
		if (strcmp(json_string_value(json_object_get(job, "reason")) ?: "", why))
			job_to(f, id, AM_JOB_QUEUED, AM_JOB_QUEUED, why, NULL); /* still waiting: why */
		if (am_store_commit(srv->store) != 0)
			am_store_rollback(srv->store);
		am_buf_free(&visible);
		json_decref(model);
		return;
	}
	char dir[PATH_MAX], sub[PATH_MAX + 16], log[PATH_MAX + 16], cfgp[PATH_MAX + 16];
	job_paths(f, id, dir, sizeof dir);
	am_fmt(sub, sizeof sub, "%s/data", dir);
	am_fmt(log, sizeof log, "%s/train.log", dir);
	am_fmt(cfgp, sizeof cfgp, "%s/train.json", dir);
	char *names = NULL;
	json_t *cfg = NULL;
	int ds = (int)json_integer_value(json_object_get(job, "deepspeed"));
	char base_path[PATH_MAX];
	am_strlcpy(base_path, json_string_value(json_object_get(model, "path")), sizeof base_path);
	if (am_mkdirs(sub) != 0)
		am_fmt(why, sizeof why, AM_MSG_T("could not create %s: %s"), sub, strerror(errno));
	else if ((names = write_datasets(f, job, sub, why, sizeof why)) == NULL)
		;
	else if (ds && write_deepspeed(dir, ds) != 0)
		am_strlcpy(why, AM_MSG_T("could not write the DeepSpeed config"), sizeof why);
	else if (write_json(cfgp, cfg = train_config(job, model, dir, names, bf16)) != 0)
		am_fmt(why, sizeof why, AM_MSG_T("could not write %s"), cfgp);
	json_decref(cfg);
	free(names);
	json_decref(model);
	if (why[0]) {
		am_buf_free(&visible);
		job_to(f, id, AM_JOB_QUEUED, AM_JOB_FAILED, why, NULL);
		if (am_store_commit(srv->store) != 0)
			am_store_rollback(srv->store);
		return;
	}
	char marker[128];
	am_runtime_marker(srv->owner_id, "job", id, marker, sizeof marker);
	am_store_exec(srv->store, "UPDATE ft_jobs SET spawn_marker = ?, gpu_indices = ?, job_dir = ?, precision = ? WHERE id = ?",
		      "ssssi", marker, am_buf_str(&visible), dir, bf16 ? "bf16" : "fp16", id);
	if (am_store_commit(srv->store) != 0) {
		am_store_rollback(srv->store);
		am_buf_free(&visible);
		return; /* nothing started; the next pass tries again */
	}
	struct am_argv env = { 0 };
	char e1[1100], e2[PATH_MAX + 32];
	am_fmt(e1, sizeof e1, "CUDA_VISIBLE_DEVICES=%s", am_buf_str(&visible));
	am_fmt(e2, sizeof e2, "LLAMABOARD_WORKDIR=%s/out", dir);
	am_argv_add(&env, e1);
	am_argv_add(&env, "LLAMABOARD_ENABLED=1");
	am_argv_add(&env, e2);
	am_argv_add(&env, "PYTHONUNBUFFERED=1");
	if (strchr(am_buf_str(&visible), ',') || ds)
		am_argv_add(&env, "FORCE_TORCHRUN=1");
	char ref[AM_RT_REF_MAX], err[512];
	struct am_runtime *rt;
	if (run_cli(f, "job", id, node, "train", cfgp, &env, am_buf_str(&visible), marker, log, base_path, dir, ref, sizeof ref, &rt, err,
		    sizeof err) != 0) {
		am_buf_free(&visible);
		job_to(f, id, AM_JOB_QUEUED, AM_JOB_FAILED, err, NULL);
		return;
	}
	job_started(f, id, ref, rt);
	am_info("finetune", "job %lld: started %s on GPUs %s", id, ref, am_buf_str(&visible));
	am_buf_free(&visible);
}

/* A queued job's trainer started (or was adopted) as ref. */
static void job_started(struct am_finetune *f, long long id, const char *ref, struct am_runtime *rt)
{
	job_to(f, id, AM_JOB_QUEUED, AM_JOB_STARTING, "", &(struct move_cols){ .runtime = am_runtime_name(rt), .ref = ref });
}

/* A queued merge started (or was adopted) as ref. */
static void export_started(struct am_finetune *f, long long id, const char *ref)
{
	export_to(f, id, AM_EXPORT_QUEUED, AM_EXPORT_RUNNING, "", &(struct move_cols){ .ref = ref });
}

int am_finetune_owns_ref(struct am_finetune *f, const char *ref)
{
	json_t *jobs = NULL;
	am_store_rows(f->srv->store, &jobs, "SELECT runtime, state, rt_ref, export_state, export_ref FROM ft_jobs"
		      " WHERE state IN ('starting','running','stopping') OR export_state = 'running'", NULL);
	int mine = 0;
	size_t i;
	json_t *j;
	json_array_foreach(jobs, i, j) {
		struct am_runtime *rt = runtime_of(f, j);
		const char *a = job_ref(j), *b = export_ref(j);
		mine |= rt && ((a && rt->ops->same(rt, a, ref)) || (b && rt->ops->same(rt, b, ref)));
	}
	json_decref(jobs);
	return mine;
}

int am_finetune_claim(struct am_finetune *f, const char *ref, const char *marker, const char *kind, long long id)
{
	json_t *job = NULL;
	am_store_row(f->srv->store, &job, "SELECT * FROM ft_jobs WHERE id = ?", "i", id);
	int rc = 0, exp = !strcmp(kind, "export");
	struct am_runtime *rt = job ? runtime_of(f, job) : NULL;
	if (!rt)
		goto out;
	const char *rec = exp ? export_ref(job) : job_ref(job);
	if (rec && rt->ops->same(rt, rec, ref)) {
		rc = 1; /* the recorded process */
		goto out;
	}
	const char *want = json_string_value(json_object_get(job, exp ? "export_marker" : "spawn_marker"));
	const char *state = json_string_value(json_object_get(job, exp ? "export_state" : "state"));
	if (!want || strcmp(want, marker) || !state || strcmp(state, "queued"))
		goto out;
	am_info("finetune", "job %lld: adopted %s %s: aimaas stopped before it recorded the start", id,
		exp ? "export" : "trainer", ref);
	if (exp)
		export_started(f, id, ref);
	else
		job_started(f, id, ref, rt);
	rc = 1;
out:
	json_decref(job);
	return rc;
}

/* Why a run failed: its exit status and the last telling log line. */
static void failure_reason(const char *log, const char *status, char *out, size_t size)
{
	char **lines = NULL;
	int n = am_file_tail(log, 400, &lines);
	const char *pick = am_engine_root_cause(lines, n); /* the same rule as an engine's */
	for (int i = n - 1; i >= 0 && !pick; i--) /* the exception line Python prints last */
		if (strstr(lines[i], "Error:") || strstr(lines[i], "Exception:"))
			pick = lines[i];
	for (int i = n - 1; i >= 0 && !pick; i--)
		if (lines[i][strspn(lines[i], " \t")])
			pick = lines[i];
	const char *how = status[0] ? status : AM_MSG_T("an unknown status");
	if (pick)
		am_fmt(out, size, AM_MSG_T("the trainer ended with %s: %.400s"), how, pick + strspn(pick, " \t"));
	else
		am_fmt(out, size, AM_MSG_T("the trainer ended with %s"), how);
	am_file_lines_free(lines, n);
}

/* Registers a folder the trainer wrote as a model; its id, or 0. */
static long long register_model(struct am_finetune *f, json_t *job, const char *dir, const char *name, const char *desc,
				long long base)
{
	long long id = json_integer_value(json_object_get(job, "id"));
	char ierr[256];
	json_t *facts = am_inspect(dir, ierr, sizeof ierr);
	if (!facts) {
		am_warn("finetune", "job %lld: %s not registered: %s", id, dir, ierr);
		return 0;
	}
	char *fs = am_json_dump(facts);
	long long now = am_wall_ms();
	int rc = am_store_exec(f->srv->store,
			       "INSERT INTO models(name, display_name, description, tags, source, path, state, kind, architecture,"
			       " parameters, weight_bytes, max_context, facts, base_model_id, created_by, created_at, updated_at)"
			       " VALUES(?, ?, ?, '[\"fine-tuned\"]', 'local', ?, 'ready', ?, ?, ?, ?, ?, ?, NULLIF(?, 0), ?, ?, ?)",
			       "ssssssiiisisii", name, name, desc, dir, json_string_value(json_object_get(facts, "kind")),
			       json_string_value(json_object_get(facts, "architecture")),
			       (long long)json_integer_value(json_object_get(facts, "parameters")),
			       (long long)json_integer_value(json_object_get(facts, "weight_bytes")),
			       (long long)json_integer_value(json_object_get(facts, "max_context")), fs, base,
			       json_string_value(json_object_get(job, "created_by")), now, now);
	free(fs);
	json_decref(facts);
	if (rc != 0) {
		am_warn("finetune", "job %lld: could not register model '%s' (the name may be taken)", id, name);
		return 0;
	}
	long long mid = am_store_last_id(f->srv->store);
	/* trained on the owner's data: the owner's (and admins') alone */
	am_store_exec(f->srv->store, "UPDATE models SET owner_id = ?, visibility = 'private' WHERE id = ?", "ii",
		      (long long)json_integer_value(json_object_get(job, "owner_id")), mid);
	return mid;
}

/* Registers a finished job's output: an adapter linked to its base, or a
 * full model. */
static void register_result(struct am_finetune *f, json_t *job, const char *out)
{
	const char *method = json_string_value(json_object_get(job, "method"));
	int adapter = !strcmp(method, "lora") || !strcmp(method, "qlora");
	char desc[200];
	am_fmt(desc, sizeof desc, "%s from fine-tuning job '%s'", adapter ? "LoRA adapter" : "model",
	       json_string_value(json_object_get(job, "name")));
	long long mid = register_model(f, job, out, json_string_value(json_object_get(job, "output_name")), desc,
				       json_integer_value(json_object_get(job, "base_model_id")));
	if (mid)
		am_store_exec(f->srv->store, "UPDATE ft_jobs SET result_model_id = ? WHERE id = ?", "ii", mid,
			      json_integer_value(json_object_get(job, "id")));
}

static void watch_job(struct am_finetune *f, json_t *job)
{
	long long id = json_integer_value(json_object_get(job, "id"));
	enum am_job_state state;
	if (am_job_state_parse(json_string_value(json_object_get(job, "state")), &state) != 0)
		return;
	const char *dir = json_string_value(json_object_get(job, "job_dir")) ?: "";
	struct am_runtime *rt = runtime_of(f, job);
	const char *ref = rt ? job_ref(job) : NULL;
	char tl[PATH_MAX + 64], log[PATH_MAX + 32], out[PATH_MAX + 16], results[PATH_MAX + 48];
	am_fmt(out, sizeof out, "%s/out", dir);
	am_fmt(tl, sizeof tl, "%s/trainer_log.jsonl", out);
	if (!ref || rt->ops->log_file(rt, ref, log, sizeof log) != 0)
		am_fmt(log, sizeof log, "%s/train.log", dir);
	am_fmt(results, sizeof results, "%s/train_results.json", out);
	json_t *prog = am_finetune_progress(tl);
	if (prog) {
		char *s = am_json_dump(prog);
		if (strcmp(s, json_string_value(json_object_get(job, "progress")) ?: ""))
			am_store_exec(f->srv->store, "UPDATE ft_jobs SET progress = ?, updated_at = ? WHERE id = ?", "sii", s,
				      am_wall_ms(), id);
		free(s);
		json_decref(prog);
		if (state == AM_JOB_STARTING && job_to(f, id, state, AM_JOB_RUNNING, NULL, NULL) == 0)
			state = AM_JOB_RUNNING;
	}
	char status[64] = "";
	if (ref) {
		rt->ops->rotate(rt, ref, f->srv->cfg.log_max_bytes ? f->srv->cfg.log_max_bytes : 64ull << 20);
		if (rt->ops->status(rt, ref, status, sizeof status) == AM_RT_RUNNING) {
			long long asked = json_integer_value(json_object_get(job, "stop_requested_at"));
			if (state == AM_JOB_STOPPING && asked &&
			    am_wall_ms() - asked > json_integer_value(json_object_get(job, "grace_ms")))
				rt->ops->stop(rt, ref, 0);
			return;
		}
		rt->ops->stop(rt, ref, 0); /* ranks left behind */
		rt->ops->release(rt, ref);
	}
	struct stat sb;
	int finished = !strcmp(status, "exit 0") || (!status[0] && stat(results, &sb) == 0);
	if (state == AM_JOB_STOPPING) {
		json_t *p = am_finetune_progress(tl);
		char why[200];
		am_fmt(why, sizeof why, AM_MSG_T("stopped at step %lld of %lld; resume continues from the last checkpoint"),
		       (long long)json_integer_value(json_object_get(p, "step")),
		       (long long)json_integer_value(json_object_get(p, "total")));
		json_decref(p);
		job_to(f, id, state, AM_JOB_STOPPED, why, NULL);
	} else if (finished) {
		register_result(f, job, out);
		job_to(f, id, state, AM_JOB_SUCCEEDED, "", NULL);
	} else {
		char why[600];
		failure_reason(log, status, why, sizeof why);
		job_to(f, id, state, AM_JOB_FAILED, why, NULL);
	}
}

/* ---- merging an adapter into its base: llamafactory-cli export ---- */

static void start_export(struct am_finetune *f, json_t *job)
{
	long long id = json_integer_value(json_object_get(job, "id"));
	const char *dir = json_string_value(json_object_get(job, "job_dir")) ?: "";
	json_t *model = NULL;
	am_store_row(f->srv->store, &model, "SELECT path FROM models WHERE id = ?", "i",
		     json_integer_value(json_object_get(job, "base_model_id")));
	const char *base = json_string_value(json_object_get(model, "path"));
	char cfgp[PATH_MAX + 16], out[PATH_MAX + 16], merged[PATH_MAX + 16], log[PATH_MAX + 16];
	am_fmt(cfgp, sizeof cfgp, "%s/export.json", dir);
	am_fmt(out, sizeof out, "%s/out", dir);
	am_fmt(merged, sizeof merged, "%s/merged", dir);
	am_fmt(log, sizeof log, "%s/export.log", dir);
	if (!base) {
		json_decref(model);
		export_to(f, id, AM_EXPORT_QUEUED, AM_EXPORT_FAILED, AM_MSG_T("the base model is gone"), NULL);
		return;
	}
	/* merged on the CPU: no GPU to reserve, and no quantization (LLaMA-Factory
	 * cannot merge into a quantized model) */
	json_t *c = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:b,s:b}", "model_name_or_path", base, "adapter_name_or_path", out,
			      "template", json_string_value(json_object_get(job, "template")), "finetuning_type", "lora",
			      "export_dir", merged, "export_size", 5, "export_device", "cpu", "export_legacy_format", 0,
			      "trust_remote_code", 1);
	json_decref(model);
	int wrc = write_json(cfgp, c);
	json_decref(c);
	if (wrc != 0) {
		export_to(f, id, AM_EXPORT_QUEUED, AM_EXPORT_FAILED, AM_MSG_T("could not write export.json"), NULL);
		return;
	}
	char marker[128];
	am_runtime_marker(f->srv->owner_id, "export", id, marker, sizeof marker);
	if (am_store_exec(f->srv->store, "UPDATE ft_jobs SET export_marker = ? WHERE id = ?", "si", marker, id) != 0)
		return; /* not recorded: not started; the next pass tries again */
	struct am_argv env = { 0 };
	am_argv_add(&env, "CUDA_VISIBLE_DEVICES=");
	char ref[AM_RT_REF_MAX], err[512];
	struct am_runtime *rt; /* a merge runs on this machine, on no GPU */
	if (run_cli(f, "export", id, AM_LOCAL_NODE, "export", cfgp, &env, "", marker, log, NULL, NULL, ref, sizeof ref, &rt, err,
		    sizeof err) != 0) {
		export_to(f, id, AM_EXPORT_QUEUED, AM_EXPORT_FAILED, err, NULL);
		return;
	}
	export_started(f, id, ref);
}

static void watch_export(struct am_finetune *f, json_t *job)
{
	long long id = json_integer_value(json_object_get(job, "id"));
	struct am_runtime *rt = runtime_of(f, job);
	const char *ref = rt ? export_ref(job) : NULL;
	char status[64] = "", merged[PATH_MAX + 16], conf[PATH_MAX + 32], log[PATH_MAX + 16];
	if (ref && rt->ops->status(rt, ref, status, sizeof status) == AM_RT_RUNNING)
		return;
	if (ref) {
		rt->ops->stop(rt, ref, 0); /* what it left behind */
		rt->ops->release(rt, ref);
	}
	const char *dir = json_string_value(json_object_get(job, "job_dir")) ?: "";
	am_fmt(merged, sizeof merged, "%s/merged", dir);
	am_fmt(conf, sizeof conf, "%s/config.json", merged);
	if (!ref || rt->ops->log_file(rt, ref, log, sizeof log) != 0)
		am_fmt(log, sizeof log, "%s/export.log", dir);
	struct stat sb;
	if (!strcmp(status, "exit 0") || (!status[0] && stat(conf, &sb) == 0)) {
		char desc[200];
		am_fmt(desc, sizeof desc, "merged from fine-tuning job '%s'", json_string_value(json_object_get(job, "name")));
		long long mid = register_model(f, job, merged, json_string_value(json_object_get(job, "export_name")), desc, 0);
		if (mid) {
			am_store_exec(f->srv->store, "UPDATE ft_jobs SET export_model_id = ? WHERE id = ?", "ii", mid, id);
			export_to(f, id, AM_EXPORT_RUNNING, AM_EXPORT_SUCCEEDED, "", NULL);
		} else
			export_to(f, id, AM_EXPORT_RUNNING, AM_EXPORT_FAILED,
				  AM_MSG_T("the merged model could not be registered (is the name taken?)"), NULL);
	} else {
		char why[600];
		failure_reason(log, status, why, sizeof why);
		export_to(f, id, AM_EXPORT_RUNNING, AM_EXPORT_FAILED, why, NULL);
	}
}

static void drive(struct am_finetune *f)
{
	json_t *jobs = NULL;
	am_store_rows(f->srv->store, &jobs, "SELECT * FROM ft_jobs WHERE state IN ('queued','starting','running','stopping')"
		      " ORDER BY id", NULL);
	size_t i;
	json_t *job;
	json_array_foreach(jobs, i, job) {
		if (!strcmp(json_string_value(json_object_get(job, "state")), "queued"))
			start_job(f, job);
		else
			watch_job(f, job);
	}
	json_decref(jobs);
	jobs = NULL;
	am_store_rows(f->srv->store, &jobs, "SELECT * FROM ft_jobs WHERE export_state IN ('queued','running') ORDER BY id", NULL);
	json_array_foreach(jobs, i, job) {
		if (!strcmp(json_string_value(json_object_get(job, "export_state")), "queued"))
			start_export(f, job);
		else
			watch_export(f, job);
	}
	json_decref(jobs);
}

/* ---- verbs: what the API asks of a job ---- */

/* Each dataset fits the stage: valid, and of the stage's kind of data. */
static int check_datasets(struct am_finetune *f, const struct am_ft_spec *spec, struct am_err *err)
{
	const char *want = !strcmp(spec->stage, "dpo") ? "preference" : !strcmp(spec->stage, "pt") ? "text" : "sft";
	for (size_t i = 0; i < spec->ndatasets; i++) {
		json_t *d = NULL;
		am_store_row(f->srv->store, &d, "SELECT name, state, json_extract(report, '$.purpose') AS purpose FROM datasets"
			     " WHERE id = ?", "i", spec->datasets[i]);
		const char *name = json_string_value(json_object_get(d, "name"));
		const char *purpose = json_string_value(json_object_get(d, "purpose")) ?: "sft";
		int rc = -1;
		if (!d) {
			char field[32];
			am_fmt(field, sizeof field, "datasets[%zu]", i);
			am_err_set(err, AM_E_INVALID, field, "datasets[%zu]: no such dataset", i);
		} else if (strcmp(json_string_value(json_object_get(d, "state")) ?: "", "valid"))
			am_err_set(err, AM_E_INVALID, "datasets", "dataset '%s' is invalid (see its report); fix and upload it again",
				   name);
		else if (strcmp(purpose, want)) /* each stage trains on its own kind of data */
			am_err_set(err, AM_E_INVALID, "datasets", "dataset '%s' holds %s data; stage '%s' trains on %s data", name,
				   purpose, spec->stage, want);
		else
			rc = 0;
		json_decref(d);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* The GPUs a job asks for exist on one node and the method fits the
 * largest of them by LLaMA-Factory's table. Fills the plan's GPU figures;
 * pinned gets the pinned GPUs' ids. */
static int check_gpus(struct am_finetune *f, const struct am_ft_spec *spec, long long params, json_t *pinned,
		      struct am_ft_plan *plan, struct am_err *err)
{
	struct am_capacity cap;
	am_capacity_db_load(f->srv, &cap);
	int pin[AM_PLAN_MAX], npin = 0, rc = -1;
	long long count = spec->gpus;
	if (spec->pinned) {
		char perr[512];
		if (am_capacity_pin(&cap, spec->pinned, pin, AM_PLAN_MAX, &npin, perr, sizeof perr) != 0) {
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
	}
	const char *wnode;
	int widest = am_capacity_widest(&cap, &wnode);
	if (count < 1 || count > widest) {
		if (cap.n && widest < cap.n)
			am_err_set(err, AM_E_INVALID, "gpus", "a job runs on one node and the largest, %s, has %d GPU%s; 'gpus' asks for %lld",
				   wnode, widest, widest == 1 ? "" : "s", count);
		else
			am_err_set(err, AM_E_INVALID, "gpus", "this machine has %d GPU%s; 'gpus' asks for %lld", widest,
				   widest == 1 ? "" : "s", count);
		goto out;
	}
	uint64_t need = am_finetune_mem_need(spec->method, spec->quantization_bit, params, (int)count, spec->deepspeed != 0,
					     json_is_true(json_object_get(spec->hyper, "pure_bf16")));
	uint64_t biggest = 0;
	for (int k = 0; k < cap.n; k++) {
		int counted = !npin;
		for (int w = 0; w < npin; w++)
			counted |= pin[w] == k;
		if (counted && cap.gpus[k].total > biggest)
			biggest = cap.gpus[k].total;
	}
	if (need > biggest) {
		const char *use = !strcmp(spec->method, "full") ? AM_MSG_W("lora or qlora, or more GPUs with deepspeed 3")
								 : AM_MSG_W("qlora or more memory");
		am_err_set(err, AM_E_INVALID, "method",
			   "%s fine-tuning of this %.1fB model needs about %.1f GiB on each of %lld GPU%s by LLaMA-Factory's table;"
			   " the largest GPU has %.1f GiB. Use %s", spec->method, params / 1e9, need / 1073741824.0, count, count == 1 ? "" : "s",
			   biggest / 1073741824.0, use);
		if (err)
			am_msg_zhf(err->msg_zh, sizeof err->msg_zh,
				   "%s fine-tuning of this %.1fB model needs about %.1f GiB on each of %lld GPU%s by LLaMA-Factory's table;"
				   " the largest GPU has %.1f GiB. Use %s", spec->method, params / 1e9, need / 1073741824.0, count,
				   count == 1 ? "" : "s", biggest / 1073741824.0, am_msg_word(use));
		goto out;
	}
	plan->gpu_count = count;
	plan->parameters = params;
	plan->mem_per_gpu = need;
	plan->largest_gpu = biggest;
	rc = 0;
out:
	am_capacity_free(&cap);
	return rc;
}

/* See am_finetune.h. */
int am_finetune_create(struct am_finetune *f, const struct am_ft_spec *spec, int dry_run, struct am_ft_plan *out,
		       struct am_err *err)
{
	struct am_store *st = f->srv->store;
	struct am_ft_plan plan;
	memset(&plan, 0, sizeof plan);
	json_t *model = NULL, *facts = NULL, *pinned = json_array(), *ids = json_array();
	char *sds = NULL, *shy = NULL, *spin = NULL;
	int rc = -1;
	am_store_row(st, &model, "SELECT name, path, kind, state, architecture, parameters, facts FROM models WHERE id = ?", "i",
		     spec->base_model_id);
	const char *kind = json_string_value(json_object_get(model, "kind")) ?: "";
	facts = json_loads(json_string_value(json_object_get(model, "facts")) ?: "{}", 0, NULL);
	if (!json_string_value(json_object_get(model, "path")) ||
	    strcmp(json_string_value(json_object_get(model, "state")) ?: "", "ready")) {
		am_err_set(err, AM_E_INVALID, "base_model", "model '%s' has no local files to train from", spec->base_ref);
		goto out;
	}
	if (strcmp(kind, "llm") && strcmp(kind, "vlm")) {
		am_err_set(err, AM_E_INVALID, "base_model", "model '%s' is a%s %s model; fine-tuning takes a language model",
			   spec->base_ref, kind[0] == 'e' || kind[0] == 'a' ? "n" : "", kind[0] ? kind : "unknown");
		goto out;
	}
	plan.tmpl = spec->tmpl ? spec->tmpl
			       : am_finetune_template_for(json_string_value(json_object_get(model, "architecture")),
							  json_string_value(json_object_get(facts, "model_type")));
	if (check_datasets(f, spec, err) != 0 ||
	    check_gpus(f, spec, json_integer_value(json_object_get(model, "parameters")), pinned, &plan, err) != 0)
		goto out;
	/* names */
	if (spec->name)
		am_strlcpy(plan.name, spec->name, sizeof plan.name);
	else {
		long long seq = 0;
		am_store_int(st, &seq, 0, "SELECT COALESCE(MAX(id), 0) + 1 FROM ft_jobs", NULL);
		am_fmt(plan.name, sizeof plan.name, "%.100s-%s-%lld", json_string_value(json_object_get(model, "name")),
		       spec->method, seq);
	}
	am_strlcpy(plan.output_name, spec->output_name ? spec->output_name : plan.name, sizeof plan.output_name);
	long long taken = 0;
	am_store_int(st, &taken, 0, "SELECT COUNT(*) FROM ft_jobs WHERE name = ?", "s", plan.name);
	if (taken) {
		am_err_set(err, AM_E_CONFLICT, "name", "a fine-tuning job named '%s' already exists", plan.name);
		goto out;
	}
	am_store_int(st, &taken, 0, "SELECT COUNT(*) FROM models WHERE name = ?", "s", plan.output_name);
	if (taken) {
		am_err_set(err, AM_E_CONFLICT, "output_name", "a model named '%s' already exists; choose 'output_name'",
			   plan.output_name);
		goto out;
	}
	if (dry_run) { /* everything checked, nothing kept */
		rc = 0;
		goto out;
	}
	for (size_t i = 0; i < spec->ndatasets; i++)
		json_array_append_new(ids, json_integer(spec->datasets[i]));
	sds = am_json_dump(ids);
	shy = am_json_dump(spec->hyper);
	spin = am_json_dump(pinned);
	long long now = am_wall_ms();
	if (am_store_exec(st, "INSERT INTO ft_jobs(name, base_model_id, datasets, method, stage, template, quantization_bit, params,"
			  " gpu_count, pinned_gpus, deepspeed, state, reason, output_name, grace_ms, created_by, owner_id,"
			  " created_at, updated_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', 'waiting to start', ?, ?, ?,"
			  " ?, ?, ?)", "sissssisisisisiii", plan.name, spec->base_model_id, sds, spec->method, spec->stage, plan.tmpl,
			  (long long)spec->quantization_bit, shy, plan.gpu_count, spin, (long long)spec->deepspeed, plan.output_name,
			  spec->grace_ms, spec->created_by, spec->owner_id, now, now) != 0) {
		am_err_set(err, AM_E_INTERNAL, "", "could not record the job");
		goto out;
	}
	plan.id = am_store_last_id(st);
	char target[48];
	am_fmt(target, sizeof target, "finetune:%lld", plan.id);
	/* the task follows the job until it finishes (job_to, recover_tasks) */
	plan.task_id = am_task_create(st, "finetune.create", target, spec->created_by, AM_TASK_RUNNING, AM_MSG_T("queued"));
	if (plan.task_id <= 0 || am_store_exec(st, "UPDATE ft_jobs SET task_id = ? WHERE id = ?", "ii", plan.task_id, plan.id) != 0) {
		am_err_set(err, AM_E_INTERNAL, "", "could not record the job's task");
		goto out;
	}
	am_finetune_kick(f);
	rc = 0;
out:
	if (rc == 0)
		*out = plan;
	free(sds);
	free(shy);
	free(spin);
	json_decref(ids);
	json_decref(pinned);
	json_decref(facts);
	json_decref(model);
	return rc;
}

/* The job's state as stored; -1 (with a 404) when the row is gone. */
static int job_state(struct am_finetune *f, long long id, enum am_job_state *out, struct am_err *err)
{
	json_t *row = NULL;
	am_store_row(f->srv->store, &row, "SELECT state FROM ft_jobs WHERE id = ?", "i", id);
	int rc = row ? am_job_state_parse(json_string_value(json_object_get(row, "state")), out) : -1;
	json_decref(row);
	if (rc != 0)
		am_err_set(err, AM_E_NOT_FOUND, "", "no fine-tuning job %lld", id);
	return rc;
}

/* See am_finetune.h. */
int am_finetune_stop(struct am_finetune *f, long long id, struct am_err *err)
{
	enum am_job_state st;
	if (job_state(f, id, &st, err) != 0)
		return -1;
	switch (st) {
	case AM_JOB_QUEUED: /* its reservations (a start a kill interrupted may have made) and task go with it */
		if (job_to(f, id, st, AM_JOB_STOPPED, AM_MSG_T("stopped before it started"), NULL) != 0)
			return am_err_set(err, AM_E_INTERNAL, "", "could not record the stop");
		break;
	case AM_JOB_STARTING:
	case AM_JOB_RUNNING: {
		if (job_to(f, id, st, AM_JOB_STOPPING, AM_MSG_T("saving and stopping"), NULL) != 0)
			return am_err_set(err, AM_E_INTERNAL, "", "could not record the stop");
		json_t *job = NULL;
		am_store_row(f->srv->store, &job, "SELECT * FROM ft_jobs WHERE id = ?", "i", id);
		struct am_runtime *rt = job ? runtime_of(f, job) : NULL;
		const char *ref = job ? job_ref(job) : NULL;
		if (rt && ref) /* LlamaBoard's way: the trainer saves at the next step, then exits */
			rt->ops->interrupt(rt, ref);
		json_decref(job);
		break;
	}
	case AM_JOB_STOPPING:
		break;
	default:
		return am_err_set(err, AM_E_CONFLICT, "", "job %lld is %s; only a queued or running job can be stopped", id,
				  am_job_state_name(st));
	}
	am_finetune_kick(f);
	return 0;
}

/* See am_finetune.h. */
int am_finetune_may_resume(struct am_finetune *f, long long id, struct am_err *err)
{
	enum am_job_state st;
	if (job_state(f, id, &st, err) != 0)
		return -1;
	if (!am_job_transition_ok(st, AM_JOB_QUEUED) || st == AM_JOB_QUEUED)
		return am_err_set(err, AM_E_CONFLICT, "", "job %lld is %s; only a stopped or failed job can be resumed", id,
				  am_job_state_name(st));
	/* it trains on its datasets again: each must still be there for its
	 * owner (someone else's may have been taken back or deleted) */
	json_t *gone = NULL;
	am_store_row(f->srv->store, &gone,
		     "SELECT e.key AS i FROM ft_jobs j, json_each(j.datasets) e LEFT JOIN datasets d ON d.id = e.value"
		     " WHERE j.id = ? AND (d.id IS NULL OR NOT (d.owner_id IS j.owner_id OR d.visibility = 'shared'))"
		     " ORDER BY e.key LIMIT 1", "i", id);
	if (gone) {
		long long i = json_integer_value(json_object_get(gone, "i"));
		json_decref(gone);
		return am_err_set(err, AM_E_CONFLICT, "datasets", "datasets[%lld] of job %lld was deleted or is no longer shared;"
				  " the job cannot resume", i, id);
	}
	return 0;
}

/* See am_finetune.h. */
int am_finetune_resume(struct am_finetune *f, long long id, const char *actor, long long *task_id, struct am_err *err)
{
	enum am_job_state st;
	if (am_finetune_may_resume(f, id, err) != 0 || job_state(f, id, &st, err) != 0)
		return -1;
	char target[48];
	am_fmt(target, sizeof target, "finetune:%lld", id);
	long long task = am_task_create(f->srv->store, "finetune.resume", target, actor, AM_TASK_RUNNING, AM_MSG_T("queued"));
	if (task <= 0 || job_to(f, id, st, AM_JOB_QUEUED, AM_MSG_T("waiting to resume"), &(struct move_cols){ .task = task }) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not record the resume");
	am_finetune_kick(f);
	*task_id = task;
	return 0;
}

/* See am_finetune.h. */
int am_finetune_export(struct am_finetune *f, long long id, const char *name, struct am_err *err)
{
	json_t *j = NULL;
	am_store_row(f->srv->store, &j, "SELECT state, method, output_name, export_state FROM ft_jobs WHERE id = ?", "i", id);
	const char *st = json_string_value(json_object_get(j, "state")) ?: "";
	const char *m = json_string_value(json_object_get(j, "method")) ?: "";
	enum am_export_state ex;
	char def[160];
	am_fmt(def, sizeof def, "%.120s-merged", json_string_value(json_object_get(j, "output_name")) ?: "");
	if (!name)
		name = def;
	long long taken = 0;
	am_store_int(f->srv->store, &taken, 0, "SELECT COUNT(*) FROM models WHERE name = ?", "s", name);
	int rc = -1;
	if (!j)
		am_err_set(err, AM_E_NOT_FOUND, "", "no fine-tuning job %lld", id);
	else if (strcmp(m, "lora") && strcmp(m, "qlora"))
		am_err_set(err, AM_E_CONFLICT, "", "job %lld trained a full model; there is no adapter to merge", id);
	else if (strcmp(st, "succeeded"))
		am_err_set(err, AM_E_CONFLICT, "", "job %lld is %s; only a finished job can be merged", id, st);
	else if (am_export_state_parse(json_string_value(json_object_get(j, "export_state")), &ex) != 0 ||
		 !am_export_transition_ok(ex, AM_EXPORT_QUEUED) || ex == AM_EXPORT_QUEUED)
		am_err_set(err, AM_E_CONFLICT, "", "job %lld's adapter is already %s", id,
			   ex == AM_EXPORT_SUCCEEDED ? "merged" : "being merged");
	else if (taken)
		am_err_set(err, AM_E_CONFLICT, "name", "a model named '%s' already exists", name);
	else if (export_to(f, id, ex, AM_EXPORT_QUEUED, "", &(struct move_cols){ .name = name }) != 0)
		am_err_set(err, AM_E_INTERNAL, "", "could not record the merge");
	else
		rc = 0;
	json_decref(j);
	if (rc == 0)
		am_finetune_kick(f);
	return rc;
}

/* Removes a folder and everything under it; symbolic links are removed,
 * never followed. */
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

int am_finetune_delete(struct am_finetune *f, long long id, struct am_err *err)
{
	struct am_store *st = f->srv->store;
	json_t *j = NULL;
	if (am_store_row(st, &j,
			 "SELECT j.state, (SELECT COUNT(*) FROM models m WHERE m.id IN (j.result_model_id, j.export_model_id))"
			 " + COALESCE(j.export_state IN ('queued','running'), 0) AS held FROM ft_jobs j WHERE j.id = ?",
			 "i", id) != 0 || !j)
		return am_err_set(err, AM_E_NOT_FOUND, "", "no fine-tuning job %lld", id);
	enum am_job_state s;
	int known = am_job_state_parse(json_string_value(json_object_get(j, "state")) ?: "", &s) == 0;
	long long held = json_integer_value(json_object_get(j, "held"));
	json_decref(j);
	if (!known || !am_job_state_finished(s))
		return am_err_set(err, AM_E_CONFLICT, "", "job %lld is still active; stop it first", id);
	if (held)
		return am_err_set(err, AM_E_CONFLICT, "", "job %lld's output is registered as a model (or being merged); delete"
				  " that model first", id);
	if (am_store_exec(st, "DELETE FROM ft_jobs WHERE id = ?", "i", id) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not delete the job");
	/* the row first: a kill between the two leaves a folder no job names
	 * (found by its id, harmless), never a job without its files */
	char dir[PATH_MAX];
	job_paths(f, id, dir, sizeof dir);
	remove_tree(dir);
	return 0;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct am_finetune *f = arg;
	f->kicked = 0;
	drive(f);
}

void am_finetune_kick(struct am_finetune *f)
{
	if (!f || f->kicked || !f->kick)
		return;
	f->kicked = 1;
	event_active(f->kick, EV_TIMEOUT, 0);
}

struct am_finetune *am_finetune_new(struct am_server *srv)
{
	struct am_finetune *f = am_calloc(1, sizeof *f);
	f->srv = srv;
	return f;
}

/* A finetune.create or finetune.resume task follows its job across
 * restarts: running while the job is, finished as it finished. */
static void recover_tasks(struct am_finetune *f)
{
	json_t *rows = NULL;
	am_store_rows(f->srv->store, &rows,
		      "SELECT t.id, j.id AS job_id, j.state, j.reason FROM tasks t LEFT JOIN ft_jobs j ON j.task_id = t.id"
		      " WHERE t.state IN ('queued','running') AND t.kind IN ('finetune.create','finetune.resume')", NULL);
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r) {
		long long task = json_integer_value(json_object_get(r, "id"));
		const char *st = json_string_value(json_object_get(r, "state"));
		const char *why = json_string_value(json_object_get(r, "reason"));
		if (!st)
			am_task_update(f->srv->store, task, AM_TASK_FAILED, -1, AM_MSG_T("the job is gone"));
		else if (!strcmp(st, "succeeded"))
			am_task_update(f->srv->store, task, AM_TASK_SUCCEEDED, 100, AM_MSG_T("succeeded"));
		else if (!strcmp(st, "failed"))
			am_task_update(f->srv->store, task, AM_TASK_FAILED, 100, why && *why ? why : st);
		else if (!strcmp(st, "stopped"))
			am_task_update(f->srv->store, task, AM_TASK_CANCELLED, 100, why && *why ? why : st);
	}
	json_decref(rows);
}

int am_finetune_start(struct am_finetune *f)
{
	recover_tasks(f);
	json_t *jobs = NULL; /* jobs that ran while aimaas was down: say so */
	am_store_rows(f->srv->store, &jobs, "SELECT id, rt_ref FROM ft_jobs WHERE state IN ('starting','running','stopping')",
		      NULL);
	size_t i;
	json_t *j;
	json_array_foreach(jobs, i, j)
		am_info("finetune", "job %lld: re-adopting trainer %s", (long long)json_integer_value(json_object_get(j, "id")),
			json_string_value(json_object_get(j, "rt_ref")) ?: "(none recorded)");
	json_decref(jobs);
	f->tick = event_new(f->srv->base, -1, EV_PERSIST, on_tick, f);
	struct timeval tv = { 0, 500000 };
	event_add(f->tick, &tv);
	f->kick = event_new(f->srv->base, -1, 0, on_tick, f);
	am_finetune_kick(f);
	return 0;
}

void am_finetune_stop_all(struct am_finetune *f)
{
	if (!f)
		return;
	json_t *jobs = NULL;
	am_store_rows(f->srv->store, &jobs, "SELECT * FROM ft_jobs WHERE rt_ref IS NOT NULL"
		      " AND state IN ('starting','running','stopping')", NULL);
	size_t i;
	json_t *j;
	json_array_foreach(jobs, i, j) {
		struct am_runtime *rt = runtime_of(f, j);
		const char *ref = job_ref(j);
		enum am_job_state st;
		if (!rt || !ref || rt->ops->status(rt, ref, NULL, 0) != AM_RT_RUNNING ||
		    am_job_state_parse(json_string_value(json_object_get(j, "state")), &st) != 0)
			continue;
		long long id = json_integer_value(json_object_get(j, "id"));
		am_info("finetune", "job %lld: stopping trainer %s (--stop-engines-on-exit)", id, ref);
		if (st != AM_JOB_STOPPING) {
			rt->ops->interrupt(rt, ref); /* the trainer's stop: it saves a checkpoint */
			job_to(f, id, st, AM_JOB_STOPPING, AM_MSG_T("saving and stopping (aimaas is shutting down)"), NULL);
		}
	}
	json_decref(jobs);
	/* a merge has nothing to save: ended, and queued again for the next start */
	jobs = NULL;
	am_store_rows(f->srv->store, &jobs, "SELECT * FROM ft_jobs WHERE export_state = 'running'", NULL);
	json_array_foreach(jobs, i, j) {
		struct am_runtime *rt = runtime_of(f, j);
		const char *ref = export_ref(j);
		if (rt && ref) {
			rt->ops->stop(rt, ref, 0);
			rt->ops->release(rt, ref);
		}
		export_to(f, json_integer_value(json_object_get(j, "id")), AM_EXPORT_RUNNING, AM_EXPORT_QUEUED, NULL, NULL);
	}
	json_decref(jobs);
}

/* Waits for the trainers told to stop, each at most its grace, then ends
 * what is left of them and records them stopped (resumable). */
static void finish_stops(struct am_finetune *f)
{
	json_t *jobs = NULL;
	am_store_rows(f->srv->store, &jobs, "SELECT * FROM ft_jobs WHERE state = 'stopping' AND rt_ref IS NOT NULL", NULL);
	size_t i;
	json_t *j;
	for (;;) {
		int waiting = 0;
		json_array_foreach(jobs, i, j) {
			struct am_runtime *rt = runtime_of(f, j);
			const char *ref = job_ref(j);
			if (!rt || !ref || rt->ops->status(rt, ref, NULL, 0) != AM_RT_RUNNING)
				continue;
			long long asked = json_integer_value(json_object_get(j, "stop_requested_at"));
			if (am_wall_ms() - asked > json_integer_value(json_object_get(j, "grace_ms")))
				rt->ops->stop(rt, ref, 0);
			else
				waiting = 1;
		}
		if (!waiting)
			break;
		usleep(100000);
	}
	json_array_foreach(jobs, i, j)
		watch_job(f, j); /* ends what is left and records it stopped at its last step */
	json_decref(jobs);
}

void am_finetune_describe(struct am_finetune *f, long long id, json_t *out)
{
	json_t *job = NULL;
	json_object_set_new(out, "pid", json_null());
	if (!f)
		return;
	am_store_row(f->srv->store, &job, "SELECT state, runtime, rt_ref FROM ft_jobs WHERE id = ?", "i", id);
	struct am_runtime *rt = job ? runtime_of(f, job) : NULL;
	const char *ref = job ? job_ref(job) : NULL;
	if (rt && ref) {
		json_t *more = rt->ops->describe(rt, ref);
		json_object_update(out, more);
		json_decref(more);
	}
	json_decref(job);
}

int am_finetune_log_file(struct am_finetune *f, long long id, char *path, size_t size)
{
	json_t *job = NULL;
	am_store_row(f->srv->store, &job, "SELECT runtime, rt_ref, job_dir FROM ft_jobs WHERE id = ?", "i", id);
	struct am_runtime *rt = job ? runtime_of(f, job) : NULL;
	const char *ref = json_string_value(json_object_get(job, "rt_ref"));
	int rc = 0;
	if (!rt || !ref || rt->ops->log_file(rt, ref, path, size) != 0) {
		const char *dir = json_string_value(json_object_get(job, "job_dir"));
		if (dir)
			am_fmt(path, size, "%s/train.log", dir);
		else
			rc = -1;
	}
	json_decref(job);
	return rc;
}

void am_finetune_free(struct am_finetune *f, int stop_trainers)
{
	if (!f)
		return;
	if (stop_trainers)
		finish_stops(f);
	if (f->tick)
		event_free(f->tick);
	if (f->kick)
		event_free(f->kick);
	free(f);
}
