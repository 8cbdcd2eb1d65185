/* am_job_state: the fine-tuning job state machine, pure.
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
 * logged step (starting → succeeded). */
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

#endif
