/* am_prune: keeps the database small. A thread of its own, with its own
 * connection, wakes every few minutes (and soon after start) and deletes,
 * in small batches with a pause between them so other writers (the usage
 * sink, the loop) never wait long for the write lock:
 * - raw usage records past their retention (the hourly and daily roll-ups
 *   keep their totals), then roll-up rows past theirs (am_usage_sink_prune);
 * - finished tasks past their age or count (am_task_prune: running ones,
 *   and those a deployment, job or download names, stay);
 * - expired and revoked sessions (am_auth_prune).
 * Each module's SQL stays in that module; this one only schedules. */
#ifndef AM_PRUNE_H
#define AM_PRUNE_H

#include <stddef.h>

struct am_store;
struct am_prune;

struct am_prune_config {
	long long usage_days;        /* raw usage records' retention (days) */
	long long rollup_days;       /* usage_hourly and usage_daily's (days) */
	long long task_days;         /* finished tasks' age limit (days) */
	long long task_keep;         /* and count limit (the newest kept) */
	int batch;                   /* rows per DELETE (0: 2000: ~15 ms of write lock) */
	int period_s;                /* between passes (0: 600) */
};

/* One pass on st now, on the caller's thread: every batch until nothing is
 * left to delete, now_ms standing for the time (tests pass their own). The
 * rows deleted are added to *deleted when not NULL. 0, or -1 when a DELETE
 * failed (what was deleted before stays deleted: each batch commits). */
int am_prune_pass(struct am_store *st, const struct am_prune_config *c, long long now_ms, long long *deleted);
/* Opens a connection to dbpath and starts the thread (first pass after a
 * few seconds, then every period_s). NULL, with why in err. */
struct am_prune *am_prune_start(const char *dbpath, const struct am_prune_config *c, char *err, size_t errsize);
/* Stops the thread (a pass under way stops between batches) and frees.
 * NULL is fine. */
void am_prune_free(struct am_prune *p);

#endif
