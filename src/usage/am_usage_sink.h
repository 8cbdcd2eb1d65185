/* am_usage_sink: where the gateway's usage records end up. It owns the SQL
 * of the usage roll-ups and api_keys.used_tokens: a thread of its own, with its
 * own database connection, drains the gateway (am_gateway_usage_drain)
 * when the gateway hands records over (am_gateway_usage_notify: it sleeps
 * otherwise) and writes each drain in one transaction.
 *
 * The thread does its file work at SCHED_IDLE and holds SQLite's write
 * lock at an ordinary priority: a thread the scheduler starves while
 * holding it would stall the reconciler's writes behind it (priority
 * inversion). Where the process may not come back from SCHED_IDLE (an
 * unprivileged user with RLIMIT_NICE under 20: the packaged service sets
 * LimitNICE=+0) it stays at the ordinary priority throughout. The request
 * path never waits for it: workers hand batches over with a lock-free push
 * and journal before answering. */
#ifndef AM_USAGE_SINK_H
#define AM_USAGE_SINK_H

#include <stddef.h>

#include "../gateway/am_gateway.h"

struct am_store;
struct am_usage_sink;

/* Opens the sink's connection to the database at dbpath, drains g once
 * now, on the caller's thread (what the last run journalled is counted
 * before the keys' usage is published), then starts the thread. NULL, with
 * why in err, when the database cannot be opened or the thread started. */
struct am_usage_sink *am_usage_sink_start(const char *dbpath, struct am_gateway *g, char *err, size_t errsize);
/* Stops the thread, drains once more (call it after am_gateway_stop, so the
 * workers' last records are in), closes the connection. NULL is fine. */
void am_usage_sink_free(struct am_usage_sink *s);
/* The fold: adds recs to the per-minute, hourly and daily roll-ups
 * (usage_minutely, usage_hourly, usage_daily: a few upserts per user, key,
 * model, deployment and minute of a drain, not a row per request) and each
 * key's tokens to api_keys.used_tokens, all in one transaction on st; the
 * records of a journal file folded before (their ids' part before the last
 * '.', kept in usage_journals) are skipped, their tokens not counted again.
 * 0, or -1 (rolled back; *full set when the disk is full). */
int am_usage_sink_write(struct am_store *st, const struct am_usage_record *recs, int n, int *full);
/* Forgets the folded journal files that are gone from jdir (deleted after
 * their commit), so usage_journals holds only files that could still be
 * replayed. The ids forgotten, or -1. */
int am_usage_sink_forget(struct am_store *st, const char *jdir);
/* Whether a thread of this process may go to SCHED_IDLE and come back
 * (CAP_SYS_NICE, or an RLIMIT_NICE that allows its nice value): tried on a
 * thread made for the purpose, so the caller's own is never stranded. */
int am_usage_sink_can_idle(void);
/* Deletes at most batch raw usage records older than raw_before (ms; every
 * record is in the roll-ups from the transaction that wrote it, so none is
 * lost); when none is, per-minute groups that ended before raw_before (batch rows
 * and the rest of the last one's minute); when none is either, the oldest
 * hour of usage_hourly and the oldest day of usage_daily if older than
 * rollup_before (a day when it ended before). Each DELETE is its own
 * transaction. Returns how many rows went, or -1. */
int am_usage_sink_prune(struct am_store *st, long long raw_before, long long rollup_before, int batch);

#endif
