/* am_backup: database copies and checks (am_backup.h). */
#include "am_backup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "am_migrations.h"
#include "base/am_buf.h"
#include "base/am_time.h"

/* Pages per backup step: 4 MiB at SQLite's 4 KiB pages, a few ms each. */
#define STEP_PAGES 1024

int am_backup_schema_max(void)
{
	size_t n = 0;
	am_migrations_list(&n);
	return (int)n;
}

/* Opens path read-only, or fails with a message. */
static sqlite3 *open_ro(const char *path, char *err, size_t errsz)
{
	sqlite3 *db = NULL;
	struct stat sb;
	if (stat(path, &sb) != 0) {
		am_fmt(err, errsz, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		am_fmt(err, errsz, "cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static int user_version(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int v = -1;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* fsync of a file or a folder by path; 0 or -1. */
static int sync_path(const char *path, int dir)
{
	int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

static void remove_tmp(const char *tmp)
{
	static const char *const side[] = { "", "-journal", "-wal", "-shm" };
	for (size_t i = 0; i < sizeof side / sizeof side[0]; i++) {
		char p[PATH_MAX + 16];
		am_fmt(p, sizeof p, "%s%s", tmp, side[i]);
		unlink(p);
	}
}

int am_backup_copy(const char *src, const char *dst, int force, struct am_backup_info *info, char *err,
		   size_t errsz)
{
	sqlite3 *from = NULL, *to = NULL;
	sqlite3_backup *b = NULL;
	char tmp[PATH_MAX + 8], dir[PATH_MAX];
	int rc = -1, tx = 0, steps = 0;
	uint64_t t0 = am_now_ns();
	struct stat sb;
	if (strlen(dst) + 5 > PATH_MAX) {
		am_fmt(err, errsz, "the path %s is too long", dst);
		return -1;
	}
	if (!force && lstat(dst, &sb) == 0) {
		am_fmt(err, errsz, "%s exists; give --force to overwrite it", dst);
		return -1;
	}
	am_fmt(tmp, sizeof tmp, "%s.tmp", dst);
	remove_tmp(tmp); /* one a crash left */
	from = open_ro(src, err, errsz);
	if (!from)
		goto out;
	/* one read transaction for the whole copy: in WAL mode it is a snapshot
	 * that writers do not disturb, so no step starts the copy over */
	if (sqlite3_exec(from, "BEGIN; SELECT count(*) FROM sqlite_master;", NULL, NULL, NULL) != SQLITE_OK) {
		am_fmt(err, errsz, "cannot read %s: %s", src, sqlite3_errmsg(from));
		goto out;
	}
	tx = 1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		am_fmt(err, errsz, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	close(fd);
	if (sqlite3_open_v2(tmp, &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		am_fmt(err, errsz, "cannot open %s: %s", tmp, to ? sqlite3_errmsg(to) : "out of memory");
		goto out;
	}
	b = sqlite3_backup_init(to, "main", from, "main");
	if (!b) {
		am_fmt(err, errsz, "cannot copy %s: %s", src, sqlite3_errmsg(to));
		goto out;
	}
	int s;
	do {
		s = sqlite3_backup_step(b, STEP_PAGES);
		steps++;
		if (s == SQLITE_BUSY || s == SQLITE_LOCKED)
			sqlite3_sleep(10);
	} while (s == SQLITE_OK || s == SQLITE_BUSY || s == SQLITE_LOCKED);
	s = sqlite3_backup_finish(b);
	b = NULL;
	if (s != SQLITE_OK) {
		am_fmt(err, errsz, "copying %s failed: %s", src, sqlite3_errmsg(to));
		goto out;
	}
	/* the copy carries the source's WAL flag: a standalone file is simpler
	 * to move and to open read-only */
	if (sqlite3_exec(to, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) != SQLITE_OK) {
		am_fmt(err, errsz, "cannot finish %s: %s", tmp, sqlite3_errmsg(to));
		goto out;
	}
	int version = user_version(to);
	sqlite3_close(to);
	to = NULL;
	chmod(tmp, 0600);
	if (sync_path(tmp, 0) != 0 || rename(tmp, dst) != 0) {
		am_fmt(err, errsz, "cannot write %s: %s", dst, strerror(errno));
		goto out;
	}
	am_strlcpy(dir, dst, sizeof dir);
	char *slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	sync_path(slash ? dir : ".", 1);
	if (info) {
		info->bytes = stat(dst, &sb) == 0 ? (long long)sb.st_size : 0;
		info->version = version;
		info->steps = steps;
		info->ms = (double)(am_now_ns() - t0) / 1e6;
	}
	rc = 0;
out:
	if (b)
		sqlite3_backup_finish(b);
	if (to)
		sqlite3_close(to);
	if (tx)
		sqlite3_exec(from, "COMMIT", NULL, NULL, NULL);
	if (from)
		sqlite3_close(from);
	if (rc != 0)
		remove_tmp(tmp);
	return rc;
}

int am_backup_check(const char *path, am_backup_finding_fn fn, void *data, int *version, char *err, size_t errsz)
{
	sqlite3 *db = open_ro(path, err, errsz);
	if (!db)
		return -1;
	int found = 0, rc = -1;
	sqlite3_stmt *st = NULL;
	char line[512];
	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check(100)", -1, &st, NULL) != SQLITE_OK) {
		am_fmt(err, errsz, "%s is not a database aimaas can read: %s", path, sqlite3_errmsg(db));
		goto out;
	}
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		if (t && strcmp(t, "ok") != 0) {
			am_fmt(line, sizeof line, "integrity_check: %s", t);
			if (fn)
				fn(line, data);
			found++;
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	if (s != SQLITE_DONE) {
		am_fmt(err, errsz, "%s is not a database aimaas can read: %s", path, sqlite3_errmsg(db));
		goto out;
	}
	if (sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			am_fmt(line, sizeof line, "foreign_key_check: %s row %lld points at a missing %s row",
			       (const char *)sqlite3_column_text(st, 0) ?: "?", sqlite3_column_int64(st, 1),
			       (const char *)sqlite3_column_text(st, 2) ?: "?");
			if (fn)
				fn(line, data);
			found++;
		}
	}
	*version = user_version(db);
	rc = found;
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

int am_backup_tables(const char *path, void (*fn)(const char *table, long long rows, void *data), void *data,
		     char *err, size_t errsz)
{
	sqlite3 *db = open_ro(path, err, errsz);
	if (!db)
		return -1;
	sqlite3_stmt *st = NULL;
	int rc = -1;
	if (sqlite3_prepare_v2(db,
			       "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
			       "ORDER BY name",
			       -1, &st, NULL) != SQLITE_OK) {
		am_fmt(err, errsz, "cannot read %s: %s", path, sqlite3_errmsg(db));
		goto out;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		char sql[300];
		sqlite3_stmt *c = NULL;
		long long n = -1;
		/* a name from sqlite_master, quoted as an identifier */
		char *q = sqlite3_mprintf("SELECT count(*) FROM \"%w\"", name);
		am_strlcpy(sql, q ? q : "", sizeof sql);
		sqlite3_free(q);
		if (sqlite3_prepare_v2(db, sql, -1, &c, NULL) == SQLITE_OK && sqlite3_step(c) == SQLITE_ROW)
			n = sqlite3_column_int64(c, 0);
		sqlite3_finalize(c);
		fn(name, n, data);
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}
