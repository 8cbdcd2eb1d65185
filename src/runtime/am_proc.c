/* am_proc: spawning, identifying and stopping engine processes. */
#include "am_proc.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../base/am_buf.h"
#include "../base/am_file.h"
#include "../base/am_mem.h"
#include "../base/am_msg.h"
#include "../base/am_rand.h"

#define ENV_SCAN_MAX (256u << 10) /* an environment bigger than this is not ours */

/* The test hook of AIMAAS_TEST_CRASH_AFTER_SPAWN: dies as a kill -9 would,
 * right after a spawn whose owner kind matches, before anything is recorded. */
static void crash_hook(const char *owner)
{
	const char *want = getenv("AIMAAS_TEST_CRASH_AFTER_SPAWN");
	if (!want || !*want || !owner)
		return;
	char pat[40];
	am_fmt(pat, sizeof pat, ":%s:", want);
	if (!strcmp(want, "any") || strstr(owner, pat))
		kill(getpid(), SIGKILL);
}

int am_proc_spawn(char *const argv[], char *const env[], const char *owner, const char *log_path, pid_t *pid,
		  char *errbuf, size_t errsize)
{
	/* the marker first; a caller's own AIMAAS_OWNER never reaches the child */
	size_t n = 0;
	while (env && env[n])
		n++;
	char **full = am_calloc(n + 2, sizeof *full);
	char *mark = NULL;
	size_t k = 0;
	if (owner) {
		size_t ml = strlen(AM_PROC_OWNER_VAR) + strlen(owner) + 2;
		mark = am_malloc(ml);
		am_fmt(mark, ml, "%s=%s", AM_PROC_OWNER_VAR, owner);
		full[k++] = mark;
	}
	for (size_t i = 0; i < n; i++)
		if (strncmp(env[i], AM_PROC_OWNER_VAR "=", sizeof AM_PROC_OWNER_VAR))
			full[k++] = env[i];
	full[k] = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log_path, O_WRONLY | O_CREAT | O_APPEND, 0640);
	posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
	/* Every descriptor aimaas opens is close-on-exec; this is the second
	 * belt: whatever a library or another thread opened without it (a
	 * client's connection above all) is closed in the child before exec.
	 * glibc does it with close_range(3, ~0U), or by walking /proc/self/fd
	 * where the kernel lacks that. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
	/* its own session: a process group to signal whole, and no terminal or
	 * parent whose end would end it */
	sigset_t none, dflt;
	sigemptyset(&none);
	sigemptyset(&dflt);
	sigaddset(&dflt, SIGPIPE); /* aimaas ignores it; the engine must not inherit that */
	sigaddset(&dflt, SIGTERM);
	sigaddset(&dflt, SIGINT);
	sigaddset(&dflt, SIGHUP);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dflt);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	int rc = posix_spawnp(pid, argv[0], &fa, &at, argv, full);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	free(mark);
	free(full);
	if (rc != 0) {
		if (rc == ENOENT)
			am_fmt(errbuf, errsize,
			       strchr(argv[0], '/') ? AM_MSG_T("the engine program '%s' was not found")
						    : AM_MSG_T("the engine program '%s' was not found on PATH (set the engine's binary path)"),
			       argv[0]);
		else
			am_fmt(errbuf, errsize, AM_MSG_T("cannot start '%s': %s"), argv[0], strerror(rc));
		return -1;
	}
	crash_hook(owner);
	return 0;
}

void am_proc_marker(const char *owner_id, const char *kind, long long id, char *out, size_t size)
{
	char tok[17];
	am_rand_token("", tok, sizeof tok);
	am_fmt(out, size, "%s:%s:%lld:%s", owner_id, kind, id, tok);
}

int am_proc_marked(const char *prefix, am_proc_marked_cb cb, void *data)
{
	DIR *d = opendir("/proc");
	if (!d)
		return -1;
	uid_t me = getuid();
	size_t plen = strlen(prefix);
	char want[160];
	am_fmt(want, sizeof want, "%s=%s", AM_PROC_OWNER_VAR, prefix);
	size_t wlen = strlen(want);
	char *buf = am_malloc(ENV_SCAN_MAX);
	int found = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		char *end;
		long v = strtol(de->d_name, &end, 10);
		if (*end || v <= 1 || (pid_t)v == getpid())
			continue;
		pid_t pid = (pid_t)v;
		char path[64];
		struct stat sb;
		am_fmt(path, sizeof path, "/proc/%d", (int)pid);
		if (stat(path, &sb) != 0 || sb.st_uid != me)
			continue;
		am_fmt(path, sizeof path, "/proc/%d/environ", (int)pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		size_t got = 0;
		ssize_t r;
		while (got < ENV_SCAN_MAX - 1 && (r = read(fd, buf + got, ENV_SCAN_MAX - 1 - got)) > 0)
			got += (size_t)r;
		close(fd);
		buf[got] = '\0';
		for (size_t off = 0; off < got; off += strlen(buf + off) + 1) {
			if (strncmp(buf + off, want, wlen))
				continue;
			uint64_t start = am_proc_start_time(pid);
			if (start) { /* a zombie has nothing left to end */
				found++;
				cb(pid, getpgid(pid), start, buf + off + strlen(AM_PROC_OWNER_VAR) + 1 + plen, data);
			}
			break;
		}
	}
	free(buf);
	closedir(d);
	return found;
}

uint64_t am_proc_start_time(pid_t pid)
{
	char path[64], buf[1024];
	am_fmt(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* the command name may hold spaces and parentheses: fields start after the last ')' */
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return 0;
	char state = p[2];
	if (state == 'Z' || state == 'X')
		return 0;
	p += 2;
	for (int field = 3; field < 22 && p; field++) { /* p is at field 3 (state) */
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	return p ? strtoull(p, NULL, 10) : 0;
}

int am_proc_same(pid_t pid, uint64_t start_time)
{
	return pid > 0 && start_time && am_proc_start_time(pid) == start_time;
}

int am_proc_group_alive(pid_t pgid)
{
	return pgid > 0 && kill(-pgid, 0) == 0;
}

void am_proc_kill_group(pid_t pgid, int sig)
{
	if (pgid > 1)
		kill(-pgid, sig);
}

int am_proc_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	return -1;
#endif
}

void am_proc_reap(pid_t pid, char *out, size_t size)
{
	int st;
	out[0] = '\0';
	if (waitpid(pid, &st, WNOHANG) != pid)
		return;
	if (WIFEXITED(st))
		am_fmt(out, size, AM_MSG_T("exit %d"), WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		am_fmt(out, size, AM_MSG_T("signal %d"), WTERMSIG(st));
}

void am_proc_rotate(const char *path, uint64_t max)
{
	struct stat sb;
	if (stat(path, &sb) != 0 || (uint64_t)sb.st_size <= max)
		return;
	char old[4200];
	am_fmt(old, sizeof old, "%s.1", path);
	int in = open(path, O_RDWR | O_CLOEXEC), out = open(old, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (in >= 0 && out >= 0) {
		char buf[65536];
		ssize_t n;
		while ((n = read(in, buf, sizeof buf)) > 0)
			if (write(out, buf, (size_t)n) != n)
				break;
		if (ftruncate(in, 0) != 0)
			(void)0;
	}
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
}

int am_proc_tail(const char *path, int n, char ***lines)
{
	return am_file_tail(path, n, lines);
}

void am_proc_lines_free(char **lines, int n)
{
	am_file_lines_free(lines, n);
}

int am_proc_port_free(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int ok = bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0;
	close(fd);
	return ok;
}
