/* am_inspect: model inspection. */
#include "am_inspect.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/am_buf.h"
#include "../base/am_json.h"
#include "../base/am_msg.h"
#include "am_gguf.h"
#include "am_safetensors.h"

static int ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && strcmp(s + a - b, suf) == 0;
}

const char *am_inspect_kind(const char *arch, int vision)
{
	if (!arch)
		return "llm";
	if (strstr(arch, "ForSequenceClassification") || strstr(arch, "ForRanking"))
		return "rerank";
	if (vision || strstr(arch, "VLForConditionalGeneration") || strstr(arch, "VisionText") ||
	    strstr(arch, "LlavaForConditionalGeneration") || strstr(arch, "InternVLChat") || strstr(arch, "Mllama"))
		return "vlm";
	if (strstr(arch, "ForCausalLM") || strstr(arch, "ForConditionalGeneration") || strstr(arch, "LMHeadModel"))
		return "llm";
	if (ends_with(arch, "Model") || strstr(arch, "Embedding") || strstr(arch, "ForMaskedLM"))
		return "embedding";
	return "llm";
}

static json_int_t geti(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? json_integer_value(v) : 0;
}

/* A size read from a model file, which comes from a hub and is hostile until
 * checked: absent or null is 0 (unknown), an integer must lie in 0..max, and
 * anything else makes the model invalid with a reason naming file and field. */
static int num(json_t *o, const char *file, const char *k, json_int_t max, json_int_t *out, char *err, size_t errsize)
{
	json_t *v = json_object_get(o, k);
	*out = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v)) {
		am_fmt(err, errsize, AM_MSG_T("%s: '%s' must be an integer from 1 to %lld"), file, k, (long long)max);
		return -1;
	}
	json_int_t n = json_integer_value(v);
	if (n < 0 || n > max) {
		am_fmt(err, errsize, AM_MSG_T("%s: '%s' is %lld; expected an integer from 1 to %lld"), file, k, (long long)n,
		       (long long)max);
		return -1;
	}
	*out = n;
	return 0;
}

/* The first present of up to three alternative keys (models name the same
 * size differently), each checked as num() does. */
static int num3(json_t *o, const char *file, const char *k1, const char *k2, const char *k3, json_int_t max,
		json_int_t *out, char *err, size_t errsize)
{
	const char *keys[] = { k1, k2, k3 };
	*out = 0;
	for (int i = 0; i < 3 && keys[i] && !*out; i++)
		if (num(o, file, keys[i], max, out, err, errsize) != 0)
			return -1;
	return 0;
}

/* Loads a small JSON file (a config, an index, a tokenizer config) after
 * checking its size, so a hostile folder cannot make us parse gigabytes.
 * NULL with je/err set as json_load_file does; *too_big set when refused. */
static json_t *load_small(const char *path, off_t max, int *too_big, json_error_t *je)
{
	struct stat sb;
	*too_big = 0;
	if (stat(path, &sb) == 0 && sb.st_size > max) {
		*too_big = 1;
		return NULL;
	}
	return am_json_load_path(path, 0, je);
}

/* Limits on what a model file may say (see docs/api.md, "model facts"):
 * generous next to any published model, small enough that every product
 * aimaas computes from them (parameters, bytes, a KV cache) fits 64 bits. */
#define MAX_LAYERS 10000
#define MAX_HIDDEN 1000000
#define MAX_HEADS 65536
#define MAX_HEAD_DIM 65536
#define MAX_INTERMEDIATE 10000000
#define MAX_VOCAB 100000000
#define MAX_CONTEXT 100000000
#define MAX_EXPERTS 65536
#define MAX_CONFIG_BYTES (16 << 20)
#define MAX_TOKENIZER_CONFIG_BYTES (64 << 20)

static int exists(const char *dir, const char *name)
{
	char p[4200];
	am_fmt(p, sizeof p, "%s/%s", dir, name);
	return access(p, R_OK) == 0;
}

static int has_chat_template(const char *dir)
{
	if (!dir)
		return 0;
	if (exists(dir, "chat_template.jinja") || exists(dir, "chat_template.json"))
		return 1;
	char p[4200];
	am_fmt(p, sizeof p, "%s/tokenizer_config.json", dir);
	int too_big;
	json_t *tc = load_small(p, MAX_TOKENIZER_CONFIG_BYTES, &too_big, NULL);
	int yes = tc && json_object_get(tc, "chat_template") && !json_is_null(json_object_get(tc, "chat_template"));
	json_decref(tc);
	return yes;
}

static json_t *adapter_facts(const char *dir, char *err, size_t errsize)
{
	char p[4200];
	am_fmt(p, sizeof p, "%s/adapter_config.json", dir);
	json_error_t je;
	int too_big;
	json_t *ac = load_small(p, MAX_CONFIG_BYTES, &too_big, &je);
	if (!json_is_object(ac)) {
		if (too_big)
			am_fmt(err, errsize, AM_MSG_T("adapter_config.json is larger than %d bytes"), MAX_CONFIG_BYTES);
		else
			am_fmt(err, errsize, AM_MSG_T("adapter_config.json is not valid JSON: %s"), je.text);
		json_decref(ac);
		return NULL;
	}
	json_int_t rank;
	if (num(ac, "adapter_config.json", "r", MAX_HIDDEN, &rank, err, errsize) != 0) {
		json_decref(ac);
		return NULL;
	}
	struct am_st_totals t;
	am_st_totals_init(&t);
	am_fmt(p, sizeof p, "%s/adapter_model.safetensors", dir);
	if (access(p, R_OK) == 0 && am_st_read_file(p, &t, err, errsize) != 0) {
		am_st_totals_free(&t);
		json_decref(ac);
		return NULL;
	}
	const char *base = json_string_value(json_object_get(ac, "base_model_name_or_path"));
	json_t *f = json_pack("{s:s,s:s,s:s,s:I,s:I,s:O,s:{s:s?,s:I,s:O,s:O,s:s?},s:b}", "format", "safetensors", "kind",
			      "adapter", "architecture", "LoRA", "parameters", (json_int_t)t.parameters, "weight_bytes",
			      (json_int_t)t.bytes, "bytes_by_dtype", t.bytes_by_dtype, "adapter", "base_model", base, "rank",
			      rank, "alpha", json_object_get(ac, "lora_alpha") ?: json_null(), "target_modules",
			      json_object_get(ac, "target_modules") ?: json_null(), "peft_type",
			      json_string_value(json_object_get(ac, "peft_type")), "chat_template", has_chat_template(dir));
	am_st_totals_free(&t);
	json_decref(ac);
	return f;
}

/* The sizes of a config.json, each checked against its range. */
struct sizes {
	json_int_t heads, hidden, kv, head_dim, ctx, layers, intermediate, vocab, experts, bits;
};

static int config_sizes(json_t *cfg, json_t *c, struct sizes *z, char *err, size_t errsize)
{
	static const char F[] = "config.json";
	memset(z, 0, sizeof *z);
	if (num(c, F, "num_attention_heads", MAX_HEADS, &z->heads, err, errsize) != 0 ||
	    num(c, F, "hidden_size", MAX_HIDDEN, &z->hidden, err, errsize) != 0 ||
	    num3(c, F, "num_key_value_heads", "multi_query_group_num" /* ChatGLM */, NULL, MAX_HEADS, &z->kv, err,
		 errsize) != 0 ||
	    num(c, F, "head_dim", MAX_HEAD_DIM, &z->head_dim, err, errsize) != 0 ||
	    num3(c, F, "max_position_embeddings", "seq_length", "max_sequence_length", MAX_CONTEXT, &z->ctx, err,
		 errsize) != 0 ||
	    num3(c, F, "num_hidden_layers", "num_layers", NULL, MAX_LAYERS, &z->layers, err, errsize) != 0 ||
	    num(c, F, "intermediate_size", MAX_INTERMEDIATE, &z->intermediate, err, errsize) != 0 ||
	    num(c, F, "vocab_size", MAX_VOCAB, &z->vocab, err, errsize) != 0 ||
	    num3(c, F, "num_local_experts", "num_experts", "n_routed_experts", MAX_EXPERTS, &z->experts, err,
		 errsize) != 0)
		return -1;
	json_t *qc = json_object_get(cfg, "quantization_config");
	if (json_is_object(qc) && num(qc, "config.json quantization_config", "bits", 64, &z->bits, err, errsize) != 0)
		return -1;
	if (!z->kv)
		z->kv = z->heads;
	if (!z->head_dim && z->heads)
		z->head_dim = z->hidden / z->heads; /* both checked: no overflow, no zero divisor */
	if (z->head_dim > MAX_HEAD_DIM) {
		am_fmt(err, errsize, AM_MSG_T("config.json: 'head_dim' would be %lld; expected at most %d"), (long long)z->head_dim,
		       MAX_HEAD_DIM);
		return -1;
	}
	return 0;
}

/* The facts of a config.json; dir (may be NULL) adds its safetensors
 * headers and tokenizer files. */
static json_t *config_facts(const char *dir, json_t *cfg, char *err, size_t errsize)
{
	const char *arch = json_string_value(json_array_get(json_object_get(cfg, "architectures"), 0));
	json_t *text = json_object_get(cfg, "text_config"); /* some VLMs nest the language model */
	json_t *nl = json_object_get(text, "num_hidden_layers");
	json_t *c = json_is_object(text) && json_is_integer(nl) && json_integer_value(nl) ? text : cfg;
	int vision = json_is_object(json_object_get(cfg, "vision_config"));
	struct sizes z;
	if (config_sizes(cfg, c, &z, err, errsize) != 0)
		return NULL;
	const char *dtype = json_string_value(json_object_get(cfg, "torch_dtype"));
	if (!dtype)
		dtype = json_string_value(json_object_get(cfg, "dtype"));
	if (!dtype)
		dtype = json_string_value(json_object_get(c, "torch_dtype"));
	json_t *qc = json_object_get(cfg, "quantization_config");
	json_t *quant = json_null();
	if (json_is_object(qc)) {
		json_t *bits = json_object_get(qc, "bits");
		quant = json_pack("{s:s?,s:o}", "method", json_string_value(json_object_get(qc, "quant_method")), "bits",
				  json_is_integer(bits) ? json_integer(z.bits) : json_null());
	}
	struct am_st_totals t;
	am_st_totals_init(&t);
	if (dir && am_st_read_dir(dir, &t, err, errsize) != 0) {
		am_st_totals_free(&t);
		json_decref(quant);
		return NULL;
	}
	const char *kind = am_inspect_kind(arch, vision);
	if (dir && exists(dir, "modules.json") && !strcmp(kind, "llm") && !strstr(arch ? arch : "", "CausalLM"))
		kind = "embedding"; /* a sentence-transformers folder */
	json_t *f = json_pack("{s:s,s:s,s:s?,s:s?,s:I,s:I,s:O,s:O,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s?,s:o,s:b,s:b,s:b}",
			      "format", t.files ? "safetensors" : "unknown", "kind", kind, "architecture", arch, "model_type",
			      json_string_value(json_object_get(cfg, "model_type")), "parameters", (json_int_t)t.parameters,
			      "weight_bytes", (json_int_t)t.bytes, "bytes_by_dtype", t.bytes_by_dtype, "params_by_dtype",
			      t.params_by_dtype, "weight_files", t.files, "tensors", (json_int_t)t.tensors, "layers", z.layers,
			      "hidden_size", z.hidden, "attention_heads", z.heads, "kv_heads", z.kv, "head_dim", z.head_dim,
			      "intermediate_size", z.intermediate, "vocab_size", z.vocab, "max_context", z.ctx, "torch_dtype",
			      dtype, "quantization", quant, "needs_remote_code", json_object_get(cfg, "auto_map") != NULL,
			      "chat_template", has_chat_template(dir), "vision", vision);
	am_st_totals_free(&t);
	if (!f) {
		am_fmt(err, errsize, AM_MSG_T("could not describe the model"));
		return NULL;
	}
	if (z.experts)
		json_object_set_new(f, "experts", json_integer(z.experts));
	if (!json_integer_value(json_object_get(f, "weight_files")))
		json_object_set_new(f, "note", json_string("no safetensors weights found: parameters unknown"));
	return f;
}

json_t *am_inspect_config_mem(const char *data, size_t len, char *err, size_t errsize)
{
	if (len > MAX_CONFIG_BYTES) {
		am_fmt(err, errsize, AM_MSG_T("config.json is larger than %d bytes"), MAX_CONFIG_BYTES);
		return NULL;
	}
	json_error_t je;
	json_t *cfg = json_loadb(data, len, 0, &je);
	if (!json_is_object(cfg)) {
		am_fmt(err, errsize, cfg ? AM_MSG_T("config.json is not a JSON object") : AM_MSG_T("config.json is not valid JSON: %s (line %d)"),
		       je.text, je.line);
		json_decref(cfg);
		return NULL;
	}
	json_t *f = config_facts(NULL, cfg, err, errsize);
	json_decref(cfg);
	return f;
}

/* The first *.gguf in dir (by name), into out. */
static int first_gguf(const char *dir, char *out, size_t size)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	struct dirent *e;
	char best[1024] = "";
	while ((e = readdir(d)))
		if (ends_with(e->d_name, ".gguf") && (!best[0] || strcmp(e->d_name, best) < 0))
			am_strlcpy(best, e->d_name, sizeof best);
	closedir(d);
	if (!best[0])
		return -1;
	am_fmt(out, size, "%s/%s", dir, best);
	return 0;
}

/* The facts of a GGUF header already read by am_gguf (whose numbers it
 * range-checked). */
static json_t *gguf_facts_of(json_t *g, const char *file, char *err, size_t errsize)
{
	const char *arch = json_string_value(json_object_get(g, "architecture"));
	const char *kind = !strcmp(arch, "bert") || !strcmp(arch, "nomic-bert") || !strcmp(arch, "jina-bert-v2")
				   ? "embedding" : "llm";
	json_int_t heads = geti(g, "head_count"), embd = geti(g, "embedding_length");
	json_int_t head_dim = heads > 0 && embd > 0 ? embd / heads : 0;
	json_t *f = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:n,s:o,s:b,s:b,s:b,s:O}", "format",
			      "gguf", "kind", kind, "architecture", arch, "gguf_file", file, "parameters",
			      geti(g, "parameters"), "weight_bytes", geti(g, "bytes"), "layers", geti(g, "block_count"),
			      "hidden_size", embd, "attention_heads", heads, "kv_heads", geti(g, "head_count_kv"), "head_dim",
			      head_dim, "max_context", geti(g, "context_length"), "torch_dtype", "quantization",
			      json_pack("{s:s,s:O}", "method", "gguf", "tensor_types", json_object_get(g, "tensor_types")),
			      "needs_remote_code", 0, "chat_template", json_is_true(json_object_get(g, "chat_template")),
			      "vision", 0, "gguf", g);
	if (!f)
		am_fmt(err, errsize, AM_MSG_T("could not describe the model"));
	return f;
}

static json_t *gguf_facts(const char *file, char *err, size_t errsize)
{
	json_t *g = am_gguf_inspect(file, err, errsize);
	if (!g)
		return NULL;
	json_t *f = gguf_facts_of(g, file, err, errsize);
	json_decref(g);
	return f;
}

json_t *am_inspect_gguf_mem(const char *data, size_t len, char *err, size_t errsize)
{
	json_t *g = am_gguf_inspect_mem(data, len, err, errsize);
	if (!g)
		return NULL;
	json_t *f = gguf_facts_of(g, "memory.gguf", err, errsize);
	json_decref(g);
	return f;
}

json_t *am_inspect(const char *path, char *err, size_t errsize)
{
	struct stat sb;
	if (stat(path, &sb) != 0) {
		am_fmt(err, errsize, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (S_ISREG(sb.st_mode)) {
		if (!ends_with(path, ".gguf")) {
			am_fmt(err, errsize, AM_MSG_T("%s is a file but not a .gguf model"), path);
			return NULL;
		}
		return gguf_facts(path, err, errsize);
	}
	if (!S_ISDIR(sb.st_mode)) {
		am_fmt(err, errsize, AM_MSG_T("%s is neither a folder nor a file"), path);
		return NULL;
	}
	char p[4200];
	am_fmt(p, sizeof p, "%s/config.json", path);
	json_error_t je;
	int too_big;
	json_t *cfg = load_small(p, MAX_CONFIG_BYTES, &too_big, &je);
	if (too_big) {
		am_fmt(err, errsize, AM_MSG_T("config.json is larger than %d bytes"), MAX_CONFIG_BYTES);
		return NULL;
	}
	if (cfg && !json_is_object(cfg)) {
		json_decref(cfg);
		am_fmt(err, errsize, AM_MSG_T("config.json is not a JSON object"));
		return NULL;
	}
	if (!cfg) {
		if (access(p, F_OK) == 0) {
			am_fmt(err, errsize, AM_MSG_T("config.json is not valid JSON: %s (line %d)"), je.text, je.line);
			return NULL;
		}
		if (exists(path, "adapter_config.json"))
			return adapter_facts(path, err, errsize);
		char g[4200];
		if (first_gguf(path, g, sizeof g) == 0)
			return gguf_facts(g, err, errsize);
		am_fmt(err, errsize, AM_MSG_T("%s has no config.json, adapter_config.json or .gguf file"), path);
		return NULL;
	}
	json_t *f = config_facts(path, cfg, err, errsize);
	json_decref(cfg);
	return f;
}
