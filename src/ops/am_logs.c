/* am_logs: the logs' total size per data dir (am_logs.h). */
#include "am_logs.h"

#include <dirent.h>
#include <event2/event.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "am_server.h"
#include "base/am_buf.h"
#include "base/am_json.h"
#include "base/am_log.h"
#include "base/am_mem.h"
#include "store/am_store.h"

#define PRUNE_EVERY_S 60
#define MAX_DEPTH 4

struct am_logs {
	struct am_server *srv;
	struct event *timer;
};

/* One log file found. */
struct lf {
	char *path;
	long long size;
	time_t mtime;
	int rotated; /* a .1 part: never written to */
	int live;    /* the current file of a running engine or job: kept */
};

struct scan {
	struct lf *v;
	int n, cap;
	json_t *running_deps, *active_jobs; /* rows with an "id" */
};

/* "x.log" is a current log, "x.log.1" its rotated part; 0 for others. */
static int log_kind(const char *name, int *rotated)
{
	size_t len = strlen(name);
	if (len > 4 && !strcmp(name + len - 4, ".log"))
		return *rotated = 0, 1;
	if (len > 6 && !strcmp(name + len - 6, ".log.1"))
		return *rotated = 1, 1;
	return 0;
}

static void add(struct scan *s, const char *path, const struct stat *sb, int rotated, int live)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = am_realloc(s->v, (size_t)s->cap * sizeof *s->v);
	}
	s->v[s->n++] = (struct lf){ am_strdup(path), (long long)sb->st_size, sb->st_mtime, rotated, live };
}

/* dep: the deployment id of the folder walked (logs/deployments/<id>), or
 * -1 elsewhere under logs/, where a current log's owner is unknown: kept. */
static void walk_logs(struct scan *s, const char *dir, int depth, long long dep)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char p[PATH_MAX];
		struct stat sb;
		am_fmt(p, sizeof p, "%s/%s", dir, e->d_name);
		if (lstat(p, &sb) != 0)
			continue;
		if (S_ISDIR(sb.st_mode) && depth < MAX_DEPTH) {
			long long id = -1;
			size_t len = strlen(dir);
			if (depth == 1 && len > 17 && !strcmp(dir + len - 17, "/logs/deployments")) {
				char *end;
				id = strtoll(e->d_name, &end, 10);
				if (*end)
					id = -1;
			}
			walk_logs(s, p, depth + 1, id);
			continue;
		}
		int rotated;
		if (!S_ISREG(sb.st_mode) || !log_kind(e->d_name, &rotated))
			continue;
		add(s, p, &sb, rotated, !rotated && (dep < 0 || am_json_rows_have_id(s->running_deps, dep)));
	}
	closedir(d);
}

/* finetune/<id>/{train,export}.log and their .1 parts. */
static void walk_jobs(struct scan *s, const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	static const char *const names[] = { "train.log", "train.log.1", "export.log", "export.log.1" };
	while ((e = readdir(d))) {
		char *end;
		long long id = strtoll(e->d_name, &end, 10);
		if (*end || end == e->d_name)
			continue;
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
			char p[PATH_MAX];
			struct stat sb;
			am_fmt(p, sizeof p, "%s/%s/%s", dir, e->d_name, names[i]);
			if (lstat(p, &sb) != 0 || !S_ISREG(sb.st_mode))
				continue;
			int rotated = i % 2;
			add(s, p, &sb, rotated, !rotated && am_json_rows_have_id(s->active_jobs, id));
		}
	}
	closedir(d);
}

/* Rotated parts first, then the oldest. */
static int order(const void *a, const void *b)
{
	const struct lf *x = a, *y = b;
	if (x->rotated != y->rotated)
		return y->rotated - x->rotated;
	return (x->mtime > y->mtime) - (x->mtime < y->mtime);
}

int am_logs_prune(struct am_server *srv)
{
	unsigned long long cap = srv->cfg.logs_total_max_bytes;
	if (!cap)
		return 0;
	struct scan s = { 0 };
	if (am_store_rows(srv->store, &s.running_deps,
			  "SELECT DISTINCT d.id AS id FROM deployments d LEFT JOIN instances i ON i.deployment_id = d.id"
			  " WHERE d.desired = 'running' OR i.state NOT IN ('stopped','failed')",
			  NULL) != 0 ||
	    am_store_rows(srv->store, &s.active_jobs,
			  "SELECT id FROM ft_jobs WHERE state IN ('queued','starting','running','stopping')"
			  " OR export_state = 'running'",
			  NULL) != 0) {
		json_decref(s.running_deps);
		return 0; /* nothing is known to be stopped: nothing is removed */
	}
	char p[PATH_MAX];
	am_fmt(p, sizeof p, "%s/logs", srv->cfg.data_dir);
	walk_logs(&s, p, 0, -1);
	am_fmt(p, sizeof p, "%s/finetune", srv->cfg.data_dir);
	walk_jobs(&s, p);
	unsigned long long total = 0;
	for (int i = 0; i < s.n; i++)
		total += (unsigned long long)s.v[i].size;
	int removed = 0;
	if (total > cap) {
		qsort(s.v, (size_t)s.n, sizeof *s.v, order);
		for (int i = 0; i < s.n && total > cap; i++) {
			if (s.v[i].live || unlink(s.v[i].path) != 0)
				continue;
			total -= (unsigned long long)s.v[i].size;
			removed++;
			am_info("logs", "removed %s (%lld bytes): the logs are over %llu MiB", s.v[i].path, s.v[i].size,
				cap >> 20);
			char *slash = strrchr(s.v[i].path, '/');
			if (slash && !s.v[i].rotated && strstr(s.v[i].path, "/logs/deployments/")) {
				*slash = '\0';
				rmdir(s.v[i].path); /* a deleted deployment's folder, once empty */
			}
		}
		if (total > cap)
			am_warn("logs", "the logs still take %llu MiB (cap %llu MiB): the rest belong to running engines "
					"and jobs", total >> 20, cap >> 20);
	}
	for (int i = 0; i < s.n; i++)
		free(s.v[i].path);
	free(s.v);
	json_decref(s.running_deps);
	json_decref(s.active_jobs);
	return removed;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct am_logs *l = arg;
	am_logs_prune(l->srv);
}

struct am_logs *am_logs_start(struct am_server *srv)
{
	struct am_logs *l = am_calloc(1, sizeof *l);
	l->srv = srv;
	am_logs_prune(srv);
	l->timer = event_new(srv->base, -1, EV_PERSIST, on_tick, l);
	struct timeval every = { PRUNE_EVERY_S, 0 };
	event_add(l->timer, &every);
	return l;
}

void am_logs_free(struct am_logs *l)
{
	if (!l)
		return;
	if (l->timer)
		event_free(l->timer);
	free(l);
}
