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
#include <sys/stat.h>
#include <unistd.h>

#include "../base/am_buf.h"
#include "../base/am_json.h"
#include "../base/am_mem.h"
#include "../base/am_path.h"
#include "../base/am_time.h"
#include "../finetune/am_dataset.h"
#include "../model/am_model.h"
#include "../store/am_store.h"
#include "am_api.h"

#define DS_COLS "id, name, format, file_type, file_name, size_bytes, columns, records, state, report, created_by, created_at"

static json_t *ds_json(struct am_store *st, long long id, int with_errors)
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

static int ds_param(struct am_ctx *ctx, long long *id, struct am_err *err)
{
	const char *ref = am_api_param(ctx, "id");
	char *end;
	long long n = strtoll(ref, &end, 10), found = 0;
	if (*ref && !*end && n > 0)
		am_store_int(ctx->srv->store, &found, 0, "SELECT id FROM datasets WHERE id = ?", "i", n);
	else
		am_store_int(ctx->srv->store, &found, 0, "SELECT id FROM datasets WHERE name = ?", "s", ref);
	if (!found)
		return am_err_set(err, AM_E_NOT_FOUND, "", "no dataset '%.100s'", ref);
	*id = found;
	am_fmt(ctx->target, sizeof ctx->target, "dataset:%lld", found);
	return 0;
}

static int create(struct am_ctx *ctx, struct am_err *err)
{
	char name[129] = "", format[16] = "", fname[256] = "";
	if (am_http_query(ctx->req, "name", name, sizeof name) != 1 || !am_model_name_ok(name))
		return am_err_set(err, AM_E_INVALID, "name", "'name' (a query parameter) must be 1-128 of letters, digits, '.', '_', '-'");
	am_fmt(ctx->target, sizeof ctx->target, "dataset:%s", name);
	if (am_http_query(ctx->req, "format", format, sizeof format) < 0 ||
	    (format[0] && strcmp(format, "alpaca") && strcmp(format, "sharegpt") && strcmp(format, "openai") &&
	     strcmp(format, "auto")))
		return am_err_set(err, AM_E_INVALID, "format", "'format' must be alpaca, sharegpt, openai or auto");
	if (am_http_query(ctx->req, "file_name", fname, sizeof fname) < 0)
		return am_err_set(err, AM_E_INVALID, "file_name", "'file_name' is badly encoded or too long");
	const char *data = ctx->req->body.data ? ctx->req->body.data : "";
	size_t len = ctx->req->body.len;
	if (!len)
		return am_err_set(err, AM_E_INVALID, "body", "the request body must be the dataset file");
	const char *ct = am_http_header(ctx->req, "content-type");
	enum am_ds_file type = fname[0] ? am_dataset_file_type(fname, data, len)
			       : ct && strstr(ct, "csv") ? AM_DS_CSV : am_dataset_file_type("", data, len);
	json_t *columns = json_object();
	static const char *const fields[] = { "instruction", "input", "output", "system" };
	for (int i = 0; i < 4; i++) {
		char v[129];
		if (am_http_query(ctx->req, fields[i], v, sizeof v) == 1 && v[0])
			json_object_set_new(columns, fields[i], json_string(v));
	}
	json_t *rep = am_dataset_check(data, len, type, format[0] && strcmp(format, "auto") ? format : NULL, columns);
	long long records = json_integer_value(json_object_get(rep, "records"));
	int valid = records > 0 && json_integer_value(json_object_get(rep, "invalid")) == 0;
	static const char *const exts[] = { "json", "jsonl", "csv" };
	char stored[160];
	safe_name(fname[0] ? fname : name, exts[type], stored, sizeof stored);
	long long dup = 0;
	am_store_int(ctx->srv->store, &dup, 0, "SELECT COUNT(*) FROM datasets WHERE name = ?", "s", name);
	if (dup) {
		json_decref(rep);
		json_decref(columns);
		return am_err_set(err, AM_E_CONFLICT, "name", "a dataset named '%s' already exists", name);
	}
	char *srep = am_json_dump(rep), *scols = json_object_size(columns) ? am_json_dump(columns) : NULL;
	long long now = am_wall_ms();
	int rc = am_store_exec(ctx->srv->store,
			       "INSERT INTO datasets(name, format, file_type, file_name, path, size_bytes, columns, records, state,"
			       " report, created_by, created_at) VALUES(?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?)",
			       "ssssisisssi", name, json_string_value(json_object_get(rep, "format")), exts[type], stored,
			       (long long)len, scols, records, valid ? "valid" : "invalid", srep, ctx->who.username, now);
	free(srep);
	free(scols);
	json_decref(rep);
	json_decref(columns);
	if (rc != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not record the dataset");
	long long id = am_store_last_id(ctx->srv->store);
	char dir[PATH_MAX], path[PATH_MAX + 200];
	am_fmt(dir, sizeof dir, "%s/datasets/%lld", ctx->srv->cfg.data_dir, id);
	am_fmt(path, sizeof path, "%s/%s", dir, stored);
	/* written to a temporary name, then renamed: never a half-written file */
	char tmp[PATH_MAX + 210];
	am_fmt(tmp, sizeof tmp, "%s.part", path);
	int fd = am_mkdirs(dir) == 0 ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640) : -1;
	size_t off = 0;
	while (fd >= 0 && off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	int bad = fd < 0 || off != len || fsync(fd) != 0, e = errno;
	if (fd >= 0 && close(fd) != 0 && !bad) { /* the descriptor is gone either way: never closed twice */
		bad = 1;
		e = errno;
	}
	if (!bad && rename(tmp, path) != 0) {
		bad = 1;
		e = errno;
	}
	if (bad) {
		if (fd >= 0)
			unlink(tmp);
		if (am_err_is_nospace(e))
			return am_err_disk_full(err, ctx->srv->cfg.data_dir);
		return am_err_set(err, AM_E_INTERNAL, "", "could not store the dataset file: %s", strerror(e));
	}
	am_store_exec(ctx->srv->store, "UPDATE datasets SET path = ? WHERE id = ?", "si", path, id);
	am_fmt(ctx->target, sizeof ctx->target, "dataset:%lld", id);
	am_fmt(ctx->task_msg, sizeof ctx->task_msg, "%lld records, %s", records, valid ? "valid" : "invalid");
	ctx->resp = ds_json(ctx->srv->store, id, 1);
	ctx->status = 201;
	return 0;
}

static json_t *ds_row(void *st, long long id) /* for am_api_render_ids */
{
	return ds_json(st, id, 0);
}

static int list(struct am_ctx *ctx, struct am_err *err)
{
	(void)err;
	json_t *ids = NULL;
	am_store_rows(ctx->srv->store, &ids, "SELECT id FROM datasets ORDER BY id DESC", NULL);
	json_t *items = am_api_render_ids(ids, ds_row, ctx->srv->store);
	ctx->resp = am_api_list(items, (long long)json_array_size(items), (long long)json_array_size(items), 0);
	return 0;
}

static int get(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (ds_param(ctx, &id, err) != 0)
		return -1;
	ctx->resp = ds_json(ctx->srv->store, id, 1);
	return 0;
}

/* The stored file, whole (datasets are bounded by AIMAAS_DATASET_MAX_BYTES). */
static int read_file(struct am_ctx *ctx, long long id, struct am_buf *b, json_t **row, struct am_err *err)
{
	*row = NULL;
	am_store_row(ctx->srv->store, row, "SELECT path, file_name, file_type, columns FROM datasets WHERE id = ?", "i", id);
	const char *path = *row ? json_string_value(json_object_get(*row, "path")) : NULL;
	int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0)
		return am_err_set(err, AM_E_NOT_FOUND, "", "the dataset's file is missing");
	am_buf_init(b, ctx->srv->cfg.dataset_max_bytes + 1);
	char tmp[65536];
	ssize_t r;
	while ((r = read(fd, tmp, sizeof tmp)) > 0)
		if (am_buf_add(b, tmp, (size_t)r) != 0)
			break;
	close(fd);
	return 0;
}

static int preview(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (ds_param(ctx, &id, err) != 0)
		return -1;
	long long n = 5;
	if (am_api_query_int(ctx, "n", 1, 100, &n, err) != 0)
		return -1;
	struct am_buf b;
	json_t *row;
	if (read_file(ctx, id, &b, &row, err) != 0) {
		json_decref(row);
		return -1;
	}
	json_t *cols = json_loads(json_string_value(json_object_get(row, "columns")) ?: "null", JSON_DECODE_ANY, NULL);
	enum am_ds_file type = am_dataset_file_type(json_string_value(json_object_get(row, "file_name")), am_buf_str(&b), b.len);
	json_t *recs = am_dataset_preview(am_buf_str(&b), b.len, type, json_is_object(cols) ? cols : NULL, (int)n);
	ctx->resp = json_pack("{s:o}", "records", recs);
	json_decref(cols);
	json_decref(row);
	am_buf_free(&b);
	return 0;
}

static int download(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (ds_param(ctx, &id, err) != 0) {
		am_api_reply_error(ctx->req, err);
		return 0;
	}
	struct am_buf b;
	json_t *row;
	if (read_file(ctx, id, &b, &row, err) != 0) {
		json_decref(row);
		am_api_reply_error(ctx->req, err);
		return 0;
	}
	char cd[300];
	am_fmt(cd, sizeof cd, "attachment; filename=\"%s\"", json_string_value(json_object_get(row, "file_name")));
	am_http_add_header(ctx->req, "Content-Disposition", cd);
	const char *ft = json_string_value(json_object_get(row, "file_type"));
	am_http_respond(ctx->req, 200, !strcmp(ft, "csv") ? "text/csv; charset=utf-8" : "application/json", b.data ? b.data : "",
			b.len);
	json_decref(row);
	am_buf_free(&b);
	return 0;
}

static int delete(struct am_ctx *ctx, struct am_err *err)
{
	long long id;
	if (ds_param(ctx, &id, err) != 0)
		return -1;
	json_t *row = NULL;
	am_store_row(ctx->srv->store, &row, "SELECT path, created_by FROM datasets WHERE id = ?", "i", id);
	const char *owner = json_string_value(json_object_get(row, "created_by"));
	if (!ctx->who.admin && (!owner || strcmp(owner, ctx->who.username))) {
		json_decref(row);
		return am_err_set(err, AM_E_FORBIDDEN, "", "only its owner or an admin may delete dataset %lld", id);
	}
	long long used = 0;
	am_store_int(ctx->srv->store, &used, 0,
		     "SELECT j.id FROM ft_jobs j, json_each(j.datasets) e WHERE e.value = ?"
		     " AND j.state IN ('queued','starting','running','stopping') LIMIT 1", "i", id);
	if (used) {
		json_decref(row);
		return am_err_set(err, AM_E_CONFLICT, "", "dataset %lld is used by fine-tuning job %lld; stop it first", id, used);
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

const struct am_route_def am_api_datasets_routes[] = {
	{ "GET", "/api/v1/datasets", list, AM_USER, NULL, 0, 0 },
	{ "POST", "/api/v1/datasets", create, AM_USER, "dataset.create", AM_ROUTE_ANY_BODY | AM_ROUTE_UPLOAD, 0 },
	{ "GET", "/api/v1/datasets/{id}", get, AM_USER, NULL, 0, 0 },
	{ "GET", "/api/v1/datasets/{id}/preview", preview, AM_USER, NULL, 0, 0 },
	{ "GET", "/api/v1/datasets/{id}/download", download, AM_USER, NULL, AM_ROUTE_RAW, 0 },
	{ "DELETE", "/api/v1/datasets/{id}", delete, AM_USER, "dataset.delete", 0, 0 },
};
const size_t am_api_datasets_nroutes = sizeof am_api_datasets_routes / sizeof am_api_datasets_routes[0];
