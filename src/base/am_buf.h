/* am_buf: one owning byte buffer with a size cap fixed at init (curl's
 * dynbuf). Every byte from the network or a file goes through one, so no
 * input can grow memory without bound. The data is always NUL-terminated. */
#ifndef AM_BUF_H
#define AM_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct am_buf {
	char *data;   /* NULL until the first append */
	size_t len;
	size_t cap;
	size_t max;   /* appends that would pass this fail with -1 */
};

/* A non-owning view of bytes, for parsing without copies. */
struct am_slice {
	const char *p;
	size_t n;
};

void am_buf_init(struct am_buf *b, size_t max);
void am_buf_free(struct am_buf *b);
/* Forget the contents, keep the memory. */
void am_buf_reset(struct am_buf *b);
/* 0, or -1 when the cap would be passed (the buffer is then unchanged). */
int am_buf_add(struct am_buf *b, const void *p, size_t n);
int am_buf_adds(struct am_buf *b, const char *s);
int am_buf_printf(struct am_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int am_buf_vprintf(struct am_buf *b, const char *fmt, va_list ap);
/* The contents as a C string ("" when empty); borrowed. */
const char *am_buf_str(const struct am_buf *b);
/* Hands the contents to the caller (free with free()); the buffer is empty after. */
char *am_buf_take(struct am_buf *b);

/* Bounded formatting into a fixed array: always NUL-terminated, truncates. */
void am_fmt(char *dst, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Bounded copy, always NUL-terminated; returns strlen(src). */
size_t am_strlcpy(char *dst, const char *src, size_t size);
/* Replaces, in place, each byte of s that does not belong to a valid UTF-8
 * sequence (shortest form, no surrogate, at most U+10FFFF) with '?', so
 * text that quotes a client's bytes (a path, a cut-off name) can go into
 * JSON. Returns the number of bytes replaced. */
size_t am_utf8_scrub(char *s);
/* The length of the valid UTF-8 sequence at s (s[0] >= 0x80) within avail
 * bytes: the shortest form, no surrogate, at most U+10FFFF; 0 when it is
 * not one. */
size_t am_utf8_seq(const unsigned char *s, size_t avail);
/* Whether s[0..n) is valid UTF-8 by the same rules. */
int am_utf8_valid(const char *s, size_t n);
/* Whether s is a name that is only a label (a dataset's, a user's): 1 to
 * max_chars characters of valid UTF-8, ASCII letters and digits, '.', '_',
 * '-', and letters of other scripts (Chinese, accented Latin, ...), starting
 * with a letter or digit; no spaces, controls, '/', invisible or
 * direction-changing characters, or CJK and full-width punctuation. */
int am_utf8_label_ok(const char *s, size_t max_chars);

int am_slice_eq(struct am_slice s, const char *lit);
/* Appends s to buf (size cap) at *at, as far as it fits: a message head
 * built without a printf on a hot path. */
void am_put(char *buf, size_t cap, size_t *at, const char *s);
/* Appends v in decimal, as far as it fits. */
void am_put_num(char *buf, size_t cap, size_t *at, unsigned long long v);
int am_slice_caseeq(struct am_slice s, const char *lit);

#endif
