/* deploy_internal: what the deploy module's files share (am_deploy.c, the
 * reconciler; am_deploy_verbs.c, the API's verbs; am_idle.c, scale to
 * zero) and nobody else uses. */
#ifndef DEPLOY_INTERNAL_H
#define DEPLOY_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct am_deploy;
struct am_server;
struct am_capacity;
struct am_plan;
struct am_idle;

/* The server a deploy module serves (borrowed). */
struct am_server *am__deploy_server(struct am_deploy *d);

/* Records a running task of kind on deployment id as its current one (an
 * open one is cancelled: superseded) for the reconciler to finish, and
 * marks the deployment due. Its id. */
long long am__deploy_track(struct am_deploy *d, long long id, const char *kind, const char *actor, const char *msg);

/* Plans replica `replica` of dep (a deployments row; its pinned GPUs'
 * slice when pinned) for model on cap, writing nothing. 0 with out, or -1
 * with why. */
int am__deploy_plan_replica(json_t *dep, json_t *model, const struct am_capacity *cap, int replica, struct am_plan *out,
			    char *why, size_t whysize);

/* A remembered answer of am_deploy_program_found: whether prog (its
 * resolved path) imports module. */
struct am__deploy_probe {
	char prog[512];
	char module[64];
	int ok;
	uint64_t at_ns; /* 0: an empty slot */
};
#define AM__DEPLOY_PROBES 8
/* The deploy module's probe answers (AM__DEPLOY_PROBES of them). */
struct am__deploy_probe *am__deploy_probes(struct am_deploy *d);

/* ---- am_idle.c: scale to zero ----
 * A deployment with idle_after_s stops its replicas after that long with
 * no request (idle_at set: it still wants to run), and a request the
 * gateway holds for it starts it again (am_deploy_wake). */

/* The deploy module's scale-to-zero state (NULL before am_deploy_start). */
struct am_idle *am__deploy_idle(struct am_deploy *d);
/* Starts the idle check and the wake queue. Main loop. */
struct am_idle *am__idle_new(struct am_deploy *d);
void am__idle_free(struct am_idle *i);
/* The reconciler saw every replica of dep running: a cold start under
 * way (woken_at) is over, its time recorded. */
void am__idle_started(struct am_deploy *d, json_t *dep);
/* The reconciler could not place a woken deployment (why: the planner's
 * reason): stops the least recently used evictable deployments whose
 * GPUs make room, if any do, and appends what it did to why. */
void am__idle_make_room(struct am_deploy *d, json_t *dep, json_t *model, char *why, size_t whysize);
struct am_buf;
/* The cold start times (last, median) of every deployment that had one,
 * in Prometheus text. */
void am__idle_render_metrics(struct am_deploy *d, struct am_buf *out);

#endif
