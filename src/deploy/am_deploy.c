/* am_deploy: the deployment reconciler and engine supervisor. */
#include "am_deploy.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../am_server.h"
#include "../base/am_buf.h"
#include "../base/am_file.h"
#include "../base/am_json.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_msg.h"
#include "../base/am_rand.h"
#include "../base/am_series.h"
#include "../base/am_time.h"
#include "../gpu/am_inventory.h"
#include "../http/am_client.h"
#include "../http/am_prio.h"
#include "../hub/hub_models.h"
#include "../node/am_node.h"
#include "../runtime/am_runtime.h"
#include "../sched/am_capacity_db.h"
#include "../store/am_store.h"
#include "../task/am_task.h"
#include "am_due.h"
#include "am_inst_state.h"
#include "am_routes.h"
#include "deploy_internal.h"

#define MAX_FAILURES 5
#define STARTUP_TIMEOUT_NS (30ull * 60 * 1000000000ull)
#define STOP_GRACE_NS (15ull * 1000000000ull)
#define STOP_GRACE_MS 15000
#define LOG_CAP (50ull << 20) /* without a --log-max-mb (unit tests' servers) */

/* What the supervisor holds for one live instance; the database holds the
 * rest. Its workload is the runtime's (ref); events come through on_event.
 * Kept in a hash by instance id and in a list for the walks. */
struct handle {
	struct am_deploy *d;
	long long id, dep_id;
	struct am_runtime *rt;
	const struct am_engine_def *engine; /* its deployment's (metrics' names); NULL: unknown */
	char ref[AM_RT_REF_MAX];
	char host[256];            /* where its engine serves (its address) */
	int port;
	char key[80];
	struct am_client_req *scrape;
	struct am_client_conn *mc; /* to its /metrics, kept open between scrapes */
	struct am_client_req *lora_req; /* a runtime adapter load or unload in flight */
	struct lora_call *lora_call;
	int running;               /* recorded running by this handle's READY (a cache of the row) */
	int quiet;                 /* scrapes in a row that found it idle, numbers unmoved */
	int probe_fails;
	int exited;
	char exit_status[320];  /* the runtime's words: "exit 1", "OOMKilled (exit 137)", a fetch that failed */
	double waiting_reqs, running_reqs, kv, gen_total, prompt_total, tok_s, gen_prev;
	uint64_t gen_prev_ns;
	struct handle *next, *prev; /* every handle */
	struct handle *hnext;       /* its bucket by instance id */
	struct handle *dnext;       /* its bucket by deployment id */
};

/* A deployment's serving metrics over time, for the console's charts. */
struct dep_hist {
	long long dep_id;
	struct am_series s;
};

#define HBUCKETS 1024

struct am_deploy {
	struct am_server *srv;
	struct event *kick;        /* runs a pass on the loop: the due ones, or all */
	struct event *full;        /* the safety pass (AIMAAS_RECONCILE_FULL_MS) */
	struct event *scrape_ev;   /* engines' /metrics, log rotation, history */
	struct handle *handles;
	struct handle *buckets[HBUCKETS];  /* by instance id */
	struct handle *dbuckets[HBUCKETS]; /* by deployment id */
	int kicked;                /* a pass is scheduled */
	int all_due;               /* the next pass looks at every deployment */
	struct am_due_set due;     /* or at these */
	struct am_due_wakes *wakes; /* deployments to look at again at a time (from am_deploy_start) */
	int routes_all;            /* every route may have changed since the last publish */
	struct am_due_set routes_due; /* or these deployments' */
	uint64_t full_ns;
	uint64_t scrape_ns;        /* how often engines' /metrics are read (AIMAAS_SCRAPE_MS) */
	unsigned scrape_round;
	unsigned long long placements;  /* am_deploy_place calls, and their CPU time */
	uint64_t placement_cpu_ns;
	struct dep_hist *hist;     /* sorted by deployment id */
	int nhist, caphist;
	unsigned char secret[32];  /* engine keys derive from it (<data>/engine.key) */
	int secret_ok;
	struct am_idle *idle;      /* scale to zero (am_idle.c) */
	struct am__deploy_probe probes[AM__DEPLOY_PROBES]; /* engine programs' modules (am_deploy_verbs.c) */
};

#define HIST_CAP 720 /* an hour at the default 5 s */

static void reconcile(struct am_deploy *d);
static int inst_state(struct am_deploy *d, long long id, enum am_inst_state *out, long long *dep_id);
static int inst_to(struct am_deploy *d, long long id, enum am_inst_state to, const char *reason);
static void started(struct am_deploy *d, struct am_runtime *rt, long long id, long long dep_id, const char *ref,
		    const char *address, const char *key, const char *engine, int restarted);

/* The runtime that runs (or ran) a row's workload, by the name the row
 * recorded ("local" when none). NULL for a runtime this aimaas lacks. */
static struct am_runtime *runtime_of(struct am_deploy *d, json_t *row)
{
	return am_runtimes_get(&d->srv->runtimes, json_string_value(json_object_get(row, "runtime")));
}

/* See am_deploy.h. */
int am_deploy_split_address(const char *address, char *host, size_t hostsize, int *port)
{
	const char *c = address ? strrchr(address, ':') : NULL;
	if (!c || c == address)
		return -1;
	char *end;
	long p = strtol(c + 1, &end, 10);
	if (*end || p <= 0 || p > 65535)
		return -1;
	const char *h = address, *he = c;
	if (*h == '[' && he[-1] == ']') { /* [v6]:port */
		h++;
		he--;
	}
	if ((size_t)(he - h) >= hostsize)
		return -1;
	memcpy(host, h, (size_t)(he - h));
	host[he - h] = '\0';
	*port = (int)p;
	return 0;
}

/* The port of an address "host:port", or 0. */
static int address_port(const char *address)
{
	char host[256];
	int port = 0;
	return am_deploy_split_address(address, host, sizeof host, &port) == 0 ? port : 0;
}

/* A row's workload reference while it is supposed to run (an ended one
 * stays in rt_ref for its log, and is not to be signalled). */
static const char *live_ref(json_t *inst)
{
	const char *st = json_string_value(json_object_get(inst, "state"));
	const char *ref = json_string_value(json_object_get(inst, "rt_ref"));
	if (!ref || !ref[0] || !st || (strcmp(st, "starting") && strcmp(st, "running") && strcmp(st, "stopping")))
		return NULL;
	return ref;
}

/* ---- what is due ---- */

/* Schedules a pass on the loop (once, however many ask). */
static void schedule(struct am_deploy *d)
{
	if (d->kicked || !d->kick)
		return;
	d->kicked = 1;
	event_active(d->kick, EV_TIMEOUT, 0);
}

/* Marks a deployment due for the next pass, from the reconciler itself
 * (an event, a wake): routes change only if the pass says so. */
static void due(struct am_deploy *d, long long dep_id)
{
	am_due_set_add(&d->due, dep_id);
	schedule(d);
}

/* Looks at dep_id again in ms (the earliest wake asked wins). */
static void wake_in(struct am_deploy *d, long long dep_id, int64_t ms)
{
	if (d->wakes) /* before the start, the first (full) pass asks again */
		am_due_wake_in(d->wakes, dep_id, ms);
}

static void on_wake(long long dep_id, void *data)
{
	due(data, dep_id);
}

/* ---- handles ---- */

static struct handle **bucket(struct am_deploy *d, long long id)
{
	return &d->buckets[(uint64_t)id * 0x9E3779B97F4A7C15ull >> 54 & (HBUCKETS - 1)];
}

static struct handle **dbucket(struct am_deploy *d, long long dep_id)
{
	return &d->dbuckets[(uint64_t)dep_id * 0x9E3779B97F4A7C15ull >> 54 & (HBUCKETS - 1)];
}

static void dep_unlink(struct am_deploy *d, struct handle *h)
{
	for (struct handle **p = dbucket(d, h->dep_id); *p; p = &(*p)->dnext)
		if (*p == h) {
			*p = h->dnext;
			break;
		}
}

static struct handle *find(struct am_deploy *d, long long id)
{
	for (struct handle *h = *bucket(d, id); h; h = h->hnext)
		if (h->id == id)
			return h;
	return NULL;
}

static void handle_free(struct am_deploy *d, struct handle *h)
{
	for (struct handle **p = bucket(d, h->id); *p; p = &(*p)->hnext)
		if (*p == h) {
			*p = h->hnext;
			break;
		}
	dep_unlink(d, h);
	if (h->prev)
		h->prev->next = h->next;
	else
		d->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	if (h->running)
		am_due_set_add(&d->routes_due, h->dep_id);
	am_client_cancel(h->scrape);
	am_client_conn_free(h->mc);
	if (h->lora_req) { /* its answer will not come: the next engine starts with the whole set */
		am_client_cancel(h->lora_req);
		free(h->lora_call);
	}
	if (h->rt && h->ref[0])
		h->rt->ops->release(h->rt, h->ref);
	free(h);
}

/* Where a workload serves can be known only once it runs (a pod's IP, its
 * service's node port): recorded, and the scrapes go there. */
static void where_now(struct am_deploy *d, struct handle *h)
{
	char host[256], where[300];
	int port = 0;
	if (h->rt->ops->endpoint(h->rt, h->ref, host, sizeof host, &port) != 0 ||
	    (!strcmp(host, h->host) && port == h->port))
		return;
	am_fmt(where, sizeof where, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
	am_store_exec(d->srv->store, "UPDATE instances SET address = ? WHERE id = ?", "si", where, h->id);
	am_strlcpy(h->host, host, sizeof h->host);
	h->port = port;
	am_client_cancel(h->scrape);
	h->scrape = NULL;
	am_client_conn_free(h->mc);
	h->mc = am_client_conn_new(d->srv->base, h->host, h->port);
	am_client_conn_background(h->mc);
}

/* The runtime's news of a watched instance. A health result that changes
 * nothing (another 200 from a running engine, a failure short of the
 * limit) costs no pass and no write; the rest mark its deployment due. */
static void on_event(void *data, enum am_rt_event ev, const char *detail)
{
	struct handle *h = data;
	struct am_deploy *d = h->d;
	if (ev == AM_RT_EXITED) {
		if (!h->exited) {
			h->exited = 1;
			am_strlcpy(h->exit_status, detail ? detail : "", sizeof h->exit_status);
		}
		due(d, h->dep_id);
	} else if (ev == AM_RT_WAITING) {
		/* not running yet, and why (a cluster's scheduler, an image pull): the reason shows it */
		enum am_inst_state cur;
		if (inst_state(d, h->id, &cur, NULL) == 0 && cur == AM_INST_STARTING) {
			inst_to(d, h->id, AM_INST_STARTING, detail ? detail : "");
			due(d, h->dep_id); /* the deployment's reason, and a wait that may call for a re-plan */
		}
	} else if (ev == AM_RT_READY) {
		h->probe_fails = 0;
		if (h->running)
			return;
		where_now(d, h);
		enum am_inst_state cur;
		/* ready counts while it starts or runs; a late answer to a stopping one does not */
		if (inst_state(d, h->id, &cur, NULL) == 0 && (cur == AM_INST_STARTING || cur == AM_INST_RUNNING)) {
			inst_to(d, h->id, AM_INST_RUNNING, cur == AM_INST_STARTING ? "" : NULL);
			am_store_exec(d->srv->store, "UPDATE instances SET ready_at = COALESCE(ready_at, ?) WHERE id = ?", "ii",
				      am_wall_ms(), h->id);
			h->running = 1;
			due(d, h->dep_id);
		}
	} else { /* AM_RT_UNREADY */
		int was = h->probe_fails;
		h->probe_fails = (int)strtol(detail ? detail : "1", NULL, 10);
		if (h->probe_fails >= 6 && was < 6)
			due(d, h->dep_id);
	}
}

/* Watches an instance's workload; health checks when health is set. NULL
 * (and nothing kept) when the workload is gone. */
static struct handle *watch(struct am_deploy *d, struct am_runtime *rt, long long id, long long dep_id, const char *ref,
			    const char *address, const char *key, const char *engine)
{
	struct handle *h = find(d, id);
	if (h && (h->rt != rt || strcmp(h->ref, ref))) {
		handle_free(d, h);
		h = NULL;
	}
	if (!h) {
		h = am_calloc(1, sizeof *h);
		h->d = d;
		h->id = id;
		h->rt = rt;
		am_strlcpy(h->ref, ref, sizeof h->ref);
		h->next = d->handles;
		if (h->next)
			h->next->prev = h;
		d->handles = h;
		struct handle **b = bucket(d, id);
		h->hnext = *b;
		*b = h;
	} else {
		dep_unlink(d, h);
	}
	h->dep_id = dep_id;
	struct handle **db = dbucket(d, dep_id);
	h->dnext = *db;
	*db = h;
	h->engine = am_engine_find(engine ? engine : "");
	const char *health = h->engine ? h->engine->health_path : "/health";
	if (am_deploy_split_address(address, h->host, sizeof h->host, &h->port) != 0) {
		am_strlcpy(h->host, AM_DEPLOY_LOCAL_HOST, sizeof h->host);
		h->port = 0;
	}
	am_client_cancel(h->scrape);
	h->scrape = NULL;
	am_client_conn_free(h->mc);
	h->mc = h->port > 0 ? am_client_conn_new(d->srv->base, h->host, h->port) : NULL;
	am_client_conn_background(h->mc); /* scrapes wait behind API requests */
	if (h->running)
		am_due_set_add(&d->routes_due, dep_id);
	h->running = 0; /* its next READY records it (again) */
	h->exited = 0;
	h->exit_status[0] = '\0';
	h->probe_fails = 0;
	if (am_deploy_engine_key(d, key, h->key, sizeof h->key) != 0)
		h->key[0] = '\0'; /* its probes go unauthenticated: /health needs none */
	struct am_rt_watch w = { .address = address, .health_path = health, .health_key = h->key, .cb = on_event, .data = h };
	if (rt->ops->watch(rt, ref, &w) != 0) {
		handle_free(d, h);
		return NULL;
	}
	return h;
}

/* Ended, by the runtime's event or by asking it. */
static int gone(struct handle *h)
{
	if (!h->exited && h->rt->ops->status(h->rt, h->ref, h->exit_status, sizeof h->exit_status) != AM_RT_RUNNING)
		h->exited = 1;
	return h->exited;
}

/* ---- the GPUs as the planner sees them ---- */

int am_deploy_owns_ref(struct am_deploy *d, const char *ref)
{
	for (struct handle *h = d->handles; h; h = h->next)
		if (h->rt->ops->same(h->rt, h->ref, ref))
			return 1;
	return 0;
}

int am_deploy_owns_pid(struct am_deploy *d, int pid, long long *instance_id)
{
	for (struct handle *h = d->handles; h; h = h->next)
		if (h->rt->ops->owns_pid(h->rt, h->ref, pid)) {
			if (instance_id)
				*instance_id = h->id;
			return 1;
		}
	return 0;
}

void am_deploy_binary(struct am_deploy *d, const struct am_engine_def *e, char *out, size_t size)
{
	am_deploy_program_setting(d, e->name, out, size);
	if (*out)
		return;
	if (!strcmp(e->name, "aimaas-sim")) {
		/* the simulator ships next to aimaas */
		char self[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
		if (n > 0) {
			self[n] = '\0';
			char *slash = strrchr(self, '/');
			if (slash) {
				*slash = '\0';
				am_fmt(out, size, "%s/aimaas-sim", self);
				if (access(out, X_OK) == 0)
					return;
			}
		}
	}
	am_strlcpy(out, e->default_binary, size);
}

void am_deploy_image(struct am_deploy *d, const struct am_engine_def *e, char *out, size_t size)
{
	json_t *row = NULL;
	am_store_row(d->srv->store, &row, "SELECT image FROM engine_settings WHERE name = ?", "s", e->name);
	const char *img = row ? json_string_value(json_object_get(row, "image")) : NULL;
	am_strlcpy(out, img && *img ? img : e->default_image ? e->default_image : "", size);
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

/* The address an instance's engine binds: its runtime's (loopback for a
 * local process, every interface in a pod); loopback when unknown. */
static const char *listen_host(struct am_deploy *d, json_t *inst)
{
	char name[160];
	struct am_runtime *rt = am_runtimes_get(
		&d->srv->runtimes, am_node_runtime(d->srv, json_string_value(json_object_get(inst, "node_id")), name, sizeof name));
	return rt && rt->ops->listen_host ? rt->ops->listen_host : AM_DEPLOY_LOCAL_HOST;
}

/* Where an instance's private engine config (SGLang's key) lives. */
static void secret_path(struct am_deploy *d, json_t *inst, char *out, size_t size)
{
	am_fmt(out, size, "%s/run/instance-%lld.yaml", d->srv->cfg.data_dir,
	       (long long)json_integer_value(json_object_get(inst, "id")));
}

/* The argv and environment of inst's engine; container: for a runtime that
 * runs it in a container image (the image's program, the container's own
 * GPUs). */
/* The --max-lora-rank an engine serving these adapters needs: the largest
 * rank in their adapter_config.json, rounded up to one vLLM takes (8, 16,
 * 32, 64, 128, 256, 320, 512), at least 16 so adapters of the usual ranks
 * can be added later without a restart. */
static int lora_rank(struct am_deploy *d, json_t *loras)
{
	static const int ranks[] = { 16, 32, 64, 128, 256, 320, 512 };
	long long most = 0;
	size_t i;
	json_t *l;
	json_array_foreach(loras, i, l) {
		json_t *row = NULL;
		am_store_row(d->srv->store, &row, "SELECT facts FROM models WHERE id = ?", "i",
			     (long long)json_integer_value(json_object_get(l, "model_id")));
		json_t *f = json_loads(json_string_value(json_object_get(row, "facts")) ?: "{}", 0, NULL);
		long long r = json_integer_value(json_object_get(json_object_get(f, "adapter"), "rank"));
		if (r > most)
			most = r;
		json_decref(f);
		json_decref(row);
	}
	for (size_t k = 0; k < sizeof ranks / sizeof ranks[0]; k++)
		if (most <= ranks[k])
			return ranks[k];
	return 512;
}

static int build_command(struct am_deploy *d, json_t *dep, json_t *model, json_t *inst, int container,
			 struct am_argv *argv, struct am_argv *env, char **secret, struct am_err *err)
{
	const char *ename = json_string_value(json_object_get(dep, "engine"));
	const struct am_engine_def *e = am_engine_find(ename ? ename : "");
	if (!e)
		return am_err_set(err, AM_E_INVALID, "engine", "unknown engine '%s'", ename ? ename : "");
	char bin[PATH_MAX];
	if (container && e->default_binary[0])
		am_strlcpy(bin, e->default_binary, sizeof bin); /* the program in the engine's image */
	else
		am_deploy_binary(d, e, bin, sizeof bin);
	json_t *facts = json_object_get(model, "facts");
	const char *path = json_string_value(json_object_get(model, "path"));
	const char *gguf = json_string_value(json_object_get(facts, "gguf_file"));
	json_t *indices = parse_col(inst, "gpu_indices");
	struct am_buf vis;
	am_buf_init(&vis, 512);
	size_t i;
	json_t *v;
	json_array_foreach(indices, i, v) /* in a container its cards are numbered from 0 */
		am_buf_printf(&vis, "%s%lld", i ? "," : "", container ? (long long)i : (long long)json_integer_value(v));
	json_t *extra = parse_col(dep, "engine_args"), *envj = parse_col(dep, "env"), *loras = parse_col(dep, "lora_modules");
	int rank = lora_rank(d, loras);
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
		.host = listen_host(d, inst),
		.port = address_port(json_string_value(json_object_get(inst, "address"))),
		.api_key = key,
		.tp = (int)json_array_size(indices) ? (int)json_array_size(indices) : 1,
		.cuda_visible = am_buf_str(&vis),
		.container = container,
		.max_model_len = (int)json_integer_value(json_object_get(dep, "max_model_len")),
		.max_num_seqs = (int)json_integer_value(json_object_get(dep, "max_num_seqs")),
		.mem_fraction = json_number_value(json_object_get(inst, "mem_fraction")),
		.dtype = json_string_value(json_object_get(inst, "dtype")),
		.trust_remote_code = needs_code && json_integer_value(json_object_get(dep, "trust_remote_code")),
		.lora_modules = loras,
		.max_lora_rank = rank,
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
	return build_command(d, dep, model, inst, 0, argv, env, NULL, err);
}

/* ---- instance life ---- */

/* Another instance's row holds port (taken, whether or not it listens now). */
static int port_taken(int port, void *data)
{
	struct am_deploy *d = data;
	char addr[32];
	am_fmt(addr, sizeof addr, AM_DEPLOY_LOCAL_HOST ":%d", port);
	long long taken = 0;
	am_store_int(d->srv->store, &taken, 0, "SELECT COUNT(*) FROM instances WHERE address = ?", "s", addr);
	return taken > 0;
}

/* The instance's state as stored; -1 when the row is gone or the state is
 * not one of the machine's (then nothing moves it). */
static int inst_state(struct am_deploy *d, long long id, enum am_inst_state *out, long long *dep_id)
{
	json_t *row = NULL;
	am_store_row(d->srv->store, &row, "SELECT state, deployment_id FROM instances WHERE id = ?", "i", id);
	int rc = row ? am_inst_state_parse(json_string_value(json_object_get(row, "state")), out) : -1;
	if (rc == 0 && dep_id)
		*dep_id = json_integer_value(json_object_get(row, "deployment_id"));
	json_decref(row);
	return rc;
}

/* The one way an instance changes state (am_inst_state.h): the move is
 * checked against the machine, written with its reason (NULL keeps the
 * reason) and logged when the state changes. 0, or -1 when the row is gone
 * or the move is refused (logged as a warning: a bug, or a race the caller
 * should have checked for; nothing is written). */
static int inst_to(struct am_deploy *d, long long id, enum am_inst_state to, const char *reason)
{
	enum am_inst_state from;
	long long dep_id = 0;
	if (inst_state(d, id, &from, &dep_id) != 0)
		return -1;
	if (!am_inst_transition_ok(from, to)) {
		am_warn("deploy", "instance %lld: %s -> %s refused by the state machine (%s)", id, am_inst_state_name(from),
			am_inst_state_name(to), reason ? reason : "");
		if (getenv("AIMAAS_TEST_ABORT_ON_REFUSED_MOVE")) /* the tests: a refused move is a bug */
			abort();
		return -1;
	}
	if (am_store_exec(d->srv->store, "UPDATE instances SET state = ?, reason = COALESCE(?, reason), updated_at = ? WHERE id = ?",
			  "ssii", am_inst_state_name(to), reason, am_wall_ms(), id) != 0)
		return -1;
	if (from != to && (from == AM_INST_RUNNING || to == AM_INST_RUNNING))
		am_due_set_add(&d->routes_due, dep_id); /* a ready replica came or went */
	if (from != to)
		am_debug("deploy", "instance %lld: %s -> %s%s%s", id, am_inst_state_name(from), am_inst_state_name(to),
			 reason && *reason ? ": " : "", reason ? reason : "");
	return 0;
}

/* A line of aimaas's own in an instance's log, through its runtime. */
static void log_line(struct am_runtime *rt, const char *ref, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void log_line(struct am_runtime *rt, const char *ref, const char *fmt, ...)
{
	if (!rt || !ref || !ref[0])
		return;
	char text[700];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	rt->ops->note(rt, ref, text);
}

/* Fails the instance at once with reason, without a backoff: what failed
 * (a missing engine program) will fail again until someone changes it. */
static void fail_now(struct am_deploy *d, json_t *inst, const char *reason)
{
	long long id = json_integer_value(json_object_get(inst, "id"));
	if (inst_to(d, id, AM_INST_FAILED, reason) != 0)
		return;
	am_store_exec(d->srv->store, "UPDATE instances SET stopped_at = ? WHERE id = ?", "ii", am_wall_ms(), id);
	am_warn("deploy", "instance %lld failed: %s", id, reason);
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
		am_fmt(r, sizeof r, AM_MSG_T("gave up after %lld failed starts: %s"), failures, reason);
		if (inst_to(d, id, AM_INST_FAILED, r) != 0)
			return;
		am_store_exec(d->srv->store, "UPDATE instances SET failures = ?, stopped_at = ? WHERE id = ?", "iii", failures, now,
			      id);
		am_warn("deploy", "instance %lld failed: %s", id, r);
		return;
	}
	long long wait = 1000LL << (failures > 0 ? failures - 1 : 0);
	if (wait > 60000)
		wait = 60000;
	if (inst_to(d, id, AM_INST_BACKOFF, reason) != 0)
		return;
	am_store_exec(d->srv->store, "UPDATE instances SET failures = ?, backoff_until = ?, stopped_at = ? WHERE id = ?", "iiii",
		      failures, now + wait, now, id);
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
	char rtname[160];
	const char *node = json_string_value(json_object_get(inst, "node_id"));
	struct am_runtime *rt = am_runtimes_get(&d->srv->runtimes, am_node_runtime(d->srv, node, rtname, sizeof rtname));
	if (!rt) {
		char why[300];
		am_fmt(why, sizeof why, AM_MSG_T("no runtime '%s' for node %s"), rtname, node ? node : AM_LOCAL_NODE);
		fail_or_backoff(d, inst, why, 1);
		return;
	}
	if (!json_string_value(json_object_get(model, "path"))) {
		fail_or_backoff(d, inst, AM_MSG_T("the model has no local files (not downloaded)"), 1);
		return;
	}
	int was = address_port(json_string_value(json_object_get(inst, "address")));
	int port = rt->ops->port(rt, was, port_taken, d);
	if (!port) {
		fail_or_backoff(d, inst, AM_MSG_T("no free port for the engine"), 1);
		return;
	}
	/* the port asked for, recorded with the intent (so no other start takes
	 * it); the runtime says where the workload serves once it started */
	char address[32];
	am_fmt(address, sizeof address, AM_DEPLOY_LOCAL_HOST ":%d", port);
	json_object_set_new(inst, "address", json_string(address));
	struct am_argv argv = { 0 }, env = { 0 };
	char *secret = NULL, prog[PATH_MAX];
	const struct am_engine_def *e = am_engine_find(json_string_value(json_object_get(dep, "engine")) ?: "");
	int missing = 0;
	if (build_command(d, dep, model, inst, rt->ops->containers, &argv, &env, &secret, &err) != 0 ||
	    (secret && rt->ops->containers &&
	     am_err_set(&err, AM_E_INVALID, "engine", "this engine reads its key from a file, which a pod cannot yet") != 0) ||
	    /* a program that is not there will not be there on a retry either
	     * (elsewhere, as in a container's image, the runtime's start says) */
	    (rt->ops->this_host &&
	     (missing = am_deploy_program_found(d, argv.v[0], e ? e->py_module : NULL, prog, sizeof prog, &err) != 0)) ||
	    (secret && write_secret(d, inst, secret, &err) != 0)) {
		if (missing)
			fail_now(d, inst, err.msg);
		else
			fail_or_backoff(d, inst, err.msg, 1);
		am_argv_free(&argv);
		am_argv_free(&env);
		free(secret);
		return;
	}
	free(secret);
	long long dep_id = json_integer_value(json_object_get(dep, "id"));
	long long replica = json_integer_value(json_object_get(inst, "replica"));
	char image[512] = "";
	if (rt->ops->containers && e)
		am_deploy_image(d, e, image, sizeof image);
	json_t *indices = parse_col(inst, "gpu_indices");
	char logname[96], note[PATH_MAX + 600];
	struct am_buf gpus;
	am_buf_init(&gpus, 1024);
	size_t i;
	json_t *v;
	json_array_foreach(indices, i, v)
		am_buf_printf(&gpus, "%s%lld", i ? "," : "", (long long)json_integer_value(v));
	int ngpus = (int)json_array_size(indices);
	json_decref(indices);
	am_fmt(logname, sizeof logname, "deployments/%lld/replica-%lld.log", dep_id, replica);
	am_fmt(note, sizeof note, "starting %s (attempt %lld) on GPUs %s, port %d", argv.v[0],
	       (long long)json_integer_value(json_object_get(inst, "restarts")) + 1,
	       json_string_value(json_object_get(inst, "gpu_indices")), port);
	/* the intent first: a kill between the start and the reference's
	 * commit leaves an engine that carries this marker, which the next
	 * start adopts */
	char marker[128];
	am_runtime_marker(d->srv->owner_id, "instance", id, marker, sizeof marker);
	/* the adapters this engine will have loaded: those it starts with (vLLM with LoRA enabled) */
	char *live = NULL;
	json_t *loras = parse_col(dep, "lora_modules");
	if (json_array_size(loras) && !strcmp(json_string_value(json_object_get(dep, "engine")) ?: "", "vllm")) {
		json_t *l = json_array();
		size_t li;
		json_t *lm;
		json_array_foreach(loras, li, lm)
			json_array_append_new(l, json_pack("{s:O,s:O}", "name", json_object_get(lm, "name"), "path",
							   json_object_get(lm, "path")));
		live = am_json_dump(l);
		json_decref(l);
	}
	json_decref(loras);
	am_store_exec(d->srv->store, "UPDATE instances SET runtime = ?, address = ?, spawn_marker = ?, lora_live = ? WHERE id = ?",
		      "ssssi", am_runtime_name(rt), address, marker, live, id);
	free(live);
	if (commit_point(d->srv->store) != 0) {
		am_argv_free(&argv);
		am_argv_free(&env);
		am_buf_free(&gpus);
		return; /* nothing started; the next pass tries again */
	}
	/* a hub model: where its files come from, for a cluster whose nodes fetch their own copy */
	struct am_rt_origin origin;
	json_t *origin_buf = NULL;
	int from_hub = hub_model_origin(d->srv, json_integer_value(json_object_get(model, "id")),
					json_string_value(json_object_get(model, "path")), &origin, &origin_buf) == 0;
	struct am_rt_spec spec = {
		.kind = "instance",
		.id = id,
		.argv = argv.v,
		.env = env.v,
		.node = json_string_value(json_object_get(inst, "node_id")),
		.gpus = am_buf_str(&gpus),
		.ngpus = ngpus,
		.log_name = logname,
		.note = note,
		.owner = marker,
		.port = port,
		.image = image[0] ? image : NULL,
		.health_path = e ? e->health_path : NULL,
		.model_path = json_string_value(json_object_get(model, "path")),
		.origin = from_hub ? &origin : NULL,
		.parent_id = dep_id,
	};
	char ref[AM_RT_REF_MAX], serr[300];
	int rc = rt->ops->start(rt, &spec, ref, sizeof ref, serr, sizeof serr);
	json_decref(origin_buf);
	am_buf_free(&gpus);
	am_argv_free(&argv);
	am_argv_free(&env);
	if (rc != 0) {
		fail_or_backoff(d, inst, serr, 1);
		return;
	}
	started(d, rt, id, dep_id, ref, address, json_string_value(json_object_get(inst, "api_key")),
		json_string_value(json_object_get(dep, "engine")), json_integer_value(json_object_get(inst, "started_at")) != 0);
	am_info("deploy", "started %s replica %lld: %s %s, port %d", json_string_value(json_object_get(dep, "name")), replica,
		am_runtime_name(rt), ref, port);
}

/* Records a started (or adopted) engine and watches it. */
static void started(struct am_deploy *d, struct am_runtime *rt, long long id, long long dep_id, const char *ref,
		    const char *address, const char *key, const char *engine, int restarted)
{
	long long now = am_wall_ms();
	char host[256];
	int port = 0;
	char where[300];
	if (rt->ops->endpoint(rt, ref, host, sizeof host, &port) == 0) { /* where the runtime says it serves */
		am_fmt(where, sizeof where, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port); /* an IPv6 pod IP */
		address = where;
	}
	inst_to(d, id, AM_INST_STARTING, "");
	am_store_exec(d->srv->store, "UPDATE instances SET runtime = ?, rt_ref = ?,"
		      " address = COALESCE(?, address), started_at = ?, ready_at = NULL, restarts = restarts + ?, updated_at = ?"
		      " WHERE id = ?", "sssiiii", am_runtime_name(rt), ref, address, now, (long long)(restarted ? 1 : 0), now, id);
	if (!watch(d, rt, id, dep_id, ref, address, key ? key : "", engine))
		due(d, dep_id); /* it ended before it could be watched (a program that fails at once): no event
				 * will come, so the next pass sees it gone now rather than at the safety pass */
}

int am_deploy_claim(struct am_deploy *d, const char *ref, const char *marker, long long id)
{
	struct am_store *st = d->srv->store;
	json_t *inst = NULL;
	am_store_row(st, &inst, "SELECT i.*, d.engine FROM instances i JOIN deployments d ON d.id = i.deployment_id"
		     " WHERE i.id = ?", "i", id);
	int rc = 0;
	struct am_runtime *rt = inst ? runtime_of(d, inst) : NULL;
	if (!rt)
		goto out;
	const char *rec = live_ref(inst);
	if (rec && rt->ops->same(rt, rec, ref)) {
		rc = 1; /* already adopted by its recorded reference */
		goto out;
	}
	const char *state = json_string_value(json_object_get(inst, "state"));
	const char *want = json_string_value(json_object_get(inst, "spawn_marker"));
	if (!want || strcmp(want, marker) || find(d, id) ||
	    (rec && rt->ops->status(rt, rec, NULL, 0) == AM_RT_RUNNING) ||
	    (strcmp(state, "pending") && strcmp(state, "backoff") && strcmp(state, "starting")))
		goto out;
	am_info("deploy", "adopted engine %s of instance %lld: aimaas stopped before it recorded the start", ref, id);
	started(d, rt, id, json_integer_value(json_object_get(inst, "deployment_id")), ref,
		json_string_value(json_object_get(inst, "address")), json_string_value(json_object_get(inst, "api_key")),
		json_string_value(json_object_get(inst, "engine")), json_integer_value(json_object_get(inst, "started_at")) != 0);
	rc = 1;
out:
	json_decref(inst);
	return rc;
}

/* The serving metrics an instance's engine exports, read by its engine's
 * names (vLLM's, SGLang's, llama-server's: am_engine_read_metrics). */
static void on_scrape(int status, const char *body, size_t len, void *data)
{
	struct handle *h = data;
	h->scrape = NULL;
	if (status != 200)
		return;
	if (h->rt->ops->alive) /* a scrape answered is a health check passed: one request, not two */
		h->rt->ops->alive(h->rt, h->ref);
	struct am_engine_stats st;
	am_engine_read_metrics(h->engine, body, len, &st);
	int moved = st.running || st.waiting || st.gen_tokens != h->gen_total || st.prompt_tokens != h->prompt_total;
	h->quiet = moved ? 0 : h->quiet + 1;
	h->running_reqs = st.running;
	h->waiting_reqs = st.waiting;
	h->kv = st.kv;
	h->prompt_total = st.prompt_tokens;
	double gen = st.gen_tokens;
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
	struct am_runtime *rt = h ? h->rt : runtime_of(d, inst);
	const char *ref = json_string_value(json_object_get(inst, "rt_ref"));
	char **lines = NULL;
	int n = am_runtime_tail(rt, ref, 400, &lines); /* two processes' tracebacks */
	const char *fatal = e ? am_engine_fatal_line(e, lines, n) : NULL;
	char reason[600];
	const char *last = NULL;
	for (int i = n - 1; i >= 0 && !last; i--)
		if (strncmp(lines[i], "=== aimaas", 10) != 0 && lines[i][0])
			last = lines[i];
	const char *st = h && h->exit_status[0] ? h->exit_status : AM_MSG_T("exited");
	if (!strncmp(st, "signal ", 7)) {
		int sig = (int)strtol(st + 7, NULL, 10);
		if (fatal)
			am_fmt(reason, sizeof reason, AM_MSG_T("killed by signal %d (%s): %.400s"), sig, strsignal(sig), fatal);
		else
			am_fmt(reason, sizeof reason, AM_MSG_T("killed by signal %d (%s)"), sig, strsignal(sig));
	} else if (fatal || last) {
		am_fmt(reason, sizeof reason, AM_MSG_T("%s: %.450s"), st, fatal ? fatal : last);
	} else {
		am_strlcpy(reason, st, sizeof reason);
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
	log_line(rt, ref, "the engine stopped (%s)", st);
	am_runtime_lines_free(lines, n);
	if (rt && ref) {
		rt->ops->stop(rt, ref, 0); /* children left behind keep GPU memory */
		if (!h)
			rt->ops->release(rt, ref);
	}
	if (h)
		handle_free(d, h);
	fail_or_backoff(d, inst, reason, 1);
}

static void stop_instance(struct am_deploy *d, json_t *inst, int remove)
{
	long long id = json_integer_value(json_object_get(inst, "id"));
	const char *ref = live_ref(inst);
	struct am_runtime *rt = runtime_of(d, inst);
	struct handle *h = find(d, id);
	if (ref && rt && rt->ops->status(rt, ref, NULL, 0) != AM_RT_ENDED) { /* its main process, or what it left */
		const char *state = json_string_value(json_object_get(inst, "state"));
		if (strcmp(state, "stopping") != 0) {
			inst_to(d, id, AM_INST_STOPPING, AM_MSG_T("stopping"));
			log_line(rt, ref, "stopping (asked to end, %d s before it is killed)", STOP_GRACE_MS / 1000);
		}
		rt->ops->stop(rt, ref, STOP_GRACE_MS); /* asks, then ends it past the grace */
		return;
	}
	/* nothing of it is left */
	if (h)
		handle_free(d, h);
	else if (rt && ref)
		rt->ops->release(rt, ref);
	if (remove) {
		char sp[PATH_MAX];
		secret_path(d, inst, sp, sizeof sp);
		unlink(sp); /* SGLang's key file, if it had one */
		am_store_exec(d->srv->store, "DELETE FROM instances WHERE id = ?", "i", id);
		am_due_set_add(&d->routes_due, json_integer_value(json_object_get(inst, "deployment_id")));
	} else {
		if (inst_to(d, id, AM_INST_STOPPED, NULL) == 0)
			am_store_exec(d->srv->store, "UPDATE instances SET stopped_at = ? WHERE id = ?", "ii", am_wall_ms(), id);
	}
}

/* 1 when inst's node is known and not ready (NotReady, cordoned, gone, or
 * its cluster unreachable): what was planned there cannot start. */
static int node_lost(struct am_deploy *d, json_t *inst)
{
	const char *node = json_string_value(json_object_get(inst, "node_id"));
	json_t *row = NULL;
	if (!node || am_store_row(d->srv->store, &row, "SELECT state FROM nodes WHERE id = ?", "s", node) != 0 || !row)
		return 0;
	const char *st = json_string_value(json_object_get(row, "state"));
	int lost = st && (!strcmp(st, "not_ready") || !strcmp(st, "gone") || !strcmp(st, "unknown"));
	json_decref(row);
	return lost;
}

/* How long a pod may wait for GPUs the cluster says it lacks before its
 * replica is placed again (AIMAAS_KUBE_REPLAN_MS: another, for tests). */
static long long replan_after_ms(void)
{
	const char *e = getenv("AIMAAS_KUBE_REPLAN_MS");
	long long v = e ? strtoll(e, NULL, 10) : 0;
	return v > 0 ? v : 20000;
}

/* ---- LoRA adapters at runtime ---- */

static void stop_instance(struct am_deploy *d, json_t *inst, int remove);

struct lora_call {
	struct am_deploy *d;
	long long id, dep_id;
	int load;
	char name[128];
	char path[PATH_MAX];
};

/* The message of a vLLM error body ({"message"} or {"error": {"message"}}). */
static void engine_message(const char *body, size_t len, char *out, size_t size)
{
	json_t *j = body && len ? json_loadb(body, len, 0, NULL) : NULL;
	const char *m = json_string_value(json_object_get(j, "message"));
	if (!m)
		m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
	am_fmt(out, size, "%.300s", m ? m : body && len ? body : "");
	if (!m && body && len < size)
		out[len] = '\0';
	json_decref(j);
}

static void lora_done(int status, const char *body, size_t len, void *data)
{
	struct lora_call *c = data;
	struct am_deploy *d = c->d;
	struct handle *h = find(d, c->id);
	if (h && h->lora_call == c) {
		h->lora_req = NULL;
		h->lora_call = NULL;
	}
	char msg[320];
	engine_message(body, len, msg, sizeof msg);
	/* idempotent: already there (a load), already gone (an unload) count as done */
	int ok = status == 200 || (c->load && status == 400 && strstr(msg, "already been loaded")) ||
		 (!c->load && (status == 404 || status == 400) && strstr(msg, "cannot be found"));
	if (ok) {
		json_t *row = NULL;
		am_store_row(d->srv->store, &row, "SELECT lora_live FROM instances WHERE id = ?", "i", c->id);
		json_t *live = json_loads(json_string_value(json_object_get(row, "lora_live")) ?: "[]", 0, NULL);
		json_decref(row);
		if (!json_is_array(live)) {
			json_decref(live);
			live = json_array();
		}
		for (size_t i = 0; i < json_array_size(live); i++)
			if (!strcmp(json_string_value(json_object_get(json_array_get(live, i), "name")) ?: "", c->name)) {
				json_array_remove(live, i);
				break;
			}
		if (c->load)
			json_array_append_new(live, json_pack("{s:s,s:s}", "name", c->name, "path", c->path));
		char *ls = am_json_dump(live);
		am_store_exec(d->srv->store, "UPDATE instances SET lora_live = ? WHERE id = ? AND lora_live IS NOT NULL", "si", ls,
			      c->id);
		free(ls);
		json_decref(live);
		am_info("deploy", "instance %lld: adapter %s %s at runtime", c->id, c->name, c->load ? "loaded" : "unloaded");
	} else if (status == 0) {
		wake_in(d, c->dep_id, 2000); /* the engine did not answer: asked again in a moment */
	} else {
		/* the engine refused: it restarts with the whole set, and says why */
		char why[600];
		am_fmt(why, sizeof why,
		       c->load ? AM_MSG_T("loading adapter %s at runtime failed (%d: %s); restarting with the adapters")
			       : AM_MSG_T("unloading adapter %s at runtime failed (%d: %s); restarting with the adapters"),
		       c->name, status, msg);
		am_warn("deploy", "instance %lld: %s", c->id, why);
		json_t *inst = NULL;
		am_store_row(d->srv->store, &inst, "SELECT * FROM instances WHERE id = ?", "i", c->id);
		if (inst && inst_to(d, c->id, AM_INST_STOPPING, why) == 0) {
			json_object_set_new(inst, "state", json_string("stopping"));
			stop_instance(d, inst, 1);
		}
		json_decref(inst);
	}
	am_deploy_touch(d, c->dep_id);
	free(c);
}

/* A running vLLM engine's adapters brought to its deployment's, one call at
 * a time: one it has that the deployment no longer lists (or at another
 * path) unloaded first, then one it lacks loaded (POST /v1/unload_lora_adapter,
 * /v1/load_lora_adapter; it runs with VLLM_ALLOW_RUNTIME_LORA_UPDATING). What
 * the engine has is written after each answer (instances.lora_live), so a
 * kill -9 in between goes on from the truth. An engine started without LoRA
 * (lora_live NULL) is left alone: the update restarted it. */
static void lora_sync(struct am_deploy *d, json_t *dep, json_t *inst, struct handle *h)
{
	const char *ls = json_string_value(json_object_get(inst, "lora_live"));
	if (!ls || h->lora_req || !h->port)
		return;
	json_t *live = json_loads(ls, 0, NULL), *want = parse_col(dep, "lora_modules");
	const char *act_name = NULL, *act_path = NULL;
	int load = 0;
	size_t i, k;
	json_t *l, *w;
	json_array_foreach(live, i, l) {
		const char *n = json_string_value(json_object_get(l, "name")), *p = json_string_value(json_object_get(l, "path"));
		int keep = 0;
		json_array_foreach(want, k, w)
			keep |= n && p && !strcmp(n, json_string_value(json_object_get(w, "name")) ?: "") &&
				!strcmp(p, json_string_value(json_object_get(w, "path")) ?: "");
		if (n && !keep) {
			act_name = n;
			break;
		}
	}
	if (!act_name)
		json_array_foreach(want, k, w) {
			const char *n = json_string_value(json_object_get(w, "name"));
			int have = 0;
			json_array_foreach(live, i, l)
				have |= n && !strcmp(n, json_string_value(json_object_get(l, "name")) ?: "");
			if (n && !have) {
				act_name = n;
				act_path = json_string_value(json_object_get(w, "path"));
				load = 1;
				break;
			}
		}
	if (act_name && (!load || act_path)) {
		struct lora_call *c = am_calloc(1, sizeof *c);
		c->d = d;
		c->id = h->id;
		c->dep_id = h->dep_id;
		c->load = load;
		am_strlcpy(c->name, act_name, sizeof c->name);
		am_strlcpy(c->path, act_path ? act_path : "", sizeof c->path);
		json_t *body = load ? json_pack("{s:s,s:s}", "lora_name", c->name, "lora_path", c->path)
				    : json_pack("{s:s}", "lora_name", c->name);
		char *b = am_json_dump(body);
		json_decref(body);
		h->lora_call = c;
		h->lora_req = am_client_request(d->srv->base, h->host, h->port, "POST",
						load ? "/v1/load_lora_adapter" : "/v1/unload_lora_adapter", h->key, b, strlen(b),
						120000, 64 * 1024, lora_done, c);
		free(b);
		if (!h->lora_req) {
			h->lora_call = NULL;
			free(c);
		}
	}
	json_decref(live);
	json_decref(want);
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
	if (!strcmp(state, "pending") || (!strcmp(state, "backoff") &&
					   json_integer_value(json_object_get(inst, "backoff_until")) <= am_wall_ms())) {
		if (node_lost(d, inst)) { /* its GPUs went with the node: the replica is placed anew */
			am_warn("deploy", "instance %lld: node %s is not ready; replica %lld is placed again", id,
				json_string_value(json_object_get(inst, "node_id")),
				(long long)json_integer_value(json_object_get(inst, "replica")));
			am_store_exec(d->srv->store, "DELETE FROM instances WHERE id = ?", "i", id);
			return;
		}
		spawn(d, dep, model, inst);
		return;
	}
	if (!strcmp(state, "starting") || !strcmp(state, "running")) {
		if (!h) { /* a supervisor restart that missed adoption: look now */
			const char *ref = live_ref(inst);
			struct am_runtime *rt = runtime_of(d, inst);
			if (ref && rt)
				h = watch(d, rt, id, json_integer_value(json_object_get(dep, "id")), ref,
					  json_string_value(json_object_get(inst, "address")),
					  json_string_value(json_object_get(inst, "api_key")),
					  json_string_value(json_object_get(dep, "engine")));
			if (!h) {
				crashed(d, dep, inst, NULL);
				return;
			}
		}
		if (gone(h)) {
			crashed(d, dep, inst, h);
			return;
		}
		int running = !strcmp(state, "running");
		const char *why = json_string_value(json_object_get(inst, "reason"));
		long long since = json_integer_value(json_object_get(inst, "started_at"));
		if (!running && why && !strncmp(why, "Pending: ", 9) && strstr(why, "Insufficient nvidia.com/gpu") &&
		    since && am_wall_ms() - since > replan_after_ms()) {
			/* the cluster disagrees with the plan (a workload aimaas did not see took the cards):
			 * the pod goes and the replica is placed again, on what is free now */
			am_warn("deploy", "instance %lld: the cluster cannot fit it where planned (%s); placed again", id, why);
			h->rt->ops->stop(h->rt, h->ref, 0);
			handle_free(d, h);
			am_store_exec(d->srv->store, "DELETE FROM instances WHERE id = ?", "i", id);
			return;
		}
		if (!running && why && !strncmp(why, "Pending: ", 9))
			wake_in(d, json_integer_value(json_object_get(dep, "id")), replan_after_ms() + 500);
		if (!running && json_integer_value(json_object_get(inst, "started_at")) &&
		    (uint64_t)(am_wall_ms() - json_integer_value(json_object_get(inst, "started_at"))) * 1000000ull > STARTUP_TIMEOUT_NS) {
			h->rt->ops->stop(h->rt, h->ref, 0);
			handle_free(d, h);
			fail_or_backoff(d, inst, AM_MSG_T("did not become healthy within 30 minutes"), 1);
			return;
		}
		if (h->probe_fails >= 6 && running) {
			h->rt->ops->stop(h->rt, h->ref, 0);
			handle_free(d, h);
			fail_or_backoff(d, inst, AM_MSG_T("stopped answering its health check (6 times in a row); restarted"), 1);
			return;
		}
		if (running)
			lora_sync(d, dep, inst, h);
		if (!running) /* the startup timeout, unless an event comes first */
			wake_in(d, json_integer_value(json_object_get(dep, "id")),
				json_integer_value(json_object_get(inst, "started_at")) + (int64_t)(STARTUP_TIMEOUT_NS / 1000000ull) -
					am_wall_ms() + 1000);
	}
}

/* ---- placement of replicas that have none ---- */

/* This thread's CPU time in ns. */
static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int place(struct am_deploy *d, json_t *dep, json_t *model, int replica, char *why, size_t whysize);

int am_deploy_place(struct am_deploy *d, json_t *dep, json_t *model, int replica, char *why, size_t whysize)
{
	uint64_t c0 = thread_cpu_ns();
	int rc = place(d, dep, model, replica, why, whysize);
	d->placements++;
	d->placement_cpu_ns += thread_cpu_ns() - c0;
	return rc;
}

void am_deploy_render_metrics(struct am_deploy *d, struct am_buf *out)
{
	if (!d)
		return;
	am_buf_printf(out, "# HELP aimaas_placements_total Replica placements planned (dry runs included), placed or refused.\n"
			   "# TYPE aimaas_placements_total counter\naimaas_placements_total %llu\n"
			   "# HELP aimaas_placement_cpu_seconds_total CPU time of those placements (the capacity view, the"
			   " planner, the reservations written).\n# TYPE aimaas_placement_cpu_seconds_total counter\n"
			   "aimaas_placement_cpu_seconds_total %.6f\n",
		      (unsigned long long)d->placements, (double)d->placement_cpu_ns / 1e9);
	am__idle_render_metrics(d, out);
}

/* One placement (am_deploy_place, measured). */
int am__deploy_plan_replica(json_t *dep, json_t *model, const struct am_capacity *cap, int replica, struct am_plan *out,
			    char *why, size_t whysize)
{
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
		/* this replica's slice of the pinned list */
		json_t *mine = json_array();
		for (int k = 0; k < req.tp; k++)
			json_array_append(mine, json_array_get(pinned, (size_t)(replica * req.tp + k)));
		char err[512];
		int bad = req.tp < 1 || req.tp > AM_PLAN_MAX ||
			  am_capacity_pin(cap, mine, req.pinned, AM_PLAN_MAX, &req.npinned, err, sizeof err) != 0 ||
			  req.npinned != req.tp;
		json_decref(mine);
		if (bad) {
			am_fmt(why, whysize, AM_MSG_T("pinned GPUs: %s"),
			       req.npinned == req.tp ? err : AM_MSG_T("fewer than the replica's GPUs"));
			json_decref(pinned);
			out->ok = 0;
			return -1;
		}
	}
	json_decref(pinned);
	am_planner_plan(cap->gpus, cap->n, &req, out);
	if (!out->ok) {
		am_strlcpy(why, out->reason, whysize);
		return -1;
	}
	return 0;
}

static int place(struct am_deploy *d, json_t *dep, json_t *model, int replica, char *why, size_t whysize)
{
	struct am_capacity cap;
	am_capacity_db_load(d->srv, &cap);
	struct am_plan p;
	int rc = -1;
	int tp = (int)json_integer_value(json_object_get(dep, "gpus_per_replica"));
	if (am__deploy_plan_replica(dep, model, &cap, replica, &p, why, whysize) != 0)
		goto out;
	json_t *ids = json_array(), *idx = json_array();
	const char *gid[AM_PLAN_MAX];
	for (int k = 0; k < tp; k++) {
		gid[k] = cap.gpus[p.choice[k]].id;
		json_array_append_new(ids, json_string(gid[k]));
		json_array_append_new(idx, json_integer(cap.gpus[p.choice[k]].index));
	}
	char *sids = am_json_dump(ids), *sidx = am_json_dump(idx);
	char key[64]; /* a nonce: the engine's key derives from it (am_deploy_engine_key) */
	am_rand_token("amn_", key, sizeof key);
	long long now = am_wall_ms();
	long long dep_id = json_integer_value(json_object_get(dep, "id"));
	rc = am_store_exec(d->srv->store,
			   "INSERT INTO instances(deployment_id, replica, node_id, gpus, gpu_indices, mem_per_gpu, mem_fraction,"
			   " dtype, api_key, state, created_at, updated_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
			   "iisssidssii", dep_id, (long long)replica, cap.gpus[p.choice[0]].node, sids, sidx,
			   (long long)p.reserve[0], p.fraction, p.dtype, key, now, now);
	if (rc == 0)
		rc = am_capacity_db_reserve(d->srv->store, "instance", am_store_last_id(d->srv->store), gid, p.reserve, tp);
	free(sids);
	free(sidx);
	json_decref(ids);
	json_decref(idx);
out:
	am_capacity_free(&cap);
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
		am_due_set_add(&d->routes_due, json_integer_value(json_object_get(dep, "id"))); /* routes carry its state */
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
			wake_in(d, dep_id, 500); /* its engines' ends, and the kill past their grace */
		} else if (deleting) {
			finish_task(d, dep, AM_TASK_SUCCEEDED, AM_MSG_T("deleted"));
			am_store_exec(st, "DELETE FROM deployments WHERE id = ?", "i", dep_id);
			am_due_set_add(&d->routes_due, dep_id);
			am_info("deploy", "deployment %s deleted", json_string_value(json_object_get(dep, "name")));
		} else {
			set_dep(d, dep, "stopped", "");
			finish_task(d, dep, AM_TASK_SUCCEEDED, AM_MSG_T("stopped"));
		}
		json_decref(insts);
		return;
	}
	if (json_is_integer(json_object_get(dep, "idle_at"))) { /* scaled to zero: it wants to run again on demand */
		const char *why = json_string_value(json_object_get(dep, "idle_reason")) ?: AM_MSG_T("idle");
		json_array_foreach(insts, i, inst)
			stop_instance(d, inst, 1);
		long long left = 0;
		am_store_int(st, &left, 0, "SELECT COUNT(*) FROM instances WHERE deployment_id = ?", "i", dep_id);
		if (left) {
			set_dep(d, dep, "stopping", why);
			wake_in(d, dep_id, 500);
		} else {
			set_dep(d, dep, "idle", why);
			finish_task(d, dep, AM_TASK_SUCCEEDED, why);
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
	am_store_rows(st, &insts, "SELECT state, reason, replica, backoff_until FROM instances WHERE deployment_id = ?", "i",
		      dep_id);
	char reasons[1024] = "";
	int64_t wake = 0; /* when to look again without an event: 0, never */
	json_array_foreach(insts, i, inst) {
		const char *s = json_string_value(json_object_get(inst, "state"));
		int64_t at = 0;
		if (!strcmp(s, "stopping") || (!strcmp(s, "pending") && model))
			at = am_wall_ms() + 500; /* a stop to see through; a start to try again */
		else if (!strcmp(s, "backoff"))
			at = json_integer_value(json_object_get(inst, "backoff_until"));
		if (at && (!wake || at < wake))
			wake = at;
		if (json_integer_value(json_object_get(inst, "replica")) >= replicas)
			continue;
		total++;
		running += !strcmp(s, "running");
		failed += !strcmp(s, "failed");
		const char *r = json_string_value(json_object_get(inst, "reason"));
		if (r && r[0] && !reasons[0])
			am_strlcpy(reasons, r, sizeof reasons);
	}
	reason = reasons;
	if (waiting[0] && model && json_is_integer(json_object_get(dep, "woken_at")))
		am__idle_make_room(d, dep, model, waiting, sizeof waiting); /* a request waits for it */
	if (waiting[0] && model) /* capacity may free up without an event here */
		wake = wake && wake < am_wall_ms() + 1000 ? wake : am_wall_ms() + 1000;
	else if (model && total < replicas) /* a replica's row went in this pass (a restart): placed at the next */
		wake = am_wall_ms();
	if (wake)
		wake_in(d, dep_id, wake - am_wall_ms());
	if (!model)
		set_dep(d, dep, "failed", AM_MSG_T("the model was deleted"));
	else if (failed)
		set_dep(d, dep, "failed", reason);
	else if (running == replicas) {
		set_dep(d, dep, "running", "");
		am__idle_started(d, dep);
	} else if (waiting[0] && total < replicas)
		set_dep(d, dep, "waiting", waiting);
	else
		set_dep(d, dep, "starting", reason);
	long long task = json_integer_value(json_object_get(dep, "task_id"));
	if (task) {
		if (failed)
			finish_task(d, dep, AM_TASK_FAILED, reason);
		else if (running == replicas)
			finish_task(d, dep, AM_TASK_SUCCEEDED, AM_MSG_T("running"));
		else
			am_task_update(st, task, AM_TASK_RUNNING, replicas ? 100 * running / replicas : 0,
				       waiting[0] ? waiting : reason[0] ? reason : AM_MSG_T("starting"));
	}
	json_decref(insts);
	json_decref(model);
}

/* One point per deployment with live instances, as often as engines are
 * scraped; a deployment gone for an hour loses its history. */
/* A deployment's serving metrics from its engines' last scrapes, into
 * v[0..nv): requests running and waiting, mean KV cache usage, tokens per
 * second, generation and prompt tokens in all. */
static void dep_metrics(struct am_deploy *d, long long dep_id, double *v, int nv)
{
	double running = 0, waiting = 0, kv = 0, tok = 0, gen = 0, prompt = 0;
	int n = 0;
	for (struct handle *h = *dbucket(d, dep_id); h; h = h->dnext) {
		if (h->dep_id != dep_id)
			continue;
		running += h->running_reqs;
		waiting += h->waiting_reqs;
		kv += h->kv;
		tok += h->tok_s;
		gen += h->gen_total;
		prompt += h->prompt_total;
		n++;
	}
	double all[6] = { running, waiting, n ? kv / n : 0.0, tok, gen, prompt };
	memcpy(v, all, (size_t)(nv < 6 ? nv : 6) * sizeof *v);
}

/* The index in d->hist of dep_id's, or where it would go (*found 0). */
static int hist_find(struct am_deploy *d, long long dep_id, int *found)
{
	int lo = 0, hi = d->nhist;
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		if (d->hist[mid].dep_id < dep_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < d->nhist && d->hist[lo].dep_id == dep_id;
	return lo;
}

static void record_history(struct am_deploy *d)
{
	int64_t wall = am_wall_ms();
	for (struct handle *h = d->handles; h; h = h->next) {
		int found, k = hist_find(d, h->dep_id, &found);
		if (found && am_series_last(&d->hist[k].s) == wall)
			continue; /* this deployment has its point already */
		if (!found) {
			if (d->nhist == d->caphist) {
				d->caphist = d->caphist ? d->caphist * 2 : 64;
				d->hist = am_realloc(d->hist, (size_t)d->caphist * sizeof *d->hist);
			}
			memmove(&d->hist[k + 1], &d->hist[k], (size_t)(d->nhist - k) * sizeof *d->hist);
			d->hist[k].dep_id = h->dep_id;
			am_series_init(&d->hist[k].s, HIST_CAP, 4);
			d->nhist++;
		}
		double v[4];
		dep_metrics(d, h->dep_id, v, 4);
		am_series_push(&d->hist[k].s, wall, v);
	}
	int out = 0; /* a deployment gone for an hour loses its history */
	for (int k = 0; k < d->nhist; k++) {
		if (wall - am_series_last(&d->hist[k].s) > 3600000)
			am_series_free(&d->hist[k].s);
		else
			d->hist[out++] = d->hist[k];
	}
	d->nhist = out;
}

/* Every scrape interval, on its own timer and without the database: reads
 * running engines' /metrics, keeps their logs under the cap (a quiet
 * engine's at its scrapes) and records a history point. */
static void on_scrape_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct am_deploy *d = arg;
	d->scrape_round++;
	for (struct handle *h = d->handles; h; h = h->next) {
		if (h->exited)
			continue;
		/* an engine idle three times in a row is read every fourth time (its
		 * numbers do not move; its history points are the same meanwhile):
		 * 20 s at the default 5 s, the local runtime's interval for a
		 * settled engine, so the answer (alive) stands in for its check */
		int due_now = h->quiet < 3 || (d->scrape_round + (unsigned)h->id) % 4 == 0;
		if (h->running && !h->scrape && h->mc && due_now)
			h->scrape = am_client_conn_get(h->mc, "/metrics", h->key, 3000, 4u << 20, on_scrape, h);
		if (due_now || !h->running) /* an idle engine writes little to its log */
			h->rt->ops->rotate(h->rt, h->ref, d->srv->cfg.log_max_bytes ? d->srv->cfg.log_max_bytes : LOG_CAP);
	}
	record_history(d);
}

json_t *am_deploy_history(struct am_deploy *d, long long deployment_id, int64_t since_ms, int max)
{
	static const char *const names[] = { "requests_running", "requests_waiting", "kv_cache_usage", "tokens_per_second",
					     NULL };
	int found, k = hist_find(d, deployment_id, &found);
	if (found)
		return am_series_json(&d->hist[k].s, names, since_ms, max);
	struct am_series empty;
	am_series_init(&empty, 1, 4);
	json_t *j = am_series_json(&empty, names, 0, 1);
	am_series_free(&empty);
	return j;
}

/* One deployment in its own transaction (NULL row: it is gone). */
static void reconcile_dep(struct am_deploy *d, json_t *dep)
{
	if (am_store_begin(d->srv->store) != 0) {
		due(d, json_integer_value(json_object_get(dep, "id"))); /* the next pass tries again */
		return;
	}
	reconcile_one(d, dep);
	if (am_store_commit(d->srv->store) != 0)
		am_store_rollback(d->srv->store);
}

/* How long one pass may run before it yields to the loop: a thousand
 * deployments due at once (a start-up that restarts them, the safety pass)
 * are worked through in slices, with the loop's requests and health checks
 * served between them, not in one stall of a second or more. */
#define PASS_SLICE_NS (10ull * 1000000ull)

/* A pass: over the due deployments (every one when all are due), one row
 * and one transaction each, for at most PASS_SLICE_NS (what is left is
 * due in the next pass, right after the loop has polled); then the routes,
 * when something they depend on changed. */
static void reconcile(struct am_deploy *d)
{
	d->kicked = 0;
	if (d->all_due) {
		d->all_due = 0;
		json_t *all = NULL;
		if (am_store_rows(d->srv->store, &all, "SELECT id FROM deployments ORDER BY id", NULL) == 0) {
			size_t i;
			json_t *row;
			json_array_foreach(all, i, row)
				am_due_set_add(&d->due, json_integer_value(json_object_get(row, "id")));
		} else {
			d->all_due = 1;
		}
		json_decref(all);
	}
	long long *ids;
	size_t n = am_due_set_take(&d->due, &ids), i;
	uint64_t t0 = am_now_ns();
	for (i = 0; i < n && (i == 0 || am_now_ns() - t0 < PASS_SLICE_NS); i++) {
		json_t *dep = NULL;
		if (am_store_row(d->srv->store, &dep, "SELECT * FROM deployments WHERE id = ?", "i", ids[i]) == 0 && dep)
			reconcile_dep(d, dep);
		json_decref(dep);
	}
	int left = i < n;
	for (; i < n; i++) /* the rest of the slice's work: next pass */
		am_due_set_add(&d->due, ids[i]);
	free(ids);
	/* ready replicas, names and states are the gateway's routes (a full
	 * rebuild once the pass has gone through everything) */
	if (d->routes_all && !left) {
		d->routes_all = 0;
		am_due_set_clear(&d->routes_due);
		am_routes_publish(d->srv);
	} else if (d->routes_due.n && !d->routes_all) {
		long long *rids;
		size_t rn = am_due_set_take(&d->routes_due, &rids);
		am_routes_publish_deps(d->srv, rids, rn);
		free(rids);
	}
	if (left) { /* after the loop has polled: a timer, not an activation (which runs first) */
		static const struct timeval now = { 0, 0 };
		event_del(d->kick);
		d->kicked = 1;
		evtimer_add(d->kick, &now);
	} else if (d->all_due || d->due.n) { /* asked for during the pass */
		schedule(d);
	}
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	reconcile(arg);
}

/* The safety pass: whatever an event missed (a row changed by hand, a
 * node's capacity) is seen within AIMAAS_RECONCILE_FULL_MS. */
static void on_full(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	am_deploy_kick(arg);
}

void am_deploy_restart(struct am_deploy *d, long long deployment_id)
{
	json_t *insts = NULL;
	am_store_rows(d->srv->store, &insts, "SELECT * FROM instances WHERE deployment_id = ?", "i", deployment_id);
	size_t i;
	json_t *inst;
	json_array_foreach(insts, i, inst) {
		if (live_ref(inst))
			stop_instance(d, inst, 1);
		else
			am_store_exec(d->srv->store, "DELETE FROM instances WHERE id = ?", "i",
				      (long long)json_integer_value(json_object_get(inst, "id")));
	}
	json_decref(insts);
	am_deploy_touch(d, deployment_id);
}

void am_deploy_kick(struct am_deploy *d)
{
	d->all_due = 1;
	d->routes_all = 1;
	schedule(d);
}

void am_deploy_touch(struct am_deploy *d, long long deployment_id)
{
	am_due_set_add(&d->routes_due, deployment_id); /* the row may have changed names, aliases, adapters */
	due(d, deployment_id);
}

struct am_deploy *am_deploy_new(struct am_server *srv)
{
	struct am_deploy *d = am_calloc(1, sizeof *d);
	d->srv = srv;
	const char *ms = getenv("AIMAAS_SCRAPE_MS");
	long long v = ms ? strtoll(ms, NULL, 10) : 0;
	d->scrape_ns = (uint64_t)(v >= 100 && v <= 3600000 ? v : 5000) * 1000000ull;
	ms = getenv("AIMAAS_RECONCILE_FULL_MS");
	v = ms ? strtoll(ms, NULL, 10) : 0;
	d->full_ns = (uint64_t)(v >= 100 && v <= 86400000 ? v : 60000) * 1000000ull;
	return d;
}

int am_deploy_start(struct am_deploy *d)
{
	struct am_store *st = d->srv->store;
	json_t *insts = NULL;
	am_store_rows(st, &insts, "SELECT i.*, d.engine FROM instances i JOIN deployments d ON d.id = i.deployment_id"
		      " WHERE i.rt_ref IS NOT NULL AND i.state IN ('starting','running','stopping')", NULL);
	size_t i;
	json_t *inst;
	json_array_foreach(insts, i, inst) {
		const char *ref = live_ref(inst);
		long long id = json_integer_value(json_object_get(inst, "id"));
		struct am_runtime *rt = runtime_of(d, inst);
		if (rt && ref && watch(d, rt, id, json_integer_value(json_object_get(inst, "deployment_id")), ref,
				       json_string_value(json_object_get(inst, "address")),
				       json_string_value(json_object_get(inst, "api_key")),
				       json_string_value(json_object_get(inst, "engine")))) {
			am_info("deploy", "re-adopted engine %s %s (instance %lld, %s)", am_runtime_name(rt), ref, id,
				json_string_value(json_object_get(inst, "state")));
		} else if (rt && ref && !strcmp(json_string_value(json_object_get(inst, "state")), "stopping") &&
			   rt->ops->status(rt, ref, NULL, 0) != AM_RT_ENDED) {
			; /* what is left of it is ended by the next pass */
		} else {
			am_warn("deploy", "engine %s of instance %lld is gone; it will be restarted", ref ? ref : "?", id);
			if (strcmp(json_string_value(json_object_get(inst, "state")), "stopping") != 0)
				inst_to(d, id, AM_INST_PENDING, AM_MSG_T("the engine was gone after aimaas restarted"));
		}
	}
	json_decref(insts);
	struct event_base *base = d->srv->base;
	d->full = event_new(base, -1, EV_PERSIST, on_full, d);
	am_prio_background(d->full);
	struct timeval tv = { (time_t)(d->full_ns / 1000000000ull), (suseconds_t)(d->full_ns % 1000000000ull / 1000) };
	event_add(d->full, &tv);
	d->scrape_ev = event_new(base, -1, EV_PERSIST, on_scrape_tick, d);
	am_prio_background(d->scrape_ev);
	struct timeval sv = { (time_t)(d->scrape_ns / 1000000000ull), (suseconds_t)(d->scrape_ns % 1000000000ull / 1000) };
	event_add(d->scrape_ev, &sv);
	d->wakes = am_due_wakes_new(base, on_wake, d);
	d->kick = event_new(base, -1, 0, on_kick, d);
	am_prio_background(d->kick);
	d->idle = am__idle_new(d);
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
			h->rt->ops->stop(h->rt, h->ref, STOP_GRACE_MS);
		uint64_t deadline = am_now_ns() + STOP_GRACE_NS;
		int alive = 1;
		while (alive && am_now_ns() < deadline) {
			alive = 0;
			for (struct handle *h = d->handles; h; h = h->next) /* a cluster's pods are not waited for */
				alive |= !h->rt->ops->containers && h->rt->ops->status(h->rt, h->ref, NULL, 0) != AM_RT_ENDED;
			if (alive)
				usleep(100000);
		}
		for (struct handle *h = d->handles; h; h = h->next)
			h->rt->ops->stop(h->rt, h->ref, 0);
	}
	am__idle_free(d->idle);
	while (d->handles)
		handle_free(d, d->handles);
	for (int k = 0; k < d->nhist; k++)
		am_series_free(&d->hist[k].s);
	free(d->hist);
	if (d->kick)
		event_free(d->kick);
	if (d->full)
		event_free(d->full);
	am_due_wakes_free(d->wakes);
	if (d->scrape_ev)
		event_free(d->scrape_ev);
	am_due_set_free(&d->due);
	am_due_set_free(&d->routes_due);
	free(d);
}

json_t *am_deploy_metrics(struct am_deploy *d, long long deployment_id)
{
	double v[6];
	dep_metrics(d, deployment_id, v, 6);
	return json_pack("{s:f,s:f,s:f,s:f,s:f,s:f}", "requests_running", v[0], "requests_waiting", v[1], "kv_cache_usage",
			 v[2], "tokens_per_second", v[3], "generation_tokens_total", v[4], "prompt_tokens_total", v[5]);
}

/* The file of an instance's log (inst: a row with deployment_id, replica,
 * runtime and rt_ref): its runtime's, or, for one never started (or whose
 * start failed), where the local runtime writes it. */
static void inst_log_path(struct am_deploy *d, json_t *inst, char *path, size_t size)
{
	struct am_runtime *rt = runtime_of(d, inst);
	const char *ref = json_string_value(json_object_get(inst, "rt_ref"));
	if (!rt || !ref || rt->ops->log_file(rt, ref, path, size) != 0)
		am_fmt(path, size, "%s/logs/deployments/%lld/replica-%lld.log", d->srv->cfg.data_dir,
		       (long long)json_integer_value(json_object_get(inst, "deployment_id")),
		       (long long)json_integer_value(json_object_get(inst, "replica")));
}

json_t *am_deploy_last_lines(struct am_deploy *d, json_t *inst, int n)
{
	json_t *arr = json_array();
	char path[PATH_MAX], **lines;
	inst_log_path(d, inst, path, sizeof path);
	int k = am_file_tail(path, n, &lines);
	for (int i = 0; i < k; i++) {
		json_t *s = json_string(lines[i]);
		json_array_append_new(arr, s ? s : json_string("(not UTF-8)"));
	}
	am_file_lines_free(lines, k);
	return arr;
}

int am_deploy_log_file(struct am_deploy *d, long long deployment_id, const char *instance, char *path, size_t size)
{
	json_t *row = NULL;
	const char *inst = instance ? instance : "";
	if (inst[0])
		am_store_row(d->srv->store, &row, "SELECT deployment_id, replica, runtime, rt_ref FROM instances"
			     " WHERE deployment_id = ? AND (id = ?2 OR (replica = ?3 AND ?4))", "isii", deployment_id, inst,
			     (long long)strtol(inst, NULL, 10), (long long)(strlen(inst) < 3));
	else
		am_store_row(d->srv->store, &row, "SELECT deployment_id, replica, runtime, rt_ref FROM instances"
			     " WHERE deployment_id = ? ORDER BY replica LIMIT 1", "i", deployment_id);
	if (row)
		inst_log_path(d, row, path, size);
	else /* not placed (yet): the replica's log is where it will be */
		am_fmt(path, size, "%s/logs/deployments/%lld/replica-%s.log", d->srv->cfg.data_dir, deployment_id,
		       inst[0] && strlen(inst) < 3 ? inst : "0");
	json_decref(row);
	return 0;
}

void am_deploy_describe(struct am_deploy *d, json_t *inst, json_t *out)
{
	const char *address = json_string_value(json_object_get(inst, "address"));
	json_object_set_new(out, "runtime", json_string(json_string_value(json_object_get(inst, "runtime")) ?: "local"));
	json_object_set_new(out, "address", address ? json_string(address) : json_null());
	int port = address_port(address);
	json_object_set_new(out, "port", port ? json_integer(port) : json_null());
	json_object_set_new(out, "pid", json_null());
	struct am_runtime *rt = runtime_of(d, inst);
	const char *ref = live_ref(inst);
	if (rt && ref) {
		json_t *more = rt->ops->describe(rt, ref);
		json_object_update(out, more);
		json_decref(more);
	}
}

/* See deploy_internal.h. */
struct am_idle *am__deploy_idle(struct am_deploy *d)
{
	return d->idle;
}

struct am_server *am__deploy_server(struct am_deploy *d)
{
	return d->srv;
}

struct am__deploy_probe *am__deploy_probes(struct am_deploy *d)
{
	return d->probes;
}
