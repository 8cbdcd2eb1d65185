/* sim_train: the simulated LLaMA-Factory trainer and exporter. */
#include "sim_train.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/am_buf.h"
#include "base/am_mem.h"
#include "base/am_time.h"
#include "sim_config.h"
#include "sim_text.h"

/* Keys LLaMA-Factory's argument dataclasses accept (model, data, training,
 * finetuning, generating arguments) that a run may set. */
static const char *const known_keys[] = {
	"model_name_or_path", "adapter_name_or_path", "adapter_folder", "cache_dir", "use_fast_tokenizer",
	"resize_vocab", "split_special_tokens", "add_tokens", "add_special_tokens", "model_revision",
	"low_cpu_mem_usage", "rope_scaling", "flash_attn", "shift_attn", "mixture_of_depths", "use_unsloth",
	"use_unsloth_gc", "enable_liger_kernel", "moe_aux_loss_coef", "disable_gradient_checkpointing",
	"use_reentrant_gc", "upcast_layernorm", "upcast_lmhead_output", "train_from_scratch", "infer_backend",
	"offload_folder", "use_cache", "infer_dtype", "hf_hub_token", "ms_hub_token", "om_hub_token",
	"print_param_status", "trust_remote_code", "quantization_method", "quantization_bit", "quantization_type",
	"double_quantization", "quantization_device_map", "image_max_pixels", "image_min_pixels",
	"video_max_pixels", "video_min_pixels", "video_fps", "video_maxlen", "export_dir", "export_size",
	"export_device", "export_quantization_bit", "export_quantization_dataset", "export_quantization_nsamples",
	"export_quantization_maxlen", "export_legacy_format", "export_hub_model_id", "vllm_maxlen", "vllm_gpu_util",
	"vllm_enforce_eager", "vllm_max_lora_rank", "vllm_config", "template", "dataset", "eval_dataset",
	"dataset_dir", "media_dir", "cutoff_len", "train_on_prompt", "mask_history", "streaming", "buffer_size",
	"mix_strategy", "interleave_probs", "overwrite_cache", "preprocessing_batch_size",
	"preprocessing_num_workers", "max_samples", "eval_num_beams", "ignore_pad_token_for_loss", "val_size",
	"eval_on_each_dataset", "packing", "neat_packing", "tool_format", "default_system", "enable_thinking",
	"tokenized_path", "data_shared_file_system", "stage", "do_train", "do_eval", "do_predict",
	"finetuning_type", "use_llama_pro", "use_adam_mini", "use_muon", "freeze_vision_tower",
	"freeze_multi_modal_projector", "freeze_language_model", "compute_accuracy", "disable_shuffling",
	"early_stopping_steps", "plot_loss", "include_effective_tokens_per_second", "freeze_trainable_layers",
	"freeze_trainable_modules", "freeze_extra_modules", "additional_target", "lora_alpha", "lora_dropout",
	"lora_rank", "lora_target", "loraplus_lr_ratio", "loraplus_lr_embedding", "use_rslora", "use_dora",
	"pissa_init", "pissa_iter", "pissa_convert", "create_new_adapter", "pref_beta", "pref_ftx", "pref_loss",
	"dpo_label_smoothing", "kto_chosen_weight", "kto_rejected_weight", "simpo_gamma", "ppo_buffer_size",
	"ppo_epochs", "ppo_score_norm", "ppo_target", "ppo_whiten_rewards", "ref_model", "ref_model_adapters",
	"ref_model_quantization_bit", "reward_model", "reward_model_adapters", "reward_model_quantization_bit",
	"reward_model_type", "use_galore", "use_apollo", "use_badam", "output_dir", "overwrite_output_dir",
	"logging_steps", "logging_dir", "logging_strategy", "save_steps", "save_strategy", "save_total_limit",
	"save_only_model", "report_to", "run_name", "per_device_train_batch_size", "per_device_eval_batch_size",
	"gradient_accumulation_steps", "learning_rate", "num_train_epochs", "max_steps", "lr_scheduler_type",
	"warmup_ratio", "warmup_steps", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon",
	"max_grad_norm", "optim", "bf16", "fp16", "pure_bf16", "tf32", "ddp_timeout", "ddp_find_unused_parameters",
	"resume_from_checkpoint", "eval_strategy", "evaluation_strategy", "eval_steps", "deepspeed", "fsdp",
	"seed", "data_seed", "gradient_checkpointing", "include_num_input_tokens_seen", "dataloader_num_workers",
	"remove_unused_columns", "load_best_model_at_end", "metric_for_best_model", "greater_is_better",
	"save_safetensors", "push_to_hub", "hub_model_id", "predict_with_generate", "max_new_tokens", "temperature",
	"top_p", "top_k", "do_sample", "num_beams", "repetition_penalty", "length_penalty", "skip_special_tokens",
	NULL,
};

static volatile sig_atomic_t g_abort;
static FILE *g_running_log; /* LLAMABOARD_WORKDIR/running_log.txt when LlamaBoard is on */

static void on_sigabrt(int sig)
{
	(void)sig;
	g_abort = 1;
}

/* A log line to stdout (and to LlamaBoard's running log). */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fputs(line, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	if (g_running_log) {
		fputs(line, g_running_log);
		fputc('\n', g_running_log);
		fflush(g_running_log);
	}
}

static void info(const char *where, const char *msg, const char *arg)
{
	time_t t = time(NULL);
	struct tm tm;
	localtime_r(&t, &tm);
	char m[1200];
	am_fmt(m, sizeof m, msg, arg);
	say("[INFO|%04d-%02d-%02d %02d:%02d:%02d] %s >> %s", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, where, m);
}

/* LLaMA-Factory dies with a ValueError traceback and exit status 1. */
static int die(const char *fmt, const char *arg)
{
	char m[1200];
	am_fmt(m, sizeof m, fmt, arg);
	fprintf(stderr, "Traceback (most recent call last):\n  File \"llamafactory/cli.py\", line 24, in main\n"
			"ValueError: %s\n", m);
	say("ValueError: %s", m);
	return 1;
}

static const char *str(json_t *cfg, const char *k, const char *dflt)
{
	const char *v = json_string_value(json_object_get(cfg, k));
	return v ? v : dflt;
}

static double num(json_t *cfg, const char *k, double dflt)
{
	json_t *v = json_object_get(cfg, k);
	if (json_is_number(v))
		return json_number_value(v);
	if (json_is_string(v)) { /* YAML like 1.0e-4 arrives as a number; "1e-4" strings too */
		char *end;
		double d = strtod(json_string_value(v), &end);
		if (!*end && end != json_string_value(v))
			return d;
	}
	return dflt;
}

static int flag(json_t *cfg, const char *k)
{
	return json_is_true(json_object_get(cfg, k));
}

/* "0:05:07" or "1 day, 2:03:04", as Python prints a timedelta. */
static void timedelta(long secs, char *out, size_t size)
{
	long d = secs / 86400, r = secs % 86400;
	if (d)
		am_fmt(out, size, "%ld day%s, %ld:%02ld:%02ld", d, d == 1 ? "" : "s", r / 3600, (r / 60) % 60, r % 60);
	else
		am_fmt(out, size, "%ld:%02ld:%02ld", r / 3600, (r / 60) % 60, r % 60);
}

/* ---- datasets ---- */

static long count_records(const char *file, const char *formatting, json_t *columns, char *err, size_t errsize)
{
	size_t n = strlen(file);
	const char *ext = strrchr(file, '.');
	json_t *records = json_array();
	long count = -1;
	if (ext && !strcmp(ext, ".jsonl")) {
		FILE *f = fopen(file, "r");
		if (!f) {
			am_fmt(err, errsize, "cannot open %s", file);
			goto out;
		}
		char *line = NULL;
		size_t cap = 0;
		ssize_t len;
		long lineno = 0;
		while ((len = getline(&line, &cap, f)) > 0) {
			lineno++;
			if (len <= 1 && line[0] == '\n')
				continue;
			json_t *r = json_loadb(line, (size_t)len, 0, NULL);
			if (!json_is_object(r)) {
				am_fmt(err, errsize, "An error occurred while generating the dataset: %s line %ld is not a JSON object",
				       file, lineno);
				json_decref(r);
				free(line);
				fclose(f);
				goto out;
			}
			json_array_append_new(records, r);
		}
		free(line);
		fclose(f);
	} else if (ext && !strcmp(ext, ".json")) {
		json_error_t je;
		json_t *all = json_load_file(file, 0, &je);
		if (!json_is_array(all)) {
			am_fmt(err, errsize, "An error occurred while generating the dataset: %s: %s", file,
			       all ? "expected a list of records" : je.text);
			json_decref(all);
			goto out;
		}
		json_decref(records);
		records = all;
	} else if (ext && !strcmp(ext, ".csv")) {
		FILE *f = fopen(file, "r");
		if (!f) {
			am_fmt(err, errsize, "cannot open %s", file);
			goto out;
		}
		char *line = NULL;
		size_t cap = 0;
		long rows = -1;
		while (getline(&line, &cap, f) > 0)
			rows++;
		free(line);
		fclose(f);
		count = rows < 0 ? 0 : rows;
		goto out;
	} else {
		am_fmt(err, errsize, "File types should be identical: unknown file type of %s", file);
		(void)n;
		goto out;
	}
	/* each record must have what its format needs */
	int sharegpt = formatting && (!strcmp(formatting, "sharegpt") || !strcmp(formatting, "openai"));
	const char *key = sharegpt ? json_string_value(json_object_get(columns, "messages")) : NULL;
	if (sharegpt && !key)
		key = !strcmp(formatting, "openai") ? "messages" : "conversations";
	const char *prompt = json_string_value(json_object_get(columns, "prompt"));
	const char *resp = json_string_value(json_object_get(columns, "response"));
	size_t i;
	json_t *r;
	json_array_foreach(records, i, r) {
		if (sharegpt) {
			if (!json_is_array(json_object_get(r, key))) {
				am_fmt(err, errsize, "Invalid message: record %zu has no list '%s'", i, key);
				goto out;
			}
		} else if (!json_is_string(json_object_get(r, prompt ? prompt : "instruction")) &&
			   !json_is_string(json_object_get(r, "text"))) {
			am_fmt(err, errsize, "record %zu lacks '%s'", i, prompt ? prompt : "instruction");
			goto out;
		} else if (!prompt && !json_object_get(r, resp ? resp : "output") && !json_object_get(r, "text") &&
			   !json_object_get(r, "chosen")) {
			am_fmt(err, errsize, "record %zu lacks '%s'", i, resp ? resp : "output");
			goto out;
		}
	}
	count = (long)json_array_size(records);
out:
	json_decref(records);
	return count;
}

/* Total records of the comma-separated dataset names, or -1 with err. */
static long dataset_records(const char *names, const char *dir, char *err, size_t errsize)
{
	char path[4200];
	am_fmt(path, sizeof path, "%s/dataset_info.json", dir);
	json_t *info_json = json_load_file(path, 0, NULL);
	if (!info_json) {
		am_fmt(err, errsize, "Cannot open %s due to [Errno 2] No such file or directory.", path);
		return -1;
	}
	long total = 0;
	char *copy = am_strdup(names), *save = NULL;
	for (char *n = strtok_r(copy, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
		while (*n == ' ')
			n++;
		json_t *d = json_object_get(info_json, n);
		if (!d) {
			am_fmt(err, errsize, "Undefined dataset %s in dataset_info.json.", n);
			total = -1;
			break;
		}
		const char *fname = json_string_value(json_object_get(d, "file_name"));
		if (!fname || strstr(fname, "..")) {
			am_fmt(err, errsize, "dataset %s has no usable file_name", n);
			total = -1;
			break;
		}
		am_fmt(path, sizeof path, "%s/%s", dir, fname);
		long c = count_records(path, json_string_value(json_object_get(d, "formatting")),
				       json_object_get(d, "columns"), err, errsize);
		if (c < 0) {
			total = -1;
			break;
		}
		total += c;
	}
	free(copy);
	json_decref(info_json);
	return total;
}

/* ---- outputs ---- */

struct arch {
	int layers, hidden, heads, kv_heads, intermediate, vocab;
	char model_type[64];
};

static void read_arch(const char *model, struct arch *a)
{
	*a = (struct arch){ 28, 3584, 28, 4, 18944, 152064, "qwen2" };
	char path[4200];
	am_fmt(path, sizeof path, "%s/config.json", model);
	json_t *c = json_load_file(path, 0, NULL);
	if (!c)
		return;
#define GET(k, f) if (json_is_integer(json_object_get(c, k))) a->f = (int)json_integer_value(json_object_get(c, k))
	GET("num_hidden_layers", layers);
	GET("hidden_size", hidden);
	GET("num_attention_heads", heads);
	GET("num_key_value_heads", kv_heads);
	GET("intermediate_size", intermediate);
	GET("vocab_size", vocab);
#undef GET
	if (json_string_value(json_object_get(c, "model_type")))
		am_strlcpy(a->model_type, json_string_value(json_object_get(c, "model_type")), sizeof a->model_type);
	json_decref(c);
}

static int write_lora(const char *dir, json_t *cfg, const struct arch *a)
{
	int r = (int)num(cfg, "lora_rank", 8);
	static const char *const mods[] = { "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj" };
	int head_dim = a->hidden / (a->heads ? a->heads : 1);
	int64_t out_dim[] = { a->hidden, (int64_t)a->kv_heads * head_dim, (int64_t)a->kv_heads * head_dim, a->hidden,
			      a->intermediate, a->intermediate, a->hidden };
	int64_t in_dim[] = { a->hidden, a->hidden, a->hidden, a->hidden, a->hidden, a->hidden, a->intermediate };
	const char *target = str(cfg, "lora_target", "all");
	size_t n = 0, cap = (size_t)a->layers * 14;
	struct sim_tensor *t = am_calloc(cap ? cap : 1, sizeof *t);
	json_t *targets = json_array();
	for (int m = 0; m < 7; m++) {
		if (strcmp(target, "all") && !strstr(target, mods[m]))
			continue;
		json_array_append_new(targets, json_string(mods[m]));
		for (int l = 0; l < a->layers; l++) {
			const char *blk = m < 4 ? "self_attn" : "mlp";
			am_fmt(t[n].name, sizeof t[n].name, "base_model.model.model.layers.%d.%s.%s.lora_A.weight", l, blk, mods[m]);
			t[n].dtype = "F32";
			t[n].ndim = 2;
			t[n].shape[0] = r;
			t[n].shape[1] = in_dim[m];
			n++;
			am_fmt(t[n].name, sizeof t[n].name, "base_model.model.model.layers.%d.%s.%s.lora_B.weight", l, blk, mods[m]);
			t[n].dtype = "F32";
			t[n].ndim = 2;
			t[n].shape[0] = out_dim[m];
			t[n].shape[1] = r;
			n++;
		}
	}
	char path[4200];
	am_fmt(path, sizeof path, "%s/adapter_model.safetensors", dir);
	int rc = sim_write_safetensors(path, t, n);
	free(t);
	json_t *ac = json_pack("{s:s,s:s,s:i,s:f,s:f,s:o,s:s,s:s,s:b,s:b}", "peft_type", "LORA", "base_model_name_or_path",
			       str(cfg, "model_name_or_path", ""), "r", r, "lora_alpha", num(cfg, "lora_alpha", 2.0 * r),
			       "lora_dropout", num(cfg, "lora_dropout", 0), "target_modules", targets, "task_type",
			       "CAUSAL_LM", "bias", "none", "inference_mode", 1, "use_dora", flag(cfg, "use_dora"));
	am_fmt(path, sizeof path, "%s/adapter_config.json", dir);
	rc |= sim_write_json(path, ac);
	json_decref(ac);
	return rc;
}

/* A full model: the base's config and a weight file of the base's size. */
static int write_full(const char *dir, const char *base, const struct arch *a)
{
	char from[4200], to[4200];
	am_fmt(from, sizeof from, "%s/config.json", base);
	am_fmt(to, sizeof to, "%s/config.json", dir);
	if (sim_copy_file(from, to) != 0) {
		json_t *c = json_pack("{s:[s],s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:s}", "architectures", "Qwen2ForCausalLM",
				      "model_type", a->model_type, "num_hidden_layers", a->layers, "hidden_size", a->hidden,
				      "num_attention_heads", a->heads, "num_key_value_heads", a->kv_heads,
				      "intermediate_size", a->intermediate, "vocab_size", a->vocab, "torch_dtype", "bfloat16");
		sim_write_json(to, c);
		json_decref(c);
	}
	static const char *const tok[] = { "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
					   "generation_config.json", "special_tokens_map.json" };
	for (size_t i = 0; i < sizeof tok / sizeof tok[0]; i++) {
		am_fmt(from, sizeof from, "%s/%s", base, tok[i]);
		am_fmt(to, sizeof to, "%s/%s", dir, tok[i]);
		sim_copy_file(from, to);
	}
	struct sim_tensor t[2 + 9 * 64];
	size_t n = 0;
	am_strlcpy(t[n].name, "model.embed_tokens.weight", sizeof t[n].name);
	t[n] = (struct sim_tensor){ .dtype = "BF16", .ndim = 2, .shape = { a->vocab, a->hidden } };
	am_strlcpy(t[n++].name, "model.embed_tokens.weight", sizeof t[0].name);
	int head_dim = a->hidden / (a->heads ? a->heads : 1);
	for (int l = 0; l < a->layers && l < 64; l++) {
		struct { const char *name; int64_t o, i; } w[] = {
			{ "self_attn.q_proj", a->hidden, a->hidden },
			{ "self_attn.k_proj", (int64_t)a->kv_heads * head_dim, a->hidden },
			{ "self_attn.v_proj", (int64_t)a->kv_heads * head_dim, a->hidden },
			{ "self_attn.o_proj", a->hidden, a->hidden },
			{ "mlp.gate_proj", a->intermediate, a->hidden },
			{ "mlp.up_proj", a->intermediate, a->hidden },
			{ "mlp.down_proj", a->hidden, a->intermediate },
		};
		for (size_t k = 0; k < 7; k++) {
			t[n] = (struct sim_tensor){ .dtype = "BF16", .ndim = 2, .shape = { w[k].o, w[k].i } };
			am_fmt(t[n].name, sizeof t[n].name, "model.layers.%d.%s.weight", l, w[k].name);
			n++;
		}
	}
	t[n] = (struct sim_tensor){ .dtype = "BF16", .ndim = 2, .shape = { a->vocab, a->hidden } };
	am_strlcpy(t[n++].name, "lm_head.weight", sizeof t[0].name);
	am_fmt(to, sizeof to, "%s/model.safetensors", dir);
	return sim_write_safetensors(to, t, n);
}

/* ---- the run ---- */

struct run {
	json_t *cfg;
	const char *out;
	char method[16];
	long total, start, samples;
	int world, logging, saving, eval_steps;
	double lr, warmup;
	double epochs;
	long per_epoch;
	json_t *history;
	uint64_t started_ns;
	int step_ms;
	FILE *tlog;
};

static double lr_at(const struct run *r, long step)
{
	long warm = (long)ceil(r->warmup * (double)r->total);
	if (num(r->cfg, "warmup_steps", 0) > 0)
		warm = (long)num(r->cfg, "warmup_steps", 0);
	if (warm > 0 && step < warm)
		return r->lr * (double)step / (double)warm;
	double prog = r->total > warm ? (double)(step - warm) / (double)(r->total - warm) : 1.0;
	const char *sched = str(r->cfg, "lr_scheduler_type", "linear");
	if (!strcmp(sched, "cosine"))
		return r->lr * 0.5 * (1.0 + cos(M_PI * prog));
	if (!strcmp(sched, "constant") || !strcmp(sched, "constant_with_warmup"))
		return r->lr;
	return r->lr * (1.0 - prog);
}

static double loss_at(const struct run *r, long step)
{
	uint64_t h = sim_hash(&step, sizeof step, 99);
	double noise = ((double)(h % 1000) / 1000.0 - 0.5) * 0.12;
	return 0.55 + 1.75 * exp(-3.0 * (double)step / (double)(r->total ? r->total : 1)) + noise;
}

static void checkpoint(struct run *r, long step, const struct arch *a)
{
	char dir[4200], path[4300];
	am_fmt(dir, sizeof dir, "%s/checkpoint-%ld", r->out, step);
	sim_mkdirs(dir);
	if (!strcmp(r->method, "lora"))
		write_lora(dir, r->cfg, a);
	else
		write_full(dir, str(r->cfg, "model_name_or_path", ""), a);
	json_t *st = json_pack("{s:I,s:I,s:f,s:O,s:I,s:I}", "global_step", (json_int_t)step, "max_steps",
			       (json_int_t)r->total, "epoch", (double)step / (double)(r->per_epoch ? r->per_epoch : 1),
			       "log_history", r->history, "logging_steps", (json_int_t)r->logging, "save_steps",
			       (json_int_t)r->saving);
	am_fmt(path, sizeof path, "%s/trainer_state.json", dir);
	sim_write_json(path, st);
	json_decref(st);
	info("trainer.py:3984", "Saving model checkpoint to %s", dir);
}

/* The last checkpoint-N in out (0 when none); fills its log history. */
static long last_checkpoint(const char *out, json_t **history)
{
	DIR *d = opendir(out);
	long best = 0;
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		if (strncmp(e->d_name, "checkpoint-", 11) != 0)
			continue;
		long n = strtol(e->d_name + 11, &end, 10);
		if (!*end && n > best)
			best = n;
	}
	closedir(d);
	if (best) {
		char path[4300];
		am_fmt(path, sizeof path, "%s/checkpoint-%ld/trainer_state.json", out, best);
		json_t *st = json_load_file(path, 0, NULL);
		json_t *h = json_object_get(st, "log_history");
		if (json_is_array(h)) {
			json_decref(*history);
			*history = json_incref(h);
		}
		json_decref(st);
	}
	return best;
}

static void progress_bar(const struct run *r, long step)
{
	double el = (double)(am_now_ns() - r->started_ns) / 1e9;
	long done = step - r->start;
	double per = done > 0 ? el / (double)done : 0;
	int pct = (int)(100.0 * (double)step / (double)r->total);
	char bar[11];
	memset(bar, ' ', 10);
	bar[10] = '\0';
	for (int i = 0; i < pct / 10; i++)
		bar[i] = '#';
	long rem = (long)(per * (double)(r->total - step));
	printf("%3d%%|%s| %ld/%ld [%02ld:%02ld<%02ld:%02ld, %.2fs/it]\n", pct, bar, step, r->total, (long)el / 60,
	       (long)el % 60, rem / 60, rem % 60, per);
	fflush(stdout);
}

static void log_step(struct run *r, long step, int eval)
{
	double el = (double)(am_now_ns() - r->started_ns) / 1e9;
	long done = step - r->start;
	double rem = done > 0 ? el / (double)done * (double)(r->total - step) : 0;
	char e1[48], e2[48];
	timedelta((long)el, e1, sizeof e1);
	timedelta((long)rem, e2, sizeof e2);
	double epoch = (double)step / (double)(r->per_epoch ? r->per_epoch : 1);
	double pct = round(10000.0 * (double)step / (double)r->total) / 100.0;
	json_t *line;
	if (eval) {
		double el_loss = loss_at(r, step) + 0.08;
		line = json_pack("{s:I,s:I,s:f,s:f,s:f,s:s,s:s}", "current_steps", (json_int_t)step, "total_steps",
				 (json_int_t)r->total, "eval_loss", round(el_loss * 10000) / 10000, "epoch",
				 round(epoch * 100) / 100, "percentage", pct, "elapsed_time", e1, "remaining_time", e2);
		say("{'eval_loss': %.4f, 'eval_runtime': 0.5, 'epoch': %.2f}", el_loss, epoch);
		json_array_append_new(r->history, json_pack("{s:f,s:f,s:I}", "eval_loss", el_loss, "epoch", epoch, "step",
							    (json_int_t)step));
	} else {
		double loss = loss_at(r, step), lr = lr_at(r, step);
		line = json_pack("{s:I,s:I,s:f,s:f,s:f,s:f,s:s,s:s}", "current_steps", (json_int_t)step, "total_steps",
				 (json_int_t)r->total, "loss", round(loss * 10000) / 10000, "lr", lr, "epoch",
				 round(epoch * 100) / 100, "percentage", pct, "elapsed_time", e1, "remaining_time", e2);
		say("{'loss': %.4f, 'grad_norm': %.4f, 'learning_rate': %.6g, 'epoch': %.2f}", loss, 0.3 + loss * 0.2, lr,
		    epoch);
		json_array_append_new(r->history, json_pack("{s:f,s:f,s:f,s:I}", "loss", loss, "learning_rate", lr, "epoch",
							    epoch, "step", (json_int_t)step));
	}
	char *s = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
	/* one write per line, so a reader never sees half a line */
	fprintf(r->tlog, "%s\n", s);
	fflush(r->tlog);
	free(s);
	json_decref(line);
}


static int env_int(const char *name, int dflt)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return dflt;
	char *end;
	long x = strtol(v, &end, 10);
	return *end ? dflt : (int)x;
}

/* LLaMA-Factory refuses keys its argument classes do not know. */
static int unknown_keys(json_t *cfg, int allow_extra)
{
	const char *k;
	json_t *v;
	json_object_foreach(cfg, k, v) {
		int ok = 0;
		for (const char *const *p = known_keys; *p; p++)
			ok |= !strcmp(*p, k);
		if (!ok && !allow_extra) {
			char m[300];
			am_fmt(m, sizeof m, "['%s']", k);
			return die("Some keys are not used by the HfArgumentParser: %s", m);
		}
	}
	return 0;
}

/* The command's config (CONFIG plus key=value overrides), or NULL having
 * printed why. */
static json_t *cli_config(const char *verb, int argc, char **argv)
{
	if (argc < 1) {
		fprintf(stderr, "usage: llamafactory-cli %s CONFIG [key=value ...]\n", verb);
		return NULL;
	}
	char err[1024];
	json_t *cfg = sim_config_load(argv[0], argv + 1, argc - 1, err, sizeof err);
	if (!cfg)
		die("%s", err);
	return cfg;
}

int sim_train_main(int argc, char **argv)
{
	json_t *cfg = cli_config("train", argc, argv);
	if (!cfg)
		return 1;
	int rc = 1;
	struct run r = { 0 };
	r.cfg = cfg;
	r.history = json_array();
	if ((rc = unknown_keys(cfg, getenv("ALLOW_EXTRA_ARGS") != NULL)) != 0)
		goto out;
	rc = 1;
	if (!str(cfg, "model_name_or_path", NULL)) {
		rc = die("Please provide `model_name_or_path`.%s", "");
		goto out;
	}
	if (!flag(cfg, "do_train")) {
		rc = die("Training is disabled: set `do_train: true`.%s", "");
		goto out;
	}
	const char *dataset = str(cfg, "dataset", NULL);
	if (!dataset) {
		rc = die("Please specify dataset for training.%s", "");
		goto out;
	}
	r.out = str(cfg, "output_dir", NULL);
	if (!r.out) {
		rc = die("Please specify `output_dir`.%s", "");
		goto out;
	}
	am_strlcpy(r.method, str(cfg, "finetuning_type", "lora"), sizeof r.method);
	if (strcmp(r.method, "lora") && strcmp(r.method, "full") && strcmp(r.method, "freeze")) {
		rc = die("Unknown finetuning_type: %s.", r.method);
		goto out;
	}
	if (json_object_get(cfg, "quantization_bit") && !json_is_null(json_object_get(cfg, "quantization_bit")) &&
	    strcmp(r.method, "lora")) {
		rc = die("Quantization is only compatible with the LoRA method.%s", "");
		goto out;
	}
	if (json_object_get(cfg, "val_size") && num(cfg, "val_size", 0) > 0 && json_object_get(cfg, "eval_dataset") &&
	    !json_is_null(json_object_get(cfg, "eval_dataset"))) {
		rc = die("Cannot specify `val_size` if `eval_dataset` is not None.%s", "");
		goto out;
	}
	if (flag(cfg, "bf16") && flag(cfg, "fp16")) {
		rc = die("Cannot use both fp16 and bf16.%s", "");
		goto out;
	}
	const char *ddir = str(cfg, "dataset_dir", "data");
	char err[1024];
	long records = dataset_records(dataset, ddir, err, sizeof err);
	if (records < 0) {
		rc = die("%s", err);
		goto out;
	}
	long max_samples = (long)num(cfg, "max_samples", 0);
	if (max_samples > 0 && records > max_samples)
		records = max_samples;
	double val = num(cfg, "val_size", 0);
	long n_eval = val >= 1 ? (long)val : (long)ceil(val * (double)records);
	long n_train = records - n_eval;
	if (n_train < 1) {
		rc = die("The dataset is empty after splitting off the validation set.%s", "");
		goto out;
	}

	/* LlamaBoard: SIGABRT stops at the next step and still saves */
	const char *workdir = getenv("LLAMABOARD_WORKDIR");
	int board = getenv("LLAMABOARD_ENABLED") && workdir;
	if (board) {
		signal(SIGABRT, on_sigabrt);
		sim_mkdirs(workdir);
		char p[4200];
		am_fmt(p, sizeof p, "%s/running_log.txt", workdir);
		g_running_log = fopen(p, "w");
	}
	r.world = sim_visible_gpus(1);
	if (r.world < 1) {
		rc = die("No GPU is visible (CUDA_VISIBLE_DEVICES is empty).%s", "");
		goto out;
	}
	if (r.world > 1 || getenv("FORCE_TORCHRUN")) {
		char m[64];
		am_fmt(m, sizeof m, "%d", r.world);
		info("cli.py:104", "Initializing %s distributed tasks at: 127.0.0.1:29500", m);
	}
	info("parser.py:406", "Process rank: 0, world size: %s, device: cuda:0, distributed training: True, compute dtype: torch.bfloat16",
	     r.world > 1 ? "multi" : "1");
	info("loader.py:143", "Loading dataset %s...", dataset);
	int bs = (int)num(cfg, "per_device_train_batch_size", 8);
	int ga = (int)num(cfg, "gradient_accumulation_steps", 1);
	if (bs < 1 || ga < 1) {
		rc = die("per_device_train_batch_size and gradient_accumulation_steps must be positive.%s", "");
		goto out;
	}
	long batches = (n_train + (long)bs * r.world - 1) / ((long)bs * r.world);
	r.per_epoch = batches / ga > 0 ? batches / ga : 1;
	r.epochs = num(cfg, "num_train_epochs", 3.0);
	long max_steps = (long)num(cfg, "max_steps", -1);
	r.total = max_steps > 0 ? max_steps : (long)ceil(r.epochs * (double)r.per_epoch);
	if (r.total < 1)
		r.total = 1;
	r.logging = (int)num(cfg, "logging_steps", 500);
	r.saving = (int)num(cfg, "save_steps", 500);
	r.eval_steps = val > 0 ? (int)num(cfg, "eval_steps", r.saving) : 0;
	r.lr = num(cfg, "learning_rate", 5e-5);
	r.warmup = num(cfg, "warmup_ratio", 0);
	r.step_ms = env_int("AIMAAS_SIM_STEP_MS", 50);
	int fail_at = env_int("AIMAAS_SIM_FAIL_AT_STEP", 0);
	if (r.logging < 1)
		r.logging = 1;

	if (sim_mkdirs(r.out) != 0) {
		rc = die("cannot create output_dir %s", r.out);
		goto out;
	}
	char tl[4200];
	am_fmt(tl, sizeof tl, "%s/trainer_log.jsonl", r.out);
	int overwrite = flag(cfg, "overwrite_output_dir");
	if (!overwrite)
		r.start = last_checkpoint(r.out, &r.history);
	if (overwrite)
		unlink(tl);
	r.tlog = fopen(tl, r.start ? "a" : overwrite ? "w" : "a");
	if (!r.tlog) {
		rc = die("cannot write %s", tl);
		goto out;
	}
	struct arch a;
	read_arch(str(cfg, "model_name_or_path", ""), &a);
	say("***** Running training *****");
	say("  Num examples = %ld", n_train);
	say("  Num Epochs = %g", r.epochs);
	say("  Instantaneous batch size per device = %d", bs);
	say("  Total train batch size (w. parallel, distributed & accumulation) = %d", bs * ga * r.world);
	say("  Gradient Accumulation steps = %d", ga);
	say("  Total optimization steps = %ld", r.total);
	/* a harmless warning with the word in it: a job's fate is its exit status */
	say("[WARNING|logging.py:328] UserWarning: ErrorHandler is deprecated and has no effect.");
	if (r.start) {
		char m[64];
		am_fmt(m, sizeof m, "%ld", r.start);
		info("trainer.py:2530", "Resuming training from checkpoint-%s", m);
	}
	r.started_ns = am_now_ns();
	long step = r.start;
	int stopped = 0;
	while (step < r.total) {
		if (g_abort) {
			stopped = 1;
			info("callbacks.py:255", "Training was aborted by the user at step %s; saving.", "");
			break;
		}
		struct timespec ts = { r.step_ms / 1000, (long)(r.step_ms % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !g_abort)
			;
		step++;
		if (fail_at && step == fail_at) {
			const char *m = getenv("AIMAAS_SIM_FAIL_MESSAGE");
			fprintf(stderr, "Traceback (most recent call last):\n  File \"transformers/trainer.py\", line 2622, in _inner_training_loop\n"
					"torch.OutOfMemoryError: %s\n",
				m ? m : "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 10.75 GiB "
					 "of which 1.12 GiB is free.");
			say("torch.OutOfMemoryError: %s", m ? m : "CUDA out of memory. Tried to allocate 2.00 GiB.");
			fclose(r.tlog);
			r.tlog = NULL;
			rc = 1;
			goto out;
		}
		if (step % r.logging == 0 || step == r.total)
			log_step(&r, step, 0);
		if (r.eval_steps > 0 && step % r.eval_steps == 0)
			log_step(&r, step, 1);
		if (step % 10 == 0 || step == r.total)
			progress_bar(&r, step);
		if (r.saving > 0 && step % r.saving == 0 && step < r.total)
			checkpoint(&r, step, &a);
	}
	/* the end of a run: weights, results, state */
	double runtime = (double)(am_now_ns() - r.started_ns) / 1e9;
	double train_loss = loss_at(&r, step > 0 ? step / 2 : 0);
	double epoch = (double)step / (double)r.per_epoch;
	info("trainer.py:3984", "Saving model checkpoint to %s", r.out);
	if (!strcmp(r.method, "lora"))
		write_lora(r.out, cfg, &a);
	else
		write_full(r.out, str(cfg, "model_name_or_path", ""), &a);
	json_t *res = json_pack("{s:f,s:I,s:f,s:f,s:f,s:f}", "epoch", epoch, "total_flos", (json_int_t)(step * 1000000),
				"train_loss", train_loss, "train_runtime", runtime, "train_samples_per_second",
				runtime > 0 ? (double)(step - r.start) * bs * ga * r.world / runtime : 0,
				"train_steps_per_second", runtime > 0 ? (double)(step - r.start) / runtime : 0);
	char path[4300];
	am_fmt(path, sizeof path, "%s/train_results.json", r.out);
	sim_write_json(path, res);
	am_fmt(path, sizeof path, "%s/all_results.json", r.out);
	sim_write_json(path, res);
	json_decref(res);
	json_t *st = json_pack("{s:I,s:I,s:f,s:O,s:I,s:I,s:b}", "global_step", (json_int_t)step, "max_steps",
			       (json_int_t)r.total, "epoch", epoch, "log_history", r.history, "logging_steps",
			       (json_int_t)r.logging, "save_steps", (json_int_t)r.saving, "should_training_stop", 1);
	am_fmt(path, sizeof path, "%s/trainer_state.json", r.out);
	sim_write_json(path, st);
	json_decref(st);
	am_fmt(path, sizeof path, "%s/README.md", r.out);
	FILE *card = fopen(path, "w");
	if (card) {
		fprintf(card, "---\nlibrary_name: peft\nbase_model: %s\ntags:\n- llama-factory\n- %s\n---\n\n"
			      "# %s\n\nFine-tuned with %s on %s (simulated by aimaas-sim: the weights are empty).\n",
			str(cfg, "model_name_or_path", ""), r.method, r.out, r.method, dataset);
		fclose(card);
	}
	say("***** train metrics *****");
	say("  epoch                    = %.4f", epoch);
	say("  train_loss               = %.4f", train_loss);
	say("  train_runtime            = %.2f", runtime);
	if (stopped)
		say("Training stopped early at step %ld of %ld; the model was saved.", step, r.total);
	rc = 0;
out:
	if (r.tlog)
		fclose(r.tlog);
	if (g_running_log)
		fclose(g_running_log);
	g_running_log = NULL;
	json_decref(r.history);
	json_decref(cfg);
	return rc;
}

int sim_export_main(int argc, char **argv)
{
	json_t *cfg = cli_config("export", argc, argv);
	if (!cfg)
		return 1;
	int rc = 1;
	if ((rc = unknown_keys(cfg, 0)) != 0)
		goto out;
	rc = 1;
	const char *model = str(cfg, "model_name_or_path", NULL), *dir = str(cfg, "export_dir", NULL);
	if (!model || !dir) {
		rc = die("Please specify `model_name_or_path` and `export_dir`.%s", "");
		goto out;
	}
	const char *adapter = str(cfg, "adapter_name_or_path", NULL);
	if (adapter) {
		char p[4200];
		am_fmt(p, sizeof p, "%s/adapter_config.json", adapter);
		if (access(p, R_OK) != 0) {
			rc = die("Can't find 'adapter_config.json' at '%s'", adapter);
			goto out;
		}
	}
	if (sim_mkdirs(dir) != 0) {
		rc = die("cannot create export_dir %s", dir);
		goto out;
	}
	struct arch a;
	read_arch(model, &a);
	info("tuner.py:135", "Merging adapter into %s...", model);
	if (write_full(dir, model, &a) != 0) {
		rc = die("cannot write the model to %s", dir);
		goto out;
	}
	info("tuner.py:160", "Model exported to %s.", dir);
	rc = 0;
out:
	json_decref(cfg);
	return rc;
}
