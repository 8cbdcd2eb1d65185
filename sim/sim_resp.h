/* sim_resp: the OpenAI Responses API as vLLM's serving_responses answers it
 * for a plain (non-harmony) chat model: the request's input turned into
 * chat messages, the response object, and the named SSE events of a stream
 * (event: TYPE / data: JSON, a sequence_number on each, no [DONE]).
 * sim_serve.c schedules and paces the tokens; this module only shapes. */
#ifndef SIM_RESP_H
#define SIM_RESP_H

#include <jansson.h>
#include <stddef.h>

#include "base/am_buf.h"

struct sim_resp {
	json_t *base;       /* the response object less status, output and usage */
	char msg_id[48];    /* the output message's id */
	unsigned seq;       /* the next event's sequence_number */
	struct am_buf text; /* the deltas streamed so far */
};

/* The chat messages a Responses request stands for: "instructions" as a
 * system message, then "input" (a string, or a list of messages and
 * items: input_text/output_text parts, input_image as an image_url part,
 * function_call and function_call_output). 0 with *out set (caller owns),
 * or -1 with err naming the field. */
int sim_resp_messages(json_t *body, json_t **out, char *err, size_t errsize);

/* Fills r for a request: id ("resp_…"), created, the served model name,
 * the sampling values in force, and the members vLLM echoes from the body.
 * Free with sim_resp_free. */
void sim_resp_init(struct sim_resp *r, json_t *body, const char *id, long created, const char *model,
		   double temperature, double top_p, long long max_tokens);
void sim_resp_free(struct sim_resp *r);

/* The whole response object (caller owns): status "completed", the
 * message holding text (no output item when text is empty) and the usage. */
json_t *sim_resp_object(const struct sim_resp *r, const char *text, size_t len, size_t input_tokens,
			size_t output_tokens);

/* Stream events appended to out: the opening (response.created,
 * response.in_progress, and when has_text the output_item.added and
 * content_part.added), one output_text.delta, and the closing
 * (output_text.done, content_part.done, output_item.done when text was
 * streamed, then response.completed). */
void sim_resp_stream_open(struct sim_resp *r, int has_text, struct am_buf *out);
void sim_resp_stream_delta(struct sim_resp *r, const char *delta, size_t n, struct am_buf *out);
void sim_resp_stream_close(struct sim_resp *r, size_t input_tokens, size_t output_tokens, struct am_buf *out);

#endif
