/* gw_json: a validating top-level member scanner with jansson's grammar
 * (RFC 8259, strict UTF-8, no \u0000, 64-bit integers, finite doubles,
 * JSON_PARSER_MAX_DEPTH), reading keys and the model decoded. */
#include "gw_json.h"

#include "../base/am_buf.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef JSON_PARSER_MAX_DEPTH
#define MAX_DEPTH JSON_PARSER_MAX_DEPTH
#else
#define MAX_DEPTH 2048
#endif

enum { V_STRING, V_NUMBER, V_TRUE, V_FALSE, V_NULL, V_OBJECT, V_ARRAY };

struct sc {
	const unsigned char *p, *end, *start;
	const char *why; /* the first syntax error */
	size_t at;
};

static int fail(struct sc *s, const char *why)
{
	if (!s->why) {
		s->why = why;
		s->at = (size_t)(s->p - s->start);
	}
	return -1;
}

static int is_digit(unsigned c)
{
	return c >= '0' && c <= '9';
}

static int is_alpha(unsigned c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static void ws(struct sc *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
		s->p++;
}

static int hex4(const unsigned char *p, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		unsigned c = p[i], d;
		if (is_digit(c))
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		v = v << 4 | d;
	}
	*out = v;
	return 0;
}

/* One UTF-8 sequence at s->p (a byte >= 0x80): the shortest form, no
 * surrogate, at most U+10FFFF. Its length in *n. */
static int utf8(struct sc *s, size_t *n)
{
	*n = am_utf8_seq((const unsigned char *)s->p, (size_t)(s->end - s->p));
	return *n ? 0 : fail(s, "invalid UTF-8");
}

static size_t utf8_put(unsigned v, unsigned char b[4])
{
	if (v < 0x80) {
		b[0] = (unsigned char)v;
		return 1;
	}
	if (v < 0x800) {
		b[0] = (unsigned char)(0xC0 | v >> 6);
		b[1] = (unsigned char)(0x80 | (v & 0x3F));
		return 2;
	}
	if (v < 0x10000) {
		b[0] = (unsigned char)(0xE0 | v >> 12);
		b[1] = (unsigned char)(0x80 | (v >> 6 & 0x3F));
		b[2] = (unsigned char)(0x80 | (v & 0x3F));
		return 3;
	}
	b[0] = (unsigned char)(0xF0 | v >> 18);
	b[1] = (unsigned char)(0x80 | (v >> 12 & 0x3F));
	b[2] = (unsigned char)(0x80 | (v >> 6 & 0x3F));
	b[3] = (unsigned char)(0x80 | (v & 0x3F));
	return 4;
}

/* The string at s->p ('"'), decoded into out (size bytes, NUL-terminated;
 * a prefix when longer) when out is given; its decoded length in *len. */
static int str(struct sc *s, char *out, size_t size, size_t *len)
{
	size_t o = 0;
	s->p++;
	for (;;) {
		if (s->p >= s->end)
			return fail(s, "unterminated string");
		unsigned c = *s->p;
		unsigned char b[4];
		size_t n = 1;
		if (c == '"') {
			s->p++;
			break;
		}
		if (c < 0x20)
			return fail(s, "control character in a string");
		if (c == '\\') {
			if (s->end - s->p < 2)
				return fail(s, "unterminated string");
			unsigned e = s->p[1], v;
			if (e == 'u') {
				if (s->end - s->p < 6 || hex4(s->p + 2, &v) != 0)
					return fail(s, "invalid \\u escape");
				if (v >= 0xDC00 && v <= 0xDFFF)
					return fail(s, "a lone UTF-16 surrogate in a \\u escape");
				if (v >= 0xD800 && v <= 0xDBFF) {
					unsigned lo;
					if (s->end - s->p < 12 || s->p[6] != '\\' || s->p[7] != 'u' || hex4(s->p + 8, &lo) != 0 ||
					    lo < 0xDC00 || lo > 0xDFFF)
						return fail(s, "a lone UTF-16 surrogate in a \\u escape");
					v = ((v - 0xD800) << 10) + (lo - 0xDC00) + 0x10000;
					s->p += 6;
				}
				if (!v)
					return fail(s, "\\u0000 in a string");
				s->p += 6;
				n = utf8_put(v, b);
			} else {
				switch (e) {
				case '"': case '\\': case '/': b[0] = (unsigned char)e; break;
				case 'b': b[0] = '\b'; break;
				case 'f': b[0] = '\f'; break;
				case 'n': b[0] = '\n'; break;
				case 'r': b[0] = '\r'; break;
				case 't': b[0] = '\t'; break;
				default: return fail(s, "invalid escape in a string");
				}
				s->p += 2;
			}
		} else if (c >= 0x80) {
			if (utf8(s, &n) != 0)
				return -1;
			memcpy(b, s->p, n);
			s->p += n;
		} else {
			b[0] = (unsigned char)c;
			s->p++;
		}
		for (size_t i = 0; out && i < n; i++)
			if (o + i + 1 < size)
				out[o + i] = (char)b[i];
		o += n;
	}
	if (out && size)
		out[o < size ? o : size - 1] = '\0';
	*len = o;
	return 0;
}

/* Whether the integer digits d[0..n) (no leading zero) fit json_int_t. */
static int int_fits(const unsigned char *d, size_t n, int neg)
{
	static const char max[] = "9223372036854775807", min[] = "9223372036854775808";
	if (n != 19)
		return n < 19;
	return memcmp(d, neg ? min : max, 19) <= 0;
}

/* Whether int.frac e exp is a finite double (jansson refuses an
 * overflow; an underflow reads as 0). Near the limit strtod decides, on at
 * most 800 significant digits and a sticky one for the rest, which rounds
 * as the whole would. */
static int real_fits(const unsigned char *ib, size_t il, const unsigned char *fb, size_t fl, long long ex, int neg)
{
	size_t total = il + fl, k = 0;
	while (k < total && (k < il ? ib[k] : fb[k - il]) == '0')
		k++;
	if (k == total)
		return 1; /* zero */
	long long e10 = (long long)(total - k) - (long long)fl + ex; /* value = 0.D x 10^e10 */
	if (e10 < 300)
		return 1;
	if (e10 > 310)
		return 0;
	char buf[840];
	size_t m = 0;
	if (neg)
		buf[m++] = '-';
	size_t ndig = 0;
	int sticky = 0;
	for (size_t i = k; i < total; i++) {
		unsigned char c = i < il ? ib[i] : fb[i - il];
		if (ndig < 800) {
			buf[m++] = (char)c;
			ndig++;
		} else if (c != '0') {
			sticky = 1;
			break;
		}
	}
	if (sticky) {
		buf[m++] = '1';
		ndig++;
	}
	snprintf(buf + m, sizeof buf - m, "e%lld", e10 - (long long)ndig);
	errno = 0;
	double v = strtod(buf, NULL);
	return !((v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE);
}

static int number(struct sc *s)
{
	int neg = 0;
	if (*s->p == '-') {
		neg = 1;
		s->p++;
	}
	if (s->p >= s->end || !is_digit(*s->p))
		return fail(s, "invalid number");
	const unsigned char *ib = s->p;
	if (*s->p == '0') {
		s->p++;
		if (s->p < s->end && is_digit(*s->p))
			return fail(s, "a number with a leading zero");
	} else {
		while (s->p < s->end && is_digit(*s->p))
			s->p++;
	}
	size_t il = (size_t)(s->p - ib);
	const unsigned char *fb = s->p;
	size_t fl = 0;
	long long ex = 0;
	int real = 0;
	if (s->p < s->end && *s->p == '.') {
		s->p++;
		if (s->p >= s->end || !is_digit(*s->p))
			return fail(s, "invalid number");
		fb = s->p;
		while (s->p < s->end && is_digit(*s->p))
			s->p++;
		fl = (size_t)(s->p - fb);
		real = 1;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		int eneg = 0;
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			eneg = *s->p++ == '-';
		if (s->p >= s->end || !is_digit(*s->p))
			return fail(s, "invalid number");
		while (s->p < s->end && is_digit(*s->p)) {
			if (ex < 1000000000LL)
				ex = ex * 10 + (*s->p - '0');
			s->p++;
		}
		if (eneg)
			ex = -ex;
		real = 1;
	}
	if (!real)
		return int_fits(ib, il, neg) ? 0 : fail(s, "an integer beyond 64 bits");
	return real_fits(ib, il, fb, fl, ex, neg) ? 0 : fail(s, "a number beyond the range of a double");
}

static int value(struct sc *s, int depth, int *type)
{
	ws(s);
	if (depth > MAX_DEPTH)
		return fail(s, "nested too deeply");
	if (s->p >= s->end)
		return fail(s, "unexpected end of the body");
	unsigned c = *s->p;
	size_t n;
	if (c == '"') {
		*type = V_STRING;
		return str(s, NULL, 0, &n);
	}
	if (c == '{' || c == '[') {
		unsigned close = c == '{' ? '}' : ']';
		*type = c == '{' ? V_OBJECT : V_ARRAY;
		s->p++;
		ws(s);
		if (s->p < s->end && *s->p == close) {
			s->p++;
			return 0;
		}
		for (;;) {
			int t;
			if (c == '{') {
				ws(s);
				if (s->p >= s->end || *s->p != '"')
					return fail(s, "a member name (a string) expected");
				if (str(s, NULL, 0, &n) != 0)
					return -1;
				ws(s);
				if (s->p >= s->end || *s->p != ':')
					return fail(s, "':' expected");
				s->p++;
			}
			if (value(s, depth + 1, &t) != 0)
				return -1;
			ws(s);
			if (s->p >= s->end)
				return fail(s, "unexpected end of the body");
			if (*s->p == ',') {
				s->p++;
				continue;
			}
			if (*s->p == close) {
				s->p++;
				return 0;
			}
			return fail(s, c == '{' ? "',' or '}' expected" : "',' or ']' expected");
		}
	}
	if (c == '-' || is_digit(c)) {
		*type = V_NUMBER;
		return number(s);
	}
	if (is_alpha(c)) {
		const unsigned char *w = s->p;
		while (s->p < s->end && is_alpha(*s->p))
			s->p++;
		size_t wl = (size_t)(s->p - w);
		if (wl == 4 && !memcmp(w, "true", 4))
			*type = V_TRUE;
		else if (wl == 5 && !memcmp(w, "false", 5))
			*type = V_FALSE;
		else if (wl == 4 && !memcmp(w, "null", 4))
			*type = V_NULL;
		else {
			s->p = w;
			return fail(s, "an unknown word (JSON knows true, false and null)");
		}
		return 0;
	}
	return fail(s, "unexpected character");
}

/* A member the gateway acts on, when it is wrong (the first one counts). */
static void semantic(struct gw_peek *out, enum gw_json_err err, const char *field, const char *why)
{
	if (out->err != GW_JSON_OK)
		return;
	out->err = err;
	snprintf(out->field, sizeof out->field, "%s", field);
	out->why = why;
}

void gw_json_peek(const char *body, size_t len, struct gw_peek *out)
{
	memset(out, 0, sizeof *out);
	const unsigned char *b = (const unsigned char *)body;
	struct sc s = { b, b + len, b, NULL, 0 };
	static const char *const names[] = { "model", "stream", "stream_options" };
	int seen[3] = { 0, 0, 0 };
	ws(&s);
	if (s.p >= s.end || *s.p != '{') {
		out->err = s.p >= s.end ? GW_JSON_SYNTAX : GW_JSON_NOT_OBJECT;
		out->why = s.p >= s.end ? "an empty body" : "the body is not a JSON object";
		return;
	}
	s.p++;
	ws(&s);
	if (s.p < s.end && *s.p == '}') {
		s.p++;
		goto tail;
	}
	for (;;) {
		char key[16];
		size_t kl, ml = 0;
		int t, which = -1;
		ws(&s);
		if (s.p >= s.end || *s.p != '"') {
			fail(&s, "a member name (a string) expected");
			goto syntax;
		}
		if (str(&s, key, sizeof key, &kl) != 0)
			goto syntax;
		for (int i = 0; i < 3 && kl < sizeof key; i++)
			if (!strcmp(key, names[i]))
				which = i;
		ws(&s);
		if (s.p >= s.end || *s.p != ':') {
			fail(&s, "':' expected");
			goto syntax;
		}
		s.p++;
		ws(&s);
		if (which == 0 && s.p < s.end && *s.p == '"') {
			t = V_STRING;
			if (str(&s, out->model, sizeof out->model, &ml) != 0)
				goto syntax;
		} else if (value(&s, 2, &t) != 0) {
			goto syntax;
		}
		if (which >= 0) {
			if (seen[which]++)
				semantic(out, GW_JSON_DUPLICATE, names[which], "appears more than once");
			if (which == 0) {
				out->has_model = t == V_STRING;
				out->model_too_long = t == V_STRING && ml >= sizeof out->model;
				if (t != V_STRING || out->model_too_long)
					out->model[0] = '\0';
				if (t != V_STRING && t != V_NULL)
					semantic(out, GW_JSON_TYPE, "model", "'model' must be a string");
			} else if (which == 1) {
				out->stream = t == V_TRUE;
				if (t != V_TRUE && t != V_FALSE && t != V_NULL)
					semantic(out, GW_JSON_TYPE, "stream", "'stream' must be true or false");
			} else {
				out->has_stream_options = t == V_OBJECT;
				out->stream_options_seen = 1;
				if (t != V_OBJECT && t != V_NULL)
					semantic(out, GW_JSON_TYPE, "stream_options", "'stream_options' must be an object");
			}
		}
		ws(&s);
		if (s.p >= s.end) {
			fail(&s, "unexpected end of the body");
			goto syntax;
		}
		if (*s.p == ',') {
			s.p++;
			continue;
		}
		if (*s.p == '}') {
			s.p++;
			break;
		}
		fail(&s, "',' or '}' expected");
		goto syntax;
	}
tail:
	ws(&s);
	if (s.p < s.end) {
		fail(&s, "more after the object");
		goto syntax;
	}
	out->valid = out->err == GW_JSON_OK;
	return;
syntax:
	out->err = GW_JSON_SYNTAX;
	out->why = s.why;
	out->at = s.at;
	out->field[0] = '\0';
	out->has_model = out->stream = out->has_stream_options = out->model_too_long = 0;
	out->model[0] = '\0';
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The non-negative integer after "key": in [s, end); -1 when absent or not
 * a number. Saturates rather than overflowing on an absurd count. */
static long long num_after(const char *s, const char *end, const char *key)
{
	size_t kl = strlen(key);
	for (const char *p = s; p + kl < end; p++) {
		if (memcmp(p, key, kl) != 0)
			continue;
		const char *q = p + kl;
		while (q < end && (is_ws(*q) || *q == ':'))
			q++;
		long long v = 0;
		int any = 0;
		while (q < end && *q >= '0' && *q <= '9') {
			if (v < 100000000000000LL) /* 1e14 tokens: more is a lie, kept bounded */
				v = v * 10 + (*q - '0');
			q++;
			any = 1;
		}
		return any ? v : -1;
	}
	return -1;
}

/* The end of the JSON object opening at o (just past its '}'), strings
 * and nested objects skipped; end when it does not close. */
static const char *object_end(const char *o, const char *end)
{
	int depth = 0, in_str = 0;
	for (const char *p = o; p < end; p++) {
		if (in_str) {
			if (*p == '\\')
				p++;
			else if (*p == '"')
				in_str = 0;
		} else if (*p == '"') {
			in_str = 1;
		} else if (*p == '{' || *p == '[') {
			depth++;
		} else if ((*p == '}' || *p == ']') && --depth == 0) {
			return p + 1;
		}
	}
	return end;
}

/* Reads both usage shapes: chat/completions/embeddings ("prompt_tokens",
 * "completion_tokens", "total_tokens"; rerank only "total_tokens") and the
 * Responses API ("input_tokens", "output_tokens", with nested *_details
 * objects, read to their closing brace). */
int gw_json_usage(const char *s, size_t len, long long *prompt, long long *completion, long long *total)
{
	const char *end = s + len;
	const char *u = NULL;
	for (const char *p = s; p + 8 < end; p++)
		if (!memcmp(p, "\"usage\"", 7)) {
			const char *q = p + 7;
			while (q < end && (is_ws(*q) || *q == ':'))
				q++;
			if (q < end && *q == '{') {
				u = q;
				break;
			}
		}
	if (!u)
		return 0;
	const char *ue = object_end(u, end);
	long long p = num_after(u, ue, "\"prompt_tokens\""), c = num_after(u, ue, "\"completion_tokens\""),
		  t = num_after(u, ue, "\"total_tokens\"");
	if (p < 0)
		p = num_after(u, ue, "\"input_tokens\"");
	if (c < 0)
		c = num_after(u, ue, "\"output_tokens\"");
	*prompt = p > 0 ? p : 0;
	*completion = c > 0 ? c : 0;
	*total = t > 0 ? t : *prompt + *completion;
	if (p < 0 && t > 0 && t >= *completion)
		*prompt = t - *completion; /* rerank answers carry only total_tokens */
	return 1;
}
