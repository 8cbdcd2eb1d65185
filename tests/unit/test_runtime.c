/* am_runtime: a second runtime is a new file. A fake runtime whose
 * workloads live in memory (it runs nothing) is handed to the real
 * reconciler, which drives it through start, ready, crash, restart with
 * backoff, and stop, never learning which runtime it holds. And a database
 * an older aimaas wrote (pid, port and log path columns) is migrated with a
 * live engine recorded in it: the local runtime adopts that engine. */
#include <event2/event.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "am_server.h"
#include "am_test.h"
#include "base/am_buf.h"
#include "base/am_mem.h"
#include "deploy/am_deploy.h"
#include "runtime/am_proc.h"
#include "runtime/am_runtime.h"
#include "runtime/rt_local.h"
#include "store/am_migrations.h"
#include "sched/am_capacity_db.h"
#include "store/am_store.h"

/* ---- a runtime of pretend workloads ---- */

struct fake_load {
	char ref[32];
	int running, stop_asked;
	char status[32];
	char spec_argv0[64], spec_gpus[32], spec_owner[128], spec_log[96];
	int spec_port;
	am_rt_event_cb cb;
	void *data;
	char health[64];
};

struct fake_rt {
	struct am_runtime rt;
	struct fake_load loads[8];
	int n, starts, stops, kills, releases, watches, alives;
};

static struct fake_rt *fake_of(struct am_runtime *rt)
{
	return (struct fake_rt *)rt;
}

static struct fake_load *fake_find(struct am_runtime *rt, const char *ref)
{
	struct fake_rt *f = fake_of(rt);
	for (int i = 0; i < f->n; i++)
		if (!strcmp(f->loads[i].ref, ref))
			return &f->loads[i];
	return NULL;
}

static int f_port(struct am_runtime *rt, int prefer, int (*taken)(int port, void *data), void *data)
{
	(void)rt;
	(void)prefer;
	(void)taken;
	(void)data;
	return 8000; /* every pod listens on the same container port */
}

static int f_start(struct am_runtime *rt, const struct am_rt_spec *spec, char *ref, size_t refsize, char *err,
		   size_t errsize)
{
	struct fake_rt *f = fake_of(rt);
	if (f->n == 8)
		return am_fmt(err, errsize, "full"), -1;
	struct fake_load *w = &f->loads[f->n++];
	memset(w, 0, sizeof *w);
	am_fmt(w->ref, sizeof w->ref, "pod-%d", f->n);
	w->running = 1;
	am_strlcpy(w->spec_argv0, spec->argv[0], sizeof w->spec_argv0);
	am_strlcpy(w->spec_gpus, spec->gpus ? spec->gpus : "", sizeof w->spec_gpus);
	am_strlcpy(w->spec_owner, spec->owner ? spec->owner : "", sizeof w->spec_owner);
	am_strlcpy(w->spec_log, spec->log_name ? spec->log_name : "", sizeof w->spec_log);
	w->spec_port = spec->port;
	f->starts++;
	am_strlcpy(ref, w->ref, refsize);
	return 0;
}

static int f_watch(struct am_runtime *rt, const char *ref, const struct am_rt_watch *w)
{
	struct fake_load *l = fake_find(rt, ref);
	if (!l || !l->running)
		return -1;
	l->cb = w->cb;
	l->data = w->data;
	am_strlcpy(l->health, w->health_path ? w->health_path : "", sizeof l->health);
	fake_of(rt)->watches++;
	return 0;
}

static enum am_rt_status f_status(struct am_runtime *rt, const char *ref, char *st, size_t stsize)
{
	struct fake_load *l = fake_find(rt, ref);
	if (st && stsize)
		am_strlcpy(st, l ? l->status : "", stsize);
	return l && l->running ? AM_RT_RUNNING : AM_RT_ENDED;
}

static void f_stop(struct am_runtime *rt, const char *ref, int grace_ms)
{
	struct fake_load *l = fake_find(rt, ref);
	if (!l)
		return;
	if (grace_ms > 0) {
		fake_of(rt)->stops++;
		l->stop_asked = 1; /* ends at the next look, as a pod deleted with a grace period */
	} else {
		fake_of(rt)->kills++;
		l->running = 0;
	}
}

static void f_interrupt(struct am_runtime *rt, const char *ref)
{
	(void)rt;
	(void)ref;
}

static void f_release(struct am_runtime *rt, const char *ref)
{
	struct fake_load *l = fake_find(rt, ref);
	if (l)
		l->cb = NULL;
	fake_of(rt)->releases++;
}

static void f_alive(struct am_runtime *rt, const char *ref)
{
	(void)ref;
	fake_of(rt)->alives++; /* the reconciler reports a scrape answered; nothing to push back here */
}

static int f_endpoint(struct am_runtime *rt, const char *ref, char *host, size_t hostsize, int *port)
{
	if (!fake_find(rt, ref))
		return -1;
	am_strlcpy(host, "10.1.2.3", hostsize); /* a pod's address, not loopback */
	*port = 8000;
	return 0;
}

static int f_log_file(struct am_runtime *rt, const char *ref, char *path, size_t size)
{
	(void)rt;
	(void)ref;
	(void)path;
	(void)size;
	return -1;
}

static void f_note(struct am_runtime *rt, const char *ref, const char *text)
{
	(void)rt;
	(void)ref;
	(void)text;
}

static void f_rotate(struct am_runtime *rt, const char *ref, uint64_t max)
{
	(void)rt;
	(void)ref;
	(void)max;
}

static int f_owns_pid(struct am_runtime *rt, const char *ref, int pid)
{
	(void)rt;
	(void)ref;
	(void)pid;
	return 0;
}

static json_t *f_describe(struct am_runtime *rt, const char *ref)
{
	(void)rt;
	return json_pack("{s:s}", "pod", ref);
}

static int f_same(struct am_runtime *rt, const char *a, const char *b)
{
	(void)rt;
	return !strcmp(a, b);
}

static void f_free(struct am_runtime *rt)
{
	(void)rt;
}

static const struct am_runtime_ops fake_ops = {
	.name = "fake", .port = f_port, .start = f_start, .watch = f_watch, .status = f_status, .stop = f_stop,
	.interrupt = f_interrupt, .release = f_release, .alive = f_alive, .endpoint = f_endpoint,
	.log_file = f_log_file, .note = f_note, .rotate = f_rotate, .owns_pid = f_owns_pid, .describe = f_describe,
	.same = f_same, .free = f_free,
};

/* Delivers an event of a workload, as a runtime does on the loop. */
static void fake_event(struct fake_load *l, enum am_rt_event ev, const char *detail)
{
	if (l->cb)
		l->cb(l->data, ev, detail);
}

/* ---- a reconciler on a scratch database ---- */

static void run_loop(struct am_server *srv)
{
	for (int i = 0; i < 3; i++)
		event_base_loop(srv->base, EVLOOP_NONBLOCK);
}

static json_t *inst_row(struct am_server *srv)
{
	json_t *r = NULL;
	am_store_row(srv->store, &r, "SELECT * FROM instances WHERE deployment_id = 1 AND replica = 0", NULL);
	return r;
}

static const char *col(json_t *row, const char *k)
{
	return json_string_value(json_object_get(row, k)) ?: "";
}

static void seed(struct am_store *st)
{
	am_store_exec(st, "INSERT INTO models(id, name, source, path, state, kind, facts, created_by, created_at, updated_at)"
		      " VALUES(1, 'm', 'local', '/models/m', 'ready', 'llm', '{}', 'admin', 1, 1)", NULL);
	am_store_exec(st, "INSERT INTO deployments(id, name, model_id, engine, replicas, gpus_per_replica, desired, state,"
		      " created_by, created_at, updated_at) VALUES(1, 'chat', 1, 'vllm', 1, 1, 'running', 'starting', 'admin', 1, 1)",
		      NULL);
	/* a node of a cluster the fake runtime drives ("fake:c1", by the
	 * cluster's kind and id: the registry picks it by the node) */
	am_store_exec(st, "INSERT INTO clusters(id, name, kind, created_at) VALUES('c1', 'gpu-lab', 'fake', 1)", NULL);
	am_store_exec(st, "INSERT INTO nodes(id, cluster_id, hostname, state, created_at, updated_at)"
		      " VALUES('n1', 'c1', 'gpu-node-1', 'ready', 1, 1)", NULL);
	/* placed already (placement is not what this tests): replica 0 on GPU 2 of n1 */
	am_store_exec(st, "INSERT INTO instances(deployment_id, replica, node_id, gpu_indices, api_key, state, created_at,"
		      " updated_at) VALUES(1, 0, 'n1', '[2]', 'legacy-engine-key-0123', 'pending', 1, 1)", NULL);
}

static void reconciler_drives_a_second_runtime(void)
{
	char path[128], dir[] = "/tmp/aimaas-unit-rt-XXXXXX";
	struct am_server *srv = am_calloc(1, sizeof *srv);
	srv->store = am_test_db_open("runtime", path, sizeof path);
	CHECK(srv->store != NULL && mkdtemp(dir) != NULL);
	if (!srv->store)
		return;
	am_strlcpy(srv->cfg.data_dir, dir, sizeof srv->cfg.data_dir);
	am_strlcpy(srv->owner_id, "unitowner", sizeof srv->owner_id);
	srv->base = event_base_new();
	struct fake_rt *fake = am_calloc(1, sizeof *fake);
	fake->rt.ops = &fake_ops;
	am_strlcpy(fake->rt.name, "fake:c1", sizeof fake->rt.name);
	CHECK_INT(am_runtimes_add(&srv->runtimes, &fake->rt), 0);
	CHECK_INT(am_runtimes_add(&srv->runtimes, &fake->rt), -1); /* one runtime a name */
	CHECK(am_runtimes_get(&srv->runtimes, "fake:c1") == &fake->rt);
	CHECK(am_runtimes_get(&srv->runtimes, "local") == NULL);
	seed(srv->store);
	srv->deploy = am_deploy_new(srv);
	CHECK_INT(am_deploy_start(srv->deploy), 0);

	/* start: the spec is the reconciler's, the reference and address the runtime's */
	run_loop(srv);
	json_t *r = inst_row(srv);
	CHECK_INT(fake->starts, 1);
	CHECK_STR(col(r, "state"), "starting");
	CHECK_STR(col(r, "runtime"), "fake:c1");
	CHECK_STR(col(r, "rt_ref"), "pod-1");
	CHECK_STR(col(r, "address"), "10.1.2.3:8000");
	CHECK_STR(fake->loads[0].spec_argv0, "vllm");
	CHECK_STR(fake->loads[0].spec_gpus, "2");
	CHECK_INT(fake->loads[0].spec_port, 8000);
	CHECK_STR(fake->loads[0].spec_log, "deployments/1/replica-0.log");
	CHECK(!strncmp(fake->loads[0].spec_owner, "unitowner:instance:", 19));
	CHECK_STR(fake->loads[0].health, "/health");
	json_decref(r);
	/* the API's view comes from the runtime too */
	json_t *view = json_object();
	r = inst_row(srv);
	am_deploy_describe(srv->deploy, r, view);
	CHECK_STR(json_string_value(json_object_get(view, "pod")), "pod-1");
	CHECK_INT(json_integer_value(json_object_get(view, "port")), 8000);
	json_decref(view);
	json_decref(r);

	/* ready: its health check answered */
	fake_event(&fake->loads[0], AM_RT_READY, "0");
	run_loop(srv);
	r = inst_row(srv);
	CHECK_STR(col(r, "state"), "running");
	json_decref(r);
	json_t *dep = NULL;
	am_store_row(srv->store, &dep, "SELECT state FROM deployments WHERE id = 1", NULL);
	CHECK_STR(col(dep, "state"), "running");
	json_decref(dep);

	/* crash: the exit comes as an event; what is left is ended, the replica backs off */
	fake->loads[0].running = 0;
	am_strlcpy(fake->loads[0].status, "exit 3", sizeof fake->loads[0].status);
	fake_event(&fake->loads[0], AM_RT_EXITED, "exit 3");
	run_loop(srv);
	r = inst_row(srv);
	CHECK_STR(col(r, "state"), "backoff");
	CHECK(strstr(col(r, "reason"), "exit 3") != NULL);
	CHECK_INT(json_integer_value(json_object_get(r, "failures")), 1);
	CHECK_INT(fake->kills, 1);
	CHECK(fake->releases >= 1);
	json_decref(r);

	/* restart once the backoff is over: a new workload, counted */
	am_store_exec(srv->store, "UPDATE instances SET backoff_until = 0", NULL);
	am_deploy_kick(srv->deploy);
	run_loop(srv);
	r = inst_row(srv);
	CHECK_INT(fake->starts, 2);
	CHECK_STR(col(r, "state"), "starting");
	CHECK_STR(col(r, "rt_ref"), "pod-2");
	CHECK_INT(json_integer_value(json_object_get(r, "restarts")), 1);
	json_decref(r);
	fake_event(&fake->loads[1], AM_RT_READY, "0");
	run_loop(srv);

	/* six failed health checks in a row while running: ended and restarted */
	fake_event(&fake->loads[1], AM_RT_UNREADY, "6");
	run_loop(srv);
	r = inst_row(srv);
	CHECK_STR(col(r, "state"), "backoff");
	CHECK(strstr(col(r, "reason"), "health check") != NULL);
	CHECK_INT(fake->kills, 2);
	json_decref(r);
	am_store_exec(srv->store, "UPDATE instances SET backoff_until = 0", NULL);
	am_deploy_kick(srv->deploy);
	run_loop(srv);
	CHECK_INT(fake->starts, 3);

	/* stop: asked with a grace period, then gone, then the row goes */
	am_store_exec(srv->store, "UPDATE deployments SET desired = 'stopped' WHERE id = 1", NULL);
	am_deploy_kick(srv->deploy);
	run_loop(srv);
	CHECK_INT(fake->stops, 1);
	r = inst_row(srv);
	CHECK_STR(col(r, "state"), "stopping");
	json_decref(r);
	fake->loads[2].running = 0; /* the pod ended within its grace */
	am_deploy_kick(srv->deploy);
	run_loop(srv);
	r = inst_row(srv);
	CHECK(r == NULL);
	json_decref(r);
	am_store_row(srv->store, &dep, "SELECT state FROM deployments WHERE id = 1", NULL);
	CHECK_STR(col(dep, "state"), "stopped");
	json_decref(dep);

	am_deploy_free(srv->deploy, 0);
	free(fake);
	event_base_free(srv->base);
	am_test_db_drop(srv->store, path);
	rmdir(dir);
	am_capacity_db_cache_free(srv->capacity);
	free(srv);
}

/* An engine an older aimaas started and recorded by pid, start time, port
 * and log path: after the upgrade's migration the row names it by the
 * local runtime's reference, and the reconciler adopts it (no orphan, no
 * second engine). */
static void migration_adopts_an_older_aimaas_engine(void)
{
	size_t n, at = 0;
	const char *const *list = am_migrations_list(&n);
	while (at < n && !strstr(list[at], "ADD COLUMN rt_ref"))
		at++;
	CHECK(at < n);
	if (at >= n)
		return;
	char dir[] = "/tmp/aimaas-unit-rtmig-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[200], log[200], ver[48], err[256];
	am_fmt(path, sizeof path, "%s/aimaas.db", dir);
	am_fmt(log, sizeof log, "%s/replica-0.log", dir);
	/* the engine the older aimaas left running */
	char *argv[] = { "sleep", "30", NULL };
	char *env[] = { "PATH=/usr/bin:/bin", NULL };
	pid_t pid = 0;
	CHECK_INT(am_proc_spawn(argv, env, NULL, log, &pid, err, sizeof err), 0);
	uint64_t start = am_proc_start_time(pid);
	CHECK(start != 0);
	sqlite3 *db = NULL;
	CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
	for (size_t i = 0; i < at; i++)
		CHECK_INT(sqlite3_exec(db, list[i], NULL, NULL, NULL), SQLITE_OK);
	am_fmt(ver, sizeof ver, "PRAGMA user_version = %zu", at);
	CHECK_INT(sqlite3_exec(db, ver, NULL, NULL, NULL), SQLITE_OK);
	char *ins = sqlite3_mprintf(
		"INSERT INTO models(id, name, source, path, state, kind, facts, created_by, created_at, updated_at)"
		" VALUES(1, 'm', 'local', '/models/m', 'ready', 'llm', '{}', 'admin', 1, 1);"
		"INSERT INTO deployments(id, name, model_id, engine, replicas, gpus_per_replica, desired, state, created_by,"
		" created_at, updated_at) VALUES(1, 'chat', 1, 'vllm', 1, 1, 'running', 'running', 'admin', 1, 1);"
		"INSERT INTO instances(id, deployment_id, replica, node_id, gpu_indices, api_key, state, port, pid, pid_start,"
		" log_path, created_at, updated_at) VALUES(5, 1, 0, 'local', '[0]', 'k', 'running', 41999, %d, %lld, %Q, 1, 1),"
		" (6, 1, 1, 'local', '[1]', 'k', 'backoff', 42000, NULL, NULL, %Q, 1, 1);"
		"INSERT INTO ft_jobs(name, base_model_id, datasets, method, stage, template, params, gpu_count, state, pid,"
		" pid_start, job_dir, output_name, created_by, created_at, updated_at)"
		" VALUES('j', 1, '[]', 'lora', 'sft', 'qwen', '{}', 1, 'running', 77, 88, '/jobs/1', 'o', 'admin', 1, 1);",
		(int)pid, (long long)start, log, log);
	CHECK_INT(sqlite3_exec(db, ins, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_free(ins);
	sqlite3_close(db);

	struct am_server *srv = am_calloc(1, sizeof *srv);
	CHECK_INT(am_store_open(path, &srv->store, err, sizeof err), 0);
	if (!srv->store)
		goto out;
	char want[300];
	am_fmt(want, sizeof want, "%d:%llu:%s", (int)pid, (unsigned long long)start, log);
	json_t *r = NULL;
	am_store_row(srv->store, &r, "SELECT runtime, address, rt_ref FROM instances WHERE id = 5", NULL);
	CHECK_STR(col(r, "runtime"), "local");
	CHECK_STR(col(r, "address"), "127.0.0.1:41999");
	CHECK_STR(col(r, "rt_ref"), want);
	json_decref(r);
	am_fmt(want, sizeof want, "0:0:%s", log); /* nothing runs: its log is still found */
	am_store_row(srv->store, &r, "SELECT rt_ref FROM instances WHERE id = 6", NULL);
	CHECK_STR(col(r, "rt_ref"), want);
	json_decref(r);
	am_store_row(srv->store, &r, "SELECT runtime, node_id, rt_ref FROM ft_jobs WHERE name = 'j'", NULL);
	CHECK_STR(col(r, "rt_ref"), "77:88:/jobs/1/train.log");
	CHECK_STR(col(r, "node_id"), "local");
	json_decref(r);

	/* the upgraded aimaas adopts the engine */
	am_strlcpy(srv->cfg.data_dir, dir, sizeof srv->cfg.data_dir);
	srv->base = event_base_new();
	char logs[300];
	am_fmt(logs, sizeof logs, "%s/logs", dir);
	am_runtimes_add(&srv->runtimes, am_rt_local_new(srv->base, logs));
	srv->deploy = am_deploy_new(srv);
	CHECK_INT(am_deploy_start(srv->deploy), 0);
	long long iid = 0;
	CHECK_INT(am_deploy_owns_pid(srv->deploy, pid, &iid), 1);
	CHECK_INT(iid, 5);
	am_store_row(srv->store, &r, "SELECT state FROM instances WHERE id = 5", NULL);
	CHECK_STR(col(r, "state"), "running");
	json_decref(r);
	char lf[300];
	CHECK_INT(am_deploy_log_file(srv->deploy, 1, "1", lf, sizeof lf), 0); /* replica 1: not running, its log known */
	CHECK_STR(lf, log);
	am_deploy_free(srv->deploy, 0);
	CHECK(am_proc_same(pid, start)); /* engines outlive aimaas */
	am_runtimes_free(&srv->runtimes);
	event_base_free(srv->base);
	am_store_close(srv->store);
out:
	am_capacity_db_cache_free(srv->capacity);
	free(srv);
	am_proc_kill_group(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	static const char *const files[] = { "aimaas.db", "aimaas.db-wal", "aimaas.db-shm", "replica-0.log", "engine.key" };
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		char p[300];
		am_fmt(p, sizeof p, "%s/%s", dir, files[i]);
		unlink(p);
	}
	rmdir(dir);
}

/* The local runtime: a spec becomes a process in its own group with its
 * log, named by "<pid>:<start>:<log>"; aimaas's secrets stay out of its
 * environment; a stop asks (SIGTERM), then the status says it ended. */
static void local_runtime_start_status_stop(void)
{
	char dir[] = "/tmp/aimaas-unit-rtl-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	struct event_base *base = event_base_new();
	struct am_runtime *rt = am_rt_local_new(base, dir);
	CHECK_STR(am_runtime_name(rt), "local");
	setenv("AIMAAS_ADMIN_PASSWORD", "hunter22", 1);
	char *argv[] = { "sh", "-c", "echo up; env; exec sleep 30", NULL };
	char *env[] = { "MY_VAR=1", NULL };
	struct am_rt_spec spec = { .kind = "instance", .id = 9, .argv = argv, .env = env, .node = "local", .gpus = "",
				   .log_name = "deployments/9/replica-0.log", .note = "starting for a test",
				   .owner = "unitowner:instance:9:tok", .port = 41999 };
	char ref[AM_RT_REF_MAX], err[256], log[300], want[300];
	CHECK_INT(rt->ops->start(rt, &spec, ref, sizeof ref, err, sizeof err), 0);
	am_fmt(want, sizeof want, "%s/deployments/9/replica-0.log", dir);
	CHECK_INT(rt->ops->log_file(rt, ref, log, sizeof log), 0);
	CHECK_STR(log, want);
	int pid = (int)strtol(ref, NULL, 10);
	CHECK(pid > 1);
	CHECK_INT(getpgid(pid), pid);
	CHECK_INT(rt->ops->status(rt, ref, NULL, 0), AM_RT_RUNNING);
	char host[64];
	int port = 0;
	CHECK_INT(rt->ops->endpoint(rt, ref, host, sizeof host, &port), 0);
	CHECK_STR(host, "127.0.0.1");
	CHECK_INT(port, 41999);
	CHECK_INT(rt->ops->owns_pid(rt, ref, pid), 1);
	CHECK_INT(rt->ops->owns_pid(rt, ref, getpid()), 0);
	json_t *desc = rt->ops->describe(rt, ref);
	CHECK_INT(json_integer_value(json_object_get(desc, "pid")), pid);
	json_decref(desc);
	char found[AM_RT_REF_MAX];
	am_rt_local_ref(pid, am_proc_start_time(pid), found, sizeof found);
	CHECK_INT(rt->ops->same(rt, ref, found), 1); /* found by its marker: the same workload */
	for (int i = 0; i < 100; i++) { /* its output reaches the log */
		char **lines;
		int n = am_runtime_tail(rt, ref, 200, &lines);
		int seen = 0;
		for (int k = 0; k < n; k++)
			seen |= !strcmp(lines[k], "MY_VAR=1");
		for (int k = 0; k < n; k++)
			CHECK(strstr(lines[k], "hunter22") == NULL);
		am_runtime_lines_free(lines, n);
		if (seen)
			break;
		usleep(20000);
	}
	char **lines;
	int n = am_runtime_tail(rt, ref, 200, &lines);
	CHECK(n >= 2);
	if (n >= 2) {
		CHECK(strstr(lines[0], "starting for a test") != NULL);
		CHECK_STR(lines[1], "up");
	}
	am_runtime_lines_free(lines, n);
	rt->ops->stop(rt, ref, 10000);
	enum am_rt_status st = AM_RT_RUNNING;
	char status[32] = "";
	for (int i = 0; i < 200 && st != AM_RT_ENDED; i++) {
		usleep(10000);
		st = rt->ops->status(rt, ref, status, sizeof status);
	}
	CHECK_INT(st, AM_RT_ENDED);
	CHECK_STR(status, "signal 15");
	rt->ops->release(rt, ref);
	unsetenv("AIMAAS_ADMIN_PASSWORD");
	/* a program that is not there: an error, nothing started */
	char *bad[] = { "/nonexistent/engine", NULL };
	spec.argv = bad;
	CHECK_INT(rt->ops->start(rt, &spec, ref, sizeof ref, err, sizeof err), -1);
	CHECK(strstr(err, "was not found") != NULL);
	am_runtime_free(rt);
	event_base_free(base);
	unlink(want);
	am_fmt(want, sizeof want, "%s/deployments/9", dir);
	rmdir(want);
	am_fmt(want, sizeof want, "%s/deployments", dir);
	rmdir(want);
	rmdir(dir);
}

void suite_runtime(void)
{
	RUN(local_runtime_start_status_stop);
	RUN(reconciler_drives_a_second_runtime);
	RUN(migration_adopts_an_older_aimaas_engine);
}
