/* api_datasets: fine-tuning datasets. An upload is the file itself as the
 * body (JSON, JSONL or CSV); the name, format and CSV column mapping come as
 * query parameters. Every record is checked; a file with bad records is kept
 * as "invalid" with its report (so the user sees what to fix) and cannot be
 * trained on. Stored under <data-dir>/datasets/<id>/ with a safe file name. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/am_buf.h"
#include "../base/am_json.h"
#include "../base/am_mem.h"
#include "../base/am_path.h"
#include "../base/am_time.h"
#include "../base/am_work.h"
#include "../finetune/am_dataset.h"
#include "../model/am_model.h"
#include "../store/am_store.h"
#include "am_api.h"

#define DS_COLS "id, name, format, file_type, file_name, size_bytes, columns, records, state, report, visibility," \
		" created_by, created_at"

/* The report's errors' reasons in the language asked for (the report keeps
 * both: reason, reason_zh; older ones only reason). */
static void reasons_in(json_t *rep, enum am_lang lang)
{
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(rep, "errors"), i, e) {
		json_t *zh = json_object_get(e, "reason_zh");
		if (lang == AM_LANG_ZH && json_is_string(zh) && json_string_length(zh))
			json_object_set(e, "reason", zh);
		json_object_del(e, "reason_zh");
	}
}

/* with_errors: the report's errors, their reasons in lang */
static json_t *ds_json(struct am_store *st, long long id, int with_errors, enum am_lang lang)
{
	json_t *d = NULL;
	am_store_row(st, &d, "SELECT " DS_COLS " FROM datasets WHERE id = ?", "i", id);
	if (!d)
		return NULL;
	json_t *rep = json_loads(json_string_value(json_object_get(d, "report")) ?: "{}", 0, NULL);
	json_t *cols = json_loads(json_string_value(json_object_get(d, "columns")) ?: "null", JSON_DECODE_ANY, NULL);
	json_object_set_new(d, "columns", cols ? cols : json_null());
	if (rep && !with_errors)
		json_object_del(rep, "errors");
	reasons_in(rep, lang);
	json_object_set_new(d, "report", rep ? rep : json_object());
	return d;
}

/* A file name for the disk: letters, digits, '.', '_', '-'; the rest '_'. */
static void safe_name(const char *in, const char *ext, char *out, size_t size)
{
	size_t o = 0;
	for (const char *p = in; *p && o + 8 < size && o < 100; p++)
		out[o++] = isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_' ? *p : '_';
	out[o] = '\0';
	while (out[0] == '.')
		memmove(out, out + 1, strlen(out)); /* no hidden files, no ".." */
	if (!out[0])
		am_strlcpy(out, "dataset", size);
	const char *dot = strrchr(out, '.');
	if (!dot || strcmp(dot + 1, ext))
		am_strlcpy(out + strlen(out), ext[0] ? "." : "", size - strlen(out)), am_strlcpy(out + strlen(out), ext, size - strlen(out));
}

/* The dataset of the {id} parameter (id or name). A private dataset of
 * someone else is as good as absent (404, whether or not it exists); with
 * manage set, a shared one the caller does not own is visible but refused
 * (403): only its owner or an admin changes or deletes it. */
static int ds_param(struct am_ctx *ctx, long long *id, int manage, struct am_err *err)
{
	const char *ref = am_api_param(ctx, "id");
	char *end;
	long long n = strtoll(ref, &end, 10);
	json_t *row = NULL;
	if (*ref && !*end && n > 0)
		am_store_row(ctx->srv->store, &row, "SELECT id, owner_id, visibility FROM datasets WHERE id = ?", "i", n);
	else
		am_store_row(ctx->srv->store, &row, "SELECT id, owner_id, visibility FROM datasets WHERE name = ?", "s", ref);
	long long found = json_integer_value(json_object_get(row, "id"));
	long long owner = json_integer_value(json_object_get(row, "owner_id"));
	int shared = !strcmp(json_string_value(json_object_get(row, "visibility")) ?: "", "shared");
	json_decref(row);
	if (!found || !am_api_may_see(ctx, owner, shared))
		return am_err_set(err, AM_E_NOT_FOUND, "", "no dataset '%.100s'", ref);
	*id = found;
	am_fmt(ctx->target, sizeof ctx->target, "dataset:%lld", found);
	if (manage && !am_api_may_see(ctx, owner, 0))
		return am_err_set(err, AM_E_FORBIDDEN, "", "only its owner or an admin may change dataset %lld", found);
	return 0;
}

/* ---- upload: the body is on disk (AM_ROUTE_UPLOAD); checking it, which is
 * proportional to its size, runs on the worker (am_work), and the loop only
 * records the result ---- */

struct upload {
	struct am_ctx *ctx;        /* NULL once the client has gone */
	int fd;                    /* the spooled body; owned */
	char tmp[1100];            /* its path; unlinked unless it became the dataset's file */
	size_t len;
	char name[4 * 128 + 1], fname[256], format[16];
	int csv_hint;              /* Content-Type says CSV */
	json_t *columns;           /* owned; the worker reads it, the loop writes nothing to it meanwhile */
	/* set by the worker */
	enum am_ds_file type;
	json_t *report;
	int sync_errno;
};

static void upload_free(struct upload *u)
{
	if (u->fd >= 0)
		close(u->fd);
	if (u->tmp[0])
		unlink(u->tmp);
	json_decref(u->columns);
	json_decref(u->report);
	free(u);
}

/* On the worker: reads the file (mapped), checks every record, syncs it. */
static void upload_run(void *arg)
{
	struct upload *u = arg;
	const char *data = mmap(NULL, u->len, PROT_READ, MAP_PRIVATE, u->fd, 0);
	if (data == MAP_FAILED) {
		u->sync_errno = errno ? errno : EIO;
		return;
	}
	madvise((void *)data, u->len, MADV_SEQUENTIAL);
	u->type = u->fname[0] ? am_dataset_file_type(u->fname, data, u->len)
		  : u->csv_hint ? AM_DS_CSV : am_dataset_file_type("", data, u->len);
	u->report = am_dataset_check(data, u->len, u->type, u->format[0] && strcmp(u->format, "auto") ? u->format : NULL,
				     u->columns);
	munmap((void *)data, u->len);
	if (fsync(u->fd) != 0)
		u->sync_errno = errno;
}

/* On the loop, resumed: records the dataset and moves its file into place. */
static int upload_finish(struct am_ctx *ctx, struct am_err *err)
{
	struct upload *u = ctx->pending;
	am_fmt(ctx->target, sizeof ctx->target, "dataset:%s", u->name);
	if (!u->report)
		return am_err_set(err, AM_E_INTERNAL, "", "could not read the uploaded file: %s", strerror(u->sync_errno));
	if (am_err_is_nospace(u->sync_errno))
		return am_err_disk_full(err, ctx->srv->cfg.data_dir);
	if (u->sync_errno)
		return am_err_set(err, AM_E_INTERNAL, "", "could not store the dataset file: %s", strerror(u->sync_errno));
	json_t *rep = u->report;
	long long records = json_integer_value(json_object_get(rep, "records"));
	int valid = records > 0 && json_integer_value(json_object_get(rep, "invalid")) == 0;
	static const char *const exts[] = { "json", "jsonl", "csv" };
	char stored[160];
	safe_name(u->fname[0] ? u->fname : u->name, exts[u->type], stored, sizeof stored);
	long long dup = 0; /* again: another upload of the name may have finished meanwhile */
	am_store_int(ctx->srv->store, &dup, 0, "SELECT COUNT(*) FROM datasets WHERE name = ?", "s", u->name);
	if (dup)
		return am_err_set(err, AM_E_CONFLICT, "name", "a dataset named '%s' already exists", u->name);
	char *srep = am_json_dump(rep), *scols = json_object_size(u->columns) ? am_json_dump(u->columns) : NULL;
	int rc = am_store_exec(ctx->srv->store,
			       "INSERT INTO datasets(name, format, file_type, file_name, path, size_bytes, columns, records, state,"
			       " report, created_by, created_at, owner_id) VALUES(?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?)",
			       "ssssisisssii", u->name, json_string_value(json_object_get(rep, "format")), exts[u->type], stored,
			       (long long)u->len, scols, records, valid ? "valid" : "invalid", srep, ctx->who.username, am_wall_ms(),
			       ctx->who.user_id);
	free(srep);
	free(scols);
	if (rc != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not record the dataset");
	long long id = am_store_last_id(ctx->srv->store);
	char dir[PATH_MAX], path[PATH_MAX + 200];
	am_fmt(dir, sizeof dir, "%s/datasets/%lld", ctx->srv->cfg.data_dir, id);
	am_fmt(path, sizeof path, "%s/%s", dir, stored);
	/* the synced file is renamed into place: never a half-written one */
	if (am_mkdirs(dir) != 0 || rename(u->tmp, path) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not store the dataset file: %s", strerror(errno));
	u->tmp[0] = '\0';
	am_store_exec(ctx->srv->store, "UPDATE datasets SET path = ? WHERE id = ?", "si", path, id);
	am_fmt(ctx->target, sizeof ctx->target, "dataset:%lld", id);
	am_fmt(ctx->task_msg, sizeof ctx->task_msg, valid ? AM_MSG_T("%lld records, valid") : AM_MSG_T("%lld records, invalid"),
	       records);
	ctx->resp = ds_json(ctx->srv->store, id, 1, am_api_lang(ctx->req));
	ctx->status = 201;
	return 0;
}

static void upload_abort(struct am_http_req *req, void *data)
{
	(void)req;
	struct upload *u = data;
	u->ctx = NULL; /* ctx goes with the request; the worker's result is dropped */
}

/* On the loop, when the worker is done (or the server stops). */
static void upload_done(void *arg, int cancelled)
{
	struct upload *u = arg;
	if (!cancelled && u->ctx) {
		struct am_ctx *ctx = u->ctx;
		ctx->pending = u;
		am_api_resume(ctx, upload_finish); /* answers; ctx may be gone after */
	}
	upload_free(u);
}

static int create(struct am_ctx *ctx, struct am_err *err)
{
	char name[4 * 128 + 1] = "", format[16] = "", fname[256] = "";
	if (am_http_query(ctx->req, "name", name, sizeof name) != 1 || !am_utf8_label_ok(name, 128))
		return am_err_set(err, AM_E_INVALID, "name",
				  "'name' (a query parameter) must be 1-128 letters (of any script), digits, '.', '_' or '-', "
				  "starting with a letter or digit");
	am_fmt(ctx->target, sizeof ctx->target, "dataset:%s", name);
	if (am_http_query(ctx->req, "format", format, sizeof format) < 0 ||
	    (format[0] && strcmp(format, "alpaca") && strcmp(format, "sharegpt") && strcmp(format, "openai") &&
	     strcmp(format, "auto")))
		return am_err_set(err, AM_E_INVALID, "format", "'format' must be alpaca, sharegpt, openai or auto");
	if (am_http_query(ctx->req, "file_name", fname, sizeof fname) < 0)
		return am_err_set(err, AM_E_INVALID, "file_name", "'file_name' is badly encoded or too long");
	size_t len = (size_t)ctx->req->body_bytes;
	if (ctx->upload_fd < 0 || !len)
		return am_err_set(err, AM_E_INVALID, "body", "the request body must be the dataset file");
	if (am_err_is_nospace(ctx->req->body_errno))
		return am_err_disk_full(err, ctx->srv->cfg.data_dir);
	if (ctx->req->body_errno)
		return am_err_set(err, AM_E_INTERNAL, "", "could not store the upload: %s", strerror(ctx->req->body_errno));
	long long dup = 0;
	am_store_int(ctx->srv->store, &dup, 0, "SELECT COUNT(*) FROM datasets WHERE name = ?", "s", name);
	if (dup)
		return am_err_set(err, AM_E_CONFLICT, "name", "a dataset named '%s' already exists", name);
	struct upload *u = am_calloc(1, sizeof *u);
	u->columns = json_object();
	static const char *const fields[] = { "instruction", "input", "output", "system" };
	for (int i = 0; i < 4; i++) {
		char v[129];
		if (am_http_query(ctx->req, fields[i], v, sizeof v) == 1 && v[0])
			json_object_set_new(u->columns, fields[i], json_string(v));
	}
	const char *ct = am_http_header(ctx->req, "content-type");
	u->csv_hint = ct && strstr(ct, "csv");
	u->ctx = ctx;
	u->len = len;
	am_strlcpy(u->name, name, sizeof u->name);
	am_strlcpy(u->fname, fname, sizeof u->fname);
	am_strlcpy(u->format, format, sizeof u->format);
	u->fd = ctx->upload_fd; /* the upload is the job's now */
	am_strlcpy(u->tmp, ctx->upload_path, sizeof u->tmp);
	ctx->upload_fd = -1;
	ctx->upload_path[0] = '\0';
	if (am_work_submit(ctx->srv->work, upload_run, upload_done, u) != 0) {
		upload_free(u);
		return am_err_set(err, AM_E_UNAVAILABLE, "", "aimaas is stopping");
	}
	am_http_on_abort(ctx->req, upload_abort, u);
	am_api_defer(ctx);
	return 0;
}

static json_t *ds_row(void *st, long long id) /* for am_api_render_ids */
{
	return ds_json(st, id, 0, AM_LANG_EN);
}

/* GET /datasets: one's own and the shared ones (an admin's: all), newest
 * first, paged by keyset (?after=<next>: ids below it). */
static int list(struct am_ctx *ctx, struct am_err *err)
{
	long long limit, offset, after, total = -1;
	int count;
	if (am_api_page(ctx, &limit, &offset, err) != 0 || am_api_keyset(ctx, &after, &count, err) != 0)
		return -1;
	json_t *ids = NULL;
	if (am_store_rows(ctx->srv->store, &ids,
			  "SELECT id FROM datasets WHERE (?1 OR owner_id = ?2 OR visibility = 'shared') AND (?3 = 0 OR id < ?3)"
			  " ORDER BY id DESC LIMIT ?4 OFFSET ?5", "iiiii", (long long)ctx->who.admin, ctx->who.user_id, after,
			  limit, offset) != 0 ||
	    (count && am_store_int(ctx->srv->store, &total, 0,
				   "SELECT COUNT(*) FROM datasets WHERE ?1 OR owner_id = ?2 OR visibility = 'shared'", "ii",
				   (long long)ctx->who.admin, ctx->who.user_id) != 0)) {
		json_decref(ids);
		return am_err_set(err, AM_E_INTERNAL, "", "could not read datasets");
	}
	long long next = am_api_next(ids, limit);
	ctx->resp = am_api_list_keyset(am_api_render_ids(ids, ds_row, ctx->srv->store), total, limit, offset, next);
	return 0;
}

static int get(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (ds_param(ctx, &id, 0, err) != 0)
		return -1;
	ctx->resp = ds_json(ctx->srv->store, id, 1, am_api_lang(ctx->req));
	return 0;
}

/* ---- preview: a JSON dataset is parsed whole to show its first records,
 * so that runs on the worker too ---- */

struct peek {
	struct am_ctx *ctx;        /* NULL once the client has gone */
	char path[PATH_MAX + 200], fname[256];
	json_t *columns;           /* owned */
	int n;
	json_t *records;           /* set by the worker; NULL when the file is gone */
};

static void peek_run(void *arg)
{
	struct peek *k = arg;
	int fd = open(k->path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) != 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	size_t len = (size_t)sb.st_size;
	const char *data = len ? mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0) : "";
	close(fd);
	if (data == MAP_FAILED)
		return;
	enum am_ds_file type = am_dataset_file_type(k->fname, data, len);
	k->records = am_dataset_preview(data, len, type, json_is_object(k->columns) ? k->columns : NULL, k->n);
	if (len)
		munmap((void *)data, len);
}

static void peek_abort(struct am_http_req *req, void *data)
{
	(void)req;
	((struct peek *)data)->ctx = NULL;
}

static int preview(struct am_ctx *ctx, struct am_err *err);

static void peek_done(void *arg, int cancelled)
{
	struct peek *k = arg;
	if (!cancelled && k->ctx) {
		k->ctx->pending = k;
		am_api_resume(k->ctx, preview); /* ctx may be gone after */
	}
	json_decref(k->columns);
	json_decref(k->records);
	free(k);
}

static int preview(struct am_ctx *ctx, struct am_err *err)
{
	struct peek *k = ctx->pending;
	if (k) { /* resumed: the worker has read the records */
		if (!k->records)
			return am_err_set(err, AM_E_NOT_FOUND, "", "the dataset's file is missing");
		ctx->resp = json_pack("{s:O}", "records", k->records);
		return 0;
	}
	long long id;
	if (ds_param(ctx, &id, 0, err) != 0)
		return -1;
	long long n = 5;
	if (am_api_query_int(ctx, "n", 1, 100, &n, err) != 0)
		return -1;
	json_t *row = NULL;
	am_store_row(ctx->srv->store, &row, "SELECT path, file_name, columns FROM datasets WHERE id = ?", "i", id);
	const char *path = row ? json_string_value(json_object_get(row, "path")) : NULL;
	if (!path || !*path) {
		json_decref(row);
		return am_err_set(err, AM_E_NOT_FOUND, "", "the dataset's file is missing");
	}
	k = am_calloc(1, sizeof *k);
	k->ctx = ctx;
	k->n = (int)n;
	am_strlcpy(k->path, path, sizeof k->path);
	am_strlcpy(k->fname, json_string_value(json_object_get(row, "file_name")) ?: "", sizeof k->fname);
	k->columns = json_loads(json_string_value(json_object_get(row, "columns")) ?: "null", JSON_DECODE_ANY, NULL);
	json_decref(row);
	if (am_work_submit(ctx->srv->work, peek_run, peek_done, k) != 0) {
		json_decref(k->columns);
		free(k);
		return am_err_set(err, AM_E_UNAVAILABLE, "", "aimaas is stopping");
	}
	am_http_on_abort(ctx->req, peek_abort, k);
	am_api_defer(ctx);
	return 0;
}

static int download(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (ds_param(ctx, &id, 0, err) != 0) {
		am_api_reply_error(ctx->req, err);
		return 0;
	}
	json_t *row = NULL;
	am_store_row(ctx->srv->store, &row, "SELECT path, file_name, file_type FROM datasets WHERE id = ?", "i", id);
	const char *path = row ? json_string_value(json_object_get(row, "path")) : NULL;
	int fd = path && *path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) != 0) {
		if (fd >= 0)
			close(fd);
		json_decref(row);
		am_err_set(err, AM_E_NOT_FOUND, "", "the dataset's file is missing");
		am_api_reply_error(ctx->req, err);
		return 0;
	}
	char cd[300];
	am_fmt(cd, sizeof cd, "attachment; filename=\"%s\"", json_string_value(json_object_get(row, "file_name")));
	am_http_add_header(ctx->req, "Content-Disposition", cd);
	const char *ft = json_string_value(json_object_get(row, "file_type"));
	/* sent from the file by the kernel: a 256 MiB dataset is neither read nor copied on the loop */
	am_http_respond_file(ctx->req, 200, !strcmp(ft, "csv") ? "text/csv; charset=utf-8" : "application/json", fd,
			     (uint64_t)sb.st_size);
	json_decref(row);
	return 0;
}

static int delete(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (ds_param(ctx, &id, 1, err) != 0)
		return -1;
	json_t *row = NULL;
	am_store_row(ctx->srv->store, &row, "SELECT path FROM datasets WHERE id = ?", "i", id);
	json_t *user = NULL;
	am_store_row(ctx->srv->store, &user,
		     "SELECT j.id, j.owner_id FROM ft_jobs j, json_each(j.datasets) e WHERE e.value = ?"
		     " AND j.state IN ('queued','starting','running','stopping') LIMIT 1", "i", id);
	if (user) { /* a shared dataset may be in someone else's job: name it only to who may see it */
		long long job = json_integer_value(json_object_get(user, "id"));
		if (am_api_may_see(ctx, json_integer_value(json_object_get(user, "owner_id")), 0))
			am_err_set(err, AM_E_CONFLICT, "", "dataset %lld is used by fine-tuning job %lld; stop it first", id, job);
		else
			am_err_set(err, AM_E_CONFLICT, "", "dataset %lld is used by another user's fine-tuning job; try when it ends", id);
		json_decref(user);
		json_decref(row);
		return -1;
	}
	if (am_store_exec(ctx->srv->store, "DELETE FROM datasets WHERE id = ?", "i", id) != 0) {
		json_decref(row);
		return am_err_set(err, AM_E_INTERNAL, "", "could not delete the dataset");
	}
	const char *path = json_string_value(json_object_get(row, "path"));
	if (path && *path) { /* the file and its folder: aimaas made both */
		unlink(path);
		char dir[PATH_MAX];
		am_strlcpy(dir, path, sizeof dir);
		char *slash = strrchr(dir, '/');
		if (slash) {
			*slash = '\0';
			rmdir(dir);
		}
	}
	json_decref(row);
	ctx->resp = json_pack("{s:I,s:b}", "id", (json_int_t)id, "deleted", 1);
	return 0;
}

/* PATCH {"visibility": "private"|"shared"}: its owner or an admin shares a
 * dataset with every user (to see and train on) or takes it back. */
static int update(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "visibility", NULL };
	long long id;
	const char *vis = NULL;
	if (ds_param(ctx, &id, 1, err) != 0 || am_json_only(ctx->body, fields, err) != 0 ||
	    am_json_get_str(ctx->body, "visibility", AM_JSON_OPTIONAL, 1, 16, &vis, err) != 0)
		return -1;
	if (vis && strcmp(vis, "private") && strcmp(vis, "shared"))
		return am_err_set(err, AM_E_INVALID, "visibility", "'visibility' must be 'private' or 'shared'");
	if (vis && am_store_exec(ctx->srv->store, "UPDATE datasets SET visibility = ? WHERE id = ?", "si", vis, id) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not update the dataset");
	if (vis)
		am_strlcpy(ctx->task_msg, strcmp(vis, "private") ? AM_MSG_T("shared") : AM_MSG_T("private"), sizeof ctx->task_msg);
	ctx->resp = ds_json(ctx->srv->store, id, 1, am_api_lang(ctx->req));
	return 0;
}

const struct am_route_def am_api_datasets_routes[] = {
	{ "GET", "/api/v1/datasets", list, AM_USER, NULL, 0, 0 },
	{ "POST", "/api/v1/datasets", create, AM_USER, "dataset.create", AM_ROUTE_ANY_BODY | AM_ROUTE_UPLOAD, 0 },
	{ "GET", "/api/v1/datasets/{id}", get, AM_USER, NULL, 0, 0 },
	{ "GET", "/api/v1/datasets/{id}/preview", preview, AM_USER, NULL, 0, 0 },
	{ "GET", "/api/v1/datasets/{id}/download", download, AM_USER, NULL, AM_ROUTE_RAW, 0 },
	{ "PATCH", "/api/v1/datasets/{id}", update, AM_USER, "dataset.update", 0, 0 },
	{ "DELETE", "/api/v1/datasets/{id}", delete, AM_USER, "dataset.delete", 0, 0 },
};
const size_t am_api_datasets_nroutes = sizeof am_api_datasets_routes / sizeof am_api_datasets_routes[0];
