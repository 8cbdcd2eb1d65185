/* am_router: matches a method and path against a table of routes with
 * {name} placeholders ("/api/v1/users/{id}"). Placeholders match one
 * non-empty path segment and are percent-decoded. */
#ifndef AM_ROUTER_H
#define AM_ROUTER_H

#include <stddef.h>

#define AM_ROUTE_MAX_PARAMS 4

struct am_route_params {
	int n;
	const char *name[AM_ROUTE_MAX_PARAMS]; /* points into the pattern, not NUL-ended */
	size_t name_len[AM_ROUTE_MAX_PARAMS];
	char value[AM_ROUTE_MAX_PARAMS][256];
};

enum am_route_result { AM_ROUTE_FOUND, AM_ROUTE_NOT_FOUND, AM_ROUTE_BAD_METHOD, AM_ROUTE_BAD_PATH };

/* Routes are any struct whose first members are method and pattern; pass the
 * table, its element size and count. On AM_ROUTE_FOUND *index is the match;
 * on AM_ROUTE_BAD_METHOD allow lists the methods that would match ("GET, POST").
 * HEAD matches GET routes. */
enum am_route_result am_router_match(const void *table, size_t elem_size, size_t count, const char *method,
				     const char *path, size_t *index, struct am_route_params *params,
				     char *allow, size_t allow_size);

/* The decoded value of a placeholder, or NULL. */
const char *am_route_param(const struct am_route_params *p, const char *name);

#endif
