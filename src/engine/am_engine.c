/* am_engine: the engine registry, argv helpers and the engines' tables. */
#include "am_engine.h"

#include <ctype.h>
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

int am_engine_secret_name(const char *name, size_t len)
{
	static const char *const words[] = { "TOKEN", "KEY", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", NULL };
	if (!len)
		len = strlen(name);
	for (const char *const *w = words; *w; w++) {
		size_t wl = strlen(*w);
		for (size_t i = 0; i + wl <= len; i++) {
			size_t k = 0;
			while (k < wl && toupper((unsigned char)name[i + k]) == (*w)[k])
				k++;
			if (k == wl)
				return 1;
		}
	}
	return 0;
}

void am_engine_mask(const char *s, const char *const *secrets, char *out, size_t size)
{
	struct am_buf b;
	size_t start = 0, i = 0, n = strlen(s);
	am_buf_init(&b, 8 * n + 64); /* a mask may be longer than what it hides */
	while (secrets && i < n) {
		size_t hit = 0;
		for (const char *const *p = secrets; *p && !hit; p++) {
			size_t l = strlen(*p);
			if (l >= 4 && l <= n - i && !memcmp(s + i, *p, l))
				hit = l;
		}
		if (!hit) {
			i++;
			continue;
		}
		am_buf_add(&b, s + start, i - start);
		am_buf_adds(&b, AM_ENGINE_MASK);
		i += hit;
		start = i;
	}
	am_buf_add(&b, s + start, n - start);
	am_strlcpy(out, am_buf_str(&b), size);
	am_buf_free(&b);
}

/* A flag's name: past its dashes, up to '='. */
static int secret_flag(const char *s)
{
	if (s[0] != '-')
		return 0;
	return am_engine_secret_name(s, strcspn(s, "="));
}

json_t *am_argv_json(const struct am_argv *a, int env)
{
	json_t *arr = json_array();
	for (int i = 0; i < a->n; i++) {
		const char *s = a->v[i];
		const char *eq = strchr(s, '=');
		char m[256];
		if (env && eq && am_engine_secret_name(s, (size_t)(eq - s))) {
			am_fmt(m, sizeof m, "%.*s=" AM_ENGINE_MASK, (int)(eq - s), s);
			json_array_append_new(arr, json_string(m));
		} else if (!env && s[0] == '-' && eq && secret_flag(s)) {
			am_fmt(m, sizeof m, "%.*s=" AM_ENGINE_MASK, (int)(eq - s), s);
			json_array_append_new(arr, json_string(m));
		} else if (!env && i > 0 && !strchr(a->v[i - 1], '=') && secret_flag(a->v[i - 1])) {
			json_array_append_new(arr, json_string(AM_ENGINE_MASK));
		} else {
			json_array_append_new(arr, json_string(s));
		}
	}
	return arr;
}

/* ---- shared pieces ---- */

static void common_env(const struct am_launch *l, struct am_argv *env)
{
	if (l->container)
		return; /* the device plugin hands the container its cards (NVIDIA_VISIBLE_DEVICES) */
	/* indices as nvidia-smi and NVML number the cards */
	am_argv_add(env, "CUDA_DEVICE_ORDER=PCI_BUS_ID");
	am_argv_addf(env, "CUDA_VISIBLE_DEVICES=%s", l->cuda_visible ? l->cuda_visible : "");
}

static int env_has(const struct am_argv *env, const char *name)
{
	size_t nl = strlen(name);
	for (int i = 0; i < env->n; i++)
		if (!strncmp(env->v[i], name, nl) && env->v[i][nl] == '=')
			return 1;
	return 0;
}

/* The user's variables, last and each name once: one aimaas set stays
 * (a second VLLM_API_KEY would be the one an engine reads first). */
static void user_env(const struct am_launch *l, struct am_argv *env)
{
	const char *k;
	json_t *v;
	json_object_foreach(l->env, k, v)
		if (json_is_string(v) && !env_has(env, k) && !strchr(k, '='))
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
	if (json_array_size(l->lora_modules))
		am_argv_add(env, "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True");
	user_env(l, env);
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
	/* SGLang reads its key from argv or a --config file only: a file
	 * only the owner can read, never argv (ps shows it to every user) */
	pair(a, "--config", "%s", l->secret_path ? l->secret_path : "");
	if (l->secret_body) {
		json_t *c = json_pack("{s:s}", "api-key", l->api_key);
		*l->secret_body = json_dumps(c, 0);
		json_decref(c);
	}
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
	user_env(l, env);
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
	user_env(l, env);
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
	user_env(l, env);
	return 0;
}

/* ---- the table ---- */

static const char *const chat_kinds[] = { "llm", "vlm", "embedding", "rerank", NULL };
static const char *const gguf_kinds[] = { "llm", "embedding", "rerank", NULL };
static const char *const vllm_fatal[] = {
	"must be divisible by tensor parallel size", "is larger than the number of available GPUs", "CUDA out of memory",
	"OutOfMemoryError", "No available memory for the cache blocks", "To serve at least one request with the models's max seq len",
	"Free memory on device", "Address already in use", "address already in use", "unrecognized arguments", "invalid choice",
	"expected one argument", "No such file or directory", "does not appear to have a file named", "ValueError:",
	"RuntimeError:", "EngineDeadError", "Engine core initialization failed", "Traceback", NULL,
};
static const char *const sglang_fatal[] = { "CUDA out of memory", "OutOfMemoryError", "Address already in use", "error: argument",
					    "unrecognized arguments", "ValueError:", "RuntimeError:", "Traceback", NULL };
static const char *const llama_fatal[] = { "failed to load model", "out of memory", "couldn't bind", "error: invalid argument",
					   "error:", NULL };
static const char *const custom_fatal[] = { "out of memory", "Address already in use", "Error", NULL };

/* Where a user sets what an owned flag would: the answer a refusal gives. */
#define WIRED "aimaas binds every engine to loopback on a port of its own and routes to it"
#define KEYED "aimaas gives each instance a key of its own"
#define NAMED "the deployment's name (and its aliases) is what clients send"
#define MODEL "the deployment's model is what it serves"
#define CONFIG "a file of more flags would pass by these rules"
#define TP "gpus_per_replica is a deployment field (the planner checks it divides the model)"
#define PARALLEL "gpus_per_replica and replicas are deployment fields (a replica is tensor parallel)"
#define MEM "gpu_memory_utilization is a deployment field (the planner sizes each card's share)"
#define LEN "max_model_len is a deployment field"
#define SEQS "max_num_seqs is a deployment field"
#define DTYPE "the planner picks the dtype (half on cards without bf16)"
#define KIND "the model's kind decides it"
#define CODE "trust_remote_code is a deployment field"
#define LORA "lora_modules is a deployment field"
#define METRICS "aimaas reads the engine's metrics"

/* What aimaas tells every engine, a custom one included (its parser
 * unknown: matched as argparse would, a prefix and '_' as '-'): refused in
 * each engine's engine_args, matched as that engine's parser would. */
static const struct am_engine_flag common_owned[] = {
	{ "--host", WIRED }, { "--port", WIRED }, { "--uds", WIRED }, { "--root-path", WIRED }, { "--headless", WIRED },
	{ "--api-key", KEYED }, { "--api-key-file", KEYED }, { "--served-model-name", NAMED }, { "-a --alias", NAMED },
	{ "-m --model --model-path", MODEL }, { "--config", CONFIG },
	{ "-tp --tp --tp-size --tensor-parallel-size", TP }, { "--lora-modules", LORA }, { "--trust-remote-code", CODE },
	{ NULL, NULL },
};

/* vLLM's `vllm serve` (vllm/engine/arg_utils.py, vllm/entrypoints/openai/
 * cli_args.py): build_vllm's flags, and those that would undo them:
 * pipeline and data parallelism take GPUs the plan did not give, and
 * --kv-cache-memory-bytes replaces --gpu-memory-utilization. aimaas-sim
 * takes the same flags (sim/sim_opts.c). */
static const struct am_engine_flag vllm_owned[] = {
	{ "--host", WIRED }, { "--port", WIRED }, { "--uds", WIRED }, { "--root-path", WIRED }, { "--headless", WIRED },
	{ "--api-key", KEYED }, { "--served-model-name", NAMED }, { "--model", MODEL }, { "--config", CONFIG },
	{ "-tp --tensor-parallel-size", TP }, { "-pp --pipeline-parallel-size", PARALLEL },
	{ "-dp --data-parallel-size", PARALLEL }, { "--gpu-memory-utilization", MEM }, { "--kv-cache-memory-bytes", MEM },
	{ "--max-model-len", LEN }, { "--max-num-seqs", SEQS }, { "--dtype", DTYPE }, { "--runner", KIND },
	{ "--trust-remote-code", CODE }, { "--enable-lora", LORA }, { "--max-loras", LORA }, { "--max-lora-rank", LORA },
	{ "--lora-modules", LORA }, { NULL, NULL },
};

/* SGLang's `python -m sglang.launch_server` (python/sglang/srt/
 * server_args.py: a plain argparse.ArgumentParser, so prefixes match;
 * field names become dashed flags, with aliases such as tp_size's
 * --tensor-parallel-size and model_path's --model). */
static const struct am_engine_flag sglang_owned[] = {
	{ "--host", WIRED }, { "--port", WIRED }, { "--api-key", KEYED }, { "--served-model-name", NAMED },
	{ "--model-path --model", MODEL }, { "--config", CONFIG }, { "--tp-size --tensor-parallel-size", TP },
	{ "--pp-size --pipeline-parallel-size", PARALLEL }, { "--dp-size --data-parallel-size", PARALLEL },
	{ "--mem-fraction-static", MEM }, { "--context-length", LEN }, { "--max-running-requests", SEQS },
	{ "--dtype", DTYPE }, { "--is-embedding", KIND }, { "--trust-remote-code", CODE }, { "--enable-metrics", METRICS },
	{ NULL, NULL },
};

/* llama.cpp's llama-server (common/arg.cpp: each option's spellings,
 * matched exactly; a long flag's '_' read as '-'). */
static const struct am_engine_flag llama_owned[] = {
	{ "--host", WIRED }, { "--port", WIRED }, { "--api-key", KEYED }, { "--api-key-file", KEYED },
	{ "-a --alias", NAMED }, { "-m --model", MODEL },
	{ "-ngl --gpu-layers --n-gpu-layers", "aimaas offloads every layer to the deployment's GPUs" },
	{ "-c --ctx-size", LEN }, { "-np --parallel", SEQS }, { "--embedding --embeddings", KIND },
	{ "--reranking --rerank", KIND }, { "--metrics", METRICS }, { NULL, NULL },
};

/* vLLM's Prometheus names: vllm/v1/metrics/loggers.py (PrometheusStatLogger:
 * vllm:num_requests_running, vllm:num_requests_waiting,
 * vllm:kv_cache_usage_perc, vllm:prompt_tokens, vllm:generation_tokens;
 * prometheus_client adds _total to a counter). aimaas-sim serves the same
 * (sim/sim_serve.c). */
static const struct am_engine_metrics vllm_metrics = {
	"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc", "vllm:prompt_tokens_total",
	"vllm:generation_tokens_total",
};
/* SGLang's: python/sglang/srt/metrics/collector.py (SchedulerMetricsCollector:
 * sglang:num_running_reqs, sglang:num_queue_reqs, sglang:token_usage;
 * TokenizerMetricsCollector: sglang:prompt_tokens_total,
 * sglang:generation_tokens_total), served with --enable-metrics. */
static const struct am_engine_metrics sglang_metrics = {
	"sglang:num_running_reqs", "sglang:num_queue_reqs", "sglang:token_usage", "sglang:prompt_tokens_total",
	"sglang:generation_tokens_total",
};
/* llama-server's: tools/server/server-context.cpp (the /metrics handler,
 * "llamacpp:" + name: counters prompt_tokens_total, tokens_predicted_total;
 * gauges requests_processing, requests_deferred, and in older servers
 * kv_cache_usage_ratio), served with --metrics. */
static const struct am_engine_metrics llama_metrics = {
	"llamacpp:requests_processing", "llamacpp:requests_deferred", "llamacpp:kv_cache_usage_ratio",
	"llamacpp:prompt_tokens_total", "llamacpp:tokens_predicted_total",
};

static const struct am_engine_def engines[] = {
	{ "vllm", "vLLM", "vllm", "/health", 0, chat_kinds, vllm_fatal, build_vllm, AM_FLAGS_ARGPARSE,
	  vllm_owned, &vllm_metrics, "vllm/vllm-openai:v0.10.1", NULL },
	{ "sglang", "SGLang", "python3", "/health", 0, chat_kinds, sglang_fatal, build_sglang,
	  AM_FLAGS_ARGPARSE, sglang_owned, &sglang_metrics, "lmsysorg/sglang:latest", "sglang" },
	{ "llama.cpp", "llama.cpp (llama-server)", "llama-server", "/health", 1, gguf_kinds, llama_fatal,
	  build_llamacpp, AM_FLAGS_EXACT, llama_owned, &llama_metrics, "ghcr.io/ggml-org/llama.cpp:server-cuda", NULL },
	{ "aimaas-sim", "aimaas-sim (simulated vLLM, for tests and demos)", "aimaas-sim", "/health", 0, chat_kinds,
	  vllm_fatal, build_vllm, AM_FLAGS_ARGPARSE, vllm_owned, &vllm_metrics, "aimaas/aimaas-sim:latest", NULL },
	/* an admin's program: its parser unknown, the common table only;
	 * metrics read as vLLM's (most custom engines are vLLM builds) */
	{ "custom", "Custom command", "", "/health", 0, chat_kinds, custom_fatal, build_custom, AM_FLAGS_ARGPARSE,
	  common_owned, &vllm_metrics, NULL, NULL },
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

/* ---- what a user may pass an engine (docs/api.md, "What env and
 * engine_args may hold") ---- */

/* argparse's view of a flag: '_' is '-' (vLLM's parser folds them). */
static void flag_norm(const char *s, size_t n, char *out, size_t size)
{
	size_t k = 0;
	for (size_t i = 0; i < n && k + 1 < size; i++)
		out[k++] = s[i] == '_' && i > 1 ? '-' : s[i];
	out[k] = '\0';
}

/* Whether `flag` is `name` or, for a long flag, a prefix of it: argparse
 * takes an unambiguous prefix ("--ho" for "--host"), and refusing an
 * ambiguous one costs nothing. */
static int flag_is(const char *flag, const char *name)
{
	if (!strcmp(flag, name))
		return 1;
	size_t fl = strlen(flag);
	return flag[0] == '-' && flag[1] == '-' && name[1] == '-' && fl >= 3 && !strncmp(name, flag, fl);
}

/* The entry of table (one engine's owned flags) that flag is, as that
 * engine's parser reads it, or NULL. */
static const struct am_engine_flag *owned_flag(const char *flag, const struct am_engine_flag *table,
					       enum am_engine_flags how)
{
	for (const struct am_engine_flag *f = table; f && f->names; f++)
		for (const char *p = f->names; *p;) {
			size_t n = strcspn(p, " ");
			char name[64];
			am_fmt(name, sizeof name, "%.*s", (int)n, p);
			p += n + (p[n] == ' ');
			if (!strcmp(flag, name))
				return f;
			if (how != AM_FLAGS_ARGPARSE || flag[0] != '-' || flag[1] == '\0')
				continue;
			/* argparse's abbreviations: a long flag's prefix ("--max-model"),
			 * and a single-dash one's ("-t" for -tp) */
			size_t fl = strlen(flag);
			int is_long = flag[1] == '-';
			if (fl < (is_long ? 3u : 2u) || (name[1] == '-') != is_long)
				continue;
			if (!strncmp(name, flag, fl))
				return f;
		}
	return NULL;
}

/* 0, or -1 with err when flag (normalised from what the user wrote, the
 * first ul bytes of u) is one of e's owned flags or one every engine is
 * told. vLLM's booleans take "--no-flag" too. */
static int check_owned(const struct am_engine_def *e, const char *flag, const char *u, size_t ul, const char *field,
		       struct am_err *err)
{
	const struct am_engine_flag *f = owned_flag(flag, e->owned, e->flag_match);
	int common = e->owned == common_owned;
	if (!f && e->flag_match == AM_FLAGS_ARGPARSE && !strncmp(flag, "--no-", 5)) {
		char yes[80];
		am_fmt(yes, sizeof yes, "--%s", flag + 5);
		f = owned_flag(yes, e->owned, e->flag_match);
	}
	if (!f) {
		f = owned_flag(flag, common_owned, e->flag_match);
		common = 1;
	}
	if (!f)
		return 0;
	char names[160];
	am_fmt(names, sizeof names, "%s", f->names);
	for (char *c = names; *c; c++)
		if (*c == ' ')
			*c = '/';
	return am_err_set(err, AM_E_INVALID, field, "%s may not set %.*s: it is %s%s %s, which aimaas sets; %s", field,
			  (int)(ul < 80 ? ul : 80), u, common ? "" : e->name, common ? "an engine's" : "'s", names,
			  f->instead);
}

static int flag_in(const char *flag, const char *const *list)
{
	for (const char *const *p = list; *p; p++)
		if (flag_is(flag, *p))
			return 1;
	return 0;
}

static int json_listed(json_t *allow, const char *name)
{
	size_t i;
	json_t *v;
	json_array_foreach(allow, i, v) {
		const char *a = json_string_value(v);
		size_t al = a ? strlen(a) : 0;
		if (!al)
			continue;
		if (a[al - 1] == '*' ? !strncmp(name, a, al - 1) : !strcmp(name, a))
			return 1;
	}
	return 0;
}

/* A value that names a file: the engine would read or write it as aimaas. */
static int path_like(const char *v)
{
	return v[0] == '/' || v[0] == '~' || !strncmp(v, "./", 2) || !strncmp(v, "../", 3) || strstr(v, "/../") ||
	       !strncmp(v, "file:", 5);
}

int am_engine_check_args(const struct am_engine_def *e, json_t *args, json_t *allow, struct am_err *err)
{
	/* code loaded, files read or written, other hosts reached: an admin's
	 * args_allow only (vLLM's, SGLang's and llama-server's options) */
	static const char *const risky[] = {
		"--worker-extension-cls", "--worker-cls", "--logits-processors", "--logits-processor-pattern",
		"--tool-parser-plugin", "--reasoning-parser-plugin", "--io-processor-plugin", "--middleware",
		"--distributed-executor-backend", "--kv-transfer-config", "--kv-events-config", "--ec-transfer-config",
		"--speculative-config", "--speculative-draft-model-path", "--hf-overrides", "--json-model-override-args",
		"--model-loader-extra-config", "--load-format", "--tokenizer", "--tokenizer-path", "--chat-template",
		"--chat-template-file", "--allowed-local-media-path", "--download-dir", "--ssl-keyfile", "--ssl-certfile",
		"--ssl-ca-certs", "--ssl-key-file", "--ssl-cert-file", "--log-config-file", "--otlp-traces-endpoint",
		"--compilation-config", "--additional-config", "--custom-weight-loader", "--enable-custom-logit-processor",
		"--tool-server", "--file-storage-path", "--quantization-param-path", "--modelopt-checkpoint-restore-path",
		"--modelopt-checkpoint-save-path", "--modelopt-export-path", "--rl-quant-profile", "--hf-token",
		"--enable-server-dev-mode", "--lora", "--lora-scaled", "--lora-paths", "--control-vector",
		"--control-vector-scaled", "--model-url", "-mu", "--hf-repo", "-hf", "-hfr", "--hf-file", "-hff",
		"--path", "--slot-save-path", "--log-file", "--grammar-file", "--json-schema-file", "--mmproj",
		"--mmproj-url", "--model-draft", "-md", "--rpc", "--prompt-cache", "--props", "--media-path", "-O", NULL,
	};
	if (!args || json_is_null(args))
		return 0;
	if (!json_is_array(args) || json_array_size(args) > 128)
		return am_err_set(err, AM_E_INVALID, "engine_args", "'engine_args' must be a list of at most 128 strings");
	size_t i;
	json_t *v;
	int value_ok = 0; /* the value after a flag an admin allowed */
	json_array_foreach(args, i, v) {
		const char *s = json_string_value(v);
		char field[48];
		am_fmt(field, sizeof field, "engine_args[%zu]", i);
		if (!s || json_string_length(v) > 4096 || strlen(s) != json_string_length(v))
			return am_err_set(err, AM_E_INVALID, field, "engine_args[%zu] must be a string without NUL", i);
		if (s[0] != '-' || (s[1] >= '0' && s[1] <= '9')) { /* a value (or a negative number) */
			if (!value_ok && path_like(s))
				return am_err_set(err, AM_E_INVALID, field,
						  "engine_args[%zu] is a path: the engine would open it as aimaas"
						  " (an admin may allow the flag before it: PATCH /api/v1/engines/{name} args_allow)", i);
			value_ok = 0;
			continue;
		}
		size_t fl = strcspn(s, "="), dot = strcspn(s, ".=");
		char flag[80]; /* vLLM's "--compilation-config.level 3" sets a key of --compilation-config */
		flag_norm(s, dot < 79 ? dot : 79, flag, sizeof flag);
		value_ok = 0;
		/* what aimaas sets: nobody overrides it (the deployment's own fields
		 * do); appended after aimaas's flags, the user's would win */
		if (check_owned(e, flag, s, fl, field, err) != 0)
			return -1;
		if (json_listed(allow, flag)) {
			value_ok = 1;
			continue;
		}
		if (flag_in(flag, risky))
			return am_err_set(err, AM_E_INVALID, field,
					  "engine_args may not set %s: it loads code or opens files or hosts as aimaas"
					  " (an admin may allow it: PATCH /api/v1/engines/{name} args_allow)", flag);
		if (s[fl] == '=' && path_like(s + fl + 1))
			return am_err_set(err, AM_E_INVALID, field,
					  "engine_args[%zu] holds a path: the engine would open it as aimaas"
					  " (an admin may allow %s: PATCH /api/v1/engines/{name} args_allow)", i, flag);
	}
	return 0;
}

static int prefixed(const char *name, const char *const *list)
{
	for (const char *const *p = list; *p; p++)
		if (!strncmp(name, *p, strlen(*p)))
			return 1;
	return 0;
}

static int exact(const char *name, const char *const *list)
{
	for (const char *const *p = list; *p; p++)
		if (!strcmp(name, *p))
			return 1;
	return 0;
}

static int contains(const char *name, const char *const *list)
{
	for (const char *const *p = list; *p; p++)
		if (strstr(name, *p))
			return 1;
	return 0;
}

/* The family a variable only an admin may allow belongs to, or NULL. */
static const char *env_denied(const char *k)
{
	static const char *const ok[] = { "PYTHONUNBUFFERED", "PYTHONIOENCODING", "PYTHONHASHSEED",
					  "PYTHONDONTWRITEBYTECODE", "PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF",
					  "CUBLAS_WORKSPACE_CONFIG", "TOKENIZERS_PARALLELISM", NULL };
	static const char *const loader[] = { "LD_", "DYLD_", "GLIBC_", "MALLOC_", "GCONV_", NULL };
	static const char *const loader_x[] = { "LOCPATH", "NLSPATH", "HOSTALIASES", "RES_OPTIONS", "LOCALDOMAIN", "TZDIR",
						"MEMUSAGE_OUTPUT", NULL };
	static const char *const interp[] = { "PYTHON", "PERL", "RUBY", "NODE_", "JAVA", "_JAVA", "JDK_", "LUA_", "GEM_",
					      "TCL", "R_", NULL };
	static const char *const shell_x[] = { "PATH", "HOME", "ENV", "BASH_ENV", "SHELL", "SHELLOPTS", "BASHOPTS", "PS1",
					       "PS2", "PS4", "IFS", "CDPATH", "GLOBIGNORE", "PROMPT_COMMAND", "TMPDIR", "TMP",
					       "TEMP", "PAGER", "EDITOR", "VISUAL", "BROWSER", "USER", "LOGNAME", NULL };
	static const char *const shell[] = { "BASH_", "ZSH", "XDG_", "GIT_", NULL };
	static const char *const sanitizer[] = { "ASAN_", "LSAN_", "MSAN_", "TSAN_", "UBSAN_", "HWASAN_", "DFSAN_", NULL };
	static const char *const cuda[] = { "CUDA_", "NVIDIA_", "NV_", "CUDNN_", "CUBLAS_", "CUFILE_", "NCCL_NET_",
					    "NVSHMEM_", NULL };
	static const char *const syslib[] = { "OPENSSL_", "SSL_", "GNUTLS_", "KRB5", "LLAMA_ARG_", NULL };
	/* engine tunables: allowed unless they name a file, code or an address */
	static const char *const tunable[] = { "VLLM_", "NCCL_", "HF_", "HUGGING_FACE_", "TRANSFORMERS_", "TOKENIZERS_",
					       "SGLANG_", "GGML_", "LLAMA_", "OMP_", "MKL_", "OPENBLAS_", "KMP_", "TORCH",
					       "PYTORCH_", "TRITON_", "RAY_", "FLASHINFER_", "DEEPSPEED_", "ACCELERATE_",
					       "BITSANDBYTES_", "DS_", NULL };
	static const char *const risky[] = { "PATH", "DIR", "FILE", "ROOT", "HOME", "CACHE", "PLUGIN", "CONF", "MODULE",
					     "LIB", "PRELOAD", "CLASS", "CLS", "SCRIPT", "CMD", "COMMAND", "EXEC",
					     "SERIALIZ", "PICKLE", "DEV_MODE", "HOST", "PORT", "URL", "ENDPOINT", "ADDR",
					     "_IP", "REMOTE", "TRUST", NULL };
	if (exact(k, ok))
		return NULL;
	if (prefixed(k, loader) || exact(k, loader_x))
		return "the dynamic loader's and C library's";
	if (prefixed(k, interp))
		return "an interpreter's";
	if (exact(k, shell_x) || prefixed(k, shell))
		return "the shell's and system's";
	if (prefixed(k, sanitizer) || strstr(k, "SAN_OPTIONS"))
		return "a sanitizer's";
	if (prefixed(k, cuda))
		return "CUDA's and NVIDIA's";
	if (prefixed(k, syslib))
		return "a system library's";
	if (prefixed(k, tunable))
		return contains(k, risky) ? "an engine's file, plugin or address" : NULL;
	if (strstr(k, "PRELOAD") || strstr(k, "PLUGIN") || strstr(k, "LIBRARY") ||
	    (strlen(k) >= 4 && !strcmp(k + strlen(k) - 4, "PATH")))
		return "a search path's or plugin's";
	return NULL;
}

int am_engine_check_env(json_t *env, json_t *allow, struct am_err *err)
{
	/* what aimaas sets in every engine's environment */
	static const char *const reserved[] = { "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "VLLM_API_KEY",
						"LLAMA_ARG_API_KEY", "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "LLAMABOARD_ENABLED",
						"LLAMABOARD_WORKDIR", "FORCE_TORCHRUN", "DISABLE_VERSION_CHECK", NULL };
	if (!env || json_is_null(env))
		return 0;
	if (!json_is_object(env) || json_object_size(env) > 64)
		return am_err_set(err, AM_E_INVALID, "env", "'env' must be an object of at most 64 string values");
	const char *k;
	json_t *v;
	json_object_foreach(env, k, v) {
		int ok = (isupper((unsigned char)k[0]) || k[0] == '_') && strlen(k) <= 128;
		for (const char *p = k; *p && ok; p++)
			ok = isupper((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_';
		if (!ok)
			return am_err_set(err, AM_E_INVALID, "env", "env name '%.60s' must be upper-case letters, digits and '_'", k);
		char field[160];
		am_fmt(field, sizeof field, "env.%s", k);
		if (exact(k, reserved) || !strncmp(k, "AIMAAS_", 7))
			return am_err_set(err, AM_E_INVALID, field, "env may not set %s: aimaas sets it", k);
		if (!json_is_string(v) || json_string_length(v) > 8192 || strlen(json_string_value(v)) != json_string_length(v))
			return am_err_set(err, AM_E_INVALID, field, "env value of %.60s must be a string without NUL", k);
		const char *family = json_listed(allow, k) ? NULL : env_denied(k);
		if (!family && (!strcmp(k, "LANG") || !strcmp(k, "LANGUAGE") || !strncmp(k, "LC_", 3)) &&
		    strchr(json_string_value(v), '/'))
			family = "the C library's (a locale by path)";
		if (family)
			return am_err_set(err, AM_E_INVALID, field,
					  "env may not set %s: %s variables change what code the engine runs"
					  " (an admin may allow it: PATCH /api/v1/engines/{name} env_allow)", k, family);
	}
	return 0;
}

/* ---- serving metrics ---- */

/* The samples of one series in Prometheus text: each line "name value" or
 * "name{labels} value" (not name_created, name_bucket, ...), summed, or
 * their largest when `max`. */
static double series(const char *text, size_t len, const char *name, int max)
{
	double acc = 0;
	size_t nl = strlen(name);
	const char *end = text + len;
	for (const char *p = text; p < end;) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *next = eol ? eol + 1 : end;
		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > nl && !memcmp(p, name, nl) && (p[nl] == '{' || p[nl] == ' ')) {
			const char *v = p + nl;
			if (*v == '{') /* a label value may hold '}' only quoted; engines' do not */
				v = memchr(v, '}', (size_t)(eol - v));
			char num[64];
			if (v && v + 1 < eol) {
				am_fmt(num, sizeof num, "%.*s", (int)(eol - v - 1 < 63 ? eol - v - 1 : 63), v + 1);
				char *e;
				double x = strtod(num, &e);
				if (e != num && x == x) /* not NaN */
					acc = max ? (x > acc ? x : acc) : acc + x;
			}
		}
		p = next;
	}
	return acc;
}

void am_engine_read_metrics(const struct am_engine_def *e, const char *text, size_t len, struct am_engine_stats *out)
{
	const struct am_engine_metrics *m = e ? e->metrics : NULL;
	memset(out, 0, sizeof *out);
	if (!m || !text)
		return;
	out->running = m->running ? series(text, len, m->running, 0) : 0;
	out->waiting = m->waiting ? series(text, len, m->waiting, 0) : 0;
	out->kv = m->kv ? series(text, len, m->kv, 1) : 0;
	out->prompt_tokens = m->prompt_tokens ? series(text, len, m->prompt_tokens, 0) : 0;
	out->gen_tokens = m->gen_tokens ? series(text, len, m->gen_tokens, 0) : 0;
}

/* ---- why an engine or trainer stopped ---- */

/* A wrapper's line: the real cause was printed above it. */
static int wrapper(const char *s)
{
	static const char *const w[] = { "EngineDeadError", "see stack trace above", "See stack trace (above)",
					 "See root cause above", "Engine core initialization failed", "ChildFailedError",
					 "CalledProcessError", "EngineGenerateError", "KeyboardInterrupt", "SystemExit", NULL };
	return contains(s, w);
}

/* The line with the traceback's process prefix (text before "Traceback")
 * taken off, or NULL when it carries another prefix. */
static const char *unprefixed(const char *line, const char *prefix, size_t pl)
{
	return strncmp(line, prefix, pl) ? NULL : line + pl;
}

/* "Name: message" or a bare "Name" (dotted identifiers). */
static int exception_line(const char *s)
{
	size_t i = 0;
	if (!isalpha((unsigned char)s[0]) && s[0] != '_')
		return 0;
	while (isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.')
		i++;
	return s[i] == ':' || s[i] == '\0';
}

/* The exception line ending the traceback that starts at lines[t], its
 * process prefix taken off, or NULL. */
static const char *traceback_end(char *const *lines, int n, int t)
{
	const char *tb = strstr(lines[t], "Traceback (most recent call last):");
	size_t pl = (size_t)(tb - lines[t]);
	for (int i = t + 1; i < n; i++) {
		const char *s = unprefixed(lines[i], lines[t], pl);
		if (!s || !*s || isspace((unsigned char)s[0]))
			continue; /* a frame, its code, or another process's line */
		if (!strncmp(s, "Traceback (", 11))
			return NULL;
		if (exception_line(s))
			return s;
	}
	return NULL;
}

const char *am_engine_root_cause(char *const *lines, int n)
{
	int t = n;
	while (t > 0) {
		/* the last traceback before t, then back along its chain */
		int start = -1;
		for (int i = t - 1; i >= 0 && start < 0; i--)
			if (strstr(lines[i], "Traceback (most recent call last):"))
				start = i;
		if (start < 0)
			return NULL;
		int first = start;
		for (;;) {
			int j = first - 1;
			while (j >= 0 && !lines[j][strspn(lines[j], " \t")])
				j--;
			int chained = 0;
			for (int k = j; k >= 0 && k >= j - 2; k--)
				chained |= strstr(lines[k], "The above exception was the direct cause") ||
					   strstr(lines[k], "During handling of the above exception");
			if (!chained)
				break;
			int prev = -1;
			for (int i = j - 1; i >= 0 && prev < 0; i--)
				if (strstr(lines[i], "Traceback (most recent call last):"))
					prev = i;
			if (prev < 0)
				break;
			first = prev;
		}
		/* in a chain, the original cause; past wrappers */
		for (int c = first; c < n; c++) {
			if (c != first && c > start)
				break;
			if (c != first && !strstr(lines[c], "Traceback (most recent call last):"))
				continue;
			const char *x = traceback_end(lines, n, c);
			if (x && !wrapper(x))
				return x;
		}
		t = first;
	}
	return NULL;
}

const char *am_engine_fatal_line(const struct am_engine_def *e, char *const *lines, int n)
{
	const char *root = am_engine_root_cause(lines, n);
	if (root)
		return root;
	if (!e->fatal_lines)
		return NULL;
	for (const char *const *p = e->fatal_lines; *p; p++)
		for (int i = n - 1; i >= 0; i--)
			if (strstr(lines[i], *p))
				return lines[i];
	return NULL;
}
