/* am_finetune: fine-tuning jobs run by LLaMA-Factory (`llamafactory-cli
 * train`) on this machine. The database holds each job (base model,
 * datasets, method, hyper-parameters, GPUs wanted) and its state; a
 * supervisor on the main loop drives them: a queued job gets GPUs (memory
 * reserved as for deployments, estimated from LLaMA-Factory's own table),
 * its folder is written (train.json, data/dataset_info.json, links to the
 * datasets) and the trainer starts in its own process group; progress comes
 * from output_dir/trainer_log.jsonl; the outcome from the exit status (or,
 * for a job adopted after aimaas restarted, from train_results.json).
 * States (am_job_state.h): queued -> starting -> running -> succeeded |
 * failed, and stopping -> stopped; a job's state and its merge's
 * (export_state) change in one place each, checked against their
 * machines. A job that cannot get GPUs waits queued and starts by itself
 * when they free up. Nothing lives only in memory: aimaas can be killed at
 * any moment and carries on where the database says. The module owns the
 * ft_jobs table: the API asks through the verbs below (create, stop,
 * resume, export) and writes none of it. */
#ifndef AM_FINETUNE_H
#define AM_FINETUNE_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

struct am_server;
struct am_finetune;
struct am_err;

/* LLaMA-Factory's name among the engines: its program is set as theirs
 * are (PATCH /api/v1/engines/llamafactory {binary}). */
#define AM_FINETUNE_ENGINE "llamafactory"
/* The LLaMA-Factory program a local job runs: the one set on the Engines
 * page, else AIMAAS_LLAMAFACTORY_CLI, else llamafactory-cli on PATH.
 * *source (when not NULL) says which: "setting", "env" or "default". */
void am_finetune_program(struct am_server *srv, char *out, size_t size, const char **source);

struct am_finetune *am_finetune_new(struct am_server *srv);
int am_finetune_start(struct am_finetune *f);
/* Drive the jobs soon (after an API change). */
void am_finetune_kick(struct am_finetune *f);
/* stop_trainers (--stop-engines-on-exit): waits for the trainers
 * am_finetune_stop_all told to stop (each at most its grace, then SIGKILL to
 * its group) and records them stopped, resumable. */
void am_finetune_free(struct am_finetune *f, int stop_trainers);
/* --stop-engines-on-exit: sends every running trainer its stop (SIGABRT to
 * the group: it saves a checkpoint) and ends running merges (queued again). */
void am_finetune_stop_all(struct am_finetune *f);
/* At start, for a live workload (ref: the runtime's reference) marked
 * AIMAAS_OWNER=<this data dir>:<kind>:<id>:... with kind "job" or "export":
 * 1 when it is the job's recorded trainer (or merge), or the one a killed
 * aimaas started under the recorded marker (then adopted); 0 when nobody
 * owns it (the caller ends it). */
int am_finetune_claim(struct am_finetune *f, const char *ref, const char *marker, const char *kind, long long id);
/* A job as asked for, parsed and authorized by the caller (the base model
 * and the datasets are ones the caller may train on; the hyper-parameters
 * are checked). Everything is borrowed for the call. */
struct am_ft_spec {
	const char *name;          /* NULL: "<base model>-<method>-<n>" */
	long long base_model_id;
	const char *base_ref;      /* the base model as the caller named it, for messages */
	const long long *datasets; /* dataset ids, ndatasets of them */
	size_t ndatasets;
	const char *method;        /* lora, qlora, full or freeze */
	const char *stage;         /* sft, pt or dpo */
	const char *tmpl;          /* a known template, or NULL: the architecture's */
	int quantization_bit;      /* 4 or 8 for qlora, else 0 */
	int deepspeed;             /* ZeRO stage: 0 (off), 2 or 3 */
	json_t *hyper;             /* LLaMA-Factory hyper-parameters (an object) */
	long long gpus;            /* how many GPUs, when none are pinned */
	json_t *pinned;            /* a list of GPU ids, or NULL */
	const char *output_name;   /* the trained model's name; NULL: name */
	long long grace_ms;        /* how long a stopping trainer may take to save */
	const char *created_by;    /* the asking user's name (also the task's actor) */
	long long owner_id;
};

/* What am_finetune_create resolved; a dry run stops there. */
struct am_ft_plan {
	long long id, task_id; /* the job and the task that follows it; 0 for a dry run */
	char name[160], output_name[160];
	const char *tmpl; /* the spec's, or a static name */
	long long gpu_count, parameters;
	uint64_t mem_per_gpu, largest_gpu; /* LLaMA-Factory's estimate; the largest GPU it may use */
};

/* Checks a job against what this machine has (the base model has local
 * files and is a language model, each dataset is valid and of the stage's
 * kind, the GPUs exist on one node and the method fits them, the names are
 * free) and, unless dry_run, records it queued with a finetune.create task
 * that follows it. A dry run writes nothing, not even a task. 0 with *out,
 * or -1 with err (400 with the field, 409 for a taken name, 500). Runs in
 * the caller's transaction when there is one. */
int am_finetune_create(struct am_finetune *f, const struct am_ft_spec *spec, int dry_run, struct am_ft_plan *out,
		       struct am_err *err);
/* Stops a job: a queued one is stopped at once ("stopped before it
 * started": its reservations go, its task is cancelled); a starting or
 * running one goes stopping and its trainer is asked to save and stop (it
 * saves at the next step, then exits); a stopping one is left as it is.
 * 0, or -1 with err (409 for a finished job). */
int am_finetune_stop(struct am_finetune *f, long long id, struct am_err *err);
/* 0 when job id may resume: it is stopped or failed and each of its
 * datasets is still there for its owner. -1 with err (409) otherwise. */
int am_finetune_may_resume(struct am_finetune *f, long long id, struct am_err *err);
/* Queues a stopped or failed job again (it continues from its last
 * checkpoint) with a finetune.resume task by actor that follows it. 0 with
 * *task_id, or -1 with err (as am_finetune_may_resume, or 500). */
int am_finetune_resume(struct am_finetune *f, long long id, const char *actor, long long *task_id, struct am_err *err);
/* Queues the merge of a succeeded LoRA job's adapter into its base model,
 * registered as model name (NULL: "<output_name>-merged"). 0, or -1 with
 * err (409: no adapter, not finished, already merged or being merged,
 * name taken). */
int am_finetune_export(struct am_finetune *f, long long id, const char *name, struct am_err *err);
/* Deletes a finished job (succeeded, failed or stopped) and its folder
 * (checkpoints, adapter, logs). 0, or -1 with err: 404, or 409 while it is
 * active or its output is a registered model or being merged. */
int am_finetune_delete(struct am_finetune *f, long long id, struct am_err *err);
/* Adds to out what the runtime shows of job id's trainer: its pid (the
 * local runtime's) while it runs, else null. */
void am_finetune_describe(struct am_finetune *f, long long id, json_t *out);
/* The file that holds a job's trainer log. 0 with path, or -1. */
int am_finetune_log_file(struct am_finetune *f, long long id, char *path, size_t size);

/* 1 when ref (a reference the runtime found) is a running job's trainer
 * or merge. */
int am_finetune_owns_ref(struct am_finetune *f, const char *ref);

/* LLaMA-Factory's chat template for a model architecture ("qwen" for
 * Qwen2ForCausalLM...), or "default" when unknown. */
const char *am_finetune_template_for(const char *architecture, const char *model_type);
/* 1 when t is one of LLaMA-Factory's registered templates we know. */
int am_finetune_template_ok(const char *t);
/* GPU memory one GPU needs, by LLaMA-Factory's table (contracts/
 * llamafactory.md): method full|freeze|lora|qlora, bits for qlora (4 or 8),
 * parameters of the base model, how many GPUs, DeepSpeed (shards full
 * tuning across the GPUs), pure_bf16. */
uint64_t am_finetune_mem_need(const char *method, int bits, long long parameters, int ngpus, int deepspeed, int pure_bf16);
/* The series from a trainer_log.jsonl: [{step, total, loss, eval_loss, lr,
 * epoch, percentage, elapsed, remaining}], at most max points (evenly
 * thinned; eval points always kept). */
json_t *am_finetune_series(const char *path, int max);
/* The last progress line of a trainer_log.jsonl as JSON, or NULL. */
json_t *am_finetune_progress(const char *path);

#endif
