/* sim_pool: the pooling endpoints (embeddings, rerank, score) and the
 * tokenizer endpoints of the simulated vLLM server. */
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/am_mem.h"
#include "sim_state.h"
#include "sim_text.h"

int sim_chat_prompt(const struct sim *s, json_t *messages, struct am_buf *out, struct am_buf *last_user, char *err,
		    size_t errsize)
{
	if (!json_is_array(messages) || json_array_size(messages) == 0) {
		am_fmt(err, errsize, "'messages' must be a non-empty list");
		return -1;
	}
	size_t i;
	json_t *m;
	json_array_foreach(messages, i, m) {
		const char *role = json_string_value(json_object_get(m, "role"));
		if (!json_is_object(m) || !role) {
			am_fmt(err, errsize, "messages[%zu].role is required", i);
			return -1;
		}
		json_t *c = json_object_get(m, "content");
		struct am_buf text;
		am_buf_init(&text, 1 << 27);
		if (json_is_string(c)) {
			am_buf_add(&text, json_string_value(c), json_string_length(c));
		} else if (json_is_array(c)) {
			size_t k;
			json_t *part;
			json_array_foreach(c, k, part) {
				const char *type = json_string_value(json_object_get(part, "type"));
				if (type && !strcmp(type, "text"))
					am_buf_adds(&text, json_string_value(json_object_get(part, "text")) ?: "");
				else if (type && (!strcmp(type, "image_url") || !strcmp(type, "input_audio") || !strcmp(type, "video_url") ||
						  !strcmp(type, "audio_url") || !strcmp(type, "image_embeds") ||
						  !strcmp(type, "audio_embeds") || !strcmp(type, "image_pil"))) {
					if (!s->multimodal) { /* vLLM's MultiModalRegistry.create_processor */
						am_fmt(err, errsize, "%s is not a multimodal model", s->o.model);
						am_buf_free(&text);
						return -1;
					}
					am_buf_adds(&text, "<|vision_start|><|image_pad|><|vision_end|>");
				} else {
					am_fmt(err, errsize, "messages[%zu].content[%zu] has an unknown type", i, k);
					am_buf_free(&text);
					return -1;
				}
			}
		} else if (!json_is_null(c) && c) {
			am_fmt(err, errsize, "messages[%zu].content must be a string or a list of parts", i);
			am_buf_free(&text);
			return -1;
		}
		am_buf_printf(out, "<|im_start|>%s\n%s<|im_end|>\n", role, am_buf_str(&text));
		if (!strcmp(role, "user")) {
			am_buf_reset(last_user);
			am_buf_add(last_user, text.data ? text.data : "", text.len);
		}
		am_buf_free(&text);
	}
	am_buf_adds(out, "<|im_start|>assistant\n");
	return 0;
}

static json_t *usage(size_t n)
{
	return json_pack("{s:I,s:I,s:i,s:n}", "prompt_tokens", (json_int_t)n, "total_tokens", (json_int_t)n,
			 "completion_tokens", 0, "prompt_tokens_details");
}

static int pooling_only(struct sim *s, struct am_http_req *req, int kind, const char *api)
{
	if (s->kind != kind) {
		sim_error(req, 400, "BadRequestError", "The model does not support %s API", api);
		return -1;
	}
	return 0;
}

/* The texts of an embeddings input: str, [str], [int] or [[int]]. */
static int inputs(json_t *in, struct am_buf *texts, size_t *count, char *err, size_t errsize)
{
	json_t *list = json_is_string(in) ? NULL : in;
	if (!in || (!json_is_string(in) && !json_is_array(in)) || (json_is_array(in) && json_array_size(in) == 0)) {
		am_fmt(err, errsize, "'input' must be a string, a list of strings or of token ids");
		return -1;
	}
	int ids_only = list && json_is_integer(json_array_get(list, 0));
	size_t n = !list || ids_only ? 1 : json_array_size(list);
	for (size_t i = 0; i < n; i++) {
		json_t *e = !list ? in : ids_only ? list : json_array_get(list, i);
		struct am_buf *b = &texts[i];
		if (json_is_string(e)) {
			am_buf_add(b, json_string_value(e), json_string_length(e));
		} else if (json_is_array(e)) {
			size_t k;
			json_t *t;
			json_array_foreach(e, k, t)
				if (!json_is_integer(t) || sim_detokenize_one((uint32_t)json_integer_value(t), b) != 0) {
					am_fmt(err, errsize, "input[%zu] holds an invalid token id", i);
					return -1;
				}
		} else {
			am_fmt(err, errsize, "input[%zu] must be a string or a list of token ids", i);
			return -1;
		}
	}
	*count = n;
	return 0;
}

#define MAX_INPUTS 2048

void sim_pool_embeddings(struct sim *s, struct am_http_req *req, json_t *body)
{
	if (sim_check_model(s, req, body) != 0 || pooling_only(s, req, SIM_EMBED, "Embeddings") != 0)
		return;
	char err[256] = "";
	json_t *in = json_object_get(body, "input");
	size_t n = json_is_array(in) ? json_array_size(in) : 1;
	if (n > MAX_INPUTS) {
		sim_error(req, 400, "BadRequestError", "at most %d inputs per request", MAX_INPUTS);
		return;
	}
	const char *fmt = json_string_value(json_object_get(body, "encoding_format"));
	if (fmt && strcmp(fmt, "float") && strcmp(fmt, "base64")) {
		sim_error(req, 400, "BadRequestError", "encoding_format must be 'float' or 'base64'");
		return;
	}
	json_t *dj = json_object_get(body, "dimensions");
	int dim = s->embed_dim;
	if (dj && !json_is_null(dj)) {
		if (!json_is_integer(dj) || json_integer_value(dj) < 1 || json_integer_value(dj) > s->embed_dim) {
			sim_error(req, 400, "BadRequestError", "dimensions must be between 1 and %d", s->embed_dim);
			return;
		}
		dim = (int)json_integer_value(dj);
	}
	struct am_buf *texts = am_calloc(n, sizeof *texts);
	for (size_t i = 0; i < n; i++)
		am_buf_init(&texts[i], 1 << 24);
	size_t count = 0;
	if (inputs(in, texts, &count, err, sizeof err) != 0) {
		sim_error(req, 400, "BadRequestError", "%s", err);
		goto out;
	}
	json_t *data = json_array();
	size_t tokens = 0;
	float *full = am_malloc(sizeof(float) * (size_t)s->embed_dim);
	for (size_t i = 0; i < count; i++) {
		const char *t = texts[i].data ? texts[i].data : "";
		tokens += sim_count_tokens(t, texts[i].len);
		sim_embed(t, texts[i].len, full, (size_t)s->embed_dim);
		/* fewer dimensions: the leading ones, renormalised (Matryoshka-style) */
		double norm = 0;
		for (int k = 0; k < dim; k++)
			norm += (double)full[k] * full[k];
		norm = sqrt(norm);
		for (int k = 0; k < dim && norm > 0; k++)
			full[k] = (float)(full[k] / norm);
		json_t *emb;
		if (fmt && !strcmp(fmt, "base64")) {
			size_t blen = sodium_base64_ENCODED_LEN(sizeof(float) * (size_t)dim, sodium_base64_VARIANT_ORIGINAL);
			char *b64 = am_malloc(blen);
			sodium_bin2base64(b64, blen, (const unsigned char *)full, sizeof(float) * (size_t)dim,
					  sodium_base64_VARIANT_ORIGINAL);
			emb = json_string(b64);
			free(b64);
		} else {
			emb = json_array();
			for (int k = 0; k < dim; k++)
				json_array_append_new(emb, json_real(full[k]));
		}
		json_array_append_new(data, json_pack("{s:I,s:s,s:o}", "index", (json_int_t)i, "object", "embedding",
						      "embedding", emb));
	}
	free(full);
	json_t *resp = json_pack("{s:s,s:s,s:I,s:s,s:o,s:o}", "id", "embd-sim", "object", "list", "created",
				 (json_int_t)s->created, "model",
				 sim_model_name(s, body), "data", data, "usage",
				 usage(tokens));
	s->prompt_tokens += tokens;
	s->success_stop++;
	sim_reply_json(req, 200, resp);
	json_decref(resp);
out:
	for (size_t i = 0; i < n; i++)
		am_buf_free(&texts[i]);
	free(texts);
}

static const char *doc_text(json_t *d)
{
	if (json_is_string(d))
		return json_string_value(d);
	return json_string_value(json_object_get(d, "text"));
}

struct ranked {
	size_t index;
	double score;
};

static int by_score(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;
	return x->score < y->score ? 1 : x->score > y->score ? -1 : (x->index > y->index) - (x->index < y->index);
}

void sim_pool_rerank(struct sim *s, struct am_http_req *req, json_t *body)
{
	if (sim_check_model(s, req, body) != 0 || pooling_only(s, req, SIM_RERANK, "Rerank (Score)") != 0)
		return;
	const char *query = json_string_value(json_object_get(body, "query"));
	json_t *docs = json_object_get(body, "documents");
	if (!query || !json_is_array(docs)) {
		sim_error(req, 400, "BadRequestError", "'query' (a string) and 'documents' (a list) are required");
		return;
	}
	size_t n = json_array_size(docs);
	json_t *tn = json_object_get(body, "top_n");
	if (tn && !json_is_null(tn) && (!json_is_integer(tn) || json_integer_value(tn) < 0)) {
		sim_error(req, 400, "BadRequestError", "'top_n' must be a non-negative integer");
		return;
	}
	size_t top = tn && json_is_integer(tn) && json_integer_value(tn) > 0 ? (size_t)json_integer_value(tn) : n;
	if (top > n)
		top = n;
	struct ranked *r = am_calloc(n ? n : 1, sizeof *r);
	size_t tokens = 0;
	for (size_t i = 0; i < n; i++) {
		const char *t = doc_text(json_array_get(docs, i));
		if (!t) {
			free(r);
			sim_error(req, 400, "BadRequestError", "documents[%zu] must be a string or {\"text\": ...}", i);
			return;
		}
		r[i].index = i;
		r[i].score = sim_relevance(query, t);
		tokens += sim_count_tokens(query, strlen(query)) + sim_count_tokens(t, strlen(t));
	}
	qsort(r, n, sizeof *r, by_score);
	json_t *results = json_array();
	for (size_t i = 0; i < top; i++)
		json_array_append_new(results, json_pack("{s:I,s:{s:s},s:f}", "index", (json_int_t)r[i].index, "document",
							 "text", doc_text(json_array_get(docs, r[i].index)),
							 "relevance_score", r[i].score));
	free(r);
	json_t *resp = json_pack("{s:s,s:s,s:{s:I},s:o}", "id", "rerank-sim", "model",
				 sim_model_name(s, body), "usage", "total_tokens",
				 (json_int_t)tokens, "results", results);
	s->prompt_tokens += tokens;
	s->success_stop++;
	sim_reply_json(req, 200, resp);
	json_decref(resp);
}

void sim_pool_score(struct sim *s, struct am_http_req *req, json_t *body)
{
	if (sim_check_model(s, req, body) != 0 || pooling_only(s, req, SIM_RERANK, "Score") != 0)
		return;
	json_t *a = json_object_get(body, "text_1"), *b = json_object_get(body, "text_2");
	size_t na = json_is_array(a) ? json_array_size(a) : 1, nb = json_is_array(b) ? json_array_size(b) : 1;
	if ((!json_is_string(a) && !json_is_array(a)) || (!json_is_string(b) && !json_is_array(b)) ||
	    (na != 1 && na != nb)) {
		sim_error(req, 400, "BadRequestError",
			  "'text_1' and 'text_2' must be strings or lists (text_1 of one item, or as long as text_2)");
		return;
	}
	json_t *data = json_array();
	size_t tokens = 0;
	for (size_t i = 0; i < nb; i++) {
		json_t *x = json_is_array(a) ? json_array_get(a, na == 1 ? 0 : i) : a;
		json_t *y = json_is_array(b) ? json_array_get(b, i) : b;
		if (!json_is_string(x) || !json_is_string(y)) {
			json_decref(data);
			sim_error(req, 400, "BadRequestError", "text_1 and text_2 items must be strings");
			return;
		}
		tokens += sim_count_tokens(json_string_value(x), json_string_length(x)) +
			  sim_count_tokens(json_string_value(y), json_string_length(y));
		json_array_append_new(data, json_pack("{s:I,s:s,s:f}", "index", (json_int_t)i, "object", "score", "score",
						      sim_relevance(json_string_value(x), json_string_value(y))));
	}
	json_t *resp = json_pack("{s:s,s:s,s:I,s:s,s:o,s:o}", "id", "score-sim", "object", "list", "created",
				 (json_int_t)s->created, "model", sim_model_name(s, body),
				 "data", data, "usage", usage(tokens));
	sim_reply_json(req, 200, resp);
	json_decref(resp);
}

void sim_pool_tokenize(struct sim *s, struct am_http_req *req, json_t *body)
{
	if (sim_check_model(s, req, body) != 0)
		return;
	struct am_buf text, last;
	am_buf_init(&text, 1 << 27);
	am_buf_init(&last, 1 << 27);
	char err[256] = "";
	json_t *prompt = json_object_get(body, "prompt"), *msgs = json_object_get(body, "messages");
	if (json_is_string(prompt))
		am_buf_add(&text, json_string_value(prompt), json_string_length(prompt));
	else if (msgs && sim_chat_prompt(s, msgs, &text, &last, err, sizeof err) != 0)
		;
	else if (!msgs)
		am_fmt(err, sizeof err, "'prompt' (a string) or 'messages' is required");
	if (err[0]) {
		sim_error(req, 400, "BadRequestError", "%s", err);
	} else {
		struct sim_tokens t = { 0 };
		sim_tokenize(text.data ? text.data : "", text.len, &t);
		json_t *ids = json_array();
		for (size_t i = 0; i < t.n; i++)
			json_array_append_new(ids, json_integer(t.ids[i]));
		json_t *resp = json_pack("{s:I,s:i,s:o,s:n}", "count", (json_int_t)t.n, "max_model_len", s->max_model_len,
					 "tokens", ids, "token_strs");
		sim_tokens_free(&t);
		sim_reply_json(req, 200, resp);
		json_decref(resp);
	}
	am_buf_free(&text);
	am_buf_free(&last);
}

void sim_pool_detokenize(struct sim *s, struct am_http_req *req, json_t *body)
{
	if (sim_check_model(s, req, body) != 0)
		return;
	json_t *toks = json_object_get(body, "tokens");
	if (!json_is_array(toks)) {
		sim_error(req, 400, "BadRequestError", "'tokens' (a list of token ids) is required");
		return;
	}
	struct am_buf text;
	am_buf_init(&text, 1 << 27);
	size_t i;
	json_t *t;
	json_array_foreach(toks, i, t) {
		if (!json_is_integer(t) || sim_detokenize_one((uint32_t)json_integer_value(t), &text) != 0) {
			am_buf_free(&text);
			sim_error(req, 400, "BadRequestError", "tokens[%zu] is not a valid token id", i);
			return;
		}
	}
	json_t *resp = json_pack("{s:s%}", "prompt", text.data ? text.data : "", text.len);
	am_buf_free(&text);
	if (!resp) { /* the ids spelled invalid UTF-8 */
		sim_error(req, 400, "BadRequestError", "the tokens do not decode to valid UTF-8");
		return;
	}
	sim_reply_json(req, 200, resp);
	json_decref(resp);
}
