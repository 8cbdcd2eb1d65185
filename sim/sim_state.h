/* sim_state: what one simulated vLLM server holds, shared by the files of
 * `aimaas-sim serve` (sim_serve.c: start-up, routing, generation and
 * streaming; sim_pool.c: pooling and tokenizer endpoints). One loop, one
 * thread. */
#ifndef SIM_STATE_H
#define SIM_STATE_H

#include <event2/event.h>
#include <jansson.h>
#include <stdint.h>

#include "base/am_buf.h"
#include "http/am_http.h"
#include "sim_opts.h"

struct sim_hist {
	const double *bounds;
	int nb;
	uint64_t counts[32];
	double sum;
	uint64_t count;
};

struct sim_req;

struct sim {
	struct sim_opts o;
	struct event_base *base;
	struct am_http_server *http;
	int ready;
	int stopping;
	struct event *crash_timer;
	int kind;                    /* enum sim_kind */
	int max_model_len;
	int embed_dim;
	int attention_heads;         /* from config.json, 0 unknown */
	int multimodal;              /* takes image/audio/video parts (a vision_config, a *VL* architecture) */
	const char *name;            /* the first served name: responses and metrics carry it */
	char name_json[300];         /* name, escaped for JSON */
	long created;
	struct sim_lora loras[SIM_MAX_LORAS];
	int nloras;
	int runtime_lora;            /* VLLM_ALLOW_RUNTIME_LORA_UPDATING=True */
	uint64_t counter;            /* request ids */
	uint64_t kv_capacity;        /* tokens */
	/* scheduling: at most max_num_seqs run, the rest wait in order */
	struct sim_req *running, *wait_head, *wait_tail;
	int nrunning, nwaiting;
	/* metrics */
	uint64_t prompt_tokens, gen_tokens, success_stop, success_length, success_abort;
	uint64_t prefix_queries, prefix_hits;
	uint64_t seen_prefix[64];
	int seen_pos;
	struct sim_hist ttft, itl, e2e, queue;
};

/* Answers {"error":{"message","type","param","code"}} as vLLM 0.10+ does. */
void sim_error(struct am_http_req *req, int status, const char *type, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The same with "param" naming the field (NULL: null). */
void sim_error_param(struct am_http_req *req, int status, const char *type, const char *param, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
void sim_reply_json(struct am_http_req *req, int status, json_t *v);
/* Appends s JSON-escaped (without quotes). */
void sim_json_escape(struct am_buf *b, const char *s, size_t n);
/* 1 when name is the served model (any of its names) or a loaded adapter;
 * NULL/absent means the default model. */
int sim_model_known(struct sim *s, const char *name);
/* The name an answer carries, as vLLM's models.model_name(): the adapter
 * the request names, else the first served name (not the alias asked for). */
const char *sim_model_name(const struct sim *s, json_t *body);
/* Checks the request's "model" and answers 404 when unknown. 0 or -1. */
int sim_check_model(struct sim *s, struct am_http_req *req, json_t *body);

/* sim_pool.c */
void sim_pool_embeddings(struct sim *s, struct am_http_req *req, json_t *body);
void sim_pool_rerank(struct sim *s, struct am_http_req *req, json_t *body);
void sim_pool_score(struct sim *s, struct am_http_req *req, json_t *body);
void sim_pool_tokenize(struct sim *s, struct am_http_req *req, json_t *body);
void sim_pool_detokenize(struct sim *s, struct am_http_req *req, json_t *body);
/* The chat template applied to messages, as the text the model would read.
 * An image, audio or video part for a model that is not multimodal fails
 * with vLLM's "MODEL is not a multimodal model". */
int sim_chat_prompt(const struct sim *s, json_t *messages, struct am_buf *out, struct am_buf *last_user, char *err,
		    size_t errsize);

#endif
