/* am_deploy: deployments, run through a runtime (am_runtime: local
 * processes today). The database says what the user wants (a deployment:
 * model, engine, replicas, GPUs, desired running or stopped) and what
 * exists (instances: GPUs, runtime, node, address, the runtime's reference
 * of the engine, state). A reconciler compares them for each deployment
 * marked due (an API write, an engine's exit, a health check that changes
 * its state, a backoff or grace that ends), with a slow full pass as a
 * safety net, and acts:
 * it places replicas through the planner (reserving GPU memory), starts
 * engines and watches them (the runtime reports exits and health checks),
 * restarts crashed ones with exponential backoff (failed after 5 tries),
 * stops them (asked, then ended after a grace period), and scrapes their
 * metrics. It never learns which runtime it drives.
 *
 * Instance states: pending -> starting -> running, and backoff, failed,
 * stopping. Deployment states add stopped, deleting and waiting (no room).
 * Because everything is in the database, aimaas can be killed at any moment:
 * at start it re-adopts engines that still run (their runtime reference),
 * restarts vanished ones, and carries on. Engines keep serving while aimaas
 * is down unless it was started with --stop-engines-on-exit. */
#ifndef AM_DEPLOY_H
#define AM_DEPLOY_H

#include <jansson.h>
#include <sys/types.h>
#include <stdint.h>

#include "../base/am_err.h"
#include "../engine/am_engine.h"
#include "../sched/am_planner.h"

struct am_server;
struct am_deploy;

/* Where the local runtime's engines listen (the host a route's replica and
 * a health probe carry; another runtime gives its own). */
#define AM_DEPLOY_LOCAL_HOST "127.0.0.1"
/* Splits an instance's address "HOST:PORT" (or "[V6]:PORT") into host and
 * port. 0, or -1 (nothing written) when it is not one. */
int am_deploy_split_address(const char *address, char *host, size_t hostsize, int *port);

struct am_deploy *am_deploy_new(struct am_server *srv);
/* Adopts what the database says is running and starts the reconciler. */
int am_deploy_start(struct am_deploy *d);
/* Marks one deployment due: the reconciler looks at it (alone) soon, and
 * republishes the routes (its row may have changed). Call after any write
 * to a deployment or its instances whose id is at hand. */
void am_deploy_touch(struct am_deploy *d, long long deployment_id);
/* Marks every deployment due (a change whose deployments are not known);
 * the next pass looks at them all. */
void am_deploy_kick(struct am_deploy *d);
/* Asks for deployment dep_id to start if it is scaled to zero (idle) and
 * still wants to run: the gateway's wish for a request it holds. Any
 * thread: only queued here, acted on by the main loop (repeats are one). */
void am_deploy_wake(struct am_deploy *d, long long dep_id);
/* A deployment's cold start times as the API shows them, from its
 * cold_starts column: {last_ms, median_ms, count}, or null when none. */
json_t *am_deploy_cold_start_json(const char *cold_starts);
/* Ends supervision; with stop_engines, stops every engine first. */
void am_deploy_free(struct am_deploy *d, int stop_engines);

/* The container image of engine e on a cluster: the admin's (engine
 * settings) or the engine's default; "" when it has none. */
void am_deploy_image(struct am_deploy *d, const struct am_engine_def *e, char *out, size_t size);
/* The engine program for an engine name: its configured path or default. */
void am_deploy_binary(struct am_deploy *d, const struct am_engine_def *e, char *out, size_t size);
/* The program an admin set for name (an engine, or LLaMA-Factory's
 * "llamafactory") on the Engines page, or "" when none is set. */
void am_deploy_program_setting(struct am_deploy *d, const char *name, char *out, size_t size);
/* Whether program prog (a path, or a name on PATH) is there as a local
 * start will run it and, when py_module is not NULL, can import that Python
 * package (asked of prog itself, without a shell: `prog -c` with
 * importlib's find_spec, killed after 5 s; the answer is remembered for
 * 30 s). 0 with its path in out, or -1 with err (AM_E_NOT_FOUND, field
 * "binary") saying what is missing and that the Engines page sets it. */
int am_deploy_program_found(struct am_deploy *d, const char *prog, const char *py_module, char *out, size_t size,
			    struct am_err *err);
/* Builds an instance's command (argv, env) from its deployment, model and
 * placement. 0, or -1 with err. */
int am_deploy_command(struct am_deploy *d, json_t *dep, json_t *model, json_t *inst, struct am_argv *argv,
		      struct am_argv *env, struct am_err *err);
/* Live serving metrics of a deployment: {running, waiting, kv_cache_usage,
 * tokens_per_second, prompt_tokens_total, generation_tokens_total}. */
json_t *am_deploy_metrics(struct am_deploy *d, long long deployment_id);
/* The metrics above over time: {"t": [...], "requests_running": [...], ...}. */
json_t *am_deploy_history(struct am_deploy *d, long long deployment_id, int64_t since_ms, int max);
/* The last lines of an instance's log (inst: its row). */
json_t *am_deploy_last_lines(struct am_deploy *d, json_t *inst, int n);
/* The file that holds a replica's log: instance is an instance id or a
 * replica number ("" for the first replica). Where a replica not started
 * yet will write it when none is known. 0 with path. */
int am_deploy_log_file(struct am_deploy *d, long long deployment_id, const char *instance, char *path, size_t size);
struct am_buf;
/* The placements' counters (how many, their CPU time) in Prometheus text. */
void am_deploy_render_metrics(struct am_deploy *d, struct am_buf *out);
/* Adds to out what the runtime shows of an instance (inst: its row):
 * runtime, address, port, and while it runs the runtime's own details
 * (the local runtime's pid; null when it does not run). */
void am_deploy_describe(struct am_deploy *d, json_t *inst, json_t *out);
/* Places replica `replica` of dep (a deployments row) and records its
 * instance and GPU reservations. 0, or -1 with the planner's reason. */
int am_deploy_place(struct am_deploy *d, json_t *dep, json_t *model, int replica, char *why, size_t whysize);
/* Stops every instance of a deployment so the reconciler starts them anew. */
void am_deploy_restart(struct am_deploy *d, long long deployment_id);
/* An instance's engine key from what its row keeps (`stored`): a nonce
 * ("amn_...") keyed-hashed (BLAKE2b) with the secret in <data>/engine.key,
 * so the database holds no key an engine takes; a row an older aimaas
 * wrote holds the key itself, used as is. 0, or -1 (out empty) when the
 * secret cannot be read or made. out: at least 69 bytes. */
int am_deploy_engine_key(struct am_deploy *d, const char *stored, char *out, size_t size);
/* At start, for a live workload (ref: the runtime's reference) marked
 * AIMAAS_OWNER=<this data dir>:instance:<id>:...: 1 when it is the
 * instance's recorded engine, or the engine a killed aimaas started under
 * the marker recorded for it (then adopted: recorded and watched); 0 when
 * nobody owns it (the caller ends it). */
int am_deploy_claim(struct am_deploy *d, const char *ref, const char *marker, long long id);
/* 1 when ref (a reference the runtime found) is a watched instance's engine. */
int am_deploy_owns_ref(struct am_deploy *d, const char *ref);
/* Which GPU process ids belong to aimaas's engines (the runtime says). */
int am_deploy_owns_pid(struct am_deploy *d, int pid, long long *instance_id);

/* ---- verbs (am_deploy_verbs.c): the API's changes to deployments ----
 * The API parses JSON, authorizes and answers; these validate what belongs
 * to deployments (names, engine, model, adapters, capacity), write the
 * deployments table and record the task the reconciler finishes. Each runs
 * in the caller's transaction (the API dispatcher's), or in its own when
 * there is none; on failure nothing is written, err names the field. */

/* Who acts: the owner of what is created, the actor of the tasks. */
struct am_deploy_actor {
	long long user_id;
	const char *username;
	int admin;                 /* may let a model run its own code; no quota */
};

/* A LoRA adapter served on the deployment's base model. */
struct am_deploy_lora {
	const char *name;          /* the model name clients send; NULL when not a string */
	const char *model_ref;     /* as the caller named the adapter (for messages) */
	long long model_id;        /* the caller resolved it to a model it may see; 0 when none */
};

#define AM_DEPLOY_MAX_NAMES 16 /* aliases and adapters per deployment */

/* A deployment as POST /deployments asks for it (docs/api.md). Strings and
 * JSON values are borrowed for the call. JSON values are the request's as
 * sent (any type): the checks name the field when one is not as expected. */
struct am_deploy_spec {
	const char *name;          /* what clients send as "model" */
	const char *model_ref;     /* as the caller named the model (for messages) */
	long long model_id;        /* resolved by the caller; 0 when none it may see */
	const char *engine;        /* NULL: "vllm" */
	int replicas;              /* 0: 1 */
	int gpus_per_replica;      /* 0: from the pinned GPUs, else 1 */
	json_t *gpus;              /* pinned GPUs (ids or "node:index"), or NULL */
	const char *placement;     /* NULL: "binpack"; or "spread" */
	int max_model_len;         /* 0: the planner's */
	int max_num_seqs;          /* 0: the engine's default */
	double gpu_memory_utilization; /* 0: the planner's */
	json_t *engine_args;       /* a list of strings, or NULL */
	json_t *env;               /* an object of strings, or NULL */
	int trust_remote_code;
	int start;                 /* desired running (else stopped) */
	const char *aliases[AM_DEPLOY_MAX_NAMES]; /* NULL entries: not a string */
	int naliases;
	struct am_deploy_lora loras[AM_DEPLOY_MAX_NAMES];
	int nloras;
	int idle_after_s;          /* scale to zero after this long without a request; 0: never */
	int evictable;             /* an on-demand start of another may stop it (needs idle_after_s) */
	int priority;              /* 0-100: only a start of at least this priority may evict it */
};

/* What am_deploy_create made (or, for a dry run, would make). */
struct am_deploy_created {
	long long id;              /* 0 for a dry run */
	long long task_id;         /* the create task when started, else 0 */
	json_t *plan;              /* the planner's choice: owned, free with json_decref */
	struct am_argv argv, env;  /* dry run: the first replica's command; free with am_argv_free */
};

/* Validates spec, plans its replicas and, unless dry_run, records the
 * deployment (owned by who), places its replicas when it starts and records
 * a running "deployment.create" task the reconciler finishes. One that
 * scales to zero (idle_after_s) and does not fit now is recorded idle: its
 * first request starts it (evicting others when it may). A dry run
 * reads only: out gets the plan and the command. 0 with out (release with
 * am_deploy_created_free), or -1 with err. */
int am_deploy_create(struct am_deploy *d, const struct am_deploy_spec *spec, int dry_run, const struct am_deploy_actor *who,
		     struct am_deploy_created *out, struct am_err *err);
void am_deploy_created_free(struct am_deploy_created *c);

/* A PATCH: only the fields marked present change. */
struct am_deploy_patch {
	int replicas;              /* 0: unchanged */
	int max_num_seqs;          /* 0: unchanged */
	json_t *engine_args;       /* NULL: unchanged; masked values ("--x=********") keep what is stored */
	json_t *env;               /* NULL: unchanged; "********" keeps what is stored */
	int has_aliases;
	const char *aliases[AM_DEPLOY_MAX_NAMES];
	int naliases;
	int has_loras;             /* with nloras 0: serve none */
	struct am_deploy_lora loras[AM_DEPLOY_MAX_NAMES];
	int nloras;
	int has_idle_after_s, idle_after_s; /* 0: never idle (an idle one starts again) */
	int min_replicas_zero;     /* min_replicas 0 sent alone: the stored idle_after_s must be set */
	int has_evictable, evictable;
	int has_priority, priority;
};

/* Applies a patch to deployment id: an engine that sees a change
 * (arguments, environment, max_num_seqs) restarts; adapters are loaded and
 * unloaded at runtime on vLLM engines started with LoRA (the reconciler
 * brings each running engine's set to the new one; the base keeps serving),
 * else the engines restart with them; more replicas of a running deployment
 * must fit now (else AM_E_CONFLICT on "replicas"); aliases reach the gateway
 * without a restart. Records a running "deployment.update" task (its id in
 * *task_id); *restarting (may be NULL) says whether engines restart. 0, or
 * -1 with err. */
int am_deploy_update(struct am_deploy *d, long long id, const struct am_deploy_patch *patch, const char *actor,
		     long long *task_id, int *restarting, struct am_err *err);

/* The actions: the deployment's desired state changes and the reconciler
 * acts on it, finishing the task recorded here (its id in *task_id; one
 * still open is cancelled). Start also forgets failed instances; restart
 * stops every instance so each is placed and started anew; delete stops
 * them and then removes the deployment. AM_E_CONFLICT while it is being
 * deleted. 0, or -1 with err. */
int am_deploy_want_running(struct am_deploy *d, long long id, const char *actor, long long *task_id, struct am_err *err);
int am_deploy_want_stopped(struct am_deploy *d, long long id, const char *actor, long long *task_id, struct am_err *err);
int am_deploy_want_restarted(struct am_deploy *d, long long id, const char *actor, long long *task_id, struct am_err *err);
int am_deploy_want_deleted(struct am_deploy *d, long long id, const char *actor, long long *task_id, struct am_err *err);

/* An engine's admin-set allow list ("env_allow" or "args_allow"), or NULL. */
json_t *am_deploy_engine_allow(struct am_deploy *d, const char *engine, const char *col);
/* An admin's settings of an engine, as the API checked them: binary (NULL:
 * unchanged; "": the default), the custom engine's argv template and the
 * allow lists (JSON lists as text; NULL: unchanged), the container image on
 * clusters (NULL: unchanged; "": the default). 0, or -1 with err. */
int am_deploy_engine_set(struct am_deploy *d, const char *engine, const char *binary, const char *argv,
			 const char *env_allow, const char *args_allow, const char *image, struct am_err *err);

#endif
