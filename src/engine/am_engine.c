/* am_engine: the engine registry, argv helpers and the engines' tables. */
#include "am_engine.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"

void am_argv_add(struct am_argv *a, const char *s)
{
	if (a->n + 2 > a->cap) {
		a->cap = a->cap ? a->cap * 2 : 16;
		a->v = am_realloc(a->v, (size_t)a->cap * sizeof *a->v);
	}
	a->v[a->n++] = am_strdup(s);
	a->v[a->n] = NULL;
}

void am_argv_addf(struct am_argv *a, const char *fmt, ...)
{
	struct am_buf b;
	am_buf_init(&b, 1 << 16);
	va_list ap;
	va_start(ap, fmt);
	am_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	am_argv_add(a, am_buf_str(&b));
	am_buf_free(&b);
}

void am_argv_free(struct am_argv *a)
{
	for (int i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

static const char *const secret_flags[] = { "--api-key", "--hf-token", NULL };
static const char *const secret_env[] = { "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "MODELSCOPE_API_TOKEN", "VLLM_API_KEY",
					  "LLAMA_ARG_API_KEY", "OPENAI_API_KEY", NULL };

static int listed(const char *s, const char *const *list, size_t n)
{
	for (const char *const *p = list; *p; p++)
		if (n ? strncmp(s, *p, n) == 0 && (*p)[n] == '\0' : strcmp(s, *p) == 0)
			return 1;
	return 0;
}

json_t *am_argv_json(const struct am_argv *a, int env)
{
	json_t *arr = json_array();
	for (int i = 0; i < a->n; i++) {
		const char *s = a->v[i];
		if (env) {
			const char *eq = strchr(s, '=');
			if (eq && (listed(s, secret_env, (size_t)(eq - s)) || strstr(s, "TOKEN=") || strstr(s, "KEY="))) {
				char m[256];
				am_fmt(m, sizeof m, "%.*s=********", (int)(eq - s), s);
				json_array_append_new(arr, json_string(m));
				continue;
			}
		} else if (i > 0 && listed(a->v[i - 1], secret_flags, 0)) {
			json_array_append_new(arr, json_string("********"));
			continue;
		}
		json_array_append_new(arr, json_string(s));
	}
	return arr;
}

/* ---- shared pieces ---- */

static void common_env(const struct am_launch *l, struct am_argv *env)
{
	/* indices as nvidia-smi and NVML number the cards */
	am_argv_add(env, "CUDA_DEVICE_ORDER=PCI_BUS_ID");
	am_argv_addf(env, "CUDA_VISIBLE_DEVICES=%s", l->cuda_visible ? l->cuda_visible : "");
	const char *k;
	json_t *v;
	json_object_foreach(l->env, k, v)
		if (json_is_string(v))
			am_argv_addf(env, "%s=%s", k, json_string_value(v));
}

static void extra(const struct am_launch *l, struct am_argv *argv)
{
	size_t i;
	json_t *v;
	json_array_foreach(l->extra_args, i, v)
		am_argv_add(argv, json_string_value(v));
}

/* "--flag value" */
static void pair(struct am_argv *a, const char *flag, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pair(struct am_argv *a, const char *flag, const char *fmt, ...)
{
	char v[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v, sizeof v, fmt, ap);
	va_end(ap);
	am_argv_add(a, flag);
	am_argv_add(a, v);
}

/* ---- vLLM (and aimaas-sim, which takes the same flags) ---- */

static int build_vllm(const struct am_launch *l, struct am_argv *a, struct am_argv *env, struct am_err *err)
{
	(void)err;
	am_argv_add(a, l->binary);
	am_argv_add(a, "serve");
	am_argv_add(a, l->model_path);
	pair(a, "--host", "%s", l->host);
	pair(a, "--port", "%d", l->port);
	pair(a, "--served-model-name", "%s", l->served_name);
	pair(a, "--tensor-parallel-size", "%d", l->tp);
	if (l->mem_fraction > 0)
		pair(a, "--gpu-memory-utilization", "%.2f", l->mem_fraction);
	if (l->max_model_len > 0)
		pair(a, "--max-model-len", "%d", l->max_model_len);
	if (l->max_num_seqs > 0)
		pair(a, "--max-num-seqs", "%d", l->max_num_seqs);
	if (l->dtype)
		pair(a, "--dtype", "%s", l->dtype);
	if (!strcmp(l->kind, "embedding") || !strcmp(l->kind, "rerank")) {
		am_argv_add(a, "--runner");
		am_argv_add(a, "pooling");
	}
	if (l->trust_remote_code)
		am_argv_add(a, "--trust-remote-code");
	if (json_array_size(l->lora_modules)) {
		am_argv_add(a, "--enable-lora");
		am_argv_add(a, "--max-loras");
		am_argv_addf(a, "%zu", json_array_size(l->lora_modules));
		am_argv_add(a, "--max-lora-rank");
		am_argv_addf(a, "%d", l->max_lora_rank > 0 ? l->max_lora_rank : 16);
		am_argv_add(a, "--lora-modules");
		size_t i;
		json_t *m;
		json_array_foreach(l->lora_modules, i, m)
			am_argv_addf(a, "%s=%s", json_string_value(json_object_get(m, "name")),
				     json_string_value(json_object_get(m, "path")));
	}
	extra(l, a);
	common_env(l, env);
	/* the key in the environment, not argv: argv is readable by every
	 * local user through ps, the environment only by the owner */
	am_argv_addf(env, "VLLM_API_KEY=%s", l->api_key);
	return 0;
}

/* ---- SGLang ---- */

static int build_sglang(const struct am_launch *l, struct am_argv *a, struct am_argv *env, struct am_err *err)
{
	(void)err;
	am_argv_add(a, l->binary);
	am_argv_add(a, "-m");
	am_argv_add(a, "sglang.launch_server");
	pair(a, "--model-path", "%s", l->model_path);
	pair(a, "--host", "%s", l->host);
	pair(a, "--port", "%d", l->port);
	pair(a, "--served-model-name", "%s", l->served_name);
	pair(a, "--api-key", "%s", l->api_key);
	pair(a, "--tp-size", "%d", l->tp);
	if (l->mem_fraction > 0)
		pair(a, "--mem-fraction-static", "%.2f", l->mem_fraction);
	if (l->max_model_len > 0)
		pair(a, "--context-length", "%d", l->max_model_len);
	if (l->max_num_seqs > 0)
		pair(a, "--max-running-requests", "%d", l->max_num_seqs);
	if (l->dtype)
		pair(a, "--dtype", "%s", l->dtype);
	if (!strcmp(l->kind, "embedding") || !strcmp(l->kind, "rerank"))
		am_argv_add(a, "--is-embedding");
	if (l->trust_remote_code)
		am_argv_add(a, "--trust-remote-code");
	am_argv_add(a, "--enable-metrics");
	extra(l, a);
	common_env(l, env);
	return 0;
}

/* ---- llama.cpp's llama-server ---- */

static int build_llamacpp(const struct am_launch *l, struct am_argv *a, struct am_argv *env, struct am_err *err)
{
	(void)err;
	am_argv_add(a, l->binary);
	am_argv_add(a, "-m");
	am_argv_add(a, l->model_path);
	pair(a, "--host", "%s", l->host);
	pair(a, "--port", "%d", l->port);
	am_argv_add(a, "-a");
	am_argv_add(a, l->served_name);
	am_argv_add(a, "-ngl");
	am_argv_add(a, l->cuda_visible && *l->cuda_visible ? "999" : "0");
	if (l->max_model_len > 0) {
		am_argv_add(a, "-c");
		am_argv_addf(a, "%d", l->max_model_len);
	}
	if (l->max_num_seqs > 0) {
		am_argv_add(a, "-np");
		am_argv_addf(a, "%d", l->max_num_seqs);
	}
	if (!strcmp(l->kind, "embedding"))
		am_argv_add(a, "--embedding");
	if (!strcmp(l->kind, "rerank"))
		am_argv_add(a, "--reranking");
	am_argv_add(a, "--metrics");
	extra(l, a);
	common_env(l, env);
	am_argv_addf(env, "LLAMA_ARG_API_KEY=%s", l->api_key);
	return 0;
}

/* ---- custom: an admin's argv template ---- */

static int build_custom(const struct am_launch *l, struct am_argv *a, struct am_argv *env, struct am_err *err)
{
	if (!json_is_array(l->custom_argv) || !json_array_size(l->custom_argv))
		return am_err_set(err, AM_E_INVALID, "engine", "the custom engine has no argv template");
	size_t i;
	json_t *t;
	json_array_foreach(l->custom_argv, i, t) {
		const char *s = json_string_value(t);
		struct am_buf b;
		am_buf_init(&b, 1 << 16);
		while (s && *s) {
			const char *open = strchr(s, '{');
			const char *close = open ? strchr(open, '}') : NULL;
			if (!open || !close) {
				am_buf_adds(&b, s);
				break;
			}
			am_buf_add(&b, s, (size_t)(open - s));
			char key[32];
			am_fmt(key, sizeof key, "%.*s", (int)(close - open - 1), open + 1);
			if (!strcmp(key, "model_path")) am_buf_adds(&b, l->model_path);
			else if (!strcmp(key, "served_name")) am_buf_adds(&b, l->served_name);
			else if (!strcmp(key, "host")) am_buf_adds(&b, l->host);
			else if (!strcmp(key, "port")) am_buf_printf(&b, "%d", l->port);
			else if (!strcmp(key, "api_key")) am_buf_adds(&b, l->api_key);
			else if (!strcmp(key, "tp")) am_buf_printf(&b, "%d", l->tp);
			else if (!strcmp(key, "max_model_len")) am_buf_printf(&b, "%d", l->max_model_len);
			else if (!strcmp(key, "gpus")) am_buf_adds(&b, l->cuda_visible ? l->cuda_visible : "");
			else if (!strcmp(key, "mem_fraction")) am_buf_printf(&b, "%.2f", l->mem_fraction);
			else am_buf_add(&b, open, (size_t)(close - open + 1)); /* not ours: leave it */
			s = close + 1;
		}
		if (i == 0 && b.len == 0) {
			am_buf_free(&b);
			return am_err_set(err, AM_E_INVALID, "engine", "the custom engine's program is empty");
		}
		am_argv_add(a, i == 0 && l->binary && *l->binary ? l->binary : am_buf_str(&b));
		am_buf_free(&b);
	}
	extra(l, a);
	common_env(l, env);
	return 0;
}

/* ---- the table ---- */

static const char *const chat_kinds[] = { "llm", "vlm", "embedding", "rerank", NULL };
static const char *const gguf_kinds[] = { "llm", "embedding", "rerank", NULL };
static const char *const vllm_ready[] = { "Application startup complete.", NULL };
static const char *const vllm_fatal[] = {
	"must be divisible by tensor parallel size", "is larger than the number of available GPUs", "CUDA out of memory",
	"OutOfMemoryError", "No available memory for the cache blocks", "To serve at least one request with the models's max seq len",
	"Free memory on device", "Address already in use", "address already in use", "unrecognized arguments", "invalid choice",
	"expected one argument", "No such file or directory", "does not appear to have a file named", "ValueError:",
	"RuntimeError:", "EngineDeadError", "Engine core initialization failed", "Traceback", NULL,
};
static const char *const sglang_ready[] = { "The server is fired up and ready to roll!", NULL };
static const char *const sglang_fatal[] = { "CUDA out of memory", "OutOfMemoryError", "Address already in use", "error: argument",
					    "unrecognized arguments", "ValueError:", "RuntimeError:", "Traceback", NULL };
static const char *const llama_ready[] = { "server is listening on", NULL };
static const char *const llama_fatal[] = { "failed to load model", "out of memory", "couldn't bind", "error: invalid argument",
					   "error:", NULL };
static const char *const custom_fatal[] = { "out of memory", "Address already in use", "Error", NULL };

static const struct am_engine_def engines[] = {
	{ "vllm", "vLLM", "vllm", "/health", 0, chat_kinds, vllm_ready, vllm_fatal, build_vllm },
	{ "sglang", "SGLang", "python3", "/health", 0, chat_kinds, sglang_ready, sglang_fatal, build_sglang },
	{ "llama.cpp", "llama.cpp (llama-server)", "llama-server", "/health", 1, gguf_kinds, llama_ready, llama_fatal,
	  build_llamacpp },
	{ "aimaas-sim", "aimaas-sim (simulated vLLM, for tests and demos)", "aimaas-sim", "/health", 0, chat_kinds,
	  vllm_ready, vllm_fatal, build_vllm },
	{ "custom", "Custom command", "", "/health", 0, chat_kinds, NULL, custom_fatal, build_custom },
};

const struct am_engine_def *am_engine_all(size_t *n)
{
	*n = sizeof engines / sizeof engines[0];
	return engines;
}

const struct am_engine_def *am_engine_find(const char *name)
{
	for (size_t i = 0; i < sizeof engines / sizeof engines[0]; i++)
		if (!strcmp(engines[i].name, name))
			return &engines[i];
	return NULL;
}

int am_engine_serves(const struct am_engine_def *e, const char *kind)
{
	for (const char *const *k = e->kinds; *k; k++)
		if (!strcmp(*k, kind))
			return 1;
	return 0;
}

int am_engine_check_args(const struct am_engine_def *e, json_t *args, struct am_err *err)
{
	static const char *const owned[] = { "--host", "--port", "--api-key", "--served-model-name", "--model-path", "-m",
					     "--model", "-a", "--alias", "--tensor-parallel-size", "-tp", "--tp-size",
					     "--lora-modules", NULL };
	(void)e;
	if (!args || json_is_null(args))
		return 0;
	if (!json_is_array(args) || json_array_size(args) > 128)
		return am_err_set(err, AM_E_INVALID, "engine_args", "'engine_args' must be a list of at most 128 strings");
	size_t i;
	json_t *v;
	json_array_foreach(args, i, v) {
		const char *s = json_string_value(v);
		if (!s || json_string_length(v) > 4096 || strlen(s) != json_string_length(v))
			return am_err_set(err, AM_E_INVALID, "engine_args", "engine_args[%zu] must be a string without NUL", i);
		char flag[64];
		am_fmt(flag, sizeof flag, "%.*s", (int)strcspn(s, "="), s);
		for (const char *const *o = owned; *o; o++)
			if (!strcmp(flag, *o))
				return am_err_set(err, AM_E_INVALID, "engine_args",
						  "engine_args may not set %s: aimaas sets it (use the deployment's own fields)", *o);
	}
	return 0;
}

const char *am_engine_fatal_line(const struct am_engine_def *e, char *const *lines, int n)
{
	if (!e->fatal_lines)
		return NULL;
	for (const char *const *p = e->fatal_lines; *p; p++)
		for (int i = n - 1; i >= 0; i--)
			if (strstr(lines[i], *p))
				return lines[i];
	return NULL;
}
