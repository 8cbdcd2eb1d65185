/* sim_serve: `aimaas-sim serve`, the simulated vLLM server. */
#include "sim_serve.h"

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "base/am_json.h"
#include "base/am_mem.h"
#include "base/am_time.h"
#include "sim_config.h"
#include "sim_metrics.h"
#include "sim_resp.h"
#include "sim_schema.h"
#include "sim_state.h"
#include "sim_text.h"

#define VLLM_VERSION "0.11.0"

static const double ttft_b[] = { 0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0 };
static const double itl_b[] = { 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0 };
static const double e2e_b[] = { 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0 };

/* ---- logging in vLLM's shape ---- */

static void vlog(const char *level, const char *file, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void vlog(const char *level, const char *file, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	time_t t = time(NULL);
	struct tm tm;
	localtime_r(&t, &tm);
	fprintf(stderr, "%s %02d-%02d %02d:%02d:%02d [%s] %s\n", level, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		tm.tm_sec, file, msg);
}

/* ---- helpers shared with sim_pool.c ---- */

void sim_json_escape(struct am_buf *b, const char *s, size_t n)
{
	am_json_escape(b, s, n);
}

void sim_reply_json(struct am_http_req *req, int status, json_t *v)
{
	/* 9 significant digits round-trip a float32 (embeddings, scores) */
	char *s = v ? json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
	if (!s) { /* never strlen(NULL): a value jansson could not build or dump */
		const char *e = "{\"error\":{\"message\":\"could not encode the answer\",\"type\":\"InternalServerError\","
				"\"param\":null,\"code\":500}}";
		am_http_respond(req, 500, "application/json", e, strlen(e));
		return;
	}
	am_http_respond(req, status, "application/json", s, strlen(s));
	free(s);
}

static void verror(struct am_http_req *req, int status, const char *type, const char *param, const char *fmt,
		   va_list ap)
{
	char msg[1024];
	int n = vsnprintf(msg, sizeof msg, fmt, ap);
	if (n >= (int)sizeof msg) { /* cut: never leave half a UTF-8 character */
		size_t len = sizeof msg - 1;
		size_t i = len;
		while (i > 0 && ((unsigned char)msg[i - 1] & 0xC0) == 0x80)
			i--;
		if (i > 0 && (unsigned char)msg[i - 1] >= 0xC0) {
			unsigned char lead = (unsigned char)msg[i - 1];
			size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
			if (len - (i - 1) < want)
				msg[i - 1] = '\0';
		}
	}
	json_t *m = json_string(msg);
	json_t *e = json_pack("{s:{s:o,s:s,s:o,s:i}}", "error", "message", m ? m : json_string("invalid text in the error"),
			      "type", type, "param", param ? json_string(param) : json_null(), "code", status);
	sim_reply_json(req, status, e);
	json_decref(e);
}

void sim_error(struct am_http_req *req, int status, const char *type, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verror(req, status, type, NULL, fmt, ap);
	va_end(ap);
}

void sim_error_param(struct am_http_req *req, int status, const char *type, const char *param, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verror(req, status, type, param, fmt, ap);
	va_end(ap);
}

int sim_model_known(struct sim *s, const char *name)
{
	if (!name)
		return 1;
	for (int i = 0; i < s->o.nnames; i++)
		if (strcmp(s->o.names[i], name) == 0)
			return 1;
	for (int i = 0; i < s->nloras; i++)
		if (strcmp(s->loras[i].name, name) == 0)
			return 1;
	return 0;
}

const char *sim_model_name(const struct sim *s, json_t *body)
{
	const char *m = json_string_value(json_object_get(body, "model"));
	for (int i = 0; m && i < s->nloras; i++)
		if (!strcmp(s->loras[i].name, m))
			return s->loras[i].name;
	return s->name;
}

int sim_check_model(struct sim *s, struct am_http_req *req, json_t *body)
{
	json_t *m = json_object_get(body, "model");
	if (m && !json_is_null(m) && !json_is_string(m)) {
		sim_error(req, 400, "BadRequestError", "'model' must be a string");
		return -1;
	}
	if (m && json_is_string(m) && !sim_model_known(s, json_string_value(m))) {
		sim_error_param(req, 404, "NotFoundError", "model", "The model `%s` does not exist.", json_string_value(m));
		return -1;
	}
	return 0;
}

static void hist_observe(struct sim_hist *h, double v)
{
	int i = 0;
	while (i < h->nb && v > h->bounds[i])
		i++;
	h->counts[i]++;
	h->sum += v;
	h->count++;
}

/* ---- generation requests ---- */

enum sim_api { SIM_API_COMPLETIONS, SIM_API_CHAT, SIM_API_RESPONSES };

struct sim_req {
	struct sim *s;
	struct am_http_req *http;
	enum sim_api api;
	struct sim_resp *resp;    /* SIM_API_RESPONSES: the response being built */
	int chat, stream, include_usage, running;
	char id[64];
	char model_json[300];     /* the "model" to answer with, escaped */
	struct sim_tokens out;    /* what will be generated */
	size_t sent;
	size_t prompt_tokens;
	const char *finish;       /* stop, length, tool_calls */
	char *tool_name, *tool_args;
	char tool_id[48];
	uint64_t arrival_ns, start_ns, first_ns, last_ns;
	struct event *timer;
	struct sim_req *prev, *next;
};

static void req_free(struct sim_req *r)
{
	if (r->timer)
		event_free(r->timer);
	sim_tokens_free(&r->out);
	if (r->resp) {
		sim_resp_free(r->resp);
		free(r->resp);
	}
	free(r->tool_name);
	free(r->tool_args);
	free(r);
}

static void start_next(struct sim *s);

static void unlink_req(struct sim_req *r)
{
	struct sim *s = r->s;
	if (r->running) {
		if (r->prev) r->prev->next = r->next; else s->running = r->next;
		if (r->next) r->next->prev = r->prev;
		s->nrunning--;
	} else {
		if (r->prev) r->prev->next = r->next; else s->wait_head = r->next;
		if (r->next) r->next->prev = r->prev; else s->wait_tail = r->prev;
		s->nwaiting--;
	}
	r->prev = r->next = NULL;
}

/* The client went away: vLLM aborts the request. */
static void on_abort(struct am_http_req *http, void *data)
{
	(void)http;
	struct sim_req *r = data;
	struct sim *s = r->s;
	unlink_req(r);
	s->success_abort++;
	req_free(r);
	start_next(s);
}

static void finish(struct sim_req *r)
{
	struct sim *s = r->s;
	uint64_t now = am_now_ns();
	if (!r->first_ns)
		r->first_ns = now;
	s->gen_tokens += r->out.n;
	if (strcmp(r->finish, "length") == 0)
		s->success_length++;
	else
		s->success_stop++;
	hist_observe(&s->ttft, (double)(r->first_ns - r->arrival_ns) / 1e9);
	hist_observe(&s->e2e, (double)(now - r->arrival_ns) / 1e9);
	unlink_req(r);
	req_free(r);
	start_next(s);
}

static void token_text(const struct sim_req *r, size_t i, struct am_buf *out)
{
	sim_detokenize_one(r->out.ids[i], out);
}

static void usage_json(struct am_buf *b, const struct sim_req *r)
{
	am_buf_printf(b, "{\"prompt_tokens\":%zu,\"total_tokens\":%zu,\"completion_tokens\":%zu,\"prompt_tokens_details\":null}",
		      r->prompt_tokens, r->prompt_tokens + r->out.n, r->out.n);
}

static void chunk_open(struct am_buf *b, const struct sim_req *r)
{
	am_buf_printf(b, "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":\"%s\",\"choices\":[", r->id,
		      r->chat ? "chat.completion.chunk" : "text_completion", r->s->created, r->model_json);
}

static void chunk_close(struct am_buf *b, const struct sim_req *r)
{
	am_buf_adds(b, r->include_usage ? "],\"usage\":null}\n\n" : "]}\n\n");
}

/* Streams token i (and the role chunk before the first); the last one
 * carries finish_reason. */
static void stream_token(struct sim_req *r, size_t i, struct am_buf *b)
{
	int last = i + 1 >= r->out.n;
	struct am_buf text;
	am_buf_init(&text, 64);
	if (i < r->out.n)
		token_text(r, i, &text);
	if (r->resp) {
		if (text.len)
			sim_resp_stream_delta(r->resp, text.data, text.len, b);
		am_buf_free(&text);
		return;
	}
	char fin[64];
	if (last)
		am_fmt(fin, sizeof fin, "\"%s\",\"stop_reason\":null", r->finish);
	else
		am_strlcpy(fin, "null", sizeof fin);
	chunk_open(b, r);
	if (!r->chat) {
		am_buf_adds(b, "{\"index\":0,\"text\":\"");
		sim_json_escape(b, text.data ? text.data : "", text.len);
		am_buf_printf(b, "\",\"logprobs\":null,\"finish_reason\":%s}", fin);
	} else if (r->tool_name) {
		am_buf_adds(b, "{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"");
		sim_json_escape(b, text.data ? text.data : "", text.len);
		am_buf_printf(b, "\"}}]},\"logprobs\":null,\"finish_reason\":%s}", fin);
	} else {
		am_buf_adds(b, "{\"index\":0,\"delta\":{\"content\":\"");
		sim_json_escape(b, text.data ? text.data : "", text.len);
		am_buf_printf(b, "\"},\"logprobs\":null,\"finish_reason\":%s}", fin);
	}
	chunk_close(b, r);
	am_buf_free(&text);
}

static void stream_first(struct sim_req *r, struct am_buf *b)
{
	if (r->resp) {
		sim_resp_stream_open(r->resp, r->out.n > 0, b);
		return;
	}
	if (!r->chat)
		return;
	chunk_open(b, r);
	am_buf_adds(b, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}");
	chunk_close(b, r);
	if (r->tool_name) {
		chunk_open(b, r);
		am_buf_printf(b, "{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"%s\",\"type\":\"function\",\"index\":0,"
				 "\"function\":{\"name\":\"", r->tool_id);
		sim_json_escape(b, r->tool_name, strlen(r->tool_name));
		am_buf_adds(b, "\",\"arguments\":\"\"}}]},\"logprobs\":null,\"finish_reason\":null}");
		chunk_close(b, r);
	}
}

static void stream_end(struct sim_req *r, struct am_buf *b)
{
	if (r->resp) { /* vLLM ends a Responses stream with response.completed, no [DONE] */
		sim_resp_stream_close(r->resp, r->prompt_tokens, r->out.n, b);
		return;
	}
	if (r->include_usage) {
		am_buf_printf(b, "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":\"%s\",\"choices\":[],\"usage\":",
			      r->id, r->chat ? "chat.completion.chunk" : "text_completion", r->s->created, r->model_json);
		usage_json(b, r);
		am_buf_adds(b, "}\n\n");
	}
	am_buf_adds(b, "data: [DONE]\n\n");
}

static void respond_whole(struct sim_req *r)
{
	struct am_buf text;
	am_buf_init(&text, 1 << 26);
	for (size_t i = 0; i < r->out.n; i++)
		token_text(r, i, &text);
	if (r->resp) {
		json_t *o = sim_resp_object(r->resp, am_buf_str(&text), text.len, r->prompt_tokens, r->out.n);
		sim_reply_json(r->http, 200, o);
		json_decref(o);
		am_buf_free(&text);
		return;
	}
	json_t *usage = json_pack("{s:I,s:I,s:I,s:n}", "prompt_tokens", (json_int_t)r->prompt_tokens, "total_tokens",
				  (json_int_t)(r->prompt_tokens + r->out.n), "completion_tokens", (json_int_t)r->out.n,
				  "prompt_tokens_details");
	json_t *choice;
	if (r->chat) {
		json_t *msg;
		if (r->tool_name)
			msg = json_pack("{s:s,s:n,s:n,s:[{s:s,s:s,s:{s:s,s:s}}]}", "role", "assistant", "content",
					"reasoning_content", "tool_calls", "id", r->tool_id, "type", "function", "function",
					"name", r->tool_name, "arguments", am_buf_str(&text));
		else
			msg = json_pack("{s:s,s:s,s:n,s:[]}", "role", "assistant", "content", am_buf_str(&text),
					"reasoning_content", "tool_calls");
		choice = json_pack("{s:i,s:o,s:n,s:s,s:n}", "index", 0, "message", msg, "logprobs", "finish_reason",
				   r->finish, "stop_reason");
	} else {
		choice = json_pack("{s:i,s:s,s:n,s:s,s:n,s:n}", "index", 0, "text", am_buf_str(&text), "logprobs",
				   "finish_reason", r->finish, "stop_reason", "prompt_logprobs");
	}
	/* model_json is escaped; the object wants the raw name: unescape by parsing */
	char tmp[320];
	am_fmt(tmp, sizeof tmp, "\"%s\"", r->model_json);
	json_t *model = json_loads(tmp, JSON_DECODE_ANY, NULL);
	json_t *resp = json_pack("{s:s,s:s,s:I,s:o,s:[o],s:o,s:n}", "id", r->id, "object",
				 r->chat ? "chat.completion" : "text_completion", "created", (json_int_t)r->s->created,
				 "model", model ? model : json_string(""), "choices", choice, "usage", usage, "prompt_logprobs");
	sim_reply_json(r->http, 200, resp);
	json_decref(resp);
	am_buf_free(&text);
}

static void on_tick(evutil_socket_t fd, short what, void *arg);

static void schedule(struct sim_req *r, int ms)
{
	if (!r->timer)
		r->timer = evtimer_new(r->s->base, on_tick, r);
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(r->timer, &tv);
}

/* Moves the request on: the first token after the TTFT, then one per ITL;
 * a non-streamed answer goes out whole when the last token is "done". */
static void advance(struct sim_req *r)
{
	struct sim *s = r->s;
	uint64_t now = am_now_ns();
	if (!r->stream) {
		r->first_ns = r->first_ns ? r->first_ns : now;
		am_http_on_abort(r->http, NULL, NULL); /* the answer may free http */
		respond_whole(r);
		r->http = NULL;
		finish(r);
		return;
	}
	struct am_buf b;
	am_buf_init(&b, 1 << 26);
	if (r->sent == 0) {
		r->first_ns = now;
		stream_first(r, &b);
	} else if (r->last_ns) {
		hist_observe(&s->itl, (double)(now - r->last_ns) / 1e9);
	}
	/* with no inter-token latency every remaining token goes now */
	do {
		stream_token(r, r->sent, &b);
		r->sent++;
	} while (s->o.itl_ms == 0 && r->sent < r->out.n);
	r->last_ns = now;
	int done = r->sent >= r->out.n;
	if (done)
		stream_end(r, &b);
	int rc = am_http_stream_write(r->http, b.data, b.len);
	am_buf_free(&b);
	if (rc != 0)
		return; /* the client left; on_abort cleans up */
	if (done) {
		am_http_on_abort(r->http, NULL, NULL); /* ending may free http */
		am_http_stream_end(r->http);
		r->http = NULL;
		finish(r);
	} else {
		schedule(r, s->o.itl_ms);
	}
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	advance(arg);
}

static void run(struct sim_req *r)
{
	struct sim *s = r->s;
	r->running = 1;
	r->start_ns = am_now_ns();
	r->next = s->running;
	if (s->running)
		s->running->prev = r;
	s->running = r;
	s->nrunning++;
	hist_observe(&s->queue, (double)(r->start_ns - r->arrival_ns) / 1e9);
	int delay = s->o.ttft_ms;
	if (!r->stream && r->out.n > 1)
		delay += s->o.itl_ms * (int)(r->out.n - 1);
	if (delay == 0)
		advance(r);
	else
		schedule(r, delay);
}

static void start_next(struct sim *s)
{
	while (!s->stopping && s->wait_head && s->nrunning < s->o.max_num_seqs) {
		struct sim_req *r = s->wait_head;
		unlink_req(r);
		run(r);
	}
}

/* ---- building a generation request ---- */

/* The arguments of a call to tool: a JSON object its "parameters" schema
 * accepts (every property filled, nested objects, arrays, $refs). 0, or -1
 * with err when the schema admits nothing. */
static int tool_args_for(json_t *tool, uint64_t seed, struct am_buf *out, char *err, size_t errsize)
{
	json_t *params = json_object_get(json_object_get(tool, "function"), "parameters");
	char serr[300];
	json_t *args = params && !json_is_null(params) ? sim_schema_instance(params, seed, serr, sizeof serr) : json_object();
	if (!args) {
		am_fmt(err, errsize, "The parameters of tool '%s' cannot be satisfied: %s",
		       json_string_value(json_object_get(json_object_get(tool, "function"), "name")), serr);
		return -1;
	}
	char *s = json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
	am_buf_adds(out, s ? s : "{}");
	free(s);
	json_decref(args);
	return 0;
}

/* The tool the model calls, or NULL (none offered, or tool_choice "none"). */
static json_t *pick_tool(json_t *body, char *err, size_t errsize)
{
	json_t *tools = json_object_get(body, "tools");
	if (!tools || json_is_null(tools))
		return NULL;
	if (!json_is_array(tools)) {
		am_fmt(err, errsize, "'tools' must be a list");
		return NULL;
	}
	json_t *choice = json_object_get(body, "tool_choice");
	if (json_is_string(choice) && strcmp(json_string_value(choice), "none") == 0)
		return NULL;
	const char *want = json_string_value(json_object_get(json_object_get(choice, "function"), "name"));
	size_t i;
	json_t *t;
	json_array_foreach(tools, i, t) {
		const char *name = json_string_value(json_object_get(json_object_get(t, "function"), "name"));
		if (!name) {
			am_fmt(err, errsize, "tools[%zu].function.name is required", i);
			return NULL;
		}
		if (!want || strcmp(want, name) == 0)
			return t;
	}
	if (want)
		am_fmt(err, errsize, "Tool '%s' has not been passed in `tools`.", want);
	return NULL;
}

/* The text a completion prompt stands for: a string, [string], [int] or [[int]]. */
static int completion_prompt(json_t *p, struct am_buf *out, char *err, size_t errsize)
{
	if (json_is_array(p) && json_array_size(p) > 0)
		p = json_is_string(json_array_get(p, 0)) || json_is_array(json_array_get(p, 0)) ? json_array_get(p, 0) : p;
	if (json_is_string(p))
		return am_buf_add(out, json_string_value(p), json_string_length(p)) == 0 ? 0 : -1;
	if (json_is_array(p) && json_array_size(p) > 0) {
		size_t i;
		json_t *t;
		json_array_foreach(p, i, t) {
			if (!json_is_integer(t) || sim_detokenize_one((uint32_t)json_integer_value(t), out) != 0) {
				am_fmt(err, errsize, "prompt token %zu is not a valid token id", i);
				return -1;
			}
		}
		return 0;
	}
	am_fmt(err, errsize, "'prompt' must be a string, a list of strings or a list of token ids");
	return -1;
}

/* A JSON Schema given as an object, or as a string holding one. A new
 * reference, or NULL with err naming field. */
static json_t *schema_arg(json_t *v, const char *field, char *err, size_t errsize)
{
	if (json_is_object(v) || json_is_boolean(v))
		return json_incref(v);
	if (json_is_string(v)) {
		json_t *parsed = json_loads(json_string_value(v), 0, NULL);
		if (json_is_object(parsed))
			return parsed;
		json_decref(parsed);
	}
	am_fmt(err, errsize, "'%s' must be a JSON schema (an object)", field);
	return NULL;
}

/* What structured outputs ask for: response_format (or, for /v1/responses,
 * text.format), else vLLM's structured_outputs, else the older guided_json
 * and guided_choice. Sets *schema (a new reference), *json_object or
 * *choice (borrowed); none when the output is free text. 0, or -1 with err. */
static int structured(json_t *body, enum sim_api api, json_t **schema, int *json_object, const char **choice,
		      char *err, size_t errsize)
{
	*schema = NULL;
	*json_object = 0;
	*choice = NULL;
	const char *field = api == SIM_API_RESPONSES ? "text.format" : "response_format";
	json_t *rf = api == SIM_API_RESPONSES ? json_object_get(json_object_get(body, "text"), "format")
					      : json_object_get(body, "response_format");
	if (rf && !json_is_null(rf)) {
		const char *type = json_string_value(json_object_get(rf, "type"));
		if (!json_is_object(rf) || !type) {
			am_fmt(err, errsize, "'%s' must be an object with a 'type'", field);
			return -1;
		}
		if (!strcmp(type, "text") || !strcmp(type, "structural_tag"))
			return 0;
		if (!strcmp(type, "json_object")) {
			*json_object = 1;
			return 0;
		}
		if (strcmp(type, "json_schema") != 0) {
			am_fmt(err, errsize, "%s.type must be one of 'text', 'json_object', 'json_schema'", field);
			return -1;
		}
		/* chat: {"type":"json_schema","json_schema":{"name","schema","strict"}};
		 * responses: {"type":"json_schema","name","schema","strict"} */
		json_t *js = api == SIM_API_RESPONSES ? rf : json_object_get(rf, "json_schema");
		char where[64];
		am_fmt(where, sizeof where, "%s%s", field, api == SIM_API_RESPONSES ? "" : ".json_schema");
		if (!json_is_object(js)) {
			am_fmt(err, errsize, "%s is required when %s.type is 'json_schema'", where, field);
			return -1;
		}
		if (!json_is_string(json_object_get(js, "name"))) {
			am_fmt(err, errsize, "%s.name is required (a string)", where);
			return -1;
		}
		json_t *sc = json_object_get(js, "schema");
		if (!sc || json_is_null(sc)) {
			am_fmt(err, errsize, "%s.schema is required", where);
			return -1;
		}
		char f[80];
		am_fmt(f, sizeof f, "%s.schema", where);
		*schema = schema_arg(sc, f, err, errsize);
		return *schema ? 0 : -1;
	}
	json_t *so = json_object_get(body, "structured_outputs");
	if (json_is_object(so)) {
		json_t *j = json_object_get(so, "json");
		if (j && !json_is_null(j)) {
			*schema = schema_arg(j, "structured_outputs.json", err, errsize);
			return *schema ? 0 : -1;
		}
		if (json_is_true(json_object_get(so, "json_object"))) {
			*json_object = 1;
			return 0;
		}
		json_t *c = json_object_get(so, "choice");
		if (json_is_array(c) && json_is_string(json_array_get(c, 0)))
			*choice = json_string_value(json_array_get(c, 0));
		return 0;
	}
	json_t *gj = json_object_get(body, "guided_json");
	if (gj && !json_is_null(gj)) {
		*schema = schema_arg(gj, "guided_json", err, errsize);
		return *schema ? 0 : -1;
	}
	json_t *gc = json_object_get(body, "guided_choice");
	if (json_is_array(gc) && json_is_string(json_array_get(gc, 0)))
		*choice = json_string_value(json_array_get(gc, 0));
	return 0;
}

/* A number member that may be absent or null; -1 when it is something else. */
static int opt_number(json_t *body, const char *key, double dflt, double *out, char *err, size_t errsize)
{
	json_t *v = json_object_get(body, key);
	*out = dflt;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v)) {
		am_fmt(err, errsize, "'%s' must be a number", key);
		return -1;
	}
	*out = json_number_value(v);
	return 0;
}

static void generate(struct sim *s, struct am_http_req *http, json_t *body, enum sim_api api)
{
	static const char *const api_names[] = { "Completions", "Chat Completions", "Responses" };
	char err[512] = "";
	if (sim_check_model(s, http, body) != 0)
		return;
	if (s->kind != SIM_CHAT) {
		sim_error(http, 400, "BadRequestError", "The model does not support %s API", api_names[api]);
		return;
	}
	json_t *prev = json_object_get(body, "previous_response_id");
	if (api == SIM_API_RESPONSES && prev && !json_is_null(prev)) {
		/* the sim keeps no responses: vLLM without a stored one answers this */
		sim_error_param(http, 404, "invalid_request_error", "response_id", "Response with id '%s' not found.",
				json_is_string(prev) ? json_string_value(prev) : "");
		return;
	}
	struct am_buf prompt, echo;
	am_buf_init(&prompt, 1 << 27);
	am_buf_init(&echo, 1 << 27);
	struct sim_req *r = NULL;
	json_t *tool = NULL, *schema = NULL, *resp_msgs = NULL;
	int json_object = 0;
	const char *choice = NULL;
	double temperature = 1.0, top_p = 1.0;
	if (api == SIM_API_CHAT) {
		json_t *msgs = json_object_get(body, "messages");
		if (sim_chat_prompt(s, msgs, &prompt, &echo, err, sizeof err) != 0)
			goto bad;
		tool = pick_tool(body, err, sizeof err);
		if (err[0])
			goto bad;
	} else if (api == SIM_API_RESPONSES) {
		if (sim_resp_messages(body, &resp_msgs, err, sizeof err) != 0 ||
		    sim_chat_prompt(s, resp_msgs, &prompt, &echo, err, sizeof err) != 0 ||
		    opt_number(body, "temperature", 1.0, &temperature, err, sizeof err) != 0 ||
		    opt_number(body, "top_p", 1.0, &top_p, err, sizeof err) != 0)
			goto bad;
	} else {
		json_t *p = json_object_get(body, "prompt");
		if (!p) {
			am_fmt(err, sizeof err, "'prompt' is required");
			goto bad;
		}
		if (completion_prompt(p, &prompt, err, sizeof err) != 0)
			goto bad;
		am_buf_add(&echo, prompt.data, prompt.len);
	}
	if (structured(body, api, &schema, &json_object, &choice, err, sizeof err) != 0)
		goto bad;
	json_t *stream = json_object_get(body, "stream");
	if (stream && !json_is_boolean(stream) && !json_is_null(stream)) {
		am_fmt(err, sizeof err, "'stream' must be a boolean");
		goto bad;
	}
	json_t *mt = json_object_get(body, api == SIM_API_RESPONSES ? "max_output_tokens" : "max_completion_tokens");
	if (api != SIM_API_RESPONSES && (!mt || json_is_null(mt)))
		mt = json_object_get(body, "max_tokens");
	if (mt && !json_is_null(mt) && (!json_is_integer(mt) || json_integer_value(mt) < 1)) {
		am_fmt(err, sizeof err, "max_tokens must be at least 1, got %s.", json_is_integer(mt) ? "a smaller value" : "a non-integer");
		goto bad;
	}
	size_t ptoks = sim_count_tokens(prompt.data ? prompt.data : "", prompt.len);
	long long room = (long long)s->max_model_len - (long long)ptoks;
	long long max_tokens = mt && json_is_integer(mt) ? json_integer_value(mt) : room;
	if (api == SIM_API_RESPONSES && max_tokens > room && room > 0)
		max_tokens = room; /* vLLM's Responses API takes min(max_output_tokens, what is left) */
	if ((long long)ptoks + max_tokens > s->max_model_len || (long long)ptoks >= s->max_model_len) {
		am_fmt(err, sizeof err,
		       "This model's maximum context length is %d tokens. However, you requested %lld tokens "
		       "(%zu in the messages, %lld in the completion). Please reduce the length of the messages or completion.",
		       s->max_model_len, (long long)ptoks + (max_tokens > 0 ? max_tokens : 0), ptoks, max_tokens > 0 ? max_tokens : 0);
		goto bad;
	}

	r = am_calloc(1, sizeof *r);
	r->s = s;
	r->http = http;
	r->api = api;
	r->chat = api == SIM_API_CHAT;
	r->stream = json_is_true(stream);
	r->include_usage = r->stream && api != SIM_API_RESPONSES &&
			   json_is_true(json_object_get(json_object_get(body, "stream_options"), "include_usage"));
	r->prompt_tokens = ptoks;
	r->arrival_ns = am_now_ns();
	unsigned long long h1 = (unsigned long long)sim_hash(&s->counter, sizeof s->counter, (uint64_t)s->created);
	if (api == SIM_API_RESPONSES)
		am_fmt(r->id, sizeof r->id, "resp_%016llx%016llx", h1,
		       (unsigned long long)sim_hash(&s->counter, sizeof s->counter, h1));
	else
		am_fmt(r->id, sizeof r->id, "%s-%016llx%08llx", r->chat ? "chatcmpl" : "cmpl", h1, (unsigned long long)s->counter);
	s->counter++;
	/* vLLM names the served model (or the adapter), not the alias asked for */
	const char *mname = sim_model_name(s, body);
	if (api == SIM_API_RESPONSES) {
		r->resp = am_calloc(1, sizeof *r->resp);
		sim_resp_init(r->resp, body, r->id, s->created, mname, temperature, top_p, max_tokens);
	}
	struct am_buf m;
	am_buf_init(&m, sizeof r->model_json - 1);
	sim_json_escape(&m, mname, strlen(mname));
	am_strlcpy(r->model_json, am_buf_str(&m), sizeof r->model_json);
	am_buf_free(&m);

	/* what comes out */
	struct am_buf text;
	am_buf_init(&text, 1 << 27);
	r->finish = "stop";
	json_t *seed = json_object_get(body, "seed");
	uint64_t sd = sim_hash(prompt.data ? prompt.data : "", prompt.len,
			       (uint64_t)(json_is_integer(seed) ? json_integer_value(seed) : s->o.seed));
	int free_text = 0;
	if (tool) {
		r->tool_name = am_strdup(json_string_value(json_object_get(json_object_get(tool, "function"), "name")));
		if (tool_args_for(tool, sd, &text, err, sizeof err) != 0) {
			am_buf_free(&text);
			goto bad;
		}
		am_fmt(r->tool_id, sizeof r->tool_id, "chatcmpl-tool-%016llx", (unsigned long long)sim_hash(r->id, strlen(r->id), 3));
		r->finish = "tool_calls";
	} else if (schema) {
		/* structured outputs: a document the schema accepts, as a grammar would force */
		char serr[300];
		json_t *doc = sim_schema_instance(schema, sd, serr, sizeof serr);
		if (!doc) {
			am_fmt(err, sizeof err, "The JSON schema of %s cannot be satisfied: %s",
			       api == SIM_API_RESPONSES ? "text.format" : "response_format", serr);
			am_buf_free(&text);
			goto bad;
		}
		sim_schema_print(doc, &text);
		json_decref(doc);
	} else if (json_object) {
		json_t *doc = sim_schema_object(s->o.mode == SIM_ECHO ? am_buf_str(&echo) : NULL, sd);
		sim_schema_print(doc, &text);
		json_decref(doc);
	} else if (choice) {
		am_buf_adds(&text, choice);
	} else if (s->o.mode == SIM_ECHO) {
		am_buf_add(&text, echo.data ? echo.data : "", echo.len);
	} else {
		/* an answer in the question's language that quotes it */
		sim_answer(echo.data, echo.len, sd, (size_t)s->o.output_tokens, &text);
		free_text = 1;
	}
	/* stop strings end the text where they begin */
	json_t *stop = api == SIM_API_RESPONSES ? NULL : json_object_get(body, "stop");
	if (!r->tool_name && stop && !json_is_null(stop)) {
		json_t *one = json_is_string(stop) ? stop : NULL;
		size_t n = json_is_array(stop) ? json_array_size(stop) : 1;
		for (size_t i = 0; i < n; i++) {
			json_t *st = one ? one : json_array_get(stop, i);
			if (!json_is_string(st)) {
				am_fmt(err, sizeof err, "'stop' must be a string or a list of strings");
				am_buf_free(&text);
				goto bad;
			}
			const char *hit = json_string_length(st) ? strstr(am_buf_str(&text), json_string_value(st)) : NULL;
			if (hit) {
				text.len = (size_t)(hit - text.data);
				text.data[text.len] = '\0';
			}
		}
	}
	sim_tokenize(text.data ? text.data : "", text.len, &r->out);
	am_buf_free(&text);
	/* max_tokens cuts the text where it falls, JSON or not: vLLM returns the
	 * truncated (invalid) document with finish_reason "length" */
	if ((long long)r->out.n > max_tokens) {
		r->out.n = (size_t)max_tokens;
		r->finish = r->tool_name ? "tool_calls" : "length";
	} else if (free_text && max_tokens == (long long)r->out.n && (long long)s->o.output_tokens > max_tokens) {
		r->finish = "length";
	}
	json_decref(schema);
	schema = NULL;
	json_decref(resp_msgs);
	resp_msgs = NULL;

	/* prefix cache: a prompt seen before is a hit */
	uint64_t ph = sim_hash(prompt.data ? prompt.data : "", prompt.len, 0);
	s->prefix_queries += ptoks;
	for (int i = 0; i < 64; i++)
		if (s->seen_prefix[i] == ph) {
			s->prefix_hits += ptoks;
			break;
		}
	s->seen_prefix[s->seen_pos++ % 64] = ph;
	s->prompt_tokens += ptoks;
	am_buf_free(&prompt);
	am_buf_free(&echo);

	/* admission: run, wait, or refuse */
	if (s->nrunning >= s->o.max_num_seqs && s->nwaiting >= s->o.max_waiting) {
		sim_error(http, 429, "TooManyRequestsError",
			  "The server is overloaded: %d requests are running and %d waiting; try again later",
			  s->nrunning, s->nwaiting);
		req_free(r);
		return;
	}
	am_http_on_abort(http, on_abort, r);
	if (r->stream) {
		am_http_add_header(http, "Cache-Control", "no-cache");
		am_http_stream_begin(http, 200, "text/event-stream; charset=utf-8");
	}
	if (s->nrunning < s->o.max_num_seqs) {
		run(r);
	} else {
		r->prev = s->wait_tail;
		if (s->wait_tail)
			s->wait_tail->next = r;
		else
			s->wait_head = r;
		s->wait_tail = r;
		s->nwaiting++;
	}
	return;
bad:
	am_buf_free(&prompt);
	am_buf_free(&echo);
	json_decref(schema);
	json_decref(resp_msgs);
	if (r)
		req_free(r);
	sim_error(http, 400, "BadRequestError", "%s", err);
}

/* ---- other endpoints ---- */

static void models(struct sim *s, struct am_http_req *req)
{
	json_t *data = json_array();
	json_array_append_new(data, json_pack("{s:s,s:s,s:I,s:s,s:s,s:n,s:i,s:[]}", "id", s->name, "object", "model",
					      "created", (json_int_t)s->created, "owned_by", "vllm", "root", s->o.model,
					      "parent", "max_model_len", s->max_model_len, "permission"));
	for (int i = 0; i < s->nloras; i++)
		json_array_append_new(data, json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:n,s:[]}", "id", s->loras[i].name, "object",
						      "model", "created", (json_int_t)s->created, "owned_by", "vllm", "root",
						      s->loras[i].path, "parent", s->loras[i].base[0] ? s->loras[i].base : s->name,
						      "max_model_len", "permission"));
	json_t *resp = json_pack("{s:s,s:o}", "object", "list", "data", data);
	sim_reply_json(req, 200, resp);
	json_decref(resp);
}

/* A runtime load under way (--sim-lora-load-ms): the adapter is there,
 * and the answer sent, once its time has passed. */
struct lora_load {
	struct sim *s;
	struct am_http_req *req;
	struct event *ev;
	char name[128], path[4096];
};

static void lora_load_abort(struct am_http_req *req, void *data)
{
	(void)req;
	struct lora_load *l = data;
	event_free(l->ev);
	free(l);
}

static void lora_add(struct sim *s, struct am_http_req *req, const char *name, const char *path)
{
	struct sim_lora *l = &s->loras[s->nloras++];
	memset(l, 0, sizeof *l);
	am_strlcpy(l->name, name, sizeof l->name);
	am_strlcpy(l->path, path, sizeof l->path);
	char msg[300];
	am_fmt(msg, sizeof msg, "Success: LoRA adapter '%s' added successfully.", name);
	vlog("INFO", "serving_models.py:120", "Loaded new LoRA adapter: name '%s', path '%s'", name, path);
	am_http_respond(req, 200, "text/plain; charset=utf-8", msg, strlen(msg));
}

static void lora_loaded(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct lora_load *l = arg;
	am_http_on_abort(l->req, NULL, NULL);
	int dup = 0;
	for (int i = 0; i < l->s->nloras; i++)
		dup |= !strcmp(l->s->loras[i].name, l->name);
	if (dup || l->s->nloras == SIM_MAX_LORAS)
		sim_error(l->req, 400, "BadRequestError", "The lora adapter '%s' has already been loaded.", l->name);
	else
		lora_add(l->s, l->req, l->name, l->path);
	event_free(l->ev);
	free(l);
}

static void load_lora(struct sim *s, struct am_http_req *req, json_t *body)
{
	const char *name = json_string_value(json_object_get(body, "lora_name"));
	const char *path = json_string_value(json_object_get(body, "lora_path"));
	if (!name || !path || !*name || !*path) {
		sim_error(req, 400, "BadRequestError", "Both 'lora_name' and 'lora_path' must be provided.");
		return;
	}
	for (int i = 0; i < s->nloras; i++)
		if (strcmp(s->loras[i].name, name) == 0) {
			sim_error(req, 400, "BadRequestError", "The lora adapter '%s' has already been loaded.", name);
			return;
		}
	if (s->nloras == SIM_MAX_LORAS || s->nloras >= s->o.max_loras * 16) {
		sim_error(req, 400, "BadRequestError", "Too many LoRA adapters are loaded.");
		return;
	}
	if (s->o.lora_load_ms > 0) {
		struct lora_load *l = am_calloc(1, sizeof *l);
		l->s = s;
		l->req = req;
		am_strlcpy(l->name, name, sizeof l->name);
		am_strlcpy(l->path, path, sizeof l->path);
		l->ev = evtimer_new(s->base, lora_loaded, l);
		struct timeval tv = { s->o.lora_load_ms / 1000, (s->o.lora_load_ms % 1000) * 1000 };
		evtimer_add(l->ev, &tv);
		am_http_on_abort(req, lora_load_abort, l);
		return;
	}
	lora_add(s, req, name, path);
}

static void unload_lora(struct sim *s, struct am_http_req *req, json_t *body)
{
	const char *name = json_string_value(json_object_get(body, "lora_name"));
	for (int i = 0; name && i < s->nloras; i++) {
		if (strcmp(s->loras[i].name, name) != 0)
			continue;
		memmove(&s->loras[i], &s->loras[i + 1], sizeof s->loras[0] * (size_t)(s->nloras - i - 1));
		s->nloras--;
		char msg[300];
		am_fmt(msg, sizeof msg, "Success: LoRA adapter '%s' removed successfully.", name);
		am_http_respond(req, 200, "text/plain; charset=utf-8", msg, strlen(msg));
		return;
	}
	sim_error(req, 404, "NotFoundError", "The lora adapter '%s' cannot be found.", name ? name : "");
}

static void metrics(struct sim *s, struct am_http_req *req)
{
	struct am_buf b;
	am_buf_init(&b, 1 << 20);
	uint64_t used = 0;
	for (struct sim_req *r = s->running; r; r = r->next)
		used += r->prompt_tokens + r->sent;
	sim_metrics_render(s, s->kv_capacity ? (double)used / (double)s->kv_capacity : 0, &b);
	am_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
	am_buf_free(&b);
}

/* ---- routing ---- */

/* An HTTP error status from the X-Sim-Error header; 0 when it is not one. */
static int atoi_status(const char *v)
{
	char *end;
	long x = strtol(v, &end, 10);
	return *end || x < 400 || x > 599 ? 0 : (int)x;
}

static void on_head(struct am_http_req *req, void *data)
{
	struct sim *s = data;
	req->max_body = 64u << 20; /* inline base64 images */
	if (s->o.api_key && strncmp(req->path, "/v1/", 4) == 0) {
		const char *h = am_http_header(req, "authorization");
		char want[512];
		am_fmt(want, sizeof want, "Bearer %s", s->o.api_key);
		if (!h || strcmp(h, want) != 0) {
			const char *body = "{\"error\":\"Unauthorized\"}";
			am_http_respond(req, 401, "application/json", body, strlen(body));
		}
	}
}

static int is(struct am_http_req *req, const char *method, const char *path)
{
	return strcmp(req->path, path) == 0 && (!method || strcmp(req->method, method) == 0 ||
						(strcmp(method, "GET") == 0 && strcmp(req->method, "HEAD") == 0));
}

static void not_found(struct am_http_req *req)
{
	const char *body = "{\"detail\":\"Not Found\"}";
	am_http_respond(req, 404, "application/json", body, strlen(body));
}

static void on_request(struct am_http_req *req, void *data)
{
	struct sim *s = data;
	if (is(req, "GET", "/health")) {
		am_http_respond(req, s->ready ? 200 : 503, "application/json", "", 0);
		return;
	}
	if (is(req, NULL, "/ping")) {
		am_http_respond(req, s->ready ? 200 : 503, "application/json", "", 0);
		return;
	}
	if (is(req, "GET", "/version")) {
		const char *v = "{\"version\":\"" VLLM_VERSION "\"}";
		am_http_respond(req, 200, "application/json", v, strlen(v));
		return;
	}
	if (is(req, "GET", "/metrics")) {
		metrics(s, req);
		return;
	}
	if (!s->ready) {
		sim_error(req, 503, "ServiceUnavailableError", "The server is starting up");
		return;
	}
	if (is(req, "GET", "/v1/models")) {
		models(s, req);
		return;
	}
	if (!strncmp(req->path, "/v1/responses/", 14) && req->path[14] && !strchr(req->path + 14, '/') &&
	    (!strcmp(req->method, "GET") || !strcmp(req->method, "DELETE"))) {
		/* retrieving a stored response: the sim stores none, as vLLM without the store */
		sim_error_param(req, 404, "invalid_request_error", "response_id", "Response with id '%s' not found.",
				req->path + 14);
		return;
	}
	if (strcmp(req->method, "POST") != 0) {
		const char *b = "{\"detail\":\"Method Not Allowed\"}";
		if (!strcmp(req->path, "/v1/chat/completions") || !strcmp(req->path, "/v1/completions") ||
		    !strcmp(req->path, "/v1/embeddings") || !strcmp(req->path, "/v1/responses"))
			am_http_respond(req, 405, "application/json", b, strlen(b));
		else
			not_found(req);
		return;
	}
	json_error_t je;
	json_t *body = json_loadb(req->body.data ? req->body.data : "", req->body.len, 0, &je);
	if (!body || !json_is_object(body)) {
		sim_error(req, 400, "BadRequestError", "JSON decode error: %s", body ? "expected an object" : je.text);
		json_decref(body);
		return;
	}
	/* failure injection, by rate or by the X-Sim-Error header */
	const char *force = am_http_header(req, "x-sim-error");
	int fail = force ? atoi_status(force) : 0;
	if (!fail && s->o.failure_rate > 0 && (double)rand() / RAND_MAX < s->o.failure_rate)
		fail = 500;
	if (fail) {
		sim_error(req, fail, fail == 429 ? "TooManyRequestsError" : fail >= 500 ? "InternalServerError" : "BadRequestError",
			  "Simulated failure (%d)", fail);
	} else if (is(req, "POST", "/v1/chat/completions")) {
		generate(s, req, body, SIM_API_CHAT);
	} else if (is(req, "POST", "/v1/completions")) {
		generate(s, req, body, SIM_API_COMPLETIONS);
	} else if (is(req, "POST", "/v1/responses")) {
		generate(s, req, body, SIM_API_RESPONSES);
	} else if (is(req, "POST", "/v1/embeddings")) {
		sim_pool_embeddings(s, req, body);
	} else if (is(req, "POST", "/rerank") || is(req, "POST", "/v1/rerank") || is(req, "POST", "/v2/rerank")) {
		sim_pool_rerank(s, req, body);
	} else if (is(req, "POST", "/score") || is(req, "POST", "/v1/score")) {
		sim_pool_score(s, req, body);
	} else if (is(req, "POST", "/tokenize")) {
		sim_pool_tokenize(s, req, body);
	} else if (is(req, "POST", "/detokenize")) {
		sim_pool_detokenize(s, req, body);
	} else if (s->runtime_lora && is(req, "POST", "/v1/load_lora_adapter")) {
		load_lora(s, req, body);
	} else if (s->runtime_lora && is(req, "POST", "/v1/unload_lora_adapter")) {
		unload_lora(s, req, body);
	} else {
		not_found(req);
	}
	json_decref(body);
}

static void on_done(struct am_http_req *req, void *data)
{
	struct sim *s = data;
	if (!s->o.disable_access_log)
		fprintf(stderr, "INFO:     %s - \"%s %s HTTP/1.1\" %d %s\n", req->peer, req->method ? req->method : "-",
			req->path, req->status, am_http_status_text(req->status));
}

static void on_http_error(struct am_http_req *req, int status, const char *message, void *data)
{
	(void)data;
	sim_error(req, status, "BadRequestError", "%s", message);
}

/* ---- start-up ---- */

static int g_exit; /* the exit status once the loop ends */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	(void)sig;
	struct sim *s = arg;
	fprintf(stderr, "INFO:     Shutting down\nINFO:     Finished server process [%d]\n", (int)getpid());
	event_base_loopexit(s->base, NULL);
}

static void fatal(struct sim *s, const char *cause)
{
	vlog("ERROR", "core.py:708", "EngineCore failed to start.");
	fprintf(stderr, "%s\n", cause);
	vlog("ERROR", "core.py:711", "Engine core initialization failed. See root cause above. Failed core proc(s): {}");
	fprintf(stderr, "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}\n");
	g_exit = 1;
	event_base_loopexit(s->base, NULL);
}

static void on_crash(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct sim *s = arg;
	vlog("ERROR", "core.py:842", "EngineCore encountered a fatal error (simulated by --sim-crash-after-ms).");
	fprintf(stderr, "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause.\n");
	g_exit = 1;
	event_base_loopexit(s->base, NULL);
}


static void on_ready(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct sim *s = arg;
	char cause[512];
	int world = s->o.tp * s->o.pp * s->o.dp;
	int vis = sim_visible_gpus(-1);
	if (s->o.startup_error) {
		fatal(s, s->o.startup_error);
		return;
	}
	if (s->attention_heads && s->attention_heads % s->o.tp != 0) {
		am_fmt(cause, sizeof cause, "ValueError: Total number of attention heads (%d) must be divisible by tensor parallel size (%d).",
		       s->attention_heads, s->o.tp);
		fatal(s, cause);
		return;
	}
	if (vis == 0 || (vis > 0 && vis < world)) {
		am_fmt(cause, sizeof cause, "ValueError: World size (%d) is larger than the number of available GPUs (%d) in this node.",
		       world, vis);
		fatal(s, cause);
		return;
	}
	vlog("INFO", "gpu_model_runner.py:2653", "Model loading took %.4f GiB and %.6f seconds", 0.0,
	     (double)s->o.startup_ms / 1000.0);
	vlog("INFO", "gpu_worker.py:298", "Available KV cache memory: %.2f GiB",
	     (double)s->kv_capacity * 131072.0 / (1024.0 * 1024 * 1024));
	vlog("INFO", "kv_cache_utils.py:1087", "GPU KV cache size: %llu tokens", (unsigned long long)s->kv_capacity);
	vlog("INFO", "kv_cache_utils.py:1091", "Maximum concurrency for %d tokens per request: %.2fx", s->max_model_len,
	     (double)s->kv_capacity / s->max_model_len);
	vlog("INFO", "api_server.py:1971", "Starting vLLM API server 0 on http://%s:%d", s->o.host, s->o.port);
	fprintf(stderr, "INFO:     Started server process [%d]\nINFO:     Waiting for application startup.\n"
			"INFO:     Application startup complete.\n", (int)getpid());
	s->ready = 1;
	if (s->o.crash_after_ms) {
		s->crash_timer = evtimer_new(s->base, on_crash, s);
		struct timeval tv = { s->o.crash_after_ms / 1000, (s->o.crash_after_ms % 1000) * 1000 };
		evtimer_add(s->crash_timer, &tv);
	}
}

/* An integer in [lo, hi], else 0 (unknown). */
static int int_in(json_t *v, json_int_t lo, json_int_t hi)
{
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return 0;
	return (int)json_integer_value(v);
}

/* What the model folder says: kind, context, heads, hidden size, and
 * whether it takes images. */
static void read_model_config(struct sim *s)
{
	char path[1200];
	am_fmt(path, sizeof path, "%s/config.json", s->o.model);
	json_t *cfg = json_load_file(path, 0, NULL);
	int kind = SIM_CHAT;
	if (cfg) {
		const char *arch = json_string_value(json_array_get(json_object_get(cfg, "architectures"), 0));
		if (arch && strstr(arch, "ForSequenceClassification"))
			kind = SIM_RERANK;
		else if (arch && !strstr(arch, "ForCausalLM") && !strstr(arch, "ForConditionalGeneration") &&
			 (strstr(arch, "Model") || strstr(arch, "Embedding")))
			kind = SIM_EMBED;
		/* every number in a model's files is hostile: out of range is unknown */
		json_t *v = json_object_get(cfg, "num_attention_heads");
		if (!v)
			v = json_object_get(json_object_get(cfg, "text_config"), "num_attention_heads");
		s->attention_heads = int_in(v, 1, 1 << 20);
		if (!s->o.max_model_len)
			s->max_model_len = int_in(json_object_get(cfg, "max_position_embeddings"), 1, 1 << 30);
		if (!s->o.embedding_dim)
			s->embed_dim = int_in(json_object_get(cfg, "hidden_size"), 1, 1 << 20);
		/* multimodal as vLLM's registry sees it: a vision or audio tower */
		s->multimodal = json_object_get(cfg, "vision_config") || json_object_get(cfg, "audio_config") ||
				json_object_get(cfg, "vision_tower") || json_object_get(cfg, "mm_vision_tower") ||
				(arch && (strstr(arch, "VL") || strstr(arch, "Vision") || strstr(arch, "Llava") ||
					  strstr(arch, "Omni")));
		json_decref(cfg);
	} else {
		/* no config to read: the name tells (Qwen2.5-VL-7B, llava-1.5, …) */
		const char *base = strrchr(s->o.model, '/') ? strrchr(s->o.model, '/') + 1 : s->o.model;
		s->multimodal = strstr(base, "VL") || strcasestr(base, "vision") || strcasestr(base, "llava");
	}
	/* --runner pooling keeps a classification model a scorer (vLLM's
	 * "auto" convert); anything else pools into embeddings */
	if (s->o.runner && !strcmp(s->o.runner, "pooling") && kind != SIM_RERANK)
		kind = SIM_EMBED;
	if (s->o.convert && !strcmp(s->o.convert, "embed"))
		kind = SIM_EMBED;
	if (s->o.convert && !strcmp(s->o.convert, "classify"))
		kind = SIM_RERANK;
	s->kind = s->o.kind >= 0 ? s->o.kind : kind;
}

int sim_serve_main(int argc, char **argv)
{
	struct sim *s = am_calloc(1, sizeof *s);
	int rc = sim_opts_parse(argc, argv, &s->o);
	if (rc) {
		free(s);
		return rc;
	}
	s->created = (long)time(NULL);
	s->max_model_len = s->o.max_model_len;
	s->embed_dim = s->o.embedding_dim;
	read_model_config(s);
	if (!s->max_model_len)
		s->max_model_len = 4096;
	if (!s->embed_dim)
		s->embed_dim = 1024;
	s->name = s->o.nnames ? s->o.names[0] : s->o.model;
	struct am_buf nb;
	am_buf_init(&nb, sizeof s->name_json - 1);
	sim_json_escape(&nb, s->name, strlen(s->name));
	am_strlcpy(s->name_json, am_buf_str(&nb), sizeof s->name_json);
	am_buf_free(&nb);
	memcpy(s->loras, s->o.loras, sizeof s->loras);
	s->nloras = s->o.nloras;
	for (int i = 0; i < s->nloras; i++)
		if (!s->loras[i].base[0])
			am_strlcpy(s->loras[i].base, s->name, sizeof s->loras[i].base);
	/* as the engine: the flag, else vLLM's or llama-server's variable
	 * (SGLang reads its key from the flag or its --config file only) */
	const char *key_env = s->o.flavor == SIM_FLAVOR_VLLM ? "VLLM_API_KEY"
			      : s->o.flavor == SIM_FLAVOR_LLAMACPP ? "LLAMA_ARG_API_KEY" : NULL;
	if (!s->o.api_key && key_env && getenv(key_env) && *getenv(key_env))
		s->o.api_key = getenv(key_env);
	const char *rl = getenv("VLLM_ALLOW_RUNTIME_LORA_UPDATING");
	s->runtime_lora = rl && (!strcasecmp(rl, "true") || !strcmp(rl, "1"));
	s->kv_capacity = (uint64_t)s->o.max_num_seqs * 256 > (uint64_t)s->max_model_len * 4
				 ? (uint64_t)s->o.max_num_seqs * 256 : (uint64_t)s->max_model_len * 4;
	s->ttft = (struct sim_hist){ .bounds = ttft_b, .nb = sizeof ttft_b / sizeof ttft_b[0] };
	s->itl = (struct sim_hist){ .bounds = itl_b, .nb = sizeof itl_b / sizeof itl_b[0] };
	s->e2e = (struct sim_hist){ .bounds = e2e_b, .nb = sizeof e2e_b / sizeof e2e_b[0] };
	s->queue = (struct sim_hist){ .bounds = e2e_b, .nb = sizeof e2e_b / sizeof e2e_b[0] };
	srand((unsigned)s->o.seed);
	signal(SIGPIPE, SIG_IGN);

	vlog("INFO", "api_server.py:1896", "vLLM API server version %s (aimaas-sim: simulated, no weights are loaded)",
	     VLLM_VERSION);
	struct am_buf args;
	am_buf_init(&args, 8192);
	for (int i = 0; i < argc; i++)
		am_buf_printf(&args, "%s%s", i ? " " : "", argv[i]);
	vlog("INFO", "utils.py:328", "non-default args: %s", am_buf_str(&args));
	am_buf_free(&args);
	static const char *const kinds[] = { "generate", "embed", "score" };
	vlog("INFO", "model.py:547", "Resolved architecture for %s: task %s, max_model_len %d, tensor_parallel_size %d",
	     s->o.model, kinds[s->kind], s->max_model_len, s->o.tp);

	s->base = event_base_new();
	struct am_http_config hc;
	am_http_config_defaults(&hc);
	hc.max_body = 64u << 20;
	hc.idle_timeout_s = 600; /* clients (and aimaas's pools) keep connections */
	struct am_http_handlers h = { .on_head = on_head, .on_request = on_request, .on_done = on_done,
				      .on_error = on_http_error, .data = s };
	s->http = am_http_server_new(s->base, &hc, &h);
	char addr[300], err[300];
	int v6 = strchr(s->o.host, ':') != NULL;
	am_fmt(addr, sizeof addr, v6 ? "[%s]:%d" : "%s:%d", s->o.host, s->o.port);
	if (am_http_server_listen(s->http, addr, err, sizeof err) != 0) {
		vlog("ERROR", "api_server.py:1840", "[Errno 98] error while attempting to bind on address (%s): address already in use (%s)",
		     addr, err);
		am_http_server_free(s->http);
		event_base_free(s->base);
		free(s);
		return 1;
	}
	struct event *sigterm = evsignal_new(s->base, SIGTERM, on_signal, s);
	struct event *sigint = evsignal_new(s->base, SIGINT, on_signal, s);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	struct event *ready = evtimer_new(s->base, on_ready, s);
	struct timeval tv = { s->o.startup_ms / 1000, (s->o.startup_ms % 1000) * 1000 };
	evtimer_add(ready, &tv);
	event_base_dispatch(s->base);

	/* requests still in flight are dropped with their connections */
	s->stopping = 1;
	am_http_server_free(s->http);
	if (s->crash_timer)
		event_free(s->crash_timer);
	while (s->running) {
		struct sim_req *r = s->running;
		unlink_req(r);
		req_free(r);
	}
	while (s->wait_head) {
		struct sim_req *r = s->wait_head;
		unlink_req(r);
		req_free(r);
	}
	event_free(ready);
	event_free(sigterm);
	event_free(sigint);
	event_base_free(s->base);
	free(s);
	libevent_global_shutdown();
	return g_exit;
}
