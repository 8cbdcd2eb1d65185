/* aimaas: the command line. `aimaas serve` runs the platform. */
#include <dirent.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "am_opts.h"
#include "am_server.h"
#include "api/am_api.h"
#include "api/am_ui.h"
#include "auth/am_auth.h"
#include "auth/am_limiter.h"
#include "base/am_buf.h"
#include "base/am_err.h"
#include "base/am_log.h"
#include "base/am_mem.h"
#include "base/am_path.h"
#include "base/am_rand.h"
#include "base/am_time.h"
#include "base/am_work.h"
#include "deploy/am_deploy.h"
#include "deploy/am_routes.h"
#include "finetune/am_finetune.h"
#include "gateway/am_gateway.h"
#include "gpu/am_inventory.h"
#include "http/am_http.h"
#include "http/am_prio.h"
#include "hub/hub_catalog.h"
#include "hub/hub_cli.h"
#include "cli/cli_cmd.h"
#include "hub/hub_models.h"
#include "kube/kube_cluster.h"
#include "node/am_node.h"
#include "ops/am_logs.h"
#include "ops/am_ops.h"
#include "runtime/rt_local.h"
#include "sched/am_capacity_db.h"
#include "store/am_store.h"
#include "task/am_task.h"
#include "usage/am_prune.h"
#include "usage/am_usage_sink.h"

static const char usage_main[] =
	"aimaas " AM_VERSION ": self-hosted AI models as a service\n"
	"\n"
	"usage: aimaas <command> [options]\n"
	"\n"
	"commands:\n"
	"  serve      run the platform: API, console, gateway, runtimes\n"
	"  download   fetch a model from Hugging Face or ModelScope into a folder\n"
	"  backup     copy the database while aimaas runs (aimaas backup FILE)\n"
	"  restore    put a backup in place (aimaas restore FILE; aimaas stopped)\n"
	"  check      check a data dir: database, permissions, orphan files\n"
	"  version    print the version\n"
	"\n"
	"Run 'aimaas serve --help' for the server's options.\n"
	"\n"
	"Client commands (speak a running server's API):\n";

static const char usage_serve[] =
	"usage: aimaas serve [options]\n"
	"\n"
	"  --listen HOST:PORT     address to serve on (AIMAAS_LISTEN; default 0.0.0.0:8080)\n"
	"  --data-dir DIR         database, logs and job folders (AIMAAS_DATA_DIR; default ./data)\n"
	"  --log-level LEVEL      debug, info, warn or error (AIMAAS_LOG_LEVEL; default info)\n"
	"  --model-root DIR       a folder models and datasets may live in; repeatable\n"
	"                         (AIMAAS_MODEL_ROOT, ':'-separated; default <data-dir>/models)\n"
	"  --sim-gpus SPEC        add simulated GPUs to the local node, for tests and demos;\n"
	"                         repeatable (AIMAAS_SIM_GPUS, ';'-separated). SPEC is\n"
	"                         [NODE/]COUNTxSIZE[:NAME][@CC], e.g. \"4x11GiB:NVIDIA GeForce RTX 2080 Ti\";\n"
	"                         NODE/ puts them on a simulated node of that name, e.g.\n"
	"                         \"node-b/8x80GiB:NVIDIA H100\" (its engines run here; only\n"
	"                         the GPU accounting is per node)\n"
	"  --session-ttl SECONDS  console session lifetime (AIMAAS_SESSION_TTL; default 43200)\n"
	"  --max-body BYTES       request body limit of the API (AIMAAS_MAX_BODY; default 1048576)\n"
	"  --gpu-interval MS      GPU sampling period (AIMAAS_GPU_INTERVAL; default 5000)\n"
	"  --header-timeout S     a request's head must arrive within S seconds (AIMAAS_HEADER_TIMEOUT; default 10)\n"
	"  --idle-timeout S       close keep-alive connections idle for S seconds (default 75)\n"
	"  --gateway-threads N    worker loops for /v1 (AIMAAS_GATEWAY_THREADS; default: CPUs)\n"
	"  --gateway-io-uring=false  a system call per /v1 socket read and send, rather than a loop\n"
	"                         turn's in one io_uring submission (AIMAAS_GATEWAY_IO_URING; default:\n"
	"                         true, where the kernel allows it)\n"
	"  --gateway-max-body B   /v1 request body limit (default 33554432: base64 images)\n"
	"  --gateway-keepalive-ms MS  SSE comment interval while a first token is pending (default 10000)\n"
	"  --cold-start-wait S    how long a request for a deployment scaled to zero waits for it to start\n"
	"                         before a 503 with Retry-After (AIMAAS_COLD_START_WAIT; default 300)\n"
	"  --ui-dir DIR           the built web console (AIMAAS_UI_DIR; default share/aimaas/ui\n"
	"                         beside the binary, or build/ui in the source tree)\n"
	"  --metrics-token-file F /metrics answers a scrape with 'Authorization: Bearer <the\n"
	"                         file's first line>' (AIMAAS_METRICS_TOKEN_FILE, or the token\n"
	"                         itself in AIMAAS_METRICS_TOKEN); an admin's token or session\n"
	"                         also works\n"
	"  --demo                 mark this server as a demonstration (simulated GPUs and engines):\n"
	"                         the console says so on every page (AIMAAS_DEMO=1; `make demo` sets it)\n"
	"  --metrics-public       /metrics open to anyone (AIMAAS_METRICS_PUBLIC=1; default: not,\n"
	"                         since it names every deployment and its traffic)\n"
	"  --stop-engines-on-exit stop every engine when aimaas stops (default: engines keep\n"
	"                         serving while aimaas is down or being upgraded)\n"
	"  --dataset-max-bytes B  the largest dataset upload (AIMAAS_DATASET_MAX_BYTES; default 268435456)\n"
	"  --usage-retention-days D  usage by the minute is kept D days (AIMAAS_USAGE_RETENTION_DAYS;\n"
	"                         default 30); its hourly and daily totals stay\n"
	"  --usage-rollup-retention-days D  the hourly and daily usage totals are kept D days\n"
	"                         (AIMAAS_USAGE_ROLLUP_RETENTION_DAYS; default 730)\n"
	"  --task-retention-days D, --task-keep N  finished tasks are deleted after D days\n"
	"                         (default 90) or beyond the newest N (default 100000); running\n"
	"                         ones and those a deployment, job or download names stay\n"
	"  --prune-interval S     seconds between pruning passes (AIMAAS_PRUNE_INTERVAL; default 600)\n"
	"  --access-log           log every API call at INFO (AIMAAS_ACCESS_LOG=1; default: successful\n"
	"                         calls at DEBUG, errors and slow calls always)\n"
	"  --nvml-lib LIB         NVML library to load (AIMAAS_NVML_LIB; default libnvidia-ml.so.1)\n"
	"  --nvidia-smi PATH      nvidia-smi to run when NVML is missing (AIMAAS_NVIDIA_SMI; default: from PATH)\n"
	"  --log-max-mb N         an engine's or job's log past N MiB is rotated to .1 (AIMAAS_LOG_MAX_MB; default 50)\n"
	"  --logs-total-max-mb N  all engine and job logs together: past N MiB the oldest of stopped\n"
	"                         deployments and finished jobs are removed (AIMAAS_LOGS_TOTAL_MAX_MB; default 2048)\n"
	"  --config FILE          the configuration file (AIMAAS_CONFIG; default " AM_OPTS_CONFIG_DEFAULT ",\n"
	"                         read when it exists; \"\": none). Its `key = value` lines take the\n"
	"                         long flags' names; a flag beats the environment, which beats the file\n"
	"  --print-config         print the effective configuration, each value's source, and exit\n"
	"  -h, --help             this text\n"
	"\n"
	"Every flag also has a variable: AIMAAS_ and its name in capitals, '-' as '_'\n"
	"(--header-timeout: AIMAAS_HEADER_TIMEOUT; a switch such as --demo: AIMAAS_DEMO=1).\n"
	"\n"
	"environment only (secrets: --print-config says only whether they are set):\n"
	"  AIMAAS_ADMIN_PASSWORD  password of the 'admin' user created on first start\n"
	"                         (default: a random one, printed once to the log)\n"
	"  AIMAAS_METRICS_TOKEN   the bearer token of /metrics itself (rather than a file)\n"
	"  AIMAAS_HF_TOKEN (or HF_TOKEN), AIMAAS_MODELSCOPE_TOKEN, AIMAAS_CLUSTER_KEY\n";

/* for main_handoff, whose data is the API's */
static struct am_gateway *g_gateway;

static int add_root(struct am_config *c, const char *dir)
{
	if (c->nroots == AM_MAX_ROOTS) {
		fprintf(stderr, "aimaas: at most %d --model-root folders\n", AM_MAX_ROOTS);
		return -1;
	}
	char real[PATH_MAX];
	struct stat sb;
	if (!realpath(dir, real) || stat(real, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		fprintf(stderr, "aimaas: --model-root %s is not an existing folder\n", dir);
		return -1;
	}
	c->model_roots[c->nroots++] = am_strdup(real);
	return 0;
}

/* The bearer token of /metrics: the first line of file, else
 * AIMAAS_METRICS_TOKEN, else none ("" ). */
static int metrics_token(const char *file, char *out, size_t size)
{
	char buf[512] = "";
	out[0] = '\0';
	if (file) {
		int fd = open(file, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
		if (fd >= 0)
			close(fd);
		if (n < 0) {
			fprintf(stderr, "aimaas: cannot read --metrics-token-file %s: %s\n", file, strerror(errno));
			return -1;
		}
		buf[n] = '\0';
	} else {
		const char *e = getenv("AIMAAS_METRICS_TOKEN");
		if (!e)
			return 0;
		am_strlcpy(buf, e, sizeof buf);
	}
	/* a secret: engines and tools that aimaas starts inherit its environment */
	unsetenv("AIMAAS_METRICS_TOKEN");
	if (!file && !buf[0])
		return 0;
	buf[strcspn(buf, "\r\n")] = '\0';
	size_t n = strlen(buf);
	while (n && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = '\0';
	if (n < 16 || n >= size) {
		fprintf(stderr, "aimaas: the metrics token must be 16 to %zu characters on one line (got %zu)\n", size - 1, n);
		return -1;
	}
	am_strlcpy(out, buf, size);
	return 0;
}

/* The gateway's wish to start a deployment scaled to zero (its threads). */
static void wake_deployment(void *data, long long dep_id)
{
	struct am_server *srv = data;
	am_deploy_wake(srv->deploy, dep_id);
}

/* The options (am_opts: flag > env > file > default) into c; *opts keeps
 * the strings c points to (free it after c). Returns 0, 1 when only help
 * or --print-config was asked (printed), -1 after printing why. Creates the
 * data dir and its models folder, except for --print-config. */
static int parse_serve(int argc, char **argv, struct am_config *c, struct am_opts **opts)
{
	struct am_opts *o;
	int rc = am_opts_load(argc, argv, usage_serve, &o);
	if (rc != 0)
		return rc;
	*opts = o;
	am_strlcpy(c->listen, am_opts_str(o, AM_OPT_LISTEN), sizeof c->listen);
	am_strlcpy(c->data_dir, am_opts_str(o, AM_OPT_DATA_DIR), sizeof c->data_dir);
	am_log_parse_level(am_opts_str(o, AM_OPT_LOG_LEVEL), &c->log_level); /* checked by am_opts */
	const char *ui = am_opts_str(o, AM_OPT_UI_DIR);
	if (am_ui_locate(ui, c->ui_dir, sizeof c->ui_dir) != 0) {
		fprintf(stderr, "aimaas: --ui-dir %s is not an existing folder\n", ui);
		return -1;
	}
	if (!ui && c->ui_dir[0])
		am_opts_derive(o, AM_OPT_UI_DIR, c->ui_dir);
	long long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	c->gateway_threads = (int)am_opts_num(o, AM_OPT_GATEWAY_THREADS, cpus < 1 ? 1 : cpus > 256 ? 256 : cpus);
	c->gateway_max_body = (size_t)am_opts_num(o, AM_OPT_GATEWAY_MAX_BODY, 32LL << 20);
	c->gateway_keepalive_ms = (int)am_opts_num(o, AM_OPT_GATEWAY_KEEPALIVE_MS, 10000);
	c->cold_start_wait_s = (int)am_opts_num(o, AM_OPT_COLD_START_WAIT, 300);
	c->dataset_max_bytes = (size_t)am_opts_num(o, AM_OPT_DATASET_MAX_BYTES, 256LL << 20);
	c->log_max_bytes = (unsigned long long)am_opts_num(o, AM_OPT_LOG_MAX_MB, 50) << 20;
	c->logs_total_max_bytes = (unsigned long long)am_opts_num(o, AM_OPT_LOGS_TOTAL_MAX_MB, 2048) << 20;
	c->session_ttl_s = am_opts_num(o, AM_OPT_SESSION_TTL, 43200);
	c->usage_retention_days = am_opts_num(o, AM_OPT_USAGE_RETENTION_DAYS, 30);
	c->usage_rollup_retention_days = am_opts_num(o, AM_OPT_USAGE_ROLLUP_RETENTION_DAYS, 730);
	c->task_retention_days = am_opts_num(o, AM_OPT_TASK_RETENTION_DAYS, 90);
	c->task_keep = am_opts_num(o, AM_OPT_TASK_KEEP, 100000);
	c->prune_interval_s = (int)am_opts_num(o, AM_OPT_PRUNE_INTERVAL, 600);
	c->access_log = am_opts_bool(o, AM_OPT_ACCESS_LOG);
	c->gateway_io_uring = am_opts_bool(o, AM_OPT_GATEWAY_IO_URING);
	c->max_body = (size_t)am_opts_num(o, AM_OPT_MAX_BODY, 1 << 20);
	c->gpu_interval_ms = (int)am_opts_num(o, AM_OPT_GPU_INTERVAL, 5000);
	c->header_timeout_s = (int)am_opts_num(o, AM_OPT_HEADER_TIMEOUT, 10);
	c->idle_timeout_s = (int)am_opts_num(o, AM_OPT_IDLE_TIMEOUT, 75);
	c->demo = am_opts_bool(o, AM_OPT_DEMO);
	c->metrics_public = am_opts_bool(o, AM_OPT_METRICS_PUBLIC);
	c->stop_engines_on_exit = am_opts_bool(o, AM_OPT_STOP_ENGINES_ON_EXIT);
	c->nvml_lib = am_opts_str(o, AM_OPT_NVML_LIB);
	c->nvidia_smi = am_opts_str(o, AM_OPT_NVIDIA_SMI);
	int nsims, nroots;
	const char *const *sims = am_opts_list(o, AM_OPT_SIM_GPUS, &nsims);
	const char *const *roots = am_opts_list(o, AM_OPT_MODEL_ROOT, &nroots);
	for (int i = 0; i < nsims; i++)
		c->sim_gpus[c->nsim++] = sims[i];
	char num[32];
	am_fmt(num, sizeof num, "%d", c->gateway_threads);
	am_opts_derive(o, AM_OPT_GATEWAY_THREADS, num);
	if (am_opts_print_wanted(o)) { /* before anything is created */
		char def[PATH_MAX + 16];
		am_fmt(def, sizeof def, "%s/models", c->data_dir);
		am_opts_derive(o, AM_OPT_MODEL_ROOT, def);
		am_opts_print(o, stdout);
		return 1;
	}
	if (am_mkdirs(c->data_dir) != 0) {
		fprintf(stderr, "aimaas: cannot create data dir %s: %s\n", c->data_dir, strerror(errno));
		return -1;
	}
	char real[PATH_MAX];
	if (!realpath(c->data_dir, real)) {
		fprintf(stderr, "aimaas: cannot resolve data dir %s: %s\n", c->data_dir, strerror(errno));
		return -1;
	}
	am_strlcpy(c->data_dir, real, sizeof c->data_dir);
	if (nroots == 0) {
		char def[PATH_MAX + 16];
		am_fmt(def, sizeof def, "%s/models", c->data_dir);
		if (am_mkdirs(def) != 0 || add_root(c, def) != 0)
			return -1;
	}
	for (int i = 0; i < nroots; i++)
		if (add_root(c, roots[i]) != 0)
			return -1;
	const char *mtok = am_opts_str(o, AM_OPT_METRICS_TOKEN_FILE);
	if (metrics_token(mtok && *mtok ? mtok : NULL, c->metrics_token, sizeof c->metrics_token) != 0)
		return -1;
	return 0;
}

/* One aimaas per data dir: a second one would fight the first over
 * engines, ports and the database. flock() dies with the process. */
static int lock_data_dir(const char *dir)
{
	char path[PATH_MAX + 16];
	am_fmt(path, sizeof path, "%s/aimaas.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		am_error("main", "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	/* A killed aimaas holds the lock until the kernel has torn it down,
	 * which outlasts its pid (tens of ms for a big address space): wait a
	 * little for that before calling the data dir taken. */
	int locked = flock(fd, LOCK_EX | LOCK_NB) == 0;
	for (int i = 0; !locked && i < 150 && errno == EWOULDBLOCK; i++) {
		usleep(20000);
		locked = flock(fd, LOCK_EX | LOCK_NB) == 0;
	}
	if (!locked) {
		char pid[32] = "";
		ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		am_error("main", "another aimaas (pid %s) is already running on data dir %s; stop it first",
			 pid[0] ? pid : "?", dir);
		close(fd);
		return -1;
	}
	char pid[32];
	am_fmt(pid, sizeof pid, "%d\n", (int)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, strlen(pid), 0) < 0)
		am_warn("main", "cannot write the pid to %s", path);
	return fd;
}

/* This data dir's id, kept in the database: the AIMAAS_OWNER marker of
 * every process aimaas starts begins with it. */
static int load_owner_id(struct am_server *srv)
{
	char fresh[17];
	am_rand_token("", fresh, sizeof fresh);
	json_t *row = NULL;
	if (am_store_exec(srv->store, "INSERT OR IGNORE INTO settings(key, value) VALUES('owner_id', ?)", "s", fresh) != 0 ||
	    am_store_row(srv->store, &row, "SELECT value FROM settings WHERE key = 'owner_id'", NULL) != 0 || !row)
		return -1;
	am_strlcpy(srv->owner_id, json_string_value(json_object_get(row, "value")) ?: fresh, sizeof srv->owner_id);
	json_decref(row);
	return 0;
}

struct strays {
	struct am_server *srv;
	struct am_runtime *rt; /* the runtime being searched */
	char *owned[512], *ended[512];
	int nowned, nended;
};

static void end_one(const char *ref, const char *rest, int marked, void *data)
{
	struct strays *s = data;
	/* rest: "<kind>:<id>:<token>" after "<owner_id>:" */
	char kind[16] = "";
	long long id = 0;
	if (!marked || sscanf(rest, "%15[a-z]:%lld:", kind, &id) != 2)
		return; /* not marked itself: judged by what its main process is */
	char marker[160];
	am_fmt(marker, sizeof marker, "%s:%s", s->srv->owner_id, rest);
	int mine = !strcmp(kind, "instance") ? am_deploy_claim(s->srv->deploy, ref, marker, id)
		 : (!strcmp(kind, "job") || !strcmp(kind, "export"))
			 ? am_finetune_claim(s->srv->finetune, ref, marker, kind, id)
			 : 0;
	if (mine && s->nowned < 512)
		s->owned[s->nowned++] = am_strdup(ref);
}

static void end_unowned(const char *ref, const char *rest, int marked, void *data)
{
	struct strays *s = data;
	struct am_runtime *rt = s->rt;
	(void)marked;
	for (int i = 0; i < s->nowned; i++)
		if (rt->ops->same(rt, s->owned[i], ref))
			return;
	/* a recorded main process may have rewritten its environment (setproctitle) */
	if (am_deploy_owns_ref(s->srv->deploy, ref) || am_finetune_owns_ref(s->srv->finetune, ref))
		return;
	am_warn("main", "ending workload %s (marked %s:%s): no deployment or job owns it", ref, s->srv->owner_id, rest);
	rt->ops->stop(rt, ref, 0);
	if (s->nended < 512)
		s->ended[s->nended++] = am_strdup(ref);
}

/* What a killed aimaas started and never recorded (or whose record moved
 * on): every live workload the runtime finds marked with this data dir's id
 * is either adopted (its instance or job recorded it, or recorded the intent
 * to start it) or ended whole. Waits (at most 2 s) until the ended ones are
 * gone, so nothing of theirs overlaps what is started next. */
static void end_strays_of(struct am_server *srv, struct am_runtime *rt)
{
	struct strays *s = am_calloc(1, sizeof *s);
	s->srv = srv;
	s->rt = rt;
	char prefix[40];
	am_fmt(prefix, sizeof prefix, "%s:", srv->owner_id);
	rt->ops->find(rt, prefix, end_one, s);
	rt->ops->find(rt, prefix, end_unowned, s);
	/* a cluster's pods go on their own; its watch tells */
	for (int t = 0; t < 100 && !rt->ops->containers; t++) {
		int left = 0;
		for (int i = 0; i < s->nended; i++)
			left |= rt->ops->status(rt, s->ended[i], NULL, 0) != AM_RT_ENDED;
		if (!left)
			break;
		usleep(20000);
	}
	for (int i = 0; i < s->nended; i++) {
		rt->ops->release(rt, s->ended[i]);
		free(s->ended[i]);
	}
	for (int i = 0; i < s->nowned; i++)
		free(s->owned[i]);
	free(s);
}

/* end_strays_of for every runtime the server drives. */
static void end_strays(struct am_server *srv)
{
	for (int i = 0; i < srv->runtimes.n; i++)
		end_strays_of(srv, srv->runtimes.all[i]);
}

/* The main loop serves the control plane; /v1 connections go to the
 * gateway's workers. */
static int main_wants(const char *method, size_t ml, const char *target, size_t tl, void *data)
{
	(void)method;
	(void)ml;
	(void)data;
	return !am_gateway_owns(target, tl);
}

static void main_handoff(int fd, const char *bytes, size_t len, const char *peer, void *data)
{
	struct am_api *api = data;
	(void)api;
	am_gateway_handoff(g_gateway, fd, bytes, len, peer);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct am_server *srv = arg;
	am_info("main", "%s received: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	event_base_loopexit(srv->base, NULL);
}

static void on_gpu_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct am_server *srv = arg;
	struct am_inventory_snapshot *snap = am_malloc(sizeof *snap);
	am_inventory_get(srv->inv, snap);
	if (snap->generation != srv->gpu_generation || fd == -1) {
		srv->gpu_generation = snap->generation;
		am_node_sync_gpus(srv, snap);
		am_node_record_history(srv);
	}
	free(snap);
}

/* Descriptors aimaas was started with (beyond stdin, stdout and stderr)
 * are not its to pass on: close-on-exec, like everything it opens. */
static void cloexec_inherited(void)
{
#ifdef CLOSE_RANGE_CLOEXEC
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return;
#endif
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		char *end;
		long fd = strtol(de->d_name, &end, 10);
		if (!*end && fd >= 3 && fd != dirfd(d)) {
			int fl = fcntl((int)fd, F_GETFD);
			if (fl >= 0 && !(fl & FD_CLOEXEC))
				fcntl((int)fd, F_SETFD, fl | FD_CLOEXEC);
		}
	}
	closedir(d);
}

/* A full disk does not stop aimaas: it serves reads and /v1 and answers
 * writes 507 until space returns. This probe writes the node's heartbeat
 * every second while the disk is full (or the node never got registered);
 * the first write that succeeds ends the read-only spell, no restart. */
static int g_registered;

static void on_disk_probe(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct am_server *srv = arg;
	if (g_registered && !am_store_full(srv->store))
		return;
	if (am_node_register_local(srv) != 0 || am_node_register_sim(srv) != 0)
		return;
	g_registered = 1;
	am_info("main", "the data dir %s has space again: writes are accepted", srv->cfg.data_dir);
	on_gpu_tick(-1, 0, srv); /* what start-up could not write */
}

static int serve(int argc, char **argv)
{
	struct am_server srv;
	memset(&srv, 0, sizeof srv);
	srv.started_ns = am_now_ns();
	srv.started_ms = am_wall_ms();
	int rc = 1, lock_fd = -1;
	struct event *sigterm = NULL, *sigint = NULL, *gpu_tick = NULL, *disk_probe = NULL;
	struct am_usage_sink *usage = NULL;
	struct am_prune *prune = NULL;
	struct am_logs *logs = NULL;
	struct am_opts *opts = NULL;
	char err[512];
	/* what aimaas writes (database, logs, datasets, job folders) holds
	 * keys and users' data: no file or folder of it is for other users */
	umask(027);
	cloexec_inherited();
	int parsed = parse_serve(argc, argv, &srv.cfg, &opts);
	if (parsed != 0) {
		rc = parsed > 0 ? 0 : 1;
		goto out;
	}
	struct stat dsb;
	if (stat(srv.cfg.data_dir, &dsb) == 0 && (dsb.st_mode & 007))
		chmod(srv.cfg.data_dir, dsb.st_mode & 0750); /* one an older aimaas made 0755 */
	/* the gateway's threads hand connections to each other's loops */
	evthread_use_pthreads();
	json_object_seed(0);
	am_log_set_level(srv.cfg.log_level);
	signal(SIGPIPE, SIG_IGN);
	if (am_rand_init() != 0) {
		am_error("main", "libsodium failed to initialise");
		goto out;
	}
	if (gethostname(srv.hostname, sizeof srv.hostname) != 0)
		am_strlcpy(srv.hostname, "localhost", sizeof srv.hostname);
	if ((lock_fd = lock_data_dir(srv.cfg.data_dir)) < 0)
		goto out;
	char dbpath[PATH_MAX + 16];
	am_fmt(dbpath, sizeof dbpath, "%s/aimaas.db", srv.cfg.data_dir);
	if (am_store_open(dbpath, &srv.store, err, sizeof err) != 0) {
		am_error("main", "%s", err);
		goto out;
	}
	if (am_auth_bootstrap(srv.store, getenv("AIMAAS_ADMIN_PASSWORD")) != 0) {
		if (am_store_full(srv.store)) {
			struct am_err e;
			am_err_disk_full(&e, srv.cfg.data_dir);
			am_error("main", "cannot create the first user: %s", e.msg);
		}
		goto out;
	}
	if (load_owner_id(&srv) != 0) {
		am_error("main", "cannot read or record this data dir's id in the database");
		goto out;
	}
	/* deployment tasks are finished by the reconciler, which resumes them;
	 * fine-tuning tasks follow their jobs (am_finetune_start) */
	static const char *const resumable[] = { "deployment.create", "deployment.start", "deployment.stop",
						 "deployment.restart", "deployment.delete", "deployment.update",
						 "finetune.create", "finetune.resume", "model.download", NULL };
	am_task_recover(srv.store, resumable);
	struct am_inventory_config icfg = {
		.nvml_lib = srv.cfg.nvml_lib, .nvidia_smi = srv.cfg.nvidia_smi, .sim_specs = srv.cfg.sim_gpus,
		.nsim_specs = srv.cfg.nsim, .interval_ms = srv.cfg.gpu_interval_ms,
	};
	if (am_inventory_new(&icfg, &srv.inv, err, sizeof err) != 0) {
		am_error("main", "%s", err);
		goto out;
	}
	if (am_node_register_local(&srv) == 0) {
		g_registered = 1;
		if (am_node_register_sim(&srv) != 0)
			am_warn("main", "could not record the simulated nodes");
	} else if (am_store_full(srv.store)) {
		struct am_err e;
		am_err_disk_full(&e, srv.cfg.data_dir);
		am_warn("main", "%s: starting read-only (reads and /v1 are served, writes answer 507, "
			"/healthz says degraded) until space returns", e.msg);
	} else {
		goto out;
	}
	srv.base = am_prio_base(); /* API requests before background work (am_prio.h) */
	srv.work = am_work_new(srv.base);
	if (!srv.work) {
		am_error("main", "cannot start the worker thread");
		goto out;
	}
	/* 5 wrong passwords lock a username for 5 minutes; an address (many
	 * people behind one NAT) gets 30 before it waits. */
	srv.login_user_limiter = am_limiter_new(5, 300, 300);
	srv.login_ip_limiter = am_limiter_new(30, 300, 300);
	srv.api = am_api_new(&srv);
	struct am_http_config hcfg;
	am_http_config_defaults(&hcfg);
	hcfg.max_body = srv.cfg.max_body;
	hcfg.header_timeout_s = srv.cfg.header_timeout_s;
	hcfg.body_timeout_s = srv.cfg.header_timeout_s * 3;
	hcfg.idle_timeout_s = srv.cfg.idle_timeout_s;
	struct am_gateway_config gcfg = { .threads = srv.cfg.gateway_threads, .max_body = srv.cfg.gateway_max_body,
					  .keepalive_ms = srv.cfg.gateway_keepalive_ms, .first_byte_ms = 600000,
					  .io_batch = srv.cfg.gateway_io_uring,
					  .idle_ms = 300000, .hold_ms = srv.cfg.cold_start_wait_s * 1000,
					  .wake = wake_deployment, .wake_data = &srv };
	srv.gateway = am_gateway_new(&srv, &gcfg);
	g_gateway = srv.gateway;
	struct am_http_handlers h;
	am_api_handlers(srv.api, &h);
	h.wants = main_wants;
	h.handoff = main_handoff;
	srv.http = am_http_server_new(srv.base, &hcfg, &h);
	if (am_http_server_listen(srv.http, srv.cfg.listen, err, sizeof err) != 0) {
		am_error("main", "%s", err);
		goto out;
	}
	on_gpu_tick(-1, 0, &srv); /* simulated GPUs are known at once */
	char logdir[PATH_MAX + 8];
	am_fmt(logdir, sizeof logdir, "%s/logs", srv.cfg.data_dir);
	am_runtimes_add(&srv.runtimes, am_rt_local_new(srv.base, logdir));
	srv.runtime_listed = end_strays_of;
	/* joined Kubernetes clusters: their watches and runtimes, before the
	 * deployments' workloads are adopted through those runtimes */
	kube_cluster_start_all(&srv);
	srv.deploy = am_deploy_new(&srv);
	srv.finetune = am_finetune_new(&srv);
	if (am_deploy_start(srv.deploy) != 0 || am_finetune_start(srv.finetune) != 0 || hub_start(&srv) != 0 ||
	    hub_catalog_start(&srv) != 0)
		goto out;
	end_strays(&srv); /* before anything new is started */
	logs = am_logs_start(&srv); /* once the instances' and jobs' states are settled */
	if (am_gateway_start(srv.gateway) != 0)
		goto out;
	/* what the last run journalled is counted before the keys' figures are published */
	usage = am_usage_sink_start(dbpath, srv.gateway, err, sizeof err);
	if (!usage) {
		am_error("main", "usage sink: %s", err);
		goto out;
	}
	struct am_prune_config pcfg = {
		.usage_days = srv.cfg.usage_retention_days, .rollup_days = srv.cfg.usage_rollup_retention_days,
		.task_days = srv.cfg.task_retention_days, .task_keep = srv.cfg.task_keep, .period_s = srv.cfg.prune_interval_s,
	};
	prune = am_prune_start(dbpath, &pcfg, err, sizeof err);
	if (!prune) {
		am_error("main", "pruning: %s", err);
		goto out;
	}
	am_routes_publish(&srv);
	if (am_inventory_start(srv.inv) != 0) {
		am_error("main", "cannot start the GPU sampler");
		goto out;
	}
	sigterm = evsignal_new(srv.base, SIGTERM, on_signal, &srv);
	sigint = evsignal_new(srv.base, SIGINT, on_signal, &srv);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	gpu_tick = event_new(srv.base, -1, EV_PERSIST, on_gpu_tick, &srv);
	am_prio_background(gpu_tick);
	struct timeval tick = { 0, 250000 };
	event_add(gpu_tick, &tick);
	disk_probe = event_new(srv.base, -1, EV_PERSIST, on_disk_probe, &srv);
	struct timeval second = { 1, 0 };
	event_add(disk_probe, &second);
	char host[256];
	am_strlcpy(host, srv.cfg.listen, sizeof host);
	*strrchr(host, ':') = '\0';
	am_info("main", "web console: %s", srv.cfg.ui_dir[0] ? srv.cfg.ui_dir : "not installed (make ui)");
	am_info("main", "aimaas %s listening on http://%s:%d (data dir %s, started in %.1f ms)", AM_VERSION,
		host[0] ? host : "0.0.0.0", am_http_server_port(srv.http), srv.cfg.data_dir,
		(double)(am_now_ns() - srv.started_ns) / 1e6);
	event_base_dispatch(srv.base);
	am_info("main", "stopped");
	rc = 0;
out:
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	if (gpu_tick)
		event_free(gpu_tick);
	if (disk_probe)
		event_free(disk_probe);
	am_logs_free(logs);
	am_http_server_free(srv.http);
	am_prune_free(prune);
	am_work_free(srv.work); /* after the requests: a job whose client is gone is only cleaned up */
	am_gateway_stop(srv.gateway);   /* the workers' last usage records go to the sink's last drain */
	am_usage_sink_free(usage);
	am_gateway_free(srv.gateway);
	am_routes_cache_free(srv.routes);
	am_capacity_db_cache_free(srv.capacity);
	if (srv.cfg.stop_engines_on_exit && srv.finetune) /* trainers save while the engines stop */
		am_finetune_stop_all(srv.finetune);
	kube_cluster_free_all(&srv);
	am_deploy_free(srv.deploy, srv.cfg.stop_engines_on_exit);
	am_finetune_free(srv.finetune, srv.cfg.stop_engines_on_exit);
	hub_free(&srv); /* a running download stops where it is: resumed at the next start */
	hub_catalog_free(&srv); /* after the requests: a search whose client is gone is only cleaned up */
	am_runtimes_free(&srv.runtimes);
	am_inventory_free(srv.inv);
	am_node_history_free(&srv);
	am_api_free(srv.api);
	am_limiter_free(srv.login_user_limiter);
	am_limiter_free(srv.login_ip_limiter);
	am_store_close(srv.store);
	if (srv.base)
		event_base_free(srv.base);
	for (int i = 0; i < srv.cfg.nroots; i++)
		free(srv.cfg.model_roots[i]);
	am_opts_free(opts); /* after everything that holds its strings */
	if (lock_fd >= 0)
		close(lock_fd);
	libevent_global_shutdown();
	return rc;
}

int main(int argc, char **argv)
{
	/* libcurl's global state, once, before any thread (downloads, hub searches, clusters) */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (argc < 2) {
		fputs(usage_main, stderr);
		fputs(cli_cmd_usage, stderr);
		return 2;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		fputs(usage_main, stdout);
		fputs(cli_cmd_usage, stdout);
		return 0;
	}
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("aimaas %s\n", AM_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "serve") == 0)
		return serve(argc - 1, argv + 1);
	if (strcmp(argv[1], "download") == 0)
		return hub_cli_download(argc - 1, argv + 1);
	if (strcmp(argv[1], "backup") == 0)
		return am_ops_backup(argc - 1, argv + 1);
	if (strcmp(argv[1], "restore") == 0)
		return am_ops_restore(argc - 1, argv + 1);
	if (strcmp(argv[1], "check") == 0)
		return am_ops_check(argc - 1, argv + 1);
	int crc = cli_cmd_run(argc - 1, argv + 1); /* login, ps, deploy, ...: a client of the API */
	if (crc >= 0)
		return crc;
	fprintf(stderr, "aimaas: unknown command '%s'\n\n%s%s", argv[1], usage_main, cli_cmd_usage);
	return 2;
}
