/* am_finetune: fine-tuning jobs run by LLaMA-Factory (`llamafactory-cli
 * train`) on this machine. The database holds each job (base model,
 * datasets, method, hyper-parameters, GPUs wanted) and its state; a
 * supervisor on the main loop drives them: a queued job gets GPUs (memory
 * reserved as for deployments, estimated from LLaMA-Factory's own table),
 * its folder is written (train.json, data/dataset_info.json, links to the
 * datasets) and the trainer starts in its own process group; progress comes
 * from output_dir/trainer_log.jsonl; the outcome from the exit status (or,
 * for a job adopted after aimaas restarted, from train_results.json).
 * States: queued -> starting -> running -> succeeded | failed, and
 * stopping -> stopped. A job that cannot get GPUs waits queued and starts
 * by itself when they free up. Nothing lives only in memory: aimaas can be
 * killed at any moment and carries on where the database says. */
#ifndef AM_FINETUNE_H
#define AM_FINETUNE_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

struct am_server;
struct am_finetune;

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
/* Asks a running job's trainer to save and stop (the caller has recorded
 * the job 'stopping'). */
void am_finetune_stop_job(struct am_finetune *f, long long id);
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
