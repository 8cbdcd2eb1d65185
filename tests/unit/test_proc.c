/* am_proc: a child gets only stdin, stdout and stderr of aimaas's
 * descriptors, carries the AIMAAS_OWNER marker (never a caller's own), and
 * is found by it in /proc. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "am_test.h"
#include "runtime/am_proc.h"

struct seen {
	pid_t pid;
	int hits;
	char rest[128];
};

static void on_marked(pid_t pid, pid_t pgid, uint64_t start, const char *rest, void *data)
{
	struct seen *s = data;
	if (pid != s->pid)
		return;
	s->hits++;
	CHECK(pgid == pid); /* its own session and group */
	CHECK(start != 0);
	snprintf(s->rest, sizeof s->rest, "%s", rest);
}

static void test_spawn_closes_and_marks(void)
{
	char log[128], owner[128];
	snprintf(log, sizeof log, "/tmp/aimaas-unit-proc-%d.log", (int)getpid());
	unlink(log);
	/* a descriptor without close-on-exec, as a library or a dup() would leave it */
	int leak = open("/dev/null", O_RDONLY);
	CHECK(leak >= 3);
	am_proc_marker("unit-owner", "instance", 7, owner, sizeof owner);
	CHECK(strncmp(owner, "unit-owner:instance:7:", 22) == 0);
	char *argv[] = { "/bin/sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; echo \"$AIMAAS_OWNER\"; sleep 5", NULL };
	char *env[] = { "PATH=/usr/bin:/bin", "AIMAAS_OWNER=forged:instance:1:x", NULL };
	pid_t pid = 0;
	char err[256];
	CHECK_INT(am_proc_spawn(argv, env, owner, log, &pid, err, sizeof err), 0);
	char want[160];
	snprintf(want, sizeof want, "%s", owner + strlen("unit-owner:"));
	struct seen s = { .pid = pid };
	char *out = NULL;
	for (int i = 0; i < 200; i++) { /* the child writes its lines at once */
		free(out);
		out = am_test_read_file(log);
		if (out && strchr(out, '\n') && strchr(strchr(out, '\n') + 1, '\n'))
			break;
		usleep(10000);
	}
	CHECK(am_proc_marked("unit-owner:", on_marked, &s) >= 1);
	CHECK_INT(s.hits, 1);
	CHECK_STR(s.rest, want);
	/* ls's own directory descriptor is 3: nothing of ours beside 0, 1, 2 */
	CHECK(out && strncmp(out, "0 1 2 3 \n", 9) == 0);
	if (out) {
		const char *second = strchr(out, '\n');
		CHECK(second && strncmp(second + 1, owner, strlen(owner)) == 0);
	}
	free(out);
	struct seen none = { .pid = pid };
	CHECK(am_proc_marked("unit-own:", on_marked, &none) >= 0);
	CHECK_INT(none.hits, 0);
	am_proc_kill_group(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(leak);
	unlink(log);
}

void suite_proc(void)
{
	RUN(test_spawn_closes_and_marks);
}
