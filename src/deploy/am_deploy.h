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
/* Ends supervision; with stop_engines, stops every engine first. */
void am_deploy_free(struct am_deploy *d, int stop_engines);

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
/* The last lines of an instance's log (inst: its row). */
json_t *am_deploy_last_lines(struct am_deploy *d, json_t *inst, int n);
/* The file that holds a replica's log: instance is an instance id or a
 * replica number ("" for the first replica). Where a replica not started
 * yet will write it when none is known. 0 with path. */
int am_deploy_log_file(struct am_deploy *d, long long deployment_id, const char *instance, char *path, size_t size);
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

#endif
