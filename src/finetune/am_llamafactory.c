/* am_llamafactory: what aimaas knows of LLaMA-Factory's own tables and
 * files, with no state: the chat template for a model architecture, the
 * templates it registers, the GPU memory a method needs (its README's
 * table), and the trainer's progress log (output_dir/trainer_log.jsonl).
 * Declared in am_finetune.h. */
#include "am_finetune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/am_file.h"

#define GB 1000000000.0

/* ---- templates and memory ---- */

static const struct {
	const char *arch, *tmpl;
} arch_templates[] = {
	{ "Qwen3ForCausalLM", "qwen3" }, { "Qwen3MoeForCausalLM", "qwen3" }, { "Qwen2ForCausalLM", "qwen" },
	{ "Qwen2MoeForCausalLM", "qwen" }, { "Qwen2VLForConditionalGeneration", "qwen2_vl" },
	{ "Qwen2_5_VLForConditionalGeneration", "qwen2_vl" }, { "Qwen3VLForConditionalGeneration", "qwen3_vl" },
	{ "MllamaForConditionalGeneration", "mllama" }, { "Llama4ForConditionalGeneration", "llama4" },
	{ "DeepseekV3ForCausalLM", "deepseek3" }, { "DeepseekV2ForCausalLM", "deepseek" },
	{ "Glm4ForCausalLM", "glm4" }, { "ChatGLMModel", "chatglm3" }, { "MistralForCausalLM", "mistral" },
	{ "MixtralForCausalLM", "mistral" }, { "Gemma3ForCausalLM", "gemma3" },
	{ "Gemma3ForConditionalGeneration", "gemma3" }, { "Gemma2ForCausalLM", "gemma2" }, { "GemmaForCausalLM", "gemma" },
	{ "Phi3ForCausalLM", "phi" }, { "InternLM2ForCausalLM", "intern2" }, { "InternVLChatModel", "intern_vl" },
};

static const char *const known_templates[] = {
	"qwen", "qwen3", "qwen3_nothink", "qwen2_vl", "qwen3_vl", "llama2", "llama3", "llama4", "mllama", "deepseek",
	"deepseek3", "deepseekr1", "glm4", "chatglm3", "mistral", "yi", "intern2", "intern_vl", "gemma", "gemma2",
	"gemma3", "phi", "phi4", "default", "alpaca", "empty", "vicuna", "baichuan2", "cohere", "falcon", "llava",
};

const char *am_finetune_template_for(const char *architecture, const char *model_type)
{
	if (architecture) {
		for (size_t i = 0; i < sizeof arch_templates / sizeof arch_templates[0]; i++)
			if (!strcmp(architecture, arch_templates[i].arch))
				return arch_templates[i].tmpl;
		if (!strcmp(architecture, "LlamaForCausalLM")) /* Llama 3 has a 128k vocabulary; Llama 2 32k */
			return model_type && !strcmp(model_type, "llama2") ? "llama2" : "llama3";
	}
	return "default";
}

int am_finetune_template_ok(const char *t)
{
	for (size_t i = 0; i < sizeof known_templates / sizeof known_templates[0]; i++)
		if (!strcmp(t, known_templates[i]))
			return 1;
	return 0;
}

uint64_t am_finetune_mem_need(const char *method, int bits, long long parameters, int ngpus, int deepspeed, int pure_bf16)
{
	double x = (double)parameters / 1e9, gb;
	if (!strcmp(method, "full"))
		gb = (pure_bf16 ? 8.0 : 18.0) * x;
	else if (!strcmp(method, "qlora"))
		gb = bits == 8 ? x : x / 2.0;
	else /* lora, freeze */
		gb = 2.0 * x;
	if (gb < 1.0)
		gb = 1.0; /* CUDA context and activations, however small the model */
	if (!strcmp(method, "full") && deepspeed && ngpus > 1)
		gb /= ngpus; /* ZeRO shards weights, gradients and optimizer states */
	if (!(gb * GB < 1.8e19))
		return UINT64_MAX; /* a hostile parameter count: fits no card, and no float-to-integer overflow */
	return (uint64_t)(gb * GB);
}

/* ---- trainer_log.jsonl ---- */

static json_t *point(json_t *r)
{
	static const char *const keys[][2] = { { "current_steps", "step" }, { "total_steps", "total" }, { "loss", "loss" },
					       { "eval_loss", "eval_loss" }, { "lr", "lr" }, { "epoch", "epoch" },
					       { "percentage", "percentage" }, { "elapsed_time", "elapsed" },
					       { "remaining_time", "remaining" } };
	json_t *p = json_object();
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		json_t *v = json_object_get(r, keys[i][0]);
		if (v && !json_is_null(v))
			json_object_set(p, keys[i][1], v);
	}
	return p;
}

json_t *am_finetune_progress(const char *path)
{
	char **lines = NULL;
	int n = am_file_tail(path, 4, &lines);
	json_t *out = NULL;
	for (int i = n - 1; i >= 0 && !out; i--) {
		json_t *r = json_loads(lines[i], 0, NULL);
		if (json_is_object(r) && json_object_get(r, "current_steps"))
			out = point(r);
		json_decref(r);
	}
	am_file_lines_free(lines, n);
	return out;
}

json_t *am_finetune_series(const char *path, int max)
{
	json_t *all = json_array();
	FILE *f = fopen(path, "re");
	if (f) {
		char *line = NULL;
		size_t cap = 0;
		while (getline(&line, &cap, f) > 0) {
			json_t *r = json_loads(line, 0, NULL);
			if (json_is_object(r) && json_object_get(r, "current_steps"))
				json_array_append_new(all, point(r));
			json_decref(r);
		}
		free(line);
		fclose(f);
	}
	size_t n = json_array_size(all);
	if (max < 2 || n <= (size_t)max)
		return all;
	json_t *thin = json_array();
	double stride = (double)(n - 1) / (double)(max - 1);
	size_t next = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *p = json_array_get(all, i);
		if (i == next || i == n - 1 || json_object_get(p, "eval_loss")) {
			json_array_append(thin, p);
			if (i == next)
				next = (size_t)((double)(json_array_size(thin)) * stride);
			if (next <= i)
				next = i + 1;
		}
	}
	json_decref(all);
	return thin;
}

