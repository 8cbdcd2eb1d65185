/* Unit tests: the engine adapters' rules for what users pass (env,
 * engine_args), masking, and the root cause of a crash in real-looking
 * vLLM and LLaMA-Factory logs. */
#include <stdlib.h>
#include <string.h>

#include "am_test.h"
#include "deploy/am_deploy.h"
#include "runtime/rt_local.h"
#include "engine/am_engine.h"

static int env_ok(const char *json, const char *allow, char *field, size_t fsize)
{
	json_t *env = json_loads(json, 0, NULL), *al = allow ? json_loads(allow, 0, NULL) : NULL;
	struct am_err err;
	am_err_clear(&err);
	int rc = am_engine_check_env(env, al, &err);
	snprintf(field, fsize, "%s", err.field);
	json_decref(env);
	json_decref(al);
	return rc;
}

static void env_rules(void)
{
	char f[160];
	/* the loader's, interpreters', shells', sanitizers' and CUDA's: refused, named */
	static const char *const bad[] = { "LD_PRELOAD", "LD_LIBRARY_PATH", "PATH", "PYTHONPATH", "PYTHONSTARTUP",
					   "BASH_ENV", "ENV", "ASAN_OPTIONS", "UBSAN_OPTIONS", "CUDA_LAUNCH_BLOCKING",
					   "GLIBC_TUNABLES", "HOME", "TMPDIR", "NODE_OPTIONS", "OPENSSL_CONF", "XDG_CACHE_HOME",
					   "VLLM_LOGGING_CONFIG_PATH", "VLLM_PLUGINS", "VLLM_ALLOW_INSECURE_SERIALIZATION",
					   "VLLM_SERVER_DEV_MODE", "NCCL_NET_PLUGIN", "NCCL_DEBUG_FILE", "TORCHINDUCTOR_CACHE_DIR",
					   "HF_HOME", "HF_MODULES_CACHE", "TRITON_CACHE_DIR", "OMP_TOOL_LIBRARIES", "LLAMA_ARG_HOST",
					   "MY_PLUGIN", "APP_PRELOAD", "GCONV_PATH", NULL };
	for (const char *const *k = bad; *k; k++) {
		char js[200], want[160];
		snprintf(js, sizeof js, "{\"%s\":\"/data/datasets/1/x.so\"}", *k);
		snprintf(want, sizeof want, "env.%s", *k);
		if (env_ok(js, NULL, f, sizeof f) != -1)
			fprintf(stderr, "    (accepted %s)\n", *k);
		CHECK_STR(f, want);
	}
	/* what aimaas sets: refused even when an admin's list names it */
	CHECK_INT(env_ok("{\"VLLM_API_KEY\":\"mine\"}", "[\"VLLM_*\",\"VLLM_API_KEY\"]", f, sizeof f), -1);
	CHECK_STR(f, "env.VLLM_API_KEY");
	CHECK_INT(env_ok("{\"CUDA_VISIBLE_DEVICES\":\"0\"}", "[\"CUDA_*\"]", f, sizeof f), -1);
	CHECK_STR(f, "env.CUDA_VISIBLE_DEVICES");
	CHECK_INT(env_ok("{\"AIMAAS_X\":\"1\"}", NULL, f, sizeof f), -1);
	/* engine tunables and applications' own variables */
	CHECK_INT(env_ok("{\"VLLM_LOGGING_LEVEL\":\"DEBUG\",\"NCCL_DEBUG\":\"INFO\",\"HF_TOKEN\":\"hf_x\",\"HF_HUB_OFFLINE\":\"1\","
			 "\"TRANSFORMERS_OFFLINE\":\"1\",\"OMP_NUM_THREADS\":\"4\",\"TOKENIZERS_PARALLELISM\":\"false\","
			 "\"PYTORCH_CUDA_ALLOC_CONF\":\"expandable_segments:True\",\"DB_PASSWORD\":\"p\",\"MY_SECRET\":\"s\","
			 "\"LOG_LEVEL\":\"info\",\"VLLM_USE_V1\":\"1\",\"NCCL_P2P_DISABLE\":\"1\"}", NULL, f, sizeof f), 0);
	/* an admin widens: a name, or a prefix */
	CHECK_INT(env_ok("{\"CUDA_LAUNCH_BLOCKING\":\"1\"}", "[\"CUDA_LAUNCH_BLOCKING\"]", f, sizeof f), 0);
	CHECK_INT(env_ok("{\"PYTHONWARNINGS\":\"ignore\"}", "[\"PYTHON*\"]", f, sizeof f), 0);
	CHECK_INT(env_ok("{\"PYTHONWARNINGS\":\"ignore\"}", "[\"CUDA_LAUNCH_BLOCKING\"]", f, sizeof f), -1);
	CHECK_INT(env_ok("{\"LC_ALL\":\"/data/datasets/1\"}", NULL, f, sizeof f), -1);
	CHECK_INT(env_ok("{\"LC_ALL\":\"C.UTF-8\",\"LANG\":\"en_US.UTF-8\"}", NULL, f, sizeof f), 0);
	CHECK_INT(env_ok("{\"bad\":\"1\"}", NULL, f, sizeof f), -1);
	CHECK_STR(f, "env");
}

static int args_ok(const char *json, const char *allow, char *field, size_t fsize)
{
	json_t *a = json_loads(json, 0, NULL), *al = allow ? json_loads(allow, 0, NULL) : NULL;
	struct am_err err;
	am_err_clear(&err);
	int rc = am_engine_check_args(am_engine_find("vllm"), a, al, &err);
	snprintf(field, fsize, "%s", err.field);
	json_decref(a);
	json_decref(al);
	return rc;
}

static void arg_rules(void)
{
	char f[64];
	CHECK_INT(args_ok("[\"--max-num-batched-tokens\",\"8192\",\"--enable-prefix-caching\",\"--kv-cache-dtype=fp8\","
			  "\"--swap-space\",\"-1\"]", NULL, f, sizeof f), 0);
	static const char *const bad[] = {
		"[\"--worker-extension-cls\",\"evil.Ext\"]", "[\"--worker_extension_cls=evil.Ext\"]",
		"[\"--worker-ext\",\"evil.Ext\"]", "[\"--logits-processor-pattern\",\".*\"]", "[\"--tool-parser-plugin\",\"x.py\"]",
		"[\"--api_key\",\"k\"]", "[\"--config\",\"c.yaml\"]", "[\"--host=0.0.0.0\"]", "[\"--served-model-name\",\"x\"]",
		"[\"--trust-remote-code\"]", "[\"--seed\",\"1\",\"--chat-template\",\"/etc/shadow\"]",
		"[\"--enable-lora\",\"--max-loras=2\",\"--download-dir=/tmp\"]", "[\"--seed=1\",\"--foo=/data/x\"]",
		"[\"--seed\",\"../../etc\"]", "[\"--ho\",\"0.0.0.0\"]", "[\"--kv-transfer-config.kv_connector_module_path\",\"evil\"]",
		"[\"-O\",\"{}\"]", NULL,
	};
	for (const char *const *b = bad; *b; b++) {
		if (args_ok(*b, NULL, f, sizeof f) != -1)
			fprintf(stderr, "    (accepted %s)\n", *b);
		CHECK(!strncmp(f, "engine_args[", 12));
	}
	CHECK_INT(args_ok("[\"--seed\",\"1\",\"--chat-template\",\"/etc/shadow\"]", NULL, f, sizeof f), -1);
	CHECK_STR(f, "engine_args[2]");
	/* an admin's args_allow lets a flag and its path through, never an owned flag */
	CHECK_INT(args_ok("[\"--chat-template\",\"/models/t.jinja\"]", "[\"--chat-template\"]", f, sizeof f), 0);
	CHECK_INT(args_ok("[\"--api-key\",\"k\"]", "[\"--api-key\"]", f, sizeof f), -1);
}

static void masking(void)
{
	struct am_argv env = { 0 }, argv = { 0 };
	am_argv_add(&env, "DB_PASSWORD=hunter2");
	am_argv_add(&env, "MY_SECRET=s3");
	am_argv_add(&env, "hf_token=t");
	am_argv_add(&env, "LOG_LEVEL=debug");
	am_argv_add(&argv, "vllm");
	am_argv_add(&argv, "--hf-token");
	am_argv_add(&argv, "hf_abc");
	am_argv_add(&argv, "--my-token=xyz");
	am_argv_add(&argv, "--seed");
	am_argv_add(&argv, "1");
	json_t *je = am_argv_json(&env, 1), *ja = am_argv_json(&argv, 0);
	char *e = json_dumps(je, 0), *a = json_dumps(ja, 0);
	CHECK(!strstr(e, "hunter2") && !strstr(e, "s3\"") && !strstr(e, "=t\""));
	CHECK(strstr(e, "LOG_LEVEL=debug") != NULL);
	CHECK(!strstr(a, "hf_abc") && !strstr(a, "xyz"));
	CHECK(strstr(a, "\"1\"") != NULL);
	CHECK(am_engine_secret_name("db_password", 0) && am_engine_secret_name("API_KEY=1", 7) && !am_engine_secret_name("LOG_LEVEL", 0));
	json_decref(ja);
	json_decref(je);
	free(e);
	free(a);
	am_argv_free(&env);
	am_argv_free(&argv);
}

/* A user's VLLM_API_KEY never reaches the engine beside aimaas's own. */
static void env_once(void)
{
	const struct am_engine_def *e = am_engine_find("vllm");
	json_t *uenv = json_pack("{s:s,s:s}", "VLLM_API_KEY", "users-key", "APP", "1");
	struct am_launch l = { .binary = "vllm", .model_path = "/m", .served_name = "q", .kind = "llm", .host = "127.0.0.1",
			       .port = 1, .api_key = "aimaas-key", .tp = 1, .cuda_visible = "0", .env = uenv };
	struct am_argv argv = { 0 }, env = { 0 };
	struct am_err err;
	am_err_clear(&err);
	CHECK_INT(e->build(&l, &argv, &env, &err), 0);
	am_argv_add(&env, "VLLM_API_KEY=late");
	setenv("AIMAAS_METRICS_TOKEN", "metrics-secret", 1);
	setenv("AIMAAS_ADMIN_PASSWORD", "admin-secret", 1);
	char **envp = am_rt_local_env(env.v); /* the local runtime adds aimaas's own, less its secrets */
	unsetenv("AIMAAS_METRICS_TOKEN");
	unsetenv("AIMAAS_ADMIN_PASSWORD");
	int keys = 0, app = 0;
	for (char **p = envp; *p; p++) {
		keys += !strncmp(*p, "VLLM_API_KEY=", 13);
		CHECK(!strstr(*p, "metrics-secret") && !strstr(*p, "admin-secret"));
		app += !strcmp(*p, "APP=1");
		if (!strncmp(*p, "VLLM_API_KEY=", 13))
			CHECK_STR(*p, "VLLM_API_KEY=aimaas-key");
	}
	CHECK_INT(keys, 1);
	CHECK_INT(app, 1);
	am_rt_local_env_free(envp);
	am_argv_free(&argv);
	am_argv_free(&env);
	json_decref(uenv);
}

/* The SGLang key: a private config file, never argv. */
static void sglang_key(void)
{
	const struct am_engine_def *e = am_engine_find("sglang");
	char *body = NULL;
	struct am_launch l = { .binary = "python3", .model_path = "/m", .served_name = "q", .kind = "llm", .host = "127.0.0.1",
			       .port = 1, .api_key = "ame_secret", .tp = 1, .cuda_visible = "0", .secret_path = "/d/run/i.yaml",
			       .secret_body = &body };
	struct am_argv argv = { 0 }, env = { 0 };
	struct am_err err;
	am_err_clear(&err);
	CHECK_INT(e->build(&l, &argv, &env, &err), 0);
	int found = 0;
	for (int i = 0; i < argv.n; i++) {
		CHECK(!strstr(argv.v[i], "ame_secret"));
		CHECK(strcmp(argv.v[i], "--api-key") != 0);
		found |= !strcmp(argv.v[i], "--config") && i + 1 < argv.n && !strcmp(argv.v[i + 1], "/d/run/i.yaml");
	}
	CHECK(found);
	CHECK(body && strstr(body, "\"api-key\": \"ame_secret\""));
	free(body);
	am_argv_free(&argv);
	am_argv_free(&env);
}

static const char *cause(const char *log)
{
	static char out[1024];
	char *copy = strdup(log), *lines[400];
	int n = 0;
	for (char *p = strtok(copy, "\n"); p && n < 400; p = strtok(NULL, "\n"))
		lines[n++] = p;
	const char *r = am_engine_root_cause(lines, n);
	snprintf(out, sizeof out, "%s", r ? r : "(none)");
	free(copy);
	return out;
}

#define EC "(EngineCore_0 pid=4242) "
#define ECE EC "ERROR 05-14 10:02:40 [core.py:515] "

static void root_cause(void)
{
	/* vLLM 0.9: the engine core dies at start; the API server's wrapper is printed last */
	const char *kv =
		"INFO 05-14 10:02:11 [api_server.py:1090] vLLM API server version 0.9.1\n"
		EC "INFO 05-14 10:02:38 [gpu_model_runner.py:1595] Model loading took 14.99 GiB and 8.1 seconds\n"
		ECE "EngineCore failed to start.\n"
		ECE "Traceback (most recent call last):\n"
		ECE "  File \"/usr/lib/python3/dist-packages/vllm/v1/engine/core.py\", line 506, in run_engine_core\n"
		ECE "    engine_core = EngineCoreProc(*args, **kwargs)\n"
		ECE "                  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
		ECE "  File \"/usr/lib/python3/dist-packages/vllm/v1/core/kv_cache_utils.py\", line 543, in check_enough_kv_cache_memory\n"
		ECE "    raise ValueError(\n"
		ECE "ValueError: To serve at least one request with the models's max seq len (131072), (16.00 GiB KV cache is needed,"
		" which is larger than the available KV cache memory (9.38 GiB). Try increasing `gpu_memory_utilization` or decreasing"
		" `max_model_len` when initializing the engine.\n"
		EC "Process EngineCore_0:\n"
		EC "Traceback (most recent call last):\n"
		EC "  File \"/usr/lib/python3.12/multiprocessing/process.py\", line 314, in _bootstrap\n"
		EC "    self.run()\n"
		EC "  File \"/usr/lib/python3/dist-packages/vllm/v1/engine/core.py\", line 519, in run_engine_core\n"
		EC "    raise e\n"
		EC "ValueError: To serve at least one request with the models's max seq len (131072), (16.00 GiB KV cache is needed\n"
		"Traceback (most recent call last):\n"
		"  File \"/usr/local/bin/vllm\", line 10, in <module>\n"
		"    sys.exit(main())\n"
		"  File \"/usr/lib/python3/dist-packages/vllm/v1/engine/core_client.py\", line 430, in __init__\n"
		"    self._wait_for_engine_startup()\n"
		"RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {'EngineCore_0': 1}\n";
	CHECK(!strncmp(cause(kv), "ValueError: To serve at least one request with the models's max seq len (131072)", 79));
	/* a crash while serving: EngineDeadError last, the CUDA OOM above it */
	const char *dead =
		ECE "EngineCore encountered a fatal error.\n"
		ECE "Traceback (most recent call last):\n"
		ECE "  File \"/usr/lib/python3/dist-packages/vllm/v1/engine/core.py\", line 701, in run_engine_core\n"
		ECE "    engine_core.run_busy_loop()\n"
		ECE "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.64 GiB"
		" of which 1.12 GiB is free.\n"
		"ERROR 05-14 11:00:01 [async_llm.py:420] AsyncLLM output_handler failed.\n"
		"ERROR 05-14 11:00:01 [async_llm.py:420] Traceback (most recent call last):\n"
		"ERROR 05-14 11:00:01 [async_llm.py:420]   File \"/usr/lib/python3/dist-packages/vllm/v1/engine/async_llm.py\", line 380, in output_handler\n"
		"ERROR 05-14 11:00:01 [async_llm.py:420]     outputs = await engine_core.get_output_async()\n"
		"ERROR 05-14 11:00:01 [async_llm.py:420] vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue."
		" See stack trace (above) for the root cause.\n"
		"INFO:     Shutting down\n";
	CHECK(!strncmp(cause(dead), "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", 70));
	/* a chain: the original cause, not the one raised while handling it */
	const char *chain =
		"Traceback (most recent call last):\n"
		"  File \"/usr/lib/python3/dist-packages/transformers/configuration_utils.py\", line 680, in _get_config_dict\n"
		"    resolved = cached_file(path, \"config.json\")\n"
		"FileNotFoundError: [Errno 2] No such file or directory: '/models/q/config.json'\n"
		"\n"
		"The above exception was the direct cause of the following exception:\n"
		"\n"
		"Traceback (most recent call last):\n"
		"  File \"/usr/lib/python3/dist-packages/vllm/engine/arg_utils.py\", line 1000, in create_model_config\n"
		"OSError: Can't load the configuration of '/models/q'.\n";
	CHECK_STR(cause(chain), "FileNotFoundError: [Errno 2] No such file or directory: '/models/q/config.json'");
	/* LLaMA-Factory under torchrun: rank 0's error under two wrappers */
	const char *train =
		"[INFO|trainer.py:2414] 2025-05-14 12:00:00,000 >> ***** Running training *****\n"
		"[rank0]: Traceback (most recent call last):\n"
		"[rank0]:   File \"/app/src/llamafactory/launcher.py\", line 23, in <module>\n"
		"[rank0]:     launch()\n"
		"[rank0]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.50 GiB.\n"
		"E0514 12:00:05.000000 77 torch/distributed/elastic/multiprocessing/api.py:869] failed (exitcode: 1)\n"
		"Traceback (most recent call last):\n"
		"  File \"/usr/local/bin/torchrun\", line 8, in <module>\n"
		"    sys.exit(main())\n"
		"torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
		"============================================================\n"
		"Traceback (most recent call last):\n"
		"  File \"/app/src/llamafactory/cli.py\", line 80, in main\n"
		"    process = subprocess.run(cmd)\n"
		"subprocess.CalledProcessError: Command '['torchrun', '--nproc_per_node', '2']' returned non-zero exit status 1.\n";
	CHECK_STR(cause(train), "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.50 GiB.");
	CHECK_STR(cause("INFO: starting\nERROR: something\n"), "(none)");
	/* a cause no pattern knows, under EngineDeadError: what the reason shows */
	char *keyerr[] = { ECE "Traceback (most recent call last):", ECE "  File \"/vllm/model_executor/models/qwen2.py\", line 480, in load_weights",
			   ECE "    param = params_dict[name]", ECE "KeyError: 'model.layers.0.mlp.gate_up_proj.qweight'",
			   "ERROR 05-14 11:00:01 [async_llm.py:420] Traceback (most recent call last):",
			   "ERROR 05-14 11:00:01 [async_llm.py:420]   File \"/vllm/v1/engine/async_llm.py\", line 380, in output_handler",
			   "ERROR 05-14 11:00:01 [async_llm.py:420] vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an"
			   " issue. See stack trace (above) for the root cause." };
	CHECK_STR(am_engine_fatal_line(am_engine_find("vllm"), keyerr, 7), "KeyError: 'model.layers.0.mlp.gate_up_proj.qweight'");
	/* no traceback: the engine's known fatal lines */
	char *plain[] = { "INFO loading", "RuntimeError: Engine core initialization failed. See root cause above.",
			  "No available memory for the cache blocks. Try increasing `gpu_memory_utilization`" };
	CHECK(!strncmp(am_engine_fatal_line(am_engine_find("vllm"), plain, 3), "No available memory", 19));
}


/* engine_args against an engine's owned flags: the message from err. */
static int eargs(const char *engine, const char *json, const char *allow, struct am_err *err)
{
	json_t *a = json_loads(json, 0, NULL), *al = allow ? json_loads(allow, 0, NULL) : NULL;
	am_err_clear(err);
	int rc = am_engine_check_args(am_engine_find(engine), a, al, err);
	json_decref(a);
	json_decref(al);
	return rc;
}

/* Each engine refuses the flags it is given (planner's included) in every
 * spelling its parser reads, and says where to set them instead. */
static void owned_flags(void)
{
	struct am_err err;
	/* the case: appended last, these would win in argparse */
	CHECK_INT(eargs("vllm", "[\"--seed\",\"1\",\"--enable-prefix-caching\",\"--max-model-len\",\"131072\"]", NULL, &err), -1);
	CHECK_STR(err.field, "engine_args[3]");
	CHECK(strstr(err.msg, "vllm's --max-model-len") && strstr(err.msg, "max_model_len is a deployment field"));
	CHECK_INT(eargs("vllm", "[\"--gpu-memory-utilization\",\"0.99\"]", NULL, &err), -1);
	CHECK(strstr(err.msg, "gpu_memory_utilization is a deployment field") != NULL);
	static const char *const vllm_bad[] = {
		"[\"--max_model_len=131072\"]", "[\"--gpu_memory_utilization\",\"0.99\"]", "[\"--api_key=x\"]",
		"[\"--served_model_name=x\"]", "[\"--tensor_parallel_size=2\"]", "[\"--max-model\",\"4096\"]",
		"[\"--gpu-mem=0.99\"]", "[\"-t\",\"2\"]", "[\"-tp=2\"]", "[\"-pp\",\"2\"]", "[\"--data-parallel-size\",\"2\"]",
		"[\"--kv-cache-memory\",\"80G\"]", "[\"--max-num-seqs\",\"512\"]", "[\"--dtype\",\"float32\"]",
		"[\"--runner\",\"generate\"]", "[\"--no-enable-lora\"]", "[\"--max-lora-rank\",\"256\"]",
		"[\"--no-trust-remote-code\"]", "[\"--model=/etc\"]", NULL,
	};
	for (const char *const *b = vllm_bad; *b; b++) {
		if (eargs("vllm", *b, NULL, &err) != -1)
			fprintf(stderr, "    (vllm accepted %s)\n", *b);
		CHECK_STR(err.field, "engine_args[0]");
		if (eargs("aimaas-sim", *b, NULL, &err) != -1)
			fprintf(stderr, "    (aimaas-sim accepted %s)\n", *b);
		CHECK_STR(err.field, "engine_args[0]");
	}
	/* what a user tunes, and the simulator's own flags */
	CHECK_INT(eargs("vllm", "[\"--max-num-batched-tokens\",\"8192\",\"--no-enable-prefix-caching\",\"--swap-space\",\"4\","
				"\"--enable-chunked-prefill\",\"--kv-cache-dtype=fp8\",\"--max-cpu-loras\",\"2\"]", NULL, &err), 0);
	CHECK_INT(eargs("aimaas-sim", "[\"--sim-itl-ms\",\"1\",\"--sim-startup-error\",\"ValueError: x\"]", NULL, &err), 0);
	/* an admin cannot allow one */
	CHECK_INT(eargs("vllm", "[\"--max-model-len\",\"1\"]", "[\"--max-model-len\"]", &err), -1);

	/* SGLang: argparse's prefixes and aliases */
	static const char *const sglang_bad[] = {
		"[\"--context-length\",\"131072\"]", "[\"--mem-fraction-static\",\"0.95\"]", "[\"--tp\",\"2\"]",
		"[\"--tensor-parallel-size\",\"2\"]", "[\"--model\",\"x\"]", "[\"--max-running-requests\",\"5\"]",
		"[\"--dp-size\",\"2\"]", "[\"--context\",\"9\"]", "[\"--is-embedding\"]", "[\"--served-model-name=x\"]", NULL,
	};
	for (const char *const *b = sglang_bad; *b; b++) {
		if (eargs("sglang", *b, NULL, &err) != -1)
			fprintf(stderr, "    (sglang accepted %s)\n", *b);
		CHECK_STR(err.field, "engine_args[0]");
	}
	CHECK_INT(eargs("sglang", "[\"--context-length\",\"131072\"]", NULL, &err), -1);
	CHECK(strstr(err.msg, "sglang's --context-length") && strstr(err.msg, "max_model_len is a deployment field"));
	CHECK_INT(eargs("sglang", "[\"--chunked-prefill-size\",\"4096\",\"--enable-metrics-for-all-schedulers\","
				  "\"--schedule-policy\",\"lpm\"]", NULL, &err), 0);

	/* llama.cpp: every spelling, exact; -t is its threads */
	static const char *const llama_bad[] = {
		"[\"-c\",\"131072\"]", "[\"--ctx-size\",\"131072\"]", "[\"--ctx_size\",\"1\"]", "[\"-ngl\",\"0\"]",
		"[\"--gpu-layers\",\"0\"]", "[\"--n-gpu-layers\",\"0\"]", "[\"-np\",\"64\"]", "[\"--parallel\",\"64\"]",
		"[\"-a\",\"x\"]", "[\"--alias\",\"x\"]", "[\"-m\",\"x.gguf\"]", "[\"--embeddings\"]", "[\"--rerank\"]",
		"[\"--metrics\"]", "[\"--api-key-file\",\"k\"]", "[\"--host\",\"0.0.0.0\"]", NULL,
	};
	for (const char *const *b = llama_bad; *b; b++) {
		if (eargs("llama.cpp", *b, NULL, &err) != -1)
			fprintf(stderr, "    (llama.cpp accepted %s)\n", *b);
		CHECK_STR(err.field, "engine_args[0]");
	}
	CHECK_INT(eargs("llama.cpp", "[\"-t\",\"8\",\"-b\",\"512\",\"--cont-batching\",\"-fa\",\"on\",\"-ctk\",\"q8_0\"]", NULL,
			&err), 0);
	CHECK_INT(eargs("llama.cpp", "[\"--threads\",\"8\",\"-c\",\"4096\"]", NULL, &err), -1);
	CHECK_STR(err.field, "engine_args[2]");
	CHECK(strstr(err.msg, "llama.cpp's -c/--ctx-size") && strstr(err.msg, "max_model_len is a deployment field"));

	/* custom: the wiring every engine gets */
	CHECK_INT(eargs("custom", "[\"--api_key\",\"k\"]", NULL, &err), -1);
	CHECK(strstr(err.msg, "an engine's --api-key") != NULL);
	CHECK_INT(eargs("custom", "[\"--workers\",\"2\"]", NULL, &err), 0);
}

/* A launch with everything set (TP 2 on GPUs 2 and 3, a length, sequences,
 * a share, a dtype, remote code, two LoRA modules, the user's args). */
static struct am_launch full_launch(const char *binary, const char *kind, json_t *loras, json_t *extra)
{
	struct am_launch l = { .binary = binary, .model_path = "/models/q", .served_name = "qwen", .kind = kind,
			       .host = "127.0.0.1", .port = 41001, .api_key = "ame_k", .tp = 2, .cuda_visible = "2,3",
			       .max_model_len = 8192, .max_num_seqs = 64, .mem_fraction = 0.9, .dtype = "half",
			       .trust_remote_code = 1, .lora_modules = loras, .max_lora_rank = 64, .extra_args = extra,
			       .secret_path = "/d/run/instance-1.yaml" };
	return l;
}

static char *joined(const struct am_argv *a)
{
	size_t n = 1, k = 0;
	for (int i = 0; i < a->n; i++)
		n += strlen(a->v[i]) + 1;
	char *s = calloc(1, n);
	for (int i = 0; i < a->n; i++) {
		size_t l = strlen(a->v[i]);
		memcpy(s + k, a->v[i], l);
		k += l;
		if (i + 1 < a->n)
			s[k++] = ' ';
	}
	s[k] = '\0';
	return s;
}

/* Builds e's argv and env for l: "argv" and "env", space-joined. */
static void build(const char *engine, const struct am_launch *l, char **argv, char **env)
{
	struct am_argv a = { 0 }, e = { 0 };
	struct am_err err;
	am_err_clear(&err);
	CHECK_INT(am_engine_find(engine)->build(l, &a, &e, &err), 0);
	*argv = joined(&a);
	*env = joined(&e);
	am_argv_free(&a);
	am_argv_free(&e);
}

/* Every flag an engine's builder sets is one its owned table refuses in
 * engine_args (from index `from`: SGLang's "python3 -m module" is Python's). */
static void covered(const char *engine, const struct am_launch *l, int from)
{
	struct am_argv a = { 0 }, e = { 0 };
	struct am_err err;
	am_err_clear(&err);
	CHECK_INT(am_engine_find(engine)->build(l, &a, &e, &err), 0);
	for (int i = from; i < a.n; i++) {
		if (a.v[i][0] != '-' || json_array_size(l->extra_args))
			continue;
		json_t *one = json_pack("[s]", a.v[i]);
		if (am_engine_check_args(am_engine_find(engine), one, NULL, &err) != -1)
			fprintf(stderr, "    (%s's own %s is not owned)\n", engine, a.v[i]);
		CHECK(strstr(err.msg, "which aimaas sets") != NULL);
		json_decref(one);
	}
	am_argv_free(&a);
	am_argv_free(&e);
}

static void argv_builders(void)
{
	json_t *loras = json_pack("[{s:s,s:s},{s:s,s:s}]", "name", "sql", "path", "/a/sql", "name", "faq", "path", "/a/faq");
	json_t *extra = json_pack("[s,s]", "--enable-prefix-caching", "--seed=1");
	char *argv, *env;

	struct am_launch l = full_launch("vllm", "llm", loras, extra);
	build("vllm", &l, &argv, &env);
	CHECK_STR(argv, "vllm serve /models/q --host 127.0.0.1 --port 41001 --served-model-name qwen --tensor-parallel-size 2"
			" --gpu-memory-utilization 0.90 --max-model-len 8192 --max-num-seqs 64 --dtype half --trust-remote-code"
			" --enable-lora --max-loras 2 --max-lora-rank 64 --lora-modules sql=/a/sql faq=/a/faq"
			" --enable-prefix-caching --seed=1");
	CHECK_STR(env, "CUDA_DEVICE_ORDER=PCI_BUS_ID CUDA_VISIBLE_DEVICES=2,3 VLLM_API_KEY=ame_k"
		       " VLLM_ALLOW_RUNTIME_LORA_UPDATING=True");
	free(argv);
	free(env);
	/* the engine's defaults: nothing optional; an embedding model pools */
	struct am_launch bare = { .binary = "aimaas-sim", .model_path = "/m", .served_name = "bge", .kind = "embedding",
				  .host = "127.0.0.1", .port = 41002, .api_key = "k", .tp = 1, .cuda_visible = "0" };
	build("aimaas-sim", &bare, &argv, &env);
	CHECK_STR(argv, "aimaas-sim serve /m --host 127.0.0.1 --port 41002 --served-model-name bge --tensor-parallel-size 1"
			" --runner pooling");
	free(argv);
	free(env);

	l = full_launch("python3", "embedding", NULL, extra);
	build("sglang", &l, &argv, &env);
	CHECK_STR(argv, "python3 -m sglang.launch_server --model-path /models/q --host 127.0.0.1 --port 41001"
			" --served-model-name qwen --config /d/run/instance-1.yaml --tp-size 2 --mem-fraction-static 0.90"
			" --context-length 8192 --max-running-requests 64 --dtype half --is-embedding --trust-remote-code"
			" --enable-metrics --enable-prefix-caching --seed=1");
	CHECK_STR(env, "CUDA_DEVICE_ORDER=PCI_BUS_ID CUDA_VISIBLE_DEVICES=2,3");
	free(argv);
	free(env);

	l = full_launch("llama-server", "rerank", NULL, NULL);
	l.model_path = "/models/q/q4.gguf";
	build("llama.cpp", &l, &argv, &env);
	CHECK_STR(argv, "llama-server -m /models/q/q4.gguf --host 127.0.0.1 --port 41001 -a qwen -ngl 999 -c 8192 -np 64"
			" --reranking --metrics");
	CHECK_STR(env, "CUDA_DEVICE_ORDER=PCI_BUS_ID CUDA_VISIBLE_DEVICES=2,3 LLAMA_ARG_API_KEY=ame_k");
	free(argv);
	free(env);
	/* no GPU: no layer offloaded */
	l.cuda_visible = "";
	l.kind = "embedding";
	build("llama.cpp", &l, &argv, &env);
	CHECK(strstr(argv, " -ngl 0 ") && strstr(argv, " --embedding "));
	free(argv);
	free(env);

	/* custom: the template's placeholders; an unknown one stays */
	l = full_launch("", "llm", NULL, extra);
	json_t *tmpl = json_pack("[s,s,s,s,s,s,s,s]", "/opt/srv", "--weights={model_path}", "--listen={host}:{port}",
				 "--gpus={gpus}", "--tp={tp}", "--len={max_model_len}", "--mem={mem_fraction}", "{other}");
	l.custom_argv = tmpl;
	build("custom", &l, &argv, &env);
	CHECK_STR(argv, "/opt/srv --weights=/models/q --listen=127.0.0.1:41001 --gpus=2,3 --tp=2 --len=8192 --mem=0.90"
			" {other} --enable-prefix-caching --seed=1");
	free(argv);
	free(env);
	json_decref(tmpl);
	struct am_argv a = { 0 }, e = { 0 };
	struct am_err err;
	am_err_clear(&err);
	l.custom_argv = NULL;
	CHECK_INT(am_engine_find("custom")->build(&l, &a, &e, &err), -1);
	CHECK_STR(err.field, "engine");
	am_argv_free(&a);
	am_argv_free(&e);

	/* each builder's flags are in its owned table */
	l = full_launch("vllm", "llm", loras, NULL);
	covered("vllm", &l, 3);
	covered("aimaas-sim", &l, 3);
	l.kind = "embedding";
	covered("vllm", &l, 3);
	covered("sglang", &l, 3);
	covered("llama.cpp", &l, 1);
	l.kind = "rerank";
	covered("llama.cpp", &l, 1);
	json_decref(loras);
	json_decref(extra);
}

/* Recorded /metrics text of each engine, read by its own names. */
static void metric_maps(void)
{
	struct am_engine_stats st;
	/* vLLM with two data-parallel engines: summed; KV use the larger */
	static const char vllm[] =
		"# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
		"# TYPE vllm:num_requests_running gauge\n"
		"vllm:num_requests_running{engine=\"0\",model_name=\"q\"} 3.0\n"
		"vllm:num_requests_running{engine=\"1\",model_name=\"q\"} 2.0\n"
		"vllm:num_requests_waiting{engine=\"0\",model_name=\"q\"} 1.0\n"
		"vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"q\"} 0.25\n"
		"vllm:kv_cache_usage_perc{engine=\"1\",model_name=\"q\"} 0.5\n"
		"vllm:prompt_tokens_total{engine=\"0\",model_name=\"q\"} 1200.0\n"
		"vllm:prompt_tokens_created{engine=\"0\",model_name=\"q\"} 1.7e9\n"
		"vllm:generation_tokens_total{engine=\"0\",model_name=\"q\"} 340.0\n";
	am_engine_read_metrics(am_engine_find("vllm"), vllm, strlen(vllm), &st);
	CHECK(st.running == 5 && st.waiting == 1 && st.kv == 0.5 && st.prompt_tokens == 1200 && st.gen_tokens == 340);
	/* SGLang (python/sglang/srt/metrics/collector.py's names) */
	static const char sglang[] =
		"# HELP sglang:num_running_reqs The number of running requests.\n"
		"# TYPE sglang:num_running_reqs gauge\n"
		"sglang:num_running_reqs{model_name=\"qwen\",engine_type=\"unified\",tp_rank=\"0\",pp_rank=\"0\"} 4.0\n"
		"sglang:num_running_reqs_offline_batch{model_name=\"qwen\"} 9.0\n"
		"sglang:num_queue_reqs{model_name=\"qwen\"} 2.0\n"
		"sglang:token_usage{model_name=\"qwen\"} 0.37\n"
		"sglang:gen_throughput{model_name=\"qwen\"} 812.5\n"
		"# TYPE sglang:prompt_tokens_total counter\n"
		"sglang:prompt_tokens_total{model_name=\"qwen\"} 5000.0\n"
		"sglang:prompt_tokens_created{model_name=\"qwen\"} 1.7e9\n"
		"sglang:generation_tokens_total{model_name=\"qwen\"} 777.0\n";
	am_engine_read_metrics(am_engine_find("sglang"), sglang, strlen(sglang), &st);
	CHECK(st.running == 4 && st.waiting == 2 && st.kv == 0.37 && st.prompt_tokens == 5000 && st.gen_tokens == 777);
	/* llama-server (tools/server: "llamacpp:" + name, no labels) */
	static const char llama[] =
		"# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.\n"
		"# TYPE llamacpp:prompt_tokens_total counter\n"
		"llamacpp:prompt_tokens_total 96\n"
		"llamacpp:prompt_seconds_total 0.12\n"
		"llamacpp:tokens_predicted_total 48\n"
		"llamacpp:tokens_predicted_seconds_total 0.9\n"
		"llamacpp:prompt_tokens_seconds 800\n"
		"llamacpp:requests_processing 1\n"
		"llamacpp:requests_deferred 3\n"
		"llamacpp:kv_cache_usage_ratio 0.125";
	am_engine_read_metrics(am_engine_find("llama.cpp"), llama, strlen(llama), &st);
	CHECK(st.running == 1 && st.waiting == 3 && st.kv == 0.125 && st.prompt_tokens == 96 && st.gen_tokens == 48);
	/* one engine's text read by another's names: nothing */
	am_engine_read_metrics(am_engine_find("vllm"), sglang, strlen(sglang), &st);
	CHECK(st.running == 0 && st.gen_tokens == 0);
	/* bounded by len: a series past it is not read */
	am_engine_read_metrics(am_engine_find("llama.cpp"), llama, strlen(llama) - 35, &st);
	CHECK(st.kv == 0 && st.waiting == 3);
	am_engine_read_metrics(NULL, vllm, strlen(vllm), &st);
	CHECK(st.running == 0);
}

void suite_engine(void)
{
	RUN(env_rules);
	RUN(arg_rules);
	RUN(masking);
	RUN(env_once);
	RUN(sglang_key);
	RUN(root_cause);
	RUN(owned_flags);
	RUN(argv_builders);
	RUN(metric_maps);
}
