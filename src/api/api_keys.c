/* api_keys: API keys for the /v1 gateway (a secret shown once, a hash kept;
 * allowed models, expiry, requests and tokens per minute, a token quota),
 * and usage aggregated by key, model, user and hour or day. Users manage
 * their own keys and see their own usage; admins all. */
#include <sodium.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "../base/am_buf.h"
#include "../base/am_json.h"
#include "../base/am_mem.h"
#include "../base/am_rand.h"
#include "../base/am_time.h"
#include "../deploy/am_routes.h"
#include "../store/am_store.h"
#include "am_api.h"

#define KEY_COLS "k.id, k.name, k.key_hint, k.models, k.rpm, k.tpm, k.quota_tokens, k.used_tokens, k.expires_at," \
		 " k.revoked_at, k.last_used_at, k.created_at, k.updated_at, u.username AS owner"

static json_t *key_json(struct am_store *st, long long id)
{
	json_t *k = NULL;
	am_store_row(st, &k, "SELECT " KEY_COLS " FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = ?", "i", id);
	if (k) {
		json_t *m = json_loads(json_string_value(json_object_get(k, "models")) ?: "null", JSON_DECODE_ANY, NULL);
		json_object_set_new(k, "models", m ? m : json_null());
		json_object_set_new(k, "revoked", json_boolean(!json_is_null(json_object_get(k, "revoked_at"))));
	}
	return k;
}

static int key_param(struct am_ctx *ctx, long long *id, struct am_err *err)
{
	if (am_api_param_id(ctx, "id", AM_MSG_W("API key"), id, err) != 0)
		return -1;
	long long owner = 0;
	am_store_int(ctx->srv->store, &owner, 0, "SELECT user_id FROM api_keys WHERE id = ?", "i", *id);
	if (!owner || (owner != ctx->who.user_id && !ctx->who.admin))
		return am_err_set(err, AM_E_NOT_FOUND, "", "no API key with id %lld", *id);
	am_fmt(ctx->target, sizeof ctx->target, "key:%lld", *id);
	return 0;
}

/* models: null (all) or a list of served names. */
static int check_models(json_t *m, struct am_err *err)
{
	if (!m || json_is_null(m))
		return 0;
	if (!json_is_array(m) || json_array_size(m) > 256)
		return am_err_set(err, AM_E_INVALID, "models", "'models' must be null (all models) or a list of model names");
	size_t i;
	json_t *v;
	json_array_foreach(m, i, v)
		if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) > 128)
			return am_err_set(err, AM_E_INVALID, "models", "models[%zu] must be a model name", i);
	return 0;
}

static int limits(json_t *b, long long *rpm, long long *tpm, long long *quota, long long *days, struct am_err *err)
{
	return am_json_get_int(b, "rpm", AM_JSON_OPTIONAL, 1, 10000000, rpm, err) != 0 ||
			       am_json_get_int(b, "tpm", AM_JSON_OPTIONAL, 1, 10000000000LL, tpm, err) != 0 ||
			       am_json_get_int(b, "quota_tokens", AM_JSON_OPTIONAL, 1, 1000000000000LL, quota, err) != 0 ||
			       am_json_get_int(b, "expires_in_days", AM_JSON_OPTIONAL, 1, 3650, days, err) != 0
		       ? -1 : 0;
}

static int create(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "name", "models", "rpm", "tpm", "quota_tokens", "expires_in_days", "expires_at",
					      NULL };
	const char *name = NULL;
	long long rpm = 0, tpm = 0, quota = 0, days = 0, at = 0;
	if (am_json_only(ctx->body, fields, err) != 0 ||
	    am_json_get_str(ctx->body, "name", AM_JSON_REQUIRED, 1, 100, &name, err) != 0 ||
	    check_models(json_object_get(ctx->body, "models"), err) != 0 ||
	    limits(ctx->body, &rpm, &tpm, &quota, &days, err) != 0 ||
	    am_json_get_int(ctx->body, "expires_at", AM_JSON_OPTIONAL, 1, 1LL << 50, &at, err) != 0)
		return -1;
	if (at && at <= am_wall_ms())
		return am_err_set(err, AM_E_INVALID, "expires_at", "'expires_at' (ms since the epoch) is in the past");
	/* keys stay (revoked) for their usage history: a cap keeps one user
	 * from growing the table without bound */
	long long live = 0, all = 0;
	am_store_int(ctx->srv->store, &live, 0, "SELECT COUNT(*) FROM api_keys WHERE user_id = ? AND revoked_at IS NULL", "i",
		     ctx->who.user_id);
	am_store_int(ctx->srv->store, &all, 0, "SELECT COUNT(*) FROM api_keys WHERE user_id = ?", "i", ctx->who.user_id);
	if (live >= 100)
		return am_err_set(err, AM_E_CONFLICT, "", "you already have %lld keys; revoke some first", live);
	if (all >= 1000)
		return am_err_set(err, AM_E_CONFLICT, "", "you have made %lld keys, the most one user may make", all);
	long long now = am_wall_ms();
	long long expires = at ? at : days ? now + days * 86400000LL : 0;
	char secret[64], hash[65], hint[24];
	am_rand_token("sk-", secret, sizeof secret);
	am_sha256_hex(secret, strlen(secret), hash);
	am_fmt(hint, sizeof hint, "sk-…%s", secret + strlen(secret) - 4);
	json_t *m = json_object_get(ctx->body, "models");
	char *models = json_is_array(m) ? am_json_dump(m) : NULL;
	int rc = am_store_exec(ctx->srv->store,
			       "INSERT INTO api_keys(user_id, name, key_hash, key_hint, models, rpm, tpm, quota_tokens, expires_at,"
			       " created_at, updated_at) VALUES(?, ?, ?, ?, ?, NULLIF(?, 0), NULLIF(?, 0), NULLIF(?, 0), NULLIF(?, 0), ?, ?)",
			       "issssiiiiii", ctx->who.user_id, name, hash, hint, models, rpm, tpm, quota, expires, now, now);
	free(models);
	if (rc != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not create the key");
	long long id = am_store_last_id(ctx->srv->store);
	am_fmt(ctx->target, sizeof ctx->target, "key:%lld", id);
	ctx->resp = key_json(ctx->srv->store, id);
	json_object_set_new(ctx->resp, "key", json_string(secret)); /* the only time it is shown */
	sodium_memzero(secret, sizeof secret);
	ctx->status = 201;
	am_routes_publish(ctx->srv);
	return 0;
}

static json_t *key_row(void *st, long long id) /* for am_api_render_ids */
{
	return key_json(st, id);
}

/* GET /keys: one's own keys, newest first (an admin's ?all=true: everyone's),
 * paged by keyset (?after=<next>: ids below it). */
static int list(struct am_ctx *ctx, struct am_err *err)
{
	long long limit, offset, after, total = -1;
	int count;
	if (am_api_page(ctx, &limit, &offset, err) != 0 || am_api_keyset(ctx, &after, &count, err) != 0)
		return -1;
	char all[8] = "";
	am_http_query(ctx->req, "all", all, sizeof all);
	long long everyone = ctx->who.admin && !strcmp(all, "true");
	json_t *ids = NULL;
	if (am_store_rows(ctx->srv->store, &ids,
			  "SELECT id FROM api_keys WHERE (?1 OR user_id = ?2) AND (?3 = 0 OR id < ?3)"
			  " ORDER BY id DESC LIMIT ?4 OFFSET ?5", "iiiii", everyone, ctx->who.user_id, after, limit,
			  offset) != 0 ||
	    (count && am_store_int(ctx->srv->store, &total, 0, "SELECT COUNT(*) FROM api_keys WHERE ?1 OR user_id = ?2",
				   "ii", everyone, ctx->who.user_id) != 0)) {
		json_decref(ids);
		return am_err_set(err, AM_E_INTERNAL, "", "could not read keys");
	}
	long long next = am_api_next(ids, limit);
	ctx->resp = am_api_list_keyset(am_api_render_ids(ids, key_row, ctx->srv->store), total, limit, offset, next);
	return 0;
}

static int get(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (key_param(ctx, &id, err) != 0)
		return -1;
	ctx->resp = key_json(ctx->srv->store, id);
	return 0;
}

static int update(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "name", "models", "rpm", "tpm", "quota_tokens", "expires_in_days", NULL };
	long long id, rpm = -1, tpm = -1, quota = -1, days = -1;
	const char *name = NULL;
	if (key_param(ctx, &id, err) != 0 || am_json_only(ctx->body, fields, err) != 0 ||
	    am_json_get_str(ctx->body, "name", AM_JSON_OPTIONAL, 1, 100, &name, err) != 0 ||
	    check_models(json_object_get(ctx->body, "models"), err) != 0 || limits(ctx->body, &rpm, &tpm, &quota, &days, err) != 0)
		return -1;
	struct am_store *st = ctx->srv->store;
	long long now = am_wall_ms();
	int rc = 0;
	if (name)
		rc |= am_store_exec(st, "UPDATE api_keys SET name = ? WHERE id = ?", "si", name, id);
	if (json_object_get(ctx->body, "models")) {
		json_t *m = json_object_get(ctx->body, "models");
		char *s = json_is_array(m) ? am_json_dump(m) : NULL;
		rc |= am_store_exec(st, "UPDATE api_keys SET models = ? WHERE id = ?", "si", s, id);
		free(s);
	}
	/* a null limit lifts it */
	static const char *const cols[] = { "rpm", "tpm", "quota_tokens" };
	long long vals[] = { rpm, tpm, quota };
	for (int i = 0; i < 3; i++) {
		json_t *v = json_object_get(ctx->body, cols[i]);
		if (!v)
			continue;
		char sql[96];
		am_fmt(sql, sizeof sql, "UPDATE api_keys SET %s = NULLIF(?, -1) WHERE id = ?", cols[i]);
		/* the statement cache keys on the SQL's address: use the exec path that does not cache */
		rc |= am_store_exec_dynamic(st, sql, "ii", json_is_null(v) ? -1LL : vals[i], id);
	}
	if (days > 0)
		rc |= am_store_exec(st, "UPDATE api_keys SET expires_at = ? WHERE id = ?", "ii", now + days * 86400000LL, id);
	rc |= am_store_exec(st, "UPDATE api_keys SET updated_at = ? WHERE id = ?", "ii", now, id);
	if (rc)
		return am_err_set(err, AM_E_INTERNAL, "", "could not update the key");
	ctx->resp = key_json(st, id);
	am_routes_publish(ctx->srv);
	return 0;
}

static int revoke(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (key_param(ctx, &id, err) != 0)
		return -1;
	long long now = am_wall_ms();
	if (am_store_exec(ctx->srv->store, "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?), updated_at = ? WHERE id = ?",
			  "iii", now, now, id) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not revoke the key");
	ctx->resp = key_json(ctx->srv->store, id);
	am_routes_publish(ctx->srv);
	return 0;
}

/* GET /usage aggregates the daily and hourly roll-ups (usage_daily,
 * usage_hourly) and, for the partial hours at the edges of the range,
 * usage_minutely (pruned after --usage-retention-days, am_prune): a
 * range covers the minutes it touches. The query is built on the loop and
 * run on the read worker. */
struct usage_job {
	char *sql;
	long long f, t, admin, user, bucket;
	json_t *rows;              /* set by the worker; NULL when the read failed */
};

/* Where [f, t) (whole minutes) is read from: whole days [*d1, *d2) from
 * usage_daily, the whole hours around them ([*h1, *d1) and [*d2, *h2)) from
 * usage_hourly, the partial hours at the edges ([f, *h1) and [*h2, t)) from
 * usage_minutely. raw_min: the oldest minute's time (LLONG_MAX when none): a
 * range that starts before it starts at its hour, whose minutes are gone
 * (pruned) or were never there, so the hour's bucket counts the same. A day bucket is a
 * whole number of hours, so buckets add up the same either way. days = 0
 * (an hourly series): no days, whose rows would fall in one hour. */
static void usage_bounds(long long f, long long t, long long raw_min, int days, long long *h1, long long *h2,
			 long long *d1, long long *d2)
{
	const long long H = 3600000LL, D = 86400000LL;
	long long a = f / H * H, b = t / H * H;
	if (a < f && f >= raw_min)
		a += H;
	if (a >= b)
		a = b = t; /* within one hour: the raw rows alone */
	long long c = a / D * D, d = b / D * D;
	if (c < a)
		c += D;
	if (c >= d || !days)
		c = d = b; /* no whole day: the hours alone */
	*h1 = a;
	*h2 = b;
	*d1 = c;
	*d2 = d;
}

static void usage_read(struct am_store *ro, void *arg)
{
	struct usage_job *j = arg;
	long long raw_min, h1, h2, d1, d2;
	if (am_store_int(ro, &raw_min, LLONG_MAX, "SELECT MIN(minute_at) FROM usage_minutely", "") != 0) {
		j->rows = NULL;
		return;
	}
	usage_bounds(j->f, j->t, raw_min, j->bucket != 3600000LL, &h1, &h2, &d1, &d2);
	if (am_store_rows_dynamic(ro, &j->rows, j->sql, "iiiiiiiii", j->f, j->t, j->admin, j->user, j->bucket, h1, h2,
				  d1, d2) != 0)
		j->rows = NULL;
}

static void usage_free(void *arg)
{
	struct usage_job *j = arg;
	free(j->sql);
	json_decref(j->rows);
	free(j);
}

/* GET /usage?group_by=model,key,user,deployment&interval=hour|day&from=&to= */
static int usage(struct am_ctx *ctx, struct am_err *err)
{
	struct usage_job *done = ctx->pending;
	if (done) { /* resumed: the worker has read the rows */
		if (!done->rows)
			return am_err_set(err, AM_E_INTERNAL, "", "could not read usage");
		ctx->resp = am_api_list(json_incref(done->rows), (long long)json_array_size(done->rows), 5000, 0);
		return 0;
	}
	char group[64] = "model", interval[8] = "", from[24] = "", to[24] = "";
	static const struct {
		const char *name, *what;
	} qs[] = {
		{ "group_by", AM_MSG_W("model, key, user, deployment (comma-separated)") },
		{ "interval", AM_MSG_W("'hour' or 'day'") },
		{ "from", AM_MSG_W("wall-clock milliseconds") },
		{ "to", AM_MSG_W("wall-clock milliseconds") },
	};
	char *bufs[] = { group, interval, from, to };
	size_t sizes[] = { sizeof group, sizeof interval, sizeof from, sizeof to };
	for (size_t q = 0; q < sizeof qs / sizeof qs[0]; q++) {
		int rc = am_http_query(ctx->req, qs[q].name, bufs[q], sizes[q]);
		/* present but empty is a mistake too (?group_by=), not "the default" */
		if (rc < 0 || (rc > 0 && !bufs[q][0])) {
			am_err_set(err, AM_E_INVALID, qs[q].name, "'%s' takes %s", qs[q].name, qs[q].what);
			am_msg_zhf(err->msg_zh, sizeof err->msg_zh, "'%s' takes %s", qs[q].name, am_msg_word(qs[q].what));
			return -1;
		}
	}
	struct am_buf sel, grp;
	am_buf_init(&sel, 1024);
	am_buf_init(&grp, 1024);
	int by_key = 0, by_user = 0;
	char *save = NULL;
	for (char *g = strtok_r(group, ",", &save); g; g = strtok_r(NULL, ",", &save)) {
		const char *s = NULL, *gg = NULL;
		if (!strcmp(g, "model"))
			s = "r.model", gg = "r.model";
		else if (!strcmp(g, "key"))
			s = "r.key_id, k.name AS key_name", gg = "r.key_id", by_key = 1;
		else if (!strcmp(g, "user"))
			s = "u.username AS user", gg = "r.user_id", by_user = 1;
		else if (!strcmp(g, "deployment"))
			s = "r.deployment_id", gg = "r.deployment_id";
		if (!s) {
			am_buf_free(&sel);
			am_buf_free(&grp);
			return am_err_set(err, AM_E_INVALID, "group_by", "'group_by' takes model, key, user, deployment (comma-separated)");
		}
		am_buf_printf(&sel, "%s, ", s);
		am_buf_printf(&grp, "%s%s", grp.len ? ", " : "", gg);
	}
	if (!grp.len) { /* only commas */
		am_buf_free(&sel);
		am_buf_free(&grp);
		return am_err_set(err, AM_E_INVALID, "group_by", "'group_by' takes model, key, user, deployment (comma-separated)");
	}
	long long bucket = 0;
	if (interval[0]) {
		if (strcmp(interval, "hour") && strcmp(interval, "day")) {
			am_buf_free(&sel);
			am_buf_free(&grp);
			return am_err_set(err, AM_E_INVALID, "interval", "'interval' must be 'hour' or 'day'");
		}
		bucket = !strcmp(interval, "hour") ? 3600000LL : 86400000LL;
	}
	long long f = 0, t = 1LL << 62;
	const char *const tnames[] = { "from", "to" };
	const char *tvals[] = { from, to };
	long long *touts[] = { &f, &t };
	for (int q = 0; q < 2; q++) {
		if (!tvals[q][0])
			continue;
		char *e;
		errno = 0;
		long long v = strtoll(tvals[q], &e, 10);
		if (*e || errno || v < 0) {
			am_buf_free(&sel);
			am_buf_free(&grp);
			return am_err_set(err, AM_E_INVALID, tnames[q], "'%s' must be wall-clock milliseconds (an integer >= 0)",
					  tnames[q]);
		}
		*touts[q] = v;
	}
	/* usage is kept by the minute: the range covers the minutes it touches */
	if (t > 1LL << 62) /* past any record: no overflow below */
		t = 1LL << 62;
	f = f / 60000 * 60000;
	t = (t + 59999) / 60000 * 60000;
	/* whose rows, in all sources: a plain equality for a user, so the user indexes serve it */
	const char *whose = ctx->who.admin ? "(?3 OR user_id = ?4)" : "user_id = ?4 AND ?3 = 0";
	/* a join per row only for the names asked for */
	char sql[4096];
	am_fmt(sql, sizeof sql,
	       "WITH r(at, user_id, key_id, model, deployment_id, requests, prompt_tokens, completion_tokens, errors, ttft_sum,"
	       " ttft_n, duration_sum) AS ("
	       "SELECT day_at, NULLIF(user_id, 0), NULLIF(key_id, 0), model, NULLIF(deployment_id, 0), requests, prompt_tokens,"
	       " completion_tokens, errors, ttft_sum, ttft_n, duration_sum FROM usage_daily"
	       " WHERE day_at >= ?8 AND day_at < ?9 AND %s"
	       " UNION ALL SELECT hour_at, NULLIF(user_id, 0), NULLIF(key_id, 0), model, NULLIF(deployment_id, 0), requests,"
	       " prompt_tokens, completion_tokens, errors, ttft_sum, ttft_n, duration_sum FROM usage_hourly"
	       " WHERE ((hour_at >= ?6 AND hour_at < ?8) OR (hour_at >= ?9 AND hour_at < ?7)) AND %s"
	       " UNION ALL SELECT minute_at, NULLIF(user_id, 0), NULLIF(key_id, 0), model, NULLIF(deployment_id, 0), requests,"
	       " prompt_tokens, completion_tokens, errors, ttft_sum, ttft_n, duration_sum FROM usage_minutely"
	       " WHERE ((minute_at >= ?1 AND minute_at < ?6) OR (minute_at >= ?7 AND minute_at < ?2)) AND %s)"
	       " SELECT %s%s SUM(r.requests) AS requests, SUM(r.prompt_tokens) AS prompt_tokens,"
	       " SUM(r.completion_tokens) AS completion_tokens, SUM(r.errors) AS errors,"
	       " ROUND(SUM(r.ttft_sum) / NULLIF(SUM(r.ttft_n), 0), 2) AS avg_ttft_ms,"
	       " ROUND(SUM(r.duration_sum) / SUM(r.requests), 2) AS avg_duration_ms"
	       " FROM r%s%s"
	       " GROUP BY %s%s ORDER BY %s%s LIMIT 5000",
	       whose, whose, whose,
	       bucket ? "(r.at / ?5) * ?5 AS bucket_at, " : "", am_buf_str(&sel),
	       by_key ? " LEFT JOIN api_keys k ON k.id = r.key_id" : "", by_user ? " LEFT JOIN users u ON u.id = r.user_id" : "",
	       bucket ? "bucket_at, " : "", am_buf_str(&grp), bucket ? "bucket_at, " : "", am_buf_str(&grp));
	am_buf_free(&sel);
	am_buf_free(&grp);
	struct usage_job *j = am_calloc(1, sizeof *j);
	*j = (struct usage_job){ am_strdup(sql), f, t, (long long)ctx->who.admin, ctx->who.user_id, bucket, NULL };
	return am_api_read(ctx, usage_read, j, usage_free, usage, err);
}

const struct am_route_def am_api_keys_routes[] = {
	{ "GET", "/api/v1/keys", list, AM_USER, NULL, 0, 0 },
	{ "POST", "/api/v1/keys", create, AM_USER, "key.create", 0, 0 },
	{ "GET", "/api/v1/keys/{id}", get, AM_USER, NULL, 0, 0 },
	{ "PATCH", "/api/v1/keys/{id}", update, AM_USER, "key.update", 0, 0 },
	{ "DELETE", "/api/v1/keys/{id}", revoke, AM_USER, "key.revoke", 0, 0 },
	{ "GET", "/api/v1/usage", usage, AM_USER, NULL, 0, 0 },
};
const size_t am_api_keys_nroutes = sizeof am_api_keys_routes / sizeof am_api_keys_routes[0];
