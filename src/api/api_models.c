/* api_models: registering models (a folder or GGUF file under a model root,
 * or a hub id to download later), listing, updating and deleting them, and
 * browsing the model roots. */
#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "../base/am_buf.h"
#include "../base/am_json.h"
#include "../base/am_mem.h"
#include "../base/am_path.h"
#include "../base/am_time.h"
#include "../base/am_work.h"
#include "../hub/hub_models.h"
#include "../model/am_inspect.h"
#include "../model/am_model.h"
#include "../sched/am_planner.h"
#include "../store/am_store.h"
#include "am_api.h"

static int model_param(struct am_ctx *ctx, long long *id, struct am_err *err)
{
	const char *ref = am_api_param(ctx, "id");
	if (am_api_model_lookup(ctx, ref, id) != 0)
		return am_err_set(err, AM_E_NOT_FOUND, "", "no model '%.100s'", ref);
	am_fmt(ctx->target, sizeof ctx->target, "model:%lld", *id);
	return 0;
}

static int check_tags(json_t *body, struct am_err *err)
{
	json_t *tags = json_object_get(body, "tags");
	if (!tags || json_is_null(tags))
		return 0;
	if (!json_is_array(tags) || json_array_size(tags) > 32)
		return am_err_set(err, AM_E_INVALID, "tags", "'tags' must be a list of at most 32 strings");
	size_t i;
	json_t *t;
	json_array_foreach(tags, i, t)
		if (!json_is_string(t) || json_string_length(t) < 1 || json_string_length(t) > 64)
			return am_err_set(err, AM_E_INVALID, "tags", "each tag must be a string of 1 to 64 characters");
	return 0;
}

static json_t *model_row(void *st, long long id) /* for am_api_render_ids */
{
	return am_model_json(st, id);
}

static int list(struct am_ctx *ctx, struct am_err *err)
{
	long long limit, offset, after, total = -1;
	int count;
	if (am_api_page(ctx, &limit, &offset, err) != 0 || am_api_keyset(ctx, &after, &count, err) != 0)
		return -1;
	char kind[32] = "";
	if (am_http_query(ctx->req, "kind", kind, sizeof kind) < 0)
		return am_err_set(err, AM_E_INVALID, "kind", "'kind' is badly encoded");
	const char *k = kind[0] ? kind : NULL;
	json_t *ids = NULL;
	/* the shared catalog and one's own fine-tuned models; admins all */
	long long admin = ctx->who.admin, me = ctx->who.user_id;
	if (am_store_rows(ctx->srv->store, &ids, "SELECT id FROM models WHERE (?1 IS NULL OR kind = ?1)"
			  " AND (?4 OR owner_id = ?5 OR visibility = 'shared') AND id > ?6 ORDER BY id LIMIT ?2 OFFSET ?3",
			  "siiiii", k, limit, offset, admin, me, after) != 0 ||
	    (count && am_store_int(ctx->srv->store, &total, 0, "SELECT COUNT(*) FROM models WHERE (?1 IS NULL OR kind = ?1)"
				   " AND (?2 OR owner_id = ?3 OR visibility = 'shared')", "sii", k, admin, me) != 0)) {
		json_decref(ids);
		return am_err_set(err, AM_E_INTERNAL, "", "could not read models");
	}
	long long next = am_api_next(ids, limit);
	ctx->resp = am_api_list_keyset(am_api_render_ids(ids, model_row, ctx->srv->store), total, limit, offset, next);
	return 0;
}

/* The base model of an adapter: the one named, or the registered model
 * whose path or name matches the adapter's base_model_name_or_path. */
static long long find_base(struct am_ctx *ctx, json_t *facts, const char *given, struct am_err *err)
{
	long long id = 0;
	if (given) {
		if (am_model_lookup(ctx->srv->store, given, &id) != 0) {
			am_err_set(err, AM_E_INVALID, "base_model", "no model '%.100s' to be the adapter's base", given);
			return -1;
		}
		return id;
	}
	const char *base = json_string_value(json_object_get(json_object_get(facts, "adapter"), "base_model"));
	if (!base)
		return 0;
	const char *slash = strrchr(base, '/');
	am_store_int(ctx->srv->store, &id, 0, "SELECT id FROM models WHERE path = ?1 OR name = ?2 OR hub_id = ?1 ORDER BY id LIMIT 1",
		     "ss", base, slash ? slash + 1 : base);
	return id;
}

/* ---- inspection off the loop: reading a model's headers (many shards, each
 * up to 100 MiB of JSON) is work proportional to its files, so it runs on
 * the worker; the handler defers, and runs again when the facts are in
 * (ctx->pending then holds them) ---- */

struct inspect_job {
	struct am_ctx *ctx;    /* NULL once the client has gone */
	am_api_fn again;       /* the handler to resume */
	char path[PATH_MAX];
	json_t *facts;         /* NULL with err */
	char err[512];
};

static void inspect_run(void *arg)
{
	struct inspect_job *j = arg;
	j->facts = am_inspect(j->path, j->err, sizeof j->err);
}

static void inspect_abort(struct am_http_req *req, void *data)
{
	(void)req;
	((struct inspect_job *)data)->ctx = NULL;
}

static void inspect_done(void *arg, int cancelled)
{
	struct inspect_job *j = arg;
	if (!cancelled && j->ctx) {
		j->ctx->pending = j;
		am_api_resume(j->ctx, j->again); /* ctx may be gone after */
	}
	json_decref(j->facts);
	free(j);
}

/* Defers the request until path is inspected, then runs again() with
 * ctx->pending set. 0, or -1 with err. */
static int inspect_later(struct am_ctx *ctx, const char *path, am_api_fn again, struct am_err *err)
{
	struct inspect_job *j = am_calloc(1, sizeof *j);
	j->ctx = ctx;
	j->again = again;
	am_strlcpy(j->path, path, sizeof j->path);
	if (am_work_submit(ctx->srv->work, inspect_run, inspect_done, j) != 0) {
		free(j);
		return am_err_set(err, AM_E_UNAVAILABLE, "", "aimaas is stopping");
	}
	am_http_on_abort(ctx->req, inspect_abort, j);
	am_api_defer(ctx);
	return 0;
}

/* The download's options of a request: download (bool), revision, files
 * (globs), gguf (a quantisation). 0, or -1 with err naming the field. */
static int download_fields(struct am_ctx *ctx, int *download, struct hub_request *rq, struct am_err *err)
{
	if (am_json_get_bool(ctx->body, "download", AM_JSON_OPTIONAL, download, err) != 0 ||
	    am_json_get_str(ctx->body, "revision", AM_JSON_OPTIONAL, 1, 120, &rq->revision, err) != 0 ||
	    am_json_get_str(ctx->body, "gguf", AM_JSON_OPTIONAL, 1, 30, &rq->gguf, err) != 0)
		return -1;
	for (const char *c = rq->revision; c && *c; c++)
		if (!isalnum((unsigned char)*c) && !strchr("._-/", *c))
			return am_err_set(err, AM_E_INVALID, "revision", "'revision' must be a branch, tag or commit id");
	for (const char *c = rq->gguf; c && *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '_')
			return am_err_set(err, AM_E_INVALID, "gguf", "'gguf' must name a quantisation such as Q4_K_M");
	json_t *files = json_object_get(ctx->body, "files");
	if (files && !json_is_null(files)) {
		if (!json_is_array(files) || json_array_size(files) > 64)
			return am_err_set(err, AM_E_INVALID, "files", "'files' must be a list of at most 64 file patterns");
		size_t i;
		json_t *v;
		json_array_foreach(files, i, v)
			if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) > 200 ||
			    strlen(json_string_value(v)) != json_string_length(v))
				return am_err_set(err, AM_E_INVALID, "files", "files[%zu] must be a pattern such as *.safetensors", i);
		rq->patterns = files;
	}
	return 0;
}

static int create(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "name", "path", "hub_id", "source", "display_name", "description", "tags",
					      "base_model", "download", "revision", "files", "gguf", NULL };
	const char *name = NULL, *path = NULL, *hub = NULL, *source = NULL, *display = "", *desc = "", *base = NULL;
	if (am_json_only(ctx->body, fields, err) != 0 ||
	    am_json_get_str(ctx->body, "name", AM_JSON_OPTIONAL, 1, 128, &name, err) != 0 ||
	    am_json_get_str(ctx->body, "path", AM_JSON_OPTIONAL, 1, PATH_MAX - 1, &path, err) != 0 ||
	    am_json_get_str(ctx->body, "hub_id", AM_JSON_OPTIONAL, 3, 256, &hub, err) != 0 ||
	    am_json_get_str(ctx->body, "source", AM_JSON_OPTIONAL, 1, 32, &source, err) != 0 ||
	    am_json_get_str(ctx->body, "display_name", AM_JSON_OPTIONAL, 0, 200, &display, err) != 0 ||
	    am_json_get_str(ctx->body, "description", AM_JSON_OPTIONAL, 0, 4000, &desc, err) != 0 ||
	    am_json_get_str(ctx->body, "base_model", AM_JSON_OPTIONAL, 1, 128, &base, err) != 0 || check_tags(ctx->body, err) != 0)
		return -1;
	int download = 0;
	struct hub_request rq = { .actor = ctx->who.username };
	if (download_fields(ctx, &download, &rq, err) != 0)
		return -1;
	if (download && !hub)
		return am_err_set(err, AM_E_INVALID, "download", "'download' goes with a 'hub_id'");
	if (!path == !hub)
		return am_err_set(err, AM_E_INVALID, path ? "hub_id" : "path", "give either 'path' (a local folder or .gguf file) or 'hub_id'");
	if (path && source && strcmp(source, "local"))
		return am_err_set(err, AM_E_INVALID, "source", "a model with a 'path' has source 'local'");
	if (hub && source && strcmp(source, "huggingface") && strcmp(source, "modelscope"))
		return am_err_set(err, AM_E_INVALID, "source", "'source' must be 'huggingface' or 'modelscope' for a hub id");
	if (hub) { /* org/name, no path tricks */
		const char *slash = strchr(hub, '/');
		if (!slash || slash == hub || !slash[1] || strchr(slash + 1, '/') || strstr(hub, ".."))
			return am_err_set(err, AM_E_INVALID, "hub_id", "'hub_id' must look like 'org/name'");
		for (const char *p = hub; *p; p++)
			if (*p != '/' && *p != '.' && *p != '-' && *p != '_' && !(*p >= '0' && *p <= '9') &&
			    !((*p | 32) >= 'a' && (*p | 32) <= 'z'))
				return am_err_set(err, AM_E_INVALID, "hub_id", "'hub_id' may hold letters, digits, '.', '_', '-' and one '/'");
	}
	char real[PATH_MAX] = "";
	json_t *facts = NULL;
	if (path) {
		struct inspect_job *j = ctx->pending;
		if (!j) { /* first pass: confine, then inspect on the worker */
			if (am_path_confine(path, ctx->srv->cfg.model_roots, ctx->srv->cfg.nroots, "path", real, sizeof real,
					    err) != 0)
				return -1;
			return inspect_later(ctx, real, create, err);
		}
		am_strlcpy(real, j->path, sizeof real);
		facts = j->facts;
		j->facts = NULL;
		if (!facts)
			return am_err_set(err, AM_E_INVALID, "path", "not a model aimaas can read: %s", j->err);
	}
	char defname[129];
	if (!name) {
		const char *src = path ? real : hub;
		const char *slash = strrchr(src, '/');
		am_strlcpy(defname, slash ? slash + 1 : src, sizeof defname);
		char *dot = strstr(defname, ".gguf");
		if (dot && dot[5] == '\0')
			*dot = '\0';
		name = defname;
	}
	if (!am_model_name_ok(name)) {
		json_decref(facts);
		return am_err_set(err, AM_E_INVALID, "name", "'name' must be 1-128 of letters, digits, '.', '_', '-'");
	}
	am_fmt(ctx->target, sizeof ctx->target, "model:%s", name);
	long long base_id = facts ? find_base(ctx, facts, base, err) : 0;
	if (base_id < 0) {
		json_decref(facts);
		return -1;
	}
	json_t *given = json_object_get(ctx->body, "tags");
	char *tags = json_is_array(given) ? am_json_dump(given) : am_strdup("[]");
	char *fs = facts ? am_json_dump(facts) : NULL;
	long long now = am_wall_ms();
	int rc = am_store_exec(ctx->srv->store,
			       "INSERT INTO models(name, display_name, description, tags, source, path, hub_id, state, kind,"
			       " architecture, parameters, weight_bytes, max_context, facts, base_model_id, created_by,"
			       " created_at, updated_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, COALESCE(?, '{}'),"
			       " NULLIF(?, 0), ?, ?, ?)",
			       "ssssssssssiiisisii", name, display, desc, tags, path ? "local" : source ? source : "huggingface",
			       path ? real : NULL, hub, path ? "ready" : "not_downloaded",
			       facts ? json_string_value(json_object_get(facts, "kind")) : NULL,
			       facts ? json_string_value(json_object_get(facts, "architecture")) : NULL,
			       (long long)(facts ? json_integer_value(json_object_get(facts, "parameters")) : 0),
			       (long long)(facts ? json_integer_value(json_object_get(facts, "weight_bytes")) : 0),
			       (long long)(facts ? json_integer_value(json_object_get(facts, "max_context")) : 0), fs, base_id,
			       ctx->who.username, now, now);
	free(tags);
	free(fs);
	json_decref(facts);
	if (rc == AM_STORE_CONSTRAINT)
		return am_err_set(err, AM_E_CONFLICT, "name", "a model named '%s' already exists", name);
	if (rc != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not register the model");
	long long id = am_store_last_id(ctx->srv->store);
	am_store_exec(ctx->srv->store, "UPDATE models SET owner_id = ? WHERE id = ?", "ii", ctx->who.user_id, id);
	am_fmt(ctx->target, sizeof ctx->target, "model:%lld", id);
	long long dl = 0;
	if (download && hub_download(ctx->srv, id, &rq, &dl, err) != 0)
		return -1;
	ctx->resp = am_model_json(ctx->srv->store, id);
	if (download)
		json_object_set_new(ctx->resp, "download", hub_download_json(ctx->srv, id));
	ctx->status = 201;
	return 0;
}

static int get(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (model_param(ctx, &id, err) != 0)
		return -1;
	ctx->resp = am_model_json(ctx->srv->store, id);
	if (!ctx->resp)
		return am_err_set(err, AM_E_INTERNAL, "", "could not read the model");
	/* what serving it takes, by the planner, on 1, 2, 4 and 8 GPUs (roomy
	 * imaginary cards: the need itself, not whether it fits here) */
	const char *kind = json_string_value(json_object_get(ctx->resp, "kind")) ?: "";
	json_t *facts = json_object_get(ctx->resp, "facts");
	if (strcmp(kind, "adapter") && json_is_object(facts) && !json_object_get(facts, "error")) {
		struct am_plan_gpu g[8];
		memset(g, 0, sizeof g);
		for (int i = 0; i < 8; i++) {
			am_fmt(g[i].id, sizeof g[i].id, "estimate-%d", i);
			g[i].index = i;
			g[i].total = 1ull << 40;
			g[i].cc_major = 9;
		}
		json_t *mem = json_array();
		for (int tp = 1; tp <= 8; tp *= 2) {
			struct am_plan_req req;
			memset(&req, 0, sizeof req);
			req.facts = facts;
			req.model = json_string_value(json_object_get(ctx->resp, "name"));
			req.tp = tp;
			req.replicas = 1;
			struct am_plan p;
			am_planner_plan(g, 8, &req, &p);
			if (p.ok)
				json_array_append_new(mem, json_pack("{s:i,s:I,s:I,s:I,s:I,s:i}", "gpus", tp, "need_bytes_per_gpu",
								     (json_int_t)p.need, "weights_bytes_per_gpu", (json_int_t)p.weights,
								     "kv_cache_bytes_per_gpu", (json_int_t)p.kv, "overhead_bytes_per_gpu",
								     (json_int_t)p.overhead, "max_model_len", p.max_model_len));
			else
				json_array_append_new(mem, json_pack("{s:i,s:s}", "gpus", tp, "refused",
								     am_api_lang(ctx->req) == AM_LANG_ZH ? p.reason_zh : p.reason));
		}
		json_object_set_new(ctx->resp, "memory_estimate", mem);
	}
	return 0;
}

static int update(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "display_name", "description", "tags", "visibility", NULL };
	long long id;
	const char *display = NULL, *desc = NULL, *vis = NULL;
	if (model_param(ctx, &id, err) != 0 || am_json_only(ctx->body, fields, err) != 0 ||
	    am_json_get_str(ctx->body, "display_name", AM_JSON_OPTIONAL, 0, 200, &display, err) != 0 ||
	    am_json_get_str(ctx->body, "description", AM_JSON_OPTIONAL, 0, 4000, &desc, err) != 0 ||
	    am_json_get_str(ctx->body, "visibility", AM_JSON_OPTIONAL, 1, 16, &vis, err) != 0 ||
	    check_tags(ctx->body, err) != 0)
		return -1;
	if (vis && strcmp(vis, "private") && strcmp(vis, "shared"))
		return am_err_set(err, AM_E_INVALID, "visibility", "'visibility' must be 'private' or 'shared'");
	if (vis && am_store_exec(ctx->srv->store, "UPDATE models SET visibility = ? WHERE id = ?", "si", vis, id) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not update the model");
	char *tags = am_json_has(ctx->body, "tags") ? am_json_dump(json_object_get(ctx->body, "tags")) : NULL;
	int rc = am_store_exec(ctx->srv->store,
			       "UPDATE models SET display_name = COALESCE(?, display_name), description = COALESCE(?, description),"
			       " tags = COALESCE(?, tags), updated_at = ? WHERE id = ?", "sssii", display, desc, tags,
			       am_wall_ms(), id);
	free(tags);
	if (rc != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not update the model");
	ctx->resp = am_model_json(ctx->srv->store, id);
	return 0;
}

static int delete(struct am_ctx *ctx, struct am_err *err)
{
	long long id, deps = 0, adapters = 0;
	if (model_param(ctx, &id, err) != 0)
		return -1;
	am_store_int(ctx->srv->store, &deps, 0, "SELECT COUNT(*) FROM deployments WHERE model_id = ?", "i", id);
	if (deps) { /* named, so the user knows which to delete */
		json_t *first = NULL;
		am_store_row(ctx->srv->store, &first, "SELECT name FROM deployments WHERE model_id = ? ORDER BY id LIMIT 1", "i", id);
		am_err_set(err, AM_E_CONFLICT, "", "the model has %lld deployment(s), '%s' among them; delete them first", deps,
			   json_string_value(json_object_get(first, "name")) ?: "?");
		json_decref(first);
		return -1;
	}
	/* an adapter a deployment serves (its lora_modules): the engine loads it from these files */
	json_t *user = NULL;
	am_store_row(ctx->srv->store, &user,
		     "SELECT d.name AS deployment, m.name AS adapter FROM deployments d, json_each(d.lora_modules) j, models m"
		     " WHERE json_valid(d.lora_modules) AND m.id = ?1 AND json_extract(j.value, '$.model_id') = ?1 LIMIT 1",
		     "i", id);
	if (user) {
		am_err_set(err, AM_E_CONFLICT, "", "adapter '%s' is served by deployment '%s'; remove it from its lora_modules first",
			   json_string_value(json_object_get(user, "adapter")), json_string_value(json_object_get(user, "deployment")));
		json_decref(user);
		return -1;
	}
	am_store_int(ctx->srv->store, &adapters, 0, "SELECT COUNT(*) FROM models WHERE base_model_id = ?", "i", id);
	if (adapters)
		return am_err_set(err, AM_E_CONFLICT, "", "%lld adapter(s) are based on this model; delete them first", adapters);
	long long active = 0;
	am_store_int(ctx->srv->store, &active, 0, "SELECT COUNT(*) FROM downloads WHERE model_id = ? AND state IN ('queued','running')",
		     "i", id);
	if (active)
		return am_err_set(err, AM_E_CONFLICT, "", "the model is being downloaded; cancel the download first");
	/* only the record goes: the files on disk are the user's */
	if (am_store_exec(ctx->srv->store, "DELETE FROM downloads WHERE model_id = ?", "i", id) != 0 ||
	    am_store_exec(ctx->srv->store, "DELETE FROM models WHERE id = ?", "i", id) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not delete the model");
	ctx->resp = json_pack("{s:I,s:b}", "id", (json_int_t)id, "deleted", 1);
	return 0;
}

static int reinspect(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (model_param(ctx, &id, err) != 0)
		return -1;
	json_t *m = am_model_json(ctx->srv->store, id);
	const char *path = m ? json_string_value(json_object_get(m, "path")) : NULL;
	if (!path) {
		json_decref(m);
		return am_err_set(err, AM_E_CONFLICT, "", "the model has no local files to inspect");
	}
	struct inspect_job *j = ctx->pending;
	if (!j) {
		int rc = inspect_later(ctx, path, reinspect, err);
		json_decref(m);
		return rc;
	}
	const char *ierr = j->err;
	json_t *facts = j->facts;
	j->facts = NULL;
	int rc;
	if (!facts) {
		/* files that are there but implausible (a hostile config, a bad
		 * header) make the model invalid, with the reason in its facts */
		struct stat sb;
		int there = stat(path, &sb) == 0;
		json_t *why = json_pack("{s:s}", "error", ierr);
		char *ws = am_json_dump(why);
		json_decref(why);
		rc = there ? am_store_exec(ctx->srv->store, "UPDATE models SET state = 'invalid', facts = ?, updated_at = ?"
					   " WHERE id = ?", "sii", ws, am_wall_ms(), id)
			   : am_store_exec(ctx->srv->store, "UPDATE models SET state = 'missing', updated_at = ? WHERE id = ?",
					   "ii", am_wall_ms(), id);
		free(ws);
	} else {
		char *fs = am_json_dump(facts);
		rc = am_store_exec(ctx->srv->store, "UPDATE models SET state = 'ready', facts = ?, kind = ?, architecture = ?,"
				   " parameters = ?, weight_bytes = ?, max_context = ?, updated_at = ? WHERE id = ?", "sssiiiii",
				   fs, json_string_value(json_object_get(facts, "kind")),
				   json_string_value(json_object_get(facts, "architecture")),
				   (long long)json_integer_value(json_object_get(facts, "parameters")),
				   (long long)json_integer_value(json_object_get(facts, "weight_bytes")),
				   (long long)json_integer_value(json_object_get(facts, "max_context")), am_wall_ms(), id);
		free(fs);
		json_decref(facts);
	}
	json_decref(m);
	if (rc != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not update the model");
	ctx->resp = am_model_json(ctx->srv->store, id);
	am_strlcpy(ctx->task_msg, facts ? AM_MSG_T("inspected") : ierr, sizeof ctx->task_msg);
	return 0;
}

static int roots(struct am_ctx *ctx, struct am_err *err)
{
	(void)err;
	json_t *items = json_array();
	for (int i = 0; i < ctx->srv->cfg.nroots; i++) {
		struct statvfs vfs;
		int ok = statvfs(ctx->srv->cfg.model_roots[i], &vfs) == 0;
		json_array_append_new(items, json_pack("{s:s,s:I,s:I}", "path", ctx->srv->cfg.model_roots[i], "free_bytes",
						       (json_int_t)(ok ? (long long)vfs.f_bavail * (long long)vfs.f_frsize : 0),
						       "total_bytes",
						       (json_int_t)(ok ? (long long)vfs.f_blocks * (long long)vfs.f_frsize : 0)));
	}
	ctx->resp = am_api_list(items, (long long)json_array_size(items), 100, 0);
	return 0;
}

/* Lists one folder under a root: its sub-folders and .gguf files, each
 * marked with what it looks like, so the console can offer a picker. */
static int browse(struct am_ctx *ctx, struct am_err *err)
{
	char path[PATH_MAX] = "", real[PATH_MAX];
	if (am_http_query(ctx->req, "path", path, sizeof path) < 0)
		return am_err_set(err, AM_E_INVALID, "path", "'path' is badly encoded or too long");
	if (!path[0])
		am_strlcpy(path, ctx->srv->cfg.model_roots[0], sizeof path);
	if (am_path_confine(path, ctx->srv->cfg.model_roots, ctx->srv->cfg.nroots, "path", real, sizeof real, err) != 0)
		return -1;
	DIR *d = opendir(real);
	if (!d)
		return am_err_set(err, AM_E_INVALID, "path", "'%.200s' is not a folder", real);
	json_t *items = json_array();
	struct dirent *e;
	int scanned = 0, truncated = 0; /* a folder of a million files is not walked on the loop */
	while ((e = readdir(d))) {
		if (json_array_size(items) >= 2000 || ++scanned > 20000) {
			truncated = 1;
			break;
		}
		if (e->d_name[0] == '.')
			continue;
		char full[PATH_MAX + 300], probe[PATH_MAX + 400];
		am_fmt(full, sizeof full, "%s/%s", real, e->d_name);
		struct stat sb;
		if (stat(full, &sb) != 0)
			continue;
		int dir = S_ISDIR(sb.st_mode);
		size_t nl = strlen(e->d_name);
		int gguf = !dir && nl > 5 && !strcmp(e->d_name + nl - 5, ".gguf");
		if (!dir && !gguf)
			continue;
		const char *looks = gguf ? "gguf" : "folder";
		if (dir) {
			am_fmt(probe, sizeof probe, "%s/config.json", full);
			if (access(probe, R_OK) == 0)
				looks = "model";
			am_fmt(probe, sizeof probe, "%s/adapter_config.json", full);
			if (access(probe, R_OK) == 0)
				looks = "adapter";
		}
		json_array_append_new(items, json_pack("{s:s,s:s,s:s,s:I}", "name", e->d_name, "path", full, "type", looks,
						       "size_bytes", (json_int_t)(dir ? 0 : sb.st_size)));
	}
	closedir(d);
	ctx->resp = json_pack("{s:s,s:o,s:b}", "path", real, "items", items, "truncated", truncated);
	return 0;
}

/* ---- downloads from the hubs ---- */

static int download_get(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (model_param(ctx, &id, err) != 0)
		return -1;
	if (!(ctx->resp = hub_download_json(ctx->srv, id)))
		return am_err_set(err, AM_E_NOT_FOUND, "", "model %lld was never downloaded", id);
	return 0;
}

static int download_start(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "revision", "files", "gguf", NULL };
	long long id, dl = 0;
	int ignored = 0;
	struct hub_request rq = { .actor = ctx->who.username };
	if (model_param(ctx, &id, err) != 0 || am_json_only(ctx->body, fields, err) != 0 ||
	    download_fields(ctx, &ignored, &rq, err) != 0 || hub_download(ctx->srv, id, &rq, &dl, err) != 0)
		return -1;
	ctx->resp = hub_download_json(ctx->srv, id);
	ctx->status = 202;
	ctx->no_task = 1; /* the download has its own task */
	return 0;
}

/* pause, resume or cancel: fn the verb */
static int download_verb(struct am_ctx *ctx, int (*fn)(struct am_server *, long long, struct am_err *), struct am_err *err)
{
	long long id;
	if (model_param(ctx, &id, err) != 0 || fn(ctx->srv, id, err) != 0)
		return -1;
	ctx->resp = hub_download_json(ctx->srv, id);
	ctx->status = 202;
	return 0;
}

static int download_pause(struct am_ctx *ctx, struct am_err *err)
{
	return download_verb(ctx, hub_pause, err);
}

static int download_resume(struct am_ctx *ctx, struct am_err *err)
{
	return download_verb(ctx, hub_resume, err);
}

static int download_cancel(struct am_ctx *ctx, struct am_err *err)
{
	return download_verb(ctx, hub_cancel, err);
}

/* How downloads run (hub_models' settings). */
static json_t *settings_json(struct am_server *srv)
{
	struct hub_settings hs;
	hub_settings_get(srv, &hs);
	return json_pack("{s:i,s:i,s:I}", "parallel", hs.parallel, "concurrency", hs.concurrency, "max_bytes_per_s",
			 (json_int_t)hs.max_bytes_per_s);
}

static int dl_settings_get(struct am_ctx *ctx, struct am_err *err)
{
	(void)err;
	ctx->resp = settings_json(ctx->srv);
	return 0;
}

static int dl_settings_set(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "parallel", "concurrency", "max_bytes_per_s", NULL };
	struct hub_settings hs;
	hub_settings_get(ctx->srv, &hs);
	long long v;
	if (am_json_only(ctx->body, fields, err) != 0)
		return -1;
	static const char *const names[] = { "parallel", "concurrency", "max_bytes_per_s" };
	for (int i = 0; i < 3; i++) {
		json_t *x = json_object_get(ctx->body, names[i]);
		if (!x)
			continue;
		if (!json_is_integer(x))
			return am_err_set(err, AM_E_INVALID, names[i], "'%s' must be an integer", names[i]);
		v = json_integer_value(x);
		if (i == 2)
			hs.max_bytes_per_s = v;
		else if (v < INT32_MIN || v > INT32_MAX)
			return am_err_set(err, AM_E_INVALID, names[i], "'%s' is out of range", names[i]);
		else if (i == 0)
			hs.parallel = (int)v;
		else
			hs.concurrency = (int)v;
	}
	if (hub_settings_set(ctx->srv, &hs, err) != 0)
		return -1;
	ctx->resp = settings_json(ctx->srv);
	return 0;
}

const struct am_route_def am_api_models_routes[] = {
	{ "GET", "/api/v1/models", list, AM_USER, NULL, 0, 0 },
	{ "POST", "/api/v1/models", create, AM_ADMIN, "model.create", 0, 0 },
	{ "GET", "/api/v1/models/{id}", get, AM_USER, NULL, 0, 0 },
	{ "PATCH", "/api/v1/models/{id}", update, AM_ADMIN, "model.update", 0, 0 },
	{ "DELETE", "/api/v1/models/{id}", delete, AM_ADMIN, "model.delete", 0, 0 },
	{ "POST", "/api/v1/models/{id}/inspect", reinspect, AM_ADMIN, "model.inspect", 0, 0 },
	{ "GET", "/api/v1/models/{id}/download", download_get, AM_USER, NULL, 0, 0 },
	{ "POST", "/api/v1/models/{id}/download", download_start, AM_ADMIN, "model.download.start", 0, 0 },
	{ "POST", "/api/v1/models/{id}/download/pause", download_pause, AM_ADMIN, "model.download.pause", 0, 0 },
	{ "POST", "/api/v1/models/{id}/download/resume", download_resume, AM_ADMIN, "model.download.resume", 0, 0 },
	{ "POST", "/api/v1/models/{id}/download/cancel", download_cancel, AM_ADMIN, "model.download.cancel", 0, 0 },
	{ "GET", "/api/v1/settings/downloads", dl_settings_get, AM_USER, NULL, 0, 0 },
	{ "PATCH", "/api/v1/settings/downloads", dl_settings_set, AM_ADMIN, "settings.downloads", 0, 0 },
	{ "GET", "/api/v1/model-roots", roots, AM_USER, NULL, 0, 0 },
	{ "GET", "/api/v1/model-roots/browse", browse, AM_ADMIN, NULL, 0, 0 },
};
const size_t am_api_models_nroutes = sizeof am_api_models_routes / sizeof am_api_models_routes[0];
