/* am_http_parse: a pure parser for the head of an HTTP/1.x request (request
 * line + header fields), separate from the I/O so it can be unit-tested and
 * fuzzed. It refuses what request-smuggling and header-injection attacks
 * rely on: obs-folds, whitespace before the colon, Content-Length together
 * with Transfer-Encoding, conflicting Content-Lengths, unknown codings. */
#ifndef AM_HTTP_PARSE_H
#define AM_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define AM_HTTP_MAX_HEADERS 64

struct am_http_hdr {
	const char *name;   /* NUL-terminated, inside the parsed buffer */
	const char *value;  /* trimmed of surrounding whitespace */
};

struct am_http_head {
	const char *method;
	const char *target;       /* as sent: path and query */
	int minor;                /* HTTP/1.<minor> */
	struct am_http_hdr hdrs[AM_HTTP_MAX_HEADERS];
	int nhdrs;
	int64_t content_length;   /* -1 when absent */
	int chunked;
	int keepalive;
	int expect_continue;
};

/* Parses buf[0..len) (the bytes before the blank line, without it), which
 * it modifies in place; buf[len] must be writable. Returns 0, or the HTTP
 * status to answer with: 400 malformed, 431 too many headers, 501 unknown
 * transfer coding, 505 unsupported version. */
int am_http_parse_head(char *buf, size_t len, struct am_http_head *h);

/* Header value by case-insensitive name, or NULL. */
const char *am_http_head_get(const struct am_http_head *h, const char *name);

/* Percent-decodes src[0..n) into dst (size bytes). '+' stays '+'. Returns
 * the decoded length, or -1 for a bad escape, a NUL byte, or no room. */
long am_http_urldecode(const char *src, size_t n, char *dst, size_t size);

#endif
