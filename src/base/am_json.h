/* am_json: reading request bodies with jansson, with errors that name the
 * field. Getters leave *out untouched when the key is absent and optional. */
#ifndef AM_JSON_H
#define AM_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "am_err.h"

#define AM_JSON_REQUIRED 1
#define AM_JSON_OPTIONAL 0

/* Parses a body that must be one JSON object. On success *out owns a
 * reference (json_decref it). An empty body parses as {}. */
int am_json_parse_object(const char *body, size_t len, json_t **out, struct am_err *err);
/* Refuses keys not in the NULL-terminated list (typos must not pass silently). */
int am_json_only(json_t *obj, const char *const *allowed, struct am_err *err);
/* A string of minlen..maxlen bytes, valid UTF-8 (jansson checks), no NUL. */
int am_json_get_str(json_t *obj, const char *key, int required, size_t minlen, size_t maxlen,
		    const char **out, struct am_err *err);
int am_json_get_int(json_t *obj, const char *key, int required, long long min, long long max,
		    long long *out, struct am_err *err);
int am_json_get_bool(json_t *obj, const char *key, int required, int *out, struct am_err *err);
/* 1 when key is present with a value other than null. */
int am_json_has(json_t *obj, const char *key);

/* A JSON text column as a value: json_loads(s, flags), with "[]", "{}" and
 * "null" made without the parser. NULL for NULL, or when it does not parse
 * ("null" without JSON_DECODE_ANY is NULL, as json_loads makes it). */
json_t *am_json_column(const char *s, size_t flags);
/* Whether one of rows (an array of objects) has the integer member "id"
 * equal to id. */
int am_json_rows_have_id(const json_t *rows, long long id);
/* Serialises compactly; free with free(). */
char *am_json_dump(const json_t *v);
struct am_buf;
/* Ways to write some of an object's members differently (am_json_dump_with):
 * each hook writes the member named key's value, as JSON, into out (1), or
 * leaves it to the writer (0). Either may be NULL. */
struct am_json_hooks {
	int (*integer)(const char *key, long long v, struct am_buf *out, void *arg);
	int (*string)(const char *key, const char *s, size_t n, struct am_buf *out, void *arg);
	void *arg;
};
/* The inside of a JSON string for s[0..n) (no quotes), as am_json_dump
 * writes it: '"', '\\' and control characters escaped, other bytes as they are. */
void am_json_escape(struct am_buf *b, const char *s, size_t n);
/* am_json_dump, each object member that is an integer or a string offered
 * to its hook first. */
char *am_json_dump_with(const json_t *v, const struct am_json_hooks *h);
/* json_load_file, but the file is opened close-on-exec (jansson's fopen is
 * not: a process spawned meanwhile on another thread would inherit it).
 * error may be NULL. */
json_t *am_json_load_path(const char *path, size_t flags, json_error_t *error);

#endif
