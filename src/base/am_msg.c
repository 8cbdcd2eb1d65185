/* am_msg: looking up and formatting a message's Chinese form, checking that
 * a Chinese template takes its English one's arguments, and reading
 * Accept-Language. The table is in am_msg_zh.c. */
#include "am_msg.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "am_mem.h"

/* ---- Accept-Language ---- */

/* One range of the header: "zh-CN;q=0.8". 0, or -1 when its tag is not
 * one (empty, or other than letters, digits, '-' and '*'). */
static int one_range(const char *s, size_t n, int *is_zh, double *q)
{
	size_t t = 0;
	while (t < n && s[t] != ';')
		t++;
	size_t e = t;
	while (e > 0 && isspace((unsigned char)s[e - 1]))
		e--;
	if (e == 0)
		return -1;
	for (size_t i = 0; i < e; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '*')
			return -1;
	*is_zh = (e == 2 || (e > 2 && s[2] == '-')) && tolower((unsigned char)s[0]) == 'z' &&
		 tolower((unsigned char)s[1]) == 'h';
	*q = 1.0;
	for (size_t i = t; i < n; i++) {
		if (s[i] != ';')
			continue;
		size_t j = i + 1;
		while (j < n && isspace((unsigned char)s[j]))
			j++;
		if (j + 1 < n && (s[j] == 'q' || s[j] == 'Q') && s[j + 1] == '=') {
			char num[16];
			size_t k = 0;
			for (j += 2; j < n && k + 1 < sizeof num && (isdigit((unsigned char)s[j]) || s[j] == '.'); j++)
				num[k++] = s[j];
			num[k] = '\0';
			char *end;
			double v = strtod(num, &end);
			*q = k && !*end && v >= 0 && v <= 1 ? v : 0;
		}
	}
	return 0;
}

enum am_lang am_msg_lang(const char *h)
{
	if (!h)
		return AM_LANG_EN;
	double zh_q = 0, other_q = 0;
	int zh_first = 0, seen_other = 0;
	for (const char *p = h; *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *e = p;
		while (*e && *e != ',')
			e++;
		int is_zh;
		double q;
		if (e > p && one_range(p, (size_t)(e - p), &is_zh, &q) == 0) {
			if (is_zh && q > zh_q) {
				zh_q = q;
				zh_first = !seen_other || q > other_q;
			} else if (!is_zh && q > 0) {
				if (q > other_q)
					other_q = q;
				seen_other = 1;
			}
		}
		p = e;
	}
	return zh_q > 0 && (zh_q > other_q || (zh_q == other_q && zh_first)) ? AM_LANG_ZH : AM_LANG_EN;
}

/* ---- templates' arguments ---- */

#define MAX_ARGS 24

/* The arguments a template takes: type[i] is argument i+1's type, a short
 * string such as "d", "lld", "zu", "s", "f" ("" when not used). */
struct args {
	int n;
	char type[MAX_ARGS][6];
};

static int set_arg(struct args *a, int pos, const char *type, char *why, size_t size)
{
	if (pos < 1 || pos > MAX_ARGS)
		return am_fmt(why, size, "argument %d is out of range", pos), -1;
	if (a->type[pos - 1][0] && strcmp(a->type[pos - 1], type))
		return am_fmt(why, size, "argument %d is used as %s and as %s", pos, a->type[pos - 1], type), -1;
	am_strlcpy(a->type[pos - 1], type, sizeof a->type[0]);
	if (pos > a->n)
		a->n = pos;
	return 0;
}

/* A number then '$' at *p: the position, moving *p past the '$'; else 0. */
static int position(const char **p)
{
	const char *s = *p;
	int v = 0;
	while (isdigit((unsigned char)*s) && v < 1000)
		v = v * 10 + (*s++ - '0');
	if (s == *p || *s != '$')
		return 0;
	*p = s + 1;
	return v;
}

static int parse_args(const char *f, struct args *a, char *why, size_t size)
{
	memset(a, 0, sizeof *a);
	int next = 1, positional = -1; /* -1: not known yet */
	for (const char *p = f; *p; p++) {
		if (*p != '%')
			continue;
		p++;
		if (*p == '%')
			continue;
		int pos = position(&p);
		if (positional >= 0 && positional != (pos > 0))
			return am_fmt(why, size, "positional and plain conversions are mixed"), -1;
		positional = pos > 0;
		while (*p && strchr("-+ #0'I", *p))
			p++;
		for (int part = 0; part < 2; part++) { /* the width, then the precision */
			if (part == 1) {
				if (*p != '.')
					break;
				p++;
			}
			if (*p == '*') {
				p++;
				int sp = position(&p);
				if (positional != (sp > 0))
					return am_fmt(why, size, "positional and plain conversions are mixed"), -1;
				if (set_arg(a, positional ? sp : next++, "d", why, size) != 0)
					return -1;
			} else {
				while (isdigit((unsigned char)*p))
					p++;
			}
		}
		char len[3] = "";
		if ((p[0] == 'h' && p[1] == 'h') || (p[0] == 'l' && p[1] == 'l')) {
			len[0] = p[0], len[1] = p[1];
			p += 2;
		} else if (*p && strchr("hlLjztqZ", *p)) {
			if (*p == 'q')
				am_strlcpy(len, "ll", sizeof len);
			else
				len[0] = *p == 'Z' ? 'z' : *p;
			p++;
		}
		char type[6];
		if (!*p)
			return am_fmt(why, size, "a conversion is cut off"), -1;
		if (*p == 'm')
			continue; /* glibc's strerror(errno): no argument */
		if (strchr("di", *p))
			am_fmt(type, sizeof type, "%sd", len);
		else if (strchr("ouxX", *p))
			am_fmt(type, sizeof type, "%su", len);
		else if (strchr("eEfFgGaA", *p))
			am_fmt(type, sizeof type, "%sf", len);
		else if (*p == 'c' || *p == 's' || *p == 'p')
			am_fmt(type, sizeof type, "%s%c", len, *p);
		else
			return am_fmt(why, size, "conversion '%%%c' is not allowed", *p), -1;
		if (set_arg(a, positional > 0 ? pos : next++, type, why, size) != 0)
			return -1;
	}
	for (int i = 0; i < a->n; i++)
		if (!a->type[i][0])
			return am_fmt(why, size, "argument %d is never used", i + 1), -1;
	return 0;
}

int am_msg_check(const char *en, const char *zh, char *why, size_t size)
{
	struct args a, b;
	char w[128];
	if (parse_args(en, &a, w, sizeof w) != 0)
		return am_fmt(why, size, "English: %s", w), -1;
	if (parse_args(zh, &b, w, sizeof w) != 0)
		return am_fmt(why, size, "Chinese: %s", w), -1;
	if (a.n != b.n)
		return am_fmt(why, size, "English takes %d arguments, Chinese %d", a.n, b.n), -1;
	for (int i = 0; i < a.n; i++)
		if (strcmp(a.type[i], b.type[i]))
			return am_fmt(why, size, "argument %d is %s in English, %s in Chinese", i + 1, a.type[i], b.type[i]), -1;
	return 0;
}

/* ---- the index: the table's entries sorted by their English ---- */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const struct am__msg **sorted;
static size_t nsorted;

static int by_en(const void *x, const void *y)
{
	return strcmp((*(const struct am__msg *const *)x)->en, (*(const struct am__msg *const *)y)->en);
}

static void build(void)
{
	sorted = am_malloc(sizeof *sorted * (am__msg_count + 1));
	for (size_t i = 0; i < am__msg_count; i++) {
		char why[160];
		if (am_msg_check(am__msg_table[i].en, am__msg_table[i].zh, why, sizeof why) != 0)
			continue; /* the unit test names it */
		sorted[nsorted++] = &am__msg_table[i];
	}
	qsort(sorted, nsorted, sizeof *sorted, by_en);
}

const char *am_msg_zh(const char *en)
{
	pthread_once(&once, build);
	struct am__msg key = { en, NULL };
	const struct am__msg *kp = &key;
	const struct am__msg **hit = en ? bsearch(&kp, sorted, nsorted, sizeof *sorted, by_en) : NULL;
	return hit ? (*hit)->zh : NULL;
}

int am_msg_entry(size_t i, const char **en, const char **zh)
{
	if (i >= am__msg_count)
		return 0;
	*en = am__msg_table[i].en;
	*zh = am__msg_table[i].zh;
	return 1;
}

/* ---- formatting ---- */

/* Drops a character cut in half at the end (vsnprintf cuts at a byte
 * count; Chinese characters are 3 bytes), then scrubs the rest. */
static void cut_whole(char *s)
{
	size_t n = strlen(s), i = n;
	while (i > 0 && n - i < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
		i--;
	if (i > 0) {
		unsigned char c = (unsigned char)s[i - 1];
		size_t want = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
		if (n - (i - 1) < want)
			s[i - 1] = '\0';
	}
	am_utf8_scrub(s);
}

int am_msg_vzh(char *zh, size_t size, const char *en, va_list ap)
{
	const char *t = am_msg_zh(en);
	if (!size)
		return t != NULL;
	if (!t) {
		zh[0] = '\0';
		return 0;
	}
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	vsnprintf(zh, size, t, ap); /* checked against en's arguments by build() */
#pragma GCC diagnostic pop
	cut_whole(zh);
	return 1;
}

int am_msg_zhf(char *zh, size_t size, const char *en, ...)
{
	char tmp[1024];
	va_list ap;
	va_start(ap, en);
	int ok = am_msg_vzh(tmp, sizeof tmp, en, ap);
	va_end(ap);
	if (ok) {
		am_strlcpy(zh, tmp, size);
		cut_whole(zh);
	}
	return ok;
}

const char *am_msg_word(const char *en)
{
	const char *zh = am_msg_zh(en);
	return zh ? zh : en;
}

void am_msg_fmt(char *en, size_t ensize, char *zh, size_t zhsize, const char *fmt, ...)
{
	va_list ap, ap2;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	vsnprintf(en, ensize, fmt, ap);
	cut_whole(en);
	if (!am_msg_vzh(zh, zhsize, fmt, ap2)) {
		am_strlcpy(zh, en, zhsize);
		cut_whole(zh);
	}
	va_end(ap2);
	va_end(ap);
}

void am_msg_buf_init(struct am_msg_buf *b, size_t max)
{
	am_buf_init(&b->en, max);
	am_buf_init(&b->zh, max);
}

void am_msg_buf_printf(struct am_msg_buf *b, const char *fmt, ...)
{
	va_list ap, ap2;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	size_t before = b->en.len;
	am_buf_vprintf(&b->en, fmt, ap);
	const char *t = am_msg_zh(fmt);
	if (t) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		am_buf_vprintf(&b->zh, t, ap2);
#pragma GCC diagnostic pop
	} else if (b->en.len > before) {
		am_buf_add(&b->zh, b->en.data + before, b->en.len - before);
	}
	va_end(ap2);
	va_end(ap);
}

void am_msg_buf_free(struct am_msg_buf *b)
{
	am_buf_free(&b->en);
	am_buf_free(&b->zh);
}
