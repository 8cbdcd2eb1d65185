/* am_inspect: model inspection. */
#include "am_inspect.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/am_buf.h"
#include "../base/am_json.h"
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

static int exists(const char *dir, const char *name)
{
	char p[4200];
	am_fmt(p, sizeof p, "%s/%s", dir, name);
	return access(p, R_OK) == 0;
}

static int has_chat_template(const char *dir)
{
	if (exists(dir, "chat_template.jinja") || exists(dir, "chat_template.json"))
		return 1;
	char p[4200];
	am_fmt(p, sizeof p, "%s/tokenizer_config.json", dir);
	json_t *tc = am_json_load_path(p, 0, NULL);
	int yes = tc && json_object_get(tc, "chat_template") && !json_is_null(json_object_get(tc, "chat_template"));
	json_decref(tc);
	return yes;
}

static json_t *adapter_facts(const char *dir, char *err, size_t errsize)
{
	char p[4200];
	am_fmt(p, sizeof p, "%s/adapter_config.json", dir);
	json_error_t je;
	json_t *ac = am_json_load_path(p, 0, &je);
	if (!json_is_object(ac)) {
		am_fmt(err, errsize, "adapter_config.json is not valid JSON: %s", je.text);
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
			      geti(ac, "r"), "alpha", json_object_get(ac, "lora_alpha") ?: json_null(), "target_modules",
			      json_object_get(ac, "target_modules") ?: json_null(), "peft_type",
			      json_string_value(json_object_get(ac, "peft_type")), "chat_template", has_chat_template(dir));
	am_st_totals_free(&t);
	json_decref(ac);
	return f;
}

static json_t *config_facts(const char *dir, json_t *cfg, char *err, size_t errsize)
{
	const char *arch = json_string_value(json_array_get(json_object_get(cfg, "architectures"), 0));
	json_t *text = json_object_get(cfg, "text_config"); /* some VLMs nest the language model */
	json_t *c = json_is_object(text) && geti(text, "num_hidden_layers") ? text : cfg;
	int vision = json_is_object(json_object_get(cfg, "vision_config"));
	json_int_t heads = geti(c, "num_attention_heads"), hidden = geti(c, "hidden_size");
	json_int_t kv = geti(c, "num_key_value_heads");
	if (!kv)
		kv = geti(c, "multi_query_group_num"); /* ChatGLM */
	if (!kv)
		kv = heads;
	json_int_t head_dim = geti(c, "head_dim");
	if (!head_dim && heads)
		head_dim = hidden / heads;
	json_int_t ctx = geti(c, "max_position_embeddings");
	if (!ctx)
		ctx = geti(c, "seq_length");
	if (!ctx)
		ctx = geti(c, "max_sequence_length");
	json_int_t layers = geti(c, "num_hidden_layers");
	if (!layers)
		layers = geti(c, "num_layers");
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
				  json_is_integer(bits) ? json_incref(bits) : json_null());
	}
	struct am_st_totals t;
	am_st_totals_init(&t);
	if (am_st_read_dir(dir, &t, err, errsize) != 0) {
		am_st_totals_free(&t);
		json_decref(quant);
		return NULL;
	}
	const char *kind = am_inspect_kind(arch, vision);
	if (exists(dir, "modules.json") && !strcmp(kind, "llm") && !strstr(arch ? arch : "", "CausalLM"))
		kind = "embedding"; /* a sentence-transformers folder */
	json_t *f = json_pack("{s:s,s:s,s:s?,s:s?,s:I,s:I,s:O,s:O,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s?,s:o,s:b,s:b,s:b}",
			      "format", t.files ? "safetensors" : "unknown", "kind", kind, "architecture", arch, "model_type",
			      json_string_value(json_object_get(cfg, "model_type")), "parameters", (json_int_t)t.parameters,
			      "weight_bytes", (json_int_t)t.bytes, "bytes_by_dtype", t.bytes_by_dtype, "params_by_dtype",
			      t.params_by_dtype, "weight_files", t.files, "tensors", (json_int_t)t.tensors, "layers", layers,
			      "hidden_size", hidden, "attention_heads", heads, "kv_heads", kv, "head_dim", head_dim,
			      "intermediate_size", geti(c, "intermediate_size"), "vocab_size", geti(c, "vocab_size"),
			      "max_context", ctx, "torch_dtype", dtype, "quantization", quant, "needs_remote_code",
			      json_object_get(cfg, "auto_map") != NULL, "chat_template", has_chat_template(dir), "vision",
			      vision);
	am_st_totals_free(&t);
	if (!f)
		am_fmt(err, errsize, "could not describe the model");
	else if (!json_integer_value(json_object_get(f, "weight_files")))
		json_object_set_new(f, "note", json_string("no safetensors weights found: parameters unknown"));
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

static json_t *gguf_facts(const char *file, char *err, size_t errsize)
{
	json_t *g = am_gguf_inspect(file, err, errsize);
	if (!g)
		return NULL;
	const char *arch = json_string_value(json_object_get(g, "architecture"));
	const char *kind = !strcmp(arch, "bert") || !strcmp(arch, "nomic-bert") || !strcmp(arch, "jina-bert-v2")
				   ? "embedding" : "llm";
	json_int_t heads = geti(g, "head_count"), embd = geti(g, "embedding_length");
	json_t *f = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:n,s:o,s:b,s:b,s:b,s:O}", "format",
			      "gguf", "kind", kind, "architecture", arch, "gguf_file", file, "parameters",
			      geti(g, "parameters"), "weight_bytes", geti(g, "bytes"), "layers", geti(g, "block_count"),
			      "hidden_size", embd, "attention_heads", heads, "kv_heads", geti(g, "head_count_kv"), "head_dim",
			      heads ? embd / heads : 0, "max_context", geti(g, "context_length"), "torch_dtype",
			      "quantization", json_pack("{s:s,s:O}", "method", "gguf", "tensor_types", json_object_get(g, "tensor_types")),
			      "needs_remote_code", 0, "chat_template", json_is_true(json_object_get(g, "chat_template")),
			      "vision", 0, "gguf", g);
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
			am_fmt(err, errsize, "%s is a file but not a .gguf model", path);
			return NULL;
		}
		return gguf_facts(path, err, errsize);
	}
	if (!S_ISDIR(sb.st_mode)) {
		am_fmt(err, errsize, "%s is neither a folder nor a file", path);
		return NULL;
	}
	char p[4200];
	am_fmt(p, sizeof p, "%s/config.json", path);
	json_error_t je;
	json_t *cfg = am_json_load_path(p, 0, &je);
	if (cfg && !json_is_object(cfg)) {
		json_decref(cfg);
		am_fmt(err, errsize, "config.json is not a JSON object");
		return NULL;
	}
	if (!cfg) {
		if (access(p, F_OK) == 0) {
			am_fmt(err, errsize, "config.json is not valid JSON: %s (line %d)", je.text, je.line);
			return NULL;
		}
		if (exists(path, "adapter_config.json"))
			return adapter_facts(path, err, errsize);
		char g[4200];
		if (first_gguf(path, g, sizeof g) == 0)
			return gguf_facts(g, err, errsize);
		am_fmt(err, errsize, "%s has no config.json, adapter_config.json or .gguf file", path);
		return NULL;
	}
	json_t *f = config_facts(path, cfg, err, errsize);
	json_decref(cfg);
	return f;
}
