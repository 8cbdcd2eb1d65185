/* am_backup: whole-database copies and checks through SQLite itself: the
 * online backup API (a consistent copy while aimaas writes), integrity and
 * foreign-key checks, and what a copy holds. Depends on base only; the
 * commands around it (locks, data dir, messages) are src/ops/am_ops.c. */
#ifndef AM_BACKUP_H
#define AM_BACKUP_H

#include <stddef.h>

/* What a copy wrote. */
struct am_backup_info {
	long long bytes;  /* the copy's size */
	int version;      /* its schema version (PRAGMA user_version) */
	int steps;        /* backup steps taken */
	double ms;        /* how long the copy took */
};

/* Copies the database at src to dst consistently while other connections
 * write it: one read transaction on src (WAL: writers go on meanwhile) and
 * sqlite3_backup_step in slices of pages, into dst.tmp, which is switched to
 * a rollback journal (a standalone file: no -wal beside it), made 0600,
 * fsynced and renamed to dst. Refuses an existing dst unless force. On
 * success fills *info (may be NULL) and returns 0; -1 with a message in err
 * otherwise (dst.tmp removed). */
int am_backup_copy(const char *src, const char *dst, int force, struct am_backup_info *info, char *err,
		   size_t errsz);

/* Called with each problem found: text borrowed for the call. */
typedef void (*am_backup_finding_fn)(const char *text, void *data);

/* Checks the database at path (opened read-only; a running aimaas may
 * write it meanwhile): PRAGMA integrity_check and foreign_key_check, each
 * problem handed to fn (NULL: only counted). *version gets its schema version. Returns how many
 * problems were found, or -1 with a message in err when it cannot be read. */
int am_backup_check(const char *path, am_backup_finding_fn fn, void *data, int *version, char *err, size_t errsz);

/* Calls fn with each table of path and its row count (sqlite_ tables
 * skipped). 0 or -1 with a message in err. */
int am_backup_tables(const char *path, void (*fn)(const char *table, long long rows, void *data), void *data,
		     char *err, size_t errsz);

/* The newest schema version this binary's migrations know. */
int am_backup_schema_max(void);

#endif
