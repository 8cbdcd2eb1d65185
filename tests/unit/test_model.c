/* Unit tests: a model's files are hostile. config.json, GGUF and safetensors
 * headers with out-of-range or overflowing numbers make the model invalid
 * with a reason naming the field, never a crash; the planner's arithmetic on
 * stored facts is checked too. */
#include <stdint.h>
#include <stdlib.h>

#include "am_test.h"
#include "base/am_buf.h"
#include "model/am_gguf.h"
#include "model/am_inspect.h"
#include "model/am_safetensors.h"
#include "sched/am_planner.h"

static json_t *cfg(const char *json, char *err, size_t size)
{
	err[0] = '\0';
	return am_inspect_config_mem(json, strlen(json), err, size);
}

static void model_config_hostile_numbers(void)
{
	char err[512];
	/* the example: INT64_MIN / -1 in the head_dim division was SIGFPE */
	json_t *f = cfg("{\"hidden_size\": -9223372036854775808, \"num_attention_heads\": -1}", err, sizeof err);
	CHECK(f == NULL);
	CHECK(strstr(err, "config.json") && strstr(err, "'num_attention_heads' is -1"));
	f = cfg("{\"hidden_size\": -9223372036854775808, \"num_attention_heads\": 1}", err, sizeof err);
	CHECK(f == NULL);
	CHECK(strstr(err, "'hidden_size' is -9223372036854775808"));
	static const char *const bad[][2] = {
		{ "{\"num_hidden_layers\": 10001}", "num_hidden_layers" },
		{ "{\"num_layers\": -5}", "num_layers" },
		{ "{\"num_key_value_heads\": 9223372036854775807}", "num_key_value_heads" },
		{ "{\"head_dim\": 65537}", "head_dim" },
		{ "{\"max_position_embeddings\": 100000001}", "max_position_embeddings" },
		{ "{\"seq_length\": -1}", "seq_length" },
		{ "{\"vocab_size\": \"151936\"}", "vocab_size" },
		{ "{\"intermediate_size\": 1.5}", "intermediate_size" },
		{ "{\"num_local_experts\": 70000}", "num_local_experts" },
		{ "{\"quantization_config\": {\"bits\": -4}}", "bits" },
		{ "{\"text_config\": {\"num_hidden_layers\": 4, \"hidden_size\": 2000000}}", "hidden_size" },
		/* a computed head size past its limit */
		{ "{\"hidden_size\": 1000000, \"num_attention_heads\": 1}", "head_dim" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		f = cfg(bad[i][0], err, sizeof err);
		CHECK(f == NULL);
		if (!strstr(err, bad[i][1]))
			fprintf(stderr, "    %s -> %s\n", bad[i][0], err);
		CHECK(strstr(err, bad[i][1]) != NULL);
	}
	/* null and absent are unknown, not errors (Mistral writes "head_dim": null) */
	f = cfg("{\"hidden_size\": 4096, \"num_attention_heads\": 32, \"head_dim\": null}", err, sizeof err);
	CHECK(f != NULL);
	CHECK_INT(json_integer_value(json_object_get(f, "head_dim")), 128);
	CHECK_INT(json_integer_value(json_object_get(f, "kv_heads")), 32);
	json_decref(f);
	/* the largest values allowed still describe a model */
	f = cfg("{\"hidden_size\": 1000000, \"num_attention_heads\": 65536, \"num_hidden_layers\": 10000,"
		"\"max_position_embeddings\": 100000000, \"num_key_value_heads\": 65536}", err, sizeof err);
	CHECK(f != NULL);
	CHECK_INT(json_integer_value(json_object_get(f, "head_dim")), 15);
	json_decref(f);
	CHECK(cfg("[1]", err, sizeof err) == NULL);
	CHECK(strstr(err, "not a JSON object"));
}

static void model_config_fixtures(void)
{
	static const char *const models[] = { "DeepSeek-R1-Distill-Qwen-32B", "Qwen2.5-7B-Instruct", "Qwen2.5-VL-7B-Instruct",
					      "Qwen3-32B", "bge-large-zh-v1.5", "bge-reranker-v2-m3" };
	for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
		char p[256], err[512] = "";
		am_fmt(p, sizeof p, "tests/fixtures/models/%s/config.json", models[i]);
		char *s = am_test_read_file(p);
		CHECK(s != NULL);
		json_t *f = s ? am_inspect_config_mem(s, strlen(s), err, sizeof err) : NULL;
		if (!f)
			fprintf(stderr, "    %s: %s\n", models[i], err);
		CHECK(f != NULL);
		CHECK(json_integer_value(json_object_get(f, "layers")) > 0);
		json_decref(f);
		free(s);
	}
}

/* ---- a GGUF writer for tests ---- */

static void le(struct am_buf *b, uint64_t v, int n)
{
	for (int i = 0; i < n; i++) {
		unsigned char c = (unsigned char)(v >> (8 * i));
		am_buf_add(b, &c, 1);
	}
}

static void gstr(struct am_buf *b, const char *s)
{
	le(b, strlen(s), 8);
	am_buf_add(b, s, strlen(s));
}

/* A key of GGUF type t (4: u32, 5: i32, 10: u64, 11: i64, 6: f32) holding v. */
static void gkv(struct am_buf *b, const char *k, uint32_t t, uint64_t v)
{
	gstr(b, k);
	le(b, t, 4);
	le(b, v, t == 10 || t == 11 ? 8 : 4);
}

static void gguf_head(struct am_buf *b, uint64_t ntensors, uint64_t nkv)
{
	am_buf_add(b, "GGUF", 4);
	le(b, 3, 4);
	le(b, ntensors, 8);
	le(b, nkv, 8);
	gstr(b, "general.architecture");
	le(b, 8, 4);
	gstr(b, "llama");
}

static json_t *gguf_with(uint32_t t_embd, uint64_t embd, uint32_t t_heads, uint64_t heads, char *err, size_t size)
{
	struct am_buf b;
	am_buf_init(&b, 1 << 20);
	gguf_head(&b, 1, 4);
	gkv(&b, "llama.embedding_length", t_embd, embd);
	gkv(&b, "llama.attention.head_count", t_heads, heads);
	gkv(&b, "llama.block_count", 4, 32);
	gstr(&b, "w");
	le(&b, 2, 4);
	le(&b, 4096, 8);
	le(&b, 4096, 8);
	le(&b, 12, 4); /* Q4_K */
	le(&b, 0, 8);
	err[0] = '\0';
	json_t *f = am_inspect_gguf_mem(b.data, b.len, err, size);
	am_buf_free(&b);
	return f;
}

static void model_gguf_hostile_numbers(void)
{
	char err[512];
	/* the example as GGUF: i64 INT64_MIN and i32 -1 */
	json_t *f = gguf_with(11, (uint64_t)INT64_MIN, 5, 0xFFFFFFFFu, err, sizeof err);
	CHECK(f == NULL);
	CHECK(strstr(err, "llama.embedding_length") && strstr(err, "negative"));
	f = gguf_with(10, 4096, 5, 0xFFFFFFFFu, err, sizeof err);
	CHECK(f == NULL);
	CHECK(strstr(err, "llama.attention.head_count") && strstr(err, "negative"));
	f = gguf_with(10, UINT64_MAX, 4, 32, err, sizeof err);
	CHECK(f == NULL);
	CHECK(strstr(err, "llama.embedding_length") != NULL);
	f = gguf_with(6, 0x45800000u /* 4096.0f */, 4, 32, err, sizeof err);
	CHECK(f == NULL);
	CHECK(strstr(err, "must be an integer") != NULL);
	f = gguf_with(10, 4096, 4, 32, err, sizeof err);
	CHECK(f != NULL);
	CHECK_INT(json_integer_value(json_object_get(f, "head_dim")), 128);
	CHECK_INT(json_integer_value(json_object_get(f, "parameters")), 4096 * 4096);
	CHECK_INT(json_integer_value(json_object_get(f, "weight_bytes")), 4096 * 4096 / 256 * 144);
	json_decref(f);

	/* tensor dimensions whose product wraps 64 bits */
	struct am_buf b;
	am_buf_init(&b, 1 << 20);
	gguf_head(&b, 1, 1);
	gstr(&b, "w");
	le(&b, 3, 4);
	for (int i = 0; i < 3; i++)
		le(&b, UINT64_C(1) << 32, 8);
	le(&b, 0, 4);
	le(&b, 0, 8);
	f = am_inspect_gguf_mem(b.data, b.len, err, sizeof err);
	CHECK(f == NULL);
	CHECK(strstr(err, "dimensions are implausible") != NULL);
	am_buf_free(&b);
	/* counts past the limits, and a truncated header */
	am_buf_init(&b, 1 << 20);
	gguf_head(&b, UINT64_MAX, 1);
	f = am_inspect_gguf_mem(b.data, b.len, err, sizeof err);
	CHECK(f == NULL);
	CHECK(strstr(err, "implausible GGUF counts") != NULL);
	am_buf_free(&b);
	am_buf_init(&b, 1 << 20);
	gguf_head(&b, 0, 2);
	gstr(&b, "llama.context_length");
	le(&b, 9, 4); /* an array of 2^60 u32: refused, not skipped */
	le(&b, 4, 4);
	le(&b, UINT64_C(1) << 60, 8);
	f = am_inspect_gguf_mem(b.data, b.len, err, sizeof err);
	CHECK(f == NULL);
	CHECK(strstr(err, "truncated or malformed") != NULL);
	am_buf_free(&b);
}

static int st(const char *hdr, uint64_t data, struct am_st_totals *t, char *err, size_t size)
{
	am_st_totals_init(t);
	err[0] = '\0';
	return am_st_parse_header(hdr, strlen(hdr), data, "x.safetensors", t, err, size);
}

static void model_safetensors_hostile_numbers(void)
{
	char err[512];
	struct am_st_totals t;
	/* 2^32 * 2^32 wraps to 0 elements: it used to pass with 0 bytes */
	CHECK_INT(st("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 0, &t, err,
		     sizeof err), -1);
	CHECK(strstr(err, "bad shape") != NULL);
	am_st_totals_free(&t);
	/* elems * 8 bytes past 2^64: was a float-to-integer overflow */
	CHECK_INT(st("{\"w\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}", 0, &t, err,
		     sizeof err), -1);
	am_st_totals_free(&t);
	CHECK_INT(st("{\"w\":{\"dtype\":\"F16\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0, &t, err, sizeof err), -1);
	am_st_totals_free(&t);
	CHECK_INT(st("{\"w\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[-9223372036854775808,4]}}", 4, &t, err,
		     sizeof err), -1);
	am_st_totals_free(&t);
	CHECK_INT(st("{\"w\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 3, &t, err, sizeof err), -1);
	CHECK(strstr(err, "past the file") != NULL);
	am_st_totals_free(&t);
	CHECK_INT(st("{\"w\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,\"4\"]}}", 4, &t, err, sizeof err), -1);
	am_st_totals_free(&t);
	/* good: F4 packs two to a byte; totals add up */
	CHECK_INT(st("{\"__metadata__\":{},\"a\":{\"dtype\":\"F4\",\"shape\":[3,2],\"data_offsets\":[0,3]},"
		     "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[3,11]}}", 11, &t, err, sizeof err), 0);
	CHECK_INT(t.parameters, 10);
	CHECK_INT(t.bytes, 11);
	CHECK_INT(t.tensors, 2);
	am_st_totals_free(&t);
}

static void planner_hostile_facts(void)
{
	struct am_plan_gpu g[1];
	memset(g, 0, sizeof g);
	g[0].total = (uint64_t)(80 * GIB);
	struct am_plan_req r;
	memset(&r, 0, sizeof r);
	r.model = "m";
	r.tp = 1;
	r.replicas = 1;
	struct am_plan p;
	/* a stored fact out of range (an old row): refused naming it, no SIGFPE */
	r.facts = json_pack("{s:s,s:I,s:I,s:I}", "kind", "llm", "attention_heads", (json_int_t)-1, "hidden_size",
			    (json_int_t)INT64_MIN, "kv_heads", (json_int_t)-1);
	am_planner_plan(g, 1, &r, &p);
	CHECK(!p.ok);
	CHECK_STR(p.field, "model");
	CHECK(strstr(p.reason, "implausible") != NULL);
	json_decref(r.facts);
	/* the largest facts the inspector allows: the KV cache for 10^8 tokens
	 * passes 2^64 and must be refused for size, not wrap to a small number */
	r.facts = json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:I}", "kind", "llm", "attention_heads", 65536, "kv_heads",
			    65536, "head_dim", 65536, "layers", 10000, "hidden_size", 1000000, "max_context", 100000000,
			    "weight_bytes", (json_int_t)1 << 62);
	r.max_model_len = 100000000;
	am_planner_plan(g, 1, &r, &p);
	CHECK(!p.ok);
	CHECK(p.capacity == 1);
	CHECK(p.need == UINT64_MAX);
	json_decref(r.facts);
	/* replicas * GPUs that would overflow int */
	r.facts = json_pack("{s:s}", "kind", "llm");
	r.tp = 65536;
	r.replicas = 65536;
	am_planner_plan(g, 1, &r, &p);
	CHECK(!p.ok);
	CHECK_STR(p.field, "gpus_per_replica");
	json_decref(r.facts);
}

void suite_model(void)
{
	RUN(model_config_hostile_numbers);
	RUN(model_config_fixtures);
	RUN(model_gguf_hostile_numbers);
	RUN(model_safetensors_hostile_numbers);
	RUN(planner_hostile_facts);
}
