/* am_fsm: the mechanics every state machine shares: a table of state names
 * and, for each state, the set of states it may move to (a bit per state).
 * Each machine (instances, jobs, merges) keeps its typed enum and its own
 * table, and wraps these three functions in typed ones. */
#ifndef AM_FSM_H
#define AM_FSM_H

#define AM_FSM_BIT(s) (1u << (s))

struct am_fsm {
	const char *const *names; /* n names, indexed by state */
	const unsigned *allowed;  /* allowed[from]: AM_FSM_BIT(to) for each move besides staying */
	int n;                    /* at most 32 */
};

/* The state's name; "?" out of range. */
const char *am_fsm_name(const struct am_fsm *m, int s);
/* The state called name, or -1. */
int am_fsm_parse(const struct am_fsm *m, const char *name);
/* 1 when a move from `from` to `to` is allowed (staying always is), else 0. */
int am_fsm_ok(const struct am_fsm *m, int from, int to);

#endif
