/* rt_local: see rt_local.h. */
#include "rt_local.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/am_buf.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_msg.h"
#include "../base/am_path.h"
#include "../base/am_time.h"
#include "../engine/am_engine.h"
#include "../http/am_client.h"
#include "../http/am_prio.h"
#include "am_proc.h"

extern char **environ;

#define PORT_BASE 41000
#define PORT_SPAN 9000

/* What the runtime keeps of one reference it started, watches or stops. */
struct entry {
	struct rt_local *l;
	char ref[AM_RT_REF_MAX];
	pid_t pid;
	uint64_t start;
	char log[PATH_MAX];
	int port;               /* where it listens, when started here or watched with an address */
	int pidfd;
	struct event *exit_ev;
	int exited;
	char status[32];
	uint64_t stop_deadline_ns; /* 0: not asked to stop */
	/* the watch */
	am_rt_event_cb cb;
	void *data;
	char health[64];
	char key[96];
	struct event *probe_ev;
	struct am_client_req *probe;
	struct am_client_conn *hc; /* kept open between checks */
	uint64_t probe_sent_ns;  /* when the probe in flight was sent */
	uint64_t healthy_since_ns; /* the first of the 200s in a row; 0 after a failure */
	int ready, fails;
	struct entry *next, **pprev; /* every entry, in a list */
	struct entry *hnext;         /* the entries of its hash bucket */
};

struct rt_local {
	struct am_runtime rt; /* first: the handle callers hold */
	struct event_base *base;
	char log_dir[PATH_MAX];
	struct entry *entries;
	struct entry **buckets;  /* entries by hash of ref (a thousand engines are looked up often) */
	size_t nbuckets, count;
};

static struct rt_local *local_of(struct am_runtime *rt)
{
	return (struct rt_local *)rt;
}

/* "<pid>:<start>:<log>" into its parts. 0, or -1 when malformed. */
static int parse_ref(const char *ref, pid_t *pid, uint64_t *start, const char **log)
{
	char *end;
	long p = strtol(ref ? ref : "", &end, 10);
	if (!ref || end == ref || *end != ':' || p < 0 || p > INT_MAX)
		return -1;
	const char *s = end + 1;
	unsigned long long st = strtoull(s, &end, 10);
	if (end == s || *end != ':')
		return -1;
	*pid = (pid_t)p;
	*start = (uint64_t)st;
	*log = end + 1;
	return 0;
}

/* FNV-1a of a reference. */
static size_t ref_hash(const char *ref)
{
	uint64_t h = 1469598103934665603ull;
	for (; *ref; ref++)
		h = (h ^ (unsigned char)*ref) * 1099511628211ull;
	return (size_t)h;
}

/* The entry of ref, or NULL. O(1). */
static struct entry *find(struct rt_local *l, const char *ref)
{
	if (!l->nbuckets)
		return NULL;
	for (struct entry *e = l->buckets[ref_hash(ref) & (l->nbuckets - 1)]; e; e = e->hnext)
		if (!strcmp(e->ref, ref))
			return e;
	return NULL;
}

/* Links e into the list and its bucket, doubling the buckets past a load of one. */
static void link_entry(struct rt_local *l, struct entry *e)
{
	if (l->count + 1 > l->nbuckets) {
		size_t n = l->nbuckets ? l->nbuckets * 2 : 64;
		struct entry **b = am_calloc(n, sizeof *b);
		for (struct entry *x = l->entries; x; x = x->next) {
			size_t k = ref_hash(x->ref) & (n - 1);
			x->hnext = b[k];
			b[k] = x;
		}
		free(l->buckets);
		l->buckets = b;
		l->nbuckets = n;
	}
	size_t k = ref_hash(e->ref) & (l->nbuckets - 1);
	e->hnext = l->buckets[k];
	l->buckets[k] = e;
	e->next = l->entries;
	if (e->next)
		e->next->pprev = &e->next;
	e->pprev = &l->entries;
	l->entries = e;
	l->count++;
}

/* Unlinks e from the list and its bucket. */
static void unlink_entry(struct rt_local *l, struct entry *e)
{
	for (struct entry **p = &l->buckets[ref_hash(e->ref) & (l->nbuckets - 1)]; *p; p = &(*p)->hnext)
		if (*p == e) {
			*p = e->hnext;
			break;
		}
	*e->pprev = e->next;
	if (e->next)
		e->next->pprev = e->pprev;
	l->count--;
}

/* The entry of ref, made when there is none; NULL when ref is malformed. */
static struct entry *get(struct rt_local *l, const char *ref)
{
	struct entry *e = find(l, ref);
	if (e)
		return e;
	pid_t pid;
	uint64_t start;
	const char *log;
	if (strlen(ref) >= AM_RT_REF_MAX || parse_ref(ref, &pid, &start, &log) != 0)
		return NULL;
	e = am_calloc(1, sizeof *e);
	e->l = l;
	am_strlcpy(e->ref, ref, sizeof e->ref);
	e->pid = pid;
	e->start = start;
	am_strlcpy(e->log, log, sizeof e->log);
	e->pidfd = -1;
	link_entry(l, e);
	return e;
}

static void unwatch(struct entry *e)
{
	am_client_cancel(e->probe);
	e->probe = NULL;
	am_client_conn_free(e->hc);
	e->hc = NULL;
	if (e->probe_ev)
		event_free(e->probe_ev);
	e->probe_ev = NULL;
	if (e->exit_ev)
		event_free(e->exit_ev);
	e->exit_ev = NULL;
	if (e->pidfd >= 0)
		close(e->pidfd);
	e->pidfd = -1;
	e->cb = NULL;
}

static void entry_free(struct rt_local *l, struct entry *e)
{
	unlink_entry(l, e);
	unwatch(e);
	free(e);
}

/* Exited, by the pidfd or by looking; the status reaped once. */
static int ended(struct entry *e)
{
	if (!e->exited && !am_proc_same(e->pid, e->start)) {
		e->exited = 1;
		am_proc_reap(e->pid, e->status, sizeof e->status);
	}
	return e->exited;
}

static void on_exit_ev(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct entry *e = arg;
	event_del(e->exit_ev);
	if (!e->exited) {
		e->exited = 1;
		am_proc_reap(e->pid, e->status, sizeof e->status);
	}
	am_client_cancel(e->probe);
	e->probe = NULL;
	if (e->probe_ev)
		event_del(e->probe_ev);
	if (e->cb)
		e->cb(e->data, AM_RT_EXITED, e->status);
}

static void on_probe(int status, const char *body, size_t len, void *data);

#define PROBE_TIMEOUT_MS 2000
#define PROBE_LATE_NS 500000000ull /* see on_probe */
#define PROBE_SETTLED_NS (60ull * 1000000000ull)

/* Every 250 ms until ready, then every 5 s; an engine healthy for a
 * minute every 20 s, and every 2 s once one check failed, so six failures
 * in a row are still seen within the same time at worst (20 + 5 * 2 s of
 * waits, as 6 * 5 s before; plus the six timeouts). */
static void schedule_probe(struct entry *e, long slack_ms)
{
	long ms = 250 + slack_ms;
	if (e->fails && e->ready)
		ms = 2000 + slack_ms;
	else if (e->ready)
		ms = (e->healthy_since_ns && am_now_ns() - e->healthy_since_ns >= PROBE_SETTLED_NS ? 20000 : 5000) + slack_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	event_add(e->probe_ev, &tv);
}

static void on_probe_ev(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct entry *e = arg;
	if (e->pidfd < 0 && ended(e)) { /* no pidfd: the exit is noticed here (else on_exit_ev tells) */
		if (e->cb)
			e->cb(e->data, AM_RT_EXITED, e->status);
		return;
	}
	if (e->exited)
		return;
	if (e->port <= 0 || !e->health[0] || e->probe)
		return;
	e->probe_sent_ns = am_now_ns();
	if (!e->hc) {
		e->hc = am_client_conn_new(e->l->base, "127.0.0.1", e->port);
		am_client_conn_background(e->hc); /* health checks wait behind API requests */
	}
	e->probe = am_client_conn_get(e->hc, e->health, e->key[0] ? e->key : NULL, PROBE_TIMEOUT_MS, 4096, on_probe, e);
}

/* A probe's answer is judged by the engine's answer, not by how late the
 * loop got to it: a failure seen this much past the probe's timeout found
 * the loop busy (its timer fired late; the engine's answer may be waiting
 * unread), which says nothing of the engine: not counted, asked again. */
static void on_probe(int status, const char *body, size_t len, void *data)
{
	(void)body;
	(void)len;
	struct entry *e = data;
	e->probe = NULL;
	uint64_t took = am_now_ns() - e->probe_sent_ns;
	if (status != 200 && took > PROBE_TIMEOUT_MS * 1000000ull + PROBE_LATE_NS) {
		am_info("runtime", "health check of %s: no answer, but the loop was %.0f ms late; not counted", e->ref,
			(double)(took - PROBE_TIMEOUT_MS * 1000000ull) / 1e6);
		struct timeval now = { 0, 0 };
		event_add(e->probe_ev, &now);
		return;
	}
	int news = status != 200 || !e->ready || e->fails; /* another 200 from a ready engine is none */
	if (status == 200) {
		e->fails = 0;
		e->ready = 1;
		if (!e->healthy_since_ns)
			e->healthy_since_ns = am_now_ns();
	} else {
		e->fails++;
		e->healthy_since_ns = 0;
		if (took >= PROBE_TIMEOUT_MS * 1000000ull) /* not the quick refusals of an engine still starting */
			am_info("runtime", "health check of %s timed out (%d in a row)", e->ref, e->fails);
	}
	schedule_probe(e, 0); /* before the callback: it may release the entry */
	char n[16];
	am_fmt(n, sizeof n, "%d", e->fails);
	if (e->cb && news)
		e->cb(e->data, status == 200 ? AM_RT_READY : AM_RT_UNREADY, n);
}

/* ---- ops ---- */

static int l_port(struct am_runtime *rt, int prefer, int (*taken)(int port, void *data), void *data)
{
	(void)rt;
	if (prefer > 0 && am_proc_port_free(prefer))
		return prefer;
	long long base = PORT_BASE + (am_wall_ms() % PORT_SPAN);
	for (int k = 0; k < PORT_SPAN; k++) {
		int port = PORT_BASE + (int)((base - PORT_BASE + k) % PORT_SPAN);
		if ((!taken || !taken(port, data)) && am_proc_port_free(port))
			return port;
	}
	return 0;
}

static int l_start(struct am_runtime *rt, const struct am_rt_spec *spec, char *ref, size_t refsize, char *err,
		   size_t errsize)
{
	struct rt_local *l = local_of(rt);
	char log[PATH_MAX];
	if (spec->log_path)
		am_strlcpy(log, spec->log_path, sizeof log);
	else
		am_fmt(log, sizeof log, "%s/%s", l->log_dir, spec->log_name ? spec->log_name : "workload.log");
	char dir[PATH_MAX];
	am_strlcpy(dir, log, sizeof dir);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (am_mkdirs(dir) != 0) {
			am_fmt(err, errsize, AM_MSG_T("could not create %s: %s"), dir, strerror(errno));
			return -1;
		}
	}
	if (spec->note)
		am_runtime_log_note(log, spec->note);
	chmod(log, 0640); /* one written 0644 by an older aimaas */
	char **envp = am_rt_local_env(spec->env);
	pid_t pid;
	int rc = am_proc_spawn(spec->argv, envp, spec->owner, log, &pid, err, errsize);
	am_rt_local_env_free(envp);
	if (rc != 0) {
		am_runtime_log_note(log, err);
		return -1;
	}
	char r[AM_RT_REF_MAX];
	am_fmt(r, sizeof r, "%d:%llu:%s", (int)pid, (unsigned long long)am_proc_start_time(pid), log);
	if (strlen(r) >= refsize) {
		am_proc_kill_group(pid, SIGKILL);
		am_strlcpy(err, AM_MSG_T("the log path is too long"), errsize);
		return -1;
	}
	struct entry *e = get(l, r);
	if (e)
		e->port = spec->port;
	am_strlcpy(ref, r, refsize);
	return 0;
}

static int l_watch(struct am_runtime *rt, const char *ref, const struct am_rt_watch *w)
{
	struct rt_local *l = local_of(rt);
	struct entry *e = get(l, ref);
	if (!e)
		return -1;
	unwatch(e);
	if (ended(e))
		return -1;
	e->cb = w->cb;
	e->data = w->data;
	e->ready = 0;
	e->fails = 0;
	e->healthy_since_ns = 0;
	const char *colon = w->address ? strrchr(w->address, ':') : NULL;
	if (colon)
		e->port = (int)strtol(colon + 1, NULL, 10);
	am_strlcpy(e->health, w->health_path ? w->health_path : "", sizeof e->health);
	am_strlcpy(e->key, w->health_key ? w->health_key : "", sizeof e->key);
	e->pidfd = am_proc_pidfd(e->pid);
	if (e->pidfd >= 0) {
		e->exit_ev = event_new(l->base, e->pidfd, EV_READ | EV_PERSIST, on_exit_ev, e);
		event_add(e->exit_ev, NULL);
	}
	e->probe_ev = event_new(l->base, -1, 0, on_probe_ev, e);
	am_prio_background(e->probe_ev);
	if (e->health[0] || e->pidfd < 0) {
		struct timeval now = { 0, 0 };
		event_add(e->probe_ev, &now);
	}
	return 0;
}

static enum am_rt_status l_status(struct am_runtime *rt, const char *ref, char *st, size_t stsize)
{
	struct rt_local *l = local_of(rt);
	struct entry *e = find(l, ref);
	pid_t pid;
	uint64_t start;
	const char *log;
	if (st && stsize)
		st[0] = '\0';
	if (e) {
		if (!ended(e))
			return AM_RT_RUNNING;
		if (st)
			am_strlcpy(st, e->status, stsize);
		pid = e->pid;
	} else {
		if (parse_ref(ref, &pid, &start, &log) != 0)
			return AM_RT_ENDED;
		if (am_proc_same(pid, start))
			return AM_RT_RUNNING;
		char tmp[32];
		am_proc_reap(pid, tmp, sizeof tmp);
		if (st)
			am_strlcpy(st, tmp, stsize);
	}
	return am_proc_group_alive(pid) ? AM_RT_LINGERING : AM_RT_ENDED;
}

static void l_stop(struct am_runtime *rt, const char *ref, int grace_ms)
{
	struct entry *e = get(local_of(rt), ref);
	if (!e)
		return;
	uint64_t now = am_now_ns();
	if (grace_ms <= 0 || (e->stop_deadline_ns && now > e->stop_deadline_ns)) {
		am_proc_kill_group(e->pid, SIGKILL);
	} else if (!e->stop_deadline_ns) {
		am_proc_kill_group(e->pid, SIGTERM);
		e->stop_deadline_ns = now + (uint64_t)grace_ms * 1000000ull;
	}
}

static void l_interrupt(struct am_runtime *rt, const char *ref)
{
	pid_t pid;
	uint64_t start;
	const char *log;
	(void)rt;
	if (parse_ref(ref, &pid, &start, &log) == 0 && am_proc_same(pid, start))
		am_proc_kill_group(pid, SIGABRT); /* a trainer saves at the next step, then exits (LlamaBoard's way) */
}

static void l_release(struct am_runtime *rt, const char *ref)
{
	struct rt_local *l = local_of(rt);
	struct entry *e = find(l, ref);
	if (e)
		entry_free(l, e);
}

/* A 200 from the engine is as good as a passed check: the next one is a
 * whole interval from now, plus a little (ALIVE_SLACK_MS) so that a caller
 * reporting life at the same interval (the scrapes of a quiet engine, every
 * 20 s) answers before the check comes due, however its answer's latency
 * varies. Only for a ready engine whose last check passed and with no check
 * in flight, so the way to ready and the 2 s checks after a failure are
 * unchanged; a hung engine answers nothing, reports no life, and meets its
 * next check at most one interval (and the slack) after its last answer. */
#define ALIVE_SLACK_MS 250
static void l_alive(struct am_runtime *rt, const char *ref)
{
	struct entry *e = find(local_of(rt), ref);
	if (!e || !e->cb || !e->probe_ev || e->exited || !e->ready || e->fails || e->probe ||
	    !evtimer_pending(e->probe_ev, NULL))
		return;
	schedule_probe(e, ALIVE_SLACK_MS);
}

static int l_endpoint(struct am_runtime *rt, const char *ref, char *host, size_t hostsize, int *port)
{
	struct entry *e = find(local_of(rt), ref);
	if (!e || e->port <= 0)
		return -1;
	am_strlcpy(host, "127.0.0.1", hostsize);
	*port = e->port;
	return 0;
}

static int l_log_file(struct am_runtime *rt, const char *ref, char *path, size_t size)
{
	(void)rt;
	pid_t pid;
	uint64_t start;
	const char *log;
	if (parse_ref(ref, &pid, &start, &log) != 0 || !log[0])
		return -1;
	am_strlcpy(path, log, size);
	return 0;
}

static int l_owns_pid(struct am_runtime *rt, const char *ref, int pid)
{
	(void)rt;
	pid_t p;
	uint64_t start;
	const char *log;
	if (parse_ref(ref, &p, &start, &log) != 0)
		return 0;
	pid_t pgid = getpgid(pid);
	return pid == p || (pgid > 0 && pgid == p);
}

static json_t *l_describe(struct am_runtime *rt, const char *ref)
{
	(void)rt;
	pid_t pid;
	uint64_t start;
	const char *log;
	if (parse_ref(ref, &pid, &start, &log) != 0)
		return json_object();
	return json_pack("{s:i}", "pid", (int)pid);
}

static int l_same(struct am_runtime *rt, const char *a, const char *b)
{
	(void)rt;
	pid_t pa, pb;
	uint64_t sa, sb;
	const char *la, *lb;
	return parse_ref(a, &pa, &sa, &la) == 0 && parse_ref(b, &pb, &sb, &lb) == 0 && pa == pb && sa == sb && pa > 0;
}

struct marked {
	pid_t pid, pgid;
	uint64_t start;
	char rest[160];
};

struct marked_list {
	struct marked *v;
	int n;
};

static void on_marked(pid_t pid, pid_t pgid, uint64_t start, const char *rest, void *data)
{
	struct marked_list *l = data;
	l->v = am_realloc(l->v, (size_t)(l->n + 1) * sizeof *l->v);
	struct marked *m = &l->v[l->n++];
	m->pid = pid;
	m->pgid = pgid;
	m->start = start;
	am_strlcpy(m->rest, rest, sizeof m->rest);
}

/* A workload is a process group: its leader's reference when the leader
 * lives ("<pgid>:0:" when only the rest of the group does). Marked
 * processes outside any group of their own (aimaas's, or none) are not
 * workloads of this runtime. */
static int l_find(struct am_runtime *rt, const char *prefix, am_rt_found_cb cb, void *data)
{
	(void)rt;
	struct marked_list l = { NULL, 0 };
	if (am_proc_marked(prefix, on_marked, &l) < 0)
		return -1;
	int found = 0;
	for (int i = 0; i < l.n; i++) {
		struct marked *m = &l.v[i];
		if (m->pgid <= 1 || m->pgid == getpgrp())
			continue;
		int dup = 0; /* one call per group: its leader's, else its first marked process's */
		for (int j = 0; j < l.n && !dup; j++)
			dup = j != i && l.v[j].pgid == m->pgid && (l.v[j].pid == l.v[j].pgid || (j < i && m->pid != m->pgid));
		if (dup)
			continue;
		char ref[AM_RT_REF_MAX];
		uint64_t lead = m->pid == m->pgid ? m->start : am_proc_start_time(m->pgid);
		if (lead)
			am_rt_local_ref(m->pgid, lead, ref, sizeof ref);
		else
			am_fmt(ref, sizeof ref, "%d:0:", (int)m->pgid);
		cb(ref, m->rest, m->pid == m->pgid, data);
		found++;
	}
	free(l.v);
	return found;
}

static void l_free(struct am_runtime *rt)
{
	struct rt_local *l = local_of(rt);
	while (l->entries)
		entry_free(l, l->entries);
	free(l->buckets);
	free(l);
}

static const struct am_runtime_ops local_ops = {
	.name = "local",
	.this_host = 1,
	.listen_host = "127.0.0.1",
	.port = l_port,
	.start = l_start,
	.watch = l_watch,
	.status = l_status,
	.stop = l_stop,
	.interrupt = l_interrupt,
	.release = l_release,
	.alive = l_alive,
	.endpoint = l_endpoint,
	.log_file = l_log_file,
	.note = am_runtime_note_by_log,
	.rotate = am_runtime_rotate_by_log,
	.owns_pid = l_owns_pid,
	.describe = l_describe,
	.same = l_same,
	.find = l_find,
	.free = l_free,
};

struct am_runtime *am_rt_local_new(struct event_base *base, const char *log_dir)
{
	struct rt_local *l = am_calloc(1, sizeof *l);
	l->rt.ops = &local_ops;
	l->base = base;
	am_strlcpy(l->log_dir, log_dir, sizeof l->log_dir);
	return &l->rt;
}

void am_rt_local_ref(pid_t pid, uint64_t start, char *out, size_t size)
{
	char fd1[64], log[PATH_MAX];
	am_fmt(fd1, sizeof fd1, "/proc/%d/fd/1", (int)pid);
	ssize_t n = readlink(fd1, log, sizeof log - 1);
	log[n > 0 ? n : 0] = '\0';
	if (log[0] != '/' || strstr(log, " (deleted)"))
		log[0] = '\0';
	am_fmt(out, size, "%d:%llu:%s", (int)pid, (unsigned long long)start, log);
}

char **am_rt_local_env(char *const *set)
{
	size_t nset = 0;
	while (set && set[nset])
		nset++;
	size_t nenv = 0;
	while (environ && environ[nenv])
		nenv++;
	char **all = am_calloc(nenv + nset + 1, sizeof *all);
	size_t k = 0;
	for (char **e = environ; e && *e; e++) {
		size_t nl = strcspn(*e, "=");
		/* aimaas's own secrets (the admin password, a metrics token, ...) */
		if (!strncmp(*e, "AIMAAS_", 7) && am_engine_secret_name(*e, nl))
			continue;
		int overridden = 0;
		for (size_t i = 0; i < nset && !overridden; i++)
			overridden = !strncmp(set[i], *e, nl) && set[i][nl] == '=';
		if (!overridden)
			all[k++] = am_strdup(*e);
	}
	/* each name once, the first given winning: what aimaas sets comes
	 * before what a user set (an engine reads the first of two) */
	for (size_t i = 0; i < nset; i++) {
		size_t nl = strcspn(set[i], "=");
		int dup = 0;
		for (size_t j = 0; j < i && !dup; j++)
			dup = !strncmp(set[j], set[i], nl) && set[j][nl] == '=';
		if (!dup)
			all[k++] = am_strdup(set[i]);
	}
	all[k] = NULL;
	return all;
}

void am_rt_local_env_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}
