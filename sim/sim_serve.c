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
	static const char hex[] = "0123456789abcdef";
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		am_buf_add(b, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"': am_buf_add(b, "\\\"", 2); break;
		case '\\': am_buf_add(b, "\\\\", 2); break;
		case '\n': am_buf_add(b, "\\n", 2); break;
		case '\r': am_buf_add(b, "\\r", 2); break;
		case '\t': am_buf_add(b, "\\t", 2); break;
		default: {
			char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			am_buf_add(b, u, 6);
		}
		}
	}
	am_buf_add(b, s + run, n - run);
}

void sim_reply_json(struct am_http_req *req, int status, json_t *v)
{
	/* 9 significant digits round-trip a float32 (embeddings, scores) */
	char *s = json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(9));
	am_http_respond(req, status, "application/json", s, strlen(s));
	free(s);
}

void sim_error(struct am_http_req *req, int status, const char *type, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	json_t *e = json_pack("{s:{s:s,s:s,s:n,s:i}}", "error", "message", msg, "type", type, "param", "code", status);
	sim_reply_json(req, status, e);
	json_decref(e);
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

int sim_check_model(struct sim *s, struct am_http_req *req, json_t *body)
{
	json_t *m = json_object_get(body, "model");
	if (m && !json_is_null(m) && !json_is_string(m)) {
		sim_error(req, 400, "BadRequestError", "'model' must be a string");
		return -1;
	}
	if (m && json_is_string(m) && !sim_model_known(s, json_string_value(m))) {
		sim_error(req, 404, "NotFoundError", "The model `%s` does not exist.", json_string_value(m));
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

struct sim_req {
	struct sim *s;
	struct am_http_req *http;
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

static void tool_args_for(json_t *tool, struct am_buf *out)
{
	json_t *props = json_object_get(json_object_get(json_object_get(tool, "function"), "parameters"), "properties");
	json_t *args = json_object();
	const char *k;
	json_t *p;
	json_object_foreach(props, k, p) {
		const char *type = json_string_value(json_object_get(p, "type"));
		json_t *en = json_object_get(p, "enum");
		if (json_is_array(en) && json_array_size(en))
			json_object_set(args, k, json_array_get(en, 0));
		else if (type && (!strcmp(type, "integer") || !strcmp(type, "number")))
			json_object_set_new(args, k, json_integer(1));
		else if (type && !strcmp(type, "boolean"))
			json_object_set_new(args, k, json_true());
		else if (type && !strcmp(type, "array"))
			json_object_set_new(args, k, json_array());
		else if (type && !strcmp(type, "object"))
			json_object_set_new(args, k, json_object());
		else if (strstr(k, "city") || strstr(k, "location"))
			json_object_set_new(args, k, json_string("Beijing"));
		else
			json_object_set_new(args, k, json_string("example"));
	}
	char *s = json_dumps(args, JSON_COMPACT | JSON_PRESERVE_ORDER);
	am_buf_adds(out, s);
	free(s);
	json_decref(args);
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

static void generate(struct sim *s, struct am_http_req *http, json_t *body, int chat)
{
	char err[512] = "";
	if (sim_check_model(s, http, body) != 0)
		return;
	if (s->kind != SIM_CHAT) {
		sim_error(http, 400, "BadRequestError", "The model does not support %s API",
			  chat ? "Chat Completions" : "Completions");
		return;
	}
	struct am_buf prompt, echo;
	am_buf_init(&prompt, 1 << 27);
	am_buf_init(&echo, 1 << 27);
	struct sim_req *r = NULL;
	json_t *tool = NULL;
	if (chat) {
		json_t *msgs = json_object_get(body, "messages");
		if (sim_chat_prompt(msgs, &prompt, &echo, err, sizeof err) != 0)
			goto bad;
		tool = pick_tool(body, err, sizeof err);
		if (err[0])
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
	json_t *stream = json_object_get(body, "stream");
	if (stream && !json_is_boolean(stream) && !json_is_null(stream)) {
		am_fmt(err, sizeof err, "'stream' must be a boolean");
		goto bad;
	}
	json_t *mt = json_object_get(body, "max_completion_tokens");
	if (!mt || json_is_null(mt))
		mt = json_object_get(body, "max_tokens");
	if (mt && !json_is_null(mt) && (!json_is_integer(mt) || json_integer_value(mt) < 1)) {
		am_fmt(err, sizeof err, "max_tokens must be at least 1, got %s.", json_is_integer(mt) ? "a smaller value" : "a non-integer");
		goto bad;
	}
	size_t ptoks = sim_count_tokens(prompt.data ? prompt.data : "", prompt.len);
	long long max_tokens = mt && json_is_integer(mt) ? json_integer_value(mt) : (long long)s->max_model_len - (long long)ptoks;
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
	r->chat = chat;
	r->stream = json_is_true(stream);
	r->include_usage = r->stream && json_is_true(json_object_get(json_object_get(body, "stream_options"), "include_usage"));
	r->prompt_tokens = ptoks;
	r->arrival_ns = am_now_ns();
	am_fmt(r->id, sizeof r->id, "%s-%016llx%08llx", chat ? "chatcmpl" : "cmpl",
	       (unsigned long long)sim_hash(&s->counter, sizeof s->counter, (uint64_t)s->created), (unsigned long long)s->counter);
	s->counter++;
	const char *mname = json_string_value(json_object_get(body, "model"));
	if (mname) {
		struct am_buf m;
		am_buf_init(&m, sizeof r->model_json - 1);
		sim_json_escape(&m, mname, strlen(mname));
		am_strlcpy(r->model_json, am_buf_str(&m), sizeof r->model_json);
		am_buf_free(&m);
	} else {
		am_strlcpy(r->model_json, s->name_json, sizeof r->model_json);
	}

	/* what comes out */
	struct am_buf text;
	am_buf_init(&text, 1 << 27);
	r->finish = "stop";
	if (tool) {
		r->tool_name = am_strdup(json_string_value(json_object_get(json_object_get(tool, "function"), "name")));
		tool_args_for(tool, &text);
		am_fmt(r->tool_id, sizeof r->tool_id, "chatcmpl-tool-%016llx", (unsigned long long)sim_hash(r->id, strlen(r->id), 3));
		r->finish = "tool_calls";
	} else if (s->o.mode == SIM_ECHO) {
		am_buf_add(&text, echo.data ? echo.data : "", echo.len);
	} else {
		json_t *seed = json_object_get(body, "seed");
		uint64_t sd = sim_hash(prompt.data ? prompt.data : "", prompt.len,
				       (uint64_t)(json_is_integer(seed) ? json_integer_value(seed) : s->o.seed));
		sim_generate(sd, (size_t)s->o.output_tokens, &text);
	}
	/* stop strings end the text where they begin */
	json_t *stop = json_object_get(body, "stop");
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
	if ((long long)r->out.n > max_tokens) {
		r->out.n = (size_t)max_tokens;
		r->finish = r->tool_name ? "tool_calls" : "length";
	} else if (!r->tool_name && s->o.mode == SIM_RANDOM && max_tokens == (long long)r->out.n &&
		   (long long)s->o.output_tokens > max_tokens) {
		r->finish = "length";
	}

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
	struct sim_lora *l = &s->loras[s->nloras++];
	memset(l, 0, sizeof *l);
	am_strlcpy(l->name, name, sizeof l->name);
	am_strlcpy(l->path, path, sizeof l->path);
	char msg[300];
	am_fmt(msg, sizeof msg, "Success: LoRA adapter '%s' added successfully.", name);
	vlog("INFO", "serving_models.py:120", "Loaded new LoRA adapter: name '%s', path '%s'", name, path);
	am_http_respond(req, 200, "text/plain; charset=utf-8", msg, strlen(msg));
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

static void hist_render(struct am_buf *b, const char *name, const struct sim_hist *h, const char *labels)
{
	am_buf_printf(b, "# HELP %s Histogram of %s.\n# TYPE %s histogram\n", name, name + 5, name);
	uint64_t cum = 0;
	for (int i = 0; i <= h->nb; i++) {
		cum += h->counts[i];
		if (i < h->nb)
			am_buf_printf(b, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, h->bounds[i], (unsigned long long)cum);
		else
			am_buf_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels, (unsigned long long)cum);
	}
	am_buf_printf(b, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels, h->sum, name, labels,
		      (unsigned long long)h->count);
}

static void metrics(struct sim *s, struct am_http_req *req)
{
	struct am_buf b;
	am_buf_init(&b, 1 << 20);
	char labels[400];
	am_fmt(labels, sizeof labels, "engine=\"0\",model_name=\"%s\"", s->name_json);
	uint64_t used = 0;
	for (struct sim_req *r = s->running; r; r = r->next)
		used += r->prompt_tokens + r->sent;
	double kv = s->kv_capacity ? (double)used / (double)s->kv_capacity : 0;
	am_buf_printf(&b,
		      "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
		      "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{%s} %d\n"
		      "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
		      "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{%s} %d\n"
		      "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
		      "# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{%s} %.6f\n"
		      "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n"
		      "# TYPE vllm:prompt_tokens_total counter\nvllm:prompt_tokens_total{%s} %llu\n"
		      "# HELP vllm:generation_tokens_total Number of generation tokens processed.\n"
		      "# TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total{%s} %llu\n"
		      "# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.\n"
		      "# TYPE vllm:num_preemptions_total counter\nvllm:num_preemptions_total{%s} 0\n"
		      "# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.\n"
		      "# TYPE vllm:prefix_cache_queries_total counter\nvllm:prefix_cache_queries_total{%s} %llu\n"
		      "# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.\n"
		      "# TYPE vllm:prefix_cache_hits_total counter\nvllm:prefix_cache_hits_total{%s} %llu\n"
		      "# HELP vllm:request_success_total Count of successfully processed requests.\n"
		      "# TYPE vllm:request_success_total counter\n"
		      "vllm:request_success_total{%s,finished_reason=\"stop\"} %llu\n"
		      "vllm:request_success_total{%s,finished_reason=\"length\"} %llu\n"
		      "vllm:request_success_total{%s,finished_reason=\"abort\"} %llu\n",
		      labels, s->nrunning, labels, s->nwaiting, labels, kv, labels, (unsigned long long)s->prompt_tokens,
		      labels, (unsigned long long)s->gen_tokens, labels, labels, (unsigned long long)s->prefix_queries,
		      labels, (unsigned long long)s->prefix_hits, labels, (unsigned long long)s->success_stop, labels,
		      (unsigned long long)s->success_length, labels, (unsigned long long)s->success_abort);
	hist_render(&b, "vllm:time_to_first_token_seconds", &s->ttft, labels);
	hist_render(&b, "vllm:inter_token_latency_seconds", &s->itl, labels);
	hist_render(&b, "vllm:e2e_request_latency_seconds", &s->e2e, labels);
	hist_render(&b, "vllm:request_queue_time_seconds", &s->queue, labels);
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
	if (strcmp(req->method, "POST") != 0) {
		const char *b = "{\"detail\":\"Method Not Allowed\"}";
		if (!strcmp(req->path, "/v1/chat/completions") || !strcmp(req->path, "/v1/completions") ||
		    !strcmp(req->path, "/v1/embeddings"))
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
		generate(s, req, body, 1);
	} else if (is(req, "POST", "/v1/completions")) {
		generate(s, req, body, 0);
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

/* What the model folder says: kind, context, heads, hidden size. */
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
		json_t *v = json_object_get(cfg, "num_attention_heads");
		if (!v)
			v = json_object_get(json_object_get(cfg, "text_config"), "num_attention_heads");
		s->attention_heads = json_is_integer(v) ? (int)json_integer_value(v) : 0;
		v = json_object_get(cfg, "max_position_embeddings");
		if (!s->o.max_model_len && json_is_integer(v))
			s->max_model_len = (int)json_integer_value(v);
		v = json_object_get(cfg, "hidden_size");
		if (!s->o.embedding_dim && json_is_integer(v))
			s->embed_dim = (int)json_integer_value(v);
		json_decref(cfg);
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
	if (!s->o.api_key && getenv("VLLM_API_KEY") && *getenv("VLLM_API_KEY"))
		s->o.api_key = getenv("VLLM_API_KEY"); /* as vLLM: the flag, else the environment */
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
