/* am_api: the dispatcher of the REST API. */
#include "am_api.h"
#include "am_ui.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../auth/am_auth.h"
#include "../base/am_json.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_path.h"
#include "../base/am_rand.h"
#include "../base/am_time.h"
#include "../base/am_work.h"
#include "../model/am_model.h"
#include "../obs/am_metrics.h"
#include "../store/am_store.h"
#include "../task/am_task.h"

#define SESSION_COOKIE "aimaas_session"

struct am_api {
	struct am_server *srv;
	struct am_route_def *routes;
	size_t nroutes;
	struct am_metrics *metrics;
	/* Heavy reads (am_api_read): their own worker thread and read-only
	 * connection, so a long aggregate neither blocks the loop nor queues
	 * behind an upload's check on srv->work (nor an upload behind it).
	 * ro is used on the reads thread only; both NULL when it could not
	 * start (reads then run on the loop). */
	struct am_work *reads;
	struct am_store *ro;
};

/* The metrics live in the api, which /metrics renders. */
struct am_metrics *am__api_metrics(struct am_api *api);
struct am_metrics *am__api_metrics(struct am_api *api)
{
	return api->metrics;
}

/* Uploads a crash cut short: the request that wrote them is gone. */
static void remove_stale_uploads(const char *data_dir)
{
	char dir[1024], p[1400];
	am_fmt(dir, sizeof dir, "%s/uploads", data_dir);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "upload-", 7)) {
			am_fmt(p, sizeof p, "%s/%s", dir, e->d_name);
			unlink(p);
		}
	closedir(d);
}

struct am_api *am_api_new(struct am_server *srv)
{
	static const struct {
		const struct am_route_def *r;
		const size_t *n;
	} tables[] = {
		{ am_api_system_routes, &am_api_system_nroutes }, { am_api_auth_routes, &am_api_auth_nroutes },
		{ am_api_users_routes, &am_api_users_nroutes },   { am_api_nodes_routes, &am_api_nodes_nroutes },
		{ am_api_tasks_routes, &am_api_tasks_nroutes },     { am_api_models_routes, &am_api_models_nroutes },
		{ am_api_deployments_routes, &am_api_deployments_nroutes }, { am_api_keys_routes, &am_api_keys_nroutes },
		{ am_api_datasets_routes, &am_api_datasets_nroutes },
		{ am_api_finetune_routes, &am_api_finetune_nroutes },
		{ am_api_playground_routes, &am_api_playground_nroutes },
		{ am_api_clusters_routes, &am_api_clusters_nroutes },
		{ am_api_catalog_routes, &am_api_catalog_nroutes },
	};
	struct am_api *api = am_calloc(1, sizeof *api);
	api->srv = srv;
	remove_stale_uploads(srv->cfg.data_dir);
	for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
		api->nroutes += *tables[t].n;
	api->routes = am_calloc(api->nroutes, sizeof *api->routes);
	const char **methods = am_calloc(api->nroutes, sizeof *methods);
	const char **patterns = am_calloc(api->nroutes, sizeof *patterns);
	size_t k = 0;
	for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
		for (size_t i = 0; i < *tables[t].n; i++, k++) {
			api->routes[k] = tables[t].r[i];
			methods[k] = api->routes[k].method;
			patterns[k] = api->routes[k].pattern;
		}
	api->metrics = am_metrics_new(methods, patterns, api->nroutes);
	free(methods);
	free(patterns);
	char path[PATH_MAX + 16], err[512];
	am_fmt(path, sizeof path, "%s/aimaas.db", srv->cfg.data_dir);
	if (srv->base && am_store_open_readonly(path, &api->ro, err, sizeof err) == 0)
		api->reads = am_work_new(srv->base);
	if (!api->reads) {
		am_warn("api", "no read worker (%s): heavy reads run on the main loop", api->ro ? "no thread" : err);
		am_store_close(api->ro);
		api->ro = NULL;
	}
	return api;
}

void am_api_free(struct am_api *api)
{
	if (!api)
		return;
	am_work_free(api->reads); /* joins the thread: ro is ours again */
	am_store_close(api->ro);
	am_metrics_free(api->metrics);
	free(api->routes);
	free(api);
}

/* ---- answering ---- */

static int ends_with_at(const char *k)
{
	size_t n = strlen(k);
	return n > 3 && strcmp(k + n - 3, "_at") == 0;
}

void am_api_bools(json_t *obj, const char *const *keys)
{
	for (const char *const *k = keys; *k; k++) {
		json_t *v = json_object_get(obj, *k);
		if (json_is_integer(v))
			json_object_set_new(obj, *k, json_boolean(json_integer_value(v) != 0));
	}
}

/* am_json_dump's hook: every integer "*_at" member of an answer becomes an
 * RFC 3339 string, written as the answer is written. */
static int iso_at(const char *key, long long v, struct am_buf *out, void *arg)
{
	(void)arg;
	if (!ends_with_at(key))
		return 0;
	char iso[40];
	am_time_iso(v, iso, sizeof iso);
	am_buf_printf(out, "\"%s\"", iso);
	return 1;
}

/* am_json_dump's hook for an answer in Chinese: a member that carries a
 * text the server wrote in English and stored (a state's reason, a task's
 * message, an error kept from a failed step) is answered in Chinese when
 * the message table makes all of it (am_msg_translate), else as stored. */
static int stored_in_chinese(const char *key, const char *s, size_t n, struct am_buf *out, void *arg)
{
	(void)arg;
	static const char *const keys[] = { "reason", "message", "export_reason", "idle_reason", "refused",
					    "last_error", "error", "detail", NULL };
	int ours = 0;
	for (const char *const *k = keys; *k && !ours; k++)
		ours = !strcmp(key, *k);
	if (!ours || !n || n > 4096 || memchr(s, '\0', n))
		return 0;
	char zh[8192];
	if (!am_msg_translate(s, zh, sizeof zh))
		return 0;
	am_buf_add(out, "\"", 1);
	am_json_escape(out, zh, strlen(zh));
	am_buf_add(out, "\"", 1);
	return 1;
}

void am_api_reply_json(struct am_http_req *req, int status, json_t *v)
{
	struct am_json_hooks h = { iso_at, am_api_lang(req) == AM_LANG_ZH ? stored_in_chinese : NULL, NULL };
	char *s = am_json_dump_with(v, &h);
	am_http_add_header(req, "Cache-Control", "no-store");
	am_http_respond(req, status, "application/json", s, strlen(s));
	free(s);
}

enum am_lang am_api_lang(const struct am_http_req *req)
{
	return am_msg_lang(am_http_header(req, "accept-language"));
}

/* How many ASCII letters s has: how much of it is still English. */
static size_t latin_letters(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z');
	return n;
}

void am_api_reply_error(struct am_http_req *req, const struct am_err *err)
{
	/* in Chinese: as it was formatted in Chinese, or read back whole when
	 * that leaves less English (what a message quotes from another, such
	 * as an inspection's finding, is translated too) */
	const char *msg = err->msg;
	char whole[sizeof err->msg * 3];
	if (am_api_lang(req) == AM_LANG_ZH) {
		msg = err->msg_zh[0] ? err->msg_zh : err->msg;
		if (am_msg_translate(err->msg, whole, sizeof whole) && latin_letters(whole) < latin_letters(msg))
			msg = whole;
	}
	json_t *e = json_pack("{s:{s:s,s:s,s:o}}", "error", "code", am_err_name(err->code), "message", msg,
			      "field", err->field[0] ? json_string(err->field) : json_null());
	if (err->code == AM_E_RATE && err->retry_after > 0) {
		char ra[16];
		am_fmt(ra, sizeof ra, "%d", err->retry_after);
		am_http_add_header(req, "Retry-After", ra);
	}
	if (err->code == AM_E_UNAUTH)
		am_http_add_header(req, "WWW-Authenticate", "Bearer realm=\"aimaas\"");
	am_api_reply_json(req, am_err_status(err->code), e);
	json_decref(e);
}

/* ---- helpers ---- */

const char *am_api_param(struct am_ctx *ctx, const char *name)
{
	return am_route_param(&ctx->params, name);
}

int am_api_param_id(struct am_ctx *ctx, const char *name, const char *what, long long *out, struct am_err *err)
{
	const char *v = am_api_param(ctx, name);
	char *end;
	long long id = v ? strtoll(v, &end, 10) : 0;
	if (!v || *end || id <= 0) {
		am_err_set(err, AM_E_NOT_FOUND, "", "no %s with id '%.60s'", what, v ? v : "");
		if (err) /* "what" in Chinese too */
			am_msg_zhf(err->msg_zh, sizeof err->msg_zh, "no %s with id '%.60s'", am_msg_word(what), v ? v : "");
		return -1;
	}
	*out = id;
	return 0;
}

int am_api_query_int(struct am_ctx *ctx, const char *name, long long min, long long max, long long *out,
		     struct am_err *err)
{
	char buf[32];
	int rc = am_http_query(ctx->req, name, buf, sizeof buf);
	if (rc == 0)
		return 0;
	char *end;
	long long v = rc > 0 ? strtoll(buf, &end, 10) : 0;
	if (rc < 0 || *end || !buf[0] || v < min || v > max)
		return am_err_set(err, AM_E_INVALID, name, "'%s' must be an integer between %lld and %lld", name, min,
				  max);
	*out = v;
	return 0;
}

int am_api_may_see(const struct am_ctx *ctx, long long owner_id, int shared)
{
	return ctx->who.admin || shared || (owner_id > 0 && owner_id == ctx->who.user_id);
}

int am_api_model_lookup(struct am_ctx *ctx, const char *ref, long long *id)
{
	long long mid;
	json_t *row = NULL;
	if (am_model_lookup(ctx->srv->store, ref, &mid) != 0)
		return -1;
	am_store_row(ctx->srv->store, &row, "SELECT owner_id, visibility FROM models WHERE id = ?", "i", mid);
	int ok = row && am_api_may_see(ctx, json_integer_value(json_object_get(row, "owner_id")),
				       !strcmp(json_string_value(json_object_get(row, "visibility")) ?: "", "shared"));
	json_decref(row);
	if (!ok)
		return -1;
	*id = mid;
	return 0;
}

int am_api_page(struct am_ctx *ctx, long long *limit, long long *offset, struct am_err *err)
{
	*limit = 50;
	*offset = 0;
	if (am_api_query_int(ctx, "limit", 1, 500, limit, err) != 0 || am_api_query_int(ctx, "offset", 0, 1LL << 40, offset, err) != 0)
		return -1;
	return 0;
}

json_t *am_api_render_ids(json_t *ids, json_t *(*render)(void *arg, long long id), void *arg)
{
	json_t *items = json_array();
	size_t i;
	json_t *r;
	json_array_foreach(ids, i, r) {
		json_t *o = render(arg, json_integer_value(json_object_get(r, "id")));
		if (o)
			json_array_append_new(items, o);
	}
	json_decref(ids);
	return items;
}

json_t *am_api_list(json_t *items, long long total, long long limit, long long offset)
{
	return json_pack("{s:o,s:I,s:I,s:I}", "items", items, "total", (json_int_t)total, "limit", (json_int_t)limit,
			 "offset", (json_int_t)offset);
}

int am_api_keyset(struct am_ctx *ctx, long long *after, int *count, struct am_err *err)
{
	*after = 0;
	*count = 1;
	char t[8] = "";
	int rc = am_http_query(ctx->req, "total", t, sizeof t);
	if (rc < 0 || (rc > 0 && strcmp(t, "true") && strcmp(t, "false")))
		return am_err_set(err, AM_E_INVALID, "total", "'total' must be true or false");
	*count = strcmp(t, "false") != 0;
	return am_api_query_int(ctx, "after", 1, 1LL << 62, after, err);
}

long long am_api_next(json_t *rows, long long limit)
{
	if ((long long)json_array_size(rows) != limit || limit <= 0)
		return 0;
	return json_integer_value(json_object_get(json_array_get(rows, json_array_size(rows) - 1), "id"));
}

json_t *am_api_list_keyset(json_t *items, long long total, long long limit, long long offset, long long next)
{
	json_t *o = am_api_list(items, total, limit, offset);
	if (total < 0)
		json_object_set_new(o, "total", json_null());
	json_object_set_new(o, "next", next > 0 ? json_integer(next) : json_null());
	return o;
}

/* ---- the request path ---- */

static void ctx_free(struct am_http_req *req)
{
	struct am_ctx *ctx = req->app_ctx;
	if (!ctx)
		return;
	json_decref(ctx->body);
	json_decref(ctx->resp);
	if (ctx->upload_fd >= 0)
		close(ctx->upload_fd);
	if (ctx->upload_path[0])
		unlink(ctx->upload_path);
	free(ctx);
	req->app_ctx = NULL;
}

static int bearer(struct am_http_req *req, char *out, size_t size)
{
	const char *h = am_http_header(req, "authorization");
	if (!h)
		return 0;
	if (strncasecmp(h, "Bearer ", 7) != 0)
		return -1;
	const char *t = h + 7;
	while (*t == ' ')
		t++;
	if (!*t || strlen(t) >= size)
		return -1;
	am_strlcpy(out, t, size);
	return 1;
}

static int authenticate(struct am_ctx *ctx, struct am_err *err)
{
	char token[AM_TOKEN_LEN + 8];
	int from_cookie = 0;
	int rc = bearer(ctx->req, token, sizeof token);
	if (rc < 0)
		return am_err_set(err, AM_E_UNAUTH, "", "the Authorization header must be 'Bearer <token>'");
	if (rc == 0) {
		if (am_http_cookie(ctx->req, SESSION_COOKIE, token, sizeof token) != 1)
			return ctx->route->access == AM_PUBLIC ? 0 :
			       am_err_set(err, AM_E_UNAUTH, "", "authentication required: log in or send a bearer token");
		from_cookie = 1;
	}
	if (am_auth_resolve(ctx->srv->store, token, &ctx->who) != 0) {
		memset(&ctx->who, 0, sizeof ctx->who);
		return ctx->route->access == AM_PUBLIC ? 0 :
		       am_err_set(err, AM_E_UNAUTH, "", "the token is invalid, expired or revoked");
	}
	ctx->who.via_cookie = from_cookie;
	return 0;
}

static int safe_method(const char *m)
{
	return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "OPTIONS") == 0;
}

static int json_content_type(const char *ct)
{
	if (!ct)
		return 0;
	size_t n = strcspn(ct, ";");
	while (n && ct[n - 1] == ' ')
		n--;
	return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

static void on_head(struct am_http_req *req, void *data)
{
	struct am_api *api = data;
	struct am_ctx *ctx = am_calloc(1, sizeof *ctx);
	ctx->srv = api->srv;
	ctx->req = req;
	ctx->status = 200;
	ctx->route_index = api->nroutes; /* unmatched until matched */
	ctx->upload_fd = -1;
	req->app_ctx = ctx;
	req->app_free = ctx_free;

	struct am_err err;
	am_err_clear(&err);
	char allow[128];
	size_t idx = 0;
	switch (am_router_match(api->routes, sizeof api->routes[0], api->nroutes, req->method, req->path, &idx,
				&ctx->params, allow, sizeof allow)) {
	case AM_ROUTE_FOUND:
		break;
	case AM_ROUTE_BAD_METHOD:
		am_http_add_header(req, "Allow", allow);
		am_err_set(&err, AM_E_METHOD, "", "%s is not allowed on %.200s (allowed: %s)", req->method, req->path,
			   allow);
		goto fail;
	case AM_ROUTE_BAD_PATH:
		am_err_set(&err, AM_E_BAD_REQUEST, "", "the path has a bad percent-escape");
		goto fail;
	default:
		if (am_ui_serve(api->srv->cfg.ui_dir, req))
			return;
		am_err_set(&err, AM_E_NOT_FOUND, "", "no such endpoint: %s %.200s", req->method, req->path);
		goto fail;
	}
	ctx->route = &api->routes[idx];
	ctx->route_index = idx;
	if (authenticate(ctx, &err) != 0)
		goto fail;
	if (ctx->route->access == AM_ADMIN && !ctx->who.admin) {
		am_err_set(&err, AM_E_FORBIDDEN, "", "this needs the admin role");
		goto fail;
	}
	/* The console's cookie rides along on any request the browser makes, so
	 * a write authenticated by it must also carry the CSRF token that only
	 * our own pages can read. */
	if (ctx->who.user_id && ctx->who.via_cookie && !safe_method(req->method)) {
		const char *h = am_http_header(req, "x-csrf-token");
		if (!h || !ctx->who.csrf[0] || !am_secure_streq(h, ctx->who.csrf)) {
			am_err_set(&err, AM_E_FORBIDDEN, "X-CSRF-Token",
				   "a cookie-authenticated write needs the X-CSRF-Token header (the aimaas_csrf cookie)");
			goto fail;
		}
	}
	req->max_body = ctx->route->flags & AM_ROUTE_UPLOAD ? ctx->srv->cfg.dataset_max_bytes
			: ctx->route->max_body ? ctx->route->max_body : ctx->srv->cfg.max_body;
	int has_body = req->head.chunked || req->head.content_length > 0;
	if (req->head.content_length > 0 && (size_t)req->head.content_length > req->max_body) {
		am_err_set(&err, AM_E_TOO_LARGE, "", "the request body is larger than %zu bytes", req->max_body);
		goto fail;
	}
	if (has_body && !(ctx->route->flags & AM_ROUTE_ANY_BODY) &&
	    !json_content_type(am_http_header(req, "content-type"))) {
		am_err_set(&err, AM_E_MEDIA, "Content-Type", "the request body must be application/json");
		goto fail;
	}
	if (has_body && (ctx->route->flags & AM_ROUTE_UPLOAD)) { /* straight to disk, not to memory */
		char dir[1024];
		am_fmt(dir, sizeof dir, "%s/uploads", ctx->srv->cfg.data_dir);
		am_fmt(ctx->upload_path, sizeof ctx->upload_path, "%s/upload-XXXXXX", dir);
		ctx->upload_fd = am_mkdirs(dir) == 0 ? mkostemp(ctx->upload_path, O_CLOEXEC) : -1;
		if (ctx->upload_fd < 0) {
			int e = errno;
			am_error("api", "cannot store an upload under %s: %s", dir, strerror(e));
			am_err_set(&err, AM_E_INTERNAL, "", "cannot store the upload: %s", strerror(e));
			ctx->upload_path[0] = '\0';
			goto fail;
		}
		req->body_fd = ctx->upload_fd;
	}
	return;
fail:
	am_api_reply_error(req, &err);
}

static void record_failure(struct am_ctx *ctx, const struct am_err *err)
{
	/* Throttled attempts are not recorded: a client hammering a limit must
	 * not be able to grow the audit trail without bound. */
	if (!ctx->route->task_kind || err->code == AM_E_RATE || ctx->no_task)
		return; /* nor are dry runs: they change nothing */
	int anonymous = !ctx->actor[0] && !ctx->who.user_id;
	const char *actor = ctx->actor[0] ? ctx->actor : anonymous ? "anonymous" : ctx->who.username;
	struct am_store *st = ctx->srv->store;
	/* A refusal (a 4xx: the request was wrong, nothing happened) is
	 * counted on the row of the caller's last refusal of this kind within
	 * the hour, which takes the latest target and message: one row per
	 * (actor, kind) an hour, however many are sent. The caller is the user
	 * id (NULL for an anonymous call, nobody's even with a user named
	 * anonymous). */
	int refusal = err->code != AM_E_INTERNAL && err->code != AM_E_UNAVAILABLE;
	if (refusal) {
		long long now = am_wall_ms(), id = 0;
		am_store_int(st, &id, 0, "SELECT id FROM tasks WHERE kind = ? AND actor = ? AND actor_id IS NULLIF(?, 0)"
			     " AND refusals > 0 AND created_at > ? ORDER BY id DESC LIMIT 1", "ssii", ctx->route->task_kind,
			     actor, anonymous ? 0LL : ctx->who.user_id, now - 3600 * 1000LL);
		if (id && am_store_exec(st, "UPDATE tasks SET refusals = refusals + 1, target = ?, message = ?, finished_at = ?"
					" WHERE id = ?", "ssii", ctx->target, err->msg, now, id) == 0) {
			ctx->task_id = id;
			return;
		}
	}
	ctx->task_id = am_task_create(st, ctx->route->task_kind, ctx->target, actor, AM_TASK_FAILED, err->msg);
	if (ctx->task_id > 0)
		am_store_exec(st, "UPDATE tasks SET refusals = ?, actor_id = CASE WHEN ? THEN NULL ELSE actor_id END WHERE id = ?",
			      "iii", (long long)refusal, (long long)anonymous, ctx->task_id);
}

/* Every route's failed write on a full disk says so (507 disk_full, with the
 * data dir and its free bytes), not "internal". */
static void disk_full_check(struct am_ctx *ctx, struct am_err *err)
{
	if (err->code == AM_E_INTERNAL && am_store_full(ctx->srv->store))
		am_err_disk_full(err, ctx->srv->cfg.data_dir);
}


/* Runs fn as the route's handler: inside a transaction with its task for a
 * mutating route, then answers (unless fn deferred the answer). ctx may be
 * freed when this returns. */
static void run(struct am_ctx *ctx, am_api_fn fn)
{
	struct am_http_req *req = ctx->req;
	struct am_store *st = ctx->srv->store;
	struct am_err err;
	am_err_clear(&err);
	int rc;
	if (!ctx->route->task_kind) {
		/* one snapshot for the handler's reads, the locks taken once (a
		 * write, rare here, ends it first) */
		am_store_read_begin(st);
		rc = fn(ctx, &err);
		am_store_read_end(st);
		if (rc == 0 && ctx->deferred)
			return;
	} else {
		if (am_store_begin(st) != 0) {
			am_err_set(&err, AM_E_INTERNAL, "", "the database is not available");
			goto fail;
		}
		rc = fn(ctx, &err);
		if (rc == 0 && ctx->deferred) { /* nothing is kept until it resumes */
			am_store_rollback(st);
			return;
		}
		if (rc == 0 && ctx->task_id == 0 && !ctx->no_task) {
			const char *actor = ctx->actor[0] ? ctx->actor : ctx->who.username;
			ctx->task_id = am_task_create(st, ctx->route->task_kind, ctx->target, actor, AM_TASK_SUCCEEDED,
						      ctx->task_msg);
			if (ctx->task_id < 0)
				rc = am_err_set(&err, AM_E_INTERNAL, "", "could not record the task");
		}
		if (rc == 0 && am_store_commit(st) != 0)
			rc = am_err_set(&err, AM_E_INTERNAL, "", "could not commit the change");
		if (rc != 0) {
			am_store_rollback(st);
			ctx->task_id = 0;
			json_decref(ctx->resp);
			ctx->resp = NULL;
			if (err.code == AM_OK)
				am_err_set(&err, AM_E_INTERNAL, "", "internal error");
			disk_full_check(ctx, &err);
			record_failure(ctx, &err);
		}
	}
	if (ctx->task_id > 0) {
		char id[24];
		am_fmt(id, sizeof id, "%lld", ctx->task_id);
		am_http_add_header(req, "X-Task-Id", id);
	}
	if (rc != 0)
		goto fail;
	if (ctx->route->flags & AM_ROUTE_RAW)
		return;
	if (!ctx->resp)
		ctx->resp = json_object();
	am_api_reply_json(req, ctx->status, ctx->resp);
	return;
fail:
	disk_full_check(ctx, &err);
	if (err.code == AM_E_INTERNAL)
		am_error("api", "%s %s: %s", req->method, req->path, err.msg);
	am_api_reply_error(req, &err);
}

static void on_request(struct am_http_req *req, void *data)
{
	(void)data;
	struct am_ctx *ctx = req->app_ctx;
	struct am_err err;
	am_err_clear(&err);
	if (!(ctx->route->flags & AM_ROUTE_ANY_BODY)) {
		if (am_json_parse_object(req->body.data ? req->body.data : "", req->body.len, &ctx->body, &err) != 0) {
			am_api_reply_error(req, &err);
			return;
		}
	}
	run(ctx, ctx->route->fn);
}

void am_api_defer(struct am_ctx *ctx)
{
	ctx->deferred = 1;
}

void am_api_resume(struct am_ctx *ctx, am_api_fn fn)
{
	ctx->deferred = 0;
	am_http_on_abort(ctx->req, NULL, NULL);
	run(ctx, fn);
}

/* ---- heavy reads on the read worker ---- */

#define READS_QUEUED_MAX 64 /* beyond: 503, the reads worker is behind */

struct read_job {
	struct am_ctx *ctx;    /* NULL once the client has gone */
	struct am_store *ro;
	am_api_read_fn read;
	void *job;
	void (*free_job)(void *job);
	am_api_fn again;
};

static void read_run(void *arg)
{
	struct read_job *r = arg;
	r->read(r->ro, r->job);
}

static void read_abort(struct am_http_req *req, void *data)
{
	(void)req;
	((struct read_job *)data)->ctx = NULL;
}

static void read_done(void *arg, int cancelled)
{
	struct read_job *r = arg;
	if (!cancelled && r->ctx) {
		r->ctx->pending = r->job;
		am_api_resume(r->ctx, r->again); /* answers; ctx may be gone after */
	}
	r->free_job(r->job);
	free(r);
}

int am_api_read(struct am_ctx *ctx, am_api_read_fn read, void *job, void (*free_job)(void *job), am_api_fn again,
		struct am_err *err)
{
	struct am_api *api = ctx->srv->api;
	if (!api->reads) { /* no worker: the same steps, on the loop */
		read(ctx->srv->store, job);
		ctx->pending = job;
		int rc = again(ctx, err);
		ctx->pending = NULL;
		free_job(job);
		return rc;
	}
	if (am_work_pending(api->reads) >= READS_QUEUED_MAX) {
		free_job(job);
		return am_err_set(err, AM_E_UNAVAILABLE, "", "too many heavy reads are queued; retry shortly");
	}
	struct read_job *r = am_calloc(1, sizeof *r);
	*r = (struct read_job){ ctx, api->ro, read, job, free_job, again };
	if (am_work_submit(api->reads, read_run, read_done, r) != 0) {
		free(r);
		free_job(job);
		return am_err_set(err, AM_E_UNAVAILABLE, "", "aimaas is stopping");
	}
	am_http_on_abort(ctx->req, read_abort, r);
	am_api_defer(ctx);
	return 0;
}

/* ---- password work on the read worker ---- */

static void pw_run(struct am_store *ro, void *arg)
{
	(void)ro;
	struct am_pw_job *j = arg;
	if (j->pw) {
		if (j->hash)
			j->ok = am_auth_verify_password(j->hash, j->pw);
		else
			am_auth_dummy_verify(j->pw); /* the same time as a real check */
	}
	if (j->new_pw)
		j->hashed = am_auth_hash_password(j->new_pw, j->out, sizeof j->out) == 0;
}

static void pw_free(void *arg)
{
	struct am_pw_job *j = arg;
	char *s[] = { j->hash, j->pw, j->new_pw };
	for (int i = 0; i < 3; i++)
		if (s[i]) {
			sodium_memzero(s[i], strlen(s[i]));
			free(s[i]);
		}
	sodium_memzero(j, sizeof *j);
	free(j);
}

int am_api_password(struct am_ctx *ctx, const char *hash, const char *pw, const char *new_pw, long long uid, int flag,
		    am_api_fn again, struct am_err *err)
{
	struct am_pw_job *j = am_calloc(1, sizeof *j);
	j->hash = hash ? am_strdup(hash) : NULL;
	j->pw = pw ? am_strdup(pw) : NULL;
	j->new_pw = new_pw ? am_strdup(new_pw) : NULL;
	j->uid = uid;
	j->flag = flag;
	return am_api_read(ctx, pw_run, j, pw_free, again, err);
}

/* An answer that took longer than AM_SLOW_MS from the connection's accept
 * (or the request's first byte on a reused connection) to its hand-over is
 * logged with where the time went: waiting for the request's bytes, the
 * handler, the answer's send. Streams count to their head. */
#define AM_SLOW_MS 50
static void log_if_slow(const struct am_http_req *req)
{
	if (!req->answer_ns || req->streaming)
		return;
	uint64_t from = req->accept_ns ? req->accept_ns : req->start_ns;
	uint64_t now = am_now_ns();
	if (now - from < AM_SLOW_MS * 1000000ull)
		return;
	am_warn("slow", "\"%s %.300s\" %.1fms: accept->read %.1fms, read->answer %.1fms, answer->done %.1fms",
		req->method ? req->method : "-", req->path[0] ? req->path : "-", (double)(now - from) / 1e6,
		req->accept_ns ? (double)(req->start_ns - req->accept_ns) / 1e6 : 0.0,
		(double)(req->answer_ns - req->start_ns) / 1e6, (double)(now - req->answer_ns) / 1e6);
}

static void on_done(struct am_http_req *req, void *data)
{
	struct am_api *api = data;
	struct am_ctx *ctx = req->app_ctx;
	double secs = (double)(am_now_ns() - req->start_ns) / 1e9;
	size_t route = ctx ? ctx->route_index : api->nroutes;
	am_metrics_observe(api->metrics, route, req->status, secs);
	/* a successful call is a DEBUG line unless --access-log: an INFO line
	 * each would be most of the log (errors and slow calls stay visible) */
	enum am_log_level lvl = req->status >= 400 || api->srv->cfg.access_log ? AM_LOG_INFO : AM_LOG_DEBUG;
	if (am_log_enabled(lvl))
		am_log(lvl, "access", "%s \"%s %.300s\" %d %llu %.2fms user=%s", req->peer, req->method ? req->method : "-",
		       req->path[0] ? req->path : "-", req->status, (unsigned long long)req->bytes_out, secs * 1000,
		       ctx && ctx->who.user_id ? ctx->who.username : "-");
	log_if_slow(req);
}

static void on_error(struct am_http_req *req, int status, const char *message, void *data)
{
	(void)data;
	struct am_err err;
	am_err_clear(&err);
	enum am_errcode code = status == 413 ? AM_E_TOO_LARGE : status == 431 ? AM_E_HEADERS : AM_E_BAD_REQUEST;
	am_err_set(&err, code, "", "%s", message);
	if (status == 413 || status == 431 || status == 400) {
		am_api_reply_error(req, &err);
		return;
	}
	/* 408, 501, 505: statuses outside the table keep their own number */
	json_t *e = json_pack("{s:{s:s,s:s,s:n}}", "error", "code",
			      status == 408 ? "request_timeout" : status == 501 ? "not_implemented" : "http_version",
			      "message", message, "field");
	am_api_reply_json(req, status, e);
	json_decref(e);
}

void am_api_handlers(struct am_api *api, struct am_http_handlers *h)
{
	memset(h, 0, sizeof *h);
	h->on_head = on_head;
	h->on_request = on_request;
	h->on_done = on_done;
	h->on_error = on_error;
	h->data = api;
}
