/* am_job_state: the fine-tuning job and export state machines' tables (see
 * the header). */
#include "am_job_state.h"

#include <string.h>

static const char *const names[AM_JOB_NSTATES] = { "queued",    "starting", "running", "stopping",
						    "succeeded", "failed",   "stopped" };

#define B(s) (1u << (s))
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

/* See am_job_state.h. */
const char *am_job_state_name(enum am_job_state s)
{
	return (unsigned)s < AM_JOB_NSTATES ? names[s] : "?";
}

/* See am_job_state.h. */
int am_job_state_parse(const char *name, enum am_job_state *out)
{
	for (int i = 0; name && i < AM_JOB_NSTATES; i++)
		if (!strcmp(name, names[i])) {
			*out = (enum am_job_state)i;
			return 0;
		}
	return -1;
}

/* See am_job_state.h. */
int am_job_transition_ok(enum am_job_state from, enum am_job_state to)
{
	if ((unsigned)from >= AM_JOB_NSTATES || (unsigned)to >= AM_JOB_NSTATES)
		return 0;
	return from == to || (allowed[from] & B(to)) != 0;
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

/* See am_job_state.h. */
const char *am_export_state_name(enum am_export_state s)
{
	return (unsigned)s < AM_EXPORT_NSTATES ? export_names[s] : "?";
}

/* See am_job_state.h. */
int am_export_state_parse(const char *name, enum am_export_state *out)
{
	if (!name) {
		*out = AM_EXPORT_NONE;
		return 0;
	}
	for (int i = 0; i < AM_EXPORT_NSTATES; i++)
		if (!strcmp(name, export_names[i])) {
			*out = (enum am_export_state)i;
			return 0;
		}
	return -1;
}

/* See am_job_state.h. */
int am_export_transition_ok(enum am_export_state from, enum am_export_state to)
{
	if ((unsigned)from >= AM_EXPORT_NSTATES || (unsigned)to >= AM_EXPORT_NSTATES)
		return 0;
	return from == to || (export_allowed[from] & B(to)) != 0;
}
