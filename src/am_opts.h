/* am_opts: the options of `aimaas serve`, from one table. Each option has a
 * long flag (--key), an environment variable (AIMAAS_KEY, '-' as '_') and a
 * key of the configuration file (/etc/aimaas/aimaas.conf, or --config FILE,
 * or AIMAAS_CONFIG); a flag beats the environment, which beats the file, which
 * beats the default. Secrets (passwords, tokens) are environment-only and are
 * never printed: --print-config says whether they are set. */
#ifndef AM_OPTS_H
#define AM_OPTS_H

#include <stddef.h>
#include <stdio.h>

#define AM_OPTS_CONFIG_DEFAULT "/etc/aimaas/aimaas.conf"

enum am_opt {
	AM_OPT_LISTEN,
	AM_OPT_DATA_DIR,
	AM_OPT_LOG_LEVEL,
	AM_OPT_MODEL_ROOT,
	AM_OPT_SIM_GPUS,
	AM_OPT_SESSION_TTL,
	AM_OPT_MAX_BODY,
	AM_OPT_GPU_INTERVAL,
	AM_OPT_HEADER_TIMEOUT,
	AM_OPT_IDLE_TIMEOUT,
	AM_OPT_GATEWAY_THREADS,
	AM_OPT_GATEWAY_MAX_BODY,
	AM_OPT_GATEWAY_KEEPALIVE_MS,
	AM_OPT_COLD_START_WAIT,
	AM_OPT_UI_DIR,
	AM_OPT_METRICS_TOKEN_FILE,
	AM_OPT_DEMO,
	AM_OPT_METRICS_PUBLIC,
	AM_OPT_STOP_ENGINES_ON_EXIT,
	AM_OPT_DATASET_MAX_BYTES,
	AM_OPT_NVML_LIB,
	AM_OPT_NVIDIA_SMI,
	AM_OPT_USAGE_RETENTION_DAYS,
	AM_OPT_USAGE_ROLLUP_RETENTION_DAYS,
	AM_OPT_TASK_RETENTION_DAYS,
	AM_OPT_TASK_KEEP,
	AM_OPT_PRUNE_INTERVAL,
	AM_OPT_ACCESS_LOG,
	AM_OPT_LOG_MAX_MB,
	AM_OPT_LOGS_TOTAL_MAX_MB,
	AM_OPT_GATEWAY_IO_URING,
	/* secrets: environment only, shown as set or unset */
	AM_OPT_ADMIN_PASSWORD,
	AM_OPT_METRICS_TOKEN,
	AM_OPT_HF_TOKEN,
	AM_OPT_MODELSCOPE_TOKEN,
	AM_OPT_CLUSTER_KEY,
	AM_OPT_COUNT
};

/* Where a value came from. */
enum am_opt_source { AM_SRC_DEFAULT, AM_SRC_FILE, AM_SRC_ENV, AM_SRC_FLAG };

struct am_opts;

/* Reads argv (argv[0] is "serve"), the environment and the configuration
 * file into *out (free with am_opts_free; the strings it hands out live as
 * long as it). Every value is checked where it is read (a number's range, a
 * boolean, a log level), so a message names its flag, variable, or file and
 * line. Returns 0; 1 when --help was asked (the usage is printed to stdout);
 * -1 after printing why to stderr (usage: the text printed on a bad flag). */
int am_opts_load(int argc, char **argv, const char *usage, struct am_opts **out);
void am_opts_free(struct am_opts *o);

/* The value of a scalar option; NULL when no source sets it and it has no
 * default. An empty string is only ever returned for ui-dir ("no console"). */
const char *am_opts_str(const struct am_opts *o, enum am_opt id);
/* A number option's value (checked at load time), or def when unset. */
long long am_opts_num(const struct am_opts *o, enum am_opt id, long long def);
/* A boolean option: 1 or 0 (unset: its default in the table). */
int am_opts_bool(const struct am_opts *o, enum am_opt id);
/* A repeatable option's values (model-root, sim-gpus): *n of them. */
const char *const *am_opts_list(const struct am_opts *o, enum am_opt id, int *n);
/* Whether --print-config was given. */
int am_opts_print_wanted(const struct am_opts *o);
/* Records what an option left at its default turns out to be (the CPU count,
 * the console found beside the binary), for am_opts_print; copied. */
void am_opts_derive(struct am_opts *o, enum am_opt id, const char *value);
/* Prints the effective configuration to f as a configuration file: each
 * option's `key = value  # source` (secrets as a comment saying set or
 * unset, options without a value as a comment). */
void am_opts_print(const struct am_opts *o, FILE *f);

#endif
