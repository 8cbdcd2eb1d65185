/* sim_text: tokenizer, generator, embeddings, relevance. */
#include "sim_text.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

#include "base/am_mem.h"

void sim_tokens_free(struct sim_tokens *t)
{
	free(t->ids);
	t->ids = NULL;
	t->n = t->cap = 0;
}

static void push_id(struct sim_tokens *t, uint32_t id)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->ids = am_realloc(t->ids, t->cap * sizeof *t->ids);
	}
	t->ids[t->n++] = id;
}

static void push(struct sim_tokens *t, const unsigned char *p, size_t len)
{
	uint32_t id = (uint32_t)len << 24;
	for (size_t i = 0; i < len; i++)
		id |= (uint32_t)p[i] << (16 - 8 * i);
	push_id(t, id);
}

static int breaks(unsigned char c)
{
	return c == ' ' || c == '\n' || c == '\t' || (c < 0x80 && ispunct(c));
}

/* Length of the UTF-8 sequence at p (1 for a stray byte). */
static size_t cp_len(const unsigned char *p, size_t avail)
{
	size_t l = p[0] < 0x80 ? 1 : (p[0] >> 5) == 6 ? 2 : (p[0] >> 4) == 14 ? 3 : (p[0] >> 3) == 30 ? 4 : 1;
	if (l > avail)
		return 1;
	for (size_t i = 1; i < l; i++)
		if ((p[i] & 0xC0) != 0x80)
			return 1;
	return l;
}

void sim_tokenize(const char *s, size_t n, struct sim_tokens *out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t start = 0, len = 0;
	for (size_t i = 0; i < n;) {
		size_t cl = cp_len(p + i, n - i);
		int after_punct = len > 0 && breaks(p[i - 1]) && p[i - 1] != ' ';
		if (len > 0 && (len + cl > 3 || breaks(p[i]) || after_punct)) {
			push(out, p + start, len);
			len = 0;
		}
		if (cl == 4) { /* a 4-byte character is a token of its own: (4 << 24) | code point */
			uint32_t cp = ((uint32_t)(p[i] & 7) << 18) | ((uint32_t)(p[i + 1] & 63) << 12) |
				      ((uint32_t)(p[i + 2] & 63) << 6) | (uint32_t)(p[i + 3] & 63);
			push_id(out, (4u << 24) | cp);
			i += 4;
			start = i;
			continue;
		}
		if (len == 0)
			start = i;
		len += cl;
		i += cl;
	}
	if (len)
		push(out, p + start, len);
}

size_t sim_count_tokens(const char *s, size_t n)
{
	struct sim_tokens t = { 0 };
	sim_tokenize(s, n, &t);
	size_t c = t.n;
	sim_tokens_free(&t);
	return c;
}

int sim_detokenize_one(uint32_t id, struct am_buf *out)
{
	unsigned len = id >> 24;
	if (len == 4) {
		uint32_t cp = id & 0xFFFFFF;
		if (cp < 0x10000 || cp > 0x10FFFF)
			return -1;
		unsigned char b[4] = { (unsigned char)(0xF0 | (cp >> 18)), (unsigned char)(0x80 | ((cp >> 12) & 63)),
				       (unsigned char)(0x80 | ((cp >> 6) & 63)), (unsigned char)(0x80 | (cp & 63)) };
		return am_buf_add(out, b, 4);
	}
	if (len < 1 || len > 3 || (len < 3 && (id & ((1u << (8 * (3 - len))) - 1))))
		return -1;
	unsigned char b[3];
	for (unsigned i = 0; i < len; i++)
		b[i] = (unsigned char)(id >> (16 - 8 * i));
	return am_buf_add(out, b, len);
}

uint64_t sim_hash(const void *p, size_t n, uint64_t seed)
{
	/* FNV-1a, then a splitmix finaliser for well-spread bits */
	uint64_t h = 1469598103934665603ull ^ seed;
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++) {
		h ^= c[i];
		h *= 1099511628211ull;
	}
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

static uint64_t next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static const char *const words[] = {
	"the", "model", "serves", "answers", "quickly", "and", "a", "cluster", "of", "GPUs", "runs", "it",
	"with", "care", "every", "request", "gets", "tokens", "back", "in", "order", "while", "users",
	"read", "them", "as", "they", "arrive", "data", "stays", "private", "on", "your", "own",
	"servers", "so", "teams", "can", "build", "tools", "that", "help", "customers", "find",
	"what", "they", "need", "today", "fine", "tuning", "makes", "this", "better", "over", "time",
};

void sim_generate(uint64_t seed, size_t tokens, struct am_buf *out)
{
	uint64_t s = seed;
	size_t have = 0, since_stop = 0;
	struct am_buf tmp;
	am_buf_init(&tmp, 1 << 20);
	while (have < tokens) {
		am_buf_reset(&tmp);
		const char *w = words[next(&s) % (sizeof words / sizeof words[0])];
		int first = out->len == 0 || since_stop == 0;
		am_buf_printf(&tmp, "%s%c%s", out->len ? " " : "", first ? toupper((unsigned char)w[0]) : w[0], w + 1);
		since_stop++;
		if (since_stop > 6 && next(&s) % 4 == 0) {
			am_buf_adds(&tmp, ".");
			since_stop = 0;
		}
		size_t nt = sim_count_tokens(tmp.data, tmp.len);
		if (have + nt > tokens) { /* cut the last word at a token edge */
			struct sim_tokens t = { 0 };
			sim_tokenize(tmp.data, tmp.len, &t);
			for (size_t i = 0; have < tokens && i < t.n; i++, have++)
				sim_detokenize_one(t.ids[i], out);
			sim_tokens_free(&t);
			break;
		}
		am_buf_add(out, tmp.data, tmp.len);
		have += nt;
	}
	am_buf_free(&tmp);
}

void sim_embed(const char *s, size_t n, float *out, size_t dim)
{
	uint64_t st = sim_hash(s, n, 42);
	double norm = 0;
	for (size_t i = 0; i < dim; i++) {
		/* uniform in [-1, 1) */
		double v = (double)(next(&st) >> 11) / (double)(1ull << 53) * 2.0 - 1.0;
		out[i] = (float)v;
		norm += v * v;
	}
	norm = sqrt(norm);
	for (size_t i = 0; i < dim && norm > 0; i++)
		out[i] = (float)(out[i] / norm);
}

/* Lower-cased words of s (alnum runs, and each non-ASCII byte run). */
static size_t word_hashes(const char *s, uint64_t *out, size_t max)
{
	size_t n = 0;
	const unsigned char *p = (const unsigned char *)s;
	while (*p && n < max) {
		while (*p && !isalnum(*p) && *p < 0x80)
			p++;
		if (!*p)
			break;
		char w[64];
		size_t l = 0;
		while (*p && (isalnum(*p) || *p >= 0x80)) {
			if (l < sizeof w)
				w[l++] = (char)tolower(*p);
			p++;
		}
		out[n++] = sim_hash(w, l, 7);
	}
	return n;
}

double sim_relevance(const char *query, const char *doc)
{
	uint64_t q[256], d[2048];
	size_t nq = word_hashes(query, q, 256), nd = word_hashes(doc, d, 2048);
	size_t hit = 0;
	for (size_t i = 0; i < nq; i++)
		for (size_t j = 0; j < nd; j++)
			if (q[i] == d[j]) {
				hit++;
				break;
			}
	double overlap = nq ? (double)hit / (double)nq : 0;
	/* a small, stable tie-breaker from the pair, so equal overlaps still order */
	double jitter = (double)(sim_hash(doc, strlen(doc), sim_hash(query, strlen(query), 1)) % 1000) / 100000.0;
	double x = 6.0 * overlap - 3.0;
	return 1.0 / (1.0 + exp(-x)) * 0.98 + jitter;
}
