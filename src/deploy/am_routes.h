/* am_routes: the control plane's side of the gateway's route table. It
 * reads the database in one pass (four queries: deployments with their
 * models, ready instances, API keys, console sessions) into the plain
 * struct am_routes the gateway serves from, and publishes it when it
 * differs from what the gateway has (a digest of everything a request can
 * see, except the usage counters that change all the time).
 *
 * It lives with the deployments (src/deploy) because most of what it
 * publishes is theirs: which replicas are ready, at which host and port,
 * with which engine key (am_deploy_engine_key); the reconciler is its
 * main caller: it publishes the deployments that changed alone
 * (am_routes_publish_deps), the API the whole table after a change to
 * keys, users or sessions. The gateway itself reads no database. */
#ifndef AM_ROUTES_H
#define AM_ROUTES_H

#include <stdint.h>

#include "../gateway/am_gateway.h"

struct am_server;
struct am_store;
struct am_deploy;
/* What publishing keeps from one build to the next: the digest of the
 * table the gateway has, and each ready instance's derived engine key
 * (deriving them all is half a build). srv->routes; main loop only. */
struct am_routes_cache;

/* Builds the table from st as of now_ms (sessions that expired are left
 * out). d derives the engines' keys (NULL: keys kept as stored, for tests);
 * cache (may be NULL) lends the last build's keys and keeps this one's.
 * 0 with *out set (free with am_gateway_routes_free), or -1. */
int am_routes_build(struct am_store *st, struct am_deploy *d, struct am_routes_cache *cache, int64_t now_ms,
		    struct am_routes **out);
/* Re-reads deployments ids[0..n) alone (their rows and ready instances)
 * into r, a table am_routes_build made (keeps its deployment order); a
 * deployment gone loses its routes. cache as for am_routes_build (its
 * keys lent, not kept). 1 when a route changed, 0 when none did, -1 when
 * a read failed (r then partly patched: build it anew). */
int am_routes_patch(struct am_store *st, struct am_deploy *d, const struct am_routes_cache *cache, struct am_routes *r,
		    const long long *ids, size_t n);
/* A digest of what a request can see in r (all but keys' used tokens). */
uint64_t am_routes_digest(const struct am_routes *r);
/* Builds the table from the server's database and hands it to the gateway
 * when its digest differs from the last one published. Call it after any
 * change to deployments, instances, keys, users or sessions (the
 * reconciler does on every pass). Main loop. */
void am_routes_publish(struct am_server *srv);
/* Publishes a change to deployments ids[0..n) alone (their rows, their
 * ready instances): re-reads just those, patches the last table and hands
 * a copy over when any route differs. Falls back to am_routes_publish
 * when there is no last table or a read fails. Keys and sessions are as
 * the last full build read them. Main loop. */
void am_routes_publish_deps(struct am_server *srv, const long long *ids, size_t n);
struct am_routes_cache *am_routes_cache_new(void);
void am_routes_cache_free(struct am_routes_cache *c);

#endif
