/* am_inst_state: the instance (one replica's engine) state machine, pure.
 *
 *   pending ──▶ starting ──▶ running
 *      ▲  ╲        │  ╲         │
 *      │   ╲       ▼   ╲        ▼
 *      │    ──▶ backoff ──▶ failed        (crash, no health, start error;
 *      │                                   failed after MAX_FAILURES)
 *      └── stopped ◀── stopping ◀── any live state (stop, scale down, delete)
 *
 * pending: placed (GPUs reserved), not spawned; starting: spawned, not yet
 * healthy; running: healthy; backoff: waiting to start again after a failure;
 * failed: gave up (a start or restart action makes it pending again);
 * stopping: asked to stop, not yet gone; stopped: gone, row kept. Every live
 * state may go back to pending when aimaas restarts and cannot adopt the
 * engine. A deleted instance's row goes, which is not a state. */
#ifndef AM_INST_STATE_H
#define AM_INST_STATE_H

enum am_inst_state {
	AM_INST_PENDING,
	AM_INST_STARTING,
	AM_INST_RUNNING,
	AM_INST_BACKOFF,
	AM_INST_FAILED,
	AM_INST_STOPPING,
	AM_INST_STOPPED,
	AM_INST_NSTATES
};

/* The state's name as stored and shown ("pending"...); "?" out of range. */
const char *am_inst_state_name(enum am_inst_state s);
/* 0 and *out set when name is a state's name; -1 otherwise. */
int am_inst_state_parse(const char *name, enum am_inst_state *out);
/* 1 when an instance may go from `from` to `to` (staying is allowed: the
 * reason may change), 0 when not. */
int am_inst_transition_ok(enum am_inst_state from, enum am_inst_state to);

#endif
