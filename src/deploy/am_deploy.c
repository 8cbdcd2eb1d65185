/* am_deploy: the deployment reconciler and engine supervisor. */
#include "am_deploy.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../am_server.h"
#include "../base/am_buf.h"
#include "../base/am_json.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_series.h"
#include "../base/am_rand.h"
#include "../base/am_time.h"
#include "../gateway/am_gateway.h"
#include "../gpu/am_inventory.h"
#include "../http/am_client.h"
#include "../node/am_node.h"
#include "../runtime/am_proc.h"
#include "../store/am_store.h"
#include "../task/am_task.h"

extern char **environ;

#define MAX_FAILURES 5
#define STARTUP_TIMEOUT_NS (30ull * 60 * 1000000000ull)
#define STOP_GRACE_NS (15ull * 1000000000ull)
#define LOG_CAP (50ull << 20)
#define PORT_BASE 41000
#define PORT_SPAN 9000

/* What the supervisor holds for one live instance; the database holds the rest. */
struct handle {
	struct am_deploy *d;
	long long id, dep_id;
	pid_t pid;
	int pidfd;
	struct event *exit_ev;
	int port;
	char key[80];
	char health[64];
	struct am_client_req *probe, *scrape;
	uint64_t next_probe_ns, next_scrape_ns, stop_deadline_ns;
	uint64_t probe_sent_ns;    /* when the probe in flight was sent */
	int probe_fails;
	int exited;
	char exit_status[32];
	double running, waiting, kv, gen_total, prompt_total, tok_s, gen_prev;
	uint64_t gen_prev_ns;
	struct handle *next;
};

/* A deployment's serving metrics over time, for the console's charts. */
struct dep_hist {
	long long dep_id;
	struct am_series s;
};

struct am_deploy {
	struct am_server *srv;
	struct event *tick;
	struct event *kick;
	struct handle *handles;
	int kicked;
	uint64_t scrape_ns;        /* how often engines' /metrics are read (AIMAAS_SCRAPE_MS) */
	uint64_t next_hist_ns;
	struct dep_hist *hist;
	int nhist;
	unsigned char secret[32];  /* engine keys derive from it (<data>/engine.key) */
	int secret_ok;
};

#define HIST_CAP 720 /* an hour at the default 5 s */

static void reconcile(struct am_deploy *d);
static void started(struct am_deploy *d, long long id, long long dep_id, pid_t pid, uint64_t start, int port,
		    const char *key, const char *engine, int restarted);

/* ---- handles ---- */

static struct handle *find(struct am_deploy *d, long long id)
{
	for (struct handle *h = d->handles; h; h = h->next)
		if (h->id == id)
			return h;
	return NULL;
}

static void handle_free(struct am_deploy *d, struct handle *h)
{
	for (struct handle **p = &d->handles; *p; p = &(*p)->next)
		if (*p == h) {
			*p = h->next;
			break;
		}
	am_client_cancel(h->probe);
	am_client_cancel(h->scrape);
	if (h->exit_ev)
		event_free(h->exit_ev);
	if (h->pidfd >= 0)
		close(h->pidfd);
	free(h);
}

static void on_exit_ev(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct handle *h = arg;
	if (h->exited)
		return;
	h->exited = 1;
	am_proc_reap(h->pid, h->exit_status, sizeof h->exit_status);
	event_del(h->exit_ev);
	am_deploy_kick(h->d);
}

static struct handle *watch(struct am_deploy *d, long long id, long long dep_id, pid_t pid, int port, const char *key,
			    const char *health)
{
	struct handle *h = find(d, id);
	if (!h) {
		h = am_calloc(1, sizeof *h);
		h->d = d;
		h->id = id;
		h->pidfd = -1;
		h->next = d->handles;
		d->handles = h;
	}
	h->dep_id = dep_id;
	h->pid = pid;
	h->port = port;
	h->exited = 0;
	h->exit_status[0] = '\0';
	h->probe_fails = 0;
	h->next_probe_ns = 0;
	if (am_deploy_engine_key(d, key, h->key, sizeof h->key) != 0)
		h->key[0] = '\0'; /* its probes go unauthenticated: /health needs none */
	am_strlcpy(h->health, health, sizeof h->health);
	if (h->exit_ev) {
		event_free(h->exit_ev);
		h->exit_ev = NULL;
	}
	if (h->pidfd >= 0)
		close(h->pidfd);
	h->pidfd = am_proc_pidfd(pid);
	if (h->pidfd >= 0) {
		h->exit_ev = event_new(d->srv->base, h->pidfd, EV_READ | EV_PERSIST, on_exit_ev, h);
		event_add(h->exit_ev, NULL);
	}
	return h;
}

/* Exited, by the pidfd or (without one) by looking. */
static int gone(struct handle *h, long long pid_start)
{
	if (!h->exited && h->pidfd < 0 && !am_proc_same(h->pid, (uint64_t)pid_start)) {
		h->exited = 1;
		am_proc_reap(h->pid, h->exit_status, sizeof h->exit_status);
	}
	return h->exited;
}

/* ---- the GPUs as the planner sees them ---- */

int am_deploy_owns_pid(struct am_deploy *d, int pid, long long *instance_id)
{
	pid_t pgid = getpgid(pid);
	for (struct handle *h = d->handles; h; h = h->next)
		if (h->pid == pid || (pgid > 0 && pgid == h->pid)) {
			if (instance_id)
				*instance_id = h->id;
			return 1;
		}
	return 0;
}

int am_deploy_gpus(struct am_deploy *d, struct am_plan_gpu *out, int max)
{
	struct am_server *srv = d->srv;
	struct am_inventory_snapshot *snap = am_malloc(sizeof *snap);
	am_inventory_get(srv->inv, snap);
	json_t *res = NULL, *jobs = NULL;
	/* training jobs' process groups: their memory is reserved, not "other" */
	am_store_rows(srv->store, &jobs, "SELECT pid FROM ft_jobs WHERE pid IS NOT NULL"
		      " AND state IN ('starting','running','stopping')", NULL);
	am_store_rows(srv->store, &res,
		      "SELECT r.gpu_id, r.bytes, d.name FROM gpu_reservations r"
		      " LEFT JOIN instances i ON r.owner_kind = 'instance' AND i.id = r.owner_id"
		      " LEFT JOIN deployments d ON d.id = i.deployment_id ORDER BY r.id", NULL);
	int n = 0;
	for (int i = 0; i < snap->n && n < max; i++) {
		const struct am_gpu_info *g = &snap->gpus[i];
		struct am_plan_gpu *p = &out[n++];
		memset(p, 0, sizeof *p);
		am_strlcpy(p->id, g->uuid, sizeof p->id);
		am_strlcpy(p->name, g->name, sizeof p->name);
		p->index = g->index;
		p->total = g->mem_total;
		p->cc_major = g->cc_major;
		p->cc_minor = g->cc_minor;
		struct am_buf who;
		am_buf_init(&who, sizeof p->holders - 1);
		size_t k;
		json_t *r;
		json_array_foreach(res, k, r) {
			if (strcmp(json_string_value(json_object_get(r, "gpu_id")), g->uuid) != 0)
				continue;
			uint64_t b = (uint64_t)json_integer_value(json_object_get(r, "bytes"));
			p->reserved += b;
			const char *dn = json_string_value(json_object_get(r, "name"));
			am_buf_printf(&who, "%s%s %.1f GiB", who.len ? ", " : "", dn ? dn : "a training job", b / GIB);
		}
		am_strlcpy(p->holders, am_buf_str(&who), sizeof p->holders);
		am_buf_free(&who);
		if (!g->simulated) { /* what others use: the card's figure less our engines' processes */
			uint64_t ours = 0;
			for (int k2 = 0; k2 < g->nprocs; k2++) {
				int mine = am_deploy_owns_pid(d, g->procs[k2].pid, NULL);
				pid_t pgid = getpgid(g->procs[k2].pid);
				size_t j;
				json_t *jr;
				json_array_foreach(jobs, j, jr) {
					pid_t jp = (pid_t)json_integer_value(json_object_get(jr, "pid"));
					mine |= jp == g->procs[k2].pid || (pgid > 0 && jp == pgid);
				}
				if (mine)
					ours += g->procs[k2].used_bytes;
			}
			p->used_other = g->mem_used > ours ? g->mem_used - ours : 0;
		}
	}
	json_decref(res);
	json_decref(jobs);
	free(snap);
	return n;
}

void am_deploy_binary(struct am_deploy *d, const struct am_engine_def *e, char *out, size_t size)
{
	json_t *row = NULL;
	am_store_row(d->srv->store, &row, "SELECT binary FROM engine_settings WHERE name = ?", "s", e->name);
	const char *b = row ? json_string_value(json_object_get(row, "binary")) : NULL;
	if (b && *b) {
		am_strlcpy(out, b, size);
	} else if (!strcmp(e->name, "aimaas-sim")) {
		/* the simulator ships next to aimaas */
		char self[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
		if (n > 0) {
			self[n] = '\0';
			char *slash = strrchr(self, '/');
			if (slash) {
				*slash = '\0';
				am_fmt(out, size, "%s/aimaas-sim", self);
				if (access(out, X_OK) == 0) {
					json_decref(row);
					return;
				}
			}
		}
		am_strlcpy(out, e->default_binary, size);
	} else {
		am_strlcpy(out, e->default_binary, size);
	}
	json_decref(row);
}

/* ---- engine keys ---- */

/* The secret engine keys derive from, made at first use: 32 random bytes
 * in <data>/engine.key (0600), never in the database. */
static int engine_secret(struct am_deploy *d)
{
	if (d->secret_ok)
		return 0;
	char p[PATH_MAX], tmp[PATH_MAX + 8];
	am_fmt(p, sizeof p, "%s/engine.key", d->srv->cfg.data_dir);
	int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		ssize_t r = read(fd, d->secret, sizeof d->secret);
		close(fd);
		if (r == (ssize_t)sizeof d->secret)
			return d->secret_ok = 1, 0;
		am_error("deploy", "%s is not %zu bytes", p, sizeof d->secret);
		return -1;
	}
	if (errno != ENOENT)
		return -1;
	unsigned char s[32];
	randombytes_buf(s, sizeof s);
	am_fmt(tmp, sizeof tmp, "%s.tmp", p);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	int ok = fd >= 0 && write(fd, s, sizeof s) == (ssize_t)sizeof s && fsync(fd) == 0;
	if (fd >= 0)
		close(fd);
	if (!ok || rename(tmp, p) != 0) {
		unlink(tmp);
		return -1;
	}
	memcpy(d->secret, s, sizeof s);
	sodium_memzero(s, sizeof s);
	d->secret_ok = 1;
	return 0;
}

int am_deploy_engine_key(struct am_deploy *d, const char *stored, char *out, size_t size)
{
	if (!stored || strncmp(stored, "amn_", 4) != 0) { /* a key an older aimaas kept in the database */
		am_strlcpy(out, stored ? stored : "", size);
		return 0;
	}
	out[0] = '\0';
	if (!d || size < 69 || engine_secret(d) != 0)
		return -1;
	unsigned char h[32];
	char hex[65];
	crypto_generichash(h, sizeof h, (const unsigned char *)stored, strlen(stored), d->secret, sizeof d->secret);
	sodium_bin2hex(hex, sizeof hex, h, sizeof h);
	am_fmt(out, size, "ame_%s", hex);
	return 0;
}

/* ---- building a command ---- */

static json_t *parse_col(json_t *row, const char *k)
{
	const char *s = json_string_value(json_object_get(row, k));
	return s ? json_loads(s, 0, NULL) : NULL;
}

/* Where an instance's private engine config (SGLang's key) lives. */
static void secret_path(struct am_deploy *d, json_t *inst, char *out, size_t size)
{
	am_fmt(out, size, "%s/run/instance-%lld.yaml", d->srv->cfg.data_dir,
	       (long long)json_integer_value(json_object_get(inst, "id")));
}

static int build_command(struct am_deploy *d, json_t *dep, json_t *model, json_t *inst, struct am_argv *argv,
			 struct am_argv *env, char **secret, struct am_err *err)
{
	const char *ename = json_string_value(json_object_get(dep, "engine"));
	const struct am_engine_def *e = am_engine_find(ename ? ename : "");
	if (!e)
		return am_err_set(err, AM_E_INVALID, "engine", "unknown engine '%s'", ename ? ename : "");
	char bin[PATH_MAX];
	am_deploy_binary(d, e, bin, sizeof bin);
	json_t *facts = json_object_get(model, "facts");
	const char *path = json_string_value(json_object_get(model, "path"));
	const char *gguf = json_string_value(json_object_get(facts, "gguf_file"));
	json_t *indices = parse_col(inst, "gpu_indices");
	struct am_buf vis;
	am_buf_init(&vis, 512);
	size_t i;
	json_t *v;
	json_array_foreach(indices, i, v)
		am_buf_printf(&vis, "%s%lld", i ? "," : "", (long long)json_integer_value(v));
	json_t *extra = parse_col(dep, "engine_args"), *envj = parse_col(dep, "env"), *loras = parse_col(dep, "lora_modules");
	json_t *settings = NULL;
	am_store_row(d->srv->store, &settings, "SELECT argv, env_allow, args_allow FROM engine_settings WHERE name = ?", "s",
		     e->name);
	json_t *custom = settings ? parse_col(settings, "argv") : NULL;
	json_t *env_allow = settings ? parse_col(settings, "env_allow") : NULL;
	json_t *args_allow = settings ? parse_col(settings, "args_allow") : NULL;
	char spath[PATH_MAX], key[96];
	secret_path(d, inst, spath, sizeof spath);
	int keyrc = am_deploy_engine_key(d, json_string_value(json_object_get(inst, "api_key")), key, sizeof key);
	int needs_code = json_is_true(json_object_get(facts, "needs_remote_code"));
	struct am_launch l = {
		.binary = bin,
		.model_path = e->wants_gguf && gguf ? gguf : path ? path : "",
		.served_name = json_string_value(json_object_get(dep, "name")),
		.kind = json_string_value(json_object_get(model, "kind")) ?: "llm",
		.host = "127.0.0.1",
		.port = (int)json_integer_value(json_object_get(inst, "port")),
		.api_key = key,
		.tp = (int)json_array_size(indices) ? (int)json_array_size(indices) : 1,
		.cuda_visible = am_buf_str(&vis),
		.max_model_len = (int)json_integer_value(json_object_get(dep, "max_model_len")),
		.max_num_seqs = (int)json_integer_value(json_object_get(dep, "max_num_seqs")),
		.mem_fraction = json_number_value(json_object_get(inst, "mem_fraction")),
		.dtype = json_string_value(json_object_get(inst, "dtype")),
		.trust_remote_code = needs_code && json_integer_value(json_object_get(dep, "trust_remote_code")),
		.lora_modules = loras,
		.max_lora_rank = 64,
		.extra_args = extra,
		.env = envj,
		.custom_argv = custom,
		.secret_path = spath,
		.secret_body = secret,
	};
	/* what the API checks, again: a row written before a rule existed
	 * (or by hand) never reaches an engine */
	int rc = -1;
	if (keyrc != 0)
		am_err_set(err, AM_E_INTERNAL, "", "could not read or create %s/engine.key", d->srv->cfg.data_dir);
	else if (am_engine_check_env(envj, env_allow, err) == 0 && am_engine_check_args(e, extra, args_allow, err) == 0)
		rc = e->build(&l, argv, env, err);
	json_decref(env_allow);
	json_decref(args_allow);
	json_decref(indices);
	json_decref(extra);
	json_decref(envj);
	json_decref(loras);
	json_decref(custom);
	json_decref(settings);
	am_buf_free(&vis);
	return rc;
}

int am_deploy_command(struct am_deploy *d, json_t *dep, json_t *model, json_t *inst, struct am_argv *argv,
		      struct am_argv *env, struct am_err *err)
{
	return build_command(d, dep, model, inst, argv, env, NULL, err);
}

/* The child's environment: aimaas's own (PATH, CUDA and proxy settings an
 * operator set), less its secrets (AIMAAS_* named as secrets) and less what
 * the engine sets, then the engine's, each name once. */
char **am_deploy_child_env(const struct am_argv *set)
{
	struct am_argv all = { 0 };
	for (char **e = environ; e && *e; e++) {
		size_t nl = strcspn(*e, "=");
		/* aimaas's own secrets (the admin password, a metrics token, ...) */
		if (!strncmp(*e, "AIMAAS_", 7) && am_engine_secret_name(*e, nl))
			continue;
		int overridden = 0;
		for (int i = 0; i < set->n && !overridden; i++)
			overridden = !strncmp(set->v[i], *e, nl) && set->v[i][nl] == '=';
		if (!overridden)
			am_argv_add(&all, *e);
	}
	/* each name once, the first given winning: what aimaas sets comes
	 * before what a user set (an engine reads the first of two) */
	for (int i = 0; i < set->n; i++) {
		size_t nl = strcspn(set->v[i], "=");
		int dup = 0;
		for (int j = 0; j < i && !dup; j++)
			dup = !strncmp(set->v[j], set->v[i], nl) && set->v[j][nl] == '=';
		if (!dup)
			am_argv_add(&all, set->v[i]);
	}
	return all.v;
}

void am_deploy_strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

/* ---- instance life ---- */

static int pick_port(struct am_deploy *d)
{
	long long base = PORT_BASE + (am_wall_ms() % PORT_SPAN);
	for (int k = 0; k < PORT_SPAN; k++) {
		int port = PORT_BASE + (int)((base - PORT_BASE + k) % PORT_SPAN);
		long long taken = 0;
		am_store_int(d->srv->store, &taken, 0, "SELECT COUNT(*) FROM instances WHERE port = ?", "i", (long long)port);
		if (!taken && am_proc_port_free(port))
			return port;
	}
	return 0;
}

static void set_inst(struct am_deploy *d, long long id, const char *state, const char *reason)
{
	am_store_exec(d->srv->store, "UPDATE instances SET state = ?, reason = COALESCE(?, reason), updated_at = ? WHERE id = ?",
		      "ssii", state, reason, am_wall_ms(), id);
}

static void log_line(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_line(const char *path, const char *fmt, ...)
{
	FILE *f = fopen(path, "ae");
	if (!f)
		return;
	char ts[40];
	am_time_iso(am_wall_ms(), ts, sizeof ts);
	fprintf(f, "=== aimaas %s: ", ts);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputs(" ===\n", f);
	fclose(f);
}

static void fail_or_backoff(struct am_deploy *d, json_t *inst, const char *reason, int count)
{
	long long id = json_integer_value(json_object_get(inst, "id"));
	long long failures = json_integer_value(json_object_get(inst, "failures")) + (count ? 1 : 0);
	long long now = am_wall_ms();
	/* a crash after a long healthy run starts the count afresh */
	long long ready = json_integer_value(json_object_get(inst, "ready_at"));
	if (count && ready && now - ready > 10LL * 60 * 1000)
		failures = 1;
	if (failures >= MAX_FAILURES) {
		char r[600];
		am_fmt(r, sizeof r, "gave up after %lld failed starts: %s", failures, reason);
		am_store_exec(d->srv->store, "UPDATE instances SET state = 'failed', reason = ?, failures = ?, pid = NULL,"
			      " stopped_at = ?, updated_at = ? WHERE id = ?", "siiii", r, failures, now, now, id);
		am_warn("deploy", "instance %lld failed: %s", id, r);
		return;
	}
	long long wait = 1000LL << (failures > 0 ? failures - 1 : 0);
	if (wait > 60000)
		wait = 60000;
	am_store_exec(d->srv->store, "UPDATE instances SET state = 'backoff', reason = ?, failures = ?, pid = NULL,"
		      " backoff_until = ?, stopped_at = ?, updated_at = ? WHERE id = ?", "siiiii", reason, failures, now + wait,
		      now, now, id);
	am_warn("deploy", "instance %lld stopped (%s); restarting in %lld ms", id, reason, wait);
}

/* The engine's private config (SGLang's key), readable by aimaas alone. */
static int write_secret(struct am_deploy *d, json_t *inst, const char *body, struct am_err *err)
{
	char dir[PATH_MAX], path[PATH_MAX];
	am_fmt(dir, sizeof dir, "%s/run", d->srv->cfg.data_dir);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return am_err_set(err, AM_E_INTERNAL, "", "could not create %s: %s", dir, strerror(errno));
	secret_path(d, inst, path, sizeof path);
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	size_t len = strlen(body);
	if (fd < 0 || write(fd, body, len) != (ssize_t)len) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return am_err_set(err, AM_E_INTERNAL, "", "could not write %s: %s", path, strerror(e));
	}
	close(fd);
	return 0;
}

/* Makes what this pass wrote durable before something outside the
 * database (a process) depends on it: commits the reconciler's transaction
 * and opens the next. 0, or -1 when the commit failed (rolled back). */
static int commit_point(struct am_store *st)
{
	if (!am_store_in_tx(st))
		return 0;
	if (am_store_commit(st) != 0) {
		am_store_rollback(st);
		am_store_begin(st);
		return -1;
	}
	return am_store_begin(st);
}

static void spawn(struct am_deploy *d, json_t *dep, json_t *model, json_t *inst)
{
	long long id = json_integer_value(json_object_get(inst, "id"));
	struct am_err err;
	am_err_clear(&err);
	if (!json_string_value(json_object_get(model, "path"))) {
		fail_or_backoff(d, inst, "the model has no local files (not downloaded)", 1);
		return;
	}
	int port = (int)json_integer_value(json_object_get(inst, "port"));
	if (!port || !am_proc_port_free(port)) {
		port = pick_port(d);
		if (!port) {
			fail_or_backoff(d, inst, "no free port for the engine", 1);
			return;
		}
		am_store_exec(d->srv->store, "UPDATE instances SET port = ? WHERE id = ?", "ii", (long long)port, id);
		json_object_set_new(inst, "port", json_integer(port));
	}
	struct am_argv argv = { 0 }, env = { 0 };
	char *secret = NULL;
	if (build_command(d, dep, model, inst, &argv, &env, &secret, &err) != 0 ||
	    (secret && write_secret(d, inst, secret, &err) != 0)) {
		fail_or_backoff(d, inst, err.msg, 1);
		am_argv_free(&argv);
		am_argv_free(&env);
		free(secret);
		return;
	}
	free(secret);
	char logdir[PATH_MAX], logpath[PATH_MAX + 64];
	long long dep_id = json_integer_value(json_object_get(dep, "id"));
	am_fmt(logdir, sizeof logdir, "%s/logs/deployments/%lld", d->srv->cfg.data_dir, dep_id);
	char mk[PATH_MAX];
	am_fmt(mk, sizeof mk, "%s/logs", d->srv->cfg.data_dir);
	mkdir(mk, 0750);
	am_fmt(mk, sizeof mk, "%s/logs/deployments", d->srv->cfg.data_dir);
	mkdir(mk, 0750);
	mkdir(logdir, 0750);
	am_fmt(logpath, sizeof logpath, "%s/replica-%lld.log", logdir, (long long)json_integer_value(json_object_get(inst, "replica")));
	log_line(logpath, "starting %s (attempt %lld) on GPUs %s, port %d", argv.v[0],
		 (long long)json_integer_value(json_object_get(inst, "restarts")) + 1,
		 json_string_value(json_object_get(inst, "gpu_indices")), port);
	chmod(logpath, 0640); /* one written 0644 by an older aimaas */
	/* the intent first: a kill between the spawn and the pid's commit leaves
	 * an engine that carries this marker, which the next start adopts */
	char marker[128];
	am_proc_marker(d->srv->owner_id, "instance", id, marker, sizeof marker);
	am_store_exec(d->srv->store, "UPDATE instances SET log_path = ?, spawn_marker = ? WHERE id = ?", "ssi", logpath, marker, id);
	if (commit_point(d->srv->store) != 0) {
		am_argv_free(&argv);
		am_argv_free(&env);
		return; /* nothing started; the next pass tries again */
	}
	char **envp = am_deploy_child_env(&env);
	pid_t pid;
	char serr[300];
	int rc = am_proc_spawn(argv.v, envp, marker, logpath, &pid, serr, sizeof serr);
	am_deploy_strv_free(envp);
	am_argv_free(&argv);
	am_argv_free(&env);
	if (rc != 0) {
		log_line(logpath, "%s", serr);
		fail_or_backoff(d, inst, serr, 1);
		return;
	}
	started(d, id, dep_id, pid, am_proc_start_time(pid), port, json_string_value(json_object_get(inst, "api_key")),
		json_string_value(json_object_get(dep, "engine")), json_integer_value(json_object_get(inst, "started_at")) != 0);
	am_info("deploy", "started %s replica %lld: pid %d, port %d", json_string_value(json_object_get(dep, "name")),
		(long long)json_integer_value(json_object_get(inst, "replica")), (int)pid, port);
}

/* Records a started (or adopted) engine and watches it. */
static void started(struct am_deploy *d, long long id, long long dep_id, pid_t pid, uint64_t start, int port,
		    const char *key, const char *engine, int restarted)
{
	long long now = am_wall_ms();
	am_store_exec(d->srv->store, "UPDATE instances SET state = 'starting', reason = '', pid = ?, pid_start = ?,"
		      " started_at = ?, ready_at = NULL, restarts = restarts + ?, updated_at = ? WHERE id = ?", "iiiiii",
		      (long long)pid, (long long)start, now, (long long)(restarted ? 1 : 0), now, id);
	const struct am_engine_def *e = am_engine_find(engine);
	watch(d, id, dep_id, pid, port, key ? key : "", e ? e->health_path : "/health");
}

int am_deploy_claim(struct am_deploy *d, pid_t pid, uint64_t start, const char *marker, long long id)
{
	struct am_store *st = d->srv->store;
	json_t *inst = NULL;
	am_store_row(st, &inst, "SELECT i.*, d.engine FROM instances i JOIN deployments d ON d.id = i.deployment_id"
		     " WHERE i.id = ?", "i", id);
	int rc = 0;
	if (!inst)
		goto out;
	if (json_integer_value(json_object_get(inst, "pid")) == pid &&
	    (uint64_t)json_integer_value(json_object_get(inst, "pid_start")) == start) {
		rc = 1; /* already adopted by its recorded pid */
		goto out;
	}
	const char *state = json_string_value(json_object_get(inst, "state"));
	const char *want = json_string_value(json_object_get(inst, "spawn_marker"));
	pid_t rec = (pid_t)json_integer_value(json_object_get(inst, "pid"));
	if (!want || strcmp(want, marker) || find(d, id) ||
	    (rec > 0 && am_proc_same(rec, (uint64_t)json_integer_value(json_object_get(inst, "pid_start")))) ||
	    (strcmp(state, "pending") && strcmp(state, "backoff") && strcmp(state, "starting")))
		goto out;
	am_info("deploy", "adopted engine pid %d of instance %lld: aimaas stopped before it recorded the start", (int)pid, id);
	started(d, id, json_integer_value(json_object_get(inst, "deployment_id")), pid, start,
		(int)json_integer_value(json_object_get(inst, "port")), json_string_value(json_object_get(inst, "api_key")),
		json_string_value(json_object_get(inst, "engine")), json_integer_value(json_object_get(inst, "started_at")) != 0);
	rc = 1;
out:
	json_decref(inst);
	return rc;
}

#define PROBE_TIMEOUT_MS 2000
/* A probe's answer is judged when the loop gets to it: one that took this
 * much longer than its timeout found the loop busy (its timer fired late,
 * and the engine's answer may be waiting unread), which says nothing of the
 * engine. */
#define PROBE_LATE_NS 500000000ull

static void on_probe(int status, const char *body, size_t len, void *data)
{
	(void)body;
	(void)len;
	struct handle *h = data;
	h->probe = NULL;
	uint64_t took = am_now_ns() - h->probe_sent_ns;
	if (status != 200 && took > PROBE_TIMEOUT_MS * 1000000ull + PROBE_LATE_NS) {
		am_info("deploy", "health check of instance %lld: no answer, but the loop was %.0f ms late; not counted",
			h->id, (double)(took - PROBE_TIMEOUT_MS * 1000000ull) / 1e6);
		h->next_probe_ns = 0; /* ask again at the next tick */
	} else if (status == 200) {
		h->probe_fails = 0;
		long long now = am_wall_ms();
		am_store_exec(h->d->srv->store, "UPDATE instances SET state = 'running', reason = '', ready_at = COALESCE(ready_at, ?),"
			      " updated_at = ? WHERE id = ? AND state IN ('starting', 'running') AND ready_at IS NULL", "iii", now, now, h->id);
		am_store_exec(h->d->srv->store, "UPDATE instances SET state = 'running', updated_at = ? WHERE id = ? AND state = 'starting'",
			      "ii", now, h->id);
	} else {
		h->probe_fails++;
		if (took >= PROBE_TIMEOUT_MS * 1000000ull) /* not the quick refusals of an engine still starting */
			am_info("deploy", "health check of instance %lld timed out (%d in a row)", h->id, h->probe_fails);
	}
	am_deploy_kick(h->d);
}

static double metric(const char *text, const char *name)
{
	double sum = 0;
	size_t nl = strlen(name);
	for (const char *p = text; (p = strstr(p, name)); p += nl) {
		if (p != text && p[-1] != '\n')
			continue;
		const char *sp = p + nl;
		if (*sp == '{')
			sp = strchr(sp, '}');
		if (!sp)
			break;
		sum += strtod(sp + 1, NULL);
	}
	return sum;
}

static void on_scrape(int status, const char *body, size_t len, void *data)
{
	(void)len;
	struct handle *h = data;
	h->scrape = NULL;
	if (status != 200)
		return;
	h->running = metric(body, "vllm:num_requests_running");
	h->waiting = metric(body, "vllm:num_requests_waiting");
	h->kv = metric(body, "vllm:kv_cache_usage_perc");
	h->prompt_total = metric(body, "vllm:prompt_tokens_total");
	double gen = metric(body, "vllm:generation_tokens_total");
	uint64_t now = am_now_ns();
	if (h->gen_prev_ns && now > h->gen_prev_ns && gen >= h->gen_prev)
		h->tok_s = (gen - h->gen_prev) / ((double)(now - h->gen_prev_ns) / 1e9);
	h->gen_prev = gen;
	h->gen_prev_ns = now;
	h->gen_total = gen;
}

/* The exit of an instance that was not being stopped. */
static void crashed(struct am_deploy *d, json_t *dep, json_t *inst, struct handle *h)
{
	const struct am_engine_def *e = am_engine_find(json_string_value(json_object_get(dep, "engine")));
	const char *logp = json_string_value(json_object_get(inst, "log_path"));
	char **lines = NULL;
	int n = logp ? am_proc_tail(logp, 400, &lines) : 0; /* two processes' tracebacks */
	const char *fatal = e ? am_engine_fatal_line(e, lines, n) : NULL;
	char reason[600];
	const char *last = NULL;
	for (int i = n - 1; i >= 0 && !last; i--)
		if (strncmp(lines[i], "=== aimaas", 10) != 0 && lines[i][0])
			last = lines[i];
	const char *st = h && h->exit_status[0] ? h->exit_status : "exited";
	if (!strncmp(st, "signal ", 7)) {
		int sig = (int)strtol(st + 7, NULL, 10);
		if (fatal)
			am_fmt(reason, sizeof reason, "killed by signal %d (%s): %.400s", sig, strsignal(sig), fatal);
		else
			am_fmt(reason, sizeof reason, "killed by signal %d (%s)", sig, strsignal(sig));
	} else if (fatal) {
		am_fmt(reason, sizeof reason, "%s: %.450s", st, fatal);
	} else {
		am_fmt(reason, sizeof reason, "%s%s%.450s", st, last ? ": " : "", last ? last : "");
	}
	/* the engine may have printed its key or a secret variable (SGLang
	 * prints its whole ServerArgs): the reason is shown to users */
	json_t *denv = parse_col(dep, "env");
	const char *secrets[66];
	int ns = 0;
	char ekey[96];
	secrets[ns++] = am_deploy_engine_key(d, json_string_value(json_object_get(inst, "api_key")), ekey, sizeof ekey) == 0
				? ekey : NULL;
	const char *k;
	json_t *v;
	json_object_foreach(denv, k, v)
		if (ns < 65 && am_engine_secret_name(k, 0) && json_is_string(v))
			secrets[ns++] = json_string_value(v);
	secrets[ns] = NULL;
	char masked[600];
	am_engine_mask(reason, secrets[0] ? secrets : secrets + 1, masked, sizeof masked);
	am_strlcpy(reason, masked, sizeof reason);
	json_decref(denv);
	if (logp)
		log_line(logp, "the engine stopped (%s)", st);
	am_proc_lines_free(lines, n);
	pid_t pid = (pid_t)json_integer_value(json_object_get(inst, "pid"));
	am_proc_kill_group(pid, SIGKILL); /* children left behind keep GPU memory */
	if (h)
		handle_free(d, h);
	fail_or_backoff(d, inst, reason, 1);
}

static void stop_instance(struct am_deploy *d, json_t *inst, int remove)
{
	long long id = json_integer_value(json_object_get(inst, "id"));
	pid_t pid = (pid_t)json_integer_value(json_object_get(inst, "pid"));
	long long start = json_integer_value(json_object_get(inst, "pid_start"));
	struct handle *h = find(d, id);
	int alive = pid > 0 && (h ? !gone(h, start) : am_proc_same(pid, (uint64_t)start));
	if (alive || (pid > 0 && am_proc_group_alive(pid))) {
		const char *state = json_string_value(json_object_get(inst, "state"));
		if (strcmp(state, "stopping") != 0) {
			am_proc_kill_group(pid, SIGTERM);
			set_inst(d, id, "stopping", "stopping");
			if (!h)
				h = watch(d, id, json_integer_value(json_object_get(inst, "deployment_id")), pid, 0, "", "/health");
			h->stop_deadline_ns = am_now_ns() + STOP_GRACE_NS;
			const char *logp = json_string_value(json_object_get(inst, "log_path"));
			if (logp)
				log_line(logp, "stopping (SIGTERM to process group %d)", (int)pid);
		} else if (h && am_now_ns() > h->stop_deadline_ns) {
			am_proc_kill_group(pid, SIGKILL);
		}
		return;
	}
	/* nothing of it is left */
	if (h) {
		am_proc_reap(pid, h->exit_status, sizeof h->exit_status);
		handle_free(d, h);
	}
	if (remove) {
		char sp[PATH_MAX];
		secret_path(d, inst, sp, sizeof sp);
		unlink(sp); /* SGLang's key file, if it had one */
		am_store_exec(d->srv->store, "DELETE FROM instances WHERE id = ?", "i", id);
	} else {
		long long now = am_wall_ms();
		am_store_exec(d->srv->store, "UPDATE instances SET state = 'stopped', pid = NULL, stopped_at = ?, updated_at = ?"
			      " WHERE id = ?", "iii", now, now, id);
	}
}

static void drive(struct am_deploy *d, json_t *dep, json_t *model, json_t *inst)
{
	long long id = json_integer_value(json_object_get(inst, "id"));
	const char *state = json_string_value(json_object_get(inst, "state"));
	if (!strcmp(state, "stopping")) { /* a restart: once gone, the replica is placed anew */
		stop_instance(d, inst, 1);
		return;
	}
	struct handle *h = find(d, id);
	long long start = json_integer_value(json_object_get(inst, "pid_start"));
	uint64_t now = am_now_ns();
	if (!strcmp(state, "pending") || (!strcmp(state, "backoff") &&
					   json_integer_value(json_object_get(inst, "backoff_until")) <= am_wall_ms())) {
		spawn(d, dep, model, inst);
		return;
	}
	if (!strcmp(state, "starting") || !strcmp(state, "running")) {
		if (!h) { /* a supervisor restart that missed adoption: look now */
			pid_t pid = (pid_t)json_integer_value(json_object_get(inst, "pid"));
			if (pid > 0 && am_proc_same(pid, (uint64_t)start)) {
				const struct am_engine_def *e = am_engine_find(json_string_value(json_object_get(dep, "engine")));
				h = watch(d, id, json_integer_value(json_object_get(dep, "id")), pid,
					  (int)json_integer_value(json_object_get(inst, "port")),
					  json_string_value(json_object_get(inst, "api_key")), e ? e->health_path : "/health");
			} else {
				crashed(d, dep, inst, NULL);
				return;
			}
		}
		if (gone(h, start)) {
			crashed(d, dep, inst, h);
			return;
		}
		int running = !strcmp(state, "running");
		if (!running && json_integer_value(json_object_get(inst, "started_at")) &&
		    (uint64_t)(am_wall_ms() - json_integer_value(json_object_get(inst, "started_at"))) * 1000000ull > STARTUP_TIMEOUT_NS) {
			am_proc_kill_group(h->pid, SIGKILL);
			handle_free(d, h);
			fail_or_backoff(d, inst, "did not become healthy within 30 minutes", 1);
			return;
		}
		if (h->probe_fails >= 6 && running) {
			am_proc_kill_group(h->pid, SIGKILL);
			handle_free(d, h);
			fail_or_backoff(d, inst, "stopped answering its health check (6 times in a row); restarted", 1);
			return;
		}
		if (!h->probe && now >= h->next_probe_ns) {
			h->next_probe_ns = now + (running ? 5000000000ull : 250000000ull);
			h->probe_sent_ns = am_now_ns();
			h->probe = am_client_get(d->srv->base, h->port, h->health, h->key, PROBE_TIMEOUT_MS, 4096, on_probe, h);
		}
		if (running && !h->scrape && now >= h->next_scrape_ns) {
			h->next_scrape_ns = now + d->scrape_ns;
			h->scrape = am_client_get(d->srv->base, h->port, "/metrics", h->key, 3000, 4u << 20, on_scrape, h);
		}
		const char *logp = json_string_value(json_object_get(inst, "log_path"));
		if (logp)
			am_proc_rotate(logp, LOG_CAP);
	}
}

/* ---- placement of replicas that have none ---- */

int am_deploy_place(struct am_deploy *d, json_t *dep, json_t *model, int replica, char *why, size_t whysize)
{
	struct am_plan_gpu gpus[AM_PLAN_MAX];
	int n = am_deploy_gpus(d, gpus, AM_PLAN_MAX);
	struct am_plan_req req;
	memset(&req, 0, sizeof req);
	req.facts = json_object_get(model, "facts");
	req.model = json_string_value(json_object_get(model, "name"));
	req.tp = (int)json_integer_value(json_object_get(dep, "gpus_per_replica"));
	req.replicas = 1;
	req.max_model_len = (int)json_integer_value(json_object_get(dep, "max_model_len"));
	req.mem_fraction = json_number_value(json_object_get(dep, "gpu_memory_utilization"));
	req.spread = !strcmp(json_string_value(json_object_get(dep, "placement")) ?: "", "spread");
	json_t *pinned = parse_col(dep, "pinned_gpus");
	if (json_array_size(pinned)) {
		for (int k = 0; k < req.tp; k++) {
			const char *want = json_string_value(json_array_get(pinned, (size_t)(replica * req.tp + k)));
			req.pinned[k] = -1;
			for (int i = 0; i < n; i++)
				if (want && !strcmp(gpus[i].id, want))
					req.pinned[k] = i;
			if (req.pinned[k] < 0) {
				am_fmt(why, whysize, "pinned GPU %s is not present", want ? want : "?");
				json_decref(pinned);
				return -1;
			}
		}
		req.npinned = req.tp;
	}
	json_decref(pinned);
	struct am_plan p;
	am_planner_plan(gpus, n, &req, &p);
	if (!p.ok) {
		am_strlcpy(why, p.reason, whysize);
		return -1;
	}
	json_t *ids = json_array(), *idx = json_array();
	for (int k = 0; k < req.tp; k++) {
		json_array_append_new(ids, json_string(gpus[p.choice[k]].id));
		json_array_append_new(idx, json_integer(gpus[p.choice[k]].index));
	}
	char *sids = am_json_dump(ids), *sidx = am_json_dump(idx);
	char key[64]; /* a nonce: the engine's key derives from it (am_deploy_engine_key) */
	am_rand_token("amn_", key, sizeof key);
	long long now = am_wall_ms();
	long long dep_id = json_integer_value(json_object_get(dep, "id"));
	int rc = am_store_exec(d->srv->store,
			       "INSERT INTO instances(deployment_id, replica, node_id, gpus, gpu_indices, mem_per_gpu, mem_fraction,"
			       " dtype, api_key, state, created_at, updated_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
			       "iisssidssii", dep_id, (long long)replica, AM_LOCAL_NODE, sids, sidx, (long long)p.reserve[0],
			       p.fraction, p.dtype, key, now, now);
	long long iid = am_store_last_id(d->srv->store);
	for (int k = 0; rc == 0 && k < req.tp; k++)
		rc = am_store_exec(d->srv->store, "INSERT INTO gpu_reservations(gpu_id, owner_kind, owner_id, bytes, created_at)"
				   " VALUES(?, 'instance', ?, ?, ?)", "siii", gpus[p.choice[k]].id, iid, (long long)p.reserve[k], now);
	free(sids);
	free(sidx);
	json_decref(ids);
	json_decref(idx);
	return rc;
}

/* ---- one pass over everything ---- */

static void finish_task(struct am_deploy *d, json_t *dep, enum am_task_state st, const char *msg)
{
	long long task = json_integer_value(json_object_get(dep, "task_id"));
	if (!task)
		return;
	am_task_update(d->srv->store, task, st, st == AM_TASK_SUCCEEDED ? 100 : -1, msg);
	am_store_exec(d->srv->store, "UPDATE deployments SET task_id = NULL WHERE id = ?", "i",
		      (long long)json_integer_value(json_object_get(dep, "id")));
}

static void set_dep(struct am_deploy *d, json_t *dep, const char *state, const char *reason)
{
	const char *cur = json_string_value(json_object_get(dep, "state"));
	const char *cr = json_string_value(json_object_get(dep, "reason"));
	if (cur && !strcmp(cur, state) && cr && !strcmp(cr, reason))
		return;
	am_store_exec(d->srv->store, "UPDATE deployments SET state = ?, reason = ?, updated_at = ? WHERE id = ?", "ssii", state,
		      reason, am_wall_ms(), (long long)json_integer_value(json_object_get(dep, "id")));
	if (!cur || strcmp(cur, state))
		am_info("deploy", "deployment %s: %s%s%s", json_string_value(json_object_get(dep, "name")), state,
			reason[0] ? ": " : "", reason);
}

static void reconcile_one(struct am_deploy *d, json_t *dep)
{
	struct am_store *st = d->srv->store;
	long long dep_id = json_integer_value(json_object_get(dep, "id"));
	const char *desired = json_string_value(json_object_get(dep, "desired"));
	const char *dstate = json_string_value(json_object_get(dep, "state"));
	int deleting = !strcmp(dstate, "deleting");
	json_t *insts = NULL;
	am_store_rows(st, &insts, "SELECT * FROM instances WHERE deployment_id = ? ORDER BY replica", "i", dep_id);
	size_t i;
	json_t *inst;
	if (deleting || !strcmp(desired, "stopped")) {
		json_array_foreach(insts, i, inst)
			stop_instance(d, inst, 1);
		long long left = 0;
		am_store_int(st, &left, 0, "SELECT COUNT(*) FROM instances WHERE deployment_id = ?", "i", dep_id);
		if (left) {
			set_dep(d, dep, deleting ? "deleting" : "stopping", "");
		} else if (deleting) {
			finish_task(d, dep, AM_TASK_SUCCEEDED, "deleted");
			am_store_exec(st, "DELETE FROM deployments WHERE id = ?", "i", dep_id);
			am_info("deploy", "deployment %s deleted", json_string_value(json_object_get(dep, "name")));
		} else {
			set_dep(d, dep, "stopped", "");
			finish_task(d, dep, AM_TASK_SUCCEEDED, "stopped");
		}
		json_decref(insts);
		return;
	}
	json_t *model = NULL;
	am_store_row(st, &model, "SELECT id, name, path, kind, facts FROM models WHERE id = ?", "i",
		     (long long)json_integer_value(json_object_get(dep, "model_id")));
	if (model) {
		json_t *f = json_loads(json_string_value(json_object_get(model, "facts")) ?: "{}", 0, NULL);
		json_object_set_new(model, "facts", f ? f : json_object());
	}
	int replicas = (int)json_integer_value(json_object_get(dep, "replicas"));
	char waiting[1024] = "";
	for (int r = 0; r < replicas && model; r++) {
		int have = 0;
		json_array_foreach(insts, i, inst)
			have |= json_integer_value(json_object_get(inst, "replica")) == r;
		if (!have && am_deploy_place(d, dep, model, r, waiting, sizeof waiting) != 0)
			break;
	}
	json_decref(insts);
	am_store_rows(st, &insts, "SELECT * FROM instances WHERE deployment_id = ? ORDER BY replica", "i", dep_id);
	int running = 0, failed = 0, total = 0;
	const char *reason = "";
	json_array_foreach(insts, i, inst) {
		if (json_integer_value(json_object_get(inst, "replica")) >= replicas) {
			stop_instance(d, inst, 1); /* scaled down */
			continue;
		}
		if (model)
			drive(d, dep, model, inst);
	}
	json_decref(insts);
	am_store_rows(st, &insts, "SELECT state, reason, replica FROM instances WHERE deployment_id = ? AND replica < ?", "ii",
		      dep_id, (long long)replicas);
	char reasons[1024] = "";
	json_array_foreach(insts, i, inst) {
		const char *s = json_string_value(json_object_get(inst, "state"));
		total++;
		running += !strcmp(s, "running");
		failed += !strcmp(s, "failed");
		const char *r = json_string_value(json_object_get(inst, "reason"));
		if (r && r[0] && !reasons[0])
			am_strlcpy(reasons, r, sizeof reasons);
	}
	reason = reasons;
	if (!model)
		set_dep(d, dep, "failed", "the model was deleted");
	else if (failed)
		set_dep(d, dep, "failed", reason);
	else if (running == replicas)
		set_dep(d, dep, "running", "");
	else if (waiting[0] && total < replicas)
		set_dep(d, dep, "waiting", waiting);
	else
		set_dep(d, dep, "starting", reason);
	long long task = json_integer_value(json_object_get(dep, "task_id"));
	if (task) {
		if (failed)
			finish_task(d, dep, AM_TASK_FAILED, reason);
		else if (running == replicas)
			finish_task(d, dep, AM_TASK_SUCCEEDED, "running");
		else
			am_task_update(st, task, AM_TASK_RUNNING, replicas ? 100 * running / replicas : 0,
				       waiting[0] ? waiting : reason[0] ? reason : "starting");
	}
	json_decref(insts);
	json_decref(model);
}

/* One point per deployment with live instances, as often as engines are
 * scraped; a deployment gone for an hour loses its history. */
static void record_history(struct am_deploy *d)
{
	uint64_t now = am_now_ns();
	if (now < d->next_hist_ns)
		return;
	d->next_hist_ns = now + d->scrape_ns;
	int64_t wall = am_wall_ms();
	for (struct handle *h = d->handles; h; h = h->next) {
		int k;
		for (k = 0; k < d->nhist && d->hist[k].dep_id != h->dep_id; k++)
			;
		if (k < d->nhist && am_series_last(&d->hist[k].s) == wall)
			continue; /* this deployment has its point already */
		if (k == d->nhist) {
			d->hist = am_realloc(d->hist, (size_t)(d->nhist + 1) * sizeof *d->hist);
			d->hist[k].dep_id = h->dep_id;
			am_series_init(&d->hist[k].s, HIST_CAP, 4);
			d->nhist++;
		}
		json_t *m = am_deploy_metrics(d, h->dep_id);
		double v[4] = { json_real_value(json_object_get(m, "requests_running")),
				json_real_value(json_object_get(m, "requests_waiting")),
				json_real_value(json_object_get(m, "kv_cache_usage")),
				json_real_value(json_object_get(m, "tokens_per_second")) };
		json_decref(m);
		am_series_push(&d->hist[k].s, wall, v);
	}
	for (int k = 0; k < d->nhist;) {
		if (wall - am_series_last(&d->hist[k].s) > 3600000) {
			am_series_free(&d->hist[k].s);
			d->hist[k] = d->hist[--d->nhist];
		} else {
			k++;
		}
	}
}

json_t *am_deploy_history(struct am_deploy *d, long long deployment_id, int64_t since_ms, int max)
{
	static const char *const names[] = { "requests_running", "requests_waiting", "kv_cache_usage", "tokens_per_second",
					     NULL };
	for (int k = 0; k < d->nhist; k++)
		if (d->hist[k].dep_id == deployment_id)
			return am_series_json(&d->hist[k].s, names, since_ms, max);
	struct am_series empty;
	am_series_init(&empty, 1, 4);
	json_t *j = am_series_json(&empty, names, 0, 1);
	am_series_free(&empty);
	return j;
}

static void reconcile(struct am_deploy *d)
{
	d->kicked = 0;
	json_t *deps = NULL;
	if (am_store_rows(d->srv->store, &deps, "SELECT * FROM deployments ORDER BY id", NULL) != 0)
		return;
	size_t i;
	json_t *dep;
	json_array_foreach(deps, i, dep) {
		if (am_store_begin(d->srv->store) != 0)
			break;
		reconcile_one(d, dep);
		if (am_store_commit(d->srv->store) != 0)
			am_store_rollback(d->srv->store);
	}
	json_decref(deps);
	record_history(d);
	if (d->srv->gateway) /* ready replicas change the gateway's routes */
		am_gateway_refresh(d->srv->gateway);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	reconcile(arg);
}

void am_deploy_restart(struct am_deploy *d, long long deployment_id)
{
	json_t *insts = NULL;
	am_store_rows(d->srv->store, &insts, "SELECT * FROM instances WHERE deployment_id = ?", "i", deployment_id);
	size_t i;
	json_t *inst;
	json_array_foreach(insts, i, inst) {
		if (json_integer_value(json_object_get(inst, "pid")) > 0)
			stop_instance(d, inst, 1);
		else
			am_store_exec(d->srv->store, "DELETE FROM instances WHERE id = ?", "i",
				      (long long)json_integer_value(json_object_get(inst, "id")));
	}
	json_decref(insts);
	am_deploy_kick(d);
}

void am_deploy_kick(struct am_deploy *d)
{
	if (d->kicked)
		return;
	d->kicked = 1;
	event_active(d->kick, EV_TIMEOUT, 0);
}

struct am_deploy *am_deploy_new(struct am_server *srv)
{
	struct am_deploy *d = am_calloc(1, sizeof *d);
	d->srv = srv;
	const char *ms = getenv("AIMAAS_SCRAPE_MS");
	long long v = ms ? strtoll(ms, NULL, 10) : 0;
	d->scrape_ns = (uint64_t)(v >= 100 && v <= 3600000 ? v : 5000) * 1000000ull;
	return d;
}

int am_deploy_start(struct am_deploy *d)
{
	struct am_store *st = d->srv->store;
	json_t *insts = NULL;
	am_store_rows(st, &insts, "SELECT i.*, d.engine FROM instances i JOIN deployments d ON d.id = i.deployment_id"
		      " WHERE i.pid IS NOT NULL", NULL);
	size_t i;
	json_t *inst;
	json_array_foreach(insts, i, inst) {
		pid_t pid = (pid_t)json_integer_value(json_object_get(inst, "pid"));
		long long id = json_integer_value(json_object_get(inst, "id"));
		if (am_proc_same(pid, (uint64_t)json_integer_value(json_object_get(inst, "pid_start")))) {
			const struct am_engine_def *e = am_engine_find(json_string_value(json_object_get(inst, "engine")));
			watch(d, id, json_integer_value(json_object_get(inst, "deployment_id")), pid,
			      (int)json_integer_value(json_object_get(inst, "port")), json_string_value(json_object_get(inst, "api_key")),
			      e ? e->health_path : "/health");
			am_info("deploy", "re-adopted engine pid %d (instance %lld, %s)", (int)pid, id,
				json_string_value(json_object_get(inst, "state")));
		} else {
			am_warn("deploy", "engine pid %d of instance %lld is gone; it will be restarted", (int)pid, id);
			am_store_exec(st, "UPDATE instances SET state = CASE WHEN state = 'stopping' THEN state ELSE 'pending' END,"
				      " pid = NULL, reason = 'the engine was gone after aimaas restarted', updated_at = ? WHERE id = ?",
				      "ii", am_wall_ms(), id);
		}
	}
	json_decref(insts);
	d->tick = event_new(d->srv->base, -1, EV_PERSIST, on_tick, d);
	struct timeval tv = { 0, 500000 };
	event_add(d->tick, &tv);
	d->kick = event_new(d->srv->base, -1, 0, on_tick, d);
	am_deploy_kick(d);
	return 0;
}

void am_deploy_free(struct am_deploy *d, int stop_engines)
{
	if (!d)
		return;
	if (stop_engines && d->handles) {
		am_info("deploy", "stopping every engine (--stop-engines-on-exit)");
		for (struct handle *h = d->handles; h; h = h->next)
			am_proc_kill_group(h->pid, SIGTERM);
		uint64_t deadline = am_now_ns() + STOP_GRACE_NS;
		int alive = 1;
		while (alive && am_now_ns() < deadline) {
			alive = 0;
			for (struct handle *h = d->handles; h; h = h->next) {
				char st[32];
				am_proc_reap(h->pid, st, sizeof st);
				alive |= am_proc_group_alive(h->pid);
			}
			if (alive)
				usleep(100000);
		}
		for (struct handle *h = d->handles; h; h = h->next)
			am_proc_kill_group(h->pid, SIGKILL);
	}
	while (d->handles)
		handle_free(d, d->handles);
	for (int k = 0; k < d->nhist; k++)
		am_series_free(&d->hist[k].s);
	free(d->hist);
	if (d->tick)
		event_free(d->tick);
	if (d->kick)
		event_free(d->kick);
	free(d);
}

json_t *am_deploy_metrics(struct am_deploy *d, long long deployment_id)
{
	double running = 0, waiting = 0, kv = 0, tok = 0, gen = 0, prompt = 0;
	int n = 0;
	for (struct handle *h = d->handles; h; h = h->next) {
		if (h->dep_id != deployment_id)
			continue;
		running += h->running;
		waiting += h->waiting;
		kv += h->kv;
		tok += h->tok_s;
		gen += h->gen_total;
		prompt += h->prompt_total;
		n++;
	}
	return json_pack("{s:f,s:f,s:f,s:f,s:f,s:f}", "requests_running", running, "requests_waiting", waiting,
			 "kv_cache_usage", n ? kv / n : 0.0, "tokens_per_second", tok, "generation_tokens_total", gen,
			 "prompt_tokens_total", prompt);
}

json_t *am_deploy_last_lines(json_t *inst, int n)
{
	json_t *arr = json_array();
	const char *p = json_string_value(json_object_get(inst, "log_path"));
	if (!p)
		return arr;
	char **lines;
	int k = am_proc_tail(p, n, &lines);
	for (int i = 0; i < k; i++) {
		json_t *s = json_string(lines[i]);
		json_array_append_new(arr, s ? s : json_string("(not UTF-8)"));
	}
	am_proc_lines_free(lines, k);
	return arr;
}
