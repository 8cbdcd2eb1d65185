/* api_playground: one chat request sent to several served models at once
 * and the answers returned side by side, e.g. a base model and the LoRA
 * adapter fine-tuned from it. Each model is called through the gateway
 * (am_gateway_connect), in parallel, from the main loop: the gateway
 * routes it, answers for a model that is not running, and meters it under
 * the caller as it meters the console's own /v1 calls. */
#include <math.h>
#include <string.h>

#include "../am_server.h"
#include "../base/am_json.h"
#include "../base/am_mem.h"
#include "../base/am_time.h"
#include "../gateway/am_gateway.h"
#include "../http/am_client.h"
#include "am_api.h"

#define CMP_MAX 4

struct compare;
struct leg {
	struct compare *c;
	struct am_client_req *cr;
	char model[129];
	uint64_t start_ns;
	json_t *result;
};

struct compare {
	struct am_http_req *req;
	struct leg legs[CMP_MAX];
	int n, pending;
};

static void compare_free(struct compare *c)
{
	for (int i = 0; i < c->n; i++) {
		am_client_cancel(c->legs[i].cr);
		json_decref(c->legs[i].result);
	}
	free(c);
}

static void on_abort(struct am_http_req *req, void *data)
{
	(void)req;
	compare_free(data);
}

static void on_answer(int status, const char *body, size_t len, void *data)
{
	struct leg *l = data;
	struct compare *c = l->c;
	l->cr = NULL; /* the client frees itself after this callback */
	double ms = (double)(am_now_ns() - l->start_ns) / 1e6;
	json_t *j = len ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *msg = json_object_get(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"), "content");
	if (status == 200 && json_is_string(msg))
		l->result = json_pack("{s:s,s:i,s:O,s:O,s:O,s:f}", "model", l->model, "status", 200, "content", msg,
				      "finish_reason",
				      json_object_get(json_array_get(json_object_get(j, "choices"), 0), "finish_reason") ?: json_null(),
				      "usage", json_object_get(j, "usage") ?: json_null(), "latency_ms", ms);
	else {
		const char *why = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
		l->result = json_pack("{s:s,s:i,s:s,s:f}", "model", l->model, "status", status ? status : 502, "error",
				      why ? why : status ? "the gateway refused the request" : "the gateway did not answer", "latency_ms",
				      ms);
	}
	json_decref(j);
	if (--c->pending > 0)
		return;
	json_t *out = json_array();
	for (int i = 0; i < c->n; i++) {
		json_array_append_new(out, c->legs[i].result);
		c->legs[i].result = NULL;
	}
	struct am_http_req *req = c->req;
	am_http_on_abort(req, NULL, NULL);
	compare_free(c);
	json_t *resp = json_pack("{s:o}", "results", out);
	am_api_reply_json(req, 200, resp);
	json_decref(resp);
}

static int compare(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "models", "messages", "max_tokens", "temperature", "seed", NULL };
	long long max_tokens = 256, seed = -1;
	if (am_json_only(ctx->body, fields, err) != 0 ||
	    am_json_get_int(ctx->body, "max_tokens", AM_JSON_OPTIONAL, 1, 32768, &max_tokens, err) != 0 ||
	    am_json_get_int(ctx->body, "seed", AM_JSON_OPTIONAL, 0, 2147483647, &seed, err) != 0)
		return -1;
	json_t *models = json_object_get(ctx->body, "models"), *messages = json_object_get(ctx->body, "messages");
	json_t *temp = json_object_get(ctx->body, "temperature");
	if (!json_is_array(models) || json_array_size(models) < 2 || json_array_size(models) > CMP_MAX)
		return am_err_set(err, AM_E_INVALID, "models", "'models' must list 2 to %d served model names", CMP_MAX);
	if (!json_is_array(messages) || !json_array_size(messages))
		return am_err_set(err, AM_E_INVALID, "messages", "'messages' must be a non-empty list of chat messages");
	size_t i;
	json_t *m;
	json_array_foreach(messages, i, m)
		if (!json_is_object(m) || !json_is_string(json_object_get(m, "role")) || !json_object_get(m, "content"))
			return am_err_set(err, AM_E_INVALID, "messages", "messages[%zu] needs a 'role' and a 'content'", i);
	if (temp && (!json_is_number(temp) || json_number_value(temp) < 0 || json_number_value(temp) > 2))
		return am_err_set(err, AM_E_INVALID, "temperature", "'temperature' must be a number from 0 to 2");
	json_array_foreach(models, i, m) {
		if (!json_is_string(m))
			return am_err_set(err, AM_E_INVALID, "models", "models[%zu] must be a served model name", i);
		if (!am_gateway_serves(ctx->srv->gateway, json_string_value(m)))
			return am_err_set(err, AM_E_INVALID, "models", "models[%zu]: no deployment serves '%.128s'", i,
					  json_string_value(m));
	}
	struct compare *c = am_calloc(1, sizeof *c);
	c->req = ctx->req;
	c->n = c->pending = (int)json_array_size(models);
	for (int k = 0; k < c->n; k++) {
		struct leg *l = &c->legs[k];
		l->c = c;
		am_strlcpy(l->model, json_string_value(json_array_get(models, (size_t)k)), sizeof l->model);
		json_t *body = json_pack("{s:s,s:O,s:I,s:b}", "model", l->model, "messages", messages, "max_tokens",
					 (json_int_t)max_tokens, "stream", 0);
		if (temp)
			json_object_set(body, "temperature", temp);
		if (seed >= 0)
			json_object_set_new(body, "seed", json_integer(seed));
		char *s = am_json_dump(body);
		json_decref(body);
		char hdrs[256] = "";
		int fd = am_gateway_connect(ctx->srv->gateway, ctx->who.user_id, hdrs, sizeof hdrs);
		l->start_ns = am_now_ns();
		l->cr = am_client_request_fd(ctx->srv->base, fd, "POST", "/v1/chat/completions", hdrs, s, strlen(s), 300000,
					     16u << 20, on_answer, l);
		free(s);
	}
	am_http_on_abort(ctx->req, on_abort, c);
	return 0;
}

const struct am_route_def am_api_playground_routes[] = {
	{ "POST", "/api/v1/playground/compare", compare, AM_USER, NULL, AM_ROUTE_RAW, 0 },
};
const size_t am_api_playground_nroutes = sizeof am_api_playground_routes / sizeof am_api_playground_routes[0];
