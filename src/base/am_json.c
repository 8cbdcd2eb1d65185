/* am_json: validated access to JSON request bodies. */
#include "am_json.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "am_buf.h"
#include "am_mem.h"

int am_json_parse_object(const char *body, size_t len, json_t **out, struct am_err *err)
{
	if (len == 0) {
		*out = json_object();
		return 0;
	}
	json_error_t je;
	json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!v)
		return am_err_set(err, AM_E_MALFORMED, "", "request body is not valid JSON: %s (line %d, column %d)",
				  je.text, je.line, je.column);
	if (!json_is_object(v)) {
		json_decref(v);
		return am_err_set(err, AM_E_MALFORMED, "", "request body must be a JSON object");
	}
	*out = v;
	return 0;
}

int am_json_only(json_t *obj, const char *const *allowed, struct am_err *err)
{
	const char *key;
	json_t *val;
	json_object_foreach(obj, key, val) {
		int ok = 0;
		for (const char *const *a = allowed; *a; a++) {
			if (strcmp(*a, key) == 0) {
				ok = 1;
				break;
			}
		}
		if (!ok)
			return am_err_set(err, AM_E_INVALID, key, "unknown field '%.60s'", key);
	}
	return 0;
}

static json_t *present(json_t *obj, const char *key, int required, struct am_err *err, int *rc)
{
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v)) {
		*rc = required ? am_err_set(err, AM_E_INVALID, key, "'%s' is required", key) : 0;
		return NULL;
	}
	return v;
}

int am_json_get_str(json_t *obj, const char *key, int required, size_t minlen, size_t maxlen,
		    const char **out, struct am_err *err)
{
	int rc = 0;
	json_t *v = present(obj, key, required, err, &rc);
	if (!v)
		return rc;
	if (!json_is_string(v))
		return am_err_set(err, AM_E_INVALID, key, "'%s' must be a string", key);
	size_t n = json_string_length(v);
	const char *s = json_string_value(v);
	if (strlen(s) != n)
		return am_err_set(err, AM_E_INVALID, key, "'%s' must not contain NUL characters", key);
	if (n < minlen)
		return am_err_set(err, AM_E_INVALID, key, minlen == 1 ? "'%s' must not be empty" :
				  "'%s' is too short", key);
	if (n > maxlen)
		return am_err_set(err, AM_E_INVALID, key, "'%s' must be at most %zu bytes", key, maxlen);
	*out = s;
	return 0;
}

int am_json_get_int(json_t *obj, const char *key, int required, long long min, long long max,
		    long long *out, struct am_err *err)
{
	int rc = 0;
	json_t *v = present(obj, key, required, err, &rc);
	if (!v)
		return rc;
	if (!json_is_integer(v))
		return am_err_set(err, AM_E_INVALID, key, "'%s' must be an integer", key);
	long long n = json_integer_value(v);
	if (n < min || n > max)
		return am_err_set(err, AM_E_INVALID, key, "'%s' must be between %lld and %lld", key, min, max);
	*out = n;
	return 0;
}

int am_json_get_bool(json_t *obj, const char *key, int required, int *out, struct am_err *err)
{
	int rc = 0;
	json_t *v = present(obj, key, required, err, &rc);
	if (!v)
		return rc;
	if (!json_is_boolean(v))
		return am_err_set(err, AM_E_INVALID, key, "'%s' must be true or false", key);
	*out = json_is_true(v);
	return 0;
}

int am_json_has(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return v && !json_is_null(v);
}

/* A string's bytes as the inside of a JSON string: escapes for '"', '\\' and control characters
 * (jansson's choices: \b \f \n \r \t, else \u00XX); other bytes as they are. */
void am_json_escape(struct am_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		am_buf_add(b, s + run, i - run);
		run = i + 1;
		char e[6] = { '\\', 0 };
		size_t el = 2;
		switch (c) {
		case '"': e[1] = '"'; break;
		case '\\': e[1] = '\\'; break;
		case '\b': e[1] = 'b'; break;
		case '\f': e[1] = 'f'; break;
		case '\n': e[1] = 'n'; break;
		case '\r': e[1] = 'r'; break;
		case '\t': e[1] = 't'; break;
		default:
			e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[c >> 4], e[5] = hex[c & 15];
			el = 6;
		}
		am_buf_add(b, e, el);
	}
	am_buf_add(b, s + run, n - run);
}

/* A string as JSON, quoted. */
static void dump_string(struct am_buf *b, const char *s, size_t n)
{
	am_buf_add(b, "\"", 1);
	am_json_escape(b, s, n);
	am_buf_add(b, "\"", 1);
}

/* A real as jansson writes it with JSON_REAL_PRECISION(10): "%.10g", a ".0"
 * when it would read back as an integer, the exponent without '+' or
 * leading zeros; null for what JSON cannot hold (NaN, infinities). */
static void dump_real(struct am_buf *b, double d)
{
	if (d != d || d > 1.7976931348623157e308 || d < -1.7976931348623157e308) {
		am_buf_add(b, "null", 4);
		return;
	}
	char t[64];
	int n = snprintf(t, sizeof t, "%.10g", d);
	if (n < 0 || n >= (int)sizeof t - 3)
		n = (int)strlen(t);
	if (!strchr(t, '.') && !strchr(t, 'e')) {
		memcpy(t + n, ".0", 3);
		n += 2;
	}
	char *e = strchr(t, 'e');
	if (e) { /* "1e+20" -> "1e20", "1e-05" -> "1e-5" */
		char *start = e + 1, *end = start + 1;
		if (*start == '-')
			start++;
		while (*end == '0')
			end++;
		if (end != start)
			memmove(start, end, strlen(end) + 1);
		n = (int)strlen(t);
	}
	am_buf_add(b, t, (size_t)n);
}

/* v into b, compact, objects in their own order (jansson's dump without its
 * cycle check: a tree built here has none, and the check's hash table was
 * most of a large answer's cost). */
static void dump(struct am_buf *b, const json_t *v, const struct am_json_hooks *h, const char *key)
{
	char t[32];
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		am_buf_add(b, "{", 1);
		const char *k;
		json_t *x;
		int first = 1;
		json_object_foreach((json_t *)v, k, x) {
			if (!first)
				am_buf_add(b, ",", 1);
			first = 0;
			dump_string(b, k, strlen(k));
			am_buf_add(b, ":", 1);
			dump(b, x, h, k);
		}
		am_buf_add(b, "}", 1);
		break;
	}
	case JSON_ARRAY: {
		am_buf_add(b, "[", 1);
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x) {
			if (i)
				am_buf_add(b, ",", 1);
			dump(b, x, h, NULL);
		}
		am_buf_add(b, "]", 1);
		break;
	}
	case JSON_STRING:
		if (h && h->string && key && h->string(key, json_string_value(v), json_string_length(v), b, h->arg))
			break;
		dump_string(b, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		if (h && h->integer && key && h->integer(key, json_integer_value(v), b, h->arg))
			break;
		am_buf_add(b, t, (size_t)snprintf(t, sizeof t, "%" JSON_INTEGER_FORMAT, json_integer_value(v)));
		break;
	case JSON_REAL:
		dump_real(b, json_real_value(v));
		break;
	case JSON_TRUE:
		am_buf_add(b, "true", 4);
		break;
	case JSON_FALSE:
		am_buf_add(b, "false", 5);
		break;
	default:
		am_buf_add(b, "null", 4);
	}
}

json_t *am_json_column(const char *s, size_t flags)
{
	if (!s)
		return NULL;
	/* what most columns hold, without the parser (a page renders hundreds) */
	if (!strcmp(s, "[]"))
		return json_array();
	if (!strcmp(s, "{}"))
		return json_object();
	if (!strcmp(s, "null"))
		return (flags & JSON_DECODE_ANY) ? json_null() : NULL;
	return json_loads(s, flags, NULL);
}

char *am_json_dump_with(const json_t *v, const struct am_json_hooks *h)
{
	if (!v)
		return am_strdup("null");
	struct am_buf b;
	am_buf_init(&b, (size_t)1 << 40);
	dump(&b, v, h, NULL);
	return am_buf_take(&b);
}

char *am_json_dump(const json_t *v)
{
	return am_json_dump_with(v, NULL);
}

json_t *am_json_load_path(const char *path, size_t flags, json_error_t *error)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (error) {
			memset(error, 0, sizeof *error);
			am_fmt(error->text, sizeof error->text, "unable to open %.100s: %s", path, strerror(errno));
		}
		return NULL;
	}
	json_t *v = json_loadfd(fd, flags, error);
	close(fd);
	return v;
}

int am_json_rows_have_id(const json_t *rows, long long id)
{
	size_t i;
	json_t *row;
	json_array_foreach((json_t *)rows, i, row)
		if (json_integer_value(json_object_get(row, "id")) == id)
			return 1;
	return 0;
}
