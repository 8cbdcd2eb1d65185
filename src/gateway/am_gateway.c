/* am_gateway: the gateway's public face. The work is in files by concern:
 * gw_table.c (the published table: swap, lookups), gw_threads.c (worker
 * loops, hand-offs), gw_usage.c (usage records to the journal, then to a
 * sink), gw_stats.c (/metrics), gw_proxy.c (the request path),
 * gw_upstream.c (pooled connections to engines), gw_json.c (the body
 * scanner), gw_journal.c (the journal's files). */
#include "am_gateway.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../am_server.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_rand.h"
#include "gw_internal.h"

int am_gateway_owns(const char *t, size_t n)
{
	size_t plen = n;
	const char *q = memchr(t, '?', n);
	if (q)
		plen = (size_t)(q - t);
	if (plen >= 4 && !memcmp(t, "/v1/", 4))
		return 1;
	return (plen == 7 && !memcmp(t, "/rerank", 7)) || (plen == 10 && !memcmp(t, "/v2/rerank", 10)) ||
	       (plen == 6 && !memcmp(t, "/score", 6));
}

/* ---- the published table ---- */

struct am_routes *am_gateway_routes_new(void)
{
	return am_calloc(1, sizeof(struct am_routes));
}

struct am_route *am_gateway_routes_add_route(struct am_routes *r)
{
	if (r->nroutes == r->caproutes) {
		r->caproutes = r->caproutes ? r->caproutes * 2 : 16;
		r->routes = am_realloc(r->routes, (size_t)r->caproutes * sizeof *r->routes);
	}
	struct am_route *x = &r->routes[r->nroutes++];
	memset(x, 0, sizeof *x);
	return x;
}

struct am_route_key *am_gateway_routes_add_key(struct am_routes *r)
{
	if (r->nkeys == r->capkeys) {
		r->capkeys = r->capkeys ? r->capkeys * 2 : 16;
		r->keys = am_realloc(r->keys, (size_t)r->capkeys * sizeof *r->keys);
	}
	struct am_route_key *k = &r->keys[r->nkeys++];
	memset(k, 0, sizeof *k);
	return k;
}

void am_gateway_routes_free(struct am_routes *r)
{
	if (!r)
		return;
	for (int i = 0; i < r->nroutes; i++)
		free(r->routes[i].reps);
	free(r->routes);
	for (int i = 0; i < r->nkeys; i++) {
		for (int m = 0; m < r->keys[i].nmodels; m++)
			free(r->keys[i].models[m]);
		free(r->keys[i].models);
	}
	free(r->keys);
	free(r);
}

void am_gateway_publish(struct am_gateway *g, struct am_routes *routes)
{
	gw_table_swap(g, gw_table_new(g, routes));
}

int am_gateway_serves(struct am_gateway *g, const char *model)
{
	pthread_mutex_lock(&g->mu);
	int found = gw_table_route(g->table, model) != NULL;
	pthread_mutex_unlock(&g->mu);
	return found;
}

int am_gateway_connect(struct am_gateway *g, long long user_id, char *headers, size_t size)
{
	int sv[2];
	if (g->stopped || !g->nworkers || !g->internal[0])
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
		am_warn("gateway", "cannot open a connection into the gateway: %s", strerror(errno));
		return -1;
	}
	/* the peer's name is what marks the connection as the control plane's:
	 * an accepted socket's peer is an address (or "unix"), never this */
	gw_threads_handoff(g, sv[1], "", 0, GW_PEER_LOCAL);
	am_fmt(headers, size, "Authorization: Bearer %s\r\n" GW_USER_HEADER ": %lld\r\n", g->internal, user_id);
	return sv[0];
}

/* ---- usage ---- */

void am_gateway_usage_prepare(struct am_gateway *g)
{
	gw_usage_prepare(g);
}

const char *am_gateway_journal_dir(const struct am_gateway *g)
{
	return g ? g->jdir : "";
}

int am_gateway_usage_drain(struct am_gateway *g, am_gateway_usage_fold fold, void *data)
{
	return gw_usage_drain(g, fold, data);
}

/* ---- metrics, hand-offs, life ---- */

void am_gateway_render_metrics(struct am_gateway *g, struct am_buf *out)
{
	gw_stats_render(g, out);
}

void am_gateway_handoff(struct am_gateway *g, int fd, const char *bytes, size_t len, const char *peer)
{
	gw_threads_handoff(g, fd, bytes, len, peer);
}

struct am_gateway *am_gateway_new(struct am_server *srv, const struct am_gateway_config *cfg)
{
	struct am_gateway *g = am_calloc(1, sizeof *g);
	g->srv = srv;
	g->cfg = *cfg;
	if (g->cfg.threads < 1)
		g->cfg.threads = 1;
	if (g->cfg.hold_ms <= 0)
		g->cfg.hold_ms = 300000;
	pthread_mutex_init(&g->mu, NULL);
	return g;
}

int am_gateway_start(struct am_gateway *g)
{
	am_fmt(g->jdir, sizeof g->jdir, "%s/usage-journal", g->srv->cfg.data_dir);
	if (gw_journal_mkdir(g->jdir) != 0) {
		am_error("gateway", "usage journal: cannot create %s: %s (records wait in memory until written)", g->jdir,
			 strerror(errno));
		g->jdir[0] = '\0';
	}
	/* the control plane's credential on its own connections (am_gateway_connect) */
	am_rand_token("", g->internal, sizeof g->internal);
	/* what the last run answered but did not write: the sink's first drain */
	gw_usage_replay(g);
	if (gw_threads_start(g) != 0)
		return -1;
	am_info("gateway", "OpenAI-compatible endpoint at /v1 on %d worker thread(s)", g->nworkers);
	return 0;
}

void am_gateway_stop(struct am_gateway *g)
{
	if (!g || g->stopped)
		return;
	g->stopped = 1;
	gw_threads_stop(g);
}

void am_gateway_free(struct am_gateway *g)
{
	if (!g)
		return;
	am_gateway_stop(g);
	gw_threads_free(g);
	gw_usage_free(g);
	gw_table_unref(g, g->table);
	gw_table_free_counters(g);
	pthread_mutex_destroy(&g->mu);
	free(g);
}
