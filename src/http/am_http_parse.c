/* am_http_parse: HTTP/1.x request-head parsing. */
#include "am_http_parse.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static int is_tchar(int c)
{
	return isalnum(c) || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static char *trim(char *s, char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*end = '\0';
	return s;
}

static int parse_request_line(char *line, struct am_http_head *h)
{
	char *sp1 = strchr(line, ' ');
	if (!sp1 || sp1 == line)
		return 400;
	*sp1 = '\0';
	for (char *p = line; *p; p++)
		if (!is_tchar((unsigned char)*p))
			return 400;
	char *target = sp1 + 1;
	char *sp2 = strchr(target, ' ');
	if (!sp2 || sp2 == target)
		return 400;
	*sp2 = '\0';
	const char *ver = sp2 + 1;
	if (strncmp(ver, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)ver[7]) || ver[8] != '\0')
		return strncmp(ver, "HTTP/", 5) == 0 ? 505 : 400;
	for (char *p = target; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return 400;
	if (target[0] != '/' && strcmp(target, "*") != 0)
		return 400;
	h->method = line;
	h->target = target;
	h->minor = ver[7] - '0';
	return 0;
}

static int parse_content_length(const char *v, int64_t *out)
{
	if (!*v)
		return -1;
	int64_t n = 0;
	for (const char *p = v; *p; p++) {
		if (!isdigit((unsigned char)*p) || n > (INT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (*p - '0');
	}
	*out = n;
	return 0;
}

int am_http_parse_head(char *buf, size_t len, struct am_http_head *h)
{
	memset(h, 0, sizeof *h);
	h->content_length = -1;
	buf[len] = '\0';
	if (memchr(buf, '\0', len))
		return 400;
	char *end = buf + len;
	char *line = buf;
	char *eol = strstr(line, "\r\n");
	if (!eol)
		eol = end;
	*eol = '\0';
	int rc = parse_request_line(line, h);
	if (rc)
		return rc;
	int have_te = 0, conn_close = 0, conn_keep = 0;
	line = eol < end ? eol + 2 : end;
	while (line < end) {
		eol = strstr(line, "\r\n");
		if (!eol)
			eol = end;
		if (line[0] == ' ' || line[0] == '\t')
			return 400; /* obs-fold */
		char *colon = memchr(line, ':', (size_t)(eol - line));
		if (!colon || colon == line)
			return 400;
		for (char *p = line; p < colon; p++)
			if (!is_tchar((unsigned char)*p))
				return 400;
		for (char *p = colon + 1; p < eol; p++)
			if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
				return 400;
		if (h->nhdrs == AM_HTTP_MAX_HEADERS)
			return 431;
		*colon = '\0';
		struct am_http_hdr *hd = &h->hdrs[h->nhdrs++];
		hd->name = line;
		hd->value = trim(colon + 1, eol);
		if (strcasecmp(hd->name, "content-length") == 0) {
			int64_t n;
			if (parse_content_length(hd->value, &n) != 0)
				return 400;
			if (h->content_length >= 0 && h->content_length != n)
				return 400;
			h->content_length = n;
		} else if (strcasecmp(hd->name, "transfer-encoding") == 0) {
			if (have_te || strcasecmp(hd->value, "chunked") != 0)
				return have_te ? 400 : 501;
			have_te = 1;
			h->chunked = 1;
		} else if (strcasecmp(hd->name, "connection") == 0) {
			/* a comma list: look for the two tokens that matter */
			char tmp[128];
			size_t n = strlen(hd->value);
			if (n >= sizeof tmp)
				n = sizeof tmp - 1;
			for (size_t i = 0; i < n; i++)
				tmp[i] = (char)tolower((unsigned char)hd->value[i]);
			tmp[n] = '\0';
			if (strstr(tmp, "close"))
				conn_close = 1;
			if (strstr(tmp, "keep-alive"))
				conn_keep = 1;
		} else if (strcasecmp(hd->name, "expect") == 0) {
			if (strcasecmp(hd->value, "100-continue") == 0)
				h->expect_continue = 1;
		}
		line = eol < end ? eol + 2 : end;
	}
	if (h->chunked && h->content_length >= 0)
		return 400;
	if (h->chunked && h->minor == 0)
		return 400;
	h->keepalive = h->minor >= 1 ? !conn_close : conn_keep;
	return 0;
}

const char *am_http_head_get(const struct am_http_head *h, const char *name)
{
	for (int i = 0; i < h->nhdrs; i++)
		if (strcasecmp(h->hdrs[i].name, name) == 0)
			return h->hdrs[i].value;
	return NULL;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

long am_http_urldecode(const char *src, size_t n, char *dst, size_t size)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)src[i];
		if (c == '%') {
			if (i + 2 >= n)
				return -1;
			int a = hexval((unsigned char)src[i + 1]), b = hexval((unsigned char)src[i + 2]);
			if (a < 0 || b < 0)
				return -1;
			c = a * 16 + b;
			i += 2;
		}
		if (c == 0 || o + 1 >= size)
			return -1;
		dst[o++] = (char)c;
	}
	if (size == 0)
		return -1;
	dst[o] = '\0';
	return (long)o;
}
