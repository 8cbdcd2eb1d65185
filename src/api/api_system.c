/* api_system: the probes: /healthz for load balancers (open) and /metrics
 * for Prometheus, which names every deployment and its traffic: open only
 * with --metrics-public, else for the metrics token (--metrics-token-file)
 * or an admin's token or session. */
#include <string.h>
#include <strings.h>

#include "../base/am_mem.h"
#include "../base/am_rand.h"
#include "../base/am_time.h"
#include "../deploy/am_deploy.h"
#include "../gateway/am_gateway.h"
#include "../gpu/am_inventory.h"
#include "../node/am_node.h"
#include "../obs/am_metrics.h"
#include "../sched/am_capacity_db.h"
#include "../store/am_store.h"
#include "am_api.h"

#ifndef AM_COMMIT
#define AM_COMMIT "unknown"
#endif

struct am_metrics *am__api_metrics(struct am_api *api);

static int healthz(struct am_ctx *ctx, struct am_err *err)
{
	long long one = 0;
	if (am_store_int(ctx->srv->store, &one, 0, "SELECT 1", NULL) != 0 || one != 1)
		return am_err_set(err, AM_E_UNAVAILABLE, "", "the database does not answer");
	ctx->resp = json_pack("{s:s,s:s,s:I}", "status", "ok", "version", AM_VERSION, "uptime_s",
			      (json_int_t)((am_now_ns() - ctx->srv->started_ns) / 1000000000ull));
	if (ctx->srv->cfg.demo)
		json_object_set_new(ctx->resp, "demo", json_true());
	if (am_store_full(ctx->srv->store)) {
		/* still serving reads and /v1 (usage waits in the journal); writes answer 507 */
		struct am_err why;
		am_err_clear(&why);
		am_err_disk_full(&why, ctx->srv->cfg.data_dir);
		json_object_set_new(ctx->resp, "status", json_string("degraded"));
		json_object_set_new(ctx->resp, "reason", json_string(why.msg));
	}
	return 0;
}

/* Who may scrape: anyone when public; the metrics token as a bearer; an
 * admin (the dispatcher resolved a user's token or session already). */
static int metrics_allowed(struct am_ctx *ctx, struct am_err *err)
{
	const struct am_config *c = &ctx->srv->cfg;
	if (c->metrics_public || ctx->who.admin)
		return 0;
	const char *h = am_http_header(ctx->req, "authorization");
	if (c->metrics_token[0] && h && strncasecmp(h, "Bearer ", 7) == 0) {
		const char *t = h + 7;
		while (*t == ' ')
			t++;
		if (am_secure_streq(t, c->metrics_token))
			return 0;
	}
	if (ctx->who.user_id)
		return am_err_set(err, AM_E_FORBIDDEN, "", "/metrics is for admins and the metrics token");
	return am_err_set(err, AM_E_UNAUTH, "",
			  "/metrics needs 'Authorization: Bearer <token>': the metrics token (--metrics-token-file) or an "
			  "admin's; or start aimaas with --metrics-public");
}

/* Every node's GPUs in Prometheus text: from the capacity view (the local
 * node's cards and every other ready node's, with aimaas's reservations)
 * total and reserved memory; the card's own readings (memory used,
 * utilisation) where the live inventory has them (the local node's real
 * cards). */
static void render_gpus(struct am_server *srv, struct am_buf *out)
{
	struct am_capacity cap;
	am_capacity_db_load(srv, &cap);
	struct am_inventory_snapshot *snap = am_malloc(sizeof *snap);
	am_inventory_get(srv->inv, snap);
	am_buf_adds(out, "# HELP aimaas_gpu_memory_bytes GPU memory by state: total, used (as the card reports it),"
			 " reserved (by aimaas's placements).\n# TYPE aimaas_gpu_memory_bytes gauge\n");
	for (int i = 0; i < cap.n; i++) {
		const struct am_plan_gpu *g = &cap.gpus[i];
		am_buf_printf(out, "aimaas_gpu_memory_bytes{node=\"%s\",gpu=\"%d\",uuid=\"%s\",state=\"total\"} %llu\n",
			      g->node, g->index, g->id, (unsigned long long)g->total);
		am_buf_printf(out, "aimaas_gpu_memory_bytes{node=\"%s\",gpu=\"%d\",uuid=\"%s\",state=\"reserved\"} %llu\n",
			      g->node, g->index, g->id, (unsigned long long)g->reserved);
	}
	for (int i = 0; i < snap->n; i++)
		if (!snap->gpus[i].simulated)
			am_buf_printf(out, "aimaas_gpu_memory_bytes{node=\"%s\",gpu=\"%d\",uuid=\"%s\",state=\"used\"} %llu\n",
				      AM_LOCAL_NODE, snap->gpus[i].index, snap->gpus[i].uuid,
				      (unsigned long long)snap->gpus[i].mem_used);
	am_buf_adds(out, "# HELP aimaas_gpu_utilization_ratio GPU busy fraction.\n"
			 "# TYPE aimaas_gpu_utilization_ratio gauge\n");
	for (int i = 0; i < snap->n; i++)
		if (snap->gpus[i].util_gpu >= 0 && !snap->gpus[i].simulated)
			am_buf_printf(out, "aimaas_gpu_utilization_ratio{node=\"%s\",gpu=\"%d\",uuid=\"%s\"} %.2f\n",
				      AM_LOCAL_NODE, snap->gpus[i].index, snap->gpus[i].uuid, snap->gpus[i].util_gpu / 100.0);
	free(snap);
	am_capacity_free(&cap);
}

static int metrics(struct am_ctx *ctx, struct am_err *err)
{
	if (metrics_allowed(ctx, err) != 0)
		return -1;
	struct am_buf out;
	am_buf_init(&out, 64 << 20);
	am_buf_printf(&out, "# HELP aimaas_build_info Version of this aimaas.\n# TYPE aimaas_build_info gauge\n"
			    "aimaas_build_info{version=\"%s\",commit=\"%s\"} 1\n", AM_VERSION, AM_COMMIT);
	am_buf_printf(&out, "# HELP aimaas_start_time_seconds When this aimaas started.\n"
			    "# TYPE aimaas_start_time_seconds gauge\naimaas_start_time_seconds %.3f\n",
		      (double)ctx->srv->started_ms / 1000.0);
	am_metrics_render(am__api_metrics(ctx->srv->api), &out);
	am_gateway_render_metrics(ctx->srv->gateway, &out);
	am_deploy_render_metrics(ctx->srv->deploy, &out);
	render_gpus(ctx->srv, &out);
	am_http_respond(ctx->req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
	am_buf_free(&out);
	return 0;
}

const struct am_route_def am_api_system_routes[] = {
	{ "GET", "/healthz", healthz, AM_PUBLIC, NULL, 0, 0 },
	{ "GET", "/metrics", metrics, AM_PUBLIC, NULL, AM_ROUTE_RAW, 0 },
};
const size_t am_api_system_nroutes = sizeof am_api_system_routes / sizeof am_api_system_routes[0];
