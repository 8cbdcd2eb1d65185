/* api_users: user management, for admins. The last active admin can be
 * neither demoted, disabled nor deleted, so the platform never locks
 * itself out. */
#include <sodium.h>
#include <string.h>

#include "../base/am_buf.h"
#include "../base/am_json.h"
#include "../base/am_time.h"
#include "../deploy/am_routes.h"
#include "../store/am_store.h"
#include "am_api.h"

#define USER_COLS "id, username, display_name, role, disabled, created_at, updated_at, last_login_at"

static json_t *fetch(struct am_ctx *ctx, long long id)
{
	json_t *u = NULL;
	am_store_row(ctx->srv->store, &u, "SELECT " USER_COLS " FROM users WHERE id = ?", "i", id);
	if (u)
		am_api_bools(u, (const char *const[]){ "disabled", NULL });
	return u;
}

static int check_role(json_t *body, const char **role, struct am_err *err)
{
	if (am_json_get_str(body, "role", AM_JSON_OPTIONAL, 1, 16, role, err) != 0)
		return -1;
	if (*role && strcmp(*role, "admin") != 0 && strcmp(*role, "user") != 0)
		return am_err_set(err, AM_E_INVALID, "role", "'role' must be 'admin' or 'user'");
	return 0;
}

static int list(struct am_ctx *ctx, struct am_err *err)
{
	long long limit, offset, after, total = -1;
	int count;
	if (am_api_page(ctx, &limit, &offset, err) != 0 || am_api_keyset(ctx, &after, &count, err) != 0)
		return -1;
	json_t *rows = NULL;
	if (am_store_rows(ctx->srv->store, &rows, "SELECT " USER_COLS " FROM users WHERE id > ? ORDER BY id LIMIT ? OFFSET ?",
			  "iii", after, limit, offset) != 0 ||
	    (count && am_store_int(ctx->srv->store, &total, 0, "SELECT COUNT(*) FROM users", NULL) != 0)) {
		json_decref(rows);
		return am_err_set(err, AM_E_INTERNAL, "", "could not read users");
	}
	size_t i;
	json_t *u;
	json_array_foreach(rows, i, u)
		am_api_bools(u, (const char *const[]){ "disabled", NULL });
	ctx->resp = am_api_list_keyset(rows, total, limit, offset, am_api_next(rows, limit));
	return 0;
}

static int create(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "username", "password", "role", "display_name", NULL };
	const char *username = NULL, *password = NULL, *role = "user", *display = "";
	if (am_json_only(ctx->body, fields, err) != 0 ||
	    am_json_get_str(ctx->body, "username", AM_JSON_REQUIRED, 1, 4 * 64, &username, err) != 0 ||
	    am_auth_check_username(username, err) != 0 ||
	    am_json_get_str(ctx->body, "password", AM_JSON_REQUIRED, 0, 1024, &password, err) != 0 ||
	    am_auth_check_password(password, "password", err) != 0 || check_role(ctx->body, &role, err) != 0 ||
	    am_json_get_str(ctx->body, "display_name", AM_JSON_OPTIONAL, 0, 100, &display, err) != 0)
		return -1;
	am_fmt(ctx->target, sizeof ctx->target, "user:%s", username);
	struct am_pw_job *pw = ctx->pending;
	if (!pw) /* hashed off the loop, then create runs again */
		return am_api_password(ctx, NULL, NULL, password, 0, 0, create, err);
	if (!pw->hashed)
		return am_err_set(err, AM_E_INTERNAL, "", "could not hash the password");
	long long now = am_wall_ms();
	int rc = am_store_exec(ctx->srv->store, "INSERT INTO users(username, display_name, password_hash, role, created_at,"
			       " updated_at) VALUES(?, ?, ?, ?, ?, ?)", "ssssii", username, display, pw->out, role, now, now);
	if (rc == AM_STORE_CONSTRAINT)
		return am_err_set(err, AM_E_CONFLICT, "username", "a user named '%s' already exists", username);
	if (rc != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not create the user");
	long long id = am_store_last_id(ctx->srv->store);
	am_fmt(ctx->target, sizeof ctx->target, "user:%lld", id);
	ctx->resp = fetch(ctx, id);
	ctx->status = 201;
	return 0;
}

static int get(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (am_api_param_id(ctx, "id", AM_MSG_W("user"), &id, err) != 0)
		return -1;
	ctx->resp = fetch(ctx, id);
	if (!ctx->resp)
		return am_err_set(err, AM_E_NOT_FOUND, "", "no user with id %lld", id);
	return 0;
}

/* 1 when the user is the only enabled admin left. */
static int last_admin(struct am_ctx *ctx, long long id)
{
	long long others = 0;
	am_store_int(ctx->srv->store, &others, 0,
		     "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0 AND id <> ?", "i", id);
	return others == 0;
}

static int update(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "display_name", "role", "disabled", "password", NULL };
	long long id;
	if (am_api_param_id(ctx, "id", AM_MSG_W("user"), &id, err) != 0)
		return -1;
	am_fmt(ctx->target, sizeof ctx->target, "user:%lld", id);
	const char *display = NULL, *role = NULL, *password = NULL;
	int disabled = -1;
	if (am_json_only(ctx->body, fields, err) != 0 ||
	    am_json_get_str(ctx->body, "display_name", AM_JSON_OPTIONAL, 0, 100, &display, err) != 0 ||
	    check_role(ctx->body, &role, err) != 0 ||
	    am_json_get_bool(ctx->body, "disabled", AM_JSON_OPTIONAL, &disabled, err) != 0 ||
	    am_json_get_str(ctx->body, "password", AM_JSON_OPTIONAL, 0, 1024, &password, err) != 0 ||
	    (password && am_auth_check_password(password, "password", err) != 0))
		return -1;
	struct am_pw_job *pw = ctx->pending;
	if (password && !pw) /* hashed off the loop, then update runs again */
		return am_api_password(ctx, NULL, NULL, password, 0, 0, update, err);
	json_t *cur = fetch(ctx, id);
	if (!cur)
		return am_err_set(err, AM_E_NOT_FOUND, "", "no user with id %lld", id);
	int is_admin = strcmp(json_string_value(json_object_get(cur, "role")), "admin") == 0;
	json_decref(cur);
	if (is_admin && ((role && strcmp(role, "user") == 0) || disabled == 1) && last_admin(ctx, id))
		return am_err_set(err, AM_E_CONFLICT, role ? "role" : "disabled",
				  "this is the last active admin; make another admin first");
	struct am_store *st = ctx->srv->store;
	long long now = am_wall_ms();
	int rc = 0;
	if (display)
		rc |= am_store_exec(st, "UPDATE users SET display_name = ? WHERE id = ?", "si", display, id);
	if (role)
		rc |= am_store_exec(st, "UPDATE users SET role = ? WHERE id = ?", "si", role, id);
	if (disabled >= 0)
		rc |= am_store_exec(st, "UPDATE users SET disabled = ? WHERE id = ?", "ii", (long long)disabled, id);
	if (password) {
		if (!pw->hashed)
			return am_err_set(err, AM_E_INTERNAL, "", "could not hash the password");
		rc |= am_store_exec(st, "UPDATE users SET password_hash = ? WHERE id = ?", "si", pw->out, id);
	}
	if (password || disabled == 1) /* a reset or a lock-out ends every session */
		rc |= am_store_exec(st, "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND kind = 'session'"
				    " AND revoked_at IS NULL", "ii", now, id);
	rc |= am_store_exec(st, "UPDATE users SET updated_at = ? WHERE id = ?", "ii", now, id);
	if (rc != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not update the user");
	if (ctx->srv->gateway) /* a disabled user's keys and sessions stop working on /v1 now */
		am_routes_publish(ctx->srv);
	ctx->resp = fetch(ctx, id);
	return 0;
}

static int delete(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (am_api_param_id(ctx, "id", AM_MSG_W("user"), &id, err) != 0)
		return -1;
	am_fmt(ctx->target, sizeof ctx->target, "user:%lld", id);
	json_t *cur = fetch(ctx, id);
	if (!cur)
		return am_err_set(err, AM_E_NOT_FOUND, "", "no user with id %lld", id);
	int is_admin = strcmp(json_string_value(json_object_get(cur, "role")), "admin") == 0;
	json_decref(cur);
	if (id == ctx->who.user_id)
		return am_err_set(err, AM_E_CONFLICT, "", "you cannot delete yourself");
	if (is_admin && last_admin(ctx, id))
		return am_err_set(err, AM_E_CONFLICT, "", "this is the last active admin");
	/* What runs on a user's behalf is stopped first, by them or an admin;
	 * what is left (stopped deployments, datasets, finished jobs, models)
	 * stays, owned by the old id: admins alone see it, and a new account of
	 * the same name gets a new id and owns none of it. */
	json_t *busy = NULL;
	am_store_row(ctx->srv->store, &busy,
		     "SELECT (SELECT group_concat(name, ', ') FROM (SELECT name FROM deployments d WHERE owner_id = ?1"
		     "   AND (desired = 'running' OR EXISTS (SELECT 1 FROM instances i WHERE i.deployment_id = d.id"
		     "   AND i.pid IS NOT NULL)) ORDER BY id LIMIT 10)) AS deps,"
		     " (SELECT group_concat(name, ', ') FROM (SELECT name FROM ft_jobs WHERE owner_id = ?1"
		     "   AND (state IN ('queued','starting','running','stopping') OR export_state IN ('queued','running'))"
		     "   ORDER BY id LIMIT 10)) AS jobs", "i", id);
	const char *deps = json_string_value(json_object_get(busy, "deps")), *jobs = json_string_value(json_object_get(busy, "jobs"));
	if (deps || jobs) {
		if (deps && jobs)
			am_err_set(err, AM_E_CONFLICT, "",
				   "user %lld still runs deployments %.300s and fine-tuning jobs %.300s; stop or delete them first",
				   id, deps, jobs);
		else if (deps)
			am_err_set(err, AM_E_CONFLICT, "", "user %lld still runs deployments %.300s; stop or delete them first",
				   id, deps);
		else
			am_err_set(err, AM_E_CONFLICT, "", "user %lld still runs fine-tuning jobs %.300s; stop or delete them first",
				   id, jobs);
		json_decref(busy);
		return -1;
	}
	json_decref(busy);
	if (am_store_exec(ctx->srv->store, "DELETE FROM users WHERE id = ?", "i", id) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not delete the user");
	if (ctx->srv->gateway) /* its keys and sessions stop working on /v1 now */
		am_routes_publish(ctx->srv);
	ctx->resp = json_pack("{s:I,s:b}", "id", (json_int_t)id, "deleted", 1);
	return 0;
}

const struct am_route_def am_api_users_routes[] = {
	{ "GET", "/api/v1/users", list, AM_ADMIN, NULL, 0, 0 },
	{ "POST", "/api/v1/users", create, AM_ADMIN, "user.create", 0, 0 },
	{ "GET", "/api/v1/users/{id}", get, AM_ADMIN, NULL, 0, 0 },
	{ "PATCH", "/api/v1/users/{id}", update, AM_ADMIN, "user.update", 0, 0 },
	{ "DELETE", "/api/v1/users/{id}", delete, AM_ADMIN, "user.delete", 0, 0 },
};
const size_t am_api_users_nroutes = sizeof am_api_users_routes / sizeof am_api_users_routes[0];
