/* am_job_state: the fine-tuning job state machine and its merge (export)
 * machine, pure tables.
 *
 * The job:
 *
 *   queued ──▶ starting ──▶ running ──▶ succeeded
 *     │  ╲        │  ╲         │  ╲
 *     │   ╲       │   ╲        │   ──▶ failed ──┐
 *     │    ──▶ failed  ──▶ stopping ──▶ stopped ─┴──▶ queued (resume)
 *     └──────────────────────────────▶ stopped (stopped before it started)
 *
 * queued: waiting for GPUs (or to resume); starting: the trainer runs, no
 * step logged yet; running: steps are logged; stopping: asked to save and
 * stop; succeeded, failed, stopped: finished (a stopped or failed job may be
 * resumed: queued again; a succeeded one never changes). A trainer may end
 * on its own while stopping (succeeded, failed) or finish before its first
 * logged step (starting → succeeded).
 *
 * The merge of a finished LoRA job's adapter into its base (export_state,
 * a machine of its own beside the job's):
 *
 *   none ──▶ queued ──▶ running ──▶ succeeded
 *              ▲ │  ╲      │ │
 *              │ │   ──────┼─┴──▶ failed ──┐
 *              │ └─────────┘ (aimaas stops: queued again)
 *              └───────────────────────────┘ (merge again)
 *
 * none: never asked for (stored NULL); queued: asked for, not started;
 * running: llamafactory-cli export runs; succeeded: the merged model is
 * registered (final); failed: may be asked for again. */
#ifndef AM_JOB_STATE_H
#define AM_JOB_STATE_H

enum am_job_state {
	AM_JOB_QUEUED,
	AM_JOB_STARTING,
	AM_JOB_RUNNING,
	AM_JOB_STOPPING,
	AM_JOB_SUCCEEDED,
	AM_JOB_FAILED,
	AM_JOB_STOPPED,
	AM_JOB_NSTATES
};

/* The state's name as stored and shown ("queued"...); "?" out of range. */
const char *am_job_state_name(enum am_job_state s);
/* 0 and *out set when name is a state's name; -1 otherwise. */
int am_job_state_parse(const char *name, enum am_job_state *out);
/* 1 when a job may go from `from` to `to` (staying is allowed: the reason
 * may change), 0 when not. */
int am_job_transition_ok(enum am_job_state from, enum am_job_state to);
/* 1 for succeeded, failed and stopped. */
int am_job_state_finished(enum am_job_state s);

enum am_export_state {
	AM_EXPORT_NONE,
	AM_EXPORT_QUEUED,
	AM_EXPORT_RUNNING,
	AM_EXPORT_SUCCEEDED,
	AM_EXPORT_FAILED,
	AM_EXPORT_NSTATES
};

/* The export state's name ("none", "queued"...); "?" out of range. "none"
 * is stored as NULL. */
const char *am_export_state_name(enum am_export_state s);
/* 0 and *out set when name is an export state's name, or NULL (none, as
 * stored); -1 otherwise. */
int am_export_state_parse(const char *name, enum am_export_state *out);
/* 1 when a merge may go from `from` to `to` (staying is allowed: the
 * reason may change), 0 when not. */
int am_export_transition_ok(enum am_export_state from, enum am_export_state to);

#endif
