/* am_engine: serving engines as adapters. Each engine is a small table:
 * how to build argv and environment from a launch spec, its health URL, and
 * the log lines that mean ready or fatal. The runtime never knows which
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
/* The list as a JSON array of strings, with the value after each flag in
 * `secret_flags` and each env value whose name is in `secret_env` masked. */
json_t *am_argv_json(const struct am_argv *a, int env);

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
};

struct am_engine_def {
	const char *name;
	const char *title;
	const char *default_binary;
	const char *health_path;
	int wants_gguf;              /* 1: a .gguf file, 0: a folder */
	const char *const *kinds;    /* model kinds it serves */
	const char *const *ready_lines;
	const char *const *fatal_lines; /* most specific first */
	int (*build)(const struct am_launch *l, struct am_argv *argv, struct am_argv *env, struct am_err *err);
};

const struct am_engine_def *am_engine_find(const char *name);
const struct am_engine_def *am_engine_all(size_t *n);
/* 1 when the engine serves models of this kind. */
int am_engine_serves(const struct am_engine_def *e, const char *kind);
/* Flags aimaas sets itself and a user's extra args may not override
 * (they would expose the engine or break routing). 0, or -1 with err. */
int am_engine_check_args(const struct am_engine_def *e, json_t *args, struct am_err *err);
/* The most telling fatal line among the last lines of a log, or NULL. */
const char *am_engine_fatal_line(const struct am_engine_def *e, char *const *lines, int n);

#endif
