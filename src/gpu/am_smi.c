/* am_smi: nvidia-smi CSV parsing and running. */
#include "am_smi.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "../base/am_time.h"

extern char **environ;

#define MAX_COLS 24

/* Splits one CSV line (nvidia-smi quotes nothing; names have no commas)
 * into trimmed fields in place. */
static int split(char *line, char **cols, int max)
{
	int n = 0;
	char *p = line;
	while (n < max) {
		char *comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		while (isspace((unsigned char)*p))
			p++;
		char *e = p + strlen(p);
		while (e > p && isspace((unsigned char)e[-1]))
			*--e = '\0';
		cols[n++] = p;
		if (!comma)
			break;
		p = comma + 1;
	}
	return n;
}

/* "memory.total [MiB]" -> "memory.total" */
static void header_name(char *h)
{
	char *b = strchr(h, '[');
	if (b) {
		*b = '\0';
		char *e = b;
		while (e > h && isspace((unsigned char)e[-1]))
			*--e = '\0';
	}
}

static int col(char **names, int n, const char *want)
{
	for (int i = 0; i < n; i++)
		if (strcmp(names[i], want) == 0)
			return i;
	return -1;
}

static int unknown(const char *v)
{
	return v[0] == '[' || strcmp(v, "N/A") == 0 || v[0] == '\0';
}

/* "81559 MiB" -> bytes; a bare number is MiB (the unit of nounits output). */
static uint64_t parse_mem(const char *v)
{
	if (unknown(v))
		return 0;
	char *end;
	double x = strtod(v, &end);
	while (*end == ' ')
		end++;
	double mult = 1024.0 * 1024.0;
	if (strncmp(end, "GiB", 3) == 0)
		mult = 1024.0 * 1024.0 * 1024.0;
	else if (strncmp(end, "KiB", 3) == 0)
		mult = 1024.0;
	return (uint64_t)(x * mult);
}

static int parse_int(const char *v)
{
	if (unknown(v))
		return -1;
	return (int)strtol(v, NULL, 10);
}

static char *next_line(char **p)
{
	if (!**p)
		return NULL;
	char *line = *p;
	char *nl = strchr(line, '\n');
	if (nl) {
		*nl = '\0';
		*p = nl + 1;
	} else {
		*p = line + strlen(line);
	}
	size_t n = strlen(line);
	if (n && line[n - 1] == '\r')
		line[n - 1] = '\0';
	return line;
}

int am_smi_parse_gpus(const char *csv, struct am_gpu_info *out, int max)
{
	char *copy = am_strdup(csv), *p = copy;
	char *hdr = next_line(&p);
	int got = -1;
	char *names[MAX_COLS];
	int nh = hdr ? split(hdr, names, MAX_COLS) : 0;
	for (int i = 0; i < nh; i++)
		header_name(names[i]);
	int ci = col(names, nh, "index"), cu = col(names, nh, "uuid"), cn = col(names, nh, "name");
	if (ci < 0 || cu < 0 || cn < 0)
		goto out;
	int cbus = col(names, nh, "pci.bus_id"), ct = col(names, nh, "memory.total"),
	    cused = col(names, nh, "memory.used"), cfree = col(names, nh, "memory.free"),
	    cug = col(names, nh, "utilization.gpu"), cum = col(names, nh, "utilization.memory"),
	    ctemp = col(names, nh, "temperature.gpu"), ccc = col(names, nh, "compute_cap");
	got = 0;
	char *line;
	while ((line = next_line(&p)) && got < max) {
		char *v[MAX_COLS];
		int nv = split(line, v, MAX_COLS);
		if (nv != nh)
			continue; /* blank or foreign line */
		struct am_gpu_info *g = &out[got];
		memset(g, 0, sizeof *g);
		g->index = parse_int(v[ci]);
		if (g->index < 0)
			continue;
		am_strlcpy(g->uuid, v[cu], sizeof g->uuid);
		am_strlcpy(g->name, v[cn], sizeof g->name);
		if (cbus >= 0 && !unknown(v[cbus]))
			am_strlcpy(g->pci_bus_id, v[cbus], sizeof g->pci_bus_id);
		g->mem_total = ct >= 0 ? parse_mem(v[ct]) : 0;
		g->mem_used = cused >= 0 ? parse_mem(v[cused]) : 0;
		g->mem_free = cfree >= 0 ? parse_mem(v[cfree]) : g->mem_total - g->mem_used;
		g->util_gpu = cug >= 0 ? parse_int(v[cug]) : -1;
		g->util_mem = cum >= 0 ? parse_int(v[cum]) : -1;
		g->temperature = ctemp >= 0 ? parse_int(v[ctemp]) : -1;
		if (ccc >= 0 && !unknown(v[ccc]) && strchr(v[ccc], '.')) {
			g->cc_major = (int)strtol(v[ccc], NULL, 10);
			g->cc_minor = (int)strtol(strchr(v[ccc], '.') + 1, NULL, 10);
		} else {
			am_gpu_cc_from_name(g->name, &g->cc_major, &g->cc_minor);
		}
		got++;
	}
out:
	free(copy);
	return got;
}

int am_smi_parse_apps(const char *csv, struct am_gpu_info *gpus, int n)
{
	char *copy = am_strdup(csv), *p = copy;
	char *hdr = next_line(&p);
	char *names[MAX_COLS];
	int nh = hdr ? split(hdr, names, MAX_COLS) : 0;
	for (int i = 0; i < nh; i++)
		header_name(names[i]);
	int cp = col(names, nh, "pid"), cm = col(names, nh, "used_gpu_memory"), cu = col(names, nh, "gpu_uuid"),
	    cn = col(names, nh, "process_name");
	int rc = -1;
	if (cp < 0 || cm < 0 || cu < 0)
		goto out;
	for (int i = 0; i < n; i++)
		gpus[i].nprocs = 0;
	char *line;
	while ((line = next_line(&p))) {
		char *v[MAX_COLS];
		if (split(line, v, MAX_COLS) != nh)
			continue;
		for (int i = 0; i < n; i++) {
			struct am_gpu_info *g = &gpus[i];
			if (strcmp(g->uuid, v[cu]) != 0 || g->nprocs == AM_GPU_MAX_PROCS)
				continue;
			struct am_gpu_proc *pr = &g->procs[g->nprocs++];
			pr->pid = parse_int(v[cp]);
			pr->used_bytes = parse_mem(v[cm]);
			am_strlcpy(pr->name, cn >= 0 ? v[cn] : "", sizeof pr->name);
		}
	}
	rc = 0;
out:
	free(copy);
	return rc;
}

int am_smi_run(char *const argv[], char **out, size_t cap, int timeout_ms)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
	posix_spawn_file_actions_addclosefrom_np(&fa, 3); /* nothing else of aimaas's */
#endif
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	if (rc != 0) {
		close(fds[0]);
		return -1;
	}
	struct am_buf b;
	am_buf_init(&b, cap);
	uint64_t deadline = am_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	int killed = 0;
	for (;;) {
		uint64_t now = am_now_ns();
		if (now >= deadline) {
			kill(pid, SIGKILL);
			killed = 1;
			break;
		}
		struct pollfd pfd = { fds[0], POLLIN, 0 };
		int pr = poll(&pfd, 1, (int)((deadline - now) / 1000000ull) + 1);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			continue;
		char tmp[4096];
		ssize_t r = read(fds[0], tmp, sizeof tmp);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (am_buf_add(&b, tmp, (size_t)r) != 0) {
			kill(pid, SIGKILL);
			killed = 1;
			break;
		}
	}
	close(fds[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (killed || !WIFEXITED(status)) {
		am_buf_free(&b);
		return -1;
	}
	*out = am_buf_take(&b);
	return WEXITSTATUS(status);
}

int am_smi_sample(const char *path, struct am_gpu_info *out, int max, char *errbuf, size_t errsize)
{
	char *text = NULL;
	char q_new[] = "--query-gpu=" AM_SMI_GPU_FIELDS, q_old[] = "--query-gpu=" AM_SMI_GPU_FIELDS_OLD;
	char fmt[] = "--format=csv";
	char *argv[] = { (char *)path, q_new, fmt, NULL };
	int rc = am_smi_run(argv, &text, 1 << 20, 10000);
	if (rc != 0) { /* an old driver rejects compute_cap */
		free(text);
		text = NULL;
		argv[1] = q_old;
		rc = am_smi_run(argv, &text, 1 << 20, 10000);
	}
	if (rc != 0) {
		free(text);
		am_fmt(errbuf, errsize, "%s failed (exit %d)", path, rc);
		return -1;
	}
	int n = am_smi_parse_gpus(text, out, max);
	free(text);
	if (n < 0) {
		am_fmt(errbuf, errsize, "%s printed no GPU table", path);
		return -1;
	}
	char qa[] = "--query-compute-apps=pid,process_name,used_gpu_memory,gpu_uuid";
	char *argv2[] = { (char *)path, qa, fmt, NULL };
	text = NULL;
	if (am_smi_run(argv2, &text, 1 << 20, 10000) == 0)
		am_smi_parse_apps(text, out, n);
	free(text);
	return n;
}
