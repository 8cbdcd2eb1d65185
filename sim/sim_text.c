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

/* The code point at p (of cp_len bytes); a stray byte stands for itself. */
static uint32_t cp_at(const unsigned char *p, size_t l)
{
	if (l == 1)
		return p[0];
	uint32_t cp = p[0] & (0x7F >> l);
	for (size_t i = 1; i < l; i++)
		cp = (cp << 6) | (p[i] & 63);
	return cp;
}

/* Han, kana and hangul: scripts written without spaces between words. */
static int is_cjk(uint32_t cp)
{
	return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0xF900 && cp <= 0xFAFF) ||
	       (cp >= 0x20000 && cp <= 0x2FA1F) || (cp >= 0x3040 && cp <= 0x30FF) || (cp >= 0xAC00 && cp <= 0xD7AF);
}

/* Characters that separate words: ASCII other than letters and digits,
 * general and CJK punctuation, full-width forms. */
static int is_sep(uint32_t cp)
{
	return (cp < 0x80 && !isalnum((int)cp)) || (cp >= 0x2000 && cp <= 0x206F) || (cp >= 0x3000 && cp <= 0x303F) ||
	       (cp >= 0xFF00 && cp <= 0xFFEF);
}

struct feature {
	uint64_t hash;
	double weight;
};

/* The features of s[0..n) for relevance and embeddings, at most max:
 * lower-cased words of Latin (and other spaced) scripts, weighted by their
 * length so "a" counts less than "gpu"; in a CJK run each character and,
 * weighing twice as much, each pair of neighbouring characters, as Chinese
 * words are mostly two characters and nothing marks where they end. */
static size_t features(const char *s, size_t n, struct feature *out, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t nf = 0, i = 0;
	while (i < n && nf < max) {
		size_t l = cp_len(p + i, n - i);
		uint32_t cp = cp_at(p + i, l);
		if (is_sep(cp)) {
			i += l;
			continue;
		}
		if (is_cjk(cp)) {
			size_t run = 0, prev = i;
			while (i < n && nf + 2 <= max) {
				l = cp_len(p + i, n - i);
				if (!is_cjk(cp_at(p + i, l)))
					break;
				out[nf++] = (struct feature){ sim_hash(p + i, l, 11), 1.0 };
				if (run > 0)
					out[nf++] = (struct feature){ sim_hash(p + prev, i + l - prev, 11), 2.0 };
				run++;
				prev = i;
				i += l;
			}
			if (nf + 2 > max)
				break;
			continue;
		}
		char w[64];
		size_t wl = 0, chars = 0;
		while (i < n) {
			l = cp_len(p + i, n - i);
			cp = cp_at(p + i, l);
			if (is_sep(cp) || is_cjk(cp))
				break;
			for (size_t k = 0; k < l && wl < sizeof w; k++)
				w[wl++] = (char)tolower(p[i + k]);
			chars++;
			i += l;
		}
		out[nf++] = (struct feature){ sim_hash(w, wl, 7), chars < 8 ? (double)chars : 8.0 };
	}
	return nf;
}

void sim_embed(const char *s, size_t n, float *out, size_t dim)
{
	/* a hashed bag of features: each feature adds its own random direction,
	 * so texts that share words (or CJK bigrams) point the same way */
	enum { MAXF = 2048 };
	struct feature *f = am_malloc(MAXF * sizeof *f);
	size_t nf = features(s, n, f, MAXF);
	double *v = am_calloc(dim ? dim : 1, sizeof *v);
	for (size_t k = 0; k <= nf; k++) {
		/* the whole text's own direction, small, keeps distinct texts apart
		 * (and is all there is for a text without features) */
		uint64_t st = k < nf ? f[k].hash : sim_hash(s, n, 42);
		double w = k < nf ? f[k].weight : nf ? 0.5 : 1.0;
		for (size_t i = 0; i < dim; i++) /* uniform in [-1, 1) */
			v[i] += w * ((double)(next(&st) >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
	}
	double norm = 0;
	for (size_t i = 0; i < dim; i++)
		norm += v[i] * v[i];
	norm = sqrt(norm);
	for (size_t i = 0; i < dim; i++)
		out[i] = (float)(norm > 0 ? v[i] / norm : 0);
	free(v);
	free(f);
}

double sim_relevance(const char *query, const char *doc)
{
	enum { MAXQ = 256, MAXD = 4096 };
	struct feature *q = am_malloc(MAXQ * sizeof *q), *d = am_malloc(MAXD * sizeof *d);
	size_t nq = features(query, strlen(query), q, MAXQ), nd = features(doc, strlen(doc), d, MAXD);
	double hit = 0, total = 0;
	for (size_t i = 0; i < nq; i++) {
		int dup = 0;
		for (size_t j = 0; j < i && !dup; j++)
			dup = q[j].hash == q[i].hash;
		if (dup)
			continue;
		total += q[i].weight;
		for (size_t j = 0; j < nd; j++)
			if (q[i].hash == d[j].hash) {
				hit += q[i].weight;
				break;
			}
	}
	free(q);
	free(d);
	double overlap = total > 0 ? hit / total : 0;
	/* a small, stable tie-breaker from the pair, so equal overlaps still order */
	double jitter = (double)(sim_hash(doc, strlen(doc), sim_hash(query, strlen(query), 1)) % 1000) / 100000.0;
	double x = 6.0 * overlap - 3.0;
	return 1.0 / (1.0 + exp(-x)) * 0.98 + jitter;
}

/* ---- answers in the question's language ---- */

struct lang {
	const char *open[3];   /* "%s" is the question */
	const char *body[8];   /* sentences in any order */
	const char *intro[2];  /* before the list */
	const char *item_q;    /* the list's first item, "%s" the question */
	const char *items[5];  /* two of these follow it */
	const char *close[2];
	const char *space;     /* between sentences */
};

static const struct lang zh = {
	{ "关于「%s」：这是模拟器（aimaas-sim）给出的示例回答，并非真实模型的推理结果。",
	  "你问到了「%s」。下面是模拟器生成的回答，用来演示平台的对话与流式输出。",
	  "针对「%s」这个问题，模拟器给出如下回答，仅供测试和演示。" },
	{ "在真实部署中，这里会是模型根据问题给出的完整解答。", "模拟器逐个词元地返回文字，词元之间的间隔可以调整。",
	  "同样的问题和随机种子总会得到同样的回答，便于测试和复现。", "平台会记录每次请求的用量，包括提示词元和生成词元。",
	  "换成真实的 vLLM 引擎之后，同一个接口就会返回模型的真实输出。", "网关负责鉴权、限流和路由，把请求转发给健康的实例。",
	  "控制台会按 Markdown 渲染回答，列表和加粗都能正常显示。", "如果需要更长的回答，可以调大 max_tokens 或模拟器的输出长度。" },
	{ "要点如下：", "简单总结一下：" },
	"- **问题**：%s",
	{ "- **来源**：模拟器，不占用 GPU", "- **特点**：结果确定，可以复现", "- **用途**：测试、演示和压力测试",
	  "- **速度**：首词元延迟和词元间隔均可配置", "- **格式**：与 vLLM 相同的流式输出和用量统计" },
	{ "如果还有其它问题，欢迎继续提问。", "希望这个回答对你有帮助。" },
	"",
};

static const struct lang en = {
	{ "About \"%s\": this is a sample answer from the simulator (aimaas-sim), not the output of a real model.",
	  "You asked about \"%s\". Here is an answer written by the simulator to show chat and streaming.",
	  "On \"%s\", the simulator offers the following answer, for tests and demos only." },
	{ "In a real deployment, the model would answer the question here in full.",
	  "The simulator streams its text token by token, and the pause between tokens can be tuned.",
	  "The same question and seed always give the same answer, so tests can predict it.",
	  "The platform meters every request, counting prompt and completion tokens.",
	  "With a real vLLM engine, the same endpoint returns the model's own output.",
	  "The gateway checks keys, applies rate limits and routes each request to a healthy instance.",
	  "The console renders answers as Markdown, so lists and bold text show as they should.",
	  "For a longer answer, raise max_tokens or the simulator's output length." },
	{ "In short:", "The key points:" },
	"- **Question**: %s",
	{ "- **Source**: the simulator, no GPU needed", "- **Behaviour**: deterministic and reproducible",
	  "- **Use**: tests, demos and load tests", "- **Timing**: time to first token and inter-token latency are configurable",
	  "- **Format**: streaming and usage accounting as vLLM's" },
	{ "Feel free to ask another question.", "I hope this helps." },
	" ",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Whether q[0..n) is written mostly in CJK: more CJK characters than words
 * in other scripts. */
static int mostly_cjk(const char *q, size_t n)
{
	const unsigned char *p = (const unsigned char *)q;
	size_t cjk = 0, latin = 0;
	int in_word = 0;
	for (size_t i = 0; i < n;) {
		size_t l = cp_len(p + i, n - i);
		uint32_t cp = cp_at(p + i, l);
		if (is_cjk(cp))
			cjk++;
		else if (!is_sep(cp) && !in_word)
			latin++;
		in_word = !is_sep(cp) && !is_cjk(cp);
		i += l;
	}
	return cjk > 0 && cjk >= latin;
}

/* The question as the answer quotes it: whitespace runs made one space,
 * trailing punctuation dropped (the answer adds its own), at most max
 * characters (then "…"). */
static void topic_of(const char *q, size_t n, size_t max, struct am_buf *out)
{
	const unsigned char *p = (const unsigned char *)q;
	size_t chars = 0, keep = 0;
	int space = 0, cut = 0;
	for (size_t i = 0; i < n && !cut;) {
		size_t l = cp_len(p + i, n - i);
		uint32_t cp = cp_at(p + i, l);
		if (cp == ' ' || cp == '\n' || cp == '\t' || cp == '\r' || cp == 0x3000) {
			space = out->len > 0;
		} else if (chars < max) {
			if (space)
				am_buf_adds(out, " ");
			space = 0;
			am_buf_add(out, p + i, l);
			chars++;
			if (!is_sep(cp))
				keep = out->len;
		} else if (!is_sep(cp)) {
			cut = 1;
		}
		i += l;
	}
	out->len = keep;
	if (out->data)
		out->data[out->len] = '\0';
	if (cut)
		am_buf_adds(out, "…");
}

void sim_answer(const char *question, size_t n, uint64_t seed, size_t tokens, struct am_buf *out)
{
	struct am_buf topic, text;
	am_buf_init(&topic, 1 << 12);
	am_buf_init(&text, 1 << 24);
	if (!question)
		n = 0;
	int chinese = mostly_cjk(question, n);
	topic_of(question, n, chinese ? 24 : 60, &topic);
	if (!topic.len)
		am_buf_adds(&topic, chinese ? "你的问题" : "your question");
	const struct lang *L = chinese ? &zh : &en;
	const char *t = am_buf_str(&topic);
	uint64_t s = seed;
	size_t b = next(&s) % COUNT(L->body), step = 1 + next(&s) % (COUNT(L->body) - 1);
	/* step is coprime with 8 when odd: the body sentences come each once before any repeats */
	step |= 1;
	size_t i1 = next(&s) % COUNT(L->items), i2 = (i1 + 1 + next(&s) % (COUNT(L->items) - 1)) % COUNT(L->items);
	am_buf_printf(&text, L->open[next(&s) % COUNT(L->open)], t);
	for (int k = 0; k < 2; k++, b = (b + step) % COUNT(L->body))
		am_buf_printf(&text, "%s%s", L->space, L->body[b]);
	am_buf_printf(&text, "\n\n%s\n\n", L->intro[next(&s) % COUNT(L->intro)]);
	am_buf_printf(&text, L->item_q, t);
	am_buf_printf(&text, "\n%s\n%s\n\n", L->items[i1], L->items[i2]);
	am_buf_adds(&text, L->body[b]);
	b = (b + step) % COUNT(L->body);
	am_buf_printf(&text, "%s%s", L->space, L->close[next(&s) % COUNT(L->close)]);
	/* longer answers go on in paragraphs of three sentences; a token is at
	 * most 4 bytes, so 4 bytes a token are enough */
	for (int k = 0; text.len < 4 * tokens; k++, b = (b + step) % COUNT(L->body))
		if (am_buf_printf(&text, "%s%s", k % 3 == 0 ? "\n\n" : L->space, L->body[b]) != 0)
			break;
	struct sim_tokens tk = { 0 };
	sim_tokenize(text.data, text.len, &tk);
	for (size_t i = 0; i < tokens && i < tk.n; i++)
		sim_detokenize_one(tk.ids[i], out);
	sim_tokens_free(&tk);
	am_buf_free(&text);
	am_buf_free(&topic);
}
