/* am_task: task records. */
#include "am_task.h"

#include <string.h>

#include "../base/am_log.h"
#include "../base/am_time.h"
#include "../store/am_store.h"

static const char *const names[] = { "queued", "running", "succeeded", "failed", "cancelled" };

const char *am_task_state_name(enum am_task_state s)
{
	return names[s];
}

int am_task_state_parse(const char *name, enum am_task_state *out)
{
	for (int i = 0; i < 5; i++)
		if (strcmp(names[i], name) == 0) {
			*out = (enum am_task_state)i;
			return 0;
		}
	return -1;
}

static int finished(enum am_task_state s)
{
	return s >= AM_TASK_SUCCEEDED;
}

long long am_task_create(struct am_store *st, const char *kind, const char *target, const char *actor,
			 enum am_task_state state, const char *message)
{
	long long now = am_wall_ms();
	int rc = am_store_exec(st,
			       "INSERT INTO tasks(kind, target, actor, state, progress, message, created_at,"
			       " started_at, finished_at, actor_id) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
			       " (SELECT id FROM users WHERE username = ?3))",
			       "ssssisiii", kind, target ? target : "", actor, names[state],
			       (long long)(state == AM_TASK_SUCCEEDED ? 100 : 0), message ? message : "", now,
			       state == AM_TASK_QUEUED ? 0LL : now, finished(state) ? now : 0LL);
	if (rc != 0)
		return -1;
	long long id = am_store_last_id(st);
	/* 0 means "not yet": store NULL rather than the epoch */
	am_store_exec(st, "UPDATE tasks SET started_at = NULLIF(started_at, 0), finished_at = NULLIF(finished_at, 0)"
		      " WHERE id = ?", "i", id);
	return id;
}

int am_task_update(struct am_store *st, long long id, enum am_task_state state, int progress, const char *message)
{
	long long now = am_wall_ms();
	return am_store_exec(st,
			     "UPDATE tasks SET state = ?, progress = CASE WHEN ? >= 0 THEN ? ELSE progress END,"
			     " message = COALESCE(?, message),"
			     " started_at = CASE WHEN started_at IS NULL AND ? <> 'queued' THEN ? ELSE started_at END,"
			     " finished_at = CASE WHEN ? THEN ? ELSE NULL END WHERE id = ?",
			     "siissiiii", names[state], (long long)progress, (long long)progress, message,
			     names[state], now, (long long)finished(state), now, id);
}

int am_task_recover(struct am_store *st, const char *const *resumable)
{
	json_t *rows = NULL;
	if (am_store_rows(st, &rows, "SELECT id, kind FROM tasks WHERE state IN ('queued','running')", NULL) != 0)
		return -1;
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row) {
		const char *kind = json_string_value(json_object_get(row, "kind"));
		int keep = 0;
		for (const char *const *r = resumable; r && *r; r++)
			if (strcmp(*r, kind) == 0)
				keep = 1;
		if (keep)
			continue;
		long long id = json_integer_value(json_object_get(row, "id"));
		am_task_update(st, id, AM_TASK_FAILED, -1, "interrupted: aimaas stopped while this task ran");
		am_warn("task", "task %lld (%s) was interrupted by a restart; marked failed", id, kind);
	}
	json_decref(rows);
	return 0;
}

int am_task_prune(struct am_store *st, long long before, long long keep, int batch)
{
	/* the keep-th newest id: anything below it is over the count */
	long long floor_id;
	if (am_store_int(st, &floor_id, 0, "SELECT id FROM tasks ORDER BY id DESC LIMIT 1 OFFSET ?", "i", keep) != 0)
		return -1;
	if (am_store_exec(st, "DELETE FROM tasks WHERE id IN (SELECT t.id FROM tasks t"
			  " WHERE t.state IN ('succeeded','failed','cancelled')"
			  " AND (COALESCE(t.finished_at, t.created_at) < ?1 OR t.id <= ?2)"
			  " AND NOT EXISTS (SELECT 1 FROM deployments d WHERE d.task_id = t.id)"
			  " AND NOT EXISTS (SELECT 1 FROM ft_jobs j WHERE j.task_id = t.id)"
			  " AND NOT EXISTS (SELECT 1 FROM downloads w WHERE w.task_id = t.id)"
			  " ORDER BY t.id LIMIT ?3)",
			  "iii", before, floor_id, (long long)batch) != 0)
		return -1;
	return am_store_changes(st);
}
