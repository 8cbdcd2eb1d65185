/* sim_resp: Responses API shapes (vLLM's protocol.py ResponsesResponse,
 * serving_responses' simple streaming events). */
#include "sim_resp.h"

#include <string.h>

#include "base/am_mem.h"

/* One input content part as a chat part. */
static json_t *chat_part(json_t *part, size_t i, size_t k, char *err, size_t errsize)
{
	const char *type = json_string_value(json_object_get(part, "type"));
	if (json_is_string(part))
		return json_pack("{s:s,s:O}", "type", "text", "text", part);
	if (!type) {
		am_fmt(err, errsize, "input[%zu].content[%zu].type is required", i, k);
		return NULL;
	}
	if (!strcmp(type, "input_text") || !strcmp(type, "output_text") || !strcmp(type, "text") ||
	    !strcmp(type, "refusal")) {
		json_t *t = json_object_get(part, strcmp(type, "refusal") ? "text" : "refusal");
		if (!json_is_string(t)) {
			am_fmt(err, errsize, "input[%zu].content[%zu].text must be a string", i, k);
			return NULL;
		}
		return json_pack("{s:s,s:O}", "type", "text", "text", t);
	}
	if (!strcmp(type, "input_image")) {
		json_t *url = json_object_get(part, "image_url");
		return json_pack("{s:s,s:{s:O}}", "type", "image_url", "image_url", "url", json_is_string(url) ? url : json_null());
	}
	if (!strcmp(type, "input_audio") || !strcmp(type, "input_file"))
		return json_pack("{s:s}", "type", "input_audio");
	am_fmt(err, errsize, "input[%zu].content[%zu] has an unknown type '%.64s'", i, k, type);
	return NULL;
}

/* One input item as a chat message; NULL with err, or with err empty for
 * an item that adds nothing (reasoning). */
static json_t *chat_message(json_t *item, size_t i, char *err, size_t errsize)
{
	if (!json_is_object(item)) {
		am_fmt(err, errsize, "input[%zu] must be an object", i);
		return NULL;
	}
	const char *type = json_string_value(json_object_get(item, "type"));
	const char *role = json_string_value(json_object_get(item, "role"));
	if (type && !strcmp(type, "function_call")) {
		json_t *a = json_object_get(item, "arguments");
		return json_pack("{s:s,s:s}", "role", "assistant", "content", json_is_string(a) ? json_string_value(a) : "");
	}
	if (type && !strcmp(type, "function_call_output")) {
		json_t *o = json_object_get(item, "output");
		return json_pack("{s:s,s:s}", "role", "tool", "content", json_is_string(o) ? json_string_value(o) : "");
	}
	if (type && !strcmp(type, "reasoning"))
		return NULL;
	if (type && strcmp(type, "message") != 0) {
		am_fmt(err, errsize, "input[%zu] has an unknown type '%.64s'", i, type);
		return NULL;
	}
	if (!role) {
		am_fmt(err, errsize, "input[%zu].role is required", i);
		return NULL;
	}
	json_t *c = json_object_get(item, "content");
	json_t *content;
	if (json_is_string(c)) {
		content = json_incref(c);
	} else if (json_is_array(c)) {
		content = json_array();
		size_t k;
		json_t *part;
		json_array_foreach(c, k, part) {
			json_t *p = chat_part(part, i, k, err, errsize);
			if (!p) {
				json_decref(content);
				return NULL;
			}
			json_array_append_new(content, p);
		}
	} else {
		am_fmt(err, errsize, "input[%zu].content must be a string or a list of parts", i);
		return NULL;
	}
	return json_pack("{s:s,s:o}", "role", strcmp(role, "developer") ? role : "system", "content", content);
}

int sim_resp_messages(json_t *body, json_t **out, char *err, size_t errsize)
{
	json_t *msgs = json_array();
	json_t *instr = json_object_get(body, "instructions");
	json_t *input = json_object_get(body, "input");
	err[0] = '\0';
	if (instr && !json_is_null(instr)) {
		if (!json_is_string(instr)) {
			am_fmt(err, errsize, "'instructions' must be a string");
			goto bad;
		}
		json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", "system", "content", instr));
	}
	if (json_is_string(input)) {
		json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", "user", "content", input));
	} else if (json_is_array(input)) {
		size_t i;
		json_t *item;
		json_array_foreach(input, i, item) {
			json_t *m = chat_message(item, i, err, errsize);
			if (!m && err[0])
				goto bad;
			if (m)
				json_array_append_new(msgs, m);
		}
	} else {
		am_fmt(err, errsize, input ? "'input' must be a string or a list of input items" : "'input' is required");
		goto bad;
	}
	if (json_array_size(msgs) == 0) {
		am_fmt(err, errsize, "'input' must not be empty");
		goto bad;
	}
	*out = msgs;
	return 0;
bad:
	json_decref(msgs);
	return -1;
}

/* The body's member, or dflt (new reference) when absent or null. */
static json_t *echo(json_t *body, const char *key, json_t *dflt)
{
	json_t *v = json_object_get(body, key);
	if (!v || json_is_null(v))
		return dflt;
	json_decref(dflt);
	return json_deep_copy(v);
}

void sim_resp_init(struct sim_resp *r, json_t *body, const char *id, long created, const char *model,
		   double temperature, double top_p, long long max_tokens)
{
	memset(r, 0, sizeof *r);
	am_buf_init(&r->text, 1 << 27);
	json_t *b = json_object();
	json_object_set_new(b, "id", json_string(id));
	json_object_set_new(b, "created_at", json_integer(created));
	json_object_set_new(b, "incomplete_details", json_null());
	json_object_set_new(b, "instructions", echo(body, "instructions", json_null()));
	json_object_set_new(b, "metadata", echo(body, "metadata", json_null()));
	json_object_set_new(b, "model", json_string(model));
	json_object_set_new(b, "object", json_string("response"));
	json_object_set_new(b, "output", json_array());
	json_object_set_new(b, "parallel_tool_calls", echo(body, "parallel_tool_calls", json_true()));
	json_object_set_new(b, "temperature", json_real(temperature));
	json_object_set_new(b, "tool_choice", echo(body, "tool_choice", json_string("auto")));
	json_object_set_new(b, "tools", echo(body, "tools", json_array()));
	json_object_set_new(b, "top_p", json_real(top_p));
	json_object_set_new(b, "background", echo(body, "background", json_false()));
	json_object_set_new(b, "max_output_tokens", json_integer(max_tokens));
	json_object_set_new(b, "max_tool_calls", echo(body, "max_tool_calls", json_null()));
	json_object_set_new(b, "previous_response_id", json_null());
	json_object_set_new(b, "prompt", json_null());
	json_object_set_new(b, "reasoning", echo(body, "reasoning", json_null()));
	json_object_set_new(b, "service_tier", echo(body, "service_tier", json_string("auto")));
	json_object_set_new(b, "status", json_string("in_progress"));
	json_object_set_new(b, "text", echo(body, "text", json_null()));
	json_object_set_new(b, "top_logprobs", json_null());
	json_object_set_new(b, "truncation", echo(body, "truncation", json_string("disabled")));
	json_object_set_new(b, "usage", json_null());
	json_object_set_new(b, "user", echo(body, "user", json_null()));
	json_object_set_new(b, "input_messages", json_null());
	json_object_set_new(b, "output_messages", json_null());
	r->base = b;
	/* msg_ + 32 hex digits, as vLLM's random_uuid() */
	am_fmt(r->msg_id, sizeof r->msg_id, "msg_%.32s", strchr(id, '_') ? strchr(id, '_') + 1 : id);
}

void sim_resp_free(struct sim_resp *r)
{
	json_decref(r->base);
	r->base = NULL;
	am_buf_free(&r->text);
}

static json_t *text_part(const char *text, size_t len, int logprobs_list)
{
	return json_pack("{s:[],s:s%,s:s,s:o}", "annotations", "text", text, len, "type", "output_text", "logprobs",
			 logprobs_list ? json_array() : json_null());
}

static json_t *message_item(const char *id, json_t *content, const char *status)
{
	return json_pack("{s:s,s:o,s:s,s:s,s:s}", "id", id, "content", content, "role", "assistant", "status", status,
			 "type", "message");
}

static json_t *usage(size_t in, size_t out)
{
	return json_pack("{s:I,s:{s:i,s:[],s:[]},s:I,s:{s:i,s:i,s:[],s:[]},s:I}", "input_tokens", (json_int_t)in,
			 "input_tokens_details", "cached_tokens", 0, "input_tokens_per_turn", "cached_tokens_per_turn",
			 "output_tokens", (json_int_t)out, "output_tokens_details", "reasoning_tokens", 0,
			 "tool_output_tokens", 0, "output_tokens_per_turn", "tool_output_tokens_per_turn", "total_tokens",
			 (json_int_t)(in + out));
}

json_t *sim_resp_object(const struct sim_resp *r, const char *text, size_t len, size_t input_tokens,
			size_t output_tokens)
{
	json_t *o = json_deep_copy(r->base);
	json_t *output = json_array();
	if (len)
		json_array_append_new(output, message_item(r->msg_id, json_pack("[o]", text_part(text, len, 0)), "completed"));
	json_object_set_new(o, "output", output);
	json_object_set_new(o, "status", json_string("completed"));
	json_object_set_new(o, "usage", usage(input_tokens, output_tokens));
	return o;
}

/* Appends one named event: {"type":…,"sequence_number":…,…fields}. */
static void event(struct sim_resp *r, struct am_buf *out, const char *type, json_t *fields)
{
	json_t *e = json_pack("{s:s,s:i}", "type", type, "sequence_number", (int)r->seq++);
	json_object_update(e, fields);
	json_decref(fields);
	char *s = json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
	am_buf_printf(out, "event: %s\ndata: %s\n\n", type, s ? s : "{}");
	free(s);
	json_decref(e);
}

void sim_resp_stream_open(struct sim_resp *r, int has_text, struct am_buf *out)
{
	event(r, out, "response.created", json_pack("{s:O}", "response", r->base));
	event(r, out, "response.in_progress", json_pack("{s:O}", "response", r->base));
	if (!has_text)
		return;
	event(r, out, "response.output_item.added",
	      json_pack("{s:i,s:o}", "output_index", 0, "item", message_item(r->msg_id, json_array(), "in_progress")));
	event(r, out, "response.content_part.added",
	      json_pack("{s:i,s:s,s:i,s:o}", "output_index", 0, "item_id", r->msg_id, "content_index", 0, "part",
			text_part("", 0, 1)));
}

void sim_resp_stream_delta(struct sim_resp *r, const char *delta, size_t n, struct am_buf *out)
{
	am_buf_add(&r->text, delta, n);
	event(r, out, "response.output_text.delta",
	      json_pack("{s:i,s:i,s:s,s:s%,s:[]}", "content_index", 0, "output_index", 0, "item_id", r->msg_id, "delta",
			delta, n, "logprobs"));
}

void sim_resp_stream_close(struct sim_resp *r, size_t input_tokens, size_t output_tokens, struct am_buf *out)
{
	const char *t = r->text.data ? r->text.data : "";
	if (r->text.len) {
		event(r, out, "response.output_text.done",
		      json_pack("{s:i,s:i,s:s%,s:[],s:s}", "output_index", 0, "content_index", 0, "text", t, r->text.len,
				"logprobs", "item_id", r->msg_id));
		event(r, out, "response.content_part.done",
		      json_pack("{s:s,s:i,s:i,s:o}", "item_id", r->msg_id, "output_index", 0, "content_index", 0, "part",
				text_part(t, r->text.len, 0)));
		event(r, out, "response.output_item.done",
		      json_pack("{s:i,s:o}", "output_index", 0, "item",
				message_item(r->msg_id, json_pack("[o]", text_part(t, r->text.len, 0)), "completed")));
	}
	event(r, out, "response.completed",
	      json_pack("{s:o}", "response", sim_resp_object(r, t, r->text.len, input_tokens, output_tokens)));
}
