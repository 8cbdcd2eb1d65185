/* am_opts: the options of `aimaas serve` (am_opts.h). */
#include "am_opts.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "am_server.h"
#include "base/am_buf.h"
#include "base/am_conf.h"
#include "base/am_log.h"
#include "base/am_mem.h"

enum kind { K_STR, K_NUM, K_BOOL, K_LIST, K_SECRET };

struct def {
	const char *key;  /* the flag (--key) and the file's key */
	const char *env;  /* its environment variable */
	const char *env2; /* another name it is read from, after env (secrets) */
	enum kind kind;
	long long min, max; /* K_NUM */
	const char *unit;   /* K_NUM, in messages */
	char sep;           /* K_LIST: between values in the environment */
	int max_items;      /* K_LIST */
	const char *def;    /* the default; NULL: none, or derived at start */
	int empty_is_value; /* "" means something (ui-dir: no console), not "unset" */
};

/* The one table: flags, variables and file keys. Numbers' defaults are the
 * caller's (am_opts_num's def) and shown here for --print-config. */
static const struct def defs[AM_OPT_COUNT] = {
	[AM_OPT_LISTEN] = { "listen", "AIMAAS_LISTEN", NULL, K_STR, 0, 0, NULL, 0, 0, "0.0.0.0:8080", 0 },
	[AM_OPT_DATA_DIR] = { "data-dir", "AIMAAS_DATA_DIR", NULL, K_STR, 0, 0, NULL, 0, 0, "./data", 0 },
	[AM_OPT_LOG_LEVEL] = { "log-level", "AIMAAS_LOG_LEVEL", NULL, K_STR, 0, 0, NULL, 0, 0, "info", 0 },
	[AM_OPT_MODEL_ROOT] = { "model-root", "AIMAAS_MODEL_ROOT", NULL, K_LIST, 0, 0, NULL, ':', AM_MAX_ROOTS, NULL, 0 },
	[AM_OPT_SIM_GPUS] = { "sim-gpus", "AIMAAS_SIM_GPUS", NULL, K_LIST, 0, 0, NULL, ';', AM_MAX_SIM_SPECS, NULL, 0 },
	[AM_OPT_SESSION_TTL] = { "session-ttl", "AIMAAS_SESSION_TTL", NULL, K_NUM, 60, 90LL * 86400, "seconds", 0, 0, "43200", 0 },
	[AM_OPT_MAX_BODY] = { "max-body", "AIMAAS_MAX_BODY", NULL, K_NUM, 1024, 1LL << 32, "bytes", 0, 0, "1048576", 0 },
	[AM_OPT_GPU_INTERVAL] = { "gpu-interval", "AIMAAS_GPU_INTERVAL", NULL, K_NUM, 100, 600000, "ms", 0, 0, "5000", 0 },
	[AM_OPT_HEADER_TIMEOUT] = { "header-timeout", "AIMAAS_HEADER_TIMEOUT", NULL, K_NUM, 1, 3600, "seconds", 0, 0, "10", 0 },
	[AM_OPT_IDLE_TIMEOUT] = { "idle-timeout", "AIMAAS_IDLE_TIMEOUT", NULL, K_NUM, 1, 86400, "seconds", 0, 0, "75", 0 },
	[AM_OPT_GATEWAY_THREADS] = { "gateway-threads", "AIMAAS_GATEWAY_THREADS", NULL, K_NUM, 1, 256, "threads", 0, 0, NULL, 0 },
	[AM_OPT_GATEWAY_MAX_BODY] = { "gateway-max-body", "AIMAAS_GATEWAY_MAX_BODY", NULL, K_NUM, 1024, 1LL << 32, "bytes", 0, 0, "33554432", 0 },
	[AM_OPT_GATEWAY_KEEPALIVE_MS] = { "gateway-keepalive-ms", "AIMAAS_GATEWAY_KEEPALIVE_MS", NULL, K_NUM, 10, 600000, "ms", 0, 0, "10000", 0 },
	[AM_OPT_COLD_START_WAIT] = { "cold-start-wait", "AIMAAS_COLD_START_WAIT", NULL, K_NUM, 1, 3600, "seconds", 0, 0, "300", 0 },
	[AM_OPT_UI_DIR] = { "ui-dir", "AIMAAS_UI_DIR", NULL, K_STR, 0, 0, NULL, 0, 0, NULL, 1 },
	[AM_OPT_METRICS_TOKEN_FILE] = { "metrics-token-file", "AIMAAS_METRICS_TOKEN_FILE", NULL, K_STR, 0, 0, NULL, 0, 0, NULL, 0 },
	[AM_OPT_DEMO] = { "demo", "AIMAAS_DEMO", NULL, K_BOOL, 0, 0, NULL, 0, 0, "false", 0 },
	[AM_OPT_METRICS_PUBLIC] = { "metrics-public", "AIMAAS_METRICS_PUBLIC", NULL, K_BOOL, 0, 0, NULL, 0, 0, "false", 0 },
	[AM_OPT_STOP_ENGINES_ON_EXIT] = { "stop-engines-on-exit", "AIMAAS_STOP_ENGINES_ON_EXIT", NULL, K_BOOL, 0, 0, NULL, 0, 0, "false", 0 },
	[AM_OPT_DATASET_MAX_BYTES] = { "dataset-max-bytes", "AIMAAS_DATASET_MAX_BYTES", NULL, K_NUM, 1024, 1LL << 34, "bytes", 0, 0, "268435456", 0 },
	[AM_OPT_NVML_LIB] = { "nvml-lib", "AIMAAS_NVML_LIB", NULL, K_STR, 0, 0, NULL, 0, 0, NULL, 0 },
	[AM_OPT_NVIDIA_SMI] = { "nvidia-smi", "AIMAAS_NVIDIA_SMI", NULL, K_STR, 0, 0, NULL, 0, 0, NULL, 0 },
	[AM_OPT_USAGE_RETENTION_DAYS] = { "usage-retention-days", "AIMAAS_USAGE_RETENTION_DAYS", NULL, K_NUM, 1, 36500, "days", 0, 0, "30", 0 },
	[AM_OPT_USAGE_ROLLUP_RETENTION_DAYS] = { "usage-rollup-retention-days", "AIMAAS_USAGE_ROLLUP_RETENTION_DAYS", NULL, K_NUM, 1, 36500, "days", 0, 0, "730", 0 },
	[AM_OPT_TASK_RETENTION_DAYS] = { "task-retention-days", "AIMAAS_TASK_RETENTION_DAYS", NULL, K_NUM, 1, 36500, "days", 0, 0, "90", 0 },
	[AM_OPT_TASK_KEEP] = { "task-keep", "AIMAAS_TASK_KEEP", NULL, K_NUM, 100, 100000000, "tasks", 0, 0, "100000", 0 },
	[AM_OPT_PRUNE_INTERVAL] = { "prune-interval", "AIMAAS_PRUNE_INTERVAL", NULL, K_NUM, 1, 86400, "seconds", 0, 0, "600", 0 },
	[AM_OPT_ACCESS_LOG] = { "access-log", "AIMAAS_ACCESS_LOG", NULL, K_BOOL, 0, 0, NULL, 0, 0, "false", 0 },
	[AM_OPT_GATEWAY_IO_URING] = { "gateway-io-uring", "AIMAAS_GATEWAY_IO_URING", NULL, K_BOOL, 0, 0, NULL, 0, 0, "true", 0 },
	[AM_OPT_LOG_MAX_MB] = { "log-max-mb", "AIMAAS_LOG_MAX_MB", NULL, K_NUM, 1, 1LL << 20, "MiB", 0, 0, "50", 0 },
	[AM_OPT_LOGS_TOTAL_MAX_MB] = { "logs-total-max-mb", "AIMAAS_LOGS_TOTAL_MAX_MB", NULL, K_NUM, 1, 1LL << 24, "MiB", 0, 0, "2048", 0 },
	[AM_OPT_ADMIN_PASSWORD] = { "admin-password", "AIMAAS_ADMIN_PASSWORD", NULL, K_SECRET, 0, 0, NULL, 0, 0, NULL, 0 },
	[AM_OPT_METRICS_TOKEN] = { "metrics-token", "AIMAAS_METRICS_TOKEN", NULL, K_SECRET, 0, 0, NULL, 0, 0, NULL, 0 },
	[AM_OPT_HF_TOKEN] = { "hf-token", "AIMAAS_HF_TOKEN", "HF_TOKEN", K_SECRET, 0, 0, NULL, 0, 0, NULL, 0 },
	[AM_OPT_MODELSCOPE_TOKEN] = { "modelscope-token", "AIMAAS_MODELSCOPE_TOKEN", NULL, K_SECRET, 0, 0, NULL, 0, 0, NULL, 0 },
	[AM_OPT_CLUSTER_KEY] = { "cluster-key", "AIMAAS_CLUSTER_KEY", NULL, K_SECRET, 0, 0, NULL, 0, 0, NULL, 0 },
};

struct am_opts {
	char *val[AM_OPT_COUNT]; /* scalars; owned */
	enum am_opt_source src[AM_OPT_COUNT];
	int line[AM_OPT_COUNT];     /* AM_SRC_FILE: the line it was set on */
	char **items[AM_OPT_COUNT]; /* K_LIST; owned */
	int *item_line[AM_OPT_COUNT]; /* AM_SRC_FILE: each item's line */
	int nitems[AM_OPT_COUNT];
	char *derived[AM_OPT_COUNT]; /* am_opts_derive's */
	const char *secret_env[AM_OPT_COUNT]; /* K_SECRET: the variable found set */
	char *config;                /* the file read, or NULL */
	enum am_opt_source config_src;
	int config_missing;          /* the default file, absent */
	int print;
};

static int parse_ll(const char *s, long long min, long long max, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* "1", "true", "yes", "on" -> 1; "0", "false", "no", "off" -> 0; else -1. */
static int parse_bool(const char *s)
{
	static const char *const t[] = { "1", "true", "yes", "on" }, *const f[] = { "0", "false", "no", "off" };
	for (int i = 0; i < 4; i++) {
		if (!strcmp(s, t[i]))
			return 1;
		if (!strcmp(s, f[i]))
			return 0;
	}
	return -1;
}

/* Whether value suits option id; name (a flag, a variable or a key) is
 * who said it, for the message in err. */
static int check(enum am_opt id, const char *name, const char *value, char *err, size_t errsize)
{
	const struct def *d = &defs[id];
	long long v;
	enum am_log_level level;
	if (d->kind == K_NUM && parse_ll(value, d->min, d->max, &v) != 0) {
		am_fmt(err, errsize, "%s must be %lld to %lld %s (got '%s')", name, d->min, d->max, d->unit, value);
		return -1;
	}
	if (d->kind == K_BOOL && parse_bool(value) < 0) {
		am_fmt(err, errsize, "%s must be true or false (got '%s')", name, value);
		return -1;
	}
	if (id == AM_OPT_LOG_LEVEL && am_log_parse_level(value, &level) != 0) {
		am_fmt(err, errsize, "%s must be debug, info, warn or error (got '%s')", name, value);
		return -1;
	}
	if (id == AM_OPT_LISTEN && !strchr(value, ':')) {
		am_fmt(err, errsize, "%s must be HOST:PORT (got '%s')", name, value);
		return -1;
	}
	return 0;
}

/* Sets a scalar from a source at least as strong as the one it has. */
static void set_scalar(struct am_opts *o, enum am_opt id, const char *value, enum am_opt_source src, int line)
{
	free(o->val[id]);
	o->val[id] = am_strdup(value);
	o->src[id] = src;
	o->line[id] = line;
}

/* Adds a list's value; the first value from a stronger source replaces
 * those of weaker ones. -1 with a message when there are too many. */
static int add_item(struct am_opts *o, enum am_opt id, const char *value, enum am_opt_source src, int line,
		    const char *name, char *err, size_t errsize)
{
	if (o->src[id] != src) {
		for (int i = 0; i < o->nitems[id]; i++)
			free(o->items[id][i]);
		o->nitems[id] = 0;
		o->src[id] = src;
		o->line[id] = line;
	}
	if (o->nitems[id] == defs[id].max_items) {
		am_fmt(err, errsize, "%s: at most %d values", name, defs[id].max_items);
		return -1;
	}
	if (!o->items[id]) {
		o->items[id] = am_calloc((size_t)defs[id].max_items, sizeof(char *));
		o->item_line[id] = am_calloc((size_t)defs[id].max_items, sizeof(int));
	}
	o->item_line[id][o->nitems[id]] = line;
	o->items[id][o->nitems[id]++] = am_strdup(value);
	return 0;
}

static int find_key(const char *key)
{
	for (int i = 0; i < AM_OPT_COUNT; i++)
		if (!strcmp(defs[i].key, key))
			return i;
	return -1;
}

static int on_file_line(const char *key, const char *value, int line, void *data, char *err, size_t errsize)
{
	struct am_opts *o = data;
	int id = find_key(key);
	if (id < 0) {
		am_fmt(err, errsize, "unknown key '%s' (the keys are the long flags of 'aimaas serve --help')", key);
		return -1;
	}
	const struct def *d = &defs[id];
	if (d->kind == K_SECRET) {
		am_fmt(err, errsize, "'%s' is a secret: set %s in the environment (/etc/aimaas/aimaas.env, mode 0600) instead",
		       key, d->env);
		return -1;
	}
	if (d->kind == K_LIST)
		return !*value ? 0 : check(id, key, value, err, errsize) ? -1 : add_item(o, id, value, AM_SRC_FILE, line, key, err, errsize);
	if (o->src[id] == AM_SRC_FILE) {
		am_fmt(err, errsize, "'%s' is already set on line %d", key, o->line[id]);
		return -1;
	}
	if (!*value && !d->empty_is_value)
		return 0;
	if (check(id, key, value, err, errsize) != 0)
		return -1;
	set_scalar(o, id, value, AM_SRC_FILE, line);
	return 0;
}

/* The configuration file: path, else the default one when it exists. */
static int load_file(struct am_opts *o, const char *path, enum am_opt_source src)
{
	char err[1024];
	char *text = NULL;
	size_t len = 0;
	if (!path) {
		path = AM_OPTS_CONFIG_DEFAULT;
		src = AM_SRC_DEFAULT;
	}
	o->config_src = src;
	if (!*path)
		return 0; /* said explicitly: none */
	o->config = am_strdup(path);
	if (am_conf_read(path, &text, &len, err, sizeof err) != 0) {
		if (src == AM_SRC_DEFAULT && errno == ENOENT) {
			o->config_missing = 1;
			return 0;
		}
		fprintf(stderr, "aimaas: %s\n", err);
		return -1;
	}
	int rc = am_conf_parse(text, len, on_file_line, o, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "aimaas: %s: %s\n", path, err);
	free(text);
	return rc;
}

/* The environment, over the file. */
static int load_env(struct am_opts *o)
{
	char err[1024];
	for (int id = 0; id < AM_OPT_COUNT; id++) {
		const struct def *d = &defs[id];
		const char *v = getenv(d->env), *name = d->env;
		if (d->kind == K_SECRET) {
			if ((!v || !*v) && d->env2 && (v = getenv(d->env2)) != NULL)
				name = d->env2;
			o->secret_env[id] = v && *v ? name : NULL;
			continue;
		}
		if (!v || (!*v && !d->empty_is_value))
			continue;
		if (d->kind != K_LIST) {
			if (check(id, name, v, err, sizeof err) != 0)
				goto bad;
			set_scalar(o, id, v, AM_SRC_ENV, 0);
			continue;
		}
		char *copy = am_strdup(v);
		int rc = 0;
		for (char *p = copy, *s; p && *p && rc == 0; p = s ? s + 1 : NULL) {
			if ((s = strchr(p, d->sep)) != NULL)
				*s = '\0';
			if (*p)
				rc = check(id, name, p, err, sizeof err) ? -1 : add_item(o, id, p, AM_SRC_ENV, 0, name, err, sizeof err);
		}
		free(copy);
		if (rc != 0)
			goto bad;
	}
	return 0;
bad:
	fprintf(stderr, "aimaas: %s\n", err);
	return -1;
}

int am_opts_load(int argc, char **argv, const char *usage, struct am_opts **out)
{
	enum { O_CONFIG = 1000, O_PRINT };
	struct option lopts[AM_OPT_COUNT + 4];
	int n = 0;
	for (int i = 0; i < AM_OPT_COUNT; i++)
		if (defs[i].kind != K_SECRET)
			lopts[n++] = (struct option){ defs[i].key, defs[i].kind == K_BOOL ? optional_argument : required_argument,
						      NULL, 256 + i };
	lopts[n++] = (struct option){ "config", required_argument, NULL, O_CONFIG };
	lopts[n++] = (struct option){ "print-config", no_argument, NULL, O_PRINT };
	lopts[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	lopts[n] = (struct option){ NULL, 0, NULL, 0 };

	struct am_opts *o = am_calloc(1, sizeof *o);
	/* flags are read first (for --config) and applied last (they win) */
	const char **flag_val = am_calloc(AM_OPT_COUNT, sizeof *flag_val);
	const char ***flag_items = am_calloc(AM_OPT_COUNT, sizeof *flag_items);
	int *flag_n = am_calloc(AM_OPT_COUNT, sizeof *flag_n);
	const char *config = NULL;
	enum am_opt_source config_src = AM_SRC_DEFAULT;
	char err[1024];
	int rc = -1, ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		if (ch == 'h') {
			fputs(usage, stdout);
			rc = 1;
			goto out;
		}
		if (ch == O_CONFIG) {
			config = optarg;
			config_src = AM_SRC_FLAG;
			continue;
		}
		if (ch == O_PRINT) {
			o->print = 1;
			continue;
		}
		if (ch < 256 || ch >= 256 + AM_OPT_COUNT) {
			fputs(usage, stderr);
			goto out;
		}
		int id = ch - 256;
		const struct def *d = &defs[id];
		char flag[80];
		am_fmt(flag, sizeof flag, "--%s", d->key);
		/* a boolean: --flag is true, --flag=false says false */
		const char *v = d->kind == K_BOOL ? (optarg ? optarg : "true") : optarg;
		if (*v && check(id, flag, v, err, sizeof err) != 0) {
			fprintf(stderr, "aimaas: %s\n", err);
			goto out;
		}
		if (d->kind == K_LIST) {
			if (flag_n[id] == d->max_items) {
				fprintf(stderr, "aimaas: at most %d %s values\n", d->max_items, flag);
				goto out;
			}
			if (!flag_items[id])
				flag_items[id] = am_calloc((size_t)d->max_items, sizeof(char *));
			flag_items[id][flag_n[id]++] = v;
		} else {
			flag_val[id] = v;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "aimaas: unexpected argument '%s'\n\n%s", argv[optind], usage);
		goto out;
	}
	if (!config) {
		const char *e = getenv("AIMAAS_CONFIG");
		if (e) {
			config = e;
			config_src = AM_SRC_ENV;
		}
	}
	if (load_file(o, config, config_src) != 0 || load_env(o) != 0)
		goto out;
	for (int id = 0; id < AM_OPT_COUNT; id++) {
		for (int i = 0; i < flag_n[id]; i++)
			if (*flag_items[id][i] && add_item(o, id, flag_items[id][i], AM_SRC_FLAG, 0, "", err, sizeof err) != 0)
				goto out;
		if (flag_val[id] && (*flag_val[id] || defs[id].empty_is_value))
			set_scalar(o, id, flag_val[id], AM_SRC_FLAG, 0);
	}
	*out = o;
	o = NULL;
	rc = 0;
out:
	for (int id = 0; id < AM_OPT_COUNT; id++)
		free(flag_items[id]);
	free(flag_items);
	free(flag_val);
	free(flag_n);
	am_opts_free(o);
	return rc;
}

void am_opts_free(struct am_opts *o)
{
	if (!o)
		return;
	for (int id = 0; id < AM_OPT_COUNT; id++) {
		free(o->val[id]);
		free(o->derived[id]);
		for (int i = 0; i < o->nitems[id]; i++)
			free(o->items[id][i]);
		free(o->items[id]);
		free(o->item_line[id]);
	}
	free(o->config);
	free(o);
}

const char *am_opts_str(const struct am_opts *o, enum am_opt id)
{
	return o->val[id] ? o->val[id] : defs[id].def;
}

long long am_opts_num(const struct am_opts *o, enum am_opt id, long long def)
{
	long long v;
	return o->val[id] && parse_ll(o->val[id], defs[id].min, defs[id].max, &v) == 0 ? v : def;
}

int am_opts_bool(const struct am_opts *o, enum am_opt id)
{
	const char *v = am_opts_str(o, id); /* unset: the table's default */
	return v && parse_bool(v) == 1;
}

const char *const *am_opts_list(const struct am_opts *o, enum am_opt id, int *n)
{
	*n = o->nitems[id];
	return (const char *const *)o->items[id];
}

int am_opts_print_wanted(const struct am_opts *o)
{
	return o->print;
}

void am_opts_derive(struct am_opts *o, enum am_opt id, const char *value)
{
	free(o->derived[id]);
	o->derived[id] = am_strdup(value);
}

/* One `key = value  # source` line (line: the file's, when from it); value
 * quoted when it must be. */
static void print_line(const struct am_opts *o, FILE *f, enum am_opt id, const char *value, int line)
{
	const struct def *d = &defs[id];
	size_t n = strlen(value);
	int quote = !n || value[0] == ' ' || value[0] == '\t' || value[n - 1] == ' ' || value[n - 1] == '\t' ||
		    value[0] == '"' || strchr(value, '#');
	char text[AM_CONF_LINE_MAX + 128];
	am_fmt(text, sizeof text, "%s = %s%s%s", d->key, quote ? "\"" : "", value, quote ? "\"" : "");
	switch (o->src[id]) {
	case AM_SRC_FLAG: fprintf(f, "%-48s # flag --%s\n", text, d->key); break;
	case AM_SRC_ENV: fprintf(f, "%-48s # env %s\n", text, d->env); break;
	case AM_SRC_FILE: fprintf(f, "%-48s # file %s:%d\n", text, o->config, line); break;
	default: fprintf(f, "%-48s # default\n", text); break;
	}
}

void am_opts_print(const struct am_opts *o, FILE *f)
{
	static const char *const src_name[] = { "default", "file", "env AIMAAS_CONFIG", "flag --config" };
	fprintf(f, "# aimaas serve: the effective configuration (flag > env > file > default)\n");
	if (!o->config || !*o->config)
		fprintf(f, "# config file: none (%s)\n", src_name[o->config_src]);
	else
		fprintf(f, "# config file: %s (%s%s)\n", o->config, src_name[o->config_src],
			o->config_missing ? "; not found" : "");
	for (int id = 0; id < AM_OPT_COUNT; id++) {
		const struct def *d = &defs[id];
		if (d->kind == K_SECRET) {
			if (o->secret_env[id])
				fprintf(f, "# %s: set (env %s; secret, not shown)\n", d->key, o->secret_env[id]);
			else
				fprintf(f, "# %s: unset (env %s)\n", d->key, d->env);
			continue;
		}
		if (d->kind == K_LIST && o->nitems[id]) {
			for (int i = 0; i < o->nitems[id]; i++)
				print_line(o, f, id, o->items[id][i], o->item_line[id][i]);
			continue;
		}
		const char *v = d->kind == K_LIST ? NULL : o->val[id];
		if (!v)
			v = o->derived[id] ? o->derived[id] : d->def;
		if (v && d->kind == K_BOOL)
			v = parse_bool(v) == 1 ? "true" : "false";
		if (v)
			print_line(o, f, id, v, o->line[id]);
		else
			fprintf(f, "# %s: unset (default)\n", d->key);
	}
}
