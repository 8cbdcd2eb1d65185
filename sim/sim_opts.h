/* sim_opts: the command line of `aimaas-sim serve`, parsed like vLLM's
 * argparse does it (--flag value, --flag=value, nargs='+' lists, the short
 * aliases), refusing unknown flags with usage text and exit status 2. With
 * `--sim-flavor sglang|llama.cpp` first, it takes that engine's command
 * line instead (`python3 -m sglang.launch_server ...`'s arguments after
 * `python3`, llama-server's), as aimaas builds them, read into the same
 * options. */
#ifndef SIM_OPTS_H
#define SIM_OPTS_H

#include <stddef.h>

#define SIM_MAX_NAMES 8
#define SIM_MAX_LORAS 32

enum sim_kind { SIM_CHAT, SIM_EMBED, SIM_RERANK };
enum sim_mode { SIM_RANDOM, SIM_ECHO };
/* The engine the simulator plays: its command line and its /metrics names. */
enum sim_flavor { SIM_FLAVOR_VLLM, SIM_FLAVOR_SGLANG, SIM_FLAVOR_LLAMACPP };

struct sim_lora {
	char name[128];
	char path[1024];
	char base[128];
};

struct sim_opts {
	enum sim_flavor flavor;
	/* vLLM's */
	const char *model;
	const char *host;
	int port;
	const char *names[SIM_MAX_NAMES];
	int nnames;
	int tp, pp, dp;
	double gpu_memory_utilization;
	int max_model_len;          /* 0: from the model's config, else 4096 */
	int max_num_seqs;
	const char *dtype, *quantization, *runner, *convert, *chat_template, *api_key;
	const char *tokenizer, *download_dir, *distributed_executor_backend;
	int trust_remote_code, enable_lora, max_loras, max_lora_rank, enable_prefix_caching, enforce_eager;
	long seed;
	int disable_access_log;
	struct sim_lora loras[SIM_MAX_LORAS];
	int nloras;
	/* the simulator's own */
	int ttft_ms, itl_ms, startup_ms;
	int lora_load_ms;          /* a runtime adapter load's time (vLLM reads its weights) */
	double failure_rate;
	enum sim_mode mode;
	int kind;                   /* -1: from --runner/--convert or the model's config */
	int embedding_dim;          /* 0: the model's hidden size, else 1024 */
	int output_tokens;
	int max_waiting;
	const char *startup_error;  /* print this as the fatal cause and exit 1 */
	int crash_after_ms;         /* exit 1 this long after becoming ready */
	char config_key[256];       /* SGLang: the api-key of its --config file (api_key points here) */
};

/* 0 on success; on a bad or unknown flag prints vLLM-style usage to stderr
 * and returns the exit status (2). */
int sim_opts_parse(int argc, char **argv, struct sim_opts *o);
void sim_opts_usage(void);

#endif
