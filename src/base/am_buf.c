/* am_buf: capped growable byte buffer and bounded string helpers. */
#include "am_buf.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "am_mem.h"

void am_buf_init(struct am_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void am_buf_free(struct am_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void am_buf_reset(struct am_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

static int grow(struct am_buf *b, size_t extra)
{
	if (extra > b->max || b->len > b->max - extra)
		return -1;
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	b->data = am_realloc(b->data, cap);
	b->cap = cap;
	return 0;
}

int am_buf_add(struct am_buf *b, const void *p, size_t n)
{
	if (grow(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int am_buf_adds(struct am_buf *b, const char *s)
{
	return am_buf_add(b, s, strlen(s));
}

int am_buf_vprintf(struct am_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0 || grow(b, (size_t)n) < 0)
		return -1;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int am_buf_printf(struct am_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = am_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

const char *am_buf_str(const struct am_buf *b)
{
	return b->data ? b->data : "";
}

char *am_buf_take(struct am_buf *b)
{
	char *p = b->data ? b->data : am_strdup("");
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

void am_fmt(char *dst, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(dst, size, fmt, ap);
	va_end(ap);
}

size_t am_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);
	if (size) {
		size_t c = n < size - 1 ? n : size - 1;
		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}

/* See am_buf.h. */
size_t am_utf8_seq(const unsigned char *s, size_t avail)
{
	unsigned c = s[0], need, v;
	if (c >= 0xC2 && c <= 0xDF)
		need = 2, v = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		need = 3, v = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		need = 4, v = c & 0x07;
	else
		return 0;
	if (avail < need)
		return 0;
	for (unsigned i = 1; i < need; i++) {
		if (s[i] < 0x80 || s[i] > 0xBF) /* the NUL ends it here too */
			return 0;
		v = v << 6 | (s[i] & 0x3F);
	}
	if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || (need == 3 && v < 0x800) || (need == 4 && v < 0x10000))
		return 0;
	return need;
}

/* A code point past ASCII that may stand in a label: letters and digits of
 * other scripts; not C1 controls, Latin-1's signs, general punctuation and
 * the invisible and bidi marks (U+2000-U+206F), CJK punctuation and spaces
 * (U+3000-U+303F but 々〆〇), variation selectors, the BOM, full-width
 * punctuation (only its letters and digits), specials, private use. */
static int label_cp_ok(unsigned v)
{
	if (v < 0xC0 || v == 0xD7 || v == 0xF7)
		return 0;
	if ((v >= 0x2000 && v <= 0x206F) || (v >= 0x2190 && v <= 0x2BFF) || (v >= 0xE000 && v <= 0xF8FF) ||
	    (v >= 0xFE00 && v <= 0xFE0F) || v == 0xFEFF || v >= 0xFFF0 || (v >= 0xF0000))
		return 0;
	if (v >= 0x3000 && v <= 0x303F)
		return v >= 0x3005 && v <= 0x3007;
	if (v >= 0xFF00 && v <= 0xFFEF)
		return (v >= 0xFF10 && v <= 0xFF19) || (v >= 0xFF21 && v <= 0xFF3A) || (v >= 0xFF41 && v <= 0xFF5A);
	return 1;
}

int am_utf8_label_ok(const char *s, size_t max_chars)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t chars = 0, len = strlen(s);
	while (*p) {
		unsigned c = *p;
		if (c < 0x80) {
			int alnum = (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z');
			if (!alnum && (chars == 0 || (c != '.' && c != '_' && c != '-')))
				return 0;
			p++;
		} else {
			size_t n = am_utf8_seq(p, len - (size_t)(p - (const unsigned char *)s));
			if (!n)
				return 0;
			unsigned v = n == 2 ? (c & 0x1Fu) : n == 3 ? (c & 0x0Fu) : (c & 0x07u);
			for (size_t i = 1; i < n; i++)
				v = v << 6 | (p[i] & 0x3Fu);
			if (!label_cp_ok(v))
				return 0;
			p += n;
		}
		if (++chars > max_chars)
			return 0;
	}
	return chars > 0;
}

size_t am_utf8_scrub(char *s)
{
	size_t bad = 0;
	unsigned char *p = (unsigned char *)s;
	while (*p) {
		if (*p < 0x80) {
			p++;
			continue;
		}
		size_t n = am_utf8_seq(p, 4);
		if (n) {
			p += n;
		} else {
			*p++ = '?';
			bad++;
		}
	}
	return bad;
}

int am_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	while (p < end) {
		if (*p < 0x80) {
			p++;
			continue;
		}
		size_t k = am_utf8_seq(p, (size_t)(end - p));
		if (!k)
			return 0;
		p += k;
	}
	return 1;
}

int am_slice_eq(struct am_slice s, const char *lit)
{
	size_t n = strlen(lit);
	return s.n == n && memcmp(s.p, lit, n) == 0;
}

int am_slice_caseeq(struct am_slice s, const char *lit)
{
	size_t n = strlen(lit);
	return s.n == n && strncasecmp(s.p, lit, n) == 0;
}

void am_put(char *buf, size_t cap, size_t *at, const char *s)
{
	size_t n = strlen(s);
	if (*at > cap)
		*at = cap;
	if (n > cap - *at)
		n = cap - *at;
	memcpy(buf + *at, s, n);
	*at += n;
}

void am_put_num(char *buf, size_t cap, size_t *at, unsigned long long v)
{
	char d[24];
	int n = 0;
	do
		d[n++] = (char)('0' + v % 10);
	while ((v /= 10) && n < (int)sizeof d);
	while (n && *at < cap)
		buf[(*at)++] = d[--n];
}
