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

void suite_engine(void)
{
	RUN(env_rules);
	RUN(arg_rules);
	RUN(masking);
	RUN(env_once);
	RUN(sglang_key);
	RUN(root_cause);
}
