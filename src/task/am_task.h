/* am_task: the audit trail. Every mutating API call is a task (who did what
 * to which target, when, and how it ended); long operations update their
 * task's state and progress as they go, which is also the progress bar. */
#ifndef AM_TASK_H
#define AM_TASK_H

struct am_store;

enum am_task_state { AM_TASK_QUEUED, AM_TASK_RUNNING, AM_TASK_SUCCEEDED, AM_TASK_FAILED, AM_TASK_CANCELLED };

const char *am_task_state_name(enum am_task_state s);
/* 0 and *out set, or -1 for an unknown name. */
int am_task_state_parse(const char *name, enum am_task_state *out);

/* Inserts a task. Finished states get started/finished times now. Returns
 * the id, or -1. message may be NULL. The task belongs to the account named
 * actor now (actor_id; user ids are never reused), to no one for a name that
 * is not a user's. */
long long am_task_create(struct am_store *st, const char *kind, const char *target, const char *actor,
			 enum am_task_state state, const char *message);
/* Moves a task on; progress < 0 leaves it unchanged. Finished states stamp
 * finished_at, running stamps started_at once. */
int am_task_update(struct am_store *st, long long id, enum am_task_state state, int progress, const char *message);
/* At start: tasks left queued or running by a previous process whose kind is
 * not in resumable (NULL-terminated; NULL = none) are marked failed. */
int am_task_recover(struct am_store *st, const char *const *resumable);
/* Deletes at most batch finished tasks (succeeded, failed, cancelled: a
 * queued or running one is never deleted) that finished before `before` (ms)
 * or are older than the newest keep tasks, except those a deployment, a
 * fine-tuning job or a download names (their history stays). One
 * transaction. Returns how many went, or -1. */
int am_task_prune(struct am_store *st, long long before, long long keep, int batch);

#endif
