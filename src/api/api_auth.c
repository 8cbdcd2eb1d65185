/* api_auth: log in and out, who am I, change my password, personal tokens. */
#include <ctype.h>
#include <sodium.h>
#include <string.h>

#include "../auth/am_limiter.h"
#include "../base/am_buf.h"
#include "../base/am_json.h"
#include "../base/am_time.h"
#include "../deploy/am_routes.h"
#include "../store/am_store.h"
#include "am_api.h"

#define MAX_TOKENS_PER_USER 100

static void set_cookies(struct am_ctx *ctx, const char *token, const char *csrf, long long max_age)
{
	char c[256];
	am_fmt(c, sizeof c, "aimaas_session=%s; Path=/; Max-Age=%lld; HttpOnly; SameSite=Strict", token, max_age);
	am_http_add_header(ctx->req, "Set-Cookie", c);
	am_fmt(c, sizeof c, "aimaas_csrf=%s; Path=/; Max-Age=%lld; SameSite=Strict", csrf, max_age);
	am_http_add_header(ctx->req, "Set-Cookie", c);
}

static json_t *user_json(struct am_store *st, long long id)
{
	json_t *u = NULL;
	am_store_row(st, &u,
		     "SELECT id, username, display_name, role, disabled, created_at, updated_at, last_login_at"
		     " FROM users WHERE id = ?", "i", id);
	if (u)
		am_api_bools(u, (const char *const[]){ "disabled", NULL });
	return u;
}

static int login(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "username", "password", NULL };
	const char *username = NULL, *password = NULL;
	if (am_json_only(ctx->body, fields, err) != 0 ||
	    am_json_get_str(ctx->body, "username", AM_JSON_REQUIRED, 1, 4 * 64, &username, err) != 0 ||
	    am_json_get_str(ctx->body, "password", AM_JSON_REQUIRED, 1, 256, &password, err) != 0)
		return -1;
	am_strlcpy(ctx->actor, username, sizeof ctx->actor);
	struct am_limiter *lip = ctx->srv->login_ip_limiter, *luser = ctx->srv->login_user_limiter;
	const char *kip = ctx->req->peer;
	char kuser[96];
	am_fmt(kuser, sizeof kuser, "%s", username);
	for (char *p = kuser; *p; p++) /* usernames are case-insensitive */
		*p = (char)tolower((unsigned char)*p);
	long long now = am_wall_ms();
	int wait = am_limiter_check(lip, kip, now);
	int wait_u = am_limiter_check(luser, kuser, now);
	if (wait_u > wait)
		wait = wait_u;
	if (wait > 0) {
		am_err_set(err, AM_E_RATE, "", "too many failed logins; try again in %d s", wait);
		err->retry_after = wait;
		return -1;
	}
	struct am_pw_job *pw = ctx->pending;
	if (!pw) { /* the check runs off the loop, then login runs again with its outcome */
		json_t *u = NULL;
		if (am_store_row(ctx->srv->store, &u, "SELECT id, password_hash, disabled FROM users WHERE username = ?",
				 "s", username) != 0)
			return am_err_set(err, AM_E_INTERNAL, "", "could not read users");
		int rc = am_api_password(ctx, u ? json_string_value(json_object_get(u, "password_hash")) : NULL, password,
					 NULL, u ? json_integer_value(json_object_get(u, "id")) : 0,
					 u ? (int)json_integer_value(json_object_get(u, "disabled")) : 0, login, err);
		json_decref(u);
		return rc;
	}
	if (!pw->ok) {
		am_limiter_fail(lip, kip, now);
		am_limiter_fail(luser, kuser, now);
		return am_err_set(err, AM_E_UNAUTH, "", "wrong username or password");
	}
	long long uid = pw->uid;
	int disabled = pw->flag;
	am_fmt(ctx->target, sizeof ctx->target, "user:%lld", uid);
	if (disabled)
		return am_err_set(err, AM_E_FORBIDDEN, "", "this account is disabled");
	am_limiter_reset(luser, kuser);
	char token[AM_TOKEN_LEN], csrf[AM_TOKEN_LEN];
	long long sid;
	long long ttl = ctx->srv->cfg.session_ttl_s;
	if (am_auth_issue(ctx->srv->store, uid, "session", NULL, ttl, token, csrf, &sid) != 0 ||
	    am_store_exec(ctx->srv->store, "UPDATE users SET last_login_at = ? WHERE id = ?", "ii", now, uid) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not start a session");
	set_cookies(ctx, token, csrf, ttl);
	if (ctx->srv->gateway) /* the playground calls /v1 with this session */
		am_routes_publish(ctx->srv);
	ctx->resp = json_pack("{s:s,s:s,s:I,s:s,s:o}", "token", token, "token_type", "Bearer", "expires_at",
			      (json_int_t)(now + ttl * 1000), "csrf_token", csrf, "user", user_json(ctx->srv->store, uid));
	sodium_memzero(token, sizeof token);
	return 0;
}

static int logout(struct am_ctx *ctx, struct am_err *err)
{
	am_fmt(ctx->target, sizeof ctx->target, "user:%lld", ctx->who.user_id);
	if (strcmp(ctx->who.kind, "session") != 0)
		return am_err_set(err, AM_E_BAD_REQUEST, "",
				  "this is a personal API token, not a session: revoke it with DELETE /api/v1/tokens/{id}");
	if (am_store_exec(ctx->srv->store, "UPDATE sessions SET revoked_at = ? WHERE id = ?", "ii", am_wall_ms(),
			  ctx->who.session_id) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not end the session");
	set_cookies(ctx, "", "", 0);
	if (ctx->srv->gateway)
		am_routes_publish(ctx->srv);
	ctx->resp = json_pack("{s:b}", "ok", 1);
	return 0;
}

static int me(struct am_ctx *ctx, struct am_err *err)
{
	json_t *u = user_json(ctx->srv->store, ctx->who.user_id);
	if (!u)
		return am_err_set(err, AM_E_UNAUTH, "", "the user is gone");
	json_object_set_new(u, "auth", json_string(ctx->who.kind));
	ctx->resp = u;
	return 0;
}

static int change_password(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "current_password", "new_password", NULL };
	const char *cur = NULL, *next = NULL;
	am_fmt(ctx->target, sizeof ctx->target, "user:%lld", ctx->who.user_id);
	if (am_json_only(ctx->body, fields, err) != 0 ||
	    am_json_get_str(ctx->body, "current_password", AM_JSON_REQUIRED, 1, 256, &cur, err) != 0 ||
	    am_json_get_str(ctx->body, "new_password", AM_JSON_REQUIRED, 0, 1024, &next, err) != 0 ||
	    am_auth_check_password(next, "new_password", err) != 0)
		return -1;
	struct am_pw_job *pw = ctx->pending;
	if (!pw) { /* both argon2 steps off the loop, then this runs again */
		json_t *u = NULL;
		if (am_store_row(ctx->srv->store, &u, "SELECT password_hash FROM users WHERE id = ?", "i",
				 ctx->who.user_id) != 0 || !u)
			return am_err_set(err, AM_E_INTERNAL, "", "could not read the user");
		int rc = am_api_password(ctx, json_string_value(json_object_get(u, "password_hash")), cur, next,
					 ctx->who.user_id, 0, change_password, err);
		json_decref(u);
		return rc;
	}
	if (!pw->ok)
		return am_err_set(err, AM_E_INVALID, "current_password", "'current_password' is wrong");
	long long now = am_wall_ms();
	if (!pw->hashed ||
	    am_store_exec(ctx->srv->store, "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?", "sii", pw->out,
			  now, ctx->who.user_id) != 0 ||
	    /* other sessions end: whoever knew the old password is out */
	    am_store_exec(ctx->srv->store, "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND kind = 'session'"
			  " AND id <> ? AND revoked_at IS NULL", "iii", now, ctx->who.user_id, ctx->who.session_id) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not change the password");
	if (ctx->srv->gateway) /* the ended sessions stop working on /v1 (the playground) now */
		am_routes_publish(ctx->srv);
	ctx->resp = json_pack("{s:b}", "ok", 1);
	return 0;
}

#define TOKEN_COLS "s.id, s.name, s.token_hint, s.created_at, s.expires_at, s.last_used_at, s.revoked_at, u.username AS owner"

/* GET /tokens: one's personal tokens, newest first (an admin's ?all=true:
 * everyone's), paged by keyset (?after=<next>: ids below it). */
static int tokens_list(struct am_ctx *ctx, struct am_err *err)
{
	long long limit, offset, after, total = -1;
	int count;
	if (am_api_page(ctx, &limit, &offset, err) != 0 || am_api_keyset(ctx, &after, &count, err) != 0)
		return -1;
	char all[8] = "";
	am_http_query(ctx->req, "all", all, sizeof all);
	long long everyone = ctx->who.admin && strcmp(all, "true") == 0;
	json_t *rows = NULL;
	if (am_store_rows(ctx->srv->store, &rows,
			  "SELECT " TOKEN_COLS " FROM sessions s JOIN users u ON u.id = s.user_id"
			  " WHERE s.kind = 'token' AND (?1 OR s.user_id = ?2) AND (?3 = 0 OR s.id < ?3)"
			  " ORDER BY s.id DESC LIMIT ?4 OFFSET ?5", "iiiii", everyone, ctx->who.user_id, after, limit,
			  offset) != 0 ||
	    (count && am_store_int(ctx->srv->store, &total, 0,
				   "SELECT COUNT(*) FROM sessions WHERE kind = 'token' AND (?1 OR user_id = ?2)", "ii", everyone,
				   ctx->who.user_id) != 0)) {
		json_decref(rows);
		return am_err_set(err, AM_E_INTERNAL, "", "could not read tokens");
	}
	ctx->resp = am_api_list_keyset(rows, total, limit, offset, am_api_next(rows, limit));
	return 0;
}

static int tokens_create(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "name", "expires_in_days", NULL };
	const char *name = NULL;
	long long days = 0;
	am_fmt(ctx->target, sizeof ctx->target, "user:%lld", ctx->who.user_id);
	if (am_json_only(ctx->body, fields, err) != 0 ||
	    am_json_get_str(ctx->body, "name", AM_JSON_REQUIRED, 1, 100, &name, err) != 0 ||
	    am_json_get_int(ctx->body, "expires_in_days", AM_JSON_OPTIONAL, 1, 3650, &days, err) != 0)
		return -1;
	long long n = 0;
	am_store_int(ctx->srv->store, &n, 0, "SELECT COUNT(*) FROM sessions WHERE user_id = ? AND kind = 'token'"
		     " AND revoked_at IS NULL", "i", ctx->who.user_id);
	if (n >= MAX_TOKENS_PER_USER)
		return am_err_set(err, AM_E_CONFLICT, "", "you already have %d active tokens; revoke some first",
				  MAX_TOKENS_PER_USER);
	char token[AM_TOKEN_LEN], unused[AM_TOKEN_LEN];
	long long id;
	if (am_auth_issue(ctx->srv->store, ctx->who.user_id, "token", name, days * 86400, token, unused, &id) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not create the token");
	json_t *row = NULL;
	am_store_row(ctx->srv->store, &row, "SELECT " TOKEN_COLS " FROM sessions s JOIN users u ON u.id = s.user_id"
		     " WHERE s.id = ?", "i", id);
	if (!row)
		return am_err_set(err, AM_E_INTERNAL, "", "could not read the token back");
	json_object_set_new(row, "token", json_string(token)); /* the only time it is shown */
	sodium_memzero(token, sizeof token);
	am_fmt(ctx->target, sizeof ctx->target, "token:%lld", id);
	ctx->resp = row;
	ctx->status = 201;
	return 0;
}

static int tokens_revoke(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (am_api_param_id(ctx, "id", AM_MSG_W("token"), &id, err) != 0)
		return -1;
	am_fmt(ctx->target, sizeof ctx->target, "token:%lld", id);
	long long owner = 0;
	if (am_store_int(ctx->srv->store, &owner, 0, "SELECT user_id FROM sessions WHERE id = ? AND kind = 'token'", "i",
			 id) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not read the token");
	if (!owner || (owner != ctx->who.user_id && !ctx->who.admin))
		return am_err_set(err, AM_E_NOT_FOUND, "", "no token with id %lld", id);
	if (am_store_exec(ctx->srv->store, "UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", "ii",
			  am_wall_ms(), id) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not revoke the token");
	ctx->resp = json_pack("{s:I,s:b}", "id", (json_int_t)id, "revoked", 1);
	return 0;
}

const struct am_route_def am_api_auth_routes[] = {
	{ "POST", "/api/v1/auth/login", login, AM_PUBLIC, "auth.login", 0, 0 },
	{ "POST", "/api/v1/auth/logout", logout, AM_USER, "auth.logout", 0, 0 },
	{ "GET", "/api/v1/auth/me", me, AM_USER, NULL, 0, 0 },
	{ "PUT", "/api/v1/auth/password", change_password, AM_USER, "auth.password", 0, 0 },
	{ "GET", "/api/v1/tokens", tokens_list, AM_USER, NULL, 0, 0 },
	{ "POST", "/api/v1/tokens", tokens_create, AM_USER, "token.create", 0, 0 },
	{ "DELETE", "/api/v1/tokens/{id}", tokens_revoke, AM_USER, "token.revoke", 0, 0 },
};
const size_t am_api_auth_nroutes = sizeof am_api_auth_routes / sizeof am_api_auth_routes[0];
