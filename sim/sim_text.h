/* sim_text: the simulator's stand-in for a model: a reversible tokenizer,
 * deterministic text generation, embeddings and relevance scores. Nothing
 * here is learned; everything is a pure function of its input (and a seed),
 * so tests can predict it. */
#ifndef SIM_TEXT_H
#define SIM_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "base/am_buf.h"

/* Token ids pack the token's 1-3 bytes: (len << 24) | b0 << 16 | b1 << 8 | b2.
 * A token starts at a space or punctuation and holds at most 3 bytes, so
 * detokenize(tokenize(s)) == s for any bytes. */
struct sim_tokens {
	uint32_t *ids;
	size_t n, cap;
};

void sim_tokens_free(struct sim_tokens *t);
/* Appends the tokens of s[0..n). */
void sim_tokenize(const char *s, size_t n, struct sim_tokens *out);
size_t sim_count_tokens(const char *s, size_t n);
/* Appends the text of one token id; -1 for an id that is no token. */
int sim_detokenize_one(uint32_t id, struct am_buf *out);

/* Fills out with `tokens` tokens of plausible English words, a pure function
 * of seed. */
void sim_generate(uint64_t seed, size_t tokens, struct am_buf *out);

/* Fills out with an answer of exactly `tokens` tokens to question[0..n) (the
 * last user message, or the prompt), in its language: Chinese when it is
 * written mostly in CJK, else English. The answer quotes the question, says
 * the simulator wrote it and holds a short Markdown list; a pure function of
 * the question and seed. */
void sim_answer(const char *question, size_t n, uint64_t seed, size_t tokens, struct am_buf *out);

/* A unit-length vector of dim floats, a pure function of the text: a hashed
 * bag of its words (CJK: character pairs), so texts that share them have a
 * high cosine similarity. */
void sim_embed(const char *s, size_t n, float *out, size_t dim);
/* A relevance score in (0, 1): how much of the query the document holds
 * (its words weighted by length; in CJK text, its character pairs), so a
 * document about the query ranks above one that is not. */
double sim_relevance(const char *query, const char *doc);

uint64_t sim_hash(const void *p, size_t n, uint64_t seed);

#endif
