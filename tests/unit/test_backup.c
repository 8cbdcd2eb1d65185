/* Unit tests: am_backup (copies and checks through SQLite). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "am_test.h"
#include "store/am_backup.h"
#include "store/am_store.h"

static void count_users(const char *table, long long rows, void *data)
{
	if (!strcmp(table, "settings"))
		*(long long *)data = rows;
}

static void on_finding(const char *text, void *data)
{
	(void)text;
	(*(int *)data)++;
}

/* A copy taken while a second connection holds a write transaction open
 * has what was committed, is 0600 and standalone (no -wal), and is
 * refused as a target until --force. */
static void copy_is_consistent_and_refuses_overwrite(void)
{
	char path[128], dst[160], side[224], err[512];
	struct am_store *s = am_test_db_open("backup", path, sizeof path);
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_INT(am_store_exec(s, "INSERT INTO settings(key, value) VALUES('committed', '1')", NULL), 0);
	CHECK_INT(am_store_begin(s), 0);
	CHECK_INT(am_store_exec(s, "INSERT INTO settings(key, value) VALUES('uncommitted', '1')", NULL), 0);
	snprintf(dst, sizeof dst, "%s.copy", path);
	unlink(dst);
	struct am_backup_info info;
	CHECK_INT(am_backup_copy(path, dst, 0, &info, err, sizeof err), 0);
	am_store_commit(s);
	CHECK(info.bytes > 0);
	CHECK_INT(info.version, am_backup_schema_max());
	struct stat sb;
	CHECK_INT(stat(dst, &sb), 0);
	CHECK_INT(sb.st_mode & 0777, 0600);
	snprintf(side, sizeof side, "%s-wal", dst);
	CHECK(access(side, F_OK) != 0);
	long long n = -1;
	CHECK_INT(am_backup_tables(dst, count_users, &n, err, sizeof err), 0);
	CHECK_INT(n, 1); /* the committed row only */
	int found = 0, version = 0;
	CHECK_INT(am_backup_check(dst, on_finding, &found, &version, err, sizeof err), 0);
	CHECK_INT(found, 0);
	CHECK_INT(version, am_backup_schema_max());
	CHECK_INT(am_backup_copy(path, dst, 0, &info, err, sizeof err), -1);
	CHECK(strstr(err, "--force") != NULL);
	CHECK_INT(am_backup_copy(path, dst, 1, &info, err, sizeof err), 0);
	CHECK_INT(am_backup_tables(dst, count_users, &n, err, sizeof err), 0);
	CHECK_INT(n, 2);
	/* not a database: no copy, no .tmp left */
	FILE *f = fopen(dst, "w");
	if (f) {
		fputs("no database here, just some text that is long enough to look like a header....\n", f);
		fclose(f);
	}
	char junk[192];
	snprintf(junk, sizeof junk, "%s.junkcopy", path);
	CHECK_INT(am_backup_copy(dst, junk, 0, &info, err, sizeof err), -1);
	snprintf(side, sizeof side, "%s.tmp", junk);
	CHECK(access(junk, F_OK) != 0 && access(side, F_OK) != 0);
	unlink(dst);
	am_test_db_drop(s, path);
}

void suite_backup(void)
{
	RUN(copy_is_consistent_and_refuses_overwrite);
}
