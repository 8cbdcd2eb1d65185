/* am_conf: the configuration file's syntax, `key = value` lines (aimaas.conf).
 * A line is blank, a comment (its first non-blank character is '#') or
 * `key = value`: the key is lower-case letters, digits and '-'; the value is
 * the rest of the line without surrounding blanks, ended early by a '#' that
 * follows a blank (a trailing comment), or "double-quoted" to keep blanks or
 * a " #" (no escapes inside). What a key means is the caller's business. */
#ifndef AM_CONF_H
#define AM_CONF_H

#include <stddef.h>

#define AM_CONF_LINE_MAX 4096    /* the longest line */
#define AM_CONF_FILE_MAX (1 << 20) /* the largest file am_conf_read reads */

/* Called for each `key = value` line, in order (key and value borrowed for
 * the call). Returns 0 to go on, or -1 with a message for the user in err
 * (which am_conf_parse prefixes with "line N: "). */
typedef int (*am_conf_fn)(const char *key, const char *value, int line, void *data, char *err, size_t errsize);

/* Parses len bytes of text, calling fn for every setting. Returns 0, or -1
 * with "line N: why" in err at the first malformed line or the first
 * setting fn refuses. */
int am_conf_parse(const char *text, size_t len, am_conf_fn fn, void *data, char *err, size_t errsize);

/* Reads a whole configuration file (at most AM_CONF_FILE_MAX bytes) into a
 * NUL-terminated *text (free it) of *len bytes. Returns 0, -1 with errno set
 * and a message in err, or -2 when it is larger than the limit. */
int am_conf_read(const char *path, char **text, size_t *len, char *err, size_t errsize);

#endif
