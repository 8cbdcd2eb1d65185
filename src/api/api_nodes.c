/* api_nodes: nodes and GPUs, read-only: the local node registers itself,
 * Kubernetes clusters' nodes come through their watches (api_clusters). */
#include <stdint.h>
#include <string.h>

#include "../node/am_node.h"
#include "../sched/am_capacity_db.h"
#include "../store/am_store.h"
#include "am_api.h"

static int nodes(struct am_ctx *ctx, struct am_err *err)
{
	json_t *ids = NULL;
	if (am_store_rows(ctx->srv->store, &ids, "SELECT id FROM nodes ORDER BY id", NULL) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not read nodes");
	json_t *items = json_array();
	size_t i;
	json_t *r;
	json_array_foreach(ids, i, r) {
		json_t *n = am_node_json(ctx->srv, json_string_value(json_object_get(r, "id")));
		if (n)
			json_array_append_new(items, n);
	}
	json_decref(ids);
	ctx->resp = am_api_list(items, (long long)json_array_size(items), 500, 0);
	return 0;
}

static int node(struct am_ctx *ctx, struct am_err *err)
{
	const char *id = am_api_param(ctx, "id");
	ctx->resp = am_node_json(ctx->srv, id);
	if (!ctx->resp)
		return am_err_set(err, AM_E_NOT_FOUND, "", "no node '%.60s'", id);
	return 0;
}

/* Adds held_by to each GPU of items: what aimaas placed there (a
 * deployment's replica, a fine-tuning job) and its size. Someone else's
 * holder shows to a user who is not an admin as its kind and size only. */
static void add_holders(struct am_ctx *ctx, json_t *items)
{
	json_t *all = am_capacity_db_holders(ctx->srv->store);
	size_t i;
	json_t *g;
	json_array_foreach(items, i, g) {
		json_t *held = json_object_get(all, json_string_value(json_object_get(g, "id")));
		json_t *list = json_array();
		size_t k;
		json_t *h;
		json_array_foreach(held, k, h) {
			json_t *o = json_deep_copy(h);
			json_int_t owner = json_integer_value(json_object_get(h, "owner_id"));
			if (!ctx->who.admin && owner != ctx->who.user_id) {
				json_object_del(o, "id");
				json_object_del(o, "name");
				json_object_del(o, "replica");
			}
			json_object_del(o, "owner_id");
			json_array_append_new(list, o);
		}
		json_object_set_new(g, "held_by", list);
	}
	json_decref(all);
}

static int gpus(struct am_ctx *ctx, struct am_err *err)
{
	char nodeid[128] = "";
	if (am_http_query(ctx->req, "node", nodeid, sizeof nodeid) < 0)
		return am_err_set(err, AM_E_INVALID, "node", "'node' is badly encoded or too long");
	json_t *items = am_node_gpus_json(ctx->srv, nodeid[0] ? nodeid : NULL);
	add_holders(ctx, items);
	ctx->resp = am_api_list(items, (long long)json_array_size(items), 500, 0);
	return 0;
}

static int gpu(struct am_ctx *ctx, struct am_err *err)
{
	const char *id = am_api_param(ctx, "id");
	json_t *all = am_node_gpus_json(ctx->srv, NULL);
	size_t i;
	json_t *g;
	json_array_foreach(all, i, g) {
		if (strcmp(json_string_value(json_object_get(g, "id")), id) == 0) {
			ctx->resp = json_array();
			json_array_append(ctx->resp, g);
			break;
		}
	}
	json_decref(all);
	if (!ctx->resp)
		return am_err_set(err, AM_E_NOT_FOUND, "", "no GPU '%.100s'", id);
	add_holders(ctx, ctx->resp);
	json_t *one = json_incref(json_array_get(ctx->resp, 0));
	json_decref(ctx->resp);
	ctx->resp = one;
	return 0;
}

/* GET /gpus/{id}/history?since=&max=: memory, utilisation and temperature
 * samples, for the console's charts */
static int history(struct am_ctx *ctx, struct am_err *err)
{
	const char *id = am_api_param(ctx, "id");
	long long since = 0, max = 300;
	if (am_api_query_int(ctx, "since", 0, INT64_MAX / 2, &since, err) != 0 ||
	    am_api_query_int(ctx, "max", 1, 5000, &max, err) != 0)
		return -1;
	json_t *h = am_node_history_json(ctx->srv, id, since, (int)max);
	if (!h) {
		json_t *all = am_node_gpus_json(ctx->srv, NULL);
		int known = 0;
		size_t i;
		json_t *g;
		json_array_foreach(all, i, g)
			known |= !strcmp(json_string_value(json_object_get(g, "id")), id);
		json_decref(all);
		if (!known)
			return am_err_set(err, AM_E_NOT_FOUND, "", "no GPU '%.100s'", id);
		static const char *const none[] = { "memory_used", "utilization", "temperature", "memory_reserved" };
		h = json_pack("{s:[]}", "t");
		for (int k = 0; k < 4; k++)
			json_object_set_new(h, none[k], json_array());
	}
	json_object_set_new(h, "gpu", json_string(id));
	ctx->resp = h;
	return 0;
}

const struct am_route_def am_api_nodes_routes[] = {
	{ "GET", "/api/v1/gpus/{id}/history", history, AM_USER, NULL, 0, 0 },
	{ "GET", "/api/v1/nodes", nodes, AM_USER, NULL, 0, 0 },
	{ "GET", "/api/v1/nodes/{id}", node, AM_USER, NULL, 0, 0 },
	{ "GET", "/api/v1/gpus", gpus, AM_USER, NULL, 0, 0 },
	{ "GET", "/api/v1/gpus/{id}", gpu, AM_USER, NULL, 0, 0 },
};
const size_t am_api_nodes_nroutes = sizeof am_api_nodes_routes / sizeof am_api_nodes_routes[0];
