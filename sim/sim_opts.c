/* sim_opts: vLLM-compatible argument parsing. */
#include "sim_opts.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/am_buf.h"
#include "base/am_mem.h"

void sim_opts_usage(void)
{
	fputs("usage: vllm serve [model_tag] [options]\n"
	      "  (aimaas-sim: a simulator of vLLM's OpenAI-compatible server; no model is loaded)\n"
	      "\nvLLM options understood:\n"
	      "  --host HOST  --port PORT  --served-model-name NAME [NAME ...]\n"
	      "  --tensor-parallel-size/-tp N  --pipeline-parallel-size/-pp N  --data-parallel-size/-dp N\n"
	      "  --gpu-memory-utilization F  --max-model-len N  --max-num-seqs N  --dtype D\n"
	      "  --quantization/-q Q  --trust-remote-code  --enable-lora  --max-loras N  --max-lora-rank R\n"
	      "  --lora-modules name=path|JSON [...]  --api-key KEY  --runner R  --convert C\n"
	      "  --chat-template FILE  --enable-prefix-caching  --enforce-eager  --seed N\n"
	      "  --tokenizer T  --download-dir D  --distributed-executor-backend mp|ray\n"
	      "  --disable-uvicorn-access-log\n"
	      "\nsimulation options:\n"
	      "  --sim-flavor vllm|sglang|llama.cpp   first, when given: the engine played (default vllm):\n"
	      "                           its command line (SGLang's after `python3`: -m sglang.launch_server\n"
	      "                           --model-path M ...; llama-server's: -m M -a NAME ...) and its\n"
	      "                           /metrics names\n"
	      "  --sim-ttft-ms N          time to first token (default 0)\n"
	      "  --sim-itl-ms N           time between tokens (default 0, or AIMAAS_SIM_ITL_MS)\n"
	      "  --sim-startup-ms N       time until /health answers 200 (default 0)\n"
	      "  --sim-lora-load-ms N     time a /v1/load_lora_adapter takes (default 0, or AIMAAS_SIM_LORA_LOAD_MS)\n"
	      "  --sim-mode random|echo   invented text, or the last user message back (default random)\n"
	      "  --sim-output-tokens N    tokens to generate when max_tokens allows (default 16, or AIMAAS_SIM_OUTPUT_LEN)\n"
	      "  --sim-kind chat|embedding|rerank   what the model is (default: from --runner/--convert\n"
	      "                           or the model's config.json architectures)\n"
	      "  --sim-embedding-dim N    embedding size (default: the config's hidden_size, else 1024)\n"
	      "  --sim-max-waiting N      waiting-queue size; more requests get 429 (default 1024)\n"
	      "  --sim-failure-rate F     fraction of requests answered 500 (default 0)\n"
	      "  --sim-startup-error TEXT fail start-up with this cause (exit 1)\n"
	      "  --sim-crash-after-ms N   exit 1 this long after becoming ready\n",
	      stderr);
}

/* The command errors are said as (the engine played). */
static const char *prog = "vllm serve";

static int fail(const char *fmt, const char *a)
{
	sim_opts_usage();
	fprintf(stderr, "%s: error: ", prog);
	fprintf(stderr, fmt, a);
	fputc('\n', stderr);
	return 2;
}

static int to_int(const char *flag, const char *v, long min, long max, int *out)
{
	char *end;
	errno = 0;
	long x = strtol(v, &end, 10);
	if (errno || end == v || *end || x < min || x > max)
		return fail("argument %s: invalid int value", flag);
	*out = (int)x;
	return 0;
}

static int to_double(const char *flag, const char *v, double min, double max, double *out)
{
	char *end;
	errno = 0;
	double x = strtod(v, &end);
	if (errno || end == v || *end || x < min || x > max)
		return fail("argument %s: invalid float value", flag);
	*out = x;
	return 0;
}

/* name=path, or the JSON form {"name","path","base_model_name"} (parsed by
 * hand: three string members are all it has). */
static int lora_module(struct sim_opts *o, const char *v)
{
	if (o->nloras == SIM_MAX_LORAS)
		return fail("too many --lora-modules (%s)", "max 32");
	struct sim_lora *l = &o->loras[o->nloras];
	memset(l, 0, sizeof *l);
	if (v[0] == '{') {
		static const char *const keys[] = { "\"name\"", "\"path\"", "\"base_model_name\"" };
		char *dst[] = { l->name, l->path, l->base };
		size_t sz[] = { sizeof l->name, sizeof l->path, sizeof l->base };
		for (int k = 0; k < 3; k++) {
			const char *p = strstr(v, keys[k]);
			if (!p)
				continue;
			p = strchr(p + strlen(keys[k]), '"');
			const char *e = p ? strchr(p + 1, '"') : NULL;
			if (!p || !e || (size_t)(e - p - 1) >= sz[k])
				return fail("argument --lora-modules: invalid JSON '%s'", v);
			memcpy(dst[k], p + 1, (size_t)(e - p - 1));
			dst[k][e - p - 1] = '\0';
		}
	} else {
		const char *eq = strchr(v, '=');
		if (!eq || eq == v || !eq[1] || (size_t)(eq - v) >= sizeof l->name)
			return fail("argument --lora-modules: expected name=path, got '%s'", v);
		memcpy(l->name, v, (size_t)(eq - v));
		am_strlcpy(l->path, eq + 1, sizeof l->path);
	}
	if (!l->name[0] || !l->path[0])
		return fail("argument --lora-modules: a module needs a name and a path (%s)", v);
	o->nloras++;
	return 0;
}

/* vLLM's command line into o (defaults already set). */
static int parse_vllm(int argc, char **argv, struct sim_opts *o)
{
	for (int i = 0; i < argc; i++) {
		char flagbuf[128];
		const char *a = argv[i], *val = NULL;
		if (a[0] != '-') {
			if (o->model)
				return fail("unrecognized arguments: %s", a);
			o->model = a;
			continue;
		}
		const char *eq = strchr(a, '=');
		if (eq && eq - a < (long)sizeof flagbuf) {
			memcpy(flagbuf, a, (size_t)(eq - a));
			flagbuf[eq - a] = '\0';
			val = eq + 1;
			a = flagbuf;
		}
		/* value flags take the next word (or the =value) */
#define TAKE()                                                                   \
	do {                                                                     \
		if (!val) {                                                      \
			if (i + 1 >= argc)                                       \
				return fail("argument %s: expected one argument", a); \
			val = argv[++i];                                         \
		}                                                                \
	} while (0)
		int rc = 0;
		if (!strcmp(a, "--host")) { TAKE(); o->host = val; }
		else if (!strcmp(a, "--port")) { TAKE(); rc = to_int(a, val, 1, 65535, &o->port); }
		else if (!strcmp(a, "--model")) { TAKE(); o->model = val; }
		else if (!strcmp(a, "--served-model-name")) {
			if (val) o->names[o->nnames++] = val;
			while (i + 1 < argc && argv[i + 1][0] != '-' && o->nnames < SIM_MAX_NAMES)
				o->names[o->nnames++] = argv[++i];
			if (o->nnames == 0)
				return fail("argument %s: expected at least one argument", a);
		}
		else if (!strcmp(a, "--tensor-parallel-size") || !strcmp(a, "-tp")) { TAKE(); rc = to_int(a, val, 1, 1024, &o->tp); }
		else if (!strcmp(a, "--pipeline-parallel-size") || !strcmp(a, "-pp")) { TAKE(); rc = to_int(a, val, 1, 1024, &o->pp); }
		else if (!strcmp(a, "--data-parallel-size") || !strcmp(a, "-dp")) { TAKE(); rc = to_int(a, val, 1, 1024, &o->dp); }
		else if (!strcmp(a, "--gpu-memory-utilization")) { TAKE(); rc = to_double(a, val, 0.01, 1.0, &o->gpu_memory_utilization); }
		else if (!strcmp(a, "--max-model-len")) { TAKE(); rc = to_int(a, val, 1, 1 << 24, &o->max_model_len); }
		else if (!strcmp(a, "--max-num-seqs")) { TAKE(); rc = to_int(a, val, 1, 1 << 20, &o->max_num_seqs); }
		else if (!strcmp(a, "--dtype")) {
			TAKE();
			static const char *const ok[] = { "auto", "half", "float16", "bfloat16", "float", "float32", NULL };
			int good = 0;
			for (int k = 0; ok[k]; k++) good |= !strcmp(ok[k], val);
			if (!good) return fail("argument --dtype: invalid choice: '%s'", val);
			o->dtype = val;
		}
		else if (!strcmp(a, "--quantization") || !strcmp(a, "-q")) { TAKE(); o->quantization = val; }
		else if (!strcmp(a, "--trust-remote-code")) o->trust_remote_code = 1;
		else if (!strcmp(a, "--enable-lora")) o->enable_lora = 1;
		else if (!strcmp(a, "--max-loras")) { TAKE(); rc = to_int(a, val, 1, 1024, &o->max_loras); }
		else if (!strcmp(a, "--max-lora-rank")) {
			TAKE();
			rc = to_int(a, val, 1, 512, &o->max_lora_rank);
			static const int ranks[] = { 1, 8, 16, 32, 64, 128, 256, 320, 512 };
			int good = 0;
			for (size_t k = 0; k < sizeof ranks / sizeof ranks[0]; k++) good |= ranks[k] == o->max_lora_rank;
			if (!rc && !good) return fail("argument --max-lora-rank: invalid choice: %s", val);
		}
		else if (!strcmp(a, "--lora-modules")) {
			if (val) rc = lora_module(o, val);
			int any = val != NULL;
			while (!rc && i + 1 < argc && argv[i + 1][0] != '-') { rc = lora_module(o, argv[++i]); any = 1; }
			if (!rc && !any) return fail("argument %s: expected at least one argument", a);
		}
		else if (!strcmp(a, "--api-key")) { TAKE(); o->api_key = val; }
		else if (!strcmp(a, "--runner")) {
			TAKE();
			if (strcmp(val, "auto") && strcmp(val, "generate") && strcmp(val, "pooling"))
				return fail("argument --runner: invalid choice: '%s'", val);
			o->runner = val;
		}
		else if (!strcmp(a, "--convert")) {
			TAKE();
			if (strcmp(val, "auto") && strcmp(val, "none") && strcmp(val, "embed") && strcmp(val, "classify") && strcmp(val, "reward"))
				return fail("argument --convert: invalid choice: '%s'", val);
			o->convert = val;
		}
		else if (!strcmp(a, "--chat-template")) { TAKE(); o->chat_template = val; }
		else if (!strcmp(a, "--enable-prefix-caching")) o->enable_prefix_caching = 1;
		else if (!strcmp(a, "--no-enable-prefix-caching")) o->enable_prefix_caching = 0;
		else if (!strcmp(a, "--enforce-eager")) o->enforce_eager = 1;
		else if (!strcmp(a, "--seed")) { TAKE(); int s; rc = to_int(a, val, 0, 1 << 30, &s); o->seed = s; }
		else if (!strcmp(a, "--tokenizer")) { TAKE(); o->tokenizer = val; }
		else if (!strcmp(a, "--download-dir")) { TAKE(); o->download_dir = val; }
		else if (!strcmp(a, "--distributed-executor-backend")) {
			TAKE();
			if (strcmp(val, "mp") && strcmp(val, "ray") && strcmp(val, "uni") && strcmp(val, "external_launcher"))
				return fail("argument --distributed-executor-backend: invalid choice: '%s'", val);
			o->distributed_executor_backend = val;
		}
		else if (!strcmp(a, "--disable-uvicorn-access-log")) o->disable_access_log = 1;
		else if (!strcmp(a, "--sim-flavor")) return fail("argument %s: must come first", a);
		else if (!strcmp(a, "--sim-ttft-ms")) { TAKE(); rc = to_int(a, val, 0, 3600000, &o->ttft_ms); }
		else if (!strcmp(a, "--sim-itl-ms")) { TAKE(); rc = to_int(a, val, 0, 600000, &o->itl_ms); }
		else if (!strcmp(a, "--sim-startup-ms")) { TAKE(); rc = to_int(a, val, 0, 3600000, &o->startup_ms); }
		else if (!strcmp(a, "--sim-lora-load-ms")) { TAKE(); rc = to_int(a, val, 0, 600000, &o->lora_load_ms); }
		else if (!strcmp(a, "--sim-output-tokens")) { TAKE(); rc = to_int(a, val, 1, 1 << 20, &o->output_tokens); }
		else if (!strcmp(a, "--sim-embedding-dim")) { TAKE(); rc = to_int(a, val, 1, 65536, &o->embedding_dim); }
		else if (!strcmp(a, "--sim-max-waiting")) { TAKE(); rc = to_int(a, val, 0, 1 << 24, &o->max_waiting); }
		else if (!strcmp(a, "--sim-failure-rate")) { TAKE(); rc = to_double(a, val, 0, 1, &o->failure_rate); }
		else if (!strcmp(a, "--sim-startup-error")) { TAKE(); o->startup_error = val; }
		else if (!strcmp(a, "--sim-crash-after-ms")) { TAKE(); rc = to_int(a, val, 1, 1 << 30, &o->crash_after_ms); }
		else if (!strcmp(a, "--sim-mode")) {
			TAKE();
			if (!strcmp(val, "echo")) o->mode = SIM_ECHO;
			else if (!strcmp(val, "random")) o->mode = SIM_RANDOM;
			else return fail("argument --sim-mode: invalid choice: '%s' (choose from random, echo)", val);
		}
		else if (!strcmp(a, "--sim-kind")) {
			TAKE();
			if (!strcmp(val, "chat")) o->kind = SIM_CHAT;
			else if (!strcmp(val, "embedding")) o->kind = SIM_EMBED;
			else if (!strcmp(val, "rerank")) o->kind = SIM_RERANK;
			else return fail("argument --sim-kind: invalid choice: '%s' (choose from chat, embedding, rerank)", val);
		}
		else return fail("unrecognized arguments: %s", argv[i]);
#undef TAKE
		if (rc)
			return rc;
	}
	if (!o->model)
		return fail("the following arguments are required: %s", "model_tag");
	return 0;
}

/* ---- other engines' command lines, read as vLLM's ---- */

/* One of an engine's flags (its spellings, space-separated) and what it
 * becomes: vLLM's flag ("" the positional model, NULL dropped), with arg
 * as its value when set; value: the engine's flag takes one. */
struct alias {
	const char *from, *to, *arg;
	int value;
};

/* python/sglang/srt/server_args.py */
static const struct alias sglang_aliases[] = {
	{ "--model-path --model", "", NULL, 1 },
	{ "--tp-size --tensor-parallel-size", "--tensor-parallel-size", NULL, 1 },
	{ "--dp-size --data-parallel-size", "--data-parallel-size", NULL, 1 },
	{ "--pp-size --pipeline-parallel-size", "--pipeline-parallel-size", NULL, 1 },
	{ "--mem-fraction-static", "--gpu-memory-utilization", NULL, 1 },
	{ "--context-length", "--max-model-len", NULL, 1 },
	{ "--max-running-requests", "--max-num-seqs", NULL, 1 },
	{ "--random-seed", "--seed", NULL, 1 },
	{ "--is-embedding", "--runner", "pooling", 0 },
	{ "--enable-metrics", NULL, NULL, 0 },
	{ NULL, NULL, NULL, 0 },
};

/* llama.cpp's common/arg.cpp (llama-server's options) */
static const struct alias llama_aliases[] = {
	{ "-m --model", "", NULL, 1 },
	{ "-a --alias", "--served-model-name", NULL, 1 },
	{ "-c --ctx-size", "--max-model-len", NULL, 1 },
	{ "-np --parallel", "--max-num-seqs", NULL, 1 },
	{ "-ngl --gpu-layers --n-gpu-layers", NULL, NULL, 1 },
	{ "-s --seed", "--seed", NULL, 1 },
	{ "--embedding --embeddings", "--sim-kind", "embedding", 0 },
	{ "--reranking --rerank", "--sim-kind", "rerank", 0 },
	{ "--metrics", NULL, NULL, 0 },
	{ NULL, NULL, NULL, 0 },
};

static int spelled(const char *list, const char *flag, size_t n)
{
	for (const char *p = list; *p;) {
		size_t l = strcspn(p, " ");
		if (l == n && !memcmp(p, flag, n))
			return 1;
		p += l;
		while (*p == ' ')
			p++;
	}
	return 0;
}

/* SGLang's --config file: the api-key aimaas writes there ({"api-key": K}). */
static int sglang_config(struct sim_opts *o, const char *path)
{
	json_t *c = json_load_file(path, 0, NULL);
	int ok = json_is_object(c);
	const char *k = json_string_value(json_object_get(c, "api-key"));
	if (k)
		am_strlcpy(o->config_key, k, sizeof o->config_key);
	json_decref(c);
	return ok ? 0 : fail("argument --config: cannot read a JSON object from %s", path);
}

/* Reads argv (an engine's command line) into t as vLLM's; t holds 2 * argc
 * words at least. The count of words, or -(exit status). */
static int translate(enum sim_flavor f, int argc, char **argv, struct sim_opts *o, char **t)
{
	const struct alias *al = f == SIM_FLAVOR_SGLANG ? sglang_aliases : llama_aliases;
	int nt = 0, i = 0;
	if (f == SIM_FLAVOR_SGLANG) {
		if (argc < 2 || strcmp(argv[0], "-m") || strcmp(argv[1], "sglang.launch_server"))
			return -fail("expected '-m sglang.launch_server' first, as `python3 -m sglang.launch_server`%s", "");
		i = 2;
	}
	for (; i < argc; i++) {
		char *a = argv[i];
		const char *eq = a[0] == '-' ? strchr(a, '=') : NULL;
		size_t n = eq ? (size_t)(eq - a) : strlen(a);
		if (f == SIM_FLAVOR_SGLANG && spelled("--config", a, n)) {
			const char *path = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
			if (!path)
				return -fail("argument %s: expected one argument", "--config");
			int rc = sglang_config(o, path);
			if (rc)
				return -rc;
			if (o->config_key[0]) {
				t[nt++] = "--api-key";
				t[nt++] = o->config_key;
			}
			continue;
		}
		const struct alias *m = NULL;
		for (int k = 0; a[0] == '-' && al[k].from && !m; k++)
			if (spelled(al[k].from, a, n))
				m = &al[k];
		if (!m) {
			t[nt++] = a; /* the same as vLLM's, the simulator's own, or refused there */
			continue;
		}
		char *v = NULL;
		if (m->value) {
			v = eq ? (char *)eq + 1 : i + 1 < argc ? argv[++i] : NULL;
			if (!v)
				return -fail("argument %s: expected one argument", a);
		}
		if (!m->to)
			continue;
		if (m->to[0])
			t[nt++] = (char *)m->to;
		if (m->arg)
			t[nt++] = (char *)m->arg;
		else if (v)
			t[nt++] = v;
	}
	return nt;
}

int sim_opts_parse(int argc, char **argv, struct sim_opts *o)
{
	memset(o, 0, sizeof *o);
	prog = "vllm serve";
	o->host = "0.0.0.0";
	o->port = 8000;
	o->tp = o->pp = o->dp = 1;
	o->gpu_memory_utilization = 0.9;
	o->max_num_seqs = 256;
	o->dtype = "auto";
	o->max_loras = 1;
	o->max_lora_rank = 16;
	o->seed = 0;
	/* tests that start the simulator through aimaas (a shim for vllm) pace its tokens this way */
	const char *lload = getenv("AIMAAS_SIM_LORA_LOAD_MS");
	if (lload && *lload) {
		long v = strtol(lload, NULL, 10);
		o->lora_load_ms = v > 0 && v < 600000 ? (int)v : 0;
	}
	const char *itl = getenv("AIMAAS_SIM_ITL_MS");
	if (itl && *itl)
		o->itl_ms = (int)strtol(itl, NULL, 10) > 0 && strtol(itl, NULL, 10) < 600000 ? (int)strtol(itl, NULL, 10) : 0;
	o->mode = SIM_RANDOM;
	o->kind = -1;
	o->output_tokens = 16;
	const char *otok = getenv("AIMAAS_SIM_OUTPUT_LEN"); /* as AIMAAS_SIM_ITL_MS (not "..._TOKENS": aimaas keeps secret-looking names from engines) */
	if (otok && *otok) {
		long v = strtol(otok, NULL, 10);
		o->output_tokens = v >= 1 && v <= (1 << 20) ? (int)v : 16;
	}
	o->max_waiting = 1024;
	if (!argc || strncmp(argv[0], "--sim-flavor", 12) || (argv[0][12] && argv[0][12] != '='))
		return parse_vllm(argc, argv, o);
	int skip = argv[0][12] == '=' ? 1 : 2;
	const char *f = skip == 1 ? argv[0] + 13 : argc > 1 ? argv[1] : "";
	if (!strcmp(f, "vllm"))
		return parse_vllm(argc - skip, argv + skip, o);
	if (!strcmp(f, "sglang")) {
		o->flavor = SIM_FLAVOR_SGLANG;
		prog = "launch_server.py";
	} else if (!strcmp(f, "llama.cpp")) {
		o->flavor = SIM_FLAVOR_LLAMACPP;
		prog = "llama-server";
	}
	else
		return fail("argument --sim-flavor: invalid choice: '%s' (choose from vllm, sglang, llama.cpp)", f);
	char **t = am_calloc((size_t)(2 * argc + 1), sizeof *t);
	int nt = translate(o->flavor, argc - skip, argv + skip, o, t);
	int rc = nt < 0 ? -nt : parse_vllm(nt, t, o);
	free(t);
	return rc;
}
