/* am_deploy: deployments on the local runtime. The database says what the
 * user wants (a deployment: model, engine, replicas, GPUs, desired running
 * or stopped) and what exists (instances: GPUs, port, pid + start time,
 * state). A reconciler compares them on a timer and on every change, and acts:
 * it places replicas through the planner (reserving GPU memory), starts
 * engines, probes their health, restarts crashed ones with exponential
 * backoff (failed after 5 tries), stops them (SIGTERM to the group, SIGKILL
 * after a grace period), and scrapes their metrics.
 *
 * Instance states: pending -> starting -> running, and backoff, failed,
 * stopping. Deployment states add stopped, deleting and waiting (no room).
 * Because everything is in the database, aimaas can be killed at any moment:
 * at start it re-adopts engines that still run (same pid and start time),
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

struct am_deploy *am_deploy_new(struct am_server *srv);
/* Adopts what the database says is running and starts the reconciler. */
int am_deploy_start(struct am_deploy *d);
/* Reconcile soon (after an API change). */
void am_deploy_kick(struct am_deploy *d);
/* Ends supervision; with stop_engines, stops every engine first. */
void am_deploy_free(struct am_deploy *d, int stop_engines);

/* The planner's view of the local GPUs right now (reservations and memory
 * used by other processes included); returns how many. */
int am_deploy_gpus(struct am_deploy *d, struct am_plan_gpu *out, int max);
/* The engine program for an engine name: its configured path or default. */
void am_deploy_binary(struct am_deploy *d, const struct am_engine_def *e, char *out, size_t size);
/* Builds an instance's command (argv, env) from its deployment, model and
 * placement. 0, or -1 with err. */
int am_deploy_command(struct am_deploy *d, json_t *dep, json_t *model, json_t *inst, struct am_argv *argv,
		      struct am_argv *env, struct am_err *err);
/* Live serving metrics of a deployment: {running, waiting, kv_cache_usage,
 * tokens_per_second, prompt_tokens_total, generation_tokens_total}. */
json_t *am_deploy_metrics(struct am_deploy *d, long long deployment_id);
/* The metrics above over time: {"t": [...], "requests_running": [...], ...}. */
json_t *am_deploy_history(struct am_deploy *d, long long deployment_id, int64_t since_ms, int max);
/* The last lines of an instance's log. */
json_t *am_deploy_last_lines(json_t *inst, int n);
/* Places replica `replica` of dep (a deployments row) and records its
 * instance and GPU reservations. 0, or -1 with the planner's reason. */
int am_deploy_place(struct am_deploy *d, json_t *dep, json_t *model, int replica, char *why, size_t whysize);
/* Stops every instance of a deployment so the reconciler starts them anew. */
void am_deploy_restart(struct am_deploy *d, long long deployment_id);
/* A child's environment: aimaas's own less its secrets (AIMAAS_* names
 * am_engine_secret_name calls secret) and less what set overrides, then
 * set, each name once (the first in set wins: put aimaas's own first).
 * Free with am_deploy_strv_free. */
char **am_deploy_child_env(const struct am_argv *set);
void am_deploy_strv_free(char **v);
/* An instance's engine key from what its row keeps (`stored`): a nonce
 * ("amn_...") keyed-hashed (BLAKE2b) with the secret in <data>/engine.key,
 * so the database holds no key an engine takes; a row an older aimaas
 * wrote holds the key itself, used as is. 0, or -1 (out empty) when the
 * secret cannot be read or made. out: at least 69 bytes. */
int am_deploy_engine_key(struct am_deploy *d, const char *stored, char *out, size_t size);
/* At start, for a live process marked AIMAAS_OWNER=<this data dir>:instance:
 * <id>:...: 1 when it is the instance's recorded engine, or the engine a
 * killed aimaas started under the marker recorded for it (then adopted:
 * recorded and watched); 0 when nobody owns it (the caller ends it). */
int am_deploy_claim(struct am_deploy *d, pid_t pid, uint64_t start, const char *marker, long long id);
/* Which GPU process ids belong to aimaas's engines (their process groups). */
int am_deploy_owns_pid(struct am_deploy *d, int pid, long long *instance_id);

#endif
