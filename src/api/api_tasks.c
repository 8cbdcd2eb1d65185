/* api_tasks: the audit trail. Admins see every task; users their own (by
 * user id: the tasks of a deleted account are no new one's). */
#include <string.h>

#include "../base/am_buf.h"
#include "../store/am_store.h"
#include "../task/am_task.h"
#include "am_api.h"

#define TASK_COLS "id, kind, target, actor, state, progress, message, refusals, created_at, started_at, finished_at"

static int list(struct am_ctx *ctx, struct am_err *err)
{
	long long limit, offset;
	if (am_api_page(ctx, &limit, &offset, err) != 0)
		return -1;
	char kind[128] = "", state[32] = "", target[160] = "";
	if (am_http_query(ctx->req, "kind", kind, sizeof kind) < 0)
		return am_err_set(err, AM_E_INVALID, "kind", "'kind' is badly encoded or too long");
	if (am_http_query(ctx->req, "target", target, sizeof target) < 0)
		return am_err_set(err, AM_E_INVALID, "target", "'target' is badly encoded or too long");
	enum am_task_state s;
	if (am_http_query(ctx->req, "state", state, sizeof state) < 0 || (state[0] && am_task_state_parse(state, &s) != 0))
		return am_err_set(err, AM_E_INVALID, "state",
				  "'state' must be one of queued, running, succeeded, failed, cancelled");
	long long actor = ctx->who.admin ? 0 : ctx->who.user_id; /* 0: everyone's */
	/* One query shape: each filter is "? IS NULL OR column = ?". */
	const char *k = kind[0] ? kind : NULL, *st = state[0] ? state : NULL, *t = target[0] ? target : NULL;
	json_t *items = NULL;
	long long total = 0;
	if (am_store_rows(ctx->srv->store, &items,
			  "SELECT " TASK_COLS " FROM tasks WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR state = ?2)"
			  " AND (?3 IS NULL OR target = ?3) AND (?4 = 0 OR actor_id = ?4)"
			  " ORDER BY id DESC LIMIT ?5 OFFSET ?6", "sssiii", k, st, t, actor, limit, offset) != 0 ||
	    am_store_int(ctx->srv->store, &total, 0,
			 "SELECT COUNT(*) FROM tasks WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR state = ?2)"
			 " AND (?3 IS NULL OR target = ?3) AND (?4 = 0 OR actor_id = ?4)", "sssi", k, st, t, actor) != 0) {
		json_decref(items);
		return am_err_set(err, AM_E_INTERNAL, "", "could not read tasks");
	}
	ctx->resp = am_api_list(items, total, limit, offset);
	return 0;
}

static int get(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (am_api_param_id(ctx, "id", "task", &id, err) != 0)
		return -1;
	json_t *row = NULL;
	if (am_store_row(ctx->srv->store, &row, "SELECT " TASK_COLS ", actor_id FROM tasks WHERE id = ?", "i", id) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not read the task");
	long long actor = json_integer_value(json_object_get(row, "actor_id"));
	json_object_del(row, "actor_id");
	if (!row || !am_api_may_see(ctx, actor, 0)) {
		json_decref(row);
		return am_err_set(err, AM_E_NOT_FOUND, "", "no task with id %lld", id);
	}
	ctx->resp = row;
	return 0;
}

const struct am_route_def am_api_tasks_routes[] = {
	{ "GET", "/api/v1/tasks", list, AM_USER, NULL, 0, 0 },
	{ "GET", "/api/v1/tasks/{id}", get, AM_USER, NULL, 0, 0 },
};
const size_t am_api_tasks_nroutes = sizeof am_api_tasks_routes / sizeof am_api_tasks_routes[0];
