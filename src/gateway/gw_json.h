/* gw_json: reading the few top-level members the gateway acts on ("model",
 * "stream", "stream_options") from a request body without building a tree,
 * and the token counts from an answer's "usage". Bounded and allocation-free.
 *
 * The body scan accepts exactly what jansson (and so the rewrite that
 * follows it) accepts, and reads keys and values decoded, as the engine
 * will: "mod\u0065l" is "model". tests/fuzz/fuzz_gw_body.c holds the two
 * to that on every input. */
#ifndef GW_JSON_H
#define GW_JSON_H

#include <stddef.h>

enum gw_json_err {
	GW_JSON_OK = 0,
	GW_JSON_SYNTAX,        /* not JSON as jansson reads it: why, at */
	GW_JSON_NOT_OBJECT,    /* JSON, but not an object */
	GW_JSON_DUPLICATE,     /* a member the gateway acts on appears twice: field */
	GW_JSON_TYPE,          /* such a member has the wrong type: field, why */
};

struct gw_peek {
	char model[256];      /* decoded; "" when absent, null or too long */
	int has_model;        /* "model" is a string */
	int model_too_long;   /* it is, and longer than model[] holds */
	int stream;           /* "stream": true */
	int has_stream_options;  /* "stream_options" is an object */
	int stream_options_seen; /* the member is there at all (null included) */
	int valid;            /* err == GW_JSON_OK */
	enum gw_json_err err;
	char field[16];       /* the member at fault */
	const char *why;      /* what is wrong (a static string) */
	size_t at;            /* the byte offset of a syntax error */
};

/* Scans body as one JSON object; fills out (out->err says why not). */
void gw_json_peek(const char *body, size_t len, struct gw_peek *out);
/* prompt_tokens / completion_tokens / total_tokens of the first "usage"
 * object in s (an answer or an SSE event). 1 when found. */
int gw_json_usage(const char *s, size_t len, long long *prompt, long long *completion, long long *total);

#endif
