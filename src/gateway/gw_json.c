/* gw_json: a top-level JSON member scanner. */
#include "gw_json.h"

#include <string.h>

struct sc {
	const char *p, *end;
};

static void ws(struct sc *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
		s->p++;
}

/* Skips a string starting at '"'; copies its raw content into out when given. */
static int str(struct sc *s, char *out, size_t size)
{
	if (s->p >= s->end || *s->p != '"')
		return -1;
	s->p++;
	size_t o = 0;
	while (s->p < s->end && *s->p != '"') {
		char c = *s->p;
		if (c == '\\') {
			if (s->p + 1 >= s->end)
				return -1;
			s->p += 2;
			if (out && o + 2 < size) {
				out[o++] = '\\';
				out[o++] = s->p[-1];
			}
			continue;
		}
		if (out && o + 1 < size)
			out[o++] = c;
		s->p++;
	}
	if (s->p >= s->end)
		return -1;
	s->p++;
	if (out && size)
		out[o < size ? o : size - 1] = '\0';
	return 0;
}

/* Skips any value. */
static int value(struct sc *s, int depth)
{
	ws(s);
	if (s->p >= s->end || depth > 64)
		return -1;
	char c = *s->p;
	if (c == '"')
		return str(s, NULL, 0);
	if (c == '{' || c == '[') {
		char close = c == '{' ? '}' : ']';
		s->p++;
		ws(s);
		if (s->p < s->end && *s->p == close) {
			s->p++;
			return 0;
		}
		for (;;) {
			if (c == '{') {
				ws(s);
				if (str(s, NULL, 0) != 0)
					return -1;
				ws(s);
				if (s->p >= s->end || *s->p != ':')
					return -1;
				s->p++;
			}
			if (value(s, depth + 1) != 0)
				return -1;
			ws(s);
			if (s->p >= s->end)
				return -1;
			if (*s->p == ',') {
				s->p++;
				continue;
			}
			if (*s->p == close) {
				s->p++;
				return 0;
			}
			return -1;
		}
	}
	while (s->p < s->end && !strchr(",}] \n\r\t", *s->p))
		s->p++;
	return 0;
}

void gw_json_peek(const char *body, size_t len, struct gw_peek *out)
{
	memset(out, 0, sizeof *out);
	struct sc s = { body, body + len };
	ws(&s);
	if (s.p >= s.end || *s.p != '{')
		return;
	s.p++;
	ws(&s);
	if (s.p < s.end && *s.p == '}') {
		out->valid = 1;
		return;
	}
	for (;;) {
		char key[64];
		ws(&s);
		if (str(&s, key, sizeof key) != 0)
			return;
		ws(&s);
		if (s.p >= s.end || *s.p != ':')
			return;
		s.p++;
		ws(&s);
		const char *vstart = s.p;
		if (!strcmp(key, "model") && s.p < s.end && *s.p == '"') {
			if (str(&s, out->model, sizeof out->model) != 0)
				return;
			out->has_model = 1;
		} else {
			if (value(&s, 1) != 0)
				return;
			if (!strcmp(key, "stream"))
				out->stream = s.p - vstart == 4 && !memcmp(vstart, "true", 4);
			else if (!strcmp(key, "stream_options"))
				out->has_stream_options = 1;
		}
		ws(&s);
		if (s.p >= s.end)
			return;
		if (*s.p == ',') {
			s.p++;
			continue;
		}
		if (*s.p == '}') {
			out->valid = 1;
			return;
		}
		return;
	}
}

static long long num_after(const char *s, const char *end, const char *key)
{
	size_t kl = strlen(key);
	for (const char *p = s; p + kl < end; p++) {
		if (memcmp(p, key, kl) != 0)
			continue;
		const char *q = p + kl;
		while (q < end && (*q == ' ' || *q == ':'))
			q++;
		long long v = 0;
		int any = 0;
		while (q < end && *q >= '0' && *q <= '9') {
			v = v * 10 + (*q++ - '0');
			any = 1;
		}
		return any ? v : -1;
	}
	return -1;
}

int gw_json_usage(const char *s, size_t len, long long *prompt, long long *completion, long long *total)
{
	const char *end = s + len;
	const char *u = NULL;
	for (const char *p = s; p + 8 < end; p++)
		if (!memcmp(p, "\"usage\"", 7)) {
			const char *q = p + 7;
			while (q < end && (*q == ' ' || *q == ':'))
				q++;
			if (q < end && *q == '{') {
				u = q;
				break;
			}
		}
	if (!u)
		return 0;
	const char *ue = memchr(u, '}', (size_t)(end - u));
	if (!ue)
		ue = end;
	long long p = num_after(u, ue, "\"prompt_tokens\""), c = num_after(u, ue, "\"completion_tokens\""),
		  t = num_after(u, ue, "\"total_tokens\"");
	*prompt = p > 0 ? p : 0;
	*completion = c > 0 ? c : 0;
	*total = t > 0 ? t : *prompt + *completion;
	if (p < 0 && t > 0)
		*prompt = t - *completion; /* rerank answers carry only total_tokens */
	return 1;
}
