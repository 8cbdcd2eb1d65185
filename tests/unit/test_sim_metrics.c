/* aimaas-sim playing each engine (sim_opts' --sim-flavor, sim_metrics):
 * its command line as aimaas builds it is read, and what its /metrics
 * writes is what aimaas's map for that engine reads back (am_engine). */
#include <stdlib.h>
#include <unistd.h>

#include "am_test.h"
#include "engine/am_engine.h"

#include "../../sim/sim_metrics.c"
#include "../../sim/sim_opts.c"

static void command_lines(void)
{
	struct sim_opts o;
	char *sg[] = { "--sim-flavor", "sglang", "-m", "sglang.launch_server", "--model-path", "/m/qwen", "--host",
		       "127.0.0.1", "--port", "8011", "--served-model-name", "qwen", "--tp-size", "2",
		       "--mem-fraction-static", "0.80", "--context-length", "4096", "--max-running-requests", "16",
		       "--dtype", "half", "--is-embedding", "--enable-metrics" };
	CHECK_INT(sim_opts_parse((int)(sizeof sg / sizeof sg[0]), sg, &o), 0);
	CHECK_INT(o.flavor, SIM_FLAVOR_SGLANG);
	CHECK_STR(o.model, "/m/qwen");
	CHECK_STR(o.names[0], "qwen");
	CHECK_INT(o.port, 8011);
	CHECK_INT(o.tp, 2);
	CHECK_INT(o.max_model_len, 4096);
	CHECK_INT(o.max_num_seqs, 16);
	CHECK(o.gpu_memory_utilization > 0.79 && o.gpu_memory_utilization < 0.81);
	CHECK_STR(o.runner, "pooling");
	char *ll[] = { "--sim-flavor=llama.cpp", "-m", "/m/q.gguf", "--host", "127.0.0.1", "--port", "8012", "-a", "tiny",
		       "-ngl", "999", "-c", "2048", "-np", "4", "--reranking", "--metrics" };
	CHECK_INT(sim_opts_parse((int)(sizeof ll / sizeof ll[0]), ll, &o), 0);
	CHECK_INT(o.flavor, SIM_FLAVOR_LLAMACPP);
	CHECK_STR(o.model, "/m/q.gguf");
	CHECK_STR(o.names[0], "tiny");
	CHECK_INT(o.max_model_len, 2048);
	CHECK_INT(o.max_num_seqs, 4);
	CHECK_INT(o.kind, SIM_RERANK);
	/* SGLang's key from its --config file, as aimaas writes it */
	char cfg[] = "/tmp/aimaas-unit-sglang-XXXXXX";
	int fd = mkstemp(cfg);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK(write(fd, "{\"api-key\": \"k-123\"}", 20) == 20);
		close(fd);
	}
	char *key[] = { "--sim-flavor", "sglang", "-m", "sglang.launch_server", "--model-path", "/m", "--config", cfg };
	CHECK_INT(sim_opts_parse(8, key, &o), 0);
	CHECK_STR(o.api_key, "k-123");
	unlink(cfg);
	/* refused as the engines refuse (exit status 2); stderr is the usage */
	FILE *keep = stderr;
	stderr = fopen("/dev/null", "w");
	char *nom[] = { "--sim-flavor", "sglang", "--model-path", "/m" };
	CHECK_INT(sim_opts_parse(4, nom, &o), 2);
	char *bad[] = { "--sim-flavor", "llama.cpp", "-m", "/m", "--bogus" };
	CHECK_INT(sim_opts_parse(5, bad, &o), 2);
	char *which[] = { "--sim-flavor", "tgi", "/m" };
	CHECK_INT(sim_opts_parse(3, which, &o), 2);
	char *late[] = { "/m", "--sim-flavor", "sglang" };
	CHECK_INT(sim_opts_parse(3, late, &o), 2);
	fclose(stderr);
	stderr = keep;
}

/* One flavor's /metrics through its engine's map. */
static struct am_engine_stats read_back(enum sim_flavor f, const char *engine, const char *must_have)
{
	static const double b[] = { 0.1, 1 };
	struct sim s;
	memset(&s, 0, sizeof s);
	s.o.flavor = f;
	am_strlcpy(s.name_json, "qwen", sizeof s.name_json);
	s.nrunning = 3;
	s.nwaiting = 2;
	s.prompt_tokens = 120;
	s.gen_tokens = 45;
	s.kv_capacity = 1000;
	s.ttft = s.itl = s.e2e = s.queue = (struct sim_hist){ .bounds = b, .nb = 2 };
	struct am_buf out;
	am_buf_init(&out, 1 << 20);
	sim_metrics_render(&s, 0.25, &out);
	CHECK(strstr(am_buf_str(&out), must_have) != NULL);
	struct am_engine_stats st;
	am_engine_read_metrics(am_engine_find(engine), out.data, out.len, &st);
	am_buf_free(&out);
	return st;
}

static void metrics_by_flavor(void)
{
	struct am_engine_stats v = read_back(SIM_FLAVOR_VLLM, "vllm", "vllm:num_requests_running{");
	CHECK(v.running == 3 && v.waiting == 2 && v.prompt_tokens == 120 && v.gen_tokens == 45 && v.kv == 0.25);
	struct am_engine_stats g = read_back(SIM_FLAVOR_SGLANG, "sglang", "sglang:num_running_reqs{model_name=\"qwen\"}");
	CHECK(g.running == 3 && g.waiting == 2 && g.prompt_tokens == 120 && g.gen_tokens == 45 && g.kv == 0.25);
	struct am_engine_stats l = read_back(SIM_FLAVOR_LLAMACPP, "llama.cpp", "\nllamacpp:requests_processing 3\n");
	CHECK(l.running == 3 && l.waiting == 2 && l.prompt_tokens == 120 && l.gen_tokens == 45);
	CHECK(l.kv == 0); /* a current llama-server exports no KV-cache gauge */
	/* read by another engine's names, nothing is found */
	struct am_engine_stats x = read_back(SIM_FLAVOR_SGLANG, "vllm", "sglang:");
	CHECK(x.running == 0 && x.gen_tokens == 0);
}

void suite_sim_metrics(void)
{
	RUN(command_lines);
	RUN(metrics_by_flavor);
}
