/* am_gateway: the OpenAI-compatible endpoint (/v1 on aimaas's port). Worker
 * threads (one loop per core) serve it; the main loop hands them each
 * connection whose first request is for the gateway, and they hand back a
 * connection that turns to the control plane. Workers read an immutable
 * snapshot of routes (served names -> running replicas) and API keys that
 * the main loop rebuilds when the database changes; rate-limit counters are
 * shared atomics; usage records go through a journal (gw_journal: on disk
 * before the answer ends) to a writer thread that folds them into SQLite. */
#ifndef AM_GATEWAY_H
#define AM_GATEWAY_H

#include <stddef.h>

#include "../base/am_buf.h"

struct am_server;
struct am_gateway;

struct am_gateway_config {
	int threads;           /* worker loops (at least 1) */
	size_t max_body;       /* request body limit (vision requests carry base64 images) */
	int keepalive_ms;      /* SSE comment interval while the first token is pending */
	int first_byte_ms;     /* how long an engine may take to start answering */
	int idle_ms;           /* silence allowed inside a streamed answer */
};

struct am_gateway *am_gateway_new(struct am_server *srv, const struct am_gateway_config *cfg);
int am_gateway_start(struct am_gateway *g);
/* Rebuilds the snapshot when deployments, instances or keys changed. */
void am_gateway_refresh(struct am_gateway *g);
/* Whether a request target belongs to the gateway. */
int am_gateway_owns(const char *target, size_t len);
/* The main loop's hand-off of a gateway connection to a worker. */
void am_gateway_handoff(struct am_gateway *g, int fd, const char *bytes, size_t len, const char *peer);
/* Folds the usage records the workers handed over into SQLite (at exit,
 * once the writer thread has stopped). */
void am_gateway_flush_usage(struct am_gateway *g);
void am_gateway_render_metrics(struct am_gateway *g, struct am_buf *out);
/* Where a served model name is answered now: a ready replica's port and
 * engine key, and the name the engine knows it by. 0, or -1 with why
 * ("no model", or the deployment's state). */
int am_gateway_resolve(struct am_gateway *g, const char *model, int *port, char *key, size_t keysize, char *engine_name,
		       size_t namesize, char *why, size_t whysize);
void am_gateway_free(struct am_gateway *g);

#endif
