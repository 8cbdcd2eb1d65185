/* am_store: SQLite access with cached statements and JSON rows. */
#include "am_store.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/am_buf.h"
#include "../base/am_err.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "am_migrations.h"

#include <pthread.h>

static pthread_once_t config_once = PTHREAD_ONCE_INIT;

/* Process-wide settings, before SQLite's first use: no allocation
 * statistics (kept under a global mutex, taken by every allocation of
 * every connection: the usage sink's inserts spent 5% of their time in it). */
static void configure_sqlite(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

#include <stdint.h>

#define STMT_CACHE 1024 /* slots, a power of two; at most 3/4 used */

struct am_store {
	sqlite3 *db;
	int in_tx;
	int in_read;    /* a read transaction (am_store_read_begin) is open */
	int full;       /* the last failed write ran out of space; a good write clears it */
	sqlite3_int64 changes_at_begin;
	unsigned long long aborts; /* write transactions that did not commit */
	/* Statements keyed by the address of their SQL text (callers pass
	 * string literals, so the address is a stable, cheap key), in an
	 * open-addressing table. */
	struct {
		const char *sql;
		sqlite3_stmt *stmt;
	} cache[STMT_CACHE];
	int ncache;
};

/* The one place a failure is classified: out of space or not. */
static void note_failure(struct am_store *s)
{
	int ext = sqlite3_extended_errcode(s->db);
	if ((ext & 0xff) == SQLITE_FULL || ((ext & 0xff) == SQLITE_IOERR && am_err_is_nospace(sqlite3_system_errno(s->db))))
		s->full = 1;
}

int am_store_full(const struct am_store *s)
{
	return s->full;
}

/* A statement about to run that writes ends a read transaction first: the
 * write runs on the latest data, never as an upgrade of an old snapshot
 * (which SQLite refuses once another connection has committed). */
static void before_run(struct am_store *s, sqlite3_stmt *st)
{
	if (s->in_read && st && !sqlite3_stmt_readonly(st))
		am_store_read_end(s);
}

static sqlite3_stmt *prepare_nocache(struct am_store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		am_error("store", "prepare failed: %s; sql: %.200s", sqlite3_errmsg(s->db), sql);
		return NULL;
	}
	before_run(s, st);
	return st;
}

static size_t slot_of(const char *sql)
{
	uintptr_t h = (uintptr_t)sql;
	h ^= h >> 17;
	h *= 0x9E3779B97F4A7C15ull;
	return (size_t)(h >> 7) & (STMT_CACHE - 1);
}

/* The cached statement for a literal's SQL, prepared on first use; *cached
 * says whether release keeps it (a full cache prepares anew each time). */
static sqlite3_stmt *prepare(struct am_store *s, const char *sql, int *cached)
{
	size_t i = slot_of(sql);
	while (s->cache[i].sql) {
		if (s->cache[i].sql == sql) {
			*cached = 1;
			before_run(s, s->cache[i].stmt);
			return s->cache[i].stmt;
		}
		i = (i + 1) & (STMT_CACHE - 1);
	}
	sqlite3_stmt *st = NULL;
	*cached = 0;
	if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
		am_error("store", "prepare failed: %s; sql: %.200s", sqlite3_errmsg(s->db), sql);
		return NULL;
	}
	if (s->ncache < STMT_CACHE / 4 * 3) {
		s->cache[i].sql = sql;
		s->cache[i].stmt = st;
		s->ncache++;
		*cached = 1;
	}
	before_run(s, st);
	return st;
}

static void release(sqlite3_stmt *st, int cached)
{
	if (!cached) {
		sqlite3_finalize(st);
		return;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static int bind(struct am_store *s, sqlite3_stmt *st, const char *fmt, va_list ap)
{
	int idx = 1;
	for (const char *f = fmt ? fmt : ""; *f; f++, idx++) {
		int rc;
		switch (*f) {
		case 'i':
			rc = sqlite3_bind_int64(st, idx, va_arg(ap, long long));
			break;
		case 'd':
			rc = sqlite3_bind_double(st, idx, va_arg(ap, double));
			break;
		case 's': {
			const char *v = va_arg(ap, const char *);
			/* not copied: every caller's statement is stepped, reset and
			 * its bindings cleared before the call returns */
			rc = v ? sqlite3_bind_text(st, idx, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, idx);
			break;
		}
		case 'n':
			rc = sqlite3_bind_null(st, idx);
			break;
		default:
			am_error("store", "bad bind format '%c'", *f);
			return -1;
		}
		if (rc != SQLITE_OK) {
			am_error("store", "bind %d failed: %s", idx, sqlite3_errmsg(s->db));
			return -1;
		}
	}
	return 0;
}

static json_t *row_object(sqlite3_stmt *st)
{
	json_t *o = json_object();
	int n = sqlite3_column_count(st);
	for (int i = 0; i < n; i++) {
		json_t *v;
		switch (sqlite3_column_type(st, i)) {
		case SQLITE_INTEGER:
			v = json_integer(sqlite3_column_int64(st, i));
			break;
		case SQLITE_FLOAT:
			v = json_real(sqlite3_column_double(st, i));
			break;
		case SQLITE_NULL:
			v = json_null();
			break;
		default:
			v = json_stringn((const char *)sqlite3_column_text(st, i),
					 (size_t)sqlite3_column_bytes(st, i));
			if (!v) /* not UTF-8: never happens for text we wrote */
				v = json_null();
			break;
		}
		json_object_set_new(o, sqlite3_column_name(st, i), v);
	}
	return o;
}

/* Runs st to completion; collects rows into arr when given (max rows, 0 = all). */
static int step_all(struct am_store *s, sqlite3_stmt *st, json_t *arr, int max)
{
	int rc, got = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (arr && (max == 0 || got < max)) {
			json_array_append_new(arr, row_object(st));
			got++;
			if (max && got == max)
				return 0;
		}
	}
	if (rc == SQLITE_DONE) {
		if (!s->in_tx && !sqlite3_stmt_readonly(st) && sqlite3_changes64(s->db) > 0)
			s->full = 0; /* a write reached the disk */
		return 0;
	}
	note_failure(s);
	int ext = sqlite3_extended_errcode(s->db);
	if ((ext & 0xff) == SQLITE_CONSTRAINT) {
		am_debug("store", "constraint: %s", sqlite3_errmsg(s->db));
		return AM_STORE_CONSTRAINT;
	}
	am_error("store", "step failed: %s; sql: %.200s", sqlite3_errmsg(s->db), sqlite3_sql(st));
	return -1;
}

static int run_with(struct am_store *s, sqlite3_stmt *st, int cached, json_t *arr, int max, const char *fmt, va_list ap)
{
	if (!st)
		return -1;
	int rc = bind(s, st, fmt, ap);
	if (rc == 0)
		rc = step_all(s, st, arr, max);
	release(st, cached);
	return rc;
}

int am_store_exec_dynamic(struct am_store *s, const char *sql, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = run_with(s, prepare_nocache(s, sql), 0, NULL, 0, fmt, ap);
	va_end(ap);
	return rc;
}

int am_store_rows_dynamic(struct am_store *s, json_t **out, const char *sql, const char *fmt, ...)
{
	json_t *arr = json_array();
	va_list ap;
	va_start(ap, fmt);
	int rc = run_with(s, prepare_nocache(s, sql), 0, arr, 0, fmt, ap);
	va_end(ap);
	if (rc != 0) {
		json_decref(arr);
		return -1;
	}
	*out = arr;
	return 0;
}

static int run(struct am_store *s, json_t *arr, int max, const char *sql, const char *fmt, va_list ap)
{
	int cached;
	sqlite3_stmt *st = prepare(s, sql, &cached);
	return run_with(s, st, cached, arr, max, fmt, ap);
}

int am_store_exec(struct am_store *s, const char *sql, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = run(s, NULL, 0, sql, fmt, ap);
	va_end(ap);
	return rc;
}

/* the row handed to am_store_each's callback is the statement itself */
int am_store_each(struct am_store *s, am_store_row_cb cb, void *data, const char *sql, const char *fmt, ...)
{
	int cached;
	sqlite3_stmt *st = prepare(s, sql, &cached);
	if (!st)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	int rc = bind(s, st, fmt, ap);
	va_end(ap);
	while (rc == 0) {
		int r = sqlite3_step(st);
		if (r == SQLITE_DONE)
			break;
		if (r != SQLITE_ROW) {
			note_failure(s);
			am_error("store", "step failed: %s; sql: %.200s", sqlite3_errmsg(s->db), sqlite3_sql(st));
			rc = -1;
			break;
		}
		if (cb((const struct am_store_row *)st, data) != 0)
			break;
	}
	release(st, cached);
	return rc;
}

long long am_store_col_int(const struct am_store_row *r, int i)
{
	return sqlite3_column_int64((sqlite3_stmt *)r, i);
}

const char *am_store_col_text(const struct am_store_row *r, int i)
{
	const unsigned char *t = sqlite3_column_text((sqlite3_stmt *)r, i);
	return t ? (const char *)t : "";
}

int am_store_col_null(const struct am_store_row *r, int i)
{
	return sqlite3_column_type((sqlite3_stmt *)r, i) == SQLITE_NULL;
}

int am_store_rows(struct am_store *s, json_t **out, const char *sql, const char *fmt, ...)
{
	json_t *arr = json_array();
	va_list ap;
	va_start(ap, fmt);
	int rc = run(s, arr, 0, sql, fmt, ap);
	va_end(ap);
	if (rc != 0) {
		json_decref(arr);
		return -1;
	}
	*out = arr;
	return 0;
}

int am_store_row(struct am_store *s, json_t **out, const char *sql, const char *fmt, ...)
{
	json_t *arr = json_array();
	va_list ap;
	va_start(ap, fmt);
	int rc = run(s, arr, 1, sql, fmt, ap);
	va_end(ap);
	if (rc != 0) {
		json_decref(arr);
		return -1;
	}
	json_t *row = json_array_get(arr, 0);
	*out = row ? json_incref(row) : NULL;
	json_decref(arr);
	return 0;
}

int am_store_int(struct am_store *s, long long *out, long long dflt, const char *sql, const char *fmt, ...)
{
	int cached;
	sqlite3_stmt *st = prepare(s, sql, &cached);
	if (!st)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	int rc = bind(s, st, fmt, ap);
	va_end(ap);
	if (rc == 0) {
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW)
			*out = sqlite3_column_type(st, 0) == SQLITE_NULL ? dflt : sqlite3_column_int64(st, 0);
		else if (r == SQLITE_DONE)
			*out = dflt;
		else {
			note_failure(s);
			am_error("store", "step failed: %s", sqlite3_errmsg(s->db));
			rc = -1;
		}
	}
	release(st, cached);
	return rc;
}

long long am_store_last_id(struct am_store *s)
{
	return sqlite3_last_insert_rowid(s->db);
}

int am_store_changes(struct am_store *s)
{
	return sqlite3_changes(s->db);
}

static int plain(struct am_store *s, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		note_failure(s);
		am_error("store", "%s: %s", sql, msg ? msg : "?");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

int am_store_begin(struct am_store *s)
{
	am_store_read_end(s);
	if (plain(s, "BEGIN IMMEDIATE") != 0)
		return -1;
	s->in_tx = 1;
	s->changes_at_begin = sqlite3_total_changes64(s->db);
	return 0;
}

int am_store_commit(struct am_store *s)
{
	int rc = plain(s, "COMMIT");
	if (rc != 0) {
		plain(s, "ROLLBACK");
		s->aborts++;
	} else if (sqlite3_total_changes64(s->db) != s->changes_at_begin)
		s->full = 0;
	s->in_tx = 0;
	return rc;
}

void am_store_rollback(struct am_store *s)
{
	if (s->in_tx) {
		plain(s, "ROLLBACK");
		s->aborts++;
	}
	s->in_tx = 0;
}

unsigned long long am_store_aborts(const struct am_store *s)
{
	return s->aborts;
}

int am_store_read_begin(struct am_store *s)
{
	if (s->in_tx || s->in_read)
		return 0;
	if (plain(s, "BEGIN") != 0)
		return -1;
	s->in_read = 1;
	return 0;
}

void am_store_read_end(struct am_store *s)
{
	if (!s->in_read)
		return;
	s->in_read = 0;
	if (plain(s, "COMMIT") != 0)
		plain(s, "ROLLBACK");
}

int am_store_in_tx(struct am_store *s)
{
	return s->in_tx;
}

int am_store_version(struct am_store *s)
{
	long long v = 0;
	am_store_int(s, &v, 0, "PRAGMA user_version", NULL);
	return (int)v;
}

static int migrate(struct am_store *s, char *errbuf, size_t errsize)
{
	size_t n;
	const char *const *list = am_migrations_list(&n);
	int have = am_store_version(s);
	if (have > (int)n) {
		am_fmt(errbuf, errsize, "database schema version %d is newer than this aimaas knows (%zu): "
		       "run the newer aimaas or restore a backup", have, n);
		return -1;
	}
	for (size_t i = (size_t)have; i < n; i++) {
		char *msg = NULL;
		char ver[64];
		am_fmt(ver, sizeof ver, "PRAGMA user_version = %zu", i + 1);
		if (plain(s, "BEGIN IMMEDIATE") != 0 ||
		    sqlite3_exec(s->db, list[i], NULL, NULL, &msg) != SQLITE_OK ||
		    plain(s, ver) != 0 || plain(s, "COMMIT") != 0) {
			am_fmt(errbuf, errsize, "migration %zu failed: %s", i + 1, msg ? msg : sqlite3_errmsg(s->db));
			sqlite3_free(msg);
			plain(s, "ROLLBACK");
			return -1;
		}
		am_info("store", "applied migration %zu", i + 1);
	}
	return 0;
}

/* Sets a regular file's mode, never through a symbolic link. */
static void chmod_file(const char *p, mode_t mode)
{
	struct stat st;
	if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) != mode)
		chmod(p, mode);
}

/* The database holds engine keys and password hashes: aimaas's alone.
 * SQLite gives its -wal and -shm files the database file's mode, so the
 * file is made 0600 first (and tightened when an older aimaas left 0644).
 * An existing database file is never opened here: closing any descriptor of
 * it would drop every POSIX lock this process holds on it (fcntl locks are
 * per process), and a store opened while others are in use (the pruning
 * thread's) would leave their connections unlocked, so that another
 * process could checkpoint, truncate or delete the WAL under them. */
static void private_files(const char *path)
{
	if (!path[0] || !strcmp(path, ":memory:") || !strncmp(path, "file:", 5))
		return;
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0)
		close(fd); /* new: nobody holds a lock on it yet */
	else
		chmod_file(path, 0600);
	static const char *const side[] = { "-wal", "-shm", "-journal" };
	for (size_t i = 0; i < sizeof side / sizeof side[0]; i++) {
		char p[4200];
		am_fmt(p, sizeof p, "%s%s", path, side[i]);
		chmod_file(p, 0600);
	}
}

int am_store_open(const char *path, struct am_store **out, char *errbuf, size_t errsize)
{
	struct am_store *s = am_calloc(1, sizeof *s);
	int rc = -1;
	pthread_once(&config_once, configure_sqlite);
	private_files(path);
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		am_fmt(errbuf, errsize, "cannot open database %s: %s", path,
		       s->db ? sqlite3_errmsg(s->db) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(s->db, 5000);
	/* more lookaside room (SQLite's per-connection allocator for small
	 * objects): an INSERT into a table with five indexes opens a cursor on
	 * each, and the default's 100 slots sent them to malloc */
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_LOOKASIDE, NULL, 1200, 1000);
	/* keep -wal and -shm at close: a restart on a full disk then finds its
	 * shared-memory index instead of failing to make it (and starts
	 * read-only). journal_size_limit empties the WAL at close all the same. */
	int persist = 1;
	sqlite3_file_control(s->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
	/* WAL + synchronous=NORMAL: a crash of aimaas (kill -9) never loses a
	 * committed transaction; only an OS crash can lose the last few. */
	if (plain(s, "PRAGMA journal_mode=WAL") != 0 || plain(s, "PRAGMA synchronous=NORMAL") != 0 ||
	    plain(s, "PRAGMA foreign_keys=ON") != 0 || plain(s, "PRAGMA journal_size_limit=67108864") != 0 ||
	    /* statement journals in memory: an INSERT that fires a trigger (usage
	     * rows and their hourly roll-up) would otherwise write the pages it
	     * changes to a temporary file, row by row (4 writes a usage record) */
	    plain(s, "PRAGMA temp_store=MEMORY") != 0) {
		am_fmt(errbuf, errsize, "cannot configure database %s: %s%s", path, sqlite3_errmsg(s->db),
		       s->full ? " (the disk is full: free some space)" : "");
		goto out;
	}
	if (migrate(s, errbuf, errsize) != 0)
		goto out;
	rc = 0;
out:
	if (rc != 0) {
		am_store_close(s);
		return -1;
	}
	*out = s;
	return 0;
}

int am_store_open_readonly(const char *path, struct am_store **out, char *errbuf, size_t errsize)
{
	pthread_once(&config_once, configure_sqlite);
	struct am_store *s = am_calloc(1, sizeof *s);
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
	    plain(s, "PRAGMA query_only=1") != 0) {
		am_fmt(errbuf, errsize, "cannot open database %s for reading: %s", path,
		       s->db ? sqlite3_errmsg(s->db) : "out of memory");
		am_store_close(s);
		return -1;
	}
	/* a reader waits only for a checkpoint's brief lock, never for writers (WAL) */
	sqlite3_busy_timeout(s->db, 5000);
	*out = s;
	return 0;
}

void am_store_close(struct am_store *s)
{
	if (!s)
		return;
	for (int i = 0; i < STMT_CACHE; i++)
		if (s->cache[i].sql)
			sqlite3_finalize(s->cache[i].stmt);
	if (s->db)
		sqlite3_close(s->db);
	free(s);
}
