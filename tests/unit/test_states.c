/* Unit tests: the instance, job and export (merge) state machines, every pair of states
 * (allowed or refused) against the lists below, written out by hand from
 * what the reconciler and the trainer driver do. */
#include "am_test.h"
#include "deploy/am_inst_state.h"
#include "finetune/am_job_state.h"

/* "from>to" pairs allowed besides staying put */
static const char *const inst_allowed[] = {
	"pending>starting",  "pending>backoff",   "pending>failed",   "pending>stopping", "pending>stopped",
	"starting>running",  "starting>backoff",  "starting>failed",  "starting>stopping", "starting>stopped",
	"starting>pending",  "running>backoff",   "running>failed",   "running>stopping", "running>stopped",
	"running>pending",   "backoff>starting",  "backoff>failed",   "backoff>stopping", "backoff>stopped",
	"backoff>pending",   "failed>pending",    "failed>stopping",  "failed>stopped",   "stopping>stopped",
	"stopped>pending",   NULL,
};

static const char *const job_allowed[] = {
	"queued>starting",   "queued>failed",     "queued>stopped",    "starting>running", "starting>stopping",
	"starting>succeeded", "starting>failed",  "starting>stopped",  "running>stopping", "running>succeeded",
	"running>failed",    "running>stopped",   "stopping>stopped",  "stopping>succeeded", "stopping>failed",
	"failed>queued",     "stopped>queued",    NULL,
};

static const char *const export_allowed[] = {
	"none>queued",      "queued>running",   "queued>failed", "running>succeeded", "running>failed",
	"running>queued",   "failed>queued",    NULL,
};

static int listed(const char *const *list, const char *from, const char *to)
{
	char pair[64];
	snprintf(pair, sizeof pair, "%s>%s", from, to);
	for (; *list; list++)
		if (!strcmp(*list, pair))
			return 1;
	return 0;
}

static void instance_machine(void)
{
	int allowed = 0;
	for (int a = 0; a < AM_INST_NSTATES; a++) {
		enum am_inst_state p;
		CHECK_INT(am_inst_state_parse(am_inst_state_name((enum am_inst_state)a), &p), 0);
		CHECK_INT(p, a);
		for (int b = 0; b < AM_INST_NSTATES; b++) {
			const char *f = am_inst_state_name((enum am_inst_state)a), *t = am_inst_state_name((enum am_inst_state)b);
			int want = a == b || listed(inst_allowed, f, t);
			int got = am_inst_transition_ok((enum am_inst_state)a, (enum am_inst_state)b);
			if (got != want)
				printf("    instance %s -> %s: %s, want %s\n", f, t, got ? "allowed" : "refused",
				       want ? "allowed" : "refused");
			CHECK_INT(got, want);
			allowed += got && a != b;
		}
	}
	int n = 0;
	while (inst_allowed[n])
		n++;
	CHECK_INT(allowed, n); /* no listed pair names a state that does not exist */
	enum am_inst_state s = AM_INST_RUNNING;
	CHECK_INT(am_inst_state_parse("deleting", &s), -1); /* a deployment's state, not an instance's */
	CHECK_INT(am_inst_state_parse(NULL, &s), -1);
	CHECK_INT(s, AM_INST_RUNNING);
	CHECK_STR(am_inst_state_name(AM_INST_NSTATES), "?");
	CHECK_INT(am_inst_transition_ok(AM_INST_NSTATES, AM_INST_PENDING), 0);
	CHECK_INT(am_inst_transition_ok(AM_INST_PENDING, (enum am_inst_state)-1), 0);
}

static void job_machine(void)
{
	int allowed = 0;
	for (int a = 0; a < AM_JOB_NSTATES; a++) {
		enum am_job_state p;
		CHECK_INT(am_job_state_parse(am_job_state_name((enum am_job_state)a), &p), 0);
		CHECK_INT(p, a);
		for (int b = 0; b < AM_JOB_NSTATES; b++) {
			const char *f = am_job_state_name((enum am_job_state)a), *t = am_job_state_name((enum am_job_state)b);
			int want = a == b || listed(job_allowed, f, t);
			int got = am_job_transition_ok((enum am_job_state)a, (enum am_job_state)b);
			if (got != want)
				printf("    job %s -> %s: %s, want %s\n", f, t, got ? "allowed" : "refused",
				       want ? "allowed" : "refused");
			CHECK_INT(got, want);
			allowed += got && a != b;
		}
	}
	int n = 0;
	while (job_allowed[n])
		n++;
	CHECK_INT(allowed, n);
	CHECK_INT(am_job_state_finished(AM_JOB_SUCCEEDED) + am_job_state_finished(AM_JOB_FAILED) +
			  am_job_state_finished(AM_JOB_STOPPED),
		  3);
	CHECK_INT(am_job_state_finished(AM_JOB_STOPPING), 0);
	enum am_job_state s;
	CHECK_INT(am_job_state_parse("cancelled", &s), -1); /* a task's state, not a job's */
	CHECK_STR(am_job_state_name((enum am_job_state)99), "?");
}

static void export_machine(void)
{
	int allowed = 0;
	for (int a = 0; a < AM_EXPORT_NSTATES; a++) {
		enum am_export_state p;
		CHECK_INT(am_export_state_parse(am_export_state_name((enum am_export_state)a), &p), 0);
		CHECK_INT(p, a);
		for (int b = 0; b < AM_EXPORT_NSTATES; b++) {
			const char *f = am_export_state_name((enum am_export_state)a);
			const char *t = am_export_state_name((enum am_export_state)b);
			int want = a == b || listed(export_allowed, f, t);
			int got = am_export_transition_ok((enum am_export_state)a, (enum am_export_state)b);
			if (got != want)
				printf("    export %s -> %s: %s, want %s\n", f, t, got ? "allowed" : "refused",
				       want ? "allowed" : "refused");
			CHECK_INT(got, want);
			allowed += got && a != b;
		}
	}
	int n = 0;
	while (export_allowed[n])
		n++;
	CHECK_INT(allowed, n);
	enum am_export_state s = AM_EXPORT_RUNNING;
	CHECK_INT(am_export_state_parse(NULL, &s), 0); /* stored NULL: never asked for */
	CHECK_INT(s, AM_EXPORT_NONE);
	s = AM_EXPORT_RUNNING;
	CHECK_INT(am_export_state_parse("stopped", &s), -1); /* a job's state, not a merge's */
	CHECK_INT(s, AM_EXPORT_RUNNING);
	CHECK_STR(am_export_state_name(AM_EXPORT_NSTATES), "?");
	CHECK_INT(am_export_transition_ok(AM_EXPORT_NSTATES, AM_EXPORT_QUEUED), 0);
	CHECK_INT(am_export_transition_ok(AM_EXPORT_NONE, (enum am_export_state)-1), 0);
}

void suite_states(void)
{
	RUN(instance_machine);
	RUN(job_machine);
	RUN(export_machine);
}
