/* am_engine: serving engines as adapters. Each engine is a small table:
 * how to build argv and environment from a launch spec, its health URL
 * (an engine is ready when it answers 200 there: every engine's server
 * listens only once its model is loaded, or answers 503 until then), and
 * the log lines that name a fatal error. The runtime never knows which
 * engine it runs. Engines: vllm, sglang, llama.cpp (llama-server),
 * aimaas-sim (vLLM's flags, for tests and demos) and custom (an argv
 * template an admin defines). */
#ifndef AM_ENGINE_H
#define AM_ENGINE_H

#include <jansson.h>
#include <stddef.h>

#include "../base/am_err.h"

/* An owned, NULL-terminated list of strings (argv or "K=V" env). */
struct am_argv {
	char **v;
	int n, cap;
};
void am_argv_add(struct am_argv *a, const char *s);
void am_argv_addf(struct am_argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void am_argv_free(struct am_argv *a);
/* The list as a JSON array of strings (env: "K=V" entries), each secret
 * masked as am_engine_secret_name decides: the value of a secret-named
 * variable, the value after (or '='-joined to) a secret-named flag. */
json_t *am_argv_json(const struct am_argv *a, int env);

/* What a masked secret reads as in every answer (GET, /command, dry runs). */
#define AM_ENGINE_MASK "********"
/* 1 when a variable or flag name (its first len bytes; len 0: all of it)
 * names a secret: TOKEN, KEY, SECRET, PASSWORD, PASSWD or CREDENTIAL in
 * it, in any case. The one rule every answer masks by. */
int am_engine_secret_name(const char *name, size_t len);
/* s into out (size bytes, cut to fit) with every occurrence of each of
 * secrets (NULL-terminated; NULL entries end it, values under 4 bytes are
 * skipped) read as AM_ENGINE_MASK: what an engine printed of its key or a
 * secret variable, before it reaches a reason or an answer. */
void am_engine_mask(const char *s, const char *const *secrets, char *out, size_t size);

/* What one engine instance is to run. */
struct am_launch {
	const char *binary;          /* program: a path, or a name looked up on PATH */
	const char *model_path;      /* folder, or .gguf file */
	const char *served_name;
	const char *kind;            /* llm, vlm, embedding, rerank */
	const char *host;
	int port;
	const char *api_key;         /* the instance's own key: only aimaas talks to it */
	int tp;                      /* GPUs of this instance (tensor parallel) */
	const char *cuda_visible;    /* "2,3", or "" for none */
	int container;               /* 1: in a container that holds its GPUs alone (a pod): no
					CUDA_VISIBLE_DEVICES (the device plugin chose), cuda_visible only counts */
	int max_model_len;           /* 0: the engine's default */
	int max_num_seqs;            /* 0: the engine's default */
	double mem_fraction;         /* of each card; 0: the engine's default */
	const char *dtype;           /* NULL: auto */
	int trust_remote_code;
	json_t *lora_modules;        /* [{"name","path"}] or NULL */
	int max_lora_rank;
	json_t *extra_args;          /* user's argv tail, [strings] */
	json_t *env;                 /* user's env, {"K":"V"} */
	json_t *custom_argv;         /* the custom engine's template */
	/* SGLang reads its key from a --config file (never argv, which ps
	 * shows): its path, and where the builder puts the file's text (the
	 * caller writes it 0600 before the spawn; NULL: not wanted) */
	const char *secret_path;
	char **secret_body;
};

/* A flag aimaas sets for an engine (a planner's or a wiring flag): its
 * spellings as that engine's parser knows them, space-separated
 * ("-c --ctx-size"), and where a user sets it instead ("max_model_len is a
 * deployment field"). Tables end with a {NULL}. */
struct am_engine_flag {
	const char *names;
	const char *instead;
};

/* The names of an engine's Prometheus series (GET /metrics) behind
 * aimaas's serving metrics; NULL where the engine exports none. */
struct am_engine_metrics {
	const char *running;       /* requests being served (gauge) */
	const char *waiting;       /* requests queued (gauge) */
	const char *kv;            /* KV-cache use, 0..1 (gauge) */
	const char *prompt_tokens; /* prompt tokens processed (counter) */
	const char *gen_tokens;    /* tokens generated (counter) */
};

/* What one scrape of an engine's /metrics read. */
struct am_engine_stats {
	double running, waiting, kv, prompt_tokens, gen_tokens;
};

/* How an engine's parser matches a flag a user passes. */
enum am_engine_flags {
	/* Python's argparse: any unambiguous prefix of a flag is the flag
	 * ("--max-model" is --max-model-len, "-t" is -tp), "--flag=value";
	 * vLLM's parser also reads '_' as '-' and "--no-flag" for booleans */
	AM_FLAGS_ARGPARSE,
	/* llama.cpp's common/arg.cpp: exact names, '_' read as '-' in a
	 * long flag */
	AM_FLAGS_EXACT,
};

struct am_engine_def {
	const char *name;
	const char *title;
	const char *default_binary;
	const char *health_path;
	int wants_gguf;              /* 1: a .gguf file, 0: a folder */
	const char *const *kinds;    /* model kinds it serves */
	const char *const *fatal_lines; /* most specific first */
	int (*build)(const struct am_launch *l, struct am_argv *argv, struct am_argv *env, struct am_err *err);
	enum am_engine_flags flag_match;
	const struct am_engine_flag *owned; /* what build sets: engine_args may not */
	const struct am_engine_metrics *metrics;
	const char *default_image;   /* its container image on a cluster (admin-overridable); NULL: none */
	/* the Python package the program runs (SGLang: `python3 -m
	 * sglang.launch_server`), which must import for the engine to be
	 * there at all; NULL: the program is the engine */
	const char *py_module;
};

const struct am_engine_def *am_engine_find(const char *name);
const struct am_engine_def *am_engine_all(size_t *n);
/* 1 when the engine serves models of this kind. */
int am_engine_serves(const struct am_engine_def *e, const char *kind);
/* A deployment's engine_args as a user may pass them (docs/api.md): never
 * a flag aimaas sets, for any engine (--host, --port, --api-key,
 * --served-model-name, --config, ...: they would expose the engine or break
 * routing) or for e (its owned table: the planner's --max-model-len,
 * --gpu-memory-utilization, --tensor-parallel-size, ... which, appended
 * last, would undo the plan), matched as e's parser matches them; and not,
 * unless `allow` (the engine's admin-set args_allow: a JSON array of flags,
 * NULL for none) lists it, a flag that loads code or reads or writes files
 * (--worker-extension-cls, --chat-template, --tool-parser-plugin, ...) or a
 * value that is a path. 0, or -1 with err naming engine_args[i] and, for an
 * owned flag, where to set it instead. */
int am_engine_check_args(const struct am_engine_def *e, json_t *args, json_t *allow, struct am_err *err);
/* The serving metrics in text, an engine's Prometheus exposition (len
 * bytes, NUL not needed), read by e's metrics map into out: each series
 * summed over its label sets (vLLM's and SGLang's data-parallel ranks), the
 * KV-cache use their largest; 0 for what e does not export. */
void am_engine_read_metrics(const struct am_engine_def *e, const char *text, size_t len, struct am_engine_stats *out);
/* A deployment's env as a user may set it (docs/api.md): names of A-Z, 0-9
 * and '_'; never one aimaas sets (CUDA_VISIBLE_DEVICES, VLLM_API_KEY,
 * AIMAAS_*, ...); engine tunables (VLLM_*, NCCL_*, HF_*, OMP_*, ...) unless
 * they name a path, plugin or address; any application variable except the
 * loader's, interpreters', shells', sanitizers', CUDA's and system
 * libraries' (LD_*, PATH, PYTHON*, BASH_ENV, *SAN_OPTIONS, CUDA_*, ...),
 * which only `allow` (the engine's admin-set env_allow: names, or prefixes
 * ending in '*'; NULL for none) lets through. 0, or -1 with err naming
 * env.NAME. */
int am_engine_check_env(json_t *env, json_t *allow, struct am_err *err);
/* The most telling fatal line among the last lines of a log, or NULL:
 * the root cause (am_engine_root_cause) first, then the engine's known
 * fatal lines. */
const char *am_engine_fatal_line(const struct am_engine_def *e, char *const *lines, int n);
/* The root cause a Python program printed: the exception line ("SomeError:
 * message") of the last traceback that is not a mere wrapper (vLLM's
 * EngineDeadError "see stack trace above", "Engine core initialization
 * failed", torchrun's ChildFailedError), and in a chain ("The above
 * exception was the direct cause ...") the first, original one. Lines may
 * carry a process prefix ("(EngineCore_DP0 pid=7) "). NULL when there is
 * none. Returns a pointer into one of lines, past leading blanks. */
const char *am_engine_root_cause(char *const *lines, int n);

#endif
