/* am_json: validated access to JSON request bodies. */
#include "am_json.h"

#include <errno.h>
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

char *am_json_dump(const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(10));
	return s ? s : am_strdup("null");
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
