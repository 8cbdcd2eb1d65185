/* Unit tests: the store, migrations, tasks, metrics. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "am_test.h"
#include "obs/am_metrics.h"
#include "store/am_migrations.h"
#include "store/am_store.h"
#include "task/am_task.h"

static struct am_store *temp_store(char *path, size_t size)
{
	return am_test_db_open("store", path, size);
}

static void migrations_and_rows(void)
{
	char path[128];
	struct am_store *s = temp_store(path, sizeof path);
	CHECK(s != NULL);
	if (!s)
		return;
	size_t n;
	am_migrations_list(&n);
	CHECK_INT(am_store_version(s), (long long)n);
	CHECK_INT(am_store_exec(s, "INSERT INTO settings(key, value) VALUES(?, ?)", "ss", "a", "1"), 0);
	CHECK_INT(am_store_exec(s, "INSERT INTO settings(key, value) VALUES(?, ?)", "ss", "a", "2"), AM_STORE_CONSTRAINT);
	json_t *rows = NULL;
	CHECK_INT(am_store_rows(s, &rows, "SELECT key, value, 5 AS n, NULL AS z FROM settings", NULL), 0);
	CHECK_INT(json_array_size(rows), 1);
	CHECK_STR(json_string_value(json_object_get(json_array_get(rows, 0), "value")), "1");
	CHECK_INT(json_integer_value(json_object_get(json_array_get(rows, 0), "n")), 5);
	CHECK(json_is_null(json_object_get(json_array_get(rows, 0), "z")));
	json_decref(rows);
	json_t *row = NULL;
	CHECK_INT(am_store_row(s, &row, "SELECT key FROM settings WHERE key = ?", "s", "missing"), 0);
	CHECK(row == NULL);
	/* a rolled-back transaction leaves nothing behind */
	CHECK_INT(am_store_begin(s), 0);
	am_store_exec(s, "INSERT INTO settings(key, value) VALUES('b', '2')", NULL);
	am_store_rollback(s);
	long long cnt = -1;
	CHECK_INT(am_store_int(s, &cnt, 0, "SELECT COUNT(*) FROM settings", NULL), 0);
	CHECK_INT(cnt, 1);
	/* reopening applies nothing twice */
	am_store_close(s);
	char err[256];
	CHECK_INT(am_store_open(path, &s, err, sizeof err), 0);
	CHECK_INT(am_store_version(s), (long long)n);
	am_test_db_drop(s, path);
}

/* A database at the schema from before the migration that contains
 * marker (its path in path): opened with sqlite3 directly, so that rows of
 * the old shape can be written before am_store_open migrates it. NULL when
 * no migration contains marker. */
static sqlite3 *db_before(const char *marker, const char *tag, char *path, size_t size)
{
	size_t n, at = 0;
	const char *const *list = am_migrations_list(&n);
	while (at < n && !strstr(list[at], marker))
		at++;
	CHECK(at < n);
	if (at >= n)
		return NULL;
	char ver[48];
	snprintf(path, size, "/tmp/aimaas-unit-%s-%d.db", tag, (int)getpid());
	unlink(path);
	sqlite3 *db = NULL;
	CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
	for (size_t i = 0; i < at; i++)
		CHECK_INT(sqlite3_exec(db, list[i], NULL, NULL, NULL), SQLITE_OK);
	snprintf(ver, sizeof ver, "PRAGMA user_version = %zu", at);
	CHECK_INT(sqlite3_exec(db, ver, NULL, NULL, NULL), SQLITE_OK);
	return db;
}

/* Writes sql (rows of the old shape) into db, closes it and opens it with
 * the store, which migrates it. NULL when that fails. */
static struct am_store *migrated(sqlite3 *db, const char *sql, const char *path)
{
	char err[256];
	CHECK_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	struct am_store *s = NULL;
	CHECK_INT(am_store_open(path, &s, err, sizeof err), 0);
	return s;
}

/* A database from before per-minute usage (raw rows, some the sink had
 * rolled up itself, some the trigger had): the migration sums every raw
 * row into its minute, the roll-ups keep their totals, and a raw row
 * written after it reaches all three through the trigger. */
static void minutely_migration_fills_minutes(void)
{
	char path[128];
	sqlite3 *db = db_before("CREATE TABLE usage_minutely", "minutely", path, sizeof path);
	if (!db)
		return;
	/* 4 rows in minute 0 (one an error, one without a first token), 1 in minute 2, another model's in minute 2 */
	struct am_store *s = migrated(db,
			       "INSERT INTO usage_records(at, user_id, key_id, model, deployment_id, endpoint, prompt_tokens,"
			       " completion_tokens, ttft_ms, duration_ms, status) VALUES"
			       " (1000, 1, 2, 'm', 3, '/v1/x', 10, 1, 5, 100, 200), (2000, 1, 2, 'm', 3, '/v1/x', 10, 2, -1, 100, 500),"
			       " (59999, 1, 2, 'm', 3, '/v1/x', 10, 3, 7, 100, 200), (30000, 1, 2, 'm', 3, '/v1/x', 10, 4, NULL, 100, 200),"
			       " (120000, 1, 2, 'm', 3, '/v1/x', 1, 1, 1, 1, 200), (150000, NULL, NULL, 'n', NULL, '/v1/x', 1, 1, 1, 1, 200);",
			       path);
	if (!s)
		return;
	long long v = -1;
	am_store_int(s, &v, -1, "SELECT COUNT(*) FROM usage_minutely", NULL);
	CHECK_INT(v, 3);
	am_store_int(s, &v, -1, "SELECT requests * 1000000 + prompt_tokens * 10000 + completion_tokens * 100 + errors * 10 + ttft_n"
		     " FROM usage_minutely WHERE minute_at = 0 AND user_id = 1 AND key_id = 2 AND model = 'm' AND deployment_id = 3", NULL);
	CHECK_INT(v, 4 * 1000000 + 40 * 10000 + 10 * 100 + 1 * 10 + 2);
	am_store_int(s, &v, -1, "SELECT CAST(ttft_sum AS INTEGER) * 1000 + CAST(duration_sum AS INTEGER) FROM usage_minutely WHERE minute_at = 0",
		     NULL);
	CHECK_INT(v, 12 * 1000 + 400);
	am_store_int(s, &v, -1, "SELECT COUNT(*) FROM usage_minutely WHERE minute_at = 120000 AND user_id = 0 AND key_id = 0 AND model = 'n'",
		     NULL);
	CHECK_INT(v, 1);
	/* the same totals in all three */
	am_store_int(s, &v, -1, "SELECT (SELECT SUM(requests) FROM usage_minutely) = 6 AND (SELECT SUM(requests) FROM usage_hourly) = 6"
		     " AND (SELECT SUM(requests) FROM usage_daily) = 6", NULL);
	CHECK_INT(v, 1);
	CHECK_INT(am_store_exec(s, "INSERT INTO usage_records(at, model, endpoint, duration_ms, status) VALUES(61000, 'm', '/v1/x', 1, 200)",
				NULL), 0);
	am_store_int(s, &v, -1, "SELECT (SELECT SUM(requests) FROM usage_minutely WHERE minute_at = 60000) = 1 AND"
		     " (SELECT SUM(requests) FROM usage_hourly) = 7 AND (SELECT SUM(requests) FROM usage_daily) = 7", NULL);
	CHECK_INT(v, 1);
	am_test_db_drop(s, path);
}

/* A database from before owner ids: the migration gives each row to the
 * account of its creator's name that existed when the row was made; a row
 * older than that account was an earlier account's and goes to no one. */
static void ownership_migration_fills_ids(void)
{
	char path[128];
	sqlite3 *db = db_before("ALTER TABLE datasets ADD COLUMN owner_id", "owners", path, sizeof path);
	if (!db)
		return;
	struct am_store *s = migrated(db,
			       "INSERT INTO users(id, username, password_hash, role, created_at, updated_at)"
			       " VALUES(7, 'dave', 'x', 'user', 1000, 1000);"
			       "INSERT INTO datasets(name, format, file_type, file_name, path, size_bytes, records, state, report,"
			       " created_by, created_at) VALUES('new', 'alpaca', 'json', 'a.json', '', 1, 1, 'valid', '{}', 'dave', 2000),"
			       " ('old', 'alpaca', 'json', 'a.json', '', 1, 1, 'valid', '{}', 'dave', 500);"
			       "INSERT INTO tasks(kind, actor, state, created_at) VALUES('x', 'dave', 'succeeded', 2000),"
			       " ('x', 'dave', 'succeeded', 500), ('x', 'nobody', 'failed', 2000);"
			       "INSERT INTO models(id, name, source, state, created_by, created_at, updated_at)"
			       " VALUES(1, 'base', 'local', 'ready', 'dave', 2000, 2000), (2, 'tuned', 'local', 'ready', 'dave', 3000, 3000);"
			       "INSERT INTO ft_jobs(name, base_model_id, datasets, method, stage, template, params, gpu_count, state,"
			       " output_name, result_model_id, created_by, created_at, updated_at)"
			       " VALUES('j', 1, '[1]', 'lora', 'sft', 'qwen', '{}', 1, 'succeeded', 'tuned', 2, 'dave', 2500, 2500);",
			       path);
	if (!s)
		return;
	long long v = -1;
	am_store_int(s, &v, -1, "SELECT COALESCE(owner_id, 0) FROM datasets WHERE name = 'new'", NULL);
	CHECK_INT(v, 7);
	am_store_int(s, &v, -1, "SELECT COALESCE(owner_id, 0) FROM datasets WHERE name = 'old'", NULL);
	CHECK_INT(v, 0);
	am_store_int(s, &v, -1, "SELECT COUNT(*) FROM datasets WHERE visibility = 'private'", NULL);
	CHECK_INT(v, 2);
	am_store_int(s, &v, -1, "SELECT group_concat(COALESCE(actor_id, 0)) = '7,0,0' FROM (SELECT actor_id FROM tasks ORDER BY id)",
		     NULL);
	CHECK_INT(v, 1);
	am_store_int(s, &v, -1, "SELECT owner_id FROM ft_jobs WHERE name = 'j'", NULL);
	CHECK_INT(v, 7);
	am_store_int(s, &v, -1, "SELECT visibility = 'shared' FROM models WHERE id = 1", NULL);
	CHECK_INT(v, 1);
	am_store_int(s, &v, -1, "SELECT visibility = 'private' AND owner_id = 7 FROM models WHERE id = 2", NULL);
	CHECK_INT(v, 1);
	/* a task made now belongs to the account of that name now, by id */
	long long t = am_task_create(s, "y", "", "dave", AM_TASK_SUCCEEDED, NULL);
	am_store_int(s, &v, -1, "SELECT actor_id FROM tasks WHERE id = ?", "i", t);
	CHECK_INT(v, 7);
	am_test_db_drop(s, path);
}

static void a_newer_schema_is_refused(void)
{
	char path[128];
	struct am_store *s = temp_store(path, sizeof path);
	if (!s)
		return;
	am_store_exec(s, "PRAGMA user_version = 999", NULL);
	am_store_close(s);
	char err[256];
	CHECK_INT(am_store_open(path, &s, err, sizeof err), -1);
	CHECK(strstr(err, "newer") != NULL);
	am_test_db_drop(NULL, path);
}

static void tasks_lifecycle(void)
{
	char path[128];
	struct am_store *s = temp_store(path, sizeof path);
	if (!s)
		return;
	long long id = am_task_create(s, "x.run", "thing:1", "admin", AM_TASK_QUEUED, NULL);
	CHECK(id > 0);
	json_t *row = NULL;
	am_store_row(s, &row, "SELECT state, started_at, finished_at FROM tasks WHERE id = ?", "i", id);
	CHECK_STR(json_string_value(json_object_get(row, "state")), "queued");
	CHECK(json_is_null(json_object_get(row, "started_at")));
	json_decref(row);
	CHECK_INT(am_task_update(s, id, AM_TASK_RUNNING, 40, "working"), 0);
	am_store_row(s, &row, "SELECT state, progress, message, started_at, finished_at FROM tasks WHERE id = ?", "i", id);
	CHECK_STR(json_string_value(json_object_get(row, "state")), "running");
	CHECK_INT(json_integer_value(json_object_get(row, "progress")), 40);
	CHECK(json_is_integer(json_object_get(row, "started_at")));
	CHECK(json_is_null(json_object_get(row, "finished_at")));
	json_decref(row);
	long long id2 = am_task_create(s, "y.resumable", "", "admin", AM_TASK_RUNNING, NULL);
	static const char *const resumable[] = { "y.resumable", NULL };
	CHECK_INT(am_task_recover(s, resumable), 0);
	am_store_row(s, &row, "SELECT state, message, finished_at FROM tasks WHERE id = ?", "i", id);
	CHECK_STR(json_string_value(json_object_get(row, "state")), "failed");
	CHECK(strstr(json_string_value(json_object_get(row, "message")), "interrupted") != NULL);
	CHECK(json_is_integer(json_object_get(row, "finished_at")));
	json_decref(row);
	am_store_row(s, &row, "SELECT state FROM tasks WHERE id = ?", "i", id2);
	CHECK_STR(json_string_value(json_object_get(row, "state")), "running");
	json_decref(row);
	enum am_task_state st;
	CHECK_INT(am_task_state_parse("cancelled", &st), 0);
	CHECK_INT(am_task_state_parse("done", &st), -1);
	am_test_db_drop(s, path);
}

static void metrics_text(void)
{
	const char *methods[] = { "GET" }, *patterns[] = { "/api/v1/users/{id}" };
	struct am_metrics *m = am_metrics_new(methods, patterns, 1);
	am_metrics_observe(m, 0, 200, 0.0004);
	am_metrics_observe(m, 0, 200, 0.02);
	am_metrics_observe(m, 0, 404, 3.0);
	am_metrics_observe(m, 99, 404, 0.001);
	struct am_buf b;
	am_buf_init(&b, 1 << 20);
	am_metrics_render(m, &b);
	const char *t = am_buf_str(&b);
	CHECK(strstr(t, "aimaas_http_requests_total{method=\"GET\",route=\"/api/v1/users/{id}\",status=\"200\"} 2\n"));
	CHECK(strstr(t, "aimaas_http_requests_total{method=\"\",route=\"unmatched\",status=\"404\"} 1\n"));
	CHECK(strstr(t, "aimaas_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/users/{id}\",le=\"0.0005\"} 1\n"));
	CHECK(strstr(t, "aimaas_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/users/{id}\",le=\"0.025\"} 2\n"));
	CHECK(strstr(t, "aimaas_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/users/{id}\",le=\"+Inf\"} 3\n"));
	CHECK(strstr(t, "aimaas_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/users/{id}\"} 3\n"));
	am_buf_free(&b);
	am_metrics_free(m);
}

/* A read-only connection sees what the writer commits (WAL), even while
 * the writer holds an open transaction, and refuses to write. */
static void readonly_connection(void)
{
	char path[256], err[256];
	struct am_store *s = am_test_db_open("ro", path, sizeof path), *ro = NULL;
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_INT(am_store_open_readonly(path, &ro, err, sizeof err), 0);
	if (ro) {
		CHECK_INT(am_store_exec(s, "INSERT INTO usage_records(at, model, endpoint, duration_ms, status) VALUES(1, 'm', '/v1', 1, 200)",
					NULL), 0);
		long long n = -1;
		CHECK_INT(am_store_int(ro, &n, -1, "SELECT COUNT(*) FROM usage_records", NULL), 0);
		CHECK_INT(n, 1);
		CHECK_INT(am_store_begin(s), 0); /* a write in flight blocks no reader */
		am_store_exec(s, "INSERT INTO usage_records(at, model, endpoint, duration_ms, status) VALUES(2, 'm', '/v1', 1, 200)", NULL);
		CHECK_INT(am_store_int(ro, &n, -1, "SELECT COUNT(*) FROM usage_records", NULL), 0);
		CHECK_INT(n, 1);
		CHECK_INT(am_store_commit(s), 0);
		CHECK_INT(am_store_int(ro, &n, -1, "SELECT COUNT(*) FROM usage_records", NULL), 0);
		CHECK_INT(n, 2);
		CHECK(am_store_exec(ro, "DELETE FROM usage_records", NULL) != 0);
		CHECK_INT(am_store_version(ro), am_store_version(s));
	}
	am_store_close(ro);
	am_test_db_drop(s, path);
	CHECK_INT(am_store_open_readonly("/nonexistent/aimaas.db", &ro, err, sizeof err), -1);
	CHECK(strstr(err, "for reading") != NULL);
}

/* What another process sees of this one's lock on the database file's
 * SHARED range (SQLite's unix locking): 1 when it is held. */
static int shared_lock_seen(const char *path)
{
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(path, O_RDWR | O_CLOEXEC);
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0x40000002, .l_len = 510 };
		_exit(fd >= 0 && fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK ? 1 : 0);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 1;
}

/* Opening a second store on a database in use (the pruning thread's) keeps
 * the first one's locks: POSIX locks are per process, and closing any
 * descriptor of the file would drop them all, letting another process
 * checkpoint and remove the WAL under this one's connections. */
static void a_second_store_keeps_the_locks(void)
{
	char path[256], err[256];
	struct am_store *s = am_test_db_open("locks", path, sizeof path), *t = NULL;
	CHECK(s != NULL);
	if (!s)
		return;
	long long n = -1;
	CHECK_INT(am_store_begin(s), 0); /* a read transaction: SHARED held */
	CHECK_INT(am_store_int(s, &n, -1, "SELECT COUNT(*) FROM usage_records", NULL), 0);
	CHECK(shared_lock_seen(path));
	CHECK_INT(am_store_open(path, &t, err, sizeof err), 0);
	CHECK(shared_lock_seen(path));
	am_store_close(t);
	CHECK(shared_lock_seen(path));
	CHECK_INT(am_store_commit(s), 0);
	am_test_db_drop(s, path);
}

void suite_store(void)
{
	RUN(migrations_and_rows);
	RUN(ownership_migration_fills_ids);
	RUN(minutely_migration_fills_minutes);
	RUN(a_newer_schema_is_refused);
	RUN(tasks_lifecycle);
	RUN(metrics_text);
	RUN(readonly_connection);
	RUN(a_second_store_keeps_the_locks);
}
