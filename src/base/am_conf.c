/* am_conf: `key = value` lines (am_conf.h). */
#include "base/am_conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/am_buf.h"
#include "base/am_mem.h"

static int blank(char c)
{
	return c == ' ' || c == '\t';
}

static int key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* One line (without its '\n', NUL-terminated in a buffer of its own) into
 * key and value, both pointing into it. 0, or -1 with why in err. */
static int split_line(char *s, char **key, char **value, char *err, size_t errsize)
{
	char *eq = strchr(s, '=');
	if (!eq) {
		am_fmt(err, errsize, "expected 'key = value'");
		return -1;
	}
	char *k = s, *ke = eq;
	while (ke > k && blank(ke[-1]))
		ke--;
	*ke = '\0';
	if (!*k || ke - k > 63) {
		am_fmt(err, errsize, "expected 'key = value' (a key of 1 to 63 characters)");
		return -1;
	}
	for (char *p = k; *p; p++)
		if (!key_char(*p)) {
			am_fmt(err, errsize, "a key is lower-case letters, digits and '-' (got '%s')", k);
			return -1;
		}
	char *v = eq + 1;
	while (blank(*v))
		v++;
	char *end;
	if (*v == '"') {
		char *close = strchr(v + 1, '"');
		if (!close) {
			am_fmt(err, errsize, "%s: a quoted value has no closing '\"'", k);
			return -1;
		}
		char *rest = close + 1;
		while (blank(*rest))
			rest++;
		if (*rest && *rest != '#') {
			am_fmt(err, errsize, "%s: text after the closing '\"'", k);
			return -1;
		}
		v++;
		end = close;
	} else {
		end = v;
		while (*end && !(*end == '#' && (end == v || blank(end[-1]))))
			end++;
		while (end > v && blank(end[-1]))
			end--;
	}
	*end = '\0';
	*key = k;
	*value = v;
	return 0;
}

int am_conf_parse(const char *text, size_t len, am_conf_fn fn, void *data, char *err, size_t errsize)
{
	char *line = am_malloc(AM_CONF_LINE_MAX + 1);
	char why[512];
	int rc = -1, no = 0;
	size_t pos = 0;
	err[0] = '\0';
	while (pos < len) {
		no++;
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = (nl ? (size_t)(nl - text) : len) - pos;
		const char *s = text + pos;
		pos += n + (nl != NULL);
		if (n && s[n - 1] == '\r')
			n--;
		if (n > AM_CONF_LINE_MAX) {
			am_fmt(err, errsize, "line %d: longer than %d bytes", no, AM_CONF_LINE_MAX);
			goto out;
		}
		if (memchr(s, '\0', n)) {
			am_fmt(err, errsize, "line %d: a NUL byte (not a text file?)", no);
			goto out;
		}
		memcpy(line, s, n);
		line[n] = '\0';
		char *p = line;
		while (blank(*p))
			p++;
		if (!*p || *p == '#')
			continue;
		char *key, *value;
		why[0] = '\0';
		if (split_line(p, &key, &value, why, sizeof why) != 0 || fn(key, value, no, data, why, sizeof why) != 0) {
			am_fmt(err, errsize, "line %d: %s", no, why[0] ? why : "refused");
			goto out;
		}
	}
	rc = 0;
out:
	free(line);
	return rc;
}

int am_conf_read(const char *path, char **text, size_t *len, char *err, size_t errsize)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		am_fmt(err, errsize, "cannot read %s: %s", path, strerror(e));
		errno = e;
		return -1;
	}
	char *buf = am_malloc(AM_CONF_FILE_MAX + 1);
	size_t n = 0;
	int rc = -1;
	for (;;) {
		ssize_t r = read(fd, buf + n, AM_CONF_FILE_MAX + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			am_fmt(err, errsize, "cannot read %s: %s", path, strerror(e));
			errno = e;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > AM_CONF_FILE_MAX) {
			am_fmt(err, errsize, "%s is larger than %d bytes", path, AM_CONF_FILE_MAX);
			rc = -2;
			goto out;
		}
	}
	buf[n] = '\0';
	*text = buf;
	*len = n;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}
