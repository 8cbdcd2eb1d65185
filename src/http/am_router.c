/* am_router: route table matching. */
#include "am_router.h"

#include <string.h>

#include "../base/am_buf.h"
#include "am_http_parse.h"

struct route_head {
	const char *method;
	const char *pattern;
};

/* 1 when path matches pattern; fills params. -1 when a placeholder's value
 * does not decode. */
static int match(const char *pattern, const char *path, struct am_route_params *p)
{
	p->n = 0;
	const char *a = pattern, *b = path;
	while (*a && *b) {
		if (*a == '{') {
			const char *close = strchr(a, '}');
			if (!close)
				return 0;
			const char *seg_end = strchr(b, '/');
			size_t vl = seg_end ? (size_t)(seg_end - b) : strlen(b);
			if (vl == 0 || p->n == AM_ROUTE_MAX_PARAMS)
				return 0;
			p->name[p->n] = a + 1;
			p->name_len[p->n] = (size_t)(close - a - 1);
			if (am_http_urldecode(b, vl, p->value[p->n], sizeof p->value[p->n]) < 0)
				return -1;
			p->n++;
			a = close + 1;
			b += vl;
			continue;
		}
		if (*a != *b)
			return 0;
		a++;
		b++;
	}
	return *a == '\0' && *b == '\0';
}

enum am_route_result am_router_match(const void *table, size_t elem_size, size_t count, const char *method,
				     const char *path, size_t *index, struct am_route_params *params,
				     char *allow, size_t allow_size)
{
	struct am_buf methods;
	am_buf_init(&methods, 256);
	int path_matched = 0, bad = 0;
	const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
	for (size_t i = 0; i < count; i++) {
		const struct route_head *r = (const void *)((const char *)table + i * elem_size);
		struct am_route_params tmp;
		int m = match(r->pattern, path, &tmp);
		if (m < 0) {
			bad = 1;
			continue;
		}
		if (!m)
			continue;
		if (strcmp(r->method, want) == 0) {
			*index = i;
			*params = tmp;
			am_buf_free(&methods);
			return AM_ROUTE_FOUND;
		}
		if (!strstr(am_buf_str(&methods), r->method))
			am_buf_printf(&methods, "%s%s", path_matched ? ", " : "", r->method);
		path_matched = 1;
	}
	am_strlcpy(allow, am_buf_str(&methods), allow_size);
	am_buf_free(&methods);
	if (path_matched)
		return AM_ROUTE_BAD_METHOD;
	return bad ? AM_ROUTE_BAD_PATH : AM_ROUTE_NOT_FOUND;
}

const char *am_route_param(const struct am_route_params *p, const char *name)
{
	size_t nl = strlen(name);
	for (int i = 0; i < p->n; i++)
		if (p->name_len[i] == nl && memcmp(p->name[i], name, nl) == 0)
			return p->value[i];
	return NULL;
}
