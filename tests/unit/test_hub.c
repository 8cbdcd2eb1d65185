/* hub_files: the hubs' listings parsed, paths checked, the files a
 * deployment needs chosen. */
#include <jansson.h>
#include <string.h>

#include "am_test.h"
#include "base/am_buf.h"
#include "hub/hub_catalog.h"
#include "hub/hub_files.h"
#include "hub/hub_verdict.h"
#include "model/am_inspect.h"

static int has(const struct hub_files *f, const char *p)
{
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->v[i].path, p))
			return 1;
	return 0;
}

static void paths(void)
{
	CHECK(hub_path_ok("config.json"));
	CHECK(hub_path_ok("original/params.json"));
	CHECK(!hub_path_ok(""));
	CHECK(!hub_path_ok("/etc/passwd"));
	CHECK(!hub_path_ok("../x"));
	CHECK(!hub_path_ok("a/../../x"));
	CHECK(!hub_path_ok("a//b"));
	CHECK(!hub_path_ok("a/./b"));
	CHECK(!hub_path_ok("a/"));
	CHECK(!hub_path_ok("a\\b"));
	CHECK(!hub_path_ok("a\nb"));
}

static void parse_hf(void)
{
	const char *page = "[{\"type\":\"directory\",\"oid\":\"x\",\"size\":0,\"path\":\"original\"},"
			   "{\"type\":\"file\",\"oid\":\"abc\",\"size\":12,\"path\":\"config.json\"},"
			   "{\"type\":\"file\",\"oid\":\"def\",\"size\":134,\"path\":\"model.safetensors\",\"lfs\":{\"oid\":"
			   "\"ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789\",\"size\":5000,\"pointerSize\":134}}]";
	struct hub_files f = { 0 };
	char err[256];
	CHECK(hub_files_parse_hf(page, strlen(page), &f, err, sizeof err) == 0);
	CHECK_INT(f.n, 2);
	CHECK_STR(f.v[0].path, "config.json");
	CHECK_STR(f.v[0].sha256, ""); /* a git blob id is not a sha256 */
	CHECK_INT(f.v[1].size, 5000);  /* the LFS size, not the pointer's */
	CHECK_STR(f.v[1].sha256, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
	const char *evil = "[{\"type\":\"file\",\"oid\":\"a\",\"size\":1,\"path\":\"../../.bashrc\"}]";
	CHECK(hub_files_parse_hf(evil, strlen(evil), &f, err, sizeof err) != 0);
	CHECK(hub_files_parse_hf("{}", 2, &f, err, sizeof err) != 0);
	const char *neg = "[{\"type\":\"file\",\"size\":-5,\"path\":\"x\"}]";
	CHECK(hub_files_parse_hf(neg, strlen(neg), &f, err, sizeof err) != 0);
	hub_files_free(&f);
}

static void parse_ms(void)
{
	const char *body = "{\"Code\":200,\"Data\":{\"Files\":[{\"Name\":\"config.json\",\"Path\":\"config.json\",\"Type\":\"blob\","
			   "\"Size\":10,\"Sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\"},"
			   "{\"Name\":\"sub\",\"Path\":\"sub\",\"Type\":\"tree\",\"Size\":0}]},\"Success\":true}";
	struct hub_files f = { 0 };
	char err[256];
	CHECK(hub_files_parse_ms(body, strlen(body), &f, err, sizeof err) == 0);
	CHECK_INT(f.n, 1);
	CHECK_INT(f.v[0].size, 10);
	CHECK(hub_files_parse_ms("{\"Code\":10010205001,\"Data\":null}", 33, &f, err, sizeof err) != 0);
	hub_files_free(&f);
}

static void add(struct hub_files *f, const char *p)
{
	char js[600];
	snprintf(js, sizeof js, "[{\"type\":\"file\",\"size\":1,\"path\":\"%s\"}]", p);
	char err[128];
	hub_files_parse_hf(js, strlen(js), f, err, sizeof err);
}

static void select_files(void)
{
	char err[512];
	/* safetensors present: no .bin, no original/, configs and tokenizer kept */
	struct hub_files f = { 0 };
	const char *all[] = { "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "merges.txt",
			      "vocab.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
			      "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
			      "original/consolidated.00.pth", "original/params.json", ".gitattributes", "LICENSE", NULL };
	for (const char **p = all; *p; p++)
		add(&f, *p);
	CHECK(hub_files_select(&f, NULL, NULL, err, sizeof err) > 0);
	CHECK(has(&f, "model-00002-of-00002.safetensors") && has(&f, "model.safetensors.index.json"));
	CHECK(has(&f, "tokenizer.json") && has(&f, "merges.txt") && has(&f, "generation_config.json"));
	CHECK(!has(&f, "pytorch_model.bin") && !has(&f, "original/consolidated.00.pth") && !has(&f, "original/params.json"));
	CHECK(!has(&f, "pytorch_model.bin.index.json")); /* the .bin's index goes with it */
	hub_files_free(&f);
	/* GGUF: the best usual quantisation, or the asked one; a missing one named with what exists */
	const char *gg[] = { "README.md", "Qwen2.5-7B-Instruct-Q2_K.gguf", "Qwen2.5-7B-Instruct-Q4_K_M.gguf",
			     "Qwen2.5-7B-Instruct-Q8_0.gguf", "mmproj-f16.gguf", NULL };
	for (const char **p = gg; *p; p++)
		add(&f, *p);
	CHECK(hub_files_select(&f, NULL, NULL, err, sizeof err) == 1);
	CHECK_STR(f.v[0].path, "Qwen2.5-7B-Instruct-Q4_K_M.gguf");
	hub_files_free(&f);
	for (const char **p = gg; *p; p++)
		add(&f, *p);
	CHECK(hub_files_select(&f, NULL, "q8_0", err, sizeof err) == 1);
	CHECK_STR(f.v[0].path, "Qwen2.5-7B-Instruct-Q8_0.gguf");
	hub_files_free(&f);
	for (const char **p = gg; *p; p++)
		add(&f, *p);
	CHECK(hub_files_select(&f, NULL, "Q6_K", err, sizeof err) < 0);
	CHECK(strstr(err, "no GGUF file with quantisation Q6_K") && strstr(err, "Q4_K_M.gguf"));
	hub_files_free(&f);
	/* patterns replace the choice; nothing matched is an error; no weights at all is one */
	add(&f, "config.json");
	add(&f, "model.safetensors");
	json_t *pat = json_pack("[s]", "*.json");
	CHECK(hub_files_select(&f, pat, NULL, err, sizeof err) == 1);
	json_decref(pat);
	hub_files_free(&f);
	add(&f, "README.md");
	CHECK(hub_files_select(&f, NULL, NULL, err, sizeof err) < 0);
	CHECK(strstr(err, "no model weights") != NULL);
	hub_files_free(&f);
}

/* the built-in catalog is valid; each kind of mistake is refused by name */
static void catalog_file(void)
{
	char err[512];
	size_t len;
	const char *data = hub_catalog_builtin(&len);
	CHECK(len > 1000 && data[len] == '\0');
	json_t *m = hub_catalog_parse(data, len, err, sizeof err);
	CHECK(m != NULL);
	CHECK(json_array_size(m) >= 40);
	json_decref(m);
	static const struct {
		const char *json, *says;
	} bad[] = {
		{ "[]", "no 'models' list" },
		{ "{\"models\": [", "not JSON" },
		{ "{\"models\": [{\"id\": \"a\"}]}", "'name'" },
#define E(extra) "{\"models\": [{\"id\": \"a\", \"name\": \"A\", \"family\": \"F\", \"kind\": \"llm\", \"params_b\": 1, " \
		  "\"context\": 4096, \"licence\": \"mit\", " extra "}]}"
		{ E("\"variants\": []"), "'variants'" },
		{ E("\"variants\": [{\"format\": \"int3\", \"huggingface\": \"a/b\"}]"), "format" },
		{ E("\"variants\": [{\"format\": \"bf16\"}]"), "huggingface/modelscope" },
		{ E("\"variants\": [{\"format\": \"bf16\", \"huggingface\": \"../etc\"}]"), "huggingface/modelscope" },
		{ E("\"variants\": [{\"format\": \"bf16\", \"huggingface\": \"a/b/c\"}]"), "huggingface/modelscope" },
		{ E("\"variants\": [{\"format\": \"bf16\", \"modelscope\": \"a/..\"}]"), "huggingface/modelscope" },
		{ E("\"variants\": [{\"format\": \"bf16\", \"modelscope\": \"a/b c\"}]"), "huggingface/modelscope" },
		{ E("\"variants\": [{\"format\": \"gguf\", \"modelscope\": \"a/b\"}]"), "gguf" },
		{ "{\"models\": [{\"id\": \"a\", \"name\": \"A\", \"family\": \"F\", \"kind\": \"chat\"}]}", "'kind'" },
#undef E
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		json_t *x = hub_catalog_parse(bad[i].json, strlen(bad[i].json), err, sizeof err);
		CHECK(x == NULL);
		CHECK(strstr(err, bad[i].says) != NULL);
		json_decref(x);
	}
	const char *dup = "{\"models\": [{\"id\": \"a\", \"name\": \"A\", \"family\": \"F\", \"kind\": \"llm\", \"params_b\": 1, "
			  "\"context\": 1, \"licence\": \"mit\", \"variants\": [{\"format\": \"bf16\", \"huggingface\": \"a/b\"}]},"
			  "{\"id\": \"a\", \"name\": \"A\", \"family\": \"F\", \"kind\": \"llm\", \"params_b\": 1, "
			  "\"context\": 1, \"licence\": \"mit\", \"variants\": [{\"format\": \"bf16\", \"huggingface\": \"a/b\"}]}]}";
	CHECK(hub_catalog_parse(dup, strlen(dup), err, sizeof err) == NULL);
	CHECK(strstr(err, "duplicate") != NULL);
}

/* Qwen2.5-7B-Instruct's published config, with the weights' bytes the hub lists */
static json_t *qwen7b(const char *quant, long long bytes)
{
	char cfg[1024], err[256];
	am_fmt(cfg, sizeof cfg,
	       "{\"architectures\": [\"Qwen2ForCausalLM\"], \"model_type\": \"qwen2\", \"hidden_size\": 3584,"
	       " \"intermediate_size\": 18944, \"num_attention_heads\": 28, \"num_key_value_heads\": 4,"
	       " \"num_hidden_layers\": 28, \"vocab_size\": 152064, \"max_position_embeddings\": 32768,"
	       " \"torch_dtype\": \"bfloat16\"%s}", quant);
	json_t *f = am_inspect_config_mem(cfg, strlen(cfg), err, sizeof err);
	CHECK(f != NULL);
	json_object_set_new(f, "weight_bytes", json_integer(bytes));
	return f;
}

static void pool(struct am_capacity *c, int n, double gib, const char *name, int major, int minor)
{
	am_capacity_init(c, "local");
	for (int i = 0; i < n; i++) {
		struct am_plan_gpu *g = am_capacity_add(c);
		am_fmt(g->id, sizeof g->id, "gpu-%d", i);
		am_strlcpy(g->node, "local", sizeof g->node);
		am_strlcpy(g->name, name, sizeof g->name);
		g->index = i;
		g->total = (uint64_t)(gib * GIB);
		g->cc_major = major;
		g->cc_minor = minor;
	}
}

static const char *state_of(json_t *v)
{
	return json_string_value(json_object_get(v, "state"));
}

/* the planner's verdicts on the reference server's cards, and the others */
static void verdicts(void)
{
	struct am_capacity c;
	pool(&c, 6, 11, "NVIDIA GeForce RTX 2080 Ti", 7, 5);
	json_t *bf16 = qwen7b("", 15231271880LL);
	json_t *v = hub_verdict(&c, bf16, "Qwen2.5-7B-Instruct");
	CHECK_STR(state_of(v), "fits_now");
	CHECK_INT(json_integer_value(json_object_get(v, "gpus")), 2);
	CHECK_INT(json_integer_value(json_object_get(v, "max_model_len")), 32768);
	CHECK_STR(json_string_value(json_object_get(v, "text")), "fits now on 2 × RTX 2080 Ti");
	json_decref(v);
	/* every card held by others: it would fit once they are freed */
	for (int i = 0; i < c.n; i++) {
		c.gpus[i].reserved = c.gpus[i].total - (1ull << 30);
		am_strlcpy(c.gpus[i].holders, "chat", sizeof c.gpus[i].holders);
	}
	v = hub_verdict(&c, bf16, "Qwen2.5-7B-Instruct");
	CHECK_STR(state_of(v), "fits");
	CHECK(strstr(json_string_value(json_object_get(v, "text")), "once they are free") != NULL);
	json_decref(v);
	am_capacity_free(&c);
	/* twice the weights on a node of 3: 4 cards of 11 GiB (3 does not divide its 28 heads) */
	pool(&c, 3, 11, "NVIDIA GeForce RTX 2080 Ti", 7, 5);
	json_object_set_new(bf16, "weight_bytes", json_integer(30000000000LL));
	v = hub_verdict(&c, bf16, "big");
	CHECK_STR(state_of(v), "needs");
	CHECK_INT(json_integer_value(json_object_get(v, "gpus")), 4);
	CHECK(strstr(json_string_value(json_object_get(v, "text")), "the largest node here has 3") != NULL);
	json_decref(v);
	/* 60 GB: 8 cards would hold it, but 8 does not divide its 28 heads and 7 is not a multiple
	 * of its 4 KV heads; only 28 would do, beyond the 16 imagined: too large for such cards */
	json_object_set_new(bf16, "weight_bytes", json_integer(60000000000LL));
	v = hub_verdict(&c, bf16, "big");
	CHECK_STR(state_of(v), "too_large");
	json_decref(v);
	json_object_set_new(bf16, "weight_bytes", json_integer(4000000000000LL));
	v = hub_verdict(&c, bf16, "huge");
	CHECK_STR(state_of(v), "too_large");
	json_decref(v);
	am_capacity_free(&c);
	/* no GPUs: the cards of 80 GiB it would take */
	pool(&c, 0, 0, "", 0, 0);
	json_object_set_new(bf16, "weight_bytes", json_integer(15231271880LL));
	v = hub_verdict(&c, bf16, "Qwen2.5-7B-Instruct");
	CHECK_STR(state_of(v), "needs");
	CHECK_INT(json_integer_value(json_object_get(v, "gpus")), 1);
	CHECK(strstr(json_string_value(json_object_get(v, "text")), "this pool has no GPUs") != NULL);
	json_decref(v);
	am_capacity_free(&c);
	json_decref(bf16);
	/* quantizations the cards cannot run: FP8 on Turing, AWQ on Pascal */
	json_t *fp8 = qwen7b(", \"quantization_config\": {\"quant_method\": \"fp8\"}", 8000000000LL);
	pool(&c, 2, 11, "NVIDIA GeForce RTX 2080 Ti", 7, 5);
	v = hub_verdict(&c, fp8, "fp8");
	CHECK_STR(state_of(v), "unsupported");
	CHECK(strstr(json_string_value(json_object_get(v, "text")), "8.0 or newer") != NULL);
	json_decref(v);
	am_capacity_free(&c);
	pool(&c, 2, 80, "NVIDIA H100 80GB HBM3", 9, 0);
	v = hub_verdict(&c, fp8, "fp8");
	CHECK_STR(state_of(v), "fits_now");
	CHECK_INT(json_integer_value(json_object_get(v, "gpus")), 1);
	json_decref(v);
	am_capacity_free(&c);
	json_decref(fp8);
	json_t *awq = qwen7b(", \"quantization_config\": {\"quant_method\": \"awq\", \"bits\": 4}", 5600000000LL);
	pool(&c, 2, 12, "Tesla P40", 6, 1);
	v = hub_verdict(&c, awq, "awq");
	CHECK_STR(state_of(v), "unsupported");
	json_decref(v);
	am_capacity_free(&c);
	pool(&c, 2, 11, "NVIDIA GeForce RTX 2080 Ti", 7, 5);
	v = hub_verdict(&c, awq, "awq");
	CHECK_STR(state_of(v), "fits_now");
	CHECK_INT(json_integer_value(json_object_get(v, "gpus")), 1);
	json_decref(v);
	am_capacity_free(&c);
	json_decref(awq);
}

void suite_hub(void)
{
	RUN(catalog_file);
	RUN(verdicts);
	RUN(paths);
	RUN(parse_hf);
	RUN(parse_ms);
	RUN(select_files);
}
