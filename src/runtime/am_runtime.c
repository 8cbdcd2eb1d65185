/* am_runtime: what every runtime shares (see am_runtime.h). */
#include "am_runtime.h"

#include <limits.h>

#include "am_proc.h"

const char *am_runtime_name(const struct am_runtime *rt)
{
	return rt ? rt->ops->name : "";
}

int am_runtime_tail(struct am_runtime *rt, const char *ref, int n, char ***lines)
{
	char path[PATH_MAX];
	*lines = NULL;
	if (!rt || !ref || !rt->ops->log_file || rt->ops->log_file(rt, ref, path, sizeof path) != 0)
		return 0;
	return am_proc_tail(path, n, lines);
}

void am_runtime_lines_free(char **lines, int n)
{
	am_proc_lines_free(lines, n);
}

void am_runtime_marker(const char *owner_id, const char *kind, long long id, char *out, size_t size)
{
	am_proc_marker(owner_id, kind, id, out, size);
}

void am_runtime_free(struct am_runtime *rt)
{
	if (rt)
		rt->ops->free(rt);
}
