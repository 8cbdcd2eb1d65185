/* am_job_state: the fine-tuning job and export state machines' tables (see
 * the header). */
#include "am_job_state.h"

#include "../base/am_fsm.h"
#include "../base/am_msg.h"

/* marked: a finished job's task message is its state's name when it has no reason */
static const char *const names[AM_JOB_NSTATES] = { AM_MSG_T("queued"),    AM_MSG_T("starting"), AM_MSG_T("running"),
						    AM_MSG_T("stopping"),  AM_MSG_T("succeeded"), AM_MSG_T("failed"),
						    AM_MSG_T("stopped") };

#define B(s) AM_FSM_BIT(s)
/* allowed[from]: the states `from` may go to, besides itself */
static const unsigned allowed[AM_JOB_NSTATES] = {
	[AM_JOB_QUEUED] = B(AM_JOB_STARTING) | B(AM_JOB_FAILED) | B(AM_JOB_STOPPED),
	[AM_JOB_STARTING] = B(AM_JOB_RUNNING) | B(AM_JOB_STOPPING) | B(AM_JOB_SUCCEEDED) | B(AM_JOB_FAILED) |
			    B(AM_JOB_STOPPED),
	[AM_JOB_RUNNING] = B(AM_JOB_STOPPING) | B(AM_JOB_SUCCEEDED) | B(AM_JOB_FAILED) | B(AM_JOB_STOPPED),
	[AM_JOB_STOPPING] = B(AM_JOB_STOPPED) | B(AM_JOB_SUCCEEDED) | B(AM_JOB_FAILED),
	[AM_JOB_SUCCEEDED] = 0,
	[AM_JOB_FAILED] = B(AM_JOB_QUEUED),
	[AM_JOB_STOPPED] = B(AM_JOB_QUEUED),
};

static const struct am_fsm jobs = { names, allowed, AM_JOB_NSTATES };

/* See am_job_state.h. */
const char *am_job_state_name(enum am_job_state s)
{
	return am_fsm_name(&jobs, (int)s);
}

/* See am_job_state.h. */
int am_job_state_parse(const char *name, enum am_job_state *out)
{
	int s = am_fsm_parse(&jobs, name);
	if (s < 0)
		return -1;
	*out = (enum am_job_state)s;
	return 0;
}

/* See am_job_state.h. */
int am_job_transition_ok(enum am_job_state from, enum am_job_state to)
{
	return am_fsm_ok(&jobs, (int)from, (int)to);
}

/* See am_job_state.h. */
int am_job_state_finished(enum am_job_state s)
{
	return s == AM_JOB_SUCCEEDED || s == AM_JOB_FAILED || s == AM_JOB_STOPPED;
}

static const char *const export_names[AM_EXPORT_NSTATES] = { "none", "queued", "running", "succeeded", "failed" };

/* export_allowed[from]: the states `from` may go to, besides itself */
static const unsigned export_allowed[AM_EXPORT_NSTATES] = {
	[AM_EXPORT_NONE] = B(AM_EXPORT_QUEUED),
	[AM_EXPORT_QUEUED] = B(AM_EXPORT_RUNNING) | B(AM_EXPORT_FAILED),
	[AM_EXPORT_RUNNING] = B(AM_EXPORT_SUCCEEDED) | B(AM_EXPORT_FAILED) | B(AM_EXPORT_QUEUED),
	[AM_EXPORT_SUCCEEDED] = 0,
	[AM_EXPORT_FAILED] = B(AM_EXPORT_QUEUED),
};

static const struct am_fsm exports = { export_names, export_allowed, AM_EXPORT_NSTATES };

/* See am_job_state.h. */
const char *am_export_state_name(enum am_export_state s)
{
	return am_fsm_name(&exports, (int)s);
}

/* See am_job_state.h. A NULL name is no merge yet. */
int am_export_state_parse(const char *name, enum am_export_state *out)
{
	int s = name ? am_fsm_parse(&exports, name) : AM_EXPORT_NONE;
	if (s < 0)
		return -1;
	*out = (enum am_export_state)s;
	return 0;
}

/* See am_job_state.h. */
int am_export_transition_ok(enum am_export_state from, enum am_export_state to)
{
	return am_fsm_ok(&exports, (int)from, (int)to);
}
