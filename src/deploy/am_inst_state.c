/* am_inst_state: the instance state machine's table (see the header). */
#include "am_inst_state.h"

#include <string.h>

static const char *const names[AM_INST_NSTATES] = { "pending", "starting", "running", "backoff",
						     "failed",  "stopping", "stopped" };

#define B(s) (1u << (s))
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

/* See am_inst_state.h. */
const char *am_inst_state_name(enum am_inst_state s)
{
	return (unsigned)s < AM_INST_NSTATES ? names[s] : "?";
}

/* See am_inst_state.h. */
int am_inst_state_parse(const char *name, enum am_inst_state *out)
{
	for (int i = 0; name && i < AM_INST_NSTATES; i++)
		if (!strcmp(name, names[i])) {
			*out = (enum am_inst_state)i;
			return 0;
		}
	return -1;
}

/* See am_inst_state.h. */
int am_inst_transition_ok(enum am_inst_state from, enum am_inst_state to)
{
	if ((unsigned)from >= AM_INST_NSTATES || (unsigned)to >= AM_INST_NSTATES)
		return 0;
	return from == to || (allowed[from] & B(to)) != 0;
}
