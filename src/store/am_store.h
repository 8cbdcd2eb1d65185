/* am_store: the SQLite database that is aimaas's truth. A connection is
 * used by one thread: the main loop's for its writes, read-only ones for
 * workers' heavy reads. Queries bind parameters from a format string:
 *   'i' long long, 'd' double, 's' const char * (NULL binds null), 'n' null.
 * Rows come back as JSON objects keyed by column name, which is what the API
 * returns anyway; integer columns named *_at hold wall-clock milliseconds. */
#ifndef AM_STORE_H
#define AM_STORE_H

#include <jansson.h>
#include <stddef.h>

struct am_store;

#define AM_STORE_CONSTRAINT (-2) /* a UNIQUE / CHECK / FOREIGN KEY refused the write */

/* Opens (creating) the database at path in WAL mode and applies pending
 * migrations. On failure returns -1 with a message in errbuf. */
int am_store_open(const char *path, struct am_store **out, char *errbuf, size_t errsize);
void am_store_close(struct am_store *s);
/* Opens a second, read-only connection to a database that am_store_open has
 * opened (WAL: it reads the last committed state while the writer writes).
 * No migrations. For a worker thread's heavy reads: a connection is used by
 * one thread at a time. On failure returns -1 with a message in errbuf. */
int am_store_open_readonly(const char *path, struct am_store **out, char *errbuf, size_t errsize);

/* Runs a statement that returns no rows. 0, AM_STORE_CONSTRAINT or -1. */
int am_store_exec(struct am_store *s, const char *sql, const char *fmt, ...);
/* All rows as a JSON array of objects (*out owns a reference). 0 or -1. */
int am_store_rows(struct am_store *s, json_t **out, const char *sql, const char *fmt, ...);
/* The first row as an object, or *out = NULL when there is none. 0 or -1. */
int am_store_row(struct am_store *s, json_t **out, const char *sql, const char *fmt, ...);
/* The first column of the first row as an integer; *out = dflt without rows. */
int am_store_int(struct am_store *s, long long *out, long long dflt, const char *sql, const char *fmt, ...);
/* The same for SQL built at run time (not a string literal): prepared each
 * time, never cached, since the cache keys on the SQL text's address. */
int am_store_exec_dynamic(struct am_store *s, const char *sql, const char *fmt, ...);
int am_store_rows_dynamic(struct am_store *s, json_t **out, const char *sql, const char *fmt, ...);
/* One row of am_store_each; valid during the callback only. */
struct am_store_row;
/* Called for each row; nonzero stops the query early. */
typedef int (*am_store_row_cb)(const struct am_store_row *row, void *data);
/* Runs a query and calls cb for each row, building no JSON: for large reads
 * on a hot path (the gateway's route table). 0 or -1. */
int am_store_each(struct am_store *s, am_store_row_cb cb, void *data, const char *sql, const char *fmt, ...);
/* Column i of a row: an integer (0 for NULL), text ("" for NULL; valid
 * during the callback), whether it is NULL. */
long long am_store_col_int(const struct am_store_row *r, int i);
const char *am_store_col_text(const struct am_store_row *r, int i);
int am_store_col_null(const struct am_store_row *r, int i);
long long am_store_last_id(struct am_store *s);
int am_store_changes(struct am_store *s);

/* Transactions (BEGIN IMMEDIATE). Not nested: the API dispatcher owns them. */
int am_store_begin(struct am_store *s);
int am_store_commit(struct am_store *s);
void am_store_rollback(struct am_store *s);
int am_store_in_tx(struct am_store *s);
/* How many write transactions ended without committing (rolled back, or a
 * failed COMMIT): what was read inside one may never have been true. */
unsigned long long am_store_aborts(const struct am_store *s);
/* A read transaction around a run of reads (an API GET): one snapshot, and
 * SQLite's locks taken once instead of per statement. Ended by
 * am_store_read_end, or at once by a statement that writes or by
 * am_store_begin (so a write is never an upgrade of an old snapshot).
 * Nothing when a transaction is open already. 0 or -1. */
int am_store_read_begin(struct am_store *s);
void am_store_read_end(struct am_store *s);

/* Whether the database is out of disk space: set when a statement or a
 * commit fails with SQLITE_FULL (or an I/O error whose errno is ENOSPC or
 * EDQUOT), cleared when a write succeeds. Callers turn a failed write into
 * "disk full" (am_err_disk_full) when this says so. */
int am_store_full(const struct am_store *s);

/* The schema version now applied (PRAGMA user_version). */
int am_store_version(struct am_store *s);

#endif
