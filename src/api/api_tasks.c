/* api_tasks: the audit trail. Admins see every task; users their own (by
 * user id: the tasks of a deleted account are no new one's). */
#include <string.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "../store/am_store.h"
#include "../task/am_task.h"
#include "am_api.h"

#define TASK_COLS "id, kind, target, actor, state, progress, message, refusals, created_at, started_at, finished_at"

/* The trail grows by a row per call: a filtered page and its count run on
 * the read worker. */
struct list_job {
	char kind[128], state[32], target[160];
	long long actor, limit, offset, after;
	int count;                 /* count the total */
	json_t *items;             /* set by the worker; NULL when the read failed */
	long long total;
};

#define TASK_FILTER "(?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR target = ?3)" \
		    " AND (?4 = 0 OR actor_id = ?4)"

static void list_read(struct am_store *ro, void *arg)
{
	struct list_job *j = arg;
	/* One query shape: each filter is "? IS NULL OR column = ?". */
	const char *k = j->kind[0] ? j->kind : NULL, *st = j->state[0] ? j->state : NULL, *t = j->target[0] ? j->target : NULL;
	j->total = -1;
	if (am_store_rows(ro, &j->items,
			  "SELECT " TASK_COLS " FROM tasks WHERE " TASK_FILTER " AND (?7 = 0 OR id < ?7)"
			  " ORDER BY id DESC LIMIT ?5 OFFSET ?6", "sssiiii", k, st, t, j->actor, j->limit, j->offset, j->after) != 0 ||
	    (j->count && am_store_int(ro, &j->total, 0, "SELECT COUNT(*) FROM tasks WHERE " TASK_FILTER, "sssi", k, st, t,
				      j->actor) != 0)) {
		json_decref(j->items);
		j->items = NULL;
	}
}

static void list_free(void *arg)
{
	struct list_job *j = arg;
	json_decref(j->items);
	free(j);
}

static int list(struct am_ctx *ctx, struct am_err *err)
{
	struct list_job *done = ctx->pending;
	if (done) { /* resumed: the worker has read the page */
		if (!done->items)
			return am_err_set(err, AM_E_INTERNAL, "", "could not read tasks");
		ctx->resp = am_api_list_keyset(json_incref(done->items), done->total, done->limit, done->offset,
					       am_api_next(done->items, done->limit));
		return 0;
	}
	struct list_job *j = am_calloc(1, sizeof *j);
	if (am_api_page(ctx, &j->limit, &j->offset, err) != 0 || am_api_keyset(ctx, &j->after, &j->count, err) != 0)
		goto refuse;
	if (am_http_query(ctx->req, "kind", j->kind, sizeof j->kind) < 0) {
		am_err_set(err, AM_E_INVALID, "kind", "'kind' is badly encoded or too long");
		goto refuse;
	}
	if (am_http_query(ctx->req, "target", j->target, sizeof j->target) < 0) {
		am_err_set(err, AM_E_INVALID, "target", "'target' is badly encoded or too long");
		goto refuse;
	}
	enum am_task_state s;
	if (am_http_query(ctx->req, "state", j->state, sizeof j->state) < 0 ||
	    (j->state[0] && am_task_state_parse(j->state, &s) != 0)) {
		am_err_set(err, AM_E_INVALID, "state", "'state' must be one of queued, running, succeeded, failed, cancelled");
		goto refuse;
	}
	j->actor = ctx->who.admin ? 0 : ctx->who.user_id; /* 0: everyone's */
	return am_api_read(ctx, list_read, j, list_free, list, err);
refuse:
	free(j);
	return -1;
}

static int get(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (am_api_param_id(ctx, "id", AM_MSG_W("task"), &id, err) != 0)
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
