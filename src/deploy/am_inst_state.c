/* am_inst_state: the instance state machine's table (see the header). */
#include "am_inst_state.h"

#include "../base/am_fsm.h"

static const char *const names[AM_INST_NSTATES] = { "pending", "starting", "running", "backoff",
						     "failed",  "stopping", "stopped" };

#define B(s) AM_FSM_BIT(s)
/* allowed[from]: the states `from` may go to, besides itself */
static const unsigned allowed[AM_INST_NSTATES] = {
	[AM_INST_PENDING] = B(AM_INST_STARTING) | B(AM_INST_BACKOFF) | B(AM_INST_FAILED) | B(AM_INST_STOPPING) |
			    B(AM_INST_STOPPED),
	[AM_INST_STARTING] = B(AM_INST_RUNNING) | B(AM_INST_BACKOFF) | B(AM_INST_FAILED) | B(AM_INST_STOPPING) |
			     B(AM_INST_STOPPED) | B(AM_INST_PENDING),
	[AM_INST_RUNNING] = B(AM_INST_BACKOFF) | B(AM_INST_FAILED) | B(AM_INST_STOPPING) | B(AM_INST_STOPPED) |
			    B(AM_INST_PENDING),
	[AM_INST_BACKOFF] = B(AM_INST_STARTING) | B(AM_INST_FAILED) | B(AM_INST_STOPPING) | B(AM_INST_STOPPED) |
			    B(AM_INST_PENDING),
	[AM_INST_FAILED] = B(AM_INST_PENDING) | B(AM_INST_STOPPING) | B(AM_INST_STOPPED),
	[AM_INST_STOPPING] = B(AM_INST_STOPPED),
	[AM_INST_STOPPED] = B(AM_INST_PENDING),
};

static const struct am_fsm machine = { names, allowed, AM_INST_NSTATES };

/* See am_inst_state.h. */
const char *am_inst_state_name(enum am_inst_state s)
{
	return am_fsm_name(&machine, (int)s);
}

/* See am_inst_state.h. */
int am_inst_state_parse(const char *name, enum am_inst_state *out)
{
	int s = am_fsm_parse(&machine, name);
	if (s < 0)
		return -1;
	*out = (enum am_inst_state)s;
	return 0;
}

/* See am_inst_state.h. */
int am_inst_transition_ok(enum am_inst_state from, enum am_inst_state to)
{
	return am_fsm_ok(&machine, (int)from, (int)to);
}
