/* gw_json: reading the few top-level members the gateway needs ("model",
 * "stream", "stream_options") from a request body without building a tree,
 * and the token counts from an answer's "usage". Bounded and allocation-free. */
#ifndef GW_JSON_H
#define GW_JSON_H

#include <stddef.h>

struct gw_peek {
	char model[256];      /* "" when absent or not a string */
	int has_model;
	int stream;           /* "stream": true */
	int has_stream_options;
	int valid;            /* the body is one JSON object (as far as the scan goes) */
};

void gw_json_peek(const char *body, size_t len, struct gw_peek *out);
/* prompt_tokens / completion_tokens / total_tokens of the first "usage"
 * object in s (an answer or an SSE event). 1 when found. */
int gw_json_usage(const char *s, size_t len, long long *prompt, long long *completion, long long *total);

#endif
