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
 * main caller. The gateway itself reads no database. */
#ifndef AM_ROUTES_H
#define AM_ROUTES_H

#include <stdint.h>

#include "../gateway/am_gateway.h"

struct am_server;
struct am_store;
struct am_deploy;

/* Builds the table from st as of now_ms (sessions that expired are left
 * out). d derives the engines' keys (NULL: keys kept as stored, for tests).
 * 0 with *out set (free with am_gateway_routes_free), or -1. */
int am_routes_build(struct am_store *st, struct am_deploy *d, int64_t now_ms, struct am_routes **out);
/* A digest of what a request can see in r (all but keys' used tokens). */
uint64_t am_routes_digest(const struct am_routes *r);
/* Builds the table from the server's database and hands it to the gateway
 * when its digest differs from the last one published. Call it after any
 * change to deployments, instances, keys, users or sessions (the
 * reconciler does on every pass). Main loop. */
void am_routes_publish(struct am_server *srv);

#endif
